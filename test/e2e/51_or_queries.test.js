'use strict';
// Live queries on OR maps (issue 13 item 4, docs/live.md "OR maps"): a key
// matches when one of its values matches, sorts where the first of its
// matching values (in the query's order) sorts, and its result value is the
// array of all its values.  Checked against an oracle built from the LWW
// query engine (each OR value as its own LWW record; the first record of each
// OR key in the LWW result order is where that key sorts), with and without
// field indexes on the OR map, which are really used.  Live: a value that
// starts or stops matching moves its key in or out, and a write reaches only
// the subscriptions it can affect.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, lit } = require('./lib/psql');
const { until } = require('./lib/barrier');

const resp = (qid) => (m) => (m.type === 'QUERY_RESP' && m.payload.queryId === qid) ||
  (m.type === 'ERROR');
const stat = (name) => Number(psql(`SELECT value FROM topgun.worker_stats WHERE name = ${lit(name)}`));

const A_VALUES = [0, 1, 2, 5, 5.5, 7, 10, -3, '5', '10', '7', 'abc', '', true, false, [5], { x: 1 }, undefined];
const N_VALUES = [3, 1, 2, 2.5, -1, 0, 10, '2', '10', 'x', true, [2], undefined];

// 150 keys (fixed-length ASCII, so "key~j" sorts by key first), 1..3 values
// each; some values are not objects.
function corpus() {
  const keys = [];
  for (let i = 0; i < 150; i++) {
    const key = `o${String((i * 61) % 150).padStart(3, '0')}`;
    const values = [];
    for (let j = 0; j <= i % 3; j++) {
      const t = i * 3 + j;
      if (t % 17 === 5) { values.push(t % 2 ? 'plain' : 42); continue; }
      const v = { i: t, s: ['red', 'green', 'blue'][(i + j) % 3] };
      const a = A_VALUES[(i * 7 + j * 5) % A_VALUES.length];
      const n = N_VALUES[(i + j * 4) % N_VALUES.length];
      if (a !== undefined) v.a = a;
      if (n !== undefined) v.n = n;
      values.push(v);
    }
    keys.push([key, values]);
  }
  return keys;
}

const QUERIES = [
  {},
  { where: { a: 5 } },
  { where: { a: '7' } },
  { where: { s: 'red' } },
  { where: { s: 'red', a: 1 } },
  { where: { a: { $gt: 2, $lt: 10 } } },
  { where: { a: { $ne: 5 } } },
  { predicate: { op: 'gte', attribute: 'a', value: 5 } },
  { predicate: { op: 'or', children: [{ op: 'eq', attribute: 'a', value: 5 }, { op: 'eq', attribute: 's', value: 'blue' }] } },
  { predicate: { op: 'not', children: [{ op: 'eq', attribute: 's', value: 'red' }] } },
  { predicate: { op: 'like', attribute: 'a', value: '1%' } },
  { sort: { n: 'asc' }, limit: 10 },
  { sort: { n: 'desc' }, limit: 10 },
  { sort: { a: 'asc' }, limit: 7 },
  { sort: { a: 'desc' }, limit: 7 },
  { where: { s: 'green' }, sort: { n: 'asc' }, limit: 6 },
  { where: { s: 'green' }, sort: { n: 'desc' }, limit: 6 },
  { where: { a: 5 }, sort: { n: 'asc' }, limit: 3 },
  { where: { a: 5 }, sort: { n: 'desc' }, limit: 3 },
  { where: { a: { $gt: 1 } }, sort: { a: 'asc' }, limit: 4 },
  { sort: { n: 'asc', s: 'desc' }, limit: 12 },
  { where: { s: 'blue' }, sort: { n: 'asc' } },
];

let seq = 0;
async function page(c, map, query) {
  const qid = `oq${++seq}`;
  c.send({ type: 'QUERY_SUB', payload: { queryId: qid, mapName: map, query } });
  const r = await c.waitFor(resp(qid), 15000);
  assert.equal(r.type, 'QUERY_RESP', `query ${JSON.stringify(query)}: ${JSON.stringify(r.payload)}`);
  c.send({ type: 'QUERY_UNSUB', payload: { queryId: qid } });
  return r.payload;
}

// Every page, following nextCursor to the end.
async function pages(c, map, query) {
  const out = [];
  let q = query;
  for (let guard = 0; guard < 100; guard++) {
    const p = await page(c, map, q);
    out.push({ keys: p.results.map((x) => x.key), values: p.results.map((x) => x.value), hasMore: p.hasMore });
    if (!p.hasMore || !p.nextCursor) break;
    q = { ...query, cursor: p.nextCursor };
  }
  return out;
}

