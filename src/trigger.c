/*-------------------------------------------------------------------------
 *
 * trigger.c
 *	  wm_invalidate_cache(): the statement trigger on the application
 *	  tables, wm_cache_flush(), and the configuration-change trigger.
 *
 * The trigger only records, in xact.c's backend-local state, which scope
 * changed and which application keys (wm_cache_rules) to delete; it does no
 * network I/O.  It runs once per statement with transition tables, so a
 * 100,000-row UPDATE costs one record.  An UPDATE whose rows differ in no
 * column any statistic or lookup reads records no scope; application rules
 * fire for any UPDATE that changed some column other than updated_at.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/partition.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "wm_perf.h"

typedef struct WmRule
{
	char	   *table_role;
	char	   *pattern;
	bool		has_placeholders;
	bool		is_glob;
} WmRule;

static WmRule *rules = NULL;
static int	nrules = 0;
static uint64 rules_generation = 0;
static MemoryContext rules_context = NULL;

/*
 * The table a trigger argument names, and the cache scope it feeds
 * (routes; or bins, which bins, customers and service_events feed).
 * Organizations feed no statistic: not a valid trigger argument.
 */
static bool
table_of_role(const char *role, WmTable *table, WmScope *scope)
{
	int			t = wm_table_of_role(role);

	if (t < 0 || t == WM_TABLE_ORGANIZATIONS)
		return false;
	*table = (WmTable) t;
	*scope = t == WM_TABLE_ROUTES ? WM_SCOPE_ROUTES : WM_SCOPE_BINS;
	return true;
}

/*
 * Is relid the attached table, or one of its partitions or inheritance
 * children (whose rows the statistics read through the attached table)?
 */
static bool
is_attached_relation(Oid relid, Oid attached)
{
	if (!OidIsValid(attached))
		return false;
	if (relid == attached)
		return true;
	return wm_relation_descends_from(relid, attached);
}

static bool
is_glob(const char *p)
{
	return strpbrk(p, "*?[") != NULL;
}

/* wm_cache_rules, read once per configuration generation. */
static void
load_rules(void)
{
	uint64		gen = wm_config_generation();
	StringInfoData sql;
	MemoryContext oldcxt;
	uint64		i;
	int			rc;

	if (rules_context != NULL && rules_generation == gen)
		return;

	if (rules_context == NULL)
		rules_context = AllocSetContextCreate(TopMemoryContext,
											  "wm_perf cache rules",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(rules_context);
	rules = NULL;
	nrules = 0;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT table_role, key_pattern FROM %s.wm_cache_rules"
					 " ORDER BY rule_name COLLATE \"C\"",
					 wm_extension_schema());
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute(sql.data, true, 0);
	wm_spi_check(rc, SPI_OK_SELECT, "reading wm_cache_rules");

	oldcxt = MemoryContextSwitchTo(rules_context);
	rules = palloc0(sizeof(WmRule) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		WmRule	   *r = &rules[nrules++];

		r->table_role = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		r->pattern = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		r->has_placeholders = strchr(r->pattern, '{') != NULL;
		r->is_glob = is_glob(r->pattern);
	}
	MemoryContextSwitchTo(oldcxt);
	SPI_finish();
	pfree(sql.data);
	rules_generation = gen;
}

/*
 * Does a rule expand to a glob pattern for this row?  It does if it has
 * glob characters of its own, or a placeholder that no column fills (an
 * unknown column, or the glob form: no row).
 */
static bool
expands_to_glob(const char *pattern, bool is_glob, TupleDesc desc,
				TupleTableSlot *slot)
{
	const char *p = pattern;

	if (is_glob)
		return true;
	while ((p = strchr(p, '{')) != NULL)
	{
		const char *close = strchr(p, '}');
		char	   *col;
		bool		unknown;

		if (close == NULL)
			break;
		col = pnstrdup(p + 1, close - p - 1);
		unknown = slot == NULL || SPI_fnumber(desc, col) <= 0;
		pfree(col);
		if (unknown)
			return true;
		p = close + 1;
	}
	return false;
}

/*
 * Expand a rule's {column} placeholders from one row.  Returns NULL when a
 * placeholder column is NULL in that row.  An unknown column becomes "*",
 * which errs on the side of deleting more.  *glob tells whether the key is
 * a glob pattern; it is decided before any value is expanded, so that in a
 * glob every value's own * ? [ ] \ is escaped, whatever the order of the
 * placeholders.
 */
