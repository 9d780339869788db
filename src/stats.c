/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  wm_route_statistics() and wm_bin_statistics(): what the statistics
 *	  are (their SQL and their jsonb shape).  Whether a call is served from
 *	  the cache or computed is cache.c's business.
 *
 * The queries read the attached columns without casting them: grouped
 * values are turned into text by their type's output function (enum_out
 * for an enum), and compared with untyped literals, so that no cast or
 * operator a table owner defined runs with the caller's rights
 * (spi_util.c checks every column's type by oid).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "storage/sinval.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "compat.h"
#include "wm_perf.h"

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
compute_route_statistics(text *territory, bool *empty)
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
					 " r.status, r.route_type, r.service_day, pg_catalog.count(*),"
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

	/* A territory without routes: not worth a key. */
	*empty = territory != NULL &&
		(total_row < 0 ||
		 get_int8(SPI_tuptable->vals[total_row], SPI_tuptable->tupdesc, 5) == 0);

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
run_bin_queries(SPIPlanPtr plan, SPIPlanPtr eplan, Datum *args, Snapshot given,
				SPITupleTable **bt, SPITupleTable **et)
{
	bool		any_message = has_subclass(wm_table_oid(WM_TABLE_BINS)) ||
		has_subclass(wm_table_oid(WM_TABLE_CUSTOMERS)) ||
		has_subclass(wm_table_oid(WM_TABLE_SERVICE_EVENTS));
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		uint64		inval_count = bin_tables_invalidations(any_message);
		Snapshot	snap = RegisterSnapshot(given ? given : GetTransactionSnapshot());
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
		if (given || attempt == 3 || inval_count == bin_tables_invalidations(any_message))
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
/*
 * The full queries of bin statistics (connected to SPI).  Returns the
 * argument datum for the plans.
 */
static Datum
bin_full_plans(pg_uuid_t *customer, SPIPlanPtr *full_plan, SPIPlanPtr *full_eplan)
{
	StringInfoData sql;
	StringInfoData esql;
	SPIPlanPtr	plan;
	SPIPlanPtr	eplan;
	Datum		args[1] = {(Datum) 0};
	Oid			argtypes[1] = {UUIDOID};
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
					 " b.status, b.bin_type, b.material, pg_catalog.count(*),"
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
					 "SELECT e.event_type, pg_catalog.count(*)"
					 " FROM %s e JOIN %s c ON c.id OPERATOR(pg_catalog.=) e.customer_id"
					 " WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL"
					 " AND e.created_at OPERATOR(pg_catalog.>=) (CURRENT_DATE OPERATOR(pg_catalog.-) 30)%s"
					 " GROUP BY 1 ORDER BY 1",
					 wm_table_qualname(WM_TABLE_SERVICE_EVENTS),
					 wm_table_qualname(WM_TABLE_CUSTOMERS),
					 event_filter);

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
	*full_plan = plan;
	*full_eplan = eplan;
	return args[0];
}

/*
 * Bin statistics computed in full, or (whole fleet) read from the
 * maintained aggregates (maintain.c) when they can serve the caller.
 * Connected to SPI; *maintained says which.
 */
static void
bin_statistics_rows(pg_uuid_t *customer, Snapshot given, bool allow_maintained,
					SPITupleTable **bt, SPITupleTable **et, bool *maintained)
{
	SPIPlanPtr	plan;
	SPIPlanPtr	eplan;
	Datum		args[1];
	uint64		r;

	args[0] = bin_full_plans(customer, &plan, &eplan);
	*maintained = false;
	if (customer == NULL && allow_maintained && wm_maintained_bin_plans(&plan, &eplan))
	{
		void	   *state = wm_maintained_enter();

		run_bin_queries(plan, eplan, args, given, bt, et);
		wm_maintained_leave(state);
		/* The state row (GROUPING mask -1): built for the attached tables. */
		for (r = 0; r < (*bt)->numvals; r++)
			if (get_int8((*bt)->vals[r], (*bt)->tupdesc, 1) == -1)
				*maintained = true;
		if (*maintained)
			return;
		SPI_freetuptable(*bt);
		SPI_freetuptable(*et);
		args[0] = bin_full_plans(customer, &plan, &eplan);
	}
	run_bin_queries(plan, eplan, args, given, bt, et);
}

static Jsonb *
bin_statistics_jsonb(pg_uuid_t *customer, SPITupleTable *bt, SPITupleTable *et,
					 bool *empty, MemoryContext caller)
{
	JsonbParseState *st = NULL;
	JsonbValue *res;
	uint64		r;
	int			total_row = -1;
	int64		active = 0;
	Oid			bins = wm_table_oid(WM_TABLE_BINS);
	bool		status_bpchar = OidIsValid(bins) &&
		get_atttype(bins, get_attnum(bins, "status")) == BPCHAROID;

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

			/* a bpchar status is 'active' without its padding */
			if (status != NULL && status_bpchar)
				status[bpchartruelen(status, strlen(status))] = '\0';
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
		/* A customer without bins or recent events: not worth a key. */
		*empty = customer != NULL && total == 0 &&
			(total_row < 0 || get_int8(bt->vals[total_row], bt->tupdesc, 5) == 0);
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

	return to_caller_context(res, caller);
}

static Jsonb *
compute_bin_statistics(pg_uuid_t *customer, bool *empty)
{
	MemoryContext caller = CurrentMemoryContext;
	SPITupleTable *bt;
	SPITupleTable *et;
	bool		maintained;
	Jsonb	   *out;
	int			rc;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	bin_statistics_rows(customer, NULL, true, &bt, &et, &maintained);
	elog(DEBUG1, "wm_perf bin statistics %s", maintained ?
		 "read from the maintained aggregates" : "computed in full");
	out = bin_statistics_jsonb(customer, bt, et, empty, caller);
	SPI_finish();
	return out;
}

/*
 * wm_statistics_verify(): the whole-fleet bin statistics from the
 * maintained aggregates and computed in full, under one snapshot; one row
 * per top-level key that differs (none when the state is correct), or one
 * row 'state' when the state cannot serve this caller.
 */
PG_FUNCTION_INFO_V1(wm_statistics_verify);
Datum
wm_statistics_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	MemoryContext caller = CurrentMemoryContext;
	SPITupleTable *bt;
	SPITupleTable *et;
	Snapshot	snap;
	bool		maintained;
	bool		empty;
	bool		dummy;
	Jsonb	   *m;
	Jsonb	   *f;
	int			rc;
	int			i;
	static const char *const keys[] = {
		"total", "active", "smartBins", "avgFillLevel", "needingService",
		"avgCapacityCubicYards", "byStatus", "byType", "byMaterial",
		"serviceEventsLast30Days", NULL
	};

	wm_config_refresh();
	WM_INIT_MATERIALIZED_SRF(fcinfo);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	CommandCounterIncrement();
	snap = RegisterSnapshot(GetTransactionSnapshot());
	bin_statistics_rows(NULL, snap, true, &bt, &et, &maintained);
	m = bin_statistics_jsonb(NULL, bt, et, &empty, caller);
	bin_statistics_rows(NULL, snap, false, &bt, &et, &dummy);
	f = bin_statistics_jsonb(NULL, bt, et, &empty, caller);
	UnregisterSnapshot(snap);
	SPI_finish();

	if (!maintained)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, true, false};

		values[0] = CStringGetTextDatum("bins");
		values[1] = CStringGetTextDatum("state");
		values[3] = DirectFunctionCall1(jsonb_in, CStringGetDatum("\"not maintained for this caller\""));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		return (Datum) 0;
	}
	for (i = 0; keys[i]; i++)
	{
		Datum		mv = DirectFunctionCall2(jsonb_object_field, JsonbPGetDatum(m),
											 CStringGetTextDatum(keys[i]));
		Datum		fv = DirectFunctionCall2(jsonb_object_field, JsonbPGetDatum(f),
											 CStringGetTextDatum(keys[i]));

		if (!DatumGetBool(DirectFunctionCall2(jsonb_eq, mv, fv)))
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};

			values[0] = CStringGetTextDatum("bins");
			values[1] = CStringGetTextDatum(keys[i]);
			values[2] = mv;
			values[3] = fv;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

