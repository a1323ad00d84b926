'use strict';
// Hardening (issue 17): whole identities, every bad op answered, tokens that
// expire on open connections, and the fail-closed production defaults
// (empty policies deny, strict clock, exp required).  Every GUC and the
// policy table are restored at the end: the e2e files share one server.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const env = require('./lib/env');
const hlc = require('./lib/hlc');
const jwt = require('./lib/jwt');
const { psql, value, lit } = require('./lib/psql');
const { setGuc, feedBarrier, until } = require('./lib/barrier');

const token = (claims) => jwt.hs256(env.jwtSecret, jwt.defaultClaims(claims));
const lwwGet = (map, key) => JSON.parse(psql(`SELECT coalesce(topgun.lww_get(${lit(map)}, ${lit(key)}), 'null'::jsonb)`));

async function authFails(tok) {
  const c = await Client.connect(env.wsUrl, { name: 'refused' });
  await c.waitFor('AUTH_REQUIRED');
  c.send({ type: 'AUTH', token: tok });
  const f = await c.waitFor('AUTH_FAIL');
  const closed = await c.waitClose();
  return { error: f.payload ? f.payload.error : f.error, code: closed.code };
}

test('identities are whole: two users sharing a 200-byte prefix are two users; a longer id is refused at AUTH', async () => {
  // (the map name holding the identity must stay within 256 bytes)
  const prefix = 'u'.repeat(200);
  const alice = `${prefix}-alice`;   // 206 bytes
  const bob = `${prefix}-bobby`;     // 206 bytes, the same first 201
  const admin = await Client.authed({ name: 'admin', token: token({ sub: 'boss', userId: 'boss', roles: ['ADMIN'] }) });
  let a;
  try {
    psql(`INSERT INTO topgun.policies (role, pattern, actions) VALUES ('USER', 'h-{userId}', '{READ,PUT}')`);
    await feedBarrier(admin);
    a = await Client.authed({ name: 'alice', token: token({ sub: alice, userId: alice }) });
    const own = hlc.putOp(`h-${alice}`, 'k', 'mine', hlc.now('a'));
    const other = hlc.putOp(`h-${bob}`, 'k', 'stolen', hlc.now('a'));
    a.send({ type: 'OP_BATCH', payload: { ops: [own, other] } });
    const ack = await a.waitFor('OP_ACK');
    const res = Object.fromEntries(ack.payload.results.map((r) => [r.opId, r]));
    assert.equal(res[own.id].success, true);
    assert.equal(res[other.id].success, false);
    assert.equal(res[other.id].error, 'Access denied');
    assert.equal(lwwGet(`h-${alice}`, 'k'), 'mine');
    assert.equal(lwwGet(`h-${bob}`, 'k'), null);
    // the connections view shows the whole identity
    await until(() => Number(value(`SELECT count(*) FROM topgun.connections WHERE user_id = ${lit(alice)}`)) === 1,
      'topgun.connections shows the whole identity');

    // 257 bytes: refused with a clear AUTH_FAIL, never truncated
    const long = 'u'.repeat(257);
    assert.deepEqual(await authFails(token({ sub: long, userId: undefined })), { error: 'sub longer than 256 bytes', code: 4001 });
    assert.deepEqual(await authFails(token({ sub: 'x', userId: long })), { error: 'userId longer than 256 bytes', code: 4001 });
    // the other connections carry on
    await a.barrier();
    await admin.barrier();
  } finally {
    psql('DELETE FROM topgun.policies');
    await feedBarrier(admin);
    if (a) await a.close();
    await admin.close();
  }
});

test('an invalid op without a usable id is answered with ERROR 400 naming the field; the valid ops commit', async () => {
  const map = hlc.uniqueName('badid');
  const w = await Client.authed({ name: 'writer' });
  const other = await Client.authed({ name: 'other' });
  try {
    // the op: nothing about it is usable, not even the id
    const bad = { id: 1, mapName: 42, key: {}, record: { value: 1, timestamp: { millis: 'x', counter: 'y', nodeId: 7 } } };
    w.send({ type: 'OP_BATCH', payload: { ops: [bad] } });
    const e = await w.waitFor('ERROR');
    assert.equal(e.payload.code, 400);
    assert.match(e.payload.message, /^Invalid op ops\[0\] not applied: id: expected a string/);
    await w.expectNone((m) => m.type === 'OP_ACK');

    // with valid ops around it: they are applied and acked, the bad one answered
    const good1 = hlc.putOp(map, 'a', 1, hlc.now('w'));
    const good2 = hlc.putOp(map, 'b', 2, hlc.now('w'));
    const noId = { ...hlc.putOp(map, 'c', 3, hlc.now('w')), id: undefined, mapName: 7 };
    delete noId.id;
    w.send({ type: 'OP_BATCH', payload: { ops: [good1, bad, noId, good2] } });
    const e2 = await w.waitFor('ERROR');
    assert.equal(e2.payload.code, 400);
    assert.match(e2.payload.message, /^2 invalid ops without a usable id not applied; ops\[1\]: id: expected a string/);
    const ack = await w.waitFor('OP_ACK');
    assert.deepEqual(ack.payload.results.map((r) => [r.opId, r.success]), [[good1.id, true], [good2.id, true]]);
    assert.equal(lwwGet(map, 'a'), 1);
    assert.equal(lwwGet(map, 'b'), 2);
    assert.equal(lwwGet(map, 'c'), null);
    // a bad op with a usable id is still rejected alone, in the ack
    const named = { ...hlc.putOp(map, 'd', 4, hlc.now('w')), mapName: 5 };
    const ack2 = await w.sendOps([named]);
    assert.equal(ack2.payload.results[0].success, false);
    assert.match(ack2.payload.results[0].error, /mapName/);
    await w.expectNone((m) => m.type === 'ERROR' && m.payload.code === 400);
    // the other client was never affected
    await other.barrier();
    assert.equal(other.closed, null);
  } finally {
    await w.close();
    await other.close();
  }
});

