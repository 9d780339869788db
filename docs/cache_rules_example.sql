-- docs/cache_rules_example.sql
--
-- Application-key rules for the waste-management API, whose ioredis client
-- uses the key prefix "waste_mgmt:".  With these rows in wm_cache_rules, a
-- committed change to a table deletes (UNLINK) the application's own cached
-- statistics, with no change to the application.
--
-- How a rule is applied (see docs/architecture.md, "Application rules"):
--   * {column} is replaced by that column's value in each changed row, old
--     and new version alike; a row where the column is NULL yields no key.
--     An unknown column name becomes "*", which turns the key into a pattern.
--   * A key_pattern containing *, ? or [ is a glob: it is deleted at commit
--     with SCAN ... MATCH ... COUNT 1000 (at most 100 rounds) and UNLINK.
--   * The keys are recorded when the statement runs and deleted after
--     COMMIT; a rolled-back change deletes nothing.
--   * table_role is one of routes, bins, customers, service_events (the
--     table's role in wm_perf_config); rule_name is the primary key.
--
-- The table is a configuration table of the extension: pg_dump keeps its
-- rows.  Only its owner (the role that ran CREATE EXTENSION) may change it.
--
-- wm_cache_rules is referenced unqualified: the extension's schema must be on
-- the search_path (it is when the extension was installed into public).
--
--   psql -d waste_mgmt -f cache_rules_example.sql

\set ON_ERROR_STOP on

BEGIN;

INSERT INTO wm_cache_rules (rule_name, table_role, key_pattern, description) VALUES
    -- stats:routes:global
    ('routes_global', 'routes',
     'waste_mgmt:stats:routes:global',
     'Route statistics of the whole fleet'),

    -- stats:bins:global: bins, their customers and their service events
    ('bins_global_bins', 'bins',
     'waste_mgmt:stats:bins:global',
     'Bin statistics of all customers'),
    ('bins_global_customers', 'customers',
     'waste_mgmt:stats:bins:global',
     'Bin statistics of all customers (customer soft-deleted or restored)'),
    ('bins_global_service_events', 'service_events',
     'waste_mgmt:stats:bins:global',
     'Bin statistics of all customers (service events of the last 30 days)'),

    -- stats:bins:customer:<uuid>
    ('bins_customer_bins', 'bins',
     'waste_mgmt:stats:bins:customer:{customer_id}',
     'Bin statistics of the customer owning the changed bin'),
    ('bins_customer_service_events', 'service_events',
     'waste_mgmt:stats:bins:customer:{customer_id}',
     'Bin statistics of the customer of the changed service event'),
    ('bins_customer_customers', 'customers',
     'waste_mgmt:stats:bins:customer:{id}',
     'Bin statistics of the changed customer'),

    -- stats:dashboard:global: every table feeds the dashboard
    ('dashboard_global_routes', 'routes',
     'waste_mgmt:stats:dashboard:global',
     'Global dashboard (routes)'),
    ('dashboard_global_bins', 'bins',
     'waste_mgmt:stats:dashboard:global',
     'Global dashboard (bins)'),
    ('dashboard_global_customers', 'customers',
     'waste_mgmt:stats:dashboard:global',
     'Global dashboard (customers)'),
    ('dashboard_global_service_events', 'service_events',
     'waste_mgmt:stats:dashboard:global',
     'Global dashboard (service events)'),

    -- stats:dashboard:customer:<uuid>
    ('dashboard_customer_bins', 'bins',
     'waste_mgmt:stats:dashboard:customer:{customer_id}',
     'Dashboard of the customer owning the changed bin'),
    ('dashboard_customer_service_events', 'service_events',
     'waste_mgmt:stats:dashboard:customer:{customer_id}',
     'Dashboard of the customer of the changed service event'),
    ('dashboard_customer_customers', 'customers',
     'waste_mgmt:stats:dashboard:customer:{id}',
     'Dashboard of the changed customer'),

    -- A glob: a route change touches every customer's dashboard.  Deleted
    -- with SCAN + UNLINK by the worker a few milliseconds after COMMIT
    -- returns (with shared_preload_libraries), or by the committing backend
    -- within 4 x wm_perf.redis_command_timeout (without).
    ('dashboard_all_routes', 'routes',
     'waste_mgmt:stats:dashboard:*',
     'Every dashboard, global and per customer, when a route changes');

COMMIT;
