/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared state with shared_preload_libraries: cluster-wide metrics and
 *	  the invalidations that could not be delivered at commit.
 *
 * Locking protocol:
 *	- counters[] are pg_atomic_uint64, updated without any lock.
 *	- dirty[], ndirty, overflow, seq, worker_latch, tracked[], ntracked and
 *	  track_overflow are protected by the spinlock "mutex".  Critical
 *	  sections are loads, stores and scans of the two fixed arrays: no
 *	  allocation, no call that can fail, so the post-commit path may take
 *	  it.
 *	- ndirty_hint, epoch_demand, epoch_done and worker_target are atomics
 *	  readers test without the lock; a reader that sees a non-zero hint
 *	  takes the lock to look.
 *
 * Protocol: a commit that changed a scope marks (database, scopes) dirty
 * here and sets the worker's latch; it does no network I/O.  The worker
 * bumps the generations in Redis a little later (coalescing commits) and
 * clears an entry only if nothing marked it again meanwhile (seq).  A
 * reader that finds its scope dirty bumps the generation itself and clears
 * the scope's bit under the same seq rule (wm_shmem_clear_scope), so it
 * never has to wait for the worker.  Epoch bumps are counted: every demand
 * for one (a fresh shared memory segment, a change of the Redis target, no
 * Redis configured, a commit without Redis) increments epoch_demand, and
 * the worker, after a bump of the global epoch key that was sent after it
 * read epoch_demand = D, raises epoch_done to at least D (compare and
 * swap), never lowering it.  While epoch_done < epoch_demand every scope of
 * every database is treated as dirty and readers bypass the cache, so a
 * demand that arrives during the worker's round trip is never lost (a flag
 * set to "delivered" after the round trip would erase it).  A fresh segment
 * starts with one demand outstanding.  When dirty[] is full, overflow
 * forces the same epoch bump.
 *
 * Redis target: the worker publishes in worker_target a signature of the
 * Redis target it uses (redis.c), after demanding an epoch bump for a new
 * one.  Processes take in a reload at different times; one whose own target
 * differs from the worker's neither reads, stores nor delivers there (it
 * bypasses, and leaves its commits' scopes to the worker), so that an
 * invalidation never goes to a Redis the worker no longer bumps, nor clears
 * a mark that the worker's target still needs.
 *
 * Local generations: generations[] holds one counter per (database, scope)
 * slot (a hash; two pairs may share a slot, which only costs extra misses).
 * Every commit that changed a scope increments its slot after marking it
 * dirty, whether or not Redis is configured.  Backends keep copies of
 * values they fetched or computed, tagged with the slot's value read before
 * the dirty check and the snapshot (stats.c); a copy is used only while the
 * slot still holds that value.
 *
 * Quiet scopes: tracked[] (under "mutex") counts, per (database, scope),
 * the commits that changed it (marks), the stores readers attempted, and
 * how many of those stores a completed bump of the Redis generation covers.
 * A commit after which nothing can be cached under the current generation
 * (stores == covered) needs no bump: it only increments the local
 * generation.  A reader that missed takes a token (marks) before its
 * computation's snapshot and counts its store before it checks the token
 * again: it does not store when a commit came in between.  Entries are
 * never removed (a reused entry would reset marks under a reader's token).
 * Proof in docs/architecture.md, "Quiet scopes".
 *
 * Application-key queue (queue[], under the LWLock queue_lock): glob
 * patterns of wm_cache_rules, and exact keys whose UNLINK at commit failed,
 * for the worker to delete (SCAN ... MATCH for patterns).  Entries are
 * unique by key; enqueueing an existing key renews its seq, and the worker
 * removes an entry only if its seq did not change while it worked.  Exact
 * keys may fill the queue up to WM_QUEUE_PATTERN_RESERVE entries short of
 * full, so that the glob forms they fall back to always find room first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "common/hashfn.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "wm_perf.h"

/* Stores and bumps of one database's scopes; see "Quiet scopes" above. */
typedef struct WmStoreTrack
{
	Oid			dboid;
	uint64		marks[WM_SCOPE_COUNT];	/* commits that changed the scope */
	uint64		stores[WM_SCOPE_COUNT]; /* stores readers attempted */
	uint64		covered[WM_SCOPE_COUNT];	/* stores a completed bump
											 * covers */
} WmStoreTrack;

typedef struct WmSharedState
{
	pg_atomic_uint64 counters[WM_METRIC_KIND_COUNT * WM_COUNTER_COUNT];
	pg_atomic_uint64 generations[WM_GEN_SLOTS];
	uint64		incarnation;	/* random, per segment; never 0 */
	pg_atomic_uint64 epoch_demand;	/* epoch bumps demanded */
	pg_atomic_uint64 epoch_done;	/* demands a completed bump covers */
	pg_atomic_uint64 worker_target; /* the worker's target; 0: unknown */
	pg_atomic_uint32 ndirty_hint;
	slock_t		mutex;
	uint64		seq;			/* last sequence number handed out */
	uint64		overflow_seq;	/* non-zero: dirty[] overflowed at this seq */
	Latch	   *worker_latch;
	int			ndirty;
	WmDirtyEntry dirty[WM_MAX_DIRTY];
	int			ntracked;
	bool		track_overflow; /* a database found no room in tracked[] */
	WmStoreTrack tracked[WM_MAX_TRACKED];

	/* Application keys for the worker to delete; under queue_lock. */
	LWLock	   *queue_lock;
	uint64		queue_seq;		/* last sequence number handed out */
	bool		queue_overflow; /* something did not fit since last read */
	int			nqueued;
	WmQueuedKey queue[WM_MAX_QUEUED_KEYS];
} WmSharedState;

static WmSharedState *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
wm_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(WmSharedState)));
	RequestNamedLWLockTranche("wm_perf", 1);
}

