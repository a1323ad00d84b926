'use strict';
// Rejection paths (issue 11): each answer is the documented one, and the
// data and the other clients are untouched.
//   - a group failure no op is blamed for (an OR op raising inside the group
//     transaction) → the group is retried op by op: only the bad ops are
//     rejected, the rest commit; many bad ops (subtransaction fallback) too;
//   - clock drift in strict mode (topgun.strict_clock) → the op is rejected
//     over the wire, the batch's other ops commit;
//   - MERKLE_REQ_BUCKET on an OR map (and ORMAP_MERKLE_REQ_BUCKET on an LWW
//     map) → ERROR 400, the connection keeps working;
//   - change-feed overflow (a transaction's events do not fit in the ring)
//     → connections with live subscriptions are closed 1013 and resynchronise
//     to the committed state; connections without subscriptions stay;
//   - extension dropped and re-created → every socket is closed 1012 and a
//     fresh worker serves again (runs last: it replaces the extension).
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const env = require('./lib/env');
const jwt = require('./lib/jwt');
const { psql, rows, lit } = require('./lib/psql');
const { workerPid, waitWorker, restartServer } = require('./lib/server');
const { setGuc, stat, feedBarrier } = require('./lib/barrier');
const { watchLww, watchOr, eventsFor, isEvent } = require('./lib/sync');

const lwwGet = (map, key) => JSON.parse(psql(`SELECT coalesce(topgun.lww_get(${lit(map)}, ${lit(key)}), 'null')`));
const orValues = (map, key) => rows(`SELECT value FROM topgun.ormap WHERE map = ${lit(map)} AND key = ${lit(key)} ORDER BY value::text`).map((r) => r.value);

// The server serves (an earlier file may have left it restarting).
test.before(async () => { await (await Client.authedRetry({ name: 'ready' })).close(); });

// All events for `map` that `c` got up to a barrier, as "key=value" strings.
async function eventsUpTo(c, map) {
  await c.barrier();
  const got = c.queue.filter(isEvent(map));
  c.drain(isEvent(map));
  return got.flatMap((m) => eventsFor(m, map)).map((e) => `${e.key}=${JSON.stringify(e.record ? e.record.value : e.orRecord.value)}`).sort();
}

test('a group failure no op is blamed for: retried op by op, only the bad ops rejected', async () => {
  const lww = hlc.uniqueName('grp-lww');
  const or = hlc.uniqueName('grp-or');
  const w = await Client.authed({ name: 'writer' });
  const lwwWatcher = await Client.authed({ name: 'lww-watcher' });
  const orWatcher = await Client.authed({ name: 'or-watcher' });
  try {
    await w.sendOps([hlc.putOp(lww, 'before', 'kept', hlc.now('w')), hlc.orAddOp(or, 'before', 'kept', hlc.now('w'))]);
    await watchLww(lwwWatcher, lww);
    await watchOr(orWatcher, or);
    const retries = stat('group_commit_retries');

    // OR_ADD on an LWW map raises (kind mismatch) inside the group's
    // transaction: no per-op error column tells which op it was
    const bad = hlc.orAddOp(lww, 'x', 'wrong kind', hlc.now('w'));
    const good = [hlc.putOp(lww, 'a', 1, hlc.now('w')), hlc.orAddOp(or, 'b', 'two', hlc.now('w')), hlc.putOp(lww, 'c', 3, hlc.now('w'))];
    const ack = await w.sendOps([good[0], bad, good[1], good[2]]);
    const res = Object.fromEntries(ack.payload.results.map((r) => [r.opId, r.success]));
    assert.deepEqual(res, { [good[0].id]: true, [bad.id]: false, [good[1].id]: true, [good[2].id]: true });
    const rej = await w.waitFor('OP_REJECTED');
    assert.equal(rej.payload.opId, bad.id);
    assert.match(rej.payload.reason, /LWW|kind|OR/i);
    assert.ok(stat('group_commit_retries') > retries, 'the group was retried');
    assert.equal(lwwGet(lww, 'a'), 1);
    assert.equal(lwwGet(lww, 'c'), 3);
    assert.equal(lwwGet(lww, 'x'), null);
    assert.deepEqual(orValues(or, 'b'), ['two']);
    // the other clients got the committed ops only
    assert.deepEqual(await eventsUpTo(lwwWatcher, lww), ['a=1', 'c=3']);
    assert.deepEqual(await eventsUpTo(orWatcher, or), ['b="two"']);

    // many bad ops (past 3 retries the group goes one subtransaction per op)
    const bads = [];
    const goods = [];
    const batch = [];
    for (let i = 0; i < 6; i++) {
      const b = hlc.orAddOp(lww, `bad${i}`, i, hlc.now('w'));
      const g = hlc.putOp(lww, `good${i}`, i, hlc.now('w'));
      bads.push(b.id);
      goods.push(g.id);
      batch.push(b, g);
    }
    const ack2 = await w.sendOps(batch);
    const ok = ack2.payload.results.filter((r) => r.success).map((r) => r.opId);
    const no = ack2.payload.results.filter((r) => !r.success).map((r) => r.opId);
    assert.deepEqual(ok, goods);
    assert.deepEqual(no, bads);
    assert.deepEqual(rows(`SELECT key FROM topgun.lww WHERE map = ${lit(lww)} AND key LIKE 'good%' ORDER BY key`).map((r) => r.key),
      ['good0', 'good1', 'good2', 'good3', 'good4', 'good5']);
    assert.equal(psql(`SELECT count(*) FROM topgun.lww WHERE map = ${lit(lww)} AND key LIKE 'bad%'`), '0');
    // data written before is untouched, everybody is still served
    assert.equal(lwwGet(lww, 'before'), 'kept');
    assert.deepEqual(orValues(or, 'before'), ['kept']);
    for (const c of [w, lwwWatcher, orWatcher]) await c.barrier();
  } finally {
    await w.close();
    await lwwWatcher.close();
    await orWatcher.close();
  }
});

