------------------------------------------------------------------------------
-- Full-text search (BM25), docs/search.md.
--
-- The reference tokenizer and stemmer are a text search configuration
-- (topgun.topgun, src/search/pg_tsearch.c).  Each search-enabled map keeps, in
-- the same transaction as every write to topgun.lww / topgun.ormap:
--   search_doc    one row per (key, field): the distinct stems with their term
--                 frequency (a tsvector, GIN-indexed) and the token count;
--                 field 0 is all fields together, 1..n each field alone
--                 (only kept when the map has more than one field);
--   search_delta  what one write statement changed: documents, tokens, and
--                 the stems' df / bounds as one term set (a bytea,
--                 src/search/pg_search_df.c); inserted, never updated;
--   search_stats  documents and tokens per field,    } the folded totals:
--   search_df     the term sets of 256 hash buckets  } updated by the fold only.
-- A writer only inserts its delta row (no statistics row is updated, so no hot
-- row); a READ COMMITTED writer that finds more than 32 pending folds them
-- (topgun._search_fold, one folder at a time); readers add the pending deltas.
------------------------------------------------------------------------------
CREATE FUNCTION topgun._ts_start(internal, int4) RETURNS internal
  AS 'MODULE_PATHNAME', 'tg_ts_start' LANGUAGE C STRICT;
CREATE FUNCTION topgun._ts_gettoken(internal, internal, internal) RETURNS internal
  AS 'MODULE_PATHNAME', 'tg_ts_gettoken' LANGUAGE C STRICT;
CREATE FUNCTION topgun._ts_end(internal) RETURNS void
  AS 'MODULE_PATHNAME', 'tg_ts_end' LANGUAGE C STRICT;
CREATE FUNCTION topgun._ts_lextype(internal) RETURNS internal
  AS 'MODULE_PATHNAME', 'tg_ts_lextype' LANGUAGE C STRICT;
CREATE FUNCTION topgun._ts_dict_init(internal) RETURNS internal
  AS 'MODULE_PATHNAME', 'tg_ts_dict_init' LANGUAGE C STRICT;
CREATE FUNCTION topgun._ts_dict_lexize(internal, internal, internal, internal) RETURNS internal
  AS 'MODULE_PATHNAME', 'tg_ts_dict_lexize' LANGUAGE C STRICT;
CREATE TEXT SEARCH PARSER topgun.topgun (START = topgun._ts_start, GETTOKEN = topgun._ts_gettoken,
  END = topgun._ts_end, LEXTYPES = topgun._ts_lextype);
CREATE TEXT SEARCH TEMPLATE topgun.topgun (INIT = topgun._ts_dict_init, LEXIZE = topgun._ts_dict_lexize);
CREATE TEXT SEARCH DICTIONARY topgun.topgun (TEMPLATE = topgun.topgun);
CREATE TEXT SEARCH CONFIGURATION topgun.topgun (PARSER = topgun.topgun);
ALTER TEXT SEARCH CONFIGURATION topgun.topgun ADD MAPPING FOR word WITH topgun.topgun;
COMMENT ON TEXT SEARCH CONFIGURATION topgun.topgun IS
  'TopGun''s tokenizer: Unicode lowercase, split outside \p{L}\p{N}, 172 English stop words, Porter stemmer as the reference';

CREATE FUNCTION topgun.search_tokens(query text) RETURNS text[]
  AS 'MODULE_PATHNAME', 'tg_search_tokens' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION topgun.search_tokens(text) IS
  'The stems TopGun''s tokenizer makes of a text, in order, duplicates kept';
CREATE FUNCTION topgun._search_doc(vals jsonb[], fields text[])
  RETURNS TABLE (field smallint, len integer, tsv tsvector)
  AS 'MODULE_PATHNAME', 'tg_search_doc' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 2;
CREATE FUNCTION topgun._search_score(tsv tsvector, dl integer, terms text[], dfs float8[],
                                     n float8, avgdl float8, k1 float8, b float8) RETURNS float8
  AS 'MODULE_PATHNAME', 'tg_search_score' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun._search_matched(tsvs tsvector[], terms text[]) RETURNS text[]
  AS 'MODULE_PATHNAME', 'tg_search_matched' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun._search_bound(terms text[], dfs float8[], n float8, avgdl float8, k1 float8, b float8,
                                     max_tfs float8[], min_dls float8[]) RETURNS float8
  AS 'MODULE_PATHNAME', 'tg_search_bound' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun._search_delta_step(internal, tsvector, integer, integer) RETURNS internal
  AS 'MODULE_PATHNAME', 'tg_search_delta_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION topgun._search_delta_final(internal) RETURNS bytea
  AS 'MODULE_PATHNAME', 'tg_search_delta_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
-- the term set of some document rows removed (sign -1) and added (+1)
CREATE AGGREGATE topgun._search_delta_agg(tsv tsvector, len integer, sign integer)
  (SFUNC = topgun._search_delta_step, STYPE = internal, FINALFUNC = topgun._search_delta_final);
