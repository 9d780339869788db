/*-------------------------------------------------------------------------
 *
 * xact.c
 *	  Pending invalidations of the current transaction and their delivery
 *	  at commit.
 *
 * Triggers record scopes and application keys here (no network I/O).  Each
 * record carries the subtransaction that made it; ROLLBACK TO SAVEPOINT drops
 * that subtransaction's records, RELEASE hands them to the parent, and a
 * top-level abort drops everything.  At XACT_EVENT_PRE_COMMIT, while an
 * ERROR still aborts cleanly, the Redis commands are built in
 * delivery_context.  At XACT_EVENT_COMMIT the transaction is durable and
 * visible: one pipelined round trip INCRs each touched scope's generation
 * and UNLINKs the application keys.  With shared_preload_libraries the
 * scopes go to the worker instead (see deliver()).  Nothing there may raise
 * an ERROR or palloc; a failure is a rate-limited WARNING, after which this
 * backend remembers the scopes, bypasses them itself and retries later
 * (other backends: bounded by wm_perf.cache_ttl, see docs/architecture.md).
 *
 * PREPARE TRANSACTION with pending invalidations is refused (0A000): the
 * COMMIT PREPARED may run in another backend, where nothing would deliver.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "redis.h"
#include "wm_perf.h"

/* Without preload, glob deletions do at most this many SCANs each... */
#define WM_SCAN_MAX_ROUNDS 100

/* ... and all of a commit's together take at most this many timeouts. */
#define WM_PATTERN_BUDGET_TIMEOUTS 4

/* Distinct application keys kept per transaction (then: glob patterns). */
#define WM_MAX_PENDING_KEYS 10000

/* Distinct fallback patterns kept per transaction (one per rule, usually). */
#define WM_MAX_FALLBACKS 64

typedef struct WmPendingKey
{
	char		key[WM_MAX_KEY_LEN];	/* hash key: must be first */
	SubTransactionId subxid;
	bool		pattern;
	int			fallback;		/* index in fallbacks[], or -1 */
} WmPendingKey;

static const char *const scope_names[WM_SCOPE_COUNT] = {"routes", "bins"};

/* Per transaction: the subtransaction that recorded each scope. */
static SubTransactionId scope_subxid[WM_SCOPE_COUNT];
/*
 * ... and the one whose BEFORE statement trigger marked it, before any row
 * of the statement changed: the transaction reads the scope around the
 * cache from then on (it may already see its own uncommitted rows), but
 * nothing is sent at commit for it alone.
 */
static SubTransactionId touched_subxid[WM_SCOPE_COUNT];
/* ... and each scope wm_cache_flush() named: bumped even when quiet. */
static SubTransactionId force_subxid[WM_SCOPE_COUNT];
static HTAB *pending_keys = NULL;	/* in TopTransactionContext */

/*
 * The glob forms of the rules that produced exact keys: what the worker
 * deletes instead when a failed key finds no room in its queue.
 */
static char *fallbacks[WM_MAX_FALLBACKS];	/* in TopTransactionContext */
static int	nfallbacks = 0;

/* Built at PRE_COMMIT, sent at COMMIT. */
static MemoryContext delivery_context = NULL;
static int	delivery_scope_mask = 0;
static int	delivery_force_mask = 0;
static int	n_incr = 0;
static char **incr_keys = NULL;
static int	n_unlink = 0;
static char **unlink_keys = NULL;
static char **unlink_fallbacks = NULL;	/* per key: a pattern covering it */
static int	n_patterns = 0;
static char **patterns = NULL;

/* Scopes whose invalidation this backend could not deliver (no preload). */
static int	undelivered_mask = 0;

const char *
wm_scope_name(WmScope scope)
{
	return scope_names[scope];
}

/*
 * Keys start with <prefix>:v<layout>:<cluster>: the cluster's system
 * identifier keeps two clusters sharing one Redis apart (database oids
 * repeat across clusters).  No palloc: used after commit and by the worker.
 */
static void
key_cluster(char *buf, size_t size)
{
	/*
	 * The system identifier in braces is a Redis Cluster hash tag: every
	 * key of the cluster (epoch, generations, values) maps to one hash slot,
	 * so the scripts, which read the epoch, a generation and a value at
	 * once, run on one node.  On a standalone Redis braces are characters.
	 */
	snprintf(buf, size, "%s:v%d:{" UINT64_FORMAT "}", wm_guc_key_prefix,
			 WM_CACHE_KEY_VERSION, GetSystemIdentifier());
}

void
wm_key_epoch(char *buf, size_t size)
{
	char		cluster[WM_MAX_KEY_LEN];

	key_cluster(cluster, sizeof(cluster));
	snprintf(buf, size, "%s:epoch", cluster);
}

