-- Index advice: wm_index_redundant(), wm_index_unused(), wm_explain_indexes().
--
-- The fixture reproduces the application's own index set (its Sequelize
-- models, migration 002 and DatabaseOptimizationService) on the regress
-- tables, beside the indexes the schema has (primary keys, unique
-- constraints, plain FK indexes) and the ones wm_perf_attach() created.
-- Everything is dropped again at the end.
CREATE INDEX idx_bins_customer_id ON core.bins (customer_id) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_customer_status ON core.bins (customer_id, status) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_customer_status_deleted ON core.bins (customer_id, status, deleted_at)
	WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_status_customer_type ON core.bins (status, customer_id, bin_type, deleted_at)
	WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_customer_active ON core.bins (customer_id, status)
	WHERE status = 'active' AND deleted_at IS NULL;
-- The same predicate typed otherwise: whitespace, parentheses, a cast, the
-- conjuncts swapped.
CREATE INDEX idx_bins_customer_active_retyped ON core.bins (customer_id,status)
	WHERE ((  deleted_at IS NULL )) AND ((status = 'active'::core.enum_bins_status));
-- Geometry GiST with and without the status filter; geography by another
-- expression than wm_perf's (location)::geography.
CREATE INDEX idx_bins_location ON core.bins USING gist (location) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_location_active ON core.bins USING gist (location)
	WHERE status = 'active' AND deleted_at IS NULL;
CREATE INDEX idx_bins_geog_wkb ON core.bins USING gist (ST_GeogFromWKB(location));
-- A partial unique index beside the unique constraint on bin_number.
CREATE UNIQUE INDEX idx_bins_bin_number_live ON core.bins (bin_number) WHERE deleted_at IS NULL;
-- The application's routes GiST is on the geometry column; the same pair
-- typed on the geography expression is an exact and a subsumed duplicate
-- of wm_perf's routes_route_geometry_territory_gist_idx.
CREATE INDEX idx_routes_geometry_territory ON core.routes USING gist (route_geometry, territory)
	WHERE deleted_at IS NULL AND route_geometry IS NOT NULL;
CREATE INDEX idx_routes_geog_territory ON core.routes USING gist ((route_geometry::geography), territory)
	WHERE deleted_at IS NULL;
CREATE INDEX idx_routes_geog_territory_present ON core.routes
	USING gist ((route_geometry::geography), territory)
	WHERE deleted_at IS NULL AND route_geometry IS NOT NULL;
-- A second copy of the FK index of service_events.
CREATE INDEX idx_service_events_customer_id ON core.service_events (customer_id);
ALTER TABLE core.routes ADD CONSTRAINT routes_id_excl EXCLUDE USING gist (id WITH =);

-- pghero's comparison of indpred::text fails here: the node strings carry
-- the CREATE statements' character offsets.
SELECT a.indpred::text = b.indpred::text AS same_text
  FROM pg_index a, pg_index b
 WHERE a.indexrelid = 'core.idx_bins_customer_id'::regclass
   AND b.indexrelid = 'core.idx_bins_customer_status'::regclass;

-- Every (index, covering index) pair.
SELECT index_name, covering_index, relation, safe, blocker
  FROM wm_index_redundant()
 ORDER BY table_name::text COLLATE "C", index_name::text COLLATE "C", covering_index::text COLLATE "C";
-- The statement is schema-qualified, the sizes are the main forks'.
SELECT DISTINCT drop_statement,
	   index_bytes = pg_relation_size(index_name) AS index_bytes_ok,
	   covering_bytes = pg_relation_size(covering_index) AS covering_bytes_ok
  FROM wm_index_redundant()
 WHERE index_name = 'core.idx_bins_customer_active_retyped'::regclass;
