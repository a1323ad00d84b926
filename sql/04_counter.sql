-- PN counters: add, merge (per-node max; both state shapes), idempotence, bad input.
\set SHOW_CONTEXT never
SET search_path = topgun, public;

SELECT counter_add('likes', 5), counter_add('likes', -2), counter_value('likes');
SELECT counter_state('likes');
SELECT counter_merge('likes', '{"positive":{"peer-1":10},"negative":{"peer-1":1}}');
-- merge is idempotent and takes the per-node maximum
SELECT counter_merge('likes', '{"positive":{"peer-1":10},"negative":{"peer-1":1}}');
SELECT counter_merge('likes', '{"p":{"peer-1":7,"peer-2":4},"n":{}}');
SELECT counter_state('likes');
-- commutativity: merging the same states in another order gives the same value
SELECT counter_merge('likes2', '{"p":{"peer-1":7,"peer-2":4},"n":{}}'),
       counter_merge('likes2', '{"positive":{"peer-1":10},"negative":{"peer-1":1}}'),
       counter_merge('likes2', (SELECT counter_state('likes'))) = counter_value('likes') AS converged;
SELECT counter_value('nothing');
-- bad input
SELECT counter_merge('likes', '[1]');
SELECT counter_merge('likes', '{"p":{"x":-1}}');
SELECT counter_merge('likes', '{"p":{"x":1.5}}');
SELECT counter_merge('likes', '{"p":{"x":"7"}}');
SELECT counter_merge('likes', '{"p":[1]}');
SELECT counter_add(NULL, 1);
SELECT counter_add('likes', NULL);
SELECT counter_value('likes') AS unchanged;
