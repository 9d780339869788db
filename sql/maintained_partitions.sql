-- The maintained aggregates on partitioned bins and service_events (issue
-- 12): writes through the parent and straight to a partition, rows moving
-- between partitions, partitions created, attached, detached, truncated,
-- and a partition whose maintenance trigger is disabled.  After each, the
-- maintained state equals a full computation in the same snapshot
-- (wm_statistics_verify() returns nothing; a 'state' row when the state
-- cannot serve the call).  The cache is off: every call reads the state.
SET wm_perf.cache_enabled = off;
CREATE SCHEMA mp;
CREATE TABLE mp.customers AS SELECT * FROM operations.customers;
ALTER TABLE mp.customers ADD PRIMARY KEY (id);
CREATE TABLE mp.bins (LIKE core.bins INCLUDING DEFAULTS) PARTITION BY HASH (id);
CREATE TABLE mp.bins_p0 PARTITION OF mp.bins FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE mp.bins_p1 PARTITION OF mp.bins FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO mp.bins SELECT * FROM core.bins;
CREATE TABLE mp.service_events (LIKE core.service_events INCLUDING DEFAULTS)
	PARTITION BY RANGE (created_at);
CREATE TABLE mp.events_old PARTITION OF mp.service_events
	FOR VALUES FROM (MINVALUE) TO ('2000-01-01');
CREATE TABLE mp.events_rest PARTITION OF mp.service_events DEFAULT;
INSERT INTO mp.service_events SELECT * FROM core.service_events;
CREATE FUNCTION pg_temp.mp_check() RETURNS text LANGUAGE sql AS $$
	SELECT coalesce((SELECT string_agg(item, ',' ORDER BY item) FROM wm_statistics_verify()), 'same')
		   || ' / ' || (SELECT count(*) FROM wm_agg_state)::text || ' state row'
$$;
CREATE FUNCTION pg_temp.mp_figures() RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('total', s -> 'total', 'byStatus', s -> 'byStatus',
							  'needingService', s -> 'needingService',
							  'events', s -> 'serviceEventsLast30Days' -> 'total')
	  FROM (SELECT wm_bin_statistics() AS s) x
$$;
SELECT * FROM wm_perf_attach(bins => 'mp.bins', customers => 'mp.customers',
							 service_events => 'mp.service_events')
 WHERE wm_perf_attach LIKE 'maintained%';
SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'mp'::regnamespace AND t.tgname LIKE 'wm\_perf\_maintain\_%'
 ORDER BY 1, 2;
