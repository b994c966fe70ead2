"""pytest plugin: records every HTTP exchange of the suite (tests/http) as
JSON lines in $PAAS_RECORD_EXCHANGES, for check_exchanges.py.

    PYTHONPATH=tests/openapi PAAS_RECORD_EXCHANGES=/tmp/x.jsonl \
        PAAS_TEST_HTTP='-p record_exchanges tests/http' make test

Wraps requests.Session.request; the tests themselves are unchanged.
"""
import json
import os
import threading

import requests

_lock = threading.Lock()
_path = os.environ["PAAS_RECORD_EXCHANGES"]
_request = requests.Session.request


def _recorded(self, method, url, *args, **kw):
    r = _request(self, method, url, *args, **kw)
    body = kw.get("json")
    if body is None and kw.get("data") is not None:
        try:
            body = json.loads(kw["data"])
        except (ValueError, TypeError):
            body = "<raw>"
    ct = r.headers.get("Content-Type", "")
    try:
        answer = r.json() if ct.startswith("application/json") else None
    except ValueError:
        answer = "<malformed>"
    rec = {"method": method.upper(), "url": url, "request": body, "status": r.status_code,
           "contentType": ct, "response": answer}
    with _lock, open(_path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    return r


requests.Session.request = _recorded
