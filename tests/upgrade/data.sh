#!/usr/bin/env bash
# tests/upgrade/data.sh: each release (tests/upgrade/releases), built whole
# from its commit (its SQL and its paas.so), writes a realistic data set
# through its own functions (tests/upgrade/dataset.sql: thousands of
# accounts, funded wallets, subscriptions, invoices, renewals, nodes); then
# the current build replaces it and ALTER EXTENSION paas UPDATE must keep
# every row, keep the ledger balanced and leave the data usable by the
# current functions (a login, a charge, a renewal, a heartbeat).
# Runs in a throw-away cluster and installation of its own (another port),
# so the caller's cluster is never touched; called by tests/upgrade/check.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/docker/scripts/lib.sh"
. "$ROOT/docker/scripts/stack.sh"
WORK=$(mktemp -d)
chmod 0755 "$WORK"
export PAAS_PGDATA=$WORK/pg PAAS_PGSOCK=$WORK/sock PAAS_PGLISTEN='' PAAS_DB=paas_upgrade_data
PAAS_PGPORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PAAS_PGPORT
export PAAS_PG_EXTRA_CONF="paas.midtrans_server_key = 'SB-Mid-server-upgrade-$(rand_hex 8)'
paas.renewal_workers = 2"
unset PG_BIN PAAS_PG_PREFIX
stack_private_pg "$WORK/inst" >/dev/null
trap 'cluster_stop; rm -rf "$WORK"' EXIT
LIBDIR=$PAAS_PG_PREFIX$(pg_config --pkglibdir)
make -C "$ROOT" -s install DESTDIR="$PAAS_PG_PREFIX" >/dev/null
cp "$LIBDIR/paas.so" "$WORK/paas-current.so"
bash "$ROOT/tests/upgrade/old_versions.sh" >/dev/null
CURRENT=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/paas.control")

db() { psql_su -d "$PAAS_DB" -v ON_ERROR_STOP=1 -qAtX "$@"; }
# one line per table of the schema paas: name and row count
counts() {
	db -c "SELECT c.relname || ' ' || (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM paas.%I', c.relname), false, true, '')))[1]
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'paas' AND c.relkind IN ('r', 'p') ORDER BY 1"
}
# the ledger's invariants: every entry balances, every account's balance is
# the sum of its postings and the last posting's balance_after, no wallet is
# negative; prints the number of violations and the wallets' total
ledger() {
	db -c "SELECT (SELECT count(*) FROM (SELECT entry_id FROM paas.ledger_postings GROUP BY entry_id HAVING sum(amount) <> 0) x)
		+ (SELECT count(*) FROM paas.ledger_accounts a
			WHERE a.balance <> coalesce((SELECT sum(p.amount) FROM paas.ledger_postings p WHERE p.account_id = a.id), 0)
			   OR a.balance <> coalesce((SELECT p.balance_after FROM paas.ledger_postings p WHERE p.account_id = a.id ORDER BY p.id DESC LIMIT 1), 0))
		+ (SELECT count(*) FROM paas.ledger_accounts WHERE kind = 'wallet' AND balance < 0)
		|| ' ' || (SELECT sum(balance) FROM paas.ledger_accounts WHERE kind = 'wallet')"
}
# at least this many rows in each of these tables
need_rows() {
	local file=$1 min=$2; shift 2
	for t in "$@"; do
		n=$(awk -v t="$t" '$1 == t { print $2 }' "$file")
		if [ "${n:-0}" -lt "$min" ]; then
			echo "the data set of $old has ${n:-0} rows in paas.$t (expected at least $min)" >&2
			return 1
		fi
	done
}

status=0
while read -r old commit; do
	[ -n "${UPGRADE_DATA_ONLY:-}" ] && [ "$old" != "$UPGRADE_DATA_ONLY" ] && continue
	case "$old" in '' | '#'*) continue ;; esac
	[ "$old" = "$CURRENT" ] && continue
	# the release as its users ran it: its paas.so, its install script
	rm -rf "$WORK/src"
	mkdir -p "$WORK/src"
	git -C "$ROOT" archive "$commit" | tar -x -C "$WORK/src"
	make -C "$WORK/src" -s -j2 paas.so >/dev/null 2>"$WORK/build.log" ||
		{ echo "release $old ($commit) does not build:" >&2; tail -20 "$WORK/build.log" >&2; exit 1; }
	install -m 0755 "$WORK/src/paas.so" "$LIBDIR/paas.so"
	rm -rf "$PAAS_PGDATA"
	cluster_init
	cluster_start
	psql_su -d postgres -qAtX >/dev/null <<SQL
