/*-------------------------------------------------------------------------
 *
 * advice.c
 *	  Index advice on the attached tables: redundant indexes, what makes an
 *	  index unsafe to drop, and which indexes a statement's plan uses.
 *
 * Everything here is read-only and bounded.  Tables and indexes are opened
 * with AccessShareLock taken conditionally: a relation whose lock is not
 * granted at once (an ALTER TABLE or a VACUUM FULL holds it) is skipped with
 * a NOTICE instead of waiting.  At most WM_ADVICE_MAX_INDEXES indexes of a
 * table are compared (pairs: the square of that).
 *
 * Indexes are compared as the relcache holds them: the key expressions and
 * the predicate after eval_const_expressions and canonicalize_qual
 * (RelationGetIndexExpressions / RelationGetIndexPredicate), compared with
 * equal() and predicate_implied_by(), never as text, so that one predicate
 * typed with other whitespace, parentheses or order of conjuncts is one
 * predicate.  Two key columns are the same only with the same column or
 * expression tree, operator class, collation and ordering options, so a
 * geometry index never covers a geography one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/prepare.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/pathnodes.h"
#include "nodes/plannodes.h"
#include "optimizer/optimizer.h"
#include "optimizer/paths.h"
#include "parser/parse_type.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "wm_perf.h"

/* Indexes of one table compared by wm_index_redundant(). */
#define WM_ADVICE_MAX_INDEXES	128

/* One index as the comparison needs it. */
typedef struct WmIndex
{
	Oid			indexoid;
	Oid			heapoid;
	Oid			relam;
	int			nkeys;			/* key columns */
	int			natts;			/* key and INCLUDE columns */
	AttrNumber	attnums[INDEX_MAX_KEYS];	/* 0: an expression */
	Node	   *exprs[INDEX_MAX_KEYS];	/* the expression, or NULL */
	Oid			opclass[INDEX_MAX_KEYS];	/* key columns only */
	Oid			opfamily[INDEX_MAX_KEYS];
	Oid			collation[INDEX_MAX_KEYS];
	int16		options[INDEX_MAX_KEYS];
	List	   *pred;			/* implicit AND; NIL if not partial */
	bool		primary;
	bool		unique;
	bool		exclusion;
	bool		replident;
	bool		clustered;
	bool		valid;
	bool		ready;
	bool		partitioned;	/* a partitioned index or a partition of one */
	int64		bytes;
	char	   *qualname;		/* schema-qualified, quoted */
} WmIndex;

/*
 * Lock a relation in AccessShareLock without waiting; false (and a NOTICE
 * naming it) if the lock is not granted at once.
 */
static bool
lock_or_skip(Oid relid, const char *what)
{
	char	   *name;

	if (ConditionalLockRelationOid(relid, AccessShareLock))
		return true;
	name = get_rel_name(relid);
	ereport(NOTICE,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("%s \"%s\" skipped: its lock is not available now",
					what, name ? name : "?"),
			 errdetail("wm_perf's advice never waits for a lock; another session holds a lock that conflicts with AccessShareLock."),
			 errhint("Call the function again later.")));
	return false;
}

