#!/usr/bin/env python3
"""Throws the crash classes of the gateway's edge at the real (ASan) httpd.

make test runs it after the HTTP tests, against the same httpd (PAAS_URL):
each class of hostile input below is sent as raw bytes on its own
connections, and after each class GET /api/v1/health must still answer
200.  Then a bounded black-box mutation round (random edits of valid
requests, PAAS_FAULT_SECS, default 10 s).  The sanitizer reports of the
httpd log are checked by tests/run.sh afterwards.  Exit status 1 when httpd
stopped answering or an answer was malformed.

Classes: nesting (objects, arrays, unterminated, on body-reading routes of
every access level), header counts and sizes, framing (smuggling shapes,
bad chunks), request lines and paths, query strings, body contents,
Idempotency-Key, connection abuse (half-closed, reset, churn).
"""
import os
import random
import socket
import struct
import sys
import time
import urllib.parse

BASE = os.environ.get("PAAS_URL", "http://127.0.0.1:8080")
HOST, PORT = urllib.parse.urlparse(BASE).hostname, urllib.parse.urlparse(BASE).port
SECS = float(os.environ.get("PAAS_FAULT_SECS", "10"))
failures = []


def send(data, timeout=5.0, src=None, shut=True, reset=False):
    """Sends data on a fresh connection; returns what came back (maybe b"")."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        if src:
            s.bind((src, 0))
        s.connect((HOST, PORT))
        s.sendall(data)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return b""
        out = b""
        if shut:
            s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if len(out) > 1 << 20:
                break
        return out
    except OSError:  # timeouts, resets, a server that closed first
        return out if "out" in locals() else b""
    finally:
        s.close()


def status_of(reply):
    try:
        return int(reply.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def alive(label):
    reply = send(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
    if status_of(reply) != 200:
        failures.append(f"httpd did not answer /api/v1/health after {label}: {reply[:200]!r}")
        print(f"FAIL {label}: health {reply[:80]!r}", flush=True)
        return False
    return True


def req(method="GET", path="/api/v1/health", headers=(), body=b"", cl=True):
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: x"]
    lines += [h if isinstance(h, bytes) else h.encode() for h in headers]
    if cl and body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def check_replies(label, replies, allowed=None):
    """Every reply is an HTTP response (or the connection was closed)."""
    for r in replies:
        if r and not r.startswith(b"HTTP/1."):
            failures.append(f"{label}: not an HTTP response: {r[:100]!r}")
        st = status_of(r) if r else None
        if st is not None and st >= 500 and st not in (503, 505):
            failures.append(f"{label}: server error {st}: {r[:200]!r}")
        if allowed and st is not None and st not in allowed:
            failures.append(f"{label}: status {st} not in {sorted(allowed)}: {r[:200]!r}")


ROUTES = [("GET", "/api/v1/health"), ("GET", "/health"), ("POST", "/api/v1/auth/login"),
          ("POST", "/api/v1/auth/register"), ("POST", "/api/v1/billing/webhooks/midtrans"),
          ("POST", "/api/v1/workers/register"), ("PUT", "/api/v1/workers/n1/heartbeat"),
          ("GET", "/api/v1/status"), ("GET", "/api/v1/openapi.json")]


def nesting():
    bodies = [b'{"a":' * 250 + b"1" + b"}" * 250, b"[" * 900 + b"1" + b"]" * 900,
              b"[" * 200000, b'{"a":[' * 40000, b'{"a":"' + b"[" * 5000 + b'"}',
              b'[' * 33 + b']' * 33, b'{"a":' * 100000]
    out = []
    for method, path in ROUTES:
        for b in bodies:
            out.append(send(req(method, path, ["Content-Type: application/json"], b)))
    check_replies("nesting", out, {200, 201, 400, 401, 404, 413, 429})


def headers():
    out = []
    for n in (63, 64, 65, 100, 200):
        hs = ["X-H%d: %d" % (i, i) for i in range(n)]
        out.append(send(req(headers=hs)))
    out.append(send(req(headers=["X-Big: " + "a" * 15000])))
    out.append(send(req(headers=["X-Big: " + "a" * 20000])))
    out.append(send(req(headers=["NoColonHere"])))
    out.append(send(req(headers=["X-A: 1", " folded continuation", "Transfer-Encoding: chunked"])))
    out.append(send(req(headers=[b"X-Nul: a\x00b"])))
    out.append(send(req(headers=["X-Forwarded-For: " + ", ".join("10.0.%d.%d" % (i // 250, i % 250) for i in range(1000))])))
    out.append(send(req(headers=["X-Forwarded-For: ,,, , garbage, [::1]:80, 999.1.1.1"])))
    out.append(send(req(headers=["X-Forwarded-For: " + "1" * 3000])))
    out.append(send(req(headers=["Authorization: Bearer " + "a.b." * 2000])))
    out.append(send(req(headers=["Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])))
    check_replies("headers", out)


def framing():
    out = []
    shapes = [
        ["Content-Length: 2", "Transfer-Encoding: chunked"],
        ["Transfer-Encoding: chunked", "Content-Length: 2"],
        ["Content-Length: 2", "Content-Length: 3"],
        ["Content-Length: -1"], ["Content-Length: 99999999999999999999"], ["Content-Length: 0x10"],
        ["Content-Length:"], ["Transfer-Encoding: gzip"], ["Transfer-Encoding: chunked, identity"],
        ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], ["Transfer-Encoding: CHUNKED"],
        ["Expect: 100-continue", "Content-Length: 2"], ["Expect: nonsense", "Content-Length: 2"],
    ]
    for hs in shapes:
        out.append(send(req("POST", "/api/v1/auth/login", hs, b"{}", cl=False)))
    chunks = [b"ffffffffffffffffffffff\r\n{}\r\n0\r\n\r\n", b"1;ext=x\r\n{\r\n1\r\n}\r\n0\r\n\r\n",
              b"2\n{}\n0\n\n", b"-1\r\n\r\n", b"2\r\n{}", b"0\r\nTrailer: x\r\n\r\n", b"\r\n\r\n",
              b"1\r\n{\r\n" * 5000, b"10000\r\n" + b"a" * 100, b"2\r\n{}\r\n0\r\n\r\nGET /api/v1/health HTTP/1.1\r\n\r\n"]
    for c in chunks:
        out.append(send(req("POST", "/api/v1/auth/login", ["Transfer-Encoding: chunked"], c, cl=False)))
    # a pipelined request behind a body the two sides could frame differently
    smuggle = req("POST", "/api/v1/auth/login", ["Content-Length: 4", "Transfer-Encoding: chunked"],
                  b"0\r\n\r\nGET /api/v1/metrics HTTP/1.1\r\nHost: x\r\n\r\n", cl=False)
    out.append(send(smuggle))
    check_replies("framing", out)
    if any(b"paas_http_requests_total" in r for r in out):
        failures.append("framing: a smuggled request reached the metrics")


def request_lines():
    lines = [b"GET /\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"get /api/v1/health HTTP/1.1\r\n\r\n",
             b"FOO /api/v1/health HTTP/1.1\r\n\r\n", b"CONNECT x:443 HTTP/1.1\r\n\r\n",
             b"GET http://x/api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n", b"GET * HTTP/1.1\r\n\r\n",
             b"GET /api/v1/health HTTP/9.9\r\n\r\n", b"GET /api/v1/health HTTP/1.0\r\n\r\n",
             b"GET  /api/v1/health  HTTP/1.1\r\n\r\n", b"\r\n\r\n", b"GET /api/v1/health\tHTTP/1.1\r\n\r\n",
             b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200)]
    out = [send(line) for line in lines]
    paths = ["/API/V1/HEALTH", "//api//v1//health", "/api/v1/%68ealth", "/api/v1/x/../health", "/api/v1/./health",
             "/api/v1/%2e%2e/v1/health", "/api/v1/health%", "/api/v1/health%0", "/api/v1/%00", "/api/v1/%c0%ae",
             "/api/v1/users/" + "a" * 300, "/" + "a/" * 3000, "/api/v1/services/%ff%fe", "/api/v1/services/%F0%9F%98%80",
             "/api/v1/workers/%2F%2F/heartbeat", "/api/v1/health?", "/api/v1/health#x", "/api/v1/health/\x7f",
             "/api/v1/users/%2e%2e%2fmetrics", "/api/v1/services/a%2Fb"]
    for p in paths:
        out.append(send(req(path=p)))
        out.append(send(req("PUT", p, body=b"{}")))
    check_replies("request lines and paths", out)


def queries():
    qs = ["&".join("k%d=v" % i for i in range(3000)), "k=" + "v" * 10000, "k" * 10000 + "=v", "%", "%zz=1",
          "a=%00b", "a=%ff", "=====", "&&&&", "a=1&a=2&a=3", "page=-1&limit=99999999999999999999",
          "search=%27%3B%20DROP%20TABLE%20users%3B--", "a[b][c]=1", "a=" + "%41" * 5000]
    out = [send(req(path="/api/v1/services?" + q)) for q in qs]
    out += [send(req(path="/api/v1/health?" + q)) for q in qs]
    check_replies("queries", out)


def bodies():
    bs = [b'{"email":"\xde\xa2\xdd\xc9', b'{"a":"\xff"}', b'{"a":"\\u0000"}', b'{"a\x00b":1}',
          b'{"n":1e999999}', b'{"n":123456789012345678901234567890}', b'{"a":1,"a":2}',
          b"[" + b"1," * 100000 + b"1]", b'{"a":"' + b"\\\\" * 50000 + b'"}', b"\x00" * 100,
          b'{"email":' + b'"a",' * 1000 + b'"b"}', b"null", b'"string"', b"\xef\xbb\xbf{}",
          b'{"amount":99999999999999999999999,"currency":"IDR"}', os.urandom(4096)]
    out = []
    for method, path in ROUTES:
        for b in bs:
            out.append(send(req(method, path, ["Content-Type: application/json"], b)))
    check_replies("bodies", out)


def idempotency():
    out = [send(req("POST", "/api/v1/billing/topup", ["Idempotency-Key: " + "k" * 10000], b"{}")),
           send(req("POST", "/api/v1/billing/topup", [b"Idempotency-Key: \xff\xfe\x00"], b"{}")),
           send(req("POST", "/api/v1/billing/topup", ["Idempotency-Key: a", "Idempotency-Key: b"], b"{}"))]
    check_replies("idempotency", out)


def connections():
    # half-closed inside the headers, reset inside a body, quick churn
    for i in range(50):
        send(b"POST /api/v1/auth/login HTTP/1.1\r\nContent-Le", timeout=2)
        send(req("POST", "/api/v1/auth/login", ["Content-Length: 1000"], b"", cl=False) + b'{"a":', reset=True)
    for i in range(300):
        s = socket.socket()
        try:
            s.bind(("127.0.0.9", 0))
            s.connect((HOST, PORT))
        finally:
            s.close()
    time.sleep(0.5)


VALID = [req("GET", "/api/v1/health"),
         req("POST", "/api/v1/auth/login", ["Content-Type: application/json", "X-Forwarded-For: 10.9.9.9"],
             b'{"email":"a@example.com","password":"Str0ngPassw0rd"}'),
         req("POST", "/api/v1/billing/webhooks/midtrans", ["Transfer-Encoding: chunked"],
             b'9\r\n{"a":[1]}\r\n0\r\n\r\n', cl=False),
         req("GET", "/api/v1/services?page=1&limit=5&search=a%20b")]


def mutate(data, rnd):
    b = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        op = rnd.randrange(5)
        i = rnd.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] = rnd.randrange(256)
        elif op == 1:
            b[i:i] = bytes([rnd.choice(b"{}[]\"\\%:,\r\n 0aZ\x00\xff")]) * rnd.choice((1, 2, 40, 1000))
        elif op == 2 and b:
            del b[i:i + rnd.randint(1, 16)]
        elif op == 3:
            j = rnd.randrange(len(b) + 1)
            b[i:i] = b[min(i, j):max(i, j)][:4096]
        else:
            b[i:i] = rnd.choice([b"\r\nTransfer-Encoding: chunked", b"\r\nContent-Length: 5", b"%2e%2e/", b"//",
                                 b"\r\nX-Forwarded-For: 1.2.3.4", b'{"a":' * 50])
    return bytes(b)


def mutation_round(secs):
    rnd = random.Random(int(os.environ.get("PAAS_FAULT_SEED", str(int(time.time())))))
    end, n = time.monotonic() + secs, 0
    while time.monotonic() < end:
        data = mutate(rnd.choice(VALID), rnd)
        check_replies("mutation", [send(data, timeout=3)])
        n += 1
        if n % 200 == 0 and not alive("mutation round"):
            break
    return n


def main():
    if not alive("start"):
        return 1
    for name, fn in [("nesting", nesting), ("headers", headers), ("framing", framing),
                     ("request lines and paths", request_lines), ("queries", queries), ("bodies", bodies),
                     ("idempotency", idempotency), ("connections", connections)]:
        t0 = time.monotonic()
        fn()
        ok = alive(name)
        print(f"fault: {name}: {'alive' if ok else 'DOWN'} ({time.monotonic() - t0:.1f} s)", flush=True)
        if not ok:
            break
    else:
        n = mutation_round(SECS)
        print(f"fault: {n} mutated requests: {'alive' if alive('mutations') else 'DOWN'}", flush=True)
    for f in failures[:20]:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
