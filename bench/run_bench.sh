#!/usr/bin/env bash
# `make bench`: plain SQL vs wm_perf on generated data, reported as ratios
# against the plain-SQL baseline measured in the same run.  Never a test.
#
#   WM_BENCH_SCALE   generator scale (default 1: 1M bins, 5M events)
#   WM_BENCH_SECONDS duration of each pgbench run (default 10)
#   WM_BENCH_SLOW_SECONDS duration of the runs of queries taking seconds
#                    (recomputations and misses, and the mixes; default 30)
#   WM_BENCH_ROUNDS  rounds of the comparisons that decide a goal within a
#                    few percent (miss vs plain, writes); default 3
#
# Those comparisons alternate their variants in rounds and report the mean
# tps of all rounds, so that drift (autovacuum, page cache, checkpoints)
# falls on every variant alike; each round's ratio is printed too.
source "$(dirname "${BASH_SOURCE[0]}")/../test/lib/common.sh"
SCALE=${WM_BENCH_SCALE:-1}
SECS=${WM_BENCH_SECONDS:-10}
SLOW_SECS=${WM_BENCH_SLOW_SECONDS:-30}
ROUNDS=${WM_BENCH_ROUNDS:-3}
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

wm_install_deps
wm_build_install
wm_make_tmp
wm_start_redis
# No checkpoint inside a run: each write run starts right after its own
# CHECKPOINT, so every variant pays the same full-page images.
wm_start_pg "shared_buffers = '2GB'" "max_connections = 50" \
    "max_wal_size = '20GB'" "checkpoint_timeout = '1h'"

log "loading scale $SCALE"
t0=$(date +%s)
wm_load_fixture bench "$SCALE"
psql -X -q -d bench -c "CREATE EXTENSION wm_perf CASCADE" >/dev/null 2>&1
psql -X -q -d bench -c "VACUUM ANALYZE" >/dev/null
echo "loaded and attached in $(( $(date +%s) - t0 )) s"
NBINS=$(psql -X -At -d bench -c "SELECT count(*) FROM core.bins")

# run NAME CLIENTS SCRIPT [extra pgbench args]: prints the run's tps; TPS
# keeps the mean over all runs of NAME/CLIENTS, ROUND_TPS the last one.
declare -A TPS TPS_SUM TPS_N
run() {
    local name=$1 clients=$2 script=$3
    shift 3
    local out
    out=$(pgbench -n -d bench -c "$clients" -j "$clients" -T "${RUN_SECS:-$SECS}" -D nbins="$NBINS" -f "$script" "$@" 2>&1)
    LAST_OUT=$out
    local tps
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    local lat
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    ROUND_TPS=$tps
    TPS_SUM["$name/$clients"]=$(awk -v a="${TPS_SUM[$name/$clients]:-0}" -v b="${tps:-0}" 'BEGIN { print a + b }')
    TPS_N["$name/$clients"]=$(( ${TPS_N[$name/$clients]:-0} + 1 ))
    TPS["$name/$clients"]=$(awk -v a="${TPS_SUM[$name/$clients]}" -v n="${TPS_N[$name/$clients]}" 'BEGIN { print a / n }')
    printf '%-34s clients=%d  tps=%12s  latency=%9s ms\n' "$name" "$clients" "$tps" "$lat"
}
ratio() { # ratio A B: latency(A)/latency(B) = tps(B)/tps(A), mean tps of all rounds
    awk -v a="${TPS[$1]}" -v b="${TPS[$2]}" 'BEGIN { if (a > 0) printf "%.4g", b / a; else print "n/a" }'
}
# round_ratios BASE X: latency(X)/latency(BASE) of each round, in order
declare -A ROUND_LIST
note_round() { ROUND_LIST["$1"]="${ROUND_LIST[$1]:-} $ROUND_TPS"; }
round_ratios() {
    paste -d' ' <(echo ${ROUND_LIST[$1]} | tr ' ' '\n') <(echo ${ROUND_LIST[$2]} | tr ' ' '\n') |
        awk '$2 > 0 { printf "%s%.4g", sep, $1 / $2; sep = " " } END { print "" }'
}

