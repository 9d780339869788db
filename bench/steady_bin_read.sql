-- A dashboard's bin-statistics read, checked in the same statement (one
-- round trip).  The count of bench_mix_done is read under the statement's
-- snapshot, taken before wm_bin_statistics() is called: every pickup
-- counted there had returned from COMMIT before this read began, so the
-- statistic's serviceEventsLast30Days.total must be at least base (the
-- plain-SQL count when the run started) plus that count.  A read that
-- counts fewer is recorded as stale.  (As in mix_read.sql the check compares
-- counts, and sees the service events only; steady_check.sql compares whole
-- values.)
SELECT d.done, (wm_bin_statistics() -> 'serviceEventsLast30Days' ->> 'total')::bigint AS total
  FROM (SELECT count(*) AS done FROM bench_mix_done) d \gset
\if :total < :base + :done
INSERT INTO bench_stale_reads (statistic, seen, expected) VALUES ('bins', :total, :base + :done);
\endif