static char *
qualified_relname(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* Read an opened index into *x. */
static void
load_index(Relation irel, WmIndex *x)
{
	Form_pg_index ind = irel->rd_index;
	oidvector  *indclass;
	Datum		d;
	bool		isnull;
	List	   *exprs;
	ListCell   *lc;
	int			i;

	memset(x, 0, sizeof(WmIndex));
	x->indexoid = RelationGetRelid(irel);
	x->heapoid = ind->indrelid;
	x->relam = irel->rd_rel->relam;
	x->nkeys = ind->indnkeyatts;
	x->natts = ind->indnatts;

	d = SysCacheGetAttr(INDEXRELID, irel->rd_indextuple,
						Anum_pg_index_indclass, &isnull);
	Assert(!isnull);
	indclass = (oidvector *) DatumGetPointer(d);

	exprs = RelationGetIndexExpressions(irel);
	lc = list_head(exprs);
	for (i = 0; i < x->natts; i++)
	{
		x->attnums[i] = ind->indkey.values[i];
		if (x->attnums[i] == 0)
		{
			if (lc == NULL)
				elog(ERROR, "too few entries in indexprs of index %u", x->indexoid);
			x->exprs[i] = (Node *) lfirst(lc);
			lc = lnext(exprs, lc);
		}
		if (i < x->nkeys)
		{
			x->opclass[i] = indclass->values[i];
			x->opfamily[i] = irel->rd_opfamily[i];
			x->collation[i] = irel->rd_indcollation[i];
			x->options[i] = irel->rd_indoption[i];
		}
	}
	x->pred = RelationGetIndexPredicate(irel);
	x->primary = ind->indisprimary;
	x->unique = ind->indisunique;
	x->exclusion = ind->indisexclusion;
	x->replident = ind->indisreplident;
	x->clustered = ind->indisclustered;
	x->valid = ind->indisvalid;
	x->ready = ind->indisready && ind->indislive;
	x->partitioned = irel->rd_rel->relkind == RELKIND_PARTITIONED_INDEX ||
		irel->rd_rel->relispartition;
	x->bytes = irel->rd_rel->relkind == RELKIND_PARTITIONED_INDEX ? 0 :
		(int64) RelationGetNumberOfBlocksInFork(irel, MAIN_FORKNUM) * BLCKSZ;
	x->qualname = qualified_relname(x->indexoid);
}

/* Index column i of x is the same key as column j of y. */
static bool
same_key(const WmIndex *x, int i, const WmIndex *y, int j)
{
	if (x->attnums[i] != y->attnums[j])
		return false;
	if (x->attnums[i] == 0 && !equal(x->exprs[i], y->exprs[j]))
		return false;
	return x->opclass[i] == y->opclass[j] &&
		x->collation[i] == y->collation[j] &&
		x->options[i] == y->options[j];
}

/* An expression of a predicate is index column i of x. */
static bool
is_column(const WmIndex *x, int i, Node *arg)
{
	while (arg && IsA(arg, RelabelType))
		arg = (Node *) ((RelabelType *) arg)->arg;
	if (arg == NULL)
		return false;
	if (x->attnums[i] != 0)
		return IsA(arg, Var) && ((Var *) arg)->varlevelsup == 0 &&
			((Var *) arg)->varattno == x->attnums[i];
	return equal(arg, x->exprs[i]);
}

static bool
is_nonnull_const(Node *arg)
{
	while (arg && IsA(arg, RelabelType))
		arg = (Node *) ((RelabelType *) arg)->arg;
	return arg && IsA(arg, Const) && !((Const *) arg)->constisnull;
}

/*
 * Key column i of the btree index x holds one value in every row that
 * satisfies the clauses: "col IS NULL" or "col = constant" with the
 * equality of the column's operator family.
 */
static bool
key_fixed(const WmIndex *x, int i, List *clauses)
{
	ListCell   *lc;

	foreach(lc, clauses)
	{
		Node	   *c = (Node *) lfirst(lc);

		if (IsA(c, NullTest))
		{
			NullTest   *nt = (NullTest *) c;

			if (nt->nulltesttype == IS_NULL && !nt->argisrow &&
				is_column(x, i, (Node *) nt->arg))
				return true;
		}
		else if (IsA(c, OpExpr) && list_length(((OpExpr *) c)->args) == 2)
		{
			OpExpr	   *op = (OpExpr *) c;
			Node	   *l = linitial(op->args);
			Node	   *r = lsecond(op->args);

			if (get_op_opfamily_strategy(op->opno, x->opfamily[i]) != BTEqualStrategyNumber)
				continue;
			if ((is_column(x, i, l) && is_nonnull_const(r)) ||
				(is_column(x, i, r) && is_nonnull_const(l)))
				return true;
		}
	}
	return false;
}

/* Every INCLUDE column of x is a column of y. */
static bool
includes_covered(const WmIndex *x, const WmIndex *y)
{
	int			i,
				j;

	for (i = x->nkeys; i < x->natts; i++)
	{
		for (j = 0; j < y->natts; j++)
			if (y->attnums[j] == x->attnums[i] && x->attnums[i] != 0)
				break;
		if (j == y->natts)
			return false;
	}
	return true;
}

/*
 * How y covers x, or NULL if it does not: every row of x is in y (x's
 * predicate implies y's), and y's key columns begin with x's, directly or,
 * for btree, once the key columns that the predicates fix to a constant are
 * left out (y's predicate fixes columns of both; x's own fixes its own).
 */
static const char *
covered_by(const WmIndex *x, const WmIndex *y)
{
	bool		equivalent;
	int			xk[INDEX_MAX_KEYS];
	int			yk[INDEX_MAX_KEYS];
	int			nx = 0;
	int			ny = 0;
	int			i;
	List	   *xfix;

	if (x->relam != y->relam || !y->valid || !y->ready)
		return NULL;
	if (y->pred != NIL &&
		(x->pred == NIL || !predicate_implied_by(y->pred, x->pred, false)))
		return NULL;
	if (!includes_covered(x, y))
		return NULL;
	equivalent = x->pred == NIL ? y->pred == NIL :
		y->pred != NIL && (equal(x->pred, y->pred) ||
						   predicate_implied_by(x->pred, y->pred, false));

	if (x->nkeys == y->nkeys ||
		(x->nkeys < y->nkeys && x->relam == BTREE_AM_OID))
	{
		for (i = 0; i < x->nkeys; i++)
			if (!same_key(x, i, y, i))
				break;
		if (i == x->nkeys)
		{
			if (!equivalent)
				return "subsumed";
			if (x->nkeys == y->nkeys && x->natts == y->natts)
				return "exact";
			return "prefix";
		}
	}

	if (x->relam != BTREE_AM_OID)
		return NULL;
	xfix = list_concat_copy(x->pred, y->pred);
	for (i = 0; i < x->nkeys; i++)
		if (!key_fixed(x, i, xfix))
			xk[nx++] = i;
	for (i = 0; i < y->nkeys; i++)
		if (!key_fixed(y, i, y->pred))
			yk[ny++] = i;
	list_free(xfix);
	if (nx == 0 || nx > ny)
		return NULL;
	for (i = 0; i < nx; i++)
		if (!same_key(x, xk[i], y, yk[i]))
			return NULL;
	return "prefix_after_constant_keys";
}

/*
 * The btree (or single-column hash) index x, not partial and valid, has the
 * foreign key's columns as its leading key columns, in any order: the
 * referential check "WHERE fk1 = $1 AND fk2 = $2" of a change to the
 * referenced table can use it.
 */
static bool
supports_fkey(const WmIndex *x, const ForeignKeyCacheInfo *fk)
{
	int			i,
				j;

	if (x->pred != NIL || !x->valid || x->nkeys < fk->nkeys)
		return false;
	if (x->relam != BTREE_AM_OID && !(x->relam == HASH_AM_OID && fk->nkeys == 1))
		return false;
	for (i = 0; i < fk->nkeys; i++)
	{
		for (j = 0; j < fk->nkeys; j++)
			if (x->attnums[j] == fk->conkey[i])
				break;
		if (j == fk->nkeys)
			return false;
	}
	return true;
}

static bool
intrinsically_blocked(const WmIndex *x)
{
	return x->primary || x->unique || x->exclusion || x->replident ||
		x->clustered || !x->valid || !x->ready || x->partitioned;
}

/*
 * Why dropping x is not safe, or NULL.  A foreign key that x supports
 * blocks it unless "cover" (the index that would remain) supports it too.
 */
static char *
blockers(const WmIndex *x, List *fkeys, const WmIndex *cover)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
#define WM_BLOCK(cond, text) \
	do { \
		if (cond) \
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", (text)); \
	} while (0)
	WM_BLOCK(x->primary, "primary key");
	WM_BLOCK(x->unique && !x->primary, "unique");
	WM_BLOCK(x->exclusion, "exclusion constraint");
	WM_BLOCK(x->replident, "replica identity");
	WM_BLOCK(x->clustered, "clustered");
	WM_BLOCK(!x->valid, "invalid");
	WM_BLOCK(!x->ready, "not ready (being built, or its build failed)");
	WM_BLOCK(x->partitioned, "part of a partitioned index");
	foreach(lc, fkeys)
	{
		ForeignKeyCacheInfo *fk = (ForeignKeyCacheInfo *) lfirst(lc);
		char	   *conname;

		if (!supports_fkey(x, fk) || (cover != NULL && supports_fkey(cover, fk)))
			continue;
		conname = get_constraint_name(fk->conoid);
		appendStringInfo(&buf, "%ssupports foreign key %s", buf.len > 0 ? ", " : "",
						 quote_identifier(conname ? conname : "?"));
	}
#undef WM_BLOCK
	if (buf.len == 0)
	{
		pfree(buf.data);
		return NULL;
	}
	return buf.data;
}

/*
 * Of two indexes that cover each other, the one to drop: one without an
 * intrinsic blocker before one with, then the one with more columns, then
 * the newer (higher oid).
 */
static bool
drop_first(const WmIndex *x, const WmIndex *y)
{
	bool		bx = intrinsically_blocked(x);
	bool		by = intrinsically_blocked(y);

	if (bx != by)
		return !bx;
	if (x->natts != y->natts)
		return x->natts > y->natts;
	return x->indexoid > y->indexoid;
}

/*
 * The indexes of an attached table, opened and read; the table and each
 * index stay locked (AccessShareLock) until the end of the transaction.
 * Returns the number read into out[], -1 if the table was skipped.
 */
static int
load_table_indexes(Oid heapoid, WmIndex *out, List **fkeys)
{
	Relation	heap;
	List	   *indexes;
	ListCell   *lc;
	int			n = 0;

	if (!lock_or_skip(heapoid, "table"))
		return -1;
	heap = try_table_open(heapoid, NoLock);
	if (heap == NULL)
		return -1;
	indexes = RelationGetIndexList(heap);
	*fkeys = copyObject(RelationGetFKeyList(heap));
	table_close(heap, NoLock);

	if (list_length(indexes) > WM_ADVICE_MAX_INDEXES)
		ereport(NOTICE,
				(errmsg("only the first %d of the %d indexes of table \"%s\" are compared",
						WM_ADVICE_MAX_INDEXES, list_length(indexes),
						get_rel_name(heapoid))));
	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		Relation	irel;

		CHECK_FOR_INTERRUPTS();
		if (n == WM_ADVICE_MAX_INDEXES)
			break;
		if (!lock_or_skip(indexoid, "index"))
			continue;
		irel = try_relation_open(indexoid, NoLock);
		if (irel == NULL)
			continue;
		load_index(irel, &out[n++]);
		relation_close(irel, NoLock);
	}
	list_free(indexes);
	return n;
}

/*
 * wm_index_redundant(): one row per (index, covering index) pair on the
 * attached tables.
 */
