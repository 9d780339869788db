# 080_quiet_commits.pl: with shared_preload_libraries, a commit after which
# nothing can be cached under a scope's current Redis generation needs no
# bump (src/shmem.c wm_shmem_mark_dirty, docs/architecture.md "Quiet
# scopes").
#
#  1. a commit that follows a store is delivered: the worker INCRs the
#     generation once;
#  2. a commit with no store since that bump is quiet: nothing pending at
#     once, Redis receives no command, the generation stays, and the next
#     read is a miss that computes the committed state (never the old value);
#  3. a store makes the next commit bump again;
#  4. wm_cache_flush() bumps even a quiet scope; a flush in a rolled-back
#     savepoint does not force anything;
#  5. the other scope (routes) is quiet or not on its own.
#
# Nothing here waits a fixed time: "nothing happened" is checked after a
# flush of the other scope has been delivered (the worker delivers every
# dirty scope in one pass).
#
# (That a reader computing while a quiet commit lands does not store its
# value is the isolation spec invalidation_race, first permutation.)
#
# Every expected value is computed with wm_perf.cache_enabled = off and
# checked against the plain SQL twin (WmPerfTest.pm), without computedAt.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WmPerfTest;

my ($redis_pid, $port) = start_redis();

my $node = redis_node('quiet_commits', $port,
	redis_connect_timeout => 2000,
	redis_command_timeout => 2000,
	cache_ttl => 600);

load_fixture($node, 'app');
create_plain_functions($node, 'app');

my $prefix = wm_cluster_prefix($node);
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');
my $bins_gen_key = "$prefix:$dboid:gen:bins";
my $routes_gen_key = "$prefix:$dboid:gen:routes";

sub pending { return metric($node, 'app', 'invalidation', 'invalidations_pending'); }
sub inv { return metric($node, 'app', 'invalidation', $_[0]); }
sub gen { return redis_cli($port, 'GET', $_[0]); }

# Counters of wm_bin_statistics, as "calls=.. hits=.. misses=.. bypasses=..".
sub bin_counters
{
	return $node->safe_psql('app',
		q{SELECT format('calls=%s hits=%s misses=%s bypasses=%s', calls,
						cache_hits, cache_misses, cache_bypasses)
			FROM wm_perf_metrics WHERE function_name = 'wm_bin_statistics'});
}

# The global bin statistics read through the cache (a new session: no
# local copy), and computed afresh with the cache off and by plain SQL.
sub read_bins
{
	return $node->safe_psql('app', q{SELECT (wm_bin_statistics() - 'computedAt')::text});
}

sub fresh_bins
{
	my $out = $node->safe_psql(
		'app', q{SET wm_perf.cache_enabled = off;
		SELECT (wm_bin_statistics() - 'computedAt')::text, (plain_bin_stats())::text},
		extra_params => [ '-F', "\x1f" ]);
	my ($got, $want) = split /\x1f/, $out;
	die "cache off ($got) differs from plain SQL ($want)" if $got ne $want;
	return $got;
}

# Soft-delete one more live bin: "total" drops by one, so every state of
# the statistics is different from every earlier one.
my $bin_update = q{UPDATE core.bins SET deleted_at = now(), updated_at = now()
	WHERE id = (SELECT id FROM core.bins WHERE deleted_at IS NULL ORDER BY id LIMIT 1)};
sub bin_update { $node->safe_psql('app', $bin_update); }

ok(wait_until(sub { redis_cli($port, 'GET', "$prefix:epoch") =~ /^[1-9]/ && pending() eq '0' }),
	'the worker bumped the epoch after start, nothing pending');

# ---------------------------------------------------------------------------
# 1. A store, then a commit: bumped.
# ---------------------------------------------------------------------------
my $v0 = fresh_bins();
my $c0 = bin_counters();
is(read_bins(), $v0, 'first read: exact');
like(bin_counters(), qr/misses=1 bypasses=1$/, 'first read was a miss (stored)');
my $g0 = gen($bins_gen_key);
my $delivered0 = inv('invalidations_delivered');

bin_update();
ok(wait_until(sub { pending() eq '0' }), 'commit after a store: delivered');
is(gen($bins_gen_key), $g0 + 1, 'commit after a store: the bins generation was INCRed once');
my $v1 = fresh_bins();
isnt($v1, $v0, 'the UPDATE changed the bin statistics');

# ---------------------------------------------------------------------------
# 2. No store since that bump: the next commit is quiet.
# ---------------------------------------------------------------------------
my $delivered1 = inv('invalidations_delivered');
my $r0 = redis_calls($port);
bin_update();
is(pending(), '0', 'quiet commit: nothing pending, at once');
is(redis_diff($r0, redis_calls($port)), '', 'quiet commit: Redis received no command');
is(inv('invalidations_delivered'), $delivered1 + 1,
	'quiet commit: counted as delivered (nothing to reach in Redis)');
