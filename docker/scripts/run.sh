#!/usr/bin/env bash
# `make run`: build, start PostgreSQL (extension + pg_cron + worker) in
# .data/, seed, and serve httpd on 127.0.0.1:8080 in the foreground.
# Ctrl-C stops both.  A second run reuses the cluster and its data.
set -euo pipefail
. "$(dirname "$0")/stack.sh"

# The cluster lives in .data/ of the checkout; when the postgres user cannot
# reach the checkout (a private home directory), in /var/lib/paas/<checkout>.
DATA_DIR=$STACK_ROOT/.data
mkdir -p "$DATA_DIR"
if ! pg_can_reach "$DATA_DIR"; then
	DATA_DIR=/var/lib/paas/$(printf '%s' "$STACK_ROOT" | sha256sum | cut -c1-12)
	mkdir -p "$DATA_DIR"
	chmod 0755 /var/lib/paas "$DATA_DIR"
	echo "cluster directory: $DATA_DIR (the postgres user cannot reach $STACK_ROOT)"
fi
export PAAS_PGDATA=${PAAS_PGDATA:-$DATA_DIR/pg}
export PAAS_PGSOCK=${PAAS_PGSOCK:-$DATA_DIR/run}
export PAAS_PGPORT=${PAAS_PGPORT:-5433}
export PAAS_PGLISTEN=${PAAS_PGLISTEN:-127.0.0.1}
export PAAS_HTTP_LISTEN=${PAAS_HTTP_LISTEN:-127.0.0.1:8080}

stack_build
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
