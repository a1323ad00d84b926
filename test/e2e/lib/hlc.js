'use strict';
// Timestamps and ops built the way the TopGun client builds them
// (field order and undefined fields as in the captured frames).

let lastMillis = 0;
let counter = 0;

// A strictly increasing client clock.
function now(nodeId) {
  const wall = Date.now();
  if (wall > lastMillis) {
    lastMillis = wall;
    counter = 0;
  } else {
    counter++;
  }
  return { millis: lastMillis, counter, nodeId };
}

function tagOf(ts) {
  return `${ts.millis}:${ts.counter}:${ts.nodeId}`;
}

function compare(a, b) {
  if (a.millis !== b.millis) return a.millis < b.millis ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  const x = Buffer.from(a.nodeId), y = Buffer.from(b.nodeId);
  return Buffer.compare(x, y);
}

let nextOpId = 1;
function opId() {
  return String(nextOpId++);
}

function putOp(mapName, key, value, ts, { id = opId(), ttlMs } = {}) {
  const record = { value, timestamp: ts };
  if (ttlMs !== undefined) record.ttlMs = ttlMs;
  return { mapName, opType: 'PUT', key, record, orRecord: undefined, orTag: undefined,
    timestamp: ts, synced: false, id };
}

function removeOp(mapName, key, ts, { id = opId() } = {}) {
  return { mapName, opType: 'REMOVE', key, record: { value: null, timestamp: ts },
    orRecord: undefined, orTag: undefined, timestamp: ts, synced: false, id };
}

function orAddOp(mapName, key, value, ts, { id = opId(), ttlMs } = {}) {
  const orRecord = { value, timestamp: ts, tag: tagOf(ts) };
  if (ttlMs !== undefined) orRecord.ttlMs = ttlMs;
  return { mapName, opType: 'OR_ADD', key, record: undefined, orRecord, orTag: undefined,
    timestamp: ts, synced: false, id };
}

function orRemoveOp(mapName, key, tag, ts, { id = opId() } = {}) {
  return { mapName, opType: 'OR_REMOVE', key, record: undefined, orRecord: undefined, orTag: tag,
    timestamp: ts, synced: false, id };
}

function opBatch(ops) {
  return { type: 'OP_BATCH', payload: { ops } };
}

// A map name nobody else uses.
function uniqueName(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

module.exports = { now, tagOf, compare, opId, putOp, removeOp, orAddOp, orRemoveOp, opBatch, uniqueName };
