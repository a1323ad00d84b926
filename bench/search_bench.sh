#!/usr/bin/env bash
# Full-text search benchmark (issue 14, docs/search.md).  Prints:
#   - topgun.search_enable on a loaded map of N documents (~30 words from a
#     50,000-word Zipf vocabulary, one field): documents/s;
#   - one-shot top-10 2-term queries, p50/p90 per band of document frequency:
#     rare (df < 0.1 %), medium (df ~1 %), common (df ~10 %);
#   - ingest with lww_put_many (batches of 100) into a plain and into a
#     search-enabled map, and the ratio;
#   - 50 concurrent pgbench writers (one lww_put per transaction) on a
#     plain and on a search-enabled map: TPS, and the ratio.
# Starts its own throwaway cluster (as user postgres) from TG_PG_BIN (the
# private copy of scripts/devpg.sh) or pg_config's.
# Usage: bench/search_bench.sh [N]   (default 1000000)
set -euo pipefail
N=${1:-1000000}
BENCH_CONF="shared_buffers = '1GB'
work_mem = '64MB'
maintenance_work_mem = '512MB'
max_connections = 120
synchronous_commit = off"
# shellcheck source=lib_cluster.sh
. "$(dirname "$0")/lib_cluster.sh"
PSQL="$PGBIN/psql -X -q -h $DIR -p $PORT -U postgres -d postgres -v ON_ERROR_STOP=1"  # aligned: the query timings are parsed from \timing lines
# compare UNIT PLAIN SEARCH: both rates and search/plain
compare() { python3 -c 'import sys; u, p, s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]); print(f"  plain map: {p:8.0f} {u}   search-enabled: {s:8.0f} {u}   ratio {s/p:.2f}")' "$@"; }
ms() { local t0 t1; t0=$(date +%s%N); $PSQL -c "$1" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }

# word of Zipf rank r: consonants only (no stop word, the stemmer keeps it)
$PSQL -c "CREATE FUNCTION word(r int) RETURNS text LANGUAGE sql IMMUTABLE
            AS \$\$ SELECT 'z' || translate(r::text, '0123456789', 'bcdfghjklm') \$\$"
# rank = floor(exp(u ln V)): P(rank <= r) = ln r / ln V, Zipf with s = 1
DOC="(SELECT string_agg(word(floor(exp(random() * ln(50000)))::int), ' ') FROM generate_series(1, 30 + (g % 3) - 1))"

