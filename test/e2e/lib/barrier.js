'use strict';
// Synchronisation on facts, never on time (docs/testing.md, "Barriers"):
//   - until(fact)          poll a condition (SQL state, or an async probe
//                          such as an HTTP GET) up to a deadline;
//   - reloadConf()         pg_reload_conf() and wait until the sync server
//                          counted the reload (worker_stats 'reloads');
//   - feedBarrier(client)  wait until the sync server has handled every
//                          change committed so far (a sentinel topgun.publish
//                          reaches the client after all earlier feed events);
//   - Client#barrier / #syncBarrier / #expectNone (lib/client.js).
// Deadlines only bound a failure: a passing test never waits for one.
const crypto = require('node:crypto');
const { psql, lit } = require('./psql');

async function until(fact, what, deadlineMs = 30000) {
  const end = Date.now() + deadlineMs;
  let last;
  for (;;) {
    try {
      const v = await fact();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > end) {
      throw new Error(`not true within ${deadlineMs} ms: ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const stat = (name) => Number(psql(`SELECT coalesce((SELECT value FROM topgun.worker_stats WHERE name = ${lit(name)}), 0)`));

// Reload the configuration and wait until the sync server has applied it.
async function reloadConf(deadlineMs = 30000) {
  const before = stat('reloads');
  psql('SELECT pg_reload_conf()');
  await until(() => stat('reloads') > before, 'the sync server processes the configuration reload', deadlineMs);
}

async function setGuc(name, value) {
  psql(value === null ? `ALTER SYSTEM RESET ${name}` : `ALTER SYSTEM SET ${name} = ${lit(String(value))}`);
  await reloadConf();
}

// Every change committed before this call (SQL writes, policy changes,
// topgun.publish) has been handled by the sync server once the sentinel
// arrives: the change feed is in commit order, and a feed batch pushes its
// map events before its topic messages.  `prefix` is a topic namespace the
// client may subscribe to (access-control tests).
async function feedBarrier(c, { prefix = 'sentinel', timeoutMs = 10000 } = {}) {
  const topic = `${prefix}/${crypto.randomBytes(6).toString('hex')}`;
  c.send({ type: 'TOPIC_SUB', payload: { topic } });
  await c.barrier(timeoutMs);
  psql(`SELECT topgun.publish(${lit(topic)}, '"sentinel"')`);
  await c.waitFor((m) => m.type === 'TOPIC_MESSAGE' && m.payload.topic === topic, timeoutMs);
  c.send({ type: 'TOPIC_UNSUB', payload: { topic } });
  await c.barrier(timeoutMs);
}

const isSentinel = (m) => m.type === 'TOPIC_MESSAGE' && m.payload && m.payload.data === 'sentinel';

module.exports = { until, stat, reloadConf, setGuc, feedBarrier, isSentinel };
