#!/usr/bin/env bash
#
# scripts/sanitize.sh — run the whole test suite (regress, e2e, TAP) against
# topgun built with AddressSanitizer + UndefinedBehaviorSanitizer
# (`make SANITIZE=1`) and fail on any sanitizer report.
#
#   sudo bash scripts/sanitize.sh            # about 5 minutes on 2 cores
#   SANITIZE_SUITES="e2e" sudo bash scripts/sanitize.sh
#   TOPGUN_KEEP=1 ...                         keep the work directory
#
# Nothing shared is touched: the sanitized library is built in a copy of the
# checkout and installed (DESTDIR) into a private, relocated copy of the
# PostgreSQL 15 installation under the work directory (PostgreSQL finds its
# lib/ and share/ relative to its own binary).  The system-wide topgun.so
# that other clusters use is never replaced, so there is nothing to restore.
#
# In that private copy bin/postgres is a wrapper that preloads the ASan
# runtime (the server binary itself is not instrumented, the runtime must be
# the first library loaded) and sets
#   ASAN_OPTIONS  detect_leaks=0 (PostgreSQL leaks by design at exit),
#                 abort_on_error=1, log_path=<work>/reports/asan
#   UBSAN_OPTIONS print_stacktrace=1, halt_on_error=1, log_path=<work>/reports/ubsan
# (the build also uses -fno-sanitize-recover=undefined).  Any file in
# reports/ — or a sanitizer line in a server log — fails the run.  Before the
# suites run, a check cluster proves that the worker process really maps the
# ASan runtime and the private, instrumented topgun.so.
set -uo pipefail
SRC_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib.sh
. "$SRC_REPO/scripts/lib.sh"

tg_is_root || tg_die "run as root (clusters run as postgres, files are chowned)"
SYS_BIN="$(tg_pg_bindir)"
SYS_SHARE="$("$SYS_BIN/pg_config" --sharedir)"
LIBASAN="$(gcc -print-file-name=libasan.so)"
[ -e "$LIBASAN" ] || tg_die "libasan not found (gcc -print-file-name=libasan.so)"
LIBASAN="$(readlink -f "$LIBASAN")"

