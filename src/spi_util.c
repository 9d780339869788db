/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  Where the application tables are, what their columns must be, schema
 *	  resolution and SPI helpers.
 *
 * The tables wm_perf is attached to are read from @extschema@.wm_perf_config
 * and kept until a relcache invalidation of that table (sent at commit by
 * its statement trigger, see trigger.c), of an attached table, or of all
 * relations.  Two rules keep the copy exact:
 *	- it is read with a snapshot taken for the purpose (the latest one), not
 *	  with the caller's statement snapshot, which may predate a committed
 *	  re-attach whose invalidation has already been taken in;
 *	- it is marked valid only if no invalidation arrived while it was read;
 *	  otherwise the next entry point reads it again.
 * It is reloaded only at entry points (wm_config_refresh()), never in the
 * middle of a call, so that one call uses one configuration throughout; the
 * accessors return the copy of the last refresh.  Every value cached in
 * Redis carries the oids of the tables it was computed from (cache.c), so a
 * value computed under an older configuration is never read under a newer
 * one.
 *
 * Every column wm_perf reads is checked by type oid when the configuration
 * is loaded and when a table is attached: built-in types, enums and
 * PostGIS's geometry and geography only (no domains, no user-defined base
 * types), so that no cast, operator, domain check or implicit conversion of
 * a table owner's runs in a query wm_perf builds (casts of enums to text
 * are never written either: values are converted with the type's output
 * function, which for an enum is enum_out).  Every query text is
 * schema-qualified with quoted names and qualified operators, so the
 * caller's search_path never matters.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "wm_perf.h"

static const char *const table_roles[WM_TABLE_COUNT] = {
	"routes", "bins", "customers", "service_events", "organizations"
};

/* What a column wm_perf reads may be. */
typedef enum WmColumnKind
{
	WM_COLUMN_ANY,				/* only tested with IS NULL */
	WM_COLUMN_UUID,
	WM_COLUMN_LABEL,			/* enum, text, varchar, char(n) */
	WM_COLUMN_TEXT,				/* text, varchar: compared with a text */
	WM_COLUMN_INTEGER,			/* int2, int4, int8 */
	WM_COLUMN_NUMBER,			/* numeric or an integer type */
	WM_COLUMN_BOOL,
	WM_COLUMN_DATE,
	WM_COLUMN_TIMESTAMP,		/* timestamptz or timestamp */
	WM_COLUMN_SPATIAL			/* PostGIS geometry or geography */
} WmColumnKind;

static const char *const kind_names[] = {
	"any type", "uuid", "an enum, text or varchar", "text or varchar",
	"smallint, integer or bigint", "numeric or an integer type", "boolean",
	"date", "timestamp with or without time zone",
	"PostGIS geometry or geography"
};

typedef struct WmColumnSpec
{
	const char *name;
	WmColumnKind kind;
} WmColumnSpec;

