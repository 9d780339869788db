#!/usr/bin/env bash
# `make demo`: the same set-up as `make test`, then generated data and what
# the extension does, with timings.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SCALE=${WM_DEMO_SCALE:-0.1}

wm_install_deps
wm_build_install
wm_make_tmp
wm_start_redis
wm_start_pg

log "loading the reference schema with generated data (scale $SCALE)"
start=$(date +%s)
wm_load_fixture demo "$SCALE"
echo "loaded in $(( $(date +%s) - start )) s"

psql -X -d demo -v ON_ERROR_STOP=1 <<'SQL'
\echo '== CREATE EXTENSION wm_perf CASCADE (attaches to core.* / operations.*)'
\timing on
CREATE EXTENSION wm_perf CASCADE;
\timing off
\echo '== indexes and materialized views created by attach'
SELECT c.relname AS index, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indpred IS NOT NULL ORDER BY 1;
SELECT relname AS materialized_view, relispopulated FROM pg_class WHERE relkind = 'm' ORDER BY 1;
\echo '== route statistics: a miss (computed), then a hit (Redis)'
\timing on
SELECT jsonb_pretty(wm_route_statistics());
SELECT wm_route_statistics() -> 'total' AS total_from_cache;
\echo '== bin statistics: miss, then hit'
SELECT jsonb_pretty(wm_bin_statistics());
SELECT wm_bin_statistics() -> 'total' AS total_from_cache;
\echo '== radius lookups: 10 nearest active bins within 2 km of downtown Houston'
SELECT * FROM wm_bins_within_radius(29.7604, -95.3698, 2, 10);
SELECT count(*) AS routes_within_10km FROM wm_routes_within_radius(29.7604, -95.3698, 10);
\echo '== invalidation: a committed UPDATE makes the next call recompute'
SELECT wm_bin_statistics() -> 'byStatus' AS by_status_before;
UPDATE core.bins SET status = 'retired'
 WHERE id = (SELECT id FROM core.bins WHERE status = 'active' AND deleted_at IS NULL ORDER BY bin_number LIMIT 1);
SELECT wm_bin_statistics() -> 'byStatus' AS by_status_after_commit;
SELECT wm_bin_statistics() -> 'byStatus' AS by_status_cached_again;
\timing off
SELECT function_name, calls, cache_hits, cache_misses, hit_ratio, round(avg_time_ms::numeric, 3) AS avg_ms,
       invalidations_recorded, invalidations_delivered
  FROM wm_perf_metrics ORDER BY 1;
SQL
log "demo done; servers stopped"