static void
wm_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	shared = NULL;
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("wm_perf shared state", sizeof(WmSharedState), &found);
	if (!found)
	{
		for (i = 0; i < WM_METRIC_KIND_COUNT * WM_COUNTER_COUNT; i++)
			pg_atomic_init_u64(&shared->counters[i], 0);
		for (i = 0; i < WM_GEN_SLOTS; i++)
			pg_atomic_init_u64(&shared->generations[i], 0);

		/*
		 * Names this segment in the keys of the values computed under its
		 * local generations (cache.c): a restart or crash restart, and a
		 * promoted standby, start their slots again under another name.
		 */
		if (!pg_strong_random(&shared->incarnation, sizeof(shared->incarnation)))
			shared->incarnation = (uint64) GetCurrentTimestamp() ^
				((uint64) MyProcPid << 40);
		shared->incarnation &= UINT64CONST(0xFFFFFFFFFFFF);
		if (shared->incarnation == 0)
			shared->incarnation = 1;
		pg_atomic_init_u64(&shared->epoch_demand, 1);
		pg_atomic_init_u64(&shared->epoch_done, 0);
		pg_atomic_init_u64(&shared->worker_target, 0);
		pg_atomic_init_u32(&shared->ndirty_hint, 0);
		SpinLockInit(&shared->mutex);
		shared->seq = 0;
		shared->overflow_seq = 0;
		shared->worker_latch = NULL;
		shared->ndirty = 0;
		shared->ntracked = 0;
		shared->track_overflow = false;
		shared->queue_lock = &(GetNamedLWLockTranche("wm_perf"))->lock;
		shared->queue_seq = 0;
		shared->queue_overflow = false;
		shared->nqueued = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init while preloading. */
void
wm_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = wm_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = wm_shmem_startup;
}


pg_atomic_uint64 *
wm_shmem_counters(void)
{
	return shared ? shared->counters : NULL;
}

/*
 * State of one scope: WM_DIRTY_NONE (usable), WM_DIRTY_SCOPE (a commit's
 * invalidation is pending; *seq tells which, for wm_shmem_clear_scope) or
 * WM_DIRTY_ALL (epoch pending or overflow: only the worker can help).
 */
WmDirtyState
wm_shmem_scope_state(Oid dboid, WmScope scope, uint64 *seq)
{
	WmDirtyState st = WM_DIRTY_NONE;
	int			i;

	*seq = 0;
	if (shared == NULL)
		return WM_DIRTY_NONE;
	if (wm_shmem_epoch_pending())
		return WM_DIRTY_ALL;
	if (pg_atomic_read_u32(&shared->ndirty_hint) == 0)
		return WM_DIRTY_NONE;

	SpinLockAcquire(&shared->mutex);
	if (shared->overflow_seq != 0)
		st = WM_DIRTY_ALL;
	for (i = 0; st == WM_DIRTY_NONE && i < shared->ndirty; i++)
	{
		if (shared->dirty[i].dboid == dboid &&
			(shared->dirty[i].scope_mask & (1 << scope)) != 0)
		{
			st = WM_DIRTY_SCOPE;
			*seq = shared->dirty[i].seq;
		}
	}
	SpinLockRelease(&shared->mutex);
	return st;
}