-- Never across geometry and geography, never the application's geometry
-- routes index, never the FK index nor a unique index as safe.
SELECT count(*) AS geometry_geography_pairs
  FROM wm_index_redundant() r
  JOIN pg_index a ON a.indexrelid = r.index_name
  JOIN pg_index b ON b.indexrelid = r.covering_index
 WHERE (pg_get_indexdef(a.indexrelid) LIKE '%geography%') <> (pg_get_indexdef(b.indexrelid) LIKE '%geography%')
	OR pg_get_indexdef(a.indexrelid) LIKE '%ST_GeogFromWKB%'
	OR pg_get_indexdef(b.indexrelid) LIKE '%ST_GeogFromWKB%'
	OR 'core.idx_routes_geometry_territory'::regclass IN (r.index_name, r.covering_index);
SELECT count(*) AS unsafe_ones_called_safe
  FROM wm_index_redundant() r JOIN pg_index i ON i.indexrelid = r.index_name
 WHERE r.safe AND (i.indisunique OR i.indisprimary OR i.indisexclusion
				   OR r.index_name = 'core.service_events_customer_id'::regclass);

-- A clustered index is not safe to drop: of two exact copies, the
-- clustered one is kept.
ALTER TABLE core.service_events CLUSTER ON idx_service_events_customer_id;
SELECT index_name, covering_index, relation, safe, blocker FROM wm_index_redundant()
 WHERE table_name = 'core.service_events'::regclass;
SELECT blocker FROM _wm_index_facts('core.idx_service_events_customer_id'::regclass);
ALTER TABLE core.service_events SET WITHOUT CLUSTER;

-- Blockers of single indexes: a foreign key always blocks here.
ALTER TABLE core.routes REPLICA IDENTITY USING INDEX routes_route_number_key;
SELECT i::regclass AS index_name, f.blocker, f.bytes = pg_relation_size(i) AS bytes_ok
  FROM unnest(ARRAY['core.routes_pkey', 'core.routes_route_number_key', 'core.routes_id_excl',
					'core.service_events_customer_id', 'core.idx_service_events_customer_id',
					'core.idx_bins_customer_id']::regclass[]) i,
	   _wm_index_facts(i) f
 ORDER BY i::text COLLATE "C";
ALTER TABLE core.routes REPLICA IDENTITY DEFAULT;
SELECT * FROM _wm_index_facts('core.bins'::regclass) AS not_an_index;
-- An index left invalid by a failed CREATE INDEX CONCURRENTLY (terse: the
-- duplicate it reports depends on the order of a parallel build).
\set VERBOSITY terse
CREATE UNIQUE INDEX CONCURRENTLY idx_bins_status_unique ON core.bins (status);
\set VERBOSITY default
SELECT blocker FROM _wm_index_facts('core.idx_bins_status_unique'::regclass);
DROP INDEX core.idx_bins_status_unique;

-- wm_explain_indexes: the planner's own verdict on each partial index.
ANALYZE core.bins;
-- wm_perf's radius query: the partial geography index.
SELECT index_name, plan_scans, predicate, predicate_implied, note
  FROM wm_explain_indexes($$SELECT id FROM core.bins
	 WHERE ST_DWithin(location::geography, ST_GeogFromText('POINT(-95.36 29.76)'), 5000)
	   AND status = 'active' AND deleted_at IS NULL$$)
 ORDER BY index_name::text COLLATE "C";
-- The application's radius query, without the status filter: no partial
-- index can serve it.
SELECT index_name, plan_scans, predicate_implied, note
  FROM wm_explain_indexes($$SELECT id FROM core.bins
	 WHERE ST_DWithin(location, ST_GeogFromText('POINT(-95.36 29.76)'), 5000)$$)
 WHERE partial
 ORDER BY index_name::text COLLATE "C";
-- status = $1: a generic plan cannot prove status = 'active'.
SELECT index_name, plan_scans, predicate_implied, note
  FROM wm_explain_indexes($$SELECT id FROM core.bins
	 WHERE customer_id = $1 AND status = $2 AND deleted_at IS NULL$$)
 WHERE partial
 ORDER BY index_name::text COLLATE "C";
