"""What reaches the PostgreSQL server log (extension/logging.c): a refusal
of the application (PT4xx) is answered but not logged; a real fault is."""
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
    # refusals: a missing user (PT404) and a field error (PT400)
    check_envelope(api.get(f"/api/v1/users/{uuid.uuid4()}"), 404)
    r = Api().post("/api/v1/auth/login", {"email": f"{marker}@example.com"})
    check_envelope(r, 400)
    # a real fault, marked so that this test finds its own line
    try:
        psql(f"SELECT 1 / 0 AS \"{marker}\"")
    except subprocess.CalledProcessError:
        pass
    # the fault's line proves the log is written (and read) at all
    psql("SELECT pg_catalog.pg_sleep(0)")
    text = log_text()
    assert marker in text and "division by zero" in text
    fault_lines = [l for l in text.splitlines() if marker in l]
    assert all("login" not in l for l in fault_lines)
    assert "User not found" not in text
    assert f"{marker}@example.com" not in text


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
