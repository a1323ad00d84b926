'use strict';
// bench/soak.js — soak and abuse run against a topgun sync server.
//
//   node bench/soak.js [--seconds 20] [--connections 1000] [--active-share 0.1]
//                      [--slowloris 40] [--slow-readers 4] [--storm 300] [--storm-rounds 2]
//                      [--flooders 4] [--bad-auth 4] [--p99-budget-ms 500] [--max-budget-ms 3000]
//                      [--json FILE]
//   environment: TOPGUN_WS_URL, TOPGUN_JWT_SECRET, TOPGUN_PG (as the e2e tests);
//   run it as root or as the cluster's OS user (it reads the worker's /proc/PID/status).
//   `bash bench/soak.sh` starts a throwaway cluster and runs the long version.
//
// What happens, all bounded in time:
//   1. a well-behaved "probe" client (separate process, so its timing is not
//      skewed by this one) writes one op every 50 ms and times each OP_ACK;
//   2. --connections authenticated connections are opened and held for the
//      whole run: most idle (PING every 5 s), --active-share of them writing a
//      batch of 5 ops every second;
//   3. for --seconds, at the same time:
//        slowloris    raw TCP clients that send the HTTP upgrade one byte every
//                     200 ms, or complete it and trickle the AUTH frame byte by
//                     byte; reconnect when the server drops them;
//        slow writer  one authenticated client that sends an OP_BATCH frame one
//                     byte every 20 ms (must still be acked correctly);
//        slow readers authenticated clients that stop reading and keep asking
//                     for ~1 MB Merkle leaves (the server must drop them once
//                     topgun.max_outbound_bytes is queued);
//        storms       (repeated until the end) --storm clients connect and authenticate at the same
//                     instant and each sends a batch of 5 pending ("offline")
//                     ops; half of them are cut before the ack; all reconnect at
//                     once and re-send; every op must end up acked and in SQL;
//        floods       clients sending invalid frames until closed (1008), and
//                     clients sending forged tokens (AUTH_FAIL / 4001), in loops;
//   4. the worker's private resident memory (RssAnon) is sampled every 250 ms.
// Verdict (exit status 1 on any failure): every held connection still open,
// every probe and active write acked, every storm op in SQL, abusers dropped
// by the server, the worker's pid unchanged.
// Figures (printed with their targets, never part of the verdict — timing and
// memory depend on the machine): probe p99/max against the budgets, and the
// growth of the worker's private memory (RssAnon) against
//   connections x 64 KiB + (slow readers + flooders) x (max_outbound_bytes + max_message_bytes) + 64 MiB
// (per-connection target of the issue, plus what the configured per-connection
// limits allow to be buffered, plus slack for PostgreSQL caches).
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { fork } = require('node:child_process');
const { isDeepStrictEqual } = require('node:util');

const lib = path.join(__dirname, '..', 'test', 'e2e', 'lib');
const { Client } = require(path.join(lib, 'client'));
const hlc = require(path.join(lib, 'hlc'));
const jwt = require(path.join(lib, 'jwt'));
const env = require(path.join(lib, 'env'));
const { psql, rows, lit } = require(path.join(lib, 'psql'));
const { pack } = require(path.join(lib, 'codec'));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parseArgs(argv) {
  const o = {
    seconds: 20, connections: 1000, 'active-share': 0.1, slowloris: 40, 'slow-readers': 4,
    storm: 300, 'storm-rounds': 2, flooders: 4, 'bad-auth': 4, 'p99-budget-ms': 500,
    'max-budget-ms': 3000, json: null, probe: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'probe') { o.probe = true; continue; }
    if (!(k in o)) throw new Error(`unknown option --${k}`);
    o[k] = k === 'json' ? argv[++i] : Number(argv[++i]);
  }
  return o;
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Private (anonymous) resident memory of the worker in KiB.  VmRSS also
// counts the shared_buffers pages the worker has touched, which grows with the
// amount of data written (not with connections) and is bounded by
// shared_buffers; RssAnon is what the worker itself allocates.
function rssKiB(pid, field = 'RssAnon') {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : null;
}

function setting(name) {
  return Number(psql(`SELECT setting FROM pg_settings WHERE name = ${lit(name)}`));
}

