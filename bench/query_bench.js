'use strict';
// bench/query_bench.js — live queries on big maps (issue 13), run through
// bench/query_bench.sh on map 'big' of QB_ROWS records {n, cat: n % 100,
// title} and map 'owned' of QB_OWNERS records {owner: 'u' || i, v}.
//
//   1 filter+sort+limit  QUERY_SUB {where:{cat:7}, sort:{n:'asc'}, limit:100} → QUERY_RESP
//   1c                   the same after topgun.create_index('big', ARRAY['cat', 'n']) (indexed runs;
//                        the two-field index stays for the later phases)
//   2 sort+limit         {sort:{n:'desc'}, limit:10}
//   3 cursor page        the same with cursor: <nextCursor of 2>; keys checked
//   4 original shapes    {where:{cat:7}} (unlimited), {limit:10}, {predicate: n > QB_ROWS - 10}
//   5 write ack          QB_LIVE_SUBS live {where:{cat:i%100}, sort:{n:'asc'}, limit:10}
//                        over QB_CONNS connections; OP_BATCH of one op at QB_RATE/s for
//                        QB_SECONDS s (90 % outside every page, 10 % inside one): send → OP_ACK
//   6 fan-out scaling    10 vs QB_OWNERS subscriptions {where:{owner:X}} over QB_CONNS
//                        connections; QB_FANOUT_WRITES writes (closed loop) to one owner's
//                        key: ack latency and CPU of the session executor per write
//   7 memory             session executor Private_Dirty / Pss before and after opening
//                        the QB_OWNERS idle subscriptions of phase 6
//   8 OR map             'bigor': QB_OR_VALUES values {n, cat: n % 100}, two per key
//                        (key k<i> holds n = 2i and 2i + 1): shapes 1-4 on it (docs/live.md "OR maps")
// Every phase waits for replies (QUERY_RESP by queryId, OP_ACK by lastId, PONG),
// never for time.  A server ERROR frame or an unexpected close ends the run (exit 1).
// Environment: TOPGUN_WS_URL, TOPGUN_JWT_SECRET, TOPGUN_PG, TOPGUN_PSQL, QB_INDEXED
// and the QB_* knobs of bench/query_bench.sh.
const fs = require('node:fs');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');

const { WebSocket, pack, unpack, token, now, stats } = require('./lib_node');

const URL = process.env.TOPGUN_WS_URL;
const PG = process.env.TOPGUN_PG;
const PSQL = process.env.TOPGUN_PSQL || '/usr/lib/postgresql/15/bin/psql';
const INDEXED = process.env.QB_INDEXED === '1';
const ROWS = Number(process.env.QB_ROWS || 1000000);
const REPS = Number(process.env.QB_REPS || 20);
const SECONDS = Number(process.env.QB_SECONDS || 10);
const RATE = Number(process.env.QB_RATE || 200);
const CONNS = Number(process.env.QB_CONNS || 10);
const LIVE_SUBS = Number(process.env.QB_LIVE_SUBS || (INDEXED ? 1000 : 100));
const OWNERS = Number(process.env.QB_OWNERS || 10000);
const FANOUT_WRITES = Number(process.env.QB_FANOUT_WRITES || 2000);
const OR_VALUES = Number(process.env.QB_OR_VALUES || 0);
const REPLY_TIMEOUT_MS = Number(process.env.QB_TIMEOUT_MS || 600000);

const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const fmt = (s) => `p50 ${f2(s.p50)} ms  p99 ${f2(s.p99)} ms  max ${f2(s.max)} ms  (n=${s.n})`;
const tag = crypto.randomBytes(3).toString('hex');

function fatal(msg) {
  console.error(`FATAL: ${msg}`);
  process.exit(1);
}

