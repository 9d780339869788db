'use strict';
// The application's stack against wm_perf: node-postgres, Sequelize 6 and
// ioredis 5 (key prefix "waste_mgmt:"), Redis with appendonly and a password.
// Run by test/lib/run_node.sh (make test), which starts the servers, loads the
// fixture, attaches wm_perf and loads docs/cache_rules_example.sql.
//
// Every write is followed, as soon as its COMMIT has resolved, by a read on
// another connection that must equal the full computation in plain SQL
// (test/fixtures/expected_stats.sql) and include the write, and by checks that
// the application's cached keys the write concerns are gone and the others
// are not.  The tests run in order and share state (one file, one process).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Pool } = require('pg');
const { Sequelize, QueryTypes } = require('sequelize');
const Redis = require('ioredis');

const { createStatisticsService, StatisticsInputError } = require('../src/statisticsService');
const { createSequelizeStatisticsService } = require('../src/statisticsService.sequelize');
const { createRedis, keys, createCachedStatistics, KEY_PREFIX } = require('../src/cache');
const { defineModels } = require('../src/models');

const env = process.env;
for (const name of ['PGHOST', 'PGPORT', 'PGDATABASE', 'PGUSER', 'WM_ADMIN_USER',
  'REDIS_HOST', 'REDIS_PORT', 'REDIS_PASSWORD']) {
  if (!env[name]) throw new Error(`${name} is not set: run this through test/lib/run_node.sh`);
}
const REDIS = { host: env.REDIS_HOST, port: Number(env.REDIS_PORT), password: env.REDIS_PASSWORD };
const T = { timeout: 30000 };

let app;        // pg.Pool as the application role
let admin;      // pg.Pool as the superuser (checks only)
let sequelize;  // Sequelize as the application role
let models;
let redis;      // the application's ioredis client, keyPrefix waste_mgmt:
let raw;        // ioredis without a prefix, to look at wm_perf's own keys
let service;    // the pg statistics service
let seqService; // the Sequelize statistics service
let cached;     // the application's read-through endpoints
let C1, C2, B1, B2, R1;

// --- helpers ---------------------------------------------------------------

const strip = (stats) => {
  assert.equal(typeof stats.computedAt, 'string', 'computedAt present');
  const { computedAt, ...rest } = stats;
  return rest;
};

async function fullBins(db, customerId = null) {
  const { rows } = await db.query('SELECT regress_bin_stats($1::uuid) AS s', [customerId]);
  return rows[0].s;
}

async function fullRoutes(db) {
  const { rows } = await db.query('SELECT regress_route_stats(NULL) AS s');
  return rows[0].s;
}

async function fullBinsSequelize(customerId = null, transaction) {
  const row = await sequelize.query('SELECT regress_bin_stats(CAST(:c AS uuid)) AS s',
    { replacements: { c: customerId }, type: QueryTypes.SELECT, plain: true, transaction });
  return row.s;
}

async function one(db, sql, values = []) {
  const { rows } = await db.query(sql, values);
  return rows[0];
}

// The application's keys, filled the way the application fills them (its
// read-through endpoints), plus two keys no rule names.
async function seedApplicationKeys() {
  await cached.routes();
  await cached.bins();
  await cached.bins(C1);
  await cached.bins(C2);
  await cached.dashboard();
  await cached.dashboard(C1);
  await cached.dashboard(C2);
  await redis.set('unrelated', 'u');
  await redis.set('stats:other:global', 'o');
  for (const k of [keys.routesGlobal, keys.binsGlobal, keys.binsCustomer(C1), keys.binsCustomer(C2),
    keys.dashboardGlobal, keys.dashboardCustomer(C1), keys.dashboardCustomer(C2)]) {
    assert.equal(await redis.exists(k), 1, `seeded ${k}`);
  }
}

async function existing(list) {
  const out = {};
  for (const k of list) out[k] = await redis.exists(k);
  return out;
}

