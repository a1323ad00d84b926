'use strict';
// Hostile input.  Every malformed frame gets ERROR 400 and leaves the socket
// open and usable; oversized frames close 1009; a flood of invalid messages
// past topgun.invalid_message_budget closes 1008; a client that never reads
// is disconnected instead of growing server memory.  During ALL of it a
// well-behaved second client keeps getting acks, the worker process does not
// change, and no data outside that client's map changes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const { pack } = require('./lib/codec');
const hlc = require('./lib/hlc');
const { psql, rows, lit } = require('./lib/psql');
const server = require('./lib/server');
const { until, stat } = require('./lib/barrier');

// A numeric GUC in base units (bytes for memory units), or dflt if undefined.
function setting(name, dflt) {
  const r = rows(`SELECT setting, unit FROM pg_settings WHERE name = ${lit(name)}`);
  if (!r.length) return dflt;
  const m = /^(\d*)\s*(B|kB|MB|GB)?$/.exec(r[0].unit || '');
  const mult = { B: 1, kB: 1024, MB: 1048576, GB: 1073741824 };
  const factor = m && m[2] ? (Number(m[1] || 1) * mult[m[2]]) : 1;
  return Number(r[0].setting) * factor;
}

const cat = (...parts) => Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
const str = (s) => { const b = Buffer.from(s); return cat([0xa0 | b.length], b); };

// Frames that must each be answered with ERROR 400 (grouped by category;
// each category runs on its own connection, well under the invalid budget).
const validBatch = pack(hlc.opBatch([hlc.putOp('bad-input-never-written', 'k', { a: 1 }, { millis: 1736000000000, counter: 0, nodeId: 'x' })]));
const BAD = {
  truncated: [
    validBatch.subarray(0, Math.floor(validBatch.length / 2)),
    validBatch.subarray(0, validBatch.length - 1),
    Buffer.from([0xde]),
    Buffer.from([0xde, 0x00, 0x01, 0xa4, 0x74, 0x79]),
  ],
  garbage: [
    Buffer.from([0xc1, 0x13, 0x37, 0x00, 0xff, 0xfe]),
    Buffer.from('hello, this is not msgpack'),
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]),
    Buffer.alloc(0),
    cat(pack({ type: 'PING', timestamp: 1 }), [0x00]), // trailing bytes after a valid value
  ],
  nesting: [
    cat(Buffer.alloc(10000, 0x91), [0xc0]),                       // 10000 nested arrays
    cat(Buffer.alloc(30000, 0).map((_, i) => [0x81, 0xa1, 0x61][i % 3]), [0xc0]), // 10000 nested maps
    cat([0xde, 0x00, 0x02], str('type'), str('OP_BATCH'), str('payload'), Buffer.alloc(5000, 0x91), [0xc0]),
  ],
  hugeLengths: [
    Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]),                  // array32 of 4G elements
    Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff]),                  // map32 of 4G pairs
    Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61, 0x62]),      // str32 of 4 GiB
    Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]),            // bin32 of 4 GiB
    cat([0xde, 0x00, 0x01], str('type'), [0xdb, 0xff, 0xff, 0xff, 0xff]),
    Buffer.from([0xde, 0xff, 0xff, 0x01]),                        // map16 of 65535 pairs, 1 byte
    Buffer.from([0xc9, 0xff, 0xff, 0xff, 0xff, 0x05]),            // ext32 of 4 GiB
  ],
  wrongTypes: [
    pack({ type: 7 }),
    pack({ notype: 'OP_BATCH' }),
    pack([1, 2, 3]),
    pack('OP_BATCH'),
    pack(null),
    pack({ type: 'OP_BATCH', payload: { ops: 'not-an-array' } }),
    pack({ type: 'OP_BATCH' }),
    pack({ type: 'SYNC_INIT', mapName: 42 }),
    pack({ type: 'SYNC_INIT' }),
    pack({ type: 'MERKLE_REQ_BUCKET', payload: { mapName: 'm', path: 5 } }),
    pack({ type: 'MERKLE_REQ_BUCKET', payload: 'm' }),
  ],
  unknownAndEncoding: [
    pack({ type: 'NO_SUCH_TYPE' }),
    pack({ type: 'BATCH', count: 1, data: Buffer.from([1, 0, 0, 0]) }),
    cat([0xde, 0x00, 0x01], str('type'), [0xa3, 0x4f, 0xff, 0xfe]),   // invalid UTF-8
    pack({ type: '' }),
  ],
};

