# Concurrency of the SQL core with real sessions (pgbench clients):
#  - hlc_now() never repeats across backends (the clock is in shared memory);
#  - many sessions writing one LWW map and one OR map at once keep the
#    incremental Merkle trees equal to a rebuild from the rows, without
#    deadlocks between the commit-time tree flushes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('sqlconc');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = 0
topgun.node_id = 'conc-node'
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION topgun');
$node->safe_psql('postgres', 'CREATE TABLE stamps (ts topgun.hlc PRIMARY KEY)');

# 8 clients x 2000 transactions, each inserting two fresh clock readings.  A
# repeated value would violate the primary key and fail pgbench.
$node->pgbench(
	'-n -c 8 -j 4 -t 2000', 0,
	[qr{processed: 16000/16000}], [qr{^$}],
	'hlc_now() from 8 concurrent sessions',
	{ 'stamps' => q{INSERT INTO stamps VALUES (topgun.hlc_now()), (topgun.hlc_now());} });
is($node->safe_psql('postgres', 'SELECT count(*) FROM stamps'), '32000', 'all 32000 timestamps distinct');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM stamps WHERE topgun.hlc_node(ts) <> 'conc-node'"), '0', 'stamped with topgun.node_id');

# Concurrent writers: puts, removes, OR adds and tag removals on the same maps,
# several operations per transaction so flushes overlap on shared tree nodes.
$node->pgbench(
	'-n -c 8 -j 4 -T 8', 0,
	[qr{processed: \d+}], [qr{^$}],
	'concurrent CRDT writers',
	{
		# Each transaction takes its rows in ascending key number (k, k + 7,
		# then j above both), so the writers cannot deadlock on their own
		# rows; what the log check below looks for is a deadlock between
		# the Merkle tree flushes of their commits.
		'lww' => q{
\set k random(1, 1400)
\set j random(1500, 3000)
BEGIN;
SELECT topgun.lww_put('hot', 'k' || :k, to_jsonb(:k), topgun.hlc_now());
SELECT topgun.lww_put('hot', 'k' || (:k + 7), '"x"', topgun.hlc_now());
SELECT topgun.lww_remove('hot', 'k' || :j, topgun.hlc_now());
COMMIT;
},
		'or' => q{
\set k random(1, 500)
BEGIN;
SELECT topgun.or_add('hot-or', 'k' || :k, to_jsonb(:k));
SELECT topgun.or_remove_tag('hot-or', (SELECT tag FROM topgun.ormap WHERE map = 'hot-or' AND key = 'k' || :k ORDER BY tag LIMIT 1));
COMMIT;
}
	});

is($node->safe_psql('postgres', "SELECT topgun.merkle_verify('hot')"), 't', 'LWW tree equals a rebuild after concurrent writes');
is($node->safe_psql('postgres', "SELECT topgun.merkle_verify('hot-or')"), 't', 'OR tree equals a rebuild after concurrent writes');
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM topgun.lww WHERE map = 'hot'"), '>', 100, 'writes happened');

# Pending Merkle rows and folds under concurrency: writers of 20 keys per
# transaction (their deltas touch 5+ nodes: a pending row each) fold every
# third commit, racing each other for the map's fold; readers check in one
# snapshot that the root equals the sum of the rows' item hashes, so a delta
# seen twice (pending and folded) or not at all fails the client.
$node->pgbench(
	'-n -c 8 -j 4 -T 6', 0,
	[qr{processed: \d+}], [qr{^$}],
	'pending rows and folds: concurrent writers and snapshot readers',
	{
		'pend_write' => q{
\set k random(1, 2000)
SET topgun.merkle_fold_rows = 3;
SELECT count(*) FROM topgun.lww_put_many(array_fill('pend-hot'::text, ARRAY[20]),
  ARRAY(SELECT 'k' || (:k + g) FROM generate_series(0, 19) g ORDER BY g),
  ARRAY(SELECT to_jsonb(g) FROM generate_series(0, 19) g ORDER BY g),
  ARRAY(SELECT topgun.hlc_now() FROM generate_series(0, 19) g ORDER BY g));
},
		'pend_read' => q{
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT CASE WHEN topgun.merkle_root('pend-hot') =
            (SELECT coalesce(sum(topgun._lww_item_hash(key, ts)), 0) % 4294967296 FROM topgun.lww WHERE map = 'pend-hot')
       THEN 1 ELSE 1 / (random() * 0)::int END;  -- not 1 / 0: constants are folded at plan time
COMMIT;
}
	});
