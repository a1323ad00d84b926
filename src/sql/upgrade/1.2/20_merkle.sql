-- merkle (issue 12): a commit inserts its node deltas of a map as rows of
-- topgun.merkle_pending instead of updating every node row it touched; the
-- readers add the pending rows (src/merkle/pending_rows.c).  The roles that
-- may write merkle_nodes may write merkle_pending too.
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

CREATE OR REPLACE FUNCTION topgun._stored_leaf_hashes(map text) RETURNS TABLE (leaf int, hash bigint)
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
  GROUP BY s.leaf
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
     WHERE p.map = $1) s
  GROUP BY s.prefix
$$;

CREATE OR REPLACE FUNCTION topgun._truncate_trees() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'lww' THEN
    DELETE FROM topgun.merkle_nodes m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'lww');
    DELETE FROM topgun.merkle_pending m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'lww');
  ELSE
    DELETE FROM topgun.merkle_nodes m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'or');
    DELETE FROM topgun.merkle_pending m WHERE m.map IN (SELECT name FROM topgun.maps WHERE kind = 'or');
    DELETE FROM topgun.or_keys;
  END IF;
  RETURN NULL;
END $$;

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

CREATE OR REPLACE FUNCTION topgun.merkle_rebuild(map text) RETURNS void LANGUAGE plpgsql VOLATILE STRICT
AS $$
BEGIN
  DELETE FROM topgun.merkle_nodes m WHERE m.map = merkle_rebuild.map;
  DELETE FROM topgun.merkle_pending m WHERE m.map = merkle_rebuild.map;
  DELETE FROM topgun.or_keys k WHERE k.map = merkle_rebuild.map;
  INSERT INTO topgun.or_keys (map, leaf, key, entry_hash)
    SELECT merkle_rebuild.map, k.leaf, k.key, topgun._or_entry_hash(merkle_rebuild.map, k.key)
      FROM (SELECT DISTINCT o.leaf, o.key FROM topgun.ormap o WHERE o.map = merkle_rebuild.map) k;
  -- one pass: every written node's 16 slots joined to the leaf hashes, grouped
  WITH r AS (SELECT * FROM topgun._leaf_hashes_from_rows(merkle_rebuild.map))
  INSERT INTO topgun.merkle_nodes (map, prefix, hash, leaves)
    SELECT merkle_rebuild.map, p.prefix, sum(r.hash) % 4294967296, array_agg(r.hash ORDER BY g)
      FROM (SELECT DISTINCT r.leaf >> 4 AS prefix FROM r) p
     CROSS JOIN pg_catalog.generate_series(0, 15) AS g
      LEFT JOIN r ON r.leaf = p.prefix * 16 + g
     GROUP BY p.prefix;
END
$$;

DO $$
DECLARE
  g record;
BEGIN
  FOR g IN SELECT grantee, privilege_type FROM information_schema.role_table_grants
            WHERE table_schema = 'topgun' AND table_name = 'merkle_nodes'
              AND privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE') AND grantee <> current_user LOOP
    EXECUTE format('GRANT %s ON topgun.merkle_pending TO %I', g.privilege_type, g.grantee);
  END LOOP;
END
$$;
