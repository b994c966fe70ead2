"""docker/k8s/*.yaml, the manifests of the whole system, against Kubernetes' published schemas.

Every document of every file is validated by tests/kube/validate.mjs (npm kubernetes-models,
the models generated from Kubernetes' OpenAPI spec); none may be skipped (a kind without a
published model, or a misspelt kind, fails).  A broken copy of each file must fail the same
check, so that the check is shown to catch what it is there for.  Then what the schemas cannot
know: the images carry the Makefile's version, no secret value is written into a manifest,
the workloads run as non-root with probes and resources, and the database is a StatefulSet
with its volume template behind a headless Service.  No cluster is needed (kubectl apply
--dry-run=client would ask a server for the resource types).
"""
import copy
import glob
import json
import os
import re

import pytest
import yaml

from conftest import ROOT
from test_schema import npm, validate  # noqa: F401  (npm is a fixture)

FILES = sorted(glob.glob(os.path.join(ROOT, "docker", "k8s", "*.yaml")))


def version():
    return re.search(r"^EXTVERSION\s*=\s*(\S+)", open(os.path.join(ROOT, "Makefile")).read(), re.M).group(1)


def docs(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]


def all_docs():
    return [d for f in FILES for d in docs(f)]


def pod_specs():
    for d in all_docs():
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            yield d, d["spec"]["template"]["spec"]


def test_the_system_is_all_there():
    names = {os.path.basename(f) for f in FILES}
    assert {"paas.yaml", "paas-db.yaml", "paas-external-db.yaml", "paas-agent.yaml"} <= names, names
    kinds = {(d["kind"], d["metadata"]["name"]) for d in all_docs()}
    assert {("StatefulSet", "paas-db"), ("Deployment", "paas-httpd"), ("DaemonSet", "paas-node-agent"),
            ("ServiceAccount", "paas-provisioner"), ("ClusterRole", "paas-provisioner"),
            ("ClusterRoleBinding", "paas-provisioner"), ("ServiceAccount", "paas-httpd"),
            ("ClusterRole", "paas-httpd"), ("Service", "paas-db"), ("Service", "paas-httpd"),
            ("ConfigMap", "paas-db")} <= kinds, kinds


def manifest_check(path):
    """(passed, output): every document validated, none invalid, none skipped."""
    rc, summary, out = validate("--verbose", path)
    ok = rc == 0 and summary is not None and summary["failed"] == 0 and summary["skipped"] == 0 \
        and summary["checked"] == len(docs(path))
    return ok, out


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_every_document_is_valid(npm, path):
    ok, out = manifest_check(path)
    assert ok, out


def broken_copies(path):
    """(what, documents) with one document made invalid in a way the published schema forbids."""
    ds = docs(path)
    for i, d in enumerate(ds):
        b = copy.deepcopy(ds)
        kind = d["kind"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            c = b[i]["spec"]["template"]["spec"]["containers"][0]
            c["ports"] = [{"name": "http", "containerPort": "eighty"}]
            yield f"{kind} with a string port", b
            b = copy.deepcopy(ds)
            del b[i]["spec"]["selector"]
            yield f"{kind} without selector", b
            b = copy.deepcopy(ds)
            del b[i]["spec"]["template"]["spec"]["containers"][0]["name"]
            yield f"{kind} with a nameless container", b
        elif kind == "Service":
            b[i]["spec"]["ports"][0]["port"] = "5432"
            yield "Service with a string port", b
        elif kind == "ClusterRole":
            b[i]["rules"][0]["verbs"] = "list"
            yield "ClusterRole with verbs not a list", b
        elif kind == "ClusterRoleBinding":
            del b[i]["roleRef"]
            yield "ClusterRoleBinding without roleRef", b
        elif kind == "ConfigMap":
            b[i]["data"]["port"] = 5432
            yield "ConfigMap with a number value", b
    b = copy.deepcopy(ds)
    b[0]["kind"] = b[0]["kind"] + "z"
    yield "a misspelt kind", b


BROKEN = [(os.path.basename(f), what, b) for f in FILES for what, b in broken_copies(f)]


@pytest.mark.parametrize("name,what,documents", BROKEN, ids=[f"{n}: {w}" for n, w, _ in BROKEN])
def test_a_broken_manifest_fails(npm, tmp_path, name, what, documents):
    broken = tmp_path / name
    broken.write_text(yaml.safe_dump_all(documents))
    ok, out = manifest_check(str(broken))
    assert not ok, (what, out)
    assert "FAIL " in out or '"skipped":1' in out, (what, out)


def test_images_carry_the_version():
    v = version()
    images = [c["image"] for _, spec in pod_specs()
              for c in spec.get("initContainers", []) + spec["containers"]]
    assert len(images) >= 4, images
    for image in images:
        name, _, tag = image.rpartition("/")[2].partition(":")
        assert name in ("paas-db", "paas-httpd", "paas-agent") and tag == v, image
    for d in all_docs():
        label = d["metadata"].get("labels", {}).get("app.kubernetes.io/version")
        assert label in (None, v), (d["kind"], d["metadata"]["name"], label)


def test_no_secret_value_is_written_down():
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.I)
    for d, spec in pod_specs():
        for c in spec.get("initContainers", []) + spec["containers"]:
            for e in c.get("env", []):
                if secretish.search(e["name"]) and not e["name"].endswith("_FILE"):
                    assert "valueFrom" in e and "secretKeyRef" in e["valueFrom"], (d["metadata"]["name"], e)
                if "value" in e:
                    assert "password=" not in e["value"] or "password=$(" in e["value"], e
    for d in all_docs():
        if d["kind"] == "Secret":
            # only one the token controller fills in
            assert d["type"] == "kubernetes.io/service-account-token" and "data" not in d \
                and "stringData" not in d, d


