# 010_cache_redis.pl: the statistics cache against a real redis-server, with
# shared_preload_libraries (DESIGN.md section 5 and 7).
#
#  - a miss stores the value under the documented key with the TTL, then a
#    hit returns the stored value; both equal the plain SQL statistics;
#  - two databases on one Redis never share values;
#  - a committed UPDATE is visible to the next call, a ROLLBACK touches
#    nothing in Redis;
#  - a garbage or corrupt value is a miss and is overwritten;
#  - FLUSHALL gives exact results;
#  - a territory of 1 MB from a role with SELECT leaves no long key and no
#    memory behind; results matching nothing are not stored; an argument of
#    more than 64 bytes is in the key as h<SHA-256>, and hits;
#  - values never cross roles; under row-level security nothing is stored;
#    a role without SELECT gets 42501.
#
# Every expected statistic comes from public.plain_route_stats() /
# public.plain_bin_stats() (WmPerfTest.pm), run in the same session.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Digest::SHA qw(sha256_hex);
use Test::More;
use WmPerfTest;

my $ttl_setting = 600;
my ($redis_pid, $port) = start_redis();

# Timeouts are generous here: this file tests correctness, not outages, and
# a timeout on a busy machine would turn an expected hit into a bypass.
my $node = redis_node('cache_redis', $port,
	redis_connect_timeout => 2000,
	redis_command_timeout => 2000,
	cache_ttl => $ttl_setting);

load_fixture($node, 'app');
load_fixture($node, 'app2');
create_plain_functions($node, 'app');
create_plain_functions($node, 'app2');

my $prefix = wm_cluster_prefix($node);
my $epoch_key = "$prefix:epoch";
my $epoch = wait_for_redis_key($port, $epoch_key, sub { $_[0] =~ /^[1-9]\d*$/ });
like($epoch, qr/^[1-9]\d*$/, 'the worker bumped the epoch key after start');

my %dboid = map {
	$_ => $node->safe_psql($_,
		'SELECT oid FROM pg_database WHERE datname = current_database()')
} qw(app app2);
isnt($dboid{app}, $dboid{app2}, 'the two databases have different oids');
my $su_oid = $node->safe_psql('app',
	'SELECT oid FROM pg_roles WHERE rolname = current_user');
my $run_id = redis_server_ident($port);

sub gen
{
	my ($db, $scope) = @_;
	my $g = redis_cli($port, 'GET', "$prefix:$dboid{$db}:gen:$scope");
	return $g eq '' ? 0 : $g;
}

