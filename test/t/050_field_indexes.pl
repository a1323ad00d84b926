# Field indexes on a live server (docs/sql-api.md "Field indexes"):
#  - create_index on a 100k-record map: the index builder runs CREATE INDEX
#    CONCURRENTLY, and a write from another session commits while the build
#    is in progress (held in its "waiting for writers" phase by an open
#    transaction, so the overlap is a fact, not a timing);
#  - the state becomes 'ready', both indexes are valid, the planner uses the
#    index for the query shape of the QUERY_SUB planner, and the concurrent
#    write is in it;
#  - drop_index removes both indexes and the row;
#  - SIGKILL of the builder mid-build (a crash-restart of the server): the
#    row is taken up again by index_wait, the invalid index the killed build
#    left is dropped, and the state ends 'ready' (never stuck in 'building');
#    the build killed is a two-field index (cat, n), with a one-field one
#    pending behind it;
#  - with the sync server running, the same crash needs no call at all: the
#    session executor's start resumes the build.
# Every wait polls a fact (registry state, pg_stat_progress_create_index,
# pg_stat_activity); nothing sleeps for a fixed time.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('fidx');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = 0
topgun.node_id = 'fidx-node'
# Cluster.pm turns this off; the SIGKILL case needs the crash-restart cycle.
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION topgun');
$node->safe_psql(
	'postgres', q{
INSERT INTO topgun.lww (map, key, value, ts)
  SELECT 'm', 'k' || g, jsonb_build_object('cat', g % 100, 'n', g), topgun.hlc_now()
    FROM generate_series(1, 100000) g;
ANALYZE topgun.lww;
});

sub state_of
{
	my ($field) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce((SELECT state FROM topgun.field_indexes WHERE map = 'm' AND field = '$field'), 'none')");
}

my $building_phase = q{
SELECT count(*) = 1 FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid)
 WHERE a.backend_type = 'topgun index builder' AND p.phase = 'waiting for writers before build'};

# --- a build next to writes
# An open write transaction holds the builder in CREATE INDEX CONCURRENTLY's
# first wait, so the build is certainly in progress during the write below.
my $blocker = $node->background_psql('postgres');
$blocker->query_safe('BEGIN');
$blocker->query_safe(q{SELECT topgun.lww_put('other', 'x', '1')});
is($node->safe_psql('postgres', q{SELECT topgun.create_index('m', 'cat')}),
	'building', 'create_index returns building at once');
ok($node->poll_query_until('postgres', $building_phase),
	'the index builder runs CREATE INDEX CONCURRENTLY (waiting for an older writer)');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM pg_locks WHERE relation = 'topgun.lww'::regclass AND granted
   AND mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')}),
	'0', 'no lock that blocks writers is held on topgun.lww during the build');
is( $node->safe_psql(
		'postgres', q{
SET lock_timeout = '30s';
SELECT topgun.lww_put('m', 'during', '{"cat": 7, "n": -1}')}),
	't', 'a write to the indexed map from another session commits during the build');
ok($node->safe_psql('postgres', $building_phase) eq 't' && state_of('cat') eq 'building',
	'the build was still in progress after that write');
$blocker->query_safe('COMMIT');
ok($node->poll_query_until('postgres', q{SELECT state FROM topgun.field_indexes WHERE map = 'm' AND field = 'cat'},
		'ready'),
	'state becomes ready');
is($node->safe_psql('postgres', q{SELECT valid, size > 0 FROM topgun.indexes WHERE map = 'm' AND field = 'cat'}),
	't|t', 'both indexes valid and ready (topgun.indexes)');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM pg_index i JOIN topgun.field_indexes f
    ON i.indexrelid IN (to_regclass('topgun.' || quote_ident(f.lww_index)), to_regclass('topgun.' || quote_ident(f.or_index)))
 WHERE f.field = 'cat' AND i.indisvalid AND i.indisready}),
	'2', 'pg_index: both entries indisvalid and indisready');
my $plan = $node->safe_psql('postgres',
	q{EXPLAIN (costs off) SELECT key FROM topgun.lww WHERE map = 'm' AND (value #> '{cat}'::text[]) = '7'::jsonb});
like($plan, qr/tg_fidx_[0-9a-f]{16}_lww/, 'the planner uses the field index') or diag($plan);
is( $node->safe_psql(
		'postgres', q{
SET enable_seqscan = off;
SELECT count(*), count(*) FILTER (WHERE key = 'during') FROM topgun.lww
 WHERE map = 'm' AND (value #> '{cat}'::text[]) = '7'::jsonb}),
	'1001|1', 'the index holds every record, the concurrent write included');

# --- drop
is($node->safe_psql('postgres', q{SELECT topgun.drop_index('m', 'cat')}), 't', 'drop_index');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM topgun.field_indexes WHERE field = 'cat'}),
	'the row goes');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname LIKE 'tg\_fidx\_%'}),
	'0', 'both indexes are gone');

# --- SIGKILL of the builder in the middle of a build
$blocker = $node->background_psql('postgres');
$blocker->query_safe('BEGIN');
$blocker->query_safe(q{SELECT topgun.lww_put('other', 'y', '1')});
# one transaction, one builder: it takes (cat, n) first (same created_at, and '{cat,n}' < '{n}')
is( $node->safe_psql('postgres', q{SELECT topgun.create_index('m', 'n'), topgun.create_index('m', ARRAY['cat', 'n'])}),
	'building|building', 'second and third builds started');
