#!/usr/bin/env bash
#
# bench/rate_bench.sh — per-client rate limits (issue 17 item 8) on a
# throwaway cluster: the OP_ACK latency of RATE_GOOD well-behaved clients
# (each its own identity, well under the limits) without a flood, while one
# identity floods at 20x its limits from RATE_FLOODERS connections, and the
# same flood with the limits off.  Target: the good clients' ack p99 under
# the flood within 2x of the run without it.  Prints numbers, asserts
# nothing.
#
#   bash bench/rate_bench.sh            # RATE_GOOD (10), RATE_FLOODERS (10), RATE_SECONDS (10)
#
# Needs the extension built and installed (or scripts/devpg.sh's copy) and
# test/e2e/node_modules (npm ci in test/e2e) for the ws and msgpackr packages.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib_ws.sh"

# Every identity: 250 ops/s and 50 messages/s.  The flood is not closed
# (close_after 0): the server answers all of it for the whole run, the
# worst case for everybody else.
bench_ws_cluster ratebench \
	--conf-line "shared_buffers = 256MB" \
	--conf-line "max_wal_size = 4GB" \
	--conf-line "topgun.rate_limit_identity_ops_per_s = 250" \
	--conf-line "topgun.rate_limit_identity_messages_per_s = 50" \
	--conf-line "topgun.rate_limit_close_after = 0"
bench_ws_env env RATE_IDENT_OPS=250 RATE_IDENT_MSGS=50 node "$REPO/bench/rate_bench.js"
echo "# worker stats: $(tg_psql "$state" -Atc "SELECT string_agg(name || '=' || value, ' ') FROM topgun.worker_stats WHERE name IN ('rate_limited','rate_limited_ops','rate_limit_closes','ops_applied','commits','acks')")"
