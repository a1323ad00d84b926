'use strict';
// Control of the test cluster: the sync worker's pid, killing it, restarting
// PostgreSQL (through scripts/cluster.sh), SQL snapshots.
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const env = require('./env');
const { psql, waitReady } = require('./psql');

const WORKER_TYPE = 'topgun sync server';

function workerPid() {
  const out = psql(`SELECT pid FROM pg_stat_activity WHERE backend_type = '${WORKER_TYPE}' ORDER BY backend_start DESC LIMIT 1`);
  return out ? Number(out) : null;
}

async function waitWorker(deadlineMs = 60000, notPid = null) {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    try {
      const pid = workerPid();
      if (pid && pid !== notPid) return pid;
    } catch (e) { /* server restarting */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no '${WORKER_TYPE}' in pg_stat_activity within ${deadlineMs} ms`);
}

function clusterCtl(cmd) {
  const script = path.join(env.repo, 'scripts', 'cluster.sh');
  return execFileSync('bash', [script, cmd, env.clusterDir], { encoding: 'utf8', timeout: 120000, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function restartServer() {
  clusterCtl('restart');
  await waitReady();
}

// md5 of the whole replicated state, excluding the given maps.
function stateDigest(excludeMaps = []) {
  const ex = excludeMaps.length ? `WHERE map NOT IN (${excludeMaps.map((m) => `'${m.replace(/'/g, "''")}'`).join(',')})` : '';
  return psql(`SELECT md5(coalesce((SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
      SELECT 'L|' || map || '|' || key || '|' || coalesce(value::text, '~') || '|' || ts::text || '|' || coalesce(ttl_ms::text, '') AS x FROM topgun.lww ${ex}
      UNION ALL SELECT 'O|' || map || '|' || key || '|' || tag || '|' || value::text || '|' || ts::text FROM topgun.ormap ${ex}
      UNION ALL SELECT 'T|' || map || '|' || tag FROM topgun.or_tombstones ${ex}) s), ''))`);
}

module.exports = { WORKER_TYPE, workerPid, waitWorker, clusterCtl, restartServer, stateDigest };
