#!/usr/bin/env bash
# Installs the Debian 12 packages paas needs to build, run and test, when any
# is missing.  Used by `make run`, `make test` and docker/Dockerfile alike.
set -euo pipefail

PKGS=(build-essential pkg-config ca-certificates curl
      postgresql-15 postgresql-client-15 postgresql-contrib postgresql-server-dev-15
      postgresql-15-cron postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
      libcivetweb-dev libjansson-dev libjwt-dev libcurl4-openssl-dev libssl-dev libpq-dev libhpdf-dev
      python3 python3-pytest python3-requests wrk poppler-utils)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
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
