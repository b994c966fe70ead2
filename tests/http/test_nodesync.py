"""The node registry follows the Kubernetes API (bgworker/nodesync.c against
the stand-in tests/fakes/kubeapi.py of tests/run.sh): nodes appear without
any agent; Ready=False in the API is NOT_READY here and True is ACTIVE
again; spec.unschedulable set with the real kubectl is the registry's
cordon; a node deleted in the API is INACTIVE with its history kept, both
from the watch and from a list after a restart of the worker; allocations
are the requests of the pods bound to the node."""
import os
import re
import subprocess
import uuid

import pytest
import requests

from conftest import SERVER_LOG, Api, check_envelope, psql, read_server_log, wait_until

KUBE_URL = os.environ.get("PAAS_TEST_KUBE_URL", "")
KUBE_DIR = os.environ.get("PAAS_TEST_KUBE_DIR", "")
KUBECTL = os.environ.get("PAAS_TEST_KUBECTL", "/usr/bin/kubectl")

pytestmark = pytest.mark.skipif(not KUBE_URL, reason="needs the Kubernetes stand-in of tests/run.sh")

# one sync period is a third of paas.node_grace_period (at most 30 s); the
# watch brings a change at once, so this is only "it answers at all"
PERIOD = 30


def fake(method, path, body=None):
    r = requests.request(method, KUBE_URL + path, json=body, timeout=30,
                         verify=os.path.join(KUBE_DIR, "tls", "ca.crt"))
    assert r.status_code < 300, (method, path, r.status_code, r.text)
    return r.json() if r.text else None


def worker_top_memory(pid):
    """Bytes used in TopMemoryContext of backend "pid", as it logs them on
    pg_log_backend_memory_contexts() (PostgreSQL's own accounting)."""
    before = len(read_server_log())
    assert psql("SELECT pg_log_backend_memory_contexts(:'a1'::int)", pid) == "t"
    mark = f"[{pid}] LOG:  level: 0; TopMemoryContext: "

    def used():
        for line in read_server_log()[before:].splitlines():
            if mark in line:
                return int(re.search(r"; (\d+) used", line).group(1))
        return None
    return wait_until(used, timeout=10)


def kube(method, path, body=None, content_type="application/json"):
    token = open(os.path.join(KUBE_DIR, "accepted")).read().split()[0]
    return requests.request(method, KUBE_URL + path, json=body, timeout=30,
                            headers={"Authorization": "Bearer " + token, "Content-Type": content_type},
                            verify=os.path.join(KUBE_DIR, "tls", "ca.crt"))


