------------------------------------------------------------------------------
-- Server-side logic: entry processors, conflict resolvers, lock tokens
-- (docs/processors.md, docs/resolvers.md, docs/locks.md)
------------------------------------------------------------------------------
CREATE FUNCTION topgun._processor_apply(name text, current jsonb, args jsonb, args_absent boolean)
  RETURNS jsonb AS 'MODULE_PATHNAME', 'tg_processor_apply' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION topgun._resolver_apply(name text, local jsonb, has_local_ts boolean, remote jsonb,
    remote_vs_local integer, key text, identity text, is_server boolean,
    OUT action text, OUT value jsonb, OUT reason text)
  AS 'MODULE_PATHNAME', 'tg_resolver_apply' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION topgun._glob(pattern text, s text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'tg_glob_match' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
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

-- One key, one transaction step: serialised on an advisory lock of (map, key)
-- (which also covers keys that do not exist yet), written through lww_put /
-- lww_remove with a fresh HLC so Merkle, change feed and events follow.
CREATE FUNCTION topgun.execute_on_key(map text, key text, processor text, args jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  cur jsonb;
  r jsonb;
  fn regprocedure;
  nv jsonb;
  res jsonb;
BEGIN
  IF map IS NULL OR key IS NULL OR processor IS NULL THEN
    RAISE EXCEPTION 'map, key and processor must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF args IS NOT NULL AND pg_column_size(args) > 262144 THEN
    RETURN jsonb_build_object('success', false, 'error', 'processor args exceed 256 KiB');
  END IF;
  IF NOT topgun._is_builtin('processor', processor) THEN
    SELECT p.fn INTO fn FROM topgun.processors p WHERE p.name = processor;
    IF fn IS NULL THEN
      RETURN jsonb_build_object('success', false, 'error',
        format('Unknown processor "%s": only built-in processors and those registered with topgun.register_processor run (client code is never executed)', left(processor, 100)));
    END IF;
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(map || chr(1) || key, 4242));
  cur := topgun.lww_get(map, key);
  IF fn IS NULL THEN
    r := topgun._processor_apply(processor, cur, args, args IS NULL);
    IF NOT (r->>'success')::boolean THEN
      RETURN r - 'write';
    END IF;
    nv := r->'newValue';
    IF r->>'write' = 'set' THEN
      PERFORM topgun.lww_put(map, key, nv);
    ELSIF r->>'write' = 'remove' THEN
      PERFORM topgun.lww_remove(map, key);
    END IF;
    RETURN r - 'write';
  END IF;
  BEGIN
    EXECUTE format('SELECT value, result FROM %s($1, $2, $3, $4)', fn::regproc) INTO nv, res USING cur, args, key, map;
  EXCEPTION WHEN OTHERS THEN
    RETURN jsonb_build_object('success', false, 'error', SQLERRM);
  END;
  IF nv IS NOT NULL AND pg_catalog.jsonb_typeof(nv) <> 'null' THEN
    PERFORM topgun.lww_put(map, key, nv);
  ELSIF cur IS NOT NULL THEN
    PERFORM topgun.lww_remove(map, key);
    nv := NULL;
  END IF;
  RETURN jsonb_strip_nulls(jsonb_build_object('success', true, 'result', res, 'newValue', nv))
         || CASE WHEN res = 'null' THEN '{"result":null}'::jsonb ELSE '{}' END;
END $$;
COMMENT ON FUNCTION topgun.execute_on_key(text, text, text, jsonb) IS
  'Run an entry processor on one key atomically; returns {success, result?, newValue?, error?}';

-- ENTRY_PROCESS_BATCH: all keys in one transaction (a raised error rolls all
-- back; a per-key success:false does not).  Locks are taken in key order
-- first, so concurrent batches cannot deadlock; keys then run in the given
-- order, a duplicate runs twice and the last result wins.
CREATE FUNCTION topgun.execute_on_keys(map text, keys text[], processor text, args jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  k text;
  out jsonb := '{}';
BEGIN
  IF cardinality(keys) > 1000 THEN
    RAISE EXCEPTION 'at most 1000 keys per batch' USING ERRCODE = 'program_limit_exceeded';
  END IF;
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(map || chr(1) || u.k, 4242))
     FROM (SELECT DISTINCT x AS k FROM unnest(keys) x ORDER BY 1) u;
  FOR k IN SELECT x FROM unnest(keys) x LOOP
    out := out || jsonb_build_object(k, topgun.execute_on_key(map, k, processor, args));
  END LOOP;
  RETURN out;
END $$;
COMMENT ON FUNCTION topgun.execute_on_keys(text, text[], text, jsonb) IS
  'ENTRY_PROCESS_BATCH: the processor on every key, one transaction; returns {key: result}';

------------------------------------------------------------------------------
-- Conflict resolvers
------------------------------------------------------------------------------
CREATE TABLE topgun.resolvers (
  name          text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
  map_pattern   text NOT NULL CHECK (length(map_pattern) BETWEEN 1 AND 256),
  key_pattern   text CHECK (length(key_pattern) <= 256),
  fn            regprocedure,          -- NULL: the built-in of that name
  priority      integer NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
  apply_to_sql  boolean NOT NULL DEFAULT false,
  seq           bigint GENERATED ALWAYS AS IDENTITY,
  registered_at timestamptz NOT NULL DEFAULT now(),
  CHECK (fn IS NOT NULL OR name LIKE 'builtin:%')
);
COMMENT ON TABLE topgun.resolvers IS 'Conflict resolvers on client writes, highest priority first, then registration order';
SELECT pg_catalog.pg_extension_config_dump('topgun.resolvers', '');

CREATE FUNCTION topgun.register_resolver(name text, map_pattern text, fn regprocedure DEFAULT NULL,
    priority integer DEFAULT NULL, key_pattern text DEFAULT NULL, apply_to_sql boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF fn IS NULL AND NOT topgun._is_builtin('resolver', name) THEN
    RAISE EXCEPTION 'no built-in resolver "%"; give fn for a resolver of your own', name
      USING ERRCODE = 'invalid_parameter_value';
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
  VALUES ($1, $2, $5, $3, coalesce($4, CASE WHEN $3 IS NULL THEN
            (SELECT d.p FROM (VALUES ('builtin:lww',0),('builtin:first_write_wins',100),('builtin:server_only',100),
              ('builtin:immutable',100),('builtin:owner_only',95),('builtin:non_negative',90),
              ('builtin:version_increment',90)) d(n, p) WHERE d.n = $1) END, 50), $6)
  ON CONFLICT ON CONSTRAINT resolvers_pkey DO UPDATE
    SET map_pattern = excluded.map_pattern, key_pattern = excluded.key_pattern, fn = excluded.fn,
        priority = excluded.priority, apply_to_sql = excluded.apply_to_sql, registered_at = now();
END $$;
CREATE FUNCTION topgun.unregister_resolver(name text) RETURNS boolean LANGUAGE sql AS $$
  WITH d AS (DELETE FROM topgun.resolvers r WHERE r.name = $1 RETURNING 1) SELECT count(*) > 0 FROM d
$$;
CREATE VIEW topgun.registered_resolvers AS
  SELECT name, map_pattern, key_pattern, fn, priority, apply_to_sql, registered_at
    FROM topgun.resolvers ORDER BY priority DESC, seq;
REVOKE ALL ON FUNCTION topgun.register_resolver(text, text, regprocedure, integer, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.unregister_resolver(text) FROM PUBLIC;

-- Does any resolver cover this map?  (Cheap: the server calls it per map and
-- caches the answer; resolver changes are rare.)
CREATE FUNCTION topgun.map_has_resolvers(map text) RETURNS boolean LANGUAGE sql STABLE STRICT AS $$
  SELECT EXISTS (SELECT 1 FROM topgun.resolvers r WHERE topgun._glob(r.map_pattern, $1))
$$;

-- Decide client writes before they are applied.  One row per op, in order:
-- accept (write vals[idx]), merge (write `value` instead, same timestamp),
-- reject (drop; reason), local (drop: the stored value stays).
CREATE FUNCTION topgun.resolve_ops(maps text[], keys text[], vals jsonb[], ts topgun.hlc[],
    identity text DEFAULT NULL, roles text[] DEFAULT '{}')
RETURNS TABLE (idx integer, outcome text, value jsonb, reason text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  op record;
  rs topgun.resolvers;
  r record;
  rlist topgun.resolvers[];
  is_server boolean := 'server' = ANY (coalesce(roles, '{}'));
  cmp integer;
  decided boolean;
BEGIN
  SELECT array_agg(x ORDER BY x.priority DESC, x.seq) INTO rlist FROM topgun.resolvers x;
  FOR op IN
    SELECT u.i, u.m, u.k, u.v, u.t, l.ts AS lts,
           CASE WHEN l.value IS NOT NULL AND (l.ttl_ms IS NULL OR topgun.hlc_millis(l.ts) + l.ttl_ms >= topgun.now_ms())
                THEN l.value END AS lval
      FROM unnest(maps, keys, vals, ts) WITH ORDINALITY u(m, k, v, t, i)
      LEFT JOIN topgun.lww l ON l.map = u.m AND l.leaf = topgun.key_leaf(u.k) AND l.key = u.k
     ORDER BY u.i
  LOOP
    decided := false;
    cmp := CASE WHEN op.lts IS NULL THEN 1 ELSE topgun.hlc_cmp(op.t, op.lts) END;
    FOREACH rs IN ARRAY coalesce(rlist, '{}') LOOP
      CONTINUE WHEN NOT topgun._glob(rs.map_pattern, op.m)
                 OR (rs.key_pattern IS NOT NULL AND NOT topgun._glob(rs.key_pattern, op.k));
      IF rs.fn IS NULL THEN
        r := topgun._resolver_apply(rs.name, op.lval, op.lts IS NOT NULL, op.v, cmp, op.k, identity, is_server);
      ELSE
        BEGIN
          EXECUTE format('SELECT action, value, reason FROM %s($1, $2, $3, $4, $5)', rs.fn::regproc)
            INTO r USING op.lval, op.v, op.k, op.m, identity;
        EXCEPTION WHEN OTHERS THEN
          CONTINUE;          -- a failing resolver is skipped, as in the reference
        END;
      END IF;
      CONTINUE WHEN r.action IS NULL OR r.action NOT IN ('accept', 'merge', 'reject', 'local');
      idx := op.i; outcome := r.action; reason := r.reason;
      value := CASE r.action WHEN 'accept' THEN op.v WHEN 'merge' THEN
                 CASE WHEN op.v IS NULL THEN NULL ELSE r.value END END;
      decided := true;
      EXIT;
    END LOOP;
    IF NOT decided THEN
      -- the implicit builtin:lww at the end of every chain
      idx := op.i; reason := NULL;
      IF op.lts IS NULL OR cmp > 0 THEN outcome := 'accept'; value := op.v;
      ELSE outcome := 'local'; value := NULL; END IF;
    END IF;
    RETURN NEXT;
  END LOOP;
END $$;
COMMENT ON FUNCTION topgun.resolve_ops(text[], text[], jsonb[], topgun.hlc[], text, text[]) IS
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
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(map || chr(1) || key, 4242));
  SELECT l.value, l.ttl_ms INTO v, ttl FROM topgun.lww l
   WHERE l.map = $1 AND l.leaf = topgun.key_leaf($2) AND l.key = $2 FOR UPDATE;
  IF v IS NOT NULL AND ttl IS NOT NULL THEN
    v := topgun.lww_get(map, key);     -- expired: becomes a tombstone
    ttl := CASE WHEN v IS NULL THEN NULL ELSE ttl END;
  END IF;
  t := topgun.hlc_update(newer_than);  -- > newer_than and > the node clock
  IF v IS NULL THEN
    PERFORM topgun.lww_remove(map, key, t);
  ELSE
    PERFORM topgun.lww_put(map, key, v, t, ttl);
  END IF;
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
