-- Merkle trees: TopGun hash vectors, worked examples, buckets/leaf/diff, incremental = rebuild.
\set SHOW_CONTEXT never
SET search_path = topgun, public;
-- every map keeps a stored tree here (the maps without one: 05_merkle_small)
SET topgun.merkle_small_map_entries = 0;

-- FNV-1a over UTF-16 code units (PROTOCOL.md 6.1)
SELECT key_hash('') = 2166136261 AS empty, key_hash('a') = 3826002220 AS a,
       key_hash('user-1') = 4115888500 AS user1,
       key_hash('user-1:1736000000000:0:client-A') = 3987372402 AS item,
       key_hash('é') = 1812687940 AS e_acute, key_hash('😀') = 3409036472 AS emoji;
SELECT key_leaf('user-1'), to_hex(key_leaf('user-1')::int);

-- LWW worked example (PROTOCOL.md 6.4)
SELECT lww_put('ex', 'user-1', '{"name":"A"}', '1736000000000:0:client-A'),
       lww_remove('ex', 'user-2', '1736000000001:3:client-B');
SELECT merkle_root('ex');
SELECT * FROM merkle_buckets('ex', '');
SELECT * FROM merkle_buckets('ex', 'f');
SELECT * FROM merkle_buckets('ex', 'f5');
SELECT * FROM merkle_buckets('ex', 'f55');
SELECT * FROM merkle_buckets('ex', '0');
SELECT * FROM merkle_leaf('ex', 'f55');
SELECT * FROM merkle_leaf('ex', 'f85');
SELECT count(*) FROM merkle_leaf('ex', '000');
SELECT merkle_root('no-such-map');
SELECT merkle_verify('ex');

-- OR worked example (PROTOCOL.md 6.3): one record, entry hash 579148626
SELECT or_value_string('{"b":"x","a":1}');
SELECT or_apply('orex', 'k1', '{"b":"x","a":1}', '1736000000000:0:c1', '1736000000000:0:c1');
SELECT merkle_root('orex');
SELECT * FROM merkle_buckets('orex', '');
SELECT * FROM merkle_leaf('orex', '983');
SELECT merkle_verify('orex');
-- the key leaves the tree when its last record is removed (the node stays, with hash 0)
SELECT or_remove_tag('orex', '1736000000000:0:c1'), merkle_root('orex');
SELECT * FROM merkle_buckets('orex', '');
SELECT * FROM merkle_leaf('orex', '983');

-- stringifyValue quirks (vectors/ormap_merkle.json): allow-list at every level, JS numbers
SELECT or_value_string('{"b":{"z":1,"b":2},"a":[{"a":1,"c":2},3]}');
SELECT or_value_string('"raw string"'), or_value_string('null'), or_value_string('true'),
       or_value_string('1.5'), or_value_string('1e21'), or_value_string('0.000001'), or_value_string('1e-7'),
       or_value_string('123456789012345680000'), or_value_string('-0.0');
SELECT or_value_string('[{"a":1},{"0":"kept"}]'), or_value_string('{"10":1,"9":2,"Z":3,"z":4}');
SELECT or_value_string('{"s":"q\"b\\n\u0001é"}');

-- merkle_diff: differing children, missing counts as 0
SELECT * FROM merkle_diff('ex', '', '{"f": 2316545296}');
SELECT * FROM merkle_diff('ex', '', '{"f": 1, "3": 7}');
SELECT * FROM merkle_diff('ex', 'f', '{"5": 3987372402}');
SELECT * FROM merkle_diff('ex', 'f', '{}');
SELECT merkle_diff('ex', 'f55', '{}');
SELECT merkle_diff('ex', '', '{"g": 1}');
SELECT merkle_buckets('ex', 'xyz');
SELECT merkle_buckets('ex', 'f555');

-- locating a single differing key between two maps in at most 3 diff steps
SELECT lww_put('left', 'k' || i, to_jsonb(i), hlc(1000 + i, 0, 'n')), lww_put('right', 'k' || i, to_jsonb(i), hlc(1000 + i, 0, 'n'))
  FROM generate_series(1, 2000) i \g /dev/null
SELECT lww_put('right', 'k777', '"changed"', '5000:0:n');
WITH RECURSIVE walk(path, step) AS (
    SELECT d, 1 FROM merkle_diff('left', '', (SELECT jsonb_object_agg(bucket, hash) FROM merkle_buckets('right', ''))) d
  UNION ALL
    SELECT d, w.step + 1 FROM walk w,
      LATERAL merkle_diff('left', w.path, coalesce((SELECT jsonb_object_agg(bucket, hash) FROM merkle_buckets('right', w.path)), '{}')) d
     WHERE length(w.path) < 3)
SELECT path, step, (SELECT array_agg(key) FROM merkle_leaf('left', path) l
                     WHERE (l.record->'timestamp') <> (SELECT r.record->'timestamp' FROM merkle_leaf('right', path) r WHERE r.key = l.key)) AS differing_keys
  FROM walk WHERE length(path) = 3;

