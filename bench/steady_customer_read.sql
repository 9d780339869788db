-- A customer's dashboard: wm_bin_statistics(customer) for a random live
-- customer (bench_customers numbers them 1..:nlive), computed through the
-- indexes (the maintained aggregates serve the whole fleet only).
\set n random(1, :nlive)
SELECT wm_bin_statistics(c.id) IS NOT NULL FROM bench_customers c WHERE c.n = :n;
