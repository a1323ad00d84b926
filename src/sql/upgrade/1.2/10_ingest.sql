-- ingest (issues 11, 12): one LWW merge (_lww_merge) and one OR upsert (_or_upsert)
-- shared by the write paths and replication apply; linear Merkle rebuild;
-- flush cost counters.
CREATE FUNCTION topgun._lww_merge(map text, key text, value jsonb, ts topgun.hlc, ttl_ms bigint)
  RETURNS boolean AS 'MODULE_PATHNAME', 'tg_lww_merge_sql' LANGUAGE C VOLATILE;

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

CREATE OR REPLACE FUNCTION topgun.or_apply(map text, key text, value jsonb, tag text, ts topgun.hlc,
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

CREATE OR REPLACE FUNCTION topgun._repl_lww() RETURNS trigger LANGUAGE plpgsql AS $$
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
  PERFORM topgun._lww_merge(NEW.map, NEW.key, NEW.value, NEW.ts, NEW.ttl_ms);
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION topgun._repl_ormap() RETURNS trigger LANGUAGE plpgsql AS $$
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
  PERFORM topgun._or_upsert(NEW.map, NEW.key, NEW.tag, NEW.value, NEW.ts, NEW.ttl_ms);
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION topgun.merkle_rebuild(map text) RETURNS void LANGUAGE plpgsql VOLATILE STRICT
AS $$
BEGIN
  DELETE FROM topgun.merkle_nodes m WHERE m.map = merkle_rebuild.map;
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

CREATE FUNCTION topgun.merkle_flush_stats(OUT flushes bigint, OUT nodes bigint, OUT or_keys bigint,
                                          OUT flush_cpu_ms double precision)
  AS 'MODULE_PATHNAME', 'tg_merkle_flush_stats' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.merkle_flush_stats() IS
  'Cumulative cost of the Merkle pre-commit flush in all backends since the server started (benchmarks)';
