"""The people who follow the docs: a BI analyst (paas_bi), a DBA
(paas_owner) and the operator (the superuser).

Each logs in with the command the project prints for it, run as printed
(through bash, as the operator would paste it): make role-login's psql for
the two roles (docker/scripts/role-login.sh, here against the suite's
cluster: PAAS_PGDATA, PAAS_PGSOCK, PAAS_PGPORT of tests/run.sh) and make
run's superuser hint (run.sh's su_psql_hint).  The DBA then runs every SQL
block of the "For DBAs" section of docs/operations.md as paas_owner.
"""
import os
import re
import shlex
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import psql, wait_until

ROOT = Path(__file__).resolve().parents[2]
ROLE_LOGIN = ROOT / "docker" / "scripts" / "role-login.sh"
OPERATIONS = ROOT / "docs" / "operations.md"
SECRETS = Path(os.environ.get("PAAS_PGDATA", "/nonexistent/pg")).parent / "secrets.env"
# psql as a script reads it: quiet, stop at the first error, bare values
SCRIPT = "\\set QUIET on\n\\set ON_ERROR_STOP on\n\\pset tuples_only on\n\\pset format unaligned\n"


def clean_env(**extra):
    """The environment without libpq's variables: the printed command must
    carry everything it needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(extra)
    return env


def role_login(role, **env):
    """Runs role-login.sh for role; returns (the printed psql command, all
    it printed)."""
    r = subprocess.run(["bash", str(ROLE_LOGIN), role], env=dict(os.environ, **env),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    cmds = [line.strip() for line in r.stdout.splitlines() if re.match(r"^  (\S*/)?psql ", line)]
    assert len(cmds) == 1, r.stdout
    return cmds[0], r.stdout


def run_printed(cmd, sql, timeout=60):
    """The printed command, as printed, with sql on its standard input."""
    return subprocess.run(["bash", "-c", cmd], input=sql, capture_output=True, text=True,
                          timeout=timeout, env=clean_env())


def as_role(cmd, sql, timeout=60):
    r = run_printed(cmd, SCRIPT + sql, timeout)
    return r.returncode, r.stdout.strip(), r.stderr


def secret(var):
    values = [line.split("=", 1)[1] for line in SECRETS.read_text().splitlines() if line.startswith(var + "=")]
    assert len(values) == 1, f"{var} in {SECRETS}"
    return values[0]


def passfile(cmd):
    return Path(re.search(r"passfile=(\S+?)'?$", cmd).group(1))


def db_setup(**env):
    """db_setup of docker/scripts/lib.sh, as make run calls it at every start."""
    r = subprocess.run(["bash", "-c", '. docker/scripts/lib.sh && db_setup "$PAAS_DB_PASSWORD"'],
                       cwd=ROOT, env=dict(os.environ, **env), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_bi_logs_in_with_the_printed_command_and_reads_reporting():
    cmd, out = role_login("paas_bi")
    pw = secret("PAAS_BI_PASSWORD")
    assert pw not in out, "the password is never printed"
    for f in (SECRETS, passfile(cmd)):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert pw in passfile(cmd).read_text()

    r = run_printed(cmd, "SELECT 'as:' || current_user, funded_wallets >= 0 FROM reporting.wallet_liability;\n")
    assert r.returncode == 0, r.stderr
    assert "as:paas_bi" in r.stdout

    rc, got, err = as_role(cmd, "SHOW transaction_read_only;\nSHOW statement_timeout;\n"
                                "SHOW idle_in_transaction_session_timeout;\n"
                                "SELECT count(*) >= 0 FROM reporting.revenue_monthly;\n")
    assert (rc, got.splitlines()) == (0, ["on", "5min", "10min", "t"]), err


@pytest.mark.parametrize("sql, refusal", [
    ("SELECT count(*) FROM paas.users;", "permission denied for schema paas"),
    ("SELECT count(*) FROM paas.ledger_postings;", "permission denied for schema paas"),
    ("SELECT api.status();", "permission denied for schema api"),
    ("CREATE TABLE public.bi_table (x int);", "read-only transaction"),
    ("BEGIN READ WRITE; CREATE TABLE public.bi_table (x int);", "permission denied for schema public"),
    ("BEGIN READ WRITE; INSERT INTO paas.users (email, name, password_hash) VALUES ('bi@x.test', 'B', 'x');",
     "permission denied for schema paas"),
])
def test_bi_cannot_read_or_write_anything_else(sql, refusal):
    cmd, _ = role_login("paas_bi")
    rc, _, err = as_role(cmd, sql + "\n")
    assert rc != 0 and refusal in err, err


def test_bi_statement_timeout_and_connection_limit_come_from_db_setup():
    cmd, _ = role_login("paas_bi")
    assert psql("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'paas_bi'") == "10"
    db_setup(PAAS_BI_STATEMENT_TIMEOUT="1s", PAAS_BI_CONNECTION_LIMIT="1")
    holder = None
    try:
        t0 = time.monotonic()
        rc, _, err = as_role(cmd, "SELECT pg_sleep(20);\n")
        assert rc != 0 and "canceling statement due to statement timeout" in err, err
        assert time.monotonic() - t0 < 15

        # one session open (idle): a second one is refused
        holder = subprocess.Popen(["bash", "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, text=True, env=clean_env())
        wait_until(lambda: psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'paas_bi'") == "1")
        rc, _, err = as_role(cmd, "SELECT 1;\n")
        assert rc != 0 and 'too many connections for role "paas_bi"' in err, err
    finally:
        if holder:
            holder.stdin.close()
            holder.wait(timeout=30)
        db_setup()
    rc, got, err = as_role(cmd, "SHOW statement_timeout;\n")
    assert (rc, got) == (0, "5min"), err
    assert psql("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'paas_bi'") == "10"


def test_role_login_keeps_the_password_and_rotates_it_on_demand():
    cmd, _ = role_login("paas_bi")
    pw1 = secret("PAAS_BI_PASSWORD")
    assert role_login("paas_bi")[0] == cmd and secret("PAAS_BI_PASSWORD") == pw1, "run again: the same login"

    cmd2, _ = role_login("paas_bi", ROTATE="1")
    pw2 = secret("PAAS_BI_PASSWORD")
    assert pw2 != pw1 and pw2 in passfile(cmd2).read_text()
    rc, got, err = as_role(cmd2, "SELECT current_user;\n")
    assert (rc, got) == (0, "paas_bi"), err

    with tempfile.NamedTemporaryFile("w", suffix=".pgpass", delete=False) as f:
        f.write(passfile(cmd2).read_text().replace(pw2, pw1))
    try:
        os.chmod(f.name, 0o600)
        rc, _, err = as_role(cmd2.replace(str(passfile(cmd2)), f.name), "SELECT 1;\n")
        assert rc != 0 and "password authentication failed" in err, err
    finally:
        os.unlink(f.name)


@pytest.mark.parametrize("role, says", [
    ("paas_api", "PAAS_DB_PASSWORD"),
    ("postgres", "usage: make role-login ROLE=paas_owner|paas_bi"),
    ("", "usage: make role-login ROLE=paas_owner|paas_bi"),
])
def test_role_login_refuses_other_roles(role, says):
    r = subprocess.run(["bash", str(ROLE_LOGIN), role], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and says in r.stderr, r.stderr


def test_superuser_hint_of_make_run_connects():
    hint = subprocess.run(["bash", "-c", ". docker/scripts/run.sh && su_psql_hint"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    sock = os.environ["PAAS_PGSOCK"]
    assert f"-h {sock} " in hint and sock.startswith("/")
    r = run_printed(hint, "SELECT 'as:' || current_user;\n")
    assert r.returncode == 0 and "as:postgres" in r.stdout, (hint, r.stderr)


def dba_blocks():
    """The SQL blocks of docs/operations.md's "For DBAs" section."""
    text = OPERATIONS.read_text()
    section = text.split("\n## For DBAs", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(blocks) >= 4
    return "".join(blocks)


def test_dba_follows_operations_md_as_paas_owner():
    cmd, out = role_login("paas_owner")
    assert "paas_owner may log in" in out
    saved = psql("SELECT run_every FROM paas.job WHERE name = 'prune_sessions'"), \
        psql("SELECT grace_period FROM paas.subscription_settings")
    cron_before = psql("SELECT schedule FROM cron.job WHERE jobname = 'paas-renewals'")
    runs_before = int(psql("SELECT count(*) FROM paas.job_run WHERE job = 'renewals'"))
    try:
        rc, got, err = as_role(cmd, dba_blocks())
        assert rc == 0, err
        assert psql("SELECT run_every || ' ' || customized FROM paas.job WHERE name = 'prune_sessions'") == \
            "02:00:00 true"
        assert psql("SELECT enabled FROM paas.job WHERE name IN ('prune_login_failures', 'renewals')") == "t\nt"
        assert psql("SELECT schedule FROM cron.job WHERE jobname = 'paas-renewals'") == "*/10 * * * *"
        assert psql("SELECT grace_period FROM paas.subscription_settings") == "5 days"
        assert psql("SELECT count(*) FROM paas.job_run WHERE job = 'renewals'") == str(runs_before + 1)
        assert psql("SELECT ok FROM paas.job_run WHERE job = 'renewals' ORDER BY id DESC LIMIT 1") == "t"
        # what api.subscriptions_renewals_job tells the DBA
        rc, got, err = as_role(cmd, "SELECT concat_ws(' ', r #>> '{job,schedule}', r #>> '{job,jobName}',\n"
                                    "  r ->> 'enabled', r #>> '{runs,0,job}', r #>> '{runs,0,ok}')\n"
                                    "  FROM api.subscriptions_renewals_job(3) r;\n")
        assert (rc, got) == (0, "*/10 * * * * paas-renewals true renewals true"), err
    finally:
        psql("UPDATE paas.job SET run_every = :'a1' WHERE name = 'prune_sessions'", saved[0])
        psql("UPDATE paas.subscription_settings SET grace_period = :'a1'", saved[1])
        if cron_before:
            psql("SELECT api.subscriptions_schedule_renewals(:'a1')", cron_before)
        else:
            psql("SELECT cron.unschedule('paas-renewals') FROM cron.job WHERE jobname = 'paas-renewals'")


def test_every_api_function_the_operations_docs_name_is_the_dbas():
    names = sorted(set(re.findall(r"\bapi\.([a-z][a-z_]*)", OPERATIONS.read_text())))
    assert {"run_renewals", "subscriptions_schedule_renewals", "subscriptions_renewals_job",
            "seed_admin", "workers_join_token_add"} <= set(names)
    for name in names:
        got = psql("SELECT count(*) || ' ' || count(*) FILTER (WHERE has_function_privilege('paas_owner', p.oid, "
                   "'EXECUTE')) FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace AND p.proname = :'a1'",
                   name)
        n, executable = got.split()
        assert int(n) >= 1 and n == executable, (name, got)
