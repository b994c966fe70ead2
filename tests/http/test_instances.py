"""Hosted instances end to end: httpd, PostgreSQL, the provisioner (the C
background worker) and the Kubernetes stand-in (tests/fakes/kubeapi.py,
HTTPS with a bearer token, started by tests/run.sh).  What paas applied is
read back with the real kubectl and validated against Kubernetes'
published schemas (npm kubernetes-models, tests/kube/validate.mjs).

subscribe -> RUNNING with URL and credentials; logs; restart; unpaid ->
STOPPED -> paid -> RUNNING; expired -> DELETED with the volume kept, then
removed, then the namespace; a start that never completes -> FAILED and
refunded once; no capacity -> 409 and no charge; NetworkPolicy isolation
between customers; a Deployment deleted by hand comes back; kill -9 of the
provisioner and of the stand-in (restarted empty) converge with nothing
duplicated or lost; a rotated token is picked up."""
import base64
import json
import os
import re
import shlex
import signal
import subprocess
import time
import uuid

import pytest
import requests

from conftest import PSQL, Api, check_envelope, psql, register, wait_until

KUBE_URL = os.environ.get("PAAS_TEST_KUBE_URL", "")
KUBE_DIR = os.environ.get("PAAS_TEST_KUBE_DIR", "")
KUBECTL = os.environ.get("PAAS_TEST_KUBECTL", "/usr/bin/kubectl")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

pytestmark = pytest.mark.skipif(not KUBE_URL, reason="needs the Kubernetes stand-in of tests/run.sh")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def kubectl(*args, check=True):
    env = dict(os.environ, KUBECONFIG=os.path.join(KUBE_DIR, "kubeconfig"))
    r = subprocess.run([KUBECTL, "--cache-dir", os.path.join(KUBE_DIR, "kubectl-cache")] + list(args),
                       capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stderr)
    return r


def kget(*args):
    """kubectl get ... -o json, parsed (the List's items)."""
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def fake(method, path, body=None):
    """The stand-in's test controls (/_fake/...)."""
    return requests.request(method, KUBE_URL + path, json=body, timeout=30,
                            verify=os.path.join(KUBE_DIR, "tls", "ca.crt"))


