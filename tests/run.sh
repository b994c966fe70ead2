#!/usr/bin/env bash
# `make test`: the whole suite against the real parts, in a throw-away
# cluster and a free port, torn down at the end (also on failure).
#   1. build (shipped httpd + the -Werror ASan/UBSan httpd), install extension
#   2. pgTAP through pg_prove: tests/pgtap/*.sql (one file per area, plus the
#      API snapshot and the background-worker test)
#   3. the OpenAPI document api.openapi() through `redocly lint`
#      (tests/openapi/lint.sh)
#   4. HTTP black-box tests (pytest) against the ASan httpd
#   5. fault injection: the crash classes of tests/fault/crash.py at the same
#      httpd, which must still answer; then the libFuzzer harnesses of
#      tests/fuzz (PAAS_FUZZ_SECS, 20 s)
#   6. `make run` under faults (tests/fault/supervise.sh)
#   (first: tests/kube, the checks of the Kubernetes stand-in; no cluster needed)
# Exits non-zero on any failure.
# While developing: PAAS_TEST_PGTAP='node_agent.sql core.sql' runs those pgTAP
# files only, PAAS_TEST_HTTP='tests/http/test_auth.py -k login' those HTTP
# tests only, PAAS_TEST_SKIP_UPGRADE=1 skips the upgrade check,
# PAAS_TEST_SKIP_FUZZ=1 the fault and fuzz steps and PAAS_TEST_SKIP_FAULT=1
# the fault test of `make run` (none of them in CI);
# PAAS_TEST_KUBE='tests/kube/test_protocol.py' runs those stand-in checks only (skip: none).
set -euo pipefail
. "$(dirname "$0")/../docker/scripts/stack.sh"
cd "$STACK_ROOT"

TMP=$(mktemp -d)
chmod 0755 "$TMP"
export PAAS_PGDATA=$TMP/pg PAAS_PGSOCK=$TMP/sock PAAS_PGPORT=${PAAS_TEST_PGPORT:-5499}
export PAAS_PGLISTEN='' PAAS_TICK=200ms
# Short node-health periods so the worker test sees every transition quickly.
export PAAS_PG_EXTRA_CONF=${PAAS_PG_EXTRA_CONF:-}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port)
export PAAS_HTTP_LISTEN=127.0.0.1:$HTTP_PORT
export PAAS_METRICS_LISTEN=127.0.0.1:$(free_port)
export PAAS_METRICS_URL=http://$PAAS_METRICS_LISTEN
# The tests act as the proxy (127.0.0.1, one hop): each test client names its
# own address in X-Forwarded-For.  Other loopback addresses (127.0.0.2 ...)
# are direct clients, for the tests of what a client may hold.
export PAAS_ACCESS_LOG=0 PAAS_TRUST_PROXY=1 PAAS_TRUSTED_PROXIES=127.0.0.1/32
# Browser origins that may call the API (tests/http/test_http_conventions.py)
export PAAS_CORS_ORIGINS='https://app.example.test, https://admin.example.test'
# The seller block of invoice PDFs (tests/http/test_invoice_pdf.py reads it back)
export PAAS_SELLER_NAME="PT Contoh Awan" PAAS_SELLER_ADDRESS="Jl. Sudirman 1|Jakarta 10220" PAAS_SELLER_TAX_ID=01.234.567.8-901.000

