# 120_redis_cluster.pl: a three-node Redis Cluster (issue 14 item 3).
#
# Every key of a PostgreSQL cluster carries the hash tag {<system
# identifier>}: one slot, so the scripts (epoch, generation and value at
# once) run on one node.  wm_perf.redis_host names a node that does not own
# that slot, so every connection starts with a -MOVED, which is followed.
#
#  1. Hits and invalidation; the keys live on the slot's owner A.  An exact
#     application key (wm_cache_rules) on a third node is deleted at commit
#     (its UNLINK is redirected and followed).
#  2. The slot is migrated from A to B by hand (IMPORTING / MIGRATING):
#     with only the epoch moved, a lookup gets -TRYAGAIN (a miss: the call
#     computes); with every key moved, -ASK, which is followed (a hit on B);
#     a commit's bump is redirected the same way.  Then the slot is given to
#     B (SETSLOT NODE): -MOVED, followed (keys then name B: one miss).
#  3. Glob rules are refused on a cluster (SCAN sees one node), loudly.
#  4. The cluster down (a node killed): -CLUSTERDOWN, the call computes.
# Every read equals plain SQL.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use WmPerfTest;

my @nodes;    # [pid, port]
for (1 .. 3)
{
	push @nodes,
	  [ start_redis(args => [ '--cluster-enabled', 'yes', '--cluster-node-timeout', '1000' ]) ];
}
my @ports = map { $_->[1] } @nodes;
{
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[
			redis_cli_bin(), '--cluster', 'create',
			(map { "127.0.0.1:$_" } @ports),
			'--cluster-replicas', '0', '--cluster-yes'
		],
		'<', \'', '>', \$out, '2>', \$err)
	  or die "redis-cli --cluster create failed: $out $err";
}
ok( wait_until(sub {
			!grep { redis_cli($_, 'CLUSTER', 'INFO') !~ /cluster_state:ok/ } @ports
		}),
	'the three-node cluster is up');

