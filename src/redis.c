/*-------------------------------------------------------------------------
 *
 * redis.c
 *	  The only file that talks to hiredis.
 *
 * One lazily opened connection per backend, non-blocking: hiredis only
 * buffers commands and parses replies, and this file moves the bytes with
 * its own poll() loop against one deadline per round trip.  A signal that
 * interrupts poll() (hiredis's blocking calls retry on EINTR and restart
 * the whole socket timeout) only makes the loop wait for what is left of
 * the deadline; a pending cancel or terminate (InterruptPending) ends the
 * wait at once, as a failure, and is handled by the caller's next
 * CHECK_FOR_INTERRUPTS (never here: this also runs after commit).
 * Connecting is bounded by wm_perf.redis_connect_timeout, every round trip
 * by wm_perf.redis_command_timeout.  Host names are refused by the
 * setting's check hook, so no unbounded DNS look-up can happen.  A
 * connection that fails a command is freed; a call whose connection was
 * already open retries once on a fresh connection (the server may have
 * closed an idle one), except after a timeout, which is never paid twice.
 * After a failure the backend leaves Redis alone for wm_perf.redis_backoff,
 * so an outage costs at most one timeout per interval, not one per call or
 * commit.
 *
 * The server must be a master (ROLE at connect; from Redis 7 the lookup
 * script's shebang makes a replica refuse it), and its identity, "<run
 * id>.<replication id>", goes into the value keys.  With
 * wm_perf.redis_sentinels the master is asked of the sentinels at every
 * new connection, never remembered (after AUTH to each sentinel when
 * wm_perf.redis_sentinel_password_file names a password).  On a Redis
 * Cluster, -MOVED and -ASK are followed (at most one of each per command),
 * -TRYAGAIN and -CLUSTERDOWN are misses without back-off, and pattern
 * deletion is refused (SCAN sees one node).
 *
 * Nothing here raises an ERROR.  wm_redis_deliver and
 * wm_redis_unlink_matching run after commit: they use hiredis (malloc) and
 * stack memory only, never palloc.  Warnings are rate-limited and carry
 * SQLSTATE 08001 (connect) or 08006 (command); they never show a password.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "redis.h"
#include "wm_perf.h"

/* Seconds between two warnings of one backend. */
#define WM_REDIS_WARNING_INTERVAL_S 10

/* Most counters one delivery increments (scopes, or scopes of a database). */
#define WM_MAX_BUMP_KEYS 16

/* Longest password read from wm_perf.redis_password_file. */
#define WM_REDIS_MAX_PASSWORD 512

/*
 * Counters (epoch, generations) that do not exist yet start from the
 * server's clock in microseconds: after a FLUSHALL or a restore they resume
 * far above any value an old cached key could carry.  Scripts use effects
 * replication (the default from Redis 5 on; the call makes it explicit).
 */
#define WM_LUA_CURRENT \
"redis.replicate_commands() " \
"local function current(k) " \
"  local v = redis.call('GET', k) " \
"  if not v then " \
"    local t = redis.call('TIME') " \
"    v = t[1] .. string.format('%06d', tonumber(t[2])) " \
"    redis.call('SET', k, v) " \
"  end " \
"  return v " \
"end "

/*
 * The read path in one round trip.  KEYS[1] epoch, KEYS[2] generation;
 * ARGV[1] value key prefix, ARGV[2] suffix (":s<tag>:<fn>:..."), ARGV[3]
 * the server's identity as seen at connect time.  The value key is not
 * declared: it is in the same hash slot as the counters (hash tag).
 * ARGV[4] is the replication id (12 characters) that the connection the
 * script is sent on read at connect.  Returns {epoch, generation, value or
 * false}, or 0 when the server's replication id is no longer ARGV[4]: the
 * server was promoted, or demoted (a replica reports its master's id),
 * since that connection read it.  The run id cannot change under an open
 * connection (a restart closes it).
 */
#define WM_LUA_LOOKUP \
WM_LUA_CURRENT \
"local r = string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)') or '-' " \
"if string.sub(r, 1, 12) ~= ARGV[4] then return 0 end " \
"local e = current(KEYS[1]) " \
"local g = current(KEYS[2]) " \
"return {e, g, redis.call('GET', ARGV[1] .. ':' .. ARGV[3] .. ':e' .. e .. ':g' .. g .. ARGV[2])}"

static const char *const lookup_script = WM_LUA_LOOKUP;

/*
 * Redis 7 and later: the same script with a shebang.  A flagged script
 * without "no-writes" is refused with -READONLY on a replica before it
 * runs, so a lookup can only be answered by a master, even on a connection
 * that stayed open while its server was demoted (without the flag, a
 * script that only reads runs on a replica).  allow-oom keeps lookups
 * working when the server is at maxmemory, as the unflagged script did.
 */
static const char *const lookup_script_flagged =
"#!lua flags=allow-oom\n" WM_LUA_LOOKUP;

/*
 * Store only if neither counter moved since the lookup.  KEYS[1] epoch,
 * KEYS[2] generation; ARGV: epoch, generation, value, ttl, value key.  The
 * value key is not declared, as in the lookup (it is in the same hash slot):
 * a Redis Cluster node importing the slot answers a command whose declared
 * keys it does not all hold yet with -TRYAGAIN.
 */
static const char *const store_script =
"if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then "
"  redis.call('SET', ARGV[5], ARGV[3], 'EX', ARGV[4]) return 1 "
"end return 0";

/* Increment every key given, starting missing ones from the clock. */
static const char *const bump_script =
WM_LUA_CURRENT
"for _, k in ipairs(KEYS) do current(k) redis.call('INCR', k) end "
"return #KEYS";

static redisContext *ctx = NULL;
static uint64 ctx_target_generation = 0;

/*
 * The server's identity as read at connect time, "<run id>.<replication
 * id>" (12 hex digits of each), which goes into every value key; and
 * whether it runs flagged scripts (Redis 7 and later).
 */
static char server_ident[WM_SERVER_IDENT_LEN];

/*
 * The replication id (12 hex digits, "-" before Redis 4) read by the
 * handshake of the connection in use, which the lookup script checks.
 * Unlike server_ident, a command sent on another node's connection
 * (command_on_node) sends that node's.
 */
static char server_replid[16];
static bool server_flagged_scripts = false;
static bool server_cluster = false;	/* cluster_enabled:1 */

