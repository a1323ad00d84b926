'use strict';
// The real TopGun client's frames (vectors/messages/c2s_*.msgpack), sent
// byte-for-byte after authenticating with a token minted for this server
// (the captured AUTH token was signed with another secret).  Each OP_BATCH
// must be acknowledged after commit with lastId and one results entry per op
// id, and SQL must see the values right after the ack.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const vectors = require('./lib/vectors');
const { psql, rows, value } = require('./lib/psql');
const { LwwTree } = require('./lib/merkle');
const { pullLww, pullOr, watchLww } = require('./lib/sync');

const NODE = '3b241101-e2bb-4255-8caf-4136c566a962';
const tag = (millis) => `${millis}:0:${NODE}`;

// The captured session's order of OP_BATCH frames.
const SESSION = [
  'c2s_OP_BATCH_offline_multi', 'c2s_OP_BATCH_put', 'c2s_OP_BATCH_put_ttl', 'c2s_OP_BATCH_remove',
  'c2s_OP_BATCH_or_add', 'c2s_OP_BATCH_or_add_ttl', 'c2s_OP_BATCH_or_remove',
  'c2s_OP_BATCH_resend_of_unacked_op', 'c2s_OP_BATCH_or_remove_two_tags',
];

function opsOf(name) {
  return vectors.message(name).meta.message.payload.ops;
}

async function sendCaptured(c, name) {
  const { bytes, meta } = vectors.message(name);
  const ops = meta.message.payload.ops;
  const lastId = ops[ops.length - 1].id;
  c.sendRaw(bytes);
  const ack = await c.waitFor((m) => m.type === 'OP_ACK' || m.type === 'ERROR', 10000);
  assert.equal(ack.type, 'OP_ACK', `${name}: got ${JSON.stringify(ack).slice(0, 300)}`);
  assert.equal(ack.payload.lastId, lastId, `${name}: lastId`);
  assert.ok(Array.isArray(ack.payload.results), `${name}: OP_ACK.payload.results must be an array (PROTOCOL §9.1)`);
  for (const op of ops) {
    const r = ack.payload.results.find((x) => x.opId === op.id);
    assert.ok(r, `${name}: no results entry for op ${op.id}`);
    assert.equal(r.success, true, `${name}: op ${op.id} failed: ${r.error}`);
  }
  return ack;
}

// Remove what an earlier run of this suite on the same cluster left behind.
function reset() {
  psql(`DELETE FROM topgun.lww WHERE map = 'todos'; DELETE FROM topgun.ormap WHERE map = 'tags';
        DELETE FROM topgun.or_tombstones WHERE map = 'tags';
        SELECT topgun.merkle_rebuild('todos'); SELECT topgun.merkle_rebuild('tags');`);
}

