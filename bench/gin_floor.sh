#!/usr/bin/env bash
# What a GIN index alone costs per document on this machine (issue 14's ingest
# target): a plain table of precomputed tsvectors of ~30 words from the search
# corpus's 50,000-word Zipf vocabulary (and of int4[] term hashes), 100,000
# already indexed, then 1,000 statements of 100 rows each.  Prints rows/s with
# no index and with GIN (fastupdate on and off).  No topgun code is involved:
# it is the floor under any GIN-based search index written in the transaction.
# Usage: bench/gin_floor.sh
set -euo pipefail
BENCH_CONF="shared_buffers = '1GB'
synchronous_commit = off"
# shellcheck source=lib_cluster.sh
. "$(dirname "$0")/lib_cluster.sh"
$PSQL -c "CREATE FUNCTION word(r int) RETURNS text LANGUAGE sql IMMUTABLE
            AS \$\$ SELECT 'z' || translate(r::text, '0123456789', 'bcdfghjklm') \$\$"
DOC="(SELECT string_agg(word(floor(exp(random() * ln(50000)))::int), ' ') FROM generate_series(1, 30 + (g % 3) - 1))"
$PSQL -c "CREATE TABLE src AS SELECT g, to_tsvector('simple', $DOC) AS tsv FROM generate_series(1, 200000) g;
          ALTER TABLE src ADD PRIMARY KEY (g);
          ALTER TABLE src ADD h int4[];
          UPDATE src SET h = (SELECT array_agg(DISTINCT hashtext(x)) FROM unnest(tsvector_to_array(tsv)) x)"
$PSQL -c "VACUUM ANALYZE src"
for b in $(seq 0 999); do
  echo "INSERT INTO t SELECT g, tsv, h FROM src WHERE g > 100000 + $b * 100 AND g <= 100000 + ($b + 1) * 100;"
done > "$DIR/ins.sql"
chown postgres "$DIR/ins.sql"
for idx in "none" "gin (tsv) WITH (fastupdate = on)" "gin (tsv) WITH (fastupdate = off)" "gin (h)"; do
  $PSQL -c "DROP TABLE IF EXISTS t" -c "CREATE TABLE t (id int PRIMARY KEY, tsv tsvector, h int4[])" 2>/dev/null
  [ "$idx" = none ] || $PSQL -c "CREATE INDEX ON t USING $idx"
  $PSQL -c "INSERT INTO t SELECT g, tsv, h FROM src WHERE g <= 100000"
  t0=$(date +%s%N); $PSQL -f "$DIR/ins.sql" >/dev/null; t1=$(date +%s%N)
  echo "  index $idx: $(( 100000 * 1000000000 / (t1 - t0) )) rows/s ($(( (t1 - t0) / 100000000 )) us per row)"
done