/* Most -MOVED/-ASK replies to application-key UNLINKs one delivery follows. */
#define WM_MAX_KEY_REDIRECTS 8

/* What the warnings name: "addr:port", a socket path, or the master name. */
static char where_text[192];
static TimestampTz backoff_until = 0;
static TimestampTz last_warning = 0;

static void
warn_failure(int sqlstate, const char *what, const char *detail)
{
	TimestampTz now = GetCurrentTimestamp();

	if (last_warning != 0 &&
		!TimestampDifferenceExceeds(last_warning, now,
									WM_REDIS_WARNING_INTERVAL_S * 1000))
		return;
	last_warning = now;

	/* No palloc here: this may run after commit. */
	ereport(WARNING,
			(errcode(sqlstate),
			 errmsg("wm_perf could not %s Redis at %s: %s",
					what, where_text[0] != '\0' ? where_text : "(none)",
					detail ? detail : "unknown error"),
			 errdetail("Statistics are computed in the database until Redis answers again; retrying after %d ms.",
					   wm_guc_redis_backoff)));
}

static void
drop_connection(void)
{
	if (ctx)
		redisFree(ctx);
	ctx = NULL;
}

/*
 * The connection goes, and the back-off starts, before the WARNING: its
 * errfinish() runs CHECK_FOR_INTERRUPTS(), so a pending cancel raises its
 * ERROR from inside it, and a connection still holding an unanswered
 * command would hand that command's reply to the next call.  detail may
 * point into the context: copied first (no palloc: may run after commit).
 */
static void
fail(int sqlstate, const char *what, const char *detail)
{
	char		copy[256];

	if (detail)
		strlcpy(copy, detail, sizeof(copy));
	drop_connection();
	backoff_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												wm_guc_redis_backoff);
	warn_failure(sqlstate, what, detail ? copy : NULL);
}

/* Why the last I/O wait ended without the bytes it waited for. */
typedef enum WmIoFailure
{
	WM_IO_NONE = 0,
	WM_IO_TIMEOUT,				/* the deadline passed */
	WM_IO_INTERRUPTED,			/* a cancel or terminate is pending */
	WM_IO_ERROR					/* hiredis or the socket reported an error */
} WmIoFailure;

static WmIoFailure io_failure = WM_IO_NONE;

static const char *
io_failure_text(void)
{
	switch (io_failure)
	{
		case WM_IO_TIMEOUT:
			return "timed out";
		case WM_IO_INTERRUPTED:
			return "interrupted by a cancel or terminate request";
		case WM_IO_ERROR:
			return ctx && ctx->err ? ctx->errstr : "I/O error";
		case WM_IO_NONE:
			break;
	}
	return "unknown error";
}

/*
 * Wait until the socket is ready for 'events' or the deadline passes.
 * Signals only shorten the poll; the deadline stays.  Allocates nothing.
 */
static bool
wait_socket(short events, TimestampTz deadline)
{
	for (;;)
	{
		struct pollfd pfd;
		long		secs;
		int			usecs;
		int			timeout_ms;
		int			rc;

		if (InterruptPending && (QueryCancelPending || ProcDiePending))
		{
			io_failure = WM_IO_INTERRUPTED;
			return false;
		}
		TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
		timeout_ms = (int) Min(secs * 1000 + (usecs + 999) / 1000, INT_MAX);
		if (timeout_ms <= 0)
		{
			io_failure = WM_IO_TIMEOUT;
			return false;
		}
		pfd.fd = ctx->fd;
		pfd.events = events;
		pfd.revents = 0;
		rc = poll(&pfd, 1, timeout_ms);
		if (rc > 0)
			return true;		/* ready, or an error hiredis will report */
		if (rc < 0 && errno != EINTR)
		{
			io_failure = WM_IO_ERROR;
			return false;
		}
	}
}

/* Send everything hiredis has buffered. */
static bool
flush_output(TimestampTz deadline)
{
	int			done = 0;

	for (;;)
	{
		if (redisBufferWrite(ctx, &done) == REDIS_ERR)
		{
			io_failure = WM_IO_ERROR;
			return false;
		}
		if (done)
			return true;
		if (!wait_socket(POLLOUT, deadline))
			return false;
	}
}

/* The next reply (to be freed with freeReplyObject), or NULL. */
static redisReply *
read_reply(TimestampTz deadline)
{
	void	   *reply = NULL;

	for (;;)
	{
		if (redisGetReplyFromReader(ctx, &reply) == REDIS_ERR)
		{
			io_failure = WM_IO_ERROR;
			return NULL;
		}
		if (reply != NULL)
			return (redisReply *) reply;
		if (!wait_socket(POLLIN, deadline))
			return NULL;
		if (redisBufferRead(ctx) == REDIS_ERR)
		{
			io_failure = WM_IO_ERROR;
			return NULL;
		}
	}
}

static TimestampTz
command_deadline(void)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									   wm_guc_redis_command_timeout);
}

/*
 * One command, one round trip within wm_perf.redis_command_timeout.  NULL
 * on any failure; an error reply is returned (the caller decides).
 */
static redisReply *
round_trip(int argc, const char **argv, const size_t *argvlen)
{
	TimestampTz deadline = command_deadline();

	io_failure = WM_IO_NONE;
	if (redisAppendCommandArgv(ctx, argc, argv, argvlen) != REDIS_OK)
	{
		io_failure = WM_IO_ERROR;
		return NULL;
	}
	if (!flush_output(deadline))
		return NULL;
	return read_reply(deadline);
}

/* round_trip(), with an error reply counted as a failure. */
static redisReply *
command(int argc, const char **argv, const size_t *argvlen)
{
	redisReply *reply = round_trip(argc, argv, argvlen);

	if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
	{
		freeReplyObject(reply);
		io_failure = WM_IO_ERROR;
		return NULL;
	}
	return reply;
}

/*
 * The first line of a password file, without its line end, into buf (''
 * for an empty path).  False if the file cannot be opened.
 */
