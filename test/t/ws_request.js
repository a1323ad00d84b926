'use strict';
// Helper for TAP tests: connect to a topgun node over WebSocket, authenticate,
// send one message and print the first reply of the wanted type as JSON on
// one line (exit 1 on timeout).
//   node ws_request.js <ws-url> <hs256-secret> <message-json> <reply-type> <timeout-ms>
const path = require('node:path');
const { Client } = require(path.join(__dirname, '..', 'e2e', 'lib', 'client'));
const jwt = require(path.join(__dirname, '..', 'e2e', 'lib', 'jwt'));

async function main() {
  const [url, secret, message, type, timeoutMs] = process.argv.slice(2);
  const c = await Client.authed({ url, token: jwt.sign({ alg: 'HS256', key: secret }), name: 'request', ping: false });
  c.send(JSON.parse(message));
  const m = await c.waitFor(type, Number(timeoutMs));
  process.stdout.write(JSON.stringify(m) + '\n');
  c.close();
  process.exit(0);
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
