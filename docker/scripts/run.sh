#!/usr/bin/env bash
# `make run` / `make stop` / `make status`: one paas instance of this
# checkout (PostgreSQL with the extension, pg_cron and the worker, and httpd
# on 127.0.0.1:8080), supervised in the foreground.
#
#   run.sh [run]    install packages, build, start, seed, then supervise
#   run.sh stop     stop the instance that a `make run` (perhaps in the
#                   background) runs from this data directory
#   run.sh status   what runs: pids, ports, URL, data directory, logs
#
# Rules a reader must know:
# - One instance per data directory: `run` holds a lock (flock) on
#   run.lock next to the cluster directory for as long as it lives.  A
#   second `run` reads who holds it, says so and exits 1 before it installs,
#   builds or starts anything.
# - `run` only ever stops, signals or restarts processes it started itself
#   (by pid).  A PostgreSQL that runs on the data directory without it is
#   left alone and `run` refuses to start.
# - The postmaster and httpd are children of this script, not daemons: when
#   one dies the other keeps running and this script starts the dead one
#   again, with a backoff of 1 s doubling to 30 s (reset after a minute of
#   good health), and logs each restart.  A clean exit (status 0: someone
#   stopped it on purpose) stops the instance instead.
# - SIGTERM, SIGINT (Ctrl-C) and SIGHUP stop httpd, then PostgreSQL (fast
#   shutdown); should this script be killed outright, its children get a
#   stop signal from the kernel (PR_SET_PDEATHSIG) and stop too.
# - The cluster: PAAS_K8S_API_URL (with PAAS_K8S_TOKEN_FILE and
#   PAAS_K8S_CA_FILE) names a real Kubernetes API for the provisioner.
#   Without it this script starts the project's stand-in API
#   (tests/fakes/kubeapi.py: 3 simulated nodes, HTTPS on loopback) as a third
#   supervised child and says so: a simulated cluster, where a subscription
#   goes from PENDING to RUNNING as it would on a real one.
# - Logs: run.log (this script: starts, restarts, stops), httpd.log,
#   kube.log (the simulated cluster), and the cluster's server.log; the generated administrator password goes to the
#   terminal only, never to a log.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/stack.sh"

# Where the instance lives.  The cluster is in .data/ of the checkout; when
# the postgres user cannot reach the checkout (a private home directory), in
# /var/lib/paas/<checkout>.  PAAS_PGDATA chooses another data directory: the
# instance's lock, state, logs and secrets then sit next to it.
#   $1 = 1: create the directories (run); 0: only compute (stop, status)
run_env() {
	local create=$1 data_dir
	if [ -z "${PAAS_PGDATA:-}" ]; then
		data_dir=$STACK_ROOT/.data
		[ "$create" = 1 ] && mkdir -p "$data_dir"
		if [ -d "$data_dir" ] && ! pg_can_reach "$data_dir"; then
			data_dir=/var/lib/paas/$(printf '%s' "$STACK_ROOT" | sha256sum | cut -c1-12)
			if [ "$create" = 1 ] && [ ! -d "$data_dir" ]; then
				mkdir -p "$data_dir"
				chmod 0755 /var/lib/paas "$data_dir"
				echo "cluster directory: $data_dir (the postgres user cannot reach $STACK_ROOT)"
			fi
		fi
		export PAAS_PGDATA=$data_dir/pg
		SECRETS_FILE=$STACK_ROOT/.data/secrets.env
	else
		SECRETS_FILE=$(dirname "$PAAS_PGDATA")/secrets.env
	fi
	RUN_DIR=$(dirname "$PAAS_PGDATA")
	export PAAS_PGSOCK=${PAAS_PGSOCK:-$RUN_DIR/run}
	export PAAS_PGPORT=${PAAS_PGPORT:-5433}
	export PAAS_PGLISTEN=${PAAS_PGLISTEN:-127.0.0.1}
	export PAAS_HTTP_LISTEN=${PAAS_HTTP_LISTEN:-127.0.0.1:8080}
	RUN_LOCK=$RUN_DIR/run.lock
	RUN_STATE=$RUN_DIR/run.state
	RUN_LOG=$RUN_DIR/run.log
	HTTPD_LOG=$RUN_DIR/httpd.log
	KUBE_DIR=$RUN_DIR/kube
	KUBE_LOG=$RUN_DIR/kube.log
	PG_LOG=$PAAS_PGDATA/server.log
}

