#!/usr/bin/env bash
# bench/instances.sh: hosted instances against the Kubernetes stand-in
# (tests/fakes/kubeapi.py, plain HTTP, no added latency), printed as
# markdown tables.
#   1. provisioning: N subscriptions ($INST_BENCH_N, default 1000) sold
#      through api.subscriptions_create, once one per new funded user (N
#      namespaces: the most calls), once 10 per user; wall time from the
#      first sale to the last instance RUNNING, and the API calls the
#      provisioner sent per instance (its namespace's share included; the
#      periodic resync and node sync apart);
#   2. steady state: M RUNNING instances ($INST_BENCH_STEADY, default
#      10000; provisioned first, 10 per user), then the provisioner's calls
#      per second over $INST_BENCH_WINDOW seconds (default 120) with the
#      resync every $INST_BENCH_RESYNC seconds (default 60; the shipped
#      default is 300) and the node sync every 30 s.
#
# Runs against a RUNNING stack (bench/run.sh exports PAAS_PGDATA,
# PAAS_PGSOCK, PAAS_PGPORT); it starts its own stand-in, points the
# provisioner at it with ALTER SYSTEM for the run, and on exit ends the
# bench subscriptions (EXPIRED, through the status machine), waits until
# the provisioner has removed their instances from the stand-in (so later
# area scripts see an idle provisioner), puts the settings back and
# removes its nodes (bench-inst-node-*: each area script has its own
# prefix, so the areas run in any order in one `make bench`).
set -euo pipefail
. "$(dirname "$0")/../docker/scripts/stack.sh"
cd "$STACK_ROOT"

N=${INST_BENCH_N:-1000}
STEADY=${INST_BENCH_STEADY:-10000}
WINDOW=${INST_BENCH_WINDOW:-120}
RESYNC=${INST_BENCH_RESYNC:-60}
PER_USER=10
q() { psql_su -At "$@"; }

KTMP=$(mktemp -d)
chmod 0755 "$KTMP"
/usr/bin/python3 tests/fakes/kubeapi.py --port 0 --port-file "$KTMP/port" --nodes 20 --node-cpu 64 \
	--node-memory 256Gi --node-pods 1000 --node-prefix bench-inst-node- --no-events >"$KTMP/log" 2>&1 &
KPID=$!
bench_left() { # instances of the bench not removed yet
	q -c "SELECT count(*) FROM paas.instances i JOIN paas.users u ON u.id = i.user_id
		   WHERE u.email LIKE 'bench-inst-%' AND i.status <> 'DELETED'" 2>/dev/null || echo 0
}
cleanup() {
	# the bench subscriptions end first, and the provisioner removes their
	# instances from this stand-in before the settings go back: a removal
	# left for later would run against the next area's stand-in
	q >/dev/null 2>&1 <<'SQL' || true
UPDATE paas.subscriptions s SET status = paas.subscription_transition(s.status, 'expire'),
	   ended_at = now(), grace_until = NULL, status_reason = 'benchmark over'
  FROM paas.users u WHERE u.id = s.user_id AND u.email LIKE 'bench-inst-%' AND s.status <> 'EXPIRED';
SQL
	local t0=$SECONDS
	while [ "$(bench_left)" -gt 0 ] && [ $((SECONDS - t0)) -lt 600 ]; do sleep 1; done
	if [ "$(bench_left)" = 0 ]; then
		echo "(the bench instances were removed in $((SECONDS - t0)) s after the run)"
	else
		echo "bench/instances.sh: $(bench_left) instances not removed in 600 s" >&2
	fi
	q >/dev/null 2>&1 <<'SQL' || true
ALTER SYSTEM RESET paas.k8s_api_url;
ALTER SYSTEM RESET paas.k8s_token_file;
ALTER SYSTEM RESET paas.k8s_ca_file;
ALTER SYSTEM RESET paas.instance_resync_interval;
ALTER SYSTEM RESET paas.provisioner_concurrency;
SELECT pg_reload_conf();
DELETE FROM paas.node_transitions WHERE node_name LIKE 'bench-inst-node-%';
DELETE FROM paas.nodes WHERE name LIKE 'bench-inst-node-%';
SQL
	kill "$KPID" 2>/dev/null || true
	rm -rf "$KTMP"
}
trap cleanup EXIT
WAIT_SECS=20 wait_for test -s "$KTMP/port"
KURL=http://127.0.0.1:$(cat "$KTMP/port")

q >/dev/null <<SQL
ALTER SYSTEM SET paas.k8s_api_url = '$KURL';
ALTER SYSTEM SET paas.k8s_token_file = '';
ALTER SYSTEM SET paas.k8s_ca_file = '';
ALTER SYSTEM SET paas.instance_resync_interval = '1h';
SELECT pg_reload_conf();
SQL
ready_nodes() { test "$(q -c "SELECT count(*) FROM paas.nodes WHERE name LIKE 'bench-inst-node-%' AND status = 'ACTIVE'")" = 20; }
WAIT_SECS=60 wait_for ready_nodes

