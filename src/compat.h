/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every PostgreSQL- and hiredis-version dependent shim of wm_perf, and
 *	  only here.  `make test` builds and runs on PostgreSQL 15 with hiredis
 *	  0.14; `make compat-check` compiles every file against PostgreSQL 17's
 *	  headers (Debian's postgresql-server-dev-17, compile only).  The 16
 *	  boundaries are checked against bindgen's output of 16.4's headers
 *	  (pgrx's pg16.rs), not compiled: docs/development.md lists every API,
 *	  what changed and where it was checked.
 *
 *-------------------------------------------------------------------------
 */
#ifndef WM_PERF_COMPAT_H
#define WM_PERF_COMPAT_H

#include "funcapi.h"
#include "common/jsonapi.h"
#include "storage/proc.h"

#if PG_VERSION_NUM < 150000
#error "wm_perf requires PostgreSQL 15 or later"
#endif

/*
 * PostgreSQL 15's fmgr.h does not declare _PG_init (16 does); declaring it
 * again is harmless there.
 */
extern void _PG_init(void);

/*
 * A plan's permission check: 16 replaced ExecCheckRTPerms(rtable, report)
 * by ExecCheckPermissions(rtable, permInfos, report), the permissions
 * moving from the range table entries to PlannedStmt.permInfos.
 */
#if PG_VERSION_NUM >= 160000
#define WM_EXEC_CHECK_PLAN_PERMS(plan, report) \
	ExecCheckPermissions((plan)->rtable, (plan)->permInfos, (report))
#else
#define WM_EXEC_CHECK_PLAN_PERMS(plan, report) \
	ExecCheckRTPerms((plan)->rtable, (report))
#endif

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

/*
 * JSON parser semantic actions return JsonParseErrorType from PostgreSQL 16
 * (void before).  Declare an action as
 *		static WM_JSON_ACTION_TYPE f(void *state) { ...; WM_JSON_ACTION_DONE; }
 */
#if PG_VERSION_NUM >= 160000
#define WM_JSON_ACTION_TYPE JsonParseErrorType
#define WM_JSON_ACTION_DONE return JSON_SUCCESS
#else
#define WM_JSON_ACTION_TYPE void
#define WM_JSON_ACTION_DONE return
#endif

/*
 * makeJsonLexContextCstringLen gained a first argument (a context to fill,
 * NULL to allocate one) in PostgreSQL 17, with freeJsonLexContext to free
 * what it allocated (the struct and, with need_escapes, the string buffer).
 * Before 17 there is no free function: the context and its buffer are
 * palloc'd in the current memory context and go with it.
 */
#if PG_VERSION_NUM >= 170000
#define WM_MAKE_JSON_LEX(json, len, encoding, need_escapes) \
	makeJsonLexContextCstringLen(NULL, (json), (len), (encoding), (need_escapes))
#define WM_FREE_JSON_LEX(lex) freeJsonLexContext(lex)
#else
#define WM_MAKE_JSON_LEX(json, len, encoding, need_escapes) \
	makeJsonLexContextCstringLen((char *) (json), (int) (len), (encoding), (need_escapes))
#define WM_FREE_JSON_LEX(lex) ((void) (lex))
#endif

/*
 * stringToQualifiedNameList gained an "escontext" argument (soft errors) in
 * PostgreSQL 16; NULL keeps raising errors as before.
 */
#if PG_VERSION_NUM >= 160000
#define WM_QUALIFIED_NAME_LIST(string) stringToQualifiedNameList((string), NULL)
#else
#define WM_QUALIFIED_NAME_LIST(string) stringToQualifiedNameList(string)
#endif

/*
 * The backend's local transaction id: PGPROC.lxid moved into PGPROC.vxid
 * (with backendId renamed procNumber) in PostgreSQL 17.
 */
#if PG_VERSION_NUM >= 170000
#define WM_MY_LXID (MyProc->vxid.lxid)
#else
#define WM_MY_LXID (MyProc->lxid)
#endif

#endif							/* WM_PERF_COMPAT_H */