# HTTP_HOST and HTTP_PORT: the first address httpd listens on (CivetWeb's
# list: [ip:]port[s|r], comma separated; a wildcard is reached on loopback).
http_addr() {
	local spec=${PAAS_HTTP_LISTEN%%,*}
	spec=${spec%[sr]}
	spec=${spec#+}
	HTTP_PORT=${spec##*:}
	HTTP_HOST=${spec%"$HTTP_PORT"}
	HTTP_HOST=${HTTP_HOST%:}
	HTTP_HOST=${HTTP_HOST#[}
	HTTP_HOST=${HTTP_HOST%]}
	case $HTTP_HOST in '' | 0.0.0.0) HTTP_HOST=127.0.0.1 ;; ::) HTTP_HOST=::1 ;; esac
}
http_url() {
	http_addr
	case $HTTP_HOST in
	*:*) echo "http://[$HTTP_HOST]:$HTTP_PORT" ;;
	*) echo "http://$HTTP_HOST:$HTTP_PORT" ;;
	esac
}

now() { date -u +%FT%TZ; }

# The commands that reach the database, for the operator to paste as they
# are: the superuser's psql (peer authentication: it must run as the
# postgres user, and a socket directory is an absolute path, or libpq takes
# it for a host name), and make role-login, which prints the DBA's and the
# BI role's.
su_psql_hint() {
	local sock psql=psql
	sock=$(cd "$PAAS_PGSOCK" 2>/dev/null && pwd) || sock=$PAAS_PGSOCK
	command -v psql >/dev/null || psql=$PG_BIN/psql
	if [ -n "${SUDO_USER:-}" ] && command -v sudo >/dev/null; then
		printf 'sudo -u postgres %q -h %q -p %s %q\n' "$psql" "$sock" "$PAAS_PGPORT" "$PAAS_DB"
	else
		printf 'runuser -u postgres -- %q -h %q -p %s %q\n' "$psql" "$sock" "$PAAS_PGPORT" "$PAAS_DB"
	fi
}
role_login_hint() { # role
	local pre='' dir=''
	[ -n "${SUDO_USER:-}" ] && command -v sudo >/dev/null && pre='sudo '
	# another data directory than the checkout's: role-login must be told
	[ "$SECRETS_FILE" = "$STACK_ROOT/.data/secrets.env" ] || pre+=$(printf 'PAAS_PGDATA=%q ' "$PAAS_PGDATA")
	[ "$PWD" = "$STACK_ROOT" ] || dir=$(printf -- '-C %q ' "$STACK_ROOT")
	echo "${pre}make ${dir}role-login ROLE=$1"
}

# A line for the operator (terminal) and for run.log.  Neither write may end
# the supervisor: the terminal may be gone, or a pipe to a reader that quit
# (SIGPIPE is ignored for the write only; children keep the default).
log() {
	trap '' PIPE
	{ printf '%s\n' "$*"; } 2>/dev/null || true
	trap - PIPE
	{ printf '%s %s\n' "$(now)" "$*" >>"$RUN_LOG"; } 2>/dev/null || true
}

die() {
	printf '%s\n' "$@" >&2
	exit 1
}

# ---- state file: key=value lines, read by status, stop and a second run ----

state_write() {
	[ "${OWN_LOCK:-0}" = 1 ] || return 0
	cat >"$RUN_STATE.tmp" <<STATE
pid=$$
started=$STARTED
url=$(http_url)
http_listen=$PAAS_HTTP_LISTEN
pgdata=$PAAS_PGDATA
pgsock=$PAAS_PGSOCK
pgport=$PAAS_PGPORT
pglisten=$PAAS_PGLISTEN
postmaster=${PG_PID:-}
httpd=${HTTPD_PID:-}
kube=${KUBE_PID:-}
cluster=${KUBE_MODE:-}
phase=$PHASE
restarts=$RESTARTS
STATE
	mv -f "$RUN_STATE.tmp" "$RUN_STATE"
}

state_get() { sed -n "s/^$1=//p" "$RUN_STATE" 2>/dev/null | head -n 1; }

