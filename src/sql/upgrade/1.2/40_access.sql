-- access (issue 12): grant_access() covers topgun.merkle_pending as well.
CREATE OR REPLACE FUNCTION topgun.grant_access(role name, read_only boolean DEFAULT false) RETURNS void
  LANGUAGE plpgsql VOLATILE STRICT
AS $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['maps', 'lww', 'ormap', 'or_tags', 'counters', 'merkle_nodes', 'merkle_pending', 'merkle_maps', 'or_keys'] LOOP
    EXECUTE format('GRANT SELECT ON topgun.%I TO %I', t, role);
    IF NOT read_only THEN
      EXECUTE format('GRANT INSERT, UPDATE, DELETE ON topgun.%I TO %I', t, role);
    END IF;
  END LOOP;
  FOREACH t IN ARRAY ARRAY['lww_entries', 'or_entries', 'or_tombstones'] LOOP
    EXECUTE format('GRANT SELECT ON topgun.%I TO %I', t, role);
  END LOOP;
END
$$;