static char *
expand_rule(const char *pattern, bool is_glob, TupleDesc desc,
			TupleTableSlot *slot, bool *glob)
{
	StringInfoData buf;
	const char *p = pattern;

	*glob = expands_to_glob(pattern, is_glob, desc, slot);
	initStringInfo(&buf);
	while (*p)
	{
		const char *close;

		if (*p != '{' || (close = strchr(p, '}')) == NULL)
		{
			appendStringInfoChar(&buf, *p++);
			continue;
		}
		{
			char	   *col = pnstrdup(p + 1, close - p - 1);
			int			attno = slot ? SPI_fnumber(desc, col) : SPI_ERROR_NOATTRIBUTE;

			if (attno <= 0)
				appendStringInfoChar(&buf, '*');
			else
			{
				bool		isnull;
				Datum		d = slot_getattr(slot, attno, &isnull);
				Oid			typoutput;
				bool		typisvarlena;
				char	   *v;

				if (isnull)
					return NULL;
				getTypeOutputInfo(TupleDescAttr(desc, attno - 1)->atttypid,
								  &typoutput, &typisvarlena);
				v = OidOutputFunctionCall(typoutput, d);

				/* In a glob, a value's own * ? [ ] \ must match literally. */
				for (; *v; v++)
				{
					if (*glob && strchr("*?[]\\", *v) != NULL)
						appendStringInfoChar(&buf, '\\');
					appendStringInfoChar(&buf, *v);
				}
			}
			p = close + 1;
		}
	}
	return buf.data;
}

/* Record a rule's key for one row (slot NULL: the glob form). */
static void
record_rule(WmRule *rule, TupleDesc desc, TupleTableSlot *slot)
{
	bool		glob;
	char	   *key = expand_rule(rule->pattern, rule->is_glob, desc, slot, &glob);
	bool		fallback_glob;
	char	   *fallback;

	if (key == NULL)
		return;
	/*
	 * The rule's glob form covers every key it expands to (a rule without
	 * placeholders has none: xact.c escapes the key itself).
	 */
	fallback = glob || !rule->has_placeholders ? NULL :
		expand_rule(rule->pattern, rule->is_glob, desc, NULL, &fallback_glob);
	if (!wm_xact_add_key(key, glob, fallback))
	{
		/* Too many distinct keys this transaction: delete by pattern. */
		key = expand_rule(rule->pattern, rule->is_glob, desc, NULL, &glob);
		(void) wm_xact_add_key(key, true, NULL);
	}
}

/* Do two row versions differ in any of the given attributes? */
static bool
rows_differ(TupleTableSlot *a, TupleTableSlot *b, TupleDesc desc,
			const int *attnos, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, attnos[i] - 1);
		bool		na;
		bool		nb;
		Datum		da = slot_getattr(a, attnos[i], &na);
		Datum		db = slot_getattr(b, attnos[i], &nb);

		if (na != nb)
			return true;
		if (!na && !datumIsEqual(da, db, att->attbyval, att->attlen))
			return true;
	}
	return false;
}

/* What one trigger call learned about a table change. */
typedef struct WmChange
{
	const char *role;
	TupleDesc	desc;
	int			relevant[32];	/* columns statistics and lookups read */
	int			nrelevant;
	int			others[MaxHeapAttributeNumber]; /* all but updated_at */
	int			nothers;
	bool		any_rules;
	bool		placeholder_rules;
	bool		scope_changed;
	bool		any_changed;
	MemoryContext row_context;
} WmChange;

static void
init_change(WmChange *c, WmTable table, const char *role, TupleDesc desc)
{
	const char *cols[32];
	int			i;

	wm_table_columns(table, cols, lengthof(cols));

	memset(c, 0, offsetof(WmChange, others));
	c->role = role;
	c->desc = desc;
	c->nothers = 0;
	c->any_rules = c->placeholder_rules = false;
	c->scope_changed = c->any_changed = false;
	c->row_context = AllocSetContextCreate(CurrentMemoryContext,
										   "wm_perf trigger row",
										   ALLOCSET_SMALL_SIZES);
	for (i = 0; cols[i] != NULL && c->nrelevant < (int) lengthof(c->relevant); i++)
	{
		int			attno = SPI_fnumber(desc, cols[i]);

		if (attno > 0)
			c->relevant[c->nrelevant++] = attno;
	}
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), "updated_at") != 0)
			c->others[c->nothers++] = i + 1;
	}
	for (i = 0; i < nrules; i++)
	{
		if (strcmp(rules[i].table_role, role) != 0)
			continue;
		c->any_rules = true;
		if (rules[i].has_placeholders)
			c->placeholder_rules = true;
	}
}

