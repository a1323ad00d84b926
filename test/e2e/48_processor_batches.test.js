'use strict';
// Entry processors in shared reader transactions (issue 15's throughput):
// single-key ENTRY_PROCESS requests of different connections that are queued
// together run in one transaction, sorted by their key lock, and are answered
// after its commit.  Whatever the batching, every increment is applied exactly
// once and answered with its own result; a processor that raises fails alone.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Client } = require('./lib/client');
const hlc = require('./lib/hlc');
const { psql, lit } = require('./lib/psql');
const { stat } = require('./lib/barrier');

const CONNS = 20;
const EACH = 10;
const rid = () => crypto.randomUUID();

async function clients(n) {
  const cs = [];
  for (let i = 0; i < n; i++) cs.push(await Client.authed({ name: `proc-${i}` }));
  return cs;
}

// Send every request at once, then collect each connection's responses.
async function fire(cs, make) {
  const want = cs.map((c, ci) => {
    const ids = [];
    for (let j = 0; j < EACH; j++) {
      const requestId = rid();
      ids.push(requestId);
      c.send({ type: 'ENTRY_PROCESS', requestId, ...make(ci, j) });
    }
    return ids;
  });
  const out = [];
  for (let ci = 0; ci < cs.length; ci++) {
    for (const id of want[ci]) {
      out.push(await cs[ci].waitFor((m) => m.type === 'ENTRY_PROCESS_RESPONSE' && m.requestId === id, 30000));
    }
  }
  return out;
}

test('concurrent increments of one hot key: each applied once, each answered with its own value', async () => {
  const map = hlc.uniqueName('hot');
  const cs = await clients(CONNS);
  const batchedBefore = stat('processors_batched');
  try {
    const rs = await fire(cs, () => ({ mapName: map, key: 'n', processor: { name: 'builtin:increment', code: 'x', args: 1 } }));
    assert.ok(rs.every((r) => r.success === true), JSON.stringify(rs.find((r) => !r.success)));
    const results = rs.map((r) => r.newValue).sort((a, b) => a - b);
    assert.deepEqual(results, Array.from({ length: CONNS * EACH }, (_, i) => i + 1), 'every increment saw a value of its own');
    assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'n')`), String(CONNS * EACH));
    // 200 requests from 20 connections at once: some shared a transaction
    assert.ok(stat('processors_batched') > batchedBefore, 'some processors were served in shared transactions');
  } finally { for (const c of cs) await c.close(); }
});

// Requests served so far by each reader executor.
const readerRequests = () => JSON.parse(psql(
  "SELECT coalesce(jsonb_object_agg(id, requests), '{}') FROM topgun.executors WHERE role = 'reader'"));

test('concurrent increments of distinct keys: every key once, all on the map\'s reader', async () => {
  const map = hlc.uniqueName('distinct');
  const cs = await clients(CONNS);
  try {
    const before = readerRequests();
    assert.ok(Object.keys(before).length >= 2, 'the cluster runs several readers');
    const rs = await fire(cs, (ci, j) => ({ mapName: map, key: `k${ci}-${j}`, processor: { name: 'builtin:increment', code: 'x', args: ci + 1 } }));
    assert.ok(rs.every((r) => r.success === true));
    // the processors of one map go to one reader, whichever connection sent them
    // (two readers writing one map would only wait for each other's Merkle flush)
    const after = readerRequests();
    const most = Math.max(...Object.keys(after).map((id) => after[id] - (before[id] || 0)));
    assert.ok(most >= CONNS * EACH, `one reader served all ${CONNS * EACH} processors of the map: ${JSON.stringify({ before, after })}`);
    const rows = JSON.parse(psql(`SELECT jsonb_object_agg(key, value) FROM topgun.lww_entries WHERE map = ${lit(map)}`));
    assert.equal(Object.keys(rows).length, CONNS * EACH);
    for (let ci = 0; ci < CONNS; ci++) for (let j = 0; j < EACH; j++) assert.equal(rows[`k${ci}-${j}`], ci + 1);
  } finally { for (const c of cs) await c.close(); }
});

test('a processor that raises fails alone; the increments it was queued with are applied and answered', async () => {
  const map = hlc.uniqueName('boom');
  const fn = `e2e_boom_${crypto.randomBytes(4).toString('hex')}`;
  psql(`CREATE FUNCTION public.${fn}(cur jsonb, args jsonb, key text, map text, OUT value jsonb, OUT result jsonb)
        LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom from %', key; END $$`);
  psql(`SELECT topgun.register_processor(${lit(fn)}, 'public.${fn}(jsonb, jsonb, text, text)'::regprocedure)`);
  const cs = await clients(CONNS);
  try {
    const rs = await fire(cs, (ci, j) => (ci === 3 && j % 3 === 0
      ? { mapName: map, key: 'n', processor: { name: fn, code: 'x' } }
      : { mapName: map, key: 'n', processor: { name: 'builtin:increment', code: 'x', args: 1 } }));
    const booms = rs.filter((r) => r.success === false);
    assert.equal(booms.length, 4);
    assert.ok(booms.every((r) => /boom from n/.test(r.error)), JSON.stringify(booms[0]));
    const incs = rs.filter((r) => r.success === true).map((r) => r.newValue).sort((a, b) => a - b);
    assert.deepEqual(incs, Array.from({ length: CONNS * EACH - 4 }, (_, i) => i + 1));
    assert.equal(psql(`SELECT topgun.lww_get(${lit(map)}, 'n')`), String(CONNS * EACH - 4));
  } finally {
    for (const c of cs) await c.close();
    psql(`SELECT topgun.unregister_processor(${lit(fn)})`);
    psql(`DROP FUNCTION public.${fn}(jsonb, jsonb, text, text)`);
  }
});
