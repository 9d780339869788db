#!/usr/bin/env bash
# The two schema shapes (core/operations with enums and geometry; public
# with text and geography) hold the same logical data at the same scale:
# wm_perf must attach to both and return identical results from both.
set -euo pipefail
: "${PGHOST:?}" "${PGPORT:?}" "${WM_SRC:?}"
fails=0
check() { if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1 (expected '$2', got '$3')"; fails=$((fails + 1)); fi; }
Q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

for db in wm_shape_app wm_shape_public; do
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
    psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db"
done
psql -X -q -v ON_ERROR_STOP=1 -d wm_shape_app -v scale=0.002 \
    -f "$WM_SRC/test/fixtures/schema.sql" -f "$WM_SRC/test/fixtures/generate.sql" >/dev/null 2>&1
psql -X -q -v ON_ERROR_STOP=1 -d wm_shape_public -v scale=0.002 \
    -f "$WM_SRC/test/fixtures/schema_public.sql" -f "$WM_SRC/test/fixtures/generate.sql" >/dev/null 2>&1
for db in wm_shape_app wm_shape_public; do
    Q $db "CREATE EXTENSION wm_perf CASCADE" >/dev/null 2>&1
done

check "public shape: all five tables attached by name" 5 "$(Q wm_shape_public "SELECT count(*) FROM wm_perf_config")"
check "public shape: the GiST index is on the geography column itself" \
    "CREATE INDEX bins_location_active_gist_idx ON public.bins USING gist (location) WHERE ((status = 'active'::text) AND (deleted_at IS NULL))" \
    "$(Q wm_shape_public "SELECT pg_get_indexdef('public.bins_location_active_gist_idx'::regclass)")"
check "app shape: the GiST index is on the geography cast" \
    "CREATE INDEX bins_location_active_gist_idx ON core.bins USING gist (((location)::geography)) WHERE ((status = 'active'::core.enum_bins_status) AND (deleted_at IS NULL))" \
    "$(Q wm_shape_app "SELECT pg_get_indexdef('core.bins_location_active_gist_idx'::regclass)")"
check "public shape: 24 invalidation triggers" 24 "$(Q wm_shape_public "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'wm_perf_invalidate_%'")"

for q in "wm_route_statistics() - 'computedAt'" "wm_route_statistics('Houston') - 'computedAt'" \
         "wm_bin_statistics() - 'computedAt'" \
         "wm_bin_statistics(md5('customers:7')::uuid) - 'computedAt'" \
         "(SELECT jsonb_agg(to_jsonb(r) ORDER BY distance_m, id) FROM (SELECT id, round(distance_m::numeric, 3) AS distance_m, bin_number, status FROM wm_bins_within_radius(29.7604, -95.3698, 5, 20)) r)" \
         "(SELECT jsonb_agg(to_jsonb(r) ORDER BY distance_m, id) FROM (SELECT id, round(distance_m::numeric, 3) AS distance_m, route_number FROM wm_routes_within_radius(29.7604, -95.3698, 20, 10)) r)"; do
    a=$(Q wm_shape_app "SELECT $q")
    p=$(Q wm_shape_public "SELECT $q")
    check "same result in both shapes: $q" "$a" "$p"
    [ -n "$a" ] && [ "$a" != "null" ] || { echo "not ok - empty result for $q"; fails=$((fails + 1)); }
done

# Writes through the text/geography shape invalidate too.
before=$(Q wm_shape_public "SELECT wm_route_statistics() -> 'byStatus' ->> 'archived'")
Q wm_shape_public "UPDATE public.routes SET status = 'archived' WHERE route_number = (SELECT min(route_number) FROM public.routes WHERE status <> 'archived' AND deleted_at IS NULL)"
after=$(Q wm_shape_public "SELECT wm_route_statistics() -> 'byStatus' ->> 'archived'")
check "public shape: a committed update is visible at once" "$((before + 1))" "$after"

# The maintained statistics under writes (maintain.c: record_delta() sums
# a statement's transition tables in C; the rebuild, the customers' trigger
# and the full computation use SQL).  The same writes in both shapes
# (test/fixtures/shapes_writes.sql); after each part the maintained state
# equals the full computation, group by group and in the statistics.
tables() { if [ "$1" = wm_shape_app ]; then echo "-v B=core.bins -v C=operations.customers -v E=core.service_events"; else echo "-v B=public.bins -v C=public.customers -v E=public.service_events"; fi; }
# raw DB B C E: groups whose maintained sums differ from the full
# computation, as bins/due/events (events: the last 39 days' hours and
# +infinity; the rebuild and the fold keep 40 days).
raw() {
    Q "$1" "WITH m AS (SELECT status, bin_type, material, sum(n) n, sum(gps) gps, sum(sensor) sensor,
                  sum(smart) smart, sum(fill_sum) fill_sum, sum(fill_n) fill_n, sum(cap_sum) cap_sum,
                  sum(cap_n) cap_n, sum(need_fill) need_fill FROM wm_agg_bins GROUP BY 1, 2, 3),
        mb AS (SELECT * FROM m WHERE (n, gps, sensor, smart, fill_sum, fill_n, cap_sum, cap_n, need_fill)
                  IS DISTINCT FROM (0, 0, 0, 0, 0, 0, 0, 0, 0)),
        live AS (SELECT b.* FROM $2 b JOIN $3 c ON c.id = b.customer_id
                  WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL),
        fb AS (SELECT CASE WHEN status IS NOT NULL THEN format('%s', status) END, CASE WHEN bin_type IS NOT NULL THEN format('%s', bin_type) END, CASE WHEN material IS NOT NULL THEN format('%s', material) END, count(*) n,
                  count(*) FILTER (WHERE gps_enabled) gps, count(*) FILTER (WHERE sensor_enabled) sensor,
                  count(*) FILTER (WHERE gps_enabled OR sensor_enabled) smart,
                  coalesce(sum(fill_level_percent), 0)::numeric fill_sum, count(fill_level_percent) fill_n,
                  coalesce(sum(capacity_cubic_yards), 0)::numeric cap_sum, count(capacity_cubic_yards) cap_n,
                  count(*) FILTER (WHERE status = 'active' AND fill_level_percent >= 80) need_fill
                  FROM live GROUP BY 1, 2, 3),
        md AS (SELECT bin_type, material, due, sum(n) n FROM wm_agg_bins_due GROUP BY 1, 2, 3 HAVING sum(n) <> 0),
        fd AS (SELECT CASE WHEN bin_type IS NOT NULL THEN format('%s', bin_type) END, CASE WHEN material IS NOT NULL THEN format('%s', material) END, next_service_date, count(*) n FROM live
                  WHERE status = 'active' AND (fill_level_percent >= 80) IS NOT TRUE
                  AND next_service_date IS NOT NULL GROUP BY 1, 2, 3),
        me AS (SELECT event_type, hour, sum(n) n FROM wm_agg_events WHERE hour >= now() - interval '39 days'
                  GROUP BY 1, 2 HAVING sum(n) <> 0),
        fe AS (SELECT CASE WHEN e.event_type IS NOT NULL THEN format('%s', e.event_type) END, date_trunc('hour', e.created_at, 'UTC') h, count(*) n
                  FROM $4 e JOIN $3 c ON c.id = e.customer_id
                  WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL
                  AND date_trunc('hour', e.created_at, 'UTC') >= now() - interval '39 days' GROUP BY 1, 2)
     SELECT (SELECT count(*) FROM ((TABLE mb EXCEPT TABLE fb) UNION ALL (TABLE fb EXCEPT TABLE mb)) x)
            || '/' || (SELECT count(*) FROM ((TABLE md EXCEPT TABLE fd) UNION ALL (TABLE fd EXCEPT TABLE md)) x)
            || '/' || (SELECT count(*) FROM ((TABLE me EXCEPT TABLE fe) UNION ALL (TABLE fe EXCEPT TABLE me)) x)"
}
bins_of() { if [ "$1" = wm_shape_app ]; then echo core.bins; else echo public.bins; fi; }
raw_of() { if [ "$1" = wm_shape_app ]; then raw "$1" core.bins operations.customers core.service_events; else raw "$1" public.bins public.customers public.service_events; fi; }
verify_empty() { Q "$1" "SELECT count(*) || coalesce(' ' || string_agg(item, ','), '') FROM wm_statistics_verify()"; }
temp_files() { Q "$1" "SELECT temp_files FROM pg_stat_database WHERE datname = current_database()"; }
# The old and infinite event buckets (none in the generated data).
OLD_BUCKETS="SELECT string_agg(format('%s@%s:%s', event_type,
                 CASE WHEN isfinite(hour) THEN to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') ELSE hour::text END,
                 n), ' ' ORDER BY hour, event_type)
               FROM (SELECT event_type, hour, sum(n) n FROM wm_agg_events
                      WHERE hour < '2000-01-02 00:00+00' OR NOT isfinite(hour) GROUP BY 1, 2 HAVING sum(n) <> 0) x"
