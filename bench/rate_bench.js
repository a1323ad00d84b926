'use strict';
// bench/rate_bench.js — rate limits under a flood (issue 17 item 8).  Run
// through bench/rate_bench.sh (throwaway cluster, every identity limited to
// RATE_IDENT_OPS ops/s and RATE_IDENT_MSGS messages/s).
//
// RATE_GOOD clients, each its own identity, send an OP_BATCH of 5 ops every
// 50 ms (100 ops/s, 20 messages/s: under the limits) and time each OP_ACK.
// Phases of RATE_SECONDS worth of good acks each (GOOD x 20 x RATE_SECONDS
// acks: the phase ends on that count, not on a timer):
//   baseline      the good clients alone (after 20 acks each as warm-up);
//   flood         plus one identity on RATE_FLOODERS connections sending,
//                 together, 20x its limits (OP_BATCHes of 5 ops, open loop),
//                 measured from its first ERROR 429 on (the limit is biting);
//   flood, off    the same with the rate limits off (0): what they prevent,
//                 measured from the flood's 20th acked batch on.
// Prints the good clients' ack p50/p99 per phase, the ratio of the flood's
// p99 to the baseline's against the 2x target, and what the flood got.
const crypto = require('node:crypto');
const path = require('node:path');
const { WebSocket, pack, messages, Gate, token: mint, now, stats } = require('./lib_node');
const hlc = require(path.join(__dirname, '..', 'test', 'e2e', 'lib', 'hlc'));
const { psql } = require(path.join(__dirname, '..', 'test', 'e2e', 'lib', 'psql'));
const { reloadConf } = require(path.join(__dirname, '..', 'test', 'e2e', 'lib', 'barrier'));

const URL = process.env.TOPGUN_WS_URL;
const GOOD = Number(process.env.RATE_GOOD || 10);
const FLOODERS = Number(process.env.RATE_FLOODERS || 10);
const SECONDS = Number(process.env.RATE_SECONDS || 10);
const IDENT_OPS = Number(process.env.RATE_IDENT_OPS || 250);
const IDENT_MSGS = Number(process.env.RATE_IDENT_MSGS || 50);
const OPS_PER_BATCH = 5;

const PER_CLIENT_PER_S = 1000 / 50;	// a good client's batches (and acks) per second
const acks = new Gate();	// good acks while a phase measures

function connect(identity, onMessage) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL, { perMessageDeflate: false, maxPayload: 1 << 28 });
    ws.binaryType = 'nodebuffer';
    let authed = false;
    ws.on('message', (data) => {
      for (const m of messages(data)) {
        if (authed) onMessage(m);
        else if (m.type === 'AUTH_REQUIRED') ws.send(pack({ type: 'AUTH', token: mint(identity, { roles: ['USER'] }) }));
        else if (m.type === 'AUTH_ACK') { authed = true; resolve(ws); } else reject(new Error(`${identity}: ${m.type}`));
      }
    });
    ws.on('error', reject);
  });
}

let seq = 0;
function batch(map) {
  const ops = [];
  for (let i = 0; i < OPS_PER_BATCH; i++) {
    seq++;
    ops.push(hlc.putOp(map, `k${seq % 1000}`, { n: seq }, hlc.now('bench'), { id: String(seq) }));
  }
  return ops;
}

// A well-behaved client: one batch every 50 ms, ack latency by lastId.
async function goodClient(i, map, warm) {
  const sent = new Map();
  const lat = [];
  let failed = 0;
  let on = false;
  let seen = 0;
  const ws = await connect(`good-${i}-${crypto.randomBytes(3).toString('hex')}`, (m) => {
    if (m.type !== 'OP_ACK') return;
    const t = sent.get(m.payload.lastId);
    if (t === undefined) return;
    sent.delete(m.payload.lastId);
    if (m.payload.results.some((r) => !r.success)) failed++;
    if (++seen === PER_CLIENT_PER_S) warm.bump();	// warmed up: plans, first groups
    if (on) { lat.push(now() - t); acks.bump(); }
  });
  const timer = setInterval(() => {
    const ops = batch(map);
    sent.set(ops[ops.length - 1].id, now());
    ws.send(pack({ type: 'OP_BATCH', payload: { ops } }));
  }, 1000 / PER_CLIENT_PER_S);
  return {
    start() { lat.length = 0; failed = 0; on = true; },
    stop() { on = false; return { lat: lat.slice(), failed }; },
    close() { clearInterval(timer); ws.close(); },
  };
}

