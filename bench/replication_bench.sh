#!/usr/bin/env bash
# Multi-node replication benchmark (issue 7).  Starts three throwaway clusters
# (free ports, Unix sockets only, as user postgres) in a full mesh built with
# topgun.add_peer(), then prints:
#   - convergence lag: LAG_WRITES (default 300) single-record commits on node A,
#     10 ms apart; for each, the time from just before A's write until node C's
#     apply worker stored it (same machine clock): p50 / p99 / max;
#   - sustained merged-write throughput: pgbench clients on all three nodes
#     write LWW records of one shared key space (and increment one counter) for
#     DURATION seconds (default 15); printed are the local commit rate and the
#     rate including the time until all three nodes held identical rows.
# Usage: bench/replication_bench.sh [DURATION] [CLIENTS_PER_NODE]
set -euo pipefail
DURATION=${1:-15}
CLIENTS=${2:-2}
LAG_WRITES=${LAG_WRITES:-300}
PGBIN=$(pg_config --bindir)
DIR=$(mktemp -d /tmp/topgun-replbench.XXXXXX)
chown postgres "$DIR"
as_pg() { su postgres -s /bin/bash -c "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NODES=(a b c)
declare -A PORT
cleanup() {
  for n in "${NODES[@]}"; do as_pg "$PGBIN/pg_ctl -D $DIR/$n -m immediate stop" >/dev/null 2>&1 || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
for n in "${NODES[@]}"; do
  PORT[$n]=$(free_port)
  as_pg "$PGBIN/initdb -D $DIR/$n -U postgres" >/dev/null 2>&1
  cat >> "$DIR/$n/postgresql.conf" <<CONF
port = ${PORT[$n]}
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'topgun'
topgun.port = 0
topgun.node_id = 'bench-$n'
wal_level = logical
max_worker_processes = 20
max_replication_slots = 16
max_wal_senders = 16
max_logical_replication_workers = 10
shared_buffers = '256MB'
max_wal_size = '4GB'
CONF
  as_pg "$PGBIN/pg_ctl -D $DIR/$n -l $DIR/$n.log -w start" >/dev/null || { cat "$DIR/$n.log"; exit 1; }
done
psql_n() { local n=$1; shift; "$PGBIN/psql" -X -q -At -h "$DIR" -p "${PORT[$n]}" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
for n in "${NODES[@]}"; do psql_n "$n" -c "CREATE EXTENSION topgun"; done
for x in "${NODES[@]}"; do
  for y in "${NODES[@]}"; do
    [ "$x" = "$y" ] || psql_n "$x" -c "SELECT topgun.add_peer('$y', 'host=$DIR port=${PORT[$y]} user=postgres dbname=postgres')" >/dev/null
  done
done
for n in "${NODES[@]}"; do
  until [ "$(psql_n "$n" -c "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" = 0 ]; do sleep 0.2; done
done
echo "== 3 nodes in a full mesh (PostgreSQL $(psql_n a -c 'SHOW server_version'), $(nproc) cores)"

# --- convergence lag A -> C
psql_n c -c "CREATE TABLE public.lag_seen (key text PRIMARY KEY, seen timestamptz NOT NULL)"
psql_n c -c "CREATE FUNCTION public.lag_mark() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
  IF NEW.map = 'lag' THEN
    INSERT INTO public.lag_seen VALUES (NEW.key, clock_timestamp()) ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END \$\$"
psql_n c -c "CREATE TRIGGER zz_lag_mark AFTER INSERT OR UPDATE ON topgun.lww FOR EACH ROW EXECUTE FUNCTION public.lag_mark()"
psql_n c -c "ALTER TABLE topgun.lww ENABLE ALWAYS TRIGGER zz_lag_mark"
psql_n a -c "DO \$\$ BEGIN
  FOR i IN 1..$LAG_WRITES LOOP
    PERFORM topgun.lww_put('lag', 'k' || i, to_jsonb(extract(epoch FROM clock_timestamp())::numeric));
    COMMIT;
    PERFORM pg_sleep(0.01);
  END LOOP;
END \$\$"
until [ "$(psql_n c -c "SELECT count(*) FROM public.lag_seen")" = "$LAG_WRITES" ]; do sleep 0.2; done
echo "== convergence lag, write on A until stored on C ($LAG_WRITES writes, 10 ms apart)"
psql_n c -c "SELECT format('   p50 %s ms   p99 %s ms   max %s ms',
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d)::numeric, 2),
    round(percentile_cont(0.99) WITHIN GROUP (ORDER BY d)::numeric, 2), round(max(d)::numeric, 2))
  FROM (SELECT (extract(epoch FROM s.seen) - (l.value #>> '{}')::numeric) * 1000 AS d
          FROM public.lag_seen s JOIN topgun.lww l ON l.map = 'lag' AND l.key = s.key) x"

# --- sustained merged writes on all three nodes
cat > "$DIR/w.sql" <<'SQL'
\set k random(1, 100000)
SELECT topgun.lww_put('tp', 'k' || :k, to_jsonb(:k));
SELECT topgun.counter_add('tp', 1);
SQL
chown postgres "$DIR/w.sql"
echo "== sustained merged writes: $CLIENTS pgbench clients per node x 3 nodes, ${DURATION} s, LWW keys k1..k100000 shared by all nodes"
t0=$(date +%s.%N)
for n in "${NODES[@]}"; do
  "$PGBIN/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" -f "$DIR/w.sql" -h "$DIR" -p "${PORT[$n]}" -U postgres postgres > "$DIR/pgb.$n" 2>&1 &
done
wait
t1=$(date +%s.%N)
total=0
for n in "${NODES[@]}"; do
  c=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$DIR/pgb.$n")
  echo "   node $n: $c transactions ($(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$DIR/pgb.$n") tps local)"
  total=$((total + c))
done
digest="SELECT md5(string_agg(map || key || ts::text, ',' ORDER BY map, key)) FROM topgun.lww WHERE map = 'tp'"
while :; do
  da=$(psql_n a -c "$digest"); db=$(psql_n b -c "$digest"); dc=$(psql_n c -c "$digest")
  ca=$(psql_n a -c "SELECT topgun.counter_value('tp')"); cc=$(psql_n c -c "SELECT topgun.counter_value('tp')")
  cb=$(psql_n b -c "SELECT topgun.counter_value('tp')")
  if [ "$da" = "$db" ] && [ "$db" = "$dc" ] && [ "$ca" = "$total" ] && [ "$cb" = "$total" ] && [ "$cc" = "$total" ]; then break; fi
  sleep 0.2
done
t2=$(date +%s.%N)
python3 - "$total" "$t0" "$t1" "$t2" <<'PY'
import sys
total, t0, t1, t2 = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"   {total} transactions (2 writes each): {total/(t1-t0):.0f} tx/s committed locally across 3 nodes; "
      f"all nodes identical {t2-t1:.1f} s after the writers stopped -> {total/(t2-t0):.0f} tx/s merged everywhere")
PY
for n in "${NODES[@]}"; do
  echo "   node $n: merkle_verify(tp)=$(psql_n "$n" -c "SELECT topgun.merkle_verify('tp')") root=$(psql_n "$n" -c "SELECT topgun.merkle_root('tp')") WAL=$(psql_n "$n" -c "SELECT pg_size_pretty(pg_current_wal_lsn() - '0/0')")"
done
