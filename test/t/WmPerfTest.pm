# WmPerfTest.pm: helpers shared by the TAP tests in test/t/
#
# Not a test itself (prove runs test/t/*.pl only).  Each test loads it with
#   use FindBin;
#   use lib $FindBin::RealBin;
#   use WmPerfTest;
#
# Redis: every test starts its own redis-server on 127.0.0.1, on a port from
# PostgreSQL::Test::Cluster::get_free_port(), without persistence, in the
# foreground (fork/exec, so we hold its pid).  Servers are stopped by pid
# with stop_redis(), and whatever is still running is killed by pid in the
# END block below, also when a test dies half-way.

package WmPerfTest;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use File::Basename qw(dirname);
use IPC::Run;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(
  redis_server_bin redis_cli_bin start_redis stop_redis redis_cli
  start_sentinel redis_run_id redis_server_ident wm_value_key wait_for_redis_key load_fixture create_plain_functions
  psql_sqlstate metric wm_keys wm_cluster_prefix wait_until redis_calls
  redis_diff redis_node wm_config_key
);

# pid => port of every redis-server this process started and has not stopped.
my %redis_pids;

sub redis_server_bin
{
	return $ENV{REDIS_SERVER} || 'redis-server';
}

# redis-cli next to redis-server when REDIS_SERVER is a path, else on PATH.
sub redis_cli_bin
{
	my $server = redis_server_bin();
	if ($server =~ m{/})
	{
		my $cli = dirname($server) . '/redis-cli';
		return $cli if -x $cli;
	}
	return 'redis-cli';
}

