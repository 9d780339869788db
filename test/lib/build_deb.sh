#!/usr/bin/env bash
# `make deb`: build the Debian binary packages (postgresql-<v>-wm-perf for
# each version in debian/pgversions whose postgresql-server-dev-<v> is
# installed) with dpkg-buildpackage, debhelper and pg_buildext, from a clean
# export of the git tree: HEAD plus the uncommitted changes of tracked files
# (git stash create), never untracked files.  The .deb files go to
# $DEB_OUT (default build/deb).  Needs debhelper and postgresql-server-dev-all.
set -euo pipefail
WM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${DEB_OUT:-$WM_SRC/build/deb}
for cmd in dpkg-buildpackage pg_buildext dh; do
    command -v $cmd >/dev/null || { echo "make deb: $cmd is missing (apt-get install debhelper postgresql-server-dev-all)" >&2; exit 1; }
done
tree=$(git -C "$WM_SRC" stash create 2>/dev/null || true)
tree=${tree:-HEAD}
version=$(dpkg-parsechangelog -l "$WM_SRC/debian/changelog" -S Version)
work=$(mktemp -d /tmp/wm_perf_deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/wm-perf-${version%-*}"
git -C "$WM_SRC" archive "$tree" | tar -C "$work/wm-perf-${version%-*}" -xf -
(cd "$work/wm-perf-${version%-*}" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1 || {
    tail -60 "$work/build.log" >&2
    exit 1
}
mkdir -p "$OUT"
rm -f "$OUT"/postgresql-*-wm-perf_*.deb
cp "$work"/postgresql-*-wm-perf_"$version"_*.deb "$OUT"/
cp "$work/build.log" "$OUT/build.log"
ls "$OUT"/*.deb
