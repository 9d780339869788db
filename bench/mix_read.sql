-- Bin statistics, checked: the service events it counts must include every
-- pickup whose COMMIT had returned before this read began (base: the count
-- when the run started).  A read that misses one is recorded as stale.
SELECT count(*) AS done FROM bench_mix_done \gset
SELECT (wm_bin_statistics() -> 'serviceEventsLast30Days' ->> 'total')::bigint AS total \gset
\if :total < :base + :done
INSERT INTO bench_stale_reads (seen, expected) VALUES (:total, :base + :done);
\endif
