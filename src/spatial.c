/*-------------------------------------------------------------------------
 *
 * spatial.c
 *	  wm_bins_within_radius() and wm_routes_within_radius(): exact radius
 *	  lookups served by the partial GiST indexes that wm_perf_attach()
 *	  creates.
 *
 * The result of a lookup is exactly the max_results rows nearest to the
 * point by ST_Distance(geography, geography) (on the spheroid) among the
 * active, live rows whose distance is at most the radius, ordered by
 * (distance_m, id).  The GiST index can only order by the geography "<->"
 * operator, which measures on the sphere of the mean radius
 * R = (2a + b) / 3 = 6371008.77 m.  So the lookup runs one KNN index scan
 * ordered by "<->", computes ST_Distance in the query for every row it
 * reads, keeps the best max_results rows in a bounded max-heap ordered by
 * (distance, id), and stops the scan as soon as no later row can qualify.
 * The rows go to a DestReceiver (radius_receive) as the executor produces
 * them, which ends the executor run by returning false: nothing is read or
 * copied beyond the row that proves the stop.
 *
 * The stop rule rests on two bounds.  Mapping the WGS84 spheroid onto that
 * sphere by latitude and longitude stretches every direction by a factor
 * between R / N and R / M, where M (meridional, 6335439 m at the equator
 * to 6399594 m at the poles) and N (prime vertical, 6378137 m to 6399594 m)
 * are the radii of curvature.  Every curve, and hence every shortest path,
 * keeps its length within those factors, so for any two points
 *
 *		0.994417 * sphere <= spheroid <= 1.004487 * sphere.
 *
 * For a line, PostGIS measures the spheroid distance between the two points
 * of the geometries that are nearest on the sphere, so the bounds hold for
 * ST_Distance(route, point) against route <-> point as well.  With margins
 * for rounding (PostGIS is exact to about 1e-9), WM_SPHEROID_MIN_RATIO is
 * 0.994 (delta = 0.6%) and WM_SPHEROID_MAX_RATIO 1.005.  Measured ratios
 * (200,000 random pairs from 1 m to 10,000 km, and the benchmark data
 * against several centres) lie in [0.994417, 1.004487].
 *
 * Rows arrive in non-decreasing sphere distance.  A row at spheroid
 * distance d is at least d / 1.005 away on the sphere, so every later row
 * is too, and is therefore at least d * 0.994 / 1.005 = 0.989 d away on the
 * spheroid.  Once 0.989 d exceeds the bound, the scan stops; the bound is
 *	  - the radius, while fewer than max_results rows are kept;
 *	  - the max_results-th best kept distance once the heap is full (a later
 *		row at an equal distance could still win on id, hence the strict
 *		comparison).
 * Using d rather than the "<->" value saves computing the sphere distance
 * once more per row.  The index condition
 * ST_DWithin(geog, point, radius / 0.994, false) is the radius on the
 * sphere: the index skips what cannot be within the radius, and the scan
 * ends at once when nothing is.
 *
 * The query text repeats the partial indexes' predicate
 * (status = 'active' AND deleted_at IS NULL) literally so that the planner
 * can prove the index usable for the generic plan; only the point, the
 * search radius and the territory are parameters.  The plans are prepared
 * with CURSOR_OPT_FAST_PLAN (the scan stops early, as a cursor would) and
 * CURSOR_OPT_GENERIC_PLAN (the algorithm wants the KNN scan whatever the
 * values, and replanning each call would cost more than the lookup), kept
 * per backend, and prepared again when the configuration generation
 * changes and the query text with it.
 *
 * Versus filter-then-sort (ST_DWithin, then ORDER BY ST_Distance, id
 * LIMIT max_results): where more rows than max_results lie within the
 * radius, the KNN scan reads about max_results of them and filter-then-sort
 * reads them all.  On the scale-1 benchmark data (1,000,000 bins, 50,000
 * routes; 100 results) a bins lookup takes 0.6-0.9 ms at any radius up to
 * 25 km, against 0.9 ms at 2 km for 164 candidates and 6.9-123 ms for
 * 2,000-30,000 candidates with filter-then-sort; routes take 1.8 ms
 * against 4-12 ms.  When fewer rows than max_results lie within the radius
 * both read the same rows and filter-then-sort is cheaper per row (no KNN
 * queue, PostGIS's cached distance trees): by at most 0.04 ms for bins,
 * and by up to 1.45 times for routes, whose line distances are dearer.
 * Which case applies is unknown before the scan, so the lookup always uses
 * KNN: it wins by orders of magnitude where the difference matters.
 *
 * NULL arguments: wm_bins_within_radius() is STRICT, so a NULL argument
 * returns no rows.  wm_routes_within_radius() cannot be STRICT because a
 * NULL territory means all territories; a NULL in any other argument
 * returns no rows as well, to behave like the bins function.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/binaryheap.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "nodes/params.h"
#include "parser/parse_type.h"
#include "portability/instr_time.h"
#include "tcop/dest.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "compat.h"
#include "wm_perf.h"

/* Half the Earth's equatorial circumference: covers the whole planet. */
#define WM_RADIUS_MAX_KM		20037.5