/*
 * Keys of one row: built in a per-row context (output functions and
 * strings), so that a statement changing many rows does not accumulate
 * them; the keys themselves live in xact.c's hash table.
 */
static void
record_placeholder_rules(WmChange *c, TupleTableSlot *slot)
{
	MemoryContext old = MemoryContextSwitchTo(c->row_context);
	int			i;

	for (i = 0; i < nrules; i++)
		if (rules[i].has_placeholders && strcmp(rules[i].table_role, c->role) == 0)
			record_rule(&rules[i], c->desc, slot);
	MemoryContextSwitchTo(old);
	MemoryContextReset(c->row_context);
}

/* An inserted or deleted row. */
static void
note_row(WmChange *c, TupleTableSlot *slot)
{
	c->scope_changed = c->any_changed = true;
	if (c->placeholder_rules)
		record_placeholder_rules(c, slot);
}

/* An updated row: old and new versions. */
static void
note_update(WmChange *c, TupleTableSlot *oldslot, TupleTableSlot *newslot)
{
	bool		row_scope = rows_differ(oldslot, newslot, c->desc, c->relevant, c->nrelevant);
	bool		row_changed = row_scope ||
		(c->any_rules && rows_differ(oldslot, newslot, c->desc, c->others, c->nothers));

	c->scope_changed |= row_scope;
	c->any_changed |= row_changed;
	if (row_changed && c->placeholder_rules)
	{
		record_placeholder_rules(c, oldslot);
		record_placeholder_rules(c, newslot);
	}
}

/* Has every row that could add a record been seen? */
static bool
change_complete(WmChange *c)
{
	return c->scope_changed && !c->placeholder_rules;
}

static void
finish_change(WmChange *c, WmScope scope)
{
	int			i;

	if (c->scope_changed)
		wm_xact_add_scope(scope);
	if (c->any_changed)
		for (i = 0; i < nrules; i++)
			if (!rules[i].has_placeholders && strcmp(rules[i].table_role, c->role) == 0)
				record_rule(&rules[i], c->desc, NULL);
}

/*
 * The trigger.  Statement-level (AFTER INSERT/UPDATE/DELETE with transition
 * tables, AFTER TRUNCATE) in normal operation; row-level AFTER triggers
 * enabled REPLICA catch logical replication apply, which fires no
 * statement triggers.
 */