PG_FUNCTION_INFO_V1(wm_index_redundant);
Datum
wm_index_redundant(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	WmIndex    *idx;
	Oid			seen[WM_TABLE_COUNT];
	int			nseen = 0;
	int			t;

	WM_INIT_MATERIALIZED_SRF(fcinfo);
	wm_config_refresh();
	idx = palloc(sizeof(WmIndex) * WM_ADVICE_MAX_INDEXES);

	for (t = 0; t < WM_TABLE_COUNT; t++)
	{
		Oid			heapoid = wm_table_oid((WmTable) t);
		List	   *fkeys = NIL;
		int			n;
		int			i,
					j,
					k;

		if (!OidIsValid(heapoid))
			continue;
		for (k = 0; k < nseen; k++)
			if (seen[k] == heapoid)
				break;
		if (k < nseen)
			continue;
		seen[nseen++] = heapoid;

		n = load_table_indexes(heapoid, idx, &fkeys);
		for (i = 0; i < n; i++)
		{
			for (j = 0; j < n; j++)
			{
				const char *relation;
				char	   *blocker;
				Datum		values[9];
				bool		nulls[9] = {0};

				CHECK_FOR_INTERRUPTS();
				if (i == j)
					continue;
				relation = covered_by(&idx[i], &idx[j]);
				if (relation == NULL)
					continue;
				/* Covering each other: one row, for the one to drop. */
				if (covered_by(&idx[j], &idx[i]) != NULL &&
					!drop_first(&idx[i], &idx[j]))
					continue;

				blocker = blockers(&idx[i], fkeys, &idx[j]);
				values[0] = ObjectIdGetDatum(heapoid);
				values[1] = ObjectIdGetDatum(idx[i].indexoid);
				values[2] = ObjectIdGetDatum(idx[j].indexoid);
				values[3] = CStringGetTextDatum(relation);
				values[4] = Int64GetDatum(idx[i].bytes);
				values[5] = Int64GetDatum(idx[j].bytes);
				values[6] = CStringGetTextDatum(psprintf("DROP INDEX CONCURRENTLY %s;",
														 idx[i].qualname));
				values[7] = BoolGetDatum(blocker == NULL);
				if (blocker)
					values[8] = CStringGetTextDatum(blocker);
				else
					nulls[8] = true;
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			}
		}
	}
	return (Datum) 0;
}

/*
 * _wm_index_facts(index oid, OUT blocker text, OUT bytes bigint): why
 * dropping the index is not safe (NULL if nothing blocks it; a foreign key
 * it supports always blocks it here), and the size of its main fork.  A
 * relation whose lock is not granted at once is "not checked" (with a
 * NOTICE), never unblocked.  No row for an oid that is not an index.
 */
PG_FUNCTION_INFO_V1(wm_index_facts);
Datum
wm_index_facts(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {0};
	Oid			heapoid;
	Relation	heap;
	Relation	irel;
	List	   *fkeys;
	WmIndex		x;
	char	   *blocker;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (get_rel_relkind(indexoid) != RELKIND_INDEX &&
		get_rel_relkind(indexoid) != RELKIND_PARTITIONED_INDEX)
		PG_RETURN_NULL();
	heapoid = IndexGetRelation(indexoid, true);
	if (!OidIsValid(heapoid))
		PG_RETURN_NULL();

	heap = NULL;
	irel = NULL;
	if (lock_or_skip(heapoid, "table"))
		heap = try_table_open(heapoid, NoLock);
	if (heap != NULL && lock_or_skip(indexoid, "index"))
		irel = try_relation_open(indexoid, NoLock);
	if (irel == NULL)
	{
		if (heap != NULL)
			table_close(heap, NoLock);
		values[0] = CStringGetTextDatum("not checked: its lock is not available now");
		nulls[1] = true;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	fkeys = copyObject(RelationGetFKeyList(heap));
	table_close(heap, NoLock);
	load_index(irel, &x);
	relation_close(irel, NoLock);

	blocker = blockers(&x, fkeys, NULL);
	if (blocker)
		values[0] = CStringGetTextDatum(blocker);
	else
		nulls[0] = true;
	values[1] = Int64GetDatum(x.bytes);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * wm_explain_indexes(query): plan one SELECT (never executed), and report
 * the indexes its plan uses and, for each partial index of the relations
 * the planner considered, whether the statement's restriction implies the
 * predicate.  The planner decides the latter itself (IndexOptInfo.predOK,
 * from check_index_predicates()); a set_rel_pathlist hook, installed for
 * the duration of the planning only, records it.
 */
typedef struct WmPartialSeen
{
	Oid			heapoid;
	Oid			indexoid;
	bool		implied;
	bool		excluded;		/* the relation was proven empty */
	bool		params;			/* its restriction holds a parameter */
} WmPartialSeen;

/* The restriction of one relation as the planner saw it (varno 1). */
typedef struct WmRestriction
{
	Oid			relid;
	List	   *clauses;
} WmRestriction;

static List *explain_seen = NIL;
static List *explain_restrictions = NIL;
static MemoryContext explain_cxt = NULL;
static set_rel_pathlist_hook_type prev_set_rel_pathlist_hook = NULL;

static bool
contains_extern_param(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN)
		return true;
	if (IsA(node, RestrictInfo))
		return contains_extern_param((Node *) ((RestrictInfo *) node)->clause, context);
	return expression_tree_walker(node, contains_extern_param, context);
}

static void
explain_rel_hook(PlannerInfo *root, RelOptInfo *rel, Index rti, RangeTblEntry *rte)
{
	ListCell   *lc;
	bool		params;

	if (prev_set_rel_pathlist_hook)
		prev_set_rel_pathlist_hook(root, rel, rti, rte);
	if (rte->rtekind != RTE_RELATION || explain_cxt == NULL)
		return;
	params = contains_extern_param((Node *) rel->baserestrictinfo, NULL);
	if (!IS_DUMMY_REL(rel))
	{
		MemoryContext old = MemoryContextSwitchTo(explain_cxt);
		WmRestriction *r = palloc0(sizeof(WmRestriction));

		r->relid = rte->relid;
		foreach(lc, rel->baserestrictinfo)
			r->clauses = lappend(r->clauses,
								 copyObject(((RestrictInfo *) lfirst(lc))->clause));
		ChangeVarNodes((Node *) r->clauses, rti, 1, 0);
		explain_restrictions = lappend(explain_restrictions, r);
		MemoryContextSwitchTo(old);
	}
	foreach(lc, rel->indexlist)
	{
		IndexOptInfo *info = (IndexOptInfo *) lfirst(lc);
		MemoryContext old;
		WmPartialSeen *s;

		if (info->indpred == NIL)
			continue;
		old = MemoryContextSwitchTo(explain_cxt);
		s = palloc(sizeof(WmPartialSeen));
		s->heapoid = rte->relid;
		s->indexoid = info->indexoid;
		s->excluded = IS_DUMMY_REL(rel);
		s->implied = info->predOK && !s->excluded;
		s->params = params;
		explain_seen = lappend(explain_seen, s);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Plan a copy of q with the hook installed for this planning only:
 * explain_seen gets the partial indexes' verdicts, *restrictions (if
 * wanted) the restriction of every relation.
 */
static PlannedStmt *
plan_capturing(Query *q, const char *text, ParamListInfo params, List **restrictions)
{
	PlannedStmt *plan;

	explain_seen = NIL;
	explain_restrictions = NIL;
	explain_cxt = CurrentMemoryContext;
	prev_set_rel_pathlist_hook = set_rel_pathlist_hook;
	set_rel_pathlist_hook = explain_rel_hook;
	PG_TRY();
	{
		plan = pg_plan_query(copyObject(q), text, CURSOR_OPT_PARALLEL_OK, params);
	}
	PG_FINALLY();
	{
		set_rel_pathlist_hook = prev_set_rel_pathlist_hook;
		explain_cxt = NULL;
	}
	PG_END_TRY();
	if (restrictions)
		*restrictions = explain_restrictions;
	explain_restrictions = NIL;
	return plan;
}

/* Refuse what is not one plain SELECT, before parse analysis locks anything. */
static bool
raw_refused(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, SelectStmt))
	{
		SelectStmt *s = (SelectStmt *) node;

		if (s->lockingClause != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("a locking clause (FOR UPDATE, FOR SHARE) cannot be explained here"),
					 errdetail("Its parse analysis would take a lock stronger than AccessShareLock.")));
		if (s->intoClause != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("only a SELECT statement can be explained here"),
					 errdetail("The statement is SELECT INTO.")));
	}
	if (IsA(node, CommonTableExpr) &&
		!IsA(((CommonTableExpr *) node)->ctequery, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("only a SELECT statement can be explained here"),
				 errdetail("The statement has a data-modifying WITH query.")));
	return raw_expression_tree_walker(node, raw_refused, context);
}

/*
 * Parse and analyse one plain SELECT, refusing anything else before parse
 * analysis locks anything; parameter types are inferred.
 */
