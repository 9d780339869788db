#!/usr/bin/env bash
# The Debian package: `make deb` builds postgresql-15-wm-perf, which is
# installed with dpkg into a private copy of the PostgreSQL installation
# (dpkg --root, its own package database; the system's /usr/lib/postgresql
# and dpkg database are never touched), from which the copy's wm_perf files
# were removed first.  A clean cluster of that copy (initdb, wm_perf
# preloaded, the suite's Redis) then runs debian/tests/smoke, and the files
# the server loaded are shown to be the package's: the library mapped by the
# postmaster is the copy's, byte for byte the .deb's, as are the control
# file and SQL scripts that CREATE EXTENSION read.
set -euo pipefail
: "${REDIS_PORT:?}" "${WM_SRC:?}" "${WM_TMP:?}"
PG_BIN=${WM_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=$PG_BIN/pg_config
MAJOR=$($PG_CONFIG --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')
OUT=$WM_TMP/deb
ROOT=$OUT/root
fails=0
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1 (expected '$2', got '$3')"; fails=$((fails + 1)); fi
}
mkdir -p "$OUT"
PGDATA_DEB=$OUT/pgdata
stop_cluster() {
    if [ -f "$PGDATA_DEB/postmaster.pid" ]; then
        runuser -u postgres -- "$ROOT/usr/lib/postgresql/$MAJOR/bin/pg_ctl" -D "$PGDATA_DEB" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
trap stop_cluster EXIT

# --- build ------------------------------------------------------------------
EXTVERSION=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$WM_SRC/wm_perf.control")
DEBVERSION=$(dpkg-parsechangelog -l "$WM_SRC/debian/changelog" -S Version)
check "debian/changelog's upstream version is the control file's default_version" "$EXTVERSION" "${DEBVERSION%-*}"
rc=0
DEB_OUT=$OUT/build make -s -C "$WM_SRC" deb >"$OUT/make_deb.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$OUT/make_deb.log"
DEB=$OUT/build/postgresql-$MAJOR-wm-perf_${DEBVERSION}_$(dpkg --print-architecture).deb
check "make deb built postgresql-$MAJOR-wm-perf_${DEBVERSION}" "0 t" "$rc $([ -f "$DEB" ] && echo t || echo f)"
[ -f "$DEB" ] || { echo "deb: $fails failure(s)"; exit 1; }
check "the package's name and version" "postgresql-$MAJOR-wm-perf $DEBVERSION" "$(dpkg-deb -f "$DEB" Package Version | sed 's/^[A-Za-z]*: //' | paste -sd' ')"
deps=$(dpkg-deb -f "$DEB" Depends)
check "it depends on postgresql-$MAJOR, PostGIS and hiredis" "t t t" \
    "$(for p in "postgresql-$MAJOR " "postgresql-$MAJOR-postgis-3" libhiredis; do case "$deps" in *"$p"*) printf t;; *) printf f;; esac; done | sed 's/./& /g; s/ $//')"
rm -rf "$OUT/x" && dpkg-deb -x "$DEB" "$OUT/x"
LIB=usr/lib/postgresql/$MAJOR/lib
EXTDIR=usr/share/postgresql/$MAJOR/extension
check "it holds the library, the control file and the three SQL scripts" "t t t t t" \
    "$(for f in $LIB/wm_perf.so $EXTDIR/wm_perf.control $EXTDIR/wm_perf--1.0.sql $EXTDIR/wm_perf--1.1.sql $EXTDIR/wm_perf--1.0--1.1.sql; do [ -f "$OUT/x/$f" ] && printf t || printf f; done | sed 's/./& /g; s/ $//')"

# --- a private copy of the PostgreSQL installation ------------------------
# PostgreSQL finds its lib and share directories relative to its binaries,
# so a copy of usr/lib/postgresql/<v> and usr/share/postgresql/<v> under any
# root runs from there (the system's or a relocated one, WM_PG_BIN).
bindir=$($PG_CONFIG --bindir)
src_root=${bindir%/usr/lib/postgresql/$MAJOR/bin}
check "the PostgreSQL installation has Debian's layout under a root" t \
    "$([ "$src_root/usr/lib/postgresql/$MAJOR/bin" = "$bindir" ] && [ "$($PG_CONFIG --sharedir)" = "$src_root/usr/share/postgresql/$MAJOR" ] && echo t || echo f)"
rm -rf "$ROOT"
mkdir -p "$ROOT/usr/lib/postgresql" "$ROOT/usr/share/postgresql"
cp -a "$src_root/usr/lib/postgresql/$MAJOR" "$ROOT/usr/lib/postgresql/"
cp -a "$src_root/usr/share/postgresql/$MAJOR" "$ROOT/usr/share/postgresql/"
rm -rf "$ROOT/$LIB/wm_perf.so" "$ROOT/$LIB/bitcode/wm_perf" "$ROOT/$LIB/bitcode/wm_perf.index.bc" "$ROOT/$EXTDIR"/wm_perf[.-]*
check "the copy has no wm_perf file before the package" "" \
    "$(find "$ROOT" -name 'wm_perf*' | sed "s|^$ROOT||" | paste -sd' ')"
mkdir -p "$ROOT/var/lib/dpkg/info" "$ROOT/var/lib/dpkg/updates"
: >"$ROOT/var/lib/dpkg/status"
rc=0
dpkg --root="$ROOT" --log="$OUT/dpkg.log" --force-depends -i "$DEB" >"$OUT/dpkg.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$OUT/dpkg.out"
check "dpkg --root installed the package into the copy" "0 install ok installed" \
    "$rc $(dpkg --root="$ROOT" -s "postgresql-$MAJOR-wm-perf" 2>/dev/null | sed -n 's/^Status: //p')"
check "the system's package database does not know it" f \
    "$(dpkg-query -W "postgresql-$MAJOR-wm-perf" >/dev/null 2>&1 && echo t || echo f)"
same=t
for f in $LIB/wm_perf.so $EXTDIR/wm_perf.control $EXTDIR/wm_perf--1.0.sql $EXTDIR/wm_perf--1.1.sql $EXTDIR/wm_perf--1.0--1.1.sql; do
    cmp -s "$OUT/x/$f" "$ROOT/$f" || same=f
done
check "the copy's wm_perf files are the package's, byte for byte" t "$same"

# --- a clean cluster of the copy --------------------------------------------
chown -R postgres: "$OUT"
BIN=$ROOT/usr/lib/postgresql/$MAJOR/bin
check "the copy's pg_config reports the copy's pkglibdir" "$ROOT/$LIB" "$("$BIN/pg_config" --pkglibdir)"
PORT=$(perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1) or die; print $s->sockport')
runuser -u postgres -- "$BIN/initdb" -D "$PGDATA_DEB" -A trust -U postgres --no-sync >"$OUT/initdb.log"
{
    echo "port = $PORT"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$OUT'"
    echo "fsync = off"
    echo "shared_preload_libraries = 'wm_perf'"
    echo "wm_perf.redis_host = '127.0.0.1'"
    echo "wm_perf.redis_port = $REDIS_PORT"
} >>"$PGDATA_DEB/postgresql.conf"
rc=0
runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDATA_DEB" -l "$OUT/postgres.log" -w start >/dev/null || rc=$?
check "the clean cluster starts with wm_perf preloaded" 0 "$rc"
if [ "$rc" = 0 ]; then
    export PGHOST=$OUT PGPORT=$PORT PGUSER=postgres
    check "the server's PKGLIBDIR and SHAREDIR are the copy's" "$ROOT/$LIB $ROOT/usr/share/postgresql/$MAJOR" \
        "$(psql -X -At -d postgres -c "SELECT string_agg(setting, ' ' ORDER BY name) FROM pg_config WHERE name IN ('PKGLIBDIR', 'SHAREDIR')")"
    rc=0
    PATH=$BIN:$PATH WM_SRC=$WM_SRC REDIS_PORT=$REDIS_PORT sh "$WM_SRC/debian/tests/smoke" >"$OUT/smoke.out" 2>&1 || rc=$?
    cat "$OUT/smoke.out"
    check "debian/tests/smoke passed" "0 0" "$rc $(grep -c '^not ok' "$OUT/smoke.out" || true)"
    pm=$(head -1 "$PGDATA_DEB/postmaster.pid")
    check "the postmaster mapped exactly one wm_perf.so: the package's, in the copy" "$ROOT/$LIB/wm_perf.so" \
        "$(awk '$6 ~ /wm_perf\.so/ {print $6}' "/proc/$pm/maps" | sort -u | paste -sd' ')"
    check "the mapped file's checksum is the .deb's" "$(sha256sum <"$OUT/x/$LIB/wm_perf.so")" \
        "$(sha256sum <"/proc/$pm/root$ROOT/$LIB/wm_perf.so")"
    check "no crash in the cluster's log" 0 "$(grep -c -E 'terminated by signal|PANIC|TRAP:' "$OUT/postgres.log" || true)"
fi
stop_cluster
echo "deb: $fails failure(s)"
[ "$fails" -eq 0 ]
