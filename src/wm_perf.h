/*-------------------------------------------------------------------------
 *
 * wm_perf.h
 *	  Internal API of wm_perf, grouped by the file that implements it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef WM_PERF_WM_PERF_H
#define WM_PERF_WM_PERF_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "port/atomics.h"
#include "utils/jsonb.h"

/* Version of the Redis key layout; part of every key. */
#define WM_CACHE_KEY_VERSION	2

/* Longest Redis key wm_perf builds or deletes. */
#define WM_MAX_KEY_LEN			512

/*
 * Cache scopes.  A scope is the unit of invalidation: every cached value
 * belongs to exactly one scope, and a committed change to any table feeding
 * that scope makes all of its values unreachable.
 */
typedef enum WmScope
{
	WM_SCOPE_ROUTES = 0,		/* core.routes */
	WM_SCOPE_BINS,				/* core.bins, operations.customers,
								 * core.service_events */
	WM_SCOPE_COUNT
} WmScope;

/* The application tables wm_perf attaches to (wm_perf_config.role). */
typedef enum WmTable
{
	WM_TABLE_ROUTES = 0,
	WM_TABLE_BINS,
	WM_TABLE_CUSTOMERS,
	WM_TABLE_SERVICE_EVENTS,
	WM_TABLE_ORGANIZATIONS,
	WM_TABLE_COUNT
} WmTable;

/* What wm_perf_metrics reports, one row per kind. */
typedef enum WmMetricKind
{
	WM_METRIC_ROUTE_STATISTICS = 0,
	WM_METRIC_BIN_STATISTICS,
	WM_METRIC_BINS_WITHIN_RADIUS,
	WM_METRIC_ROUTES_WITHIN_RADIUS,
	WM_METRIC_INVALIDATION,
	WM_METRIC_KIND_COUNT
} WmMetricKind;

/*
 * Buckets of each function's latency histogram: 13 upper bounds from 0.5 ms
 * to 5 s, then +Inf (metrics.c latency_bounds_us[]).
 */
#define WM_LATENCY_BUCKETS 14

typedef enum WmCounter
{
	WM_COUNTER_CALLS = 0,
	WM_COUNTER_HITS,
	WM_COUNTER_LOCAL_HITS,		/* hits served from this backend's copy */
	WM_COUNTER_MISSES,
	WM_COUNTER_BYPASSES,		/* cache not consulted (no Redis, RLS, RR...) */
	WM_COUNTER_ERRORS,			/* Redis failures seen by this kind */
	WM_COUNTER_CALL_TIME_US,	/* total wall time of calls */
	WM_COUNTER_CALL_MAX_US,
	WM_COUNTER_SLOW_CALLS,
	WM_COUNTER_REDIS_RTT_US,	/* total Redis round-trip time */
	WM_COUNTER_REDIS_RTT_MAX_US,
	WM_COUNTER_REDIS_TRIPS,
	WM_COUNTER_INV_RECORDED,	/* scopes recorded by triggers */
	WM_COUNTER_INV_DELIVERED,	/* scopes delivered to Redis */
	WM_COUNTER_INV_FAILED,		/* deliveries that failed at commit */
	WM_COUNTER_INV_RETRIED,		/* deliveries made later by the worker */
	WM_COUNTER_KEYS_DELETED,	/* application keys unlinked */
	WM_COUNTER_LATENCY_BUCKET,	/* the first of WM_LATENCY_BUCKETS: calls per
								 * latency bucket (not cumulative) */
	WM_COUNTER_COUNT = WM_COUNTER_LATENCY_BUCKET + WM_LATENCY_BUCKETS
} WmCounter;