def test_workloads_run_as_non_root_with_probes_and_resources():
    for d, spec in pod_specs():
        name = d["metadata"]["name"]
        for c in spec["containers"]:
            sc = {**spec.get("securityContext", {}), **c.get("securityContext", {})}
            assert sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) > 0, (name, sc)
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            assert {"requests", "limits"} <= set(c["resources"]), name
            if d["kind"] != "DaemonSet":  # the agent serves nothing to probe
                assert "livenessProbe" in c and "readinessProbe" in c, name


def route_paths():
    paths = set()
    for f in glob.glob(os.path.join(ROOT, "httpd", "routes_*.inc")):
        paths |= set(re.findall(r'\{"GET", "([^"]+)", ACCESS_PUBLIC', open(f).read()))
    return paths


def test_gateway_probes_the_real_routes_and_exposes_metrics():
    httpd = next(spec for d, spec in pod_specs() if d["metadata"]["name"] == "paas-httpd")["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in httpd["ports"]}
    env = {e["name"]: e for e in httpd["env"]}
    assert env["PAAS_HTTP_LISTEN"]["value"].endswith(":%d" % ports["http"])
    assert env["PAAS_METRICS_LISTEN"]["value"].endswith(":%d" % ports["metrics"])
    ready = httpd["readinessProbe"]["httpGet"]
    assert ready["port"] == "http" and ready["path"] in route_paths() and "health" in ready["path"], ready
    # liveness on the metrics listener (httpd/metrics.c serves GET /metrics there), which
    # answers without the database
    live = httpd["livenessProbe"]["httpGet"]
    assert live == {"path": "/metrics", "port": "metrics"}, live
    assert 'strcmp(path, "/metrics")' in open(os.path.join(ROOT, "httpd", "metrics.c")).read()
    svc = next(d for d in all_docs() if d["kind"] == "Service" and d["metadata"]["name"] == "paas-httpd")
    assert {p["targetPort"] for p in svc["spec"]["ports"]} == {"http", "metrics"}


def test_database_is_a_stateful_set_behind_a_headless_service():
    db = docs(os.path.join(ROOT, "docker", "k8s", "paas-db.yaml"))
    sts = next(d for d in db if d["kind"] == "StatefulSet")
    svc = next(d for d in db if d["kind"] == "Service")
    assert svc["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    claim = sts["spec"]["volumeClaimTemplates"][0]
    mounts = {m["name"]: m["mountPath"] for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/postgresql/data"
    assert sts["spec"]["template"]["spec"]["serviceAccountName"] == "paas-provisioner"
    # both database files tell the gateway where the database is, with the same keys
    cms = [d for f in ("paas-db.yaml", "paas-external-db.yaml")
           for d in docs(os.path.join(ROOT, "docker", "k8s", f)) if d["kind"] == "ConfigMap"]
    assert [c["metadata"]["name"] for c in cms] == ["paas-db", "paas-db"]
    assert set(cms[0]["data"]) == set(cms[1]["data"]) == {"host", "port", "sslmode"}
    assert cms[0]["data"]["host"] == "%s.%s.svc" % (svc["metadata"]["name"], svc["metadata"]["namespace"])
    httpd = next(spec for d, spec in pod_specs() if d["metadata"]["name"] == "paas-httpd")["containers"][0]
    url = next(e["value"] for e in httpd["env"] if e["name"] == "PAAS_DB_URL")
    for key in ("host", "port", "sslmode"):
        assert f"{key}=$(PAAS_DB_{key.upper()})" in url, url
    refs = {e["valueFrom"]["configMapKeyRef"]["key"] for e in httpd["env"]
            if "configMapKeyRef" in e.get("valueFrom", {})}
    assert refs == {"host", "port", "sslmode"}


def test_bindings_name_existing_accounts_and_roles():
    ds = all_docs()
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in ds if d["kind"] == "ServiceAccount"}
    roles = {d["metadata"]["name"] for d in ds if d["kind"] == "ClusterRole"}
    for d in ds:
        if d["kind"] == "ClusterRoleBinding":
            assert d["roleRef"]["name"] in roles, d
            for s in d["subjects"]:
                assert (s["namespace"], s["name"]) in accounts, d
    for d, spec in pod_specs():
        assert (d["metadata"]["namespace"], spec["serviceAccountName"]) in accounts, d["metadata"]["name"]
    json.dumps(ds)  # plain data only (no YAML-only types)


def test_agent_reaches_the_gateway_service():
    agent = next(spec for d, spec in pod_specs() if d["kind"] == "DaemonSet")["containers"][0]
    url = next(e["value"] for e in agent["env"] if e["name"] == "PAAS_URL")
    m = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc:(\d+)", url)
    assert m, url
    svc = next(d for d in all_docs() if d["kind"] == "Service" and d["metadata"]["name"] == m.group(1))
    assert svc["metadata"]["namespace"] == m.group(2)
    assert int(m.group(3)) in {p["port"] for p in svc["spec"]["ports"] if p["name"] == "http"}, url