// A well-behaved client writing all the time.
function startGoodClient(good, map) {
  const st = { acks: 0, failures: [], written: new Map(), stop: false, done: null };
  st.done = (async () => {
    let i = 0;
    while (!st.stop) {
      const key = `g${i % 20}`;
      const ts = hlc.now('good-client');
      const value = { i, at: ts.millis };
      try {
        const ack = await good.sendOps([hlc.putOp(map, key, value, ts)], 5000);
        if (ack.payload.results[0].success !== true) st.failures.push(`op ${i} not successful`);
        else { st.acks++; st.written.set(key, value); }
      } catch (e) {
        st.failures.push(`op ${i}: ${e.message}`);
        if (good.closed) break;
      }
      i++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return st;
}

let good;
let goodState;
let goodMap;
let digestBefore;
let workerPid;

test.before(async () => {
  goodMap = hlc.uniqueName('good');
  good = await Client.authed({ name: 'good' });
  workerPid = server.workerPid();
  assert.ok(workerPid, 'sync worker visible in pg_stat_activity');
  digestBefore = server.stateDigest([goodMap]);
  goodState = startGoodClient(good, goodMap);
});

for (const [category, frames] of Object.entries(BAD)) {
  test(`invalid frames (${category}) → ERROR 400 each, socket stays open and works`, async () => {
    const c = await Client.authed({ name: `bad-${category}` });
    try {
      for (const [i, f] of frames.entries()) {
        c.sendRaw(f);
        const m = await c.waitFor((x) => x.type === 'ERROR' || x.type === 'OP_ACK' || x.type.startsWith('SYNC_'), 5000)
          .catch((e) => { throw new Error(`${category}[${i}] (${f.subarray(0, 12).toString('hex')}…): ${e.message}`); });
        assert.equal(m.type, 'ERROR', `${category}[${i}]: answered ${m.type}`);
        assert.equal(m.payload.code, 400, `${category}[${i}]: code`);
        assert.equal(typeof m.payload.message, 'string');
        assert.equal(c.closed, null, `${category}[${i}]: socket closed`);
      }
      c.send({ type: 'PING', timestamp: Date.now() });
      await c.waitFor('PONG', 3000);
      const map = hlc.uniqueName('after-bad');
      const ack = await c.sendOps([hlc.putOp(map, 'k', 'still works', hlc.now('n'))]);
      assert.equal(ack.payload.results[0].success, true);
      assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'k') #>> '{}'`), 'still works');
    } finally { await c.close(); }
  });
}

test('ops with invalid fields inside a valid OP_BATCH are rejected individually, never written', async () => {
  const map = hlc.uniqueName('bad-ops');
  const c = await Client.authed({ name: 'bad-ops' });
  try {
    const ts = hlc.now('n');
    const good1 = hlc.putOp(map, 'ok1', 1, hlc.now('n'));
    const badOps = [
      { ...hlc.putOp(map, 'nan', 1, ts), record: { value: 1, timestamp: { millis: NaN, counter: 0, nodeId: 'n' } } },
      { ...hlc.putOp(map, 'neg', 1, ts), record: { value: 1, timestamp: { millis: 1, counter: -5, nodeId: 'n' } } },
      { ...hlc.putOp(map, 'nonode', 1, ts), record: { value: 1, timestamp: { millis: 1, counter: 0 } } },
      { ...hlc.putOp(map, 'colon', 1, ts), record: { value: 1, timestamp: { millis: 1, counter: 0, nodeId: 'a:b' } } },
      { ...hlc.putOp(map, 'x', 1, ts), key: 12 },
      { ...hlc.putOp(map, 'bigkey', 1, ts), key: 'k'.repeat(5000) },
    ];
    const good2 = hlc.putOp(map, 'ok2', 2, hlc.now('n'));
    c.send(hlc.opBatch([good1, ...badOps, good2]));
    const m = await c.waitFor((x) => x.type === 'ERROR' || x.type === 'OP_ACK', 5000);
    if (m.type === 'OP_ACK') {
      const res = new Map(m.payload.results.map((r) => [r.opId, r]));
      for (const op of badOps) assert.equal(res.get(op.id) && res.get(op.id).success, false, `bad op ${op.key} must be rejected`);
      assert.equal(res.get(good1.id).success, true);
      assert.equal(res.get(good2.id).success, true);
      assert.deepEqual(rows(`SELECT key FROM topgun.lww WHERE map = ${lit(map)} ORDER BY key`).map((r) => r.key), ['ok1', 'ok2']);
    } else {
      assert.equal(m.payload.code, 400);
      assert.equal(psql(`SELECT count(*) FROM topgun.lww WHERE map = ${lit(map)} AND key NOT IN ('ok1', 'ok2')`), '0');
    }
    assert.equal(c.closed, null);
  } finally { await c.close(); }
});

test('a frame larger than topgun.max_message_bytes → close 1009; just under the limit is accepted', async () => {
  const max = setting('topgun.max_message_bytes', 16 * 1024 * 1024);
  const c = await Client.authed({ name: 'under-limit' });
  try {
    const map = hlc.uniqueName('big');
    const value = 'v'.repeat(Math.min(Math.floor(max / 2), 512 * 1024));
    const ack = await c.sendOps([hlc.putOp(map, 'k', value, hlc.now('n'))], 15000);
    assert.equal(ack.payload.results[0].success, true);
    assert.equal(psql(`SELECT length(topgun.lww_get(${lit(map)}, 'k') #>> '{}')`), String(value.length));
  } finally { await c.close(); }

  const big = await Client.authed({ name: 'oversized' });
  try {
    const frame = cat([0xde, 0x00, 0x02], str('type'), str('OP_BATCH'), str('junk'), [0xc6], Buffer.alloc(4), Buffer.alloc(max + 256 * 1024, 0x61));
    frame.writeUInt32BE(max + 256 * 1024, 3 + 5 + 9 + 5 + 1);
    big.sendRaw(frame);
    const closed = await big.waitClose(10000);
    assert.equal(closed.code, 1009);
  } finally { big.terminate(); }
});

test('a flood of invalid messages past topgun.invalid_message_budget → close 1008', async () => {
  const budget = setting('topgun.invalid_message_budget', 100);
  const c = await Client.authed({ name: 'flood' });
  try {
    for (let i = 0; i < budget + 50 && !c.closed; i++) c.sendRaw(Buffer.from([0xc1, i & 0xff]));
    const closed = await c.waitClose(10000);
    assert.equal(closed.code, 1008);
    const errors = c.log.filter((m) => m.type === 'ERROR').length;
    assert.ok(errors >= 1, 'invalid messages were answered before the close');
  } finally { c.terminate(); }
});

test('a client that never reads is disconnected while the server keeps pushing', { timeout: 120000 }, async () => {
  // 16 keys of ~60 KB each; the reader asks for their leaves over and over.
  const map = hlc.uniqueName('slow');
  psql(`SELECT topgun.lww_put(${lit(map)}, 'big-' || i, to_jsonb(repeat(md5(i::text), 1900)), topgun.hlc(1736000000000 + i, 0, 'slow')) FROM generate_series(1, 16) i`);
  const paths = rows(`SELECT DISTINCT substr(lpad(to_hex(topgun.key_hash(key)), 8, '0'), 1, 3) AS p FROM topgun.lww WHERE map = ${lit(map)}`).map((r) => r.p);
  const perRound = 16 * 60800;
  const rounds = 120; // ~115 MB of responses requested, far beyond any sane buffer
  const slow = await Client.authed({ name: 'slow', ping: false });
  const slowBefore = stat('slow_clients_closed');
  try {
    slow.pause();
    for (let r = 0; r < rounds; r++) {
      for (const p of paths) slow.send({ type: 'MERKLE_REQ_BUCKET', payload: { mapName: map, path: p } });
    }
    // The server notices the full outbound queue and kills the socket (the
    // good client keeps working meanwhile); resume once it counted the kill.
    await until(() => stat('slow_clients_closed') > slowBefore, 'the server closes the client that does not read', 60000);
    // and serves the others meanwhile: the good client keeps being acked
    const acks = goodState.acks;
    await until(() => goodState.acks >= acks + 3, 'the good client is acked while a client does not read', 30000);
    slow.resume();
    const closed = await slow.waitClose(30000);
    assert.ok(closed.code !== 1000, `disconnected by the server (close ${closed.code})`);
    assert.ok(slow.bytesIn < (perRound * rounds) / 2,
      `server buffered instead of disconnecting: client received ${slow.bytesIn} of ${perRound * rounds} bytes`);
  } finally { slow.terminate(); }
});

test('during all of the above the well-behaved client kept working and no other data changed', async () => {
  goodState.stop = true;
  await goodState.done;
  {
    assert.deepEqual(goodState.failures, [], 'the well-behaved client never missed an ack');
    assert.ok(goodState.acks > 0, `the well-behaved client kept writing (${goodState.acks} acks)`);
    for (const [key, value] of goodState.written) {
      assert.deepEqual(JSON.parse(psql(`SELECT topgun.lww_get(${lit(goodMap)}, ${lit(key)})`)), value, `good ${key}`);
    }
    assert.equal(server.workerPid(), workerPid, 'the worker process survived everything (same pid)');
    // Only maps created by this file's own valid writes may have appeared.
    const created = rows(`SELECT DISTINCT map FROM topgun.lww WHERE map LIKE 'after-bad-%' OR map LIKE 'big-%' OR map LIKE 'slow-%' OR map LIKE 'bad-ops-%'`).map((r) => r.map);
    assert.equal(server.stateDigest([goodMap, ...created]), digestBefore, 'no other data changed');
    assert.equal(psql(`SELECT count(*) FROM topgun.lww WHERE map = 'bad-input-never-written'`), '0');
  }
});

test.after(async () => {
  if (goodState) { goodState.stop = true; await goodState.done; }
  if (good) await good.close();
});
