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

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

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

/* SCAN round trips per pattern and pass: up to 10M keys at COUNT 1000. */
#define WM_WORKER_SCAN_ROUNDS 10000

/* Exact keys per UNLINK round trip. */
#define WM_WORKER_UNLINK_BATCH 256

static WmQueuedKey *queue_copy = NULL;

/*
 * Delete the queued application keys: exact keys in pipelined batches,
 * patterns with SCAN.  True when the queue was emptied.
 */
static bool
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
	bool		done = true;

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
	for (i = 0; i <= n; i++)
	{
		/* Flush the batch when full or at the end. */
		if (nbatch == WM_WORKER_UNLINK_BATCH || (i == n && nbatch > 0))
		{
			if (wm_redis_deliver(0, NULL, nbatch, batch, &unlinked) != WM_REDIS_OK)
			{
				count_failure(0);
				return false;
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
		 * A pattern that fails (or does not finish its rounds) stays queued
		 * for the next pass; the entries after it are still tried.
		 */
		if (wm_redis_unlink_matching(queue_copy[i].key, WM_WORKER_SCAN_ROUNDS,
									 &unlinked) != WM_REDIS_OK)
		{
			wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_FAILED, 1);
			wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_KEYS_DELETED, unlinked);
			done = false;
			continue;
		}
		wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_KEYS_DELETED, unlinked);
		wm_shmem_queue_done(&queue_copy[i]);
	}
	wm_metrics_add(WM_METRIC_INVALIDATION, WM_COUNTER_INV_RETRIED, completed);
	return done;
}

/* One pass over the pending work; true when nothing is left. */
static bool
deliver_pending(void)
{
	WmDirtyEntry entries[WM_MAX_DIRTY];
	bool		need_epoch;
	uint64		upto;
	int			n;
	int			i;
	int			s;
	bool		done = true;

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
		return true;
	}
	if (!need_epoch && n == 0)
		return delete_queued_keys();

	if (need_epoch)
	{
		char		key[WM_MAX_KEY_LEN];
		char	   *keyp = key;
		long		unlinked;

		/* One INCR makes every value stored before it unreachable. */
		wm_key_epoch(key, sizeof(key));
		if (wm_redis_deliver(1, &keyp, 0, NULL, &unlinked) != WM_REDIS_OK)
		{
			count_failure(1);
			return false;
		}
		count_success(1);
		wm_shmem_epoch_done(upto);
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
			done = false;
			break;
		}
		count_success(nkeys);
		wm_shmem_stores_covered(entries[i].dboid, entries[i].scope_mask, seen);
		wm_shmem_clear_dirty(entries[i].dboid, entries[i].seq);
	}
	/* Scopes first: readers bypass a dirty scope until it is delivered. */
	if (done && !delete_queued_keys())
		done = false;
	return done;
}

/* Where cached values live: host, port, database and key prefix. */
static void
target_signature(char *buf, size_t size)
{
	snprintf(buf, size, "%s|%d|%d|%s", wm_guc_redis_host, wm_guc_redis_port,
			 wm_guc_redis_database, wm_guc_key_prefix);
}

void
wm_worker_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	wm_shmem_set_worker_latch(MyLatch);
	ereport(LOG,
			(errmsg("wm_perf worker started")));

	for (;;)
	{
		bool		idle;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			char		before[WM_MAX_KEY_LEN];
			char		after[WM_MAX_KEY_LEN];

			target_signature(before, sizeof(before));

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			wm_redis_reset_backoff();

			/*
			 * Another Redis, database or prefix (or Redis turned on or off):
			 * values stored there earlier may predate commits made meanwhile.
			 * Demand an epoch bump on the new target before readers use it.
			 */
			target_signature(after, sizeof(after));
			if (strcmp(before, after) != 0)
				wm_shmem_require_epoch();
		}

		pg_usleep(WM_WORKER_COALESCE_US);
		idle = deliver_pending();

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 idle ? WM_WORKER_IDLE_MS : Max(wm_guc_redis_backoff, 10),
						 PG_WAIT_EXTENSION);
	}
}
