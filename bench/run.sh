#!/usr/bin/env bash
#
# bench/run.sh — build bench/ws_load and run it against a throwaway cluster
# with the sync server (free ports, 127.0.0.1 only, its own JWT secret).
#
#   bash bench/run.sh [ws_load options for the base part...]
#
# Parts (TG_BENCH_PARTS, default "limit base matrix open500"):
#   limit    PostgreSQL's own INSERT ... ON CONFLICT rows/s in one statement
#            on this machine: the physical limit every figure is set against.
#   base     closed-loop phases with 1, 10 and 50 connections (OP_BATCH of 100
#            ops), an open-loop phase at 10,000 ops/s over 10 connections and
#            1000 idle connections for memory per connection; the arguments
#            given to run.sh go to this ws_load run.
#   matrix   connections {1,10,50} x maps {1,50,500}, batch 20, window 2: acked
#            ops/s, ack p50/p99, and the share of the server's CPU spent in the
#            Merkle commit-time flush (topgun.merkle_flush_stats() against the
#            CPU time of the server's processes from /proc/PID/stat).
#   open500  open loop at 10,000 ops/s over 500 maps (ack p99).
#   perf     (opt-in) perf record -g of the server's processes during the
#            50 x 50 cell (TG_BENCH_PERF_CELL=CONNSxMAPS picks another); the
#            summary goes to $TG_BENCH_PERF_OUT (default /tmp/topgun-perf.txt),
#            self time per symbol to $TG_BENCH_PERF_OUT.self.
#   query    (opt-in) bench/query_bench.sh, live queries on a 1M-record map
#            (issue 13), on its own throwaway cluster, before the others;
#            TG_BENCH_QUERY_ARGS goes to it (e.g. --no-index), its QB_*
#            variables apply, QB_SECONDS defaults to TG_BENCH_SECONDS.
#   cost     (opt-in) bench/cost_bench.sh, ingest with vs without a journal
#            (issue 16) and a resolver (issue 15), on its own throwaway
#            cluster, before the others; its COST_* variables apply,
#            COST_SECONDS defaults to TG_BENCH_SECONDS.
# TG_BENCH_SECONDS sets the seconds measured per phase (default 10).
# TG_BENCH_MAPS / TG_BENCH_CONNS: the matrix's map and connection counts
# (default "1 50 500" and "1 10 50"), e.g. TG_BENCH_MAPS="1 500" TG_BENCH_CONNS=50.
# TG_BENCH_CONF: extra postgresql.conf lines for the cluster (one per line),
# e.g. TG_BENCH_CONF="topgun.merkle_pend_min_nodes = 257" for an A/B run.
# TG_BENCH_SQL: SQL run once before the parts (e.g. an ALTER TABLE for an A/B run).
# Needs the extension built and installed (make && make install, or
# scripts/setup.sh; with scripts/devpg.sh's environment, into the private copy).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

PARTS="${TG_BENCH_PARTS:-limit base matrix open500}"
SECS="${TG_BENCH_SECONDS:-10}"
PERF_OUT="${TG_BENCH_PERF_OUT:-/tmp/topgun-perf.txt}"
PERF_CELL="${TG_BENCH_PERF_CELL:-50x50}"
MATRIX_MAPS="${TG_BENCH_MAPS:-1 50 500}"
MATRIX_CONNS="${TG_BENCH_CONNS:-1 10 50}"
want() { [[ " $PARTS " == *" $1 "* ]]; }

if want query; then
	# shellcheck disable=SC2086
	QB_SECONDS="${QB_SECONDS:-$SECS}" bash "$REPO/bench/query_bench.sh" ${TG_BENCH_QUERY_ARGS:-}
fi
if want cost; then
	COST_SECONDS="${COST_SECONDS:-$SECS}" bash "$REPO/bench/cost_bench.sh"
