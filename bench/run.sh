#!/usr/bin/env bash
#
# bench/run.sh — build bench/ws_load and run it against a throwaway cluster
# with the sync worker (free ports, 127.0.0.1 only, its own JWT secret).
#
#   bash bench/run.sh [ws_load options...]
#
# Defaults: closed-loop phases with 1, 10 and 50 connections (OP_BATCH of 100
# ops, 10 s each), an open-loop phase at 10,000 ops/s over 10 connections,
# and 1000 idle connections for memory per connection.  Needs the extension
# built and installed (make && make install, or scripts/setup.sh).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

cc -O2 -Wall -Wextra -Werror -o "$REPO/bench/ws_load" "$REPO/bench/ws_load.c" -lcrypto -lm

WORK="$(mktemp -d /tmp/topgun-wsbench.XXXXXX)"
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
	--conf-line "max_wal_size = 4GB" \
	--conf-line "checkpoint_timeout = 30min" \
	--conf-line "topgun.max_connections = 2000" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"
pid="$(tg_psql "$state" -Atc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'topgun sync server'")"

echo "# cluster: PostgreSQL $(tg_psql "$state" -Atc 'SHOW server_version'), synchronous_commit for the worker: on," \
	"fsync=$(tg_psql "$state" -Atc 'SHOW fsync'), $(nproc) CPUs; worker pid $pid"
"$REPO/bench/ws_load" --port "$WSPORT" --secret "$secret" --worker-pid "$pid" "$@"
echo "# rows written: $(tg_psql "$state" -Atc "SELECT count(*) FROM topgun.lww WHERE map = 'ws-load'")"
echo "# table stats (updates, HOT share, dead rows): $(tg_psql "$state" -Atc "SELECT string_agg(relname || ' upd=' || n_tup_upd || ' hot=' || CASE WHEN n_tup_upd > 0 THEN round(100.0 * n_tup_hot_upd / n_tup_upd) ELSE 0 END || '% dead=' || n_dead_tup || ' autovacuums=' || autovacuum_count, '; ' ORDER BY relname) FROM pg_stat_user_tables WHERE schemaname = 'topgun' AND relname IN ('lww', 'merkle_nodes')")"
echo "# worker stats: $(tg_psql "$state" -Atc "SELECT string_agg(name || '=' || value, ' ') FROM topgun.worker_stats" 2>/dev/null || echo n/a)"
