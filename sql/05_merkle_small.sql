-- Maps without a stored Merkle tree (src/merkle/modes.c): at most
-- topgun.merkle_small_map_entries entries, hashes computed from the rows on
-- read, the same answers as a stored tree; the commit that takes a map past
-- the limit builds its tree.
\set SHOW_CONTEXT never
SET search_path = topgun, public;
SHOW topgun.merkle_small_map_entries;

-- the LWW worked example (PROTOCOL.md 6.4) with no tree rows
SELECT lww_put('sm-ex', 'user-1', '{"name":"A"}', '1736000000000:0:client-A') IS NOT NULL AS put,
       lww_remove('sm-ex', 'user-2', '1736000000001:3:client-B') IS NOT NULL AS removed;
SELECT merkle_root('sm-ex') = 2316545296 AS root_ok;
SELECT * FROM merkle_buckets('sm-ex', '');
SELECT * FROM merkle_buckets('sm-ex', 'f');
SELECT * FROM merkle_buckets('sm-ex', 'f5');
SELECT * FROM merkle_buckets('sm-ex', 'f55');
SELECT * FROM merkle_buckets('sm-ex', '0');
SELECT (SELECT count(*) FROM merkle_nodes WHERE map = 'sm-ex') AS node_rows,
       (SELECT count(*) FROM merkle_pending WHERE map = 'sm-ex') AS pending_rows,
       m.entries, m.stored, merkle_verify('sm-ex') AS verify
  FROM merkle_maps m WHERE m.map = 'sm-ex';

-- the ORMap worked example (PROTOCOL.md 6.3)
SELECT or_add('sm-orex', 'k1', '{"b":"x","a":1}', '1736000000000:0:c1') IS NOT NULL AS added;
SELECT merkle_root('sm-orex') = 579148626 AS root_ok;
SELECT * FROM merkle_buckets('sm-orex', '');
SELECT entries, stored FROM merkle_maps WHERE map = 'sm-orex';

-- the same writes to a map with a stored tree (limit 0) and one without:
-- every hash at every path is the same
CREATE TEMP TABLE ops AS
  SELECT g, 'k' || (g % 300) AS key, (1000 + g || ':0:n')::hlc AS ts FROM generate_series(1, 900) g;
SET topgun.merkle_small_map_entries = 0;
SELECT count(*) FROM (SELECT CASE WHEN g % 7 = 0 THEN lww_remove('sm-tree', key, ts) ELSE lww_put('sm-tree', key, to_jsonb(g), ts) END
                        FROM ops ORDER BY g) x;
SELECT or_add('sm-ortree', 'k' || g % 40, to_jsonb(g), (2000 + g || ':0:n')::hlc) IS NOT NULL FROM generate_series(1, 120) g \g /dev/null
RESET topgun.merkle_small_map_entries;
SELECT count(*) FROM (SELECT CASE WHEN g % 7 = 0 THEN lww_remove('sm-rows', key, ts) ELSE lww_put('sm-rows', key, to_jsonb(g), ts) END
                        FROM ops ORDER BY g) x;
SELECT or_add('sm-orrows', 'k' || g % 40, to_jsonb(g), (2000 + g || ':0:n')::hlc) IS NOT NULL FROM generate_series(1, 120) g \g /dev/null
SELECT map, entries, stored FROM merkle_maps WHERE map IN ('sm-tree', 'sm-rows', 'sm-ortree', 'sm-orrows') ORDER BY map;
SELECT (SELECT count(*) > 0 FROM merkle_nodes WHERE map = 'sm-tree') AS tree_has_nodes,
       (SELECT count(*) FROM merkle_nodes WHERE map = 'sm-rows') AS rows_nodes;
CREATE TEMP TABLE paths AS
  SELECT '' AS p UNION ALL SELECT to_hex(i) FROM generate_series(0, 15) i
  UNION ALL SELECT lpad(to_hex(i), 2, '0') FROM generate_series(0, 255) i;
CREATE FUNCTION pg_temp.tree(m text) RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object('root', merkle_root(m), 'paths',
           (SELECT jsonb_object_agg(p, (SELECT coalesce(jsonb_object_agg(b.bucket, b.hash), '{}') FROM merkle_buckets(m, p) b))
              FROM paths))
$$;
SELECT pg_temp.tree('sm-tree') = pg_temp.tree('sm-rows') AS lww_same,
       pg_temp.tree('sm-ortree') = pg_temp.tree('sm-orrows') AS or_same,
       merkle_root('sm-rows') <> 0 AS nonzero,
       merkle_verify('sm-rows') AS verify_rows, merkle_verify('sm-orrows') AS verify_or;
SELECT (SELECT count(*) FROM _stored_leaf_hashes('sm-rows')) = (SELECT count(*) FROM _stored_leaf_hashes('sm-tree')) AS same_leaves,
       (SELECT jsonb_agg(n ORDER BY n.prefix) FROM _stored_node_hashes('sm-rows') n)
     = (SELECT jsonb_agg(n ORDER BY n.prefix) FROM _stored_node_hashes('sm-tree') n) AS same_nodes;

