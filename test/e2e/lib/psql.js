'use strict';
// SQL access through the psql binary (no node Postgres driver needed).
const { execFileSync } = require('node:child_process');
const env = require('./env');

function psql(sql, { conninfo = env.pg, timeoutMs = 60000 } = {}) {
  try {
    return execFileSync(env.psqlBin, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', conninfo, '-c', sql],
      { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024 })
      .replace(/\n$/, '');
  } catch (e) {
    const err = new Error(`psql failed: ${(e.stderr || e.message).toString().trim()}\n  SQL: ${sql.slice(0, 500)}`);
    err.stderr = e.stderr;
    throw err;
  }
}

// Rows of a query as JSON objects.
function rows(sql, opts) {
  const out = psql(`SELECT coalesce(json_agg(t), '[]') FROM (${sql}) t`, opts);
  return JSON.parse(out);
}

// One value (first column of the first row) parsed as JSON, or null.
function value(sql, opts) {
  const r = rows(sql, opts);
  if (!r.length) return null;
  return r[0][Object.keys(r[0])[0]];
}

// SQL string literal.
function lit(s) {
  if (s === null || s === undefined) return 'NULL';
  return `'${String(s).replace(/'/g, "''")}'`;
}

// Retry a query until it succeeds (the server may be restarting).
async function waitReady(deadlineMs = 60000) {
  const end = Date.now() + deadlineMs;
  let last;
  while (Date.now() < end) {
    try {
      psql('SELECT 1', { timeoutMs: 5000 });
      return;
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`PostgreSQL not ready within ${deadlineMs} ms: ${last && last.message}`);
}

module.exports = { psql, rows, value, lit, waitReady };
