#!/usr/bin/env bash
# `make bench`: starts the whole stack in a throw-away cluster (shipped -O2
# httpd, access log off) and measures in ONE run, on this machine:
#   - GET /api/v1/health            wrk, 64 connections, $BENCH_SECS s
#   - GET /api/v1/auth/me (token)   wrk, 64 connections
#   - GET /api/v1/services          wrk, 64 connections (when the catalog is installed)
#   - pgbench -S                    64 clients on the same cluster (select-only)
# and prints a markdown table (req/s, p50, p99, ratio to pgbench -S, httpd RSS).
# Area scripts bench/<area>.sh run afterwards against the same stack when present.
#
#   BENCH_AREAS="ledger workers"  only these area scripts ("none": no area script)
#   BENCH_ONLY="instances"        only these area scripts, and no wrk/pgbench table
#                                 (the fastest way to measure one area)
#   BENCH_PGPORT=5497             the cluster's port (several checkouts side by side)
#   BENCH_PRIVATE_PG=1            install the extension into a private copy of the
#                                 server under the temp dir, not PostgreSQL's own
#                                 directories (as `make test` does)
set -euo pipefail
. "$(dirname "$0")/../docker/scripts/stack.sh"
cd "$STACK_ROOT"

BENCH_SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNS:-64}
TMP=$(mktemp -d)
chmod 0755 "$TMP"
if [ -n "${BENCH_ONLY:-}" ]; then
	BENCH_AREAS=$BENCH_ONLY
fi
if [ "${BENCH_PRIVATE_PG:-0}" = 1 ]; then
	stack_private_pg "$TMP/pginst"
fi
export PAAS_PGDATA=$TMP/pg PAAS_PGSOCK=$TMP/sock PAAS_PGPORT=${BENCH_PGPORT:-5497} PAAS_PGLISTEN='' PAAS_TICK=1s
export PAAS_HTTP_LISTEN=127.0.0.1:$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PAAS_ACCESS_LOG=0 PAAS_HTTP_THREADS=${PAAS_HTTP_THREADS:-$CONNS}
export PAAS_METRICS_LISTEN=127.0.0.1:$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# BENCH_PG_CONF: more postgresql.conf lines (e.g. "track_functions = all" to see where the
# time of an area goes in pg_stat_user_functions)
export PAAS_PG_EXTRA_CONF="max_connections = 300${BENCH_PG_CONF:+
$BENCH_PG_CONF}"
trap 'stack_down; rm -rf "$TMP"' EXIT

stack_build
stack_secrets "$TMP/secrets.env"
stack_db_up
bash docker/scripts/seed.sh >/dev/null
stack_httpd_start "$STACK_ROOT/httpd/paas-httpd" "$TMP/httpd.log"
BASE=http://$PAAS_HTTP_LISTEN
export BASE TMP

# A user and its access token for the authenticated routes.
EMAIL=bench-$(date +%s)@example.com
curl -sf -o /dev/null -X POST "$BASE/api/v1/auth/register" -H 'Content-Type: application/json' \
	-d "{\"name\":\"Bench\",\"email\":\"$EMAIL\",\"password\":\"BenchPassw0rd\",\"confirmPassword\":\"BenchPassw0rd\"}"
TOKEN=$(curl -sf -X POST "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
	-d "{\"email\":\"$EMAIL\",\"password\":\"BenchPassw0rd\"}" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])')
export TOKEN

