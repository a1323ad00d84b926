'use strict';
// Two clients converging on an LWW map and on an OR map: writes from both,
// events pushed to the watcher (never to the sender, only for winning ops),
// and the final SQL state, merkle_root and a fresh Merkle pull all equal.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, rows, lit } = require('./lib/psql');
const { LwwTree, OrTree } = require('./lib/merkle');
const { pullLww, pullOr, watchLww, watchOr, eventsFor, isEvent } = require('./lib/sync');

// Events for `map` flattened from SERVER_BATCH_EVENT / SERVER_EVENT messages.
const eventsOf = (msgs, map) => msgs.flatMap((m) => eventsFor(m, map));

async function waitEvents(c, map, n, timeoutMs = 5000) {
  const got = [];
  const end = Date.now() + timeoutMs;
  while (got.length < n) {
    const m = await c.waitFor(isEvent(map), Math.max(1, end - Date.now()));
    got.push(...eventsOf([m], map));
  }
  return got;
}

test('LWW: two clients write, each sees the other\'s winning writes, all replicas converge', async () => {
  const map = hlc.uniqueName('conv-lww');
  const a = await Client.authed({ name: 'A' });
  const b = await Client.authed({ name: 'B' });
  try {
    await watchLww(a, map);
    await watchLww(b, map);

    const t1 = hlc.now('node-A');
    await a.sendOps([hlc.putOp(map, 'k1', { by: 'A', n: 1 }, t1)]);
    const evB = await waitEvents(b, map, 1);
    assert.equal(evB[0].key, 'k1');
    assert.equal(evB[0].eventType, 'UPDATED');
    assert.deepEqual(evB[0].record.value, { by: 'A', n: 1 });
    assert.deepEqual(evB[0].record.timestamp, t1);
    await a.expectNone(isEvent(map)); // never to the sender

    const t2 = hlc.now('node-B');
    await b.sendOps([hlc.putOp(map, 'k1', { by: 'B', n: 2 }, t2), hlc.putOp(map, 'k2', [1, 'two', { three: 3 }], hlc.now('node-B'))]);
    const evA = await waitEvents(a, map, 2);
    assert.deepEqual(evA.map((e) => e.key).sort(), ['k1', 'k2']);
    assert.deepEqual(evA.find((e) => e.key === 'k2').record.value, [1, 'two', { three: 3 }]);

    // A stale write (older timestamp) is acked but loses: no event, no change.
    const stale = { millis: t1.millis - 1000, counter: 0, nodeId: 'node-A' };
    const ack = await a.sendOps([hlc.putOp(map, 'k1', { by: 'A', stale: true }, stale)]);
    assert.equal(ack.payload.results[0].success, true);
    await b.expectNone(isEvent(map));
    assert.deepEqual(JSON.parse(psql(`SELECT topgun.lww_get(${lit(map)}, 'k1')`)), { by: 'B', n: 2 });
  } finally {
    await a.close();
    await b.close();
  }
});

test('LWW: interleaved concurrent writes from two clients end in the LWW of all writes', async () => {
  const map = hlc.uniqueName('conv-lww2');
  const a = await Client.authed({ name: 'A' });
  const b = await Client.authed({ name: 'B' });
  try {
    await watchLww(a, map);
    await watchLww(b, map);
    const base = Date.now();
    const expected = new Map();
    const batchesA = [];
    const batchesB = [];
    // 20 batches each, 5 ops per batch over 12 keys, timestamps drawn so that
    // both clients win some keys; deterministic pseudo-random sequence.
    let seed = 42;
    const rnd = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    let opIndex = 0; // unique counters: no two ops share a timestamp
    for (let i = 0; i < 20; i++) {
      for (const [who, batches] of [['A', batchesA], ['B', batchesB]]) {
        const ops = [];
        for (let j = 0; j < 5; j++) {
          const key = `k${rnd(12)}`;
          const ts = { millis: base + rnd(5000), counter: opIndex++, nodeId: `node-${who}` };
          const v = rnd(10) === 0 ? null : { who, i, j };
          ops.push(v === null ? hlc.removeOp(map, key, ts) : hlc.putOp(map, key, v, ts));
          const cur = expected.get(key);
          if (!cur || hlc.compare(ts, cur.ts) > 0) expected.set(key, { ts, value: v });
        }
        batches.push(ops);
      }
    }
    // Fire both clients' batches concurrently, then wait for every ack.
    const pa = Promise.all(batchesA.map((ops) => a.sendOps(ops, 20000)));
    const pb = Promise.all(batchesB.map((ops) => b.sendOps(ops, 20000)));
    const acks = [...await pa, ...await pb];
    for (const ack of acks) for (const r of ack.payload.results) assert.equal(r.success, true, r.error);

    const sql = new Map(rows(`SELECT key, value, ts::text AS ts FROM topgun.lww WHERE map = ${lit(map)}`).map((r) => [r.key, r]));
    assert.equal(sql.size, expected.size);
    const tree = new LwwTree();
    for (const [key, e] of expected) {
      const r = sql.get(key);
      assert.ok(r, `key ${key} missing in SQL`);
      assert.equal(r.ts, hlc.tagOf(e.ts), `winner timestamp of ${key}`);
      assert.deepEqual(r.value, e.value, `winner value of ${key}`);
      tree.update(key, { timestamp: e.ts });
    }
    const root = Number(psql(`SELECT topgun.merkle_root(${lit(map)})`));
    assert.equal(root, tree.root(), 'merkle_root equals the tree of the expected state');
    assert.equal(psql(`SELECT topgun.merkle_verify(${lit(map)})`), 't');

    // A fresh client pulls exactly that state.
    const c = await Client.authed({ name: 'C' });
    try {
      const pulled = await pullLww(c, map);
      assert.equal(pulled.root, root);
      assert.equal(pulled.records.size, expected.size);
      for (const [key, e] of expected) {
        assert.deepEqual(pulled.records.get(key).value, e.value, `pulled ${key}`);
        assert.deepEqual(pulled.records.get(key).timestamp, e.ts, `pulled ts of ${key}`);
      }
    } finally { await c.close(); }

    // Watchers saw events: every key's final winner arrived at least at one side.
    const seen = eventsOf([...a.queue, ...b.queue], map);
    assert.ok(seen.length > 0, 'watchers received SERVER_BATCH_EVENTs');
  } finally {
    await a.close();
    await b.close();
  }
});