static bool
read_password_file(const char *path, char *buf, size_t size)
{
	FILE	   *f;
	size_t		len;

	buf[0] = '\0';
	if (path == NULL || path[0] == '\0')
		return true;
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fgets(buf, (int) size, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	len = strlen(buf);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	return true;
}

/* Read the password: the setting, else the first line of the file. */
static bool
read_password(char *buf, size_t size)
{
	buf[0] = '\0';
	if (wm_guc_redis_password && wm_guc_redis_password[0] != '\0')
	{
		strlcpy(buf, wm_guc_redis_password, size);
		return true;
	}
	return read_password_file(wm_guc_redis_password_file, buf, size);
}

/* The value of "field:" in an INFO reply, up to max characters. */
static bool
info_field(const redisReply *reply, const char *field, char *out, size_t max)
{
	const char *p;
	size_t		flen = strlen(field);
	size_t		n;

	if (reply == NULL || reply->type != REDIS_REPLY_STRING)
		return false;
	for (p = reply->str; (p = strstr(p, field)) != NULL; p += flen)
	{
		if ((p == reply->str || p[-1] == '\n') && p[flen] == ':')
		{
			p += flen + 1;
			n = strcspn(p, "\r\n");
			if (n >= max)
				n = max - 1;
			memcpy(out, p, n);
			out[n] = '\0';
			return true;
		}
	}
	return false;
}

/*
 * AUTH, SELECT, then one pipelined round trip of INFO server, INFO
 * replication and ROLE on a fresh connection.  The server must be a master
 * (ROLE), and its identity goes into every value key.
 */
static bool
handshake(const char **detail)
{
	char		password[WM_REDIS_MAX_PASSWORD];
	redisReply *reply;
	redisReply *replies[4] = {NULL, NULL, NULL, NULL};
	const char *argv[3];
	char		dbbuf[16];
	char		runid[48];
	char		replid[48];
	char		version[32];
	TimestampTz deadline;
	int			i;
	bool		ok = false;

	if (!read_password(password, sizeof(password)))
	{
		*detail = "cannot read wm_perf.redis_password_file";
		return false;
	}
	if (password[0] != '\0')
	{
		int			argc = 0;

		argv[argc++] = "AUTH";
		if (wm_guc_redis_user && wm_guc_redis_user[0] != '\0')
			argv[argc++] = wm_guc_redis_user;
		argv[argc++] = password;
		reply = command(argc, argv, NULL);
		explicit_bzero(password, sizeof(password));
		if (reply == NULL)
		{
			*detail = io_failure == WM_IO_ERROR && !ctx->err ?
				"authentication failed" : io_failure_text();
			return false;
		}
		freeReplyObject(reply);
	}
	if (wm_guc_redis_database != 0)
	{
		snprintf(dbbuf, sizeof(dbbuf), "%d", wm_guc_redis_database);
		argv[0] = "SELECT";
		argv[1] = dbbuf;
		reply = command(2, argv, NULL);
		if (reply == NULL)
		{
			*detail = io_failure == WM_IO_ERROR && !ctx->err ?
				"SELECT of the database failed" : io_failure_text();
			return false;
		}
		freeReplyObject(reply);
	}

	/*
	 * The server's run id and replication id go into every value key: a
	 * restarted server (new run id), a promoted replica or a demoted master
	 * promoted again (same run id, new replication id) may hold old values
	 * and older generation counters, but never under the new identity.
	 */
	deadline = command_deadline();
	io_failure = WM_IO_NONE;
	argv[0] = "INFO";
	argv[1] = "server";
	if (redisAppendCommandArgv(ctx, 2, argv, NULL) != REDIS_OK)
		io_failure = WM_IO_ERROR;
	argv[1] = "replication";
	if (io_failure == WM_IO_NONE &&
		redisAppendCommandArgv(ctx, 2, argv, NULL) != REDIS_OK)
		io_failure = WM_IO_ERROR;
	argv[0] = "ROLE";
	if (io_failure == WM_IO_NONE &&
		redisAppendCommandArgv(ctx, 1, argv, NULL) != REDIS_OK)
		io_failure = WM_IO_ERROR;
	argv[0] = "INFO";
	argv[1] = "cluster";
	if (io_failure == WM_IO_NONE &&
		redisAppendCommandArgv(ctx, 2, argv, NULL) != REDIS_OK)
		io_failure = WM_IO_ERROR;
	if (io_failure == WM_IO_NONE && flush_output(deadline))
	{
		for (i = 0; i < 4; i++)
			if ((replies[i] = read_reply(deadline)) == NULL)
				break;
	}

	if (replies[3] == NULL)
		*detail = io_failure_text();
	else if (!info_field(replies[0], "run_id", runid, sizeof(runid)))
		*detail = "INFO server returned no run_id";
	else if (replies[2]->type != REDIS_REPLY_ARRAY ||
			 replies[2]->elements < 1 ||
			 replies[2]->element[0]->type != REDIS_REPLY_STRING)
		*detail = "unexpected reply to ROLE";
	else if (strcmp(replies[2]->element[0]->str, "master") != 0)
		*detail = "the server is not a master (ROLE)";
	else
	{
		/* Redis before 4.0 has no replication id: the run id alone. */
		if (!info_field(replies[1], "master_replid", replid, sizeof(replid)))
			strlcpy(replid, "-", sizeof(replid));
		if (!info_field(replies[0], "redis_version", version, sizeof(version)))
			version[0] = '\0';
		server_flagged_scripts = atoi(version) >= 7;
		server_cluster = info_field(replies[3], "cluster_enabled", dbbuf, sizeof(dbbuf)) &&
			strcmp(dbbuf, "1") == 0;
		snprintf(server_ident, sizeof(server_ident), "%.12s.%.12s",
				 runid, replid);
		snprintf(server_replid, sizeof(server_replid), "%.12s", replid);
		ok = true;
	}
	for (i = 0; i < 4; i++)
		if (replies[i])
			freeReplyObject(replies[i]);
	return ok;
}

bool
wm_redis_uses_sentinel(void)
{
	return wm_guc_redis_sentinels != NULL && wm_guc_redis_sentinels[0] != '\0' &&
		wm_guc_redis_sentinel_master != NULL &&
		wm_guc_redis_sentinel_master[0] != '\0';
}

bool
wm_redis_configured(void)
{
	return (wm_guc_redis_host != NULL && wm_guc_redis_host[0] != '\0') ||
		wm_redis_uses_sentinel();
}

/*
 * Where cached values live: host and port (or the sentinels and the master
 * name), ACL user, database and key prefix (the password authenticates; it
 * does not choose the data).  The worker publishes its signature in shared
 * memory (shmem.c).  Through Sentinel the master's address is not part of
 * it: it changes with a failover, without a reload.
 */
uint64
wm_redis_target_signature(void)
{
	static uint64 sig = 0;
	static uint64 sig_generation = 0;
	char		buf[WM_MAX_KEY_LEN * 2];

	if (sig != 0 && sig_generation == wm_guc_redis_target_generation)
		return sig;
	if (wm_redis_uses_sentinel())
		snprintf(buf, sizeof(buf), "sentinel|%s|%s|%s|%d|%s",
				 wm_guc_redis_sentinels, wm_guc_redis_sentinel_master,
				 wm_guc_redis_user ? wm_guc_redis_user : "", wm_guc_redis_database,
				 wm_guc_key_prefix ? wm_guc_key_prefix : "");
	else
		snprintf(buf, sizeof(buf), "%s|%d|%s|%d|%s",
				 wm_guc_redis_host ? wm_guc_redis_host : "", wm_guc_redis_port,
				 wm_guc_redis_user ? wm_guc_redis_user : "", wm_guc_redis_database,
				 wm_guc_key_prefix ? wm_guc_key_prefix : "");
	sig = hash_bytes_extended((const unsigned char *) buf, strlen(buf), 0);
	if (sig == 0)
		sig = 1;				/* 0 means "no worker target yet" */
	sig_generation = wm_guc_redis_target_generation;
	return sig;
}

/*
 * Connect without blocking, within wm_perf.redis_connect_timeout, to a TCP
 * address (an address literal: the check hooks refuse host names) or, with
 * port 0, to a unix socket.  Leaves the context in ctx, also on failure.
 */
static bool
open_connection(const char *host, int port, const char **detail)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   wm_guc_redis_connect_timeout);
	int			err = 0;
	socklen_t	len = sizeof(err);

	if (host[0] == '/')
		ctx = redisConnectUnixNonBlock(host);
	else
		ctx = redisConnectNonBlock(strcmp(host, "localhost") == 0 ?
								   "127.0.0.1" : host, port);
	if (ctx == NULL || ctx->err)
	{
		*detail = ctx ? ctx->errstr : "out of memory";
		return false;
	}
	io_failure = WM_IO_NONE;
	if (!wait_socket(POLLOUT, deadline))
	{
		*detail = io_failure_text();
		return false;
	}
	if (getsockopt(ctx->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
	{
		*detail = strerror(err != 0 ? err : errno);
		return false;
	}
	return true;
}

/*
 * Keep a failure's text across drop_connection() (it may point into the
 * context).  No palloc: may run after commit.
 */
static void
keep_detail(const char **detail)
{
	static char kept[256];

	if (*detail != NULL && *detail != kept)
	{
		strlcpy(kept, *detail, sizeof(kept));
		*detail = kept;
	}
}

/*
 * The first word of an error reply ("NOAUTH", "WRONGPASS", "IDONTKNOW"),
 * letters, digits and '_' only, into buf.  The rest of the text is not
 * shown: a server's message is no place for wm_perf to echo secrets from.
 */
static const char *
error_code(const redisReply *reply, char *buf, size_t size)
{
	size_t		n = 0;

	while (n + 1 < size && reply->str != NULL &&
		   ((reply->str[n] >= 'A' && reply->str[n] <= 'Z') ||
			(reply->str[n] >= 'a' && reply->str[n] <= 'z') ||
			(reply->str[n] >= '0' && reply->str[n] <= '9') ||
			reply->str[n] == '_'))
	{
		buf[n] = reply->str[n];
		n++;
	}
	buf[n] = '\0';
	return n > 0 ? buf : "?";
}

/*
 * AUTH [wm_perf.redis_sentinel_user] <password> on a sentinel's connection,
 * the password read from wm_perf.redis_sentinel_password_file by the
 * caller (non-empty).  The caller clears the password.  False, with
 * *detail, for no answer or an error reply (-WRONGPASS, or -ERR from a
 * sentinel that has no password).
 */
static bool
auth_sentinel(const char *password, char *why, size_t whysize,
			  const char **detail)
{
	const char *argv[3];
	int			argc = 0;
	redisReply *reply;
	char		code[32];

	argv[argc++] = "AUTH";
	if (wm_guc_redis_sentinel_user && wm_guc_redis_sentinel_user[0] != '\0')
		argv[argc++] = wm_guc_redis_sentinel_user;
	argv[argc++] = password;
	reply = round_trip(argc, argv, NULL);
	if (reply == NULL)
	{
		*detail = io_failure_text();
		return false;
	}
	if (reply->type == REDIS_REPLY_ERROR)
	{
		snprintf(why, whysize,
				 "a sentinel refused the credentials of wm_perf.redis_sentinel_password_file (%s)",
				 error_code(reply, code, sizeof(code)));
		*detail = why;
		freeReplyObject(reply);
		return false;
	}
	freeReplyObject(reply);
	return true;
}

/*
 * Ask one sentinel for the master's address: AUTH when
 * wm_perf.redis_sentinel_password_file gives a password, then SENTINEL
 * get-master-addr-by-name, on a connection of its own that is closed
 * before returning.  False for no answer, a refused AUTH, an error reply
 * (-NOAUTH: the sentinel wants a password; -IDONTKNOW: it has not seen the
 * master since a failover), a null reply (unknown name) or an address that
 * is not an IP literal (a sentinel with resolve-hostnames: no DNS here).
 */
static bool
ask_sentinel(const WmHostPort *sentinel, char *host, size_t hostsize,
			 int *port, const char **detail)
{
	const char *argv[3];
	redisReply *reply = NULL;
	unsigned char buf[sizeof(struct in6_addr)];
	char		password[WM_REDIS_MAX_PASSWORD];
	char		why[160];
	char		code[32];
	bool		authenticated;
	bool		ok = false;

	if (!read_password_file(wm_guc_redis_sentinel_password_file, password,
							sizeof(password)))
	{
		*detail = "cannot read wm_perf.redis_sentinel_password_file";
		return false;
	}
	if (!open_connection(sentinel->host, sentinel->port, detail))
	{
		explicit_bzero(password, sizeof(password));
		keep_detail(detail);
		drop_connection();
		return false;
	}
	authenticated = password[0] == '\0' ||
		auth_sentinel(password, why, sizeof(why), detail);
	explicit_bzero(password, sizeof(password));
	if (authenticated)
	{
		argv[0] = "SENTINEL";
		argv[1] = "get-master-addr-by-name";
		argv[2] = wm_guc_redis_sentinel_master;
		reply = round_trip(3, argv, NULL);
		if (reply == NULL)
			*detail = io_failure_text();
		else if (reply->type == REDIS_REPLY_ERROR &&
				 strncmp(reply->str, "NOAUTH", 6) == 0)
			*detail = "a sentinel requires authentication (NOAUTH)";
		else if (reply->type == REDIS_REPLY_ERROR)
		{
			snprintf(why, sizeof(why), "a sentinel replied with an error (%s)",
					 error_code(reply, code, sizeof(code)));
			*detail = why;
		}
		else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
				 reply->element[0]->type != REDIS_REPLY_STRING ||
				 reply->element[1]->type != REDIS_REPLY_STRING)
			*detail = "a sentinel does not know the master name";
		else if (reply->element[0]->len >= hostsize ||
				 (inet_pton(AF_INET, reply->element[0]->str, buf) != 1 &&
				  inet_pton(AF_INET6, reply->element[0]->str, buf) != 1))
			*detail = "a sentinel named the master by a host name";
		else
		{
			*port = atoi(reply->element[1]->str);
			if (*port < 1 || *port > 65535)
				*detail = "a sentinel named an invalid port";
			else
			{
				strlcpy(host, reply->element[0]->str, hostsize);
				ok = true;
			}
		}
	}
	if (reply)
		freeReplyObject(reply);
	keep_detail(detail);
	drop_connection();
	return ok;
}

