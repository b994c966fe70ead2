"""Subscriptions over HTTP: top-up -> subscribe -> list -> renew -> cancel,
the 402 path, Idempotency-Key double submits, another user's subscription
(404), a renewal run as pg_cron runs it, and the admin routes."""
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Api, check_envelope, psql, register


def make_service(price):
    name = "sub-" + uuid.uuid4().hex[:12]
    return psql("INSERT INTO paas.services (name, display_name, description, docker_image, monthly_price) "
                "VALUES (:'a1', 'HTTP Sub Service', 'a service of the HTTP subscription tests', 'nginx:1', "
                ":'a2'::bigint) RETURNING id", name, str(price)).splitlines()[0]


def fund(adm, uid, amount):
    r = adm.post("/api/v1/admin/billing/adjustments",
                 {"userId": uid, "amount": amount, "reason": "subscription test top-up"})
    check_envelope(r, 201)


def balance(api):
    return check_envelope(api.get("/api/v1/billing/balance"), 200)["data"]["balance"]


@pytest.fixture
def adm(admin):
    return Api(admin["access"])


@pytest.fixture
def svc():
    return make_service(20000)


def test_full_flow(adm, user, svc):
    me = Api(user["access"])

    # nothing in the wallet: 402 and nothing changes
    r = me.post("/api/v1/subscriptions", {"serviceId": svc})
    body = check_envelope(r, 402)
    assert body["code"] == "INSUFFICIENT_BALANCE"
    assert check_envelope(me.get("/api/v1/subscriptions"), 200)["pagination"]["total"] == 0
    assert balance(me) == 0

    # top-up, then a double submit with one Idempotency-Key
    fund(adm, user["id"], 50000)
    key = {"Idempotency-Key": "sub-" + uuid.uuid4().hex}
    first = check_envelope(me.post("/api/v1/subscriptions", {"serviceId": svc}, headers=key), 201)["data"]
    again = check_envelope(me.post("/api/v1/subscriptions", {"serviceId": svc}, headers=key), 201)["data"]
    assert first["status"] == "ACTIVE" and first["price"] == 20000 and first["replayed"] is False
    assert again["id"] == first["id"] and again["replayed"] is True
    assert first["charge"]["invoice"]["invoiceNumber"].startswith("INV-")
    assert first["currentPeriodEnd"] > first["currentPeriodStart"]
    assert balance(me) == 30000
    sid = first["id"]

    # a second subscription to the same service is a conflict
    check_envelope(me.post("/api/v1/subscriptions", {"serviceId": svc}), 409)

    lst = check_envelope(me.get("/api/v1/subscriptions?status=ACTIVE"), 200)
    assert [s["id"] for s in lst["data"]] == [sid]
    assert lst["pagination"]["total"] == 1
    one = check_envelope(me.get(f"/api/v1/subscriptions/{sid}"), 200)["data"]
    assert one["service"]["id"] == svc and len(one["charges"]) == 1
    stats = check_envelope(me.get("/api/v1/subscriptions/stats"), 200)["data"]
    assert stats["activeCount"] == 1 and stats["monthlySpend"] == 20000
    assert stats["nextRenewals"][0]["subscriptionId"] == sid

    # renew now: one more period, charged
    ren = check_envelope(me.put(f"/api/v1/subscriptions/{sid}/renew"), 200)["data"]
    assert ren["periodNumber"] == 2 and ren["currentPeriodStart"] == first["currentPeriodEnd"]
    assert balance(me) == 10000
    body = check_envelope(me.put(f"/api/v1/subscriptions/{sid}/renew"), 402)
    assert body["code"] == "INSUFFICIENT_BALANCE"
    assert balance(me) == 10000

    # both charges are in the transaction feed, with their invoices
    feed = check_envelope(me.get("/api/v1/billing/transactions?limit=100"), 200)["data"]["transactions"]
    mine = [t for t in feed if t["reference"] == sid]
    assert len(mine) == 2
    assert all(t["direction"] == "DEBIT" and t["amount"] == 20000 for t in mine)

    # cancel: at period end, no refund; twice is a conflict
    can = check_envelope(me.delete(f"/api/v1/subscriptions/{sid}"), 200)["data"]
    assert can["status"] == "CANCELLED" and can["cancelAtPeriodEnd"] is True
    assert can["currentPeriodEnd"] == ren["currentPeriodEnd"] and can["refund"] == 0
    assert balance(me) == 10000
    check_envelope(me.delete(f"/api/v1/subscriptions/{sid}"), 409)


