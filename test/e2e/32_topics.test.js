'use strict';
// Topics (issue 5): messages between clients and from SQL
// (topgun.publish), name validation, the per-connection topic limit, and the
// durable offline queue per subscriber identity (token sub + topic):
// delivered in order on reconnect, oldest dropped and counted when full,
// kept across a worker restart.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client } = require('./lib/client');
const env = require('./lib/env');
const jwt = require('./lib/jwt');
const { psql, rows, lit } = require('./lib/psql');
const { workerPid, waitWorker } = require('./lib/server');
const { until, setGuc, feedBarrier } = require('./lib/barrier');

const msgOn = (topic) => (m) => m.type === 'TOPIC_MESSAGE' && m.payload.topic === topic;
const uniq = (p) => `${p}-${crypto.randomBytes(4).toString('hex')}`;
const tokenFor = (sub) => jwt.hs256(env.jwtSecret, jwt.defaultClaims({ sub, userId: sub }));

// The server has seen the identity's sockets close: it is offline for topics.
const offline = (sub) => until(() => psql(`SELECT count(*) FROM topgun.connections WHERE user_id = ${lit(sub)}`) === '0',
  `no connection of ${sub} left`);
// The offline queue of (sub, topic) once `n` messages reached it (kept or dropped).
async function queueAfter(sub, topic, n) {
  const q = () => rows(`SELECT queued::int, dropped::int FROM topgun.topic_queues WHERE subscriber = ${lit(sub)} AND topic = ${lit(topic)}`);
  await until(() => q().length === 1 && q()[0].queued + q()[0].dropped === n, `${n} messages queued for ${sub} on ${topic}`);
  return q();
}

test('TOPIC_PUB reaches the other subscribers (not the publisher); SQL publish too', async () => {
  const topic = uniq('chat/room');
  const a = await Client.authed({ name: 'a' });
  const b = await Client.authed({ name: 'b' });
  try {
    a.send({ type: 'TOPIC_SUB', payload: { topic } });
    b.send({ type: 'TOPIC_SUB', payload: { topic } });
    await a.barrier();
    await b.barrier();
    const before = Date.now();
    a.send({ type: 'TOPIC_PUB', payload: { topic, data: { text: 'hi', n: [1, 2] } } });
    const m = await b.waitFor(msgOn(topic));
    assert.deepEqual(m.payload.data, { text: 'hi', n: [1, 2] });
    assert.equal(typeof m.payload.publisherId, 'string');
    assert.equal(typeof m.payload.timestamp, 'number');   // nested number, not an HLC
    assert.ok(m.payload.timestamp >= before - 5000);
    assert.equal(m.timestamp, undefined);                   // nothing top-level for the client HLC
    await a.expectNone(msgOn(topic));

    psql(`SELECT topgun.publish(${lit(topic)}, '{"from":"sql"}')`);
    const fromSql = [await a.waitFor(msgOn(topic), 5000), await b.waitFor(msgOn(topic), 5000)];
    for (const x of fromSql) {
      assert.deepEqual(x.payload.data, { from: 'sql' });
      assert.equal(x.payload.publisherId, 'sql');
    }
    // a rolled-back publish is never delivered
    psql(`BEGIN; SELECT topgun.publish(${lit(topic)}, '"no"'); ROLLBACK;`);
    await b.expectNone(msgOn(topic), () => feedBarrier(b));

    b.send({ type: 'TOPIC_UNSUB', payload: { topic } });
    await b.barrier();
    a.send({ type: 'TOPIC_PUB', payload: { topic, data: 1 } });
    await a.barrier();                 // the publish is handled (delivered to subscribers at once)
    await b.expectNone(msgOn(topic));
  } finally {
    await a.close();
    await b.close();
  }
});

test('invalid topic names and the per-connection topic limit (others keep working)', async () => {
  const c = await Client.authed({ name: 'c' });
  const other = await Client.authed({ name: 'other' });
  try {
    for (const topic of ['bad topic', 'semi;colon', 'ünïcode']) {
      c.send({ type: 'TOPIC_SUB', payload: { topic } });
      const e = await c.waitFor('ERROR');
      assert.equal(e.payload.code, 400);
      assert.equal(e.payload.message, 'Invalid topic name');
    }
    // longer than 256 bytes: refused by the message validator (also a 400)
    c.send({ type: 'TOPIC_SUB', payload: { topic: 'x'.repeat(257) } });
    assert.equal((await c.waitFor('ERROR')).payload.code, 400);
    const base = uniq('lim');
    for (let i = 0; i < 100; i++) c.send({ type: 'TOPIC_SUB', payload: { topic: `${base}/${i}` } });
    c.send({ type: 'TOPIC_SUB', payload: { topic: `${base}/one-too-many` } });
    const e = await c.waitFor('ERROR', 10000);
    assert.equal(e.payload.code, 400);
    assert.equal(e.payload.message, 'Subscription limit reached');
    const row = rows('SELECT topics, limit_hits FROM topgun.connections WHERE limit_hits > 0');
    assert.ok(row.some((r) => r.topics === 100 && r.limit_hits >= 1), JSON.stringify(row));
    // the connection still works, and so does everybody else
    other.send({ type: 'TOPIC_SUB', payload: { topic: `${base}/0` } });
    await other.barrier();
    c.send({ type: 'TOPIC_PUB', payload: { topic: `${base}/0`, data: 'still here' } });
    assert.equal((await other.waitFor(msgOn(`${base}/0`))).payload.data, 'still here');
  } finally {
    await c.close();
    await other.close();
  }
});

