#!/usr/bin/env bash
# ALTER EXTENSION wm_perf UPDATE from 1.0 gives what a fresh 1.1 install
# gives: the same catalogue (every member, function definition and
# attribute, privilege, comment, dependency, view, column, constraint,
# index, trigger, event trigger, configuration row and materialized view of
# attach), the same statistics and maintained aggregates, and a working
# wm_perf_attach().
#
# Pairs of databases, each "old" (1.0, then UPDATE) against "new" (1.1):
#   - the fixture, extension in public, application rules and a cached
#     statistic before the update;
#   - the fixture with service_events hash-partitioned and an inheritance
#     child of bins, extension in a schema of its own;
#   - an empty database (the extension installed before the tables, as a
#     restore does).
# And a 1.0 installation detached with wm_perf_detach(true): the update
# does not attach it again; and tables of another role, which 1.0 attached
# and 1.1 attaches only when told (allow_other_owners): the update gives
# what a fresh install attached that way gives, the materialized views owned
# by the tables' owner.
set -euo pipefail
: "${PGHOST:?}" "${PGPORT:?}" "${REDIS_PORT:?}" "${WM_SRC:?}" "${WM_TMP:?}"
OLD=wm_integ_upgrade_old
NEW=wm_integ_upgrade_new
POLD=wm_integ_upgrade_part_old
PNEW=wm_integ_upgrade_part_new
EOLD=wm_integ_upgrade_empty_old
ENEW=wm_integ_upgrade_empty_new
DET=wm_integ_upgrade_detached
OOLD=wm_integ_upgrade_owner_old
ONEW=wm_integ_upgrade_owner_new
ALL_DBS="$OLD $NEW $POLD $PNEW $EOLD $ENEW $DET $OOLD $ONEW"
OWNER=regress_wm_upgrade_owner
# Not public.  (A name that needs quoting, such as 'wm ext', fails in 1.1:
# the maintenance triggers' C code quotes the already quoted schema name.)
PSCHEMA=wm_ext
OUT=$WM_TMP/upgrade
mkdir -p "$OUT"
R() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
Q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
fails=0
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then echo "ok - $1"; else echo "not ok - $1 (expected '$2', got '$3')"; fails=$((fails + 1)); fi
}
check_same() { # check_same DESCRIPTION FILE_OLD FILE_NEW: exact equality, a diff otherwise
    if [ -s "$2" ] && cmp -s "$2" "$3"; then
        echo "ok - $1"
    else
        echo "not ok - $1 (diff -u old new, first 200 lines)"
        diff -u "$2" "$3" | head -200 | sed 's/^/# /' || true
        fails=$((fails + 1))
    fi
}

for db in $ALL_DBS; do
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
    psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db"