/* Cap on max_results: the heap and the result are kept in memory. */
#define WM_RADIUS_MAX_RESULTS	10000

/*
 * Bounds of (spheroid distance / sphere distance): 0.994417 and 1.004487
 * exactly (see the file header), widened by a margin for rounding.
 */
#define WM_SPHEROID_MIN_RATIO	0.994
#define WM_SPHEROID_MAX_RATIO	1.005

/* No row after one at spheroid distance d is nearer than d * this. */
#define WM_STOP_FACTOR			(WM_SPHEROID_MIN_RATIO / WM_SPHEROID_MAX_RATIO)

/* Columns of the query, which are the result columns. */
#define WM_COL_ID				1
#define WM_COL_DISTANCE			2
#define WM_RESULT_NATTS			7

typedef enum WmRadiusQuery
{
	WM_QUERY_BINS = 0,
	WM_QUERY_ROUTES,
	WM_QUERY_ROUTES_TERRITORY,
	WM_QUERY_COUNT
} WmRadiusQuery;

/* A kept plan, valid for one configuration generation. */
typedef struct WmRadiusPlan
{
	uint64		generation;
	Oid			geography_oid;
	Oid			typinput;		/* geography's input function */
	Oid			typioparam;
	char	   *sql;			/* in TopMemoryContext */
	SPIPlanPtr	plan;			/* kept */
} WmRadiusPlan;

static WmRadiusPlan radius_plans[WM_QUERY_COUNT];

/* A row kept as one of the best max_results so far. */
typedef struct WmCandidate
{
	double		distance;		/* spheroid, metres */
	pg_uuid_t	id;
	bool		id_isnull;
	HeapTuple	tuple;			/* the query's row, in the work context */
} WmCandidate;

/* The arguments of one lookup. */
typedef struct WmRadiusArgs
{
	WmRadiusQuery which;
	WmMetricKind metric;
	const char *funcname;		/* for the slow-call log */
	double		lat;
	double		lon;
	double		radius_km;
	int32		max_results;
	text	   *territory;		/* NULL: all */
} WmRadiusArgs;

static void
check_finite(double value, const char *argname)
{
	if (isnan(value) || isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" must be a finite number, not %s",
						argname, float8out_internal(value))));
}

