------------------------------------------------------------------------------
-- The mesh's partition map for cluster-mode clients (PROTOCOL-ADDENDUM §A8,
-- docs/multi-node.md "Cluster-mode clients").
--
-- Every node's sync server advertises the WebSocket URL clients should dial
-- in its row of the replicated topgun.node_clock (column websocket), so every
-- node knows every peer's endpoint.  topgun.partition_map() lists this node
-- and its peers (topgun.peers) that advertise one: every node holds every
-- key, partition i is owned by the i mod n-th node (sorted by node id) with
-- the next one as backup, as the reference assigns them.  The map's version
-- (topgun.mesh_state, node-local) goes up whenever the member list or an
-- endpoint changes, so clients (which accept only a higher version) learn it.
------------------------------------------------------------------------------
ALTER TABLE topgun.node_clock ADD COLUMN websocket text;
COMMENT ON COLUMN topgun.node_clock.websocket IS
  'WebSocket URL the node''s sync server advertises to cluster-mode clients (topgun.advertise_url)';

-- The replica trigger: the newest timestamp wins, the endpoint travels with it.
CREATE OR REPLACE FUNCTION topgun._repl_node_clock() RETURNS trigger LANGUAGE plpgsql AS $$
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
  INSERT INTO topgun.node_clock AS c (node, ts, websocket) VALUES (NEW.node, NEW.ts, NEW.websocket)
  ON CONFLICT ON CONSTRAINT node_clock_pkey DO UPDATE SET ts = excluded.ts, websocket = excluded.websocket
   WHERE c.ts OPERATOR(topgun.<) excluded.ts;
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER node_clock_replica BEFORE INSERT OR UPDATE ON topgun.node_clock
  FOR EACH ROW EXECUTE FUNCTION topgun._repl_node_clock();
ALTER TABLE topgun.node_clock ENABLE REPLICA TRIGGER node_clock_replica;

CREATE TABLE topgun.mesh_state (
  id          boolean PRIMARY KEY DEFAULT true CHECK (id),
  map_version bigint NOT NULL DEFAULT 1
);
COMMENT ON TABLE topgun.mesh_state IS
  'Node-local: the version of the partition map this node hands to cluster-mode clients (no row: version 1)';
SELECT pg_catalog.pg_extension_config_dump('topgun.mesh_state', '');

-- A member joined or left, or an endpoint changed: a new map version.  This
-- node's own first advertisement is not a change (a single node keeps
-- version 1, as the reference).
CREATE FUNCTION topgun._mesh_map_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'node_clock' THEN
    IF TG_OP = 'UPDATE' AND OLD.websocket IS NOT DISTINCT FROM NEW.websocket THEN
      RETURN NULL;
    END IF;
    IF NEW.node = topgun.node_id() AND (TG_OP = 'INSERT' OR OLD.websocket IS NULL) THEN
      RETURN NULL;
    END IF;
  END IF;
  INSERT INTO topgun.mesh_state AS s (id, map_version) VALUES (true, 2)
  ON CONFLICT (id) DO UPDATE SET map_version = s.map_version + 1;
  RETURN NULL;
END $$;
CREATE TRIGGER mesh_map_nodes AFTER INSERT OR UPDATE ON topgun.node_clock
  FOR EACH ROW EXECUTE FUNCTION topgun._mesh_map_changed();
-- also when the apply worker writes a peer's row
ALTER TABLE topgun.node_clock ENABLE ALWAYS TRIGGER mesh_map_nodes;
CREATE TRIGGER mesh_map_peers AFTER INSERT OR DELETE ON topgun.peers
  FOR EACH ROW EXECUTE FUNCTION topgun._mesh_map_changed();

CREATE FUNCTION topgun._advertise_endpoint(url text) RETURNS void LANGUAGE sql VOLATILE STRICT AS $$
  INSERT INTO topgun.node_clock AS c (node, ts, websocket) VALUES (topgun.node_id(), topgun.hlc_now(), url)
  ON CONFLICT ON CONSTRAINT node_clock_pkey DO UPDATE SET ts = excluded.ts, websocket = excluded.websocket
   WHERE c.websocket IS DISTINCT FROM excluded.websocket
$$;
COMMENT ON FUNCTION topgun._advertise_endpoint(text) IS
  'Record the WebSocket URL of this node''s sync server (called by the sync server at start and on reload)';
REVOKE ALL ON FUNCTION topgun._advertise_endpoint(text) FROM PUBLIC;

-- The PARTITION_MAP payload (§A8.1) for a client holding current_version,
-- or NULL when that is already the newest (the reference sends nothing then).
-- self_url: this node's endpoint if it differs from the advertised one.
CREATE FUNCTION topgun.partition_map(current_version bigint DEFAULT 0, self_url text DEFAULT NULL)
  RETURNS jsonb LANGUAGE sql STABLE AS $$
  WITH members AS (
    SELECT c.node, c.websocket FROM topgun.node_clock c
     WHERE c.websocket IS NOT NULL AND c.node IN (SELECT p.node_id FROM topgun.peers p)
    UNION ALL
    SELECT topgun.node_id(),
           coalesce(self_url, (SELECT c.websocket FROM topgun.node_clock c WHERE c.node = topgun.node_id()))
  ), m AS (
    SELECT node, websocket, (row_number() OVER (ORDER BY node COLLATE "C") - 1)::int AS i, count(*) OVER ()::int AS n
      FROM members WHERE websocket IS NOT NULL
  )
  SELECT pg_catalog.jsonb_build_object(
           'version', v.version,
           'partitionCount', 271,
           'generatedAt', (extract(epoch FROM pg_catalog.clock_timestamp()) * 1000)::float8,
           'nodes', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                              'nodeId', m.node,
                              'endpoints', pg_catalog.jsonb_build_object('websocket', m.websocket),
                              'status', 'ACTIVE') ORDER BY m.i) FROM m),
           'partitions', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                   'partitionId', g,
                                   'ownerNodeId', o.node,
                                   'backupNodeIds', CASE WHEN o.n > 1 THEN pg_catalog.jsonb_build_array(b.node)
                                                         ELSE '[]'::jsonb END) ORDER BY g)
                            FROM pg_catalog.generate_series(0, 270) g
                            JOIN m o ON o.i = g % o.n
                            JOIN m b ON b.i = (g + 1) % b.n))
    FROM (SELECT coalesce((SELECT s.map_version FROM topgun.mesh_state s), 1) AS version) v
   WHERE coalesce(current_version, 0) < v.version
     AND EXISTS (SELECT 1 FROM m)
$$;
COMMENT ON FUNCTION topgun.partition_map(bigint, text) IS
  'The PARTITION_MAP payload cluster-mode clients get (NULL when current_version is the newest)';
