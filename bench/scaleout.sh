#!/usr/bin/env bash
# bench/scaleout.sh (make bench-scaleout): hit and miss latency of
# wm_route_statistics() against a standalone Redis, the same master found
# through Redis Sentinel, and a three-node Redis Cluster (redis_host on the
# slot's owner, and on another node: one -MOVED per new connection), in one
# run; ratios to the standalone figures.  Issue 14, "Benchmark".
#
# Hits: one session, local copies off (every call is a Redis round trip),
# N_HITS calls.  Misses: one session, each call preceded by
# wm_cache_flush('routes') in its own transaction, N_MISSES calls (a miss
# computes the statistic: the Redis share is small).  Figures are
# wm_perf_metrics' avg_time_ms (whole call) and avg_redis_ms (per round
# trip).  Every server is on loopback and stopped by pid.
set -euo pipefail
source "$(dirname "$0")/../test/lib/common.sh"

N_HITS=${N_HITS:-2000}
N_MISSES=${N_MISSES:-200}

wm_install_deps
wm_build_install
wm_make_tmp

pidfiles=()
stop_servers() {
    local f
    for f in "${pidfiles[@]:-}"; do
        if [ -n "$f" ] && [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
    done
    wm_stop_all
}
trap stop_servers EXIT

wait_ping() {
    for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "no answer on port $1" >&2; return 1
}

redis_at() { # redis_at PORT DIR [args...]: a daemonized redis-server with a pidfile
    local port=$1 dir=$2; shift 2
    mkdir -p "$dir"; chown postgres: "$dir"
    pidfiles+=("$dir/redis.pid")
    as_pg redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" "$@"
    wait_ping "$port"
}

M=$(wm_free_port); S=$(wm_free_port); C1=$(wm_free_port); C2=$(wm_free_port); C3=$(wm_free_port)
redis_at "$M" "$WM_TMP/m"
mkdir -p "$WM_TMP/s"; chown postgres: "$WM_TMP/s"
cat >"$WM_TMP/s/sentinel.conf" <<EOF
port $S
bind 127.0.0.1
dir $WM_TMP/s
logfile $WM_TMP/s/sentinel.log
daemonize yes
pidfile $WM_TMP/s/sentinel.pid
sentinel monitor bench 127.0.0.1 $M 1
EOF
chown postgres: "$WM_TMP/s/sentinel.conf"
pidfiles+=("$WM_TMP/s/sentinel.pid")
as_pg redis-server "$WM_TMP/s/sentinel.conf" --sentinel
wait_ping "$S"
for p in $C1 $C2 $C3; do redis_at "$p" "$WM_TMP/c$p" --cluster-enabled yes; done
redis-cli --cluster create 127.0.0.1:$C1 127.0.0.1:$C2 127.0.0.1:$C3 --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 100); do
    redis-cli -p $C1 cluster info | grep -q cluster_state:ok && break; sleep 0.1
done

REDIS_PORT=$M
wm_start_pg
wm_load_fixture bench 0.01
psql -X -q -d bench -c 'CREATE EXTENSION wm_perf CASCADE' >/dev/null

sysid=$(psql -X -At -d bench -c 'SELECT system_identifier FROM pg_control_system()')
slot=$(redis-cli -p $C1 cluster keyslot "{$sysid}")
owner=""; other=""
for p in $C1 $C2 $C3; do
    if redis-cli -p $p get "{$sysid}" 2>&1 | grep -q MOVED; then other=$p; else owner=$p; fi
done
echo "slot $slot of {$sysid}: owner $owner, another node $other"

target() { # target DESCRIPTION SQL...
    psql -X -q -d postgres -c "ALTER SYSTEM RESET wm_perf.redis_sentinels" \
        -c "ALTER SYSTEM RESET wm_perf.redis_sentinel_master" "${@:2}" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1
    for _ in $(seq 100); do
        [ "$(psql -X -At -d bench -c "SELECT invalidations_pending FROM wm_perf_metrics WHERE function_name = 'invalidation'")" = 0 ] && break
        sleep 0.1
    done
}

measure() { # measure NAME: prints "NAME hit_ms hit_rtt miss_ms"
    local hit miss
    hit=$(psql -X -At -d bench <<EOF
SET wm_perf.local_cache_size = 0;
SELECT wm_route_statistics() IS NOT NULL;
SELECT wm_perf_metrics_reset();
SELECT count(*) FROM (SELECT wm_route_statistics() FROM generate_series(1, $N_HITS)) s;
SELECT round(avg_time_ms::numeric, 4) || ' ' || round(coalesce(avg_redis_ms, 0)::numeric, 4) || ' ' || cache_hits
  FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';
EOF
)
    hit=$(echo "$hit" | tail -1)
    miss=$( {
        echo "SET wm_perf.local_cache_size = 0;"
        echo "SELECT wm_perf_metrics_reset();"
        for _ in $(seq "$N_MISSES"); do
            echo "SELECT wm_cache_flush('routes');"
            echo "SELECT wm_route_statistics() IS NOT NULL;"
        done
        echo "SELECT round(avg_time_ms::numeric, 4) || ' ' || cache_misses FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';"
    } | psql -X -At -d bench | tail -1)
    echo "$1 $hit $miss"
}

results=()
target standalone -c "ALTER SYSTEM SET wm_perf.redis_host = '127.0.0.1'" -c "ALTER SYSTEM SET wm_perf.redis_port = $M"
results+=("$(measure standalone)")
target sentinel -c "ALTER SYSTEM SET wm_perf.redis_sentinels = '127.0.0.1:$S'" -c "ALTER SYSTEM SET wm_perf.redis_sentinel_master = 'bench'"
results+=("$(measure sentinel)")
target cluster -c "ALTER SYSTEM SET wm_perf.redis_host = '127.0.0.1'" -c "ALTER SYSTEM SET wm_perf.redis_port = $owner"
results+=("$(measure cluster-owner)")
target cluster -c "ALTER SYSTEM SET wm_perf.redis_port = $other"
results+=("$(measure cluster-moved)")

base_hit=$(echo "${results[0]}" | awk '{print $2}')
base_miss=$(echo "${results[0]}" | awk '{print $5}')
printf '%-15s %10s %10s %6s %10s %7s %9s %9s\n' target hit_ms rtt_ms hits miss_ms misses hit_ratio miss_ratio
for r in "${results[@]}"; do
    set -- $r
    printf '%-15s %10s %10s %6s %10s %7s %9.2f %9.2f\n' "$1" "$2" "$3" "$4" "$5" "$6" \
        "$(awk -v a="$2" -v b="$base_hit" 'BEGIN { print a / b }')" \
        "$(awk -v a="$5" -v b="$base_miss" 'BEGIN { print a / b }')"
done
