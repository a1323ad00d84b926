'use strict';
// Operations endpoints of the sync server's port (docs/operations.md):
// GET /health, /health/live and /metrics (Prometheus text 0.0.4, checked with
// `promtool check metrics`); counters move with traffic; the GUCs
// topgun.metrics and topgun.metrics_listen_addresses take effect on reload;
// /health reports extension_missing after DROP EXTENSION and
// extension_outdated while the database is at 1.1, then ready again after
// ALTER EXTENSION topgun UPDATE.  Runs last: it drops and re-creates the
// extension.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { execFileSync } = require('node:child_process');
const { Client } = require('./lib/client');
const env = require('./lib/env');
const hlc = require('./lib/hlc');
const { psql } = require('./lib/psql');
const barrier = require('./lib/barrier');

const port = Number(new URL(env.wsUrl).port);

function get(path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

// Poll GET path until pred(response) holds (the worker applies reloads and
// notices catalog changes on its own schedule); connection errors retry.
async function until(path, pred, what, deadlineMs = 30000) {
  return barrier.until(async () => { const r = await get(path); return pred(r) && r; },
    `GET ${path}: ${what}`, deadlineMs);
}

// {"name{labels}": value} of an exposition.
function samples(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

async function scrape() {
  const r = await get('/metrics');
  assert.equal(r.status, 200, r.body);
  return samples(r.body);
}

function sum(m, prefix) {
  let s = 0;
  for (const [k, v] of m) if (k.startsWith(prefix)) s += v;
  return s;
}

// ALTER SYSTEM statements (one psql call each: they refuse a transaction block), then a reload.
function reload(...sql) {
  for (const s of sql) psql(s);
  psql('SELECT pg_reload_conf()');
}

test('/health and /health/live answer 200 while serving; / keeps its answer', async () => {
  const h = await get('/health');
  assert.equal(h.status, 200);
  assert.equal(h.type, 'application/json');
  const j = JSON.parse(h.body);
  assert.equal(j.status, 'ready');
  assert.equal(j.version, psql("SELECT extversion FROM pg_extension WHERE extname = 'topgun'"));
  const l = await get('/health/live');
  assert.equal(l.status, 200);
  assert.equal(JSON.parse(l.body).status, 'alive');
  assert.equal(JSON.parse(l.body).pid, Number(psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'topgun sync server'")));
  assert.equal((await get('/')).body, 'TopGun Server Running');
  assert.equal((await get('/no-such-page')).status, 404);
});

test('/metrics passes promtool check metrics', async () => {
  const r = await get('/metrics');
  assert.equal(r.status, 200);
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  // promtool prints nothing and exits 0 for a clean exposition
  const out = execFileSync('promtool', ['check', 'metrics'], { input: r.body, encoding: 'utf8' });
  assert.equal(out.trim(), '');
  const m = samples(r.body);
  assert.equal(m.get('topgun_ready'), 1);
  assert.ok(m.has('topgun_executor_queue_depth{executor="session"}'), 'the session executor\'s queue');
  const readers = Number(psql('SHOW topgun.executors')) - 1;
  for (let i = 1; i <= readers; i++) {
    assert.ok(m.has(`topgun_executor_queue_depth{executor="reader-${i}"}`), `reader-${i} registered`);
  }
  assert.ok([...m.keys()].some((k) => k.startsWith('topgun_build_info{version="')), 'build info');
});

test('counters move when traffic flows', { timeout: 60000 }, async () => {
  const before = await scrape();
  const c = await Client.authed({ name: 'metrics-writer' });
  const map = hlc.uniqueName('metrics');
  const ops = [1, 2, 3].map((i) => hlc.putOp(map, `k${i}`, { i }, hlc.now('metrics-client')));
  const ack = await c.sendOps(ops);
  assert.equal(ack.payload.results.length, 3);
  c.sendRaw(Buffer.from([0xc1, 0x00]));           // not msgpack
  await c.waitFor((m) => m.type === 'ERROR');
  const open = await scrape();
  assert.ok(open.get('topgun_connections_open') >= 1, 'connection open');

  const bad = await Client.connect(env.wsUrl, { name: 'metrics-bad-auth' });
  await bad.waitFor('AUTH_REQUIRED');
  bad.send({ type: 'AUTH', token: 'eyJhbGciOiJIUzI1NiJ9.e30.AAAA' });
  await bad.waitFor('AUTH_FAIL');
  assert.equal((await bad.waitClose()).code, 4001);
  await c.close();

  // the close is counted when the socket is gone: poll for it
  const closedBefore = sum(before, 'topgun_connections_closed_total{');
  await until('/metrics', (r) => sum(samples(r.body), 'topgun_connections_closed_total{') >= closedBefore + 2, 'two closes');
  const after = await scrape();
  const d = (k) => (after.get(k) || 0) - (before.get(k) || 0);
  assert.ok(d('topgun_connections_opened_total') >= 2, 'opened');
  assert.ok(d('topgun_connections_closed_total{code="4001"}') >= 1, 'closed 4001');
  assert.ok(d('topgun_auth_successes_total') >= 1, 'auth ok');
  assert.ok(d('topgun_auth_failures_total{reason="bad_signature"}') >= 1, 'auth failure reason');
  assert.ok(d('topgun_messages_received_total{type="OP_BATCH"}') >= 1, 'OP_BATCH counted');
  assert.ok(d('topgun_messages_received_total{type="AUTH"}') >= 2, 'AUTH counted');
  assert.ok(d('topgun_messages_invalid_total') >= 1, 'invalid message');
  assert.ok(d('topgun_ops_applied_total') >= 3, 'ops applied');
  assert.ok(d('topgun_op_acks_total') >= 1, 'acks');
  assert.ok(d('topgun_group_commit_ops_count') >= 1, 'group size histogram');
  assert.ok(d('topgun_group_commit_ops_sum') >= 3, 'group size sum');
  assert.ok(d('topgun_group_commit_duration_seconds_count') >= 1, 'commit duration histogram');
  assert.ok(d('topgun_group_commit_duration_seconds_sum') > 0, 'commit duration sum');
  assert.ok(d('topgun_op_ack_latency_seconds_count') >= 1, 'ack latency histogram');
  assert.ok(d('topgun_commits_total') >= 1, 'commits');
});

test('topgun.metrics and topgun.metrics_listen_addresses apply on reload', { timeout: 60000 }, async () => {
  try {
    reload("ALTER SYSTEM SET topgun.metrics_listen_addresses = '10.0.0.0/8, fd00::/8'");
    await until('/metrics', (r) => r.status === 403, '403 for a peer outside the list');
    reload("ALTER SYSTEM SET topgun.metrics_listen_addresses = '127.0.0.1/32'");
    await until('/metrics', (r) => r.status === 200, '200 for a listed peer');
    reload('ALTER SYSTEM SET topgun.metrics = off');
    await until('/metrics', (r) => r.status === 404, '404 with topgun.metrics = off');
    assert.equal((await get('/health')).status, 200, '/health stays on');
    assert.throws(() => psql("ALTER SYSTEM SET topgun.metrics_listen_addresses = 'example.com'"),
      /invalid value for parameter/);
  } finally {
    reload('ALTER SYSTEM RESET topgun.metrics_listen_addresses', 'ALTER SYSTEM RESET topgun.metrics');
  }
  await until('/metrics', (r) => r.status === 200, 'metrics back on');
});

test('/health: 503 extension_missing, extension_outdated, then ready after ALTER EXTENSION UPDATE', { timeout: 120000 }, async () => {
  try {
    psql('DROP EXTENSION topgun CASCADE');
    let r = await until('/health', (x) => x.status === 503 && JSON.parse(x.body).status === 'extension_missing', 'extension_missing');
    assert.equal(JSON.parse(r.body).extension_version, null);
    assert.equal((await get('/health/live')).status, 200, 'live while not ready');
    const m = await scrape();
    assert.equal(m.get('topgun_ready'), 0);

    // 1.1 is a frozen older version: the worker does not serve it
    psql("CREATE EXTENSION topgun VERSION '1.1'");
    r = await until('/health', (x) => x.status === 503 && JSON.parse(x.body).status === 'extension_outdated', 'extension_outdated', 60000);
    assert.equal(JSON.parse(r.body).extension_version, '1.1');

    psql('ALTER EXTENSION topgun UPDATE');
    await until('/health', (x) => x.status === 200 && JSON.parse(x.body).status === 'ready', 'ready', 60000);
  } finally {
    if (psql("SELECT count(*) FROM pg_extension WHERE extname = 'topgun'") === '0') psql('CREATE EXTENSION topgun');
  }
  const c = await Client.authedRetry({ name: 'metrics-after', deadlineMs: 30000 });
  await c.close();
});