static void
validate_args(const WmRadiusArgs *args)
{
	check_finite(args->lat, "lat");
	check_finite(args->lon, "lon");
	check_finite(args->radius_km, "radius_km");

	if (args->lat < -90.0 || args->lat > 90.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"lat\" must be between -90 and 90, not %s",
						float8out_internal(args->lat))));
	if (args->lon < -180.0 || args->lon > 180.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"lon\" must be between -180 and 180, not %s",
						float8out_internal(args->lon))));
	if (args->radius_km <= 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"radius_km\" must be greater than 0, not %s",
						float8out_internal(args->radius_km))));
	if (args->radius_km > WM_RADIUS_MAX_KM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"radius_km\" must be at most %s, not %s",
						float8out_internal(WM_RADIUS_MAX_KM),
						float8out_internal(args->radius_km)),
				 errdetail("Half the circumference of the Earth already covers every point.")));
	if (args->max_results < 1 || args->max_results > WM_RADIUS_MAX_RESULTS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"max_results\" must be between 1 and %d, not %d",
						WM_RADIUS_MAX_RESULTS, args->max_results)));
}

/*
 * The query of a lookup.  geog is the indexed expression: the column cast
 * to geography for a geometry column, the column itself for a geography
 * one.  $1 is the point (geography), $2 the search radius on the sphere in
 * metres, $3 the territory.
 */
static char *
build_query(WmRadiusQuery which, const char *table, bool is_geometry,
			const char *postgis)
{
	StringInfoData sql;
	const char *column;
	char	   *geog;

	column = (which == WM_QUERY_BINS) ? "location" : "route_geometry";
	if (is_geometry)
		geog = psprintf("t.%s::%s.geography", column, postgis);
	else
		geog = psprintf("t.%s", column);

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT t.id::pg_catalog.uuid, %s.ST_Distance(%s, $1), ",
					 postgis, geog);
	/*
	 * Label columns (enums or text) are selected as they are and turned into
	 * text by their output function when a row is kept (radius_keep()): a
	 * cast could run a table owner's function with the caller's rights.
	 */
	if (which == WM_QUERY_BINS)
		appendStringInfoString(&sql,
							   "t.bin_number, t.customer_id, t.bin_type, t.status,"
							   " t.fill_level_percent::pg_catalog.int4");
	else
		appendStringInfoString(&sql,
							   "t.route_number, t.route_name, t.route_type,"
							   " t.service_day, t.territory");
	appendStringInfo(&sql,
					 " FROM %s t"
					 " WHERE t.status OPERATOR(pg_catalog.=) 'active'"
					 " AND t.deleted_at IS NULL",
					 table);
	if (which == WM_QUERY_ROUTES_TERRITORY)
		appendStringInfoString(&sql,
							   " AND t.territory::pg_catalog.text"
							   " OPERATOR(pg_catalog.=) $3");
	appendStringInfo(&sql,
					 " AND %s.ST_DWithin(%s, $1, $2, false)"
					 " ORDER BY %s OPERATOR(%s.<->) $1",
					 postgis, geog, geog, postgis);

	pfree(geog);
	return sql.data;
}

/* OID of PostGIS's geography type; postgis is the quoted schema. */
static Oid
geography_type_oid(const char *postgis)
{
	List	   *names;

	names = WM_QUALIFIED_NAME_LIST(psprintf("%s.geography", postgis));
	return LookupTypeNameOid(NULL, makeTypeNameFromNameList(names), false);
}

/*
 * Make p's kept plan the one for sql, valid for this generation.  The plan
 * is prepared again only if the text or the geography type changed: for
 * the same text, the plan cache revalidates the plan by itself.  Call while
 * connected to SPI.
 */
