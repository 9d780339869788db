-- Radius lookups: wm_bins_within_radius() and wm_routes_within_radius()
-- return exactly the max_results nearest active, live rows by spheroid
-- distance within the radius, ordered by (distance_m, id).  Every check
-- compares them with a plain PostGIS ground truth computed here.

-- Ground truth: ST_Distance on the spheroid over every active, live row of
-- the table, nearest first, ties by id; the position is part of the row.
CREATE FUNCTION pg_temp.truth_bins(tbl regclass, lat float8, lon float8,
								   radius_km float8, n int)
RETURNS TABLE (pos bigint, id uuid, distance_m float8, bin_number text,
			   customer_id uuid, bin_type text, status text,
			   fill_level_percent int)
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN QUERY EXECUTE format($q$
		SELECT row_number() OVER (ORDER BY t.d, t.id), t.*
		  FROM (SELECT b.id, ST_Distance(b.location::geography, p.pt) AS d,
					   b.bin_number::text, b.customer_id, b.bin_type::text,
					   b.status::text, b.fill_level_percent
				  FROM %s b,
					   (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography AS pt) p
				 WHERE b.status = 'active' AND b.deleted_at IS NULL
				   AND ST_Distance(b.location::geography, p.pt) <= $3 * 1000
				 ORDER BY 2, 1
				 LIMIT $4) t$q$, tbl)
		USING lat, lon, radius_km, n;
END
$$;

CREATE FUNCTION pg_temp.truth_routes(tbl regclass, lat float8, lon float8,
									 radius_km float8, n int, terr text)
RETURNS TABLE (pos bigint, id uuid, distance_m float8, route_number text,
			   route_name text, route_type text, service_day text,
			   territory text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RETURN QUERY EXECUTE format($q$
		SELECT row_number() OVER (ORDER BY t.d, t.id), t.*
		  FROM (SELECT r.id, ST_Distance(r.route_geometry::geography, p.pt) AS d,
					   r.route_number::text, r.route_name, r.route_type::text,
					   r.service_day::text, r.territory::text
				  FROM %s r,
					   (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography AS pt) p
				 WHERE r.status = 'active' AND r.deleted_at IS NULL
				   AND ($5 IS NULL OR r.territory = $5)
				   AND ST_Distance(r.route_geometry::geography, p.pt) <= $3 * 1000
				 ORDER BY 2, 1
				 LIMIT $4) t$q$, tbl)
		USING lat, lon, radius_km, n, terr;
END
$$;

-- Rows returned, rows expected, and rows of either side missing from the
-- other (whole rows, position included: order and ties count).
CREATE FUNCTION pg_temp.check_bins(tbl regclass, lat float8, lon float8,
								   radius_km float8, n int,
								   OUT got bigint, OUT expected bigint,
								   OUT mismatches bigint)
LANGUAGE sql STABLE AS $$
	WITH f AS (SELECT f.pos, f.id, f.distance_m, f.bin_number, f.customer_id,
					  f.bin_type, f.status, f.fill_level_percent
				 FROM wm_bins_within_radius(lat, lon, radius_km, n)
					  WITH ORDINALITY AS f(id, distance_m, bin_number, customer_id,
										   bin_type, status, fill_level_percent, pos)),
		 t AS (SELECT * FROM pg_temp.truth_bins(tbl, lat, lon, radius_km, n))
	SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM t),
		   (SELECT count(*) FROM ((TABLE f EXCEPT ALL TABLE t)
								  UNION ALL (TABLE t EXCEPT ALL TABLE f)) d)
$$;

CREATE FUNCTION pg_temp.check_routes(tbl regclass, lat float8, lon float8,
									 radius_km float8, n int, terr text,
									 OUT got bigint, OUT expected bigint,
									 OUT mismatches bigint)