# fixtures: one service, funded users (no instance is created yet)
sell_fixtures() { # tag users per_user
	q >/dev/null <<SQL
SET client_min_messages = warning;
INSERT INTO paas.services (name, display_name, description, docker_image, monthly_price,
						   cpu_request_m, mem_request_mib, storage_gib)
SELECT 'bench-inst-$1-' || i, 'Bench instance ' || i, 'instance benchmark service', 'example/bench:1', 1000,
	   10, 16, 1
  FROM generate_series(1, $3) i;
INSERT INTO paas.users (email, name, password_hash)
SELECT 'bench-inst-$1-' || i || '@example.com', 'Bench Instance', 'x' FROM generate_series(1, $2) i;
SELECT paas.ledger_post(NULL, (SELECT jsonb_agg(jsonb_build_object('kind', 'topup', 'postings', jsonb_build_array(
		jsonb_build_object('account', paas.wallet_account(u.id), 'amount', 1000 * $3),
		jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -1000 * $3))))
	FROM paas.users u WHERE u.email LIKE 'bench-inst-$1-%'));
SQL
}
# sells every fixture service to every fixture user, through the api, in
# batches of 500 sales per transaction; prints the epoch of the first sale
sell() { # tag
	q <<SQL
SET client_min_messages = warning;
SELECT extract(epoch FROM clock_timestamp());
DO \$\$
DECLARE
	r record;
	n int := 0;
BEGIN
	FOR r IN SELECT u.id AS uid, s.id AS sid FROM paas.users u, paas.services s
			  WHERE u.email LIKE 'bench-inst-$1-%' AND s.name LIKE 'bench-inst-$1-%' ORDER BY u.id, s.id LOOP
		PERFORM api.subscriptions_create(jsonb_build_object('serviceId', r.sid), jsonb_build_object('userId', r.uid));
		n := n + 1;
		IF n % 500 = 0 THEN
			COMMIT;
		END IF;
	END LOOP;
END
\$\$;
SQL
}
running() { # tag -> count of RUNNING instances of the tag
	q -c "SELECT count(*) FROM paas.instances i JOIN paas.users u ON u.id = i.user_id
		   WHERE u.email LIKE 'bench-inst-$1-%' AND i.status = 'RUNNING'"
}
calls() { q -c "SELECT api_calls - audit_calls FROM paas.provisioner_state()"; }

# ---- 1. provisioning ---------------------------------------------------------
provision() { # subscriptions-per-user label
	local per=$1 label=$2 TAG T0 T1 T2 C0 C1 users
	TAG=p$per$(date +%s)
	users=$(( (N + per - 1) / per ))
	sell_fixtures "$TAG" "$users" "$per"
	C0=$(calls)
	T0=$(sell "$TAG" | head -1)
	T1=$(date +%s.%N)
	while [ "$(running "$TAG")" -lt $(( users * per )) ]; do
		sleep 0.1
		if awk -v a="$(date +%s)" -v b="$T1" 'BEGIN {exit !(a - b > 900)}'; then
			echo "provisioning did not finish in 15 minutes ($(running "$TAG") RUNNING)" >&2
			exit 1
		fi
	done
	T2=$(date +%s.%N)
	C1=$(calls)
	awk -v n="$((users * per))" -v l="$label" -v t0="$T0" -v t1="$T1" -v t2="$T2" -v c="$((C1 - C0))" \
		'BEGIN {printf "| %d | %s | %.1f s | %.1f s | %.0f | %d | %.1f |\n", n, l, t1 - t0, t2 - t0, n / (t2 - t0), c, c / n}'
}
echo "| subscriptions | customers | sold in (api, one session) | first sale to last RUNNING | instances/s | API calls | calls per instance |"
echo "|---:|---|---:|---:|---:|---:|---:|"
provision 1 "one each ($N namespaces)"
provision 10 "10 each ($(( (N + 9) / 10 )) namespaces)"

# ---- 2. steady state ---------------------------------------------------------
TAG=s$(date +%s)
have=$(q -c "SELECT count(*) FROM paas.instances WHERE status = 'RUNNING'")
need=$(( STEADY > have ? STEADY - have : 0 ))
if [ "$need" -gt 0 ]; then
	sell_fixtures "$TAG" $(( (need + PER_USER - 1) / PER_USER )) "$PER_USER"
	sell "$TAG" >/dev/null
	while [ "$(q -c "SELECT count(*) FROM paas.instances WHERE desired_state = 'running' AND status <> 'RUNNING'")" -gt 0 ]; do
		sleep 1
	done
fi
TOTAL=$(q -c "SELECT count(*) FROM paas.instances WHERE status = 'RUNNING'")
q >/dev/null <<SQL
ALTER SYSTEM SET paas.instance_resync_interval = '${RESYNC}s';
SELECT pg_reload_conf();
SQL
sleep 2
read -r A0 S0 R0 < <(q -F' ' -c "SELECT api_calls, audit_calls, audits FROM paas.provisioner_state()")
sleep "$WINDOW"
read -r A1 S1 R1 < <(q -F' ' -c "SELECT api_calls, audit_calls, audits FROM paas.provisioner_state()")
LAST=$(q -c "SELECT last_resync FROM paas.provisioner_state()")
echo
echo "| RUNNING instances | window | resyncs | calls | calls/s | of which resync lists | resync every |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
awk -v m="$TOTAL" -v w="$WINDOW" -v r="$((R1 - R0))" -v a="$((A1 - A0))" -v s="$((S1 - S0))" -v e="$RESYNC" \
	'BEGIN {printf "| %d | %d s | %d | %d | %.2f | %d | %d s |\n", m, w, r, a, a / w, s, e}'
echo
echo "last resync: $LAST"
