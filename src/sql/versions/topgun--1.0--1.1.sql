-- topgun 1.0 -> 1.1 (ALTER EXTENSION topgun UPDATE).
--
-- 1.1 changes the storage layout for write throughput (docs/worker.md,
-- "What got it there"):
--   * topgun.lww / topgun.ormap get expires_ms, kept by a C BEFORE trigger
--     that also enforces ttl_ms > 0; the TTL indexes move onto expires_ms (no
--     index mentions ts or value any more, so overwrites can be HOT) and the
--     CHECK (ttl_ms > 0) constraints go; lww gets fillfactor 80.
--   * topgun.merkle_nodes keeps one row per depth-2 node with its 16 leaves
--     in an array instead of one row per leaf and per node.
-- Install the 1.1 library first: the 1.1 library cannot write a 1.0 tree,
-- so writes fail until this script has run.  It rewrites each record that has
-- a TTL once (to fill expires_ms): those rows go through the usual triggers,
-- so subscribers may see one event carrying the unchanged record.
\echo Use "ALTER EXTENSION topgun UPDATE TO '1.1'" to load this file. \quit

------------------------------------------------------------------------------
-- TTL: expires_ms
------------------------------------------------------------------------------
ALTER TABLE topgun.lww ADD COLUMN expires_ms bigint;
ALTER TABLE topgun.ormap ADD COLUMN expires_ms bigint;
ALTER TABLE topgun.lww DROP CONSTRAINT lww_ttl_ms_check;
ALTER TABLE topgun.ormap DROP CONSTRAINT ormap_ttl_ms_check;
ALTER TABLE topgun.lww SET (fillfactor = 80);

CREATE FUNCTION topgun._fill_expiry() RETURNS trigger AS 'MODULE_PATHNAME', 'tg_fill_expiry' LANGUAGE C;
CREATE TRIGGER lww_expiry BEFORE INSERT OR UPDATE OF value, ts, ttl_ms, expires_ms ON topgun.lww
  FOR EACH ROW EXECUTE FUNCTION topgun._fill_expiry();
CREATE TRIGGER ormap_expiry BEFORE INSERT OR UPDATE OF value, ts, ttl_ms, expires_ms ON topgun.ormap
  FOR EACH ROW EXECUTE FUNCTION topgun._fill_expiry();
ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER lww_expiry;
ALTER TABLE topgun.ormap ENABLE ALWAYS TRIGGER ormap_expiry;

-- fill expires_ms of the existing records with a TTL (the trigger computes it)
UPDATE topgun.lww SET expires_ms = NULL WHERE ttl_ms IS NOT NULL AND value IS NOT NULL;
UPDATE topgun.ormap SET expires_ms = NULL WHERE ttl_ms IS NOT NULL;

DROP INDEX topgun.lww_expiry_idx;
DROP INDEX topgun.ormap_expiry_idx;
CREATE INDEX lww_expiry_idx ON topgun.lww (expires_ms) WHERE expires_ms IS NOT NULL;
CREATE INDEX ormap_expiry_idx ON topgun.ormap (expires_ms) WHERE expires_ms IS NOT NULL;

CREATE OR REPLACE FUNCTION topgun.expire_ttl(max_rows integer DEFAULT 10000) RETURNS integer
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

------------------------------------------------------------------------------
-- Merkle: one row per depth-2 node, its leaves in an array
------------------------------------------------------------------------------
CREATE FUNCTION topgun._merkle_leaves_add(old bigint[], delta bigint[]) RETURNS bigint[]
  AS 'MODULE_PATHNAME', 'tg_merkle_leaves_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- A leaf row that exists keeps existing (a 0 hash stays 0, not NULL).
ALTER TABLE topgun.merkle_nodes ADD COLUMN leaves bigint[];
UPDATE topgun.merkle_nodes n
   SET leaves = ARRAY(SELECT l.hash FROM pg_catalog.generate_series(0, 15) AS g
                        LEFT JOIN topgun.merkle_nodes l
                          ON l.map = n.map AND l.level = 3 AND l.prefix = n.prefix * 16 + g
                       ORDER BY g)
 WHERE n.level = 2;
DELETE FROM topgun.merkle_nodes WHERE level = 3;
ALTER TABLE topgun.merkle_nodes
  DROP CONSTRAINT merkle_nodes_pkey,
  DROP COLUMN level,
  ALTER COLUMN leaves SET NOT NULL,
  ADD CONSTRAINT merkle_nodes_prefix_check CHECK (prefix BETWEEN 0 AND 255),
  ADD CONSTRAINT merkle_nodes_leaves_check CHECK (pg_catalog.cardinality(leaves) = 16),
  ADD PRIMARY KEY (map, prefix),
  SET (fillfactor = 50);
COMMENT ON TABLE topgun.merkle_nodes IS 'Merkle depth-2 node and leaf hashes per map, maintained at commit by the storage triggers';

-- Every leaf that was ever written, with its hash.
CREATE FUNCTION topgun._stored_leaf_hashes(map text) RETURNS TABLE (leaf int, hash bigint)
  LANGUAGE sql STABLE STRICT
AS $$
  SELECT n.prefix * 16 + (u.o - 1)::int, u.h
    FROM topgun.merkle_nodes n, pg_catalog.unnest(n.leaves) WITH ORDINALITY AS u(h, o)
   WHERE n.map = $1 AND u.h IS NOT NULL
$$;

CREATE OR REPLACE FUNCTION topgun.merkle_verify(map text) RETURNS boolean LANGUAGE plpgsql STABLE STRICT
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

CREATE OR REPLACE FUNCTION topgun.merkle_rebuild(map text) RETURNS void LANGUAGE plpgsql VOLATILE STRICT
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
