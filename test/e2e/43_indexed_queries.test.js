'use strict';
// Field indexes and live queries (issue 13): QUERY_SUB answers exactly the
// same pages with and without topgun.create_index on the fields it filters
// and sorts by — on a corpus of mixed types (numbers vs numeric strings,
// null, booleans, missing fields, arrays, objects) where JS semantics and
// jsonb order disagree — the index is really used, cursor pages continue by
// keyset, and a limited subscription follows writes in and out of its page.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, lit } = require('./lib/psql');
const { until } = require('./lib/barrier');

const resp = (qid) => (m) => (m.type === 'QUERY_RESP' && m.payload.queryId === qid) ||
  (m.type === 'ERROR');

const A_VALUES = [0, -0, 1, 2, 5, 5.5, 7, 10, -3, 1e6, -1e-9, 2 ** 53, '5', '10', '7', 'abc', '', ' 7 ',
  null, true, false, [], [5], [1, 2], ['7'], {}, { x: 1 }, undefined];

function corpus() {
  const recs = [];
  for (let i = 0; i < 240; i++) {
    const v = { n: (i * 37) % 240, s: ['red', 'green', 'blue', 'Red'][i % 4], i };
    const a = A_VALUES[i % A_VALUES.length];
    if (a !== undefined) v.a = a;
    if (i % 11 === 0) v.n = String(v.n);     // some sort values are strings
    if (i % 13 === 0) delete v.n;            // and some are missing
    recs.push([`k${String(i).padStart(3, '0')}${i % 5 === 0 ? '\u00e9' : ''}`, v]);
  }
  return recs;
}

const QUERIES = [
  { where: { a: 5 } },
  { where: { a: 7 } },
  { where: { a: '7' } },
  { where: { a: null } },
  { where: { a: true } },
  { where: { a: 0 } },
  { where: { s: 'red' } },
  { where: { a: { $gt: 5 } } },
  { where: { a: { $gte: 5 } } },
  { where: { a: { $lt: 5 } } },
  { where: { a: { $lte: 0 } } },
  { where: { a: { $gt: 2, $lt: 10 } } },
  { where: { a: { $ne: 5 } } },
  { predicate: { op: 'gt', attribute: 'a', value: -1 } },
  { predicate: { op: 'or', children: [{ op: 'eq', attribute: 'a', value: 5 }, { op: 'eq', attribute: 'a', value: '5' }, { op: 'eq', attribute: 's', value: 'blue' }] } },
  { predicate: { op: 'and', children: [{ op: 'lte', attribute: 'a', value: 10 }, { op: 'not', children: [{ op: 'eq', attribute: 's', value: 'red' }] }] } },
  { predicate: { op: 'or', children: [{ op: 'eq', attribute: 'a', value: 1 }, { op: 'like', attribute: 's', value: 'gr%' }] } },
  { where: { s: 'green' }, sort: { n: 'asc' }, limit: 7 },
  { where: { s: 'green' }, sort: { n: 'desc' }, limit: 7 },
  { sort: { n: 'asc' }, limit: 10 },
  { sort: { n: 'desc' }, limit: 10 },
  { sort: { a: 'asc' }, limit: 9 },
  { sort: { a: 'desc' }, limit: 9 },
  { where: { a: { $gt: 1 } }, sort: { a: 'asc' }, limit: 4 },
  { sort: { n: 'asc', s: 'desc' }, limit: 25 },
  { where: { s: 'blue' }, sort: { n: 'asc' } },
  { predicate: { op: 'like', attribute: 'a', value: '1%' } },
  { predicate: { op: 'like', attribute: 'a', value: ' 7%' } },
  { predicate: { op: 'and', children: [{ op: 'like', attribute: 'a', value: '1_' }, { op: 'eq', attribute: 's', value: 'red' }] } },
  { predicate: { op: 'like', attribute: 'a', value: '1*0' } },
];

