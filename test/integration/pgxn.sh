#!/usr/bin/env bash
# The PGXN release: META.json against the PGXN Meta Spec v1.0.0
# (https://pgxn.org/spec/, parsed with perl's JSON::PP), its versions against
# wm_perf.control's default_version and CHANGELOG.md, and the archive of
# `make dist` (git archive of HEAD): exactly the tracked files under
# wm_perf-<version>/, an untracked file left out, and it builds.
set -euo pipefail
: "${WM_SRC:?}" "${WM_TMP:?}"
PG_CONFIG=${WM_PG_BIN:-/usr/lib/postgresql/15/bin}/pg_config
OUT=$WM_TMP/pgxn
mkdir -p "$OUT"
fails=0
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1 (expected '$2', got '$3')"; fails=$((fails + 1)); fi
}
EXTVERSION=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$WM_SRC/wm_perf.control")
check "wm_perf.control's default_version" 1.1 "$EXTVERSION"
check "CHANGELOG.md's newest entry is the default_version" "$EXTVERSION" \
    "$(sed -n 's/^## \([0-9][0-9.]*\).*/\1/p' "$WM_SRC/CHANGELOG.md" | head -1)"

# META.json: every rule of the spec that applies to its keys, one line each
# ("ok <rule>" / "bad <rule>: why"), printed by perl.
perl -MJSON::PP -e '
use strict; use warnings;
my ($file, $extversion, $src) = @ARGV;
open my $fh, "<", $file or die "$file: $!";
my $meta = eval { local $/; JSON::PP->new->utf8->relaxed(0)->decode(<$fh>) };
# r(CONDITION, RULE, WHY): CONDITION in scalar context (a failed match in
# list context is an empty list).
sub r { my ($ok, $rule, $why) = @_; print $ok ? "ok $rule\n" : "bad $rule: " . ($why // "") . "\n"; }
r(ref $meta eq "HASH", "META.json is a JSON object", $@);
exit 0 unless ref $meta eq "HASH";
my $semver = qr/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
my $term = qr/^[^\/\\\s\x00-\x1f\x7f]{2,}$/;
for my $k (qw(name abstract version maintainer license provides meta-spec)) {
    r(exists $meta->{$k}, "required key $k");
}
my %known = map { $_ => 1 } qw(name abstract version maintainer license provides meta-spec
    description generated_by no_index prereqs release_status resources tags);
r(!(grep { !$known{$_} && !/^x_/i } keys %$meta), "no unknown top-level key",
  join(" ", grep { !$known{$_} && !/^x_/i } keys %$meta));
r(ref $meta->{"meta-spec"} eq "HASH" && ($meta->{"meta-spec"}{version} // "") eq "1.0.0", "meta-spec version 1.0.0");
r(scalar(!ref $meta->{name} && ($meta->{name} // "") =~ $term), "name is a term");
r(($meta->{name} // "") eq "wm_perf", "name is the extension name wm_perf");
r(!ref $meta->{abstract} && length($meta->{abstract} // ""), "abstract is a non-empty string");
r(scalar(($meta->{version} // "") =~ $semver), "version is a semantic version", $meta->{version});
# PGXN needs a semantic version; the control file says 1.1: the same
# release when padded with .0 to three parts.
my $padded = join(".", (split(/\./, $extversion), 0, 0)[0 .. 2]);
r(($meta->{version} // "") eq $padded, "version equals default_version $extversion as a semantic version ($padded)", $meta->{version});
my @maint = ref $meta->{maintainer} eq "ARRAY" ? @{$meta->{maintainer}} : ($meta->{maintainer});
r(@maint && !(grep { ref $_ || !length($_ // "") } @maint), "maintainer is a string or a list of strings");
my %licenses = map { $_ => 1 } qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd freebsd gfdl_1_2
    gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0 mozilla_1_1 openssl perl_5 postgresql
    qpl_1_0 ssleay sun zlib open_source restricted unrestricted unknown);
r(!ref $meta->{license} && $licenses{$meta->{license} // ""}, "license is a known license string", $meta->{license});
r(($meta->{license} // "") eq "postgresql", "license postgresql, as LICENSE says");
my $p = $meta->{provides};
r(scalar(ref $p eq "HASH" && %$p), "provides is a non-empty object");
if (ref $p eq "HASH") {
    r(exists $p->{wm_perf}, "provides the extension wm_perf");
    for my $ext (sort keys %$p) {
        my $e = $p->{$ext};
        r(scalar($ext =~ $term), "provides: $ext is a term");
        r(ref $e eq "HASH" && defined $e->{file} && defined $e->{version}, "provides $ext: file and version");
        next unless ref $e eq "HASH";
        r(-f "$src/$e->{file}", "provides $ext: file $e->{file} exists");
        r(!defined $e->{docfile} || -f "$src/$e->{docfile}", "provides $ext: docfile exists");
        r(($e->{version} // "") eq $padded, "provides $ext: version $padded", $e->{version});
        r(!(grep { !/^(file|version|abstract|docfile)$/ && !/^x_/i } keys %$e), "provides $ext: no unknown key");
    }
}
if (exists $meta->{release_status}) {
    r(scalar(($meta->{release_status} // "") =~ /^(stable|testing|unstable)$/), "release_status is stable, testing or unstable");
}
if (exists $meta->{tags}) {
    r(ref $meta->{tags} eq "ARRAY" && !(grep { ref $_ || !/^[^\x00-\x1f]{1,255}$/ } @{$meta->{tags}}), "tags are strings");
}
if (exists $meta->{resources}) {
    r(ref $meta->{resources} eq "HASH" && !(grep { !/^(homepage|bugtracker|repository|x_\w+)$/i } keys %{$meta->{resources}}),
      "resources has only homepage, bugtracker, repository");
}
if (exists $meta->{prereqs}) {
    my $ok = ref $meta->{prereqs} eq "HASH";
    my $why = "";
    for my $phase (keys %{$ok ? $meta->{prereqs} : {}}) {
        if ($phase !~ /^(configure|build|test|runtime|develop)$/) { $ok = 0; $why .= " phase $phase"; next; }
        for my $rel (keys %{$meta->{prereqs}{$phase}}) {
            if ($rel !~ /^(requires|recommends|suggests|conflicts)$/) { $ok = 0; $why .= " relation $rel"; next; }
            for my $v (values %{$meta->{prereqs}{$phase}{$rel}}) {
                $v =~ /^(0|$semver|(([<>]=?|==|!=)\s*\S+)(\s*,\s*([<>]=?|==|!=)\s*\S+)*)$/ or do { $ok = 0; $why .= " version $v" };
            }
        }
    }
    r($ok, "prereqs: known phases and relations, versions 0 or semantic", $why);
    r(($meta->{prereqs}{runtime}{requires}{PostgreSQL} // "") eq "15.0.0", "runtime requires PostgreSQL 15.0.0");
    r(exists $meta->{prereqs}{runtime}{requires}{postgis}, "runtime requires postgis");
}
' "$WM_SRC/META.json" "$EXTVERSION" "$WM_SRC" >"$OUT/meta.out" 2>&1 || echo "bad perl exited $?" >>"$OUT/meta.out"
while IFS= read -r line; do
    case "$line" in
        "ok "*) echo "ok - META.json: ${line#ok }" ;;
        *) echo "not ok - META.json: ${line#bad }"; fails=$((fails + 1)) ;;
    esac
done <"$OUT/meta.out"

# make dist, with an untracked file in the tree that must not get in.
PROBE=$WM_SRC/wm_dist_untracked_probe.txt
trap 'rm -f "$PROBE"' EXIT
echo untracked >"$PROBE"
rc=0
make -s -C "$WM_SRC" dist DIST_OUT="$OUT" >"$OUT/dist.log" 2>&1 || rc=$?
rm -f "$PROBE"
ZIP=$OUT/wm_perf-$EXTVERSION.zip
check "make dist wrote wm_perf-$EXTVERSION.zip" "0 t" "$rc $([ -f "$ZIP" ] && echo t || echo f)"
if [ -f "$ZIP" ]; then
    unzip -Z1 "$ZIP" | grep -v '/$' | sort >"$OUT/zip.list"
    git -C "$WM_SRC" ls-tree -r --name-only HEAD | sed "s|^|wm_perf-$EXTVERSION/|" | sort >"$OUT/git.list"
    check "the archive holds exactly the files of HEAD, under wm_perf-$EXTVERSION/" "" \
        "$(diff "$OUT/git.list" "$OUT/zip.list" | grep '^[<>]' | head -5 | paste -sd' ')"
    check "the untracked file is not in it" 0 "$(grep -c 'wm_dist_untracked_probe' "$OUT/zip.list" || true)"
    missing=""
    for f in wm_perf.control META.json Makefile LICENSE README.md CHANGELOG.md \
             sql/wm_perf--1.0.sql sql/wm_perf--1.1.sql sql/wm_perf--1.0--1.1.sql src/compat.h src/wm_perf.c; do
        grep -qx "wm_perf-$EXTVERSION/$f" "$OUT/zip.list" || missing="$missing $f"
    done
    check "it has the control file, META.json, the SQL scripts and the sources" "" "$missing"
    check "its META.json is HEAD's" "$(git -C "$WM_SRC" show HEAD:META.json | md5sum)" \
        "$(unzip -p "$ZIP" "wm_perf-$EXTVERSION/META.json" | md5sum)"
    rm -rf "$OUT/unpacked"
    mkdir "$OUT/unpacked"
    unzip -q "$ZIP" -d "$OUT/unpacked"
    rc=0
    make -s -C "$OUT/unpacked/wm_perf-$EXTVERSION" PG_CONFIG="$PG_CONFIG" WERROR=1 >"$OUT/build.log" 2>&1 || rc=$?
    [ "$rc" = 0 ] || tail -20 "$OUT/build.log" | sed 's/^/# /'
    check "the unpacked archive builds (make, -Werror)" "0 t" \
        "$rc $([ -f "$OUT/unpacked/wm_perf-$EXTVERSION/wm_perf.so" ] && echo t || echo f)"
fi
echo "pgxn: $fails failure(s)"
[ "$fails" -eq 0 ]
