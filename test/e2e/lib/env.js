'use strict';
// Test environment, set by scripts/test.sh (see docs/testing.md).
const path = require('node:path');

const repo = process.env.TOPGUN_REPO || path.resolve(__dirname, '..', '..', '..');

function required(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run the e2e tests through scripts/test.sh ` +
      '(or export TOPGUN_WS_URL, TOPGUN_PG, TOPGUN_JWT_SECRET, TOPGUN_CLUSTER_DIR)');
  }
  return v;
}

module.exports = {
  repo,
  get wsUrl() { return required('TOPGUN_WS_URL'); },
  get pg() { return required('TOPGUN_PG'); },
  get jwtSecret() { return required('TOPGUN_JWT_SECRET'); },
  get clusterDir() { return required('TOPGUN_CLUSTER_DIR'); },
  vectorsDir: process.env.TOPGUN_VECTORS || path.resolve(repo, '..', 'shared', 'vectors'),
  psqlBin: process.env.TOPGUN_PSQL || '/usr/lib/postgresql/15/bin/psql',
};
