#!/usr/bin/env bash
# `make compat-check`: compile every src/*.c against PostgreSQL 17's server
# headers with -Werror (compile only: nothing is linked, loaded or run).
#
# Debian 12 has no PostgreSQL 17 packages and the PGDG repository is not
# used, so the headers come from Debian 13 (trixie): postgresql-server-dev-17
# is downloaded with apt-get into a private apt state under $WM_COMPAT_CACHE
# (the system's sources and package database are not touched) and unpacked
# with dpkg -x.  WM_PG17_INCLUDEDIR=<dir> uses headers found elsewhere.
# Prints "ok - ..." / "not ok - ..." lines and exits non-zero on a failure.
set -euo pipefail

WM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${WM_COMPAT_CACHE:-/tmp/wm_perf_compat_cache}
PG15_CONFIG=${WM_PG_BIN:-/usr/lib/postgresql/15/bin}/pg_config
EXTVERSION=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$WM_SRC/wm_perf.control")

fetch_headers() {
    local apt="$CACHE/apt" opts
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
        >"$apt/etc/sources.list"
    opts=(-o "Dir::Etc::SourceList=$apt/etc/sources.list" -o Dir::Etc::SourceParts=/nonexistent
          -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
          -o APT::Sandbox::User=root -q)
    apt-get "${opts[@]}" update >"$CACHE/apt-update.log" 2>&1
    (cd "$CACHE" && apt-get "${opts[@]}" download postgresql-server-dev-17 postgresql-17 >"$CACHE/apt-download.log" 2>&1)
    rm -rf "$CACHE/root"
    dpkg -x "$CACHE"/postgresql-server-dev-17_*.deb "$CACHE/root"
    dpkg -x "$CACHE"/postgresql-17_*.deb "$CACHE/root"
}

INC=${WM_PG17_INCLUDEDIR:-}
if [ -z "$INC" ]; then
    INC=$CACHE/root/usr/include/postgresql/17/server
    [ -f "$INC/pg_config.h" ] || fetch_headers
fi
ver=$(sed -n 's/^#define PG_VERSION_NUM \([0-9]*\)$/\1/p' "$INC/pg_config.h")
echo "# PostgreSQL headers $ver from $INC"
if [ "${ver:0:2}" != 17 ]; then
    echo "not ok - headers are PostgreSQL 17 (PG_VERSION_NUM $ver)"
    exit 1
fi

OUT=$(mktemp -d /tmp/wm_compat.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
# Trixie's pg_config.h says the C library declares strlcpy (glibc 2.38);
# Debian 12's glibc 2.36 does not.  Declare it for this compile-only check.
: >"$OUT/strlcpy.h"
if ! printf '#define _GNU_SOURCE\n#include <string.h>\nvoid *p = (void *) strlcpy;\n' |
        gcc -x c -fsyntax-only -Werror - 2>/dev/null; then
    echo '#include <stddef.h>
extern size_t strlcpy(char *dst, const char *src, size_t siz);' >"$OUT/strlcpy.h"
fi

# The same warnings as the PGXS build (Makefile), with -Werror.
CFLAGS="$($PG15_CONFIG --cflags) $($PG15_CONFIG --cflags_sl) -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror"
failed=0
for f in "$WM_SRC"/src/*.c; do
    name=$(basename "$f")
    # shellcheck disable=SC2086
    if gcc $CFLAGS -D_GNU_SOURCE -include "$OUT/strlcpy.h" -I"$WM_SRC/src" -I"$INC" \
            -DWM_PERF_VERSION=\"$EXTVERSION\" -c "$f" -o "$OUT/${name%.c}.o" 2>"$OUT/err"; then
        echo "ok - $name compiles against PostgreSQL $ver headers with -Werror"
    else
        echo "not ok - $name compiles against PostgreSQL $ver headers with -Werror"
        sed 's/^/# /' "$OUT/err"
        failed=1
    fi
done

# Link-level: every symbol the objects need that the C library and hiredis
# do not provide is exported by PostgreSQL 17's postgres binary.
SERVER=${WM_PG17_SERVER:-$CACHE/root/usr/lib/postgresql/17/bin/postgres}
if [ "$failed" = 0 ] && [ -x "$SERVER" ]; then
    gcc -shared -o "$OUT/wm_perf17.so" "$OUT"/*.o -lhiredis
    nm -D -u "$OUT/wm_perf17.so" | awk '{print $2}' | sed 's/@.*//' | sort -u >"$OUT/needed"
    nm -D --defined-only "$SERVER" | awk '{print $3}' | sort -u >"$OUT/server"
    nm -D --defined-only "$(gcc -print-file-name=libc.so.6)" 2>/dev/null | awk '{print $3}' | sed 's/@.*//' >"$OUT/other"
    for lib in /lib/x86_64-linux-gnu/libc.so.6 /lib/x86_64-linux-gnu/libm.so.6 \
               "$(ldconfig -p | awk '/libhiredis.so/ {print $NF; exit}')"; do
        [ -n "$lib" ] && [ -e "$lib" ] && nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' >>"$OUT/other"
    done
    # strlcpy: in glibc from 2.38 (trixie), declared above for Debian 12.
    echo strlcpy >>"$OUT/other"
    sort -u -o "$OUT/other" "$OUT/other"
    missing=$(comm -23 "$OUT/needed" "$OUT/server" | comm -23 - "$OUT/other" | grep -v -E '^(_ITM_|__gmon_start__|__cxa_finalize)' || true)
    n=$(wc -l <"$OUT/needed")
    if [ -z "$missing" ]; then
        echo "ok - all $n undefined symbols resolve in PostgreSQL 17's postgres, libc or hiredis"
    else
        echo "not ok - symbols missing from PostgreSQL 17's postgres: $(echo $missing)"
        failed=1
    fi
fi
exit $failed
