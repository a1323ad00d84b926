'use strict';
// Per-client rate limits (issue 17 item 8; docs/access-control.md "Rate
// limits"): token buckets per connection and per identity for ops/s,
// messages/s and bytes/s.  Over a limit the message is not applied and is
// answered (OP_ACK results success:false "rate limited", OP_REJECTED for a
// CLIENT_OP, typed failures, ERROR 429); a sustained flood is closed with
// 1008; topgun.rate_limits overrides the settings per role; 0 = off.
//
// Buckets refill with time, so every test sizes them to make the outcome
// independent of how fast the machine is: rate 1/s with a bucket of 100 s,
// and a second request that would need tens of seconds of refill.
// The settings and the table are restored at the end (one server for all
// e2e files).
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const env = require('./lib/env');
const hlc = require('./lib/hlc');
const jwt = require('./lib/jwt');
const { psql, rows, lit } = require('./lib/psql');
const { reloadConf, stat, until } = require('./lib/barrier');

const GUCS = ['ops_per_s', 'messages_per_s', 'bytes_per_s', 'identity_ops_per_s',
  'identity_messages_per_s', 'identity_bytes_per_s', 'burst', 'close_after'].map((n) => `topgun.rate_limit_${n}`);

// Set some rate-limit settings (the others back to their defaults), one reload.
async function limits(values) {
  for (const g of GUCS) {
    const short = g.replace('topgun.rate_limit_', '');
    const v = values[short];
    psql(v === undefined ? `ALTER SYSTEM RESET ${g}` : `ALTER SYSTEM SET ${g} = ${lit(String(v))}`);
  }
  await reloadConf();
}

const tokenFor = (id, roles = ['USER']) => jwt.hs256(env.jwtSecret, jwt.defaultClaims({ sub: id, userId: id, roles }));
const connect = (id, roles, name) => Client.authed({ name: name || id, token: tokenFor(id, roles) });

function ops(map, n, prefix = 'k', value = 1) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(hlc.putOp(map, `${prefix}${i}`, value, hlc.now('rl')));
  return out;
}

const keysIn = (map) => Number(psql(`SELECT count(*) FROM topgun.lww WHERE map = ${lit(map)} AND value IS NOT NULL`));
const is429 = (m) => m.type === 'ERROR' && m.payload.code === 429;

// Send a batch; its OP_ACK, and whether every op succeeded / failed "rate limited".
async function batch(c, list) {
  const ack = await c.sendOps(list);
  const results = ack.payload.results;
  assert.equal(results.length, list.length, 'the OP_ACK names every op');
  const r = {
    ok: results.every((x) => x.success === true),
    limited: results.every((x) => x.success === false && x.error === 'rate limited'),
  };
  if (!r.ok && !r.limited) throw new Error(`${c.name}: unexpected OP_ACK results ${JSON.stringify(results).slice(0, 300)}; last messages ${c._tail()}`);
  return r;
}

test.after(async () => {
  psql('DELETE FROM topgun.rate_limits');
  await limits({});
});

test('over the per-connection ops limit: not applied, answered, other clients unaffected', async () => {
  await limits({ ops_per_s: 1, burst: '100s' });
  const id = hlc.uniqueName('rl-ops');
  const map = hlc.uniqueName('rl-ops-map');
  const a = await connect(id);
  const a2 = await connect(id, undefined, 'same identity, other connection');
  const b = await connect(hlc.uniqueName('rl-ops-other'));
  try {
    const statBefore = stat('rate_limited');
    const opsBefore = stat('rate_limited_ops');
    assert.ok((await batch(a, ops(map, 100, 'a-'))).ok, 'a full bucket takes 100 ops');
    const over = await batch(a, ops(map, 50, 'over-'));
    assert.ok(over.limited, 'the next 50 ops (50 s of refill away) are refused');
    const e = await a.waitFor(is429);
    assert.match(e.payload.message, /^Rate limited: over 1 ops\/s per connection$/);
    // a CLIENT_OP gets its OP_REJECTED (and the ERROR 429)
    a.send({ type: 'CLIENT_OP', payload: hlc.putOp(map, 'single', 1, hlc.now('rl')) });
    assert.equal((await a.waitFor('OP_REJECTED')).payload.reason, 'rate limited');
    await a.waitFor(is429);
    // the refused ops were not applied; the admitted ones were
    assert.equal(keysIn(map), 100);
    assert.equal(Number(psql(`SELECT count(*) FROM topgun.lww WHERE map = ${lit(map)} AND (key LIKE 'over%' OR key = 'single')`)), 0);
    // the connection limit is per connection: the same identity's other one, and another client, write
    assert.ok((await batch(a2, ops(map, 100, 'a2-'))).ok);
    assert.ok((await batch(b, ops(map, 100, 'b-'))).ok);
    assert.equal(keysIn(map), 300);
    // a PING is never limited, and the connection stays open
    await a.barrier();
    assert.equal(a.closed, null);
    // counted: per connection and server-wide
    assert.ok(stat('rate_limited') >= statBefore + 2);
    assert.ok(stat('rate_limited_ops') >= opsBefore + 51);
    await until(() => rows('SELECT user_id, rate_limited FROM topgun.connections')
      .some((r) => r.user_id === id && r.rate_limited === 2), 'topgun.connections counts the refusals');
  } finally {
    await a.close();
    await a2.close();
    await b.close();
  }
});

