"""The real kubectl against the stand-in: it is believed only as far as kubectl agrees with it."""
import json
import os
import time

import pytest

from conftest import HERE, Fake

MANIFEST = os.path.join(HERE, "manifests", "app.yaml")
PDB = os.path.join(HERE, "manifests", "pdb.yaml")
NS = "tenant-a"


@pytest.fixture(scope="module")
def kfake(tmp_path_factory):
    # pods become Ready 0.3 s after binding, so rollout status really has to wait
    f = Fake(tmp_path_factory.mktemp("kubectl"), "--nodes", "3", "--ready-delay", "0.3")
    yield f
    f.stop()


@pytest.fixture(scope="module")
def app(kfake):
    out = kfake.kubectl("apply", "--server-side", "-f", MANIFEST).stdout
    kfake.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout=20s")
    return out


def pods(f, selector="app=web"):
    items = json.loads(f.kubectl("get", "pods", "-n", NS, "-l", selector, "-o", "json").stdout)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def test_version_and_discovery(kfake):
    v = json.loads(kfake.kubectl("version", "-o", "json").stdout)
    assert v["serverVersion"]["gitVersion"] == "v1.32.4"
    res = kfake.kubectl("api-resources", "-o", "name").stdout.split()
    for r in ("namespaces", "nodes", "pods", "secrets", "persistentvolumeclaims", "services", "resourcequotas",
              "limitranges", "events", "deployments.apps", "replicasets.apps", "ingresses.networking.k8s.io",
              "networkpolicies.networking.k8s.io", "poddisruptionbudgets.policy"):
        assert r in res
    # kubectl used the aggregated discovery document (one request for /api, one for /apis)
    seen = [r for r in kfake.requests_since()["items"] if r["path"] in ("/api", "/apis")]
    assert seen and all(r["status"] == 200 for r in seen)


def test_get_nodes_and_namespaces(kfake):
    out = kfake.kubectl("get", "nodes").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [line.split()[:2] for line in out[1:]] == [["node-%d" % i, "Ready"] for i in (1, 2, 3)]
    wide = kfake.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert "INTERNAL-IP" in wide[0] and "CONTAINER-RUNTIME" in wide[0]
    assert "10.0.0.11" in wide[1] and "containerd://" in wide[1]
    ns = kfake.kubectl("get", "ns").stdout
    for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert n in ns
    nodes = json.loads(kfake.kubectl("get", "nodes", "-o", "json").stdout)
    assert nodes["kind"] == "List" and len(nodes["items"]) == 3
    assert nodes["items"][0]["status"]["allocatable"]["cpu"] == "4"


def test_legacy_discovery(start_fake):
    f = start_fake("--nodes", "2", "--discovery", "legacy")
    assert "node-2" in f.kubectl("get", "nodes").stdout
    paths = {r["path"] for r in f.requests_since()["items"]}
    # without the aggregated document kubectl walks every group version
    assert {"/api", "/apis", "/api/v1", "/apis/apps/v1", "/apis/policy/v1"} <= paths