# The lock: fd 9 on run.lock, held for as long as this script lives.  The
# processes it starts do not inherit it (9>&-), so that none of them keeps
# it after this script is gone.  Returns 1 when another process holds it.
lock_take() {
	mkdir -p "$RUN_DIR"
	exec 9>>"$RUN_LOCK"
	flock -n 9
}

# Prints what holds the lock (a running `make run`), for a second run.
already_running() {
	local pid url pgport pm
	pid=$(state_get pid)
	url=$(state_get url)
	pgport=$(state_get pgport)
	pm=$(state_get postmaster)
	{
		echo "paas is already running from this data directory ($PAAS_PGDATA):"
		echo "  make run pid ${pid:-unknown}, ${url:-?}/api/v1/status, database port ${pgport:-?}${pm:+ (postmaster pid $pm)}"
		echo "  make status says more; make stop stops it (or: kill ${pid:-<pid>})."
		echo "Nothing was started or changed."
	} >&2
}

# ---- preflight: refuse early, with the reason, before touching anything ----

require_root() {
	[ "$(id -u)" -eq 0 ] && return 0
	if command -v sudo >/dev/null; then
		die "make $1 must run as root: it installs packages and the extension into PostgreSQL's directories," \
			"and runs the cluster as the postgres user.  Run: sudo make $1"
	fi
	die "make $1 must run as root: it installs packages and the extension into PostgreSQL's directories," \
		"and runs the cluster as the postgres user.  You are $(id -un) and sudo is not installed:" \
		"run it in a root shell (su -c 'make $1'), or install sudo first."
}

# Whether something accepts TCP connections on host $1, port $2.
# shellcheck disable=SC2016 # $0 and $1 are the inner shell's
tcp_taken() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# Who listens on TCP port $1 (when ss is there to say).
port_owner() {
	command -v ss >/dev/null || return 0
	ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*",pid=[0-9]*\).*/ (held by \1)/p' | head -n 1
}

check_ports() {
	local a addr pid
	if [ -n "$PAAS_PGLISTEN" ]; then
		for a in ${PAAS_PGLISTEN//,/ }; do
			case $a in '*' | 0.0.0.0) addr=127.0.0.1 ;; '::') addr=::1 ;; *) addr=$a ;; esac
			if tcp_taken "$addr" "$PAAS_PGPORT"; then
				die "The database port $PAAS_PGPORT on $addr is already in use$(port_owner "$PAAS_PGPORT")," \
					"by another PostgreSQL perhaps: stop that, or give paas another port, e.g." \
					"PAAS_PGPORT=$((PAAS_PGPORT + 1)) make run.  Nothing was started."
			fi
		done
	fi
	pid=$(head -n 1 "$PAAS_PGSOCK/.s.PGSQL.$PAAS_PGPORT.lock" 2>/dev/null || true)
	if [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid"; then
		die "The database socket $PAAS_PGSOCK/.s.PGSQL.$PAAS_PGPORT is in use by process $pid:" \
			"give paas another port (PAAS_PGPORT) or socket directory (PAAS_PGSOCK).  Nothing was started."
	fi
	http_addr
	if tcp_taken "$HTTP_HOST" "$HTTP_PORT"; then
		die "The HTTP address $PAAS_HTTP_LISTEN (PAAS_HTTP_LISTEN) is already in use$(port_owner "$HTTP_PORT"):" \
			"stop what listens there, or choose another, e.g. PAAS_HTTP_LISTEN=127.0.0.1:$((HTTP_PORT + 1)) make run." \
			"Nothing was started."
	fi
}

# ---- the two processes ----

PG_PID='' HTTPD_PID='' KUBE_PID='' KUBE_MODE='' KUBE_PORT='' TICK_PID='' STOPPING=0 OWN_LOCK=0 RESTARTS=0 PHASE=preflight STARTED='' REAPED=0

httpd_spawn() {
	setpriv --pdeathsig=TERM -- "$STACK_ROOT/httpd/paas-httpd" </dev/null >>"$HTTPD_LOG" 2>&1 9>&- &
	HTTPD_PID=$!
}

pg_spawn() {
	cluster_spawn
	PG_PID=$CLUSTER_PID
}

