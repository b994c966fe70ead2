"""Transactional e-mail end to end: the real mailer (bgworker/mailer.c,
libcurl) sends to a real SMTP server (aiosmtpd, tests/fakes/smtpd.py) with
STARTTLS and AUTH; what arrives in its Maildir is parsed with Python's
email package and checked: headers, MIME parts, links, the invoice PDF.
Also the routes of verification, password reset, preferences, one-click
unsubscribe and the admin deliveries, and the failure cases: a 550, 4xx
retries, the SMTP server down, the mailer killed mid-batch."""
import email
import email.policy
import glob
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid

import pytest
import requests

from conftest import BASE, PASSWORD, Api, check_envelope, psql, register, unique_email, wait_until

MAILDIR = os.environ.get("PAAS_TEST_MAILDIR", "")
SMTPD_CMD = os.environ.get("PAAS_TEST_SMTPD_CMD", "")
SMTPD_PID = os.environ.get("PAAS_TEST_SMTPD_PID", "")
PUBLIC = "https://app.paas.test"
FAKE = os.environ.get("MIDTRANS_FAKE_URL", "http://127.0.0.1:1")

pytestmark = pytest.mark.skipif(not MAILDIR, reason="needs the suite's SMTP server (tests/run.sh)")


# ---------------------------------------------------------------- the Maildir

_parsed = {}


def messages():
    """Every message the SMTP server stored, parsed, with its raw bytes
    (files are written once: each is parsed once)."""
    out = []
    for path in glob.glob(os.path.join(MAILDIR, "new", "*")) + glob.glob(os.path.join(MAILDIR, "cur", "*")):
        msg = _parsed.get(path)
        if msg is None:
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                continue
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            msg.raw = raw
            _parsed[path] = msg
        out.append(msg)
    return out


def to(msg):
    return msg["X-Envelope-To"]


def mails_to(addr):
    return [m for m in messages() if to(m) == addr]


def wait_mail(addr, n=1, timeout=40, subject=None):
    """The messages to addr once there are n of them (with subject in it)."""
    def found():
        ms = [m for m in mails_to(addr) if subject is None or subject in str(m["Subject"])]
        return ms if len(ms) >= n else None
    return wait_until(found, timeout=timeout, interval=0.1)


def text_of(msg):
    return msg.get_body(("plain",)).get_content()


def html_of(msg):
    return msg.get_body(("html",)).get_content()


def forged(tok):
    """tok with its last signature digit changed."""
    return tok[:-1] + ("1" if tok[-1] == "0" else "0")


def token_in(text, page):
    m = re.search(re.escape(PUBLIC + page) + r"\?token=([0-9a-f]{32}\.[0-9a-f]{64})", text)
    assert m, text
    return m.group(1)


def outbox(where, *args):
    return psql("SELECT coalesce(json_agg(o ORDER BY o.id), '[]') FROM paas.notification_outbox o WHERE " + where, *args)


