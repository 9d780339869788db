'use strict';
// The backend's statistics service on wm_perf, with node-postgres (pg 8).
//
// Before: the service ran its own aggregates (count, avg, GROUP BY over bins,
// routes and service events) on every request and cached the JSON in Redis
// under waste_mgmt:stats:*.  Now every statistic is one call of a wm_perf
// function, which returns the API's JSON shape (pg parses jsonb into an
// object), is cached by wm_perf in Redis and invalidated by every commit.
//
// The wm_perf functions are called unqualified: the extension's schema
// (public by default) must be on the connection's search_path.  Arguments go
// in as bind parameters with explicit casts, so the same prepared statement
// serves NULL (all) and a value.

const INVALID_PARAMETER_VALUE = '22023';

// A bad argument (latitude outside [-90, 90], radius <= 0, ...) is SQLSTATE
// 22023 from wm_perf: an error the API reports as a 400, not a 500.
class StatisticsInputError extends Error {
  constructor(cause) {
    super(cause.message);
    this.name = 'StatisticsInputError';
    this.code = cause.code;
    this.cause = cause;
  }
}

function rethrow(err) {
  if (err && err.code === INVALID_PARAMETER_VALUE) throw new StatisticsInputError(err);
  throw err;
}

// db: a pg.Pool, a pg.Client, or anything with query(text, values) that
// returns { rows } (a client checked out for a transaction, for instance).
function createStatisticsService(db) {
  async function one(text, values, column) {
    try {
      const { rows } = await db.query(text, values);
      return rows[0][column];
    } catch (err) {
      return rethrow(err);
    }
  }

  async function many(text, values) {
    try {
      const { rows } = await db.query(text, values);
      return rows;
    } catch (err) {
      return rethrow(err);
    }
  }

  return {
    // GET /api/statistics/routes[?territory=]
    getRouteStatistics(territory = null) {
      return one('SELECT wm_route_statistics($1::text) AS stats', [territory], 'stats');
    },

    // GET /api/statistics/bins[?customerId=]
    getBinStatistics(customerId = null) {
      return one('SELECT wm_bin_statistics($1::uuid) AS stats', [customerId], 'stats');
    },

    // GET /api/statistics/dashboard[?customerId=]: bins (of a customer or
    // all) and the routes of the whole fleet, in one round trip.
    async getDashboard(customerId = null) {
      try {
        const { rows } = await db.query(
          'SELECT wm_bin_statistics($1::uuid) AS bins, wm_route_statistics() AS routes',
          [customerId]);
        return rows[0];
      } catch (err) {
        return rethrow(err);
      }
    },

    // GET /api/bins/nearby?lat=&lon=&radiusKm=[&limit=]: the exact N nearest
    // active bins, nearest first (argument order lat, lon as in the API).
    getBinsWithinRadius(lat, lon, radiusKm, maxResults = 100) {
      return many(
        'SELECT id, distance_m, bin_number, customer_id, bin_type, status, fill_level_percent' +
        ' FROM wm_bins_within_radius($1::float8, $2::float8, $3::float8, $4::int)',
        [lat, lon, radiusKm, maxResults]);
    },

    // GET /api/routes/nearby?lat=&lon=&radiusKm=[&limit=][&territory=]
    getRoutesWithinRadius(lat, lon, radiusKm, maxResults = 100, territory = null) {
      return many(
        'SELECT id, distance_m, route_number, route_name, route_type, service_day, territory' +
        ' FROM wm_routes_within_radius($1::float8, $2::float8, $3::float8, $4::int, $5::text)',
        [lat, lon, radiusKm, maxResults, territory]);
    },
  };
}

module.exports = { createStatisticsService, StatisticsInputError, INVALID_PARAMETER_VALUE };