// The flooding identity: FLOODERS connections, together 20x its message limit.
// Resolves `biting` at its first ERROR 429, `admitted` at its 20th acked batch.
async function flood(map) {
  const identity = `flood-${crypto.randomBytes(3).toString('hex')}`;
  const perConnPerS = (20 * IDENT_MSGS) / FLOODERS;
  const r = { sent: 0, acked: 0, refused: 0, err429: 0, closed: 0 };
  const refusals = new Gate();
  const admissions = new Gate();
  const socks = [];
  for (let i = 0; i < FLOODERS; i++) {
    const ws = await connect(identity, (m) => {
      if (m.type === 'OP_ACK') {
        if (m.payload.results.every((x) => x.success)) { r.acked++; admissions.bump(); } else if (m.payload.results.every((x) => x.error === 'rate limited')) r.refused++;
      } else if (m.type === 'ERROR' && m.payload.code === 429) { r.err429++; refusals.bump(); }
    });
    ws.on('close', () => { r.closed++; });
    socks.push(ws);
  }
  // open loop, every 10 ms as many batches as the rate asks for
  const per10 = perConnPerS / 100;
  let debt = 0;
  const timer = setInterval(() => {
    debt += per10;
    while (debt >= 1) {
      debt -= 1;
      for (const ws of socks) {
        if (ws.readyState !== WebSocket.OPEN) continue;
        ws.send(pack({ type: 'OP_BATCH', payload: { ops: batch(map) } }));
        r.sent++;
      }
    }
  }, 10);
  return {
    r,
    biting: refusals.reach(1),
    admitted: admissions.reach(20),
    stop() { clearInterval(timer); for (const ws of socks) ws.close(); },
  };
}

async function setLimits(ops, msgs) {
  psql(`ALTER SYSTEM SET topgun.rate_limit_identity_ops_per_s = ${ops}`);
  psql(`ALTER SYSTEM SET topgun.rate_limit_identity_messages_per_s = ${msgs}`);
  await reloadConf();	// the tests' barrier: the sync server counted the reload
}

async function phase(name, goods) {
  for (const g of goods) g.start();
  await acks.reach(acks.n + goods.length * PER_CLIENT_PER_S * SECONDS);
  const res = goods.map((g) => g.stop());
  const all = [].concat(...res.map((x) => x.lat));
  const s = stats(all);
  const failed = res.reduce((a, x) => a + x.failed, 0);
  console.log(`${name.padEnd(12)} good acks n=${s.n}  p50=${s.p50.toFixed(2)} ms  p99=${s.p99.toFixed(2)} ms  max=${s.max.toFixed(2)} ms  failed=${failed}`);
  return s;
}

async function main() {
  const map = `rate-bench-${crypto.randomBytes(3).toString('hex')}`;
  console.log(`# ${GOOD} good clients x ${1000 / 50 * OPS_PER_BATCH} ops/s; flood: 1 identity on ${FLOODERS} connections, ` +
    `${20 * IDENT_MSGS} messages/s = ${20 * IDENT_MSGS * OPS_PER_BATCH} ops/s (limits ${IDENT_MSGS} messages/s, ${IDENT_OPS} ops/s); ${SECONDS} s per phase`);
  const goods = [];
  const warm = new Gate();
  for (let i = 0; i < GOOD; i++) goods.push(await goodClient(i, map, warm));
  await warm.reach(GOOD);	// every good client had PER_CLIENT_PER_S acks
  const base = await phase('baseline', goods);

  const t0 = now();
  let f = await flood(`${map}-flood`);
  await f.biting;
  const fl = await phase('flood', goods);
  f.stop();
  const fr = f.r;
  const fs = (now() - t0) / 1000;
  console.log(`flood        sent=${fr.sent} (${(fr.sent / fs).toFixed(0)}/s)  admitted=${fr.acked} (${(fr.acked / fs).toFixed(1)}/s)  refused=${fr.refused}  ERROR 429=${fr.err429}  closed=${fr.closed}`);

  await setLimits(0, 0);
  f = await flood(`${map}-flood-off`);
  await f.admitted;
  const off = await phase('flood, off', goods);
  f.stop();
  console.log(`flood, off   sent=${f.r.sent}  admitted=${f.r.acked}  refused=${f.r.refused}`);
  for (const g of goods) g.close();

  const ratio = fl.p99 / base.p99;
  console.log(`ack p99 ratio flood/baseline = ${ratio.toFixed(2)} (target <= 2: ${ratio <= 2 ? 'met' : 'NOT met'}); ` +
    `limits off: ${(off.p99 / base.p99).toFixed(2)}`);
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
