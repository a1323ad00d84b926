'use strict';
// The feature messages of PROTOCOL-ADDENDUM over the wire, each with the
// reply type the client waits for: entry processors (the write reaches
// other watchers), conflict resolvers (a rejected write is answered, and
// the writer's replica is corrected with a newer stored record), search,
// the journal, resolver registration, PARTITION_MAP; and every client
// message type gets an answer or is ignored, never charged as invalid.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const jwt = require('./lib/jwt');
const env = require('./lib/env');
const { psql, lit } = require('./lib/psql');

const rid = () => crypto.randomUUID();
const stat = (name) => Number(psql(`SELECT value FROM topgun.worker_stats WHERE name = ${lit(name)}`));
const admin = () => Client.authed({ name: 'admin', token: jwt.hs256(env.jwtSecret, jwt.defaultClaims({ roles: ['ADMIN'] })) });

test('ENTRY_PROCESS builtin:increment: response, stored, and other watchers get the event', async () => {
  const map = hlc.uniqueName('proc');
  const c = await Client.authed({ name: 'proc' });
  const w = await Client.authed({ name: 'watcher' });
  try {
    w.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 });
    await w.waitFor('SYNC_RESP_ROOT');
    const requestId = rid();
    c.send({ type: 'ENTRY_PROCESS', requestId, mapName: map, key: 'n', processor: { name: 'builtin:increment', code: 'x', args: 5 } });
    const r = await c.waitFor((m) => m.type === 'ENTRY_PROCESS_RESPONSE' && m.requestId === requestId);
    assert.equal(r.success, true);
    assert.equal(r.newValue, 5);
    assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'n')`), '5');
    const ev = await w.waitFor((m) => (m.type === 'SERVER_BATCH_EVENT' || m.type === 'SERVER_EVENT'));
    const evs = ev.type === 'SERVER_EVENT' ? [ev.payload] : ev.payload.events;
    assert.ok(evs.some((e) => e.key === 'n' && e.record.value === 5));
    const bad = rid();
    c.send({ type: 'ENTRY_PROCESS', requestId: bad, mapName: map, key: 'n', processor: { name: 'no-such', code: 'return 1' } });
    const rb = await c.waitFor((m) => m.type === 'ENTRY_PROCESS_RESPONSE' && m.requestId === bad);
    assert.equal(rb.success, false);
    assert.ok(rb.error);
  } finally { await c.close(); await w.close(); }
});

test('a resolver rejects a write: OP_ACK false, MERGE_REJECTED, and the writer converges to the stored value', async () => {
  const map = hlc.uniqueName('resolved');
  const a = await admin();
  const c = await Client.authed({ name: 'writer' });
  try {
    const requestId = rid();
    a.send({ type: 'REGISTER_RESOLVER', requestId, mapName: map, resolver: { name: 'builtin:non_negative', code: '' } });
    const reg = await a.waitFor((m) => m.type === 'REGISTER_RESOLVER_RESPONSE' && m.requestId === requestId);
    assert.equal(reg.success, true, JSON.stringify(reg));
    const lr = rid();
    a.send({ type: 'LIST_RESOLVERS', requestId: lr, mapName: map });
    const list = await a.waitFor((m) => m.type === 'LIST_RESOLVERS_RESPONSE' && m.requestId === lr);
    assert.ok(list.resolvers.some((r) => r.name === 'builtin:non_negative'));

    await c.sendOps([hlc.putOp(map, 'stock', 3, hlc.now('writer'))]);
    c.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 });
    await c.waitFor('SYNC_RESP_ROOT');
    const badTs = hlc.now('writer');
    const bad = hlc.putOp(map, 'stock', -1, badTs);
    const ack = await c.sendOps([bad]);
    assert.equal(ack.payload.results[0].success, false);
    const rej = await c.waitFor('MERGE_REJECTED');
    assert.equal(rej.key, 'stock');
    assert.equal(rej.attemptedValue, -1);
    // the stored value comes back newer than the rejected op: an LWW merge keeps it
    const ev = await c.waitFor((m) => (m.type === 'SERVER_BATCH_EVENT' || m.type === 'SERVER_EVENT'));
    const e = (ev.type === 'SERVER_EVENT' ? [ev.payload] : ev.payload.events).find((x) => x.key === 'stock');
    assert.equal(e.record.value, 3);
    assert.ok(hlc.compare(e.record.timestamp, badTs) > 0, 'newer than the rejected op');
    assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'stock')`), '3');
  } finally {
    psql(`SELECT topgun.unregister_resolver('builtin:non_negative', ${lit(map)})`);
    await a.close(); await c.close();
  }
});

