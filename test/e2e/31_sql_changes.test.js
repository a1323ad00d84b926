'use strict';
// Changes made in SQL reach WebSocket subscribers after COMMIT, never
// before and never for a rolled-back transaction (issue 5); OR-map changes
// from SQL become OR_ADD / OR_REMOVE events; commit-to-client latency is
// measured and printed.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const env = require('./lib/env');
const { psql, lit } = require('./lib/psql');
const { feedBarrier, until, stat } = require('./lib/barrier');
const jwt = require('./lib/jwt');
const { eventsFor } = require('./lib/sync');

const hasEvent = (map, key) => (m) => eventsFor(m, map).some((e) => key === undefined || e.key === key);

// An interactive psql session, to hold a transaction open.
function session() {
  const p = spawn(env.psqlBin, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', env.pg], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d.toString(); });
  return {
    run(sql) { p.stdin.write(`${sql}\n`); },
    async sync(tag) {
      p.stdin.write(`SELECT 'sync-${tag}';\n`);
      const end = Date.now() + 10000;
      while (!out.includes(`sync-${tag}`)) {
        if (Date.now() > end) throw new Error(`psql session did not answer: ${out}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close() { p.stdin.end(); },
  };
}

test('SQL lww_put reaches the watcher only after COMMIT; a rolled-back one never', async () => {
  const map = hlc.uniqueName('sqlfeed');
  const w = await Client.authed({ name: 'watcher' });
  const s = session();
  try {
    w.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 });
    await w.waitFor('SYNC_RESP_ROOT');

    s.run('BEGIN;');
    s.run(`SELECT topgun.lww_put(${lit(map)}, 'k1', '{"v":1}', topgun.hlc_now());`);
    await s.sync('a');
    await w.expectNone(hasEvent(map), () => feedBarrier(w)); // not before commit
    s.run('COMMIT;');
    const m = await w.waitFor(hasEvent(map, 'k1'), 5000);
    const ev = eventsFor(m, map)[0];
    assert.equal(ev.eventType, 'UPDATED');
    assert.deepEqual(ev.record.value, { v: 1 });
    assert.equal(typeof ev.record.timestamp.millis, 'number');
    assert.equal(typeof m.timestamp.millis, 'number');   // top-level Timestamp for the client HLC

    s.run('BEGIN;');
    s.run(`SELECT topgun.lww_put(${lit(map)}, 'k2', '{"v":2}', topgun.hlc_now());`);
    s.run('ROLLBACK;');
    await s.sync('b');
    // a savepoint rolled back inside a committed transaction is not seen either
    s.run('BEGIN;');
    s.run('SAVEPOINT sp;');
    s.run(`SELECT topgun.lww_put(${lit(map)}, 'k3', '{"v":3}', topgun.hlc_now());`);
    s.run('ROLLBACK TO SAVEPOINT sp;');
    s.run(`SELECT topgun.lww_put(${lit(map)}, 'k4', '{"v":4}', topgun.hlc_now());`);
    s.run('COMMIT;');
    const m4 = await w.waitFor(hasEvent(map, 'k4'), 5000);
    assert.deepEqual(eventsFor(m4, map).map((e) => e.key), ['k4']);
    await w.expectNone((x) => hasEvent(map, 'k2')(x) || hasEvent(map, 'k3')(x), () => feedBarrier(w));

    // a delete from SQL is a tombstone event
    psql(`SELECT topgun.lww_remove(${lit(map)}, 'k1')`);
    const d = eventsFor(await w.waitFor(hasEvent(map, 'k1'), 5000), map)[0];
    assert.equal(d.record.value, null);
  } finally {
    s.close();
    await w.close();
  }
});

test('SQL OR-map changes become OR_ADD / OR_REMOVE events; other maps are not sent', async () => {
  const map = hlc.uniqueName('sqlfeed-or');
  const other = hlc.uniqueName('sqlfeed-other');
  const w = await Client.authed({ name: 'watcher' });
  try {
    w.send({ type: 'ORMAP_SYNC_INIT', mapName: map, rootHash: 0, bucketHashes: {}, lastSyncTimestamp: 0 });
    await w.waitFor('ORMAP_SYNC_RESP_ROOT');
    const tag = psql(`SELECT topgun.or_add(${lit(map)}, 'k', '"x"')`);
    const add = eventsFor(await w.waitFor(hasEvent(map, 'k'), 5000), map)[0];
    assert.equal(add.eventType, 'OR_ADD');
    assert.equal(add.orRecord.value, 'x');
    assert.equal(add.orRecord.tag, tag);
    psql(`SELECT topgun.or_remove_tag(${lit(map)}, ${lit(tag)})`);
    const rm = eventsFor(await w.waitFor(hasEvent(map, 'k'), 5000), map)[0];
    assert.equal(rm.eventType, 'OR_REMOVE');
    assert.equal(rm.orTag, tag);
    psql(`SELECT topgun.lww_put(${lit(other)}, 'k', '1', topgun.hlc_now())`);
    await w.expectNone(hasEvent(other), () => feedBarrier(w));
  } finally {
    await w.close();
  }
});

// The feed re-reads a changed record only if someone receives it: the
// session counts the watches of every map across connections.  A watch
// dropped by one connection leaves the others' intact; once the last one
// is gone (socket closed, QUERY_UNSUB) the map's changes are counted in
// feed_events_unwatched and cost no re-read.
test('SQL writes to a map nobody watches are not re-read; watches are counted across connections', async () => {
  const map = hlc.uniqueName('sqlfeed-watch');
  const tokenFor = (sub) => jwt.hs256(env.jwtSecret, jwt.defaultClaims({ sub, userId: sub }));
  const offline = (sub) => until(() => psql(`SELECT count(*) FROM topgun.connections WHERE user_id = ${lit(sub)}`) === '0',
    `no connection of ${sub} left`);
  const put = (key) => psql(`SELECT topgun.lww_put(${lit(map)}, ${lit(key)}, '1', topgun.hlc_now())`);
  const aName = hlc.uniqueName('watch-a');
  const a = await Client.authed({ name: 'a', token: tokenFor(aName) });
  const bName = hlc.uniqueName('watch-b');
  const b = await Client.authed({ name: 'b', token: tokenFor(bName) });
  const c = await Client.authed({ name: 'c' });
  try {
    // nobody watches: the events are counted (other maps' changes may add to the
    // counter meanwhile, never take from it), nobody gets them
    const putMany = (prefix, n) => psql(`SELECT count(topgun.lww_put(${lit(map)}, ${lit(prefix)} || i, '1', topgun.hlc_now()))
                                         FROM generate_series(1, ${n}) i`);
    let before = stat('feed_events_unwatched');
    putMany('u', 5);
    await until(() => stat('feed_events_unwatched') >= before + 5, 'the 5 unwatched changes are counted');
    // two watchers; one leaves; the other still receives, nothing counted as unwatched
    for (const w of [a, b]) {
      w.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 });
      await w.waitFor('SYNC_RESP_ROOT');
    }
    await a.close();
    await offline(aName);
    await feedBarrier(b);		// the session has handled a's close before what follows
    put('k1');
    const ev = eventsFor(await b.waitFor(hasEvent(map, 'k1'), 5000), map)[0];
    assert.equal(ev.eventType, 'UPDATED');
    // a live query is a watch too: after QUERY_UNSUB and b's close nobody watches the map
    c.send({ type: 'QUERY_SUB', payload: { queryId: 'qw', mapName: map, query: {} } });
    await c.waitFor((m) => m.type === 'QUERY_RESP', 5000);
    await b.close();
    await offline(bName);
    await feedBarrier(c);
    put('k2');
    await c.waitFor((m) => m.type === 'QUERY_UPDATE' && m.payload.key === 'k2', 5000);
    c.send({ type: 'QUERY_UNSUB', payload: { queryId: 'qw' } });
    await c.barrier();
    before = stat('feed_events_unwatched');
    putMany('k3-', 5);
    await until(() => stat('feed_events_unwatched') >= before + 5, 'the changes of the map nobody watches any more are counted');
    await c.expectNone((m) => eventsFor(m, map).some((e) => e.key.startsWith('k3-')), () => feedBarrier(c));
  } finally {
    await c.close();
  }
});

test('commit-to-client latency of SQL writes (printed)', async (t) => {
  const map = hlc.uniqueName('sqlfeed-lat');
  const w = await Client.authed({ name: 'watcher' });
  const s = session();
  try {
    w.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 });
    await w.waitFor('SYNC_RESP_ROOT');
    const lat = [];
    for (let i = 0; i < 50; i++) {
      // the value carries the wall clock right before COMMIT (same machine)
      s.run(`SELECT topgun.lww_put(${lit(map)}, 'k', jsonb_build_object('t', extract(epoch from clock_timestamp()) * 1000), topgun.hlc_now());`);
      const m = await w.waitFor(hasEvent(map, 'k'), 5000);
      lat.push(Date.now() - eventsFor(m, map)[0].record.value.t);
    }
    lat.sort((a, b) => a - b);
    const p50 = lat[Math.floor(lat.length * 0.5)];
    const p99 = lat[Math.floor(lat.length * 0.99)];
    t.diagnostic(`SQL commit → client: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms (50 autocommit writes)`);
    assert.ok(p50 < 1000, `p50 ${p50} ms`);
  } finally {
    s.close();
    await w.close();
  }
});
