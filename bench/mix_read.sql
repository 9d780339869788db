SELECT wm_bin_statistics();
