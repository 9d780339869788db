# 100_maintained.pl: the maintained aggregates behind wm_bin_statistics()
# (maintain.c, issue 12) across a crash, on hot standbys, through pg_dump
# and restore, and with deltas piled up until wm_statistics_compact().
#
# Every check reads with wm_perf.cache_enabled = off, so that a whole-fleet
# call reads the maintained state, and in one REPEATABLE READ transaction,
# so that wm_statistics_verify() (the maintained state against a full
# computation, no row when they agree, a row 'state' when the state cannot
# serve the caller), wm_bin_statistics() and plain_bin_stats() (the plain
# SQL definition) all read one snapshot.  The DEBUG1 message of
# compute_bin_statistics() names the path a call took.
#
# Proved:
#  1. Crash.  A loop of pickups (insert a service event, update a bin; one
#     transaction each, READ COMMITTED, so writers fold now and then) is
#     running, and another transaction is open with a pickup (its deltas
#     written), when the primary is stopped in immediate mode.  After the restart the state equals the full computation and
#     the plain SQL: the committed pickups count, the open transaction
#     counts nothing, and later writes keep it exact.
#  2. Hot standbys.  A streaming standby configured like the primary (Redis
#     configured) and one without Redis and with recovery_min_apply_delay =
#     2s read the maintained state (not a full computation) and equal the
#     full computation on the standby, before and after writes on the
#     primary.  The delayed standby, read right after a primary commit, is
#     exact for what it has replayed (without the commit, as long as the
#     delay has not passed), and exact with it once replayed.
#  3. pg_dump and restore.  No dump holds a row of the wm_agg_* tables.  A
#     plain dump restored with psql comes back with no state (the restore's
#     DDL on the attached tables only invalidates it: no rebuild per ALTER
#     TABLE); calls compute in full and are exact, and the first write
#     statement rebuilds.  A schema-only dump then a
#     data-only dump, restored in that order, load the tables before the
#     configuration rows: no state; until the first write, calls compute in
#     full (verify returns the 'state' row) and are exact; the first writer
#     statement rebuilds, its own change included, and from then on the
#     state serves and is exact, on the primary and on the standby.  A
#     second writer whose statement runs while the rebuilding transaction
#     is open records its delta, and both are counted once.
#  4. No fold.  Writers in REPEATABLE READ transactions never fold, and the
#     worker (SIGSTOPped here) folds nothing anyway: each statement leaves
#     exactly one delta row per table it feeds, reads stay exact, and
#     wm_statistics_compact() shrinks every table to one row per group,
#     exact before and after (also on the standby).

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use WmPerfTest;

my ($redis_pid, $port) = start_redis();

# A primary with preload and Redis, able to stream.
my $node = redis_node('maintained', $port);
$node->append_conf('postgresql.conf',
	"wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\n");
$node->restart;
load_fixture($node, 'app');
create_plain_functions($node, 'app');

my $tmp = PostgreSQL::Test::Utils::tempdir();

# pids of the processes started here (psql loop) and of a SIGSTOPped
# worker: ended or resumed by pid, also when the test dies half-way.
my ($loop_pid, $stopped_worker);
END
{
	local $?;
	if (defined $loop_pid)
	{
		kill 'KILL', $loop_pid;
		waitpid($loop_pid, 0);
	}
	kill 'CONT', $stopped_worker if defined $stopped_worker;
}

# The maintained state against the full computation and the plain SQL, in
# one snapshot: "differences=N items=... exact=t|f".
sub state_of
{
	my ($n, $db) = @_;
	return $n->safe_psql(
		$db, q{
BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL wm_perf.cache_enabled = off;
SELECT format('differences=%s items=%s exact=%s', v.n, v.items,
			  ((wm_bin_statistics() - 'computedAt') = plain_bin_stats())::text)
  FROM (SELECT count(*) AS n, coalesce(string_agg(item, ',' ORDER BY item), '') AS items
		  FROM wm_statistics_verify()) v;
COMMIT;});
}

