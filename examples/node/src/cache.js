'use strict';
// The application's own Redis cache (ioredis 5, key prefix "waste_mgmt:"),
// as the backend has it: read-through JSON values under stats:* keys.
//
// With the rules of docs/cache_rules_example.sql in wm_cache_rules, wm_perf
// deletes these keys (UNLINK) when a change to bins, customers, service
// events or routes commits, before COMMIT returns to the writer (the glob
// rule for every dashboard on a route change: a few milliseconds after).  So
// this cache stays correct with no invalidation code in the application.
// Its old invalidation (KEYS 'stats:...' then DEL) never deleted anything:
// ioredis does not prefix the pattern of KEYS or SCAN, so the pattern
// matched no key of the prefixed keyspace.  It is gone.
//
// One race remains that wm_perf cannot close for the application's keys: a
// read-through fill that computed its value before a commit and SETs it after
// the commit's UNLINK puts an old value back, until its TTL.  wm_perf's own
// cache (generation keys) has no such race, which is why docs/migration.md
// ends with dropping this layer once every reader calls wm_perf.

const Redis = require('ioredis');

const KEY_PREFIX = 'waste_mgmt:';

const keys = {
  routesGlobal: 'stats:routes:global',
  binsGlobal: 'stats:bins:global',
  binsCustomer: (customerId) => `stats:bins:customer:${customerId}`,
  dashboardGlobal: 'stats:dashboard:global',
  dashboardCustomer: (customerId) => `stats:dashboard:customer:${customerId}`,
};

// options: host, port, password (Redis runs with requirepass), db.
function createRedis(options = {}) {
  return new Redis({
    host: options.host || '127.0.0.1',
    port: options.port || 6379,
    password: options.password,
    db: options.db || 0,
    keyPrefix: KEY_PREFIX,
    // Fail fast instead of queueing forever when Redis is away: the
    // statistics come from PostgreSQL anyway.
    maxRetriesPerRequest: 1,
  });
}

// The application's read-through helper: GET the key, else compute, SET it
// with a TTL and return it.  A Redis failure falls back to computing.
async function readThrough(redis, key, ttlSeconds, compute) {
  let hit = null;
  try {
    hit = await redis.get(key);
  } catch (err) {
    hit = null;
  }
  if (hit !== null) return JSON.parse(hit);
  const value = await compute();
  try {
    await redis.set(key, JSON.stringify(value), 'EX', ttlSeconds);
  } catch (err) {
    // not cached; the next call computes again
  }
  return value;
}

// The cached endpoints of the backend, on top of the wm_perf service.
function createCachedStatistics(redis, service, ttlSeconds = 300) {
  return {
    routes: () => readThrough(redis, keys.routesGlobal, ttlSeconds, () => service.getRouteStatistics()),
    bins: (customerId = null) => readThrough(redis,
      customerId ? keys.binsCustomer(customerId) : keys.binsGlobal, ttlSeconds,
      () => service.getBinStatistics(customerId)),
    dashboard: (customerId = null) => readThrough(redis,
      customerId ? keys.dashboardCustomer(customerId) : keys.dashboardGlobal, ttlSeconds,
      () => service.getDashboard(customerId)),
  };
}

module.exports = { KEY_PREFIX, keys, createRedis, readThrough, createCachedStatistics };
