/*-------------------------------------------------------------------------
 *
 * cache.c
 *	  The cache protocol: whether a call may use the cache, the Redis
 *	  lookup and store, the backend's local copies, single flight, and the
 *	  value encoding.  The statistics themselves are defined in stats.c.
 *
 * Read path (docs/architecture.md):
 *	1. decide whether the cache may be used at all: Redis configured,
 *	   wm_perf.cache_enabled, READ COMMITTED (a REPEATABLE READ or
 *	   SERIALIZABLE snapshot predates the generation read), this process
 *	   on the same Redis target as the worker, no change of the scope
 *	   pending in this transaction (read-your-own-writes: the BEFORE
 *	   statement triggers mark a scope before any row changes), no
 *	   undelivered invalidation of the scope, table-level SELECT on every
 *	   table read, and no row-level security on them;
 *	2. one round trip reads the epoch and the scope's generation and GETs
 *	   the value stored under them (the server's run id is part of the key);
 *	3. on a miss, compute through SPI with a fresh snapshot taken after
 *	   step 2 and SET the value under the version read in step 2.  A value
 *	   computed from a snapshot older than a commit can therefore only be
 *	   stored under a generation that commit's INCR has already superseded.
 * A transaction that has written anything (it has a transaction id) never
 * stores a value and keeps no local copy of one it computed: what it
 * computes may include its own uncommitted rows, whether or not wm_perf's
 * triggers have seen them yet (a data-modifying CTE, a function in a SET
 * clause, an application trigger), and after a ROLLBACK nothing would
 * make that value unreachable.
 *
 * Keys end with the oids of the tables the value was computed from (a
 * value computed under one configuration is never read under another) and
 * with the calling role's oid (values never cross roles).  Arguments longer
 * than WM_MAX_ARG_IN_KEY bytes are replaced by their SHA-256, so that no
 * caller can make keys of unbounded size; a value computed for an argument
 * that matches nothing (no such territory or customer) is not stored, so
 * the number of keys is bounded by the data, not by the callers.  Cached
 * values carry a CRC so that a corrupt or foreign value is a miss.
 *
 * With shared_preload_libraries, a backend also keeps copies of the values
 * it fetched or computed, and serves them without a Redis round trip while
 * no commit has changed their scope (see WmLocalEntry).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "common/cryptohash.h"
#include "common/hashfn.h"
#include "common/jsonapi.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "redis.h"
#include "wm_perf.h"

/* Stored values look like "wm1:<8 hex digits of CRC-32C>:<json>". */
#define WM_VALUE_MAGIC "wm1:"
#define WM_VALUE_HEADER_LEN (4 + 8 + 1)

/* Longer call arguments go into keys as their SHA-256. */
#define WM_MAX_ARG_IN_KEY 64

/*
 * With shared_preload_libraries, a commit only marks its scopes dirty and
 * wakes the worker.  A reader that finds its scope dirty delivers the
 * invalidation itself (one round trip, before its lookup) rather than
 * bypassing the cache until the worker gets there.  False: bypass.
 */
static bool
deliver_pending_scope(WmScope scope)
{
	uint64		seq;
	char		key[WM_MAX_KEY_LEN];
	char	   *keyp = key;
	long		unlinked;
	uint64		seen[WM_SCOPE_COUNT];

	switch (wm_shmem_scope_state(MyDatabaseId, scope, &seq))
	{
		case WM_DIRTY_NONE:
			return true;
		case WM_DIRTY_ALL:
			return false;
		case WM_DIRTY_SCOPE:
			break;
	}
	wm_key_generation(key, sizeof(key), MyDatabaseId, scope);
	wm_shmem_stores_seen(MyDatabaseId, seen);
	if (wm_redis_deliver(1, &keyp, 0, NULL, &unlinked) != WM_REDIS_OK)
	{
		wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_FAILED, 1);
		return false;
	}
	wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_DELIVERED, 1);
	wm_shmem_stores_covered(MyDatabaseId, 1 << scope, seen);
	wm_shmem_clear_scope(MyDatabaseId, scope, seq);
	return true;
}

/*
 * May this call use the cache?  Returns false (bypass: compute, do not
 * store) for every case in which a cached value could be wrong for this
 * caller or a computed one wrong for others.
 */
