'use strict';
// Writers for the crash/restart TAP tests (test/t/03x_*.pl).
//
//   node crash_clients.js --dir DIR --kind NAME [--clients 4] [--batch 50] [--max-seconds 120]
//
// Environment: TOPGUN_WS_URL, TOPGUN_JWT_SECRET, TOPGUN_PG (as for the e2e tests).
//
// Starts --clients writers that write as fast as the server acks: each sends
// an OP_BATCH (80% PUTs of fresh keys in the LWW map, 20% OR_ADDs in the OR
// map, every op with an id), waits for its OP_ACK and only then records the
// ops as acknowledged and sends the next batch.  When the connection breaks
// (the test kills or restarts the server), a writer reconnects by itself with
// backoff and re-sends the unacknowledged batch with the same ids, like the
// TopGun client's offline queue.
//
// Progress goes to DIR/progress (one line: "acked clients_reconnected
// clients_acked_after_reconnect"), rewritten every 100 ms, so the Perl test
// can decide when to crash the server and when the writers have recovered.
// When DIR/stop appears, every writer
//   1. reconnects if needed and pulls both maps through the Merkle walk
//      (SYNC_INIT / MERKLE_REQ_BUCKET, ORMAP_SYNC_INIT / ORMAP_MERKLE_REQ_BUCKET),
//   2. merges the pulled records into its local replica (its own acked ops
//      plus what it pulled) and computes the Merkle roots of that replica
//      with the JS implementation of TopGun's trees;
// then the process checks every acknowledged op in SQL (value and HLC
// timestamp), compares each client's roots with topgun.merkle_root(), runs
// topgun.merkle_verify() on both maps, and prints one JSON summary line.
// Exit status 0 only when everything held.
const fs = require('node:fs');
const path = require('node:path');
const assert = require('node:assert/strict');

const e2e = path.join(__dirname, '..', 'e2e', 'lib');
const { Client } = require(path.join(e2e, 'client'));
const hlc = require(path.join(e2e, 'hlc'));
const { rows, psql, lit, waitReady } = require(path.join(e2e, 'psql'));
const { pullLww, pullOr } = require(path.join(e2e, 'sync'));
const { LwwTree, OrTree } = require(path.join(e2e, 'merkle'));

function args() {
  const a = { clients: 4, batch: 50, 'max-seconds': 120 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) a[v[i].replace(/^--/, '')] = v[i + 1];
  if (!a.dir || !a.kind) throw new Error('usage: crash_clients.js --dir DIR --kind NAME');
  a.clients = Number(a.clients);
  a.batch = Number(a.batch);
  a['max-seconds'] = Number(a['max-seconds']);
  return a;
}

const opt = args();
const lwwMap = `crash-${opt.kind}-lww`;
const orMap = `crash-${opt.kind}-or`;
const stopFile = path.join(opt.dir, 'stop');
const deadline = Date.now() + opt['max-seconds'] * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stopped = () => fs.existsSync(stopFile) || Date.now() > deadline;

class Writer {
  constructor(n) {
    this.n = n;
    this.nodeId = `crash-${opt.kind}-node-${n}`;
    this.conn = null;
    this.seq = 0;
    this.pending = null;       // the batch sent but not acked yet
    this.ackedLww = new Map(); // key → record (own acked writes)
    this.ackedOr = new Map();  // tag → {key, record}
    this.acked = 0;
    this.connects = 0;
    this.acksSinceReconnect = 0;
    this.failures = [];        // op rejections (must stay empty)
  }

  async connect(untilStopped = true) {
    let delay = 50;
    for (;;) {
      if (untilStopped && stopped()) return false;
      if (Date.now() > deadline + 60000) throw new Error(`${this.nodeId}: could not reconnect`);
      try {
        this.conn = await Client.authed({ name: this.nodeId, timeoutMs: 3000 });
        this.connects++;
        this.acksSinceReconnect = 0;
        return true;
      } catch (e) {
        this.conn = null;
        await sleep(delay);
        delay = Math.min(delay * 2, 1000);
      }
    }
  }

