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
  PERFORM topgun._lww_merge(NEW.map, NEW.key, NEW.value, NEW.ts, NEW.ttl_ms);
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
  PERFORM topgun._or_upsert(NEW.map, NEW.key, NEW.tag, NEW.value, NEW.ts, NEW.ttl_ms);
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
ALTER TABLE topgun.lww ENABLE REPLICA TRIGGER lww_replica;
ALTER TABLE topgun.ormap ENABLE REPLICA TRIGGER ormap_replica;
ALTER TABLE topgun.or_tags ENABLE REPLICA TRIGGER or_tags_replica;
ALTER TABLE topgun.counters ENABLE REPLICA TRIGGER counters_replica;
ALTER TABLE topgun.maps ENABLE REPLICA TRIGGER maps_replica;
-- (node_clock's replica trigger: src/sql/32_mesh_map.sql)

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