function psql(q) {
  return execFileSync(PSQL, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', PG, '-c', q], { encoding: 'utf8' }).trim();
}

// Server frames, with the BATCH envelope (PROTOCOL.md 1.5) opened in order.
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

// One authenticated connection.  Waiters: QUERY_RESP by queryId, OP_ACK by
// lastId, PONG in order.  It PINGs every 5 s as the TopGun client does (the
// server closes sockets silent for topgun.heartbeat_timeout_ms).
class Conn {
  constructor(name) {
    this.name = name;
    this.resp = new Map();
    this.acks = new Map();
    this.pongs = [];
    this.updates = 0;       // QUERY_UPDATE frames
    this.events = 0;        // SERVER_EVENT / SERVER_BATCH_EVENT frames
    this.onUpdate = null;
    this.closing = false;
    this.progress = now();  // last reply, or when the waiting began
  }

  // A watchdog instead of a timeout per request: pipelined QUERY_SUBs are
  // answered one after the other, so only a connection with replies owed
  // and none arriving for QB_TIMEOUT_MS counts as stuck.
  owed() { if (!this.resp.size && !this.acks.size) this.progress = now(); }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(URL, { perMessageDeflate: false, maxPayload: 1 << 30 });
      this.ws = ws;
      ws.binaryType = 'nodebuffer';
      let authed = false;
      ws.on('message', (data) => each(unpack(data), (m) => {
        if (!authed) {
          if (m.type === 'AUTH_REQUIRED') ws.send(pack({ type: 'AUTH', token: token(this.name) }));
          else if (m.type === 'AUTH_ACK') { authed = true; resolve(this); } else reject(new Error(`${this.name}: ${m.type} ${JSON.stringify(m.payload || m.error)}`));
          return;
        }
        this.dispatch(m);
      }));
      ws.on('error', (e) => (authed ? fatal(`${this.name}: socket error ${e.message}`) : reject(e)));
      ws.on('close', (code, reason) => {
        clearInterval(this.hb);
        if (!this.closing) fatal(`${this.name}: server closed the connection: ${code} ${reason}`);
      });
      this.hb = setInterval(() => {
        if ((this.resp.size || this.acks.size) && now() - this.progress > REPLY_TIMEOUT_MS) {
          fatal(`${this.name}: ${this.resp.size} QUERY_RESPs and ${this.acks.size} OP_ACKs owed, none for ${REPLY_TIMEOUT_MS} ms`);
        }
        ws.send(pack({ type: 'PING', timestamp: Date.now() }));
      }, 5000);
    });
  }

  dispatch(m) {
    switch (m.type) {
      case 'QUERY_RESP': {
        const w = this.resp.get(m.payload.queryId);
        if (w) { this.resp.delete(m.payload.queryId); this.progress = now(); w(m.payload); }
        break;
      }
      case 'QUERY_UPDATE':
        this.updates++;
        if (this.onUpdate) this.onUpdate(m.payload);
        break;
      case 'OP_ACK': {
        const w = this.acks.get(m.payload.lastId);
        if (w) { this.acks.delete(m.payload.lastId); this.progress = now(); w(m.payload); }
        for (const r of m.payload.results || []) if (r.success === false) fatal(`${this.name}: op ${r.opId} rejected: ${r.error}`);
        break;
      }
      case 'PONG':
        if (this.pongs.length) this.pongs.shift()();
        break;
      case 'SERVER_EVENT': case 'SERVER_BATCH_EVENT':
        this.events++;
        break;
      case 'ERROR': case 'OP_REJECTED':
        fatal(`${this.name}: server sent ${m.type} ${JSON.stringify(m.payload)}`);
        break;
      default:
        break;
    }
  }

  // QUERY_SUB; resolves with the QUERY_RESP payload and the elapsed ms.
  sub(queryId, mapName, query) {
    return new Promise((resolve) => {
      const t0 = now();
      this.owed();
      this.resp.set(queryId, (p) => resolve({ ms: now() - t0, p }));
      this.ws.send(pack({ type: 'QUERY_SUB', payload: { queryId, mapName, query } }));
    });
  }

  unsub(queryId) { this.ws.send(pack({ type: 'QUERY_UNSUB', payload: { queryId } })); }

  // One OP_BATCH; resolves with send → OP_ACK ms (lastId = the last op's id).
  write(ops) {
    return new Promise((resolve) => {
      const id = ops[ops.length - 1].id;
      const t0 = now();
      this.owed();
      this.acks.set(id, () => resolve(now() - t0));
      this.ws.send(pack({ type: 'OP_BATCH', payload: { ops } }));
    });
  }

  ping() {
    return new Promise((resolve) => {
      const t0 = now();
      this.pongs.push(() => resolve(now() - t0));
      this.ws.send(pack({ type: 'PING', timestamp: Date.now() }));
    });
  }

  close() { this.closing = true; clearInterval(this.hb); this.ws.close(); }
}

