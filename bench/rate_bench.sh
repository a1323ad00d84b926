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
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

[ -d "$REPO/test/e2e/node_modules/ws" ] || (cd "$REPO/test/e2e" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
WORK="$(mktemp -d /tmp/topgun-ratebench.XXXXXX)"
chmod 755 "$WORK"
state="$WORK/cluster"
cleanup() {
	tg_cluster_stop "$state" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# Every identity: 250 ops/s and 50 messages/s.  The flood is not closed
# (close_after 0): the server answers all of it for the whole run, the
# worst case for everybody else.
secret="bench-$(openssl rand -hex 24)"
tg_cluster_init "$state" --secret "$secret" \
	--conf-line "shared_buffers = 256MB" \
	--conf-line "max_wal_size = 4GB" \
	--conf-line "topgun.rate_limit_identity_ops_per_s = 250" \
	--conf-line "topgun.rate_limit_identity_messages_per_s = 50" \
	--conf-line "topgun.rate_limit_close_after = 0" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"
echo "# cluster: PostgreSQL $(tg_psql "$state" -Atc 'SHOW server_version'), fsync=$(tg_psql "$state" -Atc 'SHOW fsync'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" TOPGUN_PG="$(tg_conninfo "$state")" TOPGUN_JWT_SECRET="$secret" \
	TOPGUN_PSQL="$TG_PG_BIN/psql" RATE_IDENT_OPS=250 RATE_IDENT_MSGS=50 \
	node "$REPO/bench/rate_bench.js"
echo "# worker stats: $(tg_psql "$state" -Atc "SELECT string_agg(name || '=' || value, ' ') FROM topgun.worker_stats WHERE name IN ('rate_limited','rate_limited_ops','rate_limit_closes','ops_applied','commits','acks')")"
