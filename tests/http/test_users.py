"""Admin user management over HTTP, and the authorization matrix of every
accounts route x {anonymous, user, other user, admin}."""
import threading
import uuid

import pytest
import requests

from conftest import BASE, PASSWORD, Api, check_envelope, psql, register, unique_email, wait_until
from sessions import Session, gateway_backends_waiting_for_a_lock

NEW_PW = "Rese7Password"


def test_authorization_matrix(admin):
    u = register(Api())
    other = register(Api())
    target = u["id"]
    anon, user, adm = Api(), Api(u["access"]), Api(admin["access"])
    admin_routes = [
        ("GET", "/api/v1/users", None),
        ("GET", "/api/v1/users/stats", None),
        ("GET", f"/api/v1/users/{target}", None),
        ("POST", "/api/v1/users", {"name": "Made", "email": unique_email(), "password": PASSWORD}),
        ("PUT", f"/api/v1/users/{target}", {"name": "Renamed"}),
        ("PATCH", f"/api/v1/users/{target}/password", {"newPassword": NEW_PW}),
        ("PATCH", f"/api/v1/users/{other['id']}/toggle-status", None),
        ("POST", "/api/v1/users/bulk", {"action": "activate", "ids": [other["id"]]}),
        ("DELETE", f"/api/v1/users/{other['id']}", None),
    ]
    for method, path, body in admin_routes:
        assert anon.call(method, path, body).status_code == 401, (method, path)
        assert user.call(method, path, body).status_code == 403, (method, path)
    expected = [200, 200, 200, 201, 200, 200, 200, 200, 200]
    for (method, path, body), status in zip(admin_routes, expected):
        check_envelope(adm.call(method, path, body), status)

    user_routes = [("GET", "/api/v1/auth/me"), ("GET", "/api/v1/auth/profile"),
                   ("PUT", "/api/v1/auth/profile"), ("POST", "/api/v1/auth/change-password"),
                   ("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/auth/account")]
    for method, path in user_routes:
        assert anon.call(method, path, {}).status_code == 401, (method, path)
    # /auth routes act only on the caller: another user's token reads its own account
    me = check_envelope(Api(other["access"]).get("/api/v1/auth/profile"), 401)  # deleted above
    fresh = register(Api())
    body = check_envelope(Api(fresh["access"]).get("/api/v1/auth/profile"), 200)
    assert body["data"]["id"] == fresh["id"] != target


def test_admin_role_comes_from_the_database(admin):
    """A token minted while the user was admin stops granting admin rights
    when the role is removed (the SQL function re-reads the account)."""
    email = unique_email("exadmin")
    psql("SELECT api.seed_admin(:'a1', :'a2')", email, PASSWORD)
    tok = check_envelope(Api().post("/api/v1/auth/login", {"email": email, "password": PASSWORD}), 200)["data"]["accessToken"]
    check_envelope(Api(tok).get("/api/v1/users/stats"), 200)
    psql("UPDATE paas.users SET role = 'USER' WHERE email = :'a1'", email)
    check_envelope(Api(tok).get("/api/v1/users/stats"), 403)


def test_list_filters_sort_and_pagination(admin):
    adm = Api(admin["access"])
    tag = uuid.uuid4().hex[:8]
    ids = [register(Api(), email=f"list-{tag}-{i}@example.com", name=f"Lister {tag} {i}")["id"] for i in range(3)]
    body = check_envelope(adm.get(f"/api/v1/users?search={tag}&limit=2&page=1&sortBy=email&sortOrder=asc"), 200)
    assert body["pagination"] == {"page": 1, "limit": 2, "total": 3, "totalPages": 2, "hasNext": True, "hasPrev": False}
    emails = [u["email"] for u in body["data"]["users"]]
    assert emails == [f"list-{tag}-0@example.com", f"list-{tag}-1@example.com"]
    assert body["data"]["pagination"]["totalCount"] == 3
    body = check_envelope(adm.get(f"/api/v1/users?search={tag}&limit=2&page=2&sortBy=email&sortOrder=asc"), 200)
    assert [u["email"] for u in body["data"]["users"]] == [f"list-{tag}-2@example.com"]
    check_envelope(adm.patch(f"/api/v1/users/{ids[0]}/toggle-status"), 200)
    body = check_envelope(adm.get(f"/api/v1/users?search={tag}&isActive=false"), 200)
    assert [u["id"] for u in body["data"]["users"]] == [ids[0]]
    body = check_envelope(adm.get(f"/api/v1/users?search=%25"), 200)  # a literal %, not a wildcard
    assert body["pagination"]["total"] == 0


