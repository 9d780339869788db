-- The whole values, checked: in one REPEATABLE READ snapshot, both
-- statistics must equal their plain-SQL definitions (steady_setup.sql).
-- Under REPEATABLE READ wm_perf does not use the cache, so this checks the
-- maintained aggregates (bins) and the computation (routes) while pickups
-- commit; the cache is checked by every read of steady_bin_read.sql.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ((wm_bin_statistics() - 'computedAt') = bench_plain_bin_stats_json())::int AS same_bins,
       ((wm_route_statistics() - 'computedAt') = bench_plain_route_stats_json())::int AS same_routes \gset
\if :same_bins = 0 OR :same_routes = 0
INSERT INTO bench_mismatches (wm_bins, plain_bins, wm_routes, plain_routes)
SELECT wm_bin_statistics() - 'computedAt', bench_plain_bin_stats_json(),
       wm_route_statistics() - 'computedAt', bench_plain_route_stats_json();
\endif
COMMIT;
