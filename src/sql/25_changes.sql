------------------------------------------------------------------------------
-- Change feed: committed changes from every backend reach the sync worker
------------------------------------------------------------------------------
CREATE FUNCTION topgun._counter_change_trigger() RETURNS trigger
  AS 'MODULE_PATHNAME', 'tg_counter_change_trigger' LANGUAGE C;
CREATE TRIGGER counters_change AFTER INSERT OR UPDATE ON topgun.counters
  FOR EACH ROW EXECUTE FUNCTION topgun._counter_change_trigger();
ALTER TABLE topgun.counters ENABLE ALWAYS TRIGGER counters_change;

CREATE FUNCTION topgun.publish(topic text, data jsonb) RETURNS void
  AS 'MODULE_PATHNAME', 'tg_publish' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.publish(text, jsonb) IS
  'Publish a message to a topic''s WebSocket subscribers when the calling transaction commits';

CREATE FUNCTION topgun.change_feed_stats(
    OUT buffer_bytes bigint, OUT used_bytes bigint, OUT events_appended bigint,
    OUT events_dropped bigint, OUT unread_bytes bigint, OUT last_seq bigint,
    OUT consumer_pid integer, OUT lost_unreported bigint)
  AS 'MODULE_PATHNAME', 'tg_change_feed_stats' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun.change_feed_stats() IS
  'State of the shared ring that carries committed changes to the sync worker';

CREATE FUNCTION topgun._change_feed_attach() RETURNS void
  AS 'MODULE_PATHNAME', 'tg_change_feed_attach' LANGUAGE C VOLATILE;
CREATE FUNCTION topgun._change_feed_read(
    OUT seq bigint, OUT kind text, OUT map text, OUT key text, OUT tag text, OUT payload text,
    OUT origin bigint, OUT lost bigint) RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'tg_change_feed_read' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION topgun._change_feed_attach() IS
  'Make this session the change-feed consumer (operators and tests, when no sync worker runs)';
REVOKE ALL ON FUNCTION topgun._change_feed_attach() FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._change_feed_read() FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.change_feed_stats() FROM PUBLIC;
