/*-------------------------------------------------------------------------
 *
 * maintain.c
 *	  Incrementally maintained aggregates behind wm_bin_statistics() (the
 *	  whole-fleet call): the delta tables, the writers' triggers that append
 *	  to them, the fold, the rebuild, and the SQL a call reads them with.
 *
 * The maintained state is three tables in the extension's schema, owned by
 * the extension's owner and readable by no one else:
 *
 *	wm_agg_bins		(status, bin_type, material) -> counts and sums
 *	wm_agg_bins_due	(bin_type, material, next_service_date) -> active bins
 *					whose fill level does not already make them due
 *	wm_agg_events	(event_type, hour in UTC) -> events
 *
 * plus wm_agg_state, one row naming the tables the state was built from.
 * Every row is a delta: the value of a group is the sum of its rows.  A
 * writer's statement trigger aggregates its transition tables (in C, see
 * record_delta()) into one row per group it touched and inserts those rows
 * in the writer's own
 * transaction, so MVCC does the rest: an aborted transaction, a rolled-back
 * savepoint or a prepared transaction adds nothing visible, crash recovery
 * and standbys replay the rows like any other, and a reader that sums the
 * rows its snapshot sees gets the state of exactly that snapshot.  Writers
 * only insert: no row, counter or lock is shared by the writers of a scope.
 *
 * Which rows count.  A bin or event counts when it is not soft-deleted and
 * its customer exists and is not soft-deleted.  A customer whose liveness
 * changes moves all its bins and events in or out (a BEFORE ROW trigger, so
 * that it runs before a cascading delete removes them); it first locks its
 * own row FOR UPDATE.  A writer of bins or events reads the liveness of the
 * customers its rows name FOR KEY SHARE (what its foreign key takes; the
 * one lock an application's plain UPDATE of the customer does not conflict
 * with): a writer and a liveness change of the same customer wait for each
 * other, and the second sees the first, never neither.  A statement of more
 * than WM_BIG_STATEMENT_ROWS rows locks the customers table in SHARE mode
 * instead.  Both read with the latest snapshot, also under REPEATABLE READ.
 * A statement still pending on bins or events (BEFORE fired, delta not yet
 * recorded) makes a liveness change give up the state, and stops rebuilds.
 *
 * The fold (wm_statistics_compact(), and one writer statement in
 * WM_FOLD_ONE_IN at random) replaces the rows of each table by one row per
 * group in one statement (DELETE ... RETURNING feeding an INSERT): a reader
 * sees the old rows or the new ones, with the same sums.  Folds, rebuilds
 * and TRUNCATE triggers exclude each other with a transaction-level
 * advisory lock (writers take none).  Hourly event buckets older than
 * WM_EVENT_DAYS days are dropped by the fold: no session can ask for them.
 *
 * Time.  needingService compares next_service_date with the caller's
 * CURRENT_DATE: the due histogram is summed below that date.  The last 30
 * days start at midnight of CURRENT_DATE - 30 in the caller's TimeZone:
 * whole UTC hours from the first hour boundary at or after it are summed
 * from the buckets, and the part-hour before it (TimeZones with offsets
 * that are not whole hours) is counted exactly from the events table
 * through the created_at index.  So any TimeZone, midnight and DST change
 * is exact.
 *
 * Partitions and inheritance children of bins and service_events carry the
 * same statement triggers (a statement naming one fires only its own; one
 * naming the parent sees their rows in its transition tables), and the
 * state is built only while all of them do (triggers_complete()).
 *
 * When the state is not used (the call computes as before): a customer
 * argument (the indexes answer that in milliseconds), partitions or
 * inheritance children of customers, created_at not
 * timestamptz or ids not uuid (no maintenance triggers were made), a state
 * not built for the attached tables (wm_agg_state), RLS enabled for the
 * caller, or no SELECT privilege (then the full computation raises the
 * usual error).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

#include "compat.h"
#include "wm_perf.h"

/* A writer statement folds with this chance (1 in N), if no one else is. */
#define WM_FOLD_ONE_IN		128
/* Above this many transition rows, the liveness is joined, not looked up. */
#define WM_BIG_STATEMENT_ROWS	1000
/* Delta tables this small are always read (see wm_maintained_bin_plans). */
#define WM_DELTA_MIN_BLOCKS	1024
/* Event buckets kept by the fold. */
#define WM_EVENT_DAYS		40
/* The advisory lock of folds, rebuilds and truncations: ('wm', 1). */
#define WM_ADVISORY_SQL		"SELECT pg_catalog.%s(2003792997, 1)"

/* A label column as text, by its type's output function; NULL stays NULL. */
#define TXT(col) "CASE WHEN " col " IS NULL THEN NULL ELSE pg_catalog.format('%%s', " col ") END"

/*
 * status = 'active', compared as text: a literal would be parsed as the
 * enum and fail once the label is renamed.  The attached columns' types are
 * checked by oid (no domains, no user types but enums), and operators
 * resolve in pg_catalog: nothing of a table owner's runs.  A bpchar status
 * compares as bpchar does (the full computation's status = 'active'):
 * trailing spaces do not count, 'active' in a char(12) is active.
 */
#define ACTIVE(t) "CASE WHEN pg_catalog.pg_typeof(" t ".status) OPERATOR(pg_catalog.=)" \
	" 'pg_catalog.bpchar'::pg_catalog.regtype" \
	" THEN pg_catalog.rtrim(pg_catalog.format('%%s', " t ".status), ' ')" \
	" ELSE pg_catalog.format('%%s', " t ".status) END OPERATOR(pg_catalog.=) 'active'"

/*
 * The grouped contribution of the rows of 'b' (sign column wm_s):
 * BINS_SELECT "FROM (" BINS_INNER " FROM <rows> b" BINS_INNER_GROUP ") g".
 * The inner query groups by the label columns themselves and the outer one
 * formats only the groups' labels: the output functions run once per group,
 * not once or twice per row (labels are enums or text, whose output is
 * injective).  need_fill is the f80 count of the group whose status is
 * 'active'.
 */
#define BINS_SELECT \
	"SELECT " TXT("g.status") " AS status, " TXT("g.bin_type") " AS bin_type, " \
	TXT("g.material") " AS material, g.n, g.gps, g.sensor, g.smart, g.fill_sum, g.fill_n," \
	" g.cap_sum, g.cap_n, CASE WHEN " ACTIVE("g") " THEN g.f80 ELSE 0 END AS need_fill "
#define BINS_INNER \
	"SELECT b.status, b.bin_type, b.material, pg_catalog.sum(b.wm_s) AS n," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.gps_enabled IS TRUE), 0) AS gps," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.sensor_enabled IS TRUE), 0) AS sensor," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.gps_enabled IS TRUE OR b.sensor_enabled IS TRUE), 0) AS smart," \
	" COALESCE(pg_catalog.sum(b.wm_s * b.fill_level_percent), 0) AS fill_sum," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.fill_level_percent IS NOT NULL), 0) AS fill_n," \
	" COALESCE(pg_catalog.sum(b.wm_s * b.capacity_cubic_yards), 0) AS cap_sum," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.capacity_cubic_yards IS NOT NULL), 0) AS cap_n," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.fill_level_percent OPERATOR(pg_catalog.>=) 80), 0) AS f80"
#define BINS_INNER_GROUP " GROUP BY 1, 2, 3"
/* The columns the statistics read, of bins and of service_events ('t'). */
#define BINS_COLS \
	"t.customer_id, t.deleted_at, t.status, t.bin_type, t.material, t.gps_enabled," \
	" t.sensor_enabled, t.fill_level_percent, t.capacity_cubic_yards, t.next_service_date"
#define EVENTS_COLS "t.customer_id, t.deleted_at, t.event_type, t.created_at"
/* Writers wrap BINS_SELECT: a group whose delta is all zeros is not stored. */
#define BINS_NONZERO \
	" WHERE z.n <> 0 OR z.gps <> 0 OR z.sensor <> 0 OR z.smart <> 0 OR z.fill_sum <> 0" \
	" OR z.fill_n <> 0 OR z.cap_sum <> 0 OR z.cap_n <> 0 OR z.need_fill <> 0"
/*
 * DUE_SELECT "FROM (" DUE_INNER " FROM <rows> b" DUE_INNER_WHERE ") g" DUE_WHERE.
 * OFFSET 0 keeps DUE_WHERE out of the inner query: pushed down, it would
 * format every row's status, and its guessed selectivity makes the planner
 * sort a big statement's rows instead of hashing them.
 */
#define DUE_SELECT \
	"SELECT " TXT("g.bin_type") ", " TXT("g.material") ", g.next_service_date, g.n "
#define DUE_INNER \
	"SELECT b.status, b.bin_type, b.material, b.next_service_date, pg_catalog.sum(b.wm_s) AS n"
#define DUE_INNER_WHERE \
	" WHERE (b.fill_level_percent OPERATOR(pg_catalog.>=) 80) IS NOT TRUE" \
	" AND b.next_service_date IS NOT NULL GROUP BY 1, 2, 3, 4 HAVING pg_catalog.sum(b.wm_s) <> 0" \
	" OFFSET 0"
#define DUE_WHERE " WHERE " ACTIVE("g")
/* EVENTS_SELECT "FROM (" EVENTS_INNER " FROM <rows> e" EVENTS_GROUP ") g" */
#define EVENTS_SELECT "SELECT " TXT("g.event_type") ", g.hour, g.n "
#define EVENTS_INNER \
	"SELECT e.event_type, pg_catalog.date_trunc('hour', e.created_at, 'UTC') AS hour," \
	" pg_catalog.sum(e.wm_s) AS n"
#define EVENTS_GROUP " WHERE e.created_at IS NOT NULL GROUP BY 1, 2 HAVING pg_catalog.sum(e.wm_s) <> 0"

