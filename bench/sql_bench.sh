#!/usr/bin/env bash
# SQL-core and Merkle benchmark (issues 2 and 3).  Prints:
#   - throughput of N topgun.lww_put calls (tree maintenance included) and of the
#     equivalent plain INSERT ... ON CONFLICT DO UPDATE on a table of the same
#     shape, and their ratio;
#   - the same with the Merkle trigger disabled (cost of tree maintenance);
#   - merkle_root / merkle_buckets latency on maps of 10K, 100K and 1M records.
# Starts its own throwaway cluster on a free port (as user postgres).
# Usage: bench/sql_bench.sh [N]   (default 1000000)
set -euo pipefail
N=${1:-1000000}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${TG_PG_BIN:-$(pg_config --bindir)}  # scripts/devpg.sh sets TG_PG_BIN to a private copy
DIR=$(mktemp -d /tmp/topgun-bench.XXXXXX)
chown postgres "$DIR"
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
shared_buffers = '1GB'
max_wal_size = '8GB'
checkpoint_timeout = '30min'
CONF
as_pg "$PGBIN/pg_ctl -D $DIR/data -l $DIR/log -w start" >/dev/null
PSQL="$PGBIN/psql -X -q -h $DIR -p $PORT -U postgres -d postgres -v ON_ERROR_STOP=1"
$PSQL -c "CREATE EXTENSION topgun"
$PSQL -c "CREATE TABLE plain (map text NOT NULL, key text NOT NULL, value jsonb, ts topgun.hlc NOT NULL,
                              ttl_ms bigint CHECK (ttl_ms > 0), PRIMARY KEY (map, key))"

ms() { # run SQL, print elapsed milliseconds
  local t0 t1; t0=$(date +%s%N); $PSQL -c "$1" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }

