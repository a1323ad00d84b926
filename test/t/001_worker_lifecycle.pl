# Copyright (c) topgun contributors
#
# Lifecycle of the topgun sync server background worker, driven with
# PostgreSQL::Test::Cluster:
#   - visible in pg_stat_activity as 'topgun sync server' and serving
#     WebSocket upgrades (AUTH_REQUIRED is the first frame);
#   - SIGKILL of the worker: the postmaster restarts it within seconds and it
#     serves again;
#   - production mode with a weak / default / missing secret: the worker does
#     not listen, says why in the log, and does not crash-loop; a strong
#     secret (SIGHUP reload or restart) makes it listen.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Digest::SHA qw(sha1_base64);
use Time::HiRes qw(time usleep);

my $strong_secret = 'tap-' . join('', map { ('a' .. 'z', 0 .. 9)[ rand 36 ] } 1 .. 44);
my $wsport = PostgreSQL::Test::Cluster::get_free_port();

# Open a WebSocket on 127.0.0.1:$port.  Returns (1, first_frame_payload) on a
# valid 101 upgrade, or (0, reason).
sub ws_probe
{
	my ($port) = @_;
	my $sock = IO::Socket::INET->new(
		PeerAddr => '127.0.0.1',
		PeerPort => $port,
		Proto    => 'tcp',
		Timeout  => 3);
	return (0, "connect: $!") unless $sock;
	my $key = 'dGhlIHNhbXBsZSBub25jZQ==';
	print $sock "GET / HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nUpgrade: websocket\r\n"
	  . "Connection: Upgrade\r\nSec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n\r\n";
	my $sel = IO::Select->new($sock);
	my $buf = '';
	my $deadline = time() + 5;
	while (time() < $deadline)
	{
		last if $buf =~ /\r\n\r\n/ && length($buf) >= index($buf, "\r\n\r\n") + 4 + 2
		  && _frame_complete(substr($buf, index($buf, "\r\n\r\n") + 4));
		last unless $sel->can_read($deadline - time());
		my $n = sysread($sock, $buf, 65536, length $buf);
		last unless $n;
	}
	close $sock;
	my $hdr_end = index($buf, "\r\n\r\n");
	return (0, 'no HTTP response' . ($buf eq '' ? '' : ": $buf")) if $hdr_end < 0;
	my $headers = substr($buf, 0, $hdr_end);
	return (0, "not an upgrade: " . (split /\r\n/, $headers)[0])
	  unless $headers =~ m{^HTTP/1\.1 101};
	my $accept = sha1_base64($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11') . '=';
	return (0, 'bad Sec-WebSocket-Accept')
	  unless $headers =~ /^Sec-WebSocket-Accept:\s*\Q$accept\E\s*$/mi;
	my $rest = substr($buf, $hdr_end + 4);
	return (0, 'no frame after the upgrade') unless _frame_complete($rest);
	my ($op, $payload) = _frame($rest);
	return (0, "first frame opcode $op") unless $op == 2;
	return (1, $payload);
}

sub _frame_complete
{
	my ($b) = @_;
	return 0 if length($b) < 2;
	my ($len) = _frame_len($b);
	return defined $len && length($b) >= $len->[0] + $len->[1];
}

# [header length, payload length] of the first frame in $b.
sub _frame_len
{
	my ($b) = @_;
	my $l = ord(substr($b, 1, 1)) & 0x7f;
	return ([ 2, $l ]) if $l < 126;
	return undef if $l == 126 && length($b) < 4;
	return ([ 4, unpack('n', substr($b, 2, 2)) ]) if $l == 126;
	return undef if length($b) < 10;
	return ([ 10, unpack('Q>', substr($b, 2, 8)) ]);
}

sub _frame
{
	my ($b) = @_;
	my ($len) = _frame_len($b);
	return (ord(substr($b, 0, 1)) & 0x0f, substr($b, $len->[0], $len->[1]));
}

# Poll until the sync server serves an upgrade with AUTH_REQUIRED.
sub wait_serving
{
	my ($port, $secs) = @_;
	my $deadline = time() + $secs;
	my ($ok, $why);
	while (time() < $deadline)
	{
		($ok, $why) = ws_probe($port);
		return (1, $why) if $ok && $why =~ /AUTH_REQUIRED/;
		usleep(200_000);
	}
	return (0, $why);
}

sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = 'topgun sync server'");
}

my $node = PostgreSQL::Test::Cluster->new('lifecycle');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = $wsport
topgun.listen_addresses = '127.0.0.1'
topgun.jwt_secret = '$strong_secret'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION topgun');

# --- visible and serving
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'topgun sync server'"),
	'worker visible in pg_stat_activity');
my ($ok, $why) = wait_serving($wsport, 30);
ok($ok, "worker accepts a WebSocket upgrade and sends AUTH_REQUIRED ($why)");

# --- SIGKILL → restarted by the postmaster
my $pid = worker_pid($node);
ok($pid > 0, "worker pid $pid");
my $t0 = time();
kill 'KILL', $pid;
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'topgun sync server' AND pid <> $pid"),
	'worker restarted after SIGKILL');
($ok, $why) = wait_serving($wsport, 30);
my $elapsed = time() - $t0;
ok($ok, "serving again after SIGKILL ($why)");
cmp_ok($elapsed, '<', 20, sprintf('back within a few seconds (%.1f s)', $elapsed));
note sprintf('worker serving again %.2f s after SIGKILL', $elapsed);

# --- production mode with a weak secret: no listener, a log line, no crash loop
my $log_offset = -s $node->logfile;
$node->append_conf(
	'postgresql.conf', qq{
topgun.production = on
topgun.jwt_secret = 'too-short-secret'
});
$node->restart;
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'topgun sync server'"),
	'worker process is up in production mode');
usleep(3_000_000);
($ok, $why) = ws_probe($wsport);
ok(!$ok, "production + weak secret: not listening ($why)");
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/^.*production.*secret.*$|^.*secret.*production.*$/mi,
	'the log says why (production + secret)');
my $pid1 = worker_pid($node);
usleep(3_000_000);
my $pid2 = worker_pid($node);
ok($pid1 > 0 && $pid1 == $pid2, "no crash-restart loop (pid $pid1 → $pid2)");

# the public default secret is refused too (SIGHUP re-check)
$log_offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "topgun.jwt_secret = 'topgun-secret-dev'\n");
$node->reload;
usleep(2_000_000);
($ok, $why) = ws_probe($wsport);
ok(!$ok, "production + topgun-secret-dev: not listening ($why)");

# no secret at all
$node->append_conf('postgresql.conf', "topgun.jwt_secret = ''\n");
$node->reload;
usleep(2_000_000);
($ok, $why) = ws_probe($wsport);
ok(!$ok, "production + no secret: not listening ($why)");
is(worker_pid($node), $pid1, 'still the same worker process after the reloads');

# --- a strong secret: SIGHUP makes it listen
$node->append_conf('postgresql.conf', "topgun.jwt_secret = '$strong_secret'\n");
$node->reload;
($ok, $why) = wait_serving($wsport, 20);
ok($ok, "production + strong secret after SIGHUP: listening ($why)");

# and from a cold start
$node->restart;
($ok, $why) = wait_serving($wsport, 30);
ok($ok, "production + strong secret after restart: listening ($why)");

# --- clean shutdown: the worker exits with the server, the port is released
$node->stop('fast');
($ok, $why) = ws_probe($wsport);
ok(!$ok, 'nothing listening after shutdown');

done_testing();