CREATE FUNCTION topgun._search_merge(a bytea, b bytea) RETURNS bytea
  AS 'MODULE_PATHNAME', 'tg_search_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION topgun._search_merge(a bytea, b bytea, drop_zero boolean) RETURNS bytea
  AS 'MODULE_PATHNAME', 'tg_search_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE topgun._search_merge_agg(bytea) (SFUNC = topgun._search_merge, STYPE = bytea);
CREATE FUNCTION topgun._search_split(terms bytea) RETURNS TABLE (bucket smallint, terms bytea)
  AS 'MODULE_PATHNAME', 'tg_search_split' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 256;
CREATE FUNCTION topgun._search_buckets(terms text[]) RETURNS smallint[]
  AS 'MODULE_PATHNAME', 'tg_search_buckets' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun._search_lookup(terms bytea, query text[])
  RETURNS TABLE (o integer, df bigint, max_tf integer, min_dl integer)
  AS 'MODULE_PATHNAME', 'tg_search_lookup' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 2;
CREATE FUNCTION topgun._search_entries(terms bytea)
  RETURNS TABLE (term text, df bigint, max_tf integer, min_dl integer)
  AS 'MODULE_PATHNAME', 'tg_search_entries' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
CREATE FUNCTION topgun._search_cap(lim integer) RETURNS integer
  AS 'MODULE_PATHNAME', 'tg_search_cap' LANGUAGE C STABLE PARALLEL SAFE;

