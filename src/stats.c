/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  wm_route_statistics() and wm_bin_statistics(): cache or compute.
 *
 * Read path (the cache protocol of docs/architecture.md):
 *	1. decide whether the cache may be used at all: Redis configured,
 *	   wm_perf.cache_enabled, READ COMMITTED (a REPEATABLE READ or
 *	   SERIALIZABLE snapshot predates the generation read), no change of the
 *	   scope pending in this transaction (read-your-own-writes), no
 *	   undelivered invalidation of the scope, table-level SELECT on every
 *	   table read, and no row-level security on them;
 *	2. one round trip reads the epoch and the scope's generation and GETs
 *	   the value stored under them (the server's run id is part of the key);
 *	3. on a miss, compute through SPI with a fresh snapshot taken after
 *	   step 2 (bin statistics: one for both queries) and SET the value
 *	   under the version read in step 2.  A value computed from a snapshot
 *	   older than a commit can therefore only be stored under a generation
 *	   that commit's INCR has already superseded.
 * Keys end with the calling role's oid: values never cross roles.  Cached
 * values carry a CRC so that a corrupt or foreign value is a miss.
 *
 * With shared_preload_libraries, a backend also keeps copies of the values
 * it fetched or computed, and serves them without a Redis round trip while
 * no commit has changed their scope (see WmLocalEntry).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "port/pg_crc32c.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/sinval.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "redis.h"
#include "wm_perf.h"

/* Stored values look like "wm1:<8 hex digits of CRC-32C>:<json>". */
#define WM_VALUE_MAGIC "wm1:"
#define WM_VALUE_HEADER_LEN (4 + 8 + 1)

/* Kept plans, rebuilt when the configuration changes. */
typedef struct WmPlan
{
	SPIPlanPtr	plan;
	uint64		generation;
} WmPlan;

static WmPlan route_plan_all;
static WmPlan route_plan_territory;
static WmPlan bin_plan_all;
static WmPlan bin_plan_customer;
static WmPlan event_plan_all;
static WmPlan event_plan_customer;

/*
 * The plan of sql, kept while the configuration generation is gen.  gen is
 * read before sql was built: preparing an earlier plan of the same call
 * takes locks and may take in a configuration change, and sql still names
 * the tables of gen.
 */
static SPIPlanPtr
kept_plan(WmPlan *p, uint64 gen, const char *sql, int nargs, Oid *argtypes)
{
	if (p->plan != NULL && p->generation == gen)
		return p->plan;
	if (p->plan != NULL)
	{
		SPI_freeplan(p->plan);
		p->plan = NULL;
	}
	/*
	 * SPI_prepare would plan without parallel workers; the same query sent
	 * by a client gets them, and a miss must cost no more than that.
	 */
	p->plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_PARALLEL_OK);
	if (p->plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(p->plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	p->generation = gen;
	return p->plan;
}

/* jsonb building helpers */
static void
push_key(JsonbParseState **st, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(st, WJB_KEY, &v);
}

static void
push_numeric(JsonbParseState **st, const char *key, Datum num, bool isnull)
{
	JsonbValue	v;

	push_key(st, key);
	if (isnull)
		v.type = jbvNull;
	else
	{
		v.type = jbvNumeric;
		v.val.numeric = DatumGetNumeric(num);
	}
	pushJsonbValue(st, WJB_VALUE, &v);
}

/* A numeric column of an SPI row (NULL as JSON null). */
static void
push_column(JsonbParseState **st, const char *key, HeapTuple tup, TupleDesc desc,
			int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	push_numeric(st, key, d, isnull);
}

static void
push_int(JsonbParseState **st, const char *key, int64 n)
{
	push_numeric(st, key, DirectFunctionCall1(int8_numeric, Int64GetDatum(n)), false);
}

static void
push_string(JsonbParseState **st, const char *key, const char *s)
{
	JsonbValue	v;

	push_key(st, key);
	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(st, WJB_VALUE, &v);
}

static int64
get_int8(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* ISO 8601 UTC time of the computation, as the application formats it. */
static char *
computed_at(void)
{
	TimestampTz now = GetCurrentTimestamp();
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(now, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "timestamp out of range");
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
					tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (fsec / 1000));
}

/*
 * A breakdown object {value: n} from the grouping-set rows whose GROUPING()
 * mask equals 'mask'; 'fixed' lists keys that are always present (0 if
 * absent).
 */
static void
push_breakdown(JsonbParseState **st, SPITupleTable *tt, const char *key,
			   int mask, int valcol, const char *const *fixed)
{
	int			i;
	uint64		r;

	push_key(st, key);
	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; fixed && fixed[i]; i++)
	{
		int64		n = 0;

		for (r = 0; r < tt->numvals; r++)
		{
			HeapTuple	tup = tt->vals[r];
			char	   *v;

			if (get_int8(tup, tt->tupdesc, 1) != mask)
				continue;
			v = SPI_getvalue(tup, tt->tupdesc, valcol);
			if (v && strcmp(v, fixed[i]) == 0)
				n = get_int8(tup, tt->tupdesc, 5);
		}
		push_int(st, fixed[i], n);
	}
	if (fixed == NULL)
	{
		for (r = 0; r < tt->numvals; r++)
		{
			HeapTuple	tup = tt->vals[r];
			char	   *v;

			if (get_int8(tup, tt->tupdesc, 1) != mask)
				continue;
			v = SPI_getvalue(tup, tt->tupdesc, valcol);
			if (v == NULL)
				continue;		/* NULL values are not counted */
			push_int(st, v, get_int8(tup, tt->tupdesc, 5));
		}
	}
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

/* Flatten the result into the caller's memory context, before SPI_finish. */
static Jsonb *
to_caller_context(JsonbValue *res, MemoryContext caller)
{
	MemoryContext spicxt = MemoryContextSwitchTo(caller);
	Jsonb	   *out = JsonbValueToJsonb(res);

	MemoryContextSwitchTo(spicxt);
	return out;
}

static const char *const week_days[] = {
	"monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
	"sunday", NULL
};

/*
 * Route statistics.  Rows: GROUPING mask, status, route_type, service_day,
 * count, ai_optimized, avg score, avg distance, avg duration.  Masks: 3 =
 * by status, 5 = by type, 6 = by day, 7 = total.
 */
static Jsonb *
compute_route_statistics(text *territory)
{
	StringInfoData sql;
	SPIPlanPtr	plan;
	Datum		args[1];
	Oid			argtypes[1] = {TEXTOID};
	JsonbParseState *st = NULL;
	JsonbValue *res;
	MemoryContext caller = CurrentMemoryContext;
	Jsonb	   *out;
	int			rc;
	uint64		r;
	int			total_row = -1;
	uint64		gen = wm_config_generation();

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT GROUPING(r.status, r.route_type, r.service_day)::pg_catalog.int8,"
					 " r.status::pg_catalog.text, r.route_type::pg_catalog.text,"
					 " r.service_day::pg_catalog.text, pg_catalog.count(*),"
					 " pg_catalog.count(*) FILTER (WHERE r.ai_optimized),"
					 " pg_catalog.round(pg_catalog.avg(r.optimization_score), 2),"
					 " pg_catalog.round(pg_catalog.avg(r.estimated_distance_miles), 2),"
					 " pg_catalog.round(pg_catalog.avg(r.estimated_duration_minutes), 2)"
					 " FROM %s r WHERE r.deleted_at IS NULL%s"
					 " GROUP BY GROUPING SETS ((r.status), (r.route_type), (r.service_day), ())",
					 wm_table_qualname(WM_TABLE_ROUTES),
					 territory ? " AND r.territory::pg_catalog.text OPERATOR(pg_catalog.=) $1" : "");

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	if (territory)
	{
		plan = kept_plan(&route_plan_territory, gen, sql.data, 1, argtypes);
		args[0] = PointerGetDatum(territory);
	}
	else
		plan = kept_plan(&route_plan_all, gen, sql.data, 0, NULL);
	/* read_only = false: a fresh snapshot, taken after the cache lookup */
	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	wm_spi_check(rc, SPI_OK_SELECT, "computing route statistics");

	for (r = 0; r < SPI_processed; r++)
		if (get_int8(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1) == 7)
			total_row = (int) r;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_int(&st, "total", total_row >= 0 ?
			 get_int8(SPI_tuptable->vals[total_row], SPI_tuptable->tupdesc, 5) : 0);
	push_breakdown(&st, SPI_tuptable, "byStatus", 3, 2, NULL);
	push_breakdown(&st, SPI_tuptable, "byType", 5, 3, NULL);
	push_breakdown(&st, SPI_tuptable, "byServiceDay", 6, 4, week_days);
	push_key(&st, "optimization");
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	if (total_row >= 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[total_row];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		push_int(&st, "aiOptimized", get_int8(tup, desc, 6));
		push_column(&st, "avgOptimizationScore", tup, desc, 7);
		push_column(&st, "avgDistanceMiles", tup, desc, 8);
		push_column(&st, "avgDurationMinutes", tup, desc, 9);
	}
	else
	{
		push_int(&st, "aiOptimized", 0);
		push_numeric(&st, "avgOptimizationScore", (Datum) 0, true);
		push_numeric(&st, "avgDistanceMiles", (Datum) 0, true);
		push_numeric(&st, "avgDurationMinutes", (Datum) 0, true);
	}
	pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	push_string(&st, "computedAt", computed_at());
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);

	out = to_caller_context(res, caller);
	SPI_finish();
	return out;
}

