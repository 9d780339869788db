# 060_logical_replication.pl: changes applied by logical replication
# invalidate the subscriber's cache (DESIGN.md section 5).
#
# The apply worker fires no statement triggers, only row triggers enabled
# REPLICA or ALWAYS: attach creates wm_perf_invalidate_<role>_repl for that.
# Publisher and subscriber hold the same fixture; the subscriber, with
# wm_perf preloaded and Redis configured, caches its route statistics; an
# UPDATE on the publisher, once applied, must make the subscriber's next
# read exact.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WmPerfTest;

my ($redis_pid, $port) = start_redis();

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->start;
load_fixture($pub, 'app');

my $sub = redis_node('subscriber', $port);
load_fixture($sub, 'app');
create_plain_functions($sub, 'app');

is($sub->safe_psql('app',
		"SELECT tgenabled FROM pg_trigger WHERE tgname = 'wm_perf_invalidate_routes_repl'"),
	'R', 'the subscriber has the REPLICA row trigger on routes');

$pub->safe_psql('app', 'CREATE PUBLICATION wm_pub FOR TABLE core.routes');
$sub->safe_psql('app',
	"CREATE SUBSCRIPTION wm_sub CONNECTION '" . $pub->connstr . " dbname=app"
	  . "' PUBLICATION wm_pub WITH (copy_data = false)");
$pub->wait_for_catchup('wm_sub');

my $exact = q{SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats()};

# Prime the subscriber's cache: a miss, then a hit.
$sub->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
is($sub->safe_psql('app', "$exact;\n$exact"), "t\nt", 'subscriber: primed, exact');
is($sub->safe_psql('app',
		"SELECT cache_hits || '|' || cache_misses FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics'"),
	'1|1', 'subscriber: the value is cached');
my $before = $sub->safe_psql('app', q{SELECT wm_route_statistics() -> 'byStatus' ->> 'archived'});

# A change on the publisher, applied on the subscriber.
$pub->safe_psql('app',
	q{UPDATE core.routes SET status = 'archived'
	   WHERE route_number = (SELECT min(route_number) FROM core.routes
							  WHERE status <> 'archived' AND deleted_at IS NULL)});
$pub->wait_for_catchup('wm_sub');

is($sub->safe_psql('app', $exact), 't',
	'subscriber: after the apply, the statistics are exact (the cached value is not served)');
is($sub->safe_psql('app', q{SELECT wm_route_statistics() -> 'byStatus' ->> 'archived'}),
	$before + 1, 'subscriber: the applied change is counted');
cmp_ok(
	$sub->safe_psql('app',
		"SELECT invalidations_recorded FROM wm_perf_metrics WHERE function_name = 'invalidation'"),
	'>=', 1, 'subscriber: the apply worker recorded the invalidation');

# A row whose change no statistic reads: recorded nothing new.
my $recorded = $sub->safe_psql('app',
	"SELECT invalidations_recorded FROM wm_perf_metrics WHERE function_name = 'invalidation'");
$pub->safe_psql('app',
	q{UPDATE core.routes SET updated_at = updated_at + interval '1 second'
	   WHERE route_number = (SELECT min(route_number) FROM core.routes)});
$pub->wait_for_catchup('wm_sub');
is($sub->safe_psql('app',
		"SELECT invalidations_recorded FROM wm_perf_metrics WHERE function_name = 'invalidation'"),
	$recorded, 'subscriber: an applied updated_at-only change invalidates nothing');

$sub->safe_psql('app', 'DROP SUBSCRIPTION wm_sub');
$sub->stop;
$pub->stop;
stop_redis($redis_pid);
done_testing();