test('strict clock: a timestamp too far ahead is rejected over the wire; the rest of the batch commits', { timeout: 120000 }, async () => {
  const map = hlc.uniqueName('drift');
  const or = hlc.uniqueName('drift-or');
  // Only a time ahead of the server's clock can be refused (one behind it
  // cannot move the clock).  Earlier files may have pushed the shared clock
  // far ahead with strict_clock off (20_sql_vectors loads a timestamp of
  // 2^53-1 ms): a restart gives it back the wall time.
  await restartServer();
  const w = await Client.authedRetry({ name: 'writer' });
  const watcher = await Client.authedRetry({ name: 'watcher' });
  try {
    const clock = Number(psql('SELECT topgun.hlc_millis(topgun.hlc_now())'));
    assert.ok(clock < Date.now() + 60000, `the server clock is at the wall time (${clock})`);
    await w.sendOps([hlc.putOp(map, 'k', 'old', hlc.now('w'))]);
    await watchLww(watcher, map);
    await setGuc('topgun.max_drift_ms', 60000);
    await setGuc('topgun.strict_clock', 'on');
    const future = { millis: Date.now() + 3600 * 1000, counter: 0, nodeId: 'fast-clock' };
    const ahead = hlc.putOp(map, 'k', 'from the future', future);
    const aheadOr = hlc.orAddOp(or, 'k', 'from the future', { ...future, counter: 1 });
    const fine = hlc.putOp(map, 'ok', 'now', hlc.now('w'));
    const ack = await w.sendOps([ahead, fine, aheadOr]);
    const res = Object.fromEntries(ack.payload.results.map((r) => [r.opId, r]));
    assert.equal(res[ahead.id].success, false);
    assert.match(res[ahead.id].error, /clock drift/);
    assert.equal(res[aheadOr.id].success, false);
    assert.match(res[aheadOr.id].error, /clock drift/);
    assert.equal(res[fine.id].success, true);
    const rejected = [await w.waitFor('OP_REJECTED'), await w.waitFor('OP_REJECTED')].map((m) => m.payload.opId).sort();
    assert.deepEqual(rejected, [ahead.id, aheadOr.id].sort());
    assert.equal(lwwGet(map, 'k'), 'old');
    assert.equal(lwwGet(map, 'ok'), 'now');
    assert.deepEqual(orValues(or, 'k'), []);
    assert.deepEqual(await eventsUpTo(watcher, map), ['ok="now"']);
    // a CLIENT_OP too
    w.send({ type: 'CLIENT_OP', payload: hlc.putOp(map, 'k', 'again', { ...future, counter: 2 }) });
    assert.match((await w.waitFor('OP_REJECTED')).payload.reason, /clock drift/);
    assert.equal(lwwGet(map, 'k'), 'old');

    // the default, auto, is on in production (an ADMIN writer: production's
    // empty policy table denies everyone else)
    await setGuc('topgun.strict_clock', null);
    await setGuc('topgun.production', 'on');
    const adm = await Client.authed({ name: 'admin', token: jwt.hs256(env.jwtSecret, jwt.defaultClaims({ roles: ['ADMIN'] })) });
    try {
      adm.send({ type: 'CLIENT_OP', payload: hlc.putOp(map, 'k', 'in production', { ...future, counter: 2 }) });
      assert.match((await adm.waitFor('OP_REJECTED')).payload.reason, /clock drift/);
      assert.equal(lwwGet(map, 'k'), 'old');
    } finally {
      await setGuc('topgun.production', null);
      await adm.close();
    }

    // with strict_clock off (auto outside production) the same timestamp is accepted (with a warning)
    const later = hlc.putOp(map, 'k', 'accepted', { ...future, counter: 3 });
    const ack2 = await w.sendOps([later]);
    assert.equal(ack2.payload.results[0].success, true);
    assert.equal(lwwGet(map, 'k'), 'accepted');
  } finally {
    await setGuc('topgun.strict_clock', null);
    await setGuc('topgun.production', null);
    await setGuc('topgun.max_drift_ms', null);
    await w.close();
    await watcher.close();
  }
});