LANGUAGE sql STABLE AS $$
	WITH f AS (SELECT f.pos, f.id, f.distance_m, f.route_number, f.route_name,
					  f.route_type, f.service_day, f.territory
				 FROM wm_routes_within_radius(lat, lon, radius_km, n, terr)
					  WITH ORDINALITY AS f(id, distance_m, route_number, route_name,
										   route_type, service_day, territory, pos)),
		 t AS (SELECT * FROM pg_temp.truth_routes(tbl, lat, lon, radius_km, n, terr))
	SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM t),
		   (SELECT count(*) FROM ((TABLE f EXCEPT ALL TABLE t)
								  UNION ALL (TABLE t EXCEPT ALL TABLE f)) d)
$$;

-- Centres: cities (London straddles the prime meridian), the Taveuni
-- cluster on the antimeridian seen from its centre and from both sides of
-- 180 degrees, the cluster near the North Pole, the pole itself, and a
-- point with nothing near.
CREATE TEMP TABLE probes (ord int, name text, lat float8, lon float8,
						  territory text);
INSERT INTO probes VALUES
	(1, 'New York', 40.7128, -74.0060, 'New York'),
	(2, 'London', 51.5074, -0.1278, 'London'),
	(3, 'Taveuni centre', -16.8, 179.95, 'Taveuni'),
	(4, 'Taveuni east of 180', -16.8, 179.999, 'Taveuni'),
	(5, 'Taveuni west of 180', -16.8, -179.999, 'Taveuni'),
	(6, 'North Pole cluster', 89.9, 0, 'North Pole'),
	(7, 'North Pole', 90, 0, 'North Pole'),
	(8, 'mid-Atlantic', 0, -30, 'Boston');

-- Bins: exact against the ground truth for every centre, radius and limit.
SELECT p.name, r.radius_km, m.n, c.*
  FROM probes p,
	   (VALUES (1.0), (10.0), (50.0)) r(radius_km),
	   (VALUES (5), (100)) m(n),
	   LATERAL pg_temp.check_bins('core.bins', p.lat, p.lon, r.radius_km, m.n) c
 ORDER BY p.ord, r.radius_km, m.n;

-- A few exact rows, and the ground truth they must equal.
SELECT id, round(distance_m::numeric, 3) AS distance_m, bin_number, customer_id,
	   bin_type, status, fill_level_percent
  FROM wm_bins_within_radius(40.7128, -74.0060, 5, 5)
 ORDER BY 2, 1;
SELECT id, round(distance_m::numeric, 3) AS distance_m, bin_number, customer_id,
	   bin_type, status, fill_level_percent
  FROM pg_temp.truth_bins('core.bins', 40.7128, -74.0060, 5, 5)
 ORDER BY 2, 1;

-- Every bin within 1 km of that centre, in any state, with its distance
-- from ST_DistanceSpheroid (an independent computation): exactly the
-- active, live ones are returned, with the same distances.
SELECT b.bin_number, b.status, b.deleted_at IS NOT NULL AS deleted,
	   round(ST_DistanceSpheroid(b.location,
								 ST_SetSRID(ST_MakePoint(-74.0060, 40.7128), 4326),
								 'SPHEROID["WGS 84",6378137,298.257223563]')::numeric, 3) AS spheroid_m,
	   round(f.distance_m::numeric, 3) AS returned_m
  FROM core.bins b
  LEFT JOIN wm_bins_within_radius(40.7128, -74.0060, 1) f ON f.id = b.id
 WHERE ST_DWithin(b.location::geography, 'SRID=4326;POINT(-74.006 40.7128)'::geography, 1000)
 ORDER BY 4, b.bin_number COLLATE "C";

-- max_results defaults to 100, and caps the result below the candidates.
SELECT count(*) AS default_limit FROM wm_bins_within_radius(40.7128, -74.0060, 20000);
SELECT * FROM pg_temp.check_bins('core.bins', 40.7128, -74.0060, 20000, 100);

