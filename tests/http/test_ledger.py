"""Ledger over HTTP: GET /billing/balance and the admin billing routes
(/admin/billing/overview, /ledger, /users/:userId/ledger, /adjustments),
with the owner / other-user / admin matrix and bad input."""
import uuid

import pytest

from conftest import Api, check_envelope, psql, register

ADMIN_ROUTES = [
    ("GET", "/api/v1/admin/billing/overview", None),
    ("GET", "/api/v1/admin/billing/ledger", None),
    ("GET", "/api/v1/admin/billing/users/{uid}/ledger", None),
    ("POST", "/api/v1/admin/billing/adjustments", {"userId": "{uid}", "amount": 1000, "reason": "matrix test"}),
]


def adjust(adm, uid, amount, reason="test adjustment", key=None, status=201):
    headers = {"Idempotency-Key": key} if key else None
    r = adm.post("/api/v1/admin/billing/adjustments",
                 {"userId": uid, "amount": amount, "reason": reason}, headers=headers)
    return check_envelope(r, status)


@pytest.fixture
def adm(admin):
    return Api(admin["access"])


def test_balance_of_a_new_user_is_zero(user):
    body = check_envelope(Api(user["access"]).get("/api/v1/billing/balance"), 200)
    assert body["message"] == "Balance retrieved successfully"
    d = body["data"]
    assert d["balance"] == 0 and isinstance(d["balance"], int)
    assert d["currency"] == "IDR"
    assert d["user"]["id"] == user["id"]
    assert d["lastUpdated"].endswith("Z")


def test_balance_needs_a_token(api):
    assert check_envelope(api.get("/api/v1/billing/balance"), 401)["code"] == "AUTH_ERROR"
    r = api.get("/api/v1/billing/balance", token="not-a-jwt")
    assert check_envelope(r, 401)["code"] == "AUTH_ERROR"


def test_adjustment_credits_only_the_target_user(adm, admin, user, other_user):
    body = adjust(adm, user["id"], 25000, "welcome credit")
    d = body["data"]
    assert d["amount"] == 25000 and d["balanceBefore"] == 0 and d["balanceAfter"] == 25000
    assert d["userId"] == user["id"] and d["adminId"] == admin["id"]
    assert d["replayed"] is False
    mine = check_envelope(Api(user["access"]).get("/api/v1/billing/balance"), 200)["data"]
    theirs = check_envelope(Api(other_user["access"]).get("/api/v1/billing/balance"), 200)["data"]
    assert mine["balance"] == 25000
    assert theirs["balance"] == 0 and theirs["user"]["id"] == other_user["id"]
    # Audited with the admin's id and the reason, on a real ledger entry.
    row = psql("SELECT a.admin_id || '|' || a.reason || '|' || e.kind FROM paas.ledger_adjustments a "
               "JOIN paas.ledger_entries e ON e.id = a.entry_id WHERE a.id = :'a1'", d["id"])
    assert row == f"{admin['id']}|welcome credit|adjustment"


def test_debit_adjustment_and_overdraft(adm, user):
    adjust(adm, user["id"], 5000)
    d = adjust(adm, user["id"], -3000, "partial claw back")["data"]
    assert d["balanceBefore"] == 5000 and d["balanceAfter"] == 2000
    body = adjust(adm, user["id"], -2001, "too much", status=402)
    assert body["code"] == "INSUFFICIENT_BALANCE"
    assert check_envelope(Api(user["access"]).get("/api/v1/billing/balance"), 200)["data"]["balance"] == 2000


def test_adjustment_is_idempotent_with_a_key(adm, user):
    key = "adj-" + uuid.uuid4().hex
    first = adjust(adm, user["id"], 7000, "idempotent credit", key=key)["data"]
    again = adjust(adm, user["id"], 7000, "idempotent credit", key=key)["data"]
    assert again["id"] == first["id"] and again["entryId"] == first["entryId"]
    assert again["replayed"] is True
    assert check_envelope(Api(user["access"]).get("/api/v1/billing/balance"), 200)["data"]["balance"] == 7000
    body = adjust(adm, user["id"], 7001, "other content", key=key, status=409)
    assert body["code"] == "CONFLICT_ERROR"
    assert psql("SELECT count(*) FROM paas.ledger_adjustments WHERE user_id = :'a1'", user["id"]) == "1"


@pytest.mark.parametrize("payload, fields", [
    ({}, {"userId", "amount", "reason"}),
    ({"userId": "x", "amount": 0, "reason": "valid reason"}, {"amount"}),
    ({"userId": "x", "amount": 1.5, "reason": "ok!"}, {"amount"}),
    ({"userId": "x", "amount": "12abc", "reason": "ok!"}, {"amount"}),
    ({"userId": "x", "amount": 10 ** 13, "reason": "ok!"}, {"amount"}),
    ({"userId": 5, "amount": 10, "reason": "no"}, {"userId", "reason"}),
    ({"userId": "x", "amount": 10, "reason": "r" * 501}, {"reason"}),
])
def test_adjustment_bad_input(adm, payload, fields):
    body = check_envelope(adm.post("/api/v1/admin/billing/adjustments", payload), 400)
    assert body["code"] == "VALIDATION_ERROR"
    assert {e["field"] for e in body["errors"]} == fields


def test_adjustment_of_unknown_or_malformed_user_is_404(adm):
    for uid in (str(uuid.uuid4()), "not-a-uuid"):
        body = adjust(adm, uid, 100, status=404)
        assert body["code"] == "NOT_FOUND_ERROR"


