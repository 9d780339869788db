# 110_standby_lsn.pl: read-your-writes across a hot standby (issue 14 item
# 4; standby.c): wm_perf_commit_lsn() on the primary, wm_perf.min_lsn and
# wm_perf.min_lsn_timeout on a streaming standby.
#
# Proved:
#  1. wm_perf_commit_lsn() is NULL in a new session, unchanged by a read or
#     a ROLLBACK, and after a commit lies between the insert positions read
#     before and after it; a COMMIT PREPARED moves it too.
#  2. A standby's statistics equal a full computation on the standby (the
#     maintained state, wm_statistics_verify() empty, plain SQL equal).
#  3. recovery_min_apply_delay = 4s: a pickup committed on the primary is
#     not replayed when the standby call starts; with wm_perf.min_lsn set to
#     the primary's wm_perf_commit_lsn() the call waits and returns the
#     statistics with the pickup (the primary's, exactly).  A radius lookup
#     (statement snapshot) waits and then fails with 40001; the next
#     statement of the session sees the new bin.
#  4. pg_wal_replay_pause(): the statistics calls fail with 40001 after the
#     timeout (measured: at least the timeout, less than it plus 1.5 s); 0
#     fails at once; REPEATABLE READ fails the same way; a cancel ends the
#     wait at once (57014); after pg_wal_replay_resume() the call returns
#     the write, and a REPEATABLE READ transaction begun after the replay
#     is served.  Bad input is 22P02 on the standby too.
#  5. Promotion during a wait: replay paused, a write on the primary that
#     the standby has received but not replayed, a call on the standby
#     waiting for its LSN (timeout 60 s); pg_promote() (which ends the pause
#     and replays what was received before recovery ends): the call returns
#     without an error, well before the timeout, with the write, equal to
#     plain SQL on the promoted server.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use WmPerfTest;

# No Redis: a standby never uses the cache (cache.c), and the primary's
# cache plays no part in what is proved here.  The servers listen on unix
# sockets only.
my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'wm_perf'\nhot_standby = on\nmax_prepared_transactions = 5\n");
$node->start;
load_fixture($node, 'app');
create_plain_functions($node, 'app');
$node->safe_psql('app', 'CREATE TABLE public.prepared_rows (x int)');

# ---------------------------------------------------------------------------
# 1. wm_perf_commit_lsn() on the primary.
# ---------------------------------------------------------------------------
# VACUUM first: a read that prunes a page writes WAL at its commit (and so
# moves the value, harmlessly); nothing is left to prune after it.
$node->safe_psql('app', 'VACUUM');
is( $node->safe_psql(
		'app', q{
SELECT (wm_perf_commit_lsn() IS NULL)::text;
SELECT count(*) FROM core.bins;
SELECT (wm_perf_commit_lsn() IS NULL)::text;
BEGIN; INSERT INTO public.prepared_rows VALUES (0); ROLLBACK;
SELECT (wm_perf_commit_lsn() IS NULL)::text;}),
	"true\n" . $node->safe_psql('app', 'SELECT count(*) FROM core.bins') . "\ntrue\ntrue",
	'a new session: NULL, still NULL after a read and after a rolled-back write');

my $commit_check = $node->safe_psql(
	'app', q{
SELECT pg_current_wal_insert_lsn() AS before \gset
INSERT INTO public.prepared_rows VALUES (1);
SELECT pg_current_wal_insert_lsn() AS after \gset
SELECT wm_perf_commit_lsn() AS first \gset
SELECT count(*) FROM public.prepared_rows;
SELECT (wm_perf_commit_lsn() > :'before' AND wm_perf_commit_lsn() <= :'after')::text
	   || '|' || (wm_perf_commit_lsn() = :'first')::text;});
is($commit_check, "1\ntrue|true",
	'after a commit: between the insert positions before and after it; a read leaves it');

# COMMIT PREPARED in another session (no transaction id of its own): the
# end of its WAL.  (wm_perf refuses PREPARE only with pending invalidations;
# prepared_rows is not attached.)
$node->safe_psql('app',
	"BEGIN; INSERT INTO public.prepared_rows VALUES (2); PREPARE TRANSACTION 'p1';");
is( $node->safe_psql(
		'app', q{
SELECT pg_current_wal_insert_lsn() AS before \gset
SELECT (wm_perf_commit_lsn() IS NULL)::text;
COMMIT PREPARED 'p1';
SELECT (wm_perf_commit_lsn() > :'before' AND wm_perf_commit_lsn() <= pg_current_wal_insert_lsn())::text;}),
	"true\ntrue",
	'COMMIT PREPARED: NULL before, then past the insert position read before it');

# ---------------------------------------------------------------------------
# 2. A streaming standby: exact for what it has replayed.
# ---------------------------------------------------------------------------
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));

