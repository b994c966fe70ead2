"""What the stand-in stores and returns, validated against Kubernetes' published schemas.

tests/kube/validate.mjs runs the npm package kubernetes-models (models generated from
Kubernetes' OpenAPI spec; nobody here wrote them) over every JSON body every stand-in of the
session sent (--capture: the kubectl checks, the protocol checks, and a scenario of its own
that touches every kind and every error, so that this file alone still covers them) and over
every object they stored (/_fake/objects when they stop). npm installs the packages into
tests/kube/node_modules from package-lock.json when they are missing.
"""
import json
import os
import subprocess

import pytest

import yaml

from conftest import HERE, RECORDS

NODE_MODULES = os.path.join(HERE, "node_modules")
LOCK = os.path.join(HERE, "package-lock.json")
NS = "schema"


@pytest.fixture(scope="module")
def npm():
    stamp = os.path.join(NODE_MODULES, ".package-lock.json")
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(LOCK):
        p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE,
                           capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, "npm ci failed:\n" + p.stdout + p.stderr
    return NODE_MODULES


def validate(*files, stdin=None):
    p = subprocess.run(["node", os.path.join(HERE, "validate.mjs")] + list(files), input=stdin,
                       capture_output=True, text=True, timeout=120)
    lines = p.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return p.returncode, summary, p.stdout + p.stderr


GOOD = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


def test_validator_accepts_good_and_rejects_broken_objects(npm):
    rc, summary, out = validate(stdin=json.dumps(GOOD))
    assert rc == 0 and summary["checked"] == 1 and summary["failed"] == 0, out
    broken = json.loads(json.dumps(GOOD))
    del broken["spec"]["selector"]
    broken["spec"]["replicas"] = "three"
    broken["metadata"]["name"] = "broken"
    # and in a list (bad timestamp), through a watch event (template without containers)
    item = dict(GOOD, metadata={"name": "x", "creationTimestamp": "yesterday"})
    lst = {"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": [
        {k: v for k, v in item.items() if k not in ("apiVersion", "kind")}]}
    ev = {"type": "ADDED", "object": dict(GOOD, metadata={"name": "ev"}, spec={"template": {}})}
    rc, summary, out = validate("--verbose", stdin="\n".join(json.dumps(d) for d in (GOOD, broken, lst, ev)) + "\n")
    assert rc == 1 and summary["failed"] == 3, out
    assert "ok   apps/v1/Deployment web" in out
    assert "FAIL apps/v1/Deployment broken" in out
    assert "must have required property selector" in out or "must have required property 'selector'" in out
    assert "replicas must be integer" in out
    assert 'must match format "date-time"' in out
    assert "FAIL apps/v1/Deployment ev" in out


PATHS = {"Namespace": "/api/v1/namespaces/%(n)s", "Secret": "/api/v1/namespaces/%(ns)s/secrets/%(n)s",
         "ResourceQuota": "/api/v1/namespaces/%(ns)s/resourcequotas/%(n)s",
         "LimitRange": "/api/v1/namespaces/%(ns)s/limitranges/%(n)s",
         "PersistentVolumeClaim": "/api/v1/namespaces/%(ns)s/persistentvolumeclaims/%(n)s",
         "Service": "/api/v1/namespaces/%(ns)s/services/%(n)s",
         "Deployment": "/apis/apps/v1/namespaces/%(ns)s/deployments/%(n)s",
         "Ingress": "/apis/networking.k8s.io/v1/namespaces/%(ns)s/ingresses/%(n)s",
         "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/%(ns)s/networkpolicies/%(n)s",
         "PodDisruptionBudget": "/apis/policy/v1/namespaces/%(ns)s/poddisruptionbudgets/%(n)s"}
LISTS = ["/api/v1/namespaces", "/api/v1/nodes", "/api/v1/pods", "/api/v1/events", "/api/v1/secrets",
         "/api/v1/configmaps", "/api/v1/persistentvolumeclaims", "/api/v1/services", "/api/v1/resourcequotas",
         "/api/v1/limitranges", "/apis/apps/v1/deployments", "/apis/apps/v1/replicasets",
         "/apis/networking.k8s.io/v1/ingresses", "/apis/networking.k8s.io/v1/networkpolicies",
         "/apis/policy/v1/poddisruptionbudgets"]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
AGG = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
       "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")


