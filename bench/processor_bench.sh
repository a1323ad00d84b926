#!/usr/bin/env bash
#
# bench/processor_bench.sh — entry processors over the wire (issue 15) on a
# throwaway cluster: builtin:increment on one hot key and on distinct keys,
# closed loop from PB_CONNS connections with PB_WINDOW requests in flight each
# (bench/processor_bench.js).  Targets: hot key ≥ 5,000 processed/s, distinct
# keys ≥ 20,000/s.  Prints numbers, asserts nothing.
#
#   bash bench/processor_bench.sh       # PB_CONNS (50), PB_WINDOW (4), PB_SECONDS (5)
#
# Needs the extension built and installed (or scripts/devpg.sh's copy) and
# test/e2e/node_modules (npm ci in test/e2e) for the ws and msgpackr packages.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib_ws.sh"
bench_ws_cluster pbench ${PB_CONF:+--conf-line "$PB_CONF"}
bench_ws_env node "$REPO/bench/processor_bench.js"