void
wm_key_generation(char *buf, size_t size, Oid dboid, WmScope scope)
{
	char		cluster[WM_MAX_KEY_LEN];

	key_cluster(cluster, sizeof(cluster));
	snprintf(buf, size, "%s:%u:gen:%s", cluster, dboid, scope_names[scope]);
}

/* Prefix of the cached values of a scope. */
void
wm_key_values(char *buf, size_t size, Oid dboid, WmScope scope)
{
	char		cluster[WM_MAX_KEY_LEN];

	key_cluster(cluster, sizeof(cluster));
	snprintf(buf, size, "%s:%u:%s", cluster, dboid, scope_names[scope]);
}

void
wm_xact_add_scope(WmScope scope)
{
	if (scope_subxid[scope] == InvalidSubTransactionId)
		scope_subxid[scope] = GetCurrentSubTransactionId();
	wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_RECORDED, 1);
}

/* A BEFORE statement trigger: the statement is about to change the scope. */
void
wm_xact_touch_scope(WmScope scope)
{
	if (touched_subxid[scope] == InvalidSubTransactionId)
		touched_subxid[scope] = GetCurrentSubTransactionId();
}

/*
 * wm_cache_flush(): the scope's Redis generation is bumped at commit even
 * when nothing was stored since its last bump (an operator may flush
 * because of what Redis holds, not of what this cluster stored).
 */
void
wm_xact_force_scope(WmScope scope)
{
	wm_xact_add_scope(scope);
	if (force_subxid[scope] == InvalidSubTransactionId)
		force_subxid[scope] = GetCurrentSubTransactionId();
}

static int
fallback_index(const char *fallback)
{
	int			i;

	if (fallback == NULL)
		return -1;
	for (i = 0; i < nfallbacks; i++)
		if (strcmp(fallbacks[i], fallback) == 0)
			return i;
	if (nfallbacks == WM_MAX_FALLBACKS || strlen(fallback) >= WM_MAX_KEY_LEN)
		return -1;
	fallbacks[nfallbacks] = MemoryContextStrdup(TopTransactionContext, fallback);
	return nfallbacks++;
}

/*
 * Record an application key (or glob pattern) to delete at commit;
 * 'fallback' (may be NULL) is a glob pattern that covers an exact key.
 * Returns false when the per-transaction cap is reached: the caller then
 * records the rule's glob form instead.
 */
bool
wm_xact_add_key(const char *key, bool pattern, const char *fallback)
{
	WmPendingKey *entry;
	bool		found;
	char		buf[WM_MAX_KEY_LEN];

	/* Too long a key: the caller falls back to the rule's glob form. */
	if (strlen(key) >= WM_MAX_KEY_LEN)
		return false;

	if (pending_keys == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = WM_MAX_KEY_LEN;
		ctl.entrysize = sizeof(WmPendingKey);
		ctl.hcxt = TopTransactionContext;
		pending_keys = hash_create("wm_perf pending keys", 64, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	else if (!pattern && hash_get_num_entries(pending_keys) >= WM_MAX_PENDING_KEYS)
	{
		/*
		 * Still honour keys we already have; refuse only new exact keys (the
		 * caller then records the rule's glob form, which is always kept).
		 */
		if (hash_search(pending_keys, key, HASH_FIND, NULL) != NULL)
			return true;
		return false;
	}

	strlcpy(buf, key, sizeof(buf));
	entry = hash_search(pending_keys, buf, HASH_ENTER, &found);
	if (!found)
	{
		entry->subxid = GetCurrentSubTransactionId();
		entry->pattern = pattern;
		entry->fallback = pattern ? -1 : fallback_index(fallback);
	}
	return true;
}

/*
 * Has this transaction (or a live subtransaction) changed the scope, or
 * begun a statement that may change it?
 */
bool
wm_xact_scope_pending(WmScope scope)
{
	return scope_subxid[scope] != InvalidSubTransactionId ||
		touched_subxid[scope] != InvalidSubTransactionId;
}

/*
 * Has this backend failed to deliver an invalidation of the scope?  Tries
 * again first (not on the commit path here, so it may take its time).
 */
bool
wm_xact_scope_undelivered(WmScope scope)
{
	if ((undelivered_mask & (1 << scope)) != 0)
	{
		char		key[WM_MAX_KEY_LEN];
		char	   *keyp = key;
		long		unlinked;

		wm_key_generation(key, sizeof(key), MyDatabaseId, scope);
		if (wm_redis_deliver(1, &keyp, 0, NULL, &unlinked) == WM_REDIS_OK)
		{
			undelivered_mask &= ~(1 << scope);
			wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_DELIVERED, 1);
			wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_RETRIED, 1);
		}
	}
	return (undelivered_mask & (1 << scope)) != 0;
}

