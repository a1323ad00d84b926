'use strict';
// The executor processes (docs/worker.md, "Processes"): replies stay in the
// order of the client's messages, reads see the connection's own writes,
// a reader executor that dies is replaced while every connection stays up,
// a session executor that dies makes the socket process close connections
// with 1012 and start a fresh one; nothing acked is lost.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, rows, lit } = require('./lib/psql');
const barrier = require('./lib/barrier');

function executors() {
  return rows('SELECT id, role, pid, state, requests, errors, restarts FROM topgun.executors ORDER BY id');
}

// until(what, fact): barrier.until with the description first.
const until = (what, fact, ms) => barrier.until(fact, what, ms);

test('topgun.executors lists one session executor and the readers, all running', async () => {
  const ex = await until('executors running', () => {
    const e = executors();
    return e.length >= 2 && e.every((x) => x.pid) ? e : null;
  });
  assert.equal(ex[0].role, 'session');
  assert.ok(ex.slice(1).every((x) => x.role === 'reader'));
  const pids = new Set(ex.map((x) => x.pid));
  assert.equal(pids.size, ex.length, 'one process each');
});

test('replies come in message order; a read right after a write sees it', async () => {
  const map = hlc.uniqueName('order');
  const c = await Client.authed({ name: 'order' });
  try {
    const op = hlc.putOp(map, 'k1', { v: 1 }, hlc.now('order'));
    // no waiting between the three: the read must see the write, and the
    // answers must come as OP_ACK, QUERY_RESP, PONG
    c.send({ type: 'OP_BATCH', payload: { ops: [op] } });
    c.send({ type: 'QUERY_SUB', payload: { queryId: 'q1', mapName: map, query: {} } });
    c.send({ type: 'PING', timestamp: Date.now() });
    await c.waitFor('PONG');
    const types = c.log.map((m) => m.type).filter((t) => ['OP_ACK', 'QUERY_RESP', 'PONG'].includes(t));
    assert.deepEqual(types.slice(-3), ['OP_ACK', 'QUERY_RESP', 'PONG']);
    const resp = c.log.find((m) => m.type === 'QUERY_RESP');
    assert.deepEqual(resp.payload.results, [{ key: 'k1', value: { v: 1 } }]);
  } finally { await c.close(); }
});

test('a reader executor that dies is replaced; connections stay open', { timeout: 60000 }, async () => {
  const map = hlc.uniqueName('reader-death');
  const c = await Client.authed({ name: 'survivor' });
  const other = await Client.authed({ name: 'bystander' });
  try {
    await c.sendOps([hlc.putOp(map, 'a', { x: 1 }, hlc.now('rd'))]);
    const before = executors();
    const victim = before[1];
    assert.equal(psql(`SELECT pg_terminate_backend(${victim.pid})`), 't');
    await until('the reader restarted', () => {
      const e = executors()[1];
      return e.pid && e.pid !== victim.pid && Number(e.restarts) > Number(victim.restarts);
    });
    // both connections still work: a read (served by a reader) and a PING
    c.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 });
    const root = await c.waitFor('SYNC_RESP_ROOT', 10000);
    assert.equal(root.payload.rootHash, Number(psql(`SELECT topgun.merkle_root(${lit(map)})`)));
    other.send({ type: 'PING', timestamp: Date.now() });
    await other.waitFor('PONG');
    assert.equal(c.closed, null);
    assert.equal(other.closed, null);
  } finally { await c.close(); await other.close(); }
});

test('a session executor that dies: 1012 to every client, a fresh one serves, acked data kept', { timeout: 90000 }, async () => {
  const map = hlc.uniqueName('session-death');
  const c = await Client.authed({ name: 'before' });
  const op = hlc.putOp(map, 'kept', { ok: true }, hlc.now('sd'));
  await c.sendOps([op]);
  const victim = executors()[0];
  assert.equal(psql(`SELECT pg_terminate_backend(${victim.pid})`), 't');
  const closed = await c.waitClose(20000);
  assert.equal(closed.code, 1012);
  await until('a new session executor', () => {
    const e = executors()[0];
    return e.pid && e.pid !== victim.pid;
  });
  const d = await Client.authedRetry({ name: 'after', deadlineMs: 30000 });
  try {
    d.send({ type: 'QUERY_SUB', payload: { queryId: 'q', mapName: map, query: {} } });
    const resp = await d.waitFor('QUERY_RESP', 10000);
    assert.deepEqual(resp.payload.results, [{ key: 'kept', value: { ok: true } }]);
    assert.equal(psql(`SELECT value->>'ok' FROM topgun.lww WHERE map = ${lit(map)} AND key = 'kept'`), 'true');
  } finally { await d.close(); }
});