// The definition, through the LWW engine: every OR value as record "key~j".
async function oracle(c, flat, query) {
  const { limit, ...rest } = query;
  const p = await page(c, flat, rest);
  const keys = [];
  for (const r of p.results) {
    const k = r.key.split('~')[0];
    if (!keys.includes(k)) keys.push(k);
  }
  return limit === undefined ? { keys, hasMore: undefined } : { keys: keys.slice(0, limit), hasMore: keys.length > limit };
}

function orScans(map) {
  psql('SELECT pg_stat_force_next_flush()');
  return Number(psql(`SELECT coalesce(sum(s.idx_scan), 0) FROM topgun.field_indexes i
    JOIN pg_stat_user_indexes s ON s.indexrelname = i.or_index WHERE i.map = ${lit(map)}`));
}

test('OR-map query pages: a key matches by any value, sorts by its first match; identical with and without indexes', async () => {
  const map = hlc.uniqueName('orq');
  const flat = hlc.uniqueName('orqflat');
  const w = await Client.authed({ name: 'writer' });
  const c = await Client.authed({ name: 'reader' });
  const all = async () => {
    const out = [];
    for (const q of QUERIES) out.push(await pages(c, map, q));
    return out;
  };
  try {
    const recs = corpus();
    const orOps = [];
    const flatOps = [];
    for (const [k, vs] of recs) {
      vs.forEach((v, j) => {
        orOps.push(hlc.orAddOp(map, k, v, hlc.now('w')));
        flatOps.push(hlc.putOp(flat, `${k}~${j}`, v, hlc.now('w')));
      });
    }
    for (let i = 0; i < orOps.length; i += 70) {
      await w.sendOps(orOps.slice(i, i + 70));
      await w.sendOps(flatOps.slice(i, i + 70));
    }
    const none = await all();
    const valuesOf = new Map(recs.map(([k]) => [k, JSON.parse(psql(
      `SELECT coalesce(jsonb_agg(v), '[]') FROM topgun.or_get(${lit(map)}, ${lit(k)}) v`))]));
    for (let i = 0; i < QUERIES.length; i++) {
      const q = JSON.stringify(QUERIES[i]);
      const want = await oracle(c, flat, QUERIES[i]);
      assert.deepEqual(none[i][0].keys, want.keys, `query ${q}: keys`);
      assert.equal(none[i][0].hasMore, want.hasMore, `query ${q}: hasMore`);
      for (const p of none[i]) {
        p.values.forEach((v, j) => assert.deepEqual(v, valuesOf.get(p.keys[j]), `query ${q}: values of ${p.keys[j]}`));
      }
    }
    // the corpus is not trivial: matches and non-matches, full and partial pages
    assert.equal(none[0][0].keys.length, 150);
    assert.ok(none[1][0].keys.length >= 5 && none[1][0].keys.length < 50, JSON.stringify(none[1][0].keys));
    assert.ok(none.filter((p) => p.length >= 2).length >= 5);

    psql(`SELECT topgun.create_index(${lit(map)}, 'a'), topgun.create_index(${lit(map)}, 'n'),
                 topgun.create_index(${lit(map)}, 's')`);
    for (const f of ['a', 'n', 's']) assert.equal(psql(`CALL topgun.index_wait(${lit(map)}, ${lit(f)})`), 'ready');
    const scans0 = orScans(map);
    const single = await all();
    await until(() => orScans(map) > scans0, 'the OR pages were read through the field indexes', 15000);
    psql(`SELECT topgun.create_index(${lit(map)}, ARRAY['a', 'n']), topgun.create_index(${lit(map)}, ARRAY['s', 'n'])`);
    assert.equal(psql(`CALL topgun.index_wait(${lit(map)}, ARRAY['a', 'n'])`), 'ready');
    assert.equal(psql(`CALL topgun.index_wait(${lit(map)}, ARRAY['s', 'n'])`), 'ready');
    const pairs = await all();
    for (let i = 0; i < QUERIES.length; i++) {
      const q = JSON.stringify(QUERIES[i]);
      assert.deepEqual(single[i], none[i], `query ${q} differs with one-field indexes`);
      assert.deepEqual(pairs[i], none[i], `query ${q} differs with two-field indexes`);
    }
  } finally {
    w.close();
    c.close();
  }
});

