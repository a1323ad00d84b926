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
