"""Billing over HTTP against the fake Midtrans (tests/fakes/midtrans.py):
the whole top-up flow, signed notifications (replays, out of order,
concurrent duplicates, forgeries, amount mismatch, unknown order), Midtrans
down, reconciliation by the worker, invoices as PDF, and the
owner / other user / admin matrix of every billing route."""
import hashlib
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import Api, check_envelope, psql, register, wait_until

FAKE = os.environ.get("MIDTRANS_FAKE_URL", "http://127.0.0.1:1")
KEY = os.environ.get("MIDTRANS_SERVER_KEY", "")
WEBHOOK = "/api/v1/billing/webhooks/midtrans"


def fake(path, body=None):
    r = requests.post(FAKE + path, json=body, timeout=30) if body is not None else \
        requests.get(FAKE + path, timeout=30)
    return r


def pay(order_id, status, **kw):
    """Sets the order's Midtrans state and has the fake deliver the notification."""
    r = fake("/_fake/pay", {"order_id": order_id, "transaction_status": status, **kw})
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def note(order_id, status, **kw):
    """The signed notification the fake would send, without sending it."""
    r = fake("/_fake/notification", {"order_id": order_id, "transaction_status": status, **kw})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def snap_mode():
    yield lambda m: fake("/_fake/mode", {"snap": m})
    fake("/_fake/mode", {"snap": "ok", "status": "ok"})


def topup(api, amount=50000, headers=None):
    body = check_envelope(api.post("/api/v1/billing/topup", {"amount": amount, "currency": "IDR"},
                                   headers=headers), 201)
    return body["data"]


def balance(api):
    return check_envelope(api.get("/api/v1/billing/balance"), 200)["data"]["balance"]


def test_full_topup_flow():
    u = register(Api())
    api = Api(u["access"])
    t = topup(api, 75000)
    assert t["status"] == "PENDING" and t["amount"] == 75000
    assert t["snapToken"] and t["redirectUrl"].startswith(FAKE)
    # what Snap received: integer gross amount, our order id, item sum = amount
    sent = fake("/_fake/orders/" + t["orderId"]).json()["request"]
    assert sent["transaction_details"] == {"order_id": t["orderId"], "gross_amount": 75000}
    assert sum(i["price"] * i["quantity"] for i in sent["item_details"]) == 75000
    assert sent["customer_details"]["email"] == u["email"]

    replies = pay(t["orderId"], "settlement", payment_type="gopay")
    assert replies[0]["status"] == 200 and replies[0]["body"]["data"]["status"] == "PAID"
    assert balance(api) == 75000

    got = check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]
    assert got["status"] == "PAID" and got["paymentType"] == "gopay" and got["paidAt"]
    assert got["invoice"]["invoiceNumber"].startswith("INV-")

    feed = check_envelope(api.get("/api/v1/billing/transactions"), 200)
    row = feed["data"]["transactions"][0]
    assert feed["pagination"]["total"] == 1
    assert (row["id"], row["type"], row["status"]) == (t["id"], "TOPUP", "SUCCESS")
    assert (row["balanceBefore"], row["balanceAfter"]) == (0, 75000)
    assert row["actions"] == {"canPay": False, "canCancel": False, "canDownloadInvoice": True}
    one = check_envelope(api.get(f"/api/v1/billing/transactions/{t['id']}"), 200)["data"]
    assert one["user"]["id"] == u["id"] and one["amount"] == 75000

    inv = check_envelope(api.get("/api/v1/billing/invoices"), 200)["data"]["invoices"]
    assert len(inv) == 1 and inv[0]["amount"] == 75000 and inv[0]["status"] == "PAID"
    detail = check_envelope(api.get(f"/api/v1/billing/invoices/{inv[0]['id']}"), 200)["data"]
    assert detail["topUpTransaction"]["orderId"] == t["orderId"]
    pdf = api.get(f"/api/v1/billing/invoices/{inv[0]['id']}/pdf")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")
    assert inv[0]["invoiceNumber"] in pdf.headers["Content-Disposition"]

    ov = check_envelope(api.get("/api/v1/billing/dashboard/overview"), 200)["data"]
    assert ov["balance"]["current"] == 75000 and ov["summary"]["totalTransactions"] == 1
    an = check_envelope(api.get("/api/v1/billing/dashboard/analytics"), 200)["data"]
    assert an["analytics"]["totalTopUps"] == 75000
    assert an["byDay"][0]["type"] == "TOPUP" and an["byDay"][0]["amount"] == 75000
    assert psql("SELECT count(*) FROM reporting.ledger_check") == "0"


