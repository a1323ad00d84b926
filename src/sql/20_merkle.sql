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

-- A commit's node deltas of a map, not yet added to merkle_nodes: a commit
-- inserts one row per map it wrote (a few for many nodes) instead of updating
-- every node row it touched; the backend that wrote topgun.merkle_fold_rows of
-- them folds them (src/merkle/pending_rows.c).  The tree of a map is its node
-- rows plus its pending rows, read in one statement.
CREATE TABLE topgun.merkle_pending (
  map    text NOT NULL,
  deltas bytea NOT NULL   -- records: node prefix, touched leaves, their deltas (src/merkle/delta_codec.h)
);
CREATE INDEX merkle_pending_map ON topgun.merkle_pending (map);
COMMENT ON TABLE topgun.merkle_pending IS 'Merkle leaf deltas of recent commits, per map, not yet folded into merkle_nodes';

CREATE FUNCTION topgun._merkle_pending_leaves(deltas bytea) RETURNS TABLE (prefix int, slot int, delta bigint)
  AS 'MODULE_PATHNAME', 'tg_merkle_pending_leaves' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.merkle_fold(map text) RETURNS void
  AS 'MODULE_PATHNAME', 'tg_merkle_fold' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION topgun.merkle_fold(text) IS
  'Fold the map''s pending Merkle delta rows into its node rows when the calling transaction commits';

-- Which maps keep a stored tree (src/merkle/modes.c).  A map with at most
-- topgun.merkle_small_map_entries entries keeps none: its hashes are computed
-- from its rows when read, and its commits count its entries here instead of
-- writing node rows.  The commit that takes it past the limit builds its
-- tree (stored = true) and the map keeps it for good.  No row: no tree, no
-- entries counted yet.
CREATE TABLE topgun.merkle_maps (
  map     text PRIMARY KEY,
  entries bigint NOT NULL,  -- while stored is false: records (LWW) or live keys (OR); < 0 for rows never counted
  stored  boolean NOT NULL
);
COMMENT ON TABLE topgun.merkle_maps IS 'Maps that keep a stored Merkle tree, and the entry counts of the maps that do not yet';

-- Whether the map keeps a stored tree (merkle_nodes + merkle_pending).
CREATE FUNCTION topgun._merkle_stored(map text) RETURNS boolean LANGUAGE sql STABLE STRICT
AS $$ SELECT EXISTS (SELECT 1 FROM topgun.merkle_maps m WHERE m.map = $1 AND m.stored) $$;

-- Leaf hashes of leaves lo..hi from the rows as they are now: LWW item
-- hashes and the OR keys' entry hashes kept in topgun.or_keys
-- (src/merkle/from_rows.c).
CREATE FUNCTION topgun._leaf_hashes_now(map text, lo int, hi int) RETURNS TABLE (leaf int, hash bigint)
  AS 'MODULE_PATHNAME', 'tg_merkle_leaf_hashes_now' LANGUAGE C STABLE STRICT;

-- A map's node rows from its rows, in place of its node and pending rows.
CREATE FUNCTION topgun._merkle_build_nodes(map text) RETURNS void LANGUAGE sql VOLATILE STRICT
AS $$
  DELETE FROM topgun.merkle_nodes m WHERE m.map = $1;
  DELETE FROM topgun.merkle_pending m WHERE m.map = $1;
  WITH r AS (SELECT * FROM topgun._leaf_hashes_now($1, 0, 4095))
  INSERT INTO topgun.merkle_nodes (map, prefix, hash, leaves)
    SELECT $1, p.prefix, sum(r.hash) % 4294967296, array_agg(r.hash ORDER BY g)
      FROM (SELECT DISTINCT r.leaf >> 4 AS prefix FROM r) p
     CROSS JOIN pg_catalog.generate_series(0, 15) AS g
      LEFT JOIN r ON r.leaf = p.prefix * 16 + g
     GROUP BY p.prefix
$$;

CREATE FUNCTION topgun._merkle_mode_lock(map text) RETURNS int
  AS 'MODULE_PATHNAME', 'tg_merkle_mode_lock' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION topgun._merkle_modes_forget() RETURNS void
  AS 'MODULE_PATHNAME', 'tg_merkle_modes_forget' LANGUAGE C VOLATILE;

-- Every leaf that was ever written, with its hash (a map without a stored
-- tree: every leaf with an entry).
CREATE FUNCTION topgun._stored_leaf_hashes(map text) RETURNS TABLE (leaf int, hash bigint)
  LANGUAGE sql STABLE STRICT
