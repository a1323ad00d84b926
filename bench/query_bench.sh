#!/usr/bin/env bash
#
# bench/query_bench.sh — issue 13 "Live queries on big maps" on a throwaway
# cluster: QUERY_SUB latency of filtered / sorted / limited / cursor pages on
# a map of QB_ROWS records, OP_BATCH ack latency under many limited live
# subscriptions, fan-out cost per write with 10 vs 10,000 subscriptions, and
# memory per idle subscription.  Prints numbers and a target summary; fails
# loudly on a server ERROR frame or an unexpected disconnect.
#
#   bash bench/query_bench.sh               # with indexes (topgun.create_index); line 1c
#                                           # adds the two-field index big (cat, n)
#   bash bench/query_bench.sh --no-index    # or QB_INDEX=0: the scan path
#
# Environment: QB_ROWS (1000000), QB_REPS (20), QB_SECONDS (10), QB_RATE
# (200), QB_CONNS (10), QB_LIVE_SUBS (1000; 100 without indexes), QB_OWNERS
# (10000), QB_FANOUT_WRITES (2000), QB_OR_VALUES (1000000: values of the OR
# map 'bigor', two per key; 0 skips phase 8).  Needs the extension built and installed
# (with scripts/devpg.sh's environment: TG_PG_BIN) and test/e2e/node_modules.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

INDEX="${QB_INDEX:-1}"
for a in "$@"; do
	case "$a" in
		--no-index) INDEX=0 ;;
		*) tg_die "query_bench.sh: unknown option $a (only --no-index)" ;;
	esac
done
ROWS="${QB_ROWS:-1000000}"
OWNERS="${QB_OWNERS:-10000}"
OR_VALUES="${QB_OR_VALUES:-1000000}"

[ -d "$REPO/test/e2e/node_modules/ws" ] || (cd "$REPO/test/e2e" && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

WORK="$(mktemp -d /tmp/topgun-querybench.XXXXXX)"
chmod 755 "$WORK"
state="$WORK/cluster"
cleanup() {
	tg_cluster_stop "$state" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# max_query_results: the unlimited {where: {cat: 7}} of phase 4 tracks
# QB_ROWS / 100 keys; max_subscriptions_per_connection: phases 6 and 7 put
# 1,000 subscriptions on each of 10 connections (the default allows 1,000).
secret="bench-$(openssl rand -hex 24)"
tg_cluster_init "$state" --secret "$secret" \
	--conf-line "shared_buffers = 512MB" \
	--conf-line "max_wal_size = 8GB" \
	--conf-line "checkpoint_timeout = 30min" \
	--conf-line "topgun.max_outbound_bytes = 268435456" \
	--conf-line "topgun.change_buffer_size = '64MB'" \
	--conf-line "topgun.max_query_results = $((ROWS / 100 > 10000 ? ROWS / 100 + 1000 : 11000))" \
	--conf-line "topgun.max_subscriptions_per_connection = 20000" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"
sql() { tg_psql "$state" -qAtc "$1"; }
echo "# cluster: PostgreSQL $(sql 'SHOW server_version'), $(nproc) CPUs, executors: $(sql 'SELECT count(*) FROM topgun.executors'), max_query_results=$(sql 'SHOW topgun.max_query_results')"

# 'big': QB_ROWS records {n, cat: n % 100, title}, 100,000 per statement (as
# bench/exec_bench.sh); 'owned': QB_OWNERS records {owner: 'u' || i, v: 0}.
t0=$(date +%s)
for ((s = 0; s < ROWS; s += 100000)); do
	e=$((s + 100000 > ROWS ? ROWS : s + 100000))
	sql "SELECT count(*) FROM topgun.lww_put_many(
	  array_fill('big'::text, ARRAY[$e - $s]),
	  (SELECT array_agg('k' || n ORDER BY n) FROM generate_series($s, $e - 1) n),
	  (SELECT array_agg(jsonb_build_object('n', n, 'cat', n % 100, 'title', 'title ' || n) ORDER BY n) FROM generate_series($s, $e - 1) n),
	  (SELECT array_agg(topgun.hlc(1700000000000 + n, 0, 'load') ORDER BY n) FROM generate_series($s, $e - 1) n),
	  array_fill(NULL::bigint, ARRAY[$e - $s]))" >/dev/null
done
sql "SELECT count(*) FROM topgun.lww_put_many(
  array_fill('owned'::text, ARRAY[$OWNERS]),
  (SELECT array_agg('o' || i ORDER BY i) FROM generate_series(0, $OWNERS - 1) i),
  (SELECT array_agg(jsonb_build_object('owner', 'u' || i, 'v', 0) ORDER BY i) FROM generate_series(0, $OWNERS - 1) i),
  (SELECT array_agg(topgun.hlc(1700000000000 + i, 0, 'load') ORDER BY i) FROM generate_series(0, $OWNERS - 1) i),
  array_fill(NULL::bigint, ARRAY[$OWNERS]))" >/dev/null
