-- wm_index_missing(): the statements of pg_stat_statements that an index
-- would serve.  Two configurations, two expected files: with
-- pg_stat_statements preloaded (advice_missing.out, the main run) and
-- without (advice_missing_1.out, the run without preload), where the
-- function gives its hint.  hypopg is optional: the checks hold with it
-- (hypopg's costs for the btree suggestion) and without (structural).
-- Not installed in this database: the hint.
SELECT * FROM wm_index_missing();
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
RESET client_min_messages;
SELECT current_setting('shared_preload_libraries') ~ 'pg_stat_statements' AS pgss_loaded \gset
SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg') AND :'pgss_loaded'::boolean AS have_hypopg \gset
\if :pgss_loaded
\else
SELECT * FROM wm_index_missing();
\endif
\if :have_hypopg
CREATE EXTENSION hypopg;
\endif
\if :pgss_loaded
ANALYZE core.bins;
ANALYZE core.service_events;
-- An expression index that is not the expression the application queries.
CREATE INDEX idx_bins_geog_wkb ON core.bins USING gist (ST_GeogFromWKB(location));
SELECT pg_stat_statements_reset() IS NOT NULL AS reset;
-- The application's radius query (Sequelize adds deleted_at IS NULL), with
-- no status filter: wm_perf's partial geography index cannot serve it.
SELECT count(*) FROM core.bins
 WHERE ST_DWithin(location, ST_GeogFromText('SRID=4326;POINT(-95.36 29.76)'), 5000)
   AND deleted_at IS NULL;
-- The same with status sent as a parameter, as a prepared statement under
-- plan_cache_mode = force_generic_plan runs it.
PREPARE radius(core.enum_bins_status) AS
SELECT count(*) FROM core.bins
 WHERE status = $1 AND deleted_at IS NULL
   AND ST_DWithin(location::geography, ST_GeogFromText('SRID=4326;POINT(-95.36 29.76)'), 5000);
EXECUTE radius('active');
DEALLOCATE radius;
-- A filter no index serves: a btree, partial on the soft delete.
SELECT count(*) FROM core.service_events
 WHERE scheduled_date = '2026-03-02' AND deleted_at IS NULL;
-- Served by an index: not listed.
SELECT count(*) FROM core.bins WHERE bin_number = 'B00000007';
\x on
SELECT table_name, query, suggestion, near_miss,
	   CASE WHEN method = 'hypopg' THEN cost_after < cost_before
			WHEN method = 'structural' THEN cost_after IS NULL
	   END AS cost_ok,
	   method = CASE WHEN :'have_hypopg'::boolean AND suggestion LIKE '%USING btree%' THEN 'hypopg'
					 WHEN suggestion IS NOT NULL THEN 'structural' END AS method_ok,
	   calls, cost_before > 0 AS planned
  FROM wm_index_missing()
 ORDER BY query COLLATE "C";
\x off
-- Nothing left behind: no prepared statement, no hypothetical index.
SELECT count(*) AS prepared_left FROM pg_prepared_statements;
\if :have_hypopg
SELECT count(*) = 0 AS no_hypothetical_left FROM hypopg_list_indexes \gset
\else
SELECT true AS no_hypothetical_left \gset
\endif
SELECT :'no_hypothetical_left' AS no_hypothetical_left;
-- pg_monitor may read it; others may not.
CREATE ROLE regress_wm_missing_monitor IN ROLE pg_monitor;
CREATE ROLE regress_wm_missing_nobody;
GRANT USAGE ON SCHEMA core TO regress_wm_missing_monitor;
GRANT SELECT ON core.bins TO regress_wm_missing_monitor;
SET ROLE regress_wm_missing_monitor;
-- Only the statements it could run itself: not those on service_events.
SELECT table_name, count(*) AS rows_for_monitor FROM wm_index_missing() GROUP BY table_name ORDER BY table_name::text;
SET ROLE regress_wm_missing_nobody;
SELECT regress_error($$SELECT * FROM wm_index_missing()$$);
RESET ROLE;
REVOKE ALL ON core.bins FROM regress_wm_missing_monitor;
REVOKE USAGE ON SCHEMA core FROM regress_wm_missing_monitor;
DROP ROLE regress_wm_missing_monitor, regress_wm_missing_nobody;
DROP INDEX core.idx_bins_geog_wkb;
\endif
\if :have_hypopg
DROP EXTENSION hypopg;
\endif
DROP EXTENSION pg_stat_statements;
