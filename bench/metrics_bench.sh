#!/usr/bin/env bash
#
# bench/metrics_bench.sh — what a Prometheus scrape costs (issue 18: < 1 ms,
# no SQL on the socket loop).
#
#   bash bench/metrics_bench.sh [scrapes]     (default 2000)
#
# 1. bench/metrics_render: the renderer alone (src/metrics), worst case (all
#    64 executor slots registered, every series non-zero), µs per render.
# 2. A throwaway cluster with the sync worker (free ports, 127.0.0.1): N
#    sequential GET /metrics over fresh TCP connections, and N GET /health,
#    client-side latency p50 / p99 / max and the body size; then the same
#    scrapes while 20 clients write (bench/ws_load closed loop), to show
#    what a scrape adds next to real traffic.
# Needs the extension built and installed (make && make install).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../scripts/lib.sh
. "$REPO/scripts/lib.sh"
N="${1:-2000}"

PURE="src/metrics/metrics.c src/wire/message.c src/wire/msgpack.c"
(cd "$REPO" && cc -O2 -Isrc -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare \
	-o bench/metrics_render bench/metrics_render.c $PURE -lm)
"$REPO/bench/metrics_render"
cc -O2 -Wall -Wextra -Werror -o "$REPO/bench/ws_load" "$REPO/bench/ws_load.c" -lcrypto -lm

WORK="$(mktemp -d /tmp/topgun-metricsbench.XXXXXX)"
chmod 755 "$WORK"
state="$WORK/cluster"
loadpid=""
cleanup() {
	[ -z "$loadpid" ] || kill "$loadpid" 2>/dev/null || true
	tg_cluster_stop "$state" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

secret="bench-$(openssl rand -hex 24)"
tg_cluster_init "$state" --secret "$secret" >/dev/null
tg_cluster_start "$state"
tg_create_extension "$state"
tg_wait_serving "$state" 30 || tg_die "sync server not serving"
tg_state_load "$state"

# N sequential GETs of PATH on 127.0.0.1:WSPORT; prints latency percentiles.
scrape() {
	perl -MIO::Socket::INET -MTime::HiRes=time -e '
		my ($port, $path, $n, $label) = @ARGV;
		my (@lat, $size);
		for (1 .. $n) {
			my $t0 = time;
			my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port, Proto => "tcp")
				or die "connect: $!";
			print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
			local $/; my $r = <$s>; close $s;
			push @lat, (time - $t0) * 1e3;
			$r =~ m{^HTTP/1\.1 (\d+)} && ($1 == 200 || $1 == 503) or die "bad answer: " . substr($r, 0, 80);
			$size = length($r) - index($r, "\r\n\r\n") - 4;
		}
		@lat = sort { $a <=> $b } @lat;
		printf "%-28s %5d GETs  p50 %.3f ms  p99 %.3f ms  max %.3f ms  (%d bytes)\n",
			$label, $n, $lat[int($n * 0.50)], $lat[int($n * 0.99)], $lat[-1], $size;
	' "$WSPORT" "$1" "$N" "$2"
}

echo "# worker on 127.0.0.1:$WSPORT, $(nproc) CPUs; latency is client-side (connect + request + full body)"
scrape /metrics "GET /metrics, idle"
scrape /health "GET /health, idle"
"$REPO/bench/ws_load" --port "$WSPORT" --secret "$secret" --connections 20 --duration 30 \
	--idle 0 --rate 0 >"$WORK/load.log" 2>&1 &
loadpid=$!
# wait until the load generator has authenticated its connections
for _ in $(seq 1 100); do
	[ "$(tg_psql "$state" -Atc "SELECT count(*) FROM topgun.connections() WHERE authenticated")" -ge 20 ] && break
	sleep 0.1
done
scrape /metrics "GET /metrics, 20 writers"
kill "$loadpid" 2>/dev/null || true
wait "$loadpid" 2>/dev/null || true
loadpid=""
echo "# $(tg_psql "$state" -Atc "SELECT 'ops applied during the run: ' || value FROM topgun.worker_stats WHERE name = 'ops_applied'")"
