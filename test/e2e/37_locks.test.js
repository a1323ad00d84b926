'use strict';
// Distributed locks over the wire (LOCK_REQUEST / LOCK_RELEASE, PROTOCOL-
// ADDENDUM §A3, docs/locks.md): grant, FIFO hand-over, release by token,
// release on disconnect, fencing tokens that only grow, PUT checked on
// "lock:<name>", the topgun.locks view and topgun.lock_release(); and many
// 100 connections fighting for one lock never hold it at the same time (a
// counter updated read-modify-write under the lock loses no update).
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client } = require('./lib/client');
const { psql, rows, lit } = require('./lib/psql');
const barrier = require('./lib/barrier');
const hlc = require('./lib/hlc');

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

// 100 connections fight for one lock; the lock is the only thing that keeps
// their read-modify-writes of one LWW counter apart.  Each connection loops
// LOCK_REQUEST → LOCK_GRANTED → read the counter (SQL, after the previous
// holder's OP_ACK, which comes after the durable commit) → OP_BATCH PUT
// value+1 → OP_ACK → LOCK_RELEASE with the token → LOCK_RELEASED.  A lost
// update (two holders at once) would leave the counter short of the number of
// critical sections.  Every event is seen by this one process, so the holder
// intervals [grant received, release sent] are ordered by real causality: the
// next grant can only be sent after the server read the previous release.
const FIGHTERS = 100;
const ROUNDS = 3;
test(`${FIGHTERS} connections fighting for one lock: counter read-modify-write under the lock, tokens strictly increasing, no overlapping holds`, { timeout: 120000 }, async () => {
  const name = lockName('contended');
  const map = lockName('lock-counter');
  const key = 'counter';
  const readCounter = () => {
    const v = psql(`SELECT coalesce((SELECT (value->>'n')::int FROM topgun.lww WHERE map = ${lit(map)} AND key = ${lit(key)}), 0)`);
    return Number(v);
  };
  const clients = [];
  for (let i = 0; i < FIGHTERS; i++) clients.push(await Client.authed({ name: `fighter-${i}` }));
  let clock = 0;				// logical time: one tick per event of this process
  let holder = null;
  let overlaps = 0;
  const grants = [];				// in grant (receipt) order
  try {
    await Promise.all(clients.map(async (c, i) => {
      for (let round = 0; round < ROUNDS; round++) {
        const g = await granted(c, request(c, name), 90000);
        const start = ++clock;
        if (holder !== null) overlaps++;
        holder = i;
        const n = readCounter();
        const ts = hlc.now(`fighter-${i}`);
        const ack = await c.sendOps([hlc.putOp(map, key, { n: n + 1, by: i }, ts)], 10000);
        assert.equal(ack.payload.results.every((r) => r.success === true), true, `write of ${n + 1} acked`);
        assert.equal(holder, i, 'still the only holder after the write');
        holder = null;
        const end = ++clock;
        grants.push({ i, token: g.fencingToken, start, end });
        assert.equal(await release(c, name, g.fencingToken), true, 'released with its token');
      }
    }));
    const total = FIGHTERS * ROUNDS;
    assert.equal(overlaps, 0, 'mutual exclusion: no grant while another connection held the lock');
    assert.equal(grants.length, total);
    assert.equal(readCounter(), total, 'the counter equals the number of critical sections (no lost update)');
    for (let k = 1; k < grants.length; k++) {
      assert.ok(grants[k].token > grants[k - 1].token, `token ${k}: ${grants[k].token} > ${grants[k - 1].token}`);
      assert.ok(grants[k].start > grants[k - 1].end, `hold ${k} starts after hold ${k - 1} ended`);
    }
    assert.equal(new Set(grants.map((g) => g.i)).size, FIGHTERS, 'every connection got the lock');
    await until('the lock free again', () => !heldRow(name));
  } finally { await Promise.all(clients.map((c) => c.close())); }
});