-- A join: the indexes of both tables, the non-partial ones only when used.
SELECT table_name, index_name, plan_scans, partial, predicate_implied
  FROM wm_explain_indexes($$SELECT b.id FROM core.bins b
	  JOIN operations.customers c ON c.id = b.customer_id
	 WHERE c.status = 'active' AND b.deleted_at IS NULL
	   AND b.customer_id = '00000000-0000-0000-0000-000000000001'$$)
 WHERE plan_scans IS NOT NULL OR NOT partial
 ORDER BY index_name::text COLLATE "C";
-- A relation proven empty.
SELECT DISTINCT predicate_implied, note
  FROM wm_explain_indexes($$SELECT id FROM core.bins WHERE false$$);
-- Only one SELECT, planned, never run; nothing beyond AccessShareLock.
SELECT regress_error($$SELECT * FROM wm_explain_indexes('INSERT INTO core.bins DEFAULT VALUES')$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('VACUUM core.bins')$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('SELECT 1; SELECT 2')$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('')$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('SELECT id FROM core.bins FOR UPDATE')$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('SELECT * FROM (SELECT id FROM core.bins FOR SHARE) s')$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('WITH d AS (DELETE FROM core.bins RETURNING id) SELECT * FROM d')$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('SELECT id INTO TEMP t FROM core.bins')$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('SELECT 1 WHERE $1 IS NULL')$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('SELECT nonsense FROM core.bins')$$);
SELECT count(*) AS strict FROM wm_explain_indexes(NULL);
BEGIN;
SELECT count(*) > 0 AS explained
  FROM wm_explain_indexes($$SELECT id FROM core.bins WHERE deleted_at IS NULL$$);
SELECT count(*) > 0 AS redundant FROM wm_index_redundant();
SELECT l.mode, count(*) FILTER (WHERE l.relation = 'core.bins'::regclass) AS on_bins,
	   count(*) FILTER (WHERE l.relation = 'core.idx_bins_customer_id'::regclass) AS on_an_index
  FROM pg_locks l
 WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'
 GROUP BY l.mode;
COMMIT;

-- wm_index_unused: the sampling window.  Counters from zero (our own
-- pending counts flushed first), then one sample.
SELECT pg_stat_force_next_flush();
SELECT pg_stat_reset();
SELECT count(*) AS samples_before FROM wm_index_samples;
SELECT wm_index_sample() AS sampled;
SELECT count(*) AS sampled FROM wm_index_samples;
SELECT count(*) AS indexes_of_attached_tables FROM pg_index i JOIN wm_perf_config c ON c.relid = i.indrelid;
-- A known workload: one scan of each of two unique indexes.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM core.bins WHERE bin_number = 'B00000007';
SELECT count(*) AS bins FROM core.bins WHERE bin_number = 'B00000007';
EXPLAIN (COSTS OFF) SELECT id FROM core.routes WHERE route_number = 'R000003';
SELECT count(*) AS routes FROM core.routes WHERE route_number = 'R000003';
RESET enable_seqscan;
SELECT pg_stat_force_next_flush();
-- Scanned since the sample: not unused.  Every other index is, with the
-- window of min_days => 0.
SELECT index_name, idx_scan, safe, blocker
  FROM wm_index_unused(0)
 ORDER BY table_name::text COLLATE "C", index_name::text COLLATE "C";
SELECT DISTINCT note, unused_since = (SELECT max(since) FROM wm_index_samples) AS since_the_sample,
	   index_bytes = pg_relation_size(index_name) AS bytes_ok
  FROM wm_index_unused(0);
SELECT drop_statement FROM wm_index_unused(0) WHERE index_name = 'core.idx_bins_location'::regclass;
-- Seven days: nothing yet.
SELECT count(*) AS unused_for_7_days FROM wm_index_unused();
-- A new sample restarts the window of the scanned ones only.
SELECT wm_index_sample() > 0 AS sampled;
SELECT index_name, idx_scan FROM wm_index_unused(0)
 WHERE index_name IN ('core.bins_bin_number_key'::regclass, 'core.routes_route_number_key'::regclass)
 ORDER BY index_name::text COLLATE "C";
