-- topgun install script.  Assembled from src/sql/NN_*.sql by the Makefile.
\echo Use "CREATE EXTENSION topgun" to load this file. \quit

DO $$
BEGIN
  IF pg_catalog.getdatabaseencoding() <> 'UTF8' THEN
    RAISE EXCEPTION 'topgun requires a UTF8 database (this one is %)', pg_catalog.getdatabaseencoding()
      USING ERRCODE = 'feature_not_supported';
  END IF;
END $$;

------------------------------------------------------------------------------
-- The hlc type: hybrid logical clock timestamp "<millis>:<counter>:<nodeId>"
------------------------------------------------------------------------------
CREATE TYPE topgun.hlc;

CREATE FUNCTION topgun.hlc_in(cstring) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_out(topgun.hlc) RETURNS cstring
  AS 'MODULE_PATHNAME', 'hlc_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_recv(internal) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_send(topgun.hlc) RETURNS bytea
  AS 'MODULE_PATHNAME', 'hlc_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE topgun.hlc (
  INPUT = topgun.hlc_in,
  OUTPUT = topgun.hlc_out,
  RECEIVE = topgun.hlc_recv,
  SEND = topgun.hlc_send,
  INTERNALLENGTH = VARIABLE,
  ALIGNMENT = double,
  STORAGE = main
);
COMMENT ON TYPE topgun.hlc IS 'Hybrid logical clock timestamp <millis>:<counter>:<nodeId>, ordered by millis, counter, then nodeId bytes';

CREATE FUNCTION topgun.hlc(millis bigint, counter bigint, node text) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_construct' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_millis(topgun.hlc) RETURNS bigint
  AS 'MODULE_PATHNAME', 'hlc_millis' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_counter(topgun.hlc) RETURNS bigint
  AS 'MODULE_PATHNAME', 'hlc_counter' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_node(topgun.hlc) RETURNS text
  AS 'MODULE_PATHNAME', 'hlc_node' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_now() RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_now' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE FUNCTION topgun.hlc_update(remote topgun.hlc) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_update' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION topgun.node_id() RETURNS text
  AS 'MODULE_PATHNAME', 'tg_node_id_sql' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION topgun.hlc_now() IS 'Next timestamp of the node clock (shared memory; strictly increasing across all backends)';
COMMENT ON FUNCTION topgun.hlc_update(topgun.hlc) IS 'Merge a remote timestamp into the node clock (TopGun update rule) and return the new local time';

CREATE FUNCTION topgun.hlc_cmp(topgun.hlc, topgun.hlc) RETURNS integer
  AS 'MODULE_PATHNAME', 'hlc_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_eq(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_ne(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_lt(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_le(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_gt(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_ge(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_hash(topgun.hlc) RETURNS integer
  AS 'MODULE_PATHNAME', 'hlc_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_hash_extended(topgun.hlc, bigint) RETURNS bigint
  AS 'MODULE_PATHNAME', 'hlc_hash_extended' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_larger(topgun.hlc, topgun.hlc) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_larger' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_smaller(topgun.hlc, topgun.hlc) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_smaller' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR topgun.= (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_eq,
  COMMUTATOR = OPERATOR(topgun.=), NEGATOR = OPERATOR(topgun.<>), RESTRICT = eqsel, JOIN = eqjoinsel,
  HASHES, MERGES);