/*
 * Through Sentinel, as its client guidelines prescribe: ask each sentinel
 * in turn, skip those that do not answer or do not know the master, connect
 * to the address the first one names and confirm with ROLE that it is a
 * master, else go on with the next sentinel.  Nothing is remembered: every
 * new connection (after any failure, -READONLY included) asks again.
 * Bounded by (number of sentinels) x (two connects + five round trips:
 * the sentinel's AUTH and reply, the master's AUTH, SELECT and handshake).
 */
static bool
connect_through_sentinels(const char **detail)
{
	WmHostPort	sentinels[WM_MAX_SENTINELS];
	int			n = wm_parse_sentinels(wm_guc_redis_sentinels, sentinels,
									   WM_MAX_SENTINELS);
	int			i;

	*detail = "no sentinel is configured";
	for (i = 0; i < n; i++)
	{
		char		host[64];
		int			port;

		if (!ask_sentinel(&sentinels[i], host, sizeof(host), &port, detail))
			continue;
		snprintf(where_text, sizeof(where_text), "%s%s%s:%d (master \"%s\")",
				 strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
				 port, wm_guc_redis_sentinel_master);
		if (open_connection(host, port, detail) && handshake(detail))
			return true;
		keep_detail(detail);
		drop_connection();
	}
	snprintf(where_text, sizeof(where_text), "master \"%s\" through wm_perf.redis_sentinels",
			 wm_guc_redis_sentinel_master);
	return false;
}