def test_topup_validation_and_idempotency_key():
    api = Api(register(Api())["access"])
    r = check_envelope(api.post("/api/v1/billing/topup", {"amount": 5000, "currency": "USD"}), 400)
    assert {e["field"] for e in r["errors"]} == {"amount", "currency"}
    check_envelope(api.post("/api/v1/billing/topup", {"amount": 10000.5}), 400)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    a, b = topup(api, 20000, key), topup(api, 20000, key)
    assert a["id"] == b["id"] and a["snapToken"] == b["snapToken"]
    check_envelope(api.post("/api/v1/billing/topup", {"amount": 30000}, headers=key), 409)
    listed = check_envelope(api.get("/api/v1/billing/topup"), 200)
    assert listed["pagination"]["total"] == 1


def test_webhook_replayed_ten_times_credits_once():
    api = Api(register(Api())["access"])
    t = topup(api, 40000)
    replies = pay(t["orderId"], "settlement", times=10)
    assert [r["status"] for r in replies] == [200] * 10
    outcomes = [r["body"]["data"]["outcome"] for r in replies]
    assert outcomes.count("credited") == 1 and outcomes.count("duplicate") == 9
    assert balance(api) == 40000
    assert psql("SELECT count(*) FROM paas.ledger_entries WHERE ref->>'orderId' = :'a1'", t["orderId"]) == "1"


def test_out_of_order_notifications():
    api = Api(register(Api())["access"])
    t = topup(api, 30000)
    # settlement first, then the pending and an expire that were sent earlier
    pay(t["orderId"], "settlement")
    for st in ("pending", "expire", "deny"):
        r = Api().post(WEBHOOK, note(t["orderId"], st))
        assert check_envelope(r, 200)["data"]["status"] == "PAID"
    assert balance(api) == 30000
    # a failure before a success does not block the success
    t2 = topup(api, 20000)
    pay(t2["orderId"], "deny")
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t2['id']}"), 200)["data"]["status"] == "FAILED"
    pay(t2["orderId"], "capture", fraud_status="accept", payment_type="credit_card")
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t2['id']}"), 200)["data"]["status"] == "PAID"
    assert balance(api) == 50000
    # capture under fraud review stays pending
    t3 = topup(api, 10000)
    pay(t3["orderId"], "capture", fraud_status="challenge")
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t3['id']}"), 200)["data"]["status"] == "PENDING"


def test_concurrent_duplicate_deliveries():
    api = Api(register(Api())["access"])
    t = topup(api, 60000)
    body = note(t["orderId"], "settlement")
    with ThreadPoolExecutor(16) as ex:
        replies = list(ex.map(lambda _: Api().post(WEBHOOK, body), range(32)))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200]
    outcomes = [r.json()["data"]["outcome"] for r in replies]
    assert outcomes.count("credited") == 1
    assert balance(api) == 60000
    assert psql("SELECT count(*) FROM paas.invoices WHERE ref->>'orderId' = :'a1'", t["orderId"]) == "1"