/*
 * Invalidations that can mean a TRUNCATE or table rewrite of a table the
 * bin statistics read.  A table with partitions or inheritance children has
 * them invalidated, not itself: then every invalidation message counts.
 */
static uint64
bin_tables_invalidations(bool any_message)
{
	if (any_message)
		return SharedInvalidMessageCounter;
	return wm_table_invalidations(WM_TABLE_BINS) +
		wm_table_invalidations(WM_TABLE_CUSTOMERS) +
		wm_table_invalidations(WM_TABLE_SERVICE_EVENTS);
}

/*
 * Run the bins and service-events queries of bin statistics, both under one
 * snapshot taken after the cache lookup.  SPI_execute_plan would take one
 * per query: a transaction committing between the two would be in the
 * service events and not in the bins.  read_only = false still advances the
 * command ID, so the caller's own earlier writes are seen.
 *
 * The snapshot is taken before the queries lock their tables.  A TRUNCATE
 * or a table rewrite (ALTER TABLE ... TYPE) that commits while a query waits
 * for its lock is not MVCC-safe: the older snapshot would read the new
 * relation as empty, and a rewrite fires no wm_perf trigger.  Its commit
 * sends a relcache invalidation of the rewritten relation, which this
 * backend takes in when it gets the lock; so if one arrived since before the
 * snapshot, the queries run again, with a new snapshot taken while the locks
 * are held (at most three runs; a partition attached meanwhile is locked
 * after the second snapshot).  Without partitions or inheritance children,
 * only invalidations of the three tables count: a temporary table or an
 * ANALYZE elsewhere does not make a computation of seconds run twice.
 */
