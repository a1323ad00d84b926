# Multi-node convergence through PostgreSQL 15 logical replication
# (docs/multi-node.md): three real clusters in a full mesh built with
# topgun.add_peer().
#  - concurrent conflicting LWW puts/removes, OR adds/removes (including
#    add/remove races of one tag), and counters on all three nodes converge
#    to identical rows and identical Merkle roots (merkle_verify everywhere);
#  - a node stopped during writes catches up after restart;
#  - echoes end: WAL stops moving once converged;
#  - the change feed on one node carries a change made on another;
#  - map kind conflicts are reported and do not stop replication;
#  - add_peer refuses a peer with this node's id.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use lib 't', 'test/t';
use MeshUtil;

my @n = map { mesh_node("node$_") } 1 .. 3;
my ($a, $b, $c) = @n;

# Node identity: a node cannot be its own peer (same topgun.node_id).
my ($ret, $out, $err) = $a->psql('postgres',
	"SELECT topgun.add_peer('self', '" . $a->connstr . " dbname=postgres')");
isnt($ret, 0, 'add_peer refuses a peer with the same node id');
like($err, qr/same node id "node1"/, 'error names the duplicated node id');

mesh_connect(@n);
is($a->safe_psql('postgres', 'SELECT count(*) FROM topgun.peers'), '2', 'node1 has two peers');
is($a->safe_psql('postgres',
	"SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'topgun_mesh'"),
	'counters,lww,maps,node_clock,or_tags,ormap', 'publication holds exactly the CRDT tables');

# --- deterministic conflicts, written before replication can deliver anything
# (one open transaction per node, committed together)
my @s = map { $_->background_psql('postgres') } @n;
$_->query_safe('BEGIN') for @s;
for my $i (0 .. 2)
{
	my $nd = 'node' . ($i + 1);
	# same key, same millis: node id breaks the tie -> node3 wins
	$s[$i]->query_safe("SELECT topgun.lww_put('conf', 'tie', '\"$nd\"', '1700000000000:5:$nd')");
	# the newest write is a tombstone (node2), older puts lose
	$s[$i]->query_safe("SELECT topgun.lww_put('conf', 'del', '\"$nd\"', '1700000000000:$i:$nd')");
	# counters: every node adds its own share
	$s[$i]->query_safe("SELECT topgun.counter_add('hits', " . (10 * ($i + 1)) . ")");
	$s[$i]->query_safe("SELECT topgun.counter_add('hits', -1)");
}
$s[1]->query_safe("SELECT topgun.lww_remove('conf', 'del', '1700000000000:9:node2')");
# OR race: node1 adds tag T, node2 tombstones T before it ever saw the add,
# node3 adds another value under the same key.
$s[0]->query_safe("SELECT topgun.or_apply('orc', 'k', '\"a\"', '1700000000001:0:node1', '1700000000001:0:node1')");
$s[1]->query_safe("SELECT topgun.or_remove_tag('orc', '1700000000001:0:node1')");
$s[2]->query_safe("SELECT topgun.or_apply('orc', 'k', '\"b\"', '1700000000002:0:node3', '1700000000002:0:node3')");
# map kind conflict: 'kc' is an LWW map on node1 and an OR map on node2
$s[0]->query_safe("SELECT topgun.lww_put('kc', 'x', '1')");
$s[1]->query_safe("SELECT topgun.or_add('kc', 'x', '2')");
$_->query_safe('COMMIT') for @s;
$_->quit for @s;

