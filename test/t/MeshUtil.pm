# Helpers for the multi-node TAP tests (test/t/02x_*.pl): build topgun nodes
# ready for logical replication, wire them into a full mesh with
# topgun.add_peer(), and compare their CRDT state.
package MeshUtil;
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use Exporter 'import';
our @EXPORT = qw(mesh_rows_equal mesh_node mesh_connect mesh_wait_synced mesh_digest mesh_wait_converged mesh_wait_wal_quiet);

sub mesh_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = 0
topgun.node_id = '$name'
max_worker_processes = 20
max_logical_replication_workers = 10
max_sync_workers_per_subscription = 2
max_replication_slots = 16
max_wal_senders = 16
wal_sender_timeout = 0
wal_receiver_timeout = 0
autovacuum = off
max_connections = 40
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION topgun');
	return $node;
}

sub connstr { my ($n) = @_; return $n->connstr . ' dbname=postgres'; }

# Every node subscribes to every other node.
sub mesh_connect
{
	my (@nodes) = @_;
	for my $a (@nodes)
	{
		for my $b (@nodes)
		{
			next if $a == $b;
			my $exists = $a->safe_psql('postgres',
				"SELECT count(*) FROM topgun.peers WHERE name = '" . $b->name . "'");
			next if $exists;
			$a->safe_psql('postgres',
				"SELECT topgun.add_peer('" . $b->name . "', '" . connstr($b) . "')");
		}
	}
	mesh_wait_synced(@nodes);
}

# All subscriptions have copied their tables and stream.
sub mesh_wait_synced
{
	my (@nodes) = @_;
	for my $n (@nodes)
	{
		$n->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate <> 'r'")
		  or die "tables of " . $n->name . " never finished their initial copy";
	}
}

# A digest of everything that must converge (node-local columns excluded:
# maps.created_at).  removed_at converges to the least value seen.
my $ROWS = q{(
  SELECT 'L|' || map || '|' || key || '|' || coalesce(value::text, '~') || '|' || ts::text || '|' || coalesce(ttl_ms::text, '') FROM topgun.lww
  UNION ALL SELECT 'O|' || map || '|' || key || '|' || tag || '|' || value::text || '|' || ts::text FROM topgun.ormap
  UNION ALL SELECT 'T|' || map || '|' || tag || '|' || coalesce(key, '~') || '|' || coalesce(removed_at::text, '~') FROM topgun.or_tags
  UNION ALL SELECT 'C|' || name || '|' || node || '|' || p || '|' || n FROM topgun.counters
  UNION ALL SELECT 'M|' || name || '|' || CASE WHEN name IN (SELECT map FROM topgun.map_kind_conflicts) THEN '?' ELSE kind END
                   || '|' || topgun.merkle_root(name) FROM topgun.maps
)};
# The same without Merkle roots: the replicated rows alone.
my $ROWS_ONLY = qq{SELECT md5(string_agg(x, E'\\n' ORDER BY x COLLATE "C")) FROM $ROWS s(x) WHERE x NOT LIKE 'M|%'};
sub mesh_rows_equal
{
	my (@nodes) = @_;
	my %u = map { $_->safe_psql('postgres', $ROWS_ONLY) => 1 } @nodes;
	return keys %u == 1;
}
my $DIGEST = qq{SELECT md5(string_agg(x, E'\\n' ORDER BY x COLLATE "C")) || ' ' || count(*) FROM $ROWS s(x)};

# Lines of one node's state that another node does not have (diagnostics).
sub mesh_diff
{
	my ($x, $y) = @_;
	my %hy = map { $_ => 1 } split /\n/, $y->safe_psql('postgres', "SELECT x FROM $ROWS s(x)");
	my @only = grep { !$hy{$_} } split /\n/, $x->safe_psql('postgres', "SELECT x FROM $ROWS s(x)");
	return @only;
}

sub mesh_digest { my ($n) = @_; return $n->safe_psql('postgres', $DIGEST); }

# Wait until every node has the same digest; returns it.
sub mesh_wait_converged
{
	my ($timeout, @nodes) = @_;
	my $deadline = time + $timeout;
	my @d;
	while (1)
	{
		@d = map { mesh_digest($_) } @nodes;
		my %u = map { $_ => 1 } @d;
		return $d[0] if keys %u == 1;
		if (time > $deadline)
		{
			diag("not converged: " . join(', ', map { $nodes[$_]->name . '=' . $d[$_] } 0 .. $#nodes));
			for my $i (1 .. $#nodes)
			{
				my @o = mesh_diff($nodes[0], $nodes[$i]);
				diag("only on " . $nodes[0]->name . " vs " . $nodes[$i]->name . ": " . scalar(@o) . "\n  " . join("\n  ", @o[0 .. ($#o < 9 ? $#o : 9)]));
				@o = mesh_diff($nodes[$i], $nodes[0]);
				diag("only on " . $nodes[$i]->name . ": " . scalar(@o) . "\n  " . join("\n  ", @o[0 .. ($#o < 9 ? $#o : 9)]));
			}
			return undef;
		}
		usleep(200_000);
	}
}

# True when WAL stops moving on every node for $quiet seconds (within $timeout).
# A replication echo that never ends would keep writing WAL forever.
sub mesh_wait_wal_quiet
{
	my ($quiet, $timeout, @nodes) = @_;
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		my @a = map { $_->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()') } @nodes;
		sleep $quiet;
		my @b = map { $_->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()') } @nodes;
		return 1 if join(',', @a) eq join(',', @b);
	}
	return 0;
}

1;
