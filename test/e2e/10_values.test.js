'use strict';
// Value fidelity: a JSON-representable value a client writes comes back equal
// (types, numbers, nesting; key order aside) to the watcher, to a fresh
// Merkle pull, to QUERY_SUB results and in SQL.  Values JSON cannot hold
// (binary, Date, NaN/Infinity, 64-bit integers) are either round-tripped
// exactly or rejected per op — never silently changed.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, rows, lit } = require('./lib/psql');
const { pullLww } = require('./lib/sync');

const JSON_VALUES = {
  int0: 0,
  intNeg: -1,
  int127: 127,
  int128: 128,
  int255: 255,
  int65535: 65535,
  intMax32: 2147483647,
  intMin32: -2147483648,
  uintMax32: 4294967295,
  big53: 9007199254740991,
  negBig: -9007199254740991,
  millis: 1736000000000,
  float: 1.5,
  negFloat: -0.25,
  tiny: 5e-324,
  huge: 1.7976931348623157e308,
  third: 1 / 3,
  t: true,
  f: false,
  str: 'plain',
  empty: '',
  unicode: 'héllo wörld — 日本語 😀',
  escapes: 'quote " backslash \\ newline \n tab \t nul-free \u0001',
  emptyObj: {},
  emptyArr: [],
  nested: { a: { b: { c: [1, { d: [true, null, 'x'] }] } }, list: [[], [[]], {}] },
  arrayMixed: [1, 'two', 3.5, null, false, { k: 'v' }],
  manyKeys: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])),
};

const NON_JSON = {
  binary: Buffer.from([0, 1, 2, 254, 255]),
  date: new Date('2025-01-04T14:13:20.000Z'),
  nan: NaN,
  inf: Infinity,
  negInf: -Infinity,
  bigint: 9007199254740993n,
  nestedBinary: { data: Buffer.from('abc') },
};

function sameNonJson(got, want) {
  if (Buffer.isBuffer(want)) return got instanceof Uint8Array && Buffer.compare(Buffer.from(got), want) === 0;
  if (want instanceof Date) return got instanceof Date && got.getTime() === want.getTime();
  if (typeof want === 'number' && Number.isNaN(want)) return typeof got === 'number' && Number.isNaN(got);
  if (typeof want === 'bigint') return (typeof got === 'bigint' && got === want);
  if (want && typeof want === 'object') {
    return got && typeof got === 'object' && Object.keys(want).every((k) => sameNonJson(got[k], want[k]));
  }
  return Object.is(got, want);
}

