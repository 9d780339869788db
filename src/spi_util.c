/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  Where the application tables are, schema resolution and SPI helpers.
 *
 * The tables wm_perf is attached to are read from @extschema@.wm_perf_config
 * once per backend and kept until a relcache invalidation of that table
 * (sent at commit by its statement trigger, see trigger.c) or of all
 * relations.  Every query text built from them is schema-qualified with
 * quoted names, so the caller's search_path never matters.
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
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "wm_perf.h"

static const char *const table_roles[WM_TABLE_COUNT] = {
	"routes", "bins", "customers", "service_events", "organizations"
};

typedef struct WmConfig
{
	bool		valid;
	uint64		generation;		/* bumped on every reload */
	Oid			config_relid;
	Oid			rules_relid;
	char	   *ext_schema;		/* quoted */
	char	   *postgis_schema; /* quoted */
	Oid			table_oid[WM_TABLE_COUNT];
	char	   *table_qualname[WM_TABLE_COUNT];
	bool		table_is_geometry[WM_TABLE_COUNT];	/* spatial column type */
} WmConfig;

static WmConfig config;
static bool callback_registered = false;

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
		config.valid = false;
		return;
	}
	/* A renamed, swapped or altered application table: re-resolve. */
	for (t = 0; config.valid && t < WM_TABLE_COUNT; t++)
		if (relid == config.table_oid[t])
			config.valid = false;
}

/* Quoted schema of an installed extension, or NULL. */
static char *
extension_schema_name(const char *extname, Oid *nspoid)
{
	Oid			extoid = get_extension_oid(extname, true);
	Oid			nsp;
	HeapTuple	tup;
	ScanKeyData key;
	Relation	rel;
	SysScanDesc scan;

	if (!OidIsValid(extoid))
		return NULL;

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

	if (!OidIsValid(nsp))
		return NULL;
	if (nspoid)
		*nspoid = nsp;
	return pstrdup(quote_identifier(get_namespace_name(nsp)));
}

static void
load_config(void)
{
	MemoryContext oldcxt;
	StringInfoData sql;
	char	   *ext_schema;
	char	   *postgis_schema;
	Oid			ext_schema_oid = InvalidOid;
	uint64		i;
	int			t;
	int			rc;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(config_relcache_callback, (Datum) 0);
		callback_registered = true;
	}

	ext_schema = extension_schema_name("wm_perf", &ext_schema_oid);
	if (ext_schema == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"wm_perf\" is not installed in this database")));
	postgis_schema = extension_schema_name("postgis", NULL);
	if (postgis_schema == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"postgis\" is not installed in this database")));

	/* Reset first: an ERROR below must leave the cache invalid, not stale. */
	config.valid = false;
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	if (config.ext_schema)
		pfree(config.ext_schema);
	if (config.postgis_schema)
		pfree(config.postgis_schema);
	config.ext_schema = pstrdup(ext_schema);
	config.postgis_schema = pstrdup(postgis_schema);
	for (t = 0; t < WM_TABLE_COUNT; t++)
	{
		if (config.table_qualname[t])
			pfree(config.table_qualname[t]);
		config.table_qualname[t] = NULL;
		config.table_oid[t] = InvalidOid;
		config.table_is_geometry[t] = false;
	}
	MemoryContextSwitchTo(oldcxt);

	config.config_relid = get_relname_relid("wm_perf_config", ext_schema_oid);
	config.rules_relid = get_relname_relid("wm_cache_rules", ext_schema_oid);

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT c.role, c.relid::pg_catalog.oid,"
					 " t.typname OPERATOR(pg_catalog.=) 'geometry'"
					 " FROM %s.wm_perf_config c"
					 " LEFT JOIN pg_catalog.pg_attribute a"
					 "  ON a.attrelid OPERATOR(pg_catalog.=) c.relid"
					 "  AND a.attname OPERATOR(pg_catalog.=) CASE c.role"
					 "   WHEN 'routes' THEN 'route_geometry' ELSE 'location' END"
					 "  AND NOT a.attisdropped"
					 " LEFT JOIN pg_catalog.pg_type t"
					 "  ON t.oid OPERATOR(pg_catalog.=) a.atttypid",
					 ext_schema);

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute(sql.data, true, 0);
	wm_spi_check(rc, SPI_OK_SELECT, "reading wm_perf_config");

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *role = SPI_getvalue(tup, desc, 1);
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		Datum		isgeom = SPI_getbinval(tup, desc, 3, &isnull);
		char	   *relname;
		char	   *nspname;

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

		config.table_oid[t] = relid;
		config.table_is_geometry[t] = !isnull && DatumGetBool(isgeom);
		config.table_qualname[t] =
			MemoryContextStrdup(TopMemoryContext,
								quote_qualified_identifier(nspname, relname));
	}

	SPI_finish();
	pfree(sql.data);

	config.generation++;
	config.valid = true;
}

static inline void
ensure_config(void)
{
	if (!config.valid)
		load_config();
}

/* The attached table's oid, or InvalidOid if none is attached. */
Oid
wm_table_oid(WmTable table)
{
	ensure_config();
	return config.table_oid[table];
}

/* The attached table, schema-qualified and quoted; ERROR if none. */
const char *
wm_table_qualname(WmTable table)
{
	ensure_config();
	if (config.table_qualname[table] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("wm_perf is not attached to a \"%s\" table", table_roles[table]),
				 errhint("Call %s.wm_perf_attach(%s => 'schema.table').",
						 config.ext_schema, table_roles[table])));
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

/* Changes whenever the configuration is reloaded: rebuild kept plans. */
uint64
wm_config_generation(void)
{
	ensure_config();
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
	ensure_config();
	return config.postgis_schema;
}

const char *
wm_extension_schema(void)
{
	ensure_config();
	return config.ext_schema;
}



/* Turn an unexpected SPI result into an internal error naming the step. */
void
wm_spi_check(int rc, int expected, const char *what)
{
	if (rc != expected)
		elog(ERROR, "SPI failed while %s: %s", what, SPI_result_code_string(rc));
}