# The simulated cluster: the stand-in Kubernetes API on loopback, HTTPS with
# a CA of its own (made once in $KUBE_DIR/tls), a bearer token only the
# provisioner (the postgres user) can read.  The first start picks a free
# port; a restart takes the same one, so the provisioner's setting holds
# (the stand-in restarts empty and the provisioner applies everything again).
kube_spawn() {
	local port_arg=0
	[ -n "$KUBE_PORT" ] && port_arg=$KUBE_PORT
	rm -f "$KUBE_DIR/port"
	setpriv --pdeathsig=TERM -- /usr/bin/python3 "$STACK_ROOT/tests/fakes/kubeapi.py" \
		--host 127.0.0.1 --port "$port_arg" --port-file "$KUBE_DIR/port" \
		--tls-dir "$KUBE_DIR/tls" --token-file "$KUBE_DIR/accepted" --kubeconfig "$KUBE_DIR/kubeconfig" \
		--nodes 3 --node-cpu 16 --node-memory 64Gi --node-prefix sim-node- \
		</dev/null >>"$KUBE_LOG" 2>&1 9>&- &
	KUBE_PID=$!
}

# Chooses the cluster the provisioner drives (KUBE_MODE real or simulated),
# starts the stand-in for a simulated one, and hands the settings to the
# database (PAAS_PG_EXTRA_CONF, written into its configuration at each start).
kube_setup() {
	local conf
	if [ -n "${PAAS_K8S_API_URL:-}" ]; then
		KUBE_MODE=real
		conf="paas.k8s_api_url = '$PAAS_K8S_API_URL'"
		[ -n "${PAAS_K8S_TOKEN_FILE:-}" ] && conf+=$'\n'"paas.k8s_token_file = '$PAAS_K8S_TOKEN_FILE'"
		[ -n "${PAAS_K8S_CA_FILE:-}" ] && conf+=$'\n'"paas.k8s_ca_file = '$PAAS_K8S_CA_FILE'"
	else
		KUBE_MODE=simulated
		mkdir -p "$KUBE_DIR"
		chmod 0755 "$KUBE_DIR"
		if [ ! -s "$KUBE_DIR/accepted" ]; then
			(umask 077 && rand_hex 24 >"$KUBE_DIR/accepted")
		fi
		# the provisioner's copy, as a pod's service-account token
		install -m 0600 -o postgres -g postgres "$KUBE_DIR/accepted" "$KUBE_DIR/token"
		kube_spawn
		if ! WAIT_SECS=20 wait_for test -s "$KUBE_DIR/port"; then
			log "the simulated cluster did not start: see $KUBE_LOG; the last lines:"
			tail -n 8 "$KUBE_LOG" 2>/dev/null | sed 's/^/    /' >&2
			exit 1
		fi
		KUBE_PORT=$(cat "$KUBE_DIR/port")
		chmod -R a+rX "$KUBE_DIR/tls"
		conf="paas.k8s_api_url = 'https://127.0.0.1:$KUBE_PORT'
paas.k8s_token_file = '$KUBE_DIR/token'
paas.k8s_ca_file = '$KUBE_DIR/tls/ca.crt'"
	fi
	[ -n "${PAAS_APPS_DOMAIN:-}" ] && conf+=$'\n'"paas.apps_domain = '$PAAS_APPS_DOMAIN'"
	export PAAS_PG_EXTRA_CONF="${PAAS_PG_EXTRA_CONF:+$PAAS_PG_EXTRA_CONF
}$conf"
}

# "exit status N" / "killed by SIGKILL" for a status from `wait`.
describe_status() {
	if [ "$1" -gt 128 ]; then
		echo "killed by SIG$(kill -l "$(($1 - 128))" 2>/dev/null || echo "$(($1 - 128))")"
	else
		echo "exit status $1"
	fi
}

# Reaps our child $1, which has ended: its status in REAPED (not in a
# command substitution: a subshell cannot wait for its parent's children).
reap() {
	REAPED=0
	wait "$1" 2>/dev/null || REAPED=$?
}

# Sleeps $1 seconds, but returns at once when a trapped signal arrives.
tick() {
	sleep "$1" 9>&- &
	TICK_PID=$!
	wait "$TICK_PID" 2>/dev/null || true
	TICK_PID=
}