def smtp_stats():
    import json
    with open(os.path.join(os.path.dirname(MAILDIR), "stats.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------- the SMTP server

def smtpd_pid():
    with open(SMTPD_PID) as f:
        return int(f.read().strip())


def smtpd_port():
    return int(re.search(r"--port (\d+)", SMTPD_CMD).group(1))


def smtpd_stop():
    pid = smtpd_pid()
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split()[2] == "Z", timeout=20)
    os.remove(SMTPD_PID)


def smtpd_start():
    log = open(os.path.join(os.path.dirname(MAILDIR), "smtpd.log"), "ab")
    subprocess.Popen(shlex.split(SMTPD_CMD), stdout=log, stderr=log, start_new_session=True)

    def up():
        try:
            socket.create_connection(("127.0.0.1", smtpd_port()), 1).close()
            return os.path.exists(SMTPD_PID)
        except OSError:
            return False
    wait_until(up, timeout=20)


def db_up():
    """Waits until the cluster answers (after a crash restart)."""
    def ok():
        try:
            psql("SELECT 1")
            return True
        except subprocess.CalledProcessError:
            return False
    wait_until(ok, timeout=60, interval=0.5)


# ---------------------------------------------------------------- a new account

def test_welcome_mail_headers_parts_and_verification_link():
    api = Api()
    u = register(api, name="Sinta Test")
    msg = wait_mail(u["email"])[0]
    # envelope and headers
    assert msg["X-Envelope-From"] == "no-reply@paas.test"
    assert msg["From"].addresses[0].display_name == "Paas Cloud"
    assert msg["From"].addresses[0].addr_spec == "no-reply@paas.test"
    assert msg["To"].addresses[0].addr_spec == u["email"]
    assert msg["To"].addresses[0].display_name == "Sinta Test"
    assert msg["Subject"] == "Selamat datang, Sinta Test"      # the default locale: id
    assert msg["Mime-Version"] == "1.0" and msg["Date"] and msg["Auto-Submitted"] == "auto-generated"
    row = psql("SELECT message_id || '|' || status || '|' || smtp_code FROM paas.notification_outbox "
               "WHERE user_id = :'a1' AND kind = 'welcome'", u["id"])
    assert row.split("|")[0] == msg["Message-ID"]
    assert re.fullmatch(r"<paas\.\d+\.\d{14}@paas\.test>", msg["Message-ID"])
    assert row.split("|")[1:] == ["SENT", "250"]
    assert msg["List-Unsubscribe"] is None                      # transactional
    # parts: mixed > alternative > text/plain + text/html, UTF-8
    assert msg.get_content_type() == "multipart/mixed"
    alt = msg.get_payload()[0]
    assert alt.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alt.get_payload()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in alt.get_payload())
    text, html = text_of(msg), html_of(msg)
    assert "Sinta Test" in text and u["email"] in text
    tok = token_in(text, "/verify-email")
    assert f'href="{PUBLIC}/verify-email?token={tok}"' in html
    # the link verifies the address
    auth = Api(u["access"])
    assert check_envelope(auth.get("/api/v1/auth/notifications"), 200)["data"]["emailVerified"] is False
    bad = check_envelope(api.post("/api/v1/auth/verify-email", {"token": forged(tok)}), 400)
    assert bad["errors"][0]["field"] == "token"
    body = check_envelope(api.post("/api/v1/auth/verify-email", {"token": tok}), 200)
    assert body["data"] == {"verified": True, "email": u["email"]}
    assert check_envelope(auth.get("/api/v1/auth/notifications"), 200)["data"]["emailVerified"] is True


def test_non_ascii_name_and_subject_are_encoded_words():
    api = Api()
    u = register(api, name="Dewi Śāstra 明")
    msg = wait_mail(u["email"])[0]
    head = msg.raw.split(b"\r\n\r\n", 1)[0]
    assert all(b < 0x80 for b in head), "headers are 7-bit ASCII"
    assert re.search(rb"^Subject: =\?UTF-8\?B\?", head, re.M)
    assert msg["Subject"] == "Selamat datang, Dewi Śāstra 明"
    assert msg["To"].addresses[0].display_name == "Dewi Śāstra 明"
    assert "Dewi Śāstra 明" in text_of(msg) and "Dewi Śāstra 明" in html_of(msg)


def test_html_part_escapes_what_users_typed():
    api = Api()
    u = register(api, name="<script>x</script>")
    msg = wait_mail(u["email"])[0]
    assert "<script>x</script>" in text_of(msg)
    assert "<script>" not in html_of(msg) and "&lt;script&gt;x&lt;/script&gt;" in html_of(msg)


def test_register_with_a_taken_address_answers_the_same_and_mails_the_owner():
    owner = register(Api(), name="Real Owner")
    wait_mail(owner["email"])
    r = Api().post("/api/v1/auth/register", {"name": "Somebody Else", "email": owner["email"].upper(),
                                              "password": PASSWORD, "confirmPassword": PASSWORD})
    body = check_envelope(r, 201)
    fresh = check_envelope(Api().post("/api/v1/auth/register", {
        "name": "Somebody Else", "email": unique_email(), "password": PASSWORD, "confirmPassword": PASSWORD}), 201)
    assert set(body["data"]) == set(fresh["data"]) and set(body["data"]["user"]) == set(fresh["data"]["user"])
    assert body["message"] == fresh["message"]
    assert psql("SELECT count(*) FROM paas.users WHERE lower(email) = lower(:'a1')", owner["email"]) == "1"
    msg = wait_mail(owner["email"], subject="mendaftar")[0]
    assert "sudah memiliki akun" in text_of(msg)
    assert f"{PUBLIC}/forgot-password" in text_of(msg)
    # the tokens of that answer open nothing
    check_envelope(Api(body["data"]["accessToken"]).get("/api/v1/auth/me"), 401)


