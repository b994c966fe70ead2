# Shell library of the paas lifecycle scripts (sourced, not run): one
# PostgreSQL cluster of the project's own, run as the postgres user, on its
# own port and socket directory.
#
# Inputs (environment):
#   PAAS_PGDATA    cluster directory           (caller sets)
#   PAAS_PGSOCK    socket directory            (caller sets)
#   PAAS_PGPORT    port                        (default 5433)
#   PAAS_PGLISTEN  listen_addresses            (default '' = sockets only)
#   PAAS_TICK      paas.tick_interval          (default 1s)

PG_BIN=${PG_BIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
case "$PG_BIN" in /usr/bin) PG_BIN=/usr/lib/postgresql/15/bin ;; esac
PAAS_PGPORT=${PAAS_PGPORT:-5433}
PAAS_PGLISTEN=${PAAS_PGLISTEN:-}
PAAS_TICK=${PAAS_TICK:-1s}
PAAS_DB=${PAAS_DB:-paas}

# Runs a command as the cluster's owner (postgres when we are root).
# From a directory postgres cannot enter (a checkout under /root, say) the
# command runs from / instead, so tools do not trip over the working directory.
as_pg() {
	if [ "$(id -u)" -ne 0 ]; then
		"$@"
	elif runuser -u postgres -- test -x . 2>/dev/null; then
		runuser -u postgres -- "$@"
	else
		(cd / && runuser -u postgres -- "$@")
	fi
}

