-- topgun install script.  Assembled from src/sql/NN_*.sql by the Makefile.
\echo Use "CREATE EXTENSION topgun" to load this file. \quit

DO $$
BEGIN
  IF pg_catalog.getdatabaseencoding() <> 'UTF8' THEN
    RAISE EXCEPTION 'topgun requires a UTF8 database (this one is %)', pg_catalog.getdatabaseencoding()
      USING ERRCODE = 'feature_not_supported';
  END IF;
END $$;

------------------------------------------------------------------------------
-- The hlc type: hybrid logical clock timestamp "<millis>:<counter>:<nodeId>"
------------------------------------------------------------------------------
CREATE TYPE topgun.hlc;

CREATE FUNCTION topgun.hlc_in(cstring) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_out(topgun.hlc) RETURNS cstring
  AS 'MODULE_PATHNAME', 'hlc_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_recv(internal) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_send(topgun.hlc) RETURNS bytea
  AS 'MODULE_PATHNAME', 'hlc_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE topgun.hlc (
  INPUT = topgun.hlc_in,
  OUTPUT = topgun.hlc_out,
  RECEIVE = topgun.hlc_recv,
  SEND = topgun.hlc_send,
  INTERNALLENGTH = VARIABLE,
  ALIGNMENT = double,
  STORAGE = main
);
COMMENT ON TYPE topgun.hlc IS 'Hybrid logical clock timestamp <millis>:<counter>:<nodeId>, ordered by millis, counter, then nodeId bytes';

CREATE FUNCTION topgun.hlc(millis bigint, counter bigint, node text) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_construct' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_millis(topgun.hlc) RETURNS bigint
  AS 'MODULE_PATHNAME', 'hlc_millis' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_counter(topgun.hlc) RETURNS bigint
  AS 'MODULE_PATHNAME', 'hlc_counter' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_node(topgun.hlc) RETURNS text
  AS 'MODULE_PATHNAME', 'hlc_node' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_now() RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_now' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE FUNCTION topgun.hlc_update(remote topgun.hlc) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_update' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION topgun.node_id() RETURNS text
  AS 'MODULE_PATHNAME', 'tg_node_id_sql' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION topgun.hlc_now() IS 'Next timestamp of the node clock (shared memory; strictly increasing across all backends)';
COMMENT ON FUNCTION topgun.hlc_update(topgun.hlc) IS 'Merge a remote timestamp into the node clock (TopGun update rule) and return the new local time';

CREATE FUNCTION topgun.hlc_cmp(topgun.hlc, topgun.hlc) RETURNS integer
  AS 'MODULE_PATHNAME', 'hlc_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_eq(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_ne(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_lt(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_le(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_gt(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_ge(topgun.hlc, topgun.hlc) RETURNS boolean
  AS 'MODULE_PATHNAME', 'hlc_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_hash(topgun.hlc) RETURNS integer
  AS 'MODULE_PATHNAME', 'hlc_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_hash_extended(topgun.hlc, bigint) RETURNS bigint
  AS 'MODULE_PATHNAME', 'hlc_hash_extended' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_larger(topgun.hlc, topgun.hlc) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_larger' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION topgun.hlc_smaller(topgun.hlc, topgun.hlc) RETURNS topgun.hlc
  AS 'MODULE_PATHNAME', 'hlc_smaller' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR topgun.= (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_eq,
  COMMUTATOR = OPERATOR(topgun.=), NEGATOR = OPERATOR(topgun.<>), RESTRICT = eqsel, JOIN = eqjoinsel,
  HASHES, MERGES);
CREATE OPERATOR topgun.<> (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_ne,
  COMMUTATOR = OPERATOR(topgun.<>), NEGATOR = OPERATOR(topgun.=), RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR topgun.< (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_lt,
  COMMUTATOR = OPERATOR(topgun.>), NEGATOR = OPERATOR(topgun.>=), RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR topgun.<= (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_le,
  COMMUTATOR = OPERATOR(topgun.>=), NEGATOR = OPERATOR(topgun.>), RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR topgun.> (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_gt,
  COMMUTATOR = OPERATOR(topgun.<), NEGATOR = OPERATOR(topgun.<=), RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR topgun.>= (LEFTARG = topgun.hlc, RIGHTARG = topgun.hlc, PROCEDURE = topgun.hlc_ge,
  COMMUTATOR = OPERATOR(topgun.<=), NEGATOR = OPERATOR(topgun.<), RESTRICT = scalargesel, JOIN = scalargejoinsel);

CREATE OPERATOR CLASS topgun.hlc_ops DEFAULT FOR TYPE topgun.hlc USING btree AS
  OPERATOR 1 topgun.<, OPERATOR 2 topgun.<=, OPERATOR 3 topgun.=, OPERATOR 4 topgun.>=, OPERATOR 5 topgun.>,
  FUNCTION 1 topgun.hlc_cmp(topgun.hlc, topgun.hlc);
CREATE OPERATOR CLASS topgun.hlc_hash_ops DEFAULT FOR TYPE topgun.hlc USING hash AS
  OPERATOR 1 topgun.=,
  FUNCTION 1 topgun.hlc_hash(topgun.hlc),
  FUNCTION 2 topgun.hlc_hash_extended(topgun.hlc, bigint);

CREATE AGGREGATE topgun.max(topgun.hlc) (SFUNC = topgun.hlc_larger, STYPE = topgun.hlc, SORTOP = OPERATOR(topgun.>), PARALLEL = SAFE, COMBINEFUNC = topgun.hlc_larger);
CREATE AGGREGATE topgun.min(topgun.hlc) (SFUNC = topgun.hlc_smaller, STYPE = topgun.hlc, SORTOP = OPERATOR(topgun.<), PARALLEL = SAFE, COMBINEFUNC = topgun.hlc_smaller);

------------------------------------------------------------------------------
-- TopGun's string hash (FNV-1a 32 over UTF-16 code units) and Merkle leaf
------------------------------------------------------------------------------
CREATE FUNCTION topgun.key_hash(text) RETURNS bigint
  AS 'MODULE_PATHNAME', 'tg_key_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION topgun.key_hash(text) IS 'TopGun string hash: FNV-1a 32 over UTF-16 code units, as an unsigned 32-bit value';
CREATE FUNCTION topgun.key_leaf(text) RETURNS smallint
  AS 'MODULE_PATHNAME', 'tg_key_leaf' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION topgun.key_leaf(text) IS 'Merkle leaf (0..4095) of a key: the first three hex digits of key_hash';

-- Milliseconds since the Unix epoch at statement start (TTL checks).
CREATE FUNCTION topgun.now_ms() RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT (extract(epoch FROM pg_catalog.statement_timestamp()) * 1000)::bigint $$;
