#!/usr/bin/env bash
# `make role-login ROLE=paas_bi` (or ROLE=paas_owner): lets a role of paas
# log in to the instance that `make run` runs, and prints the psql command
# that logs in as it.
#
#   role-login.sh ROLE        ROLE: paas_owner (DBAs) or paas_bi (BI tools)
#   ROTATE=1 role-login.sh …  a new password (the old one stops working)
#
# Rules a reader must know:
# - The roles are created NOLOGIN (sql/parts/00_core.sql).  This gives one a
#   generated password (ALTER ROLE … LOGIN PASSWORD, as the superuser, in a
#   session that logs no statement), keeps it in the instance's secrets file
#   (secrets.env, mode 600) as PAAS_OWNER_PASSWORD / PAAS_BI_PASSWORD, and
#   writes a pgpass file next to it (ROLE.pgpass, mode 600) that the printed
#   command names.  Run again, it keeps the stored password.
# - The instance is found as `make run` finds it (run.sh's run_env: the
#   checkout's .data, or PAAS_PGDATA), with the socket and port of the
#   running `make run` (its run.state).  PostgreSQL must be running.
# - The limits of paas_bi (read-only, statement timeout, connection limit)
#   are db_setup's (docker/scripts/lib.sh), applied at every `make run`.
# - The password is never printed; root (or postgres) only.
set -euo pipefail
# shellcheck source=run.sh
. "$(dirname "$0")/run.sh"

usage() {
	die "usage: make role-login ROLE=paas_owner|paas_bi [ROTATE=1]" \
		"  paas_owner: DBAs (docs/operations.md); paas_bi: BI tools, read-only (docs/bi.md)"
}

# A conninfo value, quoted when it must be (spaces, quotes, backslashes).
conninfo_value() {
	if [[ $1 =~ ^[A-Za-z0-9_./:@+=-]+$ ]]; then
		printf '%s' "$1"
	else
		local v=${1//\\/\\\\}
		printf "'%s'" "${v//\'/\\\'}"
	fi
}

# A word for the shell: single-quoted.
shell_word() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Replaces (or adds) the line VAR=value of the secrets file, mode 600.
secret_put() { # var value
	(
		umask 077
		tmp=$(mktemp "$SECRETS_FILE.XXXXXX")
		{
			if [ -f "$SECRETS_FILE" ]; then
				grep -v "^$1=" "$SECRETS_FILE" || true
			else
				echo "# paas secrets, generated $(now); keep this file private."
			fi
			echo "$1=$2"
		} >"$tmp"
		chmod 600 "$tmp"
		mv -f "$tmp" "$SECRETS_FILE"
	)
}

# Writes file $1 with the text $2, mode 600 (never readable by others, not
# even for a moment).
private_write() {
	(
		umask 077
		printf '%s\n' "$2" >"$1.tmp"
		chmod 600 "$1.tmp"
		mv -f "$1.tmp" "$1"
	)
}

role_login_main() {
	local role=${1:-} var pw pgpass psql conninfo settings sock tcp
	case $role in
	paas_owner | paas_bi) ;;
	paas_api) die "paas_api is httpd's login: make run gives it PAAS_DB_PASSWORD of the secrets file." ;;
	*) usage ;;
	esac
	if [ "$(id -u)" -ne 0 ] && [ "$(id -un)" != postgres ]; then
		die "make role-login must run as root (sudo make role-login ROLE=$role):" \
			"it changes the role as the database superuser and writes the instance's secrets file."
	fi
	run_env 0
	# the socket and port of the running make run, which may have been
	# given others than this shell's
	if [ -f "$RUN_LOCK" ] && ! flock -n "$RUN_LOCK" true && [ -n "$(state_get pgsock)" ]; then
		PAAS_PGSOCK=$(state_get pgsock)
		PAAS_PGPORT=$(state_get pgport)
		PAAS_PGLISTEN=$(state_get pglisten)
	fi
	# a socket directory must be an absolute path (else libpq takes it for a
	# host name)
	if sock=$(cd "$PAAS_PGSOCK" 2>/dev/null && pwd); then PAAS_PGSOCK=$sock; fi
	if ! "$PG_BIN/pg_isready" -q -h "$PAAS_PGSOCK" -p "$PAAS_PGPORT" -t 5 2>/dev/null; then
		die "PostgreSQL does not answer on $PAAS_PGSOCK, port $PAAS_PGPORT: start paas first (make run)," \
			"or name its data directory (PAAS_PGDATA=…)."
	fi

	var=PAAS_${role#paas_}_PASSWORD
	var=${var^^}
	pw=
	if [ "${ROTATE:-0}" != 1 ] && [ -f "$SECRETS_FILE" ]; then
		pw=$(sed -n "s/^$var=//p" "$SECRETS_FILE" | tail -n 1)
	fi
	if [ -z "$pw" ]; then
		pw=$(rand_hex 24)
		secret_put "$var" "$pw"
	fi

	# The statement carries the password: the server must not log it.
	psql_su -v role="$role" -v pw="$pw" >/dev/null <<'SQL'
SET log_min_duration_statement = -1;
SET log_min_error_statement = panic;
SET log_statement = none;
ALTER ROLE :"role" LOGIN PASSWORD :'pw';
SQL

	# host * : the same file serves the socket and TCP (127.0.0.1)
	pgpass=$(dirname "$SECRETS_FILE")/$role.pgpass
	private_write "$pgpass" "*:$PAAS_PGPORT:$PAAS_DB:$role:$pw"

	psql=psql
	command -v psql >/dev/null || psql=$PG_BIN/psql
	conninfo="host=$(conninfo_value "$PAAS_PGSOCK") port=$PAAS_PGPORT dbname=$(conninfo_value "$PAAS_DB")"
	conninfo+=" user=$role passfile=$(conninfo_value "$pgpass")"
	settings=$(psql_su -At -v role="$role" <<'SQL'
SELECT concat_ws(', ', nullif(array_to_string(s.setconfig, ', '), ''),
				 CASE WHEN r.rolconnlimit >= 0 THEN 'at most ' || r.rolconnlimit || ' connections' END)
  FROM pg_roles r LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid AND s.setdatabase = 0
 WHERE r.rolname = :'role';
SQL
)
	echo "$role may log in (its password: $var in $SECRETS_FILE; pgpass file $pgpass; both mode 600):"
	echo "  $psql $(shell_word "$conninfo")"
	tcp=${PAAS_PGLISTEN%%,*}
	case $tcp in '*' | 0.0.0.0) tcp=127.0.0.1 ;; '::') tcp=::1 ;; esac
	if [ -n "$tcp" ]; then
		echo "  over TCP: host=$tcp port=$PAAS_PGPORT dbname=$PAAS_DB user=$role, with the same password"
	fi
	[ -z "$settings" ] || echo "  sessions of $role: $settings"
	echo "  ROTATE=1 gives it a new password; the files are root's: copy the pgpass file (mode 600) for another user."
}

role_login_main "$@"
