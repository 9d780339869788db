-- steady_bin_read.sql on the hot standby: the same read and check, but a
-- standby cannot insert, so a stale read is appended to the file :stalefile
-- (bench/steady.sh counts its lines).  The check holds on the standby too:
-- the row of bench_mix_done is committed on the primary after the pickup it
-- counts, so a standby snapshot that sees the row sees the pickup, and :base
-- is counted on the standby.
SELECT d.done, (wm_bin_statistics() -> 'serviceEventsLast30Days' ->> 'total')::bigint AS total
  FROM (SELECT count(*) AS done FROM bench_mix_done) d \gset
\set expected :base + :done
\if :total < :expected
\shell echo bins :total :expected >> :stalefile
\endif
