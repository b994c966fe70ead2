# paas: PGXS build of the extension (extension/ + bgworker/ -> paas.so),
# the CivetWeb gateway (httpd/), and the project's lifecycle targets.
#
#   make            build paas.so, the install script and httpd
#   make install    install the extension into the server's directories
#   make run        install packages, build, start PostgreSQL + httpd and keep
#                   them running (foreground; one instance per data directory)
#   make stop       stop the instance `make run` runs (also one in the background)
#   make status     what runs: pids, ports, URL, data directory, logs
#   make role-login ROLE=paas_owner|paas_bi [ROTATE=1]
#                   a password login for the DBA or the BI role; prints psql's
#   make test       the whole suite in a throw-away cluster (pgTAP, worker, HTTP, ASan)
#   make bench      throughput figures (wrk + pgbench), see docs/performance.md
#   make import-original ORIGINAL="<conninfo>" [DRY_RUN=1] [LINK_EXISTING=1]
#                   import the original system's database (docs/migration.md)

EXTENSION   = paas
EXTVERSION  = 0.3.0
MODULE_big  = paas
OBJS        = extension/paas.o \
              extension/logging.o \
              extension/accounts.o \
              extension/fsm.o \
              extension/ledger.o \
              extension/nodes.o \
              extension/quantity.o \
              extension/billing.o \
              extension/subscriptions.o \
              extension/notify.o \
              extension/instances.o \
              extension/node_actions.o \
              httpd/invoice_layout.o \
              bgworker/bgw.o \
              bgworker/worker.o \
              bgworker/reconcile.o \
              bgworker/parallel.o \
              bgworker/mailer.o \
              bgworker/provisioner.o \
              bgworker/k8s_client.o \
              bgworker/nodesync.o \
              bgworker/nodedrain.o

# The install script is assembled from one file per business area, in name
# order, so that each area's SQL sits next to its peers and never in one
# monolith.  sql/versions/ holds the upgrade scripts (paas--X--Y.sql); the
# install scripts of released versions are not kept: tests/upgrade/check.sh
# rebuilds each release from its commit (tests/upgrade/releases) and proves
# that it, updated, equals a fresh install.
SQL_PARTS   = $(sort $(wildcard sql/parts/*.sql))
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql
DATA        = $(wildcard sql/versions/*.sql)

PG_CONFIG  ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/extension -I$(srcdir)/httpd -I$(srcdir)/bgworker -DPAAS_VERSION=\"$(EXTVERSION)\"
SHLIB_LINK  = -lcurl -lhpdf
EXTRA_CLEAN = $(DATA_built) httpd/paas-httpd httpd/paas-httpd-asan agent/paas-agent

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object includes paas.h (and the status machines fsm.h): rebuild
# them when a header changes
$(OBJS): extension/paas.h extension/fsm.h extension/notify.h httpd/invoice_layout.h
extension/paas.o extension/instances.o extension/node_actions.o bgworker/provisioner.o bgworker/k8s_client.o bgworker/nodesync.o bgworker/nodedrain.o: extension/instances.h
extension/paas.o extension/node_actions.o bgworker/k8s_client.o bgworker/nodesync.o bgworker/nodedrain.o: bgworker/k8s_client.h

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

# The control file carries the same version: a mismatch stops the build.
$(OBJS): paas.control
paas.control: Makefile
	@grep -q "^default_version = '$(EXTVERSION)'$$" $@ || \
		{ echo "paas.control: default_version is not $(EXTVERSION) (Makefile EXTVERSION)" >&2; exit 1; }

all: httpd agent

.PHONY: httpd agent httpd-asan run stop status role-login test check-asan bench deps images installcheck import-original
httpd:
	$(MAKE) -C httpd

agent:
	$(MAKE) -C agent PAAS_VERSION=$(EXTVERSION)

httpd-asan:
	$(MAKE) -C httpd asan

deps:
	bash docker/scripts/install-deps.sh

# run.sh installs the packages itself (install-deps.sh), once it knows that
# no other instance runs from the same data directory.
run:
	bash docker/scripts/run.sh

stop:
	@bash docker/scripts/run.sh stop

# (run.sh status exits 3 when nothing runs: not an error of make's)
status:
	@bash docker/scripts/run.sh status || [ $$? -eq 3 ]

# A password login for a role of the running instance (docs/operations.md).
role-login:
	@ROTATE="$(ROTATE)" bash docker/scripts/role-login.sh "$(ROLE)"

test: deps
	bash tests/run.sh

check-asan: deps
	PAAS_ASAN=1 bash tests/run.sh

bench: deps
	bash bench/run.sh

# The original system's database into the cluster of `make run`
# (docker/scripts/import-original.sh, docs/migration.md).
import-original:
	@[ -n '$(subst ','\'',$(ORIGINAL))' ] || { echo 'usage: make import-original ORIGINAL="host=... dbname=... user=..." [DRY_RUN=1] [LINK_EXISTING=1]' >&2; exit 2; }
	@bash docker/scripts/import-original.sh '$(subst ','\'',$(ORIGINAL))' $(if $(DRY_RUN),--dry-run) $(if $(LINK_EXISTING),--link-existing)

# Container images, tagged with the version (needs a Docker engine).
images:
	docker build -f docker/Dockerfile --target db --build-arg VERSION=$(EXTVERSION) -t paas-db:$(EXTVERSION) .
	docker build -f docker/Dockerfile --target httpd --build-arg VERSION=$(EXTVERSION) -t paas-httpd:$(EXTVERSION) .
	docker build -f agent/Dockerfile --build-arg VERSION=$(EXTVERSION) -t paas-agent:$(EXTVERSION) agent

# The pgTAP suite against an installed server (PGXS convention): the
# extension must be installed and the server reachable with the libpq
# environment (PGHOST, PGPORT, PGDATABASE of a database that has it).
installcheck:
	pg_prove --ext .sql -d "$${PGDATABASE:-paas}" $$(ls tests/pgtap/*.sql | sort)