PG_FUNCTION_INFO_V1(wm_invalidate_cache);
Datum
wm_invalidate_cache(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent ev;
	const char *role;
	WmScope		scope;
	WmTable		table;
	WmChange	c;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("wm_invalidate_cache() must be called as a trigger")));
	ev = trigdata->tg_event;
	if (!TRIGGER_FIRED_AFTER(ev) &&
		!(TRIGGER_FIRED_BEFORE(ev) && TRIGGER_FIRED_FOR_STATEMENT(ev)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("wm_invalidate_cache() must be fired AFTER the change, or BEFORE the statement")));
	if (trigdata->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("wm_invalidate_cache() needs one argument, the table role")));

	role = trigdata->tg_trigger->tgargs[0];
	if (!table_of_role(role, &table, &scope))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("wm_invalidate_cache() argument \"%s\" is not a table role", role),
				 errhint("Valid roles are routes, bins, customers and service_events.")));

	/*
	 * Only the attached table (or a partition or inheritance child of it)
	 * invalidates.  A trigger left on a table that is no longer attached, or
	 * put on some other table, does nothing: no other table can flush the
	 * cache or delete application keys, and writes never fail because of
	 * wm_perf.  The answer is exact: a change of wm_perf_config locks the
	 * tables it names (wm_config_changed()), so a writer either finishes
	 * before the change commits or takes in its invalidation when it gets
	 * its table lock, and reloads the configuration here.
	 */
	wm_config_refresh();
	if (!is_attached_relation(RelationGetRelid(trigdata->tg_relation),
							  wm_table_oid(table)))
	{
		ereport(DEBUG1,
				(errmsg_internal("wm_invalidate_cache('%s') ignored on \"%s\", which is not the attached %s table",
								 role, RelationGetRelationName(trigdata->tg_relation), role)));
		return PointerGetDatum(NULL);
	}

	/*
	 * BEFORE the statement, before any of its rows changes: from now on
	 * this transaction may see its own uncommitted rows of the scope, and
	 * reads it around the cache.  Nothing is recorded for commit.
	 */
	if (TRIGGER_FIRED_BEFORE(ev))
	{
		wm_xact_touch_scope(scope);
		/* Its delta is recorded by the AFTER statement trigger (maintain.c). */
		if ((table == WM_TABLE_BINS || table == WM_TABLE_SERVICE_EVENTS) &&
			(RelationGetRelid(trigdata->tg_relation) == wm_table_oid(table) ||
			 trigdata->tg_relation->rd_rel->relkind == RELKIND_RELATION ||
			 trigdata->tg_relation->rd_rel->relkind == RELKIND_PARTITIONED_TABLE))
			wm_maintained_statement_begins();
		return PointerGetDatum(NULL);
	}

	load_rules();

	/* TRUNCATE, or a statement without transition tables: all, as globs. */
	if (TRIGGER_FIRED_BY_TRUNCATE(ev) ||
		(TRIGGER_FIRED_FOR_STATEMENT(ev) &&
		 trigdata->tg_oldtable == NULL && trigdata->tg_newtable == NULL))
	{
		wm_xact_add_scope(scope);
		for (i = 0; i < nrules; i++)
			if (strcmp(rules[i].table_role, role) == 0)
				record_rule(&rules[i], NULL, NULL);
		return PointerGetDatum(NULL);
	}

	init_change(&c, table, role, RelationGetDescr(trigdata->tg_relation));

	if (TRIGGER_FIRED_FOR_ROW(ev))
	{
		if (TRIGGER_FIRED_BY_UPDATE(ev))
			note_update(&c, trigdata->tg_trigslot, trigdata->tg_newslot);
		else
			note_row(&c, trigdata->tg_trigslot);
		finish_change(&c, scope);
		return PointerGetDatum(NULL);
	}

	if (TRIGGER_FIRED_BY_UPDATE(ev))
	{
		TupleTableSlot *oldslot = MakeSingleTupleTableSlot(c.desc, &TTSOpsMinimalTuple);
		TupleTableSlot *newslot = MakeSingleTupleTableSlot(c.desc, &TTSOpsMinimalTuple);

		/*
		 * Old and new transition rows are stored pairwise, in the same
		 * order.  Unequal counts (never expected) count as a change.
		 */
		tuplestore_rescan(trigdata->tg_oldtable);
		tuplestore_rescan(trigdata->tg_newtable);
		while (!change_complete(&c))
		{
			bool		has_old = tuplestore_gettupleslot(trigdata->tg_oldtable, true, false, oldslot);
			bool		has_new = tuplestore_gettupleslot(trigdata->tg_newtable, true, false, newslot);

			if (!has_old || !has_new)
			{
				if (has_old != has_new)
					c.scope_changed = c.any_changed = true;
				break;
			}
			note_update(&c, oldslot, newslot);
		}
		ExecDropSingleTupleTableSlot(oldslot);
		ExecDropSingleTupleTableSlot(newslot);
	}
	else
	{
		Tuplestorestate *ts = TRIGGER_FIRED_BY_INSERT(ev) ?
		trigdata->tg_newtable : trigdata->tg_oldtable;
		TupleTableSlot *slot = MakeSingleTupleTableSlot(c.desc, &TTSOpsMinimalTuple);

		tuplestore_rescan(ts);
		while (!change_complete(&c) &&
			   tuplestore_gettupleslot(ts, true, false, slot))
			note_row(&c, slot);
		ExecDropSingleTupleTableSlot(slot);
	}
	finish_change(&c, scope);
	return PointerGetDatum(NULL);
}

/* Lock an attached (or formerly attached) table against its writers. */
static void
lock_config_table(HeapTuple tuple, TupleDesc desc)
{
	bool		isnull;
	Datum		relid;

	if (tuple == NULL)
		return;
	relid = heap_getattr(tuple, 2, desc, &isnull);	/* wm_perf_config.relid */
	if (!isnull)
		LockRelationOid(DatumGetObjectId(relid), ShareRowExclusiveLock);
}

