-- The event journal: every committed change of a journaled map, in sequence order.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS topgun;
RESET client_min_messages;
SET search_path = topgun, public;
-- nothing journaled yet: reads answer like the reference's disabled journal
SELECT journal_enabled(), journal_enabled('j-lww');
SELECT * FROM journal_read(0);
SELECT journal_enable('j-*') AS enabled, journal_enable('j-*') AS again, journal_enable('audit') AS exact;
SELECT journal_enabled(), journal_enabled('j-lww'), journal_enabled('audit'), journal_enabled('auditx'),
       journal_enabled('other');
SELECT * FROM journal_read(0, 10, 'other');
SELECT count(*) AS before FROM journal_events \gset
-- LWW: PUT, UPDATE, DELETE (tombstone), a put after a tombstone is an UPDATE,
-- a losing write is no event, maps not journaled are not recorded
SELECT lww_put('j-lww', 'a', '1', '10:0:n'), lww_put('j-lww', 'a', '2', '11:0:n'),
       lww_remove('j-lww', 'a', '12:0:n'), lww_put('j-lww', 'a', '3', '13:0:n'),
       lww_put('j-lww', 'a', '"old"', '5:0:n') AS loses, lww_put('other', 'a', '1', '10:0:n');
SELECT type, map_name, key, value, previous_value, "timestamp", node_id = node_id() AS this_node, metadata
  FROM journal WHERE sequence >= :before ORDER BY sequence;
-- the JSON event is TopGun's JournalEvent: sequence as a string, value absent on delete
SELECT event - 'sequence' AS event, event->>'sequence' = sequence::text AS seq_string
  FROM journal_read(:before, 3);
-- batch writes, tombstones for new keys, and plain SQL
SELECT count(*) FROM lww_put_many(ARRAY['j-lww', 'j-lww', 'other'], ARRAY['b', 'c', 'b'],
                                  ARRAY['1', NULL, '1']::jsonb[], ARRAY['20:0:n', '20:0:n', '20:0:n']::hlc[]);
INSERT INTO lww (map, key, value, ts) VALUES ('j-lww', 'sql', '{"x":1}', '30:0:n');
UPDATE lww SET value = '{"x":2}', ts = '31:0:n' WHERE map = 'j-lww' AND key = 'sql';
DELETE FROM lww WHERE map = 'j-lww' AND key = 'sql';        -- a live row removed by DML
DELETE FROM lww WHERE map = 'j-lww' AND key = 'c';          -- a tombstone removed: no change
SELECT type, key, value, previous_value FROM journal WHERE sequence > :before + 3 ORDER BY sequence;
-- OR maps: PUT, UPDATE of a key with records (previousValue = its first older record), DELETE
-- (decided at commit, from the records present then)
SELECT or_add('j-or', 'k', '"x"', '40:0:n') IS NOT NULL;
SELECT or_add('j-or', 'k', '"y"', '41:0:n') IS NOT NULL;
SELECT or_apply('j-or', 'k', '"x2"', '40:0:n', '42:0:n');
SELECT or_remove_tag('j-or', '41:0:n');
SELECT or_add('j-or', 'k2', '"z"', '43:0:n') IS NOT NULL, or_add('j-or', 'k2', '"w"', '44:0:n') IS NOT NULL;
SELECT type, key, value, previous_value, metadata,
       CASE WHEN type = 'DELETE' THEN hlc_node("timestamp") = node_id() ELSE "timestamp" = '40:0:n' OR "timestamp" > '40:0:n' END AS ts_ok
  FROM journal WHERE map_name = 'j-or' ORDER BY sequence;