static void
run_bin_queries(SPIPlanPtr plan, SPIPlanPtr eplan, Datum *args,
				SPITupleTable **bt, SPITupleTable **et)
{
	bool		any_message = has_subclass(wm_table_oid(WM_TABLE_BINS)) ||
		has_subclass(wm_table_oid(WM_TABLE_CUSTOMERS)) ||
		has_subclass(wm_table_oid(WM_TABLE_SERVICE_EVENTS));
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		uint64		inval_count = bin_tables_invalidations(any_message);
		Snapshot	snap = RegisterSnapshot(GetTransactionSnapshot());
		int			rc;

		rc = SPI_execute_snapshot(plan, args, NULL, snap, InvalidSnapshot,
								  false, true, 0);
		wm_spi_check(rc, SPI_OK_SELECT, "computing bin statistics");
		*bt = SPI_tuptable;
		rc = SPI_execute_snapshot(eplan, args, NULL, snap, InvalidSnapshot,
								  false, true, 0);
		wm_spi_check(rc, SPI_OK_SELECT, "computing service event statistics");
		*et = SPI_tuptable;
		UnregisterSnapshot(snap);
		if (attempt == 3 || inval_count == bin_tables_invalidations(any_message))
			return;
		SPI_freetuptable(*bt);
		SPI_freetuptable(*et);
	}
}

/*
 * Bin statistics.  Bins rows: GROUPING mask, status, bin_type, material,
 * count, gps, sensor, smart, avg fill, needing service, avg capacity, active.
 * Masks: 3 = by status, 5 = by type, 6 = by material, 7 = total.  Events
 * rows: event_type, count over the last 30 days (since midnight 30 days
 * ago in the session's time zone).
 */