CREATE TABLE topgun.search_config (
  map        text PRIMARY KEY,
  id         integer GENERATED ALWAYS AS IDENTITY UNIQUE,
  fields     text[] NOT NULL,
  k1         float8 NOT NULL,
  b          float8 NOT NULL,
  enabled_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE topgun.search_config IS 'Search-enabled maps (topgun.search_enable)';

CREATE TABLE topgun.search_doc (
  map_id integer NOT NULL,
  key    text NOT NULL,
  field  smallint NOT NULL,
  len    integer NOT NULL,
  tsv    tsvector NOT NULL,             -- distinct stems; each one position = tf
  PRIMARY KEY (map_id, key, field)
);
CREATE INDEX search_doc_tsv ON topgun.search_doc USING gin (tsv);
COMMENT ON TABLE topgun.search_doc IS 'Search index: one row per document and field (0 = all fields)';

CREATE TABLE topgun.search_stats (
  map_id    integer NOT NULL,
  field     smallint NOT NULL,
  docs      bigint NOT NULL,
  tokens    bigint NOT NULL,
  PRIMARY KEY (map_id, field)
);
-- terms: a term set (_search_entries shows it): per stem df, max_tf (>= the
-- largest tf it was indexed with) and min_dl (<= the shortest such document)
CREATE TABLE topgun.search_df (
  map_id integer NOT NULL,
  field  smallint NOT NULL,
  bucket smallint NOT NULL,
  terms  bytea,
  PRIMARY KEY (map_id, field, bucket)
) WITH (toast_tuple_target = 8160);
-- Term sets are rewritten by every fold and read by every query: stored
-- uncompressed (compressing them was 4 % of a write), bucket rows inline
-- up to a page.
ALTER TABLE topgun.search_df ALTER COLUMN terms SET STORAGE EXTERNAL;
COMMENT ON TABLE topgun.search_df IS 'Search statistics: folded document frequencies, one term set per hash bucket';
CREATE TABLE topgun.search_delta (
  id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  map_id integer NOT NULL,
  field  smallint NOT NULL,
  docs   bigint NOT NULL,
  tokens bigint NOT NULL,
  terms  bytea
);
CREATE INDEX search_delta_map ON topgun.search_delta (map_id, field);
ALTER TABLE topgun.search_delta ALTER COLUMN terms SET STORAGE EXTERNAL;
COMMENT ON TABLE topgun.search_delta IS 'Search statistics: one write statement''s changes, not yet folded into search_df';

CREATE VIEW topgun.search_maps AS
  SELECT c.map, c.fields, c.k1, c.b, c.enabled_at,
         coalesce((SELECT sum(s.docs) FROM (SELECT docs FROM topgun.search_stats s WHERE s.map_id = c.id AND s.field = 0
                                            UNION ALL
                                            SELECT docs FROM topgun.search_delta d WHERE d.map_id = c.id AND d.field = 0) s), 0)::bigint AS documents,
         coalesce((SELECT sum(s.tokens) FROM (SELECT tokens FROM topgun.search_stats s WHERE s.map_id = c.id AND s.field = 0
                                              UNION ALL
                                              SELECT tokens FROM topgun.search_delta d WHERE d.map_id = c.id AND d.field = 0) s), 0)::bigint AS tokens
    FROM topgun.search_config c;
COMMENT ON VIEW topgun.search_maps IS 'Search-enabled maps with their indexed documents and tokens';

-- Every stem's current statistics (folded and pending), for inspection.
CREATE VIEW topgun.search_terms AS
  SELECT x.map_id, x.field, e.term, sum(e.df)::bigint AS df, max(e.max_tf) AS max_tf, min(e.min_dl) AS min_dl
    FROM (SELECT s.map_id, s.field, s.terms FROM topgun.search_df s
          UNION ALL
          SELECT d.map_id, d.field, d.terms FROM topgun.search_delta d) x,
         topgun._search_entries(x.terms) e
   GROUP BY x.map_id, x.field, e.term;
COMMENT ON VIEW topgun.search_terms IS 'Search statistics per (map id, field, stem): df, max_tf, min_dl';

-- Fold a map's pending deltas (those this snapshot sees) into search_stats /
-- search_df.  Callers hold the map's fold lock (advisory (1952999778, id)) or
-- SHARE locks on the record tables, so that two folds never meet.
CREATE FUNCTION topgun._search_fold(map_id integer) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
  WITH d AS (DELETE FROM topgun.search_delta d WHERE d.map_id = _search_fold.map_id
             RETURNING d.field, d.docs, d.tokens, d.terms),
       st AS (INSERT INTO topgun.search_stats AS s (map_id, field, docs, tokens)
              SELECT _search_fold.map_id, d.field, sum(d.docs), sum(d.tokens) FROM d GROUP BY d.field
              ON CONFLICT ON CONSTRAINT search_stats_pkey DO UPDATE
                 SET docs = s.docs + excluded.docs, tokens = s.tokens + excluded.tokens),
       m AS (SELECT d.field, topgun._search_merge_agg(d.terms) AS terms FROM d GROUP BY d.field)
  INSERT INTO topgun.search_df AS s (map_id, field, bucket, terms)
  SELECT _search_fold.map_id, m.field, p.bucket, p.terms FROM m, topgun._search_split(m.terms) p
  ON CONFLICT ON CONSTRAINT search_df_pkey DO UPDATE SET terms = topgun._search_merge(s.terms, excluded.terms, true)
$$;
REVOKE ALL ON FUNCTION topgun._search_fold(integer) FROM PUBLIC;

-- Re-derive the index rows of some keys of a map from what is stored now
-- (idempotent: any number of calls for the same keys give the same index).
-- kind says which table changed ('lww' or 'or').  A key's document is every
-- value it has: the LWW value, or all OR records in tag order; lww_values, when
-- given, are the keys' stored LWW values (the trigger's transition rows), so
-- they need no lookup.  The statistics get one delta row per field with the
-- net difference only, so rewriting a key with the same text writes none.
-- Every lookup is a per-key index probe whatever the planner's statistics
-- say (LATERAL ... OFFSET 0, ctid = ANY): a map growing between ANALYZE runs
-- made plans scan all its rows per statement.  JIT is off here and in
-- _search_run: the statements are short (their cost estimates are not) and
-- compiling them took 100 ms per write.  Its statements keep one generic
-- plan (their shape does not depend on the arguments; custom plans were
-- re-planned on every call, 23 % of a one-row write), and use plain index
-- scans, which mark the entries of folded (deleted) deltas dead as they pass
-- them: bitmap scans do not, and every count of the pending deltas walked
-- all of them until the next VACUUM (one-row writes from 50 connections:
-- 1,400 -> 1,750 tps).  Sequential scans are off too: a generic plan made
-- while search_doc looked small deleted the old documents with a scan of the
-- whole table filtered by ctid = ANY (rows x keys comparisons), instead of a
-- TID scan; 100-op OP_BATCHes rewriting 10,000 keys ran at 14K ops/s.
CREATE FUNCTION topgun._search_reindex(cfg topgun.search_config, keys text[], kind text, lww_values jsonb[] DEFAULT NULL)
  RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET jit = off
SET plan_cache_mode = force_generic_plan SET enable_bitmapscan = off SET enable_seqscan = off
AS $$
DECLARE
  ofield smallint[];
  olen integer[];
  otsv tsvector[];