// ------------------------------------------------------------------ probe
// Runs in a child process: one op every 50 ms, one at a time, timing acks.
async function probeMain() {
  const map = `soak-probe-${process.pid}`;
  const lat = [];
  const failures = [];
  let stop = false;
  let written = 0;
  process.on('message', (m) => { if (m === 'stop') stop = true; });
  let c = await Client.authed({ name: 'probe' });
  process.send({ ready: true });
  while (!stop) {
    const t = process.hrtime.bigint();
    const op = hlc.putOp(map, `k${written % 200}`, { n: written }, hlc.now('probe'));
    try {
      const ack = await c.sendOps([op], 5000);
      if (!ack.payload.results.every((r) => r.success)) failures.push(`op ${op.id} rejected`);
      lat.push(Number(process.hrtime.bigint() - t) / 1e6);
      written++;
    } catch (e) {
      failures.push(e.message.slice(0, 200));
      c.terminate();
      c = await Client.authedRetry({ name: 'probe', deadlineMs: 10000 });
    }
    await sleep(50);
  }
  await c.close();
  process.send({ lat, failures, written });
  process.exit(0);
}

function startProbe() {
  const child = fork(__filename, ['--probe'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`probe exited with ${code}`)));
  });
  const result = new Promise((resolve) => {
    child.on('message', (m) => { if (m.lat) resolve(m); });
  });
  return { child, ready, result };
}

// ------------------------------------------------------------- abusers
function wsUrlParts() {
  const u = new URL(env.wsUrl);
  return { host: u.hostname, port: Number(u.port) };
}

function wsFrame(payload, opcode = 2) {
  const mask = Buffer.from([1, 2, 3, 4]);
  let hdr;
  if (payload.length < 126) hdr = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  else if (payload.length < 65536) {
    hdr = Buffer.alloc(4);
    hdr[0] = 0x80 | opcode; hdr[1] = 0x80 | 126; hdr.writeUInt16BE(payload.length, 2);
  } else {
    hdr = Buffer.alloc(10);
    hdr[0] = 0x80 | opcode; hdr[1] = 0x80 | 127; hdr.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([hdr, mask, body]);
}

const UPGRADE = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

// One slowloris socket: trickles `bytes` one at a time every `ms`; resolves
// with how it ended ('server-closed' or 'finished').
function trickle(bytes, ms, until, prefix = null) {
  return new Promise((resolve) => {
    const { host, port } = wsUrlParts();
    const s = net.connect({ host, port });
    let i = 0;
    let timer = null;
    let done = false;
    const finish = (how) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      s.destroy();
      resolve(how);
    };
    s.on('error', () => finish('server-closed'));
    s.on('close', () => finish('server-closed'));
    s.on('data', () => {});
    s.on('connect', () => {
      if (prefix) s.write(prefix);
      timer = setInterval(() => {
        if (Date.now() > until) return finish('finished');
        if (i >= bytes.length) return;
        s.write(bytes.subarray(i, i + 1));
        i++;
      }, ms);
    });
  });
}

async function slowlorisLoop(n, until, stats) {
  const auth = wsFrame(pack({ type: 'AUTH', token: jwt.hs256(env.jwtSecret) }));
  await Promise.all(Array.from({ length: n }, async (_, k) => {
    while (Date.now() < until) {
      // half trickle the HTTP upgrade, half trickle the AUTH frame after a quick upgrade
      const how = k % 2 === 0
        ? await trickle(Buffer.from(UPGRADE), 200, until)
        : await trickle(auth, 200, until, UPGRADE);
      stats.slowloris_connections++;
      if (how === 'server-closed') stats.slowloris_dropped_by_server++;
    }
  }));
}

