-- Pre-create wm_perf's indexes on a live database without blocking writers.
--
-- CREATE INDEX CONCURRENTLY cannot run inside CREATE EXTENSION (a
-- transaction), so on a large production table run this file first, with
-- psql, outside a transaction block:
--
--   psql -d waste_mgmt -f concurrent_indexes.sql
--   psql -d waste_mgmt -c 'CREATE EXTENSION wm_perf CASCADE'
--
-- wm_perf_attach() (run by CREATE EXTENSION) recognises these indexes by
-- their definition, whatever their names, and does not build them again.
-- Adjust the schema names if your tables are not in core/operations; for
-- geography columns index the column itself instead of the cast.
-- PostGIS must be installed first (CREATE EXTENSION postgis) and, for the
-- composite index, btree_gist.

\set ON_ERROR_STOP on

CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE INDEX CONCURRENTLY IF NOT EXISTS bins_location_active_gist_idx
    ON core.bins USING gist ((location::geography))
    WHERE status = 'active' AND deleted_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS bins_customer_id_status_bin_type_idx
    ON core.bins USING btree (customer_id, status, bin_type)
    WHERE deleted_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS routes_route_geometry_active_gist_idx
    ON core.routes USING gist ((route_geometry::geography))
    WHERE status = 'active' AND deleted_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS routes_route_geometry_territory_gist_idx
    ON core.routes USING gist ((route_geometry::geography), territory)
    WHERE deleted_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS routes_territory_status_idx
    ON core.routes USING btree (territory, status)
    WHERE deleted_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS service_events_customer_id_created_at_idx
    ON core.service_events USING btree (customer_id, created_at)
    WHERE deleted_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS service_events_created_at_idx
    ON core.service_events USING btree (created_at)
    WHERE deleted_at IS NULL;