is($node->safe_psql('postgres', "SELECT topgun.merkle_verify('pend-hot')"), 't',
	'pending rows and folds: the tree equals a rebuild');
is($node->safe_psql('postgres', "SELECT count(*) > 0 FROM topgun.merkle_nodes WHERE map = 'pend-hot'"), 't',
	'folds wrote node rows (every write alone would only pend)');
$node->safe_psql('postgres', "SELECT topgun.merkle_fold('pend-hot')");
is($node->safe_psql('postgres', "SELECT count(*) FROM topgun.merkle_pending WHERE map = 'pend-hot'"), '0',
	'merkle_fold leaves no pending row');
is($node->safe_psql('postgres', "SELECT topgun.merkle_verify('pend-hot')"), 't', 'and the same tree');

# Maps without a stored tree (src/merkle/modes.c) growing past the limit
# while other sessions keep writing them: a commit that drops its deltas
# (the map has no tree yet) must be in the rows the builder reads, so after
# the run every tree equals a rebuild; readers check the root in one snapshot
# in both modes.  Two maps per transaction, in one direction (m, m + 1), so
# the writers' own rows cannot deadlock.
$node->pgbench(
	'-n -c 8 -j 4 -T 6', 0,
	[qr{processed: \d+}], [qr{^$}],
	'small maps outgrow the limit under concurrent writers and readers',
	{
		'small_write' => q{
\set m random(1, 12)
\set k random(1, 60)
SET topgun.merkle_small_map_entries = 30;
BEGIN;
SELECT topgun.lww_put('sm-' || :m, 'k' || :k, to_jsonb(:k), topgun.hlc_now());
SELECT topgun.lww_put('sm-' || (:m % 12 + 1), 'k' || :k, to_jsonb(:k), topgun.hlc_now());
COMMIT;
},
		'small_read' => q{
\set m random(1, 12)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT CASE WHEN topgun.merkle_root('sm-' || :m) =
            (SELECT coalesce(sum(topgun._lww_item_hash(key, ts)), 0) % 4294967296 FROM topgun.lww WHERE map = 'sm-' || :m)
       THEN 1 ELSE 1 / (random() * 0)::int END;
COMMIT;
}
	});
is($node->safe_psql('postgres', q{
SELECT count(*) FROM generate_series(1, 12) m
 WHERE topgun.merkle_verify('sm-' || m)
   AND (SELECT stored FROM topgun.merkle_maps WHERE map = 'sm-' || m)}), '12',
	'small maps: every map got its tree and it equals a rebuild');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM generate_series(1, 12) m
 WHERE (SELECT count(*) FROM topgun.lww WHERE map = 'sm-' || m) > 30}), '12',
	'small maps: every map outgrew the limit of 30 entries');

# The same records applied in a different order on another map give the same root.
$node->safe_psql('postgres', q{
SELECT count(*) FROM (
  SELECT CASE WHEN value IS NULL THEN topgun.lww_remove('hot-copy', key, ts)
              ELSE topgun.lww_put('hot-copy', key, value, ts, ttl_ms) END
    FROM (SELECT * FROM topgun.lww WHERE map = 'hot' ORDER BY md5(key)) s) x});
is($node->safe_psql('postgres', "SELECT topgun.merkle_root('hot') = topgun.merkle_root('hot-copy')"), 't',
	'same records in another order: same root');