static void
refresh_plan(WmRadiusPlan *p, WmRadiusQuery which, uint64 generation,
			 const char *sql, Oid geography_oid)
{
	Oid			argtypes[3];
	SPIPlanPtr	plan;
	int			rc;

	if (p->plan != NULL && p->geography_oid == geography_oid &&
		strcmp(p->sql, sql) == 0)
	{
		p->generation = generation;
		return;
	}

	if (p->plan != NULL)
	{
		SPI_freeplan(p->plan);
		p->plan = NULL;
	}
	if (p->sql != NULL)
	{
		pfree(p->sql);
		p->sql = NULL;
	}

	argtypes[0] = geography_oid;
	argtypes[1] = FLOAT8OID;
	argtypes[2] = TEXTOID;

	elog(DEBUG1, "wm_perf radius lookup query: %s", sql);
	plan = SPI_prepare_cursor(sql, which == WM_QUERY_ROUTES_TERRITORY ? 3 : 2,
							  argtypes,
							  CURSOR_OPT_FAST_PLAN | CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed: %s",
			 SPI_result_code_string(SPI_result));
	if ((rc = SPI_keepplan(plan)) != 0)
		elog(ERROR, "SPI_keepplan failed: %s", SPI_result_code_string(rc));

	p->sql = MemoryContextStrdup(TopMemoryContext, sql);
	p->geography_oid = geography_oid;
	getTypeInputInfo(geography_oid, &p->typinput, &p->typioparam);
	p->plan = plan;
	p->generation = generation;
}

/* Result order: distance, then id (NULL ids last). */
static int
candidate_cmp(const WmCandidate *a, const WmCandidate *b)
{
	if (a->distance < b->distance)
		return -1;
	if (a->distance > b->distance)
		return 1;
	if (a->id_isnull || b->id_isnull)
		return (int) a->id_isnull - (int) b->id_isnull;
	return memcmp(a->id.data, b->id.data, UUID_LEN);
}

/* binaryheap keeps the greatest element first: the worst candidate. */
static int
candidate_heap_cmp(Datum a, Datum b, void *arg)
{
	return candidate_cmp((const WmCandidate *) DatumGetPointer(a),
						 (const WmCandidate *) DatumGetPointer(b));
}

static int
candidate_qsort_cmp(const void *a, const void *b)
{
	Datum		da = *(const Datum *) a;
	Datum		db = *(const Datum *) b;

	return candidate_cmp((const WmCandidate *) DatumGetPointer(da),
						 (const WmCandidate *) DatumGetPointer(db));
}

/*
 * Receives the rows of the query as the executor produces them, nearest on
 * the sphere first, keeps the best max_results in the heap and stops the
 * executor as soon as no later row can qualify (see the file header).
 */
typedef struct WmRadiusReceiver
{
	DestReceiver pub;
	TupleDesc	result_desc;	/* the declared result columns */
	FmgrInfo	to_text[WM_RESULT_NATTS];	/* output functions, where the
											 * query's column is not text */
	bool		convert[WM_RESULT_NATTS];
	int			max_results;
	double		radius_m;
	double		bound;			/* no row beyond this can qualify */
	binaryheap *heap;			/* of WmCandidate *, worst first */
	MemoryContext cxt;			/* for kept rows */
	uint64		rows_seen;
} WmRadiusReceiver;

/* Check that the query's columns are the declared result columns. */
static void
radius_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	WmRadiusReceiver *recv = (WmRadiusReceiver *) self;
	int			i;

	if (typeinfo->natts != WM_RESULT_NATTS ||
		recv->result_desc->natts != WM_RESULT_NATTS)
		elog(ERROR, "radius lookup returned %d columns, expected %d",
			 typeinfo->natts, WM_RESULT_NATTS);
	for (i = 0; i < WM_RESULT_NATTS; i++)
	{
		Oid			got = TupleDescAttr(typeinfo, i)->atttypid;
		Oid			want = TupleDescAttr(recv->result_desc, i)->atttypid;

		recv->convert[i] = false;
		if (got == want)
			continue;
		if (want != TEXTOID)
			elog(ERROR, "radius lookup column %d has type %u, expected %u",
				 i + 1, got, want);
		{
			Oid			typoutput;
			bool		typisvarlena;

			getTypeOutputInfo(got, &typoutput, &typisvarlena);
			fmgr_info_cxt(typoutput, &recv->to_text[i], recv->cxt);
			recv->convert[i] = true;
		}
	}
}