-- TTL expiry is a change like any other
SELECT lww_put('j-lww', 'ttl', '"soon"', hlc(now_ms() - 10000, 0, 'n'), 1000);
SELECT expire_ttl() >= 1 AS expired;
SELECT type, value, previous_value FROM journal WHERE map_name = 'j-lww' AND key = 'ttl' ORDER BY sequence;
-- replication apply (session_replication_role = replica: the merge triggers
-- of src/sql/30_replication.sql) is journaled
SET session_replication_role = replica;
INSERT INTO lww (map, key, leaf, value, ts) VALUES ('j-lww', 'repl', key_leaf('repl'), '"from-peer"', '45:0:peer');
INSERT INTO lww (map, key, leaf, value, ts) VALUES ('j-lww', 'repl', key_leaf('repl'), '"older"', '44:0:peer');
RESET session_replication_role;
SELECT type, value FROM journal WHERE map_name = 'j-lww' AND key = 'repl' ORDER BY sequence;
-- in a mesh an UPDATE of a tombstone is rewritten as DELETE + INSERT
-- (lww_reinsert): still one event
ALTER TABLE lww ENABLE ALWAYS TRIGGER lww_reinsert;
SELECT lww_remove('j-lww', 'mesh', '46:0:n'), lww_put('j-lww', 'mesh', '"back"', '47:0:n'),
       lww_remove('j-lww', 'mesh', '48:0:n'), lww_remove('j-lww', 'mesh', '49:0:n');
ALTER TABLE lww DISABLE TRIGGER lww_reinsert;
SELECT type, value, previous_value, "timestamp" FROM journal WHERE map_name = 'j-lww' AND key = 'mesh' ORDER BY sequence;
-- rolled-back writes and savepoints are never journaled
SELECT max(sequence) AS mark FROM journal \gset
BEGIN;
SELECT lww_put('j-lww', 'rolled-back', '1', '50:0:n');
ROLLBACK;
BEGIN;
SELECT lww_put('j-lww', 'kept', '1', '51:0:n');
SAVEPOINT s1;
SELECT lww_put('j-lww', 'undone', '1', '52:0:n');
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
SELECT lww_put('j-lww', 'released', '1', '53:0:n');
RELEASE SAVEPOINT s2;
COMMIT;
SELECT key FROM journal WHERE sequence > :mark ORDER BY sequence;
-- a large transaction writes its events in chunks (topgun.journal_buffer_events)
-- and a rollback after a chunk removes them again
SET topgun.journal_buffer_events = 3;
BEGIN;
SELECT count(*) FROM (SELECT lww_put('j-lww', 'big' || i, to_jsonb(i), hlc(60 + i, 0, 'n')) FROM generate_series(1, 7) i) s;
SELECT count(*) AS written_before_commit FROM journal WHERE key LIKE 'big%';
SELECT journal_horizon() < (SELECT min(sequence) FROM journal WHERE key LIKE 'big%') AS horizon_held_back;
ROLLBACK;
SELECT count(*) AS after_rollback FROM journal WHERE key LIKE 'big%';
SELECT count(*) FROM (SELECT lww_put('j-lww', 'big' || i, to_jsonb(i), hlc(60 + i, 0, 'n')) FROM generate_series(1, 7) i) s;
SELECT array_agg(key ORDER BY sequence) AS in_order FROM journal WHERE key LIKE 'big%';
RESET topgun.journal_buffer_events;
-- sequence numbers grow; the horizon reaches the last committed one
SELECT max(sequence) = journal_horizon() AS horizon_at_end,
       bool_and(d > 0) AS strictly_increasing
  FROM (SELECT sequence, sequence - lag(sequence) OVER (ORDER BY sequence) AS d FROM journal) s;
-- reads: inclusive from, limit, map and type filters, has_more
SELECT count(*), bool_and(has_more) FROM journal_read(0, 2);
SELECT count(*) = (SELECT count(*) FROM journal) AS all_of_them, bool_or(has_more) AS more
  FROM journal_read(0, 10000);