/* The columns of DESIGN.md section 2, per table role. */
static const WmColumnSpec routes_spec[] = {
	{"id", WM_COLUMN_UUID}, {"route_number", WM_COLUMN_LABEL},
	{"route_name", WM_COLUMN_LABEL}, {"territory", WM_COLUMN_TEXT},
	{"route_type", WM_COLUMN_LABEL}, {"service_day", WM_COLUMN_LABEL},
	{"status", WM_COLUMN_LABEL}, {"estimated_duration_minutes", WM_COLUMN_NUMBER},
	{"estimated_distance_miles", WM_COLUMN_NUMBER}, {"ai_optimized", WM_COLUMN_BOOL},
	{"optimization_score", WM_COLUMN_NUMBER}, {"route_geometry", WM_COLUMN_SPATIAL},
	{"deleted_at", WM_COLUMN_ANY}, {NULL, WM_COLUMN_ANY}
};
static const WmColumnSpec bins_spec[] = {
	{"id", WM_COLUMN_UUID}, {"bin_number", WM_COLUMN_LABEL},
	{"customer_id", WM_COLUMN_UUID}, {"bin_type", WM_COLUMN_LABEL},
	{"material", WM_COLUMN_LABEL}, {"status", WM_COLUMN_LABEL},
	{"capacity_cubic_yards", WM_COLUMN_NUMBER}, {"fill_level_percent", WM_COLUMN_INTEGER},
	{"gps_enabled", WM_COLUMN_BOOL}, {"sensor_enabled", WM_COLUMN_BOOL},
	{"next_service_date", WM_COLUMN_DATE}, {"location", WM_COLUMN_SPATIAL},
	{"deleted_at", WM_COLUMN_ANY}, {NULL, WM_COLUMN_ANY}
};
static const WmColumnSpec customers_spec[] = {
	{"id", WM_COLUMN_UUID}, {"deleted_at", WM_COLUMN_ANY}, {NULL, WM_COLUMN_ANY}
};
static const WmColumnSpec events_spec[] = {
	{"id", WM_COLUMN_UUID}, {"customer_id", WM_COLUMN_UUID},
	{"event_type", WM_COLUMN_LABEL}, {"created_at", WM_COLUMN_TIMESTAMP},
	{"deleted_at", WM_COLUMN_ANY}, {NULL, WM_COLUMN_ANY}
};
static const WmColumnSpec *const table_specs[WM_TABLE_COUNT] = {
	routes_spec, bins_spec, customers_spec, events_spec, customers_spec
};

typedef struct WmConfig
{
	bool		valid;
	uint64		generation;		/* bumped on every reload */
	MemoryContext cxt;			/* the strings below */
	Oid			config_relid;
	Oid			rules_relid;
	char	   *ext_schema;		/* quoted */
	Oid			ext_schema_oid;
	char	   *postgis_schema; /* quoted */
	Oid			table_oid[WM_TABLE_COUNT];
	char	   *table_qualname[WM_TABLE_COUNT];
	bool		table_is_geometry[WM_TABLE_COUNT];	/* spatial column type */
	char	   *table_problem[WM_TABLE_COUNT];	/* columns wm_perf refuses */
} WmConfig;

static WmConfig config;
static bool callback_registered = false;

/* Invalidations of the configuration (or of everything) taken in. */
static uint64 config_invalidations = 0;

/*
 * Relcache invalidations taken in, per attached table (a reset of all
 * relations counts for every table).
 */
static uint64 table_invalidations[WM_TABLE_COUNT];

static void
config_relcache_callback(Datum arg, Oid relid)
{
	int			t;

	for (t = 0; t < WM_TABLE_COUNT; t++)
		if (relid == InvalidOid || relid == config.table_oid[t])
			table_invalidations[t]++;
	if (relid == InvalidOid || relid == config.config_relid ||
		relid == config.rules_relid)
	{
		config_invalidations++;
		config.valid = false;
		return;
	}
	/* A renamed, swapped or altered application table: re-resolve. */
	for (t = 0; t < WM_TABLE_COUNT; t++)
		if (relid == config.table_oid[t])
		{
			config_invalidations++;
			config.valid = false;
		}
}

/* Oid of an installed extension's schema, or InvalidOid. */
static Oid
extension_schema_oid(const char *extname)
{
	Oid			extoid = get_extension_oid(extname, true);
	Oid			nsp;
	HeapTuple	tup;
	ScanKeyData key;
	Relation	rel;
	SysScanDesc scan;

	if (!OidIsValid(extoid))
		return InvalidOid;

	/* PostgreSQL 15 does not export get_extension_schema(): scan by oid. */
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	nsp = HeapTupleIsValid(tup) ?
		((Form_pg_extension) GETSTRUCT(tup))->extnamespace : InvalidOid;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

static Oid
required_schema(const char *extname)
{
	Oid			nsp = extension_schema_oid(extname);

	if (!OidIsValid(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"%s\" is not installed in this database", extname)));
	return nsp;
}

/* PostGIS's geometry (or geography) type, by name in PostGIS's schema. */
static Oid
postgis_type(Oid postgis_nsp, const char *name)
{
	return GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
						   CStringGetDatum(name), ObjectIdGetDatum(postgis_nsp));
}

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

