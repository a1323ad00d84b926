'use strict';
// A protocol-level test client: a `ws` WebSocket with binaryType
// 'arraybuffer' (as the browser client), msgpackr encoding, a queue of
// received messages (server BATCH envelopes are unwrapped), and waiters with
// timeouts.
const WebSocket = require('ws');
const { pack, unpack, unwrapBatch } = require('./codec');
const env = require('./env');
const jwt = require('./jwt');

function matcher(p) {
  if (typeof p === 'function') return p;
  if (typeof p === 'string') return (m) => m && m.type === p;
  throw new Error('matcher must be a type string or a predicate');
}

function describe(p) {
  return typeof p === 'string' ? p : (p.name || 'predicate');
}

class Client {
  constructor(ws, name) {
    this.ws = ws;
    this.name = name || 'client';
    this.queue = [];       // received, not yet consumed
    this.log = [];         // everything received (for diagnostics)
    this.waiters = [];
    this.closed = null;    // {code, reason}
    this.closeWaiters = [];
    this.errors = [];
    this.bytesIn = 0;
    this.pingTimer = null;
    this.pingsSent = 0;    // PINGs sent through send()
    this.pongsSeen = 0;    // PONGs received (the server answers PINGs in order)

    ws.on('message', (data, isBinary) => this._onMessage(data, isBinary));
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason ? reason.toString() : '' };
      this._stopPing();
      for (const w of this.waiters.splice(0)) {
        w.reject(new Error(`${this.name}: connection closed (${code} ${this.closed.reason}) ` +
          `while waiting for ${w.what}; last messages: ${this._tail()}`));
      }
      for (const w of this.closeWaiters.splice(0)) w(this.closed);
    });
    ws.on('error', (err) => { this.errors.push(err); });
  }

  // connect(url, {name, timeoutMs}) → Client, once the socket is open.
  static connect(url = env.wsUrl, { name, timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
      ws.binaryType = 'arraybuffer';
      const client = new Client(ws, name);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`${client.name}: connect to ${url} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      ws.once('open', () => { clearTimeout(timer); resolve(client); });
      ws.once('error', (err) => { clearTimeout(timer); reject(err); });
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        reject(new Error(`${client.name}: HTTP ${res.statusCode} instead of a WebSocket upgrade`));
      });
    });
  }

  // Connect, expect AUTH_REQUIRED, send AUTH, expect AUTH_ACK.
  static async authed({ url, name, token, ping = true, timeoutMs = 5000 } = {}) {
    const c = await Client.connect(url, { name, timeoutMs });
    await c.waitFor('AUTH_REQUIRED', timeoutMs);
    c.send({ type: 'AUTH', token: token || jwt.hs256(env.jwtSecret) });
    await c.waitFor('AUTH_ACK', timeoutMs);
    if (ping) c.startPing();
    return c;
  }

  // Reconnect with retries (the server may be restarting).
  static async authedRetry({ deadlineMs = 60000, ...opts } = {}) {
    const end = Date.now() + deadlineMs;
    let last;
    while (Date.now() < end) {
      try {
        return await Client.authed(opts);
      } catch (e) {
        last = e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw new Error(`could not connect and authenticate within ${deadlineMs} ms: ${last && last.message}`);
  }

  _onMessage(data, isBinary) {
    const buf = Buffer.from(data);
    this.bytesIn += buf.length;
    let msg;
    try {
      msg = isBinary ? unpack(buf) : JSON.parse(buf.toString('utf8'));
    } catch (e) {
      msg = { type: '__UNDECODABLE__', error: e.message, hex: buf.subarray(0, 64).toString('hex') };
    }
    if (msg && typeof msg === 'object' && msg.type !== 'BATCH') {
      Object.defineProperty(msg, 'wireBytes', { value: buf.length, enumerable: false });
    }
    const msgs = msg && msg.type === 'BATCH' ? unwrapBatch(msg) : [msg];
    // m.wireBytes: its encoded size (inside a BATCH: its own part); m.at: arrival order
    const at = process.hrtime.bigint();
    for (const m of msgs) {
      if (m && typeof m === 'object') Object.defineProperty(m, 'at', { value: at, enumerable: false });
      if (m && m.type === 'PONG') Object.defineProperty(m, 'seq', { value: ++this.pongsSeen, enumerable: false });
      this.log.push(m);
      if (this.log.length > 200) this.log.shift();
      const i = this.waiters.findIndex((w) => w.match(m));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        w.resolve(m);
      } else {
        this.queue.push(m);
      }
    }
  }

  _tail() {
    return JSON.stringify(this.log.slice(-5).map((m) => (m && m.type) || m));
  }

  // Wait for the first message matching `p` (a type or a predicate).  Messages
  // already received are searched first; the match is consumed.
  waitFor(p, timeoutMs = 5000) {
    const match = matcher(p);
    const i = this.queue.findIndex(match);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.closed) {
      return Promise.reject(new Error(`${this.name}: connection already closed ` +
        `(${this.closed.code} ${this.closed.reason}) while waiting for ${describe(p)}`));
    }
    return new Promise((resolve, reject) => {
      const w = { match, what: describe(p) };
      const timer = setTimeout(() => {
        const k = this.waiters.indexOf(w);
        if (k >= 0) this.waiters.splice(k, 1);
        reject(new Error(`${this.name}: no ${describe(p)} within ${timeoutMs} ms; ` +
          `last messages: ${this._tail()}`));
      }, timeoutMs);
      w.resolve = (m) => { clearTimeout(timer); resolve(m); };
      w.reject = (e) => { clearTimeout(timer); reject(e); };
      this.waiters.push(w);
    });
  }

  // Barrier: send a PING and wait for its PONG.  The server handles a
  // connection's messages in order and answers PING as it reads it, so once
  // the PONG is here every earlier message of this connection that is handled
  // on arrival (AUTH, TOPIC_SUB/UNSUB/PUB, QUERY_UNSUB, PING) has been handled,
  // and everything the server sent to this connection before it has arrived
  // (e.g. events of writes that other connections were already acked for).
  // Not a barrier for this connection's own writes: they are answered at the
  // group's commit (a read is: lib/sync.js watchLww).  timeoutMs only bounds
  // a failure.
  async barrier(timeoutMs = 10000) {
    this.send({ type: 'PING', timestamp: Date.now() });
    const n = this.pingsSent;
    await this.waitFor((m) => m.type === 'PONG' && m.seq === n, timeoutMs);
  }

  // Assert that nothing matching `p` has arrived, up to a barrier (`how`:
  // 'ping' (default) or a function that awaits another barrier); matches are
  // consumed.  The caller makes sure the cause has been handled before (an
  // ack received, another client's barrier).
  async expectNone(p, how = 'ping') {
    if (how === 'ping') await this.barrier();
    else await how();
    const match = matcher(p);
    const got = this.queue.filter(match);
    this.queue = this.queue.filter((m) => !match(m));
    if (got.length) {
      throw new Error(`${this.name}: unexpected ${describe(p)}: ${JSON.stringify(got[0]).slice(0, 300)}`);
    }
  }

  // Drop queued messages (e.g. events not under test).
  drain(p) {
    if (!p) { this.queue = []; return; }
    const match = matcher(p);
    this.queue = this.queue.filter((m) => !match(m));
  }

  waitClose(timeoutMs = 5000) {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: not closed within ${timeoutMs} ms; ` +
        `last messages: ${this._tail()}`)), timeoutMs);
      this.closeWaiters.push((c) => { clearTimeout(timer); resolve(c); });
    });
  }

  send(obj) {
    if (obj && obj.type === 'PING') this.pingsSent++;
    this.sendRaw(pack(obj));
  }

  sendRaw(bytes) {
    this.ws.send(Buffer.from(bytes), { binary: true });
  }

  // Send an OP_BATCH and wait for the OP_ACK whose lastId is the last op's id.
  async sendOps(ops, timeoutMs = 10000) {
    const lastId = ops[ops.length - 1].id;
    this.send({ type: 'OP_BATCH', payload: { ops } });
    return this.waitFor((m) => m.type === 'OP_ACK' && m.payload && m.payload.lastId === lastId, timeoutMs);
  }

  startPing(intervalMs = 5000) {
    this._stopPing();
    this.pingTimer = setInterval(() => {
      if (this.ws.readyState === WebSocket.OPEN) this.send({ type: 'PING', timestamp: Date.now() });
    }, intervalMs);
    this.pingTimer.unref();
  }

  _stopPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  pause() { this.ws.pause(); }
  resume() { this.ws.resume(); }

  async close() {
    this._stopPing();
    if (this.closed) return this.closed;
    const p = this.waitClose(3000).catch(() => null);
    try { this.ws.close(1000, 'bye'); } catch (e) { /* already closing */ }
    const r = await p;
    if (!r) this.ws.terminate();
    return r;
  }

  terminate() {
    this._stopPing();
    this.ws.terminate();
  }
}

module.exports = { Client };
