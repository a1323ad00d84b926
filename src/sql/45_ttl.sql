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
