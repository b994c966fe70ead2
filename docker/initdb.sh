#!/usr/bin/env bash
# Container first-start hook (/docker-entrypoint-initdb.d): the same database
# set-up and seed as `make run`, through docker/scripts/lib.sh.
set -euo pipefail
export PAAS_PGSOCK=/var/run/postgresql PAAS_PGPORT=5432 PAAS_DB=paas
. /src/docker/scripts/lib.sh
: "${PAAS_DB_PASSWORD:?PAAS_DB_PASSWORD must be set}"
db_setup "$PAAS_DB_PASSWORD"
# the first start: the cluster was just created, write its secret settings
# (docker/db-entrypoint.sh does it again at every later start)
write_secrets
bash /src/docker/scripts/seed.sh
