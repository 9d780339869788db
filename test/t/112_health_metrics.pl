# 112_health_metrics.pl: the latency histograms of wm_perf_metrics and
# wm_perf_health() across backends, and the postgres_exporter queries file
# (src/metrics.c, docs/postgres_exporter.yaml).
#
#  1. with shared_preload_libraries the histograms are cluster-wide: two
#     open sessions each see the other's calls, and a third session sees the
#     sum (counts, +Inf bucket, calls);
#  2. a statistics call and a radius lookup held up 0.6 s behind an ACCESS
#     EXCLUSIVE lock land in no bucket of 500 ms or less, and the two p95
#     rows of wm_perf_health() miss their targets (ok false, at least
#     500 ms: interpolated inside the first bucket above 500 ms);
#  3. every query of docs/postgres_exporter.yaml, run as a member of
#     pg_monitor, returns exactly the columns the file declares (a HISTOGRAM
#     column X with X_bucket, X_sum and X_count), numbers where it declares
#     numbers, and the known counts;
#  4. without preload the histograms are each backend's own.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use CPAN::Meta::YAML;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use WmPerfTest;

# Preload, no Redis: the statistics bypass the cache, every call is timed.
my $node = PostgreSQL::Test::Cluster->new('health_metrics');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'wm_perf'\n");
$node->start;
load_fixture($node, 'app');

# Four numbers of one function's row, from a fresh session:
# "calls latency_count +Inf-bucket cluster_wide".
sub hist
{
	my ($fn, $session) = @_;
	my $sql = "SELECT calls || ' ' || latency_count || ' ' || latency_buckets[14] || ' ' || cluster_wide
		  FROM wm_perf_metrics WHERE function_name = '$fn'";
	return $session ? $session->query_safe($sql) : $node->safe_psql('app', $sql);
}

# ---------------------------------------------------------------------------
# 1. Cluster-wide with preload: two sessions add up.
# ---------------------------------------------------------------------------
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my $a = $node->background_psql('app');
my $b = $node->background_psql('app');
$a->query_safe('SELECT wm_route_statistics() FROM generate_series(1, 3)');
$a->query_safe('SELECT count(*) FROM generate_series(1, 2) i, wm_bins_within_radius(29.7604, -95.3698, i, 5)');
is(hist('wm_route_statistics', $b), '3 3 3 true', 'session B sees the 3 calls of session A');
$b->query_safe('SELECT wm_route_statistics() FROM generate_series(1, 4)');
$b->query_safe('SELECT wm_bin_statistics()');
$b->query_safe('SELECT count(*) FROM wm_routes_within_radius(29.7604, -95.3698, 20, 10)');
is(hist('wm_route_statistics', $a), '7 7 7 true', 'session A sees its 3 and the 4 of session B');
$a->quit;
$b->quit;
is(hist('wm_route_statistics'), '7 7 7 true', 'a third session: 7 calls, count 7, +Inf bucket 7');
is(hist('wm_bin_statistics'), '1 1 1 true', 'wm_bin_statistics: 1');
is(hist('wm_bins_within_radius'), '2 2 2 true', 'wm_bins_within_radius: 2');
is(hist('wm_routes_within_radius'), '1 1 1 true', 'wm_routes_within_radius: 1');
is( $node->safe_psql(
		'app', q{SELECT count(*) FROM wm_perf_metrics
		 WHERE latency_count IS NOT NULL
		   AND (SELECT bool_and(x <= y) FROM unnest(latency_buckets[1:13], latency_buckets[2:14]) u(x, y))}),
	'4',
	'the four histograms are cumulative');

# ---------------------------------------------------------------------------
# 2. Calls held up behind a lock: slow buckets, p95 targets missed.
# ---------------------------------------------------------------------------
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my $holder = $node->background_psql('app');
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE core.routes, core.bins IN ACCESS EXCLUSIVE MODE');
my %victim;
foreach my $q ('SELECT wm_route_statistics() IS NOT NULL',
	'SELECT count(*) FROM wm_bins_within_radius(29.7604, -95.3698, 5, 5)')
{
	my $s = $node->background_psql('app');
	$s->query_until(qr/started/, "\\echo started\n$q;\n");
	$victim{$q} = $s;
}
ok( wait_until(
		sub {
			$node->safe_psql('app',
				"SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND relation IN ('core.routes'::regclass, 'core.bins'::regclass)"
			) eq '2';
		}),
	'both calls wait for the lock');
usleep(600_000);
$holder->query_safe('COMMIT');
$holder->quit;
$_->quit foreach values %victim;

