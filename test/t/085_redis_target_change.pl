# 085_redis_target_change.pl: a reload that changes the Redis target reaches
# the processes one by one.  A process whose target is not the one the
# worker published in shared memory (worker_target, src/shmem.c) bypasses
# the cache: it neither reads nor stores there, does not deliver a dirty
# scope's bump (so it cannot clear the shared mark), and its commits leave
# their exact application keys to the worker, which deletes them on its own
# target (src/cache.c cache_usable, src/xact.c deliver).
#
# Two Redis servers, A and B; only wm_perf.redis_port changes.
#
#  1. Worker behind.  Values are cached on B, then the target moves to A and
#     a route is soft-deleted there (delivered on A): B still holds the old
#     value under B's current epoch and generation.  The worker is stopped
#     (SIGSTOP) and the target moved back to B.  New sessions, on B while the
#     worker is still on A, read the exact value by bypassing (not the old
#     total B holds), send nothing to either Redis, and a commit made then
#     leaves its application key to the worker.  Once the worker runs again
#     (SIGCONT) it bumps B's epoch, deletes the key on B, and reads are
#     exact, then cached again.
#  2. Backend behind.  Two sessions that started on A are inside one query
#     string (waiting on advisory locks, so they take no reload) while the
#     target moves to B and the worker follows.  A value is cached on B and
#     the worker is stopped.  Session X2, still on A, commits a route
#     change: the scope is marked, nothing is sent to A, the application key
#     goes to the worker.  Session X1, still on A, reads: it bypasses, and
#     neither bumps A nor clears the mark.  So a fresh session on B finds the
#     mark, bumps B itself, and reads the exact value, not the one cached
#     before X2's commit.  Once the worker runs again, it deletes the key on
#     B; A's copy is never touched.
#
# The worker is stopped only while it waits on its latch with nothing
# pending, and every wait is on an observable state (a Redis counter, a
# metric, pg_stat_activity), so the order of events is fixed.  Expected
# statistics come from plain_route_stats() (WmPerfTest.pm), in the same
# statement.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WmPerfTest;

my ($pid_a, $port_a) = start_redis();
my ($pid_b, $port_b) = start_redis();

# Generous timeouts: both servers stay up, and a timeout on a busy machine
# would turn an expected hit into a bypass.
my $node = redis_node('target_change', $port_b,
	redis_connect_timeout => 2000,
	redis_command_timeout => 2000,
	redis_backoff => '100ms');
load_fixture($node, 'app');
create_plain_functions($node, 'app');
$node->safe_psql('app',
	q{INSERT INTO wm_cache_rules (rule_name, table_role, key_pattern)
	  VALUES ('routes_global', 'routes', 'waste_mgmt:stats:routes:global')});

my $prefix = wm_cluster_prefix($node);
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');
my $su_oid = $node->safe_psql('app',
	'SELECT oid FROM pg_roles WHERE rolname = current_user');
my $app_key = 'waste_mgmt:stats:routes:global';
my %name = ($port_a => 'A', $port_b => 'B');

# The worker's pid, and whether it's stopped (SIGSTOP) right now.
my $worker_pid;
my $worker_stopped = 0;

END
{
	# Never leave the worker stopped: the node's shutdown waits for it.
	kill 'CONT', $worker_pid if $worker_stopped;
}

sub epoch { return redis_cli($_[0], 'GET', "$prefix:epoch"); }
sub gen { return redis_cli($_[0], 'GET', "$prefix:$dboid:gen:routes"); }
sub pending { return metric($node, 'app', 'invalidation', 'invalidations_pending'); }

# Counters of wm_route_statistics and of invalidations.
sub counters
{
	my %c;
	@c{qw(hits misses bypasses delivered)} = split /\|/,
	  $node->safe_psql(
		'app', q{
		SELECT r.cache_hits, r.cache_misses, r.cache_bypasses, i.invalidations_delivered
		  FROM wm_perf_metrics r, wm_perf_metrics i
		 WHERE r.function_name = 'wm_route_statistics'
		   AND i.function_name = 'invalidation'});
	return \%c;
}

