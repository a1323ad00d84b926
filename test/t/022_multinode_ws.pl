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

$_->stop for @nodes;
done_testing();
