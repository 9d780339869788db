-- Statistics: exact values on the fixture, cross-checked against plain SQL,
-- through the cache (miss, then hit) and without Redis.

-- The expected route statistics, computed by hand.
CREATE FUNCTION regress_route_stats(t text) RETURNS jsonb LANGUAGE sql AS $$
	WITH live AS (SELECT * FROM core.routes WHERE deleted_at IS NULL AND (t IS NULL OR territory = t))
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

CREATE FUNCTION regress_bin_stats(cust uuid) RETURNS jsonb LANGUAGE sql AS $$
	WITH live AS (SELECT b.* FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
				   WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL AND (cust IS NULL OR b.customer_id = cust)),
	ev AS (SELECT e.* FROM core.service_events e JOIN operations.customers c ON c.id = e.customer_id
			WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL AND e.created_at >= current_date - 30
			  AND (cust IS NULL OR e.customer_id = cust))
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

SELECT wm_perf_metrics_reset();

-- Global route statistics: the exact value, equal to the hand-made one.
SELECT wm_route_statistics() - 'computedAt' AS routes;
SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL) AS routes_exact;
SELECT wm_route_statistics() ? 'computedAt' AS has_computed_at,
	   (wm_route_statistics() ->> 'computedAt') ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$' AS iso_utc;

-- One territory, an unknown territory (all seven days still listed), NULL.
SELECT wm_route_statistics('Houston') - 'computedAt' AS houston;
SELECT (wm_route_statistics('Houston') - 'computedAt') = regress_route_stats('Houston') AS houston_exact;
SELECT wm_route_statistics('Atlantis') - 'computedAt' AS atlantis;
SELECT (wm_route_statistics(NULL) - 'computedAt') = regress_route_stats(NULL) AS null_is_all;

-- Bin statistics: global and for one live customer, and an unknown one.
SELECT wm_bin_statistics() - 'computedAt' AS bins;
SELECT (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL) AS bins_exact;
SELECT (wm_bin_statistics(c.id) - 'computedAt') = regress_bin_stats(c.id) AS customer_exact,
	   (wm_bin_statistics(c.id) -> 'total')::int > 0 AS customer_has_bins
  FROM operations.customers c
 WHERE c.deleted_at IS NULL AND EXISTS (SELECT 1 FROM core.bins b WHERE b.customer_id = c.id AND b.deleted_at IS NULL)
 ORDER BY c.customer_number COLLATE "C" LIMIT 1;
SELECT wm_bin_statistics('00000000-0000-0000-0000-000000000000') - 'computedAt' AS nobody;

-- The calls above went through Redis: misses first, then hits.
SELECT function_name, calls, cache_hits, cache_misses,
	   cache_bypasses, redis_errors
  FROM wm_perf_metrics WHERE function_name LIKE '%statistics' ORDER BY function_name COLLATE "C";

-- wm_perf.cache_enabled = off: any user may bypass the cache.
SET wm_perf.cache_enabled = off;
SELECT wm_perf_metrics_reset();
SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL) AS exact_cache_off;
SELECT calls, cache_hits, cache_misses, cache_bypasses FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';
RESET wm_perf.cache_enabled;

-- REPEATABLE READ never reads nor stores cached values.
SELECT wm_perf_metrics_reset();
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL) AS exact_rr;
COMMIT;
SELECT calls, cache_hits, cache_misses, cache_bypasses FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';

-- The materialized views give the same totals.
SELECT sum(routes) = (wm_route_statistics() ->> 'total')::bigint AS mv_matches FROM mv_route_statistics;
