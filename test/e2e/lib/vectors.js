'use strict';
// Access to the golden vectors (TOPGUN_VECTORS, default <repo>/../shared/vectors).
const fs = require('node:fs');
const path = require('node:path');
const env = require('./env');

function file(rel) {
  const p = path.join(env.vectorsDir, rel);
  if (!fs.existsSync(p)) throw new Error(`vector file ${p} not found (set TOPGUN_VECTORS)`);
  return p;
}

function json(rel) {
  return JSON.parse(fs.readFileSync(file(rel), 'utf8'));
}

// A captured/constructed message: {bytes: Buffer, meta: parsed .json}.
function message(name) {
  return {
    bytes: fs.readFileSync(file(path.join('messages', `${name}.msgpack`))),
    meta: json(path.join('messages', `${name}.json`)),
  };
}

module.exports = { file, json, message };
