'use strict';
// msgpack exactly as the TopGun client encodes it: msgpackr's module-level
// pack/unpack (built with useRecords:false): objects → map16, Date.now()-sized
// integers → float64, undefined → d4 00 00.
const { pack, unpack } = require('msgpackr');

// Split a server BATCH envelope: data = [u32le count]([u32le len][msgpack])*.
function unwrapBatch(msg) {
  const data = Buffer.from(msg.data);
  const out = [];
  if (data.length < 4) throw new Error('BATCH data too short');
  const count = data.readUInt32LE(0);
  let off = 4;
  for (let i = 0; i < count; i++) {
    const len = data.readUInt32LE(off);
    off += 4;
    const m = unpack(data.subarray(off, off + len));
    if (m && typeof m === 'object') Object.defineProperty(m, 'wireBytes', { value: len, enumerable: false });
    out.push(m);
    off += len;
  }
  if (off !== data.length) throw new Error('BATCH data has trailing bytes');
  return out;
}

module.exports = { pack, unpack, unwrapBatch };
