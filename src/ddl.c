/*-------------------------------------------------------------------------
 *
 * ddl.c
 *	  The invalidation triggers wm_perf puts on the application tables, and
 *	  the event triggers that keep the cache exact across DDL.
 *
 * Statement triggers fire only for the table a statement names: a write
 * straight to a partition, or to an inheritance child, fires none of the
 * attached table's.  So the statement triggers go on the attached table
 * and on every partition and inheritance child of it, at attach and
 * whenever DDL adds one (wm_ddl_changed()); the row trigger that catches
 * logical replication is cloned to partitions by PostgreSQL itself.
 *
 * DDL can change what a statistic reads without writing a row: ATTACH,
 * DETACH and DROP of a partition, ALTER TABLE ... INHERIT / NO INHERIT,
 * ALTER COLUMN ... TYPE ... USING, ALTER TYPE ... RENAME VALUE of an enum
 * the statistics group by, DROP COLUMN.  The event triggers record the
 * scope of every attached table such a command touches, like a write does
 * (sent at commit, dropped on rollback).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "wm_perf.h"

/* One of the invalidation triggers: wm_perf_invalidate_<role>_<suffix>. */
typedef struct WmTriggerDef
{
	const char *suffix;
	const char *when;			/* timing and events */
	const char *clause;			/* transition tables, level */
	bool		replica;		/* enabled REPLICA, else ALWAYS */
} WmTriggerDef;

static const WmTriggerDef trigger_defs[] = {
	{"before", "BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE", "FOR EACH STATEMENT", false},
	{"ins", "AFTER INSERT", "REFERENCING NEW TABLE AS wm_new FOR EACH STATEMENT", false},
	{"upd", "AFTER UPDATE", "REFERENCING OLD TABLE AS wm_old NEW TABLE AS wm_new FOR EACH STATEMENT", false},
	{"del", "AFTER DELETE", "REFERENCING OLD TABLE AS wm_old FOR EACH STATEMENT", false},
	{"trunc", "AFTER TRUNCATE", "FOR EACH STATEMENT", false},
	/* Logical replication apply fires row triggers only. */
	{"repl", "AFTER INSERT OR UPDATE OR DELETE", "FOR EACH ROW", true}
};

#define WM_TRIGGER_PREFIX "wm_perf_invalidate_"

/* Set while this file runs DDL itself: its own commands are not news. */
static bool running_ddl = false;

/*
 * The queries of this file are not read-only: a new snapshot sees the
 * triggers this call just made (and PostgreSQL's clones of them on
 * partitions).
 */
static bool
has_trigger(Oid relid, const char *name)
{
	char	   *sql = psprintf("SELECT 1 FROM pg_catalog.pg_trigger"
							   " WHERE tgrelid OPERATOR(pg_catalog.=) %u"
							   " AND tgname OPERATOR(pg_catalog.=) %s",
							   relid, quote_literal_cstr(name));
	int			rc = SPI_execute(sql, false, 1);

	wm_spi_check(rc, SPI_OK_SELECT, "looking up a trigger");
	return SPI_processed > 0;
}

/*
 * Create the triggers of 'role' missing on relid (connected to SPI); one
 * line per trigger into lines (may be NULL).
 */