-- Eight days later (the samples aged by hand): every index qualifies; one
-- more scan takes bins_bin_number_key out again.
UPDATE wm_index_samples SET since = since - interval '8 days';
SELECT count(*) = (SELECT count(*) FROM wm_index_samples) AS all_unused_for_7_days FROM wm_index_unused(7);
SELECT count(*) AS bins FROM core.bins WHERE bin_number = 'B00000007';
SELECT pg_stat_force_next_flush();
SELECT count(*) AS bins_bin_number_key_unused FROM wm_index_unused(7)
 WHERE index_name = 'core.bins_bin_number_key'::regclass;
SELECT count(*) AS others_unused FROM wm_index_unused(7)
 WHERE index_name <> 'core.bins_bin_number_key'::regclass;
-- A reset of one index's counters resets the database's reset time: every
-- window restarts.
SELECT pg_stat_reset_single_table_counters('core.routes_route_number_key'::regclass);
SELECT count(*) AS unused_after_reset FROM wm_index_unused(0);
SELECT wm_index_sample() > 0 AS sampled;
SELECT count(*) AS unused_after_sample FROM wm_index_unused(7);
SELECT count(*) = (SELECT count(*) FROM wm_index_samples) AS all_unused_since_sample FROM wm_index_unused(0);
SELECT regress_error($$SELECT * FROM wm_index_unused(-1)$$);
SELECT count(*) AS strict FROM wm_index_unused(NULL);
-- A dropped index leaves the samples at the next sample.
CREATE INDEX idx_bins_gone ON core.bins (fill_level_percent);
SELECT wm_index_sample() > 0 AS sampled;
DROP INDEX core.idx_bins_gone;
SELECT wm_index_sample() > 0 AS sampled;
SELECT count(*) AS samples_of_dropped FROM wm_index_samples s
 WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = s.indexrelid);

-- Privileges: pg_monitor reads the advice; only the owner samples.
CREATE ROLE regress_wm_monitor IN ROLE pg_monitor;
CREATE ROLE regress_wm_nobody;
GRANT USAGE ON SCHEMA core TO regress_wm_monitor;
SET ROLE regress_wm_monitor;
SELECT count(*) AS redundant_pairs FROM wm_index_redundant();
SELECT count(*) > 0 AS sees_unused FROM wm_index_unused(0);
SELECT regress_error($$SELECT wm_index_sample()$$);
-- EXPLAIN's privilege check: SELECT on the table.
SELECT regress_error($$SELECT * FROM wm_explain_indexes('SELECT id FROM core.bins')$$);
SET ROLE regress_wm_nobody;
SELECT regress_error($$SELECT * FROM wm_index_redundant()$$);
SELECT regress_error($$SELECT * FROM wm_index_unused()$$);
SELECT regress_error($$SELECT * FROM wm_explain_indexes('SELECT 1')$$);
RESET ROLE;
REVOKE USAGE ON SCHEMA core FROM regress_wm_monitor;
DROP ROLE regress_wm_monitor, regress_wm_nobody;

-- Clean up the fixture.
ALTER TABLE core.routes DROP CONSTRAINT routes_id_excl;
DROP INDEX core.idx_bins_customer_id, core.idx_bins_customer_status, core.idx_bins_customer_status_deleted,
	core.idx_bins_status_customer_type, core.idx_bins_customer_active, core.idx_bins_customer_active_retyped,
	core.idx_bins_location, core.idx_bins_location_active, core.idx_bins_geog_wkb, core.idx_bins_bin_number_live,
	core.idx_routes_geometry_territory, core.idx_routes_geog_territory, core.idx_routes_geog_territory_present,
	core.idx_service_events_customer_id;
SELECT count(*) AS redundant_without_the_fixture FROM wm_index_redundant();
