# 040_settings_secrets.pl: the Redis target and password are superuser-only
# settings, and AUTH works (DESIGN.md section 7, STYLE.md section 7).
#
#  - with preload, a plain role can neither read (SHOW, current_setting(),
#    pg_settings) nor set the Redis settings (42501); range and host-name
#    violations by a superuser are 22023;
#  - wm_perf.redis_password_file (0600) authenticates to a Redis started
#    with --requirepass: cache hits; a wrong or unreadable password gives
#    exact results and a WARNING with 08001; the password never reaches a
#    client or the server log;
#  - with log_statement = 'ddl', a statement naming wm_perf.redis_password
#    in any letter case, also together with wm_perf.redis_password_file, is
#    logged as the redaction line, without STATEMENT; one naming only the
#    file setting is logged verbatim;
#  - without preload, a password in postgresql.conf makes the library log
#    'wm_perf.redis_password is set but wm_perf is not in
#    shared_preload_libraries' when a session loads it, and from then on
#    that session cannot read the setting.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use WmPerfTest;

my $pw = 'wm-secret-' . join('', map { sprintf('%02x', int(rand(256))) } 1 .. 8);
my @auth = ('-a', $pw, '--no-auth-warning');
my ($redis_pid, $port) = start_redis(password => $pw);
like(redis_cli($port, 'PING'), qr/NOAUTH/, 'sanity: Redis requires AUTH');

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $pwfile = "$tmp/redis_password";
sub write_pwfile
{
	my ($content) = @_;
	open(my $fh, '>', $pwfile) or die "cannot write $pwfile: $!";
	print $fh "$content\n";
	close($fh);
	chmod(0600, $pwfile) or die "chmod $pwfile: $!";
	return;
}
write_pwfile($pw);
is(sprintf('%04o', (stat($pwfile))[2] & 07777), '0600', 'password file is 0600');

my $node = redis_node('secrets', $port,
	redis_password_file => "'$pwfile'",
	redis_connect_timeout => '1000ms',
	redis_command_timeout => '1000ms',
	redis_backoff => '100ms');
load_fixture($node, 'app');
create_plain_functions($node, 'app');
$node->safe_psql('app', 'CREATE ROLE regress_wm_plain LOGIN');

my $epoch_key = wm_cluster_prefix($node) . ':epoch';
my $epoch = wait_for_redis_key($port, $epoch_key, sub { $_[0] =~ /^[1-9]\d*$/ }, 10, @auth);
like($epoch, qr/^[1-9]\d*$/,
	'the worker authenticated with the password file and bumped the epoch');

# Runs SQL, returns (stdout, stderr); VERBOSITY verbose shows SQLSTATEs.
sub run_sql
{
	my ($sql, @extra) = @_;
	my ($out, $err) = ('', '');
	$node->psql(
		'app', $sql,
		stdout => \$out,
		stderr => \$err,
		extra_params => [ '-v', 'VERBOSITY=verbose', @extra ]);
	return ($out, $err);
}

