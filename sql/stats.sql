-- Statistics: exact values on the fixture, cross-checked against plain SQL,
-- through the cache (miss, then hit) and without Redis.

-- The expected statistics, computed by hand: regress_route_stats(territory)
-- and regress_bin_stats(customer).
\set ECHO none
\i test/fixtures/expected_stats.sql
\set ECHO all

SELECT wm_perf_metrics_reset();

-- Global route statistics: the exact value, equal to the hand-made one.
SELECT wm_route_statistics() - 'computedAt' AS routes;
SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL) AS routes_exact;
SELECT wm_route_statistics() ? 'computedAt' AS has_computed_at,
	   (wm_route_statistics() ->> 'computedAt') ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$' AS iso_utc;

-- One territory, an unknown territory (all seven days still listed), NULL.
SELECT wm_route_statistics('Houston') - 'computedAt' AS houston;
SELECT (wm_route_statistics('Houston') - 'computedAt') = regress_route_stats('Houston') AS houston_exact;
SELECT wm_route_statistics('Atlantis') - 'computedAt' AS atlantis;
SELECT (wm_route_statistics(NULL) - 'computedAt') = regress_route_stats(NULL) AS null_is_all;

-- Bin statistics: global and for one live customer, and an unknown one.
SELECT wm_bin_statistics() - 'computedAt' AS bins;
SELECT (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS bins_exact;
SELECT (wm_bin_statistics(c.id) - 'computedAt') = regress_bin_stats(c.id) AS customer_exact,
	   (wm_bin_statistics(c.id) -> 'total')::int > 0 AS customer_has_bins
  FROM operations.customers c
 WHERE c.deleted_at IS NULL AND EXISTS (SELECT 1 FROM core.bins b WHERE b.customer_id = c.id AND b.deleted_at IS NULL)
 ORDER BY c.customer_number COLLATE "C" LIMIT 1;
SELECT wm_bin_statistics('00000000-0000-0000-0000-000000000000') - 'computedAt' AS nobody;

-- The calls above went through Redis: misses first, then hits.
SELECT function_name, calls, cache_hits, cache_misses,
	   cache_bypasses, redis_errors
  FROM wm_perf_metrics WHERE function_name LIKE '%statistics' ORDER BY function_name COLLATE "C";

-- wm_perf.cache_enabled = off: any user may bypass the cache.
SET wm_perf.cache_enabled = off;
SELECT wm_perf_metrics_reset();
SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL) AS exact_cache_off;
SELECT calls, cache_hits, cache_misses, cache_bypasses FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';
RESET wm_perf.cache_enabled;

-- REPEATABLE READ never reads nor stores cached values.
SELECT wm_perf_metrics_reset();
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL) AS exact_rr;
COMMIT;
SELECT calls, cache_hits, cache_misses, cache_bypasses FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';

-- The materialized views give the same totals.
SELECT sum(routes) = (wm_route_statistics() ->> 'total')::bigint AS mv_matches FROM mv_route_statistics;
