'use strict';
// ORMAP_PUSH_DIFF forwards exactly what it changed (issue 17, defect 3):
// an OR_REMOVE for each live record a pushed tombstone removed (watchers and
// OR query subscriptions see it go, live), an OR_ADD for each pushed record
// that was new or newer, nothing for records and tombstones that changed
// nothing; never anything to the pusher.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, lit } = require('./lib/psql');
const { feedBarrier } = require('./lib/barrier');
const { watchOr, eventsFor, isEvent } = require('./lib/sync');

const rec = (value, ts) => ({ value, timestamp: ts, tag: hlc.tagOf(ts) });
const push = (c, mapName, entries) => c.send({ type: 'ORMAP_PUSH_DIFF', payload: { mapName, entries } });
const resp = (qid) => (m) => m.type === 'QUERY_RESP' && m.payload.queryId === qid;
const isUpdate = (qid, key) => (m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === qid && m.payload.key === key;
const orValues = (map, key) => JSON.parse(psql(`SELECT coalesce(json_agg(v), '[]') FROM topgun.or_get(${lit(map)}, ${lit(key)}) v`));
// The pusher's PONG follows its push (and the push's fan-out, done before the
// session reads the next message); the watcher's PONG follows any event sent
// to it before.
const pushHandled = (pusher, watcher) => async () => { await pusher.barrier(); await watcher.barrier(); };
const brief = (e) => ({ eventType: e.eventType, key: e.key, tag: e.orTag || (e.orRecord && e.orRecord.tag),
  value: e.orRecord ? e.orRecord.value : undefined });

test('a pushed tombstone removes the record from the watchers and the OR query subscriptions, live', async () => {
  const map = hlc.uniqueName('push-rm');
  const a = await Client.authed({ name: 'writer' });
  const w = await Client.authed({ name: 'watcher' });
  const q = await Client.authed({ name: 'query' });
  const p = await Client.authed({ name: 'pusher' });
  try {
    await watchOr(w, map);
    const tRed = hlc.now('a');
    const tBlue = hlc.now('a');
    await a.sendOps([hlc.orAddOp(map, 'colors', 'red', tRed), hlc.orAddOp(map, 'colors', 'blue', tBlue)]);
    // the watcher holds both tags
    const added = eventsFor(await w.waitFor(isEvent(map)), map);
    assert.deepEqual(added.map((e) => e.orRecord.tag).sort(), [hlc.tagOf(tRed), hlc.tagOf(tBlue)].sort());
    q.send({ type: 'QUERY_SUB', payload: { queryId: 'q', mapName: map, query: {} } });
    const r = await q.waitFor(resp('q'));
    assert.deepEqual(r.payload.results.map((x) => [x.key, x.value.slice().sort()]), [['colors', ['blue', 'red']]]);

    // Tombstones are map-wide: the one for red may come with any key's entry.
    // The second never had a record: it changes what can be added, nobody's view.
    const never = hlc.now('p');
    push(p, map, [{ key: 'elsewhere', records: [], tombstones: [hlc.tagOf(tRed), hlc.tagOf(never)] }]);
    const m = await w.waitFor(isEvent(map));
    assert.deepEqual(eventsFor(m, map).map(brief),
      [{ eventType: 'OR_REMOVE', key: 'colors', tag: hlc.tagOf(tRed), value: undefined }]);
    const u = await q.waitFor(isUpdate('q', 'colors'), 10000);
    assert.equal(u.payload.type, 'UPDATE');
    assert.deepEqual(u.payload.value, ['blue']);
    await w.expectNone(isEvent(map), pushHandled(p, w));
    await p.expectNone((x) => x.type !== 'PONG');
    assert.deepEqual(orValues(map, 'colors'), ['blue']);
    assert.equal(psql(`SELECT count(*) FROM topgun.or_tombstones WHERE map = ${lit(map)}`), '2');
    assert.equal(psql(`SELECT key FROM topgun.or_tombstones WHERE map = ${lit(map)} AND tag = ${lit(hlc.tagOf(tRed))}`), 'colors');

    // removing the key's last tag makes it leave the query result
    push(p, map, [{ key: 'colors', records: [], tombstones: [hlc.tagOf(tBlue)] }]);
    assert.deepEqual(eventsFor(await w.waitFor(isEvent(map)), map).map(brief),
      [{ eventType: 'OR_REMOVE', key: 'colors', tag: hlc.tagOf(tBlue), value: undefined }]);
    const gone = await q.waitFor((x) => isUpdate('q', 'colors')(x) && x.payload.type === 'REMOVE', 10000);
    assert.equal(gone.payload.value, null);
  } finally {
    await Promise.all([a.close(), w.close(), q.close(), p.close()]);
  }
});

test('a push of one new record and several unchanged ones broadcasts exactly one OR_ADD', async () => {
  const map = hlc.uniqueName('push-one');
  const w = await Client.authed({ name: 'watcher' });
  const p = await Client.authed({ name: 'pusher' });
  try {
    await watchOr(w, map);
    const old = [rec('a', hlc.now('p')), rec('b', hlc.now('p')), rec({ c: 3 }, hlc.now('p'))];
    const dead = hlc.tagOf(hlc.now('p'));
    push(p, map, [{ key: 'k', records: old.slice(0, 2), tombstones: [dead] }, { key: 'j', records: old.slice(2), tombstones: [dead] }]);
    // all three are new: one event each, in one message
    assert.deepEqual(eventsFor(await w.waitFor(isEvent(map)), map).map(brief), [
      { eventType: 'OR_ADD', key: 'k', tag: old[0].tag, value: 'a' },
      { eventType: 'OR_ADD', key: 'k', tag: old[1].tag, value: 'b' },
      { eventType: 'OR_ADD', key: 'j', tag: old[2].tag, value: { c: 3 } }]);

    // A client's Merkle push: everything it holds for the keys, plus its tombstones.
    const fresh = rec('new', hlc.now('p'));
    push(p, map, [{ key: 'k', records: [old[0], fresh, old[1]], tombstones: [dead] },
      { key: 'j', records: old.slice(2), tombstones: [dead] }]);
    const m = await w.waitFor(isEvent(map));
    assert.deepEqual(eventsFor(m, map).map(brief), [{ eventType: 'OR_ADD', key: 'k', tag: fresh.tag, value: 'new' }]);
    assert.deepEqual(eventsFor(m, map)[0].orRecord.timestamp, fresh.timestamp);
    await w.expectNone(isEvent(map), pushHandled(p, w));

    // a newer version of a tag it holds is a change: one OR_ADD with the new value
    const newer = { value: 'b2', timestamp: hlc.now('p'), tag: old[1].tag };
    push(p, map, [{ key: 'k', records: [old[0], newer, fresh], tombstones: [dead] }]);
    assert.deepEqual(eventsFor(await w.waitFor(isEvent(map)), map).map(brief),
      [{ eventType: 'OR_ADD', key: 'k', tag: old[1].tag, value: 'b2' }]);
    await w.expectNone(isEvent(map), pushHandled(p, w));
    assert.deepEqual(orValues(map, 'k').sort(), ['a', 'b2', 'new']);
  } finally {
    await Promise.all([w.close(), p.close()]);
  }
});

test('a push that changes nothing broadcasts nothing (no event, no query update)', async () => {
  const map = hlc.uniqueName('push-none');
  const w = await Client.authed({ name: 'watcher' });
  const q = await Client.authed({ name: 'query' });
  const p = await Client.authed({ name: 'pusher' });
  try {
    await watchOr(w, map);
    const kept = rec('kept', hlc.now('p'));
    const removed = rec('removed', hlc.now('p'));
    const stale = { value: 'stale', timestamp: { ...kept.timestamp, millis: kept.timestamp.millis - 1 }, tag: kept.tag };
    push(p, map, [{ key: 'k', records: [kept, removed], tombstones: [] }]);
    assert.equal(eventsFor(await w.waitFor(isEvent(map)), map).length, 2);
    push(p, map, [{ key: 'k', records: [], tombstones: [removed.tag] }]);
    assert.equal(eventsFor(await w.waitFor(isEvent(map)), map)[0].eventType, 'OR_REMOVE');
    q.send({ type: 'QUERY_SUB', payload: { queryId: 'q', mapName: map, query: {} } });
    assert.deepEqual((await q.waitFor(resp('q'))).payload.results, [{ key: 'k', value: ['kept'] }]);

    // the same record again, an older version of it, the removed record again
    // (its tag is tombstoned), and tombstones already applied
    push(p, map, [{ key: 'k', records: [kept, stale, removed], tombstones: [removed.tag] },
      { key: 'other', records: [], tombstones: [removed.tag] }]);
    await w.expectNone(isEvent(map), pushHandled(p, w));
    await q.expectNone((m) => m.type === 'QUERY_UPDATE', () => feedBarrier(q));
    await p.expectNone((m) => m.type !== 'PONG');
    assert.deepEqual(orValues(map, 'k'), ['kept']);
    assert.equal(psql(`SELECT topgun.or_merge_key(${lit(map)}, 'k', ${lit(JSON.stringify([kept]))}::jsonb, ARRAY[${lit(removed.tag)}])`), '0');
  } finally {
    await Promise.all([w.close(), q.close(), p.close()]);
  }
});