// An authenticated client whose OP_BATCH frame arrives one byte every 20 ms.
async function slowWriter(until, stats) {
  const { host, port } = wsUrlParts();
  const map = hlc.uniqueName('soak-slow-writer');
  const op = hlc.putOp(map, 'trickled', { ok: true }, hlc.now('slow-writer'));
  const frame = wsFrame(pack({ type: 'OP_BATCH', payload: { ops: [op] } }));
  const s = net.connect({ host, port });
  let buf = Buffer.alloc(0);
  s.on('data', (d) => { buf = Buffer.concat([buf, d]); });
  s.on('error', () => {});
  await new Promise((r) => s.on('connect', r));
  s.write(UPGRADE);
  await sleep(300);
  s.write(wsFrame(pack({ type: 'AUTH', token: jwt.hs256(env.jwtSecret) })));
  await sleep(300);
  const t0 = Date.now();
  for (let i = 0; i < frame.length && Date.now() < until + 30000 && !s.destroyed; i++) {
    s.write(frame.subarray(i, i + 1));
    await sleep(20);
  }
  const end = Date.now() + 5000;
  while (Date.now() < end && !buf.includes(Buffer.from('OP_ACK'))) await sleep(50);
  stats.slow_writer_frame_bytes = frame.length;
  stats.slow_writer_seconds = (Date.now() - t0) / 1000;
  stats.slow_writer_acked = buf.includes(Buffer.from('OP_ACK'));
  stats.slow_writer_in_sql = psql(`SELECT topgun.lww_get(${lit(map)}, 'trickled')`) === '{"ok": true}';
  s.destroy();
}

async function slowReaders(n, until, stats, bigMap, paths) {
  await Promise.all(Array.from({ length: n }, async () => {
    while (Date.now() < until) {
      let c;
      try {
        c = await Client.authed({ name: 'slow-reader', ping: false });
      } catch (e) { await sleep(200); continue; }
      c.pause();
      // keep asking while not reading, until the server drops us; only
      // readers that asked for 5 rounds (~5 MB, 5x topgun.max_outbound_bytes
      // in the test settings) must have been dropped
      let rounds = 0;
      while (!c.closed && Date.now() < until) {
        for (const p of paths) c.send({ type: 'MERKLE_REQ_BUCKET', payload: { mapName: bigMap, path: p } });
        rounds++;
        await sleep(100);
      }
      if (rounds >= 5 || c.closed) {
        stats.slow_readers++;
        c.resume();
        const closed = c.closed || await c.waitClose(10000).catch(() => null);
        if (closed && closed.code !== 1000) stats.slow_readers_dropped++;
        stats.slow_reader_bytes_max = Math.max(stats.slow_reader_bytes_max, c.bytesIn);
      }
      c.terminate();
    }
  }));
}

async function flooders(n, until, stats) {
  await Promise.all(Array.from({ length: n }, async () => {
    while (Date.now() < until) {
      let c;
      try { c = await Client.authed({ name: 'flooder', ping: false }); } catch (e) { await sleep(200); continue; }
      // a whole session even past `until`: the server must close it (budget), not us
      for (let i = 0; i < 5000 && !c.closed; i++) {
        c.sendRaw(Buffer.from([0xc1, i & 0xff, 0x92]));
        if (i % 50 === 49) await sleep(1);
      }
      const closed = c.closed || await c.waitClose(10000).catch(() => null);
      stats.flood_sessions++;
      if (closed && closed.code === 1008) stats.flood_closed_1008++;
      c.terminate();
    }
  }));
}

async function badAuth(n, until, stats) {
  const forged = jwt.hs256('not-the-secret-' + 'x'.repeat(40));
  await Promise.all(Array.from({ length: n }, async () => {
    while (Date.now() < until) {
      let c;
      try { c = await Client.connect(env.wsUrl); } catch (e) { await sleep(100); continue; }
      try {
        await c.waitFor('AUTH_REQUIRED', 5000);
        c.send({ type: 'AUTH', token: forged });
        const closed = await c.waitClose(5000);
        stats.bad_auth_attempts++;
        if (closed.code === 4001) stats.bad_auth_closed_4001++;
      } catch (e) { /* counted as not closed properly */ stats.bad_auth_attempts++; }
      c.terminate();
    }
  }));
}