/* Make sure ctx is usable. */
static WmRedisStatus
ensure_connection(void)
{
	const char *detail = NULL;
	bool		ok;

	if (!wm_redis_configured())
	{
		drop_connection();
		return WM_REDIS_DISABLED;
	}
	if (ctx && ctx_target_generation != wm_guc_redis_target_generation)
		drop_connection();
	if (ctx)
		return WM_REDIS_OK;
	if (backoff_until != 0 && GetCurrentTimestamp() < backoff_until)
		return WM_REDIS_BACKOFF;

	if (wm_redis_uses_sentinel())
		ok = connect_through_sentinels(&detail);
	else
	{
		if (wm_guc_redis_host[0] == '/')
			strlcpy(where_text, wm_guc_redis_host, sizeof(where_text));
		else
			snprintf(where_text, sizeof(where_text), "%s:%d",
					 wm_guc_redis_host, wm_guc_redis_port);
		ok = open_connection(wm_guc_redis_host, wm_guc_redis_port, &detail) &&
			handshake(&detail);
	}
	if (!ok)
	{
		fail(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION, "connect to",
			 detail);
		return WM_REDIS_FAILED;
	}
	ctx_target_generation = wm_guc_redis_target_generation;
	backoff_until = 0;
	return WM_REDIS_OK;
}

/*
 * Redis Cluster.  "-MOVED <slot> <addr>:<port>": the slot lives elsewhere
 * for good; "-ASK <slot> <addr>:<port>": for this command only (the slot is
 * being migrated).  True, with the target, for either.
 */
static bool
parse_redirect(const redisReply *r, bool *ask, char *host, size_t hostsize,
			   int *port)
{
	const char *p;
	const char *colon;
	unsigned char buf[sizeof(struct in6_addr)];
	size_t		n;

	if (r == NULL || r->type != REDIS_REPLY_ERROR)
		return false;
	if (strncmp(r->str, "MOVED ", 6) == 0)
	{
		*ask = false;
		p = r->str + 6;
	}
	else if (strncmp(r->str, "ASK ", 4) == 0)
	{
		*ask = true;
		p = r->str + 4;
	}
	else
		return false;
	p = strchr(p, ' ');
	if (p == NULL || (colon = strrchr(p, ':')) == NULL)
		return false;
	p++;
	n = colon - p;
	if (n == 0 || n >= hostsize)
		return false;
	memcpy(host, p, n);
	host[n] = '\0';
	*port = atoi(colon + 1);
	/* Address literals only, as everywhere: no DNS look-up. */
	return *port > 0 && *port <= 65535 &&
		(inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1);
}

/* -TRYAGAIN (a multi-key command during a migration), -CLUSTERDOWN. */
static bool
cluster_transient(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_ERROR &&
		(strncmp(r->str, "TRYAGAIN", 8) == 0 ||
		 strncmp(r->str, "CLUSTERDOWN", 11) == 0);
}

/*
 * Send one command on a connection of its own to host:port (after the
 * handshake, without replacing the server identity the keys use), preceded
 * by ASKING when 'ask', and return its reply.  The main connection is kept
 * as it is.  NULL on failure.
 */