echo "== corpus: $N documents of ~30 words, 50,000-word Zipf vocabulary"
t=$(ms "INSERT INTO topgun.lww (map, key, value, ts)
        SELECT 'corpus', 'doc-' || g, jsonb_build_object('text', $DOC), topgun.hlc(1600000000000 + g, 0, 'bench')
          FROM generate_series(1, $N) g")
echo "  loaded in $t ms"
$PSQL -c "VACUUM ANALYZE topgun.lww"

echo "== search_enable('corpus', '{text}')"
t=$($PSQL -c "SET client_min_messages = warning" -c "\\timing on" -c "SELECT topgun.search_enable('corpus', '{text}')" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
python3 -c "import sys; n=$N; t=float('$t'); print(f'  {n} documents in {t/1000:.1f} s: {n/(t/1000):.0f} documents/s')"
$PSQL -c "VACUUM ANALYZE topgun.search_doc, topgun.search_df, topgun.search_stats, topgun.search_delta"

echo "== top-10 2-term queries (20 pairs per band, each run 3 times)"
for band in "rare:0.0002:0.001" "medium:0.008:0.012" "common:0.08:0.12"; do
  IFS=: read -r name lo hi <<<"$band"
  terms=$($PSQL -At -c "SELECT string_agg(term, ' ') FROM (
             SELECT term FROM topgun.search_terms WHERE field = 0
              AND df BETWEEN $lo * $N AND $hi * $N ORDER BY md5(term) LIMIT 40) t")
  read -ra T <<<"$terms"
  # one warm session, as a server's pooled connection: 1 warm-up, then 3 runs of each pair
  { echo "SELECT count(*) FROM topgun.search('corpus', '${T[0]} ${T[1]}', 10);"; echo '\timing on'
    for i in $(seq 0 2 $(( ${#T[@]} - 2 ))); do
      for rep in 1 2 3; do echo "SELECT count(*) FROM topgun.search('corpus', '${T[$i]} ${T[$((i + 1))]}', 10);"; done
    done; } > "$DIR/queries.sql"
  chown postgres "$DIR/queries.sql"
  $PSQL -f "$DIR/queries.sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' > "$DIR/times"
  python3 - "$name" "$DIR/times" "${#T[@]}" <<'PY'
import sys
name, path, nterms = sys.argv[1], sys.argv[2], int(sys.argv[3])
v = sorted(float(x) for x in open(path) if x.strip())
if not v:
    print(f"  {name:7s} no terms in this band"); sys.exit()
print(f"  {name:7s} {nterms//2:2d} pairs, {len(v)} queries: p50 {v[len(v)//2]:7.1f} ms   p90 {v[int(len(v)*0.9)]:7.1f} ms   max {v[-1]:7.1f} ms")
PY
done

echo "== ingest: lww_put_many, 200 batches of 100 documents, one transaction each"
$PSQL -c "SET client_min_messages = warning" -c "SELECT topgun.search_enable('ingest_search', '{text}')" >/dev/null
for m in ingest_plain ingest_search; do
  for b in $(seq 0 199); do
    echo "SELECT count(*) FROM topgun.lww_put_many(
            (SELECT array_agg('$m'::text) FROM generate_series(1, 100)),
            (SELECT array_agg('k' || ($b * 100 + g)) FROM generate_series(1, 100) g),
            (SELECT array_agg(jsonb_build_object('text', $DOC)) FROM generate_series(1, 100) g),
            (SELECT array_agg(topgun.hlc_now()) FROM generate_series(1, 100)));"
  done > "$DIR/$m-ingest.sql"
  chown postgres "$DIR/$m-ingest.sql"
  t0=$(date +%s%N); $PSQL -f "$DIR/$m-ingest.sql" >/dev/null; t1=$(date +%s%N)
  echo "$m $(( (t1 - t0) / 1000000 ))" >> "$DIR/ingest"
done
read -r _ tp < <(grep '^ingest_plain ' "$DIR/ingest")
read -r _ ts < <(grep '^ingest_search ' "$DIR/ingest")
compare "docs/s" $(( 20000000 / tp )) $(( 20000000 / ts ))

echo "== 50 concurrent writers (pgbench, 10 s each, one lww_put per transaction)"
$PSQL -c "SET client_min_messages = warning" -c "SELECT topgun.search_enable('concurrent_search', '{text}')" >/dev/null
for m in concurrent_plain concurrent_search; do
  cat > "$DIR/$m.sql" <<SQL
\set k random(1, 1000000)
SELECT topgun.lww_put('$m', 'k' || :k, jsonb_build_object('text', 'zb zc zd zf zg ' || word(:k % 50000 + 1) || ' zh zj zk zl zm zbb zbc zbd zbf zbg zbh zbj zbk zbl'));
SQL
  chown postgres "$DIR/$m.sql"
  # sample the writers that wait on a lock (a hot statistics row would show here)
  ( for i in $(seq 1 40); do sleep 0.25
      $PSQL -At -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%lww_put%'"
    done > "$DIR/$m.waits" ) &
  tps=$(as_pg "$PGBIN/pgbench -n -h $DIR -p $PORT -U postgres -c 50 -j 2 -T 10 -f $DIR/$m.sql postgres" 2>&1 |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
  wait
  echo "$m $tps" >> "$DIR/conc"
  echo "  $m: writers waiting on a lock, mean over 40 samples: $(awk '{ s += $1 } END { printf "%.2f", s / NR }' "$DIR/$m.waits")"
done
read -r _ cp < <(grep '^concurrent_plain ' "$DIR/conc")
read -r _ cs < <(grep '^concurrent_search ' "$DIR/conc")
compare "tps" "$cp" "$cs"
$PSQL -At -c "SELECT '  statistics rows of concurrent_search: ' || (SELECT count(*) FROM topgun.search_df d WHERE d.map_id = c.id)
                       || ' bucket rows, ' || (SELECT count(*) FROM topgun.search_delta d WHERE d.map_id = c.id) || ' pending deltas'
                FROM topgun.search_config c WHERE c.map = 'concurrent_search'"

echo "== ingest over the wire: bench/ws_load, 10 connections, OP_BATCH of 100, 2 in flight, ~30 Zipf words per value"
# The sync server was off for the phases above (topgun.port = 0); turn it on.
REPO=$(cd "$(dirname "$0")/.." && pwd)
cc -O2 -Wall -Wextra -Werror -o "$DIR/ws_load" "$REPO/bench/ws_load.c" -lcrypto -lm
WSPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SECRET="bench-$(openssl rand -hex 24)"
cat >> "$DIR/data/postgresql.conf" <<CONF
topgun.port = $WSPORT
topgun.listen_addresses = '127.0.0.1'
topgun.database = 'postgres'
topgun.jwt_secret = '$SECRET'
CONF
as_pg "$PGBIN/pg_ctl -D $DIR/data -l $DIR/log -w restart" >/dev/null
# until the sync server reports it is listening (topgun.worker_stats; each query paces the poll)
for _ in $(seq 1 3000); do
  [ "$($PSQL -At -c "SELECT value FROM topgun.worker_stats WHERE name = 'listening'" 2>/dev/null)" = 1 ] && break
done
$PSQL -c "SET client_min_messages = warning" -c "SELECT topgun.search_enable('ws_search', '{text}')" >/dev/null
for m in ws_plain ws_search; do
  out=$("$DIR/ws_load" --port "$WSPORT" --secret "$SECRET" --map "$m" --connections 10 --batch 100 --window 2 \
          --words 30 --rate 0 --idle 0 --duration "${SEARCH_WS_SECONDS:-10}" | grep -v '^#')
  echo "  $m: $out"
  echo "$m $(sed -n 's/.* acked_ops\/s=\([0-9.]*\).*/\1/p' <<<"$out")" >> "$DIR/ws"
done
read -r _ wp < <(grep '^ws_plain ' "$DIR/ws")
read -r _ wsr < <(grep '^ws_search ' "$DIR/ws")
compare "acked ops/s" "$wp" "$wsr"
$PSQL -At -c "SELECT '  ws_search documents indexed: ' || count(*) FROM topgun.search_doc d JOIN topgun.search_config c ON c.id = d.map_id WHERE c.map = 'ws_search'"
