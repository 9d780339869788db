-- The mixes' write: a pickup (a bin's fill level and a service event), in one
-- transaction when one_xact is 1 (as the application records it), as two
-- commits when 0 (as writes.sql).  After COMMIT has returned, a row in
-- bench_mix_done records it if its event counts in the bin statistics (its
-- customer is live): every read that starts later must include it.
\set n random(1, :nbins)
\if :one_xact
BEGIN;
\endif
UPDATE core.bins SET fill_level_percent = (fill_level_percent + 7) % 101, updated_at = now()
 WHERE bin_number = 'B' || lpad(:n::text, 8, '0');
WITH e AS (
  INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
  SELECT gen_random_uuid(), customer_id, 'pickup', 'completed', now(), now()
    FROM core.bins WHERE bin_number = 'B' || lpad(:n::text, 8, '0')
  RETURNING customer_id)
SELECT count(*) AS counted FROM e JOIN operations.customers c ON c.id = e.customer_id WHERE c.deleted_at IS NULL \gset
\if :one_xact
COMMIT;
\endif
\if :counted > 0
INSERT INTO bench_mix_done DEFAULT VALUES;
\endif