/* A query row as a result row (labels as text), in the work context. */
static HeapTuple
radius_keep(WmRadiusReceiver *recv, TupleTableSlot *slot)
{
	Datum		values[WM_RESULT_NATTS];
	bool		nulls[WM_RESULT_NATTS];
	MemoryContext oldcxt = MemoryContextSwitchTo(recv->cxt);
	HeapTuple	tup;
	int			i;

	slot_getallattrs(slot);
	for (i = 0; i < WM_RESULT_NATTS; i++)
	{
		nulls[i] = slot->tts_isnull[i];
		values[i] = slot->tts_values[i];
		if (recv->convert[i] && !nulls[i])
			values[i] = CStringGetTextDatum(OutputFunctionCall(&recv->to_text[i],
															   values[i]));
	}
	tup = heap_form_tuple(recv->result_desc, values, nulls);
	MemoryContextSwitchTo(oldcxt);
	return tup;
}

static bool
radius_receive(TupleTableSlot *slot, DestReceiver *self)
{
	WmRadiusReceiver *recv = (WmRadiusReceiver *) self;
	WmCandidate cand;
	WmCandidate *kept;
	MemoryContext oldcxt;
	Datum		value;
	bool		isnull;

	recv->rows_seen++;
	value = slot_getattr(slot, WM_COL_DISTANCE, &isnull);
	if (isnull)
		return true;
	cand.distance = DatumGetFloat8(value);

	/* Strictly: a later row at the same distance could still win on id. */
	if (cand.distance * WM_STOP_FACTOR > recv->bound)
		return false;
	if (cand.distance > recv->radius_m)
		return true;

	value = slot_getattr(slot, WM_COL_ID, &cand.id_isnull);
	if (!cand.id_isnull)
		memcpy(cand.id.data, DatumGetUUIDP(value)->data, UUID_LEN);

	if (recv->heap->bh_size < recv->max_results)
	{
		oldcxt = MemoryContextSwitchTo(recv->cxt);
		kept = palloc(sizeof(WmCandidate));
		MemoryContextSwitchTo(oldcxt);
		*kept = cand;
		kept->tuple = radius_keep(recv, slot);
		binaryheap_add(recv->heap, PointerGetDatum(kept));
	}
	else
	{
		kept = (WmCandidate *) DatumGetPointer(binaryheap_first(recv->heap));
		if (candidate_cmp(&cand, kept) >= 0)
			return true;
		heap_freetuple(kept->tuple);
		*kept = cand;
		kept->tuple = radius_keep(recv, slot);
		binaryheap_replace_first(recv->heap, PointerGetDatum(kept));
	}

	if (recv->heap->bh_size == recv->max_results)
	{
		kept = (WmCandidate *) DatumGetPointer(binaryheap_first(recv->heap));
		recv->bound = kept->distance;
	}
	return true;
}

static void
radius_shutdown(DestReceiver *self)
{
}

static void
radius_destroy(DestReceiver *self)
{
}

static void
log_slow_call(const WmRadiusArgs *args, int nrows, uint64 elapsed_us)
{
	char	   *territory;

	if (args->which == WM_QUERY_BINS)
		territory = "";
	else if (args->territory == NULL)
		territory = ", NULL";
	else
	{
		char	   *name = text_to_cstring(args->territory);

		territory = psprintf(", %s", quote_literal_cstr(name));
	}

	ereport(LOG,
			(errmsg_plural("slow radius lookup %s(%s, %s, %s, %d%s) returned %d row",
						   "slow radius lookup %s(%s, %s, %s, %d%s) returned %d rows",
						   nrows,
						   args->funcname,
						   float8out_internal(args->lat),
						   float8out_internal(args->lon),
						   float8out_internal(args->radius_km),
						   args->max_results, territory, nrows),
			 errdetail("The call took %.3f ms; wm_perf.slow_spatial_threshold is %d ms.",
					   (double) elapsed_us / 1000.0,
					   wm_guc_slow_spatial_threshold)));
}

