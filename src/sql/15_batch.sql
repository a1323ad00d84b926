------------------------------------------------------------------------------
-- Batch writes
------------------------------------------------------------------------------
CREATE FUNCTION topgun.lww_put_many(maps text[], keys text[], vals jsonb[], ts topgun.hlc[],
                                    ttl_ms bigint[] DEFAULT NULL)
  RETURNS TABLE (ord integer, won boolean, error text)
  AS 'MODULE_PATHNAME', 'lww_put_many' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.lww_put_many(text[], text[], jsonb[], topgun.hlc[], bigint[]) IS
  'Many LWW writes in one statement (NULL or JSON null value = tombstone): one row per input op with won, or the reason it was rejected';
