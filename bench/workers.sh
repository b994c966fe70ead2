#!/usr/bin/env bash
# bench/workers.sh: worker-node figures against a RUNNING stack, in one run:
#   - heartbeat ingest through HTTP: wrk with bench/heartbeat.lua spreading
#     PUT /api/v1/workers/<name>/heartbeat over $WORKER_NODES (10,000)
#     registered nodes, each with its own node token: req/s, p50, p99
#   - one health-monitor pass (paas.job_node_monitor) over $MONITOR_NODES
#     (100,000) nodes: all fresh (no change), then with 10 % silent (-> NOT_READY)
# and prints a markdown table.  bench/run.sh starts the stack and exports
# PAAS_PGSOCK, PAAS_PGPORT and BASE; run alone, point those at a stack
# (PAAS_DB defaults to paas).  The bench nodes (bench-node-*: a prefix no
# other area script uses) are written into that database directly, deleted
# at the end and, should a run have been cut short, at the start.
set -euo pipefail
. "$(dirname "$0")/../docker/scripts/stack.sh"
cd "$STACK_ROOT"

SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-64}
NODES=${WORKER_NODES:-10000}
MONITOR=${MONITOR_NODES:-100000}
BASE=${BASE:-http://${PAAS_HTTP_LISTEN:-127.0.0.1:8080}}
WORK=$(mktemp -d)
chmod 0777 "$WORK"
q() { psql_su -At "$@"; }
cleanup() {
	q -c "DELETE FROM paas.nodes WHERE name LIKE 'bench-node-%'" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
q -c "DELETE FROM paas.nodes WHERE name LIKE 'bench-node-%'" >/dev/null

# --- nodes with known tokens (token = hex SHA-256 of a per-node secret) ----
make_nodes() { # from to
	q >/dev/null <<SQL
SET client_min_messages = warning;
INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage,
	cpu_capacity_m, memory_capacity, storage_capacity, cpu_allocatable_m, memory_allocatable,
	storage_allocatable, pods_allocatable, max_pods, status, is_ready, token_hash, registered_at,
	last_heartbeat, labels, conditions)
SELECT 'bench-node-' || i, 'bench-node-' || i || '.bench', '10.64.0.0'::inet + i, 8, 'bench', '32Gi', '500Gi',
	8000, 34359738368, 536870912000, 7800, 34254880768, 483183820800, 110, 110, 'ACTIVE', true,
	digest(encode(digest('bench-secret-' || i, 'sha256'), 'hex'), 'sha256'), now(), now(),
	'{"kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "bench"}',
	'[{"type": "Ready", "status": "True", "reason": "KubeletReady"}]'
  FROM generate_series($1, $2) i;
ANALYZE paas.nodes;
SQL
}
make_nodes 1 "$NODES"
q -c "COPY (SELECT 'bench-node-' || i, encode(digest('bench-secret-' || i, 'sha256'), 'hex')
            FROM generate_series(1, $NODES) i) TO STDOUT" > "$WORK/nodes.tsv"

# --- heartbeat ingest ------------------------------------------------------
HB=$(NODES_FILE="$WORK/nodes.tsv" wrk -t2 -c"$CONNS" -d"${SECS}s" -s bench/heartbeat.lua "$BASE" | grep '^heartbeats|')
IFS='|' read -r _ HB_RPS HB_P50 HB_P99 HB_BAD <<<"$HB"
HB_DISTINCT=$(q -c "SELECT count(*) FROM paas.nodes WHERE name LIKE 'bench-node-%' AND last_heartbeat > now() - interval '${SECS} seconds' - interval '2 seconds'")

# --- health-monitor pass over $MONITOR nodes -------------------------------
[ "$MONITOR" -gt "$NODES" ] && make_nodes $((NODES + 1)) "$MONITOR"
q -c "UPDATE paas.nodes SET last_heartbeat = now(), status = 'ACTIVE', is_ready = true WHERE name LIKE 'bench-node-%'" >/dev/null
q -c "VACUUM ANALYZE paas.nodes" >/dev/null
pass() { # ms of one paas.job_node_monitor() call, measured inside the call; and its result
	q -c "SELECT (r ->> 'ms') || '|' || (r ->> 'notReady') FROM (SELECT paas.job_node_monitor() r) x"
}
IFS='|' read -r MON_IDLE _ <<<"$(pass)"
IFS='|' read -r MON_IDLE2 _ <<<"$(pass)"
q -c "UPDATE paas.nodes SET last_heartbeat = now() - (SELECT grace_period FROM paas.node_health_settings()) - interval '1 second'
       WHERE name LIKE 'bench-node-%' AND substring(name FROM 12)::int % 10 = 0" >/dev/null
IFS='|' read -r MON_HIT MON_HIT_N <<<"$(pass)"
TOTAL=$(q -c "SELECT count(*) FROM paas.nodes")

echo
echo "worker nodes — $(date -u +%F), $(nproc) cores, ${CONNS} connections, ${SECS} s"
echo
echo "| what | figure |"
echo "|---|---:|"
echo "| heartbeats/s over $NODES nodes (PUT /workers/:name/heartbeat, node token) | $HB_RPS |"
echo "| heartbeat p50 / p99 | $HB_P50 / $HB_P99 |"
echo "| heartbeat non-2xx | $HB_BAD |"
echo "| distinct nodes refreshed during the run | $HB_DISTINCT |"
echo "| monitor pass, $TOTAL nodes, none silent | ${MON_IDLE} ms, ${MON_IDLE2} ms |"
echo "| monitor pass, $TOTAL nodes, $MON_HIT_N go NOT_READY | ${MON_HIT} ms |"
