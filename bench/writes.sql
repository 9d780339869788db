\set n random(1, :nbins)
UPDATE core.bins SET fill_level_percent = (fill_level_percent + 7) % 101, updated_at = now()
 WHERE bin_number = 'B' || lpad(:n::text, 8, '0');
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
SELECT gen_random_uuid(), customer_id, 'pickup', 'completed', now(), now()
  FROM core.bins WHERE bin_number = 'B' || lpad(:n::text, 8, '0');
