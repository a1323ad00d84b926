'use strict';
// Authentication (PROTOCOL.md §2.1-2.4): AUTH_REQUIRED on connect, AUTH_ACK,
// a second AUTH ignored, every failure class → AUTH_FAIL + close 4001,
// non-AUTH before auth → close 4001, PING before auth → PONG without a
// numeric top-level timestamp.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const jwt = require('./lib/jwt');
const env = require('./lib/env');

const now = () => Math.floor(Date.now() / 1000);

test('AUTH_REQUIRED is the first message on a new connection', async () => {
  const c = await Client.connect();
  try {
    const first = await c.waitFor(() => true, 3000);
    assert.equal(first.type, 'AUTH_REQUIRED');
  } finally { await c.close(); }
});

test('valid HS256 token → AUTH_ACK; a second AUTH is ignored', async () => {
  const c = await Client.connect();
  try {
    await c.waitFor('AUTH_REQUIRED', 3000);
    const token = jwt.hs256(env.jwtSecret);
    c.send({ type: 'AUTH', token });
    await c.waitFor('AUTH_ACK', 3000);
    // The TopGun client sends AUTH twice on a new socket; the second one
    // must not produce a second AUTH_ACK (nor an AUTH_FAIL/close).
    c.send({ type: 'AUTH', token });
    await c.expectNone((m) => m.type === 'AUTH_ACK' || m.type === 'AUTH_FAIL');
    assert.equal(c.closed, null, 'socket must stay open after a repeated AUTH');
    // Still serving: PING → PONG.
    c.send({ type: 'PING', timestamp: Date.now() });
    await c.waitFor('PONG', 3000);
  } finally { await c.close(); }
});

test('token without exp but with roles/sub claims is accepted', async () => {
  const c = await Client.connect();
  try {
    await c.waitFor('AUTH_REQUIRED', 3000);
    c.send({ type: 'AUTH', token: jwt.sign({ key: env.jwtSecret, claims: { sub: 'no-exp', roles: ['ADMIN'] } }) });
    await c.waitFor('AUTH_ACK', 3000);
  } finally { await c.close(); }
});

async function expectAuthFail(token, label) {
  const c = await Client.connect(undefined, { name: label });
  try {
    await c.waitFor('AUTH_REQUIRED', 3000);
    c.send({ type: 'AUTH', token });
    const fail = await c.waitFor((m) => m.type === 'AUTH_FAIL' || m.type === 'AUTH_ACK', 3000);
    assert.equal(fail.type, 'AUTH_FAIL', `${label}: must not authenticate`);
    assert.equal(typeof fail.error, 'string', `${label}: AUTH_FAIL.error must be a string`);
    assert.ok(fail.error.length > 0, `${label}: AUTH_FAIL.error must not be empty`);
    const closed = await c.waitClose(3000);
    assert.equal(closed.code, 4001, `${label}: close code`);
  } finally { c.terminate(); }
}

test('bad signature → AUTH_FAIL + close 4001', async () => {
  await expectAuthFail(jwt.hs256(`${env.jwtSecret}-wrong`), 'bad signature');
});

test('tampered payload → AUTH_FAIL + close 4001', async () => {
  const good = jwt.hs256(env.jwtSecret).split('.');
  good[1] = jwt.b64json({ sub: 'attacker', roles: ['ADMIN'], exp: now() + 3600 });
  await expectAuthFail(good.join('.'), 'tampered payload');
});

test('expired token → AUTH_FAIL + close 4001', async () => {
  await expectAuthFail(jwt.hs256(env.jwtSecret, { sub: 'u', iat: now() - 7200, exp: now() - 3600 }), 'expired');
});

test('token not valid yet (nbf in the future) → AUTH_FAIL + close 4001', async () => {
  await expectAuthFail(jwt.hs256(env.jwtSecret, { sub: 'u', nbf: now() + 3600, exp: now() + 7200 }), 'nbf');
});

test('alg none → AUTH_FAIL + close 4001', async () => {
  await expectAuthFail(jwt.sign({ alg: 'none', claims: jwt.defaultClaims() }), 'alg none');
  // "none" with a (bogus) signature part as well
  const t = jwt.sign({ alg: 'none', claims: jwt.defaultClaims() }) + jwt.b64url(Buffer.from('sig'));
  await expectAuthFail(t, 'alg none with signature');
});