/*
 * Triggers on wm_perf_config and wm_cache_rules.
 *
 * AFTER ... FOR EACH STATEMENT (both tables): every backend's cached copy
 * is dropped when the change commits.  A change of the attached tables
 * also invalidates every scope: values computed from the previous tables
 * must not be served for the new ones.
 *
 * AFTER ... FOR EACH ROW on wm_perf_config, and BEFORE TRUNCATE: the
 * tables named before and after the change are locked in SHARE ROW
 * EXCLUSIVE mode (as CREATE TRIGGER does) until commit.  A writer of one
 * of them either commits before the change does (and its change is
 * counted under the old configuration, then invalidated by this commit),
 * or waits, and takes in the new configuration with its table lock: no
 * write can be judged by a configuration older than the one readers use.
 */
PG_FUNCTION_INFO_V1(wm_config_changed);
Datum
wm_config_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent ev;
	bool		is_config;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_wm_config_changed() must be called as a trigger")));
	ev = trigdata->tg_event;
	is_config = strcmp(RelationGetRelationName(trigdata->tg_relation),
					   "wm_perf_config") == 0;

	if (TRIGGER_FIRED_FOR_ROW(ev))
	{
		TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);

		if (is_config)
		{
			lock_config_table(trigdata->tg_trigtuple, desc);
			if (TRIGGER_FIRED_BY_UPDATE(ev))
				lock_config_table(trigdata->tg_newtuple, desc);
		}
		return PointerGetDatum(NULL);
	}
	if (TRIGGER_FIRED_BEFORE(ev))
	{
		/* BEFORE TRUNCATE: the rows about to go. */
		if (is_config && TRIGGER_FIRED_BY_TRUNCATE(ev))
		{
			StringInfoData sql;
			uint64		i;
			int			rc;

			initStringInfo(&sql);
			appendStringInfo(&sql, "SELECT * FROM %s.%s",
							 quote_identifier(get_namespace_name(RelationGetNamespace(trigdata->tg_relation))),
							 quote_identifier(RelationGetRelationName(trigdata->tg_relation)));
			if ((rc = SPI_connect()) != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
			rc = SPI_execute(sql.data, false, 0);
			wm_spi_check(rc, SPI_OK_SELECT, "reading wm_perf_config");
			for (i = 0; i < SPI_processed; i++)
				lock_config_table(SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
			SPI_finish();
		}
		return PointerGetDatum(NULL);
	}

	CacheInvalidateRelcache(trigdata->tg_relation);
	if (is_config)
	{
		int			s;

		for (s = 0; s < WM_SCOPE_COUNT; s++)
			wm_xact_add_scope((WmScope) s);
	}
	return PointerGetDatum(NULL);
}

/*
 * wm_cache_flush(scope): invalidate one scope or all of them at commit;
 * with NULL also every application rule, in its glob form.
 */
PG_FUNCTION_INFO_V1(wm_cache_flush);
Datum
wm_cache_flush(PG_FUNCTION_ARGS)
{
	int64		n = 0;
	int			s;
	int			i;

	wm_config_refresh();

	if (!PG_ARGISNULL(0))
	{
		char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

		for (s = 0; s < WM_SCOPE_COUNT; s++)
			if (strcmp(name, wm_scope_name((WmScope) s)) == 0)
				break;
		if (s == WM_SCOPE_COUNT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid cache scope \"%s\"", name),
					 errhint("Valid scopes are \"routes\" and \"bins\", or NULL for all.")));
		wm_xact_force_scope((WmScope) s);
		if (s == WM_SCOPE_BINS)
			wm_maintained_rebuild_if_set_up();
		PG_RETURN_INT64(1);
	}

	for (s = 0; s < WM_SCOPE_COUNT; s++)
	{
		wm_xact_force_scope((WmScope) s);
		n++;
	}
	load_rules();
	for (i = 0; i < nrules; i++)
	{
		record_rule(&rules[i], NULL, NULL);
		n++;
	}
	/* The maintained aggregates are rebuilt from the tables, too. */
	wm_maintained_rebuild_if_set_up();
	PG_RETURN_INT64(n);
}
