/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  Background worker (with shared_preload_libraries) that delivers the
 *	  invalidations commits could not deliver, and bumps the global epoch
 *	  after every start of the shared memory segment.
 *
 * It connects to no database: it needs only shared memory and Redis, and
 * uses the server's configuration of wm_perf.* (postgresql.conf or ALTER
 * SYSTEM), re-read on SIGHUP.  Backends set its latch when they mark a
 * scope dirty; otherwise it wakes every wm_perf.redis_backoff while work is
 * pending, and every WM_WORKER_IDLE_MS when there is none.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "redis.h"
#include "wm_perf.h"

#define WM_WORKER_IDLE_MS 10000

/*
 * After a wake-up, wait this long before delivering: commits that arrive
 * meanwhile share one round trip, and readers that need a scope sooner
 * deliver it themselves (stats.c).
 */
#define WM_WORKER_COALESCE_US 2000

void
wm_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	/*
	 * Not on a standby: readers there never use the cache (stats.c), and a
	 * promoted standby must bump the epoch before its readers use it.
	 */
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "wm_perf");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "wm_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "wm_perf worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "wm_perf worker");
	RegisterBackgroundWorker(&worker);
}

/* Did the previous delivery attempt fail? Then a success is a retry. */
static bool last_attempt_failed = false;

static void
count_success(int scopes)
{
	wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_DELIVERED, scopes);
	if (last_attempt_failed)
		wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_RETRIED, scopes);
	last_attempt_failed = false;
}

static void
count_failure(int scopes)
{
	wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_FAILED, Max(scopes, 1));
	last_attempt_failed = true;
}

/* Exact keys per UNLINK round trip. */
#define WM_WORKER_UNLINK_BATCH 256

/*
 * One pass deletes application keys for at most this long, then returns to
 * the main loop (interrupts, reloads, dirty scopes and epoch demands come
 * first), and goes on where it stopped at the next pass.
 */
#define WM_WORKER_SLICE_MS 50

/*
 * The glob pattern being scanned across passes: its key, its queue
 * sequence when the scan started from cursor 0, and where the scan is.
 * The entry is removed from the queue only if nobody queued the pattern
 * again since the scan started: keys set before a later commit may sit
 * where the scan has already been, so that commit needs a scan of its own.
 */
static bool scan_active = false;
static WmQueuedKey scan_entry;	/* seq: the sequence at the scan's start */
static char scan_cursor[WM_SCAN_CURSOR_LEN];

static WmQueuedKey *queue_copy = NULL;

/* What a pass left: nothing, more to do at once, or a failure to retry. */
typedef enum WmWork
{
	WM_WORK_IDLE = 0,
	WM_WORK_MORE,
	WM_WORK_RETRY
} WmWork;

/*
 * The slice is over, or work more urgent than deleting application keys
 * has arrived (a reload, a signal, an epoch demand, a dirty scope).
 */
static bool
slice_over(TimestampTz slice_end)
{
	if (ConfigReloadPending || InterruptPending)
		return true;
	if (wm_shmem_epoch_pending() || wm_shmem_any_dirty())
		return true;
	return GetCurrentTimestamp() >= slice_end;
}

/*
 * Scan one pattern for the rest of this slice, from where an earlier pass
 * stopped.  Returns the Redis status: OK when the scan finished (and the
 * entry was removed unless queued again), INCOMPLETE when the slice ended.
 */
static WmRedisStatus
scan_pattern(const WmQueuedKey *entry, TimestampTz slice_end)
{
	WmRedisStatus st;
	long		unlinked;

	if (!scan_active || strcmp(scan_entry.key, entry->key) != 0)
	{
		scan_entry = *entry;
		strlcpy(scan_cursor, "0", sizeof(scan_cursor));
		scan_active = true;
	}
	st = wm_redis_unlink_matching(entry->key, scan_cursor, INT_MAX, slice_end,
								  &unlinked);
	wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_KEYS_DELETED, unlinked);
	if (st == WM_REDIS_INCOMPLETE)
		return st;
	scan_active = false;
	if (st != WM_REDIS_OK)
	{
		wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_FAILED, 1);
		return st;
	}
	wm_shmem_queue_done(&scan_entry);
	return st;
}

/*
 * Delete the queued application keys: exact keys in pipelined batches,
 * patterns with SCAN, for one time slice.
 */
