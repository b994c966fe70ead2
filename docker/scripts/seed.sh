#!/usr/bin/env bash
# Seeds a running paas database through the api functions (idempotent).
# The first administrator comes from PAAS_ADMIN_EMAIL / PAAS_ADMIN_PASSWORD;
# without a password one is generated and printed once, never stored.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

psql_su -c "SELECT 1" >/dev/null
if [ -n "$(psql_su -Atc "SELECT 1 FROM pg_proc WHERE proname = 'seed_admin' AND pronamespace = 'api'::regnamespace")" ]; then
	email=${PAAS_ADMIN_EMAIL:-admin@paas.local}
	if [ -z "$(psql_su -Atc "SELECT 1 FROM paas.users WHERE role = 'ADMINISTRATOR' LIMIT 1")" ]; then
		pw=${PAAS_ADMIN_PASSWORD:-}
		generated=0
		if [ -z "$pw" ]; then
			pw="Pa$(openssl rand -hex 12)9"
			generated=1
		fi
		psql_su -v email="$email" -v pw="$pw" -c "SELECT api.seed_admin(:'email', :'pw')" >/dev/null
		[ "$generated" -eq 1 ] && echo "administrator created: $email / $pw  (shown once)"
	fi
fi
for f in "$(dirname "$0")"/../seed/*.sql; do
	[ -f "$f" ] && psql_su -f "$f" >/dev/null
done
exit 0
