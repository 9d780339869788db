# 095_worker_slices.pl: the worker deletes the glob patterns of
# wm_cache_rules in time slices (src/worker.c delete_queued_keys,
# WM_WORKER_SLICE_MS; docs/architecture.md "Application-key queue"), so a
# long queue of SCANs over a large Redis database does not hold up the rest
# of its work.
#
# Redis is filled with 400,000 unrelated keys, so that one full SCAN of a
# pattern takes some 400 round trips (SCAN ... COUNT 1000).  A rule
# 'wm_slice:{id}:*' on customers gives one glob pattern per changed customer;
# one UPDATE of 30 customers queues 30 patterns, some 12,000 SCAN round trips
# (about ten seconds here) of work.
#
#  1. While the worker works through them, a reload that changes
#     wm_perf.key_prefix demands a new epoch: the worker bumps the new
#     prefix's epoch key while patterns are still queued (keys of changed
#     customers still exist when the key appears);
#  2. still during that work, a commit that changes a scope on which a value
#     was stored marks it dirty: the worker INCRs its generation while
#     patterns are still queued;
#  3. eventually every key of the changed customers is deleted, and no
#     other key: the other customers' keys and all 400,000 unrelated keys
#     remain, and keys_deleted counts exactly the keys of the rule;
#  4. a second wave: pg_ctl stop -m fast returns while patterns are still
#     queued (keys of changed customers remain after the stop).
#
# Without the slices (1.0: up to 10,000 SCAN rounds per pattern and all 1,024
# queued patterns in one pass, with no check of interrupts, reloads, epoch
# demands or dirty scopes in between), the new epoch key and the generation
# INCR appear only once the whole queue has been scanned, when no key of a
# changed customer is left: checks 1 and 2 fail (the new epoch came 12.5 s
# after the reload instead of 0.1 s).  Check 4 does not depend on the slices
# alone: redis.c's poll loop fails a round trip as soon as a terminate is
# pending, so a SIGTERM also cuts a pass short without the slices.  It fails
# only with both protections gone, as in 1.0 (its blocking hiredis calls
# retried on EINTR): the stop then waits for the whole queue.
#
# No check is a wall-clock bound: each compares the order of two events
# (the worker's reaction, the end of its queue) whose separation is the
# whole queue's SCAN work, hundreds of times the 50 ms slice.  Reaction
# times are printed as notes.  (The patterns still queued at the fast stop
# are lost with the shared memory, and nothing queues them again after a
# restart: their keys keep their values until the application's TTLs.  That
# is what a shared-memory queue does; check 4 only shows that the stop does
# not wait for the queue.)

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use WmPerfTest;

my $n_fill = 400_000;
my $n_changed = 30;
my $n_kept = 20;
my @suffixes = qw(a b c);

my ($redis_pid, $port) = start_redis();

my $node = redis_node('worker_slices', $port,
	redis_connect_timeout => 2000,
	redis_command_timeout => 2000,
	redis_backoff => 100,
	cache_ttl => 600);
load_fixture($node, 'app');

my $sysid = $node->safe_psql('postgres',
	'SELECT system_identifier FROM pg_control_system()');
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');
my $new_prefix = 'wm_slice_reload';
my $new_epoch_key = "$new_prefix:v2:{$sysid}:epoch";
my $new_gen_key = "$new_prefix:v2:{$sysid}:$dboid:gen:routes";

$node->safe_psql('app',
	q{INSERT INTO wm_cache_rules (rule_name, table_role, key_pattern)
	  VALUES ('slice_customer', 'customers', 'wm_slice:{id}:*')});

my @customers = split /\n/,
  $node->safe_psql(
	'app', qq{
	SELECT id FROM operations.customers
	 WHERE deleted_at IS NULL AND status = 'active'
	 ORDER BY customer_number LIMIT @{[ $n_changed + $n_kept ]}});
is(scalar(@customers), $n_changed + $n_kept,
	"the fixture has $n_changed + $n_kept active customers");
