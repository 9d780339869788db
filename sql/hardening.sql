-- The edges of the cache protocol and of attach (issue 16): what a writing
-- transaction computes is never stored, attach runs nothing of a table
-- owner's, and the configuration never depends on the caller's search_path.

-- 1. A statistic computed by a transaction that has written anything is
-- computed, never stored: after ROLLBACK a new session gets the truth.
SELECT wm_cache_flush();
-- A data-modifying CTE: the statistic sees the uncommitted UPDATE before any
-- AFTER trigger of wm_perf has fired.
BEGIN;
WITH u AS (UPDATE core.bins SET status = 'retired' WHERE status = 'active' RETURNING 1)
SELECT (SELECT count(*) FROM u) AS retired, wm_bin_statistics() ->> 'active' AS active_inside;
ROLLBACK;
\c
SELECT wm_bin_statistics() ->> 'active' AS active_after_cte_rollback,
	   (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS exact;

-- A function in an UPDATE's SET clause reads the statistic after some rows
-- of the statement changed.
CREATE FUNCTION public.regress_peek() RETURNS integer LANGUAGE sql
	AS $$ SELECT (wm_bin_statistics() ->> 'active')::integer $$;
BEGIN;
UPDATE core.bins SET status = 'retired'
 WHERE status = 'active' AND public.regress_peek() >= 0;
ROLLBACK;
\c
SELECT (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS exact_after_set_clause;

-- An application statement trigger whose name sorts before wm_perf's.
CREATE FUNCTION public.regress_peek_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM wm_bin_statistics();
	RETURN NULL;
END
$$;
CREATE TRIGGER a_regress_peek AFTER UPDATE ON core.bins
	FOR EACH STATEMENT EXECUTE FUNCTION public.regress_peek_trigger();
BEGIN;
UPDATE core.bins SET status = 'retired' WHERE status = 'active';
ROLLBACK;
-- ... and an application row trigger.
DROP TRIGGER a_regress_peek ON core.bins;
CREATE TRIGGER a_regress_peek AFTER UPDATE ON core.bins
	FOR EACH ROW EXECUTE FUNCTION public.regress_peek_trigger();
BEGIN;
UPDATE core.bins SET status = 'retired'
 WHERE id = (SELECT id FROM core.bins WHERE status = 'active' ORDER BY bin_number COLLATE "C" LIMIT 1);
ROLLBACK;
DROP TRIGGER a_regress_peek ON core.bins;
\c
SELECT (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS exact_after_app_triggers;

-- Read-your-own-writes from the first row on: the BEFORE statement trigger
-- marks the scope before the UPDATE changes a row, so a later call in the
-- same statement computes (and sees the write) instead of reading the cache.
SELECT wm_bin_statistics() ->> 'active' AS active_cached;
BEGIN;
WITH u AS (UPDATE core.bins SET status = 'retired'
			WHERE id = (SELECT b.id FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
						 WHERE b.status = 'active' AND b.deleted_at IS NULL AND c.deleted_at IS NULL
						 ORDER BY b.bin_number COLLATE "C" LIMIT 1)
			RETURNING 1)
SELECT (SELECT count(*) FROM u) AS retired, wm_bin_statistics() ->> 'active' AS active_own_write;
ROLLBACK;
SELECT wm_bin_statistics() ->> 'active' AS active_after_rollback;

-- 2. Attach trusts no one's code.  A role owning a table whose status enum
-- has a cast to text that records who ran it.
CREATE ROLE regress_wm_evil;
CREATE SCHEMA regress_evil AUTHORIZATION regress_wm_evil;
SET ROLE regress_wm_evil;
CREATE TABLE regress_evil.calls (who text, what text);
GRANT USAGE ON SCHEMA regress_evil TO PUBLIC;
GRANT INSERT, SELECT ON regress_evil.calls TO PUBLIC;
CREATE TYPE regress_evil.route_status AS ENUM ('active', 'inactive');
CREATE FUNCTION regress_evil.status_text(regress_evil.route_status) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO regress_evil.calls VALUES (current_user, 'cast');
	RETURN 'evil';
END
$$;
CREATE CAST (regress_evil.route_status AS text)
	WITH FUNCTION regress_evil.status_text(regress_evil.route_status);
CREATE FUNCTION regress_evil.noted(text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO regress_evil.calls VALUES (current_user, 'check');
	RETURN true;
END
$$;
CREATE DOMAIN regress_evil.label AS text CHECK (regress_evil.noted(VALUE));
CREATE TYPE regress_evil.geometry AS (x integer);
CREATE TABLE regress_evil.routes (
	id uuid PRIMARY KEY, route_number text, route_name text, territory text,
	route_type text, service_day text, status regress_evil.route_status,
	estimated_duration_minutes integer, estimated_distance_miles numeric,
	ai_optimized boolean, optimization_score numeric,
	route_geometry geometry(LineString, 4326), deleted_at timestamptz);
INSERT INTO regress_evil.routes (id, route_number, route_name, territory, status,
								 ai_optimized, route_geometry)
SELECT md5('evil' || i)::uuid, 'E' || i, 'evil ' || i, 'Houston',
	   CASE WHEN i % 2 = 0 THEN 'active' ELSE 'inactive' END::regress_evil.route_status,
	   false, ST_SetSRID(ST_MakeLine(ST_MakePoint(-95.36, 29.76), ST_MakePoint(-95.35, 29.77)), 4326)
  FROM generate_series(1, 5) i;
RESET ROLE;

-- Named explicitly without the opt-in: refused.
SELECT regress_error($$SELECT wm_perf_attach(routes => 'regress_evil.routes')$$);
-- Found by name (the only table called routes): not attached, a NOTICE.
BEGIN;
DELETE FROM wm_perf_config WHERE role = 'routes';
ALTER TABLE core.routes RENAME TO routes_hidden;
SELECT * FROM wm_perf_attach() WHERE wm_perf_attach LIKE 'table %';
SELECT count(*) AS routes_attached FROM wm_perf_config WHERE role = 'routes';
ROLLBACK;
-- With the opt-in: attached, and still nothing of the owner's runs as the
-- superuser, neither in attach nor in the statistics, the radius lookups or
-- the refresh; the materialized view belongs to the table's owner.
BEGIN;
SELECT * FROM wm_perf_attach(routes => 'regress_evil.routes', allow_other_owners => true)
 WHERE wm_perf_attach LIKE 'table %' OR wm_perf_attach LIKE 'materialized view %route%';
SELECT wm_route_statistics() -> 'byStatus' AS by_status, wm_route_statistics() -> 'total' AS total;
SELECT route_number, service_day FROM wm_routes_within_radius(29.76, -95.36, 10, 2)
 ORDER BY route_number COLLATE "C";
SELECT wm_refresh_statistics();
SELECT status, routes FROM mv_route_statistics ORDER BY status;
SELECT relowner::regrole AS mv_owner FROM pg_class WHERE relname = 'mv_route_statistics';
SELECT count(*) AS owner_code_runs FROM regress_evil.calls;
-- Altered after attach to a type wm_perf refuses: the calls say so (42804).
SET LOCAL ROLE regress_wm_evil;
ALTER TABLE regress_evil.routes ALTER COLUMN route_name TYPE regress_evil.label;
RESET ROLE;
SELECT regress_error('SELECT wm_route_statistics()');
SELECT regress_error($$SELECT count(*) FROM wm_routes_within_radius(29.76, -95.36, 10, 2, 'Houston')$$);
ROLLBACK;
-- Columns are checked by type oid: a domain, and a type merely named geometry.
SET ROLE regress_wm_evil;
CREATE TABLE regress_evil.routes2 (LIKE regress_evil.routes);
ALTER TABLE regress_evil.routes2 ALTER COLUMN route_type TYPE regress_evil.label;
CREATE TABLE regress_evil.routes3 (LIKE regress_evil.routes);
ALTER TABLE regress_evil.routes3 DROP COLUMN route_geometry,
	ADD COLUMN route_geometry regress_evil.geometry;
RESET ROLE;
SELECT regress_error($$SELECT wm_perf_attach(routes => 'regress_evil.routes2', allow_other_owners => true)$$);
SELECT regress_error($$SELECT wm_perf_attach(routes => 'regress_evil.routes3', allow_other_owners => true)$$);
SELECT count(*) AS owner_code_runs FROM regress_evil.calls;
SELECT relid FROM wm_perf_config WHERE role = 'routes';
DROP SCHEMA regress_evil CASCADE;
DROP ROLE regress_wm_evil;

-- 3. The configuration is read without the caller's operators: an "="
-- for text that a caller's schema puts first changes nothing.
CREATE SCHEMA regress_ops;
CREATE FUNCTION regress_ops.always(text, text) RETURNS boolean LANGUAGE sql
	IMMUTABLE AS 'SELECT true';
CREATE OPERATOR regress_ops.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_ops.always);
SET wm_perf.cache_enabled = off;
SELECT (wm_route_statistics() - 'computedAt')::text AS routes_before \gset
\c
SET wm_perf.cache_enabled = off;
SET search_path = regress_ops, pg_catalog, public;
-- The query a radius lookup prepares still casts the geometry column to
-- geography, as the partial GiST index is built on (1.0 read the column's
-- type through a CASE that used this "=").
SET client_min_messages = debug1;
SELECT count(*) AS bins_found FROM wm_bins_within_radius(29.7604, -95.3698, 25, 5);
RESET client_min_messages;
SELECT (wm_route_statistics() - 'computedAt')::text = :'routes_before' AS routes_unchanged;
RESET search_path;
DROP SCHEMA regress_ops CASCADE;
