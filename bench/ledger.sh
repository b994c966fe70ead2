#!/usr/bin/env bash
# bench/ledger.sh: ledger throughput against a RUNNING stack, in one run:
#   - one charge per transaction through paas.ledger_post (SQL, pgbench
#     custom script), $LEDGER_CLIENTS clients, without and with an
#     idempotency key, next to pgbench's built-in tpcb-like at the same
#     client count on the same cluster (ratio = charge TPS / tpcb-like TPS).
#     The three runs are interleaved $LEDGER_ROUNDS times and each reports
#     its best round, so that a neighbour's load spike hits all of them.
#   - batched postings: 1,000 postings (500 charges) per call, postings/s
#   - GET /api/v1/billing/balance under wrk
# and prints a markdown table.  bench/run.sh starts the stack and exports
# PAAS_PGSOCK, PAAS_PGPORT, BASE and TOKEN; run alone, point those at a
# stack (PAAS_DB defaults to paas).  It writes bench users (bench-ledger-*),
# their wallets and postings into that database, and a pgbench database
# "bench" when there is none.
set -euo pipefail
. "$(dirname "$0")/../docker/scripts/stack.sh"
cd "$STACK_ROOT"

SECS=${BENCH_SECS:-10}
CLIENTS=${LEDGER_CLIENTS:-16}
ROUNDS=${LEDGER_ROUNDS:-3}
BATCH_CLIENTS=${LEDGER_BATCH_CLIENTS:-2}
CONNS=${BENCH_CONNS:-64}
WALLETS=${LEDGER_WALLETS:-2000}
BASE=${BASE:-http://${PAAS_HTTP_LISTEN:-127.0.0.1:8080}}
WORK=$(mktemp -d)
chmod 0777 "$WORK"
trap 'rm -rf "$WORK"' EXIT

q() { psql_su -At "$@"; }
pgb() { (cd "$WORK" && as_pg "$PG_BIN/pgbench" -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT" "$@"); }

# p50 and p99 (ms) of pgbench's per-transaction log files with prefix $1.
latencies() {
	cat "$WORK/$1".* | awk '{print $3}' | sort -n |
		awk '{v[NR]=$1} END {printf "%.2fms %.2fms\n", v[int(NR*0.5)]/1000, v[int(NR*0.99)]/1000}'
}

# --- fixtures: $WALLETS funded wallets, 16 batches of 500 charges --------
TAG=$(date +%s)
q >/dev/null <<SQL
SET client_min_messages = warning;
INSERT INTO paas.users (email, name, password_hash)
SELECT 'bench-ledger-$TAG-' || i || '@example.com', 'Bench Ledger', 'x'
  FROM generate_series(1, $WALLETS) i;
CREATE TEMP TABLE w AS
SELECT row_number() OVER (ORDER BY u.id) AS n, paas.wallet_account(u.id) AS acc
  FROM paas.users u WHERE u.email LIKE 'bench-ledger-$TAG-%';
SELECT paas.ledger_post(NULL, (SELECT jsonb_agg(jsonb_build_object(
	'kind', 'topup', 'memo', 'bench funding',
	'postings', jsonb_build_array(
		jsonb_build_object('account', acc, 'amount', 1000000000000),
		jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -1000000000000))))
	FROM w));
DROP TABLE IF EXISTS public.bench_ledger_batch;
CREATE TABLE public.bench_ledger_batch (id int PRIMARY KEY, entries jsonb NOT NULL);
INSERT INTO public.bench_ledger_batch
SELECT b, jsonb_agg(jsonb_build_object('kind', 'charge', 'memo', 'bench batch',
	'postings', jsonb_build_array(
		jsonb_build_object('account', w.acc, 'amount', -1),
		jsonb_build_object('account', paas.platform_account('revenue'), 'amount', 1))) ORDER BY i)
  FROM generate_series(1, 16) b
 CROSS JOIN generate_series(1, 500) i
  JOIN w ON w.n = ((b - 1) * 500 + i - 1) % $WALLETS + 1
 GROUP BY b;
SQL
read -r WMIN WMAX < <(q -c "SELECT min(a.id), max(a.id) FROM paas.ledger_accounts a JOIN paas.users u ON u.id = a.user_id WHERE u.email LIKE 'bench-ledger-$TAG-%'" | tr '|' ' ')
REV=$(q -c "SELECT paas.platform_account('revenue')")
NBATCH=$(q -c "SELECT count(*) FROM public.bench_ledger_batch")
BATCH_POSTINGS=$(q -c "SELECT jsonb_array_length(entries) * 2 FROM public.bench_ledger_batch WHERE id = 1")

cat > "$WORK/charge.sql" <<'SQL'
\set w random(:wmin, :wmax)
SELECT paas.ledger_post(NULL, ('[{"kind": "charge", "memo": "bench", "postings": [{"account": ' || :w || ', "amount": -1}, {"account": ' || :rev || ', "amount": 1}]}]')::jsonb);
SQL
cat > "$WORK/charge_key.sql" <<'SQL'
\set w random(:wmin, :wmax)
\set k random(1, 9000000000000000000)
SELECT paas.ledger_post('bench-' || :k, ('[{"kind": "charge", "memo": "bench", "postings": [{"account": ' || :w || ', "amount": -1}, {"account": ' || :rev || ', "amount": 1}]}]')::jsonb);
SQL
cat > "$WORK/batch.sql" <<'SQL'
\set b random(1, :nbatch)
SELECT paas.ledger_post(NULL, entries) IS NOT NULL FROM public.bench_ledger_batch WHERE id = :b;
SQL
chmod 0644 "$WORK"/*.sql

# --- tpcb-like baseline and single charges, interleaved -----------------
if [ "$(psql_su -At -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = 'bench'")" = 0 ]; then
	psql_su -d postgres -c "CREATE DATABASE bench" >/dev/null
	pgb -q -i -s 10 bench >/dev/null 2>&1
fi

# run_script PREFIX FILE|- CLIENTS DB -> "tps p50 p99 errors" (FILE - = tpcb-like)
run_script() {
	local prefix=$1 file=$2 clients=$3 db=$4 out tps p50 p99 failed
	local script=()
	[ "$file" = - ] || script=(-f "$WORK/$file" -D wmin="$WMIN" -D wmax="$WMAX" -D rev="$REV" -D nbatch="$NBATCH")
	rm -f "$WORK/$prefix".[0-9]*
	out=$(pgb -n -c "$clients" -j 2 -T "$SECS" -l --log-prefix="$prefix" "${script[@]}" "$db" 2>&1)
	tps=$(awk -F'= ' '/^tps/ {split($2, a, " "); printf "%.1f", a[1]}' <<<"$out")
	failed=$(grep -c 'ERROR' <<<"$out" || true)
	read -r p50 p99 < <(latencies "$prefix")
	echo "$tps $p50 $p99 $failed"
}

# best OLD NEW: the row with the higher tps
best() {
	if [ -z "$1" ] || awk -v a="${2%% *}" -v b="${1%% *}" 'BEGIN {exit !(a > b)}'; then
		echo "$2"
	else
		echo "$1"
	fi
}

TPCB= CH= CK=
for _ in $(seq "$ROUNDS"); do
	TPCB=$(best "$TPCB" "$(run_script tpcb - "$CLIENTS" bench)")
	CH=$(best "$CH" "$(run_script charge charge.sql "$CLIENTS" "${PAAS_DB:-paas}")")
	CK=$(best "$CK" "$(run_script chargekey charge_key.sql "$CLIENTS" "${PAAS_DB:-paas}")")
done
read -r TPCB_TPS TPCB_P50 TPCB_P99 _ <<<"$TPCB"
read -r CH_TPS CH_P50 CH_P99 CH_ERR <<<"$CH"
read -r CK_TPS CK_P50 CK_P99 CK_ERR <<<"$CK"
# --- batches --------------------------------------------------------------
BA=
for _ in $(seq "$ROUNDS"); do
	BA=$(best "$BA" "$(run_script batch batch.sql "$BATCH_CLIENTS" "${PAAS_DB:-paas}")")
done
read -r BA_TPS BA_P50 BA_P99 BA_ERR <<<"$BA"
BA_PPS=$(awk -v t="$BA_TPS" -v n="$BATCH_POSTINGS" 'BEGIN {printf "%.0f", t * n}')

# --- GET /billing/balance under wrk --------------------------------------
if [ -z "${TOKEN:-}" ]; then
	EMAIL=bench-ledger-http-$TAG@example.com
	curl -sf -o /dev/null -X POST "$BASE/api/v1/auth/register" -H 'Content-Type: application/json' \
		-d "{\"name\":\"Bench\",\"email\":\"$EMAIL\",\"password\":\"BenchPassw0rd\",\"confirmPassword\":\"BenchPassw0rd\"}"
	TOKEN=$(curl -sf -X POST "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
		-d "{\"email\":\"$EMAIL\",\"password\":\"BenchPassw0rd\"}" |
		/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])')
fi
WRK_OUT=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/billing/balance")
WRK_RPS=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$WRK_OUT")
WRK_P50=$(awk '$1=="50%" {print $2}' <<<"$WRK_OUT")
WRK_P99=$(awk '$1=="99%" {print $2}' <<<"$WRK_OUT")
WRK_BAD=$(awk '/Non-2xx/ {print $NF}' <<<"$WRK_OUT")

CHECK=$(q -c "SELECT count(*) FROM reporting.ledger_check")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo
echo "ledger benchmark — $(date -u +%F), $(nproc) cores, ${SECS} s per run, best of $ROUNDS rounds"
echo
echo "| what | clients | rate | p50 | p99 | errors | vs tpcb-like |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "| pgbench tpcb-like (built-in, scale 10) | $CLIENTS | $TPCB_TPS tps | $TPCB_P50 | $TPCB_P99 | — | 1.00 |"
echo "| charge: paas.ledger_post, 1 entry, no key | $CLIENTS | $CH_TPS tps | $CH_P50 | $CH_P99 | $CH_ERR | $(ratio "$CH_TPS" "$TPCB_TPS") |"
echo "| charge: paas.ledger_post, 1 entry, idempotency key | $CLIENTS | $CK_TPS tps | $CK_P50 | $CK_P99 | $CK_ERR | $(ratio "$CK_TPS" "$TPCB_TPS") |"
echo "| batch: $BATCH_POSTINGS postings per call | $BATCH_CLIENTS | $BA_PPS postings/s ($BA_TPS calls/s) | $BA_P50 | $BA_P99 | $BA_ERR | — |"
echo "| GET /api/v1/billing/balance (wrk) | $CONNS | $WRK_RPS req/s | $WRK_P50 | $WRK_P99 | ${WRK_BAD:-0} non-2xx | — |"
echo
echo "reporting.ledger_check after the run: $CHECK rows (0 = every invariant holds)"