test('a resolver registered or dropped in SQL applies from the next client write on (no cache delay)', async () => {
  const map = hlc.uniqueName('sqlres');
  const c = await Client.authed({ name: 'writer' });
  try {
    let ack = await c.sendOps([hlc.putOp(map, 'stock', -5, hlc.now('writer'))]);
    assert.equal(ack.payload.results[0].success, true, 'no resolver yet');
    psql(`SELECT topgun.register_resolver('builtin:non_negative', ${lit(map)})`);
    ack = await c.sendOps([hlc.putOp(map, 'stock', -6, hlc.now('writer'))]);
    assert.equal(ack.payload.results[0].success, false, 'the resolver is in force at once');
    psql(`SELECT topgun.unregister_resolver('builtin:non_negative', ${lit(map)})`);
    // newer than the stored record, which the rejection re-stamped with the server's clock
    const [ms, ctr] = psql(`SELECT ts::text FROM topgun.lww WHERE map = ${lit(map)} AND key = 'stock'`).split(':').map(Number);
    const t = hlc.now('writer');
    const ts = t.millis > ms ? t : { millis: ms, counter: ctr + 1, nodeId: 'writer' };
    ack = await c.sendOps([hlc.putOp(map, 'stock', -7, ts)]);
    assert.equal(ack.payload.results[0].success, true, 'and gone at once');
    assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'stock')`), '-7');
  } finally {
    psql(`SELECT topgun.unregister_resolver('builtin:non_negative', ${lit(map)})`);
    await c.close();
  }
});

test('a second resolver on a map whose chain is already in use applies at once, and is gone at once when dropped', async () => {
  // the server keeps the resolver list between group commits: a change to it must reach it
  const map = hlc.uniqueName('sqlres2');
  const c = await Client.authed({ name: 'writer' });
  try {
    psql(`SELECT topgun.register_resolver('builtin:non_negative', ${lit(map)})`);
    let ack = await c.sendOps([hlc.putOp(map, 'stock', 5, hlc.now('writer'))]);
    assert.equal(ack.payload.results[0].success, true, 'non_negative accepts 5');
    psql(`SELECT topgun.register_resolver('builtin:immutable', ${lit(map)})`);
    ack = await c.sendOps([hlc.putOp(map, 'stock', 6, hlc.now('writer'))]);
    assert.equal(ack.payload.results[0].success, false, 'immutable is in force at once');
    assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'stock')`), '5');
    psql(`SELECT topgun.unregister_resolver('builtin:immutable', ${lit(map)})`);
    const [ms, ctr] = psql(`SELECT ts::text FROM topgun.lww WHERE map = ${lit(map)} AND key = 'stock'`).split(':').map(Number);
    const t = hlc.now('writer');
    const ts = t.millis > ms ? t : { millis: ms, counter: ctr + 1, nodeId: 'writer' };
    ack = await c.sendOps([hlc.putOp(map, 'stock', 7, ts)]);
    assert.equal(ack.payload.results[0].success, true, 'immutable is gone at once, non_negative still accepts');
    assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'stock')`), '7');
    ack = await c.sendOps([hlc.putOp(map, 'stock', -1, hlc.now('writer'))]);
    assert.equal(ack.payload.results[0].success, false, 'non_negative is still in force');
  } finally {
    psql(`SELECT topgun.unregister_resolver('builtin:immutable', ${lit(map)})`);
    psql(`SELECT topgun.unregister_resolver('builtin:non_negative', ${lit(map)})`);
    await c.close();
  }
});

test('SEARCH: results from an enabled map; a map without search gets SEARCH_RESP with an error', async () => {
  const map = hlc.uniqueName('docs');
  const c = await Client.authed({ name: 'searcher' });
  try {
    await c.sendOps([hlc.putOp(map, 'd1', { title: 'red apples' }, hlc.now('s')), hlc.putOp(map, 'd2', { title: 'green pears' }, hlc.now('s'))]);
    const off = rid();
    c.send({ type: 'SEARCH', payload: { requestId: off, mapName: map, query: 'apples' } });
    const r0 = await c.waitFor((m) => m.type === 'SEARCH_RESP' && m.payload.requestId === off);
    assert.match(r0.payload.error, /not enabled/i);
    psql(`SELECT topgun.search_enable(${lit(map)}, ARRAY['title'])`);
    const on = rid();
    c.send({ type: 'SEARCH', payload: { requestId: on, mapName: map, query: 'apples', options: { limit: 10 } } });
    const r1 = await c.waitFor((m) => m.type === 'SEARCH_RESP' && m.payload.requestId === on);
    assert.equal(r1.payload.error, undefined);
    assert.deepEqual(r1.payload.results.map((x) => x.key), ['d1']);
    assert.ok(r1.payload.results[0].score > 0);
    assert.deepEqual(r1.payload.results[0].matchedTerms, ['appl']);
    assert.equal(r1.payload.totalCount, 1);
  } finally { await c.close(); }
});

test('JOURNAL_READ returns the events of a journaled map', async () => {
  const map = hlc.uniqueName('journaled');
  psql(`SELECT topgun.journal_enable(${lit(map)})`);
  const c = await admin();
  try {
    await c.sendOps([hlc.putOp(map, 'k', { v: 1 }, hlc.now('j'))]);
    const requestId = rid();
    // the journal is readable once the write's number is under the horizon: poll
    let events = [];
    for (let i = 0; i < 100 && events.length === 0; i++) {
      c.send({ type: 'JOURNAL_READ', requestId, fromSequence: '0', limit: 100, mapName: map });
      const r = await c.waitFor((m) => m.type === 'JOURNAL_READ_RESPONSE' && m.requestId === requestId);
      events = r.events;
    }
    assert.equal(events.length, 1);
    assert.equal(events[0].mapName, map);
    assert.equal(events[0].key, 'k');
    assert.equal(typeof events[0].sequence, 'string');
  } finally { await c.close(); }
});

test('PARTITION_MAP for a cluster-mode client: 271 partitions owned by this node', async () => {
  const c = await Client.authed({ name: 'cluster' });
  try {
    c.send({ type: 'PARTITION_MAP_REQUEST', payload: { currentVersion: 0 } });
    const m = await c.waitFor('PARTITION_MAP');
    assert.equal(m.payload.version, 1);
    assert.equal(m.payload.partitionCount, 271);
    assert.equal(m.payload.partitions.length, 271);
    assert.equal(m.payload.nodes.length, 1);
    assert.match(m.payload.nodes[0].endpoints.websocket, /^ws:\/\//);
    const me = psql('SELECT topgun.node_id()');
    assert.equal(m.payload.nodes[0].nodeId, me);
    assert.equal(m.payload.nodes[0].status, 'ACTIVE');
    assert.deepEqual(m.payload.partitions[270], { partitionId: 270, ownerNodeId: me, backupNodeIds: [] });
    assert.equal(typeof m.payload.generatedAt, 'number');
    // the sync server advertised its endpoint; SQL hands out the same map
    assert.equal(psql('SELECT websocket FROM topgun.node_clock WHERE node = topgun.node_id()'),
      m.payload.nodes[0].endpoints.websocket);
    assert.equal(psql("SELECT topgun.partition_map(0)->'nodes'->0->>'nodeId'"), me);
    c.send({ type: 'PARTITION_MAP_REQUEST', payload: { currentVersion: 1 } });
    await c.barrier();
    assert.equal(c.queue.some((x) => x.type === 'PARTITION_MAP'), false, 'nothing for an up-to-date client');
  } finally { await c.close(); }
});

test('every client message type is answered or ignored; none is charged as invalid', async () => {
  const c = await Client.authed({ name: 'all-types' });
  const map = hlc.uniqueName('all');
  try {
    const before = stat('messages_invalid');
    const msgs = [
      { type: 'SEARCH_UNSUB', payload: { subscriptionId: 's' } },
      { type: 'JOURNAL_UNSUBSCRIBE', subscriptionId: 'j' },
      { type: 'HYBRID_QUERY_SUBSCRIBE', payload: { subscriptionId: 'h', mapName: map } },
      { type: 'HYBRID_QUERY_UNSUBSCRIBE', payload: { subscriptionId: 'h' } },
      { type: 'ENTRY_PROCESS_BATCH', requestId: 'b1', mapName: map, keys: ['a', 'b'], processor: { name: 'builtin:increment', code: 'x', args: 1 } },
      { type: 'SEARCH_SUB', payload: { subscriptionId: 'ss', mapName: map, query: 'x' } },
      { type: 'UNREGISTER_RESOLVER', requestId: 'u1', mapName: map, resolverName: 'nope' },
    ];
    for (const m of msgs) c.send(m);
    await c.barrier();
    assert.equal(stat('messages_invalid'), before);
    assert.equal(c.queue.some((m) => m.type === 'ERROR' && /unknown|not implemented/i.test(m.payload.message)), false);
    assert.ok(c.log.some((m) => m.type === 'ENTRY_PROCESS_BATCH_RESPONSE' && m.requestId === 'b1'));
    assert.ok(c.log.some((m) => m.type === 'SEARCH_RESP' && m.payload.requestId === 'ss'));
    assert.ok(c.log.some((m) => m.type === 'UNREGISTER_RESOLVER_RESPONSE' && m.requestId === 'u1'));
  } finally { await c.close(); }
});
