-- The exact set of extension members and what attach creates.
BEGIN;
SELECT plan(11);

SELECT bag_eq(
	$$SELECT pg_describe_object(classid, objid, objsubid)
		FROM pg_depend
	   WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		 AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'wm_perf')$$,
	$$VALUES
		('event trigger wm_perf_ddl_command_end'),
		('event trigger wm_perf_sql_drop'),
		('function _wm_attach_triggers(regclass,text)'),
		('function _wm_check_table(text,regclass)'),
		('function _wm_config_changed()'),
		('function _wm_ddl_changed()'),
		('function _wm_drop_triggers(regclass)'),
		('function _wm_ensure_bin_matview(regclass,regclass)'),
		('function _wm_ensure_event_matview(regclass,regclass)'),
		('function _wm_ensure_index(regclass,text,text)'),
		('function _wm_ensure_matview(text,text,text,regclass[],regrole)'),
		('function _wm_ensure_route_matview(regclass)'),
		('function _wm_find_table(text)'),
		('function _wm_histogram_quantile(double precision,double precision[],bigint[])'),
		('function _wm_index_facts(oid)'),
		('function _wm_index_signature(text)'),
		('function _wm_maintain()'),
		('function _wm_maintain_attach()'),
		('function _wm_maintain_triggers(regclass,regclass,regclass)'),
		('function _wm_metrics()'),
		('function _wm_metrics_latency()'),
		('function _wm_owner(regclass)'),
		('function _wm_postgis_schema()'),
		('function wm_bin_statistics(uuid)'),
		('function wm_bins_within_radius(double precision,double precision,double precision,integer)'),
		('function wm_cache_flush(text)'),
		('function wm_explain_indexes(text)'),
		('function wm_index_missing()'),
		('function wm_index_redundant()'),
		('function wm_index_sample()'),
		('function wm_index_unused(integer)'),
		('function wm_invalidate_cache()'),
		('function wm_perf_attach(regclass,regclass,regclass,regclass,regclass,boolean)'),
		('function wm_perf_commit_lsn()'),
		('function wm_perf_detach(boolean)'),
		('function wm_perf_health(double precision)'),
		('function wm_perf_metrics_reset()'),
		('function wm_perf_version()'),
		('function wm_refresh_statistics(boolean)'),
		('function wm_route_statistics(text)'),
		('function wm_routes_within_radius(double precision,double precision,double precision,integer,text)'),
		('function wm_statistics_compact()'),
		('function wm_statistics_rebuild()'),
		('function wm_statistics_verify()'),
		('table wm_agg_bins'),
		('table wm_agg_bins_due'),
		('table wm_agg_events'),
		('table wm_agg_state'),
		('table wm_cache_rules'),
		('table wm_index_samples'),
		('table wm_perf_config'),
		('view wm_perf_metrics')$$,
	'extension members are exactly the documented objects');

SELECT bag_eq(
	$$SELECT c.relname::text AS idx, pg_get_expr(i.indpred, i.indrelid) AS pred
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	   WHERE c.relname IN ('bins_location_active_gist_idx', 'bins_customer_id_status_bin_type_idx',
						   'routes_route_geometry_active_gist_idx', 'routes_route_geometry_territory_gist_idx',
						   'routes_territory_status_idx', 'service_events_customer_id_created_at_idx',
						   'service_events_created_at_idx')$$,
	$$VALUES
		('bins_location_active_gist_idx', '((status = ''active''::core.enum_bins_status) AND (deleted_at IS NULL))'),
		('bins_customer_id_status_bin_type_idx', '(deleted_at IS NULL)'),
		('routes_route_geometry_active_gist_idx', '((status = ''active''::core.enum_routes_status) AND (deleted_at IS NULL))'),
		('routes_route_geometry_territory_gist_idx', '(deleted_at IS NULL)'),
		('routes_territory_status_idx', '(deleted_at IS NULL)'),
		('service_events_customer_id_created_at_idx', '(deleted_at IS NULL)'),
		('service_events_created_at_idx', '(deleted_at IS NULL)')$$,
	'attach created the partial indexes with their predicates');

SELECT is(
	(SELECT am.amname::text FROM pg_class c JOIN pg_am am ON am.oid = c.relam
	  WHERE c.relname = 'bins_location_active_gist_idx'), 'gist',
	'the bins location index is GiST');

SELECT bag_eq(
	$$SELECT tgrelid::regclass::text AS tbl, tgname::text AS tgname, tgenabled::text AS enabled FROM pg_trigger
	   WHERE tgname LIKE 'wm_perf_invalidate_%'$$,
	$$SELECT t AS tbl, 'wm_perf_invalidate_' || r || '_' || s AS tgname,
			 CASE s WHEN 'repl' THEN 'R' ELSE 'A' END AS enabled
		FROM (VALUES ('core.routes', 'routes'), ('core.bins', 'bins'),
					 ('operations.customers', 'customers'),
					 ('core.service_events', 'service_events')) v(t, r),
			 unnest(ARRAY['before', 'ins', 'upd', 'del', 'trunc', 'repl']) s$$,
	'statement triggers (BEFORE and AFTER) enabled ALWAYS, a row trigger enabled REPLICA, per table');

SELECT bag_eq(
	$$SELECT tgrelid::regclass::text AS tbl, tgname::text AS tgname, tgenabled::text AS enabled FROM pg_trigger
	   WHERE tgname LIKE 'wm_perf_maintain_%'$$,
	$$SELECT t AS tbl, 'wm_perf_maintain_' || r || '_' || s AS tgname, 'A' AS enabled
		FROM (VALUES ('core.bins', 'bins'), ('operations.customers', 'customers'),
					 ('core.service_events', 'service_events')) v(t, r),
			 unnest(ARRAY['ins', 'upd', 'del', 'trunc']) s$$,
	'maintenance triggers on bins, customers and service_events, enabled ALWAYS');

SELECT is_empty('SELECT * FROM wm_statistics_verify()',
	'the maintained bin statistics equal a full computation');

SELECT bag_eq(
	$$SELECT relname::text FROM pg_class WHERE relkind = 'm'$$,
	$$VALUES ('mv_route_statistics'), ('mv_bin_statistics'), ('mv_service_event_statistics')$$,
	'three materialized views');

SELECT is(
	(SELECT count(*)::int FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
	  WHERE d.deptype = 'e' AND c.relkind = 'm'), 0,
	'materialized views are not extension members (pg_dump keeps them)');

SELECT results_eq(
	$$SELECT count(*)::int FROM wm_perf_attach() WHERE wm_perf_attach NOT LIKE '%already present%'$$,
	$$VALUES (0)$$,
	'attach twice is a no-op');

SELECT is(
	(SELECT count(*)::int FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid
	  WHERE c.relkind = 'm' AND i.indisunique), 3,
	'each materialized view has a unique index for REFRESH CONCURRENTLY');

SELECT lives_ok('SELECT wm_refresh_statistics()', 'concurrent refresh works');

SELECT * FROM finish();
ROLLBACK;