def scenario(f):
    """Every kind, subresource, representation and error of the stand-in, over raw HTTP."""
    docs = [d for d in yaml.safe_load_all(open(os.path.join(HERE, "manifests", "app.yaml"))) if d]
    docs += [d for d in yaml.safe_load_all(open(os.path.join(HERE, "manifests", "pdb.yaml"))) if d]
    for d in docs:
        d["metadata"]["name"] = NS if d["kind"] == "Namespace" else d["metadata"]["name"]
        d["metadata"].pop("namespace", None)
        if d["kind"] == "PodDisruptionBudget":
            d["spec"]["minAvailable"] = 1
        st, body, _ = f.apply(PATHS[d["kind"]] % {"ns": NS, "n": d["metadata"]["name"]}, d)
        assert st in (200, 201), body
    f.apply("/api/v1/namespaces/%s/configmaps/cm" % NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                         "metadata": {"name": "cm"}, "data": {"a": "b"}})
    f.apply("/api/v1/namespaces/%s/services/lb" % NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
                                                        "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                                                                 "ports": [{"port": 443}]}})
    for app, image in (("bad", "example/doesnotexist:1"), ("crash", "example/crashloop:1")):
        f.apply("/apis/apps/v1/namespaces/%s/deployments/%s" % (NS, app), {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app},
            "spec": {"selector": {"matchLabels": {"app": app}}, "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": image,
                                         "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}]}}}})
    f.wait_for(lambda: f.get("/apis/apps/v1/namespaces/%s/deployments/web" % NS)[1].get("status", {})
               .get("availableReplicas") == 2, what="web available")
    f.wait_for(lambda: any(
        (p["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting", {}).get("reason")
        == "ImagePullBackOff" for p in f.get("/api/v1/namespaces/%s/pods" % NS)[1]["items"]), what="ImagePullBackOff")
    for path in LISTS:
        f.get(path)
        f.get(path, headers={"Accept": TABLE})
        f.get(path + "?limit=1")
    f.get("/api/v1/pods", headers={"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"})
    for d in docs:
        f.get(PATHS[d["kind"]] % {"ns": NS, "n": d["metadata"]["name"]})
    for p in ("/api", "/apis"):
        f.get(p, headers={"Accept": AGG})
    for p in ("/api", "/apis", "/api/v1", "/apis/apps/v1", "/apis/networking.k8s.io/v1", "/apis/policy/v1",
              "/apis/policy", "/version", "/", "/openapi/v3", "/openapi/v3/apis/apps/v1"):
        f.get(p)
    f.get("/apis/apps/v1/namespaces/%s/deployments/web/scale" % NS)
    f.req("PATCH", "/apis/apps/v1/namespaces/%s/deployments/web/scale" % NS, {"spec": {"replicas": 3}},
          ctype="application/merge-patch+json")
    # every error
    f.req("POST", "/api/v1/namespaces/%s/configmaps" % NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                             "metadata": {"name": "cm"}})                    # 409
    f.req("PUT", "/api/v1/namespaces/%s/configmaps/cm" % NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                               "metadata": {"name": "cm", "resourceVersion": "1"}})  # 409
    f.apply("/apis/apps/v1/namespaces/%s/deployments/web" % NS, {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                  "metadata": {"name": "web"}, "spec": {"replicas": 9}},
            manager="other", force=False)                                                                    # 409
    f.get("/api/v1/namespaces/%s/configmaps/none" % NS)                                                     # 404
    f.apply("/apis/apps/v1/namespaces/%s/deployments/x" % NS, {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                "metadata": {"name": "x"}, "spec": {}})     # 422
    f.req("POST", "/api/v1/namespaces/%s/pods" % NS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
                                                       "spec": {"containers": [{"name": "c", "image": "nginx",
                                                                                "resources": {"requests": {"cpu": "64"}}}]}})  # 403
    f.get("/api/v1/nodes", token="nope")                                                                     # 401
    f.get("/api/v1/pods?fieldSelector=spec.bogus%3D1")                                                       # 400
    f.req("PATCH", "/api/v1/namespaces/%s/configmaps/cm" % NS, "{}", ctype="text/plain")                     # 415
    f.req("PUT", "/api/v1/namespaces/%s/pods/none/log" % NS, "{}")                                           # 405
    f.apply(PATHS["PodDisruptionBudget"] % {"ns": NS, "n": "web"}, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 5, "selector": {"matchLabels": {"app": "web"}}}})
    f.wait_for(lambda: f.get(PATHS["PodDisruptionBudget"] % {"ns": NS, "n": "web"})[1]["status"]
               ["observedGeneration"] == 2, what="pdb generation 2")
    pod = [p for p in f.get("/api/v1/namespaces/%s/pods?labelSelector=app%%3Dweb" % NS)[1]["items"]
           if p["status"].get("phase") == "Running"][0]["metadata"]["name"]
    ev = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}}
    f.req("POST", "/api/v1/namespaces/%s/pods/%s/eviction" % (NS, pod), ev)                                 # 429
    f.req("DELETE", PATHS["PodDisruptionBudget"] % {"ns": NS, "n": "web"})
    f.req("POST", "/api/v1/namespaces/%s/pods/%s/eviction" % (NS, pod), ev)                                 # 201
    f.apply(PATHS["PodDisruptionBudget"] % {"ns": NS, "n": "half"}, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "half"},
        "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}})
    f.control("POST", "nodes/node-3/ready", {"status": "False"})
    _, lst, _ = f.get("/api/v1/nodes")
    w = f.watch("/api/v1/nodes?watch=1&allowWatchBookmarks=true&resourceVersion=" + lst["metadata"]["resourceVersion"])
    f.control("POST", "nodes/node-3/ready", {"status": "True"})
    w.events_until(lambda e: e["type"] == "BOOKMARK")
    w.close()
    w = f.watch("/api/v1/namespaces/%s/pods?watch=1" % NS)
    w.events_until(lambda e: e["type"] == "ADDED")
    w.close()
    f.control("POST", "compact")
    w = f.watch("/api/v1/pods?watch=1&resourceVersion=1")                                                     # 410
    w.events_until(lambda e: e["type"] == "ERROR")
    w.close()
    f.req("DELETE", "/apis/apps/v1/namespaces/%s/deployments/crash" % NS)
    f.req("DELETE", "/api/v1/namespaces/%s/services/lb" % NS)