typedef struct WmMaintained
{
	uint64		generation;		/* configuration these were resolved for */
	bool		eligible;		/* column types allow maintenance */
	Oid			agg_bins;
	Oid			agg_due;
	Oid			agg_events;
	Oid			agg_state;
	Oid			owner;			/* of the maintained tables */
	char	   *schema;			/* quoted extension schema */
	SPIPlanPtr	bins_plan;
	SPIPlanPtr	events_plan;
} WmMaintained;

static WmMaintained maint;

static void forget_kept(void);
static int	pending(void);

static const char *
ext_schema(void)
{
	return wm_extension_schema();
}

static bool
column_has_type(Oid relid, const char *name, Oid typid)
{
	AttrNumber	att = get_attnum(relid, name);

	return att != InvalidAttrNumber && get_atttype(relid, att) == typid;
}

/* Re-resolve what depends on the configuration. */
static void
resolve(void)
{
	uint64		gen = wm_config_generation();
	Oid			bins = wm_table_oid(WM_TABLE_BINS);
	Oid			cust = wm_table_oid(WM_TABLE_CUSTOMERS);
	Oid			events = wm_table_oid(WM_TABLE_SERVICE_EVENTS);
	Oid			nsp;

	if (maint.generation == gen && maint.schema != NULL)
		return;
	if (maint.bins_plan)
		SPI_freeplan(maint.bins_plan);
	if (maint.events_plan)
		SPI_freeplan(maint.events_plan);
	maint.bins_plan = NULL;
	maint.events_plan = NULL;
	forget_kept();
	if (maint.schema)
		pfree(maint.schema);
	maint.schema = MemoryContextStrdup(TopMemoryContext, ext_schema());
	nsp = wm_extension_schema_oid();
	maint.agg_bins = get_relname_relid("wm_agg_bins", nsp);
	maint.agg_due = get_relname_relid("wm_agg_bins_due", nsp);
	maint.agg_events = get_relname_relid("wm_agg_events", nsp);
	maint.agg_state = get_relname_relid("wm_agg_state", nsp);
	maint.owner = InvalidOid;
	if (OidIsValid(maint.agg_bins))
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(maint.agg_bins));

		if (HeapTupleIsValid(tup))
		{
			maint.owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
			ReleaseSysCache(tup);
		}
	}
	maint.eligible = OidIsValid(maint.owner) && OidIsValid(maint.agg_state) &&
		OidIsValid(bins) && OidIsValid(cust) && OidIsValid(events) &&
		!wm_table_has_problem(WM_TABLE_BINS) &&
		!wm_table_has_problem(WM_TABLE_CUSTOMERS) &&
		!wm_table_has_problem(WM_TABLE_SERVICE_EVENTS) &&
		column_has_type(cust, "id", UUIDOID) &&
		column_has_type(bins, "customer_id", UUIDOID) &&
		column_has_type(events, "customer_id", UUIDOID) &&
		column_has_type(events, "created_at", TIMESTAMPTZOID);
	maint.generation = gen;
}

/*
 * Run maintenance SQL as the owner of the maintained tables, with operators
 * and functions from pg_catalog only.  Nothing of a table owner's runs: no
 * cast, no operator of theirs; triggers on our own tables are ours.
 */
typedef struct WmAsOwner
{
	Oid			saved_user;
	int			saved_sec;
	int			nest;
} WmAsOwner;

