/* TEMPORARY LOCAL STUB - replaced by the spatial implementation */
#include "postgres.h"
#include "fmgr.h"
PG_FUNCTION_INFO_V1(wm_bins_within_radius);
Datum wm_bins_within_radius(PG_FUNCTION_ARGS) { elog(ERROR, "stub"); }
PG_FUNCTION_INFO_V1(wm_routes_within_radius);
Datum wm_routes_within_radius(PG_FUNCTION_ARGS) { elog(ERROR, "stub"); }
