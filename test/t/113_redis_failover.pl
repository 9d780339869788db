# 113_redis_failover.pl: a Redis server that comes back with older data
# never serves an old value (issue 14 item 2; docs/architecture.md, "Redis
# failover and restored data").
#
# Three ways Redis loses acknowledged writes, each with the same address, so
# that wm_perf does not see a change of target:
#
#  A. Demotion and re-promotion.  Y is the master, X its replica.  A value
#     V1 is cached on Y and replicated to X; X is detached (REPLICAOF NO ONE)
#     and keeps Y's counters of that moment.  Commits then bump Y's
#     generation (Y acknowledges them).  Y is made a replica of X (a full
#     resync: Y now holds X's older counters and V1), then promoted again:
#     same run_id as before (the test checks it), a new replication id, the
#     counters of before the commits, and V1 under its old key with exactly
#     those counters (the test checks that too: 1.1 before this change, with
#     the run id alone in the key, served V1).  wm_perf still points at Y.
#  B. An in-place reload of an older snapshot: SAVE, commits, then DEBUG
#     RELOAD NOSAVE: same run id, same replication id, old counters, old
#     value.  Only the tag of the value keys (the shared memory segment and
#     the scope's local generation, with preload) makes it unreachable.
#  C. A restart from an older RDB file (redis-server --dbfilename): a new
#     run id.
#  D. The detached replica itself, with older counters, as the new target.
#  E. (Without preload.) A session's connection kept open and idle across A:
#     the lookup script sees the new replication id and the session
#     reconnects.
#  F. (Without preload.) Through Sentinel: no value is served or stored.
#
# Each time the reads right after are exact (equal to plain SQL, not V1),
# and the cache fills again: misses first, then hits.  A and C run twice:
# with shared_preload_libraries and without it (where only the server
# identity protects: B is a documented limit without preload).

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use WmPerfTest;

my ($y_pid, $y_port) = start_redis(args => [ '--enable-debug-command', 'yes' ]);
my ($x_pid, $x_port) = start_redis(args => [ '--replicaof', '127.0.0.1', $y_port ]);

my $node = redis_node('failover', $y_port,
	redis_connect_timeout => '1000ms',
	redis_command_timeout => '1000ms',
	redis_backoff => '100ms');
load_fixture($node, 'app');
create_plain_functions($node, 'app');

my $prefix = wm_cluster_prefix($node);
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');
my $su_oid = $node->safe_psql('app',
	'SELECT oid FROM pg_roles WHERE rolname = current_user');
my $ckey = wm_config_key($node, 'app', 'routes');
my $epoch_key = "$prefix:epoch";
my $gen_key = "$prefix:$dboid:gen:routes";
my $suffix = ":routes:all:$ckey:u$su_oid";

sub info_field
{
	my ($port, $section, $field) = @_;
	my $info = redis_cli($port, 'INFO', $section);
	return $info =~ /^$field:(\S+)/m ? $1 : '';
}
sub run_id { return substr(info_field($_[0], 'server', 'run_id'), 0, 12); }
sub replid { return info_field($_[0], 'replication', 'master_replid'); }

# Wait until the replica on $rport has everything its master on $mport sent.
sub wait_replicated
{
	my ($mport, $rport) = @_;
	return wait_until(
		sub {
			info_field($rport, 'replication', 'master_link_status') eq 'up'
			  && info_field($rport, 'replication', 'slave_repl_offset') eq
			  info_field($mport, 'replication', 'master_repl_offset');
		});
}

# wm_route_statistics() (whole, and without computedAt) and its plain twin.
sub call_and_plain
{
	my $out = $node->safe_psql(
		'app',
		"SELECT r::text, (r - 'computedAt')::text, plain_route_stats()::text
		   FROM (SELECT wm_route_statistics() AS r) s",
		extra_params => [ '-F', "\x1f" ]);
	return split /\x1f/, $out;
}