static Query *
analyze_select(const char *query, Oid **ptypes, int *nparams)
{
	List	   *raw;
	RawStmt    *stmt;
	List	   *rewritten;
	Query	   *q;
	int			i;

	raw = pg_parse_query(query);
	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must be exactly one statement"),
				 errdetail("It holds %d statements.", list_length(raw))));
	stmt = linitial_node(RawStmt, raw);
	/* PREPARE name (types) AS SELECT: the SELECT, with those types. */
	if (IsA(stmt->stmt, PrepareStmt))
	{
		PrepareStmt *prep = (PrepareStmt *) stmt->stmt;
		RawStmt    *inner = makeNode(RawStmt);
		ListCell   *lc;

		inner->stmt = prep->query;
		inner->stmt_location = stmt->stmt_location;
		inner->stmt_len = stmt->stmt_len;
		*nparams = list_length(prep->argtypes);
		if (*nparams > 0)
		{
			*ptypes = palloc(sizeof(Oid) * *nparams);
			foreach(lc, prep->argtypes)
				(*ptypes)[foreach_current_index(lc)] =
					typenameTypeId(NULL, (TypeName *) lfirst(lc));
		}
		stmt = inner;
	}
	if (!IsA(stmt->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("only a SELECT statement can be explained here"),
				 errdetail("The statement is %s.", CreateCommandName(stmt->stmt)),
				 errhint("Nothing is executed: the statement is planned only, and an INSERT, UPDATE, DELETE or utility statement is refused.")));
	raw_refused(stmt->stmt, NULL);

	rewritten = pg_analyze_and_rewrite_varparams(stmt, query, ptypes, nparams, NULL);
	for (i = 0; i < *nparams; i++)
		if ((*ptypes)[i] == InvalidOid || (*ptypes)[i] == UNKNOWNOID)
			ereport(ERROR,
					(errcode(ERRCODE_INDETERMINATE_DATATYPE),
					 errmsg("could not determine data type of parameter $%d", i + 1),
					 errhint("Cast the parameter, e.g. $%d::text.", i + 1)));
	if (list_length(rewritten) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a statement that rules rewrite into several cannot be explained here")));
	q = linitial_node(Query, rewritten);
	if (q->commandType != CMD_SELECT || q->utilityStmt != NULL || q->hasModifyingCTE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("only a SELECT statement can be explained here")));
	return q;
}

typedef struct WmUsedIndex
{
	Oid			indexoid;
	int			scans;			/* bit mask of the scan kinds below */
} WmUsedIndex;

#define WM_SCAN_INDEX		1
#define WM_SCAN_INDEX_ONLY	2
#define WM_SCAN_BITMAP		4

static void
note_used(List **used, Oid indexoid, int kind)
{
	ListCell   *lc;
	WmUsedIndex *u;

	foreach(lc, *used)
	{
		u = (WmUsedIndex *) lfirst(lc);
		if (u->indexoid == indexoid)
		{
			u->scans |= kind;
			return;
		}
	}
	u = palloc(sizeof(WmUsedIndex));
	u->indexoid = indexoid;
	u->scans = kind;
	*used = lappend(*used, u);
}

static void
walk_plan(Plan *plan, List **used)
{
	ListCell   *lc;

	if (plan == NULL)
		return;
	check_stack_depth();
	switch (nodeTag(plan))
	{
		case T_IndexScan:
			note_used(used, ((IndexScan *) plan)->indexid, WM_SCAN_INDEX);
			break;
		case T_IndexOnlyScan:
			note_used(used, ((IndexOnlyScan *) plan)->indexid, WM_SCAN_INDEX_ONLY);
			break;
		case T_BitmapIndexScan:
			note_used(used, ((BitmapIndexScan *) plan)->indexid, WM_SCAN_BITMAP);
			break;
		case T_Append:
			foreach(lc, ((Append *) plan)->appendplans)
				walk_plan((Plan *) lfirst(lc), used);
			break;
		case T_MergeAppend:
			foreach(lc, ((MergeAppend *) plan)->mergeplans)
				walk_plan((Plan *) lfirst(lc), used);
			break;
		case T_BitmapAnd:
			foreach(lc, ((BitmapAnd *) plan)->bitmapplans)
				walk_plan((Plan *) lfirst(lc), used);
			break;
		case T_BitmapOr:
			foreach(lc, ((BitmapOr *) plan)->bitmapplans)
				walk_plan((Plan *) lfirst(lc), used);
			break;
		case T_SubqueryScan:
			walk_plan(((SubqueryScan *) plan)->subplan, used);
			break;
		case T_CustomScan:
			foreach(lc, ((CustomScan *) plan)->custom_plans)
				walk_plan((Plan *) lfirst(lc), used);
			break;
		default:
			break;
	}
	walk_plan(plan->lefttree, used);
	walk_plan(plan->righttree, used);
}

static char *
scan_names(int scans)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (scans & WM_SCAN_INDEX)
		appendStringInfoString(&buf, "Index Scan");
	if (scans & WM_SCAN_INDEX_ONLY)
		appendStringInfo(&buf, "%sIndex Only Scan", buf.len ? ", " : "");
	if (scans & WM_SCAN_BITMAP)
		appendStringInfo(&buf, "%sBitmap Index Scan", buf.len ? ", " : "");
	return buf.data;
}

/* The predicate of an index as pg_get_expr shows it, or NULL. */
static Datum
index_predicate_text(Oid indexoid, Oid heapoid, bool *isnull)
{
	HeapTuple	tup;
	Datum		pred;
	Datum		result = (Datum) 0;

	*isnull = true;
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	if (!HeapTupleIsValid(tup))
		return result;
	pred = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indpred, isnull);
	if (!*isnull)
		result = DirectFunctionCall2(pg_get_expr, pred, ObjectIdGetDatum(heapoid));
	ReleaseSysCache(tup);
	return result;
}

PG_FUNCTION_INFO_V1(wm_explain_indexes);
Datum
wm_explain_indexes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid		   *ptypes = NULL;
	int			nparams = 0;
	Query	   *q;
	PlannedStmt *plan;
	List	   *used = NIL;
	List	   *seen;
	List	   *rows = NIL;		/* index oids, in report order */
	ListCell   *lc;

	WM_INIT_MATERIALIZED_SRF(fcinfo);
	q = analyze_select(query, &ptypes, &nparams);

	/* Plan it (a generic plan if it has parameters), recording predOK. */
	plan = plan_capturing(q, query, NULL, NULL);
	seen = explain_seen;
	explain_seen = NIL;

	/* EXPLAIN checks the caller's privileges in ExecutorStart: so do we. */
	WM_EXEC_CHECK_PLAN_PERMS(plan, true);

	walk_plan(plan->planTree, &used);
	foreach(lc, plan->subplans)
		walk_plan((Plan *) lfirst(lc), &used);

	foreach(lc, used)
		rows = list_append_unique_oid(rows, ((WmUsedIndex *) lfirst(lc))->indexoid);
	foreach(lc, seen)
		rows = list_append_unique_oid(rows, ((WmPartialSeen *) lfirst(lc))->indexoid);

	foreach(lc, rows)
	{
		Oid			indexoid = lfirst_oid(lc);
		Oid			heapoid = IndexGetRelation(indexoid, true);
		Datum		values[7];
		bool		nulls[7] = {0};
		ListCell   *lc2;
		int			scans = 0;
		bool		partial = false;
		bool		implied = false;
		bool		excluded = true;
		bool		params = false;

		foreach(lc2, used)
			if (((WmUsedIndex *) lfirst(lc2))->indexoid == indexoid)
				scans = ((WmUsedIndex *) lfirst(lc2))->scans;
		foreach(lc2, seen)
		{
			WmPartialSeen *s = (WmPartialSeen *) lfirst(lc2);

			if (s->indexoid != indexoid)
				continue;
			partial = true;
			implied |= s->implied;
			excluded &= s->excluded;
			params |= s->params && !s->implied;
		}

		values[0] = ObjectIdGetDatum(heapoid);
		values[1] = ObjectIdGetDatum(indexoid);
		if (scans)
			values[2] = CStringGetTextDatum(scan_names(scans));
		else
			nulls[2] = true;
		values[4] = index_predicate_text(indexoid, heapoid, &nulls[4]);
		values[3] = BoolGetDatum(!nulls[4]);
		if (partial && !excluded)
			values[5] = BoolGetDatum(implied);
		else
			nulls[5] = true;
		if (partial && excluded)
			values[6] = CStringGetTextDatum("the relation was proven empty: no scan is planned");
		else if (partial && !implied && params)
			values[6] = CStringGetTextDatum("generic plan: a parameter cannot prove the predicate; only a literal value can");
		else
			nulls[6] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * wm_index_missing(): the SELECT statements of pg_stat_statements (this
 * database, top level, the WM_MISSING_MAX_STATEMENTS with the most total
 * execution time) whose generic plan scans an attached table sequentially
 * with a filter: the index that would serve the filter, the planner's cost
 * before and after (hypopg, when installed and able to build it), and the
 * existing indexes that nearly serve it, with the reason.
 *
 * pg_stat_statements keeps statements with their constants replaced by
 * parameters, so every statement is planned as a generic plan.  Where that
 * is the only reason an existing partial index cannot serve it (the index
 * needs status = 'active', the statement compares status with $1), the
 * statement is planned again with that literal bound: if the table is then
 * no longer scanned sequentially, nothing is missing, and near_miss says
 * that only a literal (or a custom plan) gets the index.
 *
 * Each statement is planned in a subtransaction: one that no longer parses
 * (a dropped column), or that is not a plain SELECT, is skipped.
 */
#define WM_MISSING_MAX_STATEMENTS	500
#define WM_MISSING_LOCK_TIMEOUT		"50ms"
#define WM_MISSING_LOCK_TIMEOUT_MS	50

static bool
leading_column_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) && ((Var *) node)->varno == INDEX_VAR &&
		((Var *) node)->varattno == 1)
		return true;
	return expression_tree_walker(node, leading_column_walker, context);
}

