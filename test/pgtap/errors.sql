-- Every documented SQLSTATE of the SQL API, with its message.
BEGIN;
SELECT plan(7);

SELECT throws_ok($$SELECT wm_cache_flush('everything')$$, '22023',
	'invalid cache scope "everything"', 'bad flush scope');
SELECT throws_ok($$SELECT wm_invalidate_cache()$$, '39P01',
	'wm_invalidate_cache() must be called as a trigger', 'trigger function called directly');
CREATE TABLE pgtap_t (id int);
CREATE TRIGGER pgtap_before BEFORE INSERT ON pgtap_t FOR EACH ROW EXECUTE FUNCTION wm_invalidate_cache('routes');
SELECT throws_ok($$INSERT INTO pgtap_t VALUES (1)$$, '39P01',
	'wm_invalidate_cache() must be fired AFTER the change', 'BEFORE trigger refused');
DROP TRIGGER pgtap_before ON pgtap_t;
CREATE TABLE pgtap_bad_routes (id uuid, status text);
SELECT throws_ok($$SELECT wm_perf_attach(routes => 'pgtap_bad_routes')$$, '42703',
	NULL, 'attach names missing columns');
SELECT throws_ok($$SET wm_perf.redis_port = 0$$, '22023', NULL, 'port out of range');
SELECT throws_ok($$SET wm_perf.redis_host = 'redis.example.com'$$, '22023', NULL, 'host names refused');
SELECT throws_ok($$INSERT INTO wm_cache_rules VALUES ('x', 'trucks', 'k')$$, '23514', NULL, 'rule for an unknown table role');

SELECT * FROM finish();
ROLLBACK;
