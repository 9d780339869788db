/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every PostgreSQL- and hiredis-version dependent shim of wm_perf, and
 *	  only here.  CI builds PostgreSQL 15 with hiredis 0.14; branches for
 *	  other versions are added when CI builds them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef WM_PERF_COMPAT_H
#define WM_PERF_COMPAT_H

#include "funcapi.h"

#if PG_VERSION_NUM < 150000
#error "wm_perf requires PostgreSQL 15 or later"
#endif

/*
 * PostgreSQL 15's fmgr.h does not declare _PG_init (16 does); declaring it
 * again is harmless there.
 */
extern void _PG_init(void);

/* InitMaterializedSRF appeared in 15.1 (SetSingleFuncCall in 15.0). */
#if PG_VERSION_NUM >= 150001
#define WM_INIT_MATERIALIZED_SRF(fcinfo) InitMaterializedSRF((fcinfo), 0)
#define WM_INIT_MATERIALIZED_SRF_SCALAR(fcinfo) \
	InitMaterializedSRF((fcinfo), MAT_SRF_USE_EXPECTED_DESC)
#else
#define WM_INIT_MATERIALIZED_SRF(fcinfo) SetSingleFuncCall((fcinfo), 0)
#define WM_INIT_MATERIALIZED_SRF_SCALAR(fcinfo) \
	SetSingleFuncCall((fcinfo), SRF_SINGLE_USE_EXPECTED)
#endif

/* LockHeldByMe gained an "orstronger" argument in PostgreSQL 17. */
#if PG_VERSION_NUM >= 170000
#define WM_LOCK_HELD_BY_ME(tag, mode) LockHeldByMe((tag), (mode), false)
#else
#define WM_LOCK_HELD_BY_ME(tag, mode) LockHeldByMe((tag), (mode))
#endif

#endif							/* WM_PERF_COMPAT_H */