/*
 * Run one lookup into the materialized SRF result of fcinfo.
 */
static void
radius_lookup(FunctionCallInfo fcinfo, const WmRadiusArgs *args)
{
	ReturnSetInfo *rsinfo;
	instr_time	start;
	instr_time	duration;
	uint64		elapsed_us;
	WmTable		table;
	WmRadiusPlan *p = &radius_plans[args->which];
	uint64		generation;
	char	   *sql = NULL;
	Oid			geography_oid = InvalidOid;
	char		wkt[128];
	ParamListInfo params;
	SPIExecuteOptions options;
	WmRadiusReceiver recv;
	MemoryContext work_cxt;
	MemoryContext oldcxt;
	int			nrows;
	int			i;
	int			rc;

	INSTR_TIME_SET_CURRENT(start);

	validate_args(args);

	/*
	 * Read-your-writes on a standby: this STABLE function reads with its
	 * statement's snapshot, taken before it ran (standby.c).
	 */
	wm_standby_wait_for_min_lsn(false, args->funcname);
	table = (args->which == WM_QUERY_BINS) ? WM_TABLE_BINS : WM_TABLE_ROUTES;

	WM_INIT_MATERIALIZED_SRF(fcinfo);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	/*
	 * Resolve the tables and PostGIS before connecting (that may use SPI
	 * itself), and only when the configuration changed.
	 */
	wm_config_refresh();
	generation = wm_config_generation();
	if (p->plan == NULL || p->generation != generation)
	{
		const char *postgis = wm_postgis_schema();

		sql = build_query(args->which, wm_table_qualname(table),
						  wm_table_is_geometry(table), postgis);
		geography_oid = geography_type_oid(postgis);
	}

	/* Kept rows; released before returning. */
	work_cxt = AllocSetContextCreate(CurrentMemoryContext,
									 "wm_perf radius lookup",
									 ALLOCSET_DEFAULT_SIZES);

	memset(&recv, 0, sizeof(recv));
	recv.pub.receiveSlot = radius_receive;
	recv.pub.rStartup = radius_startup;
	recv.pub.rShutdown = radius_shutdown;
	recv.pub.rDestroy = radius_destroy;
	recv.pub.mydest = DestNone;
	recv.result_desc = rsinfo->setDesc;
	recv.max_results = args->max_results;
	recv.radius_m = args->radius_km * 1000.0;
	recv.bound = recv.radius_m;
	recv.cxt = work_cxt;
	oldcxt = MemoryContextSwitchTo(work_cxt);
	recv.heap = binaryheap_allocate(args->max_results, candidate_heap_cmp,
									NULL);
	MemoryContextSwitchTo(oldcxt);

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));

	if (sql != NULL)
	{
		refresh_plan(p, args->which, generation, sql, geography_oid);
		pfree(sql);
	}

	/* The point, exactly: %.17g round-trips every double. */
	snprintf(wkt, sizeof(wkt), "SRID=4326;POINT(%.17g %.17g)",
			 args->lon, args->lat);
	params = makeParamList(3);
	params->numParams = (args->which == WM_QUERY_ROUTES_TERRITORY) ? 3 : 2;
	params->params[0].value = OidInputFunctionCall(p->typinput, wkt,
												   p->typioparam, -1);
	params->params[0].isnull = false;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].ptype = p->geography_oid;
	params->params[1].value = Float8GetDatum(recv.radius_m /
											 WM_SPHEROID_MIN_RATIO);
	params->params[1].isnull = false;
	params->params[1].pflags = PARAM_FLAG_CONST;
	params->params[1].ptype = FLOAT8OID;
	if (args->territory != NULL)
	{
		params->params[2].value = PointerGetDatum(args->territory);
		params->params[2].isnull = false;
		params->params[2].pflags = PARAM_FLAG_CONST;
		params->params[2].ptype = TEXTOID;
	}

	/* Run the scan; radius_receive() stops it when the rule is met. */
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = true;
	options.dest = (DestReceiver *) &recv;
	rc = SPI_execute_plan_extended(p->plan, &options);
	/* SPI reports a SELECT into a DestNone receiver as SPI_OK_UTILITY. */
	wm_spi_check(rc, SPI_OK_UTILITY, "running a radius lookup");
	elog(DEBUG2, "wm_perf radius lookup read " UINT64_FORMAT " rows, kept %d",
		 recv.rows_seen, recv.heap->bh_size);

	/* Emit the kept rows nearest first. */
	nrows = recv.heap->bh_size;
	qsort(recv.heap->bh_nodes, nrows, sizeof(Datum), candidate_qsort_cmp);
	for (i = 0; i < nrows; i++)
	{
		WmCandidate *kept;

		kept = (WmCandidate *) DatumGetPointer(recv.heap->bh_nodes[i]);
		tuplestore_puttuple(rsinfo->setResult, kept->tuple);
	}

	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(rc));
	MemoryContextDelete(work_cxt);

	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	elapsed_us = INSTR_TIME_GET_MICROSEC(duration);

	wm_metrics_add(args->metric, WM_COUNTER_CALLS, 1);
	wm_metrics_observe(args->metric, elapsed_us);
	if (wm_guc_slow_spatial_threshold >= 0 &&
		elapsed_us > (uint64) wm_guc_slow_spatial_threshold * 1000)
	{
		wm_metrics_add(args->metric, WM_COUNTER_SLOW_CALLS, 1);
		log_slow_call(args, nrows, elapsed_us);
	}
}

