# shellcheck shell=bash
#
# scripts/lib.sh — helpers shared by setup.sh, test.sh, cluster.sh and
# bench/run.sh.  Source it; it defines functions and a few variables only.
#
# A "cluster state directory" (STATE below) holds everything of one local
# PostgreSQL instance with the topgun worker:
#   STATE/data          PGDATA
#   STATE/sock          unix socket directory
#   STATE/postgres.log  server log (pg_ctl -l)
#   STATE/jwt_secret    HS256 secret of the worker (mode 600)
#   STATE/cluster.env   PGPORT=, WSPORT=, OSUSER=, LISTEN_TCP= (sourced by the helpers)
# When the scripts run as root the instance runs as the unprivileged
# `postgres` user (initdb refuses root); otherwise as the invoking user.

TG_REPO="${TG_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
TG_BUILD_LOCK="${TG_BUILD_LOCK:-/tmp/topgun-build.lock}"

# Debian packages every script needs.  nodejs/npm are checked by command
# because node may come from another Debian-format source (e.g. a newer
# nodejs package that bundles npm), and installing Debian's npm on top of
# that conflicts.
# libicu-dev: the search tokenizer (src/search) segments words with ICU.
# libclang-rt-14-dev (libFuzzer and sanitizer runtimes) is only a Recommends
# of clang, and we install with --no-install-recommends; ca-certificates lets
# npm reach the registry over https; prometheus ships promtool, which the
# e2e test of /metrics uses as the exposition-format checker (on a systemd
# host the package also enables a Prometheus server on :9090, see
# docs/operations.md).
TG_APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
	libwebsockets-dev libssl-dev libipc-run-perl build-essential clang
	libclang-rt-14-dev openssl ca-certificates perl util-linux procps libicu-dev
	prometheus)

tg_log() { printf '[topgun] %s\n' "$*" >&2; }
tg_die() { printf '[topgun] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------- quiet steps
# tg_step LABEL CMD [ARGS...]: run CMD (in a subshell, under set -e) with its
# output appended to $TG_STEP_LOG, and print one line:
# "[topgun] LABEL  ok  1.2 s", plus the note the step left with tg_step_note.
# A failing step prints FAILED, the last lines of the log and its path, and
# ends the script; so does a signal during a step (tg_steps_begin installs
# that EXIT trap).  The terminal's stderr is kept on fd 7 for these lines and
# closed for the step itself, so that a daemon a step starts (postgres) does
# not hold the terminal or a pipe open.
TG_STEP=""
TG_STEP_T0=0

tg_elapsed() {
	local ms=$((($(date +%s%N) - $1) / 1000000))
	printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100))
}

tg_steps_end_trap() {
	local rc=$?
	if [ -n "$TG_STEP" ]; then
		printf 'FAILED  %s\n' "$(tg_elapsed "$TG_STEP_T0")" >&7
		printf -- '---- last 30 lines of %s ----\n' "$TG_STEP_LOG" >&7
		tail -n 30 "$TG_STEP_LOG" >&7
		printf -- '----\n[topgun] %s failed; the full log is %s\n' "$TG_STEP" "$TG_STEP_LOG" >&7
		[ "$rc" -ne 0 ] || rc=1
	fi
	exit "$rc"
}

tg_steps_begin() {
	TG_STEP_LOG="$1"
	exec 7>&2
	mkdir -p "$(dirname "$TG_STEP_LOG")"
	: > "$TG_STEP_LOG"
	trap tg_steps_end_trap EXIT
}

# A few words for the step's line (called from inside a step).
tg_step_note() {
	[ -z "${TG_STEP_LOG:-}" ] || printf '%s' "$*" > "$TG_STEP_LOG.note"
}

tg_step() {
	local label="$1" rc note=""
	shift
	TG_STEP="$label"
	TG_STEP_T0="$(date +%s%N)"
	rm -f "$TG_STEP_LOG.note"
	printf '[topgun] %-9s ' "$label" >&7
	printf '\n==== %s: %s (%s)\n' "$label" "$*" "$(date -u '+%F %T UTC')" >> "$TG_STEP_LOG"
	set +e
	(set -e; "$@") >> "$TG_STEP_LOG" 2>&1 7>&-
	rc=$?
	set -e
	[ "$rc" -eq 0 ] || exit "$rc"
	if [ -f "$TG_STEP_LOG.note" ]; then
		note="$(cat "$TG_STEP_LOG.note")"
		rm -f "$TG_STEP_LOG.note"
	fi
	TG_STEP=""
	printf 'ok  %s%s\n' "$(tg_elapsed "$TG_STEP_T0")" "${note:+  ($note)}" >&7
}

