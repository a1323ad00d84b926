'use strict';
// bench/processor_bench.js — entry processors over the wire (issue 15).  Run
// through bench/processor_bench.sh (throwaway cluster).  Closed loop: PB_CONNS
// connections each keep PB_WINDOW ENTRY_PROCESS {builtin:increment, args 1}
// in flight and send the next when its ENTRY_PROCESS_RESPONSE arrives (the
// server answers after the durable commit).
//   hot       every request on one key
//   distinct  every request on a key of its own
// Prints processed/s and the request latency p50/p99/max per phase, and for
// the hot key checks the stored value moved by exactly the number of
// successful increments (no lost update).  Asserts nothing else.
// Environment: TOPGUN_WS_URL, TOPGUN_JWT_SECRET, TOPGUN_PG (psql conninfo);
// PB_CONNS (50), PB_WINDOW (4), PB_SECONDS (5), PB_WARMUP_S (1), PB_ONLY (hot|distinct),
// PB_RUNS (3): each phase runs PB_RUNS times on a fresh map and the median is
// printed too (one run on this 2-core machine varies by ±20 %).
const path = require('node:path');
const { WebSocket, pack, messages, token, now, stats } = require('./lib_node');

const URL = process.env.TOPGUN_WS_URL;
const CONNS = Number(process.env.PB_CONNS || 50);
const WINDOW = Number(process.env.PB_WINDOW || 4);
const SECONDS = Number(process.env.PB_SECONDS || 5);
const WARMUP = Number(process.env.PB_WARMUP_S || 1);
const ONLY = process.env.PB_ONLY || '';	// 'hot' or 'distinct': that phase alone
const RUNS = Math.max(1, Number(process.env.PB_RUNS || 3));
const { psql } = require(path.join(__dirname, '..', 'test', 'e2e', 'lib', 'psql'));

function open(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL, { perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    ws.on('error', reject);
    ws.on('message', (data) => { for (const m of messages(data)) handle(m); });
    const handle = (m) => {
      if (m.type === 'AUTH_REQUIRED') ws.send(pack({ type: 'AUTH', token: token(`pb-${i}`) }));
      else if (m.type === 'AUTH_ACK') resolve(ws);
      else if (m.type === 'AUTH_FAIL') reject(new Error(m.error));
      else if (ws.onReply) ws.onReply(m);
    };
  });
}

async function phase(name, conns, keyOf, run) {
  const map = `pb_${name}_${process.pid}_${run}`;
  let seq = 0;
  let ok = 0;
  let failed = 0;
  let firstError = null;
  let done = 0;
  const lat = [];
  const t0 = now();
  const tMeasure = t0 + WARMUP * 1000;
  const tEnd = tMeasure + SECONDS * 1000;
  let counted = 0;
  await Promise.all(conns.map((ws, ci) => new Promise((resolve) => {
    const sent = new Map();
    let inflight = 0;
    const send = () => {
      const requestId = `${ci}-${seq++}`;
      sent.set(requestId, now());
      inflight++;
      ws.send(pack({ type: 'ENTRY_PROCESS', requestId, mapName: map, key: keyOf(ci, seq),
        processor: { name: 'builtin:increment', code: 'unused', args: 1 } }));
    };
    ws.onReply = (m) => {
      if (m.type !== 'ENTRY_PROCESS_RESPONSE') return;
      const t = now();
      const s = sent.get(m.requestId);
      sent.delete(m.requestId);
      inflight--;
      if (m.success) ok++; else { failed++; if (!firstError) firstError = m.error || JSON.stringify(m); }
      if (s >= tMeasure && t <= tEnd) { lat.push(t - s); counted++; }
      if (t < tEnd) send();
      else if (inflight === 0) { done++; resolve(); }
    };
    for (let w = 0; w < WINDOW; w++) send();
  })));
  const s = stats(lat);
  console.log(`${name.padEnd(9)} ${(counted / SECONDS).toFixed(0).padStart(7)} processed/s  ` +
    `latency p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms  max ${s.max.toFixed(2)} ms  ` +
    `(${CONNS} connections × window ${WINDOW}; ${ok} succeeded, ${failed} failed in all${firstError ? ` (first: ${firstError})` : ''})`);
  return { map, ok, rate: counted / SECONDS, p99: s.p99 };
}

function median(xs) {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.floor((v.length - 1) / 2)];
}

async function phases(name, conns, keyOf, after) {
  const rs = [];
  for (let run = 0; run < RUNS; run++) {
    const r = await phase(name, conns, keyOf, run);
    if (after) after(r);
    rs.push(r);
  }
  if (RUNS > 1) {
    console.log(`${name.padEnd(9)} median of ${RUNS} runs: ${median(rs.map((r) => r.rate)).toFixed(0)} processed/s ` +
      `(runs ${rs.map((r) => r.rate.toFixed(0)).join(', ')}), p99 median ${median(rs.map((r) => r.p99)).toFixed(2)} ms`);
  }
}

async function main() {
  const conns = [];
  for (let i = 0; i < CONNS; i++) conns.push(await open(i));
  if (ONLY !== 'distinct') {
    await phases('hot', conns, () => 'hot', (hot) => {
      const stored = Number(psql(`SELECT topgun.lww_get('${hot.map}', 'hot')`));
      console.log(`hot key: stored value ${stored}, successful increments ${hot.ok}: ${stored === hot.ok ? 'no lost update' : 'MISMATCH'}`);
    });
  }
  if (ONLY !== 'hot') await phases('distinct', conns, (ci, s) => `k-${ci}-${s}`);
  for (const ws of conns) ws.close();
  console.log(`reader transactions serving several processors: ${psql("SELECT string_agg(name || ' ' || value, ', ') FROM topgun.worker_stats WHERE name LIKE 'processor%batch%'")}`);
}

// a stall (replies stop arriving) must not hang or end silently
const deadline = setTimeout(() => { console.log('STALLED: replies stopped arriving'); process.exit(1); },
  (2 * RUNS * (WARMUP + SECONDS) + 60) * 1000);
main().then(() => clearTimeout(deadline), (e) => { console.error(e); process.exit(1); });
