'use strict';
// Live queries (issue 5): QUERY_SUB answers exactly the matching records,
// then QUERY_UPDATE UPDATE/REMOVE follow values into and out of the result,
// from client writes and from SQL writes; sort/limit/cursor pages; the query
// language's JS semantics; unsupported operators are refused with ERROR 400.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, lit } = require('./lib/psql');
const { feedBarrier } = require('./lib/barrier');

const isUpdate = (qid, key, type) => (m) => m.type === 'QUERY_UPDATE' && m.payload.queryId === qid &&
  (key === undefined || m.payload.key === key) && (type === undefined || m.payload.type === type);
const resp = (qid) => (m) => m.type === 'QUERY_RESP' && m.payload.queryId === qid;

async function put(c, map, key, value) {
  await c.sendOps([hlc.putOp(map, key, value, hlc.now('w'))]);
}

test('where query: exact initial result, UPDATE on enter/change, REMOVE on leave and delete', async () => {
  const map = hlc.uniqueName('lq');
  const w = await Client.authed({ name: 'writer' });
  const s = await Client.authed({ name: 'subscriber' });
  try {
    await w.sendOps([
      hlc.putOp(map, 'a', { status: 'active', n: 1 }, hlc.now('w')),
      hlc.putOp(map, 'b', { status: 'inactive', n: 2 }, hlc.now('w')),
      hlc.putOp(map, 'c', { status: 'active', n: 3 }, hlc.now('w')),
      hlc.putOp(map, 'd', { status: 'Active', n: 4 }, hlc.now('w')),
    ]);
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'q1', mapName: map, query: { where: { status: 'active' } } } });
    const r = await s.waitFor(resp('q1'));
    assert.deepEqual(r.payload.results.map((x) => x.key).sort(), ['a', 'c']);
    assert.deepEqual(r.payload.results.find((x) => x.key === 'a').value, { status: 'active', n: 1 });
    assert.equal(r.payload.cursorStatus, 'none');

    // b enters
    await put(w, map, 'b', { status: 'active', n: 20 });
    let u = await s.waitFor(isUpdate('q1', 'b'));
    assert.equal(u.payload.type, 'UPDATE');
    assert.deepEqual(u.payload.value, { status: 'active', n: 20 });
    // a changes but stays
    await put(w, map, 'a', { status: 'active', n: 10 });
    u = await s.waitFor(isUpdate('q1', 'a'));
    assert.equal(u.payload.type, 'UPDATE');
    assert.equal(u.payload.value.n, 10);
    // c leaves
    await put(w, map, 'c', { status: 'done', n: 3 });
    u = await s.waitFor(isUpdate('q1', 'c'));
    assert.equal(u.payload.type, 'REMOVE');
    assert.equal(u.payload.value, null);
    // a deleted
    await w.sendOps([hlc.removeOp(map, 'a', hlc.now('w'))]);
    u = await s.waitFor(isUpdate('q1', 'a'));
    assert.equal(u.payload.type, 'REMOVE');
    // a non-matching write to a non-member: nothing
    await put(w, map, 'd', { status: 'ACTIVE' });
    await s.expectNone(isUpdate('q1'), () => feedBarrier(s));
    // the subscriber also gets the map's change events (routing table, §7.5)
    assert.ok(s.queue.some((m) => m.type === 'SERVER_BATCH_EVENT'));

    // a SQL write reaches the live query too
    psql(`SELECT topgun.lww_put(${lit(map)}, 'e', '{"status":"active","n":5}', topgun.hlc_now())`);
    u = await s.waitFor(isUpdate('q1', 'e'), 5000);
    assert.equal(u.payload.type, 'UPDATE');
    assert.deepEqual(u.payload.value, { status: 'active', n: 5 });
    psql(`SELECT topgun.lww_remove(${lit(map)}, 'e')`);
    u = await s.waitFor(isUpdate('q1', 'e'), 5000);
    assert.equal(u.payload.type, 'REMOVE');

    // unsubscribe: no more updates
    s.send({ type: 'QUERY_UNSUB', payload: { queryId: 'q1' } });
    await s.barrier();
    await put(w, map, 'b', { status: 'active', n: 21 });
    await s.expectNone(isUpdate('q1'), () => feedBarrier(s));
  } finally {
    await w.close();
    await s.close();
  }
});