async function waitFor(cond, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

// A warm wm_perf cache: two calls return the same computedAt (the second is a
// hit).  Right after the server started, the worker may not have bumped the
// epoch yet and every call computes: wait for that, up to 10 s.
async function warm(fn) {
  let first;
  const ok = await waitFor(async () => {
    first = await fn();
    const second = await fn();
    return second.computedAt === first.computedAt;
  });
  assert.ok(ok, 'the second call is served from the cache (same computedAt)');
  return first;
}

// --- set-up ----------------------------------------------------------------

before(async () => {
  app = new Pool({ max: 4 });
  admin = new Pool({ user: env.WM_ADMIN_USER, max: 1 });
  sequelize = new Sequelize(env.PGDATABASE, env.PGUSER, null, {
    host: env.PGHOST, port: Number(env.PGPORT), dialect: 'postgres', logging: false,
    pool: { max: 4 },
  });
  models = defineModels(sequelize);
  redis = createRedis(REDIS);
  raw = new Redis({ ...REDIS, maxRetriesPerRequest: 1 });
  service = createStatisticsService(app);
  seqService = createSequelizeStatisticsService(sequelize);
  cached = createCachedStatistics(redis, service);

  const live = `FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
                WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL AND b.status = 'active'`;
  ({ c: C1, b: B1 } = await one(app,
    `SELECT b.customer_id AS c, b.id AS b ${live} ORDER BY b.bin_number LIMIT 1`));
  ({ c: C2, b: B2 } = await one(app,
    `SELECT b.customer_id AS c, b.id AS b ${live} AND b.customer_id <> $1 ORDER BY b.bin_number LIMIT 1`, [C1]));
  ({ r: R1 } = await one(app,
    `SELECT id AS r FROM core.routes WHERE deleted_at IS NULL AND status = 'active' ORDER BY route_number LIMIT 1`));
});

after(async () => {
  await Promise.allSettled([app.end(), admin.end(), sequelize.close()]);
  redis.disconnect();
  raw.disconnect();
});

// --- Redis and its password ------------------------------------------------

test('Redis runs as the application runs it: appendonly yes, and a client without the password gets NOAUTH', T, async () => {
  assert.deepEqual(await raw.config('GET', 'appendonly'), ['appendonly', 'yes']);
  const noPassword = new Redis({ host: REDIS.host, port: REDIS.port, enableReadyCheck: false,
    maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
  try {
    await assert.rejects(noPassword.get('x'), /NOAUTH/);
  } finally {
    noPassword.disconnect();
  }
});

test('wm_perf.redis_password: the superuser reads it; the application role can neither SHOW (42501) nor SET (55P02) it', T, async () => {
  assert.equal((await one(admin, 'SHOW wm_perf.redis_password'))['wm_perf.redis_password'], REDIS.password);
  await assert.rejects(app.query('SHOW wm_perf.redis_password'), (err) => err.code === '42501');
  await assert.rejects(app.query("SET wm_perf.redis_password = 'x'"), (err) => err.code === '55P02');
});

test('wm_perf stores its values in the password-protected Redis, and a second call is a hit', T, async () => {
  await warm(() => service.getBinStatistics());
  await warm(() => service.getRouteStatistics());
  const own = await raw.keys('wm_perf:v2:*');
  assert.ok(own.some((k) => /:bins:[0-9a-f]{12}\.[0-9a-f]{12}:e\d+:g\d+:(s[0-9a-f]+\.\d+:)?bins:all:/.test(k)), `a bins value key among ${own.length} wm_perf keys`);
  assert.ok(own.some((k) => /:routes:[0-9a-f]{12}\.[0-9a-f]{12}:e\d+:g\d+:(s[0-9a-f]+\.\d+:)?routes:all:/.test(k)), 'a routes value key');
  assert.ok(own.every((k) => !k.startsWith(KEY_PREFIX)), 'wm_perf keys are not in the application prefix');
});

// --- the pg service ---------------------------------------------------------

test('pg service: bin statistics (all, one customer) and route statistics equal the full computation', T, async () => {
  assert.deepEqual(strip(await service.getBinStatistics()), await fullBins(app));
  assert.deepEqual(strip(await service.getBinStatistics(C1)), await fullBins(app, C1));
  assert.deepEqual(strip(await service.getRouteStatistics()), await fullRoutes(app));
  const dash = await service.getDashboard(C1);
  assert.deepEqual(strip(dash.bins), await fullBins(app, C1));
  assert.deepEqual(strip(dash.routes), await fullRoutes(app));
});

let pgBefore, pgBeforeC1, pgAfter;

test('pg: a service event inserted and a bin updated in one transaction are in the statistics as soon as COMMIT resolves', T, async () => {
  pgBefore = await warm(() => service.getBinStatistics());
  pgBeforeC1 = await warm(() => service.getBinStatistics(C1));
  await seedApplicationKeys();

  const writer = await app.connect();
  const reader = await app.connect();   // another session, already open
  try {
    await writer.query('BEGIN');
    await writer.query(
      `INSERT INTO core.service_events (id, customer_id, event_type, event_status, scheduled_date, created_at, updated_at)
       VALUES (gen_random_uuid(), $1, 'pickup', 'completed', current_date, now(), now())`, [C1]);
    const { rowCount } = await writer.query(
      `UPDATE core.bins SET fill_level_percent = CASE WHEN fill_level_percent >= 50 THEN 5 ELSE 95 END, updated_at = now()
       WHERE id = $1`, [B1]);
    assert.equal(rowCount, 1);
    await writer.query('COMMIT');

    const readerService = createStatisticsService(reader);
    pgAfter = await readerService.getBinStatistics();
    const afterC1 = await readerService.getBinStatistics(C1);
    assert.deepEqual(strip(pgAfter), await fullBins(reader));
    assert.deepEqual(strip(afterC1), await fullBins(reader, C1));
    assert.equal(pgAfter.serviceEventsLast30Days.total, pgBefore.serviceEventsLast30Days.total + 1);
    assert.equal(pgAfter.serviceEventsLast30Days.byType.pickup, (pgBefore.serviceEventsLast30Days.byType.pickup || 0) + 1);
    assert.equal(afterC1.serviceEventsLast30Days.total, pgBeforeC1.serviceEventsLast30Days.total + 1);
    assert.notEqual(afterC1.avgFillLevel, pgBeforeC1.avgFillLevel, 'the bin update moved the customer\'s average fill level');
  } finally {
    writer.release();
    reader.release();
  }
});

test('pg: right after that COMMIT the application\'s keys of the customer and the global ones are gone, the others kept', T, async () => {
  assert.deepEqual(await existing([keys.binsGlobal, keys.binsCustomer(C1), keys.dashboardGlobal,
    keys.dashboardCustomer(C1), keys.binsCustomer(C2), keys.dashboardCustomer(C2), keys.routesGlobal,
    'unrelated', 'stats:other:global']), {
    [keys.binsGlobal]: 0,
    [keys.binsCustomer(C1)]: 0,
    [keys.dashboardGlobal]: 0,
    [keys.dashboardCustomer(C1)]: 0,
    [keys.binsCustomer(C2)]: 1,
    [keys.dashboardCustomer(C2)]: 1,
    [keys.routesGlobal]: 1,
    unrelated: 1,
    'stats:other:global': 1,
  });
});

test('pg: the application\'s read-through endpoints serve the new values', T, async () => {
  const bins = await cached.bins();
  assert.deepEqual(strip(bins), await fullBins(app));
  assert.deepEqual(strip(bins), strip(pgAfter));
  assert.deepEqual(strip(await cached.bins(C1)), await fullBins(app, C1));
  const dash = await cached.dashboard(C1);
  assert.deepEqual(strip(dash.bins), await fullBins(app, C1));
});

// --- the Sequelize service ----------------------------------------------------

let seqBefore;

test('Sequelize service: query() returns the full computation', T, async () => {
  assert.deepEqual(strip(await seqService.getBinStatistics()), await fullBinsSequelize());
  assert.deepEqual(strip(await seqService.getBinStatistics(C2)), await fullBinsSequelize(C2));
  assert.deepEqual(strip(await seqService.getRouteStatistics()), await fullRoutes(app));
});

test('Sequelize: a managed transaction (create a service event, update a bin) is in the statistics when transaction() resolves; inside it, the transaction reads its own writes', T, async () => {
  seqBefore = await warm(() => seqService.getBinStatistics());
  const bin = await models.Bin.findByPk(B2);
  assert.equal(bin.status, 'active');
  await seedApplicationKeys();

  await sequelize.transaction(async (transaction) => {
    await models.ServiceEvent.create({
      customerId: C2, eventType: 'inspection', eventStatus: 'scheduled',
      scheduledDate: new Date().toISOString().slice(0, 10),
    }, { transaction });
    const [n] = await models.Bin.update({ status: 'maintenance' }, { where: { id: B2 }, transaction });
    assert.equal(n, 1);
    const inside = await seqService.getBinStatistics(null, { transaction });
    assert.deepEqual(strip(inside), await fullBinsSequelize(null, transaction));
    assert.equal(inside.serviceEventsLast30Days.total, seqBefore.serviceEventsLast30Days.total + 1);
  });

  const after = await seqService.getBinStatistics();
  assert.deepEqual(strip(after), await fullBinsSequelize());
  assert.equal(after.serviceEventsLast30Days.total, seqBefore.serviceEventsLast30Days.total + 1);
  assert.equal(after.serviceEventsLast30Days.byType.inspection, (seqBefore.serviceEventsLast30Days.byType.inspection || 0) + 1);
  assert.equal(after.active, seqBefore.active - 1);
  assert.equal(after.byStatus.maintenance, (seqBefore.byStatus.maintenance || 0) + 1);
});

test('Sequelize: when transaction() resolves, the keys of that customer and the global ones are gone, the others kept', T, async () => {
  assert.deepEqual(await existing([keys.binsGlobal, keys.binsCustomer(C2), keys.dashboardGlobal,
    keys.dashboardCustomer(C2), keys.binsCustomer(C1), keys.dashboardCustomer(C1), keys.routesGlobal, 'unrelated']), {
    [keys.binsGlobal]: 0,
    [keys.binsCustomer(C2)]: 0,
    [keys.dashboardGlobal]: 0,
    [keys.dashboardCustomer(C2)]: 0,
    [keys.binsCustomer(C1)]: 1,
    [keys.dashboardCustomer(C1)]: 1,
    [keys.routesGlobal]: 1,
    unrelated: 1,
  });
});

test('Sequelize: a transaction that throws is rolled back: statistics unchanged, no key deleted', T, async () => {
  const before = await warm(() => seqService.getBinStatistics());
  await seedApplicationKeys();
  await assert.rejects(sequelize.transaction(async (transaction) => {
    await models.ServiceEvent.create({ customerId: C1, eventType: 'complaint', eventStatus: 'scheduled' }, { transaction });
    throw new Error('the request failed');
  }), /the request failed/);
  const after = await seqService.getBinStatistics();
  assert.equal(after.computedAt, before.computedAt, 'still the cached value');
  assert.deepEqual(strip(after), await fullBinsSequelize());
  assert.deepEqual(await existing([keys.binsGlobal, keys.binsCustomer(C1), keys.dashboardGlobal, keys.dashboardCustomer(C1)]), {
    [keys.binsGlobal]: 1, [keys.binsCustomer(C1)]: 1, [keys.dashboardGlobal]: 1, [keys.dashboardCustomer(C1)]: 1,
  });
});

// --- routes ---------------------------------------------------------------

test('pg: a route change is in the route statistics at once; stats:routes:global and the global dashboard go at COMMIT, every customer dashboard (a glob rule) shortly after', T, async () => {
  const before = await warm(() => service.getRouteStatistics());
  await seedApplicationKeys();
  const { rowCount } = await app.query(
    "UPDATE core.routes SET status = 'archived', updated_at = now() WHERE id = $1", [R1]);
  assert.equal(rowCount, 1);
  const after = await service.getRouteStatistics();
  assert.deepEqual(strip(after), await fullRoutes(app));
  assert.equal(after.byStatus.archived, (before.byStatus.archived || 0) + 1);
  assert.equal(after.byStatus.active, before.byStatus.active - 1);
  assert.equal(await redis.exists(keys.routesGlobal), 0);
  assert.equal(await redis.exists(keys.dashboardGlobal), 0);
  // The glob is deleted by wm_perf's worker a few milliseconds after COMMIT.
  assert.ok(await waitFor(async () =>
    (await redis.exists(keys.dashboardCustomer(C1))) === 0 && (await redis.exists(keys.dashboardCustomer(C2))) === 0),
  'customer dashboards deleted within 10 s');
  assert.equal(await redis.exists(keys.binsGlobal), 1, 'a route change leaves the bin statistics cached');
  assert.equal(await redis.exists(keys.binsCustomer(C1)), 1);
});

// --- what the migration removes (docs/migration.md) ----------------------------

test('the application\'s old invalidation deleted nothing: ioredis does not prefix the pattern of KEYS', T, async () => {
  await cached.bins();
  const found = await redis.keys('stats:bins:*');
  assert.deepEqual(found, []);
  const real = await raw.keys(`${KEY_PREFIX}stats:bins:*`);
  assert.ok(real.includes(`${KEY_PREFIX}${keys.binsGlobal}`), 'the key exists under the prefix');
});

test('the old index migration fails inside a Sequelize transaction (25001); the same statement outside a transaction builds a valid index', T, async () => {
  const sql = 'CREATE INDEX CONCURRENTLY bins_fill_level_legacy_idx ON core.bins (fill_level_percent) WHERE deleted_at IS NULL';
  await assert.rejects(
    sequelize.transaction((transaction) => sequelize.query(sql, { transaction })),
    (err) => err.parent && err.parent.code === '25001'
      && /CREATE INDEX CONCURRENTLY cannot run inside a transaction block/.test(err.parent.message));
  assert.equal((await one(app, "SELECT to_regclass('core.bins_fill_level_legacy_idx') IS NULL AS absent")).absent, true);
  await sequelize.query(sql);
  assert.equal((await one(app,
    "SELECT indisvalid FROM pg_index WHERE indexrelid = 'core.bins_fill_level_legacy_idx'::regclass")).indisvalid, true);
  await sequelize.query('DROP INDEX CONCURRENTLY core.bins_fill_level_legacy_idx');
});

test('the application\'s matview refresh trigger: the query of docs/migration.md finds it, and after the drop writes still invalidate', T, async () => {
  // What the application has today (its shape; its names may differ).
  await app.query(`CREATE MATERIALIZED VIEW core.mv_app_bin_counts AS
                   SELECT customer_id, count(*) AS bins FROM core.bins WHERE deleted_at IS NULL GROUP BY customer_id`);
  await app.query(`CREATE FUNCTION core.refresh_app_bin_counts() RETURNS trigger LANGUAGE plpgsql AS
                   $$BEGIN REFRESH MATERIALIZED VIEW core.mv_app_bin_counts; RETURN NULL; END$$`);
  await app.query(`CREATE TRIGGER refresh_app_bin_counts AFTER INSERT OR UPDATE OR DELETE ON core.bins
                   FOR EACH STATEMENT EXECUTE FUNCTION core.refresh_app_bin_counts()`);

  // docs/migration.md, step 4c (verbatim).
  const { rows } = await app.query(`
SELECT t.tgrelid::regclass AS "table", t.tgname AS "trigger", t.tgfoid::regprocedure AS "function"
  FROM pg_trigger t
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE NOT t.tgisinternal
   AND p.prosrc ~* 'refresh\\s+materialized\\s+view'
 ORDER BY 1, 2`);
  assert.deepEqual(rows, [{ table: 'core.bins', trigger: 'refresh_app_bin_counts', function: 'core.refresh_app_bin_counts()' }]);

  await app.query('DROP TRIGGER refresh_app_bin_counts ON core.bins');
  await app.query('DROP FUNCTION core.refresh_app_bin_counts()');
  await app.query('DROP MATERIALIZED VIEW core.mv_app_bin_counts');

  const before = await warm(() => service.getBinStatistics());
  await seedApplicationKeys();
  await app.query("UPDATE core.bins SET status = 'lost', updated_at = now() WHERE id = $1", [B1]);
  const after = await service.getBinStatistics();
  assert.deepEqual(strip(after), await fullBins(app));
  assert.equal(after.byStatus.lost, (before.byStatus.lost || 0) + 1);
  assert.equal(await redis.exists(keys.binsGlobal), 0);
  assert.equal(await redis.exists(keys.binsCustomer(C1)), 0);
});

// --- radius lookups and errors ---------------------------------------------

test('radius lookups: nearest first, at most max_results; a bad argument is a StatisticsInputError with SQLSTATE 22023 (pg and Sequelize)', T, async () => {
  const { lat, lon } = await one(app,
    'SELECT ST_Y(location) AS lat, ST_X(location) AS lon FROM core.bins WHERE id = $1', [B2]);
  const rows = await service.getBinsWithinRadius(lat, lon, 50, 10);
  assert.ok(rows.length > 0 && rows.length <= 10, `${rows.length} rows`);
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1].distance_m <= rows[i].distance_m, 'nearest first');
  const plain = await app.query(
    `SELECT id FROM core.bins
      WHERE status = 'active' AND deleted_at IS NULL
        AND ST_DWithin(location::geography, ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography, 50000)
      ORDER BY ST_Distance(location::geography, ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography), id LIMIT 10`,
    [lat, lon]);
  assert.deepEqual(rows.map((r) => r.id), plain.rows.map((r) => r.id));
  const seqRows = await seqService.getBinsWithinRadius(lat, lon, 50, 10);
  assert.deepEqual(seqRows.map((r) => r.id), plain.rows.map((r) => r.id));

  await assert.rejects(service.getBinsWithinRadius(91, 0, 5),
    (err) => err instanceof StatisticsInputError && err.code === '22023');
  await assert.rejects(seqService.getBinsWithinRadius(0, 0, -1),
    (err) => err instanceof StatisticsInputError && err.code === '22023');
});

test('wm_statistics_verify(): the maintained statistics equal a full computation after all these writes', T, async () => {
  const { rows } = await app.query('SELECT * FROM wm_statistics_verify()');
  assert.deepEqual(rows, []);
});
