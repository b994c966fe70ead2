#!/usr/bin/env bash
# bench/nodesync.sh: the node sync (bgworker/nodesync.c) against the
# Kubernetes stand-in (tests/fakes/kubeapi.py, plain HTTP), printed as a
# markdown table.
#   1. initial list: $NSYNC_NODES nodes (default 10000) in the API, none in
#      the registry; wall time from pointing the worker at the API to every
#      node registered (pages of 500, one transaction a page);
#   2. steady-state watch: the stand-in's kubelets post a status to every
#      node at once ($NSYNC_NODES MODIFIED events in one burst); node
#      updates per second from the first update seen to the last one
#      applied (the stand-in's own speed of producing the stream is
#      included, so this is a lower bound of the worker's).
# The polls are 0.2 s apart and scan only paas.nodes (a poll costs CPU
# the worker would otherwise have: 2 cores), so each figure is within 0.2 s.
# Targets (issue 14): list <= 5 s, watch >= 2,000 updates/s.
#
# Runs against a RUNNING stack (bench/run.sh exports PAAS_PGDATA,
# PAAS_PGSOCK, PAAS_PGPORT) or on its own (then it starts one).  It points
# the workers at its stand-in with ALTER SYSTEM for the run, and on exit
# resets the settings and removes the bench nodes from the registry.
set -euo pipefail
. "$(dirname "$0")/../docker/scripts/stack.sh"
cd "$STACK_ROOT"

NODES=${NSYNC_NODES:-10000}
HEARTBEAT=${NSYNC_HEARTBEAT:-40}
q() { psql_su -At "$@"; }

OWN_STACK=
if [ -z "${PAAS_PGDATA:-}" ]; then
	TMP=$(mktemp -d)
	chmod 0755 "$TMP"
	export PAAS_PGDATA=$TMP/pg PAAS_PGSOCK=$TMP/sock PAAS_PGPORT=${PAAS_PGPORT:-5498} PAAS_PGLISTEN='' PAAS_TICK=1s
	stack_private_pg "$TMP/pginst"
	stack_build
	stack_secrets "$TMP/secrets.env"
	stack_db_up
	OWN_STACK=1
fi

KTMP=$(mktemp -d)
chmod 0755 "$KTMP"
/usr/bin/python3 tests/fakes/kubeapi.py --port 0 --port-file "$KTMP/port" --nodes "$NODES" --node-cpu 64 \
	--node-memory 256Gi --node-prefix bench-nsync- --no-events --heartbeat "$HEARTBEAT" >"$KTMP/log" 2>&1 &
KPID=$!
sync_idle() {
	test "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'paas node sync' AND state = 'active'")" = 0
}
cleanup() {
	# the stand-in goes first, and the node sync finishes what it holds, so
	# that no batch registers bench nodes again after they are deleted
	kill "$KPID" 2>/dev/null || true
	q >/dev/null 2>&1 <<'SQL' || true
ALTER SYSTEM RESET paas.k8s_api_url;
ALTER SYSTEM RESET paas.k8s_token_file;
ALTER SYSTEM RESET paas.k8s_ca_file;
SELECT pg_reload_conf();
SQL
	WAIT_SECS=10 wait_for sync_idle || true
	q >/dev/null 2>&1 <<'SQL' || true
DELETE FROM paas.node_transitions WHERE node_name LIKE 'bench-nsync-%';
DELETE FROM paas.nodes WHERE name LIKE 'bench-nsync-%';
SQL
	rm -rf "$KTMP"
	if [ -n "$OWN_STACK" ]; then
		[ -z "${NSYNC_DEBUG:-}" ] || grep -i "node sync\|error\|warning" "$PAAS_PGDATA/server.log" | tail -20 >&2
		stack_down
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
# its own prefix (bench-nsync-*); leftovers of a run cut short go first
q -c "DELETE FROM paas.nodes WHERE name LIKE 'bench-nsync-%'" >/dev/null
WAIT_SECS=120 wait_for test -s "$KTMP/port"
KURL=http://127.0.0.1:$(cat "$KTMP/port")
START_K=$(date +%s.%N)

count() { q -c "SELECT count(*) FROM paas.nodes WHERE name LIKE 'bench-nsync-%' AND kube_seen_at IS NOT NULL"; }

T0=$(date +%s.%N)
q >/dev/null <<SQL
ALTER SYSTEM SET paas.k8s_api_url = '$KURL';
ALTER SYSTEM SET paas.k8s_token_file = '';
ALTER SYSTEM SET paas.k8s_ca_file = '';
SELECT pg_reload_conf();
SQL
while [ "$(count)" -lt "$NODES" ]; do
	sleep 0.2
	if [ "$(echo "$(date +%s.%N) - $T0 > 300" | bc)" = 1 ]; then echo "the list did not complete" >&2; exit 1; fi
done
T1=$(date +%s.%N)
LIST_S=$(echo "$T1 - $T0" | bc)

# the burst: every node's heartbeat, HEARTBEAT s after the stand-in started
# (the stand-in's resourceVersions are one counter: a node updated after
# the list has a larger one than any the list gave)
RV0=$(q -c "SELECT max(kube_resource_version::bigint) FROM paas.nodes WHERE name LIKE 'bench-nsync-%'")
changed() {
	q -c "SELECT count(*) FROM paas.nodes WHERE name LIKE 'bench-nsync-%' AND kube_resource_version::bigint > $RV0"
}
while [ "$(changed)" -eq 0 ]; do
	sleep 0.1
	if [ "$(echo "$(date +%s.%N) - $START_K > $HEARTBEAT + 120" | bc)" = 1 ]; then echo "no heartbeat burst seen" >&2; exit 1; fi
done
W0=$(date +%s.%N)
while [ "$(changed)" -lt "$NODES" ]; do
	sleep 0.2
	if [ "$(echo "$(date +%s.%N) - $W0 > 120" | bc)" = 1 ]; then echo "the burst was not applied" >&2; break; fi
done
W1=$(date +%s.%N)
DONE=$(changed)
WATCH_S=$(echo "$W1 - $W0" | bc)
RATE=$(echo "scale=0; $DONE / $WATCH_S" | bc)

echo
echo "### node sync ($NODES nodes, stand-in over plain HTTP)"
echo
echo "| measure | result | target |"
echo "|---|---|---|"
printf '| initial list of %d nodes (to all registered) | %.2f s | <= 5 s |\n' "$NODES" "$LIST_S"
printf '| watch burst: %d node updates applied | %.2f s = %d updates/s | >= 2,000/s |\n' "$DONE" "$WATCH_S" "$RATE"
