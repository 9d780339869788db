# 050_prepare.pl: two-phase commit (DESIGN.md section 5, STYLE.md section 6).
#
# PREPARE TRANSACTION with pending invalidations is refused with 0A000 (the
# COMMIT PREPARED may run in another session, where nothing would deliver
# them).  A transaction with nothing pending prepares normally: one that
# touched no attached table, one whose only change was rolled back to a
# savepoint, one whose UPDATE changed no statistics column.
#
# Run twice: without shared_preload_libraries (the library is loaded by the
# trigger, in the middle of the transaction) and with it.  No Redis.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WmPerfTest;

foreach my $preload (0, 1)
{
	my $cfg = $preload ? 'preload' : 'no preload';
	my $node = PostgreSQL::Test::Cluster->new($preload ? 'prepare_preload' : 'prepare');
	$node->init;
	$node->append_conf('postgresql.conf', 'max_prepared_transactions = 5');
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'wm_perf'")
	  if $preload;
	$node->start;
	load_fixture($node, 'app');

	my $bin = $node->safe_psql('app', 'SELECT id FROM core.bins ORDER BY id LIMIT 1');
	my $fill = $node->safe_psql('app',
		"SELECT coalesce(fill_level_percent, 0) FROM core.bins WHERE id = '$bin'");
	my $new_fill = ($fill + 7) % 101;
	my $update =
	  "UPDATE core.bins SET fill_level_percent = $new_fill WHERE id = '$bin';";
	my $prepared = q{SELECT string_agg(gid, ',' ORDER BY gid) FROM pg_prepared_xacts};

	# 1. An UPDATE of an attached table: refused.  First statement of a fresh
	# session, so without preload the library is loaded by the trigger.
	my ($state, $err) = psql_sqlstate($node, 'app',
		"BEGIN;\n$update\nPREPARE TRANSACTION 'wm_refused';");
	is($state, '0A000', "$cfg: PREPARE TRANSACTION after an UPDATE of core.bins gives 0A000");
	like($err, qr/cannot prepare a transaction that changed tables wm_perf caches/,
		"$cfg: the message says why");
	is($node->safe_psql('app', $prepared), '', "$cfg: nothing was prepared");
	is( $node->safe_psql('app',
			"SELECT coalesce(fill_level_percent, 0) FROM core.bins WHERE id = '$bin'"),
		$fill,
		"$cfg: the refused transaction was rolled back");

	# Same for a manual flush.
	($state) = psql_sqlstate($node, 'app',
		"BEGIN;\nSELECT wm_cache_flush();\nPREPARE TRANSACTION 'wm_flush';");
	is($state, '0A000', "$cfg: PREPARE TRANSACTION after wm_cache_flush() gives 0A000");

	# 2. No attached table touched, fresh session: prepares and commits.
	$node->safe_psql(
		'app', q{
BEGIN;
CREATE TABLE public.prep_t (x int);
INSERT INTO public.prep_t VALUES (1);
PREPARE TRANSACTION 'wm_p1';
});
	is($node->safe_psql('app', $prepared), 'wm_p1',
		"$cfg: a transaction that touched no attached table prepares");
	$node->safe_psql('app', "COMMIT PREPARED 'wm_p1'");
	is($node->safe_psql('app', 'SELECT x FROM public.prep_t'), '1',
		"$cfg: COMMIT PREPARED works");

	# 3. Same session as a committed UPDATE (its pending state must be gone),
	# a savepoint rolled back, and an UPDATE of updated_at only.
	$node->safe_psql(
		'app', qq{
$update
BEGIN;
INSERT INTO public.prep_t VALUES (2);
PREPARE TRANSACTION 'wm_p2';
BEGIN;
SAVEPOINT s;
UPDATE core.bins SET fill_level_percent = $fill WHERE id = '$bin';
ROLLBACK TO SAVEPOINT s;
INSERT INTO public.prep_t VALUES (3);
PREPARE TRANSACTION 'wm_p3';
BEGIN;
UPDATE core.bins SET updated_at = '2001-02-03 04:05:06+00' WHERE id = '$bin';
PREPARE TRANSACTION 'wm_p4';
});
	is($node->safe_psql('app', $prepared), 'wm_p2,wm_p3,wm_p4',
		"$cfg: after a committed UPDATE, after a rolled-back savepoint, and for an updated_at-only UPDATE, PREPARE works"
	);
	$node->safe_psql('app',
		"COMMIT PREPARED 'wm_p2'; COMMIT PREPARED 'wm_p3'; COMMIT PREPARED 'wm_p4';");
	is( $node->safe_psql(
			'app', "SELECT string_agg(x::text, ',' ORDER BY x) FROM public.prep_t"),
		'1,2,3',
		"$cfg: the prepared transactions committed");
	is( $node->safe_psql(
			'app',
			"SELECT coalesce(fill_level_percent, 0) || ' ' || updated_at
			   FROM core.bins WHERE id = '$bin'"),
		$node->safe_psql('app',
			"SELECT $new_fill || ' ' || '2001-02-03 04:05:06+00'::timestamptz"),
		"$cfg: the committed and prepared UPDATEs are applied");

	$node->stop;
}

done_testing();
