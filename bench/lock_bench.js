'use strict';
// bench/lock_bench.js — distributed locks over the wire (issue 15).  Run
// through bench/lock_bench.sh (throwaway cluster).
//
// Phases:
//   uncontended  one connection, one lock name, LOCK_N times (after
//                LOCK_WARMUP untimed ones): LOCK_REQUEST → LOCK_GRANTED
//                ("acquire"), LOCK_RELEASE → LOCK_RELEASED ("release"), and
//                the whole round trip.  Every 1000th grant reserves the next
//                token block with a committed SQL transaction
//                (topgun.lock_reserve_tokens, docs/locks.md): that is the max.
//                Baseline: as many PING → PONG round trips on the same
//                connection (answered by the socket process when nothing is
//                pending: the transport and scheduling share of the numbers).
//   hand-over    LOCK_CONTENDERS connections loop on one lock (request, on
//                grant release at once); latency from a LOCK_RELEASE being
//                sent to the next holder's LOCK_GRANTED arriving (one process
//                sees both), and grants per second.
// Environment: TOPGUN_WS_URL, TOPGUN_JWT_SECRET; LOCK_N (2000), LOCK_WARMUP
// (200), LOCK_CONTENDERS (20), LOCK_HANDOVERS (2000).
const path = require('node:path');
const crypto = require('node:crypto');
const { Client } = require(path.join(__dirname, '..', 'test', 'e2e', 'lib', 'client'));

const N = Number(process.env.LOCK_N || 2000);
const WARMUP = Number(process.env.LOCK_WARMUP || 200);
const CONTENDERS = Number(process.env.LOCK_CONTENDERS || 20);
const HANDOVERS = Number(process.env.LOCK_HANDOVERS || 2000);

const now = () => Number(process.hrtime.bigint()) / 1e6;
function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const line = (label, xs) => console.log(
  `${label.padEnd(28)} n=${xs.length}  p50=${pct(xs, 50).toFixed(3)} ms  p99=${pct(xs, 99).toFixed(3)} ms  max=${Math.max(...xs).toFixed(3)} ms`);

async function acquire(c, name) {
  const requestId = crypto.randomUUID();
  c.send({ type: 'LOCK_REQUEST', payload: { requestId, name, ttl: 10000 } });
  const m = await c.waitFor((x) => x.type === 'LOCK_GRANTED' && x.payload.requestId === requestId, 60000);
  return m.payload.fencingToken;
}
async function release(c, name, fencingToken) {
  const requestId = crypto.randomUUID();
  c.send({ type: 'LOCK_RELEASE', payload: { requestId, name, fencingToken } });
  const m = await c.waitFor((x) => x.type === 'LOCK_RELEASED' && x.payload.requestId === requestId, 60000);
  if (m.payload.success !== true) throw new Error(`release of ${name} token ${fencingToken} failed`);
}

async function uncontended() {
  const c = await Client.authed({ name: 'bench-uncontended' });
  const name = `bench-${crypto.randomBytes(4).toString('hex')}`;
  const acq = [], rel = [], rt = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const t0 = now();
    const token = await acquire(c, name);
    const t1 = now();
    await release(c, name, token);
    const t2 = now();
    if (i >= WARMUP) { acq.push(t1 - t0); rel.push(t2 - t1); rt.push(t2 - t0); }
  }
  const ping = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const t0 = now();
    await c.barrier(60000);
    if (i >= WARMUP) ping.push(now() - t0);
  }
  await c.close();
  console.log(`# uncontended: one connection, one lock, ${N} round trips after ${WARMUP} warm-up`);
  line('acquire (REQUEST→GRANTED)', acq);
  line('release (RELEASE→RELEASED)', rel);
  line('round trip', rt);
  line('baseline: PING→PONG', ping);
  const total = rt.reduce((a, b) => a + b, 0);
  console.log(`round trips/s                ${(N / (total / 1000)).toFixed(0)}`);
}

async function handover() {
  const clients = [];
  for (let i = 0; i < CONTENDERS; i++) clients.push(await Client.authed({ name: `bench-contender-${i}` }));
  const name = `bench-contended-${crypto.randomBytes(4).toString('hex')}`;
  const lat = [];
  let grants = 0;
  let releasedAt = null;
  const t0 = now();
  await Promise.all(clients.map(async (c) => {
    while (grants < HANDOVERS) {
      const token = await acquire(c, name);
      if (releasedAt !== null) lat.push(now() - releasedAt);
      grants++;
      releasedAt = now();
      await release(c, name, token);
    }
  }));
  const secs = (now() - t0) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  console.log(`# hand-over: ${CONTENDERS} connections looping on one lock, ${grants} grants`);
  line('release sent→next GRANTED', lat);
  console.log(`grants/s                     ${(grants / secs).toFixed(0)}`);
}

(async () => {
  await uncontended();
  await handover();
})().catch((e) => { console.error(e); process.exit(1); });
