# 116_redis_sentinel_auth.pl: sentinels that require authentication
# (wm_perf.redis_sentinel_user, wm_perf.redis_sentinel_password_file;
# issue 14).
#
# A master M with a password of its own (wm_perf.redis_password_file) and a
# sentinel S with "requirepass" and an ACL user; wm_perf.redis_sentinels
# lists only S.
#
#  1. No sentinel password: S answers -NOAUTH, the master is not found: the
#     worker warns naming NOAUTH and cannot deliver the invalidations of the
#     fixture's load, so calls are exact and computed (bypasses, no hit, no
#     miss) and nothing is stored.
#  2. The right password file: the master is found, the second call is a
#     hit, the value is on M.  The epoch does not change: the sentinel
#     credentials are not part of the Redis target.
#  3. An ACL user (wm_perf.redis_sentinel_user) and its password: found, hits.
#  4. A wrong password in the file (read at every connection, no reload):
#     -WRONGPASS, not found, exact, the WARNING names WRONGPASS; no password
#     appears in the client's messages or the server log.  Then a password
#     file that does not exist: not found, exact, the WARNING says so.
#  5. Settings: PGC_SIGHUP, hidden from an ordinary role.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use WmPerfTest;

my $master_pw = 'M4ster-pw-116';
my $sentinel_pw = 'S3ntinel-pw-116';
my $user_pw = 'Acl-user-pw-116';
my $wrong_pw = 'Not-the-pw-116';
my @mauth = ('-a', $master_pw, '--no-auth-warning');

my ($m_pid, $m_port) = start_redis(password => $master_pw);
my ($s_pid, $s_port) = start_sentinel(
	monitor => [ 'wmmaster', $m_port ],
	password => $sentinel_pw,
	config => [
		"sentinel auth-pass wmmaster $master_pw",
		"user wmsent on >$user_pw +\@all"
	]);

my $dir = PostgreSQL::Test::Utils::tempdir();
sub write_file
{
	my ($path, $text) = @_;
	open(my $fh, '>', $path) or die "$path: $!";
	print $fh "$text\n";
	close($fh);
	chmod(0600, $path) or die "chmod $path: $!";
	return;
}
write_file("$dir/master.pass", $master_pw);
my $spass = "$dir/sentinel.pass";
write_file($spass, $sentinel_pw);

my $node = redis_node('sentinel_auth', $m_port,
	redis_host => "''",
	redis_sentinels => "'127.0.0.1:$s_port'",
	redis_sentinel_master => "'wmmaster'",
	redis_password_file => "'$dir/master.pass'",
	redis_connect_timeout => '200ms',
	redis_command_timeout => '200ms',
	redis_backoff => '100ms');
load_fixture($node, 'app');
create_plain_functions($node, 'app');

my $prefix = wm_cluster_prefix($node);
my $dboid = $node->safe_psql('app',
	'SELECT oid FROM pg_database WHERE datname = current_database()');

like(redis_cli($s_port, 'SENTINEL', 'get-master-addr-by-name', 'wmmaster'),
	qr/NOAUTH/, 'the sentinel requires authentication');
is( redis_cli($s_port, '-a', $sentinel_pw, '--no-auth-warning',
		'SENTINEL', 'get-master-addr-by-name', 'wmmaster'),
	"127.0.0.1\n$m_port", 'with its password the sentinel names M');

# Two reads in one new session (no local copies), 0.2 s apart (longer than
# the back-off, so that each call tries Redis): "exact exact" and
# "hits|misses|bypasses|errors" of wm_route_statistics(); and stderr.
sub two_reads
{
	my ($out, $err) = ('', '');
	$node->psql(
		'app', q{
SET wm_perf.local_cache_size = 0;
SELECT wm_perf_metrics_reset();
SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats();
SELECT pg_sleep(0.2);
SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats();
SELECT cache_hits || '|' || cache_misses || '|' || cache_bypasses || '|' || redis_errors
  FROM wm_perf_metrics WHERE function_name = 'wm_route_statistics';},
		stdout => \$out,
		stderr => \$err);
	my @lines = grep { $_ ne '' } split /\n/, $out;
	return ("$lines[0] $lines[1]", $lines[2], $err);
}
sub route_values
{
	return grep { /:routes:all:/ } wm_keys($m_port, "$prefix:$dboid:routes:*", @mauth);
}
sub reload_until
{
	my ($setting, $value) = @_;
	$node->reload;
	return wait_until(sub {
		$node->safe_psql('app', "SHOW $setting") eq $value });
}

# ---------------------------------------------------------------------------
# 1. No sentinel password: -NOAUTH.
# ---------------------------------------------------------------------------
like(slurp_file($node->logfile),
	qr/WARNING:  wm_perf could not connect to Redis at master "wmmaster" through wm_perf\.redis_sentinels: a sentinel requires authentication \(NOAUTH\)/,
	'no sentinel password: the worker\'s warning names NOAUTH');
isnt(metric($node, 'app', 'invalidation', 'invalidations_pending'), '0',
	'no sentinel password: the worker could not deliver the invalidations');