-- Across the antimeridian: from either side, the lookup finds the bins on
-- both sides of 180 degrees, i.e. the whole Taveuni cluster.
SELECT p.name, count(*) FILTER (WHERE ST_X(b.location) > 0) AS east_of_180,
	   count(*) FILTER (WHERE ST_X(b.location) < 0) AS west_of_180
  FROM probes p
 CROSS JOIN LATERAL wm_bins_within_radius(p.lat, p.lon, 40, 1000) f
  JOIN core.bins b ON b.id = f.id
 WHERE p.name LIKE 'Taveuni%'
 GROUP BY p.ord, p.name
 ORDER BY p.ord;
SELECT count(*) FILTER (WHERE ST_X(location) > 0) AS east_of_180,
	   count(*) FILTER (WHERE ST_X(location) < 0) AS west_of_180
  FROM core.bins
 WHERE status = 'active' AND deleted_at IS NULL
   AND ST_Y(location) BETWEEN -18 AND -16 AND abs(ST_X(location)) > 179;

-- Around the pole: every longitude, the whole cluster.
SELECT p.name, count(*) AS bins,
	   count(DISTINCT floor((ST_X(b.location) + 180) / 90)) AS quadrants
  FROM probes p
 CROSS JOIN LATERAL wm_bins_within_radius(p.lat, p.lon, 40, 1000) f
  JOIN core.bins b ON b.id = f.id
 WHERE p.name LIKE 'North Pole%'
 GROUP BY p.ord, p.name
 ORDER BY p.ord;
SELECT count(*) AS cluster
  FROM core.bins
 WHERE status = 'active' AND deleted_at IS NULL AND ST_Y(location) > 89;

-- The largest radius and limit cover every active, live bin with a
-- location.
SELECT * FROM pg_temp.check_bins('core.bins', 0, 0, 20037.5, 10000);
SELECT count(*) AS located_active_bins
  FROM core.bins
 WHERE status = 'active' AND deleted_at IS NULL AND location IS NOT NULL;

-- Routes: exact against the ground truth for every centre, radius and
-- limit, for all territories and for the centre's own.
SELECT p.name, t.terr, count(*) AS checks, sum(c.got) AS got,
	   sum(c.expected) AS expected, sum(c.mismatches) AS mismatches
  FROM probes p,
	   (VALUES (2.0), (10.0), (50.0)) r(radius_km),
	   (VALUES (1), (2), (100)) m(n),
	   LATERAL (VALUES (NULL), (p.territory)) t(terr),
	   LATERAL pg_temp.check_routes('core.routes', p.lat, p.lon, r.radius_km, m.n, t.terr) c
 GROUP BY p.ord, p.name, t.terr
 ORDER BY p.ord, t.terr COLLATE "C" NULLS FIRST;
SELECT route_number, territory, round(distance_m::numeric, 3) AS distance_m
  FROM wm_routes_within_radius(42.3601, -71.0589, 20, 100, 'Boston')
 ORDER BY distance_m, id;

-- The territory filter, and routes that are not active or are deleted:
-- test routes around the New York centre.
BEGIN;
INSERT INTO core.routes (id, route_number, route_name, territory, route_type,
						 service_day, status, route_geometry, created_at,
						 updated_at, deleted_at)
SELECT v.id::uuid, v.route_number, 'Test ' || v.route_number, v.territory,
	   v.route_type::core.enum_routes_route_type,
	   v.service_day::core.enum_routes_service_day,
	   v.status::core.enum_routes_status,
	   ST_SetSRID(ST_MakeLine(ST_MakePoint(v.lon, 40.70), ST_MakePoint(v.lon, 40.72)), 4326),
	   '2025-06-01', '2025-06-01', v.deleted_at::timestamptz
  FROM (VALUES
	('00000000-0000-0000-0000-0000000000c1', 'T-JERSEY', 'Jersey City', 'commercial', 'monday', 'active', -74.03, NULL),
	('00000000-0000-0000-0000-0000000000c2', 'T-NO-TERRITORY', NULL, NULL, NULL, 'active', -73.99, NULL),
	('00000000-0000-0000-0000-0000000000c3', 'T-INACTIVE', 'New York', 'mixed', 'friday', 'inactive', -74.006, NULL),
	('00000000-0000-0000-0000-0000000000c4', 'T-ARCHIVED', 'New York', 'mixed', 'friday', 'archived', -74.006, NULL),
	('00000000-0000-0000-0000-0000000000c5', 'T-DELETED', 'New York', 'mixed', 'friday', 'active', -74.006, '2025-06-02')
  ) v(id, route_number, territory, route_type, service_day, status, lon, deleted_at);