/*
 * A reader delivered the scope's invalidation itself: clear its bit, unless
 * the entry was marked again after 'seq'.
 */
void
wm_shmem_clear_scope(Oid dboid, WmScope scope, uint64 seq)
{
	int			i;

	SpinLockAcquire(&shared->mutex);
	for (i = 0; i < shared->ndirty; i++)
	{
		if (shared->dirty[i].dboid != dboid || shared->dirty[i].seq > seq)
			continue;
		shared->dirty[i].scope_mask &= ~(1 << scope);
		if (shared->dirty[i].scope_mask == 0)
		{
			shared->dirty[i] = shared->dirty[shared->ndirty - 1];
			shared->ndirty--;
		}
		break;
	}
	if (shared->ndirty == 0 && shared->overflow_seq == 0)
		pg_atomic_write_u32(&shared->ndirty_hint, 0);
	SpinLockRelease(&shared->mutex);
}

static inline pg_atomic_uint64 *
generation_slot(Oid dboid, WmScope scope)
{
	uint32		h = hash_bytes_uint32((uint32) dboid) ^ (uint32) scope * 0x9e3779b9U;

	return &shared->generations[h % WM_GEN_SLOTS];
}

/*
 * The local generation of a scope, or false without preload.  Read before
 * the dirty check: a full barrier orders this read before it (mark_dirty
 * sets the dirty flag, or decides the scope is quiet, before it increments
 * the slot).
 */
bool
wm_shmem_local_generation(Oid dboid, WmScope scope, uint64 *gen)
{
	if (shared == NULL)
		return false;
	*gen = pg_atomic_read_u64(generation_slot(dboid, scope));
	pg_memory_barrier();
	return true;
}

/*
 * The random name of this shared memory segment (48 bits), 0 without
 * preload.  Fixed for the segment's lifetime.
 */
uint64
wm_shmem_incarnation(void)
{
	return shared != NULL ? shared->incarnation : 0;
}

/* Make every backend's copies of the scopes unusable.  Post-commit safe. */
void
wm_shmem_bump_generations(Oid dboid, int scope_mask)
{
	int			s;

	if (shared == NULL)
		return;
	for (s = 0; s < WM_SCOPE_COUNT; s++)
		if ((scope_mask & (1 << s)) != 0)
			pg_atomic_fetch_add_u64(generation_slot(dboid, (WmScope) s), 1);
}

/* The tracking entry of a database, or NULL.  Under the mutex. */
static WmStoreTrack *
track_find(Oid dboid)
{
	int			i;

	for (i = 0; i < shared->ntracked; i++)
		if (shared->tracked[i].dboid == dboid)
			return &shared->tracked[i];
	return NULL;
}

/*
 * A commit changed the scopes of scope_mask.  Scopes with a store since
 * their last bump, and those of force_mask (wm_cache_flush), are marked
 * dirty for the worker, which is woken; the others are quiet: nothing can
 * be cached under their current generation, and they need no bump.  Every
 * scope's local generation is incremented, after the dirty flag.
 * Post-commit safe: no allocation, no error.  Returns false without
 * preload; *quiet_mask tells the scopes that needed no bump.
 */
bool
wm_shmem_mark_dirty(Oid dboid, int scope_mask, int force_mask, int *quiet_mask)
{
	Latch	   *latch = NULL;
	WmStoreTrack *t;
	int			dirty_mask = 0;
	int			s;
	int			i;

	*quiet_mask = 0;
	if (shared == NULL)
		return false;

	SpinLockAcquire(&shared->mutex);
	t = track_find(dboid);
	for (s = 0; s < WM_SCOPE_COUNT; s++)
	{
		if ((scope_mask & (1 << s)) == 0)
			continue;
		if (t != NULL)
			t->marks[s]++;
		if ((force_mask & (1 << s)) == 0 &&
			(t != NULL ? t->stores[s] == t->covered[s] :
			 !shared->track_overflow))
			*quiet_mask |= 1 << s;
		else
			dirty_mask |= 1 << s;
	}
	if (dirty_mask != 0)
	{
		shared->seq++;
		for (i = 0; i < shared->ndirty; i++)
			if (shared->dirty[i].dboid == dboid)
				break;
		if (i < shared->ndirty)
		{
			shared->dirty[i].scope_mask |= dirty_mask;
			shared->dirty[i].seq = shared->seq;
		}
		else if (shared->ndirty < WM_MAX_DIRTY)
		{
			shared->dirty[i].dboid = dboid;
			shared->dirty[i].scope_mask = dirty_mask;
			shared->dirty[i].seq = shared->seq;
			shared->ndirty++;
		}
		else
			shared->overflow_seq = shared->seq;
		pg_atomic_write_u32(&shared->ndirty_hint, 1);
		latch = shared->worker_latch;
	}
	SpinLockRelease(&shared->mutex);

	/* After the dirty flag: see wm_shmem_local_generation(). */
	wm_shmem_bump_generations(dboid, scope_mask);

	if (latch)
		SetLatch(latch);
	return true;
}

