#!/usr/bin/env bash
# bench/logic_bench.sh — entry-processor throughput (printed numbers).
#   hot key:       pgbench clients all running topgun.execute_on_key(...,'builtin:increment') on one key
#   distinct keys: topgun.execute_on_keys over 100 fresh keys per call
# Needs a running cluster with topgun installed: PGHOST/PGPORT/PGDATABASE as usual.
#   lock manager:  acquire+release pairs/s of src/logic/lockmgr.c (test_lockmgr built with -O2, no sanitizers)
# Env: CLIENTS (8), SECONDS_EACH (10), TOPGUN_VECTORS (../shared/vectors).
set -euo pipefail
cd "$(dirname "$0")/.."
export TOPGUN_VECTORS="${TOPGUN_VECTORS:-$(cd .. && pwd)/shared/vectors}"
lm="$(mktemp -d)"
cc -O2 -Isrc -std=gnu11 -o "$lm/test_lockmgr" test/unit/test_lockmgr.c src/logic/jv*.c src/logic/lock*.c -lm
(cd "$lm" && ./test_lockmgr | grep '^lock bench' | sed 's/ (ASan build;/ (-O2;/')
rm -rf "$lm"
echo "synchronous_commit = $(psql -qXAt -c "SHOW synchronous_commit"), $(nproc) cores, load $(cut -d" " -f1-3 /proc/loadavg)"
CLIENTS="${CLIENTS:-8}"
T="${SECONDS_EACH:-10}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
psql -qX -c "SELECT topgun.execute_on_key('bench_ep', 'hot', 'builtin:put_if_absent', '0')" >/dev/null
# the processor name is a pgbench variable: a literal 'builtin:increment' would be read as :increment
echo "SELECT topgun.execute_on_key('bench_ep', 'hot', :proc, '1');" > "$tmp/hot.sql"
cat > "$tmp/many.sql" <<'SQL'
SELECT topgun.execute_on_keys('bench_ep', array_agg('k' || (random() * 1e9)::bigint || '-' || g), :proc, '1') FROM generate_series(1, 100) g;
SQL
before="$(psql -qXAt -c "SELECT topgun.lww_get('bench_ep', 'hot')")"
hot="$(pgbench -n -M prepared -D proc=builtin:increment -c "$CLIENTS" -j 2 -T "$T" -f "$tmp/hot.sql" 2>&1 | awk '/^tps/ {print $3; exit}')"
after="$(psql -qXAt -c "SELECT topgun.lww_get('bench_ep', 'hot')")"
echo "hot key: ${hot} increments/s with ${CLIENTS} clients (value ${before} -> ${after}: no lost update if the difference equals the transactions run)"
many="$(pgbench -n -M prepared -D proc=builtin:increment -c "$CLIENTS" -j 2 -T "$T" -f "$tmp/many.sql" 2>&1 | awk '/^tps/ {print $3; exit}')"
echo "distinct keys: $(awk -v t="$many" 'BEGIN {printf "%.0f", t * 100}') increments/s (${many} batches of 100/s, ${CLIENTS} clients)"
