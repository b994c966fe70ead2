"""Conventions of every reply (docs/operations.md, "Request ids, CORS, HEAD"):
a request id in X-Request-Id, the access log and the PostgreSQL log line of
the request's call; CORS for the origins of PAAS_CORS_ORIGINS (tests/run.sh
sets two); HEAD on every GET route."""
import json
import os
import re
import socket
import subprocess
import time
import uuid

import pytest
import requests

from conftest import BASE, SERVER_LOG, Api, check_envelope, psql, read_server_log, register, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORIGINS = [o.strip() for o in os.environ.get("PAAS_CORS_ORIGINS", "").split(",") if o.strip()]
GENERATED = re.compile(r"^[0-9a-f]{32}$")


def rid(r):
    return r.headers.get("X-Request-Id")


# ---- request ids -------------------------------------------------------------

def test_every_reply_has_a_fresh_request_id():
    a = Api()
    replies = [a.get("/api/v1/health"),                         # a call
               a.get("/api/v1/openapi.json"),                   # built in
               a.get("/api/v1/no-such-route"),                  # 404
               a.get("/api/v1/auth/me"),                        # 401 before any call
               a.post("/api/v1/auth/login", raw=b"{", headers={"Content-Type": "application/json"}),
               a.get("/api/v1/%2e%2e/health")]                  # refused spelling: 404
    assert [r.status_code for r in replies] == [200, 200, 404, 401, 400, 404]
    ids = [rid(r) for r in replies]
    assert all(i and GENERATED.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_an_early_refusal_has_one_too():
    """Framing refused before any route is looked at (request.c)."""
    s = socket.create_connection(("127.0.0.1", int(BASE.rsplit(":", 1)[1])), timeout=10)
    s.sendall(b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
              b"X-Request-Id: early-1\r\n\r\nab")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    head = data.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 400"), head
    assert "X-Request-Id: early-1\r\n" in head + "\r\n"


def test_a_client_request_id_is_echoed():
    a = Api()
    mine = "req-" + uuid.uuid4().hex + ".A_b~1"
    for r in (a.get("/api/v1/health", headers={"X-Request-Id": mine}),
              a.get("/api/v1/nowhere", headers={"X-Request-Id": mine}),
              a.get("/api/v1/auth/me", headers={"X-Request-Id": mine})):
        assert rid(r) == mine, (r.status_code, r.headers)
    edge = "x" * 128
    assert rid(a.get("/api/v1/health", headers={"X-Request-Id": edge})) == edge


@pytest.mark.parametrize("junk", ["x" * 129, "two words", "quote\"d", "a,b", "semi;colon",
                                  "caf\u00e9", "", "(paren)", "{brace}"])
def test_a_junk_request_id_is_replaced(junk):
    r = Api().get("/api/v1/health", headers={"X-Request-Id": junk})
    check_envelope(r, 200)
    assert GENERATED.match(rid(r)), rid(r)
    if junk:
        assert junk not in r.text and junk not in str(r.headers)


@pytest.mark.skipif(not SERVER_LOG, reason="needs the test cluster's server log")
def test_the_request_id_is_in_the_server_log_line_of_its_call(user):
    """With refusals logged (paas.log_refusals), the refusal's ERROR line
    names the request as application_name (%a of log_line_prefix); the
    pooled connection's next call does not carry it.  (A refusal that
    test_server_log.py does not look for.)"""
    psql("ALTER SYSTEM SET paas.log_refusals = on; SELECT pg_reload_conf();")
    try:
        mine = "log-" + uuid.uuid4().hex
        missing = str(uuid.uuid4())
        api = Api(user["access"])

        def logged():
            check_envelope(api.get(f"/api/v1/billing/transactions/{missing}",
                                   headers={"X-Request-Id": mine}), 404)
            return [l for l in read_server_log().splitlines() if "Transaction not found" in l and mine in l]
        lines = wait_until(logged, timeout=10, interval=0.3)
        assert f" paas-httpd/{mine} " in lines[0], lines[0]
        # the next refusals, on the same pool, carry their own ids only
        others = ["next-" + uuid.uuid4().hex for _ in range(5)]
        for o in others:
            check_envelope(api.get(f"/api/v1/billing/transactions/{uuid.uuid4()}",
                                   headers={"X-Request-Id": o}), 404)
        wait_until(lambda: all(o in read_server_log() for o in others), timeout=10, interval=0.3)
        refusals = [l for l in read_server_log().splitlines() if "Transaction not found" in l]
        assert len([l for l in refusals if mine in l]) == len(lines)
        for o in others:
            assert len([l for l in refusals if o in l]) == 1
        # a long client id: PostgreSQL keeps 63 bytes of a name, httpd sends its first 52
        long_id = "long-" + uuid.uuid4().hex * 3
        r = api.get(f"/api/v1/billing/transactions/{uuid.uuid4()}", headers={"X-Request-Id": long_id})
        assert rid(r) == long_id
        wait_until(lambda: f" paas-httpd/{long_id[:52]} ERROR:" in read_server_log(), timeout=10, interval=0.3)
    finally:
        psql("ALTER SYSTEM RESET paas.log_refusals; SELECT pg_reload_conf();")
    # between calls, every gateway connection is named plain "paas-httpd"
    wait_until(lambda: psql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                            "'paas-httpd/%' AND state = 'idle'") == "0", timeout=10)


