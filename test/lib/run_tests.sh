#!/usr/bin/env bash
# `make test`: set up from scratch, run every suite, print "N passed, N failed".
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
shopt -s nullglob

PASSED=0
FAILED=0
FAILURES=()

pass() { PASSED=$((PASSED + ${2:-1})); }
fail() { FAILED=$((FAILED + ${2:-1})); FAILURES+=("$1"); }

# count_tap NAME RC LOGFILE: one result per TAP assertion (prove/pg_prove
# summary); a file that failed without a countable assertion counts once.
count_tap() {
    local name=$1 rc=$2 out=$3 total failed
    total=$(sed -n 's/.*Tests=\([0-9]*\),.*/\1/p' "$out" | tail -1)
    failed=$(sed -n 's/.*Failed \([0-9]*\)\/[0-9]* subtests.*/\1/p' "$out" | tail -1)
    total=${total:-0}
    failed=${failed:-0}
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    [ "$total" -gt "$failed" ] && pass "$name" $((total - failed))
    [ "$failed" -gt 0 ] && fail "$name" "$failed"
    return 0
}

# count_lines NAME RC LOGFILE: "ok - ..." / "not ok - ..." lines of a script.
count_lines() {
    local name=$1 rc=$2 out=$3 oks bad
    oks=$(grep -c '^ok - ' "$out" || true)
    bad=$(grep -c '^not ok - ' "$out" || true)
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
    [ "$oks" -gt 0 ] && pass "$name" "$oks"
    [ "$bad" -gt 0 ] && fail "$name" "$bad"
    return 0
}

# count_node NAME RC LOGFILE: the summary of `node --test` (TAP reporter):
# "# pass N" passed; "# fail", "# cancelled", "# skipped" and "# todo" all
# count as failed (a skipped check is no check); a run that printed no
# summary or failed without a counted failure counts once.
count_node() {
    local name=$1 rc=$2 out=$3 oks bad n
    oks=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$out" | tail -1)
    bad=0
    for n in $(sed -n -E 's/^# (fail|cancelled|skipped|todo) ([0-9]+)$/\2/p' "$out"); do bad=$((bad + n)); done
    oks=${oks:-0}
    if { [ "$rc" -ne 0 ] || ! grep -q '^# tests [1-9]' "$out"; } && [ "$bad" -eq 0 ]; then bad=1; fi
    [ "$oks" -gt 0 ] && pass "$name" "$oks"
    [ "$bad" -gt 0 ] && fail "$name" "$bad"
    return 0
}

# count_pg_regress SUITE LOGFILE TEST...: every listed test that pg_regress
# did not report "ok" (failed, or never ran) counts as failed.
count_pg_regress() {
    local suite=$1 out=$2 name
    shift 2
    for name in "$@"; do
        if grep -Eq "^(test )?[[:space:]]*$name[[:space:]]+\.\.\. ok" "$out"; then pass; else fail "$suite/$name"; fi
    done
}
make_list() { sed -n "s/^$1 = //p" "$WM_SRC/Makefile"; }

wm_install_deps
# Assertions on, as pgvector's CI does against stock server packages.
wm_build_install -DUSE_ASSERT_CHECKING
wm_make_tmp
wm_start_redis
# pg_stat_statements for wm_index_missing() (sql/advice_missing.sql); the
# run without preload below shows its hint instead.
wm_start_pg "shared_preload_libraries = 'wm_perf,pg_stat_statements'"

# pg_regress and isolation write results/ next to the sources: work on a
# copy the postgres user owns.
log "copying the tree for the postgres user"
mkdir "$WM_TMP/src"
tar -C "$WM_SRC" --exclude=.git --exclude=node_modules --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . | tar -C "$WM_TMP/src" -xf -
chown -R postgres: "$WM_TMP/src"
PGENV="PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=postgres REDIS_PORT=$REDIS_PORT"

log "pg_regress"
if as_pg env $PGENV make -C "$WM_TMP/src" -s PG_CONFIG=$PG_CONFIG regresscheck >"$WM_TMP/regress.log" 2>&1; then :; fi
cat "$WM_TMP/regress.log"
count_pg_regress regress "$WM_TMP/regress.log" $(make_list REGRESS)
[ -f "$WM_TMP/src/regression.diffs" ] && cat "$WM_TMP/src/regression.diffs"

