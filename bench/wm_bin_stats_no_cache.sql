SET wm_perf.cache_enabled = off;
SELECT wm_bin_statistics();
