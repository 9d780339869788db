# 020_redis_down.pl: Redis down, restarted empty, and hung (DESIGN.md
# section 6), with shared_preload_libraries.
#
#  - Redis killed: writes and commits never fail, warnings are rate-limited
#    and carry 08001/08006, undelivered invalidations are counted, reads are
#    exact;
#  - Redis restarted on the same port, empty: the worker delivers the
#    pending invalidations, reads are exact and hits come back;
#  - Redis hung (CLIENT PAUSE): a COMMIT returns within the command timeout
#    (a generous bound, not a benchmark), on an open connection and on a new
#    one, and the next read is exact.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use WmPerfTest;

my ($redis_pid, $port) = start_redis();

my $node = redis_node('redis_down', $port,
	redis_connect_timeout => '100ms',
	redis_command_timeout => '100ms',
	redis_backoff => '500ms');

load_fixture($node, 'app');
create_plain_functions($node, 'app');
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');
my $prefix = wm_cluster_prefix($node);
my $bins_gen_key = "$prefix:$dboid:gen:bins";

like(wait_for_redis_key($port, "$prefix:epoch", sub { $_[0] =~ /^[1-9]/ }),
	qr/^[1-9]/, 'the worker bumped the epoch key after start');

# Call a statistics function and its plain SQL twin in one session.
# Returns (result without computedAt, plain SQL result).
sub exact_pair
{
	my ($fn) = @_;
	my $plain = $fn eq 'bin' ? 'plain_bin_stats()' : 'plain_route_stats()';
	my $out = $node->safe_psql('app',
		"SELECT (wm_${fn}_statistics() - 'computedAt')::text, ($plain)::text",
		extra_params => [ '-F', "\x1f" ]);
	return split /\x1f/, $out;
}

sub metric_values
{
	my ($fn, @cols) = @_;
	return split /\|/,
	  $node->safe_psql('app',
		'SELECT ' . join(', ', @cols) . " FROM wm_perf_metrics WHERE function_name = '$fn'");
}

# Prime the cache.
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my ($primed, $primed_plain) = exact_pair('bin');
is($primed, $primed_plain, 'primed: wm_bin_statistics() equals plain SQL');
my ($got, $want) = exact_pair('bin');
is($got, $want, 'primed, second call: equals plain SQL');
my ($hits) = metric_values('wm_bin_statistics', 'cache_hits');
is($hits, 1, 'the cache is primed (one hit)');

# ---------------------------------------------------------------------------
# Redis down.
# ---------------------------------------------------------------------------
stop_redis($redis_pid);
is(redis_cli($port, 'PING'), '', 'redis-server is gone');
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');

my @ids = split /\n/,
  $node->safe_psql('app', 'SELECT id FROM core.bins ORDER BY id LIMIT 50');
is(scalar(@ids), 50, '50 bins to update');
my $marker = '2001-02-03 04:05:06+00';
# Spread over ~1.5 s, i.e. over several wm_perf.redis_backoff intervals, so
# that the backend retries (and fails) more than once: the warnings must
# still be rate-limited.
my $script = join(
	'',
	map {
		"UPDATE core.bins SET fill_level_percent = (coalesce(fill_level_percent, 0) + 7) % 101,"
		  . " updated_at = '$marker' WHERE id = '$_';\n"
		  . "SELECT pg_sleep(0.03);\n"
	} @ids);