# ---------------------------------------------------------------- password reset

def test_forgot_and_reset_password():
    api = Api()
    u = register(api)
    wait_mail(u["email"])
    known = check_envelope(Api().post("/api/v1/auth/forgot-password", {"email": u["email"]}), 200)
    unknown = check_envelope(Api().post("/api/v1/auth/forgot-password", {"email": unique_email()}), 200)
    assert {k: v for k, v in known.items() if k != "timestamp"} == \
        {k: v for k, v in unknown.items() if k != "timestamp"}, "the same answer whether the address exists or not"
    check_envelope(Api().post("/api/v1/auth/forgot-password", {"email": "nope"}), 400)
    msg = wait_mail(u["email"], subject="kata sandi")[0]
    tok = token_in(text_of(msg), "/reset-password")
    assert f'href="{PUBLIC}/reset-password?token={tok}"' in html_of(msg)
    # a second request within the minute mails nothing more
    check_envelope(Api().post("/api/v1/auth/forgot-password", {"email": u["email"]}), 200)

    other = check_envelope(Api().post("/api/v1/auth/login", {"email": u["email"], "password": PASSWORD}), 200)["data"]
    bad = check_envelope(api.post("/api/v1/auth/reset-password", {"token": tok, "newPassword": "short",
                                                                  "confirmNewPassword": "short"}), 400)
    assert {e["field"] for e in bad["errors"]} == {"newPassword"}
    check_envelope(api.post("/api/v1/auth/reset-password", {"token": tok, "newPassword": "N3wSecretPw",
                                                            "confirmNewPassword": "N3wSecretPw"}), 200)
    # every session is revoked, the old password is gone, the new one works
    check_envelope(Api(u["access"]).get("/api/v1/auth/me"), 401)
    check_envelope(Api(other["accessToken"]).get("/api/v1/auth/me"), 401)
    check_envelope(Api().post("/api/v1/auth/refresh", {"refreshToken": other["refreshToken"]}), 401)
    check_envelope(Api().post("/api/v1/auth/login", {"email": u["email"], "password": PASSWORD}), 401)
    check_envelope(Api().post("/api/v1/auth/login", {"email": u["email"], "password": "N3wSecretPw"}), 200)
    # single use
    again = check_envelope(api.post("/api/v1/auth/reset-password", {"token": tok, "newPassword": "Th1rdSecretPw",
                                                                    "confirmNewPassword": "Th1rdSecretPw"}), 400)
    assert again["errors"][0]["field"] == "token"
    assert len(mails_to(u["email"])) >= 2
    changed = wait_mail(u["email"], subject="diganti")[0]
    assert f"{PUBLIC}/forgot-password" in text_of(changed)
    assert len([m for m in mails_to(u["email"]) if "Atur ulang" in str(m["Subject"])]) == 1


