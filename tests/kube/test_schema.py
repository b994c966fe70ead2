"""What the stand-in stores and returns, validated against Kubernetes' published schemas.

tests/kube/validate.mjs runs the npm package kubernetes-models (models generated from
Kubernetes' OpenAPI spec; nobody here wrote them) over every JSON body the stand-in sent
during a scenario that touches every kind and every error (--capture) and over every object
it stores (/_fake/objects). npm installs the packages into tests/kube/node_modules from
package-lock.json when they are missing.
"""
import json
import os
import subprocess

import pytest

from conftest import HERE

NODE_MODULES = os.path.join(HERE, "node_modules")
LOCK = os.path.join(HERE, "package-lock.json")
NS = "tenant-a"


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
    rc, summary, out = validate(stdin=json.dumps(broken))
    assert rc == 1 and summary["failed"] == 1, out
    assert "FAIL apps/v1/Deployment web" in out
    assert "must have required property selector" in out or "must have required property 'selector'" in out
    assert "replicas must be integer" in out
    # and in a list, through a watch event, and with a bad timestamp
    item = dict(GOOD, metadata={"name": "x", "creationTimestamp": "yesterday"})
    lst = {"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": [
        {k: v for k, v in item.items() if k not in ("apiVersion", "kind")}]}
    ev = {"type": "ADDED", "object": dict(GOOD, spec={"template": {}})}
    rc, summary, out = validate(stdin=json.dumps(lst) + "\n" + json.dumps(ev) + "\n")
    assert rc == 1 and summary["failed"] == 2, out
    assert 'must match format "date-time"' in out


