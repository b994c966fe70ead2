#!/usr/bin/env bash
# tests/fault/supervise.sh: `make run` under faults.  Runs the real
# docker/scripts/run.sh in the background on a throw-away data directory and
# ports of its own, then kills its processes and checks what comes back:
#   - httpd killed (SIGKILL): health answers again, PostgreSQL untouched
#   - postmaster killed: it comes back, health answers again, httpd untouched
#   - a second run.sh on the same data directory refuses, changes nothing
#   - the superuser's psql that run.sh prints, and the one make role-login
#     prints for paas_bi, connect as printed
#   - make status names pids, URL, data directory and logs
#   - make stop stops the instance; nothing is left running
#   - run.sh itself killed: its processes stop too
#   - a taken database port is named before anything starts; cluster_start
#     names the server log when PostgreSQL fails, and starts a cluster whose
#     postmaster was just killed
#   - run.sh as an ordinary user says that it needs root
#   - with no cluster configured: the simulated cluster is announced, a
#     newcomer's subscription reaches RUNNING with its URL on it, and a
#     killed stand-in is started again
# Called by tests/run.sh (which exports PAAS_PG_PREFIX / PG_BIN: the
# extension of the private installation); alone it makes its own.  Every
# wait is bounded; the whole script takes well under 90 s.  run.sh's output
# may hold secrets: it goes to files, and only redacted tails are shown.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

T=$(mktemp -d)
chmod 0755 "$T"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ -z "${PAAS_PG_PREFIX:-}" ]; then
	# shellcheck source=../../docker/scripts/stack.sh
	(. "$ROOT/docker/scripts/stack.sh" && stack_private_pg "$T/pginst")
	export PAAS_PG_PREFIX=$T/pginst
	unset PG_BIN
fi
if [ -z "${PG_BIN:-}" ]; then
	PG_BIN=$PAAS_PG_PREFIX$(dirname "$(pg_config --pkglibdir)")/bin
fi
export PG_BIN
unset MIDTRANS_SERVER_KEY PAAS_PG_EXTRA_CONF PAAS_DB_URL PAAS_JWT_SECRET PAAS_DB_PASSWORD PAAS_NODE_JOIN_TOKEN
PAAS_PGPORT=$(free_port)
PAAS_HTTP_LISTEN=127.0.0.1:$(free_port)
export PAAS_PGDATA=$T/pg PAAS_PGSOCK=$T/sock PAAS_PGPORT PAAS_PGLISTEN=127.0.0.1 PAAS_TICK=1s
export PAAS_HTTP_LISTEN PAAS_ACCESS_LOG=0 PAAS_ADMIN_EMAIL=admin@fault.test
# run.sh generates the administrator's password and prints it once: the test
# reads it (to look for it in the logs) and never shows it.
unset PAAS_ADMIN_PASSWORD
GEN_PW=''
URL=http://$PAAS_HTTP_LISTEN/api/v1/health
RUN_SH=$ROOT/docker/scripts/run.sh

RUN_PID='' LISTENER_PID='' failures=0 n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)); failures=$((failures + 1))
	echo "not ok $n - $1"
	shift
	local f
	for f in "$@"; do
		echo "    ---- $(basename "$f") (tail, redacted) ----"
		redact <"$f" | tail -n 15 | sed 's/^/    /'
	done
}
check() { # description command...: ok when the command succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what" "$T/run.out"; fi
}
redact() { sed -e "s/${GEN_PW:-@@none@@}/<redacted>/g" -e 's/^\(administrator created: [^ ]*\) .*/\1 <redacted>/'; }