/* Index conditions (after setrefs) that constrain the leading column. */
static bool
leading_qual(List *indexqual)
{
	return leading_column_walker((Node *) indexqual, NULL);
}

/* Some bitmap index scan of the tree constrains its leading column. */
static bool
bitmap_leading(Plan *plan)
{
	ListCell   *lc;

	if (plan == NULL)
		return false;
	switch (nodeTag(plan))
	{
		case T_BitmapIndexScan:
			return leading_qual(((BitmapIndexScan *) plan)->indexqual);
		case T_BitmapAnd:
			foreach(lc, ((BitmapAnd *) plan)->bitmapplans)
				if (bitmap_leading((Plan *) lfirst(lc)))
					return true;
			return false;
		case T_BitmapOr:
			foreach(lc, ((BitmapOr *) plan)->bitmapplans)
				if (!bitmap_leading((Plan *) lfirst(lc)))
					return false;
			return true;
		default:
			return false;
	}
}

/*
 * Scans of a relation that no index condition narrows: a sequential scan,
 * or an index or bitmap scan whose conditions leave the index's leading
 * column free (a full scan of the index, chosen for its predicate or for
 * a condition on a later column).
 */
static void
walk_unserved(Plan *plan, List *rtable, List **out)
{
	ListCell   *lc;
	Index		scanrelid = 0;

	if (plan == NULL)
		return;
	check_stack_depth();
	switch (nodeTag(plan))
	{
		case T_SeqScan:
			scanrelid = ((Scan *) plan)->scanrelid;
			break;
		case T_IndexScan:
			if (!leading_qual(((IndexScan *) plan)->indexqual) &&
				((IndexScan *) plan)->indexorderbyorig == NIL)
				scanrelid = ((Scan *) plan)->scanrelid;
			break;
		case T_IndexOnlyScan:
			if (!leading_qual(((IndexOnlyScan *) plan)->indexqual) &&
				((IndexOnlyScan *) plan)->indexorderby == NIL)
				scanrelid = ((Scan *) plan)->scanrelid;
			break;
		case T_BitmapHeapScan:
			if (!bitmap_leading(plan->lefttree))
				scanrelid = ((Scan *) plan)->scanrelid;
			break;
		case T_Append:
			foreach(lc, ((Append *) plan)->appendplans)
				walk_unserved((Plan *) lfirst(lc), rtable, out);
			break;
		case T_MergeAppend:
			foreach(lc, ((MergeAppend *) plan)->mergeplans)
				walk_unserved((Plan *) lfirst(lc), rtable, out);
			break;
		case T_SubqueryScan:
			walk_unserved(((SubqueryScan *) plan)->subplan, rtable, out);
			break;
		case T_CustomScan:
			foreach(lc, ((CustomScan *) plan)->custom_plans)
				walk_unserved((Plan *) lfirst(lc), rtable, out);
			break;
		default:
			break;
	}
	if (scanrelid > 0)
		*out = list_append_unique_oid(*out, rt_fetch(scanrelid, rtable)->relid);
	walk_unserved(plan->lefttree, rtable, out);
	walk_unserved(plan->righttree, rtable, out);
}

static List *
plan_unserved(PlannedStmt *plan)
{
	List	   *out = NIL;
	ListCell   *lc;

	walk_unserved(plan->planTree, plan->rtable, &out);
	foreach(lc, plan->subplans)
		walk_unserved((Plan *) lfirst(lc), plan->rtable, &out);
	return out;
}

static Node *
strip_relabel(Node *n)
{
	while (n && IsA(n, RelabelType))
		n = (Node *) ((RelabelType *) n)->arg;
	return n;
}

/* A plain column of the scanned relation (varno 1). */
static Var *
as_column(Node *n)
{
	n = strip_relabel(n);
	if (n && IsA(n, Var) && ((Var *) n)->varno == 1 &&
		((Var *) n)->varlevelsup == 0 && ((Var *) n)->varattno > 0)
		return (Var *) n;
	return NULL;
}

static bool
is_extern_param(Node *n)
{
	n = strip_relabel(n);
	return n && IsA(n, Param) && ((Param *) n)->paramkind == PARAM_EXTERN;
}

/* "col op x" with x a constant or a parameter: the column, and *opno. */
static Var *
column_vs_value(Node *clause, Oid *opno, Node **value)
{
	OpExpr	   *op;
	Var		   *v;

	if (!IsA(clause, OpExpr) || list_length(((OpExpr *) clause)->args) != 2)
		return NULL;
	op = (OpExpr *) clause;
	if ((v = as_column(linitial(op->args))) != NULL &&
		(is_nonnull_const(lsecond(op->args)) || is_extern_param(lsecond(op->args))))
	{
		*opno = op->opno;
		*value = strip_relabel(lsecond(op->args));
		return v;
	}
	if ((v = as_column(lsecond(op->args))) != NULL &&
		(is_nonnull_const(linitial(op->args)) || is_extern_param(linitial(op->args))))
	{
		*opno = get_commutator(op->opno);
		*value = strip_relabel(linitial(op->args));
		return OidIsValid(*opno) ? v : NULL;
	}
	return NULL;
}

/* The btree strategy of opno for the default btree opclass of the column. */
static int
btree_strategy(Var *v, Oid opno)
{
	Oid			opclass = GetDefaultOpClass(v->vartype, BTREE_AM_OID);

	if (!OidIsValid(opclass))
		return 0;
	return get_op_opfamily_strategy(opno, get_opclass_family(opclass));
}

/* PostGIS functions a GiST index serves through their support function. */
static bool
is_indexable_spatial(FuncExpr *f)
{
	static const char *const names[] = {
		"st_dwithin", "st_intersects", "st_contains", "st_within", "st_covers",
		"st_coveredby", "st_dfullywithin", "st_containsproperly", "st_overlaps",
		"st_touches", "st_crosses", NULL
	};
	char	   *name = get_func_name(f->funcid);
	Oid			postgis = get_extension_oid("postgis", true);
	int			i;

	if (name == NULL || !OidIsValid(postgis) ||
		getExtensionOfObject(ProcedureRelationId, f->funcid) != postgis)
		return false;
	for (i = 0; names[i]; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

static bool
contains_var_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
		return true;
	return expression_tree_walker(node, contains_var_walker, context);
}

static bool
contains_param_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param))
		return true;
	return expression_tree_walker(node, contains_param_walker, context);
}

