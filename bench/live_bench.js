'use strict';
// bench/live_bench.js — live-data fan-out benchmark of the sync worker
// (issue 5).  Run through bench/live_bench.sh (throwaway cluster).
//
// Phases (SUBS subscribers, each with SYNC_INIT + QUERY_SUB on one map):
//   sql-latency     RATE writes/s from SQL (psql session, autocommit, one
//                   lww_put per statement); every subscriber measures
//                   commit → receipt from the wall-clock time stored in the
//                   value right before COMMIT (same machine clock).
//   client-latency  RATE writes/s from a WebSocket client (OP_BATCH of 10
//                   every 10 ms); latency from the send time in the value.
//   fanout          SQL statements writing BATCH rows each, back to back,
//                   for DURATION s; events delivered/s = every event
//                   received by every subscriber / elapsed.
// Environment: TOPGUN_WS_URL, TOPGUN_PG, TOPGUN_JWT_SECRET, TOPGUN_PSQL;
// LIVE_SUBS (100), LIVE_RATE (1000), LIVE_SECONDS (5), LIVE_BATCH (500).
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');

const { WebSocket, pack, unpack, token: mint } = require('./lib_node');

const URL = process.env.TOPGUN_WS_URL;
const PG = process.env.TOPGUN_PG;
const PSQL = process.env.TOPGUN_PSQL || '/usr/lib/postgresql/15/bin/psql';
const SUBS = Number(process.env.LIVE_SUBS || 100);
const RATE = Number(process.env.LIVE_RATE || 1000);
const SECONDS = Number(process.env.LIVE_SECONDS || 5);
const BATCH = Number(process.env.LIVE_BATCH || 500);

const token = (sub) => mint(sub, { roles: ['USER'], ttlS: 3600 });

