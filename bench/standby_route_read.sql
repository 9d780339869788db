-- steady_route_read.sql on the hot standby: a value that differs from the
-- plain-SQL value computed before the run (nothing writes routes) is
-- appended to the file :stalefile, as the standby cannot insert.
SELECT ((wm_route_statistics() - 'computedAt') = r.v)::int AS same FROM bench_route_expected r \gset
\if :same = 0
\shell echo routes >> :stalefile
\endif