/*
 * A reader missed and is about to compute: the token to pass to
 * wm_shmem_store_allowed() before it stores the value.  Taken after the
 * lookup and before the computation's snapshot.
 */
uint64
wm_shmem_store_token(Oid dboid, WmScope scope)
{
	WmStoreTrack *t;
	uint64		token = 0;

	if (shared == NULL)
		return 0;
	SpinLockAcquire(&shared->mutex);
	t = track_find(dboid);
	if (t == NULL && shared->ntracked < WM_MAX_TRACKED)
	{
		t = &shared->tracked[shared->ntracked++];
		memset(t, 0, sizeof(*t));
		t->dboid = dboid;
	}
	if (t != NULL)
		token = t->marks[scope];
	else
		shared->track_overflow = true;	/* no commit of it is quiet */
	SpinLockRelease(&shared->mutex);
	return token;
}

/*
 * A reader is about to store a value it computed: count the store, then
 * say whether it may go ahead.  It may not if a commit changed the scope
 * since the token was taken: that commit may have been quiet, counting on
 * no store under the current generation.  (The count comes first, so that
 * a commit that this check misses sees the store and is not quiet.)
 */
bool
wm_shmem_store_allowed(Oid dboid, WmScope scope, uint64 token)
{
	WmStoreTrack *t;
	bool		ok = true;

	if (shared == NULL)
		return true;
	SpinLockAcquire(&shared->mutex);
	t = track_find(dboid);
	if (t != NULL)
	{
		t->stores[scope]++;
		ok = t->marks[scope] == token;
	}
	SpinLockRelease(&shared->mutex);
	return ok;
}

/*
 * Before a bump of the scopes' Redis generations: the stores it will
 * cover.  After the bump succeeded, pass them to wm_shmem_stores_covered(),
 * before the dirty bits are cleared.
 */
void
wm_shmem_stores_seen(Oid dboid, uint64 *seen)
{
	WmStoreTrack *t;

	memset(seen, 0, sizeof(uint64) * WM_SCOPE_COUNT);
	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	if ((t = track_find(dboid)) != NULL)
		memcpy(seen, t->stores, sizeof(uint64) * WM_SCOPE_COUNT);
	SpinLockRelease(&shared->mutex);
}

/*
 * A bump of the scopes of scope_mask succeeded (Redis replied): the stores
 * counted in 'seen' before it can no longer be reached.  Never called for
 * a failed or timed-out bump.
 */
void
wm_shmem_stores_covered(Oid dboid, int scope_mask, const uint64 *seen)
{
	WmStoreTrack *t;
	int			s;

	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	if ((t = track_find(dboid)) != NULL)
		for (s = 0; s < WM_SCOPE_COUNT; s++)
			if ((scope_mask & (1 << s)) != 0 && seen[s] > t->covered[s])
				t->covered[s] = seen[s];
	SpinLockRelease(&shared->mutex);
}

/*
 * Copy the pending work for the worker.  *need_epoch is set when every
 * cached value must be made unreachable (fresh start or overflow).
 * Returns the number of entries copied; *upto is the sequence to pass back.
 */
int
wm_shmem_snapshot_dirty(WmDirtyEntry *out, bool *need_epoch, uint64 *upto)
{
	int			n;

	SpinLockAcquire(&shared->mutex);
	n = shared->ndirty;
	memcpy(out, shared->dirty, sizeof(WmDirtyEntry) * n);
	*need_epoch = shared->overflow_seq != 0 || wm_shmem_epoch_pending();
	*upto = shared->seq;
	SpinLockRelease(&shared->mutex);
	return n;
}

