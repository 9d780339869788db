/*-------------------------------------------------------------------------
 *
 * metrics.c
 *	  Counters behind the wm_perf_metrics view.
 *
 * With shared_preload_libraries the counters live in shared memory and are
 * cluster-wide (pg_atomic_* only, no lock: every update is one atomic
 * add or a compare-and-swap loop for maxima).  Without preload they are this
 * backend's own.  Updating a counter never allocates and never fails, so it
 * is safe on the post-commit path.
 *
 * Latency histograms: each of the four functions has WM_LATENCY_BUCKETS
 * counters, one per bucket and not cumulative, so that one call is one
 * atomic add.  A reader sums them into Prometheus' cumulative form, and the
 * +Inf bucket is the count: cumulative counts are monotonic and the last one
 * equals the count in every read, even while other backends add to them.
 * The sum is WM_COUNTER_CALL_TIME_US, added by the same wm_metrics_observe()
 * call (read separately, so under concurrent calls it may run a few calls
 * ahead of or behind the buckets).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "wm_perf.h"

#define WM_NCOUNTERS (WM_METRIC_KIND_COUNT * WM_COUNTER_COUNT)

static pg_atomic_uint64 local_counters[WM_NCOUNTERS];
static bool local_initialized = false;

static const char *const kind_names[WM_METRIC_KIND_COUNT] = {
	"wm_route_statistics",
	"wm_bin_statistics",
	"wm_bins_within_radius",
	"wm_routes_within_radius",
	"invalidation"
};

/*
 * Upper bounds of the latency buckets ("le", inclusive), in microseconds:
 * 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000 ms, +Inf.
 */
static const uint64 latency_bounds_us[WM_LATENCY_BUCKETS] = {
	500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000, 2000000, 5000000, PG_UINT64_MAX
};

static pg_atomic_uint64 *
counters(void)
{
	pg_atomic_uint64 *shared = wm_shmem_counters();
	int			i;

	if (shared)
		return shared;
	if (!local_initialized)
	{
		for (i = 0; i < WM_NCOUNTERS; i++)
			pg_atomic_init_u64(&local_counters[i], 0);
		local_initialized = true;
	}
	return local_counters;
}

void
wm_metrics_add(WmMetricKind kind, WmCounter counter, uint64 delta)
{
	pg_atomic_fetch_add_u64(&counters()[kind * WM_COUNTER_COUNT + counter],
							(int64) delta);
}

void
wm_metrics_max(WmMetricKind kind, WmCounter counter, uint64 value)
{
	pg_atomic_uint64 *c = &counters()[kind * WM_COUNTER_COUNT + counter];
	uint64		cur = pg_atomic_read_u64(c);

	while (value > cur)
	{
		if (pg_atomic_compare_exchange_u64(c, &cur, value))
			break;
	}
}

uint64
wm_metrics_get(WmMetricKind kind, WmCounter counter)
{
	return pg_atomic_read_u64(&counters()[kind * WM_COUNTER_COUNT + counter]);
}

/*
 * One completed call of a function that took elapsed_us: its total and
 * longest time, and its latency bucket.
 */
void
wm_metrics_observe(WmMetricKind kind, uint64 elapsed_us)
{
	int			b = 0;

	Assert(kind != WM_METRIC_INVALIDATION);
	while (elapsed_us > latency_bounds_us[b])
		b++;					/* the last bound is PG_UINT64_MAX */
	wm_metrics_add(kind, WM_COUNTER_CALL_TIME_US, elapsed_us);
	wm_metrics_max(kind, WM_COUNTER_CALL_MAX_US, elapsed_us);
	wm_metrics_add(kind, (WmCounter) (WM_COUNTER_LATENCY_BUCKET + b), 1);
}

void
wm_metrics_reset_all(void)
{
	pg_atomic_uint64 *c = counters();
	int			i;

	for (i = 0; i < WM_NCOUNTERS; i++)
		pg_atomic_write_u64(&c[i], 0);
}


