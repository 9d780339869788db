-- A dashboard's route-statistics read, checked: nothing writes routes during
-- the run, so the value must equal the plain-SQL value computed before it
-- (bench_route_expected).
SELECT ((wm_route_statistics() - 'computedAt') = r.v)::int AS same FROM bench_route_expected r \gset
\if :same = 0
INSERT INTO bench_stale_reads (statistic) VALUES ('routes');
\endif
