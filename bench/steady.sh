#!/usr/bin/env bash
# `make bench-steady`: the statistics under a steady stream of pickups (issue
# 12): dashboards read wm_bin_statistics() and wm_route_statistics() at a
# fixed request rate while pickups commit at a fixed rate, every read checked;
# then what the maintained aggregates cost the writers.  Figures are ratios
# against the plain-SQL baselines measured in the same run.  Never a test.
#
#   WM_BENCH_SCALE        generator scale (default 1: 1M bins, 5M events)
#   WM_BENCH_SECONDS      duration of each run at one pickup rate (default 30)
#   WM_BENCH_RATES        pickups per second (default "0 0.5 2 8"; 0: no writer)
#   WM_BENCH_READ_RATE    reads per second of each statistic (default 20)
#   WM_BENCH_CHECK_RATE   whole-value checks per second (default 1; at scale 1
#                         one check takes seconds, so they run back to back)
#   WM_BENCH_WRITE_SECONDS duration of each unthrottled write run (default 10)
#   WM_BENCH_ROUNDS       rounds of the write and UPDATE comparisons (default 3)
#   WM_BENCH_UPDATE_ROWS  rows of the bulk UPDATE (default 100000)
#   WM_BENCH_SECTIONS     default "steady customer selftest writes update";
#                         also "standby" (the reads on a streaming hot standby)
#   WM_BENCH_STANDBY_RATES pickups per second of the standby section
#                         (default "0 2 8")
#
# Open loop: pgbench -R schedules each transaction at a fixed mean rate
# (Poisson), and its latency (pgbench -l, field 3) is measured from the
# scheduled start, so it includes any wait behind a slow call.  Percentiles
# are computed from those logs (nearest rank).
source "$(dirname "${BASH_SOURCE[0]}")/../test/lib/common.sh"
SCALE=${WM_BENCH_SCALE:-1}
SECS=${WM_BENCH_SECONDS:-30}
RATES=${WM_BENCH_RATES:-0 0.5 2 8}
READ_RATE=${WM_BENCH_READ_RATE:-20}
CHECK_RATE=${WM_BENCH_CHECK_RATE:-1}
WRITE_SECS=${WM_BENCH_WRITE_SECONDS:-10}
ROUNDS=${WM_BENCH_ROUNDS:-3}
UPDATE_ROWS=${WM_BENCH_UPDATE_ROWS:-100000}
SECTIONS=${WM_BENCH_SECTIONS:-steady customer selftest writes update}
SB_RATES=${WM_BENCH_STANDBY_RATES:-0 2 8}
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
section() { [[ " $SECTIONS " == *" $1 "* ]]; }

