"""The outcome of a call: a money-moving call is answered with the outcome of
its one execution, across lost connections and database restarts
(httpd/db.c, sql/parts/05_outcomes.sql).

The lost connections are real: synchronous replication to a standby that
does not exist (synchronous_standby_names = 'nobody') holds a committed
call in its wait for the standby, where it is terminated
(pg_terminate_backend: PostgreSQL warns "the transaction has already
committed locally" and closes the session) or the server is stopped in
immediate mode (a crash: recovery keeps the commit).  Stale pooled
connections come from `pg_ctl restart -m immediate`."""
import os
import shlex
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from conftest import PSQL, Api, check_envelope, psql, register, wait_until

POOL = int(os.environ.get("PAAS_DB_POOL", "8"))
# PAAS_DB_RETRY_MS: how long httpd sends a money call again before its 503
RETRY_S = int(os.environ.get("PAAS_DB_RETRY_MS", "5000")) / 1000.0


def pg_ctl(action, mode="fast"):
    if action == "start":
        cmd = shlex.split(os.environ["PAAS_TEST_PG_START"])
    else:
        cmd = shlex.split(os.environ["PAAS_TEST_PG_STOP"])
        cmd[cmd.index("fast")] = mode
    subprocess.run(cmd, check=True, capture_output=True)


def make_service(price):
    name = "outcome-" + uuid.uuid4().hex[:12]
    return psql("INSERT INTO paas.services (name, display_name, description, docker_image, monthly_price) "
                "VALUES (:'a1', 'Outcome Service', 'a service of the outcome tests', 'nginx:1', "
                ":'a2'::bigint) RETURNING id", name, str(price)).splitlines()[0]


def balance(api):
    return check_envelope(api.get("/api/v1/billing/balance"), 200)["data"]["balance"]


def charges(sid):
    return int(psql("SELECT count(*) FROM paas.subscription_charges WHERE subscription_id = :'a1'", sid))


def httpd_backend(wait_event):
    """pid of the gateway's backend waiting on wait_event, or None."""
    out = psql("SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'paas-httpd%' "
               "AND wait_event = :'a1' LIMIT 1", wait_event)
    return int(out) if out else None


def reset_sync_rep():
    psql("ALTER SYSTEM RESET synchronous_standby_names")
    psql("SELECT pg_reload_conf()")