SAN="$(mktemp -d /tmp/topgun-sanitize.XXXXXX)"
chmod 755 "$SAN"
cleanup() {
	if [ -f "$SAN/check/cluster.env" ]; then
		TG_PG_BIN="$PRIV_BIN" tg_cluster_stop "$SAN/check" >/dev/null 2>&1 || true
	fi
	if [ "${TOPGUN_KEEP:-0}" = 1 ]; then
		tg_log "kept $SAN"
	else
		rm -rf "$SAN"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. private PostgreSQL installation (same relative layout as the system one)
ROOT="$SAN/root"
PRIV_BIN="$ROOT$SYS_BIN"
mkdir -p "$ROOT$(dirname "$(dirname "$SYS_BIN")")" "$ROOT$(dirname "$SYS_SHARE")"
cp -a "$(dirname "$SYS_BIN")" "$ROOT$(dirname "$(dirname "$SYS_BIN")")/"
cp -a "$SYS_SHARE" "$ROOT$(dirname "$SYS_SHARE")/"
[ "$("$PRIV_BIN/pg_config" --pkglibdir)" = "$ROOT$("$SYS_BIN/pg_config" --pkglibdir)" ] ||
	tg_die "the PostgreSQL copy is not relocatable ($("$PRIV_BIN/pg_config" --pkglibdir))"

REPORTS="$SAN/reports"
mkdir -p "$REPORTS"
chown postgres: "$REPORTS"
# Preloading the ASan runtime into the (uninstrumented) Debian binaries
# deadlocks at startup: constructors of libraries such as p11-kit (pulled in
# through libldap -> gnutls) call newlocale()/bindtextdomain() before ASan is
# initialised; their first malloc() initialises ASan inside glibc's locale
# locks, which then stay held, and the next bindtextdomain() in main() (or
# freelocale() at exit) waits forever.  A tiny second preload wraps those
# glibc entry points and initialises ASan before entering them.
SHIM="$SAN/asan_early_init.so"
cat > "$SAN/asan_early_init.c" <<'SHIM_EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libintl.h>
#include <locale.h>

extern void __asan_init(void);

#define WRAP(ret, name, params, args) \
ret name params \
{ \
	static ret (*real) params; \
	__asan_init(); \
	if (!real) \
		real = (ret (*) params) dlsym(RTLD_NEXT, #name); \
	return real args; \
}
WRAP(locale_t, newlocale, (int mask, const char *loc, locale_t base), (mask, loc, base))
WRAP(char *, setlocale, (int cat, const char *loc), (cat, loc))
WRAP(char *, bindtextdomain, (const char *d, const char *dir), (d, dir))
WRAP(char *, bind_textdomain_codeset, (const char *d, const char *cs), (d, cs))
WRAP(char *, textdomain, (const char *d), (d))
SHIM_EOF
gcc -shared -fPIC -O2 -Wall -o "$SHIM" "$SAN/asan_early_init.c" -ldl || tg_die "cannot build $SHIM"
timeout 20 env LD_PRELOAD="$LIBASAN $SHIM" ASAN_OPTIONS=detect_leaks=0 "$SYS_BIN/postgres" -V >/dev/null ||
	tg_die "postgres does not start with the ASan runtime preloaded"

mv "$PRIV_BIN/postgres" "$PRIV_BIN/postgres.bin"
# The wrapper keeps its own path as argv[0]: PostgreSQL records that path in
# postmaster.opts, and `pg_ctl restart` starts exactly that program again.
cat > "$PRIV_BIN/postgres" <<EOF
#!/bin/bash
# ASan runtime first; see scripts/sanitize.sh
LD_PRELOAD="$LIBASAN $SHIM\${LD_PRELOAD:+ \$LD_PRELOAD}"
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$REPORTS/asan:\${ASAN_OPTIONS:-}"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$REPORTS/ubsan:\${UBSAN_OPTIONS:-}"
export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
exec -a "\$0" "\$(dirname "\$0")/postgres.bin" "\$@"
EOF
chmod 755 "$PRIV_BIN/postgres"

# 2. sanitized build in a copy of the checkout, installed into the copy
TREE="$SAN/tree"
mkdir -p "$TREE"
tar -C "$SRC_REPO" --exclude=./.git --exclude=./.topgun --exclude=./tmp_check --exclude=./results \
	--exclude=./build --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . | tar -C "$TREE" -xf -
export SANITIZE=1 DEBUG=1 DESTDIR="$ROOT"
tg_log "building with SANITIZE=1 DEBUG=1 in $TREE"
(cd "$TREE" && make -s clean >/dev/null 2>&1; make -j2 >"$SAN/build.log" 2>&1) ||
	{ tail -n 60 "$SAN/build.log"; tg_die "sanitized build failed"; }
(cd "$TREE" && make install >>"$SAN/build.log" 2>&1) || { tail -n 30 "$SAN/build.log"; tg_die "install failed"; }
SO="$("$PRIV_BIN/pg_config" --pkglibdir)/topgun.so"
syms="$(nm -D "$SO")"
grep -q '__asan_report' <<<"$syms" || tg_die "$SO is not instrumented with ASan"
grep -q '__ubsan_handle' <<<"$syms" || tg_die "$SO is not instrumented with UBSan"

# 3. the sanitized worker really runs: check cluster
export TG_PG_BIN="$PRIV_BIN"
tg_cluster_init "$SAN/check" >/dev/null
tg_cluster_start "$SAN/check" || tg_die "the check cluster did not start under ASan"
tg_create_extension "$SAN/check" >/dev/null
tg_wait_serving "$SAN/check" 60 || tg_die "sanitized worker not serving"
wpid="$(tg_psql "$SAN/check" -Atc "SELECT topgun.worker_pid()")"
maps="$(cat "/proc/$wpid/maps")"
grep -q "$LIBASAN" <<<"$maps" || tg_die "worker $wpid does not map $LIBASAN"
grep -q "$SO" <<<"$maps" || tg_die "worker $wpid does not map $SO"
tg_log "worker $wpid runs $SO with $(basename "$LIBASAN") preloaded"
tg_cluster_stop "$SAN/check"

# 4. the suites, through scripts/test.sh of the copy, against the private install
export TG_REPO="$TREE" TG_BUILD_LOCK="$SAN/build.lock"
# (not TOPGUN_SUITES: scripts/test.sh may run this script as its "sanitize" suite)
export TOPGUN_SUITES="${SANITIZE_SUITES:-regress e2e tap}"
export TOPGUN_VECTORS="${TOPGUN_VECTORS:-$(cd "$SRC_REPO/.." && pwd)/shared/vectors}"
chown -R postgres: "$SAN/check" 2>/dev/null || true
rc=0
timeout 3600 bash "$TREE/scripts/test.sh" 2>&1 | tee "$SAN/test.out"
rc="${PIPESTATUS[0]}"

# 5. verdict: sanitizer reports
found=0
if compgen -G "$REPORTS/*" >/dev/null; then
	for f in "$REPORTS"/*; do
		echo "==== sanitizer report $f"
		head -n 80 "$f"
	done
	found=1
fi
if grep -Eq 'ERROR: AddressSanitizer|runtime error:|SUMMARY: (Address|Undefined)' "$SAN/test.out"; then
	echo "sanitizer output in the test log (see above)"
	found=1
fi
echo
if [ "$found" -ne 0 ]; then
	echo "sanitize: FAILED: sanitizer reports found"
	exit 1
fi
if [ "$rc" -ne 0 ]; then
	echo "sanitize: FAILED: the suite failed under the sanitized build (no sanitizer report)"
	exit 1
fi
echo "sanitize: PASSED: suites [$TOPGUN_SUITES] passed with ASan+UBSan, zero sanitizer reports"
