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
-- The merge itself (src/core/lww_merge.c) without a client write's checks:
-- replication apply merges records that another node already accepted.
CREATE FUNCTION topgun._lww_merge(map text, key text, value jsonb, ts topgun.hlc, ttl_ms bigint)
  RETURNS boolean AS 'MODULE_PATHNAME', 'tg_lww_merge_sql' LANGUAGE C VOLATILE;

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

-- The OR-map upsert: a tag's record is replaced only by a newer timestamp.
-- The caller has claimed the tag (topgun._or_claim_tag) and found it live.
-- Used by or_apply and by replication apply (_repl_ormap).
CREATE FUNCTION topgun._or_upsert(map text, key text, tag text, value jsonb, ts topgun.hlc, ttl_ms bigint)
  RETURNS boolean LANGUAGE sql VOLATILE
AS $$
  WITH w AS (
    INSERT INTO topgun.ormap AS o (map, key, tag, value, ts, ttl_ms) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT ON CONSTRAINT ormap_pkey DO UPDATE
       SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms
     WHERE o.ts OPERATOR(topgun.<) excluded.ts
    RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM w)
$$;

CREATE FUNCTION topgun.or_apply(map text, key text, value jsonb, tag text, ts topgun.hlc,
                                ttl_ms bigint DEFAULT NULL)
  RETURNS boolean LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
  PERFORM topgun._check_write('or', map, key, value, ts, ttl_ms);
  PERFORM topgun._check_tag(tag);
  IF topgun._or_claim_tag(map, tag) THEN
    RETURN false;                      -- tombstoned: an add can never resurrect it
  END IF;
  RETURN topgun._or_upsert(map, key, tag, value, ts, ttl_ms);
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

-- (_or_tombstone, or_remove_tag, _or_merge_key, or_merge_key: src/sql/11_or_merge.sql)

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
