'use strict';
// Durability across failures: acked writes survive (1) the worker being
// terminated (pg_terminate_backend), (2) the worker being SIGKILLed (the
// postmaster restarts it, with crash recovery), (3) a full server restart
// (pg_ctl restart).  After each, a client reconnects and sees every acked write
// through SQL and through a Merkle pull, and can write again.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, rows, lit, waitReady } = require('./lib/psql');
const server = require('./lib/server');
const { pullLww } = require('./lib/sync');

const map = hlc.uniqueName('durable');
const acked = new Map();

async function writeSome(label, n = 10) {
  const c = await Client.authedRetry({ name: `writer-${label}`, deadlineMs: 60000 });
  try {
    const ops = [];
    for (let i = 0; i < n; i++) {
      const v = { label, i };
      ops.push(hlc.putOp(map, `${label}-${i}`, v, hlc.now('durable-client')));
    }
    const ack = await c.sendOps(ops);
    for (const r of ack.payload.results) assert.equal(r.success, true);
    for (const op of ops) acked.set(op.key, op.record.value);
  } finally { await c.close(); }
}

async function verifyAll(label) {
  await waitReady();
  const sql = new Map(rows(`SELECT key, value FROM topgun.lww_entries WHERE map = ${lit(map)}`).map((r) => [r.key, r.value]));
  for (const [k, v] of acked) assert.deepEqual(sql.get(k), v, `${label}: acked ${k} present in SQL`);
  const c = await Client.authedRetry({ name: `verify-${label}`, deadlineMs: 60000 });
  try {
    const pulled = await pullLww(c, map);
    assert.equal(pulled.root, Number(psql(`SELECT topgun.merkle_root(${lit(map)})`)));
    for (const [k, v] of acked) assert.deepEqual(pulled.records.get(k) && pulled.records.get(k).value, v, `${label}: pulled ${k}`);
  } finally { await c.close(); }
}

test('acked writes survive pg_terminate_backend of the worker; it comes back', { timeout: 120000 }, async () => {
  await writeSome('before-term');
  const pid = server.workerPid();
  assert.ok(pid, 'worker visible in pg_stat_activity');
  assert.equal(psql(`SELECT pg_terminate_backend(${pid})`), 't');
  const newPid = await server.waitWorker(30000, pid);
  assert.notEqual(newPid, pid);
  await verifyAll('after-terminate');
  await writeSome('after-term');
  await verifyAll('after-terminate-write');
});

test('acked writes survive SIGKILL of the worker (postmaster restarts it)', { timeout: 180000 }, async () => {
  // Keep a connection open with writes in flight when the kill happens.
  const c = await Client.authed({ name: 'in-flight' });
  await writeSome('before-kill');
  const pid = server.workerPid();
  process.kill(pid, 'SIGKILL');
  const closed = await c.waitClose(15000);
  assert.ok(closed, 'open sockets are dropped when the worker dies');
  const newPid = await server.waitWorker(60000, pid);
  assert.notEqual(newPid, pid);
  await verifyAll('after-sigkill');
  await writeSome('after-kill');
  await verifyAll('after-sigkill-write');
});

test('acked writes survive a server restart (pg_ctl restart)', { timeout: 180000 }, async () => {
  await writeSome('before-restart');
  const c = await Client.authed({ name: 'connected-at-restart' });
  await server.restartServer();
  // A clean shutdown closes sockets (SHUTDOWN_PENDING + 1001 expected, any close accepted).
  const closed = await c.waitClose(15000);
  assert.ok(closed);
  await server.waitWorker(60000);
  await verifyAll('after-restart');
  await writeSome('after-restart');
  await verifyAll('after-restart-write');
});