sub route_metrics
{
	return $node->safe_psql('app',
		"SELECT cache_hits, cache_misses, redis_errors FROM wm_perf_metrics
		  WHERE function_name = 'wm_route_statistics'");
}

my $exact_sql = q{SELECT (wm_route_statistics() - 'computedAt') = plain_route_stats();};

# ---------------------------------------------------------------------------
# AUTH through wm_perf.redis_password_file.
# ---------------------------------------------------------------------------
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
is($node->safe_psql('app', "$exact_sql\n$exact_sql"), "t\nt",
	'password file: reads equal plain SQL');
is(route_metrics(), '1|1|0', 'password file: a miss, then a hit, no Redis error');

# A wrong password in the file: exact results, WARNING 08001.
write_pwfile('not-the-password');
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
my ($out, $err) = run_sql($exact_sql);
is($out, 't', 'wrong password: the read is exact');
like($err, qr/WARNING:\s+08001: wm_perf could not connect to Redis/,
	'wrong password: WARNING with SQLSTATE 08001');
unlike($err, qr/not-the-password|\Q$pw\E/, 'wrong password: no password in the message');
is(route_metrics(), '0|0|1', 'wrong password: no hit, no miss, one Redis error');
write_pwfile($pw);

# The Redis target and its secrets are PGC_SIGHUP: changed with ALTER SYSTEM
# and a reload, never with SET.  Wait until a new session sees the value.
sub set_and_reload
{
	my ($name, $value) = @_;
	if (defined $value)
	{
		$node->safe_psql('postgres', "ALTER SYSTEM SET $name = '$value'");
	}
	else
	{
		$node->safe_psql('postgres', "ALTER SYSTEM RESET $name");
	}
	$node->reload;
	my $want = defined $value ? $value : '';
	foreach (1 .. 100)
	{
		last if $node->safe_psql('postgres', "SHOW $name") eq $want || !defined $value;
		usleep(50_000);
	}
	usleep(200_000) unless defined $value;
	return;
}

# An unreadable password file: same.
set_and_reload('wm_perf.redis_password_file', "$tmp/missing");
($out, $err) = run_sql($exact_sql);
is($out, 't', 'missing password file: the read is exact');
like($err, qr/WARNING:\s+08001: wm_perf could not connect to Redis/,
	'missing password file: WARNING with SQLSTATE 08001');
set_and_reload('wm_perf.redis_password_file', undef);

# A wrong wm_perf.redis_password (it takes precedence over the file).
set_and_reload('wm_perf.redis_password', 'wrong-password-setting');
($out, $err) = run_sql($exact_sql);
is($out, 't', 'wrong wm_perf.redis_password: the read is exact');
like($err, qr/WARNING:\s+08001: wm_perf could not connect to Redis/,
	'wrong wm_perf.redis_password: WARNING with SQLSTATE 08001');
unlike($err, qr/wrong-password-setting/, 'wrong wm_perf.redis_password: not shown');
set_and_reload('wm_perf.redis_password', undef);
unlike(slurp_file($node->logfile), qr/wrong-password-setting/,
	'the password set by ALTER SYSTEM and reload never reaches the server log');

# The right file again: hits again.
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
is($node->safe_psql('app', "$exact_sql\n$exact_sql"), "t\nt",
	'password file restored: reads equal plain SQL');
my ($hits) = split /\|/, route_metrics();
cmp_ok($hits, '>=', 1, 'password file restored: hits again');

# ---------------------------------------------------------------------------
# wm_perf.redis_password in postgresql.conf, with preload.
# ---------------------------------------------------------------------------
# Restart here; a reload is tested at the end.
$node->append_conf('postgresql.conf', "wm_perf.redis_password = '$pw'");
$node->restart;
is(wait_for_redis_key($port, $epoch_key, sub { $_[0] eq $epoch + 1 }, 10, @auth),
	$epoch + 1, 'after the restart the worker authenticated again (epoch bumped)');
$node->safe_psql('app', 'SELECT wm_perf_metrics_reset()');
is($node->safe_psql('app', "$exact_sql\n$exact_sql"), "t\nt",
	'redis_password setting: reads equal plain SQL');
($hits) = split /\|/, route_metrics();
cmp_ok($hits, '>=', 1, 'redis_password setting: AUTH works (hits)');

my @plain = ('-U', 'regress_wm_plain');
my @secret_settings = qw(wm_perf.redis_password wm_perf.redis_host
  wm_perf.redis_port wm_perf.redis_password_file wm_perf.redis_user
  wm_perf.redis_database);
foreach my $name (@secret_settings)
{
	my ($state, $e) = psql_sqlstate($node, 'app', "SHOW $name", extra_params => \@plain);
	is($state, '42501', "plain role: SHOW $name gives 42501");
	unlike($e, qr/\Q$pw\E/, "plain role: SHOW $name does not leak the password");
	($state, $e) = psql_sqlstate($node, 'app', "SELECT current_setting('$name')",
		extra_params => \@plain);
	is($state, '42501', "plain role: current_setting('$name') gives 42501");
	($state) = psql_sqlstate($node, 'app', "SELECT current_setting('$name', true)",
		extra_params => \@plain);
	is($state, '42501', "plain role: current_setting('$name', true) gives 42501");
}
my $in_list = join(', ', map { "'$_'" } @secret_settings);
is( $node->safe_psql(
		'app', "SELECT count(*) FROM pg_settings WHERE name IN ($in_list)",
		extra_params => \@plain),
	'0',
	'plain role: none of the Redis settings is visible in pg_settings');
($out, $err) = run_sql(
	"SELECT string_agg(coalesce(setting, '') || coalesce(reset_val, '') || coalesce(boot_val, ''), ',')
	   FROM pg_settings WHERE name LIKE 'wm\\_perf.%'", @plain);
unlike($out, qr/\Q$pw\E|127\.0\.0\.1|\b$port\b/,
	'plain role: no wm_perf.* row of pg_settings shows the password, host or port');

# Target and secrets are PGC_SIGHUP (55P02 for anyone's SET); the TTL is
# PGC_SUSET (42501 for a plain role).
foreach my $set (
	"SET wm_perf.redis_host = '127.0.0.2'",
	'SET wm_perf.redis_port = 1234',
	"SET wm_perf.redis_password = 'x'",
	"SET wm_perf.redis_password_file = '/tmp/x'",
	"SELECT set_config('wm_perf.redis_host', '127.0.0.2', false)")
{
	my ($state) = psql_sqlstate($node, 'app', $set, extra_params => \@plain);
	is($state, '55P02', "plain role: $set gives 55P02");
	($state) = psql_sqlstate($node, 'app', $set);
	is($state, '55P02', "superuser: $set gives 55P02 (ALTER SYSTEM only)");
}
{
	my ($state) = psql_sqlstate($node, 'app', 'SET wm_perf.cache_ttl = 5', extra_params => \@plain);
	is($state, '42501', 'plain role: SET wm_perf.cache_ttl = 5 gives 42501');
	($state) = psql_sqlstate($node, 'app', "ALTER SYSTEM SET wm_perf.redis_host = '127.0.0.2'",
		extra_params => \@plain);
	is($state, '42501', 'plain role: ALTER SYSTEM gives 42501');
}
is( $node->safe_psql(
		'app', "SET wm_perf.cache_enabled = off; SHOW wm_perf.cache_enabled",
		extra_params => \@plain),
	'off',
	'plain role may set wm_perf.cache_enabled (its own reads only)');

foreach my $set ('ALTER SYSTEM SET wm_perf.redis_port = 0', 'ALTER SYSTEM SET wm_perf.redis_port = 65536',
	"ALTER SYSTEM SET wm_perf.redis_host = 'redis.example.com'")
{
	my ($state) = psql_sqlstate($node, 'postgres', $set);
	is($state, '22023', "superuser: $set gives 22023");
}

unlike(slurp_file($node->logfile), qr/\Q$pw\E/,
	'the Redis password never appears in the server log');

# ---------------------------------------------------------------------------
# log_statement = 'ddl' logs every ALTER SYSTEM.  A statement that names
# wm_perf.redis_password is logged as the redaction line instead, in any
# letter case (identifiers fold to lower case: WM_PERF.REDIS_PASSWORD is the
# same setting) and also when it names wm_perf.redis_password_file as well.
# A statement that names only the file setting is logged as it is: a path is
# no secret.  1.0 matched "redis_password" case-sensitively and left alone
# any statement that contained "redis_password_file" anywhere, so each of
# the five statements below was logged verbatim, secret included.
# Nothing here reloads: the values only go to postgresql.auto.conf, and are
# reset at the end of the section.
# ---------------------------------------------------------------------------
my $redaction_line = '(message naming wm_perf.redis_password redacted by wm_perf)';
sub secret_value
{
	my ($what) = @_;
	return "wm-$what-" . join('', map { sprintf('%02x', int(rand(256))) } 1 .. 6);
}
my $path_value = "$tmp/not-a-secret-" . join('', map { sprintf('%02x', int(rand(256))) } 1 .. 4);

# Runs one query string with log_statement = 'ddl' in a new session, as the
# superuser; returns the server log written meanwhile and psql's stderr.
sub logged_ddl
{
	my ($sql) = @_;
	my $offset = -s $node->logfile;
	my ($o, $e) = ('', '');
	$node->psql(
		'postgres', "SET log_statement = 'ddl';\n$sql",
		stdout => \$o,
		stderr => \$e);
	# The statement line is written before the statement runs; the session
	# has ended, so everything it logged is in the file.
	return (slurp_file($node->logfile, $offset), $e);
}

foreach my $case (
	[ 'upper case', 'upper',
		"ALTER SYSTEM SET wm_perf.REDIS_PASSWORD = '%s';" ],
	[ 'mixed case', 'mixed',
		"ALTER SYSTEM SET Wm_Perf.Redis_Password = '%s';" ],
	[ 'quoted, mixed case', 'quoted',
		qq{ALTER SYSTEM SET "Wm_Perf.Redis_Password" = '%s';} ],
	[ 'naming redis_password_file too', 'both',
		"ALTER SYSTEM SET wm_perf.redis_password = '%s' /* rather than wm_perf.redis_password_file */;" ],
	# One query string of two statements (psql's \; sends them together):
	# ALTER SYSTEM refuses to run in the implicit transaction block, but
	# log_statement has logged the whole string before that, and the ERROR
	# would carry it as STATEMENT.
	[ 'one query string with both settings', 'multi',
		"ALTER SYSTEM SET wm_perf.redis_password_file = '$path_value' \\; ALTER SYSTEM SET wm_perf.redis_password = '%s';" ])
{
	my ($label, $tag, $template) = @$case;
	my $secret = secret_value($tag);
	my ($log, $stderr) = logged_ddl(sprintf($template, $secret));
	unlike($log, qr/\Q$secret\E/, "log_statement, $label: the password is not in the server log");
	my $n = () = $log =~ /LOG:  \Q$redaction_line\E/g;
	is($n, 1, "log_statement, $label: the statement is logged as the redaction line");
	unlike($log, qr/ STATEMENT:  /, "log_statement, $label: no STATEMENT line");
	unlike($stderr, qr/\Q$secret\E/, "log_statement, $label: the client is not shown the password");
}
like(
	(logged_ddl("ALTER SYSTEM SET wm_perf.redis_password = 'x' \\; SELECT 1;"))[1],
	qr/ALTER SYSTEM cannot run inside a transaction block/,
	'sanity: a multi-statement query string fails in ALTER SYSTEM (after log_statement logged it)');

# Not over-redacted: only the file setting, in either letter case.
foreach my $sql ("ALTER SYSTEM SET wm_perf.redis_password_file = '$path_value'",
	"ALTER SYSTEM SET WM_PERF.REDIS_PASSWORD_FILE = '$path_value'")
{
	my ($log) = logged_ddl("$sql;");
	like($log, qr/LOG:  statement: \Q$sql\E/,
		"log_statement: \"$sql\" is logged verbatim");
	unlike($log, qr/\Q$redaction_line\E/, "log_statement: \"$sql\" is not redacted");
}

$node->safe_psql('postgres',
	"ALTER SYSTEM RESET wm_perf.redis_password;\nALTER SYSTEM RESET wm_perf.redis_password_file;");
unlike(slurp_file($node->data_dir . '/postgresql.auto.conf'), qr/wm_perf\.redis_password/i,
	'ALTER SYSTEM RESET: no wm_perf.redis_password* left in postgresql.auto.conf');

# Rotating the password with a reload: the postmaster's ProcessConfigFile
# logs 'parameter "wm_perf.redis_password" changed to "<new value>"' at LOG
# (core PostgreSQL does that for every setting, GUC_SUPERUSER_ONLY or not).
# DESIGN.md section 7 says the password is never written to logs.
my $rotated = 'wm-rotated-' . join('', map { sprintf('%02x', int(rand(256))) } 1 .. 8);
my $log_offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "wm_perf.redis_password = '$rotated'");
$node->reload;
$node->wait_for_log(qr/received SIGHUP, reloading configuration files/, $log_offset);
# The postmaster logs changed settings right after that line.
$node->safe_psql('app', 'SELECT pg_sleep(0.2)');
unlike(slurp_file($node->logfile, $log_offset), qr/\Q$rotated\E/,
	'a reload that changes wm_perf.redis_password does not log the password');
$node->stop;

# ---------------------------------------------------------------------------
# Without preload: a password placeholder.
#
# Documented limitation (guc.c, docs): until a session loads wm_perf, an
# unknown custom setting from postgresql.conf is a placeholder that any role
# can SHOW.  Hence the LOG line when the library is loaded late, and the
# advice to use wm_perf.redis_password_file or preload.  What must hold is
# that once the library is loaded in a session, that session cannot read it.
# ---------------------------------------------------------------------------
my $placeholder = 'placeholder-' . join('', map { sprintf('%02x', int(rand(256))) } 1 .. 8);
my $lazy = PostgreSQL::Test::Cluster->new('secrets_no_preload');
$lazy->init;
$lazy->append_conf('postgresql.conf', "wm_perf.redis_password = '$placeholder'");
$lazy->start;
$lazy->safe_psql('postgres', 'CREATE DATABASE lazy');
$lazy->safe_psql('lazy', 'CREATE EXTENSION wm_perf CASCADE; CREATE ROLE regress_wm_plain LOGIN');

my $offset = -s $lazy->logfile;
my ($state, $lerr) = ('', '');
{
	my ($lout) = ('');
	$lazy->psql(
		'lazy', "SELECT wm_perf_version() IS NOT NULL;\nSHOW wm_perf.redis_password;",
		stdout => \$lout,
		stderr => \$lerr,
		extra_params => [ '-v', 'VERBOSITY=verbose', '-U', 'regress_wm_plain' ]);
	$state = $lerr =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : '';
	is($lout, 't', 'no preload: a plain role loads the library through a wm_perf function');
	unlike($lout, qr/\Q$placeholder\E/, 'no preload: the password is not shown');
}
is($state, '42501',
	'no preload: once the library is loaded, SHOW wm_perf.redis_password gives 42501');
unlike($lerr, qr/\Q$placeholder\E/, 'no preload: the error does not show the password');
ok( $lazy->log_contains(
		qr/LOG:  wm_perf\.redis_password is set but wm_perf is not in shared_preload_libraries/,
		$offset),
	'no preload: the server log says the password is set without preload');
($state) = psql_sqlstate($lazy, 'lazy',
	"SELECT wm_perf_version();\nSELECT current_setting('wm_perf.redis_password')",
	extra_params => [ '-U', 'regress_wm_plain' ]);
is($state, '42501', 'no preload: current_setting() after loading gives 42501');
$lazy->stop;
unlike(slurp_file($lazy->logfile), qr/\Q$placeholder\E/,
	'no preload: the password never appears in the server log');

stop_redis($redis_pid);
done_testing();