static Jsonb *
compute_bin_statistics(pg_uuid_t *customer)
{
	StringInfoData sql;
	StringInfoData esql;
	SPIPlanPtr	plan;
	SPIPlanPtr	eplan;
	Datum		args[1];
	Oid			argtypes[1] = {UUIDOID};
	JsonbParseState *st = NULL;
	JsonbValue *res;
	MemoryContext caller = CurrentMemoryContext;
	Jsonb	   *out;
	int			rc;
	uint64		r;
	int			total_row = -1;
	int64		active = 0;
	SPITupleTable *bt;
	SPITupleTable *et;
	const char *customer_filter =
		customer ? " AND b.customer_id OPERATOR(pg_catalog.=) $1" : "";
	const char *event_filter =
		customer ? " AND e.customer_id OPERATOR(pg_catalog.=) $1" : "";
	uint64		gen = wm_config_generation();

	/*
	 * Columns may be enums or text.  Compare b.status with an untyped
	 * literal, which takes the column's type: a cast to text would call the
	 * enum's output function twice per row (a quarter of the query's time at
	 * a million bins).  Group by the columns themselves; only the grouped
	 * values are cast.
	 */
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT GROUPING(b.status, b.bin_type, b.material)::pg_catalog.int8,"
					 " b.status::pg_catalog.text, b.bin_type::pg_catalog.text,"
					 " b.material::pg_catalog.text, pg_catalog.count(*),"
					 " pg_catalog.count(*) FILTER (WHERE b.gps_enabled),"
					 " pg_catalog.count(*) FILTER (WHERE b.sensor_enabled),"
					 " pg_catalog.count(*) FILTER (WHERE b.gps_enabled OR b.sensor_enabled),"
					 " pg_catalog.round(pg_catalog.avg(b.fill_level_percent), 2),"
					 " pg_catalog.count(*) FILTER (WHERE b.status OPERATOR(pg_catalog.=) 'active'"
					 "  AND (b.fill_level_percent OPERATOR(pg_catalog.>=) 80"
					 "   OR b.next_service_date OPERATOR(pg_catalog.<) CURRENT_DATE)),"
					 " pg_catalog.round(pg_catalog.avg(b.capacity_cubic_yards), 2)"
					 " FROM %s b JOIN %s c ON c.id OPERATOR(pg_catalog.=) b.customer_id"
					 " WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL%s"
					 " GROUP BY GROUPING SETS ((b.status), (b.bin_type), (b.material), ())",
					 wm_table_qualname(WM_TABLE_BINS),
					 wm_table_qualname(WM_TABLE_CUSTOMERS),
					 customer_filter);
	initStringInfo(&esql);
	appendStringInfo(&esql,
					 "SELECT e.event_type::pg_catalog.text, pg_catalog.count(*)"
					 " FROM %s e JOIN %s c ON c.id OPERATOR(pg_catalog.=) e.customer_id"
					 " WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL"
					 " AND e.created_at OPERATOR(pg_catalog.>=) (CURRENT_DATE OPERATOR(pg_catalog.-) 30)%s"
					 " GROUP BY 1 ORDER BY 1",
					 wm_table_qualname(WM_TABLE_SERVICE_EVENTS),
					 wm_table_qualname(WM_TABLE_CUSTOMERS),
					 event_filter);

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	if (customer)
	{
		plan = kept_plan(&bin_plan_customer, gen, sql.data, 1, argtypes);
		eplan = kept_plan(&event_plan_customer, gen, esql.data, 1, argtypes);
		args[0] = UUIDPGetDatum(customer);
	}
	else
	{
		plan = kept_plan(&bin_plan_all, gen, sql.data, 0, NULL);
		eplan = kept_plan(&event_plan_all, gen, esql.data, 0, NULL);
	}

	run_bin_queries(plan, eplan, args, &bt, &et);

	/*
	 * The grand total row, and "active" from the byStatus row of 'active'
	 * (no aggregate of its own: one aggregate less per row and grouping set).
	 */
	for (r = 0; r < bt->numvals; r++)
	{
		HeapTuple	tup = bt->vals[r];
		int64		grouping = get_int8(tup, bt->tupdesc, 1);

		if (grouping == 7)
			total_row = (int) r;
		else if (grouping == 3)
		{
			char	   *status = SPI_getvalue(tup, bt->tupdesc, 2);

			if (status != NULL && strcmp(status, "active") == 0)
				active = get_int8(tup, bt->tupdesc, 5);
		}
	}

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	if (total_row >= 0)
	{
		HeapTuple	tup = bt->vals[total_row];
		TupleDesc	desc = bt->tupdesc;

		push_int(&st, "total", get_int8(tup, desc, 5));
		push_int(&st, "active", active);
		push_key(&st, "smartBins");
		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		push_int(&st, "gpsEnabled", get_int8(tup, desc, 6));
		push_int(&st, "sensorEnabled", get_int8(tup, desc, 7));
		push_int(&st, "any", get_int8(tup, desc, 8));
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
		push_column(&st, "avgFillLevel", tup, desc, 9);
		push_int(&st, "needingService", get_int8(tup, desc, 10));
		push_column(&st, "avgCapacityCubicYards", tup, desc, 11);
	}
	else
	{
		push_int(&st, "total", 0);
		push_int(&st, "active", 0);
		push_key(&st, "smartBins");
		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		push_int(&st, "gpsEnabled", 0);
		push_int(&st, "sensorEnabled", 0);
		push_int(&st, "any", 0);
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
		push_numeric(&st, "avgFillLevel", (Datum) 0, true);
		push_int(&st, "needingService", 0);
		push_numeric(&st, "avgCapacityCubicYards", (Datum) 0, true);
	}
	push_breakdown(&st, bt, "byStatus", 3, 2, NULL);
	push_breakdown(&st, bt, "byType", 5, 3, NULL);
	push_breakdown(&st, bt, "byMaterial", 6, 4, NULL);

	push_key(&st, "serviceEventsLast30Days");
	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	{
		int64		total = 0;

		for (r = 0; r < et->numvals; r++)
			total += get_int8(et->vals[r], et->tupdesc, 2);
		push_int(&st, "total", total);
		push_key(&st, "byType");
		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		for (r = 0; r < et->numvals; r++)
		{
			char	   *v = SPI_getvalue(et->vals[r], et->tupdesc, 1);

			if (v != NULL)
				push_int(&st, v, get_int8(et->vals[r], et->tupdesc, 2));
		}
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	push_string(&st, "computedAt", computed_at());
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);

	out = to_caller_context(res, caller);
	SPI_finish();
	return out;
}

/*
 * With shared_preload_libraries, a commit only marks its scopes dirty and
 * wakes the worker.  A reader that finds its scope dirty delivers the
 * invalidation itself (one round trip, before its lookup) rather than
 * bypassing the cache until the worker gets there.  False: bypass.
 */
