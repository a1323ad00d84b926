-- The change feed: committed changes only, in commit order, subtransaction-aware.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS topgun;
RESET client_min_messages;
SET search_path = topgun, public;
SELECT _change_feed_attach();
SELECT lww_put('feed', 'a', '1', '10:0:n');
SELECT kind, map, key FROM _change_feed_read();
BEGIN;
SELECT lww_put('feed', 'b', '2', '11:0:n');
SELECT count(*) AS nothing_before_commit FROM _change_feed_read();
COMMIT;
SELECT seq > 0 AS has_seq, kind, map, key, tag, payload, origin, lost FROM _change_feed_read();
-- a rolled-back transaction and a rolled-back savepoint contribute nothing
BEGIN;
SELECT lww_put('feed', 'rolled-back', '1', '12:0:n');
ROLLBACK;
BEGIN;
SELECT lww_put('feed', 'kept', '1', '13:0:n');
SAVEPOINT s;
SELECT lww_put('feed', 'undone', '1', '14:0:n');
ROLLBACK TO SAVEPOINT s;
SAVEPOINT s2;
SELECT lww_put('feed', 'released', '1', '15:0:n');
RELEASE SAVEPOINT s2;
COMMIT;
SELECT kind, key FROM _change_feed_read() ORDER BY seq;
-- a losing write changes no row and is not an event; a tombstone is
SELECT lww_put('feed', 'a', '"old"', '1:0:n') AS lost_merge, lww_remove('feed', 'a', '20:0:n') AS tombstone;
SELECT kind, key FROM _change_feed_read() ORDER BY seq;
-- OR adds and removes carry their tags; counters and topics too
SELECT or_add('feedor', 'k', '"v"', '30:0:n');
SELECT or_remove_tag('feedor', '30:0:n');
SELECT counter_add('feedcount', 3);
SELECT publish('news/today', '{"headline":"hi"}');
BEGIN;
SELECT publish('news/today', '"never"');
ROLLBACK;
SELECT kind, map, key, tag, payload FROM _change_feed_read() ORDER BY seq;
-- events are in commit order
SELECT lww_put('feed', 'o' || i, to_jsonb(i), hlc(100 + i, 0, 'n')) FROM generate_series(1, 5) i \g /dev/null
SELECT array_agg(key ORDER BY seq) AS keys_in_order, bool_and(lost = 0) AS none_lost FROM _change_feed_read();
-- bad input
SELECT publish('bad topic!', '1');
SELECT publish('', '1');
SELECT publish(NULL, '1');
SELECT buffer_bytes > 0 AS has_buffer, consumer_pid = pg_backend_pid() AS consumer_is_me FROM change_feed_stats();
-- dropping and re-creating the extension in the same session keeps working
-- (kept plans and cached map kinds are invalidated)
SELECT lww_put('recreate', 'k', '1', '1:0:n');
DROP EXTENSION topgun;
CREATE EXTENSION topgun;
SELECT lww_put('recreate', 'k', '2', '2:0:n') AS after_recreate, or_add('recreate-or', 'k', '1', '3:0:n') IS NOT NULL AS or_ok;
SELECT lww_get('recreate', 'k'), map_kind('recreate');
-- rows written by direct DML obey the same name limits
INSERT INTO lww (map, key, value, ts) VALUES (repeat('m', 300), 'k', '1', '1:0:n');