sub delta
{
	my ($before, $after) = @_;
	return join(' ',
		map { "$_=" . ($after->{$_} - $before->{$_}) } qw(hits misses bypasses delivered));
}

# wm_route_statistics() without computedAt, and its plain SQL twin, in one
# statement of a new session.
my $pair_sql = "SELECT (wm_route_statistics() - 'computedAt')::text, plain_route_stats()::text";

sub exact_pair
{
	return split /\x1f/,
	  $node->safe_psql('app', $pair_sql, extra_params => [ '-F', "\x1f" ]);
}

# Every wm_perf key of the routes scope on a server.
sub route_values
{
	my ($port) = @_;
	return wm_keys($port, "$prefix:$dboid:routes:*");
}

# The key of the value of wm_route_statistics() under a server's current
# epoch and generation: what a lookup there would GET.
sub current_value_key
{
	my ($port) = @_;
	return wm_value_key($port,
		sprintf('%s:%s:routes:%s:e%s:g%s',
			$prefix, $dboid, redis_server_ident($port), epoch($port), gen($port)),
		sprintf(':routes:all:%s:u%s', wm_config_key($node, 'app', 'routes'), $su_oid));
}

# Change the target; with the worker running, wait until it has bumped the
# new server's epoch (it publishes the target before that) and is done.
sub retarget
{
	my ($port) = @_;
	my $before = epoch($port);
	$node->safe_psql('postgres', "ALTER SYSTEM SET wm_perf.redis_port = $port");
	$node->reload;
	ok( wait_until(sub { $node->safe_psql('app', 'SHOW wm_perf.redis_port') eq $port }),
		"new sessions use Redis $name{$port}");
	return if $worker_stopped;
	ok(wait_until(sub { epoch($port) ne $before && pending() eq '0' }),
		"the worker took in the reload: Redis $name{$port}'s epoch was bumped, nothing pending");
	return;
}

# The worker connects to no database, so pg_stat_activity does not list
# it: find it among the postmaster's children.
sub worker_pids
{
	return map { /^\s*(\d+)/ ? $1 : () }
	  grep { /wm_perf worker/ } split /\n/,
	  `ps -o pid=,args= --ppid $node->{_pid}`;
}

# Stop the worker while it waits on its latch (WaitLatch: epoll_wait) with
# nothing pending.
sub stop_worker
{
	ok( wait_until(
			sub {
				pending() eq '0'
				  && slurp_file("/proc/$worker_pid/wchan") =~ /epoll/;
			}),
		'the worker is idle');
	kill 'STOP', $worker_pid or die "cannot stop the worker: $!";
	$worker_stopped = 1;
	return;
}

sub continue_worker
{
	kill 'CONT', $worker_pid or die "cannot continue the worker: $!";
	$worker_stopped = 0;
	return;
}