let seq = 0;
// Every page of a query, following nextCursor to the end.
async function pages(c, map, query) {
  const out = [];
  let q = query;
  for (let guard = 0; guard < 100; guard++) {
    const qid = `iq${++seq}`;
    c.send({ type: 'QUERY_SUB', payload: { queryId: qid, mapName: map, query: q } });
    const r = await c.waitFor(resp(qid), 15000);
    assert.equal(r.type, 'QUERY_RESP', `query ${JSON.stringify(q)}: ${JSON.stringify(r.payload)}`);
    c.send({ type: 'QUERY_UNSUB', payload: { queryId: qid } });
    out.push({ keys: r.payload.results.map((x) => x.key), values: r.payload.results.map((x) => x.value),
      hasMore: r.payload.hasMore });
    if (!r.payload.hasMore || !r.payload.nextCursor) break;
    q = { ...query, cursor: r.payload.nextCursor };
  }
  return out;
}

function idxScans(map) {
  psql('SELECT pg_stat_force_next_flush()');
  return Number(psql(`SELECT coalesce(sum(s.idx_scan), 0) FROM topgun.field_indexes i
    JOIN pg_stat_user_indexes s ON s.indexrelname = i.lww_index WHERE i.map = ${lit(map)}`));
}

const stat = (name) => Number(psql(`SELECT value FROM topgun.worker_stats WHERE name = ${lit(name)}`));

// Equality on `a` + sort on `n`: every value type on both sides, and ties on
// n inside an equality group (keys with non-ASCII letters: UTF-16 order).
const EQ_VALUES = [5, '5', null, true, 'red', 0, [5]];
const N_VALUES = [3, 1, 2, 2.5, -1, 0, 10, 2 ** 53, -(2 ** 53), '2', '10', 'x', '', null, true, false, [], [2],
  [1, 2], { y: 1 }, undefined];

function pairCorpus() {
  const recs = [];
  for (let i = 0; i < 420; i++) {
    const v = { i, b: i % 3 };
    const a = EQ_VALUES[i % EQ_VALUES.length];
    const n = N_VALUES[Math.floor(i / EQ_VALUES.length) % N_VALUES.length];
    if (i % 23 !== 0) v.a = a;               // some records have no a
    if (n !== undefined) v.n = n;
    recs.push([`p${String((i * 7919) % 420).padStart(3, '0')}${i % 4 === 0 ? '\u00e9' : i % 9 === 0 ? 'Z' : ''}`, v]);
  }
  return recs;
}

const PAIR_QUERIES = [
  { where: { a: 5 }, sort: { n: 'asc' }, limit: 4 },
  { where: { a: 5 }, sort: { n: 'desc' }, limit: 4 },
  { where: { a: '5' }, sort: { n: 'asc' }, limit: 7 },
  { where: { a: null }, sort: { n: 'desc' }, limit: 5 },
  { where: { a: true }, sort: { n: 'asc', i: 'desc' }, limit: 6 },
  { where: { a: 'red' }, sort: { n: 'desc', _key: 'asc' }, limit: 3 },
  { where: { a: 0 }, sort: { n: 'desc' }, limit: 1 },
  { where: { a: 'red', b: 1 }, sort: { n: 'asc' }, limit: 3 },
  { where: { a: 5, n: { $gt: 1 } }, sort: { n: 'asc' }, limit: 2 },
  { predicate: { op: 'and', children: [{ op: 'or', children: [{ op: 'eq', attribute: 'b', value: 0 },
    { op: 'eq', attribute: 'b', value: 2 }] }, { op: 'and', children: [{ op: 'eq', attribute: 'a', value: true }] }] },
  sort: { n: 'desc' }, limit: 4 },
  { where: { a: 5 }, sort: { i: 'asc' }, limit: 5 },            // sort field not paired: another path
  { where: { a: [5] }, sort: { n: 'asc' }, limit: 3 },           // an array never === : no matches
  { where: { a: 5.5 }, sort: { n: 'asc' }, limit: 3 },
];

