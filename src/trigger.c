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
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "wm_perf.h"

/* Columns whose change matters, per table role (see DESIGN.md section 2). */
static const char *const routes_columns[] = {
	"id", "route_number", "route_name", "territory", "route_type",
	"service_day", "status", "estimated_duration_minutes",
	"estimated_distance_miles", "ai_optimized", "optimization_score",
	"route_geometry", "deleted_at", NULL
};
static const char *const bins_columns[] = {
	"id", "bin_number", "customer_id", "bin_type", "material", "status",
	"capacity_cubic_yards", "fill_level_percent", "gps_enabled",
	"sensor_enabled", "next_service_date", "location", "deleted_at", NULL
};
static const char *const customers_columns[] = {"id", "deleted_at", NULL};
static const char *const events_columns[] = {
	"id", "customer_id", "event_type", "created_at", "deleted_at", NULL
};

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

WmScope
wm_scope_of_table_role(const char *role, bool *valid)
{
	*valid = true;
	if (strcmp(role, "routes") == 0)
		return WM_SCOPE_ROUTES;
	if (strcmp(role, "bins") == 0 || strcmp(role, "customers") == 0 ||
		strcmp(role, "service_events") == 0)
		return WM_SCOPE_BINS;
	*valid = false;
	return WM_SCOPE_ROUTES;
}

