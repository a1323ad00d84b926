# The journal under concurrency (docs/journal.md):
#  - a transaction that took a smaller sequence number and commits later is
#    never skipped: readers stop at the horizon until it ends;
#  - many writers plus a reader that follows the journal with journal_read()
#    from its cursor: the reader sees every event exactly once, in sequence
#    order, and per key the sequence order is the write (commit) order;
#  - numbering survives a restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('journal');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'topgun'
topgun.port = 0
topgun.node_id = 'journal-node'
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', q{CREATE EXTENSION topgun; SELECT topgun.journal_enable('jt*')});
# the map exists before the sessions below race (a map's first write registers it)
$node->safe_psql('postgres', q{SELECT topgun.lww_put('jt', 'init', '0', '1:0:a')});

# --- a smaller number that commits later holds readers back
my $a = $node->background_psql('postgres');
$a->query_safe('SET topgun.journal_buffer_events = 1');
$a->query_safe('BEGIN');
$a->query_safe(q{SELECT topgun.lww_put('jt', 'slow', '1', '10:0:a')});   # numbered now (buffer of 1)
is($node->safe_psql('postgres', q{SELECT count(*) FROM topgun.journal_events WHERE key = 'slow'}), '0',
	'the open transaction\'s event is not visible');
$node->safe_psql('postgres', q{SELECT topgun.lww_put('jt', 'fast', '1', '11:0:b')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM topgun.journal_events WHERE key = 'fast'}), '1',
	'the later transaction committed first');
is($node->safe_psql('postgres', q{SELECT string_agg(key, ',') FROM topgun.journal_read(0)}), 'init',
	'journal_read stops below the open transaction\'s number');
is($node->safe_psql('postgres', q{SELECT topgun.journal_horizon()}), '0', 'horizon is held back');
$a->query_safe('COMMIT');
is($node->safe_psql('postgres', q{SELECT string_agg(key, ',' ORDER BY sequence) FROM topgun.journal_read(0)}),
	'init,slow,fast', 'after its commit both are read, in sequence order');
# an aborted holder releases the horizon too
$a->query_safe('BEGIN');
$a->query_safe(q{SELECT topgun.lww_put('jt', 'aborted', '1', '12:0:a')});
$node->safe_psql('postgres', q{SELECT topgun.lww_put('jt', 'after-abort', '1', '13:0:b')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM topgun.journal_read(0)}), '3', 'held back by an open transaction');
$a->query_safe('ROLLBACK');
is($node->safe_psql('postgres', q{SELECT string_agg(key, ',' ORDER BY sequence) FROM topgun.journal_read(0)}),
	'init,slow,fast,after-abort', 'the rolled-back event never appears, the gap is passed');
$a->quit;

# --- concurrent writers and a following reader
$node->safe_psql('postgres', q{
CREATE TABLE seen (seq bigint, n serial);
CREATE TABLE stop (x int);
CREATE PROCEDURE follow() LANGUAGE plpgsql AS $$
DECLARE
  cur bigint := 0;
  got bigint;
  stopping boolean;
BEGIN
  LOOP
    stopping := EXISTS (SELECT 1 FROM stop);
    INSERT INTO seen (seq) SELECT sequence FROM topgun.journal_read(cur, 500) ORDER BY sequence;
    GET DIAGNOSTICS got = ROW_COUNT;
    SELECT coalesce(max(seq) + 1, 0) INTO cur FROM seen;
    COMMIT;
    EXIT WHEN stopping AND got = 0;
    IF got = 0 THEN
      PERFORM pg_sleep(0.002);   -- polling pace, not synchronisation
    END IF;
  END LOOP;
END $$;
});
my $reader = $node->background_psql('postgres');
$reader->query_until(qr/started/, "\\echo started\nCALL follow();\n");

