# Copyright (c) topgun contributors
#
# Nothing acknowledged is lost: while several clients write through the sync
# worker as fast as it acknowledges (OP_BATCH with op ids, every OP_ACK
# recorded), the server is hit by
#   (a) SIGKILL of the worker process (postmaster crash-restart cycle),
#   (b) SIGKILL of the postmaster (immediate crash, WAL recovery on start),
#   (c) a clean stop and start.
# After each, the writers (test/t/crash_clients.js, real WebSocket clients)
# reconnect by themselves, re-send their unacknowledged batch, keep writing,
# and finally pull both maps through the Merkle walk.  The test requires:
# every acknowledged op present in SQL with its value and HLC timestamp, every
# client's Merkle roots equal to topgun.merkle_root(), topgun.merkle_verify()
# true for both maps, each writer reconnected and was acked again.
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
my $driver = "$repo/test/t/crash_clients.js";
ok(-f $driver, "driver $driver exists");
ok(system($node_bin, '-e', "require('$repo/test/e2e/node_modules/ws')") == 0,
	'node and the e2e node modules (ws, msgpackr) are available');

my $secret = 'crash-' . join('', map { ('a' .. 'z', 0 .. 9)[ rand 36 ] } 1 .. 44);
my $wsport = PostgreSQL::Test::Cluster::get_free_port();

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = $wsport
topgun.listen_addresses = '127.0.0.1'
topgun.jwt_secret = '$secret'
# Cluster.pm turns this off; the crash-restart cycle needs it.
restart_after_crash = on
fsync = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION topgun');
my $connstr = $node->connstr('postgres');

sub wait_serving
{
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		my $up = try_sql($connstr,
			"SELECT count(*) FROM topgun.worker_stats WHERE name IN ('ready', 'listening') AND value = 1");
		return 1 if defined $up && $up eq '2';
		usleep(200_000);
	}
	return 0;
}
ok(wait_serving(), 'sync worker serving');


# Start the writers of one crash kind in the background.
sub start_writers
{
	my ($kind) = @_;
	my $dir = tempdir("crash-$kind-XXXX", DIR => $PostgreSQL::Test::Utils::tmp_check, CLEANUP => 1);
	my $out = "$dir/summary.json";
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		$ENV{TOPGUN_WS_URL} = "ws://127.0.0.1:$wsport";
		$ENV{TOPGUN_JWT_SECRET} = $secret;
		$ENV{TOPGUN_PG} = $connstr;
		delete $ENV{LD_PRELOAD};    # the sanitizer runtime is for the server only
		open(STDOUT, '>', $out) or die "stdout: $!";
		open(STDERR, '>', "$dir/stderr.log") or die "stderr: $!";
		exec($node_bin, $driver, '--dir', $dir, '--kind', $kind, '--clients', 4,
			'--batch', 50, '--max-seconds', 150)
		  or die "exec: $!";
	}
	return { kind => $kind, dir => $dir, pid => $pid, out => $out };
}

# (acked, clients reconnected, clients acked after reconnecting)
sub progress
{
	my ($w) = @_;
	open(my $fh, '<', "$w->{dir}/progress") or return (0, 0, 0);
	my $l = <$fh> // '';
	close $fh;
	return split ' ', $l;
}

sub wait_progress
{
	my ($w, $cond, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		return 1 if $cond->(progress($w));
		usleep(100_000);
	}
	return 0;
}