const connect = (name) => new Conn(name).open();
async function connectMany(prefix, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await connect(`${prefix}-${i}`));
  return out;
}

let opSeq = 0;
let clock = 0;
function putOp(mapName, key, value) {
  opSeq++;
  return { id: String(opSeq), mapName, key, opType: 'PUT',
    record: { value, timestamp: { millis: Date.now(), counter: clock++, nodeId: `qbench-${tag}` } } };
}

// ------------------------------------------------------- process figures
function sessionPid() { return Number(psql('SELECT pid FROM topgun.executors WHERE id = 0')); }
function serverPids() { return psql("SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type LIKE 'topgun%'").split(' ').map(Number); }
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
function cpuMs(pids) {
  let t = 0;
  for (const p of pids) {
    let s;
    try { s = fs.readFileSync(`/proc/${p}/stat`, 'utf8'); } catch { continue; }
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    t += Number(f[11]) + Number(f[12]);        // utime + stime (fields 14, 15)
  }
  return (t * 1000) / CLK_TCK;
}
function smaps(pid) {
  const out = {};
  const txt = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  for (const l of txt.split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(l);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

const summary = [];
function target(label, value, unit, ok, limit) {
  summary.push({ label, value: `${f2(value)} ${unit}`, limit, ok });
}
function line(label, s, extra = '') { console.log(`${label.padEnd(36)} ${fmt(s)}${extra}`); }

// Timed QUERY_SUB repetitions on fresh ids (each unsubscribed after its
// reply); check(payload) → '' if the page is as expected, else a reason.
async function repeat(c, label, query, check, map = 'big') {
  const ms = [];
  let bad = '';
  let last = null;
  const rows0 = pageRowsStat();
  for (let i = 0; i < REPS; i++) {
    const id = `${label.replace(/\W+/g, '-')}-${tag}-${i}`;
    const r = await c.sub(id, map, query);
    c.unsub(id);
    ms.push(r.ms);
    last = r.p;
    const why = check ? check(r.p) : '';
    if (why && !bad) bad = why;
  }
  return { s: stats(ms), last, bad, rows: (pageRowsStat() - rows0) / REPS };
}

// records the readers looked at (worker_stats.query_page_rows; NaN before it existed)
function pageRowsStat() {
  return Number(psql("SELECT coalesce((SELECT value FROM topgun.worker_stats WHERE name = 'query_page_rows')::text, 'NaN')"));
}
const pageRows = (r) => (Number.isFinite(r.rows) ? `, ${r.rows.toFixed(0)} candidates per page` : '');

const keysOf = (p) => p.results.map((r) => r.key);
const expectKeys = (want) => (p) => {
  const got = keysOf(p);
  return got.length === want.length && got.every((k, i) => k === want[i]) ? '' : `keys ${got.slice(0, 4).join(',')}… (${got.length}) != ${want.slice(0, 4).join(',')}… (${want.length})`;
};
const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));

