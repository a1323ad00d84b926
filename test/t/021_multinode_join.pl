# A node with existing data joins a running two-node mesh (initial copy in
# both directions through the apply-side merge triggers: no duplicate-key
# stops), converges, and later leaves with topgun.remove_peer().
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't', 'test/t';
use MeshUtil;

my @n = map { mesh_node("jnode$_") } 1 .. 2;
mesh_connect(@n);
my ($a, $b) = @n;
$a->safe_psql('postgres', q{
SELECT topgun.lww_put('shared', 'k' || i, to_jsonb(i), topgun.hlc(1700000000000 + i, 0, 'jnode1')) FROM generate_series(1, 500) i;
SELECT topgun.or_add('tags', 'k' || (i % 20), to_jsonb(i)) FROM generate_series(1, 100) i;
SELECT topgun.counter_add('c', 5);
});
ok(defined mesh_wait_converged(60, @n), 'two-node mesh converged');

# The newcomer has its own data, overlapping the mesh's keys: some of its
# records are newer, some older, and it tombstones tags it never saw added.
my $j = mesh_node('jnode3');
$j->safe_psql('postgres', q{
SELECT topgun.lww_put('shared', 'k' || i, '"newer"', topgun.hlc(1800000000000 + i, 0, 'jnode3')) FROM generate_series(1, 100) i;
SELECT topgun.lww_put('shared', 'k' || i, '"older"', topgun.hlc(1600000000000 + i, 0, 'jnode3')) FROM generate_series(401, 600) i;
SELECT topgun.lww_put('own', 'x' || i, to_jsonb(i)) FROM generate_series(1, 300) i;
SELECT topgun.counter_add('c', 7);
SELECT topgun.or_add('tags', 'j', '"mine"');
});
my @tomb = split /\n/, $a->safe_psql('postgres', "SELECT tag FROM topgun.ormap WHERE map = 'tags' ORDER BY tag LIMIT 5");
$j->safe_psql('postgres', "SELECT topgun.or_remove_tag('tags', '$_')") for @tomb;

# Join: every node subscribes to the newcomer and the newcomer to every node,
# each with copy_data = true.
mesh_connect(@n, $j);
my $dg = mesh_wait_converged(90, @n, $j);
ok(mesh_rows_equal(@n, $j), 'joined node and mesh hold identical rows');
ok(defined $dg, 'joined node and mesh converged (rows and Merkle roots)');
is($a->safe_psql('postgres', "SELECT count(*) FROM topgun.lww WHERE map = 'shared' AND value = '\"newer\"'"), '100',
	'newer records of the newcomer won on the mesh');
is($j->safe_psql('postgres', "SELECT count(*) FROM topgun.lww WHERE map = 'shared' AND value = '\"older\"'"), '100',
	'older records of the newcomer lost where the mesh had the key (k401..k500), kept elsewhere');
is($b->safe_psql('postgres', "SELECT count(*) FROM topgun.lww WHERE map = 'own'"), '300', 'newcomer-only map copied to the mesh');
is($b->safe_psql('postgres', "SELECT topgun.counter_value('c')"), '12', 'counters merged per node');
is($a->safe_psql('postgres',
	"SELECT count(*) FROM topgun.ormap WHERE map = 'tags' AND tag IN ('" . join("','", @tomb) . "')"), '0',
	'tags tombstoned on the newcomer are gone from the mesh');
is($a->safe_psql('postgres', "SELECT count(*) FROM topgun.ormap WHERE map = 'tags'"), '96', 'other OR records intact');
for my $nd (@n, $j)
{
	is($nd->safe_psql('postgres', "SELECT bool_and(topgun.merkle_verify(name)) FROM topgun.maps"), 't',
		$nd->name . ': Merkle trees exact after the join');
}
is($j->safe_psql('postgres', "SELECT count(*) FROM topgun.mesh_status WHERE streaming AND tables_syncing = 0"), '2',
	'mesh_status: newcomer streams from both peers');

# Leave: remove the newcomer everywhere; its slots go, the others keep working.
$j->safe_psql('postgres', "SELECT topgun.remove_peer(name) FROM topgun.peers");
$_->safe_psql('postgres', "SELECT topgun.remove_peer('jnode3')") for @n;
is($a->safe_psql('postgres', "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'topgun_jnode3%'"), '0',
	'slot of the removed node dropped');
is($j->safe_psql('postgres', "SELECT count(*) FROM pg_subscription"), '0', 'removed node has no subscriptions');
$a->safe_psql('postgres', "SELECT topgun.lww_put('after', 'leave', '1')");
$b->poll_query_until('postgres', "SELECT topgun.lww_get('after', 'leave') IS NOT NULL") or die;
pass('remaining mesh still replicates');
is($j->safe_psql('postgres', "SELECT count(*) FROM topgun.lww WHERE map = 'after'"), '0', 'removed node no longer receives');

done_testing();
