-- Settings: defaults, ranges, and who may read or set them.
SELECT name, setting, unit, context, vartype, min_val, max_val
  FROM pg_settings WHERE name LIKE 'wm_perf.%'
   AND name NOT IN ('wm_perf.redis_host', 'wm_perf.redis_port', 'wm_perf.redis_backoff')
 ORDER BY name COLLATE "C";
SHOW wm_perf.cache_ttl;
SHOW wm_perf.redis_command_timeout;

-- Range and format checks (22023).  The Redis target and the key prefix
-- are PGC_SIGHUP: checked by ALTER SYSTEM (which writes nothing when the
-- check fails), refused by SET (55P02) so that every session and the
-- worker use the same Redis and keys.
ALTER SYSTEM SET wm_perf.redis_port = 0;
\echo :LAST_ERROR_SQLSTATE
SELECT regress_error('SET wm_perf.cache_ttl = 0');
ALTER SYSTEM SET wm_perf.redis_host = 'redis.example.com';
\echo :LAST_ERROR_SQLSTATE
-- Sentinels: address literals with a port, at most 8, comma-separated.
ALTER SYSTEM SET wm_perf.redis_sentinels = 'sentinel.example.com:26379';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET wm_perf.redis_sentinels = '127.0.0.1';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET wm_perf.redis_sentinels = '127.0.0.1:26379 127.0.0.2:26379';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET wm_perf.redis_sentinels = '[::1:26379';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET wm_perf.redis_sentinels = '1.1.1.1:1,1.1.1.1:2,1.1.1.1:3,1.1.1.1:4,1.1.1.1:5,1.1.1.1:6,1.1.1.1:7,1.1.1.1:8,1.1.1.1:9';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET wm_perf.redis_sentinel_master = 'my master';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET wm_perf.redis_sentinels = '127.0.0.1:26379, [::1]:26380';
ALTER SYSTEM RESET wm_perf.redis_sentinels;
SELECT regress_error($$SET wm_perf.redis_sentinels = '127.0.0.1:26379, [::1]:26380'$$);
ALTER SYSTEM SET wm_perf.key_prefix = 'has space';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET wm_perf.key_prefix = '';
\echo :LAST_ERROR_SQLSTATE
SELECT regress_error($$SET wm_perf.redis_host = '::1'$$);
SELECT regress_error($$SET wm_perf.key_prefix = 'other'$$);
SELECT regress_error($$SET wm_perf.no_such_setting = 1$$);

-- A plain role can neither read nor set what points at Redis.
CREATE ROLE regress_wm_plain;
SET ROLE regress_wm_plain;
SELECT regress_error('SHOW wm_perf.redis_host');
SELECT regress_error('SHOW wm_perf.redis_password');
SELECT regress_error('SHOW wm_perf.redis_sentinels');
SELECT regress_error('SHOW wm_perf.redis_sentinel_master');
SELECT regress_error($$SELECT current_setting('wm_perf.redis_password')$$);
SELECT count(*) AS visible_secret_settings FROM pg_settings
 WHERE name IN ('wm_perf.redis_host', 'wm_perf.redis_port', 'wm_perf.redis_password',
				'wm_perf.redis_password_file', 'wm_perf.redis_user', 'wm_perf.redis_database',
				'wm_perf.redis_sentinels', 'wm_perf.redis_sentinel_master');
SELECT regress_error($$SET wm_perf.redis_host = '127.0.0.1'$$);
SELECT regress_error('SET wm_perf.cache_ttl = 5');
SELECT regress_error('SET wm_perf.redis_command_timeout = 5000');
SET wm_perf.cache_enabled = off;
SHOW wm_perf.cache_enabled;
RESET wm_perf.cache_enabled;
RESET ROLE;
DROP ROLE regress_wm_plain;
