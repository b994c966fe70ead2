#!/usr/bin/env bash
# bench/edge.sh (run by bench/run.sh, on its stack): what a new client sees
# while others hold connections or flood, on a httpd of its own (the shipped
# -O2 binary with its default threads, against the bench's database):
#   idle       1,000 connections from one address that send nothing
#   slow       1,000 connections from one address sending headers or bodies
#              at 1 byte/s (both reconnect when cut)
#   keepalive  500 keep-alive clients, 2 requests/s each
#   flood      500 keep-alive clients as fast as they can (wrk -c500)
#   logins     48 addresses x 23 logins/s (bcrypt), login limit lifted
# For each: p50/p99 of a new client's GET /api/v1/health and GET
# /api/v1/auth/me (a fresh connection per request), and what the load got.
# The load generators run at nice 10: on a real server their CPU would be
# the clients' own, here they share the two cores.
# Targets: /health p99 <= 100 ms, /auth/me <= 50 ms under idle, slow and
# keep-alive loads (the flood row is the overload beyond them).
# EDGE_HTTPD runs another binary (e.g. an older build, for a comparison).
set -euo pipefail
: "${BASE:?run by bench/run.sh}" "${TOKEN:?}" "${TMP:?}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EDGE_SECS=${EDGE_SECS:-8}
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EDGE_PORT=$(port)
EDGE_PID=
trap '[ -n "$EDGE_PID" ] && kill "$EDGE_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT

# the bench pins its threads to its connections; this httpd runs the default
env -u PAAS_HTTP_THREADS PAAS_HTTP_LISTEN=127.0.0.1:$EDGE_PORT PAAS_METRICS_LISTEN=127.0.0.1:$(port) \
	PAAS_ACCESS_LOG=0 PAAS_TRUST_PROXY=1 PAAS_TRUSTED_PROXIES=127.0.0.1/32 \
	PAAS_RATE_LOGIN_PER_MIN=1000000 "${EDGE_HTTPD:-$ROOT/httpd/paas-httpd}" >>"$TMP/edge-httpd.log" 2>&1 &
EDGE_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$EDGE_PORT/api/v1/health" && break; sleep 0.1; done

cat >"$TMP/edge_load.py" <<'EOF'
import asyncio, json, os, random, signal, socket, subprocess, sys, threading, time

PORT = int(os.environ["EDGE_PORT"])
SECS = float(os.environ["EDGE_SECS"])
TOKEN = os.environ["TOKEN"]
stats = {"cut": 0, "answers": 0, "refused": 0, "busy": 0}


async def hold(src, payload, every):
    """One connection from src: sends payload a byte per interval (or
    nothing), reconnects when the server cuts it."""
    while True:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", PORT, local_addr=(src, 0))
        except OSError:
            stats["refused"] += 1
            await asyncio.sleep(0.2)
            continue
        try:
            for i in (range(len(payload)) if payload else iter(int, 1)):
                if payload:
                    w.write(payload[i:i + 1])
                    await w.drain()
                try:
                    if await asyncio.wait_for(r.read(4096), every) == b"":
                        break
                except asyncio.TimeoutError:
                    pass
        except OSError:
            pass
        stats["cut"] += 1
        w.close()
        await asyncio.sleep(0.25)  # an attacker keeping its sockets, not a loop