async function phasesQueries() {
  const c = await connect('querier');
  // warm the buffer cache (and the index, if any) with one of each shape
  for (const q of [{ where: { cat: 7 }, sort: { n: 'asc' }, limit: 100 }, { sort: { n: 'desc' }, limit: 10 }]) {
    const id = `warm-${tag}-${crypto.randomBytes(2).toString('hex')}`;
    const r = await c.sub(id, 'big', q);
    c.unsub(id);
    console.log(`# warm-up ${JSON.stringify(q)}: ${f2(r.ms)} ms, ${r.p.results.length} results`);
  }

  // 1: first page of the 10,000 matches of cat 7 in n order
  const want1 = range(Math.min(100, Math.ceil((ROWS - 7) / 100)), (i) => `k${7 + 100 * i}`);
  const p1 = await repeat(c, 'p1', { where: { cat: 7 }, sort: { n: 'asc' }, limit: 100 }, (p) => {
    const why = expectKeys(want1)(p);
    return why || (p.hasMore === true ? '' : `hasMore ${p.hasMore}`);
  });
  line('1 where cat=7 sort n asc limit 100', p1.s, `  page ${p1.bad ? `FAIL (${p1.bad})` : 'ok'}${pageRows(p1)}`);
  target('1 {where:{cat:7}, sort n asc, limit 100} p99', p1.s.p99, 'ms', p1.s.p99 < 20 && !p1.bad, '< 20 ms');
  if (INDEXED) {
    // 1c: the same page through the two-field index (cat, n)
    const t0 = now();
    psql("SELECT topgun.create_index('big', ARRAY['cat', 'n'])");
    const st = psql("CALL topgun.index_wait('big', ARRAY['cat', 'n'])");
    if (!st.endsWith('ready')) fatal(`index (cat, n): ${st}`);
    console.log(`# index-build big (cat, n) ready in ${f2(now() - t0)} ms`);
    const q1 = { where: { cat: 7 }, sort: { n: 'asc' }, limit: 100 };
    const w1 = await c.sub(`warm-c-${tag}`, 'big', q1);
    c.unsub(`warm-c-${tag}`);
    console.log(`# warm-up (cat, n) ${JSON.stringify(q1)}: ${f2(w1.ms)} ms, ${w1.p.results.length} results`);
    const p1c = await repeat(c, 'p1c', { where: { cat: 7 }, sort: { n: 'asc' }, limit: 100 }, (p) => {
      const why = expectKeys(want1)(p);
      return why || (p.hasMore === true ? '' : `hasMore ${p.hasMore}`);
    });
    line('1c the same with index (cat, n)', p1c.s, `  page ${p1c.bad ? `FAIL (${p1c.bad})` : 'ok'}${pageRows(p1c)}`);
    target('1c the same through index (cat, n) p99', p1c.s.p99, 'ms', p1c.s.p99 < 20 && !p1c.bad, '< 20 ms');
  }

  // 2 and 3: page 1 of n descending, then page 2 by its nextCursor
  const ms2 = [];
  const ms3 = [];
  let bad2 = '';
  let bad3 = '';
  let status3 = '';
  const page1 = range(10, (i) => `k${ROWS - 1 - i}`);
  const page2 = range(10, (i) => `k${ROWS - 11 - i}`);
  for (let i = 0; i < REPS; i++) {
    const id1 = `p2-${tag}-${i}`;
    const r1 = await c.sub(id1, 'big', { sort: { n: 'desc' }, limit: 10 });
    c.unsub(id1);
    ms2.push(r1.ms);
    bad2 = bad2 || expectKeys(page1)(r1.p) || (typeof r1.p.nextCursor === 'string' ? '' : 'no nextCursor');
    if (typeof r1.p.nextCursor !== 'string') continue;
    const id2 = `p3-${tag}-${i}`;
    const r2 = await c.sub(id2, 'big', { sort: { n: 'desc' }, limit: 10, cursor: r1.p.nextCursor });
    c.unsub(id2);
    ms3.push(r2.ms);
    status3 = r2.p.cursorStatus;
    bad3 = bad3 || expectKeys(page2)(r2.p) || (r2.p.cursorStatus === 'valid' ? '' : `cursorStatus ${r2.p.cursorStatus}`);
  }
  const s2 = stats(ms2);
  const s3 = stats(ms3);
  line('2 sort n desc limit 10', s2, `  page ${bad2 ? `FAIL (${bad2})` : 'ok'}`);
  line('3 next page by cursor', s3, `  page ${bad3 ? `FAIL (${bad3})` : 'ok'} (keys k${ROWS - 11}..k${ROWS - 20}, cursorStatus ${status3})`);
  target('2 {sort n desc, limit 10} p99', s2.p99, 'ms', s2.p99 < 10 && !bad2, '< 10 ms');
  target('3 next page by cursor p99', s3.p99, 'ms', s3.p99 < 10 && !bad3, '< 10 ms');

  // 4: the issue's original shapes
  const cat7 = Math.ceil((ROWS - 7) / 100);
  const p4a = await repeat(c, 'p4a', { where: { cat: 7 } }, (p) => (p.results.length === cat7 ? '' : `${p.results.length} results, want ${cat7}`));
  line('4 where cat=7 (unlimited)', p4a.s, `  ${p4a.last.results.length} results ${p4a.bad ? `FAIL (${p4a.bad})` : 'ok'}`);
  const p4b = await repeat(c, 'p4b', { limit: 10 }, (p) => (p.results.length === 10 ? '' : `${p.results.length} results`));
  line('4 limit 10', p4b.s, `  ${p4b.last.results.length} results ${p4b.bad ? `FAIL (${p4b.bad})` : 'ok'}`);
  const p4c = await repeat(c, 'p4c', { predicate: { op: 'gt', attribute: 'n', value: ROWS - 10 } },
    (p) => (p.results.length === 9 ? '' : `${p.results.length} results, want 9`));
  line(`4 predicate n > ${ROWS - 10}`, p4c.s, `  ${p4c.last.results.length} results ${p4c.bad ? `FAIL (${p4c.bad})` : 'ok'}`);
  c.close();
}

