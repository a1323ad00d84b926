# bench/lib_ws.sh — sourced by the over-the-wire benches (lock_bench.sh,
# rate_bench.sh, processor_bench.sh): the e2e node modules, and a throwaway
# cluster with the sync server, removed on exit.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib_ws.sh"
#   bench_ws_cluster NAME [--conf-line L ...]   # sets WORK, state, secret, WSPORT
#   bench_ws_env node "$REPO/bench/x.js"        # runs it with TOPGUN_WS_URL/_PG/_JWT_SECRET/_PSQL
#
# Uses the installed extension, or scripts/devpg.sh's copy (TG_PG_BIN).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

[ -d "$REPO/test/e2e/node_modules/ws" ] || (cd "$REPO/test/e2e" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)

bench_ws_cleanup() {
	tg_cluster_stop "$state" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}

bench_ws_cluster() {
	local name="$1"
	shift
	WORK="$(mktemp -d "/tmp/topgun-$name.XXXXXX")"
	chmod 755 "$WORK"
	state="$WORK/cluster"
	trap bench_ws_cleanup EXIT
	secret="bench-$(openssl rand -hex 24)"
	tg_cluster_init "$state" --secret "$secret" "$@" >/dev/null
	tg_cluster_start "$state"
	tg_create_extension "$state"
	tg_wait_serving "$state" 30 || tg_die "sync server not serving"
	tg_state_load "$state"
	echo "# cluster: PostgreSQL $(tg_psql "$state" -Atc 'SHOW server_version'), fsync=$(tg_psql "$state" -Atc 'SHOW fsync'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), executors: $(tg_psql "$state" -Atc 'SELECT count(*) FROM topgun.executors')"
}

bench_ws_env() {
	TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" TOPGUN_PG="$(tg_conninfo "$state")" TOPGUN_JWT_SECRET="$secret" \
		TOPGUN_PSQL="$TG_PG_BIN/psql" PATH="$TG_PG_BIN:$PATH" "$@"
}