def test_other_users_subscription_is_404(adm, user, other_user, svc):
    fund(adm, user["id"], 20000)
    sid = check_envelope(Api(user["access"]).post("/api/v1/subscriptions", {"serviceId": svc}), 201)["data"]["id"]
    them = Api(other_user["access"])
    check_envelope(them.get(f"/api/v1/subscriptions/{sid}"), 404)
    check_envelope(them.put(f"/api/v1/subscriptions/{sid}/renew"), 404)
    check_envelope(them.delete(f"/api/v1/subscriptions/{sid}"), 404)
    check_envelope(them.get("/api/v1/subscriptions/not-a-uuid"), 404)
    assert check_envelope(them.get("/api/v1/subscriptions"), 200)["data"] == []
    check_envelope(Api().get("/api/v1/subscriptions"), 401)
    # the owner's subscription is untouched
    one = check_envelope(Api(user["access"]).get(f"/api/v1/subscriptions/{sid}"), 200)["data"]
    assert one["status"] == "ACTIVE" and one["periodNumber"] == 1


def test_bad_input(user):
    me = Api(user["access"])
    body = check_envelope(me.post("/api/v1/subscriptions", {}), 400)
    assert "serviceId" in str(body)
    check_envelope(me.post("/api/v1/subscriptions", {"serviceId": str(uuid.uuid4())}), 404)
    check_envelope(me.get("/api/v1/subscriptions?status=LIVE"), 400)


def test_renewal_run_charges_a_due_subscription_once(adm, user, svc):
    me = Api(user["access"])
    fund(adm, user["id"], 45000)
    sid = check_envelope(me.post("/api/v1/subscriptions", {"serviceId": svc}), 201)["data"]["id"]
    # sold a month and an hour ago: due now
    psql("UPDATE paas.subscriptions SET anchor_at = now() - interval '1 month 1 hour', "
         "current_period_start = now() - interval '1 month 1 hour', "
         "current_period_end = paas.subscription_bound(now() - interval '1 month 1 hour', 1) "
         "WHERE id = :'a1'", sid)
    psql("SELECT api.run_renewals()")
    psql("SELECT api.run_renewals()")
    one = check_envelope(me.get(f"/api/v1/subscriptions/{sid}"), 200)["data"]
    assert one["status"] == "ACTIVE" and one["periodNumber"] == 2
    assert [c["period"] for c in one["charges"]] == [2, 1]
    assert one["charges"][0]["kind"] == "renewal" and one["charges"][0]["invoice"]["status"] == "PAID"
    assert balance(me) == 5000