# The path one whole-fleet call takes (cache off), from its DEBUG1 message.
sub path_of
{
	my ($n, $db) = @_;
	my ($out, $err) = ('', '');
	$n->psql(
		$db,
		"SET wm_perf.cache_enabled = off; SET client_min_messages = debug1;
		 SELECT wm_bin_statistics() IS NOT NULL",
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1);
	my @paths = $err =~ /wm_perf bin statistics (read from the maintained aggregates|computed in full)/g;
	return join(',', @paths);
}

sub plain_of
{
	my ($n, $db) = @_;
	return $n->safe_psql($db, 'SELECT plain_bin_stats()::text');
}

# Rows of the three delta tables (superuser): "bins|due|events".
sub delta_rows
{
	my ($n, $db) = @_;
	return $n->safe_psql($db,
		'SELECT (SELECT count(*) FROM wm_agg_bins) || \'|\' || (SELECT count(*) FROM wm_agg_bins_due)'
		  . ' || \'|\' || (SELECT count(*) FROM wm_agg_events)');
}

# The delta tables hold one row per group: "t|t|t".
sub one_row_per_group
{
	my ($n, $db) = @_;
	return $n->safe_psql(
		$db, q{
SELECT (SELECT count(*) = count(DISTINCT (status, bin_type, material)) FROM wm_agg_bins)
	   || '|' || (SELECT count(*) = count(DISTINCT (bin_type, material, due)) FROM wm_agg_bins_due)
	   || '|' || (SELECT count(*) = count(DISTINCT (event_type, hour)) FROM wm_agg_events)});
}

# Wait until a standby has replayed the primary's WAL flushed so far.  Polled on
# the standby: with recovery_min_apply_delay the walreceiver reports the
# replay position to the primary only every wal_receiver_status_interval.
sub replayed
{
	my ($s) = @_;
	my $lsn = $node->lsn('flush');
	$s->poll_query_until('postgres', "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")
	  or die $s->name . " did not replay up to $lsn";
	return;
}

# The pid of the wm_perf worker of a node (a child of its postmaster; it
# has no database connection, so pg_stat_activity does not list it).
sub worker_pid
{
	my ($n) = @_;
	my ($postmaster) = split /\n/, slurp_file($n->data_dir . '/postmaster.pid');
	foreach my $stat (glob '/proc/[0-9]*/stat')
	{
		my $text = eval { slurp_file($stat) } // next;
		my ($pid, $ppid) = $text =~ /^(\d+) \(.*\) \S+ (\d+)/s or next;
		next unless $ppid == $postmaster;
		my $cmd = eval { slurp_file("/proc/$pid/cmdline") } // next;
		return $pid if $cmd =~ /^postgres: (?:[^:]+: )?wm_perf worker/;
	}
	return '';
}

my $exact = 'differences=0 items= exact=true';
my $maintained = 'read from the maintained aggregates';

is(state_of($node, 'app'), $exact, 'after attach: the maintained state is exact');
is(path_of($node, 'app'), $maintained, 'after attach: a call reads the maintained state');

# Live bins of live customers, by bin number (deterministic fixture).
my $live_bins = q{
	SELECT b.id, b.customer_id FROM core.bins b JOIN operations.customers c ON c.id = b.customer_id
	 WHERE b.deleted_at IS NULL AND c.deleted_at IS NULL};

# ---------------------------------------------------------------------------
# 1. Crash during writes.
# ---------------------------------------------------------------------------
# The open transaction: a pickup on bin H of customer C, uncommitted.  (Not
# a customer's soft delete: that locks bins and service_events in SHARE
# mode until commit, and the pickups would wait for it.)
my ($held_bin, $held_customer) = split /\|/, $node->safe_psql('app',
	"$live_bins AND b.status = 'active' ORDER BY b.bin_number LIMIT 1");
my $held_fill = $node->safe_psql('app',
	"SELECT coalesce(fill_level_percent::text, 'null') FROM core.bins WHERE id = '$held_bin'");
