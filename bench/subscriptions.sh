#!/usr/bin/env bash
# bench/subscriptions.sh: one renewal run (api.run_renewals(), as pg_cron
# calls it) over N due subscriptions, for each N in $SUB_BENCH_SIZES
# (default "10000 100000"): wall time of the run, charges/s and the WAL the
# run wrote, printed as a markdown table.  The N subscriptions belong to
# N / $SUB_BENCH_PER_USER funded users (default 10 services each), so every
# one is charged: one ledger entry, one invoice, one charge row.  The
# fixtures (bench/lib/renewals.sh) are sold without instances: the run
# keeps them ACTIVE and never reads an instance, and instances would leave
# the provisioner their creation and removal during the areas after this one.
#
# Runs against a RUNNING stack: bench/run.sh exports PAAS_PGDATA,
# PAAS_PGSOCK and PAAS_PGPORT (PAAS_DB defaults to paas).  It writes bench
# users (bench-sub-*), their wallets, postings and invoices into that
# database; at the end the bench subscriptions are EXPIRED (through the
# status machine) so that later runs do not renew them.
set -euo pipefail
. "$(dirname "$0")/../docker/scripts/stack.sh"
. "$(dirname "$0")/lib/renewals.sh"
cd "$STACK_ROOT"

SIZES=${SUB_BENCH_SIZES:-10000 100000}
PER_USER=${SUB_BENCH_PER_USER:-10}
q() { psql_su -At "$@"; }

# The scheduled renewal job (make run) would renew the fixtures on its own:
# paused while this runs, resumed on exit.
PAUSED=$(q -c "SELECT string_agg(jobid::text, ',') FROM cron.job WHERE jobname = 'paas-renewals' AND active" 2>/dev/null || true)
if [ -n "$PAUSED" ]; then
	q -c "UPDATE cron.job SET active = false WHERE jobid IN ($PAUSED)" >/dev/null
	trap 'q -c "UPDATE cron.job SET active = true WHERE jobid IN ($PAUSED)" >/dev/null' EXIT
fi

echo "| due subscriptions | run wall time | charges/s | batches | renewed | charges with ledger entry and invoice | WAL written by the run |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for N in $SIZES; do
	TAG=$(date +%s%N)
	renewal_fixture "bench-sub-$TAG" "$N" "$PER_USER"
	LSN=$(q -c "SELECT pg_current_wal_lsn()")
	OUT=$(q -c "SELECT api.run_renewals()")
	WAL=$(q -c "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '$LSN'))")
	MS=$(echo "$OUT" | sed -E 's/.*"ms": ([0-9.]+).*/\1/')
	RENEWED=$(echo "$OUT" | sed -E 's/.*"renewed": ([0-9]+).*/\1/')
	BATCHES=$(echo "$OUT" | sed -E 's/.*"batches": ([0-9]+).*/\1/')
	ENTRIES=$(q -c "SELECT count(*) FILTER (WHERE c.entry_id IS NOT NULL AND c.invoice_id IS NOT NULL) FROM paas.subscription_charges c JOIN paas.subscriptions s ON s.id = c.subscription_id JOIN paas.services v ON v.id = s.service_id WHERE v.name LIKE 'bench-sub-$TAG-%' AND c.kind = 'renewal'")
	RATE=$(awk -v n="$RENEWED" -v ms="$MS" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')
	printf "| %s | %.2f s | %s | %s | %s | %s | %s |\n" "$N" "$(awk -v ms="$MS" 'BEGIN{print ms/1000}')" \
		"$RATE" "$BATCHES" "$RENEWED" "$ENTRIES" "$WAL"
	renewal_retire "bench-sub-$TAG"
done
