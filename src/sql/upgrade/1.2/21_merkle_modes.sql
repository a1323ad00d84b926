-- merkle (issue 12): maps with at most topgun.merkle_small_map_entries
-- entries keep no stored tree; their hashes are computed from their rows
-- when read (src/merkle/modes.c).  Every map that has a tree today keeps it.
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
  WHERE topgun._merkle_stored($1)
  GROUP BY s.leaf
  UNION ALL
  SELECT r.leaf, r.hash FROM topgun._leaf_hashes_now($1, 0, 4095) r WHERE NOT topgun._merkle_stored($1)
$$;

CREATE OR REPLACE FUNCTION topgun._stored_node_hashes(map text) RETURNS TABLE (prefix int, hash bigint)
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

CREATE OR REPLACE FUNCTION topgun._truncate_trees() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION topgun.merkle_rebuild(map text) RETURNS void LANGUAGE plpgsql VOLATILE STRICT
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

INSERT INTO topgun.merkle_maps (map, entries, stored)
  SELECT DISTINCT n.map, 0, true FROM topgun.merkle_nodes n
  UNION
  SELECT DISTINCT p.map, 0, true FROM topgun.merkle_pending p;

DO $$
DECLARE
  g record;
BEGIN
  FOR g IN SELECT grantee, privilege_type FROM information_schema.role_table_grants
            WHERE table_schema = 'topgun' AND table_name = 'merkle_nodes'
              AND privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE') AND grantee <> current_user LOOP
    EXECUTE format('GRANT %s ON topgun.merkle_maps TO %I', g.privilege_type, g.grantee);
  END LOOP;
END
$$;