# start_redis(port => N, args => [...], password => PW)
# Returns ($pid, $port) once the server answers PING.
sub start_redis
{
	my (%opts) = @_;
	my $port = $opts{port} // PostgreSQL::Test::Cluster::get_free_port();
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my @cmd = (
		redis_server_bin(), '--port', $port,
		'--bind', '127.0.0.1',
		'--save', '', '--appendonly', 'no', '--daemonize', 'no',
		'--dir', $dir, '--logfile', "$dir/redis.log",
		@{ $opts{args} // [] });
	push @cmd, '--requirepass', $opts{password} if defined $opts{password};

	my $pid = fork();
	die "fork failed: $!" unless defined $pid;
	if ($pid == 0)
	{
		exec(@cmd) or POSIX::_exit(127);
	}
	$redis_pids{$pid} = $port;

	my @auth = defined $opts{password}
	  ? ('-a', $opts{password}, '--no-auth-warning')
	  : ();
	for (1 .. 100)
	{
		return ($pid, $port) if redis_cli($port, @auth, 'PING') eq 'PONG';
		die "redis-server exited early (see $dir/redis.log)"
		  if waitpid($pid, POSIX::WNOHANG()) == $pid;
		usleep(100_000);
	}
	die "redis-server on port $port did not answer PING within 10 s";
}

# start_sentinel(monitor => [name, port], down_after => ms, failover_timeout => ms,
#                password => PW, config => [lines])
# A Redis Sentinel (redis-server --sentinel) on 127.0.0.1, quorum 1, with a
# config file of its own (Sentinel rewrites it); password: "requirepass PW"
# (clients must AUTH); config: more lines for the file (e.g. an ACL "user").
# Returns ($pid, $port) once it answers PING; stopped like a redis-server
# (stop_redis, END block).
sub start_sentinel
{
	my (%opts) = @_;
	my $port = $opts{port} // PostgreSQL::Test::Cluster::get_free_port();
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my ($name, $mport) = @{ $opts{monitor} };
	my $down = $opts{down_after} // 500;
	my $fto = $opts{failover_timeout} // 2000;
	open(my $fh, '>', "$dir/sentinel.conf") or die "sentinel.conf: $!";
	print $fh "port $port\nbind 127.0.0.1\ndaemonize no\ndir $dir\n",
	  "logfile $dir/sentinel.log\n",
	  "sentinel monitor $name 127.0.0.1 $mport 1\n",
	  "sentinel down-after-milliseconds $name $down\n",
	  "sentinel failover-timeout $name $fto\n",
	  "sentinel parallel-syncs $name 1\n",
	  (defined $opts{password} ? "requirepass $opts{password}\n" : ''),
	  map { "$_\n" } @{ $opts{config} // [] };
	close($fh);
	my $pid = fork();
	die "fork failed: $!" unless defined $pid;
	if ($pid == 0)
	{
		exec(redis_server_bin(), "$dir/sentinel.conf", '--sentinel')
		  or POSIX::_exit(127);
	}
	$redis_pids{$pid} = $port;
	my @auth = defined $opts{password}
	  ? ('-a', $opts{password}, '--no-auth-warning')
	  : ();
	for (1 .. 100)
	{
		return ($pid, $port) if redis_cli($port, @auth, 'PING') eq 'PONG';
		die "sentinel exited early (see $dir/sentinel.log)"
		  if waitpid($pid, POSIX::WNOHANG()) == $pid;
		usleep(100_000);
	}
	die "sentinel on port $port did not answer PING within 10 s";
}

# Stop one redis-server by pid (SIGTERM by default) and reap it.
sub stop_redis
{
	my ($pid, $signal) = @_;
	$signal //= 'TERM';
	return unless defined $pid && exists $redis_pids{$pid};
	kill $signal, $pid;
	waitpid($pid, 0);
	delete $redis_pids{$pid};
	return;
}

END
{
	# Keep the test's exit status: waitpid sets $?.
	local $?;
	foreach my $pid (keys %redis_pids)
	{
		kill 'KILL', $pid;
		waitpid($pid, 0);
	}
	%redis_pids = ();
}

# redis_cli($port, args...): stdout, trailing newline removed ('' for nil).
sub redis_cli
{
	my ($port, @args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ redis_cli_bin(), '-h', '127.0.0.1', '-p', $port, @args ],
		'<', \'', '>', \$out, '2>', \$err);
	$out =~ s/\n\z//;
	return $out;
}

# The first 12 characters of the server's run_id, as wm_perf puts in keys.
sub redis_run_id
{
	my ($port, @auth) = @_;
	my $info = redis_cli($port, @auth, 'INFO', 'server');
	$info =~ /^run_id:([0-9a-f]+)/m or die "no run_id in INFO server";
	return substr($1, 0, 12);
}

# The server's identity as wm_perf puts it in value keys (redis.c):
# "<run id>.<replication id>", 12 characters of each.
sub redis_server_ident
{
	my ($port, @auth) = @_;
	my $info = redis_cli($port, @auth, 'INFO', 'server');
	$info =~ /^run_id:([0-9a-f]+)/m or die "no run_id in INFO server";
	my $run = substr($1, 0, 12);
	$info = redis_cli($port, @auth, 'INFO', 'replication');
	$info =~ /^master_replid:([0-9a-f]+)/m or die "no master_replid in INFO replication";
	return "$run." . substr($1, 0, 12);
}

# A value key is <before> ":s<tag>" <after>, where the tag (cache.c) names
# the PostgreSQL server's shared memory segment and the scope's local
# generation ("s0" without preload); it cannot be read from outside.  Returns
# the stored key of that form with the highest local generation (the one the
# latest store used), or a key of that form that does not exist.
sub wm_value_key
{
	my ($port, $before, $after, @auth) = @_;
	my $esc = sub { (my $x = shift) =~ s/([*?\[\]\\])/\\$1/g; $x };
	my %gen;
	foreach my $k (wm_keys($port, $esc->($before) . ':s*' . $esc->($after), @auth))
	{
		$gen{$k} = $1 // 0
		  if $k =~ /^\Q$before\E:s(?:[0-9a-f]{12}\.(\d+)|0)\Q$after\E\z/;
	}
	my @keys = sort { $gen{$b} <=> $gen{$a} } keys %gen;
	return @keys ? $keys[0] : "$before:s(none stored)$after";
}

# Poll (up to $secs, default 10) until GET $key satisfies $pred; returns the
# last value seen.
sub wait_for_redis_key
{
	my ($port, $key, $pred, $secs, @auth) = @_;
	$secs //= 10;
	my $v;
	for (1 .. $secs * 10)
	{
		$v = redis_cli($port, @auth, 'GET', $key);
		return $v if $pred->($v);
		usleep(100_000);
	}
	return $v;
}

# All keys matching a pattern, sorted.
sub wm_keys
{
	my ($port, $pattern, @auth) = @_;
	my $out = redis_cli($port, @auth, '--scan', '--pattern', $pattern);
	return sort grep { $_ ne '' } split /\n/, $out;
}

# The first segments of every key of this cluster: "<wm_perf.key_prefix>:v2:
# {<system identifier>}" (xact.c, key_cluster(); the braces are a Redis
# Cluster hash tag).  Then
#   <prefix>:epoch
#   <prefix>:<db oid>:gen:<scope>
#   <prefix>:<db oid>:<scope>:<run id 12>.<replid 12>:e<epoch>:g<gen>:s<tag>:<fn>:<args>:c<table oids>:u<role oid>
# (the table oids: wm_config_key()).
sub wm_cluster_prefix
{
	my ($node) = @_;
	my $sysid = $node->safe_psql('postgres',
		'SELECT system_identifier FROM pg_control_system()');
	return "wm_perf:v2:{$sysid}";
}

# The "c<oids>" segment of a value key: the tables a scope's values are
# computed from (routes; bins, customers, service_events), as cache.c
# writes it.
sub wm_config_key
{
	my ($node, $db, $scope) = @_;
	my @roles = $scope eq 'routes' ? ('routes') : ('bins', 'customers', 'service_events');
	my @oids = map {
		$node->safe_psql($db,
			"SELECT relid::oid FROM wm_perf_config WHERE role = '$_'")
	} @roles;
	return 'c' . join('.', @oids);
}

# redis_node(NAME, REDIS_PORT, setting => value, ...): a new, started cluster
# with shared_preload_libraries = 'wm_perf', Redis on 127.0.0.1:REDIS_PORT and
# the given wm_perf.* settings (values as written in postgresql.conf).
sub redis_node
{
	my ($name, $port, %settings) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf',
		join('', "shared_preload_libraries = 'wm_perf'\n",
			"wm_perf.redis_host = '127.0.0.1'\n",
			"wm_perf.redis_port = $port\n",
			map { "wm_perf.$_ = $settings{$_}\n" } sort keys %settings));
	$node->start;
	return $node;
}

# A database with the fixture (scale 0.002) and wm_perf attached.
sub load_fixture
{
	my ($node, $db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->command_ok(
		[
			'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
			'-v', 'scale=0.002', '-d', $node->connstr($db),
			'-f', 'test/fixtures/schema.sql',
			'-f', 'test/fixtures/generate.sql'
		],
		'fixture loaded into ' . $node->name . "/$db");
	$node->safe_psql($db, 'CREATE EXTENSION wm_perf CASCADE');
	return;
}

# public.plain_route_stats(territory) and public.plain_bin_stats(customer):
# the statistics of DESIGN.md section 4 in plain SQL (SECURITY INVOKER, so
# row-level security applies to them exactly as to the caller), without
# "computedAt".  Compare with  wm_..._statistics(...) - 'computedAt'.
sub create_plain_functions
{
	my ($node, $db) = @_;
	$node->safe_psql(
		$db, q{
CREATE FUNCTION public.plain_route_stats(p_territory text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql STABLE AS $$
WITH r AS (
	SELECT * FROM core.routes
	 WHERE deleted_at IS NULL
	   AND (p_territory IS NULL OR territory::text = p_territory))
SELECT jsonb_build_object(
	'total', (SELECT count(*) FROM r),
	'byStatus', (SELECT coalesce(jsonb_object_agg(k, n), '{}')
				   FROM (SELECT status::text AS k, count(*) AS n FROM r GROUP BY 1) x),
	'byType', (SELECT coalesce(jsonb_object_agg(k, n), '{}')
				 FROM (SELECT route_type::text AS k, count(*) AS n FROM r
						WHERE route_type IS NOT NULL GROUP BY 1) x),
	'byServiceDay', (SELECT jsonb_object_agg(d, (SELECT count(*) FROM r WHERE service_day::text = d))
					   FROM unnest(ARRAY['monday', 'tuesday', 'wednesday', 'thursday',
										 'friday', 'saturday', 'sunday']) d),
	'optimization', (SELECT jsonb_build_object(
						'aiOptimized', count(*) FILTER (WHERE ai_optimized),
						'avgOptimizationScore', round(avg(optimization_score), 2),
						'avgDistanceMiles', round(avg(estimated_distance_miles), 2),
						'avgDurationMinutes', round(avg(estimated_duration_minutes), 2))
					   FROM r))
$$;

CREATE FUNCTION public.plain_bin_stats(p_customer uuid DEFAULT NULL)
RETURNS jsonb LANGUAGE sql STABLE AS $$
WITH b AS (
	SELECT b.* FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
	 WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL
	   AND (p_customer IS NULL OR b.customer_id = p_customer)),
e AS (
	SELECT e.* FROM core.service_events e JOIN operations.customers c ON c.id = e.customer_id
	 WHERE e.deleted_at IS NULL AND c.deleted_at IS NULL
	   AND e.created_at >= current_date - 30
	   AND (p_customer IS NULL OR e.customer_id = p_customer))
SELECT jsonb_build_object(
	'total', (SELECT count(*) FROM b),
	'active', (SELECT count(*) FROM b WHERE status::text = 'active'),
	'smartBins', (SELECT jsonb_build_object(
					'gpsEnabled', count(*) FILTER (WHERE gps_enabled),
					'sensorEnabled', count(*) FILTER (WHERE sensor_enabled),
					'any', count(*) FILTER (WHERE gps_enabled OR sensor_enabled))
				   FROM b),
	'avgFillLevel', (SELECT round(avg(fill_level_percent), 2) FROM b),
	'needingService', (SELECT count(*) FROM b
						WHERE status::text = 'active'
						  AND (fill_level_percent >= 80 OR next_service_date < current_date)),
	'avgCapacityCubicYards', (SELECT round(avg(capacity_cubic_yards), 2) FROM b),
	'byStatus', (SELECT coalesce(jsonb_object_agg(k, n), '{}')
				   FROM (SELECT status::text AS k, count(*) AS n FROM b GROUP BY 1) x),
	'byType', (SELECT coalesce(jsonb_object_agg(k, n), '{}')
				 FROM (SELECT bin_type::text AS k, count(*) AS n FROM b GROUP BY 1) x),
	'byMaterial', (SELECT coalesce(jsonb_object_agg(k, n), '{}')
					 FROM (SELECT material::text AS k, count(*) AS n FROM b
							WHERE material IS NOT NULL GROUP BY 1) x),
	'serviceEventsLast30Days', jsonb_build_object(
		'total', (SELECT count(*) FROM e),
		'byType', (SELECT coalesce(jsonb_object_agg(k, n), '{}')
					 FROM (SELECT event_type::text AS k, count(*) AS n FROM e GROUP BY 1) x)))
$$;
});
	return;
}

# Run SQL expecting an error; returns (sqlstate or '', stderr).
# Options: extra_params => [...] (e.g. ['-U', 'role']).
sub psql_sqlstate
{
	my ($node, $db, $sql, %opts) = @_;
	my ($out, $err) = ('', '');
	$node->psql(
		$db, $sql,
		stdout => \$out,
		stderr => \$err,
		extra_params => [ '-v', 'VERBOSITY=verbose', @{ $opts{extra_params} // [] } ]);
	my $state = $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : '';
	return ($state, $err);
}

# One column of a wm_perf_metrics row (superuser session).
sub metric
{
	my ($node, $db, $function, $column) = @_;
	return $node->safe_psql($db,
		"SELECT $column FROM wm_perf_metrics WHERE function_name = '$function'");
}

# Poll a condition every 50 ms for up to 15 s; true once it held.
sub wait_until
{
	my ($cond) = @_;
	for (1 .. 300)
	{
		return 1 if $cond->();
		usleep(50_000);
	}
	return 0;
}

# Calls per command of the Redis server on $port (INFO itself excluded).
sub redis_calls
{
	my ($port) = @_;
	my %c;
	foreach (split /\r?\n/, redis_cli($port, 'INFO', 'commandstats'))
	{
		$c{$1} = $2 if /^cmdstat_([^:]+):calls=(\d+)/;
	}
	delete $c{info};
	return \%c;
}

# The commands run between two redis_calls() snapshots: "eval+2 get+1".
sub redis_diff
{
	my ($before, $after) = @_;
	return join(' ',
		map { "$_+" . ($after->{$_} - ($before->{$_} // 0)) }
		grep { $after->{$_} != ($before->{$_} // 0) } sort keys %$after);
}

1;