@pytest.mark.parametrize("query,fields", [
    ("page=0&limit=500", {"page", "limit"}),
    ("role=ROOT&isActive=maybe", {"role", "isActive"}),
    ("sortBy=password&sortOrder=up", {"sortBy", "sortOrder"}),
    ("page=abc", {"page"}),
])
def test_list_bad_query(admin, query, fields):
    body = check_envelope(Api(admin["access"]).get(f"/api/v1/users?{query}"), 400)
    assert {e["field"] for e in body["errors"]} == fields


def test_stats(admin):
    body = check_envelope(Api(admin["access"]).get("/api/v1/users/stats"), 200)
    d = body["data"]
    assert d["totalUsers"] == d["activeUsers"] + d["inactiveUsers"]
    assert d["adminUsers"] >= 1 and d["newLast7Days"] >= 1
    assert d["byRole"]["ADMINISTRATOR"] == d["adminUsers"]


def test_create_update_reset_delete(admin):
    adm = Api(admin["access"])
    email = unique_email("made")
    body = check_envelope(adm.post("/api/v1/users", {"name": "Made By Admin", "email": email,
                                                      "password": PASSWORD, "role": "ADMINISTRATOR"}), 201)
    uid = body["data"]["id"]
    assert body["data"]["role"] == "ADMINISTRATOR"
    check_envelope(adm.post("/api/v1/users", {"name": "Again", "email": email.upper(), "password": PASSWORD}), 409)
    body = check_envelope(adm.post("/api/v1/users", {"name": "", "email": "bad", "password": "x", "role": "GOD",
                                                      "isActive": "perhaps"}), 400)
    assert {e["field"] for e in body["errors"]} == {"name", "email", "password", "role", "isActive"}
    check_envelope(adm.put(f"/api/v1/users/{uid}", {}), 400)
    body = check_envelope(adm.put(f"/api/v1/users/{uid}", {"role": "USER", "name": "Demoted"}), 200)
    assert body["data"]["role"] == "USER"
    login = check_envelope(Api().post("/api/v1/auth/login", {"email": email, "password": PASSWORD}), 200)
    check_envelope(adm.patch(f"/api/v1/users/{uid}/password", {"newPassword": "weak"}), 400)
    check_envelope(adm.patch(f"/api/v1/users/{uid}/password", {"newPassword": NEW_PW}), 200)
    check_envelope(Api(login["data"]["accessToken"]).get("/api/v1/auth/me"), 401)
    check_envelope(Api().post("/api/v1/auth/login", {"email": email, "password": NEW_PW}), 200)
    body = check_envelope(adm.delete(f"/api/v1/users/{uid}"), 200)
    assert body["data"]["email"] == email
    check_envelope(adm.get(f"/api/v1/users/{uid}"), 404)
    check_envelope(adm.delete(f"/api/v1/users/{uid}"), 404)
    assert psql("SELECT deleted_at IS NOT NULL FROM paas.users WHERE id = :'a1'", uid) == "t"
    # the email is free again after the soft delete
    check_envelope(adm.post("/api/v1/users", {"name": "Reborn", "email": email, "password": PASSWORD}), 201)


def test_unknown_and_malformed_ids_are_404(admin):
    adm = Api(admin["access"])
    for uid in (str(uuid.uuid4()), "not-a-uuid", "1"):
        assert check_envelope(adm.get(f"/api/v1/users/{uid}"), 404)["code"] == "USER_NOT_FOUND"


def test_admin_cannot_lock_themself_out(admin):
    adm = Api(admin["access"])
    me = admin["id"]
    for method, path, body in [
        ("PATCH", f"/api/v1/users/{me}/toggle-status", None),
        ("PUT", f"/api/v1/users/{me}", {"isActive": False}),
        ("PUT", f"/api/v1/users/{me}", {"role": "USER"}),
        ("DELETE", f"/api/v1/users/{me}", None),
        ("POST", "/api/v1/users/bulk", {"action": "deactivate", "ids": [me]}),
        ("POST", "/api/v1/users/bulk", {"action": "set-role", "role": "USER", "ids": [me]}),
    ]:
        assert check_envelope(adm.call(method, path, body), 409)["code"] == "CONFLICT_ERROR"
    check_envelope(adm.get("/api/v1/auth/me"), 200)