tg_is_root() { [ "$(id -u)" -eq 0 ]; }

# ------------------------------------------------------------ packages
tg_missing_packages() {
	local p missing=()
	for p in "${TG_APT_PACKAGES[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if ! command -v node >/dev/null 2>&1; then
		missing+=(nodejs)
	fi
	if ! command -v npm >/dev/null 2>&1; then
		# A nodejs package that ships npm itself is already covered above.
		if ! command -v node >/dev/null 2>&1 || ! dpkg-query -L nodejs 2>/dev/null | grep -q '/bin/npm$'; then
			missing+=(npm)
		fi
	fi
	printf '%s\n' "${missing[@]}"
}

# Install only what is missing.  Idempotent; needs root (or sudo).
tg_install_packages() {
	local missing
	mapfile -t missing < <(tg_missing_packages | sed '/^$/d')
	if [ "${#missing[@]}" -eq 0 ]; then
		tg_log "all required packages are installed"
		tg_step_note "all installed"
		return 0
	fi
	tg_log "installing missing packages: ${missing[*]}"
	tg_step_note "installed ${missing[*]}"
	local sudo=()
	if ! tg_is_root; then
		command -v sudo >/dev/null 2>&1 || tg_die "missing packages (${missing[*]}) and not root: run as root"
		sudo=(sudo)
	fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
		tg_die "apt-get update failed"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" || tg_die "apt-get install failed"
}

# ---------------------------------------------------------- PostgreSQL
tg_pg_bindir() {
	local b
	b="$(pg_config --bindir 2>/dev/null)"
	if [ -n "$b" ] && [ -x "$b/pg_ctl" ]; then
		echo "$b"
	else
		echo /usr/lib/postgresql/15/bin
	fi
}
TG_PG_BIN="${TG_PG_BIN:-$(tg_pg_bindir)}"

# The OS user that runs test/local clusters.
tg_os_user() {
	if tg_is_root; then echo postgres; else id -un; fi
}

# Run a command as the cluster OS user, with a HOME it can use.
tg_as_user() {
	local user="$1"
	shift
	if [ "$(id -un)" = "$user" ]; then
		"$@"
	elif runuser -u "$user" -- test -x "$PWD" 2>/dev/null; then
		runuser -u "$user" -- env HOME="$(getent passwd "$user" | cut -d: -f6)" "$@"
	else
		# The user cannot enter the current directory (e.g. a checkout under
		# /root): run from / so that initdb/pg_ctl do not complain.
		(cd / && runuser -u "$user" -- env HOME="$(getent passwd "$user" | cut -d: -f6)" "$@")
	fi
}

# Can the user traverse/read/write this directory?
tg_user_can_write() {
	tg_as_user "$1" test -w "$2" -a -x "$2"
}

# -------------------------------------------------------------- ports
# True when 127.0.0.1:PORT can be bound right now (nobody listens on it).
tg_port_free() {
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
			LocalPort => $ARGV[0], Proto => "tcp", ReuseAddr => 1) or exit 1;
		close $s; exit 0;' "$1"
}

# Print a free TCP port.  With an argument, prefer that port when it is free.
# Random ports are drawn from 20000-29999 (below the kernel's ephemeral range)
# and are also checked against the unix socket name a server would create.
tg_free_port() {
	local pref="${1:-}" p i
	if [ -n "$pref" ] && tg_port_free "$pref"; then
		echo "$pref"
		return 0
	fi
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 10000))
		if tg_port_free "$p"; then
			echo "$p"
			return 0
		fi
	done
	tg_die "no free port found"
}

# ------------------------------------------------------------- build
tg_make() {
	(cd "$TG_REPO" && flock "$TG_BUILD_LOCK" make "$@")
}

tg_make_install() {
	if tg_is_root; then
		tg_make install
	else
		(cd "$TG_REPO" && flock "$TG_BUILD_LOCK" sudo make install)
	fi
}

