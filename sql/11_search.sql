-- Full-text search (docs/search.md): the text search configuration, the
-- reference vectors (search_bm25.json, search_live.json), the transactional
-- index, and hostile input.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS topgun;

-- the text search configuration gives the reference's stems
SELECT to_tsvector('topgun.topgun', 'The quick brown foxes jumped over the lazy dogs');
SELECT to_tsvector('topgun.topgun', 'ΣΊΣΥΦΟΣ Don''t stop-believing: it''s 2024, año niño; iPhone e-mail C++ foo_bar');
SELECT topgun.search_tokens('machine learning databases'), topgun.search_tokens('a I x 12 3 ab');
SELECT ts_lexize('topgun.topgun', 'agreement'), ts_lexize('topgun.topgun', 'the'), ts_lexize('topgun.topgun', 'x');

------------------------------------------------------------------------------
-- search_bm25.json: replay each scenario's ops through lww_put/lww_remove and
-- compare every query: same result set, scores within 1e-9 relative, same
-- matchedTerms; order by score (ties are ordered by key here, see the docs).
------------------------------------------------------------------------------
\set bm25 `cat "${TOPGUN_VECTORS:-../shared/vectors}/search_bm25.json"`
\set live `cat "${TOPGUN_VECTORS:-../shared/vectors}/search_live.json"`
SET search.bm25 = :'bm25';
SET search.live = :'live';
CREATE TEMP TABLE bm25_report (scenario text, queries int, mismatches int, detail text);
-- topgun.search's rows as the vectors list them, and the comparison
CREATE FUNCTION pg_temp.run(map text, query text, options jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object('key', r.key, 'score', r.score, 'matchedTerms', to_jsonb(r.matched_terms))
                            ORDER BY r.score DESC, r.key COLLATE "C"), '[]')
    FROM topgun.search(map, query,
                       CASE WHEN jsonb_typeof(options->'limit') = 'number' THEN floor((options->>'limit')::numeric)::int END,
                       (options->>'minScore')::float8,
                       CASE WHEN jsonb_typeof(options->'boost') = 'object' THEN options->'boost' END) r
$$;
-- a vector's set/remove op
CREATE FUNCTION pg_temp.apply(map text, op jsonb) RETURNS boolean LANGUAGE sql AS $$
  SELECT CASE WHEN op->>'op' = 'set' THEN topgun.lww_put(map, op->>'key', op->'value')
              ELSE topgun.lww_remove(map, op->>'key') END
$$;
CREATE FUNCTION pg_temp.same(got jsonb, results jsonb) RETURNS boolean LANGUAGE sql AS $$
  WITH want AS (SELECT coalesce(jsonb_agg(e ORDER BY (e->>'score')::float8 DESC, e->>'key' COLLATE "C"), '[]') AS w
                  FROM jsonb_array_elements(results) e)
  SELECT jsonb_array_length(got) = jsonb_array_length(w) AND NOT EXISTS (
           SELECT 1 FROM generate_series(0, jsonb_array_length(w) - 1) k
            WHERE abs((got->k->>'score')::float8 - (w->k->>'score')::float8)
                  > 1e-9 * greatest(abs((w->k->>'score')::float8), 1e-300)
               OR (got->k->>'key') <> (w->k->>'key')
               OR (got->k->'matchedTerms') <> (w->k->'matchedTerms'))
    FROM want
$$;
DO $$
DECLARE
  v jsonb := current_setting('search.bm25')::jsonb;
  s jsonb;
  q jsonb;
  i int;
  nops int;
  map text;
  got jsonb;
  nq int;
  bad int;
  det text;
