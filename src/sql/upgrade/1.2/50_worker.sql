-- worker (issue 17 item 8): topgun.connections gains rate_limited, the
-- connection's messages refused by the rate limits.  A view's columns and a
-- function's OUT parameters cannot change in place: both are made again.
DROP VIEW topgun.connections;
DROP FUNCTION topgun.connections();
CREATE FUNCTION topgun.connections(
    OUT id bigint, OUT remote_addr text, OUT user_id text, OUT authenticated boolean,
    OUT connected_since timestamptz, OUT messages_in bigint, OUT messages_out bigint,
    OUT bytes_in bigint, OUT bytes_out bigint, OUT pending_out_bytes bigint,
    OUT subscriptions integer, OUT slot integer, OUT queries integer, OUT topics integer,
    OUT counters integer, OUT limit_hits bigint, OUT access_denied bigint,
    OUT rate_limited bigint)
  RETURNS SETOF record LANGUAGE C VOLATILE STRICT
  AS 'MODULE_PATHNAME', 'tg_connections';
COMMENT ON FUNCTION topgun.connections() IS
  'One row per live WebSocket connection of the sync server (superuser / pg_monitor)';
CREATE VIEW topgun.connections AS SELECT * FROM topgun.connections();
COMMENT ON VIEW topgun.connections IS
  'Live WebSocket connections of the sync server: address, JWT user, traffic counters, pending outbound bytes';
REVOKE ALL ON FUNCTION topgun.connections() FROM PUBLIC;
REVOKE ALL ON topgun.connections FROM PUBLIC;
GRANT EXECUTE ON FUNCTION topgun.connections() TO pg_monitor;
GRANT SELECT ON topgun.connections TO pg_monitor;
