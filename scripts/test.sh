#!/usr/bin/env bash
#
# scripts/test.sh — README command 2 (and what .ci/run executes): install
# what is missing, build with -Werror, install, and run every test layer:
#
#   unit     make unit                      (PostgreSQL-free modules, ASan/UBSan)
#   regress  make installcheck              (pg_regress + pgTAP, temp instance, as postgres)
#   e2e      node --test test/e2e           (real cluster + sync worker, real WebSocket clients)
#   tap      prove test/t/*.pl              (PostgreSQL::Test::Cluster: worker lifecycle)
#   fuzz     make fuzz FUZZ_SECONDS=20      (libFuzzer, any crash fails)
#   sanitize scripts/sanitize.sh            (regress+e2e+tap again, ASan+UBSan build; root only)
#
# The summary has one line per suite with its own counts, then ends with the
# line "N passed, M failed", where N and M count individual tests across every
# layer: unit checks (each program prints "[NAME: ]N passed, M failed"),
# regress files plus the pgTAP assertions in their output, e2e tests (node
# --test TAP summary), TAP assertions (prove), fuzz targets, and the sanitize
# suite's own count (its nested test.sh) plus its "zero sanitizer reports"
# check.  A suite that fails without a countable failure (it did not start,
# crashed, timed out) counts as 1 failed.  Exits non-zero when anything
# failed.  A suite with no test files at all is reported as skipped.
#
# Environment:
#   TOPGUN_VECTORS   golden vectors (default <repo>/../shared/vectors)
#   FUZZ_SECONDS     per fuzzer (default 20)
#   TOPGUN_SUITES    space-separated subset to run (default: all)
#   TOPGUN_KEEP=1    keep the temporary directories for inspection
#   TOPGUN_E2E_CONF  one extra postgresql.conf line for the e2e cluster
#   TOPGUN_E2E_FILES e2e files to run (names without .test.js; default: all)
#   TOPGUN_TAP_FILES TAP files to run (names without .pl; default: all)
#                    (scripts/valgrind.sh lengthens the heartbeat timeout)
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$TG_REPO" || exit 1
export TOPGUN_VECTORS="${TOPGUN_VECTORS:-$(cd "$TG_REPO/.." && pwd)/shared/vectors}"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
SUITES="${TOPGUN_SUITES:-unit regress e2e tap fuzz sanitize}"
PGXS_DIR="$(cd "$(dirname "$(pg_config --pgxs 2>/dev/null || echo /usr/lib/postgresql/15/lib/pgxs/src/makefiles/pgxs.mk)")/../.." && pwd)"
PG_REGRESS_BIN="$PGXS_DIR/src/test/regress/pg_regress"
PG_PERL_LIB="$PGXS_DIR/src/test/perl"
OSUSER="$(tg_os_user)"

passed=0
failed=0
skipped=0
declare -a summary=()
WORK=""
# Individual test counts of the suite that just ran, set by its parser.
CP=0
CF=0

cleanup() {
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ -f "$WORK/e2e/cluster.env" ]; then
			tg_cluster_stop "$WORK/e2e" >/dev/null 2>&1 || true
		fi
		if [ "${TOPGUN_KEEP:-0}" = 1 ]; then
			tg_log "kept $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

banner() { printf '\n======== %s ========\n' "$*"; }

# record NAME pass|fail|skip SECONDS: add the suite's counts (CP, CF).
record() {
	local name="$1" status="$2" secs="$3"
	passed=$((passed + CP))
	failed=$((failed + CF))
	case "$status" in
		pass) summary+=("PASS  $name (${secs}s): $CP passed, $CF failed") ;;
		fail) summary+=("FAIL  $name (${secs}s): $CP passed, $CF failed") ;;
		skip) skipped=$((skipped + 1)); summary+=("SKIP  $name (no test files)") ;;
	esac
}

# ------------------------------------------------------------- counting
# Each parser reads a suite's saved output and sets CP / CF.

