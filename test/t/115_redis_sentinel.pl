# 115_redis_sentinel.pl: the Redis master found through Redis Sentinel
# (wm_perf.redis_sentinels, wm_perf.redis_sentinel_master; issue 14 item 1).
#
# A master M, its replica R and a sentinel S (quorum 1, down-after 500 ms,
# failover-timeout 2 s).  wm_perf.redis_sentinels lists, in this order, an
# address nothing listens on, a sentinel that does not know the master name
# (null reply), and S: every connection asks them in turn.
#
#  1. Values are cached on M, found through S.
#  2. A workload of reads, with a write every third step, while M is killed
#     (SIGKILL) half-way: every write succeeds, every read equals plain SQL
#     and takes less than a bound, and the cache is used again once S has
#     promoted R: the values and the bumps go to R.
#  3. Settings: host names and malformed lists are refused (22023), the
#     settings are superuser-only.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use WmPerfTest;

my ($m_pid, $m_port) = start_redis();
my ($r_pid, $r_port) = start_redis(args => [ '--replicaof', '127.0.0.1', $m_port ]);
my ($s_pid, $s_port) = start_sentinel(monitor => [ 'wmmaster', $m_port ]);
# A sentinel that monitors another name: get-master-addr-by-name replies nil.
my ($o_pid, $o_port) = start_sentinel(monitor => [ 'othermaster', $r_port ]);
my $dead_port = PostgreSQL::Test::Cluster::get_free_port();

my $node = redis_node('sentinel', $m_port,
	redis_host => "''",
	redis_sentinels => "'127.0.0.1:$dead_port, 127.0.0.1:$o_port,127.0.0.1:$s_port'",
	redis_sentinel_master => "'wmmaster'",
	redis_connect_timeout => '200ms',
	redis_command_timeout => '200ms',
	redis_backoff => '100ms');
load_fixture($node, 'app');
create_plain_functions($node, 'app');

my $prefix = wm_cluster_prefix($node);
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');
my $gen_key = "$prefix:$dboid:gen:routes";

