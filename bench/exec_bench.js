'use strict';
// bench/exec_bench.js — the executor architecture (issue 11), run through
// bench/exec_bench.sh on a map of EXEC_ROWS records {n, cat: n % 100, title}.
//
//   isolation    one client repeats an unindexed full-scan QUERY_SUB
//                ({predicate: n > EXEC_ROWS - 10}); meanwhile EXEC_OTHERS other
//                connections each send a PING every 10 ms and an OP_BATCH of
//                10 ops every 20 ms (own map): PING round-trip and ack
//                latency p50/p99, and the same without the scanning client.
//   concurrency  two large QUERY_SUBs ({where: {cat: 7}}) one after the other
//                on one connection, then both at once from two connections:
//                ratio of the two elapsed times.
// Environment: TOPGUN_WS_URL, TOPGUN_JWT_SECRET; EXEC_ROWS (1000000),
// EXEC_OTHERS (10), EXEC_SECONDS (10).
const path = require('node:path');
const crypto = require('node:crypto');

const e2e = path.join(__dirname, '..', 'test', 'e2e', 'node_modules');
const WebSocket = require(path.join(e2e, 'ws'));
const { pack, unpack } = require(path.join(e2e, 'msgpackr'));

const URL = process.env.TOPGUN_WS_URL;
const SECRET = process.env.TOPGUN_JWT_SECRET;
const ROWS = Number(process.env.EXEC_ROWS || 1000000);
const OTHERS = Number(process.env.EXEC_OTHERS || 10);
const SECONDS = Number(process.env.EXEC_SECONDS || 10);

const b64 = (b) => Buffer.from(b).toString('base64url');
function token(sub) {
  const now = Math.floor(Date.now() / 1000);
  const h = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const p = b64(JSON.stringify({ sub, userId: sub, roles: ['ADMIN'], iat: now, exp: now + 3600 }));
  const s = crypto.createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${s}`;
}

function each(m, fn) {
  if (m.type !== 'BATCH') { fn(m); return; }
  const d = Buffer.from(m.data);
  const n = d.readUInt32LE(0);
  let off = 4;
  for (let i = 0; i < n; i++) {
    const len = d.readUInt32LE(off);
    off += 4;
    fn(unpack(d.subarray(off, off + len)));
    off += len;
  }
}

function connect(name, onMessage) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL, { perMessageDeflate: false, maxPayload: 1 << 30 });
    ws.binaryType = 'nodebuffer';
    let authed = false;
    ws.on('message', (data) => {
      each(unpack(data), (m) => {
        if (!authed) {
          if (m.type === 'AUTH_REQUIRED') ws.send(pack({ type: 'AUTH', token: token(name) }));
          else if (m.type === 'AUTH_ACK') { authed = true; resolve(ws); } else reject(new Error(`${name}: ${m.type}`));
          return;
        }
        onMessage(m);
      });
    });
    ws.on('error', reject);
  });
}

const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : NaN);
const fmt = (a) => { a.sort((x, y) => x - y); return `p50 ${pct(a, 0.5).toFixed(2)} ms, p99 ${pct(a, 0.99).toFixed(2)} ms (n=${a.length})`; };
const now = () => Number(process.hrtime.bigint()) / 1e6;

// A client that sends QUERY_SUB and resolves with the elapsed ms at QUERY_RESP.
async function querier(name) {
  let waiting = null;
  const ws = await connect(name, (m) => {
    if ((m.type === 'QUERY_RESP' || m.type === 'ERROR') && waiting) { const w = waiting; waiting = null; w(m); }
  });
  let seq = 0;
  return {
    ws,
    query(query) {
      const id = `${name}-${seq++}`;
      const t0 = now();
      return new Promise((resolve) => {
        waiting = (m) => {
          ws.send(pack({ type: 'QUERY_UNSUB', payload: { queryId: id } }));
          resolve({ ms: now() - t0, type: m.type, n: m.payload && m.payload.results ? m.payload.results.length : 0 });
        };
        ws.send(pack({ type: 'QUERY_SUB', payload: { queryId: id, mapName: 'big', query } }));
      });
    },
  };
}

async function others(label, seconds) {
  const pings = [];
  const acks = [];
  const clients = [];
  for (let i = 0; i < OTHERS; i++) {
    const pend = new Map();
    let pingT = 0;
    const ws = await connect(`other-${i}`, (m) => {
      if (m.type === 'PONG' && pingT) { pings.push(now() - pingT); pingT = 0; }
      if (m.type === 'OP_ACK') {
        const t = pend.get(m.payload.lastId);
        if (t !== undefined) { acks.push(now() - t); pend.delete(m.payload.lastId); }
      }
    });
    let n = 0;
    const pingTimer = setInterval(() => { if (!pingT) { pingT = now(); ws.send(pack({ type: 'PING', timestamp: Date.now() })); } }, 10);
    const opTimer = setInterval(() => {
      const ops = [];
      for (let k = 0; k < 10; k++) {
        n++;
        ops.push({ id: `o${i}-${n}`, mapName: `other-${i}`, opType: 'PUT', key: `k${n % 1000}`,
          record: { value: { n }, timestamp: { millis: Date.now(), counter: n, nodeId: `other-${i}` } } });
      }
      pend.set(ops[9].id, now());
      ws.send(pack({ type: 'OP_BATCH', payload: { ops } }));
    }, 20);
    clients.push({ ws, pingTimer, opTimer });
  }
  await new Promise((r) => setTimeout(r, seconds * 1000));
  for (const c of clients) { clearInterval(c.pingTimer); clearInterval(c.opTimer); c.ws.close(); }
  console.log(`${label}: PING round trip ${fmt(pings)}; OP_BATCH ack ${fmt(acks)}`);
}

async function main() {
  console.log(`# exec_bench: map 'big' of ${ROWS} records, ${OTHERS} other connections, ${SECONDS} s per phase`);
  await others('isolation, no scan running      ', Math.max(3, SECONDS / 2));

  const scanner = await querier('scanner');
  let scanning = true;
  let scans = 0;
  let scanMs = 0;
  const loop = (async () => {
    while (scanning) {
      const r = await scanner.query({ predicate: { op: 'gt', attribute: 'n', value: ROWS - 10 } });
      scans++;
      scanMs += r.ms;
    }
  })();
  await others('isolation, full scans running   ', SECONDS);
  scanning = false;
  await loop;
  console.log(`  (${scans} full-scan QUERY_SUBs meanwhile, ${(scanMs / Math.max(1, scans)).toFixed(0)} ms each)`);
  scanner.ws.close();

  const a = await querier('qa');
  const b = await querier('qb');
  const q = { where: { cat: 7 } };
  await a.query(q);				// warm the cache
  const t0 = now();
  const r1 = await a.query(q);
  const r2 = await a.query(q);
  const seq = now() - t0;
  const t1 = now();
  const [p1, p2] = await Promise.all([a.query(q), b.query(q)]);
  const par = now() - t1;
  console.log(`concurrency: two QUERY_SUB {where:{cat:7}} (${r1.n}/${r2.n}/${p1.n}/${p2.n} rows) one after the other ${seq.toFixed(0)} ms, ` +
    `together ${par.toFixed(0)} ms: ratio ${(par / seq).toFixed(2)} (target <= 0.65)`);
  a.ws.close();
  b.ws.close();
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
