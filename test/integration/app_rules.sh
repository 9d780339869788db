#!/usr/bin/env bash
# Application-key rules (wm_cache_rules) against the real servers: a commit
# deletes exactly the keys its rows map to (values with glob characters
# escaped in glob keys); a rollback deletes nothing.
set -euo pipefail
: "${PGHOST:?}" "${PGPORT:?}" "${REDIS_PORT:?}" "${WM_SRC:?}"
DB=wm_integ_rules
R() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
Q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
fails=0
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1 (expected '$2', got '$3')"; fails=$((fails + 1)); fi
}

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -v scale=0.002 \
    -f "$WM_SRC/test/fixtures/schema.sql" -f "$WM_SRC/test/fixtures/generate.sql" >/dev/null
Q "CREATE EXTENSION wm_perf CASCADE" 2>/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -f "$WM_SRC/docs/cache_rules_example.sql" >/dev/null
check "example rules loaded" "t" "$(Q "SELECT count(*) >= 6 FROM wm_cache_rules")"

C1=$(Q "SELECT b.customer_id FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL ORDER BY b.bin_number LIMIT 1")
C2=$(Q "SELECT c.id FROM operations.customers c WHERE c.deleted_at IS NULL AND c.id <> '$C1' ORDER BY c.customer_number LIMIT 1")
B1=$(Q "SELECT id FROM core.bins WHERE customer_id = '$C1' AND deleted_at IS NULL ORDER BY bin_number LIMIT 1")

seed() {
    R mset waste_mgmt:stats:routes:global r waste_mgmt:stats:bins:global b \
        "waste_mgmt:stats:bins:customer:$C1" c1 "waste_mgmt:stats:bins:customer:$C2" c2 \
        waste_mgmt:stats:dashboard:global d "waste_mgmt:stats:dashboard:customer:$C1" dc1 \
        waste_mgmt:unrelated u >/dev/null
}
exists() { R exists "$1"; }
# Glob patterns and failed deletions are the worker's: wait until its queue
# (part of invalidations_pending) is empty, at most 10 s.
settle() {
    for _ in $(seq 200); do
        [ "$(Q "SELECT invalidations_pending FROM wm_perf_metrics WHERE function_name = 'invalidation'")" = 0 ] && return 0
        sleep 0.05
    done
    return 1
}

# A rolled-back change deletes nothing.
seed
psql -X -q -d "$DB" -c "BEGIN; UPDATE core.bins SET fill_level_percent = 99 WHERE id = '$B1'; ROLLBACK;"
check "rollback keeps customer key" 1 "$(exists "waste_mgmt:stats:bins:customer:$C1")"
check "rollback keeps global key" 1 "$(exists waste_mgmt:stats:bins:global)"

# A committed change to one bin: its customer's keys and the global ones.
Q "UPDATE core.bins SET fill_level_percent = 99 WHERE id = '$B1'"
check "bins global deleted" 0 "$(exists waste_mgmt:stats:bins:global)"
check "customer C1 key deleted" 0 "$(exists "waste_mgmt:stats:bins:customer:$C1")"
check "dashboard of C1 deleted" 0 "$(exists "waste_mgmt:stats:dashboard:customer:$C1")"
check "dashboard global deleted" 0 "$(exists waste_mgmt:stats:dashboard:global)"
check "customer C2 key kept" 1 "$(exists "waste_mgmt:stats:bins:customer:$C2")"
check "routes key kept" 1 "$(exists waste_mgmt:stats:routes:global)"
check "unrelated key kept" 1 "$(exists waste_mgmt:unrelated)"

# An update of nothing but updated_at deletes nothing.
seed
Q "UPDATE core.bins SET updated_at = updated_at + interval '1 second' WHERE id = '$B1'"
check "updated_at only keeps keys" 1 "$(exists "waste_mgmt:stats:bins:customer:$C1")"

# Routes: the routes key at commit, the dashboard keys (glob) by the worker.
seed
Q "UPDATE core.routes SET status = 'inactive' WHERE route_number = (SELECT min(route_number) FROM core.routes WHERE deleted_at IS NULL)"
check "routes key deleted at commit" 0 "$(exists waste_mgmt:stats:routes:global)"
settle; check "worker queue drained" 0 $?
check "glob: dashboard of C1 deleted" 0 "$(exists "waste_mgmt:stats:dashboard:customer:$C1")"
check "glob: dashboard global deleted" 0 "$(exists waste_mgmt:stats:dashboard:global)"
check "bins key kept on routes change" 1 "$(exists waste_mgmt:stats:bins:global)"
check "customer C2 key kept on routes change" 1 "$(exists "waste_mgmt:stats:bins:customer:$C2")"
check "unrelated key kept on routes change" 1 "$(exists waste_mgmt:unrelated)"

