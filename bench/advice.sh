#!/usr/bin/env bash
# bench/advice.sh: the cost of the index advice functions (issue 13's goal:
# under a second each) with about 40 indexes on the attached tables and
# 5,000 distinct statements in pg_stat_statements.
#
# Runs against a server that is already up (PGHOST, PGPORT, PGUSER as for
# `make regresscheck`) with wm_perf installed, shared_preload_libraries
# holding pg_stat_statements and pg_stat_statements.max >= 6000; hypopg
# is used when the server has it.  Creates (and leaves, for inspection) the
# database wm_bench_advice.
#   WM_BENCH_SCALE  generator scale (default 1: 1M bins, 5M events)
#   WM_BENCH_RUNS   timed calls of each function (default 5)
#   WM_BENCH_REUSE  1: keep the database and its indexes from an earlier run
set -euo pipefail
WM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALE=${WM_BENCH_SCALE:-1}
RUNS=${WM_BENCH_RUNS:-5}
DB=wm_bench_advice
Q() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

if [ "${WM_BENCH_REUSE:-0}" != 1 ]; then
echo "== loading scale $SCALE into $DB"
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
Q -v scale="$SCALE" -f "$WM_SRC/test/fixtures/schema.sql" -f "$WM_SRC/test/fixtures/generate.sql" >/dev/null
Q -c "CREATE EXTENSION btree_gist" -c "CREATE EXTENSION wm_perf CASCADE" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
Q -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'hypopg'" -At | grep -q 1 &&
    Q -c "CREATE EXTENSION hypopg"

echo "== the application's index set, up to 40 indexes on the attached tables"
Q <<'SQL'
CREATE INDEX idx_bins_customer_id ON core.bins (customer_id) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_customer_status ON core.bins (customer_id, status) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_customer_status_deleted ON core.bins (customer_id, status, deleted_at) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_status_customer_type ON core.bins (status, customer_id, bin_type, deleted_at) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_customer_active ON core.bins (customer_id, status) WHERE status = 'active' AND deleted_at IS NULL;
CREATE INDEX idx_bins_location ON core.bins USING gist (location) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_location_active ON core.bins USING gist (location) WHERE status = 'active' AND deleted_at IS NULL;
CREATE INDEX idx_bins_geog_wkb ON core.bins USING gist (ST_GeogFromWKB(location));
CREATE UNIQUE INDEX idx_bins_bin_number_live ON core.bins (bin_number) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_next_service ON core.bins (next_service_date) WHERE deleted_at IS NULL;
CREATE INDEX idx_bins_fill ON core.bins (fill_level_percent) WHERE status = 'active' AND deleted_at IS NULL;
CREATE INDEX idx_routes_geometry_territory ON core.routes USING gist (route_geometry, territory)
	WHERE deleted_at IS NULL AND route_geometry IS NOT NULL;
CREATE INDEX idx_routes_status ON core.routes (status) WHERE deleted_at IS NULL;
CREATE INDEX idx_routes_service_day ON core.routes (service_day, status) WHERE deleted_at IS NULL;
CREATE INDEX idx_events_customer_date ON core.service_events (customer_id, scheduled_date) WHERE deleted_at IS NULL;
CREATE INDEX idx_events_route_date ON core.service_events (route_id, scheduled_date) WHERE deleted_at IS NULL;
CREATE INDEX idx_events_type_status ON core.service_events (event_type, event_status) WHERE deleted_at IS NULL;
CREATE INDEX idx_events_customer ON core.service_events (customer_id);
CREATE INDEX idx_customers_status ON operations.customers (status) WHERE deleted_at IS NULL;
CREATE INDEX idx_customers_org_status ON operations.customers (organization_id, status) WHERE deleted_at IS NULL;
CREATE INDEX idx_organizations_name ON operations.organizations (name) WHERE deleted_at IS NULL;
VACUUM ANALYZE;
SQL
fi
Q -At -c "SELECT 'indexes on the attached tables: ' || count(*) FROM pg_index i JOIN wm_perf_config c ON c.relid = i.indrelid"

echo "== 5,000 distinct statements in pg_stat_statements"
Q -c "SELECT pg_stat_statements_reset()" >/dev/null
# Distinct shapes: each a different subset of columns of one table, with a
# filter (on bins served by an index, on service_events by none: a sequential
# scan that LIMIT 1 ends at once); \gexec runs each at top level.
Q >/dev/null <<'SQL'
WITH cols(t, filter, c) AS (
	SELECT 'core.bins', 'customer_id = ''00000000-0000-0000-0000-000000000001'' AND deleted_at IS NULL',
		   ARRAY['id', 'bin_number', 'bin_type', 'material', 'status', 'capacity_cubic_yards',
				 'fill_level_percent', 'gps_enabled', 'sensor_enabled', 'next_service_date', 'created_at', 'updated_at']
	UNION ALL
	SELECT 'core.service_events', 'scheduled_date >= ''2000-01-01'' AND deleted_at IS NULL',
		   ARRAY['id', 'customer_id', 'route_id', 'event_type', 'event_status', 'scheduled_date',
				 'weight_collected_lbs', 'created_at', 'updated_at', 'deleted_at', 'id::text', 'created_at::date']
)
SELECT format('SELECT %s FROM %s WHERE %s LIMIT 1',
			  (SELECT string_agg(c[i], ', ' ORDER BY i) FROM generate_subscripts(c, 1) i
				WHERE (n >> (i - 1)) & 1 = 1), t, filter)
  FROM cols, generate_series(1, 2500) n
\gexec
SQL
Q -At -c "SELECT 'statements in pg_stat_statements: ' || count(*) FROM pg_stat_statements"

time_it() {
    local label=$1 sql=$2 i out ms
    for i in $(seq "$RUNS"); do
        out=$(Q -c '\timing on' -c "$sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
        ms="${ms:-}${ms:+ }$out"
    done
    echo "$label: $(echo "$ms" | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {printf "median %.1f ms, min %.1f, max %.1f (%d runs)", a[int((NR+1)/2)], a[1], a[NR], NR}')"
}

echo "== timings"
time_it "wm_index_redundant()" "SELECT count(*) FROM wm_index_redundant()"
Q -c "SELECT wm_index_sample()" >/dev/null
time_it "wm_index_sample()" "SELECT wm_index_sample()"
time_it "wm_index_unused(0)" "SELECT count(*) FROM wm_index_unused(0)"
time_it "wm_explain_indexes(radius query)" "SELECT count(*) FROM wm_explain_indexes(\$\$SELECT id FROM core.bins WHERE ST_DWithin(location, ST_GeogFromText('POINT(-95.36 29.76)'), 5000) AND deleted_at IS NULL\$\$)"
time_it "wm_index_missing()" "SELECT count(*) FROM wm_index_missing()"
Q -c "SELECT count(*) AS redundant_pairs FROM wm_index_redundant()" -c "SELECT count(*) AS missing_rows, count(DISTINCT queryid) AS statements, method FROM wm_index_missing() GROUP BY method"