# Stops what this run started: httpd (SIGTERM), then the postmaster
# (SIGINT: fast shutdown), each by its pid; SIGKILL / SIGQUIT if they
# outstay their time.  Idempotent.
stop_all() {
	trap '' INT TERM HUP
	STOPPING=1
	if [ -n "$TICK_PID" ]; then kill "$TICK_PID" 2>/dev/null || true; fi
	if [ -n "$HTTPD_PID" ]; then
		stop_child "$HTTPD_PID" TERM 30 KILL
		HTTPD_PID=
	fi
	if [ -n "$PG_PID" ]; then
		stop_child "$PG_PID" INT 60 QUIT
		PG_PID=
	fi
	if [ -n "$KUBE_PID" ]; then
		stop_child "$KUBE_PID" TERM 10 KILL
		KUBE_PID=
	fi
	if [ "$OWN_LOCK" = 1 ]; then
		rm -f "$RUN_STATE"
		[ "$PHASE" = preflight ] || log "stopped"
		OWN_LOCK=0
	fi
}

stop_child() { # pid signal seconds last-resort-signal
	local pid=$1 n=0
	if proc_alive "$pid"; then kill -"$2" "$pid" 2>/dev/null || true; fi
	while proc_alive "$pid"; do
		n=$((n + 1))
		if [ "$n" -eq $(($3 * 5)) ]; then
			log "process $pid did not stop within $3 s: SIG$4"
			kill -"$4" "$pid" 2>/dev/null || true
		fi
		sleep 0.2
	done
	wait "$pid" 2>/dev/null || true
}

on_signal() {
	log "stopping (SIG$1)..."
	stop_all
	exit 0
}

# The backoff before restart number $1 of a process: 1 s doubling, at most 30 s.
backoff() {
	local d=1 i
	for ((i = 1; i < $1 && d < 30; i++)); do d=$((d * 2)); done
	[ "$d" -gt 30 ] && d=30
	echo "$d"
}

# The supervision loop: notices a dead child, schedules its restart after
# the backoff, restarts it.  Returns when the instance is to stop.
supervise() {
	local pg_fails=0 httpd_fails=0 pg_due=0 httpd_due=0 pg_since=$SECONDS httpd_since=$SECONDS rc d
	while [ "$STOPPING" = 0 ]; do
		tick 0.5
		[ "$STOPPING" = 0 ] || return 0

		if [ -n "$PG_PID" ] && ! proc_alive "$PG_PID"; then
			reap "$PG_PID"
			rc=$REAPED
			if [ "$rc" = 0 ]; then
				log "PostgreSQL (pid $PG_PID) shut down cleanly, not by make run: stopping paas"
				PG_PID=
				return 0
			fi
			[ $((SECONDS - pg_since)) -ge 60 ] && pg_fails=0
			pg_fails=$((pg_fails + 1))
			d=$(backoff "$pg_fails")
			log "PostgreSQL (postmaster pid $PG_PID) died: $(describe_status "$rc"); restarting it in $d s" \
				"(restart $pg_fails in a row; see $PG_LOG)"
			PG_PID=
			pg_due=$((SECONDS + d))
			state_write
		fi
		if [ -z "$PG_PID" ] && [ "$SECONDS" -ge "$pg_due" ]; then
			pg_spawn
			pg_since=$SECONDS
			RESTARTS=$((RESTARTS + 1))
			log "PostgreSQL started again: postmaster pid $PG_PID"
			state_write
		fi

		if [ -n "$HTTPD_PID" ] && ! proc_alive "$HTTPD_PID"; then
			reap "$HTTPD_PID"
			rc=$REAPED
			if [ "$rc" = 0 ]; then
				log "httpd (pid $HTTPD_PID) exited normally (it was stopped by a signal): stopping paas"
				HTTPD_PID=
				return 0
			fi
			[ $((SECONDS - httpd_since)) -ge 60 ] && httpd_fails=0
			httpd_fails=$((httpd_fails + 1))
			d=$(backoff "$httpd_fails")
			log "httpd (pid $HTTPD_PID) died: $(describe_status "$rc"); restarting it in $d s" \
				"(restart $httpd_fails in a row; see $HTTPD_LOG)"
			HTTPD_PID=
			httpd_due=$((SECONDS + d))
			state_write
		fi
		if [ -z "$HTTPD_PID" ] && [ "$SECONDS" -ge "$httpd_due" ]; then
			httpd_spawn
			httpd_since=$SECONDS
			RESTARTS=$((RESTARTS + 1))
			log "httpd started again: pid $HTTPD_PID"
			state_write
		fi

		if [ -n "$KUBE_PID" ] && ! proc_alive "$KUBE_PID"; then
			reap "$KUBE_PID"
			log "the simulated cluster (pid $KUBE_PID) died: $(describe_status "$REAPED"); starting it again" \
				"(empty: the provisioner applies every instance again; see $KUBE_LOG)"
			kube_spawn
			RESTARTS=$((RESTARTS + 1))
			state_write
		fi
	done
}

