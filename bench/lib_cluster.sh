# bench/lib_cluster.sh — sourced by bench scripts: starts a throwaway cluster
# (as user postgres) with topgun preloaded, from $TG_PG_BIN or the system
# PostgreSQL (scripts/devpg.sh makes a private install).  Sets DIR, PSQL
# (unaligned, tuples only) and PGBENCH; on exit kills $BG (a background job
# of the script, if set) and removes the cluster.  BENCH_CONF, if set, holds
# extra postgresql.conf lines (later lines override the defaults below).
PGBIN=${TG_PG_BIN:-$(pg_config --bindir)}
DIR=$(mktemp -d /tmp/topgun-bench.XXXXXX)
chown postgres "$DIR"
chmod 755 "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BG=""
as_pg() { su postgres -s /bin/bash -c "$*"; }
cleanup() {
  if [ -n "$BG" ]; then kill "$BG" 2>/dev/null || true; fi
  as_pg "$PGBIN/pg_ctl -D $DIR/data -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb -D $DIR/data -U postgres" >/dev/null 2>&1
cat >> "$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'topgun'
topgun.port = 0
shared_buffers = '512MB'
max_wal_size = '8GB'
checkpoint_timeout = '30min'
${BENCH_CONF:-}
CONF
as_pg "$PGBIN/pg_ctl -D $DIR/data -l $DIR/log -w start" >/dev/null
PSQL="$PGBIN/psql -X -q -At -h $DIR -p $PORT -U postgres -d postgres -v ON_ERROR_STOP=1"
PGBENCH="$PGBIN/pgbench -h $DIR -p $PORT -U postgres -n"
$PSQL -c "CREATE EXTENSION topgun"