# transactions of 1..3 writes over few keys: they contend on rows and commit
# in orders other than the one they took their numbers in
$node->pgbench(
	'-n -c 8 -j 4 -T 8', 0,
	[qr{processed: \d+}, qr{number of failed transactions: 0}], [qr{^$}],
	'concurrent writers on journaled maps',
	{
		# lww_put_many locks its keys in one order and the second statement's
		# keys are disjoint: contention without deadlocks
		'lww' => q{
\set k random(1, 40)
\set j random(1, 40)
BEGIN;
SELECT count(*) FROM topgun.lww_put_many(ARRAY['jt-lww', 'jt-lww', 'jt-lww'],
  ARRAY['k' || :k, 'k' || :j, 'k' || (:k * 7) % 40], ARRAY[to_jsonb(:k), NULL, '"x"']::jsonb[],
  ARRAY[topgun.hlc_now(), topgun.hlc_now(), topgun.hlc_now()]);
SELECT topgun.lww_put('jt-lww', 'b' || :j, to_jsonb(:k), topgun.hlc_now());
COMMIT;
},
		'batch' => q{
\set k random(1, 40)
SELECT topgun.lww_remove('jt-lww', 'k' || :k, topgun.hlc_now());
},
		'or' => q{
\set k random(1, 20)
BEGIN;
SELECT topgun.or_add('jt-or', 'k' || :k, to_jsonb(:k));
SELECT topgun.or_remove_tag('jt-or', (SELECT tag FROM topgun.ormap WHERE map = 'jt-or' AND key = 'k' || :k ORDER BY tag LIMIT 1));
COMMIT;
},
		'rollback' => q{
\set k random(1, 40)
BEGIN;
SELECT topgun.lww_put('jt-lww', 'rb' || :k, '"never"', topgun.hlc_now());
ROLLBACK;
}
	});
$node->safe_psql('postgres', 'INSERT INTO stop VALUES (1)');
$reader->query_safe('SELECT 1');    # returns once CALL follow() has finished
$reader->quit;

my $events = $node->safe_psql('postgres', 'SELECT count(*) FROM topgun.journal_events');
cmp_ok($events, '>', 1000, "writers produced $events events");
is($node->safe_psql('postgres', q{
  SELECT count(*) FROM (SELECT seq FROM seen EXCEPT ALL SELECT seq FROM topgun.journal_events) a}), '0',
	'the reader saw nothing that is not in the journal');
is($node->safe_psql('postgres', q{
  SELECT count(*) FROM (SELECT seq FROM topgun.journal_events EXCEPT ALL SELECT seq FROM seen) a}), '0',
	'the reader missed no event');
is($node->safe_psql('postgres', q{
  SELECT count(*) FROM (SELECT seq, lag(seq) OVER (ORDER BY n) AS prev FROM seen) s WHERE seq <= prev}), '0',
	'the reader saw events in strictly increasing sequence order');
is($node->safe_psql('postgres', q{SELECT count(*) FROM topgun.journal_events WHERE key LIKE 'rb%'}), '0',
	'rolled-back writes were never journaled');
# per key: every journaled LWW write won, so in sequence order its timestamps increase
is($node->safe_psql('postgres', q{
  SELECT count(*) FROM (SELECT ts, lag(ts) OVER (PARTITION BY key ORDER BY seq) AS prev
                          FROM topgun.journal_events WHERE map = 'jt-lww') s
   WHERE NOT (prev OPERATOR(topgun.<) ts)}), '0',
	'per key, sequence order is write order');
is($node->safe_psql('postgres', q{
  SELECT count(*) FROM topgun.lww l
    JOIN LATERAL (SELECT e.value, e.ts FROM topgun.journal_events e WHERE e.map = l.map AND e.key = l.key
                   ORDER BY e.seq DESC LIMIT 1) last ON true
   WHERE l.map = 'jt-lww' AND (NOT (last.ts OPERATOR(topgun.=) l.ts) OR last.value IS DISTINCT FROM l.value)}), '0',
	'the last event of every key is its stored record');
is($node->safe_psql('postgres', q{
  SELECT count(*) FROM topgun.lww l WHERE l.map = 'jt-lww'
     AND NOT EXISTS (SELECT 1 FROM topgun.journal_events e WHERE e.map = l.map AND e.key = l.key)}), '0',
	'every stored key has events');

# --- numbering survives a restart
my $top = $node->safe_psql('postgres', 'SELECT max(seq) FROM topgun.journal_events');
$node->restart;
is($node->safe_psql('postgres', 'SELECT topgun.journal_horizon()'), $top, 'after a restart the horizon is the last number');
$node->safe_psql('postgres', q{SELECT topgun.lww_put('jt', 'after-restart', '1', topgun.hlc_now())});
cmp_ok($node->safe_psql('postgres', q{SELECT seq FROM topgun.journal_events WHERE key = 'after-restart'}), '>', $top,
	'numbers keep growing after a restart');

$node->stop;
done_testing();
