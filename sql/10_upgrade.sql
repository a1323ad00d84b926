-- ALTER EXTENSION topgun UPDATE from 1.0: data and trees survive, and the
-- upgraded schema is exactly the schema of a fresh install.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

SELECT current_database() AS regress_db \gset

-- A fresh install (in its own database: earlier tests changed grants and
-- trigger states in this one) and its catalog fingerprint.
CREATE DATABASE topgun_fresh;
\c topgun_fresh
SET client_min_messages = warning;
CREATE EXTENSION topgun;
\i sql/10_upgrade_fingerprint.psql
SELECT md5(string_agg(item, E'\n' ORDER BY item)) AS fresh_fp, count(*) > 100 AS many_items
  FROM pg_temp.topgun_fingerprint() \gset
SELECT :'many_items' AS fingerprint_covers_the_schema;

CREATE DATABASE topgun_upgrade;
\c topgun_upgrade
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE EXTENSION topgun VERSION '1.0';
\i sql/10_upgrade_fingerprint.psql
SELECT extversion FROM pg_extension WHERE extname = 'topgun';

-- Data written at 1.0.  The 1.1 library cannot flush a 1.0 tree, so the rows
-- go in with the Merkle triggers off and the tree is built by 1.0's own
-- (SQL) merkle_rebuild, exactly as a 1.0 server would have kept it.
ALTER TABLE topgun.lww DISABLE TRIGGER lww_merkle;
ALTER TABLE topgun.ormap DISABLE TRIGGER ormap_merkle;
INSERT INTO topgun.maps (name, kind) VALUES ('todos', 'lww'), ('tags', 'or');
INSERT INTO topgun.lww (map, key, value, ts, ttl_ms)
  SELECT 'todos', 'k' || g,
         CASE WHEN g % 7 = 0 THEN NULL ELSE jsonb_build_object('n', g) END,
         topgun.hlc(1700000000000 + g, g % 3, 'node-' || (g % 4)),
         CASE WHEN g % 5 = 0 AND g % 7 <> 0 THEN 60000 + g END
    FROM generate_series(1, 3000) g;
INSERT INTO topgun.ormap (map, key, tag, value, ts, ttl_ms)
  SELECT 'tags', 'post' || (g % 400), 'tag-' || g, to_jsonb(g),
         topgun.hlc(1700000000000 + g, 0, 'n'), CASE WHEN g % 3 = 0 THEN 1000 END
    FROM generate_series(1, 1200) g;
ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER lww_merkle;
ALTER TABLE topgun.ormap ENABLE ALWAYS TRIGGER ormap_merkle;
SELECT topgun.merkle_rebuild('todos'), topgun.merkle_rebuild('tags');
-- the roots as 1.0 stores them: sums of the depth-2 rows
CREATE TABLE roots_at_1_0 AS
  SELECT map, (sum(hash) % 4294967296)::bigint AS root
    FROM topgun.merkle_nodes WHERE level = 2 GROUP BY map;
SELECT map, count(*) FILTER (WHERE level = 3) AS leaves, count(*) FILTER (WHERE level = 2) AS nodes
  FROM topgun.merkle_nodes GROUP BY map ORDER BY map;

ALTER EXTENSION topgun UPDATE TO '1.1';
ALTER EXTENSION topgun UPDATE;   -- and on to the current version
SELECT extversion FROM pg_extension WHERE extname = 'topgun';

-- the trees are the same trees, now one row per depth-2 node
SELECT r.map, topgun.merkle_root(r.map) = r.root AS same_root, topgun.merkle_verify(r.map) AS verified
  FROM roots_at_1_0 r ORDER BY r.map;
SELECT map, count(*) AS node_rows,
       sum((SELECT count(*) FROM unnest(leaves) h WHERE h IS NOT NULL)) AS leaves
  FROM topgun.merkle_nodes GROUP BY map ORDER BY map;
-- expires_ms was filled for the records with a TTL, and only for live ones
SELECT count(*) FILTER (WHERE expires_ms = topgun.hlc_millis(ts) + ttl_ms) AS lww_with_expiry,
       count(*) FILTER (WHERE ttl_ms IS NOT NULL AND value IS NOT NULL) AS lww_live_with_ttl,
       count(*) FILTER (WHERE expires_ms IS NOT NULL AND (ttl_ms IS NULL OR value IS NULL)) AS lww_wrong
  FROM topgun.lww;
SELECT count(*) FILTER (WHERE expires_ms = topgun.hlc_millis(ts) + ttl_ms) AS or_with_expiry,
       count(*) FILTER (WHERE ttl_ms IS NOT NULL) AS or_with_ttl
  FROM topgun.ormap;

-- and everything keeps working at the current version
SELECT topgun.lww_put('todos', 'k1', '{"after": "upgrade"}', topgun.hlc(1750000000000, 0, 'n')),
       topgun.or_add('tags', 'post1', '"new"') IS NOT NULL AS or_added;
SELECT topgun.merkle_verify('todos'), topgun.merkle_verify('tags');
SELECT topgun.lww_get('todos', 'k1');
INSERT INTO topgun.lww (map, key, value, ts, ttl_ms) VALUES ('todos', 'bad', '1', '1:0:n', 0);
SELECT topgun.expire_ttl(100000) > 0 AS expired_old_records, topgun.merkle_verify('todos'),
       topgun.merkle_verify('tags');

-- the upgraded schema is exactly a fresh install's
SELECT md5(string_agg(item, E'\n' ORDER BY item)) = :'fresh_fp' AS same_schema_as_fresh_install
  FROM pg_temp.topgun_fingerprint();

-- (and it would notice a difference as small as one storage option)
ALTER TABLE topgun.merkle_nodes SET (fillfactor = 60);
SELECT md5(string_agg(item, E'\n' ORDER BY item)) <> :'fresh_fp' AS detects_a_changed_option
  FROM pg_temp.topgun_fingerprint();

\c :regress_db
DROP DATABASE topgun_upgrade;
DROP DATABASE topgun_fresh;
