#!/usr/bin/env bash
# A library newer than the SQL objects: the 1.1 shared library installed and
# loaded (shared_preload_libraries), a database still at the 1.0 SQL
# objects (CREATE EXTENSION ... VERSION '1.0', no ALTER EXTENSION UPDATE
# yet).  This is what every database is between `make install` (or a
# package upgrade) and ALTER EXTENSION wm_perf UPDATE.
#
# Every 1.0 function is called (the list is checked against the members),
# the tables are attached, written, read, changed by DDL, detached and
# attached again; the results are the 1.0 behaviour: exact statistics
# (equal to the plain-SQL computation of test/fixtures/expected_stats.sql),
# served from Redis until a committed write, invalidated at commit, the
# application's rules applied.  No backend may crash: the server log gets no
# "terminated by signal", PANIC or failed assertion while the test runs.
set -euo pipefail
: "${PGHOST:?}" "${PGPORT:?}" "${REDIS_PORT:?}" "${WM_SRC:?}" "${WM_TMP:?}"
DB=wm_integ_library_ahead
LOG=$WM_TMP/postgres.log
R() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
Q() { psql -X -q -At -v ON_ERROR_STOP=1 -d $DB -c "$1"; }
fails=0
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1 (expected '$2', got '$3')"; fails=$((fails + 1)); fi
}
log_start=0
[ -f "$LOG" ] && log_start=$(stat -c %s "$LOG")

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $DB"
psql -X -q -v ON_ERROR_STOP=1 -d $DB -v scale=0.002 -f "$WM_SRC/test/fixtures/schema.sql" \
    -f "$WM_SRC/test/fixtures/generate.sql" >/dev/null 2>&1
Q "CREATE EXTENSION wm_perf VERSION '1.0' CASCADE" 2>/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d $DB -f "$WM_SRC/test/fixtures/expected_stats.sql" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d $DB -f "$WM_SRC/docs/cache_rules_example.sql" >/dev/null

EXT=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$WM_SRC/wm_perf.control")
check "the SQL objects are 1.0" 1.0 "$(Q "SELECT extversion FROM pg_extension WHERE extname = 'wm_perf'")"
check "the loaded library is $EXT (wm_perf_version)" "$EXT" "$(Q "SELECT wm_perf_version()")"
check "the library is preloaded" t "$(Q "SELECT current_setting('shared_preload_libraries') LIKE '%wm_perf%'")"
check "1.0 attached the five tables" 5 "$(Q "SELECT count(*) FROM wm_perf_config")"
check "no 1.1 object exists (maintained tables, event triggers)" "0 0" \
    "$(Q "SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'wm\_agg\_%') || ' ' || (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'wm\_perf\_%')")"

# The public 1.0 functions this test calls: exactly the members not named _wm_*
# (those are attach's helpers, called by wm_perf_attach, and the trigger
# functions, fired by the writes below).
check "the functions called here are every public 1.0 member" \
    "wm_bin_statistics(uuid) wm_bins_within_radius(double precision,double precision,double precision,integer) wm_cache_flush(text) wm_invalidate_cache() wm_perf_attach(regclass,regclass,regclass,regclass,regclass) wm_perf_detach(boolean) wm_perf_metrics_reset() wm_perf_version() wm_refresh_statistics(boolean) wm_route_statistics(text) wm_routes_within_radius(double precision,double precision,double precision,integer,text)" \
    "$(Q "SELECT string_agg(p.oid::regprocedure::text, ' ' ORDER BY p.oid::regprocedure::text COLLATE \"C\")
            FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
           WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e' AND p.proname NOT LIKE '\_wm\_%'
             AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'wm_perf')")"

exact() { # the four statistics equal the plain-SQL computation
    local c t
    c=$(Q "SELECT md5('customers:7')::uuid")
    t=$(Q "SELECT territory FROM core.routes WHERE deleted_at IS NULL AND territory IS NOT NULL ORDER BY territory LIMIT 1")
    Q "SELECT (wm_route_statistics() - 'computedAt') = regress_route_stats(NULL)
          AND (wm_route_statistics('$t') - 'computedAt') = regress_route_stats('$t')
          AND (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL)
          AND (wm_bin_statistics('$c') - 'computedAt') = regress_bin_stats('$c')"
}
metric() { Q "SELECT $2 FROM wm_perf_metrics WHERE function_name = '$1'"; }

check "wm_perf_metrics_reset()" "" "$(Q "SELECT wm_perf_metrics_reset()")"
check "statistics exact (first calls)" t "$(exact)"
check "statistics exact (second calls)" t "$(exact)"
check "second calls were served from Redis (or the backend's copy)" "2 2" \
    "$(metric wm_route_statistics 'cache_hits + local_hits') $(metric wm_bin_statistics 'cache_hits + local_hits')"
# The radius lookup's bins: active, not deleted, within 5 km on the sphere,
# the 20 nearest (compared as sets: the order of equal distances is free).
PT="ST_SetSRID(ST_MakePoint(-95.3698, 29.7604), 4326)::geography"
check "wm_bins_within_radius: the 20 nearest active bins within 5 km" \
    "$(Q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM (SELECT b.id FROM core.bins b WHERE b.status = 'active' AND b.deleted_at IS NULL AND ST_DWithin(b.location::geography, $PT, 5000, false) ORDER BY b.location::geography <-> $PT LIMIT 20) s")" \
    "$(Q "SELECT string_agg(id::text, ' ' ORDER BY id) FROM wm_bins_within_radius(29.7604, -95.3698, 5, 20)")"
check "wm_routes_within_radius returns routes, nearest first" t \
    "$(Q "SELECT count(*) > 0 AND bool_and(distance_m <= 20000) FROM wm_routes_within_radius(29.7604, -95.3698, 20, 10)")"