def test_forged_and_tampered_signatures_change_nothing():
    api = Api(register(Api())["access"])
    t = topup(api, 25000)
    good = note(t["orderId"], "settlement")
    forged = dict(good, signature_key="0" * 128)
    tampered_amount = dict(good, gross_amount="2500000.00")
    relabelled = dict(note(t["orderId"], "pending"), transaction_status="settlement")
    wrong_key = dict(good, signature_key=hashlib.sha512(
        (t["orderId"] + "200" + "25000.00" + "not-the-key").encode()).hexdigest())
    for body, status in ((forged, 401), (tampered_amount, 401), (wrong_key, 401), (relabelled, 400)):
        r = check_envelope(Api().post(WEBHOOK, body), status)
        assert KEY not in r["message"]
    check_envelope(Api().post(WEBHOOK, {"order_id": t["orderId"]}), 400)
    assert balance(api) == 0
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "PENDING"
    rows = psql("SELECT count(*) FROM paas.midtrans_rejects WHERE order_id = :'a1' AND reason = 'bad_signature'",
                t["orderId"])
    assert rows == "3"
    log = open(os.environ["PAAS_TEST_HTTPD_LOG"]).read() if os.environ.get("PAAS_TEST_HTTPD_LOG") else ""
    assert not KEY or KEY not in log
    # the genuine notification still works afterwards
    check_envelope(Api().post(WEBHOOK, good), 200)
    assert balance(api) == 25000


def test_amount_mismatch_and_unknown_order():
    api = Api(register(Api())["access"])
    t = topup(api, 45000)
    # correctly signed, but for another amount / currency than the order
    for extra in ({"gross_amount": "44000.00"}, {"currency": "USD"}):
        r = check_envelope(Api().post(WEBHOOK, note(t["orderId"], "settlement", **extra)), 400)
        assert r["code"] == "VALIDATION_ERROR"
    assert balance(api) == 0
    oid = "TOPUP-NOSUCHORDER-" + uuid.uuid4().hex[:8]
    sig = hashlib.sha512((oid + "200" + "45000.00" + KEY).encode()).hexdigest()
    body = {"order_id": oid, "status_code": "200", "gross_amount": "45000.00", "signature_key": sig,
            "transaction_status": "settlement", "currency": "IDR", "payment_type": "gopay"}
    check_envelope(Api().post(WEBHOOK, body), 404)


def test_refund_reverses_and_voids_the_invoice():
    api = Api(register(Api())["access"])
    t = topup(api, 50000)
    pay(t["orderId"], "settlement")
    # a refund notification only flags the order: the worker asks the status
    # API, whose answer decides how much is taken back
    pay(t["orderId"], "partial_refund", refund_amount="10000.00", times=3)
    wait_until(lambda: balance(api) == 40000, timeout=30)
    pay(t["orderId"], "refund", refund_amount="50000.00")
    wait_until(lambda: balance(api) == 0, timeout=30)
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "REFUNDED"
    refunds = check_envelope(api.get("/api/v1/billing/transactions?type=REFUND"), 200)["data"]["transactions"]
    assert sorted(r["amount"] for r in refunds) == [10000, 40000]
    invs = check_envelope(api.get("/api/v1/billing/invoices"), 200)["data"]["invoices"]
    kinds = {i["type"]: i for i in invs}
    assert kinds["TOPUP"]["status"] == "VOID" and kinds["CREDIT_NOTE"]["amount"] == -50000
    pdf = api.get(f"/api/v1/billing/invoices/{kinds['CREDIT_NOTE']['id']}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")


def test_deny_after_settlement_is_taken_back_once_the_status_api_confirms():
    """A settlement the bank reverses arrives as a deny: the webhook only
    flags the order, the worker asks the status API, and the credit is taken
    back when Midtrans confirms (reference: "deny after success")."""
    api = Api(register(Api())["access"])
    t = topup(api, 30000)
    pay(t["orderId"], "settlement")
    assert balance(api) == 30000
    replies = pay(t["orderId"], "deny")          # Midtrans now says deny, and notifies
    assert all(r["status"] == 200 for r in replies), replies
    wait_until(lambda: balance(api) == 0, timeout=30)
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "REFUNDED"
    assert psql("SELECT kind || ' ' || amount FROM paas.topup_reversals WHERE order_id = :'a1'",
                t["orderId"]) == "REVERSAL 30000"
    assert psql("SELECT string_agg(outcome, ',' ORDER BY id) FROM paas.midtrans_notifications"
                " WHERE order_id = :'a1' AND outcome IN ('verifying_reversal', 'reversed')",
                t["orderId"]) == "verifying_reversal,reversed"