BEGIN
  WITH old AS (DELETE FROM topgun.search_doc d
                WHERE d.ctid = ANY (ARRAY(SELECT x.ctid FROM unnest(keys) k(key),
                                            LATERAL (SELECT s.ctid FROM topgun.search_doc s
                                                      WHERE s.map_id = cfg.id AND s.key = k.key OFFSET 0) x))
            RETURNING d.field, d.len, d.tsv)
  SELECT array_agg(old.field), array_agg(old.len), array_agg(old.tsv) INTO ofield, olen, otsv FROM old;

  WITH src AS (
         SELECT v.key, ARRAY[v.value] AS vals
           FROM unnest(keys, lww_values) v(key, value)
          WHERE lww_values IS NOT NULL AND v.value IS NOT NULL
         UNION ALL
         SELECT k.key, ARRAY[l.value]
           FROM unnest(keys) k(key),
                LATERAL (SELECT l.value FROM topgun.lww l
                          WHERE l.map = cfg.map AND l.leaf = topgun.key_leaf(k.key) AND l.key = k.key OFFSET 0) l
          WHERE lww_values IS NULL AND kind = 'lww' AND l.value IS NOT NULL
         UNION ALL
         SELECT k.key, o.vals
           FROM unnest(keys) k(key),
                LATERAL (SELECT array_agg(o.value ORDER BY o.tag COLLATE "C") AS vals FROM topgun.ormap o
                          WHERE o.map = cfg.map AND o.leaf = topgun.key_leaf(k.key) AND o.key = k.key) o
          WHERE lww_values IS NULL AND kind = 'or' AND o.vals IS NOT NULL),
       new AS (INSERT INTO topgun.search_doc (map_id, key, field, len, tsv)
               SELECT cfg.id, src.key, d.field, d.len, d.tsv
                 FROM src, topgun._search_doc(src.vals, cfg.fields) d
               ON CONFLICT ON CONSTRAINT search_doc_pkey DO NOTHING
               RETURNING field, len, tsv)
  INSERT INTO topgun.search_delta (map_id, field, docs, tokens, terms)
  SELECT cfg.id, x.field, sum(x.s), sum(x.s * x.len), topgun._search_delta_agg(x.tsv, x.len, x.s)
    FROM (SELECT new.field, new.len, new.tsv, 1 AS s FROM new
          UNION ALL
          SELECT o.field, o.len, o.tsv, -1 FROM unnest(ofield, olen, otsv) o(field, len, tsv)) x
   GROUP BY x.field
  HAVING sum(x.s) <> 0 OR sum(x.s * x.len) <> 0 OR topgun._search_delta_agg(x.tsv, x.len, x.s) IS NOT NULL;

  -- more than 32 pending: fold them, unless another writer is folding this
  -- map (then it will) or the snapshot is older than this statement (a
  -- REPEATABLE READ writer could not update a bucket another fold changed)
  IF current_setting('transaction_isolation') = 'read committed'
     AND (SELECT count(*) FROM (SELECT FROM topgun.search_delta d WHERE d.map_id = cfg.id LIMIT 33) p) > 32
     AND pg_try_advisory_xact_lock(1952999778, cfg.id) THEN
    PERFORM topgun._search_fold(cfg.id);
  END IF;
END
$$;

REVOKE ALL ON FUNCTION topgun._search_reindex(topgun.search_config, text[], text, jsonb[]) FROM PUBLIC;

-- Statement-level triggers with transition tables on the two record tables:
-- one pass over the changed rows per statement; a map that is not
-- search-enabled costs one probe of topgun.search_config.
CREATE FUNCTION topgun._search_changed() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM topgun.search_config) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' THEN
    FOR r IN SELECT c AS cfg, array_agg(DISTINCT x.key) AS keys
               FROM old_rows x JOIN topgun.search_config c ON c.map = x.map GROUP BY c LOOP
      PERFORM topgun._search_reindex(r.cfg, r.keys, CASE TG_TABLE_NAME WHEN 'lww' THEN 'lww' ELSE 'or' END);
    END LOOP;
  ELSIF TG_TABLE_NAME = 'lww' THEN
    -- the transition rows are the stored values (one row per key)
    FOR r IN SELECT c AS cfg, array_agg(x.key) AS keys, array_agg(x.value) AS vals
               FROM new_rows x JOIN topgun.search_config c ON c.map = x.map GROUP BY c LOOP
      PERFORM topgun._search_reindex(r.cfg, r.keys, 'lww', r.vals);
    END LOOP;
  ELSE
    FOR r IN SELECT c AS cfg, array_agg(DISTINCT x.key) AS keys
               FROM new_rows x JOIN topgun.search_config c ON c.map = x.map GROUP BY c LOOP
      PERFORM topgun._search_reindex(r.cfg, r.keys, 'or');
    END LOOP;
  END IF;
  RETURN NULL;
END
$$;

-- Logical replication's apply worker fires row triggers only: the same
-- re-derivation per replicated row (ENABLE REPLICA).
CREATE FUNCTION topgun._search_changed_row() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  c topgun.search_config;
  rec record := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
  SELECT * INTO c FROM topgun.search_config s WHERE s.map = rec.map;
  IF FOUND THEN
    PERFORM topgun._search_reindex(c, ARRAY[rec.key], CASE TG_TABLE_NAME WHEN 'lww' THEN 'lww' ELSE 'or' END);
  END IF;
  RETURN NULL;
END
$$;


