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
		# The statement carries the password: the server must not log it
		# (a slow statement, or an error, is logged with its text).
		psql_su -v email="$email" -v pw="$pw" >/dev/null <<'SQL'
SET log_min_duration_statement = -1;
SET log_min_error_statement = panic;
SET log_statement = none;
SELECT api.seed_admin(:'email', :'pw');
SQL
		[ "$generated" -eq 1 ] && echo "administrator created: $email / $pw  (shown once)"
	fi
fi
# The cluster join token of worker nodes (rotatable: more can be added).
if [ -n "${PAAS_NODE_JOIN_TOKEN:-}" ] && [ -n "$(psql_su -Atc "SELECT 1 FROM pg_proc WHERE proname = 'workers_join_token_add' AND pronamespace = 'api'::regnamespace")" ]; then
	psql_su -v tok="$PAAS_NODE_JOIN_TOKEN" >/dev/null <<'SQL'
SET log_min_duration_statement = -1;
SET log_min_error_statement = panic;
SET log_statement = none;
SELECT api.workers_join_token_add(:'tok', 'seeded by make run');
SQL
fi
# Renewals of subscriptions run from pg_cron (visible in cron.job).
if [ -n "$(psql_su -Atc "SELECT 1 FROM pg_proc WHERE proname = 'subscriptions_schedule_renewals' AND pronamespace = 'api'::regnamespace")" ]; then
	psql_su -c "SELECT api.subscriptions_schedule_renewals()" >/dev/null
fi
for f in "$(dirname "$0")"/../seed/*.sql; do
	[ -f "$f" ] && psql_su -f "$f" >/dev/null
done
exit 0
