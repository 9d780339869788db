/*-------------------------------------------------------------------------
 *
 * wm_perf.c
 *	  Module entry point: wires the subsystems together and nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "compat.h"
#include "wm_perf.h"

PG_MODULE_MAGIC;

void
_PG_init(void)
{
	/* pg_upgrade's binary-upgrade mode must not start workers or shmem. */
	if (IsBinaryUpgrade)
		return;

	wm_guc_init();
	wm_xact_init();

	if (process_shared_preload_libraries_in_progress)
	{
		wm_shmem_init();
		wm_worker_register();
	}
}

PG_FUNCTION_INFO_V1(wm_perf_version);
Datum
wm_perf_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(WM_PERF_VERSION));
}