# The maintained state against the full computation and plain SQL, in one
# snapshot, after waiting for LSN (when given).
sub state_sql
{
	return q{
BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL wm_perf.cache_enabled = off;
SELECT (SELECT count(*) FROM wm_statistics_verify()) || '|'
	   || ((wm_bin_statistics() - 'computedAt') = plain_bin_stats())::text || '|'
	   || ((wm_route_statistics() - 'computedAt') = plain_route_stats())::text;
COMMIT;};
}
is($standby->safe_psql('app', state_sql()), '0|true|true',
	'standby: verify returns no row, both statistics equal plain SQL on the standby');
my ($out, $err) = ('', '');
$standby->psql('app',
	"SET wm_perf.cache_enabled = off; SET client_min_messages = debug1; SELECT wm_bin_statistics() IS NOT NULL",
	stdout => \$out, stderr => \$err, on_error_stop => 1);
like($err, qr/wm_perf bin statistics read from the maintained aggregates/,
	'standby: a call reads the maintained state');
is($standby->safe_psql('app', 'SELECT plain_bin_stats()::text'),
	$node->safe_psql('app', 'SELECT plain_bin_stats()::text'),
	'standby: caught up, the statistics of the primary');

# ---------------------------------------------------------------------------
# 3. recovery_min_apply_delay: the call waits, then includes the write.
# ---------------------------------------------------------------------------
$standby->safe_psql('postgres', "ALTER SYSTEM SET recovery_min_apply_delay = '4s'");
$standby->reload;
ok(wait_until(sub { $standby->safe_psql('postgres', 'SHOW recovery_min_apply_delay') eq '4s' }),
	'standby: recovery_min_apply_delay = 4s');

my ($bin, $customer) = split /\|/, $node->safe_psql('app', q{
	SELECT b.id || '|' || b.customer_id FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
	 WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL AND b.status = 'active'
	 ORDER BY b.bin_number LIMIT 1});
my $before = $node->safe_psql('app', 'SELECT plain_bin_stats()::text');

# One pickup (an event and a bin retired), its commit LSN.
my $lsn = $node->safe_psql(
	'app', qq{
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
VALUES ('00000000-0000-0000-0110-000000000001', '$customer', 'pickup', 'completed', now(), now());
UPDATE core.bins SET status = 'retired' WHERE id = '$bin';
SELECT wm_perf_commit_lsn();});
my $after = $node->safe_psql('app', 'SELECT plain_bin_stats()::text');
isnt($after, $before, 'the pickup changed the statistics on the primary');

my $waited = $standby->safe_psql(
	'app', qq{
SELECT (pg_last_wal_replay_lsn() >= '$lsn')::text;
SET wm_perf.min_lsn = '$lsn';
SET wm_perf.min_lsn_timeout = '30s';
SET wm_perf.cache_enabled = off;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
SELECT (wm_bin_statistics() - 'computedAt')::text;
SELECT (extract(epoch FROM clock_timestamp()) - :t0 > 0.1)::text
	   || '|' || (pg_last_wal_replay_lsn() >= '$lsn')::text;});
my ($replayed_at_start, $stats, $tail) = split /\n/, $waited;
is($replayed_at_start, 'false', 'delayed standby: the commit was not replayed when the call began');
is($stats, $after, 'delayed standby: with wm_perf.min_lsn the call waited and returned the primary\'s statistics after the pickup');
is($tail, 'true|true', 'delayed standby: the call took more than 0.1 s, and replay has passed the LSN');
is($standby->safe_psql('app', state_sql()), '0|true|true',
	'delayed standby: after the replay, exact');

# A radius lookup reads its statement's snapshot: it waits, fails with
# 40001, and the next statement sees the new bin.
my ($lat, $lon) = (40.7128, -74.0060);
my $new_bin = '00000000-0000-0000-0110-0000000000b1';
my $bin_lsn = $node->safe_psql(
	'app', qq{
INSERT INTO core.bins (id, bin_number, customer_id, bin_type, status, capacity_cubic_yards,
					   fill_level_percent, gps_enabled, sensor_enabled, location, created_at, updated_at)
VALUES ('$new_bin', 'B-110-1', '$customer', 'dumpster', 'active', 4, 10, true, false,
		ST_SetSRID(ST_MakePoint($lon, $lat), 4326), now(), now());
SELECT wm_perf_commit_lsn();});
($out, $err) = ('', '');
$standby->psql(
	'app', qq{
\\set VERBOSITY verbose
SELECT (pg_last_wal_replay_lsn() >= '$bin_lsn')::text;
SET wm_perf.min_lsn = '$bin_lsn';
SET wm_perf.min_lsn_timeout = '30s';
SELECT count(*) FROM wm_bins_within_radius($lat, $lon, 1, 5) WHERE id = '$new_bin';
SELECT count(*) FROM wm_bins_within_radius($lat, $lon, 1, 5) WHERE id = '$new_bin';},
	stdout => \$out, stderr => \$err, on_error_stop => 0);