for part in events bins spill_small spill_big; do
    for db in wm_shape_app wm_shape_public; do
        t0=$(temp_files $db)
        # shellcheck disable=SC2046
        psql -X -q -At -v ON_ERROR_STOP=1 -d $db $(tables $db) -v part=$part \
            -f "$WM_SRC/test/fixtures/shapes_writes.sql" >/dev/null
        if [ $part = events ]; then
            check "$db: events before 2000, at +-infinity, of a soft-deleted customer: their UTC hours" \
                "delivery@-infinity:1 pickup@1969-07-20 20:00:00:1 pickup@1999-12-31 23:00:00:2 inspection@2000-01-01 00:00:00:1 delivery@infinity:1" \
                "$(Q $db "$OLD_BUCKETS")"
        elif [ $part != bins ]; then
            t1=$(temp_files $db)
            check "$db: the $part writes (work_mem 64kB) spilled their transition tables" t "$([ "$t1" -gt "$t0" ] && echo t || echo "f ($t0 -> $t1)")"
        fi
        [ $part != spill_small ] || check "$db: the spill_small statement is under WM_BIG_STATEMENT_ROWS (1000) transition rows" t \
            "$(Q $db "SELECT 2 * count(*) < 1000 AND count(*) > 300 FROM $(bins_of $db) WHERE substr(md5(bin_number), 6, 1) < '3'")"
        check "$db: after the $part writes, maintained sums = full computation (bins/due/events groups differing)" \
            0/0/0 "$(raw_of $db)"
        check "$db: after the $part writes, wm_statistics_verify() finds no difference" 0 "$(verify_empty $db)"
    done
    check "after the $part writes, the same statistics in both shapes" \
        "$(Q wm_shape_app "SELECT wm_bin_statistics() - 'computedAt'")" \
        "$(Q wm_shape_public "SELECT wm_bin_statistics() - 'computedAt'")"