run_main() {
	require_root run
	run_env 1
	if ! lock_take; then
		already_running
		exit 1
	fi
	OWN_LOCK=1
	STARTED=$(now)
	trap 'on_signal TERM' TERM
	trap 'on_signal INT' INT
	trap 'on_signal HUP' HUP
	trap 'stop_all' EXIT
	local pm
	if pm=$(cluster_pid); then
		OWN_LOCK=0
		die "PostgreSQL already runs on $PAAS_PGDATA (postmaster pid $pm), but no make run started it" \
			"(started by hand, or left by an older make run).  make run leaves it alone;" \
			"make stop stops it.  Nothing was started."
	fi
	check_ports
	PHASE=starting
	state_write
	log "starting paas (make run pid $$), data directory $PAAS_PGDATA"

	bash "$STACK_ROOT/docker/scripts/install-deps.sh" 9>&-
	stack_build 9>&-
	stack_secrets "$SECRETS_FILE"
	# the DBA's and BI's passwords (make role-login) are for people: none of
	# the processes started here gets them
	unset PAAS_OWNER_PASSWORD PAAS_BI_PASSWORD
	# Midtrans: without a server key top-ups answer 502 GATEWAY_ERROR.  The
	# background worker reads the key from the cluster's own configuration.
	if [ -n "${MIDTRANS_SERVER_KEY:-}" ]; then
		export PAAS_PG_EXTRA_CONF="paas.midtrans_server_key = '$MIDTRANS_SERVER_KEY'
paas.midtrans_is_production = ${MIDTRANS_IS_PRODUCTION:-0}"
	fi

	kube_setup
	cluster_init 9>&-
	pg_spawn
	cluster_wait_ready 60 || exit 1
	db_setup "$PAAS_DB_PASSWORD" 9>&-
	stack_db_url
	# The seed's output (a generated administrator password) goes to the
	# terminal only.
	bash "$STACK_ROOT/docker/scripts/seed.sh" 9>&-

	httpd_spawn
	if ! WAIT_SECS=20 wait_for curl -sf "$(http_url)/api/v1/health"; then
		log "httpd did not come up on $(http_url): see $HTTPD_LOG; the last lines:"
		tail -n 8 "$HTTPD_LOG" 2>/dev/null | sed 's/^/    /' >&2
		exit 1
	fi
	PHASE=running
	state_write
	log "paas is up: $(http_url)/api/v1/status"
	log "  database as superuser: $(su_psql_hint)"
	log "  logins of the DBA (paas_owner) and BI (paas_bi) roles: $(role_login_hint paas_owner) (or ROLE=paas_bi)"
	if [ "$KUBE_MODE" = simulated ]; then
		log "  simulated cluster; set PAAS_K8S_API_URL for a real one (stand-in API https://127.0.0.1:$KUBE_PORT," \
			"3 nodes; kubectl --kubeconfig $KUBE_DIR/kubeconfig get nodes)"
	else
		log "  Kubernetes cluster: $PAAS_K8S_API_URL"
	fi
	log "  postmaster pid $PG_PID, httpd pid $HTTPD_PID${KUBE_PID:+, simulated cluster pid $KUBE_PID}; logs: $RUN_LOG, $HTTPD_LOG, $PG_LOG${KUBE_PID:+, $KUBE_LOG}"
	log "  Ctrl-C here, or make stop from another shell, stops it; make status says what runs"

	supervise
	stop_all
}