done
load_fixture() { # load_fixture DB [partitioned]
    local reshape=()
    if [ "${2:-}" = partitioned ]; then
        reshape=(-c "ALTER TABLE core.service_events RENAME TO service_events_flat;
            CREATE TABLE core.service_events (LIKE core.service_events_flat INCLUDING DEFAULTS) PARTITION BY HASH (id);
            ALTER TABLE core.service_events ADD PRIMARY KEY (id);
            CREATE TABLE core.service_events_p0 PARTITION OF core.service_events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
            CREATE TABLE core.service_events_p1 PARTITION OF core.service_events FOR VALUES WITH (MODULUS 2, REMAINDER 1);
            DROP TABLE core.service_events_flat;
            CREATE TABLE core.bins_archive () INHERITS (core.bins);")
    fi
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" -v scale=0.002 -f "$WM_SRC/test/fixtures/schema.sql" \
        "${reshape[@]}" -f "$WM_SRC/test/fixtures/generate.sql" >/dev/null 2>&1
}
for db in $OLD $NEW $DET $OOLD $ONEW; do load_fixture $db; done
psql -X -q -d postgres -c "DROP ROLE IF EXISTS $OWNER" >/dev/null 2>&1
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE ROLE $OWNER"
for db in $OOLD $ONEW; do
    Q $db "ALTER TABLE core.routes OWNER TO $OWNER; ALTER TABLE core.bins OWNER TO $OWNER;
           ALTER TABLE core.service_events OWNER TO $OWNER; ALTER TABLE operations.customers OWNER TO $OWNER;
           ALTER TABLE operations.organizations OWNER TO $OWNER"
done
for db in $POLD $PNEW; do load_fixture $db partitioned; done

# The description of a database: what wm_perf installed and attached, with
# no oid and no time in it.  One line per object (a function definition
# spans several), sorted.
cat >"$OUT/describe.sql" <<'EOF'
WITH ext AS (
	SELECT e.oid, e.extnamespace FROM pg_catalog.pg_extension e WHERE e.extname = 'wm_perf'
), members AS (
	SELECT d.classid, d.objid, d.objsubid
	  FROM pg_catalog.pg_depend d, ext
	 WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
	   AND d.refobjid = ext.oid AND d.deptype = 'e'
), fns AS (
	SELECT p.* FROM pg_catalog.pg_proc p
	  JOIN members m ON m.classid = 'pg_catalog.pg_proc'::regclass AND m.objid = p.oid
), rels AS (
	-- the extension's relations, and the materialized views attach made
	SELECT c.*, (m.objid IS NOT NULL) AS member
	  FROM pg_catalog.pg_class c
	  LEFT JOIN members m ON m.classid = 'pg_catalog.pg_class'::regclass AND m.objid = c.oid
	 WHERE m.objid IS NOT NULL
		OR (c.relnamespace = (SELECT extnamespace FROM ext) AND c.relkind = 'm'
			AND c.relname LIKE 'mv\_%\_statistics')
), usertables AS (
	SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
	   AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
), lines(section, line) AS (
	SELECT 'extension', pg_catalog.format('%s version=%s relocatable=%s schema=%s owner=%s config=%s condition=%s',
			 e.extname, e.extversion, e.extrelocatable, e.extnamespace::regnamespace, e.extowner::regrole,
			 (SELECT pg_catalog.array_agg(x::regclass::text ORDER BY x::regclass::text COLLATE "C")
				FROM pg_catalog.unnest(e.extconfig) x),
			 e.extcondition)
	  FROM pg_catalog.pg_extension e
	UNION ALL
	SELECT 'member', pg_catalog.pg_describe_object(classid, objid, objsubid) FROM members
	UNION ALL
	-- comments of the members and of their columns
	SELECT 'comment', pg_catalog.pg_describe_object(ds.classoid, ds.objoid, ds.objsubid) || ' = ' || ds.description
	  FROM pg_catalog.pg_description ds JOIN members m ON m.classid = ds.classoid AND m.objid = ds.objoid
	UNION ALL
	-- dependencies of and on the members and attach's materialized views
	-- (other than membership itself)
	SELECT 'depend', pg_catalog.format('%s -> %s (%s)',
			 pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid),
			 pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), d.deptype)
	  FROM pg_catalog.pg_depend d
	 WHERE (EXISTS (SELECT 1 FROM members m WHERE m.classid = d.classid AND m.objid = d.objid)
			OR EXISTS (SELECT 1 FROM members m WHERE m.classid = d.refclassid AND m.objid = d.refobjid)
			OR EXISTS (SELECT 1 FROM rels r
						WHERE NOT r.member AND d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = r.oid)
			OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite rw JOIN rels r ON r.oid = rw.ev_class
						WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid))
	   AND d.deptype <> 'e'
	   -- toast tables and array types have oids in their names
	   AND NOT (d.classid = 'pg_catalog.pg_class'::regclass
				AND (SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid = d.objid) = 'pg_toast'::regnamespace)
	   AND NOT (d.classid = 'pg_catalog.pg_type'::regclass
				AND (SELECT t.typcategory FROM pg_catalog.pg_type t WHERE t.oid = d.objid) = 'A')
	UNION ALL
	SELECT 'function', pg_catalog.pg_get_functiondef(p.oid) FROM fns p
	UNION ALL
	SELECT 'function attributes', pg_catalog.format(
			 '%s(%s) returns %s: kind=%s lang=%s volatile=%s strict=%s secdef=%s leakproof=%s parallel=%s cost=%s rows=%s config=%s owner=%s acl=%s probin=%s prosrc=%s',
			 p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), p.prorettype::regtype,
			 p.prokind, (SELECT l.lanname FROM pg_catalog.pg_language l WHERE l.oid = p.prolang),
			 p.provolatile, p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel, p.procost, p.prorows,
			 p.proconfig, p.proowner::regrole, p.proacl, p.probin, p.prosrc)
	  FROM fns p
	UNION ALL
	SELECT 'relation', pg_catalog.format('%s kind=%s member=%s owner=%s acl=%s options=%s persistence=%s populated=%s rowsecurity=%s comment=%s',
			 r.oid::regclass, r.relkind, r.member, r.relowner::regrole, r.relacl, r.reloptions,
			 r.relpersistence, r.relispopulated, r.relrowsecurity,
			 pg_catalog.obj_description(r.oid, 'pg_class'))
	  FROM rels r
	UNION ALL
	SELECT 'column', pg_catalog.format('%s.%s #%s %s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s',
			 a.attrelid::regclass, a.attname, a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod),
			 a.attnotnull, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
			 a.attcollation::regcollation, a.attacl)
	  FROM pg_catalog.pg_attribute a
	  JOIN rels r ON r.oid = a.attrelid AND r.relkind IN ('r', 'v', 'm', 'p')
	  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	 WHERE a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT 'constraint', pg_catalog.format('%s %s %s', co.conrelid::regclass, co.conname, pg_catalog.pg_get_constraintdef(co.oid))
	  FROM pg_catalog.pg_constraint co JOIN rels r ON r.oid = co.conrelid
	UNION ALL
	SELECT 'view', pg_catalog.format('%s: %s', r.oid::regclass, pg_catalog.pg_get_viewdef(r.oid))
	  FROM rels r WHERE r.relkind IN ('v', 'm')
	UNION ALL
	-- what the materialized views hold
	SELECT 'matview rows', pg_catalog.format('%s: %s rows, md5 %s', r.oid::regclass, x.n, x.h)
	  FROM rels r,
		   LATERAL (SELECT (pg_catalog.xpath('/row/n/text()', q))[1]::text AS n,
						   (pg_catalog.xpath('/row/h/text()', q))[1]::text AS h
					  FROM pg_catalog.query_to_xml(pg_catalog.format(
						'SELECT count(*) AS n, md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text COLLATE "C"), '''')) AS h FROM %s t',
						r.oid::regclass), false, true, '') q) x
	 WHERE r.relkind = 'm' AND r.relispopulated
	UNION ALL
	-- every index of every user table: the application's, attach's, the extension's
	SELECT 'index', pg_catalog.format('%s valid=%s ready=%s', pg_catalog.pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisready)
	  FROM pg_catalog.pg_index i
	 WHERE i.indrelid IN (SELECT oid FROM usertables)
	UNION ALL
	-- every trigger of every user table, partition clones included
	SELECT 'trigger', pg_catalog.format('%s: %s enabled=%s clone=%s', tg.tgrelid::regclass, pg_catalog.pg_get_triggerdef(tg.oid),
			 tg.tgenabled, tg.tgparentid <> 0)
	  FROM pg_catalog.pg_trigger tg
	 WHERE NOT tg.tgisinternal AND tg.tgrelid IN (SELECT oid FROM usertables)
	UNION ALL
	SELECT 'event trigger', pg_catalog.format('%s on %s enabled=%s tags=%s function=%s owner=%s comment=%s',
			 et.evtname, et.evtevent, et.evtenabled, et.evttags, et.evtfoid::regprocedure, et.evtowner::regrole,
			 pg_catalog.obj_description(et.oid, 'pg_event_trigger'))
	  FROM pg_catalog.pg_event_trigger et
	UNION ALL
	SELECT 'config', pg_catalog.format('%s = %s', c.role, c.relid) FROM :"extschema".wm_perf_config c
	UNION ALL
	SELECT 'cache rule', pg_catalog.format('%s', r) FROM :"extschema".wm_cache_rules r
)
SELECT section || ': ' || line FROM lines ORDER BY section COLLATE "C", line COLLATE "C";
EOF
describe() { # describe DB FILE [EXTSCHEMA]
    psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -v extschema="${3:-public}" -f "$OUT/describe.sql" >"$2"
}
stats() { # the statistics (less computedAt) and radius lookups of a database, one per line
    local db=$1 c t
    c=$(Q "$db" "SELECT md5('customers:7')::uuid")
    t=$(Q "$db" "SELECT territory FROM core.routes WHERE deleted_at IS NULL AND territory IS NOT NULL ORDER BY territory LIMIT 1")
    Q "$db" "SELECT wm_route_statistics() - 'computedAt'"
    Q "$db" "SELECT wm_route_statistics('$t') - 'computedAt'"
    Q "$db" "SELECT wm_bin_statistics() - 'computedAt'"
    Q "$db" "SELECT wm_bin_statistics('$c') - 'computedAt'"
    Q "$db" "SELECT jsonb_agg(to_jsonb(r) ORDER BY distance_m, id) FROM (SELECT id, round(distance_m::numeric, 3) AS distance_m, bin_number, status FROM wm_bins_within_radius(29.7604, -95.3698, 5, 20)) r"
    Q "$db" "SELECT jsonb_agg(to_jsonb(r) ORDER BY distance_m, id) FROM (SELECT id, round(distance_m::numeric, 3) AS distance_m, route_number FROM wm_routes_within_radius(29.7604, -95.3698, 20, 10)) r"
}

# --- 1. The fixture, extension in public ---------------------------------
Q $OLD "CREATE EXTENSION wm_perf VERSION '1.0' CASCADE" 2>/dev/null
check "1.0 installed" "1.0" "$(Q $OLD "SELECT extversion FROM pg_extension WHERE extname = 'wm_perf'")"
check "1.0 attached all five tables" 5 "$(Q $OLD "SELECT count(*) FROM wm_perf_config")"
psql -X -q -v ON_ERROR_STOP=1 -d $OLD -f "$WM_SRC/docs/cache_rules_example.sql" >/dev/null
Q $OLD "SELECT role, relid, attached_at FROM wm_perf_config ORDER BY role" >"$OUT/config.before"
Q $OLD "SELECT r FROM wm_cache_rules r ORDER BY rule_name" >"$OUT/rules.before"
# The statistics once, stored in Redis under 1.0.
stats $OLD >"$OUT/stats.before"
Q $OLD "ALTER EXTENSION wm_perf UPDATE" >"$OUT/update.log" 2>&1 || true
check "ALTER EXTENSION UPDATE: no warning, no error" "" "$(grep -E 'WARNING|ERROR' "$OUT/update.log" || true)"
check "updated to 1.1" "1.1" "$(Q $OLD "SELECT extversion FROM pg_extension WHERE extname = 'wm_perf'")"

Q $NEW "CREATE EXTENSION wm_perf CASCADE" 2>/dev/null
check "fresh install is 1.1" "1.1" "$(Q $NEW "SELECT extversion FROM pg_extension WHERE extname = 'wm_perf'")"
psql -X -q -v ON_ERROR_STOP=1 -d $NEW -f "$WM_SRC/docs/cache_rules_example.sql" >/dev/null

describe $OLD "$OUT/old.txt"
describe $NEW "$OUT/new.txt"
check_same "updated catalogue equals a fresh 1.1 install" "$OUT/old.txt" "$OUT/new.txt"
for s in member function 'function attributes' relation column view 'matview rows' index trigger 'event trigger' config 'cache rule'; do
    check "description has $s lines" t "$(grep -q "^$s: " "$OUT/new.txt" && echo t || echo f)"
done
Q $OLD "SELECT role, relid, attached_at FROM wm_perf_config ORDER BY role" >"$OUT/config.after"
Q $OLD "SELECT r FROM wm_cache_rules r ORDER BY rule_name" >"$OUT/rules.after"
check_same "wm_perf_config rows (attached_at too) survived the update" "$OUT/config.before" "$OUT/config.after"
check_same "wm_cache_rules rows survived the update" "$OUT/rules.before" "$OUT/rules.after"
check "wm_cache_rules still has the example rules" 15 "$(Q $OLD "SELECT count(*) FROM wm_cache_rules")"
check "one wm_perf_attach, with allow_other_owners" "wm_perf_attach(regclass,regclass,regclass,regclass,regclass,boolean)" \
    "$(Q $OLD "SELECT string_agg(p.oid::regprocedure::text, ' ') FROM pg_proc p WHERE p.proname = 'wm_perf_attach'")"
check "no materialized view is an extension member" 0 \
    "$(Q $OLD "SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass WHERE d.deptype = 'e' AND c.relkind = 'm'")"
check "materialized views rebuilt: no cast to text left" 0 \
    "$(Q $OLD "SELECT count(*) FROM pg_class c WHERE c.relname LIKE 'mv\_%' AND c.relkind = 'm' AND pg_get_viewdef(c.oid) LIKE '%::text AS status%'")"
check "a BEFORE statement trigger on each of the four tables" 4 \
    "$(Q $OLD "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'wm\_perf\_invalidate\_%\_before' AND tgenabled = 'A'")"
check "maintained aggregates built by the update" "12 1" \
    "$(Q $OLD "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'wm\_perf\_maintain\_%') || ' ' || (SELECT count(*) FROM wm_agg_state)")"
check "maintained aggregates equal a full computation after the update" 0 "$(Q $OLD "SELECT count(*) FROM wm_statistics_verify()")"

stats $OLD >"$OUT/stats.old"
stats $NEW >"$OUT/stats.new"
check_same "statistics before the update equal those after it" "$OUT/stats.before" "$OUT/stats.old"
check_same "statistics after the update equal a fresh install's" "$OUT/stats.old" "$OUT/stats.new"

# A committed write after the update reaches the cache: the updated
# database sees it like the fresh one, and the application rules delete.
B1=$(Q $OLD "SELECT b.id FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL AND b.status = 'active' ORDER BY b.bin_number LIMIT 1")
R set waste_mgmt:stats:bins:global stale >/dev/null
Q $OLD "UPDATE core.bins SET status = 'retired', fill_level_percent = 3 WHERE id = '$B1'"
check "application rule deleted its key at commit after the update" 0 "$(R exists waste_mgmt:stats:bins:global)"
Q $NEW "UPDATE core.bins SET status = 'retired', fill_level_percent = 3 WHERE id = '$B1'"
stats $OLD >"$OUT/stats.old2"
stats $NEW >"$OUT/stats.new2"
check "a committed write changes the updated database's statistics" t \
    "$(cmp -s "$OUT/stats.old" "$OUT/stats.old2" && echo f || echo t)"
check_same "statistics after a write equal a fresh install's" "$OUT/stats.old2" "$OUT/stats.new2"
check "maintained aggregates equal a full computation after a write" 0 "$(Q $OLD "SELECT count(*) FROM wm_statistics_verify()")"

# wm_perf_attach() after the update: nothing left to do, and the new
# parameter works.
check "wm_perf_attach() after the update has nothing to do" "" \
    "$(Q $OLD "SELECT l FROM wm_perf_attach() l WHERE l NOT LIKE '%already present%' AND l <> 'maintained statistics: built'")"
check "wm_perf_attach() reports every trigger present" 24 \
    "$(Q $OLD "SELECT count(*) FROM wm_perf_attach() l WHERE l LIKE 'trigger %: already present'")"
check "wm_perf_attach(named tables, allow_other_owners => true) works" "" \
    "$(Q $OLD "SELECT l FROM wm_perf_attach(routes => 'core.routes', bins => 'core.bins', customers => 'operations.customers', service_events => 'core.service_events', organizations => 'operations.organizations', allow_other_owners => true) l WHERE l NOT LIKE '%already present%' AND l <> 'maintained statistics: built'")"
for db in $OLD $NEW; do
    Q $db "SELECT count(*) FROM wm_perf_attach()" >/dev/null
done
describe $OLD "$OUT/old.attach.txt"
describe $NEW "$OUT/new.attach.txt"
check_same "after wm_perf_attach() in both, the catalogues are still equal" "$OUT/old.attach.txt" "$OUT/new.attach.txt"
check "the updated database can be detached without CASCADE" t \
    "$(Q $OLD "SELECT count(*) FROM wm_perf_detach(true)" >/dev/null && Q $OLD "DROP EXTENSION wm_perf" >/dev/null && echo t)"

# --- 2. Partitions and inheritance children, schema wm_ext ---------------
Q $POLD "CREATE SCHEMA \"$PSCHEMA\"; CREATE EXTENSION wm_perf VERSION '1.0' SCHEMA \"$PSCHEMA\" CASCADE" 2>/dev/null
check "partitioned: 1.0 attached all five tables" 5 "$(Q $POLD "SELECT count(*) FROM \"$PSCHEMA\".wm_perf_config")"
check "partitioned: 1.0 left the partitions without statement triggers" 0 \
    "$(Q $POLD "SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('core.service_events_p0'::regclass, 'core.bins_archive'::regclass) AND tgparentid = 0")"
Q $POLD "ALTER EXTENSION wm_perf UPDATE" >"$OUT/update_part.log" 2>&1 || true
check "partitioned: ALTER EXTENSION UPDATE: no warning, no error" "" "$(grep -E 'WARNING|ERROR' "$OUT/update_part.log" || true)"
Q $PNEW "CREATE SCHEMA \"$PSCHEMA\"; CREATE EXTENSION wm_perf SCHEMA \"$PSCHEMA\" CASCADE" 2>/dev/null
describe $POLD "$OUT/part_old.txt" "$PSCHEMA"
describe $PNEW "$OUT/part_new.txt" "$PSCHEMA"
check_same "partitioned: updated catalogue equals a fresh 1.1 install" "$OUT/part_old.txt" "$OUT/part_new.txt"
check "partitioned: statement triggers on both partitions and the child" 16 \
    "$(Q $POLD "SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('core.service_events_p0'::regclass, 'core.service_events_p1'::regclass, 'core.bins_archive'::regclass) AND tgname LIKE 'wm\_perf\_invalidate\_%' AND tgparentid = 0")"
check "partitioned: wm_perf_attach() after the update has nothing to do" "" \
    "$(Q $POLD "SELECT l FROM \"$PSCHEMA\".wm_perf_attach() l WHERE l NOT LIKE '%already present%' AND l <> 'maintained statistics: built'")"

# --- 3. Installed before the tables existed (nothing attached) -----------
Q $EOLD "CREATE EXTENSION wm_perf VERSION '1.0' CASCADE" 2>/dev/null
Q $EOLD "ALTER EXTENSION wm_perf UPDATE" 2>/dev/null
Q $ENEW "CREATE EXTENSION wm_perf CASCADE" 2>/dev/null
describe $EOLD "$OUT/empty_old.txt"
describe $ENEW "$OUT/empty_new.txt"
check_same "nothing attached: updated catalogue equals a fresh 1.1 install" "$OUT/empty_old.txt" "$OUT/empty_new.txt"
check "nothing attached: the update attached nothing" 0 "$(Q $EOLD "SELECT count(*) FROM wm_perf_config")"

# --- 4. A detached 1.0 installation stays detached -----------------------
Q $DET "CREATE EXTENSION wm_perf VERSION '1.0' CASCADE" 2>/dev/null
Q $DET "SELECT count(*) FROM wm_perf_detach(true)" >/dev/null
Q $DET "ALTER EXTENSION wm_perf UPDATE" 2>/dev/null
check "detached: still no invalidation trigger" 0 "$(Q $DET "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'wm\_perf\_invalidate\_%'")"
check "detached: still no materialized view" 0 "$(Q $DET "SELECT count(*) FROM pg_class WHERE relkind = 'm' AND relname LIKE 'mv\_%'")"
check "detached: still no attach index" 0 "$(Q $DET "SELECT count(*) FROM pg_class WHERE relname = 'bins_location_active_gist_idx'")"
check "detached: no maintained aggregates" "0 0" \
    "$(Q $DET "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'wm\_perf\_maintain\_%') || ' ' || (SELECT count(*) FROM wm_agg_state)")"
check "detached: the configuration rows stay" 5 "$(Q $DET "SELECT count(*) FROM wm_perf_config")"

# --- 5. Tables of another role --------------------------------------------
Q $OOLD "CREATE EXTENSION wm_perf VERSION '1.0' CASCADE" 2>/dev/null
check "other owner: 1.0 attached all five tables" 5 "$(Q $OOLD "SELECT count(*) FROM wm_perf_config")"
check "other owner: 1.0's materialized views are the attaching role's" postgres \
    "$(Q $OOLD "SELECT string_agg(DISTINCT relowner::regrole::text, ' ') FROM pg_class WHERE relkind = 'm' AND relname LIKE 'mv\_%'")"
Q $OOLD "ALTER EXTENSION wm_perf UPDATE" >"$OUT/update_owner.log" 2>&1 || true
check "other owner: ALTER EXTENSION UPDATE: no warning, no error" "" "$(grep -E 'WARNING|ERROR' "$OUT/update_owner.log" || true)"
check "other owner: the update kept the five tables attached" 5 "$(Q $OOLD "SELECT count(*) FROM wm_perf_config")"
check "other owner: materialized views owned by the tables' owner, populated" "$OWNER true 3" \
    "$(Q $OOLD "SELECT string_agg(DISTINCT relowner::regrole::text, ' ') || ' ' || bool_and(relispopulated) || ' ' || count(*) FROM pg_class WHERE relkind = 'm' AND relname LIKE 'mv\_%'")"
Q $ONEW "CREATE EXTENSION wm_perf CASCADE" 2>/dev/null
check "other owner: a fresh 1.1 install attaches none of them by name" 0 "$(Q $ONEW "SELECT count(*) FROM wm_perf_config")"
Q $ONEW "SELECT count(*) FROM wm_perf_attach(routes => 'core.routes', bins => 'core.bins', customers => 'operations.customers', service_events => 'core.service_events', organizations => 'operations.organizations', allow_other_owners => true)" >/dev/null
describe $OOLD "$OUT/owner_old.txt"
describe $ONEW "$OUT/owner_new.txt"
check_same "other owner: updated catalogue equals a fresh 1.1 install attached with allow_other_owners" \
    "$OUT/owner_old.txt" "$OUT/owner_new.txt"
check "other owner: wm_perf_attach() after the update has nothing to do" "" \
    "$(Q $OOLD "SELECT l FROM wm_perf_attach() l WHERE l NOT LIKE '%already present%' AND l <> 'maintained statistics: built'")"

for db in $ALL_DBS; do
    psql -X -q -d postgres -c "DROP DATABASE $db" >/dev/null
done
psql -X -q -d postgres -c "DROP ROLE $OWNER" >/dev/null
echo "upgrade: $fails failure(s)"
[ "$fails" -eq 0 ]