AS $$
  SELECT s.leaf, (sum(s.h) % 4294967296)::bigint FROM (
    SELECT n.prefix * 16 + (u.o - 1)::int AS leaf, u.h
      FROM topgun.merkle_nodes n, pg_catalog.unnest(n.leaves) WITH ORDINALITY AS u(h, o)
     WHERE n.map = $1 AND u.h IS NOT NULL
    UNION ALL
    SELECT d.prefix * 16 + d.slot, d.delta
      FROM topgun.merkle_pending p, topgun._merkle_pending_leaves(p.deltas) d
     WHERE p.map = $1) s
  WHERE topgun._merkle_stored($1)
  GROUP BY s.leaf
  UNION ALL
  SELECT r.leaf, r.hash FROM topgun._leaf_hashes_now($1, 0, 4095) r WHERE NOT topgun._merkle_stored($1)
$$;

-- Every depth-2 node that was ever written, with its hash.
CREATE FUNCTION topgun._stored_node_hashes(map text) RETURNS TABLE (prefix int, hash bigint)
  LANGUAGE sql STABLE STRICT
AS $$
  SELECT s.prefix, (sum(s.h) % 4294967296)::bigint FROM (
    SELECT n.prefix::int AS prefix, n.hash AS h FROM topgun.merkle_nodes n WHERE n.map = $1
    UNION ALL
    SELECT d.prefix, d.delta
      FROM topgun.merkle_pending p, topgun._merkle_pending_leaves(p.deltas) d
     WHERE p.map = $1
    UNION ALL
    SELECT r.leaf >> 4, r.hash FROM topgun._leaf_hashes_now($1, 0, 4095) r WHERE NOT topgun._merkle_stored($1)) s
  GROUP BY s.prefix
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
    DELETE FROM topgun.merkle_pending m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'lww');
    DELETE FROM topgun.merkle_maps m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'lww');
  ELSE
    DELETE FROM topgun.merkle_nodes m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'or');
    DELETE FROM topgun.merkle_pending m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'or');
    DELETE FROM topgun.merkle_maps m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'or');
    DELETE FROM topgun.or_keys;
  END IF;
  -- the maps lost their trees: every backend reads the modes again after the commit
  PERFORM topgun._merkle_modes_forget();
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
      FULL JOIN topgun._stored_node_hashes(map) b
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
DECLARE
  small int;
  n bigint;
BEGIN
  -- no commit of the map drops a delta while its tree is rebuilt (src/merkle/modes.c)
  small := topgun._merkle_mode_lock(map);
  DELETE FROM topgun.or_keys k WHERE k.map = merkle_rebuild.map;
  INSERT INTO topgun.or_keys (map, leaf, key, entry_hash)
    SELECT merkle_rebuild.map, k.leaf, k.key, topgun._or_entry_hash(merkle_rebuild.map, k.key)
      FROM (SELECT DISTINCT o.leaf, o.key FROM topgun.ormap o WHERE o.map = merkle_rebuild.map) k;
  n := (SELECT count(*) FROM topgun.lww l WHERE l.map = merkle_rebuild.map)
     + (SELECT count(*) FROM topgun.or_keys k WHERE k.map = merkle_rebuild.map);
  -- a map that keeps a tree keeps it; a small one stays without, its count corrected
  IF n > small OR topgun._merkle_stored(map) THEN
    PERFORM topgun._merkle_build_nodes(map);  -- replaces the node and pending rows
    INSERT INTO topgun.merkle_maps AS m (map, entries, stored) VALUES (merkle_rebuild.map, 0, true)
      ON CONFLICT ON CONSTRAINT merkle_maps_pkey DO UPDATE SET entries = 0, stored = true;
  ELSE
    DELETE FROM topgun.merkle_nodes m WHERE m.map = merkle_rebuild.map;
    DELETE FROM topgun.merkle_pending m WHERE m.map = merkle_rebuild.map;
    INSERT INTO topgun.merkle_maps AS m (map, entries, stored) VALUES (merkle_rebuild.map, n, false)
      ON CONFLICT ON CONSTRAINT merkle_maps_pkey DO UPDATE SET entries = excluded.entries, stored = false;
  END IF;
END
$$;
COMMENT ON FUNCTION topgun.merkle_rebuild(text) IS 'Recompute a map''s Merkle tree from its rows (operators; after restores)';

CREATE FUNCTION topgun.merkle_flush_stats(OUT flushes bigint, OUT nodes bigint, OUT or_keys bigint,
                                          OUT flush_cpu_ms double precision)
  AS 'MODULE_PATHNAME', 'tg_merkle_flush_stats' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.merkle_flush_stats() IS
  'Cumulative cost of the Merkle pre-commit flush in all backends since the server started (benchmarks)';
