'use strict';
// The same statistics service through Sequelize 6's query(), for the parts of
// the backend that hold a Sequelize instance (and possibly a transaction)
// rather than a pg pool.
//
// Replacements (:name) are escaped by Sequelize into literals; CAST(... AS
// uuid) keeps NULL and a uuid string unambiguous.  Pass { transaction } to
// read inside a managed transaction: wm_perf then computes the statistics
// fresh, including the transaction's own uncommitted writes, and stores
// nothing (read-your-own-writes).

const { QueryTypes } = require('sequelize');
const { StatisticsInputError, INVALID_PARAMETER_VALUE } = require('./statisticsService');

function rethrow(err) {
  // Sequelize wraps the driver's error; the SQLSTATE is on err.parent.code.
  const code = err && (err.parent || err.original || {}).code;
  if (code === INVALID_PARAMETER_VALUE) throw new StatisticsInputError(err.parent || err.original);
  throw err;
}

function createSequelizeStatisticsService(sequelize) {
  async function plain(sql, replacements, options = {}) {
    try {
      return await sequelize.query(sql, {
        replacements,
        type: QueryTypes.SELECT,
        plain: true,
        transaction: options.transaction,
      });
    } catch (err) {
      return rethrow(err);
    }
  }

  return {
    async getRouteStatistics(territory = null, options = {}) {
      const row = await plain('SELECT wm_route_statistics(CAST(:territory AS text)) AS stats',
        { territory }, options);
      return row.stats;
    },

    async getBinStatistics(customerId = null, options = {}) {
      const row = await plain('SELECT wm_bin_statistics(CAST(:customerId AS uuid)) AS stats',
        { customerId }, options);
      return row.stats;
    },

    async getBinsWithinRadius(lat, lon, radiusKm, maxResults = 100, options = {}) {
      try {
        return await sequelize.query(
          'SELECT id, distance_m, bin_number, customer_id, bin_type, status, fill_level_percent' +
          ' FROM wm_bins_within_radius(:lat, :lon, :radiusKm, :maxResults)',
          {
            replacements: { lat, lon, radiusKm, maxResults },
            type: QueryTypes.SELECT,
            transaction: options.transaction,
          });
      } catch (err) {
        return rethrow(err);
      }
    },
  };
}

module.exports = { createSequelizeStatisticsService };
