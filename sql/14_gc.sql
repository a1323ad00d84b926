-- Tombstone GC: what is older than the safe horizon goes, the trees stay right.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS topgun;
RESET client_min_messages;
SET search_path = topgun, public;
SELECT now_ms() AS now \gset
SELECT current_setting('topgun.gc_horizon') AS gc_horizon;
-- LWW: old tombstones go; recent tombstones and old live values stay
SELECT lww_put('gc-lww', 'old-live', '1', '1000:0:n'),
       lww_remove('gc-lww', 'old-dead', '1000:0:n'),
       lww_remove('gc-lww', 'young-dead', hlc(:now - 86400000, 0, 'n')),
       lww_remove('gc-lww', 'edge-dead', hlc(:now - 40 * 86400000::bigint, 0, 'n')),
       lww_put('gc-lww', 'young-live', '2', hlc(:now, 0, 'n'));
-- OR: old tombstoned tags go; young ones and tags TopGun cannot parse stay
SELECT or_add('gc-or', 'k', '"a"', '2000:0:n') IS NOT NULL, or_add('gc-or', 'k', '"b"', '2001:0:n') IS NOT NULL,
       or_add('gc-or', 'k', '"c"', hlc(:now, 0, 'n')) IS NOT NULL,
       or_apply('gc-or', 'k', '"d"', 'not-an-hlc', '2002:0:n'), or_apply('gc-or', 'k', '"e"', '2003:0:node:with:colons', '2003:0:n');
SELECT or_remove_tag('gc-or', '2000:0:n'), or_remove_tag('gc-or', 'not-an-hlc'),
       or_remove_tag('gc-or', '2003:0:node:with:colons'), or_remove_tag('gc-or', hlc(:now, 0, 'n')::text);
-- tombstone collection is no journal event
SELECT journal_enable('gc-*');
SELECT coalesce(max(seq), -1) AS jmark FROM journal_events \gset
SELECT lww_pruned, or_tags_pruned, hlc_millis(horizon) BETWEEN :now - 30 * 86400000::bigint - 60000
                                                            AND :now - 30 * 86400000::bigint + 60000 AS horizon_30_days,
       hlc_counter(horizon), hlc_node(horizon) = node_id() AS node, pass_done
  FROM gc_run();
SELECT key, value FROM lww WHERE map = 'gc-lww' ORDER BY key COLLATE "C";
SELECT CASE WHEN tag ~ '^[0-9]{13}:0:n$' THEN 'now:0:n' ELSE tag END AS tag FROM or_tombstones WHERE map = 'gc-or' ORDER BY 1 COLLATE "C";
SELECT count(*) AS journal_events_of_gc FROM journal_events WHERE seq > :jmark;
SELECT journal_disable('gc-*');
-- trees equal a rebuild from the rows
SELECT merkle_verify('gc-lww') AS lww_verified, merkle_verify('gc-or') AS or_verified;
SELECT merkle_root('gc-lww') AS root_before \gset
SELECT merkle_rebuild('gc-lww');
SELECT merkle_root('gc-lww') = :root_before AS root_equals_rebuild;
-- what the server sends as GC_PRUNE {olderThan}
SELECT older_than->'millis' = to_jsonb(hlc_millis(horizon)) AS millis, older_than->'counter' AS counter,
       older_than->>'nodeId' = node_id() AS node_id, lww_pruned, or_tags_pruned, completed_at IS NOT NULL AS done
  FROM gc_prune_info();
-- a second pass finds nothing
SELECT lww_pruned, or_tags_pruned, pass_done FROM gc_run();
-- SYNC_RESET_REQUIRED: never for 0 or NULL; for a client that synced before
-- the collected horizon or longer ago than topgun.gc_horizon
SELECT gc_sync_reset_required(0) AS zero, gc_sync_reset_required(NULL) AS null,
       gc_sync_reset_required(:now - 86400000) AS a_day_ago,
       gc_sync_reset_required(:now - 31 * 86400000::bigint) AS a_month_ago,
       gc_sync_reset_required((SELECT hlc_millis(horizon) - 1 FROM gc_prune_info())) AS before_horizon;
-- older_than override (operators), and the horizon follows the connected clients
SELECT lww_remove('gc-lww', 'mid-dead', hlc(:now - 10 * 86400000::bigint, 0, 'n'));
SELECT lww_pruned, hlc_millis(horizon) = :now - 25 * 86400000::bigint - 5 * 86400000::bigint AS client_floor_rule
  FROM gc_run(client_floor_ms => :now - 25 * 86400000::bigint, older_than => '5 days');
SELECT lww_pruned, pass_done FROM gc_run(older_than => '5 days');
SELECT gc_sync_reset_required(:now - 6 * 86400000::bigint) AS synced_before_collected_horizon;
SELECT * FROM gc_run(max_rows => 0);
SELECT * FROM gc_run(older_than => '-1 day');
-- bounded batches: a pass over a large table takes several calls and
-- collects everything exactly once
INSERT INTO lww (map, key, value, ts) SELECT 'gc-big', 'k' || g, NULL, hlc(3000 + g, 0, 'n')
  FROM generate_series(1, 20000) g;
INSERT INTO lww (map, key, value, ts) SELECT 'gc-big', 'live' || g, to_jsonb(g), hlc(3000 + g, 0, 'n')
  FROM generate_series(1, 2000) g;
CREATE TEMP TABLE runs AS SELECT 1 AS run, * FROM gc_run(max_rows => 1);
DO $$
BEGIN
  WHILE NOT (SELECT bool_or(pass_done) FROM runs) LOOP
    INSERT INTO runs SELECT (SELECT max(run) + 1 FROM runs), * FROM topgun.gc_run(max_rows => 1);
  END LOOP;
END $$;
SELECT count(*) > 1 AS several_calls, sum(lww_pruned) AS pruned, count(DISTINCT horizon) AS one_horizon FROM runs;
SELECT count(*) FILTER (WHERE value IS NULL) AS tombstones_left, count(*) AS live_left FROM lww WHERE map = 'gc-big';
SELECT merkle_verify('gc-big');
-- mesh: only below every peer's horizon (their heartbeats seen here)
INSERT INTO peers (name, node_id, conninfo, subscription, slot_name)
  VALUES ('fake', 'fake-node', 'host=/nonexistent', 'topgun_fake', 'topgun_fake_slot');
SELECT lww_remove('gc-lww', 'mesh-dead', hlc(:now - 50 * 86400000::bigint, 0, 'n'));
SET client_min_messages = notice;
SELECT * FROM gc_run();
RESET client_min_messages;
SELECT gc_safe_horizon() IS NULL AS no_horizon_without_heartbeat;
INSERT INTO node_clock (node, ts) VALUES ('fake-node', hlc(:now - 25 * 86400000::bigint, 0, 'fake-node'));
SELECT lww_pruned, hlc_millis(horizon) = :now - 55 * 86400000::bigint AS below_peer_horizon FROM gc_run();
SELECT count(*) AS mesh_tombstone_kept FROM lww WHERE map = 'gc-lww' AND key = 'mesh-dead';
UPDATE node_clock SET ts = hlc(:now, 0, 'fake-node') WHERE node = 'fake-node';
SELECT lww_pruned, pass_done FROM gc_run();
SELECT count(*) AS mesh_tombstone_gone FROM lww WHERE map = 'gc-lww' AND key = 'mesh-dead';
DELETE FROM node_clock WHERE node = 'fake-node';
DELETE FROM peers WHERE name = 'fake';
SELECT merkle_verify('gc-lww'), merkle_verify('gc-or');
