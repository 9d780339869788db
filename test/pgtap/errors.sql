-- Every documented SQLSTATE of the SQL API, with its message.
BEGIN;
SELECT plan(18);

SELECT throws_ok($$SELECT wm_cache_flush('everything')$$, '22023',
	'invalid cache scope "everything"', 'bad flush scope');
SELECT throws_ok($$SELECT wm_invalidate_cache()$$, '39P01',
	'wm_invalidate_cache() must be called as a trigger', 'trigger function called directly');
CREATE TABLE pgtap_t (id int);
CREATE TRIGGER pgtap_before BEFORE INSERT ON pgtap_t FOR EACH ROW EXECUTE FUNCTION wm_invalidate_cache('routes');
SELECT throws_ok($$INSERT INTO pgtap_t VALUES (1)$$, '39P01',
	'wm_invalidate_cache() must be fired AFTER the change, or BEFORE the statement', 'BEFORE ROW trigger refused');
DROP TRIGGER pgtap_before ON pgtap_t;
CREATE TRIGGER pgtap_other AFTER INSERT ON pgtap_t FOR EACH STATEMENT EXECUTE FUNCTION wm_invalidate_cache('routes');
CREATE TEMP TABLE pgtap_rec AS SELECT invalidations_recorded AS r FROM wm_perf_metrics WHERE function_name = 'invalidation';
SELECT lives_ok($$INSERT INTO pgtap_t VALUES (1)$$, 'a trigger on a table that is not attached does not fail the write');
SELECT is((SELECT invalidations_recorded FROM wm_perf_metrics WHERE function_name = 'invalidation'),
	(SELECT r FROM pgtap_rec), '... and records no invalidation');
DROP TRIGGER pgtap_other ON pgtap_t;
CREATE TABLE pgtap_bad_routes (id uuid, status text);
SELECT throws_ok($$SELECT wm_perf_attach(routes => 'pgtap_bad_routes')$$, '42703',
	'table public.pgtap_bad_routes lacks columns required by wm_perf: route_number, route_name, territory, route_type, service_day, estimated_duration_minutes, estimated_distance_miles, ai_optimized, optimization_score, route_geometry, deleted_at',
	'attach names missing columns');
SELECT throws_ok($$SET wm_perf.redis_port = 0$$, '55P02',
	'parameter "wm_perf.redis_port" cannot be changed now', 'the Redis target is not set per session');
SELECT throws_ok($$SET wm_perf.cache_ttl = 0$$, '22023',
	'0 s is outside the valid range for parameter "wm_perf.cache_ttl" (1 .. 604800)', 'TTL out of range');
SELECT throws_ok($$INSERT INTO wm_cache_rules VALUES ('x', 'trucks', 'k')$$, '23514',
	'new row for relation "wm_cache_rules" violates check constraint "wm_cache_rules_table_role_check"',
	'rule for an unknown table role');

-- Radius lookups: 22023 naming the argument.
SELECT throws_ok($$SELECT * FROM wm_bins_within_radius(91, 0, 1)$$, '22023',
	'argument "lat" must be between -90 and 90, not 91', 'lat out of range');
SELECT throws_ok($$SELECT * FROM wm_bins_within_radius(0, -200, 1)$$, '22023',
	'argument "lon" must be between -180 and 180, not -200', 'lon out of range');
SELECT throws_ok($$SELECT * FROM wm_bins_within_radius('NaN', 0, 1)$$, '22023',
	'argument "lat" must be a finite number, not NaN', 'lat NaN');
SELECT throws_ok($$SELECT * FROM wm_bins_within_radius(0, 0, 'Infinity')$$, '22023',
	'argument "radius_km" must be a finite number, not Infinity', 'radius infinite');
SELECT throws_ok($$SELECT * FROM wm_bins_within_radius(0, 0, 0)$$, '22023',
	'argument "radius_km" must be greater than 0, not 0', 'radius zero');
SELECT throws_ok($$SELECT * FROM wm_bins_within_radius(0, 0, 20037.6)$$, '22023',
	'argument "radius_km" must be at most 20037.5, not 20037.6', 'radius beyond half the Earth');
SELECT throws_ok($$SELECT * FROM wm_bins_within_radius(0, 0, 1, 0)$$, '22023',
	'argument "max_results" must be between 1 and 10000, not 0', 'max_results zero');
SELECT throws_ok($$SELECT * FROM wm_routes_within_radius(0, 0, 1, 10001)$$, '22023',
	'argument "max_results" must be between 1 and 10000, not 10001', 'routes: max_results above the cap');
SELECT is((SELECT count(*)::int FROM wm_bins_within_radius(NULL, 0, 1)), 0,
	'NULL arguments: no rows (STRICT)');

SELECT * FROM finish();
ROLLBACK;
