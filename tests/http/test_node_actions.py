"""Actions on nodes through the Kubernetes API (sql/parts/32_node_actions.sql,
extension/node_actions.c, bgworker/nodedrain.c) against the stand-in
tests/fakes/kubeapi.py of tests/run.sh, checked with the real kubectl:
PATCH /workers/:nodeId/schedulable cordons and uncordons the Node in the API
before the registry, an API refusal is a 502 that changes nothing, a drain
evicts the node's pods through the Eviction API (a PodDisruptionBudget makes
it wait, a timeout ends it incomplete), MAINTENANCE cordons and drains and
back to ACTIVE uncordons; every action is audited with the admin's id."""
import json
import os
import subprocess
import uuid

import pytest
import requests

from conftest import Api, check_envelope, psql, wait_until

KUBE_URL = os.environ.get("PAAS_TEST_KUBE_URL", "")
KUBE_DIR = os.environ.get("PAAS_TEST_KUBE_DIR", "")
KUBECTL = os.environ.get("PAAS_TEST_KUBECTL", "/usr/bin/kubectl")

pytestmark = pytest.mark.skipif(not KUBE_URL, reason="needs the Kubernetes stand-in of tests/run.sh")

SYNC = 30       # the watch brings a change at once; this is only "it answers at all"
DRAIN = 30      # passes every second, 5 s after a refused eviction


def verify():
    return os.path.join(KUBE_DIR, "tls", "ca.crt")


def fake(method, path, body=None):
    r = requests.request(method, KUBE_URL + path, json=body, timeout=30, verify=verify())
    assert r.status_code < 300, (method, path, r.status_code, r.text)
    return r.json() if r.text else None


def kube(method, path, body=None, content_type="application/json"):
    token = open(os.path.join(KUBE_DIR, "accepted")).read().split()[0]
    return requests.request(method, KUBE_URL + path, json=body, timeout=30, verify=verify(),
                            headers={"Authorization": "Bearer " + token, "Content-Type": content_type})


def kubectl(*args):
    env = dict(os.environ, KUBECONFIG=os.path.join(KUBE_DIR, "kubeconfig"))
    r = subprocess.run([KUBECTL, "--cache-dir", os.path.join(KUBE_DIR, "kubectl-cache")] + list(args),
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def node_row(name):
    """The STATUS column of `kubectl get nodes` for name."""
    rows = [line.split() for line in kubectl("get", "nodes").splitlines()[1:]]
    return {r[0]: r[1] for r in rows}[name]


def api_node(name):
    return json.loads(kubectl("get", "node", name, "-o", "json"))


@pytest.fixture(scope="module")
def adm(admin):
    return Api(admin["access"])


def worker(adm, name):
    r = adm.get(f"/api/v1/workers/{name}")
    return check_envelope(r, 200)["data"] if r.status_code == 200 else None


def transitions(adm, name):
    return check_envelope(adm.get(f"/api/v1/workers/{name}/transitions"), 200)["data"]["transitions"]


def drain_of(adm, name):
    return check_envelope(adm.get(f"/api/v1/workers/{name}/drain"), 200)["data"]


@pytest.fixture
def node(adm):
    name = "act-" + uuid.uuid4().hex[:8]
    fake("POST", "/_fake/nodes", {"name": name, "cpu": "8", "memory": "32Gi", "pods": "50"})
    wait_until(lambda: (worker(adm, name) or {}).get("status") == "ACTIVE", timeout=SYNC)
    yield name
    requests.delete(KUBE_URL + "/_fake/fail", timeout=30, verify=verify())
    requests.delete(KUBE_URL + f"/_fake/nodes/{name}", timeout=30, verify=verify())


@pytest.fixture
def ns():
    name = "act-" + uuid.uuid4().hex[:6]
    assert kube("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": name}}).status_code == 201
    yield name
    kube("DELETE", f"/api/v1/namespaces/{name}")


def add_pod(ns, node, name, labels=None, owner=None, annotations=None):
    md = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        md["ownerReferences"] = [owner]
    if annotations:
        md["annotations"] = annotations
    r = kube("POST", f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": md,
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "example/app:1"}]}})
    assert r.status_code == 201, r.text


def pods_on(ns, node):
    """Pod names on node, as `kubectl get pods -o wide` prints them."""
    lines = kubectl("get", "pods", "-n", ns, "-o", "wide").splitlines()
    if not lines:
        return set()
    head = lines[0].split()
    col = head.index("NODE")
    return {line.split()[0] for line in lines[1:] if line.split()[col] == node}