# Whether process $1 exists and is not a zombie (nobody may reap it here).
alive() {
	local st
	[ -n "${1:-}" ] || return 1
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}
# The live child of $1 whose command name is $2.
child_named() {
	local d st state ppid
	for d in /proc/[0-9]*; do
		[ "$(cat "$d/comm" 2>/dev/null)" = "$2" ] || continue
		st=$(cat "$d/stat" 2>/dev/null) || continue
		read -r state ppid _ <<<"${st##*) }"
		if [ "$ppid" = "$1" ] && [ "$state" != Z ]; then
			echo "${d#/proc/}"
			return 0
		fi
	done
	return 1
}
postmaster() { head -n 1 "$PAAS_PGDATA/postmaster.pid" 2>/dev/null || true; }
health() { curl -sf -o /dev/null --max-time 3 "$URL"; }
# Waits until "$@" succeeds, at most $1 seconds.
within() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@" 2>/dev/null; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.3
	done
}
# Live processes working in the data directory (a postmaster, its children).
in_pgdata() {
	local d dir
	dir=$(readlink -f "$PAAS_PGDATA")
	for d in /proc/[0-9]*; do
		if [ "$(readlink "$d/cwd" 2>/dev/null)" = "$dir" ] && alive "${d#/proc/}"; then
			echo "${d#/proc/}"
		fi
	done
	return 0
}
nothing_left() {
	# shellcheck disable=SC2016 # the inner shell's $0
	[ -z "$(in_pgdata)" ] && ! alive "$RUN_PID" && ! health && ! alive "${K2:-}" &&
		! timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$PAAS_PGPORT" 2>/dev/null
}