# --- concurrent random writers on all three nodes
my $script = q{
\set k random(1, 300)
\set j random(1, 300)
\set o random(1, 40)
BEGIN;
SELECT topgun.lww_put('m', 'k' || :k, to_jsonb(:k), topgun.hlc_now());
SELECT topgun.lww_remove('m', 'k' || :j);
SELECT topgun.or_add('o', 'k' || :o, to_jsonb(:o % 3));
SELECT topgun.or_remove_tag('o', (SELECT tag FROM topgun.ormap WHERE map = 'o' AND key = 'k' || ((:o + 1) % 40) ORDER BY tag DESC LIMIT 1))
 WHERE EXISTS (SELECT 1 FROM topgun.ormap WHERE map = 'o' AND key = 'k' || ((:o + 1) % 40));
SELECT topgun.counter_add('ops', 1);
COMMIT;
};
my $sfile = $a->basedir . '/writers.sql';
PostgreSQL::Test::Utils::append_to_file($sfile, $script);
sub start_writers
{
	my ($txns, @nodes) = @_;
	my @h;
	for my $nd (@nodes)
	{
		my ($o, $e) = ('', '');
		push @h, [ $nd, IPC::Run::start(
			# Two writers lock two random LWW rows each, in random order: a
			# deadlock between them is possible (and was seen under ASan).
			# pgbench retries the victim, so every increment still commits once.
			[ 'pgbench', '-n', '-c', '2', '-t', $txns, '--max-tries', '20', '-f', $sfile,
			  '-h', $nd->host, '-p', $nd->port, 'postgres' ],
			'>', \$o, '2>', \$e), \$o, \$e ];
	}
	return @h;
}
sub finish_writers
{
	for my $w (@_)
	{
		my ($nd, $h, $o, $e) = @$w;
		$h->finish;
		like($$o, qr{processed: (\d+)/\1\b}, 'writers on ' . $nd->name . ' finished');
		diag($$e) if $h->result != 0;
	}
}

my $t0 = time;
finish_writers(start_writers(400, @n));
my $dg = mesh_wait_converged(60, @n);
ok(mesh_rows_equal(@n), 'three nodes hold identical CRDT rows after concurrent writes');
ok(defined $dg, 'three nodes converged to identical rows and Merkle roots (' . (time - $t0) . ' s)');
for my $nd (@n)
{
	is($nd->safe_psql('postgres',
		"SELECT bool_and(topgun.merkle_verify(name)) FROM topgun.maps"), 't',
		$nd->name . ': every Merkle tree equals a rebuild from its rows');
}
is($c->safe_psql('postgres', "SELECT topgun.lww_get('conf', 'tie')"), '"node3"', 'LWW tie broken by node id everywhere');
is($a->safe_psql('postgres', "SELECT value IS NULL, ts FROM topgun.lww WHERE map = 'conf' AND key = 'del'"),
	't|1700000000000:9:node2', 'newest write (a tombstone) wins over older puts');
is($b->safe_psql('postgres', "SELECT string_agg(value::text, ',') FROM topgun.ormap WHERE map = 'orc'"),
	'"b"', 'tombstone wins the add/remove race of one tag; the other add survives');
is($c->safe_psql('postgres', "SELECT removed_at IS NOT NULL FROM topgun.or_tags WHERE map = 'orc' AND tag = '1700000000001:0:node1'"),
	't', 'tag tombstone replicated');
is($a->safe_psql('postgres', "SELECT topgun.counter_value('hits')"), '57', 'counter = sum of all nodes\' shares');
is($b->safe_psql('postgres', "SELECT topgun.counter_value('ops')"), '2400', 'every counter increment counted once');
is($a->safe_psql('postgres', "SELECT local_kind || '/' || remote_kind FROM topgun.map_kind_conflicts"), 'lww/or',
	'kind conflict reported on node1');
is($b->safe_psql('postgres', "SELECT local_kind || '/' || remote_kind FROM topgun.map_kind_conflicts"), 'or/lww',
	'kind conflict reported on node2');
ok($a->log_contains(qr/map "kc" is an LWW map here but an OR map on a peer/), 'conflict logged as a warning');
is($a->safe_psql('postgres', "SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL AND relid IS NULL"), '2',
	'replication keeps running after the conflict');

# --- echoes end: no WAL once converged
ok(mesh_wait_wal_quiet(3, 40, @n), 'WAL stops advancing on all nodes after convergence');

# --- change feed: a write on node1 reaches node2's feed consumer
my $feed = $b->background_psql('postgres');
$feed->query_safe('SELECT topgun._change_feed_attach()');
$feed->query_safe('SELECT count(*) FROM topgun._change_feed_read()');
$a->safe_psql('postgres', "SELECT topgun.lww_put('feedmap', 'from-node1', '42')");
my $seen = '';
for (1 .. 100)
{
	$seen .= $feed->query_safe("SELECT string_agg(kind || ':' || map || ':' || coalesce(key, ''), ' ') FROM topgun._change_feed_read()");
	last if $seen =~ /feedmap:from-node1/;
	select(undef, undef, undef, 0.1);
}
like($seen, qr/feedmap:from-node1/, 'change made on node1 appears in node2\'s change feed');
$feed->quit;

