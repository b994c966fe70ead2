#!/usr/bin/env bash
# tests/upgrade/functions.sh OLD: prints the function part of an upgrade
# script from version OLD to the current one.  It installs both versions in
# throw-away databases of the cluster of docker/scripts/lib.sh's environment
# (PAAS_PGSOCK, PAAS_PGPORT), compares every function of the extension by
# definition, comment and privileges, and prints, for each one that is new or
# changed, its definition as pg_get_functiondef prints it, its comment and
# its grants; DROP FUNCTION for those that are gone, and first for those whose
# result type changed.  Functions are printed in dependency order (one with
# an SQL-standard body after those it calls).  FORCE="f(a,b);g(c)" prints
# those too, changed or not: the functions an upgrade script drops so that
# it can alter a table whose row type their bodies use.  Tables, types and
# data are written by hand; the upgrade check (tests/upgrade/check.sh) proves
# the whole script right.  EXCLUDE="schema.name ..." leaves out the
# functions of those names (those an upgrade script creates with a new part of
# the install script, as it stands).
set -euo pipefail
. "$(dirname "$0")/../../docker/scripts/lib.sh"
OLD=${1:?usage: functions.sh OLD_VERSION}
bash "$(dirname "$0")/old_versions.sh" >/dev/null
WORK=$(mktemp -d)
chmod 0755 "$WORK"
trap 'rm -rf "$WORK"; psql_su -d postgres -qAtX -c "DROP DATABASE IF EXISTS paas_fn_old" -c "DROP DATABASE IF EXISTS paas_fn_new" >/dev/null' EXIT
db() { psql_su -d "$1" -v ON_ERROR_STOP=1 -qAtX "${@:2}"; }
for d in paas_fn_old paas_fn_new; do
	psql_su -d postgres -qAtX -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $d" -c "CREATE DATABASE $d OWNER paas_owner" >/dev/null
done
db paas_fn_old -c "SET client_min_messages = warning" -c "CREATE EXTENSION paas VERSION '$OLD' CASCADE"
db paas_fn_new -c "SET client_min_messages = warning" -c "CREATE EXTENSION paas CASCADE"
LIST="SELECT p.oid::regprocedure::text || E'\t' || md5(pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '-')
		|| coalesce(obj_description(p.oid, 'pg_proc'), '-')) || E'\t' || pg_get_function_result(p.oid)
	FROM pg_proc p
	JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'paas'
	WHERE p.prokind <> 'a' ORDER BY 1"
db paas_fn_old -c "$LIST" > "$WORK/old.tsv"
db paas_fn_new -c "$LIST" > "$WORK/new.tsv"
# functions gone, or whose result type changed: dropped first
awk -F'\t' 'NR == FNR { new[$1] = $3; next } !($1 in new) || new[$1] != $3 { print $1 }' \
	"$WORK/new.tsv" "$WORK/old.tsv" > "$WORK/drop.txt"
awk -F'\t' 'NR == FNR { old[$1] = $2; next } !($1 in old) || old[$1] != $2 { print $1 }' \
	"$WORK/old.tsv" "$WORK/new.tsv" > "$WORK/changed0.txt"
tr ';' '\n' <<<"${FORCE:-}" | sed '/^$/d' >> "$WORK/changed0.txt"
# dependency depth in the new version: 0 for a function that calls no other
# function of the extension through an SQL-standard body
db paas_fn_new > "$WORK/depth.tsv" <<'SQL'
WITH RECURSIVE ext AS (
	SELECT p.oid FROM pg_proc p
	  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'paas'
), edge AS (
	SELECT DISTINCT d.objid AS f, d.refobjid AS g FROM pg_depend d
	  JOIN ext a ON a.oid = d.objid JOIN ext b ON b.oid = d.refobjid
	 WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_proc'::regclass AND d.deptype = 'n'
	   AND d.objid <> d.refobjid
), walk (f, depth) AS (
	SELECT oid, 0 FROM ext
	UNION
	SELECT e.f, w.depth + 1 FROM walk w JOIN edge e ON e.g = w.f WHERE w.depth < 50
)
SELECT f::regprocedure::text || E'\t' || max(depth) FROM walk GROUP BY f;
SQL
awk -F'\t' 'NR == FNR { d[$1] = $2; next } !seen[$0]++ { print (($0 in d) ? d[$0] : 0) "\t" $0 }' \
	"$WORK/depth.tsv" "$WORK/changed0.txt" | sort -t$'\t' -k1,1n -k2,2 | cut -f2 |
	awk -v ex=" ${EXCLUDE:-} " '{ n = $0; sub(/\(.*/, "", n); if (index(ex, " " n " ") == 0) print }' > "$WORK/changed.txt"
while read -r f; do
	[ -n "$f" ] && echo "DROP FUNCTION $f;"
done < "$WORK/drop.txt"
echo
while read -r f; do
	[ -n "$f" ] || continue
	db paas_fn_new -v f="$f" <<'SQL'
SELECT pg_get_functiondef(:'f'::regprocedure) || E';\n'
	|| coalesce(format(E'COMMENT ON FUNCTION %s IS %L;\n', :'f', obj_description(:'f'::regprocedure, 'pg_proc')), '')
	|| CASE WHEN (SELECT proacl FROM pg_proc WHERE oid = :'f'::regprocedure) IS NULL THEN ''
		ELSE format(E'REVOKE ALL ON FUNCTION %s FROM PUBLIC;\n', :'f') END
	|| coalesce((SELECT string_agg(format('GRANT EXECUTE ON FUNCTION %s TO %s;', :'f',
			CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END), E'\n' ORDER BY r.rolname)
		FROM pg_proc p, aclexplode(p.proacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
		WHERE p.oid = :'f'::regprocedure AND a.grantee <> p.proowner) || E'\n', '')
SQL
done < "$WORK/changed.txt"
