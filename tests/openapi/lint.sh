#!/usr/bin/env bash
# The OpenAPI document the database generates (api.openapi()) against
# `redocly lint` with the recommended rules (redocly.yaml here): no error.
#
# Needs a cluster with the extension: the psql command line in
# PAAS_TEST_PSQL, or the variables of docker/scripts/stack.sh (PAAS_PGSOCK,
# PAAS_PGPORT, PAAS_DB, PG_BIN) as tests/run.sh sets them.  Installs
# @redocly/cli at the version of package-lock.json into
# tests/openapi/node_modules when it is missing (npm's own cache is the only
# thing kept outside the tree).  Every step is bounded in time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE"

locked=$(node -p "require('./package-lock.json').packages['node_modules/@redocly/cli'].version")
installed=$(node -p "try { require('./node_modules/@redocly/cli/package.json').version } catch (e) { '' }")
if [ "$installed" != "$locked" ]; then
	echo "installing @redocly/cli $locked (npm ci)"
	timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
if [ -n "${PAAS_TEST_PSQL:-}" ]; then
	# shellcheck disable=SC2086
	$PAAS_TEST_PSQL -c "SELECT api.openapi()" >"$OUT/openapi.json"
else
	# shellcheck source=../../docker/scripts/stack.sh
	. "$HERE/../../docker/scripts/stack.sh"
	psql_su -At -c "SELECT api.openapi()" >"$OUT/openapi.json"
fi
test -s "$OUT/openapi.json"

export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1
timeout 60 ./node_modules/.bin/redocly lint --config "$HERE/redocly.yaml" --format=stylish \
	"$OUT/openapi.json" 2>&1 | grep -v -e '[║╔╚]'
exit "${PIPESTATUS[0]}"
