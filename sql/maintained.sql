-- The maintained aggregates behind wm_bin_statistics() (issue 12): after
-- every kind of change, the maintained statistics equal a full computation
-- in the same snapshot (wm_statistics_verify() returns nothing: it returns
-- a 'state' row when the maintained state cannot serve the call) and the
-- plain-SQL definition (regress_bin_stats).  The cache is off: every call
-- reads the maintained state.
SET wm_perf.cache_enabled = off;
CREATE FUNCTION pg_temp.m_check() RETURNS text LANGUAGE sql AS $$
	SELECT coalesce((SELECT string_agg(item, ',' ORDER BY item) FROM wm_statistics_verify()), 'same')
		   || ' / ' ||
		   CASE WHEN (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) THEN 'exact'
				ELSE 'WRONG ' || (wm_bin_statistics() - 'computedAt')::text END
$$;
SELECT count(*) AS state_rows
  FROM wm_agg_state
 WHERE (bins, customers, service_events) = ('core.bins'::regclass, 'operations.customers'::regclass,
											'core.service_events'::regclass);
SELECT pg_temp.m_check() AS after_attach;

-- Which path a call takes.
SET client_min_messages = debug1;
SELECT (wm_bin_statistics() ->> 'total')::int > 0 AS whole_fleet;
SELECT (wm_bin_statistics((SELECT b.customer_id FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
							 WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL
							 ORDER BY b.bin_number COLLATE "C" LIMIT 1))
		->> 'total')::int > 0 AS one_customer;
BEGIN;
UPDATE core.bins SET fill_level_percent = fill_level_percent
 WHERE bin_number = (SELECT min(bin_number COLLATE "C") FROM core.bins);
SELECT (wm_bin_statistics() ->> 'total')::int > 0 AS in_a_writing_transaction;
ROLLBACK;
RESET client_min_messages;

-- A pickup: a completed service event and a bin's new fill level.
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
SELECT '00000000-0000-0000-0000-00000000e001', b.customer_id, 'pickup', 'completed', now(), now()
  FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
 WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL
 ORDER BY b.bin_number COLLATE "C" LIMIT 1;
UPDATE core.bins SET fill_level_percent = 0
 WHERE bin_number = (SELECT min(bin_number COLLATE "C") FROM core.bins WHERE status = 'active');
SELECT pg_temp.m_check() AS after_pickup;

-- Every column a statistic reads, changed.
UPDATE core.bins SET status = 'maintenance'
 WHERE id IN (SELECT id FROM core.bins WHERE status = 'active' ORDER BY bin_number COLLATE "C" LIMIT 7);
UPDATE core.bins SET bin_type = 'organic', material = NULL
 WHERE id IN (SELECT id FROM core.bins ORDER BY bin_number COLLATE "C" DESC LIMIT 5);
UPDATE core.bins SET gps_enabled = NOT gps_enabled, sensor_enabled = NOT sensor_enabled,
	   capacity_cubic_yards = NULL
 WHERE id IN (SELECT id FROM core.bins ORDER BY id LIMIT 9);
UPDATE core.bins SET fill_level_percent = 85, next_service_date = NULL
 WHERE id IN (SELECT id FROM core.bins ORDER BY id DESC LIMIT 6);
UPDATE core.bins SET fill_level_percent = NULL, next_service_date = current_date - 1
 WHERE id IN (SELECT id FROM core.bins ORDER BY md5(id::text) LIMIT 6);
UPDATE core.bins SET next_service_date = current_date
 WHERE id IN (SELECT id FROM core.bins ORDER BY md5(id::text) DESC LIMIT 6);
SELECT pg_temp.m_check() AS after_bin_columns;

-- A bin moves to another customer; soft delete and its undo; hard delete; insert.
UPDATE core.bins SET customer_id = (SELECT id FROM operations.customers ORDER BY customer_number LIMIT 1)
 WHERE id IN (SELECT id FROM core.bins ORDER BY bin_number COLLATE "C" LIMIT 20 OFFSET 40);
UPDATE core.bins SET deleted_at = now()
 WHERE id IN (SELECT id FROM core.bins ORDER BY bin_number COLLATE "C" LIMIT 30 OFFSET 100);
