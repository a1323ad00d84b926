------------------------------------------------------------------------------
-- Live data: access-control policies and durable topic queues of the sync
-- server (docs/access-control.md, docs/live.md)
------------------------------------------------------------------------------
CREATE TABLE topgun.policies (
  id         serial PRIMARY KEY,
  role       text NOT NULL,
  pattern    text NOT NULL CHECK (length(pattern) BETWEEN 1 AND 512),
  actions    text[] NOT NULL
             CHECK (cardinality(actions) > 0 AND actions <@ ARRAY['READ', 'PUT', 'REMOVE', 'ALL']),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE topgun.policies IS
  'Sync-server permissions: a token role may do actions on maps / topic:<name> / counter:<name> matching pattern (* wildcard, {userId} substitution). Empty table = everything allowed.';
SELECT pg_catalog.pg_extension_config_dump('topgun.policies', '');
SELECT pg_catalog.pg_extension_config_dump('topgun.policies_id_seq', '');

-- The worker reloads its copy in commit order, through the change feed.
CREATE FUNCTION topgun._policies_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM topgun.publish('topgun:policies-changed', NULL);
  RETURN NULL;
END
$$;
CREATE TRIGGER policies_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON topgun.policies
  FOR EACH STATEMENT EXECUTE FUNCTION topgun._policies_changed();

-- Durable topic subscribers: identity = token sub (or userId) + topic.  A
-- subscription stays registered after its connection closes (until
-- TOPIC_UNSUB); messages published while no connection of that identity is
-- subscribed wait in topgun.topic_queue (at most topgun.topic_queue_size per
-- identity, oldest dropped first) and are delivered in order on the next
-- TOPIC_SUB of that identity.
CREATE TABLE topgun.topic_subscriptions (
  subscriber text NOT NULL,
  topic      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen  timestamptz NOT NULL DEFAULT now(),
  dropped    bigint NOT NULL DEFAULT 0,      -- messages dropped because the queue was full
  last_drop_at timestamptz,
  PRIMARY KEY (subscriber, topic)
);
CREATE INDEX topic_subscriptions_topic_idx ON topgun.topic_subscriptions (topic);
COMMENT ON TABLE topgun.topic_subscriptions IS
  'Durable topic subscribers of the sync server (token sub + topic) and their queue drop counters';

CREATE TABLE topgun.topic_queue (
  id           bigserial PRIMARY KEY,
  subscriber   text NOT NULL,
  topic        text NOT NULL,
  data         jsonb,
  publisher    text,
  published_ms double precision NOT NULL
);
CREATE INDEX topic_queue_sub_idx ON topgun.topic_queue (subscriber, topic, id);
COMMENT ON TABLE topgun.topic_queue IS
  'Topic messages waiting for offline subscribers, delivered in id order on their next TOPIC_SUB';

CREATE VIEW topgun.topic_queues AS
  SELECT s.subscriber, s.topic, s.created_at, s.last_seen,
         (SELECT count(*) FROM topgun.topic_queue q
           WHERE q.subscriber = s.subscriber AND q.topic = s.topic) AS queued,
         s.dropped, s.last_drop_at
    FROM topgun.topic_subscriptions s;
COMMENT ON VIEW topgun.topic_queues IS
  'Per durable topic subscriber: messages waiting and messages dropped because the queue was full';

-- Called by the worker: queue a message for every durable subscriber of the
-- topic not in `online`, then trim each queue to queue_size (oldest first).
CREATE FUNCTION topgun._topic_enqueue(topic text, data jsonb, publisher text, published_ms double precision,
                                      online text[], queue_size integer,
                                      OUT queued integer, OUT dropped integer)
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r record;
  n integer;
BEGIN
  queued := 0;
  dropped := 0;
  FOR r IN SELECT s.subscriber FROM topgun.topic_subscriptions s
            WHERE s.topic = _topic_enqueue.topic AND s.subscriber <> ALL (online)
            ORDER BY s.subscriber
  LOOP
    IF queue_size > 0 THEN
      INSERT INTO topgun.topic_queue (subscriber, topic, data, publisher, published_ms)
      VALUES (r.subscriber, _topic_enqueue.topic, _topic_enqueue.data, _topic_enqueue.publisher,
              _topic_enqueue.published_ms);
      queued := queued + 1;
    END IF;
    DELETE FROM topgun.topic_queue q
     WHERE q.id IN (SELECT q2.id FROM topgun.topic_queue q2
                     WHERE q2.subscriber = r.subscriber AND q2.topic = _topic_enqueue.topic
                     ORDER BY q2.id DESC OFFSET greatest(queue_size, 0));
    GET DIAGNOSTICS n = ROW_COUNT;
    IF queue_size <= 0 THEN
      n := n + 1;                      -- nothing can be kept: this message is dropped too
    END IF;
    IF n > 0 THEN
      UPDATE topgun.topic_subscriptions s SET dropped = s.dropped + n, last_drop_at = now()
       WHERE s.subscriber = r.subscriber AND s.topic = _topic_enqueue.topic;
      dropped := dropped + n;
    END IF;
  END LOOP;
END
$$;

-- Called by the worker on TOPIC_SUB of an identified client: register the
-- durable subscription and hand over (and delete) its queued messages in order.
CREATE FUNCTION topgun._topic_subscribe(subscriber text, topic text)
  RETURNS TABLE (data jsonb, publisher text, published_ms double precision)
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO topgun.topic_subscriptions AS s (subscriber, topic)
  VALUES (_topic_subscribe.subscriber, _topic_subscribe.topic)
  ON CONFLICT ON CONSTRAINT topic_subscriptions_pkey DO UPDATE SET last_seen = now();
  RETURN QUERY
    WITH d AS (DELETE FROM topgun.topic_queue q
                WHERE q.subscriber = _topic_subscribe.subscriber AND q.topic = _topic_subscribe.topic
                RETURNING q.id, q.data, q.publisher, q.published_ms)
    SELECT d.data, d.publisher, d.published_ms FROM d ORDER BY d.id;
END
$$;

-- TOPIC_UNSUB: forget the durable subscription and its queue.  Returns
-- whether the topic still has durable subscribers.
CREATE FUNCTION topgun._topic_unsubscribe(subscriber text, topic text) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  DELETE FROM topgun.topic_queue q
   WHERE q.subscriber = _topic_unsubscribe.subscriber AND q.topic = _topic_unsubscribe.topic;
  DELETE FROM topgun.topic_subscriptions s
   WHERE s.subscriber = _topic_unsubscribe.subscriber AND s.topic = _topic_unsubscribe.topic;
  RETURN EXISTS (SELECT 1 FROM topgun.topic_subscriptions s WHERE s.topic = _topic_unsubscribe.topic);
END
$$;

-- Operators: forget durable subscribers not seen for a while (and their queues).
CREATE FUNCTION topgun.topic_purge(older_than interval) RETURNS integer
  LANGUAGE plpgsql VOLATILE STRICT AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM topgun.topic_queue q USING topgun.topic_subscriptions s
   WHERE q.subscriber = s.subscriber AND q.topic = s.topic AND s.last_seen < now() - older_than;
  DELETE FROM topgun.topic_subscriptions s WHERE s.last_seen < now() - older_than;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION topgun.topic_purge(interval) IS
  'Remove durable topic subscribers (and their queued messages) not seen within the interval';

REVOKE ALL ON FUNCTION topgun._topic_enqueue(text, jsonb, text, double precision, text[], integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._topic_subscribe(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun._topic_unsubscribe(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION topgun.topic_purge(interval) FROM PUBLIC;