  nextBatch() {
    const ops = [];
    for (let i = 0; i < opt.batch; i++) {
      const s = this.seq++;
      const ts = hlc.now(this.nodeId);
      if (i % 5 === 4) {
        ops.push(hlc.orAddOp(orMap, `c${this.n}-k${s % 97}`, { c: this.n, s }, ts,
          { id: String(s + 1) }));
      } else {
        ops.push(hlc.putOp(lwwMap, `c${this.n}-${s}`, { c: this.n, s, t: `v${s}` }, ts,
          { id: String(s + 1) }));
      }
    }
    return ops;
  }

  async run() {
    while (!stopped()) {
      if (!this.conn || this.conn.closed) {
        if (this.conn) this.conn.terminate();
        if (!(await this.connect())) break;
      }
      if (!this.pending) this.pending = this.nextBatch();
      let ack;
      try {
        ack = await this.conn.sendOps(this.pending, 10000);
      } catch (e) {
        // Connection lost (or no ack in time): drop it and re-send this batch.
        this.conn.terminate();
        this.conn = null;
        continue;
      }
      const byId = new Map(ack.payload.results.map((r) => [r.opId, r]));
      for (const op of this.pending) {
        const r = byId.get(op.id);
        if (!r || r.success !== true) {
          this.failures.push({ id: op.id, result: r || null });
          continue;
        }
        if (op.opType === 'PUT') this.ackedLww.set(op.key, op.record);
        else this.ackedOr.set(op.orRecord.tag, { key: op.key, record: op.orRecord });
        this.acked++;
      }
      this.acksSinceReconnect++;
      this.pending = null;
    }
  }

  // Pull both maps like a reconnecting client and compute the local roots.
  async converge() {
    if (!this.conn || this.conn.closed) await this.connect(false);
    const lww = await pullLww(this.conn, lwwMap, { timeoutMs: 60000 });
    const or = await pullOr(this.conn, orMap, { timeoutMs: 60000 });
    const local = new Map(this.ackedLww);
    for (const [k, r] of lww.records) {
      const mine = local.get(k);
      if (!mine || hlc.compare(r.timestamp, mine.timestamp) > 0) local.set(k, r);
    }
    const ltree = new LwwTree();
    for (const [k, r] of local) ltree.update(k, r);
    const orLocal = new Map(); // key → Map(tag → record)
    const add = (key, rec) => {
      if (!orLocal.has(key)) orLocal.set(key, new Map());
      orLocal.get(key).set(rec.tag, rec);
    };
    for (const { key, record } of this.ackedOr.values()) add(key, record);
    for (const [key, e] of or.entries) for (const r of e.records) add(key, r);
    const otree = new OrTree();
    for (const [key, recs] of orLocal) otree.updateKey(key, [...recs.values()]);
    await this.conn.close();
    return {
      serverLww: lww.root, serverOr: or.root,
      localLww: ltree.root(), localOr: otree.root(),
      lwwKeys: local.size, orTags: [...orLocal.values()].reduce((a, m) => a + m.size, 0),
    };
  }
}

function writeProgress(writers) {
  const acked = writers.reduce((a, w) => a + w.acked, 0);
  const reconnected = writers.filter((w) => w.connects > 1).length;
  const recovered = writers.filter((w) => w.connects > 1 && w.acksSinceReconnect > 0).length;
  const tmp = path.join(opt.dir, 'progress.tmp');
  fs.writeFileSync(tmp, `${acked} ${reconnected} ${recovered}\n`);
  fs.renameSync(tmp, path.join(opt.dir, 'progress'));
}