test('predicate semantics: like, regex, and/or/not, JS comparisons, $ operators', async () => {
  const map = hlc.uniqueName('lq-pred');
  const w = await Client.authed({ name: 'writer' });
  try {
    await w.sendOps([
      hlc.putOp(map, 'john', { name: 'John', age: 30, email: 'john@x.com' }, hlc.now('w')),
      hlc.putOp(map, 'jon', { name: 'jon', age: '25', email: 'jon@y.org' }, hlc.now('w')),
      hlc.putOp(map, 'ann', { name: 'Ann', age: 17, email: 'ann@x.com' }, hlc.now('w')),
      hlc.putOp(map, 'bob', { name: 'Bob', age: null }, hlc.now('w')),
    ]);
    const q = async (id, query) => {
      w.send({ type: 'QUERY_SUB', payload: { queryId: id, mapName: map, query } });
      const r = await w.waitFor((m) => (m.type === 'QUERY_RESP' && m.payload.queryId === id) || m.type === 'ERROR');
      if (r.type === 'ERROR') return r;
      return r.payload.results.map((x) => x.key).sort();
    };
    assert.deepEqual(await q('like', { predicate: { op: 'like', attribute: 'name', value: 'jo%' } }), ['john', 'jon']);
    assert.deepEqual(await q('like_', { predicate: { op: 'like', attribute: 'name', value: 'j_n' } }), ['jon']);
    assert.deepEqual(await q('regex', { predicate: { op: 'regex', attribute: 'email', value: '@x\\.com$' } }), ['ann', 'john']);
    // JS relational: '25' >= 18 is true (ToNumber), null >= 18 false, 17 false
    assert.deepEqual(await q('gte', { predicate: { op: 'gte', attribute: 'age', value: 18 } }), ['john', 'jon']);
    // strict equality: 30 === 30, '25' !== 25
    assert.deepEqual(await q('eq', { predicate: { op: 'eq', attribute: 'age', value: 25 } }), []);
    assert.deepEqual(await q('or', {
      predicate: { op: 'or', children: [{ op: 'eq', attribute: 'name', value: 'Ann' }, { op: 'eq', attribute: 'name', value: 'Bob' }] },
    }), ['ann', 'bob']);
    assert.deepEqual(await q('not', { predicate: { op: 'not', children: [{ op: 'like', attribute: 'name', value: 'j%' }] } }), ['ann', 'bob']);
    assert.deepEqual(await q('where-ops', { where: { age: { $gt: 16, $lt: 26 } } }), ['ann', 'jon']);
    assert.deepEqual(await q('where-ne', { where: { name: { $ne: 'Bob' } } }), ['ann', 'john', 'jon']);
    assert.deepEqual(await q('where-unknown-op', { where: { age: { $in: [30] } } }), []);
    // unsupported: lookahead, unknown op, contains
    for (const query of [
      { predicate: { op: 'regex', attribute: 'name', value: '(?=J)J' } },
      { predicate: { op: 'regex', attribute: 'name', value: '(a)\\1' } },
    ]) {
      const e = await q('bad', query);
      assert.equal(e.type, 'ERROR');
      assert.equal(e.payload.code, 400);
      assert.match(e.payload.message, /Invalid query: unsupported regex/);
    }
  } finally {
    await w.close();
  }
});