test('captured OP_BATCH frames are acked after commit and visible in SQL at once', async () => {
  reset();
  const c = await Client.authed();
  try {
    await sendCaptured(c, 'c2s_OP_BATCH_offline_multi');
    assert.deepEqual(JSON.parse(psql(`SELECT topgun.lww_get('todos', 't1')`)), { title: 'Buy milk', done: false, priority: 1 });
    assert.deepEqual(rows(`SELECT tag, value FROM topgun.ormap WHERE map = 'tags' AND key = 'colors'`),
      [{ tag: tag(1736000000005), value: 'red' }]);
    assert.equal(psql(`SELECT topgun.map_kind('todos') || ',' || topgun.map_kind('tags')`), 'lww,or');

    await sendCaptured(c, 'c2s_OP_BATCH_put');
    assert.deepEqual(JSON.parse(psql(`SELECT topgun.lww_get('todos', 't2')`)),
      { title: 'Walk dog', done: false, priority: 2, tags: ['home', 'pets'] });
    assert.equal(psql(`SELECT ts::text FROM topgun.lww WHERE map = 'todos' AND key = 't2'`), tag(1736000000022));

    await sendCaptured(c, 'c2s_OP_BATCH_put_ttl');
    // 2025 timestamp + 60 s TTL: stored with its TTL, already expired for reads.
    assert.deepEqual(rows(`SELECT value, ttl_ms FROM topgun.lww WHERE map = 'todos' AND key = 't3'`),
      [{ value: 'ephemeral', ttl_ms: 60000 }]);
    assert.equal(psql(`SELECT topgun.lww_get('todos', 't3') IS NULL`), 't');

    await sendCaptured(c, 'c2s_OP_BATCH_remove');
    assert.equal(psql(`SELECT topgun.lww_get('todos', 't1') IS NULL`), 't');
    assert.deepEqual(rows(`SELECT value IS NULL AS tombstone, ts::text AS ts FROM topgun.lww WHERE map = 'todos' AND key = 't1'`),
      [{ tombstone: true, ts: tag(1736000000036) }]);
    assert.equal(psql(`SELECT count(*) FROM topgun.lww_entries WHERE map = 'todos' AND key = 't1'`), '0');

    await sendCaptured(c, 'c2s_OP_BATCH_or_add');
    await sendCaptured(c, 'c2s_OP_BATCH_or_add_ttl');
    assert.deepEqual(rows(`SELECT tag, value, ttl_ms FROM topgun.ormap WHERE map = 'tags' AND key = 'colors' ORDER BY tag`), [
      { tag: tag(1736000000005), value: 'red', ttl_ms: null },
      { tag: tag(1736000000043), value: 'blue', ttl_ms: null },
      { tag: tag(1736000000050), value: { hex: '#0000ff', name: 'blue' }, ttl_ms: 3600000 },
    ]);

    await sendCaptured(c, 'c2s_OP_BATCH_or_remove');
    assert.equal(psql(`SELECT count(*) FROM topgun.or_tombstones WHERE map = 'tags' AND tag = '${tag(1736000000005)}'`), '1');
    assert.deepEqual(rows(`SELECT tag FROM topgun.ormap WHERE map = 'tags' AND key = 'colors' ORDER BY tag`).map((r) => r.tag),
      [tag(1736000000043), tag(1736000000050)]);
    assert.deepEqual(JSON.parse(psql(`SELECT coalesce(json_agg(v ORDER BY v::text), '[]') FROM topgun.or_get('tags', 'colors') v`)), ['blue']);

    await sendCaptured(c, 'c2s_OP_BATCH_resend_of_unacked_op');
    assert.deepEqual(rows(`SELECT tag, value FROM topgun.ormap WHERE map = 'tags' AND key = 'dup' ORDER BY tag`),
      [{ tag: tag(1736000000062), value: 'x' }, { tag: tag(1736000000063), value: 'x' }]);

    await sendCaptured(c, 'c2s_OP_BATCH_or_remove_two_tags');
    assert.equal(psql(`SELECT count(*) FROM topgun.ormap WHERE map = 'tags' AND key = 'dup'`), '0');
    assert.equal(psql(`SELECT count(*) FROM topgun.or_tombstones WHERE map = 'tags' AND tag IN ('${tag(1736000000062)}', '${tag(1736000000063)}')`), '2');
    assert.equal(psql(`SELECT count(*) FROM topgun.or_get('tags', 'dup')`), '0');
  } finally { await c.close(); }
});

test('re-sending every captured frame again is idempotent (acked, state unchanged)', async () => {
  const c = await Client.authed();
  try {
    const before = [psql(`SELECT topgun.merkle_root('todos')`), psql(`SELECT topgun.merkle_root('tags')`),
      JSON.stringify(rows(`SELECT key, value, ts::text FROM topgun.lww WHERE map = 'todos' ORDER BY key`)),
      JSON.stringify(rows(`SELECT key, tag, value FROM topgun.ormap WHERE map = 'tags' ORDER BY key, tag`))];
    for (const name of SESSION) await sendCaptured(c, name);
    const after = [psql(`SELECT topgun.merkle_root('todos')`), psql(`SELECT topgun.merkle_root('tags')`),
      JSON.stringify(rows(`SELECT key, value, ts::text FROM topgun.lww WHERE map = 'todos' ORDER BY key`)),
      JSON.stringify(rows(`SELECT key, tag, value FROM topgun.ormap WHERE map = 'tags' ORDER BY key, tag`))];
    assert.deepEqual(after, before);
  } finally { await c.close(); }
});