def test_resend_verification_is_limited():
    u = register(Api())
    auth = Api(u["access"])
    r = auth.post("/api/v1/auth/resend-verification")
    check_envelope(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
    psql("UPDATE paas.auth_tokens SET created_at = created_at - interval '2 minutes' WHERE user_id = :'a1'", u["id"])
    body = check_envelope(auth.post("/api/v1/auth/resend-verification"), 200)
    assert body["data"] == {"email": u["email"], "verified": False, "sent": True}
    msg = wait_mail(u["email"], subject="Verifikasi")[0]
    tok = token_in(text_of(msg), "/verify-email")
    check_envelope(Api().post("/api/v1/auth/verify-email", {"token": tok}), 200)


def test_preferences_and_locale():
    u = register(Api())
    auth = Api(u["access"])
    got = check_envelope(auth.get("/api/v1/auth/notifications"), 200)["data"]
    assert got == {"email": u["email"], "emailVerified": False, "locale": "id", "reminders": True,
                   "transactional": True}
    bad = check_envelope(auth.put("/api/v1/auth/notifications", {"locale": "de", "reminders": 3}), 400)
    assert {e["field"] for e in bad["errors"]} == {"locale", "reminders"}
    check_envelope(auth.put("/api/v1/auth/notifications", {}), 400)
    check_envelope(auth.put("/api/v1/auth/notifications", {"transactional": False}), 400)
    got = check_envelope(auth.put("/api/v1/auth/notifications", {"locale": "en", "reminders": False}), 200)["data"]
    assert got["locale"] == "en" and got["reminders"] is False
    check_envelope(Api().get("/api/v1/auth/notifications"), 401)
    check_envelope(Api().post("/api/v1/auth/forgot-password", {"email": u["email"]}), 200)
    msg = wait_mail(u["email"], subject="Reset your password")[0]
    assert "valid for 60 minutes" in text_of(msg)


# ---------------------------------------------------------------- money mails

def test_paid_topup_mail_carries_the_invoice_pdf(tmp_path):
    u = register(Api())
    api = Api(u["access"])
    t = check_envelope(api.post("/api/v1/billing/topup", {"amount": 125000, "currency": "IDR"}), 201)["data"]
    r = requests.post(FAKE + "/_fake/pay", json={"order_id": t["orderId"], "transaction_status": "settlement"},
                      timeout=30)
    assert r.status_code == 200, r.text
    msg = wait_mail(u["email"], subject="Isi saldo")[0]
    assert msg["Subject"] == "Isi saldo Rp 125.000 berhasil"
    assert "Saldo Anda sekarang Rp 125.000" in text_of(msg)
    att = [p for p in msg.iter_attachments()]
    assert len(att) == 1 and att[0].get_content_type() == "application/pdf"
    inv = check_envelope(api.get(f"/api/v1/billing/topup/{t['id']}"), 200)["data"]["invoice"]
    assert att[0].get_filename() == inv["invoiceNumber"] + ".pdf"
    assert inv["invoiceNumber"] in text_of(msg)
    pdf = att[0].get_content()
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / "inv.pdf"
    path.write_bytes(pdf)
    words = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert inv["invoiceNumber"] in words and "PT Contoh Awan" in words and "125.000" in words
    # the same document as the download
    dl = api.get(f"/api/v1/billing/invoices/{inv['id']}/pdf")
    path.write_bytes(dl.content)
    assert subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout == words


def funded_subscription(u, price=20000):
    """A service and a subscription of u, paid from a funded wallet."""
    name = "mail-" + uuid.uuid4().hex[:10]
    sid = psql("INSERT INTO paas.services (name, display_name, description, docker_image, monthly_price) "
               "VALUES (:'a1', 'Mail Test App', 'service of the mail tests', 'nginx:1', :'a2'::bigint) RETURNING id", name, str(price))
    psql("SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup', 'postings', "
         "jsonb_build_array(jsonb_build_object('account', paas.wallet_account(:'a1'::uuid), 'amount', 30000), "
         "jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -30000)))))", u["id"])
    sub = check_envelope(Api(u["access"]).post("/api/v1/subscriptions", {"serviceId": sid}), 201)["data"]
    return sub


def test_renewal_reminder_and_one_click_unsubscribe():
    u = register(Api())
    sub = funded_subscription(u)
    # the charge's mail (the instance's "ready" mail names the app too)
    charged = wait_until(lambda: next((m for m in mails_to(u["email"]) if "Mail Test App" in str(m["Subject"])
                                       and "Rp 20.000" in text_of(m)), None), timeout=40, interval=0.1)
    assert charged["List-Unsubscribe"] is None
    psql("UPDATE paas.subscriptions SET current_period_end = now() + interval '2 days' WHERE id = :'a1'", sub["id"])
    psql("SELECT paas.job_notify_renewal_reminders()")
    msg = wait_mail(u["email"], subject="diperpanjang dalam")[0]
    assert msg["Subject"] == "Mail Test App diperpanjang dalam 2 hari"
    assert "Saldo Anda (Rp 10.000) kurang Rp 10.000" in text_of(msg)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    m = re.fullmatch(r"<(https://app\.paas\.test(/api/v1/notifications/unsubscribe)\?token=([0-9a-f.]+))>",
                     msg["List-Unsubscribe"])
    assert m, msg["List-Unsubscribe"]
    assert "unsubscribe?token=" in text_of(msg)
    # a GET (a link scanner) changes nothing
    xff = {"X-Forwarded-For": "10.77.%d.%d" % (uuid.uuid4().int % 250, uuid.uuid4().int % 250)}
    info = check_envelope(requests.get(BASE + m.group(2) + "?token=" + m.group(3), headers=xff, timeout=30),
                          200)["data"]
    assert info["reminders"] is True
    # RFC 8058: the mail client POSTs the form to the List-Unsubscribe URL
    r = requests.post(BASE + m.group(2) + "?token=" + m.group(3), data="List-Unsubscribe=One-Click",
                      headers={"Content-Type": "application/x-www-form-urlencoded", **xff}, timeout=30)
    assert check_envelope(r, 200)["data"]["reminders"] is False
    assert check_envelope(Api(u["access"]).get("/api/v1/auth/notifications"), 200)["data"]["reminders"] is False
    bad = requests.post(BASE + m.group(2) + "?token=" + forged(m.group(3)), data="List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded", **xff}, timeout=30)
    check_envelope(bad, 400)
    # opted out: no more reminders are queued
    psql("DELETE FROM paas.notification_outbox WHERE kind = 'renewal_reminder' AND user_id = :'a1'", u["id"])
    psql("SELECT paas.job_notify_renewal_reminders()")
    assert outbox("kind = 'renewal_reminder' AND user_id = :'a1'", u["id"]) == "[]"


