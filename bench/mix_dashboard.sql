-- The dashboard's read: route and bin statistics; bin statistics checked as
-- in mix_read.sql.
SELECT count(*) AS done FROM bench_mix_done \gset
SELECT wm_route_statistics();
SELECT (wm_bin_statistics() -> 'serviceEventsLast30Days' ->> 'total')::bigint AS total \gset
\if :total < :base + :done
INSERT INTO bench_stale_reads (seen, expected) VALUES (:total, :base + :done);
\endif