static void
reset_pending(void)
{
	int			s;

	for (s = 0; s < WM_SCOPE_COUNT; s++)
		scope_subxid[s] = force_subxid[s] = touched_subxid[s] =
			InvalidSubTransactionId;
	pending_keys = NULL;		/* freed with TopTransactionContext */
	nfallbacks = 0;
}

static void
reset_delivery(void)
{
	if (delivery_context)
		MemoryContextReset(delivery_context);
	delivery_scope_mask = delivery_force_mask = 0;
	n_incr = n_unlink = n_patterns = 0;
	incr_keys = unlink_keys = unlink_fallbacks = patterns = NULL;
}

static bool
anything_pending(void)
{
	int			s;

	for (s = 0; s < WM_SCOPE_COUNT; s++)
		if (scope_subxid[s] != InvalidSubTransactionId)
			return true;
	return pending_keys != NULL && hash_get_num_entries(pending_keys) > 0;
}

/* A glob pattern that matches exactly 'key'. */
static char *
glob_escape(const char *key)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (; *key; key++)
	{
		if (strchr("*?[]\\", *key) != NULL)
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *key);
	}
	return buf.data;
}

/* PRE_COMMIT: everything that can fail. */
static void
prepare_delivery(void)
{
	MemoryContext oldcxt;
	HASH_SEQ_STATUS seq;
	WmPendingKey *entry;
	long		nkeys;
	int			s;

	reset_delivery();
	if (!anything_pending())
		return;

	if (delivery_context == NULL)
		delivery_context = AllocSetContextCreate(TopMemoryContext,
												 "wm_perf delivery",
												 ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(delivery_context);

	incr_keys = palloc(sizeof(char *) * WM_SCOPE_COUNT);
	for (s = 0; s < WM_SCOPE_COUNT; s++)
	{
		if (scope_subxid[s] == InvalidSubTransactionId)
			continue;
		delivery_scope_mask |= 1 << s;
		if (force_subxid[s] != InvalidSubTransactionId)
			delivery_force_mask |= 1 << s;
		incr_keys[n_incr] = palloc(WM_MAX_KEY_LEN);
		wm_key_generation(incr_keys[n_incr], WM_MAX_KEY_LEN, MyDatabaseId, s);
		n_incr++;
	}

	nkeys = pending_keys ? hash_get_num_entries(pending_keys) : 0;
	unlink_keys = palloc(sizeof(char *) * (nkeys + 1));
	unlink_fallbacks = palloc(sizeof(char *) * (nkeys + 1));
	patterns = palloc(sizeof(char *) * (nkeys + 1));
	if (nkeys > 0)
	{
		hash_seq_init(&seq, pending_keys);
		while ((entry = hash_seq_search(&seq)) != NULL)
		{
			if (entry->pattern)
				patterns[n_patterns++] = pstrdup(entry->key);
			else
			{
				unlink_fallbacks[n_unlink] = entry->fallback >= 0 ?
					pstrdup(fallbacks[entry->fallback]) : glob_escape(entry->key);
				unlink_keys[n_unlink++] = pstrdup(entry->key);
			}
		}
	}
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Exact keys whose UNLINK failed (or that this backend must not send): to
 * the worker, else their patterns.
 */
static void
queue_failed_keys(void)
{
	int			i;

	for (i = 0; i < n_unlink; i++)
		if (wm_shmem_enqueue_keys(&unlink_keys[i], 1, false) > 0)
			(void) wm_shmem_enqueue_keys(&unlink_fallbacks[i], 1, true);
}

/* Without preload: the glob patterns, on the commit path, within a budget. */
static bool
unlink_patterns_now(long *unlinked)
{
	/* One budget for all patterns: the commit waits at most this. */
	TimestampTz deadline =
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									WM_PATTERN_BUDGET_TIMEOUTS * wm_guc_redis_command_timeout);
	long		matched;
	int			i;

	for (i = 0; i < n_patterns; i++)
	{
		char		cursor[WM_SCAN_CURSOR_LEN] = "0";
		WmRedisStatus st;

		if (GetCurrentTimestamp() >= deadline)
			return false;
		st = wm_redis_unlink_matching(patterns[i], cursor, WM_SCAN_MAX_ROUNDS,
									  deadline, &matched);
		*unlinked += matched;
		if (st != WM_REDIS_OK)
			return false;
	}
	return true;
}

/*
 * COMMIT: deliver.  No ERROR, no palloc.
 *
 * With shared_preload_libraries the scopes are handed to the worker: the
 * dirty flag is set in shared memory (readers bypass the scope from this
 * moment until the worker has bumped its generation) and the worker's latch
 * is set; the commit pays no network round trip for them.  Exact
 * application keys are UNLINKed here, in one round trip, because the
 * application reads them without asking PostgreSQL; glob patterns (SCAN) and
 * exact keys whose UNLINK failed go to the worker's queue, which retries
 * until Redis takes them.  Without preload, this backend sends the bump and
 * scans the patterns itself, within a budget, and a failure is final
 * (bounded by the TTLs; see docs/architecture.md).
 */
static void
deliver(void)
{
	WmRedisStatus st = WM_REDIS_OK;
	long		unlinked = 0;
	int			nbump = n_incr;
	int			quiet_mask = 0;
	int			s;
	bool		preload = wm_shmem_counters() != NULL;

	if (n_incr + n_unlink + n_patterns == 0)
		return;

	/*
	 * No Redis configured in this backend (a server-wide setting, but the
	 * worker and other backends may not have reloaded it yet): nothing
	 * reaches Redis, so whatever it still holds must become unreachable
	 * before it is used again.  Demand an epoch bump (readers bypass until
	 * the worker has made it), which also makes every local copy unusable.
	 */
	if (!wm_redis_configured())
	{
		if (n_incr > 0)
			wm_shmem_require_epoch();	/* also advances every local generation */
		return;
	}

	if (n_incr > 0 && wm_shmem_mark_dirty(MyDatabaseId, delivery_scope_mask,
										  delivery_force_mask, &quiet_mask))
	{
		nbump = 0;				/* the worker delivers the scopes */
		/* Quiet scopes: nothing cached under their generation to reach. */
		wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_DELIVERED,
					   pg_popcount32((uint32) quiet_mask));
	}
	if (preload && n_patterns > 0)
		(void) wm_shmem_enqueue_keys(patterns, n_patterns, true);

	/*
	 * This backend has not taken in the worker's Redis target (or the worker
	 * has not taken in ours): the keys go to the worker, which deletes them
	 * where it bumps the generations.
	 */
	if (preload && !wm_shmem_worker_target_is(wm_redis_target_signature()))
	{
		queue_failed_keys();
		return;
	}

	if (nbump + n_unlink > 0)
		st = wm_redis_deliver(nbump, incr_keys, n_unlink, unlink_keys, &unlinked);
	if (st == WM_REDIS_OK)
	{
		wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_DELIVERED, nbump);
		if (!preload && n_patterns > 0 && !unlink_patterns_now(&unlinked))
			wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_FAILED, 1);
		wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_KEYS_DELETED, unlinked);
		return;
	}

	/* Not delivered (keys, or scopes without preload). */
	wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_FAILED, Max(nbump, 1));
	if (preload)
		queue_failed_keys();
	for (s = 0; s < WM_SCOPE_COUNT && nbump > 0; s++)
		if ((delivery_scope_mask & (1 << s)) != 0)
			undelivered_mask |= 1 << s;
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			prepare_delivery();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			wm_standby_xact_ended();
			deliver();
			reset_pending();
			/* Keep the context, drop its contents: no palloc here. */
			reset_delivery();
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (anything_pending())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that changed tables wm_perf caches"),
						 errdetail("The cache invalidation would be lost if COMMIT PREPARED ran in another session."),
						 errhint("Commit the change without two-phase commit, or detach wm_perf from the table.")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wm_standby_xact_ended();
			reset_pending();
			reset_delivery();
			break;
	}
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	HASH_SEQ_STATUS seq;
	WmPendingKey *entry;
	int			s;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;

	for (s = 0; s < WM_SCOPE_COUNT; s++)
	{
		if (scope_subxid[s] != mySubid)
			continue;
		scope_subxid[s] = event == SUBXACT_EVENT_ABORT_SUB ?
			InvalidSubTransactionId : parentSubid;
	}
	for (s = 0; s < WM_SCOPE_COUNT; s++)
	{
		if (force_subxid[s] == mySubid)
			force_subxid[s] = event == SUBXACT_EVENT_ABORT_SUB ?
				InvalidSubTransactionId : parentSubid;
		if (touched_subxid[s] == mySubid)
			touched_subxid[s] = event == SUBXACT_EVENT_ABORT_SUB ?
				InvalidSubTransactionId : parentSubid;
	}

	if (pending_keys == NULL)
		return;
	hash_seq_init(&seq, pending_keys);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		if (entry->subxid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_ABORT_SUB)
			hash_search(pending_keys, entry->key, HASH_REMOVE, NULL);
		else
			entry->subxid = parentSubid;
	}
}

/* Called once, from _PG_init. */
void
wm_xact_init(void)
{
	reset_pending();
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}