-- a transaction sees its own unflushed deltas; a rolled back savepoint leaves no trace
BEGIN;
SELECT lww_put('tx', 'a', '1', '1:0:n');
SELECT merkle_root('tx') = key_hash('a:1:0:n') AS sees_own_write;
SAVEPOINT s1;
SELECT lww_put('tx', 'b', '1', '1:0:n');
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
SELECT lww_put('tx', 'c', '1', '1:0:n');
RELEASE SAVEPOINT s2;
COMMIT;
SELECT merkle_root('tx') = (key_hash('a:1:0:n') + key_hash('c:1:0:n')) % 4294967296 AS only_committed, merkle_verify('tx');
-- exception blocks (subtransactions) roll back their deltas too
DO $$
BEGIN
  PERFORM topgun.lww_put('tx', 'd', '1', '1:0:n');
  BEGIN
    PERFORM topgun.lww_put('tx', 'e', '1', '1:0:n');
    PERFORM topgun.or_add('tx', 'wrong kind', '1');
  EXCEPTION WHEN wrong_object_type THEN
    NULL;
  END;
END $$;
SELECT merkle_verify('tx'), (SELECT count(*) FROM lww WHERE map = 'tx') AS rows;
-- a rolled back transaction leaves the tree untouched
BEGIN;
SELECT lww_put('tx', 'z', '1', '1:0:n');
ROLLBACK;
SELECT merkle_verify('tx');

-- every write path keeps the tree equal to a rebuild: direct DML and deletes too
UPDATE lww SET ts = '2:0:n' WHERE map = 'tx' AND key = 'a';
DELETE FROM lww WHERE map = 'tx' AND key = 'c';
INSERT INTO lww (map, key, value, ts) VALUES ('tx', 'direct', '7', '3:0:n');
DELETE FROM ormap WHERE map = 'tags' AND key = 'post3';
SELECT name, merkle_verify(name) FROM maps ORDER BY name;
-- a broken tree is detected and rebuilt (folded first: the writes above are pending rows)
SELECT merkle_fold('ex');
UPDATE merkle_nodes SET leaves = topgun._merkle_leaves_add(leaves, array_fill(1::bigint, ARRAY[16]))
 WHERE map = 'ex' AND prefix = (SELECT min(prefix) FROM merkle_nodes WHERE map = 'ex');
SELECT merkle_verify('ex');
SELECT merkle_rebuild('ex');
SELECT merkle_verify('ex'), merkle_root('ex');
-- the flush's leaf-array helper: element-wise sum mod 2^32, NULL = absent leaf
SELECT _merkle_leaves_add(ARRAY[1, NULL, 4294967295, NULL, 0,0,0,0,0,0,0,0,0,0,0,0]::bigint[],
                          ARRAY[2, 5, 2, NULL, NULL,0,0,0,0,0,0,0,0,0,0,0]::bigint[]);
-- a damaged row is refused, not silently summed
SELECT _merkle_leaves_add('{1,2}', array_fill(0::bigint, ARRAY[16]));
SELECT _merkle_leaves_add(array_fill(0::bigint, ARRAY[4, 4]), array_fill(0::bigint, ARRAY[16]));

-- Pending delta rows (src/merkle/pending_rows.c): commits pend their node
-- deltas as topgun.merkle_pending rows; the readers add them; a fold moves
-- them into merkle_nodes without changing any hash.
SET topgun.merkle_fold_rows = 1000;
SET topgun.merkle_pend_min_nodes = 1;
-- the map's first commit builds its tree (modes.c); the next ones pend
SELECT lww_put('pend', 'k1', '1', '1:0:n') IS NOT NULL \g /dev/null
SELECT lww_put('pend', 'k' || g, to_jsonb(g), (g || ':0:n')::hlc) IS NOT NULL FROM generate_series(1, 40) g \g /dev/null
SELECT count(*) > 0 AS pending, (SELECT count(*) FROM merkle_nodes WHERE map = 'pend') AS node_rows
  FROM merkle_pending WHERE map = 'pend';
CREATE TEMP TABLE before_fold AS
  SELECT merkle_root('pend') AS root,
         (SELECT jsonb_agg(b ORDER BY b.bucket) FROM merkle_buckets('pend', '') b) AS top,
         (SELECT jsonb_agg(jsonb_build_object(p, (SELECT jsonb_agg(b ORDER BY b.bucket) FROM merkle_buckets('pend', p) b)) ORDER BY p)
            FROM (SELECT DISTINCT lpad(to_hex((l.leaf >> 4)::int), 2, '0') AS p FROM lww l WHERE l.map = 'pend') d) AS nodes;
SELECT merkle_verify('pend');
SELECT merkle_fold('pend');
SELECT (SELECT count(*) FROM merkle_pending WHERE map = 'pend') AS pending_after,
       (SELECT count(*) > 0 FROM merkle_nodes WHERE map = 'pend') AS node_rows_after,
       b.root = merkle_root('pend') AS same_root,
       b.top = (SELECT jsonb_agg(x ORDER BY x.bucket) FROM merkle_buckets('pend', '') x) AS same_top,
       b.nodes = (SELECT jsonb_agg(jsonb_build_object(p, (SELECT jsonb_agg(x ORDER BY x.bucket) FROM merkle_buckets('pend', p) x)) ORDER BY p)
                    FROM (SELECT DISTINCT lpad(to_hex((l.leaf >> 4)::int), 2, '0') AS p FROM lww l WHERE l.map = 'pend') d) AS same_nodes,
       merkle_verify('pend')
  FROM before_fold b;