def test_admin_routes(adm, user, svc):
    fund(adm, user["id"], 20000)
    me = Api(user["access"])
    sid = check_envelope(me.post("/api/v1/subscriptions", {"serviceId": svc}), 201)["data"]["id"]

    check_envelope(me.get("/api/v1/admin/subscriptions"), 403)
    lst = check_envelope(adm.get(f"/api/v1/admin/subscriptions?userId={user['id']}"), 200)
    assert [s["id"] for s in lst["data"]] == [sid]
    by_path = check_envelope(adm.get(f"/api/v1/admin/subscriptions/users/{user['id']}"), 200)
    assert [s["id"] for s in by_path["data"]] == [sid]
    check_envelope(adm.get(f"/api/v1/admin/subscriptions/users/{uuid.uuid4()}"), 404)

    check_envelope(adm.put(f"/api/v1/admin/subscriptions/{sid}/status", {"status": "SUSPENDED"}), 400)
    sus = check_envelope(adm.put(f"/api/v1/admin/subscriptions/{sid}/status",
                                 {"status": "SUSPENDED", "reason": "payment dispute"}), 200)["data"]
    assert sus["status"] == "SUSPENDED" and sus["previousStatus"] == "ACTIVE"
    assert check_envelope(me.get(f"/api/v1/subscriptions/{sid}"), 200)["data"]["status"] == "SUSPENDED"
    detail = check_envelope(adm.get(f"/api/v1/admin/subscriptions/{sid}"), 200)["data"]
    assert detail["events"][-1]["reason"] == "payment dispute"
    assert detail["user"]["id"] == user["id"]

    notices = check_envelope(adm.get("/api/v1/admin/subscriptions/notices?notice=suspended&limit=100"), 200)
    assert "pagination" in notices
    assert sid in [n["subscriptionId"] for n in notices["data"]]
    stats = check_envelope(adm.get("/api/v1/admin/subscriptions/stats"), 200)["data"]
    assert stats["byStatus"]["SUSPENDED"] >= 1

    check_envelope(adm.put(f"/api/v1/admin/subscriptions/{sid}/status",
                           {"status": "EXPIRED", "reason": "closed by support"}), 200)
    check_envelope(adm.put(f"/api/v1/admin/subscriptions/{sid}/status",
                           {"status": "ACTIVE", "reason": "reopen"}), 409)


def test_concurrent_double_submit_creates_one_subscription(adm, user, svc):
    fund(adm, user["id"], 50000)
    key = {"Idempotency-Key": "sub-race-" + uuid.uuid4().hex}

    def submit(_):
        return Api(user["access"]).post("/api/v1/subscriptions", {"serviceId": svc}, headers=key)

    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(submit, range(4)))
    ids = {check_envelope(r, 201)["data"]["id"] for r in replies}
    assert len(ids) == 1
    assert balance(Api(user["access"])) == 30000
    assert psql("SELECT count(*) FROM paas.subscription_charges c JOIN paas.subscriptions s "
                "ON s.id = c.subscription_id WHERE s.user_id = :'a1'", user["id"]) == "1"


def test_deactivated_account_stops_renewing(adm, user, svc):
    fund(adm, user["id"], 45000)
    me = Api(user["access"])
    sid = check_envelope(me.post("/api/v1/subscriptions", {"serviceId": svc}), 201)["data"]["id"]
    assert balance(me) == 25000

    # the owner deactivates the account: the subscription is cancelled at
    # period end, no refund, the reason recorded
    check_envelope(me.delete("/api/v1/auth/account"), 200)
    detail = check_envelope(adm.get(f"/api/v1/admin/subscriptions/{sid}"), 200)["data"]
    assert detail["status"] == "CANCELLED" and detail["cancelAtPeriodEnd"] is True
    assert detail["events"][-1]["reason"] == "account deactivated by its owner"

    # reactivation by an administrator does not revive it
    assert check_envelope(adm.patch(f"/api/v1/users/{user['id']}/toggle-status"), 200)["data"]["isActive"] is True
    login = check_envelope(Api().post("/api/v1/auth/login",
                                      {"email": user["email"], "password": user["password"]}), 200)
    me = Api(login["data"]["accessToken"])
    assert check_envelope(me.get(f"/api/v1/subscriptions/{sid}"), 200)["data"]["status"] == "CANCELLED"
    assert balance(me) == 25000

    # at period end the renewal run expires it instead of charging it
    psql("UPDATE paas.subscriptions SET anchor_at = now() - interval '1 month 1 hour', "
         "current_period_start = now() - interval '1 month 1 hour', "
         "current_period_end = paas.subscription_bound(now() - interval '1 month 1 hour', 1) "
         "WHERE id = :'a1'", sid)
    psql("SELECT api.run_renewals()")
    one = check_envelope(me.get(f"/api/v1/subscriptions/{sid}"), 200)["data"]
    assert one["status"] == "EXPIRED" and [c["period"] for c in one["charges"]] == [1]
    assert balance(me) == 25000
