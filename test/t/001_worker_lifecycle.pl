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
use FindBin;

my $strong_secret = 'tap-' . join('', map { ('a' .. 'z', 0 .. 9)[ rand 36 ] } 1 .. 44);
my $wsport = PostgreSQL::Test::Cluster::get_free_port();

# Open a WebSocket on 127.0.0.1:$port and read the first frame.  Returns a
# hash: ok (1 on a valid 101 upgrade whose first frame is binary), why (the
# printable payload, or the reason), op (first frame opcode), close_code (for
# a close frame), sock (still open when $keep is true).
sub ws_open
{
	my ($port, $keep) = @_;
	my $sock = IO::Socket::INET->new(
		PeerAddr => '127.0.0.1',
		PeerPort => $port,
		Proto    => 'tcp',
		Timeout  => 3);
	return { ok => 0, why => "connect: $!" } unless $sock;
	my $key = 'dGhlIHNhbXBsZSBub25jZQ==';
	print $sock "GET / HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nUpgrade: websocket\r\n"
	  . "Connection: Upgrade\r\nSec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n\r\n";
	my $sel = IO::Select->new($sock);
	my $buf = '';
	my $deadline = time() + 5;
	while (time() < $deadline)
	{
		my $he = index($buf, "\r\n\r\n");
		last if $he >= 0 && _frame_complete(substr($buf, $he + 4));
		last unless $sel->can_read($deadline - time());
		my $n = sysread($sock, $buf, 65536, length $buf);
		last unless $n;
	}
	my %r = (ok => 0, sock => $keep ? $sock : undef);
	close $sock unless $keep;
	my $hdr_end = index($buf, "\r\n\r\n");
	if ($hdr_end < 0)
	{
		$r{why} = 'no HTTP response' . ($buf eq '' ? '' : ": $buf");
		return \%r;
	}
	my $headers = substr($buf, 0, $hdr_end);
	my $accept = sha1_base64($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11') . '=';
	my $rest = substr($buf, $hdr_end + 4);
	if ($headers !~ m{^HTTP/1\.1 101})
	{
		$r{why} = "not an upgrade: " . (split /\r\n/, $headers)[0];
	}
	elsif ($headers !~ /^Sec-WebSocket-Accept:\s*\Q$accept\E\s*$/mi)
	{
		$r{why} = 'bad Sec-WebSocket-Accept';
	}
	elsif (!_frame_complete($rest))
	{
		$r{why} = 'no frame after the upgrade';
	}
	else
	{
		my ($op, $payload) = _frame($rest);
		$r{op} = $op;
		if ($op == 8)
		{
			$r{close_code} = length($payload) >= 2 ? unpack('n', $payload) : 0;
			$r{why} = "close $r{close_code} " . substr($payload, 2);
		}
		else
		{
			$payload =~ s/[^[:print:]]/./g;    # msgpack bytes, printable for the log
			$r{why} = $payload;
			$r{ok} = $op == 2;
		}
	}
	return \%r;
}

# (ok, why) of a one-shot WebSocket probe.
sub ws_probe
{
	my ($port) = @_;
	my $r = ws_open($port, 0);
	return ($r->{ok}, $r->{why});
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

# Reload the configuration and wait until the sync server has processed it
# (its 'reloads' counter moved): a fact, not a pause.
sub reload_and_wait
{
	my ($node) = @_;
	my $q = "SELECT value FROM topgun.worker_stats WHERE name = 'reloads'";
	my $before = $node->safe_psql('postgres', $q);
	$node->reload;
	return $node->poll_query_until('postgres', "SELECT ($q) > $before");
}

# The version the library was built for (topgun.control's default_version).
my $libversion;
{
	my $repo = $ENV{TOPGUN_REPO} // "$FindBin::RealBin/../..";
	open(my $fh, '<', "$repo/topgun.control") or die "topgun.control: $!";
	($libversion) = map { /^default_version\s*=\s*'([^']+)'/ ? $1 : () } <$fh>;
	close $fh;
	die 'no default_version in topgun.control' unless $libversion;
}

my $node = PostgreSQL::Test::Cluster->new('lifecycle');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = $wsport
topgun.listen_addresses = '127.0.0.1'
topgun.jwt_secret = '$strong_secret'
# Cluster.pm turns this off; the worker's crash restart needs it.
restart_after_crash = on
});
$node->start;

# --- before CREATE EXTENSION: listening but not serving (retryable close 1013)
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'topgun sync server'"),
	'worker started before the extension exists');