# Whether the cluster owner can reach a directory (every parent traversable).
pg_can_reach() {
	[ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$1" 2>/dev/null
}

pg_owner_dir() { # dir: create and hand to the cluster owner
	mkdir -p "$1"
	[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$1"
	chmod 0755 "$1"
}

psql_su() { # psql as superuser into $PAAS_DB (or -d other)
	as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT" -d "$PAAS_DB" "$@"
}

cluster_init() {
	[ -f "$PAAS_PGDATA/PG_VERSION" ] && return 0
	pg_owner_dir "$(dirname "$PAAS_PGDATA")"
	pg_owner_dir "$PAAS_PGDATA"
	chmod 0700 "$PAAS_PGDATA"
	as_pg "$PG_BIN/initdb" -D "$PAAS_PGDATA" -U postgres --auth-local=peer \
		--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
	# Password logins over the socket for the application roles.
	as_pg sh -c "cat > '$PAAS_PGDATA/pg_hba.conf'" <<HBA
local   all   postgres                 peer
local   all   all                      scram-sha-256
host    all   all       127.0.0.1/32   scram-sha-256
host    all   all       ::1/128        scram-sha-256
HBA
	as_pg sh -c "cat >> '$PAAS_PGDATA/postgresql.conf'" <<CONF

# ---- paas ----
shared_preload_libraries = 'pg_cron,paas'
cron.database_name = '$PAAS_DB'
cron.use_background_workers = on
max_worker_processes = 16
paas.database = '$PAAS_DB'
include_if_exists = 'paas.local.conf'
max_connections = 200
shared_buffers = 256MB
password_encryption = 'scram-sha-256'
# %a: application_name; paas-httpd sets it to paas-httpd/<request id> for each call
log_line_prefix = '%m [%p] %q%u@%d %a '
log_min_duration_statement = 1000
# Bind parameters carry passwords and tokens: statement logs (slow, or all)
# and error logs never print them.  db_setup pins both on paas_api too.
log_parameter_max_length = 0
log_parameter_max_length_on_error = 0
CONF
}

# Settings that may change between starts (port, socket, tick).
cluster_write_local_conf() {
	as_pg sh -c "cat > '$PAAS_PGDATA/paas.local.conf'" <<CONF
port = $PAAS_PGPORT
unix_socket_directories = '$PAAS_PGSOCK'
listen_addresses = '$PAAS_PGLISTEN'
paas.tick_interval = '$PAAS_TICK'
$(printf '%s\n' "${PAAS_PG_EXTRA_CONF:-}")
CONF
}

# Starts the cluster with pg_ctl unless its postmaster runs.  "Runs" is
# decided by cluster_pid, not by `pg_ctl status`: a killed postmaster that
# nobody has reaped yet (a zombie) passes pg_ctl's test, yet serves nothing.
# On failure names the server log and shows its last lines.
cluster_start() {
	pg_owner_dir "$PAAS_PGSOCK"
	cluster_write_local_conf
	cluster_pid >/dev/null && return 0
	cluster_clear_stale_pid
	if ! as_pg "$PG_BIN/pg_ctl" -D "$PAAS_PGDATA" -l "$PAAS_PGDATA/server.log" -w -t 60 start >/dev/null; then
		cluster_start_failed
		return 1
	fi
}

# Starts the postmaster as a child of the calling shell (no pg_ctl), so that
# the caller can `wait` for it and learns when it dies; CLUSTER_PID is its
# pid.  The postmaster gets SIGINT (fast shutdown) if the calling shell dies
# (PR_SET_PDEATHSIG), and its environment carries none of the paas secrets.
# Returns at once: cluster_wait_ready waits for it to accept connections.
CLUSTER_PID=
cluster_spawn() {
	pg_owner_dir "$PAAS_PGSOCK"
	cluster_write_local_conf
	cluster_clear_stale_pid
	as_pg touch "$PAAS_PGDATA/server.log"
	local run_as=()
	[ "$(id -u)" -eq 0 ] && run_as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
	(
		cd / && exec "${run_as[@]}" setpriv --pdeathsig=INT -- \
			env -u PAAS_DB_PASSWORD -u PAAS_JWT_SECRET -u PAAS_NODE_JOIN_TOKEN -u PAAS_DB_URL \
			-u PAAS_ADMIN_PASSWORD -u MIDTRANS_SERVER_KEY -u PAAS_PG_EXTRA_CONF \
			"$PG_BIN/postgres" -D "$PAAS_PGDATA"
	) </dev/null >>"$PAAS_PGDATA/server.log" 2>&1 9>&- &
	CLUSTER_PID=$!
}

# Waits until the postmaster CLUSTER_PID accepts connections (at most $1
# seconds, default 60).  Fails at once when it exits, naming the log.
cluster_wait_ready() {
	local deadline=$(( $(date +%s) + ${1:-60} ))
	while ! "$PG_BIN/pg_isready" -q -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT" -t 2 2>/dev/null; do
		if ! proc_alive "$CLUSTER_PID" || [ "$(date +%s)" -ge "$deadline" ]; then
			cluster_start_failed
			return 1
		fi
		sleep 0.2
	done
}

cluster_start_failed() {
	echo "PostgreSQL did not start on port $PAAS_PGPORT: see its log, $PAAS_PGDATA/server.log; the last lines:" >&2
	tail -n 8 "$PAAS_PGDATA/server.log" 2>/dev/null | sed 's/^/    /' >&2
}

cluster_stop() {
	[ -f "$PAAS_PGDATA/PG_VERSION" ] || return 0
	as_pg "$PG_BIN/pg_ctl" -D "$PAAS_PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# Creates (or updates) roles, database and extensions.  Idempotent.
#   $1 password of paas_api
# The limits of BI sessions (role paas_bi) are set here at every start:
#   PAAS_BI_STATEMENT_TIMEOUT  statement_timeout of paas_bi (default 5min)
#   PAAS_BI_CONNECTION_LIMIT   connections paas_bi may hold (default 10)
# Who may log in as paas_bi and paas_owner: docker/scripts/role-login.sh.
db_setup() {
	local api_pw=$1 bi_timeout=${PAAS_BI_STATEMENT_TIMEOUT:-5min} bi_conns=${PAAS_BI_CONNECTION_LIMIT:-10}
	if ! [[ $bi_conns =~ ^[0-9]+$ ]]; then
		echo "PAAS_BI_CONNECTION_LIMIT must be a number of connections, not '$bi_conns'" >&2
		return 1
	fi
	psql_su -d postgres <<SQL
SELECT 'CREATE ROLE paas_owner NOLOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paas_owner') \gexec
SELECT 'CREATE ROLE paas_api NOLOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paas_api') \gexec
SELECT 'CREATE ROLE paas_bi NOLOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paas_bi') \gexec
SELECT 'CREATE DATABASE $PAAS_DB OWNER paas_owner' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PAAS_DB') \gexec
SQL
	psql_su -v api_pw="$api_pw" -v bi_timeout="$bi_timeout" -v bi_conns="$bi_conns" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS paas CASCADE;
ALTER EXTENSION paas UPDATE;
ALTER ROLE paas_api LOGIN PASSWORD :'api_pw' CONNECTION LIMIT 256;
-- The gateway's parameters (passwords, refresh and node tokens) never reach
-- the server log, whatever postgresql.conf says later (a role setting
-- outranks the configuration files; only a superuser may change it).
ALTER ROLE paas_api SET log_parameter_max_length = 0;
ALTER ROLE paas_api SET log_parameter_max_length_on_error = 0;
-- BI sessions are read-only, end a statement after bi_timeout and an idle
-- open transaction (which holds back vacuum) after 10 minutes, and hold at
-- most bi_conns connections.  (A session may change its own settings: the
-- privileges, SELECT on reporting only, are what keeps it from the rest.)
ALTER ROLE paas_bi CONNECTION LIMIT :bi_conns;
ALTER ROLE paas_bi SET default_transaction_read_only = on;
ALTER ROLE paas_bi SET statement_timeout = :'bi_timeout';
ALTER ROLE paas_bi SET idle_in_transaction_session_timeout = '10min';
-- DBAs choose how a renewal run they start is spread (docs/operations.md:
-- SET paas.renewal_workers = 1), a superuser setting otherwise.
GRANT SET ON PARAMETER paas.renewal_workers TO paas_owner;
SQL
}

