'use strict';
// Helper for TAP tests: connect to a topgun node over WebSocket, subscribe to
// a map with a live query, and exit 0 as soon as an event or query update for
// `key` with the expected value arrives (1 on timeout).  Prints "READY" once
// subscribed so the caller knows when to write.
//   node ws_watch.js <ws-url> <hs256-secret> <map> <key> <expected-json> <timeout-ms>
const path = require('node:path');
const { Client } = require(path.join(__dirname, '..', 'e2e', 'lib', 'client'));
const jwt = require(path.join(__dirname, '..', 'e2e', 'lib', 'jwt'));

async function main() {
  const [url, secret, map, key, expected, timeoutMs] = process.argv.slice(2);
  const want = JSON.stringify(JSON.parse(expected));
  const c = await Client.authed({ url, token: jwt.sign({ alg: 'HS256', key: secret }), name: 'watcher' });
  c.send({ type: 'QUERY_SUB', payload: { queryId: 'tap-watch', mapName: map, query: {} } });
  await c.waitFor('QUERY_RESP', 10000);
  process.stdout.write('READY\n');
  const hit = (m) => {
    if (m.type === 'QUERY_UPDATE' && m.payload.key === key) return JSON.stringify(m.payload.value) === want;
    const evs = m.type === 'SERVER_EVENT' ? [m.payload]
      : m.type === 'SERVER_BATCH_EVENT' ? m.payload.events : [];
    return evs.some((e) => e.mapName === map && e.key === key && e.record
                      && JSON.stringify(e.record.value) === want);
  };
  await c.waitFor(hit, Number(timeoutMs));
  process.stdout.write('GOT\n');
  c.close();
  process.exit(0);
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