SELECT pg_temp.mp_check() AS after_attach,
	   (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS same_as_core;

-- Through the parent: rows of both partitions.
UPDATE mp.bins SET status = 'maintenance'
 WHERE id IN (SELECT id FROM mp.bins WHERE status = 'active' ORDER BY bin_number COLLATE "C" LIMIT 9);
SELECT pg_temp.mp_check() AS parent_update, pg_temp.mp_figures();

-- Straight to a partition: only the partition's statement triggers fire.
UPDATE mp.bins_p0 SET fill_level_percent = 95, next_service_date = current_date - 3
 WHERE id IN (SELECT id FROM mp.bins_p0 WHERE status = 'active' ORDER BY id LIMIT 5);
DELETE FROM mp.bins_p1 WHERE id IN (SELECT id FROM mp.bins_p1 ORDER BY id LIMIT 4);
UPDATE mp.bins_p1 SET deleted_at = now() WHERE id IN (SELECT id FROM mp.bins_p1 ORDER BY id DESC LIMIT 3);
SELECT pg_temp.mp_check() AS partition_writes, pg_temp.mp_figures();

-- Events: an insert through the parent, a row moved to another partition
-- (created_at), and a partition's own update.
INSERT INTO mp.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
SELECT '00000000-0000-0000-0000-0000000ee001', b.customer_id, 'pickup', 'completed', now(), now()
  FROM mp.bins b JOIN mp.customers c ON c.id = b.customer_id
 WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL ORDER BY b.bin_number COLLATE "C" LIMIT 1;
UPDATE mp.service_events SET created_at = '1999-06-01'
 WHERE id IN (SELECT id FROM mp.events_rest WHERE created_at > now() - interval '20 days' ORDER BY id LIMIT 3);
SELECT count(*) AS moved_to_old FROM mp.events_old WHERE created_at = '1999-06-01';
UPDATE mp.events_rest SET event_type = 'maintenance'
 WHERE id IN (SELECT id FROM mp.events_rest WHERE created_at > now() - interval '20 days' ORDER BY id DESC LIMIT 2);
SELECT pg_temp.mp_check() AS event_writes, pg_temp.mp_figures();

-- A new partition gets the triggers; its rows count.
CREATE TABLE mp.events_2000s PARTITION OF mp.service_events FOR VALUES FROM ('2000-01-01') TO ('2010-01-01');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'mp.events_2000s'::regclass
   AND tgname LIKE 'wm\_perf\_maintain\_%' ORDER BY 1;
SELECT count(*) AS state_rows_after_create FROM wm_agg_state;
INSERT INTO mp.events_2000s (id, customer_id, event_type, event_status, created_at, updated_at)
SELECT '00000000-0000-0000-0000-0000000ee002', customer_id, 'pickup', 'completed', '2005-01-01', now()
  FROM mp.bins WHERE deleted_at IS NULL ORDER BY bin_number COLLATE "C" LIMIT 1;
SELECT pg_temp.mp_check() AS after_new_partition;

-- ATTACH of a table that has rows and no triggers, then DETACH.
CREATE TABLE mp.bins_extra (LIKE mp.bins INCLUDING DEFAULTS);
ALTER TABLE mp.bins DETACH PARTITION mp.bins_p1;
ALTER TABLE mp.bins_p1 RENAME TO bins_p1_old;
INSERT INTO mp.bins_extra SELECT * FROM mp.bins_p1_old;
ALTER TABLE mp.bins ATTACH PARTITION mp.bins_extra FOR VALUES WITH (MODULUS 2, REMAINDER 1);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'mp.bins_extra'::regclass
   AND tgname LIKE 'wm\_perf\_maintain\_%' ORDER BY 1;
UPDATE mp.bins_extra SET status = 'active' WHERE id IN (SELECT id FROM mp.bins_extra WHERE status <> 'active' ORDER BY id LIMIT 2);
SELECT pg_temp.mp_check() AS after_attach_partition, pg_temp.mp_figures();
ALTER TABLE mp.bins DETACH PARTITION mp.bins_extra;
UPDATE mp.bins_p0 SET fill_level_percent = 10 WHERE id = (SELECT id FROM mp.bins_p0 ORDER BY id LIMIT 1);
SELECT pg_temp.mp_check() AS after_detach, pg_temp.mp_figures();
UPDATE mp.bins_extra SET status = 'retired';
SELECT pg_temp.mp_check() AS detached_writes_count_nothing;
ALTER TABLE mp.bins ATTACH PARTITION mp.bins_extra FOR VALUES WITH (MODULUS 2, REMAINDER 1);
UPDATE mp.bins_p0 SET fill_level_percent = 11 WHERE id = (SELECT id FROM mp.bins_p0 ORDER BY id LIMIT 1);
SELECT pg_temp.mp_check() AS reattached, pg_temp.mp_figures();

-- TRUNCATE of one partition: the others' rows stay counted.
TRUNCATE mp.events_old;
SELECT pg_temp.mp_check() AS after_partition_truncate, pg_temp.mp_figures();
BEGIN;
TRUNCATE mp.bins_extra;
SELECT pg_temp.mp_check() AS truncate_in_transaction, pg_temp.mp_figures() -> 'total' AS total;
ROLLBACK;
SELECT pg_temp.mp_check() AS truncate_rolled_back, pg_temp.mp_figures() -> 'total' AS total;

-- A partition whose maintenance trigger is disabled: no state (calls
-- compute in full), until it is enabled again and a writer rebuilds.
ALTER TABLE mp.bins_p0 DISABLE TRIGGER wm_perf_maintain_bins_upd;
UPDATE mp.bins_p0 SET fill_level_percent = 12 WHERE id = (SELECT id FROM mp.bins_p0 ORDER BY id LIMIT 1);
SELECT pg_temp.mp_check() AS trigger_disabled, pg_temp.mp_figures() -> 'total' AS total;
ALTER TABLE mp.bins_p0 ENABLE ALWAYS TRIGGER wm_perf_maintain_bins_upd;
UPDATE mp.bins_p0 SET fill_level_percent = 13 WHERE id = (SELECT id FROM mp.bins_p0 ORDER BY id LIMIT 1);
SELECT pg_temp.mp_check() AS trigger_enabled_again;

-- DROP TRIGGER of a maintenance trigger on the parent drops the state too.
DROP TRIGGER wm_perf_maintain_bins_del ON mp.bins;
SELECT count(*) AS state_rows_after_drop_trigger FROM wm_agg_state;
-- And no writer builds it again while the trigger is missing.
DELETE FROM mp.bins WHERE id = (SELECT id FROM mp.bins ORDER BY id LIMIT 1);
SELECT pg_temp.mp_check() AS trigger_missing, pg_temp.mp_figures() -> 'total' AS total;

-- Attach makes the missing trigger again.  A customers table with a
-- partition or child is not maintained: calls compute in full.
SELECT * FROM wm_perf_attach(bins => 'mp.bins', customers => 'mp.customers',
							 service_events => 'mp.service_events')
 WHERE wm_perf_attach LIKE 'maintained%';
CREATE TABLE mp.customers_child () INHERITS (mp.customers);
UPDATE mp.bins_p0 SET fill_level_percent = 14 WHERE id = (SELECT id FROM mp.bins_p0 ORDER BY id LIMIT 1);
SELECT pg_temp.mp_check() AS customers_with_a_child;
DROP TABLE mp.customers_child;

SELECT * FROM wm_perf_attach(bins => 'core.bins', customers => 'operations.customers',
							 service_events => 'core.service_events')
 WHERE wm_perf_attach LIKE 'maintained%';
DROP SCHEMA mp CASCADE;
SELECT coalesce((SELECT string_agg(item, ',') FROM wm_statistics_verify()), 'same') AS back_on_core,
	   (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS exact;
RESET wm_perf.cache_enabled;