/*
 * wm_bins_within_radius(lat, lon, radius_km, max_results): active, live
 * bins, the max_results nearest within the radius.  STRICT.
 */
PG_FUNCTION_INFO_V1(wm_bins_within_radius);
Datum
wm_bins_within_radius(PG_FUNCTION_ARGS)
{
	WmRadiusArgs args;

	args.which = WM_QUERY_BINS;
	args.metric = WM_METRIC_BINS_WITHIN_RADIUS;
	args.funcname = "wm_bins_within_radius";
	args.lat = PG_GETARG_FLOAT8(0);
	args.lon = PG_GETARG_FLOAT8(1);
	args.radius_km = PG_GETARG_FLOAT8(2);
	args.max_results = PG_GETARG_INT32(3);
	args.territory = NULL;

	radius_lookup(fcinfo, &args);
	return (Datum) 0;
}

/*
 * wm_routes_within_radius(lat, lon, radius_km, max_results, territory):
 * active, live routes (of one territory unless it is NULL), the
 * max_results nearest within the radius.  A NULL in another argument
 * returns no rows, as the STRICT bins function does.
 */
PG_FUNCTION_INFO_V1(wm_routes_within_radius);
Datum
wm_routes_within_radius(PG_FUNCTION_ARGS)
{
	WmRadiusArgs args;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) ||
		PG_ARGISNULL(3))
	{
		WM_INIT_MATERIALIZED_SRF(fcinfo);
		return (Datum) 0;
	}

	args.territory = PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4);
	args.which = args.territory ? WM_QUERY_ROUTES_TERRITORY : WM_QUERY_ROUTES;
	args.metric = WM_METRIC_ROUTES_WITHIN_RADIUS;
	args.funcname = "wm_routes_within_radius";
	args.lat = PG_GETARG_FLOAT8(0);
	args.lon = PG_GETARG_FLOAT8(1);
	args.radius_km = PG_GETARG_FLOAT8(2);
	args.max_results = PG_GETARG_INT32(3);

	radius_lookup(fcinfo, &args);
	return (Datum) 0;
}
