# paas: PGXS build of the extension (extension/ + bgworker/ -> paas.so),
# the CivetWeb gateway (httpd/), and the project's lifecycle targets.
#
#   make            build paas.so, the install script and httpd
#   make install    install the extension into the server's directories
#   make run        install packages, build, start PostgreSQL + httpd (foreground)
#   make test       the whole suite in a throw-away cluster (pgTAP, worker, HTTP, ASan)
#   make bench      throughput figures (wrk + pgbench), see docs/performance.md

EXTENSION   = paas
EXTVERSION  = 0.3.0
MODULE_big  = paas
OBJS        = extension/paas.o \
              extension/fsm.o \
              extension/ledger.o \
              extension/nodes.o \
              extension/quantity.o \
              extension/billing.o \
              extension/subscriptions.o \
              extension/instances.o \
              bgworker/worker.o \
              bgworker/reconcile.o \
              bgworker/parallel.o \
              bgworker/provisioner.o

# The install script is assembled from one file per business area, in name
# order, so that each area's SQL sits next to its peers and never in one
# monolith.  Released versions are frozen in sql/versions/ (paas--X.sql)
# with their upgrade scripts (paas--X--Y.sql); tests/upgrade/check.sh proves
# that each one, updated, equals a fresh install.
SQL_PARTS   = $(sort $(wildcard sql/parts/*.sql))
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql
DATA        = $(wildcard sql/versions/*.sql)

PG_CONFIG  ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/extension -DPAAS_VERSION=\"$(EXTVERSION)\"
SHLIB_LINK  = -lcurl
EXTRA_CLEAN = $(DATA_built) httpd/paas-httpd httpd/paas-httpd-asan agent/paas-agent

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object includes paas.h (and the status machines fsm.h): rebuild
# them when a header changes
$(OBJS): extension/paas.h extension/fsm.h
extension/paas.o extension/instances.o bgworker/provisioner.o: extension/instances.h

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

# The control file carries the same version: a mismatch stops the build.
$(OBJS): paas.control
paas.control: Makefile
	@grep -q "^default_version = '$(EXTVERSION)'$$" $@ || \
		{ echo "paas.control: default_version is not $(EXTVERSION) (Makefile EXTVERSION)" >&2; exit 1; }

all: httpd agent

.PHONY: httpd agent httpd-asan run test check-asan bench deps stop
httpd:
	$(MAKE) -C httpd

agent:
	$(MAKE) -C agent

httpd-asan:
	$(MAKE) -C httpd asan

deps:
	bash docker/scripts/install-deps.sh

run: deps
	bash docker/scripts/run.sh

test: deps
	bash tests/run.sh

check-asan: deps
	PAAS_ASAN=1 bash tests/run.sh

bench: deps
	bash bench/run.sh