run_gone() { ! alive "$RUN_PID"; }
cleanup() {
	local rc=$? p
	if [ -n "$LISTENER_PID" ]; then kill "$LISTENER_PID" 2>/dev/null || true; fi
	if alive "$RUN_PID"; then
		kill -TERM "$RUN_PID" 2>/dev/null || true
		within 60 run_gone || kill -KILL "$RUN_PID" 2>/dev/null || true
	fi
	for p in $(in_pgdata); do kill -QUIT "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in $(in_pgdata); do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Starts run.sh in the background; waits until it says the instance is up
# (before that, its own start-up checks run) and health answers.
is_up() { grep -q "^paas is up" "$T/run.out" && health; }
start_instance() {
	: >"$T/run.out"
	bash "$RUN_SH" >>"$T/run.out" 2>&1 &
	RUN_PID=$!
	within 75 is_up
}

# ---- supervision ----
if ! start_instance; then
	not_ok "run.sh brings the instance up (health answers)" "$T/run.out" "$T/httpd.log" "$T/pg/server.log"
	exit 1
fi
ok "run.sh brings the instance up (health answers)"
GEN_PW=$(sed -n 's|^administrator created: [^ ]* / \([^ ]*\).*|\1|p' "$T/run.out")
no_password_in_logs() { [ -n "$GEN_PW" ] && ! grep -qF -- "$GEN_PW" "$T/run.log" "$T/httpd.log" "$T/pg/server.log"; }
check "the generated administrator password is shown once, and is in no log" no_password_in_logs
PM1=$(postmaster)
H1=$(child_named "$RUN_PID" paas-httpd || true)
check "httpd is a child of run.sh" alive "$H1"

# ---- the database logins it prints work as printed (from a shell as root) ----
SU_CMD=$(sed -n 's/^  database as superuser: //p' "$T/run.out" | head -n 1)
: >"$T/psql.err"
printed_su_connects() {
	[ -n "$SU_CMD" ] && (cd "$ROOT" && bash -c "$SU_CMD") <<<"SELECT 'as:' || current_user;" 2>>"$T/psql.err" | grep -q 'as:postgres'
}
if printed_su_connects; then
	ok "the superuser's psql that run.sh prints connects as printed ($SU_CMD)"
else
	not_ok "the superuser's psql that run.sh prints connects as printed ($SU_CMD)" "$T/run.out" "$T/psql.err"
fi
set +e
make -s -C "$ROOT" role-login ROLE=paas_bi >"$T/role.out" 2>&1
rc=$?
set -e
BI_CMD=$(sed -n 's/^  \(\(\S*\/\)\{0,1\}psql .*\)/\1/p' "$T/role.out" | head -n 1)
printed_bi_connects() {
	[ "$rc" -eq 0 ] && [ -n "$BI_CMD" ] &&
		env -u PGPASSWORD bash -c "$BI_CMD" <<<"SELECT 'as:' || current_user FROM reporting.wallet_liability;" \
			2>>"$T/psql.err" | grep -q 'as:paas_bi'
}
if printed_bi_connects; then
	ok "make role-login ROLE=paas_bi prints a psql command that logs in as printed"
else
	not_ok "make role-login ROLE=paas_bi prints a psql command that logs in as printed (exit $rc)" "$T/role.out" "$T/psql.err"
fi

# ---- no cluster configured: the simulated one, and a newcomer's first app ----
if grep -q "simulated cluster; set PAAS_K8S_API_URL for a real one" "$T/run.out"; then
	ok "run.sh announces the simulated cluster"
else
	not_ok "run.sh announces the simulated cluster" "$T/run.out"
fi
K1=$(child_named "$RUN_PID" python3 || true)
if python3 "$ROOT/tests/fault/newcomer.py" "http://$PAAS_HTTP_LISTEN" "$PAAS_ADMIN_EMAIL" <<<"$GEN_PW" >"$T/newcomer.out" 2>&1; then
	ok "a newcomer's subscription goes from PENDING to RUNNING with its URL on the simulated cluster ($(tail -n 2 "$T/newcomer.out" | head -n 1))"
else
	not_ok "a newcomer's subscription goes from PENDING to RUNNING with its URL on the simulated cluster" \
		"$T/newcomer.out" "$T/kube.log" "$T/run.out"
fi
kill -KILL "$K1" 2>/dev/null || true
KPORT=$(cat "$T/kube/port" 2>/dev/null || true)
kube_back() { local k; k=$(child_named "$RUN_PID" python3) && [ "$k" != "$K1" ] && [ "$(cat "$T/kube/port" 2>/dev/null)" = "$KPORT" ]; }
check "simulated cluster killed (SIGKILL): it is started again on the same port within 30 s" within 30 kube_back
K2=$(child_named "$RUN_PID" python3 || true)

kill -KILL "$H1" 2>/dev/null || true
httpd_back() { local h; h=$(child_named "$RUN_PID" paas-httpd) && [ "$h" != "$H1" ] && health; }
check "httpd killed (SIGKILL): a new httpd answers health within 30 s" within 30 httpd_back
same_postmaster() { [ "$(postmaster)" = "$1" ] && alive "$1"; }
check "httpd killed: PostgreSQL was not restarted (same postmaster pid $PM1)" same_postmaster "$PM1"
H2=$(child_named "$RUN_PID" paas-httpd || true)

kill -KILL "$PM1" 2>/dev/null || true
pg_back() { local p; p=$(postmaster) && [ -n "$p" ] && [ "$p" != "$PM1" ] && alive "$p" && health; }
check "postmaster killed (SIGKILL): a new postmaster, and health answers, within 60 s" within 60 pg_back
PM2=$(postmaster)
check "postmaster killed: httpd kept running (same pid $H2)" alive "$H2"

set +e
timeout 60 bash "$RUN_SH" >"$T/run2.out" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "already running" "$T/run2.out" && grep -q "$RUN_PID" "$T/run2.out"; then
	ok "a second run.sh on the same data directory refuses (exit $rc) and names the running pid"
else
	not_ok "a second run.sh on the same data directory refuses (exit $rc) and names the running pid" "$T/run2.out"
fi
untouched() { same_postmaster "$PM2" && alive "$H2" && health; }
check "the second run.sh left the first instance alone (postmaster $PM2, httpd $H2, health)" untouched

# ---- status and stop (the Makefile targets) ----
set +e
make -s -C "$ROOT" status >"$T/status.out" 2>&1
rc=$?
set -e
if [ "$rc" -eq 0 ] && grep -q "$RUN_PID" "$T/status.out" && grep -q "$PM2" "$T/status.out" &&
	grep -q "$H2" "$T/status.out" && grep -q "$PAAS_HTTP_LISTEN" "$T/status.out" &&
	grep -q "$PAAS_PGDATA" "$T/status.out" && grep -q "$PAAS_PGDATA/server.log" "$T/status.out"; then
	ok "make status names the pids, URL, data directory and logs"
else
	not_ok "make status names the pids, URL, data directory and logs (exit $rc)" "$T/status.out"
fi

set +e
timeout 100 make -s -C "$ROOT" stop >"$T/stop.out" 2>&1
rc=$?
set -e
if [ "$rc" -eq 0 ]; then ok "make stop succeeds"; else not_ok "make stop succeeds (exit $rc)" "$T/stop.out" "$T/run.out"; fi
check "after make stop nothing of the instance runs (run.sh, postmaster, httpd, stand-in, ports)" within 15 nothing_left
rc=0
wait "$RUN_PID" 2>/dev/null || rc=$?
check "run.sh ended with status 0 on SIGTERM (got $rc)" test "$rc" -eq 0
if grep -q 'restarting' "$T/run.log"; then ok "run.sh logged the restarts in run.log"; else not_ok "run.sh logged the restarts in run.log" "$T/run.out"; fi

# ---- run.sh killed outright: its children stop with it ----
if start_instance; then
	PM3=$(postmaster)
	H3=$(child_named "$RUN_PID" paas-httpd || true)
	# make role-login stored PAAS_BI_PASSWORD in the secrets file above
	no_role_password() { [ -r "/proc/$1/environ" ] && ! tr '\0' '\n' <"/proc/$1/environ" | grep -q '^PAAS_BI_PASSWORD='; }
	role_password_kept_from_children() { grep -q '^PAAS_BI_PASSWORD=' "$T/secrets.env" && no_role_password "$H3" && no_role_password "$PM3"; }
	check "httpd and PostgreSQL do not get the stored paas_bi password in their environment" role_password_kept_from_children
	kill -KILL "$RUN_PID" 2>/dev/null || true
	{ wait "$RUN_PID"; } 2>/dev/null || true
	gone() { ! alive "$PM3" && ! alive "$H3" && [ -z "$(in_pgdata)" ]; }
	check "run.sh killed (SIGKILL): its postmaster and httpd stop within 30 s" within 30 gone
else
	not_ok "run.sh starts again on the existing data directory" "$T/run.out"
fi

# ---- a taken database port ----
/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1])); time.sleep(120)' "$T/taken.port" &
LISTENER_PID=$!
within 10 test -s "$T/taken.port"
TAKEN=$(cat "$T/taken.port")
set +e
PAAS_PGPORT=$TAKEN timeout 60 bash "$RUN_SH" >"$T/run3.out" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "$TAKEN" "$T/run3.out" && grep -qi "in use" "$T/run3.out" &&
	[ -z "$(in_pgdata)" ]; then
	ok "run.sh on a taken database port says so (port $TAKEN in use) and starts nothing"
