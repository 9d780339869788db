-- The plain-SQL counterpart of steady_customer_read.sql: the same customer's
-- bin statistics as jsonb (bench_plain_customer_stats_json, steady_setup.sql).
\set n random(1, :nlive)
SELECT bench_plain_customer_stats_json(c.id) IS NOT NULL FROM bench_customers c WHERE c.n = :n;