static void
ensure_triggers(Oid relid, const char *role, List **lines)
{
	char	   *table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   get_rel_name(relid));
	bool		partition = get_rel_relispartition(relid);
	bool		saved = running_ddl;
	int			i;

	running_ddl = true;
	PG_TRY();
	{
		for (i = 0; i < (int) lengthof(trigger_defs); i++)
		{
			const WmTriggerDef *d = &trigger_defs[i];
			char	   *name = psprintf(WM_TRIGGER_PREFIX "%s_%s", role, d->suffix);
			char	   *sql;
			int			rc;

			if (has_trigger(relid, name))
			{
				if (lines)
					*lines = lappend(*lines, psprintf("trigger %s on %s: already present", name, table));
				continue;
			}
			/* A partition has the row trigger as a clone of its parent's. */
			if (d->replica && partition)
				continue;
			sql = psprintf("CREATE TRIGGER %s %s ON %s %s EXECUTE FUNCTION %s.wm_invalidate_cache(%s)",
						   quote_identifier(name), d->when, table, d->clause,
						   wm_extension_schema(), quote_literal_cstr(role));
			rc = SPI_execute(sql, false, 0);
			wm_spi_check(rc, SPI_OK_UTILITY, "creating a trigger");
			sql = psprintf("ALTER TABLE %s ENABLE %s TRIGGER %s", table,
						   d->replica ? "REPLICA" : "ALWAYS", quote_identifier(name));
			rc = SPI_execute(sql, false, 0);
			wm_spi_check(rc, SPI_OK_UTILITY, "enabling a trigger");
			if (lines)
				*lines = lappend(*lines, psprintf("trigger %s on %s: created", name, table));
		}
	}
	PG_FINALLY();
	{
		running_ddl = saved;
	}
	PG_END_TRY();
}

/*
 * Every partition and inheritance child of relid (plain, partitioned and
 * foreign tables), ordered by name; connected to SPI.
 */
static List *
descendants(Oid relid)
{
	List	   *out = NIL;
	uint64		i;
	int			rc;
	char	   *sql = psprintf("WITH RECURSIVE d(relid) AS ("
							   " SELECT i.inhrelid FROM pg_catalog.pg_inherits i"
							   "  WHERE i.inhparent OPERATOR(pg_catalog.=) %u"
							   " UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i"
							   "  JOIN d ON i.inhparent OPERATOR(pg_catalog.=) d.relid)"
							   " SELECT d.relid FROM d JOIN pg_catalog.pg_class c"
							   "  ON c.oid OPERATOR(pg_catalog.=) d.relid"
							   " WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog.\"char\"[])"
							   " ORDER BY d.relid::pg_catalog.regclass::pg_catalog.text COLLATE \"C\"",
							   relid);

	rc = SPI_execute(sql, false, 0);
	wm_spi_check(rc, SPI_OK_SELECT, "listing partitions and children");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		out = lappend_oid(out, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															  SPI_tuptable->tupdesc, 1, &isnull)));
	}
	return out;
}

/*
 * _wm_attach_triggers(tbl regclass, role text) RETURNS SETOF text: the
 * invalidation triggers on a table and on its partitions and inheritance
 * children, one line per trigger.  Used by wm_perf_attach().
 */
