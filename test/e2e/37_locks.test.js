'use strict';
// Distributed locks over the wire (LOCK_REQUEST / LOCK_RELEASE, PROTOCOL-
// ADDENDUM §A3, docs/locks.md): grant, FIFO hand-over, release by token,
// release on disconnect, fencing tokens that only grow, PUT checked on
// "lock:<name>", the topgun.locks view and topgun.lock_release(); and many
// connections fighting for one lock never hold it at the same time.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client } = require('./lib/client');
const { psql, rows, lit } = require('./lib/psql');
const barrier = require('./lib/barrier');

const lockName = (p) => `${p}-${crypto.randomBytes(4).toString('hex')}`;

function request(c, name, ttl = 10000) {
  const requestId = crypto.randomUUID();
  c.send({ type: 'LOCK_REQUEST', payload: { requestId, name, ttl } });
  return requestId;
}
const granted = (c, requestId, ms = 5000) =>
  c.waitFor((m) => m.type === 'LOCK_GRANTED' && m.payload.requestId === requestId, ms).then((m) => m.payload);
async function release(c, name, fencingToken) {
  const requestId = crypto.randomUUID();
  c.send({ type: 'LOCK_RELEASE', payload: { requestId, name, fencingToken } });
  const m = await c.waitFor((x) => x.type === 'LOCK_RELEASED' && x.payload.requestId === requestId);
  return m.payload.success;
}
const heldRow = (name) => rows(`SELECT name, holder, fencing_token, waiters FROM topgun.locks WHERE name = ${lit(name)}`)[0];

// until(what, fact): barrier.until with the description first.
const until = (what, fact, ms = 10000) => barrier.until(fact, what, ms);

test('grant; a wrong token does not release; the right one does; tokens grow across re-acquires', async () => {
  const name = lockName('basic');
  const c = await Client.authed({ name: 'locker' });
  try {
    const g1 = await granted(c, request(c, name));
    assert.equal(g1.name, name);
    assert.equal(typeof g1.fencingToken, 'number');
    assert.ok(g1.fencingToken >= 1);
    await until('the lock published', () => heldRow(name));
    assert.equal(Number(heldRow(name).fencing_token), g1.fencingToken);
    assert.equal(await release(c, name, g1.fencingToken + 1000), false, 'a wrong token does not release');
    assert.equal(await release(c, name, g1.fencingToken), true);
    const g2 = await granted(c, request(c, name));
    assert.ok(g2.fencingToken > g1.fencingToken, `token ${g2.fencingToken} > ${g1.fencingToken} after a release`);
    assert.equal(await release(c, name, g2.fencingToken), true);
  } finally { await c.close(); }
});

test('FIFO hand-over on release and on disconnect; a waiter that left is never granted', async () => {
  const name = lockName('fifo');
  const a = await Client.authed({ name: 'a' });
  const b = await Client.authed({ name: 'b' });
  const gone = await Client.authed({ name: 'gone' });
  const c = await Client.authed({ name: 'c' });
  try {
    const ga = await granted(a, request(a, name));
    const rb = request(b, name);
    const rg = request(gone, name);
    const rc = request(c, name);
    b.send({ type: 'PING', timestamp: Date.now() });
    await b.waitFor('PONG');
    assert.equal(b.queue.some((m) => m.type === 'LOCK_GRANTED'), false, 'b waits');
    assert.equal(await release(a, name, ga.fencingToken), true);
    const gb = await granted(b, rb);
    assert.ok(gb.fencingToken > ga.fencingToken);
    gone.terminate();				// the next waiter disconnects before its turn
    await until('the waiter dropped', () => { const r = heldRow(name); return r && Number(r.waiters) === 1; });
    await b.close();				// the holder disconnects: the lock passes on
    const gc = await granted(c, rc);
    assert.ok(gc.fencingToken > gb.fencingToken);
    void rg;
  } finally { await a.close(); await c.close(); }
});

test('topgun.lock_release() hands the lock to the next waiter', async () => {
  const name = lockName('operator');
  const a = await Client.authed({ name: 'holder' });
  const b = await Client.authed({ name: 'waiter' });
  try {
    await granted(a, request(a, name));
    const rb = request(b, name);
    await until('the waiter queued', () => { const r = heldRow(name); return r && Number(r.waiters) === 1; });
    assert.equal(psql(`SELECT topgun.lock_release(${lit(name)})`), 't');
    const gb = await granted(b, rb);
    assert.ok(gb.fencingToken >= 2);
  } finally { await a.close(); await b.close(); }
});

test('30 connections fighting for one lock: never two holders, tokens strictly increasing', { timeout: 120000 }, async () => {
  const name = lockName('contended');
  const clients = [];
  for (let i = 0; i < 30; i++) clients.push(await Client.authed({ name: `fighter-${i}` }));
  let holder = null;
  let overlaps = 0;
  const tokens = [];
  try {
    await Promise.all(clients.map(async (c, i) => {
      for (let round = 0; round < 3; round++) {
        const g = await granted(c, request(c, name), 60000);
        if (holder !== null) overlaps++;
        holder = i;
        tokens.push(g.fencingToken);
        await new Promise((r) => setImmediate(r));
        holder = null;
        assert.equal(await release(c, name, g.fencingToken), true);
      }
    }));
    assert.equal(overlaps, 0, 'mutual exclusion');
    assert.equal(tokens.length, 90);
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `token ${i}: ${tokens[i]} > ${tokens[i - 1]}`);
  } finally { await Promise.all(clients.map((c) => c.close())); }
});