my $v2 = fresh_bins();
isnt($v2, $v1, 'the second UPDATE changed the bin statistics');
bin_update();
my $v3 = fresh_bins();
is(redis_diff($r0, redis_calls($port)), '', 'a second quiet commit: still no command');
# A barrier: a flush of routes is never quiet; the worker's pass that
# delivers it delivers every scope marked dirty before it.  So if the quiet
# commits had marked bins, the bins bump has been sent too once nothing is
# pending.
$node->safe_psql('app', q{SELECT wm_cache_flush('routes')});
ok(wait_until(sub { pending() eq '0' }), 'a flush of routes: delivered');
is(redis_calls($port)->{eval} - ($r0->{eval} // 0), 1,
	'Redis ran one script since the quiet commits: the routes bump');
is(gen($bins_gen_key), $g0 + 1, 'quiet commits: the bins generation is unchanged');

my $c1 = bin_counters();
is(read_bins(), $v3, 'read after quiet commits: the committed state');
my $c2 = bin_counters();
is(read_bins(), $v3, 'second read: the same');
my $c3 = bin_counters();
my ($calls1, $hits1, $misses1) = $c1 =~ /calls=(\d+) hits=(\d+) misses=(\d+)/;
is( $c2, sprintf('calls=%d hits=%d misses=%d bypasses=%s',
		$calls1 + 1, $hits1, $misses1 + 1, ($c1 =~ /bypasses=(\d+)/)[0]),
	'read after quiet commits: a miss (it computed, nothing old was served)');
is( $c3, sprintf('calls=%d hits=%d misses=%d bypasses=%s',
		$calls1 + 2, $hits1 + 1, $misses1 + 1, ($c1 =~ /bypasses=(\d+)/)[0]),
	'second read: a Redis hit of the value just stored');

# ---------------------------------------------------------------------------
# 3. That store makes the next commit bump again.
# ---------------------------------------------------------------------------
bin_update();
ok(wait_until(sub { pending() eq '0' }), 'commit after a new store: delivered');
is(gen($bins_gen_key), $g0 + 2, 'commit after a new store: INCRed once more');
my $v4 = fresh_bins();
is(read_bins(), $v4, 'read after it: the committed state');

# ---------------------------------------------------------------------------
# 4. wm_cache_flush() always bumps; a rolled-back one forces nothing.
# ---------------------------------------------------------------------------
bin_update();    # after the store of the read above: bumps
ok(wait_until(sub { pending() eq '0' && gen($bins_gen_key) == $g0 + 3 }),
	'commit after the store: INCRed (generation + 3)');
$node->safe_psql('app', q{SELECT wm_cache_flush('bins')});
ok(wait_until(sub { pending() eq '0' && gen($bins_gen_key) == $g0 + 4 }),
	'wm_cache_flush(\'bins\') with nothing stored: still INCRed (generation + 4)');
$node->safe_psql('app', q{SELECT wm_cache_flush()});
ok(wait_until(sub { pending() eq '0' && gen($bins_gen_key) == $g0 + 5 }),
	'wm_cache_flush() with nothing stored: bins INCRed (generation + 5)');

$r0 = redis_calls($port);
$node->safe_psql(
	'app', qq{
BEGIN;
$bin_update;
SAVEPOINT s;
SELECT wm_cache_flush('bins');
ROLLBACK TO SAVEPOINT s;
COMMIT;
});
is(pending(), '0', 'flush rolled back to a savepoint, UPDATE committed: quiet, nothing pending');
is(redis_diff($r0, redis_calls($port)), '', '... and Redis received no command');
is(gen($bins_gen_key), $g0 + 5, '... and the generation is unchanged');
is(read_bins(), fresh_bins(), 'read after it: the committed state');

# ---------------------------------------------------------------------------
# 5. Scopes are separate: a routes store does not make bins commits bump.
# ---------------------------------------------------------------------------
my $routes_exact = q{SELECT (wm_route_statistics() - 'computedAt')::text};
$node->safe_psql('app', $routes_exact);    # a routes store
my $gr = gen($routes_gen_key);
bin_update();    # bins: a store (the read above) since the last bump
ok(wait_until(sub { pending() eq '0' && gen($bins_gen_key) == $g0 + 6 }),
	'bins commit after a bins store: INCRed (generation + 6)');
$r0 = redis_calls($port);
bin_update();
is(redis_diff($r0, redis_calls($port)), '',
	'bins commit with only a routes store since: quiet, no command');
is(gen($routes_gen_key), $gr, 'the routes generation untouched by bins commits');

my $route = $node->safe_psql('app',
	q{SELECT id FROM core.routes WHERE deleted_at IS NULL ORDER BY id LIMIT 1});
$node->safe_psql('app',
	"UPDATE core.routes SET status = CASE WHEN status = 'active' THEN 'archived'
	   ELSE 'active' END::core.enum_routes_status WHERE id = '$route'");
ok(wait_until(sub { pending() eq '0' && gen($routes_gen_key) == $gr + 1 }),
	'routes commit after a routes store: INCRed once');
my $routes_fresh = $node->safe_psql(
	'app', q{SET wm_perf.cache_enabled = off;
	SELECT (wm_route_statistics() - 'computedAt')::text});
is($node->safe_psql('app', $routes_exact), $routes_fresh, 'routes read after it: the committed state');
is($node->safe_psql('app', 'SELECT (plain_route_stats())::text'), $routes_fresh,
	'... which is the plain SQL result');

$node->stop;
stop_redis($redis_pid);
done_testing();
