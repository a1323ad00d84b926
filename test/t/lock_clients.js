'use strict';
// Lock holders for test/t/031_lock_crash.pl (SIGKILL of the sync server while
// locks are held).
//
//   node lock_clients.js --dir DIR --kind NAME [--locks 4] [--cycles 1200]
//
// Environment: TOPGUN_WS_URL, TOPGUN_JWT_SECRET, TOPGUN_PG (as the e2e tests).
//
// Phase 1 (before the kill):
//   - `cycles` acquire + release round trips on the first lock name, so its
//     fencing tokens run past the first reserved block (token_block = 1000,
//     docs/locks.md): the restart has to find a durable high-water mark;
//   - one holder connection per lock name acquires it (TTL 300 s, so an
//     expiry cannot explain a release) and one waiter connection queues a
//     LOCK_REQUEST behind it (a PING/PONG barrier makes sure it arrived and
//     was not granted);
//   - writes DIR/held.json {names, tokens: {name: highest token granted}}.
// Then it waits for DIR/killed (the Perl test SIGKILLed a server process and
// saw the server serving again).
// Phase 2 (after the restart):
//   - every old connection was closed by the server; none of the queued
//     waiters was granted on its old connection;
//   - a new connection per name asks for the lock: granted at once (the old
//     holder's lock is gone), with a token greater than every token granted
//     before the kill;
//   - a release by a reconnected old holder with its old token is refused
//     (LOCK_RELEASED success false: it holds nothing any more);
//   - the new holders release with their tokens (success true).
// Prints one JSON summary line; exit status 0 only when everything held.
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const e2e = path.join(__dirname, '..', 'e2e', 'lib');
const { Client } = require(path.join(e2e, 'client'));

function args() {
  const a = { locks: 4, cycles: 1200 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) a[v[i].replace(/^--/, '')] = v[i + 1];
  if (!a.dir || !a.kind) throw new Error('usage: lock_clients.js --dir DIR --kind NAME');
  a.locks = Number(a.locks);
  a.cycles = Number(a.cycles);
  return a;
}
const opt = args();
const killedFile = path.join(opt.dir, 'killed');

function request(c, name, ttl = 300000) {
  const requestId = crypto.randomUUID();
  c.send({ type: 'LOCK_REQUEST', payload: { requestId, name, ttl } });
  return requestId;
}
const isGrant = (requestId) => (m) => m.type === 'LOCK_GRANTED' && m.payload.requestId === requestId;
const granted = (c, requestId, ms = 5000) => c.waitFor(isGrant(requestId), ms).then((m) => m.payload);
async function release(c, name, fencingToken) {
  const requestId = crypto.randomUUID();
  c.send({ type: 'LOCK_RELEASE', payload: { requestId, name, fencingToken } });
  const m = await c.waitFor((x) => x.type === 'LOCK_RELEASED' && x.payload.requestId === requestId);
  return m.payload.success;
}

// Wait for a file, polling (the Perl test creates it once the server is back).
async function waitFile(f, ms) {
  const end = Date.now() + ms;
  while (!fs.existsSync(f)) {
    if (Date.now() > end) throw new Error(`${f} did not appear within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  const problems = [];
  const check = (cond, what) => { if (!cond) problems.push(what); };
  const names = [];
  for (let i = 0; i < opt.locks; i++) names.push(`crash-${opt.kind}-${i}-${crypto.randomBytes(3).toString('hex')}`);
  const tokens = {};
  const note = (name, t) => { if (!(name in tokens) || t > tokens[name]) tokens[name] = t; };

  // Phase 1
  const cycler = await Client.authed({ name: 'cycler' });
  let last = 0;
  for (let k = 0; k < opt.cycles; k++) {
    const g = await granted(cycler, request(cycler, names[0]));
    check(g.fencingToken > last, `cycle ${k}: token ${g.fencingToken} > ${last}`);
    last = g.fencingToken;
    note(names[0], g.fencingToken);
    check(await release(cycler, names[0], g.fencingToken), `cycle ${k}: released`);
  }
  await cycler.close();

  const holders = [];
  const waiters = [];
  for (const name of names) {
    const h = await Client.authed({ name: `holder-${name}` });
    const g = await granted(h, request(h, name));
    note(name, g.fencingToken);
    holders.push({ c: h, name, token: g.fencingToken });
    const w = await Client.authed({ name: `waiter-${name}` });
    const rid = request(w, name);
    await w.barrier();
    check(!w.queue.some(isGrant(rid)), `${name}: the waiter is not granted while the lock is held`);
    waiters.push({ c: w, name, rid });
  }
  fs.writeFileSync(path.join(opt.dir, 'held.json.tmp'), JSON.stringify({ names, tokens }));
  fs.renameSync(path.join(opt.dir, 'held.json.tmp'), path.join(opt.dir, 'held.json'));

  // The kill
  await waitFile(killedFile, 180000);

  // Phase 2
  for (const x of [...holders, ...waiters]) {
    const r = await x.c.waitClose(60000).catch(() => null);
    check(r !== null, `${x.c.name}: the old connection was closed by the server`);
  }
  for (const w of waiters) {
    check(!w.c.log.some(isGrant(w.rid)), `${w.name}: the queued waiter was never granted on its old connection`);
  }
  const after = {};
  for (const name of names) {
    const c = await Client.authedRetry({ name: `new-${name}`, deadlineMs: 60000 });
    let g = null;
    try {
      g = await granted(c, request(c, name), 5000);
    } catch (e) {
      problems.push(`${name}: new LOCK_REQUEST not granted at once: ${e.message}`);
    }
    if (g) {
      after[name] = g.fencingToken;
      check(g.fencingToken > tokens[name],
        `${name}: token after the restart ${g.fencingToken} > every token before it (${tokens[name]})`);
      // The old holder, reconnected, cannot release with its old token.
      const h = holders.find((x) => x.name === name);
      const old = await Client.authedRetry({ name: `old-${name}`, deadlineMs: 60000 });
      check((await release(old, name, h.token)) === false, `${name}: the old holder's token releases nothing`);
      await old.close();
      check((await release(c, name, g.fencingToken)) === true, `${name}: the new holder releases`);
    }
    await c.close();
  }
  const summary = { kind: opt.kind, names, before: tokens, after, cycles: opt.cycles, problems, ok: problems.length === 0 };
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.exit(summary.ok ? 0 : 1);
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ ok: false, problems: [String(e && e.stack || e)] }) + '\n');
  process.exit(1);
});