# Sections to run (all by default), e.g. WM_BENCH_SECTIONS="writes no_preload".
SECTIONS=${WM_BENCH_SECTIONS:-stats writes radius no_preload mixes}
section() { [[ " $SECTIONS " == *" $1 "* ]]; }

# autovacuum_writes off|on: no autovacuum of the written tables during the
# write sections (it would fall into one variant's run), after a VACUUM.
autovacuum_writes() {
    if [ "$1" = off ]; then
        psql -X -q -d bench -c "ALTER TABLE core.bins SET (autovacuum_enabled = off)" \
             -c "ALTER TABLE core.service_events SET (autovacuum_enabled = off)" -c "VACUUM core.bins"
    else
        psql -X -q -d bench -c "ALTER TABLE core.bins RESET (autovacuum_enabled)" \
             -c "ALTER TABLE core.service_events RESET (autovacuum_enabled)"
    fi
}

# write_run NAME CLIENTS: one write run, after a CHECKPOINT
write_run() {
    psql -X -q -d bench -c "CHECKPOINT"
    run "$1" "$2" "$BENCH/writes.sql"
    note_round "$1/$2"
}

if section stats; then
    log "statistics: plain SQL vs matview vs wm_perf hit / miss"
    # The fairest matview baseline: the finished statistics in a one-row matview.
    psql -X -q -d bench -c "CREATE MATERIALIZED VIEW bench_bin_stats_json AS SELECT wm_bin_statistics() AS s"
    for c in 1 2; do
        run matview_bin_stats "$c" "$BENCH/matview_bin_stats.sql"
        run matview_json "$c" "$BENCH/matview_json.sql"
        run select_1 "$c" "$BENCH/select_1.sql"
        # A hit served from the backend's local copy (the default with preload),
        # and one that always asks Redis (local copies off).
        run wm_bin_stats_hit "$c" "$BENCH/wm_bin_stats_hit.sql"
        export PGOPTIONS="-c wm_perf.local_cache_size=0"
        run wm_bin_stats_hit_redis "$c" "$BENCH/wm_bin_stats_hit.sql"
        unset PGOPTIONS
        # Plain SQL, a miss and a bypassed computation, alternating.
        for r in $(seq "$ROUNDS"); do
            RUN_SECS=$SLOW_SECS run plain_bin_stats "$c" "$BENCH/plain_bin_stats.sql"
            note_round "plain/$c"
            RUN_SECS=$SLOW_SECS run wm_bin_stats_miss "$c" "$BENCH/wm_bin_stats_miss.sql"
            note_round "miss/$c"
            RUN_SECS=$SLOW_SECS run wm_bin_stats_no_cache "$c" "$BENCH/wm_bin_stats_no_cache.sql"
            note_round "no_cache/$c"
        done
        run plain_route_stats "$c" "$BENCH/plain_route_stats.sql"
        run wm_route_stats_hit "$c" "$BENCH/wm_route_stats_hit.sql"
    done
    for c in 1 2; do
        echo "clients=$c: bin hit / one-row matview read = $(ratio wm_bin_stats_hit/$c matview_json/$c)x latency" \
             "(Redis hit, local copies off: $(ratio wm_bin_stats_hit_redis/$c matview_json/$c)x);" \
             "bin hit / aggregating mv_bin_statistics = $(ratio wm_bin_stats_hit/$c matview_bin_stats/$c)x;" \
             "hit vs plain recomputation = $(ratio plain_bin_stats/$c wm_bin_stats_hit/$c)x faster;" \
             "route hit vs plain = $(ratio plain_route_stats/$c wm_route_stats_hit/$c)x faster"
        echo "clients=$c: miss / plain = $(ratio wm_bin_stats_miss/$c plain_bin_stats/$c)x latency over $ROUNDS rounds" \
             "(rounds: $(round_ratios plain/$c miss/$c));" \
             "no-cache / plain = $(ratio wm_bin_stats_no_cache/$c plain_bin_stats/$c)x (rounds: $(round_ratios plain/$c no_cache/$c))"
    done
fi

