'use strict';
// A JS re-implementation of TopGun's Merkle trees (PROTOCOL.md §6), written
// from the specification: FNV-1a over UTF-16 code units, depth 3, radix 16,
// node hash = wrapping uint32 sum of the children.  Checked against
// vectors/lww_merkle.json and vectors/ormap_merkle.json by 00_merkle_lib.test.js.

function fnv1a(str) {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function pathOf(key) {
  return fnv1a(key).toString(16).padStart(8, '0').slice(0, 3);
}

function itemString(key, ts) {
  return `${key}:${ts.millis}:${ts.counter}:${ts.nodeId}`;
}

// The ORMap value stringification used in entry hashes.
function stringifyValue(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'object') return JSON.stringify(v, Object.keys(v).sort());
  return String(v);
}

function orEntryString(key, records) {
  const parts = [`key:${key}`];
  const sorted = [...records].sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
  for (const r of sorted) {
    let p = `${r.tag}:${stringifyValue(r.value)}:${r.timestamp.millis}:${r.timestamp.counter}:${r.timestamp.nodeId}`;
    if (r.ttlMs !== undefined && r.ttlMs !== null) p += `:ttl=${r.ttlMs}`;
    parts.push(p);
  }
  return parts.join('|');
}

// A sparse prefix tree of per-key hashes.
class Tree {
  constructor() {
    this.leaves = new Map(); // path(3) → Map(key → hash)
  }

  setHash(key, hash) {
    const p = pathOf(key);
    if (!this.leaves.has(p)) this.leaves.set(p, new Map());
    this.leaves.get(p).set(key, hash >>> 0);
  }

  deleteKey(key) {
    const p = pathOf(key);
    const leaf = this.leaves.get(p);
    if (leaf) leaf.delete(key);
  }

  // Hash of the node at `path` (0..3 chars); 0 when absent.
  hash(path = '') {
    let sum = 0;
    for (const [p, leaf] of this.leaves) {
      if (!p.startsWith(path)) continue;
      for (const h of leaf.values()) sum = (sum + h) >>> 0;
    }
    return sum;
  }

  root() { return this.hash(''); }

  // {hexChar: childHash} of the existing children of `path`.
  buckets(path = '') {
    const out = {};
    for (const [p, leaf] of this.leaves) {
      if (!p.startsWith(path) || p.length <= path.length) continue;
      const c = p[path.length];
      let h = out[c] || 0;
      for (const v of leaf.values()) h = (h + v) >>> 0;
      out[c] = h;
    }
    return out;
  }
}

class LwwTree extends Tree {
  update(key, record) {
    this.setHash(key, fnv1a(itemString(key, record.timestamp)));
  }
}

class OrTree extends Tree {
  // records: the stored (non-tombstoned) records of the key.
  updateKey(key, records) {
    if (!records.length) this.deleteKey(key);
    else this.setHash(key, fnv1a(orEntryString(key, records)));
  }
}

module.exports = { fnv1a, pathOf, itemString, stringifyValue, orEntryString, LwwTree, OrTree };
