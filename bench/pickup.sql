-- A pickup as the application records it, in one transaction: a random
-- bin's fill level changes and a completed service event is inserted for a
-- random customer (customer i has the id md5('customers:' || i), bin i the
-- number 'B' || lpad(i, 8, '0'): test/fixtures/generate.sql).  With
-- record = 1, a row in bench_mix_done records the pickup after its COMMIT
-- has returned, if its event counts in the bin statistics (its customer is
-- live): every read that starts later must include it (steady_bin_read.sql).
\set n random(1, :nbins)
\set c random(1, :ncustomers)
BEGIN;
UPDATE core.bins SET fill_level_percent = (fill_level_percent + 7) % 101, updated_at = now()
 WHERE bin_number = 'B' || lpad(:n::text, 8, '0');
WITH e AS (
  INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
  VALUES (gen_random_uuid(), md5('customers:' || :c)::uuid, 'pickup', 'completed', now(), now())
  RETURNING customer_id)
SELECT count(*) AS counted FROM e JOIN operations.customers c ON c.id = e.customer_id WHERE c.deleted_at IS NULL \gset
COMMIT;
\if :record > 0 AND :counted > 0
INSERT INTO bench_mix_done DEFAULT VALUES;
\endif