# Stop the writers, wait for their verdict and check it.
sub finish_writers
{
	my ($w, $label) = @_;
	open(my $fh, '>', "$w->{dir}/stop") or die;
	close $fh;
	my $deadline = time() + 240;
	my $done = 0;
	while (time() < $deadline)
	{
		if (waitpid($w->{pid}, WNOHANG) == $w->{pid}) { $done = 1; last; }
		usleep(200_000);
	}
	unless ($done)
	{
		kill 'KILL', $w->{pid};
		waitpid($w->{pid}, 0);
	}
	my $rc = $? >> 8;
	ok($done, "$label: writers finished in time");
	my $json = slurp_file($w->{out});
	my $s = eval { decode_json((split /\n/, $json)[-1] // '{}') } // {};
	diag("$label writer stderr:\n" . slurp_file("$w->{dir}/stderr.log"))
	  if $rc != 0 && -s "$w->{dir}/stderr.log";
	is($rc, 0, "$label: driver verdict ok") or diag("$label summary: $json");
	is_deeply($s->{problems} // ['no summary'], [], "$label: no problems reported");
	cmp_ok($s->{acked_checked} // 0, '>', 0, "$label: acked ops checked in SQL");
	is($s->{acked_missing}, 0, "$label: no acked op missing or changed");
	ok($s->{merkle_verify}, "$label: topgun.merkle_verify true for both maps");
	my @rec = @{ $s->{reconnects} // [] };
	is(scalar(grep { $_ >= 1 } @rec), 4, "$label: all 4 clients reconnected by themselves (@rec)");
	my @after = @{ $s->{acks_after_last_reconnect} // [] };
	is(scalar(grep { $_ >= 1 } @after), 4, "$label: all 4 clients acked again after reconnecting (@after)");
	note sprintf('%s: %d acked ops verified (value + timestamp) in %.1f s of writing, roots %s',
		$label, $s->{acked_checked} // 0, $s->{write_seconds} // 0, encode_json($s->{roots} // {}));
	return $s;
}

# Run the writers until they are acked at full speed, hit the server with
# $crash, then wait until every writer reconnected and was acked again.
sub crash_cycle
{
	my ($kind, $crash) = @_;
	my $w = start_writers($kind);
	ok(wait_progress($w, sub { $_[0] >= 4000 }, 60), "$kind: writers acked >= 4000 ops before the crash")
	  or diag(slurp_file("$w->{dir}/stderr.log"));
	my ($before) = progress($w);
	my $t0 = time();
	$crash->();
	ok(wait_progress($w, sub { $_[2] >= 4 && $_[0] >= $before + 1000 }, 90),
		"$kind: all writers reconnected and were acked again");
	my ($after) = progress($w);
	note sprintf('%s: %d ops acked before the crash, writers back %.1f s after it', $kind, $before, time() - $t0);
	return finish_writers($w, $kind);
}

sub worker_pid
{
	return $node->safe_psql('postgres',
		"SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = 'topgun sync server'");
}

my %checked;

# (a) SIGKILL of the worker
my $s = crash_cycle(
	'worker_sigkill',
	sub {
		my $pid = worker_pid();
		ok($pid > 0, "worker pid $pid");
		kill 'KILL', $pid;
		ok( wait_sql($connstr,
				"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'topgun sync server' AND pid <> $pid",
				't', 120),
			'worker restarted by the postmaster');
	});
$checked{worker_sigkill} = $s->{acked_checked} // 0;

# (b) SIGKILL of the postmaster: immediate crash, WAL recovery on start
$s = crash_cycle(
	'postmaster_sigkill',
	sub {
		my $pm = $node->{_pid};
		my @children = split ' ', `ps -o pid= --ppid $pm`;
		$node->kill9;
		# The children notice the postmaster's death and exit; a new
		# postmaster cannot start while they hold the shared memory.
		my $deadline = time() + 60;
		while (time() < $deadline && grep { kill 0, $_ } @children)
		{
			usleep(100_000);
		}
		ok(!(grep { kill 0, $_ } @children), 'old backends gone after the postmaster SIGKILL');
		# the clients saw their sockets close with the backends (no pause
		# needed: they retry with backoff until the server is back)
		$node->start;
		like(slurp_file($node->logfile), qr/database system was interrupted|redo starts|automatic recovery/,
			'crash recovery ran on start');
	});
$checked{postmaster_sigkill} = $s->{acked_checked} // 0;

# (c) clean stop and start
$s = crash_cycle(
	'clean_restart',
	sub {
		$node->stop('fast');    # returns once the server (and its sockets) is gone
		$node->start;
	});
$checked{clean_restart} = $s->{acked_checked} // 0;

ok(wait_serving(), 'still serving at the end');
note 'acked ops verified per crash kind: ' . join(', ', map { "$_=$checked{$_}" } sort keys %checked);
$node->stop('fast');
done_testing();