done

# More than the 64 enum labels record_delta() remembers per statement: the
# labels past them are output per row.
Q wm_shape_app "DO \$\$BEGIN FOR i IN 1..70 LOOP EXECUTE format('ALTER TYPE core.enum_bins_material ADD VALUE %L', 'm' || i); END LOOP; END\$\$" >/dev/null
Q wm_shape_app "UPDATE core.bins SET material = ('m' || (1 + abs(hashtext(bin_number)) % 70))::core.enum_bins_material WHERE substr(md5(bin_number), 8, 1) <> 'f'" >/dev/null
check "app shape: 70 more enum labels in one statement: 70 material groups with bins" 70 \
    "$(Q wm_shape_app "SELECT count(DISTINCT material) FROM wm_agg_bins WHERE material LIKE 'm%' AND n <> 0")"
check "app shape: 70 more enum labels: maintained sums = full computation" 0/0/0 "$(raw_of wm_shape_app)"
check "app shape: 70 more enum labels: wm_statistics_verify() finds no difference" 0 "$(verify_empty wm_shape_app)"

# The public shape altered before the extension attaches: int8 fill level
# and capacity (a group's sum past int64 goes on in numeric) and a
# char(12) status ('active' padded: active as bpchar compares).
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS wm_shape_int8" >/dev/null 2>&1
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE wm_shape_int8"
psql -X -q -v ON_ERROR_STOP=1 -d wm_shape_int8 -v scale=0.002 -f "$WM_SRC/test/fixtures/schema_public.sql" \
    -c "ALTER TABLE public.bins DROP CONSTRAINT bins_fill_level_percent_check,
          ALTER COLUMN fill_level_percent TYPE bigint, ALTER COLUMN capacity_cubic_yards TYPE bigint,
          ALTER COLUMN status TYPE char(12)" \
    -f "$WM_SRC/test/fixtures/generate.sql" >/dev/null 2>&1