/* The entry for dboid was delivered as of sequence 'seq'. */
void
wm_shmem_clear_dirty(Oid dboid, uint64 seq)
{
	int			i;

	SpinLockAcquire(&shared->mutex);
	for (i = 0; i < shared->ndirty; i++)
	{
		if (shared->dirty[i].dboid == dboid && shared->dirty[i].seq <= seq)
		{
			shared->dirty[i] = shared->dirty[shared->ndirty - 1];
			shared->ndirty--;
			break;
		}
	}
	if (shared->ndirty == 0 && shared->overflow_seq == 0)
		pg_atomic_write_u32(&shared->ndirty_hint, 0);
	SpinLockRelease(&shared->mutex);
}

/* Drop the dirty entries marked up to sequence 'seq'.  Under the mutex. */
static void
clear_dirty_upto(uint64 seq)
{
	int			i;

	for (i = shared->ndirty - 1; i >= 0; i--)
	{
		if (shared->dirty[i].seq <= seq)
		{
			shared->dirty[i] = shared->dirty[shared->ndirty - 1];
			shared->ndirty--;
		}
	}
	if (shared->overflow_seq <= seq)
		shared->overflow_seq = 0;
	if (shared->ndirty == 0 && shared->overflow_seq == 0)
		pg_atomic_write_u32(&shared->ndirty_hint, 0);
}

/*
 * Is an epoch bump demanded and not yet made?  Reads epoch_done before
 * epoch_demand: both only grow, so "not pending" holds at the moment
 * epoch_demand is read.
 */
bool
wm_shmem_epoch_pending(void)
{
	uint64		done;

	if (shared == NULL)
		return false;
	done = pg_atomic_read_u64(&shared->epoch_done);
	pg_read_barrier();
	return done < pg_atomic_read_u64(&shared->epoch_demand);
}

/* Is any scope of any database marked dirty (a hint, read without lock)? */
bool
wm_shmem_any_dirty(void)
{
	return shared != NULL && pg_atomic_read_u32(&shared->ndirty_hint) != 0;
}

/* The demands so far: read by the worker before it sends a bump. */
uint64
wm_shmem_epoch_demand(void)
{
	return pg_atomic_read_u64(&shared->epoch_demand);
}

/*
 * The epoch was bumped after sequence 'seq' and after 'demand' demands:
 * the dirty entries up to seq are done, and so are those demands (a demand
 * that came after them stays pending).
 */
void
wm_shmem_epoch_done(uint64 seq, uint64 demand)
{
	uint64		done = pg_atomic_read_u64(&shared->epoch_done);

	SpinLockAcquire(&shared->mutex);
	clear_dirty_upto(seq);
	SpinLockRelease(&shared->mutex);
	while (done < demand &&
		   !pg_atomic_compare_exchange_u64(&shared->epoch_done, &done, demand))
		;
}

/*
 * No Redis is configured: drop what is pending, and demand an epoch bump
 * before the cache is used again (the demand is never marked done here).
 */
void
wm_shmem_forget_all(uint64 seq)
{
	SpinLockAcquire(&shared->mutex);
	clear_dirty_upto(seq);
	SpinLockRelease(&shared->mutex);
	wm_shmem_require_epoch();
}

/*
 * Readers bypass the cache until the worker has bumped the epoch.  Every
 * backend's local copies become unusable too: one may have been fetched
 * from a value the epoch bump is about to make unreachable.  Post-commit
 * safe.
 */
void
wm_shmem_require_epoch(void)
{
	int			i;

	if (shared == NULL)
		return;
	pg_atomic_fetch_add_u64(&shared->epoch_demand, 1);
	for (i = 0; i < WM_GEN_SLOTS; i++)
		pg_atomic_fetch_add_u64(&shared->generations[i], 1);
}

/* The worker's Redis target (after it demanded a bump for a new one). */
void
wm_shmem_set_worker_target(uint64 signature)
{
	pg_write_barrier();
	pg_atomic_write_u64(&shared->worker_target, signature);
}

/*
 * Is this process's Redis target the worker's?  Always true without
 * preload (no worker).  Read before the epoch state (cache_usable()).
 */
bool
wm_shmem_worker_target_is(uint64 signature)
{
	bool		same;

	if (shared == NULL)
		return true;
	same = pg_atomic_read_u64(&shared->worker_target) == signature;
	pg_read_barrier();
	return same;
}

