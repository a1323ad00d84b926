'use strict';
// Live search (SEARCH_SUB, PROTOCOL-ADDENDUM §A1.7): the snapshot, then
// SEARCH_UPDATE ENTER / UPDATE / LEAVE after commits from clients and from
// SQL, the limit held live, and SEARCH_UNSUB stops the updates.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, lit } = require('./lib/psql');

const updates = (c, id) => c.queue.filter((m) => m.type === 'SEARCH_UPDATE' && m.payload.subscriptionId === id).map((m) => m.payload);
const nextUpdate = (c, id) => c.waitFor((m) => m.type === 'SEARCH_UPDATE' && m.payload.subscriptionId === id).then((m) => m.payload);

test('SEARCH_SUB: snapshot, then ENTER / UPDATE / LEAVE from client and SQL writes; UNSUB stops them', async () => {
  const map = hlc.uniqueName('live-docs');
  psql(`SELECT topgun.search_enable(${lit(map)}, ARRAY['title'])`);
  const sub = await Client.authed({ name: 'subscriber' });
  const w = await Client.authed({ name: 'writer' });
  try {
    await w.sendOps([hlc.putOp(map, 'a', { title: 'red apple' }, hlc.now('w'))]);
    sub.send({ type: 'SEARCH_SUB', payload: { subscriptionId: 's1', mapName: map, query: 'apple' } });
    const snap = await sub.waitFor((m) => m.type === 'SEARCH_RESP' && m.payload.requestId === 's1');
    assert.deepEqual(snap.payload.results.map((r) => r.key), ['a']);

    await w.sendOps([hlc.putOp(map, 'b', { title: 'green apple pie' }, hlc.now('w'))]);
    const enter = await nextUpdate(sub, 's1');
    assert.equal(enter.type, 'ENTER');
    assert.equal(enter.key, 'b');
    assert.ok(enter.score > 0);
    assert.deepEqual(enter.value, { title: 'green apple pie' });
    assert.deepEqual(enter.matchedTerms, ['appl']);

    await w.sendOps([hlc.putOp(map, 'b', { title: 'green apple' }, hlc.now('w'))]);
    const upd = await nextUpdate(sub, 's1');
    assert.equal(upd.type, 'UPDATE');
    assert.equal(upd.key, 'b');

    await w.sendOps([hlc.putOp(map, 'b', { title: 'green pear' }, hlc.now('w'))]);
    const leave = await nextUpdate(sub, 's1');
    assert.equal(leave.type, 'LEAVE');
    assert.equal(leave.key, 'b');

    psql(`SELECT topgun.lww_put(${lit(map)}, 'c', '{"title": "apple from sql"}')`);
    const sqlEnter = await nextUpdate(sub, 's1');
    assert.equal(sqlEnter.type, 'ENTER');
    assert.equal(sqlEnter.key, 'c');

    sub.send({ type: 'SEARCH_UNSUB', payload: { subscriptionId: 's1' } });
    await sub.barrier();
    await w.sendOps([hlc.putOp(map, 'd', { title: 'apple again' }, hlc.now('w'))]);
    await w.barrier();
    await sub.barrier();
    assert.deepEqual(updates(sub, 's1'), [], 'no update after SEARCH_UNSUB');
  } finally { await sub.close(); await w.close(); }
});

test('live results honour the limit: a better match pushes the lowest member out', async () => {
  const map = hlc.uniqueName('live-limit');
  psql(`SELECT topgun.search_enable(${lit(map)}, ARRAY['title'])`);
  const sub = await Client.authed({ name: 'limited' });
  const w = await Client.authed({ name: 'writer2' });
  try {
    await w.sendOps([
      hlc.putOp(map, 'weak', { title: 'apple and many other words here to dilute the score' }, hlc.now('w')),
    ]);
    sub.send({ type: 'SEARCH_SUB', payload: { subscriptionId: 's2', mapName: map, query: 'apple', options: { limit: 1 } } });
    const snap = await sub.waitFor((m) => m.type === 'SEARCH_RESP' && m.payload.requestId === 's2');
    assert.deepEqual(snap.payload.results.map((r) => r.key), ['weak']);
    await w.sendOps([hlc.putOp(map, 'strong', { title: 'apple apple' }, hlc.now('w'))]);
    const u1 = await nextUpdate(sub, 's2');
    const u2 = await nextUpdate(sub, 's2');
    const byType = Object.fromEntries([u1, u2].map((u) => [u.type, u.key]));
    assert.deepEqual(byType, { LEAVE: 'weak', ENTER: 'strong' });
  } finally { await sub.close(); await w.close(); }
});
