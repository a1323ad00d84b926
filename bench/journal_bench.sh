#!/usr/bin/env bash
# Journal ingest cost (docs/journal.md).  pgbench writers on a map that is
# journaled and on one that is not, alternating R rounds of T seconds each:
#   - single-row transactions: topgun.lww_put (what SQL clients do);
#   - batches: topgun.lww_put_many of B ops per transaction (what the sync
#     server does with a client's OP_BATCH);
# prints the median tx/s of both and the cost of journaling in percent.
# Throughput on a shared machine is noisy, so it also measures the CPU time of
# one backend running N transactions of each kind (synchronous_commit off),
# read from /proc: the cost the journal adds to each write.
# Starts its own throwaway cluster (bench/lib_cluster.sh).
# Usage: bench/journal_bench.sh [C [T [R [B [N]]]]]   (defaults 4 10 3 100 20000)
set -euo pipefail
C=${1:-4}
T=${2:-10}
R=${3:-3}
B=${4:-100}
N=${5:-20000}
. "$(dirname "$0")/lib_cluster.sh"
$PSQL -c "SELECT topgun.journal_enable('journaled')" >/dev/null

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
tps() { $PGBENCH -c "$C" -j "$C" -T "$T" -f "$1" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
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
$PSQL -c "CREATE PROCEDURE put_loop(m text, n int, b int) LANGUAGE plpgsql AS \$\$
BEGIN
  FOR i IN 1..n LOOP
    IF b = 1 THEN
      PERFORM topgun.lww_put(m, 'c' || (i % 100000), jsonb_build_object('n', i, 'title', 'item ' || i), topgun.hlc_now());
    ELSE
      PERFORM count(*) FROM topgun.lww_put_many(array_fill(m, ARRAY[b]),
        ARRAY(SELECT 'c' || ((i * b + g) % 100000) FROM generate_series(1, b) g),
        ARRAY(SELECT jsonb_build_object('n', g, 'title', 'item ' || g) FROM generate_series(1, b) g),
        ARRAY(SELECT topgun.hlc_now() FROM generate_series(1, b) g));
    END IF;
    COMMIT;
  END LOOP;
END \$\$"
cpu() { # CPU seconds (user + system) of one backend running N transactions of b ops on map m
  $PSQL -v m="$1" -v n="$2" -v b="$3" > /dev/null <<SQL
SET synchronous_commit = off;
CALL put_loop(:'m', :n / 10 + 1, :b);   -- warm caches and plans first
SELECT pg_backend_pid() AS pid \gset
\setenv PID :pid
\! awk '{print \$14 + \$15}' /proc/\$PID/stat > $DIR/cpu0
CALL put_loop(:'m', :n, :b);
\! awk '{print \$14 + \$15}' /proc/\$PID/stat > $DIR/cpu1
SQL
  echo $(( $(cat "$DIR/cpu1") - $(cat "$DIR/cpu0") ))
}
tick=$(getconf CLK_TCK)
for b in 1 "$B"; do
  n=$(( b == 1 ? N : N / b ))
  cp=$(cpu plain "$n" "$b"); cj=$(cpu journaled "$n" "$b")
  python3 -c "cj, cp, n, b, t = $cj, $cp, $n, $b, $tick
print(f'== CPU per transaction of {b} op(s), one backend, {n} transactions: journaled {cj / t / n * 1e6:.0f} us, '
      f'not journaled {cp / t / n * 1e6:.0f} us; journal cost {100 * (cj / cp - 1):.1f} %')"
done
echo "== journal events written: $($PSQL -c 'SELECT count(*) FROM topgun.journal_events')"
