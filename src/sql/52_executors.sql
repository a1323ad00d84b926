-- Executor processes of the sync server (docs/worker.md, "Processes").
CREATE FUNCTION topgun.executors(OUT id integer, OUT role text, OUT pid integer, OUT state text,
                                 OUT requests bigint, OUT queued bigint, OUT errors bigint,
                                 OUT restarts bigint)
  RETURNS SETOF record LANGUAGE C VOLATILE STRICT
  AS 'MODULE_PATHNAME', 'tg_executors_info';
COMMENT ON FUNCTION topgun.executors() IS
  'Executor processes of the sync server: role, pid, state, requests handled, queue depth, errors, restarts';
CREATE VIEW topgun.executors AS SELECT * FROM topgun.executors();
COMMENT ON VIEW topgun.executors IS
  'Executor processes of the sync server (0 = session executor, 1.. = readers): state and queue depths';
REVOKE ALL ON FUNCTION topgun.executors() FROM PUBLIC;
REVOKE ALL ON topgun.executors FROM PUBLIC;
GRANT EXECUTE ON FUNCTION topgun.executors() TO pg_monitor;
GRANT SELECT ON topgun.executors TO pg_monitor;
