#!/usr/bin/env bash
# bench/feed.sh: GET /api/v1/billing/transactions (the unified feed) for a
# user with ~100 movements while the platform holds $FEED_INVOICES invoices
# (default 1,000,000) of other users: pgbench on api.billing_transactions()
# and wrk on the route, p50 / p99, as a markdown table, at $FEED_CLIENTS
# clients (default 2: one per core, latency) and at $FEED_LOAD_CLIENTS
# (default 8: the cores saturated).  The cost of a page must follow the
# user's movements, not the platform's invoices (target: p99 <= 20 ms).
#
# Runs against a RUNNING stack: bench/run.sh exports PAAS_PGSOCK, PAAS_PGPORT
# and BASE (PAAS_DB defaults to paas).  It writes bench users (bench-feed-*),
# their top-ups and invoices into that database; the invoices are numbered
# in a period of their own (INV-1NNNNN-...) so they never meet the live
# counters.  Built set-based, without per-row foreign-key checks.
set -euo pipefail
. "$(dirname "$0")/../docker/scripts/stack.sh"
cd "$STACK_ROOT"

SECS=${BENCH_SECS:-10}
INVOICES=${FEED_INVOICES:-1000000}
OWNERS=${FEED_OWNERS:-10000}
CLIENTS=${FEED_CLIENTS:-2}
LOAD_CLIENTS=${FEED_LOAD_CLIENTS:-8}
BASE=${BASE:-http://${PAAS_HTTP_LISTEN:-127.0.0.1:8080}}
WORK=$(mktemp -d)
chmod 0777 "$WORK"
trap 'rm -rf "$WORK"' EXIT

q() { psql_su -At "$@"; }
pgb() { (cd "$WORK" && as_pg "$PG_BIN/pgbench" -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT" "$@"); }
latencies() {
	cat "$WORK/$1".* | awk '{print $3}' | sort -n |
		awk '{v[NR]=$1} END {printf "%.2fms %.2fms\n", v[int(NR*0.5)]/1000, v[int(NR*0.99)]/1000}'
}

TAG=$(date +%s)
PERIOD=1$(printf '%05d' $(( TAG % 100000 )))
EMAIL=bench-feed-user-$TAG@example.com

# --- the user, over HTTP (for its token) -------------------------------------
curl -sf -o /dev/null -X POST "$BASE/api/v1/auth/register" -H 'Content-Type: application/json' \
	-d "{\"name\":\"Bench Feed\",\"email\":\"$EMAIL\",\"password\":\"BenchPassw0rd\",\"confirmPassword\":\"BenchPassw0rd\"}"
FEED_TOKEN=$(curl -sf -X POST "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
	-d "{\"email\":\"$EMAIL\",\"password\":\"BenchPassw0rd\"}" |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["accessToken"])')
UID_=$(q -c "SELECT id FROM paas.users WHERE email = '$EMAIL'")

# --- the platform: $INVOICES invoices of $OWNERS other users, set-based -------
T0=$(date +%s.%N)
q >/dev/null <<SQL
SET client_min_messages = warning;
-- the rows are built valid: no per-row foreign-key checks (superuser)
SET session_replication_role = replica;
INSERT INTO paas.users (email, name, password_hash)
SELECT 'bench-feed-$TAG-' || i || '@example.com', 'Bench Feed Owner', 'x' FROM generate_series(1, $OWNERS) i;
CREATE TEMP TABLE owners AS
SELECT id, (row_number() OVER (ORDER BY id) - 1)::int AS n FROM paas.users WHERE email LIKE 'bench-feed-$TAG-%';
-- one invoice in ten is a top-up's (with its top-up), the others subscription charges'
CREATE TEMP TABLE tops AS
SELECT gen_random_uuid() AS id, g FROM generate_series(1, $INVOICES / 10) g;
INSERT INTO paas.topups (id, user_id, amount, status, order_id, paid_at, expires_at, created_at, updated_at)
SELECT t.id, o.id, 10000, 'PAID', 'BENCH-$TAG-' || t.g, now(), now(), now() - t.g * interval '10 seconds', now()
  FROM tops t JOIN owners o ON o.n = t.g % $OWNERS;
INSERT INTO paas.invoices (number, user_id, kind, amount, description, lines, ref, topup_id, issued_at, paid_at)
SELECT 'INV-$PERIOD-' || lpad(s.g::text, 7, '0'), o.id,
	   CASE WHEN s.g % 10 = 0 THEN 'TOPUP' ELSE 'SUBSCRIPTION' END, 10000,
	   CASE WHEN s.g % 10 = 0 THEN 'Account Top-up' ELSE 'Service Subscription' END,
	   '[{"description": "bench", "quantity": 1, "unitPrice": 10000, "amount": 10000}]',
	   CASE WHEN s.g % 10 = 0 THEN jsonb_build_object('topUpId', t.id)
			ELSE jsonb_build_object('entryId', 900000000000 + s.g) END,
	   t.id, now() - s.g * interval '1 second', now() - s.g * interval '1 second'
  FROM generate_series(1, $INVOICES) s (g)
  JOIN owners o ON o.n = s.g % $OWNERS
  LEFT JOIN tops t ON s.g % 10 = 0 AND t.g = s.g / 10;
SQL
T1=$(date +%s.%N)

# --- the user's ~100 movements: 40 top-ups (25 paid, 5 of them partly
# refunded), 55 charges with their invoices ----------------------------------
q >/dev/null <<SQL
SET client_min_messages = warning;
DO \$\$
DECLARE
	u uuid := '$UID_';
	ctx jsonb := jsonb_build_object('userId', '$UID_');
	o text;
	res jsonb;
	w bigint := paas.wallet_account('$UID_');
BEGIN
	FOR i IN 1 .. 40 LOOP
		o := api.billing_topup(jsonb_build_object('amount', 10000 + i * 100), ctx) #>> '{\$snap,orderId}';
		IF i <= 25 THEN
			PERFORM paas.midtrans_apply(jsonb_build_object('order_id', o, 'status_code', '200',
				'gross_amount', (10000 + i * 100) || '.00', 'transaction_status', 'settlement',
				'currency', 'IDR', 'payment_type', 'gopay'), 'reconcile');
		END IF;
		IF i <= 5 THEN
			PERFORM paas.midtrans_apply(jsonb_build_object('order_id', o, 'status_code', '200',
				'gross_amount', (10000 + i * 100) || '.00', 'transaction_status', 'partial_refund',
				'refund_amount', '1000.00', 'currency', 'IDR', 'payment_type', 'gopay'), 'reconcile');
		END IF;
	END LOOP;
	FOR i IN 1 .. 55 LOOP
		res := paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object(
			'kind', 'subscription_charge', 'memo', 'bench charge ' || i,
			'postings', jsonb_build_array(
				jsonb_build_object('account', w, 'amount', -1000),
				jsonb_build_object('account', paas.platform_account('revenue'), 'amount', 1000)))));
		PERFORM paas.issue_invoice(u, 'SUBSCRIPTION', 1000,
			jsonb_build_object('entryId', (res #>> '{entries,0,id}')::bigint));
	END LOOP;
END
\$\$;
SQL
# The fixture settles before anything is measured: 1,000,000 invoices written
# within seconds leave autovacuum a pass over each table they grew (seconds
# of one core's time, which fell into a measurement or not as autovacuum's
# naptime had it) and a checkpoint of their pages.  A platform that holds
# these rows wrote them over months; its feed is measured here, not the
# fixture's aftermath.
T2=$(date +%s.%N)
q >/dev/null <<SQL
VACUUM (ANALYZE) paas.users, paas.topups, paas.topup_orders, paas.topup_reversals, paas.invoices,
	paas.ledger_entries, paas.ledger_postings;
CHECKPOINT;
SQL
T3=$(date +%s.%N)
TOTAL=$(q -c "SELECT api.billing_transactions('{}', '{\"userId\": \"$UID_\"}') #>> '{pagination,total}'")
NINV=$(q -c "SELECT count(*) FROM paas.invoices")

cat > "$WORK/feed.sql" <<SQL
\set page random(1, 5)
SELECT api.billing_transactions(('{"limit": 20, "page": ' || :page || '}')::jsonb, '{"userId": "$UID_"}') IS NOT NULL;
SQL
chmod 0644 "$WORK/feed.sql"
# pgb_row CLIENTS -> "tps p50 p99 errors"
pgb_row() {
	local out tps err p50 p99
	rm -f "$WORK"/feed.[0-9]*
	out=$(pgb -n -c "$1" -j 2 -T "$SECS" -l --log-prefix=feed -f "$WORK/feed.sql" "${PAAS_DB:-paas}" 2>&1)
	tps=$(awk -F'= ' '/^tps/ {split($2, a, " "); printf "%.0f", a[1]}' <<<"$out")
	err=$(grep -c 'ERROR' <<<"$out" || true)
	read -r p50 p99 < <(latencies feed)
	echo "$tps $p50 $p99 $err"
}
# wrk_row CONNECTIONS -> "req/s p50 p99 non-2xx"
wrk_row() {
	local out
	out=$(wrk -t2 -c"$1" -d"${SECS}s" --latency -H "Authorization: Bearer $FEED_TOKEN" \
		"$BASE/api/v1/billing/transactions?page=2&limit=20")
	echo "$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out")" \
		"$(awk '$1=="99%" {print $2}' <<<"$out") $(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)"
}
read -r P_TPS P_P50 P_P99 P_ERR < <(pgb_row "$CLIENTS")
read -r L_TPS L_P50 L_P99 L_ERR < <(pgb_row "$LOAD_CLIENTS")
read -r W_RPS W_P50 W_P99 W_BAD < <(wrk_row "$CLIENTS")
read -r WL_RPS WL_P50 WL_P99 WL_BAD < <(wrk_row "$LOAD_CLIENTS")

echo
echo "feed benchmark — $(date -u +%F), $(nproc) cores, ${SECS} s per run; $NINV invoices on the platform" \
	"(built in $(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.1f", b - a}') s, settled by VACUUM (ANALYZE) and CHECKPOINT" \
	"in $(awk -v a="$T2" -v b="$T3" 'BEGIN {printf "%.1f", b - a}') s), the user has $TOTAL movements"
echo
echo "| what | clients | rate | p50 | p99 | errors |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| api.billing_transactions (pgbench, pages 1-5 of 20) | $CLIENTS | $P_TPS tps | $P_P50 | $P_P99 | $P_ERR |"
echo "| api.billing_transactions (pgbench, pages 1-5 of 20) | $LOAD_CLIENTS | $L_TPS tps | $L_P50 | $L_P99 | $L_ERR |"
echo "| GET /api/v1/billing/transactions?page=2&limit=20 (wrk) | $CLIENTS | $W_RPS req/s | $W_P50 | $W_P99 | $W_BAD non-2xx |"
echo "| GET /api/v1/billing/transactions?page=2&limit=20 (wrk) | $LOAD_CLIENTS | $WL_RPS req/s | $WL_P50 | $WL_P99 | $WL_BAD non-2xx |"
