"""The import of the original system's database, end to end.

A database in the original's schema with its seed and awkward rows
(tests/import/) is created in the test cluster; the real command
(docker/scripts/import-original.sh: postgres_fdw attachment, api.import_original,
detachment) runs against it three times: a dry run that writes nothing, the
import, and a second import that brings nothing twice.  Then the imported
customer logs in over HTTP with the original password and reads the balance,
top-ups, feed, invoices and subscriptions through the real routes.
"""
import json
import os
import pathlib
import shlex
import subprocess
import uuid

import pytest

from conftest import Api, check_envelope, psql

ROOT = pathlib.Path(__file__).resolve().parents[2]
AS_PG = shlex.split(os.environ.get("PAAS_TEST_AS_PG", ""))
BIN = os.environ.get("PAAS_TEST_PGBIN", "/usr/lib/postgresql/15/bin")
HOST = os.environ.get("PAAS_TEST_PGHOST", "/tmp")
PORT = os.environ.get("PAAS_TEST_PGPORT", "5432")


def pg(db, sql):
    """Runs SQL (stdin) as the cluster owner in database db."""
    subprocess.run(AS_PG + [f"{BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", PORT, "-d", db],
                   input=sql, capture_output=True, text=True, check=True)


def command(db, *flags):
    """The real command against the original in database db: (report, summary)."""
    env = dict(os.environ, PAAS_PGSOCK=HOST, PAAS_PGPORT=PORT, PAAS_DB="paas")
    r = subprocess.run(["bash", str(ROOT / "docker/scripts/import-original.sh"),
                        f"host={HOST} port={PORT} dbname={db}", *flags],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr.strip()


def paas_state():
    """Row counts of everything an import writes."""
    return psql("SELECT concat_ws(' ', (SELECT count(*) FROM paas.users), (SELECT count(*) FROM paas.services), "
                "(SELECT count(*) FROM paas.nodes), (SELECT count(*) FROM paas.ledger_entries), "
                "(SELECT count(*) FROM paas.topups), (SELECT count(*) FROM paas.subscriptions), "
                "(SELECT count(*) FROM paas.invoices), (SELECT count(*) FROM paas.import_map), "
                "(SELECT count(*) FROM paas.import_history), (SELECT count(*) FROM paas.import_instances))")


@pytest.fixture(scope="module")
def imported():
    db = "original_" + uuid.uuid4().hex[:10]
    pg("postgres", f"CREATE DATABASE {db}")
    try:
        pg(db, (ROOT / "tests/import/original_schema.sql").read_text())
        pg(db, (ROOT / "tests/import/original_seed.sql").read_text())
        # paas already has an account with the original administrator's e-mail
        psql("SELECT api.seed_admin('admin@paas.com', 'Adm1nistrator', 'Operator')")
        out = {"before": paas_state()}
        out["dry"], out["dry_summary"] = command(db, "--dry-run")
        out["after_dry"] = paas_state()
        out["run"], out["run_summary"] = command(db)
        out["after_run"] = paas_state()
        out["again"], out["again_summary"] = command(db)
        out["after_again"] = paas_state()
        yield out
    finally:
        pg("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def problems(report):
    return {(p["table"], p["id"]): p for p in report["problems"]}


def test_dry_run_writes_nothing(imported):
    assert imported["dry"]["dryRun"] is True and imported["dry"]["runId"] is None
    assert imported["after_dry"] == imported["before"]
    assert imported["dry_summary"].startswith("dry run (nothing written): ")
    # the same work as the import: the same counts and problems
    assert imported["dry"]["counts"] == imported["run"]["counts"]
    assert imported["dry"]["problems"] == imported["run"]["problems"]


def test_import_counts_and_reconciles(imported):
    run = imported["run"]
    assert run["dryRun"] is False and isinstance(run["runId"], int)
    assert run["counts"]["users"] == {"read": 6, "imported": 4, "linked": 0, "alreadyImported": 0, "skipped": 2}
    assert run["counts"]["worker_nodes"]["imported"] == 3 and run["counts"]["worker_nodes"]["skipped"] == 1
    assert run["counts"]["topup_transactions"]["imported"] == 4
    assert run["balances"]["users"] == 4 and run["balances"]["reconciled"] == 3
    assert run["balances"]["totalPaas"] == 175000 and run["balances"]["totalOriginal"] == 185000.5
    assert run["notImported"]["webhooks"] == 1
    assert psql("SELECT count(*) FROM pg_foreign_server WHERE srvname = 'original_import'") == "0", \
        "the command detaches the original when done"
    assert psql("SELECT count(*) FROM reporting.ledger_check") == "0"


def test_report_names_the_awkward_rows(imported):
    p = problems(imported["run"])
    node = p[("worker_nodes", "cnodebadmem00000000000000")]
    assert node["action"] == "skipped" and "totalMemory is not a valid quantity" in node["reason"]
    stuck = p[("topup_transactions", "ctopupstuck00000000000000")]
    assert stuck["action"] == "changed" and "imported EXPIRED" in stuck["reason"]
    mismatch = p[("user_balances", "cbalmismatch0000000000000")]
    assert mismatch["action"] == "balance_wins" and "add up to 65000" in mismatch["reason"]
    assert p[("user_balances", "cbalfraction0000000000000")]["action"] == "skipped"
    assert p[("topup_transactions", "ctopupfraction00000000000")]["action"] == "skipped"
    admin = p[("users", "cuseradmin000000000000000")]
    assert admin["action"] == "skipped" and "belongs to paas account" in admin["reason"]
    assert p[("subscriptions", "csubn8n000000000000000000")]["action"] == "changed"
    assert p[("invoices", "cinvoldformat000000000000")]["action"] == "skipped"
    assert p[("transactions", "ctxpending000000000000000")]["action"] == "history_only"


def test_second_run_imports_nothing_twice(imported):
    again = imported["again"]
    assert sum(c["imported"] for c in again["counts"].values()) == 0
    taken = sum(c["imported"] + c["linked"] for c in imported["run"]["counts"].values())
    assert taken >= 29 and sum(c["alreadyImported"] for c in again["counts"].values()) == taken
    assert imported["after_again"] == imported["after_run"]
    assert again["balances"] == imported["run"]["balances"]
    assert "0 rows imported" in imported["again_summary"]


def login(email, password):
    api = Api()
    r = check_envelope(api.post("/api/v1/auth/login", {"email": email, "password": password}), 200)
    api.token = r["data"]["accessToken"]
    return api


def test_customer_logs_in_and_reads_the_history(imported):
    api = login("customer@test.com", "Customer123!@#")
    bal = check_envelope(api.get("/api/v1/billing/balance"), 200)["data"]
    assert bal["balance"] == 125000 and bal["currency"] == "IDR"

    topups = check_envelope(api.get("/api/v1/billing/topup"), 200)["data"]["transactions"]
    by_order = {t["orderId"]: t for t in topups}
    assert by_order["TOPUP-2024-001"]["status"] == "PAID" and by_order["TOPUP-2024-001"]["amount"] == 100000
    assert by_order["TOPUP-2024-001"]["paidAt"] == "2024-01-15T10:30:00.000Z"
    assert by_order["TOPUP-2024-001"]["invoice"]["invoiceNumber"] == "INV-202401-100001"
    assert by_order["TOPUP-2024-002"]["status"] == "PAID"
    assert by_order["TOPUP-CUSERCUS-1753206462490-U5URT4"]["status"] == "EXPIRED"

    feed = check_envelope(api.get("/api/v1/billing/transactions"), 200)["data"]["transactions"]
    opening = [t for t in feed if t["referenceType"] == "OPENING_BALANCE"]
    assert len(opening) == 1 and opening[0]["amount"] == 125000 and opening[0]["direction"] == "CREDIT"
    assert opening[0]["type"] == "ADJUSTMENT"
    assert opening[0]["balanceBefore"] == 0 and opening[0]["balanceAfter"] == 125000
    paid = [t for t in feed if t["type"] == "TOPUP" and t["status"] == "SUCCESS"]
    assert sorted(t["amount"] for t in paid) == [50000, 100000]
    assert {t["date"] for t in paid} == {"2024-01-15T10:25:00.000Z", "2024-01-20T14:10:00.000Z"}

    invoices = check_envelope(api.get("/api/v1/billing/invoices"), 200)["data"]["invoices"]
    assert [i["invoiceNumber"] for i in invoices] == ["INV-202401-100001"]
    inv = check_envelope(api.get(f"/api/v1/billing/invoices/{invoices[0]['id']}"), 200)["data"]
    assert inv["topUpTransaction"]["orderId"] == "TOPUP-2024-001" and inv["amount"] == 100000

    subs = check_envelope(api.get("/api/v1/subscriptions"), 200)["data"]
    assert len(subs) == 1 and subs[0]["service"]["name"] == "n8n" and subs[0]["status"] == "EXPIRED"
    assert subs[0]["startDate"] == "2024-01-22T09:00:00.000Z"
    assert subs[0]["currentPeriodEnd"] == "2024-02-22T09:00:00.000Z"

    # the original's unified and balance transactions, as they were
    uid = check_envelope(api.get("/api/v1/auth/me"), 200)["data"]["user"]["id"]
    hist = json.loads(psql("SELECT api.billing_original_history('{\"limit\": 100}', jsonb_build_object('userId', :'a1'))",
                           uid))["data"]["transactions"]
    assert {h["id"] for h in hist} >= {"ctxpurchase00000000000000", "ctxpending000000000000000",
                                       "cbtdebit10000000000000000"}
    purchase = next(h for h in hist if h["id"] == "ctxpurchase00000000000000")
    assert (purchase["type"], purchase["amount"], purchase["date"]) == ("SERVICE_PURCHASE", 25000,
                                                                      "2024-01-22T09:00:00.000Z")

    r = Api().post("/api/v1/auth/login", {"email": "customer@test.com", "password": "Customer123!@"})
    assert check_envelope(r, 401)["code"] == "AUTH_ERROR"


def test_other_imported_users(imported):
    # a $2b$ hash (bcryptjs 3) logs in too; its balance won over its transactions
    api = login("mismatch@test.com", "Mismatch123!@#")
    assert check_envelope(api.get("/api/v1/billing/balance"), 200)["data"]["balance"] == 50000
    subs = check_envelope(api.get("/api/v1/subscriptions"), 200)["data"]
    assert [(s["service"]["name"], s["status"], s["price"]) for s in subs] == [("wordpress", "ACTIVE", 35000)]
    pending = check_envelope(api.get("/api/v1/billing/topup?status=PENDING"), 200)["data"]["transactions"]
    assert [t["orderId"] for t in pending] == ["TOPUP-CUSERMIS-1753300000000-LIVE01"]
    # the account paas already had is left as it was
    r = check_envelope(Api().post("/api/v1/auth/login", {"email": "admin@paas.com", "password": "Adm1nistrator"}), 200)
    assert r["data"]["user"]["name"] == "Operator"