test('captured SYNC_INIT / MERKLE_REQ_BUCKET frames get the tree the SQL side has', async () => {
  const c = await Client.authed();
  try {
    const root = Number(psql(`SELECT topgun.merkle_root('todos')`));
    // Expected tree recomputed in JS from the SQL rows (tombstones included).
    const t = new LwwTree();
    for (const r of rows(`SELECT key, topgun.hlc_millis(ts) AS millis, topgun.hlc_counter(ts) AS counter, topgun.hlc_node(ts) AS node FROM topgun.lww WHERE map = 'todos'`)) {
      t.update(r.key, { timestamp: { millis: Number(r.millis), counter: r.counter, nodeId: r.node } });
    }
    assert.equal(t.root(), root, 'merkle_root() agrees with the JS tree');

    c.sendRaw(vectors.message('c2s_SYNC_INIT_first').bytes);
    const rr = await c.waitFor('SYNC_RESP_ROOT', 5000);
    assert.equal(rr.payload.mapName, 'todos');
    assert.equal(rr.payload.rootHash, root);
    assert.equal(typeof rr.payload.timestamp.millis, 'number');
    assert.equal(typeof rr.payload.timestamp.counter, 'number');
    assert.equal(typeof rr.payload.timestamp.nodeId, 'string');

    c.sendRaw(vectors.message('c2s_MERKLE_REQ_BUCKET_root').bytes);
    const b = await c.waitFor((m) => m.type === 'SYNC_RESP_BUCKETS' && m.payload.path === '', 5000);
    assert.equal(b.payload.mapName, 'todos');
    assert.deepEqual(b.payload.buckets, t.buckets(''));

    // And the complete pull reproduces the SQL rows.
    const pulled = await pullLww(c, 'todos');
    const sqlRows = rows(`SELECT key, value FROM topgun.lww WHERE map = 'todos' ORDER BY key`);
    assert.equal(pulled.records.size, sqlRows.length);
    for (const r of sqlRows) assert.deepEqual(pulled.records.get(r.key).value, r.value, `record ${r.key}`);
  } finally { await c.close(); }
});

test('captured ORMAP_SYNC_INIT frame: root equals merkle_root, leaves carry records and tombstones', async () => {
  const c = await Client.authed();
  try {
    const root = Number(psql(`SELECT topgun.merkle_root('tags')`));
    c.sendRaw(vectors.message('c2s_ORMAP_SYNC_INIT_first').bytes);
    const rr = await c.waitFor('ORMAP_SYNC_RESP_ROOT', 5000);
    assert.equal(rr.payload.mapName, 'tags');
    assert.equal(rr.payload.rootHash, root);
    const pulled = await pullOr(c, 'tags');
    const colors = pulled.entries.get('colors');
    assert.ok(colors, 'key colors pulled');
    assert.deepEqual(colors.records.map((r) => r.tag).sort(), [tag(1736000000043), tag(1736000000050)]);
    assert.ok(pulled.tombstones.has(tag(1736000000005)), 'tombstone of the removed tag is sent');
    assert.ok(!pulled.entries.has('dup'), 'a key with only tombstoned tags is not in the tree');
  } finally { await c.close(); }
});

test('SYNC_INIT on an OR map → ERROR 501; ORMAP_SYNC_INIT on an LWW map → ERROR 400', async () => {
  const c = await Client.authed();
  try {
    c.send({ type: 'SYNC_INIT', mapName: 'tags', lastSyncTimestamp: 0 });
    const e1 = await c.waitFor('ERROR', 5000);
    assert.equal(e1.payload.code, 501);
    c.send({ type: 'ORMAP_SYNC_INIT', mapName: 'todos', rootHash: 0, bucketHashes: {}, lastSyncTimestamp: 0 });
    const e2 = await c.waitFor('ERROR', 5000);
    assert.equal(e2.payload.code, 400);
    assert.match(e2.payload.message, /not an ORMap/);
  } finally { await c.close(); }
});

test('SYNC_INIT with a lastSyncTimestamp older than 30 days → SYNC_RESET_REQUIRED', async () => {
  const c = await Client.authed();
  try {
    c.send({ type: 'SYNC_INIT', mapName: 'todos', lastSyncTimestamp: Date.now() - 31 * 24 * 3600 * 1000 });
    const m = await c.waitFor((x) => x.type === 'SYNC_RESET_REQUIRED' || x.type === 'SYNC_RESP_ROOT', 5000);
    assert.equal(m.type, 'SYNC_RESET_REQUIRED');
    assert.equal(m.payload.mapName, 'todos');
  } finally { await c.close(); }
});

test('captured CLIENT_OP frame: applied, no ack on success', async () => {
  const { meta, bytes } = vectors.message('c2s_CLIENT_OP');
  const op = meta.message.payload;
  const c = await Client.authed();
  try {
    c.sendRaw(bytes);
    await c.expectNone((m) => m.type === 'OP_ACK' || m.type === 'OP_REJECTED' || m.type === 'ERROR',
      () => watchLww(c, op.mapName));   // a read: the server answers the write first
    assert.deepEqual(JSON.parse(psql(`SELECT topgun.lww_get('${op.mapName}', '${op.key}')`)), op.record.value);
    assert.equal(psql(`SELECT ts::text FROM topgun.lww WHERE map = '${op.mapName}' AND key = '${op.key}'`),
      `${op.record.timestamp.millis}:0:${op.record.timestamp.nodeId}`);
  } finally { await c.close(); }
});
