"""Renewal runs are jobs: each run of api.run_renewals, by a DBA or started
by pg_cron, is recorded in paas.job_run as job "renewals" and listed by
GET /admin/jobs/runs?job=renewals, a failed one too.

The failure is a real one: a trigger on paas.subscription_charges (installed
for the test only) refuses the charge of one due subscription, inside the
run's work, which then rolls back.  The pg_cron run is pg_cron's: the job is
scheduled every minute and the test waits for pg_cron to start it.
"""
import json
import uuid

import pytest

from conftest import Api, check_envelope, psql, wait_until

PRICE = 7000


def due_subscription():
    """A user with 10,000 IDR and a subscription of 7,000 whose first period
    has ended; returns (subscription id, user id)."""
    tag = uuid.uuid4().hex[:10]
    user, service, sub = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    psql("""
INSERT INTO paas.users (id, email, name, password_hash) VALUES (:'a1', :'a4' || '@renewal-runs.test', 'Renewal Runs', 'x');
INSERT INTO paas.services (id, name, display_name, description, docker_image, monthly_price)
VALUES (:'a2', 'rr-' || :'a4', 'Renewal Runs', 'service of the renewal run test', 'nginx:1', 7000);
SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup',
	'postings', jsonb_build_array(
		jsonb_build_object('account', paas.wallet_account(:'a1'), 'amount', 10000),
		jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -10000)))));
INSERT INTO paas.subscriptions (id, user_id, service_id, price, anchor_at, current_period_start, current_period_end)
VALUES (:'a3', :'a1', :'a2', 7000, now() - interval '1 month 5 minutes', now() - interval '1 month 5 minutes',
		paas.subscription_bound(now() - interval '1 month 5 minutes', 1));
""", user, service, sub, tag)
    return sub, user


def period_and_balance(sub, user):
    return psql("SELECT s.period_no || ' ' || paas.wallet_balance(:'a2') FROM paas.subscriptions s WHERE s.id = :'a1'",
                sub, user)


def last_renewal_id():
    return int(psql("SELECT coalesce(max(id), 0) FROM paas.job_run WHERE job = 'renewals'"))


@pytest.fixture
def adm(admin):
    return Api(admin["access"])


@pytest.fixture
def failing_charge():
    """Installs a trigger that refuses the charge of the subscriptions the
    test names (in table rr_refused); removes it afterwards."""
    psql("""
CREATE TABLE public.rr_refused (subscription_id uuid PRIMARY KEY);
CREATE FUNCTION public.rr_refuse_charge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM public.rr_refused r WHERE r.subscription_id = NEW.subscription_id) THEN
		RAISE EXCEPTION 'injected renewal failure';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER rr_refuse_charge BEFORE INSERT ON paas.subscription_charges
	FOR EACH ROW EXECUTE FUNCTION public.rr_refuse_charge();
""")
    yield lambda sub: psql("INSERT INTO public.rr_refused VALUES (:'a1')", sub)
    psql("""
DROP TRIGGER IF EXISTS rr_refuse_charge ON paas.subscription_charges;
DROP FUNCTION IF EXISTS public.rr_refuse_charge();
DROP TABLE IF EXISTS public.rr_refused;
""")


@pytest.fixture
def cron_every_minute():
    """The pg_cron job paas-renewals, every minute, for the test."""
    before = psql("SELECT schedule FROM cron.job WHERE jobname = 'paas-renewals'")
    job = json.loads(psql("SELECT api.subscriptions_schedule_renewals('* * * * *')"))
    yield job["jobId"]
    if before:
        psql("SELECT api.subscriptions_schedule_renewals(:'a1')", before)
    else:
        psql("SELECT cron.unschedule('paas-renewals') FROM cron.job WHERE jobname = 'paas-renewals'")


def test_a_dba_run_is_recorded_and_listed(adm):
    sub, user = due_subscription()
    before = last_renewal_id()
    out = json.loads(psql("SET ROLE paas_owner; SELECT api.run_renewals()"))
    assert out["ok"] is True and out["renewed"] >= 1 and out["charged"] >= PRICE
    assert period_and_balance(sub, user) == "2 3000"

    body = check_envelope(adm.get("/api/v1/admin/jobs/runs?job=renewals&limit=1"), 200)
    run = body["data"][0]
    assert run["id"] > before and run["job"] == "renewals" and run["ok"] is True and run["error"] is None
    assert run["detail"]["renewed"] == out["renewed"] and run["detail"]["charged"] == out["charged"]
    assert run["ms"] >= 0 and run["detail"]["ms"] >= 0

    jobs = check_envelope(adm.get("/api/v1/admin/jobs"), 200)["data"]["jobs"]
    renewals = next(j for j in jobs if j["name"] == "renewals")
    assert (renewals["runner"], renewals["function"], renewals["runEverySeconds"], renewals["nextRunAt"]) == \
        ("pg_cron", "api.run_renewals", None, None)
    assert renewals["lastRun"]["id"] == run["id"]
    assert all(j["runner"] == "worker" and j["runEverySeconds"] > 0 for j in jobs if j["name"] != "renewals")


def test_a_failed_run_started_by_pg_cron_is_recorded(adm, failing_charge, cron_every_minute):
    sub, user = due_subscription()
    failing_charge(sub)
    before = last_renewal_id()
    jobs = check_envelope(adm.get("/api/v1/admin/jobs"), 200)["data"]["jobs"]
    assert next(j for j in jobs if j["name"] == "renewals")["schedule"] == "* * * * *"

    # pg_cron starts the job at the next full minute
    run_id = wait_until(lambda: last_renewal_id() > before and last_renewal_id(), timeout=150, interval=1)
    row = json.loads(psql("SELECT to_jsonb(r) FROM paas.job_run r WHERE id = :'a1'", str(run_id)))
    assert row["ok"] is False and "injected renewal failure" in row["error"]
    assert row["detail"]["ok"] is False and row["detail"]["sqlstate"] == "P0001"
    # its work rolled back: not renewed, nothing charged
    assert period_and_balance(sub, user) == "1 10000"
    # what pg_cron saw: a command that ran (the outcome is paas.job_run's)
    cron_run = wait_until(lambda: psql(
        "SELECT d.status || ' ' || d.return_message FROM cron.job_run_details d, paas.job_run r "
        "WHERE d.jobid = :'a1' AND r.id = :'a2' AND d.end_time IS NOT NULL "
        "AND d.start_time BETWEEN r.started_at - interval '50 seconds' AND r.started_at + interval '10 seconds' "
        "ORDER BY d.runid DESC LIMIT 1", str(cron_every_minute), str(run_id)), timeout=30)
    assert cron_run == "succeeded SELECT 1"

    body = check_envelope(adm.get("/api/v1/admin/jobs/runs?job=renewals&ok=false&limit=5"), 200)
    assert body["data"][0]["id"] == run_id and "injected renewal failure" in body["data"][0]["error"]

    # without the fault the next run (this one, or pg_cron's) renews it
    psql("DELETE FROM public.rr_refused")
    out = json.loads(psql("SET ROLE paas_owner; SELECT api.run_renewals()"))
    assert out["ok"] is True
    assert period_and_balance(sub, user) == "2 3000"
