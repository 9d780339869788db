/*-------------------------------------------------------------------------
 *
 * redis.h
 *	  wm_perf's Redis API.  No hiredis type appears here: redis.c is the
 *	  only file that includes hiredis.
 *
 * Every call is bounded by wm_perf.redis_connect_timeout and
 * wm_perf.redis_command_timeout, never raises an ERROR and, on the paths
 * marked post-commit safe, never pallocs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef WM_PERF_REDIS_H
#define WM_PERF_REDIS_H

#include "datatype/timestamp.h"

#include "wm_perf.h"

typedef enum WmRedisStatus
{
	WM_REDIS_OK = 0,
	WM_REDIS_DISABLED,			/* wm_perf.redis_host is empty */
	WM_REDIS_BACKOFF,			/* a recent failure: not trying now */
	WM_REDIS_FAILED,			/* connect/command failed, timed out, was
								 * interrupted, or an unexpected reply */
	WM_REDIS_INCOMPLETE,		/* a scan stopped at its budget; resumable */
	WM_REDIS_UNSAFE				/* no values from this target without
								 * preload (Sentinel, Cluster) */
} WmRedisStatus;

/* Room for a SCAN cursor (a 64-bit number in decimal). */
#define WM_SCAN_CURSOR_LEN 32

/*
 * Is a Redis target configured at all?  wm_perf.redis_host, or
 * wm_perf.redis_sentinels together with wm_perf.redis_sentinel_master.
 */
extern bool wm_redis_configured(void);

/* Is the master found through Redis Sentinel? */
extern bool wm_redis_uses_sentinel(void);

/* A non-zero hash of the settings that choose where values live. */
extern uint64 wm_redis_target_signature(void);

/*
 * "<run id>.<replication id>" of the Redis server, 12 hex digits of each:
 * a restart changes the first, a promotion (of a replica, or of a demoted
 * master again) the second.
 */
#define WM_SERVER_IDENT_LEN 32

/* The counters a cached value was looked up under. */
typedef struct WmCacheVersion
{
	char		epoch[32];
	char		generation[32];
	char		server[WM_SERVER_IDENT_LEN];
} WmCacheVersion;

/*
 * Read path, one round trip: read the epoch and generation keys (creating
 * them, from the server's clock, when missing) and the value stored under
 *   vprefix ":" <server identity> ":e" <epoch> ":g" <generation> vsuffix.
 * On success *version is filled and *value is the palloc'd value, or NULL
 * on a miss.
 */
extern WmRedisStatus wm_redis_lookup(WmMetricKind kind,
									 const char *epoch_key, const char *gen_key,
									 const char *vprefix, const char *vsuffix,
									 bool tagged, WmCacheVersion *version,
									 char **value, size_t *value_len);

/*
 * SET key value EX ttl, only if the epoch and generation keys still hold
 * the values of 'version' (checked atomically by a server-side script).
 */
extern WmRedisStatus wm_redis_store(WmMetricKind kind,
									const char *epoch_key, const char *gen_key,
									const WmCacheVersion *version,
									const char *key, const char *value,
									size_t len, int ttl_s);

/*
 * Post-commit safe: one pipelined round trip that increments each
 * incr_keys[i] (a missing counter starts from the server's clock in
 * microseconds, so a flushed counter never repeats an old value) and
 * UNLINKs each unlink_keys[i].  *unlinked receives the number of
 * keys UNLINK removed.
 */
extern WmRedisStatus wm_redis_deliver(int nincr, char *const *incr_keys,
									  int nunlink, char *const *unlink_keys,
									  long *unlinked);

/*
 * UNLINK every key matching a glob pattern, with SCAN ... COUNT 1000,
 * starting at *cursor ("0": from the start) and leaving in it where the scan
 * stopped.  At most max_rounds SCAN round trips, and none started after
 * 'deadline' (0: none) once one was made.  Returns WM_REDIS_OK when the
 * scan is complete, WM_REDIS_INCOMPLETE when it stopped at its budget (call
 * again with the cursor).  Post-commit safe.
 */
extern WmRedisStatus wm_redis_unlink_matching(const char *pattern, char *cursor,
											  int max_rounds, TimestampTz deadline,
											  long *unlinked);

/* Close the connection (it is reopened lazily). */
extern void wm_redis_disconnect(void);

/* Forget any back-off: the next call tries to connect. */
extern void wm_redis_reset_backoff(void);

#endif							/* WM_PERF_REDIS_H */