test('OR map: adds from both clients, a remove, events to the watcher, SQL and Merkle agree', async () => {
  const map = hlc.uniqueName('conv-or');
  const a = await Client.authed({ name: 'A' });
  const b = await Client.authed({ name: 'B' });
  try {
    await watchOr(a, map);
    await watchOr(b, map);
    const tA = hlc.now('node-A');
    await a.sendOps([hlc.orAddOp(map, 'colors', 'red', tA)]);
    const evB = await waitEvents(b, map, 1);
    assert.equal(evB[0].eventType, 'OR_ADD');
    assert.equal(evB[0].key, 'colors');
    assert.equal(evB[0].orRecord.value, 'red');
    assert.equal(evB[0].orRecord.tag, hlc.tagOf(tA));
    await a.expectNone(isEvent(map));

    const tB = hlc.now('node-B');
    const tB2 = hlc.now('node-B');
    await b.sendOps([hlc.orAddOp(map, 'colors', { name: 'blue', hex: '#00f' }, tB), hlc.orAddOp(map, 'sizes', 42, tB2)]);
    const evA = await waitEvents(a, map, 2);
    assert.deepEqual(evA.map((e) => e.orRecord.tag).sort(), [hlc.tagOf(tB), hlc.tagOf(tB2)].sort());

    // B removes A's tag (observed-remove by tag).
    await b.sendOps([hlc.orRemoveOp(map, 'colors', hlc.tagOf(tA), hlc.now('node-B'))]);
    const evA2 = await waitEvents(a, map, 1);
    assert.equal(evA2[0].eventType, 'OR_REMOVE');
    assert.equal(evA2[0].orTag, hlc.tagOf(tA));

    // A concurrent re-add of the removed tag loses (tag is tombstoned).
    await a.sendOps([hlc.orAddOp(map, 'colors', 'red', tA)]);
    assert.equal(psql(`SELECT count(*) FROM topgun.ormap WHERE map = ${lit(map)} AND tag = ${lit(hlc.tagOf(tA))}`), '0');

    assert.deepEqual(JSON.parse(psql(`SELECT json_agg(v) FROM topgun.or_get(${lit(map)}, 'colors') v`)), [{ name: 'blue', hex: '#00f' }]);
    assert.deepEqual(JSON.parse(psql(`SELECT json_agg(v) FROM topgun.or_get(${lit(map)}, 'sizes') v`)), [42]);

    // Expected tree from the records the clients wrote.
    const tree = new OrTree();
    tree.updateKey('colors', [{ value: { name: 'blue', hex: '#00f' }, timestamp: tB, tag: hlc.tagOf(tB) }]);
    tree.updateKey('sizes', [{ value: 42, timestamp: tB2, tag: hlc.tagOf(tB2) }]);
    const root = Number(psql(`SELECT topgun.merkle_root(${lit(map)})`));
    assert.equal(root, tree.root(), 'merkle_root equals the JS ORMap tree');

    const c = await Client.authed({ name: 'C' });
    try {
      const pulled = await pullOr(c, map);
      assert.equal(pulled.root, root);
      assert.deepEqual([...pulled.entries.keys()].sort(), ['colors', 'sizes']);
      assert.deepEqual(pulled.entries.get('colors').records.map((r) => r.value), [{ name: 'blue', hex: '#00f' }]);
      assert.ok(pulled.tombstones.has(hlc.tagOf(tA)));
    } finally { await c.close(); }
  } finally {
    await a.close();
    await b.close();
  }
});

test('OR map: ORMAP_PUSH_DIFF merges records and tombstones, no reply, watcher gets OR_ADD', async () => {
  const map = hlc.uniqueName('conv-push');
  const a = await Client.authed({ name: 'A' });
  const w = await Client.authed({ name: 'W' });
  try {
    await watchOr(w, map);
    const t1 = hlc.now('peer');
    const t2 = hlc.now('peer');
    const dead = hlc.now('peer');
    a.send({ type: 'ORMAP_PUSH_DIFF', payload: { mapName: map, entries: [
      { key: 'k', records: [{ value: 'v1', timestamp: t1, tag: hlc.tagOf(t1) }, { value: 'v2', timestamp: t2, tag: hlc.tagOf(t2) }],
        tombstones: [hlc.tagOf(dead)] }] } });
    const ev = await waitEvents(w, map, 2);
    assert.ok(ev.every((e) => e.eventType === 'OR_ADD'));
    await a.expectNone((m) => m.type !== 'PONG');
    assert.deepEqual(rows(`SELECT tag FROM topgun.ormap WHERE map = ${lit(map)} ORDER BY tag`).map((r) => r.tag),
      [hlc.tagOf(t1), hlc.tagOf(t2)].sort());
    assert.equal(psql(`SELECT count(*) FROM topgun.or_tombstones WHERE map = ${lit(map)} AND tag = ${lit(hlc.tagOf(dead))}`), '1');
  } finally {
    await a.close();
    await w.close();
  }
});