def test_a_late_deny_of_an_earlier_attempt_takes_nothing():
    """The same deny notification, while Midtrans still says settlement (an
    older attempt's notification delivered late): nothing is taken."""
    api = Api(register(Api())["access"])
    t = topup(api, 25000)
    pay(t["orderId"], "settlement")
    late = note(t["orderId"], "deny")             # signed, but Midtrans's state stays settlement
    body = check_envelope(Api().post(WEBHOOK, late), 200)
    assert body["data"]["outcome"] == "verifying_reversal"
    wait_until(lambda: psql("SELECT verify_requested_at IS NULL FROM paas.topup_orders WHERE order_id = :'a1'",
                            t["orderId"]) == "t", timeout=30)
    assert balance(api) == 25000
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "PAID"


def test_midtrans_down_answers_502_and_the_topup_stays_retryable(snap_mode):
    api = Api(register(Api())["access"])
    for m in ("error500", "unauthorized", "hang"):
        snap_mode(m)
        t0 = time.monotonic()
        r = check_envelope(api.post("/api/v1/billing/topup", {"amount": 15000}), 502)
        assert r["code"] == "GATEWAY_ERROR"
        assert time.monotonic() - t0 < 10, "the Snap call has a timeout"
    listed = check_envelope(api.get("/api/v1/billing/topup?status=PENDING"), 200)["data"]["transactions"]
    assert len(listed) == 3 and all(x["snapToken"] is None for x in listed)
    snap_mode("ok")
    retry = check_envelope(api.post(f"/api/v1/billing/transactions/{listed[0]['id']}/pay"), 200)["data"]
    assert retry["snapToken"] and retry["status"] == "PENDING" and retry["id"] == listed[0]["id"]
    # the live link is returned as is; an expired link is replaced
    again = check_envelope(api.post(f"/api/v1/billing/transactions/{listed[0]['id']}/pay"), 200)["data"]
    assert again["snapToken"] == retry["snapToken"]
    psql("UPDATE paas.topups SET snap_expires_at = now() - interval '1 minute' WHERE id = :'a1'", listed[0]["id"])
    fresh = check_envelope(api.post(f"/api/v1/billing/transactions/{listed[0]['id']}/pay"), 200)["data"]
    assert fresh["snapToken"] != retry["snapToken"] and fresh["orderId"] != retry["orderId"]
    # paying through the new link settles the top-up
    pay(fresh["orderId"], "settlement")
    assert balance(api) == 15000
    check_envelope(api.post(f"/api/v1/billing/transactions/{listed[0]['id']}/pay"), 409)


def test_worker_reconciles_a_missed_notification():
    api = Api(register(Api())["access"])
    t = topup(api, 35000)
    pay(t["orderId"], "settlement", notify=False)   # Midtrans knows, we were never told
    wait_until(lambda: check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "PAID",
               timeout=30)
    assert balance(api) == 35000
    assert psql("SELECT source FROM paas.midtrans_notifications WHERE order_id = :'a1' AND outcome = 'credited'",
                t["orderId"]) == "reconcile"
    t2 = topup(api, 10000)
    pay(t2["orderId"], "expire", notify=False)
    wait_until(lambda: check_envelope(api.get(f"/api/v1/billing/topup/{t2['id']}"), 200)["data"]["status"] == "EXPIRED",
               timeout=30)


def test_status_api_down_leaves_the_topup_pending_until_it_answers(snap_mode):
    api = Api(register(Api())["access"])
    fake("/_fake/mode", {"status": "error500"})
    t = topup(api, 10000)
    pay(t["orderId"], "settlement", notify=False)
    wait_until(lambda: psql("SELECT check_error IS NOT NULL FROM paas.topup_orders WHERE order_id = :'a1'",
                            t["orderId"]) == "t", timeout=30)
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "PENDING"
    assert balance(api) == 0
    fake("/_fake/mode", {"status": "ok"})
    wait_until(lambda: check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "PAID",
               timeout=30)
    assert balance(api) == 10000


