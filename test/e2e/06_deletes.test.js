'use strict';
// Deletes propagate: an LWW REMOVE becomes a tombstone in SQL (value NULL,
// newer ts) and an UPDATED event with record.value null to the watcher; an
// OR_REMOVE becomes a tombstoned tag and an OR_REMOVE event.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, rows, lit } = require('./lib/psql');
const { pullLww } = require('./lib/sync');

function eventFor(map, key) {
  return (m) => (m.type === 'SERVER_BATCH_EVENT' && m.payload.events.some((e) => e.mapName === map && e.key === key)) ||
    (m.type === 'SERVER_EVENT' && m.payload.mapName === map && m.payload.key === key);
}
const pick = (m, map, key) => (m.type === 'SERVER_EVENT' ? m.payload : m.payload.events.find((e) => e.mapName === map && e.key === key));

test('LWW REMOVE → tombstone in SQL, UPDATED event with value null, pulled as tombstone', async () => {
  const map = hlc.uniqueName('del');
  const w = await Client.authed({ name: 'watcher' });
  const a = await Client.authed({ name: 'writer' });
  try {
    w.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 });
    await w.waitFor('SYNC_RESP_ROOT');
    await a.sendOps([hlc.putOp(map, 'doomed', { keep: false }, hlc.now('w')), hlc.putOp(map, 'kept', 1, hlc.now('w'))]);
    await w.waitFor(eventFor(map, 'doomed'));
    assert.deepEqual(JSON.parse(psql(`SELECT topgun.lww_get(${lit(map)}, 'doomed')`)), { keep: false });

    const tDel = hlc.now('w');
    await a.sendOps([hlc.removeOp(map, 'doomed', tDel)]);
    const ev = pick(await w.waitFor(eventFor(map, 'doomed')), map, 'doomed');
    assert.equal(ev.eventType, 'UPDATED');
    assert.equal(ev.record.value, null);
    assert.deepEqual(ev.record.timestamp, tDel);

    assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'doomed') IS NULL`), 't');
    assert.deepEqual(rows(`SELECT value, ts::text AS ts FROM topgun.lww WHERE map = ${lit(map)} AND key = 'doomed'`),
      [{ value: null, ts: hlc.tagOf(tDel) }]);
    assert.deepEqual(rows(`SELECT key FROM topgun.lww_entries WHERE map = ${lit(map)}`), [{ key: 'kept' }]);

    // An older put cannot resurrect the key.
    await a.sendOps([hlc.putOp(map, 'doomed', 'zombie', { millis: tDel.millis - 1, counter: 0, nodeId: 'w' })]);
    assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'doomed') IS NULL`), 't');

    const c = await Client.authed({ name: 'fresh' });
    try {
      const pulled = await pullLww(c, map);
      assert.equal(pulled.records.get('doomed').value, null);
      assert.deepEqual(pulled.records.get('doomed').timestamp, tDel);
    } finally { await c.close(); }
  } finally {
    await a.close();
    await w.close();
  }
});

test('SQL-side delete of an LWW key (lww_remove) is pulled by clients as a tombstone', async () => {
  const map = hlc.uniqueName('del-sql');
  const a = await Client.authed();
  try {
    await a.sendOps([hlc.putOp(map, 'k', 'v', hlc.now('n'))]);
    psql(`SELECT topgun.lww_remove(${lit(map)}, 'k')`);
    const pulled = await pullLww(a, map);
    assert.equal(pulled.records.get('k').value, null);
  } finally { await a.close(); }
});

test('OR_REMOVE → tag tombstoned in SQL, OR_REMOVE event to the watcher', async () => {
  const map = hlc.uniqueName('del-or');
  const w = await Client.authed({ name: 'watcher' });
  const a = await Client.authed({ name: 'writer' });
  try {
    w.send({ type: 'ORMAP_SYNC_INIT', mapName: map, rootHash: 0, bucketHashes: {}, lastSyncTimestamp: 0 });
    await w.waitFor('ORMAP_SYNC_RESP_ROOT');
    const t1 = hlc.now('w');
    const t2 = hlc.now('w');
    await a.sendOps([hlc.orAddOp(map, 'k', 'same', t1), hlc.orAddOp(map, 'k', 'same', t2)]);
    await w.waitFor(eventFor(map, 'k'));
    // remove(k, 'same') as the client does it: one OR_REMOVE per tag
    await a.sendOps([hlc.orRemoveOp(map, 'k', hlc.tagOf(t1), hlc.now('w')), hlc.orRemoveOp(map, 'k', hlc.tagOf(t2), hlc.now('w'))]);
    const removed = new Set();
    const end = Date.now() + 5000;
    while (removed.size < 2) {
      const m = await w.waitFor(eventFor(map, 'k'), Math.max(1, end - Date.now()));
      const evs = m.type === 'SERVER_EVENT' ? [m.payload] : m.payload.events.filter((e) => e.mapName === map);
      for (const e of evs) if (e.eventType === 'OR_REMOVE') removed.add(e.orTag);
    }
    assert.deepEqual([...removed].sort(), [hlc.tagOf(t1), hlc.tagOf(t2)].sort());
    assert.equal(psql(`SELECT count(*) FROM topgun.ormap WHERE map = ${lit(map)}`), '0');
    assert.equal(psql(`SELECT count(*) FROM topgun.or_tombstones WHERE map = ${lit(map)}`), '2');
    assert.equal(psql(`SELECT count(*) FROM topgun.or_get(${lit(map)}, 'k')`), '0');
    assert.equal(psql(`SELECT topgun.merkle_root(${lit(map)})`), '0', 'a key with no live tag leaves the ORMap tree');
  } finally {
    await a.close();
    await w.close();
  }
});