# ---- a second gateway with its access log ---------------------------------------

@pytest.fixture
def logging_httpd(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out, err = tmp_path / "access.log", tmp_path / "error.log"
    proc = subprocess.Popen([os.path.join(ROOT, "httpd", "paas-httpd")], stdout=open(out, "w"),
                            stderr=open(err, "w"),
                            env=dict(os.environ, PAAS_HTTP_LISTEN=f"127.0.0.1:{port}",
                                     PAAS_ACCESS_LOG="1", PAAS_METRICS_LISTEN="off"))
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(url + "/api/v1/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False
    try:
        wait_until(up, timeout=20)
        yield url, out, err
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_access_log_names_the_request_id(logging_httpd):
    url, out, err = logging_httpd
    mine = "acc-" + uuid.uuid4().hex
    r = requests.get(url + "/api/v1/health", headers={"X-Request-Id": mine}, timeout=10)
    assert r.status_code == 200 and rid(r) == mine
    made = requests.get(url + "/api/v1/missing", timeout=10)
    assert made.status_code == 404

    def lines():
        got = [json.loads(l) for l in open(out).read().splitlines() if l.startswith("{")]
        return got if {mine, rid(made)} <= {g.get("requestId") for g in got} else None
    got = wait_until(lines, timeout=10, interval=0.1)
    mine_line = next(g for g in got if g.get("requestId") == mine)
    assert mine_line["path"] == "/api/v1/health" and mine_line["status"] == 200
    assert next(g for g in got if g.get("requestId") == rid(made))["status"] == 404


def test_httpd_log_lines_carry_a_utc_timestamp(logging_httpd):
    url, out, err = logging_httpd
    lines = [l for l in open(err).read().splitlines() if l.startswith("{")]
    assert lines
    for l in lines:
        ts = json.loads(l)["ts"]
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", ts), l
        assert abs(time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(time.gmtime())) < 600


# ---- CORS -------------------------------------------------------------------

def preflight(path, origin, method="POST"):
    return requests.options(BASE + path, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type"})


@pytest.mark.skipif(len(ORIGINS) < 2, reason="tests/run.sh sets PAAS_CORS_ORIGINS")
def test_a_preflight_of_an_allowed_origin():
    for origin in ORIGINS:
        r = preflight("/api/v1/auth/login", origin)
        assert r.status_code == 204, (r.status_code, r.text)
        assert r.content == b""
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert "Origin" in r.headers["Vary"]
        assert r.headers["Access-Control-Allow-Methods"] == "POST"
        allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= allowed
        assert int(r.headers["Access-Control-Max-Age"]) > 0
        assert GENERATED.match(rid(r))
    # a path with several methods, and one with captures
    r = preflight("/api/v1/users/" + str(uuid.uuid4()), ORIGINS[0], "DELETE")
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Methods"] == "GET, HEAD, PUT, DELETE"


@pytest.mark.skipif(not ORIGINS, reason="tests/run.sh sets PAAS_CORS_ORIGINS")
def test_a_preflight_of_another_origin_or_path_gets_no_cors():
    for r in (preflight("/api/v1/auth/login", "https://evil.example.test"),
              preflight("/api/v1/auth/login", ORIGINS[0] + ".evil.test"),
              preflight("/api/v1/auth/login", "null")):
        assert r.status_code == 404, r.status_code
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers
    # a path without routes: the 404 of an allowed origin (readable by it), no preflight
    r = preflight("/api/v1/no-such-route", ORIGINS[0])
    assert r.status_code == 404
    assert r.headers["Access-Control-Allow-Origin"] == ORIGINS[0]
    assert "Access-Control-Allow-Methods" not in r.headers
    # an OPTIONS without Access-Control-Request-Method is no preflight
    r = requests.options(BASE + "/api/v1/auth/login", headers={"Origin": ORIGINS[0]}, timeout=10)
    assert r.status_code == 404


@pytest.mark.skipif(not ORIGINS, reason="tests/run.sh sets PAAS_CORS_ORIGINS")
def test_real_replies_carry_cors_for_allowed_origins_only(user):
    a = Api(user["access"])
    for path, status in (("/api/v1/auth/me", 200), ("/api/v1/no-such-route", 404),
                         ("/api/v1/users", 403)):
        r = a.get(path, headers={"Origin": ORIGINS[1]})
        assert r.status_code == status
        assert r.headers["Access-Control-Allow-Origin"] == ORIGINS[1]
        exposed = {h.strip().lower() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"x-request-id", "retry-after"} <= exposed
        assert "Origin" in r.headers["Vary"]
        r = a.get(path, headers={"Origin": "https://other.example.test"})
        assert r.status_code == status
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers
        r = a.get(path)
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers


# ---- HEAD ---------------------------------------------------------------------

SKIP_HEADERS = {"x-request-id", "date"}


def same_but_body(get, head):
    assert head.status_code == get.status_code, (head.status_code, get.status_code)
    assert head.content == b""
    g = {k.lower(): v for k, v in get.headers.items() if k.lower() not in SKIP_HEADERS}
    h = {k.lower(): v for k, v in head.headers.items() if k.lower() not in SKIP_HEADERS}
    assert h == g
    assert int(head.headers["Content-Length"]) == len(get.content)
    assert GENERATED.match(rid(head))


def test_head_is_get_without_its_body(admin):
    u = register(Api())
    cases = [(Api(), "/api/v1/health"), (Api(), "/api/v1/services/categories"),
             (Api(), "/api/v1/openapi.json"),
             (Api(u["access"]), "/api/v1/auth/profile"), (Api(u["access"]), "/api/v1/billing/balance"),
             (Api(u["access"]), "/api/v1/billing/transactions?page=1&limit=5"),
             (Api(admin["access"]), f"/api/v1/users/{u['id']}"),
             # the refusals too: no token, not an admin, a missing row, a bad query
             (Api(), "/api/v1/auth/profile"), (Api(u["access"]), "/api/v1/users"),
             (Api(admin["access"]), f"/api/v1/users/{uuid.uuid4()}"),
             (Api(u["access"]), "/api/v1/billing/transactions?limit=abc")]
    for a, path in cases:
        get = a.get(path)
        head = a.call("HEAD", path)
        same_but_body(get, head)
    # the connection stays usable after a HEAD (no body was expected or sent)
    a = Api()
    for _ in range(3):
        assert a.call("HEAD", "/api/v1/health").status_code == 200
        check_envelope(a.get("/api/v1/health"), 200)


def test_head_of_a_pdf(user):
    """The PDF route has a GET: HEAD gives its headers; no invoice here, so
    the answer is the GET's 404."""
    a = Api(user["access"])
    path = f"/api/v1/billing/invoices/{uuid.uuid4()}/pdf"
    same_but_body(a.get(path), a.call("HEAD", path))


def test_head_is_not_a_way_around_other_methods(user):
    """Paths without GET answer a HEAD as any wrong method: 404."""
    a = Api(user["access"])
    for path in ("/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/billing/topup/" + str(uuid.uuid4()) + "/x"):
        r = a.call("HEAD", path)
        assert r.status_code == 404 and r.content == b""
        assert GENERATED.match(rid(r))
    # the wrong method of a GET path is 404 as well, and no route is HEAD-only
    assert check_envelope(a.call("PATCH", "/api/v1/health"), 404)["code"] == "ENDPOINT_NOT_FOUND"
