/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  The wm_perf.* settings.
 *
 * Everything that points at Redis or holds a secret is PGC_SIGHUP and
 * GUC_SUPERUSER_ONLY: only a superuser can set it (in the configuration
 * files), and a non-superuser cannot read it.  A
 * password set in postgresql.conf is protected that way only once the
 * library is loaded in the backend: in a session that never loaded wm_perf,
 * an unknown custom setting is a readable placeholder.  Hence the documented
 * ways to give a password are wm_perf.redis_password_file (a file only the
 * server's OS user can read), or wm_perf.redis_password together with
 * shared_preload_libraries = 'wm_perf'.  _PG_init warns when it finds a
 * password placeholder without preload.
 *
 * An assign hook that changes the Redis target only bumps
 * wm_guc_redis_target_generation; redis.c notices and reconnects lazily.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/guc.h"

#include "wm_perf.h"

char	   *wm_guc_redis_host = NULL;
int			wm_guc_redis_port = 6379;
char	   *wm_guc_redis_password = NULL;
char	   *wm_guc_redis_password_file = NULL;
char	   *wm_guc_redis_user = NULL;
int			wm_guc_redis_database = 0;
int			wm_guc_redis_connect_timeout = 50;
int			wm_guc_redis_command_timeout = 50;
int			wm_guc_redis_backoff = 1000;
int			wm_guc_cache_ttl = 900;
char	   *wm_guc_key_prefix = NULL;
bool		wm_guc_cache_enabled = true;
int			wm_guc_local_cache_size = 1024;
int			wm_guc_slow_spatial_threshold = 100;
XLogRecPtr	wm_guc_min_lsn = InvalidXLogRecPtr;
int			wm_guc_min_lsn_timeout = 1000;
static char *min_lsn_string = NULL;

char	   *wm_guc_redis_sentinels = NULL;
char	   *wm_guc_redis_sentinel_master = NULL;
char	   *wm_guc_redis_sentinel_user = NULL;
char	   *wm_guc_redis_sentinel_password_file = NULL;

/* Bumped whenever a setting that identifies the Redis target changes. */
uint64		wm_guc_redis_target_generation = 0;

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * Keep the password out of the server log: core logs "parameter ...
 * changed to ..." on reload, and log_statement / log_min_duration_statement
 * may log a SET naming it.  Only those messages are rewritten (the hook also
 * shapes what a client receives, so other errors keep their text); any
 * other message raised while such a statement runs is logged without the
 * statement.  Installed in every process that loads wm_perf, so with
 * shared_preload_libraries also in the postmaster, which logs reloads.
 */
/*
 * Does a statement name wm_perf.redis_password?  Any occurrence of
 * "redis_password" in any letter case (identifiers fold to lower case, and
 * a quoted one is still the setting's name in an error) that is not the
 * start of "redis_password_file" counts; every occurrence is looked at, so
 * a statement naming both settings counts too.
 */
static bool
names_password(const char *query)
{
	static const char name[] = "redis_password";
	static const char file_suffix[] = "_file";
	const char *p;

	if (query == NULL)
		return false;
	for (p = query; *p; p++)
	{
		if (pg_strncasecmp(p, name, sizeof(name) - 1) != 0)
			continue;
		if (pg_strncasecmp(p + sizeof(name) - 1, file_suffix,
						   sizeof(file_suffix) - 1) != 0)
			return true;
	}
	return false;
}

static void
redact_password(ErrorData *edata)
{
	static const char *const changed = "parameter \"wm_perf.redis_password\" changed to";
	bool		in_statement = names_password(debug_query_string);

	if (edata->message != NULL &&
		(pg_strncasecmp(edata->message, changed, strlen(changed)) == 0 ||
		 (in_statement && (strncmp(edata->message, "statement: ", 11) == 0 ||
						   strncmp(edata->message, "duration: ", 10) == 0 ||
						   strncmp(edata->message, "execute ", 8) == 0))))
	{
		MemoryContext old = MemoryContextSwitchTo(ErrorContext);

		edata->message = pstrdup("(message naming wm_perf.redis_password redacted by wm_perf)");
		edata->detail = NULL;
		edata->detail_log = NULL;
		MemoryContextSwitchTo(old);
	}
	if (in_statement)
		edata->hide_stmt = true;
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * The host must be an IP address, "localhost" or an absolute unix socket
 * path: a DNS look-up cannot be bounded by a timeout and must never happen
 * on the commit path.
 */
static bool
check_redis_host(char **newval, void **extra, GucSource source)
{
	const char *h = *newval;
	unsigned char buf[sizeof(struct in6_addr)];

	if (h == NULL || h[0] == '\0' || h[0] == '/')
		return true;
	if (strcmp(h, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1)
		return true;

	GUC_check_errdetail("wm_perf.redis_host must be an IP address, \"localhost\" or an absolute unix socket path.");
	GUC_check_errhint("Host names are not resolved, because a DNS look-up cannot be bounded by a timeout.");
	return false;
}

/*
 * wm_perf.redis_sentinels: "addr:port[,addr:port...]", an IPv6 address in
 * brackets ("[::1]:26379"), blanks around the commas allowed; at most
 * WM_MAX_SENTINELS.  Address literals only, for the reason above.  Returns
 * the number of entries, or -1 (and *why) if the list is malformed.  No
 * palloc: redis.c parses the setting again on every resolution, possibly
 * after commit.
 */
static int
parse_sentinels(const char *list, WmHostPort *out, int max, const char **why)
{
	const char *p = list;
	int			n = 0;

	*why = NULL;
	if (list == NULL)
		return 0;
	for (;;)
	{
		const char *host;
		size_t		hlen;
		unsigned char buf[sizeof(struct in6_addr)];
		char	   *end;
		long		port;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' && n == 0)
			return 0;			/* empty: no sentinels */
		if (n == max)
		{
			*why = "wm_perf.redis_sentinels lists too many sentinels.";
			return -1;
		}
		if (*p == '[')
		{
			host = ++p;
			while (*p != '\0' && *p != ']')
				p++;
			if (*p != ']')
			{
				*why = "An IPv6 address must be closed by \"]\".";
				return -1;
			}
			hlen = p - host;
			p++;
		}
		else
		{
			host = p;
			while (*p != '\0' && *p != ':' && *p != ',' && *p != ' ')
				p++;
			hlen = p - host;
		}
		if (hlen == 0 || hlen >= sizeof(out[n].host))
		{
			*why = "Every entry must be an IP address followed by \":port\".";
			return -1;
		}
		memcpy(out[n].host, host, hlen);
		out[n].host[hlen] = '\0';
		if (inet_pton(AF_INET, out[n].host, buf) != 1 &&
			inet_pton(AF_INET6, out[n].host, buf) != 1)
		{
			*why = "Sentinels must be given by IP address: host names are not resolved, because a DNS look-up cannot be bounded by a timeout.";
			return -1;
		}
		if (*p != ':')
		{
			*why = "Every entry must be an IP address followed by \":port\".";
			return -1;
		}
		p++;
		errno = 0;
		port = strtol(p, &end, 10);
		if (end == p || errno != 0 || port < 1 || port > 65535)
		{
			*why = "A sentinel port must be between 1 and 65535.";
			return -1;
		}
		out[n++].port = (int) port;
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return n;
		if (*p != ',')
		{
			*why = "Entries must be separated by commas.";
			return -1;
		}
		p++;
	}
}

int
wm_parse_sentinels(const char *list, WmHostPort *out, int max)
{
	const char *why;

	return parse_sentinels(list, out, max, &why);
}

static bool
check_redis_sentinels(char **newval, void **extra, GucSource source)
{
	WmHostPort	entries[WM_MAX_SENTINELS];
	const char *why;

	if (parse_sentinels(*newval, entries, WM_MAX_SENTINELS, &why) >= 0)
		return true;
	GUC_check_errdetail("%s", why);
	GUC_check_errhint("Write up to %d entries such as \"127.0.0.1:26379, [::1]:26380\".",
					  WM_MAX_SENTINELS);
	return false;
}

/* A Sentinel master name: one protocol argument, printable, no blanks. */
static bool
check_sentinel_master(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;
	size_t		len = p ? strlen(p) : 0;
	size_t		i;

	if (len > 64)
	{
		GUC_check_errdetail("wm_perf.redis_sentinel_master must have at most 64 characters.");
		return false;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char) p[i] <= ' ' || (unsigned char) p[i] >= 127)
		{
			GUC_check_errdetail("wm_perf.redis_sentinel_master may contain only printable ASCII characters, no blanks.");
			return false;
		}
	return true;
}

/* Key prefixes are one Redis key segment: no separators, no blanks. */
static bool
check_key_prefix(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;
	size_t		len = p ? strlen(p) : 0;
	size_t		i;

	if (len == 0 || len > 64)
	{
		GUC_check_errdetail("wm_perf.key_prefix must have between 1 and 64 characters.");
		return false;
	}
	for (i = 0; i < len; i++)
	{
		char		c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
		{
			GUC_check_errdetail("wm_perf.key_prefix may contain only letters, digits, \"_\", \"-\" and \".\".");
			return false;
		}
	}
	return true;
}

static void
assign_redis_target_string(const char *newval, void *extra)
{
	wm_guc_redis_target_generation++;
}

static void
assign_redis_target_int(int newval, void *extra)
{
	wm_guc_redis_target_generation++;
}

/*
 * wm_perf.min_lsn: '' (no wait) or an LSN as pg_lsn writes it, two
 * hexadecimal numbers of at most 8 digits separated by a slash.  Parsed
 * here rather than by pg_lsn's input function, whose C interface differs
 * between major versions.
 */
static bool
parse_lsn(const char *s, XLogRecPtr *out)
{
	static const char hex[] = "0123456789abcdefABCDEF";
	size_t		hi = strspn(s, hex);
	size_t		lo;

	if (hi == 0 || hi > 8 || s[hi] != '/')
		return false;
	lo = strspn(s + hi + 1, hex);
	if (lo == 0 || lo > 8 || s[hi + 1 + lo] != '\0')
		return false;
	*out = ((XLogRecPtr) strtoul(s, NULL, 16) << 32) |
		(XLogRecPtr) strtoul(s + hi + 1, NULL, 16);
	return true;
}

static bool
check_min_lsn(char **newval, void **extra, GucSource source)
{
	XLogRecPtr	lsn = InvalidXLogRecPtr;
	XLogRecPtr *parsed;

	if (*newval != NULL && (*newval)[0] != '\0' && !parse_lsn(*newval, &lsn))
	{
		GUC_check_errcode(ERRCODE_INVALID_TEXT_REPRESENTATION);
		GUC_check_errdetail("An LSN is two hexadecimal numbers separated by a slash, as wm_perf_commit_lsn() returns them, e.g. 0/16B3748; '' waits for nothing.");
		return false;
	}
	/* The GUC machinery frees extra with free(). */
	parsed = (XLogRecPtr *) malloc(sizeof(XLogRecPtr));
	if (parsed == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return false;
	}
	*parsed = lsn;
	*extra = parsed;
	return true;
}

static void
assign_min_lsn(const char *newval, void *extra)
{
	wm_guc_min_lsn = *((XLogRecPtr *) extra);
}

void
wm_guc_init(void)
{
	/*
	 * Redis target, secrets and key prefix: PGC_SIGHUP (postgresql.conf or
	 * ALTER SYSTEM, i.e. superuser only) and GUC_SUPERUSER_ONLY to read.
	 * Not PGC_SUSET: every backend and the worker must use one target and
	 * one key layout, or an invalidation bumped in one place would leave
	 * values readable in another (ALTER ROLE/DATABASE SET, PGOPTIONS).
	 */
	DefineCustomStringVariable("wm_perf.redis_host",
							   gettext_noop("Sets the Redis server used as the statistics cache."),
							   gettext_noop("An IP address, \"localhost\" or an absolute unix socket path. Empty disables the cache."),
							   &wm_guc_redis_host,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_redis_host, assign_redis_target_string, NULL);

	DefineCustomIntVariable("wm_perf.redis_port",
							gettext_noop("Sets the TCP port of the Redis server."),
							NULL,
							&wm_guc_redis_port,
							6379, 1, 65535,
							PGC_SIGHUP,
							GUC_SUPERUSER_ONLY,
							NULL, assign_redis_target_int, NULL);

	/*
	 * Redis Sentinel: when both are set, the master is asked of the
	 * sentinels at every connection (redis.c) and redis_host/redis_port are
	 * not used.
	 */
	DefineCustomStringVariable("wm_perf.redis_sentinels",
							   gettext_noop("Sets the Redis Sentinel instances that name the Redis master."),
							   gettext_noop("A comma-separated list of address:port (IPv6 in brackets); used together with wm_perf.redis_sentinel_master instead of wm_perf.redis_host."),
							   &wm_guc_redis_sentinels,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_redis_sentinels, assign_redis_target_string, NULL);

	DefineCustomStringVariable("wm_perf.redis_sentinel_master",
							   gettext_noop("Sets the name of the Redis master the sentinels monitor."),
							   NULL,
							   &wm_guc_redis_sentinel_master,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_sentinel_master, assign_redis_target_string, NULL);

	/*
	 * Credentials for sentinels that require AUTH, shaped like
	 * redis_user/redis_password_file: the secret is a file read when a
	 * connection is opened, never a setting.  They choose no data (not in
	 * wm_redis_target_signature()), but a change reconnects, so that it takes
	 * effect at once rather than at the next failure.
	 */
	DefineCustomStringVariable("wm_perf.redis_sentinel_user",
							   gettext_noop("Sets the ACL user name sent with AUTH to the sentinels."),
							   gettext_noop("Used only with wm_perf.redis_sentinel_password_file; empty means the default user."),
							   &wm_guc_redis_sentinel_user,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, assign_redis_target_string, NULL);

	DefineCustomStringVariable("wm_perf.redis_sentinel_password_file",
							   gettext_noop("Sets a file whose first line is the password sent with AUTH to the sentinels."),
							   gettext_noop("The file is read when a connection is opened; empty sends no AUTH to the sentinels."),
							   &wm_guc_redis_sentinel_password_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, assign_redis_target_string, NULL);

	DefineCustomStringVariable("wm_perf.redis_password",
							   gettext_noop("Sets the password sent with AUTH to Redis."),
							   gettext_noop("Set it only together with shared_preload_libraries = 'wm_perf', or use wm_perf.redis_password_file."),
							   &wm_guc_redis_password,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							   NULL, assign_redis_target_string, NULL);

	DefineCustomStringVariable("wm_perf.redis_password_file",
							   gettext_noop("Sets a file whose first line is the Redis AUTH password."),
							   gettext_noop("The file is read when a connection is opened; it should be readable only by the server's operating-system user."),
							   &wm_guc_redis_password_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, assign_redis_target_string, NULL);

	DefineCustomStringVariable("wm_perf.redis_user",
							   gettext_noop("Sets the Redis 6 ACL user name sent with AUTH."),
							   gettext_noop("Empty means the default user (AUTH with the password only)."),
							   &wm_guc_redis_user,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, assign_redis_target_string, NULL);

	DefineCustomIntVariable("wm_perf.redis_database",
							gettext_noop("Sets the Redis database index selected after connecting."),
							NULL,
							&wm_guc_redis_database,
							0, 0, 1023,
							PGC_SIGHUP,
							GUC_SUPERUSER_ONLY,
							NULL, assign_redis_target_int, NULL);

	/*
	 * Timeouts, back-off and TTL are superuser-only too: a user who could
	 * raise a timeout could stall other sessions' commits behind Redis, and
	 * the TTL decides how long an undeliverable invalidation can matter.
	 */
	DefineCustomIntVariable("wm_perf.redis_connect_timeout",
							gettext_noop("Sets the maximum time to wait for a Redis connection."),
							NULL,
							&wm_guc_redis_connect_timeout,
							50, 1, 10000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("wm_perf.redis_command_timeout",
							gettext_noop("Sets the maximum time to wait for one Redis round trip."),
							NULL,
							&wm_guc_redis_command_timeout,
							50, 1, 10000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("wm_perf.redis_backoff",
							gettext_noop("Sets how long a backend leaves Redis alone after a failure."),
							gettext_noop("During this interval reads compute from the database and commits do not wait for Redis."),
							&wm_guc_redis_backoff,
							1000, 0, 3600000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("wm_perf.cache_ttl",
							gettext_noop("Sets the expiry of cached statistics."),
							gettext_noop("A bound on Redis memory, not on staleness: invalidation is immediate."),
							&wm_guc_cache_ttl,
							900, 1, 86400 * 7,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("wm_perf.key_prefix",
							   gettext_noop("Sets the first segment of every Redis key wm_perf uses."),
							   NULL,
							   &wm_guc_key_prefix,
							   "wm_perf",
							   PGC_SIGHUP,
							   0,
							   check_key_prefix, assign_redis_target_string, NULL);

	/*
	 * Per-session read knob: any user may bypass the cache for their own
	 * reads.  It never disables invalidation, so it cannot make anyone
	 * else's cache stale.
	 */
	DefineCustomBoolVariable("wm_perf.cache_enabled",
							 gettext_noop("Enables reading and storing statistics in the Redis cache in this session."),
							 gettext_noop("Invalidation at commit happens regardless of this setting."),
							 &wm_guc_cache_enabled,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	/*
	 * Memory for this backend's copies of cached values (with preload
	 * only); like work_mem, it bounds the caller's own backend.
	 */
	DefineCustomIntVariable("wm_perf.local_cache_size",
							gettext_noop("Sets the memory for this backend's copies of cached statistics."),
							gettext_noop("Copies are used only with shared_preload_libraries, and only while no commit has changed their scope; 0 disables them."),
							&wm_guc_local_cache_size,
							1024, 0, 65536,
							PGC_USERSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("wm_perf.slow_spatial_threshold",
							gettext_noop("Sets the duration above which radius lookups are logged and counted as slow."),
							gettext_noop("-1 disables the logging and the slow-call count; calls and their times are always counted."),
							&wm_guc_slow_spatial_threshold,
							100, -1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * Read-your-writes on a hot standby (standby.c).  Per-session read
	 * knobs: they only make this session's calls wait or fail, never
	 * change what anyone else reads or stores.
	 */
	DefineCustomStringVariable("wm_perf.min_lsn",
							   gettext_noop("Makes statistics calls on a hot standby wait until replay has passed this LSN."),
							   gettext_noop("Set it to wm_perf_commit_lsn() of a primary session to read that session's writes; empty waits for nothing."),
							   &min_lsn_string,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE,
							   check_min_lsn, assign_min_lsn, NULL);

	DefineCustomIntVariable("wm_perf.min_lsn_timeout",
							gettext_noop("Sets how long a call on a hot standby waits for wm_perf.min_lsn to be replayed."),
							gettext_noop("After that the call fails with SQLSTATE 40001; 0 fails at once."),
							&wm_guc_min_lsn_timeout,
							1000, 0, 3600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("wm_perf");

	/*
	 * A password placeholder in a backend that loads us late was readable by
	 * everyone until this moment: tell the administrator in the server log.
	 */
	if (!process_shared_preload_libraries_in_progress &&
		wm_guc_redis_password != NULL && wm_guc_redis_password[0] != '\0')
		ereport(LOG,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("wm_perf.redis_password is set but wm_perf is not in shared_preload_libraries"),
				 errdetail("Until wm_perf is loaded, a session can read the setting as a placeholder."),
				 errhint("Add wm_perf to shared_preload_libraries, or use wm_perf.redis_password_file instead.")));

	/* After the message above, which names the setting but not its value. */
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_password;
}
