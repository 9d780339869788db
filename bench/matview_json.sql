SELECT s FROM bench_bin_stats_json;