Q wm_shape_int8 "CREATE EXTENSION wm_perf CASCADE" >/dev/null 2>&1
check "int8 shape: char(12) status: wm_statistics_verify() after the rebuild finds no difference" 0 "$(verify_empty wm_shape_int8)"
check "int8 shape: char(12) status: active counts the bins whose status = 'active'" t \
    "$(Q wm_shape_int8 "SELECT (wm_bin_statistics() ->> 'active')::bigint = count(*) AND count(*) > 0
                         FROM public.bins b JOIN public.customers c ON c.id = b.customer_id
                         WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL AND b.status = 'active'")"
Q wm_shape_int8 "CREATE TABLE rv_g AS SELECT b.id FROM public.bins b JOIN public.customers c ON c.id = b.customer_id
                  WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL AND b.status = 'active'
                  AND b.bin_type = 'dumpster' AND b.material IS NOT DISTINCT FROM 'steel'
                  ORDER BY b.bin_number LIMIT 3" >/dev/null
check "int8 shape: three live bins of one group" 3 "$(Q wm_shape_int8 "SELECT count(*) FROM rv_g")"
Q wm_shape_int8 "UPDATE public.bins SET fill_level_percent = 4611686018427387904, capacity_cubic_yards = 4611686018427387904 WHERE id IN (SELECT id FROM rv_g)" >/dev/null
check "int8 shape: one delta row holds the group's sums past int64" t \
    "$(Q wm_shape_int8 "SELECT max(fill_sum) > 9223372036854775807 AND max(cap_sum) > 9223372036854775807 FROM wm_agg_bins")"
check "int8 shape: sums past int64: maintained sums = full computation" 0/0/0 "$(raw wm_shape_int8 public.bins public.customers public.service_events)"
check "int8 shape: sums past int64: wm_statistics_verify() finds no difference" 0 "$(verify_empty wm_shape_int8)"
check "int8 shape: avgFillLevel is the exact average" t \
    "$(Q wm_shape_int8 "SELECT (wm_bin_statistics() ->> 'avgFillLevel')::numeric = round(avg(b.fill_level_percent), 2)
                         FROM public.bins b JOIN public.customers c ON c.id = b.customer_id
                         WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL")"
Q wm_shape_int8 "UPDATE public.bins SET deleted_at = now() WHERE id IN (SELECT id FROM rv_g)" >/dev/null
check "int8 shape: soft-deleted again (below int64): maintained sums = full computation" 0/0/0 "$(raw wm_shape_int8 public.bins public.customers public.service_events)"
check "int8 shape: soft-deleted again: wm_statistics_verify() finds no difference" 0 "$(verify_empty wm_shape_int8)"
psql -X -q -d postgres -c "DROP DATABASE wm_shape_int8"

for db in wm_shape_app wm_shape_public; do psql -X -q -d postgres -c "DROP DATABASE $db"; done
echo "shapes: $fails failure(s)"
[ "$fails" -eq 0 ]