is($out, "false\n1", 'delayed standby: radius lookup: not replayed at first; the next statement sees the new bin');
like($err, qr/ERROR:  40001: the snapshot of wm_bins_within_radius\(\) was taken before this standby replayed wm_perf\.min_lsn \Q$bin_lsn\E/,
	'delayed standby: the radius lookup of the first statement waited and failed with 40001');

$standby->safe_psql('postgres', 'ALTER SYSTEM RESET recovery_min_apply_delay');
$standby->reload;
ok(wait_until(sub { $standby->safe_psql('postgres', 'SHOW recovery_min_apply_delay') eq '0' }),
	'standby: recovery_min_apply_delay reset');
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));

# ---------------------------------------------------------------------------
# 4. Replay paused: bounded by the timeout, then 40001.
# ---------------------------------------------------------------------------
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
ok(wait_until(sub { $standby->safe_psql('postgres', 'SELECT pg_get_wal_replay_pause_state()') eq 'paused' }),
	'standby: replay paused');
my $paused_lsn = $node->safe_psql(
	'app', qq{
UPDATE core.bins SET status = 'lost' WHERE id = '$new_bin';
SELECT wm_perf_commit_lsn();});
my $paused_after = $node->safe_psql('app', 'SELECT plain_bin_stats()::text');