my ($stdout, $stderr) = ('', '');
my $t0 = time();
my $rc = $node->psql(
	'app', $script,
	stdout => \$stdout,
	stderr => \$stderr,
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
my $elapsed = time() - $t0;
is($rc, 0, '50 UPDATE transactions with Redis down: psql succeeds');
note sprintf('50 commits took %.3f s', $elapsed);
is( $node->safe_psql('app',
		"SELECT count(*) FROM core.bins WHERE updated_at = '$marker'"),
	'50', 'all 50 UPDATEs committed');
# psql prefixes each message with "psql:<stdin>:N: ".
my @warnings = $stderr =~ /^(?:psql:\S+:\d+: )?(WARNING:.*wm_perf could not.*)$/mg;
note "warning: $_" foreach @warnings;
# With shared_preload_libraries a commit only marks its scopes dirty in
# shared memory; the worker talks to Redis.  So the writing session sees no
# warning at all, and the worker's rate-limited warnings go to the server log.
is(scalar(@warnings), 0,
	'with preload, commits do not contact Redis: no warning in the writing session');
my @worker_warnings = slurp_file($node->logfile) =~ /(wm_perf could not \S+ (?:to )?Redis)/g;
ok(@worker_warnings >= 1 && @worker_warnings <= 5,
	'the worker warned in the server log, rate-limited: ' . scalar(@worker_warnings));
is(scalar(grep { !/^WARNING:\s+080(01|06): / } @warnings),
	0, 'every warning carries SQLSTATE 08001 or 08006');
unlike($stderr, qr/ERROR/, 'no ERROR in the session');
my ($failed) = metric_values('invalidation', 'invalidations_failed');
cmp_ok($failed, '>', 0, "invalidations_failed > 0 ($failed)");

# Reads during the outage are exact (and not the primed value).
($got, $want) = exact_pair('bin');
is($got, $want, 'during the outage: wm_bin_statistics() equals plain SQL');
isnt($want, $primed, 'the statistics did change (the primed value is stale)');
($got, $want) = exact_pair('route');
is($got, $want, 'during the outage: wm_route_statistics() equals plain SQL');
my ($outage_hits) = metric_values('wm_bin_statistics', 'cache_hits');
is($outage_hits, 0, 'no hit during the outage');

# ---------------------------------------------------------------------------
# Redis back on the same port, empty (no persistence).
# ---------------------------------------------------------------------------
($redis_pid) = start_redis(port => $port);
is(redis_cli($port, 'DBSIZE'), '0', 'restarted Redis is empty');
my $gen = wait_for_redis_key($port, $bins_gen_key, sub { $_[0] ne '' });
isnt($gen, '', 'within 10 s the worker delivered the pending bins invalidation');
my ($retried) = metric_values('invalidation', 'invalidations_retried');
cmp_ok($retried, '>', 0, "invalidations_retried > 0 ($retried)");

$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
($got, $want) = exact_pair('bin');
is($got, $want, 'after the restart: equals plain SQL (miss)');
($got, $want) = exact_pair('bin');
is($got, $want, 'after the restart: equals plain SQL (hit)');
is(join('|', metric_values('wm_bin_statistics', 'cache_misses', 'cache_hits')),
	'1|1', 'after the restart: a miss, then a hit again');

# ---------------------------------------------------------------------------
# Redis hung.
# ---------------------------------------------------------------------------
my $cli = redis_cli_bin();
my $pause = "$cli -h 127.0.0.1 -p $port CLIENT PAUSE 2000 ALL >/dev/null";

# (a) On a connection this backend already has open: the INCR times out.
my $id = $ids[0];
my $out = $node->safe_psql(
	'app', qq{
SELECT wm_bin_statistics() IS NOT NULL;
\\! $pause
SELECT clock_timestamp() AS t0 \\gset
BEGIN;
UPDATE core.bins SET fill_level_percent = (coalesce(fill_level_percent, 0) + 7) % 101 WHERE id = '$id';
COMMIT;
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz);
SELECT (wm_bin_statistics() - 'computedAt') = plain_bin_stats();
});
my (undef, $commit_secs, $exact) = split /\n/, $out;
cmp_ok($commit_secs, '<', 1.5,
	"Redis paused, open connection: UPDATE + COMMIT took $commit_secs s (< 1.5 s)");
is($exact, 't', 'Redis paused, open connection: the next read is exact');
redis_cli($port, 'CLIENT', 'UNPAUSE');

# (b) A new backend, whose handshake with the paused server times out.
system($pause) == 0 or die "CLIENT PAUSE failed";
$t0 = time();
$node->safe_psql('app',
	"UPDATE core.bins SET fill_level_percent = (coalesce(fill_level_percent, 0) + 7) % 101 WHERE id = '$id'"
);
$elapsed = time() - $t0;
cmp_ok($elapsed, '<', 1.5,
	sprintf('Redis paused, new session: UPDATE (autocommit) returned in %.3f s (< 1.5 s)', $elapsed));
($got, $want) = exact_pair('bin');
is($got, $want, 'Redis paused, new session: the next read is exact');
redis_cli($port, 'CLIENT', 'UNPAUSE');

# Once the worker has delivered, the cache is used again.
my ($ok, $all_exact) = (0, 1);
my $deadline = time() + 10;
while (time() < $deadline)
{
	$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
	my ($g1, $w1) = exact_pair('bin');
	($got, $want) = exact_pair('bin');
	$all_exact = 0 if $g1 ne $w1 || $got ne $want;
	my ($h) = metric_values('wm_bin_statistics', 'cache_hits');
	if ($h >= 1)
	{
		$ok = 1;
		last;
	}
	usleep(100_000);
}
ok($ok, 'after the pause: within 10 s the cache serves hits again');
ok($all_exact, 'after the pause: every read while waiting was exact');

$node->stop;
stop_redis($redis_pid);
done_testing();