SELECT route_number, round(distance_m::numeric, 3) AS distance_m, route_name,
	   route_type, service_day, territory
  FROM wm_routes_within_radius(40.7128, -74.0060, 20)
 ORDER BY distance_m, id;
SELECT route_number, round(distance_m::numeric, 3) AS distance_m, territory
  FROM wm_routes_within_radius(40.7128, -74.0060, 20, 100, 'New York')
 ORDER BY distance_m, id;
SELECT route_number, round(distance_m::numeric, 3) AS distance_m, territory
  FROM wm_routes_within_radius(40.7128, -74.0060, 20, 100, 'Jersey City')
 ORDER BY distance_m, id;
SELECT count(*) AS boston_routes_near_new_york
  FROM wm_routes_within_radius(40.7128, -74.0060, 20, 100, 'Boston');
SELECT t.terr, c.*
  FROM (VALUES (NULL), ('New York'), ('Jersey City')) t(terr),
	   LATERAL pg_temp.check_routes('core.routes', 40.7128, -74.0060, 20, 3, t.terr) c
 ORDER BY t.terr COLLATE "C" NULLS FIRST;
-- Made active, a route appears on the next call.
UPDATE core.routes SET status = 'active' WHERE route_number = 'T-INACTIVE';
SELECT route_number, round(distance_m::numeric, 3) AS distance_m, territory
  FROM wm_routes_within_radius(40.7128, -74.0060, 20, 2, 'New York')
 ORDER BY distance_m, id;
ROLLBACK;

-- Spheroid, not sphere: near the equator a north-south metre is shorter on
-- the spheroid than on the sphere and an east-west one longer.  Two bins
-- about 1.1 km from (0, -30), where nothing else is: plain KNN ("<->", on
-- the sphere) says EAST is nearer, the spheroid says NORTH.  Three more
-- bins share one location (ties, broken by id), and bins that are not
-- active or are soft-deleted sit nearest of all.
BEGIN;
INSERT INTO core.bins (id, bin_number, customer_id, bin_type, status,
					   location, created_at, updated_at, deleted_at)
SELECT v.id::uuid, v.bin_number,
	   (SELECT customer_id FROM core.bins ORDER BY bin_number LIMIT 1),
	   'dumpster', v.status::core.enum_bins_status,
	   ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326),
	   '2025-06-01', '2025-06-01', v.deleted_at::timestamptz
  FROM (VALUES
	('00000000-0000-0000-0000-00000000000e', 'T-EAST', 'active', -29.99, 0.0, NULL),
	('00000000-0000-0000-0000-00000000000a', 'T-NORTH', 'active', -30.0, 0.01005, NULL),
	('00000000-0000-0000-0000-0000000000f3', 'T-TIE-3', 'active', -30.0, -0.02, NULL),
	('00000000-0000-0000-0000-0000000000f1', 'T-TIE-1', 'active', -30.0, -0.02, NULL),
	('00000000-0000-0000-0000-0000000000f2', 'T-TIE-2', 'active', -30.0, -0.02, NULL),
	('00000000-0000-0000-0000-0000000000b1', 'T-MAINTENANCE', 'maintenance', -30.0, 0.001, NULL),
	('00000000-0000-0000-0000-0000000000b2', 'T-RETIRED', 'retired', -30.0, 0.001, NULL),
	('00000000-0000-0000-0000-0000000000b3', 'T-LOST', 'lost', -30.0, 0.001, NULL),
	('00000000-0000-0000-0000-0000000000b4', 'T-DELETED', 'active', -30.0, 0.001, '2025-06-02')
  ) v(id, bin_number, status, lon, lat, deleted_at);
