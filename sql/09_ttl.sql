-- TTL expiry turns expired records into tombstones through the normal write path.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS topgun;
RESET client_min_messages;
SET search_path = topgun, public;
SELECT lww_put('exp', 'old', '"gone"', '1000000:5:n', 1000),
       lww_put('exp', 'fresh', '"here"', hlc(now_ms(), 0, 'n'), 3600000),
       lww_put('exp', 'forever', '"stays"', hlc(now_ms() - 10000, 0, 'n'));
SELECT or_apply('exp-or', 'k', '"gone"', 'tag-old', hlc(now_ms() - 10000, 0, 'n'), 1000),
       or_apply('exp-or', 'k', '"here"', 'tag-new', hlc(now_ms(), 0, 'n'), 3600000);
SELECT expire_ttl();
SELECT key, value IS NULL AS tombstone, ts = hlc(1001000, 0, node_id()) AS stamped_at_expiry,
       hlc_node(ts) = node_id() AS by_this_node
  FROM lww WHERE map = 'exp' ORDER BY key;
SELECT tag FROM or_tombstones WHERE map = 'exp-or';
SELECT tag FROM ormap WHERE map = 'exp-or';
SELECT expire_ttl() AS nothing_left, merkle_verify('exp'), merkle_verify('exp-or');
SELECT expire_ttl(0);
-- expires_ms is kept by the lww_expiry/ormap_expiry triggers for every write
-- path, and the same triggers refuse a non-positive ttl_ms from plain SQL
INSERT INTO lww (map, key, value, ts, ttl_ms) VALUES ('exp-sql', 'a', '1', '5000:0:n', 250);
INSERT INTO lww (map, key, value, ts) VALUES ('exp-sql', 'b', '1', '5000:0:n');
SELECT key, expires_ms FROM lww WHERE map = 'exp-sql' ORDER BY key;
UPDATE lww SET ts = '6000:0:n' WHERE map = 'exp-sql' AND key = 'a';
UPDATE lww SET value = NULL WHERE map = 'exp-sql' AND key = 'b';
UPDATE lww SET ttl_ms = 10, value = '2' WHERE map = 'exp-sql' AND key = 'b';
SELECT key, expires_ms FROM lww WHERE map = 'exp-sql' ORDER BY key;
UPDATE lww SET value = NULL WHERE map = 'exp-sql' AND key = 'a';  -- a tombstone never expires
UPDATE lww SET expires_ms = 1 WHERE map = 'exp-sql' AND key = 'b'; -- recomputed, not taken
SELECT key, expires_ms FROM lww WHERE map = 'exp-sql' ORDER BY key;
INSERT INTO lww (map, key, value, ts, ttl_ms) VALUES ('exp-sql', 'c', '1', '5000:0:n', 0);
UPDATE lww SET ttl_ms = -5 WHERE map = 'exp-sql' AND key = 'b';
INSERT INTO ormap (map, key, tag, value, ts, ttl_ms) VALUES ('exp-sql-or', 'k', 't1', '1', '7000:0:n', -1);
SELECT count(*) AS rows_after_rejections FROM lww WHERE map = 'exp-sql';
SELECT or_apply('exp-sql-or', 'k', '"v"', 't2', '7000:0:n', 30);
SELECT tag, expires_ms FROM ormap WHERE map = 'exp-sql-or';
SELECT merkle_verify('exp-sql'), merkle_verify('exp-sql-or');
-- the trigger function refuses any other use: not a BEFORE ROW trigger, or a
-- table without the columns it keeps
CREATE TEMP TABLE wrong_use (value jsonb, ts hlc, ttl_ms bigint, expires_ms bigint);
CREATE TRIGGER after_row AFTER INSERT ON wrong_use FOR EACH ROW EXECUTE FUNCTION _fill_expiry();
INSERT INTO wrong_use VALUES ('1', '1:0:n', 5, NULL);
DROP TRIGGER after_row ON wrong_use;
ALTER TABLE wrong_use DROP COLUMN expires_ms;
CREATE TRIGGER before_row BEFORE INSERT ON wrong_use FOR EACH ROW EXECUTE FUNCTION _fill_expiry();
INSERT INTO wrong_use VALUES ('1', '1:0:n', 5);
SELECT count(*) AS rows_stored FROM wrong_use;