wm_install_deps
wm_build_install
wm_make_tmp
# The standby section's server is stopped first, then wm_stop_all's.
SBDATA=$WM_TMP/standby
stop_standby() {
    local spid
    if [ -f "$SBDATA/postmaster.pid" ]; then
        spid=$(head -1 "$SBDATA/postmaster.pid")
        as_pg $PG_BIN/pg_ctl -D "$SBDATA" -m fast -w stop >/dev/null 2>&1 || kill "$spid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    fi
}
trap 'stop_standby; wm_stop_all' EXIT
wm_start_redis
# As run_bench.sh: no checkpoint inside a run.
wm_start_pg "shared_buffers = '2GB'" "max_connections = 50" \
    "max_wal_size = '20GB'" "checkpoint_timeout = '1h'"

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB;" \
     "$(psql -X -At -d postgres -c "SELECT split_part(version(), ',', 1)");" \
     "$(redis-server --version | awk '{ print $1, $2, $3 }'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "loading scale $SCALE"
t0=$(date +%s)
wm_load_fixture bench "$SCALE"
psql -X -q -d bench -c "CREATE EXTENSION wm_perf CASCADE" >/dev/null 2>&1
psql -X -q -d bench -c "VACUUM ANALYZE" >/dev/null
echo "loaded and attached in $(( $(date +%s) - t0 )) s"
psql -X -q -v ON_ERROR_STOP=1 -d bench -f "$BENCH/steady_setup.sql" >/dev/null
NBINS=$(psql -X -At -d bench -c "SELECT count(*) FROM core.bins")
NCUST=$(psql -X -At -d bench -c "SELECT count(*) FROM operations.customers")
NEVENTS=$(psql -X -At -d bench -c "SELECT count(*) FROM core.service_events")
echo "$NBINS bins, $NCUST customers, $NEVENTS service events"
NLIVE=$(psql -X -At -d bench -c "SELECT count(*) FROM bench_customers")
PGB=(pgbench -n -d bench -D nbins="$NBINS" -D ncustomers="$NCUST" -D nlive="$NLIVE")
mkdir -p "$WM_TMP/lat"

# lat NAME RATE: the prefix of a run's pgbench logs (0.5 -> r0p5, so that
# no prefix is the start of another one's name).
lat() { echo "$WM_TMP/lat/${1}_r${2//./p}"; }
# pct PREFIX: "p50 p95 p99 n" (ms) of the transactions pgbench -l logged
# under PREFIX.*, without each connection's first (it loads the library and
# prepares the plans: about 20 ms, once per connection).
pct() {
    { cat "$1".* 2>/dev/null || true; } | awk '$2 > 1 { print $3 }' | sort -n |
        awk 'function at(q,  i) { i = int(NR * q); if (i < NR * q) i++; if (i < 1) i = 1; return a[i] / 1000 }
             { a[NR] = $1 }
             END { if (NR == 0) print "n/a n/a n/a 0"; else printf "%.2f %.2f %.2f %d\n", at(0.5), at(0.95), at(0.99), NR }'
}
# lines FILE: its number of lines (0 if there is none)
lines() { { cat "$1" 2>/dev/null || true; } | wc -l; }
# ntx PREFIX: the number of transactions logged under PREFIX.*, all of them
ntx() { { cat "$1".* 2>/dev/null || true; } | wc -l; }
# Fields of a pct result.
p50() { echo "$1" | awk '{ print $1 }'; }
p95() { echo "$1" | awk '{ print $2 }'; }
cnt() { echo "$1" | awk '{ print $4 }'; }
# div A B: A / B, 3 significant digits
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.3g", a / b; else print "n/a" }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a + 0 <= b + 0) }'; }

# phase RATE NAME pgbench-args... [+ pgbench-args...]: one reader run
# (pgbench -T SECS, logged under $WM_TMP/lat/NAME_rRATE; a second reader
# after "+", concurrently, under ..._2) while pickups arrive at RATE per
# second (pgbench -R RATE -c 1, logged under ..._w).  READER_PGOPTIONS goes
# to the readers only.  Sets STALE (stale reads recorded), MISMATCH (whole
# values that differed), PICKUPS (the pickups' latencies), DAYCHANGE (the
# date changed: the 30-day window moved).  With READER_PORT set, the
# readers connect to that server (the hot standby: see wait_replay); what
# they cannot insert there they append to the files ${tag}_stale and
# ${tag}_mismatch (-D stalefile, mismatchfile), counted in STALE and
# MISMATCH as well.
phase() {
    local rate=$1 name=$2 day0 day1 base pids=() args=() tag n=1 rport=${READER_PORT:-$PGPORT}
    shift 2
    tag=$(lat "$name" "$rate")
    psql -X -q -d bench -c "TRUNCATE bench_mix_done, bench_stale_reads, bench_mismatches" \
         -c "SELECT wm_perf_metrics_reset()" >/dev/null
    rm -f "${tag}_stale" "${tag}_mismatch"
    if [ "$rport" != "$PGPORT" ]; then
        psql -X -q -p "$rport" -d bench -c "SELECT wm_perf_metrics_reset()" >/dev/null
        wait_replay "$rport"
    fi
    day0=$(psql -X -At -d bench -c "SELECT current_date")
    # Counted where the readers read (a standby may not have replayed all).
    base=$(psql -X -At -p "$rport" -d bench -c "SELECT bench_plain_event_count()")
    if awk -v r="$rate" 'BEGIN { exit !(r > 0) }'; then
        "${PGB[@]}" -c 1 -j 1 -R "$rate" -T "$SECS" -D record=1 -f "$BENCH/pickup.sql" \
            -l --log-prefix="${tag}_w" >"${tag}_out_w" 2>&1 &
        pids+=($!)
    fi
    # reader N ARGS...: start one reader in the background
    reader() {
        local prefix=$tag
        [ "$1" = 1 ] || prefix=${tag}_$1
        PGOPTIONS=${READER_PGOPTIONS:-} "${PGB[@]}" -p "$rport" -T "$SECS" -D base="$base" \
            -D stalefile="${tag}_stale" -D mismatchfile="${tag}_mismatch" -l --log-prefix="$prefix" \
            "${@:2}" >"${tag}_out_$1" 2>&1 &
        pids+=($!)
    }
    for a in "$@"; do
        if [ "$a" = + ]; then
            reader "$n" "${args[@]}"
            n=$(( n + 1 )); args=()
        else
            args+=("$a")
        fi
    done
    reader "$n" "${args[@]}"
    for p in "${pids[@]}"; do
        wait "$p" || echo "a pgbench of $name failed (rc $?)"
    done
    day1=$(psql -X -At -d bench -c "SELECT current_date")
    DAYCHANGE=$([ "$day0" = "$day1" ] && echo "" || echo " (the date changed during the run: the stale check does not hold)")
    STALE=$(( $(psql -X -At -d bench -c "SELECT count(*) FROM bench_stale_reads") + $(lines "${tag}_stale") ))
    MISMATCH=$(( $(psql -X -At -d bench -c "SELECT count(*) FROM bench_mismatches") + $(lines "${tag}_mismatch") ))
    PICKUPS=$(pct "${tag}_w")
    LOADAVG=$(cut -d' ' -f1 /proc/loadavg)
    grep -hE "failed transactions: [1-9]|aborted|ERROR|FATAL" "${tag}"_out_* | head -5 || true
}

# wait_replay PORT: until the standby on PORT has replayed the primary's WAL
# written so far (at most 300 s).
wait_replay() {
    local lsn
    lsn=$(psql -X -At -d bench -c "SELECT pg_current_wal_lsn()")
    for _ in $(seq 3000); do
        [ "$(psql -X -At -p "$1" -d bench -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return 0
        sleep 0.1
    done
    echo "the standby on port $1 has not replayed $lsn in 300 s" >&2
    return 1
}

# verify [PORT]: the differences wm_statistics_verify() finds (0 when
# exact), on the server on PORT (default the primary), and the rows if any;
# a row "not maintained for this caller" means that calls compute in full
# (agg_sizes says whether piled-up deltas are the reason).
verify() {
    local port=${1:-$PGPORT}
    VERIFY=$(psql -X -At -p "$port" -d bench -c "SELECT count(*) FROM wm_statistics_verify()")
    [ "$VERIFY" = 0 ] || psql -X -p "$port" -d bench -c "SELECT * FROM wm_statistics_verify() LIMIT 10"
}
# agg_sizes: blocks of the maintained tables against the limit past which a
# call computes in full (maintain.c: max(1024, a quarter of the blocks of
# bins and service_events in pg_class.relpages)).
agg_sizes() {
    psql -X -At -d bench -c "SELECT 'maintained tables: ' || string_agg(relname || ' ' || pg_relation_size(oid) / 8192
                                    || ' blocks (' || n_live_tup || ' live, ' || n_dead_tup || ' dead rows)', ', ' ORDER BY relname)
                                    || '; limit ' || (SELECT greatest(1024, sum(relpages) / 4) FROM pg_class
                                                       WHERE oid IN ('core.bins'::regclass, 'core.service_events'::regclass))
                               FROM pg_class JOIN pg_stat_user_tables USING (relname)
                              WHERE relname IN ('wm_agg_bins', 'wm_agg_bins_due', 'wm_agg_events')"
}

declare -A R
if section steady; then
    log "steady writes: pickups at ${RATES// /, } per second, reads at $READ_RATE/s of each statistic, ${SECS} s each"
    for rate in $RATES; do
        log "pickups at $rate per second"
        # The dashboards: bin and route statistics, READ_RATE each, from two
        # pgbench processes (a slow call of one statistic does not hold up
        # the other's connections), cache on (the default).
        phase "$rate" dash -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/steady_bin_read.sql" \
            + -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/steady_route_read.sql"
        R[bins/$rate]=$(pct "$(lat dash "$rate")")
        R[routes/$rate]=$(pct "$(lat dash "$rate")_2")
        R[stale/$rate]=$STALE
        R[pickups/$rate]=$PICKUPS
        R[day/$rate]=$DAYCHANGE
        R[done/$rate]=$(psql -X -At -d bench -c "SELECT count(*) FROM bench_mix_done")
        psql -X -d bench -c "SELECT function_name, calls, cache_hits, local_hits, cache_misses, cache_bypasses, hit_ratio,
                                    round(avg_time_ms::numeric, 3) AS avg_ms, round(max_time_ms::numeric, 3) AS max_ms
                               FROM wm_perf_metrics WHERE calls > 0 ORDER BY 1"
        psql -X -At -d bench -c "SELECT statistic, seen, expected, at FROM bench_stale_reads ORDER BY at LIMIT 5"
        echo "dashboard: bins ${R[bins/$rate]}, routes ${R[routes/$rate]} (p50 p95 p99 ms, n); stale reads $STALE;" \
             "pickups ${R[pickups/$rate]} (${R[done/$rate]} counted); load average $LOADAVG${DAYCHANGE}"
        # The maintained aggregates read by every call (cache off).
        READER_PGOPTIONS="-c wm_perf.cache_enabled=off" phase "$rate" maintained -c 2 -j 2 -R "$READ_RATE" \
            -f "$BENCH/steady_bin_read.sql"
        R[maint/$rate]=$(pct "$(lat maintained "$rate")")
        R[maint_stale/$rate]=$STALE
        R[reads/$rate]=$(( $(ntx "$(lat dash "$rate")") + $(ntx "$(lat dash "$rate")_2") + $(ntx "$(lat maintained "$rate")") ))
        echo "maintained (cache off): ${R[maint/$rate]}; stale reads $STALE${DAYCHANGE}"
        # Baselines under the same writes: the one-row matview at the same
        # rate; the full computations and the aggregating matview closed-loop
        # (at scale 1 they take longer than the interval between requests).
        phase "$rate" matview_json -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/matview_json.sql"
        R[mvjson/$rate]=$(pct "$(lat matview_json "$rate")")
        phase "$rate" plain_bins -c 1 -j 1 -f "$BENCH/plain_bin_stats.sql"
        R[plain/$rate]=$(pct "$(lat plain_bins "$rate")")
        phase "$rate" plain_routes -c 1 -j 1 -f "$BENCH/plain_route_stats.sql"
        R[plainr/$rate]=$(pct "$(lat plain_routes "$rate")")
        phase "$rate" matview_agg -c 1 -j 1 -f "$BENCH/matview_bin_stats.sql"
        R[mvagg/$rate]=$(pct "$(lat matview_agg "$rate")")
        echo "one-row matview ${R[mvjson/$rate]}; plain bins ${R[plain/$rate]}; plain routes ${R[plainr/$rate]};" \
             "mv_bin_statistics ${R[mvagg/$rate]}"
        # Whole values, REPEATABLE READ, against plain SQL.
        phase "$rate" check -c 1 -j 1 -R "$CHECK_RATE" -f "$BENCH/steady_check.sql"
        R[checks/$rate]=$(ntx "$(lat check "$rate")")
        R[mismatch/$rate]=$MISMATCH
        psql -X -At -d bench -c "SELECT at, wm_bins, plain_bins FROM bench_mismatches ORDER BY at LIMIT 2"
        verify
        R[verify/$rate]=$VERIFY
        echo "whole-value checks ${R[checks/$rate]}, mismatches $MISMATCH${DAYCHANGE}; wm_statistics_verify(): $VERIFY differences"
        agg_sizes
    done

    log "summary (ms; open-loop p50 / p95 at $READ_RATE reads/s of each statistic, 2 clients each)"
    pp() { echo "$(p50 "$1") / $(p95 "$1")"; }
    printf '| pickups/s | wm_bin_statistics() | wm_route_statistics() | maintained, cache off | one-row matview | full computation (plain SQL, closed loop) | plain route SQL (closed loop) | mv_bin_statistics (closed loop) | pickup | stale reads | whole-value checks (mismatches) | verify |\n'
    printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
    for rate in $RATES; do
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (%s) | %s |\n' "$rate" \
            "$(pp "${R[bins/$rate]}")" "$(pp "${R[routes/$rate]}")" "$(pp "${R[maint/$rate]}")" \
            "$(pp "${R[mvjson/$rate]}")" "$(pp "${R[plain/$rate]}")" "$(pp "${R[plainr/$rate]}")" \
            "$(pp "${R[mvagg/$rate]}")" "$( [ "$rate" = 0 ] && echo - || pp "${R[pickups/$rate]}")" \
            "$(( R[stale/$rate] + R[maint_stale/$rate] )) of ${R[reads/$rate]}" \
            "${R[checks/$rate]}" "${R[mismatch/$rate]}" "${R[verify/$rate]}"
    done
    for rate in $RATES; do
        b=$(p95 "${R[bins/$rate]}"); r=$(p95 "${R[routes/$rate]}")
        echo "pickups $rate/s: bin p95 / full computation p95 = $(div "$b" "$(p95 "${R[plain/$rate]}")")x," \
             "bin p50 / one-row matview p50 = $(div "$(p50 "${R[bins/$rate]}")" "$(p50 "${R[mvjson/$rate]}")")x," \
             "maintained (cache off) p95 / full p95 = $(div "$(p95 "${R[maint/$rate]}")" "$(p95 "${R[plain/$rate]}")")x," \
             "route p95 / plain route p95 = $(div "$r" "$(p95 "${R[plainr/$rate]}")")x;" \
             "goals: bin p95 <= 5 ms $(le "$b" 5 && echo met || echo NOT met)," \
             "route p95 <= 2 ms $(le "$r" 2 && echo met || echo NOT met)," \
             "0 stale $([ $(( R[stale/$rate] + R[maint_stale/$rate] + R[mismatch/$rate] + R[verify/$rate] )) = 0 ] && echo met || echo NOT met)${R[day/$rate]}"
    done
fi

if section standby; then
    # A streaming hot standby of the bench cluster, configured like it
    # (pg_basebackup copies postgresql.conf: preload, the wm_perf settings,
    # shared_buffers), on its own free loopback port and the same socket
    # directory, with hot_standby_feedback (a check's snapshot of seconds is
    # not cancelled by the primary's pruning).  A standby never uses the
    # cache (cache.c), so every call there reads the maintained state (bins)
    # or computes (routes, which are not maintained) under its own snapshot.
    log "hot standby: pg_basebackup -R of the bench cluster"
    t0=$(date +%s)
    psql -X -q -d bench -c "CHECKPOINT"
    as_pg $PG_BIN/pg_basebackup -D "$SBDATA" -R -X stream -c fast -h "$WM_TMP" -p "$PGPORT" -U postgres
    SBPORT=$(wm_free_port)
    { echo "port = $SBPORT"; echo "hot_standby = on"; echo "hot_standby_feedback = on"; } >>"$SBDATA/postgresql.conf"
    as_pg $PG_BIN/pg_ctl -D "$SBDATA" -l "$WM_TMP/standby.log" -w -t 600 start >/dev/null
    wait_replay "$SBPORT"
    echo "standby on port $SBPORT, in recovery: $(psql -X -At -p "$SBPORT" -d bench -c "SELECT pg_is_in_recovery()");" \
         "copied and replayed in $(( $(date +%s) - t0 )) s"
    # Which path a standby call takes (stats.c logs it at DEBUG1).
    psql -X -p "$SBPORT" -d bench -c "SET client_min_messages = debug1" -c "SELECT wm_bin_statistics() IS NOT NULL" 2>&1 |
        grep -o "wm_perf bin statistics [a-z ]*" || echo "no DEBUG1 line from wm_bin_statistics() on the standby"
    verify "$SBPORT"
    echo "standby: wm_statistics_verify(): $VERIFY differences"
    log "standby reads: pickups on the primary at ${SB_RATES// /, } per second, reads on the standby at $READ_RATE/s of each statistic, ${SECS} s each"
    for rate in $SB_RATES; do
        log "standby, pickups at $rate per second"
        # The dashboards on the standby: bin and route statistics, as the
        # steady section's, from two pgbench processes.
        READER_PORT=$SBPORT phase "$rate" sb_dash -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/standby_bin_read.sql" \
            + -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/standby_route_read.sql"
        R[sb_bins/$rate]=$(pct "$(lat sb_dash "$rate")")
        R[sb_routes/$rate]=$(pct "$(lat sb_dash "$rate")_2")
        R[sb_stale/$rate]=$STALE
        R[sb_reads/$rate]=$(( $(ntx "$(lat sb_dash "$rate")") + $(ntx "$(lat sb_dash "$rate")_2") ))
        R[sb_pickups/$rate]=$PICKUPS
        R[sb_day/$rate]=$DAYCHANGE
        R[sb_load/$rate]=$LOADAVG
        lag=$(psql -X -At -d bench -c "SELECT coalesce(replay_lag::text, 'none') FROM pg_stat_replication")
        psql -X -p "$SBPORT" -d bench -c "SELECT function_name, calls, cache_hits, cache_misses, cache_bypasses,
                                                 round(avg_time_ms::numeric, 3) AS avg_ms, round(max_time_ms::numeric, 3) AS max_ms
                                            FROM wm_perf_metrics WHERE calls > 0 ORDER BY 1"
        echo "standby dashboard: bins ${R[sb_bins/$rate]}, routes ${R[sb_routes/$rate]} (p50 p95 p99 ms, n);" \
             "stale reads $STALE of ${R[sb_reads/$rate]}; pickups ${R[sb_pickups/$rate]}; replay lag at the end $lag;" \
             "load average $LOADAVG${DAYCHANGE}"
        # The bin reads alone on the standby: without the route calls, each
        # a full computation there, beside them on the two cores.
        READER_PORT=$SBPORT phase "$rate" sb_bins -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/standby_bin_read.sql"
        R[sb_bins_alone/$rate]=$(pct "$(lat sb_bins "$rate")")
        R[sb_stale/$rate]=$(( R[sb_stale/$rate] + STALE ))
        R[sb_reads/$rate]=$(( R[sb_reads/$rate] + $(ntx "$(lat sb_bins "$rate")") ))
        R[sb_load_alone/$rate]=$LOADAVG
        echo "standby, bin reads alone: ${R[sb_bins_alone/$rate]}; stale reads $STALE; load average $LOADAVG${DAYCHANGE}"
        # For comparison, the same reads on the primary with the cache off
        # (every call reads the maintained state or computes, as there).
        READER_PGOPTIONS="-c wm_perf.cache_enabled=off" phase "$rate" sb_primary -c 2 -j 2 -R "$READ_RATE" \
            -f "$BENCH/steady_bin_read.sql" + -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/steady_route_read.sql"
        R[sb_pbins/$rate]=$(pct "$(lat sb_primary "$rate")")
        R[sb_proutes/$rate]=$(pct "$(lat sb_primary "$rate")_2")
        R[sb_stale/$rate]=$(( R[sb_stale/$rate] + STALE ))
        R[sb_reads/$rate]=$(( R[sb_reads/$rate] + $(ntx "$(lat sb_primary "$rate")") + $(ntx "$(lat sb_primary "$rate")_2") ))
        echo "primary, cache off: bins ${R[sb_pbins/$rate]}, routes ${R[sb_proutes/$rate]}; stale reads $STALE;" \
             "load average $LOADAVG${DAYCHANGE}"
        # The baselines on the standby under the same writes, closed loop
        # (at scale 1 they take longer than the interval between requests).
        READER_PORT=$SBPORT phase "$rate" sb_plain_bins -c 1 -j 1 -f "$BENCH/plain_bin_stats.sql"
        R[sb_plain/$rate]=$(pct "$(lat sb_plain_bins "$rate")")
        READER_PORT=$SBPORT phase "$rate" sb_plain_routes -c 1 -j 1 -f "$BENCH/plain_route_stats.sql"
        R[sb_plainr/$rate]=$(pct "$(lat sb_plain_routes "$rate")")
        echo "standby plain bins ${R[sb_plain/$rate]}; plain routes ${R[sb_plainr/$rate]}; load average $LOADAVG"
        # Whole values in one REPEATABLE READ snapshot of the standby.
        READER_PORT=$SBPORT phase "$rate" sb_check -c 1 -j 1 -R "$CHECK_RATE" -f "$BENCH/standby_check.sql"
        R[sb_checks/$rate]=$(ntx "$(lat sb_check "$rate")")
        R[sb_mismatch/$rate]=$MISMATCH
        wait_replay "$SBPORT"
        verify "$SBPORT"
        R[sb_verify/$rate]=$VERIFY
        echo "standby whole-value checks ${R[sb_checks/$rate]}, mismatches $MISMATCH${DAYCHANGE};" \
             "wm_statistics_verify() on the standby: $VERIFY differences; load average $LOADAVG"
        agg_sizes
    done

    log "standby summary (ms; open-loop p50 / p95 at $READ_RATE reads/s of each statistic on the standby, 2 clients each)"
    pp() { echo "$(p50 "$1") / $(p95 "$1")"; }
    printf '| pickups/s | `wm_bin_statistics()` | `wm_route_statistics()` | `wm_bin_statistics()` alone | primary, cache off: bins | primary, cache off: routes | full computation (plain SQL, closed loop) | plain route SQL (closed loop) | bin p95 / plain p95 | route p95 / plain route p95 | pickup (primary) | stale reads | whole-value checks (mismatches) | verify | load average (dashboard / bins alone) |\n'
    printf '|---:|---|---|---|---|---|---|---|---:|---:|---|---|---|---:|---|\n'
    for rate in $SB_RATES; do
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s of %s | %s (%s) | %s | %s / %s |\n' "$rate" \
            "$(pp "${R[sb_bins/$rate]}")" "$(pp "${R[sb_routes/$rate]}")" "$(pp "${R[sb_bins_alone/$rate]}")" \
            "$(pp "${R[sb_pbins/$rate]}")" "$(pp "${R[sb_proutes/$rate]}")" \
            "$(pp "${R[sb_plain/$rate]}")" "$(pp "${R[sb_plainr/$rate]}")" \
            "$(div "$(p95 "${R[sb_bins/$rate]}")" "$(p95 "${R[sb_plain/$rate]}")")" \
            "$(div "$(p95 "${R[sb_routes/$rate]}")" "$(p95 "${R[sb_plainr/$rate]}")")" \
            "$( [ "$rate" = 0 ] && echo - || pp "${R[sb_pickups/$rate]}")" \
            "${R[sb_stale/$rate]}" "${R[sb_reads/$rate]}" "${R[sb_checks/$rate]}" "${R[sb_mismatch/$rate]}" \
            "${R[sb_verify/$rate]}" "${R[sb_load/$rate]}" "${R[sb_load_alone/$rate]}"
    done
    for rate in $SB_RATES; do
        b=$(p95 "${R[sb_bins/$rate]}"); r=$(p95 "${R[sb_routes/$rate]}"); a=$(p95 "${R[sb_bins_alone/$rate]}")
        echo "standby, pickups $rate/s: goal p95 <= 5 ms: bins $(le "$b" 5 && echo met || echo NOT met) ($b ms; alone $(le "$a" 5 && echo met || echo NOT met), $a ms)," \
             "routes $(le "$r" 5 && echo met || echo NOT met) ($r ms);" \
             "0 stale / exact $([ $(( R[sb_stale/$rate] + R[sb_mismatch/$rate] + R[sb_verify/$rate] )) = 0 ] && echo met || echo NOT met)${R[sb_day/$rate]}"
    done
    stop_standby
fi

if section selftest; then
    # The checks can fail.  Pickups at the last rate, the dashboards' bin
    # reads (cache on) and the whole-value checks, in two cases:
    # 1. Nothing invalidated: wm_perf's triggers disabled on bins and
    #    service_events.  That is DDL, so the maintained state is dropped
    #    and calls compute in full, but no commit invalidates the cached
    #    value: the reads' check must find stale reads.
    # 2. A wrong maintained state: one delta row that removes a pickup from
    #    the current hour, inserted into wm_agg_events as its owner.  Every
    #    value computed from the aggregates is one event short: the reads'
    #    check, the whole-value check and wm_statistics_verify() must see it.
    # After each, wm_perf is attached again as attach makes it and rebuilt.
    rate=$(echo $RATES | awk '{ print $NF }')
    log "self-test of the checks, pickups at $rate/s"
    SECS_SAVED=$SECS; SECS=$(( (SECS + 1) / 2 ))
    psql -X -q -d bench -c "DO \$\$ DECLARE t record; BEGIN
        FOR t IN SELECT tgrelid::regclass AS tbl, tgname FROM pg_trigger
                  WHERE tgfoid IN ('_wm_maintain()'::regprocedure, 'wm_invalidate_cache()'::regprocedure)
                    AND tgrelid IN ('core.bins'::regclass, 'core.service_events'::regclass) LOOP
            EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', t.tbl, t.tgname);
        END LOOP; END \$\$"
    phase "$rate" selftest_nothing -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/steady_bin_read.sql"
    st1="stale reads $STALE of $(ntx "$(lat selftest_nothing "$rate")")"
    st1_ok=$([ "$STALE" -gt 0 ] && echo 1 || echo 0)
    psql -X -q -d bench -c "SET client_min_messages = warning" -c "SELECT count(*) FROM wm_perf_detach()" \
         -c "SELECT count(*) FROM wm_perf_attach()" -c "SELECT wm_cache_flush()" >/dev/null
    verify
    echo "1. triggers disabled: $st1; attached again: wm_statistics_verify(): $VERIFY differences"
    psql -X -q -d bench -c "INSERT INTO wm_agg_events (event_type, hour, n) VALUES ('pickup', date_trunc('hour', now(), 'UTC'), -1)"
    phase "$rate" selftest_state -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/steady_bin_read.sql"
    st2="stale reads $STALE of $(ntx "$(lat selftest_state "$rate")")"
    st2_stale=$STALE
    phase "$rate" selftest_check -c 1 -j 1 -R "$CHECK_RATE" -f "$BENCH/steady_check.sql"
    st2="$st2, whole-value mismatches $MISMATCH of $(ntx "$(lat selftest_check "$rate")")"
    verify
    st2="$st2, wm_statistics_verify(): $VERIFY differences"
    st2_ok=$([ "$st2_stale" -gt 0 ] && [ "$MISMATCH" -gt 0 ] && [ "$VERIFY" -gt 0 ] && echo 1 || echo 0)
    psql -X -q -d bench -c "SELECT wm_statistics_rebuild()" -c "SELECT wm_cache_flush()" >/dev/null
    verify
    echo "2. one delta row wrong: $st2; rebuilt: wm_statistics_verify(): $VERIFY differences"
    SECS=$SECS_SAVED
    if [ "$st1_ok$st2_ok" = 11 ]; then
        echo "stale-read checks self-test: PASSED (every check found the wrong values)"
    else
        echo "stale-read checks self-test: FAILED (a check found nothing)"
    fi
fi

# As run_bench.sh: TPS keeps the mean over all runs of NAME/CLIENTS,
# ROUND_LIST each run's tps.
declare -A TPS TPS_SUM TPS_N ROUND_LIST
run() {
    local name=$1 clients=$2 out tps lat
    shift 2
    out=$("${PGB[@]}" -c "$clients" -j "$clients" -T "$WRITE_SECS" -D record=0 -f "$BENCH/pickup.sql" "$@" 2>&1)
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    TPS_SUM["$name/$clients"]=$(awk -v a="${TPS_SUM[$name/$clients]:-0}" -v b="${tps:-0}" 'BEGIN { print a + b }')
    TPS_N["$name/$clients"]=$(( ${TPS_N[$name/$clients]:-0} + 1 ))
    TPS["$name/$clients"]=$(awk -v a="${TPS_SUM[$name/$clients]}" -v n="${TPS_N[$name/$clients]}" 'BEGIN { print a / n }')
    ROUND_LIST["$name/$clients"]="${ROUND_LIST[$name/$clients]:-} $tps"
    printf '%-34s clients=%d  tps=%12s  latency=%9s ms\n' "$name" "$clients" "$tps" "$lat"
}
ratio() { # ratio A B: latency(A)/latency(B) = tps(B)/tps(A), mean tps of all rounds
    awk -v a="${TPS[$1]}" -v b="${TPS[$2]}" 'BEGIN { if (a > 0) printf "%.4g", b / a; else print "n/a" }'
}
round_ratios() { # round_ratios BASE X: latency(X)/latency(BASE) of each round, in order
    paste -d' ' <(echo ${ROUND_LIST[$1]} | tr ' ' '\n') <(echo ${ROUND_LIST[$2]} | tr ' ' '\n') |
        awk '$2 > 0 { printf "%s%.4g", sep, $1 / $2; sep = " " } END { print "" }'
}
autovacuum_writes() { # off|on, as run_bench.sh
    if [ "$1" = off ]; then
        psql -X -q -d bench -c "ALTER TABLE core.bins SET (autovacuum_enabled = off)" \
             -c "ALTER TABLE core.service_events SET (autovacuum_enabled = off)" -c "VACUUM core.bins"
    else
        psql -X -q -d bench -c "ALTER TABLE core.bins RESET (autovacuum_enabled)" \
             -c "ALTER TABLE core.service_events RESET (autovacuum_enabled)"
    fi
}
# variant NAME: wm_perf's triggers as NAME has them.  no_trigger: detached;
# wm_perf: attached (invalidation and maintenance triggers, state rebuilt);
# invalidation_only: attached, maintenance triggers disabled (the state is
# then wrong: the next variant's attach rebuilds it).
variant() {
    psql -X -q -d bench -c "SET client_min_messages = warning" -c "SELECT count(*) FROM wm_perf_detach()" >/dev/null
    case $1 in
        *wm_perf) psql -X -q -d bench -c "SELECT count(*) FROM wm_perf_attach()" >/dev/null ;;
        *invalidation_only)
            psql -X -q -d bench -c "SELECT count(*) FROM wm_perf_attach()" -c "DO \$\$ DECLARE t record; BEGIN
                FOR t IN SELECT tgrelid::regclass AS tbl, tgname FROM pg_trigger
                          WHERE tgfoid = '_wm_maintain()'::regprocedure LOOP
                    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', t.tbl, t.tgname);
                END LOOP; END \$\$" >/dev/null ;;
    esac
}
# reattach: wm_perf attached as documented, the state rebuilt and verified.
reattach() {
    variant wm_perf
    agg_sizes
    verify
    echo "attached again: wm_statistics_verify(): $VERIFY differences"
}
variants=(no_trigger invalidation_only wm_perf)