def validate(objects):
    """Every object against Kubernetes' published schemas (tests/kube/validate.mjs:
    npm kubernetes-models).  Returns {"valid": number of objects checked}."""
    kube = os.path.join(ROOT, "tests", "kube")
    if not os.path.isdir(os.path.join(kube, "node_modules", "kubernetes-models")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=kube, check=True,
                       capture_output=True, timeout=300)
    doc = {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": objects}
    r = subprocess.run(["node", os.path.join(kube, "validate.mjs")], input=json.dumps(doc),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["failed"] == 0 and summary["skipped"] == 0, summary
    # kinds counts every model checked: the objects (and the lists' metadata)
    checked = sum(n for k, n in summary["kinds"].items() if not k.startswith("meta/"))
    return {"valid": checked}


def fund(adm, uid, amount):
    check_envelope(adm.post("/api/v1/admin/billing/adjustments",
                            {"userId": uid, "amount": amount, "reason": "instance test top-up"}), 201)


def balance(api):
    return check_envelope(api.get("/api/v1/billing/balance"), 200)["data"]["balance"]


def pod(api, pid):
    return check_envelope(api.get(f"/api/v1/pods/{pid}"), 200)["data"]


def wait_status(api, pid, status, timeout=30):
    """Polls GET /pods/:id until the status; for RUNNING also until the
    pod that runs is known (its name is looked up once per rollout)."""
    def ok():
        p = pod(api, pid)
        if status == "RUNNING" and p["podName"] == p["name"]:
            return None
        return p if p["status"] == status else None
    return wait_until(ok, timeout=timeout, interval=0.2)


def instance_of(api, sid):
    sub = check_envelope(api.get(f"/api/v1/subscriptions/{sid}"), 200)["data"]
    return sub["instance"]


def make_service(adm, image="example/web:1", deployment=None, env=None, price=20000, storage=1):
    name = "inst-" + uuid.uuid4().hex[:10]
    svc = check_envelope(adm.post("/api/v1/services", {
        "name": name, "displayName": "Instance Test App", "description": "an app of the instance tests",
        "dockerImage": image, "containerPort": 8080, "monthlyPrice": price,
        "cpuRequest": "100m", "cpuLimit": "500m", "memRequest": "64Mi", "memLimit": "128Mi",
        "resources": {"storageGiB": storage}}), 201)["data"]
    tpl = deployment if deployment is not None else {
        "volumeMountPath": "/srv/data", "runAsUser": 1000, "fsGroup": 1000,
        "probe": {"type": "http", "path": "/healthz"},
        "secrets": {"ADMIN_PASSWORD": {"length": 20}},
        "credentials": {"username": "admin", "password": "{{secret.ADMIN_PASSWORD}}", "url": "{{url}}/"}}
    check_envelope(adm.put(f"/api/v1/services/admin/{svc['id']}/deployment", {
        "deployment": tpl, "environmentVars": env if env is not None else {
            "PUBLIC_URL": "{{url}}/", "ADMIN_PASSWORD": "{{secret.ADMIN_PASSWORD}}"}}), 200)
    return svc


def subscribe(api, svc_id):
    return check_envelope(api.post("/api/v1/subscriptions", {"serviceId": svc_id}), 201)["data"]


def set_sub_status(adm, sid, status):
    check_envelope(adm.put(f"/api/v1/admin/subscriptions/{sid}/status",
                           {"status": status, "reason": "instance test"}), 200)


@pytest.fixture(scope="module")
def adm(admin):
    return Api(admin["access"])


@pytest.fixture(scope="module")
def svc(adm):
    return make_service(adm)


@pytest.fixture
def customer(adm):
    u = register(Api())
    fund(adm, u["id"], 500000)
    u["api"] = Api(u["access"])
    return u


@pytest.fixture
def running(customer, svc):
    """A customer's subscription whose instance is RUNNING."""
    me = customer["api"]
    sub = subscribe(me, svc["id"])
    inst = instance_of(me, sub["id"])
    p = wait_status(me, inst["id"], "RUNNING")
    return {"sub": sub, "pod": p, "api": me, "user": customer}


# ---------------------------------------------------------------------------
# subscribe -> RUNNING, what the cluster holds, credentials, logs, restart
# ---------------------------------------------------------------------------

def test_subscription_runs_with_url_and_credentials(running, adm, other_user):
    me, p, sub = running["api"], running["pod"], running["sub"]
    assert p["url"] == f"https://{p['host']}" and p["host"].startswith(p["name"] + ".")
    assert p["namespace"] == "paas-" + running["user"]["id"]
    assert p["observedGeneration"] == p["generation"] and p["desiredState"] == "running"
    assert p["internalUrl"] == f"http://{p['name']}.{p['namespace']}.svc.cluster.local:8080"
    assert p["podName"].startswith(p["name"] + "-")  # the pod the cluster runs
    assert [e["to"] for e in reversed(p["events"]) if e["event"] in ("progressing", "ready")][-1] == "RUNNING"

    shown = instance_of(me, sub["id"])
    assert shown["status"] == "RUNNING" and shown["url"] == p["url"] and shown["lastError"] is None

    # GET /pods lists it; the original's ServiceInstance fields are there
    lst = check_envelope(me.get("/api/v1/pods"), 200)
    assert [x["id"] for x in lst["data"]] == [p["id"]]
    for k in ("podName", "namespace", "status", "internalUrl", "externalUrl", "cpuAllocated", "memAllocated"):
        assert k in lst["data"][0]

    # credentials: generated once, the same as in the cluster's Secret
    creds = check_envelope(me.get(f"/api/v1/pods/{p['id']}/credentials"), 200)["data"]
    pw = creds["credentials"]["password"]
    assert len(pw) == 20 and creds["credentials"]["url"] == p["url"] + "/"
    secret = kget("secret", p["name"] + "-secrets", "-n", p["namespace"])
    assert base64.b64decode(secret["data"]["ADMIN_PASSWORD"]).decode() == pw
    again = check_envelope(me.get(f"/api/v1/pods/{p['id']}/credentials"), 200)["data"]
    assert again["credentials"]["password"] == pw
    # never in the Deployment, never in an event, never in the admin's view of the manifests
    dep = kget("deployment", p["name"], "-n", p["namespace"])
    assert pw not in json.dumps(dep)
    events = check_envelope(adm.get(f"/api/v1/admin/pods/{p['id']}/events?limit=100"), 200)
    assert pw not in json.dumps(events) and any(e["event"] == "credentials_viewed" for e in events["data"])
    man = check_envelope(adm.get(f"/api/v1/admin/pods/{p['id']}/manifests"), 200)["data"]
    assert pw not in json.dumps(man) and man["apply"][0]["data"]["ADMIN_PASSWORD"] == "<redacted>"

    # another user: 404 everywhere
    other = Api(other_user["access"])
    for path in ("", "/credentials", "/logs", "/events"):
        check_envelope(other.get(f"/api/v1/pods/{p['id']}{path}"), 404)
    check_envelope(other.post(f"/api/v1/pods/{p['id']}/restart"), 404)
    check_envelope(Api().get(f"/api/v1/pods/{p['id']}"), 401)


def test_kubectl_sees_valid_objects(running):
    p = running["pod"]
    ns = p["namespace"]
    objs = kget("deployments,services,ingresses,persistentvolumeclaims,secrets,resourcequotas,limitranges,"
                "networkpolicies", "-n", ns, "--show-managed-fields")["items"]
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == ["Deployment", "Ingress", "LimitRange", "NetworkPolicy", "PersistentVolumeClaim",
                     "ResourceQuota", "Secret", "Service"], kinds
    for o in objs:
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "paas"
        assert labels["paas.dev/user-id"] == running["user"]["id"]
        if o["kind"] not in ("ResourceQuota", "LimitRange", "NetworkPolicy"):
            assert labels["paas.dev/instance-id"] == p["id"]
        assert "paas" in [m["manager"] for m in o["metadata"]["managedFields"]]  # server-side apply
    by = {o["kind"]: o for o in objs}
    spec = by["Deployment"]["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}
    assert spec["containers"][0]["securityContext"]["runAsNonRoot"] is True
    assert by["Ingress"]["spec"]["rules"][0]["host"] == p["host"]
    assert by["Ingress"]["spec"]["tls"][0]["hosts"] == [p["host"]]
    assert "cert-manager.io/cluster-issuer" in by["Ingress"]["metadata"]["annotations"]
    assert by["ResourceQuota"]["spec"]["hard"]["pods"] == "1"
    nsobj = kget("namespace", ns)
    assert nsobj["metadata"]["labels"]["paas.dev/user-id"] == running["user"]["id"]
    rollout = kubectl("rollout", "status", f"deployment/{p['name']}", "-n", ns, "--timeout=20s")
    assert "successfully rolled out" in rollout.stdout
    # what the stand-in stored, against Kubernetes' published schemas
    res = validate([nsobj] + objs)
    assert res["valid"] == len(objs) + 1, res


def test_logs_through_the_kubernetes_api(running):
    me, p = running["api"], running["pod"]
    body = check_envelope(me.get(f"/api/v1/pods/{p['id']}/logs?tailLines=2"), 200)["data"]
    assert body["podName"].startswith(p["name"] + "-") and body["container"] == "app"
    assert len(body["lines"]) == 2 and body["logs"].rstrip("\n").split("\n") == body["lines"]
    full = check_envelope(me.get(f"/api/v1/pods/{p['id']}/logs"), 200)["data"]
    assert len(full["lines"]) > 2 and full["tailLines"] == 100
    bad = check_envelope(me.get(f"/api/v1/pods/{p['id']}/logs?tailLines=0&container=nope"), 400)
    assert sorted(e["field"] for e in bad["errors"]) == ["container", "tailLines"]


def test_restart_bumps_the_pod_template(running):
    me, p = running["api"], running["pod"]
    before = kget("deployment", p["name"], "-n", p["namespace"])
    r = check_envelope(me.post(f"/api/v1/pods/{p['id']}/restart"), 200)["data"]
    assert r["restartCount"] == 1 and r["generation"] == p["generation"] + 1

    def restarted():
        d = kget("deployment", p["name"], "-n", p["namespace"])
        ann = d["spec"]["template"]["metadata"].get("annotations", {})
        return d if "paas.dev/restartedAt" in ann else None
    after = wait_until(restarted, timeout=20, interval=0.2)
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    q = wait_until(lambda: (lambda x: x if x["status"] == "RUNNING" and x["observedGeneration"] == r["generation"]
                                       else None)(pod(me, p["id"])), timeout=20, interval=0.2)
    assert q["podName"] != p["podName"]  # a new pod
    assert any(e["event"] == "restart" for e in q["events"])


# ---------------------------------------------------------------------------
# money: unpaid -> STOPPED -> paid -> RUNNING; ended -> DELETED, volume kept,
# then removed, then the namespace
# ---------------------------------------------------------------------------

def test_unpaid_stops_and_paying_starts_again(running, adm):
    me, p, sub = running["api"], running["pod"], running["sub"]
    ns, name = p["namespace"], p["name"]
    set_sub_status(adm, sub["id"], "SUSPENDED")
    s = wait_status(me, p["id"], "STOPPED")
    assert s["desiredState"] == "stopped" and s["url"] == p["url"]
    assert kget("deployment", name, "-n", ns)["spec"]["replicas"] == 0
    assert kubectl("get", "ingress", name, "-n", ns, check=False).returncode != 0  # no ingress
    assert kget("pvc", name + "-data", "-n", ns)["status"]["phase"] == "Bound"  # data kept
    assert kget("resourcequota", "paas-quota", "-n", ns)["spec"]["hard"]["pods"] == "0"
    check_envelope(me.post(f"/api/v1/pods/{p['id']}/restart"), 409)
    check_envelope(me.get(f"/api/v1/pods/{p['id']}/logs"), 409)

    before = balance(me)
    check_envelope(me.put(f"/api/v1/subscriptions/{sub['id']}/renew"), 200)  # paid again
    assert balance(me) == before - 20000
    r = wait_status(me, p["id"], "RUNNING")
    assert kget("deployment", name, "-n", ns)["spec"]["replicas"] == 1
    assert kget("ingress", name, "-n", ns)["spec"]["rules"][0]["host"] == p["host"]
    assert r["readyAt"] >= s["stoppedAt"]


def test_ended_subscription_deletes_keeps_the_volume_then_removes_it(running, adm):
    me, p, sub = running["api"], running["pod"], running["sub"]
    ns, name = p["namespace"], p["name"]
    check_envelope(me.delete(f"/api/v1/subscriptions/{sub['id']}"), 200)  # cancel: served to period end
    assert pod(me, p["id"])["desiredState"] == "running"
    set_sub_status(adm, sub["id"], "EXPIRED")  # the period is over
    d = wait_status(me, p["id"], "DELETED")
    assert d["volume"]["retainedUntil"] is not None and d["volume"]["deletedAt"] is None
    for kind in ("deployment", "service", "ingress", "secret"):
        nm = name + "-secrets" if kind == "secret" else name
        assert kubectl("get", kind, nm, "-n", ns, check=False).returncode != 0, kind
    assert kget("pvc", name + "-data", "-n", ns)["metadata"]["name"] == name + "-data"
    check_envelope(me.get(f"/api/v1/pods/{p['id']}/credentials"), 409)

    # the retention period ends
    psql("UPDATE paas.instances SET volume_purge_at = now(), due_at = now() WHERE id = :'a1'", p["id"])
    wait_until(lambda: pod(me, p["id"])["volume"]["deletedAt"], timeout=20, interval=0.2)
    assert kubectl("get", "pvc", name + "-data", "-n", ns, check=False).returncode != 0
    # nothing of the customer remains: the namespace goes
    wait_until(lambda: kubectl("get", "namespace", ns, check=False).returncode != 0, timeout=20, interval=0.2)
    assert psql("SELECT state FROM paas.instance_namespaces WHERE name = :'a1'", ns) == "DELETED"


# ---------------------------------------------------------------------------
# a start that never completes: FAILED, refunded once
# ---------------------------------------------------------------------------

def test_failure_past_the_deadline_is_refunded_once(adm, customer):
    bad = make_service(adm, image="example/doesnotexist:1")
    me = customer["api"]
    before = balance(me)
    sub = subscribe(me, bad["id"])
    assert balance(me) == before - 20000
    inst = instance_of(me, sub["id"])
    p = wait_until(lambda: (lambda x: x if x["statusMessage"] and "ImagePullBackOff" in x["statusMessage"]
                                       else None)(pod(me, inst["id"])), timeout=30, interval=0.2)
    assert p["status"] == "PROVISIONING" and p["startDeadline"] is not None  # shown to the owner
    assert "ImagePullBackOff" in instance_of(me, sub["id"])["lastError"]

    # the deadline passes (paas.instance_start_deadline, 30 min: moved back here)
    psql("UPDATE paas.instances SET start_requested_at = now() - interval '1 day' WHERE id = :'a1'", p["id"])
    psql("UPDATE paas.job SET next_run_at = now() WHERE name = 'instance_deadlines'")
    f = wait_status(me, p["id"], "FAILED", timeout=30)
    assert "did not start" in f["lastError"] and f["refundedAt"] is not None
    s = check_envelope(me.get(f"/api/v1/subscriptions/{sub['id']}"), 200)["data"]
    assert s["status"] == "EXPIRED"
    assert balance(me) == before
    invs = check_envelope(me.get("/api/v1/billing/invoices?limit=100"), 200)["data"]
    notes = [i for i in (invs if isinstance(invs, list) else invs.get("invoices", []))
             if str(i.get("invoiceNumber", i.get("number", ""))).startswith("CN-")]
    assert len(notes) == 1
    # the job runs again and again: still one refund
    time.sleep(1)
    assert psql("SELECT count(*) FROM paas.ledger_entries WHERE kind = 'subscription_refund' "
                "AND ref ->> 'subscriptionId' = :'a1'", sub["id"]) == "1"
    assert balance(me) == before
    # its objects are removed; FAILED stays what the owner sees
    wait_until(lambda: kubectl("get", "deployment", p["name"], "-n", p["namespace"], check=False).returncode != 0,
               timeout=20, interval=0.2)
    assert pod(me, p["id"])["status"] == "FAILED"


# ---------------------------------------------------------------------------
# capacity
# ---------------------------------------------------------------------------

def test_no_capacity_is_409_and_nothing_charged(adm, customer, svc):
    me = customer["api"]
    before = balance(me)
    nodes = psql("SELECT string_agg(id::text, ',') FROM paas.nodes WHERE NOT cordoned").split(",")
    try:
        psql("UPDATE paas.nodes SET cordoned = true WHERE NOT cordoned")
        body = check_envelope(me.post("/api/v1/subscriptions", {"serviceId": svc["id"]}), 409)
        assert "capacity" in body["message"]
    finally:
        psql("UPDATE paas.nodes SET cordoned = false WHERE id = ANY (string_to_array(:'a1', ',')::uuid[])",
             ",".join(nodes))
    assert balance(me) == before
    assert check_envelope(me.get("/api/v1/subscriptions"), 200)["pagination"]["total"] == 0
    # with room again, the same sale goes through
    subscribe(me, svc["id"])


# ---------------------------------------------------------------------------
# customers cannot reach each other
# ---------------------------------------------------------------------------

def peer_matches(peer, src_ns_labels, same_ns):
    if "ipBlock" in peer:
        return False  # pod addresses are private: the policy's except covers them
    ns_ok = True
    if "namespaceSelector" in peer:
        sel = peer["namespaceSelector"]
        ns_ok = all(src_ns_labels.get(k) == v for k, v in sel.get("matchLabels", {}).items())
        for e in sel.get("matchExpressions", []):
            if e["operator"] == "DoesNotExist":
                ns_ok = ns_ok and e["key"] not in src_ns_labels
            elif e["operator"] == "Exists":
                ns_ok = ns_ok and e["key"] in src_ns_labels
    elif "podSelector" in peer:
        ns_ok = same_ns
    return ns_ok


def allowed(policies, direction, other_ns_labels, same_ns):
    """NetworkPolicy semantics for a pod every policy selects (podSelector {})."""
    pol = [p for p in policies if direction.capitalize() in p["spec"].get("policyTypes", [])]
    if not pol:
        return True
    key, peers = ("from", "ingress") if direction == "ingress" else ("to", "egress")
    for p in pol:
        for rule in p["spec"].get(peers, []):
            if any(peer_matches(peer, other_ns_labels, same_ns) for peer in rule.get(key, [])):
                return True
    return False


def test_customers_are_isolated_by_network_policy(adm, svc):
    a, b = register(Api()), register(Api())
    for u in (a, b):
        fund(adm, u["id"], 100000)
        u["api"] = Api(u["access"])
        inst = instance_of(u["api"], subscribe(u["api"], svc["id"])["id"])
        u["pod"] = wait_status(u["api"], inst["id"], "RUNNING")
    nsa, nsb = a["pod"]["namespace"], b["pod"]["namespace"]
    la = kget("namespace", nsa)["metadata"]["labels"]
    lb = kget("namespace", nsb)["metadata"]["labels"]
    pa = kget("networkpolicies", "-n", nsa)["items"]
    pb = kget("networkpolicies", "-n", nsb)["items"]
    ingress_ns = {"kubernetes.io/metadata.name": "ingress-nginx"}
    # B's pods reach neither A's in (A's ingress rules) nor out (B's egress rules)
    assert not allowed(pa, "ingress", lb, same_ns=False)
    assert not allowed(pb, "egress", la, same_ns=False)
    assert not allowed(pb, "ingress", la, same_ns=False)
    # A's own pods and the ingress controller do reach A; A reaches the platform
    assert allowed(pa, "ingress", la, same_ns=True)
    assert allowed(pa, "ingress", ingress_ns, same_ns=False)
    assert allowed(pa, "egress", {"kubernetes.io/metadata.name": "kube-system"}, same_ns=False)
    assert validate(pa + pb)["valid"] == len(pa) + len(pb)


# ---------------------------------------------------------------------------
# drift, crashes, token rotation
# ---------------------------------------------------------------------------

def test_deployment_deleted_by_hand_is_recreated(running):
    p = running["pod"]
    uid = kget("deployment", p["name"], "-n", p["namespace"])["metadata"]["uid"]
    kubectl("delete", "deployment", p["name"], "-n", p["namespace"])
    d = wait_until(lambda: (lambda r: json.loads(r.stdout) if r.returncode == 0 else None)(
        kubectl("get", "deployment", p["name"], "-n", p["namespace"], "-o", "json", check=False)),
        timeout=20, interval=0.3)
    assert d["metadata"]["uid"] != uid
    wait_status(running["api"], p["id"], "RUNNING")
    drift = check_envelope(running["api"].get(f"/api/v1/pods/{p['id']}/events?limit=50"), 200)["data"]
    assert any(e["event"] == "drift" for e in drift)


def rbac_rules(name):
    """(group, resource) -> verbs of a ClusterRole of docker/k8s/paas.yaml."""
    import yaml
    docs = list(yaml.safe_load_all(open(os.path.join(ROOT, "docker", "k8s", "paas.yaml"))))
    role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == name)
    out = {}
    for rule in role["rules"]:
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                out.setdefault((g, r), set()).update(rule["verbs"])
    return out


def rbac_need(method, path, query=""):
    """The (group, resource, verb) RBAC asks of one request."""
    parts = path.split("?")[0].strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    res, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
    verb = {"PATCH": "patch", "DELETE": "delete", "POST": "create", "PUT": "update"}.get(method)
    if method == "GET":
        verb = "get" if name else "watch" if re.search(r"(^|&)watch=(1|true)", str(query)) else "list"
    return group, res + ("/" + sub if sub else ""), verb


def test_cluster_roles_hold_exactly_the_verbs_used():
    """docker/k8s/paas.yaml against what the provisioner and httpd sent so far
    (the stand-in's request log): it runs after the lifecycle tests above,
    which make every kind of call, and before the stand-in is restarted."""
    # a look at a running instance (the path that reads a Deployment by
    # name, which the watches make rare)
    psql("UPDATE paas.instances SET due_at = now() WHERE id = (SELECT id FROM paas.instances "
         "WHERE status = 'RUNNING' AND generation = observed_generation LIMIT 1)")
    wait_until(lambda: any(q["method"] == "GET" and "/deployments/" in q["path"]
                           and q["userAgent"].startswith("paas-provisioner/")
                           for q in fake("GET", "/_fake/requests").json()["items"]), timeout=20, interval=0.2)
    reqs = fake("GET", "/_fake/requests").json()["items"]
    # the node sync (bgworker/nodesync.c) runs in the provisioner's pod, with its service account
    for who, role in ((("paas-provisioner/", "paas-nodesync/"), "paas-provisioner"), (("paas-httpd",), "paas-httpd")):
        allowed = rbac_rules(role)
        used = {}
        for q in reqs:
            if q["userAgent"].startswith(who) and not q["path"].startswith("/_fake"):
                g, r, v = rbac_need(q["method"], q["path"], q.get("query", ""))
                used.setdefault((g, r), set()).add(v)
                if v == "patch":  # server-side apply of an object that does not exist yet
                    used[(g, r)].add("create")
        assert used, who
        if role == "paas-provisioner" and fake("GET", "/_fake/state").json()["watchers"] >= 3:
            # the Deployment, pod and Node watches are open (the log records a request when it ends)
            used[("apps", "deployments")].add("watch")
            used[("", "pods")].add("watch")
            used.setdefault(("", "nodes"), set()).add("watch")
        for k, verbs in used.items():
            assert verbs <= allowed.get(k, set()), (role, k, verbs - allowed.get(k, set()))
        assert allowed == used, (role, allowed, used)  # nothing granted that is never used


def settle_pool(api):
    """After a crash restart of PostgreSQL: every pooled connection of httpd
    has been used again (a stale one may answer one call with 500, see the
    report), so later tests meet fresh connections."""
    from concurrent.futures import ThreadPoolExecutor
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(max_workers=24) as pool:
        while True:  # concurrent calls, so that every pooled connection is taken
            codes = list(pool.map(lambda _: Api(api.token).get("/api/v1/subscriptions").status_code, range(48)))
            if all(c == 200 for c in codes):
                break
            assert time.monotonic() < deadline, ("httpd did not recover from the database restart", codes)


def provisioner_pid():
    return int(psql("SELECT pid FROM paas.provisioner_state() WHERE running") or 0)


def provisioner_restarted(old):
    """The database is back and a new provisioner runs (not the killed one)."""
    try:
        pid = provisioner_pid()
        return pid > 0 and pid != old
    except subprocess.CalledProcessError:
        return False


def restart_standin():
    """Kills the stand-in (-9) and starts an empty one on the same port."""
    port = int(open(os.path.join(KUBE_DIR, "port")).read())
    pidfile = os.path.join(KUBE_DIR, "pid")
    pid = int(open(pidfile).read()) if os.path.exists(pidfile) else int(os.environ["PAAS_TEST_KUBE_PID"])
    os.kill(pid, signal.SIGKILL)
    log = open(os.path.join(KUBE_DIR, "log"), "a")
    args = shlex.split(os.environ["PAAS_TEST_KUBE_ARGS"])
    deadline = time.monotonic() + 20
    while True:
        proc = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests", "fakes", "kubeapi.py"),
                                 "--port", str(port)] + args, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        time.sleep(0.5)
        if proc.poll() is None:
            break
        assert time.monotonic() < deadline, "the stand-in did not restart"
    with open(pidfile, "w") as f:
        f.write(str(proc.pid))
    def up():
        try:
            return fake("GET", "/_fake/state").status_code == 200
        except requests.ConnectionError:
            assert proc.poll() is None, open(os.path.join(KUBE_DIR, "log")).read()[-2000:]
            return False
    wait_until(up, timeout=20, interval=0.2)


def test_kill9_of_worker_and_standin_converges(adm, svc):
    users = []
    for _ in range(4):
        u = register(Api())
        fund(adm, u["id"], 100000)
        u["api"] = Api(u["access"])
        users.append(u)
    subs = [subscribe(u["api"], svc["id"]) for u in users[:2]]
    old = provisioner_pid()
    os.kill(old, signal.SIGKILL)  # mid-way: the postmaster restarts every backend
    wait_until(lambda: provisioner_restarted(old), timeout=60, interval=0.3)
    settle_pool(users[0]["api"])
    subs += [subscribe(u["api"], svc["id"]) for u in users[2:]]
    pods = []
    for u, s in zip(users, subs):
        inst = instance_of(u["api"], s["id"])
        pods.append(wait_status(u["api"], inst["id"], "RUNNING", timeout=40))

    def census():
        out = {}
        for p in pods:
            items = kget("deployments,services,ingresses,secrets,pvc", "-n", p["namespace"],
                         "-l", "paas.dev/instance-id=" + p["id"])["items"]
            out[p["id"]] = sorted(o["kind"] for o in items)
        return out
    want = ["Deployment", "Ingress", "PersistentVolumeClaim", "Secret", "Service"]
    assert all(v == want for v in census().values()), census()  # exactly one of each

    # the stand-in dies and comes back empty: the resync fills it again
    restart_standin()

    def refilled():
        try:
            c = census()
        except AssertionError:
            return None
        return c if all(v == want for v in c.values()) else None
    wait_until(refilled, timeout=60, interval=0.5)
    # by applying everything again (server-side apply: PATCH) to the new, empty server
    reqs = fake("GET", "/_fake/requests").json()["items"]
    assert sum(1 for q in reqs if q["method"] == "PATCH" and "fieldManager=paas" in str(q["query"])
               and q["userAgent"].startswith("paas-provisioner/")) >= 5 * len(pods)
    for u, p in zip(users, pods):
        wait_status(u["api"], p["id"], "RUNNING", timeout=30)
    # the nodes came back to the registry, so sales still fit
    u = users[0]
    more = subscribe(u["api"], make_service(adm)["id"])
    wait_status(u["api"], instance_of(u["api"], more["id"])["id"], "RUNNING", timeout=30)
    assert check_envelope(adm.get("/api/v1/admin/pods/stats"), 200)["data"]["provisioner"]["running"]


def sold_and_refused(adm, me, svc):
    """A new subscription's instance, once the stand-in has refused paas's
    token (401, retried with backoff, shown to the admin)."""
    inst = instance_of(me, subscribe(me, svc["id"])["id"])

    def refused():
        one = check_envelope(adm.get(f"/api/v1/admin/pods/{inst['id']}"), 200)["data"]
        return "401" in (one["lastError"] or "") + (one["namespaceState"]["lastError"] or "")
    wait_until(refused, timeout=20, interval=0.2)
    return inst


def test_rotated_token_is_picked_up(adm, customer, svc):
    me = customer["api"]
    accepted = os.path.join(KUBE_DIR, "accepted")
    mine = os.path.join(KUBE_DIR, "token")
    new = "kube-" + uuid.uuid4().hex
    with open(accepted, "w") as f:  # the cluster rotates the token ...
        f.write(new + "\n")
    try:
        inst = sold_and_refused(adm, me, svc)  # ... paas still sends the old one
        with open(mine + ".tmp", "w") as f:  # ... until the mounted file changes
            f.write(new + "\n")
        os.chmod(mine + ".tmp", 0o644)
        os.replace(mine + ".tmp", mine)
        check_envelope(adm.post(f"/api/v1/admin/pods/{inst['id']}/reconcile"), 200)
        wait_status(me, inst["id"], "RUNNING", timeout=30)
        assert check_envelope(me.get(f"/api/v1/pods/{inst['id']}/logs?tailLines=1"), 200)["data"]["lines"]
    finally:
        with open(mine, "w") as f:
            f.write(new + "\n")


def test_a_token_replaced_within_the_same_second_is_picked_up(adm, customer, svc):
    """A token file replaced by one of the same length and the same mtime
    (a rotation within the second of the last read) is still a new file:
    the provisioner reads it at its next pass, not a minute later."""
    me = customer["api"]
    accepted = os.path.join(KUBE_DIR, "accepted")
    mine = os.path.join(KUBE_DIR, "token")
    old = open(mine).read().strip()
    new = old[:5] + uuid.uuid4().hex[:len(old) - 5] if len(old) > 5 else "kube-" + uuid.uuid4().hex
    assert len(new) == len(old) and new != old
    with open(accepted, "w") as f:
        f.write(new + "\n")
    try:
        inst = sold_and_refused(adm, me, svc)
        psql("SELECT pg_reload_conf()")  # the provisioner reads the old file once more now
        time.sleep(1)
        st = os.stat(mine)
        with open(mine + ".tmp", "w") as f:
            f.write(new + "\n")
        os.chmod(mine + ".tmp", 0o644)
        os.utime(mine + ".tmp", ns=(st.st_atime_ns, st.st_mtime_ns))  # the mtime it had, to the ns
        os.replace(mine + ".tmp", mine)
        assert os.stat(mine).st_mtime_ns == st.st_mtime_ns and os.stat(mine).st_size == st.st_size
        check_envelope(adm.post(f"/api/v1/admin/pods/{inst['id']}/reconcile"), 200)
        wait_status(me, inst["id"], "RUNNING", timeout=15)
    finally:
        with open(mine, "w") as f:
            f.write(new + "\n")


# ---------------------------------------------------------------------------
# admin routes, templates, OpenAPI
# ---------------------------------------------------------------------------

def test_admin_sees_filters_stops_and_starts(running, adm):
    me, p = running["api"], running["pod"]
    check_envelope(me.get("/api/v1/admin/pods"), 403)
    lst = check_envelope(adm.get(f"/api/v1/admin/pods?userId={running['user']['id']}&status=RUNNING"), 200)
    assert [x["id"] for x in lst["data"]] == [p["id"]]
    check_envelope(adm.get("/api/v1/admin/pods?status=SLEEPING"), 400)
    one = check_envelope(adm.get(f"/api/v1/admin/pods/{p['id']}"), 200)["data"]
    assert one["user"]["id"] == running["user"]["id"] and one["namespaceState"]["state"] == "READY"
    ev = check_envelope(adm.get(f"/api/v1/admin/pods/{p['id']}/events"), 200)
    applied = [e for e in ev["data"] if e["event"] == "apply"]
    assert applied and all(c["code"] in (200, 201) for c in applied[-1]["detail"]["calls"])

    check_envelope(adm.post(f"/api/v1/admin/pods/{p['id']}/stop", {"reason": "abuse report"}), 200)
    s = wait_status(me, p["id"], "STOPPED")
    assert s["stoppedByAdmin"] is True
    check_envelope(adm.post(f"/api/v1/admin/pods/{p['id']}/start", {"reason": "resolved"}), 200)
    wait_status(me, p["id"], "RUNNING")
    check_envelope(adm.post(f"/api/v1/admin/pods/{p['id']}/start"), 409)
    r = check_envelope(adm.post(f"/api/v1/admin/pods/{p['id']}/reconcile"), 200)["data"]
    assert r["id"] == p["id"]
    stats = check_envelope(adm.get("/api/v1/admin/pods/stats"), 200)["data"]
    assert stats["byStatus"]["RUNNING"] >= 1 and stats["provisioner"]["apiCalls"] > 0
    assert stats["provisioner"]["configured"] is True


def test_template_that_cannot_render_is_400(adm):
    name = "inst-bad-" + uuid.uuid4().hex[:8]
    body = check_envelope(adm.post("/api/v1/services", {
        "name": name, "displayName": "Bad Template", "description": "a template with an unknown placeholder",
        "dockerImage": "example/web:1", "environmentVars": {"URL": "{{hostname}}"}}), 400)
    assert [e["field"] for e in body["errors"]] == ["environmentVars.URL"]
    svc = make_service(adm)
    body = check_envelope(adm.put(f"/api/v1/services/admin/{svc['id']}/deployment", {
        "deployment": {"probe": {"type": "smoke"}, "secrets": {"x": {}}}}), 400)
    # the environment still uses the secret the new template would drop
    assert sorted(e["field"] for e in body["errors"]) == ["deployment.secrets", "environmentVars.ADMIN_PASSWORD",
                                                          "type"]
    got = check_envelope(adm.get(f"/api/v1/services/admin/{svc['id']}/deployment"), 200)["data"]
    assert got["deployment"]["volumeMountPath"] == "/srv/data"
    assert [o["kind"] for o in got["preview"]["apply"]] == ["Secret", "PersistentVolumeClaim", "Deployment",
                                                            "Service", "Ingress"]
    assert validate(got["preview"]["apply"][1:])["valid"] == 4  # the Secret preview is redacted


def test_k8s_manifests_are_valid():
    import yaml
    docs = [d for d in yaml.safe_load_all(open(os.path.join(ROOT, "docker", "k8s", "paas.yaml"))) if d]
    assert {d["kind"] for d in docs} >= {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"}
    assert validate(docs)["valid"] == len(docs)


def test_seeded_templates_render_valid_objects(adm):
    """The catalog seed's templates (docker/seed/30_instance_templates.sql)."""
    seeded = psql("SELECT string_agg(s.id::text, ',') FROM paas.services s JOIN paas.service_templates t "
                  "ON t.service_id = s.id WHERE s.name IN ('n8n', 'ghost', 'wordpress', 'uptime-kuma', 'umami', "
                  "'postgresql', 'gitea', 'mattermost', 'minio') AND s.deleted_at IS NULL")
    if not seeded:
        path = os.path.join(ROOT, "docker", "seed")
        for f in ("20_catalog.sql", "30_instance_templates.sql"):
            subprocess.run(shlex.split(os.environ["PAAS_TEST_PSQL"]), input=open(os.path.join(path, f)).read(),
                           text=True, check=True, capture_output=True)
        seeded = psql("SELECT string_agg(s.id::text, ',') FROM paas.services s JOIN paas.service_templates t "
                      "ON t.service_id = s.id WHERE s.deleted_at IS NULL AND s.name IN ('n8n', 'ghost', "
                      "'wordpress', 'uptime-kuma', 'umami', 'postgresql', 'gitea', 'mattermost', 'minio')")
    ids = seeded.split(",")
    assert len(ids) == 9
    objs = []
    for sid in ids:
        prev = check_envelope(adm.get(f"/api/v1/services/admin/{sid}/deployment"), 200)["data"]["preview"]
        objs += [o for o in prev["apply"] if o["kind"] != "Secret"]
    assert validate(objs)["valid"] == len(objs)


def test_openapi_lists_the_pod_routes():
    r = Api().get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for pth in ("/api/v1/pods", "/api/v1/pods/{id}", "/api/v1/pods/{id}/restart", "/api/v1/pods/{id}/logs",
                "/api/v1/pods/{id}/credentials", "/api/v1/admin/pods", "/api/v1/admin/pods/{id}/reconcile",
                "/api/v1/admin/pods/{id}/stop", "/api/v1/admin/pods/{id}/start",
                "/api/v1/services/admin/{id}/deployment"):
        assert pth in paths, pth


def test_reloads_while_the_watches_start_never_crash_the_provisioner(running):
    """A configuration reload or a rotated token rebuilds the provisioner's
    request headers.  A watch whose request is not sent yet (its TLS
    handshake under way) must never be left pointing at the freed ones: the
    stand-in restarts twice (every watch connects again) while reloads come
    every 5 ms and the token file alternates between two accepted tokens;
    the provisioner survives, and the postmaster never had to reset the
    cluster for a crashed process."""
    log = os.environ["PAAS_TEST_SERVER_LOG"]
    accepted = os.path.join(KUBE_DIR, "accepted")
    mine = os.path.join(KUBE_DIR, "token")
    tokens = [open(mine).read().strip(), "kube-" + uuid.uuid4().hex]
    with open(accepted, "w") as f:
        f.write("\n".join(tokens) + "\n")
    start = os.path.getsize(log)
    old = provisioner_pid()
    assert old > 0
    # 8 s of reloads, one every 5 ms, from one session
    storm = subprocess.Popen(PSQL + ["-c", "DO $$ BEGIN FOR i IN 1..1600 LOOP PERFORM pg_reload_conf(); "
                                     "PERFORM pg_sleep(0.005); END LOOP; END $$"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def rotate(i):
        with open(mine + ".tmp", "w") as f:
            f.write(tokens[i % 2] + "\n")
        os.chmod(mine + ".tmp", 0o644)
        os.replace(mine + ".tmp", mine)
    try:
        i = 0
        for _ in range(2):
            for _ in range(20):
                rotate(i := i + 1)
                time.sleep(0.05)
            restart_standin()  # the watches fail and start again, with reloads all around them
            with open(accepted, "w") as f:
                f.write("\n".join(tokens) + "\n")
            for _ in range(50):
                rotate(i := i + 1)
                time.sleep(0.05)
    finally:
        storm.wait(timeout=60)
        rotate(0)
        with open(accepted, "w") as f:  # kubectl's kubeconfig reads it: one token again
            f.write(tokens[0] + "\n")
    time.sleep(1)
    with open(log, errors="replace") as f:
        f.seek(start)
        crashes = [line for line in f if "terminated by signal" in line or "reinitializing" in line]
    assert crashes == []
    assert provisioner_pid() == old
    # and it still converges: the running instance is in the new stand-in again
    me, p = running["api"], running["pod"]
    wait_status(me, p["id"], "RUNNING", timeout=40)
    wait_until(lambda: kget("deployments", "-n", p["namespace"], "-l",
                            "paas.dev/instance-id=" + p["id"])["items"], timeout=40, interval=0.5)
