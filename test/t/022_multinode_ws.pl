# A WebSocket client connected to node B sees a change made with plain SQL on
# node A: logical replication carries the row, the apply worker's writes go
# through the storage triggers into B's change feed, and B's sync worker
# pushes the event.  Needs node and test/e2e/node_modules (scripts/test.sh
# installs them in the e2e suite before the TAP suite runs).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run qw(start pump finish timer);
use MeshUtil;

my $secret = 'multinode-ws-secret-0123456789abcdef0123';
my @nodes = map { mesh_node($_) } qw(wsa wsb);
my %wsport;
for my $n (@nodes)
{
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	$wsport{ $n->name } = $port;
	$n->append_conf('postgresql.conf', qq{
topgun.port = $port
topgun.listen_addresses = '127.0.0.1'
topgun.jwt_secret = '$secret'
topgun.database = 'postgres'
});
	$n->restart;
}
mesh_connect(@nodes);
my ($a, $b) = @nodes;

# wait until B's worker serves
my $url = "ws://127.0.0.1:$wsport{wsb}";
my $ready = 0;
for (1 .. 100)
{
	if ($b->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'topgun sync server'") eq '1')
	{
		$ready = 1;
		last;
	}
	select(undef, undef, undef, 0.1);
}
ok($ready, 'sync worker running on node B');

my ($out, $err) = ('', '');
my $t = timer(60);
my $h = start([ 'node', "$FindBin::RealBin/ws_watch.js", $url, $secret, 'shared', 'k1', '{"from":"A"}', '30000' ],
	'>', \$out, '2>', \$err, $t);
pump $h until $out =~ /READY/ || $t->is_expired || !$h->pumpable;
like($out, qr/READY/, 'client on B subscribed') or diag($err);

$a->safe_psql('postgres', q{SELECT topgun.lww_put('shared', 'k1', '{"from":"A"}')});
pump $h until $out =~ /GOT/ || $t->is_expired || !$h->pumpable;
finish $h;
like($out, qr/GOT/, 'client on node B received the change made with SQL on node A') or diag($err);
is($b->safe_psql('postgres', "SELECT topgun.lww_get('shared', 'k1')->>'from'"), 'A', 'row replicated to B');

# --- PARTITION_MAP: a cluster-mode client asking either node gets both, each
# at the URL its own sync server advertises (topgun.advertise_url).
for my $n (@nodes)
{
	$n->append_conf('postgresql.conf',
		"topgun.advertise_url = 'ws://" . $n->name . ".example:$wsport{$n->name}'\n");
	$n->reload;
}
for my $n (@nodes)
{
	ok($n->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM topgun.node_clock WHERE websocket LIKE 'ws://%.example:%'"),
		'node ' . $n->name . ' knows both advertised endpoints');
}
for my $n (@nodes)
{
	my ($reply, $rerr) = ('', '');
	my $name = $n->name;
	IPC::Run::run([ 'node', "$FindBin::RealBin/ws_request.js", "ws://127.0.0.1:$wsport{$name}", $secret,
			'{"type":"PARTITION_MAP_REQUEST","payload":{"currentVersion":0}}', 'PARTITION_MAP', '20000' ],
		'>', \$reply, '2>', \$rerr, timer(60));
	like($reply, qr/PARTITION_MAP/, "node $name answers PARTITION_MAP_REQUEST") or diag($rerr);
	like($reply, qr/"nodeId":"wsa"/, "node $name lists wsa");
	like($reply, qr/"nodeId":"wsb"/, "node $name lists wsb");
	like($reply, qr{"websocket":"ws://wsa\.example:$wsport{wsa}"}, "node $name gives wsa's advertised URL");
	like($reply, qr{"websocket":"ws://wsb\.example:$wsport{wsb}"}, "node $name gives wsb's advertised URL");
	my @owners = $reply =~ /"ownerNodeId":"([^"]+)"/g;
	is(scalar(@owners), 271, "node $name: 271 partitions");
	is(scalar(grep { $_ eq 'wsa' } @owners), 136, "node $name: partitions alternate between the two nodes");
	my ($version) = $reply =~ /"version":(\d+)/;
	cmp_ok($version, '>', 1, "node $name: the mesh's map has a version above a single node's 1");
	# the same map from SQL, and nothing for a client that already has it
	is($n->safe_psql('postgres', "SELECT topgun.partition_map($version) IS NULL"), 't',
		"node $name: nothing newer than version $version");
	is($n->safe_psql('postgres',
		"SELECT m->'partitions'->0->>'ownerNodeId' || '/' || (m->'partitions'->0->'backupNodeIds'->>0) FROM topgun.partition_map(0) m"),
		'wsa/wsb', "node $name: partition 0 owned by wsa with wsb as backup");
}

$_->stop for @nodes;
done_testing();
