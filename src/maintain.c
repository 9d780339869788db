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
 * writer's statement trigger aggregates its transition tables into one row
 * per group it touched and inserts those rows in the writer's own
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
 * When the state is not used (the call computes as before): a customer
 * argument (the indexes answer that in milliseconds), partitions or
 * inheritance children on one of the three tables, created_at not
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
#include "storage/bufmgr.h"
#include "storage/proc.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

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
 * resolve in pg_catalog: nothing of a table owner's runs.
 */
#define ACTIVE(t) "pg_catalog.format('%%s', " t ".status) OPERATOR(pg_catalog.=) 'active'"

/* The grouped contribution of the rows of 'b' (sign column wm_s). */
#define BINS_SELECT \
	"SELECT " TXT("b.status") " AS status, " TXT("b.bin_type") " AS bin_type, " \
	TXT("b.material") " AS material, pg_catalog.sum(b.wm_s) AS n," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.gps_enabled IS TRUE), 0) AS gps," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.sensor_enabled IS TRUE), 0) AS sensor," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.gps_enabled IS TRUE OR b.sensor_enabled IS TRUE), 0) AS smart," \
	" COALESCE(pg_catalog.sum(b.wm_s * b.fill_level_percent), 0) AS fill_sum," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.fill_level_percent IS NOT NULL), 0) AS fill_n," \
	" COALESCE(pg_catalog.sum(b.wm_s * b.capacity_cubic_yards), 0) AS cap_sum," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE b.capacity_cubic_yards IS NOT NULL), 0) AS cap_n," \
	" COALESCE(pg_catalog.sum(b.wm_s) FILTER (WHERE " ACTIVE("b") \
	"  AND b.fill_level_percent OPERATOR(pg_catalog.>=) 80), 0) AS need_fill"
#define BINS_GROUP " GROUP BY 1, 2, 3"
/* Writers wrap BINS_SELECT: a group whose delta is all zeros is not stored. */
#define BINS_NONZERO \
	" WHERE z.n <> 0 OR z.gps <> 0 OR z.sensor <> 0 OR z.smart <> 0 OR z.fill_sum <> 0" \
	" OR z.fill_n <> 0 OR z.cap_sum <> 0 OR z.cap_n <> 0 OR z.need_fill <> 0"
#define DUE_SELECT \
	"SELECT " TXT("b.bin_type") ", " TXT("b.material") ", b.next_service_date," \
	" pg_catalog.sum(b.wm_s)"
#define DUE_WHERE \
	" WHERE " ACTIVE("b") " AND (b.fill_level_percent OPERATOR(pg_catalog.>=) 80) IS NOT TRUE" \
	" AND b.next_service_date IS NOT NULL GROUP BY 1, 2, 3 HAVING pg_catalog.sum(b.wm_s) <> 0"
#define EVENTS_SELECT \
	"SELECT " TXT("e.event_type") ", pg_catalog.date_trunc('hour', e.created_at, 'UTC')," \
	" pg_catalog.sum(e.wm_s)"
#define EVENTS_GROUP " WHERE e.created_at IS NOT NULL GROUP BY 1, 2 HAVING pg_catalog.sum(e.wm_s) <> 0"