if section writes; then
    log "writes: no trigger vs pg_notify trigger vs wm_perf triggers"
    autovacuum_writes off
    # write_variant NAME CLIENTS: set up the variant's triggers, then run it.
    write_variant() {
        psql -X -q -d bench -c "SET client_min_messages = warning" \
             -c "DROP TRIGGER IF EXISTS bench_notify ON core.bins" \
             -c "DROP TRIGGER IF EXISTS bench_notify ON core.service_events" \
             -c "SELECT count(*) FROM wm_perf_detach()" >/dev/null
        case $1 in
            writes_pg_notify) psql -X -q -d bench -f "$BENCH/notify_trigger.sql" >/dev/null ;;
            writes_wm_perf) psql -X -q -d bench -c "SELECT count(*) FROM wm_perf_attach()" >/dev/null ;;
        esac
        write_run "$1" "$2"
    }
    # The tables grow during the section (autovacuum is off), so a later run
    # is a little slower; the order of the variants rotates with each round,
    # so that no variant is always the last.
    variants=(writes_no_trigger writes_pg_notify writes_wm_perf)
    for c in 1 2; do
        for r in $(seq "$ROUNDS"); do
            for i in 0 1 2; do
                write_variant "${variants[$(( (i + r) % 3 ))]}" "$c"
            done
        done
        echo "clients=$c: wm_perf write cost = $(ratio writes_wm_perf/$c writes_no_trigger/$c)x latency of no trigger" \
             "(rounds: $(round_ratios writes_no_trigger/$c writes_wm_perf/$c));" \
             "pg_notify = $(ratio writes_pg_notify/$c writes_no_trigger/$c)x (rounds: $(round_ratios writes_no_trigger/$c writes_pg_notify/$c))"
    done
    # The rotation may end on another variant: leave wm_perf attached (and no
    # pg_notify trigger) for the sections that follow.
    psql -X -q -d bench -c "SET client_min_messages = warning" \
         -c "DROP TRIGGER IF EXISTS bench_notify ON core.bins" \
         -c "DROP TRIGGER IF EXISTS bench_notify ON core.service_events" \
         -c "SELECT count(*) FROM wm_perf_attach()" >/dev/null
    autovacuum_writes on
fi

if section radius; then
    log "radius lookups: wm_perf vs plain KNN vs filter-then-sort vs the application's query"
    psql -X -q -d bench -f "$BENCH/spatial_setup.sql" >/dev/null
    for r in 0.5 1 2 10; do
        for c in 1 2; do
            run "radius_wm_r$r" "$c" "$BENCH/radius_wm.sql" -D r=$r
            run "radius_knn_r$r" "$c" "$BENCH/radius_knn.sql" -D r=$r
            run "radius_sort_r$r" "$c" "$BENCH/radius_sort.sql" -D r=$r
            echo "r=$r km clients=$c: wm / plain KNN = $(ratio radius_wm_r$r/$c radius_knn_r$r/$c)x latency;" \
                 "filter-then-sort / wm = $(ratio radius_sort_r$r/$c radius_wm_r$r/$c)x"
        done
    done
    # The application's own query cannot use an index: a short run at 2 km.
    SECS_SAVED=$SECS; SECS=$(( SECS < 10 ? SECS : 10 ))
    run radius_app_r2 1 "$BENCH/radius_app.sql" -D r=2
    SECS=$SECS_SAVED
    echo "application query / wm at 2 km = $(ratio radius_app_r2/1 radius_wm_r2/1)x"
    # A full (non-partial) GiST index, for comparison with the partial one.
    psql -X -q -d bench -c "CREATE INDEX bench_full_gist ON core.bins USING gist ((location::geography))" \
         -c "DROP INDEX core.bins_location_active_gist_idx" -c "ANALYZE core.bins"
    run radius_knn_full_r2 1 "$BENCH/radius_knn.sql" -D r=2
    echo "plain KNN on a full GiST / on the partial GiST at 2 km = $(ratio radius_knn_full_r2/1 radius_knn_r2/1)x"
    psql -X -q -d bench -c "DROP INDEX core.bench_full_gist" -c "SELECT count(*) FROM wm_perf_attach()" >/dev/null
    log "exactness: plain KNN vs the exact nearest (360 samples)"
    psql -X -d bench -f "$BENCH/radius_exactness.sql"
    echo "p50/p99 of wm_bins_within_radius at 10 km, 2 clients:"
    pgbench -n -d bench -c 2 -j 2 -T "$SECS" -D nbins="$NBINS" -D r=10 -f "$BENCH/radius_wm.sql" -l --log-prefix="$WM_TMP/wmlat" >/dev/null 2>&1
    cat "$WM_TMP"/wmlat.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "p50 = %.3f ms, p99 = %.3f ms (n = %d)\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, NR}'
