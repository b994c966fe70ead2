"""What reaches the PostgreSQL server log (extension/logging.c): a refusal
of the application (P<letter>4xx: PT4xx, and the subject classes PU, PE, PS,
PW of the original's specific codes) is answered but not logged; a real
fault is, PL/pgSQL's own class P0 included."""
import os
import shlex
import subprocess
import uuid

from conftest import Api, check_envelope, psql

AS_PG = shlex.split(os.environ.get("PAAS_TEST_AS_PG", ""))
LOG = os.environ["PAAS_TEST_SERVER_LOG"]


def log_text():
    return subprocess.run(AS_PG + ["cat", LOG], capture_output=True, text=True, check=True).stdout


def test_refusals_stay_out_of_the_log_and_faults_do_not(admin):
    marker = uuid.uuid4().hex
    api = Api(admin["access"])
    # refusals: a field error (PT400), a missing user (PU404), service
    # (PS404) and node (PW404), a taken slug (PS409)
    r = Api().post("/api/v1/auth/login", {"email": f"{marker}@example.com"})
    check_envelope(r, 400)
    assert check_envelope(api.get(f"/api/v1/users/{uuid.uuid4()}"), 404)["code"] == "USER_NOT_FOUND"
    assert check_envelope(api.get(f"/api/v1/services/admin/{uuid.uuid4()}"), 404)["code"] == "SERVICE_NOT_FOUND"
    assert check_envelope(api.get(f"/api/v1/workers/gone-{marker}"), 404)["code"] == "WORKER_NODE_NOT_FOUND"
    slug = "log-" + marker[:12]
    svc = {"name": slug, "displayName": "Log Test", "description": "a service of the log test", "dockerImage": "nginx"}
    check_envelope(api.post("/api/v1/services", svc), 201)
    assert check_envelope(api.post("/api/v1/services", svc), 409)["code"] == "SERVICE_EXISTS"
    # a real fault, marked so that this test finds its own line
    try:
        psql(f"SELECT 1 / 0 AS \"{marker}\"")
    except subprocess.CalledProcessError:
        pass
    # PL/pgSQL's class P0 is PostgreSQL's, not a refusal: logged
    try:
        psql(f"DO $$ BEGIN RAISE EXCEPTION 'plpgsql-{marker}'; END $$")
    except subprocess.CalledProcessError:
        pass
    # the fault's line proves the log is written (and read) at all
    psql("SELECT pg_catalog.pg_sleep(0)")
    text = log_text()
    assert marker in text and "division by zero" in text
    assert f"plpgsql-{marker}" in text
    fault_lines = [l for l in text.splitlines() if marker in l]
    assert all("login" not in l for l in fault_lines)
    errors = [l for l in text.splitlines() if "ERROR:" in l]
    for refusal in ("User not found", "Service not found", "Worker node not found",
                    "Service with this name already exists"):
        assert not [l for l in errors if refusal in l], refusal
    assert f"{marker}@example.com" not in text and f"gone-{marker}" not in text


def test_refusals_can_be_logged_when_asked(admin):
    psql("ALTER SYSTEM SET paas.log_refusals = on; SELECT pg_reload_conf();")
    try:
        missing = str(uuid.uuid4())
        def logged():
            check_envelope(Api(admin["access"]).get(f"/api/v1/users/{missing}"), 404)
            return "User not found" in log_text()
        from conftest import wait_until
        wait_until(logged, timeout=10, interval=0.3)
    finally:
        psql("ALTER SYSTEM RESET paas.log_refusals; SELECT pg_reload_conf();")
