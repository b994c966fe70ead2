"""Fixtures for the checks of the Kubernetes stand-in (tests/fakes/kubeapi.py).

Each check starts the stand-in as a real process on a free port and talks to it the way
its users will: the real kubectl (/usr/bin/kubectl) through a kubeconfig with a bearer
token over TLS (client-go sends no bearer token over plain http), raw HTTP(S) requests
(http.client) for the protocol details, and curl/libcurl with a CA file.
"""
import http.client
import json
import os
import ssl
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FAKE = os.path.join(ROOT, "tests", "fakes", "kubeapi.py")
KUBECTL = os.environ.get("PAAS_TEST_KUBECTL", "/usr/bin/kubectl")
TOKEN = "test-token-7f3a9c"
# Every stand-in of the session records what it returned (--capture) and, when it stops, what it
# stored; test_schema.py validates all of it against Kubernetes' published schemas.
RECORDS = []


class Fake:
    """One running stand-in: HTTP(S) helpers, its test controls and a kubectl bound to it."""

    def __init__(self, tmp, *extra, tls=True, token=TOKEN):
        self.tmp = str(tmp)
        os.makedirs(self.tmp, exist_ok=True)
        self.token = token
        self.token_file = os.path.join(self.tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(token + "\n")
        self.kubeconfig = os.path.join(self.tmp, "kubeconfig")
        self.cache = os.path.join(self.tmp, "kubectl-cache")
        port_file = os.path.join(self.tmp, "port")
        self.capture = os.path.join(self.tmp, "served.jsonl")
        self.stored = os.path.join(self.tmp, "stored.json")
        RECORDS.append((self.capture, self.stored))
        args = [sys.executable, FAKE, "--port-file", port_file, "--token-file", self.token_file,
                "--kubeconfig", self.kubeconfig, "--capture", self.capture] + list(extra)
        self.tls = tls
        if tls:
            args += ["--tls-dir", os.path.join(self.tmp, "tls")]
        self.log_path = os.path.join(self.tmp, "kubeapi.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("kubeapi did not start: " + open(self.log_path).read())
            time.sleep(0.05)
        self.port = int(open(port_file).read())
        self.ca = os.path.join(self.tmp, "tls", "ca.crt") if tls else None
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.ctx = ssl.create_default_context(cafile=self.ca) if tls else None
        self.conn = None

    # raw HTTP ---------------------------------------------------------------------

    def connect(self):
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def req(self, method, path, body=None, ctype="application/json", headers=None, token=None, raw=False):
        """-> (status, parsed JSON body or text, response headers)."""
        h = {"Accept": "application/json"}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if body is not None:
            h["Content-Type"] = ctype
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
        h.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self.connect()
            try:
                self.conn.request(method, path, body, h)
                r = self.conn.getresponse()
                data = r.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        ct = r.getheader("Content-Type", "")
        if not raw and "json" in ct and data:
            return r.status, json.loads(data), r
        return r.status, data.decode(errors="replace"), r

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def apply(self, path, obj, manager="paas", force=True, **kw):
        sep = "&" if "?" in path else "?"
        q = "%sfieldManager=%s%s" % (sep, manager, "&force=true" if force else "")
        return self.req("PATCH", path + q, obj, ctype="application/apply-patch+yaml", **kw)

    def control(self, method, path, body=None):
        st, out, _ = self.req(method, "/_fake/" + path, body, token="")
        assert st == 200, (st, out)
        return out

    def watch(self, path, timeout=10):
        """Open a watch; returns a reader whose next_event() yields decoded events."""
        return WatchStream(self, path, timeout)

    def wait_for(self, fn, timeout=15, what="condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))

    def requests_since(self, seq=0):
        return self.control("GET", "requests?since=%d" % seq)

    # kubectl ------------------------------------------------------------------------

    def kubectl(self, *args, check=True, timeout=40, input=None, kubeconfig=None):
        env = dict(os.environ, KUBECONFIG=kubeconfig or self.kubeconfig, HOME=self.tmp)
        p = subprocess.run([KUBECTL, "--cache-dir", self.cache] + list(args), capture_output=True, text=True,
                           timeout=timeout, input=input, env=env)
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s failed (%d):\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def kubectl_popen(self, *args):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.tmp)
        return subprocess.Popen([KUBECTL, "--cache-dir", self.cache] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)

    def dump(self):
        """Write every stored object to self.stored."""
        st, body, _ = self.req("GET", "/_fake/objects", token="")
        assert st == 200
        with open(self.stored, "w") as f:
            json.dump(body, f)

    def stop(self):
        if self.proc.poll() is None:
            self.dump()
        if self.conn is not None:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        text = open(self.log_path).read()
        assert "Traceback" not in text, "the stand-in logged an exception:\n" + text


class WatchStream:
    def __init__(self, fake, path, timeout):
        self.c = fake.connect()
        self.c.timeout = timeout
        self.c.request("GET", path, headers={"Authorization": "Bearer " + fake.token, "Accept": "application/json"})
        self.r = self.c.getresponse()
        self.status = self.r.status

    def next_event(self):
        line = self.r.readline()
        if not line:
            return None
        return json.loads(line)

    def events_until(self, pred, limit=200):
        seen = []
        for _ in range(limit):
            ev = self.next_event()
            if ev is None:
                break
            seen.append(ev)
            if pred(ev):
                return seen
        raise AssertionError("watch ended without the expected event; saw %s" % [
            (e["type"], e["object"].get("metadata", {}).get("name")) for e in seen])

    def close(self):
        self.c.close()


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    f = Fake(tmp_path_factory.mktemp("kubeapi"), "--nodes", "3", "--bookmark-interval", "0.5",
             "--too-large-rv-wait", "0.5")
    yield f
    f.stop()


@pytest.fixture
def start_fake(tmp_path):
    started = []

    def start(*extra, **kw):
        f = Fake(tmp_path / ("f%d" % len(started)), *extra, **kw)
        started.append(f)
        return f
    yield start
    for f in started:
        f.stop()