static bool
deliver_pending_scope(WmScope scope)
{
	uint64		seq;
	char		key[WM_MAX_KEY_LEN];
	char	   *keyp = key;
	long		unlinked;
	uint64		seen[WM_SCOPE_COUNT];

	switch (wm_shmem_scope_state(MyDatabaseId, scope, &seq))
	{
		case WM_DIRTY_NONE:
			return true;
		case WM_DIRTY_ALL:
			return false;
		case WM_DIRTY_SCOPE:
			break;
	}
	wm_key_generation(key, sizeof(key), MyDatabaseId, scope);
	wm_shmem_stores_seen(MyDatabaseId, seen);
	if (wm_redis_deliver(1, &keyp, 0, NULL, &unlinked) != WM_REDIS_OK)
	{
		wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_FAILED, 1);
		return false;
	}
	wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_DELIVERED, 1);
	wm_shmem_stores_covered(MyDatabaseId, 1 << scope, seen);
	wm_shmem_clear_scope(MyDatabaseId, scope, seq);
	return true;
}

/*
 * May this call use the cache?  Returns false (bypass: compute, do not
 * store) for every case in which a cached value could be wrong for this
 * caller or a computed one wrong for others.
 */
static bool
cache_usable(WmScope scope, const WmTable *tables, int ntables)
{
	int			i;

	if (!wm_guc_cache_enabled || !wm_redis_configured())
		return false;
	if (IsolationUsesXactSnapshot())
		return false;

	/*
	 * A hot standby replays commits whose invalidation may still be pending
	 * in the primary's shared memory: it never uses the cache.
	 */
	if (RecoveryInProgress())
		return false;
	if (wm_xact_scope_pending(scope))
		return false;
	for (i = 0; i < ntables; i++)
	{
		Oid			relid = wm_table_oid(tables[i]);

		if (!OidIsValid(relid))
			return false;
		/* Without table-level SELECT, let the query decide (42501). */
		if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
			return false;
		/* Policies may depend on anything: never cache under RLS. */
		if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
			return false;
	}
	if (!deliver_pending_scope(scope))
		return false;
	if (wm_xact_scope_undelivered(scope))
		return false;
	return true;
}

static pg_crc32c
value_crc(const char *json, size_t len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, json, len);
	FIN_CRC32C(crc);
	return crc;
}

/*
 * What jsonb_in could still reject in JSON that parses: numbers out of
 * numeric's range and \u escapes it does not accept.  None occurs in a
 * value wm_perf wrote.
 */
/* wm_perf's values nest three levels deep. */
#define WM_JSON_MAX_DEPTH 8

typedef struct WmJsonCheck
{
	bool		bad;
	int			depth;
	bool		top_is_object;
} WmJsonCheck;

static void
check_scalar(void *state, char *token, JsonTokenType tokentype)
{
	WmJsonCheck *c = (WmJsonCheck *) state;

	if (tokentype == JSON_TOKEN_NUMBER &&
		(strlen(token) > 40 || strpbrk(token, "eE") != NULL))
		c->bad = true;
	if (c->depth == 0)
		c->bad = true;			/* a bare scalar is not a statistic */
}

static void
check_object_start(void *state)
{
	WmJsonCheck *c = (WmJsonCheck *) state;

	if (c->depth++ == 0)
		c->top_is_object = true;
	if (c->depth > WM_JSON_MAX_DEPTH)
		c->bad = true;
}

static void
check_object_end(void *state)
{
	((WmJsonCheck *) state)->depth--;
}

static void
check_array_start(void *state)
{
	WmJsonCheck *c = (WmJsonCheck *) state;

	if (c->depth++ == 0)
		c->bad = true;
}

/*
 * The parser recurses per nesting level and would raise an ERROR on a deep
 * enough value: measure the depth first (brackets outside strings).
 */
static bool
nesting_is_shallow(const char *json, size_t len)
{
	int			depth = 0;
	bool		in_string = false;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		char		ch = json[i];

		if (in_string)
		{
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
		}
		else if (ch == '"')
			in_string = true;
		else if (ch == '{' || ch == '[')
		{
			if (++depth > WM_JSON_MAX_DEPTH)
				return false;
		}
		else if (ch == '}' || ch == ']')
			depth--;
	}
	return true;
}

/*
 * Is this text something jsonb_in accepts without error, and an object?
 * A cached value is parsed only after this says yes: a value that passed
 * the CRC check but is still not ours must be a miss, never an ERROR.
 */
static bool
json_is_safe_object(const char *json, size_t len)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	WmJsonCheck check = {false, 0, false};

	if (memchr(json, '\\', len) != NULL && strstr(json, "\\u") != NULL)
		return false;
	if (!nesting_is_shallow(json, len))
		return false;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &check;
	sem.scalar = check_scalar;
	sem.object_start = check_object_start;
	sem.object_end = check_object_end;
	sem.array_start = check_array_start;
	sem.array_end = check_object_end;
	lex = makeJsonLexContextCstringLen((char *) json, (int) len,
									   GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
		return false;
	return !check.bad && check.top_is_object;
}

