#!/usr/bin/env bash
# Journal ingest cost (docs/journal.md).  pgbench writers on a map that is
# journaled and on one that is not, alternating R rounds of T seconds each:
#   - single-row transactions: topgun.lww_put (what SQL clients do);
#   - batches: topgun.lww_put_many of B ops per transaction (what the sync
#     server does with a client's OP_BATCH);
# prints the median tx/s of both and the cost of journaling in percent.
# Starts its own throwaway cluster (as user postgres) from $TG_PG_BIN, or the
# system PostgreSQL when unset.
# Usage: bench/journal_bench.sh [C [T [R [B]]]]   (defaults 4 10 3 100)
set -euo pipefail
C=${1:-4}
T=${2:-10}
R=${3:-3}
B=${4:-100}
PGBIN=${TG_PG_BIN:-$(pg_config --bindir)}
DIR=$(mktemp -d /tmp/topgun-jbench.XXXXXX)
chown postgres "$DIR"
chmod 755 "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { su postgres -s /bin/bash -c "$*"; }
cleanup() { as_pg "$PGBIN/pg_ctl -D $DIR/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
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
$PSQL -c "CREATE EXTENSION topgun; SELECT topgun.journal_enable('journaled')" >/dev/null

for m in journaled plain; do
  cat > "$DIR/one-$m.sql" <<SQL
\set k random(1, 100000)
SELECT topgun.lww_put('$m', 'k' || :k, jsonb_build_object('n', :k, 'title', 'item ' || :k), topgun.hlc_now());
SQL
  cat > "$DIR/many-$m.sql" <<SQL
\set k random(1, 100000)
SELECT count(*) FROM topgun.lww_put_many(array_fill('$m'::text, ARRAY[$B]),
  ARRAY(SELECT 'k' || ((:k + g * 997) % 100000) FROM generate_series(1, $B) g),
  ARRAY(SELECT jsonb_build_object('n', g, 'title', 'item ' || g) FROM generate_series(1, $B) g),
  ARRAY(SELECT topgun.hlc_now() FROM generate_series(1, $B) g));
SQL
done
chmod 644 "$DIR"/*.sql
tps() { $PGBENCH -c "$C" -j "$C" -T "$T" -f "$1" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
for kind in one many; do
  j=(); p=()
  for _ in $(seq "$R"); do
    j+=("$(tps "$DIR/$kind-journaled.sql")")
    p+=("$(tps "$DIR/$kind-plain.sql")")
  done
  python3 - "$kind" "$B" "${j[*]}" "${p[*]}" <<'PY'
import statistics, sys
kind, b, j, p = sys.argv[1], int(sys.argv[2]), [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
mj, mp = statistics.median(j), statistics.median(p)
ops = 1 if kind == 'one' else b
label = 'single-row lww_put' if kind == 'one' else f'lww_put_many x{b}'
print(f"== {label}: journaled {mj:.0f} tx/s ({mj*ops:.0f} ops/s), not journaled {mp:.0f} tx/s ({mp*ops:.0f} ops/s);"
      f" journal cost {100 * (1 - mj / mp):.1f} %   rounds j={j} p={p}")
PY
done
echo "== journal events written: $($PSQL -c 'SELECT count(*) FROM topgun.journal_events')"
