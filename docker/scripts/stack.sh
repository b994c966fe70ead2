# Shell library (sourced): brings the whole paas stack up or down in a given
# directory.  Shared by `make run` (docker/scripts/run.sh), `make test`
# (tests/run.sh), `make bench` (bench/run.sh) and the container image.
#
#   stack_build              build and install the extension, build httpd
#   stack_secrets FILE       create FILE with fresh secrets once; source it
#   stack_db_up              init + start the cluster, create roles/db/extensions
#   stack_db_url             PAAS_DB_URL of httpd for the cluster
#   stack_httpd_start BIN    start httpd in the background (HTTPD_PID)
#   stack_down               stop httpd and the cluster

STACK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# A private installation (PAAS_PG_PREFIX, see stack_private_pg) inherited
# from the caller brings its own binaries, unless PG_BIN says where they are.
if [ -n "${PAAS_PG_PREFIX:-}" ] && [ -z "${PG_BIN:-}" ]; then
	PG_BIN=$PAAS_PG_PREFIX$(dirname "$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)")/bin
fi
# shellcheck source=lib.sh
. "$STACK_ROOT/docker/scripts/lib.sh"
export PG_BIN

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

stack_build() {
	make -C "$STACK_ROOT" -s >/dev/null
	if [ -n "${PAAS_PG_PREFIX:-}" ]; then
		make -C "$STACK_ROOT" -s install DESTDIR="$PAAS_PG_PREFIX" >/dev/null
	elif [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
		echo "installing the extension into PostgreSQL's directories needs root, and sudo is not installed:" \
			"run this as root, or install sudo" >&2
		return 1
	else
		$SUDO make -C "$STACK_ROOT" -s install >/dev/null
	fi
}

# A private copy of the server's installation under $1 (PostgreSQL finds its
# share and lib directories relative to its binaries), so that a test run
# installs the extension there and never into the system's directories:
# test runs of different checkouts can then run side by side.  Sets
# PAAS_PG_PREFIX and PG_BIN.
stack_private_pg() {
	local prefix=$1 lib share
	lib=$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)
	lib=$(dirname "$lib")
	share=$(pg_config --sharedir 2>/dev/null || echo /usr/share/postgresql/15)
	mkdir -p "$prefix$lib" "$prefix$share"
	cp -a "$lib/." "$prefix$lib/"
	cp -a "$share/." "$prefix$share/"
	chmod -R a+rX "$prefix"
	export PAAS_PG_PREFIX=$prefix
	PG_BIN=$prefix$lib/bin
	export PG_BIN
}

rand_hex() { openssl rand -hex "$1" 2>/dev/null || head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

stack_secrets() {
	local file=$1
	if [ ! -f "$file" ]; then
		umask 077
		cat > "$file" <<SECRETS
# paas secrets, generated $(date -u +%FT%TZ); keep this file private.
PAAS_DB_PASSWORD=$(rand_hex 24)
PAAS_JWT_SECRET=$(rand_hex 32)
PAAS_NODE_JOIN_TOKEN=$(rand_hex 24)
SECRETS
		umask 022
	fi
	set -a
	# shellcheck disable=SC1090
	. "$file"
	set +a
}

stack_db_up() {
	cluster_init
	cluster_start
	db_setup "$PAAS_DB_PASSWORD"
	stack_db_url
}

# The connection string of httpd (PAAS_DB_URL).
stack_db_url() {
	export PAAS_DB_URL="host=$PAAS_PGSOCK port=$PAAS_PGPORT dbname=$PAAS_DB user=paas_api password=$PAAS_DB_PASSWORD"
}

HTTPD_PID=
stack_httpd_start() {
	local bin=$1 log=${2:-/dev/stderr}
	"$bin" >>"$log" 2>&1 &
	HTTPD_PID=$!
	local url="http://${PAAS_HTTP_LISTEN:-127.0.0.1:8080}/api/v1/health"
	if ! WAIT_SECS=20 wait_for curl -sf "$url"; then
		echo "httpd did not come up on $url" >&2
		return 1
	fi
}

stack_down() {
	if [ -n "${HTTPD_PID:-}" ] && kill -0 "$HTTPD_PID" 2>/dev/null; then
		kill -TERM "$HTTPD_PID" 2>/dev/null || true
		wait "$HTTPD_PID" 2>/dev/null || true
	fi
	HTTPD_PID=
	cluster_stop
}