static redisReply *
command_on_node(const char *host, int port, bool ask, int argc,
				const char **argv, const size_t *argvlen)
{
	redisContext *saved = ctx;
	char		ident[WM_SERVER_IDENT_LEN];
	char		replid[sizeof(server_replid)];
	bool		flagged = server_flagged_scripts;
	bool		cluster = server_cluster;
	const char *detail = NULL;
	const char *asking[1] = {"ASKING"};
	redisReply *reply = NULL;
	TimestampTz deadline;

	strlcpy(ident, server_ident, sizeof(ident));
	strlcpy(replid, server_replid, sizeof(replid));
	ctx = NULL;
	if (open_connection(host, port, &detail) && handshake(&detail))
	{
		/*
		 * The keys keep naming the server the call started on; the lookup
		 * script checks this node's replication id (server_replid).
		 */
		strlcpy(server_ident, ident, sizeof(server_ident));
		deadline = command_deadline();
		io_failure = WM_IO_NONE;
		if ((!ask || redisAppendCommandArgv(ctx, 1, asking, NULL) == REDIS_OK) &&
			redisAppendCommandArgv(ctx, argc, argv, argvlen) == REDIS_OK &&
			flush_output(deadline))
		{
			redisReply *first = ask ? read_reply(deadline) : NULL;

			if (!ask || first != NULL)
				reply = read_reply(deadline);
			if (first)
				freeReplyObject(first);
		}
	}
	drop_connection();
	ctx = saved;
	strlcpy(server_ident, ident, sizeof(server_ident));
	strlcpy(server_replid, replid, sizeof(server_replid));
	server_flagged_scripts = flagged;
	server_cluster = cluster;
	return reply;
}

/*
 * A reply of wm_perf's own keys (lookup, store, bump) that is a redirect is
 * followed: -MOVED moves this backend's connection to the node named (its
 * identity then goes into the keys), -ASK sends the command once more to
 * the node named, after ASKING; at most one -MOVED then one -ASK.  Any other reply is returned as it is.
 * NULL on failure (the connection is then gone).
 */
static redisReply *follow_redirect_moved(const char *host, int port, int argc,
										 const char **argv, const size_t *argvlen);

static redisReply *
follow_redirect(redisReply *reply, int argc, const char **argv,
				const size_t *argvlen)
{
	char		host[64];
	int			port;
	bool		ask;

	if (!parse_redirect(reply, &ask, host, sizeof(host), &port))
		return reply;
	freeReplyObject(reply);
	if (ask)
		return command_on_node(host, port, true, argc, argv, argvlen);
	return follow_redirect_moved(host, port, argc, argv, argvlen);
}