test('over the bytes limit: refused by size', async () => {
  await limits({ bytes_per_s: 2000, burst: '50s' });
  const map = hlc.uniqueName('rl-bytes-map');
  const c = await connect(hlc.uniqueName('rl-bytes'));
  try {
    // 60 KB of a 100 KB bucket, then another 60 KB needs 10 s of refill; a small one fits
    const big = 'x'.repeat(60000);
    assert.ok((await batch(c, [hlc.putOp(map, 'big1', big, hlc.now('rl'))])).ok);
    assert.ok((await batch(c, [hlc.putOp(map, 'big2', big, hlc.now('rl'))])).limited);
    assert.match((await c.waitFor(is429)).payload.message, /^Rate limited: over 2000 bytes\/s per connection$/);
    assert.ok((await batch(c, [hlc.putOp(map, 'small', 1, hlc.now('rl'))])).ok);
    assert.equal(keysIn(map), 2);
  } finally {
    await c.close();
  }
});

test('over the messages limit: ERROR 429, typed failures', async () => {
  await limits({ messages_per_s: 1, burst: '100s' });
  const map = hlc.uniqueName('rl-msg-map');
  const c = await connect(hlc.uniqueName('rl-msg'));
  try {
    // a bucket of 100 messages: they pass, then the first refusal
    let n = 0;
    let refused = null;
    while (!refused && n < 200) {
      const r = await batch(c, [hlc.putOp(map, `m${n}`, n, hlc.now('rl'))]);
      n++;
      if (r.limited) refused = await c.waitFor(is429);
    }
    assert.ok(refused, 'refused within 200 messages');
    assert.match(refused.payload.message, /messages\/s per connection/);
    assert.ok(n > 100 && n < 150, `the bucket held about 100 messages (${n})`);
    // a request with a typed reply gets it as well as the ERROR 429
    c.send({ type: 'LIST_RESOLVERS', requestId: 'lr1' });
    const lr = await c.waitFor('LIST_RESOLVERS_RESPONSE');
    assert.equal(lr.requestId, 'lr1');
    assert.deepEqual(lr.resolvers, []);
    await c.waitFor(is429);
    // a topic message is refused too, answered with ERROR 429 only
    c.send({ type: 'TOPIC_PUB', payload: { topic: 'rl/x', data: 1 } });
    await c.waitFor(is429);
    // m0 .. m(n-2): everything but the refused m(n-1)
    assert.equal(keysIn(map), n - 1);
  } finally {
    await c.close();
  }
});

test('the per-identity bucket is shared by the identity\'s connections, not with other identities', async () => {
  await limits({ identity_ops_per_s: 1, burst: '100s' });
  const id = hlc.uniqueName('rl-ident');
  const map = hlc.uniqueName('rl-ident-map');
  const x1 = await connect(id, undefined, 'x1');
  const x2 = await connect(id, undefined, 'x2');
  const y = await connect(hlc.uniqueName('rl-ident-other'));
  try {
    assert.ok((await batch(x1, ops(map, 100, 'x1-'))).ok);
    // x2 has sent nothing yet, but its identity's bucket is empty
    assert.ok((await batch(x2, ops(map, 50, 'x2-'))).limited);
    assert.match((await x2.waitFor(is429)).payload.message, /^Rate limited: over 1 ops\/s per identity$/);
    assert.ok((await batch(x1, ops(map, 50, 'x1b-'))).limited);
    // another identity has its own
    assert.ok((await batch(y, ops(map, 100, 'y-'))).ok);
    assert.equal(keysIn(map), 200);
    // the bucket outlives a reconnect: a new connection of the identity is still limited
    await x1.close();
    await x2.close();
    const x3 = await connect(id, undefined, 'x3');
    try {
      assert.ok((await batch(x3, ops(map, 50, 'x3-'))).limited, 'reconnecting does not refill the bucket');
    } finally {
      await x3.close();
    }
  } finally {
    await x1.close();
    await x2.close();
    await y.close();
  }
});