static bool
type_fits(Oid typid, WmColumnKind kind, Oid geometry, Oid geography)
{
	switch (kind)
	{
		case WM_COLUMN_ANY:
			return true;
		case WM_COLUMN_UUID:
			return typid == UUIDOID;
		case WM_COLUMN_LABEL:
			if (typid == BPCHAROID)
				return true;
			if (get_typtype(typid) == TYPTYPE_ENUM)
				return true;
			/* FALLTHROUGH */
		case WM_COLUMN_TEXT:
			return typid == TEXTOID || typid == VARCHAROID;
		case WM_COLUMN_NUMBER:
			if (typid == NUMERICOID)
				return true;
			/* FALLTHROUGH */
		case WM_COLUMN_INTEGER:
			return typid == INT2OID || typid == INT4OID || typid == INT8OID;
		case WM_COLUMN_BOOL:
			return typid == BOOLOID;
		case WM_COLUMN_DATE:
			return typid == DATEOID;
		case WM_COLUMN_TIMESTAMP:
			return typid == TIMESTAMPTZOID || typid == TIMESTAMPOID;
		case WM_COLUMN_SPATIAL:
			return OidIsValid(typid) && (typid == geometry || typid == geography);
	}
	return false;
}

/*
 * Check the columns of relid for a table role.  Returns NULL when they are
 * all there and of an accepted type, else a message (palloc'd) and, in
 * *sqlstate, 42703 (missing columns) or 42804 (a type wm_perf refuses).
 * *is_geometry tells the spatial column's type.
 */
static char *
check_columns(WmTable table, Oid relid, Oid postgis_nsp, bool *is_geometry,
			  int *sqlstate)
{
	const WmColumnSpec *spec = table_specs[table];
	Oid			geometry = postgis_type(postgis_nsp, "geometry");
	Oid			geography = postgis_type(postgis_nsp, "geography");
	StringInfoData missing;
	int			i;

	*is_geometry = false;
	initStringInfo(&missing);
	for (i = 0; spec[i].name != NULL; i++)
	{
		AttrNumber	attno = get_attnum(relid, spec[i].name);

		if (attno <= 0)
			appendStringInfo(&missing, "%s%s", missing.len > 0 ? ", " : "",
							 spec[i].name);
	}
	if (missing.len > 0)
	{
		*sqlstate = ERRCODE_UNDEFINED_COLUMN;
		return psprintf("table %s lacks columns required by wm_perf: %s",
						qualified_name(relid), missing.data);
	}
	for (i = 0; spec[i].name != NULL; i++)
	{
		Oid			typid = get_atttype(relid, get_attnum(relid, spec[i].name));

		if (!type_fits(typid, spec[i].kind, geometry, geography))
		{
			*sqlstate = ERRCODE_DATATYPE_MISMATCH;
			return psprintf("column \"%s\" of table %s has type %s, but wm_perf reads it as %s",
							spec[i].name, qualified_name(relid),
							format_type_be(typid), kind_names[spec[i].kind]);
		}
		if (spec[i].kind == WM_COLUMN_SPATIAL)
			*is_geometry = typid == geometry;
	}
	return NULL;
}

static const char *const hint_types =
"wm_perf accepts built-in types, enums and PostGIS's geometry and geography (no domains or user-defined types), so that no user-defined cast, operator or check runs in its queries.";

/*
 * The attached tables, with a snapshot taken now: the latest committed
 * state (and this transaction's own earlier commands), not the caller's
 * statement snapshot.
 */