# psql running one query string, in the background (a backend takes in a
# reload only between two query strings).
sub start_query
{
	my ($appname, $sql) = @_;
	my %q = (out => '', err => '');
	$q{run} = IPC::Run::start(
		[
			$node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=1',
			'-F', "\x1f", '-d', $node->connstr('app') . " application_name=$appname",
			'-c', $sql
		],
		'<', \'', '>', \$q{out}, '2>', \$q{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return \%q;
}

sub finish_query
{
	my ($q) = @_;
	$q->{run}->finish;
	return ($? >> 8, $q->{out}, $q->{err});
}

ok( wait_until(
		sub {
			my @w = worker_pids();
			$worker_pid = $w[0] if @w == 1;
			@w == 1 && epoch($port_b) ne '' && pending() eq '0';
		}),
	'the worker runs and bumped the epoch on B');
note "worker pid $worker_pid";

my @routes = split /\n/,
  $node->safe_psql('app',
	q{SELECT id FROM core.routes WHERE deleted_at IS NULL AND status = 'active'
	  ORDER BY id LIMIT 3});
is(scalar(@routes), 3, 'three active routes to change');

# ---------------------------------------------------------------------------
# 1. Worker behind: sessions on B while the worker is still on A.
# ---------------------------------------------------------------------------

# B, first period: a value cached.
my $c0 = counters();
my ($old, $want) = exact_pair();
is($old, $want, 'B: the miss equals plain SQL');
my ($got) = exact_pair();
is($got, $old, 'B: then a hit of the same value');
is(delta($c0, counters()), 'hits=1 misses=1 bypasses=0 delivered=0',
	'B: a miss, then a hit');
my @b_values = route_values($port_b);
is(scalar(@b_values), 1, 'B holds one routes value');

# A: a route is soft-deleted and delivered there.
retarget($port_a);
$node->safe_psql('app',
	"UPDATE core.routes SET deleted_at = now() WHERE id = '$routes[0]'");
ok(wait_until(sub { pending() eq '0' }), 'A: the soft delete was delivered');
($got, $want) = exact_pair();
is($got, $want, 'A: the read equals plain SQL');
isnt($want, $old, 'the soft delete changed the statistic (B holds an old value)');
my $fresh = $want;

redis_cli($_, 'SET', $app_key, 'old') foreach ($port_a, $port_b);

# Back to B with the worker stopped: new sessions are on B, the worker on A.
stop_worker();
retarget($port_b);
my %e = map { $_ => epoch($_) } ($port_a, $port_b);
my %g = map { $_ => gen($_) } ($port_a, $port_b);
is(current_value_key($port_b), $b_values[0],
	"B's old value is under B's current epoch and generation: a lookup there would hit it");

$c0 = counters();
($got, $want) = exact_pair();
is($got, $want, 'worker on A, session on B: the read equals plain SQL');
isnt($got, $old, 'worker on A, session on B: not the value B holds');
is(delta($c0, counters()), 'hits=0 misses=0 bypasses=1 delivered=0',
	'worker on A, session on B: a bypass');

# A commit on B while the worker is on A.
$c0 = counters();
$node->safe_psql('app',
	"UPDATE core.routes SET status = 'archived' WHERE id = '$routes[1]'");
is(pending(), '2', 'the commit marked the scope and queued its key for the worker');
($got, $want) = exact_pair();
is($got, $want, 'after a commit, worker on A: the read equals plain SQL');
isnt($want, $fresh, 'the commit changed the statistic');
is(delta($c0, counters()), 'hits=0 misses=0 bypasses=1 delivered=0',
	'after a commit, worker on A: a bypass, nothing delivered');
is(pending(), '2', 'the mark is still there');
is(redis_cli($port_b, 'GET', $app_key), 'old',
	"the commit left B's application key to the worker");
is(join(' ', map { epoch($_) . '/' . gen($_) } ($port_a, $port_b)),
	join(' ', map { "$e{$_}/$g{$_}" } ($port_a, $port_b)),
	'no epoch or generation moved on A or B');
is(join(' ', route_values($port_b)), $b_values[0], 'nothing was stored on B');

continue_worker();
ok(wait_until(sub { pending() eq '0' }), 'the worker, running again, delivered everything');
isnt(epoch($port_b), $e{$port_b}, "the worker bumped B's epoch");
is(redis_cli($port_b, 'GET', $app_key), '', "the worker deleted the application key on B");
is(redis_cli($port_a, 'GET', $app_key), 'old', 'A was left alone');
$c0 = counters();
($got, $want) = exact_pair();
is($got, $want, 'worker on B: the read equals plain SQL');
isnt($got, $old, 'worker on B: not the value from the first period');
($got) = exact_pair();
is($got, $want, 'worker on B: the next read too');
is(delta($c0, counters()), 'hits=1 misses=1 bypasses=0 delivered=0',
	'worker on B: the cache is used again');

# ---------------------------------------------------------------------------
# 2. Backend behind: sessions still on A while the worker is on B.
# ---------------------------------------------------------------------------
retarget($port_a);

# X1 and X2 connect on A and wait, inside their query strings, for locks 2
# and 1.
my $holder = $node->background_psql('app');
$holder->query_safe('SELECT pg_advisory_lock(1), pg_advisory_lock(2)');
my $x2 = start_query('wm_x2',
	"SELECT pg_advisory_xact_lock(1); UPDATE core.routes SET status = 'archived'"
	  . " WHERE id = '$routes[2]' RETURNING 'x2', current_setting('wm_perf.redis_port')");
my $x1 = start_query('wm_x1',
	"SELECT pg_advisory_xact_lock(2); SELECT 'x1', current_setting('wm_perf.redis_port'),"
	  . " (wm_route_statistics() - 'computedAt')::text, plain_route_stats()::text");
ok( wait_until(
		sub {
			$node->safe_psql('postgres',
				q{SELECT count(*) FROM pg_stat_activity
				   WHERE application_name IN ('wm_x1', 'wm_x2') AND wait_event_type = 'Lock'})
			  eq '2';
		}),
	'X1 and X2 wait for their locks');

retarget($port_b);

# A value cached on B, by the worker's target.
$c0 = counters();
my ($cached) = exact_pair();
($got, $want) = exact_pair();
is($got, $cached, 'B: a value cached');
is($got, $want, 'B: it equals plain SQL');
is(delta($c0, counters()), 'hits=1 misses=1 bypasses=0 delivered=0', 'B: a miss, then a hit');
redis_cli($_, 'SET', $app_key, 'old') foreach ($port_a, $port_b);

stop_worker();
%e = map { $_ => epoch($_) } ($port_a, $port_b);
%g = map { $_ => gen($_) } ($port_a, $port_b);

# X2 commits on A.
$holder->query_safe('SELECT pg_advisory_unlock(1)');
my ($rc, $out, $err) = finish_query($x2);
is($rc, 0, 'X2: the UPDATE committed');
like($out, qr/^x2\x1f\Q$port_a\E$/m, 'X2 was still on A');
is(pending(), '2', 'X2 marked the scope and queued its key for the worker');
is(redis_cli($port_a, 'GET', $app_key), 'old', 'X2 sent nothing to A');
is(redis_cli($port_b, 'GET', $app_key), 'old', "B's application key is the worker's to delete");

# X1 reads on A.
$c0 = counters();
$holder->query_safe('SELECT pg_advisory_unlock(2)');
($rc, $out, $err) = finish_query($x1);
is($rc, 0, 'X1: the read succeeded');
my ($x1_port, $x1_got, $x1_want) = $out =~ /^x1\x1f([^\x1f]*)\x1f([^\x1f]*)\x1f(.*)$/m;
is($x1_port, $port_a, 'X1 was still on A');
is($x1_got, $x1_want, 'X1: the read equals plain SQL');
is(delta($c0, counters()), 'hits=0 misses=0 bypasses=1 delivered=0',
	'X1: a bypass, nothing delivered');
is(pending(), '2', 'X1 left the mark');
is(join(' ', map { epoch($_) . '/' . gen($_) } ($port_a, $port_b)),
	join(' ', map { "$e{$_}/$g{$_}" } ($port_a, $port_b)),
	'no epoch or generation moved on A or B');

# A new session on B delivers the mark itself.
$c0 = counters();
($got, $want) = exact_pair();
is($got, $want, 'B, worker stopped: the read equals plain SQL');
isnt($got, $cached, "B, worker stopped: not the value cached before X2's commit");
is(delta($c0, counters()), 'hits=0 misses=1 bypasses=0 delivered=1',
	'B, worker stopped: the reader delivered the mark, then missed');
is(gen($port_b), $g{$port_b} + 1, "the reader bumped B's generation once");
is(gen($port_a), $g{$port_a}, "A's generation did not move");
is(pending(), '1', 'only the application key is left for the worker');

continue_worker();
ok(wait_until(sub { pending() eq '0' }), 'the worker, running again, has nothing pending');
is(redis_cli($port_b, 'GET', $app_key), '', "the worker deleted X2's application key on B");
is(redis_cli($port_a, 'GET', $app_key), 'old', 'A was left alone');
($got, $want) = exact_pair();
is($got, $want, 'at the end: the read equals plain SQL');

$holder->quit;
$node->stop;
stop_redis($pid_a);
stop_redis($pid_b);
done_testing();