test('topgun.rate_limits overrides the settings per role, the most permissive row wins', async () => {
  const bulk = hlc.uniqueName('RL_BULK');
  const slow = hlc.uniqueName('RL_SLOW');
  await limits({ ops_per_s: 1, burst: '100s' });
  // bulk: no ops limit; slow: 1 op/s as the setting (NULL) but no messages limit
  psql(`INSERT INTO topgun.rate_limits (role, ops_per_s, messages_per_s) VALUES (${lit(bulk)}, 0, NULL), (${lit(slow)}, NULL, 0)`);
  const map = hlc.uniqueName('rl-role-map');
  const clients = [];
  try {
    const b = await connect(hlc.uniqueName('rl-role-b'), [bulk]);
    const s = await connect(hlc.uniqueName('rl-role-s'), [slow]);
    const both = await connect(hlc.uniqueName('rl-role-both'), [slow, bulk]);
    const user = await connect(hlc.uniqueName('rl-role-u'), ['USER']);
    clients.push(b, s, both, user);
    for (const c of [b, both]) {
      assert.ok((await batch(c, ops(map, 100, `${c.name}-1-`))).ok);
      assert.ok((await batch(c, ops(map, 100, `${c.name}-2-`))).ok, `${c.name}: no ops limit`);
    }
    for (const c of [s, user]) {
      assert.ok((await batch(c, ops(map, 100, `${c.name}-1-`))).ok);
      assert.ok((await batch(c, ops(map, 50, `${c.name}-2-`))).limited, `${c.name}: the setting applies`);
    }
    // the row goes: a new connection of the role gets the setting again
    psql(`DELETE FROM topgun.rate_limits WHERE role = ${lit(bulk)}`);
    const b2 = await connect(hlc.uniqueName('rl-role-b2'), [bulk]);
    clients.push(b2);
    assert.ok((await batch(b2, ops(map, 100, 'b2-1-'))).ok);
    assert.ok((await batch(b2, ops(map, 50, 'b2-2-'))).limited);
  } finally {
    psql(`DELETE FROM topgun.rate_limits WHERE role IN (${lit(bulk)}, ${lit(slow)})`);
    for (const c of clients) await c.close();
  }
});

test('a sustained flood is answered until it is closed with 1008', async () => {
  await limits({ messages_per_s: 1, burst: '1s', close_after: '1s' });
  const map = hlc.uniqueName('rl-flood-map');
  const c = await connect(hlc.uniqueName('rl-flood'));
  const other = await connect(hlc.uniqueName('rl-flood-other'));
  const closesBefore = stat('rate_limit_closes');
  try {
    let refusals = 0;
    let i = 0;
    // one message at a time, each answered before the next (a refused one
    // with its ERROR 429), until the server closes; the deadline only bounds a failure
    const deadline = Date.now() + 20000;
    while (!c.closed && Date.now() < deadline) {
      let r;
      try {
        r = await batch(c, [hlc.putOp(map, `f${i++}`, 1, hlc.now('rl'))]);
      } catch (e) {
        if (c.closed) break;
        throw e;
      }
      if (r.limited) {
        await c.waitFor(is429);
        refusals++;
      }
    }
    const closed = await c.waitClose(5000);
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'Rate limit exceeded');
    assert.ok(refusals > 0, 'refusals were answered before the close');
    assert.ok(stat('rate_limit_closes') >= closesBefore + 1);
    // everybody else is still served
    assert.ok((await batch(other, [hlc.putOp(map, 'other', 1, hlc.now('rl'))])).ok);
  } finally {
    await c.close();
    await other.close();
  }
});

test('limits 0 = off', async () => {
  await limits({ ops_per_s: 0, messages_per_s: 0, bytes_per_s: 0, identity_ops_per_s: 0,
    identity_messages_per_s: 0, identity_bytes_per_s: 0, burst: '1ms' });
  const map = hlc.uniqueName('rl-off-map');
  const c = await connect(hlc.uniqueName('rl-off'));
  try {
    const before = stat('rate_limited');
    for (let i = 0; i < 5; i++) assert.ok((await batch(c, ops(map, 300, `r${i}-`))).ok);
    await c.expectNone(is429);
    assert.equal(keysIn(map), 1500);
    assert.equal(stat('rate_limited'), before);
  } finally {
    await c.close();
  }
});