log "isolation"
if as_pg env $PGENV make -C "$WM_TMP/src" -s PG_CONFIG=$PG_CONFIG isolationcheck >"$WM_TMP/isolation.log" 2>&1; then :; fi
cat "$WM_TMP/isolation.log"
count_pg_regress isolation "$WM_TMP/isolation.log" $(make_list ISOLATION)
[ -f "$WM_TMP/src/output_iso/regression.diffs" ] && cat "$WM_TMP/src/output_iso/regression.diffs"

log "pgTAP"
wm_load_fixture wm_pgtap 0.002
psql -X -q -d wm_pgtap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION wm_perf CASCADE" >/dev/null 2>&1
for f in "$WM_SRC"/test/pgtap/*.sql; do
    rc=0
    pg_prove -h "$PGHOST" -p "$PGPORT" -U postgres -d wm_pgtap "$f" >"$WM_TMP/suite.log" 2>&1 || rc=$?
    cat "$WM_TMP/suite.log"
    count_tap "pgtap/$(basename "$f")" "$rc" "$WM_TMP/suite.log"
done

log "TAP (PostgreSQL::Test::Cluster)"
for f in "$WM_TMP"/src/test/t/*.pl; do
    rel=test/t/$(basename "$f")
    rc=0
    as_pg env REDIS_SERVER="$(command -v redis-server)" make -C "$WM_TMP/src" -s PG_CONFIG=$PG_CONFIG \
        tapcheck PROVE_TESTS="$rel" >"$WM_TMP/suite.log" 2>&1 || rc=$?
    cat "$WM_TMP/suite.log"
    count_tap "$rel" "$rc" "$WM_TMP/suite.log"
    if [ "$rc" -ne 0 ]; then
        tail -50 "$WM_TMP"/src/tmp_check/log/regress_log_* 2>/dev/null || true
    fi
done

log "integration"
for f in "$WM_SRC"/test/integration/*.sh; do
    rc=0
    env $PGENV WM_SRC="$WM_SRC" WM_TMP="$WM_TMP" bash "$f" >"$WM_TMP/suite.log" 2>&1 || rc=$?
    cat "$WM_TMP/suite.log"
    count_lines "integration/$(basename "$f")" "$rc" "$WM_TMP/suite.log"
done

# The application's Node stack (examples/node): its own cluster and a Redis
# with appendonly and a password; `npm ci` of the lockfile is its only fetch.
log "Node example (examples/node: pg, Sequelize, ioredis)"
rc=0
WM_PG_BIN=$PG_BIN bash "$WM_SRC/test/lib/run_node.sh" >"$WM_TMP/suite.log" 2>&1 || rc=$?
cat "$WM_TMP/suite.log"
count_node "node/examples/node" "$rc" "$WM_TMP/suite.log"

# Last, as it reconfigures the server the suites above shared.
log "pg_regress without Redis and without shared_preload_libraries"
sed -i -e "s/^shared_preload_libraries = /#&/" -e "s/^wm_perf\.redis_host = /#&/" "$WM_TMP/pgdata/postgresql.conf"
if as_pg $PG_BIN/pg_ctl -D "$WM_TMP/pgdata" -l "$WM_TMP/postgres.log" -w restart >/dev/null; then
    if as_pg env $PGENV make -C "$WM_TMP/src" -s PG_CONFIG=$PG_CONFIG regresscheck-no-redis >"$WM_TMP/regress.log" 2>&1; then :; fi
    cat "$WM_TMP/regress.log"
    count_pg_regress regress-no-redis "$WM_TMP/regress.log" $(make_list REGRESS_NO_REDIS)
    [ -f "$WM_TMP/src/regression.diffs" ] && cat "$WM_TMP/src/regression.diffs"
else
    tail -20 "$WM_TMP/postgres.log"
    for name in $(make_list REGRESS_NO_REDIS); do fail "regress-no-redis/$name"; done
fi

echo
if [ ${#FAILURES[@]} -gt 0 ]; then
    echo "failed: ${FAILURES[*]}"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