test('OR-map live queries: a value that starts or stops matching moves its key; null is a value', async () => {
  const map = hlc.uniqueName('orl');
  const w = await Client.authed({ name: 'writer' });
  const s = await Client.authed({ name: 'subscriber' });
  const upd = (qid, key, type) => (m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === qid &&
    m.payload.key === key && m.payload.type === type;
  try {
    const t1 = hlc.now('w');
    await w.sendOps([hlc.orAddOp(map, 'x', { owner: 'u2', n: 1 }, t1), hlc.orAddOp(map, 'nul', null, hlc.now('w'))]);
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'u1', mapName: map, query: { where: { owner: 'u1' } } } });
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'all', mapName: map, query: {} } });
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'top', mapName: map, query: { where: { n: { $gte: 0 } }, sort: { n: 'desc' }, limit: 1 } } });
    assert.deepEqual((await s.waitFor(resp('u1'))).payload.results, []);
    assert.deepEqual((await s.waitFor(resp('all'))).payload.results,
      [{ key: 'nul', value: [null] }, { key: 'x', value: [{ owner: 'u2', n: 1 }] }]);
    assert.deepEqual((await s.waitFor(resp('top'))).payload.results.map((r) => r.key), ['x']);

    // a second value of x matches u1: x enters with both values
    const t2 = hlc.now('w');
    await w.sendOps([hlc.orAddOp(map, 'x', { owner: 'u1', n: 5 }, t2)]);
    const enter = await s.waitFor(upd('u1', 'x', 'UPDATE'));
    assert.deepEqual(enter.payload.value, [{ owner: 'u2', n: 1 }, { owner: 'u1', n: 5 }]);
    // a key whose best value (n 9) beats x's (n 5) takes the limited page
    await w.sendOps([hlc.orAddOp(map, 'y', { owner: 'u3', n: 9 }, hlc.now('w'))]);
    await s.waitFor(upd('top', 'y', 'UPDATE'));
    await s.waitFor(upd('top', 'x', 'REMOVE'));
    // the matching value goes: x leaves u1 (its other value still does not match)
    await w.sendOps([hlc.orRemoveOp(map, 'x', hlc.tagOf(t2), hlc.now('w'))]);
    await s.waitFor(upd('u1', 'x', 'REMOVE'));
    // 'all' keeps x, with the one value left
    await s.waitFor((m) => upd('all', 'x', 'UPDATE')(m) && m.payload.value.length === 1 &&
      m.payload.value[0].owner === 'u2');
    // its last value goes: x leaves every subscription
    await w.sendOps([hlc.orRemoveOp(map, 'x', hlc.tagOf(t1), hlc.now('w'))]);
    await s.waitFor(upd('all', 'x', 'REMOVE'));
    await s.barrier();
    const u1 = s.log.filter((m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === 'u1').map((m) => `${m.payload.type} ${m.payload.key}`);
    assert.deepEqual(u1, ['UPDATE x', 'REMOVE x']);
  } finally {
    w.close();
    s.close();
  }
});

test('an OR-map write reaches only the subscriptions its values can affect', async () => {
  const map = hlc.uniqueName('ors');
  const w = await Client.authed({ name: 'writer' });
  const s = await Client.authed({ name: 'subscriber' });
  try {
    await w.sendOps([hlc.orAddOp(map, 'seed', { owner: 'nobody' }, hlc.now('w'))]);
    const N = 200;
    for (let i = 0; i < N; i++) {
      s.send({ type: 'QUERY_SUB', payload: { queryId: `o${i}`, mapName: map, query: { where: { owner: `u${i}` } } } });
    }
    for (let i = 0; i < N; i++) await s.waitFor(resp(`o${i}`));
    const upd = (qid, key, type) => (m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === qid &&
      m.payload.key === key && m.payload.type === type;
    let c0 = stat('query_candidates');
    const t = hlc.now('w');
    await w.sendOps([hlc.orAddOp(map, 'k', { owner: 'u7' }, t), hlc.orAddOp(map, 'k', { owner: 'u9' }, hlc.now('w'))]);
    await s.waitFor(upd('o7', 'k', 'UPDATE'));
    await s.waitFor(upd('o9', 'k', 'UPDATE'));
    assert.ok(stat('query_candidates') - c0 <= 4, `two values looked at ${stat('query_candidates') - c0} subscriptions`);
    c0 = stat('query_candidates');
    await w.sendOps([hlc.orRemoveOp(map, 'k', hlc.tagOf(t), hlc.now('w'))]);
    await s.waitFor(upd('o7', 'k', 'REMOVE'));
    assert.ok(stat('query_candidates') - c0 <= 3, `the remove looked at ${stat('query_candidates') - c0} subscriptions`);
    await s.barrier();
    const others = s.log.filter((m) => m.type === 'QUERY_UPDATE' && !['o7', 'o9'].includes(m.payload.queryId));
    assert.deepEqual(others, []);
  } finally {
    w.close();
    s.close();
  }
});
