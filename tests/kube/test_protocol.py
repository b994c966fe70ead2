"""The stand-in's protocol as a C client with libcurl will see it: raw HTTP requests."""
import json
import os
import subprocess
import time

from conftest import ROOT


def ns(fake, name, labels=None):
    st, body, _ = fake.apply("/api/v1/namespaces/" + name, {"apiVersion": "v1", "kind": "Namespace",
                                                            "metadata": {"name": name, "labels": labels or {}}})
    assert st in (200, 201), body
    return name


def deployment(name, replicas=1, image="nginx:1.27", labels=None, annotations=None, cpu=None):
    c = {"name": "web", "image": image, "ports": [{"containerPort": 8080}]}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu, "memory": "64Mi"}, "limits": {"cpu": cpu, "memory": "64Mi"}}
    tmeta = {"labels": {"app": name}}
    if annotations:
        tmeta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": dict({"app": name}, **(labels or {}))},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": tmeta, "spec": {"containers": [c]}}}}


def dpath(n, name=""):
    return "/apis/apps/v1/namespaces/%s/deployments%s" % (n, "/" + name if name else "")


def list_pods(fake, n, selector=""):
    st, body, _ = fake.get("/api/v1/namespaces/%s/pods%s" % (n, "?labelSelector=" + selector if selector else ""))
    assert st == 200
    return body["items"]


def status_ok(st, body, code, reason):
    assert st == code, (st, body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason, body


# --- server-side apply -------------------------------------------------------------

def test_apply_creates_then_is_idempotent(fake):
    n = ns(fake, "ssa")
    st, d, _ = fake.apply(dpath(n, "web"), deployment("web"))
    assert st == 201
    m = d["metadata"]
    assert len(m["uid"]) == 36 and m["creationTimestamp"].endswith("Z") and m["generation"] == 1
    assert m["managedFields"][0]["manager"] == "paas" and m["managedFields"][0]["operation"] == "Apply"
    assert m["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"] == {}
    # applying the same configuration again changes nothing, not even the resourceVersion
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same", "labels": {"a": "b"}}, "data": {"k": "v"}}
    _, first, _ = fake.apply("/api/v1/namespaces/%s/configmaps/same" % n, cm)
    st, again, _ = fake.apply("/api/v1/namespaces/%s/configmaps/same" % n, cm)
    assert st == 200 and again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert again["metadata"]["managedFields"] == first["metadata"]["managedFields"]
    # JSON is valid YAML; a YAML body works too
    yml = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n")
    st, cm, _ = fake.req("PATCH", "/api/v1/namespaces/%s/configmaps/y?fieldManager=paas" % n, yml,
                         ctype="application/apply-patch+yaml")
    assert st == 201 and cm["data"] == {"k": "v"}


def test_generation_moves_on_spec_changes_only(fake):
    n = ns(fake, "gen")
    _, d1, _ = fake.apply(dpath(n, "web"), deployment("web"))
    _, d2, _ = fake.apply(dpath(n, "web"), deployment("web", labels={"tier": "front"}))
    assert int(d2["metadata"]["resourceVersion"]) > int(d1["metadata"]["resourceVersion"])
    assert d2["metadata"]["generation"] == 1
    _, d3, _ = fake.apply(dpath(n, "web"), deployment("web", labels={"tier": "front"}, replicas=2))
    assert d3["metadata"]["generation"] == 2
    cur = fake.wait_for(lambda: (lambda b: b if b.get("status", {}).get("observedGeneration") == 2 else None)(
        fake.get(dpath(n, "web"))[1]), what="observedGeneration 2")
    assert cur["metadata"]["generation"] == 2          # status writes never bump it


def test_resource_version_is_global_and_increasing(fake):
    n = ns(fake, "rv")
    rvs = []
    for i in range(3):
        _, o, _ = fake.apply("/api/v1/namespaces/%s/secrets/s%d" % (n, i),
                             {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s%d" % i},
                              "stringData": {"k": str(i)}})
        rvs.append(int(o["metadata"]["resourceVersion"]))
        _, o, _ = fake.apply("/api/v1/namespaces/%s/configmaps/c%d" % (n, i),
                             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c%d" % i}})
        rvs.append(int(o["metadata"]["resourceVersion"]))
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    _, lst, _ = fake.get("/api/v1/namespaces/%s/secrets" % n)
    assert int(lst["metadata"]["resourceVersion"]) >= rvs[-1]
    assert lst["kind"] == "SecretList" and "kind" not in lst["items"][0]   # like the real API


def test_apply_conflicts_and_force(fake):
    n = ns(fake, "conflict")
    fake.apply(dpath(n, "web"), deployment("web", replicas=1), manager="paas")
    st, body, _ = fake.apply(dpath(n, "web"), deployment("web", replicas=3), manager="hpa", force=False)
    status_ok(st, body, 409, "Conflict")
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": 'conflict with "paas" using apps/v1',
                                          "field": ".spec.replicas"}]
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "paas" using apps/v1: .spec.replicas'
    st, d, _ = fake.apply(dpath(n, "web"), deployment("web", replicas=3), manager="hpa", force=True)
    assert st == 200 and d["spec"]["replicas"] == 3
    owners = {m["manager"]: m["fieldsV1"] for m in d["metadata"]["managedFields"]}
    assert "f:replicas" in owners["hpa"]["f:spec"] and "f:replicas" not in owners["paas"]["f:spec"]


