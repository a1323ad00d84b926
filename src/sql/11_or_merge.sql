------------------------------------------------------------------------------
-- OR-map merge and tombstones that report what they changed (issue 17:
-- ORMAP_PUSH_DIFF forwards exactly the adds and removes _or_merge_key
-- returns).  Its own part so that the 1.1 -> 1.2 upgrade links it
-- (src/sql/upgrade/1.2/11_or_merge.sql) instead of copying it: or_remove_tag
-- and or_merge_key existed in 1.1 and are replaced.
------------------------------------------------------------------------------
-- Tombstone one tag: whether it was not tombstoned before, and the key of
-- the live record it removed (NULL: no record held the tag).  Used by
-- or_remove_tag and by _or_merge_key, which reports what it removed.
CREATE FUNCTION topgun._or_tombstone(map text, tag text, OUT newly boolean, OUT removed_key text)
  LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  n integer;
BEGIN
  PERFORM topgun._check_tag(tag);
  PERFORM topgun._check_write('or', map, '', 'null'::jsonb, topgun.hlc_now(), NULL);
  INSERT INTO topgun.or_tags AS t (map, tag, removed_at) VALUES (_or_tombstone.map, _or_tombstone.tag, now())
  ON CONFLICT ON CONSTRAINT or_tags_pkey DO UPDATE SET removed_at = now() WHERE t.removed_at IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  newly := n > 0;
  IF newly THEN
    WITH d AS (DELETE FROM topgun.ormap o WHERE o.map = _or_tombstone.map AND o.tag = _or_tombstone.tag
               RETURNING o.key)
    SELECT min(d.key) INTO removed_key FROM d;
    IF removed_key IS NOT NULL THEN
      UPDATE topgun.or_tags t SET key = removed_key WHERE t.map = _or_tombstone.map AND t.tag = _or_tombstone.tag;
    END IF;
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION topgun.or_remove_tag(map text, tag text) RETURNS boolean LANGUAGE sql VOLATILE
AS $$ SELECT t.newly FROM topgun._or_tombstone($1, $2) t $$;
COMMENT ON FUNCTION topgun.or_remove_tag(text, text) IS
  'Tombstone one tag (removing its record wherever it is); true when the tag was not tombstoned before';

-- TopGun mergeKey, reporting what changed (ORMAP_PUSH_DIFF forwards exactly
-- that): one row per live record a tombstone removed (op 'remove', the
-- record's key and tag) and per record added or updated (op 'add', rec = its
-- 1-based position in `records`).  Records and tombstones that changed
-- nothing give no row.
CREATE FUNCTION topgun._or_merge_key(map text, key text, records jsonb, tombstones text[],
                                     OUT op text, OUT op_key text, OUT op_tag text, OUT rec integer)
  RETURNS SETOF record LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  r jsonb;
  t text;
  i integer := 0;
  ts topgun.hlc;
BEGIN
  IF records IS NOT NULL AND jsonb_typeof(records) <> 'array' THEN
    RAISE EXCEPTION 'records must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH t IN ARRAY coalesce(tombstones, '{}') LOOP
    SELECT 'remove', x.removed_key, t, NULL INTO op, op_key, op_tag, rec FROM topgun._or_tombstone(map, t) x;
    IF op_key IS NOT NULL THEN
      RETURN NEXT;
    END IF;
  END LOOP;
  FOR r IN SELECT * FROM jsonb_array_elements(coalesce(records, '[]')) LOOP
    i := i + 1;
    IF jsonb_typeof(r) <> 'object' OR jsonb_typeof(r->'timestamp') <> 'object'
       OR jsonb_typeof(r->'tag') <> 'string' OR NOT r ? 'value' THEN
      RAISE EXCEPTION 'invalid OR-map record: %', r USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
      ts := topgun.hlc((r->'timestamp'->>'millis')::bigint, (r->'timestamp'->>'counter')::bigint,
                       r->'timestamp'->>'nodeId');
    EXCEPTION WHEN data_exception OR null_value_not_allowed THEN
      RAISE EXCEPTION 'invalid OR-map record timestamp: %', r->'timestamp' USING ERRCODE = 'invalid_parameter_value';
    END;
    IF topgun.or_apply(map, key, r->'value', r->>'tag', ts, (r->>'ttlMs')::bigint) THEN
      op := 'add';
      op_key := key;
      op_tag := r->>'tag';
      rec := i;
      RETURN NEXT;
    END IF;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION topgun.or_merge_key(map text, key text, records jsonb, tombstones text[])
  RETURNS integer LANGUAGE sql VOLATILE
AS $$ SELECT count(*)::integer FROM topgun._or_merge_key($1, $2, $3, $4) $$;
COMMENT ON FUNCTION topgun.or_merge_key(text, text, jsonb, text[]) IS
  'TopGun mergeKey: union tombstones, then add or update the given records; returns how many records changed (added, updated, or removed by a tombstone)';
