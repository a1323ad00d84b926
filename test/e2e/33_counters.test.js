'use strict';
// PN counters over the wire (issue 5): COUNTER_REQUEST / COUNTER_SYNC /
// COUNTER_RESPONSE / COUNTER_UPDATE backed by the persistent SQL counter;
// both state shapes accepted, {p, n, positive, negative} emitted; SQL
// changes pushed; clients converge.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client } = require('./lib/client');
const { psql, lit } = require('./lib/psql');

const upd = (name) => (m) => m.type === 'COUNTER_UPDATE' && m.payload.name === name;
const value = (st) => Object.values(st.positive).reduce((a, b) => a + b, 0) - Object.values(st.negative).reduce((a, b) => a + b, 0);

test('counters converge across clients and SQL', async () => {
  const name = `likes-${crypto.randomBytes(4).toString('hex')}`;
  const a = await Client.authed({ name: 'a' });
  const b = await Client.authed({ name: 'b' });
  try {
    a.send({ type: 'COUNTER_REQUEST', payload: { name } });
    const r = await a.waitFor('COUNTER_RESPONSE');
    assert.equal(r.payload.name, name);
    assert.deepEqual(r.payload.state, { p: {}, n: {}, positive: {}, negative: {} });

    // client shape {positive, negative}
    b.send({ type: 'COUNTER_SYNC', payload: { name, state: { positive: { nodeB: 5 }, negative: { nodeB: 1 } } } });
    const ua = await a.waitFor(upd(name));
    const ub = await b.waitFor(upd(name));        // the sender gets it too
    for (const u of [ua, ub]) {
      assert.deepEqual(u.payload.state.positive, { nodeB: 5 });
      assert.deepEqual(u.payload.state.p, { nodeB: 5 });
      assert.deepEqual(u.payload.state.negative, { nodeB: 1 });
      assert.deepEqual(u.payload.state.n, { nodeB: 1 });
    }
    // server shape {p, n}; a stale state does not lower anything (max-merge)
    a.send({ type: 'COUNTER_SYNC', payload: { name, state: { p: { nodeA: 2, nodeB: 3 }, n: {} } } });
    const u2 = await b.waitFor(upd(name));
    assert.deepEqual(u2.payload.state.positive, { nodeA: 2, nodeB: 5 });
    assert.equal(value(u2.payload.state), 6);
    assert.equal(psql(`SELECT topgun.counter_value(${lit(name)})`), '6');

    // SQL change → both subscribers
    psql(`SELECT topgun.counter_add(${lit(name)}, 10)`);
    const [sa, sb] = [await a.waitFor((m) => upd(name)(m) && value(m.payload.state) === 16, 5000),
      await b.waitFor((m) => upd(name)(m) && value(m.payload.state) === 16, 5000)];
    assert.deepEqual(sa.payload.state, sb.payload.state);

    // a fresh client reads the persisted state
    const c = await Client.authed({ name: 'c' });
    c.send({ type: 'COUNTER_REQUEST', payload: { name } });
    assert.equal(value((await c.waitFor('COUNTER_RESPONSE')).payload.state), 16);
    await c.close();
  } finally {
    await a.close();
    await b.close();
  }
});
