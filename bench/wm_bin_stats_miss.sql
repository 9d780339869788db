SELECT wm_cache_flush('bins');
SELECT wm_bin_statistics();
