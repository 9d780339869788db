#!/usr/bin/env bash
# The application's own stack against wm_perf (examples/node): node-postgres,
# Sequelize 6 and ioredis 5 with the key prefix "waste_mgmt:", and Redis as the
# application runs it (appendonly yes, a password).  Run by `make test` (and
# `make nodecheck`) after wm_perf has been built and installed into
# $WM_PG_BIN's installation.
#
# 1. `npm ci` of examples/node/package-lock.json in a copy of examples/node
#    (the only thing fetched, from the npm registry);
# 2. redis-server as postgres on a free loopback port, in its own temporary
#    directory, with appendonly yes and requirepass (a random password);
# 3. a PostgreSQL cluster as postgres on a free loopback port, with
#    shared_preload_libraries = 'wm_perf' and wm_perf.redis_host, _port and
#    _password in postgresql.conf (a superuser-only setting: only the server
#    configuration sets it);
# 4. the fixture (scale 0.002), the tables owned by an application role
#    (regress_wm_app, not a superuser); then docs/migration.md's step 1:
#    docs/concurrent_indexes.sql, wm_perf installed by the superuser and
#    attached with allow_other_owners, the rules of
#    docs/cache_rules_example.sql;
# 5. `node --test` on examples/node/test/*.test.js as the application role,
#    TAP output (run_tests.sh counts its "# pass" / "# fail" lines).
#
# Stops the servers it started, by pidfile, also on failure.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NODE_TMP=$(mktemp -d /tmp/wm_node.XXXXXX)
chown postgres: "$NODE_TMP"
chmod 700 "$NODE_TMP"