def test_apply_removes_fields_the_manager_dropped(fake):
    n = ns(fake, "drop")
    fake.apply(dpath(n, "web"), deployment("web", labels={"a": "1", "b": "2"}), manager="paas")
    fake.req("PATCH", dpath(n, "web"), {"metadata": {"labels": {"c": "3"}}}, ctype="application/merge-patch+json")
    _, d, _ = fake.apply(dpath(n, "web"), deployment("web", labels={"a": "1"}), manager="paas")
    assert d["metadata"]["labels"] == {"app": "web", "a": "1", "c": "3"}   # b dropped, c belongs to someone else


def test_apply_mismatches_are_bad_requests(fake):
    n = ns(fake, "badapply")
    st, body, _ = fake.apply(dpath(n, "other"), deployment("web"))
    status_ok(st, body, 400, "BadRequest")
    st, body, _ = fake.req("PATCH", dpath(n, "web"), deployment("web"), ctype="application/apply-patch+yaml")
    status_ok(st, body, 422, "Invalid")             # no fieldManager
    assert body["message"] == 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    st, body, _ = fake.req("PATCH", "/api/v1/namespaces/default?force=true", {"metadata": {}},
                           ctype="application/merge-patch+json")
    status_ok(st, body, 422, "Invalid")             # force is for apply only
    st, body, _ = fake.apply(dpath("nosuchns", "web"), deployment("web"))
    status_ok(st, body, 404, "NotFound")
    assert body["message"] == 'namespaces "nosuchns" not found'


# --- create / get / update / errors --------------------------------------------------

def test_create_get_update_errors(fake):
    n = ns(fake, "crud")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    st, created, _ = fake.req("POST", "/api/v1/namespaces/%s/configmaps" % n, cm)
    assert st == 201
    st, body, _ = fake.req("POST", "/api/v1/namespaces/%s/configmaps" % n, cm)
    status_ok(st, body, 409, "AlreadyExists")
    assert body["message"] == 'configmaps "c" already exists'
    assert body["details"] == {"name": "c", "kind": "configmaps"}
    st, body, _ = fake.get("/apis/apps/v1/namespaces/%s/deployments/nope" % n)
    status_ok(st, body, 404, "NotFound")
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}
    stale = dict(created, data={"a": "2"})
    st, upd, _ = fake.req("PUT", "/api/v1/namespaces/%s/configmaps/c" % n, stale)
    assert st == 200 and upd["data"] == {"a": "2"}
    st, body, _ = fake.req("PUT", "/api/v1/namespaces/%s/configmaps/c" % n, stale)   # stale resourceVersion
    status_ok(st, body, 409, "Conflict")
    assert "the object has been modified" in body["message"]
    unconditional = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "3"}}
    st, upd, _ = fake.req("PUT", "/api/v1/namespaces/%s/configmaps/c" % n, unconditional)
    assert st == 200 and upd["data"] == {"a": "3"}
    st, body, _ = fake.req("POST", "/api/v1/namespaces/%s/configmaps" % n, "{not json")
    status_ok(st, body, 400, "BadRequest")
    st, body, _ = fake.req("PATCH", "/api/v1/namespaces/%s/configmaps/c" % n, {}, ctype="text/plain")
    status_ok(st, body, 415, "UnsupportedMediaType")
    st, body, _ = fake.get("/apis/nosuch.io/v1/things")
    status_ok(st, body, 404, "NotFound")


def test_invalid_objects_are_422_with_causes(fake):
    n = ns(fake, "invalid")
    bad = deployment("web")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    del bad["spec"]["template"]["spec"]["containers"][0]["image"]
    st, body, _ = fake.apply(dpath(n, "web"), bad)
    status_ok(st, body, 422, "Invalid")
    assert body["message"].startswith('Deployment.apps "web" is invalid: [')
    fields = {c["field"]: c["reason"] for c in body["details"]["causes"]}
    assert fields == {"spec.template.metadata.labels": "FieldValueInvalid",
                      "spec.template.spec.containers[0].image": "FieldValueRequired"}
    assert body["details"]["kind"] == "Deployment" and body["details"]["group"] == "apps"
    st, body, _ = fake.req("POST", "/api/v1/namespaces/%s/configmaps" % n,
                           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}})
    status_ok(st, body, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000}]}}
    st, body, _ = fake.apply("/api/v1/namespaces/%s/services/s" % n, svc)
    status_ok(st, body, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.ports[0].port"
    # the selector of a deployment is immutable
    fake.apply(dpath(n, "ok"), deployment("ok"))
    moved = deployment("ok")
    moved["spec"]["selector"]["matchLabels"]["x"] = "y"
    moved["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    st, body, _ = fake.apply(dpath(n, "ok"), moved)
    status_ok(st, body, 422, "Invalid")
    assert "field is immutable" in body["message"]


# --- patches -----------------------------------------------------------------------

def test_merge_strategic_and_json_patches(fake):
    n = ns(fake, "patch")
    d = deployment("web")
    d["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox:1.36"})
    fake.apply(dpath(n, "web"), d)
    # strategic merge: containers merge by name
    st, out, _ = fake.req("PATCH", dpath(n, "web"), {"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "busybox:1.37"}]}}}}, ctype="application/strategic-merge-patch+json")
    assert st == 200
    cs = out["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in cs] == [("web", "nginx:1.27"), ("side", "busybox:1.37")]
    # merge patch: lists are replaced, null removes
    st, out, _ = fake.req("PATCH", dpath(n, "web"), {"metadata": {"labels": {"app": None, "x": "1"}}},
                          ctype="application/merge-patch+json")
    assert st == 200 and out["metadata"]["labels"] == {"x": "1"}
    # JSON patch, and a failing test op
    st, out, _ = fake.req("PATCH", dpath(n, "web"), [{"op": "replace", "path": "/spec/replicas", "value": 0}],
                          ctype="application/json-patch+json")
    assert st == 200 and out["spec"]["replicas"] == 0
    st, body, _ = fake.req("PATCH", dpath(n, "web"), [{"op": "test", "path": "/spec/replicas", "value": 5}],
                           ctype="application/json-patch+json")
    status_ok(st, body, 422, "Invalid")
    # a patch carrying a stale resourceVersion is a precondition
    st, body, _ = fake.req("PATCH", dpath(n, "web"), {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}},
                           ctype="application/merge-patch+json")
    status_ok(st, body, 409, "Conflict")


# --- list: selectors, pagination ---------------------------------------------------------

def test_label_and_field_selectors(fake):
    n = ns(fake, "sel")
    for name, labels in (("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db", "env": "prod"}),
                         ("c", {"tier": "web"})):
        fake.apply("/api/v1/namespaces/%s/configmaps/%s" % (n, name),
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}})

    def names(q, res="configmaps"):
        st, body, _ = fake.get("/api/v1/namespaces/%s/%s?%s" % (n, res, q))
        assert st == 200, body
        return sorted(i["metadata"]["name"] for i in body["items"])
    assert names("labelSelector=tier%3Dweb") == ["a", "c"]
    assert names("labelSelector=tier%21%3Dweb") == ["b"]
    assert names("labelSelector=tier+in+(db,cache)") == ["b"]
    assert names("labelSelector=tier+notin+(db)") == ["a", "c"]
    assert names("labelSelector=env") == ["a", "b"]
    assert names("labelSelector=%21env") == ["c"]
    assert names("labelSelector=tier%3Dweb,env%3Dprod") == ["a"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]
    assert names("fieldSelector=metadata.name%21%3Db") == ["a", "c"]
    st, body, _ = fake.get("/api/v1/namespaces/%s/configmaps?fieldSelector=data.x%%3D1" % n)
    status_ok(st, body, 400, "BadRequest")
    st, body, _ = fake.get("/api/v1/namespaces/%s/configmaps?labelSelector=a+b+c" % n)
    status_ok(st, body, 400, "BadRequest")
    # pagination
    st, page, _ = fake.get("/api/v1/namespaces/%s/configmaps?limit=2" % n)
    assert len(page["items"]) == 2 and page["metadata"]["remainingItemCount"] == 1
    st, rest, _ = fake.get("/api/v1/namespaces/%s/configmaps?limit=2&continue=%s" % (n, page["metadata"]["continue"]))
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c"] and "continue" not in rest["metadata"]


