# 070_local_copies.pl: backend-local copies of cached statistics, with
# shared_preload_libraries (src/stats.c WmLocalEntry, src/shmem.c local
# generations, src/xact.c deliver()).
#
#  1. a persistent session's second identical call is served from its own
#     copy: local_hits and cache_hits +1, no Redis command at all (INFO
#     commandstats unchanged), same computedAt;
#  2. a commit made by a backend with no Redis configured (wm_perf.redis_host
#     = '') still makes the copies of other backends unusable: once Redis is
#     configured again, the session that held a copy gets the new value;
#  3. Redis down: with no commit in between the copy is still served
#     (exactly); after a commit, the session gets the new value, no ERROR;
#  4. wm_perf.local_cache_size bounds the memory context "wm_perf local
#     copies"; 0 means no local hit at all;
#  5. a copy is never served to another role (SET ROLE), nor to a role
#     without SELECT, nor once row-level security is enabled.
#
# Every expected value is the statistic computed with wm_perf.cache_enabled
# = off in a fresh session, and the plain SQL twin (WmPerfTest.pm), both
# without "computedAt".

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use WmPerfTest;

my ($redis_pid, $port) = start_redis();

# Generous timeouts: a timeout on a busy machine would turn an expected hit
# into a bypass.  Redis down (part 3) is a refused connection, not a timeout.
my $node = redis_node('local_copies', $port,
	redis_connect_timeout => 2000,
	redis_command_timeout => 2000,
	redis_backoff => '100ms',
	cache_ttl => 600);

load_fixture($node, 'app');
create_plain_functions($node, 'app');

my $prefix = wm_cluster_prefix($node);
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');
my $epoch_key = "$prefix:epoch";
my $bins_gen_key = "$prefix:$dboid:gen:bins";

# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------

# invalidations_pending seen by a fresh session.
sub pending
{
	return metric($node, 'app', 'invalidation', 'invalidations_pending');
}

ok(wait_until(sub { redis_cli($port, 'GET', $epoch_key) =~ /^[1-9]/ && pending() eq '0' }),
	'the worker bumped the epoch after start, nothing pending');

# Counters of one statistics function, from a fresh session.
my @mcols = qw(calls cache_hits local_hits cache_misses cache_bypasses redis_round_trips);
sub mrow
{
	my ($fn) = @_;
	my %h;
	@h{@mcols} = split /\|/,
	  $node->safe_psql('app',
		'SELECT ' . join(', ', @mcols) . " FROM wm_perf_metrics WHERE function_name = '$fn'");
	return \%h;
}

# "calls=1 cache_hits=1 ..." : the change between two mrow() snapshots.
sub mdelta
{
	my ($before, $after) = @_;
	return join(' ', map { "$_=" . ($after->{$_} - $before->{$_}) } @mcols);
}

