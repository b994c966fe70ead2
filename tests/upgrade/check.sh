#!/usr/bin/env bash
# tests/upgrade/check.sh: every released version, brought up to the current
# one with ALTER EXTENSION paas UPDATE, must define exactly what a fresh
# install of the current version defines (tests/upgrade/fingerprint.sql),
# and keep its data.  Runs against the cluster of docker/scripts/lib.sh's
# environment (PAAS_PGSOCK, PAAS_PGPORT); called by tests/run.sh.
#   tests/upgrade/check.sh          check every release of tests/upgrade/releases
#                                   (rebuilt from git by old_versions.sh)
#   KEEP=1 tests/upgrade/check.sh   leave the databases for a look
set -euo pipefail
. "$(dirname "$0")/../../docker/scripts/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CURRENT=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/paas.control")
WORK=$(mktemp -d)
chmod 0755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
cp "$ROOT/tests/upgrade/fingerprint.sql" "$WORK/"
chmod 0644 "$WORK/fingerprint.sql"

db() { psql_su -d "$1" -v ON_ERROR_STOP=1 -qAtX "${@:2}"; }
fresh_db() {
	psql_su -d postgres -qAtX -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1 OWNER paas_owner" >/dev/null
}

fresh_db paas_upgrade_new
db paas_upgrade_new -c "SET client_min_messages = warning" -c "CREATE EXTENSION paas CASCADE"
db paas_upgrade_new -f "$WORK/fingerprint.sql" > "$WORK/new.txt"

status=0
for old in $(bash "$ROOT/tests/upgrade/old_versions.sh"); do
	[ "$old" = "$CURRENT" ] && continue
	fresh_db paas_upgrade_old
	db paas_upgrade_old -c "SET client_min_messages = warning" -c "CREATE EXTENSION paas VERSION '$old' CASCADE"
	# data written by the old version must survive the update and work after it
	db paas_upgrade_old <<'SQL'
INSERT INTO paas.users (email, name, password_hash) VALUES ('upgrade@example.com', 'Upgrade', 'x');
INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage,
	status, is_ready, current_pods, cpu_capacity_m)
VALUES ('upgrade-node', 'upgrade-node.local', '10.77.0.1', 4, 'x86', '8Gi', '100Gi', 'ACTIVE', true, 3, 4000);
-- as if wallets had taken the account ids after the install rows: an account
-- the update adds must still get the fixed id of a fresh install
SELECT FROM setval(pg_get_serial_sequence('paas.ledger_accounts', 'id'), 500);
SQL
	db paas_upgrade_old -c "SET client_min_messages = warning" -c "ALTER EXTENSION paas UPDATE"
	got=$(db paas_upgrade_old -c "SELECT extversion FROM pg_extension WHERE extname = 'paas'")
	if [ "$got" != "$CURRENT" ]; then
		echo "upgrade from $old: ended at version $got, not $CURRENT" >&2
		status=1
		continue
	fi
	hb=$(db paas_upgrade_old -c "SELECT api.workers_heartbeat('{\"nodeName\": \"upgrade-node\", \"cpuUsage\": \"250m\"}') ->> 'status'")
	pods=$(db paas_upgrade_old -c "SELECT current_pods || '/' || cpu_used_m FROM paas.nodes WHERE name = 'upgrade-node'")
	if [ "$hb" != "ACTIVE" ] || [ "$pods" != "3/250" ]; then
		echo "upgrade from $old: the node written before the update reads '$hb' '$pods'" >&2
		status=1
	fi
	db paas_upgrade_old -c "DELETE FROM paas.node_transitions; DELETE FROM paas.nodes; DELETE FROM paas.users"
	db paas_upgrade_old -f "$WORK/fingerprint.sql" > "$WORK/old-$old.txt"
	if ! diff -u "$WORK/new.txt" "$WORK/old-$old.txt" > "$WORK/diff-$old.txt"; then
		echo "upgrade from $old differs from a fresh $CURRENT install (- fresh, + upgraded):" >&2
		head -200 "$WORK/diff-$old.txt" >&2
		status=1
	else
		echo "upgrade $old -> $CURRENT: $(wc -l < "$WORK/new.txt") catalog rows identical to a fresh install, data kept"
	fi
done
if [ -z "${KEEP:-}" ]; then
	psql_su -d postgres -qAtX -c "DROP DATABASE IF EXISTS paas_upgrade_new" -c "DROP DATABASE IF EXISTS paas_upgrade_old" >/dev/null
fi
exit $status