sub role { return (split /\n/, redis_cli($_[0], 'ROLE'))[0] // ''; }
sub metrics
{
	return $node->safe_psql('app',
		"SELECT cache_hits || '|' || cache_misses FROM wm_perf_metrics
		  WHERE function_name = 'wm_route_statistics'");
}
sub route_values
{
	my ($port) = @_;
	return grep { /:routes:all:/ } wm_keys($port, "$prefix:$dboid:routes:*");
}

ok( wait_until(sub {
			redis_cli($s_port, 'SENTINEL', 'replicas', 'wmmaster') =~ /\Q$r_port\E/
		}),
	'the sentinel knows the replica');
is(redis_cli($o_port, 'SENTINEL', 'get-master-addr-by-name', 'wmmaster'), '',
	'the other sentinel does not know the master name');

# One read: (exact?, milliseconds the call took, whole value).
my $read_sql = q{
WITH a AS MATERIALIZED (SELECT clock_timestamp() AS t0),
     b AS MATERIALIZED (SELECT (SELECT t0 FROM a) AS t0, wm_route_statistics() AS r)
SELECT (r - 'computedAt') = plain_route_stats(),
       round(extract(epoch FROM clock_timestamp() - t0) * 1000), r::text
  FROM b};
sub read_once
{
	return split /\x1f/,
	  $node->safe_psql('app', $read_sql, extra_params => [ '-F', "\x1f" ]);
}

# ---------------------------------------------------------------------------
# 1. Through the sentinels.
# ---------------------------------------------------------------------------
ok(wait_until(sub { redis_cli($m_port, 'GET', "$prefix:epoch") ne '' }),
	'the worker found the master through the sentinels and bumped its epoch');
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my ($ok1, undef, $v1) = read_once();
my ($ok2, undef, $v2) = read_once();
is("$ok1 $ok2", 't t', 'reads through the sentinels are exact');
is($v2, $v1, 'the second read is a hit');
is(metrics(), '1|1', 'one miss, one hit');
is(scalar(route_values($m_port)), 1, 'the value is stored on the master');

# ---------------------------------------------------------------------------
# 2. Kill the master under a workload.
# ---------------------------------------------------------------------------
my $route = $node->safe_psql('app', q{
	SELECT id FROM core.routes
	 WHERE deleted_at IS NULL AND status = 'active' ORDER BY id LIMIT 1});
my ($writes, $failed_writes, $reads, $inexact, $slowest) = (0, 0, 0, 0, 0);
my ($killed_at, $promoted_at, $first_hit_after);
my $hits_before;
my $bound_ms = 2000;
for my $i (1 .. 60)
{
	if ($i % 3 == 0)
	{
		my $status = $i % 2 ? 'archived' : 'active';
		my $ret = $node->psql('app',
			"UPDATE core.routes SET status = '$status' WHERE id = '$route'");
		$writes++;
		$failed_writes++ if $ret != 0;
	}
	my ($exact, $ms) = read_once();
	$reads++;
	$inexact++ if $exact ne 't';
	$slowest = $ms if $ms > $slowest;
	if ($i == 15)
	{
		stop_redis($m_pid, 'KILL');
		$killed_at = time;
	}
	if (defined $killed_at && !defined $promoted_at && role($r_port) eq 'master')
	{
		$promoted_at = time;
		$hits_before = (split /\|/, metrics())[0];
	}
	elsif (defined $promoted_at && !defined $first_hit_after
		&& (split /\|/, metrics())[0] > $hits_before)
	{
		$first_hit_after = time;
	}
	last if defined $first_hit_after && $i >= 45;
	usleep(100_000);
}
is($failed_writes, 0, "all $writes writes succeeded");
is($inexact, 0, "all $reads reads equal plain SQL");
cmp_ok($slowest, '<', $bound_ms, "every read took less than $bound_ms ms (slowest $slowest ms)");
ok(defined $promoted_at, 'the sentinel promoted the replica during the workload');
ok(defined $first_hit_after, 'reads hit the cache again after the failover');
note(sprintf('killed -> replica promoted %.2f s, -> first hit %.2f s',
		$promoted_at - $killed_at, $first_hit_after - $killed_at))
  if defined $first_hit_after;

is(redis_cli($s_port, 'SENTINEL', 'get-master-addr-by-name', 'wmmaster'),
	"127.0.0.1\n$r_port", 'the sentinel names the former replica');
ok(scalar(route_values($r_port)) >= 1, 'values are stored on the new master');
my $gen = redis_cli($r_port, 'GET', $gen_key);
my ($ok3, undef, $v3) = read_once();
$node->safe_psql('app',
	"UPDATE core.routes SET status = CASE WHEN status = 'active' THEN 'archived' ELSE 'active' END::core.enum_routes_status
	  WHERE id = '$route'");
ok( wait_until(sub { redis_cli($r_port, 'GET', $gen_key) > $gen }),
	'the worker bumps the generation on the new master');
my ($ok4, undef, $v4) = read_once();
is("$ok3 $ok4", 't t', 'reads after the failover are exact');
isnt($v4, $v3, 'a commit on the new master invalidates');
is(metric($node, 'app', 'invalidation', 'invalidations_pending'), '0',
	'nothing left pending');

# ---------------------------------------------------------------------------
# 3. Settings.
# ---------------------------------------------------------------------------
foreach my $bad ('redis.example.com:26379', '127.0.0.1', '127.0.0.1:0',
	'127.0.0.1:26379;127.0.0.2:26379', join(',', map { "127.0.0.1:$_" } 1 .. 9))
{
	my ($state) = psql_sqlstate($node, 'app',
		"ALTER SYSTEM SET wm_perf.redis_sentinels = '$bad'");
	is($state, '22023', "wm_perf.redis_sentinels = '$bad' is refused (22023)");
}
my ($state) = psql_sqlstate($node, 'app',
	"ALTER SYSTEM SET wm_perf.redis_sentinel_master = 'two words'");
is($state, '22023', 'a master name with a blank is refused (22023)');
is( $node->safe_psql('app',
		"SELECT context FROM pg_settings WHERE name IN
		   ('wm_perf.redis_sentinels', 'wm_perf.redis_sentinel_master') GROUP BY 1"),
	'sighup', 'both settings are PGC_SIGHUP');
$node->safe_psql('app', 'CREATE ROLE regress_wm_plain LOGIN');
($state) = psql_sqlstate($node, 'app', 'SHOW wm_perf.redis_sentinels',
	extra_params => [ '-U', 'regress_wm_plain' ]);
is($state, '42501', 'an ordinary role cannot read wm_perf.redis_sentinels');

# ---------------------------------------------------------------------------
# 4. A master that becomes a replica while a connection to it stays open
#    (REPLICAOF closes no client): the next lookup is refused with
#    -READONLY (Redis 7: the lookup script carries a shebang), the call
#    computes, and the next connection is refused because ROLE does not say
#    master.  Shown with wm_perf.redis_host, which gets the same checks.
# ---------------------------------------------------------------------------
my ($q_pid, $q_port) = start_redis();
$node->safe_psql('postgres', qq{
ALTER SYSTEM SET wm_perf.redis_sentinels = '';
ALTER SYSTEM SET wm_perf.redis_host = '127.0.0.1';
ALTER SYSTEM SET wm_perf.redis_port = $q_port;
});
$node->reload;
ok( wait_until(sub {
			$node->safe_psql('app', 'SHOW wm_perf.redis_port') eq $q_port
			  && redis_cli($q_port, 'GET', "$prefix:epoch") ne ''
			  && metric($node, 'app', 'invalidation', 'invalidations_pending') eq '0'
		}),
	'retargeted to a plain master Q');
my $cli = redis_cli_bin();
my ($out, $err) = ('', '');
$node->psql(
	'app', qq{
SET wm_perf.local_cache_size = 0;
SELECT wm_perf_metrics_reset();
SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats();
SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats();
\\! $cli -h 127.0.0.1 -p $q_port REPLICAOF 127.0.0.1 $r_port >/dev/null
SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats();
SELECT cache_hits || '|' || cache_misses || '|' || cache_bypasses || '|' || redis_errors
  FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';
},
	stdout => \$out,
	stderr => \$err);
is(join("\n", grep { $_ ne '' } split /\n/, $out), "t\nt\nt\n1|1|1|1",
	'demoted under an open connection: exact; a miss, a hit, then an error and a bypass');
like($err, qr/READONLY/, 'the lookup on the demoted server was refused with -READONLY');
($out, $err) = ('', '');
$node->psql('app', "SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats()",
	stdout => \$out, stderr => \$err);
is($out, 't', 'a new connection to the replica: the call is exact');
like($err, qr/could not connect to Redis at 127\.0\.0\.1:$q_port: the server is not a master \(ROLE\)/,
	'a new connection to the replica is refused: ROLE is not master');

$node->stop;
stop_redis($q_pid);
stop_redis($o_pid);
stop_redis($s_pid);
stop_redis($r_pid);
done_testing();