sub expect
{
	my (%d) = @_;
	return join(' ', map { "$_=" . ($d{$_} // 0) } @mcols);
}

# A persistent session: PostgreSQL::Test::BackgroundPsql, which PG 15 has
# since 15.4 (older minors only had the IPC::Run harness form of
# background_psql).  ON_ERROR_STOP off: an ERROR is an answer here, and
# the session (and its copies) must survive it.  query() accumulates stderr:
# return it and clear it after every query.
sub session
{
	return $node->background_psql('app', on_error_stop => 0);
}

sub sq
{
	my ($s, $sql) = @_;
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	return ($out, $err);
}

sub sq_ok
{
	my ($s, $sql) = @_;
	my ($out, $err) = sq($s, $sql);
	die "query failed: $sql\n$err" if $err =~ /ERROR/;
	note "stderr of '$sql': $err" if $err ne '';
	return $out;
}

# Statistic computed afresh: cache off, in a new session; and the plain SQL
# twin.  Both without computedAt.  (Counts as a call and a bypass.)
sub fresh
{
	my ($call, $plain, $role) = @_;
	my $set_role = defined $role ? "SET ROLE $role;" : '';
	my $out = $node->safe_psql(
		'app',
		"SET wm_perf.cache_enabled = off; $set_role
		 SELECT ($call - 'computedAt')::text, ($plain)::text",
		extra_params => [ '-F', "\x1f" ]);
	my ($got, $want) = split /\x1f/, $out;
	die "cache off ($got) differs from plain SQL ($want)" if $got ne $want;
	return $got;
}

my $customer = $node->safe_psql(
	'app', q{
	SELECT customer_id FROM core.bins WHERE deleted_at IS NULL
	 GROUP BY customer_id ORDER BY count(*) DESC, customer_id LIMIT 1});
my $bin_call = "wm_bin_statistics('$customer')";
my $bin_plain = "plain_bin_stats('$customer')";
my $bin_read = "SELECT ${bin_call}::text";
my $bin_exact = "SELECT ($bin_call - 'computedAt')::text";

# Change the bin statistics of $customer (every bin's fill level moves).
my $bin_update = "UPDATE core.bins
	SET fill_level_percent = (coalesce(fill_level_percent, 0) + 7) % 101
	WHERE customer_id = '$customer' AND deleted_at IS NULL";

sub strip_computed_at
{
	my ($json) = @_;
	return $node->safe_psql('app', "SELECT ('$json'::jsonb - 'computedAt')::text");
}

# ---------------------------------------------------------------------------
# 1. Local hit: no Redis round trip.
# ---------------------------------------------------------------------------
my $sa = session();
is(sq_ok($sa, 'SHOW wm_perf.local_cache_size'), '1MB', 'session A: default local_cache_size');

my $m0 = mrow('wm_bin_statistics');
my $r0 = redis_calls($port);
my $first = sq_ok($sa, $bin_read);
my $m1 = mrow('wm_bin_statistics');
my $r1 = redis_calls($port);
is(mdelta($m0, $m1),
	expect(calls => 1, cache_misses => 1, redis_round_trips => 2),
	'A, first call: a Redis miss (lookup + store), no local hit');
note 'A, first call, Redis commands: ' . redis_diff($r0, $r1);
is(($r1->{eval} // 0) - ($r0->{eval} // 0), 2, 'A, first call: Redis ran 2 EVALs (lookup, store)');

my $second = sq_ok($sa, $bin_read);
my $m2 = mrow('wm_bin_statistics');
my $r2 = redis_calls($port);
is(mdelta($m1, $m2),
	expect(calls => 1, cache_hits => 1, local_hits => 1),
	'A, second call: a local hit (local_hits +1, cache_hits +1, no round trip)');
is(redis_diff($r1, $r2), '', 'A, second call: Redis received no command at all');
is($second, $first, 'A, second call: the same value, same computedAt');
my $v1 = fresh($bin_call, $bin_plain);
is(strip_computed_at($second), $v1, 'A: the value equals the fresh computation');

# ---------------------------------------------------------------------------
# 2. A commit by a backend with no Redis configured.
# ---------------------------------------------------------------------------
my $epoch = redis_cli($port, 'GET', $epoch_key);
my $gen_before = redis_cli($port, 'GET', $bins_gen_key);

# Wait until the worker has seen redis_host = '' (pending = 1: it demands an
# epoch bump) before the commit.  That bump is what makes the values Redis
# still holds unreachable: the writer without Redis neither INCRs the Redis
# generation nor marks the scope dirty.  (If the worker never sees the ''
# period, e.g. two reloads coalesced while it waits on Redis, nothing does;
# not tested here.)
$node->safe_psql('postgres', "ALTER SYSTEM SET wm_perf.redis_host = ''");
$node->reload;
ok( wait_until(
		sub { $node->safe_psql('app', 'SHOW wm_perf.redis_host') eq '' && pending() eq '1' }
	),
	"redis_host = '': new sessions see it, the worker demands an epoch bump (pending = 1)");

# Session A processes the SIGHUP before its next command.
is(sq_ok($sa, 'SHOW wm_perf.redis_host'), '', "A sees redis_host = ''");
$m0 = mrow('wm_bin_statistics');
is(sq_ok($sa, $bin_exact), $v1, 'A without Redis: exact (nothing changed yet)');
is(mdelta($m0, mrow('wm_bin_statistics')),
	expect(calls => 1, cache_bypasses => 1),
	'A without Redis: a bypass, the local copy is not used');

$r0 = redis_calls($port);
is( $node->safe_psql('app', "SHOW wm_perf.redis_host;\n$bin_update;"),
	'', "writer: redis_host = '' in its session; UPDATE committed");
is(redis_diff($r0, redis_calls($port)), '', 'the writer\'s commit sent nothing to Redis');
is(redis_cli($port, 'GET', $bins_gen_key), $gen_before,
	'the Redis bins generation is unchanged (no INCR without Redis)');
my $v2 = fresh($bin_call, $bin_plain);
isnt($v2, $v1, 'the UPDATE changed the bin statistics');

$node->safe_psql('postgres', 'ALTER SYSTEM RESET wm_perf.redis_host');
$node->reload;
ok( wait_until(
		sub {
			$node->safe_psql('app', 'SHOW wm_perf.redis_host') eq '127.0.0.1'
			  && pending() eq '0';
		}),
	'redis_host reset: new sessions see it, nothing pending');
is(redis_cli($port, 'GET', $epoch_key), $epoch + 1, 'the worker bumped the epoch once');

is(sq_ok($sa, 'SHOW wm_perf.redis_host'), '127.0.0.1', 'A sees redis_host again');
$m0 = mrow('wm_bin_statistics');
my $after_no_redis = sq_ok($sa, $bin_exact);
$m1 = mrow('wm_bin_statistics');
is($after_no_redis, $v2,
	'A after a commit made without Redis: the new value, not its stale copy');
is(mdelta($m0, $m1),
	expect(calls => 1, cache_misses => 1, redis_round_trips => 2),
	'A after a commit made without Redis: no local hit, a Redis miss (new epoch)');
is(sq_ok($sa, "SELECT ($bin_plain)::text"), $v2, 'A: equals plain SQL in its own session');

# ---------------------------------------------------------------------------
# 3. Redis down.
# ---------------------------------------------------------------------------
$m0 = mrow('wm_bin_statistics');
is(sq_ok($sa, $bin_exact), $v2, 'A, Redis up: exact');
is(mdelta($m0, mrow('wm_bin_statistics')),
	expect(calls => 1, cache_hits => 1, local_hits => 1),
	'A, Redis up: a local hit of the copy stored at the miss');

stop_redis($redis_pid);
is(redis_cli($port, 'PING'), '', 'redis-server is gone');

$m0 = mrow('wm_bin_statistics');
my ($out, $err) = sq($sa, $bin_exact);
is($out, $v2, 'A, Redis down, no commit: exact');
is($err, '', 'A, Redis down, no commit: no message at all');
is(mdelta($m0, mrow('wm_bin_statistics')),
	expect(calls => 1, cache_hits => 1, local_hits => 1),
	'A, Redis down, no commit: served from the local copy');

$node->safe_psql('app', $bin_update);
my $v3 = fresh($bin_call, $bin_plain);
isnt($v3, $v2, 'the UPDATE with Redis down changed the bin statistics');
foreach my $round (1, 2)
{
	$m0 = mrow('wm_bin_statistics');
	($out, $err) = sq($sa, $bin_exact);
	my $m = mrow('wm_bin_statistics');
	is($out, $v3, "A, Redis down, after a commit, read $round: the new value");
	unlike($err, qr/ERROR/, "A, Redis down, after a commit, read $round: no ERROR");
	is(scalar(grep { !/WARNING:\s+(?:080(?:01|06): )?wm_perf could not/ } grep { /WARNING/ } split /\n/, $err),
		0, "A, Redis down, read $round: any WARNING is wm_perf's Redis warning")
	  or diag($err);
	is( join(' ', map { "$_=" . ($m->{$_} - $m0->{$_}) } qw(calls cache_hits local_hits cache_misses cache_bypasses)),
		'calls=1 cache_hits=0 local_hits=0 cache_misses=0 cache_bypasses=1',
		"A, Redis down, after a commit, read $round: a bypass, no local hit");
}

($redis_pid) = start_redis(port => $port);
ok(wait_until(sub { pending() eq '0' }),
	'Redis back (empty): the worker delivered what was pending');
# Session A's own calls failed while Redis was down: it does not try Redis
# again before its back-off (wm_perf.redis_backoff = 100ms) has run out.
usleep(250_000);
$m0 = mrow('wm_bin_statistics');
is(sq_ok($sa, $bin_exact), $v3, 'A, Redis back: exact (miss)');
is(sq_ok($sa, $bin_exact), $v3, 'A, Redis back: exact (local hit)');
is(mdelta($m0, mrow('wm_bin_statistics')),
	expect(calls => 2, cache_hits => 1, local_hits => 1, cache_misses => 1, redis_round_trips => 2),
	'A, Redis back: a miss, then a local hit');
$sa->quit;

# ---------------------------------------------------------------------------
# 4. Memory bound.
# ---------------------------------------------------------------------------
my $ctx_bytes = q{SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts
	WHERE name = 'wm_perf local copies'};
my @customers = split /\n/,
  $node->safe_psql('app', 'SELECT id FROM operations.customers ORDER BY id LIMIT 300');
is(scalar(@customers), 300, '300 customers');
my $many = q{SELECT count(wm_bin_statistics(id)) FROM
	(SELECT id FROM operations.customers ORDER BY id LIMIT 300) c};
# stats.c keeps a copy only if the context's allocated memory plus
# 2 x (VARSIZE + sizeof(WmLocalEntry), a 512-byte key + 24) stays within
# the setting.  Computed with the cache off: the 64 kB session below takes
# the miss path (compute, store in Redis, keep a copy).
my $largest = $node->safe_psql('app',
	"SET wm_perf.cache_enabled = off;
	 SELECT max(pg_column_size(wm_bin_statistics(id))) FROM
	  (SELECT id FROM operations.customers ORDER BY id LIMIT 300) c");
my $per_copy = 2 * ($largest + 512 + 24);
note "largest bin statistics value: $largest bytes, counted as $per_copy bytes per copy: "
  . int(65536 / $per_copy) . ' copies fit in 64 kB';
cmp_ok(300 * $per_copy, '>', 4 * 65536, 'sanity: 300 copies are far more than 64 kB');

# A customer without bins or recent events matches nothing: its value is
# computed, not stored (cache.c: the number of keys follows the data).
my $empty = $node->safe_psql('app',
	"SET wm_perf.cache_enabled = off;
	 SELECT count(*) FROM
	  (SELECT id FROM operations.customers ORDER BY id LIMIT 300) c
	 WHERE (wm_bin_statistics(id)->>'total')::int = 0
	   AND (wm_bin_statistics(id)->'serviceEventsLast30Days'->>'total')::int = 0");
cmp_ok($empty, '>', 0, 'some of the 300 customers have no bins nor recent events');
my $small = session();
sq_ok($small, 'SET wm_perf.local_cache_size = 64');
$m0 = mrow('wm_bin_statistics');
is(sq_ok($small, $many), '300', '64 kB: 300 customers read');
# Only $customer's value is in Redis already (part 3).
my $in_redis = grep { $_ eq $customer } @customers;
is( mdelta($m0, mrow('wm_bin_statistics')),
	expect(
		calls => 300,
		cache_hits => $in_redis,
		cache_misses => 300 - $in_redis,
		redis_round_trips => 600 - $in_redis - $empty),
	"64 kB: $in_redis Redis hit(s), the rest Redis misses (lookup + store each, "
	  . "no store for the $empty customers without bins or recent events)");
my $small_bytes = sq_ok($small, $ctx_bytes);
note "64 kB: total_bytes of 'wm_perf local copies' = $small_bytes";
# The check is made against the memory allocated (the values' context and
# the hash table's child context, both named 'wm_perf local copies'),
# before each copy, with twice the copy's size.  What is allocated can pass
# 64 kB only by what one step allocates beyond that estimate: one 8-kB block
# of values, or one batch of the hash table's elements (dynahash allocates
# at least 32 at a time, each a 512-byte key + 24 + a 16-byte header).
my $bound = 64 * 1024 + 8 * 1024 + 32 * (512 + 24 + 16);
cmp_ok($small_bytes, '>', 0, '64 kB: the context exists');
cmp_ok($small_bytes, '<=', $bound,
	"64 kB: the copies take $small_bytes bytes (<= $bound)");

# The most recent copy is kept, the oldest was dropped (300 copies do not
# fit in 64 kB).
$m0 = mrow('wm_bin_statistics');
sq_ok($small, "SELECT wm_bin_statistics('$customers[-1]') IS NOT NULL");
$m1 = mrow('wm_bin_statistics');
is(mdelta($m0, $m1), expect(calls => 1, cache_hits => 1, local_hits => 1),
	'64 kB: the last customer read is a local hit');
sq_ok($small, "SELECT wm_bin_statistics('$customers[0]') IS NOT NULL");
is(mdelta($m1, mrow('wm_bin_statistics')),
	expect(calls => 1, cache_hits => 1, redis_round_trips => 1),
	'64 kB: the first customer read is a Redis hit (its copy was dropped)');
cmp_ok(sq_ok($small, $ctx_bytes), '<=', $bound, '64 kB: still within the bound');
$small->quit;

# The default (1 MB) keeps all 300: more memory, and the first is a local hit.
my $big = session();
is(sq_ok($big, $many), '300', '1 MB: 300 customers read');
my $big_bytes = sq_ok($big, $ctx_bytes);
note "1 MB: total_bytes of 'wm_perf local copies' = $big_bytes";
cmp_ok($big_bytes, '>', $small_bytes, "1 MB: the copies take more ($big_bytes bytes)");
cmp_ok($big_bytes, '<', 2 * 1024 * 1024, '1 MB: below 2 MB');
$m0 = mrow('wm_bin_statistics');
sq_ok($big, "SELECT wm_bin_statistics('$customers[0]') IS NOT NULL");
is(mdelta($m0, mrow('wm_bin_statistics')), expect(calls => 1, cache_hits => 1, local_hits => 1),
	'1 MB: the first customer read is a local hit');

# 0: no local hit at all, every hit is a Redis hit.
sq_ok($big, 'SET wm_perf.local_cache_size = 0');
$m0 = mrow('wm_bin_statistics');
$r0 = redis_calls($port);
foreach my $c (@customers[0 .. 2], $customers[0])
{
	sq_ok($big, "SELECT wm_bin_statistics('$c') IS NOT NULL");
}
is(mdelta($m0, mrow('wm_bin_statistics')),
	expect(calls => 4, cache_hits => 4, redis_round_trips => 4),
	'local_cache_size = 0: 4 calls, 4 Redis hits, no local hit');
is(redis_diff($r0, redis_calls($port)), 'eval+4 get+12',
	'local_cache_size = 0: 4 lookup scripts in Redis (each GETs epoch, generation, value)');
# Turning the setting off frees the copies at the next call (the context is
# reset to its first 1-kB block).
cmp_ok(sq_ok($big, $ctx_bytes), '<=', 8 * 1024,
	'local_cache_size = 0: the copies were freed');
$big->quit;

# ---------------------------------------------------------------------------
# 5. Roles.
# ---------------------------------------------------------------------------
my $territory = $node->safe_psql(
	'app', q{
	SELECT territory FROM core.routes
	 WHERE deleted_at IS NULL AND territory IS NOT NULL
	 GROUP BY territory ORDER BY count(*) DESC, territory COLLATE "C" LIMIT 1});
$node->safe_psql(
	'app', q{
CREATE ROLE regress_wm_x;
CREATE ROLE regress_wm_y;
CREATE ROLE regress_wm_z;
GRANT USAGE ON SCHEMA core, operations TO regress_wm_x, regress_wm_y, regress_wm_z;
GRANT SELECT ON core.routes TO regress_wm_x, regress_wm_y;
});
my $route_exact = q{SELECT (wm_route_statistics() - 'computedAt')::text};
my $routes_all = fresh('wm_route_statistics()', 'plain_route_stats()');

my $s = session();
sq_ok($s, 'SET ROLE regress_wm_x');
$m0 = mrow('wm_route_statistics');
my $x1 = sq_ok($s, 'SELECT wm_route_statistics()::text');
my $x2 = sq_ok($s, 'SELECT wm_route_statistics()::text');
is(mdelta($m0, mrow('wm_route_statistics')),
	expect(calls => 2, cache_hits => 1, local_hits => 1, cache_misses => 1, redis_round_trips => 2),
	'X: a miss, then a local hit');
is($x2, $x1, 'X: the local hit returns the same value (same computedAt)');
is(strip_computed_at($x1), $routes_all, 'X: exact');

sq_ok($s, 'SET ROLE regress_wm_y');
$m0 = mrow('wm_route_statistics');
my $y1 = sq_ok($s, 'SELECT wm_route_statistics()::text');
$m1 = mrow('wm_route_statistics');
is(mdelta($m0, $m1), expect(calls => 1, cache_misses => 1, redis_round_trips => 2),
	'Y in the same session: not served X\'s copy (a Redis miss under its own key)');
is(strip_computed_at($y1), $routes_all, 'Y: exact');
my $y2 = sq_ok($s, 'SELECT wm_route_statistics()::text');
is(mdelta($m1, mrow('wm_route_statistics')),
	expect(calls => 1, cache_hits => 1, local_hits => 1),
	'Y, second call: a local hit of its own copy');
is($y2, $y1, 'Y, second call: its own value (same computedAt)');

# Z has no SELECT on core.routes: 42501, not one of the copies.
sq_ok($s, 'SET ROLE regress_wm_z');
$m0 = mrow('wm_route_statistics');
($out, $err) = sq($s, "\\set VERBOSITY verbose\n" . 'SELECT wm_route_statistics()::text');
is($out, '', 'Z (no SELECT): no value');
like($err, qr/ERROR:\s+42501:/, 'Z (no SELECT): SQLSTATE 42501');
is( mdelta($m0, mrow('wm_route_statistics')),
	expect(calls => 1, cache_bypasses => 1),
	'Z (no SELECT): a bypass, no local hit');

# Row-level security: X sees every route, Y one territory.  Both hold a copy
# of the full statistics; neither may be served any more.
$node->safe_psql(
	'app', qq{
ALTER TABLE core.routes ENABLE ROW LEVEL SECURITY;
CREATE POLICY wm_x ON core.routes FOR SELECT TO regress_wm_x USING (true);
CREATE POLICY wm_y ON core.routes FOR SELECT TO regress_wm_y
	USING (territory = '$territory');
});
my $routes_y = fresh('wm_route_statistics()', 'plain_route_stats()', 'regress_wm_y');
isnt($routes_y, $routes_all, 'under RLS, Y\'s statistics differ from X\'s');
is( $node->safe_psql('app',
		"SELECT ('$routes_y'::jsonb ->> 'total') = count(*)::text FROM core.routes
		  WHERE deleted_at IS NULL AND territory = '$territory'"),
	't', "under RLS, Y's total is the number of routes of territory $territory");

foreach my $role ('regress_wm_y', 'regress_wm_x')
{
	my $want = $role eq 'regress_wm_y' ? $routes_y : $routes_all;
	sq_ok($s, "SET ROLE $role");
	$m0 = mrow('wm_route_statistics');
	is(sq_ok($s, $route_exact), $want, "$role under RLS, same session: exact");
	is(sq_ok($s, "SELECT plain_route_stats()::text"), $want,
		"$role under RLS: equals plain SQL as $role");
	is( mdelta($m0, mrow('wm_route_statistics')),
		expect(calls => 1, cache_bypasses => 1),
		"$role under RLS: a bypass, its earlier copy is not used");
}
$s->quit;

$node->stop;
stop_redis($redis_pid);
done_testing();
