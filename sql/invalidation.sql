-- Invalidation at commit, observed through the statistics and the metrics.
-- (Redis contents are checked by the TAP and integration suites.)
-- Invalidations recorded so far, and whether any was delivered since the
-- previous call.  With shared_preload_libraries the worker (or the next
-- reader) delivers after commit and coalesces commits: wait until nothing
-- is pending; the number of deliveries is not a contract, their presence is.
CREATE TEMP TABLE regress_last (delivered bigint);
INSERT INTO regress_last VALUES (0);
CREATE FUNCTION regress_inv() RETURNS TABLE (recorded bigint, delivered_since_last boolean)
LANGUAGE plpgsql AS $$
DECLARE
	d bigint;
BEGIN
	FOR i IN 1 .. 500 LOOP
		EXIT WHEN (SELECT invalidations_pending FROM wm_perf_metrics
					WHERE function_name = 'invalidation') = 0;
		PERFORM pg_sleep(0.01);
	END LOOP;
	SELECT invalidations_recorded, invalidations_delivered INTO recorded, d
	  FROM wm_perf_metrics WHERE function_name = 'invalidation';
	delivered_since_last := d > (SELECT r.delivered FROM regress_last r);
	UPDATE regress_last SET delivered = d;
	RETURN NEXT;
END
$$;
CREATE TEMP TABLE pick AS
	SELECT id FROM core.routes WHERE deleted_at IS NULL AND status = 'active'
	 ORDER BY route_number COLLATE "C" LIMIT 1;

-- Wait for what earlier tests left pending, then start from zero.
SELECT count(*) AS drained FROM regress_inv();
SELECT wm_perf_metrics_reset();
UPDATE regress_last SET delivered = 0;
SELECT wm_route_statistics() -> 'byStatus' -> 'active' AS active_before;
SELECT wm_route_statistics() -> 'byStatus' -> 'active' AS active_cached;

-- A committed change is visible to the very next call.
UPDATE core.routes SET status = 'archived' WHERE id = (SELECT id FROM pick);
SELECT * FROM regress_inv();
SELECT wm_route_statistics() -> 'byStatus' -> 'active' AS active_after_commit;

-- Inside the writing transaction: its own change, computed, not stored.
BEGIN;
UPDATE core.routes SET status = 'active' WHERE id = (SELECT id FROM pick);
SELECT wm_route_statistics() -> 'byStatus' -> 'active' AS active_own_write;
ROLLBACK;
SELECT * FROM regress_inv();
SELECT wm_route_statistics() -> 'byStatus' -> 'active' AS active_after_rollback;

-- ROLLBACK TO SAVEPOINT drops what the subtransaction recorded.
BEGIN;
SAVEPOINT s1;
UPDATE core.routes SET status = 'active' WHERE id = (SELECT id FROM pick);
ROLLBACK TO SAVEPOINT s1;
COMMIT;
SELECT * FROM regress_inv();

-- RELEASE keeps it.
BEGIN;
SAVEPOINT s1;
UPDATE core.routes SET status = 'active' WHERE id = (SELECT id FROM pick);
RELEASE SAVEPOINT s1;
COMMIT;
SELECT * FROM regress_inv();
SELECT wm_route_statistics() -> 'byStatus' -> 'active' AS active_restored;

-- An UPDATE that changes no column a statistic reads records nothing.
UPDATE core.routes SET updated_at = updated_at + interval '1 second';
SELECT * FROM regress_inv();
-- ... while one that does, in a 100-row statement, records one scope.
UPDATE core.routes SET estimated_duration_minutes = estimated_duration_minutes
 WHERE route_number <= 'R000010';
UPDATE core.routes SET estimated_duration_minutes = estimated_duration_minutes + 1;
SELECT * FROM regress_inv();
UPDATE core.routes SET estimated_duration_minutes = estimated_duration_minutes - 1;

-- Customers and service events belong to the bins scope.
SELECT wm_bin_statistics() -> 'total' AS bins_total;
UPDATE operations.customers SET deleted_at = now()
 WHERE id = (SELECT customer_id FROM core.bins WHERE deleted_at IS NULL ORDER BY bin_number COLLATE "C" LIMIT 1);
SELECT wm_bin_statistics() -> 'total' AS bins_total_after_customer_delete;
SELECT (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS bins_exact;
SELECT * FROM regress_inv();

-- INSERT and DELETE.
INSERT INTO core.routes (id, route_number, route_name, territory, route_type, service_day,
						 status, ai_optimized, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-0000000000aa', 'RTEST', 'test route', 'Houston',
		'mixed', 'monday', 'active', false, now(), now());
SELECT wm_route_statistics('Houston') -> 'total' AS houston_with_new;
DELETE FROM core.routes WHERE id = '00000000-0000-0000-0000-0000000000aa';
SELECT wm_route_statistics('Houston') -> 'total' AS houston_without;
SELECT * FROM regress_inv();

-- TRUNCATE fires the statement trigger too (rolled back here).
BEGIN;
TRUNCATE core.service_events;
SELECT wm_bin_statistics() -> 'serviceEventsLast30Days' -> 'total' AS events_after_truncate;
ROLLBACK;
SELECT * FROM regress_inv();

-- wm_cache_flush records scopes like a write does.
SELECT wm_cache_flush('routes');
SELECT wm_cache_flush();
SELECT * FROM regress_inv();

-- With session_replication_role = replica (as logical replication apply
-- runs) the ALWAYS statement triggers and the REPLICA row trigger both
-- fire; the scope is delivered once.
SET session_replication_role = replica;
UPDATE core.routes SET status = 'inactive' WHERE id = (SELECT id FROM pick);
RESET session_replication_role;
SELECT * FROM regress_inv();
SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL) AS exact_after_replica_write;
UPDATE core.routes SET status = 'active' WHERE id = (SELECT id FROM pick);

-- PREPARE TRANSACTION with pending invalidations is refused.
BEGIN;
UPDATE core.routes SET status = status WHERE id = (SELECT id FROM pick);
UPDATE core.routes SET status = 'inactive' WHERE id = (SELECT id FROM pick);
PREPARE TRANSACTION 'regress_wm';
SELECT count(*) AS prepared FROM pg_prepared_xacts;
BEGIN;
SELECT 1;
PREPARE TRANSACTION 'regress_wm_clean';
COMMIT PREPARED 'regress_wm_clean';
