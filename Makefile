# wm_perf: PGXS build plus the project's `demo`, `test` and `bench` targets.

EXTENSION = wm_perf
MODULE_big = wm_perf
PGFILEDESC = "wm_perf - cached statistics, radius lookups and Redis invalidation"

# One source of the version: the control file.
EXTVERSION = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" $(EXTENSION).control)

OBJS = \
	src/wm_perf.o \
	src/advice.o \
	src/cache.o \
	src/ddl.o \
	src/maintain.o \
	src/guc.o \
	src/metrics.o \
	src/redis.o \
	src/shmem.o \
	src/spatial.o \
	src/spi_util.o \
	src/standby.o \
	src/stats.o \
	src/trigger.o \
	src/worker.o \
	src/xact.o

DATA = \
	sql/wm_perf--1.0.sql \
	sql/wm_perf--1.1.sql \
	sql/wm_perf--1.0--1.1.sql

DOCS = \
	docs/concurrent_indexes.sql \
	docs/postgres_exporter.yaml

PG_CPPFLAGS += -I$(srcdir)/src -DWM_PERF_VERSION=\"$(EXTVERSION)\"
SHLIB_LINK += -lhiredis

# -Werror unless WERROR=0 is given (escape hatch for new compilers).
WERROR ?= 1
PG_CFLAGS += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
ifeq ($(WERROR),1)
PG_CFLAGS += -Werror
endif
# e.g. -DUSE_ASSERT_CHECKING, which `make test` builds with.
PG_CFLAGS += $(WM_EXTRA_CFLAGS)

# pg_regress does not CASCADE: load the requirements explicitly.
REGRESS = setup attach stats spatial plans invalidation hardening ddl maintained maintained_partitions guc errors privileges advice advice_missing health
REGRESS_OPTS = --load-extension=postgis --load-extension=btree_gist --load-extension=wm_perf
# The same server restarted without Redis and without shared_preload_libraries.
REGRESS_NO_REDIS = setup attach no_redis spatial plans errors advice_missing

ISOLATION = invalidation_commit invalidation_race local_copies single_flight snapshot_partitions config_reload maintained_races advice_locks
ISOLATION_OPTS = --load-extension=postgis --load-extension=btree_gist --load-extension=wm_perf

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# Prefer the PostgreSQL 15 that Debian installs; any pg_config may be given.
ifneq ($(wildcard /usr/lib/postgresql/15/bin/pg_config),)
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
else
PG_CONFIG ?= pg_config
endif
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

# On a fresh machine there is no PGXS yet: only `demo` and `test` (which
# install it first) are usable then.
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)

# PGXS tracks no header dependencies: every object depends on every header.
$(OBJS): src/wm_perf.h src/redis.h src/compat.h
else
all install installcheck:
	@echo "PostgreSQL server development files are missing: run 'make test' or 'make demo'" >&2
	@exit 1
endif

# Individual suites against an already running server (PGHOST/PGPORT).
.PHONY: regresscheck regresscheck-no-redis isolationcheck tapcheck nodecheck test demo bench bench-steady bench-scaleout valgrind compat-check dist deb

regresscheck:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

regresscheck-no-redis:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS_NO_REDIS)

isolationcheck:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)

tapcheck:
	$(prove_installcheck)

# examples/node against its own cluster and Redis (root; wm_perf installed
# into WM_PG_BIN's installation, /usr/lib/postgresql/15/bin by default).
nodecheck:
	bash test/lib/run_node.sh

test:
	bash test/lib/run_tests.sh

demo:
	bash test/lib/run_demo.sh

# The release archive for PGXN, from git (HEAD; untracked files never get in).
DIST_OUT ?= .
dist:
	git archive --format=zip --prefix=$(EXTENSION)-$(EXTVERSION)/ -o $(DIST_OUT)/$(EXTENSION)-$(EXTVERSION).zip HEAD
	@echo $(DIST_OUT)/$(EXTENSION)-$(EXTVERSION).zip

# Debian packages postgresql-<v>-wm-perf (debian/, pg_buildext) in build/deb.
deb:
	bash test/lib/build_deb.sh

# Every source file compiled (-Werror) against PostgreSQL 17's headers, and
# its symbols checked against 17's postgres binary (Debian 13 packages).
compat-check:
	bash test/lib/compat_check.sh

# The regress and isolation suites under valgrind (slow; not in `make test`).
valgrind:
	bash test/lib/run_valgrind.sh

bench:
	bash bench/run_bench.sh

# Statistics under a steady stream of pickups, and the writers' cost (issue 12).
bench-steady:
	bash bench/steady.sh

# Hit and miss latency through Sentinel and Cluster against one Redis (issue 14).
bench-scaleout:
	bash bench/scaleout.sh
