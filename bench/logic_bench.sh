#!/usr/bin/env bash
# bench/logic_bench.sh — entry-processor throughput (printed numbers).
#   hot key:       pgbench clients all running topgun.execute_on_key(...,'builtin:increment') on one key
#   distinct keys: topgun.execute_on_keys over 100 fresh keys per call
# Needs a running cluster with topgun installed: PGHOST/PGPORT/PGDATABASE as usual.
#   lock manager:  acquire+release pairs/s of src/logic/lockmgr.c (test_lockmgr built with -O2, no sanitizers)
#   resolver:      resolve_ops next to lww_put_many on the same 1000-op batches
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
pgbench -n -M prepared -D proc=builtin:increment -c "$CLIENTS" -j 2 -T "$T" -f "$tmp/hot.sql" > "$tmp/hot.out" 2>&1
hot="$(awk '/^tps/ {print $3; exit}' "$tmp/hot.out")"
n="$(awk '/actually processed/ {print $NF; exit}' "$tmp/hot.out")"
after="$(psql -qXAt -c "SELECT topgun.lww_get('bench_ep', 'hot')")"
echo "hot key: ${hot} increments/s with ${CLIENTS} clients; ${n} transactions moved the value by $((after - before)) (lost updates: $((n - (after - before))))"
many="$(pgbench -n -M prepared -D proc=builtin:increment -c "$CLIENTS" -j 2 -T "$T" -f "$tmp/many.sql" 2>&1 | awk '/^tps/ {print $3; exit}')"
echo "distinct keys: $(awk -v t="$many" 'BEGIN {printf "%.0f", t * 100}') increments/s (${many} batches of 100/s, ${CLIENTS} clients)"
# Resolver cost next to the write it guards: 1000-op batches on one map with
# builtin:non_negative, resolve_ops then lww_put_many (what the group commit
# does), medians of 30 interleaved runs.
psql -qXAt <<'SQL'
SELECT topgun.register_resolver('builtin:non_negative', 'bench_res') \g /dev/null
CREATE TEMP TABLE t_res (ms float8);
CREATE TEMP TABLE t_put (ms float8);
DO $$
DECLARE
  m text[] := (SELECT array_agg('bench_res'::text) FROM generate_series(1, 1000));
  k text[];
  v jsonb[] := (SELECT array_agg(to_jsonb(g)) FROM generate_series(1, 1000) g);
  t topgun.hlc[];
  t0 timestamptz;
BEGIN
  FOR run IN 1..30 LOOP
    k := (SELECT array_agg('r' || run || '-' || g) FROM generate_series(1, 1000) g);
    t := (SELECT array_agg(topgun.hlc_now()) FROM generate_series(1, 1000));
    t0 := clock_timestamp();
    PERFORM count(*) FROM topgun.resolve_ops(m, k, v, t, 'u');
    INSERT INTO t_res VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
    t0 := clock_timestamp();
    PERFORM count(*) FROM topgun.lww_put_many(m, k, v, t);
    INSERT INTO t_put VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
  END LOOP;
END $$;
SELECT format('resolver: resolve_ops %s ms vs lww_put_many %s ms per 1000 ops (median of 30): +%s%% on the write path',
  round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM t_res)::numeric, 2),
  round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM t_put)::numeric, 2),
  round((100 * (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM t_res)
             / (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM t_put))::numeric));
SELECT topgun.unregister_resolver('builtin:non_negative', 'bench_res') \g /dev/null
SQL