typedef struct WmMaintained
{
	uint64		generation;		/* configuration these were resolved for */
	bool		eligible;		/* column types allow maintenance */
	Oid			agg_bins;
	Oid			agg_due;
	Oid			agg_events;
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
	maint.eligible = OidIsValid(maint.owner) &&
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
	WM_KEPT_STATE = 0,
	WM_KEPT_CUSTOMER,
	WM_KEPT_FOLD_BINS,
	WM_KEPT_FOLD_DUE,
	WM_KEPT_FOLD_EVENTS,
	WM_KEPT_FOREIGN_KEYS,
	WM_KEPT_LOCK_CUSTOMER,
	WM_KEPT_WRITER,				/* + table (0 bins, 1 events) * 6 + event * 2 + big */
	WM_KEPT_COUNT = WM_KEPT_WRITER + 12
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
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

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

static int64
fold_locked(void)
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
	removed += fold_table(WM_KEPT_FOLD_EVENTS, sql.data, "folding wm_agg_events");
	pfree(sql.data);
	return removed;
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
	return psprintf("SELECT pg_catalog.concat_ws('|',"
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
	if (!maint.eligible)
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
					 " d AS (INSERT INTO %s.wm_agg_bins_due " DUE_SELECT
					 "  FROM (SELECT 1 AS wm_s, t.* FROM %s t JOIN %s c ON c.id = t.customer_id"
					 "        WHERE t.deleted_at IS NULL AND c.deleted_at IS NULL) b" DUE_WHERE "),"
					 " e AS (INSERT INTO %s.wm_agg_events " EVENTS_SELECT
					 "  FROM (SELECT 1 AS wm_s, t.* FROM %s t JOIN %s c ON c.id = t.customer_id"
					 "        WHERE t.deleted_at IS NULL AND c.deleted_at IS NULL"
					 "          AND t.created_at >= pg_catalog.now() - interval '%d days') e" EVENTS_GROUP "),"
					 " st AS (INSERT INTO %s.wm_agg_state (id, bins, customers, service_events, built_at, signature)"
					 "  VALUES (1, %u, %u, %u, pg_catalog.now(), (%s)) ON CONFLICT (id) DO UPDATE"
					 "  SET bins = EXCLUDED.bins, customers = EXCLUDED.customers,"
					 "  service_events = EXCLUDED.service_events, built_at = EXCLUDED.built_at,"
					 "  signature = EXCLUDED.signature)"
					 " INSERT INTO %s.wm_agg_bins " BINS_SELECT
					 "  FROM (SELECT 1 AS wm_s, t.* FROM %s t JOIN %s c ON c.id = t.customer_id"
					 "        WHERE t.deleted_at IS NULL AND c.deleted_at IS NULL) b" BINS_GROUP,
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
	n = fold_locked();
	as_owner_end(&s);
	SPI_finish();
	PG_RETURN_INT64(n);
}

/* The rows of a transition table as "SELECT sign AS wm_s, t.* FROM name t". */
static void
append_rows(StringInfo sql, TriggerData *td)
{
	bool		first = true;

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		appendStringInfoString(sql, "SELECT 1 AS wm_s, t.* FROM wm_new t");
		first = false;
	}
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		appendStringInfo(sql, "%sSELECT -1 AS wm_s, t.* FROM wm_old t",
						 first ? "" : " UNION ALL ");
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

/* The statement trigger on bins or service_events. */
static void
maintain_statement(TriggerData *td, WmTable table)
{
	const char *s = maint.schema;
	const char *cust = wm_table_qualname(WM_TABLE_CUSTOMERS);
	StringInfoData sql;
	bool		big;
	int			rc;

	/*
	 * No state row (a database restored by pg_dump, whose derived rows were
	 * not dumped, or DDL on the tables since): the first writer to get the
	 * lock rebuilds, this
	 * statement's rows included; the others record their deltas, which a
	 * rebuild whose snapshot does not see them keeps.
	 */
	{
		char	   *q = psprintf("SELECT 1 FROM %s.wm_agg_state", s);

		rc = exec_kept(WM_KEPT_STATE, q, 0, NULL, NULL);
		wm_spi_check(rc, SPI_OK_SELECT, "looking for the maintained state");
		if (SPI_processed == 0 && pending() == 0 && advisory_try_lock())
		{
			rebuild_locked();
			return;
		}
	}

	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	/*
	 * The customers' liveness, read FOR SHARE: that waits for a concurrent
	 * change of a customer's liveness to commit (or makes it wait), and
	 * returns the latest version.  A statement of a few rows locks its
	 * customers row by row (an index lookup each; the kept plan is made for
	 * a few rows); a big one locks the customers table in SHARE mode and
	 * joins.
	 */
	big = transition_rows(td) > WM_BIG_STATEMENT_ROWS;
	initStringInfo(&sql);
	if (big)
	{
		appendStringInfo(&sql, "LOCK TABLE %s IN SHARE MODE", cust);
		rc = SPI_execute(sql.data, false, 0);
		wm_spi_check(rc, SPI_OK_UTILITY, "locking the customers table");
		resetStringInfo(&sql);
	}
	appendStringInfoString(&sql, "WITH r AS MATERIALIZED (");
	append_rows(&sql, td);
	appendStringInfo(&sql,
					 "), live AS MATERIALIZED (SELECT c.id, c.deleted_at IS NULL AS alive FROM %s c"
					 "  WHERE c.id IN (SELECT r.customer_id FROM r)%s),"
					 " x AS (SELECT r.* FROM r JOIN live l ON l.id = r.customer_id"
					 "  WHERE l.alive AND r.deleted_at IS NULL)",
					 cust, big ? "" : " FOR KEY SHARE OF c");
	if (table == WM_TABLE_BINS)
		appendStringInfo(&sql,
						 ", d AS (INSERT INTO %s.wm_agg_bins_due " DUE_SELECT " FROM x b" DUE_WHERE ")"
						 " INSERT INTO %s.wm_agg_bins SELECT * FROM (" BINS_SELECT " FROM x b"
						 BINS_GROUP ") z" BINS_NONZERO,
						 s, s);
	else
		appendStringInfo(&sql,
						 " INSERT INTO %s.wm_agg_events " EVENTS_SELECT " FROM x e" EVENTS_GROUP,
						 s);
	rc = exec_kept(WM_KEPT_WRITER + (table == WM_TABLE_BINS ? 0 : 6) +
				   (TRIGGER_FIRED_BY_INSERT(td->tg_event) ? 0 :
					TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? 2 : 4) + (big ? 1 : 0),
				   sql.data, 0, NULL, NULL);
	wm_spi_check(rc, SPI_OK_INSERT, "recording a statistics delta");
	pfree(sql.data);

	/* Now and then a writer folds, if no one else is folding. */
	if (XactIsoLevel == XACT_READ_COMMITTED &&
		pg_prng_uint64_range(&pg_global_prng_state, 1, WM_FOLD_ONE_IN) == 1 &&
		advisory_try_lock())
		(void) fold_locked();
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
					 "WITH d AS (INSERT INTO %s.wm_agg_bins_due " DUE_SELECT
					 "  FROM (SELECT $2 AS wm_s, t.* FROM %s t WHERE t.customer_id = $1"
					 "        AND t.deleted_at IS NULL) b" DUE_WHERE "),"
					 " e AS (INSERT INTO %s.wm_agg_events " EVENTS_SELECT
					 "  FROM (SELECT $2 AS wm_s, t.* FROM %s t WHERE t.customer_id = $1"
					 "        AND t.deleted_at IS NULL"
					 "        AND t.created_at >= pg_catalog.now() - interval '%d days') e" EVENTS_GROUP ")"
					 " INSERT INTO %s.wm_agg_bins SELECT * FROM (" BINS_SELECT
					 "  FROM (SELECT $2 AS wm_s, t.* FROM %s t WHERE t.customer_id = $1"
					 "        AND t.deleted_at IS NULL) b" BINS_GROUP ") z" BINS_NONZERO,
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
maintain_truncate(WmTable table)
{
	const char *s = maint.schema;
	char	   *sql;

	advisory_lock();
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
		maintain_truncate(table);
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

		if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
			check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED ||
			has_subclass(relid))
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

	as_owner_begin(&s);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH g AS (SELECT status, bin_type, material, sum(n) AS n, sum(gps) AS gps,"
					 "  sum(sensor) AS sensor, sum(smart) AS smart, sum(fill_sum) AS fs,"
					 "  sum(fill_n) AS fn, sum(cap_sum) AS cs, sum(cap_n) AS cn, sum(need_fill) AS nf"
					 "  FROM %s.wm_agg_bins GROUP BY 1, 2, 3 HAVING sum(n) <> 0),"
					 " d AS (SELECT bin_type, material, sum(n) AS n FROM %s.wm_agg_bins_due"
					 "  WHERE due < CURRENT_DATE GROUP BY 1, 2),"
					 " j AS (SELECT g.*, CASE WHEN g.status = 'active' THEN coalesce(d.n, 0) ELSE 0 END AS dn"
					 "  FROM g LEFT JOIN d ON g.status = 'active'"
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
					 maint.schema, maint.schema, maint.schema,
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