CREATE OPERATOR topgun.<> (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_ne,
  COMMUTATOR = OPERATOR(topgun.<>), NEGATOR = OPERATOR(topgun.=), RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR topgun.< (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_lt,
  COMMUTATOR = OPERATOR(topgun.>), NEGATOR = OPERATOR(topgun.>=), RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR topgun.<= (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_le,
  COMMUTATOR = OPERATOR(topgun.>=), NEGATOR = OPERATOR(topgun.>), RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR topgun.> (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_gt,
  COMMUTATOR = OPERATOR(topgun.<), NEGATOR = OPERATOR(topgun.<=), RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR topgun.>= (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_ge,
  COMMUTATOR = OPERATOR(topgun.<=), NEGATOR = OPERATOR(topgun.<), RESTRICT = scalargesel, JOIN = scalargejoinsel);

CREATE OPERATOR CLASS topgun.hlc_ops DEFAULT FOR TYPE topgun.hlc USING btree AS
  OPERATOR 1 topgun.<, OPERATOR 2 topgun.<=, OPERATOR 3 topgun.=, OPERATOR 4 topgun.>=, OPERATOR 5 topgun.>,
  FUNCTION 1 topgun.hlc_cmp(topgun.hlc, topgun.hlc);
CREATE OPERATOR CLASS topgun.hlc_hash_ops DEFAULT FOR TYPE topgun.hlc USING hash AS
  OPERATOR 1 topgun.=,
  FUNCTION 1 topgun.hlc_hash(topgun.hlc),
  FUNCTION 2 topgun.hlc_hash_extended(topgun.hlc, bigint);

CREATE AGGREGATE topgun.max(topgun.hlc) (SFUNC = topgun.hlc_larger, STYPE = topgun.hlc, SORTOP = OPERATOR(topgun.>), PARALLEL = SAFE, COMBINEFUNC = topgun.hlc_larger);
CREATE AGGREGATE topgun.min(topgun.hlc) (SFUNC = topgun.hlc_smaller, STYPE = topgun.hlc, SORTOP = OPERATOR(topgun.<), PARALLEL = SAFE, COMBINEFUNC = topgun.hlc_smaller);

------------------------------------------------------------------------------
-- TopGun's string hash (FNV-1a 32 over UTF-16 code units) and Merkle leaf
------------------------------------------------------------------------------
CREATE FUNCTION topgun.key_hash(text) RETURNS bigint
  AS 'MODULE_PATHNAME', 'tg_key_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION topgun.key_hash(text) IS 'TopGun string hash: FNV-1a 32 over UTF-16 code units, as an unsigned 32-bit value';
CREATE FUNCTION topgun.key_leaf(text) RETURNS smallint
  AS 'MODULE_PATHNAME', 'tg_key_leaf' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION topgun.key_leaf(text) IS 'Merkle leaf (0..4095) of a key: the first three hex digits of key_hash';

-- Milliseconds since the Unix epoch at statement start (TTL checks).
CREATE FUNCTION topgun.now_ms() RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT (extract(epoch FROM pg_catalog.statement_timestamp()) * 1000)::bigint $$;
------------------------------------------------------------------------------
-- CRDT storage: one row per key (LWW), per tag (OR), per node (counters)
------------------------------------------------------------------------------
CREATE TABLE topgun.maps (
  name       text PRIMARY KEY,
  kind       text NOT NULL CHECK (kind IN ('lww', 'or')),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE topgun.maps IS 'Every map and its kind, fixed by its first write';

CREATE TABLE topgun.lww (
  map    text NOT NULL,
  key    text NOT NULL,
  leaf   smallint NOT NULL,             -- key_leaf(key), set by the lww_leaf/ormap_leaf triggers
  value  jsonb,                      -- NULL: tombstone
  ts     topgun.hlc NOT NULL,
  ttl_ms bigint,                     -- > 0, checked by the *_expiry trigger
  -- When a live record with a TTL expires (ms since the epoch), else NULL;
  -- kept by the lww_expiry trigger (src/core/expiry.c).  The expiry index is
  -- on this column rather than on an expression of ts and value: an index
  -- that mentions ts or value makes every overwrite of a key a non-HOT update
  -- (a new entry in every index), which was a third of the sync worker's
  -- write cost.  Records without a TTL keep NULL here, so overwriting them is
  -- a HOT update whenever the page has room (fillfactor).
  expires_ms bigint,
  PRIMARY KEY (map, leaf, key)
) WITH (fillfactor = 80);
COMMENT ON TABLE topgun.lww IS 'LWW-map records, tombstones included (value IS NULL)';

CREATE TABLE topgun.ormap (
  map    text NOT NULL,
  key    text NOT NULL,
  leaf   smallint NOT NULL,             -- key_leaf(key), set by the lww_leaf/ormap_leaf triggers
  tag    text NOT NULL,
  value  jsonb NOT NULL,
  ts     topgun.hlc NOT NULL,
  ttl_ms bigint,                     -- > 0, checked by the *_expiry trigger
  -- when the record expires (ms since the epoch), NULL without a TTL; see lww
  expires_ms bigint,
  PRIMARY KEY (map, leaf, key, tag)
);
CREATE INDEX ormap_tag_idx ON topgun.ormap (map, tag);
COMMENT ON TABLE topgun.ormap IS 'OR-map records: one row per live (not tombstoned) tag of a key';

-- Every tag a map has seen, and whether it is tombstoned.  An add and a
-- remove of the same tag both upsert this row first, so they serialise on
-- its row lock (no lock-manager entries, whatever the transaction size) and
-- an add can never slip past a concurrent remove.
CREATE TABLE topgun.or_tags (
  map        text NOT NULL,
  tag        text NOT NULL,
  key        text,                   -- key of the removed record, when known
  removed_at timestamptz,            -- NULL: not tombstoned
  PRIMARY KEY (map, tag)
);
COMMENT ON TABLE topgun.or_tags IS 'OR-map tag registry: tombstoned tags have removed_at set';

CREATE VIEW topgun.or_tombstones AS
  SELECT map, tag, key, removed_at FROM topgun.or_tags WHERE removed_at IS NOT NULL;
COMMENT ON VIEW topgun.or_tombstones IS 'Observed-remove tombstones: a tag listed here can never be added again';

-- `leaf` is a plain column kept by a BEFORE trigger, not a GENERATED one:
-- PostgreSQL 15 logical replication does not publish generated columns, and
-- the apply worker must receive every primary-key (replica identity) column
-- to find the row an UPDATE refers to (docs/multi-node.md).
CREATE FUNCTION topgun._fill_leaf() RETURNS trigger AS 'MODULE_PATHNAME', 'tg_fill_leaf' LANGUAGE C;
CREATE TRIGGER lww_leaf BEFORE INSERT OR UPDATE OF key, leaf ON topgun.lww
  FOR EACH ROW EXECUTE FUNCTION topgun._fill_leaf();
CREATE TRIGGER ormap_leaf BEFORE INSERT OR UPDATE OF key, leaf ON topgun.ormap
  FOR EACH ROW EXECUTE FUNCTION topgun._fill_leaf();
ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER lww_leaf;
ALTER TABLE topgun.ormap ENABLE ALWAYS TRIGGER ormap_leaf;

-- `expires_ms` likewise: a trigger, not a GENERATED column, because a
-- generation expression is re-planned at every statement start, which cost
-- every single-row lww_put() about 10 % (src/core/expiry.c).
CREATE FUNCTION topgun._fill_expiry() RETURNS trigger AS 'MODULE_PATHNAME', 'tg_fill_expiry' LANGUAGE C;
CREATE TRIGGER lww_expiry BEFORE INSERT OR UPDATE OF value, ts, ttl_ms, expires_ms ON topgun.lww
  FOR EACH ROW EXECUTE FUNCTION topgun._fill_expiry();
CREATE TRIGGER ormap_expiry BEFORE INSERT OR UPDATE OF value, ts, ttl_ms, expires_ms ON topgun.ormap
  FOR EACH ROW EXECUTE FUNCTION topgun._fill_expiry();
ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER lww_expiry;
ALTER TABLE topgun.ormap ENABLE ALWAYS TRIGGER ormap_expiry;

CREATE TABLE topgun.counters (
  name text NOT NULL,
  node text NOT NULL,
  p    bigint NOT NULL DEFAULT 0 CHECK (p >= 0),
  n    bigint NOT NULL DEFAULT 0 CHECK (n >= 0),
  PRIMARY KEY (name, node)
);
COMMENT ON TABLE topgun.counters IS 'PN-counter state: per-node positive and negative totals';

SELECT pg_catalog.pg_extension_config_dump('topgun.maps', '');
SELECT pg_catalog.pg_extension_config_dump('topgun.lww', '');
SELECT pg_catalog.pg_extension_config_dump('topgun.ormap', '');
SELECT pg_catalog.pg_extension_config_dump('topgun.or_tags', '');
SELECT pg_catalog.pg_extension_config_dump('topgun.counters', '');

CREATE FUNCTION topgun.map_kind(map text) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE
  AS $$ SELECT kind FROM topgun.maps WHERE name = $1 $$;

CREATE FUNCTION topgun._check_write(kind text, map text, key text, value jsonb, ts topgun.hlc, ttl_ms bigint)
  RETURNS void AS 'MODULE_PATHNAME', 'tg_check_write' LANGUAGE C VOLATILE;

------------------------------------------------------------------------------
-- LWW map API
------------------------------------------------------------------------------
CREATE FUNCTION topgun.lww_put(map text, key text, value jsonb,
                               ts topgun.hlc DEFAULT topgun.hlc_now(), ttl_ms bigint DEFAULT NULL)
  RETURNS boolean AS 'MODULE_PATHNAME', 'lww_put' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.lww_put(text, text, jsonb, topgun.hlc, bigint) IS
  'Store a record if its timestamp is strictly newer than the stored one; true when it won';
CREATE FUNCTION topgun.lww_remove(map text, key text, ts topgun.hlc DEFAULT topgun.hlc_now())
  RETURNS boolean AS 'MODULE_PATHNAME', 'lww_remove' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.lww_remove(text, text, topgun.hlc) IS
  'Write a tombstone if its timestamp is strictly newer than the stored record; true when it won';

CREATE FUNCTION topgun.lww_get(map text, key text) RETURNS jsonb LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
  SELECT l.value FROM topgun.lww l
   WHERE l.map = $1 AND l.leaf = topgun.key_leaf($2) AND l.key = $2
     AND l.value IS NOT NULL
     AND (l.ttl_ms IS NULL OR topgun.hlc_millis(l.ts) + l.ttl_ms >= topgun.now_ms())
$$;
COMMENT ON FUNCTION topgun.lww_get(text, text) IS 'Live value of a key; NULL when absent, tombstoned or expired';

CREATE VIEW topgun.lww_entries AS
  SELECT l.map, l.key, l.value, l.ts, l.ttl_ms,
         CASE WHEN l.ttl_ms IS NOT NULL
              THEN pg_catalog.to_timestamp((topgun.hlc_millis(l.ts) + l.ttl_ms) / 1000.0) END AS expires_at
    FROM topgun.lww l
   WHERE l.value IS NOT NULL
     AND (l.ttl_ms IS NULL OR topgun.hlc_millis(l.ts) + l.ttl_ms >= topgun.now_ms());
COMMENT ON VIEW topgun.lww_entries IS 'Live LWW entries (no tombstones, no expired records)';

------------------------------------------------------------------------------
-- OR map API
--
-- An add and a tombstone of the same tag both go through the tag's row in
-- topgun.or_tags first: the second waits for the first to commit and then sees
-- it, so an add can never slip past a concurrent remove.

-- Register a tag (or lock its existing row); true when it is tombstoned.
CREATE FUNCTION topgun._or_claim_tag(map text, tag text) RETURNS boolean LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  -- ON CONFLICT DO UPDATE locks the existing row even when WHERE is false,
  -- without writing a new row version.
  INSERT INTO topgun.or_tags AS t (map, tag) VALUES (_or_claim_tag.map, _or_claim_tag.tag)
  ON CONFLICT ON CONSTRAINT or_tags_pkey DO UPDATE SET removed_at = t.removed_at WHERE false;
  RETURN EXISTS (SELECT 1 FROM topgun.or_tags t
                  WHERE t.map = _or_claim_tag.map AND t.tag = _or_claim_tag.tag AND t.removed_at IS NOT NULL);
END
$$;
------------------------------------------------------------------------------

CREATE FUNCTION topgun._check_tag(tag text) RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF tag IS NULL OR tag = '' THEN
    RAISE EXCEPTION 'tag must not be NULL or empty' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF octet_length(tag) > 256 THEN
    RAISE EXCEPTION 'tag is too long (% bytes)', octet_length(tag)
      USING ERRCODE = 'program_limit_exceeded', DETAIL = 'The maximum is 256 bytes.';
  END IF;
END $$;

CREATE FUNCTION topgun._check_counter_name(name text) RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF name IS NULL THEN
    RAISE EXCEPTION 'counter name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF octet_length(name) = 0 OR octet_length(name) > 256 THEN
    RAISE EXCEPTION 'counter name must be 1..256 bytes' USING ERRCODE = 'program_limit_exceeded';
  END IF;
END $$;

CREATE FUNCTION topgun.or_apply(map text, key text, value jsonb, tag text, ts topgun.hlc,
                                ttl_ms bigint DEFAULT NULL)
  RETURNS boolean LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  n integer;
BEGIN
  PERFORM topgun._check_write('or', map, key, value, ts, ttl_ms);
  PERFORM topgun._check_tag(tag);
  IF topgun._or_claim_tag(map, tag) THEN
    RETURN false;                      -- tombstoned: an add can never resurrect it
  END IF;
  INSERT INTO topgun.ormap AS o (map, key, tag, value, ts, ttl_ms)
       VALUES (or_apply.map, or_apply.key, or_apply.tag, or_apply.value, or_apply.ts, or_apply.ttl_ms)
  ON CONFLICT ON CONSTRAINT ormap_pkey DO UPDATE
     SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms
   WHERE o.ts OPERATOR(topgun.<) excluded.ts;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n > 0;
END
$$;
COMMENT ON FUNCTION topgun.or_apply(text, text, jsonb, text, topgun.hlc, bigint) IS
  'Apply a remote OR-map add; ignored (false) when the tag is tombstoned or not newer';

CREATE FUNCTION topgun.or_add(map text, key text, value jsonb,
                              ts topgun.hlc DEFAULT topgun.hlc_now(), ttl_ms bigint DEFAULT NULL)
  RETURNS text LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  IF ts IS NULL THEN
    RAISE EXCEPTION 'timestamp must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  PERFORM topgun.or_apply(map, key, value, ts::text, ts, ttl_ms);
  RETURN ts::text;
END
$$;
COMMENT ON FUNCTION topgun.or_add(text, text, jsonb, topgun.hlc, bigint) IS
  'Add a value under a key with a new tag (the timestamp text); returns the tag';

CREATE FUNCTION topgun.or_remove_tag(map text, tag text) RETURNS boolean LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  k text;
  n integer;
BEGIN
  PERFORM topgun._check_tag(tag);
  PERFORM topgun._check_write('or', map, '', 'null'::jsonb, topgun.hlc_now(), NULL);
  INSERT INTO topgun.or_tags AS t (map, tag, removed_at) VALUES (or_remove_tag.map, or_remove_tag.tag, now())
  ON CONFLICT ON CONSTRAINT or_tags_pkey DO UPDATE SET removed_at = now() WHERE t.removed_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    WITH d AS (DELETE FROM topgun.ormap o WHERE o.map = or_remove_tag.map AND o.tag = or_remove_tag.tag
               RETURNING o.key)
    SELECT min(d.key) INTO k FROM d;
    IF k IS NOT NULL THEN
      UPDATE topgun.or_tags t SET key = k WHERE t.map = or_remove_tag.map AND t.tag = or_remove_tag.tag;
    END IF;
  END IF;
  RETURN n > 0;
END
$$;
COMMENT ON FUNCTION topgun.or_remove_tag(text, text) IS
  'Tombstone one tag (removing its record wherever it is); true when the tag was not tombstoned before';

CREATE FUNCTION topgun.or_remove(map text, key text, value jsonb) RETURNS integer LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  t text;
  n integer := 0;
BEGIN
  PERFORM topgun._check_write('or', map, key, value, topgun.hlc_now(), NULL);
  FOR t IN SELECT o.tag FROM topgun.ormap o
            WHERE o.map = or_remove.map AND o.leaf = topgun.key_leaf(or_remove.key)
              AND o.key = or_remove.key AND o.value = or_remove.value
            ORDER BY o.tag
  LOOP
    IF topgun.or_remove_tag(map, t) THEN
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION topgun.or_remove(text, text, jsonb) IS
  'Tombstone every observed tag of key holding value; returns how many';

CREATE FUNCTION topgun.or_merge_key(map text, key text, records jsonb, tombstones text[])
  RETURNS integer LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  r jsonb;
  t text;
  n integer := 0;
  ts topgun.hlc;
BEGIN
  IF records IS NOT NULL AND jsonb_typeof(records) <> 'array' THEN
    RAISE EXCEPTION 'records must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH t IN ARRAY coalesce(tombstones, '{}') LOOP
    PERFORM topgun.or_remove_tag(map, t);
  END LOOP;
  FOR r IN SELECT * FROM jsonb_array_elements(coalesce(records, '[]')) LOOP
    IF jsonb_typeof(r) <> 'object' OR jsonb_typeof(r->'timestamp') <> 'object'
       OR jsonb_typeof(r->'tag') <> 'string' OR NOT r ? 'value' THEN
      RAISE EXCEPTION 'invalid OR-map record: %', r USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
      ts := topgun.hlc((r->'timestamp'->>'millis')::bigint, (r->'timestamp'->>'counter')::bigint,
                       r->'timestamp'->>'nodeId');
    EXCEPTION WHEN data_exception OR null_value_not_allowed THEN
      RAISE EXCEPTION 'invalid OR-map record timestamp: %', r->'timestamp' USING ERRCODE = 'invalid_parameter_value';
    END;
    IF topgun.or_apply(map, key, r->'value', r->>'tag', ts, (r->>'ttlMs')::bigint) THEN
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION topgun.or_merge_key(text, text, jsonb, text[]) IS
  'TopGun mergeKey: union tombstones, then add or update the given records; returns how many changed';

CREATE FUNCTION topgun.or_get(map text, key text) RETURNS SETOF jsonb LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
  SELECT o.value FROM topgun.ormap o
   WHERE o.map = $1 AND o.leaf = topgun.key_leaf($2) AND o.key = $2
     AND (o.ttl_ms IS NULL OR topgun.hlc_millis(o.ts) + o.ttl_ms >= topgun.now_ms())
   ORDER BY o.tag COLLATE "C"
$$;
COMMENT ON FUNCTION topgun.or_get(text, text) IS 'Live values of a key in an OR map, in tag order';

CREATE VIEW topgun.or_entries AS
  SELECT o.map, o.key, o.tag, o.value, o.ts, o.ttl_ms,
         CASE WHEN o.ttl_ms IS NOT NULL
              THEN pg_catalog.to_timestamp((topgun.hlc_millis(o.ts) + o.ttl_ms) / 1000.0) END AS expires_at
    FROM topgun.ormap o
   WHERE o.ttl_ms IS NULL OR topgun.hlc_millis(o.ts) + o.ttl_ms >= topgun.now_ms();
COMMENT ON VIEW topgun.or_entries IS 'Live OR-map records (tombstoned tags are never stored; expired ones are hidden)';

------------------------------------------------------------------------------
-- PN counters (merge = per-node maximum)
------------------------------------------------------------------------------
CREATE FUNCTION topgun.counter_value(name text) RETURNS bigint LANGUAGE sql STABLE STRICT PARALLEL SAFE
  AS $$ SELECT coalesce(sum(p) - sum(n), 0)::bigint FROM topgun.counters c WHERE c.name = $1 $$;

CREATE FUNCTION topgun.counter_add(name text, delta bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  PERFORM topgun._check_counter_name(name);
  IF delta IS NULL THEN
    RAISE EXCEPTION 'delta must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF delta = -9223372036854775808 THEN
    RAISE EXCEPTION 'delta out of range' USING ERRCODE = 'numeric_value_out_of_range';
  END IF;
  INSERT INTO topgun.counters AS c (name, node, p, n)
       VALUES (counter_add.name, topgun.node_id(), greatest(delta, 0), greatest(-delta, 0))
  ON CONFLICT ON CONSTRAINT counters_pkey DO UPDATE
     SET p = c.p + excluded.p, n = c.n + excluded.n;
  RETURN topgun.counter_value(name);
END
$$;
COMMENT ON FUNCTION topgun.counter_add(text, bigint) IS 'Add delta to this node''s share of the counter; returns the value after';

CREATE FUNCTION topgun.counter_merge(name text, state jsonb) RETURNS bigint LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  pos jsonb;
  neg jsonb;
  e record;
  side text;
  part jsonb;
BEGIN
  PERFORM topgun._check_counter_name(name);
  IF state IS NULL THEN
    RAISE EXCEPTION 'counter state must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF jsonb_typeof(state) <> 'object' THEN
    RAISE EXCEPTION 'counter state must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  pos := coalesce(state->'positive', state->'p', '{}');
  neg := coalesce(state->'negative', state->'n', '{}');
  FOREACH side IN ARRAY ARRAY['p', 'n'] LOOP
    part := CASE side WHEN 'p' THEN pos ELSE neg END;
    IF jsonb_typeof(part) <> 'object' THEN
      RAISE EXCEPTION 'counter state % must be an object of node -> count', side
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR e IN SELECT * FROM jsonb_each(part) LOOP
      IF jsonb_typeof(e.value) <> 'number' OR (e.value)::numeric < 0
         OR (e.value)::numeric <> trunc((e.value)::numeric)
         OR (e.value)::numeric > 9223372036854775807 THEN
        RAISE EXCEPTION 'counter state entry %=% must be a non-negative integer', e.key, e.value
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF octet_length(e.key) = 0 OR octet_length(e.key) > 128 THEN
        RAISE EXCEPTION 'counter node id must be 1..128 bytes' USING ERRCODE = 'program_limit_exceeded';
      END IF;
    END LOOP;
  END LOOP;
  INSERT INTO topgun.counters AS c (name, node, p, n)
  SELECT counter_merge.name, k, max(pv), max(nv) FROM (
      SELECT key AS k, (value)::numeric::bigint AS pv, 0::bigint AS nv FROM jsonb_each(pos)
      UNION ALL
      SELECT key, 0, (value)::numeric::bigint FROM jsonb_each(neg)) s
   GROUP BY k
  ON CONFLICT ON CONSTRAINT counters_pkey DO UPDATE
     SET p = greatest(c.p, excluded.p), n = greatest(c.n, excluded.n)
   WHERE c.p < excluded.p OR c.n < excluded.n;
  RETURN topgun.counter_value(name);
END
$$;
COMMENT ON FUNCTION topgun.counter_merge(text, jsonb) IS
  'Merge a PN-counter state ({positive,negative} or {p,n}: node -> count) by per-node maximum';

CREATE FUNCTION topgun.counter_state(name text) RETURNS jsonb LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$
  SELECT jsonb_build_object(
    'positive', coalesce(jsonb_object_agg(node, p) FILTER (WHERE p > 0), '{}'),
    'negative', coalesce(jsonb_object_agg(node, n) FILTER (WHERE n > 0), '{}'))
    FROM topgun.counters c WHERE c.name = $1
$$;
COMMENT ON FUNCTION topgun.counter_state(text) IS 'PN-counter state as {"positive":{node:n},"negative":{node:n}}';
------------------------------------------------------------------------------
-- Batch writes
------------------------------------------------------------------------------
CREATE FUNCTION topgun.lww_put_many(maps text[], keys text[], vals jsonb[], ts topgun.hlc[],
                                    ttl_ms bigint[] DEFAULT NULL)
  RETURNS TABLE (ord integer, won boolean, error text)
  AS 'MODULE_PATHNAME', 'lww_put_many' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.lww_put_many(text[], text[], jsonb[], topgun.hlc[], bigint[]) IS
  'Many LWW writes in one statement (NULL or JSON null value = tombstone): one row per input op with won, or the reason it was rejected';
------------------------------------------------------------------------------
-- Merkle trees (TopGun layout: depth 3, radix 16, wrapping uint32 sums)
------------------------------------------------------------------------------
-- One row per depth-2 node: its hash and its 16 leaves (depth 3).  Keeping
-- a node's leaves in its own row means a commit updates at most 256 rows per
-- map however many leaves it touched -- and every writer of a leaf had to
-- lock the leaf's depth-2 row anyway, so no new contention is created.
CREATE TABLE topgun.merkle_nodes (
  map    text NOT NULL,
  prefix smallint NOT NULL CHECK (prefix BETWEEN 0 AND 255),    -- the node's 2 hex digits
  hash   bigint NOT NULL CHECK (hash >= 0 AND hash < 4294967296), -- sum of its leaves mod 2^32
  leaves bigint[] NOT NULL CHECK (pg_catalog.cardinality(leaves) = 16),
                                    -- leaves[i + 1]: leaf prefix * 16 + i; NULL: never written
  PRIMARY KEY (map, prefix)
) WITH (fillfactor = 50);  -- small and rewritten at every commit: leave room for HOT updates
COMMENT ON TABLE topgun.merkle_nodes IS 'Merkle depth-2 node and leaf hashes per map, maintained at commit by the storage triggers';

CREATE FUNCTION topgun._merkle_leaves_add(old bigint[], delta bigint[]) RETURNS bigint[]
  AS 'MODULE_PATHNAME', 'tg_merkle_leaves_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Every leaf that was ever written, with its hash.
CREATE FUNCTION topgun._stored_leaf_hashes(map text) RETURNS TABLE (leaf int, hash bigint)
  LANGUAGE sql STABLE STRICT
AS $$
  SELECT n.prefix * 16 + (u.o - 1)::int, u.h
    FROM topgun.merkle_nodes n, pg_catalog.unnest(n.leaves) WITH ORDINALITY AS u(h, o)
   WHERE n.map = $1 AND u.h IS NOT NULL
$$;

CREATE TABLE topgun.or_keys (
  map        text NOT NULL,
  leaf       smallint NOT NULL,
  key        text NOT NULL,
  entry_hash bigint NOT NULL,
  PRIMARY KEY (map, leaf, key)
);
COMMENT ON TABLE topgun.or_keys IS 'Current OR-map entry hash of every key with at least one record';

-- Not registered with pg_extension_config_dump: the trees are derived data.
-- A restore loads the storage tables with triggers enabled, which rebuilds
-- them; after a data-only restore with --disable-triggers run
-- topgun.merkle_rebuild() for each map.

CREATE FUNCTION topgun._lww_merkle_trigger() RETURNS trigger
  AS 'MODULE_PATHNAME', 'tg_lww_merkle_trigger' LANGUAGE C;
CREATE FUNCTION topgun._or_merkle_trigger() RETURNS trigger
  AS 'MODULE_PATHNAME', 'tg_or_merkle_trigger' LANGUAGE C;

CREATE TRIGGER lww_merkle AFTER INSERT OR UPDATE OR DELETE ON topgun.lww
  FOR EACH ROW EXECUTE FUNCTION topgun._lww_merkle_trigger();
CREATE TRIGGER ormap_merkle AFTER INSERT OR UPDATE OR DELETE ON topgun.ormap
  FOR EACH ROW EXECUTE FUNCTION topgun._or_merkle_trigger();
-- Fire for logical-replication apply too (session_replication_role = replica).
ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER lww_merkle;
ALTER TABLE topgun.ormap ENABLE ALWAYS TRIGGER ormap_merkle;

CREATE FUNCTION topgun._truncate_trees() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'lww' THEN
    DELETE FROM topgun.merkle_nodes m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'lww');
  ELSE
    DELETE FROM topgun.merkle_nodes m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'or');
    DELETE FROM topgun.or_keys;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER lww_truncate AFTER TRUNCATE ON topgun.lww
  FOR EACH STATEMENT EXECUTE FUNCTION topgun._truncate_trees();
CREATE TRIGGER ormap_truncate AFTER TRUNCATE ON topgun.ormap
  FOR EACH STATEMENT EXECUTE FUNCTION topgun._truncate_trees();

CREATE FUNCTION topgun._lww_item_hash(key text, ts topgun.hlc) RETURNS bigint
  AS 'MODULE_PATHNAME', 'tg_lww_item_hash_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun._or_entry_hash(map text, key text) RETURNS bigint
  AS 'MODULE_PATHNAME', 'tg_or_entry_hash_sql' LANGUAGE C STABLE STRICT;
CREATE FUNCTION topgun.or_value_string(value jsonb) RETURNS text
  AS 'MODULE_PATHNAME', 'tg_or_value_string' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION topgun.or_value_string(jsonb) IS 'TopGun stringifyValue() of a value, as hashed into OR-map entries';

CREATE FUNCTION topgun.merkle_root(map text) RETURNS bigint
  AS 'MODULE_PATHNAME', 'tg_merkle_root' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION topgun.merkle_root(text) IS 'Root hash of a map''s Merkle tree (unsigned 32-bit; 0 when empty)';
CREATE FUNCTION topgun.merkle_buckets(map text, path text) RETURNS TABLE (bucket text, hash bigint)
  AS 'MODULE_PATHNAME', 'tg_merkle_buckets' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION topgun.merkle_buckets(text, text) IS 'Existing children {hex digit, hash} of the node at path ('''' = root)';

CREATE FUNCTION topgun.hlc_json(ts topgun.hlc) RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT jsonb_build_object('millis', topgun.hlc_millis($1), 'counter', topgun.hlc_counter($1),
                                  'nodeId', topgun.hlc_node($1)) $$;
COMMENT ON FUNCTION topgun.hlc_json(topgun.hlc) IS 'A timestamp as TopGun''s {millis, counter, nodeId} object';

CREATE FUNCTION topgun._path_leaf(path text) RETURNS smallint LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  IF path !~ '^[0-9a-f]{3}$' THEN
    RAISE EXCEPTION 'invalid Merkle leaf path "%"', left(path, 32)
      USING ERRCODE = 'invalid_parameter_value', DETAIL = 'A leaf path is exactly 3 lowercase hexadecimal digits.';
  END IF;
  RETURN ('x' || lpad(path, 8, '0'))::bit(32)::int;
END $$;

CREATE FUNCTION topgun.merkle_leaf(map text, path text) RETURNS TABLE (key text, record jsonb)
  LANGUAGE plpgsql STABLE STRICT
AS $$
DECLARE
  lf smallint := topgun._path_leaf(path);
BEGIN
  IF topgun.map_kind(map) = 'or' THEN
    RETURN QUERY
      SELECT o.key,
             jsonb_build_object(
               'records', jsonb_agg(jsonb_build_object('value', o.value, 'timestamp', topgun.hlc_json(o.ts), 'tag', o.tag)
                                    || CASE WHEN o.ttl_ms IS NULL THEN '{}'::jsonb
                                            ELSE jsonb_build_object('ttlMs', o.ttl_ms) END
                                    ORDER BY o.tag COLLATE "C"),
               'tombstones', coalesce((SELECT jsonb_agg(t.tag ORDER BY t.tag COLLATE "C") FROM topgun.or_tombstones t
                                        WHERE t.map = merkle_leaf.map AND (t.key = o.key OR t.key IS NULL)), '[]'::jsonb))
        FROM topgun.ormap o
       WHERE o.map = merkle_leaf.map AND o.leaf = lf
       GROUP BY o.key
       ORDER BY o.key COLLATE "C";
  ELSE
    RETURN QUERY
      SELECT l.key,
             jsonb_build_object('value', l.value, 'timestamp', topgun.hlc_json(l.ts))
             || CASE WHEN l.ttl_ms IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('ttlMs', l.ttl_ms) END
        FROM topgun.lww l
       WHERE l.map = merkle_leaf.map AND l.leaf = lf
       ORDER BY l.key COLLATE "C";
  END IF;
END
$$;
COMMENT ON FUNCTION topgun.merkle_leaf(text, text) IS 'Records under a depth-3 leaf, tombstones included, in TopGun record shape';

CREATE FUNCTION topgun.merkle_diff(map text, path text, remote jsonb) RETURNS SETOF text
  LANGUAGE plpgsql STABLE STRICT
AS $$
BEGIN
  IF length(path) >= 3 THEN
    RAISE EXCEPTION 'Merkle path "%" is a leaf; compare its records with merkle_leaf()', left(path, 32)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(remote) <> 'object' THEN
    RAISE EXCEPTION 'remote buckets must be a JSON object {hexdigit: hash}' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF EXISTS (SELECT 1 FROM jsonb_each(remote) e
              WHERE e.key !~ '^[0-9a-f]$' OR jsonb_typeof(e.value) <> 'number'
                 OR (e.value)::numeric < 0 OR (e.value)::numeric > 4294967295) THEN
    RAISE EXCEPTION 'remote buckets must map one hex digit to an unsigned 32-bit hash'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
    SELECT path || coalesce(l.bucket, r.key)
      FROM topgun.merkle_buckets(map, path) l
      FULL JOIN jsonb_each(remote) r ON r.key = l.bucket
     WHERE coalesce(l.hash, 0) <> coalesce((r.value)::numeric::bigint, 0)
     ORDER BY 1;
END
$$;
COMMENT ON FUNCTION topgun.merkle_diff(text, text, jsonb) IS 'Child paths whose hash differs from a peer''s {child: hash} at path';

-- Leaf hashes recomputed from the rows (the reference for verify/rebuild).
CREATE FUNCTION topgun._leaf_hashes_from_rows(map text) RETURNS TABLE (leaf smallint, hash bigint)
  LANGUAGE sql STABLE STRICT
AS $$
  SELECT s.leaf, (sum(s.h) % 4294967296)::bigint FROM (
    SELECT l.leaf, topgun._lww_item_hash(l.key, l.ts) AS h FROM topgun.lww l WHERE l.map = $1
    UNION ALL
    SELECT k.leaf, topgun._or_entry_hash($1, k.key)
      FROM (SELECT DISTINCT o.leaf, o.key FROM topgun.ormap o WHERE o.map = $1) k) s
  GROUP BY s.leaf
$$;

CREATE FUNCTION topgun.merkle_verify(map text) RETURNS boolean LANGUAGE plpgsql STABLE STRICT
AS $$
BEGIN
  -- every leaf and every depth-2 node must equal the sum recomputed from rows
  IF EXISTS (
      SELECT 1 FROM topgun._leaf_hashes_from_rows(map) r
      FULL JOIN topgun._stored_leaf_hashes(map) n
        ON n.leaf = r.leaf
     WHERE coalesce(r.hash, 0) <> coalesce(n.hash, 0)) THEN
    RETURN false;
  END IF;
  IF EXISTS (
      SELECT 1 FROM (SELECT leaf >> 4 AS p, sum(hash) % 4294967296 AS h
                       FROM topgun._stored_leaf_hashes(map) GROUP BY 1) a
      FULL JOIN (SELECT prefix, hash FROM topgun.merkle_nodes WHERE merkle_nodes.map = merkle_verify.map) b
        ON a.p = b.prefix
     WHERE coalesce(a.h, 0) <> coalesce(b.hash, 0)) THEN
    RETURN false;
  END IF;
  -- OR-map entry bookkeeping must match the rows as well
  RETURN NOT EXISTS (
      SELECT 1 FROM (SELECT DISTINCT o.leaf, o.key FROM topgun.ormap o WHERE o.map = merkle_verify.map) k
      FULL JOIN (SELECT ok.leaf, ok.key, ok.entry_hash FROM topgun.or_keys ok WHERE ok.map = merkle_verify.map) e
        ON e.leaf = k.leaf AND e.key = k.key
     WHERE k.key IS NULL OR e.key IS NULL OR e.entry_hash <> topgun._or_entry_hash(merkle_verify.map, k.key));
END
$$;
COMMENT ON FUNCTION topgun.merkle_verify(text) IS 'True when the stored Merkle tree equals a rebuild from the map''s rows';

CREATE FUNCTION topgun.merkle_rebuild(map text) RETURNS void LANGUAGE plpgsql VOLATILE STRICT
AS $$
BEGIN
  DELETE FROM topgun.merkle_nodes m WHERE m.map = merkle_rebuild.map;
  DELETE FROM topgun.or_keys k WHERE k.map = merkle_rebuild.map;
  INSERT INTO topgun.or_keys (map, leaf, key, entry_hash)
    SELECT merkle_rebuild.map, k.leaf, k.key, topgun._or_entry_hash(merkle_rebuild.map, k.key)
      FROM (SELECT DISTINCT o.leaf, o.key FROM topgun.ormap o WHERE o.map = merkle_rebuild.map) k;
  WITH r AS (SELECT * FROM topgun._leaf_hashes_from_rows(merkle_rebuild.map))
  INSERT INTO topgun.merkle_nodes (map, prefix, hash, leaves)
    SELECT merkle_rebuild.map, p.prefix,
           (SELECT sum(r.hash) % 4294967296 FROM r WHERE r.leaf >> 4 = p.prefix),
           ARRAY(SELECT r.hash FROM pg_catalog.generate_series(0, 15) AS g
                   LEFT JOIN r ON r.leaf = p.prefix * 16 + g ORDER BY g)
      FROM (SELECT DISTINCT r.leaf >> 4 AS prefix FROM r) p;
END
$$;
COMMENT ON FUNCTION topgun.merkle_rebuild(text) IS 'Recompute a map''s Merkle tree from its rows (operators; after restores)';
------------------------------------------------------------------------------
-- Change feed: committed changes from every backend reach the sync worker
------------------------------------------------------------------------------
CREATE FUNCTION topgun._counter_change_trigger() RETURNS trigger
  AS 'MODULE_PATHNAME', 'tg_counter_change_trigger' LANGUAGE C;
CREATE TRIGGER counters_change AFTER INSERT OR UPDATE ON topgun.counters
  FOR EACH ROW EXECUTE FUNCTION topgun._counter_change_trigger();
ALTER TABLE topgun.counters ENABLE ALWAYS TRIGGER counters_change;

CREATE FUNCTION topgun.publish(topic text, data jsonb) RETURNS void
  AS 'MODULE_PATHNAME', 'tg_publish' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.publish(text, jsonb) IS
  'Publish a message to a topic''s WebSocket subscribers when the calling transaction commits';

CREATE FUNCTION topgun.change_feed_stats(
    OUT buffer_bytes bigint, OUT used_bytes bigint, OUT events_appended bigint,
    OUT events_dropped bigint, OUT unread_bytes bigint, OUT last_seq bigint,
    OUT consumer_pid integer, OUT lost_unreported bigint)
  AS 'MODULE_PATHNAME', 'tg_change_feed_stats' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.change_feed_stats() IS
  'State of the shared ring that carries committed changes to the sync worker';

CREATE FUNCTION topgun._change_feed_attach() RETURNS void
  AS 'MODULE_PATHNAME', 'tg_change_feed_attach' LANGUAGE C VOLATILE;
CREATE FUNCTION topgun._change_feed_read(
    OUT seq bigint, OUT kind text, OUT map text, OUT key text, OUT tag text, OUT payload text,
    OUT origin bigint, OUT lost bigint) RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'tg_change_feed_read' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun._change_feed_attach() IS
  'Make this session the change-feed consumer (operators and tests, when no sync worker runs)';
REVOKE ALL ON FUNCTION topgun._change_feed_attach() FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._change_feed_read() FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.change_feed_stats() FROM PUBLIC;
------------------------------------------------------------------------------
-- Multi-node: PostgreSQL 15 logical replication between topgun servers
-- (docs/multi-node.md).
--
-- Every node publishes its CRDT tables (publication topgun_mesh, INSERT and
-- UPDATE only) and subscribes to every other node (full mesh).  The apply
-- worker runs with session_replication_role = replica, so the BEFORE ROW
-- triggers below (ENABLE REPLICA: they fire only for replicated rows and the
-- initial table copy) turn every incoming row into the same merge a local
-- write performs:
--   lww       strictly newer HLC wins (tombstones included)
--   ormap     never stored for a tombstoned tag; newer timestamp of a tag wins
--   or_tags   tombstones are unioned and never undone; a new tombstone deletes
--             the tag's record
--   counters  per-node maximum
--   maps      first kind wins; a kind conflict is recorded, never an error
-- A row that is not newer is skipped without writing anything, so the echo of
-- a change (PG15 has no origin filter) dies after one hop.  Triggers that run
-- statements of their own return NEW when pg_trigger_depth() > 1: those
-- statements run in the apply worker too and would otherwise re-enter.
--
-- All SQL here is schema-qualified: the apply worker runs with an empty
-- search_path.
------------------------------------------------------------------------------

-- Peers this node subscribes to.
CREATE TABLE topgun.peers (
  name         text PRIMARY KEY CHECK (name ~ '^[a-z0-9_]{1,40}$'),
  node_id      text NOT NULL UNIQUE,
  conninfo     text NOT NULL,
  subscription name NOT NULL UNIQUE,
  slot_name    name NOT NULL,          -- slot on the peer that the subscription streams from
  added_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE topgun.peers IS 'Replication peers of this node (topgun.add_peer / topgun.remove_peer)';
REVOKE ALL ON topgun.peers FROM PUBLIC;    -- conninfo may hold a password

-- Replicated heartbeats: the newest timestamp of each node's clock that has
-- reached this node.  A node's heartbeat arrives after everything that node
-- committed before it, so the minimum over all peers bounds what may still be
-- in flight (the tombstone GC horizon).
CREATE TABLE topgun.node_clock (
  node text PRIMARY KEY,
  ts   topgun.hlc NOT NULL
);
COMMENT ON TABLE topgun.node_clock IS 'Newest heartbeat (topgun.mesh_heartbeat) of every node seen here';

-- Map kind conflicts seen by this node's apply worker.
CREATE TABLE topgun.map_kind_conflicts (
  map         text PRIMARY KEY,
  local_kind  text NOT NULL,
  remote_kind text NOT NULL,
  first_seen  timestamptz NOT NULL DEFAULT now(),
  last_seen   timestamptz NOT NULL DEFAULT now(),
  occurrences bigint NOT NULL DEFAULT 1
);
COMMENT ON TABLE topgun.map_kind_conflicts IS
  'Maps created with different kinds on different nodes (the local kind is kept; replication continues)';

SELECT pg_catalog.pg_extension_config_dump('topgun.node_clock', '');

CREATE FUNCTION topgun._repl_observe(ts topgun.hlc) RETURNS void
  AS 'MODULE_PATHNAME', 'tg_repl_observe' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION topgun._peer_exec(conninfo text, query text) RETURNS text
  AS 'MODULE_PATHNAME', 'tg_peer_exec' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION topgun._peer_exec(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._repl_observe(topgun.hlc) FROM PUBLIC;

------------------------------------------------------------------------------
-- Apply-side merge triggers
------------------------------------------------------------------------------
CREATE FUNCTION topgun._repl_lww() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cur topgun.hlc;
BEGIN
  IF pg_catalog.pg_trigger_depth() > 1 THEN
    RETURN NEW;
  END IF;
  PERFORM topgun._repl_observe(NEW.ts);
  IF TG_OP = 'UPDATE' THEN
    IF OLD.ts OPERATOR(topgun.<) NEW.ts THEN
      RETURN NEW;
    END IF;
    RETURN NULL;
  END IF;
  -- Not newer than what is stored: nothing to do, and nothing written (no
  -- row lock either), which is what ends an echo.
  SELECT l.ts INTO cur FROM topgun.lww l WHERE l.map = NEW.map AND l.leaf = NEW.leaf AND l.key = NEW.key;
  IF FOUND AND NOT (cur OPERATOR(topgun.<) NEW.ts) THEN
    RETURN NULL;
  END IF;
  INSERT INTO topgun.lww AS t (map, key, leaf, value, ts, ttl_ms)
       VALUES (NEW.map, NEW.key, NEW.leaf, NEW.value, NEW.ts, NEW.ttl_ms)
  ON CONFLICT ON CONSTRAINT lww_pkey DO UPDATE
     SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms
   WHERE t.ts OPERATOR(topgun.<) excluded.ts;
  RETURN NULL;
END $$;

CREATE FUNCTION topgun._repl_ormap() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cur topgun.hlc;
BEGIN
  IF pg_catalog.pg_trigger_depth() > 1 THEN
    RETURN NEW;
  END IF;
  PERFORM topgun._repl_observe(NEW.ts);
  -- A tombstone is permanent: no lock needed to trust it.
  IF EXISTS (SELECT 1 FROM topgun.or_tags t
              WHERE t.map = NEW.map AND t.tag = NEW.tag AND t.removed_at IS NOT NULL) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    cur := OLD.ts;
  ELSE
    SELECT o.ts INTO cur FROM topgun.ormap o
     WHERE o.map = NEW.map AND o.leaf = NEW.leaf AND o.key = NEW.key AND o.tag = NEW.tag;
  END IF;
  IF cur IS NOT NULL AND NOT (cur OPERATOR(topgun.<) NEW.ts) THEN
    RETURN NULL;
  END IF;
  -- Serialise with a concurrent local remove of the tag, as or_apply does.
  IF topgun._or_claim_tag(NEW.map, NEW.tag) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    RETURN NEW;
  END IF;
  INSERT INTO topgun.ormap AS o (map, key, leaf, tag, value, ts, ttl_ms)
       VALUES (NEW.map, NEW.key, NEW.leaf, NEW.tag, NEW.value, NEW.ts, NEW.ttl_ms)
  ON CONFLICT ON CONSTRAINT ormap_pkey DO UPDATE
     SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms
   WHERE o.ts OPERATOR(topgun.<) excluded.ts;
  RETURN NULL;
END $$;

-- or_tags merge: removed_at and key are each the least non-NULL value seen
-- (LEAST ignores NULLs; keys compare bytewise so every node picks the same),
-- so a tombstone can be added but never taken back.
CREATE FUNCTION topgun._repl_or_tags() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cur topgun.or_tags;
  rem timestamptz;
  k text;
  dk text;
BEGIN
  IF pg_catalog.pg_trigger_depth() > 1 THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    cur := OLD;
  ELSE
    SELECT * INTO cur FROM topgun.or_tags t WHERE t.map = NEW.map AND t.tag = NEW.tag;
    IF NOT FOUND THEN
      INSERT INTO topgun.or_tags AS t (map, tag, key, removed_at)
           VALUES (NEW.map, NEW.tag, NEW.key, NEW.removed_at)
      ON CONFLICT ON CONSTRAINT or_tags_pkey DO NOTHING;
      IF FOUND THEN
        IF NEW.removed_at IS NOT NULL THEN
          -- records of the tag that reached this node by direct DML only
          WITH d AS (DELETE FROM topgun.ormap o WHERE o.map = NEW.map AND o.tag = NEW.tag RETURNING o.key)
          SELECT min(d.key COLLATE "C") INTO dk FROM d;
          IF dk IS NOT NULL AND NEW.key IS DISTINCT FROM LEAST(NEW.key COLLATE "C", dk COLLATE "C") THEN
            UPDATE topgun.or_tags t SET key = LEAST(NEW.key COLLATE "C", dk COLLATE "C")
             WHERE t.map = NEW.map AND t.tag = NEW.tag;
          END IF;
        END IF;
        RETURN NULL;
      END IF;
    END IF;
    SELECT * INTO cur FROM topgun.or_tags t WHERE t.map = NEW.map AND t.tag = NEW.tag FOR UPDATE;
  END IF;
  rem := LEAST(cur.removed_at, NEW.removed_at);
  k := LEAST(cur.key COLLATE "C", NEW.key COLLATE "C");
  IF rem IS NOT DISTINCT FROM cur.removed_at AND k IS NOT DISTINCT FROM cur.key THEN
    RETURN NULL;                       -- nothing new: the echo ends here
  END IF;
  IF cur.removed_at IS NULL AND rem IS NOT NULL THEN
    -- newly tombstoned here: the tag's record goes, whichever key holds it
    WITH d AS (DELETE FROM topgun.ormap o WHERE o.map = NEW.map AND o.tag = NEW.tag RETURNING o.key)
    SELECT min(d.key COLLATE "C") INTO dk FROM d;
    k := LEAST(k COLLATE "C", dk COLLATE "C");
  END IF;
  IF TG_OP = 'UPDATE' THEN
    NEW.removed_at := rem;
    NEW.key := k;
    RETURN NEW;
  END IF;
  UPDATE topgun.or_tags t SET removed_at = rem, key = k WHERE t.map = NEW.map AND t.tag = NEW.tag;
  RETURN NULL;
END $$;

CREATE FUNCTION topgun._repl_counters() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cur topgun.counters;
BEGIN
  IF pg_catalog.pg_trigger_depth() > 1 THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    NEW.p := GREATEST(OLD.p, NEW.p);
    NEW.n := GREATEST(OLD.n, NEW.n);
    IF NEW.p = OLD.p AND NEW.n = OLD.n THEN
      RETURN NULL;
    END IF;
    RETURN NEW;
  END IF;
  SELECT * INTO cur FROM topgun.counters c WHERE c.name = NEW.name AND c.node = NEW.node;
  IF FOUND AND cur.p >= NEW.p AND cur.n >= NEW.n THEN
    RETURN NULL;
  END IF;
  INSERT INTO topgun.counters AS c (name, node, p, n) VALUES (NEW.name, NEW.node, NEW.p, NEW.n)
  ON CONFLICT ON CONSTRAINT counters_pkey DO UPDATE
     SET p = GREATEST(c.p, excluded.p), n = GREATEST(c.n, excluded.n)
   WHERE c.p < excluded.p OR c.n < excluded.n;
  RETURN NULL;
END $$;

CREATE FUNCTION topgun._repl_maps() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k text;
BEGIN
  IF pg_catalog.pg_trigger_depth() > 1 THEN
    RETURN NEW;
  END IF;
  SELECT m.kind INTO k FROM topgun.maps m WHERE m.name = NEW.name;
  IF NOT FOUND THEN
    INSERT INTO topgun.maps (name, kind, created_at) VALUES (NEW.name, NEW.kind, NEW.created_at)
    ON CONFLICT ON CONSTRAINT maps_pkey DO NOTHING;
    IF FOUND THEN
      RETURN NULL;
    END IF;
    SELECT m.kind INTO k FROM topgun.maps m WHERE m.name = NEW.name;
  END IF;
  IF k IS DISTINCT FROM NEW.kind THEN
    -- Reported, not raised: an error here would stop replication for good.
    INSERT INTO topgun.map_kind_conflicts AS c (map, local_kind, remote_kind)
         VALUES (NEW.name, k, NEW.kind)
    ON CONFLICT ON CONSTRAINT map_kind_conflicts_pkey DO UPDATE
       SET last_seen = now(), occurrences = c.occurrences + 1, remote_kind = excluded.remote_kind;
    RAISE WARNING 'topgun: map "%" is an % map here but an % map on a peer', NEW.name,
      upper(k), upper(NEW.kind)
      USING ERRCODE = 'wrong_object_type',
            DETAIL = 'The local kind is kept and replication continues; records of both kinds are stored.',
            HINT = 'See topgun.map_kind_conflicts; rename one of the maps in the applications.';
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION topgun._repl_node_clock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF pg_catalog.pg_trigger_depth() > 1 THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    IF OLD.ts OPERATOR(topgun.<) NEW.ts THEN
      RETURN NEW;
    END IF;
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT 1 FROM topgun.node_clock c WHERE c.node = NEW.node AND NOT (c.ts OPERATOR(topgun.<) NEW.ts)) THEN
    RETURN NULL;
  END IF;
  INSERT INTO topgun.node_clock AS c (node, ts) VALUES (NEW.node, NEW.ts)
  ON CONFLICT ON CONSTRAINT node_clock_pkey DO UPDATE SET ts = excluded.ts
   WHERE c.ts OPERATOR(topgun.<) excluded.ts;
  RETURN NULL;
END $$;

CREATE TRIGGER lww_replica BEFORE INSERT OR UPDATE ON topgun.lww
  FOR EACH ROW EXECUTE FUNCTION topgun._repl_lww();
CREATE TRIGGER ormap_replica BEFORE INSERT OR UPDATE ON topgun.ormap
  FOR EACH ROW EXECUTE FUNCTION topgun._repl_ormap();
CREATE TRIGGER or_tags_replica BEFORE INSERT OR UPDATE ON topgun.or_tags
  FOR EACH ROW EXECUTE FUNCTION topgun._repl_or_tags();
CREATE TRIGGER counters_replica BEFORE INSERT OR UPDATE ON topgun.counters
  FOR EACH ROW EXECUTE FUNCTION topgun._repl_counters();
CREATE TRIGGER maps_replica BEFORE INSERT OR UPDATE ON topgun.maps
  FOR EACH ROW EXECUTE FUNCTION topgun._repl_maps();
CREATE TRIGGER node_clock_replica BEFORE INSERT OR UPDATE ON topgun.node_clock
  FOR EACH ROW EXECUTE FUNCTION topgun._repl_node_clock();
ALTER TABLE topgun.lww ENABLE REPLICA TRIGGER lww_replica;
ALTER TABLE topgun.ormap ENABLE REPLICA TRIGGER ormap_replica;
ALTER TABLE topgun.or_tags ENABLE REPLICA TRIGGER or_tags_replica;
ALTER TABLE topgun.counters ENABLE REPLICA TRIGGER counters_replica;
ALTER TABLE topgun.maps ENABLE REPLICA TRIGGER maps_replica;
ALTER TABLE topgun.node_clock ENABLE REPLICA TRIGGER node_clock_replica;

-- Tombstone GC deletes rows on each node independently, and deletes are not
-- published.  A peer that still has a pruned tombstone would send a later
-- write of that key as an UPDATE, which finds no row here and is dropped by
-- the apply worker without a word.  So an UPDATE of a tombstone is written
-- again as DELETE + INSERT (the INSERT reaches every peer and merges).
-- Enabled by topgun.mesh_enable(): a single node never pays for it.
CREATE FUNCTION topgun._lww_reinsert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM topgun.lww l WHERE l.map = NEW.map AND l.leaf = NEW.leaf AND l.key = NEW.key;
  INSERT INTO topgun.lww (map, key, leaf, value, ts, ttl_ms)
       VALUES (NEW.map, NEW.key, NEW.leaf, NEW.value, NEW.ts, NEW.ttl_ms);
  RETURN NULL;
END $$;
CREATE TRIGGER lww_reinsert AFTER UPDATE ON topgun.lww
  FOR EACH ROW WHEN (OLD.value IS NULL) EXECUTE FUNCTION topgun._lww_reinsert();
ALTER TABLE topgun.lww DISABLE TRIGGER lww_reinsert;

------------------------------------------------------------------------------
-- Mesh management
------------------------------------------------------------------------------
CREATE FUNCTION topgun.mesh_heartbeat() RETURNS topgun.hlc LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  ts topgun.hlc := topgun.hlc_now();
BEGIN
  INSERT INTO topgun.node_clock AS c (node, ts) VALUES (topgun.node_id(), ts)
  ON CONFLICT ON CONSTRAINT node_clock_pkey DO UPDATE SET ts = excluded.ts
   WHERE c.ts OPERATOR(topgun.<) excluded.ts;
  RETURN ts;
END $$;
COMMENT ON FUNCTION topgun.mesh_heartbeat() IS
  'Publish this node''s clock to its peers (run periodically; bounds the tombstone GC horizon)';

CREATE FUNCTION topgun.mesh_enable() RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'topgun_mesh') THEN
    -- Deletes and truncates are never published: deletions follow from
    -- tombstones (OR records) or are node-local GC.
    CREATE PUBLICATION topgun_mesh
      FOR TABLE topgun.maps, topgun.lww, topgun.ormap, topgun.or_tags, topgun.counters, topgun.node_clock
      WITH (publish = 'insert, update');
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
              WHERE tgrelid = 'topgun.lww'::regclass AND tgname = 'lww_reinsert' AND tgenabled <> 'A') THEN
    ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER lww_reinsert;
  END IF;
  PERFORM topgun.mesh_heartbeat();
END $$;
COMMENT ON FUNCTION topgun.mesh_enable() IS
  'Create the topgun_mesh publication of the CRDT tables (idempotent; add_peer calls it on both nodes)';

CREATE FUNCTION topgun._slot_name(node text) RETURNS name LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT ('topgun_' || left(pg_catalog.regexp_replace(pg_catalog.lower($1), '[^a-z0-9_]', '_', 'g'), 40)
          || '_' || left(pg_catalog.md5($1), 8))::name
$$;
COMMENT ON FUNCTION topgun._slot_name(text) IS 'Replication slot a subscriber with this node id uses on its peers';

CREATE FUNCTION topgun.add_peer(name text, conninfo text, copy_data boolean DEFAULT true)
  RETURNS text LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  me text := topgun.node_id();
  peer_node text;
  sub name;
  slot name := topgun._slot_name(topgun.node_id());
BEGIN
  IF name IS NULL OR name !~ '^[a-z0-9_]{1,40}$' THEN
    RAISE EXCEPTION 'invalid peer name "%"', name USING ERRCODE = 'invalid_parameter_value',
      DETAIL = 'A peer name is 1..40 characters from [a-z0-9_].';
  END IF;
  IF conninfo IS NULL THEN
    RAISE EXCEPTION 'conninfo must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF EXISTS (SELECT 1 FROM topgun.peers p WHERE p.name = add_peer.name) THEN
    RAISE EXCEPTION 'peer "%" already exists', name USING ERRCODE = 'duplicate_object';
  END IF;
  peer_node := topgun._peer_exec(conninfo, 'SELECT topgun.node_id()');
  IF peer_node = me THEN
    RAISE EXCEPTION 'peer "%" has the same node id "%" as this node', name, me
      USING ERRCODE = 'duplicate_object',
            HINT = 'Every node needs its own topgun.node_id; timestamps of two nodes with one id are indistinguishable.';
  END IF;
  IF EXISTS (SELECT 1 FROM topgun.peers p WHERE p.node_id = peer_node) THEN
    RAISE EXCEPTION 'node "%" is already a peer (as "%")', peer_node,
      (SELECT p.name FROM topgun.peers p WHERE p.node_id = peer_node) USING ERRCODE = 'duplicate_object';
  END IF;
  PERFORM topgun.mesh_enable();
  PERFORM topgun._peer_exec(conninfo, 'SELECT ''ok'' FROM topgun.mesh_enable()');
  sub := ('topgun_' || name)::name;
  -- CREATE SUBSCRIPTION may not create the slot inside a transaction (this
  -- function), so the slot is made on the peer first, the way CREATE
  -- SUBSCRIPTION itself would; if anything below fails it is dropped again.
  PERFORM topgun._peer_exec(conninfo,
    format('SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot(%L, %L)', slot, 'pgoutput'));
  BEGIN
    EXECUTE format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION topgun_mesh '
                   'WITH (create_slot = false, slot_name = %L, copy_data = %s)',
                   sub, conninfo, slot, CASE WHEN copy_data THEN 'true' ELSE 'false' END);
    INSERT INTO topgun.peers (name, node_id, conninfo, subscription, slot_name)
         VALUES (add_peer.name, peer_node, conninfo, sub, slot);
  EXCEPTION WHEN OTHERS THEN
    PERFORM topgun._peer_exec(conninfo, format('SELECT ''dropped'' FROM pg_catalog.pg_drop_replication_slot(%L)', slot));
    RAISE;
  END;
  RETURN peer_node;
END
$$;
COMMENT ON FUNCTION topgun.add_peer(text, text, boolean) IS
  'Subscribe to a peer''s CRDT tables (copy_data: merge its existing rows first); returns the peer''s node id';

CREATE FUNCTION topgun.remove_peer(name text) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  p topgun.peers;
  their_slot name;
  pid integer;
  i integer := 0;
BEGIN
  SELECT * INTO p FROM topgun.peers WHERE peers.name = remove_peer.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'peer "%" does not exist', name USING ERRCODE = 'undefined_object';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.subname = p.subscription) THEN
    -- Detached from its slot so that DROP SUBSCRIPTION may run in a
    -- transaction; the peer drops that slot in its own remove_peer().
    EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', p.subscription);
    EXECUTE format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', p.subscription);
    EXECUTE format('DROP SUBSCRIPTION %I', p.subscription);
  END IF;
  -- The slot the peer's own subscription streams from on this node.
  their_slot := topgun._slot_name(p.node_id);
  LOOP
    SELECT s.active_pid INTO pid FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = their_slot;
    EXIT WHEN NOT FOUND;
    IF pid IS NULL THEN
      PERFORM pg_catalog.pg_drop_replication_slot(their_slot);
      EXIT;
    END IF;
    IF i >= 100 THEN
      RAISE EXCEPTION 'replication slot "%" is still in use by process %', their_slot, pid
        USING ERRCODE = 'object_in_use', HINT = 'Run topgun.remove_peer() on the peer first.';
    END IF;
    PERFORM pg_catalog.pg_terminate_backend(pid);
    PERFORM pg_catalog.pg_sleep(0.1);
    i := i + 1;
  END LOOP;
  DELETE FROM topgun.node_clock c WHERE c.node = p.node_id;
  DELETE FROM topgun.peers WHERE peers.name = remove_peer.name;
END $$;
COMMENT ON FUNCTION topgun.remove_peer(text) IS
  'Stop replicating from a peer and drop the slot it streams from here (run on both nodes)';

CREATE VIEW topgun.mesh_status AS
  SELECT p.name, p.node_id, p.subscription, s.subenabled AS enabled,
         st.pid IS NOT NULL AS streaming, st.latest_end_lsn AS received_lsn,
         st.last_msg_receipt_time,
         (SELECT count(*) FROM pg_catalog.pg_subscription_rel r
           WHERE r.srsubid = s.oid AND r.srsubstate <> 'r') AS tables_syncing,
         c.ts AS peer_heartbeat,
         ls.active AS peer_streams_from_here,
         pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), ls.confirmed_flush_lsn) AS peer_lag_bytes
    FROM topgun.peers p
    LEFT JOIN pg_catalog.pg_subscription s ON s.subname = p.subscription
    LEFT JOIN pg_catalog.pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL
    LEFT JOIN topgun.node_clock c ON c.node = p.node_id
    LEFT JOIN pg_catalog.pg_replication_slots ls ON ls.slot_name = topgun._slot_name(p.node_id);
COMMENT ON VIEW topgun.mesh_status IS
  'One row per peer: subscription state, tables still copying, last heartbeat, how far it lags behind this node';
REVOKE ALL ON topgun.mesh_status FROM PUBLIC;

------------------------------------------------------------------------------
-- Tombstone GC that is safe across nodes
------------------------------------------------------------------------------
CREATE FUNCTION topgun.gc_horizon(older_than interval DEFAULT '30 days') RETURNS bigint
  LANGUAGE sql STABLE AS $$
  -- NULL while some peer's heartbeat has not reached this node yet.
  SELECT CASE WHEN EXISTS (SELECT 1 FROM topgun.peers p
                            WHERE NOT EXISTS (SELECT 1 FROM topgun.node_clock c WHERE c.node = p.node_id))
              THEN NULL
              ELSE LEAST(topgun.now_ms(),
                         (SELECT min(topgun.hlc_millis(c.ts)) FROM topgun.node_clock c
                           WHERE c.node IN (SELECT p.node_id FROM topgun.peers p)))
                   - (extract(epoch FROM $1) * 1000)::bigint
         END
$$;
COMMENT ON FUNCTION topgun.gc_horizon(interval) IS
  'Unix ms below which tombstones may be pruned: older_than before the oldest peer heartbeat seen here (NULL: some peer never heard from)';

CREATE FUNCTION topgun.gc_tombstones(older_than interval DEFAULT '30 days',
                                     OUT lww_pruned bigint, OUT or_tags_pruned bigint, OUT horizon_ms bigint)
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF older_than IS NULL OR older_than < interval '0' THEN
    RAISE EXCEPTION 'older_than must be a non-negative interval' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  horizon_ms := topgun.gc_horizon(older_than);
  lww_pruned := 0;
  or_tags_pruned := 0;
  IF horizon_ms IS NULL THEN
    RAISE NOTICE 'no tombstones pruned: not every peer''s heartbeat has reached this node'
      USING HINT = 'Run topgun.mesh_heartbeat() on every node.';
    RETURN;
  END IF;
  DELETE FROM topgun.lww l
   WHERE l.value IS NULL AND l.ts OPERATOR(topgun.<) topgun.hlc(horizon_ms, 0, '');
  GET DIAGNOSTICS lww_pruned = ROW_COUNT;
  -- Tags are HLC strings; tags that do not parse are never pruned (as TopGun).
  DELETE FROM topgun.or_tags t
   WHERE t.removed_at IS NOT NULL
     AND t.tag ~ '^[0-9]{1,16}:[0-9]{1,16}:'
     AND split_part(t.tag, ':', 1)::bigint < horizon_ms;
  GET DIAGNOSTICS or_tags_pruned = ROW_COUNT;
END $$;
COMMENT ON FUNCTION topgun.gc_tombstones(interval) IS
  'Delete LWW tombstones and OR tombstone tags older than gc_horizon(older_than); node-local, run on every node';
------------------------------------------------------------------------------
-- Privileges
--
-- The write functions run with the caller's rights (SECURITY INVOKER), so an
-- application role needs privileges on the storage tables, exactly as if it
-- wrote them with plain SQL.  topgun.grant_access() grants the set a role
-- needs; everything else stays with the extension owner.
------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA topgun TO PUBLIC;

CREATE FUNCTION topgun.grant_access(role name, read_only boolean DEFAULT false) RETURNS void
  LANGUAGE plpgsql VOLATILE STRICT
AS $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['maps', 'lww', 'ormap', 'or_tags', 'counters', 'merkle_nodes', 'or_keys'] LOOP
    EXECUTE format('GRANT SELECT ON topgun.%I TO %I', t, role);
    IF NOT read_only THEN
      EXECUTE format('GRANT INSERT, UPDATE, DELETE ON topgun.%I TO %I', t, role);
    END IF;
  END LOOP;
  FOREACH t IN ARRAY ARRAY['lww_entries', 'or_entries', 'or_tombstones'] LOOP
    EXECUTE format('GRANT SELECT ON topgun.%I TO %I', t, role);
  END LOOP;
END
$$;
COMMENT ON FUNCTION topgun.grant_access(name, boolean) IS
  'Grant a role what it needs to read (and unless read_only, write) CRDT state with the topgun functions';
REVOKE ALL ON FUNCTION topgun.grant_access(name, boolean) FROM PUBLIC;
------------------------------------------------------------------------------
-- TTL expiry (TopGun's server GC, PROTOCOL.md 5.1/5.2): an expired LWW record
-- becomes a tombstone stamped at its expiration time; an expired OR record's
-- tag is tombstoned.  Like every write, it updates the Merkle trees and the
-- change feed, so connected clients learn about it.
------------------------------------------------------------------------------
CREATE INDEX lww_expiry_idx ON topgun.lww (expires_ms) WHERE expires_ms IS NOT NULL;
CREATE INDEX ormap_expiry_idx ON topgun.ormap (expires_ms) WHERE expires_ms IS NOT NULL;

CREATE FUNCTION topgun.expire_ttl(max_rows integer DEFAULT 10000) RETURNS integer
  LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  r record;
  n integer := 0;
  now_ms bigint := topgun.now_ms();
BEGIN
  IF max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'max_rows must be a positive integer' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR r IN SELECT l.map, l.key, l.expires_ms AS expired_at
             FROM topgun.lww l
            WHERE l.expires_ms IS NOT NULL AND l.expires_ms < now_ms
            ORDER BY l.expires_ms
            LIMIT max_rows LOOP
    IF topgun.lww_remove(r.map, r.key, topgun.hlc(r.expired_at, 0, topgun.node_id())) THEN
      n := n + 1;
    END IF;
  END LOOP;
  FOR r IN SELECT o.map, o.tag FROM topgun.ormap o
            WHERE o.expires_ms IS NOT NULL AND o.expires_ms < now_ms
            ORDER BY o.expires_ms
            LIMIT greatest(max_rows - n, 0) LOOP
    IF topgun.or_remove_tag(r.map, r.tag) THEN
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n;
END
$$;
COMMENT ON FUNCTION topgun.expire_ttl(integer) IS
  'Turn up to max_rows expired records into tombstones (LWW: stamped at the expiration time; OR: tag tombstoned); returns how many';
------------------------------------------------------------------------------
-- Sync server (background worker) observability
------------------------------------------------------------------------------
CREATE FUNCTION topgun.connections(
    OUT id bigint, OUT remote_addr text, OUT user_id text, OUT authenticated boolean,
    OUT connected_since timestamptz, OUT messages_in bigint, OUT messages_out bigint,
    OUT bytes_in bigint, OUT bytes_out bigint, OUT pending_out_bytes bigint,
    OUT subscriptions integer, OUT slot integer, OUT queries integer, OUT topics integer,
    OUT counters integer, OUT limit_hits bigint, OUT access_denied bigint)
  RETURNS SETOF record LANGUAGE C VOLATILE STRICT
  AS 'MODULE_PATHNAME', 'tg_connections';
COMMENT ON FUNCTION topgun.connections() IS
  'One row per live WebSocket connection of the sync server (superuser / pg_monitor)';

CREATE VIEW topgun.connections AS SELECT * FROM topgun.connections();
COMMENT ON VIEW topgun.connections IS
  'Live WebSocket connections of the sync server: address, JWT user, traffic counters, pending outbound bytes';

CREATE FUNCTION topgun.worker_stats(OUT name text, OUT value bigint)
  RETURNS SETOF record LANGUAGE C VOLATILE STRICT
  AS 'MODULE_PATHNAME', 'tg_worker_stats';
COMMENT ON FUNCTION topgun.worker_stats() IS
  'Counters of the sync server since the cluster started';

CREATE VIEW topgun.worker_stats AS SELECT * FROM topgun.worker_stats();
COMMENT ON VIEW topgun.worker_stats IS
  'Counters of the sync server: connections, auth, messages, ops, commits, acks, wake-up latency';

CREATE FUNCTION topgun.worker_pid() RETURNS integer LANGUAGE C VOLATILE
  AS 'MODULE_PATHNAME', 'tg_worker_pid';
COMMENT ON FUNCTION topgun.worker_pid() IS 'Process id of the sync server worker, NULL if not running';

CREATE FUNCTION topgun.worker_wake() RETURNS boolean LANGUAGE C VOLATILE
  AS 'MODULE_PATHNAME', 'tg_worker_wake';
COMMENT ON FUNCTION topgun.worker_wake() IS
  'Send the sync server its wake-up signal (SIGUSR2); used to measure wake-up latency';

-- Connection rows expose other users' identities and addresses.
REVOKE ALL ON FUNCTION topgun.connections() FROM PUBLIC;
REVOKE ALL ON topgun.connections FROM PUBLIC;
GRANT EXECUTE ON FUNCTION topgun.connections() TO pg_monitor;
GRANT SELECT ON topgun.connections TO pg_monitor;
REVOKE ALL ON FUNCTION topgun.worker_wake() FROM PUBLIC;
------------------------------------------------------------------------------
-- Live data: access-control policies and durable topic queues of the sync
-- server (docs/access-control.md, docs/live.md)
------------------------------------------------------------------------------
CREATE TABLE topgun.policies (
  id         serial PRIMARY KEY,
  role       text NOT NULL,
  pattern    text NOT NULL CHECK (length(pattern) BETWEEN 1 AND 512),
  actions    text[] NOT NULL
             CHECK (cardinality(actions) > 0 AND actions <@ ARRAY['READ', 'PUT', 'REMOVE', 'ALL']),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE topgun.policies IS
  'Sync-server permissions: a token role may do actions on maps / topic:<name> / counter:<name> matching pattern (* wildcard, {userId} substitution). Empty table = everything allowed.';
SELECT pg_catalog.pg_extension_config_dump('topgun.policies', '');
SELECT pg_catalog.pg_extension_config_dump('topgun.policies_id_seq', '');

-- The worker reloads its copy in commit order, through the change feed.
CREATE FUNCTION topgun._policies_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM topgun.publish('topgun:policies-changed', NULL);
  RETURN NULL;
END
$$;
CREATE TRIGGER policies_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON topgun.policies
  FOR EACH STATEMENT EXECUTE FUNCTION topgun._policies_changed();

-- Durable topic subscribers: identity = token sub (or userId) + topic.  A
-- subscription stays registered after its connection closes (until
-- TOPIC_UNSUB); messages published while no connection of that identity is
-- subscribed wait in topgun.topic_queue (at most topgun.topic_queue_size per
-- identity, oldest dropped first) and are delivered in order on the next
-- TOPIC_SUB of that identity.
CREATE TABLE topgun.topic_subscriptions (
  subscriber text NOT NULL,
  topic      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen  timestamptz NOT NULL DEFAULT now(),
  dropped    bigint NOT NULL DEFAULT 0,      -- messages dropped because the queue was full
  last_drop_at timestamptz,
  PRIMARY KEY (subscriber, topic)
);
CREATE INDEX topic_subscriptions_topic_idx ON topgun.topic_subscriptions (topic);
COMMENT ON TABLE topgun.topic_subscriptions IS
  'Durable topic subscribers of the sync server (token sub + topic) and their queue drop counters';

CREATE TABLE topgun.topic_queue (
  id           bigserial PRIMARY KEY,
  subscriber   text NOT NULL,
  topic        text NOT NULL,
  data         jsonb,
  publisher    text,
  published_ms double precision NOT NULL
);
CREATE INDEX topic_queue_sub_idx ON topgun.topic_queue (subscriber, topic, id);
COMMENT ON TABLE topgun.topic_queue IS
  'Topic messages waiting for offline subscribers, delivered in id order on their next TOPIC_SUB';

CREATE VIEW topgun.topic_queues AS
  SELECT s.subscriber, s.topic, s.created_at, s.last_seen,
         (SELECT count(*) FROM topgun.topic_queue q
           WHERE q.subscriber = s.subscriber AND q.topic = s.topic) AS queued,
         s.dropped, s.last_drop_at
    FROM topgun.topic_subscriptions s;
COMMENT ON VIEW topgun.topic_queues IS
  'Per durable topic subscriber: messages waiting and messages dropped because the queue was full';

-- Called by the worker: queue a message for every durable subscriber of the
-- topic not in `online`, then trim each queue to queue_size (oldest first).
CREATE FUNCTION topgun._topic_enqueue(topic text, data jsonb, publisher text, published_ms double precision,
                                      online text[], queue_size integer,
                                      OUT queued integer, OUT dropped integer)
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r record;
  n integer;
BEGIN
  queued := 0;
  dropped := 0;
  FOR r IN SELECT s.subscriber FROM topgun.topic_subscriptions s
            WHERE s.topic = _topic_enqueue.topic AND s.subscriber <> ALL (online)
            ORDER BY s.subscriber
  LOOP
    IF queue_size > 0 THEN
      INSERT INTO topgun.topic_queue (subscriber, topic, data, publisher, published_ms)
      VALUES (r.subscriber, _topic_enqueue.topic, _topic_enqueue.data, _topic_enqueue.publisher,
              _topic_enqueue.published_ms);
      queued := queued + 1;
    END IF;
    DELETE FROM topgun.topic_queue q
     WHERE q.id IN (SELECT q2.id FROM topgun.topic_queue q2
                     WHERE q2.subscriber = r.subscriber AND q2.topic = _topic_enqueue.topic
                     ORDER BY q2.id DESC OFFSET greatest(queue_size, 0));
    GET DIAGNOSTICS n = ROW_COUNT;
    IF queue_size <= 0 THEN
      n := n + 1;                      -- nothing can be kept: this message is dropped too
    END IF;
    IF n > 0 THEN
      UPDATE topgun.topic_subscriptions s SET dropped = s.dropped + n, last_drop_at = now()
       WHERE s.subscriber = r.subscriber AND s.topic = _topic_enqueue.topic;
      dropped := dropped + n;
    END IF;
  END LOOP;
END
$$;

-- Called by the worker on TOPIC_SUB of an identified client: register the
-- durable subscription and hand over (and delete) its queued messages in order.
CREATE FUNCTION topgun._topic_subscribe(subscriber text, topic text)
  RETURNS TABLE (data jsonb, publisher text, published_ms double precision)
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO topgun.topic_subscriptions AS s (subscriber, topic)
  VALUES (_topic_subscribe.subscriber, _topic_subscribe.topic)
  ON CONFLICT ON CONSTRAINT topic_subscriptions_pkey DO UPDATE SET last_seen = now();
  RETURN QUERY
    WITH d AS (DELETE FROM topgun.topic_queue q
                WHERE q.subscriber = _topic_subscribe.subscriber AND q.topic = _topic_subscribe.topic
                RETURNING q.id, q.data, q.publisher, q.published_ms)
    SELECT d.data, d.publisher, d.published_ms FROM d ORDER BY d.id;
END
$$;

-- TOPIC_UNSUB: forget the durable subscription and its queue.  Returns
-- whether the topic still has durable subscribers.
CREATE FUNCTION topgun._topic_unsubscribe(subscriber text, topic text) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  DELETE FROM topgun.topic_queue q
   WHERE q.subscriber = _topic_unsubscribe.subscriber AND q.topic = _topic_unsubscribe.topic;
  DELETE FROM topgun.topic_subscriptions s
   WHERE s.subscriber = _topic_unsubscribe.subscriber AND s.topic = _topic_unsubscribe.topic;
  RETURN EXISTS (SELECT 1 FROM topgun.topic_subscriptions s WHERE s.topic = _topic_unsubscribe.topic);
END
$$;

-- Operators: forget durable subscribers not seen for a while (and their queues).
CREATE FUNCTION topgun.topic_purge(older_than interval) RETURNS integer
  LANGUAGE plpgsql VOLATILE STRICT AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM topgun.topic_queue q USING topgun.topic_subscriptions s
   WHERE q.subscriber = s.subscriber AND q.topic = s.topic AND s.last_seen < now() - older_than;
  DELETE FROM topgun.topic_subscriptions s WHERE s.last_seen < now() - older_than;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION topgun.topic_purge(interval) IS
  'Remove durable topic subscribers (and their queued messages) not seen within the interval';

REVOKE ALL ON FUNCTION topgun._topic_enqueue(text, jsonb, text, double precision, text[], integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._topic_subscribe(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._topic_unsubscribe(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.topic_purge(interval) FROM PUBLIC;
