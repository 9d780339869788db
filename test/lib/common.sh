#!/usr/bin/env bash
# Shared helpers for `make test`, `make demo` and `make bench`: install what is
# missing, build, and run a throwaway PostgreSQL cluster (as the postgres
# user) and redis-server on free loopback ports.  Only the processes started
# here are stopped, by pidfile, also on failure.

set -euo pipefail

WM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# WM_PG_BIN: another installation (a relocated copy, another major version).
PG_BIN=${WM_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=$PG_BIN/pg_config
WM_PACKAGES="build-essential postgresql-15 postgresql-server-dev-15 postgresql-15-postgis-3
postgresql-15-postgis-3-scripts postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
libhiredis-dev redis-server libipc-run-perl debhelper postgresql-server-dev-all postgresql-15-hypopg"

log() { printf '\033[1m== %s\033[0m\n' "$*"; }

# Install only what is missing (apt-get update only if needed).
wm_install_deps() {
    local missing=""
    for p in $WM_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "missing packages:$missing (run as root to install them)" >&2
            exit 1
        fi
        log "installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends $missing
    fi
}

# Node and npm for the examples/node suite: the machine's own if present
# (any node >= 18.15 with its npm), else Debian's nodejs and npm packages.
# The suite's JavaScript dependencies come from `npm ci` of its lockfile.
wm_install_node() {
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "node or npm is missing (run as root to install Debian's nodejs and npm)" >&2
        exit 1
    fi
    log "installing: nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends nodejs npm
}

# wm_build_install [extra CFLAGS]
wm_build_install() {
    log "building wm_perf (-Werror ${1:-}) and installing it"
    make -C "$WM_SRC" -s PG_CONFIG=$PG_CONFIG WERROR=1 clean >/dev/null
    make -C "$WM_SRC" -s PG_CONFIG=$PG_CONFIG WERROR=1 WM_EXTRA_CFLAGS="${1:-}"
    make -C "$WM_SRC" -s PG_CONFIG=$PG_CONFIG WM_EXTRA_CFLAGS="${1:-}" install >/dev/null
}

wm_free_port() {
    perl -MIO::Socket::INET -e \
        'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1) or die "no port: $!"; print $s->sockport, "\n";'
}

as_pg() { runuser -u postgres -- "$@"; }

# Creates $WM_TMP (owned by postgres) and the cleanup trap.
wm_make_tmp() {
    WM_TMP=$(mktemp -d /tmp/wm_perf.XXXXXX)
    chown postgres: "$WM_TMP"
    chmod 755 "$WM_TMP"
    export WM_TMP
    trap wm_stop_all EXIT
    trap 'exit 130' INT TERM
}

wm_start_redis() {
    REDIS_PORT=$(wm_free_port)
    export REDIS_PORT
    as_pg redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$WM_TMP/redis.pid" --logfile "$WM_TMP/redis.log" \
        --dir "$WM_TMP"
    for _ in $(seq 50); do
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis-server did not start" >&2
    cat "$WM_TMP/redis.log" >&2
    return 1
}

# wm_start_pg [extra postgresql.conf lines...]
wm_start_pg() {
    PGPORT=$(wm_free_port)
    PGHOST=$WM_TMP
    PGUSER=postgres
    export PGPORT PGHOST PGUSER
    as_pg $PG_BIN/initdb -D "$WM_TMP/pgdata" -A trust -U postgres --no-sync >"$WM_TMP/initdb.log"
    {
        echo "port = $PGPORT"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$WM_TMP'"
        echo "fsync = off"
        echo "max_prepared_transactions = 10"
        echo "shared_preload_libraries = 'wm_perf'"
        echo "wm_perf.redis_host = '127.0.0.1'"
        echo "wm_perf.redis_port = $REDIS_PORT"
        echo "wm_perf.redis_backoff = 200"
        echo "log_min_messages = warning"
        for line in "$@"; do echo "$line"; done
    } >>"$WM_TMP/pgdata/postgresql.conf"
    # WM_PG_CTL_OPTS: e.g. "-p wrapper -t 600" (run_valgrind.sh)
    as_pg $PG_BIN/pg_ctl -D "$WM_TMP/pgdata" -l "$WM_TMP/postgres.log" ${WM_PG_CTL_OPTS:-} -w start >/dev/null
}

wm_stop_all() {
    local rc=$?
    if [ -n "${WM_TMP:-}" ] && [ -d "$WM_TMP" ]; then
        if [ -f "$WM_TMP/pgdata/postmaster.pid" ]; then
            as_pg $PG_BIN/pg_ctl -D "$WM_TMP/pgdata" -m fast -w stop >/dev/null 2>&1 || true
        fi
        if [ -f "$WM_TMP/redis.pid" ]; then
            local rpid
            rpid=$(cat "$WM_TMP/redis.pid")
            kill "$rpid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
        fi
        if [ "${WM_KEEP_TMP:-0}" = 1 ]; then
            echo "kept $WM_TMP"
        else
            rm -rf "$WM_TMP"
        fi
    fi
    return $rc
}

# A database with PostGIS, the reference schema and generated data.
# wm_load_fixture DB SCALE [schema.sql]
wm_load_fixture() {
    local db=$1 scale=$2 schema=${3:-schema.sql}
    psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db"
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -v scale="$scale" \
        -f "$WM_SRC/test/fixtures/$schema" -f "$WM_SRC/test/fixtures/generate.sql" >/dev/null
}