def scenario(f):
    """Touch every kind, subresource and error the stand-in has."""
    k = f.kubectl
    k("version", "-o", "json")
    k("api-resources")
    k("get", "nodes", "-o", "wide")
    k("get", "ns")
    k("apply", "--server-side", "-f", os.path.join(HERE, "manifests", "app.yaml"))
    k("rollout", "status", "deploy/web", "-n", NS, "--timeout=20s")
    k("get", "deploy,rs,pods,svc,pvc,ing,netpol,quota,limits,secret,events", "-n", NS, "-o", "wide")
    k("get", "deploy", "web", "-n", NS, "-o", "json")
    pod = json.loads(k("get", "pods", "-n", NS, "-o", "json").stdout)["items"][0]["metadata"]["name"]
    k("logs", pod, "-n", NS, "--tail=1")
    k("cordon", "node-1")
    k("uncordon", "node-1")
    pdb = open(os.path.join(HERE, "manifests", "pdb.yaml")).read().replace("minAvailable: 2", "minAvailable: 1")
    k("apply", "--server-side", "-f", "-", input=pdb)
    node = json.loads(k("get", "pod", pod, "-n", NS, "-o", "json").stdout)["spec"]["nodeName"]
    k("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=20s")
    k("uncordon", node)
    k("scale", "deploy", "web", "-n", NS, "--replicas=3")
    k("rollout", "status", "deploy/web", "-n", NS, "--timeout=20s")
    k("set", "image", "deploy/web", "web=example/doesnotexist:1", "-n", NS)
    k("create", "-f", "-", "-n", NS, input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "crash"},
        "spec": {"selector": {"matchLabels": {"app": "crash"}}, "template": {
            "metadata": {"labels": {"app": "crash"}},
            "spec": {"containers": [{"name": "c", "image": "example/crashloop:1",
                                     "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}]}}}}))
    # raw protocol, with every error
    f.req("POST", "/api/v1/namespaces/%s/configmaps" % NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                             "metadata": {"name": "cm"}, "data": {"a": "b"}})
    f.req("POST", "/api/v1/namespaces/%s/configmaps" % NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                             "metadata": {"name": "cm"}})                   # 409
    f.req("PUT", "/api/v1/namespaces/%s/configmaps/cm" % NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                               "metadata": {"name": "cm", "resourceVersion": "1"}})  # 409
    f.get("/api/v1/namespaces/%s/configmaps/none" % NS)                                                    # 404
    f.apply("/apis/apps/v1/namespaces/%s/deployments/bad" % NS, {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                  "metadata": {"name": "bad"}, "spec": {}})  # 422
    f.req("POST", "/api/v1/namespaces/%s/pods" % NS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
                                                       "spec": {"containers": [{"name": "c", "image": "nginx",
                                                                                "resources": {"requests": {"cpu": "64"}}}]}})  # 403
    f.get("/api/v1/nodes", token="nope")                                                                    # 401
    f.get("/api/v1/pods?fieldSelector=spec.bogus%3D1")                                                      # 400
    f.req("PATCH", "/api/v1/namespaces/%s/configmaps/cm" % NS, "{}", ctype="text/plain")                    # 415
    f.apply("/apis/apps/v1/namespaces/%s/deployments/web" % NS, {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                  "metadata": {"name": "web"}, "spec": {"replicas": 9}},
            manager="other", force=False)                                                                   # 409 apply
    f.apply("/apis/policy/v1/namespaces/%s/poddisruptionbudgets/web" % NS, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}}})
    running = [p for p in f.get("/api/v1/namespaces/%s/pods?labelSelector=app%%3Dweb" % NS)[1]["items"]
               if p["status"].get("phase") == "Running"]
    f.wait_for(lambda: f.get("/apis/policy/v1/namespaces/%s/poddisruptionbudgets/web" % NS)[1]["status"]
               ["observedGeneration"] == 2, what="pdb generation 2")
    f.req("POST", "/api/v1/namespaces/%s/pods/%s/eviction" % (NS, running[0]["metadata"]["name"]),
          {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": running[0]["metadata"]["name"]}})  # 429
    f.apply("/api/v1/namespaces/%s/services/lb" % NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
                                                        "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                                                                 "ports": [{"port": 443}]}})
    f.get("/apis/apps/v1/namespaces/%s/deployments/web/scale" % NS)
    for path in ("/api/v1/namespaces/%s/events", "/apis/apps/v1/namespaces/%s/replicasets", "/api/v1/namespaces/%s/secrets",
                 "/api/v1/namespaces/%s/limitranges", "/apis/networking.k8s.io/v1/namespaces/%s/ingresses"):
        f.get(path % NS)
    f.get("/api/v1/namespaces/%s/pods?limit=1" % NS)
    f.get("/api/v1/pods", headers={"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"})
    f.get("/apis/apps/v1/namespaces/%s/deployments" % NS, headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io", "Content-Type": "application/json"})
    for p in ("/api", "/apis", "/api/v1", "/apis/apps/v1", "/apis/networking.k8s.io/v1", "/apis/policy/v1",
              "/apis/policy", "/version", "/openapi/v3", "/openapi/v3/apis/apps/v1"):
        f.get(p)
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
    w = f.watch("/api/v1/pods?watch=1&resourceVersion=1")                                                    # 410
    w.events_until(lambda e: e["type"] == "ERROR")
    w.close()
    f.wait_for(lambda: any(
        (p["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("waiting", {}).get("reason")
        == "ImagePullBackOff" for p in f.get("/api/v1/namespaces/%s/pods" % NS)[1]["items"]), what="ImagePullBackOff")
    k("delete", "deploy", "crash", "-n", NS)


def test_everything_served_and_stored_is_valid(npm, start_fake, tmp_path):
    capture = str(tmp_path / "capture.jsonl")
    f = start_fake("--nodes", "3", "--ready-delay", "0.2", "--bookmark-interval", "0.3", "--capture", capture)
    scenario(f)
    _, dump, _ = f.get("/_fake/objects", token="")
    stored = str(tmp_path / "stored.json")
    json.dump(dump, open(stored, "w"))
    rc, summary, out = validate(capture)
    assert rc == 0 and summary["failed"] == 0, out[-6000:]
    served = summary["kinds"]
    rc, summary, out = validate(stored)
    assert rc == 0 and summary["failed"] == 0, out[-6000:]
    kept = summary["kinds"]
    kinds = ["v1/Namespace", "v1/Secret", "v1/ConfigMap", "v1/PersistentVolumeClaim", "v1/Service", "v1/Pod",
             "v1/ResourceQuota", "v1/LimitRange", "v1/Node", "v1/Event", "apps/v1/Deployment", "apps/v1/ReplicaSet",
             "networking.k8s.io/v1/Ingress", "networking.k8s.io/v1/NetworkPolicy", "policy/v1/PodDisruptionBudget"]
    for kind in kinds:
        assert kept.get(kind), "no stored %s was validated" % kind
        assert served.get(kind), "no served %s was validated" % kind
    for kind in ("v1/Status", "meta/WatchEvent", "v1/APIResourceList", "v1/APIGroupList", "meta/APIVersions",
                 "v1/APIGroup", "autoscaling/v1/Scale", "version.Info", "v1/PodList", "v1/NodeList",
                 "apps/v1/DeploymentList", "meta/ListMeta", "meta/ObjectMeta"):
        assert served.get(kind), "no served %s was validated: %s" % (kind, served)
    # only documents without a published model went unchecked
    assert not summary["skippedKinds"]
    rc, s2, out = validate(capture)
    assert set(s2["skippedKinds"]) <= {"apidiscovery.k8s.io/v2/APIGroupDiscoveryList", "OpenAPI v3 document",
                                       "path list / OpenAPI v3 index"}, s2["skippedKinds"]
    statuses = {json.loads(line)["code"] for line in open(capture) if '"kind":"Status"' in line}
    assert {400, 401, 403, 404, 409, 415, 422, 429} <= statuses, statuses