SELECT type, key, has_more FROM journal_read(0, 2, 'j-or', ARRAY['PUT', 'DELETE']);
SELECT count(*) FROM journal_read((SELECT max(sequence) + 1 FROM journal));
SELECT count(*) FROM journal_read(0, 10, NULL, '{}');
SELECT * FROM journal_read(-1);
SELECT * FROM journal_read(0, 0);
SELECT * FROM journal_read(0, 10001);
SELECT * FROM journal_read(0, 10, NULL, ARRAY['REMOVE']);
SELECT * FROM journal_read(NULL);
-- a transaction with journal events cannot be prepared
BEGIN;
SELECT lww_put('j-lww', 'prepared', '1', '70:0:n');
PREPARE TRANSACTION 'j';
SELECT count(*) FROM journal WHERE key = 'prepared';
-- (not journaled maps are unaffected)
BEGIN;
SELECT lww_put('other', 'prepared', '1', '70:0:n');
PREPARE TRANSACTION 'j2';
COMMIT PREPARED 'j2';
-- under REPEATABLE READ the horizon could be older than the snapshot: refused
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM journal_read(0);
ROLLBACK;
-- retention: by count (the last N sequence numbers) and by age
SELECT count(*) AS total FROM journal \gset
SET topgun.journal_retention_count = 5;
SET topgun.journal_retention_age = 0;
SELECT journal_trim(2) AS trimmed_bounded, journal_trim() AS trimmed_rest;
SELECT count(*) <= 5 AS at_most_5, max(sequence) = journal_horizon() AS newest_kept FROM journal;
SET topgun.journal_retention_count = 0;
SET topgun.journal_retention_age = '1h';
UPDATE journal_events SET recorded_at = now() - interval '2 hours'
 WHERE seq = (SELECT min(seq) FROM journal_events);
SELECT journal_trim() AS trimmed_by_age;
RESET topgun.journal_retention_age;
RESET topgun.journal_retention_count;
SELECT journal_trim() AS nothing_with_defaults;
SELECT journal_trim(0);
-- disable: the map stops being journaled, its events stay readable only while enabled
SELECT journal_disable('audit') AS disabled, journal_disable('audit') AS again, journal_disable('nope');
SELECT journal_disable('j-*');
SELECT lww_put('j-lww', 'after-disable', '1', '80:0:n');
SELECT count(*) FROM journal WHERE key = 'after-disable';
SELECT journal_enabled();
SELECT * FROM journal_read(0);
SELECT journal_enable('');
SELECT journal_enable(repeat('x', 257));
SELECT journal_enable(NULL);
-- patterns: * anywhere
SELECT journal_enable('*-log-*');
SELECT journal_enabled('a-log-b'), journal_enabled('-log-'), journal_enabled('a-log'), journal_enabled('log-b');
SELECT journal_disable('*-log-*');
-- numbering survives dropping the journal's rows
SELECT journal_enable('j-*');
SELECT max(seq) AS top FROM journal_events \gset
TRUNCATE journal_events;
SELECT lww_put('j-lww', 'after-truncate', '1', '90:0:n');
SELECT sequence > :top AS still_growing FROM journal WHERE key = 'after-truncate';
-- a non-superuser writing a journaled map needs no privileges on the journal
CREATE ROLE journal_writer;
SELECT grant_access('journal_writer');
SET ROLE journal_writer;
SELECT lww_put('j-lww', 'by-writer', '1', '91:0:n');
SELECT count(*) FROM journal_events;   -- reading it is not granted
RESET ROLE;
SELECT type, key FROM journal WHERE key = 'by-writer';
DROP OWNED BY journal_writer;
DROP ROLE journal_writer;
SELECT journal_disable('j-*');
-- dropping and re-creating the extension in this session keeps working
DROP EXTENSION topgun;
CREATE EXTENSION topgun;
SELECT journal_enable('again');
SELECT lww_put('again', 'k', '1', '1:0:n');
SELECT sequence, type, key FROM journal;
SELECT journal_disable('again');
TRUNCATE journal_events;