tg_build_install() {
	tg_log "building (make, -Werror)"
	tg_make || return 1
	tg_log "installing (make install)"
	tg_make_install
}

# ----------------------------------------------------------- clusters
tg_state_load() {
	local state="$1"
	[ -f "$state/cluster.env" ] || tg_die "$state is not a topgun cluster directory (no cluster.env)"
	# shellcheck disable=SC1091
	. "$state/cluster.env"
	TG_STATE="$state"
	TG_PGDATA="$state/data"
	TG_SOCK="$state/sock"
	TG_LOG="$state/postgres.log"
}

# Connection string for psql/libpq (unix socket; works for root via user=postgres).
tg_conninfo() {
	tg_state_load "$1"
	echo "host=$TG_SOCK port=$PGPORT user=$OSUSER dbname=postgres"
}

# tg_cluster_init STATE [options]
#   --pgport N      (default: free port)
#   --wsport N      (default: free port)
#   --prefer-default-ports   try 5432 / 8080 first
#   --listen-tcp    PostgreSQL also listens on 127.0.0.1 (default: unix socket only)
#   --secret S      JWT secret (default: 48 random bytes, base64)
#   --conf FILE     extra postgresql.conf lines appended after ours
#   --conf-line L   one extra postgresql.conf line (repeatable)
# Creates STATE (owned by the cluster user), runs initdb, writes the config.
# Does nothing but update ports/config when STATE/data already exists.
tg_cluster_init() {
	local state="$1"
	shift
	local pgport="" wsport="" prefer="" listen_tcp=0 secret="" conf="" lines=()
	while [ $# -gt 0 ]; do
		case "$1" in
			--pgport) pgport="$2"; shift 2 ;;
			--wsport) wsport="$2"; shift 2 ;;
			--prefer-default-ports) prefer=1; shift ;;
			--listen-tcp) listen_tcp=1; shift ;;
			--secret) secret="$2"; shift 2 ;;
			--conf) conf="$2"; shift 2 ;;
			--conf-line) lines+=("$2"); shift 2 ;;
			*) tg_die "tg_cluster_init: unknown option $1" ;;
		esac
	done
	local user
	user="$(tg_os_user)"
	mkdir -p "$state"
	if tg_is_root; then
		chown "$user": "$state"
	fi
	chmod 700 "$state"
	tg_user_can_write "$user" "$state" ||
		tg_die "$state is not writable/traversable by user $user"
	tg_as_user "$user" mkdir -p "$state/sock"

	if [ -z "$pgport" ]; then
		pgport="$(tg_free_port "${prefer:+5432}")"
	fi
	if [ -z "$wsport" ]; then
		wsport="$(tg_free_port "${prefer:+8080}")"
		[ "$wsport" != "$pgport" ] || wsport="$(tg_free_port)"
	fi
	if [ -z "$secret" ]; then
		if [ -s "$state/jwt_secret" ]; then
			secret="$(cat "$state/jwt_secret")"
		else
			secret="$(openssl rand -base64 48 | tr -d '\n/+=' | head -c 48)"
		fi
	fi
	# The secret file is readable by the invoking user (who mints tokens)
	# and by nobody else.
	(umask 077 && printf '%s' "$secret" > "$state/jwt_secret")
	chmod 600 "$state/jwt_secret"

	cat > "$state/cluster.env" <<EOF
