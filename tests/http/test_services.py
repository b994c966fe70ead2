"""The service catalog over HTTP (/services): every route x {anonymous,
user, admin}, the public and admin views, validation of every field,
conflicts, and the delete guard against referencing rows."""
import uuid

import pytest

from conftest import Api, check_envelope, psql, register

BASE = "/api/v1/services"


def slug(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def service_body(name=None, **over):
    body = {
        "name": name or slug(),
        "displayName": "Test Service",
        "description": "A service created by the HTTP tests",
        "category": "automation",
        "version": "1.0",
        "dockerImage": "n8nio/n8n:1.0",
        "containerPort": 5678,
        "monthlyPrice": 25000,
        "features": ["One", "Two"],
        "environmentVars": {"N8N_PORT": "5678"},
    }
    body.update(over)
    return body


def create(adm, **over):
    return check_envelope(adm.post(BASE, service_body(**over)), 201)["data"]


@pytest.fixture
def adm(admin):
    return Api(admin["access"])


def test_authorization_matrix(admin):
    adm = Api(admin["access"])
    u = register(Api())
    anon, user = Api(), Api(u["access"])
    svc = create(adm)
    victim = create(adm)
    public_routes = [f"{BASE}", f"{BASE}/categories", f"{BASE}/{svc['name']}"]
    for path in public_routes:
        for who in (anon, user, adm):
            check_envelope(who.get(path), 200)

    admin_routes = [
        ("GET", f"{BASE}/admin", None),
        ("GET", f"{BASE}/admin/stats", None),
        ("GET", f"{BASE}/admin/{svc['id']}", None),
        ("POST", BASE, service_body()),
        ("PUT", f"{BASE}/{svc['id']}", {"monthlyPrice": 30000}),
        ("PATCH", f"{BASE}/{victim['id']}/toggle-status", None),
        ("DELETE", f"{BASE}/{victim['id']}", None),
    ]
    for method, path, body in admin_routes:
        assert check_envelope(anon.call(method, path, body), 401)["code"] == "AUTH_ERROR", (method, path)
        assert check_envelope(user.call(method, path, body), 403)["code"] == "FORBIDDEN_ERROR", (method, path)
    for (method, path, body), status in zip(admin_routes, [200, 200, 200, 201, 200, 200, 200]):
        check_envelope(adm.call(method, path, body), status)


def test_literal_routes_win_over_the_slug(adm):
    # /services/admin is the admin list, never a service called "admin"
    assert check_envelope(Api().get(f"{BASE}/admin"), 401)["code"] == "AUTH_ERROR"
    assert isinstance(check_envelope(Api().get(f"{BASE}/categories"), 200)["data"], list)
    body = check_envelope(adm.post(BASE, service_body(name="admin")), 400)
    assert [e["field"] for e in body["errors"]] == ["name"]
    body = check_envelope(adm.post(BASE, service_body(name="categories")), 400)
    assert [e["field"] for e in body["errors"]] == ["name"]


def test_create_read_update_toggle_delete(adm):
    name = slug("crud")
    data = create(adm, name=name, cpuRequest="0.5", cpuLimit="2", memRequest="512Mi", memLimit="2Gi",
                  resources={"storageGiB": 5})
    sid = data["id"]
    assert data["name"] == name and data["monthlyPrice"] == 25000 and data["isActive"] is True
    assert data["resources"] == {"cpuMillicores": 2000, "memoryMiB": 2048, "storageGiB": 5}
    assert (data["cpuRequest"], data["cpuLimit"], data["memRequest"], data["memLimit"]) == ("0.5", "2", "512Mi", "2Gi")
    assert data["containerPort"] == data["defaultPort"] == 5678
    assert data["createdAt"].endswith("Z")

    pub = check_envelope(Api().get(f"{BASE}/{name}"), 200)["data"]
    assert pub["id"] == sid and pub["monthlyPrice"] == 25000
    assert "dockerImage" not in pub and "environmentVars" not in pub
    got = check_envelope(adm.get(f"{BASE}/admin/{sid}"), 200)["data"]
    assert got.pop("_count") == {"subscriptions": 0} and got.pop("subscriptions") == []
    assert got == data

    upd = check_envelope(adm.put(f"{BASE}/{sid}", {"monthlyPrice": 40000, "description": "A new description here",
                                                   "resources": {"memoryMiB": 4096}}), 200)["data"]
    assert upd["monthlyPrice"] == 40000 and upd["memLimit"] == "4Gi"
    assert upd["displayName"] == data["displayName"] and upd["createdAt"] == data["createdAt"]
    body = check_envelope(adm.put(f"{BASE}/{sid}", {"name": "renamed-" + name}), 400)
    assert [e["field"] for e in body["errors"]] == ["name"]
    check_envelope(adm.put(f"{BASE}/{sid}", {}), 400)

    assert check_envelope(adm.patch(f"{BASE}/{sid}/toggle-status"), 200)["data"]["isActive"] is False
    check_envelope(Api().get(f"{BASE}/{name}"), 404)
    assert check_envelope(adm.get(f"{BASE}/admin/{sid}"), 200)["data"]["isActive"] is False
    assert check_envelope(adm.patch(f"{BASE}/{sid}/toggle-status"), 200)["data"]["isActive"] is True
    check_envelope(Api().get(f"{BASE}/{name}"), 200)

    gone = check_envelope(adm.delete(f"{BASE}/{sid}"), 200)["data"]
    assert gone == {"id": sid, "name": name, "displayName": data["displayName"]}
    check_envelope(adm.get(f"{BASE}/admin/{sid}"), 404)
    check_envelope(Api().get(f"{BASE}/{name}"), 404)
    check_envelope(adm.delete(f"{BASE}/{sid}"), 404)
    assert psql("SELECT deleted_at IS NOT NULL FROM paas.services WHERE id = :'a1'", sid) == "t"
    # the slug is free again
    create(adm, name=name)


def test_duplicate_slug_is_409(adm):
    name = slug("dup")
    create(adm, name=name)
    body = check_envelope(adm.post(BASE, service_body(name=name, displayName="Other")), 409)
    assert body["code"] == "SERVICE_EXISTS"


def test_public_list_filters_and_pagination(adm):
    tag = uuid.uuid4().hex[:10]
    a = create(adm, name=f"pa-{tag}", displayName=f"Alpha {tag}", category="cms")
    b = create(adm, name=f"pb-{tag}", displayName=f"Beta {tag}", category="analytics")
    create(adm, name=f"pc-{tag}", displayName=f"Gamma {tag}", category="cms", isActive=False)
    body = check_envelope(Api().get(f"{BASE}?search={tag.upper()}"), 200)
    assert [s["name"] for s in body["data"]] == [a["name"], b["name"]]
    assert body["pagination"] == {"page": 1, "limit": 100, "total": 2, "totalPages": 1,
                                  "hasNext": False, "hasPrev": False}
    body = check_envelope(Api().get(f"{BASE}?search={tag}&limit=1&page=2"), 200)
    assert [s["name"] for s in body["data"]] == [b["name"]]
    assert body["pagination"]["hasPrev"] is True and body["pagination"]["hasNext"] is False
    body = check_envelope(Api().get(f"{BASE}?search={tag}&category=cms"), 200)
    assert [s["name"] for s in body["data"]] == [a["name"]]
    # the search text is matched literally
    assert check_envelope(Api().get(f"{BASE}?search={tag}%25"), 200)["pagination"]["total"] == 0


def test_admin_list_filters_sort_and_pagination(adm):
    tag = uuid.uuid4().hex[:10]
    names = [create(adm, name=f"ad{i}-{tag}", monthlyPrice=price, isActive=active)["name"]
             for i, (price, active) in enumerate([(10000, True), (30000, False), (20000, True)])]
    body = check_envelope(adm.get(f"{BASE}/admin?search={tag}&sortBy=monthlyPrice&sortOrder=asc&limit=2"), 200)
    assert [s["name"] for s in body["data"]["services"]] == [names[0], names[2]]
    assert body["pagination"] == {"page": 1, "limit": 2, "total": 3, "totalPages": 2, "hasNext": True, "hasPrev": False}
    assert body["data"]["pagination"] == {"currentPage": 1, "totalPages": 2, "totalCount": 3,
                                          "hasNext": True, "hasPrev": False}
    assert "dockerImage" in body["data"]["services"][0]
    body = check_envelope(adm.get(f"{BASE}/admin?search={tag}&status=inactive"), 200)
    assert [s["name"] for s in body["data"]["services"]] == [names[1]]
    body = check_envelope(adm.get(f"{BASE}/admin?search={tag}&isActive=true&sortBy=name&sortOrder=desc"), 200)
    assert [s["name"] for s in body["data"]["services"]] == [names[2], names[0]]


def test_categories_and_stats(adm):
    def cat_count(name):
        data = check_envelope(Api().get(f"{BASE}/categories"), 200)["data"]
        assert [c["name"] for c in data] == ["automation", "cms", "database", "analytics", "devtools",
                                             "communication", "storage", "monitoring", "other"]
        return next(c["count"] for c in data if c["name"] == name)

    def stats():
        return check_envelope(adm.get(f"{BASE}/admin/stats"), 200)["data"]

    before, s0 = cat_count("storage"), stats()
    svc = create(adm, category="storage")
    assert cat_count("storage") == before + 1
    check_envelope(adm.patch(f"{BASE}/{svc['id']}/toggle-status"), 200)
    assert cat_count("storage") == before  # only active services count
    s1 = stats()
    assert s1["totalServices"] == s0["totalServices"] + 1
    assert s1["inactiveServices"] == s0["inactiveServices"] + 1
    assert s1["byStatus"] == {"active": s1["activeServices"], "inactive": s1["inactiveServices"]}
    st0 = next(c for c in s0["byCategory"] if c["name"] == "storage")
    st1 = next(c for c in s1["byCategory"] if c["name"] == "storage")
    assert (st1["total"], st1["inactive"]) == (st0["total"] + 1, st0["inactive"] + 1)


BAD_CREATES = [
    # wrong types
    ({"name": 5, "displayName": ["x"], "description": {}, "dockerImage": 1, "containerPort": "http",
      "monthlyPrice": "free", "isActive": "maybe", "features": "one", "environmentVars": ["A=1"],
      "resources": 2, "cpuLimit": 1, "category": 3, "version": 1.5},
     {"name", "displayName", "description", "dockerImage", "containerPort", "monthlyPrice", "isActive",
      "features", "environmentVars", "resources", "cpuLimit", "category", "version"}),
    # too long
    ({"name": "a" * 51, "displayName": "d" * 101, "description": "x" * 501, "dockerImage": "i" * 256,
      "version": "v" * 51, "features": ["f" * 201]},
     {"name", "displayName", "description", "dockerImage", "version", "features"}),
    # bad slug, negative price, out-of-range numbers, unknown category, bad quantities
    ({"name": "Bad_Slug!", "monthlyPrice": -1, "containerPort": 0, "category": "games",
      "resources": {"cpuMillicores": 0, "memoryMiB": 8, "storageGiB": -1},
      "cpuRequest": "fast", "memRequest": "1Ti", "memLimit": "12", "dockerImage": "Not An Image",
      "environmentVars": {"1BAD": "x"}},
     {"name", "monthlyPrice", "containerPort", "category", "resources.cpuMillicores", "resources.memoryMiB",
      "resources.storageGiB", "cpuRequest", "memRequest", "memLimit", "dockerImage", "environmentVars"}),
    # fractional price, too short
    ({"name": "x", "displayName": "X", "description": "short", "monthlyPrice": 10.5},
     {"name", "displayName", "description", "monthlyPrice"}),
]


@pytest.mark.parametrize("over,fields", BAD_CREATES)
def test_create_rejects_bad_input_listing_every_field(adm, over, fields):
    body = check_envelope(adm.post(BASE, service_body(**over)), 400)
    assert body["code"] == "VALIDATION_ERROR"
    assert {e["field"] for e in body["errors"]} == fields


def test_create_requires_fields_and_consistent_resources(adm):
    body = check_envelope(adm.post(BASE, {}), 400)
    assert {e["field"] for e in body["errors"]} == {"name", "displayName", "description", "dockerImage"}
    body = check_envelope(adm.post(BASE, service_body(cpuLimit="1", resources={"cpuMillicores": 500},
                                                      containerPort=80, defaultPort=81)), 400)
    assert {e["field"] for e in body["errors"]} == {"cpuLimit", "defaultPort"}
    body = check_envelope(adm.post(BASE, service_body(cpuRequest="2", cpuLimit="1")), 400)
    assert {e["field"] for e in body["errors"]} == {"cpuRequest"}
    check_envelope(adm.post(BASE, raw=b"{not json", headers={"Content-Type": "application/json"}), 400)


def test_update_rejects_bad_input(adm):
    sid = create(adm)["id"]
    body = check_envelope(adm.put(f"{BASE}/{sid}", {"monthlyPrice": -5, "category": "games",
                                                    "displayName": "", "features": [1]}), 400)
    assert {e["field"] for e in body["errors"]} == {"monthlyPrice", "category", "displayName", "features"}


@pytest.mark.parametrize("query,fields", [
    ("category=games", {"category"}),
    ("page=0&limit=500", {"page", "limit"}),
    ("search=" + "s" * 101, {"search"}),
    ("page=abc&category=CMS", {"page", "category"}),
])
def test_public_list_rejects_bad_filters(query, fields):
    body = check_envelope(Api().get(f"{BASE}?{query}"), 400)
    assert {e["field"] for e in body["errors"]} == fields


@pytest.mark.parametrize("query,fields", [
    ("category=games&status=gone", {"category", "status"}),
    ("sortBy=price&sortOrder=up&isActive=perhaps", {"sortBy", "sortOrder", "isActive"}),
    ("limit=0&page=-1", {"limit", "page"}),
])
def test_admin_list_rejects_bad_filters(adm, query, fields):
    body = check_envelope(adm.get(f"{BASE}/admin?{query}"), 400)
    assert {e["field"] for e in body["errors"]} == fields


def test_unknown_and_malformed_ids_are_404(adm):
    for sid in (str(uuid.uuid4()), "not-a-uuid", "1"):
        assert check_envelope(adm.get(f"{BASE}/admin/{sid}"), 404)["code"] == "SERVICE_NOT_FOUND"
        check_envelope(adm.put(f"{BASE}/{sid}", {"monthlyPrice": 1}), 404)
        check_envelope(adm.patch(f"{BASE}/{sid}/toggle-status"), 404)
        check_envelope(adm.delete(f"{BASE}/{sid}"), 404)
    check_envelope(Api().get(f"{BASE}/{slug('nothing')}"), 404)


def test_delete_is_refused_while_a_row_references_the_service(adm):
    """Any foreign key to paas.services blocks the delete, including tables
    created after the catalog (as subscriptions will be)."""
    svc = create(adm)
    table = "ref_" + uuid.uuid4().hex[:10]
    psql(f"CREATE TABLE public.{table} (service_id uuid REFERENCES paas.services (id));"
         f"INSERT INTO public.{table} VALUES (:'a1')", svc["id"])
    try:
        body = check_envelope(adm.delete(f"{BASE}/{svc['id']}"), 409)
        assert body["code"] == "CONFLICT_ERROR"
        check_envelope(adm.get(f"{BASE}/admin/{svc['id']}"), 200)
        psql(f"DELETE FROM public.{table}")
        check_envelope(adm.delete(f"{BASE}/{svc['id']}"), 200)
    finally:
        psql(f"DROP TABLE public.{table}")
