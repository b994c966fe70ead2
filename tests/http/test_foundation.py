"""Foundation: envelope, system routes, error paths, OpenAPI, reconnects."""
import os
import shlex
import subprocess

import requests

from conftest import BASE, METRICS, Api, check_envelope, wait_until


def makefile_version():
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(root, "Makefile")) as f:
        for line in f:
            if line.startswith("EXTVERSION"):
                return line.split("=", 1)[1].strip()
    raise AssertionError("no EXTVERSION in the Makefile")


def test_status_envelope(api):
    body = check_envelope(api.get("/api/v1/status"), 200)
    assert body["data"]["service"] == "paas"
    assert body["data"]["version"] == makefile_version()
    # the public answer tells nothing an attacker could aim with
    assert set(body["data"]) == {"service", "version", "databaseTime", "worker", "cron"}
    assert set(body["data"]["worker"]) == {"running"}
    assert body["data"]["cron"] is True
    assert "worker" in body["data"]


def test_health_routes(api):
    for path in ("/health", "/api/v1/health"):
        body = check_envelope(api.get(path), 200)
        assert body["data"]["status"] == "healthy"


def test_unknown_route_is_404_json(api):
    body = check_envelope(api.get("/api/v1/does-not-exist"), 404)
    assert body["code"] == "ENDPOINT_NOT_FOUND"
    check_envelope(api.delete("/api/v1/status"), 404)


def test_malformed_json_is_400(user):
    r = Api(user["access"]).call("PUT", "/api/v1/auth/profile", raw=b'{"name": ',
                                  headers={"Content-Type": "application/json"})
    body = check_envelope(r, 400)
    assert body["code"] == "VALIDATION_ERROR"
    assert body["errors"][0]["field"] == "body"


def test_non_object_json_is_400(api):
    body = check_envelope(api.post("/api/v1/auth/login", [1, 2]), 400)
    assert body["code"] == "VALIDATION_ERROR"


def test_duplicate_keys_are_400(api):
    r = api.call("POST", "/api/v1/auth/login", raw=b'{"email":"a@b.co","email":"c@d.co"}')
    check_envelope(r, 400)


def test_body_over_1mib_is_413(api):
    big = b'{"name": "' + b"a" * (1024 * 1024) + b'"}'
    body = check_envelope(api.call("POST", "/api/v1/auth/login", raw=big), 413)
    assert body["code"] == "PAYLOAD_TOO_LARGE"


def test_body_just_under_limit_is_read(api):
    pad = "a" * (1024 * 1024 - 100)
    r = api.post("/api/v1/auth/login", {"email": "nobody@example.com", "password": "x", "pad": pad})
    check_envelope(r, 401)


def test_openapi_lists_every_route(api):
    r = api.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    for method, path in [("GET", "/api/v1/status"), ("POST", "/api/v1/auth/login"),
                         ("GET", "/api/v1/users/{id}"), ("PATCH", "/api/v1/users/{id}/toggle-status")]:
        assert (method, path) in ops
    assert doc["paths"]["/api/v1/users/{id}"]["get"]["security"] == [{"bearerAuth": []}]


def test_metrics_listener(api):
    api.get("/api/v1/status")
    r = requests.get(METRICS + "/metrics", timeout=30)
    assert r.status_code == 200
    assert 'paas_http_requests_total{method="GET",route="/api/v1/status",status="2xx"}' in r.text


def test_security_headers(api):
    r = api.get("/api/v1/status")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"


def test_database_down_gives_503_and_recovers(api):
    """Stops PostgreSQL under the running httpd, then starts it again: the
    health route says 503 meanwhile, and httpd reconnects by itself."""
    stop = shlex.split(os.environ["PAAS_TEST_PG_STOP"])
    start = shlex.split(os.environ["PAAS_TEST_PG_START"])
    check_envelope(api.get("/api/v1/health"), 200)
    subprocess.run(stop, check=True, capture_output=True)
    try:
        body = check_envelope(api.get("/api/v1/health"), 503)
        assert body["code"] == "SERVICE_UNAVAILABLE"
        r = api.get("/api/v1/status")
        assert r.status_code == 503 and r.headers.get("Retry-After") == "1"
    finally:
        subprocess.run(start, check=True, capture_output=True)
    wait_until(lambda: requests.get(BASE + "/api/v1/health", timeout=5).status_code == 200)
    # every worker thread's connection was lost: all must recover
    for _ in range(50):
        check_envelope(api.get("/api/v1/status"), 200)


def test_admin_reads_the_job_runs(admin, user):
    adm = Api(admin["access"])
    body = check_envelope(adm.get("/api/v1/admin/jobs"), 200)
    names = {j["name"] for j in body["data"]["jobs"]}
    assert {"heartbeat", "node_monitor", "prune_job_runs"} <= names
    assert body["data"]["worker"]["running"] is True
    def runs():
        b = check_envelope(adm.get("/api/v1/admin/jobs/runs?job=node_monitor&limit=5"), 200)
        return b if b["data"] else None

    body = wait_until(runs)
    assert all(r["job"] == "node_monitor" for r in body["data"])
    assert body["pagination"]["limit"] == 5
    check_envelope(adm.get("/api/v1/admin/jobs/runs?limit=1000"), 400)
    assert Api(user["access"]).get("/api/v1/admin/jobs").status_code == 403
    assert Api().get("/api/v1/admin/jobs/runs").status_code == 401


def test_admin_status_has_the_details(api, admin, user):
    check_envelope(api.get("/api/v1/admin/status"), 401)
    check_envelope(Api(user["access"]).get("/api/v1/admin/status"), 403)
    d = check_envelope(Api(admin["access"]).get("/api/v1/admin/status"), 200)["data"]
    assert d["postgres"].startswith("15")
    assert d["extensionVersion"] == makefile_version()
    assert "pid" in d["worker"] and "ticks" in d["worker"]
