-- Set-up of bench/steady.sh: the bookkeeping of the stale-read checks, the
-- plain-SQL definitions of both statistics as jsonb (copied from
-- test/fixtures/expected_stats.sql, whole fleet), and the one-row matview
-- holding the finished bin statistics (the fairest matview baseline, as in
-- run_bench.sh).
CREATE TABLE bench_mix_done (at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE bench_stale_reads (statistic text NOT NULL, seen bigint, expected bigint,
                                at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE bench_mismatches (at timestamptz NOT NULL DEFAULT clock_timestamp(),
                               wm_bins jsonb, plain_bins jsonb, wm_routes jsonb, plain_routes jsonb);
CREATE TABLE bench_route_expected (v jsonb NOT NULL);

CREATE FUNCTION bench_plain_bin_stats_json() RETURNS jsonb LANGUAGE sql AS $$
	WITH live AS (SELECT b.* FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
				   WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL),
	ev AS (SELECT e.* FROM core.service_events e JOIN operations.customers c ON c.id = e.customer_id
			WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL AND e.created_at >= current_date - 30)
	SELECT jsonb_build_object(
		'total', (SELECT count(*) FROM live),
		'active', (SELECT count(*) FROM live WHERE status = 'active'),
		'byStatus', COALESCE((SELECT jsonb_object_agg(status, n) FROM (SELECT status::text, count(*) n FROM live GROUP BY 1) s), '{}'),
		'byType', COALESCE((SELECT jsonb_object_agg(bin_type, n) FROM (SELECT bin_type::text, count(*) n FROM live GROUP BY 1) s), '{}'),
		'byMaterial', COALESCE((SELECT jsonb_object_agg(material, n) FROM (SELECT material::text, count(*) n FROM live WHERE material IS NOT NULL GROUP BY 1) s), '{}'),
		'smartBins', jsonb_build_object(
			'gpsEnabled', (SELECT count(*) FROM live WHERE gps_enabled),
			'sensorEnabled', (SELECT count(*) FROM live WHERE sensor_enabled),
			'any', (SELECT count(*) FROM live WHERE gps_enabled OR sensor_enabled)),
		'avgFillLevel', (SELECT round(avg(fill_level_percent), 2) FROM live),
		'needingService', (SELECT count(*) FROM live WHERE status = 'active'
							AND (fill_level_percent >= 80 OR next_service_date < current_date)),
		'avgCapacityCubicYards', (SELECT round(avg(capacity_cubic_yards), 2) FROM live),
		'serviceEventsLast30Days', jsonb_build_object(
			'total', (SELECT count(*) FROM ev),
			'byType', COALESCE((SELECT jsonb_object_agg(event_type, n) FROM (SELECT event_type::text, count(*) n FROM ev GROUP BY 1) s), '{}')))
$$;

-- The same for one customer (bench/plain_customer_stats.sql), and the live
-- customers numbered for a random pick.
CREATE FUNCTION bench_plain_customer_stats_json(cust uuid) RETURNS jsonb LANGUAGE sql AS $$
	WITH live AS (SELECT b.* FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
				   WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL AND b.customer_id = cust),
	ev AS (SELECT e.* FROM core.service_events e JOIN operations.customers c ON c.id = e.customer_id
			WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL AND e.created_at >= current_date - 30
			  AND e.customer_id = cust)
	SELECT jsonb_build_object(
		'total', (SELECT count(*) FROM live),
		'active', (SELECT count(*) FROM live WHERE status = 'active'),
		'byStatus', COALESCE((SELECT jsonb_object_agg(status, n) FROM (SELECT status::text, count(*) n FROM live GROUP BY 1) s), '{}'),
		'byType', COALESCE((SELECT jsonb_object_agg(bin_type, n) FROM (SELECT bin_type::text, count(*) n FROM live GROUP BY 1) s), '{}'),
		'byMaterial', COALESCE((SELECT jsonb_object_agg(material, n) FROM (SELECT material::text, count(*) n FROM live WHERE material IS NOT NULL GROUP BY 1) s), '{}'),
		'smartBins', jsonb_build_object(
			'gpsEnabled', (SELECT count(*) FROM live WHERE gps_enabled),
			'sensorEnabled', (SELECT count(*) FROM live WHERE sensor_enabled),
			'any', (SELECT count(*) FROM live WHERE gps_enabled OR sensor_enabled)),
		'avgFillLevel', (SELECT round(avg(fill_level_percent), 2) FROM live),
		'needingService', (SELECT count(*) FROM live WHERE status = 'active'
							AND (fill_level_percent >= 80 OR next_service_date < current_date)),
		'avgCapacityCubicYards', (SELECT round(avg(capacity_cubic_yards), 2) FROM live),
		'serviceEventsLast30Days', jsonb_build_object(
			'total', (SELECT count(*) FROM ev),
			'byType', COALESCE((SELECT jsonb_object_agg(event_type, n) FROM (SELECT event_type::text, count(*) n FROM ev GROUP BY 1) s), '{}')))
$$;
CREATE TABLE bench_customers (n int PRIMARY KEY, id uuid NOT NULL);
INSERT INTO bench_customers SELECT row_number() OVER (ORDER BY id), id
  FROM operations.customers WHERE deleted_at IS NULL;

CREATE FUNCTION bench_plain_route_stats_json() RETURNS jsonb LANGUAGE sql AS $$
	WITH live AS (SELECT * FROM core.routes WHERE deleted_at IS NULL)
	SELECT jsonb_build_object(
		'total', (SELECT count(*) FROM live),
		'byStatus', COALESCE((SELECT jsonb_object_agg(status, n) FROM (SELECT status::text, count(*) n FROM live GROUP BY 1) s), '{}'),
		'byType', COALESCE((SELECT jsonb_object_agg(route_type, n) FROM (SELECT route_type::text, count(*) n FROM live WHERE route_type IS NOT NULL GROUP BY 1) s), '{}'),
		'byServiceDay', (SELECT jsonb_object_agg(d, (SELECT count(*) FROM live WHERE service_day::text = d))
						   FROM unnest(ARRAY['monday','tuesday','wednesday','thursday','friday','saturday','sunday']) d),
		'optimization', jsonb_build_object(
			'aiOptimized', (SELECT count(*) FROM live WHERE ai_optimized),
			'avgOptimizationScore', (SELECT round(avg(optimization_score), 2) FROM live),
			'avgDistanceMiles', (SELECT round(avg(estimated_distance_miles), 2) FROM live),
			'avgDurationMinutes', (SELECT round(avg(estimated_duration_minutes), 2) FROM live)))
$$;

-- The count the bin reads' check starts from: the events that count in
-- serviceEventsLast30Days now, by plain SQL.
CREATE FUNCTION bench_plain_event_count() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM core.service_events e JOIN operations.customers c ON c.id = e.customer_id
	 WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL AND e.created_at >= current_date - 30
$$;

INSERT INTO bench_route_expected SELECT bench_plain_route_stats_json();
CREATE MATERIALIZED VIEW bench_bin_stats_json AS SELECT wm_bin_statistics() AS s;