else
	not_ok "run.sh on a taken database port says so (port $TAKEN in use) and starts nothing (exit $rc)" "$T/run3.out"
fi

# ---- lib.sh's cluster_start (pg_ctl): a failed start names the log; a
# ---- postmaster killed just before does not pass for a running one
lib() { (. "$ROOT/docker/scripts/lib.sh" && "$@"); }
set +e
PAAS_PGPORT=$TAKEN lib cluster_start >"$T/start.out" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ] && grep -q "$PAAS_PGDATA/server.log" "$T/start.out"; then
	ok "cluster_start that fails names the server log"
else
	not_ok "cluster_start that fails names the server log (exit $rc)" "$T/start.out"
fi
kill "$LISTENER_PID" 2>/dev/null || true
LISTENER_PID=
if lib cluster_start >"$T/start.out" 2>&1; then
	PMA=$(postmaster)
	kill -KILL "$PMA" 2>/dev/null || true
	# the killed postmaster's children notice and exit (its pid stays a
	# zombie where init does not reap)
	pgdata_idle() { [ -z "$(in_pgdata)" ]; }
	within 20 pgdata_idle || true
	started_again() {
		local p
		p=$(postmaster) && [ "$p" != "$PMA" ] && alive "$p" && "$PG_BIN/pg_isready" -q -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT"
	}
	set +e
	lib cluster_start >"$T/start.out" 2>&1
	rc=$?
	set -e
	if [ "$rc" -eq 0 ] && started_again; then
		ok "cluster_start right after the postmaster was killed starts a new one"
	else
		not_ok "cluster_start right after the postmaster was killed starts a new one (exit $rc)" "$T/start.out" "$T/pg/server.log"
	fi
	lib cluster_stop || true
else
	not_ok "cluster_start starts the cluster" "$T/start.out"
fi

# ---- an ordinary user ----
mkdir -p "$T/tree/docker"
cp -r "$ROOT/docker/scripts" "$T/tree/docker/"
chown -R nobody "$T/tree"
set +e
setpriv --reuid=nobody --regid=nogroup --clear-groups -- env -C "$T/tree" HOME="$T/tree" \
	timeout 30 bash docker/scripts/run.sh >"$T/user.out" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ] && grep -q "must run as root" "$T/user.out" && ! grep -q "command not found" "$T/user.out"; then
	ok "run.sh as an ordinary user says that it must run as root"
else
	not_ok "run.sh as an ordinary user says that it must run as root (exit $rc)" "$T/user.out"
fi

echo "1..$n"
if [ "$failures" -ne 0 ]; then
	echo "fault test: $failures of $n failed" >&2
	exit 1
fi
echo "fault test: all $n passed"
