'use strict';
// Limits (issue 5): each bound, when reached, gives its documented answer,
// is visible in topgun.connections / topgun.worker_stats, and the server
// keeps serving the same connection and everybody else.
//   topgun.max_subscriptions_per_connection → ERROR 400 'Subscription limit reached'
//   topgun.max_query_results                → ERROR 413, subscription refused / dropped
// (topic limit and topic queue size: 32_topics; outbound queue: 07_bad_input;
// connections: docs/worker.md.)
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { rows } = require('./lib/psql');

const { setGuc, stat } = require('./lib/barrier');

test('subscription limit per connection', async () => {
  const map = hlc.uniqueName('lim-sub');
  await setGuc('topgun.max_subscriptions_per_connection', 3);
  const c = await Client.authed({ name: 'limited' });
  const other = await Client.authed({ name: 'other' });
  try {
    const before = stat('limits_reached');
    for (let i = 0; i < 3; i++) {
      c.send({ type: 'QUERY_SUB', payload: { queryId: `q${i}`, mapName: map, query: {} } });
      await c.waitFor('QUERY_RESP');
    }
    c.send({ type: 'COUNTER_REQUEST', payload: { name: `${map}-c` } });
    const e = await c.waitFor('ERROR');
    assert.equal(e.payload.code, 400);
    assert.equal(e.payload.message, 'Subscription limit reached');
    c.send({ type: 'QUERY_SUB', payload: { queryId: 'q3', mapName: map, query: {} } });
    assert.equal((await c.waitFor('ERROR')).payload.message, 'Subscription limit reached');
    assert.ok(stat('limits_reached') >= before + 2);
    assert.ok(rows('SELECT queries, limit_hits FROM topgun.connections').some((r) => r.queries === 3 && r.limit_hits >= 2));
    // re-subscribing an existing queryId is a replacement, not a new one
    c.send({ type: 'QUERY_SUB', payload: { queryId: 'q0', mapName: map, query: {} } });
    await c.waitFor('QUERY_RESP');
    // the existing subscriptions keep working, and the other client is unaffected
    await other.sendOps([hlc.putOp(map, 'k', 1, hlc.now('o'))]);
    const u = await c.waitFor((m) => m.type === 'QUERY_UPDATE' && m.payload.key === 'k');
    assert.equal(u.payload.type, 'UPDATE');
    other.send({ type: 'QUERY_SUB', payload: { queryId: 'x', mapName: map, query: {} } });
    await other.waitFor('QUERY_RESP');
  } finally {
    await setGuc('topgun.max_subscriptions_per_connection', null);
    await c.close();
    await other.close();
  }
});

test('query result limit: refused when too large, dropped when it outgrows the bound', async () => {
  const map = hlc.uniqueName('lim-res');
  await setGuc('topgun.max_query_results', 5);
  const c = await Client.authed({ name: 'reader' });
  try {
    const ops = [];
    for (let i = 0; i < 8; i++) ops.push(hlc.putOp(map, `k${i}`, { i }, hlc.now('w')));
    await c.sendOps(ops);
    c.send({ type: 'QUERY_SUB', payload: { queryId: 'all', mapName: map, query: {} } });
    const e = await c.waitFor('ERROR');
    assert.equal(e.payload.code, 413);
    assert.match(e.payload.message, /max_query_results/);
    // with a limit it is fine
    c.send({ type: 'QUERY_SUB', payload: { queryId: 'top', mapName: map, query: { sort: { i: 'desc' }, limit: 2 } } });
    assert.deepEqual((await c.waitFor('QUERY_RESP')).payload.results.map((r) => r.key), ['k7', 'k6']);
    // an unlimited query that grows past the bound is dropped with 413
    c.send({ type: 'QUERY_SUB', payload: { queryId: 'small', mapName: map, query: { where: { big: true } } } });
    await c.waitFor((m) => m.type === 'QUERY_RESP' && m.payload.queryId === 'small');
    const grow = [];
    for (let i = 0; i < 6; i++) grow.push(hlc.putOp(map, `b${i}`, { big: true }, hlc.now('w')));
    await c.sendOps(grow);
    const e2 = await c.waitFor('ERROR');
    assert.equal(e2.payload.code, 413);
    assert.match(e2.payload.message, /small/);
    // the connection is still served
    c.send({ type: 'PING', timestamp: Date.now() });
    await c.waitFor('PONG');
  } finally {
    await setGuc('topgun.max_query_results', null);
    await c.close();
  }
});
