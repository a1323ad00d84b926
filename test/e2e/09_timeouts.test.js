'use strict';
// Idle-connection timeouts (PGC_SIGHUP settings, shortened for the test with
// ALTER SYSTEM + pg_reload_conf and restored afterwards):
//   - an unauthenticated socket is closed 4001 after topgun.auth_timeout_ms;
//   - an authenticated client that stops sending PING is closed 4002 after
//     topgun.heartbeat_timeout_ms; one that keeps pinging stays connected.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const { psql } = require('./lib/psql');
const { reloadConf } = require('./lib/barrier');

const AUTH_MS = 1500;
const HEARTBEAT_MS = 3000;

test.before(async () => {
  psql(`ALTER SYSTEM SET topgun.auth_timeout_ms = ${AUTH_MS}`);
  psql(`ALTER SYSTEM SET topgun.heartbeat_timeout_ms = ${HEARTBEAT_MS}`);
  await reloadConf(); // the worker re-reads its configuration on SIGHUP
});

test.after(async () => {
  psql('ALTER SYSTEM RESET topgun.auth_timeout_ms');
  psql('ALTER SYSTEM RESET topgun.heartbeat_timeout_ms');
  await reloadConf();
});

test('an unauthenticated socket is closed 4001 after topgun.auth_timeout_ms', async () => {
  const c = await Client.connect();
  const t0 = Date.now();
  try {
    await c.waitFor('AUTH_REQUIRED');
    const closed = await c.waitClose(AUTH_MS + 5000);
    const elapsed = Date.now() - t0;
    assert.equal(closed.code, 4001);
    assert.ok(elapsed >= AUTH_MS - 250, `closed too early (${elapsed} ms)`);
  } finally { c.terminate(); }
});

test('an authenticated client without PING is closed 4002; a pinging one stays', async () => {
  const quiet = await Client.authed({ name: 'quiet', ping: false });
  const lively = await Client.authed({ name: 'lively', ping: false });
  lively.startPing(500);
  const t0 = Date.now();
  try {
    const closed = await quiet.waitClose(HEARTBEAT_MS + 6000);
    const elapsed = Date.now() - t0;
    assert.equal(closed.code, 4002);
    assert.ok(elapsed >= HEARTBEAT_MS - 250, `closed too early (${elapsed} ms)`);
    // other traffic does not count as liveness, PING does: lively is still there
    assert.equal(lively.closed, null, 'a client that pings is not evicted');
    lively.send({ type: 'PING', timestamp: Date.now() });
    lively.drain('PONG');
    await lively.waitFor('PONG', 3000);
  } finally {
    quiet.terminate();
    await lively.close();
  }
});