# Redis unresponsive at commit (CLIENT PAUSE longer than the command
# timeout): the commit succeeds, the UNLINK fails, and the worker deletes the
# keys once Redis answers again.
seed
before=$(Q "SELECT invalidations_retried FROM wm_perf_metrics WHERE function_name = 'invalidation'")
R client pause 700 all >/dev/null
Q "UPDATE core.bins SET fill_level_percent = 98 WHERE id = '$B1'"
sleep 0.8
settle; check "retry: worker queue drained" 0 $?
check "retry: customer C1 key deleted" 0 "$(exists "waste_mgmt:stats:bins:customer:$C1")"
check "retry: bins global deleted" 0 "$(exists waste_mgmt:stats:bins:global)"
check "retry: customer C2 key kept" 1 "$(exists "waste_mgmt:stats:bins:customer:$C2")"
check "retry: counted" t "$(Q "SELECT invalidations_retried > $before FROM wm_perf_metrics WHERE function_name = 'invalidation'")"

# Keys deleted are counted.
check "keys_deleted counted" t "$(Q "SELECT keys_deleted > 0 FROM wm_perf_metrics WHERE function_name = 'invalidation'")"

# Glob escaping does not depend on the order of the placeholders.  A column
# the table does not have becomes "*" and makes the key a glob; a value
# substituted into a glob has its own * ? [ ] escaped, also when its
# placeholder comes BEFORE the unknown one.  1.0 decided "glob" while
# expanding, so a value expanded before the first unknown placeholder went
# in unescaped: the customer number 'wm-esc*?[ab]' became the glob
# waste_mgmt:esc:wm-esc*?[ab]:*, which deleted other customers' keys
# (wm-escXYa, wm-esc-other-b) and missed the customer's own key (its "]"
# is no a or b).  The rule with the known placeholder last
# was escaped already; it is the control.
C3=$(Q "SELECT id FROM operations.customers WHERE deleted_at IS NULL AND status <> 'suspended' AND id NOT IN ('$C1', '$C2') ORDER BY customer_number LIMIT 1")
ESC_NUM='wm-esc*?[ab]'
Q "INSERT INTO wm_cache_rules (rule_name, table_role, key_pattern) VALUES
     ('esc_known_first', 'customers', 'waste_mgmt:esc:{customer_number}:{no_such_column}'),
     ('esc_known_last', 'customers', 'waste_mgmt:esc2:{no_such_column}:{customer_number}')"
Q "UPDATE operations.customers SET customer_number = '$ESC_NUM' WHERE id = '$C3'"
settle; check "escape: worker queue drained after the setup" 0 $?
R mset "waste_mgmt:esc:$ESC_NUM:1" own "waste_mgmt:esc:wm-escXYa:1" other \
    "waste_mgmt:esc:wm-esc-other-b:1" other "waste_mgmt:esc2:1:$ESC_NUM" own \
    "waste_mgmt:esc2:1:wm-escXYb" other >/dev/null
# A change of the customer's status: old and new row have that number.
Q "UPDATE operations.customers SET status = 'suspended' WHERE id = '$C3'"
settle; check "escape: worker queue drained" 0 $?
check "escape, known placeholder first: the customer's own key deleted" 0 "$(exists "waste_mgmt:esc:$ESC_NUM:1")"
check "escape, known placeholder first: key matching the unescaped * ? [ab] kept" 1 "$(exists "waste_mgmt:esc:wm-escXYa:1")"
check "escape, known placeholder first: another customer's key matching the unescaped glob kept" 1 "$(exists "waste_mgmt:esc:wm-esc-other-b:1")"
check "escape, known placeholder last: the customer's own key deleted" 0 "$(exists "waste_mgmt:esc2:1:$ESC_NUM")"
check "escape, known placeholder last: key matching the unescaped glob kept" 1 "$(exists "waste_mgmt:esc2:1:wm-escXYb")"
R del "waste_mgmt:esc:wm-escXYa:1" "waste_mgmt:esc:wm-esc-other-b:1" "waste_mgmt:esc2:1:wm-escXYb" >/dev/null

psql -X -q -d postgres -c "DROP DATABASE $DB"
echo "app_rules: $fails failure(s)"
[ "$fails" -eq 0 ]
