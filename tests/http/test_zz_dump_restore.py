"""pg_dump keeps every row that matters.

Runs last (file name) so that the database holds what the whole suite
wrote: accounts, catalog, nodes, ledger, top-ups, invoices, subscriptions.
The database is dumped with pg_dump, restored into a new database with
pg_restore (pg_cron's objects left out: pg_cron lives in one database), and
every table of schema paas is compared, row count and content hash.  The
background worker and late notifications keep writing meanwhile, so the dump
and the source's fingerprints read one exported snapshot.
"""
import os
import shlex
import subprocess
import tempfile

import pytest

AS_PG = shlex.split(os.environ.get("PAAS_TEST_AS_PG", ""))
BIN = os.environ.get("PAAS_TEST_PGBIN", "/usr/lib/postgresql/15/bin")
CONN = ["-h", os.environ.get("PAAS_TEST_PGHOST", "/tmp"), "-p", os.environ.get("PAAS_TEST_PGPORT", "5432")]

# Rows the install script creates, which a restore makes anew (sql/parts/90_dump.sql).
NOT_DUMPED = {
    "job": None, "job_run": None, "subscription_settings": None,
    "ledger_accounts": "kind = 'wallet'",
}


def run(tool, *args, stdin=None):
    return subprocess.run(AS_PG + [f"{BIN}/{tool}"] + CONN + list(args), input=stdin,
                          capture_output=True, text=True, check=True).stdout


def sql(db, query):
    return run("psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", query).strip()


def fingerprint_sql(table, where):
    w = f"WHERE {where}" if where else ""
    return (f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
            f"FROM paas.{table} t {w}")


def fingerprint(db, table, where):
    return sql(db, fingerprint_sql(table, where))


class Snapshot:
    """A psql session holding a REPEATABLE READ transaction whose snapshot
    is exported for pg_dump; queries in it see exactly what was dumped."""

    def __init__(self):
        self.p = subprocess.Popen(AS_PG + [f"{BIN}/psql"] + CONN + ["-X", "-q", "-At", "-d", "paas"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ask("BEGIN ISOLATION LEVEL REPEATABLE READ")
        self.name = self.ask("SELECT pg_export_snapshot()")

    def ask(self, query):
        self.p.stdin.write(query + ";\nSELECT '--end--';\n")
        self.p.stdin.flush()
        lines = []
        while True:
            line = self.p.stdout.readline()
            assert line, "psql ended"
            if line.strip() == "--end--":
                return "\n".join(lines).strip()
            lines.append(line.rstrip("\n"))

    def close(self):
        self.p.stdin.write("ROLLBACK;\n\\q\n")
        self.p.stdin.flush()
        self.p.wait(timeout=30)


# The settings of the job registry that a DBA changes (paas.job: enabled,
# run_every), compared apart: its rows are the install's, with the
# customized ones put back by the restore (sql/parts/90_dump.sql).
JOB_SETTINGS = ("SELECT string_agg(concat_ws(':', name, runner, fn, run_every, enabled, customized), ',' "
                "ORDER BY name) FROM paas.job")


@pytest.fixture
def changed_jobs():
    """Job settings a DBA changed before the dump (as paas_owner)."""
    saved = sql("paas", "SELECT string_agg(format('UPDATE paas.job SET run_every = %L, enabled = %L "
                        "WHERE name = %L;', run_every, enabled, name), ' ') FROM paas.job")
    sql("paas", "SET ROLE paas_owner; "
                "UPDATE paas.job SET run_every = '2 hours 7 minutes' WHERE name = 'prune_sessions'; "
                "UPDATE paas.job SET enabled = false WHERE name IN ('prune_login_failures', 'renewals')")
    yield
    sql("paas", saved)


@pytest.fixture
def snap():
    s = Snapshot()
    yield s
    s.close()


@pytest.fixture
def restored(snap):
    d = tempfile.mkdtemp(prefix="paas-dump-")
    os.chmod(d, 0o777)
    dump = os.path.join(d, "paas.dump")
    run("pg_dump", "-Fc", f"--snapshot={snap.name}", "-f", dump, "paas")
    listing = run("pg_restore", "-l", dump)
    keep = "\n".join(line for line in listing.splitlines() if "cron" not in line)
    lst = os.path.join(d, "list")
    with open(lst, "w") as f:
        f.write(keep + "\n")
    os.chmod(lst, 0o644)
    sql("postgres", "DROP DATABASE IF EXISTS paas_restore")
    sql("postgres", "CREATE DATABASE paas_restore")
    try:
        run("pg_restore", "--exit-on-error", "-L", lst, "-d", "paas_restore", dump)
        yield "paas_restore"
    finally:
        sql("postgres", "DROP DATABASE IF EXISTS paas_restore")
        subprocess.run(["rm", "-rf", d], check=False)


def test_dump_and_restore_keep_every_table(changed_jobs, snap, restored):
    tables = snap.ask("SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class "
                      "WHERE relnamespace = 'paas'::regnamespace AND relkind = 'r'").split()
    assert {"users", "ledger_postings", "invoices", "subscriptions", "nodes"} <= set(tables)
    assert int(snap.ask("SELECT count(*) FROM paas.ledger_postings")) > 0
    for t in tables:
        if t in NOT_DUMPED and NOT_DUMPED[t] is None:
            continue
        where = NOT_DUMPED.get(t)
        assert fingerprint(restored, t, where) == snap.ask(fingerprint_sql(t, where)), t

    # the job settings a DBA changed come back, on the install's rows
    jobs = snap.ask(JOB_SETTINGS)
    assert "prune_sessions:worker:paas.job_prune_sessions:02:07:00:t:t" in jobs
    assert "renewals:pg_cron:api.run_renewals:f:t" in jobs
    assert sql(restored, JOB_SETTINGS) == jobs

    # platform balances come back from the postings; every invariant holds
    sql(restored, "SELECT paas.ledger_restore_balances()")
    balances = "SELECT string_agg(id || '=' || balance, ',' ORDER BY id) FROM paas.ledger_accounts"
    assert sql(restored, balances) == snap.ask(balances)
    assert sql(restored, "SELECT count(*) FROM reporting.ledger_check") == "0"
    # sequences continue after the restored rows
    assert int(sql(restored, "SELECT last_value FROM paas.ledger_entry_id_seq")) >= \
        int(sql(restored, "SELECT coalesce(max(id), 1) FROM paas.ledger_entries"))