-- The record-table triggers on (some map is search-enabled) or off (none).
CREATE FUNCTION topgun._search_triggers(on_ boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t text;
  trg text;
BEGIN
  FOREACH t IN ARRAY ARRAY['lww', 'ormap'] LOOP
    FOREACH trg IN ARRAY ARRAY['_search_ins', '_search_upd', '_search_del', '_search_truncate'] LOOP
      EXECUTE format('ALTER TABLE topgun.%1$s %2$s TRIGGER %1$s%3$s', t,
                     CASE WHEN on_ THEN 'ENABLE ALWAYS' ELSE 'DISABLE' END, trg);
    END LOOP;
    EXECUTE format('ALTER TABLE topgun.%1$s %2$s TRIGGER %1$s_search_replica', t,
                   CASE WHEN on_ THEN 'ENABLE REPLICA' ELSE 'DISABLE' END);
  END LOOP;
END
$$;

CREATE FUNCTION topgun.search_disable(map text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  mid integer;
BEGIN
  -- no writer may be between reading the configuration and writing the index
  -- (SHARE ROW EXCLUSIVE: it may switch the triggers off, and concurrent calls must not deadlock)
  LOCK TABLE topgun.lww, topgun.ormap IN SHARE ROW EXCLUSIVE MODE;
  DELETE FROM topgun.search_config c WHERE c.map = search_disable.map RETURNING c.id INTO mid;
  IF mid IS NULL THEN
    RETURN false;
  END IF;
  DELETE FROM topgun.search_doc d WHERE d.map_id = mid;
  DELETE FROM topgun.search_stats s WHERE s.map_id = mid;
  DELETE FROM topgun.search_df s WHERE s.map_id = mid;
  DELETE FROM topgun.search_delta s WHERE s.map_id = mid;
  IF NOT EXISTS (SELECT 1 FROM topgun.search_config) THEN
    PERFORM topgun._search_triggers(false);
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION topgun.search_disable(text) IS 'Drop a map''s search index; false when it had none';

-- (Re)build a map's index from the stored records, in 16 parts of 256 Merkle
-- leaves with a NOTICE after each: per part one statement inserts the
-- document rows and their statistics as one delta row per field (aggregated
-- in C); the deltas are folded once at the end.  GIN entries go to the
-- pending list and are merged in bulk at the end.
CREATE FUNCTION topgun._search_backfill(cfg topgun.search_config) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp SET gin_pending_list_limit = '1GB' SET work_mem = '256MB'
AS $$
DECLARE
  docs bigint := 0;
BEGIN
  DELETE FROM topgun.search_doc d WHERE d.map_id = cfg.id;
  DELETE FROM topgun.search_stats s WHERE s.map_id = cfg.id;
  DELETE FROM topgun.search_df s WHERE s.map_id = cfg.id;
  DELETE FROM topgun.search_delta s WHERE s.map_id = cfg.id;
  FOR part IN 0..15 LOOP
    WITH new AS (INSERT INTO topgun.search_doc (map_id, key, field, len, tsv)
                 SELECT cfg.id, l.key, d.field, d.len, d.tsv
                   FROM topgun.lww l, topgun._search_doc(ARRAY[l.value], cfg.fields) d
                  WHERE l.map = cfg.map AND l.leaf BETWEEN part * 256 AND part * 256 + 255 AND l.value IS NOT NULL
                 RETURNING field, len, tsv)
    INSERT INTO topgun.search_delta (map_id, field, docs, tokens, terms)
    SELECT cfg.id, new.field, count(*), sum(new.len), topgun._search_delta_agg(new.tsv, new.len, 1)
      FROM new GROUP BY new.field;
    -- (a map is in one of the two tables; a key in both keeps its LWW document)
    WITH new AS (INSERT INTO topgun.search_doc (map_id, key, field, len, tsv)
                 SELECT cfg.id, o.key, d.field, d.len, d.tsv
                   FROM (SELECT o.key, array_agg(o.value ORDER BY o.tag COLLATE "C") AS vals
                           FROM topgun.ormap o
                          WHERE o.map = cfg.map AND o.leaf BETWEEN part * 256 AND part * 256 + 255
                          GROUP BY o.key) o,
                        topgun._search_doc(o.vals, cfg.fields) d
                 ON CONFLICT ON CONSTRAINT search_doc_pkey DO NOTHING
                 RETURNING field, len, tsv)
    INSERT INTO topgun.search_delta (map_id, field, docs, tokens, terms)
    SELECT cfg.id, new.field, count(*), sum(new.len), topgun._search_delta_agg(new.tsv, new.len, 1)
      FROM new GROUP BY new.field;
    docs := (SELECT sum(d.docs) FROM topgun.search_delta d WHERE d.map_id = cfg.id);
    RAISE NOTICE 'search index of %: part % of 16 done, % index rows', cfg.map, part + 1, coalesce(docs, 0);
  END LOOP;
  PERFORM topgun._search_fold(cfg.id);
  PERFORM gin_clean_pending_list('topgun.search_doc_tsv'::regclass);
END
$$;
REVOKE ALL ON FUNCTION topgun._search_backfill(topgun.search_config) FROM PUBLIC;

-- TRUNCATE of a record table: every index is rebuilt from what is left.
CREATE FUNCTION topgun._search_truncated() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM topgun._search_backfill(c) FROM topgun.search_config c;
  RETURN NULL;
END
$$;

-- Enabling indexes the stored records in 16 batches of 256 Merkle leaves,
-- with a NOTICE after each, inside one transaction: a failure or a restart
-- midway leaves the map exactly as before (not enabled), and calling it again
-- starts over.  Writes to topgun.lww / topgun.ormap wait until it commits, so
-- that no write can slip between the back-fill and the triggers.
CREATE FUNCTION topgun.search_enable(map text, fields text[], k1 float8 DEFAULT 1.2, b float8 DEFAULT 0.75)
  RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  cfg topgun.search_config;
BEGIN
  IF map IS NULL OR map = '' OR octet_length(map) > 256 THEN
    RAISE EXCEPTION 'map name must be 1..256 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF fields IS NULL OR cardinality(fields) NOT BETWEEN 1 AND 32 OR array_ndims(fields) <> 1
     OR EXISTS (SELECT 1 FROM unnest(fields) f WHERE f IS NULL OR f = '' OR octet_length(f) > 256)
     OR (SELECT count(DISTINCT f) FROM unnest(fields) f) <> cardinality(fields) THEN
    RAISE EXCEPTION 'fields must be 1..32 distinct non-empty names' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF k1 IS NULL OR NOT (k1 >= 0 AND k1 < 'Infinity') OR b IS NULL OR NOT (b >= 0 AND b <= 1) THEN
    RAISE EXCEPTION 'k1 must be finite and >= 0, b between 0 and 1' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- (SHARE ROW EXCLUSIVE: it may switch the triggers on, and concurrent calls must not deadlock)
  LOCK TABLE topgun.lww, topgun.ormap IN SHARE ROW EXCLUSIVE MODE;
  SELECT * INTO cfg FROM topgun.search_config c WHERE c.map = search_enable.map;
  IF FOUND THEN
    IF cfg.fields = search_enable.fields AND cfg.k1 = search_enable.k1 AND cfg.b = search_enable.b THEN
      RETURN (SELECT m.documents FROM topgun.search_maps m WHERE m.map = cfg.map);
    END IF;
    PERFORM topgun.search_disable(map);
  END IF;
  INSERT INTO topgun.search_config (map, fields, k1, b) VALUES (map, fields, k1, b) RETURNING * INTO cfg;
  PERFORM topgun._search_triggers(true);
  PERFORM topgun._search_backfill(cfg);
  RETURN (SELECT m.documents FROM topgun.search_maps m WHERE m.map = cfg.map);
END
$$;
COMMENT ON FUNCTION topgun.search_enable(text, text[], float8, float8) IS
  'Index a map''s top-level string fields for topgun.search (BM25 k1, b); returns the documents indexed';

-- The index tables belong to the extension owner.  A write by any role that
-- may write the record tables maintains them through the SECURITY DEFINER
-- trigger functions.  Searching runs with the caller's rights: it needs
-- SELECT on the record tables and on topgun.search_config, search_doc,
-- search_stats, search_df and search_delta (docs/search.md).
-- A field's BM25 statistics: N, avgdl, and per query term its df (the shards
-- summed) and the bounds _search_bound uses.
CREATE FUNCTION topgun._search_field_stats(map_id integer, field smallint, terms text[],
                                           OUT n float8, OUT avgdl float8, OUT dfs float8[],
                                           OUT max_tfs float8[], OUT min_dls float8[])
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT st.docs::float8, st.tokens::float8 / greatest(st.docs, 1), pt.dfs, pt.max_tfs, pt.min_dls
    FROM (SELECT array_agg(coalesce(dd.df, 0)::float8 ORDER BY t.o) AS dfs,
                 array_agg(coalesce(dd.max_tf, 0)::float8 ORDER BY t.o) AS max_tfs,
                 array_agg(coalesce(dd.min_dl, 0)::float8 ORDER BY t.o) AS min_dls
            FROM unnest(terms) WITH ORDINALITY t(term, o)
            LEFT JOIN (SELECT e.o, sum(e.df) AS df, max(e.max_tf) AS max_tf, min(e.min_dl) AS min_dl
                         FROM (SELECT s.terms FROM topgun.search_df s
                                WHERE s.map_id = $1 AND s.field = $2 AND s.bucket = ANY (topgun._search_buckets($3))
                               UNION ALL
                               SELECT d.terms FROM topgun.search_delta d WHERE d.map_id = $1 AND d.field = $2) x,
                              topgun._search_lookup(x.terms, $3) e
                        GROUP BY e.o) dd ON dd.o = t.o) pt,
         (SELECT coalesce(sum(s.docs), 0) AS docs, coalesce(sum(s.tokens), 0) AS tokens
            FROM (SELECT s.docs, s.tokens FROM topgun.search_stats s WHERE s.map_id = $1 AND s.field = $2
                  UNION ALL
                  SELECT d.docs, d.tokens FROM topgun.search_delta d WHERE d.map_id = $1 AND d.field = $2) s) st
$$;

-- The one search routine: candidates from the GIN index, BM25 in C, the
-- top `cap` by score descending and key (bytewise) ascending.  keys
-- restricts it to some keys (topgun.search_score_keys).
CREATE FUNCTION topgun._search_run(map text, query text, cap integer, min_score float8, boost jsonb, keys text[])
  RETURNS TABLE (key text, value jsonb, score float8, matched_terms text[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET jit = off
AS $$
DECLARE
  cfg topgun.search_config;
  terms text[];
  tsq tsquery;
  all_tsq tsquery;             -- every indexed term (pruning)
  boosted boolean;
  st record;
  bound float8;
  theta float8;
  n_all bigint;
  top_keys text[];
  only_keys text[] := keys;
BEGIN
  IF map IS NULL THEN
    RAISE EXCEPTION 'map must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT * INTO cfg FROM topgun.search_config c WHERE c.map = _search_run.map;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'full-text search is not enabled for map %', map
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF boost IS NOT NULL AND jsonb_typeof(boost) = 'null' THEN
    boost := NULL;
  END IF;
  IF boost IS NOT NULL AND (jsonb_typeof(boost) <> 'object'
     OR EXISTS (SELECT 1 FROM jsonb_each(boost) e WHERE jsonb_typeof(e.value) <> 'number')) THEN
    RAISE EXCEPTION 'boost must be a JSON object of field -> number' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF min_score = 'NaN' THEN
    RAISE EXCEPTION 'min_score must not be NaN' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  terms := topgun.search_tokens(coalesce(query, ''));
  IF cardinality(terms) = 0 OR (keys IS NOT NULL AND cardinality(keys) = 0) THEN
    RETURN;
  END IF;
  IF keys IS NOT NULL AND cardinality(keys) > 100000 THEN
    RAISE EXCEPTION 'at most 100000 keys can be scored at once' USING ERRCODE = 'program_limit_exceeded';
  END IF;
  SELECT string_agg(DISTINCT '''' || t || '''', ' | ')::tsquery INTO tsq FROM unnest(terms) t;
  -- with boost (even one naming no field) every field is scored on its own
  -- statistics and weighted; a one-field map's field rows are its field-0 rows
  boosted := boost IS NOT NULL AND boost <> '{}';
  -- Top-k pruning: when the k-th best document holding every indexed term
  -- scores above what any document lacking one could reach
  -- (topgun._search_bound), those documents are the whole answer, and the
  -- (much larger) union of the terms' postings is never read.
  IF NOT boosted AND keys IS NULL AND cap IS NOT NULL THEN
    SELECT * INTO st FROM topgun._search_field_stats(cfg.id, 0::smallint, terms);
    bound := topgun._search_bound(terms, st.dfs, st.n, st.avgdl, cfg.k1, cfg.b, st.max_tfs, st.min_dls);
    IF bound IS NOT NULL THEN
      SELECT string_agg(DISTINCT '''' || t.term || '''', ' & ')::tsquery INTO all_tsq
        FROM unnest(terms, st.dfs) t(term, df) WHERE t.df > 0;
      SELECT count(*), min(y.score), array_agg(y.key) INTO n_all, theta, top_keys
        FROM (SELECT x.key, x.score
                FROM (SELECT d.key, topgun._search_score(d.tsv, d.len, terms, st.dfs, st.n, st.avgdl, cfg.k1, cfg.b) AS score
                        FROM topgun.search_doc d
                       WHERE d.map_id = cfg.id AND d.field = 0 AND d.tsv @@ all_tsq) x
               WHERE min_score IS NULL OR x.score >= min_score
               ORDER BY x.score DESC, x.key COLLATE "C" LIMIT cap) y;
      IF n_all = cap AND theta > bound THEN
        only_keys := top_keys;       -- the answer's keys: the final query reads just them
      END IF;
    END IF;
  END IF;
  RETURN QUERY EXECUTE replace(format($q$
    WITH f AS (
           SELECT 0::smallint AS field, 1::float8 AS weight, 0::bigint AS o WHERE NOT $4
           UNION ALL
           SELECT CASE WHEN cardinality($2) = 1 THEN 0 ELSE u.o END::smallint,
                  coalesce(($5 ->> u.name)::float8, 1), u.o
             FROM unnest($2) WITH ORDINALITY u(name, o) WHERE $4),
         fs AS MATERIALIZED (
           SELECT f.field, f.weight, f.o, st.n, st.avgdl, st.dfs
             FROM f, topgun._search_field_stats($1, f.field, $3) st),
         %s
    SELECT top.key,
           coalesce(topgun.lww_get($11, top.key), (SELECT jsonb_agg(v) FROM topgun.or_get($11, top.key) v)),
           top.score, topgun._search_matched(top.tsvs, $3)
      FROM top ORDER BY top.score DESC, top.key COLLATE "C"
    $q$, CASE WHEN boosted THEN $c$
         c AS (
           SELECT d.key, fs.o, d.tsv,
                  fs.weight * topgun._search_score(d.tsv, d.len, $3, fs.dfs, fs.n, fs.avgdl, $6, $7) AS s
             FROM topgun.search_doc d JOIN fs ON d.field = fs.field
            WHERE d.map_id = $1 AND @cond@),
         r AS (
           SELECT c.key, sum(c.s ORDER BY c.o) AS score, array_agg(c.tsv ORDER BY c.o) AS tsvs
             FROM c GROUP BY c.key),
         top AS (
           SELECT r.key, r.score, r.tsvs FROM r WHERE $9 IS NULL OR r.score >= $9
            ORDER BY r.score DESC, r.key COLLATE "C" LIMIT $10)$c$
    ELSE $c$
         top AS (
           SELECT d.key, x.score, ARRAY[d.tsv] AS tsvs
             FROM fs, topgun.search_doc d,
                  LATERAL (SELECT topgun._search_score(d.tsv, d.len, $3, fs.dfs, fs.n, fs.avgdl, $6, $7) AS score) x
            WHERE d.map_id = $1 AND d.field = 0 AND @cond@ AND ($9 IS NULL OR x.score >= $9)
            ORDER BY x.score DESC, d.key COLLATE "C" LIMIT $10)$c$
    END), '@cond@', CASE WHEN only_keys IS NULL THEN 'd.tsv @@ $8' ELSE 'd.key = ANY ($12) AND d.tsv @@ $8' END)
  USING cfg.id, cfg.fields, terms, boosted, boost, cfg.k1, cfg.b, tsq, min_score, cap, cfg.map, only_keys;
END
$$;

CREATE FUNCTION topgun.search(map text, query text, lim integer DEFAULT NULL, min_score float8 DEFAULT NULL,
                              boost jsonb DEFAULT NULL)
  RETURNS TABLE (key text, value jsonb, score float8, matched_terms text[])
  LANGUAGE sql STABLE
  AS $$ SELECT * FROM topgun._search_run(map, query, topgun._search_cap(lim), min_score, boost, NULL) $$;
COMMENT ON FUNCTION topgun.search(text, text, integer, float8, jsonb) IS
  'BM25 full-text search of a search-enabled map: best first, ties by key; lim <= 0 or NULL: topgun.search_max_results';

CREATE FUNCTION topgun.search_score_keys(map text, query text, keys text[], boost jsonb DEFAULT NULL)
  RETURNS TABLE (key text, value jsonb, score float8, matched_terms text[])
  LANGUAGE sql STABLE
  AS $$ SELECT * FROM topgun._search_run(map, query, NULL, NULL, boost, coalesce(keys, '{}')) $$;
COMMENT ON FUNCTION topgun.search_score_keys(text, text, text[], jsonb) IS
  'The current score of some keys for a query, as topgun.search would give them (no row: no match); for live search';
REVOKE ALL ON FUNCTION topgun.search_enable(text, text[], float8, float8) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.search_disable(text) FROM PUBLIC;
GRANT SELECT ON topgun.search_maps TO PUBLIC;

-- The triggers on the record tables (the functions above).  They exist
-- from the install on but stay disabled while no map is search-enabled:
-- a statement trigger with transition tables makes every write statement
-- copy its rows, which maps without search must not pay
-- (topgun._search_triggers, called by search_enable / search_disable).
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['lww', 'ormap'] LOOP
    EXECUTE format('CREATE TRIGGER %1$s_search_ins AFTER INSERT ON topgun.%1$s REFERENCING NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION topgun._search_changed()', t);
    EXECUTE format('CREATE TRIGGER %1$s_search_upd AFTER UPDATE ON topgun.%1$s REFERENCING NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION topgun._search_changed()', t);
    EXECUTE format('CREATE TRIGGER %1$s_search_del AFTER DELETE ON topgun.%1$s REFERENCING OLD TABLE AS old_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION topgun._search_changed()', t);
    EXECUTE format('CREATE TRIGGER %1$s_search_replica AFTER INSERT OR UPDATE OR DELETE ON topgun.%1$s
                      FOR EACH ROW EXECUTE FUNCTION topgun._search_changed_row()', t);
    EXECUTE format('CREATE TRIGGER %1$s_search_truncate AFTER TRUNCATE ON topgun.%1$s
                      FOR EACH STATEMENT EXECUTE FUNCTION topgun._search_truncated()', t);
  END LOOP;
  PERFORM topgun._search_triggers(false);
END $$;
