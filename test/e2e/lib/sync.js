'use strict';
// Merkle pulls as the TopGun client does them (PROTOCOL.md §6.4/§6.5): ask
// for the root, then walk every bucket whose hash differs from the local
// (empty) tree, pipelining the requests, until the leaves arrive.

// LWW: returns {root, timestamp, records: Map(key → record), bucketHashes: Map(path → hash)}.
async function pullLww(client, mapName, { timeoutMs = 60000, lastSyncTimestamp = 0 } = {}) {
  client.send({ type: 'SYNC_INIT', mapName, lastSyncTimestamp });
  const rootMsg = await client.waitFor((m) => m.type === 'SYNC_RESP_ROOT' && m.payload && m.payload.mapName === mapName, timeoutMs);
  const root = rootMsg.payload.rootHash;
  const records = new Map();
  const bucketHashes = new Map([['', root]]);
  if (root === 0) return { root, timestamp: rootMsg.payload.timestamp, records, bucketHashes, requests: 0 };
  const deadline = Date.now() + timeoutMs;
  let pending = [''];
  let requests = 0;
  while (pending.length) {
    for (const p of pending) client.send({ type: 'MERKLE_REQ_BUCKET', payload: { mapName, path: p } });
    requests += pending.length;
    const want = new Set(pending);
    const next = [];
    while (want.size) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Merkle walk of ${mapName} timed out with ${want.size} requests unanswered`);
      const m = await client.waitFor((x) => (x.type === 'SYNC_RESP_BUCKETS' || x.type === 'SYNC_RESP_LEAF') &&
        x.payload && x.payload.mapName === mapName && want.has(x.payload.path), left);
      want.delete(m.payload.path);
      if (m.type === 'SYNC_RESP_LEAF') {
        for (const r of m.payload.records) records.set(r.key, r.record);
      } else {
        for (const [c, h] of Object.entries(m.payload.buckets)) {
          bucketHashes.set(m.payload.path + c, h);
          if (h !== 0) next.push(m.payload.path + c);
        }
      }
    }
    pending = next;
  }
  return { root, timestamp: rootMsg.payload.timestamp, records, bucketHashes, requests };
}

// ORMap: returns {root, entries: Map(key → {records, tombstones}), tombstones: Set}.
async function pullOr(client, mapName, { timeoutMs = 60000 } = {}) {
  client.send({ type: 'ORMAP_SYNC_INIT', mapName, rootHash: 0, bucketHashes: {}, lastSyncTimestamp: 0 });
  const rootMsg = await client.waitFor((m) => m.type === 'ORMAP_SYNC_RESP_ROOT' && m.payload && m.payload.mapName === mapName, timeoutMs);
  const root = rootMsg.payload.rootHash;
  const entries = new Map();
  const tombstones = new Set();
  if (root === 0) return { root, entries, tombstones };
  const deadline = Date.now() + timeoutMs;
  let pending = [''];
  while (pending.length) {
    for (const p of pending) client.send({ type: 'ORMAP_MERKLE_REQ_BUCKET', payload: { mapName, path: p } });
    const want = new Set(pending);
    const next = [];
    while (want.size) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`ORMap Merkle walk of ${mapName} timed out`);
      const m = await client.waitFor((x) => (x.type === 'ORMAP_SYNC_RESP_BUCKETS' || x.type === 'ORMAP_SYNC_RESP_LEAF') &&
        x.payload && x.payload.mapName === mapName && want.has(x.payload.path), left);
      want.delete(m.payload.path);
      if (m.type === 'ORMAP_SYNC_RESP_LEAF') {
        for (const e of m.payload.entries) {
          entries.set(e.key, { records: e.records, tombstones: e.tombstones });
          for (const t of e.tombstones || []) tombstones.add(t);
        }
      } else {
        for (const [c, h] of Object.entries(m.payload.buckets)) if (h !== 0) next.push(m.payload.path + c);
      }
    }
    pending = next;
  }
  return { root, entries, tombstones };
}

// Start watching a map: SYNC_INIT / ORMAP_SYNC_INIT registers the connection
// as a watcher.  Also a barrier after the connection's own writes: the
// server commits and answers them before it answers a read.
async function watchLww(c, map, timeoutMs = 10000) {
  c.send({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 });
  await c.waitFor((m) => m.type === 'SYNC_RESP_ROOT' && m.payload && m.payload.mapName === map, timeoutMs);
}

async function watchOr(c, map, timeoutMs = 10000) {
  c.send({ type: 'ORMAP_SYNC_INIT', mapName: map, rootHash: 0, bucketHashes: {}, lastSyncTimestamp: 0 });
  await c.waitFor((m) => m.type === 'ORMAP_SYNC_RESP_ROOT' && m.payload && m.payload.mapName === map, timeoutMs);
}

// The events for `map` in one SERVER_BATCH_EVENT / SERVER_EVENT message.
function eventsFor(m, map) {
  if (m.type === 'SERVER_BATCH_EVENT') return m.payload.events.filter((e) => e.mapName === map);
  if (m.type === 'SERVER_EVENT' && m.payload.mapName === map) return [m.payload];
  return [];
}
const isEvent = (map) => (m) => eventsFor(m, map).length > 0;

module.exports = { pullLww, pullOr, watchLww, watchOr, eventsFor, isEvent };
