"""GET /metrics (the metrics listener, PAAS_METRICS_LISTEN): the Prometheus
text passes `promtool check metrics` (Debian's prometheus package) and
carries what an operator watches: per-route latency histograms labelled by
the route's path template, request counts by status class, the database
pool, Snap call outcomes, the jobs and renewal runs, the provisioner and
mailer queues (api.metrics_snapshot), and the build.  A failing database
part leaves httpd's own metrics intact (paas_metrics_db_up 0)."""
import re
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import METRICS, Api, check_envelope, psql, register, wait_until
from test_billing import snap_mode, topup  # noqa: F401  (fixture)

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(path="/metrics"):
    r = requests.get(METRICS + path, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4"
    return r.text


def samples(text):
    """{(name, frozenset of label pairs): value} of a scrape."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(s, name, **labels):
    return s.get((name, frozenset(labels.items())))


def promtool(text):
    exe = shutil.which("promtool")
    assert exe, "promtool (Debian package prometheus) is a test dependency: docker/scripts/install-deps.sh"
    p = subprocess.run([exe, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).strip()


def test_the_scrape_passes_promtool(admin):
    api = Api(admin["access"])
    api.get("/api/v1/status")
    api.get("/api/v1/no-such-route")
    api.get(f"/api/v1/workers/{uuid.uuid4()}")
    text = scrape()
    rc, problems = promtool(text)
    assert rc == 0 and problems == "", problems
    # the API's spelling for admins is the same document
    r = api.get("/api/v1/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain; version=0.0.4"
    rc, problems = promtool(r.text)
    assert rc == 0 and problems == "", problems


def test_latency_histogram_per_route_template(admin):
    api = Api(admin["access"])
    node = str(uuid.uuid4())
    before = samples(scrape())
    key = dict(method="GET", route="/api/v1/workers/:nodeId")
    n0 = value(before, "paas_http_request_duration_seconds_count", **key) or 0
    c0 = value(before, "paas_http_requests_total", status="4xx", **key) or 0
    for _ in range(3):
        check_envelope(api.get(f"/api/v1/workers/{node}"), 404)
    text = scrape()
    assert node not in text, "the raw path is never a label"
    s = samples(text)
    assert value(s, "paas_http_request_duration_seconds_count", **key) == n0 + 3
    assert value(s, "paas_http_requests_total", status="4xx", **key) == c0 + 3
    buckets = sorted(((float(dict(lab)["le"]), v) for (name, lab), v in s.items()
                      if name == "paas_http_request_duration_seconds_bucket"
                      and {("method", "GET"), ("route", "/api/v1/workers/:nodeId")} <= lab),
                     key=lambda b: b[0])
    les = [b[0] for b in buckets]
    assert les[-1] == float("inf") and 0.005 in les and 10.0 in les
    counts = [b[1] for b in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert counts[-1] == value(s, "paas_http_request_duration_seconds_count", **key)
    assert value(s, "paas_http_request_duration_seconds_sum", **key) > 0
    # the pseudo-route of requests that match no route; no other label appears
    Api().get(f"/api/v1/nothing-here/{node}")
    s = samples(scrape())
    assert value(s, "paas_http_request_duration_seconds_count", method="", route="unmatched") >= 1
    routes = {dict(lab)["route"] for (name, lab), _ in s.items() if name == "paas_http_requests_total"}
    templates = set(psql("SELECT string_agg(DISTINCT regexp_replace(path, '[{]([A-Za-z]+)[}]', ':\\1', 'g'), ' ') "
                         "FROM api.routes()").split())
    assert routes and routes <= templates | {"unmatched"}, routes - templates


def test_build_info_carries_the_version(api):
    version = check_envelope(api.get("/api/v1/status"), 200)["data"]["version"]
    assert version == psql("SELECT extversion FROM pg_extension WHERE extname = 'paas'")
    s = samples(scrape())
    assert value(s, "paas_build_info", version=version) == 1
    assert [k for k in s if k[0] == "paas_build_info"] == [("paas_build_info", frozenset({("version", version)}))]


def test_pool_and_hashing_gauges():
    s = samples(scrape())
    size = value(s, "paas_db_pool_size")
    assert size >= 1
    assert value(s, "paas_db_pool_waiting") >= 0 and value(s, "paas_db_pool_waits_total") >= 0
    assert 1 <= value(s, "paas_http_hash_slots") <= size
    assert 0 <= value(s, "paas_http_hash_slots_in_use") <= value(s, "paas_http_hash_slots")
    # a connection is in use only while it carries a call: idle, none is
    wait_until(lambda: value(samples(scrape()), "paas_db_pool_in_use") == 0, timeout=30)
    # more concurrent calls than connections, then idle again: every
    # connection handed out came back, no thread is left waiting
    w0 = value(samples(scrape()), "paas_db_pool_waits_total")
    with ThreadPoolExecutor(int(size) * 3) as ex:
        rs = list(ex.map(lambda i: Api().get("/api/v1/status"), range(int(size) * 12)))
    assert all(r.status_code == 200 for r in rs)
    wait_until(lambda: value(samples(scrape()), "paas_db_pool_in_use") == 0, timeout=30)
    s = samples(scrape())
    assert value(s, "paas_db_pool_waiting") == 0
    assert value(s, "paas_db_pool_waits_total") >= w0


def test_snap_outcomes(snap_mode):  # noqa: F811
    api = Api(register(Api())["access"])
    s0 = samples(scrape())
    ok0 = value(s0, "paas_midtrans_snap_requests_total", outcome="ok")
    err0 = value(s0, "paas_midtrans_snap_requests_total", outcome="http_error")
    n0 = value(s0, "paas_midtrans_snap_duration_seconds_count")
    topup(api, 20000)
    snap_mode("error500")
    check_envelope(api.post("/api/v1/billing/topup", {"amount": 15000}), 502)
    s = samples(scrape())
    assert value(s, "paas_midtrans_snap_requests_total", outcome="ok") == ok0 + 1
    assert value(s, "paas_midtrans_snap_requests_total", outcome="http_error") == err0 + 1
    assert value(s, "paas_midtrans_snap_duration_seconds_count") == n0 + 2
    assert value(s, "paas_midtrans_snap_requests_total", outcome="transport_error") is not None


def test_jobs_renewals_and_queues_from_the_database():
    psql("SELECT api.run_renewals()")
    s = wait_until(lambda: (lambda s: s if value(s, "paas_job_last_run_timestamp_seconds", job="heartbeat")
                            else None)(samples(scrape())), timeout=60)
    assert value(s, "paas_metrics_db_up") == 1
    assert value(s, "paas_worker_up") == 1
    jobs = psql("SELECT string_agg(name, ' ' ORDER BY name) FROM paas.job").split()
    for job in jobs:
        assert value(s, "paas_job_enabled", job=job) in (0, 1), job
        assert value(s, "paas_job_runs_24h", job=job, outcome="ok") is not None, job
        assert value(s, "paas_job_runs_24h", job=job, outcome="failed") is not None, job
    # the renewals' last run, as paas.job_run recorded it
    last = psql("SELECT extract(epoch FROM finished_at), (detail ->> 'examined') FROM paas.job_run "
                "WHERE job = 'renewals' ORDER BY started_at DESC LIMIT 1").split("|")
    assert value(s, "paas_job_last_run_timestamp_seconds", job="renewals") == pytest.approx(float(last[0]), abs=1e-3)
    assert value(s, "paas_job_last_run_success", job="renewals") == 1
    assert value(s, "paas_job_last_run_duration_seconds", job="renewals") >= 0
    assert value(s, "paas_renewal_last_run_success") == 1
    assert value(s, "paas_renewal_last_run_subscriptions", result="examined") == float(last[1])
    for r in ("renewed", "charged", "to_grace", "suspended", "expired"):
        assert value(s, "paas_renewal_last_run_subscriptions", result=r) is not None, r
    assert value(s, "paas_subscriptions_in_grace") is not None
    # queues
    for kind in ("instance", "namespace"):
        assert value(s, "paas_provisioner_pending", kind=kind) >= value(s, "paas_provisioner_due", kind=kind) >= 0
    assert value(s, "paas_mailer_outbox_due") >= 0
    assert value(s, "paas_mailer_outbox_oldest_due_age_seconds") >= 0


def test_a_database_failure_keeps_the_httpd_metrics():
    Api().get("/api/v1/status")
    psql("REVOKE EXECUTE ON FUNCTION api.metrics_snapshot() FROM paas_api")
    try:
        text = scrape()
        rc, problems = promtool(text)
        assert rc == 0 and problems == "", problems
        s = samples(text)
        assert value(s, "paas_metrics_db_up") == 0
        assert value(s, "paas_http_requests_total", method="GET", route="/api/v1/status", status="2xx") >= 1
        assert value(s, "paas_db_pool_size") >= 1
        assert [k for k in s if k[0] == "paas_build_info"]
        assert not [k for k in s if k[0].startswith("paas_job_")]
    finally:
        psql("GRANT EXECUTE ON FUNCTION api.metrics_snapshot() TO paas_api")
    assert value(samples(scrape()), "paas_metrics_db_up") == 1