def running(ns, names):
    items = kube("GET", f"/api/v1/namespaces/{ns}/pods").json()["items"]
    phases = {p["metadata"]["name"]: p.get("status", {}).get("phase") for p in items}
    return all(phases.get(n) == "Running" for n in names)


def test_cordon_and_uncordon_go_to_the_api(adm, admin, node):
    r = adm.patch(f"/api/v1/workers/{node}/schedulable", {"schedulable": False, "reason": "disk swap"})
    d = check_envelope(r, 200)["data"]
    assert d["unschedulable"] is True and d["isSchedulable"] is False
    # in the API at once: the answer came after the API's
    assert api_node(node)["spec"].get("unschedulable") is True
    assert node_row(node) == "Ready,SchedulingDisabled"
    t = [x for x in transitions(adm, node) if x["event"] == "cordon"]
    assert t and t[0]["actor"] == "admin:" + admin["id"] and t[0]["reason"] == "disk swap", t
    r = adm.patch(f"/api/v1/workers/{node}/schedulable", {"schedulable": True})
    assert check_envelope(r, 200)["data"]["isSchedulable"] is True
    assert "unschedulable" not in api_node(node)["spec"]
    assert node_row(node) == "Ready"
    t = [x for x in transitions(adm, node) if x["event"] == "uncordon"]
    assert t and t[0]["actor"] == "admin:" + admin["id"], t
    # the sync, seeing the API's change, keeps the registry as it is
    wait_until(lambda: psql("SELECT kube_resource_version FROM paas.nodes WHERE name = :'a1'", node)
               == api_node(node)["metadata"]["resourceVersion"], timeout=SYNC)
    assert worker(adm, node)["isSchedulable"] is True


def test_api_refusal_is_502_and_changes_nothing(adm, node):
    before = psql("SELECT cordoned || ' ' || updated_at FROM paas.nodes WHERE name = :'a1'", node)
    audits = len(transitions(adm, node))
    fake("POST", "/_fake/fail", {"count": 1, "code": 403, "reason": "Forbidden", "method": "PATCH",
                                 "path": f"/api/v1/nodes/{node}",
                                 "message": f'nodes "{node}" is forbidden: User "paas" cannot patch resource'})
    r = adm.patch(f"/api/v1/workers/{node}/schedulable", {"schedulable": False})
    body = check_envelope(r, 502)
    assert body["code"] == "CLUSTER_ERROR"
    assert body["details"][0]["status"] == 403 and body["details"][0]["reason"] == "Forbidden"
    assert "cannot patch resource" in body["details"][0]["message"] and "cannot patch" in body["message"]
    assert psql("SELECT cordoned || ' ' || updated_at FROM paas.nodes WHERE name = :'a1'", node) == before
    assert len(transitions(adm, node)) == audits
    assert "unschedulable" not in api_node(node)["spec"]
    # a 500 of the API alike
    fake("POST", "/_fake/fail", {"count": 1, "code": 500, "method": "PATCH", "path": f"/api/v1/nodes/{node}"})
    assert check_envelope(adm.patch(f"/api/v1/workers/{node}/schedulable", {"schedulable": False}), 502)["details"][0]["status"] == 500
    assert psql("SELECT cordoned FROM paas.nodes WHERE name = :'a1'", node) == "f"


def test_node_the_api_no_longer_has_answers_502(adm):
    # a row the registry believes the API knows (kube_seen_at), whose Node is gone from the
    # API before the sync saw it go: the PATCH is a 404 of the API, the answer a 502
    name = "gone-" + uuid.uuid4().hex[:8]
    check_envelope(adm.post("/api/v1/workers", {"name": name, "hostname": f"{name}.cluster.local",
                                                "ipAddress": "192.168.1.11", "cpuCores": 4,
                                                "cpuArchitecture": "x86_64", "totalMemory": "8Gi",
                                                "totalStorage": "100Gi"}), 201)
    psql("UPDATE paas.nodes SET kube_seen_at = now() WHERE name = :'a1'", name)
    before = psql("SELECT cordoned || ' ' || updated_at FROM paas.nodes WHERE name = :'a1'", name)
    r = adm.patch(f"/api/v1/workers/{name}/schedulable", {"schedulable": False})
    body = check_envelope(r, 502)
    assert body["code"] == "CLUSTER_ERROR"
    assert body["details"][0]["status"] == 404 and body["details"][0]["reason"] == "NotFound"
    assert f'nodes "{name}" not found' in body["details"][0]["message"]
    assert psql("SELECT cordoned || ' ' || updated_at FROM paas.nodes WHERE name = :'a1'", name) == before
    assert check_envelope(adm.post(f"/api/v1/workers/{name}/drain", {}), 502)["code"] == "CLUSTER_ERROR"
    assert adm.get(f"/api/v1/workers/{name}/drain").status_code == 404
    adm.delete(f"/api/v1/workers/{name}")


