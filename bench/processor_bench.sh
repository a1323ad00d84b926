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
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

[ -d "$REPO/test/e2e/node_modules/ws" ] || (cd "$REPO/test/e2e" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
WORK="$(mktemp -d /tmp/topgun-pbench.XXXXXX)"
chmod 755 "$WORK"
state="$WORK/cluster"
cleanup() {
	tg_cluster_stop "$state" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

secret="bench-$(openssl rand -hex 24)"
tg_cluster_init "$state" --secret "$secret" ${PB_CONF:+--conf-line "$PB_CONF"} >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"
echo "# cluster: PostgreSQL $(tg_psql "$state" -Atc 'SHOW server_version'), fsync=$(tg_psql "$state" -Atc 'SHOW fsync'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), executors: $(tg_psql "$state" -Atc 'SELECT count(*) FROM topgun.executors')"
TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" TOPGUN_PG="$(tg_conninfo "$state")" TOPGUN_JWT_SECRET="$secret" \
	PATH="$(tg_pg_bindir):$PATH" node "$REPO/bench/processor_bench.js"