static bool
cache_usable(WmScope scope, const WmTable *tables, int ntables)
{
	int			i;

	if (!wm_guc_cache_enabled || !wm_redis_configured())
		return false;
	if (IsolationUsesXactSnapshot())
		return false;

	/*
	 * A process that has not taken in the same Redis target as the worker
	 * (a reload reaches processes at different times) must neither read nor
	 * store there, nor deliver: the worker bumps the generations of its own
	 * target only.
	 */
	if (!wm_shmem_worker_target_is(wm_redis_target_signature()))
		return false;

	/*
	 * A hot standby replays commits whose invalidation may still be pending
	 * in the primary's shared memory: it never uses the cache.
	 */
	if (RecoveryInProgress())
		return false;
	if (wm_xact_scope_pending(scope))
		return false;
	for (i = 0; i < ntables; i++)
	{
		Oid			relid = wm_table_oid(tables[i]);

		if (!OidIsValid(relid))
			return false;
		/* Without table-level SELECT, let the query decide (42501). */
		if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
			return false;
		/* Policies may depend on anything: never cache under RLS. */
		if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
			return false;
	}
	if (!deliver_pending_scope(scope))
		return false;
	if (wm_xact_scope_undelivered(scope))
		return false;
	return true;
}

static pg_crc32c
value_crc(const char *json, size_t len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, json, len);
	FIN_CRC32C(crc);
	return crc;
}

/*
 * What jsonb_in could still reject in JSON that parses: numbers out of
 * numeric's range and \u escapes it does not accept.  None occurs in a
 * value wm_perf wrote.
 */
/* wm_perf's values nest three levels deep. */
#define WM_JSON_MAX_DEPTH 8

typedef struct WmJsonCheck
{
	bool		bad;
	int			depth;
	bool		top_is_object;
} WmJsonCheck;

static WM_JSON_ACTION_TYPE
check_scalar(void *state, char *token, JsonTokenType tokentype)
{
	WmJsonCheck *c = (WmJsonCheck *) state;

	if (tokentype == JSON_TOKEN_NUMBER &&
		(strlen(token) > 40 || strpbrk(token, "eE") != NULL))
		c->bad = true;
	if (c->depth == 0)
		c->bad = true;			/* a bare scalar is not a statistic */
	WM_JSON_ACTION_DONE;
}

static WM_JSON_ACTION_TYPE
check_object_start(void *state)
{
	WmJsonCheck *c = (WmJsonCheck *) state;

	if (c->depth++ == 0)
		c->top_is_object = true;
	if (c->depth > WM_JSON_MAX_DEPTH)
		c->bad = true;
	WM_JSON_ACTION_DONE;
}

static WM_JSON_ACTION_TYPE
check_object_end(void *state)
{
	((WmJsonCheck *) state)->depth--;
	WM_JSON_ACTION_DONE;
}

static WM_JSON_ACTION_TYPE
check_array_start(void *state)
{
	WmJsonCheck *c = (WmJsonCheck *) state;

	if (c->depth++ == 0)
		c->bad = true;
	WM_JSON_ACTION_DONE;
}

/*
 * The parser recurses per nesting level and would raise an ERROR on a deep
 * enough value: measure the depth first (brackets outside strings).
 */
static bool
nesting_is_shallow(const char *json, size_t len)
{
	int			depth = 0;
	bool		in_string = false;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		char		ch = json[i];

		if (in_string)
		{
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
		}
		else if (ch == '"')
			in_string = true;
		else if (ch == '{' || ch == '[')
		{
			if (++depth > WM_JSON_MAX_DEPTH)
				return false;
		}
		else if (ch == '}' || ch == ']')
			depth--;
	}
	return true;
}

/*
 * Is this text something jsonb_in accepts without error, and an object?
 * A cached value is parsed only after this says yes: a value that passed
 * the CRC check but is still not ours must be a miss, never an ERROR.
 */
static bool
json_is_safe_object(const char *json, size_t len)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	JsonParseErrorType rc;
	WmJsonCheck check = {false, 0, false};

	if (memchr(json, '\\', len) != NULL && strstr(json, "\\u") != NULL)
		return false;
	if (!nesting_is_shallow(json, len))
		return false;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &check;
	sem.scalar = check_scalar;
	sem.object_start = check_object_start;
	sem.object_end = check_object_end;
	sem.array_start = check_array_start;
	sem.array_end = check_object_end;
	lex = WM_MAKE_JSON_LEX(json, len, GetDatabaseEncoding(), true);
	rc = pg_parse_json(lex, &sem);
	WM_FREE_JSON_LEX(lex);
	if (rc != JSON_SUCCESS)
		return false;
	return !check.bad && check.top_is_object;
}