fi

if section no_preload; then
    log "writes without shared_preload_libraries (a Redis round trip at each writing commit)"
    autovacuum_writes off
    # A restarted server has cold buffers: its own baseline, after a warm-up.
    sed -i "s/^shared_preload_libraries = 'wm_perf'/#&/" "$WM_TMP/pgdata/postgresql.conf"
    as_pg $PG_BIN/pg_ctl -D "$WM_TMP/pgdata" -l "$WM_TMP/postgres.log" -w restart >/dev/null
    psql -X -q -d bench -c "SELECT count(*) FROM wm_perf_detach()" >/dev/null
    RUN_SECS=$SLOW_SECS run warm_up 2 "$BENCH/writes.sql" >/dev/null
    for c in 1 2; do
        for r in $(seq "$ROUNDS"); do
            psql -X -q -d bench -c "SELECT count(*) FROM wm_perf_detach()" >/dev/null
            write_run writes_no_trigger_no_preload "$c"
            psql -X -q -d bench -c "SELECT count(*) FROM wm_perf_attach()" >/dev/null
            write_run writes_wm_perf_no_preload "$c"
        done
        echo "clients=$c: wm_perf without preload = $(ratio writes_wm_perf_no_preload/$c writes_no_trigger_no_preload/$c)x" \
             "latency of no trigger (rounds: $(round_ratios writes_no_trigger_no_preload/$c writes_wm_perf_no_preload/$c))"
    done
    psql -X -q -d bench -c "SELECT count(*) FROM wm_perf_attach()" >/dev/null
    sed -i "s/^#\(shared_preload_libraries = 'wm_perf'\)/\1/" "$WM_TMP/pgdata/postgresql.conf"
    as_pg $PG_BIN/pg_ctl -D "$WM_TMP/pgdata" -l "$WM_TMP/postgres.log" -w restart >/dev/null
    autovacuum_writes on
fi

