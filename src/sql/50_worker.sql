------------------------------------------------------------------------------
-- Sync server (background worker) observability
------------------------------------------------------------------------------
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

CREATE FUNCTION topgun.worker_stats(OUT name text, OUT value bigint)
  RETURNS SETOF record LANGUAGE C VOLATILE STRICT
  AS 'MODULE_PATHNAME', 'tg_worker_stats';
COMMENT ON FUNCTION topgun.worker_stats() IS
  'Counters of the sync server since the cluster started';

CREATE VIEW topgun.worker_stats AS SELECT * FROM topgun.worker_stats();
COMMENT ON VIEW topgun.worker_stats IS
  'Counters of the sync server: connections, auth, messages, ops, commits, acks, wake-up latency';

CREATE FUNCTION topgun.worker_pid() RETURNS integer LANGUAGE C VOLATILE
  AS 'MODULE_PATHNAME', 'tg_worker_pid';
COMMENT ON FUNCTION topgun.worker_pid() IS 'Process id of the sync server worker, NULL if not running';

CREATE FUNCTION topgun.worker_wake() RETURNS boolean LANGUAGE C VOLATILE
  AS 'MODULE_PATHNAME', 'tg_worker_wake';
COMMENT ON FUNCTION topgun.worker_wake() IS
  'Send the sync server its wake-up signal (SIGUSR2); used to measure wake-up latency';

-- Connection rows expose other users' identities and addresses.
REVOKE ALL ON FUNCTION topgun.connections() FROM PUBLIC;
REVOKE ALL ON topgun.connections FROM PUBLIC;
GRANT EXECUTE ON FUNCTION topgun.connections() TO pg_monitor;
GRANT SELECT ON topgun.connections TO pg_monitor;
REVOKE ALL ON FUNCTION topgun.worker_wake() FROM PUBLIC;
