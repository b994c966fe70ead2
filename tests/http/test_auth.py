"""Accounts over HTTP: full flows, token rotation and reuse, JWT attacks,
rate limits, bad input and the authorization matrix of /auth and /users."""
import base64
import hashlib
import hmac
import json
import os
import pathlib
import socket
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import PASSWORD, Api, check_envelope, metric, psql, register, unique_email, wait_until

ROOT = pathlib.Path(__file__).resolve().parents[2]


def b64(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def forge(header, payload, key=b"not-the-key"):
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(payload).encode())
    sig = b64(hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest())
    return f"{h}.{p}.{sig}"


def claims(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


# ---------------------------------------------------------------- flows

def test_register_login_me_refresh_reuse_logout(api):
    email = unique_email()
    u = register(api, email=email)
    assert u["refresh"] and u["access"]

    r = api.post("/api/v1/auth/login", {"email": email.upper(), "password": PASSWORD})
    body = check_envelope(r, 200)
    d = body["data"]
    assert d["user"]["email"] == email and d["user"]["role"] == "USER"
    assert "password" not in json.dumps(d).lower().replace("refreshtoken", "")
    assert d["tokens"]["accessToken"] == d["accessToken"]
    c = claims(d["accessToken"])
    assert c["sub"] == d["user"]["id"] and c["role"] == "USER"
    assert c["exp"] - c["iat"] == 900 and c["sid"] and c["jti"]

    me = check_envelope(api.get("/api/v1/auth/me", token=d["accessToken"]), 200)
    assert me["data"]["user"]["id"] == d["user"]["id"] and me["data"]["authenticated"] is True

    r1 = check_envelope(api.post("/api/v1/auth/refresh", {"refreshToken": d["refreshToken"]}), 200)
    new = r1["data"]
    assert new["refreshToken"] != d["refreshToken"]
    assert claims(new["accessToken"])["sid"] == c["sid"]
    check_envelope(api.get("/api/v1/auth/me", token=new["accessToken"]), 200)

    # rotating again, then presenting the first token long after: reuse
    r2 = check_envelope(api.post("/api/v1/auth/refresh", {"refreshToken": new["refreshToken"]}), 200)
    psql("UPDATE paas.refresh_tokens SET used_at = used_at - interval '1 minute'")
    body = check_envelope(api.post("/api/v1/auth/refresh", {"refreshToken": d["refreshToken"]}), 401)
    assert body["code"] == "AUTH_ERROR"
    # the whole family is revoked: the newest refresh token and access tokens die
    check_envelope(api.post("/api/v1/auth/refresh", {"refreshToken": r2["data"]["refreshToken"]}), 401)
    check_envelope(api.get("/api/v1/auth/me", token=r2["data"]["accessToken"]), 401)
    # the registration session is another family and still works
    check_envelope(api.get("/api/v1/auth/me", token=u["access"]), 200)
    check_envelope(api.post("/api/v1/auth/logout", token=u["access"]), 200)
    check_envelope(api.get("/api/v1/auth/me", token=u["access"]), 401)
    check_envelope(api.post("/api/v1/auth/refresh", {"refreshToken": u["refresh"]}), 401)


def test_concurrent_duplicate_refresh_gets_the_same_pair(api, user):
    results = []

    def go():
        results.append(Api().post("/api/v1/auth/refresh", {"refreshToken": user["refresh"]}))

    ts = [threading.Thread(target=go) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert [r.status_code for r in results] == [200, 200]
    a, b = (r.json()["data"]["refreshToken"] for r in results)
    assert a == b
    check_envelope(api.post("/api/v1/auth/refresh", {"refreshToken": a}), 200)


def test_logout_all_revokes_every_session(api, user):
    r = check_envelope(api.post("/api/v1/auth/login", {"email": user["email"], "password": PASSWORD}), 200)
    second = r["data"]["accessToken"]
    body = check_envelope(api.post("/api/v1/auth/logout", {"all": True}, token=user["access"]), 200)
    assert body["data"]["sessionsRevoked"] == 2
    check_envelope(api.get("/api/v1/auth/me", token=second), 401)
    check_envelope(api.get("/api/v1/auth/me", token=user["access"]), 401)


def test_profile_get_and_update(api, user, other_user):
    t = user["access"]
    body = check_envelope(api.get("/api/v1/auth/profile", token=t), 200)
    assert body["data"]["email"] == user["email"]
    new_email = unique_email("renamed")
    body = check_envelope(api.put("/api/v1/auth/profile", {"name": "New Name", "email": new_email}, token=t), 200)
    assert body["data"]["name"] == "New Name" and body["data"]["email"] == new_email
    body = check_envelope(api.put("/api/v1/auth/profile", {"email": other_user["email"].upper()}, token=t), 409)
    assert body["code"] == "CONFLICT_ERROR"
    body = check_envelope(api.put("/api/v1/auth/profile", {"name": "x", "email": "nope"}, token=t), 400)
    assert {e["field"] for e in body["errors"]} == {"name", "email"}


def test_change_password_revokes_other_sessions(api, user):
    other = check_envelope(api.post("/api/v1/auth/login", {"email": user["email"], "password": PASSWORD}), 200)
    body = check_envelope(api.post("/api/v1/auth/change-password",
                                   {"currentPassword": "Wrong1234", "newPassword": "NewPassw0rd",
                                    "confirmNewPassword": "NewPassw0rd"}, token=user["access"]), 400)
    assert body["errors"][0]["field"] == "currentPassword"
    check_envelope(api.post("/api/v1/auth/change-password",
                            {"currentPassword": PASSWORD, "newPassword": "NewPassw0rd",
                             "confirmNewPassword": "NewPassw0rd"}, token=user["access"]), 200)
    check_envelope(api.get("/api/v1/auth/me", token=user["access"]), 200)
    check_envelope(api.get("/api/v1/auth/me", token=other["data"]["accessToken"]), 401)
    check_envelope(api.post("/api/v1/auth/login", {"email": user["email"], "password": PASSWORD}), 401)
    check_envelope(api.post("/api/v1/auth/login", {"email": user["email"], "password": "NewPassw0rd"}), 200)


def test_delete_account_deactivates(api, user):
    check_envelope(api.delete("/api/v1/auth/account", token=user["access"]), 200)
    check_envelope(api.get("/api/v1/auth/me", token=user["access"]), 401)
    body = check_envelope(api.post("/api/v1/auth/login", {"email": user["email"], "password": PASSWORD}), 401)
    assert body["message"] == "Account is deactivated"


def test_passwords_are_hashed_never_stored():
    email = unique_email()
    register(Api(), email=email)
    h = psql("SELECT password_hash FROM paas.users WHERE email = :'a1'", email)
    assert h.startswith("$2a$10$") and PASSWORD not in h
    assert psql("SELECT count(*) FROM paas.refresh_tokens WHERE length(token_hash) = 32") != "0"


def test_wrong_email_and_wrong_password_look_the_same(api, user):
    def timed(body):
        t0 = time.monotonic()
        r = api.post("/api/v1/auth/login", body)
        return r, time.monotonic() - t0

    a, ta = timed({"email": unique_email(), "password": PASSWORD})
    b, tb = timed({"email": user["email"], "password": "Wrong1234"})
    assert a.status_code == b.status_code == 401
    assert a.json()["message"] == b.json()["message"] == "Invalid email or password"
    # both ran one bcrypt comparison (cost 10, tens of ms)
    assert ta > 0.01 and tb > 0.01


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("body,fields", [
    ({}, {"name", "email", "password", "confirmPassword"}),
    ({"name": 5, "email": "x", "password": "short", "confirmPassword": "other"},
     {"name", "email", "password", "confirmPassword"}),
    ({"name": "Ok Name", "email": "a@b.co", "password": "alllowercase1", "confirmPassword": "alllowercase1"},
     {"password"}),
    ({"name": "Ok Name", "email": "a@b.co", "password": "A" * 129 + "a1", "confirmPassword": "x"},
     {"password", "confirmPassword"}),
    ({"name": "N" * 51, "email": "a" * 250 + "@b.co", "password": "Passw0rdOK", "confirmPassword": "Passw0rdOK"},
     {"name", "email"}),
])
def test_register_validation_lists_every_field(api, body, fields):
    r = check_envelope(api.post("/api/v1/auth/register", body), 400)
    assert r["code"] == "VALIDATION_ERROR"
    assert {e["field"] for e in r["errors"]} == fields


def test_register_duplicate_email_case_insensitive(api, user):
    # a taken address answers like a registration (the owner is mailed,
    # tests/http/test_notifications.py) and adds no account
    r = api.post("/api/v1/auth/register", {"name": "Dup", "email": user["email"].upper(),
                                           "password": PASSWORD, "confirmPassword": PASSWORD})
    check_envelope(r, 201)
    assert psql("SELECT count(*) FROM paas.users WHERE lower(email) = lower(:'a1')", user["email"]) == "1"


@pytest.mark.parametrize("body", [{}, {"email": "not-an-email", "password": ""}, {"email": 5, "password": 5}])
def test_login_validation(api, body):
    assert check_envelope(api.post("/api/v1/auth/login", body), 400)["code"] == "VALIDATION_ERROR"


def test_refresh_validation_and_garbage(api):
    check_envelope(api.post("/api/v1/auth/refresh", {}), 400)
    check_envelope(api.post("/api/v1/auth/refresh", {"refreshToken": 12}), 400)
    check_envelope(api.post("/api/v1/auth/refresh", {"refreshToken": "garbage"}), 401)


# ---------------------------------------------------------------- JWT attacks

def test_jwt_attacks(api, user):
    good = user["access"]
    c = claims(good)
    h, p, s = good.split(".")
    tampered_payload = dict(c, role="ADMINISTRATOR")
    attacks = {
        "missing": None,
        "garbage": "garbage",
        "alg none": b64(b'{"alg":"none","typ":"JWT"}') + "." + p + ".",
        "alg none no dot": b64(b'{"alg":"none","typ":"JWT"}') + "." + p,
        "wrong key": forge({"alg": "HS256", "typ": "JWT"}, c),
        "HS512": forge({"alg": "HS512", "typ": "JWT"}, c),
        "tampered payload": h + "." + b64(json.dumps(tampered_payload).encode()) + "." + s,
    }
    for name, tok in attacks.items():
        if name == "missing":
            r = api.get("/api/v1/auth/me")
        else:
            r = api.get("/api/v1/auth/me", token=tok)
        assert r.status_code == 401, name
        assert r.json()["code"] == "AUTH_ERROR", name
    r = api.get("/api/v1/users", token=attacks["tampered payload"])
    assert r.status_code == 401


def test_non_bearer_scheme_is_401(api, user):
    r = api.get("/api/v1/auth/me", headers={"Authorization": "Basic " + user["access"]})
    assert check_envelope(r, 401)["message"] == "Access token required"


# ---------------------------------------------------------------- rate limits

def test_login_rate_limit_per_address():
    a = Api(ip="10.250.0.1")
    codes = [a.post("/api/v1/auth/login", {"email": "x"}).status_code for _ in range(25)]
    assert codes[0] == 400 and 429 in codes
    r = a.post("/api/v1/auth/login", {"email": "x"})
    body = check_envelope(r, 429)
    assert body["code"] == "RATE_LIMITED" and int(r.headers["Retry-After"]) >= 1
    # another address is not affected
    check_envelope(Api(ip="10.250.0.2").post("/api/v1/auth/login", {"email": "x"}), 400)


def wrong_logins(api, email, n):
    return [api.post("/api/v1/auth/login", {"email": email, "password": "Wrong1234"}).status_code
            for _ in range(n)]


def retry_after(r):
    body = check_envelope(r, 429)
    assert body["code"] == "RATE_LIMITED"
    return int(r.headers["Retry-After"])


def test_failed_logins_are_limited_per_account_and_address():
    """10 failures a minute per (account, address), counted in the database;
    past them that address gets 429 before its password is checked, while
    the owner, from their own address, still logs in."""
    owner = Api()
    u = register(owner)
    attacker = Api()
    assert wrong_logins(attacker, u["email"], 12) == [401] * 10 + [429, 429]
    assert 1 <= retry_after(attacker.post("/api/v1/auth/login", {"email": u["email"].upper(), "password": PASSWORD})) <= 60
    check_envelope(owner.post("/api/v1/auth/login", {"email": u["email"], "password": PASSWORD}), 200)
    assert psql("SELECT round(failures) FROM paas.login_failures WHERE user_id = :'a1' AND client = :'a2'",
                u["id"], attacker.ip) == "10"


def test_an_attacker_with_many_addresses_cannot_lock_the_owner_out():
    """Failures from six addresses pass the account's limit over unknown
    addresses (50): those wait (exponential back-off), but the owner's
    address, known to the account, does not."""
    owner = Api()
    u = register(owner)
    codes = []
    for _ in range(6):
        codes += wrong_logins(Api(), u["email"], 10)
    assert codes[:50] == [401] * 50 and 429 in codes[50:], codes
    assert retry_after(Api().post("/api/v1/auth/login", {"email": u["email"], "password": PASSWORD})) >= 1
    check_envelope(owner.post("/api/v1/auth/login", {"email": u["email"], "password": PASSWORD}), 200)


def test_concurrent_failed_logins_cannot_pass_the_limit():
    u = register(Api())
    ip = Api().ip
    barrier = threading.Barrier(20)
    codes = []

    def go():
        a = Api(ip=ip)
        barrier.wait()
        codes.append(a.post("/api/v1/auth/login", {"email": u["email"], "password": "Wrong1234"}).status_code)
        a.s.close()

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 503: the call found no free password-hashing slot (handler.c) and
    # checked no password at all; no more than the limit were ever checked
    assert set(codes) <= {401, 429, 503} and 1 <= codes.count(401) <= 10, codes


def test_a_lookalike_email_counts_on_the_same_account():
    """lower() maps the dotted capital I to i: "alİce@" finds the account
    of "alice@", and so counts on its failures (keyed by the account)."""
    email = f"alice-{uuid.uuid4().hex[:10]}@example.com"
    register(Api(), email=email)
    a = Api()
    assert wrong_logins(a, email, 10) == [401] * 10
    retry_after(a.post("/api/v1/auth/login", {"email": email.replace("alice", "al\u0130ce"), "password": PASSWORD}))


def test_failed_logins_are_shared_by_every_gateway(tmp_path):
    """A second httpd on the same database (or the first one restarted)
    knows the failures the first one saw."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    other = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "httpd2.log", "w")
    proc = subprocess.Popen([str(ROOT / "httpd" / "paas-httpd")], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PAAS_HTTP_LISTEN=f"127.0.0.1:{port}", PAAS_ACCESS_LOG="0",
                                         PAAS_METRICS_LISTEN="off"))
    try:
        def up():
            try:
                return requests.get(other + "/api/v1/health", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False
        wait_until(up, timeout=20)
        u = register(Api())
        a = Api()
        assert wrong_logins(a, u["email"], 10) == [401] * 10
        r = requests.post(other + "/api/v1/auth/login", json={"email": u["email"], "password": PASSWORD},
                          headers={"X-Forwarded-For": a.ip}, timeout=30)
        retry_after(r)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def fnv1a_low16(data, h=1469598103934665603 & 0xFFFF):
    """The low 16 bits of httpd/ratelimit.c's FNV-1a: its slot of 65,536."""
    for c in data:
        h = ((h ^ c) * 1099511628211) & 0xFFFF
    return h


def test_chosen_emails_do_not_reset_the_address_limit():
    """httpd's bucket table is bounded: a key whose probe window is full of
    live buckets takes over its home slot.  Login requests with chosen
    emails once created a bucket each, which let one address fill the
    window of its own login bucket and reset it on every request.  Failed
    logins are counted in the database now: only the address's bucket is
    in httpd, and it holds."""
    a = Api()
    home = fnv1a_low16(f"login-ip|{a.ip}".encode())
    mult, inv_mult = 1099511628211 & 0xFFFF, pow(1099511628211 & 0xFFFF, -1, 65536)
    before_suffix = [0] * 65536  # state before "@example.com" -> slot, inverted
    for h in range(65536):
        before_suffix[fnv1a_low16(b"@example.com", h)] = h
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789"
    # the state after three free characters that a fourth one takes to each slot of the window
    wanted = {}
    for i in range(16):
        need = (before_suffix[(home + i) % 65536] * inv_mult) & 0xFFFF
        for c4 in alphabet:
            wanted.setdefault(need ^ c4, (i, c4))
    tag = uuid.uuid4().hex[:6]
    start = fnv1a_low16(f"login-fail|x{tag}".encode())
    found = {}
    for c1 in alphabet:
        h1 = ((start ^ c1) * mult) & 0xFFFF
        for c2 in alphabet:
            h2 = ((h1 ^ c2) * mult) & 0xFFFF
            for c3 in alphabet:
                hit = wanted.get(((h2 ^ c3) * mult) & 0xFFFF)
                if hit and hit[0] not in found:
                    found[hit[0]] = f"x{tag}{chr(c1)}{chr(c2)}{chr(c3)}{chr(hit[1])}@example.com"
    for i, e in found.items():
        assert fnv1a_low16(f"login-fail|{e}".encode()) == (home + i) % 65536
    assert len(found) == 16, sorted(found)
    emails = [found[i] for i in range(1, 16)] + [found[0]] * 40
    codes = [a.post("/api/v1/auth/login", {"email": e, "password": "Wrong1234"}).status_code for e in emails]
    assert sum(c != 429 for c in codes) <= 22, codes  # 20 a minute, plus what refills meanwhile


def test_register_rate_limit_per_address():
    a = Api(ip="10.251.0.1")
    codes = [a.post("/api/v1/auth/register", {}).status_code for _ in range(12)]
    assert codes[0] == 400 and codes[-1] == 429


def test_expired_and_foreign_claims_with_the_real_key(api, user):
    """Signed with the server's own key (tests/run.sh exports it), so only
    the claims are wrong: expiry, issuer, audience, missing session."""
    key = os.environ["PAAS_JWT_SECRET"].encode()
    c = claims(user["access"])
    hdr = {"alg": "HS256", "typ": "JWT"}
    assert api.get("/api/v1/auth/me", token=forge(hdr, c, key)).status_code == 200  # the forge is faithful
    now = int(time.time())
    cases = {
        "expired": (dict(c, iat=now - 1000, exp=now - 10), "Token expired"),
        "wrong issuer": (dict(c, iss="someone-else"), "Invalid token"),
        "wrong audience": (dict(c, aud="other-app"), "Invalid token"),
        "no session": ({k: v for k, v in c.items() if k != "sid"}, "Invalid token"),
        "exp not a number": (dict(c, exp="tomorrow"), "Invalid token"),
    }
    for name, (payload, message) in cases.items():
        body = check_envelope(api.get("/api/v1/auth/me", token=forge(hdr, payload, key)), 401)
        assert body["message"] == message, name
    # a well-signed token for a user id that does not exist
    ghost = dict(c, sub="00000000-0000-0000-0000-000000000000")
    check_envelope(api.get("/api/v1/auth/me", token=forge(hdr, ghost, key)), 401)


def test_a_remembered_token_still_expires(api, user):
    """httpd remembers tokens that verified (per thread); on the same
    keep-alive connection the same token must still expire on time, and a
    token differing in one byte of its signature is still refused."""
    key = os.environ["PAAS_JWT_SECRET"].encode()
    c = claims(user["access"])
    now = int(time.time())
    short = forge({"alg": "HS256", "typ": "JWT"}, dict(c, iat=now, exp=now + 2), key)
    assert check_envelope(api.get("/api/v1/auth/me", token=short), 200)["data"]["user"]["id"] == user["id"]
    assert check_envelope(api.get("/api/v1/auth/me", token=short), 200)
    head, payload, sig = short.split(".")
    tampered = ".".join([head, payload, ("A" if sig[0] != "A" else "B") + sig[1:]])
    assert check_envelope(api.get("/api/v1/auth/me", token=tampered), 401)["message"] == "Invalid token"
    time.sleep(max(0.0, now + 2.2 - time.time()))
    body = check_envelope(api.get("/api/v1/auth/me", token=short), 401)
    assert body["message"] == "Token expired"


def test_concurrent_calls_share_round_trips_and_keep_their_own_answers(api):
    """GET /auth/me calls arriving together are answered in batches
    (httpd/batch.c); a revoked session among them fails its batch and every
    call of it is answered on its own, so each client gets its own answer."""
    import threading
    users = [register(api) for _ in range(6)]
    gone = register(api)
    check_envelope(Api(gone["access"]).post("/api/v1/auth/logout", {}), 200)
    calls = [(u["access"], 200, u["id"]) for u in users for _ in range(5)] + [(gone["access"], 401, None)] * 4
    before = metric("paas_batches_total")
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def go(i):
        a = Api(calls[i][0])
        barrier.wait()
        results[i] = a.get("/api/v1/auth/me")
        a.s.close()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (tok, want, uid), r in zip(calls, results):
        body = check_envelope(r, want)
        if want == 200:
            assert body["data"]["user"]["id"] == uid
        else:
            assert body["message"] == "Session has been revoked"
    assert metric("paas_batches_total") > before