# ---------------------------------------------------------------- failures

def test_a_550_fails_for_good_and_admins_see_it(admin):
    addr = "reject-" + uuid.uuid4().hex[:10] + "@example.com"
    register(Api(), email=addr)

    def failed():
        rows = Api(admin["access"]).get("/api/v1/admin/notifications?status=FAILED&search=" + addr)
        data = check_envelope(rows, 200)["data"]
        return data[0] if data else None
    row = wait_until(failed, timeout=40)
    assert row["kind"] == "welcome" and row["recipient"] == addr and row["attempts"] == 1
    assert row["smtpCode"] == 550 and "550" in row["lastError"] and "mailbox unavailable" in row["lastError"]
    assert mails_to(addr) == []
    detail = check_envelope(Api(admin["access"]).get(f"/api/v1/admin/notifications/{row['id']}"), 200)["data"]
    assert [d["outcome"] for d in detail["deliveries"]] == ["permanent"]
    # resent by an admin: a new mail (it fails again: the address is gone)
    resent = check_envelope(Api(admin["access"]).post(f"/api/v1/admin/notifications/{row['id']}/resend"), 200)["data"]
    assert resent["resentFrom"] == row["id"] and resent["status"] == "PENDING"
    wait_until(lambda: psql("SELECT status FROM paas.notification_outbox WHERE id = :'a1'", str(resent["id"])) == "FAILED")
    check_envelope(Api(admin["access"]).post("/api/v1/admin/notifications/999999999/resend"), 404)


def test_4xx_is_retried_with_backoff_until_it_goes(admin):
    addr = "tempfail2-" + uuid.uuid4().hex[:10] + "@example.com"
    u = register(Api(), email=addr)
    wait_mail(addr, timeout=60)
    oid = psql("SELECT id FROM paas.notification_outbox WHERE user_id = :'a1' AND kind = 'welcome'", u["id"])
    detail = check_envelope(Api(admin["access"]).get(f"/api/v1/admin/notifications/{oid}"), 200)["data"]
    assert [d["outcome"] for d in detail["deliveries"]] == ["temporary", "temporary", "sent"]
    assert [d["smtpCode"] for d in detail["deliveries"]] == [451, 451, 250]
    assert detail["status"] == "SENT" and detail["attempts"] == 3 and detail["lastError"] is None
    # the waits between attempts grew (base 1 s, doubled, +-20 %)
    at = [d["at"] for d in detail["deliveries"]]
    gaps = psql("SELECT string_agg(round(extract(epoch FROM b::timestamptz - a::timestamptz), 1)::text, ',') "
                "FROM (VALUES (:'a1', :'a2'), (:'a2', :'a3')) v (a, b)", *at).split(",")
    assert 0.7 <= float(gaps[0]) and float(gaps[1]) >= 1.5, gaps