my ($exact, $counts, $err) = two_reads();
is($exact, 't t', 'no sentinel password: both calls are exact');
is($counts, '0|0|2|0', 'no sentinel password: computed, no hit, no miss (2 bypasses)');
is(scalar(route_values()), 0, 'no sentinel password: nothing stored on M');
is(redis_cli($m_port, @mauth, 'GET', "$prefix:epoch"), '',
	'no sentinel password: the worker did not reach M either');

# ---------------------------------------------------------------------------
# 2. The right password file.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres',
	"ALTER SYSTEM SET wm_perf.redis_sentinel_password_file = '$spass'");
ok(reload_until('wm_perf.redis_sentinel_password_file', $spass), 'password file set');
ok( wait_until(sub {
			redis_cli($m_port, @mauth, 'GET', "$prefix:epoch") ne ''
			  && metric($node, 'app', 'invalidation', 'invalidations_pending') eq '0'
		}),
	'the worker found M through the sentinel and bumped its epoch');
my $epoch = redis_cli($m_port, @mauth, 'GET', "$prefix:epoch");
($exact, $counts, $err) = two_reads();
is($exact, 't t', 'sentinel password: both calls are exact');
is($counts, '1|1|0|0', 'sentinel password: a miss, then a hit');
is($err, '', 'sentinel password: no warning');
is(scalar(route_values()), 1, 'sentinel password: the value is stored on M');

# ---------------------------------------------------------------------------
# 3. An ACL user of the sentinel.
# ---------------------------------------------------------------------------
write_file($spass, $user_pw);
$node->safe_psql('postgres', "ALTER SYSTEM SET wm_perf.redis_sentinel_user = 'wmsent'");
ok(reload_until('wm_perf.redis_sentinel_user', 'wmsent'), 'sentinel user set');
($exact, $counts, $err) = two_reads();
is($exact, 't t', 'ACL user: both calls are exact');
is($counts, '2|0|0|0', 'ACL user: the master is found, both calls hit');
is($err, '', 'ACL user: no warning');
is(redis_cli($m_port, @mauth, 'GET', "$prefix:epoch"), $epoch,
	'the epoch is unchanged: sentinel credentials are not part of the Redis target');

# ---------------------------------------------------------------------------
# 4. A wrong password: the file is read at every connection.
# ---------------------------------------------------------------------------
write_file($spass, $wrong_pw);
my $log_offset = -s $node->logfile;
($exact, $counts, $err) = two_reads();
is($exact, 't t', 'wrong sentinel password: both calls are exact');
is($counts, '0|0|2|2', 'wrong sentinel password: computed, no hit, no miss');
like($err,
	qr/WARNING:  wm_perf could not connect to Redis at master "wmmaster" through wm_perf\.redis_sentinels: a sentinel refused the credentials of wm_perf\.redis_sentinel_password_file \(WRONGPASS\)/,
	'wrong sentinel password: the warning names WRONGPASS');
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/a sentinel refused the credentials of wm_perf\.redis_sentinel_password_file \(WRONGPASS\)/,
	'wrong sentinel password: the server log has the warning');
my $all_log = slurp_file($node->logfile);
foreach my $pw ($master_pw, $sentinel_pw, $user_pw, $wrong_pw)
{
	unlike("$err\n$all_log", qr/\Q$pw\E/, "no password in messages or the server log ($pw)");
}

# The right one again: found at the next connection, no reload.
write_file($spass, $user_pw);
($exact, $counts, $err) = two_reads();
is("$exact $counts", 't t 2|0|0|0', 'the right password again: both calls hit');

# A file that cannot be read.
$node->safe_psql('postgres',
	"ALTER SYSTEM SET wm_perf.redis_sentinel_password_file = '$dir/missing.pass'");
ok(reload_until('wm_perf.redis_sentinel_password_file', "$dir/missing.pass"),
	'password file set to a missing file');
($exact, $counts, $err) = two_reads();
is("$exact $counts", 't t 0|0|2|2', 'missing password file: exact, computed');
like($err,
	qr/WARNING:  wm_perf could not connect to Redis at master "wmmaster" through wm_perf\.redis_sentinels: cannot read wm_perf\.redis_sentinel_password_file/,
	'missing password file: the warning says so');

# ---------------------------------------------------------------------------
# 5. Settings.
# ---------------------------------------------------------------------------
is( $node->safe_psql('app',
		"SELECT string_agg(name || ':' || context, ',' ORDER BY name) FROM pg_settings
		  WHERE name IN ('wm_perf.redis_sentinel_user', 'wm_perf.redis_sentinel_password_file')"),
	'wm_perf.redis_sentinel_password_file:sighup,wm_perf.redis_sentinel_user:sighup',
	'both settings are PGC_SIGHUP');
$node->safe_psql('app', 'CREATE ROLE regress_wm_plain LOGIN');
foreach my $setting ('wm_perf.redis_sentinel_user', 'wm_perf.redis_sentinel_password_file')
{
	my ($state) = psql_sqlstate($node, 'app', "SHOW $setting",
		extra_params => [ '-U', 'regress_wm_plain' ]);
	is($state, '42501', "an ordinary role cannot read $setting");
	($state) = psql_sqlstate($node, 'app', "SET $setting = ''");
	is($state, '55P02', "SET $setting is refused (55P02)");
}

$node->stop;
stop_redis($s_pid);
stop_redis($m_pid);
done_testing();
