# 030_crash_restart.pl: an invalidation lost with a crash must not let a
# stale value be served after the restart (DESIGN.md sections 5 and 6).
#
# A commit that cannot reach Redis marks its scopes dirty in shared memory;
# a crash (immediate stop) loses that memory.  The protection is the worker:
# after every start of the shared memory segment it bumps the global epoch
# key, and readers bypass the cache until it has done so.
#
# Simulating the stale cache: Redis is killed before the UPDATE (so the
# commit cannot deliver), then PostgreSQL is stopped in immediate mode.  A
# fresh Redis on the same port gets back the old epoch and generation values
# and the old cached value.  A restarted Redis has a new run_id, which alone
# would hide the old value; so the old value is stored under the NEW server
# identity, which is what a Redis that kept running (same run_id, keys
# intact) behind a network failure would hold.  Two things stand between
# that value and a reader: the epoch bump, and the key's tag, which names
# the old shared memory segment (the restarted server has another one).

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WmPerfTest;

my ($redis_pid, $port) = start_redis();
# A port nothing listens on (reserved, never bound).

my $node = redis_node('crash_restart', $port,
	redis_connect_timeout => '1000ms',
	redis_command_timeout => '1000ms',
	redis_backoff => '200ms');

load_fixture($node, 'app');
create_plain_functions($node, 'app');

my $prefix = wm_cluster_prefix($node);
my $epoch_key = "$prefix:epoch";
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');
my $su_oid = $node->safe_psql('app',
	'SELECT oid FROM pg_roles WHERE rolname = current_user');
my $gen_key = "$prefix:$dboid:gen:routes";

# Returns (full result, result without computedAt, plain SQL), one session.
sub call_and_plain
{
	my (@extra) = @_;
	my $out = $node->safe_psql(
		'app',
		"SELECT r::text, (r - 'computedAt')::text, plain_route_stats()::text
		   FROM (SELECT wm_route_statistics() AS r) s",
		extra_params => [ '-F', "\x1f", @extra ]);
	return split /\x1f/, $out;
}

sub route_metrics
{
	return $node->safe_psql('app',
		"SELECT cache_hits, cache_misses, cache_bypasses FROM wm_perf_metrics
		  WHERE function_name = 'wm_route_statistics'");
}

my $epoch = wait_for_redis_key($port, $epoch_key, sub { $_[0] =~ /^[1-9]/ });
like($epoch, qr/^[1-9]\d*$/, "the worker bumped the epoch after the first start ($epoch)");

# ---------------------------------------------------------------------------
# Prime the cache and keep a copy of what Redis holds.
# ---------------------------------------------------------------------------
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my ($primed, $primed_exact, $primed_plain) = call_and_plain();
is($primed_exact, $primed_plain, 'primed: equals plain SQL');
my ($hit) = call_and_plain();
is($hit, $primed, 'primed: second call returns the stored value');
is(route_metrics(), '1|1|0', 'primed: one miss, one hit');

my $gen = redis_cli($port, 'GET', $gen_key);
$gen = 0 if $gen eq '';
my $ckey = wm_config_key($node, 'app', 'routes');
my $old_ident = redis_server_ident($port);
my $old_value_key = wm_value_key($port,
	sprintf('%s:%s:routes:%s:e%s:g%s', $prefix, $dboid, $old_ident, $epoch, $gen),
	sprintf(':routes:all:%s:u%s', $ckey, $su_oid));
my $old_value = redis_cli($port, 'GET', $old_value_key);
like($old_value, qr/^wm1:[0-9a-f]{8}:\{/, "cached value found under $old_value_key");

# ---------------------------------------------------------------------------
# Commit a change Redis never hears of, then crash.
# ---------------------------------------------------------------------------
stop_redis($redis_pid);
my $route = $node->safe_psql(
	'app', q{
	SELECT id FROM core.routes
	 WHERE deleted_at IS NULL AND status = 'active' ORDER BY id LIMIT 1});
$node->safe_psql('app',
	"UPDATE core.routes SET status = 'archived' WHERE id = '$route'");
my $failed = $node->safe_psql('app',
	"SELECT invalidations_failed FROM wm_perf_metrics WHERE function_name = 'invalidation'");
cmp_ok($failed, '>', 0, 'the commit could not deliver its invalidation');
my $new_plain = $node->safe_psql('app', 'SELECT plain_route_stats()::text');
isnt($new_plain, $primed_exact, 'the UPDATE changed the route statistics');

$node->stop('immediate');

# Redis comes back with the stale state under its new run_id.
($redis_pid) = start_redis(port => $port);
my $ident = redis_server_ident($port);
(my $stale_key = $old_value_key) =~ s/\Q:$old_ident:\E/:$ident:/;
isnt($stale_key, $old_value_key, 'the stale key names the new Redis server');
redis_cli($port, 'SET', $epoch_key, $epoch);
redis_cli($port, 'SET', $gen_key, $gen);
redis_cli($port, 'SET', $stale_key, $old_value, 'EX', '900');
is(redis_cli($port, 'GET', $stale_key), $old_value,
	"stale value planted under the current version ($stale_key)");

# ---------------------------------------------------------------------------
# Restart with Redis reachable.  Readers bypass the cache until the worker
# has bumped the epoch, and afterwards every old value is unreachable:
# either way the planted value is never served.
# ---------------------------------------------------------------------------
$node->start;
my $out = $node->safe_psql(
	'app', qq{
SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats();
SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats();
SELECT wm_route_statistics()->'byStatus'->>'active';
});
my $active_plain = $node->safe_psql('app',
	q{SELECT plain_route_stats()->'byStatus'->>'active'});
is($out, "t\nt\n$active_plain",
	'after the crash: reads are exact, never the planted value');

# The worker bumps the epoch once after the start.
my $bumped = wait_for_redis_key($port, $epoch_key, sub { $_[0] eq $epoch + 1 });
is($bumped, $epoch + 1, 'within 10 s the worker bumped the epoch key by one');

$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my ($r1, $r1_exact, $r1_plain) = call_and_plain();
is($r1_exact, $r1_plain, 'after the epoch bump: first read is exact');
my ($r2, $r2_exact, $r2_plain) = call_and_plain();
is($r2_exact, $r2_plain, 'after the epoch bump: second read is exact');
is($r2, $r1, 'after the epoch bump: second read is a hit of the new value');
# The three reads above may have run before the bump (bypassed) or after it
# (the first one stored the new value): then this is a miss and a hit, or
# two hits.  Never a bypass.
like(route_metrics(), qr/^(?:1\|1|2\|0)\|0$/, 'after the epoch bump: the cache is used again');

# ---------------------------------------------------------------------------
# Every start bumps the epoch again: a second crash with Redis reachable.
# ---------------------------------------------------------------------------
$epoch = $bumped;
$node->stop('immediate');
$node->start;
my ($c1, $c1_exact, $c1_plain) = call_and_plain();
is($c1_exact, $c1_plain, 'second crash: the first read after restart is exact');
$bumped = wait_for_redis_key($port, $epoch_key, sub { $_[0] eq $epoch + 1 });
is($bumped, $epoch + 1, 'second crash: the worker bumped the epoch again');
call_and_plain();
my ($c2, $c2_exact, $c2_plain) = call_and_plain();
is($c2_exact, $c2_plain, 'second crash: reads stay exact');
my ($hits) = split /\|/, route_metrics();
cmp_ok($hits, '>=', 1, 'second crash: the cache serves hits again');

$node->stop;
stop_redis($redis_pid);
done_testing();
