-- DDL that changes a statistic without writing a row invalidates it, and
-- writes straight to partitions and inheritance children invalidate like
-- writes to the attached table (issue 16, item 10).  Each check reads the
-- statistic (so the next change cannot be quiet), changes, and compares the
-- next read with plain SQL.
CREATE SCHEMA ddl;
CREATE TABLE ddl.routes (LIKE core.routes INCLUDING DEFAULTS) PARTITION BY LIST (territory);
CREATE TABLE ddl.routes_houston PARTITION OF ddl.routes FOR VALUES IN ('Houston');
CREATE TABLE ddl.routes_other PARTITION OF ddl.routes DEFAULT;
INSERT INTO ddl.routes SELECT * FROM core.routes;
CREATE FUNCTION ddl.plain(tbl regclass) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r jsonb;
BEGIN
	EXECUTE format($q$
	SELECT jsonb_build_object(
		'total', count(*),
		'byStatus', (SELECT jsonb_object_agg(status, n)
					   FROM (SELECT status::text, count(*) n FROM %1$s
							  WHERE deleted_at IS NULL GROUP BY 1) s),
		'avgDurationMinutes', round(avg(estimated_duration_minutes), 2))
	  FROM %1$s WHERE deleted_at IS NULL $q$, tbl) INTO r;
	RETURN r;
END $$;
CREATE FUNCTION ddl.exact(tbl regclass DEFAULT 'ddl.routes') RETURNS boolean LANGUAGE sql AS $$
	SELECT jsonb_build_object('total', s -> 'total', 'byStatus', s -> 'byStatus',
							  'avgDurationMinutes', s -> 'optimization' -> 'avgDurationMinutes')
		   = ddl.plain(tbl)
	  FROM (SELECT wm_route_statistics() AS s) x
$$;

-- Attach moves the routes role: the old table's triggers go, the new one's
-- partitions get the statement triggers (the row trigger is cloned).
SELECT * FROM wm_perf_attach(routes => 'ddl.routes')
 WHERE (wm_perf_attach LIKE 'trigger%' OR wm_perf_attach LIKE 'table%')
   AND wm_perf_attach LIKE '%routes%';
SELECT ddl.exact() AS warm;

-- A write straight to a partition fires only the partition's triggers.
UPDATE ddl.routes_houston SET status = 'archived' WHERE status = 'active';
SELECT ddl.exact() AS after_partition_write;

-- DETACH, ATTACH, CREATE ... PARTITION OF and DROP of a partition.
ALTER TABLE ddl.routes DETACH PARTITION ddl.routes_houston;
SELECT ddl.exact() AS after_detach;
ALTER TABLE ddl.routes ATTACH PARTITION ddl.routes_houston FOR VALUES IN ('Houston');
SELECT ddl.exact() AS after_attach;
CREATE TABLE ddl.routes_nowhere PARTITION OF ddl.routes FOR VALUES IN ('Nowhere');
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'ddl.routes_nowhere'::regclass
 ORDER BY tgname COLLATE "C";
SELECT ddl.exact() AS warm_again;
INSERT INTO ddl.routes_nowhere (id, route_number, route_name, territory, status, ai_optimized,
								estimated_duration_minutes, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-0000000000dd', 'RDDL', 'ddl route', 'Nowhere', 'active', false,
		1000, now(), now());
SELECT ddl.exact() AS after_insert_into_new_partition;
DROP TABLE ddl.routes_nowhere;
SELECT ddl.exact() AS after_drop_partition;

-- A column's values rewritten by ALTER COLUMN ... TYPE ... USING (the
-- dashboard view reads the column: it goes, attach makes it again below).
DROP MATERIALIZED VIEW mv_route_statistics;
ALTER TABLE ddl.routes ALTER COLUMN estimated_duration_minutes TYPE bigint
	USING estimated_duration_minutes * 2;
SELECT ddl.exact() AS after_alter_column_type;

-- An enum value the statistics group by, renamed.
ALTER TYPE core.enum_routes_status RENAME VALUE 'archived' TO 'shelved';
SELECT ddl.exact() AS after_rename_value, wm_route_statistics() -> 'byStatus' ? 'shelved' AS shelved;
ALTER TYPE core.enum_routes_status RENAME VALUE 'shelved' TO 'archived';
SELECT ddl.exact() AS after_rename_back;

-- Back to core.routes; an inheritance child's rows count through it.
SELECT count(*) > 0 AS reattached FROM wm_perf_attach(routes => 'core.routes');
SELECT ddl.exact('core.routes') AS exact;
CREATE TABLE ddl.extra_routes () INHERITS (core.routes);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'ddl.extra_routes'::regclass ORDER BY tgname COLLATE "C";
SELECT ddl.exact('core.routes') AS exact;
INSERT INTO ddl.extra_routes (id, route_number, route_name, territory, status, ai_optimized,
							  created_at, updated_at)
VALUES ('00000000-0000-0000-0000-0000000000de', 'RCHILD', 'child route', 'Houston', 'active',
		true, now(), now());
SELECT ddl.exact('core.routes') AS exact_after_child_insert;
ALTER TABLE ddl.extra_routes NO INHERIT core.routes;
SELECT ddl.exact('core.routes') AS exact_after_no_inherit;
ALTER TABLE ddl.extra_routes INHERIT core.routes;
SELECT ddl.exact('core.routes') AS exact_after_inherit;
DROP TABLE ddl.extra_routes;
SELECT ddl.exact('core.routes') AS exact_after_drop_child;

DROP SCHEMA ddl CASCADE;
SELECT relid FROM wm_perf_config WHERE role = 'routes';
SELECT to_regclass('mv_route_statistics') IS NOT NULL AS matview_back;