-- a transaction sees its own writes; a savepoint rolled back takes them back
BEGIN;
SELECT lww_put('sm-rows', 'own', '1', '9000:0:n') IS NOT NULL AS put;
SELECT lww_put('sm-tree', 'own', '1', '9000:0:n') IS NOT NULL AS put;
SELECT merkle_root('sm-rows') = merkle_root('sm-tree') AS own_write_seen;
SAVEPOINT s;
SELECT lww_put('sm-rows', 'gone', '1', '9001:0:n') IS NOT NULL AS put;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT pg_temp.tree('sm-tree') = pg_temp.tree('sm-rows') AS same_after_commit, merkle_verify('sm-rows') AS verify;
-- overwrites do not count; new entries do (300 keys + own; the rolled-back put counted in vain)
SELECT entries FROM merkle_maps WHERE map = 'sm-rows';
SELECT lww_put('sm-rows', 'k1', '2', '9100:0:n') IS NOT NULL AS overwrite;
SELECT entries FROM merkle_maps WHERE map = 'sm-rows';

-- REPEATABLE READ commits neither count nor build; the tree stays right
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT lww_put('sm-rows', 'rr', '1', '9200:0:n') IS NOT NULL AS put;
COMMIT;
SELECT entries, stored FROM merkle_maps WHERE map = 'sm-rows';
SELECT merkle_verify('sm-rows');

-- entries that leave the map are counted out (direct DML: delete, move)
DELETE FROM lww WHERE map = 'sm-rows' AND key IN ('k2', 'k3');
UPDATE lww SET map = 'sm-moved' WHERE map = 'sm-rows' AND key = 'k4';
SELECT map, entries FROM merkle_maps WHERE map IN ('sm-rows', 'sm-moved') ORDER BY map;
SELECT merkle_verify('sm-rows') AND merkle_verify('sm-moved') AS verify;

-- rebuild keeps a small map without a tree and corrects its count
SELECT merkle_rebuild('sm-rows');
SELECT entries, stored, (SELECT count(*) FROM lww WHERE map = 'sm-rows') AS records
  FROM merkle_maps WHERE map = 'sm-rows';

-- the commit that takes the map past the limit builds its tree from the rows
SELECT merkle_root('sm-rows') AS root_before \gset
SET topgun.merkle_small_map_entries = 303;
SELECT lww_put('sm-rows', 'n' || g, '1', (9300 + g || ':0:n')::hlc) IS NOT NULL FROM generate_series(1, 4) g \g /dev/null
SELECT entries, stored, (SELECT count(*) FROM merkle_nodes WHERE map = 'sm-rows') AS node_rows
  FROM merkle_maps WHERE map = 'sm-rows';
SELECT lww_put('sm-rows', 'n5', '1', '9305:0:n') IS NOT NULL AS put;
SELECT stored, (SELECT count(*) > 0 FROM merkle_nodes WHERE map = 'sm-rows') AS has_nodes,
       merkle_verify('sm-rows') AS verify
  FROM merkle_maps WHERE map = 'sm-rows';
-- from then on the commits write the tree, and the map keeps it below the limit too
RESET topgun.merkle_small_map_entries;
SELECT lww_put('sm-rows', 'n6', '1', '9306:0:n') IS NOT NULL AS put;
DELETE FROM lww WHERE map = 'sm-rows' AND key LIKE 'n%';
SELECT stored, merkle_verify('sm-rows') AS verify, merkle_root('sm-rows') = :root_before AS root_back
  FROM merkle_maps WHERE map = 'sm-rows';
SELECT merkle_rebuild('sm-rows');
SELECT stored FROM merkle_maps WHERE map = 'sm-rows';

-- a rebuild of a map over the limit gives it a tree
SET topgun.merkle_small_map_entries = 2;
SELECT merkle_rebuild('sm-orrows');
RESET topgun.merkle_small_map_entries;
SELECT stored, (SELECT count(*) > 0 FROM merkle_nodes WHERE map = 'sm-orrows') AS has_nodes,
       pg_temp.tree('sm-ortree') = pg_temp.tree('sm-orrows') AS or_same
  FROM merkle_maps WHERE map = 'sm-orrows';

-- OR keys: a key counts while it has a live record
SELECT or_add('sm-or2', 'a', '1', '100:0:n') IS NOT NULL AS a, or_add('sm-or2', 'b', '1', '100:0:m') IS NOT NULL AS b;
SELECT entries FROM merkle_maps WHERE map = 'sm-or2';
SELECT or_remove('sm-or2', 'a', '1') AS removed;
SELECT entries, merkle_verify('sm-or2') AS verify FROM merkle_maps WHERE map = 'sm-or2';

-- TRUNCATE forgets every map's mode; the maps start over without a tree
TRUNCATE lww;
SELECT count(*) AS lww_maps_left FROM merkle_maps m JOIN maps k ON k.name = m.map WHERE k.kind = 'lww';
SELECT lww_put('sm-tree', 'x', '1', '1:0:n') IS NOT NULL AS put;
SELECT entries, stored, merkle_root('sm-tree') = _lww_item_hash('x', '1:0:n') AS root_ok FROM merkle_maps WHERE map = 'sm-tree';

-- the slot helpers act for every session: a role that may not write merkle_maps may not call them
CREATE ROLE sm_reader;
SELECT grant_access('sm_reader', true);
SET ROLE sm_reader;
SELECT topgun._merkle_mode_lock('sm-tree');
SELECT topgun._merkle_modes_forget();
RESET ROLE;
SELECT count(*) AS slot_locks_held FROM pg_locks WHERE locktype = 'object' AND classid = 'topgun.merkle_maps'::regclass;
DROP OWNED BY sm_reader;
DROP ROLE sm_reader;

-- a transaction that rebuilt a tree cannot be prepared
BEGIN;
SELECT merkle_rebuild('sm-tree');
PREPARE TRANSACTION 'sm-rebuild';
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid = 'sm-rebuild';
