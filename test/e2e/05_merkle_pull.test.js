'use strict';
// A fresh client pulls a map of several thousand records written through SQL
// (topgun.lww_put), walking SYNC_INIT → MERKLE_REQ_BUCKET → SYNC_RESP_LEAF
// as the TopGun client does.  It must reconstruct every record, and the JS
// re-implementation of TopGun's tree (checked against the golden vectors by
// 00_merkle_lib.test.js) must compute the same root the server announced.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, lit } = require('./lib/psql');
const { LwwTree } = require('./lib/merkle');
const { pullLww } = require('./lib/sync');

const N = 5000;

test(`fresh client pulls ${N} records through the Merkle walk and gets the same root`, { timeout: 180000 }, async () => {
  const map = hlc.uniqueName('pull');
  const base = 1736000000000;
  psql(`SELECT count(*) FROM (SELECT topgun.lww_put(${lit(map)}, 'key-' || i,
          jsonb_build_object('i', i, 'name', 'record ' || i, 'even', i % 2 = 0),
          topgun.hlc(${base} + i, i % 7, 'sql-node'),
          CASE WHEN i % 500 = 0 THEN 3600000 END)
        FROM generate_series(1, ${N}) i) s`, { timeoutMs: 120000 });
  // a few tombstones: they are part of the tree and of the pull
  psql(`SELECT topgun.lww_remove(${lit(map)}, 'key-' || i, topgun.hlc(${base} + 100000 + i, 0, 'sql-node')) FROM generate_series(1, 50) i`);

  const expected = new LwwTree();
  for (let i = 1; i <= N; i++) {
    const ts = i <= 50 ? { millis: base + 100000 + i, counter: 0, nodeId: 'sql-node' } : { millis: base + i, counter: i % 7, nodeId: 'sql-node' };
    expected.update(`key-${i}`, { timestamp: ts });
  }
  const sqlRoot = Number(psql(`SELECT topgun.merkle_root(${lit(map)})`));
  assert.equal(sqlRoot, expected.root(), 'merkle_root() equals the JS tree of the inserted records');

  const c = await Client.authed({ name: 'puller' });
  try {
    const t0 = Date.now();
    const pulled = await pullLww(c, map, { timeoutMs: 150000 });
    const ms = Date.now() - t0;
    console.log(`# pulled ${pulled.records.size} records with ${pulled.requests} MERKLE_REQ_BUCKET requests in ${ms} ms`);
    assert.equal(pulled.root, sqlRoot, 'SYNC_RESP_ROOT.rootHash');
    assert.equal(pulled.records.size, N, 'every record reconstructed');

    // Rebuild the tree from what was received and compare every level.
    const got = new LwwTree();
    for (const [key, rec] of pulled.records) got.update(key, rec);
    assert.equal(got.root(), pulled.root, 'root recomputed from the pulled records');
    for (const [path, h] of pulled.bucketHashes) {
      assert.equal(got.hash(path), h, `bucket hash announced for '${path}'`);
    }
    for (let i = 1; i <= N; i++) {
      const r = pulled.records.get(`key-${i}`);
      if (i <= 50) {
        assert.equal(r.value, null, `key-${i} is a tombstone`);
      } else {
        assert.deepEqual(r.value, { i, name: `record ${i}`, even: i % 2 === 0 }, `value of key-${i}`);
        assert.deepEqual(r.timestamp, { millis: base + i, counter: i % 7, nodeId: 'sql-node' });
        if (i % 500 === 0) assert.equal(r.ttlMs, 3600000);
        else assert.equal(r.ttlMs, undefined, `key-${i} has no ttlMs`);
      }
    }

    // A client that already has everything sees an equal root and needs no walk.
    c.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: Date.now() - 1000 });
    const again = await c.waitFor((m) => m.type === 'SYNC_RESP_ROOT' && m.payload.mapName === map, 5000);
    assert.equal(again.payload.rootHash, got.root());

    // Requests for paths the server does not have → empty buckets.
    c.send({ type: 'MERKLE_REQ_BUCKET', payload: { mapName: `${map}-absent`, path: '' } });
    const empty = await c.waitFor((m) => m.type === 'SYNC_RESP_BUCKETS' && m.payload.mapName === `${map}-absent`, 5000);
    assert.deepEqual(empty.payload.buckets, {});
  } finally { await c.close(); }
});
