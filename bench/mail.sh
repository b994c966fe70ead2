#!/usr/bin/env bash
# bench/mail.sh: the mailer and the outbox, on a RUNNING stack (bench/run.sh
# exports PAAS_PGDATA, PAAS_PGSOCK and PAAS_PGPORT; PAAS_DB defaults to paas).
#
#   1. Mails per second: $MAIL_BENCH_N accounts (default 2000) are created in
#      one statement, which queues their welcome mails (real templates, signed
#      links); the mailer sends them to a local SMTP server (aiosmtpd,
#      tests/fakes/smtpd.py, STARTTLS + AUTH as in the tests) over its kept
#      connections (paas.smtp_connections).  Printed: mails/s from the commit
#      to the last SENT, the messages the server stored, and the connections
#      and AUTHs the run used (the deltas of the server's stats.json; the
#      mailer's connections are closed before the run), and the CPU seconds
#      the mailer and the server spent meanwhile (where the time goes).
#      Then the server's own ceiling: Python's smtplib sends one of those
#      mails $MAIL_BENCH_N times over one connection (STARTTLS + AUTH).
#   2. What the outbox costs a renewal run: four funded fixtures of
#      $MAIL_BENCH_RENEWALS due subscriptions (default 100000), renewed by
#      api.run_renewals() as pg_cron calls it, in the order: outbox triggers
#      of the charges and events disabled, enabled (100,000 outbox rows
#      written by the run's own statements), enabled, disabled; a
#      CHECKPOINT before each.  Printed: the wall times and the ratio of
#      their sums.  The mailer is idle meanwhile (no SMTP server set), and the
#      bench's mails and fixtures are retired at the end (bench/lib/renewals.sh:
#      the fixtures' subscriptions run no instance).  MAIL_BENCH_RENEWALS=0
#      skips this part.
#   3. What the outbox costs a top-up: two fixtures of $MAIL_BENCH_TOPUPS
#      pending top-ups (default 4000), each settled by its own signed
#      notification through api.billing_webhook_midtrans (the webhook
#      route's function; one transaction each, 4 pgbench clients), once with
#      the trigger that writes the top-up's mail disabled and once with it.
#      Printed: top-ups/s, ms per top-up and the ratio.  MAIL_BENCH_TOPUPS=0
#      skips this part.  A cluster without a Midtrans server key gets a
#      throw-away one for the run, in its paas.local.conf (removed on exit).
# Mails earlier areas left queued are held back during part 1 (see there).
# The cluster's mail settings are set with ALTER SYSTEM for the bench and
# reset on exit; MAIL_BENCH_CONNECTIONS sets paas.smtp_connections (default:
# the mailer's own, 4).
set -euo pipefail
. "$(dirname "$0")/../docker/scripts/stack.sh"
. "$(dirname "$0")/lib/renewals.sh"
cd "$STACK_ROOT"

N=${MAIL_BENCH_N:-2000}
RENEWALS=${MAIL_BENCH_RENEWALS:-100000}
TOPUPS=${MAIL_BENCH_TOPUPS:-4000}
TOPUP_CLIENTS=4
KEY_SET=
PER_USER=10
q() { psql_su -At "$@"; }
DIR=$(mktemp -d)
chmod 0755 "$DIR"
SMTPD_PID=

cleanup() {
	q >/dev/null 2>&1 <<'SQL' || true
ALTER SYSTEM RESET paas.smtp_url;
ALTER SYSTEM RESET paas.smtp_user;
ALTER SYSTEM RESET paas.smtp_password_file;
ALTER SYSTEM RESET paas.smtp_ca_file;
ALTER SYSTEM RESET paas.mail_per_recipient_per_hour;
ALTER SYSTEM RESET paas.smtp_connections;
SELECT pg_reload_conf();
SQL
	if [ -n "$KEY_SET" ]; then
		as_pg sed -i '/^paas\.midtrans_server_key = /d' "$PAAS_PGDATA/paas.local.conf" 2>/dev/null || true
		q >/dev/null 2>&1 -c "SELECT pg_reload_conf()" || true
	fi
	# the mails earlier areas queued are due again as they were (see part 1)
	q >/dev/null 2>&1 -c "UPDATE paas.notification_outbox SET due_at = due_at - interval '100 years'
		WHERE status = 'PENDING' AND due_at > now() + interval '50 years'" || true
	if [ -n "$SMTPD_PID" ]; then kill "$SMTPD_PID" 2>/dev/null || true; fi
	rm -rf "$DIR"
}
trap cleanup EXIT

