#!/usr/bin/env bash
# Imports the database of the original system (be-minispod, PostgreSQL) into
# the paas cluster of `make run` (docs/migration.md):
#
#   docker/scripts/import-original.sh "<libpq conninfo of the original>" [options]
#   make import-original ORIGINAL="host=... dbname=... user=..." [DRY_RUN=1] [LINK_EXISTING=1]
#
#   --dry-run          do the whole import and roll it back: the report only
#   --link-existing    an e-mail paas already has takes the original's data
#                      (default: such a user and its data are skipped)
#   --remote-schema S  the original's schema (default public, Prisma's)
#   --schema S         the local schema of the foreign tables (default original_import)
#   --keep-attached    leave the foreign tables (and the user mapping holding
#                      the connection string) for verification queries
#
# Steps: CREATE EXTENSION postgres_fdw; paas.import_original_attach() (a
# foreign server, user mapping and foreign tables in the original's shape);
# api.import_original() in one transaction; paas.import_original_detach().
# The report (JSON) goes to stdout, a summary to stderr.  Exit status 0 when
# the import ran (read the report's problems), 1 when it failed (nothing was
# imported), 2 on bad usage.
#
# The cluster: PAAS_PGSOCK / PAAS_PGPORT / PAAS_DB when set, else the one
# `make run` keeps (.data/ of this checkout, as docker/scripts/run.sh).
set -euo pipefail
. "$(dirname "$0")/stack.sh"

usage() {
	sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

conninfo=
dry=false
existing=skip
remote_schema=public
schema=original_import
keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--dry-run) dry=true ;;
	--link-existing) existing=link ;;
	--remote-schema) [ $# -ge 2 ] || usage; remote_schema=$2; shift ;;
	--schema) [ $# -ge 2 ] || usage; schema=$2; shift ;;
	--keep-attached) keep=1 ;;
	-h|--help) usage ;;
	-*) echo "unknown option $1" >&2; usage ;;
	*) [ -z "$conninfo" ] || usage; conninfo=$1 ;;
	esac
	shift
done
[ -n "$conninfo" ] || usage

if [ -z "${PAAS_PGSOCK:-}" ]; then
	# the cluster of `make run` (the same places as docker/scripts/run.sh)
	DATA_DIR=$STACK_ROOT/.data
	if ! pg_can_reach "$DATA_DIR"; then
		DATA_DIR=/var/lib/paas/$(printf '%s' "$STACK_ROOT" | sha256sum | cut -c1-12)
	fi
	PAAS_PGSOCK=$DATA_DIR/run
	PAAS_PGPORT=${PAAS_PGPORT:-5433}
fi
export PAAS_PGSOCK PAAS_PGPORT

# The connection string may hold a password: the statements carrying it are
# never written to the server log, and the user mapping holding it is
# dropped at the end (unless --keep-attached).
if ! psql_su -At -v conninfo="$conninfo" -v schema="$schema" -v remote="$remote_schema" >/dev/null <<'SQL'
SET log_min_error_statement = panic;
SET log_statement = none;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
SELECT paas.import_original_attach(:'conninfo', :'schema', :'remote');
SQL
then
	echo "import-original: could not attach the original's database (nothing was imported)" >&2
	exit 1
fi

detach() {
	[ "$keep" -eq 1 ] && return 0
	psql_su -At -v schema="$schema" -c "SET client_min_messages = warning" \
		-f - >/dev/null <<'SQL' || echo "import-original: could not detach schema $schema" >&2
SELECT paas.import_original_detach(:'schema');
SQL
}
trap detach EXIT

if ! psql_su -At -v schema="$schema" -v dry="$dry" -v existing="$existing" <<'SQL'
SELECT api.import_original(jsonb_build_object('source', :'schema', 'dryRun', :'dry'::boolean,
											   'onExistingEmail', :'existing')) AS report \gset
SELECT jsonb_pretty(:'report'::jsonb);
SELECT format('%s: %s rows imported, %s linked, %s already imported, %s skipped; %s problems; '
			  'balances: %s of %s users reconciled (original %s, paas %s IDR)',
			  CASE WHEN (r ->> 'dryRun')::boolean THEN 'dry run (nothing written)' ELSE 'import run ' || (r ->> 'runId') END,
			  sum((c.value ->> 'imported')::bigint), sum((c.value ->> 'linked')::bigint),
			  sum((c.value ->> 'alreadyImported')::bigint), sum((c.value ->> 'skipped')::bigint),
			  jsonb_array_length(r -> 'problems'), r #>> '{balances,reconciled}', r #>> '{balances,users}',
			  r #>> '{balances,totalOriginal}', r #>> '{balances,totalPaas}') AS summary
  FROM (SELECT :'report'::jsonb AS r) x, jsonb_each(x.r -> 'counts') c
 GROUP BY x.r \gset
\warn :summary
SQL
then
	echo "import-original: the import failed; nothing was imported" >&2
	exit 1
fi
