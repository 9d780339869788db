-- No Redis configured and no shared_preload_libraries (DESIGN.md section 6):
-- every function returns the exact value computed in the database, nothing
-- is cached, and writes, commits and flushes work.  `make test` runs this
-- schedule (REGRESS_NO_REDIS) on the same server after restarting it with
-- both settings removed.

\set ECHO none
\i test/fixtures/expected_stats.sql
\set ECHO all

-- (The library loads with its first function call.)
SELECT wm_perf_metrics_reset();

-- The configuration this file is about.
SELECT current_setting('wm_perf.redis_host') = '' AS no_redis,
	   current_setting('shared_preload_libraries') !~ 'wm_perf' AS no_preload;

-- The same exact values as stats.sql prints with Redis.
SELECT wm_route_statistics() - 'computedAt' AS routes;
SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL) AS routes_exact;
SELECT (wm_route_statistics('Houston') - 'computedAt') = regress_route_stats('Houston') AS houston_exact;
SELECT wm_route_statistics('Atlantis') - 'computedAt' AS atlantis;
SELECT wm_bin_statistics() - 'computedAt' AS bins;
SELECT (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS bins_exact;
SELECT (wm_bin_statistics(c.id) - 'computedAt') = regress_bin_stats(c.id) AS customer_exact,
	   (wm_bin_statistics(c.id) -> 'total')::int > 0 AS customer_has_bins
  FROM operations.customers c
 WHERE c.deleted_at IS NULL AND EXISTS (SELECT 1 FROM core.bins b WHERE b.customer_id = c.id AND b.deleted_at IS NULL)
 ORDER BY c.customer_number COLLATE "C" LIMIT 1;

-- Every call computed: no hit, no miss, no Redis error, no local copy.
SELECT function_name, calls, cache_hits, local_hits, cache_misses, cache_bypasses, redis_errors,
	   redis_round_trips, cluster_wide
  FROM wm_perf_metrics WHERE function_name LIKE '%statistics' ORDER BY function_name COLLATE "C";

-- A committed write is in the very next call, in this session and in the
-- state every other session sees; a rolled-back one is not.
SELECT (wm_bin_statistics() ->> 'total')::int AS total_before \gset
BEGIN;
UPDATE core.bins SET deleted_at = now()
 WHERE id = (SELECT id FROM core.bins WHERE deleted_at IS NULL ORDER BY bin_number COLLATE "C" LIMIT 1);
SELECT (wm_bin_statistics() ->> 'total')::int = :total_before - 1 AS own_write_seen;
ROLLBACK;
SELECT (wm_bin_statistics() ->> 'total')::int = :total_before AS rollback_changes_nothing;
UPDATE core.bins SET deleted_at = now()
 WHERE id = (SELECT id FROM core.bins WHERE deleted_at IS NULL ORDER BY bin_number COLLATE "C" LIMIT 1);
SELECT (wm_bin_statistics() ->> 'total')::int = :total_before - 1 AS commit_seen,
	   (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS still_exact;

-- Invalidations are recorded, and there is nothing to deliver them to.
SELECT invalidations_recorded > 0 AS recorded, invalidations_failed AS failed, keys_deleted
  FROM wm_perf_metrics WHERE function_name = 'invalidation';

-- An operator's flush succeeds without Redis.
SELECT wm_cache_flush() AS flushed;
SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL) AS exact_after_flush;