# --- the controller ----------------------------------------------------------------------

def test_pods_spread_over_nodes_and_field_selector_node_name(fake):
    n = ns(fake, "spread")
    fake.apply(dpath(n, "web"), deployment("web", replicas=3))
    pods = fake.wait_for(lambda: (lambda ps: ps if len(ps) == 3 and all(
        p["status"].get("phase") == "Running" for p in ps) else None)(list_pods(fake, n)), what="3 running pods")
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["node-1", "node-2", "node-3"]
    for p in pods:
        conds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
        assert conds["Ready"] == conds["PodScheduled"] == conds["ContainersReady"] == "True"
        assert p["status"]["podIP"].startswith("10.244.") and p["status"]["hostIP"].startswith("10.0.0.")
        assert p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    st, body, _ = fake.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-2")
    assert st == 200 and {p["spec"]["nodeName"] for p in body["items"]} == {"node-2"}
    d = fake.get(dpath(n, "web"))[1]
    assert d["status"]["readyReplicas"] == d["status"]["availableReplicas"] == d["status"]["updatedReplicas"] == 3
    # replicas 0 removes the pods; the status then omits its zero counts, like the real API
    fake.apply(dpath(n, "web"), deployment("web", replicas=0))
    fake.wait_for(lambda: not list_pods(fake, n), what="pods gone")
    d = fake.wait_for(lambda: (lambda b: b if "replicas" not in b["status"] else None)(fake.get(dpath(n, "web"))[1]),
                      what="status without replicas")
    assert d["status"]["observedGeneration"] == 2 and "readyReplicas" not in d["status"]


def test_unschedulable_until_a_node_fits(start_fake):
    f = start_fake("--nodes", "2", "--node-cpu", "1")
    n = ns(f, "big")
    f.apply(dpath(n, "big"), deployment("big", cpu="2"))
    pod = f.wait_for(lambda: (lambda ps: ps[0] if ps and any(c.get("reason") == "Unschedulable" for c in
                                                             ps[0]["status"].get("conditions") or []) else None)(
        list_pods(f, n)), what="an Unschedulable pod")
    cond = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"][0]
    assert cond["status"] == "False" and cond["message"].startswith("0/2 nodes are available: 2 Insufficient cpu.")
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    f.control("POST", "nodes", {"name": "big-node", "cpu": "8", "memory": "32Gi"})
    pod = f.wait_for(lambda: (lambda ps: ps[0] if ps and ps[0]["spec"].get("nodeName") else None)(list_pods(f, n)),
                     what="scheduled")
    assert pod["spec"]["nodeName"] == "big-node"


