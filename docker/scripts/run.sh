#!/usr/bin/env bash
# `make run`: build, start PostgreSQL (extension + pg_cron + worker) in
# .data/, seed, and serve httpd on 127.0.0.1:8080 in the foreground.
# Ctrl-C stops both.  A second run reuses the cluster and its data.
set -euo pipefail
. "$(dirname "$0")/stack.sh"

export PAAS_PGDATA=${PAAS_PGDATA:-$STACK_ROOT/.data/pg}
export PAAS_PGSOCK=${PAAS_PGSOCK:-$STACK_ROOT/.data/run}
export PAAS_PGPORT=${PAAS_PGPORT:-5433}
export PAAS_PGLISTEN=${PAAS_PGLISTEN:-127.0.0.1}
export PAAS_HTTP_LISTEN=${PAAS_HTTP_LISTEN:-127.0.0.1:8080}

stack_build
mkdir -p "$STACK_ROOT/.data"
stack_secrets "$STACK_ROOT/.data/secrets.env"
# Midtrans: without a server key top-ups answer 502 GATEWAY_ERROR.  The
# background worker reads the key from the cluster's own configuration.
if [ -n "${MIDTRANS_SERVER_KEY:-}" ]; then
	export PAAS_PG_EXTRA_CONF="paas.midtrans_server_key = '$MIDTRANS_SERVER_KEY'
paas.midtrans_is_production = ${MIDTRANS_IS_PRODUCTION:-0}"
fi
trap 'echo; echo "stopping..."; stack_down' EXIT
trap 'exit 0' INT TERM
stack_db_up
bash "$STACK_ROOT/docker/scripts/seed.sh"

"$STACK_ROOT/httpd/paas-httpd" &
HTTPD_PID=$!
echo "paas is up: http://$PAAS_HTTP_LISTEN/api/v1/status  (database: psql -h $PAAS_PGSOCK -p $PAAS_PGPORT -U postgres $PAAS_DB)"
wait "$HTTPD_PID"
