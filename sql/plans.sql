-- Plans of the radius lookups.  After ANALYZE, the planner itself chooses
-- the partial GiST indexes for the query texts that spatial.c prepares: for
-- custom plans, for the generic plan and for the fast-start plan of a
-- cursor.  No plan is forced (no enable_* setting).
ANALYZE core.bins;
ANALYZE core.routes;

-- At run time: the lookups scan the partial GiST indexes and nothing else
-- (pending scan counts of this transaction; the tenth call of a kept plan
-- runs the generic plan).
CREATE FUNCTION pg_temp.scans() RETURNS TABLE (relation text, scans bigint)
LANGUAGE sql STABLE AS $$
	SELECT c.oid::regclass::text, pg_stat_get_xact_numscans(c.oid)
	  FROM pg_class c
	 WHERE c.oid IN ('core.bins'::regclass, 'core.routes'::regclass)
		OR c.oid IN (SELECT indexrelid FROM pg_index
					  WHERE indrelid IN ('core.bins'::regclass, 'core.routes'::regclass))
$$;
BEGIN;
CREATE TEMP TABLE scans_before AS SELECT * FROM pg_temp.scans();
SELECT count(*) FROM generate_series(1, 10) g,
	   LATERAL wm_bins_within_radius(40.7128 + g / 10000.0, -74.0060, 5, 10);
SELECT count(*) FROM wm_bins_within_radius(-16.8, -179.999, 50, 10000);
SELECT count(*) FROM generate_series(1, 10) g,
	   LATERAL wm_routes_within_radius(40.7128 + g / 10000.0, -74.0060, 5, 10);
SELECT count(*) FROM wm_routes_within_radius(40.7128, -74.0060, 5, 10, 'New York');
SELECT a.relation, a.scans - b.scans AS scans
  FROM pg_temp.scans() a JOIN scans_before b USING (relation)
 ORDER BY a.relation COLLATE "C";
ROLLBACK;

-- EXPLAIN of the query texts that build_query() in spatial.c produces for
-- these tables (it logs them at DEBUG1 when it prepares them), verbatim.
-- $1 is the point, $2 the search radius on the sphere in metres
-- (radius_km * 1000 / 0.994), $3 the territory.
PREPARE bins_q(public.geography, pg_catalog.float8) AS
SELECT t.id::pg_catalog.uuid, public.ST_Distance(t.location::public.geography, $1), t.bin_number::pg_catalog.text, t.customer_id::pg_catalog.uuid, t.bin_type::pg_catalog.text, t.status::pg_catalog.text, t.fill_level_percent::pg_catalog.int4 FROM core.bins t WHERE t.status OPERATOR(pg_catalog.=) 'active' AND t.deleted_at IS NULL AND public.ST_DWithin(t.location::public.geography, $1, $2, false) ORDER BY t.location::public.geography OPERATOR(public.<->) $1;
PREPARE routes_q(public.geography, pg_catalog.float8) AS
SELECT t.id::pg_catalog.uuid, public.ST_Distance(t.route_geometry::public.geography, $1), t.route_number::pg_catalog.text, t.route_name::pg_catalog.text, t.route_type::pg_catalog.text, t.service_day::pg_catalog.text, t.territory::pg_catalog.text FROM core.routes t WHERE t.status OPERATOR(pg_catalog.=) 'active' AND t.deleted_at IS NULL AND public.ST_DWithin(t.route_geometry::public.geography, $1, $2, false) ORDER BY t.route_geometry::public.geography OPERATOR(public.<->) $1;
PREPARE routes_territory_q(public.geography, pg_catalog.float8, pg_catalog.text) AS
SELECT t.id::pg_catalog.uuid, public.ST_Distance(t.route_geometry::public.geography, $1), t.route_number::pg_catalog.text, t.route_name::pg_catalog.text, t.route_type::pg_catalog.text, t.service_day::pg_catalog.text, t.territory::pg_catalog.text FROM core.routes t WHERE t.status OPERATOR(pg_catalog.=) 'active' AND t.deleted_at IS NULL AND t.territory::pg_catalog.text OPERATOR(pg_catalog.=) $3 AND public.ST_DWithin(t.route_geometry::public.geography, $1, $2, false) ORDER BY t.route_geometry::public.geography OPERATOR(public.<->) $1;

