#!/usr/bin/env bash
# `make valgrind`: the pg_regress and isolation suites against a server that
# runs under valgrind's memcheck, then every memcheck error whose stack
# passes through wm_perf.so or libhiredis.  Not part of `make test` (it
# takes many minutes); exits non-zero on such an error.
#
# Stock Debian servers are not built with USE_VALGRIND, so memcheck sees
# palloc'd memory only at the granularity of the allocator's malloc'd
# blocks: it still finds uninitialised values, invalid accesses outside
# those blocks, and invalid accesses and definite leaks in hiredis's own
# malloc'd memory.
# Errors whose stacks stay inside PostgreSQL (known false positives such as
# padding bytes written to WAL) are counted, not judged.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WM_PACKAGES="$WM_PACKAGES valgrind"

wm_install_deps
wm_build_install
wm_make_tmp
wm_start_redis

# pg_ctl -p: a wrapper that runs the postmaster under memcheck; backends and
# the background worker are forked, so they run under it too.
cat >"$WM_TMP/postgres-valgrind" <<EOF
#!/bin/sh
exec valgrind --quiet --trace-children=yes --track-origins=yes \\
    --leak-check=full --show-leak-kinds=definite \\
    --errors-for-leak-kinds=definite --num-callers=30 --error-limit=no --fullpath-after= \\
    --log-file=$WM_TMP/valgrind.%p.log $PG_BIN/postgres "\$@"
EOF
chmod 755 "$WM_TMP/postgres-valgrind"
# Everything is many times slower: longer Redis and lock timeouts.
WM_PG_CTL_OPTS="-p $WM_TMP/postgres-valgrind -t 600" wm_start_pg \
    "wm_perf.redis_connect_timeout = '2s'" "wm_perf.redis_command_timeout = '2s'" \
    "max_connections = 20"

log "copying the tree for the postgres user"
mkdir "$WM_TMP/src"
tar -C "$WM_SRC" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . | tar -C "$WM_TMP/src" -xf -
chown -R postgres: "$WM_TMP/src"
PGENV="PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=postgres REDIS_PORT=$REDIS_PORT"

suites_rc=0
log "pg_regress under valgrind"
as_pg env $PGENV make -C "$WM_TMP/src" -s PG_CONFIG=$PG_CONFIG regresscheck || suites_rc=1
# guc differs by design: this server has longer Redis timeouts.
[ -f "$WM_TMP/src/regression.diffs" ] && cat "$WM_TMP/src/regression.diffs"
log "isolation under valgrind"
as_pg env $PGENV make -C "$WM_TMP/src" -s PG_CONFIG=$PG_CONFIG isolationcheck || suites_rc=1
log "pg_regress without Redis and without shared_preload_libraries, under valgrind"
sed -i -e "s/^shared_preload_libraries = 'wm_perf'/#&/" -e "s/^wm_perf\.redis_host = /#&/" "$WM_TMP/pgdata/postgresql.conf"
as_pg $PG_BIN/pg_ctl -D "$WM_TMP/pgdata" -l "$WM_TMP/postgres.log" -p "$WM_TMP/postgres-valgrind" -t 600 -w restart >/dev/null
as_pg env $PGENV make -C "$WM_TMP/src" -s PG_CONFIG=$PG_CONFIG regresscheck-no-redis || suites_rc=1
# Stop now, so that every process has written its log.
as_pg $PG_BIN/pg_ctl -D "$WM_TMP/pgdata" -m fast -t 600 -w stop >/dev/null

log "memcheck errors"
# One error per block between blank lines of a log ("==pid== " prefixes).
# Our frames: our sources (full paths, --fullpath-after=), or hiredis.
OURS="$WM_SRC/src/|wm_perf\.so|libhiredis"
report=$WM_TMP/valgrind.report
: >"$report"
total=0
ours=0
for f in "$WM_TMP"/valgrind.*.log; do
    blocks=$(sed 's/^==[0-9]*== \{0,1\}//' "$f" | awk -v RS= -v ORS='\n\n' '/at 0x|by 0x/')
    [ -n "$blocks" ] || continue
    n=$(printf '%s' "$blocks" | awk -v RS= 'END { print NR }')
    m=$(printf '%s' "$blocks" | OURS="$OURS" awk -v RS= '$0 ~ ENVIRON["OURS"] { n++ } END { print n + 0 }')
    total=$((total + n))
    ours=$((ours + m))
    printf '%s' "$blocks" | OURS="$OURS" awk -v RS= -v ORS='\n\n' '$0 ~ ENVIRON["OURS"]' >>"$report"
done
cat "$report"
echo "memcheck errors by kind (all processes):"
cat "$WM_TMP"/valgrind.*.log | sed -n 's/^==[0-9]*== \([A-Z][A-Za-z].*\)$/\1/p' |
    grep -v '^\(at\|by\|Address\|Uninitialised value\|HEAP\|LEAK\)' | sort | uniq -c | sort -rn | head -20
echo "processes logged: $(ls "$WM_TMP"/valgrind.*.log | wc -l)"
echo "memcheck report paragraphs (errors, their origins, leaks): $total in all, $ours through wm_perf or hiredis"
[ "$suites_rc" -eq 0 ] || echo "note: a suite's output differed under valgrind (timing); see above"
[ "$ours" -eq 0 ]