if section writes; then
    log "writes: pickups (one transaction: a bin's fill level, a service event), unthrottled, ${WRITE_SECS} s runs"
    autovacuum_writes off
    # The order of the variants rotates with each round (run_bench.sh).
    for c in 1 2; do
        for r in $(seq "$ROUNDS"); do
            for i in 0 1 2; do
                v=writes_${variants[$(( (i + r) % 3 ))]}
                variant "$v"
                psql -X -q -d bench -c "CHECKPOINT"
                run "$v" "$c"
            done
        done
        echo "clients=$c: wm_perf pickup cost = $(ratio writes_wm_perf/$c writes_no_trigger/$c)x latency of no trigger" \
             "(rounds: $(round_ratios writes_no_trigger/$c writes_wm_perf/$c));" \
             "invalidation triggers only = $(ratio writes_invalidation_only/$c writes_no_trigger/$c)x" \
             "(rounds: $(round_ratios writes_no_trigger/$c writes_invalidation_only/$c))"
    done
    reattach
    autovacuum_writes on
fi

if section customer; then
    # Per-customer dashboards: wm_bin_statistics(customer) computes through
    # the indexes (never the maintained aggregates).  Reads at READ_RATE of
    # random live customers while pickups arrive at 2/s; cache off (a
    # computation each time) and on (the default), against the plain SQL of
    # the same statistic.
    rate=2
    log "per-customer bin statistics, reads at $READ_RATE/s, pickups at $rate/s"
    READER_PGOPTIONS="-c wm_perf.cache_enabled=off" phase "$rate" cust_nocache -c 2 -j 2 -R "$READ_RATE" \
        -f "$BENCH/steady_customer_read.sql"
    R[cust_nocache]=$(pct "$(lat cust_nocache "$rate")")
    phase "$rate" cust_cache -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/steady_customer_read.sql"
    R[cust_cache]=$(pct "$(lat cust_cache "$rate")")
    phase "$rate" cust_plain -c 2 -j 2 -R "$READ_RATE" -f "$BENCH/plain_customer_stats.sql"
    R[cust_plain]=$(pct "$(lat cust_plain "$rate")")
    echo "wm_bin_statistics(customer), p50 p95 p99 ms n: cache off ${R[cust_nocache]}, cache on ${R[cust_cache]};" \
         "plain SQL ${R[cust_plain]}; p95 cache off / plain = $(div "$(p95 "${R[cust_nocache]}")" "$(p95 "${R[cust_plain]}")")x;" \
         "load average $LOADAVG"
