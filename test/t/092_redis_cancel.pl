# 092_redis_cancel.pl: a cancel (statement_timeout) that interrupts a Redis
# wait drops the connection.  Before the fix the WARNING about the failure
# ran CHECK_FOR_INTERRUPTS() before the connection was dropped: the cancel
# left it open with the unanswered command, and the next call on it read
# that command's reply (another territory's statistic).  Found by a helper
# writing 090_redis_bounds.pl.
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
my $node = redis_node('cancel', $port,
	redis_connect_timeout => "'5s'",
	redis_command_timeout => "'5s'",
	local_cache_size => 0);
load_fixture($node, 'app');
create_plain_functions($node, 'app');
ok(wait_until(sub { metric($node, 'app', 'invalidation', 'invalidations_pending') eq '0' }), 'ready');

my ($t1, $t2) = split /\n/, $node->safe_psql('app',
	q{SELECT territory FROM core.routes WHERE deleted_at IS NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2});
note "territories $t1, $t2";
# T1's value cached in Redis.
$node->safe_psql('app', "SELECT wm_route_statistics('$t1')") for 1 .. 2;

my $s = $node->background_psql('app', on_error_stop => 0);
is($s->query_safe("SELECT wm_route_statistics('$t2') IS NOT NULL"), 't', 'S: connection open');

redis_cli($port, 'CLIENT', 'PAUSE', '1500', 'ALL');
my $out = $s->query("SET statement_timeout = '300ms'; SELECT wm_route_statistics('$t1') IS NOT NULL");
note "S stderr: $s->{stderr}";
like($s->{stderr}, qr/canceling statement due to statement timeout/, 'S: the read was cancelled during the Redis wait');
$s->{stderr} = '';
sleep 2;    # the pause is over: Redis answers the EVAL of T1

$out = $s->query("RESET statement_timeout; SELECT (wm_route_statistics('$t2') - 'computedAt')::text, plain_route_stats('$t2')::text, plain_route_stats('$t1')::text");
note "S stderr: $s->{stderr}";
my ($got, $want, $other) = split /\|/, $out;
note "got   $got\nwant  $want\nT1's  $other";
is($got, $want, "S: wm_route_statistics('$t2') equals plain SQL for $t2");
isnt($got, $other, "S: not the statistic of $t1");
$s->quit;
$node->stop;
stop_redis($redis_pid);
done_testing();
