'use strict';
// Offline writes: a client queues several ops while disconnected, sends them
// as one OP_BATCH and drops the connection before the ack arrives, then
// reconnects and re-sends the same batch (same ids).  The duplicate is
// acknowledged and changes nothing; the state is the one the ops describe.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, rows, lit } = require('./lib/psql');
const { pullLww } = require('./lib/sync');

test('offline batch: disconnect before ack, reconnect, resend → idempotent, state correct', async () => {
  const map = hlc.uniqueName('offline');
  const omap = hlc.uniqueName('offline-or');
  // "Written while offline": timestamps from the past minute, ids that
  // cross a digit boundary ("9" < "10" as strings).
  const base = Date.now() - 60000;
  const ts = (i) => ({ millis: base + i, counter: 0, nodeId: 'offline-client' });
  const ops = [
    hlc.putOp(map, 'a', { n: 1 }, ts(1), { id: '8' }),
    hlc.putOp(map, 'b', 'text', ts(2), { id: '9' }),
    hlc.putOp(map, 'a', { n: 2 }, ts(3), { id: '10' }),       // overwrites a
    hlc.removeOp(map, 'b', ts(4), { id: '11' }),               // deletes b
    hlc.putOp(map, 'c', 3.25, ts(5), { id: '12', ttlMs: 86400000 }),
    hlc.orAddOp(omap, 'k', 'x', ts(6), { id: '13' }),
    hlc.orAddOp(omap, 'k', 'y', ts(7), { id: '14' }),
    hlc.orRemoveOp(omap, 'k', hlc.tagOf(ts(6)), ts(8), { id: '15' }),
  ];

  // 1. send and vanish without reading the ack
  const c1 = await Client.authed({ name: 'offline-1' });
  c1.send(hlc.opBatch(ops));
  c1.terminate();

  // 2. reconnect and resend the whole batch (what the TopGun client does on AUTH_ACK)
  const c2 = await Client.authed({ name: 'offline-2' });
  try {
    const ack = await c2.sendOps(ops, 10000);
    assert.equal(ack.payload.lastId, '15');
    assert.deepEqual(ack.payload.results.map((r) => r.opId).sort(), ops.map((o) => o.id).sort());
    for (const r of ack.payload.results) assert.equal(r.success, true, `op ${r.opId}: ${r.error}`);

    const check = () => {
      assert.deepEqual(rows(`SELECT key, value, ts::text AS ts, ttl_ms FROM topgun.lww WHERE map = ${lit(map)} ORDER BY key`), [
        { key: 'a', value: { n: 2 }, ts: hlc.tagOf(ts(3)), ttl_ms: null },
        { key: 'b', value: null, ts: hlc.tagOf(ts(4)), ttl_ms: null },
        { key: 'c', value: 3.25, ts: hlc.tagOf(ts(5)), ttl_ms: 86400000 },
      ]);
      assert.deepEqual(rows(`SELECT key, tag, value FROM topgun.ormap WHERE map = ${lit(omap)}`),
        [{ key: 'k', tag: hlc.tagOf(ts(7)), value: 'y' }]);
      assert.equal(psql(`SELECT count(*) FROM topgun.or_tombstones WHERE map = ${lit(omap)}`), '1');
    };
    check();
    const roots = () => psql(`SELECT topgun.merkle_root(${lit(map)}) || '/' || topgun.merkle_root(${lit(omap)})`);
    const r1 = roots();

    // 3. a second duplicate (e.g. the ack got lost again) changes nothing
    const ack2 = await c2.sendOps(ops, 10000);
    for (const r of ack2.payload.results) assert.equal(r.success, true);
    check();
    assert.equal(roots(), r1);

    // 4. another client pulling the map gets the same state, tombstone included
    const c3 = await Client.authed({ name: 'puller' });
    try {
      const pulled = await pullLww(c3, map);
      assert.equal(pulled.records.size, 3);
      assert.equal(pulled.records.get('b').value, null);
      assert.deepEqual(pulled.records.get('a').value, { n: 2 });
      assert.equal(pulled.records.get('c').ttlMs, 86400000);
    } finally { await c3.close(); }
  } finally { await c2.close(); }
});

test('ops queued before AUTH_ACK arrive first after auth and are acked with results for every id', async () => {
  const map = hlc.uniqueName('offline-q');
  const c = await Client.connect();
  try {
    await c.waitFor('AUTH_REQUIRED');
    const { hs256 } = require('./lib/jwt');
    const env = require('./lib/env');
    c.send({ type: 'AUTH', token: hs256(env.jwtSecret) });
    // the client sends its pending ops right after AUTH_ACK; pipeline them
    await c.waitFor('AUTH_ACK');
    const ops = [];
    for (let i = 1; i <= 25; i++) ops.push(hlc.putOp(map, `k${i}`, i, hlc.now('queue-node'), { id: String(i) }));
    const ack = await c.sendOps(ops);
    assert.equal(ack.payload.lastId, '25');
    assert.equal(ack.payload.results.length, 25);
    assert.equal(psql(`SELECT count(*) FROM topgun.lww_entries WHERE map = ${lit(map)}`), '25');
    assert.equal(psql(`SELECT sum((value)::int) FROM topgun.lww_entries WHERE map = ${lit(map)}`), String((25 * 26) / 2));
  } finally { await c.close(); }
});