my $early;
for (1 .. 50)
{
	$early = ws_open($wsport, 0);
	last if defined $early->{op};
	usleep(200_000);
}
is($early->{close_code}, 1013, "no extension yet: close 1013 ($early->{why})");
unlike($early->{why}, qr/AUTH_REQUIRED/, 'nothing served before the extension exists');

# --- an extension at an older version (older storage layout): still not
# serving, and the log says what to do; ALTER EXTENSION UPDATE makes it serve
$node->safe_psql('postgres', "CREATE EXTENSION topgun VERSION '1.0'");
ok($node->wait_for_log(qr/extension "topgun" is at version 1\.0 in database "postgres", the library is version \Q$libversion\E/),
	'the worker says the extension must be updated');
my $old = ws_open($wsport, 0);
is($old->{close_code}, 1013, "extension at 1.0: close 1013 ($old->{why})");
unlike($old->{why}, qr/AUTH_REQUIRED/, 'nothing served while the extension is at 1.0');
$node->safe_psql('postgres', 'ALTER EXTENSION topgun UPDATE');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'topgun'"), $libversion,
	"updated to $libversion");

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
# The postmaster reinitialises every backend: until it accepts connections
# again psql fails at once, and poll_query_until's write to that psql's stdin
# can die with EPIPE (seen under ASan, where the restart takes longer), so
# poll the fact in an eval.
my $restarted = 0;
my $deadline = time() + 60;
while (!$restarted && time() < $deadline)
{
	my $r = eval {
		$node->safe_psql('postgres',
			"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'topgun sync server' AND pid <> $pid");
	};
	$restarted = defined $r && $r eq 't';
	usleep(100_000) unless $restarted;
}
ok($restarted, 'worker restarted after SIGKILL');
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
# the refusal is logged once the configuration was checked (before listening)
ok($node->wait_for_log(qr/^.*production.*secret.*$|^.*secret.*production.*$/mi, $log_offset),
	'the log says why (production + secret)');
($ok, $why) = ws_probe($wsport);
ok(!$ok, "production + weak secret: not listening ($why)");
my $pid1 = worker_pid($node);
ok($pid1 > 0, "worker pid $pid1");

# the public default secret is refused too (SIGHUP re-check)
$log_offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "topgun.jwt_secret = 'topgun-secret-dev'\n");
ok(reload_and_wait($node), 'the idle worker processed the reload');
($ok, $why) = ws_probe($wsport);
ok(!$ok, "production + topgun-secret-dev: not listening ($why)");

# no secret at all
$node->append_conf('postgresql.conf', "topgun.jwt_secret = ''\n");
ok(reload_and_wait($node), 'the idle worker processed the second reload');
($ok, $why) = ws_probe($wsport);
ok(!$ok, "production + no secret: not listening ($why)");
is(worker_pid($node), $pid1, 'no crash-restart loop: the same worker process handled both reloads');

# --- a strong secret: SIGHUP makes it listen
$node->append_conf('postgresql.conf', "topgun.jwt_secret = '$strong_secret'\n");
$node->reload;
($ok, $why) = wait_serving($wsport, 20);
ok($ok, "production + strong secret after SIGHUP: listening ($why)");

# and from a cold start
$node->restart;
($ok, $why) = wait_serving($wsport, 30);
ok($ok, "production + strong secret after restart: listening ($why)");

# --- topgun.max_connections: the socket beyond the limit is closed 1013
$node->append_conf('postgresql.conf', "topgun.max_connections = 3\n");
$node->restart;
($ok, $why) = wait_serving($wsport, 30);
ok($ok, "serving with topgun.max_connections = 3 ($why)");
ok($node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM topgun.connections'),
	"the worker reaped the probe's socket");
my @held = map { ws_open($wsport, 1) } 1 .. 3;
is(scalar(grep { $_->{ok} } @held), 3, 'three connections accepted');
my $over = ws_open($wsport, 0);
ok(!$over->{ok}, "fourth connection refused ($over->{why})");
is($over->{close_code}, 1013, 'refused with close 1013');
close $_->{sock} for grep { $_->{sock} } @held;
($ok, $why) = wait_serving($wsport, 10);
ok($ok, "a slot is free again once they close ($why)");

# --- clean shutdown: the worker exits with the server, the port is released
$node->stop('fast');
($ok, $why) = ws_probe($wsport);
ok(!$ok, 'nothing listening after shutdown');

done_testing();
