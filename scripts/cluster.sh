#!/usr/bin/env bash
#
# scripts/cluster.sh — manage a local topgun cluster state directory
# (see scripts/lib.sh for the layout).  Used by test.sh, the e2e tests
# (restart) and bench/run.sh.
#
#   cluster.sh init STATE [tg_cluster_init options]
#   cluster.sh start|stop|restart|status STATE
#   cluster.sh psql STATE [psql args]
#   cluster.sh conninfo STATE
#   cluster.sh wait-ws STATE [seconds]        (TCP port open)
#   cluster.sh wait-serving STATE [seconds]   (WebSocket upgrade → AUTH_REQUIRED)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd="${1:-}"
state="${2:-}"
[ -n "$cmd" ] && [ -n "$state" ] || { sed -n '2,12p' "$0"; exit 2; }
shift 2
case "$cmd" in
	init) tg_cluster_init "$state" "$@" ;;
	start) tg_cluster_start "$state" ;;
	stop) tg_cluster_stop "$state" ;;
	restart) tg_cluster_restart "$state" ;;
	status) tg_cluster_running "$state" && echo running || { echo stopped; exit 3; } ;;
	psql) tg_psql "$state" "$@" ;;
	conninfo) tg_conninfo "$state" ;;
	wait-ws) tg_wait_ws "$state" "${1:-30}" ;;
	wait-serving) tg_wait_serving "$state" "${1:-30}" ;;
	*) tg_die "unknown command $cmd" ;;
esac
