#!/usr/bin/env python3
"""The test suite's SMTP server: Debian's aiosmtpd (a real SMTP
implementation, not a stand-in of our own) with STARTTLS required, AUTH
required over TLS, and a Maildir for what arrives.

It stands in only for the outside mail system; the mailer
(bgworker/mailer.c) talks to it with libcurl exactly as to a provider.
Each message is stored as received, with two headers put in front of it:
X-Envelope-From and X-Envelope-To (the SMTP envelope).

Behaviour the tests choose through the recipient's local part:
  reject...        RCPT answers 550 5.1.1 (a permanent failure)
  tempfailN...     RCPT answers 451 4.7.1 the first N times for that address
  slow...          the message is stored, then the answer (250) waits
                   --slow seconds; a file "slow-<n>" next to the Maildir says
                   the server is waiting (a client killed now has delivered
                   but never heard so)

stats.json next to the Maildir counts connections (made since the start;
"open": open now), AUTHs and messages (the tests and bench/mail.sh check
connection reuse with it: the connections a run used are those made during
it plus those already open when it began); it is written every 0.1 s.
aiosmtpd's Controller makes one connection of its own when it starts.

Usage: smtpd.py --port P --maildir DIR --cert CERT --key KEY --user U
                --password-file F [--slow S] [--pid-file F]
"""
import argparse
import asyncio
import json
import os
import re
import signal
import ssl
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

lock = threading.Lock()
stats = {"connections": 0, "open": 0, "auths": 0, "messages": 0}
tempfails = {}
slow_count = 0
args = None


def save_stats():
    with lock:
        data = json.dumps(stats)
    path = os.path.join(os.path.dirname(os.path.abspath(args.maildir)), "stats.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, path)


class CountingSMTP(SMTP):
    def connection_made(self, transport):
        # the first call is the TCP connection; STARTTLS calls it again
        if not getattr(self, "_counted", False):
            self._counted = True
            with lock:
                stats["connections"] += 1
                stats["open"] += 1
        super().connection_made(transport)

    def connection_lost(self, error):
        if getattr(self, "_counted", False) and not getattr(self, "_lost", False):
            self._lost = True
            with lock:
                stats["open"] -= 1
        super().connection_lost(error)


class Handler:
    def __init__(self, maildir):
        self.dir = maildir
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), exist_ok=True)
        self.seq = 0

    def store(self, raw):
        """Delivers to the Maildir (tmp/, then renamed into new/), without the
        fsync of Python's mailbox module: a test server needs no durability,
        and the fsync would be most of the time of a message."""
        with lock:
            self.seq += 1
            key = "%d.M%dP%dQ%d.paas-test" % (time.time(), time.time_ns() % 1000000, os.getpid(), self.seq)
        tmp = os.path.join(self.dir, "tmp", key)
        with open(tmp, "wb") as f:
            f.write(raw)
        os.rename(tmp, os.path.join(self.dir, "new", key))
        return key

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        m = re.match(r"tempfail(\d+)", local)
        if m:
            with lock:
                seen = tempfails.get(address, 0)
                tempfails[address] = seen + 1
            if seen < int(m.group(1)):
                return "451 4.7.1 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        global slow_count
        raw = (b"X-Envelope-From: " + envelope.mail_from.encode() + b"\r\n"
               + b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n"
               + envelope.original_content)
        key = self.store(raw)
        with lock:
            stats["messages"] += 1
        if any(r.split("@")[0].lower().startswith("slow") for r in envelope.rcpt_tos):
            with lock:
                slow_count += 1
                n = slow_count
            marker = os.path.join(os.path.dirname(os.path.abspath(args.maildir)), "slow-%d" % n)
            with open(marker, "w") as f:
                f.write(key)
            await asyncio.sleep(args.slow)
        return "250 2.0.0 OK queued as %s" % key


def authenticator(server, session, envelope, mechanism, auth_data):
    with open(args.password_file) as f:
        password = f.readline().rstrip("\r\n")
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == args.user.encode()
          and auth_data.password == password.encode())
    if ok:
        with lock:
            stats["auths"] += 1
    return AuthResult(success=ok)


class TLSController(Controller):
    def factory(self):
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--slow", type=float, default=10.0)
    p.add_argument("--pid-file")
    args = p.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    save_stats()
    controller = TLSController(
        Handler(args.maildir), hostname="127.0.0.1", port=args.port,
        tls_context=ctx, require_starttls=True, auth_required=True, auth_require_tls=True,
        authenticator=authenticator, ident="paas-test-smtpd")
    controller.start()
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(str(os.getpid()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        save_stats()
        time.sleep(0.1)
    controller.stop()


if __name__ == "__main__":
    main()
