# Copyright (c) topgun contributors
#
# SIGKILL of the sync server while distributed locks are held (issue 15).
# docs/locks.md: the lock table lives in the session executor's memory, so a
# server restart frees every lock (clients see it as a disconnect) and only
# the fencing tokens' high-water marks persist (topgun.lock_tokens): tokens
# strictly increase per name across restarts.  For each kill kind (the
# session executor, which owns the locks; the socket process), while
# test/t/lock_clients.js holds one lock per name with a waiter queued behind
# each (and has cycled the first name past its first reserved token block):
#   - before: topgun.locks shows every lock held, with one waiter;
#   - the process is SIGKILLed, the postmaster reinitialises, the server
#     serves again;
#   - after: topgun.locks shows none of them; lock_tokens.hi covers every
#     token granted before; the driver checks that every old connection was
#     closed, no queued waiter was granted, a new LOCK_REQUEST per name is
#     granted at once with a token greater than every token before the kill,
#     and the old holder's token releases nothing.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't', 'test/t';
use CrashUtil;
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(time usleep);
use POSIX qw(WNOHANG);
use POSIX ();

my $repo = $ENV{TOPGUN_REPO} // '.';
my $node_bin = $ENV{TOPGUN_NODE} // 'node';
my $driver = "$repo/test/t/lock_clients.js";
ok(-f $driver, "driver $driver exists");
ok(system($node_bin, '-e', "require('$repo/test/e2e/node_modules/ws')") == 0,
	'node and the e2e node modules (ws, msgpackr) are available');

my $secret = 'lockcrash-' . join('', map { ('a' .. 'z', 0 .. 9)[ rand 36 ] } 1 .. 40);
my $wsport = PostgreSQL::Test::Cluster::get_free_port();

my $node = PostgreSQL::Test::Cluster->new('lockcrash');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = $wsport
topgun.listen_addresses = '127.0.0.1'
topgun.jwt_secret = '$secret'
# Cluster.pm turns this off; the crash-restart cycle needs it.
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION topgun');
my $connstr = $node->connstr('postgres');

sub wait_serving
{
	return wait_sql($connstr,
		"SELECT count(*) FROM topgun.worker_stats WHERE name IN ('ready', 'listening') AND value = 1",
		'2', 120);
}
ok(wait_serving(), 'sync server serving');

sub quote_list { return join(',', map { "'$_'" } @_); }

sub cycle
{
	my ($kind, $pid_sql) = @_;
	my $dir = tempdir("lockcrash-$kind-XXXX", DIR => $PostgreSQL::Test::Utils::tmp_check, CLEANUP => 1);
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		$ENV{TOPGUN_WS_URL} = "ws://127.0.0.1:$wsport";
		$ENV{TOPGUN_JWT_SECRET} = $secret;
		$ENV{TOPGUN_PG} = $connstr;
		delete $ENV{LD_PRELOAD};    # the sanitizer runtime is for the server only
		open(STDOUT, '>', "$dir/summary.json") or die "stdout: $!";
		open(STDERR, '>', "$dir/stderr.log") or die "stderr: $!";
		exec($node_bin, $driver, '--dir', $dir, '--kind', $kind, '--locks', 4, '--cycles', 1200)
		  or die "exec: $!";
	}

	# Phase 1 done: the locks are held.
	my $deadline = time() + 120;
	usleep(50_000) while !-f "$dir/held.json" && time() < $deadline && waitpid($pid, WNOHANG) == 0;
	ok(-f "$dir/held.json", "$kind: locks held before the kill")
	  or diag(slurp_file("$dir/summary.json") . slurp_file("$dir/stderr.log"));
	my $held = eval { decode_json(slurp_file("$dir/held.json")) } // { names => [], tokens => {} };
	my @names = @{ $held->{names} };
	my $in = quote_list(@names);
	cmp_ok($held->{tokens}{ $names[0] } // 0, '>', 1000, "$kind: the first name's tokens went past the first reserved block");
	ok( wait_sql($connstr,
			"SELECT count(*) FILTER (WHERE holder IS NOT NULL AND waiters = 1) FROM topgun.locks WHERE name IN ($in)",
			scalar(@names), 30),
		"$kind: topgun.locks shows every lock held with its waiter");

	my $logpos = -s $node->logfile;
	my $victim = $node->safe_psql('postgres', $pid_sql);
	ok($victim > 0, "$kind: pid $victim");
	kill 'KILL', $victim;
	ok( wait_sql($connstr,
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $victim", '0', 120),
		"$kind: the killed process is gone");
	ok(wait_serving(), "$kind: the server serves again after the postmaster's reinitialisation");
	like(substr(slurp_file($node->logfile), $logpos), qr/terminated by signal 9/, "$kind: the postmaster saw the SIGKILL");

	is(try_sql($connstr, "SELECT count(*) FROM topgun.locks WHERE name IN ($in)"), '0',
		"$kind: no old lock is held after the restart");
	my $ok_hi = 1;
	for my $name (@names)
	{
		my $hi = try_sql($connstr, "SELECT coalesce(max(hi), 0) FROM topgun.lock_tokens WHERE name = '$name'") // 0;
		$ok_hi = 0 unless $hi >= $held->{tokens}{$name};
	}
	ok($ok_hi, "$kind: topgun.lock_tokens.hi covers every token granted before the kill");

	open(my $fh, '>', "$dir/killed") or die;
	close $fh;
	$deadline = time() + 180;
	my $done = 0;
	while (time() < $deadline)
	{
		if (waitpid($pid, WNOHANG) == $pid) { $done = 1; last; }
		usleep(100_000);
	}
	unless ($done)
	{
		kill 'KILL', $pid;
		waitpid($pid, 0);
	}
	my $rc = $? >> 8;
	ok($done, "$kind: driver finished in time");
	my $json = slurp_file("$dir/summary.json");
	my $s = eval { decode_json((split /\n/, $json)[-1] // '{}') } // {};
	diag("$kind driver stderr:\n" . slurp_file("$dir/stderr.log")) if $rc != 0 && -s "$dir/stderr.log";
	is($rc, 0, "$kind: driver verdict ok") or diag("$kind summary: $json");
	is_deeply($s->{problems} // ['no summary'], [], "$kind: no problems reported by the driver");
	is(scalar(keys %{ $s->{after} // {} }), scalar(@names), "$kind: every name granted again after the restart");
	my $grew = 1;
	for my $name (@names)
	{
		$grew = 0 unless ($s->{after}{$name} // 0) > $held->{tokens}{$name};
	}
	ok($grew, "$kind: per name, the token after the restart > every token granted before the kill");
	note "$kind: tokens before " . encode_json($s->{before} // {}) . ' after ' . encode_json($s->{after} // {});
}

# (a) the session executor: it owns the lock manager (src/exec/locks.c)
cycle('session_executor', "SELECT coalesce(max(pid), 0) FROM topgun.executors WHERE role = 'session'");
# (b) the socket process: the sessions' connections live there
cycle('socket_process',
	"SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = 'topgun sync server'");

ok(wait_serving(), 'still serving at the end');
$node->stop('fast');
done_testing();