-- Plain KNN on the sphere picks EAST ...
SELECT bin_number,
	   round((location::geography <-> 'SRID=4326;POINT(-30 0)'::geography)::numeric, 3) AS sphere_m,
	   round(ST_Distance(location::geography, 'SRID=4326;POINT(-30 0)'::geography)::numeric, 3) AS spheroid_m
  FROM core.bins
 WHERE status = 'active' AND deleted_at IS NULL
 ORDER BY location::geography <-> 'SRID=4326;POINT(-30 0)'::geography
 LIMIT 2;
-- ... the lookup picks NORTH, and only NORTH is within 1.112 km.
SELECT bin_number, round(distance_m::numeric, 3) AS distance_m
  FROM wm_bins_within_radius(0, -30, 5, 1) ORDER BY distance_m, id;
SELECT bin_number, round(distance_m::numeric, 3) AS distance_m
  FROM wm_bins_within_radius(0, -30, 1.112) ORDER BY distance_m, id;
-- Ties: the smallest ids win the last places; nothing inactive or deleted.
SELECT id, bin_number, round(distance_m::numeric, 3) AS distance_m
  FROM wm_bins_within_radius(0, -30, 5, 4) ORDER BY distance_m, id;
SELECT id, bin_number, round(distance_m::numeric, 3) AS distance_m
  FROM wm_bins_within_radius(0, -30, 5) ORDER BY distance_m, id;
SELECT * FROM pg_temp.check_bins('core.bins', 0, -30, 5, 4);
SELECT * FROM pg_temp.check_bins('core.bins', 0, -30.0, 1.112, 100);
-- A bin made active appears on the next call; deleted, it disappears.
UPDATE core.bins SET status = 'active' WHERE bin_number = 'T-RETIRED';
SELECT bin_number, round(distance_m::numeric, 3) AS distance_m
  FROM wm_bins_within_radius(0, -30, 5, 2) ORDER BY distance_m, id;
UPDATE core.bins SET deleted_at = '2025-06-03' WHERE bin_number = 'T-RETIRED';
SELECT bin_number, round(distance_m::numeric, 3) AS distance_m
  FROM wm_bins_within_radius(0, -30, 5, 2) ORDER BY distance_m, id;
-- A bin without a location is never a result.
UPDATE core.bins SET location = NULL WHERE bin_number = 'T-NORTH';
SELECT bin_number, round(distance_m::numeric, 3) AS distance_m
  FROM wm_bins_within_radius(0, -30, 5, 2) ORDER BY distance_m, id;
ROLLBACK;
SELECT count(*) AS after_rollback FROM wm_bins_within_radius(0, -30, 5);

