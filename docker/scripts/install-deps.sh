#!/usr/bin/env bash
# Installs the Debian 12 packages paas needs, when any is missing.  Used by
# `make run`, `make test` and docker/Dockerfile alike, so the images cannot
# drift from the development set-up.
#   install-deps.sh          everything to build, run and test (default)
#   install-deps.sh db       what the database image runs (the extension's libraries, pg_cron)
#   install-deps.sh httpd    what the gateway image runs
#   install-deps.sh --list P prints the packages of profile P
set -euo pipefail

PROFILE=${1:-dev}
LIST=
if [ "$PROFILE" = "--list" ]; then
	LIST=1
	PROFILE=${2:-dev}
fi
# runtime libraries of paas.so (libcurl) and of paas-httpd
RUN_DB=(postgresql-15-cron libcurl4 libhpdf-2.3.0 ca-certificates)
RUN_HTTPD=(libcivetweb1 libjansson4 libjwt0 libcurl4 libpq5 libssl3 libhpdf-2.3.0 ca-certificates curl)
case "$PROFILE" in
	db) PKGS=("${RUN_DB[@]}") ;;
	httpd) PKGS=("${RUN_HTTPD[@]}") ;;
	dev) PKGS=(build-essential pkg-config ca-certificates curl
	      postgresql-15 postgresql-client-15 postgresql-contrib postgresql-server-dev-15
	      postgresql-15-cron postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	      libcivetweb-dev libjansson-dev libjwt-dev libcurl4-openssl-dev libssl-dev libpq-dev libhpdf-dev
	      python3 python3-pytest python3-requests python3-yaml python3-aiosmtpd wrk poppler-utils openssl nodejs
	      prometheus)
	   # prometheus: its promtool checks GET /metrics (tests/http/test_metrics.py)
	   # tests/kube and tests/openapi run npm; a node install that brings its own npm needs no Debian npm
	   command -v npm >/dev/null 2>&1 || PKGS+=(npm)
	   # the real kubectl the Kubernetes stand-in is checked with: Debian's,
	   # unless one is installed already
	   command -v kubectl >/dev/null 2>&1 || PKGS+=(kubernetes-client) ;;
	*) echo "install-deps.sh: unknown profile '$PROFILE' (dev, db, httpd)" >&2; exit 2 ;;
esac
if [ -n "$LIST" ]; then
	printf '%s\n' "${PKGS[@]}"
	exit 0
fi

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps.sh: these packages are missing: ${missing[*]}" >&2
		echo "install-deps.sh: run as root, or install sudo, or install them yourself (apt-get install ...)" >&2
		exit 1
	fi
	SUDO=sudo
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The Debian postgresql package creates and starts a default cluster; paas
# runs its own, so keep the default one from starting.
$SUDO mkdir -p /etc/postgresql-common
if [ ! -f /etc/postgresql-common/createcluster.conf ] || ! grep -q '^create_main_cluster = false' /etc/postgresql-common/createcluster.conf; then
	echo 'create_main_cluster = false' | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
