-- steady_check.sql on the hot standby: in one REPEATABLE READ snapshot of
-- the standby, both statistics must equal their plain-SQL definitions
-- (steady_setup.sql).  A standby never uses the cache, so this checks the
-- maintained aggregates (bins) and the computation (routes) as replayed.
-- A mismatch is appended to the file :mismatchfile (a standby cannot insert).
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ((wm_bin_statistics() - 'computedAt') = bench_plain_bin_stats_json())::int AS same_bins,
       ((wm_route_statistics() - 'computedAt') = bench_plain_route_stats_json())::int AS same_routes \gset
COMMIT;
\if :same_bins = 0 OR :same_routes = 0
\shell echo mismatch bins :same_bins routes :same_routes >> :mismatchfile
\endif