/* Databases with undelivered scopes, +1 while the epoch is pending. */
int
wm_shmem_pending(void)
{
	int			n;

	if (shared == NULL)
		return 0;
	SpinLockAcquire(&shared->mutex);
	n = shared->ndirty + (shared->overflow_seq != 0 ? 1 : 0);
	SpinLockRelease(&shared->mutex);
	if (wm_shmem_epoch_pending())
		n++;
	LWLockAcquire(shared->queue_lock, LW_SHARED);
	n += shared->nqueued;
	LWLockRelease(shared->queue_lock);
	return n;
}

void
wm_shmem_set_worker_latch(Latch *latch)
{
	SpinLockAcquire(&shared->mutex);
	shared->worker_latch = latch;
	SpinLockRelease(&shared->mutex);
}


static uint32
key_hash(const char *key)
{
	return hash_bytes((const unsigned char *) key, strlen(key));
}

/* The queue entry for key, or nqueued.  Under queue_lock. */
static int
queue_find(const char *key, uint32 hash, bool pattern)
{
	int			j;

	for (j = 0; j < shared->nqueued; j++)
		if (shared->queue[j].hash == hash &&
			shared->queue[j].pattern == pattern &&
			strcmp(shared->queue[j].key, key) == 0)
			break;
	return j;
}

/*
 * Queue keys (or glob patterns) for the worker.  Post-commit safe: takes an
 * LWLock, allocates nothing, raises nothing.  Returns how many of them did
 * not fit (all of them without preload).
 */
int
wm_shmem_enqueue_keys(char *const *keys, int n, bool pattern)
{
	Latch	   *latch;
	int			limit;
	int			lost = 0;
	int			i;
	int			j;

	if (shared == NULL)
		return n;
	limit = pattern ? WM_MAX_QUEUED_KEYS :
		WM_MAX_QUEUED_KEYS - WM_QUEUE_PATTERN_RESERVE;

	LWLockAcquire(shared->queue_lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		uint32		h;

		if (strlen(keys[i]) >= WM_MAX_KEY_LEN)
		{
			lost++;
			continue;
		}
		h = key_hash(keys[i]);
		j = queue_find(keys[i], h, pattern);
		if (j == shared->nqueued)
		{
			if (shared->nqueued >= limit)
			{
				lost++;
				continue;
			}
			shared->nqueued++;
			shared->queue[j].hash = h;
			shared->queue[j].pattern = pattern;
			strlcpy(shared->queue[j].key, keys[i], WM_MAX_KEY_LEN);
		}
		shared->queue[j].seq = ++shared->queue_seq;
	}
	if (lost > 0 && pattern)
		shared->queue_overflow = true;
	LWLockRelease(shared->queue_lock);

	SpinLockAcquire(&shared->mutex);
	latch = shared->worker_latch;
	SpinLockRelease(&shared->mutex);
	if (latch)
		SetLatch(latch);
	return lost;
}

/*
 * Copy the queue for the worker; *overflowed tells (once) that patterns
 * were lost since the last call.
 */
int
wm_shmem_queue_snapshot(WmQueuedKey *out, bool *overflowed)
{
	int			n;

	LWLockAcquire(shared->queue_lock, LW_EXCLUSIVE);
	n = shared->nqueued;
	memcpy(out, shared->queue, sizeof(WmQueuedKey) * n);
	*overflowed = shared->queue_overflow;
	shared->queue_overflow = false;
	LWLockRelease(shared->queue_lock);
	return n;
}

/* The worker deleted 'done' (a copy from the snapshot). */
void
wm_shmem_queue_done(const WmQueuedKey *done)
{
	int			j;

	LWLockAcquire(shared->queue_lock, LW_EXCLUSIVE);
	j = queue_find(done->key, done->hash, done->pattern);
	if (j < shared->nqueued && shared->queue[j].seq == done->seq)
		shared->queue[j] = shared->queue[--shared->nqueued];
	LWLockRelease(shared->queue_lock);
}

/* No Redis configured: nothing to delete anywhere. */
void
wm_shmem_queue_clear(void)
{
	LWLockAcquire(shared->queue_lock, LW_EXCLUSIVE);
	shared->nqueued = 0;
	shared->queue_overflow = false;
	LWLockRelease(shared->queue_lock);
}