static WmWork
delete_queued_keys(void)
{
	char	   *batch[WM_WORKER_UNLINK_BATCH];
	int			nbatch = 0;
	bool		overflowed;
	long		unlinked;
	int			n;
	int			i;
	int			j;
	int			completed = 0;
	WmWork		result = WM_WORK_IDLE;
	bool		scanned = false;
	TimestampTz slice_end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														WM_WORKER_SLICE_MS);

	if (queue_copy == NULL)
		queue_copy = MemoryContextAlloc(TopMemoryContext,
										sizeof(WmQueuedKey) * WM_MAX_QUEUED_KEYS);
	n = wm_shmem_queue_snapshot(queue_copy, &overflowed);
	if (overflowed)
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("wm_perf: application keys to delete did not fit in the worker's queue"),
				 errdetail("Some keys named by wm_cache_rules may hold stale values until they expire."),
				 errhint("Run SELECT wm_cache_flush() in each database once Redis is reachable.")));
	/* The scan in progress goes on first: no other scan restarts it. */
	if (scan_active)
	{
		for (j = 0; j < n; j++)
			if (queue_copy[j].pattern && strcmp(queue_copy[j].key, scan_entry.key) == 0)
				break;
		if (j == n)
			scan_active = false;	/* no longer queued */
		else if (j > 0)
		{
			WmQueuedKey tmp = queue_copy[0];

			queue_copy[0] = queue_copy[j];
			queue_copy[j] = tmp;
		}
	}
	for (i = 0; i <= n; i++)
	{
		/* Flush the batch when full or at the end. */
		if (nbatch == WM_WORKER_UNLINK_BATCH || (i == n && nbatch > 0))
		{
			if (wm_redis_deliver(0, NULL, nbatch, batch, &unlinked) != WM_REDIS_OK)
			{
				count_failure(0);
				return WM_WORK_RETRY;
			}
			wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_KEYS_DELETED, unlinked);
			for (j = i - 1; nbatch > 0; j--)
			{
				if (queue_copy[j].pattern)
					continue;
				wm_shmem_queue_done(&queue_copy[j]);
				nbatch--;
				completed++;	/* queued only after a failed UNLINK */
			}
		}
		if (i == n)
			break;
		if (!queue_copy[i].pattern)
		{
			batch[nbatch++] = queue_copy[i].key;
			continue;
		}
		/*
		 * One scan gets its slice in every pass, so that scans progress under
		 * any commit rate; the next one waits if the slice is over or other
		 * work arrived.  The exact keys after it are still sent.
		 */
		if (result == WM_WORK_IDLE && scanned && slice_over(slice_end))
			result = WM_WORK_MORE;
		if (result != WM_WORK_IDLE)
			continue;
		scanned = true;
		/* A pattern that fails stays queued, and the pass backs off. */
		switch (scan_pattern(&queue_copy[i], slice_end))
		{
			case WM_REDIS_OK:
				break;
			case WM_REDIS_INCOMPLETE:
				result = WM_WORK_MORE;
				break;
			default:
				result = WM_WORK_RETRY;
				break;
		}
	}
	wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_RETRIED, completed);
	return result;
}

/* One pass over the pending work. */
static WmWork
deliver_pending(void)
{
	WmDirtyEntry entries[WM_MAX_DIRTY];
	bool		need_epoch;
	uint64		upto;
	int			n;
	int			i;
	int			s;

	n = wm_shmem_snapshot_dirty(entries, &need_epoch, &upto);
	if (!wm_redis_configured())
	{
		/*
		 * No Redis: nothing is cached now, but values cached before may come
		 * back into use with Redis; require an epoch bump before that.
		 */
		if (need_epoch || n > 0)
			wm_shmem_forget_all(upto);
		wm_shmem_queue_clear();
		scan_active = false;
		return WM_WORK_IDLE;
	}
	if (!need_epoch && n == 0)
		return delete_queued_keys();

	if (need_epoch)
	{
		char		key[WM_MAX_KEY_LEN];
		char	   *keyp = key;
		long		unlinked;

		/* Read before the bump: a later demand stays pending. */
		uint64		demand = wm_shmem_epoch_demand();

		/* One INCR makes every value stored before it unreachable. */
		wm_key_epoch(key, sizeof(key));
		if (wm_redis_deliver(1, &keyp, 0, NULL, &unlinked) != WM_REDIS_OK)
		{
			count_failure(1);
			return WM_WORK_RETRY;
		}
		count_success(1);
		wm_shmem_epoch_done(upto, demand);
		return delete_queued_keys();
	}

	for (i = 0; i < n; i++)
	{
		char		keys[WM_SCOPE_COUNT][WM_MAX_KEY_LEN];
		char	   *keyp[WM_SCOPE_COUNT];
		int			nkeys = 0;
		long		unlinked;
		uint64		seen[WM_SCOPE_COUNT];

		for (s = 0; s < WM_SCOPE_COUNT; s++)
		{
			if ((entries[i].scope_mask & (1 << s)) == 0)
				continue;
			wm_key_generation(keys[nkeys], WM_MAX_KEY_LEN, entries[i].dboid, (WmScope) s);
			keyp[nkeys] = keys[nkeys];
			nkeys++;
		}
		wm_shmem_stores_seen(entries[i].dboid, seen);
		if (wm_redis_deliver(nkeys, keyp, 0, NULL, &unlinked) != WM_REDIS_OK)
		{
			count_failure(nkeys);
			return WM_WORK_RETRY;
		}
		count_success(nkeys);
		wm_shmem_stores_covered(entries[i].dboid, entries[i].scope_mask, seen);
		wm_shmem_clear_dirty(entries[i].dboid, entries[i].seq);
	}
	/* Scopes first: readers bypass a dirty scope until it is delivered. */
	return delete_queued_keys();
}

void
wm_worker_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	wm_shmem_set_worker_latch(MyLatch);
	/* A fresh segment has an epoch demand outstanding: nobody reads yet. */
	wm_shmem_set_worker_target(wm_redis_target_signature());
	ereport(LOG,
			(errmsg("wm_perf worker started")));

	for (;;)
	{
		WmWork		work;
		long		wait_ms;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			uint64		before = wm_redis_target_signature();
			uint64		after;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			wm_redis_reset_backoff();

			/*
			 * Another Redis, database or prefix (or Redis turned on or off):
			 * values stored there earlier may predate commits made meanwhile.
			 * Demand an epoch bump on the new target before readers use it,
			 * then publish the target: a process still on the old one (or
			 * already on the new one) sees a target other than its own and
			 * bypasses, and one that sees the new target sees the demand.
			 */
			after = wm_redis_target_signature();
			if (before != after)
			{
				wm_shmem_require_epoch();
				wm_shmem_set_worker_target(after);
				scan_active = false;
			}
		}

		pg_usleep(WM_WORKER_COALESCE_US);
		work = deliver_pending();

		/* More of a long scan: go on at once, after the checks above. */
		if (work == WM_WORK_MORE)
			continue;
		wait_ms = work == WM_WORK_IDLE ? WM_WORKER_IDLE_MS :
			Max(wm_guc_redis_backoff, 10);
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
	}
}
