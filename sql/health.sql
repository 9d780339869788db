-- Latency histograms of wm_perf_metrics and wm_perf_health(): exact counts
-- after known calls, the histogram's shape (cumulative, +Inf equal to the
-- count, the longest call in the highest non-empty bucket), Prometheus'
-- interpolation on hand-made histograms, and health rows with known values.
--
-- Two expected files, for an unavoidable difference of the server:
-- health.out without pg_stat_statements in shared_preload_libraries (the
-- slow_statements row then says it is not loaded), health_1.out with it
-- (the row counts one known slow statement).

-- Nothing pending from earlier tests, both scopes invalidated, from zero.
CREATE FUNCTION regress_drain() RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 500 LOOP
		EXIT WHEN (SELECT invalidations_pending FROM wm_perf_metrics
					WHERE function_name = 'invalidation') = 0;
		PERFORM pg_sleep(0.01);
	END LOOP;
	RETURN (SELECT invalidations_pending FROM wm_perf_metrics
			 WHERE function_name = 'invalidation');
END
$$;
SELECT wm_cache_flush();
SELECT regress_drain() AS pending;
SELECT wm_perf_metrics_reset();

-- The histogram columns: none for invalidation; bounds 0.5 ms to 5 s, +Inf.
SELECT function_name, latency_count, latency_sum_ms, latency_le_ms, latency_buckets
  FROM wm_perf_metrics ORDER BY function_name COLLATE "C";

-- No call yet: the p95 rows have no value and no verdict.
SELECT check_name, value, target, ok FROM wm_perf_health()
 WHERE check_name LIKE '%p95%' ORDER BY check_name COLLATE "C";

-- Known calls: 3 + 2 statistics (a miss, then hits), 4 + 1 radius lookups.
-- A lookup that raises an error and one with a NULL argument are not calls.
SELECT count(*) FROM (SELECT wm_route_statistics() FROM generate_series(1, 3)) s;
SELECT count(*) FROM (SELECT wm_bin_statistics() FROM generate_series(1, 2)) s;
SELECT count(*) FROM generate_series(1, 4) i, wm_bins_within_radius(29.7604, -95.3698, i, 5);
SELECT count(*) FROM wm_routes_within_radius(29.7604, -95.3698, 20, 10);
SELECT regress_error($$SELECT * FROM wm_bins_within_radius(91, 0, 1)$$);
SELECT count(*) FROM wm_bins_within_radius(NULL, 0, 1);

SELECT function_name, calls, latency_count, latency_buckets[14] AS inf_bucket,
	   (SELECT bool_and(a <= b) FROM unnest(latency_buckets[1:13], latency_buckets[2:14]) u(a, b)) AS cumulative,
	   round(latency_sum_ms::numeric, 6) = round((avg_time_ms * calls)::numeric, 6) AS sum_is_total_time,
	   -- the longest call lies in the lowest bucket that holds every call
	   (SELECT max_time_ms <= latency_le_ms[k] AND (k = 1 OR max_time_ms > latency_le_ms[k - 1])
		  FROM (SELECT min(i) AS k FROM generate_subscripts(latency_buckets, 1) i
				 WHERE latency_buckets[i] = latency_count) x) AS max_in_last_bucket
  FROM wm_perf_metrics WHERE function_name <> 'invalidation'
 ORDER BY function_name COLLATE "C";

-- The cache hit ratio of the statistics: 3 hits, 2 misses.
SELECT check_name, value, target, ok, detail FROM wm_perf_health()
 WHERE check_name = 'statistics_cache_hit_ratio';

-- The p95 rows are histogram_quantile(0.95) of the summed histograms.
SELECT h.check_name, h.target, m.cum[14] AS calls,
	   h.value = round(_wm_histogram_quantile(0.95, m.le, m.cum)::numeric, 3) AS is_quantile,
	   h.ok = (h.value < CASE h.check_name WHEN 'statistics_p95_ms' THEN 200 ELSE 50 END) AS ok_is_target,
	   h.detail LIKE m.cum[14] || ' calls of %' AS detail_counts_calls
  FROM wm_perf_health() h,
	   LATERAL (SELECT array_agg(b.le_ms ORDER BY b.i) AS le, array_agg(b.n ORDER BY b.i) AS cum
				  FROM (SELECT u.i, max(u.le_ms) AS le_ms, sum(u.n)::bigint AS n
						  FROM wm_perf_metrics,
							   unnest(latency_le_ms, latency_buckets) WITH ORDINALITY u(le_ms, n, i)
						 WHERE function_name LIKE CASE h.check_name WHEN 'statistics_p95_ms'
												  THEN '%statistics' ELSE '%radius' END
						 GROUP BY u.i) b) m
 WHERE h.check_name LIKE '%p95%'
 ORDER BY h.check_name COLLATE "C";