# --- a node stopped during writes catches up after restart
my $commits_before = $a->safe_psql('postgres',
	"SELECT xact_commit + 300 FROM pg_stat_database WHERE datname = 'postgres'");
my @w = start_writers(300, $a, $b);
# stop node3 once the writers are at work (a fact, not a pause): pgbench
# connected to node1, or already done
$a->poll_query_until('postgres',
	"SELECT count(*) >= 1 FROM pg_stat_activity WHERE application_name = 'pgbench' OR "
	  . "(SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres') > $commits_before")
  or die 'pgbench writers did not start';
$c->stop('immediate');
finish_writers(@w);
$a->safe_psql('postgres', "SELECT topgun.lww_put('late', 'while-down', '\"x\"')");
$c->start;
$dg = mesh_wait_converged(60, @n);
ok(mesh_rows_equal(@n), 'restarted node3 caught up: identical rows');
ok(defined $dg, 'restarted node3 caught up: identical rows and Merkle roots');
is($c->safe_psql('postgres', "SELECT topgun.lww_get('late', 'while-down')"), '"x"', 'node3 has a write made while it was down');
is($c->safe_psql('postgres', "SELECT topgun.counter_value('ops')"), '3600', 'counter increments made while node3 was down arrived');
is($c->safe_psql('postgres', "SELECT bool_and(topgun.merkle_verify(name)) FROM topgun.maps"), 't', 'node3 trees exact after catch-up');

# --- HLC across nodes: a timestamp ahead of node3's clock moves it
$a->safe_psql('postgres', "SELECT topgun.lww_put('clock', 'ahead', '1', topgun.hlc(topgun.now_ms() + 20000, 7, 'node1'))");
$c->poll_query_until('postgres', "SELECT topgun.lww_get('clock', 'ahead') IS NOT NULL") or die;
ok($c->safe_psql('postgres', "SELECT topgun.hlc_millis(topgun.hlc_now()) >= topgun.now_ms() + 19000") eq 't',
	'node3 clock observed a replicated timestamp');

# --- tombstone GC across nodes
$_->safe_psql('postgres', 'SELECT topgun.mesh_heartbeat()') for @n;
for my $nd (@n)
{
	$nd->poll_query_until('postgres', "SELECT count(*) = 3 FROM topgun.node_clock") or die;
}
my $before = $a->safe_psql('postgres', "SELECT count(*) FROM topgun.lww WHERE value IS NULL AND map = 'm'");
cmp_ok($before, '>', 0, 'there are LWW tombstones to prune');
my $gc = $a->safe_psql('postgres', "SELECT lww_pruned, or_tags_pruned FROM topgun.gc_tombstones('0 s')");
like($gc, qr/^[1-9]\d*\|[1-9]\d*$/, "node1 pruned LWW and OR tombstones ($gc)");
is($a->safe_psql('postgres', "SELECT topgun.merkle_verify('m')"), 't', 'tree exact after GC');
# node2 still holds the tombstones node1 pruned: its next write of such a key
# is an UPDATE there, which must still reach node1.
my $k = $b->safe_psql('postgres', "SELECT key FROM topgun.lww WHERE map = 'm' AND value IS NULL ORDER BY key LIMIT 1");
$b->safe_psql('postgres', "SELECT topgun.lww_put('m', '$k', '\"again\"')");
$a->poll_query_until('postgres', "SELECT topgun.lww_get('m', '$k') = '\"again\"'")
  or die 'write of a pruned key never reached node1';
pass("write of a key whose tombstone node1 pruned reached node1");
$b->safe_psql('postgres', "SELECT topgun.gc_tombstones('0 s')");
$c->safe_psql('postgres', "SELECT topgun.gc_tombstones('0 s')");
$dg = mesh_wait_converged(60, @n);
ok(mesh_rows_equal(@n), 'identical rows once every node ran GC');
ok(defined $dg, 'identical rows and Merkle roots once every node ran GC');

# GC refuses to run while a peer was never heard from
$a->safe_psql('postgres', "DELETE FROM topgun.node_clock WHERE node = 'node3'");
($ret, $out, $err) = $a->psql('postgres', "SELECT lww_pruned FROM topgun.gc_tombstones('0 s')");
is($out, '0', 'no pruning without every peer\'s heartbeat');
like($err, qr/not every peer/, 'GC says why');

done_testing();
