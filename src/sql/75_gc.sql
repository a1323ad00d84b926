------------------------------------------------------------------------------
-- Tombstone GC on the server's schedule (docs/gc.md): LWW tombstones and OR
-- tombstone tags older than the safe horizon of PROTOCOL-ADDENDUM §A7, in
-- bounded batches that walk each table once per pass.
------------------------------------------------------------------------------
CREATE TABLE topgun.gc_state (
  id           boolean PRIMARY KEY DEFAULT true CHECK (id),
  -- the pass in progress (horizon NULL: none)
  horizon      topgun.hlc,
  lww_block    bigint NOT NULL DEFAULT 0,   -- next heap block of topgun.lww to scan
  or_block     bigint NOT NULL DEFAULT 0,   -- next heap block of topgun.or_tags to scan
  started_at   timestamptz,
  lww_pruned   bigint NOT NULL DEFAULT 0,
  or_pruned    bigint NOT NULL DEFAULT 0,
  -- the last pass that completed: everything older than done_horizon is gone
  done_horizon topgun.hlc,
  done_at      timestamptz,
  done_lww     bigint,
  done_or      bigint
);
INSERT INTO topgun.gc_state DEFAULT VALUES;
COMMENT ON TABLE topgun.gc_state IS 'Tombstone GC progress: the pass in progress and the last completed one';
REVOKE ALL ON topgun.gc_state FROM PUBLIC;

-- The horizon a pass would use now: older_than (topgun.gc_horizon by default)
-- before the earliest of this node's clock, the oldest activity of the
-- clients connected here (client_floor_ms, from the sync server) and, in a
-- mesh, the oldest peer heartbeat (topgun.gc_horizon(interval)); NULL while
-- some peer was never heard from.
CREATE FUNCTION topgun.gc_safe_horizon(client_floor_ms bigint DEFAULT NULL, older_than interval DEFAULT NULL)
  RETURNS topgun.hlc LANGUAGE plpgsql STABLE AS $$
DECLARE
  margin interval := coalesce(older_than, pg_catalog.make_interval(secs =>
                       (SELECT s.setting::bigint FROM pg_catalog.pg_settings s WHERE s.name = 'topgun.gc_horizon')));
  h bigint;
BEGIN
  IF margin < interval '0' THEN
    RAISE EXCEPTION 'older_than must be a non-negative interval' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  h := topgun.gc_horizon(margin);
  IF h IS NULL THEN
    RETURN NULL;
  END IF;
  IF client_floor_ms IS NOT NULL THEN
    h := LEAST(h, client_floor_ms - (extract(epoch FROM margin) * 1000)::bigint);
  END IF;
  RETURN topgun.hlc(GREATEST(h, 0), 0, topgun.node_id());
END $$;
COMMENT ON FUNCTION topgun.gc_safe_horizon(bigint, interval) IS
  'Timestamp below which tombstones may be collected now (NULL: some mesh peer never heard from)';

CREATE FUNCTION topgun.gc_run(client_floor_ms bigint DEFAULT NULL, max_rows integer DEFAULT 100000,
                              older_than interval DEFAULT NULL,
                              OUT lww_pruned bigint, OUT or_tags_pruned bigint, OUT horizon topgun.hlc,
                              OUT pass_done boolean)
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  st topgun.gc_state;
  step constant integer := 64;          -- heap blocks per batch
  nblocks bigint;
  n bigint;
