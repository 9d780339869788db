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
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/pathnodes.h"
#include "nodes/plannodes.h"
#include "optimizer/optimizer.h"
#include "optimizer/paths.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
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

static List *explain_seen = NIL;
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
	List	   *raw;
	RawStmt    *stmt;
	Oid		   *ptypes = NULL;
	int			nparams = 0;
	List	   *rewritten;
	Query	   *q;
	PlannedStmt *plan;
	List	   *used = NIL;
	List	   *seen;
	List	   *rows = NIL;		/* index oids, in report order */
	ListCell   *lc;
	int			i;

	WM_INIT_MATERIALIZED_SRF(fcinfo);

	raw = pg_parse_query(query);
	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must be exactly one statement"),
				 errdetail("It holds %d statements.", list_length(raw))));
	stmt = linitial_node(RawStmt, raw);
	if (!IsA(stmt->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("only a SELECT statement can be explained here"),
				 errdetail("The statement is %s.", CreateCommandName(stmt->stmt)),
				 errhint("Nothing is executed: the statement is planned only, and an INSERT, UPDATE, DELETE or utility statement is refused.")));
	raw_refused(stmt->stmt, NULL);

	rewritten = pg_analyze_and_rewrite_varparams(stmt, query, &ptypes, &nparams, NULL);
	for (i = 0; i < nparams; i++)
		if (ptypes[i] == InvalidOid || ptypes[i] == UNKNOWNOID)
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

	/* Plan it (a generic plan if it has parameters), recording predOK. */
	explain_seen = NIL;
	explain_cxt = CurrentMemoryContext;
	prev_set_rel_pathlist_hook = set_rel_pathlist_hook;
	set_rel_pathlist_hook = explain_rel_hook;
	PG_TRY();
	{
		plan = pg_plan_query(q, query, CURSOR_OPT_PARALLEL_OK, NULL);
	}
	PG_FINALLY();
	{
		set_rel_pathlist_hook = prev_set_rel_pathlist_hook;
		explain_cxt = NULL;
	}
	PG_END_TRY();
	seen = explain_seen;
	explain_seen = NIL;

	/* EXPLAIN checks the caller's privileges in ExecutorStart: so do we. */
	ExecCheckRTPerms(plan->rtable, true);

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
