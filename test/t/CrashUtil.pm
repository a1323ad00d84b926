# Helpers for the TAP tests that crash the sync server (test/t/03x_*.pl):
# SQL that may fail while the postmaster reinitialises.
#
# try_sql runs one query through psql -c with nothing on stdin and stderr
# discarded, and returns undef when it fails.  (poll_query_until feeds the
# query on stdin: while the server is in crash recovery psql exits before
# reading it, and the EPIPE on that write kills the test script with exit
# code 32.)  wait_sql polls it until it answers $want or $secs pass.
package CrashUtil;
use strict;
use warnings;
use POSIX ();
use Time::HiRes qw(usleep time);
use Exporter 'import';
our @EXPORT = qw(try_sql wait_sql);

sub try_sql
{
	my ($connstr, $sql) = @_;
	my $pid = open(my $fh, '-|');
	return undef unless defined $pid;
	if ($pid == 0)
	{
		open(STDERR, '>', '/dev/null');
		open(STDIN, '<', '/dev/null');
		exec('psql', '-XAtq', '-d', $connstr, '-c', $sql) or POSIX::_exit(127);
	}
	local $/;
	my $out = <$fh>;
	close $fh;
	return undef if $? != 0;
	$out //= '';
	$out =~ s/\s+$//;
	return $out;
}

sub wait_sql
{
	my ($connstr, $sql, $want, $secs) = @_;
	my $deadline = time() + $secs;
	while (time() < $deadline)
	{
		my $r = try_sql($connstr, $sql);
		return 1 if defined $r && $r eq $want;
		usleep(100_000);
	}
	return 0;
}

1;
