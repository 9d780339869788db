/* wm_perf--1.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION wm_perf" to load this file. \quit

/*
 * Configuration: which application tables wm_perf is attached to.  pg_dump
 * keeps its rows (pg_extension_config_dump), so a restored database knows
 * its tables without a manual step.
 */
CREATE TABLE @extschema@.wm_perf_config (
	role	text PRIMARY KEY
		CHECK (role IN ('routes', 'bins', 'customers', 'service_events', 'organizations')),
	relid	regclass NOT NULL,
	attached_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.wm_perf_config', '');
-- Every caller of the statistics resolves the tables through it.
GRANT SELECT ON @extschema@.wm_perf_config TO PUBLIC;
COMMENT ON TABLE @extschema@.wm_perf_config IS
	'Application tables wm_perf is attached to; written by wm_perf_attach()';

/*
 * Application cache keys to delete when a table changes.  key_pattern may
 * contain {column} placeholders, filled from the changed rows (old and new
 * values), and glob characters (* ? [), which make it a pattern deleted with
 * SCAN + UNLINK.
 */
CREATE TABLE @extschema@.wm_cache_rules (
	rule_name	text PRIMARY KEY,
	table_role	text NOT NULL
		CHECK (table_role IN ('routes', 'bins', 'customers', 'service_events', 'organizations')),
	key_pattern	text NOT NULL
		CHECK (key_pattern OPERATOR(pg_catalog.<>) ''
			   AND pg_catalog.length(key_pattern) OPERATOR(pg_catalog.<) 400),
	description	text
);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.wm_cache_rules', '');
-- Every writer's trigger reads the rules.
GRANT SELECT ON @extschema@.wm_cache_rules TO PUBLIC;
COMMENT ON TABLE @extschema@.wm_cache_rules IS
	'Application Redis keys (or glob patterns) deleted at commit when the table changes; {column} placeholders are filled from changed rows';

CREATE FUNCTION @extschema@.wm_perf_version()
RETURNS text
AS 'MODULE_PATHNAME', 'wm_perf_version'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE SECURITY INVOKER;
COMMENT ON FUNCTION @extschema@.wm_perf_version() IS
	'Version of the loaded wm_perf library';

/*
 * Statistics.  VOLATILE: they may write to Redis and report computedAt.
 * PARALLEL UNSAFE: they use the backend's Redis connection.
 */
CREATE FUNCTION @extschema@.wm_route_statistics(territory text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'wm_route_statistics'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
COMMENT ON FUNCTION @extschema@.wm_route_statistics(text) IS
	'Statistics of live routes (optionally of one territory) as jsonb, served from Redis when fresh';

CREATE FUNCTION @extschema@.wm_bin_statistics(customer_id uuid DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'wm_bin_statistics'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
COMMENT ON FUNCTION @extschema@.wm_bin_statistics(uuid) IS
	'Statistics of live bins of live customers (optionally of one customer) as jsonb, served from Redis when fresh';

/*
 * Radius lookups.  STABLE: they read the database only.  PARALLEL RESTRICTED:
 * they update this backend's metrics.
 */
CREATE FUNCTION @extschema@.wm_bins_within_radius(
	lat float8, lon float8, radius_km float8, max_results integer DEFAULT 100)
RETURNS TABLE (id uuid, distance_m float8, bin_number text, customer_id uuid,
			   bin_type text, status text, fill_level_percent integer)
AS 'MODULE_PATHNAME', 'wm_bins_within_radius'
LANGUAGE C STABLE STRICT PARALLEL RESTRICTED SECURITY INVOKER ROWS 100;
COMMENT ON FUNCTION @extschema@.wm_bins_within_radius(float8, float8, float8, integer) IS
	'Active live bins within radius_km of (lat, lon), exactly the max_results nearest by spheroid distance, nearest first';

CREATE FUNCTION @extschema@.wm_routes_within_radius(
	lat float8, lon float8, radius_km float8, max_results integer DEFAULT 100,
	territory text DEFAULT NULL)
RETURNS TABLE (id uuid, distance_m float8, route_number text, route_name text,
			   route_type text, service_day text, territory text)
AS 'MODULE_PATHNAME', 'wm_routes_within_radius'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED SECURITY INVOKER ROWS 100;
COMMENT ON FUNCTION @extschema@.wm_routes_within_radius(float8, float8, float8, integer, text) IS
	'Active live routes within radius_km of (lat, lon), exactly the max_results nearest by spheroid distance, nearest first';

/* The invalidation trigger, attached to the application tables. */
CREATE FUNCTION @extschema@.wm_invalidate_cache()
RETURNS trigger
AS 'MODULE_PATHNAME', 'wm_invalidate_cache'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
COMMENT ON FUNCTION @extschema@.wm_invalidate_cache() IS
	'Statement trigger: records the changed cache scope; invalidation is sent at commit';

CREATE FUNCTION @extschema@.wm_cache_flush(scope text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'wm_cache_flush'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
-- Invalidating everything is an operator's tool: not for PUBLIC.
REVOKE ALL ON FUNCTION @extschema@.wm_cache_flush(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.wm_cache_flush(text) IS
	'Invalidates a cache scope (''routes'', ''bins'') or all scopes and every wm_cache_rules key (NULL) at commit; returns the number of scopes plus rules recorded';

/* Metrics. */
CREATE FUNCTION @extschema@._wm_metrics(
	OUT function_name text, OUT calls bigint, OUT cache_hits bigint,
	OUT local_hits bigint, OUT cache_misses bigint, OUT cache_bypasses bigint, OUT redis_errors bigint,
	OUT total_time_ms float8, OUT max_time_ms float8, OUT slow_calls bigint,
	OUT redis_round_trips bigint, OUT redis_total_ms float8, OUT redis_max_ms float8,
	OUT invalidations_recorded bigint, OUT invalidations_delivered bigint,
	OUT invalidations_failed bigint, OUT invalidations_retried bigint,
	OUT keys_deleted bigint, OUT invalidations_pending bigint,
	OUT cluster_wide boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'wm_perf_metrics'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@._wm_metrics() FROM PUBLIC;

/*
 * _wm_metrics_latency: per function, its latency histogram in Prometheus'
 * form (cumulative counts, the last bucket +Inf and equal to the count).
 * Its own function so that 1.0's _wm_metrics() keeps its shape.
 */
CREATE FUNCTION @extschema@._wm_metrics_latency(
	OUT function_name text, OUT latency_count bigint, OUT latency_sum_ms float8,
	OUT latency_le_ms float8[], OUT latency_buckets bigint[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'wm_perf_metrics_latency'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@._wm_metrics_latency() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._wm_metrics_latency() TO pg_monitor;

CREATE VIEW @extschema@.wm_perf_metrics AS
	SELECT m.function_name, m.calls, m.cache_hits, m.local_hits, m.cache_misses, m.cache_bypasses,
		   m.redis_errors,
		   CASE WHEN m.cache_hits OPERATOR(pg_catalog.+) m.cache_misses OPERATOR(pg_catalog.>) 0
				THEN pg_catalog.round(m.cache_hits::numeric OPERATOR(pg_catalog./)
									  (m.cache_hits OPERATOR(pg_catalog.+) m.cache_misses), 4)
		   END AS hit_ratio,
		   CASE WHEN m.calls OPERATOR(pg_catalog.>) 0
				THEN m.total_time_ms OPERATOR(pg_catalog./) m.calls END AS avg_time_ms,
		   m.max_time_ms, m.slow_calls, m.redis_round_trips,
		   CASE WHEN m.redis_round_trips OPERATOR(pg_catalog.>) 0
				THEN m.redis_total_ms OPERATOR(pg_catalog./) m.redis_round_trips END AS avg_redis_ms,
		   m.redis_max_ms, m.invalidations_recorded, m.invalidations_delivered,
		   m.invalidations_failed, m.invalidations_retried, m.keys_deleted,
		   m.invalidations_pending, m.cluster_wide,
		   l.latency_count, l.latency_sum_ms, l.latency_le_ms, l.latency_buckets
	FROM @extschema@._wm_metrics() m
	LEFT JOIN @extschema@._wm_metrics_latency() l
	  ON l.function_name OPERATOR(pg_catalog.=) m.function_name;
REVOKE ALL ON @extschema@.wm_perf_metrics FROM PUBLIC;
GRANT SELECT ON @extschema@.wm_perf_metrics TO pg_monitor;
GRANT EXECUTE ON FUNCTION @extschema@._wm_metrics() TO pg_monitor;
COMMENT ON VIEW @extschema@.wm_perf_metrics IS
	'Calls, cache hits/misses/bypasses, Redis errors and latency, invalidations, latency histograms (cumulative, Prometheus style); cluster-wide with shared_preload_libraries, else per backend';

CREATE FUNCTION @extschema@.wm_perf_metrics_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'wm_perf_metrics_reset'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@.wm_perf_metrics_reset() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.wm_perf_metrics_reset() IS
	'Resets the counters of wm_perf_metrics';

/*
 * _wm_histogram_quantile: the q-quantile of a cumulative histogram, as
 * Prometheus' histogram_quantile() computes it: linear interpolation inside
 * the bucket the rank q * count falls in (the first bucket starting at 0);
 * the highest finite bound when the rank falls in the +Inf bucket; NULL for
 * an empty histogram.  le: the upper bounds, ascending, the last +Inf;
 * buckets: the cumulative counts, as many; both indexed from 1.
 */
CREATE FUNCTION @extschema@._wm_histogram_quantile(q float8, le float8[], buckets bigint[])
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n		int := cardinality(le);
	rank	float8;
	b		int := 1;
	lo		float8 := 0;
	below	bigint := 0;
BEGIN
	IF q = 'NaN' OR q < 0 OR q > 1 THEN
		RAISE EXCEPTION 'quantile % is not between 0 and 1', q
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF n < 2 OR cardinality(buckets) <> n OR array_lower(le, 1) <> 1
	   OR array_lower(buckets, 1) <> 1 OR le[n] <> 'Infinity' THEN
		RAISE EXCEPTION 'a histogram needs as many cumulative counts as upper bounds, the last bound +Infinity'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF buckets[n] = 0 THEN
		RETURN NULL;
	END IF;
	rank := q * buckets[n];
	WHILE b < n AND buckets[b] < rank LOOP
		b := b + 1;
	END LOOP;
	IF b = n THEN
		RETURN le[n - 1];
	END IF;
	IF b > 1 THEN
		lo := le[b - 1];
		below := buckets[b - 1];
	ELSIF le[1] <= 0 THEN
		RETURN le[1];
	END IF;
	IF buckets[b] = below THEN
		RETURN lo;				-- q = 0 and an empty first bucket
	END IF;
	RETURN lo + (le[b] - lo) * ((rank - below) / (buckets[b] - below));
END
$$;
REVOKE ALL ON FUNCTION @extschema@._wm_histogram_quantile(float8, float8[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._wm_histogram_quantile(float8, float8[], bigint[]) TO pg_monitor;

/*
 * wm_perf_health: the seeds' targets as rows.  Read-only, bounded (the
 * attached tables and their partitions, at most pg_stat_statements.max
 * statements, the backends), catalogue and statistics views only: no lock
 * on an application table.
 */
CREATE FUNCTION @extschema@.wm_perf_health(slow_statement_ms float8 DEFAULT 200)
RETURNS TABLE (check_name text, value numeric, target text, ok boolean, detail text)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL RESTRICTED SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	rels		oid[];
	wide		boolean;
	scope		text;
	hits		bigint;
	misses		bigint;
	bypasses	bigint;
	fns			text[];
	limit_ms	numeric;
	le			float8[];
	cum			bigint[];
	blk_hit		bigint;
	blk_read	bigint;
	pgss		name;
	n_slow		bigint;
	n_all		bigint;
	worst		float8;
	worst_id	bigint;
	worst_calls	bigint;
	in_use		bigint;
	max_conn	int := current_setting('max_connections')::int;
	names		text;
	n_invalid	bigint;
BEGIN
	IF slow_statement_ms = 'NaN' OR slow_statement_ms < 0 OR slow_statement_ms = 'Infinity' THEN
		RAISE EXCEPTION 'slow_statement_ms must be a finite number of milliseconds, 0 or more'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- The attached tables, their partitions and inheritance children.
	WITH RECURSIVE r(oid) AS (
		SELECT c.relid::oid FROM @extschema@.wm_perf_config c
		UNION
		SELECT i.inhrelid FROM pg_inherits i JOIN r ON i.inhparent = r.oid
	)
	SELECT array_agg(r.oid) INTO rels FROM r;

	SELECT bool_and(m.cluster_wide), sum(m.cache_hits), sum(m.cache_misses), sum(m.cache_bypasses)
	  INTO wide, hits, misses, bypasses
	  FROM @extschema@._wm_metrics() m
	 WHERE m.function_name IN ('wm_route_statistics', 'wm_bin_statistics');
	scope := CASE WHEN wide THEN 'cluster-wide' ELSE 'this backend only: wm_perf is not in shared_preload_libraries' END;

	check_name := 'statistics_cache_hit_ratio';
	value := CASE WHEN hits + misses > 0 THEN round(hits::numeric / (hits + misses), 4) END;
	target := '> 0.90';
	ok := value > 0.90;
	detail := format('%s hits, %s misses, %s bypasses of wm_route_statistics and wm_bin_statistics since the last reset (%s)',
					 hits, misses, bypasses, scope);
	RETURN NEXT;

	-- p95 of the summed histograms, interpolated as histogram_quantile() does.
	FOR check_name, target, limit_ms, fns IN
		VALUES ('statistics_p95_ms', '< 200 ms', 200, ARRAY['wm_route_statistics', 'wm_bin_statistics']),
			   ('radius_p95_ms', '< 50 ms', 50, ARRAY['wm_bins_within_radius', 'wm_routes_within_radius'])
	LOOP
		SELECT array_agg(x.le_ms ORDER BY x.i), array_agg(x.n ORDER BY x.i)
		  INTO le, cum
		  FROM (SELECT u.i, max(u.le_ms) AS le_ms, sum(u.n)::bigint AS n
				  FROM @extschema@._wm_metrics_latency() l,
					   unnest(l.latency_le_ms, l.latency_buckets) WITH ORDINALITY u(le_ms, n, i)
				 WHERE l.function_name = ANY (fns)
				 GROUP BY u.i) x;
		value := round(@extschema@._wm_histogram_quantile(0.95, le, cum)::numeric, 3);
		ok := value < limit_ms;
		detail := format('%s calls of %s since the last reset (%s); interpolated within the bucket as Prometheus histogram_quantile() does',
						 cum[cardinality(cum)], array_to_string(fns, ' and '), scope);
		RETURN NEXT;
	END LOOP;

	SELECT sum(s.heap_blks_hit), sum(s.heap_blks_read) INTO blk_hit, blk_read
	  FROM pg_statio_all_tables s WHERE s.relid = ANY (rels);
	check_name := 'table_buffer_hit_ratio';
	value := CASE WHEN blk_hit + blk_read > 0 THEN round(blk_hit::numeric / (blk_hit + blk_read), 4) END;
	target := '> 0.90';
	ok := value > 0.90;
	detail := format('%s heap blocks found in shared buffers, %s read, on %s attached tables and partitions since the statistics reset',
					 coalesce(blk_hit, 0), coalesce(blk_read, 0), coalesce(cardinality(rels), 0));
	RETURN NEXT;

	SELECT sum(s.idx_blks_hit), sum(s.idx_blks_read) INTO blk_hit, blk_read
	  FROM pg_statio_all_indexes s WHERE s.relid = ANY (rels);
	check_name := 'index_buffer_hit_ratio';
	value := CASE WHEN blk_hit + blk_read > 0 THEN round(blk_hit::numeric / (blk_hit + blk_read), 4) END;
	target := '> 0.95';
	ok := value > 0.95;
	detail := format('%s index blocks found in shared buffers, %s read, on the indexes of the attached tables since the statistics reset',
					 coalesce(blk_hit, 0), coalesce(blk_read, 0));
	RETURN NEXT;

	check_name := 'slow_statements';
	target := '= 0';
	value := NULL;
	ok := NULL;
	SELECT e.extnamespace::regnamespace::name INTO pgss
	  FROM pg_extension e WHERE e.extname = 'pg_stat_statements';
	IF pgss IS NULL THEN
		detail := 'pg_stat_statements is not installed in this database';
	ELSE
		BEGIN
			EXECUTE format($q$
				SELECT count(*) FILTER (WHERE s.mean_exec_time > $1), count(*),
					   (pg_catalog.array_agg(s.mean_exec_time ORDER BY s.mean_exec_time DESC))[1],
					   (pg_catalog.array_agg(s.queryid ORDER BY s.mean_exec_time DESC))[1],
					   (pg_catalog.array_agg(s.calls ORDER BY s.mean_exec_time DESC))[1]
				  FROM %I.pg_stat_statements(false) s
				 WHERE s.dbid OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
													  WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
				   AND s.calls OPERATOR(pg_catalog.>) 0$q$, pgss)
			   INTO n_slow, n_all, worst, worst_id, worst_calls
			  USING slow_statement_ms;
			value := n_slow;
			ok := n_slow = 0;
			detail := format('%s of the %s statements of this database in pg_stat_statements have a mean execution time over %s ms',
							 n_slow, n_all, slow_statement_ms)
				   || CASE WHEN n_all > 0
						   THEN format('; the slowest: queryid %s, mean %s ms over %s calls',
									   worst_id, round(worst::numeric, 3), worst_calls)
						   ELSE '' END;
		EXCEPTION
			WHEN object_not_in_prerequisite_state THEN
				detail := 'pg_stat_statements is installed but not loaded: add it to shared_preload_libraries';
			WHEN insufficient_privilege THEN
				detail := 'no privilege to read pg_stat_statements';
		END;
	END IF;
	RETURN NEXT;

	SELECT count(*) INTO in_use FROM pg_stat_activity a WHERE a.backend_type = 'client backend';
	check_name := 'connections_used_ratio';
	value := round(in_use::numeric / max_conn, 4);
	target := '< 0.80';
	ok := value < 0.80;
	detail := format('%s client connections of max_connections %s (%s reserved for superusers)',
					 in_use, max_conn, current_setting('superuser_reserved_connections'));
	RETURN NEXT;

	SELECT count(*), string_agg(x.name, ', ' ORDER BY x.name) FILTER (WHERE x.nr <= 10)
	  INTO n_invalid, names
	  FROM (SELECT i.indexrelid::regclass::text AS name,
				   row_number() OVER (ORDER BY i.indexrelid::regclass::text) AS nr
			  FROM pg_index i
			 WHERE i.indrelid = ANY (rels) AND NOT i.indisvalid) x;
	check_name := 'invalid_indexes';
	value := n_invalid;
	target := '= 0';
	ok := n_invalid = 0;
	detail := CASE WHEN n_invalid = 0 THEN 'no invalid index on the attached tables'
				   ELSE 'invalid (a failed CREATE INDEX CONCURRENTLY, or one still being built): ' || names
						|| CASE WHEN n_invalid > 10 THEN format(' and %s more', n_invalid - 10) ELSE '' END
			  END;
	RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION @extschema@.wm_perf_health(float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.wm_perf_health(float8) TO pg_monitor;
COMMENT ON FUNCTION @extschema@.wm_perf_health(float8) IS
	'The health targets as rows (check_name, value, target, ok, detail): statistics cache hit ratio, p95 of the statistics and radius calls, buffer hit ratios of the attached tables, slow statements, connections, invalid indexes';

/*
 * _wm_index_signature: the access method, keys and predicate of an index
 * definition, without its name and table, so that an equivalent index made
 * beforehand under another name is recognised.
 */
CREATE FUNCTION @extschema@._wm_index_signature(def text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.substr(def, pg_catalog.strpos(def, ' USING '));
REVOKE ALL ON FUNCTION @extschema@._wm_index_signature(text) FROM PUBLIC;

/*
 * _wm_check_table: raise the error for a table whose columns wm_perf cannot
 * read safely (missing: 42703; a domain, a user-defined type or any type
 * but the accepted ones: 42804); true if its spatial column is geometry.
 */
CREATE FUNCTION @extschema@._wm_check_table(role text, tbl regclass)
RETURNS boolean
AS 'MODULE_PATHNAME', 'wm_check_table'
LANGUAGE C STABLE STRICT PARALLEL SAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@._wm_check_table(text, regclass) FROM PUBLIC;

/*
 * _wm_ensure_index: create the index unless an equivalent one exists.  The
 * canonical definition is obtained by building the same index on an empty
 * copy of the table, so any index that pg_get_indexdef renders alike counts.
 */
CREATE FUNCTION @extschema@._wm_ensure_index(tbl regclass, idxname text, body text)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	probe_sig	text;
	existing	text;
BEGIN
	EXECUTE format('CREATE TEMP TABLE _wm_probe (LIKE %s)', tbl);
	EXECUTE format('CREATE INDEX _wm_probe_idx ON pg_temp._wm_probe %s', body);
	SELECT @extschema@._wm_index_signature(pg_get_indexdef(i.indexrelid))
	  INTO probe_sig
	  FROM pg_index i
	 WHERE i.indrelid OPERATOR(pg_catalog.=) 'pg_temp._wm_probe'::regclass;
	DROP TABLE pg_temp._wm_probe;

	SELECT c.relname INTO existing
	  FROM pg_index i JOIN pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
	 WHERE i.indrelid OPERATOR(pg_catalog.=) tbl
	   AND i.indisvalid
	   AND @extschema@._wm_index_signature(pg_get_indexdef(i.indexrelid))
		   OPERATOR(pg_catalog.=) probe_sig
	 ORDER BY c.relname COLLATE "C"
	 LIMIT 1;
	IF existing IS NOT NULL THEN
		RETURN format('index %s on %s: already present as %s', idxname, tbl, quote_ident(existing));
	END IF;

	EXECUTE format('CREATE INDEX %I ON %s %s', idxname, tbl, body);
	RETURN format('index %s on %s: created', idxname, tbl);
END;
$$;
REVOKE ALL ON FUNCTION @extschema@._wm_ensure_index(regclass, text, text) FROM PUBLIC;

/*
 * _wm_attach_triggers: the invalidation triggers on a table and on every
 * partition and inheritance child of it (statement triggers fire only for
 * the table a statement names), one line each.
 */
CREATE FUNCTION @extschema@._wm_attach_triggers(tbl regclass, role text)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'wm_attach_triggers'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@._wm_attach_triggers(regclass, text) FROM PUBLIC;

/* _wm_find_table: the unique table of that name outside system schemas. */
CREATE FUNCTION @extschema@._wm_find_table(role text, OUT found regclass, OUT candidates integer)
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.=) 1
				THEN pg_catalog.min(c.oid::oid)::regclass END,
		   pg_catalog.count(*)::integer
	  FROM pg_catalog.pg_class c
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
	 WHERE c.relname OPERATOR(pg_catalog.=) role
	   AND c.relkind IN ('r', 'p')
	   AND n.nspname OPERATOR(pg_catalog.<>) ALL (ARRAY['pg_catalog', 'information_schema', 'pg_toast'])
	   AND n.nspname NOT LIKE 'pg_temp%'
	   AND n.nspname NOT LIKE 'pg_toast_temp%'
$$;
REVOKE ALL ON FUNCTION @extschema@._wm_find_table(text) FROM PUBLIC;

/* Schema of PostGIS, quoted, for dynamic SQL run under a fixed search_path. */
CREATE FUNCTION @extschema@._wm_postgis_schema()
RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.quote_ident(n.nspname)
	  FROM pg_catalog.pg_extension e
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
	 WHERE e.extname OPERATOR(pg_catalog.=) 'postgis'
$$;
REVOKE ALL ON FUNCTION @extschema@._wm_postgis_schema() FROM PUBLIC;

/*
 * _wm_ensure_matview: a materialized view with a unique index (so it can be
 * refreshed CONCURRENTLY), owned by 'owner' (the owner of the table it
 * reads) and populated by REFRESH, which runs its query as that owner: the
 * attaching role's rights never run the query.  Recreated when it reads
 * other tables, has another owner, or was made by another version.  When
 * the owner cannot read every table, the view is left out with a NOTICE.
 */
CREATE FUNCTION @extschema@._wm_ensure_matview(mvname text, query text, keycols text,
											 tables regclass[], owner regrole)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	mv		regclass := pg_catalog.to_regclass(format('@extschema@.%I', mvname));
	action	text := 'created';
	tag		text := 'wm_perf 1.1 materialized view';
BEGIN
	IF mv IS NOT NULL THEN
		IF (SELECT pg_catalog.count(DISTINCT d.refobjid)
			  FROM pg_depend d JOIN pg_rewrite rw ON rw.oid OPERATOR(pg_catalog.=) d.objid
			 WHERE d.classid OPERATOR(pg_catalog.=) 'pg_rewrite'::regclass
			   AND rw.ev_class OPERATOR(pg_catalog.=) mv
			   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_class'::regclass
			   AND d.refobjid OPERATOR(pg_catalog.=) ANY (tables::oid[]))
		   OPERATOR(pg_catalog.=) pg_catalog.cardinality(tables)
		   AND (SELECT c.relowner FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) mv)
			   OPERATOR(pg_catalog.=) owner
		   AND pg_catalog.obj_description(mv, 'pg_class') OPERATOR(pg_catalog.=) tag THEN
			RETURN format('materialized view @extschema@.%s: already present', mvname);
		END IF;
		EXECUTE format('DROP MATERIALIZED VIEW @extschema@.%I', mvname);
		action := 'recreated';
	END IF;
	IF EXISTS (SELECT 1 FROM pg_catalog.unnest(tables) t(rel)
				WHERE NOT pg_catalog.has_table_privilege(owner, t.rel, 'SELECT')) THEN
		RAISE NOTICE 'materialized view @extschema@.% left out: role % cannot read every table it needs', mvname, owner
			USING HINT = 'Grant the owner of the tables SELECT on the others, then call wm_perf_attach() again.';
		RETURN format('materialized view @extschema@.%s: left out', mvname);
	END IF;
	EXECUTE format('CREATE MATERIALIZED VIEW @extschema@.%I AS %s WITH NO DATA', mvname, query);
	EXECUTE format('COMMENT ON MATERIALIZED VIEW @extschema@.%I IS %L', mvname, tag);
	EXECUTE format('CREATE UNIQUE INDEX %I ON @extschema@.%I (%s) NULLS NOT DISTINCT',
				   mvname || '_key_idx', mvname, keycols);
	EXECUTE format('REVOKE ALL ON @extschema@.%I FROM PUBLIC', mvname);
	EXECUTE format('ALTER MATERIALIZED VIEW @extschema@.%I OWNER TO %s', mvname, owner);
	EXECUTE format('REFRESH MATERIALIZED VIEW @extschema@.%I', mvname);
	RETURN format('materialized view @extschema@.%s: %s', mvname, action);
END;
$$;
REVOKE ALL ON FUNCTION @extschema@._wm_ensure_matview(text, text, text, regclass[], regrole) FROM PUBLIC;

/* The owner of a table. */
CREATE FUNCTION @extschema@._wm_owner(tbl regclass)
RETURNS regrole
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN (SELECT c.relowner::regrole FROM pg_catalog.pg_class c
		 WHERE c.oid OPERATOR(pg_catalog.=) tbl);
REVOKE ALL ON FUNCTION @extschema@._wm_owner(regclass) FROM PUBLIC;

/*
 * The dashboard views.  No column is cast: enums stay enums (a cast to text
 * could run a table owner's cast function), and every operator resolves in
 * pg_catalog (the functions' search_path).
 */
CREATE FUNCTION @extschema@._wm_ensure_route_matview(routes regclass)
RETURNS text
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT @extschema@._wm_ensure_matview('mv_route_statistics', pg_catalog.format(
		'SELECT territory::text AS territory, status, route_type, service_day,'
		' count(*) AS routes, count(*) FILTER (WHERE ai_optimized) AS ai_optimized,'
		' sum(optimization_score) AS optimization_score_sum,'
		' count(optimization_score) AS optimization_score_count,'
		' sum(estimated_distance_miles) AS distance_miles_sum,'
		' count(estimated_distance_miles) AS distance_miles_count,'
		' sum(estimated_duration_minutes) AS duration_minutes_sum,'
		' count(estimated_duration_minutes) AS duration_minutes_count'
		' FROM %s WHERE deleted_at IS NULL GROUP BY 1, 2, 3, 4', routes),
		'territory, status, route_type, service_day', ARRAY[routes],
		@extschema@._wm_owner(routes));
END;
REVOKE ALL ON FUNCTION @extschema@._wm_ensure_route_matview(regclass) FROM PUBLIC;

CREATE FUNCTION @extschema@._wm_ensure_bin_matview(bins regclass, customers regclass)
RETURNS text
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT @extschema@._wm_ensure_matview('mv_bin_statistics', pg_catalog.format(
		'SELECT b.customer_id, b.status, b.bin_type, b.material, count(*) AS bins,'
		' count(*) FILTER (WHERE b.gps_enabled) AS gps_enabled,'
		' count(*) FILTER (WHERE b.sensor_enabled) AS sensor_enabled,'
		' count(*) FILTER (WHERE b.gps_enabled OR b.sensor_enabled) AS smart,'
		' sum(b.fill_level_percent) AS fill_level_sum,'
		' count(b.fill_level_percent) AS fill_level_count,'
		' sum(b.capacity_cubic_yards) AS capacity_sum,'
		' count(b.capacity_cubic_yards) AS capacity_count,'
		' count(*) FILTER (WHERE b.status = ''active'' AND'
		'  (b.fill_level_percent >= 80 OR b.next_service_date < current_date)) AS needing_service'
		' FROM %s b JOIN %s c ON c.id = b.customer_id'
		' WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL GROUP BY 1, 2, 3, 4',
		bins, customers),
		'customer_id, status, bin_type, material', ARRAY[bins, customers],
		@extschema@._wm_owner(bins));
END;
REVOKE ALL ON FUNCTION @extschema@._wm_ensure_bin_matview(regclass, regclass) FROM PUBLIC;

CREATE FUNCTION @extschema@._wm_ensure_event_matview(service_events regclass, customers regclass)
RETURNS text
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT @extschema@._wm_ensure_matview('mv_service_event_statistics', pg_catalog.format(
		'SELECT e.customer_id, e.event_type,'
		' (e.created_at >= (current_date - 30)) AS last_30_days, count(*) AS events'
		' FROM %s e JOIN %s c ON c.id = e.customer_id'
		' WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL GROUP BY 1, 2, 3',
		service_events, customers),
		'customer_id, event_type, last_30_days', ARRAY[service_events, customers],
		@extschema@._wm_owner(service_events));
END;
REVOKE ALL ON FUNCTION @extschema@._wm_ensure_event_matview(regclass, regclass) FROM PUBLIC;

/* Drop the invalidation triggers (not partition clones) of a table and its descendants. */
CREATE FUNCTION @extschema@._wm_drop_triggers(tbl regclass)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t	record;
BEGIN
	FOR t IN
		WITH RECURSIVE d(relid) AS (
			SELECT tbl::oid
			UNION SELECT i.inhrelid FROM pg_inherits i JOIN d ON i.inhparent OPERATOR(pg_catalog.=) d.relid)
		SELECT tg.tgrelid::regclass::text COLLATE "C" AS rel, tg.tgname::text COLLATE "C" AS tgname
		  FROM pg_trigger tg JOIN d ON d.relid OPERATOR(pg_catalog.=) tg.tgrelid
		 WHERE tg.tgfoid OPERATOR(pg_catalog.=) '@extschema@.wm_invalidate_cache()'::regprocedure
		   AND tg.tgparentid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
		 ORDER BY 1, 2
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
		RETURN NEXT format('trigger %s on %s: dropped', t.tgname, t.rel);
	END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION @extschema@._wm_drop_triggers(regclass) FROM PUBLIC;

/*
 * The maintained aggregates behind wm_bin_statistics() (maintain.c): delta
 * rows, summed by readers, folded by wm_statistics_compact().  Owned by the
 * extension's owner, readable by no one else; not configuration tables, so
 * pg_dump leaves their rows out (derived data: attach or
 * wm_statistics_rebuild() builds them again).
 */
CREATE TABLE @extschema@.wm_agg_bins (
	status		text,
	bin_type	text,
	material	text,
	n			bigint NOT NULL,
	gps			bigint NOT NULL,
	sensor		bigint NOT NULL,
	smart		bigint NOT NULL,
	fill_sum	numeric NOT NULL,
	fill_n		bigint NOT NULL,
	cap_sum		numeric NOT NULL,
	cap_n		bigint NOT NULL,
	need_fill	bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
CREATE TABLE @extschema@.wm_agg_bins_due (
	bin_type	text,
	material	text,
	due			date NOT NULL,
	n			bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
CREATE TABLE @extschema@.wm_agg_events (
	event_type	text,
	hour		timestamptz NOT NULL,
	n			bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
CREATE TABLE @extschema@.wm_agg_state (
	id			integer PRIMARY KEY CHECK (id = 1),
	bins		oid NOT NULL,
	customers	oid NOT NULL,
	service_events oid NOT NULL,
	built_at	timestamptz NOT NULL,
	signature	text NOT NULL		-- what the statistics read, as built (maintain.c)
);
REVOKE ALL ON @extschema@.wm_agg_bins, @extschema@.wm_agg_bins_due,
	@extschema@.wm_agg_events, @extschema@.wm_agg_state FROM PUBLIC;

CREATE FUNCTION @extschema@._wm_maintain()
RETURNS trigger
AS 'MODULE_PATHNAME', 'wm_maintain'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@._wm_maintain() FROM PUBLIC;

CREATE FUNCTION @extschema@._wm_maintain_triggers(bins regclass, customers regclass,
	service_events regclass)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'wm_maintain_triggers'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@._wm_maintain_triggers(regclass, regclass, regclass) FROM PUBLIC;

CREATE FUNCTION @extschema@.wm_statistics_rebuild()
RETURNS boolean
AS 'MODULE_PATHNAME', 'wm_statistics_rebuild'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@.wm_statistics_rebuild() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.wm_statistics_rebuild() IS
	'Rebuilds the maintained aggregates of bin statistics from the tables (true: maintained)';

CREATE FUNCTION @extschema@.wm_statistics_compact()
RETURNS bigint
AS 'MODULE_PATHNAME', 'wm_statistics_compact'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@.wm_statistics_compact() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.wm_statistics_compact() IS
	'Folds the delta rows of the maintained aggregates into one row per group; returns the rows removed';

CREATE FUNCTION @extschema@.wm_statistics_verify(
	OUT statistic text, OUT item text, OUT maintained jsonb, OUT computed jsonb)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'wm_statistics_verify'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER;
COMMENT ON FUNCTION @extschema@.wm_statistics_verify() IS
	'Compares the maintained bin statistics with a full computation in one snapshot: the differences (none when correct)';

/*
 * Read-your-writes across a hot standby (standby.c): the end of this
 * session's last commit, for wm_perf.min_lsn on a standby.  VOLATILE: it
 * changes at every commit.  PARALLEL RESTRICTED: it reads this backend's
 * own state, which a parallel worker does not have.
 */
CREATE FUNCTION @extschema@.wm_perf_commit_lsn()
RETURNS pg_catalog.pg_lsn
AS 'MODULE_PATHNAME', 'wm_perf_commit_lsn'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED SECURITY INVOKER;
COMMENT ON FUNCTION @extschema@.wm_perf_commit_lsn() IS
	'End LSN of this session''s last commit (NULL before the first): set wm_perf.min_lsn to it on a standby to read your writes';

/*
 * _wm_maintain_attach: the maintenance triggers on the attached bins,
 * customers and service_events (when their columns allow it), then a
 * rebuild.  Without them, or when not eligible, no trigger and no state:
 * calls compute in full.
 */
CREATE FUNCTION @extschema@._wm_maintain_attach()
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	b		regclass := (SELECT c.relid FROM @extschema@.wm_perf_config c WHERE c.role OPERATOR(pg_catalog.=) 'bins');
	cu		regclass := (SELECT c.relid FROM @extschema@.wm_perf_config c WHERE c.role OPERATOR(pg_catalog.=) 'customers');
	e		regclass := (SELECT c.relid FROM @extschema@.wm_perf_config c WHERE c.role OPERATOR(pg_catalog.=) 'service_events');
	line	text;
	why		text;
	changed	boolean := false;
BEGIN
	IF b IS NULL OR cu IS NULL OR e IS NULL THEN
		why := 'bins, customers and service_events are not all attached';
	ELSIF EXISTS (SELECT 1 FROM pg_attribute a
				   WHERE (a.attrelid, a.attname) IN ((cu::oid, 'id'), (b::oid, 'customer_id'),
													 (e::oid, 'customer_id'))
					 AND a.atttypid OPERATOR(pg_catalog.<>) 'uuid'::regtype)
		  OR (SELECT a.atttypid FROM pg_attribute a
			   WHERE a.attrelid OPERATOR(pg_catalog.=) e AND a.attname OPERATOR(pg_catalog.=) 'created_at')
			 OPERATOR(pg_catalog.<>) 'timestamptz'::regtype THEN
		why := 'ids are not uuid or service_events.created_at is not timestamptz';
	END IF;
	IF why IS NOT NULL THEN
		b := NULL; cu := NULL; e := NULL;
	END IF;
	FOR line IN SELECT * FROM @extschema@._wm_maintain_triggers(b, cu, e) LOOP
		changed := true;
		RETURN NEXT line;
	END LOOP;
	IF why IS NOT NULL THEN
		DELETE FROM @extschema@.wm_agg_state;
		RETURN NEXT format('maintained statistics: not maintained (%s)', why);
		RETURN;
	END IF;
	IF NOT changed AND EXISTS (SELECT 1 FROM @extschema@.wm_agg_state s
								WHERE (s.bins, s.customers, s.service_events)
									  OPERATOR(pg_catalog.=) (b::oid, cu::oid, e::oid)) THEN
		RETURN NEXT 'maintained statistics: already present';
		RETURN;
	END IF;
	PERFORM @extschema@.wm_statistics_rebuild();
	RETURN NEXT 'maintained statistics: built';
END;
$$;
REVOKE ALL ON FUNCTION @extschema@._wm_maintain_attach() FROM PUBLIC;

/*
 * wm_perf_attach: record the application tables and create what the workload
 * needs on them.  Idempotent; returns one line per action.
 *
 * Whose tables: a table found by name is attached only if the attaching
 * role owns it; one named in an argument that another role owns is refused
 * (42501) unless allow_other_owners is true; one already recorded in
 * wm_perf_config stays attached.  Nothing of a table owner's runs with the
 * attaching role's rights either way: every column is checked by type oid
 * (_wm_check_table), no column is cast, operators resolve in pg_catalog,
 * index builds run as the table owner (PostgreSQL does that), and the
 * materialized views are owned and populated by the table owner.
 */
CREATE FUNCTION @extschema@.wm_perf_attach(
	routes regclass DEFAULT NULL, bins regclass DEFAULT NULL,
	customers regclass DEFAULT NULL, service_events regclass DEFAULT NULL,
	organizations regclass DEFAULT NULL, allow_other_owners boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	roles	text[] := ARRAY['routes', 'bins', 'customers', 'service_events', 'organizations'];
	given	regclass[] := ARRAY[routes, bins, customers, service_events, organizations];
	tbl		regclass[] := ARRAY[NULL, NULL, NULL, NULL, NULL]::regclass[];
	geom	boolean[] := ARRAY[false, false, false, false, false];
	r		text;
	i		integer;
	f		record;
	old		regclass;
	owner	regrole;
	expr	text;
	t_routes regclass;
	t_bins	regclass;
	t_cust	regclass;
	t_events regclass;
	lost	text[] := '{}';
	line	text;
BEGIN
	/* 1. Resolve every table: argument, then recorded, then by name. */
	FOR i IN 1 .. 5 LOOP
		r := roles[i];
		IF given[i] IS NOT NULL THEN
			tbl[i] := given[i];
			owner := @extschema@._wm_owner(tbl[i]);
			IF owner OPERATOR(pg_catalog.<>) current_user::regrole
			   AND NOT coalesce(wm_perf_attach.allow_other_owners, false) THEN
				RAISE EXCEPTION 'table % is owned by role %, not by %', tbl[i], owner, current_user
					USING ERRCODE = 'insufficient_privilege',
						  DETAIL = 'wm_perf attaches only to tables of the attaching role unless told otherwise.',
						  HINT = 'Attach as the owner of the table, or pass allow_other_owners => true.';
			END IF;
		ELSE
			tbl[i] := (SELECT c.relid FROM @extschema@.wm_perf_config c
						WHERE c.role OPERATOR(pg_catalog.=) r);
			IF tbl[i] IS NULL THEN
				f := @extschema@._wm_find_table(r);
				tbl[i] := f.found;
				IF f.candidates OPERATOR(pg_catalog.>) 1 THEN
					RAISE NOTICE 'table "%" is ambiguous: % tables of that name exist', r, f.candidates
						USING HINT = format('Call wm_perf_attach(%s => ''schema.%s'') to choose one.', r, r);
				ELSIF f.candidates OPERATOR(pg_catalog.=) 0 THEN
					lost := lost || r;
				ELSIF @extschema@._wm_owner(tbl[i]) OPERATOR(pg_catalog.<>) current_user::regrole THEN
					RAISE NOTICE 'table % is owned by role %, not by %: not attached', tbl[i],
						@extschema@._wm_owner(tbl[i]), current_user
						USING HINT = format('Attach as the owner of the table, or call wm_perf_attach(%s => ''%s'', allow_other_owners => true).', r, tbl[i]);
					tbl[i] := NULL;
				END IF;
			END IF;
		END IF;
	END LOOP;
	IF pg_catalog.cardinality(lost) OPERATOR(pg_catalog.>) 0 THEN
		RAISE NOTICE 'wm_perf did not find the tables: %', pg_catalog.array_to_string(lost, ', ')
			USING HINT = 'Create them, then call wm_perf_attach(), naming them if they are not found by name.';
	END IF;

	/* 2. Validate columns and their types before changing anything. */
	FOR i IN 1 .. 5 LOOP
		CONTINUE WHEN tbl[i] IS NULL;
		geom[i] := @extschema@._wm_check_table(roles[i], tbl[i]);
	END LOOP;

	/*
	 * 3. Record the tables.  A role moved to another table leaves no trigger
	 * behind on the one it leaves.
	 */
	FOR i IN 1 .. 5 LOOP
		CONTINUE WHEN tbl[i] IS NULL;
		old := (SELECT c.relid FROM @extschema@.wm_perf_config c
				 WHERE c.role OPERATOR(pg_catalog.=) roles[i]);
		IF old IS NOT NULL AND old OPERATOR(pg_catalog.<>) tbl[i]
		   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) old) THEN
			FOR line IN SELECT * FROM @extschema@._wm_drop_triggers(old) LOOP
				RETURN NEXT line;
			END LOOP;
		END IF;
		INSERT INTO @extschema@.wm_perf_config AS c (role, relid) VALUES (roles[i], tbl[i])
			ON CONFLICT (role) DO UPDATE SET relid = EXCLUDED.relid, attached_at = pg_catalog.now()
			WHERE c.relid OPERATOR(pg_catalog.<>) EXCLUDED.relid;
		IF FOUND THEN
			RETURN NEXT format('table %s: attached as %s', tbl[i], roles[i]);
		END IF;
	END LOOP;
	t_routes := tbl[1];
	t_bins := tbl[2];
	t_cust := tbl[3];
	t_events := tbl[4];

	/* 4. Indexes. */
	IF t_bins IS NOT NULL THEN
		expr := CASE WHEN geom[2]
					 THEN format('((location::%s.geography))', @extschema@._wm_postgis_schema())
					 ELSE '(location)' END;
		RETURN NEXT @extschema@._wm_ensure_index(t_bins, 'bins_location_active_gist_idx',
			format('USING gist %s WHERE status = ''active'' AND deleted_at IS NULL', expr));
		RETURN NEXT @extschema@._wm_ensure_index(t_bins, 'bins_customer_id_status_bin_type_idx',
			'USING btree (customer_id, status, bin_type) WHERE deleted_at IS NULL');
	END IF;
	IF t_routes IS NOT NULL THEN
		expr := CASE WHEN geom[1]
					 THEN format('(route_geometry::%s.geography)', @extschema@._wm_postgis_schema())
					 ELSE 'route_geometry' END;
		RETURN NEXT @extschema@._wm_ensure_index(t_routes, 'routes_route_geometry_active_gist_idx',
			format('USING gist ((%s)) WHERE status = ''active'' AND deleted_at IS NULL', expr));
		RETURN NEXT @extschema@._wm_ensure_index(t_routes, 'routes_route_geometry_territory_gist_idx',
			format('USING gist ((%s), territory) WHERE deleted_at IS NULL', expr));
		RETURN NEXT @extschema@._wm_ensure_index(t_routes, 'routes_territory_status_idx',
			'USING btree (territory, status) WHERE deleted_at IS NULL');
	END IF;
	IF t_events IS NOT NULL THEN
		RETURN NEXT @extschema@._wm_ensure_index(t_events, 'service_events_customer_id_created_at_idx',
			'USING btree (customer_id, created_at) WHERE deleted_at IS NULL');
		RETURN NEXT @extschema@._wm_ensure_index(t_events, 'service_events_created_at_idx',
			'USING btree (created_at) WHERE deleted_at IS NULL');
	END IF;

	/* 5. Materialized views for dashboards, owned by the tables' owners. */
	IF t_routes IS NOT NULL THEN
		RETURN NEXT @extschema@._wm_ensure_route_matview(t_routes);
	END IF;
	IF t_bins IS NOT NULL AND t_cust IS NOT NULL AND t_events IS NOT NULL THEN
		RETURN NEXT @extschema@._wm_ensure_bin_matview(t_bins, t_cust);
		RETURN NEXT @extschema@._wm_ensure_event_matview(t_events, t_cust);
	END IF;

	/*
	 * 6. Invalidation triggers, enabled ALWAYS, on each table and on its
	 * partitions and inheritance children.
	 */
	FOR i IN 1 .. 4 LOOP
		CONTINUE WHEN tbl[i] IS NULL;
		FOR line IN SELECT * FROM @extschema@._wm_attach_triggers(tbl[i], roles[i]) LOOP
			RETURN NEXT line;
		END LOOP;
	END LOOP;

	/* 7. The maintained aggregates of bin statistics (maintain.c). */
	FOR line IN SELECT * FROM @extschema@._wm_maintain_attach() LOOP
		RETURN NEXT line;
	END LOOP;
END;
$$;
COMMENT ON FUNCTION @extschema@.wm_perf_attach(regclass, regclass, regclass, regclass, regclass, boolean) IS
	'Attaches wm_perf to the application tables (NULL = find by name, own tables only): indexes, materialized views, invalidation triggers';

/*
 * wm_perf_detach: remove the invalidation triggers (so that DROP EXTENSION
 * works without CASCADE) and, with drop_indexes, the indexes and
 * materialized views attach created.
 */
CREATE FUNCTION @extschema@.wm_perf_detach(drop_indexes boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t	record;
BEGIN
	FOR t IN
		SELECT tg.tgrelid::regclass::text AS tbl, tg.tgname
		  FROM pg_trigger tg
		 WHERE tg.tgfoid OPERATOR(pg_catalog.=) '@extschema@.wm_invalidate_cache()'::regprocedure
		   -- clones on partitions go with their parent's trigger
		   AND tg.tgparentid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
		 ORDER BY tg.tgrelid::regclass::text COLLATE "C", tg.tgname COLLATE "C"
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, t.tbl);
		RETURN NEXT format('trigger %s on %s: dropped', t.tgname, t.tbl);
	END LOOP;
	RETURN QUERY SELECT * FROM @extschema@._wm_maintain_triggers(NULL, NULL, NULL);
	DELETE FROM @extschema@.wm_agg_state;
	IF drop_indexes THEN
		FOR t IN
			SELECT c.oid::regclass::text AS idx, i.indrelid::regclass::text AS tbl
			  FROM @extschema@.wm_perf_config cfg
			  JOIN pg_index i ON i.indrelid OPERATOR(pg_catalog.=) cfg.relid
			  JOIN pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
			 WHERE c.relname OPERATOR(pg_catalog.=) ANY (ARRAY[
				   'bins_location_active_gist_idx', 'bins_customer_id_status_bin_type_idx',
				   'routes_route_geometry_active_gist_idx', 'routes_route_geometry_territory_gist_idx',
				   'routes_territory_status_idx', 'service_events_customer_id_created_at_idx',
				   'service_events_created_at_idx'])
			 ORDER BY c.relname COLLATE "C"
		LOOP
			EXECUTE format('DROP INDEX %s', t.idx);
			RETURN NEXT format('index %s on %s: dropped', t.idx, t.tbl);
		END LOOP;
		FOR t IN
			SELECT c.oid::regclass::text AS mv
			  FROM pg_class c
			 WHERE c.relnamespace OPERATOR(pg_catalog.=) '@extschema@'::regnamespace
			   AND c.relkind OPERATOR(pg_catalog.=) 'm'
			   AND c.relname OPERATOR(pg_catalog.=) ANY (ARRAY[
				   'mv_route_statistics', 'mv_bin_statistics', 'mv_service_event_statistics'])
			 ORDER BY c.relname COLLATE "C"
		LOOP
			EXECUTE format('DROP MATERIALIZED VIEW %s', t.mv);
			RETURN NEXT format('materialized view %s: dropped', t.mv);
		END LOOP;
	END IF;
END;
$$;
COMMENT ON FUNCTION @extschema@.wm_perf_detach(boolean) IS
	'Removes the invalidation triggers (and with drop_indexes the indexes and materialized views) so DROP EXTENSION needs no CASCADE';

/* wm_refresh_statistics: refresh the dashboard materialized views. */
CREATE FUNCTION @extschema@.wm_refresh_statistics(concurrently boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	mv	regclass;
BEGIN
	FOR mv IN
		SELECT c.oid::regclass
		  FROM pg_class c
		 WHERE c.relnamespace OPERATOR(pg_catalog.=) '@extschema@'::regnamespace
		   AND c.relkind OPERATOR(pg_catalog.=) 'm'
		   AND c.relname OPERATOR(pg_catalog.=) ANY (ARRAY[
			   'mv_route_statistics', 'mv_bin_statistics', 'mv_service_event_statistics'])
		 ORDER BY c.relname COLLATE "C"
	LOOP
		IF wm_refresh_statistics.concurrently
		   AND (SELECT c.relispopulated FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) mv) THEN
			EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %s', mv);
		ELSE
			EXECUTE format('REFRESH MATERIALIZED VIEW %s', mv);
		END IF;
	END LOOP;
END;
$$;
COMMENT ON FUNCTION @extschema@.wm_refresh_statistics(boolean) IS
	'Refreshes the dashboard materialized views (CONCURRENTLY by default)';

/*
 * Index advice (issue 13): read-only, bounded, SECURITY INVOKER, for
 * pg_monitor.  No function here runs DDL: the advice is statements for a
 * human to run.  A non-superuser member of pg_monitor sees every index of
 * the attached tables, as pg_indexes shows them to anyone, and their sizes
 * and scan counts, as pg_relation_size and pg_stat_user_indexes do.
 */
CREATE FUNCTION @extschema@.wm_index_redundant()
RETURNS TABLE(table_name regclass, index_name regclass, covering_index regclass,
			  relation text, index_bytes bigint, covering_bytes bigint,
			  drop_statement text, safe boolean, blocker text)
AS 'MODULE_PATHNAME', 'wm_index_redundant'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@.wm_index_redundant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.wm_index_redundant() TO pg_monitor;
COMMENT ON FUNCTION @extschema@.wm_index_redundant() IS
	'Indexes of the attached tables that another index covers (exact, prefix, prefix_after_constant_keys, subsumed), with the DROP INDEX CONCURRENTLY statement and what blocks it';

/*
 * _wm_index_facts: why dropping the index is unsafe (NULL if nothing blocks
 * it) and its size, without waiting for a lock.
 */
CREATE FUNCTION @extschema@._wm_index_facts(index oid, OUT blocker text, OUT bytes bigint)
AS 'MODULE_PATHNAME', 'wm_index_facts'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@._wm_index_facts(oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._wm_index_facts(oid) TO pg_monitor;

/*
 * Samples of the scan counters of the attached tables' indexes, taken by
 * wm_index_sample(): since is the time of the first sample that saw the
 * current idx_scan under the same statistics reset time and the same
 * postmaster start.  Not dumped: index oids do not survive a restore.
 */
CREATE TABLE @extschema@.wm_index_samples (
	indexrelid	oid PRIMARY KEY,
	idx_scan	bigint NOT NULL,
	since		timestamptz NOT NULL,
	stats_reset	timestamptz,
	postmaster_start timestamptz NOT NULL,
	sampled_at	timestamptz NOT NULL
);
REVOKE ALL ON @extschema@.wm_index_samples FROM PUBLIC;
GRANT SELECT ON @extschema@.wm_index_samples TO pg_monitor;
COMMENT ON TABLE @extschema@.wm_index_samples IS
	'Scan counters of the attached tables'' indexes as wm_index_sample() last saw them; the window of wm_index_unused()';

CREATE FUNCTION @extschema@.wm_index_sample()
RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	reset_at	timestamptz;
	n			integer;
BEGIN
	-- This transaction's cached statistics would hide newer scans.
	PERFORM pg_catalog.pg_stat_clear_snapshot();
	reset_at := pg_catalog.pg_stat_get_db_stat_reset_time(
		(SELECT d.oid FROM pg_catalog.pg_database d
		  WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()));
	DELETE FROM @extschema@.wm_index_samples s
	 WHERE NOT EXISTS (SELECT 1
						 FROM @extschema@.wm_perf_config c
						 JOIN pg_catalog.pg_index i
						   ON i.indrelid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid
						WHERE i.indexrelid OPERATOR(pg_catalog.=) s.indexrelid);
	INSERT INTO @extschema@.wm_index_samples AS s
		(indexrelid, idx_scan, since, stats_reset, postmaster_start, sampled_at)
	SELECT DISTINCT i.indexrelid, pg_catalog.pg_stat_get_numscans(i.indexrelid),
		   pg_catalog.now(), reset_at, pg_catalog.pg_postmaster_start_time(), pg_catalog.now()
	  FROM @extschema@.wm_perf_config c
	  JOIN pg_catalog.pg_index i ON i.indrelid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid
	ON CONFLICT (indexrelid) DO UPDATE
	   SET since = CASE WHEN s.idx_scan OPERATOR(pg_catalog.=) EXCLUDED.idx_scan
						 AND s.stats_reset IS NOT DISTINCT FROM EXCLUDED.stats_reset
						 AND s.postmaster_start OPERATOR(pg_catalog.=) EXCLUDED.postmaster_start
					THEN s.since ELSE EXCLUDED.since END,
		   idx_scan = EXCLUDED.idx_scan,
		   stats_reset = EXCLUDED.stats_reset,
		   postmaster_start = EXCLUDED.postmaster_start,
		   sampled_at = EXCLUDED.sampled_at;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END;
$$;
REVOKE ALL ON FUNCTION @extschema@.wm_index_sample() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.wm_index_sample() IS
	'Samples the scan counters of the attached tables'' indexes into wm_index_samples (schedule it, e.g. hourly with pg_cron)';

CREATE FUNCTION @extschema@.wm_index_unused(min_days integer DEFAULT 7)
RETURNS TABLE(table_name regclass, index_name regclass, index_bytes bigint,
			  idx_scan bigint, unused_since timestamptz, drop_statement text,
			  safe boolean, blocker text, note text)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL RESTRICTED SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	reset_at	timestamptz;
BEGIN
	IF min_days OPERATOR(pg_catalog.<) 0 THEN
		RAISE EXCEPTION 'min_days must not be negative'
			USING ERRCODE = '22023', DETAIL = pg_catalog.format('min_days is %s.', min_days);
	END IF;
	-- This transaction's cached statistics would hide newer scans.
	PERFORM pg_catalog.pg_stat_clear_snapshot();
	reset_at := pg_catalog.pg_stat_get_db_stat_reset_time(
		(SELECT d.oid FROM pg_catalog.pg_database d
		  WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()));
	RETURN QUERY
	SELECT x.indrelid::pg_catalog.regclass, x.indexrelid::pg_catalog.regclass,
		   f.bytes, x.scans, s.since,
		   pg_catalog.format('DROP INDEX CONCURRENTLY %I.%I;', n.nspname, ic.relname),
		   f.blocker IS NULL, f.blocker,
		   'idx_scan counts this server only: check pg_stat_user_indexes on every standby before dropping'::text
	  FROM (SELECT DISTINCT i.indrelid, i.indexrelid,
				   pg_catalog.pg_stat_get_numscans(i.indexrelid) AS scans
			  FROM @extschema@.wm_perf_config c
			  JOIN pg_catalog.pg_index i
				ON i.indrelid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid) x
	  CROSS JOIN LATERAL @extschema@._wm_index_facts(x.indexrelid) f
	  JOIN @extschema@.wm_index_samples s
		ON s.indexrelid OPERATOR(pg_catalog.=) x.indexrelid
	   AND s.idx_scan OPERATOR(pg_catalog.=) x.scans
	   AND s.stats_reset IS NOT DISTINCT FROM reset_at
	   AND s.postmaster_start OPERATOR(pg_catalog.=) pg_catalog.pg_postmaster_start_time()
	  JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) x.indexrelid
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) ic.relnamespace
	 WHERE s.since OPERATOR(pg_catalog.<=)
		   (pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => min_days))
	 ORDER BY 1, 2;
END;
$$;
REVOKE ALL ON FUNCTION @extschema@.wm_index_unused(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.wm_index_unused(integer) TO pg_monitor;
COMMENT ON FUNCTION @extschema@.wm_index_unused(integer) IS
	'Indexes of the attached tables with no scan for at least min_days of wm_index_sample() samples, with the DROP INDEX CONCURRENTLY statement and what blocks it';

CREATE FUNCTION @extschema@.wm_explain_indexes(query text)
RETURNS TABLE(table_name regclass, index_name regclass, plan_scans text,
			  partial boolean, predicate text, predicate_implied boolean, note text)
AS 'MODULE_PATHNAME', 'wm_explain_indexes'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@.wm_explain_indexes(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.wm_explain_indexes(text) TO pg_monitor;
COMMENT ON FUNCTION @extschema@.wm_explain_indexes(text) IS
	'Plans one SELECT without running it: the indexes its plan uses and, for each partial index of the tables it reads, whether the statement implies the predicate';

CREATE FUNCTION @extschema@.wm_index_missing()
RETURNS TABLE(queryid bigint, query text, calls bigint, mean_exec_ms double precision,
			  table_name regclass, suggestion text, cost_before double precision,
			  cost_after double precision, method text, near_miss text)
AS 'MODULE_PATHNAME', 'wm_index_missing'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@.wm_index_missing() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.wm_index_missing() TO pg_monitor;
COMMENT ON FUNCTION @extschema@.wm_index_missing() IS
	'SELECT statements of pg_stat_statements whose generic plan scans an attached table sequentially: the suggested CREATE INDEX CONCURRENTLY, the cost before and after (hypopg or structural), and the existing indexes that nearly serve them';

/*
 * Changes to the configuration and the rules reach every backend's cached
 * copy through a relcache invalidation sent at commit.
 */
CREATE FUNCTION @extschema@._wm_config_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'wm_config_changed'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@._wm_config_changed() FROM PUBLIC;
CREATE TRIGGER wm_perf_config_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.wm_perf_config
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._wm_config_changed();
CREATE TRIGGER wm_cache_rules_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.wm_cache_rules
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._wm_config_changed();
/*
 * A change of wm_perf_config locks the tables it names, before and after,
 * until commit: a writer of one of them either commits first or takes in
 * the new configuration with its table lock (trigger.c).
 */
CREATE TRIGGER wm_perf_config_locks
	AFTER INSERT OR UPDATE OR DELETE ON @extschema@.wm_perf_config
	FOR EACH ROW EXECUTE FUNCTION @extschema@._wm_config_changed();
CREATE TRIGGER wm_perf_config_truncate_locks
	BEFORE TRUNCATE ON @extschema@.wm_perf_config
	FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._wm_config_changed();

/*
 * DDL that changes what a statistic reads without writing a row (ATTACH,
 * DETACH or DROP of a partition, INHERIT, ALTER COLUMN ... TYPE, ALTER TYPE
 * ... RENAME VALUE, DROP COLUMN) invalidates the scope like a write, and a
 * new partition or inheritance child gets the invalidation triggers.
 * Enabled ALWAYS, like the table triggers.
 */
CREATE FUNCTION @extschema@._wm_ddl_changed()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'wm_ddl_changed'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY INVOKER;
REVOKE ALL ON FUNCTION @extschema@._wm_ddl_changed() FROM PUBLIC;
CREATE EVENT TRIGGER wm_perf_ddl_command_end ON ddl_command_end
	WHEN TAG IN ('ALTER TABLE', 'ALTER TYPE', 'CREATE TABLE')
	EXECUTE FUNCTION @extschema@._wm_ddl_changed();
CREATE EVENT TRIGGER wm_perf_sql_drop ON sql_drop
	WHEN TAG IN ('ALTER TABLE', 'DROP TABLE', 'DROP TRIGGER', 'DROP TYPE', 'DROP SCHEMA', 'DROP OWNED')
	EXECUTE FUNCTION @extschema@._wm_ddl_changed();
ALTER EVENT TRIGGER wm_perf_ddl_command_end ENABLE ALWAYS;
ALTER EVENT TRIGGER wm_perf_sql_drop ENABLE ALWAYS;

/*
 * Attach at install time to the tables found by name.  During a restore the
 * tables do not exist yet: that is a NOTICE, never an error, and the dumped
 * indexes, triggers, materialized views and configuration rows restore the
 * attachment.  The materialized views are ordinary objects, not extension
 * members, so pg_dump keeps them.
 */
DO $$
DECLARE
	mv	text;
BEGIN
	PERFORM pg_catalog.count(*) FROM @extschema@.wm_perf_attach();
	FOR mv IN
		SELECT c.oid::regclass::text
		  FROM pg_catalog.pg_class c
		  JOIN pg_catalog.pg_depend d
			ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
		   AND d.objid OPERATOR(pg_catalog.=) c.oid
		   AND d.deptype OPERATOR(pg_catalog.=) 'e'
		   AND d.refobjid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e
												   WHERE e.extname OPERATOR(pg_catalog.=) 'wm_perf')
		 WHERE c.relkind OPERATOR(pg_catalog.=) 'm'
	LOOP
		EXECUTE pg_catalog.format('ALTER EXTENSION wm_perf DROP MATERIALIZED VIEW %s', mv);
	END LOOP;
END;
$$;
