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
SELECT regress_error('SHOW wm_perf.redis_sentinel_user');
SELECT regress_error('SHOW wm_perf.redis_sentinel_password_file');
SELECT regress_error($$SELECT current_setting('wm_perf.redis_password')$$);
SELECT count(*) AS visible_secret_settings FROM pg_settings
 WHERE name IN ('wm_perf.redis_host', 'wm_perf.redis_port', 'wm_perf.redis_password',
				'wm_perf.redis_password_file', 'wm_perf.redis_user', 'wm_perf.redis_database',
				'wm_perf.redis_sentinels', 'wm_perf.redis_sentinel_master',
				'wm_perf.redis_sentinel_user', 'wm_perf.redis_sentinel_password_file');
SELECT regress_error($$SET wm_perf.redis_host = '127.0.0.1'$$);
SELECT regress_error('SET wm_perf.cache_ttl = 5');
SELECT regress_error('SET wm_perf.redis_command_timeout = 5000');
SET wm_perf.cache_enabled = off;
SHOW wm_perf.cache_enabled;
RESET wm_perf.cache_enabled;
RESET ROLE;
DROP ROLE regress_wm_plain;

-- Read-your-writes across a standby (the standby side is in TAP
-- 110_standby_lsn).  wm_perf.min_lsn and its timeout are per-session
-- read knobs: a plain role sets them.
CREATE ROLE regress_wm_plain;
SET ROLE regress_wm_plain;
SHOW wm_perf.min_lsn;
SHOW wm_perf.min_lsn_timeout;
SELECT regress_error($$SET wm_perf.min_lsn = 'not an lsn'$$);
SELECT regress_error($$SET wm_perf.min_lsn = '1/2/3'$$);
SELECT regress_error($$SET wm_perf.min_lsn = '123456789/0'$$);
SELECT regress_error($$SET wm_perf.min_lsn = '0/'$$);
SELECT regress_error('SET wm_perf.min_lsn_timeout = -1');
SELECT regress_error('SET wm_perf.min_lsn_timeout = 3600001');
SET wm_perf.min_lsn = 'aBcD/12';
SHOW wm_perf.min_lsn;
SET wm_perf.min_lsn_timeout = '2s';
SHOW wm_perf.min_lsn_timeout;
RESET wm_perf.min_lsn_timeout;
-- set_config() with NULL (no commit yet) resets it: nothing to wait for.
SELECT set_config('wm_perf.min_lsn', NULL, false) = '' AS reset_by_null;
SHOW wm_perf.min_lsn;
RESET ROLE;
DROP ROLE regress_wm_plain;

-- On a primary nothing waits: an LSN at or before the WAL insert
-- position is satisfied (every commit that returned is visible), one
-- beyond it was not handed out by this server (22023), also to radius
-- lookups.
CREATE TABLE regress_lsn (x int);
SELECT pg_current_wal_insert_lsn() AS before_write \gset
INSERT INTO regress_lsn VALUES (1);
SELECT wm_perf_commit_lsn() > :'before_write'::pg_lsn AS after_the_write,
	   wm_perf_commit_lsn() <= pg_current_wal_insert_lsn() AS before_insert_position;
SELECT wm_perf_commit_lsn() AS commit_lsn \gset
-- A read-only transaction and a rolled-back write commit nothing.
SELECT count(*) FROM regress_lsn;
BEGIN;
INSERT INTO regress_lsn VALUES (2);
ROLLBACK;
SELECT wm_perf_commit_lsn() = :'commit_lsn'::pg_lsn AS unchanged;
-- synchronous_commit = off: the commit record's end all the same.
SET synchronous_commit = off;
INSERT INTO regress_lsn VALUES (3);
RESET synchronous_commit;
SELECT wm_perf_commit_lsn() > :'commit_lsn'::pg_lsn AS async_commit_moves_it;
SELECT wm_route_statistics() - 'computedAt' AS routes_before,
	   (SELECT array_agg(id ORDER BY distance_m, id) FROM wm_bins_within_radius(40.7128, -74.0060, 5, 5)) AS bins_before \gset
SELECT set_config('wm_perf.min_lsn', wm_perf_commit_lsn()::text, false) = wm_perf_commit_lsn()::text AS set;
SELECT (wm_route_statistics() - 'computedAt') = :'routes_before'::jsonb AS routes_served,
	   (SELECT array_agg(id ORDER BY distance_m, id) FROM wm_bins_within_radius(40.7128, -74.0060, 5, 5))
		 = :'bins_before'::uuid[] AS bins_served,
	   cardinality(:'bins_before'::uuid[]) AS bins;
SET wm_perf.min_lsn = 'FFFFFFFF/FFFFFFFF';
SELECT regress_error('SELECT wm_route_statistics()');
SELECT regress_error('SELECT wm_bin_statistics()');
SELECT regress_error('SELECT * FROM wm_bins_within_radius(29.76, -95.37, 5)');
SELECT regress_error('SELECT * FROM wm_routes_within_radius(29.76, -95.37, 5)');
RESET wm_perf.min_lsn;
DROP TABLE regress_lsn;