static Jsonb *
route_compute(void *arg, bool *empty)
{
	return compute_route_statistics((text *) arg, empty);
}

static Jsonb *
bin_compute(void *arg, bool *empty)
{
	return compute_bin_statistics((pg_uuid_t *) arg, empty);
}

PG_FUNCTION_INFO_V1(wm_route_statistics);
Datum
wm_route_statistics(PG_FUNCTION_ARGS)
{
	static const WmTable tables[] = {WM_TABLE_ROUTES};
	text	   *territory = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	char	   *args;
	WmCacheCall call;

	/* Read-your-writes on a standby: before anything reads (standby.c). */
	wm_standby_wait_for_min_lsn(true, "wm_route_statistics");
	wm_config_refresh();

	/* Length-prefixed, so that no territory name can forge another key. */
	if (territory)
	{
		char	   *t = text_to_cstring(territory);

		args = psprintf("t%zu:%s", strlen(t), t);
	}
	else
		args = "all";

	call.kind = WM_METRIC_ROUTE_STATISTICS;
	call.scope = WM_SCOPE_ROUTES;
	call.tables = tables;
	call.ntables = lengthof(tables);
	call.fn = "routes";
	call.args = args;
	call.compute = route_compute;
	call.arg = territory;
	PG_RETURN_JSONB_P(wm_cache_get(&call));
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
	WmCacheCall call;

	wm_standby_wait_for_min_lsn(true, "wm_bin_statistics");
	wm_config_refresh();

	/*
	 * "needingService" and "last 30 days" depend on the current date in the
	 * session's time zone: both are part of the key.
	 */
	today = DatumGetDateADT(DirectFunctionCall1(timestamptz_date,
												TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())));
	args = psprintf("%s:d%d:%s",
					customer ? DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(customer))) : "all",
					(int) today, pg_get_timezone_name(session_timezone));

	call.kind = WM_METRIC_BIN_STATISTICS;
	call.scope = WM_SCOPE_BINS;
	call.tables = tables;
	call.ntables = lengthof(tables);
	call.fn = "bins";
	call.args = args;
	call.compute = bin_compute;
	call.arg = customer;
	PG_RETURN_JSONB_P(wm_cache_get(&call));
}