run_stop() {
	run_env 0
	local pid pm hp p
	if [ ! -f "$RUN_LOCK" ] || flock -n "$RUN_LOCK" true; then
		# No make run holds the lock.  A postmaster may still run on the
		# data directory (started by hand, or by an older make run).
		if pm=$(cluster_pid 2>/dev/null); then
			echo "no make run supervises $PAAS_PGDATA, but PostgreSQL runs on it (postmaster pid $pm): stopping it"
			as_pg "$PG_BIN/pg_ctl" -D "$PAAS_PGDATA" -m fast -w -t 60 stop >/dev/null
			echo "stopped"
			return 0
		fi
		echo "paas is not running (data directory $PAAS_PGDATA)"
		return 0
	fi
	pid=$(state_get pid)
	if ! [[ $pid =~ ^[0-9]+$ ]] || ! proc_alive "$pid"; then
		die "run.lock ($RUN_LOCK) is held, but the make run that should hold it (pid ${pid:-unknown}) is gone;" \
			"look for its processes with: fuser -v $RUN_LOCK"
	fi
	hp=$(state_get httpd)
	pm=$(state_get postmaster)
	if ! kill -TERM "$pid" 2>/dev/null; then
		die "cannot signal make run (pid $pid): make stop must run as the same user (root: sudo make stop)"
	fi
	echo "stopping paas (make run pid $pid; httpd pid ${hp:-none}, postmaster pid ${pm:-none})..."
	if ! flock -w 90 "$RUN_LOCK" true; then
		die "paas (make run pid $pid) is still running after 90 s; its log: $RUN_LOG"
	fi
	for p in $hp $pm $(cluster_pid 2>/dev/null || true); do
		if proc_alive "$p"; then
			die "make run (pid $pid) ended, but its process $p still runs: see $RUN_LOG"
		fi
	done
	echo "stopped"
}

run_status() {
	run_env 0
	local pid pm hp url health
	if [ ! -f "$RUN_LOCK" ] || flock -n "$RUN_LOCK" true; then
		if pm=$(cluster_pid 2>/dev/null); then
			echo "paas is not running under make run, but PostgreSQL runs on $PAAS_PGDATA (postmaster pid $pm);" \
				"make stop stops it"
		else
			echo "paas is not running (data directory $PAAS_PGDATA)"
		fi
		echo "  logs        $RUN_LOG, $HTTPD_LOG, $PG_LOG"
		return 3
	fi
	pid=$(state_get pid)
	pm=$(state_get postmaster)
	hp=$(state_get httpd)
	url=$(state_get url)
	if curl -sf -o /dev/null --max-time 3 "$url/api/v1/health" 2>/dev/null; then
		health="answers"
	else
		health="does not answer"
	fi
	proc_alive "$pm" || pm="none (restarting)"
	proc_alive "$hp" || hp="none (restarting)"
	echo "paas is running: make run pid $pid, since $(state_get started) ($(state_get phase), restarts: $(state_get restarts))"
	echo "  URL         $url/api/v1/status  (health check $health)"
	echo "  httpd       pid $hp, listening on $(state_get http_listen)"
	echo "  PostgreSQL  postmaster pid $pm, port $(state_get pgport) on '$(state_get pglisten)', socket $(state_get pgsock)"
	if [ "$(state_get cluster)" = simulated ]; then
		echo "  Kubernetes  simulated cluster (stand-in pid $(state_get kube)); set PAAS_K8S_API_URL for a real one"
	elif [ -n "$(state_get cluster)" ]; then
		echo "  Kubernetes  real cluster (PAAS_K8S_API_URL)"
	fi
	echo "  data        $(state_get pgdata)"
	echo "  psql        $(PAAS_PGSOCK=$(state_get pgsock) PAAS_PGPORT=$(state_get pgport) su_psql_hint)  (superuser)"
	echo "              $(role_login_hint paas_owner) (or ROLE=paas_bi) prints the DBA's and BI's"
	echo "  logs        $RUN_LOG (starts, restarts, stops)"
	echo "              $HTTPD_LOG (httpd)"
	[ "$(state_get cluster)" = simulated ] && echo "              $KUBE_LOG (simulated cluster)"
	echo "              $PG_LOG (PostgreSQL)"
	echo "  stop        make stop (or kill $pid)"
}

# Sourced (docker/scripts/role-login.sh uses run_env): define, run nothing.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

case ${1:-run} in
run) run_main ;;
stop) run_stop ;;
status) run_status ;;
*)
	echo "usage: $0 [run|stop|status]" >&2
	exit 2
	;;
esac