PGPORT=$pgport
WSPORT=$wsport
OSUSER=$user
LISTEN_TCP=$listen_tcp
EOF
	if tg_is_root; then chown "$user": "$state/cluster.env"; fi

	if [ ! -f "$state/data/PG_VERSION" ]; then
		tg_log "initdb $state/data (as $user)"
		tg_as_user "$user" "$TG_PG_BIN/initdb" -D "$state/data" -U "$user" \
			-A trust -E UTF8 --locale=C.UTF-8 --no-instructions >"$state/initdb.log" 2>&1 ||
			{ cat "$state/initdb.log" >&2; tg_die "initdb failed"; }
	fi

	# Our settings live in a file included from postgresql.conf, rewritten
	# on every init so that re-running picks new ports.
	local inc="$state/data/topgun_local.conf"
	local listen="''"
	[ "$listen_tcp" = 1 ] && listen="'127.0.0.1'"
	{
		echo "# written by scripts/lib.sh (tg_cluster_init); re-generated on every run"
		echo "shared_preload_libraries = 'topgun'"
		echo "port = $pgport"
		echo "listen_addresses = $listen"
		echo "unix_socket_directories = '$state/sock'"
		echo "max_connections = 50"
		echo "shared_buffers = 128MB"
		echo "fsync = on"
		echo "topgun.port = $wsport"
		echo "topgun.listen_addresses = '127.0.0.1'"
		echo "topgun.database = 'postgres'"
		echo "topgun.jwt_secret = '${secret//\'/\'\'}'"
		[ -n "$conf" ] && cat "$conf"
		for l in "${lines[@]}"; do echo "$l"; done
	} > "$inc"
	if tg_is_root; then chown "$user": "$inc"; fi
	chmod 600 "$inc"
	if ! grep -q "^include_if_exists = 'topgun_local.conf'" "$state/data/postgresql.conf"; then
		echo "include_if_exists = 'topgun_local.conf'" >> "$state/data/postgresql.conf"
	fi
}

tg_cluster_running() {
	tg_state_load "$1"
	tg_as_user "$OSUSER" "$TG_PG_BIN/pg_ctl" -D "$TG_PGDATA" status >/dev/null 2>&1
}

tg_cluster_start() {
	tg_state_load "$1"
	if tg_cluster_running "$1"; then
		tg_log "cluster $1 already running"
		return 0
	fi
	tg_as_user "$OSUSER" "$TG_PG_BIN/pg_ctl" -D "$TG_PGDATA" -l "$TG_LOG" -w -t 60 start >/dev/null ||
		{ tail -n 40 "$TG_LOG" >&2; return 1; }
}

tg_cluster_stop() {
	tg_state_load "$1"
	if tg_cluster_running "$1"; then
		tg_as_user "$OSUSER" "$TG_PG_BIN/pg_ctl" -D "$TG_PGDATA" -m fast -w -t 60 stop >/dev/null
	fi
}

tg_cluster_restart() {
	tg_state_load "$1"
	tg_as_user "$OSUSER" "$TG_PG_BIN/pg_ctl" -D "$TG_PGDATA" -l "$TG_LOG" -m fast -w -t 60 restart >/dev/null ||
		{ tail -n 40 "$TG_LOG" >&2; return 1; }
}

# tg_psql STATE [psql args...]  — as the cluster superuser, over the socket.
tg_psql() {
	local state="$1"
	shift
	tg_state_load "$state"
	"$TG_PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q "$(tg_conninfo "$state")" "$@"
}

# Wait until the sync server accepts TCP connections on WSPORT (or time out).
tg_wait_ws() {
	local state="$1" timeout="${2:-30}" i
	tg_state_load "$state"
	for i in $(seq 1 $((timeout * 5))); do
		if ! tg_port_free "$WSPORT"; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# True when a WebSocket upgrade on 127.0.0.1:PORT is accepted and the first
# frame is AUTH_REQUIRED (the worker is serving, not only listening: before
# the extension exists it answers with a retryable close 1013).
tg_ws_serving() {
	perl -MIO::Socket::INET -MIO::Select -e '
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0],
			Proto => "tcp", Timeout => 2) or exit 1;
		print $s "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
		my $sel = IO::Select->new($s); my $buf = ""; my $end = time + 3;
		while (time < $end && $buf !~ /AUTH_REQUIRED/) {
			last unless $sel->can_read(0.5) || time < $end;
			my $n = sysread($s, $buf, 4096, length $buf);
			last if defined $n && $n == 0;
		}
		exit(($buf =~ m{^HTTP/1\.1 101} && $buf =~ /AUTH_REQUIRED/) ? 0 : 1);' "$1"
}

# Wait until the sync server serves WebSocket clients (or time out).
tg_wait_serving() {
	local state="$1" timeout="${2:-30}" i
	tg_state_load "$state"
	for i in $(seq 1 $((timeout * 4))); do
		if tg_ws_serving "$WSPORT"; then
			return 0
		fi
		sleep 0.25
	done
	return 1
}

# Create the extension (idempotent).
tg_create_extension() {
	tg_psql "$1" -c "CREATE EXTENSION IF NOT EXISTS topgun"
}
