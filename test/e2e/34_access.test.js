'use strict';
// Access control (issue 5): with policies in topgun.policies, a client
// without permission can neither read nor write a protected map by any
// message type (writes, Merkle sync, OR sync, queries, events from other
// clients and from SQL), nor use protected topics or counters; {userId}
// patterns; ADMIN bypasses; policy changes apply without a restart.
// The table is emptied again at the end (empty = allow all, the default
// the other e2e files run with).
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const env = require('./lib/env');
const hlc = require('./lib/hlc');
const jwt = require('./lib/jwt');
const { psql, rows, lit } = require('./lib/psql');

const { feedBarrier } = require('./lib/barrier');
const tokenFor = (sub, roles) => jwt.hs256(env.jwtSecret, jwt.defaultClaims({ sub, userId: sub, roles }));
const err403 = (m) => m.type === 'ERROR' && m.payload.code === 403;
const anyData = (map) => (m) => (m.type === 'SERVER_BATCH_EVENT' && m.payload.events.some((e) => e.mapName === map)) ||
  (m.type === 'SERVER_EVENT' && m.payload.mapName === map) ||
  (m.type === 'QUERY_RESP') || (m.type === 'QUERY_UPDATE') ||
  (m.type && m.type.startsWith('SYNC_RESP')) || (m.type && m.type.startsWith('ORMAP_SYNC_RESP')) ||
  m.type === 'ORMAP_DIFF_RESPONSE' || m.type === 'COUNTER_RESPONSE' || m.type === 'COUNTER_UPDATE' || m.type === 'TOPIC_MESSAGE';

