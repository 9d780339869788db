# 075_redis_toggle.pl: a commit made while this backend has no Redis
# configured must never leave a stale value readable once Redis is back,
# even when the worker does not see the period without Redis: either it
# is blocked in a Redis call while the setting goes off and on again (both
# reloads are handled at once), or it is restarted during that period.
# The commit itself demands a new epoch (xact.c, deliver()).

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
my $node = redis_node('toggle', $port,
	redis_connect_timeout => 5000,
	redis_command_timeout => 5000,
	redis_backoff => '100ms');
load_fixture($node, 'app');
create_plain_functions($node, 'app');

sub pending { return metric($node, 'app', 'invalidation', 'invalidations_pending'); }

sub worker_pids
{
	return map { /^\s*(\d+)/ ? $1 : () }
	  grep { /wm_perf worker/ } split /\n/,
	  `ps -o pid=,args= --ppid $node->{_pid}`;
}

ok(wait_until(sub { pending() eq '0' }), 'attach invalidation delivered');
my $c = $node->safe_psql('app',
	q{SELECT customer_id FROM core.bins GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1});
my $exact = "SELECT (wm_bin_statistics('$c') - 'computedAt')::text, plain_bin_stats('$c')::text";
my $upd = "UPDATE core.bins SET fill_level_percent = (coalesce(fill_level_percent, 0) + 7) % 101"
  . " WHERE customer_id = '$c'";

for my $mode ('worker blocked in Redis', 'worker restarted')
{
	# A value in Redis under the current generation.
	$node->safe_psql('app', $exact);
	my $misses = metric($node, 'app', 'wm_bin_statistics', 'cache_misses');
	$node->safe_psql('app', $exact);
	is(metric($node, 'app', 'wm_bin_statistics', 'cache_misses'),
		$misses, "$mode: the value is cached");

	if ($mode eq 'worker restarted')
	{
		my @w = worker_pids();
		is(scalar(@w), 1, "$mode: one worker");
		kill 'TERM', $w[0];
	}
	else
	{
		# Give the worker work, and block it in a Redis call.
		redis_cli($port, 'CLIENT', 'PAUSE', '3000', 'ALL');
		$node->safe_psql('app', "SELECT wm_cache_flush('routes')");
		usleep(200_000);
	}
	$node->safe_psql('postgres', "ALTER SYSTEM SET wm_perf.redis_host = ''");
	$node->reload;
	ok(wait_until(sub { $node->safe_psql('app', 'SHOW wm_perf.redis_host') eq '' }),
		"$mode: Redis off for new sessions");
	is($node->safe_psql('app', "SHOW wm_perf.redis_host; $upd"),
		'', "$mode: a writer without Redis committed");
	$node->safe_psql('postgres', 'ALTER SYSTEM RESET wm_perf.redis_host');
	$node->reload;
	ok( wait_until(
			sub { $node->safe_psql('app', 'SHOW wm_perf.redis_host') eq '127.0.0.1' }),
		"$mode: Redis on again");
	ok(wait_until(sub { scalar(worker_pids()) == 1 && pending() eq '0' }),
		"$mode: worker running, nothing pending");
	my ($got, $want) = split /\|/, $node->safe_psql('app', $exact);
	is($got, $want, "$mode: the next read is exact, not the value from before the commit");
}

$node->stop;
done_testing();