/* A cached value, or NULL if it is not one of ours, intact. */
static Jsonb *
decode_value(const char *value, size_t len)
{
	char		hex[9];
	const char *json;
	size_t		jlen;

	if (len < WM_VALUE_HEADER_LEN + 2 ||
		strncmp(value, WM_VALUE_MAGIC, 4) != 0 ||
		value[WM_VALUE_HEADER_LEN - 1] != ':')
		return NULL;
	json = value + WM_VALUE_HEADER_LEN;
	jlen = len - WM_VALUE_HEADER_LEN;
	snprintf(hex, sizeof(hex), "%08x", value_crc(json, jlen));
	if (memcmp(hex, value + 4, 8) != 0)
		return NULL;
	if (!json_is_safe_object(json, jlen))
		return NULL;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

static char *
encode_value(Jsonb *jb, size_t *len)
{
	char	   *json = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	size_t		jlen = strlen(json);
	char	   *out = psprintf(WM_VALUE_MAGIC "%08x:%s", value_crc(json, jlen), json);

	*len = WM_VALUE_HEADER_LEN + jlen;
	return out;
}

/*
 * This backend's copies of cached values (with shared_preload_libraries).
 * A copy is tagged with the scope's local generation (shmem.c) read before
 * the dirty check and before any snapshot of the call that produced it, and
 * is used only while the generation is unchanged: every commit that changes
 * the scope increments it, after the commit is visible and before COMMIT
 * returns, so a copy can never predate a commit that has returned (the same
 * argument as for the Redis generation).  Anything that demands a new
 * Redis epoch also advances every slot (shmem.c).  wm_perf.local_cache_size
 * bounds the memory allocated for the copies: when a new copy does not
 * fit, all copies are dropped; lowering the setting frees them at the next
 * call.  Copies also expire after wm_perf.cache_ttl.
 */
typedef struct WmLocalEntry
{
	char		key[WM_MAX_KEY_LEN];	/* hash key: must be first */
	uint64		generation;
	TimestampTz stored_at;
	Jsonb	   *value;			/* in local_context */
} WmLocalEntry;

static MemoryContext local_context = NULL;
static HTAB *local_copies = NULL;

/* Drop every copy; with 'keep' false also the table (the setting is 0). */
static void
local_reset(bool keep)
{
	HASHCTL		ctl;

	/* Small blocks: the memory allocated follows the copies closely. */
	if (local_context == NULL)
		local_context = AllocSetContextCreate(TopMemoryContext,
											  "wm_perf local copies",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(local_context);
	local_copies = NULL;
	if (!keep)
		return;
	ctl.keysize = WM_MAX_KEY_LEN;
	ctl.entrysize = sizeof(WmLocalEntry);
	ctl.hcxt = local_context;
	local_copies = hash_create("wm_perf local copies", 16, &ctl,
							   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/*
 * Memory the copies hold, as allocated: the values (chunk rounding) and the
 * hash table, which dynahash keeps in a child context.
 */
static Size
local_memory(void)
{
	return local_context ? MemoryContextMemAllocated(local_context, true) : 0;
}

/* The copy for 'key' if it is still valid, as a palloc'd Jsonb. */
static Jsonb *
local_lookup(const char *key, uint64 generation, TimestampTz now)
{
	WmLocalEntry *e;
	Jsonb	   *out;

	if (local_copies == NULL)
		return NULL;
	/* The setting was lowered: free the memory now. */
	if (local_memory() > (Size) wm_guc_local_cache_size * 1024)
	{
		local_reset(true);
		return NULL;
	}
	e = hash_search(local_copies, key, HASH_FIND, NULL);
	if (e == NULL)
		return NULL;
	if (e->generation != generation ||
		TimestampDifferenceExceeds(e->stored_at, now, wm_guc_cache_ttl * 1000))
		return NULL;
	out = palloc(VARSIZE(e->value));
	memcpy(out, e->value, VARSIZE(e->value));
	return out;
}

static void
local_store(const char *key, uint64 generation, Jsonb *value)
{
	/* The value, its entry, and the table's growth, rounded up. */
	Size		size = 2 * (VARSIZE(value) + sizeof(WmLocalEntry));
	Size		limit = (Size) wm_guc_local_cache_size * 1024;
	WmLocalEntry *e;
	bool		found;
	Jsonb	   *copy;

	if (size > limit)
		return;
	if (local_copies == NULL || local_memory() + size > limit)
		local_reset(true);

	/*
	 * Allocate first: an out-of-memory ERROR here or in hash_search must not
	 * leave an entry pointing at freed memory.
	 */
	copy = MemoryContextAlloc(local_context, VARSIZE(value));
	memcpy(copy, value, VARSIZE(value));
	e = hash_search(local_copies, key, HASH_ENTER, &found);
	if (found)
	{
		Jsonb	   *old = e->value;

		e->value = copy;
		pfree(old);
	}
	else
		e->value = copy;
	e->generation = generation;
	e->stored_at = GetCurrentTimestamp();
}

/* The key a value is stored under (wm_redis_lookup's layout). */
static char *
value_key(const char *vprefix, const WmCacheVersion *version, const char *vsuffix)
{
	return psprintf("%s:%s:e%s:g%s%s", vprefix, version->server,
					version->epoch, version->generation, vsuffix);
}

/*
 * Single flight: when a value is missing, the first backend to miss it
 * computes it while holding a lock on its key, and the backends that miss
 * the same key meanwhile wait for that lock instead of computing the same
 * statistics at the same time (a dashboard's thundering herd after each
 * write), then look again and are served what it stored.
 *
 * The lock is a heavyweight lock in the advisory space, with a field4
 * no SQL-level advisory lock uses, on a hash of the value's key (which
 * includes its generation): visible in pg_locks, released at the latest
 * when the (sub)transaction ends.  A caller waits only if its transaction
 * can hold no lock the computing backend needs: no transaction id (every
 * DDL, and every write, has one) and no ACCESS EXCLUSIVE lock on a table
 * of the statistic (LOCK TABLE under wal_level = minimal takes one without
 * a transaction id).  With lock_timeout = 0 it is an ordinary lock wait,
 * which the deadlock detector sees; with lock_timeout set, the caller polls
 * for at most lock_timeout and then computes itself: a read does not fail
 * because another backend's computation is slow.
 */
#define WM_FLIGHT_LOCK_CLASS 0x574d	/* "WM" */
#define WM_FLIGHT_POLL_MS 5

typedef struct WmFlight
{
	bool		leading;		/* this backend holds the key's lock */
	LOCKTAG		tag;
} WmFlight;

static bool
flight_may_wait(const WmTable *tables, int ntables)
{
	int			i;

	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return false;
	for (i = 0; i < ntables; i++)
	{
		LOCKTAG		rel;

		SET_LOCKTAG_RELATION(rel, MyDatabaseId, wm_table_oid(tables[i]));
		if (WM_LOCK_HELD_BY_ME(&rel, AccessExclusiveLock))
			return false;
	}
	return true;
}

/*
 * Returns true if this backend waited for another one that computed the
 * value (look again), false if it is to compute the value itself (holding
 * the key's lock if it could take it).
 */
static bool
flight_join(WmFlight *flight, const char *vprefix, const WmCacheVersion *version,
			const char *vsuffix, const WmTable *tables, int ntables)
{
	char	   *key = value_key(vprefix, version, vsuffix);
	uint64		h = hash_bytes_extended((const unsigned char *) key, strlen(key), 0);

	pfree(key);
	SET_LOCKTAG_ADVISORY(flight->tag, MyDatabaseId, (uint32) (h >> 32),
						 (uint32) h, WM_FLIGHT_LOCK_CLASS);
	if (LockAcquire(&flight->tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
	{
		flight->leading = true;
		return false;
	}
	if (!flight_may_wait(tables, ntables))
		return false;

	if (LockTimeout <= 0)
		(void) LockAcquire(&flight->tag, ShareLock, false, false);
	else
	{
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   LockTimeout);

		while (LockAcquire(&flight->tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		{
			if (GetCurrentTimestamp() >= deadline)
				return false;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 WM_FLIGHT_POLL_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	/* Let the next one in at once. */
	LockRelease(&flight->tag, ShareLock, false);
	return true;
}

static void
flight_leave(WmFlight *flight)
{
	if (flight->leading)
		LockRelease(&flight->tag, ExclusiveLock, false);
	flight->leading = false;
}

/* Has this transaction written anything (so it may see uncommitted rows)? */
static bool
transaction_has_written(void)
{
	return TransactionIdIsValid(GetTopTransactionIdIfAny());
}

/*
 * The key suffix of a call: ":<fn>:<args>:c<table oids>:u<role oid>".
 * Arguments longer than WM_MAX_ARG_IN_KEY bytes go in as "h<SHA-256>".
 */
static char *
key_suffix(const WmCacheCall *call)
{
	StringInfoData buf;
	size_t		len = strlen(call->args);
	int			i;

	initStringInfo(&buf);
	appendStringInfo(&buf, ":%s:", call->fn);
	if (len <= WM_MAX_ARG_IN_KEY)
		appendStringInfoString(&buf, call->args);
	else
	{
		pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
		uint8		digest[PG_SHA256_DIGEST_LENGTH];

		if (pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) call->args, len) < 0 ||
			pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
			elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
		pg_cryptohash_free(ctx);
		appendStringInfoChar(&buf, 'h');
		for (i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
			appendStringInfo(&buf, "%02x", digest[i]);
	}
	appendStringInfoString(&buf, ":c");
	for (i = 0; i < call->ntables; i++)
		appendStringInfo(&buf, "%s%u", i > 0 ? "." : "",
						 wm_table_oid(call->tables[i]));
	appendStringInfo(&buf, ":u%u", GetUserId());
	return buf.data;
}

/*
 * The part of a value key after the generation: ":s<tag>" and the call's
 * suffix.  The tag is, with preload, the incarnation of the shared memory
 * segment and the scope's local generation as the call read it (before its
 * dirty check and its snapshot); "0" without preload.
 */
static char *
tagged_suffix(bool have_local_gen, uint64 local_gen, const char *vsuffix)
{
	if (have_local_gen)
		return psprintf(":s%012llx.%llu%s",
						(unsigned long long) wm_shmem_incarnation(),
						(unsigned long long) local_gen, vsuffix);
	return psprintf(":s0%s", vsuffix);
}

/*
 * The cache-or-compute core.  call->args identifies the call within the
 * scope (it must be unambiguous); tables and role are appended here.
 */
Jsonb *
wm_cache_get(const WmCacheCall *call)
{
	WmMetricKind kind = call->kind;
	WmScope		scope = call->scope;
	char		epoch_key[WM_MAX_KEY_LEN];
	char		gen_key[WM_MAX_KEY_LEN];
	char		vprefix[WM_MAX_KEY_LEN];
	char	   *vsuffix;
	WmCacheVersion version;
	char	   *value = NULL;
	size_t		value_len = 0;
	Jsonb	   *result;
	WmRedisStatus rst;
	instr_time	start;
	instr_time	duration;
	bool		use_local;
	bool		have_local_gen;
	uint64		local_gen = 0;
	char	   *rsuffix;
	char		local_key[WM_MAX_KEY_LEN];
	WmFlight	flight = {0};
	uint64		store_token = 0;
	bool		writing = transaction_has_written();
	bool		empty = false;

	INSTR_TIME_SET_CURRENT(start);
	wm_metrics_add(kind, WM_COUNTER_CALLS, 1);

	/*
	 * Before the dirty check in cache_usable() and before any snapshot: the
	 * tag of local copies, and (with preload) of the Redis value keys.
	 */
	have_local_gen = wm_shmem_local_generation(MyDatabaseId, scope, &local_gen);
	use_local = wm_guc_local_cache_size > 0 && have_local_gen;
	if (wm_guc_local_cache_size == 0 && local_copies != NULL)
		local_reset(false);		/* turned off: free the copies */

	if (!cache_usable(scope, call->tables, call->ntables))
	{
		wm_metrics_add(kind, WM_COUNTER_BYPASSES, 1);
		result = call->compute(call->arg, &empty);
		goto done;
	}

	vsuffix = key_suffix(call);
	if (use_local &&
		snprintf(local_key, sizeof(local_key), "%d%s", (int) scope,
				 vsuffix) >= (int) sizeof(local_key))
		use_local = false;
	if (use_local)
	{
		if ((result = local_lookup(local_key, local_gen,
								   GetCurrentTimestamp())) != NULL)
		{
			wm_metrics_add(kind, WM_COUNTER_HITS, 1);
			wm_metrics_add(kind, WM_COUNTER_LOCAL_HITS, 1);
			goto done;
		}
	}

	wm_key_epoch(epoch_key, sizeof(epoch_key));
	wm_key_generation(gen_key, sizeof(gen_key), MyDatabaseId, scope);
	wm_key_values(vprefix, sizeof(vprefix), MyDatabaseId, scope);

	/*
	 * Failover safety (docs/architecture.md, "Redis failover and restored
	 * data"): with preload the value key also names this server's shared
	 * memory segment and the scope's local generation read above, so a
	 * value is found only by a call that read the same generation, whatever
	 * Redis lost or brought back; without preload "s0".
	 */
	rsuffix = tagged_suffix(have_local_gen, local_gen, vsuffix);

	rst = wm_redis_lookup(kind, epoch_key, gen_key, vprefix, rsuffix,
						  have_local_gen, &version, &value, &value_len);
	/* A writing transaction computes for itself only: it leads no flight. */
	if (rst == WM_REDIS_OK && value == NULL && !writing &&
		flight_join(&flight, vprefix, &version, rsuffix, call->tables,
					call->ntables))
	{
		/*
		 * Another backend was computing this value and has finished: look
		 * again, from the start (a commit may have come meanwhile).  The
		 * local generation is read again first, before the dirty check and
		 * the snapshot as for a new call: a value stored under the tag of
		 * before the wait would be found by no later call.
		 */
		if (have_local_gen &&
			wm_shmem_local_generation(MyDatabaseId, scope, &local_gen))
			rsuffix = tagged_suffix(have_local_gen, local_gen, vsuffix);
		if (!cache_usable(scope, call->tables, call->ntables))
		{
			wm_metrics_add(kind, WM_COUNTER_BYPASSES, 1);
			result = call->compute(call->arg, &empty);
			goto done;
		}
		rst = wm_redis_lookup(kind, epoch_key, gen_key, vprefix, rsuffix,
							  have_local_gen, &version, &value, &value_len);
	}
	if (rst != WM_REDIS_OK)
	{
		if (rst == WM_REDIS_FAILED)
			wm_metrics_add(kind, WM_COUNTER_ERRORS, 1);
		wm_metrics_add(kind, WM_COUNTER_BYPASSES, 1);
		result = call->compute(call->arg, &empty);
		goto done;
	}
	if (value != NULL && (result = decode_value(value, value_len)) != NULL)
	{
		/* A committed value: a copy of it is fine in any transaction. */
		wm_metrics_add(kind, WM_COUNTER_HITS, 1);
		if (use_local)
			local_store(local_key, local_gen, result);
		goto done;
	}

	/* Miss (or a corrupt value, overwritten below). */
	wm_metrics_add(kind, WM_COUNTER_MISSES, 1);
	/* After the lookup, before the computation's snapshot (quiet scopes). */
	if (!writing)
		store_token = wm_shmem_store_token(MyDatabaseId, scope);
	result = call->compute(call->arg, &empty);

	/*
	 * Stored only if this transaction has still written nothing (checked
	 * after the computation), if the argument matched something, and never
	 * on a hot standby (cache_usable bypasses there; kept as a second guard
	 * because a standby's snapshot may lag the primary).
	 */
	if (!writing && !transaction_has_written() && !empty &&
		!RecoveryInProgress())
	{
		size_t		len;
		char	   *enc = encode_value(result, &len);
		char	   *key = value_key(vprefix, &version, rsuffix);

		/*
		 * Not when a commit changed the scope since the token: it may have
		 * been quiet (no bump), counting on nothing being stored under the
		 * generation it left.
		 */
		if (wm_shmem_store_allowed(MyDatabaseId, scope, store_token) &&
			wm_redis_store(kind, epoch_key, gen_key, &version, key, enc, len,
						   wm_guc_cache_ttl) == WM_REDIS_FAILED)
			wm_metrics_add(kind, WM_COUNTER_ERRORS, 1);
		if (use_local)
			local_store(local_key, local_gen, result);
	}
	flight_leave(&flight);

done:
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	wm_metrics_observe(kind, INSTR_TIME_GET_MICROSEC(duration));
	return result;
}
