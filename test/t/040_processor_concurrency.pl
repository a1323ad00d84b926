# Entry processors under real concurrency (pgbench sessions):
#  - builtin:increment from 8 sessions on keys that do not exist at the start
#    loses no update (the key lock also serialises absent keys);
#  - batches over the same keys in different orders never deadlock and lose
#    nothing (bucket locks in lock order, one lww_put_many per batch);
#  - the Merkle tree still equals a rebuild afterwards.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('procconc');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = 0
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION topgun');

# chr(58) is ':' (pgbench would read ":increment" as a variable)
my $inc = q{'builtin' || chr(58) || 'increment'};
$node->pgbench(
	'-n -c 8 -j 4 -t 300', 0,
	[qr{processed: 2400/2400}], [qr{^$}],
	'single-key and batch increments from 8 sessions',
	{
		'proc' => qq{
\\set k random(1, 5)
SELECT topgun.execute_on_key('ctr', 'k' || :k, $inc, '1');
SELECT topgun.execute_on_keys('ctr', (SELECT array_agg('k' || g ORDER BY random()) FROM generate_series(1, 5) g), $inc, '2');
}
	});

# each script run adds 1 (one key) + 5 x 2 (the batch) = 11
is($node->safe_psql('postgres', q{SELECT sum((value)::text::bigint) FROM topgun.lww WHERE map = 'ctr'}),
	2400 * 11, 'no lost update: the sum is exactly 2400 x 11');
is($node->safe_psql('postgres', q{SELECT count(*) FROM topgun.lww WHERE map = 'ctr'}), '5', 'five keys');
is($node->safe_psql('postgres', q{SELECT topgun.merkle_verify('ctr')}), 't', 'Merkle tree equals a rebuild');

$node->stop;
done_testing();