-- Bad input: SQLSTATE 22023 and a message naming the argument and why.
SELECT v.label, regress_error(v.q) AS error
  FROM (VALUES
	(1, 'lat NaN', $$SELECT * FROM wm_bins_within_radius('NaN', 0, 1)$$),
	(2, 'lat Infinity', $$SELECT * FROM wm_bins_within_radius('Infinity', 0, 1)$$),
	(3, 'lon -Infinity', $$SELECT * FROM wm_bins_within_radius(0, '-Infinity', 1)$$),
	(4, 'radius NaN', $$SELECT * FROM wm_bins_within_radius(0, 0, 'NaN')$$),
	(5, 'radius Infinity', $$SELECT * FROM wm_bins_within_radius(0, 0, 'Infinity')$$),
	(6, 'lat > 90', $$SELECT * FROM wm_bins_within_radius(90.000001, 0, 1)$$),
	(7, 'lat < -90', $$SELECT * FROM wm_bins_within_radius(-91, 0, 1)$$),
	(8, 'lon > 180', $$SELECT * FROM wm_bins_within_radius(0, 180.5, 1)$$),
	(9, 'lon < -180', $$SELECT * FROM wm_bins_within_radius(0, -200, 1)$$),
	(10, 'radius 0', $$SELECT * FROM wm_bins_within_radius(0, 0, 0)$$),
	(11, 'radius < 0', $$SELECT * FROM wm_bins_within_radius(0, 0, -5)$$),
	(12, 'radius > half the Earth', $$SELECT * FROM wm_bins_within_radius(0, 0, 20037.6)$$),
	(13, 'max_results 0', $$SELECT * FROM wm_bins_within_radius(0, 0, 1, 0)$$),
	(14, 'max_results < 0', $$SELECT * FROM wm_bins_within_radius(0, 0, 1, -1)$$),
	(15, 'max_results > 10000', $$SELECT * FROM wm_bins_within_radius(0, 0, 1, 10001)$$),
	(16, 'routes: lat NaN', $$SELECT * FROM wm_routes_within_radius('NaN', 0, 1)$$),
	(17, 'routes: lon > 180', $$SELECT * FROM wm_routes_within_radius(0, 181, 1, 10, 'Boston')$$),
	(18, 'routes: radius 0', $$SELECT * FROM wm_routes_within_radius(0, 0, 0, 10, 'Boston')$$),
	(19, 'routes: radius -Infinity', $$SELECT * FROM wm_routes_within_radius(0, 0, '-Infinity')$$),
	(20, 'routes: max_results 0', $$SELECT * FROM wm_routes_within_radius(0, 0, 1, 0)$$),
	(21, 'routes: max_results > 10000', $$SELECT * FROM wm_routes_within_radius(0, 0, 1, 20000)$$)
  ) v(ord, label, q)
 ORDER BY v.ord;
-- One error in full, with its detail.
SELECT * FROM wm_bins_within_radius(0, 0, 40000);
-- The limits themselves are valid.
SELECT count(*) FROM wm_bins_within_radius(90, 180, 1, 10000);
SELECT count(*) FROM wm_bins_within_radius(-90, -180, 20037.5, 1);
SELECT count(*) FROM wm_routes_within_radius(90, -180, 0.000001, 1);

-- NULL: the bins function is STRICT (no rows); the routes function returns
-- no rows as well, except that a NULL territory means every territory.
SELECT count(*) FROM wm_bins_within_radius(NULL, 0, 1);
SELECT count(*) FROM wm_bins_within_radius(40.7128, -74.0060, 50, NULL);
SELECT count(*) FROM wm_routes_within_radius(NULL, -74.0060, 50);
SELECT count(*) FROM wm_routes_within_radius(40.7128, NULL, 50);
SELECT count(*) FROM wm_routes_within_radius(40.7128, -74.0060, NULL);
SELECT count(*) FROM wm_routes_within_radius(40.7128, -74.0060, 50, NULL);
SELECT count(*) FROM wm_routes_within_radius(40.7128, -74.0060, 50, 100, NULL);
SELECT count(*) FROM wm_routes_within_radius(40.7128, -74.0060, 50);

-- The caller's search_path does not matter: every name is qualified.
CREATE TEMP TABLE bins_before AS
SELECT * FROM wm_bins_within_radius(40.7128, -74.0060, 10, 20);
CREATE TEMP TABLE routes_before AS
SELECT * FROM wm_routes_within_radius(40.7128, -74.0060, 10, 20, 'New York');
SET search_path = pg_catalog;
SELECT count(*) AS rows,
	   count(*) FILTER (WHERE (f.*) IS DISTINCT FROM (b.*)) AS differences
  FROM public.wm_bins_within_radius(40.7128, -74.0060, 10, 20) WITH ORDINALITY f
  FULL JOIN (SELECT *, row_number() OVER () FROM pg_temp.bins_before) b
	ON b.row_number OPERATOR(pg_catalog.=) f.ordinality;
