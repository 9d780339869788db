-- Bin statistics, checked.  A pickup is recorded in bench_mix_done after its
-- COMMIT has returned; every pickup recorded before this read's count began
-- must be in the service events the statistics count (base: their number
-- when the run started).  A read that counts fewer is recorded as stale.
-- (A read that misses one recorded pickup but includes one committed and not
-- yet recorded is not caught: the check compares counts.)
SELECT count(*) AS done FROM bench_mix_done \gset
SELECT (wm_bin_statistics() -> 'serviceEventsLast30Days' ->> 'total')::bigint AS total \gset
\if :total < :base + :done
INSERT INTO bench_stale_reads (seen, expected) VALUES (:total, :base + :done);
\endif