test('sort + limit + cursor pages, and live updates of a limited query', async () => {
  const map = hlc.uniqueName('lq-page');
  const w = await Client.authed({ name: 'writer' });
  const s = await Client.authed({ name: 'subscriber' });
  try {
    const ops = [];
    for (let i = 1; i <= 7; i++) ops.push(hlc.putOp(map, `k${i}`, { score: i * 10 }, hlc.now('w')));
    await w.sendOps(ops);
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'top3', mapName: map, query: { sort: { score: 'desc' }, limit: 3 } } });
    const r = await s.waitFor(resp('top3'));
    assert.deepEqual(r.payload.results.map((x) => x.key), ['k7', 'k6', 'k5']);
    assert.equal(r.payload.hasMore, true);
    assert.equal(typeof r.payload.nextCursor, 'string');

    s.send({ type: 'QUERY_SUB', payload: { queryId: 'page2', mapName: map, query: { sort: { score: 'desc' }, limit: 3, cursor: r.payload.nextCursor } } });
    const p2 = await s.waitFor(resp('page2'));
    assert.deepEqual(p2.payload.results.map((x) => x.key), ['k4', 'k3', 'k2']);
    assert.equal(p2.payload.cursorStatus, 'valid');
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'badcur', mapName: map, query: { sort: { score: 'desc' }, limit: 3, cursor: 'garbage' } } });
    assert.equal((await s.waitFor(resp('badcur'))).payload.cursorStatus, 'invalid');
    s.send({ type: 'QUERY_UNSUB', payload: { queryId: 'page2' } });
    s.send({ type: 'QUERY_UNSUB', payload: { queryId: 'badcur' } });

    // a new top record enters: it is added, k5 falls out of the top 3
    await put(w, map, 'k9', { score: 99 });
    const got = [await s.waitFor(isUpdate('top3')), await s.waitFor(isUpdate('top3'))];
    const byType = Object.fromEntries(got.map((m) => [m.payload.type, m.payload.key]));
    assert.deepEqual(byType, { UPDATE: 'k9', REMOVE: 'k5' });
    // a change below the page: nothing
    await put(w, map, 'k1', { score: 11 });
    await s.expectNone(isUpdate('top3'), () => feedBarrier(s));
  } finally {
    await w.close();
    await s.close();
  }
});

test('OR-map live query: values are arrays; adds and removes from clients and SQL update it', async () => {
  const map = hlc.uniqueName('lq-or');
  const w = await Client.authed({ name: 'writer' });
  const s = await Client.authed({ name: 'subscriber' });
  try {
    const t1 = hlc.now('w');
    await w.sendOps([hlc.orAddOp(map, 'tags', 'red', t1)]);
    s.send({ type: 'QUERY_SUB', payload: { queryId: 'qo', mapName: map, query: {} } });
    const r = await s.waitFor(resp('qo'));
    assert.deepEqual(r.payload.results, [{ key: 'tags', value: ['red'] }]);
    await w.sendOps([hlc.orAddOp(map, 'tags', 'blue', hlc.now('w'))]);
    let u = await s.waitFor(isUpdate('qo', 'tags'), 5000);
    assert.equal(u.payload.type, 'UPDATE');
    assert.deepEqual(u.payload.value.slice().sort(), ['blue', 'red']);
    psql(`SELECT topgun.or_add(${lit(map)}, 'other', '"x"')`);
    u = await s.waitFor(isUpdate('qo', 'other'), 5000);
    assert.deepEqual(u.payload.value, ['x']);
    // removing every tag of a key makes it leave the result
    const tags = JSON.parse(psql(`SELECT json_agg(tag) FROM topgun.ormap WHERE map = ${lit(map)} AND key = 'tags'`));
    await w.sendOps(tags.map((tag) => hlc.orRemoveOp(map, 'tags', tag, hlc.now('w'))));
    u = await s.waitFor((m) => isUpdate('qo', 'tags')(m) && m.payload.type === 'REMOVE', 5000);
    assert.equal(u.payload.value, null);
  } finally {
    await w.close();
    await s.close();
  }
});