# The key of a cached value, as stats.c and xact.c (key_cluster) build it.
sub value_key
{
	my ($db, $scope, $fn, $args, $roleoid) = @_;
	my $e = redis_cli($port, 'GET', $epoch_key);
	$e = 0 if $e eq '';
	return wm_value_key($port,
		sprintf('%s:%s:%s:%s:e%s:g%s',
			$prefix, $dboid{$db}, $scope, $run_id, $e, gen($db, $scope)),
		sprintf(':%s:%s:%s:u%s',
			$fn, $args, wm_config_key($node, $db, $scope), $roleoid // $su_oid));
}

# Call a statistics function and its plain SQL twin in one session.
# Returns (full result, result without computedAt, plain SQL result).
sub call_and_plain
{
	my ($db, $call, $plain, @extra) = @_;
	my $out = $node->safe_psql(
		$db,
		"SELECT r::text, (r - 'computedAt')::text, ($plain)::text
		   FROM (SELECT $call AS r) s",
		extra_params => [ '-F', "\x1f", @extra ]);
	return split /\x1f/, $out;
}

# CRC-32C (Castagnoli), as stats.c puts in the "wm1:<crc>:" header.
sub crc32c
{
	my ($data) = @_;
	my $crc = 0xFFFFFFFF;
	foreach my $byte (unpack('C*', $data))
	{
		$crc ^= $byte;
		$crc = ($crc & 1) ? (($crc >> 1) ^ 0x82F63B78) : ($crc >> 1) for 1 .. 8;
	}
	return $crc ^ 0xFFFFFFFF;
}

sub metrics_row
{
	my ($fn) = @_;
	return $node->safe_psql('app',
		"SELECT calls, cache_hits, cache_misses, cache_bypasses, redis_errors
		   FROM wm_perf_metrics WHERE function_name = '$fn'");
}

# ---------------------------------------------------------------------------
# Miss, then hit.
# ---------------------------------------------------------------------------
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my ($first, $first_exact, $plain) =
  call_and_plain('app', 'wm_route_statistics()', 'plain_route_stats()');
is($first_exact, $plain, 'miss: wm_route_statistics() equals plain SQL');

my $key = value_key('app', 'routes', 'routes', 'all');
is(redis_cli($port, 'EXISTS', $key), '1', "value stored under $key");
my $ttl = redis_cli($port, 'TTL', $key);
ok($ttl >= 1 && $ttl <= $ttl_setting,
	"TTL of the value ($ttl) is between 1 and wm_perf.cache_ttl ($ttl_setting)");
my $stored = redis_cli($port, 'GET', $key);
like($stored, qr/^wm1:[0-9a-f]{8}:\{/, 'stored value has the "wm1:<crc>:" format');
(my $stored_json = $stored) =~ s/^wm1:[0-9a-f]{8}://;
is( $node->safe_psql('app',
		"SELECT '$stored_json'::jsonb = '$first'::jsonb"),
	't', 'stored JSON is the value the miss returned');

my ($second, $second_exact) =
  call_and_plain('app', 'wm_route_statistics()', 'plain_route_stats()');
is($second, $first, 'hit: the stored value is returned (same computedAt)');
is($second_exact, $plain, 'hit: equals plain SQL');
is(metrics_row('wm_route_statistics'), '2|1|1|0|0',
	'metrics after a reset: calls 2, hits 1, misses 1, no bypass, no error');

# With arguments: a territory and a customer.
my $territory = $node->safe_psql(
	'app', q{
	SELECT territory FROM core.routes
	 WHERE deleted_at IS NULL AND territory IS NOT NULL
	 GROUP BY territory ORDER BY count(*) DESC, territory COLLATE "C" LIMIT 1});
my $customer = $node->safe_psql(
	'app', q{
	SELECT customer_id FROM core.bins WHERE deleted_at IS NULL
	 GROUP BY customer_id ORDER BY count(*) DESC, customer_id LIMIT 1});
foreach my $round ('miss', 'hit')
{
	my (undef, $got, $want) = call_and_plain('app',
		"wm_route_statistics('$territory')",
		"plain_route_stats('$territory')");
	is($got, $want, "$round: wm_route_statistics('$territory') equals plain SQL");
	(undef, $got, $want) = call_and_plain('app',
		"wm_bin_statistics('$customer')",
		"plain_bin_stats('$customer')");
	is($got, $want, "$round: wm_bin_statistics('$customer') equals plain SQL");
	(undef, $got, $want) =
	  call_and_plain('app', 'wm_bin_statistics()', 'plain_bin_stats()');
	is($got, $want, "$round: wm_bin_statistics() equals plain SQL");
}
is( redis_cli(
		$port, 'EXISTS',
		value_key(
			'app', 'routes', 'routes',
			't' . length($territory) . ":$territory")),
	'1',
	'territory value stored under a length-prefixed argument key');
is( $node->safe_psql('app',
		"SELECT cache_hits, cache_misses FROM wm_perf_metrics
		  WHERE function_name = 'wm_bin_statistics'"),
	'2|2', 'bin statistics: 2 misses then 2 hits');

# ---------------------------------------------------------------------------
# Two databases on one Redis.
# ---------------------------------------------------------------------------
my ($app2_first, $app2_exact, $app2_plain) =
  call_and_plain('app2', 'wm_route_statistics()', 'plain_route_stats()');
is($app2_exact, $app2_plain, 'app2: equals its plain SQL');
my $app2_key = value_key('app2', 'routes', 'routes', 'all');
is(redis_cli($port, 'EXISTS', $app2_key), '1', "app2 value stored under $app2_key");
isnt($app2_key, value_key('app', 'routes', 'routes', 'all'),
	'app and app2 use different value keys');
my @app_keys = wm_keys($port, "$prefix:$dboid{app}:*");
my @app2_keys = wm_keys($port, "$prefix:$dboid{app2}:*");
ok(@app_keys >= 1 && @app2_keys >= 1,
	'each database has its own keys (database oid in every key)');

# ---------------------------------------------------------------------------
# A committed UPDATE: the very next call (same session, right after COMMIT)
# sees it; the other database does not change.
# ---------------------------------------------------------------------------
my $active_route = $node->safe_psql(
	'app', q{
	SELECT id FROM core.routes
	 WHERE deleted_at IS NULL AND status = 'active' ORDER BY id LIMIT 1});
my $gen_before = gen('app', 'routes');
my $gen2_before = gen('app2', 'routes');
my $active_before = $node->safe_psql('app',
	q{SELECT wm_route_statistics()->'byStatus'->>'active'});
my $after_update = $node->safe_psql(
	'app', qq{
UPDATE core.routes SET status = 'archived' WHERE id = '$active_route';
SELECT (wm_route_statistics()->'byStatus'->>'active')
	   || ' ' || (plain_route_stats()->'byStatus'->>'active');
});
my ($active_after, $active_plain) = split / /, $after_update;
is($active_after, $active_plain,
	'right after COMMIT the next call returns the new active count');
is($active_after, $active_before - 1, 'the active count dropped by one');
# The committing backend bumps at commit; the worker, woken by the mark,
# may bump the same mark once more before it sees it cleared (harmless: a
# bump only makes older values unreachable).  Never zero, never more.
my $bumps = gen('app', 'routes') - $gen_before;
ok($bumps == 1 || $bumps == 2, "the routes generation key was incremented (by $bumps: 1, or 2 with the worker)");
my (undef, $got, $want) =
  call_and_plain('app', 'wm_route_statistics()', 'plain_route_stats()');
is($got, $want, 'after the UPDATE: equals plain SQL');

my ($app2_again, $app2_again_exact, $app2_again_plain) =
  call_and_plain('app2', 'wm_route_statistics()', 'plain_route_stats()');
is($app2_again, $app2_first, 'app2 still served its own cached value (same computedAt)');
is($app2_again_exact, $app2_again_plain, 'app2 still equals its plain SQL');
isnt($app2_again_exact, $got, 'app2 differs from app after the change in app');
is(gen('app2', 'routes'), $gen2_before, 'app2 generation untouched');

# ---------------------------------------------------------------------------
# ROLLBACK (and a rolled-back savepoint) change nothing in Redis.
# ---------------------------------------------------------------------------
my ($cached) = call_and_plain('app', 'wm_route_statistics()', 'plain_route_stats()');
my $gen_now = gen('app', 'routes');
my @keys_before = wm_keys($port, '*');
$node->safe_psql(
	'app', qq{
BEGIN;
UPDATE core.routes SET status = 'active' WHERE id = '$active_route';
ROLLBACK;
BEGIN;
SAVEPOINT s;
UPDATE core.routes SET status = 'active' WHERE id = '$active_route';
ROLLBACK TO SAVEPOINT s;
COMMIT;
});
is(gen('app', 'routes'), $gen_now, 'ROLLBACK / ROLLBACK TO SAVEPOINT: generation unchanged');
is_deeply([ wm_keys($port, '*') ], \@keys_before, 'ROLLBACK: no key added or removed');
my ($after_rb, $after_rb_exact, $after_rb_plain) =
  call_and_plain('app', 'wm_route_statistics()', 'plain_route_stats()');
is($after_rb, $cached, 'after ROLLBACK the cached value is still served');
is($after_rb_exact, $after_rb_plain, 'after ROLLBACK: equals plain SQL');

# ---------------------------------------------------------------------------
# Garbage and corrupt values are misses, and get overwritten.
# ---------------------------------------------------------------------------
$key = value_key('app', 'routes', 'routes', 'all');
is(redis_cli($port, 'EXISTS', $key), '1', 'current value key exists before corrupting it');
foreach my $bad ('garbage', 'wm1:00000000:{"total": 1}', 'wm1:')
{
	redis_cli($port, 'SET', $key, $bad);
	$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
	my ($r, $exact, $p) =
	  call_and_plain('app', 'wm_route_statistics()', 'plain_route_stats()');
	is($exact, $p, "value '$bad': the call returns exact results");
	is($node->safe_psql('app',
			"SELECT cache_misses, cache_hits FROM wm_perf_metrics
			  WHERE function_name = 'wm_route_statistics'"),
		'1|0', "value '$bad': counted as a miss");
	like(redis_cli($port, 'GET', $key), qr/^wm1:[0-9a-f]{8}:\{/,
		"value '$bad': key overwritten with a valid wm1: value");
}

# A value whose CRC is right but whose JSON is not (a value written by
# something else under our key, or a deliberate write by anyone who can write
# to Redis) is still garbage: DESIGN.md section 6 wants exact results.
{
	my $current = redis_cli($port, 'GET', $key);
	$current =~ /^wm1:([0-9a-f]{8}):(.*)$/s or die "unexpected value $current";
	is(sprintf('%08x', crc32c($2)), $1,
		'sanity: the test\'s CRC-32C matches the header of a stored value');
	my $bad_json = '{"total": ';
	redis_cli($port, 'SET', $key, sprintf('wm1:%08x:%s', crc32c($bad_json), $bad_json));
	my ($out, $err) = ('', '');
	my $ret = $node->psql(
		'app',
		"SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats()",
		stdout => \$out,
		stderr => \$err);
	is($ret, 0, 'valid CRC, invalid JSON: the call does not fail');
	is($out, 't', 'valid CRC, invalid JSON: the call returns exact results');
	note "stderr: $err" if $err ne '';
	redis_cli($port, 'DEL', $key);
}

# ---------------------------------------------------------------------------
# FLUSHALL: exact results, then the cache fills again.
# ---------------------------------------------------------------------------
redis_cli($port, 'FLUSHALL');
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my ($f1, $f1_exact, $f1_plain) =
  call_and_plain('app', 'wm_route_statistics()', 'plain_route_stats()');
is($f1_exact, $f1_plain, 'after FLUSHALL: equals plain SQL');
my ($f2, $f2_exact, $f2_plain) =
  call_and_plain('app', 'wm_route_statistics()', 'plain_route_stats()');
is($f2_exact, $f2_plain, 'after FLUSHALL, second call: equals plain SQL');
is(metrics_row('wm_route_statistics'), '2|1|1|0|0',
	'after FLUSHALL: one miss, then a hit');

# ---------------------------------------------------------------------------
# What a caller with SELECT can put into Redis.  1.0 put the territory into
# the key as it was and stored every result: each call
# wm_route_statistics(<1 MB of text>) by anyone with SELECT on core.routes
# left a 1 MB key in Redis for wm_perf.cache_ttl.  Now arguments longer than
# 64 bytes are replaced by "h<SHA-256 in hex>" in the key, and a result that
# matches nothing (a territory without routes, a customer without bins) is
# not stored at all.
# ---------------------------------------------------------------------------
$node->safe_psql(
	'app', q{
CREATE ROLE regress_wm_long LOGIN;
GRANT USAGE ON SCHEMA core, operations TO regress_wm_long;
GRANT SELECT ON core.routes TO regress_wm_long;
});
my $long_oid = $node->safe_psql('app',
	"SELECT oid FROM pg_roles WHERE rolname = 'regress_wm_long'");
my @as_long = ('-U', 'regress_wm_long');

sub redis_used_memory
{
	redis_cli($port, 'INFO', 'memory') =~ /^used_memory:(\d+)/m
	  or die 'no used_memory in INFO memory';
	return $1;
}
# The keys of cached values (not the epoch and generation counters, which a
# lookup creates when they are missing).
sub value_keys
{
	return grep { !/:epoch$|:gen:(routes|bins)$/ } wm_keys($port, '*');
}
sub longest_key
{
	my $max = 0;
	foreach (wm_keys($port, '*'))
	{
		$max = length($_) if length($_) > $max;
	}
	return $max;
}

# A 1 MB territory that matches nothing, twice, in two sessions.
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my @keys_before_long = value_keys();
my $mem_before = redis_used_memory();
foreach my $n (1, 2)
{
	is( $node->safe_psql(
			'app',
			"SELECT (wm_route_statistics(repeat('x', 1000000)) - 'computedAt')
			        = plain_route_stats(repeat('x', 1000000))",
			extra_params => \@as_long),
		't',
		"1 MB territory, call $n by a role with SELECT: equals plain SQL");
}
my $mem_growth = redis_used_memory() - $mem_before;
cmp_ok($mem_growth, '<', 200_000,
	"1 MB territory: Redis used_memory grew by $mem_growth bytes, not by the argument");
cmp_ok(longest_key(), '<=', 200, '1 MB territory: no key in Redis is longer than 200 bytes');
is_deeply([ value_keys() ], \@keys_before_long,
	'1 MB territory matching no route: no value stored');
is(metrics_row('wm_route_statistics'), '2|0|2|0|0',
	'1 MB territory: two misses, no hit (nothing was stored)');

# A short territory without routes, and a customer without bins: computed,
# not stored.
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
foreach my $n (1, 2)
{
	my (undef, $got_r, $want_r) = call_and_plain('app',
		"wm_route_statistics('no-such-territory')",
		"plain_route_stats('no-such-territory')");
	is($got_r, $want_r, "territory without routes, call $n: equals plain SQL");
	my (undef, $got_b, $want_b) = call_and_plain('app',
		"wm_bin_statistics('00000000-0000-0000-0000-000000000000')",
		"plain_bin_stats('00000000-0000-0000-0000-000000000000')");
	is($got_b, $want_b, "customer without bins, call $n: equals plain SQL");
}
is_deeply([ value_keys() ], \@keys_before_long,
	'a territory without routes and a customer without bins store no value');
is(metrics_row('wm_route_statistics'), '2|0|2|0|0',
	'territory without routes: two misses, no hit');
is( $node->safe_psql('app',
		"SELECT cache_hits, cache_misses FROM wm_perf_metrics
		  WHERE function_name = 'wm_bin_statistics'"),
	'0|2', 'customer without bins: two misses, no hit');

# Territories that exist: routes.territory is varchar(64), and the key
# argument is "t<length>:<territory>", so a territory of 60 characters is an
# argument of 64 bytes (in the key as it is) and one of 61 or more is hashed.
my %terr = (
	60 => 'B' x 59 . '0',
	64 => 'L' x 63 . '4');
foreach my $len (sort keys %terr)
{
	$node->safe_psql(
		'app', qq{
INSERT INTO core.routes (id, route_number, route_name, territory, route_type,
	service_day, status, estimated_duration_minutes, estimated_distance_miles,
	ai_optimized, optimization_score, created_at, updated_at)
VALUES (gen_random_uuid(), 'R-LONG-$len', 'long territory $len', '$terr{$len}',
	'mixed', 'monday', 'active', 30, 5.5, true, 70, now(), now());
});
}
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
foreach my $round ('miss', 'hit')
{
	foreach my $len (sort keys %terr)
	{
		my (undef, $got_t, $want_t) = call_and_plain('app',
			"wm_route_statistics('$terr{$len}')",
			"plain_route_stats('$terr{$len}')", @as_long);
		is($got_t, $want_t, "$round: territory of $len characters equals plain SQL");
	}
}
is(metrics_row('wm_route_statistics'), '4|2|2|0|0',
	'existing territories: a miss, then a hit (from Redis: a new session) each');
like($node->safe_psql('app', "SELECT plain_route_stats('$terr{64}')->>'total'"),
	qr/^1$/, 'the territory of 64 characters has its one route');
my $hashed = 'h' . sha256_hex("t64:$terr{64}");
my $hashed_key = value_key('app', 'routes', 'routes', $hashed, $long_oid);
is(redis_cli($port, 'EXISTS', $hashed_key), '1',
	'territory of 64 characters: value stored under h<SHA-256 of "t64:<territory>">');
cmp_ok(length($hashed_key), '<=', 240, 'the hashed key is at most 240 bytes long');
is( scalar(grep { index($_, $terr{64}) >= 0 } wm_keys($port, '*')),
	0, 'the territory of 64 characters appears in no key');
is( redis_cli(
		$port, 'EXISTS',
		value_key('app', 'routes', 'routes', "t60:$terr{60}", $long_oid)),
	'1',
	'territory of 60 characters (an argument of 64 bytes): in the key as it is');
$node->safe_psql('app', "DELETE FROM core.routes WHERE route_number LIKE 'R-LONG-%'");

# ---------------------------------------------------------------------------
# Roles and row-level security.
# ---------------------------------------------------------------------------
$node->safe_psql(
	'app', q{
CREATE ROLE regress_wm_a LOGIN;
CREATE ROLE regress_wm_b LOGIN;
CREATE ROLE regress_wm_c LOGIN;
GRANT USAGE ON SCHEMA core, operations TO regress_wm_a, regress_wm_b, regress_wm_c;
GRANT SELECT ON core.routes TO regress_wm_a, regress_wm_b;
});
my %role_oid = map {
	$_ => $node->safe_psql('app', "SELECT oid FROM pg_roles WHERE rolname = '$_'")
} qw(regress_wm_a regress_wm_b);

# Without RLS: every role gets its own key.
foreach my $role (qw(regress_wm_a regress_wm_b))
{
	my (undef, $exact, $p) = call_and_plain('app', 'wm_route_statistics()',
		'plain_route_stats()', '-U', $role);
	is($exact, $p, "$role without RLS: equals plain SQL");
	is( redis_cli(
			$port, 'EXISTS',
			value_key('app', 'routes', 'routes', 'all', $role_oid{$role})),
		'1',
		"$role without RLS: value stored under its own role oid");
}

# A role without SELECT gets 42501, even though values are cached for others.
my ($state) = psql_sqlstate($node, 'app', 'SELECT wm_route_statistics()',
	extra_params => [ '-U', 'regress_wm_c' ]);
is($state, '42501', 'role without SELECT on core.routes: SQLSTATE 42501');
($state) = psql_sqlstate($node, 'app', 'SELECT wm_bin_statistics()',
	extra_params => [ '-U', 'regress_wm_c' ]);
is($state, '42501', 'role without SELECT on core.bins: SQLSTATE 42501');

$node->safe_psql(
	'app', qq{
ALTER TABLE core.routes ENABLE ROW LEVEL SECURITY;
CREATE POLICY wm_a ON core.routes FOR SELECT TO regress_wm_a
	USING (territory = '$territory');
CREATE POLICY wm_b ON core.routes FOR SELECT TO regress_wm_b USING (true);
});
my %want_total = (
	regress_wm_a => $node->safe_psql(
		'app',
		"SELECT count(*) FROM core.routes
		  WHERE deleted_at IS NULL AND territory = '$territory'"),
	regress_wm_b => $node->safe_psql(
		'app', 'SELECT count(*) FROM core.routes WHERE deleted_at IS NULL'));
isnt($want_total{regress_wm_a}, $want_total{regress_wm_b},
	'the two policies give different totals');

$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my @keys_before_rls = wm_keys($port, '*');
my $rls_calls = 0;
foreach my $role (qw(regress_wm_a regress_wm_b regress_wm_a regress_wm_b))
{
	my $out = $node->safe_psql(
		'app', q{
SELECT wm_route_statistics()->>'total';
SELECT wm_route_statistics()->>'total';
SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats();
},
		extra_params => [ '-U', $role ]);
	$rls_calls += 3;
	is( $out,
		"$want_total{$role}\n$want_total{$role}\nt",
		"$role under RLS: its own total ($want_total{$role}) on repeated calls, equal to plain SQL"
	);
}
is_deeply([ wm_keys($port, '*') ], \@keys_before_rls,
	'under RLS nothing is stored in Redis');
is(metrics_row('wm_route_statistics'), "$rls_calls|0|0|$rls_calls|0",
	'under RLS every call is a bypass (no hit, no miss)');
($state) = psql_sqlstate($node, 'app', 'SELECT wm_route_statistics()',
	extra_params => [ '-U', 'regress_wm_c' ]);
is($state, '42501', 'under RLS, role without SELECT: SQLSTATE 42501');

$node->stop;
stop_redis($redis_pid);
done_testing();