node_stop() {
    local rc=$? rpid
    if [ -f "$NODE_TMP/pgdata/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$NODE_TMP/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ -f "$NODE_TMP/redis/redis.pid" ]; then
        rpid=$(cat "$NODE_TMP/redis/redis.pid")
        kill "$rpid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
    fi
    if [ "${WM_KEEP_TMP:-0}" = 1 ]; then echo "kept $NODE_TMP"; else rm -rf "$NODE_TMP"; fi
    return $rc
}
trap node_stop EXIT
trap 'exit 130' INT TERM

# A failure before the tests run is one "not ok" (run_tests.sh counts it).
die() { echo "not ok - node suite set-up: $*"; exit 1; }

wm_install_node

log "npm ci (examples/node/package-lock.json)"
mkdir "$NODE_TMP/app"
tar -C "$WM_SRC/examples/node" --exclude=node_modules -cf - . | tar -C "$NODE_TMP/app" -xf -
(cd "$NODE_TMP/app" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
    die "npm ci failed"
log "node $(node --version), npm $(npm --version)"

# Redis as the application's docker-compose runs it (redis:7-alpine
# --appendonly yes --requirepass ...), on loopback, in a directory of its
# own.  The password goes into a mode-600 config file, not onto the command
# line (ps would show it).
REDIS_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
NODE_REDIS_PORT=$(wm_free_port)
mkdir "$NODE_TMP/redis"
cat >"$NODE_TMP/redis/redis.conf" <<EOF
bind 127.0.0.1
port $NODE_REDIS_PORT
requirepass $REDIS_PASSWORD
appendonly yes
save ""
dir $NODE_TMP/redis
pidfile $NODE_TMP/redis/redis.pid
logfile $NODE_TMP/redis/redis.log
daemonize yes
EOF
chmod 600 "$NODE_TMP/redis/redis.conf"
chown -R postgres: "$NODE_TMP/redis"
as_pg redis-server "$NODE_TMP/redis/redis.conf" || die "redis-server did not start"
for _ in $(seq 50); do
    REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$NODE_REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$NODE_REDIS_PORT" ping 2>/dev/null | grep -q PONG ||
    { cat "$NODE_TMP/redis/redis.log"; die "redis-server does not answer"; }

log "PostgreSQL with wm_perf preloaded, Redis with a password"
NODE_PG_PORT=$(wm_free_port)
as_pg "$PG_BIN/initdb" -D "$NODE_TMP/pgdata" -A trust -U postgres --no-sync >"$NODE_TMP/initdb.log" ||
    die "initdb failed"
{
    echo "port = $NODE_PG_PORT"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$NODE_TMP'"
    echo "fsync = off"
    echo "shared_preload_libraries = 'wm_perf'"
    echo "wm_perf.redis_host = '127.0.0.1'"
    echo "wm_perf.redis_port = $NODE_REDIS_PORT"
    echo "wm_perf.redis_password = '$REDIS_PASSWORD'"
    echo "log_min_messages = warning"
} >>"$NODE_TMP/pgdata/postgresql.conf"
as_pg "$PG_BIN/pg_ctl" -D "$NODE_TMP/pgdata" -l "$NODE_TMP/postgres.log" -w start >/dev/null ||
    { tail -20 "$NODE_TMP/postgres.log"; die "PostgreSQL did not start"; }

DB=wm_node
NQ() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$NODE_TMP" -p "$NODE_PG_PORT" -U postgres "$@"; }
NQ -d postgres -c "CREATE DATABASE $DB" || die "CREATE DATABASE"
NQ -d "$DB" -v scale=0.002 -f "$WM_SRC/test/fixtures/schema.sql" -f "$WM_SRC/test/fixtures/generate.sql" \
    >/dev/null || die "fixture"
# The application's role owns its schemas, types and tables (its Sequelize
# migrations created them); it is not a superuser.
NQ -d "$DB" >/dev/null <<'SQL' || die "application role"
CREATE ROLE regress_wm_app LOGIN;
ALTER SCHEMA core OWNER TO regress_wm_app;
ALTER SCHEMA operations OWNER TO regress_wm_app;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ('core', 'operations') AND c.relkind = 'r' LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO regress_wm_app', r.t);
    END LOOP;
    FOR r IN SELECT t.oid::regtype AS t FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
              WHERE n.nspname IN ('core', 'operations') AND t.typtype = 'e' LOOP
        EXECUTE format('ALTER TYPE %s OWNER TO regress_wm_app', r.t);
    END LOOP;
END $$;
SQL
# wm_perf, installed and attached as docs/migration.md (step 1) says: the
# indexes built concurrently first, outside a transaction; CREATE EXTENSION
# by a superuser attaches none of the application role's tables by itself,
# so they are named, with the documented opt-in.
NQ -d "$DB" -f "$WM_SRC/docs/concurrent_indexes.sql" >/dev/null || die "concurrent_indexes.sql"
NQ -d "$DB" -c "CREATE EXTENSION wm_perf CASCADE" >/dev/null || die "CREATE EXTENSION"
NQ -d "$DB" >"$NODE_TMP/attach.log" <<'SQL' || { cat "$NODE_TMP/attach.log"; die "wm_perf_attach"; }
SELECT * FROM wm_perf_attach(routes => 'core.routes', bins => 'core.bins',
    customers => 'operations.customers', service_events => 'core.service_events',
    organizations => 'operations.organizations', allow_other_owners => true);
SQL
grep -qx 'maintained statistics: built' "$NODE_TMP/attach.log" || { cat "$NODE_TMP/attach.log"; die "attach built no maintained statistics"; }
[ "$(grep -c '^index .*: already present as ' "$NODE_TMP/attach.log")" = 7 ] ||
    { cat "$NODE_TMP/attach.log"; die "attach did not find the 7 indexes of concurrent_indexes.sql"; }
grep -q '^table core.bins: attached as bins$' "$NODE_TMP/attach.log" || { cat "$NODE_TMP/attach.log"; die "bins not attached"; }
NQ -d "$DB" -f "$WM_SRC/docs/cache_rules_example.sql" >/dev/null || die "cache rules"
# The full computation the tests compare with (plain SQL, SECURITY INVOKER).
NQ -d "$DB" -f "$WM_SRC/test/fixtures/expected_stats.sql" >/dev/null || die "expected_stats.sql"

log "node --test examples/node/test"
rc=0
(
    cd "$NODE_TMP/app"
    export PGHOST=127.0.0.1 PGPORT=$NODE_PG_PORT PGDATABASE=$DB PGUSER=regress_wm_app
    export WM_ADMIN_USER=postgres REDIS_HOST=127.0.0.1 REDIS_PORT=$NODE_REDIS_PORT REDIS_PASSWORD
    timeout 300 node --test --test-reporter=tap test/*.test.js
) || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "# node exited with $rc; server log:"
    tail -30 "$NODE_TMP/postgres.log" | sed 's/^/# /'
fi
exit "$rc"