def test_apply_server_side_manifest(kfake, app):
    lines = app.splitlines()
    assert lines == [
        "namespace/tenant-a serverside-applied", "resourcequota/compute serverside-applied",
        "limitrange/defaults serverside-applied", "secret/web-env serverside-applied",
        "persistentvolumeclaim/web-data serverside-applied", "deployment.apps/web serverside-applied",
        "service/web serverside-applied", "ingress.networking.k8s.io/web serverside-applied",
        "networkpolicy.networking.k8s.io/web serverside-applied"]
    patches = [r for r in kfake.requests_since()["items"] if r["method"] == "PATCH"]
    assert patches and all(r["contentType"] == "application/apply-patch+yaml" for r in patches)
    assert all("fieldManager=kubectl" in r["query"] for r in patches)
    # kubectl before 1.21 prints managedFields always and has no flag for it
    # (Debian's kubernetes-client is 1.20)
    flag = ["--show-managed-fields"] if "--show-managed-fields" in kfake.kubectl("get", "--help").stdout else []
    d = json.loads(kfake.kubectl("get", "deploy", "web", "-n", NS, "-o", "json", *flag).stdout)
    assert d["metadata"]["generation"] == 1
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"           # defaulted by the server
    assert d["status"]["observedGeneration"] == 1
    assert d["status"]["readyReplicas"] == 2 and d["status"]["availableReplicas"] == 2
    conds = {c["type"]: c for c in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in d["metadata"]["managedFields"])
    # the LimitRange defaults reached the pods, the quota counts them, the PVC is bound
    p = pods(kfake)[0]
    assert p["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                                                        "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert p["status"]["qosClass"] == "Burstable"
    assert p["metadata"]["annotations"]["kubernetes.io/limit-ranger"].startswith("LimitRanger plugin set: ")
    q = json.loads(kfake.kubectl("get", "quota", "compute", "-n", NS, "-o", "json").stdout)
    assert q["status"]["used"]["pods"] == "2" and q["status"]["used"]["requests.cpu"] == "200m"
    pvc = json.loads(kfake.kubectl("get", "pvc", "web-data", "-n", NS, "-o", "json").stdout)
    assert pvc["status"]["phase"] == "Bound" and pvc["status"]["capacity"]["storage"] == "1Gi"
    sec = json.loads(kfake.kubectl("get", "secret", "web-env", "-n", NS, "-o", "json").stdout)
    assert "stringData" not in sec and sec["data"]["DATABASE_URL"]
    svc = json.loads(kfake.kubectl("get", "svc", "web", "-n", NS, "-o", "json").stdout)
    assert svc["spec"]["clusterIP"].startswith("10.96.") and svc["spec"]["ports"][0]["protocol"] == "TCP"


def test_apply_again_is_a_noop(kfake, app):
    before = json.loads(kfake.kubectl("get", "deploy", "web", "-n", NS, "-o", "json").stdout)["metadata"]
    kfake.kubectl("apply", "--server-side", "-f", MANIFEST)
    after = json.loads(kfake.kubectl("get", "deploy", "web", "-n", NS, "-o", "json").stdout)["metadata"]
    assert after["resourceVersion"] == before["resourceVersion"]
    assert after["generation"] == before["generation"]


def test_client_side_apply_and_edit_by_patch(kfake):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "csa", "namespace": "default"},
          "data": {"a": "1", "b": "2"}}
    assert "configmap/csa created" in kfake.kubectl("apply", "-f", "-", input=json.dumps(cm)).stdout
    del cm["data"]["b"]
    cm["data"]["a"] = "3"
    assert "configmap/csa configured" in kfake.kubectl("apply", "-f", "-", input=json.dumps(cm)).stdout
    got = json.loads(kfake.kubectl("get", "cm", "csa", "-o", "json").stdout)
    assert got["data"] == {"a": "3"}             # the strategic merge patch removed b
    assert "kubectl.kubernetes.io/last-applied-configuration" in got["metadata"]["annotations"]
    kfake.kubectl("delete", "cm", "csa")


def test_rollout_restart_and_status(kfake, app):
    old = {p["metadata"]["name"] for p in pods(kfake)}
    kfake.kubectl("rollout", "restart", "deploy/web", "-n", NS)
    out = kfake.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout=20s").stdout
    assert 'deployment "web" successfully rolled out' in out
    assert "Waiting for deployment" in out          # it did have to wait for the new pods
    new = {p["metadata"]["name"] for p in pods(kfake)}
    assert len(new) == 2 and not (new & old)
    d = json.loads(kfake.kubectl("get", "deploy", "web", "-n", NS, "-o", "json").stdout)
    assert d["metadata"]["generation"] == 2 == d["status"]["observedGeneration"]
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


def test_bad_image_exceeds_progress_deadline_then_undo(kfake, app):
    kfake.kubectl("patch", "deploy", "web", "-n", NS, "--type=merge", "-p",
                  '{"spec":{"progressDeadlineSeconds":2}}')
    kfake.kubectl("set", "image", "deploy/web", "web=registry.example/doesnotexist:1", "-n", NS)
    p = kfake.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout=20s", check=False)
    assert p.returncode != 0
    assert 'deployment "web" exceeded its progress deadline' in p.stderr
    table = kfake.kubectl("get", "pods", "-n", NS).stdout
    assert "ImagePullBackOff" in table or "ErrImagePull" in table
    # the old replicas kept serving (maxUnavailable 25% of 2 = 0)
    d = json.loads(kfake.kubectl("get", "deploy", "web", "-n", NS, "-o", "json").stdout)
    assert d["status"]["availableReplicas"] == 2
    kfake.kubectl("rollout", "undo", "deploy/web", "-n", NS)
    kfake.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout=20s")
    assert all(pd["spec"]["containers"][0]["image"] == "nginx:1.27" for pd in pods(kfake))


def test_scale_uses_the_scale_subresource(kfake, app):
    kfake.kubectl("scale", "deploy", "web", "-n", NS, "--replicas=3")
    kfake.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout=20s")
    assert len(pods(kfake)) == 3
    assert any(r["path"].endswith("/deployments/web/scale") for r in kfake.requests_since()["items"])
    kfake.kubectl("scale", "deploy", "web", "-n", NS, "--replicas=2")
    kfake.wait_for(lambda: len(pods(kfake)) == 2, what="scale down to 2")


