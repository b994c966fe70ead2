#!/usr/bin/env bash
# tests/upgrade/assemble.sh [--check] [OLD]: rewrites the upgrade script
# sql/versions/paas--OLD--CURRENT.sql (OLD: default 0.2.0) from the parts
# it is made of, after a change of sql/parts:
#   1. its hand-written head (tables, columns, types, data), kept as it is:
#      everything up to the line "-- ---- functions new or changed ...";
#   2. the functions new or changed since OLD, as tests/upgrade/functions.sh
#      prints them, those with an SQL-standard body as sql/parts writes them
#      (tests/upgrade/sql_bodies.py); the functions the head drops (DROP
#      FUNCTION lines, so that it can alter a table whose row type they use)
#      are printed too;
#   3. each part of the install script that is new since OLD, included as it
#      stands from sql/parts (the "-- ---- new: sql/parts/X ----" markers say
#      which; a new part is added by writing its marker in the script), whose
#      functions step 2 leaves out;
#   4. its hand-written tail, kept as it is: everything from the line
#      "-- ---- after the new parts ----".
# Needs the current version built and installed into the cluster of
# docker/scripts/lib.sh's environment (PAAS_PGSOCK, PAAS_PGPORT), as
# functions.sh does.  tests/upgrade/check.sh then proves the result.
# --check (tests/run.sh): changes nothing, and fails with the difference if
# the script is not what this assembly makes of the parts as they stand (a
# change of sql/parts whose upgrade was not written).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHECK=0
if [ "${1:-}" = --check ]; then CHECK=1; shift; fi
OLD=${1:-0.2.0}
CURRENT=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/paas.control")
SCRIPT=$ROOT/sql/versions/paas--$OLD--$CURRENT.sql
FN_MARK='^-- ---- functions new or changed since '
TAIL_MARK='^-- ---- after the new parts ----$'
grep -q "$FN_MARK" "$SCRIPT" && grep -q "$TAIL_MARK" "$SCRIPT" ||
	{ echo "$SCRIPT: the markers of the functions or of the tail are missing" >&2; exit 1; }
head_end=$(grep -n "$FN_MARK" "$SCRIPT" | head -1 | cut -d: -f1)
tail_start=$(grep -n "$TAIL_MARK" "$SCRIPT" | head -1 | cut -d: -f1)
mapfile -t parts < <(sed -n 's/^-- ---- new: sql\/parts\/\(.*\) ----$/\1/p' "$SCRIPT")
force=$(sed -n "1,${head_end}p" "$SCRIPT" | sed -n 's/^DROP FUNCTION \(.*\);$/\1/p' | sed 's/, /,/g' | paste -sd';')
exclude=""
for p in "${parts[@]}"; do
	[ -f "$ROOT/sql/parts/$p" ] || { echo "$SCRIPT names sql/parts/$p, which does not exist" >&2; exit 1; }
	exclude+=" $(grep -oiE 'CREATE (OR REPLACE )?FUNCTION [a-z_0-9]+\.[a-z_0-9]+' "$ROOT/sql/parts/$p" |
		awk '{ print $NF }' | sort -u | paste -sd' ' || true)"
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
	sed -n "1,${head_end}p" "$SCRIPT"
	FORCE="$force" EXCLUDE="$exclude" bash "$ROOT/tests/upgrade/functions.sh" "$OLD" |
		/usr/bin/python3 "$ROOT/tests/upgrade/sql_bodies.py" "$ROOT"/sql/parts/*.sql
	for p in "${parts[@]}"; do
		echo "-- ---- new: sql/parts/$p ----"
		cat "$ROOT/sql/parts/$p"
		echo
	done
	sed -n "${tail_start},\$p" "$SCRIPT"
} > "$out"
if [ $CHECK = 1 ]; then
	if ! diff -u "$SCRIPT" "$out" > "$out.diff"; then
		echo "$SCRIPT is not what tests/upgrade/assemble.sh makes of sql/parts (- script, + assembled):" >&2
		head -n 60 "$out.diff" >&2
		rm -f "$out.diff"
		exit 1
	fi
	rm -f "$out.diff"
	echo "$SCRIPT: as assembled from sql/parts"
	exit 0
fi
cat "$out" > "$SCRIPT"
echo "$SCRIPT: $(wc -l < "$SCRIPT") lines (${#parts[@]} new parts)"
