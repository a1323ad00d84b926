#!/usr/bin/env bash
#
# bench/lock_bench.sh — distributed locks over the wire (issue 15) on a
# throwaway cluster: uncontended LOCK_REQUEST → LOCK_GRANTED → LOCK_RELEASE →
# LOCK_RELEASED round trips from one connection (target p99 < 5 ms), then the
# hand-over latency with CONTENDERS connections queued on one lock.  Prints
# numbers, asserts nothing.
#
#   bash bench/lock_bench.sh            # LOCK_N (2000), LOCK_WARMUP (200), LOCK_CONTENDERS (20)
#
# Needs the extension built and installed (or scripts/devpg.sh's copy) and
# test/e2e/node_modules (npm ci in test/e2e) for the ws and msgpackr packages.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib_ws.sh"
bench_ws_cluster lockbench
bench_ws_env node "$REPO/bench/lock_bench.js"
echo "# lock tokens reserved: $(tg_psql "$state" -Atc "SELECT string_agg(name || ' hi=' || hi, ', ') FROM topgun.lock_tokens")"
