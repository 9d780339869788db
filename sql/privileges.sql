-- Statistics need SELECT on the tables; values never cross roles.
CREATE ROLE regress_wm_none;
CREATE ROLE regress_wm_houston;
CREATE ROLE regress_wm_all;
GRANT USAGE ON SCHEMA core, operations TO regress_wm_none, regress_wm_houston, regress_wm_all;
GRANT SELECT ON core.routes TO regress_wm_houston, regress_wm_all;

SET ROLE regress_wm_none;
SELECT regress_error('SELECT wm_route_statistics()');
SELECT regress_error('SELECT wm_bin_statistics()');
RESET ROLE;

-- Row-level security: each role gets the statistics of the rows it sees.
ALTER TABLE core.routes ENABLE ROW LEVEL SECURITY;
CREATE POLICY houston_only ON core.routes FOR SELECT TO regress_wm_houston
	USING (territory = 'Houston');
CREATE POLICY everything ON core.routes FOR SELECT TO regress_wm_all USING (true);
SELECT wm_perf_metrics_reset();
SET ROLE regress_wm_houston;
SELECT (wm_route_statistics() -> 'total')::int AS houston_sees;
RESET ROLE;
SET ROLE regress_wm_all;
SELECT (wm_route_statistics() -> 'total')::int AS all_sees;
RESET ROLE;
SET ROLE regress_wm_houston;
SELECT (wm_route_statistics() -> 'total')::int AS houston_sees_again;
RESET ROLE;
SELECT count(*) FILTER (WHERE territory = 'Houston') AS houston_live,
	   count(*) AS all_live
  FROM core.routes WHERE deleted_at IS NULL;
-- Under RLS nothing is read from or written to the cache.
SELECT calls, cache_hits, cache_misses, cache_bypasses FROM wm_perf_metrics
 WHERE function_name = 'wm_route_statistics';
DROP POLICY houston_only ON core.routes;
DROP POLICY everything ON core.routes;
ALTER TABLE core.routes DISABLE ROW LEVEL SECURITY;

-- An ordinary role that may write to the tables commits normally, and its
-- commit invalidates: the trigger and the commit path need no privilege
-- beyond the write itself.
CREATE ROLE regress_wm_writer;
GRANT USAGE ON SCHEMA core TO regress_wm_writer;
GRANT SELECT, UPDATE ON core.routes TO regress_wm_writer;
SELECT min(route_number) AS rn FROM core.routes
 WHERE status = 'active' AND deleted_at IS NULL \gset
SELECT wm_route_statistics() -> 'byStatus' -> 'archived' AS archived_before;
SET ROLE regress_wm_writer;
BEGIN;
UPDATE core.routes SET status = 'archived' WHERE route_number = :'rn';
COMMIT;
RESET ROLE;
SELECT wm_route_statistics() -> 'byStatus' -> 'archived' AS archived_after;
UPDATE core.routes SET status = 'active' WHERE route_number = :'rn';
SET ROLE regress_wm_writer;
SELECT regress_error($$SELECT wm_cache_flush()$$);
RESET ROLE;
REVOKE ALL ON core.routes FROM regress_wm_writer;
REVOKE ALL ON SCHEMA core FROM regress_wm_writer;
DROP ROLE regress_wm_writer;

-- Private helpers and the metrics are not for PUBLIC.
SELECT p.proname, has_function_privilege('regress_wm_none', p.oid, 'EXECUTE') AS public_can_execute
  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
   AND (p.proname LIKE '\_wm\_%' OR p.proname IN ('wm_perf_metrics_reset', 'wm_cache_flush'))
 ORDER BY p.proname COLLATE "C";
SELECT has_table_privilege('regress_wm_none', 'wm_perf_metrics', 'SELECT') AS public_reads_metrics;

REVOKE ALL ON SCHEMA core, operations FROM regress_wm_none, regress_wm_houston, regress_wm_all;
REVOKE ALL ON core.routes FROM regress_wm_houston, regress_wm_all;
DROP ROLE regress_wm_none, regress_wm_houston, regress_wm_all;