SELECT count(*) AS rows,
	   count(*) FILTER (WHERE (f.*) IS DISTINCT FROM (b.*)) AS differences
  FROM public.wm_routes_within_radius(40.7128, -74.0060, 10, 20, 'New York') WITH ORDINALITY f
  FULL JOIN (SELECT *, row_number() OVER () FROM pg_temp.routes_before) b
	ON b.row_number OPERATOR(pg_catalog.=) f.ordinality;
RESET search_path;

-- Tables with geography and text columns (the schema_public.sql shape):
-- attaching them rebuilds the kept plans; rolling back restores the old.
BEGIN;
CREATE SCHEMA geog;
CREATE TABLE geog.bins AS
SELECT id, bin_number, customer_id, bin_type::text AS bin_type,
	   material::text AS material, status::text AS status,
	   capacity_cubic_yards, fill_level_percent, gps_enabled, sensor_enabled,
	   next_service_date, location::geography(Point, 4326) AS location,
	   created_at, updated_at, deleted_at
  FROM core.bins;
CREATE TABLE geog.routes AS
SELECT id, route_number, route_name, territory, route_type::text AS route_type,
	   service_day::text AS service_day, status::text AS status,
	   estimated_duration_minutes, estimated_distance_miles, ai_optimized,
	   optimization_score,
	   route_geometry::geography(LineString, 4326) AS route_geometry,
	   created_at, updated_at, deleted_at
  FROM core.routes;
SELECT line FROM wm_perf_attach(routes => 'geog.routes', bins => 'geog.bins') AS line
 WHERE line LIKE '%gist%' ORDER BY line COLLATE "C";
SELECT pg_get_indexdef('geog.bins_location_active_gist_idx'::regclass);
SELECT p.name, c.*
  FROM probes p,
	   LATERAL pg_temp.check_bins('geog.bins', p.lat, p.lon, 50, 20) c
 ORDER BY p.ord;
SELECT p.name, c.*
  FROM probes p,
	   LATERAL pg_temp.check_routes('geog.routes', p.lat, p.lon, 50, 20, NULL) c
 ORDER BY p.ord;
-- Rows of the geography table, not of core.bins.
UPDATE geog.bins SET bin_number = 'GEOG-' || bin_number;
SELECT bin_number, round(distance_m::numeric, 3) AS distance_m
  FROM wm_bins_within_radius(40.7128, -74.0060, 5, 3) ORDER BY distance_m, id;
ROLLBACK;
SELECT bin_number, round(distance_m::numeric, 3) AS distance_m
  FROM wm_bins_within_radius(40.7128, -74.0060, 5, 3) ORDER BY distance_m, id;
SELECT * FROM pg_temp.check_bins('core.bins', 40.7128, -74.0060, 50, 100);

-- Calls slower than wm_perf.slow_spatial_threshold are logged and counted
-- (the duration is in the DETAIL, left out by terse verbosity).
SELECT wm_perf_metrics_reset();
SET wm_perf.slow_spatial_threshold = 0;
SET client_min_messages = log;
\set VERBOSITY terse
SELECT count(*) FROM wm_bins_within_radius(40.7128, -74.0060, 5, 10);
SELECT count(*) FROM wm_bins_within_radius(0, -30, 5, 1);
SELECT count(*) FROM wm_routes_within_radius(40.7128, -74.0060, 5, 10, 'New York');
\set VERBOSITY default
RESET client_min_messages;
SET wm_perf.slow_spatial_threshold = -1;
SELECT count(*) FROM wm_bins_within_radius(40.7128, -74.0060, 5, 10);
RESET wm_perf.slow_spatial_threshold;
-- Errors and NULL arguments are not calls.
SELECT regress_error($$SELECT * FROM wm_bins_within_radius(0, 0, 0)$$);
SELECT count(*) FROM wm_routes_within_radius(NULL, 0, 1);
SELECT function_name, calls, slow_calls, avg_time_ms > 0 AS timed,
	   max_time_ms >= avg_time_ms AS max_covers_avg
  FROM wm_perf_metrics
 WHERE function_name LIKE '%radius'
 ORDER BY function_name COLLATE "C";