def test_image_pull_failure_and_crashloop(fake):
    n = ns(fake, "images")
    fake.apply(dpath(n, "bad"), deployment("bad", image="example.com/doesnotexist:2"))
    fake.apply(dpath(n, "crash"), deployment("crash", image="example.com/crashloop:1"))

    def waiting(app, reason):
        ps = list_pods(fake, n, "app%3D" + app)
        if ps and ps[0]["status"].get("containerStatuses"):
            w = ps[0]["status"]["containerStatuses"][0]["state"].get("waiting", {})
            return ps[0] if w.get("reason") == reason else None
    p = fake.wait_for(lambda: waiting("bad", "ImagePullBackOff"), what="ImagePullBackOff")
    assert p["status"]["phase"] == "Pending" and not p["status"]["containerStatuses"][0]["ready"]
    c = fake.wait_for(lambda: waiting("crash", "CrashLoopBackOff"), what="CrashLoopBackOff")
    assert c["status"]["containerStatuses"][0]["restartCount"] >= 1
    st, body, _ = fake.get("/api/v1/namespaces/%s/pods/%s/log" % (n, p["metadata"]["name"]))
    status_ok(st, body, 400, "BadRequest")
    assert "is waiting to start" in body["message"]
    d = fake.get(dpath(n, "bad"))[1]
    assert d["status"].get("availableReplicas", 0) == 0
    assert {c["type"]: c["status"] for c in d["status"]["conditions"]}["Available"] == "False"


def test_template_change_rolls_new_pods(fake):
    n = ns(fake, "roll")
    fake.apply(dpath(n, "web"), deployment("web", replicas=2))
    first = fake.wait_for(lambda: (lambda ps: ps if len(ps) == 2 and all(p["status"].get("phase") == "Running"
                                                                        for p in ps) else None)(list_pods(fake, n)),
                          what="2 pods")
    fake.apply(dpath(n, "web"), deployment("web", replicas=2, annotations={"paas.io/config-hash": "abc"}))

    def rolled():
        d = fake.get(dpath(n, "web"))[1]
        st = d["status"]
        if st.get("updatedReplicas") == 2 and st.get("availableReplicas") == 2 and st.get("replicas") == 2 \
                and st.get("observedGeneration") == d["metadata"]["generation"]:
            return d
    d = fake.wait_for(rolled, what="rollout")
    now = list_pods(fake, n)
    assert not ({p["metadata"]["name"] for p in now} & {p["metadata"]["name"] for p in first})
    assert all(p["metadata"]["annotations"]["paas.io/config-hash"] == "abc" for p in now)
    _, rs, _ = fake.get("/apis/apps/v1/namespaces/%s/replicasets" % n)
    assert sorted(r["spec"]["replicas"] for r in rs["items"]) == [0, 2]
    assert {c["type"]: c["reason"] for c in d["status"]["conditions"]}["Progressing"] == "NewReplicaSetAvailable"


def test_quota_forbids_pods_beyond_it(fake):
    n = ns(fake, "quota")
    fake.apply("/api/v1/namespaces/%s/resourcequotas/q" % n, {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1", "requests.memory": "1Gi"}}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge"},
           "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}]}}
    st, body, _ = fake.req("POST", "/api/v1/namespaces/%s/pods" % n, pod)
    status_ok(st, body, 403, "Forbidden")
    assert body["message"] == ('pods "huge" is forbidden: exceeded quota: q, requested: requests.cpu=2, '
                               'used: requests.cpu=0, limited: requests.cpu=1')
    nores = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
             "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    st, body, _ = fake.req("POST", "/api/v1/namespaces/%s/pods" % n, nores)
    status_ok(st, body, 403, "Forbidden")
    assert "failed quota: q: must specify requests.cpu for: c; requests.memory for: c" in body["message"]
    # a deployment asking for more than the quota: its replica set reports FailedCreate
    fake.apply(dpath(n, "web"), deployment("web", replicas=3, cpu="400m"))

    def failed():
        d = fake.get(dpath(n, "web"))[1]
        c = [x for x in d.get("status", {}).get("conditions") or [] if x["type"] == "ReplicaFailure"]
        return (d, c[0]) if c else None
    d, cond = fake.wait_for(failed, what="ReplicaFailure")
    assert cond["reason"] == "FailedCreate" and "exceeded quota: q" in cond["message"]
    assert len(list_pods(fake, n)) == 2
    q = fake.wait_for(lambda: (lambda b: b if b.get("status", {}).get("used", {}).get("pods") == "2" else None)(
        fake.get("/api/v1/namespaces/%s/resourcequotas/q" % n)[1]), what="quota used")
    assert q["status"]["used"]["requests.cpu"] == "800m" and q["status"]["hard"]["requests.memory"] == "1Gi"
    # raising the quota lets the third pod in
    fake.apply("/api/v1/namespaces/%s/resourcequotas/q" % n, {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "5", "requests.cpu": "2", "requests.memory": "1Gi"}}})
    fake.wait_for(lambda: len(list_pods(fake, n)) == 3, what="third pod")


def test_eviction_respects_pdb(fake):
    n = ns(fake, "evict")
    fake.apply(dpath(n, "web"), deployment("web", replicas=2))
    fake.apply("/apis/policy/v1/namespaces/%s/poddisruptionbudgets/web" % n, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    fake.wait_for(lambda: fake.get("/apis/policy/v1/namespaces/%s/poddisruptionbudgets/web" % n)[1]
                  .get("status", {}).get("currentHealthy") == 2, what="pdb healthy 2")
    pod = list_pods(fake, n)[0]["metadata"]["name"]
    ev = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": n}}
    st, body, _ = fake.req("POST", "/api/v1/namespaces/%s/pods/%s/eviction" % (n, pod), ev)
    status_ok(st, body, 429, "TooManyRequests")
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"] == [{"reason": "DisruptionBudget", "message":
                                          "The disruption budget web needs 2 healthy pods and has 2 currently"}]
    pdb = fake.get("/apis/policy/v1/namespaces/%s/poddisruptionbudgets/web" % n)[1]
    assert pdb["status"]["disruptionsAllowed"] == 0 and pdb["status"]["expectedPods"] == 2
    fake.req("PATCH", "/apis/policy/v1/namespaces/%s/poddisruptionbudgets/web" % n, {"spec": {"minAvailable": 1}},
             ctype="application/merge-patch+json")
    st, body, _ = fake.req("POST", "/api/v1/namespaces/%s/pods/%s/eviction" % (n, pod), ev)
    assert st == 201 and body["status"] == "Success"
    st, _, _ = fake.get("/api/v1/namespaces/%s/pods/%s" % (n, pod))
    assert st == 404


