#!/usr/bin/env bash
#
# bench/cost_bench.sh — what a journal (issue 16) and a resolver (issue 15)
# cost on the sync server's ingest, measured with bench/ws_load against a
# throwaway cluster (scripts/lib.sh, as bench/run.sh does).
#
#   bash bench/cost_bench.sh [journal] [resolver]     (default: both)
#
# For each feature and each map count in COST_MAPS, the same ws_load closed
# loop (COST_CONNS connections, OP_BATCH of COST_BATCH, COST_WINDOW in flight,
# COST_SECONDS measured) runs on the same maps alternately with the feature
# on and off, COST_PAIRS pairs (with, without, with, without, …), so drift on
# a shared machine hits both sides alike; the medians are compared:
#   journal   topgun.journal_enable('ws-load*') / journal_disable
#             target: journaled ingest >= 70 % of the plain one (cost <= 30 %)
#   resolver  topgun.register_resolver(COST_RESOLVER, 'ws-load*') / unregister
#             target: ingest with the resolver >= 80 % (cost <= 20 %)
# COST_RESOLVER (builtin:owner_only) must accept ws_load's values
# {n, done, text}: owner_only reads the stored record and accepts it (no
# ownerId), so the chain runs for every op and rejects none; a run with
# rejected ops, errors or dropped connections fails the bench.
# Each line is followed by the median server CPU per applied op (all topgun%
# processes, /proc/PID/stat, over worker_stats ops_applied): the same cost
# without the noise of other jobs on the machine; the verdict is on ops/s.
# A warm-up run per map count first writes every key (later runs overwrite).
# When a target is not met and perf is installed (COST_PERF=auto; 1 always,
# 0 never), one more "with" run is recorded with perf record -g on the
# server's processes; the top symbols go to $COST_PERF_OUT-<feature>.txt
# (default /tmp/topgun-cost-perf-<feature>.txt) and are printed.
# Needs the extension built and installed (make && make install; with
# scripts/devpg.sh's environment, into the private copy).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"

CONNS="${COST_CONNS:-10}"
BATCH="${COST_BATCH:-100}"
WINDOW="${COST_WINDOW:-2}"
SECS="${COST_SECONDS:-10}"
PAIRS="${COST_PAIRS:-3}"
MAPS_LIST="${COST_MAPS:-1 10}"
RESOLVER="${COST_RESOLVER:-builtin:owner_only}"
PERF="${COST_PERF:-auto}"
PERF_OUT="${COST_PERF_OUT:-/tmp/topgun-cost-perf}"
FEATURES="${*:-journal resolver}"

cc -O2 -Wall -Wextra -Werror -o "$REPO/bench/ws_load" "$REPO/bench/ws_load.c" -lcrypto -lm

WORK="$(mktemp -d /tmp/topgun-costbench.XXXXXX)"
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
	--conf-line "checkpoint_timeout = 30min" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"
sql() { tg_psql "$state" -Atc "$1"; }
server_pids() {
	sql "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type LIKE 'topgun%'"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "# cluster: PostgreSQL $(sql 'SHOW server_version'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg);" \
	"ws_load --connections $CONNS --batch $BATCH --window $WINDOW --duration $SECS, $PAIRS pairs per cell"

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
applied() { sql "SELECT value FROM topgun.worker_stats WHERE name = 'ops_applied'"; }
# One measured ws_load run; prints its acked ops/s, fails on any rejected op.
# The server's CPU per applied op (warm-up included, on both sides alike) goes
# to $WORK/cpu: unlike ops/s it does not move with what else the machine runs.
load() {
	local out ops pids c0 a0
	pids="$(server_pids)"
	# shellcheck disable=SC2086
	c0="$(cpu_ms $pids)"
	a0="$(applied)"
	out="$("$REPO/bench/ws_load" --port "$WSPORT" --secret "$secret" --idle 0 --rate 0 \
		--connections "$CONNS" --batch "$BATCH" --window "$WINDOW" --duration "$SECS" --maps "$1" | grep -v '^#')"
	echo "$out" >>"$WORK/runs.log"
	# shellcheck disable=SC2086
	awk -v c=$(($(cpu_ms $pids) - c0)) -v a=$(($(applied) - a0)) 'BEGIN { printf "%.1f\n", (a > 0 ? 1000 * c / a : 0) }' >"$WORK/cpu"
	ops="$(field 'acked_ops\/s' "$out")"
	for f in rejected_ops errors dropped_connections; do
		[ "$(field "$f" "$out")" = 0 ] || tg_die "$f in: $out"
	done
	echo "${ops:-0}"
}

# Turn a feature on or off for every ws-load map.  Both settings tables send a
# relcache invalidation when they change (topgun._invalidate_cache), so the
# session executor's next transaction — the next group commit — sees it.
feature() {
	case "$1 $2" in
	"journal on") sql "SELECT topgun.journal_enable('ws-load*')" >/dev/null ;;
	"journal off") sql "SELECT topgun.journal_disable('ws-load*')" >/dev/null ;;
	"resolver on") sql "SELECT topgun.register_resolver('$RESOLVER', 'ws-load*')" >/dev/null ;;
	"resolver off") sql "SELECT topgun.unregister_resolver('$RESOLVER', 'ws-load*')" >/dev/null ;;
	*) tg_die "unknown feature $1" ;;
	esac
}