def test_admin_list_is_for_admins_filtered_and_paginated(admin):
    u = register(Api())
    wait_mail(u["email"])
    check_envelope(Api(u["access"]).get("/api/v1/admin/notifications"), 403)
    body = check_envelope(Api(admin["access"]).get(f"/api/v1/admin/notifications?userId={u['id']}&kind=welcome"), 200)
    assert [r["kind"] for r in body["data"]] == ["welcome"] and body["data"][0]["status"] == "SENT"
    assert body["pagination"]["total"] == 1
    page = check_envelope(Api(admin["access"]).get("/api/v1/admin/notifications?limit=2&page=1"), 200)
    assert len(page["data"]) == 2 and page["pagination"]["hasNext"] is True
    bad = check_envelope(Api(admin["access"]).get("/api/v1/admin/notifications?status=LOST&kind=nope"), 400)
    assert {e["field"] for e in bad["errors"]} == {"status", "kind"}


def smtp_connections():
    return int(psql("SELECT current_setting('paas.smtp_connections')"))


def test_many_mails_share_a_few_connections_each_sent_once():
    """More mails than a claim takes (paas.mail_batch = 50): every one arrives
    exactly once, with its own Message-ID, over the mailer's few kept
    connections, and is recorded SENT after one attempt."""
    before = smtp_stats()
    tag = uuid.uuid4().hex[:8]
    addrs = [f"bulk-{tag}-{i}@example.com" for i in range(120)]
    psql("SELECT count(paas.notify('admin_job_failed', 'bulk:' || a, NULL, "
         "'{\"job\": \"bulk\", \"error\": \"x\", \"at\": \"2025-01-01T00:00:00Z\"}', a)) "
         "FROM unnest(string_to_array(:'a1', ',')) a", ",".join(addrs))
    wait_until(lambda: all(mails_to(a) for a in addrs), timeout=90)
    wait_until(lambda: psql("SELECT count(*) FROM paas.notification_outbox WHERE dedup_key LIKE :'a1' "
                            "AND status = 'SENT'", f"bulk:bulk-{tag}-%") == "120", timeout=30)
    time.sleep(0.5)  # stats.json is written every 0.1 s
    after = smtp_stats()
    got = {a: mails_to(a) for a in addrs}
    assert all(len(ms) == 1 for ms in got.values()), {a: len(ms) for a, ms in got.items() if len(ms) != 1}
    ids = [ms[0]["Message-ID"] for ms in got.values()]
    assert len(set(ids)) == 120
    rows = psql("SELECT string_agg(DISTINCT o.attempts || '/' || (SELECT count(*) FROM paas.notification_deliveries d "
                "WHERE d.outbox_id = o.id) || '/' || (o.message_id IS NOT NULL), ',') "
                "FROM paas.notification_outbox o WHERE o.dedup_key LIKE :'a1'", f"bulk:bulk-{tag}-%")
    assert rows == "1/1/true", rows
    assert after["messages"] - before["messages"] >= 120
    # a few connections (one per paas.smtp_connections, rarely a reconnect) for all of them
    assert after["connections"] - before["connections"] <= smtp_connections() + 1, (before, after)
    assert after["auths"] - before["auths"] <= smtp_connections() + 1