def test_node_not_ready_and_node_deleted(start_fake):
    f = start_fake("--nodes", "2")
    n = ns(f, "nodes")
    f.apply(dpath(n, "web"), deployment("web", replicas=2))
    f.wait_for(lambda: f.get(dpath(n, "web"))[1].get("status", {}).get("availableReplicas") == 2, what="available")
    f.control("POST", "nodes/node-1/ready", {"status": "False"})
    node = f.get("/api/v1/nodes/node-1")[1]
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False" and ready["reason"] == "KubeletNotReady"
    f.wait_for(lambda: f.get(dpath(n, "web"))[1]["status"].get("availableReplicas") == 1, what="one unavailable")
    node = f.wait_for(lambda: (lambda b: b if b["spec"].get("taints") else None)(f.get("/api/v1/nodes/node-1")[1]),
                      what="taints")
    assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
        ("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")}
    f.control("POST", "nodes/node-1/ready", {"status": "True"})
    f.wait_for(lambda: f.get(dpath(n, "web"))[1]["status"].get("availableReplicas") == 2, what="recovered")
    # a deleted node takes its pods with it; the replica set makes new ones elsewhere
    on1 = [p["metadata"]["name"] for p in list_pods(f, n) if p["spec"].get("nodeName") == "node-1"]
    f.control("DELETE", "nodes/node-1")
    assert f.get("/api/v1/nodes/node-1")[0] == 404
    f.wait_for(lambda: (lambda ps: len(ps) == 2 and all(p["spec"].get("nodeName") == "node-2" for p in ps)
                        and not set(on1) & {p["metadata"]["name"] for p in ps})(list_pods(f, n)), what="rescheduled")


def test_delete_propagation(fake):
    n = ns(fake, "gc")
    for name in ("bg", "orphan", "fg"):
        fake.apply(dpath(n, name), deployment(name, replicas=1))
    fake.wait_for(lambda: len(list_pods(fake, n)) == 3, what="3 pods")
    st, body, _ = fake.req("DELETE", dpath(n, "bg"), {"propagationPolicy": "Background"})
    assert st == 200 and body["kind"] == "Status" and body["status"] == "Success"
    assert body["details"]["name"] == "bg" and body["details"]["kind"] == "deployments"
    assert not list_pods(fake, n, "app%3Dbg")
    st, body, _ = fake.req("DELETE", dpath(n, "orphan") + "?propagationPolicy=Orphan")
    assert st == 200
    kept = list_pods(fake, n, "app%3Dorphan")
    assert len(kept) == 1
    _, rs, _ = fake.get("/apis/apps/v1/namespaces/%s/replicasets?labelSelector=app%%3Dorphan" % n)
    assert len(rs["items"]) == 1 and "ownerReferences" not in rs["items"][0]["metadata"]
    st, body, _ = fake.req("DELETE", dpath(n, "fg"), {"propagationPolicy": "Foreground"})
    assert st == 200 and "foregroundDeletion" in body["metadata"]["finalizers"]
    assert fake.get(dpath(n, "fg"))[0] == 404 and not list_pods(fake, n, "app%3Dfg")


def test_finalizers_hold_deletion(fake):
    n = ns(fake, "fin")
    fake.apply("/api/v1/namespaces/%s/configmaps/held" % n, {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["paas.io/cleanup"]}})
    st, body, _ = fake.req("DELETE", "/api/v1/namespaces/%s/configmaps/held" % n)
    assert st == 200 and body["metadata"]["deletionTimestamp"]
    assert fake.get("/api/v1/namespaces/%s/configmaps/held" % n)[0] == 200
    fake.req("PATCH", "/api/v1/namespaces/%s/configmaps/held" % n, {"metadata": {"finalizers": None}},
             ctype="application/merge-patch+json")
    assert fake.get("/api/v1/namespaces/%s/configmaps/held" % n)[0] == 404


