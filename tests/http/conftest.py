"""Shared fixtures of the HTTP black-box tests.

The suite talks to the real httpd (PAAS_URL) in front of the real
PostgreSQL cluster started by tests/run.sh; PAAS_TEST_PSQL is the command
line of a superuser psql on that cluster, for set-up and for checking what
the database holds.  Nothing here imitates a part of paas.
"""
import json
import os
import random
import shlex
import subprocess
import time
import uuid

import pytest
import requests

BASE = os.environ.get("PAAS_URL", "http://127.0.0.1:8080")
METRICS = os.environ.get("PAAS_METRICS_URL", "http://127.0.0.1:9187")
PSQL = shlex.split(os.environ.get("PAAS_TEST_PSQL", "psql -At"))
AS_PG = shlex.split(os.environ.get("PAAS_TEST_AS_PG", ""))
SERVER_LOG = os.environ.get("PAAS_TEST_SERVER_LOG")
PASSWORD = "Str0ngPassw0rd"


def psql(sql, *args):
    """Runs SQL as superuser; returns stdout stripped.  Arguments are bound
    as psql variables :'a1', :'a2', ..."""
    cmd = PSQL + [f"-va{i + 1}={a}" for i, a in enumerate(args)]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def read_server_log():
    """The test cluster's server log, whole (read as its owner)."""
    return subprocess.run(AS_PG + ["cat", SERVER_LOG], capture_output=True, text=True, check=True).stdout


class Api:
    """requests with the base URL and an optional bearer token."""

    def __init__(self, token=None, ip=None):
        self.s = requests.Session()
        self.token = token
        # httpd runs with PAAS_TRUST_PROXY=1 in tests: every client gets its
        # own address, so per-address rate limits only meet the tests that
        # aim at them.
        self.ip = ip or "10.%d.%d.%d" % tuple(random.randrange(1, 255) for _ in range(3))

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        h = {"X-Forwarded-For": self.ip}
        h.update(headers or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        kw = {"headers": h, "timeout": 30}
        if raw is not None:
            kw["data"] = raw
        elif body is not None:
            kw["json"] = body
        return self.s.request(method, BASE + path, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.call("PATCH", path, body, **kw)

    def delete(self, path, body=None, **kw):
        return self.call("DELETE", path, body, **kw)


def check_envelope(r, status):
    """Asserts the contract's envelope and returns the body."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["statusCode"] == status
    assert body["success"] is (status < 400)
    assert isinstance(body["message"], str) and body["message"]
    assert body["timestamp"].endswith("Z")
    if status >= 400:
        assert isinstance(body["code"], str)
        assert set(body) - {"errors"} == {"success", "message", "code", "details", "timestamp",
                                          "statusCode"}, sorted(body)
    else:
        assert set(body) - {"pagination"} == {"success", "message", "data", "timestamp",
                                              "statusCode"}, sorted(body)
    return body


def unique_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def api():
    return Api()


def register(api, email=None, password=PASSWORD, name="Test User"):
    email = email or unique_email()
    r = api.post("/api/v1/auth/register",
                 {"name": name, "email": email, "password": password, "confirmPassword": password},
                 headers={"X-Test": "register"})
    body = check_envelope(r, 201)
    return {"email": email, "password": password, "id": body["data"]["user"]["id"],
            "access": body["data"]["accessToken"], "refresh": body["data"]["refreshToken"]}


@pytest.fixture
def user(api):
    return register(api)


@pytest.fixture
def other_user(api):
    return register(api)


@pytest.fixture(scope="session")
def admin():
    email = unique_email("admin")
    psql("SELECT api.seed_admin(:'a1', :'a2')", email, PASSWORD)
    r = Api().post("/api/v1/auth/login", {"email": email, "password": PASSWORD})
    body = check_envelope(r, 200)
    return {"email": email, "id": body["data"]["user"]["id"],
            "access": body["data"]["accessToken"], "refresh": body["data"]["refreshToken"]}


def wait_until(fn, timeout=30.0, interval=0.05):
    """Polls fn() until it returns a truthy value; returns it or fails."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def metric(name):
    """The value of an unlabelled counter of GET /metrics (metrics listener)."""
    text = requests.get(METRICS + "/metrics", timeout=30).text
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))