BEGIN
  FOR s IN SELECT * FROM jsonb_array_elements(v->'scenarios') LOOP
    map := 'bm25_' || (s->>'name');
    PERFORM topgun.search_enable(map, ARRAY(SELECT jsonb_array_elements_text(s->'config'->'fields')),
                                 coalesce((s->'config'->>'k1')::float8, 1.2), coalesce((s->'config'->>'b')::float8, 0.75));
    nops := 0; nq := 0; bad := 0; det := NULL;
    FOR q IN SELECT * FROM jsonb_array_elements(s->'queries') LOOP
      WHILE nops < (q->>'after_op')::int LOOP
        PERFORM pg_temp.apply(map, s->'ops'->nops);
        nops := nops + 1;
      END LOOP;
      nq := nq + 1;
      got := pg_temp.run(map, q->>'query', q->'options');
      IF NOT pg_temp.same(got, q->'results') THEN
        bad := bad + 1;
        det := coalesce(det || '; ', '') || (q->>'query') || ' ' || (q->>'options') || ' got ' || got::text;
      END IF;
    END LOOP;
    INSERT INTO bm25_report VALUES (s->>'name', nq, bad, left(det, 2000));
  END LOOP;
END $$;
SELECT count(*) AS scenarios, sum(queries) AS queries, sum(mismatches) AS mismatches FROM bm25_report;
-- the only differences: non_object_values, where a value that becomes a
-- non-object leaves the index here (the reference keeps its stale tokens)
SELECT scenario, mismatches FROM bm25_report WHERE mismatches > 0 ORDER BY scenario;
SELECT key, score, matched_terms FROM topgun.search('bm25_non_object_values', 'searchable');


------------------------------------------------------------------------------
-- search_live.json: the snapshot of every subscription equals topgun.search
-- with its options, and every ENTER/UPDATE the reference emits carries the
-- score topgun.search_score_keys gives the changed key right after the
-- write (LEAVE: no row, or below minScore).
------------------------------------------------------------------------------
CREATE TEMP TABLE live_report (scenario text, checks int, mismatches int, detail text);
DO $$
DECLARE
  v jsonb := current_setting('search.live')::jsonb;
  s jsonb;
  st jsonb;
  e jsonb;
  m record;
  sub jsonb;
  subs jsonb;
  got record;
  n int;
  bad int;
  det text;
BEGIN
  FOR s IN SELECT * FROM jsonb_array_elements(v->'scenarios') LOOP
    n := 0; bad := 0; det := NULL; subs := '{}';
    FOR m IN SELECT * FROM jsonb_each(s->'maps') LOOP
      PERFORM topgun.search_enable('live_' || (s->>'name') || '_' || m.key,
                                   ARRAY(SELECT jsonb_array_elements_text(m.value->'fields')));
    END LOOP;
    FOR st IN SELECT * FROM jsonb_array_elements(s->'steps') LOOP
      IF st->>'op' IN ('set', 'remove') THEN
        PERFORM pg_temp.apply('live_' || (s->>'name') || '_' || (st->>'map'), st);
      ELSIF st->>'op' IN ('subscribe', 'search') THEN
        IF st->>'op' = 'subscribe' THEN
          subs := subs || jsonb_build_object(st->>'subscriptionId', st);
        END IF;
        n := n + 1;
        IF NOT pg_temp.same(pg_temp.run('live_' || (s->>'name') || '_' || (st->>'map'), st->>'query', st->'options'),
                            st->'response'->'payload'->'results') THEN
          bad := bad + 1;
          det := coalesce(det || '; ', '') || 'step ' || (st->>'step');
        END IF;
      END IF;
      FOR e IN SELECT x->'message'->'payload' FROM jsonb_array_elements(st->'emitted') x LOOP
        sub := subs->(e->>'subscriptionId');
        SELECT k.score, k.matched_terms INTO got
          FROM topgun.search_score_keys('live_' || (s->>'name') || '_' || (st->>'map'), sub->>'query', ARRAY[e->>'key']) k;
        n := n + 1;
        IF (CASE WHEN e->>'type' = 'LEAVE'
                THEN got.score IS NOT NULL AND got.score >= coalesce((sub->'options'->>'minScore')::float8, 0)
                ELSE got.score IS NULL OR abs(got.score - (e->>'score')::float8) > 1e-9 * (e->>'score')::float8
                     -- live matchedTerms keep the query's duplicates; ours are distinct
                     OR to_jsonb(got.matched_terms) <> (SELECT jsonb_agg(y.t ORDER BY y.o) FROM (SELECT DISTINCT ON (x.t) x.t, x.o FROM jsonb_array_elements(e->'matchedTerms') WITH ORDINALITY x(t, o) ORDER BY x.t, x.o) y)
           END) THEN
          bad := bad + 1;
          det := coalesce(det || '; ', '') || 'step ' || (st->>'step') || ' ' || e::text || ' got ' || coalesce(got.score::text, 'none');
        END IF;
      END LOOP;
    END LOOP;
    INSERT INTO live_report VALUES (s->>'name', n, bad, left(det, 2000));
  END LOOP;