static void
load_config(void)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	StringInfoData sql;
	Oid			ext_nsp;
	Oid			postgis_nsp;
	Snapshot	snap;
	SPIPlanPtr	plan;
	uint64		inval_before = config_invalidations;
	uint64		i;
	int			t;
	int			rc;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(config_relcache_callback, (Datum) 0);
		callback_registered = true;
	}

	ext_nsp = required_schema("wm_perf");
	postgis_nsp = required_schema("postgis");

	/* Reset first: an ERROR below must leave the cache invalid, not stale. */
	config.valid = false;
	cxt = AllocSetContextCreate(TopMemoryContext, "wm_perf configuration",
								ALLOCSET_SMALL_SIZES);
	if (config.cxt != NULL)
		MemoryContextDelete(config.cxt);
	config.cxt = cxt;
	oldcxt = MemoryContextSwitchTo(cxt);
	config.ext_schema = pstrdup(quote_identifier(get_namespace_name(ext_nsp)));
	config.ext_schema_oid = ext_nsp;
	config.postgis_schema = pstrdup(quote_identifier(get_namespace_name(postgis_nsp)));
	MemoryContextSwitchTo(oldcxt);
	for (t = 0; t < WM_TABLE_COUNT; t++)
	{
		config.table_qualname[t] = NULL;
		config.table_problem[t] = NULL;
		config.table_oid[t] = InvalidOid;
		config.table_is_geometry[t] = false;
	}
	config.config_relid = get_relname_relid("wm_perf_config", ext_nsp);
	config.rules_relid = get_relname_relid("wm_cache_rules", ext_nsp);

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT c.role, c.relid::pg_catalog.oid FROM %s.wm_perf_config c",
					 config.ext_schema);

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	plan = SPI_prepare(sql.data, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	snap = RegisterSnapshot(GetLatestSnapshot());
	rc = SPI_execute_snapshot(plan, NULL, NULL, snap, InvalidSnapshot,
							  true, false, 0);
	UnregisterSnapshot(snap);
	wm_spi_check(rc, SPI_OK_SELECT, "reading wm_perf_config");

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *role = SPI_getvalue(tup, desc, 1);
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		char	   *relname;
		char	   *nspname;
		char	   *problem;
		int			sqlstate;

		for (t = 0; t < WM_TABLE_COUNT; t++)
			if (strcmp(role, table_roles[t]) == 0)
				break;
		if (t == WM_TABLE_COUNT)
			continue;

		/* A dropped table leaves a dangling oid behind: not attached. */
		relname = get_rel_name(relid);
		nspname = relname ? get_namespace_name(get_rel_namespace(relid)) : NULL;
		if (relname == NULL || nspname == NULL)
			continue;

		problem = check_columns((WmTable) t, relid, postgis_nsp,
								&config.table_is_geometry[t], &sqlstate);
		config.table_oid[t] = relid;
		config.table_qualname[t] =
			MemoryContextStrdup(cxt, quote_qualified_identifier(nspname, relname));
		if (problem != NULL)
			config.table_problem[t] = MemoryContextStrdup(cxt, problem);
	}

	SPI_finish();
	pfree(sql.data);

	config.generation++;
	/* An invalidation taken in meanwhile: read again at the next entry. */
	config.valid = config_invalidations == inval_before;
}

/*
 * Entry points call this once, first: it reloads the configuration if an
 * invalidation made it stale.  Nothing else reloads it.
 */
void
wm_config_refresh(void)
{
	if (!config.valid)
		load_config();
}

static inline void
ensure_loaded(void)
{
	if (config.generation == 0)
		load_config();
}

/* The attached table's oid, or InvalidOid if none is attached. */
Oid
wm_table_oid(WmTable table)
{
	ensure_loaded();
	return config.table_oid[table];
}

/*
 * The attached table, schema-qualified and quoted; ERROR if none, or if its
 * columns are not what wm_perf reads.
 */
const char *
wm_table_qualname(WmTable table)
{
	ensure_loaded();
	if (config.table_qualname[table] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("wm_perf is not attached to a \"%s\" table", table_roles[table]),
				 errhint("Call %s.wm_perf_attach(%s => 'schema.table').",
						 config.ext_schema, table_roles[table])));
	if (config.table_problem[table] != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s", config.table_problem[table]),
				 errdetail("The %s table was altered after it was attached.", table_roles[table]),
				 errhint("%s", hint_types)));
	return config.table_qualname[table];
}

/* Is the table's spatial column geometry (true) or geography (false)? */
bool
wm_table_is_geometry(WmTable table)
{
	(void) wm_table_qualname(table);
	return config.table_is_geometry[table];
}

const char *
wm_table_role_name(WmTable table)
{
	return table_roles[table];
}