BEGIN
  IF max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'max_rows must be a positive integer' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  lww_pruned := 0;
  or_tags_pruned := 0;
  pass_done := false;
  SELECT * INTO st FROM topgun.gc_state WHERE id FOR UPDATE;   -- one collector at a time
  IF NOT FOUND THEN
    INSERT INTO topgun.gc_state DEFAULT VALUES ON CONFLICT DO NOTHING;
    SELECT * INTO st FROM topgun.gc_state WHERE id FOR UPDATE;
  END IF;
  IF st.horizon IS NULL THEN
    st.horizon := topgun.gc_safe_horizon(client_floor_ms, older_than);
    IF st.horizon IS NULL THEN
      RAISE NOTICE 'no tombstones collected: not every peer''s heartbeat has reached this node'
        USING HINT = 'Run topgun.mesh_heartbeat() on every node.';
      RETURN;
    END IF;
    st.lww_block := 0;
    st.or_block := 0;
    st.lww_pruned := 0;
    st.or_pruned := 0;
    st.started_at := now();
  END IF;
  horizon := st.horizon;
  -- A tombstone is final only while it is a tombstone: a concurrent write of
  -- the key makes the DELETE re-check the row and skip it.
  nblocks := pg_catalog.pg_relation_size('topgun.lww') / current_setting('block_size')::bigint;
  WHILE st.lww_block < nblocks AND lww_pruned + or_tags_pruned < max_rows LOOP
    DELETE FROM topgun.lww l
     WHERE l.ctid >= format('(%s,0)', st.lww_block)::tid AND l.ctid < format('(%s,0)', st.lww_block + step)::tid
       AND l.value IS NULL AND l.ts OPERATOR(topgun.<) st.horizon;
    GET DIAGNOSTICS n = ROW_COUNT;
    lww_pruned := lww_pruned + n;
    st.lww_block := st.lww_block + step;
  END LOOP;
  -- OR tags are HLC strings; one that TopGun's HLC.parse rejects is kept (as the client does).
  nblocks := pg_catalog.pg_relation_size('topgun.or_tags') / current_setting('block_size')::bigint;
  WHILE st.or_block < nblocks AND lww_pruned + or_tags_pruned < max_rows LOOP
    DELETE FROM topgun.or_tags t
     WHERE t.ctid >= format('(%s,0)', st.or_block)::tid AND t.ctid < format('(%s,0)', st.or_block + step)::tid
       AND t.removed_at IS NOT NULL
       AND t.tag ~ '^[0-9]{1,15}:[0-9]{1,15}:[^:]*$'
       AND topgun.hlc(split_part(t.tag, ':', 1)::bigint, split_part(t.tag, ':', 2)::bigint,
                      split_part(t.tag, ':', 3)) OPERATOR(topgun.<) st.horizon;
    GET DIAGNOSTICS n = ROW_COUNT;
    or_tags_pruned := or_tags_pruned + n;
    st.or_block := st.or_block + step;
  END LOOP;
  st.lww_pruned := st.lww_pruned + lww_pruned;
  st.or_pruned := st.or_pruned + or_tags_pruned;
  IF st.lww_block >= pg_catalog.pg_relation_size('topgun.lww') / current_setting('block_size')::bigint
     AND st.or_block >= nblocks THEN
    pass_done := true;
    UPDATE topgun.gc_state SET horizon = NULL, lww_block = 0, or_block = 0, started_at = NULL,
           lww_pruned = 0, or_pruned = 0, done_horizon = st.horizon, done_at = now(),
           done_lww = st.lww_pruned, done_or = st.or_pruned
     WHERE id;
  ELSE
    UPDATE topgun.gc_state SET horizon = st.horizon, lww_block = st.lww_block, or_block = st.or_block,
           started_at = st.started_at, lww_pruned = st.lww_pruned, or_pruned = st.or_pruned
     WHERE id;
  END IF;
END $$;
COMMENT ON FUNCTION topgun.gc_run(bigint, integer, interval) IS
  'Collect about max_rows tombstones older than the safe horizon, continuing the current pass; pass_done: every table was walked (send GC_PRUNE)';
REVOKE ALL ON FUNCTION topgun.gc_run(bigint, integer, interval) FROM PUBLIC;

CREATE FUNCTION topgun.gc_prune_info(OUT older_than jsonb, OUT horizon topgun.hlc, OUT completed_at timestamptz,
                                     OUT lww_pruned bigint, OUT or_tags_pruned bigint)
  LANGUAGE sql STABLE AS $$
  SELECT topgun.hlc_json(s.done_horizon), s.done_horizon, s.done_at, s.done_lww, s.done_or
    FROM topgun.gc_state s WHERE s.id AND s.done_horizon IS NOT NULL
$$;
COMMENT ON FUNCTION topgun.gc_prune_info() IS
  'The last completed GC pass: olderThan for GC_PRUNE ({millis,counter,nodeId}), when, and how much it collected';

CREATE FUNCTION topgun.gc_sync_reset_required(last_sync_ms double precision) RETURNS boolean
  LANGUAGE sql STABLE AS $$
  -- The client may have missed a delete whose tombstone is gone: it synced
  -- before a horizon that was (or is being) collected, or longer ago than
  -- topgun.gc_horizon (the rule every node applies, collected or not).
  SELECT $1 IS NOT NULL AND $1 > 0 AND (
           topgun.now_ms() - $1 > (SELECT s.setting::double precision * 1000 FROM pg_catalog.pg_settings s
                                    WHERE s.name = 'topgun.gc_horizon')
           OR coalesce($1 < (SELECT GREATEST(topgun.hlc_millis(g.done_horizon), topgun.hlc_millis(g.horizon))
                               FROM topgun.gc_state g WHERE g.id), false))
$$;
COMMENT ON FUNCTION topgun.gc_sync_reset_required(double precision) IS
  'Whether a SYNC_INIT / ORMAP_SYNC_INIT with this lastSyncTimestamp must get SYNC_RESET_REQUIRED';