test('MERKLE_REQ_BUCKET on an OR map (and the OR request on an LWW map): ERROR 400, the connection keeps working', async () => {
  const or = hlc.uniqueName('mrb-or');
  const lww = hlc.uniqueName('mrb-lww');
  const c = await Client.authed({ name: 'syncer' });
  try {
    await c.sendOps([hlc.orAddOp(or, 'k', 'v', hlc.now('c')), hlc.putOp(lww, 'k', 'v', hlc.now('c'))]);
    const before = psql(`SELECT md5(string_agg(map || key || value::text, ',' ORDER BY map, key)) FROM
      (SELECT map, key, value FROM topgun.ormap WHERE map = ${lit(or)} UNION ALL SELECT map, key, value FROM topgun.lww WHERE map = ${lit(lww)}) s`);
    for (const path of ['', '0', 'abc']) {
      c.send({ type: 'MERKLE_REQ_BUCKET', payload: { mapName: or, path } });
      const e = await c.waitFor((m) => m.type === 'ERROR' || (m.type && m.type.startsWith('SYNC_RESP')));
      assert.equal(e.type, 'ERROR', `path '${path}': ${JSON.stringify(e).slice(0, 200)}`);
      assert.equal(e.payload.code, 400);
      assert.equal(e.payload.message, `Map ${or} is an ORMap`);
    }
    c.send({ type: 'ORMAP_MERKLE_REQ_BUCKET', payload: { mapName: lww, path: '' } });
    const e2 = await c.waitFor((m) => m.type === 'ERROR' || (m.type && m.type.startsWith('ORMAP_SYNC_RESP')));
    assert.equal(e2.type, 'ERROR');
    assert.equal(e2.payload.code, 400);
    assert.equal(e2.payload.message, `Map ${lww} is not an ORMap`);
    // the right requests on the same connection still work
    c.send({ type: 'ORMAP_MERKLE_REQ_BUCKET', payload: { mapName: or, path: '' } });
    const ok = await c.waitFor((m) => m.type === 'ERROR' || (m.type && m.type.startsWith('ORMAP_SYNC_RESP')));
    assert.ok(ok.type.startsWith('ORMAP_SYNC_RESP'), JSON.stringify(ok).slice(0, 200));
    c.send({ type: 'MERKLE_REQ_BUCKET', payload: { mapName: lww, path: '' } });
    const ok2 = await c.waitFor((m) => m.type === 'ERROR' || (m.type && m.type.startsWith('SYNC_RESP')));
    assert.ok(ok2.type.startsWith('SYNC_RESP'), JSON.stringify(ok2).slice(0, 200));
    assert.equal(psql(`SELECT md5(string_agg(map || key || value::text, ',' ORDER BY map, key)) FROM
      (SELECT map, key, value FROM topgun.ormap WHERE map = ${lit(or)} UNION ALL SELECT map, key, value FROM topgun.lww WHERE map = ${lit(lww)}) s`), before);
  } finally {
    await c.close();
  }
});

