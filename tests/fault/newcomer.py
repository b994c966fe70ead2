#!/usr/bin/env python3
"""What a newcomer sees after `make run` with no cluster configured: the
simulated cluster's nodes are in the registry, and a subscription to a
seeded catalog service goes from PENDING to RUNNING with its URL, through
httpd, PostgreSQL, the provisioner and the stand-in API.

  newcomer.py BASE_URL ADMIN_EMAIL        (the admin's password on stdin)
Exits 0 when the instance runs; prints what it saw either way."""
import sys
import time
import uuid

import requests

base, admin_email = sys.argv[1], sys.argv[2]
admin_pw = sys.stdin.readline().strip()
api = base + "/api/v1"


def call(method, path, token=None, body=None, want=(200, 201)):
    h = {"Authorization": "Bearer " + token} if token else {}
    r = requests.request(method, api + path, json=body, headers=h, timeout=10)
    if r.status_code not in want:
        sys.exit(f"{method} {path}: {r.status_code} {r.text[:300]}")
    return r.json().get("data")


def login(email, pw):
    return call("POST", "/auth/login", body={"email": email, "password": pw})["accessToken"]


admin = login(admin_email, admin_pw)


def sim_nodes():
    data = call("GET", "/workers", admin)
    items = data if isinstance(data, list) else next((v for v in data.values() if isinstance(v, list)), [])
    return [n for n in items if str(n.get("name", "")).startswith("sim-node-") and n.get("status") == "ACTIVE"]


# the provisioner lists the cluster's nodes into the registry once it runs
deadline = time.monotonic() + 30
while len(sim_nodes()) != 3 and time.monotonic() < deadline:
    time.sleep(0.5)
print(f"simulated nodes ACTIVE in the registry: {len(sim_nodes())}")
if len(sim_nodes()) != 3:
    sys.exit("the simulated cluster's 3 nodes are not ACTIVE in the registry: %s" % call("GET", "/workers", admin))

email = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"
pw = "Newcomer-Passw0rd"
call("POST", "/auth/register", body={"name": "Newcomer", "email": email, "password": pw, "confirmPassword": pw})
me = login(email, pw)
uid = call("GET", "/auth/me", me)["user"]["id"]
call("POST", "/admin/billing/adjustments", admin,
     {"userId": uid, "amount": 1000000, "reason": "newcomer walk-through"})
services = call("GET", "/services", me)
items = services if isinstance(services, list) else services.get("services", services.get("items", []))
if not items:
    sys.exit("the seeded catalog is empty")
svc = items[0]
sub = call("POST", "/subscriptions", me, {"serviceId": svc["id"]})
print(f"subscribed to {svc.get('name')}: subscription {sub['id']}")

deadline = time.monotonic() + 60
seen = []
pod = None
while time.monotonic() < deadline:
    inst = call("GET", f"/subscriptions/{sub['id']}", me).get("instance")
    if inst:
        pod = call("GET", f"/pods/{inst['id']}", me)
        if not seen or seen[-1] != pod["status"]:
            seen.append(pod["status"])
        if pod["status"] == "RUNNING" and pod.get("url"):
            break
    time.sleep(0.5)
print("statuses seen: " + " -> ".join(seen))
if not pod or pod["status"] != "RUNNING" or not pod.get("url", "").startswith("https://"):
    sys.exit(f"the instance did not reach RUNNING with its URL within 60 s: {pod}")
print(f"RUNNING at {pod['url']}")
