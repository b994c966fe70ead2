"""Accounts over HTTP: full flows, token rotation and reuse, JWT attacks,
rate limits, bad input and the authorization matrix of /auth and /users."""
import base64
import hashlib
import hmac
import json
import os
import threading
import time

import pytest

from conftest import PASSWORD, Api, check_envelope, metric, psql, register, unique_email


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


def test_failed_logins_slow_the_account(user):
    codes = []
    for i in range(14):
        # every attempt from a fresh address: only the account limit applies
        codes.append(Api().post("/api/v1/auth/login",
                                {"email": user["email"], "password": "Wrong1234"}).status_code)
    assert codes[:10] == [401] * 10 and codes[-1] == 429
    r = Api().post("/api/v1/auth/login", {"email": user["email"].upper(), "password": PASSWORD})
    assert check_envelope(r, 429)["code"] == "RATE_LIMITED"


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
