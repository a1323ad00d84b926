'use strict';
// Journal subscriptions over the wire (JOURNAL_SUBSCRIBE / JOURNAL_EVENT /
// JOURNAL_UNSUBSCRIBE, PROTOCOL-ADDENDUM §A6) and the tombstone GC schedule
// with GC_PRUNE to connected clients (§A7).
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const jwt = require('./lib/jwt');
const env = require('./lib/env');
const { psql, lit } = require('./lib/psql');
const { until, setGuc } = require('./lib/barrier');

const admin = (name) => Client.authed({ name, token: jwt.hs256(env.jwtSecret, jwt.defaultClaims({ roles: ['ADMIN'] })) });
const events = (c, map) => c.queue.filter((m) => m.type === 'JOURNAL_EVENT' && m.event.mapName === map).map((m) => m.event);

test('JOURNAL_SUBSCRIBE streams committed changes in sequence order; UNSUBSCRIBE stops it', async () => {
  const map = hlc.uniqueName('jsub');
  psql(`SELECT topgun.journal_enable(${lit(map)})`);
  const a = await admin('journal-a');
  const witness = await admin('journal-witness');
  const w = await Client.authed({ name: 'journal-writer' });
  try {
    a.send({ type: 'JOURNAL_SUBSCRIBE', requestId: 'ja', mapName: map });
    witness.send({ type: 'JOURNAL_SUBSCRIBE', requestId: 'jw', mapName: map });
    await a.barrier();
    await witness.barrier();
    await w.sendOps([hlc.putOp(map, 'k1', 1, hlc.now('w')), hlc.putOp(map, 'k2', 2, hlc.now('w'))]);
    await w.sendOps([hlc.removeOp(map, 'k1', hlc.now('w'))]);
    await until(() => events(a, map).length >= 3, 'three journal events');
    const got = events(a, map);
    // one commit's events come in the order it stored them; commits in commit order
    assert.deepEqual(got.slice(0, 2).map((e) => `${e.key}:${e.type}`).sort(), ['k1:PUT', 'k2:PUT']);
    assert.equal(`${got[2].key}:${got[2].type}`, 'k1:DELETE');
    const seqs = got.map((e) => BigInt(e.sequence));
    assert.ok(seqs[0] < seqs[1] && seqs[1] < seqs[2], 'increasing sequences');

    a.send({ type: 'JOURNAL_UNSUBSCRIBE', subscriptionId: 'ja' });
    await a.barrier();
    await w.sendOps([hlc.putOp(map, 'k3', 3, hlc.now('w'))]);
    await until(() => events(witness, map).some((e) => e.key === 'k3'), 'the witness sees k3');
    await a.barrier();
    assert.equal(events(a, map).some((e) => e.key === 'k3'), false, 'nothing after JOURNAL_UNSUBSCRIBE');
  } finally { await a.close(); await witness.close(); await w.close(); }
});

test('the GC schedule collects old tombstones and sends GC_PRUNE to connected clients', { timeout: 60000 }, async () => {
  const map = hlc.uniqueName('gc');
  const c = await Client.authed({ name: 'gc-client' });
  try {
    const old = { millis: Date.now() - 3600 * 1000, counter: 0, nodeId: 'gc-old' };
    await c.sendOps([hlc.putOp(map, 'dead', 'x', old)]);
    await c.sendOps([hlc.removeOp(map, 'dead', { ...old, counter: 1 }), hlc.putOp(map, 'alive', 'y', hlc.now('gc'))]);
    assert.equal(psql(`SELECT count(*) FROM topgun.lww WHERE map = ${lit(map)} AND value IS NULL`), '1');
    await setGuc('topgun.gc_horizon', '60');
    await setGuc('topgun.gc_interval', '1');
    const prune = await c.waitFor('GC_PRUNE', 30000);
    assert.equal(typeof prune.payload.olderThan.millis, 'number');
    assert.ok(prune.payload.olderThan.millis > old.millis, 'the horizon is past the tombstone');
    assert.equal(psql(`SELECT count(*) FROM topgun.lww WHERE map = ${lit(map)} AND value IS NULL`), '0');
    assert.equal(psql(`SELECT value FROM topgun.lww WHERE map = ${lit(map)} AND key = 'alive'`), '"y"');
    assert.equal(psql(`SELECT topgun.merkle_verify(${lit(map)})`), 't');
  } finally {
    await setGuc('topgun.gc_interval', null);
    await setGuc('topgun.gc_horizon', null);
    await c.close();
  }
});