check "wm_perf_metrics counts the radius lookups" "1 1" "$(metric wm_bins_within_radius calls) $(metric wm_routes_within_radius calls)"

# A committed write: invalidated at commit, the application's rule applied,
# the next read exact and different.
before=$(Q "SELECT wm_bin_statistics() - 'computedAt'")
DBOID=$(Q "SELECT oid FROM pg_database WHERE datname = current_database()")
genkey=$(R --scan --pattern "wm_perf:v2:*:$DBOID:gen:bins" | head -1)
gen=$(R get "$genkey")
R set waste_mgmt:stats:bins:global stale >/dev/null
B1=$(Q "SELECT b.id FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL AND b.status = 'active' ORDER BY b.bin_number LIMIT 1")
Q "UPDATE core.bins SET status = 'retired' WHERE id = '$B1'" >/dev/null
check "the write bumped the bins generation in Redis" t \
    "$([ -n "$genkey" ] && [ "$(R get "$genkey")" != "$gen" ] && echo t || echo f)"
check "the application's rule deleted its key at commit" 0 "$(R exists waste_mgmt:stats:bins:global)"
check "statistics exact after the write" t "$(exact)"
check "the write changed the statistics" t "$([ "$(Q "SELECT wm_bin_statistics() - 'computedAt'")" != "$before" ] && echo t || echo f)"
check "read your own write inside the transaction" "t" \
    "$(psql -X -q -At -v ON_ERROR_STOP=1 -d $DB -c "BEGIN" -c "SELECT CASE WHEN wm_bin_statistics() IS NOT NULL THEN 'cached' END" \
         -c "INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at) SELECT gen_random_uuid(), customer_id, event_type, event_status, now(), now() FROM core.service_events WHERE deleted_at IS NULL AND customer_id IS NOT NULL ORDER BY id LIMIT 1" \
         -c "SELECT (wm_bin_statistics() - 'computedAt') = regress_bin_stats(NULL)" -c "ROLLBACK" | tail -1)"
Q "UPDATE operations.customers SET deleted_at = now() WHERE id = md5('customers:7')::uuid" >/dev/null
check "statistics exact after a customer's soft delete" t "$(exact)"
Q "UPDATE core.routes SET status = 'archived' WHERE id = (SELECT id FROM core.routes WHERE deleted_at IS NULL ORDER BY route_number LIMIT 1)" >/dev/null
check "statistics exact after a route change" t "$(exact)"

check "wm_cache_flush('bins') counts the keys it deleted" t "$(Q "SELECT wm_cache_flush('bins') >= 1")"
check "wm_cache_flush() (every scope)" t "$(Q "SELECT wm_cache_flush() >= 0")"
check "statistics exact after the flushes" t "$(exact)"
check "wm_refresh_statistics(), both ways: the three materialized views populated" "3 3" \
    "$(Q "SELECT wm_refresh_statistics()" >/dev/null; Q "SELECT wm_refresh_statistics(false)" >/dev/null
       Q "SELECT count(*) || ' ' || count(*) FILTER (WHERE relispopulated) FROM pg_class WHERE relkind = 'm' AND relname IN ('mv_route_statistics', 'mv_bin_statistics', 'mv_service_event_statistics')")"
check "a change of wm_cache_rules is seen (config trigger)" "DELETE 1" \
    "$(psql -X -At -v ON_ERROR_STOP=1 -d $DB -c "DELETE FROM wm_cache_rules WHERE rule_name = (SELECT min(rule_name) FROM wm_cache_rules)")"

# DDL under 1.0 (which has no event triggers) and TRUNCATE.
Q "ALTER TABLE core.bins ADD COLUMN wm_library_ahead int" >/dev/null
check "statistics exact after ALTER TABLE ADD COLUMN" t "$(exact)"
Q "ALTER TABLE core.bins DROP COLUMN wm_library_ahead" >/dev/null
Q "TRUNCATE core.service_events" >/dev/null
check "statistics exact after TRUNCATE" t "$(exact)"

# Detach and attach again with the 1.0 functions.
ntrig=$(Q "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'wm\_perf\_invalidate\_%'")
check "1.0 made its 20 invalidation triggers" 20 "$ntrig"
check "wm_perf_detach() removes the invalidation triggers" 0 \
    "$(Q "SELECT count(*) FROM wm_perf_detach()" >/dev/null; Q "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'wm\_perf\_invalidate\_%'")"
check "wm_perf_attach() makes them again (1.0's set)" "$ntrig" \
    "$(Q "SELECT count(*) FROM wm_perf_attach()" >/dev/null; Q "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'wm\_perf\_invalidate\_%'")"
check "statistics exact after attaching again" t "$(exact)"
check "wm_perf_metrics has a row per function and the invalidation" 5 "$(Q "SELECT count(*) FROM wm_perf_metrics")"

# Then the update still gives 1.1, and works.
Q "ALTER EXTENSION wm_perf UPDATE" >/dev/null 2>&1
check "ALTER EXTENSION UPDATE afterwards" "$EXT" "$(Q "SELECT extversion FROM pg_extension WHERE extname = 'wm_perf'")"
check "statistics exact after the update" t "$(exact)"
check "maintained statistics after the update equal a full computation" 0 "$(Q "SELECT count(*) FROM wm_statistics_verify()")"

if [ -f "$LOG" ]; then
    crashes=$(tail -c +$((log_start + 1)) "$LOG" | grep -c -E 'terminated by signal|PANIC|TRAP:|server process .* exited with exit code [^0]' || true)
    check "no backend crashed (server log)" 0 "$crashes"
fi
check "the server is still up" 1 "$(Q "SELECT 1")"

psql -X -q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "library_ahead: $fails failure(s)"
[ "$fails" -eq 0 ]