def test_agent_only_nodes_keep_the_registry_cordon(adm):
    name = "agent-" + uuid.uuid4().hex[:8]
    r = adm.post("/api/v1/workers", {"name": name, "hostname": f"{name}.cluster.local", "ipAddress": "192.168.1.10",
                                     "cpuCores": 4, "cpuArchitecture": "x86_64", "totalMemory": "8Gi",
                                     "totalStorage": "100Gi"})
    check_envelope(r, 201)
    seq = fake("GET", "/_fake/requests")["last"]
    assert check_envelope(adm.patch(f"/api/v1/workers/{name}/schedulable", {"schedulable": False}), 200)["data"]["unschedulable"] is True
    sent = [x for x in fake("GET", f"/_fake/requests?since={seq}")["items"] if name in x["path"]]
    assert sent == []
    r = adm.post(f"/api/v1/workers/{name}/drain", {})
    assert check_envelope(r, 409)
    adm.delete(f"/api/v1/workers/{name}")


def test_drain_evicts_waits_for_a_pdb_and_skips_daemonsets(adm, admin, node, ns):
    add_pod(ns, node, "web-1", {"app": "web"})
    add_pod(ns, node, "web-2", {"app": "web"})
    r = kube("POST", f"/apis/apps/v1/namespaces/{ns}/daemonsets", {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
            "metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}})
    assert r.status_code == 201, r.text
    add_pod(ns, node, "agent", {"app": "agent"},
            owner={"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": r.json()["metadata"]["uid"],
                   "controller": True, "blockOwnerDeletion": True})
    add_pod(ns, node, "static", {"app": "static"}, annotations={"kubernetes.io/config.mirror": "abc"})
    assert kube("POST", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}).status_code == 201
    wait_until(lambda: running(ns, ["web-1", "web-2"]), timeout=30)
    assert pods_on(ns, node) == {"web-1", "web-2", "agent", "static"}

    r = adm.post(f"/api/v1/workers/{node}/drain", {"timeoutSeconds": 120, "reason": "kernel update"})
    d = check_envelope(r, 202)["data"]
    assert d["state"] in ("pending", "running") and d["statusUrl"] == f"/api/v1/workers/{d['nodeId']}/drain"
    assert d["requestedBy"] == "admin:" + admin["id"]
    # cordoned in the API before the answer
    assert node_row(node) == "Ready,SchedulingDisabled"
    # the same request again is the same drain
    assert check_envelope(adm.post(f"/api/v1/workers/{node}/drain", {}), 202)["data"]["id"] == d["id"]

    # the budget (2 of 2) refuses: 429, reported, retried
    d = wait_until(lambda: (lambda x: x if x["blocked"] == 2 else None)(drain_of(adm, node)), timeout=DRAIN)
    assert d["state"] == "running"
    blocked = {p["name"]: p for p in d["remaining"]}
    assert blocked["web-1"]["status"] == 429 and "disruption budget" in blocked["web-1"]["message"]
    assert {s["name"]: s["why"] for s in d["skipped"]} == {"agent": "DaemonSet-managed", "static": "mirror pod"}
    assert "429" in d["lastError"] and d["retryAt"]
    assert pods_on(ns, node) == {"web-1", "web-2", "agent", "static"}

    # the budget allows it: the drain completes
    r = kube("PATCH", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/web",
             {"spec": {"minAvailable": 0}}, "application/merge-patch+json")
    assert r.status_code == 200, r.text
    d = wait_until(lambda: (lambda x: x if x["state"] == "complete" else None)(drain_of(adm, node)), timeout=DRAIN)
    assert {e["name"] for e in d["evicted"]} == {"web-1", "web-2"} and d["remaining"] == [] and d["finishedAt"]
    assert pods_on(ns, node) == {"agent", "static"}
    t = transitions(adm, node)
    assert any(x["event"] == "drain" and x["actor"] == "admin:" + admin["id"] and "kernel update" in x["reason"]
               for x in t), t
    assert any(x["event"] == "drain_complete" and "2 pods evicted" in x["reason"] for x in t), t
    evictions = [x for x in fake("GET", "/_fake/requests")["items"]
                 if x["method"] == "POST" and x["path"].endswith("/eviction") and f"/namespaces/{ns}/" in x["path"]]
    assert {x["status"] for x in evictions} == {429, 201}
    assert not any("/pods/agent/" in x["path"] or "/pods/static/" in x["path"] for x in evictions)
    # still cordoned: a drain leaves the node cordoned, as kubectl drain does
    assert node_row(node) == "Ready,SchedulingDisabled"


def test_drain_timeout_lists_the_pods_left(adm, node, ns):
    add_pod(ns, node, "db-1", {"app": "db"})
    assert kube("POST", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db"},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "db"}}}}).status_code == 201
    wait_until(lambda: running(ns, ["db-1"]), timeout=30)
    check_envelope(adm.post(f"/api/v1/workers/{node}/drain", {"timeoutSeconds": 3}), 202)
    d = wait_until(lambda: (lambda x: x if x["state"] == "incomplete" else None)(drain_of(adm, node)), timeout=DRAIN)
    assert [(p["name"], p["state"]) for p in d["remaining"]] == [("db-1", "blocked")]
    assert pods_on(ns, node) == {"db-1"}
    t = [x for x in transitions(adm, node) if x["event"] == "drain_incomplete"]
    assert t and "db-1" in t[0]["reason"], transitions(adm, node)
    # uncordon: schedulable again, in the API too
    check_envelope(adm.patch(f"/api/v1/workers/{node}/schedulable", {"schedulable": True}), 200)
    assert node_row(node) == "Ready"


def test_maintenance_cordons_and_drains_and_active_uncordons(adm, admin, node, ns):
    add_pod(ns, node, "job-1")
    wait_until(lambda: running(ns, ["job-1"]), timeout=30)
    r = adm.patch(f"/api/v1/workers/{node}/status", {"status": "MAINTENANCE", "reason": "rack move"})
    d = check_envelope(r, 200)["data"]
    assert d["status"] == "MAINTENANCE"
    assert d["drain"]["cause"] == "maintenance" and d["drain"]["requestedBy"] == "admin:" + admin["id"]
    assert d["drain"]["statusUrl"] == f"/api/v1/workers/{d['id']}/drain"
    assert node_row(node) == "Ready,SchedulingDisabled"
    d = wait_until(lambda: (lambda x: x if x["state"] == "complete" else None)(drain_of(adm, node)), timeout=DRAIN)
    assert d["cause"] == "maintenance" and [e["name"] for e in d["evicted"]] == ["job-1"]
    assert pods_on(ns, node) == set()
    r = adm.patch(f"/api/v1/workers/{node}/status", {"status": "ACTIVE"})
    d = check_envelope(r, 200)["data"]
    assert d["isSchedulable"] is True and d["drain"] is None
    assert node_row(node) == "Ready"
    me = "admin:" + admin["id"]
    t = [(x["event"], x["actor"]) for x in transitions(adm, node)]
    for ev in ("admin_maintenance", "cordon", "drain", "admin_activate", "uncordon"):
        assert (ev, me) in t, t


def test_maintenance_of_a_cordoned_node_keeps_the_cordon(adm, node):
    check_envelope(adm.patch(f"/api/v1/workers/{node}/schedulable", {"schedulable": False}), 200)
    check_envelope(adm.patch(f"/api/v1/workers/{node}/status", {"status": "MAINTENANCE"}), 200)
    wait_until(lambda: drain_of(adm, node)["state"] == "complete", timeout=DRAIN)
    r = adm.patch(f"/api/v1/workers/{node}/status", {"status": "ACTIVE"})
    assert check_envelope(r, 200)["data"]["isSchedulable"] is False
    assert node_row(node) == "Ready,SchedulingDisabled"


def test_maintenance_refused_by_the_api_changes_nothing(adm, node):
    fake("POST", "/_fake/fail", {"count": 1, "code": 500, "method": "PATCH", "path": f"/api/v1/nodes/{node}"})
    r = adm.patch(f"/api/v1/workers/{node}/status", {"status": "MAINTENANCE"})
    assert check_envelope(r, 502)["code"] == "CLUSTER_ERROR"
    w = worker(adm, node)
    assert w["status"] == "ACTIVE" and w["isSchedulable"] is True
    assert adm.get(f"/api/v1/workers/{node}/drain").status_code == 404
