#!/usr/bin/env bash
# Tombstone GC benchmark (docs/gc.md).  Prints:
#   - time to collect N LWW tombstones (among N/5 live rows) with topgun.gc_run(),
#     called repeatedly (one transaction per call) until the pass is done;
#   - concurrent ingest (pgbench, C clients, single-row lww_put on another map):
#     tx/s before GC and while GC runs;
#   - that the Merkle tree equals a rebuild afterwards.
# Starts its own throwaway cluster (bench/lib_cluster.sh).
# Usage: bench/gc_bench.sh [N [C [MAX_ROWS]]]   (defaults 1000000 4 100000)
set -euo pipefail
N=${1:-1000000}
C=${2:-4}
MAXROWS=${3:-100000}
. "$(dirname "$0")/lib_cluster.sh"
now_ms() { date +%s%3N; }

t0=$(now_ms)
$PSQL -c "INSERT INTO topgun.lww (map, key, value, ts)
            SELECT 'gcb', 'dead-' || g, NULL, topgun.hlc(1600000000000 + g, 0, 'bench') FROM generate_series(1, $N) g"
$PSQL -c "INSERT INTO topgun.lww (map, key, value, ts)
            SELECT 'gcb', 'live-' || g, to_jsonb(g), topgun.hlc(1600000000000 + g, 0, 'bench') FROM generate_series(1, $N / 5) g"
$PSQL -c "VACUUM ANALYZE topgun.lww"
echo "== loaded $N old tombstones + $((N / 5)) live rows in $(( ($(now_ms) - t0) / 1000 )) s;" \
     "lww heap $($PSQL -c "SELECT pg_size_pretty(pg_relation_size('topgun.lww'))")"

cat > "$DIR/ingest.sql" <<'SQL'
\set k random(1, 100000)
SELECT topgun.lww_put('ingest', 'k' || :k, to_jsonb(:k), topgun.hlc_now());
SQL
chmod 644 "$DIR/ingest.sql"
$PGBENCH -c "$C" -j "$C" -T 15 -f "$DIR/ingest.sql" postgres > "$DIR/alone.out" 2>&1 || { cat "$DIR/alone.out"; exit 1; }
base=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$DIR/alone.out")
echo "== ingest alone: $C clients, single-row lww_put: $base tx/s"

$PGBENCH -c "$C" -j "$C" -T 3600 -P 1 -f "$DIR/ingest.sql" postgres > "$DIR/during.out" 2>&1 &
BG=$!
sleep 3   # let the writers reach steady state before timing
t_start=$(now_ms)
calls=0
while :; do
  r=$($PSQL -c "SELECT pass_done FROM topgun.gc_run(max_rows => $MAXROWS)")
  calls=$((calls + 1))
  [ "$r" = t ] && break
done
t_end=$(now_ms)
kill -TERM "$BG" 2>/dev/null || true
wait "$BG" 2>/dev/null || true
BG=""
gc_ms=$((t_end - t_start))
# pgbench -P lines: "progress: 12.0 s, 1234.5 tps, ..." (seconds since its start, 3 s before t_start)
during=$(python3 - "$DIR/during.out" "$gc_ms" <<'PY'
import re, sys
gc_s = int(sys.argv[2]) / 1000.0
vals = [float(m.group(2)) for m in (re.match(r'progress: ([0-9.]+) s, ([0-9.]+) tps', l) for l in open(sys.argv[1]))
        if m and 3.0 < float(m.group(1)) <= 3.0 + gc_s]
print(f"{sum(vals) / len(vals):.0f}" if vals else "n/a")
PY
)
left=$($PSQL -c "SELECT count(*) FROM topgun.lww WHERE map = 'gcb' AND value IS NULL")
info=$($PSQL -c "SELECT done_lww FROM topgun.gc_state")
echo "== GC of $N tombstones: $gc_ms ms in $calls gc_run() calls (max_rows $MAXROWS);" \
     "$(python3 -c "print(f'{$N / ($gc_ms / 1000.0):.0f}')") tombstones/s; collected $info, left $left"
echo "== ingest during GC: $during tx/s (alone: $base tx/s)"
before=$($PSQL -c "SELECT topgun.merkle_root('gcb')")
$PSQL -c "SELECT topgun.merkle_rebuild('gcb')" >/dev/null
after=$($PSQL -c "SELECT topgun.merkle_root('gcb')")
echo "== Merkle root after GC $before, after rebuild $after: $([ "$before" = "$after" ] && echo equal || echo DIFFERENT)"