/* The expression of the relation a spatial clause filters on, or NULL. */
static Node *
spatial_key(Node *clause)
{
	FuncExpr   *f;
	ListCell   *lc;

	if (!IsA(clause, FuncExpr) || !is_indexable_spatial((FuncExpr *) clause))
		return NULL;
	f = (FuncExpr *) clause;
	foreach(lc, f->args)
	{
		Node	   *arg = (Node *) lfirst(lc);

		if (contains_var_walker(arg, NULL) && !contains_param_walker(arg, NULL))
			return arg;
	}
	return NULL;
}

typedef struct WmSuggestion
{
	char	   *create;			/* CREATE INDEX CONCURRENTLY ... */
	char	   *hypo;			/* the same without CONCURRENTLY and name */
	Oid			am;
	Node	   *first_key;		/* a Var or an expression (varno 1) */
	List	   *pred;			/* the partial predicate, implicit AND */
	Node	   *spatial;		/* the spatial expression, if any */
} WmSuggestion;

/*
 * The index a sequential scan's filter asks for: GiST on the expression a
 * PostGIS predicate filters (ST_DWithin(location::geography, ...)), else
 * btree on the columns compared by equality with a parameter, then one
 * compared by a range; partial on the filter's IS [NOT] NULL tests and its
 * equalities with a literal.  NULL if the filter offers no key.
 */
static bool
build_suggestion(Oid relid, List *qual, WmSuggestion *sug)
{
	List	   *dp = deparse_context_for(get_rel_name(relid), relid);
	List	   *eqcols = NIL;
	Var		   *rangecol = NULL;
	StringInfoData keys;
	StringInfoData where;
	ListCell   *lc;

	memset(sug, 0, sizeof(WmSuggestion));
	foreach(lc, qual)
	{
		Node	   *c = (Node *) lfirst(lc);
		Oid			opno;
		Node	   *value;
		Var		   *v;
		Node	   *sk;

		if (IsA(c, NullTest) && as_column((Node *) ((NullTest *) c)->arg) &&
			!((NullTest *) c)->argisrow)
		{
			sug->pred = lappend(sug->pred, c);
			continue;
		}
		if ((sk = spatial_key(c)) != NULL)
		{
			if (sug->spatial == NULL)
				sug->spatial = sk;
			continue;
		}
		if ((v = column_vs_value(c, &opno, &value)) == NULL)
			continue;
		switch (btree_strategy(v, opno))
		{
			case BTEqualStrategyNumber:
				if (IsA(value, Const))
					sug->pred = lappend(sug->pred, c);
				else if (!list_member(eqcols, v))
					eqcols = lappend(eqcols, v);
				break;
			case BTLessStrategyNumber:
			case BTLessEqualStrategyNumber:
			case BTGreaterStrategyNumber:
			case BTGreaterEqualStrategyNumber:
				if (rangecol == NULL)
					rangecol = v;
				break;
			default:
				break;
		}
	}

	initStringInfo(&keys);
	if (sug->spatial)
	{
		sug->am = GIST_AM_OID;
		sug->first_key = sug->spatial;
		appendStringInfo(&keys, "gist ((%s))",
						 deparse_expression(sug->spatial, dp, false, true));
	}
	else if (eqcols != NIL || rangecol != NULL)
	{
		sug->am = BTREE_AM_OID;
		sug->first_key = eqcols ? (Node *) linitial(eqcols) : (Node *) rangecol;
		appendStringInfoString(&keys, "btree (");
		foreach(lc, eqcols)
			appendStringInfo(&keys, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(get_attname(relid, ((Var *) lfirst(lc))->varattno, false)));
		if (rangecol && !list_member(eqcols, rangecol))
			appendStringInfo(&keys, "%s%s", eqcols ? ", " : "",
							 quote_identifier(get_attname(relid, rangecol->varattno, false)));
		appendStringInfoChar(&keys, ')');
	}
	else
		return false;

	initStringInfo(&where);
	if (sug->pred != NIL)
		appendStringInfo(&where, " WHERE %s",
						 deparse_expression((Node *) make_ands_explicit(sug->pred), dp, false, true));
	sug->create = psprintf("CREATE INDEX CONCURRENTLY ON %s USING %s%s;",
						   qualified_relname(relid), keys.data, where.data);
	sug->hypo = psprintf("CREATE INDEX ON %s USING %s%s",
						 qualified_relname(relid), keys.data, where.data);
	return true;
}

typedef struct WmFindExpr
{
	Node	   *target;
} WmFindExpr;

static bool
find_expr_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (equal(node, ((WmFindExpr *) context)->target))
		return true;
	return expression_tree_walker(node, find_expr_walker, context);
}

static bool
qual_uses_expr(List *qual, Node *expr)
{
	WmFindExpr	ctx;

	ctx.target = expr;
	return find_expr_walker((Node *) qual, &ctx);
}

/* Index key i of x is an expression over columns the filter reads. */
static bool
key_touches(const WmIndex *x, int i, Bitmapset *qualcols)
{
	Bitmapset  *cols = NULL;
	bool		result;

	if (x->attnums[i] != 0)
		return bms_is_member(x->attnums[i] - FirstLowInvalidHeapAttributeNumber, qualcols);
	pull_varattnos(x->exprs[i], 1, &cols);
	result = bms_overlap(cols, qualcols);
	bms_free(cols);
	return result;
}

/* A parameter the filter compares column attno with by equality, or 0. */
static int
param_for_column(List *qual, AttrNumber attno, Oid *ptype)
{
	ListCell   *lc;

	foreach(lc, qual)
	{
		Oid			opno;
		Node	   *value;
		Var		   *v = column_vs_value((Node *) lfirst(lc), &opno, &value);

		if (v && v->varattno == attno && IsA(value, Param) &&
			btree_strategy(v, opno) == BTEqualStrategyNumber)
		{
			*ptype = ((Param *) value)->paramtype;
			return ((Param *) value)->paramid;
		}
	}
	return 0;
}

typedef struct WmBinding
{
	int			paramid;
	Const	   *value;
} WmBinding;

/*
 * Why the existing indexes of the table cannot serve the filter, for the
 * ones that index a column it reads: a predicate conjunct the filter does
 * not imply (and a parameter where the conjunct needs a literal: recorded
 * in *bindings), or an expression the filter does not use.
 */