SET client_min_messages = warning;
CREATE ROLE paas_owner NOLOGIN;
CREATE ROLE paas_api NOLOGIN;
CREATE ROLE paas_bi NOLOGIN;
CREATE DATABASE $PAAS_DB OWNER paas_owner;
SQL
	db -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION paas VERSION '$old' CASCADE"
	SECONDS=0
	# on stdin: the cluster's owner, who runs psql, may not read the checkout
	{ echo '\timing on'; cat "$ROOT/tests/upgrade/dataset.sql"; } | db > "$WORK/dataset.log"
	[ -n "${UPGRADE_DATA_TIMING:-}" ] && grep '^Time' "$WORK/dataset.log" | paste -sd' ' >&2
	made=$SECONDS
	counts > "$WORK/before.txt"
	ledger > "$WORK/ledger-before.txt"
	need_rows "$WORK/before.txt" 1000 users ledger_accounts ledger_entries ledger_postings topups topup_orders \
		invoices subscriptions subscription_charges subscription_events midtrans_notifications || status=1
	need_rows "$WORK/before.txt" 100 nodes node_transitions || status=1
	need_rows "$WORK/before.txt" 40 services || status=1
	# the current build replaces the release, as a package upgrade does
	cluster_stop
	install -m 0755 "$WORK/paas-current.so" "$LIBDIR/paas.so"
	cluster_start
	SECONDS=0
	db -c "SET client_min_messages = warning" -c "ALTER EXTENSION paas UPDATE"
	took=$SECONDS
	counts > "$WORK/after.txt"
	ledger > "$WORK/ledger-after.txt"
	# every table the release had keeps its rows (the update adds jobs and
	# platform accounts, jobs may run meanwhile, and refused notifications
	# move elsewhere)
	lost=$(join "$WORK/before.txt" "$WORK/after.txt" | awk '$1 == "job" || $1 == "job_run" || $1 == "ledger_accounts" { if ($3 < $2) print; next }
		$1 != "midtrans_notifications" && $2 != $3')
	if [ -n "$lost" ]; then
		echo "upgrade $old -> $CURRENT with data: row counts changed (table before after):" >&2
		echo "$lost" >&2
		status=1
	fi
	if [ "$(cut -d' ' -f1 "$WORK/ledger-after.txt")" != 0 ] ||
		[ "$(cut -d' ' -f2 "$WORK/ledger-after.txt")" != "$(cut -d' ' -f2 "$WORK/ledger-before.txt")" ]; then
		echo "upgrade $old -> $CURRENT with data: the ledger reads '$(cat "$WORK/ledger-after.txt")' (violations, wallets' total), before '$(cat "$WORK/ledger-before.txt")'" >&2
		status=1
	fi
	# the data works with the current functions
	uid=$(db -c "SELECT id FROM paas.users WHERE email = 'user7@upgrade.test'")
	login=$(db -c "SELECT api.auth_login('{\"email\": \"user7@upgrade.test\", \"password\": \"Upgrade-Passw0rd\"}', '{\"ip\": \"203.0.113.7\"}') #>> '{user,email}'")
	bal0=$(db -c "SELECT api.billing_balance('{}', jsonb_build_object('userId', '$uid')) ->> 'balance'")
	svc=$(db -c "SELECT id FROM paas.services WHERE name = 'app-3'")
	price=$(db -c "SELECT monthly_price FROM paas.services WHERE name = 'app-3'")
	sub=$(db -c "SELECT api.subscriptions_create(jsonb_build_object('serviceId', '$svc'), jsonb_build_object('userId', '$uid', 'idempotencyKey', 'upgrade-data-1')) ->> 'status'")
	bal1=$(db -c "SELECT api.billing_balance('{}', jsonb_build_object('userId', '$uid')) ->> 'balance'")
	hb=$(db -c "SELECT api.workers_heartbeat('{\"nodeName\": \"up-node-5\", \"cpuUsage\": \"250m\"}') ->> 'status'")
	db -c "UPDATE paas.subscriptions SET anchor_at = anchor_at - interval '1 month 1 day',
			current_period_start = current_period_start - interval '1 month 1 day',
			current_period_end = current_period_end - interval '1 month 1 day'
		WHERE id IN (SELECT id FROM paas.subscriptions WHERE status = 'ACTIVE' AND current_period_end > now() ORDER BY id LIMIT 200)"
	renewed=$(db -c "SELECT api.run_renewals() ->> 'renewed'")
	ledger > "$WORK/ledger-end.txt"
	if [ "$login" != user7@upgrade.test ] || [ "$sub" != ACTIVE ] || [ $((bal0 - bal1)) != "$price" ] ||
		[ "$hb" != ACTIVE ] || [ "${renewed:-0}" -lt 1 ] || [ "$(cut -d' ' -f1 "$WORK/ledger-end.txt")" != 0 ]; then
		echo "upgrade $old -> $CURRENT with data: after the update login '$login', subscription '$sub'," \
			"balance $bal0 -> $bal1 (price $price), heartbeat '$hb', renewed '$renewed', ledger '$(cat "$WORK/ledger-end.txt")'" >&2
		status=1
	fi
	rows=$(awk '{ s += $2 } END { print s }' "$WORK/before.txt")
	echo "upgrade $old -> $CURRENT with data: $rows rows in $(wc -l < "$WORK/before.txt") tables (written in ${made}s by $old's own functions) kept, ledger balanced, updated in ${took}s"
	cluster_stop
done < "$ROOT/tests/upgrade/releases"
exit $status