# Waits until "$@" succeeds, at most $WAIT_SECS (default 30) seconds.
wait_for() {
	local deadline=$(( $(date +%s) + ${WAIT_SECS:-30} ))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

# Whether process $1 exists and is not a zombie (a dead process that its
# parent has not reaped yet still has a pid, and `kill -0` succeeds on it).
proc_alive() {
	local st
	[ -n "${1:-}" ] || return 1
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	case ${st%% *} in Z | X | x) return 1 ;; esac
}

# Prints the pid of the postmaster running on $PAAS_PGDATA; fails when none
# runs (no postmaster.pid, or its pid is dead, a zombie, or a process of
# another directory: pids are reused).
cluster_pid() {
	local pid cwd
	pid=$(head -n 1 "$PAAS_PGDATA/postmaster.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid" || return 1
	if cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null); then
		[ "$cwd" = "$(readlink -f "$PAAS_PGDATA")" ] || return 1
	fi
	echo "$pid"
}

# Whether any live process works in $PAAS_PGDATA (a postmaster or one of its
# children: they all run in the data directory).
pgdata_in_use() {
	local dir d
	dir=$(readlink -f "$PAAS_PGDATA")
	for d in /proc/[0-9]*; do
		if [ "$(readlink "$d/cwd" 2>/dev/null)" = "$dir" ] && proc_alive "${d#/proc/}"; then
			return 0
		fi
	done
	return 1
}

# PostgreSQL refuses to start while postmaster.pid (or the socket's lock
# file) names a pid that exists, and a killed postmaster nobody reaps (its
# parent gone, and an init that does not reap, as in some containers) exists
# forever as a zombie.  The files are removed only when that postmaster does
# not run and no process of the old server is left in the data directory
# (root only: other users cannot see where postgres processes work).
cluster_clear_stale_pid() {
	local f=$PAAS_PGDATA/postmaster.pid sock=$PAAS_PGSOCK/.s.PGSQL.$PAAS_PGPORT.lock pid
	[ "$(id -u)" -eq 0 ] && [ -f "$f" ] || return 0
	pid=$(head -n 1 "$f" 2>/dev/null) || return 0
	[[ $pid =~ ^[0-9]+$ ]] && [ -e "/proc/$pid" ] || return 0
	cluster_pid >/dev/null && return 0
	pgdata_in_use && return 0
	echo "removing the stale $f (its postmaster, pid $pid, is gone)" >&2
	rm -f "$f"
	if [ "$(head -n 1 "$sock" 2>/dev/null)" = "$pid" ]; then
		rm -f "$sock"
	fi
}