// sample(): whether this socket's messages must be decoded right now
function connect(name, onMessage, sample = () => true) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(URL, { perMessageDeflate: false, maxPayload: 1 << 28 });
    ws.binaryType = 'nodebuffer';
    let authed = false;
    ws.on('message', (data) => {
      if (authed && !sample()) return;
      const m = unpack(data);
      if (!authed) {
        if (m.type === 'AUTH_REQUIRED') ws.send(pack({ type: 'AUTH', token: token(name) }));
        else if (m.type === 'AUTH_ACK') { authed = true; resolve(ws); } else reject(new Error(`${name}: ${m.type}`));
        return;
      }
      if (m.type === 'BATCH') {
        // coalesced frame: [u32le count]([u32le len][msgpack])*
        const d = Buffer.from(m.data);
        const n = d.readUInt32LE(0);
        let off = 4;
        for (let i = 0; i < n; i++) {
          const len = d.readUInt32LE(off);
          off += 4;
          onMessage(unpack(d.subarray(off, off + len)));
          off += len;
        }
        return;
      }
      onMessage(m);
    });
    ws.on('error', reject);
  });
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function psqlSession() {
  const p = spawn(PSQL, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', PG], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d.toString(); if (out.length > 1e6) out = out.slice(-1000); });
  return {
    run: (sql) => p.stdin.write(`${sql}\n`),
    async sync() {
      const tag = crypto.randomBytes(4).toString('hex');
      p.stdin.write(`SELECT 'sync-${tag}';\n`);
      while (!out.includes(`sync-${tag}`)) await new Promise((r) => setTimeout(r, 5));
    },
    close: () => p.stdin.end(),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const map = `live-bench-${crypto.randomBytes(3).toString('hex')}`;
  let lat = [];
  let events = 0;
  let measure = null;         // 'lat' | 'count' | null
  const subs = [];
  const onMsg = (m) => {
    let evs = null;
    if (m.type === 'SERVER_BATCH_EVENT') evs = m.payload.events;
    else if (m.type === 'SERVER_EVENT') evs = [m.payload];
    if (!evs) return;
    if (measure === 'count') { events += evs.length; return; }
    if (measure !== 'lat') return;
    const now = Date.now();
    for (const e of evs) if (e.record && e.record.value && e.record.value.t) lat.push(now - e.record.value.t);
  };
  // In the latency phases only every 10th subscriber decodes (the bench
  // process must not become the bottleneck); all of them count in fanout.
  for (let i = 0; i < SUBS; i++) {
    const ws = await connect(`sub-${i}`, onMsg, () => measure === 'count' || i % 10 === 0);
    ws.send(pack({ type: 'SYNC_INIT', mapName: map, lastSyncTimestamp: 0 }));
    ws.send(pack({ type: 'QUERY_SUB', payload: { queryId: `q${i}`, mapName: map, query: { where: { hot: true } } } }));
    subs.push(ws);
  }
  await sleep(500);
  console.log(`# live_bench: ${SUBS} subscribers (SYNC_INIT + QUERY_SUB each: two messages per write per subscriber) on map ${map}, ` +
    `${RATE} writes/s for ${SECONDS} s per latency phase; latency sampled on every 10th subscriber`);

  // --- SQL-originated latency
  const s = psqlSession();
  // The value carries clock_timestamp() taken inside the transaction; with
  // synchronous_commit off the COMMIT that follows returns without waiting
  // for the WAL flush, so the measured time is commit → subscriber (plus the
  // statement itself), not the disk's fsync time.
  s.run('SET synchronous_commit = off;');
  await s.sync();
  measure = 'lat';
  lat = [];
  {
    const start = Date.now();
    let sent = 0;
    while (Date.now() - start < SECONDS * 1000) {
      const due = Math.floor(((Date.now() - start) / 1000) * RATE);
      let sqls = '';
      for (; sent < due; sent++) {
        sqls += `SELECT topgun.lww_put('${map}', 'k${sent % 1000}', jsonb_build_object('t', extract(epoch from clock_timestamp()) * 1000, 'hot', true), topgun.hlc_now());\n`;
      }
      if (sqls) s.run(sqls);
      await sleep(2);
    }
    await s.sync();
    await sleep(300);
    const sorted = lat.slice().sort((a, b) => a - b);
    console.log(`sql-latency     writes=${sent} writes_per_s=${(sent / SECONDS).toFixed(0)} deliveries=${sorted.length} ` +
      `p50_ms=${percentile(sorted, 0.5).toFixed(1)} p99_ms=${percentile(sorted, 0.99).toFixed(1)} max_ms=${sorted[sorted.length - 1].toFixed(1)}`);
  }

  // --- client-originated latency
  lat = [];
  {
    let acked = 0;
    const writer = await connect('writer', (m) => { if (m.type === 'OP_ACK') acked++; });
    let id = 1;
    let counter = 0;
    const start = Date.now();
    let sent = 0;
    while (Date.now() - start < SECONDS * 1000) {
      const due = Math.floor(((Date.now() - start) / 1000) * RATE);
      const ops = [];
      for (; sent < due; sent++) {
        const now = Date.now();
        ops.push({ id: String(id++), mapName: map, key: `c${sent % 1000}`, opType: 'PUT',
          record: { value: { t: now, hot: true }, timestamp: { millis: now, counter: counter++, nodeId: 'bench-writer' } } });
      }
      if (ops.length) writer.send(pack({ type: 'OP_BATCH', payload: { ops } }));
      await sleep(2);
    }
    await sleep(500);
    const sorted = lat.slice().sort((a, b) => a - b);
    console.log(`client-latency  writes=${sent} writes_per_s=${(sent / SECONDS).toFixed(0)} deliveries=${sorted.length} acks=${acked} ` +
      `p50_ms=${percentile(sorted, 0.5).toFixed(1)} p99_ms=${percentile(sorted, 0.99).toFixed(1)} max_ms=${sorted[sorted.length - 1].toFixed(1)}`);
    writer.close();
  }

  // --- fan-out throughput
  measure = 'count';
  events = 0;
  {
    const start = Date.now();
    let stmts = 0;
    while (Date.now() - start < SECONDS * 1000) {
      s.run(`SELECT count(topgun.lww_put('${map}', 'f' || g, jsonb_build_object('g', g, 'hot', false), topgun.hlc_now())) FROM generate_series(1, ${BATCH}) g;`);
      stmts++;
      if (stmts % 4 === 0) await s.sync();
    }
    await s.sync();
    const written = Date.now() - start;
    // wait until deliveries stop
    let last = -1;
    while (events !== last) { last = events; await sleep(300); }
    const elapsed = (Date.now() - start) / 1000;
    console.log(`fanout          rows=${stmts * BATCH} rows_per_s=${((stmts * BATCH) / (written / 1000)).toFixed(0)} ` +
      `events_delivered=${events} events_per_s=${(events / elapsed).toFixed(0)} elapsed_s=${elapsed.toFixed(2)}`);
  }
  s.close();
  for (const ws of subs) ws.close();
  await sleep(200);
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