SELECT pg_temp.m_check() AS after_soft_delete;
UPDATE core.bins SET deleted_at = NULL
 WHERE id IN (SELECT id FROM core.bins ORDER BY bin_number COLLATE "C" LIMIT 10 OFFSET 100);
DELETE FROM core.bins WHERE id IN (SELECT id FROM core.bins ORDER BY bin_number COLLATE "C" LIMIT 3 OFFSET 200);
INSERT INTO core.bins (id, bin_number, customer_id, bin_type, material, status, capacity_cubic_yards,
					   fill_level_percent, next_service_date, created_at, updated_at)
SELECT md5('maintained' || i)::uuid, 'MB' || i,
	   (SELECT id FROM operations.customers ORDER BY customer_number LIMIT 1 OFFSET i),
	   'dumpster', 'steel', 'active', 4.25, i * 10, current_date - i, now(), now()
  FROM generate_series(1, 9) i;
SELECT pg_temp.m_check() AS after_bin_rows;

-- Events: created_at and event_type change, soft delete, delete.
UPDATE core.service_events SET created_at = created_at - interval '25 days'
 WHERE id IN (SELECT id FROM core.service_events ORDER BY id LIMIT 200);
UPDATE core.service_events SET created_at = now() - interval '1 day'
 WHERE id IN (SELECT id FROM core.service_events WHERE created_at < now() - interval '40 days'
			   ORDER BY id LIMIT 50);
UPDATE core.service_events SET event_type = 'complaint'
 WHERE id IN (SELECT id FROM core.service_events ORDER BY id DESC LIMIT 100);
UPDATE core.service_events SET deleted_at = now()
 WHERE id IN (SELECT id FROM core.service_events ORDER BY md5(id::text) LIMIT 100);
DELETE FROM core.service_events WHERE id IN (SELECT id FROM core.service_events ORDER BY md5(id::text) DESC LIMIT 50);
SELECT pg_temp.m_check() AS after_events;

-- Customers: soft delete and restore move all their bins and events;
-- a changed id cascades to their bins and events; a deleted customer's
-- events lose their customer (ON DELETE SET NULL).
UPDATE operations.customers SET deleted_at = now()
 WHERE id IN (SELECT customer_id FROM core.bins ORDER BY bin_number COLLATE "C" LIMIT 25);
SELECT pg_temp.m_check() AS after_customer_soft_delete;
UPDATE operations.customers SET deleted_at = NULL
 WHERE id IN (SELECT customer_id FROM core.bins ORDER BY bin_number COLLATE "C" LIMIT 10);
SELECT pg_temp.m_check() AS after_customer_restore;
UPDATE operations.customers SET id = '00000000-0000-0000-0000-0000000c0001'
 WHERE id = (SELECT customer_id FROM core.bins WHERE deleted_at IS NULL ORDER BY bin_number COLLATE "C" DESC LIMIT 1);
SELECT pg_temp.m_check() AS after_customer_id_change;
DELETE FROM operations.customers c
 WHERE NOT EXISTS (SELECT 1 FROM core.bins b WHERE b.customer_id = c.id)
   AND EXISTS (SELECT 1 FROM core.service_events e WHERE e.customer_id = c.id);
INSERT INTO operations.customers
SELECT ('00000000-0000-0000-0000-0000000c' || lpad(i::text, 4, '0'))::uuid, organization_id,
	   'MC' || i, 'maintained ' || i, status, created_at, updated_at, NULL
  FROM operations.customers, generate_series(2, 3) i
 ORDER BY customer_number LIMIT 2;
SELECT pg_temp.m_check() AS after_customer_rows;

-- Rolled back, a savepoint rolled back, session_replication_role = replica,
-- and a statement big enough to lock the customers table.
BEGIN;
UPDATE core.bins SET status = 'retired' WHERE status = 'active';
ROLLBACK;
BEGIN;
UPDATE core.bins SET status = 'lost' WHERE bin_number = (SELECT min(bin_number COLLATE "C") FROM core.bins);
SAVEPOINT s;
UPDATE core.bins SET status = 'retired' WHERE status = 'active';
DELETE FROM core.service_events WHERE event_type = 'pickup';
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT pg_temp.m_check() AS after_rollbacks;
SET session_replication_role = replica;
UPDATE core.bins SET fill_level_percent = 50 WHERE fill_level_percent IS NULL;
RESET session_replication_role;
UPDATE core.service_events SET updated_at = now();
SELECT pg_temp.m_check() AS after_replica_and_big_update;