static char *
near_misses(Oid relid, List *qual, const WmSuggestion *sug, List **bindings)
{
	WmIndex    *idx = palloc(sizeof(WmIndex) * WM_ADVICE_MAX_INDEXES);
	List	   *fkeys;
	List	   *dp = deparse_context_for(get_rel_name(relid), relid);
	Bitmapset  *qualcols = NULL;
	StringInfoData buf;
	int			n;
	int			i,
				k;

	n = load_table_indexes(relid, idx, &fkeys);
	pull_varattnos((Node *) qual, 1, &qualcols);
	initStringInfo(&buf);
	for (i = 0; i < n; i++)
	{
		WmIndex    *x = &idx[i];
		bool		touches = false;
		bool		expr_missing = false;
		ListCell   *lc;
		StringInfoData why;

		if (!x->valid || !x->ready)
			continue;
		for (k = 0; k < x->nkeys; k++)
			touches |= key_touches(x, k, qualcols);
		if (!touches)
			continue;
		initStringInfo(&why);

		/* The leading key: an expression the filter does not use. */
		if (x->attnums[0] == 0 && !qual_uses_expr(qual, x->exprs[0]))
		{
			expr_missing = true;
			appendStringInfo(&why, "it is on %s",
							 deparse_expression(x->exprs[0], dp, false, true));
			if (sug->spatial)
				appendStringInfo(&why, ", not %s",
								 deparse_expression(sug->spatial, dp, false, true));
			else
				appendStringInfoString(&why, ", which the statement does not use");
		}

		if (x->pred != NIL && !predicate_implied_by(x->pred, qual, false))
		{
			bool		first = true;
			StringInfoData params;

			initStringInfo(&params);
			appendStringInfo(&why, "%sits predicate needs ", why.len ? "; " : "");
			foreach(lc, x->pred)
			{
				Node	   *conj = (Node *) lfirst(lc);
				Oid			opno;
				Node	   *value;
				Var		   *v;
				Oid			ptype;
				int			paramid;

				if (predicate_implied_by(list_make1(conj), qual, false))
					continue;
				appendStringInfo(&why, "%s%s", first ? "" : " AND ",
								 deparse_expression(conj, dp, false, true));
				first = false;
				v = column_vs_value(conj, &opno, &value);
				if (v && IsA(value, Const) &&
					(paramid = param_for_column(qual, v->varattno, &ptype)) > 0 &&
					ptype == ((Const *) value)->consttype)
				{
					appendStringInfo(&params, "%s%s with $%d", params.len ? ", " : "",
									 quote_identifier(get_attname(relid, v->varattno, false)),
									 paramid);
					if (!expr_missing)
					{
						WmBinding  *b = palloc(sizeof(WmBinding));

						b->paramid = paramid;
						b->value = (Const *) value;
						*bindings = lappend(*bindings, b);
					}
				}
			}
			appendStringInfoString(&why, ", which the statement does not imply");
			if (params.len)
				appendStringInfo(&why, " (it compares %s, a parameter: a generic plan, as under plan_cache_mode = force_generic_plan, cannot prove the predicate; a literal can)",
								 params.data);
		}
		if (why.len > 0)
			appendStringInfo(&buf, "%s%s: %s", buf.len ? "; " : "",
							 quote_identifier(get_rel_name(x->indexoid)), why.data);
	}
	pfree(idx);
	return buf.len ? buf.data : NULL;
}

/* An existing valid index of the access method on the first key, usable. */
static bool
already_indexed(Oid relid, List *qual, const WmSuggestion *sug)
{
	WmIndex    *idx = palloc(sizeof(WmIndex) * WM_ADVICE_MAX_INDEXES);
	List	   *fkeys;
	int			n = load_table_indexes(relid, idx, &fkeys);
	int			i;
	bool		found = false;

	for (i = 0; i < n && !found; i++)
	{
		WmIndex    *x = &idx[i];
		Node	   *key;

		if (!x->valid || !x->ready || x->relam != sug->am)
			continue;
		if (x->pred != NIL && !predicate_implied_by(x->pred, qual, false))
			continue;
		key = strip_relabel(sug->first_key);
		if (IsA(key, Var))
			found = x->attnums[0] == ((Var *) key)->varattno;
		else
			found = x->attnums[0] == 0 && equal(x->exprs[0], key);
	}
	pfree(idx);
	return found;
}

/* The plan with the bindings still scans relid sequentially. */
static bool
still_seqscan(Query *q, const char *text, int nparams, Oid *ptypes,
			  List *bindings, Oid relid)
{
	ParamListInfo params = makeParamList(nparams);
	PlannedStmt *p;
	ListCell   *lc;
	int			i;

	params->numParams = nparams;
	for (i = 0; i < nparams; i++)
	{
		params->params[i].isnull = true;
		params->params[i].pflags = 0;
		params->params[i].ptype = InvalidOid;
	}
	foreach(lc, bindings)
	{
		WmBinding  *b = (WmBinding *) lfirst(lc);

		if (b->paramid < 1 || b->paramid > nparams)
			continue;
		params->params[b->paramid - 1].value = b->value->constvalue;
		params->params[b->paramid - 1].isnull = false;
		params->params[b->paramid - 1].pflags = PARAM_FLAG_CONST;
		params->params[b->paramid - 1].ptype = ptypes[b->paramid - 1];
	}
	p = pg_plan_query(copyObject(q), text, CURSOR_OPT_PARALLEL_OK, params);
	return list_member_oid(plan_unserved(p), relid);
}

/* A schema-qualified object name of an extension, quoted, or NULL. */
static char *
extension_schema(const char *extname)
{
	Oid			ext = get_extension_oid(extname, true);
	char	   *result = NULL;
	int			rc;

	if (!OidIsValid(ext))
		return NULL;
	rc = SPI_execute(psprintf("SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e"
							  " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace"
							  " WHERE e.oid OPERATOR(pg_catalog.=) %u", ext), true, 1);
	wm_spi_check(rc, SPI_OK_SELECT, "reading pg_extension");
	if (SPI_processed == 1)
		result = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return result;
}

typedef struct WmStatement
{
	int64		queryid;
	char	   *query;
	int64		calls;
	double		mean_ms;
} WmStatement;

/*
 * The planner's cost of the generic plan of the statement, through EXPLAIN
 * EXECUTE of a prepared copy under plan_cache_mode = force_generic_plan:
 * hypopg adds its hypothetical indexes only while EXPLAIN plans.  -1 if
 * EXPLAIN gives no cost.
 */
static double
explained_cost(const char *text, int nparams, const Oid *ptypes)
{
	StringInfoData sql;
	char	   *json;
	char	   *p;
	int			rc;
	int			i;

	DropPreparedStatement("_wm_perf_hypo", false);
	initStringInfo(&sql);
	appendStringInfoString(&sql, "PREPARE _wm_perf_hypo");
	for (i = 0; i < nparams; i++)
		appendStringInfo(&sql, "%s%s", i ? ", " : "(", format_type_be_qualified(ptypes[i]));
	appendStringInfo(&sql, "%s AS %s", nparams ? ")" : "", text);
	rc = SPI_execute(sql.data, false, 0);
	wm_spi_check(rc, SPI_OK_UTILITY, "preparing the statement");
	resetStringInfo(&sql);
	appendStringInfoString(&sql, "EXPLAIN (FORMAT JSON) EXECUTE _wm_perf_hypo");
	for (i = 0; i < nparams; i++)
		appendStringInfo(&sql, "%sNULL", i ? ", " : "(");
	appendStringInfoString(&sql, nparams ? ")" : "");
	rc = SPI_execute(sql.data, false, 0);
	wm_spi_check(rc, SPI_OK_UTILITY, "explaining the statement");
	json = SPI_processed > 0 ?
		SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
	rc = SPI_execute("DEALLOCATE _wm_perf_hypo", false, 0);
	wm_spi_check(rc, SPI_OK_UTILITY, "deallocating the statement");
	if (json == NULL || (p = strstr(json, "\"Total Cost\": ")) == NULL)
		return -1;
	return strtod(p + strlen("\"Total Cost\": "), NULL);
}

/*
 * The generic plan's cost without and with a hypothetical index (hypopg);
 * false if hypopg refuses it (hypopg 1.3 builds no GiST).  In its own
 * subtransaction, the hypothetical indexes reset and the setting restored
 * afterwards.
 */
static bool
hypothetical_costs(const char *hypo, const WmSuggestion *sug, const char *text,
				   int nparams, const Oid *ptypes, double *before, double *after)
{
	MemoryContext here = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = false;
	volatile Oid hypoid = InvalidOid;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(here);
	PG_TRY();
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1];
		bool		isnull;
		int			nest = NewGUCNestLevel();
		int			rc;

		(void) set_config_option("plan_cache_mode", "force_generic_plan",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
		*before = explained_cost(text, nparams, ptypes);
		args[0] = CStringGetTextDatum(sug->hypo);
		rc = SPI_execute_with_args(psprintf("SELECT indexrelid FROM %s.hypopg_create_index($1)", hypo),
								   1, argtypes, args, NULL, false, 0);
		wm_spi_check(rc, SPI_OK_SELECT, "creating a hypothetical index");
		if (SPI_processed == 1)
			hypoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
		*after = explained_cost(text, nparams, ptypes);
		AtEOXact_GUC(false, nest);
		ok = OidIsValid(hypoid) && *before >= 0 && *after >= 0;
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(here);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		/* Neither is transactional: drop them here. */
		DropPreparedStatement("_wm_perf_hypo", false);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(here);
	CurrentResourceOwner = owner;

	/* hypopg's indexes live in the backend, not in the transaction. */
	if (OidIsValid(hypoid))
	{
		Oid			argtypes[1] = {OIDOID};
		Datum		args[1];
		int			rc;

		args[0] = ObjectIdGetDatum(hypoid);
		rc = SPI_execute_with_args(psprintf("SELECT %s.hypopg_drop_index($1)", hypo),
								   1, argtypes, args, NULL, false, 0);
		wm_spi_check(rc, SPI_OK_SELECT, "dropping the hypothetical index");
	}
	return ok;
}