// Reconnect storm: n clients at once, each with 5 pending ops; half cut
// before the ack; then everybody reconnects at the same instant and re-sends.
async function storms(n, rounds, stats, stormMap, until) {
  const expected = new Map();
  // at least `rounds` rounds, and more until the end of the abuse period
  for (let r = 0; r < rounds || Date.now() < until - 3000; r++) {
    stats.storm_rounds++;
    const pending = Array.from({ length: n }, (_, k) => {
      const ops = [];
      for (let j = 0; j < 5; j++) {
        const key = `r${r}-c${k}-${j}`;
        ops.push(hlc.putOp(stormMap, key, { r, k, j }, hlc.now(`storm-${k}`)));
      }
      return ops;
    });
    const t0 = Date.now();
    const first = await Promise.all(pending.map(async (ops, k) => {
      try {
        const c = await Client.authed({ name: `storm-${k}`, timeoutMs: 15000, ping: false });
        c.send(hlc.opBatch(ops));
        if (k % 2 === 0) { c.terminate(); return null; }    // cut before the ack
        return c;
      } catch (e) { stats.storm_errors.push(`connect r${r}: ${e.message.slice(0, 120)}`); return null; }
    }));
    stats.storm_connect_ms.push(Date.now() - t0);
    for (const c of first) if (c) c.terminate();           // everyone drops at once
    const t1 = Date.now();
    await Promise.all(pending.map(async (ops, k) => {
      try {
        const c = await Client.authedRetry({ name: `storm-re-${k}`, timeoutMs: 15000, deadlineMs: 30000, ping: false });
        const ack = await c.sendOps(ops, 20000);
        if (ack.payload.results.every((x) => x.success)) stats.storm_batches_acked++;
        else stats.storm_errors.push(`r${r} c${k}: rejected ops`);
        c.terminate();
      } catch (e) { stats.storm_errors.push(`resend r${r} c${k}: ${e.message.slice(0, 120)}`); }
    }));
    stats.storm_reconnect_ms.push(Date.now() - t1);
    for (const ops of pending) for (const op of ops) expected.set(op.key, op.record.value);
  }
  const got = new Map(rows(`SELECT key, value FROM topgun.lww WHERE map = ${lit(stormMap)}`).map((x) => [x.key, x.value]));
  let missing = 0;
  for (const [k, v] of expected) if (!isDeepStrictEqual(got.get(k), v)) missing++;
  stats.storm_ops = expected.size;
  stats.storm_ops_missing = missing;
}

