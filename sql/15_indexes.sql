-- Field indexes (docs/sql-api.md "Field indexes"): the registry, the index
-- DDL the builder produces (one field and several), bad input, hostile
-- names, failure, drop.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS topgun;
RESET client_min_messages;

-- the registry's shape
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
  FROM pg_attribute a WHERE a.attrelid = 'topgun.field_indexes'::regclass AND a.attnum > 0 ORDER BY a.attnum;
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'topgun.field_indexes'::regclass ORDER BY conname;
SELECT attname FROM pg_attribute WHERE attrelid = 'topgun.indexes'::regclass AND attnum > 0 ORDER BY attnum;

SELECT topgun.lww_put('idx', 'k' || g, jsonb_build_object('cat', g % 10, 'owner', jsonb_build_object('id', g)))
  FROM generate_series(1, 500) g \g /dev/null

-- bad input is rejected before anything is registered
SELECT topgun.create_index('idx', '');
SELECT topgun.create_index('idx', NULL);
SELECT topgun.create_index('idx', 'a..b');
SELECT topgun.create_index('idx', '.a');
SELECT topgun.create_index('idx', 'a.');
SELECT topgun.create_index('idx', repeat('x', 257));
SELECT topgun.create_index('idx', array_to_string(array_fill('s'::text, ARRAY[17]), '.'));
SELECT topgun.create_index('idx', 'cat', 'gin');
SELECT topgun.create_index('idx', 'cat', NULL);
SELECT topgun.create_index('', 'cat');
SELECT topgun.create_index(repeat('m', 257), 'cat');
-- several fields: 1..8 distinct valid fields, btree only
SELECT topgun.create_index('idx', ARRAY[]::text[]);
SELECT topgun.create_index('idx', NULL::text[]);
SELECT topgun.create_index('idx', '{{a,b},{c,d}}'::text[]);
SELECT topgun.create_index('idx', ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']);
SELECT topgun.create_index('idx', ARRAY['cat', 'cat']);
SELECT topgun.create_index('idx', ARRAY['cat', 'a..b']);
SELECT topgun.create_index('idx', ARRAY['cat', NULL]);
SELECT topgun.create_index('idx', ARRAY['cat', 'n'], 'hash');
SELECT topgun.create_index('idx', ARRAY['cat', 'n'], 'gin');
SELECT count(*) FROM topgun.field_indexes;

-- a rolled-back create_index leaves nothing
BEGIN;
SELECT topgun.create_index('idx', 'cat');
ROLLBACK;
SELECT count(*) FROM topgun.field_indexes;

-- build: 'building' at once, 'ready' after the builder ran
SELECT topgun.create_index('idx', 'cat');
SELECT topgun.create_index('idx', 'owner.id', 'hash');
SELECT topgun.create_index('idx', array_to_string(array_fill('s'::text, ARRAY[16]), '.'));
CALL topgun.index_wait('idx', 'cat');
CALL topgun.index_wait('idx', 'owner.id');
CALL topgun.index_wait('idx', array_to_string(array_fill('s'::text, ARRAY[16]), '.'));
SELECT map, field, fields, path, kind, state, error, size > 0 AS has_size, valid FROM topgun.indexes ORDER BY map, field;
SELECT map, field, lww_index, or_index FROM topgun.field_indexes ORDER BY map, field;
SELECT c.relname, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname LIKE 'tg\_fidx\_%' ORDER BY c.relname;
-- again with the same kind: a no-op giving the state; another kind: an error
SELECT topgun.create_index('idx', 'cat');
SELECT topgun.create_index('idx', 'cat', 'hash');

-- the shape of query the planner issues uses them
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (costs off) SELECT key FROM topgun.lww WHERE map = 'idx' AND (value #> '{cat}'::text[]) = '7'::jsonb;
EXPLAIN (costs off) SELECT key FROM topgun.ormap WHERE map = 'idx' AND (value #> '{cat}'::text[]) = '7'::jsonb;
EXPLAIN (costs off) SELECT key FROM topgun.lww WHERE map = 'idx' AND (value #> '{owner,id}'::text[]) = '42'::jsonb;
EXPLAIN (costs off) SELECT key FROM topgun.lww WHERE map = 'idx' AND (value #> '{cat}'::text[]) > '7'::jsonb
  ORDER BY (value #> '{cat}'::text[]);

SELECT count(*) FROM topgun.lww WHERE map = 'idx' AND (value #> '{cat}'::text[]) = '7'::jsonb;
-- another map's rows are not in the partial index
EXPLAIN (costs off) SELECT key FROM topgun.lww WHERE map = 'other' AND (value #> '{cat}'::text[]) = '7'::jsonb;
RESET enable_seqscan;
RESET enable_bitmapscan;

-- several fields: one btree over all of them, a column per field in that order
SELECT topgun.create_index('idx', ARRAY['cat', 'owner.id']);
CALL topgun.index_wait('idx', ARRAY['cat', 'owner.id']);
SELECT map, field, fields, path, kind, state, error, size > 0 AS has_size, valid
  FROM topgun.indexes WHERE cardinality(fields) > 1;
SELECT c.relname, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname IN (SELECT lww_index FROM topgun.field_indexes WHERE cardinality(fields) > 1
                     UNION ALL SELECT or_index FROM topgun.field_indexes WHERE cardinality(fields) > 1)
 ORDER BY c.relname;
-- a one-element list is the one-field index; a list is another index than
-- its first field's, and the order of the fields matters
SELECT topgun.create_index('idx', ARRAY['cat']);
SELECT topgun.create_index('idx', ARRAY['cat'], 'hash');
SELECT topgun.create_index('idx', ARRAY['cat', 'owner.id']);
BEGIN;
SELECT topgun.create_index('idx', ARRAY['owner.id', 'cat']);
SELECT count(DISTINCT lww_index), count(*) FROM topgun.field_indexes;
ROLLBACK;
-- equality on the first field, read in the order of the second: no sort
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (costs off) SELECT key FROM topgun.lww WHERE map = 'idx' AND (value #> '{cat}'::text[]) = '7'::jsonb
  ORDER BY (value #> '{owner,id}'::text[]) DESC LIMIT 5;
SELECT string_agg(key, ' ' ORDER BY (value #> '{owner,id}'::text[]) DESC) FROM (
  SELECT key, value FROM topgun.lww WHERE map = 'idx' AND (value #> '{cat}'::text[]) = '7'::jsonb
   ORDER BY (value #> '{owner,id}'::text[]) DESC LIMIT 5) t;
RESET enable_seqscan;
RESET enable_bitmapscan;

-- hostile map and field names end up as quoted literals
SELECT topgun.create_index($$x'); DROP TABLE topgun.lww; --\$$, 'a."b');
SELECT topgun.create_index('"; DROP SCHEMA topgun CASCADE; --', '}{,\');
CALL topgun.index_wait($$x'); DROP TABLE topgun.lww; --\$$, 'a."b');
CALL topgun.index_wait('"; DROP SCHEMA topgun CASCADE; --', '}{,\');
SELECT map, field, path, state, valid FROM topgun.indexes WHERE map NOT IN ('idx') ORDER BY map;
SELECT pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname IN (SELECT lww_index FROM topgun.field_indexes WHERE map NOT IN ('idx')) ORDER BY 1;
SELECT count(*) FROM topgun.lww WHERE map = 'idx';

-- a build that fails: 'failed' with the error, no invalid index left behind
SELECT topgun.lww_put('idx', 'big', jsonb_build_object('big', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g)));
SELECT topgun.create_index('idx', 'big');
CALL topgun.index_wait('idx', 'big');
SELECT state, error IS NOT NULL AS has_error, valid, size FROM topgun.indexes WHERE field = 'big';
SELECT count(*) FROM pg_class WHERE relname IN (SELECT lww_index FROM topgun.field_indexes WHERE field = 'big'
                                                UNION ALL SELECT or_index FROM topgun.field_indexes WHERE field = 'big');
-- once the big value is gone, create_index again retries it
SELECT topgun.lww_remove('idx', 'big');
SELECT topgun.create_index('idx', 'big');
CALL topgun.index_wait('idx', 'big');
SELECT state, error, valid FROM topgun.indexes WHERE field = 'big';

-- privileges: administration is the owner's, the registry is readable
CREATE ROLE tg_idx_nobody;
SET ROLE tg_idx_nobody;
SELECT topgun.create_index('idx', 'x');
SELECT topgun.drop_index('idx', 'cat');
SELECT count(*) FROM topgun.indexes;
SELECT count(*) FROM topgun.field_indexes;
INSERT INTO topgun.field_indexes VALUES ('a', 'b', '{b}', '{b}', 'btree', 'building', 'x', 'y');
SELECT topgun.create_index('idx', ARRAY['x', 'y']);
SELECT topgun.drop_index('idx', ARRAY['cat', 'owner.id']);
RESET ROLE;
DROP ROLE tg_idx_nobody;

-- drop: 'dropping' (and it cannot be created again meanwhile), then gone
-- with both indexes
BEGIN;
SELECT topgun.drop_index('idx', 'owner.id'), topgun.drop_index('idx', 'no-such-field');
SELECT state FROM topgun.field_indexes WHERE map = 'idx' AND field = 'owner.id';
SAVEPOINT s;
SELECT topgun.create_index('idx', 'owner.id', 'hash');
ROLLBACK TO s;
COMMIT;
CALL topgun.index_wait('idx', 'owner.id');
SELECT count(*) FROM topgun.field_indexes WHERE field = 'owner.id';
SELECT count(*) FROM pg_class c WHERE c.relname LIKE 'tg\_fidx\_%'
   AND c.relname NOT IN (SELECT lww_index FROM topgun.field_indexes UNION ALL SELECT or_index FROM topgun.field_indexes);
SELECT topgun.drop_index('idx', ARRAY['cat', 'owner.id']), topgun.drop_index('idx', ARRAY['owner.id', 'cat']);
SELECT topgun.drop_index(map, field) FROM topgun.field_indexes WHERE state <> 'dropping' ORDER BY map, field;
CALL topgun.index_wait('idx', ARRAY['cat', 'owner.id']);
SELECT count(*) FROM topgun.field_indexes WHERE cardinality(fields) > 1;
CALL topgun.index_wait('idx', 'cat');
CALL topgun.index_wait('idx', 'big');
CALL topgun.index_wait($$x'); DROP TABLE topgun.lww; --\$$, 'a."b');
CALL topgun.index_wait('"; DROP SCHEMA topgun CASCADE; --', '}{,\');
CALL topgun.index_wait('idx', array_to_string(array_fill('s'::text, ARRAY[16]), '.'));
SELECT count(*) FROM topgun.field_indexes;
SELECT count(*) FROM pg_class WHERE relname LIKE 'tg\_fidx\_%';