def test_namespace_delete_cascades(fake):
    n = ns(fake, "gone")
    fake.apply(dpath(n, "web"), deployment("web"))
    fake.apply("/api/v1/namespaces/%s/secrets/s" % n, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
    fake.wait_for(lambda: list_pods(fake, n), what="a pod")
    st, body, _ = fake.req("DELETE", "/api/v1/namespaces/" + n)
    assert st == 200 and body["status"]["phase"] == "Terminating"
    assert fake.get("/api/v1/namespaces/" + n)[0] == 404
    st, body, _ = fake.get("/api/v1/pods")
    assert not [p for p in body["items"] if p["metadata"]["namespace"] == n]
    st, body, _ = fake.req("DELETE", "/api/v1/namespaces/kube-system")
    status_ok(st, body, 403, "Forbidden")


def test_logs_tail_and_containers(fake):
    n = ns(fake, "logs")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two"},
           "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]}}
    fake.req("POST", "/api/v1/namespaces/%s/pods" % n, pod)
    fake.wait_for(lambda: fake.get("/api/v1/namespaces/%s/pods/two" % n)[1]["status"].get("phase") == "Running",
                  what="running")
    st, body, _ = fake.get("/api/v1/namespaces/%s/pods/two/log" % n)
    status_ok(st, body, 400, "BadRequest")
    assert body["message"] == "a container name must be specified for pod two, choose one of: [a b]"
    st, text, r = fake.get("/api/v1/namespaces/%s/pods/two/log?container=b&tailLines=1" % n)
    assert st == 200 and r.getheader("Content-Type") == "text/plain" and text == "[fake] ready\n"
    st, text, _ = fake.get("/api/v1/namespaces/%s/pods/two/log?container=b" % n)
    assert text.splitlines()[1] == "[fake] image redis"
    st, again, _ = fake.get("/api/v1/namespaces/%s/pods/two/log?container=b" % n)
    assert again == text                                   # deterministic


# --- watch -----------------------------------------------------------------------------

def test_watch_from_resource_version(fake):
    n = ns(fake, "watch")
    _, lst, _ = fake.get("/api/v1/namespaces/%s/configmaps" % n)
    w = fake.watch("/api/v1/namespaces/%s/configmaps?watch=true&resourceVersion=%s&allowWatchBookmarks=true"
                   % (n, lst["metadata"]["resourceVersion"]))
    assert w.status == 200 and w.r.getheader("Transfer-Encoding") == "chunked"
    fake.apply("/api/v1/namespaces/%s/configmaps/w" % n, {"apiVersion": "v1", "kind": "ConfigMap",
                                                          "metadata": {"name": "w"}, "data": {"v": "1"}})
    fake.apply("/api/v1/namespaces/%s/configmaps/w" % n, {"apiVersion": "v1", "kind": "ConfigMap",
                                                          "metadata": {"name": "w"}, "data": {"v": "2"}})
    fake.req("DELETE", "/api/v1/namespaces/%s/configmaps/w" % n)
    evs = w.events_until(lambda e: e["type"] == "DELETED")
    assert [e["type"] for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
    assert evs[1]["object"]["data"] == {"v": "2"} and evs[1]["object"]["kind"] == "ConfigMap"
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
    assert rvs == sorted(rvs)
    bm = w.events_until(lambda e: e["type"] == "BOOKMARK")[-1]
    assert int(bm["object"]["metadata"]["resourceVersion"]) >= rvs[-1] and bm["object"]["kind"] == "ConfigMap"
    w.close()


def test_watch_nodes_and_selector_semantics(fake):
    w = fake.watch("/api/v1/nodes?watch=1")          # no resourceVersion: current state first
    added = w.events_until(lambda e: e["object"]["metadata"]["name"] == "node-3")
    assert [e["type"] for e in added] == ["ADDED"] * 3
    fake.control("POST", "nodes/node-3/ready", {"status": "Unknown"})
    ev = w.events_until(lambda e: e["type"] == "MODIFIED" and e["object"]["metadata"]["name"] == "node-3")[-1]
    ready = [c for c in ev["object"]["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
    fake.control("POST", "nodes/node-3/ready", {"status": "True"})
    w.close()
    # a label selector watch sees an object leave the selection as DELETED
    n = ns(fake, "wsel")
    path = "/api/v1/namespaces/%s/configmaps/x" % n
    fake.apply(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"pick": "yes"}}})
    w = fake.watch("/api/v1/namespaces/%s/configmaps?watch=1&labelSelector=pick%%3Dyes" % n)
    assert w.next_event()["type"] == "ADDED"
    fake.apply(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"pick": "no"}}})
    assert w.next_event()["type"] == "DELETED"
    w.close()


def test_watch_too_old_resource_version_is_gone(start_fake):
    f = start_fake("--nodes", "1")
    _, lst, _ = f.get("/api/v1/nodes")
    old = lst["metadata"]["resourceVersion"]
    f.control("POST", "nodes/node-1/ready", {"status": "False"})
    f.control("POST", "compact")
    w = f.watch("/api/v1/nodes?watch=1&resourceVersion=%s" % old)
    ev = w.next_event()
    assert ev["type"] == "ERROR"
    assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
    assert ev["object"]["message"].startswith("too old resource version: %s (" % old)
    assert w.next_event() is None
    w.close()
    st, body, _ = f.get("/api/v1/nodes?limit=1")
    assert st == 200


# --- auth, faults, TLS -------------------------------------------------------------------

def test_bearer_token_required_and_rotated(fake):
    st, body, _ = fake.get("/api/v1/nodes", token="")
    status_ok(st, body, 401, "Unauthorized")
    st, body, _ = fake.get("/version", token="wrong")
    status_ok(st, body, 401, "Unauthorized")
    with open(fake.token_file, "w") as fh:
        fh.write("rotated-token\n")
    try:
        os.utime(fake.token_file, (time.time() + 5, time.time() + 5))
        assert fake.get("/api/v1/nodes")[0] == 401
        assert fake.get("/api/v1/nodes", token="rotated-token")[0] == 200
    finally:
        with open(fake.token_file, "w") as fh:
            fh.write(fake.token + "\n")
        os.utime(fake.token_file, (time.time() + 10, time.time() + 10))
    assert fake.get("/api/v1/nodes")[0] == 200