test('offline subscriber gets missed messages in order on reconnect; overflow drops the oldest and is counted', async () => {
  const topic = uniq('news');
  const sub = uniq('offline-user');
  const pub = await Client.authed({ name: 'publisher' });
  try {
    let s = await Client.authed({ name: 'subscriber', token: tokenFor(sub) });
    s.send({ type: 'TOPIC_SUB', payload: { topic } });
    await s.barrier();
    pub.send({ type: 'TOPIC_PUB', payload: { topic, data: 'live' } });
    assert.equal((await s.waitFor(msgOn(topic))).payload.data, 'live');
    await s.close();
    await offline(sub);

    for (let i = 1; i <= 3; i++) pub.send({ type: 'TOPIC_PUB', payload: { topic, data: { i } } });
    await pub.barrier();               // queued in order before the SQL publish below
    psql(`SELECT topgun.publish(${lit(topic)}, '{"i":4}')`);
    assert.deepEqual(await queueAfter(sub, topic, 4), [{ queued: 4, dropped: 0 }]);

    s = await Client.authed({ name: 'subscriber-again', token: tokenFor(sub) });
    s.send({ type: 'TOPIC_SUB', payload: { topic } });
    const got = [];
    for (let i = 0; i < 4; i++) got.push((await s.waitFor(msgOn(topic))).payload.data.i);
    assert.deepEqual(got, [1, 2, 3, 4]);
    await s.expectNone(msgOn(topic));
    await s.close();
    await offline(sub);

    // overflow: queue size 2, 5 messages → the last 2 kept, 3 dropped and counted
    await setGuc('topgun.topic_queue_size', 2);
    for (let i = 1; i <= 5; i++) pub.send({ type: 'TOPIC_PUB', payload: { topic, data: { i } } });
    assert.deepEqual(await queueAfter(sub, topic, 5), [{ queued: 2, dropped: 3 }]);
    assert.ok(Number(psql("SELECT value FROM topgun.worker_stats WHERE name = 'topic_dropped'")) >= 3);
    s = await Client.authed({ name: 'subscriber-3', token: tokenFor(sub) });
    s.send({ type: 'TOPIC_SUB', payload: { topic } });
    const kept = [(await s.waitFor(msgOn(topic))).payload.data.i, (await s.waitFor(msgOn(topic))).payload.data.i];
    assert.deepEqual(kept, [4, 5]);
    // TOPIC_UNSUB forgets the durable subscription
    s.send({ type: 'TOPIC_UNSUB', payload: { topic } });
    await s.barrier();
    assert.equal(psql(`SELECT count(*) FROM topgun.topic_subscriptions WHERE subscriber = ${lit(sub)}`), '0');
    await s.close();
  } finally {
    await setGuc('topgun.topic_queue_size', null);
    await pub.close();
  }
});

test('queued topic messages survive a worker restart', async () => {
  const topic = uniq('durable');
  const sub = uniq('restart-user');
  let s = await Client.authed({ name: 'subscriber', token: tokenFor(sub) });
  s.send({ type: 'TOPIC_SUB', payload: { topic } });
  await s.barrier();
  await s.close();
  await offline(sub);
  const pub = await Client.authed({ name: 'publisher' });
  pub.send({ type: 'TOPIC_PUB', payload: { topic, data: 'before restart' } });
  await queueAfter(sub, topic, 1);
  await pub.close();
  const pid = workerPid();
  psql(`SELECT pg_terminate_backend(${pid})`);
  await waitWorker(60000, pid);
  s = await Client.authedRetry({ name: 'subscriber-after', token: tokenFor(sub) });
  try {
    s.send({ type: 'TOPIC_SUB', payload: { topic } });
    assert.equal((await s.waitFor(msgOn(topic), 10000)).payload.data, 'before restart');
  } finally {
    await s.close();
  }
});