is( $node->safe_psql(
		'app', q{SELECT string_agg(function_name || ' ' || latency_count || ' ' || latency_buckets[10], ', ' ORDER BY function_name COLLATE "C")
		  FROM wm_perf_metrics WHERE function_name IN ('wm_route_statistics', 'wm_bins_within_radius')}),
	'wm_bins_within_radius 1 0, wm_route_statistics 1 0',
	'one call each, none in a bucket of 500 ms or less');
is( $node->safe_psql(
		'app', q{SELECT string_agg(check_name || ' ' || ok || ' ' || (value >= 500), ', ' ORDER BY check_name COLLATE "C")
		  FROM wm_perf_health() WHERE check_name LIKE '%p95%'}),
	'radius_p95_ms false true, statistics_p95_ms false true',
	'wm_perf_health: both p95 targets missed, at least 500 ms');

# ---------------------------------------------------------------------------
# 3. Every query of the postgres_exporter file, as a pg_monitor member.
# ---------------------------------------------------------------------------
$node->safe_psql('app', 'CREATE ROLE regress_wm_exporter LOGIN IN ROLE pg_monitor');
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
$node->safe_psql('app', 'SELECT wm_route_statistics() FROM generate_series(1, 5)');
$node->safe_psql('app',
	'SELECT count(*) FROM generate_series(1, 3) i, wm_routes_within_radius(29.7604, -95.3698, 10 * i, 10)');

# A redundant index for the advice counts: one more row than without it.
my $redundant0 = $node->safe_psql('app', 'SELECT count(*) FROM wm_index_redundant()');
$node->safe_psql('app',
	'CREATE INDEX regress_exporter_dup ON core.bins (customer_id) WHERE deleted_at IS NULL');

my $yaml = CPAN::Meta::YAML->read('docs/postgres_exporter.yaml')
  or die 'docs/postgres_exporter.yaml: ' . CPAN::Meta::YAML->errstr;
my $queries = $yaml->[0];
is_deeply(
	[ sort keys %$queries ],
	[qw(wm_perf_call_duration wm_perf_function wm_perf_health wm_perf_index_advice wm_perf_invalidation)],
	'the file holds the five namespaces');

