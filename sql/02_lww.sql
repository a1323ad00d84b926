-- LWW maps: merge rule, tombstones, TTL, views, kind checks, bad input.
\set SHOW_CONTEXT never
SET search_path = topgun, public;

SELECT lww_put('todos', 't1', '{"title":"a"}', '100:0:n1');
SELECT lww_get('todos', 't1');
-- older and equal timestamps lose; equal keeps the stored record (idempotent)
SELECT lww_put('todos', 't1', '{"title":"old"}', '99:5:n1') AS older, lww_put('todos', 't1', '{"title":"same"}', '100:0:n1') AS equal;
SELECT lww_get('todos', 't1');
-- newer wins, including by counter and by node bytes
SELECT lww_put('todos', 't1', '{"title":"b"}', '100:1:n1') AS by_counter, lww_put('todos', 't1', '{"title":"c"}', '100:1:n2') AS by_node;
SELECT lww_get('todos', 't1');
-- tombstones win when newer, lose when older
SELECT lww_remove('todos', 't1', '100:0:n9') AS older_tombstone;
SELECT lww_get('todos', 't1');
SELECT lww_remove('todos', 't1', '200:0:n1') AS newer_tombstone;
SELECT lww_get('todos', 't1') IS NULL AS gone;
SELECT key, value IS NULL AS tombstone, ts FROM lww WHERE map = 'todos';
SELECT count(*) FROM lww_entries WHERE map = 'todos';
-- JSON null is a tombstone (TopGun wire semantics)
SELECT lww_put('todos', 't2', '1', '10:0:n1'), lww_put('todos', 't2', 'null', '11:0:n1'), lww_get('todos', 't2') IS NULL;
-- commutativity: the same records in every order give the same state
CREATE TEMP TABLE recs (k text, v jsonb, ts hlc);
INSERT INTO recs VALUES ('a', '1', '5:0:x'), ('a', '2', '5:1:x'), ('a', '3', '4:9:y'), ('b', '"x"', '7:0:x'),
                        ('b', NULL, '7:0:y'), ('c', '[1,2]', '1:0:z'), ('a', '4', '5:1:w');
DO $$
DECLARE
  perm int;
  r record;
BEGIN
  FOR perm IN 1..6 LOOP
    FOR r IN SELECT * FROM recs ORDER BY md5(perm::text || k || ts::text) LOOP
      IF r.v IS NULL THEN PERFORM topgun.lww_remove('perm' || perm, r.k, r.ts);
      ELSE PERFORM topgun.lww_put('perm' || perm, r.k, r.v, r.ts); END IF;
      -- idempotence: applying twice changes nothing
      IF r.v IS NULL THEN PERFORM topgun.lww_remove('perm' || perm, r.k, r.ts);
      ELSE PERFORM topgun.lww_put('perm' || perm, r.k, r.v, r.ts); END IF;
    END LOOP;
  END LOOP;
END $$;
SELECT count(DISTINCT s) AS distinct_final_states FROM (
  SELECT map, string_agg(key || '=' || coalesce(value::text, '<tomb>') || '@' || ts::text, ',' ORDER BY key) s
    FROM lww WHERE map LIKE 'perm%' GROUP BY map) x;
SELECT key, value, ts FROM lww WHERE map = 'perm1' ORDER BY key;
SELECT count(DISTINCT merkle_root(name)) AS distinct_roots, bool_and(merkle_verify(name)) AS verified FROM maps WHERE name LIKE 'perm%';

-- TTL: live until millis + ttl_ms, then absent from get and the view but still stored
SELECT lww_put('ttl', 'fresh', '"x"', hlc_now(), 600000), lww_put('ttl', 'stale', '"y"', '1000:0:n1', 5);
SELECT lww_get('ttl', 'fresh'), lww_get('ttl', 'stale');
SELECT key, ttl_ms, expires_at > now() AS in_future FROM lww_entries WHERE map = 'ttl';
SELECT count(*) FROM lww WHERE map = 'ttl';

-- a remote timestamp advances the node clock
SELECT lww_put('clock', 'k', '1', hlc((extract(epoch FROM clock_timestamp()) * 1000)::bigint + 30000, 3, 'peer'));
SELECT hlc_now() > hlc((extract(epoch FROM clock_timestamp()) * 1000)::bigint + 29000, 0, 'peer') AS clock_advanced;

-- strict clock: an op too far in the future is rejected and stores nothing
\set VERBOSITY terse
SET topgun.strict_clock = on;
SELECT lww_put('clock', 'future', '1', hlc(9000000000000, 0, 'peer'));
SELECT count(*) FROM lww WHERE map = 'clock' AND key = 'future';
RESET topgun.strict_clock;
\set VERBOSITY default

-- kind is fixed at first use
SELECT or_add('todos', 'x', '1');
SELECT map_kind('todos'), map_kind('nope');

-- bad input: clear errors, nothing changed
SELECT count(*) AS before FROM lww;
SELECT lww_put(NULL, 'k', '1');
SELECT lww_put('m', NULL, '1');
SELECT lww_put('m', 'k', NULL);
SELECT lww_put('m', 'k', '1', NULL);
SELECT lww_remove('m', 'k', NULL);
SELECT lww_put('', 'k', '1');
SELECT lww_put(repeat('m', 257), 'k', '1');
SELECT lww_put('m', repeat('k', 1025), '1');
SELECT lww_put('m', 'k', '1', hlc_now(), 0);
SELECT lww_put('m', 'k', '1', hlc_now(), -5);
SELECT lww_put('m', 'k', 'not json');
SET topgun.max_value_bytes = 100;
SELECT lww_put('m', 'k', to_jsonb(repeat('v', 200)));
RESET topgun.max_value_bytes;
SELECT count(*) AS after FROM lww;
-- empty keys and unicode keys are fine
SELECT lww_put('m', '', '"empty"', '1:0:n'), lww_put('m', 'ключ😀', '"uni"', '1:0:n');
SELECT key, value FROM lww_entries WHERE map = 'm' ORDER BY key;
