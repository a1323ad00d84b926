#!/usr/bin/env bash
#
# bench/soak.sh — the long soak/abuse run (bench/soak.js) against a throwaway
# cluster: free ports, 127.0.0.1 only, its own JWT secret, the installed
# topgun.so (make && make install first).
#
#   bash bench/soak.sh                      # 300 s, 1000 held connections (documented long run)
#   bash bench/soak.sh --seconds 60 --connections 1500
#
# Cluster limits: topgun.max_connections = 2000, max_outbound_bytes = 1MB,
# max_message_bytes = 1MB, invalid_message_budget = 20 (the e2e settings), so
# the memory budget that bench/soak.js checks is meaningful.  Extra arguments
# go to bench/soak.js; the JSON report is written to $SOAK_JSON (default /tmp/topgun-soak-last.json).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
if [ ! -d "$REPO/test/e2e/node_modules/ws" ]; then
	(cd "$REPO/test/e2e" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
fi

WORK="$(mktemp -d /tmp/topgun-soak.XXXXXX)"
chmod 755 "$WORK"
state="$WORK/cluster"
cleanup() {
	tg_cluster_stop "$state" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

secret="soak-$(openssl rand -hex 24)"
tg_cluster_init "$state" --secret "$secret" \
	--conf-line "topgun.max_connections = 2000" \
	--conf-line "topgun.max_message_bytes = 1048576" \
	--conf-line "topgun.max_outbound_bytes = 1048576" \
	--conf-line "topgun.invalid_message_budget = 20" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"

args=("$@")
[ "${#args[@]}" -gt 0 ] || args=(--seconds 300 --connections 1000)
TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" TOPGUN_JWT_SECRET="$secret" TOPGUN_PG="$(tg_conninfo "$state")" \
	node "$REPO/bench/soak.js" --json "${SOAK_JSON:-/tmp/topgun-soak-last.json}" "${args[@]}"