END $$;
SELECT count(*) AS scenarios, sum(checks) AS checks, sum(mismatches) AS mismatches FROM live_report;
-- non_object_value: difference 3 again (the reference scores x's stale tokens)
SELECT scenario, mismatches FROM live_report WHERE mismatches > 0 ORDER BY scenario;
-- the transactional statistics equal a recount from the documents
CREATE VIEW pg_temp.stats_drift AS
  SELECT 'df' AS what, coalesce(s.map_id, r.map_id) AS map_id, coalesce(s.term, r.term) AS term
    FROM (SELECT map_id, field, term, df FROM topgun.search_terms WHERE df <> 0) s
    FULL JOIN (SELECT map_id, field, u.lexeme AS term, count(*) AS df FROM topgun.search_doc, unnest(tsv) u GROUP BY 1, 2, 3) r
      USING (map_id, field, term)
   WHERE s.df IS DISTINCT FROM r.df
  UNION ALL
  SELECT 'docs', coalesce(s.map_id, r.map_id), NULL
    FROM (SELECT map_id, field, sum(docs) AS docs, sum(tokens) AS tokens
            FROM (SELECT map_id, field, docs, tokens FROM topgun.search_stats
                  UNION ALL SELECT map_id, field, docs, tokens FROM topgun.search_delta) t GROUP BY 1, 2
           HAVING sum(docs) <> 0 OR sum(tokens) <> 0) s
    FULL JOIN (SELECT map_id, field, count(*) AS docs, sum(len) AS tokens FROM topgun.search_doc GROUP BY 1, 2) r
      USING (map_id, field)
   WHERE (s.docs, s.tokens) IS DISTINCT FROM (r.docs, r.tokens);
SELECT count(*) AS drift FROM pg_temp.stats_drift;

------------------------------------------------------------------------------
-- The index follows the stored state, transactionally, from every write path
------------------------------------------------------------------------------
SELECT topgun.search_enable('docs', ARRAY['title', 'body']);
SELECT topgun.lww_put('docs', 'a', '{"title": "Red apple", "body": "a crisp fruit"}', '100:0:n');
-- a rolled-back write is never searchable; one's own uncommitted write is
BEGIN;
SELECT topgun.lww_put('docs', 'b', '{"title": "Green apple"}', '100:0:n');
SELECT key FROM topgun.search('docs', 'apple') ORDER BY key;
ROLLBACK;
SELECT key FROM topgun.search('docs', 'apple') ORDER BY key;
-- difference 1: a losing (older) write is not indexed; the stored value is
SELECT topgun.lww_put('docs', 'a', '{"title": "Banana"}', '50:0:n') AS older_wins;
SELECT key, matched_terms FROM topgun.search('docs', 'apple banana');
-- the batch path of the sync worker, and tombstones
SELECT * FROM topgun.lww_put_many(ARRAY['docs', 'docs', 'docs'], ARRAY['b', 'c', 'a'],
         ARRAY['{"title": "Green apple"}', '{"body": "apple pie and apple cake"}', NULL]::jsonb[],
         ARRAY['200:0:n', '200:0:n', '200:0:n']::topgun.hlc[]);
SELECT key, value, matched_terms FROM topgun.search('docs', 'apple') ORDER BY key;
-- plain SQL on the table, and a value that is not an object (difference 3)
UPDATE topgun.lww SET value = '"just a string"' WHERE map = 'docs' AND key = 'b';
SELECT key FROM topgun.search('docs', 'apple');
DELETE FROM topgun.lww WHERE map = 'docs' AND key = 'c';
SELECT key FROM topgun.search('docs', 'apple');
SELECT map, fields, documents, tokens FROM topgun.search_maps WHERE map = 'docs';
-- the statistics equal a recount from the documents
SELECT (SELECT sum(df) FROM topgun.search_terms s JOIN topgun.search_config c ON c.id = s.map_id
         WHERE c.map = 'docs') = 0 AS df_back_to_zero;
-- TTL expiry goes through lww_remove
SELECT topgun.lww_put('docs', 't', '{"title": "short lived apple"}', topgun.hlc(topgun.now_ms() - 10000, 0, 'n'), 1000);
SELECT key FROM topgun.search('docs', 'lived');
SELECT topgun.expire_ttl() > 0 AS expired;
SELECT key FROM topgun.search('docs', 'lived');

-- OR maps: every live value of a key; removing one tag keeps the others
-- (difference 2: the reference drops the whole key)
SELECT topgun.or_apply('tasks', 'k', '{"t": "write report"}', 'tag1', '100:0:n'),
       topgun.or_apply('tasks', 'k', '{"t": "review report"}', 'tag2', '101:0:n');
SELECT topgun.search_enable('tasks', ARRAY['t']);
SELECT key, value, score, matched_terms FROM topgun.search('tasks', 'report review');
SELECT topgun.or_remove_tag('tasks', 'tag2');
SELECT key, value, matched_terms FROM topgun.search('tasks', 'report review');
SELECT topgun.or_remove_tag('tasks', 'tag1');
SELECT count(*) FROM topgun.search('tasks', 'report');

-- equal scores: by key, bytewise
SELECT topgun.search_enable('ties', ARRAY['x']);
SELECT topgun.lww_put('ties', k, '{"x": "equal words"}') FROM unnest(ARRAY['b', 'B', 'a', 'é']) k;
SELECT key FROM topgun.search('ties', 'equal');
SELECT key, score FROM topgun.search('ties', 'words', 2);
-- the default cap applies when no positive limit is given
SET topgun.search_max_results = 3;
SELECT (SELECT count(*) FROM topgun.search('ties', 'equal')) AS no_limit, (SELECT count(*) FROM topgun.search('ties', 'equal', -5)) AS negative;
SELECT count(*) FROM topgun.search('ties', 'equal', 2147483647);
RESET topgun.search_max_results;
-- top-k pruning (documents holding every term) gives exactly the exhaustive answer
SELECT topgun.search_enable('prune', ARRAY['x']);
SELECT count(*) FROM (SELECT topgun.lww_put('prune', 'p' || g,
         jsonb_build_object('x', (SELECT string_agg(w, ' ') FROM (
           SELECT (ARRAY['alpha', 'beta', 'gamma', 'delta', 'omega'])[1 + (abs(hashint4(g * 31 + i)) % 5)] AS w
             FROM generate_series(1, 3 + g % 7) i) s)))
       FROM generate_series(1, 300) g) w;
SELECT q, lim, (SELECT array_agg(key ORDER BY score DESC, key COLLATE "C") FROM topgun.search('prune', q, lim))
         = (SELECT array_agg(key ORDER BY score DESC, key COLLATE "C") FROM (
              SELECT key, score FROM topgun.search_score_keys('prune', q, (SELECT array_agg('p' || g) FROM generate_series(1, 300) g))
               ORDER BY score DESC, key COLLATE "C" LIMIT lim) k) AS same
  FROM unnest(ARRAY['alpha beta', 'gamma omega delta', 'beta beta alpha', 'alpha zzz beta']) q,
       unnest(ARRAY[1, 5, 40]) lim ORDER BY q, lim;
-- each of those writes added one delta row; more than 32 pending are folded
-- into the bucket rows by the next writer; pending and folded statistics
-- equal a recount, also after rewrites, deletes and a rolled-back fold
SELECT (SELECT count(*) FROM topgun.search_delta d JOIN topgun.search_config c ON c.id = d.map_id
         WHERE c.map = 'prune') BETWEEN 1 AND 32 AS some_pending,
       (SELECT count(*) FROM topgun.search_df d JOIN topgun.search_config c ON c.id = d.map_id
         WHERE c.map = 'prune') > 0 AS folded,
       (SELECT count(*) FROM pg_temp.stats_drift) AS drift;
SELECT count(*) FROM (SELECT topgun.lww_put('prune', 'p' || g, '{"x": "omega omega alpha"}') FROM generate_series(1, 300, 7) g) w;
DELETE FROM topgun.lww WHERE map = 'prune' AND key IN ('p2', 'p3');
BEGIN;
SELECT count(*) FROM (SELECT topgun.lww_put('prune', 'p' || g, '{"x": "beta"}') FROM generate_series(1, 40) g) w;
SELECT count(*) AS drift_in_transaction FROM pg_temp.stats_drift;
ROLLBACK;
SELECT count(*) AS drift FROM pg_temp.stats_drift;
CREATE TEMP TABLE prune_scores AS
  SELECT q, s.key, s.score FROM unnest(ARRAY['alpha beta', 'omega', 'gamma delta']) q, topgun.search('prune', q, 1000) s;
-- the same scores from an index rebuilt from scratch (k1 changed and back)
SELECT topgun.search_enable('prune', ARRAY['x'], k1 => 1.5) = topgun.search_enable('prune', ARRAY['x']) AS rebuilt;
SELECT count(*) AS scores, count(*) FILTER (WHERE n.score IS DISTINCT FROM o.score) AS differ
  FROM prune_scores o FULL JOIN (SELECT q, s.key, s.score FROM unnest(ARRAY['alpha beta', 'omega', 'gamma delta']) q,
                                       topgun.search('prune', q, 1000) s) n USING (q, key);
SELECT topgun.search_disable('prune');
-- usable in any SQL
SELECT s.key, l.ts IS NOT NULL AS joined FROM topgun.search('ties', 'equal', 2) s
  JOIN topgun.lww l ON l.map = 'ties' AND l.key = s.key ORDER BY s.key;
-- search_score_keys: only the keys given, only matches
SELECT key, score FROM topgun.search_score_keys('ties', 'equal', ARRAY['a', 'zz', NULL]);
SELECT count(*) FROM topgun.search_score_keys('ties', 'equal', '{}');
SELECT count(*) FROM topgun.search_score_keys('ties', 'equal', NULL);

-- enable / disable
SELECT topgun.search_enable('ties', ARRAY['x']) AS same_again;
SELECT topgun.search_enable('ties', ARRAY['y']) AS reindexed_on_other_field;
SELECT topgun.search_disable('ties'), topgun.search_disable('ties'), topgun.search_disable('never');
SELECT topgun.search_enable('bad', NULL);
SELECT topgun.search_enable('bad', '{}');
SELECT topgun.search_enable('bad', ARRAY['a', 'a']);
SELECT topgun.search_enable('bad', ARRAY['a', NULL]);
SELECT topgun.search_enable('bad', ARRAY['x'], k1 => -1);
SELECT topgun.search_enable('bad', ARRAY['x'], b => 2);
SELECT topgun.search_enable('bad', ARRAY['x'], k1 => 'NaN');
SELECT topgun.search_enable(NULL, ARRAY['x']);
SELECT topgun.search_enable('bad', (SELECT array_agg('f' || i) FROM generate_series(1, 33) i));

------------------------------------------------------------------------------
-- Hostile input: a clear error (SQLSTATE) or an empty result, never a crash
------------------------------------------------------------------------------
\set VERBOSITY sqlstate
SELECT * FROM topgun.search('ties', 'equal');                 -- 55000: not enabled any more
SELECT * FROM topgun.search('no such map', 'x');
SELECT * FROM topgun.search(NULL, 'x');                       -- 22004
SELECT topgun.lww_put('docs', 'h', '{"title": "apple"}');
SELECT count(*) FROM topgun.search('docs', NULL);
SELECT count(*) FROM topgun.search('docs', '');
SELECT count(*) FROM topgun.search('docs', 'the of and a is');  -- only stop words
SELECT count(*) FROM topgun.search('docs', repeat('apple ', 17000));  -- 100 KB: 54000
SELECT count(*) FROM topgun.search('docs', repeat('x', 60000));      -- one huge word
SELECT count(*) FROM topgun.search('docs', (SELECT string_agg('w' || i, ' ') FROM generate_series(1, 10000) i));  -- 54000
SELECT count(*) FROM topgun.search('docs', repeat(U&'\0301', 20000) || repeat(U&'\+01F600', 5000) || U&'\200F\FEFF\FFFF');
SELECT (SELECT count(*) FROM topgun.search('docs', 'apple', -2147483648)) AS min_int, (SELECT count(*) FROM topgun.search('docs', 'apple', 0)) AS zero;
SELECT key FROM topgun.search('docs', 'apple', boost => '{"nosuchfield": 5}');
SELECT key FROM topgun.search('docs', 'apple', boost => '{}');
SELECT key FROM topgun.search('docs', 'apple', boost => 'null');
SELECT key FROM topgun.search('docs', 'apple', boost => '[1]');                -- 22023
SELECT key FROM topgun.search('docs', 'apple', boost => '{"title": "2"}');
SELECT key FROM topgun.search('docs', 'apple', boost => '{"title": 1e308}');
SELECT key FROM topgun.search('docs', 'apple', min_score => 'NaN');          -- 22023
SELECT key FROM topgun.search('docs', 'apple', min_score => 'Infinity');
SELECT key FROM topgun.search('docs', 'apple', min_score => '-Infinity');
\set VERBOSITY terse
-- a huge document is indexed up to its cap, the write never fails
SELECT topgun.lww_put('docs', 'huge', jsonb_build_object('title', repeat('zebra ', 100000) || (SELECT string_agg(md5(i::text), ' ') FROM generate_series(1, 6000) i)));
SELECT key, score > 0 AS scored FROM topgun.search('docs', 'zebra');
SELECT d.len AS tokens_capped, topgun._search_matched(ARRAY[d.tsv], ARRAY['zebra']) FROM topgun.search_doc d
  JOIN topgun.search_config c ON c.id = d.map_id WHERE c.map = 'docs' AND d.key = 'huge' AND d.field = 0;
-- TRUNCATE of a record table rebuilds every index from what is left (rolled
-- back: the later suites keep their data)
SELECT topgun.or_apply('tasks', 'k2', '{"t": "another report"}', 'tag3', '200:0:n');
SELECT count(*) FROM topgun.search('tasks', 'report');
BEGIN;
TRUNCATE topgun.ormap;
SELECT count(*) FROM topgun.search('tasks', 'report');
SELECT key FROM topgun.search('docs', 'apple');
SELECT count(*) AS drift FROM pg_temp.stats_drift;
ROLLBACK;
SELECT count(*) FROM topgun.search('tasks', 'report');

-- privileges: searching needs SELECT on the record and index tables (42501
-- without); the index itself is kept whoever writes
CREATE ROLE tg_search_reader;
CREATE ROLE tg_search_nobody;
SELECT topgun.grant_access('tg_search_reader', true);
GRANT SELECT ON topgun.search_config, topgun.search_doc, topgun.search_stats, topgun.search_df, topgun.search_delta
  TO tg_search_reader;
SET ROLE tg_search_reader;
SELECT key FROM topgun.search('docs', 'apple');
SELECT map FROM topgun.search_maps WHERE map = 'docs';
SELECT topgun.search_disable('docs');
SET ROLE tg_search_nobody;
\set VERBOSITY default
SELECT key FROM topgun.search('docs', 'apple');
\set VERBOSITY terse
RESET ROLE;
SELECT topgun.search_disable('docs'), topgun.search_disable('tasks');
SELECT count(*) FILTER (WHERE NOT d) AS left_enabled
  FROM (SELECT topgun.search_disable(map) AS d FROM topgun.search_config) x;
DROP OWNED BY tg_search_reader;
DROP ROLE tg_search_reader;
DROP ROLE tg_search_nobody;
