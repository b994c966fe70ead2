"""A call PostgreSQL rolled back because of a rival transaction (deadlock
40P01, serialization failure 40001) committed nothing: httpd sends it again,
up to 3 times, before it answers 503 (httpd/db.c).

The function of GET /workers/stats is replaced for the length of a test by
one that fails with the SQLSTATE under test its first N times (a sequence
counts them: nextval is not rolled back), then answers."""
import json

import pytest

from conftest import Api, check_envelope, psql

PATH = "/api/v1/workers/stats"


@pytest.fixture
def failing_first(admin):
    saved = psql("SELECT pg_get_functiondef('api.workers_stats(jsonb, jsonb)'::regprocedure)")
    psql("CREATE SEQUENCE IF NOT EXISTS public.rollback_retry_calls")
    psql("GRANT USAGE ON SEQUENCE public.rollback_retry_calls TO PUBLIC")

    def call(sqlstate, n):
        psql("SELECT setval('public.rollback_retry_calls', 1, false)")
        psql(f"""CREATE OR REPLACE FUNCTION api.workers_stats(req jsonb DEFAULT '{{}}', ctx jsonb DEFAULT '{{}}')
                 RETURNS jsonb LANGUAGE plpgsql VOLATILE
                 SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
                 AS $f$ DECLARE k bigint := nextval('public.rollback_retry_calls'); BEGIN
                   IF k <= {n} THEN RAISE EXCEPTION 'rival transaction' USING ERRCODE = '{sqlstate}'; END IF;
                   RETURN jsonb_build_object('call', k); END $f$""")
        r = Api(admin["access"]).get(PATH)
        calls = int(psql("SELECT last_value FROM public.rollback_retry_calls"))
        return r, calls

    yield call
    psql(saved)
    psql("DROP SEQUENCE public.rollback_retry_calls")


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_rolled_back_call_is_sent_again(failing_first, sqlstate):
    r, calls = failing_first(sqlstate, 2)
    body = check_envelope(r, 200)
    assert body["data"] == {"call": 3} and calls == 3  # two rollbacks, then the answer


def test_past_three_retries_it_is_a_503(failing_first):
    r, calls = failing_first("40P01", 10)
    body = check_envelope(r, 503)
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert calls == 4  # the call and its 3 retries, no more


def test_other_errors_are_not_retried(failing_first):
    r, calls = failing_first("22023", 1)  # invalid_parameter_value: the same input fails again
    assert r.status_code != 200 and calls == 1
