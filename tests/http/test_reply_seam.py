"""The reply seam (docs/architecture.md, httpd/reply.c): a route's function
may choose the status, message and extra headers of its success reply with
transaction-local settings (response.status, response.message,
response.headers) that httpd reads in the statement of the call.  A setting
httpd cannot send as it is is a fault of the function: a logged 500, never
passed through.

The function of GET /workers/stats is replaced for the length of a test by
one that sets the settings under test (and restored afterwards)."""
import os

import pytest

from conftest import Api, check_envelope, psql

LOG = os.environ["PAAS_TEST_HTTPD_LOG"]
PATH = "/api/v1/workers/stats"


@pytest.fixture
def stand_in(admin):
    saved = psql("SELECT pg_get_functiondef('api.workers_stats(jsonb, jsonb)'::regprocedure)")

    def set_body(status=None, message=None, headers=None):
        sets = "".join(f"PERFORM set_config('response.{k}', {psql_literal(v)}, true);\n"
                       for k, v in (("status", status), ("message", message), ("headers", headers))
                       if v is not None)
        psql(f"""CREATE OR REPLACE FUNCTION api.workers_stats(req jsonb DEFAULT '{{}}', ctx jsonb DEFAULT '{{}}')
                 RETURNS jsonb LANGUAGE plpgsql VOLATILE
                 SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
                 AS $f$ BEGIN {sets} RETURN '{{"standIn": 12.8}}'; END $f$""")
        return Api(admin["access"]).get(PATH)

    yield set_body
    psql(saved)


def psql_literal(v):
    return "'" + v.replace("'", "''") + "'"


def test_a_function_chooses_status_message_and_headers(stand_in, admin):
    r = stand_in(status="202", message="Stats are being gathered",
                 headers='{"Location": "/api/v1/workers", "X-Stand-In": "yes"}')
    body = check_envelope(r, 202)
    assert body["message"] == "Stats are being gathered" and body["data"] == {"standIn": 12.8}
    assert r.text.count('"standIn": 12.8') == 1  # the function's JSON text as it came
    assert r.headers["Location"] == "/api/v1/workers" and r.headers["X-Stand-In"] == "yes"
    assert r.headers["Content-Type"].startswith("application/json")
    # PostgREST's shape of response.headers: an array of one-header objects
    r = stand_in(headers='[{"X-One": "1"}, {"X-Two": "2"}]')
    body = check_envelope(r, 200)
    assert body["message"] == "Worker node statistics retrieved successfully"
    assert r.headers["X-One"] == "1" and r.headers["X-Two"] == "2"
    # nothing set: the route row's status and message; nothing left over
    r = stand_in()
    body = check_envelope(r, 200)
    assert body["message"] == "Worker node statistics retrieved successfully" and "X-One" not in r.headers


@pytest.mark.parametrize("setting", [
    {"status": "302"}, {"status": "404"}, {"status": "204"}, {"status": "2000"}, {"status": "ok"},
    {"message": "x" * 201}, {"message": "two\nlines"},
    {"headers": '{"Content-Length": "0"}'}, {"headers": '{"Transfer-Encoding": "chunked"}'},
    {"headers": '{"Access-Control-Allow-Origin": "*"}'}, {"headers": '{"X-A": "a\\r\\nX-Evil: 1"}'},
    {"headers": '{"Bad Name": "1"}'}, {"headers": '{"X-N": 1}'}, {"headers": '"X-A: 1"'},
    {"headers": '[{"X-A": "1", "X-B": "2"}]'}, {"headers": "not json"},
    {"headers": "{" + ",".join(f'"X-H{i}": "v"' for i in range(17)) + "}"},
])
def test_an_invalid_setting_is_a_logged_500(stand_in, setting):
    before = open(LOG).read().count("reply_settings_invalid")
    r = stand_in(**setting)
    body = check_envelope(r, 500)
    assert body["code"] == "INTERNAL_ERROR" and body["message"] == "Internal server error"
    assert "X-Evil" not in r.headers and "X-A" not in r.headers
    assert open(LOG).read().count("reply_settings_invalid") == before + 1