// 8: the shapes of 1-4 on an OR map of OR_VALUES values, two per key.
async function phaseOr() {
  if (OR_VALUES <= 0) return;
  const keys = Math.floor(OR_VALUES / 2);
  const c = await connect('or-querier');
  const q1 = { where: { cat: 7 }, sort: { n: 'asc' }, limit: 100 };
  const w = await c.sub(`warm-or-${tag}`, 'bigor', q1);
  c.unsub(`warm-or-${tag}`);
  console.log(`# warm-up OR ${JSON.stringify(q1)}: ${f2(w.ms)} ms, ${w.p.results.length} results`);
  // n = 7 + 100m is held by key k<(7 + 100m) >> 1>, with its neighbour value
  const want1 = range(Math.min(100, Math.ceil((2 * keys - 7) / 100)), (m) => `k${(7 + 100 * m) >> 1}`);
  const valueOk = (p) => p.results.every((r) => Array.isArray(r.value) && r.value.length === 2) ? '' : 'values are not both of the key\'s';
  const o1 = await repeat(c, 'o1', q1, (p) => expectKeys(want1)(p) || valueOk(p) || (p.hasMore === true ? '' : `hasMore ${p.hasMore}`), 'bigor');
  line('8 OR where cat=7 sort n asc limit 100', o1.s, `  page ${o1.bad ? `FAIL (${o1.bad})` : 'ok'}${pageRows(o1)}`);
  target('8 OR {where:{cat:7}, sort n asc, limit 100} p99', o1.s.p99, 'ms', o1.s.p99 < 20 && !o1.bad, '< 20 ms');
  const ms2 = [];
  const ms3 = [];
  let bad2 = '';
  let bad3 = '';
  const page1 = range(10, (i) => `k${keys - 1 - i}`);
  const page2 = range(10, (i) => `k${keys - 11 - i}`);
  for (let i = 0; i < REPS; i++) {
    const r1 = await c.sub(`o2-${tag}-${i}`, 'bigor', { sort: { n: 'desc' }, limit: 10 });
    c.unsub(`o2-${tag}-${i}`);
    ms2.push(r1.ms);
    bad2 = bad2 || expectKeys(page1)(r1.p) || (typeof r1.p.nextCursor === 'string' ? '' : 'no nextCursor');
    if (typeof r1.p.nextCursor !== 'string') continue;
    const r2 = await c.sub(`o3-${tag}-${i}`, 'bigor', { sort: { n: 'desc' }, limit: 10, cursor: r1.p.nextCursor });
    c.unsub(`o3-${tag}-${i}`);
    ms3.push(r2.ms);
    bad3 = bad3 || expectKeys(page2)(r2.p) || (r2.p.cursorStatus === 'valid' ? '' : `cursorStatus ${r2.p.cursorStatus}`);
  }
  const s2 = stats(ms2);
  const s3 = stats(ms3);
  line('8 OR sort n desc limit 10', s2, `  page ${bad2 ? `FAIL (${bad2})` : 'ok'}`);
  line('8 OR next page by cursor', s3, `  page ${bad3 ? `FAIL (${bad3})` : 'ok'}`);
  target('8 OR {sort n desc, limit 10} p99', s2.p99, 'ms', s2.p99 < 10 && !bad2, '< 10 ms');
  target('8 OR next page by cursor p99', s3.p99, 'ms', s3.p99 < 10 && !bad3, '< 10 ms');
  const cat7 = Math.ceil((2 * keys - 7) / 100);
  const o4 = await repeat(c, 'o4', { where: { cat: 7 } }, (p) => (p.results.length === cat7 ? '' : `${p.results.length} results, want ${cat7}`), 'bigor');
  line('8 OR where cat=7 (unlimited)', o4.s, `  ${o4.last.results.length} results ${o4.bad ? `FAIL (${o4.bad})` : 'ok'}${pageRows(o4)}`);
  c.close();
}

