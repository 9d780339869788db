# 001_dump_restore.pl: a plain-format pg_dump of an attached database,
# restored with plain psql, gives a working database with no manual step
# (DESIGN.md section 3): the attach indexes, the invalidation triggers
# (enabled ALWAYS), the materialized views (ordinary, populated objects),
# the configuration rows and the statistics are all the same as in the
# source, and the restored triggers still fire.
#
# No preload, no Redis: this is about the catalog, not the cache.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WmPerfTest;

my $node = PostgreSQL::Test::Cluster->new('dump_restore');
$node->init;
$node->start;

load_fixture($node, 'app');

my $dump = PostgreSQL::Test::Utils::tempdir() . '/dump.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('app'), '-f', $dump ],
	'pg_dump (plain format)');

$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[
		'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
		'-d', $node->connstr('restored'), '-f', $dump
	],
	'plain psql restore succeeds with ON_ERROR_STOP');

# Run the same query in both databases.
sub both
{
	my ($sql) = @_;
	return ($node->safe_psql('app', $sql), $node->safe_psql('restored', $sql));
}

# The seven indexes wm_perf_attach() creates.
my @index_names = qw(
  bins_customer_id_status_bin_type_idx bins_location_active_gist_idx
  routes_route_geometry_active_gist_idx routes_route_geometry_territory_gist_idx
  routes_territory_status_idx service_events_created_at_idx
  service_events_customer_id_created_at_idx);
my $index_list = join(', ', map { "'$_'" } @index_names);
my ($src, $dst) = both(
	"SELECT c.relname, pg_get_indexdef(c.oid)
	   FROM pg_class c
	  WHERE c.relkind = 'i' AND c.relname IN ($index_list)
	  ORDER BY c.relname COLLATE \"C\"");
is(scalar(split /\n/, $src), 7, 'source has the 7 attach indexes');
is($dst, $src, 'restored has the 7 attach indexes with identical definitions');

# Invalidation triggers: the sixteen statement triggers (4 tables x
# ins/upd/del/trunc) enabled ALWAYS, plus whatever else attach creates (the
# row triggers for logical replication apply, enabled REPLICA), all restored
# exactly as they were, enable state included.
my $trigger_sql = q{
	SELECT t.tgrelid::regclass::text, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid)
	  FROM pg_trigger t
	 WHERE t.tgname LIKE 'wm\_perf\_invalidate\_%'
	 ORDER BY t.tgrelid::regclass::text COLLATE "C", t.tgname COLLATE "C"};
($src, $dst) = both($trigger_sql);
my $n_triggers = scalar(split /\n/, $src);
is($dst, $src,
	"restored has the source's $n_triggers wm_perf_invalidate_* triggers, identical (definition and enable state)");
my $statement_triggers = q{
	SELECT count(*) FILTER (WHERE tgenabled = 'A'), count(*)
	  FROM pg_trigger
	 WHERE tgname ~ '^wm_perf_invalidate_(routes|bins|customers|service_events)_(ins|upd|del|trunc)$'};
is($node->safe_psql('restored', $statement_triggers), '16|16',
	'the 16 restored statement triggers exist and are enabled ALWAYS');

# Three materialized views in public, populated, same row counts.
my $mv_sql = q{
	SELECT c.relname, c.relispopulated
	  FROM pg_class c
	 WHERE c.relkind = 'm' AND c.relnamespace = 'public'::regnamespace
	 ORDER BY c.relname COLLATE "C"};
($src, $dst) = both($mv_sql);
is( $dst,
	"mv_bin_statistics|t\nmv_route_statistics|t\nmv_service_event_statistics|t",
	'restored has the 3 materialized views in public, populated');
is($dst, $src, 'same materialized views as the source');
is( $node->safe_psql(
		'restored',
		q{SELECT count(*) FROM pg_depend d
		   WHERE d.deptype = 'e' AND d.classid = 'pg_class'::regclass
			 AND d.objid IN (SELECT oid FROM pg_class WHERE relkind = 'm')}),
	'0',
	'restored materialized views are not extension members');
my $mv_counts = q{
	SELECT (SELECT count(*) FROM public.mv_route_statistics),
		   (SELECT count(*) FROM public.mv_bin_statistics),
		   (SELECT count(*) FROM public.mv_service_event_statistics)};
($src, $dst) = both($mv_counts);
ok($src !~ /(^|\|)0(\||$)/, "source materialized views are not empty ($src)");
is($dst, $src, 'restored materialized views have the same row counts');

# Configuration rows.
($src, $dst) = both(
	q{SELECT role, relid::text, attached_at FROM public.wm_perf_config
	   ORDER BY role COLLATE "C"});
is( $node->safe_psql('restored', 'SELECT count(*) FROM public.wm_perf_config'),
	'5', 'restored wm_perf_config has 5 rows');
is($dst, $src, 'wm_perf_config rows are identical');

# Statistics, computed from the restored tables.
($src, $dst) = both(q{SELECT wm_route_statistics() - 'computedAt'});
is($dst, $src, "wm_route_statistics() - 'computedAt' equals the source's");
($src, $dst) = both(q{SELECT wm_bin_statistics() - 'computedAt'});
is($dst, $src, "wm_bin_statistics() - 'computedAt' equals the source's");

# Attaching again recognises everything the restore brought back.
my $attach = $node->safe_psql('restored', 'SELECT * FROM wm_perf_attach()');
unlike($attach, qr/: (created|recreated)$|: attached as/m,
	'wm_perf_attach() in the restored database creates nothing');
is(scalar(grep { /: already present/ } split /\n/, $attach),
	7 + 3 + $n_triggers,
	"wm_perf_attach() finds the 7 indexes, 3 materialized views and $n_triggers triggers present");

# The restored triggers fire: in one session (no preload: metrics are per
# backend) an UPDATE of a statistics column records an invalidation.
my $fired = $node->safe_psql(
	'restored', q{
SELECT invalidations_recorded FROM wm_perf_metrics WHERE function_name = 'invalidation';
UPDATE core.routes SET status = CASE WHEN status = 'active' THEN 'inactive' ELSE 'active' END::core.enum_routes_status
 WHERE id = (SELECT min(id::text)::uuid FROM core.routes WHERE deleted_at IS NULL);
SELECT invalidations_recorded FROM wm_perf_metrics WHERE function_name = 'invalidation';
});
my ($before, $after) = split /\n/, $fired;
cmp_ok($after, '>', $before,
	"UPDATE in restored fires the invalidation trigger ($before -> $after)");

$node->stop;
done_testing();