test('equality + sort + limit pages are identical through a two-field index, one-field indexes and none', async () => {
  const map = hlc.uniqueName('iqp');
  const w = await Client.authed({ name: 'writer' });
  const c = await Client.authed({ name: 'reader' });
  const all = async () => {
    const out = [];
    for (const q of PAIR_QUERIES) out.push(await pages(c, map, q));
    return out;
  };
  const wait = (fields) => assert.equal(psql(`CALL topgun.index_wait(${lit(map)}, ${fields})`), 'ready');
  try {
    const recs = pairCorpus();
    for (let i = 0; i < recs.length; i += 70) {
      await w.sendOps(recs.slice(i, i + 70).map(([k, v]) => hlc.putOp(map, k, v, hlc.now('w'))));
    }
    const none = await all();
    // the corpus pages: several pages per group, hasMore, and empty groups
    assert.ok(none.filter((p) => p.length >= 3).length >= 6, JSON.stringify(none.map((p) => p.length)));
    assert.deepEqual(none[11], [{ keys: [], values: [], hasMore: false }]);

    psql(`SELECT topgun.create_index(${lit(map)}, 'a'), topgun.create_index(${lit(map)}, 'n')`);
    wait("'a'");
    wait("'n'");
    const single = await all();
    psql(`SELECT topgun.create_index(${lit(map)}, ARRAY['a', 'n'])`);
    wait("ARRAY['a', 'n']");
    const both = await all();
    psql(`SELECT topgun.drop_index(${lit(map)}, 'a'), topgun.drop_index(${lit(map)}, 'n')`);
    assert.equal(psql(`CALL topgun.index_wait(${lit(map)}, 'a')`), '');
    assert.equal(psql(`CALL topgun.index_wait(${lit(map)}, 'n')`), '');
    assert.equal(psql(`SELECT string_agg(field, ';') FROM topgun.indexes WHERE map = ${lit(map)}`), 'a, n');
    const pairOnly = await all();
    for (let i = 0; i < PAIR_QUERIES.length; i++) {
      const q = JSON.stringify(PAIR_QUERIES[i]);
      assert.deepEqual(single[i], none[i], `query ${q} differs with the one-field indexes`);
      assert.deepEqual(both[i], none[i], `query ${q} differs with the two-field index`);
      assert.deepEqual(pairOnly[i], none[i], `query ${q} differs with only the two-field index`);
    }
  } finally {
    w.close();
    c.close();
  }
});

test('a page of one equality group is read from the two-field index: candidates per page ~ the page', async () => {
  const map = hlc.uniqueName('iqc');
  const c = await Client.authed({ name: 'reader' });
  try {
    psql(`SELECT count(*) FROM topgun.lww_put_many(array_fill(${lit(map)}::text, ARRAY[20000]),
      (SELECT array_agg('k' || n ORDER BY n) FROM generate_series(0, 19999) n),
      (SELECT array_agg(jsonb_build_object('n', n, 'cat', n % 100) ORDER BY n) FROM generate_series(0, 19999) n),
      (SELECT array_agg(topgun.hlc(1700000000000 + n, 0, 'load') ORDER BY n) FROM generate_series(0, 19999) n))`);
    const q = { where: { cat: 7 }, sort: { n: 'desc' }, limit: 5 };
    // candidates the readers looked at for the first page and the page after it
    const examined = async () => {
      const r0 = stat('query_page_rows');
      const p = await pages(c, map, q);
      return { first: p.slice(0, 2), rows: stat('query_page_rows') - r0, n: p.length };
    };
    psql(`SELECT topgun.create_index(${lit(map)}, 'n')`);
    assert.equal(psql(`CALL topgun.index_wait(${lit(map)}, 'n')`), 'ready');
    const byN = await examined();
    psql(`SELECT topgun.create_index(${lit(map)}, ARRAY['cat', 'n'])`);
    assert.equal(psql(`CALL topgun.index_wait(${lit(map)}, ARRAY['cat', 'n'])`), 'ready');
    const byPair = await examined();
    assert.deepEqual(byPair.first, byN.first);
    assert.deepEqual(byPair.first[0].keys, ['k19907', 'k19807', 'k19707', 'k19607', 'k19507']);
    assert.equal(byPair.n, 40);
    // through n alone each page walks ~100 records per match; through (cat, n) only the page:
    // limit + 1 (is there more?), the cursor's own record (the keyset is inclusive) and a tie
    assert.ok(byN.rows > 40 * 100, `n index: ${byN.rows} candidates for 40 pages`);
    assert.ok(byPair.rows <= 40 * (q.limit + 3), `(cat, n) index: ${byPair.rows} candidates for 40 pages (n index: ${byN.rows})`);
  } finally {
    c.close();
  }
});

