SELECT wm_route_statistics();