# Different tags of the same OR key written concurrently: each transaction's
# entry-hash recompute must include the other's committed records.
$node->pgbench(
	'-n -c 4 -j 2 -t 400', 0,
	[qr{processed: 1600/1600}], [qr{^$}],
	'concurrent OR adds on two keys',
	{ 'or2' => q{
\set k random(1, 2)
SELECT topgun.or_add('or-race', 'k' || :k, to_jsonb(:k));
} });
is($node->safe_psql('postgres', "SELECT topgun.merkle_verify('or-race')"), 't',
	'OR tree exact after concurrent adds to the same keys');

# Relation-cache invalidations from other sessions arrive in the middle of map
# registrations (regression test for a use-after-free in the map-kind cache).
$node->pgbench(
	'-n -c 6 -j 3 -T 6', 0,
	[qr{processed: \d+}], [qr{^$}],
	'map registrations under concurrent invalidations',
	{
		'newmaps' => q{
\set m random(1, 100000)
SELECT topgun.lww_put('reg-' || :m, 'k', '1', topgun.hlc_now());
SELECT topgun.or_add('reg-or-' || :m, 'k', '1');
},
		'ddl' => q{
CREATE TEMP TABLE churn (a int);
DROP TABLE churn;
ANALYZE topgun.maps;
}
	});
is($node->safe_psql('postgres', "SELECT count(*) > 0 FROM topgun.maps WHERE name LIKE 'reg-%'"), 't',
	'registrations survived concurrent invalidations');

# A second database receiving the same records in another order ends with the
# same root (LWW and OR maps).
$node->safe_psql('postgres', 'CREATE DATABASE replica');
$node->safe_psql('replica', 'CREATE EXTENSION topgun');
my $lww_rows = $node->safe_psql('postgres', q{
  SELECT coalesce(json_agg(json_build_object('k', key, 'v', value, 'ts', ts::text, 'ttl', ttl_ms)), '[]')
    FROM topgun.lww WHERE map = 'hot'});
my $or_rows = $node->safe_psql('postgres', q{
  SELECT coalesce(json_agg(json_build_object('k', key, 'v', value, 'tag', tag, 'ts', ts::text)), '[]')
    FROM topgun.ormap WHERE map = 'hot-or'});
my $or_tombs = $node->safe_psql('postgres', q{
  SELECT coalesce(json_agg(tag), '[]') FROM topgun.or_tombstones WHERE map = 'hot-or'});
$node->safe_psql('replica', qq{
  SELECT count(*) FROM (
    SELECT CASE WHEN e->'v' = 'null'::jsonb THEN topgun.lww_remove('hot', e->>'k', (e->>'ts')::topgun.hlc)
                ELSE topgun.lww_put('hot', e->>'k', e->'v', (e->>'ts')::topgun.hlc, (e->>'ttl')::bigint) END
      FROM jsonb_array_elements('$lww_rows'::jsonb) e ORDER BY md5(e::text) DESC) s;
  SELECT count(*) FROM (SELECT topgun.or_remove_tag('hot-or', t) FROM jsonb_array_elements_text('$or_tombs'::jsonb) t) s;
  SELECT count(*) FROM (
    SELECT topgun.or_apply('hot-or', e->>'k', e->'v', e->>'tag', (e->>'ts')::topgun.hlc)
      FROM jsonb_array_elements('$or_rows'::jsonb) e ORDER BY md5(e::text)) s;});
is($node->safe_psql('replica', "SELECT topgun.merkle_root('hot')"),
	$node->safe_psql('postgres', "SELECT topgun.merkle_root('hot')"), 'second database, other order: same LWW root');
is($node->safe_psql('replica', "SELECT topgun.merkle_root('hot-or')"),
	$node->safe_psql('postgres', "SELECT topgun.merkle_root('hot-or')"), 'second database, other order: same OR root');

my $log = slurp_file($node->logfile);
unlike($log, qr/deadlock detected/, 'no deadlocks between tree flushes');
$node->stop;
done_testing();
