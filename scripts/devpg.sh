#!/usr/bin/env bash
#
# scripts/devpg.sh DIR — a private, relocated copy of the PostgreSQL 15
# installation under DIR, so that several checkouts (git worktrees) can build,
# install and test topgun at the same time without replacing each other's
# system-wide topgun.so.  Prints the environment to use with scripts/test.sh:
#
#   eval "$(bash scripts/devpg.sh /tmp/pg-mine)"
#   TOPGUN_SUITES="regress e2e" bash scripts/test.sh
#
# (scripts/sanitize.sh builds the same kind of copy, with ASan preloaded.)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DIR="${1:?usage: devpg.sh DIR}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
chmod 755 "$DIR"
SYS_BIN="$(tg_pg_bindir)"
SYS_SHARE="$("$SYS_BIN/pg_config" --sharedir)"
ROOT="$DIR/root"
PRIV_BIN="$ROOT$SYS_BIN"
if [ ! -x "$PRIV_BIN/postgres" ]; then
	mkdir -p "$ROOT$(dirname "$(dirname "$SYS_BIN")")" "$ROOT$(dirname "$SYS_SHARE")"
	cp -a "$(dirname "$SYS_BIN")" "$ROOT$(dirname "$(dirname "$SYS_BIN")")/"
	cp -a "$SYS_SHARE" "$ROOT$(dirname "$SYS_SHARE")/"
fi
[ "$("$PRIV_BIN/pg_config" --pkglibdir)" = "$ROOT$("$SYS_BIN/pg_config" --pkglibdir)" ] ||
	tg_die "the PostgreSQL copy is not relocatable"
echo "export DESTDIR='$ROOT' TG_PG_BIN='$PRIV_BIN' TG_BUILD_LOCK='$DIR/build.lock'"