def kubectl(*args):
    env = dict(os.environ, KUBECONFIG=os.path.join(KUBE_DIR, "kubeconfig"))
    r = subprocess.run([KUBECTL, "--cache-dir", os.path.join(KUBE_DIR, "kubectl-cache")] + list(args),
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


@pytest.fixture(scope="module")
def adm(admin):
    return Api(admin["access"])


def worker(adm, name):
    r = adm.get(f"/api/v1/workers/{name}")
    return check_envelope(r, 200)["data"] if r.status_code == 200 else None


def transitions(adm, name):
    return check_envelope(adm.get(f"/api/v1/workers/{name}/transitions"), 200)["data"]["transitions"]


@pytest.fixture
def node(adm):
    name = "sync-" + uuid.uuid4().hex[:8]
    fake("POST", "/_fake/nodes", {"name": name, "cpu": "6", "memory": "24Gi", "pods": "50",
                                  "labels": {"paas.dev/test": "nodesync"}})
    yield name
    requests.delete(KUBE_URL + f"/_fake/nodes/{name}", timeout=30, verify=os.path.join(KUBE_DIR, "tls", "ca.crt"))


def test_node_appears_from_the_api_without_an_agent(adm, node):
    w = wait_until(lambda: worker(adm, node), timeout=PERIOD)
    assert w["status"] == "ACTIVE" and w["isReady"] is True and w["source"] == "kubernetes"
    assert w["capacity"]["cpuMillicores"] == 6000
    assert w["capacity"]["memoryBytes"] == 24 * 2**30
    assert w["allocatable"]["pods"] == 50
    assert w["labels"]["paas.dev/test"] == "nodesync"
    assert w["kubeletVersion"] and w["kubeUid"]
    assert any(a["type"] == "InternalIP" for a in w["addresses"])
    assert psql("SELECT token_hash IS NULL FROM paas.nodes WHERE name = :'a1'", node) == "t"   # no agent
    reg = transitions(adm, node)
    assert any(t["actor"] == "kubernetes" and t["event"] == "register" for t in reg), reg


def test_not_ready_in_the_api_is_not_ready_here(adm, node):
    wait_until(lambda: (worker(adm, node) or {}).get("status") == "ACTIVE", timeout=PERIOD)
    fake("POST", f"/_fake/nodes/{node}/ready", {"status": "False"})
    w = wait_until(lambda: (lambda x: x if x and x["status"] == "NOT_READY" else None)(worker(adm, node)),
                   timeout=PERIOD)
    assert w["isReady"] is False and w["isSchedulable"] is False
    ready = [c for c in w["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "False"
    t = [x for x in transitions(adm, node) if x["to"] == "NOT_READY"]
    assert t and t[0]["actor"] == "kubernetes", transitions(adm, node)
    fake("POST", f"/_fake/nodes/{node}/ready", {"status": "Unknown"})
    fake("POST", f"/_fake/nodes/{node}/ready", {"status": "True"})
    wait_until(lambda: (worker(adm, node) or {}).get("status") == "ACTIVE", timeout=PERIOD)


def test_kubectl_cordon_is_the_registry_cordon(adm, node):
    wait_until(lambda: worker(adm, node), timeout=PERIOD)
    kubectl("cordon", node)
    w = wait_until(lambda: (lambda x: x if x and x["unschedulable"] else None)(worker(adm, node)),
                   timeout=PERIOD)
    assert w["isSchedulable"] is False and w["status"] == "ACTIVE"
    assert any(t["event"] == "cordon" and t["actor"] == "kubernetes" for t in transitions(adm, node))
    kubectl("uncordon", node)
    wait_until(lambda: (worker(adm, node) or {}).get("isSchedulable") is True, timeout=PERIOD)


def test_node_deleted_in_the_api_becomes_inactive_and_is_kept(adm, node):
    wait_until(lambda: worker(adm, node), timeout=PERIOD)
    fake("DELETE", f"/_fake/nodes/{node}")
    w = wait_until(lambda: (lambda x: x if x and x["status"] == "INACTIVE" else None)(worker(adm, node)),
                   timeout=PERIOD)
    assert w["source"] == "agent"           # no longer known to the API
    hist = transitions(adm, node)
    assert any(t["actor"] == "kubernetes" and "deleted from the cluster" in (t.get("reason") or "")
               for t in hist), hist


def test_node_deleted_while_the_worker_is_down_is_found_by_the_list(adm, node):
    wait_until(lambda: worker(adm, node), timeout=PERIOD)
    pid = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'paas node sync'")
    assert pid
    # SIGSTOP is not ours to send to the postmaster's children; the worker
    # restarts 2 s after a termination, the deletion happens meanwhile
    psql("SELECT pg_terminate_backend(:'a1'::int)", pid)
    fake("DELETE", f"/_fake/nodes/{node}")
    wait_until(lambda: (worker(adm, node) or {}).get("status") == "INACTIVE", timeout=PERIOD)
    new = wait_until(lambda: psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'paas node sync'"),
                     timeout=PERIOD)
    assert new != pid


def test_a_list_of_several_pages_is_read_whole():
    """1,100 nodes are three pages of the list (500 a page, the next one
    asked for while the current one is applied): after a restart of the
    worker, its list finds the node deleted meanwhile and keeps every other
    node ACTIVE (a page not read would leave its nodes unseen, and the end
    of the list makes unseen nodes INACTIVE)."""
    made = fake("POST", "/_fake/nodes", {"count": 1100, "cpu": "2", "memory": "4Gi", "pods": "10",
                                         "labels": {"paas.dev/test": "paging"}})["created"]
    names = "{" + ",".join(made) + "}"
    active = "SELECT count(*) FROM paas.nodes WHERE name = ANY(:'a1'::text[]) AND status = 'ACTIVE'"
    try:
        wait_until(lambda: psql(active, names) == "1100", timeout=PERIOD)
        last = made[-1]
        pid = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'paas node sync'")
        psql("SELECT pg_terminate_backend(:'a1'::int)", pid)
        fake("DELETE", f"/_fake/nodes/{last}")
        wait_until(lambda: psql("SELECT status FROM paas.nodes WHERE name = :'a1'", last) == "INACTIVE",
                   timeout=PERIOD)
        wait_until(lambda: psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'paas node sync'")
                   not in ("", pid), timeout=PERIOD)
        assert psql(active, names) == "1099"
        assert psql("SELECT count(*) FROM paas.nodes WHERE name = ANY(:'a1'::text[]) AND status <> 'ACTIVE'",
                    names) == "1"
        if SERVER_LOG:
            # the pages' memory went with them: the new worker's own context
            # holds a few MB, not the ~15 MB each page of 500 Nodes costs
            top = worker_top_memory(psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'paas node sync'"))
            assert top < 16 * 2**20, f"TopMemoryContext of the node sync after its list: {top} bytes used"
    finally:
        for n in made:
            requests.delete(KUBE_URL + f"/_fake/nodes/{n}", timeout=30, verify=os.path.join(KUBE_DIR, "tls", "ca.crt"))
        psql("DELETE FROM paas.node_transitions WHERE node_name = ANY(:'a1'::text[]);"
             " DELETE FROM paas.nodes WHERE name = ANY(:'a1'::text[])", names)


def test_allocations_are_the_requests_of_the_bound_pods(adm, node):
    wait_until(lambda: (worker(adm, node) or {}).get("status") == "ACTIVE", timeout=PERIOD)
    ns = "sync-" + uuid.uuid4().hex[:6]
    assert kube("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": ns}}).status_code == 201
    try:
        for i, (cpu, mem) in enumerate([("250m", "64Mi"), ("1", "1Gi")]):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": ns},
                   "spec": {"nodeName": node, "containers": [
                       {"name": "a", "image": "example/a:1", "resources": {"requests": {"cpu": cpu, "memory": mem}}},
                       {"name": "b", "image": "example/b:1"}]}}
            r = kube("POST", f"/api/v1/namespaces/{ns}/pods", pod)
            assert r.status_code == 201, r.text
        w = wait_until(lambda: (lambda x: x if x and x["currentPods"] == 2 else None)(worker(adm, node)),
                       timeout=PERIOD + 10)
        assert w["allocation"]["cpuMillicores"] == 1250
        assert w["allocation"]["memoryBytes"] == 64 * 2**20 + 2**30
        assert w["allocatedCPU"] == "1250m"
        # the capacity check of a sale offers what these pods (not paas's) leave on the node
        assert psql("SELECT foreign_cpu_m || ' ' || foreign_memory FROM paas.nodes WHERE name = :'a1'", node) \
            == "1250 %d" % (64 * 2**20 + 2**30)
        # kubectl agrees on where they run
        wide = kubectl("get", "pods", "-n", ns, "-o", "wide")
        assert wide.count(node) == 2, wide
        # a pod that goes away frees its requests
        assert kube("DELETE", f"/api/v1/namespaces/{ns}/pods/p1?gracePeriodSeconds=0").status_code in (200, 202)
        w = wait_until(lambda: (lambda x: x if x and x["currentPods"] == 1 else None)(worker(adm, node)),
                       timeout=PERIOD + 10)
        assert w["allocation"]["cpuMillicores"] == 250
    finally:
        kube("DELETE", f"/api/v1/namespaces/{ns}")