if [ -z "${BENCH_ONLY:-}" ]; then
# wrk_row NAME URL [HEADER]: "| NAME | req/s | p50 | p99 |" from wrk --latency.
wrk_row() {
	local name=$1 url=$2 hdr=${3:-}
	local out
	if [ -n "$hdr" ]; then
		out=$(wrk -t2 -c"$CONNS" -d"${BENCH_SECS}s" --latency -H "$hdr" "$url")
	else
		out=$(wrk -t2 -c"$CONNS" -d"${BENCH_SECS}s" --latency "$url")
	fi
	local rps p50 p99 non2xx
	rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
	p50=$(awk '$1=="50%" {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
	echo "$name|$rps|$p50|$p99|${non2xx:-0}"
}

rows=()
rows+=("$(wrk_row 'GET /api/v1/health' "$BASE/api/v1/health")")
rows+=("$(wrk_row 'GET /api/v1/auth/me (JWT)' "$BASE/api/v1/auth/me" "Authorization: Bearer $TOKEN")")
if curl -sf -o /dev/null "$BASE/api/v1/services"; then
	rows+=("$(wrk_row 'GET /api/v1/services' "$BASE/api/v1/services")")
fi
RSS=$(awk '/VmRSS/ {print $2, $3}' "/proc/$HTTPD_PID/status")

# pgbench -S on the same cluster, with per-transaction latencies for p50/p99.
psql_su -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench" >/dev/null
as_pg "$PG_BIN/pgbench" -q -i -s 10 -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT" bench >/dev/null 2>&1
PGB_OUT=$(cd "$TMP" && as_pg "$PG_BIN/pgbench" -S -n -c "$CONNS" -j 2 -T "$BENCH_SECS" -l \
	--log-prefix="$TMP/pgb" -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT" bench 2>/dev/null)
PGB_TPS=$(awk -F'= ' '/^tps/ {split($2, a, " "); print a[1]}' <<<"$PGB_OUT")
read -r PGB_P50 PGB_P99 < <(cat "$TMP"/pgb.* | awk '{print $3}' | sort -n |
	awk '{v[NR]=$1} END {printf "%.2fms %.2fms\n", v[int(NR*0.5)]/1000, v[int(NR*0.99)]/1000}')

echo
echo "paas benchmark — $(date -u +%F), $(nproc) cores, ${CONNS} connections, ${BENCH_SECS} s each"
echo
echo "| what | req/s | p50 | p99 | non-2xx | ratio to pgbench -S |"
echo "|---|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
	IFS='|' read -r name rps p50 p99 bad <<<"$r"
	ratio=$(awk -v a="$rps" -v b="$PGB_TPS" 'BEGIN {printf "%.2f", a/b}')
	echo "| $name | $rps | $p50 | $p99 | $bad | $ratio |"
done
echo "| pgbench -S (select-only, same cluster) | $PGB_TPS | $PGB_P50 | $PGB_P99 | — | 1.00 |"
echo
echo "httpd RSS after the runs: $RSS"
fi

# BENCH_AREAS="ledger workers" limits the area scripts; "none" skips them.
for area in bench/*.sh; do
	case "$area" in bench/run.sh) continue ;; esac
	name=$(basename "$area" .sh)
	if [ -n "${BENCH_AREAS:-}" ] && [[ " $BENCH_AREAS " != *" $name "* ]]; then continue; fi
	# Each area starts on a settled cluster: the dead rows and the dirty
	# pages the areas before it left (mail.sh writes 400,000 subscriptions)
	# are vacuumed and checkpointed here, not by autovacuum and a timed
	# checkpoint inside the next area's measurement.
	t0=$(date +%s.%N)
	psql_su -q -c "SET client_min_messages = warning" -c "VACUUM (ANALYZE)" -c "CHECKPOINT" >/dev/null 2>&1 || true
	echo
	echo "== $area"
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "(cluster settled before the area: VACUUM (ANALYZE) and CHECKPOINT, %.1f s)\n", b - a}'
	bash "$area" || echo "($area failed)"
	# An area leaves the provisioner no work of its own: instances it made
	# are removed before it ends, or the areas after it measure that too.
	left=$(psql_su -At -c "SELECT count(*) FROM paas.instances WHERE status <> CASE desired_state
		WHEN 'running' THEN 'RUNNING' WHEN 'stopped' THEN 'STOPPED' ELSE 'DELETED' END" 2>/dev/null || echo '?')
	if [ "$left" != 0 ]; then
		echo "($area left $left instances not in their desired state: the provisioner's work during the areas after it)"
	fi
done