test('a token expires on an open connection: closed with 4001 at exp + leeway, and a fresh token reconnects', async () => {
  const map = hlc.uniqueName('expiry');
  await setGuc('topgun.jwt_leeway_s', 0);
  try {
    // far enough ahead that AUTH (ASan build, loaded machine) surely happens before it
    const exp = Math.floor(Date.now() / 1000) + 4;
    const c = await Client.authed({ name: 'short-lived', token: token({ exp }) });
    await c.sendOps([hlc.putOp(map, 'k', 'before', hlc.now('c'))]);
    const closed = await c.waitClose(15000);
    assert.equal(closed.code, 4001);
    assert.equal(closed.reason, 'Token expired');
    assert.ok(Date.now() >= exp * 1000 - 50, 'not closed before the token expired');
    // the client reconnects with a fresh token; its data is there
    const again = await Client.authed({ name: 'fresh', token: token({}) });
    await again.sendOps([hlc.putOp(map, 'k', 'after', hlc.now('c'))]);
    assert.equal(lwwGet(map, 'k'), 'after');
    await again.close();
    // the leeway extends the connection's life: with 3600 s it is not closed at exp
    await setGuc('topgun.jwt_leeway_s', 3600);
    const lenient = await Client.authed({ name: 'lenient', token: token({ exp: Math.floor(Date.now() / 1000) - 10 }) });
    await lenient.barrier();
    assert.equal(lenient.closed, null);
    await lenient.close();
  } finally {
    await setGuc('topgun.jwt_leeway_s', null);
  }
});

test('production: an empty policy table denies every non-ADMIN action; tokens need exp; the strict clock is on', async () => {
  const map = hlc.uniqueName('prod');
  const admin = await Client.authed({ name: 'admin', token: token({ sub: 'boss', userId: 'boss', roles: ['ADMIN'] }) });
  const user = await Client.authed({ name: 'user' });
  try {
    assert.equal(Number(value('SELECT count(*) FROM topgun.policies')), 0);
    await setGuc('topgun.production', 'on');
    // writes: OP_ACK success:false "Access denied", nothing stored
    const op = hlc.putOp(map, 'k', 'user', hlc.now('u'));
    user.send({ type: 'OP_BATCH', payload: { ops: [op] } });
    assert.equal((await user.waitFor('ERROR')).payload.code, 403);
    const ack = await user.waitFor('OP_ACK');
    assert.deepEqual(ack.payload.results.map((r) => [r.success, r.error]), [[false, 'Access denied']]);
    assert.equal(lwwGet(map, 'k'), null);
    // reads and subscriptions: ERROR 403
    user.send({ type: 'QUERY_SUB', payload: { queryId: 'q1', mapName: map, query: {} } });
    const e = await user.waitFor((m) => m.type === 'ERROR' || m.type === 'QUERY_RESP');
    assert.equal(e.type, 'ERROR');
    assert.equal(e.payload.code, 403);
    user.send({ type: 'TOPIC_SUB', payload: { topic: 'anything' } });
    assert.equal((await user.waitFor('ERROR')).payload.code, 403);
    // ADMIN is allowed
    await admin.sendOps([hlc.putOp(map, 'k', 'admin', hlc.now('a'))]);
    assert.equal(lwwGet(map, 'k'), 'admin');
    // a policy opens up exactly what it names
    psql(`INSERT INTO topgun.policies (role, pattern, actions) VALUES ('USER', ${lit(map)}, '{READ,PUT}')`);
    await feedBarrier(admin);
    const ack2 = await user.sendOps([hlc.putOp(map, 'k', 'user', hlc.now('u'))]);
    assert.equal(ack2.payload.results[0].success, true);
    assert.equal(lwwGet(map, 'k'), 'user');
    psql('DELETE FROM topgun.policies');
    await feedBarrier(admin);

    // exp is required (jwt_require_exp = auto), unless switched off explicitly
    assert.deepEqual(await authFails(token({ exp: undefined })), { error: 'jwt expiry required', code: 4001 });
    await setGuc('topgun.jwt_require_exp', 'off');
    const noExp = await Client.authed({ name: 'no-exp', token: token({ exp: undefined }) });
    await noExp.close();
    await setGuc('topgun.jwt_require_exp', null);

    // development again: the same user may write, a token without exp is accepted
    await setGuc('topgun.production', null);
    const ack3 = await user.sendOps([hlc.putOp(map, 'k2', 'dev', hlc.now('u'))]);
    assert.equal(ack3.payload.results[0].success, true);
    const dev = await Client.authed({ name: 'dev-no-exp', token: token({ exp: undefined }) });
    await dev.close();
  } finally {
    psql('DELETE FROM topgun.policies');
    await setGuc('topgun.jwt_require_exp', null);
    await setGuc('topgun.production', null);
    await feedBarrier(admin);
    await admin.close();
    await user.close();
  }
});