def test_malformed_json_is_400(adm):
    r = adm.post("/api/v1/admin/billing/adjustments", raw="{not json",
                 headers={"Content-Type": "application/json"})
    assert check_envelope(r, 400)["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("method, path, body", ADMIN_ROUTES)
def test_admin_billing_matrix(method, path, body, adm, user, other_user):
    p = path.format(uid=other_user["id"])
    b = {k: (v.format(uid=other_user["id"]) if isinstance(v, str) else v)
         for k, v in body.items()} if body else None
    assert check_envelope(Api().call(method, p, b), 401)["code"] == "AUTH_ERROR"
    # A plain user reaches no admin route, not even about another user.
    assert check_envelope(Api(user["access"]).call(method, p, b), 403)["code"] == "FORBIDDEN_ERROR"
    assert check_envelope(Api(other_user["access"]).call(method, p, b), 403)["code"] == "FORBIDDEN_ERROR"
    status = 201 if method == "POST" else 200
    check_envelope(adm.call(method, p, b), status)


def test_overview(adm, user):
    adjust(adm, user["id"], 1234)
    d = check_envelope(adm.get("/api/v1/admin/billing/overview"), 200)["data"]
    assert d["currency"] == "IDR"
    assert set(d["platformAccounts"]) >= {"gateway_clearing", "revenue", "adjustments", "refunds"}
    assert d["wallets"]["totalBalance"] >= 1234
    assert d["adjustments"]["credited"] >= 1234
    assert d["entries"]["byKindLast24Hours"]["adjustment"] >= 1


def test_ledger_list_filters_and_pagination(adm, user):
    for amount in (100, 200, 300):
        adjust(adm, user["id"], amount)
    body = check_envelope(adm.get(f"/api/v1/admin/billing/ledger?userId={user['id']}&limit=2"), 200)
    assert body["pagination"]["total"] == 3
    assert body["pagination"]["limit"] == 2 and body["pagination"]["hasNext"] is True
    entries = body["data"]
    assert len(entries) == 2 and entries[0]["id"] > entries[1]["id"]  # newest first
    for e in entries:
        assert e["kind"] == "adjustment"
        assert sum(p["amount"] for p in e["postings"]) == 0
        wallet = [p for p in e["postings"] if p["userId"] == user["id"]][0]
        assert wallet["balanceAfter"] == wallet["balanceBefore"] + wallet["amount"]
    page2 = check_envelope(adm.get(f"/api/v1/admin/billing/ledger?userId={user['id']}&limit=2&page=2"), 200)
    assert [e["postings"][0]["amount"] for e in page2["data"]] == [100]
    asc = check_envelope(adm.get(f"/api/v1/admin/billing/ledger?userId={user['id']}&sortOrder=asc&kind=adjustment"), 200)
    assert [e["postings"][0]["amount"] for e in asc["data"]] == [100, 200, 300]
    none = check_envelope(adm.get(f"/api/v1/admin/billing/ledger?userId={user['id']}&endDate=2000-01-01"), 200)
    assert none["data"] == [] and none["pagination"]["total"] == 0


def test_ledger_list_bad_input(adm):
    body = check_envelope(adm.get("/api/v1/admin/billing/ledger?page=0&limit=500&startDate=nope"
                                  "&userId=zz&sortOrder=up&accountId=-1"), 400)
    # a userId that cannot exist is no field error: it matches nothing (docs/api.md, Ids)
    assert {e["field"] for e in body["errors"]} == {"page", "limit", "startDate", "sortOrder", "accountId"}
    none = check_envelope(adm.get("/api/v1/admin/billing/ledger?userId=zz"), 200)
    assert none["data"] == [] and none["pagination"]["total"] == 0


def test_user_ledger(adm, user):
    adjust(adm, user["id"], 900)
    adjust(adm, user["id"], -400)
    body = check_envelope(adm.get(f"/api/v1/admin/billing/users/{user['id']}/ledger"), 200)
    d = body["data"]
    assert d["user"]["id"] == user["id"]
    assert d["account"]["balance"] == 500
    assert [(p["amount"], p["balanceBefore"], p["balanceAfter"]) for p in d["postings"]] == \
        [(-400, 900, 500), (900, 0, 900)]
    assert body["pagination"]["total"] == 2


def test_user_ledger_of_a_user_without_wallet(adm, user):
    d = check_envelope(adm.get(f"/api/v1/admin/billing/users/{user['id']}/ledger"), 200)["data"]
    assert d["account"]["balance"] == 0 and d["postings"] == []


def test_user_ledger_unknown_user_is_404(adm):
    for uid in (str(uuid.uuid4()), "nope"):
        r = adm.get(f"/api/v1/admin/billing/users/{uid}/ledger")
        assert check_envelope(r, 404)["code"] == "NOT_FOUND_ERROR"


def test_ledger_stays_sound(adm):
    assert psql("SELECT count(*) FROM reporting.ledger_check") == "0"


def test_balance_after_deactivation_is_refused(adm):
    u = register(Api())
    adjust(adm, u["id"], 100)
    check_envelope(Api(u["access"]).delete("/api/v1/auth/account"), 200)
    assert check_envelope(Api(u["access"]).get("/api/v1/billing/balance"), 401)["code"] == "AUTH_ERROR"