test('change-feed overflow: subscribed connections are closed 1013 and resynchronise; others stay', async () => {
  const map = hlc.uniqueName('overflow');
  const w = await Client.authed({ name: 'watcher' });
  const q = await Client.authed({ name: 'querier' });
  const idle = await Client.authed({ name: 'no-subscriptions' });
  try {
    await w.sendOps([hlc.putOp(map, 'before', 1, hlc.now('w'))]);
    await watchLww(w, map);
    q.send({ type: 'QUERY_SUB', payload: { queryId: 'all', mapName: map, query: {} } });
    assert.deepEqual((await q.waitFor('QUERY_RESP')).payload.results.map((r) => r.key), ['before']);
    const lost = stat('feed_lost');
    const closes = stat('feed_resync_closes');
    const bufferBytes = Number(psql('SELECT buffer_bytes FROM topgun.change_feed_stats()'));

    // one transaction whose events cannot be kept (a transaction may buffer
    // half the ring): a write and published payloads (at most 1 MiB each)
    // adding up to more than half the ring
    const payload = 900 * 1024;
    const count = Math.ceil(bufferBytes / 2 / payload) + 1;
    psql(`BEGIN;
      SELECT topgun.lww_put(${lit(map)}, 'during', '2', topgun.hlc_now());
      SELECT topgun.publish('overflow/x', to_jsonb(repeat('x', ${payload}))) FROM generate_series(1, ${count});
      COMMIT;`);
    const [cw, cq] = await Promise.all([w.waitClose(15000), q.waitClose(15000)]);
    for (const c of [cw, cq]) {
      assert.equal(c.code, 1013);
      assert.equal(c.reason, 'Change feed overflow: resync');
    }
    assert.ok(stat('feed_lost') > lost, 'the loss is counted');
    assert.ok(stat('feed_resync_closes') >= closes + 2, 'the resync closes are counted');
    // the connection without subscriptions was not touched
    await idle.barrier();
    assert.equal(idle.closed, null);

    // resync: reconnect and re-subscribe → the committed state, nothing lost
    const w2 = await Client.authed({ name: 'watcher-again' });
    const q2 = await Client.authed({ name: 'querier-again' });
    try {
      q2.send({ type: 'QUERY_SUB', payload: { queryId: 'all', mapName: map, query: {} } });
      assert.deepEqual((await q2.waitFor('QUERY_RESP')).payload.results.map((r) => r.key).sort(), ['before', 'during']);
      await watchLww(w2, map);
      // live again: a new write reaches both
      await idle.sendOps([hlc.putOp(map, 'after', 3, hlc.now('i'))]);
      assert.equal((await q2.waitFor((m) => m.type === 'QUERY_UPDATE' && m.payload.key === 'after')).payload.value, 3);
      assert.deepEqual(await eventsUpTo(w2, map), ['after=3']);
    } finally {
      await w2.close();
      await q2.close();
    }
    assert.equal(lwwGet(map, 'before'), 1);
    assert.equal(lwwGet(map, 'during'), 2);
  } finally {
    w.terminate();
    q.terminate();
    await idle.close();
  }
});

test('extension dropped and re-created: sockets closed 1012, a fresh worker serves again', { timeout: 120000 }, async () => {
  const a = await Client.authed({ name: 'a' });
  const b = await Client.authed({ name: 'b', ping: false });
  const pid = workerPid();
  try {
    // DROP + CREATE in one transaction: the worker sees a new extension OID
    psql('DROP EXTENSION topgun; CREATE EXTENSION topgun;');
    const [ca, cb] = await Promise.all([a.waitClose(15000), b.waitClose(15000)]);
    for (const c of [ca, cb]) {
      assert.equal(c.code, 1012);
      assert.equal(c.reason, 'Service Restart');
    }
    await waitWorker(60000, pid);
    const c = await Client.authedRetry({ name: 'after' });
    try {
      const map = hlc.uniqueName('recreated');
      const ack = await c.sendOps([hlc.putOp(map, 'k', 'fresh', hlc.now('c'))]);
      assert.equal(ack.payload.results[0].success, true);
      assert.equal(lwwGet(map, 'k'), 'fresh');
      await feedBarrier(c);   // the change feed is consumed by the new worker
    } finally {
      await c.close();
    }
  } finally {
    a.terminate();
    b.terminate();
  }
});