-- needingService and the last 30 days in other time zones: half- and
-- quarter-hour offsets, a DST zone, and a zone where it is just after
-- midnight now.  Events exactly at the boundary and a microsecond before.
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
SELECT md5('boundary' || z || d)::uuid,
	   (SELECT id FROM operations.customers WHERE deleted_at IS NULL ORDER BY customer_number LIMIT 1),
	   'inspection', 'completed',
	   ((current_date - 30)::timestamp AT TIME ZONE z) + d * interval '1 microsecond', now()
  FROM unnest(ARRAY['Asia/Kolkata', 'America/St_Johns', 'Pacific/Chatham', 'America/New_York', 'UTC']) z,
	   unnest(ARRAY[-1, 0]) d;
SET TimeZone = 'Asia/Kolkata';
SELECT pg_temp.m_check() AS kolkata;
SET TimeZone = 'America/St_Johns';
SELECT pg_temp.m_check() AS st_johns;
SET TimeZone = 'Pacific/Chatham';
SELECT pg_temp.m_check() AS chatham;
SET TimeZone = 'America/New_York';
SELECT pg_temp.m_check() AS new_york;
-- An offset that puts local time at one minute past midnight.
DO $$
DECLARE
	m integer := (1441 - (extract(hour FROM now() AT TIME ZONE 'UTC') * 60
						  + extract(minute FROM now() AT TIME ZONE 'UTC'))::integer) % 1440;
BEGIN
	IF m > 720 THEN
		m := m - 1440;
	END IF;
	EXECUTE format('SET TIME ZONE INTERVAL %L HOUR TO MINUTE',
				   format('%s%s:%s', CASE WHEN m < 0 THEN '-' ELSE '+' END,
						  lpad((abs(m) / 60)::text, 2, '0'), lpad((abs(m) % 60)::text, 2, '0')));
END
$$;
SELECT to_char(localtime, 'HH24') IN ('00', '01') AS just_after_midnight,
	   pg_temp.m_check() AS at_midnight;
RESET TimeZone;

-- A renamed enum value the statistics group by: the DDL invalidates the
-- state (calls compute in full, exactly), and the next write rebuilds it.
ALTER TYPE core.enum_bins_status RENAME VALUE 'lost' TO 'missing';
SELECT wm_bin_statistics() -> 'byStatus' ? 'missing' AS renamed, pg_temp.m_check() AS after_rename;
UPDATE core.bins SET fill_level_percent = fill_level_percent + 1 WHERE fill_level_percent < 10;
SELECT pg_temp.m_check() AS after_rename_and_a_write;
ALTER TYPE core.enum_bins_status RENAME VALUE 'missing' TO 'lost';
SELECT pg_temp.m_check() AS after_rename_back;
UPDATE core.service_events SET deleted_at = now()
 WHERE id = (SELECT id FROM core.service_events WHERE deleted_at IS NULL ORDER BY id LIMIT 1);
SELECT pg_temp.m_check() AS rebuilt_by_an_event_write;

-- A statement that changes bins and a customer of theirs at once: the
-- customer's trigger would see half-changed bins, so it gives the state up,
-- and the statement's last trigger rebuilds it (nothing pending then).
WITH c AS (UPDATE operations.customers SET deleted_at = now()
			WHERE id = (SELECT b.customer_id FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
						 WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL
						 ORDER BY b.bin_number COLLATE "C" LIMIT 1 OFFSET 3)
			RETURNING id)