# the local SMTP server
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
	-addext "subjectAltName=IP:127.0.0.1" -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
echo "bench-$(rand_hex 8)" >"$DIR/password"
chmod 600 "$DIR/password"
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR/password"
chmod 0644 "$DIR/cert.pem"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 tests/fakes/smtpd.py --port "$PORT" --maildir "$DIR/Maildir" --cert "$DIR/cert.pem" \
	--key "$DIR/key.pem" --user bench --password-file "$DIR/password" --pid-file "$DIR/smtpd.pid" \
	>"$DIR/smtpd.log" 2>&1 &
SMTPD_PID=$!
WAIT_SECS=10 wait_for test -s "$DIR/smtpd.pid"
stat_of() { /usr/bin/python3 -c "import json,sys; print(json.load(open('$DIR/stats.json'))[sys.argv[1]])" "$1"; }

# The areas before this one queued mails of their own (welcome mails of their
# fixtures' accounts, charges, instances: some 17,000 in a full run) that
# wait while no SMTP server is set.  They would go first (older) and the
# run would measure them too: they are held back (due 100 years later) while
# it runs, and due again as they were on exit.
HELD=$(q -c "WITH h AS (UPDATE paas.notification_outbox SET due_at = due_at + interval '100 years'
	WHERE status = 'PENDING' RETURNING 1) SELECT count(*) FROM h")

q >/dev/null <<SQL
ALTER SYSTEM SET paas.smtp_url = 'smtp://127.0.0.1:$PORT';
ALTER SYSTEM SET paas.smtp_user = 'bench';
ALTER SYSTEM SET paas.smtp_password_file = '$DIR/password';
ALTER SYSTEM SET paas.smtp_ca_file = '$DIR/cert.pem';
ALTER SYSTEM SET paas.mail_per_recipient_per_hour = 100000;
${MAIL_BENCH_CONNECTIONS:+ALTER SYSTEM SET paas.smtp_connections = $MAIL_BENCH_CONNECTIONS;}
SELECT pg_reload_conf();
SQL
sleep 1