def test_bulk_is_all_or_nothing(admin):
    adm = Api(admin["access"])
    a, b = register(Api()), register(Api())
    missing = str(uuid.uuid4())
    body = check_envelope(adm.post("/api/v1/users/bulk", {"action": "deactivate", "ids": [a["id"], missing]}), 404)
    assert body["errors"][0]["message"] == missing
    check_envelope(Api(a["access"]).get("/api/v1/auth/me"), 200)
    body = check_envelope(adm.post("/api/v1/users/bulk", {"action": "deactivate", "ids": [a["id"], b["id"]]}), 200)
    assert body["data"]["affected"] == 2
    check_envelope(Api(a["access"]).get("/api/v1/auth/me"), 401)
    check_envelope(adm.post("/api/v1/users/bulk", {"action": "set-role", "ids": [a["id"]]}), 400)
    body = check_envelope(adm.post("/api/v1/users/bulk", {"action": "explode", "ids": "x"}), 400)
    assert {e["field"] for e in body["errors"]} == {"action", "ids"}


def new_admin():
    email = unique_email("admin")
    psql("SELECT api.seed_admin(:'a1', :'a2')", email, PASSWORD)
    body = check_envelope(Api().post("/api/v1/auth/login", {"email": email, "password": PASSWORD}), 200)
    return {"id": body["data"]["user"]["id"], "access": body["data"]["accessToken"]}


def active_admins(*ids):
    return int(psql("SELECT count(*) FROM paas.users WHERE id = ANY (string_to_array(:'a1', ',')::uuid[])"
                    " AND role = 'ADMINISTRATOR' AND is_active AND deleted_at IS NULL", ",".join(ids)))


def at_once(calls, lock_ids):
    """Runs the HTTP calls at the same time while a second session holds
    the rows of lock_ids FOR UPDATE, until every call waits for a lock
    (none has committed; without serialisation each has made its checks).
    Returns the statuses."""
    results = [None] * len(calls)

    def go(i):
        method, path, body, token = calls[i]
        results[i] = Api(token).call(method, path, body).status_code

    with Session() as s:
        s.run("BEGIN")
        locked = s.run("SELECT id FROM paas.users WHERE id = ANY ('{%s}'::uuid[]) FOR UPDATE" % ",".join(lock_ids))
        assert len(locked.split()) == len(lock_ids)
        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
        for t in threads:
            t.start()
        wait_until(lambda: gateway_backends_waiting_for_a_lock() >= len(calls), timeout=20)
        s.run("COMMIT")
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("change", ["demote", "deactivate", "delete", "bulk"])
def test_two_admins_removing_each_other_at_once_leave_one(change):
    """The changes that can take the role away are serialised: the second
    one finds its caller no longer an administrator (403)."""
    a, b = new_admin(), new_admin()

    def call(me, other):
        return {"demote": ("PUT", f"/api/v1/users/{other['id']}", {"role": "USER"}),
                "deactivate": ("PATCH", f"/api/v1/users/{other['id']}/toggle-status", None),
                "delete": ("DELETE", f"/api/v1/users/{other['id']}", None),
                "bulk": ("POST", "/api/v1/users/bulk", {"action": "set-role", "role": "USER", "ids": [other["id"]]}),
                }[change] + (me["access"],)

    statuses = at_once([call(a, b), call(b, a)], [a["id"], b["id"]])
    assert sorted(statuses) == [200, 403], statuses
    assert active_admins(a["id"], b["id"]) == 1


def test_the_last_two_admins_cannot_both_leave_at_once():
    a, b = new_admin(), new_admin()
    others = psql("SELECT string_agg(id::text, ',') FROM paas.users WHERE role = 'ADMINISTRATOR'"
                  " AND id <> ALL (string_to_array(:'a1', ',')::uuid[])", f"{a['id']},{b['id']}")
    psql("UPDATE paas.users SET role = 'USER' WHERE id = ANY (string_to_array(:'a1', ',')::uuid[])", others)
    try:
        statuses = at_once([("DELETE", "/api/v1/auth/account", None, a["access"]),
                            ("DELETE", "/api/v1/auth/account", None, b["access"])], [a["id"], b["id"]])
        assert sorted(statuses) == [200, 409], statuses
        assert active_admins(a["id"], b["id"]) == 1
    finally:
        psql("UPDATE paas.users SET role = 'ADMINISTRATOR' WHERE id = ANY (string_to_array(:'a1', ',')::uuid[])", others)


def test_reading_a_user_takes_no_row_lock(admin):
    """GET /users/:id answers while another transaction holds the row (a
    login, an administrator's change) and never makes them wait."""
    u = register(Api())
    with Session() as s:
        s.run("BEGIN")
        s.run(f"SELECT 1 FROM paas.users WHERE id = '{u['id']}' FOR UPDATE")
        r = requests.get(f"{BASE}/api/v1/users/{u['id']}", headers={"Authorization": f"Bearer {admin['access']}"},
                         timeout=10)
        assert check_envelope(r, 200)["data"]["id"] == u["id"]
