------------------------------------------------------------------------------
-- Event journal (docs/journal.md): every committed change of a journaled map,
-- numbered by a sequence that survives restarts; read up to the safe horizon.
------------------------------------------------------------------------------
CREATE TABLE topgun.journal_maps (
  pattern    text PRIMARY KEY CHECK (octet_length(pattern) BETWEEN 1 AND 256),
  enabled_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE topgun.journal_maps IS 'Map name patterns (* = any characters) whose changes are journaled';

CREATE SEQUENCE topgun.journal_seq MINVALUE 0 START 0 NO CYCLE;
COMMENT ON SEQUENCE topgun.journal_seq IS 'Journal sequence numbers (taken at commit; see topgun.journal_horizon())';

CREATE TABLE topgun.journal_events (
  seq            bigint PRIMARY KEY,
  type           text NOT NULL CHECK (type IN ('PUT', 'UPDATE', 'DELETE')),
  map            text COLLATE "C" NOT NULL,   -- C: the (map, seq) index compares bytes
  key            text NOT NULL,
  value          jsonb,                -- NULL: absent (a delete)
  previous_value jsonb,                -- NULL: absent (no earlier value, or a tombstone)
  ts             topgun.hlc NOT NULL,
  node_id        text NOT NULL,        -- the node that journaled the change
  metadata       jsonb,                -- OR maps: {"tag": ...}
  recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journal_events_map_idx ON topgun.journal_events (map, seq);
COMMENT ON TABLE topgun.journal_events IS 'Journal events in sequence order (read them with topgun.journal_read)';

SELECT pg_catalog.pg_extension_config_dump('topgun.journal_maps', '');
SELECT pg_catalog.pg_extension_config_dump('topgun.journal_events', '');
SELECT pg_catalog.pg_extension_config_dump('topgun.journal_seq', '');
-- the journaled-map cache of every backend (src/journal/patterns.c) is
-- dropped when this table's change commits (the trigger function: 65_logic.sql)
CREATE TRIGGER journal_maps_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON topgun.journal_maps
  FOR EACH STATEMENT EXECUTE FUNCTION topgun._invalidate_cache();

CREATE FUNCTION topgun.journal_enabled(map text DEFAULT NULL) RETURNS boolean
  AS 'MODULE_PATHNAME', 'tg_journal_enabled' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION topgun.journal_enabled(text) IS
  'Whether the map is journaled (NULL: whether any map is)';
CREATE FUNCTION topgun.journal_horizon() RETURNS bigint
  AS 'MODULE_PATHNAME', 'tg_journal_horizon_sql' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION topgun.journal_horizon() IS
  'Largest sequence number below which every journal event has committed or rolled back (-1: none yet)';

CREATE FUNCTION topgun._journal_capture() RETURNS trigger
  AS 'MODULE_PATHNAME', 'tg_journal_capture' LANGUAGE C;
-- Named so that they fire before lww_reinsert (docs/journal.md).  The WHEN
-- condition keeps maps that are not journaled free of trigger events;
-- deleting a tombstone (GC, lww_reinsert) is no change.
CREATE TRIGGER lww_journal AFTER INSERT OR UPDATE ON topgun.lww
  FOR EACH ROW WHEN (topgun.journal_enabled(NEW.map)) EXECUTE FUNCTION topgun._journal_capture('lww');
CREATE TRIGGER lww_journal_delete AFTER DELETE ON topgun.lww
  FOR EACH ROW WHEN (OLD.value IS NOT NULL AND topgun.journal_enabled(OLD.map))
  EXECUTE FUNCTION topgun._journal_capture('lww');
CREATE TRIGGER ormap_journal AFTER INSERT OR UPDATE ON topgun.ormap
  FOR EACH ROW WHEN (topgun.journal_enabled(NEW.map)) EXECUTE FUNCTION topgun._journal_capture('or');
CREATE TRIGGER ormap_journal_delete AFTER DELETE ON topgun.ormap
  FOR EACH ROW WHEN (topgun.journal_enabled(OLD.map)) EXECUTE FUNCTION topgun._journal_capture('or');
-- replication apply and the initial copy are journaled too
ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER lww_journal;
ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER lww_journal_delete;
ALTER TABLE topgun.ormap ENABLE ALWAYS TRIGGER ormap_journal;
ALTER TABLE topgun.ormap ENABLE ALWAYS TRIGGER ormap_journal_delete;

CREATE FUNCTION topgun._journal_check_pattern(pattern text) RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF pattern IS NULL OR octet_length(pattern) NOT BETWEEN 1 AND 256 THEN
    RAISE EXCEPTION 'a journal map pattern must be 1..256 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
END $$;

CREATE FUNCTION topgun.journal_enable(map_pattern text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM topgun._journal_check_pattern(map_pattern);
  INSERT INTO topgun.journal_maps (pattern) VALUES (map_pattern) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  RETURN true;
END $$;
COMMENT ON FUNCTION topgun.journal_enable(text) IS
  'Journal the maps matching a pattern (* = any characters); false when the pattern was already there';

CREATE FUNCTION topgun.journal_disable(map_pattern text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM topgun._journal_check_pattern(map_pattern);
  DELETE FROM topgun.journal_maps WHERE pattern = map_pattern;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  RETURN true;
END $$;
COMMENT ON FUNCTION topgun.journal_disable(text) IS
  'Stop journaling the maps of a pattern given to journal_enable (events kept); false when it was not there';

-- An event in the shape of TopGun's JournalEvent (PROTOCOL-ADDENDUM §A6.2).
CREATE FUNCTION topgun._journal_event_json(e topgun.journal_events) RETURNS jsonb
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT pg_catalog.jsonb_build_object('sequence', e.seq::text, 'type', e.type, 'mapName', e.map,
                                       'key', e.key, 'timestamp', topgun.hlc_json(e.ts), 'nodeId', e.node_id)
         || CASE WHEN e.value IS NULL THEN '{}' ELSE pg_catalog.jsonb_build_object('value', e.value) END
         || CASE WHEN e.previous_value IS NULL THEN '{}'
                 ELSE pg_catalog.jsonb_build_object('previousValue', e.previous_value) END
         || CASE WHEN e.metadata IS NULL THEN '{}' ELSE pg_catalog.jsonb_build_object('metadata', e.metadata) END
$$;

CREATE VIEW topgun.journal AS
  SELECT e.seq AS sequence, e.type, e.map AS map_name, e.key, e.value, e.previous_value,
         e.ts AS "timestamp", e.node_id, e.metadata, e.recorded_at, topgun._journal_event_json(e) AS event
    FROM topgun.journal_events e;
COMMENT ON VIEW topgun.journal IS 'Journal events, all committed ones (ordered readers: topgun.journal_read)';

CREATE FUNCTION topgun.journal_read(from_seq bigint, lim integer DEFAULT 100, map text DEFAULT NULL,
                                    types text[] DEFAULT NULL)
  RETURNS TABLE (sequence bigint, type text, map_name text, key text, value jsonb, previous_value jsonb,
                 "timestamp" topgun.hlc, node_id text, metadata jsonb, event jsonb, has_more boolean)
  LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  h bigint;
  n integer;
BEGIN
  IF from_seq IS NULL OR from_seq < 0 THEN
    RAISE EXCEPTION 'from_seq must be a non-negative integer' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF lim IS NULL OR lim < 1 OR lim > 10000 THEN
    RAISE EXCEPTION 'lim must be 1..10000' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF types IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.unnest(types) t
                                    WHERE t IS NULL OR t NOT IN ('PUT', 'UPDATE', 'DELETE')) THEN
    RAISE EXCEPTION 'types may only hold PUT, UPDATE and DELETE' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT topgun.journal_enabled(map) THEN
    RAISE EXCEPTION 'Event journal not enabled' USING ERRCODE = 'object_not_in_prerequisite_state',
      DETAIL = CASE WHEN map IS NULL THEN 'No map is journaled.' ELSE format('Map "%s" is not journaled.', left(map, 256)) END,
      HINT = 'SELECT topgun.journal_enable(''<map pattern>'');';
  END IF;
  -- the horizon first, then the snapshot of the query below (READ COMMITTED)
  h := topgun.journal_horizon();
  IF cardinality(types) = 0 THEN
    types := NULL;
  END IF;
  RETURN QUERY
    WITH w AS (
      SELECT e FROM topgun.journal_events e
       WHERE e.seq >= from_seq AND e.seq <= h
         AND (journal_read.map IS NULL OR e.map = journal_read.map)
         AND (journal_read.types IS NULL OR e.type = ANY (journal_read.types))
       ORDER BY e.seq LIMIT lim + 1),
    c AS (SELECT count(*) > lim AS more FROM w)
    SELECT (w.e).seq, (w.e).type, (w.e).map, (w.e).key, (w.e).value, (w.e).previous_value, (w.e).ts,
           (w.e).node_id, (w.e).metadata, topgun._journal_event_json(w.e), c.more
      FROM w, c ORDER BY (w.e).seq LIMIT lim;
END
$$;
COMMENT ON FUNCTION topgun.journal_read(bigint, integer, text, text[]) IS
  'Up to lim journal events from from_seq on (inclusive), in sequence order and never past the horizon; has_more: more follow';

CREATE FUNCTION topgun.journal_trim(max_rows integer DEFAULT 100000) RETURNS bigint
  LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  age_s bigint := (SELECT s.setting::bigint FROM pg_catalog.pg_settings s WHERE s.name = 'topgun.journal_retention_age');
  keep bigint := (SELECT s.setting::bigint FROM pg_catalog.pg_settings s WHERE s.name = 'topgun.journal_retention_count');
  last bigint;
  n bigint;
BEGIN
  IF max_rows IS NULL OR max_rows < 1 THEN
    RAISE EXCEPTION 'max_rows must be a positive integer' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT max(e.seq) INTO last FROM topgun.journal_events e;
  WITH old AS (
    SELECT e.seq FROM (SELECT j.seq, j.recorded_at FROM topgun.journal_events j ORDER BY j.seq LIMIT max_rows) e
     WHERE (keep > 0 AND e.seq <= last - keep)
        OR (age_s > 0 AND e.recorded_at < now() - pg_catalog.make_interval(secs => age_s)))
  DELETE FROM topgun.journal_events j USING old WHERE j.seq = old.seq;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION topgun.journal_trim(integer) IS
  'Remove up to max_rows of the oldest journal events beyond topgun.journal_retention_age / _count; returns how many';
REVOKE ALL ON FUNCTION topgun.journal_trim(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.journal_enable(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.journal_disable(text) FROM PUBLIC;