def test_everything_served_and_stored_is_valid(npm, start_fake):
    f = start_fake("--nodes", "3", "--ready-delay", "0.2", "--bookmark-interval", "0.3")
    scenario(f)
    f.dump()
    served = [c for c, _ in RECORDS if os.path.exists(c)]
    stored = [d for _, d in RECORDS if os.path.exists(d)]
    rc, summary, out = validate(*served)
    assert rc == 0 and summary["failed"] == 0, out[-6000:]
    served_kinds, skipped = summary["kinds"], summary["skippedKinds"]
    rc, summary, out = validate(*stored)
    assert rc == 0 and summary["failed"] == 0, out[-6000:]
    stored_kinds = summary["kinds"]
    for kind in ("v1/Namespace", "v1/Secret", "v1/ConfigMap", "v1/PersistentVolumeClaim", "v1/Service", "v1/Pod",
                 "v1/ResourceQuota", "v1/LimitRange", "v1/Node", "v1/Event", "apps/v1/Deployment",
                 "apps/v1/ReplicaSet", "networking.k8s.io/v1/Ingress", "networking.k8s.io/v1/NetworkPolicy",
                 "policy/v1/PodDisruptionBudget"):
        assert stored_kinds.get(kind), "no stored %s was validated" % kind
        assert served_kinds.get(kind), "no served %s was validated" % kind
    for kind in ("v1/Status", "meta/WatchEvent", "v1/APIResourceList", "v1/APIGroupList", "meta/APIVersions",
                 "v1/APIGroup", "autoscaling/v1/Scale", "version.Info", "v1/PodList", "v1/NodeList",
                 "apps/v1/DeploymentList", "policy/v1/PodDisruptionBudgetList", "meta/ListMeta", "meta/ObjectMeta"):
        assert served_kinds.get(kind), "no served %s was validated: %s" % (kind, served_kinds)
    assert not summary["skippedKinds"]
    # only documents without a published model went unchecked
    assert set(skipped) <= {"apidiscovery.k8s.io/v2/APIGroupDiscoveryList", "OpenAPI v3 document",
                            "path list / OpenAPI v3 index"}, skipped
    codes = set()
    for path in served:
        for line in open(path):
            if '"kind":"Status"' in line:
                body = json.loads(line)["body"]
                codes.add((body.get("object") or body).get("code"))     # watch ERROR events hold theirs
    assert {400, 401, 403, 404, 405, 409, 410, 415, 422, 429} <= codes, sorted(codes)