/* The rows of one statement. */
static void
missing_for_statement(const WmStatement *st, const Oid *tables, int ntables,
					  const char *hypo, ReturnSetInfo *rsinfo)
{
	Oid		   *ptypes = NULL;
	int			nparams = 0;
	Query	   *q;
	List	   *restrictions;
	PlannedStmt *plan;
	List	   *unserved;
	List	   *done = NIL;
	ListCell   *lc;
	int			t;

	/*
	 * Parse analysis and planning lock the statement's tables: wait for a
	 * lock WM_MISSING_LOCK_TIMEOUT at most (the statement is then skipped).
	 * The caller restores the setting (its GUC nest level).
	 */
	if (LockTimeout == 0 || LockTimeout > WM_MISSING_LOCK_TIMEOUT_MS)
		(void) set_config_option("lock_timeout", WM_MISSING_LOCK_TIMEOUT,
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	q = analyze_select(st->query, &ptypes, &nparams);
	plan = plan_capturing(q, st->query, NULL, &restrictions);

	/* Only statements the caller could run (as EXPLAIN would check). */
	if (!WM_EXEC_CHECK_PLAN_PERMS(plan, false))
		return;
	unserved = plan_unserved(plan);
	foreach(lc, restrictions)
	{
		WmRestriction *r = (WmRestriction *) lfirst(lc);
		WmSuggestion sug;
		List	   *bindings = NIL;
		char	   *near;
		bool		attached = false;
		Datum		values[10];
		bool		nulls[10] = {0};
		double		before = plan->planTree->total_cost;
		double		after = -1;
		bool		hypothetical = false;
		ListCell   *lc2;
		bool		seen = false;

		for (t = 0; t < ntables; t++)
			attached |= tables[t] == r->relid;
		if (!attached || r->clauses == NIL || !list_member_oid(unserved, r->relid))
			continue;
		foreach(lc2, done)
			seen |= ((WmRestriction *) lfirst(lc2))->relid == r->relid &&
				equal(((WmRestriction *) lfirst(lc2))->clauses, r->clauses);
		if (seen)
			continue;
		done = lappend(done, r);
		if (!build_suggestion(r->relid, r->clauses, &sug))
			continue;
		near = near_misses(r->relid, r->clauses, &sug, &bindings);
		if (already_indexed(r->relid, r->clauses, &sug))
			continue;
		if (bindings != NIL &&
			!still_seqscan(q, st->query, nparams, ptypes, bindings, r->relid))
		{
			/* A literal gets an existing index: nothing is missing. */
			sug.create = NULL;
			near = psprintf("%s; with the literal, the planner uses an existing index: no index is missing", near);
		}
		else if (hypo != NULL)
			hypothetical = hypothetical_costs(hypo, &sug, st->query, nparams, ptypes,
											  &before, &after);

		values[0] = Int64GetDatum(st->queryid);
		values[1] = CStringGetTextDatum(st->query);
		values[2] = Int64GetDatum(st->calls);
		values[3] = Float8GetDatum(st->mean_ms);
		values[4] = ObjectIdGetDatum(r->relid);
		if (sug.create)
			values[5] = CStringGetTextDatum(sug.create);
		else
			nulls[5] = true;
		values[6] = Float8GetDatum(hypothetical ? before : plan->planTree->total_cost);
		if (sug.create && hypothetical)
		{
			values[7] = Float8GetDatum(after);
			values[8] = CStringGetTextDatum("hypopg");
		}
		else if (sug.create)
		{
			nulls[7] = true;
			values[8] = CStringGetTextDatum("structural");
		}
		else
			nulls[7] = nulls[8] = true;
		if (near)
			values[9] = CStringGetTextDatum(near);
		else
			nulls[9] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

PG_FUNCTION_INFO_V1(wm_index_missing);
Datum
wm_index_missing(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext outer = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	const char *spl;
	char	   *pgss;
	char	   *hypo;
	WmStatement *stmts;
	Oid			tables[WM_TABLE_COUNT];
	char	   *tablenames[WM_TABLE_COUNT];
	volatile int ntables = 0;
	uint64		nstmts;
	uint64		s;
	int			rc;
	int			t;

	WM_INIT_MATERIALIZED_SRF(fcinfo);

	spl = GetConfigOption("shared_preload_libraries", true, false);
	if (!OidIsValid(get_extension_oid("pg_stat_statements", true)) ||
		spl == NULL || strstr(spl, "pg_stat_statements") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_stat_statements is not available"),
				 errdetail("%s",
						   OidIsValid(get_extension_oid("pg_stat_statements", true)) ?
						   "The extension exists, but the library is not in shared_preload_libraries." :
						   "The extension pg_stat_statements is not installed in this database."),
				 errhint("Add pg_stat_statements to shared_preload_libraries, restart the server, and run CREATE EXTENSION pg_stat_statements.")));

	wm_config_refresh();
	for (t = 0; t < WM_TABLE_COUNT; t++)
	{
		Oid			relid = wm_table_oid((WmTable) t);

		if (OidIsValid(relid) && get_rel_name(relid) != NULL)
		{
			tables[ntables] = relid;
			tablenames[ntables] = get_rel_name(relid);
			ntables++;
		}
	}

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	pgss = extension_schema("pg_stat_statements");
	hypo = extension_schema("hypopg");
	rc = SPI_execute(psprintf("SELECT s.queryid, s.query, s.calls, s.mean_exec_time"
							  " FROM %s.pg_stat_statements s"
							  " WHERE s.dbid OPERATOR(pg_catalog.=) %u AND s.toplevel"
							  " ORDER BY s.total_exec_time DESC, s.queryid LIMIT %d",
							  pgss, MyDatabaseId, WM_MISSING_MAX_STATEMENTS),
					 true, 0);
	wm_spi_check(rc, SPI_OK_SELECT, "reading pg_stat_statements");
	nstmts = SPI_processed;
	stmts = MemoryContextAlloc(outer, sizeof(WmStatement) * (nstmts + 1));
	for (s = 0; s < nstmts; s++)
	{
		HeapTuple	tup = SPI_tuptable->vals[s];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *text = SPI_getvalue(tup, desc, 2);

		stmts[s].queryid = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		stmts[s].query = text ? MemoryContextStrdup(outer, text) : NULL;
		stmts[s].calls = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		stmts[s].mean_ms = DatumGetFloat8(SPI_getbinval(tup, desc, 4, &isnull));
	}

	for (s = 0; s < nstmts; s++)
	{
		char	   *lower;
		bool		mentions = false;

		CHECK_FOR_INTERRUPTS();
		if (stmts[s].query == NULL)
			continue;
		lower = asc_tolower(stmts[s].query, strlen(stmts[s].query));
		for (t = 0; t < ntables && !mentions; t++)
			mentions = strstr(lower, tablenames[t]) != NULL;
		if (!mentions)
			continue;

		/* A statement that fails to plan is skipped, not an error. */
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(outer);
		PG_TRY();
		{
			int			nest = NewGUCNestLevel();

			missing_for_statement(&stmts[s], tables, ntables, hypo, rsinfo);
			AtEOXact_GUC(false, nest);
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(outer);
			edata = CopyErrorData();
			if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
				edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
				PG_RE_THROW();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = owner;
	}
	SPI_finish();
	return (Datum) 0;
}
