#!/usr/bin/env bash
# tests/upgrade/old_versions.sh: installs the install script of every released
# version (tests/upgrade/releases) into the extension directory of the server
# the tests use (the private installation PAAS_PG_PREFIX of tests/run.sh, or
# the system's), rebuilt from git: the sql/parts of the release's commit,
# concatenated in name order, as that commit's Makefile did.  Only the
# upgrade check needs them (CREATE EXTENSION paas VERSION '<old>'): a server
# that has an old version installed updates it with the upgrade scripts of
# sql/versions alone.  Prints the versions installed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EXTDIR=${PAAS_PG_PREFIX:-}$(pg_config --sharedir)/extension
SUDO=
[ "$(id -u)" -eq 0 ] || [ -n "${PAAS_PG_PREFIX:-}" ] || SUDO=sudo
if ! git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
	echo "old_versions.sh: $ROOT is not a git checkout; the released versions are rebuilt from its history" >&2
	exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
while read -r version commit; do
	case "$version" in '' | '#'*) continue ;; esac
	if ! git -C "$ROOT" cat-file -e "$commit^{commit}" 2>/dev/null; then
		echo "old_versions.sh: commit $commit of release $version is not in this clone's history (a shallow clone?)" >&2
		exit 1
	fi
	# the commit must be the release it is said to be
	got=$(git -C "$ROOT" show "$commit:paas.control" | sed -n "s/^default_version = '\(.*\)'/\1/p")
	if [ "$got" != "$version" ]; then
		echo "old_versions.sh: commit $commit has default_version '$got', not $version" >&2
		exit 1
	fi
	: > "$out"
	while read -r part; do
		git -C "$ROOT" show "$commit:$part" >> "$out"
	done < <(git -C "$ROOT" ls-tree --name-only "$commit" sql/parts/ | LC_ALL=C sort)
	$SUDO install -m 0644 "$out" "$EXTDIR/paas--$version.sql"
	echo "$version"
done < "$ROOT/tests/upgrade/releases"
