------------------------------------------------------------------------------
-- Server-side logic: entry processors, conflict resolvers, lock tokens
-- (docs/processors.md, docs/resolvers.md, docs/locks.md)
------------------------------------------------------------------------------
CREATE FUNCTION topgun._glob(pattern text, s text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'tg_glob_match' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun._lock_key(map text, key text) RETURNS void
  AS 'MODULE_PATHNAME', 'tg_lock_key_sql' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION topgun._is_builtin(kind text, name text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'tg_is_builtin' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Processors registered by the DBA: fn(current jsonb, args jsonb, key text, map text,
-- OUT value jsonb, OUT result jsonb); value NULL deletes the key.
CREATE TABLE topgun.processors (
  name          text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100 AND name NOT LIKE 'builtin:%'),
  fn            regprocedure NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE topgun.processors IS 'Entry processors registered by the DBA (SQL functions; client code is never run)';
SELECT pg_catalog.pg_extension_config_dump('topgun.processors', '');

CREATE FUNCTION topgun._check_signature(fn regprocedure, args oid[], outs oid[], what text)
  RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
  p pg_catalog.pg_proc;
BEGIN
  SELECT * INTO p FROM pg_catalog.pg_proc WHERE oid = fn;
  IF string_to_array(p.proargtypes::text, ' ')::oid[] IS DISTINCT FROM args
     OR p.proallargtypes IS DISTINCT FROM args || outs
     OR p.proargmodes IS DISTINCT FROM array_fill('i'::"char", ARRAY[cardinality(args)]) || array_fill('o'::"char", ARRAY[cardinality(outs)])
     OR p.proretset OR p.prokind <> 'f' THEN
    RAISE EXCEPTION '% must be a function %', fn, what USING ERRCODE = 'invalid_parameter_value';
  END IF;
END $$;

CREATE FUNCTION topgun.register_processor(name text, fn regprocedure) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM topgun._check_signature(fn, ARRAY['jsonb','jsonb','text','text']::regtype[]::oid[],
    ARRAY['jsonb','jsonb']::regtype[]::oid[],
    '(current jsonb, args jsonb, key text, map text, OUT value jsonb, OUT result jsonb)');
  INSERT INTO topgun.processors AS p (name, fn) VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT processors_pkey DO UPDATE SET fn = excluded.fn, registered_at = now();
END $$;
CREATE FUNCTION topgun.unregister_processor(name text) RETURNS boolean LANGUAGE sql AS $$
  WITH d AS (DELETE FROM topgun.processors p WHERE p.name = $1 RETURNING 1) SELECT count(*) > 0 FROM d
$$;
CREATE VIEW topgun.registered_processors AS
  SELECT name, fn, registered_at FROM topgun.processors;
REVOKE ALL ON FUNCTION topgun.register_processor(text, regprocedure) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.unregister_processor(text) FROM PUBLIC;

-- A registered processor on one key, called by topgun.execute_on_key with
-- the key's lock held (src/logic/execute.c).
CREATE FUNCTION topgun._execute_user(map text, key text, fn regprocedure, current jsonb, args jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  nv jsonb;
  res jsonb;
BEGIN
  SELECT l.value INTO current FROM topgun.lww l
   WHERE l.map = $1 AND l.leaf = topgun.key_leaf($2) AND l.key = $2 AND l.value IS NOT NULL
     AND (l.ttl_ms IS NULL OR topgun.hlc_millis(l.ts) + l.ttl_ms >= topgun.now_ms());
  BEGIN
    EXECUTE format('SELECT value, result FROM %s($1, $2, $3, $4)', fn::regproc) INTO nv, res USING current, args, key, map;
  EXCEPTION WHEN OTHERS THEN
    RETURN jsonb_build_object('success', false, 'error', SQLERRM);
  END;
  IF nv IS NOT NULL AND pg_catalog.jsonb_typeof(nv) <> 'null' THEN
    PERFORM topgun.lww_put(map, key, nv);
  ELSE
    nv := NULL;
    IF current IS NOT NULL THEN
      PERFORM topgun.lww_remove(map, key);
    END IF;
  END IF;
  RETURN jsonb_build_object('success', true)
         || CASE WHEN res IS NULL THEN '{}' ELSE jsonb_build_object('result', res) END
         || CASE WHEN nv IS NULL THEN '{}' ELSE jsonb_build_object('newValue', nv) END;
END $$;

-- One key, one transaction step: serialised on an advisory lock of (map, key)
-- (which also covers keys that do not exist yet), written through lww_put /
-- lww_remove with a fresh HLC so Merkle, change feed and events follow.
CREATE FUNCTION topgun.execute_on_key(map text, key text, processor text, args jsonb DEFAULT NULL)
  RETURNS jsonb AS 'MODULE_PATHNAME', 'tg_execute_on_key' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.execute_on_key(text, text, text, jsonb) IS
  'Run an entry processor on one key atomically; returns {success, result?, newValue?, error?}';

-- ENTRY_PROCESS_BATCH: all keys in the caller's transaction (a raised error
-- undoes all; a per-key success:false does not).  Locks are taken first in
-- key order, so concurrent batches cannot deadlock; keys then run in the
-- given order, a duplicate runs twice and the last result wins.
CREATE FUNCTION topgun.execute_on_keys(map text, keys text[], processor text, args jsonb DEFAULT NULL)
  RETURNS jsonb AS 'MODULE_PATHNAME', 'tg_execute_on_keys' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.execute_on_keys(text, text[], text, jsonb) IS
  'ENTRY_PROCESS_BATCH: the processor on every key, one transaction; returns {key: result}';

------------------------------------------------------------------------------
-- Conflict resolvers
------------------------------------------------------------------------------
CREATE TABLE topgun.resolvers (
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  map_pattern   text NOT NULL CHECK (length(map_pattern) BETWEEN 1 AND 256),
  key_pattern   text CHECK (length(key_pattern) <= 256),
  fn            regprocedure,          -- NULL: the built-in of that name
  priority      integer NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
  apply_to_sql  boolean NOT NULL DEFAULT false,
  seq           bigint GENERATED ALWAYS AS IDENTITY,
  registered_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (map_pattern, name),
  CHECK (fn IS NOT NULL OR name LIKE 'builtin:%')
);
COMMENT ON TABLE topgun.resolvers IS 'Conflict resolvers on client writes, highest priority first, then registration order';
SELECT pg_catalog.pg_extension_config_dump('topgun.resolvers', '');
-- Backends cache the resolver patterns (src/exec/resolve.c) and drop the
-- cache on a relcache invalidation of this table, sent by this trigger when
-- a change commits; topgun.journal_maps uses the same trigger.
CREATE FUNCTION topgun._invalidate_cache() RETURNS trigger
  AS 'MODULE_PATHNAME', 'tg_invalidate_cache' LANGUAGE C;
REVOKE ALL ON FUNCTION topgun._invalidate_cache() FROM PUBLIC;
CREATE TRIGGER resolvers_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON topgun.resolvers
  FOR EACH STATEMENT EXECUTE FUNCTION topgun._invalidate_cache();


-- Resolvers on SQL writes: resolvers registered with apply_to_sql also judge
-- LWW writes made from SQL while topgun.sql_write_resolvers is on (the sync
-- server's sessions turn it off: they call resolve_ops themselves).  The row
-- trigger exists only while such a resolver exists, so other writes pay
-- nothing.  reject raises check_violation; local skips the row; merge
-- replaces the value.  The identity is session_user.
CREATE FUNCTION topgun._lww_resolve() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  IF NOT current_setting('topgun.sql_write_resolvers')::boolean THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'INSERT' AND EXISTS (SELECT 1 FROM topgun.lww l
       WHERE l.map = NEW.map AND l.leaf = topgun.key_leaf(NEW.key) AND l.key = NEW.key) THEN
    RETURN NEW;           -- ON CONFLICT: the BEFORE UPDATE run decides, with the stored row
  END IF;
  SELECT * INTO r FROM topgun.resolve_ops(ARRAY[NEW.map], ARRAY[NEW.key], ARRAY[NEW.value], ARRAY[NEW.ts],
                                          session_user::text, '{}', true);
  IF r.outcome = 'reject' THEN
    RAISE EXCEPTION 'write to %/% rejected by a conflict resolver: %', NEW.map, NEW.key, r.reason
      USING ERRCODE = 'check_violation';
  ELSIF r.outcome = 'local' AND TG_OP = 'UPDATE' THEN
    RETURN NULL;
  ELSIF r.outcome = 'merge' THEN
    NEW.value := r.value;
  END IF;
  RETURN NEW;
END $$;

CREATE FUNCTION topgun._sync_resolve_trigger() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  want boolean := EXISTS (SELECT 1 FROM topgun.resolvers WHERE apply_to_sql);
  have boolean := EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                           WHERE tgrelid = 'topgun.lww'::regclass AND tgname = 'lww_a_resolve');
BEGIN
  IF want AND NOT have THEN
    CREATE TRIGGER lww_a_resolve BEFORE INSERT OR UPDATE OF value, ts ON topgun.lww
      FOR EACH ROW EXECUTE FUNCTION topgun._lww_resolve();
  ELSIF have AND NOT want THEN
    DROP TRIGGER lww_a_resolve ON topgun.lww;
  END IF;
END $$;

CREATE FUNCTION topgun.register_resolver(name text, map_pattern text, fn regprocedure DEFAULT NULL,
    priority integer DEFAULT NULL, key_pattern text DEFAULT NULL, apply_to_sql boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF fn IS NULL AND NOT topgun._is_builtin('resolver', name) THEN
    -- a name the DBA registered with a function (on any map) may be reused by name
    SELECT r.fn INTO fn FROM topgun.resolvers r WHERE r.name = $1 AND r.fn IS NOT NULL ORDER BY r.seq LIMIT 1;
    IF fn IS NULL THEN
      RAISE EXCEPTION 'no built-in or registered resolver "%"; give fn for a resolver of your own', name
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END IF;
  IF fn IS NOT NULL THEN
    PERFORM topgun._check_signature(fn, ARRAY['jsonb','jsonb','text','text','text']::regtype[]::oid[],
      ARRAY['text','jsonb','text']::regtype[]::oid[],
      '(local jsonb, remote jsonb, key text, map text, identity text, OUT action text, OUT value jsonb, OUT reason text)');
  END IF;
  IF (SELECT count(*) FROM topgun.resolvers r WHERE r.map_pattern = $2 AND r.name <> $1) >= 100 THEN
    RAISE EXCEPTION 'Maximum resolvers per map (100) exceeded' USING ERRCODE = 'program_limit_exceeded';
  END IF;
  INSERT INTO topgun.resolvers AS r (name, map_pattern, key_pattern, fn, priority, apply_to_sql)
  VALUES ($1, $2, $5, fn, coalesce($4, CASE WHEN fn IS NULL THEN
            (SELECT d.p FROM (VALUES ('builtin:lww',0),('builtin:first_write_wins',100),('builtin:server_only',100),
              ('builtin:immutable',100),('builtin:owner_only',95),('builtin:non_negative',90),
              ('builtin:version_increment',90)) d(n, p) WHERE d.n = $1) END, 50), $6)
  ON CONFLICT ON CONSTRAINT resolvers_pkey DO UPDATE
    SET key_pattern = excluded.key_pattern, fn = excluded.fn,
        priority = excluded.priority, apply_to_sql = excluded.apply_to_sql, registered_at = now();
  PERFORM topgun._sync_resolve_trigger();
END $$;
CREATE FUNCTION topgun.unregister_resolver(name text, map_pattern text DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  deleted boolean;
BEGIN
  DELETE FROM topgun.resolvers r WHERE r.name = $1 AND (r.map_pattern = $2 OR $2 IS NULL);
  deleted := FOUND;
  PERFORM topgun._sync_resolve_trigger();
  RETURN deleted;
END $$;
CREATE VIEW topgun.registered_resolvers AS
  SELECT name, map_pattern, key_pattern, fn, priority, apply_to_sql, registered_at
    FROM topgun.resolvers ORDER BY priority DESC, seq;
REVOKE ALL ON FUNCTION topgun.register_resolver(text, text, regprocedure, integer, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.unregister_resolver(text, text) FROM PUBLIC;

-- Does any resolver cover this map?  (Cheap: the server calls it per map and
-- caches the answer; resolver changes are rare.)
CREATE FUNCTION topgun.map_has_resolvers(map text) RETURNS boolean LANGUAGE sql STABLE STRICT AS $$
  SELECT EXISTS (SELECT 1 FROM topgun.resolvers r WHERE topgun._glob(r.map_pattern, $1))
$$;

-- A registered resolver function; its error is a skip (NULL action).
CREATE FUNCTION topgun._run_resolver(fn regprocedure, local jsonb, remote jsonb, key text, map text,
    identity text, OUT action text, OUT value jsonb, OUT reason text)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SELECT action, value, reason FROM %s($1, $2, $3, $4, $5)', fn::regproc)
    INTO action, value, reason USING local, remote, key, map, identity;
EXCEPTION WHEN OTHERS THEN
  action := NULL;
END $$;

-- Decide client writes before they are applied (src/logic/pg_resolve.c).  One
-- row per op, in order: accept (write vals[idx]), merge (write `value`
-- instead, same timestamp), reject (drop; reason), local (drop: the stored
-- value stays).
CREATE FUNCTION topgun.resolve_ops(maps text[], keys text[], vals jsonb[], ts topgun.hlc[],
    identity text DEFAULT NULL, roles text[] DEFAULT '{}', sql_writes boolean DEFAULT false)
  RETURNS TABLE (idx integer, outcome text, value jsonb, reason text)
  AS 'MODULE_PATHNAME', 'tg_resolve_ops' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.resolve_ops(text[], text[], jsonb[], topgun.hlc[], text, text[], boolean) IS
  'Run the conflict-resolver chains on client LWW ops before they are applied; one row per op';

-- Rejected op: write the stored value again with a timestamp newer than the
-- rejected one, so that the writer's replica (last-write-wins) converges.
-- Absent or expired keys get a tombstone.  Returns {key, value, timestamp, ttlMs?}.
CREATE FUNCTION topgun.restamp(map text, key text, newer_than topgun.hlc) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
  v jsonb;
  ttl bigint;
  t topgun.hlc;
  prev text;
BEGIN
  PERFORM topgun._lock_key(map, key);
  SELECT l.value, l.ttl_ms INTO v, ttl FROM topgun.lww l
   WHERE l.map = $1 AND l.leaf = topgun.key_leaf($2) AND l.key = $2 FOR UPDATE;
  IF v IS NOT NULL AND ttl IS NOT NULL THEN
    v := topgun.lww_get(map, key);     -- expired: becomes a tombstone
    ttl := CASE WHEN v IS NULL THEN NULL ELSE ttl END;
  END IF;
  t := topgun.hlc_update(newer_than);  -- > newer_than and > the node clock
  -- the stored value is written back as it is: not a change for resolvers to judge
  prev := set_config('topgun.sql_write_resolvers', 'off', true);
  IF v IS NULL THEN
    PERFORM topgun.lww_remove(map, key, t);
  ELSE
    PERFORM topgun.lww_put(map, key, v, t, ttl);
  END IF;
  PERFORM set_config('topgun.sql_write_resolvers', prev, true);
  RETURN jsonb_build_object('key', key, 'value', v, 'timestamp', topgun.hlc_json(t))
         || CASE WHEN ttl IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('ttlMs', ttl) END;
END $$;
COMMENT ON FUNCTION topgun.restamp(text, text, topgun.hlc) IS
  'Re-write the stored record with a timestamp newer than newer_than; returns the record to send';

------------------------------------------------------------------------------
-- Lock fencing tokens: a per-name high-water mark, reserved in blocks
------------------------------------------------------------------------------
CREATE TABLE topgun.lock_tokens (
  name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 256),
  hi   bigint NOT NULL CHECK (hi BETWEEN 0 AND 9007199254740991)
);
COMMENT ON TABLE topgun.lock_tokens IS 'Highest fencing token ever reserved per lock name (tokens never go back)';
SELECT pg_catalog.pg_extension_config_dump('topgun.lock_tokens', '');

-- Reserve n tokens for name: returns the first of the block [first, first + n).
CREATE FUNCTION topgun.lock_reserve_tokens(name text, n integer) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  hi bigint;
BEGIN
  IF n IS NULL OR n < 1 OR n > 1000000 THEN
    RAISE EXCEPTION 'n must be in 1..1000000' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO topgun.lock_tokens AS t (name, hi) VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT lock_tokens_pkey DO UPDATE SET hi = t.hi + excluded.hi
    RETURNING t.hi INTO hi;
  RETURN hi - n + 1;
END $$;
COMMENT ON FUNCTION topgun.lock_reserve_tokens(text, integer) IS
  'Durably reserve a block of n fencing tokens for a lock; returns its first token';
REVOKE ALL ON FUNCTION topgun.lock_reserve_tokens(text, integer) FROM PUBLIC;

CREATE FUNCTION topgun.locks() RETURNS TABLE (name text, holder bigint, fencing_token bigint,
    expires_at timestamptz, waiters integer)
  AS 'MODULE_PATHNAME', 'tg_locks_srf' LANGUAGE C VOLATILE;
CREATE VIEW topgun.locks AS SELECT * FROM topgun.locks();
COMMENT ON VIEW topgun.locks IS 'Distributed locks held or awaited, as published by the sync server (empty without one)';
CREATE FUNCTION topgun.lock_release(name text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'tg_lock_release' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION topgun.lock_release(text) IS
  'Ask the sync server to release a lock whoever holds it; false when no server is running or the queue is full';
REVOKE ALL ON FUNCTION topgun.lock_release(text) FROM PUBLIC;

-- The registries are metadata every application role reads (execute_on_key
-- looks processors up; resolve_ops and the SQL-write trigger read resolvers).
GRANT SELECT ON topgun.processors, topgun.resolvers, topgun.registered_processors,
  topgun.registered_resolvers TO PUBLIC;