cleanup() {
	local rc=$?
	stack_down
	if [ -n "${FAKE_MIDTRANS_PID:-}" ]; then kill "$FAKE_MIDTRANS_PID" 2>/dev/null || true; fi
	if [ -s "${PAAS_TEST_SMTPD_PID:-/nonexistent}" ]; then kill "$(cat "$PAAS_TEST_SMTPD_PID")" 2>/dev/null || true; fi
	if [ -n "${FAKE_KUBE_PID:-}" ]; then kill "$FAKE_KUBE_PID" 2>/dev/null || true; fi
	# a stand-in restarted by a test
	if [ -f "$TMP/kube/pid" ]; then kill "$(cat "$TMP/kube/pid")" 2>/dev/null || true; fi
	if [ $rc -ne 0 ] && [ -f "$PAAS_PGDATA/server.log" ]; then
		echo "---- server.log (tail) ----"; tail -n 40 "$PAAS_PGDATA/server.log"
	fi
	if [ $rc -ne 0 ] && [ -f "$TMP/httpd.log" ]; then
		echo "---- httpd.log (tail) ----"; tail -n 40 "$TMP/httpd.log"
	fi
	# PAAS_TEST_KEEP_LOGS=DIR (while developing): the logs are copied there
	if [ -n "${PAAS_TEST_KEEP_LOGS:-}" ] && [ -z "${CI:-}" ]; then
		mkdir -p "$PAAS_TEST_KEEP_LOGS"
		cp -f "$PAAS_PGDATA/server.log" "$TMP/httpd.log" "$TMP/kube/log" "$PAAS_TEST_KEEP_LOGS/" 2>/dev/null || true
	fi
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT

# Fake Midtrans (tests/fakes/midtrans.py): Snap, status API and signed
# notifications to httpd's webhook.  httpd and the cluster get its URL and a
# throw-away server key; the worker reconciles orders older than 2 s.
export MIDTRANS_SERVER_KEY=SB-Mid-server-test-$(rand_hex 8)
/usr/bin/python3 tests/fakes/midtrans.py --server-key "$MIDTRANS_SERVER_KEY" \
	--webhook-url "http://$PAAS_HTTP_LISTEN/api/v1/billing/webhooks/midtrans" \
	--port-file "$TMP/midtrans.port" >"$TMP/midtrans.log" 2>&1 &
FAKE_MIDTRANS_PID=$!
WAIT_SECS=10 wait_for test -s "$TMP/midtrans.port"
export MIDTRANS_FAKE_URL=http://127.0.0.1:$(cat "$TMP/midtrans.port")
export MIDTRANS_SNAP_URL=$MIDTRANS_FAKE_URL/snap/v1 MIDTRANS_TIMEOUT_MS=2000
PAAS_PG_EXTRA_CONF="$PAAS_PG_EXTRA_CONF
paas.midtrans_server_key = '$MIDTRANS_SERVER_KEY'
paas.midtrans_api_url = '$MIDTRANS_FAKE_URL'
paas.billing_reconcile_after = '2s'
paas.billing_reconcile_interval = '1s'"

echo "== Kubernetes stand-in"
# tests/fakes/kubeapi.py against the real kubectl, curl and Kubernetes' published schemas
# (npm kubernetes-models, installed into tests/kube/node_modules from its package-lock.json
# when missing); about 30 s. PAAS_TEST_KUBE: pytest arguments instead of tests/kube, or
# "skip" (never in CI).
if [ "${PAAS_TEST_KUBE:-}" = skip ] && [ -z "${CI:-}" ]; then
	echo "skipped (PAAS_TEST_KUBE)"
else
	timeout 150 /usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=3 ${PAAS_TEST_KUBE:-tests/kube}
fi

# The SMTP server of the mailer (tests/fakes/smtpd.py, Debian's aiosmtpd):
# STARTTLS with a throw-away self-signed certificate the mailer trusts
# through paas.smtp_ca_file, AUTH with a password file, a Maildir the tests
# read.  tests/http/test_notifications.py stops and starts it by the same
# command line (PAAS_TEST_SMTPD_CMD, pid in PAAS_TEST_SMTPD_PID).
SMTP_DIR=$TMP/smtp
mkdir -p "$SMTP_DIR"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
	-keyout "$SMTP_DIR/key.pem" -out "$SMTP_DIR/cert.pem" 2>/dev/null
echo "smtp-$(rand_hex 12)" >"$SMTP_DIR/password"
chmod 600 "$SMTP_DIR/password"
[ "$(id -u)" -eq 0 ] && chown postgres "$SMTP_DIR/password"
chmod 0755 "$SMTP_DIR"
chmod 0644 "$SMTP_DIR/cert.pem"
SMTP_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export PAAS_TEST_MAILDIR=$SMTP_DIR/Maildir PAAS_TEST_SMTPD_PID=$SMTP_DIR/smtpd.pid
export PAAS_TEST_SMTPD_CMD="/usr/bin/python3 $STACK_ROOT/tests/fakes/smtpd.py --port $SMTP_PORT --maildir $PAAS_TEST_MAILDIR --cert $SMTP_DIR/cert.pem --key $SMTP_DIR/key.pem --user paas-mailer --password-file $SMTP_DIR/password --slow 4 --pid-file $PAAS_TEST_SMTPD_PID"
$PAAS_TEST_SMTPD_CMD >"$SMTP_DIR/smtpd.log" 2>&1 &
WAIT_SECS=10 wait_for test -s "$PAAS_TEST_SMTPD_PID"
PAAS_PG_EXTRA_CONF="$PAAS_PG_EXTRA_CONF
paas.smtp_url = 'smtp://127.0.0.1:$SMTP_PORT'
paas.smtp_tls = 'starttls'
paas.smtp_user = 'paas-mailer'
paas.smtp_password_file = '$SMTP_DIR/password'
paas.smtp_ca_file = '$SMTP_DIR/cert.pem'
paas.mail_from = 'Paas Cloud <no-reply@paas.test>'
paas.public_url = 'https://app.paas.test'
paas.mail_admin_to = 'ops@paas.test'
paas.mail_retry_base = '1s'
paas.mail_retry_max = '4s'
paas.mail_lease = '5s'
paas.mail_per_recipient_per_hour = 1000
paas.invoice_seller_name = '$PAAS_SELLER_NAME'
paas.invoice_seller_address = '$PAAS_SELLER_ADDRESS'
paas.invoice_seller_tax_id = '$PAAS_SELLER_TAX_ID'"
# The Kubernetes stand-in (tests/fakes/kubeapi.py): the provisioner drives
# it, and its nodes (large ones, so the suite's sales fit) reach the node
# registry through the provisioner's node sync, so the capacity check is
# real.  Short resync and deadline settings keep the instance tests quick.
# It serves HTTPS with a throw-away CA and accepts the bearer token of
# $TMP/kube/accepted; paas reads its own copy ($TMP/kube/token), as a pod
# reads its service-account token (a test rotates both).
mkdir -p "$TMP/kube"
KUBE_TOKEN=kube-$(rand_hex 12)
echo "$KUBE_TOKEN" > "$TMP/kube/accepted"
echo "$KUBE_TOKEN" > "$TMP/kube/token"
KUBE_ARGS="--tls-dir $TMP/kube/tls --token-file $TMP/kube/accepted --kubeconfig $TMP/kube/kubeconfig \
	--nodes 3 --node-cpu 64 --node-memory 256Gi --node-prefix sim-node-"
# shellcheck disable=SC2086
/usr/bin/python3 tests/fakes/kubeapi.py --port 0 --port-file "$TMP/kube/port" $KUBE_ARGS >"$TMP/kube/log" 2>&1 &
FAKE_KUBE_PID=$!
WAIT_SECS=20 wait_for test -s "$TMP/kube/port"
chmod -R a+rX "$TMP/kube"
export PAAS_TEST_KUBE_URL=https://127.0.0.1:$(cat "$TMP/kube/port") PAAS_TEST_KUBE_DIR=$TMP/kube \
	PAAS_TEST_KUBE_PID=$FAKE_KUBE_PID PAAS_TEST_KUBE_ARGS="$KUBE_ARGS"
PAAS_PG_EXTRA_CONF="$PAAS_PG_EXTRA_CONF
paas.k8s_api_url = '$PAAS_TEST_KUBE_URL'
paas.k8s_token_file = '$TMP/kube/token'
paas.k8s_ca_file = '$TMP/kube/tls/ca.crt'
paas.instance_resync_interval = '2s'"

echo "== build"
# The extension goes into a private copy of the server's installation, never
# into the system's (runs of several checkouts do not disturb each other).
stack_private_pg "$TMP/pginst"
stack_build
make -C httpd -s asan >/dev/null

echo "== cluster"
stack_secrets "$TMP/secrets.env"
stack_db_up
psql_su -c "CREATE EXTENSION IF NOT EXISTS pgtap" >/dev/null
# the stand-in's nodes are in the registry before any test sells anything
sim_nodes_ready() {
	test "$(psql_su -Atc "SELECT count(*) FROM paas.nodes WHERE name LIKE 'sim-node-%' AND status = 'ACTIVE'")" = 3
}
if ! WAIT_SECS=30 wait_for sim_nodes_ready; then
	echo "the provisioner did not register the stand-in's nodes" >&2
	exit 1
fi

echo "== pgTAP"
# pg_prove runs as the cluster owner, who may not be able to read a checkout
# under a private directory: it reads copies in the test's own directory
# (with docker/seed, which the catalog test includes, and tests/import, the
# original system's database of the import test, and tests/fixtures, the
# Node objects node_from_k8s.sql converts).
mkdir -p "$TMP/tree/tests" "$TMP/tree/docker"
cp -r tests/pgtap "$TMP/tree/tests/"
cp -r docker/seed "$TMP/tree/docker/"
cp -r tests/import "$TMP/tree/tests/"
cp -r tests/fixtures "$TMP/tree/tests/"
chmod -R a+rX "$TMP/tree"
(cd "$TMP/tree/tests/pgtap" && as_pg pg_prove --ext .sql -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT" -d "$PAAS_DB" \
	$(cd "$TMP/tree/tests/pgtap" && ls ${PAAS_TEST_PGTAP:-*.sql} | sort))

echo "== OpenAPI document (redocly lint)"
PG_BIN=$PG_BIN bash tests/openapi/lint.sh

echo "== extension upgrades"
# PAAS_TEST_SKIP_UPGRADE=1 skips this step while an upgrade script is being
# written; CI never skips it.
if [ -n "${PAAS_TEST_SKIP_UPGRADE:-}" ] && [ -z "${CI:-}" ]; then
	echo "skipped (PAAS_TEST_SKIP_UPGRADE)"
else
	bash tests/upgrade/assemble.sh --check
	bash tests/upgrade/check.sh
	bash tests/upgrade/data.sh
fi

echo "== HTTP (ASan/UBSan httpd)"
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export LSAN_OPTIONS=suppressions=$STACK_ROOT/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stack_httpd_start "$STACK_ROOT/httpd/paas-httpd-asan" "$TMP/httpd.log"
export PAAS_URL=http://$PAAS_HTTP_LISTEN
# Commands the tests run as the cluster owner start in / (the checkout may be
# out of the postgres user's reach).
AS_PG=
[ "$(id -u)" -eq 0 ] && AS_PG="env -C / runuser -u postgres --"
export PAAS_TEST_PSQL="$AS_PG $PG_BIN/psql -X -q -At -v ON_ERROR_STOP=1 -h $PAAS_PGSOCK -p $PAAS_PGPORT -d $PAAS_DB"
export PAAS_TEST_HTTPD_LOG=$TMP/httpd.log
export PAAS_TEST_AS_PG="$AS_PG" PAAS_TEST_PGBIN=$PG_BIN PAAS_TEST_PGHOST=$PAAS_PGSOCK PAAS_TEST_PGPORT=$PAAS_PGPORT
PGCTL="$PG_BIN/pg_ctl -D $PAAS_PGDATA -w -t 60"
PGCTL="$AS_PG $PGCTL"
export PAAS_TEST_PG_STOP="$PGCTL -m fast stop"
export PAAS_TEST_PG_START="$PGCTL -l $PAAS_PGDATA/server.log start"
export PAAS_TEST_SERVER_LOG=$PAAS_PGDATA/server.log
/usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=5 ${PAAS_TEST_HTTP:-tests/http}
SKIP_FUZZ=
[ -n "${PAAS_TEST_SKIP_FUZZ:-}" ] && [ -z "${CI:-}" ] && SKIP_FUZZ=1
if [ -z "$SKIP_FUZZ" ]; then
	echo "== fault injection (ASan/UBSan httpd)"
	/usr/bin/python3 tests/fault/crash.py
fi
stack_down
if grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|AddressSanitizer:' "$TMP/httpd.log"; then
	echo "sanitizer reports in httpd log" >&2
	exit 1
fi
if [ -z "$SKIP_FUZZ" ]; then
	echo "== fuzz (libFuzzer, ${PAAS_FUZZ_SECS:-20} s)"
	bash tests/fuzz/run.sh
fi

echo "== make run under faults"
# The real docker/scripts/run.sh on a data directory and ports of its own;
# PAAS_TEST_SKIP_FAULT=1 skips it while developing (CI never skips it).
if [ -n "${PAAS_TEST_SKIP_FAULT:-}" ] && [ -z "${CI:-}" ]; then
	echo "skipped (PAAS_TEST_SKIP_FAULT)"
else
	timeout 90 bash tests/fault/supervise.sh
fi
echo "== all tests passed"