/* guc.c */
extern char *wm_guc_redis_host;
extern int	wm_guc_redis_port;
extern char *wm_guc_redis_password;
extern char *wm_guc_redis_password_file;
extern char *wm_guc_redis_user;
extern int	wm_guc_redis_database;
extern int	wm_guc_redis_connect_timeout;
extern int	wm_guc_redis_command_timeout;
extern int	wm_guc_redis_backoff;
extern int	wm_guc_cache_ttl;
extern char *wm_guc_key_prefix;
extern bool wm_guc_cache_enabled;
extern int	wm_guc_local_cache_size;
extern int	wm_guc_slow_spatial_threshold;
extern char *wm_guc_redis_sentinels;
extern char *wm_guc_redis_sentinel_master;
extern char *wm_guc_redis_sentinel_user;
extern char *wm_guc_redis_sentinel_password_file;
extern uint64 wm_guc_redis_target_generation;
extern XLogRecPtr wm_guc_min_lsn;
extern int	wm_guc_min_lsn_timeout;
extern void wm_guc_init(void);

/* One entry of wm_perf.redis_sentinels. */
#define WM_MAX_SENTINELS 8
typedef struct WmHostPort
{
	char		host[64];		/* an IPv4 or IPv6 address literal */
	int			port;
} WmHostPort;

extern int	wm_parse_sentinels(const char *list, WmHostPort *out, int max);

/* metrics.c */
extern void wm_metrics_add(WmMetricKind kind, WmCounter counter, uint64 delta);
extern void wm_metrics_max(WmMetricKind kind, WmCounter counter, uint64 value);
extern void wm_metrics_reset_all(void);
extern uint64 wm_metrics_get(WmMetricKind kind, WmCounter counter);
extern void wm_metrics_observe(WmMetricKind kind, uint64 elapsed_us);

/* shmem.c */
#define WM_MAX_DIRTY 64			/* databases with undelivered invalidations */
#define WM_MAX_TRACKED 64		/* databases whose stores are counted */
#define WM_GEN_SLOTS 256		/* local generation counters (database, scope) */
#define WM_MAX_QUEUED_KEYS 1024 /* application keys waiting for the worker */
#define WM_QUEUE_PATTERN_RESERVE 128	/* of which exact keys leave free */

typedef struct WmQueuedKey
{
	uint64		seq;			/* shared sequence when last queued */
	uint32		hash;
	bool		pattern;		/* a glob for SCAN, else one key */
	char		key[WM_MAX_KEY_LEN];
} WmQueuedKey;

typedef struct WmDirtyEntry
{
	Oid			dboid;
	int			scope_mask;		/* 1 << WmScope */
	uint64		seq;			/* shared sequence when last marked */
} WmDirtyEntry;

struct Latch;
extern void wm_shmem_init(void);
extern pg_atomic_uint64 *wm_shmem_counters(void);
typedef enum WmDirtyState
{
	WM_DIRTY_NONE = 0,
	WM_DIRTY_SCOPE,
	WM_DIRTY_ALL
} WmDirtyState;
extern WmDirtyState wm_shmem_scope_state(Oid dboid, WmScope scope, uint64 *seq);
extern bool wm_shmem_local_generation(Oid dboid, WmScope scope, uint64 *gen);
extern uint64 wm_shmem_incarnation(void);
extern void wm_shmem_bump_generations(Oid dboid, int scope_mask);
extern void wm_shmem_clear_scope(Oid dboid, WmScope scope, uint64 seq);
extern bool wm_shmem_mark_dirty(Oid dboid, int scope_mask, int force_mask,
								int *quiet_mask);
extern uint64 wm_shmem_store_token(Oid dboid, WmScope scope);
extern bool wm_shmem_store_allowed(Oid dboid, WmScope scope, uint64 token);
extern void wm_shmem_stores_seen(Oid dboid, uint64 *seen);
extern void wm_shmem_stores_covered(Oid dboid, int scope_mask,
									const uint64 *seen);