test('JSON values round-trip exactly through the server (event, pull, query, SQL)', async () => {
  const map = hlc.uniqueName('values');
  const w = await Client.authed({ name: 'watcher' });
  const a = await Client.authed({ name: 'writer' });
  try {
    w.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 });
    await w.waitFor('SYNC_RESP_ROOT');
    const ops = Object.entries(JSON_VALUES).map(([k, v]) => hlc.putOp(map, k, v, hlc.now('vals')));
    const ack = await a.sendOps(ops);
    for (const r of ack.payload.results) assert.equal(r.success, true, `op ${r.opId}: ${r.error}`);

    // events
    const seen = new Map();
    const end = Date.now() + 5000;
    while (seen.size < ops.length) {
      const m = await w.waitFor((x) => x.type === 'SERVER_BATCH_EVENT' || x.type === 'SERVER_EVENT', Math.max(1, end - Date.now()));
      const evs = m.type === 'SERVER_EVENT' ? [m.payload] : m.payload.events;
      for (const e of evs) if (e.mapName === map) seen.set(e.key, e.record.value);
    }
    for (const [k, v] of Object.entries(JSON_VALUES)) assert.deepStrictEqual(seen.get(k), v, `event value of ${k}`);

    // fresh pull
    const c = await Client.authed({ name: 'puller' });
    try {
      const pulled = await pullLww(c, map);
      for (const [k, v] of Object.entries(JSON_VALUES)) assert.deepStrictEqual(pulled.records.get(k).value, v, `pulled value of ${k}`);

      // QUERY_SUB initial results
      c.send({ type: 'QUERY_SUB', payload: { queryId: 'q-values', mapName: map, query: {} } });
      const qr = await c.waitFor((m) => m.type === 'QUERY_RESP' && m.payload.queryId === 'q-values');
      const byKey = new Map(qr.payload.results.map((r) => [r.key, r.value]));
      for (const [k, v] of Object.entries(JSON_VALUES)) assert.deepStrictEqual(byKey.get(k), v, `query value of ${k}`);
    } finally { await c.close(); }

    // SQL: the stored jsonb reads back as the same JSON value (numbers compared
    // as doubles: 5e-324 may be stored with more digits, e.g. 4.94065645841247e-324)
    for (const [k, v] of Object.entries(JSON_VALUES)) {
      assert.deepStrictEqual(JSON.parse(psql(`SELECT topgun.lww_get(${lit(map)}, ${lit(k)})::text`)), v, `SQL value of ${k}`);
    }
    // ordinary values compare equal as jsonb too (SQL queries can match them)
    for (const k of ['int128', 'uintMax32', 'big53', 'float', 'unicode', 'nested', 'arrayMixed']) {
      assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, ${lit(k)}) = ${lit(JSON.stringify(JSON_VALUES[k]))}::jsonb`), 't', `jsonb equality of ${k}`);
    }
  } finally {
    await a.close();
    await w.close();
  }
});

// LWW values become jsonb straight from msgpack (src/exec/value_jsonb.c);
// OR-map values still go through JSON text and a cast.  Both must store the
// very same jsonb (numbers with the same digits, strings with the same
// bytes), and refuse the same values.
test('LWW values stored from msgpack equal the JSON-text path byte for byte', async () => {
  const lwwMap = hlc.uniqueName('vals-lww');
  const orMap = hlc.uniqueName('vals-or');
  const a = await Client.authed({ name: 'writer' });
  const extra = {
    undefProp: { a: 1, gone: undefined, b: [2, { c: undefined }] },
    deep: JSON.parse('['.repeat(20) + '1' + ']'.repeat(20)),
    ctl: 'bell \u0007 esc \u001b del \u007f quote "',
    expo: [1e21, 1e-7, 123456789012345680000, 0.1 + 0.2, -1.5e-300],
  };
  const values = { ...JSON_VALUES, ...extra };
  try {
    const ts = () => hlc.now('vals');
    const ops = [];
    for (const [k, v] of Object.entries(values)) {
      ops.push(hlc.putOp(lwwMap, k, v, ts()));
      ops.push(hlc.orAddOp(orMap, k, v, ts()));
    }
    const ack = await a.sendOps(ops);
    for (const r of ack.payload.results) assert.equal(r.success, true, `op ${r.opId}: ${r.error}`);
    const diff = rows(`SELECT l.key, l.value::text AS lww, o.value::text AS orv FROM topgun.lww l
                       JOIN topgun.ormap o ON o.map = ${lit(orMap)} AND o.key = l.key
                       WHERE l.map = ${lit(lwwMap)} AND l.value::text IS DISTINCT FROM o.value::text`);
    assert.deepEqual(diff, [], 'stored differently by the two paths');
    assert.equal(Number(psql(`SELECT count(*) FROM topgun.lww WHERE map = ${lit(lwwMap)}`)), Object.keys(values).length);
    // the same refusals, with the same messages (but the offset)
    const bad = { nan: NaN, inf: -Infinity, bin: Buffer.from([1]), big: 9007199254740993n };
    const badOps = [];
    for (const [k, v] of Object.entries(bad)) {
      badOps.push(hlc.putOp(lwwMap, `bad-${k}`, v, ts()));
      badOps.push(hlc.orAddOp(orMap, `bad-${k}`, v, ts()));
    }
    const nack = await a.sendOps(badOps);
    const res = nack.payload.results;
    for (let i = 0; i < res.length; i += 2) {
      assert.equal(res[i].success, false, `LWW ${badOps[i].key} refused`);
      const what = (e) => String(e).replace(/ \(at offset \d+\)$/, '');	// the offset is the op's place in the message
      assert.match(res[i].error, /^Invalid value: /);
      assert.equal(what(res[i].error), what(res[i + 1].error), `same message for ${badOps[i].key}`);
    }
  } finally {
    await a.close();
  }
});

test('values JSON cannot hold are round-tripped exactly or rejected per op, never altered', async () => {
  const map = hlc.uniqueName('nonjson');
  const a = await Client.authed({ name: 'writer' });
  try {
    const ops = Object.entries(NON_JSON).map(([k, v]) => hlc.putOp(map, k, v, hlc.now('nonjson')));
    const okOp = hlc.putOp(map, 'control', { fine: true }, hlc.now('nonjson'));
    const ack = await a.sendOps([...ops, okOp]);
    const res = new Map(ack.payload.results.map((r) => [r.opId, r]));
    assert.equal(res.get(okOp.id).success, true, 'a JSON op in the same batch still commits');
    const accepted = [];
    for (const op of ops) {
      const r = res.get(op.id);
      assert.ok(r, `result for ${op.key}`);
      if (r.success) accepted.push(op.key);
      else {
        assert.equal(typeof r.error, 'string', `rejection of ${op.key} carries an error text`);
        assert.equal(psql(`SELECT count(*) FROM topgun.lww WHERE map = ${lit(map)} AND key = ${lit(op.key)}`), '0', `${op.key} rejected but stored`);
      }
    }
    console.log(`# non-JSON values accepted: [${accepted.join(', ')}], rejected: [${ops.map((o) => o.key).filter((k) => !accepted.includes(k)).join(', ')}]`);
    const pulled = await pullLww(a, map);
    for (const k of accepted) {
      assert.ok(sameNonJson(pulled.records.get(k).value, NON_JSON[k]),
        `${k} accepted but came back as ${String(pulled.records.get(k) && pulled.records.get(k).value)}`);
    }
  } finally { await a.close(); }
});