sub route_metrics
{
	return $node->safe_psql('app',
		"SELECT cache_hits, cache_misses FROM wm_perf_metrics
		  WHERE function_name = 'wm_route_statistics'");
}

# The value of wm_route_statistics() stored on $port under the current
# counters and server identity (any tag); '' if none.
sub current_value
{
	my ($port) = @_;
	my $key = wm_value_key($port,
		sprintf('%s:%s:routes:%s:e%s:g%s', $prefix, $dboid,
			redis_server_ident($port), redis_cli($port, 'GET', $epoch_key),
			redis_cli($port, 'GET', $gen_key)),
		$suffix);
	return (redis_cli($port, 'GET', $key), $key);
}

# Archive one more active route: changes byStatus.
my @routes = split /\n/, $node->safe_psql('app', q{
	SELECT id FROM core.routes
	 WHERE deleted_at IS NULL AND status = 'active' ORDER BY id LIMIT 20});
sub commit_change
{
	my $id = shift @routes or die 'no active route left';
	$node->safe_psql('app',
		"UPDATE core.routes SET status = 'archived' WHERE id = '$id'");
	return;
}

# Cache a value on $port: a miss stores it, a second call hits it.  Returns
# the stored text.
sub prime
{
	my ($label, $port) = @_;
	my ($v1, $v1_exact, $v1_plain) = call_and_plain();
	is($v1_exact, $v1_plain, "$label: the first read is exact");
	my ($v2) = call_and_plain();
	is($v2, $v1, "$label: the second read is a hit (same computedAt)");
	my ($stored, $key) = current_value($port);
	like($stored, qr/^wm1:[0-9a-f]{8}:\{/, "$label: the value is cached under $key");
	return ($v1, $stored, $key);
}

# After Redis lost writes: two reads in one session (metrics are per
# session without preload; no local copies, so the second read is Redis's),
# both exact and never V1, the first a miss, the second a hit.
sub after_loss
{
	my ($label, $v1) = @_;
	my $one = "SELECT r::text, (r - 'computedAt')::text, plain_route_stats()::text
		   FROM (SELECT wm_route_statistics() AS r) s;";
	my @out = split /\n/, $node->safe_psql(
		'app', qq{
SET wm_perf.local_cache_size = 0;
SELECT wm_perf_metrics_reset();
$one
$one
SELECT cache_hits || '|' || cache_misses FROM wm_perf_metrics
 WHERE function_name = 'wm_route_statistics';
},
		extra_params => [ '-F', "\x1f", '-t' ]);
	@out = grep { $_ ne '' } @out;
	my ($r1, $r1_exact, $r1_plain) = split /\x1f/, $out[0];
	my ($r2, $r2_exact, $r2_plain) = split /\x1f/, $out[1];
	is($r1_exact, $r1_plain, "$label: the first read is exact");
	isnt($r1, $v1, "$label: the first read is not the old value");
	is($r2_exact, $r2_plain, "$label: the second read is exact");
	is($r2, $r1, "$label: the second read is a hit of the new value");
	is($out[2], '1|1', "$label: one miss, then one hit");
	return;
}

# Scenario A on (Y, X); returns nothing.  Y is the master at the start, X
# its replica; at the end Y is the master again and X a detached master.
sub demote_and_repromote
{
	my ($label) = @_;
	ok(wait_replicated($y_port, $x_port), "$label: X replicates Y");
	my ($v1, $stored) = prime($label, $y_port);
	ok(wait_replicated($y_port, $x_port), "$label: X has Y's value and counters");
	my $old_ident = redis_server_ident($y_port);
	my ($epoch, $gen) =
	  (redis_cli($y_port, 'GET', $epoch_key), redis_cli($y_port, 'GET', $gen_key));
	my $old_key = (current_value($y_port))[1];
	is(redis_cli($x_port, 'GET', $old_key), $stored, "$label: X holds the value");

	redis_cli($x_port, 'REPLICAOF', 'NO', 'ONE');
	foreach (1 .. 3)
	{
		commit_change();
		call_and_plain();    # a store, so that the next commit bumps
	}
	ok( wait_until(sub { redis_cli($y_port, 'GET', $gen_key) > $gen }),
		"$label: Y acknowledged the bumps of the commits");
	my $y_run = run_id($y_port);

	# Y follows X (full resync: X's older state), then is promoted again.
	redis_cli($y_port, 'REPLICAOF', '127.0.0.1', $x_port);
	ok(wait_replicated($x_port, $y_port), "$label: Y resynchronised from X");
	redis_cli($y_port, 'REPLICAOF', 'NO', 'ONE');
	is(info_field($y_port, 'replication', 'role'), 'master', "$label: Y is a master again");
	is(run_id($y_port), $y_run, "$label: Y kept its run_id");
	isnt(redis_server_ident($y_port), $old_ident, "$label: Y has a new replication id");
	is(redis_cli($y_port, 'GET', $gen_key), $gen,
		"$label: Y is back at the generation of before the commits");
	is(redis_cli($y_port, 'GET', $epoch_key), $epoch, "$label: and at the old epoch");
	is(redis_cli($y_port, 'GET', $old_key), $stored,
		"$label: Y holds the old value under its old key, which names the current counters");

	after_loss("$label, Y promoted again", $v1);

	# Back to the start: X replicates Y.
	redis_cli($x_port, 'REPLICAOF', '127.0.0.1', $y_port);
	return;
}

# Scenario C: Y restarted from a copy of an older RDB file.
sub restart_from_old_rdb
{
	my ($label) = @_;
	my ($v1, $stored, $old_key) = prime($label, $y_port);
	my $dir = (split /\n/, redis_cli($y_port, 'CONFIG', 'GET', 'dir'))[1];
	is(redis_cli($y_port, 'SAVE'), 'OK', "$label: Y saved a snapshot");
	my $file = (split /\n/, redis_cli($y_port, 'CONFIG', 'GET', 'dbfilename'))[1];
	PostgreSQL::Test::Utils::system_or_bail('cp', "$dir/$file", "$dir/old-$label.rdb");
	commit_change();
	call_and_plain();
	my $gen = redis_cli($y_port, 'GET', $gen_key);
	stop_redis($y_pid);
	($y_pid) = start_redis(
		port => $y_port,
		args => [
			'--dir', $dir, '--dbfilename', "old-$label.rdb",
			'--enable-debug-command', 'yes'
		]);
	is(redis_cli($y_port, 'GET', $old_key), $stored,
		"$label: the restarted Y holds the old value");
	cmp_ok(redis_cli($y_port, 'GET', $gen_key), '<', $gen,
		"$label: and a generation older than the one it had acknowledged");
	after_loss("$label, Y restarted from the old file", $v1);
	redis_cli($x_port, 'REPLICAOF', '127.0.0.1', $y_port);
	return;
}

# ---------------------------------------------------------------------------
# With preload.
# ---------------------------------------------------------------------------
ok(wait_until(sub { redis_cli($y_port, 'GET', $epoch_key) ne '' }),
	'the worker bumped the epoch on Y');
demote_and_repromote('preload');

# B. DEBUG RELOAD NOSAVE of an older snapshot: nothing about the server
# changes but its data.
{
	my $label = 'preload, reload of an older snapshot';
	my ($v1, $stored, $old_key) = prime($label, $y_port);
	my ($ident, $epoch, $gen) = (redis_server_ident($y_port),
		redis_cli($y_port, 'GET', $epoch_key), redis_cli($y_port, 'GET', $gen_key));
	is(redis_cli($y_port, 'SAVE'), 'OK', "$label: Y saved a snapshot");
	commit_change();
	call_and_plain();
	ok( wait_until(sub { redis_cli($y_port, 'GET', $gen_key) > $gen }),
		"$label: Y acknowledged the bump");
	is(redis_cli($y_port, 'DEBUG', 'RELOAD', 'NOSAVE'), 'OK', "$label: Y reloaded the old snapshot");
	is(redis_server_ident($y_port), $ident, "$label: same run id, same replication id");
	is(redis_cli($y_port, 'GET', $gen_key), $gen, "$label: the old generation is back");
	is(redis_cli($y_port, 'GET', $epoch_key), $epoch, "$label: the old epoch is back");
	is(redis_cli($y_port, 'GET', $old_key), $stored, "$label: the old value is back");
	after_loss($label, $v1);
	ok(wait_replicated($y_port, $x_port), "$label: X replicates Y again");
}

restart_from_old_rdb('preload-rdb');

# D. The detached replica with older counters as the new target (a reload:
# the worker demands a new epoch, and the server identity differs anyway).
{
	my $label = 'preload, detached replica as the target';
	ok(wait_replicated($y_port, $x_port), "$label: X replicates Y");
	my ($v1, $stored, $old_key) = prime($label, $y_port);
	ok(wait_replicated($y_port, $x_port), "$label: X has the value");
	redis_cli($x_port, 'REPLICAOF', 'NO', 'ONE');
	commit_change();
	call_and_plain();
	is(redis_cli($x_port, 'GET', $old_key), $stored, "$label: X holds the old value");
	$node->safe_psql('postgres', "ALTER SYSTEM SET wm_perf.redis_port = $x_port");
	$node->reload;
	ok( wait_until(sub {
			$node->safe_psql('app', 'SHOW wm_perf.redis_port') eq $x_port
			  && metric($node, 'app', 'invalidation', 'invalidations_pending') eq '0'
		}),
		"$label: the reload reached new sessions and the worker");
	after_loss($label, $v1);
	$node->safe_psql('postgres', "ALTER SYSTEM SET wm_perf.redis_port = $y_port");
	$node->reload;
	ok( wait_until(sub {
			$node->safe_psql('app', 'SHOW wm_perf.redis_port') eq $y_port
			  && metric($node, 'app', 'invalidation', 'invalidations_pending') eq '0'
		}),
		"$label: back on Y");
	redis_cli($x_port, 'REPLICAOF', '127.0.0.1', $y_port);
}

# ---------------------------------------------------------------------------
# Without preload: the server identity in the keys is the protection.
# ---------------------------------------------------------------------------
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$node->restart;
is($node->safe_psql('app', 'SHOW shared_preload_libraries'), '',
	'restarted without preload');
demote_and_repromote('no preload');
restart_from_old_rdb('no-preload-rdb');

# E. A session whose connection stays open and idle while its server is
# demoted and promoted again: the connection keeps the identity it read at
# connect, under which the server holds V1 with the old counters.  The
# lookup script compares the server's replication id with the one in the
# key and the session reconnects: a miss, never V1.
{
	my $label = 'no preload, idle connection across a re-promotion';
	ok(wait_replicated($y_port, $x_port), "$label: X replicates Y");
	my $s = $node->background_psql('app', on_error_stop => 1);
	my $read = "SELECT r::text || '|' || (r - 'computedAt')::text || '|' || plain_route_stats()::text
		   FROM (SELECT wm_route_statistics() AS r) s;";
	$s->query_safe('SET wm_perf.local_cache_size = 0');
	my ($v1, $v1_exact, $v1_plain) = split /\|/, $s->query_safe($read);
	is($v1_exact, $v1_plain, "$label: the first read is exact");
	my ($v1b) = split /\|/, $s->query_safe($read);
	is($v1b, $v1, "$label: the second read is a hit, on the session's open connection");
	my $old_key = (current_value($y_port))[1];
	ok(wait_replicated($y_port, $x_port), "$label: X has the value and counters");
	my $gen = redis_cli($y_port, 'GET', $gen_key);

	redis_cli($x_port, 'REPLICAOF', 'NO', 'ONE');
	foreach (1 .. 3)
	{
		commit_change();
		call_and_plain();
	}
	cmp_ok(redis_cli($y_port, 'GET', $gen_key), '>', $gen,
		"$label: Y acknowledged the bumps");
	redis_cli($y_port, 'REPLICAOF', '127.0.0.1', $x_port);
	ok(wait_replicated($x_port, $y_port), "$label: Y resynchronised from X");
	redis_cli($y_port, 'REPLICAOF', 'NO', 'ONE');
	is(redis_cli($y_port, 'GET', $gen_key), $gen, "$label: Y is back at the old generation");
	isnt(redis_cli($y_port, 'GET', $old_key), '',
		"$label: Y holds V1 under the key the idle session would look up");

	$s->query_safe('SELECT wm_perf_metrics_reset()');
	my ($r1, $r1_exact, $r1_plain) = split /\|/, $s->query_safe($read);
	is($r1_exact, $r1_plain, "$label: the read after the re-promotion is exact");
	isnt($r1, $v1, "$label: and is not V1");
	my ($r2) = split /\|/, $s->query_safe($read);
	is($r2, $r1, "$label: the next read hits the new value");
	is($s->query_safe("SELECT cache_hits || '|' || cache_misses || '|' || redis_errors
		  FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics'"),
		'1|1|0', "$label: one miss (after a reconnect, not an error), then one hit");
	$s->quit;
	redis_cli($x_port, 'REPLICAOF', '127.0.0.1', $y_port);
}

# F. Through Sentinel, without preload, no value is served or stored: only
# the tag keeps an old value unreachable in a split brain.
{
	my $label = 'no preload, Sentinel';
	my ($sp_pid, $sp_port) = start_sentinel(monitor => [ 'wmmaster', $y_port ],
		down_after => 60000);
	$node->safe_psql('postgres', qq{
		LOAD 'wm_perf';
		ALTER SYSTEM SET wm_perf.redis_sentinels = '127.0.0.1:$sp_port';
		ALTER SYSTEM SET wm_perf.redis_sentinel_master = 'wmmaster'});
	$node->reload;
	ok(wait_until(sub { $node->safe_psql('app', 'SHOW wm_perf.redis_sentinel_master') eq 'wmmaster' }),
		"$label: the setting is in");
	commit_change();
	my @out = split /\n/, $node->safe_psql('app', qq{
SELECT wm_perf_metrics_reset();
SELECT ((r - 'computedAt') = plain_route_stats())::text FROM (SELECT wm_route_statistics() AS r) s;
SELECT ((r - 'computedAt') = plain_route_stats())::text FROM (SELECT wm_route_statistics() AS r) s;
SELECT cache_hits || '|' || cache_misses || '|' || cache_bypasses || '|' || redis_errors
  FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';
});
	@out = grep { $_ ne '' } @out;
	is_deeply(\@out, [ 'true', 'true', '0|0|2|0' ],
		"$label: both reads exact, both bypass the cache (no hit, no miss, no error)");
	is((current_value($y_port))[0], '', "$label: nothing was stored under the current counters");
	$node->safe_psql('postgres', q{
		LOAD 'wm_perf';
		ALTER SYSTEM RESET wm_perf.redis_sentinels;
		ALTER SYSTEM RESET wm_perf.redis_sentinel_master});
	$node->reload;
	stop_redis($sp_pid);
}

$node->stop;
stop_redis($x_pid);
stop_redis($y_pid);
done_testing();
