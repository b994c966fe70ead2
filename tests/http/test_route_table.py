"""The route table in the database (paas.routes, sql/parts/95_routes.sql)
against the gateway's C table (httpd/routes.c and its routes_*.inc).

Until httpd loads its routes from the database, both exist; this test reads
the C sources and compares every row (method, path, function, access rule,
success status, message, flags, tag, in table order), so that neither can
change without the other.  It also pins the vocabulary (the access rules and
flags of httpd/httpd.h against paas.route_access_names() and
paas.route_flag_names()) and the change notification a gateway reloads on.
"""
import json
import os
import re
import subprocess

from conftest import PSQL, psql

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HTTPD = os.path.join(ROOT, "httpd")

# {"GET", "/api/v1/users/:id", ACCESS_ADMIN, "api.users_get", 200, "User retrieved successfully", 0, "users"},
ROW = re.compile(r'\{"(?P<method>[A-Z]+)", "(?P<path>[^"]+)", ACCESS_(?P<access>[A-Z]+), '
                 r'(?:NULL|"(?P<function>[^"]+)"), (?P<status>\d+), "(?P<message>(?:[^"\\]|\\.)*)", '
                 r'(?P<flags>0|ROUTE_[A-Z0-9_]+(?: \| ROUTE_[A-Z0-9_]+)*), "(?P<tag>[^"]+)"\},?')


def c_routes():
    """The rows of the C table in the order routes.c includes them."""
    with open(os.path.join(HTTPD, "routes.c")) as f:
        includes = re.findall(r'^#include "(routes_\w+\.inc)"', f.read(), re.M)
    assert includes, "routes.c includes no routes_*.inc"
    rows = []
    for inc in includes:
        with open(os.path.join(HTTPD, inc)) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                m = ROW.fullmatch(line)
                assert m, f"{inc}: a route row this test cannot read: {line}"
                flags = [] if m["flags"] == "0" else [f.strip()[len("ROUTE_"):].lower()
                                                       for f in m["flags"].split("|")]
                rows.append({
                    "method": m["method"], "path": m["path"], "function": m["function"],
                    "access": m["access"].lower(), "status": int(m["status"]),
                    "message": re.sub(r"\\(.)", r"\1", m["message"]),
                    "flags": sorted(flags), "tag": m["tag"],
                })
    return rows


def db_routes():
    out = psql("SELECT coalesce(json_agg(json_build_object("
               "'method', method, 'path', path, 'function', paas.route_function_name(function), "
               "'access', access, 'status', status, 'message', message, "
               "'flags', ARRAY(SELECT f FROM unnest(flags) f ORDER BY f), 'tag', tag) ORDER BY seq), '[]') "
               "FROM paas.routes")
    return json.loads(out)


def c_enum(name):
    """The member names of an enum of httpd.h, without their prefix."""
    with open(os.path.join(HTTPD, "httpd.h")) as f:
        body = re.search(r"enum " + name + r"\s*\{(.*?)\};", f.read(), re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return [re.sub(r"^(ACCESS|ROUTE)_", "", m).lower() for m in re.findall(r"\b((?:ACCESS|ROUTE)_[A-Z0-9_]+)\b", body)]


def test_the_route_table_equals_the_c_table():
    c, db = c_routes(), db_routes()
    assert len(c) > 80 and len(db) == len(c), (len(c), len(db))
    for i, (a, b) in enumerate(zip(c, db)):
        assert a == b, f"row {i + 1}: C {a} != database {b}"


def test_access_rules_and_flags_are_the_gateways():
    assert c_enum("access") == json.loads(psql("SELECT to_json(paas.route_access_names())"))
    assert c_enum("route_flags") == json.loads(psql("SELECT to_json(paas.route_flag_names())"))


def test_a_change_of_the_routes_is_notified():
    # A listener in its own session sees the notification at commit; the
    # updates leave every value as it was.
    out = subprocess.run(PSQL, input="LISTEN paas_routes;\n"
                         "UPDATE paas.routes SET summary = summary WHERE path = '/api/v1/status';\n"
                         "UPDATE paas.route_schemas SET schema = schema WHERE name = 'User';\n"
                         "SELECT 'done';\n", capture_output=True, text=True, check=True).stdout
    assert 'notification "paas_routes" with payload "routes update"' in out, out
    assert 'notification "paas_routes" with payload "route_schemas update"' in out, out


def test_the_document_the_database_generates_lists_every_route():
    doc = json.loads(psql("SELECT api.openapi()"))
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert len(ops) == len(c_routes())
    for r in c_routes():
        template = re.sub(r"/:[^/]+", "/{}", r["path"])
        assert any(m == r["method"] and re.sub(r"\{[^}]+\}", "{}", p) == template for m, p in ops), r
