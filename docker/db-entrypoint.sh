#!/usr/bin/env bash
# Entrypoint of the paas database image: writes the settings that carry
# secrets (the Midtrans server key the background worker and the webhook
# check need) into $PGDATA/paas.secrets.conf (mode 600, read through
# include_if_exists) at every start, so that a rotated key takes effect on
# restart and no secret is ever on a command line; then hands over to the
# postgres image's own entrypoint.
set -euo pipefail
PGDATA=${PGDATA:-/var/lib/postgresql/data}
write_secrets() {
	[ -f "$PGDATA/PG_VERSION" ] || return 0
	umask 077
	{
		echo "# written by paas-db-entrypoint at every start; do not edit"
		if [ -n "${MIDTRANS_SERVER_KEY:-}" ]; then
			printf "paas.midtrans_server_key = '%s'\n" "${MIDTRANS_SERVER_KEY//\'/\'\'}"
			printf "paas.midtrans_is_production = %s\n" "${MIDTRANS_IS_PRODUCTION:-0}"
		fi
	} > "$PGDATA/paas.secrets.conf"
	chown postgres:postgres "$PGDATA/paas.secrets.conf" 2>/dev/null || true
	grep -q "include_if_exists = 'paas.secrets.conf'" "$PGDATA/postgresql.conf" ||
		echo "include_if_exists = 'paas.secrets.conf'" >> "$PGDATA/postgresql.conf"
}
write_secrets
export -f write_secrets
exec docker-entrypoint.sh "$@"