my @changed = @customers[ 0 .. $n_changed - 1 ];
my @kept = @customers[ $n_changed .. $#customers ];
my $changed_list = join(', ', map { "'$_'" } @changed);
my @changed_keys = map { my $c = $_; map { "wm_slice:$c:$_" } @suffixes } @changed;
my @kept_keys = map { my $c = $_; map { "wm_slice:$c:$_" } @suffixes } @kept;

sub seed
{
	my @kv = map { ($_, 'v') } @_;
	while (my @chunk = splice(@kv, 0, 2000))
	{
		redis_cli($port, 'MSET', @chunk);
	}
	return;
}
sub n_existing { return redis_cli($port, 'EXISTS', @_); }
sub pending { return metric($node, 'app', 'invalidation', 'invalidations_pending'); }
sub keys_deleted { return metric($node, 'app', 'invalidation', 'keys_deleted'); }

# Count keys matching a pattern on the server side (one script, no transfer).
my $count_script = q{
local c, cur = 0, '0'
repeat
  local r = redis.call('SCAN', cur, 'MATCH', ARGV[1], 'COUNT', 10000)
  cur = r[1]
  c = c + #r[2]
until cur == '0'
return c};
sub count_matching { return redis_cli($port, 'EVAL', $count_script, '0', $_[0]); }

# Poll every 10 ms for up to $secs; returns true once $cond held.
sub poll_until
{
	my ($secs, $cond) = @_;
	my $end = time() + $secs;
	while (time() < $end)
	{
		return 1 if $cond->();
		usleep(10_000);
	}
	return 0;
}

# Wait until the worker is inside the queue: some pattern finished (some
# keys of changed customers gone), not all.
sub wait_mid_work
{
	my ($label) = @_;
	my $remaining;
	ok( poll_until(
			120,
			sub {
				$remaining = n_existing(@changed_keys);
				$remaining < @changed_keys;
			}),
		"$label: the worker has begun deleting the queued patterns");
	cmp_ok($remaining, '>', 0,
		"$label: ... and has not finished ($remaining of " . scalar(@changed_keys) . ' keys left)');
	return;
}

# Fill Redis: the unrelated keys, in chunks of 100,000 (one script each).
my $fill_script = q{
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  redis.call('SET', 'wm_fill:' .. i, 'x')
end
return 1};
for (my $i = 1; $i <= $n_fill; $i += 100_000)
{
	redis_cli($port, 'EVAL', $fill_script, '0', $i, $i + 99_999);
}
is(count_matching('wm_fill:*'), $n_fill, "Redis holds $n_fill unrelated keys");
seed(@changed_keys, @kept_keys);
is(n_existing(@changed_keys, @kept_keys), @changed_keys + @kept_keys,
	'the keys of every customer are set');
ok(poll_until(30, sub { pending() eq '0' }), 'nothing pending before the first wave');

# ---------------------------------------------------------------------------
# Wave 1: a reload and a dirty scope while the patterns are being scanned.
# ---------------------------------------------------------------------------
my $deleted_before = keys_deleted();
$node->safe_psql('app',
	"UPDATE operations.customers SET status = 'suspended' WHERE id IN ($changed_list)");
wait_mid_work('wave 1');

is(redis_cli($port, 'EXISTS', $new_epoch_key), '0', "sanity: $new_epoch_key does not exist yet");
my $t0 = time();
$node->safe_psql('postgres', "ALTER SYSTEM SET wm_perf.key_prefix = '$new_prefix'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
my $left;
ok( poll_until(
		300,
		sub {
			return 0 if redis_cli($port, 'EXISTS', $new_epoch_key) ne '1';
			$left = n_existing(@changed_keys);
			return 1;
		}),
	'after the reload the worker bumped the epoch of the new key prefix');
note(sprintf('new epoch %.3f s after the reload, %d keys of changed customers left',
		time() - $t0, $left // -1));
cmp_ok($left // 0, '>', 0,
	'the worker took the reload while patterns were still queued (keys of changed customers left)');

# A value stored under the new prefix, then a commit that changes routes:
# not quiet (a store since the last bump), so the worker INCRs the
# generation.  No reader of routes runs in between, so only the worker can.
ok( poll_until(
		60,
		sub {
			$node->safe_psql('app', 'SELECT wm_route_statistics()');
			count_matching("$new_prefix:v2:{$sysid}:$dboid:routes:*") > 0;
		}),
	'a route statistic is stored under the new key prefix');
my $gen_before = redis_cli($port, 'GET', $new_gen_key);
like($gen_before, qr/^\d+$/, 'the routes generation under the new prefix exists');
$t0 = time();
$node->safe_psql('app',
	q{UPDATE core.routes SET status = 'archived'
	   WHERE id = (SELECT id FROM core.routes WHERE deleted_at IS NULL AND status = 'active'
				   ORDER BY id LIMIT 1)});
undef $left;
ok( poll_until(
		300,
		sub {
			return 0 if redis_cli($port, 'GET', $new_gen_key) eq $gen_before;
			$left = n_existing(@changed_keys);
			return 1;
		}),
	'the worker delivered the dirty routes scope (generation incremented)');
note(sprintf('generation incremented %.3f s after the commit, %d keys of changed customers left',
		time() - $t0, $left // -1));
cmp_ok($left // 0, '>', 0,
	'the worker delivered the dirty scope while patterns were still queued');

# Then the whole queue, and nothing else.
$t0 = time();
ok( poll_until(600, sub { n_existing(@changed_keys) == 0 && pending() eq '0' }),
	'eventually every queued pattern was scanned and the queue is empty');
note(sprintf('queue drained %.3f s later', time() - $t0));
is(n_existing(@changed_keys), 0, 'every key of the changed customers is deleted');
is(n_existing(@kept_keys), scalar(@kept_keys), 'the keys of the other customers remain');
is(count_matching('wm_fill:*'), $n_fill, "all $n_fill unrelated keys remain");
is(keys_deleted() - $deleted_before, scalar(@changed_keys),
	'keys_deleted counts exactly the keys of the changed customers');

# ---------------------------------------------------------------------------
# Wave 2: a fast shutdown while the patterns are being scanned.
# ---------------------------------------------------------------------------
seed(@changed_keys);
$node->safe_psql('app',
	"UPDATE operations.customers SET status = 'active' WHERE id IN ($changed_list)");
wait_mid_work('wave 2');
$t0 = time();
$node->stop('fast');
note(sprintf('pg_ctl stop -m fast took %.3f s', time() - $t0));
$left = n_existing(@changed_keys);
cmp_ok($left, '>', 0,
	"pg_ctl stop -m fast returned while patterns were still queued ($left keys left)");
is(n_existing(@kept_keys), scalar(@kept_keys), 'wave 2: the keys of the other customers remain');
is(count_matching('wm_fill:*'), $n_fill, "wave 2: all $n_fill unrelated keys remain");

stop_redis($redis_pid);
done_testing();