/* A cached value, or NULL if it is not one of ours, intact. */
static Jsonb *
decode_value(const char *value, size_t len)
{
	char		hex[9];
	const char *json;
	size_t		jlen;

	if (len < WM_VALUE_HEADER_LEN + 2 ||
		strncmp(value, WM_VALUE_MAGIC, 4) != 0 ||
		value[WM_VALUE_HEADER_LEN - 1] != ':')
		return NULL;
	json = value + WM_VALUE_HEADER_LEN;
	jlen = len - WM_VALUE_HEADER_LEN;
	snprintf(hex, sizeof(hex), "%08x", value_crc(json, jlen));
	if (memcmp(hex, value + 4, 8) != 0)
		return NULL;
	if (!json_is_safe_object(json, jlen))
		return NULL;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

static char *
encode_value(Jsonb *jb, size_t *len)
{
	char	   *json = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	size_t		jlen = strlen(json);
	char	   *out = psprintf(WM_VALUE_MAGIC "%08x:%s", value_crc(json, jlen), json);

	*len = WM_VALUE_HEADER_LEN + jlen;
	return out;
}

/*
 * This backend's copies of cached values (with shared_preload_libraries).
 * A copy is tagged with the scope's local generation (shmem.c) read before
 * the dirty check and before any snapshot of the call that produced it, and
 * is used only while the generation is unchanged: every commit that changes
 * the scope increments it, after the commit is visible and before COMMIT
 * returns, so a copy can never predate a commit that has returned (the same
 * argument as for the Redis generation).  Anything that demands a new
 * Redis epoch also advances every slot (shmem.c).  wm_perf.local_cache_size
 * bounds the memory allocated for the copies: when a new copy does not
 * fit, all copies are dropped; lowering the setting frees them at the next
 * call.  Copies also expire after wm_perf.cache_ttl.
 */
typedef struct WmLocalEntry
{
	char		key[WM_MAX_KEY_LEN];	/* hash key: must be first */
	uint64		generation;
	TimestampTz stored_at;
	Jsonb	   *value;			/* in local_context */
} WmLocalEntry;

static MemoryContext local_context = NULL;
static HTAB *local_copies = NULL;

/* Drop every copy; with 'keep' false also the table (the setting is 0). */
static void
local_reset(bool keep)
{
	HASHCTL		ctl;

	/* Small blocks: the memory allocated follows the copies closely. */
	if (local_context == NULL)
		local_context = AllocSetContextCreate(TopMemoryContext,
											  "wm_perf local copies",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(local_context);
	local_copies = NULL;
	if (!keep)
		return;
	ctl.keysize = WM_MAX_KEY_LEN;
	ctl.entrysize = sizeof(WmLocalEntry);
	ctl.hcxt = local_context;
	local_copies = hash_create("wm_perf local copies", 16, &ctl,
							   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/*
 * Memory the copies hold, as allocated: the values (chunk rounding) and the
 * hash table, which dynahash keeps in a child context.
 */
static Size
local_memory(void)
{
	return local_context ? MemoryContextMemAllocated(local_context, true) : 0;
}

/* The copy for 'key' if it is still valid, as a palloc'd Jsonb. */
static Jsonb *
local_lookup(const char *key, uint64 generation, TimestampTz now)
{
	WmLocalEntry *e;
	Jsonb	   *out;

	if (local_copies == NULL)
		return NULL;
	/* The setting was lowered: free the memory now. */
	if (local_memory() > (Size) wm_guc_local_cache_size * 1024)
	{
		local_reset(true);
		return NULL;
	}
	e = hash_search(local_copies, key, HASH_FIND, NULL);
	if (e == NULL)
		return NULL;
	if (e->generation != generation ||
		TimestampDifferenceExceeds(e->stored_at, now, wm_guc_cache_ttl * 1000))
		return NULL;
	out = palloc(VARSIZE(e->value));
	memcpy(out, e->value, VARSIZE(e->value));
	return out;
}

static void
local_store(const char *key, uint64 generation, Jsonb *value)
{
	/* The value, its entry, and the table's growth, rounded up. */
	Size		size = 2 * (VARSIZE(value) + sizeof(WmLocalEntry));
	Size		limit = (Size) wm_guc_local_cache_size * 1024;
	WmLocalEntry *e;
	bool		found;

	if (size > limit)
		return;
	if (local_copies == NULL || local_memory() + size > limit)
		local_reset(true);
	e = hash_search(local_copies, key, HASH_ENTER, &found);
	if (found)
		pfree(e->value);
	e->generation = generation;
	e->stored_at = GetCurrentTimestamp();
	e->value = MemoryContextAlloc(local_context, VARSIZE(value));
	memcpy(e->value, value, VARSIZE(value));
}

/* The key a value is stored under (wm_redis_lookup's layout). */
static char *
value_key(const char *vprefix, const WmCacheVersion *version, const char *vsuffix)
{
	return psprintf("%s:%s:e%s:g%s%s", vprefix, version->run_id,
					version->epoch, version->generation, vsuffix);
}

/*
 * Single flight: when a value is missing, the first backend to miss it
 * computes it while holding a lock on its key, and the backends that miss
 * the same key meanwhile wait for that lock instead of computing the same
 * statistics at the same time (a dashboard's thundering herd after each
 * write), then look again and are served what it stored.
 *
 * The lock is a heavyweight lock in the advisory space, with a field4
 * no SQL-level advisory lock uses, on a hash of the value's key (which
 * includes its generation): visible in pg_locks, released at the latest
 * when the (sub)transaction ends.  A caller waits only if its transaction
 * can hold no lock the computing backend needs: no transaction id (every
 * DDL, and every write, has one) and no ACCESS EXCLUSIVE lock on a table
 * of the statistic (LOCK TABLE under wal_level = minimal takes one without
 * a transaction id).  With lock_timeout = 0 it is an ordinary lock wait,
 * which the deadlock detector sees; with lock_timeout set, the caller polls
 * for at most lock_timeout and then computes itself: a read does not fail
 * because another backend's computation is slow.
 */
#define WM_FLIGHT_LOCK_CLASS 0x574d	/* "WM" */
#define WM_FLIGHT_POLL_MS 5

typedef struct WmFlight
{
	bool		leading;		/* this backend holds the key's lock */
	LOCKTAG		tag;
} WmFlight;

static bool
flight_may_wait(const WmTable *tables, int ntables)
{
	int			i;

	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return false;
	for (i = 0; i < ntables; i++)
	{
		LOCKTAG		rel;

		SET_LOCKTAG_RELATION(rel, MyDatabaseId, wm_table_oid(tables[i]));
		if (WM_LOCK_HELD_BY_ME(&rel, AccessExclusiveLock))
			return false;
	}
	return true;
}

/*
 * Returns true if this backend waited for another one that computed the
 * value (look again), false if it is to compute the value itself (holding
 * the key's lock if it could take it).
 */
static bool
flight_join(WmFlight *flight, const char *vprefix, const WmCacheVersion *version,
			const char *vsuffix, const WmTable *tables, int ntables)
{
	char	   *key = value_key(vprefix, version, vsuffix);
	uint64		h = hash_bytes_extended((const unsigned char *) key, strlen(key), 0);

	pfree(key);
	SET_LOCKTAG_ADVISORY(flight->tag, MyDatabaseId, (uint32) (h >> 32),
						 (uint32) h, WM_FLIGHT_LOCK_CLASS);
	if (LockAcquire(&flight->tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
	{
		flight->leading = true;
		return false;
	}
	if (!flight_may_wait(tables, ntables))
		return false;

	if (LockTimeout <= 0)
		(void) LockAcquire(&flight->tag, ShareLock, false, false);
	else
	{
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   LockTimeout);

		while (LockAcquire(&flight->tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		{
			if (GetCurrentTimestamp() >= deadline)
				return false;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 WM_FLIGHT_POLL_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	/* Let the next one in at once. */
	LockRelease(&flight->tag, ShareLock, false);
	return true;
}

static void
flight_leave(WmFlight *flight)
{
	if (flight->leading)
		LockRelease(&flight->tag, ExclusiveLock, false);
	flight->leading = false;
}

typedef Jsonb *(*WmComputeFn) (void *arg);

/*
 * The cache-or-compute core.  args identifies the call within the scope
 * (it must be unambiguous); the role's oid is appended here.
 */
static Jsonb *
cached(WmMetricKind kind, WmScope scope, const WmTable *tables, int ntables,
	   const char *fn, const char *args, WmComputeFn compute, void *arg)
{
	char		epoch_key[WM_MAX_KEY_LEN];
	char		gen_key[WM_MAX_KEY_LEN];
	char		vprefix[WM_MAX_KEY_LEN];
	char	   *vsuffix;
	WmCacheVersion version;
	char	   *value = NULL;
	size_t		value_len = 0;
	Jsonb	   *result;
	WmRedisStatus rst;
	TimestampTz start = GetCurrentTimestamp();
	uint64		us;
	bool		use_local;
	uint64		local_gen = 0;
	char		local_key[WM_MAX_KEY_LEN];
	WmFlight	flight = {0};
	uint64		store_token;

	wm_metrics_add(kind, WM_COUNTER_CALLS, 1);

	/* Before the dirty check in cache_usable() and before any snapshot. */
	use_local = wm_guc_local_cache_size > 0 &&
		wm_shmem_local_generation(MyDatabaseId, scope, &local_gen);
	if (wm_guc_local_cache_size == 0 && local_copies != NULL)
		local_reset(false);		/* turned off: free the copies */

	if (!cache_usable(scope, tables, ntables))
	{
		wm_metrics_add(kind, WM_COUNTER_BYPASSES, 1);
		result = compute(arg);
		goto done;
	}

	vsuffix = psprintf(":%s:%s:u%u", fn, args, GetUserId());
	/* A key too long for the table (a long territory): no local copy. */
	if (use_local &&
		snprintf(local_key, sizeof(local_key), "%d%s", (int) scope,
				 vsuffix) >= (int) sizeof(local_key))
		use_local = false;
	if (use_local)
	{
		if ((result = local_lookup(local_key, local_gen, start)) != NULL)
		{
			wm_metrics_add(kind, WM_COUNTER_HITS, 1);
			wm_metrics_add(kind, WM_COUNTER_LOCAL_HITS, 1);
			goto done;
		}
	}

	wm_key_epoch(epoch_key, sizeof(epoch_key));
	wm_key_generation(gen_key, sizeof(gen_key), MyDatabaseId, scope);
	wm_key_values(vprefix, sizeof(vprefix), MyDatabaseId, scope);

	rst = wm_redis_lookup(kind, epoch_key, gen_key, vprefix, vsuffix,
						  &version, &value, &value_len);
	if (rst == WM_REDIS_OK && value == NULL &&
		flight_join(&flight, vprefix, &version, vsuffix, tables, ntables))
	{
		/*
		 * Another backend was computing this value and has finished: look
		 * again, from the start (a commit may have come meanwhile).
		 */
		if (!cache_usable(scope, tables, ntables))
		{
			wm_metrics_add(kind, WM_COUNTER_BYPASSES, 1);
			result = compute(arg);
			goto done;
		}
		rst = wm_redis_lookup(kind, epoch_key, gen_key, vprefix, vsuffix,
							  &version, &value, &value_len);
	}
	if (rst != WM_REDIS_OK)
	{
		if (rst == WM_REDIS_FAILED)
			wm_metrics_add(kind, WM_COUNTER_ERRORS, 1);
		wm_metrics_add(kind, WM_COUNTER_BYPASSES, 1);
		result = compute(arg);
		goto done;
	}
	if (value != NULL && (result = decode_value(value, value_len)) != NULL)
	{
		wm_metrics_add(kind, WM_COUNTER_HITS, 1);
		if (use_local)
			local_store(local_key, local_gen, result);
		goto done;
	}

	/* Miss (or a corrupt value, overwritten below). */
	wm_metrics_add(kind, WM_COUNTER_MISSES, 1);
	/* After the lookup, before the computation's snapshot (quiet scopes). */
	store_token = wm_shmem_store_token(MyDatabaseId, scope);
	result = compute(arg);

	/*
	 * Never true on a hot standby (cache_usable bypasses there); kept as a
	 * second guard because a standby's snapshot may lag the primary.
	 */
	if (!RecoveryInProgress())
	{
		size_t		len;
		char	   *enc = encode_value(result, &len);
		char	   *key = value_key(vprefix, &version, vsuffix);

		/*
		 * Not when a commit changed the scope since the token: it may have
		 * been quiet (no bump), counting on nothing being stored under the
		 * generation it left.
		 */
		if (wm_shmem_store_allowed(MyDatabaseId, scope, store_token) &&
			wm_redis_store(kind, epoch_key, gen_key, &version, key, enc, len,
						   wm_guc_cache_ttl) == WM_REDIS_FAILED)
			wm_metrics_add(kind, WM_COUNTER_ERRORS, 1);
		if (use_local)
			local_store(local_key, local_gen, result);
	}
	flight_leave(&flight);

done:
	us = (uint64) Max(GetCurrentTimestamp() - start, 0);
	wm_metrics_add(kind, WM_COUNTER_CALL_TIME_US, us);
	wm_metrics_max(kind, WM_COUNTER_CALL_MAX_US, us);
	return result;
}

static Jsonb *
route_compute(void *arg)
{
	return compute_route_statistics((text *) arg);
}

static Jsonb *
bin_compute(void *arg)
{
	return compute_bin_statistics((pg_uuid_t *) arg);
}

PG_FUNCTION_INFO_V1(wm_route_statistics);
Datum
wm_route_statistics(PG_FUNCTION_ARGS)
{
	static const WmTable tables[] = {WM_TABLE_ROUTES};
	text	   *territory = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	char	   *args;

	/* Length-prefixed, so that no territory name can forge another key. */
	if (territory)
	{
		char	   *t = text_to_cstring(territory);

		args = psprintf("t%zu:%s", strlen(t), t);
	}
	else
		args = "all";

	PG_RETURN_JSONB_P(cached(WM_METRIC_ROUTE_STATISTICS, WM_SCOPE_ROUTES,
							 tables, lengthof(tables), "routes", args,
							 route_compute, territory));
}

PG_FUNCTION_INFO_V1(wm_bin_statistics);
Datum
wm_bin_statistics(PG_FUNCTION_ARGS)
{
	static const WmTable tables[] = {
		WM_TABLE_BINS, WM_TABLE_CUSTOMERS, WM_TABLE_SERVICE_EVENTS
	};
	pg_uuid_t  *customer = PG_ARGISNULL(0) ? NULL : PG_GETARG_UUID_P(0);
	char	   *args;
	DateADT		today;

	/*
	 * "needingService" and "last 30 days" depend on the current date in the
	 * session's time zone: both are part of the key.
	 */
	today = DatumGetDateADT(DirectFunctionCall1(timestamptz_date,
												TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())));
	args = psprintf("%s:d%d:%s",
					customer ? DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(customer))) : "all",
					(int) today, pg_get_timezone_name(session_timezone));

	PG_RETURN_JSONB_P(cached(WM_METRIC_BIN_STATISTICS, WM_SCOPE_BINS,
							 tables, lengthof(tables), "bins", args,
							 bin_compute, customer));
}
