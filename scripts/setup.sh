#!/usr/bin/env bash
#
# scripts/setup.sh — README command 1: install what is missing, build and
# install topgun, and run a local PostgreSQL 15 cluster with the sync server.
#
#   sudo bash scripts/setup.sh          set up (or restart) the local cluster
#   sudo bash scripts/setup.sh stop     stop it
#   sudo bash scripts/setup.sh status   is it running?
#
# Idempotent: re-running rebuilds, reinstalls and restarts the same cluster
# (same data, same JWT secret, same ports when they are still free).
#
# Quiet: the terminal gets one line per step (packages, build, install,
# cluster, worker) with its duration; the full output goes to
# <repo>/.topgun/setup.log, and a failing step prints the last lines of the
# log and its path.
#
# The cluster lives in <repo>/.topgun (data/, sock/, postgres.log) and runs
# as the unprivileged `postgres` user when invoked as root.  If `postgres`
# cannot traverse the repository path (e.g. a checkout under /root), the
# cluster goes to /var/lib/postgresql/topgun-<hash> instead and
# <repo>/.topgun/cluster points to it.  The HS256 secret is always in
# <repo>/.topgun/jwt_secret (mode 600); scripts/mint-token.sh mints tokens.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOPDIR="$TG_REPO/.topgun"

find_state() {
	if [ -L "$TOPDIR/cluster" ]; then
		readlink -f "$TOPDIR/cluster"
	else
		echo "$TOPDIR"
	fi
}

case "${1:-}" in
	stop)
		state="$(find_state)"
		[ -f "$state/cluster.env" ] || { tg_log "no cluster set up in $state"; exit 0; }
		tg_cluster_stop "$state"
		tg_log "stopped the cluster in $state"
		exit 0
		;;
	status)
		state="$(find_state)"
		[ -f "$state/cluster.env" ] || { echo "not set up"; exit 3; }
		if tg_cluster_running "$state"; then echo "running ($state)"; else echo "stopped ($state)"; exit 3; fi
		exit 0
		;;
	"" | start) ;;
	*) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac


# Quiet: one line per step on the terminal, everything else in the log.
tg_steps_begin "$TOPDIR/setup.log"

setup_cluster() {
	local user home how init_args=(--listen-tcp) was_running=0
	user="$(tg_os_user)"
	state="$TOPDIR"
	if tg_is_root && ! tg_as_user "$user" test -x "$TG_REPO"; then
		# postgres cannot reach the checkout: keep the cluster in a
		# postgres-owned directory and link it from the repository.
		home="$(getent passwd "$user" | cut -d: -f6)"
		state="$home/topgun-$(printf '%s' "$TG_REPO" | sha1sum | cut -c1-12)"
		mkdir -p "$state"
		chown "$user": "$state"
		ln -sfn "$state" "$TOPDIR/cluster"
		tg_log "NOTE: user $user cannot traverse $TG_REPO; the cluster lives in $state (linked as $TOPDIR/cluster)"
	fi

	# Reuse the previous ports when possible.
	if [ -f "$state/cluster.env" ]; then
		tg_state_load "$state"
		if tg_cluster_running "$state"; then
			was_running=1
			init_args+=(--pgport "$PGPORT" --wsport "$WSPORT")
		else
			tg_port_free "$PGPORT" && init_args+=(--pgport "$PGPORT")
			tg_port_free "$WSPORT" && init_args+=(--wsport "$WSPORT")
		fi
	fi
	init_args+=(--prefer-default-ports)
	if [ "$state" != "$TOPDIR" ] && [ -s "$TOPDIR/jwt_secret" ]; then
		init_args+=(--secret "$(cat "$TOPDIR/jwt_secret")")
	fi
	tg_cluster_init "$state" "${init_args[@]}"
	if [ "$state" != "$TOPDIR" ]; then
		install -m 600 "$state/jwt_secret" "$TOPDIR/jwt_secret"
	fi

	if [ "$was_running" = 1 ]; then
		tg_log "restarting the running cluster (loads the freshly installed topgun.so)"
		tg_cluster_restart "$state" || tg_die "restart failed; see $state/postgres.log"
		how=restarted
	else
		tg_cluster_start "$state" || tg_die "start failed; see $state/postgres.log"
		how=started
	fi
	tg_create_extension "$state" || tg_die "CREATE EXTENSION topgun failed; see $state/postgres.log"
	tg_state_load "$state"
	tg_step_note "$how, PostgreSQL on port $PGPORT"
}

wait_worker() {
	state="$(find_state)"
	if ! tg_wait_serving "$state" 30; then
		tail -n 30 "$state/postgres.log"
		tg_die "the sync server is not serving on 127.0.0.1:$WSPORT after 30 s; see $state/postgres.log"
	fi
	tg_step_note "serving on 127.0.0.1:$WSPORT"
}

tg_step packages tg_install_packages
tg_step build tg_make
tg_step install tg_make_install
tg_step cluster setup_cluster
tg_step worker wait_worker

# the steps ran in subshells: read the cluster's state here
state="$(find_state)"
tg_state_load "$state"
version="$(tg_psql "$state" -Atc "SELECT extversion FROM pg_extension WHERE extname = 'topgun'")"
cat <<EOF

topgun $version is running (PostgreSQL 15, data in $state/data, log $state/postgres.log).

  SQL:        psql "host=127.0.0.1 port=$PGPORT user=$OSUSER dbname=postgres"
              (or over the socket: psql "host=$state/sock port=$PGPORT user=$OSUSER dbname=postgres")
  WebSocket:  ws://127.0.0.1:$WSPORT
  Health:     curl http://127.0.0.1:$WSPORT/health    (Prometheus: /metrics)
  Dev token:  bash scripts/mint-token.sh [sub] [ttl_seconds]
              (HS256 with the secret in $TOPDIR/jwt_secret)
  Stop:       bash scripts/setup.sh stop
  Setup log:  $TOPDIR/setup.log

EOF
