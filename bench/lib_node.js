'use strict';
// bench/lib_node.js — what the node benches share: the ws and msgpackr
// packages of test/e2e, the BATCH envelope split of test/e2e/lib/codec.js, an
// HS256 token minted with test/e2e/lib/jwt.js (the tests' one copy), a
// counter to wait on, a millisecond clock and percentiles.
const path = require('node:path');

const e2e = path.join(__dirname, '..', 'test', 'e2e');
const WebSocket = require(path.join(e2e, 'node_modules', 'ws'));
const { pack, unpack } = require(path.join(e2e, 'node_modules', 'msgpackr'));
const jwt = require(path.join(e2e, 'lib', 'jwt'));

// A token for user `sub` signed with TOPGUN_JWT_SECRET.
function token(sub, { roles = ['ADMIN'], ttlS = 7200 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ key: process.env.TOPGUN_JWT_SECRET,
    claims: { sub, userId: sub, roles, iat: now, exp: now + ttlS } });
}

const { unwrapBatch } = require(path.join(e2e, 'lib', 'codec'));

// The messages of one WebSocket frame (a BATCH envelope holds several).
function messages(data) {
  const m = unpack(data);
  return m.type === 'BATCH' ? unwrapBatch(m) : [m];
}

// A count the bench waits on: reach(n) resolves once bump() has been called
// n times in all (a fact, not a time).
class Gate {
  constructor() { this.n = 0; this.waiters = []; }
  bump() {
    this.n++;
    this.waiters = this.waiters.filter((w) => (this.n >= w.n ? (w.resolve(), false) : true));
  }
  reach(n) { return this.n >= n ? Promise.resolve() : new Promise((resolve) => this.waiters.push({ n, resolve })); }
}

const now = () => Number(process.hrtime.bigint()) / 1e6;
const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : NaN);
function stats(a) {
  const s = a.slice().sort((x, y) => x - y);
  return { n: s.length, p50: pct(s, 0.5), p99: pct(s, 0.99), max: s.length ? s[s.length - 1] : NaN };
}

module.exports = { WebSocket, pack, unpack, messages, Gate, token, now, pct, stats };