# 1. mails per second ---------------------------------------------------------
TAG=bench-mail-$(date +%s%N)
# A connection the mailer may have open from mails it sent before is closed
# by a reload (QUIT), so that what the run used is what the server counts
# meanwhile; should one stay open, it is counted too.
q >/dev/null -c "SELECT pg_reload_conf()"
none_open() { [ "$(stat_of open)" = 0 ]; }
WAIT_SECS=10 wait_for none_open || true
OPEN0=$(stat_of open)
# CPU seconds (user + system) of a process
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
MAILER_PID=$(q -c "SELECT pid FROM paas.mailer_state()")
MCPU0=$(cpu_of "$MAILER_PID")
SCPU0=$(cpu_of "$SMTPD_PID")
C0=$(stat_of connections)
A0=$(stat_of auths)
M0=$(stat_of messages)
# psql shows the last result: the time just before the commit
T0=$(q -c "INSERT INTO paas.users (email, name, password_hash)
	SELECT '$TAG-' || i || '@example.com', 'Bench Mail ' || i, 'x' FROM generate_series(1, $N) i;
	SELECT extract(epoch FROM clock_timestamp())")
DEADLINE=$((SECONDS + 600))
while :; do
	LEFT=$(q -c "SELECT count(*) FROM paas.notification_outbox o JOIN paas.users u ON u.id = o.user_id
		WHERE u.email LIKE '$TAG-%' AND o.status NOT IN ('SENT', 'FAILED', 'SUPPRESSED')")
	[ "$LEFT" = 0 ] && break
	[ $SECONDS -gt $DEADLINE ] && { echo "mail bench: $LEFT mails still queued after 600 s" >&2; exit 1; }
	sleep 0.2
done
read -r SENT SECS < <(q -F' ' -c "SELECT count(*) FILTER (WHERE o.status = 'SENT'),
	extract(epoch FROM max(o.sent_at)) - $T0
	FROM paas.notification_outbox o JOIN paas.users u ON u.id = o.user_id WHERE u.email LIKE '$TAG-%'")
MCPU=$(awk -v a="$(cpu_of "$MAILER_PID")" -v b="$MCPU0" 'BEGIN { printf "%.2f", a - b }')
SCPU=$(awk -v a="$(cpu_of "$SMTPD_PID")" -v b="$SCPU0" 'BEGIN { printf "%.2f", a - b }')
sleep 0.3
CONNS=$(( $(stat_of connections) - C0 + OPEN0 ))
AUTHS=$(( $(stat_of auths) - A0 ))
MSGS=$(( $(stat_of messages) - M0 ))
RATE=$(awk -v n="$SENT" -v s="$SECS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
echo "| mails (welcome, rendered, STARTTLS + AUTH) | sent | seconds | mails/s | messages the server got | SMTP connections | AUTHs | mailer CPU s | SMTP server CPU s |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf "| %s | %s | %.2f | %s | %s | %s | %s | %s | %s |\n" "$N" "$SENT" "$SECS" "$RATE" "$MSGS" "$CONNS" "$AUTHS" "$MCPU" "$SCPU"
echo "(mails queued by earlier areas, held back meanwhile: $HELD)"
q >/dev/null -c "UPDATE paas.users SET deleted_at = now(), is_active = false WHERE email LIKE '$TAG-%'"

# The server's own ceiling: Python's smtplib (STARTTLS + AUTH) sends one of
# the mails the mailer delivered, as stored, $N times over one connection.
/usr/bin/python3 - "$PORT" "$DIR" "$N" <<'PY'
import glob, smtplib, ssl, sys, time
port, d, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
raw = open(sorted(glob.glob(d + "/Maildir/new/*"))[-1], "rb").read()
raw = raw.split(b"\r\n", 2)[2]  # without the server's X-Envelope-* lines
s = smtplib.SMTP("127.0.0.1", port)
s.starttls(context=ssl.create_default_context(cafile=d + "/cert.pem"))
s.login("bench", open(d + "/password").readline().strip())
t0 = time.time()
for i in range(n):
    s.sendmail("no-reply@localhost", ["ceiling-%d@example.com" % i], raw)
secs = time.time() - t0
s.quit()
print()
print("| the SMTP server alone: smtplib, one connection | mails | seconds | mails/s |")
print("|---|---:|---:|---:|")
print("| same message, STARTTLS + AUTH | %d | %.2f | %.0f |" % (n, secs, n / secs))
PY

# The mailer is idle from here on: what parts 2 and 3 measure is the writing
# of the outbox rows, not their sending.
q >/dev/null -c "ALTER SYSTEM RESET paas.smtp_url" -c "SELECT pg_reload_conf()"

# 2. the outbox in a renewal run (MAIL_BENCH_RENEWALS=0 skips it) ---------------
if [ "$RENEWALS" -gt 0 ]; then
run_ms() { q -c "SELECT api.run_renewals()" | sed -E 's/.*"ms": ([0-9.]+).*/\1/'; }

# Four runs in the order without, with, with, without: each fixture is made
# on tables the runs before it grew (their retired subscriptions stay), so
# a drift along the runs weighs on both sides alike; each timed run starts
# after a CHECKPOINT, so no run pays for the writes of the one before.
renewal_run() {	# renewal_run off|on: the run's milliseconds, then its outbox rows
	local tag=bench-outbox-$1-$(date +%s%N) ms rows
	renewal_fixture "$tag" "$RENEWALS" "$PER_USER"
	if [ "$1" = off ]; then
		q >/dev/null -c "ALTER TABLE paas.subscription_charges DISABLE TRIGGER notify_charges" \
			-c "ALTER TABLE paas.subscription_events DISABLE TRIGGER notify_subscription_events"
	fi
	q >/dev/null -c "CHECKPOINT"
	ms=$(run_ms)
	q >/dev/null -c "ALTER TABLE paas.subscription_charges ENABLE TRIGGER notify_charges" \
		-c "ALTER TABLE paas.subscription_events ENABLE TRIGGER notify_subscription_events"
	rows=$(q -c "SELECT count(*) FROM paas.notification_outbox o JOIN paas.users u ON u.id = o.user_id
		WHERE u.email LIKE '$tag-%' AND o.kind = 'subscription_renewed'")
	renewal_retire "$tag"
	echo "$ms $rows"
}
read -r OFF1 _ < <(renewal_run off)
read -r ON1 ROWS1 < <(renewal_run on)
read -r ON2 ROWS2 < <(renewal_run on)
read -r OFF2 _ < <(renewal_run off)
secs() { awk -v ms="$1" 'BEGIN{printf "%.2f", ms/1000}'; }
echo
echo "| renewal run of $RENEWALS due subscriptions | 1st run | 2nd run | wall time (sum) | outbox rows written |"
echo "|---|---:|---:|---:|---:|"
printf "| without the outbox triggers (runs 1 and 4) | %s s | %s s | %s s | 0 |\n" \
	"$(secs "$OFF1")" "$(secs "$OFF2")" "$(secs "$(awk -v a="$OFF1" -v b="$OFF2" 'BEGIN{print a+b}')")"
printf "| with them, one mail per charge (runs 2 and 3) | %s s | %s s | %s s | %s |\n" \
	"$(secs "$ON1")" "$(secs "$ON2")" "$(secs "$(awk -v a="$ON1" -v b="$ON2" 'BEGIN{print a+b}')")" "$ROWS1 + $ROWS2"
printf "| ratio | | | %.2f× | |\n" "$(awk -v a="$ON1" -v b="$ON2" -v c="$OFF1" -v d="$OFF2" \
	'BEGIN{print (c + d > 0 ? (a + b) / (c + d) : 0)}')"
fi

# 3. the outbox in a top-up (MAIL_BENCH_TOPUPS=0 skips it) ---------------------
# $TOPUPS pending top-ups of IDR 50,000 (one per new account, its order as
# the Snap step leaves it), each settled by its own signed Midtrans
# notification through api.billing_webhook_midtrans, the function the
# webhook route calls: one transaction per notification (credit, invoice,
# order and top-up rows), $TOPUP_CLIENTS pgbench clients at a time.  Once
# with the trigger that writes the top-up's mail disabled, once with it.
if [ "$TOPUPS" -gt 0 ]; then
TOPUPS=$(( (TOPUPS + TOPUP_CLIENTS - 1) / TOPUP_CLIENTS * TOPUP_CLIENTS ))
# Notifications are signed with the server key: a throw-away one when the
# cluster has none (a bench cluster), put back on exit.
if [ "$(q -c "SELECT paas.midtrans_configured()")" = f ]; then
	KEY_SET=1
	# written to the cluster's local settings file (as make run writes the
	# real one), never in a statement's text, which a log could print
	echo "paas.midtrans_server_key = 'bench-$(rand_hex 16)'" |
		as_pg sh -c "cat >> '$PAAS_PGDATA/paas.local.conf'"
	q >/dev/null -c "SELECT pg_reload_conf()"
	sleep 1
fi
topup_fixture() {	# topup_fixture PREFIX: $TOPUPS pending top-ups and their signed settlements
	q >/dev/null <<SQL
SET client_min_messages = warning;
$(accounts_sql "$1" "$TOPUPS" 'Bench Payer')
WITH t AS (
	INSERT INTO paas.topups (user_id, amount, order_id, snap_expires_at)
	SELECT u.id, 50000, paas.new_order_id(u.id), now() + interval '1 day'
	  FROM paas.users u WHERE u.email LIKE '$1-%'
	RETURNING id, order_id)
INSERT INTO paas.topup_orders (order_id, topup_id) SELECT order_id, id FROM t;
DROP TABLE IF EXISTS public.bench_topup_notes;
CREATE UNLOGGED TABLE public.bench_topup_notes (i bigint PRIMARY KEY, body jsonb NOT NULL);
INSERT INTO public.bench_topup_notes
SELECT row_number() OVER (ORDER BY t.order_id), jsonb_build_object(
	   'transaction_status', 'settlement', 'status_code', '200', 'order_id', t.order_id,
	   'gross_amount', '50000.00', 'currency', 'IDR', 'payment_type', 'bank_transfer',
	   'transaction_id', gen_random_uuid(), 'status_message', 'midtrans payment notification',
	   'signature_key', encode(digest(t.order_id || '200' || '50000.00'
									  || current_setting('paas.midtrans_server_key'), 'sha512'), 'hex'))
  FROM paas.topups t JOIN paas.users u ON u.id = t.user_id WHERE u.email LIKE '$1-%';
DROP SEQUENCE IF EXISTS public.bench_topup_seq;
CREATE SEQUENCE public.bench_topup_seq;
SQL
	q -c "VACUUM ANALYZE paas.topups" -c "VACUUM ANALYZE paas.topup_orders" \
		-c "VACUUM ANALYZE paas.notification_outbox" -c "VACUUM ANALYZE public.bench_topup_notes" >/dev/null
}
# the next notification, once each (the sequence's value is taken once per call)
echo "SELECT api.billing_webhook_midtrans(n.body) FROM public.bench_topup_notes n
 WHERE n.i = (SELECT nextval('public.bench_topup_seq'));" >"$DIR/settle.sql"
chmod 0644 "$DIR/settle.sql"
settle() {	# settle: "tps latency-ms" of settling every notification once
	local out
	out=$(cd "$DIR" && as_pg "$PG_BIN/pgbench" -n -c "$TOPUP_CLIENTS" -j 2 -t $((TOPUPS / TOPUP_CLIENTS)) \
		-f "$DIR/settle.sql" -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT" "${PAAS_DB:-paas}" 2>&1)
	awk '/^latency average/ {l = $4} /^tps/ {t = $3} END {print t, l}' <<<"$out"
}
paid() {	# paid PREFIX: "credited outbox-rows" of the fixture
	q -F' ' -c "SELECT count(*) FILTER (WHERE t.status = 'PAID'),
		(SELECT count(*) FROM paas.notification_outbox o JOIN paas.users v ON v.id = o.user_id
		  WHERE v.email LIKE '$1-%' AND o.kind = 'topup_paid')
		FROM paas.topups t JOIN paas.users u ON u.id = t.user_id WHERE u.email LIKE '$1-%'"
}
topup_retire() {	# the fixture's mails SUPPRESSED, its notifications dropped
	q >/dev/null <<SQL
UPDATE paas.notification_outbox o SET status = 'SUPPRESSED', last_error = 'benchmark fixture', updated_at = now()
  FROM paas.users u WHERE u.id = o.user_id AND u.email LIKE '$1-%' AND o.status = 'PENDING';
DROP TABLE public.bench_topup_notes;
DROP SEQUENCE public.bench_topup_seq;
SQL
}

P1=bench-topup-off-$(date +%s%N)
topup_fixture "$P1"
q >/dev/null -c "ALTER TABLE paas.topups DISABLE TRIGGER notify_topup_paid" -c "CHECKPOINT"
read -r TPS_OFF LAT_OFF < <(settle)
q >/dev/null -c "ALTER TABLE paas.topups ENABLE TRIGGER notify_topup_paid"
read -r PAID_OFF ROWS_OFF < <(paid "$P1")
topup_retire "$P1"
P2=bench-topup-on-$(date +%s%N)
topup_fixture "$P2"
q >/dev/null -c "CHECKPOINT"
read -r TPS_ON LAT_ON < <(settle)
read -r PAID_ON ROWS_ON < <(paid "$P2")
topup_retire "$P2"
echo
echo "| $TOPUPS top-ups settled by their notifications ($TOPUP_CLIENTS clients) | credited | outbox rows written | top-ups/s | ms per top-up |"
echo "|---|---:|---:|---:|---:|"
printf "| without the top-up mail trigger | %s | %s | %.0f | %.2f |\n" "$PAID_OFF" "$ROWS_OFF" "$TPS_OFF" "$LAT_OFF"
printf "| with it (one mail per top-up) | %s | %s | %.0f | %.2f |\n" "$PAID_ON" "$ROWS_ON" "$TPS_ON" "$LAT_ON"
printf "| ratio (time per top-up) | | | | %.2f× |\n" "$(awk -v a="$LAT_ON" -v b="$LAT_OFF" 'BEGIN{print (b > 0 ? a / b : 0)}')"
fi