# Node id and slot ranges of each port (CLUSTER NODES).
sub topology
{
	my (%id, %owner);
	foreach my $line (split /\n/, redis_cli($ports[0], 'CLUSTER', 'NODES'))
	{
		my @f = split / /, $line;
		my ($port) = $f[1] =~ /:(\d+)@/;
		$id{$port} = $f[0];
		foreach my $range (@f[ 8 .. $#f ])
		{
			next if $range =~ /^\[/;
			my ($lo, $hi) = split /-/, $range;
			$owner{"$lo-" . ($hi // $lo)} = $port;
		}
	}
	return (\%id, \%owner);
}
sub owner_of
{
	my ($slot) = @_;
	my (undef, $owner) = topology();
	foreach (keys %$owner)
	{
		my ($lo, $hi) = split /-/;
		return $owner->{$_} if $slot >= $lo && $slot <= $hi;
	}
	die "slot $slot has no owner";
}

my $node = PostgreSQL::Test::Cluster->new('cluster');
$node->init;
$node->start;
my $sysid = $node->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
my $slot = redis_cli($ports[0], 'CLUSTER', 'KEYSLOT', "{$sysid}");
my $a_port = owner_of($slot);
my ($c_port) = grep { $_ != $a_port } @ports;
my ($b_port) = grep { $_ != $a_port && $_ != $c_port } @ports;
note("slot $slot: owner A=$a_port, B=$b_port, configured host C=$c_port");
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'wm_perf'\n"
	  . "wm_perf.redis_host = '127.0.0.1'\n"
	  . "wm_perf.redis_port = $c_port\n"
	  . "wm_perf.redis_backoff = 100\n"
	  . "wm_perf.redis_connect_timeout = 500\n"
	  . "wm_perf.redis_command_timeout = 500\n");
$node->restart;
load_fixture($node, 'app');
create_plain_functions($node, 'app');

my $prefix = wm_cluster_prefix($node);
is($prefix, "wm_perf:v2:{$sysid}", 'keys carry the hash tag {<system identifier>}');
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');
my $gen_key = "$prefix:$dboid:gen:routes";

sub cli_c { return redis_cli($_[0], '-c', @_[ 1 .. $#_ ]); }

ok(wait_until(sub { redis_cli($a_port, 'GET', "$prefix:epoch") ne '' }),
	'the worker followed -MOVED from C and bumped the epoch on A');

# Two reads in one session (no local copies): texts, exactness, metrics.
sub two_reads
{
	my $one = "SELECT (r - 'computedAt') = plain_route_stats(), r::text
		   FROM (SELECT wm_route_statistics() AS r) s;";
	my ($out, $err) = ('', '');
	$node->psql(
		'app', qq{
SET wm_perf.local_cache_size = 0;
SELECT wm_perf_metrics_reset();
$one
$one
SELECT cache_hits || '|' || cache_misses || '|' || cache_bypasses
  FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';
},
		stdout => \$out,
		stderr => \$err,
		extra_params => [ '-t', '-F', "\x1f" ]);
	my @l = grep { $_ ne '' } split /\n/, $out;
	my ($e1, $v1) = split /\x1f/, $l[0];
	my ($e2, $v2) = split /\x1f/, $l[1];
	return ($e1, $v1, $e2, $v2, $l[2], $err);
}

my $route = $node->safe_psql('app', q{
	SELECT id FROM core.routes
	 WHERE deleted_at IS NULL AND status = 'active' ORDER BY id LIMIT 1});
sub toggle
{
	$node->safe_psql('app', "UPDATE core.routes SET status =
		CASE WHEN status = 'active' THEN 'archived' ELSE 'active' END::core.enum_routes_status
	  WHERE id = '$route'");
	return;
}

# ---------------------------------------------------------------------------
# 1. Hits and invalidation through -MOVED.
# ---------------------------------------------------------------------------
my ($e1, $v1, $e2, $v2, $m) = two_reads();
is("$e1 $e2", 't t', 'reads are exact');
is($v2, $v1, 'the second read is a hit');
is($m, '1|1|0', 'one miss, one hit, no bypass');
ok(scalar(grep { /:routes:all:/ } wm_keys($a_port, "$prefix:$dboid:routes:*")) == 1,
	'the value is stored on A, the owner of the slot');

# An application key on a node that is neither A nor C.
my $app_key;
foreach my $i (1 .. 1000)
{
	my $k = "app:routes:total:$i";
	if (owner_of(redis_cli($ports[0], 'CLUSTER', 'KEYSLOT', $k)) == $b_port)
	{
		$app_key = $k;
		last;
	}
}
$node->safe_psql('app',
	"INSERT INTO wm_cache_rules (rule_name, table_role, key_pattern) VALUES ('total', 'routes', '$app_key')");
cli_c($b_port, 'SET', $app_key, 'old');
is(cli_c($c_port, 'EXISTS', $app_key), '1', "application key $app_key set on B");

my $gen = redis_cli($a_port, 'GET', $gen_key);
toggle();
ok(wait_until(sub { redis_cli($a_port, 'GET', $gen_key) > $gen }),
	'a commit bumps the generation on A');
is(cli_c($c_port, 'EXISTS', $app_key), '0',
	'the commit deleted the application key on B (UNLINK redirected, followed)');
my ($e3, $v3, $e4, $v4, $m2) = two_reads();
is("$e3 $e4", 't t', 'after the commit: exact');
isnt($v3, $v1, 'after the commit: the new state');
is($m2, '1|1|0', 'after the commit: a miss, then a hit');

# ---------------------------------------------------------------------------
# 2. Migrating the slot from A to B.
# ---------------------------------------------------------------------------
my ($id) = topology();
is(redis_cli($b_port, 'CLUSTER', 'SETSLOT', $slot, 'IMPORTING', $id->{$a_port}), 'OK',
	'B imports the slot');
is(redis_cli($a_port, 'CLUSTER', 'SETSLOT', $slot, 'MIGRATING', $id->{$b_port}), 'OK',
	'A migrates the slot');
sub migrate
{
	my @keys = @_;
	return redis_cli($a_port, 'MIGRATE', '127.0.0.1', $b_port, '', '0', '5000', 'KEYS', @keys);
}
is(migrate("$prefix:epoch"), 'OK', 'only the epoch moved to B');
my ($e5, undef, $e6, undef, $m3, $err3) = two_reads();
is("$e5 $e6", 't t', 'epoch on B, generation on A: exact');
is($m3, '0|0|2', '-TRYAGAIN: both calls compute (bypasses)');
like($err3, qr/TRYAGAIN/, 'the WARNING names -TRYAGAIN');

my @rest = split /\n/, redis_cli($a_port, 'CLUSTER', 'GETKEYSINSLOT', $slot, '1000');
ok(scalar(@rest) >= 2, 'the generation and the values are still on A');
is(migrate(@rest), 'OK', 'every key of the slot moved to B');
my ($e7, $v7, $e8, $v8, $m4, $err4) = two_reads();
note("stderr: $err4") if $err4 ne '';
is("$e7 $e8", 't t', 'during the migration: exact');
is($v7, $v3, 'during the migration: -ASK followed, the value moved to B is a hit');
is($m4, '2|0|0', 'two hits');

# B serves the migrating slot only after ASKING, on the same connection.
sub get_asking
{
	my ($port, $key) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ redis_cli_bin(), '-h', '127.0.0.1', '-p', $port ],
		'<', \"ASKING\nGET $key\n", '>', \$out, '2>', \$err);
	return (split /\n/, $out)[1] // '';
}
$gen = get_asking($b_port, $gen_key);
like($gen, qr/^\d+$/, "B holds the generation ($gen)");
toggle();
ok(wait_until(sub { get_asking($b_port, $gen_key) > $gen }),
	'during the migration: the bump is redirected (-ASK) to B');
my ($e9, $v9, $e10, $v10, $m5) = two_reads();
is("$e9 $e10", 't t', 'after a commit during the migration: exact');
isnt($v9, $v7, 'after a commit during the migration: the new state');
is($m5, '1|1|0', 'a miss, then a hit (stored and found through -ASK)');

foreach my $p (@ports)
{
	is(redis_cli($p, 'CLUSTER', 'SETSLOT', $slot, 'NODE', $id->{$b_port}), 'OK',
		"node $p: the slot now belongs to B");
}
my ($e11, $v11, $e12, $v12, $m6) = two_reads();
is("$e11 $e12", 't t', 'after the migration: exact');
# The keys name the server the connection is on: after -MOVED, B (whose
# run id and replication id differ from A's), so one miss first.
is($v12, $v11, 'after the migration: -MOVED to B followed, the second read a hit');
is($m6, '1|1|0', 'after the migration: a miss (keys name B now), then a hit');

# ---------------------------------------------------------------------------
# 2b. Without preload, a cluster serves and stores no value (a failover can
# leave two masters of the slot for a while; only the tag makes that safe).
# ---------------------------------------------------------------------------
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$node->restart;
toggle();
my ($enp1, undef, $enp2, undef, $mnp) = two_reads();
is("$enp1 $enp2", "t t", "no preload: exact");
is($mnp, '0|0|2', 'no preload: both calls bypass the cache (no hit, no miss)');
like(slurp_file($node->logfile),
	qr/statistics are not cached on .*\n.*DETAIL:  Without shared_preload_libraries, a Redis target reached through Sentinel or a Redis Cluster serves no cached values/,
	'and the server log says why');
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'wm_perf'\n");
$node->restart;

# ---------------------------------------------------------------------------
# 3. Glob rules are refused.
# ---------------------------------------------------------------------------
$node->safe_psql('app',
	"INSERT INTO wm_cache_rules (rule_name, table_role, key_pattern) VALUES ('glob', 'routes', 'app:routes:page:*')");
my $failed = metric($node, 'app', 'invalidation', 'invalidations_failed');
toggle();
ok( wait_until(sub {
			metric($node, 'app', 'invalidation', 'invalidations_failed') > $failed
		}),
	'a glob rule on a cluster fails (counted in invalidations_failed)');
my $log = slurp_file($node->logfile);
like($log, qr/glob rules of wm_cache_rules are not supported on a Redis Cluster/,
	'and the worker says why');
$node->safe_psql('app', "DELETE FROM wm_cache_rules WHERE rule_name = 'glob'");

# ---------------------------------------------------------------------------
# 4. The cluster down.
# ---------------------------------------------------------------------------
stop_redis($nodes[ (grep { $ports[$_] == $a_port } 0 .. 2)[0] ][0], 'KILL');
ok( wait_until(sub { redis_cli($c_port, 'CLUSTER', 'INFO') =~ /cluster_state:fail/ }),
	'with A killed, the cluster is down');
my ($e13, undef, $e14, undef, $m7, $err7) = two_reads();
is("$e13 $e14", 't t', 'cluster down: exact');
is($m7, '0|0|2', 'cluster down: both calls compute');
like($err7, qr/CLUSTERDOWN/, 'the WARNING names -CLUSTERDOWN');

$node->stop;
stop_redis($_->[0]) foreach @nodes;
done_testing();
