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

for db in wm_shape_app wm_shape_public; do psql -X -q -d postgres -c "DROP DATABASE $db"; done
echo "shapes: $fails failure(s)"
[ "$fails" -eq 0 ]