PG_FUNCTION_INFO_V1(wm_attach_triggers);
Datum
wm_attach_triggers(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *role = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ReturnSetInfo *rsinfo;
	List	   *lines = NIL;
	ListCell   *lc;
	int			rc;
	List	   *children;
	int			t = wm_table_of_role(role);

	if (t < 0 || t == WM_TABLE_ORGANIZATIONS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a table role with invalidation triggers", role)));

	WM_INIT_MATERIALIZED_SRF_SCALAR(fcinfo);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	/* Every descendant, ordered by name: partitions and children alike. */
	children = descendants(relid);
	ensure_triggers(relid, role, &lines);
	foreach(lc, children)
		ensure_triggers(lfirst_oid(lc), role, &lines);

	/* The lines live in SPI's memory: into the tuplestore before it goes. */
	foreach(lc, lines)
	{
		Datum		value = CStringGetTextDatum((char *) lfirst(lc));
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * The maintenance triggers (maintain.c): bins and service_events get AFTER
 * statement triggers with transition tables and an AFTER TRUNCATE trigger;
 * customers gets BEFORE row triggers (before a cascading delete removes its
 * bins and events) and an AFTER TRUNCATE trigger.  All enabled ALWAYS, so
 * logical replication apply and session_replication_role = replica
 * maintain too.  Named wm_perf_maintain_<role>_<suffix>.
 */
typedef struct WmMaintainDef
{
	WmTable		table;
	const char *suffix;
	const char *definition;		/* timing, events, level */
} WmMaintainDef;

static const WmMaintainDef maintain_defs[] = {
	{WM_TABLE_BINS, "ins", "AFTER INSERT ON %s REFERENCING NEW TABLE AS wm_new FOR EACH STATEMENT"},
	{WM_TABLE_BINS, "upd", "AFTER UPDATE ON %s REFERENCING OLD TABLE AS wm_old NEW TABLE AS wm_new FOR EACH STATEMENT"},
	{WM_TABLE_BINS, "del", "AFTER DELETE ON %s REFERENCING OLD TABLE AS wm_old FOR EACH STATEMENT"},
	{WM_TABLE_BINS, "trunc", "AFTER TRUNCATE ON %s FOR EACH STATEMENT"},
	{WM_TABLE_SERVICE_EVENTS, "ins", "AFTER INSERT ON %s REFERENCING NEW TABLE AS wm_new FOR EACH STATEMENT"},
	{WM_TABLE_SERVICE_EVENTS, "upd", "AFTER UPDATE ON %s REFERENCING OLD TABLE AS wm_old NEW TABLE AS wm_new FOR EACH STATEMENT"},
	{WM_TABLE_SERVICE_EVENTS, "del", "AFTER DELETE ON %s REFERENCING OLD TABLE AS wm_old FOR EACH STATEMENT"},
	{WM_TABLE_SERVICE_EVENTS, "trunc", "AFTER TRUNCATE ON %s FOR EACH STATEMENT"},
	{WM_TABLE_CUSTOMERS, "ins", "BEFORE INSERT ON %s FOR EACH ROW"},
	{WM_TABLE_CUSTOMERS, "upd", "BEFORE UPDATE ON %s FOR EACH ROW"
	 " WHEN (OLD.deleted_at IS DISTINCT FROM NEW.deleted_at OR OLD.id IS DISTINCT FROM NEW.id)"},
	{WM_TABLE_CUSTOMERS, "del", "BEFORE DELETE ON %s FOR EACH ROW"},
	{WM_TABLE_CUSTOMERS, "trunc", "AFTER TRUNCATE ON %s FOR EACH STATEMENT"},
};

static char *
qualified_relname(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

static char *
maintain_trigger_name(const WmMaintainDef *m)
{
	return psprintf("wm_perf_maintain_%s_%s", wm_table_role_name(m->table), m->suffix);
}

/*
 * The maintenance triggers of 'table' missing on relid (the attached table,
 * or for bins and service_events a partition or child of it: a statement
 * naming it fires its own statement triggers, not its parent's).  Connected
 * to SPI, running_ddl set.  One line per trigger created into lines (may be
 * NULL).
 */
static void
create_maintain_triggers(Oid relid, WmTable table, List **lines)
{
	char	   *tname;
	char		kind = get_rel_relkind(relid);
	int			d;
	int			rc;

	/* A foreign table cannot have transition tables. */
	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		return;
	tname = qualified_relname(relid);
	for (d = 0; d < (int) lengthof(maintain_defs); d++)
	{
		const WmMaintainDef *m = &maintain_defs[d];
		char	   *name;
		char	   *sql;

		if (m->table != table)
			continue;
		name = maintain_trigger_name(m);
		if (has_trigger(relid, name))
			continue;
		sql = psprintf("CREATE TRIGGER %s %s EXECUTE FUNCTION %s._wm_maintain()",
					   quote_identifier(name), psprintf(m->definition, tname),
					   wm_extension_schema());
		rc = SPI_execute(sql, false, 0);
		wm_spi_check(rc, SPI_OK_UTILITY, "creating a maintenance trigger");
		rc = SPI_execute(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER %s", tname,
								  quote_identifier(name)), false, 0);
		wm_spi_check(rc, SPI_OK_UTILITY, "enabling a maintenance trigger");
		if (lines)
			*lines = lappend(*lines, psprintf("trigger %s on %s: created", name, tname));
	}
}

/*
 * _wm_maintain_triggers(bins, customers, service_events) RETURNS SETOF
 * text: the maintenance triggers on exactly these tables (NULL: none), one
 * line per trigger dropped or created.  Used by wm_perf_attach().
 */
PG_FUNCTION_INFO_V1(wm_maintain_triggers);
Datum
wm_maintain_triggers(PG_FUNCTION_ARGS)
{
	Oid			target[WM_TABLE_COUNT] = {0};
	ReturnSetInfo *rsinfo;
	List	   *lines = NIL;
	ListCell   *lc;
	bool		saved = running_ddl;
	char	   *sql;
	uint64		i;
	int			rc;
	int			d;

	if (!PG_ARGISNULL(0))
		target[WM_TABLE_BINS] = PG_GETARG_OID(0);
	if (!PG_ARGISNULL(1))
		target[WM_TABLE_CUSTOMERS] = PG_GETARG_OID(1);
	if (!PG_ARGISNULL(2))
		target[WM_TABLE_SERVICE_EVENTS] = PG_GETARG_OID(2);

	WM_INIT_MATERIALIZED_SRF_SCALAR(fcinfo);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	running_ddl = true;
	PG_TRY();
	{
		SPITupleTable *old;
		List	   *desc[WM_TABLE_COUNT] = {0};
		static const WmTable order[] = {
			WM_TABLE_BINS, WM_TABLE_SERVICE_EVENTS, WM_TABLE_CUSTOMERS
		};

		/* Partitions and children of bins and service_events get them too. */
		if (OidIsValid(target[WM_TABLE_BINS]))
			desc[WM_TABLE_BINS] = descendants(target[WM_TABLE_BINS]);
		if (OidIsValid(target[WM_TABLE_SERVICE_EVENTS]))
			desc[WM_TABLE_SERVICE_EVENTS] = descendants(target[WM_TABLE_SERVICE_EVENTS]);

		/* Drop those on other tables, or of another role. */
		sql = psprintf("SELECT tgrelid, tgname::pg_catalog.text FROM pg_catalog.pg_trigger"
					   " WHERE tgfoid OPERATOR(pg_catalog.=) '%s._wm_maintain()'::pg_catalog.regprocedure"
					   " AND tgparentid OPERATOR(pg_catalog.=) 0::pg_catalog.oid"
					   " ORDER BY tgrelid::pg_catalog.regclass::pg_catalog.text COLLATE \"C\", tgname COLLATE \"C\"",
					   wm_extension_schema());
		rc = SPI_execute(sql, false, 0);
		wm_spi_check(rc, SPI_OK_SELECT, "listing maintenance triggers");
		old = SPI_tuptable;
		for (i = 0; i < old->numvals; i++)
		{
			bool		isnull;
			Oid			relid = DatumGetObjectId(SPI_getbinval(old->vals[i], old->tupdesc, 1, &isnull));
			char	   *name = SPI_getvalue(old->vals[i], old->tupdesc, 2);
			bool		keep = false;

			for (d = 0; d < (int) lengthof(maintain_defs); d++)
			{
				const WmMaintainDef *m = &maintain_defs[d];

				if ((target[m->table] == relid ||
					 list_member_oid(desc[m->table], relid)) &&
					strcmp(name, maintain_trigger_name(m)) == 0)
					keep = true;
			}
			if (keep)
				continue;
			rc = SPI_execute(psprintf("DROP TRIGGER %s ON %s", quote_identifier(name),
									  qualified_relname(relid)), false, 0);
			wm_spi_check(rc, SPI_OK_UTILITY, "dropping a maintenance trigger");
			lines = lappend(lines, psprintf("trigger %s on %s: dropped", name, qualified_relname(relid)));
		}

		for (d = 0; d < (int) lengthof(order); d++)
		{
			WmTable		t = order[d];
			ListCell   *dc;

			if (!OidIsValid(target[t]))
				continue;
			create_maintain_triggers(target[t], t, &lines);
			foreach(dc, desc[t])
				create_maintain_triggers(lfirst_oid(dc), t, &lines);
		}
	}
	PG_FINALLY();
	{
		running_ddl = saved;
	}
	PG_END_TRY();

	/* The lines live in SPI's memory: into the tuplestore before it goes. */
	foreach(lc, lines)
	{
		Datum		value = CStringGetTextDatum((char *) lfirst(lc));
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	SPI_finish();
	return (Datum) 0;
}

static WmScope
scope_of_table(WmTable t)
{
	return t == WM_TABLE_ROUTES ? WM_SCOPE_ROUTES : WM_SCOPE_BINS;
}

/* The role a wm_perf trigger name carries, or -1. */
static int
role_of_trigger_name(const char *name)
{
	int			t;

	if (strncmp(name, WM_TRIGGER_PREFIX, strlen(WM_TRIGGER_PREFIX)) == 0)
		name += strlen(WM_TRIGGER_PREFIX);
	else if (strncmp(name, "wm_perf_maintain_", strlen("wm_perf_maintain_")) == 0)
		name += strlen("wm_perf_maintain_");
	else
		return -1;
	for (t = 0; t < WM_TABLE_ORGANIZATIONS; t++)
	{
		const char *role = wm_table_role_name((WmTable) t);
		size_t		len = strlen(role);

		if (strncmp(name, role, len) == 0 && name[len] == '_')
			return t;
	}
	return -1;
}

/* Roles whose wm_perf triggers relid carries (a bit per WmTable). */
static int
trigger_roles(Oid relid)
{
	char	   *sql = psprintf("SELECT tgname::pg_catalog.text FROM pg_catalog.pg_trigger"
							   " WHERE tgrelid OPERATOR(pg_catalog.=) %u"
							   " AND tgname OPERATOR(pg_catalog.~~) 'wm\\_perf\\_invalidate\\_%%'",
							   relid);
	int			mask = 0;
	uint64		i;
	int			rc = SPI_execute(sql, false, 0);

	wm_spi_check(rc, SPI_OK_SELECT, "looking up triggers");
	for (i = 0; i < SPI_processed; i++)
	{
		int			t = role_of_trigger_name(SPI_getvalue(SPI_tuptable->vals[i],
														  SPI_tuptable->tupdesc, 1));

		if (t >= 0)
			mask |= 1 << t;
	}
	return mask;
}

/* Does an attached table of role t have a column of type typid? */
static bool
uses_type(WmTable t, Oid typid)
{
	char	   *sql = psprintf("SELECT 1 FROM pg_catalog.pg_attribute"
							   " WHERE attrelid OPERATOR(pg_catalog.=) %u"
							   " AND atttypid OPERATOR(pg_catalog.=) %u"
							   " AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped",
							   wm_table_oid(t), typid);
	int			rc = SPI_execute(sql, false, 1);

	wm_spi_check(rc, SPI_OK_SELECT, "looking up column types");
	return SPI_processed > 0;
}

/* Are bins or service_events (attached as relid) maintained? */
static bool
maintained_role(Oid relid, WmTable t)
{
	return (t == WM_TABLE_BINS || t == WM_TABLE_SERVICE_EVENTS) &&
		has_trigger(relid, psprintf("wm_perf_maintain_%s_ins", wm_table_role_name(t)));
}

/* create_maintain_triggers() from the event trigger. */
static pg_noinline void
maintain_new_descendant(Oid relid, WmTable t)
{
	bool		saved = running_ddl;

	running_ddl = true;
	PG_TRY();
	{
		create_maintain_triggers(relid, t, NULL);
	}
	PG_FINALLY();
	{
		running_ddl = saved;
	}
	PG_END_TRY();
}

/* A relation a command created or altered: which roles it concerns. */
static int
relation_changed(Oid relid)
{
	int			mask = trigger_roles(relid);
	int			t;

	for (t = 0; t < WM_TABLE_ORGANIZATIONS; t++)
	{
		Oid			attached = wm_table_oid((WmTable) t);

		if (!OidIsValid(attached))
			continue;
		if (relid == attached)
		{
			mask |= 1 << t;

			/*
			 * ATTACH PARTITION and a child's INHERIT report the parent (or
			 * the child) only: every partition and child of the attached
			 * table gets what it lacks.
			 */
			if (has_subclass(relid))
			{
				ListCell   *lc;

				foreach(lc, descendants(relid))
				{
					ensure_triggers(lfirst_oid(lc), wm_table_role_name((WmTable) t), NULL);
					if (maintained_role(attached, (WmTable) t))
						maintain_new_descendant(lfirst_oid(lc), (WmTable) t);
				}
			}
		}
		else if (wm_relation_descends_from(relid, attached))
		{
			/* A new partition or child: give it the statement triggers. */
			mask |= 1 << t;
			ensure_triggers(relid, wm_table_role_name((WmTable) t), NULL);
			/* And the maintenance triggers, if its table has them. */
			if (maintained_role(attached, (WmTable) t))
				maintain_new_descendant(relid, (WmTable) t);
		}
	}
	return mask;
}

/*
 * The event trigger, on ddl_command_end and sql_drop.  Records the scopes
 * of the attached tables the command touched.
 */
PG_FUNCTION_INFO_V1(wm_ddl_changed);
Datum
wm_ddl_changed(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	int			mask = 0;
	uint64		i;
	int			t;
	int			rc;
	bool		any_attached = false;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_wm_ddl_changed() must be called as an event trigger")));
	if (running_ddl)
		PG_RETURN_VOID();
	trigdata = (EventTriggerData *) fcinfo->context;

	wm_config_refresh();
	for (t = 0; t < WM_TABLE_ORGANIZATIONS; t++)
		if (OidIsValid(wm_table_oid((WmTable) t)))
			any_attached = true;
	if (!any_attached)
		PG_RETURN_VOID();

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	if (strcmp(trigdata->event, "sql_drop") == 0)
	{
		/*
		 * A dropped partition or child takes its wm_perf triggers with it:
		 * they name the role.  A dropped column of an attached table
		 * changes what its statistics read.
		 */
		rc = SPI_execute("SELECT object_type, objid,"
						 " address_names[pg_catalog.array_upper(address_names, 1)]"
						 " FROM pg_catalog.pg_event_trigger_dropped_objects()",
						 true, 0);
		wm_spi_check(rc, SPI_OK_SELECT, "reading the dropped objects");
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *type = SPI_getvalue(tup, desc, 1);
			bool		isnull;
			Oid			objid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
			char	   *name = SPI_getvalue(tup, desc, 3);

			if (strcmp(type, "trigger") == 0 && name != NULL &&
				(t = role_of_trigger_name(name)) >= 0)
				mask |= 1 << t;
			else if (strcmp(type, "table column") == 0)
				for (t = 0; t < WM_TABLE_ORGANIZATIONS; t++)
					if (objid == wm_table_oid((WmTable) t))
						mask |= 1 << t;
		}
	}
	else
	{
		SPITupleTable *commands;

		rc = SPI_execute("SELECT classid, objid FROM pg_catalog.pg_event_trigger_ddl_commands()",
						 true, 0);
		wm_spi_check(rc, SPI_OK_SELECT, "reading the DDL commands");
		commands = SPI_tuptable;
		for (i = 0; i < commands->numvals; i++)
		{
			bool		isnull;
			Oid			classid = DatumGetObjectId(SPI_getbinval(commands->vals[i],
																 commands->tupdesc, 1, &isnull));
			Oid			objid = DatumGetObjectId(SPI_getbinval(commands->vals[i],
															   commands->tupdesc, 2, &isnull));

			if (classid == RelationRelationId)
				mask |= relation_changed(objid);
			else if (classid == TypeRelationId)
			{
				for (t = 0; t < WM_TABLE_ORGANIZATIONS; t++)
					if (OidIsValid(wm_table_oid((WmTable) t)) && uses_type((WmTable) t, objid))
						mask |= 1 << t;
			}
		}
	}
	SPI_finish();

	for (t = 0; t < WM_TABLE_ORGANIZATIONS; t++)
		if ((mask & (1 << t)) != 0)
			wm_xact_add_scope(scope_of_table((WmTable) t));

	/*
	 * The maintained statistics hold labels and values as they were: DDL on
	 * a table they read invalidates them (the next writer rebuilds).
	 */
	if ((mask & ((1 << WM_TABLE_BINS) | (1 << WM_TABLE_CUSTOMERS) |
				 (1 << WM_TABLE_SERVICE_EVENTS))) != 0)
		wm_maintained_invalidate();
	PG_RETURN_VOID();
}