-- Prometheus' histogram_quantile() on hand-made histograms (bounds 1, 2, 5,
-- +Inf): rank q * count, linear inside its bucket, the first from 0.
SELECT q, _wm_histogram_quantile(q, '{1,2,5,Infinity}', '{10,20,40,40}') AS quantile
  FROM unnest(ARRAY[0.1, 0.5, 0.75, 0.95, 1]::float8[]) q ORDER BY q;
-- A rank in the +Inf bucket gives the highest finite bound; empty: NULL.
SELECT _wm_histogram_quantile(0.95, '{1,2,5,Infinity}', '{10,20,30,40}') AS in_inf_bucket,
	   _wm_histogram_quantile(0.95, '{1,2,5,Infinity}', '{0,0,0,0}') AS empty,
	   _wm_histogram_quantile(0.5, '{1,2,5,Infinity}', '{0,0,4,4}') AS third_bucket;
SELECT regress_error($$SELECT _wm_histogram_quantile(1.5, '{1,Infinity}', '{1,1}')$$);
SELECT regress_error($$SELECT _wm_histogram_quantile(0.5, '{1,2}', '{1,1}')$$);
SELECT regress_error($$SELECT _wm_histogram_quantile(0.5, '{1,Infinity}', '{1,1,1}')$$);

-- Buffer hit ratios of the attached tables: a ratio, judged by its target.
SELECT check_name, target, value BETWEEN 0 AND 1 AS is_ratio, ok = (value > target_ratio) AS ok_is_target
  FROM wm_perf_health(), LATERAL (SELECT substr(target, 3)::numeric AS target_ratio) t
 WHERE check_name LIKE '%buffer%' ORDER BY check_name COLLATE "C";

-- Connections: the client backends against max_connections.
SELECT check_name, target, value = round((SELECT count(*) FROM pg_stat_activity
										   WHERE backend_type = 'client backend')::numeric
										 / current_setting('max_connections')::int, 4) AS is_ratio,
	   ok, detail LIKE '% client connections of max_connections ' || current_setting('max_connections') || ' (%' AS detail
  FROM wm_perf_health() WHERE check_name = 'connections_used_ratio';

-- Invalid indexes: a failed CREATE INDEX CONCURRENTLY leaves one on bins.
SELECT check_name, value, target, ok, detail FROM wm_perf_health() WHERE check_name = 'invalid_indexes';
\set VERBOSITY terse
CREATE UNIQUE INDEX CONCURRENTLY regress_health_invalid_idx ON core.bins (status);
\set VERBOSITY default
SELECT check_name, value, target, ok, detail FROM wm_perf_health() WHERE check_name = 'invalid_indexes';
DROP INDEX core.regress_health_invalid_idx;
SELECT check_name, value, ok FROM wm_perf_health() WHERE check_name = 'invalid_indexes';

-- Slow statements: without the extension in the database, no verdict.
BEGIN;
SET LOCAL client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_stat_statements;
RESET client_min_messages;
SELECT check_name, value, target, ok, detail FROM wm_perf_health() WHERE check_name = 'slow_statements';
ROLLBACK;

-- With the extension: not loaded (health.out), or one statement of this
-- database slower than 250 ms since the reset, the pg_sleep (health_1.out).
SELECT NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements') AS create_pgss \gset
BEGIN;
\if :create_pgss
CREATE EXTENSION pg_stat_statements;
\endif
SELECT EXISTS (SELECT FROM pg_settings WHERE name = 'pg_stat_statements.max') AS pgss_loaded \gset
\if :pgss_loaded
SELECT count(*) AS reset FROM pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0);
SELECT pg_sleep(0.3);
\endif
SELECT check_name, value, target, ok,
	   regexp_replace(regexp_replace(detail, 'queryid -?[0-9]+, mean [0-9.]+ ms', 'queryid Q, mean M ms'),
					  'of the [0-9]+ statements', 'of the N statements') AS detail
  FROM wm_perf_health(250) WHERE check_name = 'slow_statements';
ROLLBACK;

-- Every row, in order; bad thresholds are 22023, NULL gives no row.
SELECT check_name, target FROM wm_perf_health();
SELECT regress_error($$SELECT * FROM wm_perf_health('NaN')$$);
SELECT regress_error($$SELECT * FROM wm_perf_health(-1)$$);
SELECT count(*) AS null_threshold FROM wm_perf_health(NULL);

-- Readable by pg_monitor; not by PUBLIC.
CREATE ROLE regress_wm_monitor IN ROLE pg_monitor;
CREATE ROLE regress_wm_nobody;
SET ROLE regress_wm_monitor;
SELECT count(*) AS health_rows FROM wm_perf_health();
SELECT count(*) AS metric_rows, sum(latency_count) AS latency_calls FROM wm_perf_metrics;
SET ROLE regress_wm_nobody;
SELECT regress_error($$SELECT * FROM wm_perf_health()$$);
SELECT regress_error($$SELECT * FROM _wm_metrics_latency()$$);
SELECT regress_error($$SELECT latency_count FROM wm_perf_metrics$$);
RESET ROLE;
DROP ROLE regress_wm_monitor, regress_wm_nobody;
DROP FUNCTION regress_drain();