if section mixes; then
    log "95/5 read/write mixes: hit ratio and stale reads"
    # Every write changes bin statistics, so the read after it must miss: with
    # bin-statistics reads only, an exact cache's expected hit ratio is at most
    # 1 - p, p the share of writes (0.95 at 95/5; docs/benchmarks.md).  The
    # dashboard mix reads route and bin statistics in each read transaction,
    # as the application's dashboard does.  Every read is checked against the
    # pickups recorded as committed before it began (bench/mix_read.sql).
    psql -X -q -d bench \
         -c "CREATE TABLE IF NOT EXISTS bench_mix_done (at timestamptz NOT NULL DEFAULT clock_timestamp())" \
         -c "CREATE TABLE IF NOT EXISTS bench_stale_reads (seen bigint, expected bigint, at timestamptz NOT NULL DEFAULT clock_timestamp())"
    final_check() {
        psql -X -At -d bench -c "SELECT CASE WHEN (wm_bin_statistics() - 'computedAt') = (SELECT wm_bin_statistics() - 'computedAt' FROM (SELECT set_config('wm_perf.cache_enabled', 'off', true)) s) AND (wm_route_statistics() - 'computedAt') = (SELECT wm_route_statistics() - 'computedAt' FROM (SELECT set_config('wm_perf.cache_enabled', 'off', true)) s) THEN 'final reads exact: yes' ELSE 'final reads exact: NO' END"
    }
    # mix_run READ_SCRIPT CLIENTS ONE_XACT: one 95/5 run; ONE_XACT 1 commits a
    # pickup as one transaction, 0 as two (bench/mix_write.sql).
    mix_run() {
        local mix=$1 c=$2 one=$3 base day0 day1
        psql -X -q -d bench -c "TRUNCATE bench_mix_done, bench_stale_reads" -c "SELECT wm_perf_metrics_reset()" >/dev/null
        base=$(psql -X -q -At -d bench -c "SET wm_perf.cache_enabled = off" \
                    -c "SELECT wm_bin_statistics() -> 'serviceEventsLast30Days' ->> 'total'")
        day0=$(psql -X -At -d bench -c "SELECT current_date")
        RUN_SECS=$((SLOW_SECS * 2)) run "${mix}_95_5_xact$one" "$c" "$BENCH/$mix.sql@95" \
            -f "$BENCH/mix_write.sql@5" -D base="$base" -D one_xact="$one"
        day1=$(psql -X -At -d bench -c "SELECT current_date")
        echo "$LAST_OUT" | grep -E '^SQL script|^ - [0-9]+ transactions' | paste - - | sed 's/^/    /'
        psql -X -d bench -c "SELECT function_name, calls, cache_hits, local_hits, cache_misses, cache_bypasses, hit_ratio FROM wm_perf_metrics WHERE calls > 0"
        local reads
        reads=$(echo "$LAST_OUT" | awk '/^SQL script 1:/ { f = 1 } f && /^ - [0-9]+ transactions/ { print $2; exit }')
        psql -X -At -d bench -c "SELECT 'stale reads: ' || count(*) || ' of $reads reads checked (' || (SELECT count(*) FROM bench_mix_done) || ' pickups recorded)' FROM bench_stale_reads"
        [ "$day0" = "$day1" ] || echo "the date changed during the run: events left the 30-day window, so the stale check does not hold"
        final_check
    }
    for mix in mix_read mix_dashboard; do
        for c in 1 2; do
            mix_run "$mix" "$c" 1
        done
    done
    # For comparison: a pickup as two commits, two invalidations per write.
    mix_run mix_read 2 0
    # The check can fail: with wm_perf's triggers disabled (nothing is
    # invalidated), it must find stale reads.  Then they are enabled again
    # as they were, and the cache flushed.
    log "stale-read check, with invalidation disabled: it must find stale reads"
    # triggers disable|restore: wm_perf's triggers on the written tables
    triggers() {
        psql -X -q -d bench -v ON_ERROR_STOP=1 -c "DO \$\$ DECLARE t record; BEGIN
            FOR t IN SELECT tg.tgrelid::regclass AS tbl, tg.tgname, s.tgenabled
                       FROM pg_trigger tg JOIN bench_trigger_state s ON s.oid = tg.oid LOOP
                EXECUTE format('ALTER TABLE %s %s TRIGGER %I', t.tbl,
                    CASE WHEN '$1' = 'disable' THEN 'DISABLE'
                         ELSE CASE t.tgenabled WHEN 'O' THEN 'ENABLE' WHEN 'A' THEN 'ENABLE ALWAYS'
                                               WHEN 'R' THEN 'ENABLE REPLICA' ELSE 'DISABLE' END END,
                    t.tgname);
            END LOOP; END \$\$"
    }
    psql -X -q -d bench -c "CREATE TABLE bench_trigger_state AS SELECT oid, tgenabled FROM pg_trigger
                             WHERE tgfoid = 'wm_invalidate_cache()'::regprocedure
                               AND tgrelid IN ('core.bins'::regclass, 'core.service_events'::regclass)"
    triggers disable
    selftest=$(SLOW_SECS=$(( (SECS + 1) / 2 )) mix_run mix_read 1 1 || true)
    triggers restore
    echo "$selftest" | grep -E '^stale reads|SQL script'
    if echo "$selftest" | grep -qE '^stale reads: [1-9]'; then
        echo "stale-read check self-test: PASSED (it found the stale reads)"
    else
        echo "stale-read check self-test: FAILED (no stale read found with invalidation disabled)"
    fi
    psql -X -At -d bench -c "SELECT CASE WHEN count(*) = 0 THEN 'triggers restored' ELSE 'triggers NOT restored' END FROM pg_trigger t JOIN bench_trigger_state s USING (oid) WHERE t.tgenabled <> s.tgenabled" \
         -c "SELECT wm_cache_flush() IS NOT NULL AS flushed" -c "DROP TABLE bench_trigger_state"
fi