static void
as_owner_begin(WmAsOwner *s)
{
	GetUserIdAndSecContext(&s->saved_user, &s->saved_sec);
	SetUserIdAndSecContext(maint.owner,
						   s->saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	s->nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* Millisecond queries: JIT compilation would cost more than they do. */
	(void) set_config_option("jit", "off",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

static void
as_owner_end(WmAsOwner *s)
{
	AtEOXact_GUC(true, s->nest);
	SetUserIdAndSecContext(s->saved_user, s->saved_sec);
}

/*
 * The statements a writer runs, prepared once per configuration generation
 * (a pickup's two statements would otherwise spend most of their trigger
 * time parsing and planning).  Plans that name transition tables are kept
 * like PL/pgSQL keeps them: the names resolve again at each execution.
 */
typedef enum WmKept
{
	WM_KEPT_CUSTOMER = 0,
	WM_KEPT_FOLD_BINS,
	WM_KEPT_FOLD_DUE,
	WM_KEPT_FOLD_EVENTS,
	WM_KEPT_FOREIGN_KEYS,
	WM_KEPT_LOCK_CUSTOMER,
	WM_KEPT_LIVENESS,
	WM_KEPT_LIVENESS_ONE,
	WM_KEPT_COUNT
} WmKept;

static SPIPlanPtr kept[WM_KEPT_COUNT];

static void
forget_kept(void)
{
	int			i;

	for (i = 0; i < WM_KEPT_COUNT; i++)
		if (kept[i])
		{
			SPI_freeplan(kept[i]);
			kept[i] = NULL;
		}
}

static int
exec_plan_latest(SPIPlanPtr plan, Datum *args)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	int			rc;

	rc = SPI_execute_snapshot(plan, args, NULL, snap, InvalidSnapshot, false, false, 0);
	UnregisterSnapshot(snap);
	if (rc < 0)
		elog(ERROR, "SPI failed in wm_perf maintenance: %s", SPI_result_code_string(rc));
	return rc;
}

/* Execute sql (already connected to SPI) under the latest snapshot. */
static int
exec_latest(const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);
	int			rc;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	rc = exec_plan_latest(plan, args);
	SPI_freeplan(plan);
	return rc;
}

/* The same through the kept plan of slot (sql is used only to prepare it). */
static int
exec_kept(int slot, const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	if (kept[slot] == NULL)
	{
		/*
		 * Generic plans: the plan cache would otherwise plan every execution
		 * of "id = ANY ($1)" afresh, a custom plan for one element always
		 * looking cheaper than the generic one's guess of ten.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		kept[slot] = plan;
	}
	return exec_plan_latest(kept[slot], args);
}

static void
advisory_lock(void)
{
	int			rc = SPI_execute(psprintf(WM_ADVISORY_SQL, "pg_advisory_xact_lock"), false, 0);

	wm_spi_check(rc, SPI_OK_SELECT, "taking the wm_perf maintenance lock");
}

static bool
advisory_try_lock(void)
{
	bool		isnull;
	int			rc = SPI_execute(psprintf(WM_ADVISORY_SQL, "pg_try_advisory_xact_lock"), false, 0);

	wm_spi_check(rc, SPI_OK_SELECT, "trying the wm_perf maintenance lock");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Fold: one row per group, zero groups and old event buckets dropped.
 * Connected to SPI, as the owner, holding the advisory lock.  Returns the
 * number of rows removed.
 */
/* One table's fold statement; returns the rows it removed. */
static int64
fold_table(int slot, const char *sql, const char *what)
{
	bool		isnull;
	int64		deleted;
	int64		inserted;
	int			rc = exec_kept(slot, sql, 0, NULL, NULL);

	wm_spi_check(rc, SPI_OK_SELECT, what);
	deleted = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	inserted = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return deleted - inserted;
}

/* Fold the tables a statement of table feeds (WM_TABLE_CUSTOMERS: all). */
static int64
fold_locked(WmTable table)
{
	const char *s = maint.schema;
	int64		removed = 0;
	StringInfoData sql;

	/*
	 * Only groups with more than one row (or nothing left) are rewritten:
	 * a fold reads the whole state but writes only what changed.
	 */
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH g AS (SELECT status, bin_type, material FROM %s.wm_agg_bins"
					 "  GROUP BY 1, 2, 3 HAVING count(*) > 1 OR (sum(n) = 0 AND sum(gps) = 0"
					 "  AND sum(sensor) = 0 AND sum(smart) = 0 AND sum(fill_sum) = 0 AND sum(fill_n) = 0"
					 "  AND sum(cap_sum) = 0 AND sum(cap_n) = 0 AND sum(need_fill) = 0)),"
					 " d AS (DELETE FROM %s.wm_agg_bins t USING g"
					 "  WHERE t.status IS NOT DISTINCT FROM g.status AND t.bin_type IS NOT DISTINCT FROM g.bin_type"
					 "  AND t.material IS NOT DISTINCT FROM g.material RETURNING t.*),"
					 " i AS (INSERT INTO %s.wm_agg_bins"
					 "  SELECT status, bin_type, material, sum(n), sum(gps), sum(sensor), sum(smart),"
					 "  sum(fill_sum), sum(fill_n), sum(cap_sum), sum(cap_n), sum(need_fill)"
					 "  FROM d GROUP BY 1, 2, 3"
					 "  HAVING sum(n) <> 0 OR sum(gps) <> 0 OR sum(sensor) <> 0 OR sum(smart) <> 0"
					 "   OR sum(fill_sum) <> 0 OR sum(fill_n) <> 0 OR sum(cap_sum) <> 0"
					 "   OR sum(cap_n) <> 0 OR sum(need_fill) <> 0 RETURNING 1)"
					 " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM i)",
					 s, s, s);
	if (table != WM_TABLE_SERVICE_EVENTS)
		removed += fold_table(WM_KEPT_FOLD_BINS, sql.data, "folding wm_agg_bins");

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH g AS (SELECT bin_type, material, due FROM %s.wm_agg_bins_due"
					 "  GROUP BY 1, 2, 3 HAVING count(*) > 1 OR sum(n) = 0),"
					 " d AS (DELETE FROM %s.wm_agg_bins_due t USING g"
					 "  WHERE t.bin_type IS NOT DISTINCT FROM g.bin_type"
					 "  AND t.material IS NOT DISTINCT FROM g.material AND t.due = g.due RETURNING t.*),"
					 " i AS (INSERT INTO %s.wm_agg_bins_due"
					 "  SELECT bin_type, material, due, sum(n) FROM d GROUP BY 1, 2, 3"
					 "  HAVING sum(n) <> 0 RETURNING 1)"
					 " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM i)",
					 s, s, s);
	if (table != WM_TABLE_SERVICE_EVENTS)
		removed += fold_table(WM_KEPT_FOLD_DUE, sql.data, "folding wm_agg_bins_due");

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH g AS (SELECT event_type, hour FROM %s.wm_agg_events"
					 "  GROUP BY 1, 2 HAVING count(*) > 1 OR sum(n) = 0"
					 "  OR hour < pg_catalog.now() - interval '%d days'),"
					 " d AS (DELETE FROM %s.wm_agg_events t USING g"
					 "  WHERE t.event_type IS NOT DISTINCT FROM g.event_type AND t.hour = g.hour RETURNING t.*),"
					 " i AS (INSERT INTO %s.wm_agg_events"
					 "  SELECT event_type, hour, sum(n) FROM d"
					 "  WHERE hour >= pg_catalog.now() - interval '%d days'"
					 "  GROUP BY 1, 2 HAVING sum(n) <> 0 RETURNING 1)"
					 " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM i)",
					 s, WM_EVENT_DAYS, s, s, WM_EVENT_DAYS);
	if (table != WM_TABLE_BINS)
		removed += fold_table(WM_KEPT_FOLD_EVENTS, sql.data, "folding wm_agg_events");
	pfree(sql.data);
	return removed;
}

/*
 * The three tables and their partitions and inheritance children, each as
 * "root:oid:relkind:relfilenode:maintenance triggers enabled ALWAYS".  The
 * relations the writers' triggers must cover, in a query of columns root,
 * relid, relkind, relfilenode, triggers.
 */
static char *
covered_sql(void)
{
	return psprintf("WITH RECURSIVE d(root, relid) AS ("
					" SELECT c.oid, c.oid FROM pg_catalog.pg_class c WHERE c.oid IN (%u, %u, %u)"
					" UNION SELECT d.root, i.inhrelid FROM pg_catalog.pg_inherits i"
					"  JOIN d ON i.inhparent = d.relid)"
					" SELECT d.root, c.oid AS relid, c.relkind, c.relfilenode,"
					"  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_trigger g"
					"   WHERE g.tgrelid = c.oid AND g.tgenabled = 'A'"
					"   AND g.tgfoid = '%s._wm_maintain()'::pg_catalog.regprocedure) AS triggers"
					" FROM d JOIN pg_catalog.pg_class c ON c.oid = d.relid",
					wm_table_oid(WM_TABLE_BINS), wm_table_oid(WM_TABLE_CUSTOMERS),
					wm_table_oid(WM_TABLE_SERVICE_EVENTS), maint.schema);
}

/*
 * Part of the signature: creating, attaching, detaching, dropping or
 * rewriting a partition or child, or dropping or disabling a maintenance
 * trigger (ALTER TABLE ... DISABLE TRIGGER), drops the state.
 */
static char *
covered_signature_sql(void)
{
	return psprintf("SELECT pg_catalog.string_agg(pg_catalog.concat_ws(':', x.root, x.relid,"
					" x.relkind, x.relfilenode, x.triggers), ',' ORDER BY x.root, x.relid)"
					" FROM (%s) x", covered_sql());
}

/*
 * Can the state be kept for the tables as they are now?  Each of the three
 * tables has its four maintenance triggers enabled ALWAYS, and so does
 * every partition or child of bins and service_events (a statement naming
 * one fires only its own statement triggers), each a plain or partitioned
 * table; customers has none (its row triggers are not made on them).
 * Connected to SPI.
 */
static bool
triggers_complete(void)
{
	bool		isnull;
	Datum		ok;
	int			rc;
	char	   *sql;

	sql = psprintf("SELECT pg_catalog.bool_and(x.triggers = 4 AND x.relkind IN ('r', 'p')"
				   " AND (x.root = x.relid OR x.root <> %u)) FROM (%s) x",
				   wm_table_oid(WM_TABLE_CUSTOMERS), covered_sql());
	rc = exec_latest(sql, 0, NULL, NULL);
	wm_spi_check(rc, SPI_OK_SELECT, "checking the maintenance triggers");
	ok = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	pfree(sql);
	return !isnull && DatumGetBool(ok);
}

/*
 * What the maintained state depends on besides the rows: the columns the
 * statistics read (name and type), the labels of their enum types, and the
 * tables' storage (a rewrite: ALTER COLUMN ... TYPE ... USING).  DDL that
 * leaves it unchanged (ADD COLUMN, SET (...), ENABLE TRIGGER, a restore's
 * constraints) leaves the state alone.
 */
static char *
signature_sql(void)
{
	return psprintf("SELECT pg_catalog.concat_ws('|', (%s),"
					" (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(':', c.oid, c.relfilenode), ','"
					"   ORDER BY c.oid) FROM pg_catalog.pg_class c WHERE c.oid IN (%u, %u, %u)),"
					" (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(':', a.attrelid, a.attname, a.atttypid), ','"
					"   ORDER BY a.attrelid, a.attname) FROM pg_catalog.pg_attribute a"
					"   WHERE a.attrelid IN (%u, %u, %u) AND a.attnum > 0 AND NOT a.attisdropped"
					"   AND a.attname IN ('id', 'customer_id', 'status', 'bin_type', 'material',"
					"    'gps_enabled', 'sensor_enabled', 'fill_level_percent', 'capacity_cubic_yards',"
					"    'next_service_date', 'deleted_at', 'event_type', 'created_at')),"
					" (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(':', e.enumtypid, e.enumlabel), ','"
					"   ORDER BY e.enumtypid, e.enumsortorder) FROM pg_catalog.pg_enum e"
					"   WHERE e.enumtypid IN (SELECT a.atttypid FROM pg_catalog.pg_attribute a"
					"    WHERE a.attrelid IN (%u, %u, %u) AND a.attnum > 0)))",
					covered_signature_sql(),
					wm_table_oid(WM_TABLE_BINS), wm_table_oid(WM_TABLE_CUSTOMERS),
					wm_table_oid(WM_TABLE_SERVICE_EVENTS),
					wm_table_oid(WM_TABLE_BINS), wm_table_oid(WM_TABLE_CUSTOMERS),
					wm_table_oid(WM_TABLE_SERVICE_EVENTS),
					wm_table_oid(WM_TABLE_BINS), wm_table_oid(WM_TABLE_CUSTOMERS),
					wm_table_oid(WM_TABLE_SERVICE_EVENTS));
}

/*
 * Rebuild from the tables, in one statement under one snapshot: the deltas
 * that snapshot sees go, and the full aggregates of that snapshot come in.
 * A writer that commits later keeps its delta (its change is not in the
 * snapshot); one that committed earlier is in both and loses its delta.
 * Connected to SPI, as the owner, holding the advisory lock.  Without
 * eligible tables the state row goes (calls compute in full).
 */
static void
rebuild_locked(void)
{
	const char *s = maint.schema;
	StringInfoData sql;
	int			rc;

	initStringInfo(&sql);
	if (!maint.eligible || !triggers_complete())
	{
		appendStringInfo(&sql,
						 "WITH a AS (DELETE FROM %s.wm_agg_bins), b AS (DELETE FROM %s.wm_agg_bins_due),"
						 " c AS (DELETE FROM %s.wm_agg_events) DELETE FROM %s.wm_agg_state",
						 s, s, s, s);
		(void) exec_latest(sql.data, 0, NULL, NULL);
		pfree(sql.data);
		return;
	}
	appendStringInfo(&sql,
					 "WITH x1 AS (DELETE FROM %s.wm_agg_bins), x2 AS (DELETE FROM %s.wm_agg_bins_due),"
					 " x3 AS (DELETE FROM %s.wm_agg_events),"
					 " d AS (INSERT INTO %s.wm_agg_bins_due " DUE_SELECT "FROM (" DUE_INNER
					 "  FROM (SELECT 1 AS wm_s, " BINS_COLS " FROM %s t JOIN %s c ON c.id = t.customer_id"
					 "        WHERE t.deleted_at IS NULL AND c.deleted_at IS NULL) b" DUE_INNER_WHERE ") g"
					 DUE_WHERE "),"
					 " e AS (INSERT INTO %s.wm_agg_events " EVENTS_SELECT "FROM (" EVENTS_INNER
					 "  FROM (SELECT 1 AS wm_s, " EVENTS_COLS " FROM %s t JOIN %s c ON c.id = t.customer_id"
					 "        WHERE t.deleted_at IS NULL AND c.deleted_at IS NULL"
					 "          AND t.created_at >= pg_catalog.now() - interval '%d days') e" EVENTS_GROUP ") g),"
					 " st AS (INSERT INTO %s.wm_agg_state (id, bins, customers, service_events, built_at, signature)"
					 "  VALUES (1, %u, %u, %u, pg_catalog.now(), (%s)) ON CONFLICT (id) DO UPDATE"
					 "  SET bins = EXCLUDED.bins, customers = EXCLUDED.customers,"
					 "  service_events = EXCLUDED.service_events, built_at = EXCLUDED.built_at,"
					 "  signature = EXCLUDED.signature)"
					 " INSERT INTO %s.wm_agg_bins " BINS_SELECT "FROM (" BINS_INNER
					 "  FROM (SELECT 1 AS wm_s, " BINS_COLS " FROM %s t JOIN %s c ON c.id = t.customer_id"
					 "        WHERE t.deleted_at IS NULL AND c.deleted_at IS NULL) b" BINS_INNER_GROUP ") g",
					 s, s, s,
					 s, wm_table_qualname(WM_TABLE_BINS), wm_table_qualname(WM_TABLE_CUSTOMERS),
					 s, wm_table_qualname(WM_TABLE_SERVICE_EVENTS), wm_table_qualname(WM_TABLE_CUSTOMERS),
					 WM_EVENT_DAYS,
					 s, wm_table_oid(WM_TABLE_BINS), wm_table_oid(WM_TABLE_CUSTOMERS),
					 wm_table_oid(WM_TABLE_SERVICE_EVENTS), signature_sql(),
					 s, wm_table_qualname(WM_TABLE_BINS), wm_table_qualname(WM_TABLE_CUSTOMERS));
	rc = exec_latest(sql.data, 0, NULL, NULL);
	wm_spi_check(rc, SPI_OK_INSERT, "rebuilding the maintained statistics");
	pfree(sql.data);
}

/* Has the maintenance been set up (a state row, or triggers)? */
static bool
set_up(void)
{
	StringInfoData sql;
	bool		isnull;
	int			rc;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT EXISTS (SELECT 1 FROM %s.wm_agg_state)"
					 " OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger"
					 "  WHERE tgfoid = '%s._wm_maintain()'::pg_catalog.regprocedure)",
					 maint.schema, maint.schema);
	rc = SPI_execute(sql.data, true, 0);
	wm_spi_check(rc, SPI_OK_SELECT, "looking for the maintained statistics");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * DDL on a table the statistics read: if it changed what they read (see
 * signature_sql), the state goes (calls compute in full), and the next
 * writer rebuilds it.  Rebuilding here would cost a
 * full computation per command: a restore runs dozens of ALTER TABLEs on
 * the attached tables.  Not connected to SPI.
 */
void
wm_maintained_invalidate(void)
{
	WmAsOwner	s;
	int			rc;

	resolve();
	if (!OidIsValid(maint.owner))
		return;
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	as_owner_begin(&s);
	if (maint.eligible)
		(void) exec_latest(psprintf("DELETE FROM %s.wm_agg_state WHERE signature IS DISTINCT FROM (%s)",
									maint.schema, signature_sql()), 0, NULL, NULL);
	else
		(void) exec_latest(psprintf("DELETE FROM %s.wm_agg_state", maint.schema), 0, NULL, NULL);
	as_owner_end(&s);
	SPI_finish();
}

/*
 * Rebuild if set up (attach, wm_cache_flush()).  Not connected to SPI.
 */
void
wm_maintained_rebuild_if_set_up(void)
{
	WmAsOwner	s;
	int			rc;

	resolve();
	if (!OidIsValid(maint.owner))
		return;
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	as_owner_begin(&s);
	if (set_up())
	{
		advisory_lock();
		rebuild_locked();
	}
	as_owner_end(&s);
	SPI_finish();
}

PG_FUNCTION_INFO_V1(wm_statistics_rebuild);
Datum
wm_statistics_rebuild(PG_FUNCTION_ARGS)
{
	WmAsOwner	s;
	int			rc;

	wm_config_refresh();
	resolve();
	if (!OidIsValid(maint.owner))
		PG_RETURN_BOOL(false);
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	as_owner_begin(&s);
	advisory_lock();
	rebuild_locked();
	as_owner_end(&s);
	SPI_finish();
	PG_RETURN_BOOL(maint.eligible);
}

PG_FUNCTION_INFO_V1(wm_statistics_compact);
Datum
wm_statistics_compact(PG_FUNCTION_ARGS)
{
	WmAsOwner	s;
	int64		n;
	int			rc;

	wm_config_refresh();
	resolve();
	if (!OidIsValid(maint.owner))
		PG_RETURN_INT64(0);
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	as_owner_begin(&s);
	advisory_lock();
	n = fold_locked(WM_TABLE_CUSTOMERS);
	as_owner_end(&s);
	SPI_finish();
	PG_RETURN_INT64(n);
}

static int64
transition_rows(TriggerData *td)
{
	int64		n = 0;

	if (td->tg_newtable)
		n += tuplestore_tuple_count(td->tg_newtable);
	if (td->tg_oldtable)
		n += tuplestore_tuple_count(td->tg_oldtable);
	return n;
}

/*
 * The delta of one statement, aggregated in C from its transition tables.
 *
 * A pickup's statement holds one or two rows, a bulk UPDATE hundreds of
 * thousands: SQL over the transition tables cost an executor start of a
 * plan with CTEs, a join and two groupings per pickup, and per row a few
 * executor nodes.  Here the rows are read twice from the tuplestores: once
 * for the customers they name (whose liveness one query reads, and locks),
 * once to add each row that counts to its group.  Then one INSERT per
 * group whose delta is not all zeros.  The sums are those of BINS_SELECT,
 * DUE_SELECT and EVENTS_SELECT (the rebuild's and the customers' SQL):
 * wm_statistics_verify() and the regression tests compare the two.
 */

/* A sum of signed values: int64 while it fits, numeric after. */
typedef struct WmSum
{
	int64		i;
	Numeric		num;			/* NULL while the sum fits in i */
} WmSum;

/* One group's key and sums (labels: NULL for SQL NULL). */
typedef struct WmGroup
{
	uint32		hash;
	int			keylen;
	char	   *key;			/* encoded, see group_key() */
	text	   *label[3];
	int64		extra;			/* hour (events) or date (due) */
	int64		n,
				gps,
				sensor,
				smart,
				fill_n,
				cap_n,
				need_fill;
	WmSum		fill_sum,
				cap_sum;
} WmGroup;

typedef struct WmGroups
{
	WmGroup   **slots;
	int			size;			/* a power of 2 */
	int			used;
} WmGroups;

/* Output of one enum value, remembered for the statement. */
typedef struct WmEnumLabel
{
	Oid			value;
	text	   *label;
} WmEnumLabel;

typedef struct WmDelta
{
	MemoryContext cxt;			/* everything of the statement */
	MemoryContext row_cxt;		/* reset after every row */
	TupleTableSlot *slot;
	int			att[10];		/* attribute numbers, see delta_columns */
	Oid			typ[10];
	HTAB	   *customers;		/* pg_uuid_t -> WmCustomer */
	WmGroups	bins,
				due,
				events;
	WmEnumLabel enums[64];
	int			nenums;
	StringInfoData key;
} WmDelta;

typedef struct WmCustomer
{
	pg_uuid_t	id;
	char		state;			/* 0 not found, 1 alive, 2 soft-deleted */
} WmCustomer;

/* delta_columns[table][k]: the columns a statistic reads. */
enum
{
	D_CUSTOMER, D_DELETED, D_STATUS, D_BIN_TYPE, D_MATERIAL, D_GPS, D_SENSOR,
	D_FILL, D_CAPACITY, D_NEXT_SERVICE,
	D_EVENT_TYPE = D_STATUS, D_CREATED = D_BIN_TYPE
};
static const char *const delta_columns[2][10] = {
	{"customer_id", "deleted_at", "status", "bin_type", "material", "gps_enabled",
	"sensor_enabled", "fill_level_percent", "capacity_cubic_yards", "next_service_date"},
	{"customer_id", "deleted_at", "event_type", "created_at", NULL}
};

/*
 * sum += sign * v.  The operation runs in the caller's (row) context, where
 * it may detoast; only the result is copied into the statement's.
 */
static void
sum_add_numeric(WmSum *sum, int sign, Numeric v, WmDelta *d)
{
	Numeric		prev = sum->num;
	Numeric		res;
	MemoryContext old;

	if (prev == NULL)
	{
		old = MemoryContextSwitchTo(d->cxt);
		prev = int64_to_numeric(sum->i);
		MemoryContextSwitchTo(old);
	}
	res = DatumGetNumeric(DirectFunctionCall2(sign > 0 ? numeric_add : numeric_sub,
											  NumericGetDatum(prev), NumericGetDatum(v)));
	sum->num = MemoryContextAlloc(d->cxt, VARSIZE(res));
	memcpy(sum->num, res, VARSIZE(res));
	pfree(prev);
}

static void
sum_add_int(WmSum *sum, int sign, int64 v, WmDelta *d)
{
	int64		r;

	if (sum->num == NULL &&
		!(sign > 0 ? pg_add_s64_overflow(sum->i, v, &r) : pg_sub_s64_overflow(sum->i, v, &r)))
	{
		sum->i = r;
		return;
	}
	sum_add_numeric(sum, sign, int64_to_numeric(v), d);
}

static Datum
sum_value(WmSum *sum)
{
	return NumericGetDatum(sum->num ? sum->num : int64_to_numeric(sum->i));
}

static bool
sum_nonzero(WmSum *sum)
{
	if (sum->num == NULL)
		return sum->i != 0;
	return DatumGetBool(DirectFunctionCall2(numeric_ne, NumericGetDatum(sum->num),
											NumericGetDatum(int64_to_numeric(0))));
}

/* An integer column's value (int2, int4 or int8, as attach checked). */
static int64
int_value(Datum v, Oid typid)
{
	if (typid == INT2OID)
		return DatumGetInt16(v);
	if (typid == INT4OID)
		return DatumGetInt32(v);
	return DatumGetInt64(v);
}

/*
 * A label column's text as format('%s') gives it: an enum's label (output
 * once per value and statement), or the text itself (text, varchar and
 * bpchar output their bytes).  The result may live in the row context.
 */
static text *
label_of(WmDelta *d, int k, bool *isnull)
{
	Datum		v = slot_getattr(d->slot, d->att[k], isnull);
	Oid			typid = d->typ[k];
	int			i;

	if (*isnull)
		return NULL;
	if (typid == TEXTOID || typid == VARCHAROID || typid == BPCHAROID)
		return DatumGetTextPP(v);
	for (i = 0; i < d->nenums; i++)
		if (d->enums[i].value == DatumGetObjectId(v))
			return d->enums[i].label;
	{
		/*
		 * Output in the caller's (row) context; only a label remembered
		 * goes into the statement's: past lengthof(enums) values, every row
		 * would otherwise leave its label there.
		 */
		char	   *out = DatumGetCString(DirectFunctionCall1(enum_out, v));
		text	   *t;

		if (d->nenums >= (int) lengthof(d->enums))
			return cstring_to_text(out);
		t = (text *) MemoryContextAlloc(d->cxt, VARHDRSZ + strlen(out));
		SET_VARSIZE(t, VARHDRSZ + strlen(out));
		memcpy(VARDATA(t), out, strlen(out));
		pfree(out);
		d->enums[d->nenums].value = DatumGetObjectId(v);
		d->enums[d->nenums].label = t;
		d->nenums++;
		return t;
	}
}

/* Encode a label (or NULL) into the key buffer. */
static void
key_label(StringInfo key, text *t)
{
	if (t == NULL)
		appendStringInfoChar(key, '\0');
	else
	{
		int32		len = VARSIZE_ANY_EXHDR(t);

		appendStringInfoChar(key, '\1');
		appendBinaryStringInfo(key, (char *) &len, sizeof(len));
		appendBinaryStringInfo(key, VARDATA_ANY(t), len);
	}
}

/* The group of the key in d->key plus extra (made with labels if new). */
static WmGroup *
group_of(WmDelta *d, WmGroups *g, text **labels, int nlabels, int64 extra)
{
	uint32		h;
	int			i;
	int			pos;
	WmGroup    *e;

	appendBinaryStringInfo(&d->key, (char *) &extra, sizeof(extra));
	h = hash_bytes((const unsigned char *) d->key.data, d->key.len);
	if (g->slots == NULL || g->used * 2 >= g->size)
	{
		int			size = g->slots ? g->size * 2 : 64;
		WmGroup   **slots = MemoryContextAllocZero(d->cxt, size * sizeof(WmGroup *));

		for (i = 0; g->slots && i < g->size; i++)
			if (g->slots[i])
			{
				int			j = g->slots[i]->hash & (size - 1);

				while (slots[j])
					j = (j + 1) & (size - 1);
				slots[j] = g->slots[i];
			}
		if (g->slots)
			pfree(g->slots);
		g->slots = slots;
		g->size = size;
	}
	for (pos = h & (g->size - 1); (e = g->slots[pos]) != NULL; pos = (pos + 1) & (g->size - 1))
		if (e->hash == h && e->keylen == d->key.len &&
			memcmp(e->key, d->key.data, e->keylen) == 0)
			return e;
	e = MemoryContextAllocZero(d->cxt, sizeof(WmGroup));
	e->hash = h;
	e->keylen = d->key.len;
	e->key = MemoryContextAlloc(d->cxt, d->key.len);
	memcpy(e->key, d->key.data, d->key.len);
	for (i = 0; i < nlabels; i++)
		if (labels[i])
		{
			int			len = VARSIZE_ANY_EXHDR(labels[i]);
			text	   *t = MemoryContextAlloc(d->cxt, VARHDRSZ + len);

			SET_VARSIZE(t, VARHDRSZ + len);
			memcpy(VARDATA(t), VARDATA_ANY(labels[i]), len);
			e->label[i] = t;
		}
	e->extra = extra;
	g->slots[pos] = e;
	g->used++;
	return e;
}

/* Is t the label s (a bpchar label without its trailing spaces)? */
static bool
label_is(text *t, const char *s, bool bpchar)
{
	int			len = strlen(s);
	int			tlen;

	if (t == NULL)
		return false;
	tlen = VARSIZE_ANY_EXHDR(t);
	if (bpchar)
		tlen = bpchartruelen(VARDATA_ANY(t), tlen);
	return tlen == len && memcmp(VARDATA_ANY(t), s, len) == 0;
}

/*
 * Read a transition table from its start through a read pointer of our own
 * (as a named tuplestore scan does): other triggers read the same store.
 */
static void
delta_rescan(Tuplestorestate *ts)
{
	int			ptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(ts, ptr);
	tuplestore_rescan(ts);
}

/*
 * The customers the counting rows name, with their liveness: one query for
 * all of them, FOR KEY SHARE unless the table is locked (big).
 */
static void
delta_customers(WmDelta *d, TriggerData *td, bool big)
{
	Tuplestorestate *stores[2] = {td->tg_newtable, td->tg_oldtable};
	HASH_SEQ_STATUS seq;
	WmCustomer *c;
	Datum	   *ids;
	int			nids = 0;
	int			k;
	int			rc;
	uint64		i;

	for (k = 0; k < 2; k++)
	{
		if (stores[k] == NULL)
			continue;
		delta_rescan(stores[k]);
		while (tuplestore_gettupleslot(stores[k], true, false, d->slot))
		{
			bool		isnull;
			Datum		v;

			(void) slot_getattr(d->slot, d->att[D_DELETED], &isnull);
			if (!isnull)
				continue;
			v = slot_getattr(d->slot, d->att[D_CUSTOMER], &isnull);
			if (isnull)
				continue;
			(void) hash_search(d->customers, DatumGetUUIDP(v), HASH_ENTER, NULL);
		}
	}
	if (hash_get_num_entries(d->customers) == 0)
		return;

	ids = MemoryContextAlloc(d->cxt, hash_get_num_entries(d->customers) * sizeof(Datum));
	hash_seq_init(&seq, d->customers);
	while ((c = hash_seq_search(&seq)) != NULL)
	{
		c->state = 0;
		ids[nids++] = UUIDPGetDatum(&c->id);
	}
	if (nids == 1 && !big)
	{
		/* a pickup: one customer, one index lookup */
		Oid			types[1] = {UUIDOID};
		char	   *sql = psprintf("SELECT c.id, c.deleted_at IS NULL FROM %s c"
								   " WHERE c.id OPERATOR(pg_catalog.=) $1 FOR KEY SHARE OF c",
								   wm_table_qualname(WM_TABLE_CUSTOMERS));

		rc = exec_kept(WM_KEPT_LIVENESS_ONE, sql, 1, types, ids);
		wm_spi_check(rc, SPI_OK_SELECT, "reading the customer's liveness");
		pfree(sql);
	}
	else
	{
		Oid			types[1] = {UUIDARRAYOID};
		Datum		args[1];
		char	   *sql;

		args[0] = PointerGetDatum(construct_array(ids, nids, UUIDOID, UUID_LEN, false,
												  TYPALIGN_CHAR));
		sql = psprintf("SELECT c.id, c.deleted_at IS NULL FROM %s c"
					   " WHERE c.id OPERATOR(pg_catalog.=) ANY ($1)%s",
					   wm_table_qualname(WM_TABLE_CUSTOMERS), big ? "" : " FOR KEY SHARE OF c");
		if (big)
			rc = exec_latest(sql, 1, types, args);
		else
			rc = exec_kept(WM_KEPT_LIVENESS, sql, 1, types, args);
		wm_spi_check(rc, SPI_OK_SELECT, "reading the customers' liveness");
		pfree(sql);
	}
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		Datum		alive = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

		c = hash_search(d->customers, DatumGetUUIDP(id), HASH_FIND, NULL);
		if (c)
			c->state = DatumGetBool(alive) ? 1 : 2;
	}
	SPI_freetuptable(SPI_tuptable);
}

/* Add the row in d->slot, with sign, to the bins and due groups. */
static void
delta_bin_row(WmDelta *d, int sign)
{
	text	   *labels[3];
	bool		isnull[3];
	bool		gps,
				sensor,
				fill_null,
				cap_null,
				date_null,
				n;
	bool		active,
				full;
	int64		fill = 0;
	Datum		cap;
	Datum		date;
	WmGroup    *g;
	int			k;

	for (k = 0; k < 3; k++)
		labels[k] = label_of(d, D_STATUS + k, &isnull[k]);
	gps = DatumGetBool(slot_getattr(d->slot, d->att[D_GPS], &n));
	gps = gps && !n;
	sensor = DatumGetBool(slot_getattr(d->slot, d->att[D_SENSOR], &n));
	sensor = sensor && !n;
	{
		Datum		v = slot_getattr(d->slot, d->att[D_FILL], &fill_null);

		if (!fill_null)
			fill = int_value(v, d->typ[D_FILL]);
	}
	cap = slot_getattr(d->slot, d->att[D_CAPACITY], &cap_null);
	date = slot_getattr(d->slot, d->att[D_NEXT_SERVICE], &date_null);
	active = label_is(labels[0], "active", d->typ[D_STATUS] == BPCHAROID);
	full = !fill_null && fill >= 80;

	resetStringInfo(&d->key);
	for (k = 0; k < 3; k++)
		key_label(&d->key, labels[k]);
	g = group_of(d, &d->bins, labels, 3, 0);
	g->n += sign;
	if (gps)
		g->gps += sign;
	if (sensor)
		g->sensor += sign;
	if (gps || sensor)
		g->smart += sign;
	if (!fill_null)
	{
		sum_add_int(&g->fill_sum, sign, fill, d);
		g->fill_n += sign;
	}
	if (!cap_null)
	{
		if (d->typ[D_CAPACITY] == NUMERICOID)
			sum_add_numeric(&g->cap_sum, sign, DatumGetNumeric(cap), d);
		else
			sum_add_int(&g->cap_sum, sign, int_value(cap, d->typ[D_CAPACITY]), d);
		g->cap_n += sign;
	}
	if (active && full)
		g->need_fill += sign;

	/* Active, not already due by its fill level, with a service date. */
	if (active && !full && !date_null)
	{
		resetStringInfo(&d->key);
		key_label(&d->key, labels[1]);
		key_label(&d->key, labels[2]);
		g = group_of(d, &d->due, labels + 1, 2, DatumGetDateADT(date));
		g->n += sign;
	}
}

/* Add the row in d->slot, with sign, to the event groups. */
static void
delta_event_row(WmDelta *d, int sign)
{
	bool		isnull;
	text	   *label = label_of(d, D_EVENT_TYPE, &isnull);
	Datum		v = slot_getattr(d->slot, d->att[D_CREATED], &isnull);
	TimestampTz ts;
	WmGroup    *g;

	if (isnull)
		return;
	/* date_trunc('hour', created_at, 'UTC'): the hour at or below, in UTC */
	ts = DatumGetTimestampTz(v);
	if (!TIMESTAMP_NOT_FINITE(ts))
	{
		int64		h = ts / USECS_PER_HOUR;

		if (ts % USECS_PER_HOUR < 0)
			h--;
		ts = h * USECS_PER_HOUR;
	}
	resetStringInfo(&d->key);
	key_label(&d->key, label);
	g = group_of(d, &d->events, &label, 1, ts);
	g->n += sign;
}

/*
 * Insert one delta row into a maintained table directly through the table
 * AM: the tables are wm_perf's own (no index, trigger, rule, policy or
 * constraint but NOT NULL, which the sums satisfy), so an executor for an
 * INSERT per group would only cost a pickup time.  The row is WAL-logged and
 * MVCC-visible like any insert of this transaction's current command.
 */
typedef struct WmAppender
{
	Oid			relid;
	int			natts;
	Relation	rel;			/* opened at the first row */
	TupleTableSlot *slot;
} WmAppender;

static void
delta_insert(WmAppender *ap, Datum *values, bool *isnull)
{
	if (ap->rel == NULL)
	{
		ap->rel = table_open(ap->relid, RowExclusiveLock);
		if (RelationGetDescr(ap->rel)->natts != ap->natts)
			elog(ERROR, "wm_perf: %s has %d columns, expected %d",
				 RelationGetRelationName(ap->rel), RelationGetDescr(ap->rel)->natts, ap->natts);
		ap->slot = table_slot_create(ap->rel, NULL);
	}
	ExecClearTuple(ap->slot);
	memcpy(ap->slot->tts_values, values, ap->natts * sizeof(Datum));
	memcpy(ap->slot->tts_isnull, isnull, ap->natts * sizeof(bool));
	ExecStoreVirtualTuple(ap->slot);
	simple_table_tuple_insert(ap->rel, ap->slot);
}

static void
delta_insert_done(WmAppender *ap)
{
	if (ap->rel == NULL)
		return;
	ExecDropSingleTupleTableSlot(ap->slot);
	table_close(ap->rel, NoLock);
}

/* The rows of the groups whose delta is not all zeros. */
static void
delta_store(WmDelta *d, WmTable table)
{
	WmAppender	bins = {maint.agg_bins, 12};
	WmAppender	due = {maint.agg_due, 4};
	WmAppender	events = {maint.agg_events, 3};
	int			i;
	int			k;

	for (i = 0; table == WM_TABLE_BINS && i < d->bins.size; i++)
	{
		WmGroup    *g = d->bins.slots[i];
		Datum		values[12];
		bool		isnull[12] = {false};

		if (g == NULL || !(g->n || g->gps || g->sensor || g->smart || g->fill_n ||
						   g->cap_n || g->need_fill || sum_nonzero(&g->fill_sum) ||
						   sum_nonzero(&g->cap_sum)))
			continue;
		for (k = 0; k < 3; k++)
		{
			values[k] = PointerGetDatum(g->label[k]);
			isnull[k] = g->label[k] == NULL;
		}
		values[3] = Int64GetDatum(g->n);
		values[4] = Int64GetDatum(g->gps);
		values[5] = Int64GetDatum(g->sensor);
		values[6] = Int64GetDatum(g->smart);
		values[7] = sum_value(&g->fill_sum);
		values[8] = Int64GetDatum(g->fill_n);
		values[9] = sum_value(&g->cap_sum);
		values[10] = Int64GetDatum(g->cap_n);
		values[11] = Int64GetDatum(g->need_fill);
		delta_insert(&bins, values, isnull);
	}
	for (i = 0; table == WM_TABLE_BINS && i < d->due.size; i++)
	{
		WmGroup    *g = d->due.slots[i];
		Datum		values[4];
		bool		isnull[4] = {false};

		if (g == NULL || g->n == 0)
			continue;
		for (k = 0; k < 2; k++)
		{
			values[k] = PointerGetDatum(g->label[k]);
			isnull[k] = g->label[k] == NULL;
		}
		values[2] = DateADTGetDatum((DateADT) g->extra);
		values[3] = Int64GetDatum(g->n);
		delta_insert(&due, values, isnull);
	}
	for (i = 0; table == WM_TABLE_SERVICE_EVENTS && i < d->events.size; i++)
	{
		WmGroup    *g = d->events.slots[i];
		Datum		values[3];
		bool		isnull[3] = {false};

		if (g == NULL || g->n == 0)
			continue;
		values[0] = PointerGetDatum(g->label[0]);
		isnull[0] = g->label[0] == NULL;
		values[1] = TimestampTzGetDatum((TimestampTz) g->extra);
		values[2] = Int64GetDatum(g->n);
		delta_insert(&events, values, isnull);
	}
	delta_insert_done(&bins);
	delta_insert_done(&due);
	delta_insert_done(&events);
}

/* Aggregate the statement's transition tables and insert its deltas. */
static void
record_delta(TriggerData *td, WmTable table, bool big)
{
	Tuplestorestate *stores[2] = {td->tg_newtable, td->tg_oldtable};
	int			signs[2] = {1, -1};
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	const char *const *cols = delta_columns[table == WM_TABLE_BINS ? 0 : 1];
	MemoryContext old;
	WmDelta    *d;
	HASHCTL		ctl;
	int			k;

	d = palloc0(sizeof(WmDelta));
	d->cxt = AllocSetContextCreate(CurrentMemoryContext, "wm_perf delta",
								   ALLOCSET_DEFAULT_SIZES);
	d->row_cxt = AllocSetContextCreate(d->cxt, "wm_perf delta row",
									   ALLOCSET_SMALL_SIZES);
	for (k = 0; k < 10 && cols[k]; k++)
	{
		int			att = SPI_fnumber(desc, cols[k]);

		if (att <= 0)
			elog(ERROR, "wm_perf: column \"%s\" of %s not found", cols[k],
				 RelationGetRelationName(td->tg_relation));
		d->att[k] = att;
		d->typ[k] = TupleDescAttr(desc, att - 1)->atttypid;
	}
	old = MemoryContextSwitchTo(d->cxt);
	d->slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	initStringInfo(&d->key);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(pg_uuid_t);
	ctl.entrysize = sizeof(WmCustomer);
	ctl.hcxt = d->cxt;
	d->customers = hash_create("wm_perf delta customers", 256, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	MemoryContextSwitchTo(old);

	delta_customers(d, td, big);

	for (k = 0; k < 2; k++)
	{
		if (stores[k] == NULL)
			continue;
		delta_rescan(stores[k]);
		old = MemoryContextSwitchTo(d->row_cxt);
		while (tuplestore_gettupleslot(stores[k], true, false, d->slot))
		{
			bool		isnull;
			Datum		v;
			WmCustomer *c;

			(void) slot_getattr(d->slot, d->att[D_DELETED], &isnull);
			if (isnull)
			{
				v = slot_getattr(d->slot, d->att[D_CUSTOMER], &isnull);
				c = isnull ? NULL :
					hash_search(d->customers, DatumGetUUIDP(v), HASH_FIND, NULL);
				if (c && c->state == 1)
				{
					if (table == WM_TABLE_BINS)
						delta_bin_row(d, signs[k]);
					else
						delta_event_row(d, signs[k]);
				}
			}
			/* a tuple read back from disk was palloc'd in row_cxt */
			ExecClearTuple(d->slot);
			MemoryContextReset(d->row_cxt);
		}
		MemoryContextSwitchTo(old);
	}
	ExecDropSingleTupleTableSlot(d->slot);
	delta_store(d, table);
	MemoryContextDelete(d->cxt);
	pfree(d);
}

/*
 * Is there a state row (under the latest snapshot)?  Read straight from the
 * table, one row at most: an executor for it cost every writer statement
 * more than the lookup itself.
 */
static bool
state_exists(void)
{
	Relation	rel = table_open(maint.agg_state, AccessShareLock);
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TableScanDesc scan = table_beginscan(rel, snap, 0, NULL);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		found = table_scan_getnextslot(scan, ForwardScanDirection, slot);

	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return found;
}

/* The statement trigger on bins or service_events. */
static void
maintain_statement(TriggerData *td, WmTable table)
{
	const char *cust = wm_table_qualname(WM_TABLE_CUSTOMERS);
	bool		big;
	int			rc;

	/*
	 * No state row (a database restored by pg_dump, whose derived rows were
	 * not dumped, or DDL on the tables since): the first writer to get the
	 * lock rebuilds, this
	 * statement's rows included; the others record their deltas, which a
	 * rebuild whose snapshot does not see them keeps.
	 */
	if (!state_exists() && pending() == 0 && advisory_try_lock())
	{
		rebuild_locked();
		return;
	}

	/*
	 * The customers' liveness, read FOR KEY SHARE: that waits for a
	 * concurrent change of a customer's liveness to commit (or makes it
	 * wait), and returns the latest version.  A statement of a few rows
	 * locks its customers row by row; a big one locks the customers table
	 * in SHARE mode instead.
	 */
	big = transition_rows(td) > WM_BIG_STATEMENT_ROWS;
	if (big)
	{
		char	   *q = psprintf("LOCK TABLE %s IN SHARE MODE", cust);

		rc = SPI_execute(q, false, 0);
		wm_spi_check(rc, SPI_OK_UTILITY, "locking the customers table");
		pfree(q);
	}
	record_delta(td, table, big);

	/*
	 * Now and then a writer folds what its table feeds, if no one else is
	 * folding.
	 */
	if (XactIsoLevel == XACT_READ_COMMITTED &&
		pg_prng_uint64_range(&pg_global_prng_state, 1, WM_FOLD_ONE_IN) == 1 &&
		advisory_try_lock())
		(void) fold_locked(table);
}

/*
 * Do foreign keys from bins.customer_id and service_events.customer_id to
 * customers.id exist?  Then no bin or event can name a customer being
 * inserted (the key check cannot see it before its commit).
 */
static bool
customers_referenced(void)
{
	char	   *sql;
	bool		isnull;
	int			rc;

	sql = psprintf("SELECT pg_catalog.count(*) = 2 FROM pg_catalog.pg_constraint k"
				   " WHERE k.contype = 'f' AND NOT k.condeferrable AND k.convalidated"
				   " AND k.confrelid = %u"
				   " AND k.conrelid IN (%u, %u) AND pg_catalog.array_length(k.conkey, 1) = 1"
				   " AND k.conkey[1] = (SELECT a.attnum FROM pg_catalog.pg_attribute a"
				   "  WHERE a.attrelid = k.conrelid AND a.attname = 'customer_id')"
				   " AND k.confkey[1] = (SELECT a.attnum FROM pg_catalog.pg_attribute a"
				   "  WHERE a.attrelid = k.confrelid AND a.attname = 'id')",
				   wm_table_oid(WM_TABLE_CUSTOMERS), wm_table_oid(WM_TABLE_BINS),
				   wm_table_oid(WM_TABLE_SERVICE_EVENTS));
	rc = exec_kept(WM_KEPT_FOREIGN_KEYS, sql, 0, NULL, NULL);
	wm_spi_check(rc, SPI_OK_SELECT, "looking up the foreign keys to customers");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Add (sign 1) or remove (-1) everything of one customer, as the latest
 * snapshot sees it.  The row is locked by the change that fired the
 * trigger: writers of its bins and events that read it FOR SHARE have
 * committed (their rows are seen here) or will wait for this transaction
 * (and then read the new liveness).
 */
static void
customer_contributions(Datum id, int sign)
{
	const char *s = maint.schema;
	StringInfoData sql;
	Oid			types[2] = {UUIDOID, INT4OID};
	Datum		args[2];
	int			rc;

	initStringInfo(&sql);
	args[0] = id;
	args[1] = Int32GetDatum(sign);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH d AS (INSERT INTO %s.wm_agg_bins_due " DUE_SELECT "FROM (" DUE_INNER
					 "  FROM (SELECT $2 AS wm_s, " BINS_COLS " FROM %s t WHERE t.customer_id = $1"
					 "        AND t.deleted_at IS NULL) b" DUE_INNER_WHERE ") g" DUE_WHERE "),"
					 " e AS (INSERT INTO %s.wm_agg_events " EVENTS_SELECT "FROM (" EVENTS_INNER
					 "  FROM (SELECT $2 AS wm_s, " EVENTS_COLS " FROM %s t WHERE t.customer_id = $1"
					 "        AND t.deleted_at IS NULL"
					 "        AND t.created_at >= pg_catalog.now() - interval '%d days') e" EVENTS_GROUP ") g)"
					 " INSERT INTO %s.wm_agg_bins SELECT * FROM (" BINS_SELECT "FROM (" BINS_INNER
					 "  FROM (SELECT $2 AS wm_s, " BINS_COLS " FROM %s t WHERE t.customer_id = $1"
					 "        AND t.deleted_at IS NULL) b" BINS_INNER_GROUP ") g) z" BINS_NONZERO,
					 s, wm_table_qualname(WM_TABLE_BINS),
					 s, wm_table_qualname(WM_TABLE_SERVICE_EVENTS), WM_EVENT_DAYS,
					 s, wm_table_qualname(WM_TABLE_BINS));
	rc = exec_kept(WM_KEPT_CUSTOMER, sql.data, 2, types, args);
	wm_spi_check(rc, SPI_OK_INSERT, "recording a customer's statistics delta");
	pfree(sql.data);
}

static bool
customer_alive(Relation rel, HeapTuple tup, Datum *id)
{
	AttrNumber	deleted = get_attnum(RelationGetRelid(rel), "deleted_at");
	AttrNumber	idatt = get_attnum(RelationGetRelid(rel), "id");
	bool		isnull;

	*id = heap_getattr(tup, idatt, RelationGetDescr(rel), &isnull);
	if (isnull)
		return false;
	(void) heap_getattr(tup, deleted, RelationGetDescr(rel), &isnull);
	return isnull;
}

/*
 * Writers of bins and events read their customers FOR KEY SHARE, as their
 * foreign keys do, so that an application's plain UPDATE of a customer
 * (updated_at) never waits for them.  A liveness change conflicts with them
 * by locking its own row FOR UPDATE first: that waits for the writers that
 * read the old liveness (their rows are then seen here), and later writers
 * wait for this transaction (and then read the new liveness).
 */
static void
lock_customer_for_update(Datum id)
{
	Oid			types[1] = {UUIDOID};
	Datum		args[1];
	char	   *sql;
	int			rc;

	args[0] = id;
	sql = psprintf("SELECT 1 FROM %s c WHERE c.id OPERATOR(pg_catalog.=) $1 FOR UPDATE OF c",
				   wm_table_qualname(WM_TABLE_CUSTOMERS));
	rc = exec_kept(WM_KEPT_LOCK_CUSTOMER, sql, 1, types, args);
	wm_spi_check(rc, SPI_OK_SELECT, "locking the customer");
	pfree(sql);
}

/*
 * Statements on bins and service_events that have begun (their BEFORE
 * statement trigger fired, trigger.c) and not yet recorded their delta (the
 * AFTER statement trigger).  While one is pending in this transaction, its
 * rows may already be changed without a delta: a customer's trigger would
 * read them, and a rebuild would count them, and the statement's delta
 * would then count them again.  A count left too high (a statement that
 * failed in a subtransaction) only makes this transaction cautious.
 */
static int	pending_statements = 0;
static LocalTransactionId pending_lxid = InvalidLocalTransactionId;

static int
pending(void)
{
	if (pending_lxid != WM_MY_LXID)
	{
		pending_lxid = WM_MY_LXID;
		pending_statements = 0;
	}
	return pending_statements;
}

void
wm_maintained_statement_begins(void)
{
	(void) pending();
	pending_statements++;
}

static void
statement_ends(void)
{
	if (pending() > 0)
		pending_statements--;
}

/* Without a state, calls compute in full; the next writer rebuilds. */
static void
drop_state(void)
{
	(void) exec_latest(psprintf("DELETE FROM %s.wm_agg_state", maint.schema), 0, NULL, NULL);
}

/* The BEFORE ROW trigger on customers. */
static HeapTuple
maintain_customer(TriggerData *td)
{
	Relation	rel = td->tg_relation;
	Datum		id;
	HeapTuple	result;

	/*
	 * Inside a statement on bins or events whose delta is not recorded yet
	 * (a data-modifying CTE, an application row trigger): the customer's
	 * rows are half-changed.  Give up the state instead.
	 */
	if (pending() > 0 && !(TRIGGER_FIRED_BY_INSERT(td->tg_event) && customers_referenced()))
	{
		drop_state();
		return TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	}

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		result = td->tg_trigtuple;
		if (customer_alive(rel, td->tg_trigtuple, &id) && !customers_referenced())
			customer_contributions(id, 1);
	}
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		result = td->tg_trigtuple;
		if (customer_alive(rel, td->tg_trigtuple, &id))
			customer_contributions(id, -1);
	}
	else
	{
		result = td->tg_newtuple;
		if (customer_alive(rel, td->tg_trigtuple, &id))
		{
			lock_customer_for_update(id);
			customer_contributions(id, -1);
		}
		else if (customer_alive(rel, td->tg_newtuple, &id))
		{
			Datum		oldid;

			(void) customer_alive(rel, td->tg_trigtuple, &oldid);
			lock_customer_for_update(oldid);
		}
		if (customer_alive(rel, td->tg_newtuple, &id))
			customer_contributions(id, 1);
	}
	return result;
}

/* TRUNCATE: what the truncated table fed is gone. */
static void
maintain_truncate(WmTable table, Oid relid)
{
	const char *s = maint.schema;
	char	   *sql;

	advisory_lock();

	/*
	 * A partition or child truncated, or a table that has some (TRUNCATE
	 * ONLY leaves a child's rows): what is left is counted again, in this
	 * transaction.
	 */
	if (relid != wm_table_oid(table) || has_subclass(relid))
	{
		rebuild_locked();
		return;
	}
	if (table == WM_TABLE_BINS)
		sql = psprintf("WITH a AS (DELETE FROM %s.wm_agg_bins) DELETE FROM %s.wm_agg_bins_due", s, s);
	else if (table == WM_TABLE_SERVICE_EVENTS)
		sql = psprintf("DELETE FROM %s.wm_agg_events", s);
	else
		sql = psprintf("WITH a AS (DELETE FROM %s.wm_agg_bins), b AS (DELETE FROM %s.wm_agg_bins_due)"
					   " DELETE FROM %s.wm_agg_events", s, s, s);
	(void) exec_latest(sql, 0, NULL, NULL);
	pfree(sql);
}

/*
 * _wm_maintain(): the maintenance trigger on bins, service_events (AFTER
 * ... FOR EACH STATEMENT with transition tables, and AFTER TRUNCATE) and
 * customers (BEFORE ... FOR EACH ROW, and AFTER TRUNCATE).  A table that is
 * not the attached table of its role is ignored.
 */
PG_FUNCTION_INFO_V1(wm_maintain);
Datum
wm_maintain(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	Oid			relid;
	WmTable		table;
	WmAsOwner	s;
	HeapTuple	result = NULL;
	int			rc;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_wm_maintain() must be called as a trigger")));
	td = (TriggerData *) fcinfo->context;
	relid = RelationGetRelid(td->tg_relation);
	if (TRIGGER_FIRED_FOR_ROW(td->tg_event))
		result = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;

	wm_config_refresh();
	resolve();
	if (relid == wm_table_oid(WM_TABLE_BINS))
		table = WM_TABLE_BINS;
	else if (relid == wm_table_oid(WM_TABLE_SERVICE_EVENTS))
		table = WM_TABLE_SERVICE_EVENTS;
	else if (relid == wm_table_oid(WM_TABLE_CUSTOMERS))
		table = WM_TABLE_CUSTOMERS;
	else if (!TRIGGER_FIRED_FOR_ROW(td->tg_event) &&
			 OidIsValid(wm_table_oid(WM_TABLE_BINS)) &&
			 wm_relation_descends_from(relid, wm_table_oid(WM_TABLE_BINS)))
		table = WM_TABLE_BINS;	/* a statement naming a partition or child */
	else if (!TRIGGER_FIRED_FOR_ROW(td->tg_event) &&
			 OidIsValid(wm_table_oid(WM_TABLE_SERVICE_EVENTS)) &&
			 wm_relation_descends_from(relid, wm_table_oid(WM_TABLE_SERVICE_EVENTS)))
		table = WM_TABLE_SERVICE_EVENTS;
	else
		return PointerGetDatum(result);
	if (table != WM_TABLE_CUSTOMERS && !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		statement_ends();
	if (!maint.eligible)
		return PointerGetDatum(result);

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	as_owner_begin(&s);
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		maintain_truncate(table, relid);
	else if (table == WM_TABLE_CUSTOMERS)
	{
		if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
			elog(ERROR, "_wm_maintain() on customers must be fired BEFORE, for each row");
		result = maintain_customer(td);
	}
	else
	{
		if (!TRIGGER_FIRED_AFTER(td->tg_event) || TRIGGER_FIRED_FOR_ROW(td->tg_event))
			elog(ERROR, "_wm_maintain() on bins and service events must be fired AFTER, for each statement");
		maintain_statement(td, table);
	}
	as_owner_end(&s);
	SPI_finish();
	return PointerGetDatum(result);
}

/* The size of one of the maintained tables in blocks (its main fork). */
static BlockNumber
blocks_of(Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	BlockNumber n = RelationGetNumberOfBlocks(rel);

	relation_close(rel, AccessShareLock);
	return n;
}

/*
 * The size of an application table as VACUUM and ANALYZE last saw it: no
 * lock (a writer's ACCESS EXCLUSIVE lock must not make the caller wait
 * before its snapshot, as the full computation would not either).
 */
static BlockNumber
relpages_of(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	BlockNumber n = 0;

	if (HeapTupleIsValid(tup))
	{
		n = (BlockNumber) Max(((Form_pg_class) GETSTRUCT(tup))->relpages, 0);
		ReleaseSysCache(tup);
	}
	return n;
}

/*
 * The plans a whole-fleet bin-statistics call reads the maintained state
 * with, or false when the state cannot serve this caller (then it computes
 * in full).  Rows as compute_bin_statistics' full queries, plus a row with
 * GROUPING mask -1 when the state was built for the attached tables: a call
 * that finds no such row computes in full.  Connected to SPI.
 */
bool
wm_maintained_bin_plans(SPIPlanPtr *plan, SPIPlanPtr *eplan)
{
	static const WmTable tables[] = {
		WM_TABLE_BINS, WM_TABLE_CUSTOMERS, WM_TABLE_SERVICE_EVENTS
	};
	StringInfoData sql;
	WmAsOwner	s;
	const char *active;
	int			i;

	resolve();
	if (!maint.eligible)
		return false;

	/*
	 * A transaction that has begun changing the scope reads its own
	 * writes: a statement's deltas arrive with its AFTER trigger, so a call
	 * inside the statement (a data-modifying CTE, a function in the SET
	 * list, a row trigger) would miss them.  Such a call computes in full.
	 */
	if (wm_xact_scope_pending(WM_SCOPE_BINS))
		return false;
	for (i = 0; i < (int) lengthof(tables); i++)
	{
		Oid			relid = wm_table_oid(tables[i]);

		/*
		 * Partitions and children of bins and service_events are maintained
		 * (their own statement triggers; the state is only built while
		 * every one has them, see rebuild_locked), customers' are not.
		 */
		if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
			check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED ||
			(tables[i] == WM_TABLE_CUSTOMERS && has_subclass(relid)))
			return false;
	}
	/*
	 * Deltas piled up (no fold for a while: only READ COMMITTED writers
	 * fold, and wm_statistics_compact() may not be scheduled): once they
	 * are bigger than the tables, reading them could cost more than the
	 * full computation.  Compute in full until a fold and VACUUM.
	 */
	{
		BlockNumber agg = blocks_of(maint.agg_bins) + blocks_of(maint.agg_due) +
			blocks_of(maint.agg_events);
		BlockNumber base = relpages_of(wm_table_oid(WM_TABLE_BINS)) +
			relpages_of(wm_table_oid(WM_TABLE_SERVICE_EVENTS));

		if (agg > Max(WM_DELTA_MIN_BLOCKS, base))
		{
			elog(DEBUG1, "wm_perf maintained statistics: %u blocks of deltas; run wm_statistics_compact()",
				 agg);
			return false;
		}
	}
	if (maint.bins_plan && maint.events_plan)
	{
		*plan = maint.bins_plan;
		*eplan = maint.events_plan;
		return true;
	}

	/* the stored label of a bpchar status keeps its padding (ACTIVE) */
	active = column_has_type(wm_table_oid(WM_TABLE_BINS), "status", BPCHAROID) ?
		"rtrim(g.status, ' ')" : "g.status";
	as_owner_begin(&s);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH g AS (SELECT status, bin_type, material, sum(n) AS n, sum(gps) AS gps,"
					 "  sum(sensor) AS sensor, sum(smart) AS smart, sum(fill_sum) AS fs,"
					 "  sum(fill_n) AS fn, sum(cap_sum) AS cs, sum(cap_n) AS cn, sum(need_fill) AS nf"
					 "  FROM %s.wm_agg_bins GROUP BY 1, 2, 3 HAVING sum(n) <> 0),"
					 " d AS (SELECT bin_type, material, sum(n) AS n FROM %s.wm_agg_bins_due"
					 "  WHERE due < CURRENT_DATE GROUP BY 1, 2),"
					 " j AS (SELECT g.*, CASE WHEN %s = 'active' THEN coalesce(d.n, 0) ELSE 0 END AS dn"
					 "  FROM g LEFT JOIN d ON %s = 'active'"
					 "  AND d.bin_type IS NOT DISTINCT FROM g.bin_type"
					 "  AND d.material IS NOT DISTINCT FROM g.material)"
					 " SELECT GROUPING(status, bin_type, material)::int8, status, bin_type, material,"
					 "  coalesce(sum(n), 0)::int8, coalesce(sum(gps), 0)::int8,"
					 "  coalesce(sum(sensor), 0)::int8, coalesce(sum(smart), 0)::int8,"
					 "  round(sum(fs) / nullif(sum(fn), 0), 2),"
					 "  coalesce(sum(nf) + sum(dn), 0)::int8,"
					 "  round(sum(cs) / nullif(sum(cn), 0), 2)"
					 " FROM j GROUP BY GROUPING SETS ((status), (bin_type), (material), ())"
					 " UNION ALL SELECT -1, NULL, NULL, NULL, 0, 0, 0, 0, NULL, 0, NULL"
					 " FROM %s.wm_agg_state st WHERE st.bins = %u AND st.customers = %u"
					 " AND st.service_events = %u",
					 maint.schema, maint.schema, active, active, maint.schema,
					 wm_table_oid(WM_TABLE_BINS), wm_table_oid(WM_TABLE_CUSTOMERS),
					 wm_table_oid(WM_TABLE_SERVICE_EVENTS));
	maint.bins_plan = SPI_prepare(sql.data, 0, NULL);
	if (maint.bins_plan == NULL || SPI_keepplan(maint.bins_plan) != 0)
		elog(ERROR, "preparing the maintained bin statistics failed");

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH h AS (SELECT lo, CASE WHEN date_trunc('hour', lo, 'UTC') = lo THEN lo"
					 "  ELSE date_trunc('hour', lo, 'UTC') + interval '1 hour' END AS hi"
					 "  FROM (SELECT (CURRENT_DATE - 30)::timestamptz AS lo) x)"
					 " SELECT t, sum(n)::int8 FROM ("
					 "  SELECT a.event_type AS t, a.n FROM %s.wm_agg_events a, h WHERE a.hour >= h.hi"
					 "  UNION ALL"
					 "  SELECT " TXT("e.event_type") ", 1 FROM %s e, h"
					 "   WHERE e.deleted_at IS NULL"
					 "   AND e.created_at >= h.lo AND e.created_at < h.hi"
					 "   AND pg_catalog.date_trunc('hour', (CURRENT_DATE - 30)::timestamptz, 'UTC')"
					 "    <> (CURRENT_DATE - 30)::timestamptz"
					 "   AND EXISTS (SELECT 1 FROM %s c WHERE c.id = e.customer_id"
					 "    AND c.deleted_at IS NULL OFFSET 0)) x"
					 " GROUP BY 1 HAVING sum(n) <> 0 ORDER BY 1",
					 maint.schema, wm_table_qualname(WM_TABLE_SERVICE_EVENTS),
					 wm_table_qualname(WM_TABLE_CUSTOMERS));
	maint.events_plan = SPI_prepare(sql.data, 0, NULL);
	if (maint.events_plan == NULL || SPI_keepplan(maint.events_plan) != 0)
		elog(ERROR, "preparing the maintained event statistics failed");
	pfree(sql.data);
	as_owner_end(&s);

	*plan = maint.bins_plan;
	*eplan = maint.events_plan;
	return true;
}

/* Around reading the maintained state: the owner's rights, pg_catalog. */
void *
wm_maintained_enter(void)
{
	WmAsOwner  *s = palloc(sizeof(WmAsOwner));

	as_owner_begin(s);
	return s;
}

void
wm_maintained_leave(void *state)
{
	as_owner_end((WmAsOwner *) state);
	pfree(state);
}