def test_fault_injection_and_latency(fake):
    fake.control("POST", "fail", {"count": 2, "code": 503, "path": "/api/v1/namespaces/default/configmaps"})
    codes = [fake.get("/api/v1/namespaces/default/configmaps")[0] for _ in range(3)]
    assert codes == [503, 503, 200]
    fake.control("POST", "fail", {"count": 1, "code": 429, "retryAfter": 2, "method": "PATCH"})
    st, body, r = fake.apply("/api/v1/namespaces/default/configmaps/f",
                             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f"}})
    status_ok(st, body, 429, "TooManyRequests")
    assert r.getheader("Retry-After") == "2" and body["details"]["retryAfterSeconds"] == 2
    fake.control("POST", "fail", {"count": 1, "drop": True, "path": "/api/v1/namespaces/default/secrets"})
    c = fake.connect()
    c.request("GET", "/api/v1/namespaces/default/secrets", headers={"Authorization": "Bearer " + fake.token})
    try:
        c.getresponse()
        dropped = False
    except (OSError, Exception):
        dropped = True
    c.close()
    assert dropped
    fake.control("POST", "latency", {"ms": 300})
    try:
        t0 = time.time()
        assert fake.get("/api/v1/namespaces")[0] == 200
        assert time.time() - t0 >= 0.3
    finally:
        fake.control("POST", "latency", {"ms": 0})


def test_curl_over_tls_with_ca_file(fake):
    """curl is libcurl: the C worker's HTTP stack, with the throw-away CA."""
    base = ["curl", "-sS", "--max-time", "10", "-H", "Authorization: Bearer " + fake.token]
    out = subprocess.run(base + ["--cacert", fake.ca, fake.url + "/version"], capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["gitVersion"] == "v1.32.4"
    out = subprocess.run(base + [fake.url + "/version"], capture_output=True, text=True)
    assert out.returncode == 60          # the system trust store does not know the throw-away CA
    # a body over 1 KiB makes libcurl send "Expect: 100-continue"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"blob": "x" * 4096}}
    out = subprocess.run(base + ["--cacert", fake.ca, "-X", "PATCH", "-H", "Content-Type: application/apply-patch+yaml",
                                 "--data-binary", json.dumps(cm), "-w", "\n%{http_code}",
                                 fake.url + "/api/v1/namespaces/default/configmaps/big?fieldManager=curl&force=true"],
                         capture_output=True, text=True)
    body, code = out.stdout.rsplit("\n", 1)
    assert code == "201" and len(json.loads(body)["data"]["blob"]) == 4096


def test_nodes_from_fixture_files(start_fake):
    fx = os.path.join(ROOT, "tests", "fixtures", "nodes")
    f = start_fake("--nodes", "0", "--nodes-file", os.path.join(fx, "k3s-server.json"),
                   "--nodes-file", os.path.join(fx, "kubeadm-notready.json"))
    _, body, _ = f.get("/api/v1/nodes")
    by = {n["metadata"]["name"]: n for n in body["items"]}
    assert len(by) == 2
    srv = json.load(open(os.path.join(fx, "k3s-server.json")))
    assert by[srv["metadata"]["name"]]["status"]["capacity"] == srv["status"]["capacity"]
    out = f.kubectl("get", "nodes").stdout
    assert "control-plane,master" in out and "NotReady" in out


def test_dry_run_and_table(fake):
    n = ns(fake, "dry")
    st, body, _ = fake.req("POST", "/api/v1/namespaces/%s/configmaps?dryRun=All" % n,
                           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}})
    assert st == 201 and fake.get("/api/v1/namespaces/%s/configmaps/d" % n)[0] == 404
    st, t, _ = fake.get("/api/v1/nodes", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    assert t["kind"] == "Table" and [c["name"] for c in t["columnDefinitions"]][:5] == [
        "Name", "Status", "Roles", "Age", "Version"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_pvc_protection_holds_a_claim_in_use(fake):
    n = ns(fake, "pvc")
    fake.apply("/api/v1/namespaces/%s/persistentvolumeclaims/data" % n, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}}})
    pvc = fake.wait_for(lambda: (lambda b: b if b["status"].get("phase") == "Bound" else None)(
        fake.get("/api/v1/namespaces/%s/persistentvolumeclaims/data" % n)[1]), what="Bound")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"        # canonical quantity
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    d = deployment("db")
    d["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    fake.apply(dpath(n, "db"), d)
    fake.wait_for(lambda: list_pods(fake, n), what="a pod")
    st, body, _ = fake.req("DELETE", "/api/v1/namespaces/%s/persistentvolumeclaims/data" % n)
    assert st == 200 and body["metadata"]["deletionTimestamp"]
    time.sleep(0.3)
    held = fake.get("/api/v1/namespaces/%s/persistentvolumeclaims/data" % n)
    assert held[0] == 200 and held[1]["metadata"]["deletionTimestamp"]
    fake.req("DELETE", dpath(n, "db"))
    fake.wait_for(lambda: fake.get("/api/v1/namespaces/%s/persistentvolumeclaims/data" % n)[0] == 404,
                  what="claim released")


def test_watch_from_a_future_resource_version_times_out(fake):
    """A client that kept a resourceVersion across a restart of the server is told so."""
    _, lst, _ = fake.get("/api/v1/nodes")
    future = int(lst["metadata"]["resourceVersion"]) + 100000
    t0 = time.time()
    w = fake.watch("/api/v1/nodes?watch=1&resourceVersion=%d" % future)
    ev = w.next_event()
    assert time.time() - t0 >= 0.4          # it waited for the resourceVersion (--too-large-rv-wait 0.5)
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 504
    assert ev["object"]["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    w.close()


def test_recreate_strategy_stops_old_pods_first(fake):
    n = ns(fake, "recreate")
    d = deployment("web", replicas=2)
    d["spec"]["strategy"] = {"type": "Recreate"}
    fake.apply(dpath(n, "web"), d)
    fake.wait_for(lambda: fake.get(dpath(n, "web"))[1].get("status", {}).get("availableReplicas") == 2, what="2 up")
    old = {p["metadata"]["name"] for p in list_pods(fake, n)}
    _, lst, _ = fake.get("/api/v1/namespaces/%s/pods" % n)
    w = fake.watch("/api/v1/namespaces/%s/pods?watch=1&resourceVersion=%s" % (n, lst["metadata"]["resourceVersion"]))
    d["spec"]["template"]["metadata"]["annotations"] = {"v": "2"}
    fake.apply(dpath(n, "web"), d)
    evs = w.events_until(lambda e: e["type"] == "ADDED")
    w.close()
    deleted = {e["object"]["metadata"]["name"] for e in evs if e["type"] == "DELETED"}
    assert deleted == old                     # every old pod was gone before the first new one
    fake.wait_for(lambda: fake.get(dpath(n, "web"))[1]["status"].get("updatedReplicas") == 2, what="2 new")


def test_heartbeats_and_delayed_namespace_deletion(start_fake):
    f = start_fake("--nodes", "2", "--heartbeat", "0.3", "--namespace-delete-delay", "0.5")
    _, n1, _ = f.get("/api/v1/nodes/node-1")
    f.control("POST", "nodes/node-2/ready", {"status": "Unknown"})
    _, n2, _ = f.get("/api/v1/nodes/node-2")
    hb = lambda node: [c for c in node["status"]["conditions"] if c["type"] == "Ready"][0]["lastHeartbeatTime"]  # noqa
    f.wait_for(lambda: hb(f.get("/api/v1/nodes/node-1")[1]) != hb(n1), timeout=5, what="a heartbeat")
    assert hb(f.get("/api/v1/nodes/node-2")[1]) == hb(n2)          # a node that stopped posting stays silent
    n = ns(f, "slow")
    st, body, _ = f.req("DELETE", "/api/v1/namespaces/" + n)
    assert st == 200 and body["status"]["phase"] == "Terminating"
    st, body, _ = f.req("POST", "/api/v1/namespaces/%s/configmaps" % n, {"apiVersion": "v1", "kind": "ConfigMap",
                                                                          "metadata": {"name": "late"}})
    status_ok(st, body, 403, "Forbidden")
    assert body["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    f.wait_for(lambda: f.get("/api/v1/namespaces/" + n)[0] == 404, timeout=5, what="namespace gone")


def test_deletecollection_binding_and_readiness_control(fake):
    n = ns(fake, "misc")
    for i in range(3):
        fake.apply("/api/v1/namespaces/%s/configmaps/c%d" % (n, i), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c%d" % i, "labels": {"batch": str(i % 2)}}})
    st, body, _ = fake.req("DELETE", "/api/v1/namespaces/%s/configmaps?labelSelector=batch%%3D0" % n)
    assert st == 200 and body["kind"] == "ConfigMapList"
    assert sorted(i["metadata"]["name"] for i in body["items"]) == ["c0", "c2"]
    assert [i["metadata"]["name"] for i in fake.get("/api/v1/namespaces/%s/configmaps" % n)[1]["items"]] == ["c1"]
    # a pod for another scheduler waits until something binds it
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "manual"},
           "spec": {"schedulerName": "my-scheduler", "containers": [{"name": "c", "image": "nginx"}]}}
    fake.req("POST", "/api/v1/namespaces/%s/pods" % n, pod)
    time.sleep(0.2)
    assert "nodeName" not in fake.get("/api/v1/namespaces/%s/pods/manual" % n)[1]["spec"]
    st, body, _ = fake.req("POST", "/api/v1/namespaces/%s/pods/manual/binding" % n, {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "manual"}, "target": {"kind": "Node", "name": "node-2"}})
    assert st == 201
    p = fake.wait_for(lambda: (lambda b: b if b["status"].get("phase") == "Running" else None)(
        fake.get("/api/v1/namespaces/%s/pods/manual" % n)[1]), what="bound pod running")
    assert p["spec"]["nodeName"] == "node-2"
    # a readiness probe that starts failing
    fake.control("POST", "pods/%s/manual/ready" % n, {"ready": False})
    p = fake.get("/api/v1/namespaces/%s/pods/manual" % n)[1]
    assert {c["type"]: c["status"] for c in p["status"]["conditions"]}["Ready"] == "False"
    assert fake.get("/api/v1/namespaces/%s/pods/manual/log" % n)[0] == 200     # still running
    # a node condition other than Ready
    node = fake.control("POST", "nodes/node-2/condition", {"type": "DiskPressure", "status": "True",
                                                            "reason": "KubeletHasDiskPressure",
                                                            "message": "kubelet has disk pressure"})
    dp = [c for c in node["status"]["conditions"] if c["type"] == "DiskPressure"][0]
    assert dp["status"] == "True" and dp["reason"] == "KubeletHasDiskPressure"
    fake.control("POST", "nodes/node-2/condition", {"type": "DiskPressure", "status": "False",
                                                     "reason": "KubeletHasNoDiskPressure",
                                                     "message": "kubelet has no disk pressure"})


def test_plain_http_with_a_token(start_fake):
    f = start_fake("--nodes", "1", tls=False)
    assert f.url.startswith("http://")
    assert f.get("/api/v1/nodes")[0] == 200
    st, body, _ = f.get("/api/v1/nodes", token="")
    status_ok(st, body, 401, "Unauthorized")
    assert json.load(open(f.kubeconfig))["clusters"][0]["cluster"]["server"] == f.url


def test_every_seeded_node_has_a_valid_internal_ip(start_fake):
    """Node addresses stay valid IPv4 past 245 nodes (10.0.X.Y, Y <= 249),
    and distinct: a large fleet (bench/nodesync.sh) registers whole."""
    import ipaddress
    f = start_fake("--nodes", "500", "--no-events")
    _, lst, _ = f.get("/api/v1/nodes")
    ips = [a["address"] for n in lst["items"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
    assert len(ips) == 500 and len(set(ips)) == 500
    for ip in ips:
        ipaddress.IPv4Address(ip)
