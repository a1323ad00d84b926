-- Entry processors, conflict resolvers, re-stamping, lock tokens (src/sql/65_logic.sql)
\set VERBOSITY terse
-- built-ins write through the normal path (HLC, Merkle)
SELECT topgun.execute_on_key('ep', 'n', 'builtin:increment', '5');
SELECT topgun.execute_on_key('ep', 'n', 'builtin:increment', '2');
SELECT topgun.lww_get('ep', 'n'), (SELECT topgun.hlc_node(ts) = topgun.node_id() FROM topgun.lww WHERE map = 'ep' AND key = 'n');
SELECT topgun.execute_on_key('ep', 'n', 'builtin:decrement_floor', '100');
SELECT topgun.execute_on_key('ep', 'arr', 'builtin:array_push', '"a"');
SELECT topgun.execute_on_key('ep', 'arr', 'builtin:array_pop');
SELECT topgun.execute_on_key('ep', 'o', 'builtin:set_property', '{"path":"__proto__.x","value":1}');
SELECT topgun.execute_on_key('ep', 'o', 'builtin:replace');           -- no args: deletes
SELECT topgun.lww_get('ep', 'o') IS NULL AS deleted;
SELECT topgun.execute_on_key('ep', 'big', 'builtin:put_if_absent', '1e308')->'success', topgun.execute_on_key('ep', 'big', 'builtin:multiply', '10');
SELECT topgun.execute_on_key('ep', 'n', 'builtin:increment', '"x"');
SELECT topgun.execute_on_key('ep', 's', 'builtin:array_push', '1');
SELECT topgun.execute_on_key('ep', 's', 'builtin:get');
SELECT topgun.execute_on_key('ep', 'str', 'builtin:put_if_absent', '"v"'), topgun.execute_on_key('ep', 'str', 'builtin:array_pop');
-- unknown names never run anything
SELECT topgun.execute_on_key('ep', 'n', 'custom:inc', '1');
-- a registered SQL processor
CREATE FUNCTION cap_push(cur jsonb, args jsonb, key text, map text, OUT value jsonb, OUT result jsonb)
LANGUAGE sql AS $$ SELECT coalesce(cur, '[]') || args, to_jsonb(jsonb_array_length(coalesce(cur, '[]')) + 1) $$;
CREATE FUNCTION bad_sig(cur jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT cur $$;
SELECT topgun.register_processor('bad', 'bad_sig(jsonb)');
SELECT topgun.register_processor('capped', 'cap_push(jsonb,jsonb,text,text)');
SELECT name, fn FROM topgun.registered_processors;
SELECT topgun.execute_on_key('ep', 'c', 'capped', '[1]'), topgun.execute_on_key('ep', 'c', 'capped', '[2]');
SELECT topgun.execute_on_keys('ep', ARRAY['b1', 'b2', 'b1'], 'builtin:increment', '10');
SELECT topgun.unregister_processor('capped'), topgun.unregister_processor('capped');
-- resolvers
SELECT topgun.register_resolver('builtin:nope', 'inv');
SELECT topgun.register_resolver('builtin:non_negative', 'inv*');
SELECT topgun.register_resolver('builtin:owner_only', 'docs', key_pattern => 'doc:*');
SELECT topgun.register_resolver('builtin:numeric_max', 'hi');
SELECT name, map_pattern, key_pattern, priority FROM topgun.registered_resolvers;
SELECT topgun.map_has_resolvers('inventory'), topgun.map_has_resolvers('other');
SELECT topgun.lww_put('inventory', 'apples', '5', '1000:0:a'), topgun.lww_put('docs', 'doc:1', '{"ownerId":"u1","t":"x"}', '1000:0:a'),
       topgun.lww_put('hi', 'h', '7', '1000:0:a');
SELECT * FROM topgun.resolve_ops(ARRAY['inventory', 'inventory', 'docs', 'docs', 'hi', 'other', 'other'],
  ARRAY['apples', 'apples', 'doc:1', 'doc:1', 'h', 'z', 'z'],
  ARRAY['-1', '3', '{"t":"y"}', '{"ownerId":"u1","t":"z"}', '3', '1', NULL]::jsonb[],
  ARRAY['2000:0:c', '2000:0:c', '2000:0:c', '2000:0:c', '2000:0:c', '2000:0:c', '500:0:c']::topgun.hlc[], 'u2');
SELECT outcome FROM topgun.resolve_ops(ARRAY['docs'], ARRAY['doc:1'], ARRAY['{"t":"y"}']::jsonb[], ARRAY['2000:0:c']::topgun.hlc[], 'u1');
CREATE FUNCTION no_writes(l jsonb, r jsonb, k text, m text, who text, OUT action text, OUT value jsonb, OUT reason text)
LANGUAGE sql AS $$ SELECT 'reject', NULL::jsonb, 'read only for ' || coalesce(who, '?') $$;
SELECT topgun.register_resolver('ro', 'frozen', 'no_writes(jsonb,jsonb,text,text,text)', 70);
SELECT * FROM topgun.resolve_ops(ARRAY['frozen'], ARRAY['k'], ARRAY['1']::jsonb[], ARRAY['3000:0:c']::topgun.hlc[], 'u9');
-- a rejected op: the writer's replica holds the newer rejected record; the
-- server re-stamps the stored one and the replica's LWW merge (PROTOCOL.md §5:
-- millis, then counter, then nodeId) takes it.
CREATE TEMP TABLE replica (key text, value jsonb, millis bigint, counter bigint, node text);
INSERT INTO replica VALUES ('apples', '-1', 2000, 0, 'c');
WITH rec AS (SELECT topgun.restamp('inventory', 'apples', '2000:0:c') AS r)
UPDATE replica SET value = r->'value', millis = (r#>>'{timestamp,millis}')::bigint,
       counter = (r#>>'{timestamp,counter}')::bigint, node = r#>>'{timestamp,nodeId}'
  FROM rec
 WHERE (r#>>'{timestamp,millis}')::bigint > millis
    OR ((r#>>'{timestamp,millis}')::bigint = millis AND (r#>>'{timestamp,counter}')::bigint > counter)
    OR ((r#>>'{timestamp,millis}')::bigint = millis AND (r#>>'{timestamp,counter}')::bigint = counter AND r#>>'{timestamp,nodeId}' > node);
SELECT value = topgun.lww_get('inventory', 'apples') AS converged, value FROM replica;
SELECT (topgun.restamp('inventory', 'never', '5000:0:c'))->'value' AS tombstone, topgun.lww_get('inventory', 'never');
-- the stored record the chains see (read by primary-key probes): a live
-- value (TTL not yet over), else NULL (a tombstone, an expired record, none);
-- a REMOVE stays one after a merge
CREATE FUNCTION show_local(l jsonb, r jsonb, k text, m text, who text, OUT action text, OUT value jsonb, OUT reason text)
LANGUAGE sql AS $$ SELECT 'merge', jsonb_build_object('local', l, 'remote', r), NULL::text $$;
SELECT topgun.register_resolver('show', 'seen', 'show_local(jsonb,jsonb,text,text,text)', 70);
SELECT topgun.register_resolver('builtin:first_write_wins', 'fww');
SELECT topgun.lww_put(m, 'live', '{"a":1}', '1000:0:a'), topgun.lww_put(m, 'gone', '1', '1000:0:a'),
       topgun.lww_remove(m, 'gone', '1001:0:a'), topgun.lww_put(m, 'expired', '2', '1000:0:a', 5),
       topgun.lww_put(m, 'ttl', '3', topgun.hlc_now(), 3600000)
  FROM unnest(ARRAY['seen', 'fww']) m;
SELECT idx, outcome, value, reason FROM topgun.resolve_ops(
  ARRAY['seen', 'seen', 'seen', 'seen', 'seen', 'fww', 'fww', 'fww', 'fww', 'fww'],
  ARRAY['live', 'gone', 'expired', 'ttl', 'none', 'live', 'gone', 'expired', 'ttl', 'none'],
  ARRAY['9', '9', '9', '9', NULL, '9', '9', '9', '9', '9']::jsonb[],
  array_fill('9000000000000:0:c'::topgun.hlc, ARRAY[10]));
SELECT topgun.unregister_resolver('show'), topgun.unregister_resolver('builtin:first_write_wins');
SELECT topgun.unregister_resolver('ro');
SELECT count(*) FROM topgun.registered_resolvers;
-- lock tokens: blocks never overlap and never go back
SELECT topgun.lock_reserve_tokens('L', 100), topgun.lock_reserve_tokens('L', 100), topgun.lock_reserve_tokens('M', 1);
SELECT topgun.lock_reserve_tokens('L', 0);
-- no sync server publishing: empty, and a release cannot be posted
SELECT count(*) FROM topgun.locks;
SELECT topgun.lock_release('L');
-- resolvers on SQL writes: only those registered with apply_to_sql, only while
-- topgun.sql_write_resolvers is on; the trigger exists only while needed
SELECT topgun.lww_put('inventory', 'pears', '-3');
SELECT topgun.register_resolver('builtin:non_negative', 'inv*', apply_to_sql => true);
SELECT topgun.register_resolver('builtin:immutable', 'frozen*', apply_to_sql => true);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'topgun.lww'::regclass AND tgname = 'lww_a_resolve';
SELECT topgun.lww_put('inventory', 'plums', '-3');
SELECT topgun.lww_put('inventory', 'plums', '4'), topgun.lww_put('inventory', 'plums', '5');
SELECT topgun.lww_get('inventory', 'plums');
SELECT topgun.lww_put('frozen2', 'k', '1');
SELECT topgun.lww_put('frozen2', 'k', '2');
SELECT topgun.lww_get('frozen2', 'k');
SELECT topgun.restamp('frozen2', 'k', topgun.hlc_now())->'value' AS restamp_bypasses;
SET topgun.sql_write_resolvers = off;
SELECT topgun.lww_put('inventory', 'plums', '-7');
SELECT topgun.lww_get('inventory', 'plums');
RESET topgun.sql_write_resolvers;
SELECT topgun.unregister_resolver('builtin:non_negative'), topgun.unregister_resolver('builtin:immutable');
SELECT count(*) AS trigger_left FROM pg_trigger WHERE tgrelid = 'topgun.lww'::regclass AND tgname = 'lww_a_resolve';
SELECT topgun.lww_put('inventory', 'plums', '-8');
-- one registration per (map pattern, name): the same built-in on two maps;
-- a DBA-registered function reused by name on another map
SELECT topgun.register_resolver('builtin:immutable', 'm1'), topgun.register_resolver('builtin:immutable', 'm2');
SELECT topgun.register_resolver('ro', 'frozen', 'no_writes(jsonb,jsonb,text,text,text)');
SELECT topgun.register_resolver('ro', 'frozen3');
SELECT topgun.register_resolver('nobody', 'm3');
SELECT map_pattern, name, fn FROM topgun.registered_resolvers WHERE map_pattern IN ('m1', 'm2', 'frozen', 'frozen3') ORDER BY 1;
SELECT topgun.unregister_resolver('builtin:immutable', 'm1');
SELECT map_pattern FROM topgun.registered_resolvers WHERE name = 'builtin:immutable';
SELECT topgun.unregister_resolver('builtin:immutable'), topgun.unregister_resolver('ro');
-- a full batch takes at most 128 lock-table entries; the key limit holds
BEGIN;
SELECT count(*) FROM jsonb_object_keys(topgun.execute_on_keys('ep', (SELECT array_agg('bk' || g) FROM generate_series(1, 1000) g), 'builtin:increment', '1'));
SELECT count(*) <= 128 AS bounded FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
COMMIT;
SELECT topgun.execute_on_keys('ep', (SELECT array_agg('bk' || g) FROM generate_series(1, 1001) g), 'builtin:increment', '1');
SELECT topgun.execute_on_keys('ep', ARRAY['a', NULL], 'builtin:get');
SELECT topgun.execute_on_keys('ep', ARRAY['a', 'b'], 'nope:x');
SELECT topgun.execute_on_key('ep', 'k', 'builtin:increment', (SELECT jsonb_agg(repeat('x', 1000)) FROM generate_series(1, 300)));
-- batched built-ins: duplicates see their predecessor, deletes inside a batch, the stored
-- state equals running the keys one by one; an unwritable value fails the whole batch
SELECT topgun.execute_on_keys('ep', ARRAY['q1', 'q2', 'q1', 'q1'], 'builtin:array_push', '"x"');
SELECT topgun.lww_get('ep', 'q1'), topgun.lww_get('ep', 'q2');
SELECT topgun.execute_on_keys('ep', ARRAY['q1', 'q3', 'q1'], 'builtin:replace');
SELECT topgun.lww_get('ep', 'q1') IS NULL AS q1_deleted, (SELECT value IS NULL FROM topgun.lww WHERE map = 'ep' AND key = 'q1') AS tombstone,
       (SELECT count(*) FROM topgun.lww WHERE map = 'ep' AND key = 'q3') AS q3_rows;
SELECT topgun.or_add('orm', 'k', '1') IS NOT NULL AS or_map;
SELECT topgun.execute_on_keys('orm', ARRAY['k'], 'builtin:increment', '1');
SELECT topgun.execute_on_key('orm', 'k', 'builtin:increment', '1');
-- values reach the built-ins as the stored jsonb (numbers keep their text, member order,
-- escapes, integer-like keys first as JavaScript orders them, nesting up to 1000 levels)
SELECT topgun.execute_on_key('epj', 'v', 'builtin:put_if_absent',
  '{"b":[1,2.50,-0,1e-7,0.1,12345678901234567890123,1.5e30,{"x":null,"10":true,"2":false,"":[]}],"a":"\u00e9\t\"\\/x","aa":{}}');
SELECT topgun.execute_on_key('epj', 'v', 'builtin:get')->'result' = topgun.lww_get('epj', 'v') AS same,
       topgun.execute_on_key('epj', 'v', 'builtin:get');
SELECT topgun.execute_on_key('epj', 'v', 'builtin:replace_if_equals',
  jsonb_build_object('expected', topgun.lww_get('epj', 'v'), 'newValue', 7))->'result' AS equal;
SELECT topgun.execute_on_key('epj', 'm', 'builtin:put_if_absent', '{"z":{"y":[1.0]},"a":1}')->'success',
       topgun.execute_on_key('epj', 'm', 'builtin:merge', '{"b":1,"a":"2.50"}');
SELECT topgun.execute_on_key('epj', 'sc', 'builtin:put_if_absent', '"\u2603"'), topgun.execute_on_key('epj', 'sc', 'builtin:get');
SELECT topgun.execute_on_key('epj', 'nul', 'builtin:put_if_absent', '[null,true,false,[],[[]]]'), topgun.execute_on_key('epj', 'nul', 'builtin:array_pop');
SELECT topgun.execute_on_key('epj', 'd1000', 'builtin:put_if_absent', (repeat('[', 1000) || repeat(']', 1000))::jsonb)->'success',
       topgun.execute_on_key('epj', 'd1000', 'builtin:array_push', '1')->'success';
SELECT topgun.execute_on_key('epj', 'd1001', 'builtin:put_if_absent', (repeat('[', 1001) || repeat(']', 1001))::jsonb);
