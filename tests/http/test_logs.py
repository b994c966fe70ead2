"""No password or token reaches the PostgreSQL log: httpd sends them as bind
parameters, and the gateway role paas_api logs none (log_parameter_max_length
and log_parameter_max_length_on_error are 0 in the shipped configuration and
pinned on the role by docker/scripts/lib.sh).  The test makes the server log
as much as a DBA could ask for -- every statement, with its duration, and
every parameter in full -- and looks for the secrets of a whole session."""
import secrets

import pytest

from conftest import Api, check_envelope, psql, register, unique_email, wait_until

# paas.log_refusals: refusals (PT4xx) reach the log too, so that an error
# statement of the gateway is logged and can be searched for parameters
VERBOSE = {"log_min_duration_statement": "0", "log_statement": "'all'",
           "log_parameter_max_length": "-1", "log_parameter_max_length_on_error": "-1",
           "paas.log_refusals": "on"}


@pytest.fixture
def server_log():
    """Turns the verbose settings on (ALTER SYSTEM + reload) and returns a
    function reading what the server logged since; resets them after."""
    def apply():
        psql("SELECT pg_reload_conf()")

    for k, v in VERBOSE.items():
        psql(f"ALTER SYSTEM SET {k} = {v}")
    apply()
    try:
        # a new session sees the reloaded files once the postmaster has
        # read them (and signalled every backend)
        wait_until(lambda: psql("SHOW log_statement") == "all", timeout=20)
        start = psql("SELECT size FROM pg_stat_file('server.log')")
        yield lambda: psql("SELECT pg_read_file('server.log', :'a1'::bigint, 1000000000)", start)
    finally:
        for k in VERBOSE:
            psql(f"ALTER SYSTEM RESET {k}")
        apply()
        wait_until(lambda: psql("SHOW log_statement") == "none", timeout=20)


@pytest.fixture
def join_token():
    # added before the verbose log starts: a DBA's psql sends it as text
    tok = "logs-join-" + secrets.token_hex(16)
    psql("SELECT api.workers_join_token_add(:'a1', 'log test')", tok)
    return tok


def test_no_secret_reaches_the_server_log(join_token, server_log):
    api = Api()
    email = unique_email("logs")
    pw, new_pw = "L0gSecret" + secrets.token_hex(8), "N3wSecret" + secrets.token_hex(8)
    wrong, ghost = "Wr0ngSecret" + secrets.token_hex(8), "Gh0stSecret" + secrets.token_hex(8)
    reg = register(api, email=email, password=pw)
    login = check_envelope(api.post("/api/v1/auth/login", {"email": email, "password": pw}), 200)["data"]
    check_envelope(api.post("/api/v1/auth/change-password",
                            {"currentPassword": pw, "newPassword": new_pw, "confirmNewPassword": new_pw},
                            token=login["accessToken"]), 200)
    refreshed = check_envelope(api.post("/api/v1/auth/refresh", {"refreshToken": login["refreshToken"]}), 200)["data"]
    check_envelope(api.post("/api/v1/auth/login", {"email": email, "password": wrong}), 401)
    # an unknown email is an error statement (PT401 raised): logged, without parameters
    check_envelope(api.post("/api/v1/auth/login", {"email": unique_email("ghost"), "password": ghost}), 401)
    node = check_envelope(api.post("/api/v1/workers/register",
                                   {"name": "logs-" + secrets.token_hex(4), "hostname": "logs-" + secrets.token_hex(4),
                                    "ipAddress": "192.0.2.9", "cpuCores": 2, "cpuArchitecture": "x",
                                    "totalMemory": "1Gi", "totalStorage": "1Gi"}, token=join_token), 201)["data"]
    check_envelope(api.put(f"/api/v1/workers/{node['name']}/heartbeat", {}, token=node["nodeToken"]), 200)

    text = server_log()
    secrets_of_the_session = {"password": pw, "new password": new_pw, "wrong password": wrong,
                              "password of an unknown email": ghost, "registration refresh token": reg["refresh"],
                              "refresh token": login["refreshToken"], "rotated refresh token": refreshed["refreshToken"],
                              "join token": join_token, "node token": node["nodeToken"]}
    leaked = [what for what, value in secrets_of_the_session.items() if value in text]
    assert leaked == [], leaked
    # the statements and the error were logged: the log is not just silent
    assert "api.auth_login" in text and "api.workers_register" in text and "api.workers_heartbeat" in text
    assert "ERROR:  Invalid email or password" in text