UPDATE core.bins SET status = 'lost', fill_level_percent = 5 WHERE customer_id IN (SELECT id FROM c);
SELECT pg_temp.m_check() AS after_customer_and_bins_in_one_statement;
UPDATE core.bins SET fill_level_percent = fill_level_percent + 1 WHERE fill_level_percent < 10;
SELECT pg_temp.m_check() AS rebuilt_after_it;
-- Without a state, a statement writing events and bins rebuilds once, in
-- its last trigger (an earlier one would count the later one's rows twice).
DELETE FROM wm_agg_state;
WITH e AS (INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
		   SELECT '00000000-0000-0000-0000-00000000e002', c.id, 'pickup', 'completed', now(), now()
			 FROM operations.customers c WHERE c.deleted_at IS NULL ORDER BY c.customer_number LIMIT 1
		   RETURNING customer_id)
UPDATE core.bins SET fill_level_percent = 42 WHERE customer_id IN (SELECT customer_id FROM e);
SELECT pg_temp.m_check() AS rebuilt_by_a_two_table_statement;
-- A deferrable foreign key lets a bin name a customer inserted later in the
-- same transaction: the customer's insert must count it.
ALTER TABLE core.bins ALTER CONSTRAINT bins_customer_id_fkey DEFERRABLE INITIALLY DEFERRED;
UPDATE core.bins SET fill_level_percent = fill_level_percent + 1 WHERE fill_level_percent < 10;
BEGIN;
INSERT INTO core.bins (id, bin_number, customer_id, bin_type, status, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-00000000b0de', 'MDEFER', '00000000-0000-0000-0000-0000000c0def',
		'dumpster', 'active', now(), now());
INSERT INTO operations.customers (id, customer_number, status, created_at, updated_at)
SELECT '00000000-0000-0000-0000-0000000c0def', 'MCDEFER', status, now(), now()
  FROM operations.customers LIMIT 1;
COMMIT;
SELECT pg_temp.m_check() AS after_deferred_customer;
ALTER TABLE core.bins ALTER CONSTRAINT bins_customer_id_fkey NOT DEFERRABLE;
UPDATE core.bins SET fill_level_percent = fill_level_percent + 1 WHERE fill_level_percent < 10;
SELECT pg_temp.m_check() AS after_not_deferrable;

-- Writes keep working whatever DDL did to what the statistics read: a
-- renamed 'active', a NULL created_at, a column wm_perf refuses.
BEGIN;
ALTER TYPE core.enum_bins_status RENAME VALUE 'active' TO 'in_use';
UPDATE core.bins SET fill_level_percent = 7 WHERE bin_number = (SELECT min(bin_number COLLATE "C") FROM core.bins);
ROLLBACK;
BEGIN;
ALTER TABLE core.service_events ALTER COLUMN created_at DROP NOT NULL;
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
SELECT '00000000-0000-0000-0000-00000000e003', id, 'pickup', 'completed', NULL, now()
  FROM operations.customers WHERE deleted_at IS NULL ORDER BY customer_number LIMIT 1;
SELECT count(*) AS null_created_at FROM core.service_events WHERE created_at IS NULL;
ROLLBACK;
-- A column of a type with an implicit cast of its owner's: the writers'
-- triggers stop maintaining (nothing of the owner's runs as the extension's
-- owner), the statistics say 42804 as they did in 1.0, writes go on.
CREATE TABLE public.regress_cast_calls (who text);
CREATE TYPE public.regress_flag AS (v boolean);
CREATE FUNCTION public.regress_flag_bool(public.regress_flag) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.regress_cast_calls VALUES (current_user);
	RETURN true;
END
$$;
CREATE CAST (public.regress_flag AS boolean) WITH FUNCTION public.regress_flag_bool(public.regress_flag) AS IMPLICIT;
BEGIN;
ALTER TABLE core.bins RENAME COLUMN gps_enabled TO gps_enabled_old;
ALTER TABLE core.bins ADD COLUMN gps_enabled public.regress_flag DEFAULT ROW(true);
UPDATE core.bins SET fill_level_percent = 8 WHERE bin_number = (SELECT min(bin_number COLLATE "C") FROM core.bins);
SELECT count(*) AS owner_casts_run FROM public.regress_cast_calls;
SELECT regress_error('SELECT wm_bin_statistics()');
ROLLBACK;
DROP CAST (public.regress_flag AS boolean);
DROP FUNCTION public.regress_flag_bool(public.regress_flag);
DROP TYPE public.regress_flag;
DROP TABLE public.regress_cast_calls;
UPDATE core.bins SET fill_level_percent = fill_level_percent + 1 WHERE fill_level_percent < 10;
SELECT pg_temp.m_check() AS after_the_refused_column;

-- TRUNCATE, on copies without foreign keys (a bin whose customer does not
-- exist counts nothing, and counts again when the customer comes back).
CREATE SCHEMA m;
CREATE TABLE m.customers AS SELECT * FROM operations.customers;
CREATE TABLE m.bins AS SELECT * FROM core.bins;
CREATE TABLE m.service_events AS SELECT * FROM core.service_events;
ALTER TABLE m.customers ADD PRIMARY KEY (id);
SELECT * FROM wm_perf_attach(bins => 'm.bins', customers => 'm.customers',
							 service_events => 'm.service_events')
 WHERE wm_perf_attach LIKE 'maintained%';
SELECT (SELECT count(*) FROM wm_statistics_verify()) AS differences,
	   (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS same_as_core;
TRUNCATE m.service_events;
SELECT (SELECT count(*) FROM wm_statistics_verify()) AS differences,
	   wm_bin_statistics() -> 'serviceEventsLast30Days' -> 'total' AS events_after_truncate;
INSERT INTO m.service_events SELECT * FROM core.service_events;
CREATE TABLE m.saved AS SELECT * FROM m.customers;
TRUNCATE m.customers;
SELECT (SELECT count(*) FROM wm_statistics_verify()) AS differences,
	   wm_bin_statistics() -> 'total' AS bins_without_customers;
INSERT INTO m.customers SELECT * FROM m.saved;
SELECT (SELECT count(*) FROM wm_statistics_verify()) AS differences,
	   (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS customers_back;
TRUNCATE m.bins;
SELECT (SELECT count(*) FROM wm_statistics_verify()) AS differences,
	   wm_bin_statistics() -> 'total' AS bins_after_truncate;
SELECT * FROM wm_perf_attach(bins => 'core.bins', customers => 'operations.customers',
							 service_events => 'core.service_events')
 WHERE wm_perf_attach LIKE 'maintained%';
DROP SCHEMA m CASCADE;
SELECT pg_temp.m_check() AS back_on_core;

-- The fold keeps the sums: one row per group afterwards.
UPDATE core.bins SET fill_level_percent = 40 WHERE fill_level_percent = 50;
SELECT wm_statistics_compact() >= 0 AS folded;
SELECT count(*) = count(DISTINCT (status, bin_type, material)) AS one_row_per_group FROM wm_agg_bins;
SELECT pg_temp.m_check() AS after_compact;
SELECT wm_statistics_compact() AS folded_again;

-- A rebuild gives the same state; wm_cache_flush() rebuilds too.
SELECT wm_statistics_rebuild() AS rebuilt;
SELECT pg_temp.m_check() AS after_rebuild;
DELETE FROM wm_agg_state;
SELECT item, maintained, computed IS NOT NULL AS computed FROM wm_statistics_verify();
SELECT wm_cache_flush() > 0 AS flushed;
SELECT pg_temp.m_check() AS after_flush;

-- The maintained tables are their owner's only; a reader needs SELECT on
-- the application tables, and RLS computes under the caller's policies.
CREATE ROLE regress_wm_reader;
GRANT USAGE ON SCHEMA core, operations TO regress_wm_reader;
GRANT SELECT ON core.bins, operations.customers, core.service_events TO regress_wm_reader;
SET ROLE regress_wm_reader;
SELECT regress_error('SELECT count(*) FROM wm_agg_bins');
SELECT regress_error('SELECT wm_statistics_rebuild()');
SELECT regress_error('SELECT wm_statistics_compact()');
SELECT count(*) AS differences FROM wm_statistics_verify();
RESET ROLE;
REVOKE SELECT ON core.service_events FROM regress_wm_reader;
SET ROLE regress_wm_reader;
SELECT regress_error('SELECT wm_bin_statistics()');
RESET ROLE;
GRANT SELECT ON core.service_events TO regress_wm_reader;
ALTER TABLE core.bins ENABLE ROW LEVEL SECURITY;
CREATE POLICY regress_active ON core.bins TO regress_wm_reader USING (status = 'active');
SET ROLE regress_wm_reader;
SELECT item FROM wm_statistics_verify();
SELECT wm_bin_statistics() -> 'byStatus' AS policy_applied;
RESET ROLE;
DROP POLICY regress_active ON core.bins;
ALTER TABLE core.bins DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON core.bins, operations.customers, core.service_events FROM regress_wm_reader;
REVOKE USAGE ON SCHEMA core, operations FROM regress_wm_reader;
DROP ROLE regress_wm_reader;
SELECT pg_temp.m_check() AS at_end;
