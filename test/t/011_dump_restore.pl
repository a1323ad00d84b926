# pg_dump / pg_restore of CRDT state: user data is dumped (pg_extension_config_dump),
# the derived Merkle trees are rebuilt by the storage triggers during the restore.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'topgun'\ntopgun.port = 0\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION topgun;
SELECT count(*) FROM (SELECT topgun.lww_put('todos', 'k' || g, jsonb_build_object('n', g), topgun.hlc(1000 + g, 0, 'a'),
                                            CASE WHEN g % 10 = 0 THEN 600000000000 END)
                        FROM generate_series(1, 3000) g) s;
SELECT count(*) FROM (SELECT topgun.lww_remove('todos', 'k' || g, topgun.hlc(9000 + g, 0, 'b')) FROM generate_series(1, 300) g) s;
SELECT count(*) FROM (SELECT topgun.or_add('tags', 'p' || (g % 50), to_jsonb(g), topgun.hlc(2000 + g, 0, 'c')) FROM generate_series(1, 500) g) s;
SELECT count(*) FROM (SELECT topgun.or_remove_tag('tags', (2000 + g) || ':0:c') FROM generate_series(1, 100) g) s;
SELECT topgun.counter_add('likes', 7), topgun.counter_merge('likes', '{"p":{"peer":3},"n":{"peer":1}}');
});

my $state_sql = q{
SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
  SELECT 'l' || map || key || coalesce(value::text, '~') || ts::text || coalesce(ttl_ms::text, '') AS x FROM topgun.lww
  UNION ALL SELECT 'o' || map || key || tag || value::text || ts::text FROM topgun.ormap
  UNION ALL SELECT 't' || map || tag || coalesce(key, '') || (removed_at IS NOT NULL)::text FROM topgun.or_tags
  UNION ALL SELECT 'c' || name || node || p || ':' || n FROM topgun.counters
  UNION ALL SELECT 'm' || name || kind FROM topgun.maps) s};
my $roots_sql = "SELECT topgun.merkle_root('todos') || '/' || topgun.merkle_root('tags')";
my $state = $node->safe_psql('postgres', $state_sql);
my $roots = $node->safe_psql('postgres', $roots_sql);

my $dump = $node->basedir . '/topgun.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('restored'), $dump ], 'pg_restore without errors');

is($node->safe_psql('restored', $state_sql), $state, 'all CRDT rows restored');
is($node->safe_psql('restored', $roots_sql), $roots, 'Merkle roots equal after restore');
is($node->safe_psql('restored', "SELECT topgun.merkle_verify('todos') AND topgun.merkle_verify('tags')"), 't',
	'restored trees equal a rebuild');
is($node->safe_psql('restored', "SELECT topgun.counter_value('likes')"), '9', 'counter restored');
# the restored database keeps working
is($node->safe_psql('restored', "SELECT topgun.lww_put('todos', 'new', '1', topgun.hlc(99999, 0, 'z'))"), 't',
	'writes after restore');
is($node->safe_psql('restored', "SELECT topgun.merkle_verify('todos')"), 't', 'tree still exact');
$node->stop;
done_testing();
