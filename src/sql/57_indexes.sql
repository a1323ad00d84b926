------------------------------------------------------------------------------
-- Per-map field indexes (docs/sql-api.md "Field indexes", docs/live.md
-- "Indexes").
--
-- topgun.create_index(map, field) registers the index with state 'building';
-- when the caller's transaction commits, a background worker (the index
-- builder, src/exec/index_build.c) runs CREATE INDEX CONCURRENTLY on
-- topgun.lww and topgun.ormap, so writes to every map go on during the build,
-- and then sets 'ready' (or 'failed' with the error).  drop_index marks the
-- row 'dropping'; the builder runs DROP INDEX CONCURRENTLY and deletes it.
-- The builder works through every pending row of its database, one at a
-- time (builds never run side by side: two concurrent builds on one table
-- wait for each other's snapshots).  A row whose builder is gone (crash,
-- restart) is taken up again when the sync server's session executor starts
-- (in topgun.database), or by the next create_index, drop_index or
-- index_wait: the build starts over, after dropping the invalid index the
-- interrupted build left.
--
-- Each (map, fields) has one partial expression index per table, a column
-- per field:
--   CREATE INDEX <name> ON topgun.lww USING <kind> ((value #> '<path>'::text[]), ...)
--     WHERE map = '<map>'::text
-- so that a query of the form
--   WHERE map = '<map>' AND (value #> '{cat}'::text[]) = '7'::jsonb
-- matches the expression and proves the predicate; with (cat, n),
--   ... AND (value #> '{cat}'::text[]) = '7'::jsonb ORDER BY (value #> '{n}'::text[])
-- is read in index order.  create_index(map, field) is
-- create_index(map, ARRAY[field]).
------------------------------------------------------------------------------
CREATE TABLE topgun.field_indexes (
  map        text NOT NULL,
  field      text NOT NULL,              -- as given: 'owner.id'; several: 'cat, n' (a label)
  fields     text[] NOT NULL,            -- the indexed fields in column order: '{owner.id}', '{cat,n}'
  path       text[],                     -- one field split on '.': '{owner,id}'; NULL for several
  kind       text NOT NULL CHECK (kind IN ('btree', 'hash')),
  state      text NOT NULL CHECK (state IN ('building', 'ready', 'failed', 'dropping')),
  lww_index  name NOT NULL,              -- the index on topgun.lww (schema topgun)
  or_index   name NOT NULL,              -- the index on topgun.ormap (schema topgun)
  error      text,                       -- why the last build or drop failed
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (map, fields)
);
COMMENT ON TABLE topgun.field_indexes IS
  'Field indexes of maps (topgun.create_index): the registry the index builder works from';

-- The path of a field, checked: 1..256 bytes, 1..16 non-empty segments.
CREATE FUNCTION topgun._index_path(field text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p text[];
BEGIN
  IF field IS NULL OR field = '' OR octet_length(field) > 256 THEN
    RAISE EXCEPTION 'field must be 1..256 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  p := string_to_array(field, '.');
  IF cardinality(p) > 16 THEN
    RAISE EXCEPTION 'field "%" has more than 16 segments', field USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF '' = ANY (p) THEN
    RAISE EXCEPTION 'field "%" has an empty segment', field USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN p;
END
$$;

-- The fields of an index, checked: 1..8 distinct fields, each a valid path;
-- returned with subscripts from 1 (the registry compares them with =).
CREATE FUNCTION topgun._index_fields(fields text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  fs text[];
  f text;
BEGIN
  IF fields IS NULL OR array_ndims(fields) IS DISTINCT FROM 1 OR cardinality(fields) > 8 THEN
    RAISE EXCEPTION 'an index has 1..8 fields' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  fs := ARRAY(SELECT unnest(fields));
  FOREACH f IN ARRAY fs LOOP
    PERFORM topgun._index_path(f);
  END LOOP;
  SELECT u.f INTO f FROM unnest(fs) u(f) GROUP BY u.f HAVING count(*) > 1 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'field "%" is listed twice', f USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN fs;
END
$$;

-- Deterministic index names: map and fields hashed with a zero byte before
-- each field (no two lists of names collide by concatenation; one field:
-- md5(map, 0, field)), 28 characters.
CREATE FUNCTION topgun._index_name(map text, fields text[], suffix text) RETURNS name
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
AS $$
  SELECT ('tg_fidx_' || left(md5(textsend(map) || (SELECT string_agg('\x00'::bytea || textsend(u.f), ''::bytea ORDER BY u.o)
                                                     FROM unnest(fields) WITH ORDINALITY u(f, o))), 16)
          || '_' || suffix)::name
$$;

-- Start the index builder now / when the current transaction commits
-- (src/exec/index_build.c).  _index_launch returns false when no
-- background worker slot was free.
CREATE FUNCTION topgun._index_launch() RETURNS boolean
  AS 'MODULE_PATHNAME', 'tg_index_launch' LANGUAGE C VOLATILE;
CREATE FUNCTION topgun._index_launch_at_commit() RETURNS void
  AS 'MODULE_PATHNAME', 'tg_index_launch_at_commit' LANGUAGE C VOLATILE;
-- Whether a builder of this database is running or waiting for its turn
-- (it holds an advisory lock on (1952999777, 1) while it works).
CREATE FUNCTION topgun._index_builder_running() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM pg_locks l
                  WHERE l.locktype = 'advisory' AND l.classid = 1952999777 AND l.objid = 1 AND l.objsubid = 2
                    AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))
$$;

-- The statements the builder runs for a row, in order, outside a
-- transaction block: for 'building', per table, drop an invalid leftover and
-- create the index (IF NOT EXISTS: a valid index from an interrupted run is
-- kept); for 'dropping', drop both.  cleanup: only drop invalid leftovers
-- (after a failed build).
CREATE FUNCTION topgun._index_steps(map text, fields text[], cleanup boolean DEFAULT false) RETURNS SETOF text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r topgun.field_indexes;
  t text;
  idx name;
  valid boolean;
  cols text;
BEGIN
  SELECT * INTO r FROM topgun.field_indexes f WHERE f.map = _index_steps.map AND f.fields = _index_steps.fields;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  -- one column per field: (value #> '{cat}'::text[]), (value #> '{n}'::text[])
  SELECT string_agg(format('(value #> %L::text[])', topgun._index_path(u.f)::text), ', ' ORDER BY u.o)
    INTO cols FROM unnest(r.fields) WITH ORDINALITY u(f, o);
  FOREACH t IN ARRAY ARRAY['lww', 'ormap'] LOOP
    idx := CASE t WHEN 'lww' THEN r.lww_index ELSE r.or_index END;
    SELECT i.indisvalid AND i.indisready INTO valid
      FROM pg_index i WHERE i.indexrelid = to_regclass(format('topgun.%I', idx));
    IF r.state = 'dropping' THEN
      RETURN NEXT format('DROP INDEX CONCURRENTLY IF EXISTS topgun.%I', idx);
    ELSIF r.state = 'building' OR cleanup THEN
      IF NOT valid THEN
        RETURN NEXT format('DROP INDEX CONCURRENTLY IF EXISTS topgun.%I', idx);
      END IF;
      IF NOT cleanup THEN
        RETURN NEXT format('CREATE INDEX CONCURRENTLY IF NOT EXISTS %I ON topgun.%I USING %s (%s) WHERE map = %L::text',
                           idx, t, r.kind, cols, r.map);
        -- statistics of the new expressions, at once: the reader's page queries
        -- (src/exec/query_sql.c) are planned from them (without, a type-range
        -- lookup such as "value #> '{n}' IS NULL" is estimated at a third of
        -- the table and planned as a scan)
        RETURN NEXT format('ANALYZE topgun.%I', t);
      END IF;
    END IF;
  END LOOP;
END
$$;

-- The builder's result for a row it found in state job_state: a build
-- becomes 'ready' or 'failed'; a drop deletes the row (or records its error
-- and stays 'dropping').  A row whose state changed meanwhile (drop_index
-- during the build) is left alone: the builder takes it up next.
CREATE FUNCTION topgun._index_finish(map text, fields text[], job_state text, err text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF job_state = 'building' THEN
    UPDATE topgun.field_indexes f
       SET state = CASE WHEN err IS NULL THEN 'ready' ELSE 'failed' END, error = err
     WHERE f.map = _index_finish.map AND f.fields = _index_finish.fields AND f.state = 'building';
  ELSIF err IS NULL THEN
    DELETE FROM topgun.field_indexes f
     WHERE f.map = _index_finish.map AND f.fields = _index_finish.fields AND f.state = 'dropping';
  ELSE
    UPDATE topgun.field_indexes f SET error = err
     WHERE f.map = _index_finish.map AND f.fields = _index_finish.fields AND f.state = 'dropping';
  END IF;
END
$$;

-- An index on one field, or on several (btree only: PostgreSQL's hash
-- indexes have one column), in that column order.
CREATE FUNCTION topgun.create_index(map text, fields text[], kind text DEFAULT 'btree') RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  fs text[];
  label text;
  what text;
  r topgun.field_indexes;
  lname name;
  oname name;
BEGIN
  IF map IS NULL OR map = '' OR octet_length(map) > 256 THEN
    RAISE EXCEPTION 'map name must be 1..256 bytes' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  fs := topgun._index_fields(fields);
  label := array_to_string(fs, ', ');
  what := CASE WHEN cardinality(fs) = 1 THEN format('field "%s"', label) ELSE format('fields "%s"', label) END;
  IF kind IS NULL OR kind NOT IN ('btree', 'hash') THEN
    RAISE EXCEPTION 'index kind must be btree or hash, not %', coalesce(quote_literal(kind), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF cardinality(fs) > 1 AND kind <> 'btree' THEN
    RAISE EXCEPTION 'an index on several fields must be btree, not %', quote_literal(kind)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  lname := topgun._index_name(map, fs, 'lww');
  oname := topgun._index_name(map, fs, 'or');
  INSERT INTO topgun.field_indexes AS f (map, field, fields, path, kind, state, lww_index, or_index)
  VALUES (map, label, fs, CASE WHEN cardinality(fs) = 1 THEN topgun._index_path(fs[1]) END,
          kind, 'building', lname, oname)
  ON CONFLICT DO NOTHING;
  IF FOUND THEN
    IF EXISTS (SELECT 1 FROM topgun.field_indexes f
                WHERE f.lww_index = lname AND (f.map, f.fields) <> (create_index.map, fs)) THEN
      RAISE EXCEPTION 'index name % of map "%" % is taken by another field index', lname, map, what;
    END IF;
    PERFORM topgun._index_launch_at_commit();
    RETURN 'building';
  END IF;
  SELECT * INTO r FROM topgun.field_indexes f
   WHERE f.map = create_index.map AND f.fields = fs FOR UPDATE;
  IF r.kind <> kind THEN
    RAISE EXCEPTION 'map "%" % already has a % index', map, what, r.kind
      USING ERRCODE = 'duplicate_object', HINT = 'Drop it first with topgun.drop_index.';
  END IF;
  IF r.state = 'dropping' THEN
    RAISE EXCEPTION 'the index of map "%" % is being dropped', map, what
      USING ERRCODE = 'object_in_use', HINT = 'Wait for the drop with CALL topgun.index_wait(map, field).';
  END IF;
  IF r.state = 'failed' THEN
    -- another try, from the start
    UPDATE topgun.field_indexes f SET state = 'building', error = NULL
     WHERE f.map = create_index.map AND f.fields = fs;
    r.state := 'building';
  END IF;
  IF r.state = 'building' THEN
    -- (a builder already on it makes the new one find nothing to do)
    PERFORM topgun._index_launch_at_commit();
  END IF;
  RETURN r.state;
END
$$;
COMMENT ON FUNCTION topgun.create_index(text, text[], text) IS
  'Index a map''s fields (dotted paths; several: one btree over all, in that order) on both record tables, built concurrently after commit; returns the state';

CREATE FUNCTION topgun.create_index(map text, field text, kind text DEFAULT 'btree') RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT topgun.create_index(map, ARRAY[field], kind) $$;
COMMENT ON FUNCTION topgun.create_index(text, text, text) IS
  'Index a map''s field (dotted path) on both record tables, built concurrently after commit; returns the state';

CREATE FUNCTION topgun.drop_index(map text, fields text[]) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE topgun.field_indexes f SET state = 'dropping', error = NULL
   WHERE f.map = drop_index.map AND f.fields = ARRAY(SELECT unnest(drop_index.fields));
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM topgun._index_launch_at_commit();
  RETURN true;
END
$$;
COMMENT ON FUNCTION topgun.drop_index(text, text[]) IS
  'Drop a field index on these fields (concurrently, after commit); false when there is none';

CREATE FUNCTION topgun.drop_index(map text, field text) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT topgun.drop_index(map, ARRAY[field]) $$;
COMMENT ON FUNCTION topgun.drop_index(text, text) IS
  'Drop a field index (concurrently, after commit); false when the field has none';

-- Wait until the build or drop of a field index has ended: the final state
-- ('ready', 'failed'; NULL once a dropped index is gone), or the current one
-- when the timeout passes first.  A procedure that commits between polls:
-- a function would hold its statement's snapshot for the whole wait, and
-- CREATE INDEX CONCURRENTLY waits for every snapshot older than its own.
-- Call it outside a transaction block (CALL topgun.index_wait('m', 'f'),
-- CALL topgun.index_wait('m', ARRAY['a', 'b'])).
-- (No SET search_path clause: it would forbid the COMMITs; every name in it
-- is qualified or in pg_catalog.)
-- Starts a builder when the row is pending and none is running (it was
-- killed, or the server restarted during the build).
CREATE PROCEDURE topgun.index_wait(map text, fields text[], timeout interval DEFAULT '5 min',
                                   INOUT state text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
  deadline timestamptz := pg_catalog.clock_timestamp() + coalesce(timeout, '5 min');
  launched timestamptz;
  fs text[] := ARRAY(SELECT unnest(fields));
BEGIN
  LOOP
    SELECT f.state INTO state FROM topgun.field_indexes f
     WHERE f.map = index_wait.map AND f.fields = fs;
    IF state IS NULL OR state IN ('ready', 'failed') OR clock_timestamp() >= deadline THEN
      RETURN;
    END IF;
    IF (launched IS NULL OR clock_timestamp() > launched + interval '1 s')
       AND NOT topgun._index_builder_running() THEN
      PERFORM topgun._index_launch();
      launched := clock_timestamp();
    END IF;
    COMMIT;
    PERFORM pg_sleep(0.05);
    COMMIT;
  END LOOP;
END
$$;
COMMENT ON PROCEDURE topgun.index_wait(text, text[], interval, text) IS
  'Wait (CALL, outside a transaction block) until a field index on these fields is ready, failed or dropped (NULL); returns the state';

CREATE PROCEDURE topgun.index_wait(map text, field text, timeout interval DEFAULT '5 min',
                                   INOUT state text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
BEGIN
  CALL topgun.index_wait(map, ARRAY[field], timeout, state);
END
$$;
COMMENT ON PROCEDURE topgun.index_wait(text, text, interval, text) IS
  'Wait (CALL, outside a transaction block) until a field index is ready, failed or dropped (NULL); returns the state';

CREATE VIEW topgun.indexes AS
  SELECT f.map, f.field, f.fields, f.path, f.kind, f.state, f.error, f.created_at,
         pg_relation_size(l.oid) + pg_relation_size(o.oid) AS size,
         coalesce(li.indisvalid AND li.indisready AND oi.indisvalid AND oi.indisready, false) AS valid
    FROM topgun.field_indexes f
    LEFT JOIN pg_class l ON l.oid = to_regclass(format('topgun.%I', f.lww_index))
    LEFT JOIN pg_index li ON li.indexrelid = l.oid
    LEFT JOIN pg_class o ON o.oid = to_regclass(format('topgun.%I', f.or_index))
    LEFT JOIN pg_index oi ON oi.indexrelid = o.oid;
COMMENT ON VIEW topgun.indexes IS
  'Field indexes: fields, state, size of both indexes (NULL while one is missing), whether both are valid and ready';

REVOKE ALL ON topgun.field_indexes FROM PUBLIC;
GRANT SELECT ON topgun.field_indexes, topgun.indexes TO PUBLIC;
REVOKE ALL ON FUNCTION topgun.create_index(text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.create_index(text, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.drop_index(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.drop_index(text, text[]) FROM PUBLIC;
REVOKE ALL ON PROCEDURE topgun.index_wait(text, text, interval, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE topgun.index_wait(text, text[], interval, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._index_launch() FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._index_launch_at_commit() FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._index_steps(text, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._index_finish(text, text[], text, text) FROM PUBLIC;