@contextmanager
def standby_that_never_answers():
    """Commits wait for a synchronous standby that never comes.  Yields once
    a probe commit has been seen waiting (the checkpointer applies the
    setting a moment after the reload).  The setting is reset on the way out
    unless the caller did it already."""
    psql("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
    psql("SELECT pg_reload_conf()")
    try:
        def probe_waits():
            # a commit that wrote WAL (a transactional WAL message) waits
            p = subprocess.Popen(PSQL + ["-c", "SET application_name = 'outcome-probe'; "
                                         "SELECT pg_logical_emit_message(true, 'paas-outcome-probe', '')"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline and p.poll() is None:
                    if psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'outcome-probe' "
                            "AND wait_event = 'SyncRep'") == "1":
                        return True
                    time.sleep(0.05)
                return False
            finally:
                psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = 'outcome-probe'")
                p.wait(timeout=30)

        wait_until(probe_waits, timeout=30)
        yield
    finally:
        try:
            reset_sync_rep()
        except subprocess.CalledProcessError:
            pass  # the server is down: the caller resets it after the start


@pytest.fixture
def adm(admin):
    return Api(admin["access"])


@pytest.fixture
def subscribed(adm, user):
    """A user with 100,000 IDR and a subscription at 20,000 a month."""
    me = Api(user["access"])
    check_envelope(adm.post("/api/v1/admin/billing/adjustments",
                            {"userId": user["id"], "amount": 100000, "reason": "outcome test funds"}), 201)
    svc = make_service(20000)
    sub = check_envelope(me.post("/api/v1/subscriptions", {"serviceId": svc}), 201)["data"]
    assert balance(me) == 80000
    return me, sub


def test_renewal_terminated_after_its_commit_is_charged_once(subscribed):
    """The backend of a renewal is terminated while it waits for the standby:
    the commit is durable, the client's connection to the server is gone.
    httpd sends the same call again with the key it made, and answers the
    one renewal that happened."""
    me, sub = subscribed
    with ThreadPoolExecutor(max_workers=1) as pool:
        with standby_that_never_answers():
            fut = pool.submit(me.put, f"/api/v1/subscriptions/{sub['id']}/renew")
            pid = wait_until(lambda: httpd_backend("SyncRep"), timeout=20)
            assert psql("SELECT pg_terminate_backend(:'a1')", str(pid)) == "t"
        # the standby setting is off again: a second execution would commit
        r = fut.result(timeout=30)
    data = check_envelope(r, 200)["data"]
    assert data["periodNumber"] == 2 and data["replayed"] is True
    assert charges(sub["id"]) == 2  # the sale and ONE renewal
    assert balance(me) == 60000
    assert psql("SELECT count(*) FROM reporting.ledger_check") == "0"


def test_crash_during_commit_answers_503_with_the_key_that_learns_the_outcome(subscribed):
    """The server crashes while a renewal waits for the standby (its commit
    is in the WAL).  httpd cannot learn the outcome within its bounded wait:
    it answers 503 with the call's Idempotency-Key.  Sent again with that
    key after the restart, the call answers the renewal that committed; it
    never charges a second time."""
    me, sub = subscribed
    path = f"/api/v1/subscriptions/{sub['id']}/renew"
    stopped = False
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            with standby_that_never_answers():
                fut = pool.submit(me.put, path)
                wait_until(lambda: httpd_backend("SyncRep"), timeout=20)
                pg_ctl("stop", "immediate")
                stopped = True
                t0 = time.monotonic()
                r = fut.result(timeout=RETRY_S + 30)
                waited = time.monotonic() - t0
        finally:
            if stopped:
                pg_ctl("start")
                reset_sync_rep()
    body = check_envelope(r, 503)
    assert body["code"] == "SERVICE_UNAVAILABLE" and "Idempotency-Key" in body["message"]
    assert r.headers["Retry-After"] == "1"
    key = r.headers["Idempotency-Key"]
    assert len(key) == 36 and uuid.UUID(key).version == 4
    assert waited >= RETRY_S * 0.5  # httpd kept trying before it gave up

    # recovery kept the commit: the key answers it, once and again
    for _ in range(2):
        data = check_envelope(me.put(path, headers={"Idempotency-Key": key}), 200)["data"]
        assert data["periodNumber"] == 2 and data["replayed"] is True
    assert charges(sub["id"]) == 2
    assert balance(me) == 60000
    # a new call (no key: httpd makes a new one) is a new renewal
    assert check_envelope(me.put(path), 200)["data"]["periodNumber"] == 3
    assert balance(me) == 40000


def test_client_key_replays_and_refuses_another_request(adm, subscribed):
    me, sub = subscribed
    path = f"/api/v1/subscriptions/{sub['id']}/renew"
    key = {"Idempotency-Key": "renew-" + uuid.uuid4().hex}
    first = check_envelope(me.put(path, headers=key), 200)["data"]
    again = check_envelope(me.put(path, headers=key), 200)["data"]
    assert first["replayed"] is False and again["replayed"] is True
    assert again["periodNumber"] == first["periodNumber"] == 2
    assert again["charge"] == first["charge"] and again["balanceAfter"] == first["balanceAfter"]
    assert balance(me) == 60000

    # the key of one call refuses another call: another route, another body
    body = check_envelope(me.post("/api/v1/subscriptions", {"serviceId": make_service(1000)},
                                  headers=key), 409)
    assert body["code"] == "CONFLICT_ERROR"
    body = check_envelope(adm.post("/api/v1/admin/billing/adjustments",
                                   {"userId": sub["userId"], "amount": 5, "reason": "same key, other caller"},
                                   headers=key), 201)
    assert body["data"]["replayed"] is False  # keys belong to their caller
    assert balance(me) == 60005


def test_keys_belong_to_their_caller(adm, subscribed):
    """Another user sending the same key gets an answer of their own call,
    never the first user's outcome."""
    me, sub = subscribed
    other = register(Api())
    them = Api(other["access"])
    check_envelope(adm.post("/api/v1/admin/billing/adjustments",
                            {"userId": other["id"], "amount": 50000, "reason": "outcome test funds"}), 201)
    their_sub = check_envelope(them.post("/api/v1/subscriptions", {"serviceId": sub["serviceId"]}), 201)["data"]

    key = {"Idempotency-Key": "shared-" + uuid.uuid4().hex}
    mine = check_envelope(me.put(f"/api/v1/subscriptions/{sub['id']}/renew", headers=key), 200)["data"]
    theirs = check_envelope(them.put(f"/api/v1/subscriptions/{their_sub['id']}/renew", headers=key), 200)["data"]
    assert mine["id"] == sub["id"] and theirs["id"] == their_sub["id"]
    assert theirs["replayed"] is False and theirs["charge"]["amount"] == 20000
    # their key on my subscription is their call, not a way to read mine
    check_envelope(them.put(f"/api/v1/subscriptions/{sub['id']}/renew", headers=key), 409)
    assert balance(me) == 60000 and balance(them) == 10000


def test_a_refused_money_call_names_its_key_and_runs_again(subscribed, adm):
    """An error rolls back with everything else: the call sent again with
    the key of its 402 runs again (and succeeds once the wallet is funded)."""
    me, sub = subscribed
    path = f"/api/v1/subscriptions/{sub['id']}/renew"
    for _ in range(4):
        check_envelope(me.put(path), 200)
    assert balance(me) == 0
    r = me.put(path)
    assert check_envelope(r, 402)["code"] == "INSUFFICIENT_BALANCE"
    key = r.headers["Idempotency-Key"]
    assert uuid.UUID(key).version == 4
    check_envelope(adm.post("/api/v1/admin/billing/adjustments",
                            {"userId": sub["userId"], "amount": 20000, "reason": "outcome test funds"}), 201)
    data = check_envelope(me.put(path, headers={"Idempotency-Key": key}), 200)["data"]
    assert data["replayed"] is False and data["periodNumber"] == 6
    assert balance(me) == 0


def test_key_longer_than_255_characters_is_refused(subscribed):
    me, sub = subscribed
    body = check_envelope(me.put(f"/api/v1/subscriptions/{sub['id']}/renew",
                                 headers={"Idempotency-Key": "k" * 256}), 400)
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert balance(me) == 80000


@pytest.fixture
def node():
    tok = "outcome-join-" + uuid.uuid4().hex
    psql("SELECT api.workers_join_token_add(:'a1', 'outcome tests')", tok)
    name = "outcome-node-" + uuid.uuid4().hex[:10]
    body = {"name": name, "hostname": f"{name}.cluster.local", "ipAddress": "192.168.7.10", "cpuCores": 4,
            "cpuArchitecture": "x86_64",
            "totalMemory": "8Gi", "totalStorage": "100Gi", "architecture": "amd64", "operatingSystem": "linux"}
    data = check_envelope(Api().post("/api/v1/workers/register", body, token=tok), 201)["data"]
    return name, data["nodeToken"]


class Session:
    """A psql session kept open (a transaction that holds a lock)."""

    def __init__(self):
        self.p = subprocess.Popen(PSQL, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, query):
        self.p.stdin.write(query + ";\nSELECT '--end--';\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            assert line, "psql ended"
            if line.strip() == "--end--":
                return

    def close(self):
        self.p.stdin.write("ROLLBACK;\n\\q\n")
        self.p.stdin.flush()
        self.p.wait(timeout=30)


def test_no_500_from_stale_pool_connections_after_an_immediate_restart(user, node):
    """After `pg_ctl restart -m immediate` every pooled connection is dead.
    Each of them is used (a lock on paas.users holds calls until all POOL
    connections wait on it), by plain and batched routes: no 500, no 503."""
    me = Api(user["access"])
    name, node_token = node
    hb = Api()
    calls = ([("GET", "/api/v1/auth/profile", me)] * (POOL + 4)
             + [("GET", "/api/v1/auth/me", me)] * POOL          # batched
             + [("GET", "/api/v1/billing/balance", me)] * POOL  # batched
             + [("PUT", f"/api/v1/workers/{name}/heartbeat", hb)] * POOL)  # batched, no lock

    def send(c):
        method, path, api = c
        return api.call(method, path, {} if method == "PUT" else None,
                        token=node_token if api is hb else None)

    check_envelope(me.get("/api/v1/auth/profile"), 200)
    pg_ctl("stop", "immediate")
    pg_ctl("start")
    lock = Session()
    try:
        lock.ask("BEGIN; LOCK TABLE paas.users IN ACCESS EXCLUSIVE MODE")
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futs = [pool.submit(send, c) for c in calls]
            waiting = wait_until(lambda: int(psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'paas-httpd%' "
                "AND wait_event_type = 'Lock'")) >= POOL and POOL, timeout=20)
            lock.close()
            lock = None
            replies = [f.result(timeout=60) for f in futs]
    finally:
        if lock:
            lock.close()
    assert waiting == POOL  # every connection of the pool carried a call
    assert [(c[1], r.status_code, r.text[:80]) for c, r in zip(calls, replies) if r.status_code != 200] == []
    # and afterwards, one after another and all at once
    for c in calls[:3 * POOL:2]:
        assert send(c).status_code == 200
    with ThreadPoolExecutor(max_workers=16) as pool:
        assert {r.status_code for r in pool.map(send, calls)} == {200}