def test_pods_wide_and_logs(kfake, app):
    out = kfake.kubectl("get", "pods", "-n", NS, "-o", "wide").stdout.splitlines()
    assert out[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    rows = [line.split() for line in out[1:]]
    assert rows and all(r[1] == "1/1" and r[2] == "Running" and r[5].startswith("10.244.") and r[6].startswith("node-")
                        for r in rows)
    name = rows[0][0]
    logs = kfake.kubectl("logs", name, "-n", NS).stdout.splitlines()
    assert logs[0] == "[fake] starting container web of pod tenant-a/%s" % name
    assert logs[-1] == "[fake] ready"
    tail = kfake.kubectl("logs", name, "-n", NS, "--tail=2").stdout.splitlines()
    assert tail == logs[-2:]
    assert kfake.kubectl("logs", "deploy/web", "-n", NS).stdout.splitlines()[-1] == "[fake] ready"


def test_cordon_uncordon(kfake):
    kfake.kubectl("cordon", "node-3")
    row = [line for line in kfake.kubectl("get", "nodes").stdout.splitlines() if line.startswith("node-3")][0]
    assert row.split()[1] == "Ready,SchedulingDisabled"
    node = json.loads(kfake.kubectl("get", "node", "node-3", "-o", "json").stdout)
    assert node["spec"]["unschedulable"] is True
    assert {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"} in node["spec"]["taints"]
    patch = [r for r in kfake.requests_since()["items"] if r["method"] == "PATCH" and r["path"] == "/api/v1/nodes/node-3"]
    assert patch[-1]["contentType"] == "application/strategic-merge-patch+json"
    kfake.kubectl("uncordon", "node-3")
    node = json.loads(kfake.kubectl("get", "node", "node-3", "-o", "json").stdout)
    assert "unschedulable" not in node["spec"] and "taints" not in node["spec"]


def test_drain_blocked_by_pdb_then_allowed(kfake, app):
    kfake.kubectl("apply", "--server-side", "-f", PDB)
    kfake.wait_for(lambda: json.loads(kfake.kubectl("get", "pdb", "web", "-n", NS, "-o", "json").stdout)
                   .get("status", {}).get("currentHealthy") == 2, what="pdb status")
    victim = pods(kfake)[0]
    node = victim["spec"]["nodeName"]
    seq = kfake.requests_since()["last"]
    drain = kfake.kubectl_popen("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=30s")
    try:
        # the eviction API answers 429 while the budget (minAvailable 2 of 2) forbids it
        kfake.wait_for(lambda: [r for r in kfake.requests_since(seq)["items"]
                                if r["path"].endswith("/pods/%s/eviction" % victim["metadata"]["name"])
                                and r["status"] == 429], timeout=15, what="a refused eviction")
        assert drain.poll() is None
        kfake.kubectl("patch", "pdb", "web", "-n", NS, "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
        out, _ = drain.communicate(timeout=25)
    finally:
        if drain.poll() is None:
            drain.kill()
    assert drain.returncode == 0, out
    assert "Cannot evict pod as it would violate the pod's disruption budget" in out
    # the last line says "drained" (kubectl 1.21 and later) or "evicted" (1.20)
    assert "pod/%s evicted" % victim["metadata"]["name"] in out
    assert "node/%s drained" % node in out or "node/%s evicted" % node in out
    kfake.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout=20s")
    now = pods(kfake)
    assert victim["metadata"]["name"] not in {p["metadata"]["name"] for p in now}
    assert len(now) == 2 and all(p["spec"]["nodeName"] != node for p in now)
    kfake.kubectl("uncordon", node)
    kfake.kubectl("delete", "-f", PDB)


def test_pods_created_bound_run_and_drain_with_daemonset_and_mirror_pods_left(kfake):
    # a node of its own, so that the app's pods stay where they are
    st = kfake.control("POST", "nodes", {"name": "node-drain"})
    assert st
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bound"}}
    kfake.kubectl("apply", "-f", "-", input=json.dumps(ns))

    def pod(name, **md):
        return {"apiVersion": "v1", "kind": "Pod", "metadata": dict({"name": name, "namespace": "bound"}, **md),
                "spec": {"nodeName": "node-drain", "containers": [{"name": "c", "image": "nginx:1.27"}]}}
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "bound"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
              "metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}}
    kfake.kubectl("apply", "-f", "-", input=json.dumps(ds))
    uid = json.loads(kfake.kubectl("get", "daemonset", "agent", "-n", "bound", "-o", "json").stdout)["metadata"]["uid"]
    ds_owner = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": uid, "controller": True}
    items = [pod("solo"), pod("agent", ownerReferences=[ds_owner], labels={"app": "agent"}),
             pod("static", annotations={"kubernetes.io/config.mirror": "a1b2"})]
    kfake.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def wide():
        lines = kfake.kubectl("get", "pods", "-n", "bound", "-o", "wide").stdout.splitlines()
        head = lines[0].split()
        return {line.split()[0]: (line.split()[head.index("STATUS")], line.split()[head.index("NODE")])
                for line in lines[1:]}
    # created with spec.nodeName: no scheduler, the kubelet starts them
    kfake.wait_for(lambda: all(v == ("Running", "node-drain") for v in wide().values()) and len(wide()) == 3,
                   what="pods running on node-drain")

    # a merge patch (kubectl patch --type=merge) cordons as well as kubectl cordon's strategic one
    seq = kfake.requests_since()["last"]
    kfake.kubectl("patch", "node", "node-drain", "--type=merge", "-p", '{"spec":{"unschedulable":true}}')
    row = [line for line in kfake.kubectl("get", "nodes").stdout.splitlines() if line.startswith("node-drain")][0]
    assert row.split()[1] == "Ready,SchedulingDisabled"
    patch = [r for r in kfake.requests_since(seq)["items"] if r["method"] == "PATCH"]
    assert patch[-1]["contentType"] == "application/merge-patch+json"

    # kubectl drain evicts the unmanaged pod (--force), leaves the DaemonSet's (--ignore-daemonsets,
    # after it found the DaemonSet) and the mirror pod, as the node drain of paas does
    seq = kfake.requests_since()["last"]
    out = kfake.kubectl("drain", "node-drain", "--ignore-daemonsets", "--force", "--timeout=20s")
    text = out.stdout + out.stderr
    assert "pod/solo evicted" in text, text
    assert "ignoring DaemonSet-managed Pods: bound/agent" in text, text
    evicted = [r["path"] for r in kfake.requests_since(seq)["items"] if r["path"].endswith("/eviction")]
    assert evicted == ["/api/v1/namespaces/bound/pods/solo/eviction"], evicted
    assert any(r["path"] == "/apis/apps/v1/namespaces/bound/daemonsets/agent" and r["status"] == 200
               for r in kfake.requests_since(seq)["items"])
    left = wide()
    assert "solo" not in left and left["agent"] == ("Running", "node-drain") and left["static"] == ("Running", "node-drain")
    kfake.kubectl("uncordon", "node-drain")
    kfake.kubectl("delete", "namespace", "bound", "--wait=false")


def test_apply_conflict_with_another_manager(kfake, app):
    kfake.kubectl("set", "image", "deploy/web", "web=nginx:1.28", "-n", NS)
    p = kfake.kubectl("apply", "--server-side", "-f", MANIFEST, check=False)
    assert p.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl-set" using apps/v1: '
            '.spec.template.spec.containers[name="web"].image') in p.stderr
    kfake.kubectl("apply", "--server-side", "--force-conflicts", "-f", MANIFEST)
    d = json.loads(kfake.kubectl("get", "deploy", "web", "-n", NS, "-o", "json").stdout)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    kfake.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout=20s")


def test_delete_deployment_removes_its_pods(kfake, app):
    assert pods(kfake)
    out = kfake.kubectl("delete", "deploy", "web", "-n", NS).stdout
    assert 'deployment.apps "web" deleted' in out
    assert "No resources found" in kfake.kubectl("get", "pods,rs", "-n", NS, "-l", "app=web").stderr


def test_delete_namespace_removes_everything(kfake, app):
    kfake.kubectl("delete", "ns", NS, "--timeout=20s")
    assert NS not in kfake.kubectl("get", "ns").stdout
    st, body, _ = kfake.get("/api/v1/namespaces/%s/secrets/web-env" % NS)
    assert st == 404
    p = kfake.kubectl("delete", "ns", "default", check=False)
    assert p.returncode != 0 and "this namespace may not be deleted" in p.stderr


def test_wrong_token_is_refused(kfake):
    cfg = json.load(open(kfake.kubeconfig))
    cfg["users"][0]["user"] = {"token": "not-the-token"}
    path = os.path.join(kfake.tmp, "bad-kubeconfig")
    json.dump(cfg, open(path, "w"))
    p = kfake.kubectl("get", "nodes", kubeconfig=path, check=False)
    assert p.returncode != 0
    assert "You must be logged in to the server" in p.stderr


def test_get_watch_streams_rows(kfake):
    """kubectl get -w: the first rows come from the list, later ones from the watch."""
    w = kfake.kubectl_popen("get", "nodes", "-w", "--request-timeout=0")
    try:
        time.sleep(1.0)
        kfake.control("POST", "nodes/node-2/ready", {"status": "False"})
        deadline = time.time() + 10
        lines = []
        while time.time() < deadline:
            line = w.stdout.readline()
            lines.append(line)
            if line.startswith("node-2") and "NotReady" in line:
                break
    finally:
        w.kill()
        w.wait()
        kfake.control("POST", "nodes/node-2/ready", {"status": "True"})
    assert any(line.startswith("node-2") and "NotReady" in line for line in lines), lines