extern int	wm_shmem_snapshot_dirty(WmDirtyEntry *out, bool *need_epoch, uint64 *upto);
extern void wm_shmem_clear_dirty(Oid dboid, uint64 seq);
extern void wm_shmem_epoch_done(uint64 seq, uint64 demand);
extern void wm_shmem_set_worker_latch(struct Latch *latch);
extern void wm_shmem_set_worker_target(uint64 signature);
extern bool wm_shmem_worker_target_is(uint64 signature);
extern bool wm_shmem_epoch_pending(void);
extern bool wm_shmem_any_dirty(void);
extern uint64 wm_shmem_epoch_demand(void);
extern int	wm_shmem_pending(void);
extern void wm_shmem_forget_all(uint64 seq);
extern void wm_shmem_require_epoch(void);
extern int	wm_shmem_enqueue_keys(char *const *keys, int n, bool pattern);
extern int	wm_shmem_queue_snapshot(WmQueuedKey *out, bool *overflowed);
extern void wm_shmem_queue_done(const WmQueuedKey *done);
extern void wm_shmem_queue_clear(void);

/* cache.c */
typedef Jsonb *(*WmComputeFn) (void *arg, bool *empty);
typedef struct WmCacheCall
{
	WmMetricKind kind;
	WmScope		scope;
	const WmTable *tables;		/* the tables the value is computed from */
	int			ntables;
	const char *fn;				/* the statistic, in the key */
	const char *args;			/* the arguments, unambiguous */
	WmComputeFn compute;		/* sets *empty when nothing matched */
	void	   *arg;
} WmCacheCall;
extern Jsonb *wm_cache_get(const WmCacheCall *call);

/* maintain.c: the maintained aggregates behind wm_bin_statistics() */
struct _SPI_plan;
extern bool wm_maintained_bin_plans(struct _SPI_plan **plan, struct _SPI_plan **eplan);
extern void *wm_maintained_enter(void);
extern void wm_maintained_leave(void *state);
extern void wm_maintained_rebuild_if_set_up(void);
extern void wm_maintained_invalidate(void);
extern void wm_maintained_statement_begins(void);

/* standby.c */
extern void wm_standby_xact_ended(void);
extern void wm_standby_wait_for_min_lsn(bool fresh_snapshot, const char *funcname);

/* worker.c */
extern void wm_worker_register(void);
extern PGDLLEXPORT void wm_worker_main(Datum main_arg);

/* spi_util.c */
extern void wm_config_refresh(void);
extern Oid	wm_table_oid(WmTable table);
extern int	wm_table_of_role(const char *role);
extern bool wm_relation_descends_from(Oid relid, Oid ancestor);
extern void wm_table_columns(WmTable table, const char **names, int size);
extern const char *wm_table_qualname(WmTable table);
extern bool wm_table_is_geometry(WmTable table);
extern const char *wm_table_role_name(WmTable table);
extern uint64 wm_config_generation(void);
extern uint64 wm_table_invalidations(WmTable table);
extern const char *wm_postgis_schema(void);
extern const char *wm_extension_schema(void);
extern Oid	wm_extension_schema_oid(void);
extern bool wm_table_has_problem(WmTable table);
extern void wm_spi_check(int rc, int expected, const char *what);

/* xact.c */
extern void wm_xact_init(void);
extern void wm_xact_add_scope(WmScope scope);
extern void wm_xact_touch_scope(WmScope scope);
extern void wm_xact_force_scope(WmScope scope);
extern bool wm_xact_add_key(const char *key, bool pattern, const char *fallback);
extern void wm_key_epoch(char *buf, size_t size);
extern void wm_key_generation(char *buf, size_t size, Oid dboid, WmScope scope);
extern void wm_key_values(char *buf, size_t size, Oid dboid, WmScope scope);
extern bool wm_xact_scope_pending(WmScope scope);
extern bool wm_xact_scope_undelivered(WmScope scope);
extern const char *wm_scope_name(WmScope scope);


#endif							/* WM_PERF_WM_PERF_H */
