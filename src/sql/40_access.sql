------------------------------------------------------------------------------
-- Privileges
--
-- The write functions run with the caller's rights (SECURITY INVOKER), so an
-- application role needs privileges on the storage tables, exactly as if it
-- wrote them with plain SQL.  topgun.grant_access() grants the set a role
-- needs; everything else stays with the extension owner.
------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA topgun TO PUBLIC;

CREATE FUNCTION topgun.grant_access(role name, read_only boolean DEFAULT false) RETURNS void
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
COMMENT ON FUNCTION topgun.grant_access(name, boolean) IS
  'Grant a role what it needs to read (and unless read_only, write) CRDT state with the topgun functions';
REVOKE ALL ON FUNCTION topgun.grant_access(name, boolean) FROM PUBLIC;