def test_smtp_down_mails_wait_and_go_when_it_is_back():
    smtpd_stop()
    try:
        users = [register(Api()) for _ in range(3)]

        def waiting():
            rows = psql("SELECT count(*) FROM paas.notification_outbox WHERE kind = 'welcome' AND status = 'PENDING' "
                        "AND user_id = ANY (string_to_array(:'a1', ',')::uuid[]) AND last_error IS NOT NULL",
                        ",".join(u["id"] for u in users))
            return rows != "0"
        wait_until(waiting, timeout=30)
        assert psql("SELECT count(*) FROM paas.notification_outbox WHERE kind = 'welcome' AND status IN ('SENT', 'FAILED') "
                    "AND user_id = ANY (string_to_array(:'a1', ',')::uuid[])", ",".join(u["id"] for u in users)) == "0"
        time.sleep(2)
    finally:
        smtpd_start()
    for u in users:
        wait_mail(u["email"], timeout=60)
    wait_until(lambda: psql("SELECT count(*) FROM paas.notification_outbox WHERE kind = 'welcome' AND status = 'SENT' "
                            "AND user_id = ANY (string_to_array(:'a1', ',')::uuid[])",
                            ",".join(u["id"] for u in users)) == "3")
    # the server being down cost no attempt: each went at its first counted one
    assert psql("SELECT string_agg(DISTINCT attempts::text, ',') FROM paas.notification_outbox WHERE kind = 'welcome' "
                "AND user_id = ANY (string_to_array(:'a1', ',')::uuid[])", ",".join(u["id"] for u in users)) == "1"
    assert "unavailable" in psql("SELECT string_agg(DISTINCT d.outcome, ',') FROM paas.notification_deliveries d "
                                 "JOIN paas.notification_outbox o ON o.id = d.outbox_id WHERE o.kind = 'welcome' "
                                 "AND o.user_id = ANY (string_to_array(:'a1', ',')::uuid[])",
                                 ",".join(u["id"] for u in users))


def test_mailer_killed_mid_batch_resends_only_what_was_not_recorded():
    """The mailer is killed (SIGKILL: the cluster restarts) while the slow
    mail of a batch waits for its 250 and the other connections have sent
    the rest.  A mail recorded SENT before the kill never goes again; one
    that was not (at most one per connection: the slow one here) goes again
    with the same Message-ID; every one arrives."""
    tag = uuid.uuid4().hex[:8]
    addrs = [f"kill-{tag}-{i}@example.com" for i in range(12)]
    addrs[2] = f"slow-{tag}@example.com"
    conns = smtp_connections()
    markers = set(glob.glob(os.path.join(os.path.dirname(MAILDIR), "slow-*")))
    psql("SELECT count(paas.notify('admin_job_failed', 'kill:' || a, NULL, "
         "'{\"job\": \"kill\", \"error\": \"x\", \"at\": \"2025-01-01T00:00:00Z\"}', a)) "
         "FROM unnest(string_to_array(:'a1', ',')) a", ",".join(addrs))
    # the slow mail is stored and its 250 is held back
    wait_until(lambda: set(glob.glob(os.path.join(os.path.dirname(MAILDIR), "slow-*"))) - markers, timeout=40)
    others = f"kill:kill-{tag}-%"
    if conns > 1:
        # the other connections carry on meanwhile
        wait_until(lambda: psql("SELECT count(*) FROM paas.notification_outbox WHERE dedup_key LIKE :'a1' "
                                "AND status = 'SENT'", others) == "11", timeout=20)
    # what is recorded now is durable before the kill
    lsn = psql("SELECT pg_current_wal_insert_lsn()")
    wait_until(lambda: psql("SELECT pg_current_wal_flush_lsn() >= :'a1'::pg_lsn", lsn) == "t", timeout=10)
    recorded = set(psql("SELECT coalesce(string_agg(sent_to, ','), '') FROM paas.notification_outbox "
                        "WHERE dedup_key LIKE :'a1' AND status = 'SENT'", f"kill:%{tag}%").split(",")) - {""}
    pid = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'paas mailer'")
    assert pid
    os.kill(int(pid), signal.SIGKILL)
    db_up()
    wait_until(lambda: all(mails_to(a) for a in addrs), timeout=90, interval=0.2)
    wait_until(lambda: psql("SELECT count(*) FROM paas.notification_outbox WHERE dedup_key LIKE :'a1' AND status = 'SENT'",
                            f"kill:%{tag}%") == "12", timeout=30)
    got = {a: mails_to(a) for a in addrs}
    assert all(len(got[a]) == 1 for a in recorded), {a: len(got[a]) for a in recorded}
    assert all(1 <= len(ms) <= 2 for ms in got.values()), {a: len(ms) for a, ms in got.items()}
    assert all(len({m["Message-ID"] for m in ms}) == 1 for ms in got.values()), \
        "a resend after the crash carries the same Message-ID"
    assert sum(len(ms) - 1 for ms in got.values()) <= conns, "at most the mails in flight went twice"
    if conns > 1:
        assert len(recorded) >= 11, recorded