fi

if section update; then
    NUPD=$(( UPDATE_ROWS < NBINS ? UPDATE_ROWS : NBINS ))
    log "a $NUPD-row UPDATE of bins (fill level), with and without wm_perf, $ROUNDS rounds"
    autovacuum_writes off
    UPD="UPDATE core.bins SET fill_level_percent = (fill_level_percent + 1) % 101
          WHERE id IN (SELECT id FROM core.bins ORDER BY id LIMIT $NUPD)"
    # update_run: VACUUM, CHECKPOINT, then the UPDATE (autocommit), ms
    update_run() {
        psql -X -q -d bench -c "VACUUM core.bins" -c "CHECKPOINT"
        psql -X -d bench -c '\timing on' -c "$UPD" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
    }
    declare -A UMS UROUNDS
    variant update_wm_perf
    echo "warm-up (not counted): $(update_run) ms"
    for r in $(seq "$ROUNDS"); do
        for i in 0 1 2; do
            v=${variants[$(( (i + r) % 3 ))]}
            variant "update_$v"
            ms=$(update_run)
            printf '%-34s %10s ms\n' "update_$v" "$ms"
            UMS[$v]=$(awk -v a="${UMS[$v]:-0}" -v b="$ms" 'BEGIN { print a + b }')
            UROUNDS[$v]="${UROUNDS[$v]:-} $ms"
        done
    done
    for v in invalidation_only wm_perf; do
        echo "$NUPD-row UPDATE, $v / no trigger = $(div "${UMS[$v]}" "${UMS[no_trigger]}")x" \
             "(mean $(div "${UMS[$v]}" "$ROUNDS") ms against $(div "${UMS[no_trigger]}" "$ROUNDS") ms;" \
             "rounds: $(paste -d' ' <(echo ${UROUNDS[$v]} | tr ' ' '\n') <(echo ${UROUNDS[no_trigger]} | tr ' ' '\n') |
                        awk '{ printf "%s%.3g", sep, $1 / $2; sep = " " }'))"
    done
    reattach
    autovacuum_writes on
fi