def test_pending_topups_expire_after_24_hours():
    api = Api(register(Api())["access"])
    t = topup(api, 10000)
    psql("UPDATE paas.topups SET expires_at = now() - interval '1 second' WHERE id = :'a1'", t["id"])
    psql("UPDATE paas.job SET next_run_at = now() WHERE name = 'billing_expire_topups'")
    wait_until(lambda: check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "EXPIRED")
    row = check_envelope(api.get(f"/api/v1/billing/transactions/{t['id']}"), 200)["data"]
    assert row["status"] == "EXPIRED" and row["actions"]["canPay"] is False


def test_health_and_list_validation():
    body = check_envelope(Api().get("/api/v1/billing/health"), 200)["data"]
    assert body["status"] == "healthy" and body["gatewayConfigured"] is True
    api = Api(register(Api())["access"])
    for path in ("/api/v1/billing/transactions?type=NOPE&limit=0",
                 "/api/v1/billing/transactions?startDate=2026-02-01&endDate=2026-01-01",
                 "/api/v1/billing/invoices?status=NOPE", "/api/v1/billing/topup?page=0",
                 "/api/v1/billing/dashboard/analytics?startDate=yesterday"):
        check_envelope(api.get(path), 400)


def test_authorization_matrix(admin):
    owner = register(Api())
    o = Api(owner["access"])
    t = topup(o, 20000)
    pay(t["orderId"], "settlement")
    t2 = topup(o, 10000)      # stays pending, for /pay
    inv = check_envelope(o.get("/api/v1/billing/invoices"), 200)["data"]["invoices"][0]["id"]
    other = Api(register(Api())["access"])
    adm = Api(admin["access"])
    anon = Api()

    by_id = [("GET", f"/api/v1/billing/topup/{t['id']}", 200),
             ("GET", f"/api/v1/billing/transactions/{t['id']}", 200),
             ("POST", f"/api/v1/billing/transactions/{t2['id']}/pay", 200),
             ("GET", f"/api/v1/billing/invoices/{inv}", 200),
             ("GET", f"/api/v1/billing/invoices/{inv}/pdf", 200)]
    lists = [("GET", "/api/v1/billing/topup"), ("GET", "/api/v1/billing/transactions"),
             ("GET", "/api/v1/billing/invoices"), ("GET", "/api/v1/billing/dashboard/overview"),
             ("GET", "/api/v1/billing/dashboard/analytics")]
    for method, path, status in by_id:
        assert anon.call(method, path).status_code == 401, path
        assert o.call(method, path).status_code == status, path
        check_envelope(other.call(method, path), 404)   # another user's id: 404, never the data
        check_envelope(adm.call(method, path), 404)     # owner routes: admins see only their own
    check_envelope(anon.post("/api/v1/billing/topup", {"amount": 10000}), 401)
    for method, path in lists:
        assert anon.call(method, path).status_code == 401, path
        mine = check_envelope(o.call(method, path), 200)["data"]
        theirs = check_envelope(other.call(method, path), 200)["data"]
        admins = check_envelope(adm.call(method, path), 200)["data"]
        assert t["id"] in json.dumps(mine) or "totalTopUps" in json.dumps(mine), path
        assert t["id"] not in json.dumps(theirs) and t["id"] not in json.dumps(admins), path
    # public routes
    check_envelope(anon.get("/api/v1/billing/health"), 200)
    check_envelope(anon.post(WEBHOOK, note(t["orderId"], "settlement")), 200)


def test_payment_gateway_calls_are_limited_per_user():
    """POST /billing/topup and /transactions/:id/pay open Midtrans orders:
    10 a minute per account (PAAS_RATE_TOPUP_PER_MIN), counted before the
    body is read, whatever the client address."""
    api = Api(register(Api())["access"])
    codes = []
    for i in range(11):
        api.ip = f"10.252.{i}.1"     # a fresh address each time: only the user limit applies
        codes.append(api.post("/api/v1/billing/topup", {"amount": 5}).status_code)
    assert codes[:10] == [400] * 10 and codes[10] == 429, codes
    r = api.post("/api/v1/billing/transactions/00000000-0000-0000-0000-000000000000/pay")
    assert check_envelope(r, 429)["code"] == "RATE_LIMITED" and int(r.headers["Retry-After"]) >= 1
    other = Api(register(Api())["access"])
    check_envelope(other.post("/api/v1/billing/topup", {"amount": 5}), 400)