# The journal's last sequence number: a journaled run must move it.
events() { sql "SELECT coalesce(max(seq), 0) FROM topgun.journal_events"; }
median() { tr ' ' '\n' <<<"$*" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

declare -A min_ratio=([journal]=0.70 [resolver]=0.80)
declare -A label=([journal]="journaled map (issue 16, cost <= 30 %)"
	[resolver]="resolver $RESOLVER (issue 15, cost <= 20 %)")
summary=()
warmed=""
for feat in $FEATURES; do
	[ -n "${min_ratio[$feat]:-}" ] || tg_die "unknown feature $feat (journal, resolver)"
	feature "$feat" off 2>/dev/null || true
	failed=""
	echo "# $feat: ${label[$feat]}"
	for maps in $MAPS_LIST; do
		if [[ " $warmed " != *" $maps "* ]]; then
			load "$maps" >/dev/null	# every key written once: the measured runs overwrite
			warmed="$warmed $maps"
		fi
		with=(); without=(); cwith=(); cwithout=()
		for _ in $(seq "$PAIRS"); do
			feature "$feat" on
			s0="$(events)"
			with+=("$(load "$maps")")
			cwith+=("$(cat "$WORK/cpu")")
			s1="$(events)"
			[ "$feat" != journal ] || [ "$s1" -gt "$s0" ] || tg_die "journal on but no events written"
			feature "$feat" off
			without+=("$(load "$maps")")
			cwithout+=("$(cat "$WORK/cpu")")
		done
		mw="$(median "${with[@]}")"; mo="$(median "${without[@]}")"
		line="$(awk -v w="$mw" -v o="$mo" -v t="${min_ratio[$feat]}" 'BEGIN {
			r = o > 0 ? w / o : 0
			printf "ops/s without %.0f, with %.0f, ratio %.3f (cost %.1f %%), target ratio >= %.2f: %s",
				o, w, r, 100 * (1 - r), t, (r >= t ? "met" : "NOT MET") }')"
		cw="$(median "${cwith[@]}")"; co="$(median "${cwithout[@]}")"
		cline="$(awk -v w="$cw" -v o="$co" -v t="${min_ratio[$feat]}" 'BEGIN {
			r = w > 0 ? o / w : 0
			printf "server CPU us/op without %.1f, with %.1f, ratio without/with %.3f: %s",
				o, w, r, (r >= t ? "met" : "NOT MET") }')"
		echo "$feat maps=$maps  $line   runs with=[${with[*]}] without=[${without[*]}]"
		echo "$feat maps=$maps  $cline   runs with=[${cwith[*]}] without=[${cwithout[*]}]"
		summary+=("$feat maps=$maps: $line" "$feat maps=$maps: $cline")
		[[ "$line" != *"NOT MET"* ]] || failed="$maps"
	done
	if [ "$PERF" = 1 ] || { [ "$PERF" = auto ] && [ -n "$failed" ]; }; then
		if command -v perf >/dev/null; then
			maps="${failed:-${MAPS_LIST##* }}"
			feature "$feat" on
			# recorded for exactly the run: stopped (SIGINT) when the load ends
			perf record -g -o "$WORK/perf.data" -p "$(server_pids | tr ' ' ',')" >/dev/null 2>&1 &
			perf_job=$!
			ops="$(load "$maps")"
			kill -INT "$perf_job" 2>/dev/null || true
			wait "$perf_job" || true
			feature "$feat" off
			perf report -i "$WORK/perf.data" --children --sort symbol --stdio 2>/dev/null |
				grep -E '^ +[0-9.]+%' | grep -vE '\] (0x|0{16} )' | sed 's/ *-  *- *$//' | head -60 >"$PERF_OUT-$feat.txt" || true
			{
				echo "# self time, top 40"
				perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
					grep -E '^ +[0-9.]+%' | grep -vE '\] (0x|0{16} )' | sed 's/ *-  *- *$//' | head -40
			} >>"$PERF_OUT-$feat.txt" || true
			echo "# perf -g of the server during a run with the $feat on (maps=$maps, $ops ops/s under perf)," \
				"children % / self %, top 30 inclusive, then top 15 self (all in $PERF_OUT-$feat.txt):"
			head -30 "$PERF_OUT-$feat.txt"
			grep -A15 '^# self time' "$PERF_OUT-$feat.txt" | tail -15
		else
			echo "# perf not installed: no profile of the $feat run"
		fi
	fi
done
[ -z "${FEATURES##*journal*}" ] && echo "# journal events written: $(sql 'SELECT count(*) FROM topgun.journal_events')"
echo "# worker stats: $(sql "SELECT string_agg(name || '=' || value, ' ') FROM topgun.worker_stats" 2>/dev/null || echo n/a)"
echo "# summary"
for s in "${summary[@]}"; do
	echo "$s"
done