static const char *const *
relevant_columns(const char *role)
{
	if (strcmp(role, "routes") == 0)
		return routes_columns;
	if (strcmp(role, "bins") == 0)
		return bins_columns;
	if (strcmp(role, "customers") == 0)
		return customers_columns;
	return events_columns;
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
 * Expand a rule's {column} placeholders from one row.  Returns NULL when a
 * placeholder column is NULL in that row.  An unknown column becomes "*",
 * which errs on the side of deleting more.
 */
static char *
expand_rule(const char *pattern, TupleDesc desc, TupleTableSlot *slot, bool *glob)
{
	StringInfoData buf;
	const char *p = pattern;

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
			{
				appendStringInfoChar(&buf, '*');
				*glob = true;
			}
			else
			{
				bool		isnull;
				Datum		d = slot_getattr(slot, attno, &isnull);
				Oid			typoutput;
				bool		typisvarlena;

				if (isnull)
					return NULL;
				getTypeOutputInfo(TupleDescAttr(desc, attno - 1)->atttypid,
								  &typoutput, &typisvarlena);
				appendStringInfoString(&buf, OidOutputFunctionCall(typoutput, d));
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
	bool		glob = rule->is_glob;
	char	   *key = expand_rule(rule->pattern, desc, slot, &glob);

	if (key == NULL)
		return;
	if (!wm_xact_add_key(key, glob))
	{
		/* Too many distinct keys this transaction: delete by pattern. */
		glob = true;
		key = expand_rule(rule->pattern, desc, NULL, &glob);
		(void) wm_xact_add_key(key, true);
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

PG_FUNCTION_INFO_V1(wm_invalidate_cache);
Datum
wm_invalidate_cache(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	const char *role;
	const char *const *cols;
	WmScope		scope;
	bool		valid;
	int			relevant[32];
	int			nrelevant = 0;
	int			others[MaxHeapAttributeNumber];
	int			nothers = 0;
	int			i;
	bool		any_rules = false;
	bool		placeholder_rules = false;
	TupleTableSlot *oldslot = NULL;
	TupleTableSlot *newslot = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("wm_invalidate_cache() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("wm_invalidate_cache() must be fired AFTER ... FOR EACH STATEMENT")));
	if (trigdata->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("wm_invalidate_cache() needs one argument, the table role")));

	role = trigdata->tg_trigger->tgargs[0];
	scope = wm_scope_of_table_role(role, &valid);
	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("wm_invalidate_cache() argument \"%s\" is not a table role", role),
				 errhint("Valid roles are routes, bins, customers and service_events.")));

	load_rules();
	for (i = 0; i < nrules; i++)
	{
		if (strcmp(rules[i].table_role, role) != 0)
			continue;
		any_rules = true;
		if (rules[i].has_placeholders)
			placeholder_rules = true;
	}

	/* TRUNCATE, or no transition tables: the scope and every rule, as globs. */
	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event) ||
		(trigdata->tg_oldtable == NULL && trigdata->tg_newtable == NULL))
	{
		wm_xact_add_scope(scope);
		for (i = 0; i < nrules; i++)
			if (strcmp(rules[i].table_role, role) == 0)
				record_rule(&rules[i], NULL, NULL);
		return PointerGetDatum(NULL);
	}

	desc = RelationGetDescr(trigdata->tg_relation);
	cols = relevant_columns(role);
	for (i = 0; cols[i] != NULL && nrelevant < (int) lengthof(relevant); i++)
	{
		int			attno = SPI_fnumber(desc, cols[i]);

		if (attno > 0)
			relevant[nrelevant++] = attno;
	}

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		bool		scope_changed = false;
		bool		any_changed = false;

		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped && strcmp(NameStr(att->attname), "updated_at") != 0)
				others[nothers++] = i + 1;
		}

		/*
		 * Old and new transition rows are stored pairwise, in the same order;
		 * a pair with different ids (never expected) counts as a change.
		 */
		oldslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
		newslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
		tuplestore_rescan(trigdata->tg_oldtable);
		tuplestore_rescan(trigdata->tg_newtable);
		for (;;)
		{
			bool		has_old = tuplestore_gettupleslot(trigdata->tg_oldtable, true, false, oldslot);
			bool		has_new = tuplestore_gettupleslot(trigdata->tg_newtable, true, false, newslot);
			bool		row_scope;
			bool		row_changed;

			if (!has_old || !has_new)
			{
				if (has_old != has_new)
					scope_changed = any_changed = true;
				break;
			}
			row_scope = rows_differ(oldslot, newslot, desc, relevant, nrelevant);
			row_changed = row_scope ||
				(any_rules && rows_differ(oldslot, newslot, desc, others, nothers));
			scope_changed |= row_scope;
			any_changed |= row_changed;
			if (row_changed && placeholder_rules)
			{
				for (i = 0; i < nrules; i++)
				{
					if (strcmp(rules[i].table_role, role) != 0 ||
						!rules[i].has_placeholders)
						continue;
					record_rule(&rules[i], desc, oldslot);
					record_rule(&rules[i], desc, newslot);
				}
			}
			else if (scope_changed && !placeholder_rules)
				break;			/* nothing more to learn */
		}
		if (scope_changed)
			wm_xact_add_scope(scope);
		if (any_changed)
			for (i = 0; i < nrules; i++)
				if (strcmp(rules[i].table_role, role) == 0 && !rules[i].has_placeholders)
					record_rule(&rules[i], desc, NULL);
	}
	else
	{
		Tuplestorestate *ts = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ?
		trigdata->tg_newtable : trigdata->tg_oldtable;
		bool		any_rows = false;

		newslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
		tuplestore_rescan(ts);
		while (tuplestore_gettupleslot(ts, true, false, newslot))
		{
			any_rows = true;
			if (!placeholder_rules)
				break;
			for (i = 0; i < nrules; i++)
				if (strcmp(rules[i].table_role, role) == 0 && rules[i].has_placeholders)
					record_rule(&rules[i], desc, newslot);
		}
		if (any_rows)
		{
			wm_xact_add_scope(scope);
			for (i = 0; i < nrules; i++)
				if (strcmp(rules[i].table_role, role) == 0 && !rules[i].has_placeholders)
					record_rule(&rules[i], desc, NULL);
		}
	}

	if (oldslot)
		ExecDropSingleTupleTableSlot(oldslot);
	if (newslot)
		ExecDropSingleTupleTableSlot(newslot);
	return PointerGetDatum(NULL);
}

/*
 * Statement trigger on wm_perf_config and wm_cache_rules: every backend's
 * cached copy is dropped when the change commits.  A change of the attached
 * tables also invalidates every scope: values computed from the previous
 * tables must not be served for the new ones.
 */
PG_FUNCTION_INFO_V1(wm_config_changed);
Datum
wm_config_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_wm_config_changed() must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	if (strcmp(RelationGetRelationName(trigdata->tg_relation), "wm_perf_config") == 0)
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
		wm_xact_add_scope((WmScope) s);
		PG_RETURN_INT64(1);
	}

	for (s = 0; s < WM_SCOPE_COUNT; s++)
	{
		wm_xact_add_scope((WmScope) s);
		n++;
	}
	load_rules();
	for (i = 0; i < nrules; i++)
	{
		record_rule(&rules[i], NULL, NULL);
		n++;
	}
	PG_RETURN_INT64(n);
}