// 5: OP_BATCH acks while LIVE_SUBS limited live queries are open.
async function phaseWriteAck() {
  const subs = await connectMany('live', CONNS);
  const t0 = now();
  const pend = [];
  for (let i = 0; i < LIVE_SUBS; i++) {
    pend.push(subs[i % CONNS].sub(`live-${tag}-${i}`, 'big', { where: { cat: i % 100 }, sort: { n: 'asc' }, limit: 10 }));
  }
  const resps = await Promise.all(pend);
  const openMs = now() - t0;
  const wrong = resps.filter((r, i) => r.p.results.length !== 10 || r.p.results[0].key !== `k${i % 100}`).length;
  console.log(`# 5: ${LIVE_SUBS} live subscriptions {where:{cat:i%100}, sort:{n:'asc'}, limit:10} on ${CONNS} connections open in ` +
    `${(openMs / 1000).toFixed(1)} s (QUERY_RESP each; ${wrong ? `${wrong} wrong first pages FAIL` : 'pages ok'})`);

  const w = await connect('writer');
  const cats = Math.min(100, LIVE_SUBS);
  const lat = [];
  const acks = [];
  let inside = 0;
  const start = now();
  let sent = 0;
  while (now() - start < SECONDS * 1000) {
    const due = Math.floor(((now() - start) / 1000) * RATE);
    for (; sent < due; sent++) {
      let op;
      if (sent % 10 === 9) {
        // inside a page: one of the first 10 records of a subscribed
        // category changes its title and keeps its n (stays in the page)
        const k = Math.floor(sent / 10);
        const m = (Math.floor(k / cats) % 10) * 100 + (k % cats);
        op = putOp('big', `k${m}`, { n: m, cat: m % 100, title: `upd ${sent}` });
        inside++;
      } else {
        // outside every page: a record beyond the first 1,000 moves to n > QB_ROWS
        const m = 1000 + Math.floor(Math.random() * Math.max(1, ROWS - 1000));
        op = putOp('big', `k${m}`, { n: ROWS + m, cat: m % 100, title: `moved ${sent}` });
      }
      acks.push(w.write([op]).then((ms) => lat.push(ms)));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(acks);
  const s = stats(lat);
  const updates = subs.reduce((a, c) => a + c.updates, 0);
  line(`5 OP_BATCH ack, ${LIVE_SUBS} limited subs`, s, `  writes=${sent} (${inside} inside a page) at ${RATE}/s, QUERY_UPDATEs so far=${updates}`);
  target(`5 ack p99 with ${LIVE_SUBS} limited subscriptions`, s.p99, 'ms', s.p99 < 10, '< 10 ms');
  // PING round trip on a fresh connection: the socket process is answering
  const p = await connect('after5');
  const pong = await p.ping();
  for (const c of subs) c.close();
  w.close();
  p.close();
  // Page re-runs the writes caused may still be queued at or running in the
  // readers: wait until every executor is idle with nothing queued, so that
  // phase 6 starts on a quiet server (how long that takes is itself a figure).
  const t0d = now();
  for (let i = 0; psql("SELECT bool_and(state = 'idle' AND queued = 0) FROM topgun.executors") !== 't'; i++) {
    if (now() - t0d > REPLY_TIMEOUT_MS) fatal(`5: executors still busy ${REPLY_TIMEOUT_MS} ms after the subscribers left: ${psql('SELECT string_agg(role || id || \' \' || state || \' queued=\' || queued, \', \') FROM topgun.executors')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`# 5: PING round trip right after the writes ${f2(pong)} ms; subscriber connections closed; ` +
    `executors idle ${((now() - t0d) / 1000).toFixed(1)} s later`);
}

// 6 and 7: fan-out scaling and memory per idle subscription on 'owned'.
async function fanoutCase(conns, nsubs, label, before) {
  const t0 = now();
  const pend = [];
  for (let i = 0; i < nsubs; i++) pend.push(conns[i % CONNS].sub(`own-${label}-${tag}-${i}`, 'owned', { where: { owner: `u${i}` } }));
  const resps = await Promise.all(pend);
  const openMs = now() - t0;
  const wrong = resps.filter((r, i) => r.p.results.length !== 1 || r.p.results[0].key !== `o${i}`).length;
  if (wrong) fatal(`6: ${wrong} of ${nsubs} QUERY_RESPs on 'owned' are not the one record of their owner`);
  let mem = null;
  if (before) {
    // both pings make sure every QUERY_RESP's session work is done
    await Promise.all(conns.map((c) => c.ping()));
    const after = smaps(before.pid);
    mem = { after, openMs };
  }
  const hot = 5;                          // the written owner: its subscriber is conns[hot % CONNS]
  const hc = conns[hot % CONNS];
  const got0 = hc.updates;
  const w = await connect(`fan-writer-${label}`);
  const sp = sessionPid();
  const all = serverPids();
  const c0 = cpuMs([sp]);
  const a0 = cpuMs(all);
  const lat = [];
  const t1 = now();
  for (let i = 0; i < FANOUT_WRITES; i++) lat.push(await w.write([putOp('owned', `o${hot}`, { owner: `u${hot}`, v: i + 1 })]));
  // the subscriber of that owner gets one QUERY_UPDATE per write: wait for all
  await new Promise((resolve) => {
    const timer = setTimeout(() => fatal(`6: ${hc.updates - got0} of ${FANOUT_WRITES} QUERY_UPDATEs after ${REPLY_TIMEOUT_MS} ms`), REPLY_TIMEOUT_MS);
    const done = () => { if (hc.updates - got0 >= FANOUT_WRITES) { clearTimeout(timer); hc.onUpdate = null; resolve(); return true; } return false; };
    if (!done()) hc.onUpdate = done;
  });
  const wall = now() - t1;
  const cpuSess = ((cpuMs([sp]) - c0) * 1000) / FANOUT_WRITES;
  const cpuAll = ((cpuMs(all) - a0) * 1000) / FANOUT_WRITES;
  const s = stats(lat);
  line(`6 ${String(nsubs).padStart(5)} subs: ack, one owner written`, s,
    `  session executor ${cpuSess.toFixed(0)} µs CPU/write, all topgun ${cpuAll.toFixed(0)} µs/write, ` +
    `${FANOUT_WRITES} writes in ${(wall / 1000).toFixed(1)} s (subscriptions opened in ${(openMs / 1000).toFixed(1)} s)`);
  w.close();
  return { s, cpuSess, cpuAll, mem };
}

async function phaseFanout() {
  const conns = await connectMany('own', CONNS);
  const small = await fanoutCase(conns, Math.min(10, OWNERS), 'small', null);
  for (let i = 0; i < Math.min(10, OWNERS); i++) conns[i % CONNS].unsub(`own-small-${tag}-${i}`);
  await Promise.all(conns.map((c) => c.ping()));
  // 7: the session executor's private memory just before the big case
  const pid = sessionPid();
  const sock = Number(psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'topgun sync server'"));
  const before = { pid, m: smaps(pid), sm: smaps(sock) };
  const big = await fanoutCase(conns, OWNERS, 'big', before);
  const ra = big.s.p50 / small.s.p50;
  const rc = big.cpuSess / small.cpuSess;
  console.log(`6 ratio ${OWNERS}/10 subscriptions           ack p50 x${ra.toFixed(2)}, ack p99 x${(big.s.p99 / small.s.p99).toFixed(2)}, ` +
    `session CPU/write x${rc.toFixed(2)}, all-topgun CPU/write x${(big.cpuAll / small.cpuAll).toFixed(2)}`);
  target(`6 ack p50 ${OWNERS} vs 10 subs (ratio)`, ra, 'x', Math.abs(ra - 1) <= 0.2, 'within ±20 %');
  target(`6 session CPU/write ${OWNERS} vs 10 subs (ratio)`, rc, 'x', Math.abs(rc - 1) <= 0.2, 'within ±20 %');

  const a = big.mem.after;
  const b = before.m;
  const sa = smaps(sock);
  const per = (k, x, y) => (x[k] - y[k]) / OWNERS;
  console.log(`7 memory per idle subscription (${OWNERS} on ${CONNS} connections): session executor Private_Dirty ` +
    `${(b.Private_Dirty / 1048576).toFixed(1)} -> ${(a.Private_Dirty / 1048576).toFixed(1)} MiB = ${per('Private_Dirty', a, b).toFixed(0)} B/sub, ` +
    `Pss ${per('Pss', a, b).toFixed(0)} B/sub; socket process Private_Dirty ${per('Private_Dirty', sa, before.sm).toFixed(0)} B/sub`);
  target('7 session executor bytes per idle subscription', per('Private_Dirty', a, b), 'B', per('Private_Dirty', a, b) < 2048, '< 2048 B');
  for (const c of conns) c.close();
}

async function main() {
  console.log(`# query_bench: 'big' ${ROWS} records, ${INDEXED ? 'WITH indexes (big.cat, big.n, owned.owner; big (cat, n) from line 1c on)' : 'WITHOUT indexes (scan path)'}, ` +
    `${REPS} repetitions per query shape, ${CONNS} subscriber connections`);
  const T = now();
  await phasesQueries();
  await phaseWriteAck();
  await phaseFanout();
  await phaseOr();             // last: its reads do not evict 'big' from the cache before 5

  console.log(`\n# summary (${INDEXED ? 'indexed' : 'no index'}, ${ROWS} records, node phases ${((now() - T) / 1000).toFixed(0)} s)`);
  for (const t of summary) console.log(`  ${t.label.padEnd(52)} ${t.value.padStart(12)}  target ${t.limit.padEnd(13)} ${t.ok ? 'met' : 'NOT MET'}`);
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