test('pages are identical with and without field indexes, on mixed types; the indexes are used', async () => {
  const map = hlc.uniqueName('iq');
  const w = await Client.authed({ name: 'writer' });
  const c = await Client.authed({ name: 'reader' });
  try {
    const recs = corpus();
    for (let i = 0; i < recs.length; i += 60) {
      await w.sendOps(recs.slice(i, i + 60).map(([k, v]) => hlc.putOp(map, k, v, hlc.now('w'))));
    }
    const before = [];
    for (const q of QUERIES) before.push(await pages(c, map, q));
    // sanity: the corpus exercises every case (not all empty, some paged)
    assert.ok(before.filter((p) => p[0].keys.length > 0).length >= QUERIES.length - 1);
    assert.ok(before.some((p) => p.length > 3));

    psql(`SELECT topgun.create_index(${lit(map)}, 'a'), topgun.create_index(${lit(map)}, 'n'),
                 topgun.create_index(${lit(map)}, 's', 'hash')`);
    await until(() => psql(`SELECT count(*) FILTER (WHERE state = 'ready') FROM topgun.indexes
      WHERE map = ${lit(map)}`) === '3', 'the three indexes are built', 60000);
    psql('SELECT pg_stat_clear_snapshot()');
    const scans0 = idxScans(map);
    for (let i = 0; i < QUERIES.length; i++) {
      const after = await pages(c, map, QUERIES[i]);
      assert.deepEqual(after, before[i], `query ${JSON.stringify(QUERIES[i])} differs with indexes`);
    }
  } finally {
    w.close();
    c.close();
  }
});

test('a limited subscription on an indexed sort field follows writes into, within and out of its page', async () => {
  const map = hlc.uniqueName('iql');
  const w = await Client.authed({ name: 'writer' });
  const s = await Client.authed({ name: 'subscriber' });
  try {
    const ops = [];
    for (let i = 0; i < 50; i++) ops.push(hlc.putOp(map, `k${i}`, { n: i * 10, cat: i % 2 }, hlc.now('w')));
    await w.sendOps(ops);
    psql(`SELECT topgun.create_index(${lit(map)}, 'n')`);
    await until(() => psql(`SELECT state FROM topgun.indexes WHERE map = ${lit(map)}`) === 'ready',
      'the index is built', 60000);
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'lim', mapName: map,
      query: { where: { cat: 0 }, sort: { n: 'asc' }, limit: 3 } } });
    const r = await s.waitFor(resp('lim'));
    assert.deepEqual(r.payload.results.map((x) => x.key), ['k0', 'k2', 'k4']);
    assert.equal(r.payload.hasMore, true);
    const upd = (key, type) => (m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === 'lim' &&
      m.payload.key === key && m.payload.type === type;

    // a write after the page's boundary changes nothing the subscriber holds
    await w.sendOps([hlc.putOp(map, 'k40', { n: 401, cat: 0 }, hlc.now('w'))]);
    // a write into the page: k5 enters, k4 (the old boundary) leaves
    await w.sendOps([hlc.putOp(map, 'k5', { n: 15, cat: 0 }, hlc.now('w'))]);
    await s.waitFor(upd('k5', 'UPDATE'));
    await s.waitFor(upd('k4', 'REMOVE'));
    // a member leaves: the page refills from past its boundary (k4 again)
    await w.sendOps([hlc.putOp(map, 'k0', { n: 0, cat: 1 }, hlc.now('w'))]);
    await s.waitFor(upd('k0', 'REMOVE'));
    await s.waitFor(upd('k4', 'UPDATE'));
    // a member changes in place
    await w.sendOps([hlc.putOp(map, 'k2', { n: 21, cat: 0, x: 1 }, hlc.now('w'))]);
    const u = await s.waitFor(upd('k2', 'UPDATE'));
    assert.deepEqual(u.payload.value, { n: 21, cat: 0, x: 1 });
    await s.barrier();
    const seen = s.log.filter((m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === 'lim')
      .map((m) => `${m.payload.type} ${m.payload.key}`);
    assert.ok(!seen.some((x) => x.endsWith(' k40')), `k40 is outside the page: ${seen}`);
  } finally {
    w.close();
    s.close();
  }
});