echo "== write path: $N records, one statement each side (fresh keys, then overwrite with newer timestamps)"
VALUE="jsonb_build_object('title', 'item ' || g, 'done', g % 2 = 0, 'n', g)"
for pass in insert update; do
  base=$([ $pass = insert ] && echo 1600000000000 || echo 1700000000000)
  t_plain=$(ms "INSERT INTO plain AS t (map, key, value, ts)
                SELECT 'bench', 'key-' || g, $VALUE, topgun.hlc($base + g, 0, 'node-a')
                  FROM generate_series(1, $N) g
                ON CONFLICT (map, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms
                 WHERE t.ts OPERATOR(topgun.<) excluded.ts")
  t_lww=$(ms "SELECT count(*) FROM (SELECT topgun.lww_put('bench', 'key-' || g, $VALUE, topgun.hlc($base + g, 0, 'node-a'))
                                     FROM generate_series(1, $N) g) s")
  python3 - "$pass" "$N" "$t_plain" "$t_lww" <<'PY'
import sys
p, n, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"  {p:6s} plain upsert: {n/a*1000:10.0f} rows/s ({a} ms)   lww_put+tree: {n/b*1000:10.0f} rows/s ({b} ms)   ratio lww_put/plain: {b/a:.2f}x")
PY
done

echo "== set-based: topgun.lww_put_many($N ops) vs one INSERT ... SELECT ... ON CONFLICT of $N rows"
for pass in insert update; do
  base=$([ $pass = insert ] && echo 1500000000000 || echo 1550000000000)
  t_plain=$(ms "INSERT INTO plain AS t (map, key, value, ts)
                SELECT 'many', 'key-' || g, $VALUE, topgun.hlc($base + g, 0, 'node-a')
                  FROM generate_series(1, $N) g
                ON CONFLICT (map, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms
                 WHERE t.ts OPERATOR(topgun.<) excluded.ts")
  t_many=$(ms "SELECT count(*) FROM topgun.lww_put_many(
                 (SELECT array_agg('many'::text) FROM generate_series(1, $N)),
                 (SELECT array_agg('key-' || g) FROM generate_series(1, $N) g),
                 (SELECT array_agg($VALUE) FROM generate_series(1, $N) g),
                 (SELECT array_agg(topgun.hlc($base + g, 0, 'node-a')) FROM generate_series(1, $N) g))")
  python3 -c "n,a,b=$N,$t_plain,$t_many; print(f'  $pass plain upsert: {n/a*1000:.0f} rows/s   lww_put_many+tree: {n/b*1000:.0f} rows/s   ratio: {b/a:.2f}x')"
done

echo "== $N calls each side from a PL/pgSQL loop (one upsert execution per call, 10000 per transaction)"
t_plain_loop=$(ms "DO \$\$ BEGIN FOR g IN 1..$N LOOP
    INSERT INTO plain AS t (map, key, value, ts) VALUES ('loop', 'key-' || g, $VALUE, topgun.hlc(1600000000000 + g, 0, 'node-a'))
    ON CONFLICT (map, key) DO UPDATE SET value = excluded.value, ts = excluded.ts, ttl_ms = excluded.ttl_ms
     WHERE t.ts OPERATOR(topgun.<) excluded.ts;
    IF g % 10000 = 0 THEN COMMIT; END IF; END LOOP; END \$\$")
t_lww_loop=$(ms "DO \$\$ BEGIN FOR g IN 1..$N LOOP
    PERFORM topgun.lww_put('loop', 'key-' || g, $VALUE, topgun.hlc(1600000000000 + g, 0, 'node-a'));
    IF g % 10000 = 0 THEN COMMIT; END IF; END LOOP; END \$\$")
python3 -c "n,a,b=$N,$t_plain_loop,$t_lww_loop; print(f'  plain upsert: {n/a*1000:.0f} calls/s   lww_put+tree: {n/b*1000:.0f} calls/s   ratio lww_put/plain: {b/a:.2f}x')"

echo "== cost of tree maintenance alone (Merkle trigger disabled, on a separate map)"
$PSQL -c "ALTER TABLE topgun.lww DISABLE TRIGGER lww_merkle"
t_notree=$(ms "SELECT count(*) FROM (SELECT topgun.lww_put('bench-notree', 'key-' || g, $VALUE, topgun.hlc(1600000000000 + g, 0, 'node-a'))
                                       FROM generate_series(1, $N) g) s")
$PSQL -c "ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER lww_merkle"
$PSQL -c "DELETE FROM topgun.lww WHERE map = 'bench-notree'" 
t_tree=$(ms "SELECT count(*) FROM (SELECT topgun.lww_put('bench-tree', 'key-' || g, $VALUE, topgun.hlc(1600000000000 + g, 0, 'node-a'))
                                     FROM generate_series(1, $N) g) s")
python3 -c "import sys; n,a,b=$N,$t_notree,$t_tree; print(f'  lww_put without tree: {n/a*1000:.0f} rows/s   with tree: {n/b*1000:.0f} rows/s   tree overhead: {(b-a)/a*100:.0f}%')"

echo "== single-row transactions (pgbench, 4 clients, 10 s): lww_put vs plain upsert"
cat > "$DIR/lww.sql" <<'S'
\set k random(1, 1000000)
SELECT topgun.lww_put('pgb', 'key-' || :k, '{"v":1}', topgun.hlc_now());
S
cat > "$DIR/plain.sql" <<'S'
\set k random(1, 1000000)
INSERT INTO plain AS t (map, key, value, ts) VALUES ('pgb', 'key-' || :k, '{"v":1}', topgun.hlc_now())
  ON CONFLICT (map, key) DO UPDATE SET value = excluded.value, ts = excluded.ts WHERE t.ts OPERATOR(topgun.<) excluded.ts;
S
chown postgres "$DIR"/*.sql
for s in plain lww; do
  tps=$(as_pg "$PGBIN/pgbench -n -h $DIR -p $PORT -U postgres -c 4 -j 2 -T 10 -f $DIR/$s.sql postgres" | awk '/^tps/ {print int($3)}')
  echo "  $s: $tps tps"
done

echo "== Merkle read latency (mean of 2000 calls, server-side)"
for size in 10000 100000 1000000; do
  [ "$size" -gt "$N" ] && continue
  map="m$size"
  $PSQL -c "SELECT count(*) FROM (SELECT topgun.lww_put('$map', 'key-' || g, '1', topgun.hlc(1000000000000 + g, 0, 'n'))
                                  FROM generate_series(1, $size) g) s"
  $PSQL -At -c "
    DO \$\$
    DECLARE t0 timestamptz; i int; d1 float; d2 float; d3 float; d4 float; r bigint;
    BEGIN
      t0 := clock_timestamp(); FOR i IN 1..2000 LOOP r := topgun.merkle_root('$map'); END LOOP;
      d1 := extract(epoch FROM clock_timestamp() - t0) * 1000000 / 2000;
      t0 := clock_timestamp(); FOR i IN 1..2000 LOOP PERFORM count(*) FROM topgun.merkle_buckets('$map', ''); END LOOP;
      d2 := extract(epoch FROM clock_timestamp() - t0) * 1000000 / 2000;
      t0 := clock_timestamp(); FOR i IN 1..2000 LOOP PERFORM count(*) FROM topgun.merkle_buckets('$map', 'a'); END LOOP;
      d3 := extract(epoch FROM clock_timestamp() - t0) * 1000000 / 2000;
      t0 := clock_timestamp(); FOR i IN 1..2000 LOOP PERFORM count(*) FROM topgun.merkle_buckets('$map', 'a5'); END LOOP;
      d4 := extract(epoch FROM clock_timestamp() - t0) * 1000000 / 2000;
      RAISE NOTICE '  % records: merkle_root % us, merkle_buckets(root) % us, (depth 1) % us, (depth 2) % us',
        $size, round(d1::numeric, 1), round(d2::numeric, 1), round(d3::numeric, 1), round(d4::numeric, 1);
    END \$\$" 2>&1 | sed 's/^NOTICE:  //'
done
echo "== tree check: merkle_verify(m$([ "$N" -ge 1000000 ] && echo 1000000 || echo 10000)) = $($PSQL -At -c "SELECT topgun.merkle_verify('m$([ "$N" -ge 1000000 ] && echo 1000000 || echo 10000)')")"
