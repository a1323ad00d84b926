#!/usr/bin/env bash
#
# bench/exec_bench.sh — issue 11 targets on a throwaway cluster: while one
# client runs unindexed full-scan QUERY_SUBs over a 1M-record map, other
# connections' PING and OP_BATCH-ack latency; two large QUERY_SUBs at once
# vs one after the other.  Prints numbers, asserts nothing.
#
#   bash bench/exec_bench.sh            # EXEC_ROWS, EXEC_OTHERS, EXEC_SECONDS
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

[ -d "$REPO/test/e2e/node_modules/ws" ] || (cd "$REPO/test/e2e" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
ROWS="${EXEC_ROWS:-1000000}"
WORK="$(mktemp -d /tmp/topgun-execbench.XXXXXX)"
chmod 755 "$WORK"
state="$WORK/cluster"
cleanup() {
	tg_cluster_stop "$state" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

secret="bench-$(openssl rand -hex 24)"
tg_cluster_init "$state" --secret "$secret" \
	--conf-line "shared_buffers = 512MB" \
	--conf-line "max_wal_size = 8GB" \
	--conf-line "topgun.max_outbound_bytes = 268435456" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"
echo "# cluster: PostgreSQL $(tg_psql "$state" -Atc 'SHOW server_version'), $(nproc) CPUs, executors: $(tg_psql "$state" -Atc 'SELECT count(*) FROM topgun.executors')"
t0=$(date +%s)
for ((s = 0; s < ROWS; s += 100000)); do
	e=$((s + 100000 > ROWS ? ROWS : s + 100000))
	tg_psql "$state" -qAtc "SELECT count(*) FROM topgun.lww_put_many(
	  array_fill('big'::text, ARRAY[$e - $s]),
	  (SELECT array_agg('k' || n ORDER BY n) FROM generate_series($s, $e - 1) n),
	  (SELECT array_agg(jsonb_build_object('n', n, 'cat', n % 100, 'title', 'title ' || n) ORDER BY n) FROM generate_series($s, $e - 1) n),
	  (SELECT array_agg(topgun.hlc(1700000000000 + n, 0, 'load') ORDER BY n) FROM generate_series($s, $e - 1) n),
	  array_fill(NULL::bigint, ARRAY[$e - $s]))" >/dev/null
done
tg_psql "$state" -qAtc "VACUUM ANALYZE topgun.lww" >/dev/null
echo "# loaded $ROWS records in $(($(date +%s) - t0)) s"
TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" TOPGUN_JWT_SECRET="$secret" EXEC_ROWS="$ROWS" \
	node "$REPO/bench/exec_bench.js"
echo "# executors: $(tg_psql "$state" -Atc "SELECT string_agg(role || id || ' ' || state || ' requests=' || requests || ' errors=' || errors, '; ' ORDER BY id) FROM topgun.executors")"
