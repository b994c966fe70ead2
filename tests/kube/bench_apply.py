#!/usr/bin/env python3
"""Server-side apply throughput of the Kubernetes stand-in (tests/fakes/kubeapi.py).

Not a test (no figure is asserted anywhere): it starts the fake on a free port, applies
objects with PATCH application/apply-patch+yaml over keep-alive connections from a few
threads, and prints applies per second.

  /usr/bin/python3 tests/kube/bench_apply.py [--kind configmap|deployment] [--count N]
                                             [--threads T] [--replicas R] [--tls]
  /usr/bin/python3 tests/kube/bench_apply.py --wrk [--kind ...] [--seconds S]
      (wrk, a C client, applies distinct objects for S seconds over 4 connections: the
       server's own limit, without a Python client's cost)
"""
import argparse
import shutil
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "..", "fakes", "kubeapi.py")


def body(kind, i, replicas, ns):
    if kind == "configmap":
        return "/api/v1/namespaces/%s/configmaps/cm-%d" % (ns, i), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-%d" % i, "labels": {"app": "bench"}},
            "data": {"key": "value-%d" % i, "other": "x" * 64}}
    name = "app-%d" % i
    return "/apis/apps/v1/namespaces/%s/deployments/%s" % (ns, name), {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, "paas.io/instance": str(i)}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                                       "ports": [{"containerPort": 8080}],
                                                       "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["configmap", "deployment"], default="deployment")
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--replicas", type=int, default=0)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--rounds", type=int, default=2, help="round 1 creates, later rounds re-apply changed objects")
    ap.add_argument("--wrk", action="store_true", help="drive the applies with wrk instead")
    ap.add_argument("--seconds", type=int, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kubeapi-bench-")
    args = [sys.executable, FAKE, "--port-file", os.path.join(tmp, "port"), "--token", "bench",
            "--nodes", "50", "--node-cpu", "64", "--node-memory", "256Gi", "--node-pods", "500", "--no-events"]
    if a.tls:
        args += ["--tls-dir", os.path.join(tmp, "tls")]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(os.path.join(tmp, "port")):
                break
            time.sleep(0.1)
        port = int(open(os.path.join(tmp, "port")).read())
        ctx = ssl.create_default_context(cafile=os.path.join(tmp, "tls", "ca.crt")) if a.tls else None

        def conn():
            if ctx:
                return http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
            return http.client.HTTPConnection("127.0.0.1", port)
        c = conn()
        c.request("POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": "bench"}}),
                  {"Authorization": "Bearer bench", "Content-Type": "application/json"})
        c.getresponse().read()
        if a.wrk:
            return run_wrk(a, port, tmp)
        for rnd in range(a.rounds):
            errors = []

            def worker(k):
                c = conn()
                for i in range(k, a.count, a.threads):
                    path, obj = body(a.kind, i, a.replicas, "bench")
                    if rnd:
                        obj["metadata"]["labels"]["round"] = str(rnd)
                    c.request("PATCH", path + "?fieldManager=bench&force=true", json.dumps(obj),
                              {"Authorization": "Bearer bench", "Content-Type": "application/apply-patch+yaml"})
                    r = c.getresponse()
                    r.read()
                    if r.status not in (200, 201):
                        errors.append(r.status)
            t0 = time.time()
            ts = [threading.Thread(target=worker, args=(k,)) for k in range(a.threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            dt = time.time() - t0
            if a.kind == "deployment" and a.replicas and rnd == 0:
                # how long until the controller has every deployment available
                while True:
                    c.request("GET", "/apis/apps/v1/namespaces/bench/deployments", headers={"Authorization": "Bearer bench"})
                    items = json.loads(c.getresponse().read())["items"]
                    if sum(1 for d in items if d.get("status", {}).get("availableReplicas") == a.replicas) == a.count:
                        break
                    time.sleep(0.2)
                print("  all %d deployments available %.2f s after the first apply" % (a.count, time.time() - t0))
            print("%s round %d: %d applies of %s (replicas %d) in %.2f s over %d connections%s: %.0f applies/s%s"
                  % ("create" if rnd == 0 else "update", rnd + 1, a.count, a.kind, a.replicas, dt, a.threads,
                     " (TLS)" if a.tls else "", a.count / dt, " ERRORS %s" % errors[:5] if errors else ""))
    finally:
        proc.terminate()
        proc.wait()


WRK_SCRIPT = r'''
counter = 0
local threadid = 0
function setup(thread)
  thread:set("tid", threadid)
  threadid = threadid + 1
end
function init(args)
  kind, replicas = args[1], args[2]
end
request = function()
  counter = counter + 1
  local name = "app-" .. tid .. "-" .. counter
  local path, body
  if kind == "configmap" then
    path = "/api/v1/namespaces/bench/configmaps/" .. name .. "?fieldManager=bench&force=true"
    body = '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"' .. name .. '","labels":{"app":"bench"}},'
      .. '"data":{"key":"value-' .. counter .. '"}}'
  else
    path = "/apis/apps/v1/namespaces/bench/deployments/" .. name .. "?fieldManager=bench&force=true"
    body = '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"' .. name .. '","labels":{"app":"'
      .. name .. '"}},"spec":{"replicas":' .. replicas .. ',"selector":{"matchLabels":{"app":"' .. name .. '"}},'
      .. '"template":{"metadata":{"labels":{"app":"' .. name .. '"}},"spec":{"containers":[{"name":"web",'
      .. '"image":"nginx:1.27","ports":[{"containerPort":8080}],"resources":{"requests":{"cpu":"10m",'
      .. '"memory":"16Mi"}}}]}}}}'
  end
  return wrk.format("PATCH", path, {["Content-Type"]="application/apply-patch+yaml",
                                    ["Authorization"]="Bearer bench"}, body)
end
'''


def run_wrk(a, port, tmp):
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed")
    script = os.path.join(tmp, "apply.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    url = "%s://127.0.0.1:%d" % ("https" if a.tls else "http", port)
    out = subprocess.run(["wrk", "-t2", "-c4", "-d%ds" % a.seconds, "-s", script, url, "--", a.kind, str(a.replicas)],
                         capture_output=True, text=True).stdout
    rps = [line for line in out.splitlines() if "Requests/sec" in line or "Latency" in line or "Non-2xx" in line]
    print("wrk, %d s of applies of distinct %ss (replicas %d) over 4 connections%s:" % (
        a.seconds, a.kind, a.replicas, " (TLS)" if a.tls else ""))
    print("\n".join(rps))


if __name__ == "__main__":
    main()
