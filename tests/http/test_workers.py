"""Worker nodes over HTTP: registration with the original field set and with
real `kubectl get node -o json` documents (tests/fixtures/nodes), join and
node tokens, the heartbeat authorization matrix, bad input, admin routes and
the status machine's 409s."""
import json
import pathlib
import secrets
import uuid

import pytest
import requests

from conftest import BASE, Api, check_envelope, metric, psql, register
from sessions import Session

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "nodes"

ORIGINAL_FIELDS = ["id", "name", "hostname", "ipAddress", "architecture", "operatingSystem", "cpuCores",
                   "cpuArchitecture", "totalMemory", "totalStorage", "allocatedCPU", "allocatedMemory",
                   "allocatedStorage", "maxPods", "currentPods", "status", "isReady", "isSchedulable",
                   "lastHeartbeat", "lastHealthCheck", "labels", "taints", "kubeletVersion",
                   "containerRuntime", "kernelVersion", "osImage", "createdAt", "updatedAt"]


@pytest.fixture(scope="module")
def join_token():
    tok = "http-join-" + secrets.token_hex(16)
    psql("SELECT api.workers_join_token_add(:'a1', 'http tests')", tok)
    return tok


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def spec(name=None, **extra):
    name = name or unique("node")
    body = {"name": name, "hostname": f"{name}.cluster.local", "ipAddress": "192.168.1.10",
            "cpuCores": 24, "cpuArchitecture": "AMD Ryzen 9 3900X", "totalMemory": "64Gi",
            "totalStorage": "1Ti", "architecture": "amd64", "operatingSystem": "linux",
            "kubeletVersion": "v1.28.0", "containerRuntime": "containerd://1.7.0",
            "labels": {"node-role.kubernetes.io/worker": "worker", "zone": "home"},
            "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}
    body.update(extra)
    return body


def register_node(join_token, body=None, status=201):
    r = Api().post("/api/v1/workers/register", body or spec(), token=join_token)
    return check_envelope(r, status)["data"]


def fixture_doc(name):
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    new = unique(doc["metadata"]["name"])
    for a in doc["status"]["addresses"]:
        if a["type"] == "Hostname":
            a["address"] = new
    doc["metadata"]["name"] = new
    doc["metadata"].setdefault("labels", {})["kubernetes.io/hostname"] = new
    return doc


def test_register_with_the_original_field_set(join_token, admin):
    body = spec()
    data = register_node(join_token, body)
    assert data["status"] == "ACTIVE" and data["isReady"] and data["isSchedulable"]
    assert data["created"] is True
    assert len(data["nodeToken"]) == 64 and int(data["nodeToken"], 16) >= 0
    node = check_envelope(Api(admin["access"]).get(f"/api/v1/workers/{body['name']}"), 200)["data"]
    for f in ORIGINAL_FIELDS:
        assert f in node, f
    assert node["totalMemory"] == "64Gi" and node["capacity"]["memoryBytes"] == 64 * 2**30
    assert node["capacity"]["storageBytes"] == 2**40 and node["capacity"]["cpuMillicores"] == 24000
    assert node["maxPods"] == 110  # the register default
    assert node["labels"]["zone"] == "home" and node["taints"][0]["value"] == "db"
    by_id = check_envelope(Api(admin["access"]).get(f"/api/v1/workers/{data['id']}"), 200)["data"]
    assert by_id["name"] == body["name"]

    # re-registering (with the node's own token) is idempotent and rotates the node token
    again = register_node(data["nodeToken"], dict(body, ipAddress="192.168.1.99"), status=200)
    assert again["id"] == data["id"] and again["created"] is False
    assert again["nodeToken"] != data["nodeToken"]
    hb = f"/api/v1/workers/{body['name']}/heartbeat"
    check_envelope(Api().put(hb, {}, token=data["nodeToken"]), 401)
    check_envelope(Api().put(hb, {}, token=again["nodeToken"]), 200)
    node = check_envelope(Api(admin["access"]).get(f"/api/v1/workers/{data['id']}"), 200)["data"]
    assert node["ipAddress"] == "192.168.1.99"


EXPECTED = {
    # fixture: (status, isSchedulable, capacity, allocatable, kubelet)
    "minikube": ("ACTIVE", True, [4000, 8361529344, 17361141760, 110], [4000, 8256671744, 15625027559, 110], "v1.15.2"),
    "k3d-server": ("ACTIVE", True, [8000, 16693710848, 249343860736, 110], [8000, 16693710848, 236878768737, 110], "v1.17.3+k3s1"),
    "k3s-server": ("ACTIVE", True, [1000, 1035538432, 1283612672, 110], [1000, 1035538432, 1219432038, 110], "v1.31.5+k3s1"),
    "kubeadm-notready": ("NOT_READY", False, [4000, 33736249344, 105553760256, 110], [4000, 33631391744, 94998384074, 110], "v1.27.0"),
    "k3s-agent-cordoned": ("ACTIVE", False, [4000, 16723320832, 105553760256, 110], [3800, 16618463232, 94998384074, 110], "v1.31.5+k3s1"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_register_with_a_kubernetes_node_object(join_token, admin, name):
    doc = fixture_doc(name)
    status, schedulable, cap, alloc, kubelet = EXPECTED[name]
    data = register_node(join_token, doc)
    assert data["status"] == status and data["isSchedulable"] is schedulable
    node = check_envelope(Api(admin["access"]).get(f"/api/v1/workers/{doc['metadata']['name']}"), 200)["data"]
    keys = ["cpuMillicores", "memoryBytes", "storageBytes", "pods"]
    assert [node["capacity"][k] for k in keys] == cap
    assert [node["allocatable"][k] for k in keys] == alloc
    assert node["kubeletVersion"] == kubelet
    assert node["containerRuntime"] == doc["status"]["nodeInfo"]["containerRuntimeVersion"]
    assert node["ipAddress"] == next(a["address"] for a in doc["status"]["addresses"] if a["type"] == "InternalIP")
    assert node["labels"] == doc["metadata"]["labels"]
    assert node["taints"] == doc["spec"].get("taints", [])
    assert node["conditions"] == doc["status"]["conditions"]
    assert node["kubeUid"] == doc["metadata"]["uid"]


def test_register_a_kubectl_list_and_k3s_quirks(join_token, admin):
    doc = fixture_doc("k3s-server")
    wrapped = {"apiVersion": "v1", "items": [doc], "kind": "List", "metadata": {"resourceVersion": ""}}
    data = register_node(join_token, wrapped)
    node = check_envelope(Api(admin["access"]).get(f"/api/v1/workers/{data['id']}"), 200)["data"]
    assert node["providerId"] == "k3s://noder" and node["osImage"] == "K3s v1.31.5+k3s1"
    assert node["totalStorage"] == "1253528Ki"  # the original string is kept
    two = {"kind": "List", "items": [doc, doc]}
    body = check_envelope(Api().post("/api/v1/workers/register", two, token=join_token), 400)
    assert [e["field"] for e in body["errors"]] == ["items"]


def test_join_tokens(join_token, admin):
    adm = Api(admin["access"])
    check_envelope(Api().post("/api/v1/workers/register", spec()), 401)
    check_envelope(Api().post("/api/v1/workers/register", spec(), token="not-a-join-token"), 401)
    # the original's body field, for its register script
    register_node(None, dict(spec(), registrationToken=join_token))
    # rotation without downtime: a second token works next to the first
    created = check_envelope(adm.post("/api/v1/workers/join-tokens", {"note": "rotation", "expiresInHours": 1}), 201)["data"]
    assert len(created["token"]) == 64 and created["isValid"]
    register_node(created["token"])
    register_node(join_token)
    listed = check_envelope(adm.get("/api/v1/workers/join-tokens"), 200)["data"]["tokens"]
    assert created["id"] in [t["id"] for t in listed]
    assert all("token" not in t for t in listed)  # secrets are never listed
    revoked = check_envelope(adm.delete(f"/api/v1/workers/join-tokens/{created['id']}"), 200)["data"]
    assert revoked["revokedAt"] and not revoked["isValid"]
    check_envelope(Api().post("/api/v1/workers/register", spec(), token=created["token"]), 401)
    check_envelope(adm.delete(f"/api/v1/workers/join-tokens/{uuid.uuid4()}"), 404)
    check_envelope(Api().post("/api/v1/workers/join-tokens", {}), 401)


def test_heartbeat_authorization_matrix(join_token, admin):
    a_name, b_name = unique("hb-a"), unique("hb-b")
    a = register_node(join_token, spec(a_name))
    b = register_node(join_token, spec(b_name))
    routes = [("PUT", f"/api/v1/workers/{a_name}/heartbeat", {"isReady": True}),
              ("PATCH", f"/api/v1/workers/{a['id']}/heartbeat", {}),
              ("PATCH", f"/api/v1/workers/{a_name}/heartbeat", {}),
              ("PATCH", f"/api/v1/workers/{a['id']}/resources", {"currentPods": 2})]
    for method, path, body in routes:
        assert Api().call(method, path, body).status_code == 401, (method, path)
        assert Api().call(method, path, body, token="x" * 64).status_code == 401, (method, path)
        assert Api().call(method, path, body, token=join_token).status_code == 401, (method, path)
        assert Api().call(method, path, body, token=admin["access"]).status_code == 401, (method, path)
        check_envelope(Api().call(method, path, body, token=b["nodeToken"]), 403)
        check_envelope(Api().call(method, path, body, token=a["nodeToken"]), 200)
    # a node token reaches nothing else
    check_envelope(Api(a["nodeToken"]).get("/api/v1/workers"), 401)
    check_envelope(Api().put("/api/v1/workers/no-such-node/heartbeat", {}, token=a["nodeToken"]), 403)


def test_heartbeat_time_is_the_servers(join_token):
    name = unique("clock")
    n = register_node(join_token, spec(name))
    psql("UPDATE paas.nodes SET last_heartbeat = now() - interval '1 day' WHERE name = :'a1'", name)
    r = Api().put(f"/api/v1/workers/{name}/heartbeat",
                  {"agentTime": "2001-01-01T00:00:00Z", "cpuUsage": "250m", "memoryUsage": "1Gi",
                   "storageUsage": "1000", "allocatedCPU": 1.5, "allocatedMemory": 512, "currentPods": 3},
                  token=n["nodeToken"])
    data = check_envelope(r, 200)["data"]
    assert psql("SELECT abs(extract(epoch FROM now() - :'a1'::timestamptz)) < 5", data["lastHeartbeat"]) == "t"
    assert data["allocatedCPU"] == "1.5" and data["allocatedMemory"] == "512Mi" and data["currentPods"] == 3
    row = psql("SELECT cpu_used_m, memory_used, cpu_allocated_m, memory_allocated, agent_clock_skew_ms < -1e11"
               " FROM paas.nodes WHERE name = :'a1'", name)
    assert row == f"250|{2**30}|1500|{512 * 2**20}|t"


def test_heartbeat_not_ready_and_back(join_token, admin):
    name = unique("ready")
    n = register_node(join_token, spec(name))
    hb = f"/api/v1/workers/{name}/heartbeat"
    d = check_envelope(Api().put(hb, {"isReady": False}, token=n["nodeToken"]), 200)["data"]
    assert d["status"] == "NOT_READY" and not d["isSchedulable"]
    offline = check_envelope(Api(admin["access"]).get("/api/v1/workers/offline"), 200)["data"]
    assert name in [x["name"] for x in offline["nodes"]] and offline["count"] >= 1
    d = check_envelope(Api().put(hb, {"conditions": [{"type": "Ready", "status": "True"}]}, token=n["nodeToken"]), 200)["data"]
    assert d["status"] == "ACTIVE" and d["isSchedulable"]
    online = check_envelope(Api(admin["access"]).get("/api/v1/workers/online"), 200)["data"]
    assert name in [x["name"] for x in online["nodes"]]
    hist = check_envelope(Api(admin["access"]).get(f"/api/v1/workers/{name}/transitions"), 200)["data"]
    assert [(t["from"], t["to"], t["event"]) for t in hist["transitions"]][:2] == [
        ("NOT_READY", "ACTIVE", "heartbeat_ready"), ("ACTIVE", "NOT_READY", "heartbeat_not_ready")]


def test_bad_input(join_token):
    bad = {"name": "x", "hostname": "", "ipAddress": "999.1.1.1", "cpuCores": "many",
           "totalMemory": "16GB", "totalStorage": "1K", "maxPods": 0, "architecture": "sparc",
           "labels": {"ok": "fine", "bad": 5}, "taints": [{"effect": "NoSchedule"}]}
    body = check_envelope(Api().post("/api/v1/workers/register", bad, token=join_token), 400)
    assert body["code"] == "VALIDATION_ERROR"
    assert sorted(e["field"] for e in body["errors"]) == sorted(
        ["name", "hostname", "ipAddress", "architecture", "cpuCores", "cpuArchitecture", "totalMemory",
         "totalStorage", "maxPods", "labels.bad", "taints.0"])
    assert any("not a valid quantity" in e["message"] for e in body["errors"])
    doc = fixture_doc("minikube")
    doc["status"]["capacity"]["memory"] = "8165556KB"
    doc["status"]["allocatable"]["cpu"] = "4 cores"
    body = check_envelope(Api().post("/api/v1/workers/register", doc, token=join_token), 400)
    assert sorted(e["field"] for e in body["errors"]) == ["status.allocatable.cpu", "status.capacity.memory"]
    check_envelope(Api().post("/api/v1/workers/register", raw="{not json", token=join_token,
                              headers={"Content-Type": "application/json"}), 400)

    n = register_node(join_token)
    hb = f"/api/v1/workers/{n['name']}/heartbeat"
    body = check_envelope(Api().put(hb, {"cpuUsage": "lots", "status": "MAINTENANCE", "currentPods": -3,
                                         "isReady": "yes"}, token=n["nodeToken"]), 400)
    assert sorted(e["field"] for e in body["errors"]) == ["cpuUsage", "currentPods", "isReady", "status"]
    body = check_envelope(Api().patch(f"/api/v1/workers/{n['id']}/resources", {}, token=n["nodeToken"]), 400)
    assert body["errors"][0]["field"] == ""


def test_admin_routes_and_status_machine(join_token, admin):
    u = register(Api())
    anon, user, adm = Api(), Api(u["access"]), Api(admin["access"])
    name = unique("adm")
    routes = [("GET", "/api/v1/workers", None), ("GET", "/api/v1/workers/stats", None),
              ("GET", "/api/v1/workers/online", None), ("GET", "/api/v1/workers/offline", None),
              ("GET", "/api/v1/workers/join-tokens", None),
              ("POST", "/api/v1/workers", spec(name, status="PENDING")),
              ("GET", f"/api/v1/workers/{name}", None),
              ("PUT", f"/api/v1/workers/{name}", {"labels": {"zone": "b"}}),
              ("PATCH", f"/api/v1/workers/{name}/schedulable", {"schedulable": False}),
              ("PATCH", f"/api/v1/workers/{name}/status", {"status": "MAINTENANCE"}),
              ("GET", f"/api/v1/workers/{name}/transitions", None)]
    for method, path, body in routes:
        assert anon.call(method, path, body).status_code == 401, (method, path)
        assert user.call(method, path, body).status_code == 403, (method, path)
    for (method, path, body), status in zip(routes, [200, 200, 200, 200, 200, 201, 200, 200, 200, 200, 200]):
        check_envelope(adm.call(method, path, body), status)

    node = check_envelope(adm.get(f"/api/v1/workers/{name}"), 200)["data"]
    assert node["status"] == "MAINTENANCE" and node["unschedulable"] and node["labels"] == {"zone": "b"}
    # illegal transitions answer 409
    r = check_envelope(adm.patch(f"/api/v1/workers/{name}/schedulable", {"schedulable": True}), 409)
    assert r["code"] == "CONFLICT_ERROR"
    # an administrator sets any status, as in the original (docs/api.md)
    check_envelope(adm.patch(f"/api/v1/workers/{name}/status", {"status": "PENDING"}), 200)
    check_envelope(adm.patch(f"/api/v1/workers/{name}/status", {"status": "ACTIVE", "reason": "back"}), 200)
    check_envelope(adm.patch(f"/api/v1/workers/{name}/schedulable", {"schedulable": True}), 200)
    check_envelope(adm.patch(f"/api/v1/workers/{name}/status", {"status": "nope"}), 400)
    check_envelope(adm.post("/api/v1/workers", spec(name)), 409)
    check_envelope(adm.post("/api/v1/workers", {}), 400)
    check_envelope(adm.get("/api/v1/workers/no-such-node"), 404)
    check_envelope(adm.get(f"/api/v1/workers/{uuid.uuid4()}"), 404)

    # list: filters, search, pagination
    lst = check_envelope(adm.get(f"/api/v1/workers?search={name}&status=ACTIVE&limit=5"), 200)
    assert [w["name"] for w in lst["data"]["workers"]] == [name]
    assert lst["pagination"]["total"] == 1 and lst["data"]["pagination"]["total"] == 1
    lst = check_envelope(adm.get("/api/v1/workers?isSchedulable=false&limit=100&sortBy=name&sortOrder=asc"), 200)
    assert all(not w["isSchedulable"] for w in lst["data"]["workers"])
    names = [w["name"] for w in lst["data"]["workers"]]
    assert names == sorted(names)
    body = check_envelope(adm.get("/api/v1/workers?status=SLEEPING&limit=1000"), 400)
    assert sorted(e["field"] for e in body["errors"]) == ["limit", "status"]

    stats = check_envelope(adm.get("/api/v1/workers/stats"), 200)["data"]
    assert stats["totalNodes"] >= 1 and set(stats["nodeStatus"]) == {"active", "inactive", "maintenance", "pending", "notReady"}
    assert stats["resources"]["cpu"]["total"] >= 24000 and "utilization" in stats["resources"]["memory"]

    # delete: the node token stops working, the audit stays
    n = register_node(join_token)
    check_envelope(adm.delete(f"/api/v1/workers/{n['id']}"), 200)
    check_envelope(Api().put(f"/api/v1/workers/{n['name']}/heartbeat", {}, token=n["nodeToken"]), 401)
    check_envelope(adm.delete(f"/api/v1/workers/{n['id']}"), 404)
    assert psql("SELECT count(*) FROM paas.node_transitions WHERE node_id = :'a1'", n["id"]) == "2"


def test_openapi_lists_the_worker_routes():
    r = Api().get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for p in ["/api/v1/workers/register", "/api/v1/workers/{nodeName}/heartbeat", "/api/v1/workers/{nodeId}/resources"]:
        assert p in paths, p


def test_concurrent_heartbeats_share_round_trips_and_keep_their_own_answers(join_token):
    """Heartbeats arriving together go to the database in batches
    (httpd/batch.c); a refused call among them fails its batch, and every
    call of that batch is then answered on its own: each client still gets
    exactly its own answer."""
    import threading
    nodes = [register_node(join_token, spec(unique("batch"))) for _ in range(8)]
    calls = []  # (path, body, token, expected status)
    for i, n in enumerate(nodes):
        for k in range(4):
            calls.append((f"/api/v1/workers/{n['name']}/heartbeat", {"cpuUsage": f"{100 * k + i}m"},
                          n["nodeToken"], 200))
    calls.append((f"/api/v1/workers/{nodes[0]['name']}/heartbeat", {}, "y" * 64, 401))
    calls.append((f"/api/v1/workers/{nodes[1]['name']}/heartbeat", {}, nodes[2]["nodeToken"], 403))
    calls.append((f"/api/v1/workers/{nodes[3]['name']}/heartbeat", {"currentPods": -5}, nodes[3]["nodeToken"], 400))
    calls *= 3
    before = (metric("paas_batches_total"), metric("paas_batched_requests_total"))
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def go(i):
        path, body, tok, _ = calls[i]
        api = Api()
        barrier.wait()
        results[i] = api.put(path, body, token=tok)
        api.s.close()  # frees its server thread (keep-alive) for the calls still queued

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (path, body, tok, want), r in zip(calls, results):
        data = check_envelope(r, want)
        if want == 200:
            assert data["data"]["name"] == path.split("/")[4]
    batches = metric("paas_batches_total") - before[0]
    carried = metric("paas_batched_requests_total") - before[1]
    assert carried >= len(calls) and batches < carried, (batches, carried)
    # every node holds one of the values it sent, and no other node's
    for i, n in enumerate(nodes):
        used = int(psql("SELECT cpu_used_m FROM paas.nodes WHERE name = :'a1'", n["name"]))
        assert used % 100 == i and used < 400, (n["name"], used)


def test_a_join_token_cannot_take_a_node_over(join_token, admin):
    """The join token is shared by every node: with it alone, re-registering
    an existing name (a new node token, another address and capacity) is
    refused (409); the node's own token, or for a Kubernetes Node object the
    node's uid, re-registers it."""
    adm = Api(admin["access"])
    body = spec()
    real = register_node(join_token, body)
    evil = dict(body, ipAddress="203.0.113.66", cpuCores=1, totalMemory="1Gi")
    r = check_envelope(Api().post("/api/v1/workers/register", evil, token=join_token), 409)
    assert r["code"] == "WORKER_NODE_EXISTS" and "node token" in r["message"]
    check_envelope(Api().post("/api/v1/workers/register", dict(evil, registrationToken=join_token)), 409)
    node = check_envelope(adm.get(f"/api/v1/workers/{real['id']}"), 200)["data"]
    assert node["ipAddress"] == "192.168.1.10" and node["cpuCores"] == 24
    check_envelope(Api().put(f"/api/v1/workers/{body['name']}/heartbeat", {}, token=real["nodeToken"]), 200)
    # another node's token neither
    other = register_node(join_token)
    check_envelope(Api().post("/api/v1/workers/register", evil, token=other["nodeToken"]), 403)
    # the node itself, with its token
    again = register_node(real["nodeToken"], dict(body, ipAddress="192.168.1.11"), status=200)
    assert again["id"] == real["id"] and again["created"] is False

    # a Kubernetes Node object: the uid it registered with stands for the node
    doc = fixture_doc("k3s-server")
    first = register_node(join_token, doc)
    assert register_node(join_token, doc, status=200)["id"] == first["id"]
    impostor = json.loads(json.dumps(doc))
    impostor["metadata"]["uid"] = str(uuid.uuid4())
    check_envelope(Api().post("/api/v1/workers/register", impostor, token=join_token), 409)


def test_reading_a_node_takes_no_row_lock(join_token, admin):
    """GET /workers/:nodeId and its transitions answer while another
    transaction holds the node's row."""
    n = register_node(join_token)
    with Session() as s:
        s.run("BEGIN")
        s.run(f"SELECT 1 FROM paas.nodes WHERE id = '{n['id']}' FOR UPDATE")
        for path in (f"/api/v1/workers/{n['id']}", f"/api/v1/workers/{n['name']}/transitions"):
            r = requests.get(BASE + path, headers={"Authorization": f"Bearer {admin['access']}"}, timeout=10)
            check_envelope(r, 200)


def test_re_registration_answers_200_information_updated(join_token):
    """The original's contract (W11): a first registration answers 201
    "Worker node registered successfully", a re-registration of the node 200
    "Worker node information updated successfully": the function sets the
    reply status (response.status, the reply seam of docs/architecture.md)."""
    body = spec()
    r = Api().post("/api/v1/workers/register", body, token=join_token)
    first = check_envelope(r, 201)
    assert first["message"] == "Worker node registered successfully" and first["data"]["created"] is True
    r = Api().post("/api/v1/workers/register", body, token=first["data"]["nodeToken"])
    again = check_envelope(r, 200)
    assert again["message"] == "Worker node information updated successfully"
    assert again["data"]["created"] is False and again["data"]["id"] == first["data"]["id"]
    # the setting is the call's own: the next creation on the same pooled
    # connections is 201 again
    for _ in range(4):
        check_envelope(Api().post("/api/v1/workers/register", spec(), token=join_token), 201)
    # a Kubernetes Node object re-registered by its uid: 200 as well
    doc = fixture_doc("k3s-server")
    check_envelope(Api().post("/api/v1/workers/register", doc, token=join_token), 201)
    r = check_envelope(Api().post("/api/v1/workers/register", doc, token=join_token), 200)
    assert r["message"] == "Worker node information updated successfully"


def raw_json(text):
    return {"raw": text.encode(), "headers": {"Content-Type": "application/json"}}


def test_numbers_reach_sql_with_the_clients_decimal_text(join_token):
    """Issue #15: httpd used to parse the body with jansson and print it
    again, so 12.8 became the double 12.800000000000001 (12,801 millicores)
    and 0.1 became 101 m.  The function now gets the client's text."""
    n = register_node(join_token)
    res = f"/api/v1/workers/{n['id']}/resources"
    for sent, text, milli in [("12.8", "12.8", 12800), ("0.1", "0.1", 100), ("2.675", "2.675", 2675)]:
        r = Api().patch(res, token=n["nodeToken"], **raw_json('{"allocatedCPU": %s}' % sent))
        data = check_envelope(r, 200)["data"]
        assert data["allocatedCPU"] == text, data
        assert psql("SELECT cpu_allocated_m FROM paas.nodes WHERE id = :'a1'", n["id"]) == str(milli)
    # the heartbeat (batched, batch.c) keeps the text both ways: in and out
    hb = f"/api/v1/workers/{n['name']}/heartbeat"
    data = check_envelope(Api().put(hb, token=n["nodeToken"], **raw_json('{"allocatedCPU": 12.8}')), 200)["data"]
    assert data["allocatedCPU"] == "12.8"
    assert psql("SELECT cpu_allocated_m FROM paas.nodes WHERE id = :'a1'", n["id"]) == "12800"
    # path parameters still win over body fields of the same name (merged by jsonb)
    other = register_node(join_token)
    r = Api().patch(res, token=n["nodeToken"],
                    **raw_json('{"nodeId": "%s", "allocatedCPU": 0.1}' % other["id"]))
    assert check_envelope(r, 200)["data"]["id"] == n["id"]


def test_large_integers_are_exact_or_refused(join_token):
    """An integer past 2^53 (a double's exact range) reaches SQL exactly; one
    past 64 bits is a 400, never a rounded value."""
    n = register_node(join_token)
    res = f"/api/v1/workers/{n['id']}/resources"
    big = 2**53 + 1
    r = Api().patch(res, token=n["nodeToken"], **raw_json('{"currentPods": %d}' % big))
    body = check_envelope(r, 400)
    assert any(e["field"] == "currentPods" for e in body["errors"]), body
    # as a whole number and as a decimal: 9007199254740993.0 was the double
    # 9007199254740992.0 once jansson had read it
    for sent in ["%d" % big, "%d.0" % big]:
        r = Api().patch(res, token=n["nodeToken"], **raw_json('{"allocatedCPU": %s}' % sent))
        data = check_envelope(r, 200)["data"]
        assert data["allocatedCPU"] == sent and data["allocation"]["cpuMillicores"] == big * 1000
        assert psql("SELECT allocated_cpu, cpu_allocated_m FROM paas.nodes WHERE id = :'a1'",
                    n["id"]) == f"{sent}|{big * 1000}"
    r = Api().patch(res, token=n["nodeToken"], **raw_json('{"allocatedCPU": 1, "currentPods": %d}' % 2**64))
    body = check_envelope(r, 400)
    assert body["errors"][0]["field"] == "body"
    # duplicate keys are refused, not resolved silently either way
    r = Api().patch(res, token=n["nodeToken"], **raw_json('{"allocatedCPU": 1, "allocatedCPU": 2}'))
    assert check_envelope(r, 400)["errors"][0]["field"] == "body"