/* The table of a role name, or -1. */
int
wm_table_of_role(const char *role)
{
	int			t;

	for (t = 0; t < WM_TABLE_COUNT; t++)
		if (strcmp(role, table_roles[t]) == 0)
			return t;
	return -1;
}

/* The names of the columns wm_perf reads from a table, NULL-terminated. */
void
wm_table_columns(WmTable table, const char **names, int size)
{
	const WmColumnSpec *spec = table_specs[table];
	int			i;

	for (i = 0; spec[i].name != NULL && i < size - 1; i++)
		names[i] = spec[i].name;
	names[i] = NULL;
}

/* Changes whenever the configuration is reloaded: rebuild kept plans. */
uint64
wm_config_generation(void)
{
	ensure_loaded();
	return config.generation;
}

/*
 * How many relcache invalidations of the attached table (or of every
 * relation) this backend has taken in.  A TRUNCATE or table rewrite of the
 * table sends one at commit; one of a partition or inheritance child does
 * not.  Counts once the configuration was loaded.
 */
uint64
wm_table_invalidations(WmTable table)
{
	return table_invalidations[table];
}

const char *
wm_postgis_schema(void)
{
	ensure_loaded();
	return config.postgis_schema;
}

/* Does the attached table of this role have a column wm_perf refuses? */
bool
wm_table_has_problem(WmTable table)
{
	ensure_loaded();
	return config.table_problem[table] != NULL;
}

/* The extension's schema, quoted for SQL. */
const char *
wm_extension_schema(void)
{
	ensure_loaded();
	return config.ext_schema;
}

Oid
wm_extension_schema_oid(void)
{
	ensure_loaded();
	return config.ext_schema_oid;
}

/*
 * Does relid descend from ancestor, as a partition or an inheritance child
 * (at any depth)?  Walks pg_inherits upwards.
 */
bool
wm_relation_descends_from(Oid relid, Oid ancestor)
{
	List	   *todo = list_make1_oid(relid);
	List	   *seen = NIL;
	bool		found = false;
	Relation	inh = table_open(InheritsRelationId, AccessShareLock);

	while (todo != NIL && !found)
	{
		Oid			child = linitial_oid(todo);
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;

		todo = list_delete_first(todo);
		if (list_member_oid(seen, child))
			continue;
		seen = lappend_oid(seen, child);
		ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(child));
		scan = systable_beginscan(inh, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
		while ((tup = systable_getnext(scan)) != NULL)
		{
			Oid			parent = ((Form_pg_inherits) GETSTRUCT(tup))->inhparent;

			if (parent == ancestor)
				found = true;
			todo = lappend_oid(todo, parent);
		}
		systable_endscan(scan);
	}
	table_close(inh, AccessShareLock);
	list_free(todo);
	list_free(seen);
	return found;
}

/*
 * _wm_check_table(role text, tbl regclass) RETURNS boolean: raises the
 * error wm_perf_attach() reports for a table whose columns wm_perf cannot
 * read safely; returns whether its spatial column is geometry (false for
 * geography, and for tables without one).
 */
PG_FUNCTION_INFO_V1(wm_check_table);
Datum
wm_check_table(PG_FUNCTION_ARGS)
{
	char	   *role = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			relid = PG_GETARG_OID(1);
	int			t = wm_table_of_role(role);
	bool		is_geometry;
	int			sqlstate;
	char	   *problem;

	if (t < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a table role", role)));
	problem = check_columns((WmTable) t, relid, required_schema("postgis"),
							&is_geometry, &sqlstate);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("%s", problem),
				 sqlstate == ERRCODE_UNDEFINED_COLUMN ?
				 errhint("wm_perf attaches to the %s table of the waste-management schema.", role) :
				 errhint("%s", hint_types)));
	PG_RETURN_BOOL(is_geometry);
}

/* Turn an unexpected SPI result into an internal error naming the step. */
void
wm_spi_check(int rc, int expected, const char *what)
{
	if (rc != expected)
		elog(ERROR, "SPI failed while %s: %s", what, SPI_result_code_string(rc));
}