# make unit: "== build/unit/NAME" opens a program's section, its
# "[NAME: ]N passed, M failed" line gives the counts; a program that printed
# none (crashed, did not build) or failed with 0 failures counts 1 failed.
count_unit() {
	local line prog="" seen=0 bad=0 fl=0
	CP=0 CF=0
	while IFS= read -r line; do
		if [[ $line =~ ^==\ build/unit/[^\ ]+\ FAILED$ ]]; then
			bad=1
		elif [[ $line =~ ^==\ (build/unit/[^\ ]+)$ ]]; then
			count_unit_close "$prog" "$seen" "$bad" "$fl"
			prog="${BASH_REMATCH[1]}" seen=0 bad=0 fl=0
		elif [ -n "$prog" ] && [[ $line =~ ^([A-Za-z0-9_]+:\ )?([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
			CP=$((CP + BASH_REMATCH[2]))
			CF=$((CF + BASH_REMATCH[3]))
			fl="${BASH_REMATCH[3]}" seen=1
		fi
	done <"$1"
	count_unit_close "$prog" "$seen" "$bad" "$fl"
}
count_unit_close() {
	[ -n "$1" ] || return 0
	if [ "$2" = 0 ] || { [ "$3" = 1 ] && [ "$4" = 0 ]; }; then CF=$((CF + 1)); fi
}

# pg_regress: one test per file ("test NAME ... ok|FAILED"), plus the pgTAP
# assertions of that file's actual output ("ok N" / "not ok N" lines).
count_regress() {
	local out="$1" results="$2" line name
	CP=0 CF=0
	while IFS= read -r line; do
		[[ $line =~ ^(test\ |\ +)?([A-Za-z0-9_]+)\ +\.\.\.\ +(ok|FAILED|failed) ]] || continue
		name="${BASH_REMATCH[2]}"
		if [ "${BASH_REMATCH[3]}" = ok ]; then CP=$((CP + 1)); else CF=$((CF + 1)); fi
		if [ -f "$results/$name.out" ]; then
			CP=$((CP + $(grep -Ec '^ok [0-9]+' "$results/$name.out")))
			CF=$((CF + $(grep -Ec '^not ok [0-9]+' "$results/$name.out")))
		fi
	done <"$out"
}

# node --test (TAP reporter): the "# pass N" / "# fail N" / "# cancelled N"
# summary of each run (summed: the fallback runs one file at a time).
count_e2e() {
	CP=$(awk '/^# pass [0-9]+$/ { n += $3 } END { print n + 0 }' "$1")
	CF=$(awk '/^# (fail|cancelled) [0-9]+$/ { n += $3 } END { print n + 0 }' "$1")
}

# prove: "Files=F, Tests=N", "Failed P/F test programs. S/N subtests failed.",
# "Result: PASS|FAIL"; a failed program without a failed subtest (bad plan,
# died) counts 1 failed.
count_tap() {
	local total subfail progfail
	total=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$1" | tail -n 1)
	subfail=$(sed -nE 's/.* ([0-9]+)\/[0-9]+ subtests failed.*/\1/p' "$1" | tail -n 1)
	progfail=$(sed -nE 's/^Failed ([0-9]+)\/[0-9]+ test programs.*/\1/p' "$1" | tail -n 1)
	total=${total:-0} subfail=${subfail:-0} progfail=${progfail:-0}
	CP=$((total - subfail))
	CF=$subfail
	[ "$CF" -ge "$progfail" ] || CF=$progfail
	if [ "$CF" -eq 0 ] && grep -q '^Result: FAIL' "$1"; then CF=1; fi
}

# make fuzz: one test per target; a target that failed or never ran
# (the recipe stops at the first failure) counts failed.
count_fuzz() {
	local ntargets="$2" ran bad
	ran=$(grep -Ec '^== fuzz_[A-Za-z0-9_]+ ' "$1")
	bad=$(grep -Ec '^fuzz_[A-Za-z0-9_]+ FAILED$' "$1")
	CP=$((ran - bad))
	CF=$((ntargets - CP))
}

# scripts/sanitize.sh: the nested test.sh's own closing count, plus its
# "zero sanitizer reports" verdict as one test.
count_sanitize() {
	local last
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
	CP=0 CF=0
	if [ -n "$last" ]; then
		CP=${last%% passed*}
		CF=${last#*passed, }
		CF=${CF%% failed}
	fi
	if grep -q '^sanitize: FAILED: sanitizer reports found' "$1"; then
		CF=$((CF + 1))
	elif grep -q '^sanitize: PASSED' "$1"; then
		CP=$((CP + 1))
	fi
}

want() { [[ " $SUITES " == *" $1 "* ]]; }

# A private, cluster-user-owned working directory (the checkout itself may
# not be reachable by `postgres`, e.g. under /root).
workdir() {
	if [ -z "$WORK" ]; then
		WORK="$(mktemp -d /tmp/topgun-test.XXXXXX)"
		chmod 755 "$WORK"
		if tg_is_root; then chown "$OSUSER": "$WORK"; fi
	fi
}

# Copy of the tree (built objects included) owned by the cluster user.
TREE=""
tree_copy() {
	if [ -z "$TREE" ]; then
		workdir
		TREE="$WORK/tree"
		mkdir -p "$TREE"
		tar -C "$TG_REPO" --exclude=./.git --exclude=./.topgun --exclude=./test/e2e/node_modules \
			--exclude=./tmp_check --exclude=./results --exclude=./build/corpus \
			--exclude='./test/tmp_check' -cf - . | tar -C "$TREE" -xf -
		if tg_is_root; then chown -R "$OSUSER": "$TREE"; fi
	fi
}

# ---------------------------------------------------------------- suites
suite_unit() {
	if ! compgen -G "test/unit/test_*.c" >/dev/null; then
		SKIP=1
		return 0
	fi
	workdir
	timeout 900 bash -c 'cd "$1" && flock "$2" make unit' _ "$TG_REPO" "$TG_BUILD_LOCK" 2>&1 | tee "$WORK/unit.out"
	local rc="${PIPESTATUS[0]}"
	count_unit "$WORK/unit.out"
	return "$rc"
}

suite_regress() {
	if ! compgen -G "sql/*.sql" >/dev/null; then
		SKIP=1
		return 0
	fi
	tree_copy
	local rc=0 bindir=()
	# pg_regress starts the temp instance from $(bindir); follow TG_PG_BIN
	# when it points elsewhere (scripts/sanitize.sh uses a private copy).
	if [ "$TG_PG_BIN" != "$(pg_config --bindir 2>/dev/null)" ]; then
		bindir=(bindir="$TG_PG_BIN")
	fi
	tg_as_user "$OSUSER" env PATH="$TG_PG_BIN:$PATH" \
		timeout 1200 make -C "$TREE" installcheck "${bindir[@]}" 2>&1 | tee "$WORK/regress.out"
	rc="${PIPESTATUS[0]}"
	count_regress "$WORK/regress.out" "$TREE/results"
	if [ "$rc" -ne 0 ]; then
		if [ -f "$TREE/regression.diffs" ]; then
			echo "---- regression.diffs (first 400 lines) ----"
			head -n 400 "$TREE/regression.diffs"
			echo "---- end of regression.diffs ----"
		fi
		if [ -d "$TREE/tmp_check/log" ]; then
			echo "---- temp instance log (last 60 lines) ----"
			tail -n 60 "$TREE"/tmp_check/log/postmaster.log 2>/dev/null
		fi
	fi
	return "$rc"
}

suite_e2e() {
	if ! compgen -G "test/e2e/*.test.js" >/dev/null; then
		SKIP=1
		return 0
	fi
	[ -d "$TOPGUN_VECTORS/messages" ] || { echo "vectors not found at $TOPGUN_VECTORS (set TOPGUN_VECTORS)"; return 1; }
	workdir
	local state="$WORK/e2e" secret rc=0
	secret="e2e-$(openssl rand -hex 24)"
	# Small limits so that the oversized-frame, flood and slow-reader tests
	# are quick.  Documented in docs/testing.md.
	tg_cluster_init "$state" --secret "$secret" \
		--conf-line "topgun.max_message_bytes = 1048576" \
		--conf-line "topgun.invalid_message_budget = 20" \
		--conf-line "topgun.max_outbound_bytes = 1048576" \
		--conf-line "topgun.auth_timeout_ms = 10000" \
		--conf-line "log_line_prefix = '%m [%p] %b '" \
		--conf-line "log_min_messages = log" \
		${TOPGUN_E2E_CONF:+--conf-line "$TOPGUN_E2E_CONF"} || return 1
	tg_state_load "$state"
	if ! tg_cluster_start "$state"; then
		return 1
	fi
	tg_create_extension "$state" || rc=1
	if [ "$rc" -eq 0 ] && ! tg_wait_serving "$state" 30; then
		echo "the sync server did not serve WebSocket clients on 127.0.0.1:$WSPORT within 30 s"
		rc=1
	fi
	if [ "$rc" -eq 0 ]; then
		(cd test/e2e && timeout 600 npm ci --omit=optional --no-audit --no-fund --loglevel=error) || rc=1
	fi
	if [ "$rc" -eq 0 ]; then
		local conc=() rep=()
		if node --help 2>/dev/null | grep -q -- '--test-concurrency'; then
			conc=(--test-concurrency=1)
		fi
		# TAP on stdout whatever the terminal: its summary is counted
		if node --help 2>/dev/null | grep -q -- '--test-reporter'; then
			rep=(--test-reporter=tap)
		fi
		# Files run one after another (they share one server; the restart
		# test must not overlap the others).
		local files=()
		mapfile -t files < <(ls test/e2e/*.test.js | sort)
		if [ -n "${TOPGUN_E2E_FILES:-}" ]; then
			# a subset while developing: TOPGUN_E2E_FILES="37_locks 38_rejections"
			local want=() w
			for w in $TOPGUN_E2E_FILES; do want+=("test/e2e/${w%.test.js}.test.js"); done
			files=("${want[@]}")
		fi
		if [ "${#conc[@]}" -gt 0 ]; then
			TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" \
				TOPGUN_PG="$(tg_conninfo "$state")" \
				TOPGUN_JWT_SECRET="$secret" \
				TOPGUN_CLUSTER_DIR="$state" \
				TOPGUN_REPO="$TG_REPO" \
				timeout 1500 node --test "${conc[@]}" "${rep[@]}" "${files[@]}" 2>&1 | tee -a "$WORK/e2e.out"
			[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
		else
			local f
			for f in "${files[@]}"; do
				TOPGUN_WS_URL="ws://127.0.0.1:$WSPORT" \
					TOPGUN_PG="$(tg_conninfo "$state")" \
					TOPGUN_JWT_SECRET="$secret" \
					TOPGUN_CLUSTER_DIR="$state" \
					TOPGUN_REPO="$TG_REPO" \
					timeout 600 node --test "${rep[@]}" "$f" 2>&1 | tee -a "$WORK/e2e.out"
				[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
			done
		fi
	fi
	[ -f "$WORK/e2e.out" ] && count_e2e "$WORK/e2e.out"
	if [ "$rc" -ne 0 ]; then
		echo "---- server log $state/postgres.log (last 80 lines) ----"
		tail -n 80 "$state/postgres.log" 2>/dev/null
		echo "---- end of server log ----"
	fi
	tg_cluster_stop "$state" || true
	return "$rc"
}

suite_tap() {
	if ! compgen -G "test/t/*.pl" >/dev/null; then
		SKIP=1
		return 0
	fi
	tree_copy
	local rc=0 files=()
	mapfile -t files < <(cd "$TREE" && ls test/t/*.pl | sort)
	if [ -n "${TOPGUN_TAP_FILES:-}" ]; then
		# a subset while developing: TOPGUN_TAP_FILES="031_lock_crash"
		files=()
		local w
		for w in $TOPGUN_TAP_FILES; do files+=("test/t/${w%.pl}.pl"); done
	fi
	# The crash/restart tests drive real WebSocket clients (test/t/crash_clients.js,
	# built on the e2e helpers): give the tree copy the e2e node modules.
	if [ ! -d "$TREE/test/e2e/node_modules" ]; then
		if [ ! -d test/e2e/node_modules/ws ] || [ ! -d test/e2e/node_modules/msgpackr ]; then
			(cd test/e2e && timeout 600 npm ci --omit=optional --no-audit --no-fund --loglevel=error) || return 1
		fi
		cp -a test/e2e/node_modules "$TREE/test/e2e/node_modules"
		if tg_is_root; then chown -R "$OSUSER": "$TREE/test/e2e/node_modules"; fi
	fi
	mkdir -p "$WORK/portlock"
	if tg_is_root; then chown "$OSUSER": "$WORK/portlock"; fi
	(cd "$TREE" && tg_as_user "$OSUSER" env PATH="$TG_PG_BIN:$PATH" \
		PG_REGRESS="$PG_REGRESS_BIN" TESTDIR="$TREE/test" PG_TEST_PORT_DIR="$WORK/portlock" \
		TOPGUN_REPO="$TREE" \
		timeout 1200 prove -v -I "$PG_PERL_LIB" -I test/t "${files[@]}") 2>&1 | tee "$WORK/prove.out"
	rc="${PIPESTATUS[0]}"
	count_tap "$WORK/prove.out"
	if [ "$rc" -eq 0 ] && ! grep -q '^Result: PASS' "$WORK/prove.out"; then
		echo "tap: prove did not report 'Result: PASS'"
		rc=1
	fi
	if [ "$rc" -ne 0 ] && [ -d "$TREE/test/tmp_check/log" ]; then
		local f
		for f in "$TREE"/test/tmp_check/log/*.log; do
			[ -f "$f" ] || continue
			echo "---- $f (last 40 lines) ----"
			tail -n 40 "$f"
		done
	fi
	return "$rc"
}

suite_fuzz() {
	if ! compgen -G "fuzz/fuzz_*.c" >/dev/null; then
		SKIP=1
		return 0
	fi
	local targets=() f
	for f in fuzz/fuzz_*.c; do
		f="$(basename "$f" .c)"
		targets+=("build/fuzz/$f")
	done
	# Build under the shared lock; run without holding it.
	tg_make "${targets[@]}" || return 1
	workdir
	local out="$WORK/fuzz.out" rc=0 before
	before="$(ls -1 crash-* leak-* timeout-* oom-* 2>/dev/null | sort)"
	timeout $((FUZZ_SECONDS * ${#targets[@]} + 600)) make fuzz FUZZ_SECONDS="$FUZZ_SECONDS" 2>&1 | tee "$out"
	rc="${PIPESTATUS[0]}"
	# The fuzz recipe pipes each run through `tail`, so a crash may not
	# change make's status: look for the evidence as well.
	if grep -Eq 'ERROR: libFuzzer|ERROR: (Address|Leak|Memory)Sanitizer|runtime error:|Test unit written to|SUMMARY: (Address|Undefined|Leak)' "$out"; then
		echo "fuzz: crash detected (see above)"
		rc=1
	fi
	if [ "$(ls -1 crash-* leak-* timeout-* oom-* 2>/dev/null | sort)" != "$before" ]; then
		echo "fuzz: new crash artifacts in $TG_REPO:"
		ls -1 crash-* leak-* timeout-* oom-* 2>/dev/null
		rc=1
	fi
	if ! grep -q '^== fuzz_' "$out"; then
		echo "fuzz: no fuzzer ran"
		rc=1
	fi
	count_fuzz "$out" "${#targets[@]}"
	return "$rc"
}

# The whole regress/e2e/TAP run again against an ASan+UBSan build installed
# into a private copy of PostgreSQL (docs/reliability.md); any sanitizer
# report fails.  It needs root (it builds a private installation and runs the
# clusters as postgres).
suite_sanitize() {
	if ! tg_is_root; then
		echo "sanitize: needs root (run scripts/test.sh as root)"
		return 1
	fi
	workdir
	TOPGUN_KEEP=0 timeout 3000 bash "$TG_REPO/scripts/sanitize.sh" 2>&1 | tee "$WORK/sanitize.out"
	local rc="${PIPESTATUS[0]}"
	count_sanitize "$WORK/sanitize.out"
	return "$rc"
}

# ------------------------------------------------------------------ main
start_all=$(date +%s)
suite_failed=0
banner "dependencies"
tg_install_packages
banner "build"
t0=$(date +%s)
if ! tg_build_install; then
	CP=0 CF=1
	record build fail $(($(date +%s) - t0))
	printf '\n'
	printf '%s\n' "${summary[@]}"
	echo "build failed: no test suite was run"
	printf '%d passed, %d failed\n' "$passed" "$failed"
	exit 1
fi

for s in unit regress e2e tap fuzz sanitize; do
	want "$s" || continue
	banner "$s"
	t0=$(date +%s)
	SKIP=0 CP=0 CF=0
	"suite_$s"
	rc=$?
	secs=$(($(date +%s) - t0))
	# a suite that failed without a countable failure (did not start,
	# crashed, timed out) counts as one failed test
	if [ "$rc" -ne 0 ] && [ "$CF" -eq 0 ]; then CF=1; fi
	if [ "$SKIP" = 1 ] && [ "$rc" -eq 0 ]; then
		record "$s" skip "$secs"
	elif [ "$rc" -eq 0 ] && [ "$CF" -eq 0 ]; then
		record "$s" pass "$secs"
	else
		suite_failed=1
		record "$s" fail "$secs"
	fi
done

banner "summary ($(($(date +%s) - start_all))s)"
printf '%s\n' "${summary[@]}"
[ "$skipped" -gt 0 ] && echo "($skipped suite(s) skipped: no test files yet)"
printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ] && [ "$suite_failed" -eq 0 ]