-- a backend folds the map at its commit that reaches topgun.merkle_fold_rows rows
SET topgun.merkle_fold_rows = 3;
SELECT lww_put('pend', 'f1', '1', '100:0:n') IS NOT NULL;
SELECT lww_put('pend', 'f2', '1', '100:0:n') IS NOT NULL;
SELECT count(*) AS pending_two FROM merkle_pending WHERE map = 'pend';
SELECT lww_put('pend', 'f3', '1', '100:0:n') IS NOT NULL;
SELECT count(*) AS pending_folded FROM merkle_pending WHERE map = 'pend';
SELECT merkle_verify('pend');
-- 1: every commit folds, as before pending rows existed
SET topgun.merkle_fold_rows = 1;
SELECT lww_put('pend', 'f4', '1', '100:0:n') IS NOT NULL;
SELECT count(*) AS pending_none FROM merkle_pending WHERE map = 'pend';
-- REPEATABLE READ never folds (a fold's delete could conflict with its snapshot)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT lww_put('pend', 'f5', '1', '100:0:n') IS NOT NULL;
COMMIT;
SELECT count(*) AS pending_rr FROM merkle_pending WHERE map = 'pend';
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT merkle_fold('pend');
ROLLBACK;
-- a savepoint rolled back takes its deltas out of the pending row
SET topgun.merkle_fold_rows = 1000;
BEGIN;
SELECT lww_put('pend', 'sp1', '1', '100:0:n') IS NOT NULL;
SAVEPOINT s;
SELECT lww_put('pend', 'sp2', '1', '100:0:n') IS NOT NULL;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT merkle_verify('pend');
-- a rebuild drops the pending rows with the nodes, and gives the same tree
CREATE TEMP TABLE before_rebuild AS SELECT merkle_root('pend') AS root;
SELECT count(*) > 0 AS pending_before_rebuild FROM merkle_pending WHERE map = 'pend';
SELECT merkle_rebuild('pend');
SELECT count(*) AS pending_rebuilt FROM merkle_pending WHERE map = 'pend';
SELECT merkle_verify('pend'), merkle_root('pend') = (SELECT root FROM before_rebuild) AS same_root;
-- the row format: node, touched leaves (LE), one LE delta per touched leaf
SELECT * FROM _merkle_pending_leaves('\x0505000100000002000000'::bytea);
SELECT * FROM _merkle_pending_leaves('\x'::bytea);
-- malformed rows are refused (truncated, no leaf), never summed
SELECT * FROM _merkle_pending_leaves('\x050500010000'::bytea);
SELECT * FROM _merkle_pending_leaves('\x000000'::bytea);
INSERT INTO merkle_pending VALUES ('pend', '\x01');
SELECT merkle_root('pend');
SELECT * FROM merkle_buckets('pend', '');
SELECT merkle_rebuild('pend');
SELECT merkle_verify('pend');
-- a fold drops a malformed row with a WARNING instead of failing the commit (and every later
-- commit that folds the map); the tree then lacks the row's deltas until a rebuild, which
-- verify reports
SELECT count(*) AS written FROM lww_put_many(array_fill('pend'::text, ARRAY[40]),
         ARRAY(SELECT 'bad' || g FROM generate_series(1, 40) g), array_fill('1'::jsonb, ARRAY[40]),
         array_fill('100:0:n'::hlc, ARRAY[40]));
UPDATE merkle_pending SET deltas = deltas || '\x01'::bytea WHERE map = 'pend';
BEGIN;
SELECT merkle_fold('pend');
SELECT lww_put('pend', 'after-bad-row', '1', '100:0:n') IS NOT NULL;
COMMIT;
SELECT count(*) AS pending_after_drop FROM merkle_pending WHERE map = 'pend';
SELECT (SELECT value FROM lww WHERE map = 'pend' AND key = 'after-bad-row') AS written, merkle_verify('pend');
SELECT merkle_rebuild('pend');
SELECT merkle_verify('pend');
SELECT merkle_fold(repeat('x', 300));
-- by default a commit that touches a few nodes of a map updates them in place
RESET topgun.merkle_pend_min_nodes;
SELECT lww_put('pend', 'few', '1', '100:0:n') IS NOT NULL;
SELECT count(*) AS pending_few FROM merkle_pending WHERE map = 'pend';
SELECT count(*) AS written FROM lww_put_many(array_fill('pend'::text, ARRAY[40]),
         ARRAY(SELECT 'm' || g FROM generate_series(1, 40) g), array_fill('1'::jsonb, ARRAY[40]),
         array_fill('100:0:n'::hlc, ARRAY[40]));
SELECT count(*) AS pending_many FROM merkle_pending WHERE map = 'pend';
SELECT merkle_verify('pend');
RESET topgun.merkle_fold_rows;