fi
rest=" $PARTS "
for p in query cost; do rest="${rest// $p / }"; done
[ -n "${rest// /}" ] || exit 0	# only parts on their own clusters asked for

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
extra_conf=()
while IFS= read -r l; do [ -n "$l" ] && extra_conf+=(--conf-line "$l"); done <<<"${TG_BENCH_CONF:-}"
tg_cluster_init "$state" --secret "$secret" \
	--conf-line "shared_buffers = 512MB" \
	--conf-line "max_wal_size = 4GB" \
	--conf-line "checkpoint_timeout = 30min" \
	--conf-line "topgun.max_connections = 2000" "${extra_conf[@]}" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"
sql() { tg_psql "$state" -Atc "$1"; }
[ -z "${TG_BENCH_SQL:-}" ] || sql "$TG_BENCH_SQL" >/dev/null
pid="$(sql "SELECT topgun.worker_pid()" 2>/dev/null || true)"
[ -n "$pid" ] || pid="$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'topgun sync server'")"

# The processes that serve the sync protocol: the worker and, once it has
# them, its executors (every background process whose type starts with topgun).
server_pids() {
	sql "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type LIKE 'topgun%'"
}
# CPU milliseconds (user + system) used so far by the given pids.
cpu_ms() {
	local total=0 p t
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t="$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")"
		total=$((total + t))
	done
	echo $((total * 1000 / $(getconf CLK_TCK)))
}
# Milliseconds spent in the Merkle flush so far and node rows it wrote (0 0 on a server without the counters).
flush_ms() {
	local v
	v="$(sql "SELECT round(flush_cpu_ms)::bigint || ' ' || nodes FROM topgun.merkle_flush_stats()" 2>/dev/null || true)"
	echo "${v:-0 0}"
}
# Rows in topgun.merkle_pending now (Merkle deltas not yet folded into node rows).
pending_rows() {
	local v
	v="$(sql "SELECT count(*) FROM topgun.merkle_pending" 2>/dev/null || true)"
	echo "${v:-0}"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "# cluster: PostgreSQL $(sql 'SHOW server_version'), synchronous_commit for the worker: on," \
	"fsync=$(sql 'SHOW fsync'), $(nproc) CPUs; worker pid $pid"

limit=""
if want limit; then
	# One statement of 200,000 rows of the ws_load value shape, inserted then
	# overwritten with newer timestamps: the overwrite is what ws_load does.
	sql "CREATE TABLE bench_plain (map text NOT NULL, key text NOT NULL, value jsonb, ts topgun.hlc NOT NULL,
	                               ttl_ms bigint, PRIMARY KEY (map, key))" >/dev/null
	ms=1
	for pass in 1 2; do
		ms="$(tg_psql "$state" -Atc "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN
		  INSERT INTO bench_plain AS t (map, key, value, ts)
		  SELECT 'm' || (g % 50), 'k' || g, jsonb_build_object('n', g, 'done', g % 2 = 0, 'text', repeat('x', 64)),
		         topgun.hlc(1700000000000 + $pass * 1000000 + g, 0, 'node-a')
		    FROM generate_series(1, 200000) g
		  ON CONFLICT (map, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms
		   WHERE t.ts OPERATOR(topgun.<) excluded.ts;
		  RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t0) * 1000); END \$\$" 2>&1 |
			sed -n 's/.*ms=\([0-9]*\).*/\1/p')"
	done
	sql "DROP TABLE bench_plain" >/dev/null
	limit=$((200000 * 1000 / (${ms:-0} > 0 ? ms : 1)))
	echo "limit        plain INSERT ... ON CONFLICT DO UPDATE of 200000 rows in one statement (overwrite pass): $limit rows/s"
fi
ratio() { [ -n "$limit" ] && awk -v a="$1" -v l="$limit" 'BEGIN { printf " (%.2fx the plain-upsert limit)", a / l }'; }

if want base; then
	"$REPO/bench/ws_load" --port "$WSPORT" --secret "$secret" --worker-pid "$pid" --duration "$SECS" "$@"
