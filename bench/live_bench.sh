#!/usr/bin/env bash
#
# bench/live_bench.sh — live-data benchmark (issue 5): commit-to-subscriber
# latency of SQL-originated and client-originated writes with 100
# subscribers, and fan-out throughput (events delivered per second), against
# a throwaway cluster (free ports, 127.0.0.1 only, its own JWT secret).
#
#   bash bench/live_bench.sh            # LIVE_SUBS, LIVE_RATE, LIVE_SECONDS, LIVE_BATCH
#
# Needs the extension built and installed and test/e2e/node_modules (npm ci
# in test/e2e) for the ws and msgpackr packages.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

[ -d "$REPO/test/e2e/node_modules/ws" ] || (cd "$REPO/test/e2e" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)

WORK="$(mktemp -d /tmp/topgun-livebench.XXXXXX)"
chmod 755 "$WORK"
state="$WORK/cluster"
cleanup() {
	tg_cluster_stop "$state" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

secret="bench-$(openssl rand -hex 24)"
tg_cluster_init "$state" --secret "$secret" \
	--conf-line "shared_buffers = 256MB" \
	--conf-line "max_wal_size = 4GB" \
	--conf-line "topgun.max_outbound_bytes = 67108864" \
	--conf-line "topgun.change_buffer_size = '64MB'" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"
echo "# cluster: PostgreSQL $(tg_psql "$state" -Atc 'SHOW server_version'), fsync=$(tg_psql "$state" -Atc 'SHOW fsync'), $(nproc) CPUs"
TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" TOPGUN_PG="$(tg_conninfo "$state")" TOPGUN_JWT_SECRET="$secret" \
	node "$REPO/bench/live_bench.js"
echo "# worker stats: $(tg_psql "$state" -Atc "SELECT string_agg(name || '=' || value, ' ') FROM topgun.worker_stats WHERE name IN ('events_sent','feed_events','feed_lost','query_updates','slow_clients_closed')")"