/* -MOVED: this backend's connection goes to host:port for good. */
static redisReply *
follow_redirect_moved(const char *host, int port, int argc, const char **argv,
					  const size_t *argvlen)
{
	const char *detail = NULL;
	redisReply *reply;
	char		host2[64];
	int			port2;
	bool		ask;

	drop_connection();
	snprintf(where_text, sizeof(where_text), "%s%s%s:%d",
			 strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
	if (!open_connection(host, port, &detail) || !handshake(&detail))
	{
		keep_detail(&detail);
		drop_connection();
		io_failure = WM_IO_ERROR;
		return NULL;
	}
	reply = round_trip(argc, argv, argvlen);

	/*
	 * The node that owns the slot may be migrating it: one -ASK more is
	 * followed (at most one -MOVED and one -ASK per command).
	 */
	if (parse_redirect(reply, &ask, host2, sizeof(host2), &port2) && ask)
	{
		freeReplyObject(reply);
		reply = command_on_node(host2, port2, true, argc, argv, argvlen);
	}
	return reply;
}

/*
 * -TRYAGAIN and -CLUSTERDOWN: the call is a miss (it computes, stores
 * nothing); the connection stays (the reply was read whole) and no
 * back-off starts.  A rate-limited WARNING.
 */
static void
transient_failure(const char *what, const redisReply *reply)
{
	char		copy[128];

	strlcpy(copy, reply->str, sizeof(copy));
	warn_failure(ERRCODE_CONNECTION_FAILURE, what, copy);
}

/*
 * Should a failed command on a connection that was open before this call be
 * retried on a new one?  Only for a closed connection, never after a
 * timeout or an interrupt.
 */
static bool
retryable(void)
{
	return ctx != NULL && io_failure == WM_IO_ERROR && ctx->err == REDIS_ERR_EOF;
}

static void
count_trip(WmMetricKind kind, TimestampTz start)
{
	uint64		us = (uint64) Max(GetCurrentTimestamp() - start, 0);

	wm_metrics_add(kind, WM_COUNTER_REDIS_TRIPS, 1);
	wm_metrics_add(kind, WM_COUNTER_REDIS_RTT_US, us);
	wm_metrics_max(kind, WM_COUNTER_REDIS_RTT_MAX_US, us);
}

/*
 * Can this target have two masters at once, or a master that is an older
 * copy of another?  Through Sentinel, and on a Redis Cluster, failovers are
 * routine, and during one some backends bump one master while others read
 * another (split brain).  Only the shared-memory tag (preload) keeps an old
 * value unreachable then: without it, such a target serves no values.
 */
static bool unsafe_logged = false;	/* once per process */

static bool
target_can_fail_over(void)
{
	return wm_redis_uses_sentinel() || server_cluster;
}

WmRedisStatus
wm_redis_lookup(WmMetricKind kind, const char *epoch_key, const char *gen_key,
				const char *vprefix, const char *vsuffix, bool tagged,
				WmCacheVersion *version, char **value, size_t *value_len)
{
	const char *argv[9];
	redisReply *reply = NULL;
	WmRedisStatus st;
	TimestampTz start;
	bool		was_open;
	int			attempt;
	int			i;

	*value = NULL;
	*value_len = 0;

	for (attempt = 0; attempt < 2; attempt++)
	{
		was_open = ctx != NULL;
		if ((st = ensure_connection()) != WM_REDIS_OK)
			return st;
		if (!tagged && target_can_fail_over())
		{
			if (!unsafe_logged)
				ereport(LOG,
						(errmsg("wm_perf: statistics are not cached on %s",
								where_text),
						 errdetail("Without shared_preload_libraries, a Redis target reached through Sentinel or a Redis Cluster serves no cached values: a failover could serve an old one."),
						 errhint("Add wm_perf to shared_preload_libraries.")));
			unsafe_logged = true;
			return WM_REDIS_UNSAFE;
		}
		argv[0] = "EVAL";
		argv[1] = server_flagged_scripts ? lookup_script_flagged : lookup_script;
		argv[2] = "2";
		argv[3] = epoch_key;
		argv[4] = gen_key;
		argv[5] = vprefix;
		argv[6] = vsuffix;
		argv[7] = server_ident;
		argv[8] = server_replid;	/* read at send time: see command_on_node */
		start = GetCurrentTimestamp();
		reply = follow_redirect(round_trip(9, argv, NULL), 9, argv, NULL);
		count_trip(kind, start);
		if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		{
			/*
			 * The server's replication id changed since this connection
			 * read it: reconnect (which reads the identity again, through
			 * Sentinel if configured) and look up once more.
			 */
			freeReplyObject(reply);
			reply = NULL;
			drop_connection();
			if (attempt == 0)
				continue;
			io_failure = WM_IO_ERROR;
			break;
		}
		if (reply != NULL)
			break;
		if (!(was_open && retryable()))
			break;
		drop_connection();
	}

	if (reply == NULL)
	{
		fail(ERRCODE_CONNECTION_FAILURE, "read from", io_failure_text());
		return WM_REDIS_FAILED;
	}
	if (cluster_transient(reply))
	{
		transient_failure("read from", reply);
		freeReplyObject(reply);
		return WM_REDIS_FAILED;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
		reply->element[0]->type != REDIS_REPLY_STRING ||
		reply->element[1]->type != REDIS_REPLY_STRING ||
		reply->element[0]->len >= sizeof(version->epoch) ||
		reply->element[1]->len >= sizeof(version->generation))
	{
		const char *why = reply->type == REDIS_REPLY_ERROR ?
		pstrdup(reply->str) : "unexpected reply to the lookup script";

		freeReplyObject(reply);
		fail(ERRCODE_CONNECTION_FAILURE, "read from", why);
		return WM_REDIS_FAILED;
	}
	for (i = 0; i < 2; i++)
	{
		char	   *dst = i == 0 ? version->epoch : version->generation;

		memcpy(dst, reply->element[i]->str, reply->element[i]->len);
		dst[reply->element[i]->len] = '\0';
	}
	strlcpy(version->server, server_ident, sizeof(version->server));
	if (reply->element[2]->type == REDIS_REPLY_STRING)
	{
		*value = palloc(reply->element[2]->len + 1);
		memcpy(*value, reply->element[2]->str, reply->element[2]->len);
		(*value)[reply->element[2]->len] = '\0';
		*value_len = reply->element[2]->len;
	}
	freeReplyObject(reply);
	return WM_REDIS_OK;
}

WmRedisStatus
wm_redis_store(WmMetricKind kind, const char *epoch_key, const char *gen_key,
			   const WmCacheVersion *version, const char *key,
			   const char *value, size_t len, int ttl_s)
{
	const char *argv[10];
	size_t		argvlen[10];
	char		ttl[16];
	redisReply *reply;
	WmRedisStatus st;
	TimestampTz start;
	int			i;

	if ((st = ensure_connection()) != WM_REDIS_OK)
		return st;
	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	argv[0] = "EVAL";
	argv[1] = store_script;
	argv[2] = "2";
	argv[3] = epoch_key;
	argv[4] = gen_key;
	argv[5] = version->epoch;
	argv[6] = version->generation;
	argv[7] = value;
	argv[8] = ttl;
	argv[9] = key;
	for (i = 0; i < 10; i++)
		argvlen[i] = i == 7 ? len : strlen(argv[i]);
	start = GetCurrentTimestamp();
	reply = follow_redirect(round_trip(10, argv, argvlen), 10, argv, argvlen);
	count_trip(kind, start);
	if (cluster_transient(reply))
	{
		transient_failure("write to", reply);
		freeReplyObject(reply);
		return WM_REDIS_FAILED;
	}
	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER)
	{
		const char *why = reply == NULL ? io_failure_text() : "error reply";

		if (reply)
			freeReplyObject(reply);
		fail(ERRCODE_CONNECTION_FAILURE, "write to", why);
		return WM_REDIS_FAILED;
	}
	freeReplyObject(reply);
	return WM_REDIS_OK;
}

/* A command of a pipeline that a cluster redirected. */
typedef struct WmRedirected
{
	int			index;			/* 0: the bump (when there is one) */
	bool		ask;
	int			port;
	char		host[64];
} WmRedirected;

/*
 * Send the pipeline and read every reply, all within one command timeout;
 * false on any failure.  On a Redis Cluster, a command that was redirected
 * (-MOVED/-ASK) is sent once more to the node named, after the pipeline:
 * the bump like a lookup (follow_redirect), an application key on a
 * connection of its own (its slot is any), at most WM_MAX_KEY_REDIRECTS of
 * them.  Post-commit safe: stack and hiredis memory only.
 */