-- Custom plans: 5 km and the largest radius around New York.
EXPLAIN (COSTS OFF)
EXECUTE bins_q('SRID=4326;POINT(-74.006 40.7128)', 5030.181086519115);
EXPLAIN (COSTS OFF)
EXECUTE bins_q('SRID=4326;POINT(-74.006 40.7128)', 20158450.704225354);
EXPLAIN (COSTS OFF)
EXECUTE routes_q('SRID=4326;POINT(-74.006 40.7128)', 5030.181086519115);
EXPLAIN (COSTS OFF)
EXECUTE routes_territory_q('SRID=4326;POINT(-74.006 40.7128)', 5030.181086519115, 'New York');

-- The generic plans: the kept plans always use them (CURSOR_OPT_GENERIC_PLAN).
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF)
EXECUTE bins_q('SRID=4326;POINT(-74.006 40.7128)', 5030.181086519115);
EXPLAIN (COSTS OFF)
EXECUTE routes_q('SRID=4326;POINT(-74.006 40.7128)', 5030.181086519115);
EXPLAIN (COSTS OFF)
EXECUTE routes_territory_q('SRID=4326;POINT(-74.006 40.7128)', 5030.181086519115, 'New York');
RESET plan_cache_mode;

-- The fast-start plan of a cursor (DECLARE CURSOR plans with
-- CURSOR_OPT_FAST_PLAN, as spatial.c's SPI_prepare_cursor does).
EXPLAIN (COSTS OFF)
DECLARE bins_c CURSOR FOR
SELECT t.id::pg_catalog.uuid, public.ST_Distance(t.location::public.geography, 'SRID=4326;POINT(-74.006 40.7128)'::public.geography), t.bin_number::pg_catalog.text, t.customer_id::pg_catalog.uuid, t.bin_type::pg_catalog.text, t.status::pg_catalog.text, t.fill_level_percent::pg_catalog.int4 FROM core.bins t WHERE t.status OPERATOR(pg_catalog.=) 'active' AND t.deleted_at IS NULL AND public.ST_DWithin(t.location::public.geography, 'SRID=4326;POINT(-74.006 40.7128)'::public.geography, 5030.181086519115, false) ORDER BY t.location::public.geography OPERATOR(public.<->) 'SRID=4326;POINT(-74.006 40.7128)'::public.geography;

DEALLOCATE bins_q;
DEALLOCATE routes_q;
DEALLOCATE routes_territory_q;

-- Geography columns (the schema_public.sql shape): the index is on the
-- column itself, and the query text uses it without a cast.
BEGIN;
CREATE SCHEMA geog;
CREATE TABLE geog.bins AS
SELECT id, bin_number, customer_id, bin_type::text AS bin_type,
	   material::text AS material, status::text AS status,
	   capacity_cubic_yards, fill_level_percent, gps_enabled, sensor_enabled,
	   next_service_date, location::geography(Point, 4326) AS location,
	   created_at, updated_at, deleted_at
  FROM core.bins;
SELECT line FROM wm_perf_attach(bins => 'geog.bins') AS line
 WHERE line LIKE '%gist%' ORDER BY line COLLATE "C";
ANALYZE geog.bins;
SELECT count(*) FROM wm_bins_within_radius(40.7128, -74.0060, 5, 10);
PREPARE geog_bins_q(public.geography, pg_catalog.float8) AS
SELECT t.id::pg_catalog.uuid, public.ST_Distance(t.location, $1), t.bin_number::pg_catalog.text, t.customer_id::pg_catalog.uuid, t.bin_type::pg_catalog.text, t.status::pg_catalog.text, t.fill_level_percent::pg_catalog.int4 FROM geog.bins t WHERE t.status OPERATOR(pg_catalog.=) 'active' AND t.deleted_at IS NULL AND public.ST_DWithin(t.location, $1, $2, false) ORDER BY t.location OPERATOR(public.<->) $1;
EXPLAIN (COSTS OFF)
EXECUTE geog_bins_q('SRID=4326;POINT(-74.006 40.7128)', 5030.181086519115);
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF)
EXECUTE geog_bins_q('SRID=4326;POINT(-74.006 40.7128)', 5030.181086519115);
RESET plan_cache_mode;
DEALLOCATE geog_bins_q;
ROLLBACK;
