'use strict';
// The JS Merkle re-implementation (lib/merkle.js) must reproduce the golden
// vectors computed with the real TopGun code before it is used to check the
// server.  No server needed.
const test = require('node:test');
const assert = require('node:assert/strict');
const { unpack } = require('msgpackr');
const vectors = require('./lib/vectors');
const M = require('./lib/merkle');

function fromUtf16Hex(hex) {
  let s = '';
  for (let i = 0; i < hex.length; i += 4) s += String.fromCharCode(parseInt(hex.slice(i, i + 4), 16));
  return s;
}

// {"$undefined":true}, {"$bin":…} and friends (vectors/README.md conventions).
function isTagged(v) {
  if (v === null || typeof v !== 'object') return false;
  if (!Array.isArray(v)) {
    const ks = Object.keys(v);
    if (ks.length === 1 && ks[0].startsWith('$')) return true;
  }
  return Object.values(v).some(isTagged);
}

test('FNV-1a/UTF-16 matches every case of hash.json', () => {
  const h = vectors.json('hash.json');
  assert.ok(h.cases.length > 300);
  for (const c of h.cases) {
    const input = c.utf16_hex !== undefined ? fromUtf16Hex(c.utf16_hex) : c.input;
    assert.equal(M.fnv1a(input), c.fnv1a_utf16, `case ${c.id} (${c.category})`);
    assert.equal(M.pathOf(input), c.merkle_path, `path of case ${c.id}`);
  }
});

test('LWW tree root, item hashes and every node match lww_merkle.json', () => {
  const v = vectors.json('lww_merkle.json');
  assert.equal(v.scenarios.length, v.scenario_count);
  for (const s of v.scenarios) {
    const t = new M.LwwTree();
    for (const r of s.records) {
      if (r.item_string !== undefined) assert.equal(M.itemString(r.key, r.timestamp), r.item_string, s.name);
      assert.equal(M.fnv1a(M.itemString(r.key, r.timestamp)), r.item_hash, `${s.name}: item ${r.key}`);
      assert.equal(M.pathOf(r.key), r.path, `${s.name}: path of ${r.key}`);
      t.update(r.key, r);
    }
    assert.equal(t.root(), s.root_hash, `${s.name}: root`);
    for (const n of s.nodes) {
      if (s.nodes_with_zero_hash) continue; // history-dependent pruning scenario: only the root is comparable
      assert.equal(t.hash(n.path), n.hash, `${s.name}: node '${n.path}'`);
      assert.deepEqual(t.buckets(n.path), n.buckets, `${s.name}: buckets of '${n.path}'`);
    }
  }
});

test('ORMap value stringification matches ormap_merkle.json stringify_cases', () => {
  const v = vectors.json('ormap_merkle.json');
  let checked = 0;
  for (const c of v.stringify_cases) {
    let value;
    let expected;
    if (isTagged(c.value)) {
      // Values JSON cannot carry ($bin, $date, $undefined, NaN ...): what a
      // Node peer gets from msgpackr unpack of the client's bytes.
      value = unpack(Buffer.from(c.value_msgpack_hex, 'hex'));
      expected = c.stringified_after_msgpackr_unpack_in_node !== undefined
        ? c.stringified_after_msgpackr_unpack_in_node : c.stringified;
    } else {
      // The value exactly as the client held it (lone surrogates included).
      value = c.value;
      expected = c.stringified_utf16_hex !== undefined ? fromUtf16Hex(c.stringified_utf16_hex) : c.stringified;
    }
    assert.equal(M.stringifyValue(value), expected, c.label);
    checked++;
  }
  assert.ok(checked > 50);
});

test('ORMap entry hashes and roots match ormap_merkle.json scenarios', () => {
  const v = vectors.json('ormap_merkle.json');
  let checked = 0;
  for (const s of v.scenarios) {
    if (s.root_hash_after_msgpackr_roundtrip_in_node !== undefined) continue; // lone surrogates: not representable after a Node round trip
    const t = new M.OrTree();
    for (const item of s.items) {
      const recs = item.records.map((r) => ({ ...r, value: unpack(Buffer.from(r.value_msgpack_hex, 'hex')) }));
      const k = s.keys.find((x) => x.key === item.key);
      if (k && k.prehash_utf16_hex === undefined && recs.length) {
        assert.equal(M.orEntryString(item.key, recs), k.prehash, `${s.name}: prehash of ${item.key}`);
        assert.equal(M.fnv1a(M.orEntryString(item.key, recs)), k.entry_hash, `${s.name}: entry hash of ${item.key}`);
      }
      t.updateKey(item.key, recs);
    }
    assert.equal(t.root(), s.root_hash, `${s.name}: root`);
    checked++;
  }
  assert.ok(checked > 20, `only ${checked} scenarios checked`);
});
