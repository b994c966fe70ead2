"""After pg_restore nothing is posted before the ledger's balances are rebuilt.

The platform accounts and their slots are install rows, never dumped:
CREATE EXTENSION makes them again with balance 0 while their postings come
back from the dump, so a posting made then would break the ledger's chain
for good.  paas.ledger_post refuses (PT503, HTTP 503) until the balances are
rebuilt, and the background worker rebuilds them at start and on each pass.

Runs after test_zz_dump_restore (file name): the database holds what the
whole suite wrote.  The first test restores a real dump into a database of
its own (no worker there: the refusal and the rebuild by hand); the second
puts the live database in the restored state while the worker is stopped,
and watches the restarted worker rebuild it.
"""
import os
import shlex
import subprocess
import tempfile

from conftest import Api, check_envelope, psql, register, wait_until

AS_PG = shlex.split(os.environ.get("PAAS_TEST_AS_PG", ""))
BIN = os.environ.get("PAAS_TEST_PGBIN", "/usr/lib/postgresql/15/bin")
CONN = ["-h", os.environ.get("PAAS_TEST_PGHOST", "/tmp"), "-p", os.environ.get("PAAS_TEST_PGPORT", "5432")]

# a credit of 1,000 to the first wallet, against the platform account 'adjustments'
POST = """SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object(
    'kind', 'adjustment', 'memo', 'after restore', 'postings', jsonb_build_array(
        jsonb_build_object('account', (SELECT min(id) FROM paas.ledger_accounts WHERE kind = 'wallet'), 'amount', 1000),
        jsonb_build_object('account', paas.platform_account('adjustments'), 'amount', -1000))))) IS NOT NULL"""


def tool(name, *args, check=True):
    return subprocess.run(AS_PG + [f"{BIN}/{name}"] + CONN + list(args), capture_output=True, text=True, check=check)


def sql(db, query, check=True):
    return tool("psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=sqlstate",
                "-d", db, "-c", query, check=check)


def test_a_restored_database_refuses_postings_until_its_balances_are_rebuilt():
    d = tempfile.mkdtemp(prefix="paas-guard-")
    os.chmod(d, 0o777)
    dump = os.path.join(d, "paas.dump")
    tool("pg_dump", "-Fc", "-f", dump, "paas")
    keep = "\n".join(line for line in tool("pg_restore", "-l", dump).stdout.splitlines() if "cron" not in line)
    lst = os.path.join(d, "list")
    with open(lst, "w") as f:
        f.write(keep + "\n")
    os.chmod(lst, 0o644)
    db = "paas_guard"
    sql("postgres", f"DROP DATABASE IF EXISTS {db}")
    sql("postgres", f"CREATE DATABASE {db}")
    try:
        tool("pg_restore", "--exit-on-error", "-L", lst, "-d", db, dump)
        assert sql(db, "SELECT paas.ledger_restore_needed()").stdout.strip() == "t"
        postings = sql(db, "SELECT count(*) FROM paas.ledger_postings").stdout.strip()
        r = sql(db, POST, check=False)
        assert r.returncode != 0 and "PT503" in r.stderr, (r.stdout, r.stderr)
        assert sql(db, "SELECT count(*) FROM paas.ledger_postings").stdout.strip() == postings, \
            "a refused posting writes nothing"
        # the rebuild (the worker's, or a DBA's by hand) makes it whole again
        assert int(sql(db, "SELECT paas.ledger_restore_balances()").stdout) > 0
        assert sql(db, "SELECT paas.ledger_restore_needed()").stdout.strip() == "f"
        assert sql(db, POST).stdout.strip() == "t"
        assert sql(db, "SELECT count(*) FROM reporting.ledger_check").stdout.strip() == "0"
        assert sql(db, "SELECT paas.ledger_restore_balances()").stdout.strip() == "0", "a second run changes nothing"
    finally:
        sql("postgres", f"DROP DATABASE IF EXISTS {db}")
        subprocess.run(["rm", "-rf", d], check=False)


def test_the_worker_rebuilds_the_balances_at_start(admin):
    user = register(Api())
    adm = Api(admin["access"])
    pid = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'paas worker'")
    assert pid
    # stop the worker (the postmaster starts it again after 5 s) and put the
    # database in the state pg_restore leaves: install rows at 0, unverified
    psql("SELECT pg_terminate_backend(:'a1'::int)", pid)
    wait_until(lambda: psql("SELECT count(*) FROM pg_stat_activity WHERE pid = :'a1'::int", pid) == "0", timeout=10)
    psql("UPDATE paas.ledger_accounts SET balance = 0, balance_verified = false WHERE kind <> 'wallet'")
    assert psql("SELECT paas.ledger_restore_needed()") == "t"
    body = {"userId": user["id"], "amount": 5000, "reason": "after the restore"}
    r = adm.post("/api/v1/admin/billing/adjustments", body)
    assert check_envelope(r, 503)["code"] == "SERVICE_UNAVAILABLE"
    # the restarted worker rebuilds before anything else
    wait_until(lambda: psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'paas worker'"
                            " AND pid <> :'a1'::int", pid) == "1", timeout=30)
    wait_until(lambda: psql("SELECT NOT paas.ledger_restore_needed()") == "t", timeout=30)
    # a new connection: httpd closes one idle for longer than its keep-alive
    # time (5 s), and the worker's restart takes about as long
    adm = Api(admin["access"])
    check_envelope(adm.post("/api/v1/admin/billing/adjustments", body), 201)
    assert psql("SELECT count(*) FROM reporting.ledger_check") == "0"
