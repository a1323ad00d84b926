-- OR maps: add/remove semantics, tags, tombstones, concurrent add+remove, mergeKey.
\set SHOW_CONTEXT never
SET search_path = topgun, public;

SELECT or_add('tags', 'post1', '"red"', '100:0:c1') AS tag1, or_add('tags', 'post1', '"blue"', '101:0:c1') AS tag2,
       or_add('tags', 'post1', '"red"', '102:0:c2') AS tag3;
SELECT or_get('tags', 'post1');
SELECT key, tag, value FROM or_entries WHERE map = 'tags' ORDER BY tag;
-- remove(key, value) tombstones every observed tag holding that value
SELECT or_remove('tags', 'post1', '"red"') AS removed;
SELECT or_get('tags', 'post1');
SELECT tag, key FROM or_tombstones WHERE map = 'tags' ORDER BY tag;
-- a tombstoned tag can never come back (re-delivery of the old add is ignored)
SELECT or_apply('tags', 'post1', '"red"', '100:0:c1', '100:0:c1') AS readd;
SELECT count(*) FROM ormap WHERE map = 'tags' AND tag = '100:0:c1';
-- concurrent add + remove: the add with a tag the remover never saw survives
SELECT or_apply('tags', 'post1', '"red"', '103:0:c3', '103:0:c3') AS concurrent_add;
SELECT or_get('tags', 'post1');
-- remove by tag, idempotent
SELECT or_remove_tag('tags', '101:0:c1') AS first, or_remove_tag('tags', '101:0:c1') AS again;
SELECT or_get('tags', 'post1');
-- a remote remove may arrive before its add
SELECT or_remove_tag('tags', '200:0:c9'), or_apply('tags', 'post2', '"late"', '200:0:c9', '200:0:c9') AS late_add;
SELECT count(*) FROM or_entries WHERE map = 'tags' AND key = 'post2';
-- same tag re-applied: newer timestamp updates, older/equal ignored
SELECT or_apply('tags', 'post3', '1', 't-x', '10:0:a'), or_apply('tags', 'post3', '2', 't-x', '9:0:a'),
       or_apply('tags', 'post3', '3', 't-x', '11:0:a');
SELECT or_get('tags', 'post3');

-- mergeKey: tombstones unioned, records added; order of delivery does not matter
SELECT or_merge_key('m1', 'k', '[{"value":{"a":1},"timestamp":{"millis":5,"counter":0,"nodeId":"n"},"tag":"5:0:n"},
                                 {"value":"x","timestamp":{"millis":6,"counter":0,"nodeId":"n"},"tag":"6:0:n","ttlMs":100000000000000}]',
                    ARRAY['4:0:n']);
SELECT or_merge_key('m1', 'k', '[{"value":"old","timestamp":{"millis":4,"counter":0,"nodeId":"n"},"tag":"4:0:n"}]', NULL) AS tombstoned_add;
SELECT or_merge_key('m2', 'k', '[{"value":"old","timestamp":{"millis":4,"counter":0,"nodeId":"n"},"tag":"4:0:n"}]', NULL);
SELECT or_merge_key('m2', 'k', '[{"value":"x","timestamp":{"millis":6,"counter":0,"nodeId":"n"},"tag":"6:0:n","ttlMs":100000000000000},
                                 {"value":{"a":1},"timestamp":{"millis":5,"counter":0,"nodeId":"n"},"tag":"5:0:n"}]',
                    ARRAY['4:0:n']);
SELECT (SELECT array_agg(tag || '=' || value::text ORDER BY tag) FROM ormap WHERE map = 'm1')
     = (SELECT array_agg(tag || '=' || value::text ORDER BY tag) FROM ormap WHERE map = 'm2') AS same_state,
       merkle_root('m1') = merkle_root('m2') AS same_root;

-- TTL hides expired records from reads
SELECT or_add('ttlmap', 'k', '"gone"', '1000:0:n', 1), or_add('ttlmap', 'k', '"here"', hlc_now(), 600000) IS NOT NULL;
SELECT or_get('ttlmap', 'k');

-- kind mismatch and bad input: clear errors, nothing stored
SELECT lww_put('tags', 'x', '1');
SELECT or_add('tags', 'k', NULL);
SELECT or_add(NULL, 'k', '1');
SELECT or_apply('tags', 'k', '1', '', '1:0:n');
SELECT or_apply('tags', 'k', '1', repeat('t', 300), '1:0:n');
SELECT or_apply('tags', 'k', '1', 'tag', NULL);
SELECT or_merge_key('tags', 'k', '{"not":"array"}', NULL);
SELECT or_merge_key('tags', 'k', '[{"value":1,"timestamp":{"millis":"x"},"tag":"t"}]', NULL);
SELECT or_merge_key('tags', 'k', '[{"value":1,"timestamp":{"millis":1,"counter":0,"nodeId":"a:b"},"tag":"t"}]', NULL);
SELECT count(*) AS rows_after FROM ormap WHERE map = 'tags' AND key = 'k';
