#!/usr/bin/env bash
# Tombstone GC benchmark (docs/gc.md).  Prints:
#   - time to collect N LWW tombstones (among N/5 live rows) with topgun.gc_run(),
#     called repeatedly (one transaction per call) until the pass is done;
#   - concurrent ingest (pgbench, C clients, single-row lww_put on another map):
#     tx/s before GC and while GC runs;
#   - that the Merkle tree equals a rebuild afterwards.
# Starts its own throwaway cluster (as user postgres) from $TG_PG_BIN, or the
# system PostgreSQL when unset (see scripts/devpg.sh for a private install).
# Usage: bench/gc_bench.sh [N [C [MAX_ROWS]]]   (defaults 1000000 4 100000)
set -euo pipefail
N=${1:-1000000}
C=${2:-4}
MAXROWS=${3:-100000}
PGBIN=${TG_PG_BIN:-$(pg_config --bindir)}
DIR=$(mktemp -d /tmp/topgun-gcbench.XXXXXX)
chown postgres "$DIR"
chmod 755 "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { su postgres -s /bin/bash -c "$*"; }
BG=""
cleanup() {
  [ -n "$BG" ] && kill "$BG" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl -D $DIR/data -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb -D $DIR/data -U postgres" >/dev/null
cat >> "$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'topgun'
topgun.port = 0
shared_buffers = '512MB'
max_wal_size = '8GB'
checkpoint_timeout = '30min'
CONF
as_pg "$PGBIN/pg_ctl -D $DIR/data -l $DIR/log -w start" >/dev/null
PSQL="$PGBIN/psql -X -q -At -h $DIR -p $PORT -U postgres -d postgres -v ON_ERROR_STOP=1"
PGBENCH="$PGBIN/pgbench -h $DIR -p $PORT -U postgres -n"
$PSQL -c "CREATE EXTENSION topgun"
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
base=$($PGBENCH -c "$C" -j "$C" -T 15 -f "$DIR/ingest.sql" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
echo "== ingest alone: $C clients, single-row lww_put: $base tx/s"

$PGBENCH -c "$C" -j "$C" -T 3600 -P 1 -f "$DIR/ingest.sql" > "$DIR/during.out" 2>&1 &
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
kill -INT "$BG" 2>/dev/null || true
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
$PSQL -c "SELECT topgun.merkle_rebuild('gcb')"
after=$($PSQL -c "SELECT topgun.merkle_root('gcb')")
echo "== Merkle root after GC $before, after rebuild $after: $([ "$before" = "$after" ] && echo equal || echo DIFFERENT)"