// ------------------------------------------------------------------- main
async function soak(o) {
  const report = { options: { ...o }, checks: [], figures: [], ok: false };
  const check = (ok, what) => { report.checks.push({ ok: !!ok, what }); };
  const figure = (within, what) => { report.figures.push({ within: !!within, what }); };
  const workerPid = Number(psql('SELECT topgun.worker_pid()'));
  const limits = {
    max_connections: setting('topgun.max_connections'),
    max_outbound_bytes: setting('topgun.max_outbound_bytes'),
    max_message_bytes: setting('topgun.max_message_bytes'),
    auth_timeout_ms: setting('topgun.auth_timeout_ms'),
  };
  report.limits = limits;
  // Under scripts/sanitize.sh the worker runs with ASan: its free-memory
  // quarantine (256 MiB by default) and redzones are part of the RSS, and it
  // runs 2-3x slower, so the memory budget gets 320 MiB and the latency
  // budgets are tripled.
  report.asan = fs.readFileSync(`/proc/${workerPid}/maps`, 'utf8').includes('libasan');
  const p99Budget = o['p99-budget-ms'] * (report.asan ? 3 : 1);
  const maxBudget = o['max-budget-ms'] * (report.asan ? 3 : 1);
  if (o.connections + o.storm + o.slowloris + o['slow-readers'] + o.flooders + o['bad-auth'] + 10 > limits.max_connections) {
    throw new Error(`topgun.max_connections = ${limits.max_connections} is too small for this run`);
  }
  const rss = { base: rssKiB(workerPid), vmBase: rssKiB(workerPid, 'VmRSS'), samples: [] };
  const sampler = setInterval(() => { try { rss.samples.push(rssKiB(workerPid)); } catch (e) { /* gone */ } }, 250);

  // big values for the slow readers (~1 MB per leaf request round)
  const bigMap = hlc.uniqueName('soak-big');
  psql(`SELECT topgun.lww_put(${lit(bigMap)}, 'big-' || i, to_jsonb(repeat(md5(i::text), 1900)), topgun.hlc(1736000000000 + i, 0, 'soak')) FROM generate_series(1, 16) i`);
  const paths = rows(`SELECT DISTINCT substr(lpad(to_hex(topgun.key_hash(key)), 8, '0'), 1, 3) AS p FROM topgun.lww WHERE map = ${lit(bigMap)}`).map((r) => r.p);

  const probe = startProbe();
  await probe.ready;

  // 2. held connections
  const held = [];
  const t0 = Date.now();
  for (let i = 0; i < o.connections; i += 100) {
    const chunk = await Promise.all(Array.from({ length: Math.min(100, o.connections - i) },
      (_, k) => Client.authed({ name: `held-${i + k}`, timeoutMs: 15000 })));
    held.push(...chunk);
  }
  report.connect_all_ms = Date.now() - t0;
  await sleep(2000);
  rss.held = rssKiB(workerPid);
  report.connections_held = held.filter((c) => !c.closed).length;
  report.rss_per_connection_bytes = Math.round(((rss.held - rss.base) * 1024) / o.connections);
  const openRow = psql("SELECT value FROM topgun.worker_stats WHERE name = 'connections_open'");
  report.server_connections_open = Number(openRow);

  // active share writes a batch of 5 every second
  const activeMap = hlc.uniqueName('soak-active');
  const nActive = Math.round(o.connections * o['active-share']);
  const active = { batches: 0, failures: [] };
  const until = Date.now() + o.seconds * 1000;
  const activeLoops = held.slice(0, nActive).map(async (c, k) => {
    await sleep(Math.floor(Math.random() * 1000));
    while (Date.now() < until) {
      const ops = [];
      for (let j = 0; j < 5; j++) ops.push(hlc.putOp(activeMap, `a${k}-${j}`, { k, j, t: Date.now() }, hlc.now(`active-${k}`)));
      try {
        const ack = await c.sendOps(ops, 15000);
        if (ack.payload.results.every((r) => r.success)) active.batches++;
        else active.failures.push('rejected');
      } catch (e) { active.failures.push(e.message.slice(0, 160)); break; }
      await sleep(1000);
    }
  });

  // 3. abuse, concurrently
  const stats = {
    slowloris_connections: 0, slowloris_dropped_by_server: 0, slow_readers: 0, slow_readers_dropped: 0, slow_reader_bytes_max: 0,
    flood_sessions: 0, flood_closed_1008: 0, bad_auth_attempts: 0, bad_auth_closed_4001: 0,
    storm_rounds: 0, storm_batches_acked: 0, storm_errors: [], storm_connect_ms: [], storm_reconnect_ms: [],
  };
  const stormMap = hlc.uniqueName('soak-storm');
  await Promise.all([
    ...activeLoops,
    slowlorisLoop(o.slowloris, until, stats),
    slowWriter(until, stats),
    slowReaders(o['slow-readers'], until, stats, bigMap, paths),
    flooders(o.flooders, until, stats),
    badAuth(o['bad-auth'], until, stats),
    (async () => { await sleep(1000); await storms(o.storm, o['storm-rounds'], stats, stormMap, until); })(),
  ]);
  report.abuse = stats;
  report.active = { connections: nActive, batches_acked: active.batches, failures: active.failures.slice(0, 5) };
  report.connections_still_open = held.filter((c) => !c.closed).length;

  // 4. wind down
  probe.child.send('stop');
  const pr = await probe.result;
  const lat = pr.lat.slice().sort((a, b) => a - b);
  report.probe = {
    acks: pr.written, failures: pr.failures.slice(0, 5), failure_count: pr.failures.length,
    p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), max_ms: lat.length ? lat[lat.length - 1] : null,
  };
  clearInterval(sampler);
  rss.max = Math.max(...rss.samples.filter((x) => x));
  await Promise.all(held.map((c) => c.close()));
  await sleep(1500);
  rss.end = rssKiB(workerPid);
  report.rss_kib = { base: rss.base, held: rss.held, max: rss.max, end: rss.end };
  report.vmrss_kib = { base: rss.vmBase, end: rssKiB(workerPid, 'VmRSS') };
  const budgetKiB = Math.round((o.connections * 64 * 1024 +
    (o['slow-readers'] + o.flooders) * (limits.max_outbound_bytes + limits.max_message_bytes) + 64 * 1024 * 1024 +
    (report.asan ? 320 * 1024 * 1024 : 0)) / 1024);
  report.rss_budget_kib = budgetKiB;
  report.worker_pid_unchanged = Number(psql('SELECT topgun.worker_pid()')) === workerPid;
  report.server_stats = Object.fromEntries(rows('SELECT name, value FROM topgun.worker_stats').map((r) => [r.name, Number(r.value)]));

  // verdict
  check(report.connections_held === o.connections, `${o.connections} connections authenticated and held (${report.connections_held})`);
  check(report.connections_still_open === o.connections, `all held connections survived the abuse (${report.connections_still_open})`);
  check(active.failures.length === 0 && active.batches > 0, `active connections acked every batch (${active.batches}, failures ${active.failures.length})`);
  check(pr.failures.length === 0, `probe: every op acked (${pr.written}; failures ${pr.failures.length})`);
  figure(report.probe.p99_ms !== null && report.probe.p99_ms <= p99Budget, `probe p99 ${report.probe.p99_ms && report.probe.p99_ms.toFixed(1)} ms (target <= ${p99Budget} ms)`);
  figure(report.probe.max_ms !== null && report.probe.max_ms <= maxBudget, `probe max ${report.probe.max_ms && report.probe.max_ms.toFixed(1)} ms (target <= ${maxBudget} ms)`);
  figure(rss.max - rss.base <= budgetKiB, `worker private memory (RssAnon) growth ${rss.max - rss.base} KiB (target <= ${budgetKiB} KiB)`);
  figure(report.rss_per_connection_bytes <= 64 * 1024, `memory per held connection ${report.rss_per_connection_bytes} B (target <= 64 KiB)`);
  check(report.worker_pid_unchanged, 'the worker process survived (same pid)');
  if (o.slowloris > 0) {
    check(stats.slowloris_dropped_by_server > 0 || o.seconds * 1000 < limits.auth_timeout_ms,
      `slowloris sockets dropped by the server (${stats.slowloris_dropped_by_server} of ${stats.slowloris_connections})`);
  }
  check(stats.slow_writer_acked && stats.slow_writer_in_sql, `byte-by-byte OP_BATCH (${stats.slow_writer_frame_bytes} B over ${stats.slow_writer_seconds} s) acked and stored`);
  if (o['slow-readers'] > 0) check(stats.slow_readers_dropped > 0 && stats.slow_readers_dropped === stats.slow_readers, `slow readers dropped by the server (${stats.slow_readers_dropped}/${stats.slow_readers})`);
  if (o.flooders > 0) check(stats.flood_sessions > 0 && stats.flood_closed_1008 === stats.flood_sessions, `invalid floods closed with 1008 (${stats.flood_closed_1008}/${stats.flood_sessions})`);
  if (o['bad-auth'] > 0) check(stats.bad_auth_attempts > 0 && stats.bad_auth_closed_4001 === stats.bad_auth_attempts, `forged tokens closed with 4001 (${stats.bad_auth_closed_4001}/${stats.bad_auth_attempts})`);
  if (o.storm > 0) {
    check(stats.storm_errors.length === 0 && stats.storm_rounds >= o['storm-rounds'] &&
      stats.storm_batches_acked === o.storm * stats.storm_rounds,
      `reconnect storms: ${stats.storm_rounds} rounds, ${stats.storm_batches_acked}/${o.storm * stats.storm_rounds} re-sent batches acked` +
      (stats.storm_errors.length ? ` (errors: ${stats.storm_errors.slice(0, 3).join('; ')})` : ''));
    check(stats.storm_ops_missing === 0, `reconnect storms: all ${stats.storm_ops} ops in SQL (${stats.storm_ops_missing} missing)`);
  }
  report.ok = report.checks.every((c) => c.ok);
  return report;
}

async function cli() {
  const o = parseArgs(process.argv.slice(2));
  if (o.probe) return probeMain();
  const report = await soak(o);
  if (o.json) fs.writeFileSync(o.json, JSON.stringify(report, null, 2));
  for (const c of report.checks) console.log(`${c.ok ? 'ok    ' : 'FAILED'} ${c.what}`);
  for (const f of report.figures) console.log(`${f.within ? 'figure' : 'OVER  '} ${f.what}`);
  console.log(`# connect ${o.connections}: ${report.connect_all_ms} ms; RSS KiB ${JSON.stringify(report.rss_kib)}; ` +
    `per connection ${report.rss_per_connection_bytes} B; probe ${JSON.stringify(report.probe)}`);
  console.log(`# abuse ${JSON.stringify(report.abuse)}`);
  console.log(report.ok ? 'soak: PASSED' : 'soak: FAILED');
  process.exit(report.ok ? 0 : 1);
}

if (require.main === module) {
  cli().catch((e) => { console.error(e); process.exit(2); });
}

module.exports = { soak };