async def keepalive(i, rate):
    req = ("GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.8.%d.%d\r\n\r\n"
           % (i // 250, i % 250 + 1)).encode()
    await asyncio.sleep(random.random() / rate)
    while True:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", PORT)
            while True:
                w.write(req)
                await w.drain()
                head = await r.readuntil(b"\r\n\r\n")
                n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await r.readexactly(n)
                stats["answers"] += 1
                await asyncio.sleep(1.0 / rate)
        except (OSError, asyncio.IncompleteReadError):
            stats["cut"] += 1


async def one_login(i, n):
    # a fresh account each time: the per-account limit never answers first
    body = b'{"email":"nobody-%d-%d@example.com","password":"Wr0ngPassword"}' % (i, n)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", PORT)
        w.write(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"X-Forwarded-For: 10.7.0.%d\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (i + 1, len(body), body))
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 60)
        stats["answers"] += 1
        if head.startswith(b"HTTP/1.1 503"):
            stats["busy"] += 1
        w.close()
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
        pass


async def login(i, rate):
    """Logins from one address at a fixed rate, whatever the answers."""
    n, pending = 0, set()
    await asyncio.sleep(random.random() / rate)
    while True:
        n += 1
        t = asyncio.create_task(one_login(i, n))
        pending.add(t)
        t.add_done_callback(pending.discard)
        await asyncio.sleep(1.0 / rate)


async def load(kind):
    tasks = []
    if kind == "idle":
        tasks = [hold("127.0.0.2", b"", 5.0) for _ in range(1000)]
    elif kind == "slow":
        body = b'{"email":"' + b"x" * 500 + b'"}'
        hdr = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 500 + b"\r\n\r\n"
        post = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        tasks = [hold("127.0.0.3", hdr if i % 2 else post, 1.0) for i in range(1000)]
    elif kind == "keepalive":
        tasks = [keepalive(i, 2.0) for i in range(500)]
    elif kind == "logins":
        tasks = [login(i, 23.0) for i in range(48)]
    await asyncio.gather(*[asyncio.create_task(t) for t in tasks])


def probe(out):
    """A new client: a fresh connection per request, /health and /auth/me in turn."""
    lat = {"health": [], "me": []}
    reqs = {"health": b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "me": ("GET /api/v1/auth/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % TOKEN).encode()}
    time.sleep(1.5)  # let the load settle
    end = time.monotonic() + SECS
    while time.monotonic() < end:
        for name, data in reqs.items():
            t0 = time.monotonic()
            try:
                s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
                s.sendall(data)
                got = b""
                while not got.startswith(b"HTTP/1.1 200") or b"\r\n\r\n" not in got:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                s.close()
                ok = got.startswith(b"HTTP/1.1 200")
            except OSError:
                ok = False
            lat[name].append((time.monotonic() - t0) * 1000 if ok else float("inf"))
            time.sleep(0.01)
    out.update(lat)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def run_load(kind):
    """The load alone (its own process, at nice 10): prints its counters at SIGTERM."""
    loop = asyncio.new_event_loop()

    def stop():
        print(json.dumps(stats))
        sys.stdout.flush()
        os._exit(0)

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.run_until_complete(load(kind))


def main(kind):
    out = {}
    # the load generators' CPU would be other machines' (they share the 2
    # cores with httpd, PostgreSQL and the probe here): they run at nice 10
    if kind == "flood":
        gen = subprocess.Popen(["nice", "-n", "10", "wrk", "-t2", "-c500", "-d%ds" % int(SECS + 3),
                                "http://127.0.0.1:%d/api/v1/health" % PORT], stdout=subprocess.PIPE, text=True)
    elif kind != "none":
        gen = subprocess.Popen(["nice", "-n", "10", sys.executable, __file__, kind, "load"],
                               stdout=subprocess.PIPE, text=True)
    probe(out)
    if kind == "flood":
        rps = next((l.split()[1] for l in gen.communicate()[0].splitlines() if l.startswith("Requests/sec")), "?")
        note = "wrk -c500: %s req/s" % rps
    elif kind != "none":
        gen.terminate()
        stats.update(json.loads(gen.communicate()[0] or "{}"))
        note = {"idle": "%d sockets cut, %d reconnects refused" % (stats["cut"], stats["refused"]),
                "slow": "%d sockets cut" % stats["cut"],
                "keepalive": "%d answers to the 500 (%.0f/s)" % (stats["answers"], stats["answers"] / (SECS + 1.5)),
                "logins": "%d logins answered, %d of them 503 (no hashing slot)" % (stats["answers"], stats["busy"])}[kind]
    else:
        note = "no load"
    h, m = out["health"], out["me"]
    print("| %s | %.1f | %.1f | %.1f | %.1f | %s |" % (kind, pct(h, .5), pct(h, .99), pct(m, .5), pct(m, .99), note))
    sys.stdout.flush()


if len(sys.argv) > 2:
    run_load(sys.argv[1])
else:
    main(sys.argv[1])

EOF

echo
echo "edge (own httpd: default threads, $EDGE_SECS s a scenario; ms of a new client, a connection per request)"
echo
echo "| load | /health p50 | /health p99 | /auth/me p50 | /auth/me p99 | the load |"
echo "|---|---:|---:|---:|---:|---|"
for kind in none idle slow keepalive flood logins; do
	EDGE_PORT=$EDGE_PORT EDGE_SECS=$EDGE_SECS /usr/bin/python3 "$TMP/edge_load.py" "$kind" || echo "| $kind | failed | | | | |"
	sleep 2 # what the load held is released before the next
done
RSS=$(awk '/VmRSS/ {print $2, $3}' "/proc/$EDGE_PID/status")
echo
echo "edge httpd RSS after the runs: $RSS"