PG_FUNCTION_INFO_V1(wm_perf_metrics);
Datum
wm_perf_metrics(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			k;

	WM_INIT_MATERIALIZED_SRF(fcinfo);

	for (k = 0; k < WM_METRIC_KIND_COUNT; k++)
	{
		Datum		values[20];
		bool		nulls[20] = {0};
		int			n = 0;

#define C(counter) wm_metrics_get((WmMetricKind) k, counter)
		values[n++] = CStringGetTextDatum(kind_names[k]);
		values[n++] = Int64GetDatum(C(WM_COUNTER_CALLS));
		values[n++] = Int64GetDatum(C(WM_COUNTER_HITS));
		values[n++] = Int64GetDatum(C(WM_COUNTER_LOCAL_HITS));
		values[n++] = Int64GetDatum(C(WM_COUNTER_MISSES));
		values[n++] = Int64GetDatum(C(WM_COUNTER_BYPASSES));
		values[n++] = Int64GetDatum(C(WM_COUNTER_ERRORS));
		values[n++] = Float8GetDatum(C(WM_COUNTER_CALL_TIME_US) / 1000.0);
		values[n++] = Float8GetDatum(C(WM_COUNTER_CALL_MAX_US) / 1000.0);
		values[n++] = Int64GetDatum(C(WM_COUNTER_SLOW_CALLS));
		values[n++] = Int64GetDatum(C(WM_COUNTER_REDIS_TRIPS));
		values[n++] = Float8GetDatum(C(WM_COUNTER_REDIS_RTT_US) / 1000.0);
		values[n++] = Float8GetDatum(C(WM_COUNTER_REDIS_RTT_MAX_US) / 1000.0);
		values[n++] = Int64GetDatum(C(WM_COUNTER_INV_RECORDED));
		values[n++] = Int64GetDatum(C(WM_COUNTER_INV_DELIVERED));
		values[n++] = Int64GetDatum(C(WM_COUNTER_INV_FAILED));
		values[n++] = Int64GetDatum(C(WM_COUNTER_INV_RETRIED));
		values[n++] = Int64GetDatum(C(WM_COUNTER_KEYS_DELETED));
		values[n++] = Int64GetDatum(k == WM_METRIC_INVALIDATION ? wm_shmem_pending() : 0);
		values[n++] = BoolGetDatum(wm_shmem_counters() != NULL);
#undef C
		Assert(n == lengthof(values));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * _wm_metrics_latency(): per function, the histogram in Prometheus' form:
 * the count, the sum in ms, the upper bounds in ms (the last +Inf) and the
 * cumulative counts.  A function of its own so that 1.0's _wm_metrics(),
 * whose shape is fixed, is served unchanged by this library.
 */
PG_FUNCTION_INFO_V1(wm_perf_metrics_latency);
Datum
wm_perf_metrics_latency(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			k;

	WM_INIT_MATERIALIZED_SRF(fcinfo);

	for (k = 0; k < WM_METRIC_KIND_COUNT; k++)
	{
		Datum		values[5];
		bool		nulls[5] = {0};
		Datum		bounds[WM_LATENCY_BUCKETS];
		Datum		cumulative[WM_LATENCY_BUCKETS];
		uint64		total = 0;
		int			b;

		if (k == WM_METRIC_INVALIDATION)
			continue;
		for (b = 0; b < WM_LATENCY_BUCKETS; b++)
		{
			total += wm_metrics_get((WmMetricKind) k,
									(WmCounter) (WM_COUNTER_LATENCY_BUCKET + b));
			cumulative[b] = Int64GetDatum((int64) total);
			bounds[b] = Float8GetDatum(b == WM_LATENCY_BUCKETS - 1
									   ? get_float8_infinity()
									   : latency_bounds_us[b] / 1000.0);
		}
		values[0] = CStringGetTextDatum(kind_names[k]);
		values[1] = Int64GetDatum((int64) total);
		values[2] = Float8GetDatum(wm_metrics_get((WmMetricKind) k,
												  WM_COUNTER_CALL_TIME_US) / 1000.0);
		values[3] = PointerGetDatum(construct_array(bounds, WM_LATENCY_BUCKETS,
													FLOAT8OID, sizeof(float8),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[4] = PointerGetDatum(construct_array(cumulative, WM_LATENCY_BUCKETS,
													INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(wm_perf_metrics_reset);
Datum
wm_perf_metrics_reset(PG_FUNCTION_ARGS)
{
	wm_metrics_reset_all();
	PG_RETURN_VOID();
}
