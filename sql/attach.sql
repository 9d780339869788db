-- Attach to the application tables found by name, then prove idempotence.
SELECT * FROM wm_perf_attach();
SELECT * FROM wm_perf_attach();
SELECT role, relid FROM wm_perf_config ORDER BY role COLLATE "C";

-- The indexes, with their predicates.
SELECT c.relname AS index, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid IN ('core.bins'::regclass, 'core.routes'::regclass, 'core.service_events'::regclass)
   AND (i.indpred IS NOT NULL)
 ORDER BY c.relname COLLATE "C";

-- The materialized views have unique indexes usable by REFRESH CONCURRENTLY.
SELECT c.relname, c.relispopulated, pg_get_indexdef(i.indexrelid) AS key
  FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid
 WHERE c.relkind = 'm' ORDER BY c.relname COLLATE "C";
SELECT wm_refresh_statistics();
SELECT wm_refresh_statistics(false);
SELECT sum(routes) AS mv_routes FROM mv_route_statistics;
SELECT count(*) AS live_routes FROM core.routes WHERE deleted_at IS NULL;
SELECT sum(bins) AS mv_bins FROM mv_bin_statistics;
SELECT count(*) AS live_bins_of_live_customers
  FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
 WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL;

-- The triggers: statement-level, enabled ALWAYS.
SELECT tgrelid::regclass AS tbl, tgname, tgenabled, pg_get_triggerdef(oid) AS def
  FROM pg_trigger WHERE tgname LIKE 'wm_perf_invalidate_%'
 ORDER BY tgrelid::regclass::text COLLATE "C", tgname COLLATE "C";

-- None of them is an extension member (pg_dump keeps them with their table).
SELECT count(*) AS members_on_app_tables
  FROM pg_depend d
 WHERE d.deptype = 'e' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'wm_perf')
   AND d.classid IN ('pg_class'::regclass, 'pg_trigger'::regclass)
   AND d.objid NOT IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace
                                                  AND relname IN ('wm_perf_config', 'wm_cache_rules', 'wm_perf_metrics',
                                                                  'wm_agg_bins', 'wm_agg_bins_due', 'wm_agg_events',
                                                                  'wm_agg_state', 'wm_agg_state_pkey',
                                                                  'wm_index_samples'));

-- An equivalent index made beforehand under another name is recognised.
DROP INDEX core.bins_location_active_gist_idx;
CREATE INDEX my_bins_geo ON core.bins USING gist ((location::geography))
	WHERE status = 'active' AND deleted_at IS NULL;
SELECT * FROM wm_perf_attach() WHERE wm_perf_attach LIKE 'index bins_location%';
DROP INDEX core.my_bins_geo;
SELECT * FROM wm_perf_attach() WHERE wm_perf_attach LIKE 'index bins_location%';

-- A table lacking required columns: an error naming them, nothing changed.
CREATE TABLE public.bad_routes (id uuid, status text, territory text);
SELECT regress_error($$SELECT wm_perf_attach(routes => 'public.bad_routes')$$);
SELECT relid FROM wm_perf_config WHERE role = 'routes';
DROP TABLE public.bad_routes;

-- A spatial column of the wrong type.
CREATE TABLE public.flat_bins (LIKE core.bins);
ALTER TABLE public.flat_bins DROP COLUMN location, ADD COLUMN location text;
SELECT regress_error($$SELECT wm_perf_attach(bins => 'public.flat_bins')$$);
DROP TABLE public.flat_bins;

-- Two tables of the same name: a NOTICE, not a guess.
CREATE TABLE public.customers (LIKE operations.customers);
DELETE FROM wm_perf_config WHERE role = 'customers';
SELECT count(*) FROM wm_perf_attach();
SELECT count(*) AS customers_attached FROM wm_perf_config WHERE role = 'customers';
SELECT * FROM wm_perf_attach(customers => 'operations.customers') WHERE wm_perf_attach LIKE 'table%';
DROP TABLE public.customers;

-- A missing table: a NOTICE with a hint.
DELETE FROM wm_perf_config WHERE role = 'organizations';
ALTER TABLE operations.organizations RENAME TO orgs;
SELECT count(*) FROM wm_perf_attach();
ALTER TABLE operations.orgs RENAME TO organizations;
SELECT * FROM wm_perf_attach() WHERE wm_perf_attach LIKE 'table%';

-- DROP EXTENSION needs the triggers gone: detach, drop, nothing left behind.
SELECT regress_error('DROP EXTENSION wm_perf');
SELECT * FROM wm_perf_detach(drop_indexes => true);
DROP EXTENSION wm_perf;
SELECT count(*) AS leftover_relations FROM pg_class
 WHERE relname LIKE ANY (ARRAY['%wm_perf%', 'mv_%_statistics%', 'bins_location_active%',
							   'bins_customer_id_status%', 'routes_route_geometry%',
							   'routes_territory_status%', 'service_events_customer_id_created%',
							   'service_events_created_at_idx', 'wm_cache_rules%']);
SELECT count(*) AS leftover_triggers FROM pg_trigger WHERE tgname LIKE 'wm_%';
SELECT count(*) AS leftover_functions FROM pg_proc WHERE proname LIKE 'wm\_%' OR proname LIKE '\_wm\_%';

-- Installing again attaches at once: the tables exist now.
CREATE EXTENSION wm_perf;
SELECT count(*) AS indexes FROM pg_class WHERE relname IN ('bins_location_active_gist_idx', 'routes_route_geometry_active_gist_idx');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgname LIKE 'wm_perf_invalidate_%';
SELECT count(*) AS matviews FROM pg_class WHERE relkind = 'm';
-- ... and the materialized views are ordinary objects, not members.
SELECT count(*) AS matview_members FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.deptype = 'e' AND c.relkind = 'm';
