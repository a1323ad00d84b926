-- pgTAP: the CRDT algebra and the error contract of the SQL API.
\set QUIET on
\pset format unaligned
\pset tuples_only on
\pset pager off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS topgun;
SET search_path = topgun, public;
SELECT setseed(0.42);
\set QUIET off
SELECT plan(32);

-- Random LWW records (ties on millis and counter, tombstones and TTLs).  HLCs
-- are unique by construction, so each timestamp carries one record.
CREATE TEMP TABLE lrec AS SELECT DISTINCT ON (ts) * FROM (
  SELECT 'k' || (random() * 40)::int AS k,
         CASE WHEN random() < 0.2 THEN NULL ELSE to_jsonb((random() * 1000)::int) END AS v,
         hlc(1000 + (random() * 20)::int, (random() * 3)::int, 'n' || (random() * 3)::int) AS ts,
         CASE WHEN random() < 0.1 THEN 100000000000000::bigint END AS ttl
    FROM generate_series(1, 400)) s;

CREATE FUNCTION pg_temp.apply_lww(m text, ord text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN EXECUTE 'SELECT * FROM lrec ORDER BY ' || ord LOOP
    IF r.v IS NULL THEN PERFORM topgun.lww_remove(m, r.k, r.ts);
    ELSE PERFORM topgun.lww_put(m, r.k, r.v, r.ts, r.ttl); END IF;
  END LOOP;
END $$;
CREATE FUNCTION pg_temp.lww_state(m text) RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(key || '=' || coalesce(value::text, '~') || '@' || ts::text || '/' || coalesce(ttl_ms::text, ''), ',' ORDER BY key)
    FROM topgun.lww WHERE map = m $$;

SELECT pg_temp.apply_lww('alg_a', 'ts, k');
SELECT pg_temp.apply_lww('alg_b', 'ts DESC, k DESC');
SELECT pg_temp.apply_lww('alg_c', 'md5(k || ts::text)');
-- associativity: two halves merged separately, then combined through mergeable rows
SELECT pg_temp.apply_lww('alg_d', 'k');
SELECT pg_temp.apply_lww('alg_d', 'ts');  -- and idempotence: everything applied twice

SELECT is(pg_temp.lww_state('alg_b'), pg_temp.lww_state('alg_a'), 'LWW merge is commutative (reverse order)');
SELECT is(pg_temp.lww_state('alg_c'), pg_temp.lww_state('alg_a'), 'LWW merge is commutative (shuffled order)');
SELECT is(pg_temp.lww_state('alg_d'), pg_temp.lww_state('alg_a'), 'LWW merge is idempotent (applied twice)');
SELECT is(merkle_root('alg_b'), merkle_root('alg_a'), 'equal states have equal Merkle roots');
SELECT ok(merkle_verify('alg_a') AND merkle_verify('alg_b') AND merkle_verify('alg_c') AND merkle_verify('alg_d'),
          'incremental trees equal rebuilds from rows');

-- associativity: (A ∪ B) ∪ C == A ∪ (B ∪ C) through three peers exchanging their rows
CREATE TEMP TABLE part AS SELECT *, ntile(3) OVER (ORDER BY md5(k || ts::text)) AS p FROM lrec;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM part LOOP
    IF r.v IS NULL THEN PERFORM topgun.lww_remove('tap_peer' || r.p, r.k, r.ts);
    ELSE PERFORM topgun.lww_put('tap_peer' || r.p, r.k, r.v, r.ts, r.ttl); END IF;
  END LOOP;
  -- left: (1 merged into 2) then into 3;  right: 1 into (2 merged into 3)
  PERFORM topgun.lww_put('tap_left', key, coalesce(value, 'null'), ts, ttl_ms) FROM topgun.lww WHERE map IN ('tap_peer1', 'tap_peer2');
  PERFORM topgun.lww_put('tap_left', key, coalesce(value, 'null'), ts, ttl_ms) FROM topgun.lww WHERE map = 'tap_peer3';
  PERFORM topgun.lww_put('tap_right', key, coalesce(value, 'null'), ts, ttl_ms) FROM topgun.lww WHERE map IN ('tap_peer2', 'tap_peer3');
  PERFORM topgun.lww_put('tap_right', key, coalesce(value, 'null'), ts, ttl_ms) FROM topgun.lww WHERE map = 'tap_peer1';
END $$;
SELECT is(pg_temp.lww_state('tap_left'), pg_temp.lww_state('tap_right'), 'LWW merge is associative');
SELECT is(pg_temp.lww_state('tap_left'), pg_temp.lww_state('alg_a'), 'merging the peers gives the same state as one replica');

-- tombstones win only when newer
SELECT ok(lww_put('tap_tomb', 'k', '1', '10:0:a'), 'initial put');
SELECT ok(NOT lww_remove('tap_tomb', 'k', '9:0:a'), 'older tombstone loses');
SELECT ok(lww_remove('tap_tomb', 'k', '11:0:a'), 'newer tombstone wins');
SELECT ok(NOT lww_put('tap_tomb', 'k', '2', '10:5:z'), 'an older put cannot resurrect');
SELECT is(lww_get('tap_tomb', 'k'), NULL, 'tombstoned key reads as absent');

-- TTL
SELECT ok(lww_put('tap_ttlp', 'k', '1', hlc(topgun.now_ms() - 1000, 0, 'a'), 500), 'expired record stored');
SELECT is(lww_get('tap_ttlp', 'k'), NULL, 'expired record reads as absent');
SELECT is((SELECT count(*) FROM lww_entries WHERE map = 'tap_ttlp'), 0::bigint, 'expired record hidden from the view');

-- OR map: add-wins for unseen tags, remove of observed tags, any delivery order
CREATE TEMP TABLE oops (i int, op text, k text, v jsonb, tag text);
INSERT INTO oops SELECT g, CASE WHEN g % 4 = 0 THEN 'rm' ELSE 'add' END, 'k' || (g % 5),
                        to_jsonb(g % 7), (1000 + g) || ':0:n' || (g % 3)
  FROM generate_series(1, 120) g;
UPDATE oops SET tag = (1000 + i - 1) || ':0:n' || ((i - 1) % 3) WHERE op = 'rm';   -- remove the previous add's tag
CREATE FUNCTION pg_temp.apply_or(m text, ord text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN EXECUTE 'SELECT * FROM oops ORDER BY ' || ord LOOP
    IF r.op = 'rm' THEN PERFORM topgun.or_remove_tag(m, r.tag);
    ELSE PERFORM topgun.or_apply(m, r.k, r.v, r.tag, r.tag::topgun.hlc); END IF;
  END LOOP;
END $$;
CREATE FUNCTION pg_temp.or_state(m text) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(string_agg(key || '/' || tag || '=' || value::text, ',' ORDER BY key, tag), '')
    FROM topgun.ormap WHERE map = m $$;
SELECT pg_temp.apply_or('or_a', 'i');
SELECT pg_temp.apply_or('or_b', 'i DESC');
SELECT pg_temp.apply_or('or_c', 'md5(i::text)');
SELECT pg_temp.apply_or('or_c', 'i');
SELECT is(pg_temp.or_state('or_b'), pg_temp.or_state('or_a'), 'OR map: remove before add converges');
SELECT is(pg_temp.or_state('or_c'), pg_temp.or_state('or_a'), 'OR map: shuffled and repeated delivery converges');
SELECT is((SELECT count(*) FROM ormap o JOIN or_tombstones t USING (map, tag) WHERE o.map = 'or_a'), 0::bigint,
          'no tombstoned tag is stored');
SELECT is(merkle_root('or_b'), merkle_root('or_a'), 'OR roots equal');
SELECT ok(merkle_verify('or_a') AND merkle_verify('or_b') AND merkle_verify('or_c'), 'OR trees equal rebuilds');

-- counters: merge is per-node max, commutative, idempotent
SELECT is(counter_merge('tap_c1', '{"p":{"a":5,"b":2},"n":{"a":1}}'), 6::bigint, 'counter merge');
SELECT is(counter_merge('tap_c1', '{"positive":{"a":3,"b":7},"negative":{"b":4}}'), 7::bigint, 'per-node max, both shapes');
SELECT is(counter_merge('tap_c1', '{"positive":{"a":3,"b":7},"negative":{"b":4}}'), 7::bigint, 'idempotent');
SELECT is(counter_merge('tap_c2', '{"positive":{"a":3,"b":7},"negative":{"b":4}}') * 0 + counter_merge('tap_c2', '{"p":{"a":5,"b":2},"n":{"a":1}}'),
          counter_value('tap_c1'), 'commutative');

-- error contract (SQLSTATEs)
SELECT throws_ok($$SELECT topgun.or_add('alg_a', 'k', '1')$$, '42809', NULL, 'kind mismatch raises wrong_object_type');
SELECT throws_ok($$SELECT topgun.lww_put('or_a', 'k', '1')$$, '42809', NULL, 'kind mismatch the other way');
SELECT throws_ok($$SELECT 'x:y:z'::topgun.hlc$$, '22P02', NULL, 'bad hlc text raises invalid_text_representation');
SELECT throws_ok($$SELECT topgun.lww_put('tap_m', repeat('k', 2000), '1')$$, '54000', NULL, 'oversized key raises program_limit_exceeded');
SELECT throws_ok($$SELECT topgun.lww_put('tap_m', 'k', NULL)$$, '22004', NULL, 'NULL value raises null_value_not_allowed');
SELECT throws_ok($$SELECT topgun.counter_merge('tap_c1', '{"p":{"a":-1}}')$$, '22023', NULL, 'bad counter state raises invalid_parameter_value');
SET topgun.strict_clock = on;
SELECT throws_ok($$SELECT topgun.lww_put('tap_m', 'k', '1', topgun.hlc(topgun.now_ms() + 3600000, 0, 'x'))$$, '22008', NULL,
                 'strict clock rejects a far-future timestamp');
RESET topgun.strict_clock;
SELECT is((SELECT count(*) FROM lww WHERE map = 'tap_m'), 0::bigint, 'rejected writes stored nothing');

SELECT * FROM finish();