# SQL on the standby with min_lsn = the paused LSN and a timeout; returns
# (stdout, stderr, elapsed ms of the last statement as the server saw it).
sub timed_call
{
	my ($call, $timeout, %opts) = @_;
	my ($o, $e) = ('', '');
	my $begin = $opts{rr} ? "BEGIN ISOLATION LEVEL REPEATABLE READ;\n" : '';
	my $end = $opts{rr} ? "ROLLBACK;\n" : '';
	$standby->psql(
		'app', qq{
\\set VERBOSITY verbose
SET wm_perf.min_lsn = '$paused_lsn';
SET wm_perf.min_lsn_timeout = $timeout;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
$begin$call;
$end\\echo elapsed
SELECT round((extract(epoch FROM clock_timestamp()) - :t0) * 1000);},
		stdout => \$o, stderr => \$e, on_error_stop => 0);
	my ($elapsed) = $o =~ /elapsed\n(\d+)/;
	return ($o, $e, $elapsed // -1);
}

foreach my $call ('SELECT wm_bin_statistics()', 'SELECT wm_route_statistics()',
	'SELECT * FROM wm_routes_within_radius(40.7128, -74.0060, 5)')
{
	my ($o, $e, $ms) = timed_call($call, 1000);
	my $fn = $call =~ /(wm_\w+)/ ? $1 : $call;
	like($e, qr/ERROR:  40001: this standby has not replayed wm_perf\.min_lsn \Q$paused_lsn\E within 1000 ms/,
		"paused: $fn fails with 40001 naming the LSN and the timeout");
	like($e, qr/DETAIL:  Replay has reached [0-9A-F]+\/[0-9A-F]+; \Q$fn\E\(\) cannot include the commit yet\./,
		"paused: $fn: the detail names the replay position");
	ok($ms >= 1000 && $ms < 2500, "paused: $fn gave up after the timeout ($ms ms, bound 1000 .. 2500)");
}
{
	my ($o, $e, $ms) = timed_call('SELECT wm_bin_statistics()', 0);
	like($e, qr/ERROR:  40001: this standby has not replayed wm_perf\.min_lsn \Q$paused_lsn\E within 0 ms/,
		'paused: timeout 0 fails with 40001');
	ok($ms >= 0 && $ms < 1000, "paused: timeout 0 fails at once ($ms ms)");
	($o, $e, $ms) = timed_call('SELECT wm_bin_statistics()', 500, rr => 1);
	like($e, qr/ERROR:  40001: this standby has not replayed wm_perf\.min_lsn \Q$paused_lsn\E within 500 ms/,
		'paused: REPEATABLE READ fails with 40001 after the timeout');
	ok($ms >= 500 && $ms < 2000, "paused: REPEATABLE READ bounded ($ms ms)");
}

# A cancel ends the wait at once.
my $bg = $standby->background_psql('app', on_error_stop => 0);
$bg->query_safe("\\set VERBOSITY verbose\nSET wm_perf.min_lsn = '$paused_lsn'; SET wm_perf.min_lsn_timeout = '60s'");
$bg->query_until(qr/started/, "\\echo started\nSELECT wm_bin_statistics() IS NOT NULL;\n");
my $waiter = '';
ok( wait_until(
		sub {
			$waiter = $standby->safe_psql('postgres', q{
				SELECT pid FROM pg_stat_activity
				 WHERE wait_event_type = 'Extension' AND query LIKE 'SELECT wm_bin_statistics()%'});
			$waiter ne '';
		}),
	'paused: the call waits (wait event type Extension)');
my $t0 = time();
$standby->safe_psql('postgres', "SELECT pg_cancel_backend($waiter)");
my ($after_cancel) = $bg->query('SELECT 1');
my $cancel_s = time() - $t0;
like($bg->{stderr}, qr/ERROR:  57014: canceling statement due to user request/,
	'paused: pg_cancel_backend() ends the wait (57014)');
ok($cancel_s < 5, sprintf('paused: the cancel took effect at once (%.2f s)', $cancel_s));
$bg->quit;

# Bad input on the standby.
my ($state) = psql_sqlstate($standby, 'app', "SET wm_perf.min_lsn = 'yesterday'");
is($state, '22P02', 'standby: a value that is not an LSN is 22P02');

# Resumed: the call returns the write.
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
is( $standby->safe_psql(
		'app', qq{
SET wm_perf.min_lsn = '$paused_lsn';
SET wm_perf.min_lsn_timeout = '30s';
SELECT (wm_bin_statistics() - 'computedAt')::text;}),
	$paused_after, 'resumed: the call returns the statistics after the write');
# REPEATABLE READ with an LSN replayed before the transaction began: served.
is($standby->safe_psql('app', "SET wm_perf.min_lsn = '$paused_lsn';\n" . state_sql()), '0|true|true',
	'resumed: a REPEATABLE READ transaction begun after the replay is served, and exact');

# ---------------------------------------------------------------------------
# 5. Promoted while a call waits.
# ---------------------------------------------------------------------------
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
ok(wait_until(sub { $standby->safe_psql('postgres', 'SELECT pg_get_wal_replay_pause_state()') eq 'paused' }),
	'promotion: replay paused');
my $promo_lsn = $node->safe_psql(
	'app', qq{
UPDATE core.bins SET status = 'maintenance' WHERE id = '$new_bin';
SELECT wm_perf_commit_lsn();});
my $promo_after = $node->safe_psql('app', 'SELECT plain_bin_stats()::text');
isnt($promo_after, $paused_after, 'promotion: the write changed the statistics on the primary');
ok( wait_until(sub {
			$standby->safe_psql('postgres', "SELECT pg_last_wal_receive_lsn() >= '$promo_lsn'") eq 't'
		}),
	'promotion: the standby has received the write');
is($standby->safe_psql('postgres', "SELECT pg_last_wal_replay_lsn() < '$promo_lsn'"), 't',
	'promotion: the write is not replayed yet');

my $pbg = $standby->background_psql('app', on_error_stop => 0);
$pbg->query_safe("\\set VERBOSITY verbose\nSET wm_perf.min_lsn = '$promo_lsn'; SET wm_perf.min_lsn_timeout = '60s'");
my $call_t0 = time();
$pbg->query_until(qr/started/,
	"\\echo started\nSELECT (wm_bin_statistics() - 'computedAt')::text AS stats;\n");
$waiter = '';
ok( wait_until(
		sub {
			$waiter = $standby->safe_psql('postgres', q{
				SELECT pid FROM pg_stat_activity
				 WHERE wait_event_type = 'Extension' AND query LIKE 'SELECT (wm_bin_statistics()%'});
			$waiter ne '';
		}),
	'promotion: the call waits for the LSN (wait event type Extension)');
my $promote_t0 = time();
is($standby->safe_psql('postgres', 'SELECT pg_promote()'), 't', 'promotion: pg_promote() succeeded');
my ($promo_out) = $pbg->query('SELECT pg_is_in_recovery()');
my $call_s = time() - $call_t0;
my $after_promote_s = time() - $promote_t0;
is($pbg->{stderr}, '', 'promotion: the waiting call raised no error and no warning');
my ($promo_stats, $in_recovery) = split /\n/, $promo_out;
is($in_recovery, 'f', 'promotion: the server is a primary now');
is($promo_stats, $promo_after,
	'promotion: the call returned the statistics with the write (the primary\'s plain SQL)');
is($standby->safe_psql('app', 'SELECT plain_bin_stats()::text'), $promo_after,
	'promotion: plain SQL on the promoted server gives the same');
cmp_ok($call_s, '<', 15,
	sprintf('promotion: the call returned well before its 60 s timeout (%.2f s in all, %.2f s after pg_promote() began)',
		$call_s, $after_promote_s));
$pbg->quit;
is($standby->safe_psql('app', state_sql()), '0|true|true',
	'promoted: verify returns no row, both statistics equal plain SQL');

$standby->stop;
$node->stop;
done_testing();