my $gone_customer = $node->safe_psql('app',
	"SELECT customer_id FROM ($live_bins) x WHERE customer_id <> '$held_customer'
	  GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1");

my $open = $node->background_psql('app');
$open->query_safe(
	qq{BEGIN;
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
VALUES ('00000000-0000-0000-0002-000000000001', '$held_customer', 'pickup', 'completed', now(), now());
UPDATE core.bins SET fill_level_percent = CASE WHEN fill_level_percent = 3 THEN 4 ELSE 3 END
 WHERE id = '$held_bin';});
my $agg_counts = q{SELECT (SELECT count(*) FROM wm_agg_bins) || '|' || (SELECT count(*) FROM wm_agg_events)};
my ($ob, $oe) = split /\|/, $open->query_safe($agg_counts);
my ($cb, $ce) = split /\|/, $node->safe_psql('app', $agg_counts);
is(($ob - $cb) . '|' . ($oe - $ce), '1|1',
	'the open transaction has written its deltas (one row in wm_agg_bins, one in wm_agg_events)');

# The loop: one pickup per transaction (a random live bin other than H),
# its next service date around today, until the crash ends it.
my $loop = qq{DO \$\$
DECLARE
	r record;
	i int := 0;
BEGIN
	LOOP
		i := i + 1;
		SELECT x.id, x.customer_id INTO r FROM ($live_bins) x
		 WHERE x.id <> '$held_bin'
		 ORDER BY random() LIMIT 1;
		INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
		VALUES (('00000000-0000-0000-0001-' || lpad(i::text, 12, '0'))::uuid, r.customer_id,
				'pickup', 'completed', now(), now());
		UPDATE core.bins SET fill_level_percent = (random() * 100)::int,
			   next_service_date = current_date + (random() * 6)::int - 3
		 WHERE id = r.id;
		COMMIT;
	END LOOP;
END
\$\$;};
$loop_pid = fork();
die "fork failed: $!" unless defined $loop_pid;
if ($loop_pid == 0)
{
	open(STDOUT, '>', "$tmp/loop.out") or POSIX::_exit(127);
	open(STDERR, '>', "$tmp/loop.err") or POSIX::_exit(127);
	exec($node->installed_command('psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1',
		'-d', $node->connstr('app'), '-c', $loop)
	  or POSIX::_exit(127);
}

my $loop_count = q{SELECT count(*) FROM core.service_events
	WHERE id::text LIKE '00000000-0000-0000-0001-%'};
ok(wait_until(sub { $node->safe_psql('app', $loop_count) >= 200 }),
	'the loop has committed at least 200 pickups');
my $running = waitpid($loop_pid, POSIX::WNOHANG());
my $loop_status = $running == $loop_pid ? $? >> 8 : undef;
is($running, 0, 'the loop is still running at the crash');
my $committed_before = $node->safe_psql('app', $loop_count);

$node->stop('immediate');
if ($running == 0)
{
	waitpid($loop_pid, 0);
	$loop_status = $? >> 8;
}
undef $loop_pid;
isnt($loop_status, 0, "the loop ended with the crash (psql exit status $loop_status)");
like(slurp_file("$tmp/loop.err"),
	qr/immediate shutdown|server closed the connection unexpectedly|connection to server was lost/,
	'the loop lost its connection mid-write');
$open->quit;

$node->start;
my $committed_after = $node->safe_psql('app', $loop_count);
cmp_ok($committed_after, '>=', $committed_before,
	"after the restart: the committed pickups are there ($committed_before before, $committed_after after)");
is( $node->safe_psql(
		'app', qq{
SELECT (SELECT count(*) FROM core.service_events WHERE id = '00000000-0000-0000-0002-000000000001')
	   || '|' || (SELECT coalesce(fill_level_percent::text, 'null') FROM core.bins WHERE id = '$held_bin')}),
	"0|$held_fill",
	'after the restart: nothing of the open transaction is there');
is(state_of($node, 'app'), $exact,
	'after the restart: verify returns no row and wm_bin_statistics() equals plain SQL');
is(path_of($node, 'app'), $maintained, 'after the restart: a call reads the maintained state');

# Writes after recovery keep it exact.
$node->safe_psql(
	'app', qq{
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
VALUES ('00000000-0000-0000-0002-000000000002', '$held_customer', 'pickup', 'completed', now(), now());
UPDATE core.bins SET fill_level_percent = 95 WHERE id = '$held_bin';
UPDATE operations.customers SET deleted_at = now() WHERE id = '$gone_customer';});
is(state_of($node, 'app'), $exact, 'after the restart: a pickup and a soft delete, still exact');

# ---------------------------------------------------------------------------
# 2. Hot standbys.
# ---------------------------------------------------------------------------
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
my $delayed = PostgreSQL::Test::Cluster->new('delayed');
$delayed->init_from_backup($node, 'b1', has_streaming => 1);
$delayed->append_conf('postgresql.conf',
	"recovery_min_apply_delay = '2s'\nwm_perf.redis_host = ''\n");
$delayed->start;
$node->wait_for_catchup($standby, 'replay', $node->lsn('flush'));
replayed($delayed);

is($standby->safe_psql('app', 'SELECT pg_is_in_recovery()') . '|'
	  . $delayed->safe_psql('app', q{SELECT pg_is_in_recovery()::text || current_setting('wm_perf.redis_host')}),
	't|true', 'two hot standbys, the delayed one without Redis');
foreach my $s ($standby, $delayed)
{
	my $name = $s->name;
	is(state_of($s, 'app'), $exact,
		"$name: verify returns no row and wm_bin_statistics() equals plain SQL on the standby");
	is(path_of($s, 'app'), $maintained, "$name: a call reads the maintained state");
	is(plain_of($s, 'app'), plain_of($node, 'app'), "$name: caught up, the same statistics as the primary");
}

# Writes on the primary: pickups, a customer restored (its bins and events
# move back in), bins retired.
$node->safe_psql(
	'app', qq{
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
SELECT ('00000000-0000-0000-0003-' || lpad(i::text, 12, '0'))::uuid, x.customer_id, 'inspection',
	   'completed', now() - i * interval '1 hour', now()
  FROM generate_series(1, 20) i, ($live_bins ORDER BY b.bin_number LIMIT 1 OFFSET 7) x;
UPDATE operations.customers SET deleted_at = NULL WHERE id = '$gone_customer';
UPDATE core.bins SET status = 'retired'
 WHERE id IN (SELECT id FROM core.bins WHERE status = 'active' ORDER BY bin_number DESC LIMIT 15);});
my $primary_plain = plain_of($node, 'app');
$node->wait_for_catchup($standby, 'replay', $node->lsn('flush'));
is(state_of($standby, 'app'), $exact, 'standby: after writes on the primary, exact');
is(plain_of($standby, 'app'), $primary_plain, 'standby: the statistics of the primary after the writes');

# The delayed standby, read right after a primary commit.
replayed($delayed);
my $old_plain = plain_of($delayed, 'app');
is($old_plain, $primary_plain, 'delayed: caught up before the next commit');
my $marker = '00000000-0000-0000-0004-000000000001';
my $t0 = time();
$node->safe_psql(
	'app', qq{
BEGIN;
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
VALUES ('$marker', '$held_customer', 'complaint', 'completed', now(), now());
UPDATE core.bins SET status = 'lost' WHERE id = '$held_bin';
COMMIT;});
my $new_plain = plain_of($node, 'app');
isnt($new_plain, $old_plain, 'the commit changed the statistics on the primary');
my $read = $delayed->safe_psql(
	'app', qq{
BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL wm_perf.cache_enabled = off;
SELECT (SELECT count(*) FROM wm_statistics_verify()) || '|'
	   || ((wm_bin_statistics() - 'computedAt') = plain_bin_stats())::text || '|'
	   || (SELECT count(*) FROM core.service_events WHERE id = '$marker') || E'\\x1f'
	   || plain_bin_stats()::text;
COMMIT;});
my $elapsed = time() - $t0;
my ($read_check, $read_plain) = split /\x1f/, $read;
my ($read_diff, $read_exact, $read_seen) = split /\|/, $read_check;
is("$read_diff|$read_exact", '0|true',
	'delayed: read right after the commit, verify returns no row and the call equals plain SQL on the standby');
SKIP:
{
	skip sprintf('the read ended %.1f s after the commit began, the delay may have passed', $elapsed), 1
	  if $elapsed >= 2;
	is("$read_seen|$read_plain", "0|$old_plain",
		sprintf('delayed: %.2f s after the commit, not replayed yet: the statistics before it', $elapsed));
}
replayed($delayed);
my $waited = time() - $t0;
cmp_ok($waited, '>=', 2, sprintf('delayed: the commit was replayed after the delay (%.1f s)', $waited));
is(state_of($delayed, 'app'), $exact, 'delayed: after the replay, exact');
is( $delayed->safe_psql('app', "SELECT count(*) FROM core.service_events WHERE id = '$marker'") . '|'
	  . plain_of($delayed, 'app'),
	"1|$new_plain", 'delayed: after the replay, the statistics of the primary after the commit');
is(path_of($delayed, 'app'), $maintained, 'delayed: a call reads the maintained state');
$delayed->stop;

# ---------------------------------------------------------------------------
# 3. pg_dump and restore.
# ---------------------------------------------------------------------------
# A plain dump, restored with psql: the dump holds no row of the wm_agg_*
# tables; the restore's own DDL on the attached tables after their
# maintenance triggers (ALTER TABLE ... ENABLE ALWAYS TRIGGER on customers,
# the foreign keys) invalidates, never rebuilds; the first write rebuilds.
my $dump = "$tmp/dump.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('app'), '-f', $dump ], 'pg_dump (plain format)');
my $dump_text = slurp_file($dump);
my @agg_rows = $dump_text =~ /^(?:COPY|INSERT INTO) \S*wm_agg_\w+/mg;
is(scalar(@agg_rows), 0, 'the dump has no COPY or INSERT of a wm_agg_* table');
like($dump_text, qr/^COPY core\.bins /m, 'the dump has the rows of core.bins');
like($dump_text, qr/^COPY public\.wm_perf_config /m, 'the dump has the rows of wm_perf_config');

# psql -f FILE into a new database DB (ON_ERROR_STOP).
sub restore
{
	my ($db, @files) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->command_ok(
		[
			'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr($db), map { ('-f', $_) } @files
		],
		"plain psql restore into $db");
	return;
}

my $state_for_core = q{
	SELECT count(*) FROM wm_agg_state
	 WHERE (bins, customers, service_events) = ('core.bins'::regclass, 'operations.customers'::regclass,
												'core.service_events'::regclass)};

restore('restored', $dump);
is($node->safe_psql('restored', 'SELECT count(*) FROM wm_agg_state'), '0',
	'restored: no state after the restore');
is( $node->safe_psql('restored',
		"SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relname = 'wm_agg_state'"),
	'0', 'restored: the restore rebuilt nothing (its DDL only invalidates)');
is(state_of($node, 'restored'), 'differences=1 items=state exact=true',
	"restored, before any write: verify returns the 'state' row, and the call equals plain SQL");
my $restored_bin = $node->safe_psql('restored',
	"SELECT id FROM ($live_bins AND b.status = 'active') x ORDER BY id LIMIT 1");
$node->safe_psql('restored',
	"UPDATE core.bins SET status = 'maintenance', fill_level_percent = 99 WHERE id = '$restored_bin'");
is($node->safe_psql('restored', $state_for_core), '1',
	'restored: the first write built the state for the restored tables');
is(state_of($node, 'restored'), $exact, 'restored: after a write, verify returns no row and the call equals plain SQL');
is(path_of($node, 'restored'), $maintained, 'restored: after a write, a call reads the maintained state');
is(one_row_per_group($node, 'restored'), 'true|true|true', 'restored: one row per group (built, not replayed deltas)');

# A schema-only dump restored, then a data-only dump: the configuration
# rows come last (public sorts after core and operations), so the rows
# arrive unattached and no state is built.  Until the first write, calls
# compute in full; the first writer statement rebuilds, its own change
# included.
my ($schema_dump, $data_dump) = ("$tmp/schema.sql", "$tmp/data.sql");
$node->command_ok([ 'pg_dump', '--schema-only', '-d', $node->connstr('app'), '-f', $schema_dump ],
	'pg_dump --schema-only');
$node->command_ok([ 'pg_dump', '--data-only', '-d', $node->connstr('app'), '-f', $data_dump ],
	'pg_dump --data-only');
my $data_text = slurp_file($data_dump);
@agg_rows = $data_text =~ /^(?:COPY|INSERT INTO) \S*wm_agg_\w+/mg;
is(scalar(@agg_rows), 0, 'the data-only dump has no COPY or INSERT of a wm_agg_* table');
like($data_text, qr/^COPY core\.bins .*^COPY public\.wm_perf_config /ms,
	'the data-only dump loads the tables before the configuration rows');
restore($_, $schema_dump, $data_dump) foreach ('split', 'split2');

is(delta_rows($node, 'split') . '|' . $node->safe_psql('split', 'SELECT count(*) FROM wm_agg_state'),
	'0|0|0|0', 'split: the wm_agg_* tables are empty, no state row');
my $state_row = 'differences=1 items=state exact=true';
is(state_of($node, 'split'), $state_row,
	"split, before any write: verify returns the 'state' row, and the call equals plain SQL");
is( $node->safe_psql('split', 'SELECT statistic, item, maintained IS NULL, computed FROM wm_statistics_verify()'),
	'bins|state|t|"not maintained for this caller"', "split: the 'state' row");
is(path_of($node, 'split'), 'computed in full', 'split, before any write: a call computes in full');
$node->wait_for_catchup($standby, 'replay', $node->lsn('flush'));
is(state_of($standby, 'split'), $state_row, "standby, split, before any write: the 'state' row, exact");

# One write statement on bins rebuilds, its own change included.
my $split_bin = $node->safe_psql('split',
	"SELECT id FROM ($live_bins AND b.status = 'active') x ORDER BY id LIMIT 1");
my $plain_before = plain_of($node, 'split');
$node->safe_psql('split',
	"UPDATE core.bins SET status = 'maintenance', fill_level_percent = 99 WHERE id = '$split_bin'");
isnt(plain_of($node, 'split'), $plain_before, 'split: the write changed the statistics');
is($node->safe_psql('split', $state_for_core), '1',
	'split: the first write statement built the state for the restored tables');
is(one_row_per_group($node, 'split'), 'true|true|true', 'split: the rebuild wrote one row per group, no delta besides');
is(state_of($node, 'split'), $exact, 'split, after one write: verify returns no row and the call equals plain SQL');
is(path_of($node, 'split'), $maintained, 'split, after one write: a call reads the maintained state');
$node->wait_for_catchup($standby, 'replay', $node->lsn('flush'));
is(state_of($standby, 'split'), $exact, 'standby, split, after the write: exact');
is(path_of($standby, 'split'), $maintained, 'standby, split, after the write: a call reads the maintained state');

# split2: the rebuilding transaction stays open while another writer
# commits (its statement finds no state row and the rebuild's lock taken:
# it records its delta), then a third writes after the commit.
my ($s2_a, $s2_b, $s2_c) = split /\n/, $node->safe_psql('split2',
	"SELECT id FROM ($live_bins AND b.status = 'active') x ORDER BY id LIMIT 3");
my $rebuilder = $node->background_psql('split2');
$rebuilder->query_safe("BEGIN; UPDATE core.bins SET status = 'retired' WHERE id = '$s2_a'");
is($rebuilder->query_safe('SELECT count(*) FROM wm_agg_state'), '1',
	'split2: the first writer rebuilt (its state row, uncommitted)');
$node->safe_psql('split2',
	"UPDATE core.bins SET fill_level_percent = 81, next_service_date = current_date - 2 WHERE id = '$s2_b'");
is(state_of($node, 'split2'), $state_row,
	"split2: while the rebuild is uncommitted, the 'state' row, and the call is exact");
is($node->safe_psql('split2', 'SELECT count(*) FROM wm_agg_bins'), '1',
	'split2: the other writer recorded its delta (one row, committed)');
$rebuilder->query_safe('COMMIT');
$rebuilder->quit;
is(state_of($node, 'split2'), $exact, 'split2: after the rebuild commits, exact (the other writer counted once)');
$node->safe_psql(
	'split2', qq{
UPDATE core.bins SET deleted_at = now() WHERE id = '$s2_c';
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
SELECT '00000000-0000-0000-0005-000000000001', customer_id, 'pickup', 'completed', now(), now()
  FROM core.bins WHERE id = '$s2_b';});
is(state_of($node, 'split2'), $exact, 'split2: later writes, exact');

# ---------------------------------------------------------------------------
# 4. No fold: REPEATABLE READ writers, the worker stopped.
# ---------------------------------------------------------------------------
my $worker;
wait_until(sub { ($worker = worker_pid($node)) ne '' });
like($worker, qr/^\d+$/, "the wm_perf worker runs (pid $worker)");
kill 'STOP', $worker or die "cannot stop the worker: $!";
$stopped_worker = $worker;
ok( wait_until(
		sub { (split ' ', slurp_file("/proc/$worker/stat") =~ s/^.*\)\s*//sr)[0] eq 'T' }),
	'the worker is stopped (state T)');

# Start from one row per group; the bin whose fill level the writers
# toggle is live, active and below 80 either way (no due-date delta).
my ($fold_bin, $fold_customer) = split /\|/, $node->safe_psql('app',
	"$live_bins AND b.status = 'active' ORDER BY b.bin_number LIMIT 1 OFFSET 11");
$node->safe_psql('app', "BEGIN ISOLATION LEVEL REPEATABLE READ;
	UPDATE core.bins SET fill_level_percent = 20 WHERE id = '$fold_bin'; COMMIT;");
cmp_ok($node->safe_psql('app', 'SELECT wm_statistics_compact()'), '>=', 0, 'compacted');
is(one_row_per_group($node, 'app'), 'true|true|true', 'after a compact: one row per group');
my ($g0, $d0, $e0) = split /\|/, delta_rows($node, 'app');

my $writes = 60;
my $script = '';
for my $i (1 .. $writes)
{
	my $fill = $i % 2 ? 30 : 20;
	$script .= sprintf(
		"BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO core.service_events (id, customer_id, event_type, event_status, created_at, updated_at)
VALUES ('00000000-0000-0000-0006-%012d', '$fold_customer', 'pickup', 'completed', now(), now());
UPDATE core.bins SET fill_level_percent = $fill WHERE id = '$fold_bin';
COMMIT;\n", $i);
}
$node->safe_psql('app', $script);
is(delta_rows($node, 'app'), sprintf('%d|%d|%d', $g0 + $writes, $d0, $e0 + $writes),
	"$writes REPEATABLE READ pickups: one delta row each in wm_agg_bins and wm_agg_events, none folded");
is(state_of($node, 'app'), $exact, 'deltas piled up: exact');
is(path_of($node, 'app'), $maintained, 'deltas piled up: a call reads the maintained state');

my ($b1, $d1, $e1) = split /\|/, delta_rows($node, 'app');
my $removed = $node->safe_psql('app', 'SELECT wm_statistics_compact()');
my ($b2, $d2, $e2) = split /\|/, delta_rows($node, 'app');
is("$b2|$d2", "$g0|$d0", 'wm_statistics_compact(): wm_agg_bins and wm_agg_bins_due are back to one row per group');
is(one_row_per_group($node, 'app'), 'true|true|true', 'wm_statistics_compact(): one row per group in every table');
is($removed, ($b1 + $d1 + $e1) - ($b2 + $d2 + $e2),
	"wm_statistics_compact() returns the rows it removed ($removed)");
is(state_of($node, 'app'), $exact, 'after wm_statistics_compact(): exact');
is($node->safe_psql('app', 'SELECT wm_statistics_compact()'), '0', 'a second compact removes nothing');
$node->wait_for_catchup($standby, 'replay', $node->lsn('flush'));
is(state_of($standby, 'app'), $exact, 'standby: after the fold, exact');
is(plain_of($standby, 'app'), plain_of($node, 'app'), 'standby: the statistics of the primary after the fold');

kill 'CONT', $worker;
undef $stopped_worker;

$standby->stop;
$node->stop;
stop_redis($redis_pid);
done_testing();