static bool
pipeline(int nincr, char *const *incr_keys, int nunlink,
		 char *const *unlink_keys, long *unlinked)
{
	TimestampTz deadline = command_deadline();
	const char *argv[2];
	const char *bargv[3 + WM_MAX_BUMP_KEYS];
	char		nkeys[16];
	redisReply *reply;
	WmRedirected redirected[WM_MAX_KEY_REDIRECTS + 1];
	int			nredirected = 0;
	int			nbump = nincr > 0 ? 1 : 0;
	int			i;
	bool		ok = true;

	io_failure = WM_IO_NONE;
	if (nincr > 0)
	{
		if (nincr > WM_MAX_BUMP_KEYS)
			return false;
		snprintf(nkeys, sizeof(nkeys), "%d", nincr);
		bargv[0] = "EVAL";
		bargv[1] = bump_script;
		bargv[2] = nkeys;
		for (i = 0; i < nincr; i++)
			bargv[3 + i] = incr_keys[i];
		if (redisAppendCommandArgv(ctx, 3 + nincr, bargv, NULL) != REDIS_OK)
			return false;
	}
	for (i = 0; i < nunlink; i++)
	{
		argv[0] = "UNLINK";
		argv[1] = unlink_keys[i];
		if (redisAppendCommandArgv(ctx, 2, argv, NULL) != REDIS_OK)
			return false;
	}
	if (!flush_output(deadline))
		return false;
	for (i = 0; i < nbump + nunlink; i++)
	{
		WmRedirected *r = &redirected[nredirected];

		if ((reply = read_reply(deadline)) == NULL)
			return false;
		if (nredirected <= WM_MAX_KEY_REDIRECTS &&
			parse_redirect(reply, &r->ask, r->host, sizeof(r->host), &r->port))
		{
			r->index = i;
			nredirected++;
		}
		else if (reply->type == REDIS_REPLY_ERROR)
			ok = false;
		else if (i >= nbump && reply->type == REDIS_REPLY_INTEGER)
			*unlinked += (long) reply->integer;
		freeReplyObject(reply);
	}

	for (i = 0; i < nredirected && ok; i++)
	{
		WmRedirected *r = &redirected[i];

		if (r->index < nbump)
			/* wm_perf's own slot: as for a lookup (follow_redirect). */
			reply = r->ask ?
				command_on_node(r->host, r->port, true, 3 + nincr, bargv, NULL) :
				follow_redirect_moved(r->host, r->port, 3 + nincr, bargv, NULL);
		else
		{
			argv[0] = "UNLINK";
			argv[1] = unlink_keys[r->index - nbump];
			reply = command_on_node(r->host, r->port, r->ask, 2, argv, NULL);
		}
		if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
			ok = false;
		else if (r->index >= nbump && reply->type == REDIS_REPLY_INTEGER)
			*unlinked += (long) reply->integer;
		if (reply)
			freeReplyObject(reply);
		if (ctx == NULL)
			return false;
	}
	return ok;
}

WmRedisStatus
wm_redis_deliver(int nincr, char *const *incr_keys,
				 int nunlink, char *const *unlink_keys, long *unlinked)
{
	WmRedisStatus st;
	TimestampTz start;
	bool		was_open;
	bool		ok = false;
	int			attempt;

	*unlinked = 0;
	if (nincr + nunlink == 0)
		return WM_REDIS_OK;

	for (attempt = 0; attempt < 2; attempt++)
	{
		was_open = ctx != NULL;
		if ((st = ensure_connection()) != WM_REDIS_OK)
			return st;
		start = GetCurrentTimestamp();
		ok = pipeline(nincr, incr_keys, nunlink, unlink_keys, unlinked);
		count_trip(WM_METRIC_INVALIDATION, start);
		if (ok || !(was_open && retryable()))
			break;
		drop_connection();
		*unlinked = 0;
	}
	if (!ok)
	{
		fail(ERRCODE_CONNECTION_FAILURE, "deliver invalidations to",
			 io_failure != WM_IO_NONE ? io_failure_text() : "error reply");
		return WM_REDIS_FAILED;
	}
	return WM_REDIS_OK;
}

/* UNLINK the keys of one SCAN reply.  Post-commit safe (malloc only). */
static bool
unlink_batch(redisReply *keys, long *unlinked)
{
	size_t		n = keys->elements;
	const char **uargv;
	size_t	   *uargvlen;
	redisReply *r = NULL;
	size_t		i;

	if (n == 0)
		return true;
	uargv = malloc(sizeof(char *) * (n + 1));
	uargvlen = malloc(sizeof(size_t) * (n + 1));
	if (uargv != NULL && uargvlen != NULL)
	{
		uargv[0] = "UNLINK";
		uargvlen[0] = 6;
		for (i = 0; i < n; i++)
		{
			uargv[i + 1] = keys->element[i]->str;
			uargvlen[i + 1] = keys->element[i]->len;
		}
		r = round_trip((int) n + 1, uargv, uargvlen);
	}
	free(uargv);
	free(uargvlen);
	if (r == NULL || r->type != REDIS_REPLY_INTEGER)
	{
		if (r)
			freeReplyObject(r);
		return false;
	}
	*unlinked += (long) r->integer;
	freeReplyObject(r);
	return true;
}

WmRedisStatus
wm_redis_unlink_matching(const char *pattern, char *cursor, int max_rounds,
						 TimestampTz deadline, long *unlinked)
{
	const char *argv[6];
	redisReply *reply;
	WmRedisStatus st;
	int			round;

	*unlinked = 0;
	if ((st = ensure_connection()) != WM_REDIS_OK)
		return st;

	/*
	 * SCAN covers one node of a Redis Cluster: deleting by pattern there
	 * would silently leave the keys of the other nodes.  Refused, loudly.
	 */
	if (server_cluster)
	{
		warn_failure(ERRCODE_FEATURE_NOT_SUPPORTED, "delete keys matching a pattern in",
					 "glob rules of wm_cache_rules are not supported on a Redis Cluster");
		return WM_REDIS_FAILED;
	}

	for (round = 0; round < max_rounds; round++)
	{
		if (round > 0 && deadline != 0 && GetCurrentTimestamp() >= deadline)
			break;
		argv[0] = "SCAN";
		argv[1] = cursor;
		argv[2] = "MATCH";
		argv[3] = pattern;
		argv[4] = "COUNT";
		argv[5] = "1000";
		reply = round_trip(6, argv, NULL);
		if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
			reply->elements != 2 ||
			reply->element[0]->type != REDIS_REPLY_STRING ||
			reply->element[0]->len >= WM_SCAN_CURSOR_LEN ||
			reply->element[1]->type != REDIS_REPLY_ARRAY)
		{
			const char *why = reply == NULL ? io_failure_text() : "unexpected reply to SCAN";

			if (reply)
				freeReplyObject(reply);
			fail(ERRCODE_CONNECTION_FAILURE, "scan", why);
			return WM_REDIS_FAILED;
		}
		if (!unlink_batch(reply->element[1], unlinked))
		{
			freeReplyObject(reply);
			fail(ERRCODE_CONNECTION_FAILURE, "unlink keys in", io_failure_text());
			return WM_REDIS_FAILED;
		}
		/* Only once the keys it returned are gone does the scan move on. */
		strlcpy(cursor, reply->element[0]->str, WM_SCAN_CURSOR_LEN);
		freeReplyObject(reply);
		if (strcmp(cursor, "0") == 0)
			return WM_REDIS_OK;
	}
	return WM_REDIS_INCOMPLETE;
}

void
wm_redis_disconnect(void)
{
	drop_connection();
}

void
wm_redis_reset_backoff(void)
{
	backoff_until = 0;
}
