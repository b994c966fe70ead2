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
log_line_prefix = '%m [%p] %q%u@%d '
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

cluster_start() {
	pg_owner_dir "$PAAS_PGSOCK"
	cluster_write_local_conf
	if as_pg "$PG_BIN/pg_ctl" -D "$PAAS_PGDATA" status >/dev/null 2>&1; then
		return 0
	fi
	as_pg "$PG_BIN/pg_ctl" -D "$PAAS_PGDATA" -l "$PAAS_PGDATA/server.log" -w -t 60 start >/dev/null
}

cluster_stop() {
	[ -f "$PAAS_PGDATA/PG_VERSION" ] || return 0
	as_pg "$PG_BIN/pg_ctl" -D "$PAAS_PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# Creates (or updates) roles, database and extensions.  Idempotent.
#   $1 password of paas_api
db_setup() {
	local api_pw=$1
	psql_su -d postgres <<SQL
SELECT 'CREATE ROLE paas_owner NOLOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paas_owner') \gexec
SELECT 'CREATE ROLE paas_api NOLOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paas_api') \gexec
SELECT 'CREATE ROLE paas_bi NOLOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paas_bi') \gexec
SELECT 'CREATE DATABASE $PAAS_DB OWNER paas_owner' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PAAS_DB') \gexec
SQL
	psql_su -v api_pw="$api_pw" <<'SQL'
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
