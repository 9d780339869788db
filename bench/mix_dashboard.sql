SELECT wm_route_statistics();
SELECT wm_bin_statistics();
