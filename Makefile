# topgun — PGXS build.
#
#   make && make install       build and install the extension
#   make installcheck          pg_regress + pgTAP in a throwaway instance
#                              (must run as an unprivileged user; see scripts/test.sh)
#   make unit                  unit tests of the PostgreSQL-free modules
#   make fuzz FUZZ_SECONDS=N   libFuzzer targets, bounded run
#   make SANITIZE=1            AddressSanitizer + UBSan build of the extension

EXTENSION  = topgun
EXTVERSION = 1.2
PREVVERSION = 1.1
MODULE_big = topgun

SRCS = $(sort $(wildcard src/*.c src/*/*.c))
OBJS = $(SRCS:.c=.o)

DATA_built = $(EXTENSION)--$(EXTVERSION).sql $(EXTENSION)--$(PREVVERSION)--$(EXTVERSION).sql
# Earlier versions' install scripts (frozen) and the upgrade scripts from them.
DATA = $(sort $(wildcard src/sql/versions/$(EXTENSION)--*.sql))
EXTRA_CLEAN = $(DATA_built) build tmp_check results regression.diffs regression.out

# Regression suites: pg_regress files in sql/ (pgTAP suites are named pgtap_*).
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-config=test/regress.conf --temp-instance=tmp_check --load-extension=plpgsql

PG_CPPFLAGS = -Isrc -DNDEBUG -DTG_EXTVERSION='"$(EXTVERSION)"' -std=gnu11 -Wall -Wextra -Werror \
	-Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = -lwebsockets -lssl -lcrypto -licuuc

# make DEBUG=1: assertion checks of the sync server's invariants (queues,
# group commit, fan-out: TG_ASSERT in src/), off in release builds.  The
# sanitizer suite builds with it.
ifdef DEBUG
PG_CPPFLAGS := $(filter-out -DNDEBUG,$(PG_CPPFLAGS)) -DTG_DEBUG -O1 -g
endif

ifdef SANITIZE
PG_CPPFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SHLIB_LINK  += -fsanitize=address,undefined
endif

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Crude but safe header dependencies (PGXS tracks none without --enable-depend).
$(OBJS): $(wildcard src/*.h src/*/*.h)

# The install script is assembled from src/sql/NN_*.sql so that each module
# owns its own SQL objects.
$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard src/sql/*.sql))
	cat $^ > $@

# The upgrade script from the previous version, assembled the same way from
# src/sql/upgrade/$(EXTVERSION)/NN_*.sql (one part per module).
$(EXTENSION)--$(PREVVERSION)--$(EXTVERSION).sql: $(sort $(wildcard src/sql/upgrade/$(EXTVERSION)/*.sql))
	cat $^ > $@

# ---------------------------------------------------------------------------
# PostgreSQL-free modules (wire codec, JWT, string hash): unit tests and fuzzers.
PURE_SRCS = $(sort $(wildcard src/wire/*.c src/auth/*.c src/query/*.c) $(filter-out src/logic/pg_%.c,$(wildcard src/logic/*.c)) $(filter-out src/search/pg_%.c,$(wildcard src/search/*.c))) src/merkle/fnv.c src/merkle/delta_codec.c src/core/hlc_parse.c \
	src/metrics/metrics.c src/metrics/http.c src/exec/ratelimit.c
PURE_CFLAGS = -Isrc -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-missing-field-initializers -Wno-sign-compare
UNIT_TESTS = $(patsubst test/unit/%.c,build/unit/%,$(sort $(wildcard test/unit/test_*.c)))
FUZZERS    = $(patsubst fuzz/%.c,build/fuzz/%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_SECONDS ?= 30

build/unit/%: test/unit/%.c $(PURE_SRCS) $(wildcard src/wire/*.h src/auth/*.h src/query/*.h src/merkle/*.h src/core/hlc_parse.h src/logic/*.h src/search/*.h src/metrics/*.h src/exec/ratelimit.h test/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(PURE_CFLAGS) -fsanitize=address,undefined -fno-sanitize-recover=all -o $@ $< $(PURE_SRCS) -lssl -lcrypto -licuuc -lm

build/fuzz/%: fuzz/%.c $(PURE_SRCS)
	@mkdir -p $(dir $@)
	clang $(PURE_CFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $< $(PURE_SRCS) -lssl -lcrypto -licuuc -lm

.PHONY: unit fuzz
# Every program runs even when an earlier one fails; each prints
# "NAME: N passed, M failed" (scripts/test.sh adds them up).
unit: $(UNIT_TESTS) all
	@rc=0; for t in $(UNIT_TESTS); do echo "== $$t"; (cd test/unit && ../../$$t) || { echo "== $$t FAILED"; rc=1; }; done; \
	  echo "== build/unit/layout"; python3 test/layout/check_layout.py || { echo "== build/unit/layout FAILED"; rc=1; }; exit $$rc

# Each fuzzer runs for FUZZ_SECONDS; any crash, leak or timeout fails the
# target (its log is shown in full) and the reproducer lands in build/fuzz/.
fuzz: $(FUZZERS)
	@set -e; for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p build/corpus/$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  if $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
	       -artifact_prefix=build/fuzz/$$n- build/corpus/$$n fuzz/corpus/$$n > build/fuzz/$$n.log 2>&1; \
	  then tail -n 12 build/fuzz/$$n.log; \
	  else cat build/fuzz/$$n.log; echo "$$n FAILED"; exit 1; fi; done
