'use strict';
// ORMAP_DIFF_REQUEST replies are bounded (issue 17, defect 4): the reference
// repeats the map's whole tombstone list in every entry (keys × tombstones,
// here 10K × 10K ≈ 3 GB); the server sends each tombstone once, splits the
// reply into ORMAP_DIFF_RESPONSE parts of at most min(1 MiB,
// topgun.max_outbound_bytes / 4), and the client's mergeKey over the parts
// in order reaches exactly the server's state.  Other connections are served
// while a reader builds the reply.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, rows, lit } = require('./lib/psql');
const { setGuc } = require('./lib/barrier');

const NKEYS = 10000;
const MiB = 1024 * 1024;
// the documented bound of one part
const partCap = () => Math.min(MiB, Math.floor(Number(psql(`SELECT setting FROM pg_settings WHERE name = 'topgun.max_outbound_bytes'`)) / 4));

// TopGun ORMap.mergeKey (core/ORMap.ts), on {items: Map(key → Map(tag → record)), tombstones: Set}.
function mergeKey(state, key, records, tombstones) {
  for (const t of tombstones) state.tombstones.add(t);
  const local = state.items.get(key) || new Map();
  for (const tag of [...local.keys()]) if (state.tombstones.has(tag)) local.delete(tag);
  for (const r of records) {
    if (state.tombstones.has(r.tag)) continue;
    const l = local.get(r.tag);
    if (!l || hlc.compare(r.timestamp, l.timestamp) > 0) local.set(r.tag, r);
  }
  if (local.size) state.items.set(key, local); else state.items.delete(key);
}

const parseTs = (s) => {
  const [millis, counter, ...node] = s.split(':');
  return { millis: Number(millis), counter: Number(counter), nodeId: node.join(':') };
};

let map;
let dead;       // the tombstoned records, as a client that saw them before still holds them
let expected;   // key → Map(tag → {value, ts})
let tombstones; // every tombstone of the map

test.before(() => {
  map = hlc.uniqueName('or-diff');
  const m = lit(map);
  // 10K keys with a live record each; 5K more records, then tombstoned (their
  // key is known); 5K tombstones of tags that never had a record.
  psql(`SELECT count(topgun.or_add(${m}, 'k' || g, to_jsonb(g))) FROM generate_series(1, ${NKEYS}) g`);
  psql(`SELECT count(topgun.or_add(${m}, 'k' || g, '"dead"')) FROM generate_series(1, ${NKEYS}, 2) g`);
  dead = rows(`SELECT key, tag, ts::text AS ts FROM topgun.ormap WHERE map = ${m} AND value = '"dead"'`);
  psql(`SELECT count(*) FILTER (WHERE topgun.or_remove_tag(${m}, t))
          FROM unnest(ARRAY(SELECT tag FROM topgun.ormap WHERE map = ${m} AND value = '"dead"')) t`);
  psql(`SELECT count(topgun.or_remove_tag(${m}, 'gone-' || g)) FROM generate_series(1, ${NKEYS / 2}) g`);
  expected = new Map();
  for (const r of rows(`SELECT key, tag, value, ts::text AS ts FROM topgun.ormap WHERE map = ${m}`)) {
    if (!expected.has(r.key)) expected.set(r.key, new Map());
    expected.get(r.key).set(r.tag, r);
  }
  tombstones = new Set(rows(`SELECT tag FROM topgun.or_tombstones WHERE map = ${m}`).map((r) => r.tag));
  assert.equal(dead.length, NKEYS / 2);
  assert.equal(expected.size, NKEYS);
  assert.equal(tombstones.size, NKEYS);
});

// Request every key (and a repeated and an unknown one) with a client that
// still holds the tombstoned records; another client PINGs meanwhile.
async function requestDiff() {
  const cap = partCap();
  const a = await Client.authed({ name: 'requester' });
  const b = await Client.authed({ name: 'other' });
  try {
    const keys = [...expected.keys(), 'k1', 'nope'];
    a.send({ type: 'ORMAP_DIFF_REQUEST', payload: { mapName: map, keys } });
    // a's PING waits behind its read: its PONG comes after the last part
    const aDone = a.barrier(120000);
    b.send({ type: 'PING', timestamp: Date.now() });
    const n = b.pingsSent;
    const pong = await b.waitFor((m) => m.type === 'PONG' && m.seq === n, 30000);
    await aDone;
    const parts = a.queue.filter((m) => m.type === 'ORMAP_DIFF_RESPONSE');
    assert.ok(parts.length >= 2, `the reply is split (${parts.length} part(s))`);
    assert.ok(pong.at < parts[parts.length - 1].at, 'the other connection was answered while the reply was being built');
    assert.equal(a.closed, null);
    assert.deepEqual(a.queue.filter((m) => m.type === 'ERROR'), []);

    // each part bounded; in all, about the size of the data
    let total = 0;
    for (const p of parts) {
      assert.equal(p.payload.mapName, map);
      assert.ok(p.wireBytes <= cap, `part of ${p.wireBytes} bytes exceeds ${cap}`);
      total += p.wireBytes;
    }
    assert.ok(total < 4 * MiB, `the parts total ${total} bytes`);

    // each tombstone once; every distinct key at least once, 'nope' too
    const seen = new Map();
    const entryKeys = new Set();
    for (const p of parts) {
      for (const e of p.payload.entries) {
        entryKeys.add(e.key);
        for (const t of e.tombstones) seen.set(t, (seen.get(t) || 0) + 1);
      }
    }
    assert.equal(seen.size, tombstones.size);
    assert.ok([...seen.values()].every((c) => c === 1), 'no tombstone is sent twice');
    assert.equal(entryKeys.size, NKEYS + 1);
    assert.ok(entryKeys.has('nope'));

    // the client's mergeKey over the parts, in order, from its stale state
    const state = { items: new Map(), tombstones: new Set() };
    for (const d of dead) {
      if (!state.items.has(d.key)) state.items.set(d.key, new Map());
      state.items.get(d.key).set(d.tag, { value: 'dead', timestamp: parseTs(d.ts), tag: d.tag });
    }
    for (const p of parts) for (const e of p.payload.entries) mergeKey(state, e.key, e.records, e.tombstones);
    assert.deepEqual([...state.tombstones].sort(), [...tombstones].sort());
    assert.equal(state.items.size, expected.size);
    for (const [key, want] of expected) {
      const got = state.items.get(key);
      assert.ok(got, `key ${key} is missing`);
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `tags of ${key}`);
      for (const [tag, w] of want) {
        assert.deepEqual(got.get(tag).value, w.value);
        assert.equal(hlc.tagOf(got.get(tag).timestamp), w.ts);
      }
    }
    return parts.length;
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

test('10K keys × 10K tombstones: parts of at most min(1 MiB, max_outbound_bytes / 4), each tombstone once, the union converges', async () => {
  await requestDiff();
});

test('a smaller topgun.max_outbound_bytes makes smaller parts; the whole reply still reaches the client', async () => {
  await setGuc('topgun.max_outbound_bytes', '256kB');
  try {
    assert.equal(partCap(), 64 * 1024);
    const n = await requestDiff();
    assert.ok(n >= 20, `${n} parts`);
  } finally {
    await setGuc('topgun.max_outbound_bytes', null);
  }
});
