-- lww_put_many: per-op results, duplicates collapsed, bad ops reported not raised.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS topgun;
RESET client_min_messages;
SET search_path = topgun, public;
SELECT * FROM lww_put_many(ARRAY['b1','b1','b1','b1'], ARRAY['x','y','x','z'],
                           ARRAY['1','2','3',NULL]::jsonb[],
                           ARRAY['5:0:n','5:0:n','6:0:n','7:0:n']::hlc[]);
SELECT key, value, ts FROM lww WHERE map = 'b1' ORDER BY key;
-- re-delivery: nothing wins, state unchanged
SELECT * FROM lww_put_many(ARRAY['b1','b1'], ARRAY['x','y'], ARRAY['3','2']::jsonb[], ARRAY['6:0:n','5:0:n']::hlc[]);
-- bad ops are rejected individually; the good one is applied
SELECT or_add('b-or', 'k', '1') IS NOT NULL AS or_map_created;
SET topgun.strict_clock = on;
SELECT ord, won, error FROM lww_put_many(
  ARRAY['b1', 'b-or', '', 'b1', 'b1', 'b1', NULL, 'b1'],
  ARRAY['ok', 'k', 'k', repeat('k', 1100), 'ttl', 'future', 'k', NULL],
  ARRAY['1', '1', '1', '1', '1', '1', '1', '1']::jsonb[],
  ARRAY['8:0:n', '8:0:n', '8:0:n', '8:0:n', '8:0:n', hlc(topgun.now_ms() + 3600000, 0, 'n')::text, '8:0:n', '8:0:n']::hlc[],
  ARRAY[NULL, NULL, NULL, NULL, -1, NULL, NULL, NULL]::bigint[]);
RESET topgun.strict_clock;
SELECT key FROM lww WHERE map = 'b1' ORDER BY key;
SELECT * FROM lww_put_many(ARRAY['b1'], ARRAY['k'], ARRAY['1']::jsonb[], ARRAY['1:0:n','2:0:n']::hlc[]);
SELECT * FROM lww_put_many(ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::jsonb[], ARRAY[]::hlc[]);
-- the tree follows, and equals a single-op replica
SELECT merkle_verify('b1');
SELECT lww_put('b2', key, coalesce(value, 'null'), ts, ttl_ms) FROM lww WHERE map = 'b1' ORDER BY key \g /dev/null
SELECT merkle_root('b1') = merkle_root('b2') AS same_root;
-- privileges: an application role can use the API after grant_access, and not before
CREATE ROLE tg_app;
SET ROLE tg_app;
SELECT topgun.lww_put('app', 'k', '1', '1:0:n');
RESET ROLE;
SELECT topgun.grant_access('tg_app');
SET ROLE tg_app;
SELECT topgun.lww_put('app', 'k', '1', '1:0:n');
SELECT topgun.lww_get('app', 'k'), topgun.merkle_root('app') > 0 AS has_root;
SELECT topgun.or_add('app-or', 'k', '"v"', '2:0:n'), topgun.counter_add('app-c', 1);
RESET ROLE;
SELECT topgun.grant_access('tg_app', true);
CREATE ROLE tg_reader;
SELECT topgun.grant_access('tg_reader', read_only => true);
SET ROLE tg_reader;
SELECT topgun.lww_get('app', 'k');
SELECT topgun.lww_put('app', 'k', '2', '3:0:n');
RESET ROLE;
