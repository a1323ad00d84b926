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
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

[ -d "$REPO/test/e2e/node_modules/ws" ] || (cd "$REPO/test/e2e" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
WORK="$(mktemp -d /tmp/topgun-lockbench.XXXXXX)"
chmod 755 "$WORK"
state="$WORK/cluster"
cleanup() {
	tg_cluster_stop "$state" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

secret="bench-$(openssl rand -hex 24)"
tg_cluster_init "$state" --secret "$secret" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"
echo "# cluster: PostgreSQL $(tg_psql "$state" -Atc 'SHOW server_version'), fsync=$(tg_psql "$state" -Atc 'SHOW fsync'), $(nproc) CPUs, executors: $(tg_psql "$state" -Atc 'SELECT count(*) FROM topgun.executors')"
TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" TOPGUN_PG="$(tg_conninfo "$state")" TOPGUN_JWT_SECRET="$secret" \
	node "$REPO/bench/lock_bench.js"
echo "# lock tokens reserved: $(tg_psql "$state" -Atc "SELECT string_agg(name || ' hi=' || hi, ', ') FROM topgun.lock_tokens")"