async function main() {
  const writers = [];
  for (let i = 0; i < opt.clients; i++) writers.push(new Writer(i));
  const timer = setInterval(() => writeProgress(writers), 100);
  const t0 = Date.now();
  await Promise.all(writers.map((w) => w.run()));
  clearInterval(timer);
  writeProgress(writers);
  const writeSecs = (Date.now() - t0) / 1000;

  const summary = { kind: opt.kind, clients: opt.clients, write_seconds: writeSecs, ok: false };
  const problems = [];
  if (Date.now() > deadline) problems.push(`stop file not seen within ${opt['max-seconds']} s`);
  for (const w of writers) {
    if (w.failures.length) problems.push(`${w.nodeId}: ${w.failures.length} ops rejected, e.g. ${JSON.stringify(w.failures[0])}`);
  }
  summary.reconnects = writers.map((w) => w.connects - 1);
  summary.acks_after_last_reconnect = writers.map((w) => w.acksSinceReconnect);

  // Convergence: every client pulls and compares with the server.
  await waitReady();
  const conv = await Promise.all(writers.map((w) => w.converge()));
  const sqlLww = Number(psql(`SELECT topgun.merkle_root(${lit(lwwMap)})`));
  const sqlOr = Number(psql(`SELECT topgun.merkle_root(${lit(orMap)})`));
  conv.forEach((c, i) => {
    if (c.serverLww !== sqlLww || c.localLww !== sqlLww) {
      problems.push(`client ${i}: LWW roots local ${c.localLww} / pulled ${c.serverLww} / SQL ${sqlLww}`);
    }
    if (c.serverOr !== sqlOr || c.localOr !== sqlOr) {
      problems.push(`client ${i}: OR roots local ${c.localOr} / pulled ${c.serverOr} / SQL ${sqlOr}`);
    }
  });
  summary.roots = { lww: sqlLww, or: sqlOr };
  summary.converged_keys = conv.map((c) => c.lwwKeys + c.orTags);

  // Every acknowledged op is in SQL with its value and timestamp.
  const lwwRows = new Map(rows(`SELECT key, value, ts::text AS ts FROM topgun.lww WHERE map = ${lit(lwwMap)}`)
    .map((r) => [r.key, r]));
  const orRows = new Map(rows(`SELECT key, tag, value, ts::text AS ts FROM topgun.ormap WHERE map = ${lit(orMap)}`)
    .map((r) => [r.tag, r]));
  let checked = 0;
  let missing = 0;
  const bad = (msg) => { if (missing++ < 5) problems.push(msg); };
  for (const w of writers) {
    for (const [key, rec] of w.ackedLww) {
      checked++;
      const r = lwwRows.get(key);
      try {
        assert.ok(r, 'row missing');
        assert.deepEqual(r.value, rec.value);
        assert.equal(r.ts, hlc.tagOf(rec.timestamp));
      } catch (e) {
        bad(`acked LWW ${key}: ${e.message.split('\n')[0]} (row ${JSON.stringify(r)})`);
      }
    }
    for (const [tag, { key, record }] of w.ackedOr) {
      checked++;
      const r = orRows.get(tag);
      try {
        assert.ok(r, 'row missing');
        assert.equal(r.key, key);
        assert.deepEqual(r.value, record.value);
        assert.equal(r.ts, tag);
      } catch (e) {
        bad(`acked OR ${key}/${tag}: ${e.message.split('\n')[0]} (row ${JSON.stringify(r)})`);
      }
    }
  }
  if (missing > 5) problems.push(`... ${missing} acked ops missing or different in total`);
  summary.acked_checked = checked;
  summary.acked_missing = missing;
  summary.sql_rows = lwwRows.size + orRows.size;
  const verify = psql(`SELECT topgun.merkle_verify(${lit(lwwMap)}) AND topgun.merkle_verify(${lit(orMap)})`);
  summary.merkle_verify = verify === 't';
  if (!summary.merkle_verify) problems.push('topgun.merkle_verify() is false');
  if (checked === 0) problems.push('no op was acknowledged');
  summary.problems = problems;
  summary.ok = problems.length === 0;
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exit(summary.ok ? 0 : 1);
}

main().catch((e) => {
  process.stdout.write(`${JSON.stringify({ kind: opt.kind, ok: false, problems: [String(e.stack || e)] })}\n`);
  process.exit(1);
});