test('on a 20,000-record map, equality and sort + limit pages are read through the indexes', async () => {
  const map = hlc.uniqueName('iqb');
  const c = await Client.authed({ name: 'reader' });
  try {
    psql(`SELECT count(*) FROM topgun.lww_put_many(array_fill(${lit(map)}::text, ARRAY[20000]),
      (SELECT array_agg('k' || n ORDER BY n) FROM generate_series(0, 19999) n),
      (SELECT array_agg(jsonb_build_object('n', n, 'cat', n % 100) ORDER BY n) FROM generate_series(0, 19999) n),
      (SELECT array_agg(topgun.hlc(1700000000000 + n, 0, 'load') ORDER BY n) FROM generate_series(0, 19999) n))`);
    const eq = { where: { cat: 7 }, sort: { n: 'desc' }, limit: 5 };
    const top = { sort: { n: 'desc' }, limit: 3 };
    const eqBefore = await pages(c, map, { ...eq, limit: 50 });
    const topBefore = (await pages(c, map, top)).slice(0, 4);
    psql(`SELECT topgun.create_index(${lit(map)}, 'cat'), topgun.create_index(${lit(map)}, 'n')`);
    await until(() => psql(`SELECT count(*) FILTER (WHERE state = 'ready') FROM topgun.indexes
      WHERE map = ${lit(map)}`) === '2', 'the indexes are built', 60000);
    psql('ANALYZE topgun.lww');
    const scans0 = idxScans(map);
    const eqAfter = await pages(c, map, { ...eq, limit: 50 });
    assert.deepEqual(eqAfter, eqBefore);
    assert.equal(eqAfter.flatMap((p) => p.keys).length, 200);
    assert.deepEqual(eqAfter[0].keys.slice(0, 3), ['k19907', 'k19807', 'k19707']);
    const topAfter = (await pages(c, map, top));
    assert.deepEqual(topAfter.slice(0, 4), topBefore);
    assert.deepEqual(topAfter[1].keys, ['k19996', 'k19995', 'k19994']);
    await until(() => idxScans(map) > scans0, 'the pages were read through the field indexes', 15000);
  } finally {
    c.close();
  }
});