test('malformed tokens → AUTH_FAIL + close 4001', async () => {
  await expectAuthFail('not-a-jwt', 'no dots');
  await expectAuthFail('a.b.c', 'garbage segments');
  await expectAuthFail(`${jwt.b64url('{"alg":"HS256"')}.${jwt.b64json({ sub: 'x' })}.AAAA`, 'header not JSON');
  await expectAuthFail('eyJhbGciOiJIUzI1NiJ9.!!!!.sig', 'invalid base64url');
  await expectAuthFail('', 'empty token');
  await expectAuthFail(`${jwt.hs256(env.jwtSecret)}.extra`, 'four segments');
});

test('wrong algorithm (RS256 / ES256 / HS512 token; server pinned to HS256) → AUTH_FAIL + close 4001', async () => {
  const rsa = jwt.rsaKeyPair();
  await expectAuthFail(jwt.sign({ alg: 'RS256', key: rsa.privateKey }), 'RS256 token');
  const ec = jwt.ecKeyPair();
  await expectAuthFail(jwt.sign({ alg: 'ES256', key: ec.privateKey }), 'ES256 token');
  await expectAuthFail(jwt.sign({ alg: 'HS512', key: env.jwtSecret }), 'HS512 token');
  // HS256 signature but the header claims RS256 (algorithm confusion)
  const h = jwt.sign({ alg: 'HS256', key: env.jwtSecret, header: { alg: 'RS256' } });
  await expectAuthFail(h, 'alg confusion');
});

test('AUTH with a non-string token is rejected (ERROR 400 or AUTH_FAIL), never accepted', async () => {
  const c = await Client.connect();
  try {
    await c.waitFor('AUTH_REQUIRED', 3000);
    c.send({ type: 'AUTH', token: 12345 });
    const m = await c.waitFor((x) => ['ERROR', 'AUTH_FAIL', 'AUTH_ACK'].includes(x.type), 3000);
    assert.notEqual(m.type, 'AUTH_ACK');
  } finally { c.terminate(); }
});

test('a non-AUTH message before auth → close 4001, nothing served', async () => {
  const c = await Client.connect();
  try {
    await c.waitFor('AUTH_REQUIRED', 3000);
    c.send({ type: 'SYNC_INIT', mapName: 'pre-auth-map', lastSyncTimestamp: 0 });
    const closed = await c.waitClose(3000);
    assert.equal(closed.code, 4001);
    assert.ok(!c.log.some((m) => m.type === 'SYNC_RESP_ROOT'), 'no data may be served before auth');
  } finally { c.terminate(); }
});

test('OP_BATCH before auth → close 4001 and nothing written', async () => {
  const { psql } = require('./lib/psql');
  const hlc = require('./lib/hlc');
  const map = hlc.uniqueName('preauth');
  const c = await Client.connect();
  try {
    await c.waitFor('AUTH_REQUIRED', 3000);
    c.send(hlc.opBatch([hlc.putOp(map, 'k', { v: 1 }, hlc.now('n1'))]));
    const closed = await c.waitClose(3000);
    assert.equal(closed.code, 4001);
    assert.ok(!c.log.some((m) => m.type === 'OP_ACK'));
    assert.equal(psql(`SELECT count(*) FROM topgun.lww WHERE map = '${map}'`), '0');
  } finally { c.terminate(); }
});

test('PING before auth → PONG with serverTime and no numeric timestamp', async () => {
  const c = await Client.connect();
  try {
    await c.waitFor('AUTH_REQUIRED', 3000);
    const sent = Date.now();
    c.send({ type: 'PING', timestamp: sent });
    const pong = await c.waitFor('PONG', 3000);
    assert.equal(typeof pong.serverTime, 'number');
    assert.ok(Math.abs(pong.serverTime - Date.now()) < 60000, 'serverTime is the server wall clock in ms');
    assert.notEqual(typeof pong.timestamp, 'number', 'a numeric top-level timestamp corrupts the client HLC (PROTOCOL §2.4)');
    if (pong.timestamp !== undefined) {
      assert.equal(typeof pong.timestamp, 'object');
      assert.equal(typeof pong.timestamp.millis, 'number');
    }
    assert.equal(c.closed, null, 'PING before auth must not close the socket');
    // and auth still works afterwards
    c.send({ type: 'AUTH', token: jwt.hs256(env.jwtSecret) });
    await c.waitFor('AUTH_ACK', 3000);
  } finally { await c.close(); }
});

test('captured client PING frame is answered', async () => {
  const vectors = require('./lib/vectors');
  const c = await Client.authed({ ping: false });
  try {
    c.sendRaw(vectors.message('c2s_PING').bytes);
    const pong = await c.waitFor('PONG', 3000);
    assert.equal(typeof pong.serverTime, 'number');
    assert.notEqual(typeof pong.timestamp, 'number');
  } finally { await c.close(); }
});