# 'bigor': OR_VALUES values {n, cat: n % 100}, key k<n / 2> (two values per key)
for ((s = 0; s < OR_VALUES; s += 100000)); do
	e=$((s + 100000 > OR_VALUES ? OR_VALUES : s + 100000))
	sql "SELECT count(topgun.or_apply('bigor', 'k' || (n / 2), jsonb_build_object('n', n, 'cat', n % 100),
	  'load:' || n, topgun.hlc(1700000000000 + n, 0, 'load'))) FROM generate_series($s, $e - 1) n" >/dev/null
done
sql "VACUUM ANALYZE topgun.lww" >/dev/null
sql "VACUUM ANALYZE topgun.ormap" >/dev/null
sql "VACUUM ANALYZE topgun.or_tags" >/dev/null
echo "# loaded $ROWS records into 'big', $OWNERS into 'owned' and $OR_VALUES OR values into 'bigor' in $(($(date +%s) - t0)) s"

indexed=0
if [ "$INDEX" = 0 ]; then
	echo "# --no-index: measuring the scan path (no topgun.create_index)"
elif [ -z "$(sql "SELECT to_regprocedure('topgun.create_index(text,text,text)')")" ]; then
	echo "create_index not available: measuring without indexes"
else
	t0=$(date +%s%N)
	sql "SELECT topgun.create_index('big', 'cat')" >/dev/null
	sql "SELECT topgun.create_index('big', 'n')" >/dev/null
	sql "SELECT topgun.create_index('owned', 'owner')" >/dev/null
	if [ "$OR_VALUES" -gt 0 ]; then
		sql "SELECT topgun.create_index('bigor', 'cat'), topgun.create_index('bigor', 'n'), topgun.create_index('bigor', ARRAY['cat', 'n'])" >/dev/null
	fi
	# The builds run in the background: poll the view until every index of
	# the two maps is ready (bounded: 10 minutes).
	for ((i = 0; ; i++)); do
		[ "$(sql "SELECT coalesce(bool_and(state = 'ready'), false) FROM topgun.indexes WHERE map IN ('big', 'owned', 'bigor')")" = t ] && break
		failed="$(sql "SELECT string_agg(map || '.' || field || '=' || state, ' ') FROM topgun.indexes WHERE map IN ('big', 'owned') AND state IN ('failed', 'error', 'invalid')")"
		[ -z "$failed" ] || tg_die "index build failed: $failed"
		[ "$i" -lt 6000 ] || tg_die "indexes not ready after 10 minutes: $(sql "SELECT string_agg(map || '.' || field || '=' || state, ' ') FROM topgun.indexes")"
		sleep 0.1
	done
	echo "index-build  big.cat, big.n, owned.owner ready in $((($(date +%s%N) - t0) / 1000000)) ms" \
		"($(sql "SELECT string_agg(map || '.' || field || ' ' || kind, ', ' ORDER BY map, field) FROM topgun.indexes WHERE map IN ('big', 'owned')"))"
	indexed=1
fi

# the load's WAL is flushed before anything is timed (no checkpoint in the phases)
sql "CHECKPOINT" >/dev/null
start=$(date +%s)
TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" TOPGUN_JWT_SECRET="$secret" TOPGUN_PG="$(tg_conninfo "$state")" \
	TOPGUN_PSQL="$TG_PG_BIN/psql" QB_ROWS="$ROWS" QB_OWNERS="$OWNERS" QB_OR_VALUES="$OR_VALUES" QB_INDEXED="$indexed" \
	node "$REPO/bench/query_bench.js"
echo "# phases took $(($(date +%s) - start)) s"
echo "# executors: $(sql "SELECT string_agg(role || id || ' ' || state || ' requests=' || requests || ' errors=' || errors || ' restarts=' || restarts, '; ' ORDER BY id) FROM topgun.executors")"
echo "# worker stats: $(sql "SELECT string_agg(name || '=' || value, ' ') FROM topgun.worker_stats WHERE name IN ('query_updates','events_sent','limits_reached','slow_clients_closed','feed_lost')" 2>/dev/null || echo n/a)"