ok($node->poll_query_until('postgres', $building_phase), 'the builder is in the middle of the build');
is( $node->safe_psql(
		'postgres', q{
SELECT f.field, i.indisvalid FROM pg_index i JOIN topgun.field_indexes f
    ON i.indexrelid = to_regclass('topgun.' || quote_ident(f.lww_index)) WHERE f.map = 'm'}),
	'cat, n|f', 'the half-built index of (cat, n) exists, not yet valid; n waits for its turn');
my $pid = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'topgun index builder'});
ok($pid > 0, "builder pid $pid");
my $log_offset = -s $node->logfile;
kill 'KILL', $pid;
eval { $blocker->quit; };    # the crash-restart ended that session too

# The kill is seen by the postmaster a moment later: a connection made before
# that still reaches the old processes (a sanitizer run once saw SELECT 1
# succeed there and the next query meet recovery).  Wait for the restart to
# begin, then, until the postmaster accepts connections again, psql fails at
# once: poll the fact in an eval (as 001_worker_lifecycle does).
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
my $back = 0;
my $deadline = time() + 120;
while (!$back && time() < $deadline)
{
	my $r = eval { $node->safe_psql('postgres', 'SELECT 1'); };
	$back = defined $r && $r eq '1';
	usleep(100_000) unless $back;
}
ok($back, 'the server is back after the crash-restart');
is(state_of('n') . ' ' . state_of('cat, n'), 'building building', 'after the restart the rows still say building');
is($node->safe_psql('postgres', q{SELECT topgun._index_builder_running()}), 'f', 'and no builder runs');

my $final = $node->safe_psql('postgres', q{CALL topgun.index_wait('m', 'n', '5 min')});
ok($final eq 'ready' || $final eq 'failed', "index_wait takes the row up again and it ends ($final)");
is($final, 'ready', 'the pending build is done');
is($node->safe_psql('postgres', q{CALL topgun.index_wait('m', ARRAY['cat', 'n'], '5 min')}),
	'ready', 'the interrupted two-field build is redone');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname LIKE 'tg\_fidx\_%' AND NOT (i.indisvalid AND i.indisready)}),
	'0', 'no invalid index left behind');
is($node->safe_psql('postgres', q{SELECT string_agg(field || '=' || valid, ' ' ORDER BY fields) FROM topgun.indexes}),
	'cat, n=true n=true', 'both indexes of both valid');
like( $node->safe_psql(
		'postgres', q{
SET enable_seqscan = off;
EXPLAIN (costs off) SELECT key FROM topgun.lww WHERE map = 'm' AND (value #> '{cat}'::text[]) = '7'::jsonb
 ORDER BY (value #> '{n}'::text[]) LIMIT 3}),
	qr/Index Scan using tg_fidx_[0-9a-f]{16}_lww.*Index Cond: \(\(value #> '\{cat\}'::text\[\]\) = '7'::jsonb\)/s,
	'equality on cat ordered by n is read from (cat, n)');

$node->stop;

# --- with the sync server: its session executor resumes the build by itself
my $wsport = PostgreSQL::Test::Cluster::get_free_port();
my $srv = PostgreSQL::Test::Cluster->new('fidxsrv');
$srv->init;
$srv->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = $wsport
topgun.listen_addresses = '127.0.0.1'
topgun.jwt_secret = 'fidx-test-secret-0123456789abcdefghijklmnopqrstuv'
restart_after_crash = on
});
$srv->start;
$srv->safe_psql('postgres', 'CREATE EXTENSION topgun');
$srv->safe_psql(
	'postgres', q{
INSERT INTO topgun.lww (map, key, value, ts)
  SELECT 'm', 'k' || g, jsonb_build_object('cat', g % 100), topgun.hlc_now() FROM generate_series(1, 20000) g});
$blocker = $srv->background_psql('postgres');
$blocker->query_safe('BEGIN');
$blocker->query_safe(q{SELECT topgun.lww_put('other', 'z', '1')});
is($srv->safe_psql('postgres', q{SELECT topgun.create_index('m', 'cat')}), 'building', 'build on the server node');
ok($srv->poll_query_until('postgres', $building_phase), 'its builder is in the middle of the build');
$pid = $srv->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'topgun index builder'});
$log_offset = -s $srv->logfile;
kill 'KILL', $pid;
eval { $blocker->quit; };
$srv->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$back = 0;
$deadline = time() + 120;
while (!$back && time() < $deadline)
{
	my $r = eval {
		$srv->safe_psql('postgres',
			q{SELECT state FROM topgun.field_indexes WHERE map = 'm' AND field = 'cat'});
	};
	$back = defined $r && $r eq 'ready';
	usleep(100_000) unless $back;
}
ok($back, 'after the crash-restart the build is resumed and ends ready without any call');
is($srv->safe_psql('postgres', q{SELECT valid FROM topgun.indexes WHERE field = 'cat'}), 't', 'both indexes valid');
ok($srv->log_contains(qr/resuming interrupted field index builds/), 'the session executor logged the resume');
$srv->stop;
done_testing();