test('a write reaches only the subscriptions it can affect; memory per subscription is reported', async () => {
  const map = hlc.uniqueName('iqs');
  const w = await Client.authed({ name: 'writer' });
  const s = await Client.authed({ name: 'subscriber' });
  try {
    await w.sendOps([hlc.putOp(map, 'seed', { owner: 'nobody', v: 0 }, hlc.now('w'))]);
    const subs0 = stat('query_subscriptions');
    const bytes0 = stat('query_subscription_bytes');
    const N = 300;
    for (let i = 0; i < N; i++) {
      s.send({ type: 'QUERY_SUB', payload: { queryId: `o${i}`, mapName: map, query: { where: { owner: `u${i}` } } } });
    }
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'all', mapName: map, query: { where: { v: { $gte: 0 } } } } });
    for (let i = 0; i < N; i++) await s.waitFor(resp(`o${i}`));
    await s.waitFor(resp('all'));
    assert.equal(stat('query_subscriptions') - subs0, N + 1);
    const perSub = (stat('query_subscription_bytes') - bytes0) / (N + 1);
    assert.ok(perSub > 0 && perSub < 2048, `bytes per idle subscription: ${perSub}`);

    const upd = (qid, key, type) => (m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === qid &&
      m.payload.key === key && m.payload.type === type;
    let c0 = stat('query_candidates');
    await w.sendOps([hlc.putOp(map, 'k1', { owner: 'u7', v: 1 }, hlc.now('w'))]);
    await s.waitFor(upd('o7', 'k1', 'UPDATE'));
    await s.waitFor(upd('all', 'k1', 'UPDATE'));
    assert.ok(stat('query_candidates') - c0 <= 2, `a write to u7 looked at ${stat('query_candidates') - c0} subscriptions`);

    // the record moves from u7 to u9: u7's subscription hears of it without the old value
    c0 = stat('query_candidates');
    await w.sendOps([hlc.putOp(map, 'k1', { owner: 'u9', v: 2 }, hlc.now('w'))]);
    await s.waitFor(upd('o7', 'k1', 'REMOVE'));
    await s.waitFor(upd('o9', 'k1', 'UPDATE'));
    assert.ok(stat('query_candidates') - c0 <= 3, `the move looked at ${stat('query_candidates') - c0} subscriptions`);
    // and a delete reaches its holders only
    await w.sendOps([hlc.removeOp(map, 'k1', hlc.now('w'))]);
    await s.waitFor(upd('o9', 'k1', 'REMOVE'));
    await s.waitFor(upd('all', 'k1', 'REMOVE'));
    await s.barrier();
    const others = s.log.filter((m) => m.type === 'QUERY_UPDATE' && !['o7', 'o9', 'all'].includes(m.payload.queryId));
    assert.deepEqual(others, []);
  } finally {
    w.close();
    s.close();
  }
});

test('a limited page whose member leaves with nothing after it shrinks, then grows in place', async () => {
  const map = hlc.uniqueName('iqr');
  const w = await Client.authed({ name: 'writer' });
  const s = await Client.authed({ name: 'subscriber' });
  try {
    await w.sendOps([0, 1, 2].map((i) => hlc.putOp(map, `k${i}`, { n: i, cat: 0 }, hlc.now('w'))));
    psql(`SELECT topgun.create_index(${lit(map)}, 'n')`);
    await until(() => psql(`SELECT state FROM topgun.indexes WHERE map = ${lit(map)}`) === 'ready',
      'the index is built', 60000);
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'p', mapName: map,
      query: { where: { cat: 0 }, sort: { n: 'asc' }, limit: 3 } } });
    const r = await s.waitFor(resp('p'));
    assert.deepEqual(r.payload.results.map((x) => x.key), ['k0', 'k1', 'k2']);
    assert.equal(r.payload.hasMore, false);
    const upd = (key, type) => (m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === 'p' &&
      m.payload.key === key && m.payload.type === type;
    await w.sendOps([hlc.putOp(map, 'k1', { n: 1, cat: 1 }, hlc.now('w'))]);
    await s.waitFor(upd('k1', 'REMOVE'));
    await s.barrier();
    // nothing came after the page: it has two rows, and the next match enters it
    await w.sendOps([hlc.putOp(map, 'k9', { n: 1000, cat: 0 }, hlc.now('w'))]);
    await s.waitFor(upd('k9', 'UPDATE'));
    // now full again: a match after its last row stays outside
    await w.sendOps([hlc.putOp(map, 'k10', { n: 2000, cat: 0 }, hlc.now('w'))]);
    // a match before it enters, and the last row (k9) leaves
    await w.sendOps([hlc.putOp(map, 'k5', { n: 5, cat: 0 }, hlc.now('w'))]);
    await s.waitFor(upd('k5', 'UPDATE'));
    await s.waitFor(upd('k9', 'REMOVE'));
    await s.barrier();
    const seen = s.log.filter((m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === 'p')
      .map((m) => `${m.payload.type} ${m.payload.key}`);
    assert.deepEqual(seen.slice(0, 2), ['REMOVE k1', 'UPDATE k9']);
    assert.deepEqual(seen.slice(2).sort(), ['REMOVE k9', 'UPDATE k5']);   // k10 never
  } finally {
    w.close();
    s.close();
  }
});
