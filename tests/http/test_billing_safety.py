"""Money safety of billing over HTTP against the fake Midtrans
(tests/fakes/midtrans.py) and the real worker: a signed notification
relabelled "refund" takes nothing (only the status API's answer does, and
its amount is the answer's), refused notifications are bounded records, and
the background worker never picks up objects created in schema public."""
import os
import random
import string
import uuid

import requests

from conftest import Api, check_envelope, psql, register, wait_until

FAKE = os.environ.get("MIDTRANS_FAKE_URL", "http://127.0.0.1:1")
WEBHOOK = "/api/v1/billing/webhooks/midtrans"


def fake(path, body):
    r = requests.post(FAKE + path, json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def note(order_id, status, **kw):
    return fake("/_fake/notification", {"order_id": order_id, "transaction_status": status, **kw})


def topup(api, amount):
    return check_envelope(api.post("/api/v1/billing/topup", {"amount": amount, "currency": "IDR"}), 201)["data"]


def balance(api):
    return check_envelope(api.get("/api/v1/billing/balance"), 200)["data"]["balance"]


def checked(order_id):
    """The worker asked the status API about a flagged order and applied the answer."""
    return psql("SELECT verify_requested_at IS NULL AND check_error IS NULL FROM paas.topup_orders"
                " WHERE order_id = :'a1'", order_id) == "t"


def test_a_signed_settlement_relabelled_refund_takes_nothing():
    api = Api(register(Api())["access"])
    t = topup(api, 150000)
    fake("/_fake/pay", {"order_id": t["orderId"], "transaction_status": "settlement"})
    assert balance(api) == 150000
    # the genuine, signed settlement, re-sent with another status: the
    # signature covers order_id, status_code and gross_amount only
    genuine = note(t["orderId"], "settlement")
    for status, extra in (("refund", {}), ("partial_refund", {"refund_amount": "150000.00"}),
                          ("chargeback", {}), ("deny", {}), ("cancel", {}), ("expire", {})):
        body = dict(genuine, transaction_status=status, **extra)
        r = check_envelope(Api().post(WEBHOOK, body), 200)
        assert r["data"]["outcome"] == "verifying_reversal", (status, r)
        wait_until(lambda: checked(t["orderId"]), timeout=30)
        assert balance(api) == 150000, status
    assert psql("SELECT count(*) FROM paas.topup_reversals WHERE order_id = :'a1'", t["orderId"]) == "0"
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "PAID"


def test_a_refund_is_taken_as_the_status_api_states_it():
    api = Api(register(Api())["access"])
    t = topup(api, 100000)
    fake("/_fake/pay", {"order_id": t["orderId"], "transaction_status": "settlement"})
    assert balance(api) == 100000
    # Midtrans refunds 30,000, then 20,000 more, and notifies each time
    out = fake("/_fake/refund", {"order_id": t["orderId"], "amount": 30000})
    assert out["deliveries"][0]["body"]["data"]["outcome"] == "verifying_reversal"
    wait_until(lambda: balance(api) == 70000, timeout=30)
    fake("/_fake/refund", {"order_id": t["orderId"], "amount": 20000})
    wait_until(lambda: balance(api) == 50000, timeout=30)
    # a status answer whose signature_key does not verify changes nothing
    fake("/_fake/mode", {"status": "badsig"})
    try:
        fake("/_fake/refund", {"order_id": t["orderId"], "amount": 50000})
        wait_until(lambda: psql("SELECT check_error LIKE '%signature_key%' FROM paas.topup_orders"
                                " WHERE order_id = :'a1'", t["orderId"]) == "t", timeout=30)
        assert balance(api) == 50000
    finally:
        fake("/_fake/mode", {"status": "ok"})
    # the check stays due: once the answer verifies, the rest is taken back
    wait_until(lambda: balance(api) == 0, timeout=30)
    rows = psql("SELECT string_agg(kind || ' ' || status || ' ' || amount, ',' ORDER BY created_at)"
                " FROM paas.topup_reversals WHERE order_id = :'a1'", t["orderId"])
    assert rows == "REFUND SUCCESS 30000,REFUND SUCCESS 20000,REFUND SUCCESS 50000"
    assert check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["status"] == "REFUNDED"
    assert psql("SELECT count(*) FROM reporting.ledger_check") == "0"


def rejects_size():
    """Bytes of the tables notifications are recorded in."""
    return int(psql("SELECT coalesce(sum(pg_total_relation_size(t)), 0) FROM unnest(ARRAY["
                    "to_regclass('paas.midtrans_notifications'), to_regclass('paas.midtrans_rejects')]) t"
                    " WHERE t IS NOT NULL"))


def test_refused_notifications_are_bounded_records():
    """Anyone can post to the webhook: a refused notification is kept as a
    bounded record (reason, order, client address, size, hash, first 4 kB),
    whatever its size.  (httpd may refuse a body this large itself, 413:
    then nothing is stored at all.)"""
    order = "TOPUP-FORGED-" + uuid.uuid4().hex[:8]
    rnd = random.Random(7)
    before = rejects_size()
    refused = []
    for i in range(20):
        junk = "".join(rnd.choices(string.ascii_letters + string.digits, k=900 * 1024))
        body = {"order_id": order, "status_code": "200", "gross_amount": "10000.00",
                "transaction_status": "settlement", "signature_key": "0" * 128, "junk": junk}
        ip = f"10.251.{i}.7"
        r = Api(ip=ip).post(WEBHOOK, body)
        assert r.status_code in (401, 413), r.text
        if r.status_code == 401:
            check_envelope(r, 401)
            refused.append(ip)
    grown = rejects_size() - before
    assert grown < 1024 * 1024, f"20 refused 900 KiB notifications grew the tables by {grown} bytes"
    rows = psql("SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s', reason, client_ip, body_size > 900 * 1024,"
                " octet_length(body_head) <= 4096, octet_length(body_sha256)), ',' ORDER BY id), '')"
                " FROM paas.midtrans_rejects WHERE order_id = :'a1'", order)
    assert (rows.split(",") if rows else []) == [f"bad_signature|{ip}|t|t|32" for ip in refused]
    assert psql("SELECT count(*) FROM paas.midtrans_notifications WHERE order_id = :'a1'", order) == "0"


def test_the_worker_never_picks_up_objects_in_public():
    """Background workers connect with search_path pg_catalog, pg_temp: a
    function in public that matches a call of the worker's SQL better than
    the built-in one (make_interval(secs => integer)) is never run."""
    psql("CREATE TABLE public.search_path_trap (who text, at timestamptz DEFAULT now());"
         "CREATE FUNCTION public.make_interval(secs integer) RETURNS interval LANGUAGE sql AS"
         " $$ INSERT INTO public.search_path_trap (who) VALUES (current_user) RETURNING interval '1 hour' $$")
    try:
        # a pending order old enough to be claimed: proof that a
        # reconciliation pass ran its SQL after the trap was set
        api = Api(register(Api())["access"])
        t = topup(api, 10000)
        psql("UPDATE paas.topup_orders SET created_at = now() - interval '1 hour', last_checked_at = NULL"
             " WHERE order_id = :'a1'", t["orderId"])
        wait_until(lambda: psql("SELECT last_checked_at IS NOT NULL FROM paas.topup_orders WHERE order_id = :'a1'",
                                t["orderId"]) == "t", timeout=30)
        assert psql("SELECT count(*) FROM public.search_path_trap") == "0"
        # run_parallel's workers too
        assert psql("SELECT (paas.run_parallel(ARRAY['SELECT pg_catalog.current_setting(''search_path'')']))[1]") \
            == "pg_catalog, pg_temp"
    finally:
        psql("DROP FUNCTION IF EXISTS public.make_interval(integer); DROP TABLE IF EXISTS public.search_path_trap")