my $num = qr/^-?(?:\d+(?:\.\d*)?(?:e[-+]?\d+)?|NaN|Infinity)$/i;
my %rows;    # namespace => [ { column => value } ]
foreach my $ns (sort keys %$queries)
{
	my $q = $queries->{$ns};
	ok(defined $q->{query} && ref $q->{metrics} eq 'ARRAY', "$ns: a query and its metrics");

	# The declared columns and their usage.
	my %usage;
	foreach my $m (@{ $q->{metrics} })
	{
		my ($col) = keys %$m;
		$usage{$col} = $m->{$col}{usage};
		if ($usage{$col} eq 'HISTOGRAM')
		{
			$usage{"${col}_$_"} = "HISTOGRAM_$_" foreach qw(bucket sum count);
		}
	}

	my ($out, $err) = ('', '');
	my $rc = $node->psql(
		'app', $q->{query},
		stdout => \$out,
		stderr => \$err,
		# unaligned (-A, the default here) with the header line first
		extra_params => [
			'-U', 'regress_wm_exporter', '-F', "\t",
			'-P', 'tuples_only=off', '-P', 'footer=off'
		],
		on_error_stop => 1);
	is($rc . $err, '0', "$ns: the query runs as a pg_monitor member");
	my ($head, @lines) = split /\n/, $out;
	my @cols = split /\t/, ($head // '');
	is_deeply([ sort @cols ], [ sort keys %usage ], "$ns: exactly the declared columns");

	my @bad;
	foreach my $line (@lines)
	{
		my %r;
		@r{@cols} = split /\t/, $line, -1;
		push @{ $rows{$ns} }, \%r;
		foreach my $c (@cols)
		{
			my ($u, $v) = ($usage{$c}, $r{$c});
			next unless defined $u;
			if ($u eq 'LABEL')
			{
				push @bad, "$c empty" if $v eq '';
			}
			elsif ($u eq 'HISTOGRAM' || $u eq 'HISTOGRAM_bucket')
			{
				push @bad, "$c not an array of numbers: $v"
				  unless $v =~ /^\{[^{}]*\}$/
				  && !grep { $_ !~ $num } split /,/, substr($v, 1, -1);
			}
			elsif ($u eq 'COUNTER' || $u eq 'HISTOGRAM_count' || $u eq 'HISTOGRAM_sum')
			{
				push @bad, "$c not a number: '$v'" unless $v =~ $num;
			}
			elsif ($u eq 'GAUGE')
			{
				# NULL (empty) is exported as NaN
				push @bad, "$c not a number: '$v'" unless $v eq '' || $v =~ $num;
			}
			else
			{
				push @bad, "$c: unknown usage $u";
			}
		}
	}
	is(join('; ', @bad), '', "$ns: every value has its declared kind");
}

my %fn = map { $_->{function_name} => $_ } @{ $rows{wm_perf_function} };
is(join(' ', sort keys %fn),
	'wm_bin_statistics wm_bins_within_radius wm_route_statistics wm_routes_within_radius',
	'wm_perf_function: one row per function');
is( join(' ', map { "$fn{$_}{calls_total}/$fn{$_}{cluster_wide}" } sort keys %fn),
	'0/1 0/1 5/1 3/1',
	'wm_perf_function: the known calls, cluster-wide');

my %h = map { $_->{function_name} => $_ } @{ $rows{wm_perf_call_duration} };
is( $h{wm_route_statistics}{seconds},
	'{0.0005,0.001,0.002,0.005,0.01,0.02,0.05,0.1,0.2,0.5,1,2,5}',
	'histogram: the bounds in seconds, without +Inf');
is( join(' ', map { "$_=$h{$_}{seconds_count}" } sort keys %h),
	'wm_bin_statistics=0 wm_bins_within_radius=0 wm_route_statistics=5 wm_routes_within_radius=3',
	'histogram: the counts');
my @failed_shape;
foreach my $f (sort keys %h)
{
	my @b = split /,/, substr($h{$f}{seconds_bucket}, 1, -1);
	push @failed_shape, "$f: 13 buckets" unless @b == 13;
	push @failed_shape, "$f: not cumulative"
	  if grep { $b[$_] > $b[ $_ + 1 ] } 0 .. $#b - 1;
	push @failed_shape, "$f: a bucket above the count"
	  if $b[-1] > $h{$f}{seconds_count};
	push @failed_shape, "$f: a sum without calls"
	  if $h{$f}{seconds_count} == 0 && $h{$f}{seconds_sum} != 0;
	push @failed_shape, "$f: calls without time"
	  if $h{$f}{seconds_count} > 0 && $h{$f}{seconds_sum} <= 0;
}
is(join('; ', @failed_shape), '', 'histogram: 13 cumulative buckets within the count, a sum with the calls');

is(scalar @{ $rows{wm_perf_invalidation} }, 1, 'wm_perf_invalidation: one row');
my %adv = map { $_->{kind} => $_ } @{ $rows{wm_perf_index_advice} };
is( join(' ', map { "$_=$adv{$_}{indexes}/$adv{$_}{safe_to_drop}" } sort keys %adv),
	join(' ',
		'redundant=' . $node->safe_psql('app',
			'SELECT count(*) || \'/\' || count(*) FILTER (WHERE safe) FROM wm_index_redundant()'),
		'unused=0/0'),
	'wm_perf_index_advice: the counts of wm_index_redundant() (no sample yet: nothing unused)');
cmp_ok($adv{redundant}{indexes}, '>', $redundant0,
	'wm_perf_index_advice: the duplicate index is counted');

my %hr = map { $_->{check_name} => $_ } @{ $rows{wm_perf_health} };
is( join(' ', sort keys %hr),
	'connections_used_ratio index_buffer_hit_ratio invalid_indexes radius_p95_ms slow_statements statistics_cache_hit_ratio statistics_p95_ms table_buffer_hit_ratio',
	'wm_perf_health: the eight checks');
is( join(' ', map { "$_=$hr{$_}{value}/$hr{$_}{ok}" } qw(invalid_indexes statistics_cache_hit_ratio)),
	'invalid_indexes=0/1 statistics_cache_hit_ratio=/',
	'wm_perf_health: no invalid index (ok 1); no cache lookup without Redis (no value, no verdict)');

# ---------------------------------------------------------------------------
# 4. Without preload: each backend's own.
# ---------------------------------------------------------------------------
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->restart;
my $c = $node->background_psql('app');
$c->query_safe('SELECT wm_route_statistics() FROM generate_series(1, 2)');
is(hist('wm_route_statistics', $c), '2 2 2 false', 'without preload: the session sees its own 2 calls');
is(hist('wm_route_statistics'), '0 0 0 false', 'another session sees none of them');
$c->quit;

$node->stop;
done_testing();
