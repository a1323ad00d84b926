'use strict';
// Load and abuse (the CI-sized run of bench/soak.js; the long run is
// `bash bench/soak.sh`, see docs/reliability.md): 1000 authenticated
// connections held (10% writing every second) while, for 12 s, slowloris
// sockets trickle the upgrade / the AUTH frame byte by byte, an OP_BATCH
// arrives one byte every 20 ms, slow readers stop reading while asking for
// megabytes, 2 reconnect storms of 300 clients re-send pending batches,
// invalid-message floods and forged-token floods run in loops.  Meanwhile a
// well-behaved client (own process) writes every 50 ms and must get every ack;
// the worker must not restart.  Latency and memory figures are printed, not
// asserted (their targets are checked by `bash bench/soak.sh`, which prints them).
const test = require('node:test');
const assert = require('node:assert/strict');
const { soak } = require('../../bench/soak');

test('1000 held connections + slowloris, slow readers/writers, storms and floods', { timeout: 240000 }, async () => {
  const report = await soak({
    seconds: 12, connections: 1000, 'active-share': 0.1, slowloris: 20, 'slow-readers': 3,
    storm: 300, 'storm-rounds': 2, flooders: 3, 'bad-auth': 3,
    'p99-budget-ms': 500, 'max-budget-ms': 3000, json: null, probe: false,   // figures only
  });
  // the figures docs/reliability.md quotes
  console.log(`# soak: ${JSON.stringify({
    held: report.connections_held, connect_ms: report.connect_all_ms, rss_kib: report.rss_kib,
    per_conn_b: report.rss_per_connection_bytes, probe: report.probe, asan: report.asan,
    storm_connect_ms: report.abuse.storm_connect_ms, storm_reconnect_ms: report.abuse.storm_reconnect_ms,
  })}`);
  for (const f of report.figures) console.log(`# soak figure: ${f.what}${f.within ? '' : ' (over the target)'}`);
  const failed = report.checks.filter((c) => !c.ok).map((c) => c.what);
  assert.deepEqual(failed, [], 'every soak check holds');
  assert.equal(report.checks.length, 12, 'all behaviour checks ran');
});