fi

# One ws_load run, with the flush's share of the server's CPU during it.
cell() {
	local pids c0 f0 n0 out c1 f1 n1 ops
	pids="$(server_pids)"
	# shellcheck disable=SC2086
	c0="$(cpu_ms $pids)"
	read -r f0 n0 <<<"$(flush_ms)"
	out="$("$REPO/bench/ws_load" --port "$WSPORT" --secret "$secret" --idle 0 --duration "$SECS" "$@" | grep -v '^#')"
	# shellcheck disable=SC2086
	c1="$(cpu_ms $pids)"
	read -r f1 n1 <<<"$(flush_ms)"
	ops="$(field 'acked_ops\/s' "$out")"
	echo "$out$(ratio "${ops:-0}") server_cpu_ms=$((c1 - c0))" \
		"flush_cpu_share=$(awk -v f=$((f1 - f0)) -v c=$((c1 - c0)) 'BEGIN { printf "%.1f%%", (c > 0 ? 100 * f / c : 0) }')" \
		"node_rows_written=$((n1 - n0)) pending_rows=$(pending_rows)"
}

if want matrix; then
	echo "# matrix: connections x maps, OP_BATCH of 20, 2 in flight per connection"
	for maps in $MATRIX_MAPS; do
		for conns in $MATRIX_CONNS; do
			perf_job=""
			if want perf && [ "${conns}x$maps" = "$PERF_CELL" ] && command -v perf >/dev/null; then
				perf record -g -o "$WORK/perf.data" -p "$(server_pids | tr ' ' ',')" -- sleep "$SECS" \
					>/dev/null 2>&1 &
				perf_job=$!
			fi
			# each cell its own maps: a map's size decides whether it keeps a stored
			# Merkle tree (topgun.merkle_small_map_entries), so no cell inherits
			# another's maps (1000 keys per connection, spread over its maps)
			cell --connections "$conns" --maps "$maps" --batch 20 --window 2 --rate 0 --map "ws-load-c$conns-m$maps"
			if [ -n "$perf_job" ]; then
				wait "$perf_job" || true
				perf report -i "$WORK/perf.data" --children --sort symbol --stdio 2>/dev/null |
					grep -E '^ +[0-9.]+%' | grep -v '\] 0x' | head -60 >"$PERF_OUT" || true
				perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
					grep -E '^ +[0-9.]+%' | grep -v '\] 0x' | head -60 >"$PERF_OUT.self" || true
				echo "# perf profile of the $conns x $maps cell (children, top 60 symbols): $PERF_OUT"
			fi
		done
	done
fi

if want open500; then
	cell --connections 0 --maps 500 --rate 10000 --rate-connections 10 --rate-batch 10 --map ws-load-open500
fi

echo "# rows written: $(sql "SELECT count(*) FROM topgun.lww WHERE map LIKE 'ws-load%'")"
echo "# table stats (updates, HOT share, dead rows): $(sql "SELECT string_agg(relname || ' upd=' || n_tup_upd || ' hot=' || CASE WHEN n_tup_upd > 0 THEN round(100.0 * n_tup_hot_upd / n_tup_upd) ELSE 0 END || '% dead=' || n_dead_tup || ' autovacuums=' || autovacuum_count, '; ' ORDER BY relname) FROM pg_stat_user_tables WHERE schemaname = 'topgun' AND relname IN ('lww', 'merkle_nodes')")"
echo "# worker stats: $(sql "SELECT string_agg(name || '=' || value, ' ') FROM topgun.worker_stats" 2>/dev/null || echo n/a)"
echo "# merkle flush: $(sql "SELECT format('flushes=%s nodes=%s or_keys=%s flush_cpu_ms=%s', flushes, nodes, or_keys, round(flush_cpu_ms)) FROM topgun.merkle_flush_stats()" 2>/dev/null || echo n/a)"
