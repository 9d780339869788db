/*-------------------------------------------------------------------------
 *
 * standby.c
 *	  Read-your-writes across a hot standby: wm_perf_commit_lsn() on the
 *	  primary, and the wait for wm_perf.min_lsn before a call reads on a
 *	  standby.
 *
 * A client that wrote on the primary takes wm_perf_commit_lsn() there (the
 * end of its session's last commit record, core's XactLastCommitEnd) and
 * sets wm_perf.min_lsn to it in its standby session.  On a standby, the
 * startup process advances the replay position only after a record's redo
 * has finished; for a commit record that means its transaction is no longer
 * in KnownAssignedXids, so every snapshot taken once the replay position
 * has passed the commit's end sees the commit.  Hence:
 *
 * - A call that reads with a snapshot taken after it returns from here (a
 *	 statistics call in READ COMMITTED: stats.c takes a fresh snapshot for
 *	 its queries) waits until GetXLogReplayRecPtr() >= min_lsn, polling
 *	 with WaitLatch (1 ms, doubling up to WM_MIN_LSN_POLL_MAX_MS; core's
 *	 startup process has no hook to wake us), CHECK_FOR_INTERRUPTS() on
 *	 every round, at most wm_perf.min_lsn_timeout, then fails with 40001.
 * - A call that reads with a snapshot taken before it ran (a radius lookup:
 *	 STABLE, the statement's snapshot; anything under REPEATABLE READ: the
 *	 transaction's) cannot include what replays during the call.  Its
 *	 snapshot was taken after this session's previous transaction ended,
 *	 and xact.c records the replay position at every transaction end
 *	 (wm_standby_xact_ended): when min_lsn is not beyond it, the snapshot
 *	 includes the commit.  Otherwise the call waits the same way (so that a
 *	 retry passes at once) and then fails with 40001 all the same.
 * - On a primary nothing waits: a commit whose COMMIT has returned is
 *	 visible to every later snapshot, and its end is at or before the WAL
 *	 insert position.  An LSN beyond that position was not handed out by
 *	 this server's history (22023).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/pg_lsn.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "wm_perf.h"

/* The longest pause between two looks at the replay position. */
#define WM_MIN_LSN_POLL_MAX_MS 8

/*
 * The replay position when this session's last transaction ended, on a
 * standby (InvalidXLogRecPtr on a primary and before the first end seen):
 * every snapshot of the current transaction includes what was replayed by
 * then.
 */
static XLogRecPtr replayed_at_xact_end = InvalidXLogRecPtr;

/*
 * Called by xact.c at every top-level commit, abort and prepare.  Cannot
 * fail: RecoveryInProgress() reads shared memory, GetXLogReplayRecPtr()
 * takes a spinlock.
 */
void
wm_standby_xact_ended(void)
{
	if (RecoveryInProgress())
		replayed_at_xact_end = GetXLogReplayRecPtr(NULL);
	else
		replayed_at_xact_end = InvalidXLogRecPtr;
}

/* On a primary: min_lsn must be at or before the WAL insert position. */
static void
check_on_primary(XLogRecPtr target)
{
	XLogRecPtr	insert = GetXLogInsertRecPtr();

	if (target <= insert)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("wm_perf.min_lsn %X/%X is ahead of the WAL of this server",
					LSN_FORMAT_ARGS(target)),
			 errdetail("This server is not in recovery and has written WAL up to %X/%X only.",
					   LSN_FORMAT_ARGS(insert)),
			 errhint("Take wm_perf.min_lsn from wm_perf_commit_lsn() on the primary of this server's history; after a failover, a commit that the promoted server never received is lost.")));
}

/*
 * Make sure that what the calling function reads includes every commit
 * that ended at or before wm_perf.min_lsn.  fresh_snapshot: the caller
 * reads with a snapshot taken after this returns (ignored under REPEATABLE
 * READ or SERIALIZABLE, where the transaction's snapshot is reused).
 * funcname names the caller in the error.
 */
void
wm_standby_wait_for_min_lsn(bool fresh_snapshot, const char *funcname)
{
	XLogRecPtr	target = wm_guc_min_lsn;
	XLogRecPtr	replayed = InvalidXLogRecPtr;
	TimestampTz deadline;
	long		pause_ms = 1;

	if (XLogRecPtrIsInvalid(target))
		return;
	if (!RecoveryInProgress())
	{
		check_on_primary(target);
		return;
	}
	if (IsolationUsesXactSnapshot())
		fresh_snapshot = false;
	if (!fresh_snapshot && target <= replayed_at_xact_end)
		return;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   wm_guc_min_lsn_timeout);
	for (;;)
	{
		TimestampTz now;
		long		remaining;

		CHECK_FOR_INTERRUPTS();

		/*
		 * Promoted while we waited: everything replayed is visible now, and
		 * the server writes WAL of its own.
		 */
		if (!RecoveryInProgress())
		{
			check_on_primary(target);
			break;
		}
		replayed = GetXLogReplayRecPtr(NULL);
		if (target <= replayed)
			break;

		now = GetCurrentTimestamp();
		remaining = TimestampDifferenceMilliseconds(now, deadline);
		if (now >= deadline || remaining <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("this standby has not replayed wm_perf.min_lsn %X/%X within %d ms",
							LSN_FORMAT_ARGS(target), wm_guc_min_lsn_timeout),
					 errdetail("Replay has reached %X/%X; %s() cannot include the commit yet.",
							   LSN_FORMAT_ARGS(replayed), funcname),
					 errhint("Retry on the primary, or on this standby later; wm_perf.min_lsn_timeout sets how long a call waits.")));

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(pause_ms, remaining),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		pause_ms = Min(pause_ms * 2, WM_MIN_LSN_POLL_MAX_MS);
	}

	/*
	 * Replayed now, but the caller's snapshot is older than the replay (it
	 * was taken before this call, and the transaction began before the
	 * replay position passed min_lsn): it may miss the commit.  A retry in
	 * a new transaction passes the check above at once.
	 */
	if (!fresh_snapshot)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the snapshot of %s() was taken before this standby replayed wm_perf.min_lsn %X/%X",
						funcname, LSN_FORMAT_ARGS(target)),
				 errdetail("%s", IsolationUsesXactSnapshot() ?
						   "A REPEATABLE READ or SERIALIZABLE transaction reads with the snapshot of its first statement." :
						   "A radius lookup reads with the snapshot of its statement."),
				 errhint("Retry the transaction: replay has passed the LSN now.")));
}

/*
 * wm_perf_commit_lsn(): the end of this session's last commit record
 * (XactLastCommitEnd), NULL before the session's first commit.  A
 * transaction that wrote no WAL leaves it unchanged; one that wrote WAL
 * without a transaction id (COMMIT PREPARED of another session's
 * transaction, pruning by a read) moves it to the end of that WAL, which
 * is at or after the commit it finished.
 */
PG_FUNCTION_INFO_V1(wm_perf_commit_lsn);
Datum
wm_perf_commit_lsn(PG_FUNCTION_ARGS)
{
	if (XLogRecPtrIsInvalid(XactLastCommitEnd))
		PG_RETURN_NULL();
	PG_RETURN_LSN(XactLastCommitEnd);
}