test('a client without permission can neither read nor write a protected map, topic or counter', async () => {
  const secret = hlc.uniqueName('secret');
  const pub = hlc.uniqueName('public');
  const admin = await Client.authed({ name: 'admin', token: tokenFor('boss', ['ADMIN']) });
  let user;
  try {
    psql(`INSERT INTO topgun.policies (role, pattern, actions) VALUES
          ('USER', 'public*', '{ALL}'),
          ('USER', 'home-{userId}/*', '{READ,PUT}'),
          ('USER', 'topic:open/*', '{READ,PUT}'),
          ('USER', 'counter:open-*', '{ALL}')`);
    await feedBarrier(admin);   // the worker reloads the policies from the change feed
    user = await Client.authed({ name: 'user', token: tokenFor('alice', ['USER']) });

    // admin may write anywhere (ADMIN bypasses the policies)
    await admin.sendOps([hlc.putOp(secret, 'k', { s: 1 }, hlc.now('a'))]);
    await admin.sendOps([hlc.orAddOp(`${secret}-or`, 'k', 'v', hlc.now('a'))]);

    // writes: denied op reported, allowed op applied
    const ok = hlc.putOp(pub, 'k', 1, hlc.now('u'));
    const denied = hlc.putOp(secret, 'k', 'hacked', hlc.now('u'));
    user.send({ type: 'OP_BATCH', payload: { ops: [ok, denied] } });
    const e = await user.waitFor('ERROR');
    assert.equal(e.payload.code, 403);
    assert.equal(e.payload.message, 'Partial batch failure: 1 ops denied');
    const ack = await user.waitFor('OP_ACK');
    const res = Object.fromEntries(ack.payload.results.map((r) => [r.opId, r.success]));
    assert.deepEqual(res, { [ok.id]: true, [denied.id]: false });
    assert.deepEqual(JSON.parse(psql(`SELECT topgun.lww_get(${lit(secret)}, 'k')`)), { s: 1 });
    // CLIENT_OP and OR ops too
    user.send({ type: 'CLIENT_OP', payload: hlc.putOp(secret, 'k2', 'x', hlc.now('u')) });
    assert.equal((await user.waitFor('OP_REJECTED')).payload.reason, 'Access denied');
    user.send({ type: 'ORMAP_PUSH_DIFF', payload: { mapName: `${secret}-or`, entries: [] } });
    assert.ok(err403(await user.waitFor('ERROR')));

    // every read path
    const reads = [
      { type: 'SYNC_INIT', mapName: secret, lastSyncTimestamp: 0 },
      { type: 'MERKLE_REQ_BUCKET', payload: { mapName: secret, path: '' } },
      { type: 'ORMAP_SYNC_INIT', mapName: `${secret}-or`, rootHash: 0, bucketHashes: {}, lastSyncTimestamp: 0 },
      { type: 'ORMAP_MERKLE_REQ_BUCKET', payload: { mapName: `${secret}-or`, path: '' } },
      { type: 'ORMAP_DIFF_REQUEST', payload: { mapName: `${secret}-or`, keys: ['k'] } },
      { type: 'QUERY_SUB', payload: { queryId: 'q', mapName: secret, query: {} } },
      { type: 'TOPIC_SUB', payload: { topic: 'closed/x' } },
      { type: 'TOPIC_PUB', payload: { topic: 'closed/x', data: 1 } },
      { type: 'COUNTER_REQUEST', payload: { name: 'closed-c' } },
      { type: 'COUNTER_SYNC', payload: { name: 'closed-c', state: { p: { a: 1 }, n: {} } } },
    ];
    for (const r of reads) {
      user.send(r);
      const m = await user.waitFor((x) => x.type === 'ERROR' || anyData(secret)(x));
      assert.ok(err403(m), `${r.type}: ${JSON.stringify(m).slice(0, 200)}`);
    }
    // nothing leaks through events: admin and SQL writes to the secret map
    await admin.sendOps([hlc.putOp(secret, 'k', { s: 2 }, hlc.now('a'))]);
    psql(`SELECT topgun.lww_put(${lit(secret)}, 'k3', '1', topgun.hlc_now())`);
    await user.expectNone(anyData(secret), () => feedBarrier(user, { prefix: 'open' }));
    assert.ok(rows('SELECT access_denied FROM topgun.connections WHERE access_denied > 0').length >= 1);

    // allowed: public map, own home via {userId}, open topic and counter
    user.send({ type: 'SYNC_INIT', mapName: pub, lastSyncTimestamp: 0 });
    await user.waitFor('SYNC_RESP_ROOT');
    await user.sendOps([hlc.putOp('home-alice/notes', 'k', 1, hlc.now('u'))]);
    user.send({ type: 'OP_BATCH', payload: { ops: [hlc.putOp('home-bob/notes', 'k', 1, hlc.now('u'))] } });
    assert.ok(err403(await user.waitFor('ERROR')));
    user.send({ type: 'COUNTER_REQUEST', payload: { name: 'open-c' } });
    await user.waitFor('COUNTER_RESPONSE');
    // REMOVE is not granted on home-{userId}
    user.send({ type: 'OP_BATCH', payload: { ops: [hlc.removeOp('home-alice/notes', 'k', hlc.now('u'))] } });
    assert.equal((await user.waitFor('ERROR')).payload.message, 'Partial batch failure: 1 ops denied');
    // $sys/ maps are ADMIN-only even with a * policy
    user.send({ type: 'SYNC_INIT', mapName: '$sys/config', lastSyncTimestamp: 0 });
    assert.ok(err403(await user.waitFor('ERROR')));

    // a policy change applies at once: grant READ on the secret map
    psql(`INSERT INTO topgun.policies (role, pattern, actions) VALUES ('USER', ${lit(secret)}, '{READ}')`);
    await feedBarrier(admin);
    user.drain();
    user.send({ type: 'QUERY_SUB', payload: { queryId: 'q2', mapName: secret, query: {} } });
    const r2 = await user.waitFor('QUERY_RESP');
    assert.deepEqual(r2.payload.results.map((x) => x.key).sort(), ['k', 'k3']);
  } finally {
    psql('DELETE FROM topgun.policies');
    await feedBarrier(admin);
    if (user) await user.close();
    await admin.close();
  }
});
