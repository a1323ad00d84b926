-- The hlc type: text and binary round trips, ordering, accessors, bad input.
CREATE EXTENSION topgun;
\set SHOW_CONTEXT never
SET search_path = topgun, public;

SELECT '1736000000000:0:client-A'::hlc;
SELECT '0:0:x'::hlc, '9007199254740991:2147483647:n'::hlc;
SELECT hlc(1736000000000, 5, 'srv'), hlc_millis('1:2:abc'), hlc_counter('1:2:abc'), hlc_node('1:2:abc');
CREATE TEMP TABLE hb (h hlc);
INSERT INTO hb VALUES ('5:1:b'), ('5:1:a'), ('5:0:z'), ('4:9:z'), ('5:1:ab'), ('5:10:a'), ('5:2:a');
-- binary round trip through send/recv (COPY BINARY uses them)
\copy hb TO 'results/hlc_copy.bin' (FORMAT binary)
CREATE TEMP TABLE hb2 (h hlc);
\copy hb2 FROM 'results/hlc_copy.bin' (FORMAT binary)
SELECT count(*) AS copied, bool_and(h IN (SELECT h FROM hb)) AS all_equal FROM hb2;
SELECT hlc_send('1736000000000:7:node-1');
SELECT h FROM hb ORDER BY h;
SELECT max(h), min(h) FROM hb;
SELECT '5:1:a'::hlc < '5:1:b'::hlc AS node_order, '5:1:z'::hlc < '5:2:a'::hlc AS counter_first,
       '4:99:z'::hlc < '5:0:a'::hlc AS millis_first, '5:1:a'::hlc = '5:1:a'::hlc AS eq,
       '5:1:a'::hlc <> '5:1:ab'::hlc AS ne, '5:1:B'::hlc < '5:1:a'::hlc AS byte_order;
-- hash opclass: grouping and hash joins work
SET enable_sort = off;
SELECT count(DISTINCT h) FROM hb;
SELECT h, count(*) FROM (SELECT h FROM hb UNION ALL SELECT h FROM hb) s GROUP BY h HAVING count(*) <> 2;
RESET enable_sort;
CREATE INDEX ON hb (h);
CREATE INDEX ON hb USING hash (h);

-- bad input: each is rejected with invalid_text_representation and the offending text
\set VERBOSITY default
SELECT 'garbage'::hlc;
SELECT '1:2'::hlc;
SELECT '1:2:a:b'::hlc AS colon_in_node_ok, hlc_node('1:2:a:b');
SELECT '1:x:a'::hlc;
SELECT '-1:0:a'::hlc;
SELECT '1:-1:a'::hlc;
SELECT '01:0:a'::hlc;
SELECT '9007199254740992:0:a'::hlc;
SELECT '1:2147483648:a'::hlc AS big_counter_ok;
SELECT '1:9007199254740992:a'::hlc;
SELECT ':0:a'::hlc;
SELECT ('1:0:' || repeat('x', 129))::hlc;
SELECT hlc(-1, 0, 'a');
SELECT hlc(1, -1, 'a');
SELECT hlc(1, 0, 'a:b') AS colon_ok, hlc(1, 4294967295::bigint, 'x') AS uint32_counter_ok;
SELECT hlc(1, 0, repeat('n', 129));
SELECT hlc(1, 0, '') AS empty_node_ok, '1:0:'::hlc AS empty_node_text;

-- the node clock: strictly increasing, never behind the wall clock
SELECT hlc_millis(hlc_now()) >= (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1000 AS near_wall_clock;
SELECT bool_and(b > a) AS strictly_increasing
  FROM (SELECT hlc_now() AS a, hlc_now() AS b FROM generate_series(1, 1000)) s;
SELECT hlc_node(hlc_now()) = 'regress-node' AS uses_node_id, node_id();
-- update with a remote time ahead (within drift): clock jumps to remote, counter = remote + 1
SELECT hlc_counter(hlc_update(hlc((extract(epoch FROM clock_timestamp()) * 1000)::bigint + 5000, 7, 'peer'))) = 8 AS took_remote;
SELECT hlc_now() > hlc((extract(epoch FROM clock_timestamp()) * 1000)::bigint + 4000, 0, 'peer') AS never_goes_back;
\set VERBOSITY terse
-- strict mode: a remote time beyond max_drift_ms is refused and does not move the clock
SET topgun.strict_clock = on;
SET topgun.max_drift_ms = 1000;
SELECT hlc_update(hlc((extract(epoch FROM clock_timestamp()) * 1000)::bigint + 50000, 0, 'future'));
SELECT hlc_millis(hlc_now()) < (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 40000 AS clock_not_moved;
-- not strict: accepted with a warning (rate-limited: the second one is silent)
SET topgun.strict_clock = off;
SELECT hlc_node(hlc_update(hlc((extract(epoch FROM clock_timestamp()) * 1000)::bigint + 50000, 0, 'future'))) AS accepted;
SELECT hlc_millis(hlc_update(hlc((extract(epoch FROM clock_timestamp()) * 1000)::bigint + 51000, 0, 'future'))) > (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 45000 AS accepted_quietly;
RESET topgun.max_drift_ms;
\set VERBOSITY default
