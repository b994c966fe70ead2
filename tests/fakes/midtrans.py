#!/usr/bin/env python3
"""A fake Midtrans for the test suite (Python stdlib only, 127.0.0.1, random port).

It implements what paas talks to, as ../../../shared/reference/midtrans.md
documents it:
  POST /snap/v1/transactions     Snap: Basic auth with the server key, body
                                 {transaction_details:{order_id, gross_amount}, ...}
                                 -> 201 {token, redirect_url}; 401/400 with
                                 {"error_messages": [...]}
  GET  /v2/<order_id>/status     Core API status: HTTP 200 with the notification
                                 shape, or body status_code "404" while no
                                 payment was attempted
and sends HTTP notifications the way Midtrans does: POST, JSON body, headers
Content-Type/Accept application/json and User-Agent Veritrans, status_code
200/201/202 by status, gross_amount with two decimals, signature_key =
hex SHA-512(order_id + status_code + gross_amount + server key).

Test controls (not part of Midtrans) under /_fake/:
  POST /_fake/mode {"snap": ok|error500|unauthorized|hang, "status": ok|error500|badsig}
                                         (badsig: status answers whose signature_key
                                         does not verify)
  GET  /_fake/orders/<order_id>          what Snap received for the order, its state
  POST /_fake/pay {order_id, transaction_status, fraud_status?, payment_type?,
                   refund_amount?, notify?: true, times?: 1}
                                         sets the order's Midtrans state and
                                         (notify) delivers the notification
                                         "times" times; answers the webhook's replies
  POST /_fake/refund {order_id, amount, chargeback?: false, notify?: true}
                                         a refund (chargeback) of "amount" as Midtrans
                                         makes it: appended to the order's refunds[];
                                         the status becomes partial_refund, or refund
                                         once the whole amount is refunded, with
                                         refund_amount the total refunded; notifies
  POST /_fake/notification {order_id, transaction_status, ...}
                                         the signed notification body for that
                                         state, without changing or sending anything

Usage: midtrans.py --server-key KEY --webhook-url URL --port-file FILE
"""
import argparse
import base64
import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATUS_CODES = {
    "capture": "200", "settlement": "200", "refund": "200", "partial_refund": "200",
    "chargeback": "200", "partial_chargeback": "200",
    "pending": "201", "authorize": "201",
    "deny": "202", "cancel": "202", "expire": "202", "failure": "202",
}
WIB = timezone(timedelta(hours=7))

lock = threading.Lock()
orders = {}
mode = {"snap": "ok", "status": "ok"}
args = None


def signature(order_id, status_code, gross_amount):
    raw = (order_id + status_code + gross_amount + args.server_key).encode()
    return hashlib.sha512(raw).hexdigest()


def notification(order, spec):
    """The notification / status body of an order in the state "spec"."""
    st = spec["transaction_status"]
    code = STATUS_CODES.get(st, "200")
    gross = spec.get("gross_amount") or f"{order['amount']}.00"
    now = datetime.now(WIB).strftime("%Y-%m-%d %H:%M:%S")
    body = {
        "transaction_time": order["created"],
        "transaction_status": st,
        "transaction_id": order["transaction_id"],
        "status_message": "midtrans payment notification",
        "status_code": code,
        "signature_key": signature(spec["order_id"], code, gross),
        "payment_type": spec.get("payment_type", "bank_transfer"),
        "order_id": spec["order_id"],
        "merchant_id": "G141532850",
        "gross_amount": gross,
        "currency": spec.get("currency", "IDR"),
    }
    if st in ("capture", "settlement") or "fraud_status" in spec:
        body["fraud_status"] = spec.get("fraud_status", "accept")
    if st == "settlement":
        body["settlement_time"] = now
    if st == "pending":
        body["expiry_time"] = (datetime.now(WIB) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    if "refund_amount" in spec:
        body["refund_amount"] = spec["refund_amount"]
    if spec.get("refunds"):
        body["refunds"] = spec["refunds"]
    return body


def deliver(body, url=None):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url or args.webhook_url, data=data, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json",
        "User-Agent": "Veritrans"})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return {"status": r.status, "body": json.loads(r.read() or b"null")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read() or b"null")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        print("%s %s" % (self.address_string(), fmt % a), flush=True)

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def authorized(self):
        want = "Basic " + base64.b64encode((args.server_key + ":").encode()).decode()
        return self.headers.get("Authorization") == want

    def do_POST(self):
        if self.path == "/snap/v1/transactions":
            return self.snap_create()
        if self.path == "/_fake/mode":
            mode.update(self.body())
            return self.reply(200, mode)
        if self.path == "/_fake/pay":
            return self.pay()
        if self.path == "/_fake/refund":
            return self.refund()
        if self.path == "/_fake/notification":
            spec = self.body()
            with lock:
                order = orders.get(spec.get("order_id"))
            if order is None:
                return self.reply(404, {"error": "unknown order"})
            return self.reply(200, notification(order, spec))
        self.reply(404, {"error_messages": ["not found"]})

    def do_GET(self):
        if self.path.startswith("/v2/") and self.path.endswith("/status"):
            return self.status(self.path[len("/v2/"):-len("/status")])
        if self.path.startswith("/_fake/orders/"):
            with lock:
                order = orders.get(self.path[len("/_fake/orders/"):])
            return self.reply(200 if order else 404, order or {"error": "unknown order"})
        self.reply(404, {"error_messages": ["not found"]})

    def snap_create(self):
        if mode["snap"] == "hang":
            time.sleep(30)
        if mode["snap"] == "error500":
            return self.reply(500, {"error_messages": [
                "Sorry, we encountered internal server error. We will fix this soon."], "locale": "en"})
        body = self.body()
        if mode["snap"] == "unauthorized" or not self.authorized():
            return self.reply(401, {"error_messages": [
                "Access denied due to unauthorized transaction, please check client or server key",
                "Visit https://snap-docs.midtrans.com/#request-headers for more details"]})
        td = body.get("transaction_details") or {}
        oid, amount = td.get("order_id"), td.get("gross_amount")
        if not oid:
            return self.reply(400, {"error_messages": ["transaction_details.order_id is required"]})
        if not isinstance(amount, int):
            return self.reply(400, {"error_messages": ["transaction_details.gross_amount is required"]})
        items = body.get("item_details")
        if items and sum(i["price"] * i["quantity"] for i in items) != amount:
            return self.reply(400, {"error_messages": [
                "transaction_details.gross_amount is not equal to the sum of item_details"]})
        with lock:
            if oid in orders:
                return self.reply(400, {"error_messages": [
                    "transaction_details.order_id has been paid and utilized, please use another order ID"]})
            token = str(uuid.uuid4())
            orders[oid] = {"order_id": oid, "amount": amount, "token": token, "request": body,
                           "transaction_id": str(uuid.uuid4()), "state": None,
                           "created": datetime.now(WIB).strftime("%Y-%m-%d %H:%M:%S")}
        base = "http://%s:%d" % self.server.server_address[:2]
        self.reply(201, {"token": token, "redirect_url": f"{base}/snap/v3/redirection/{token}"})

    def status(self, oid):
        if mode["status"] == "error500":
            return self.reply(500, {"status_code": "500", "status_message": "Internal Server Error"})
        if not self.authorized():
            return self.reply(401, {"status_code": "401", "status_message":
                                    "Transaction cannot be authorized with the current client/server key."})
        with lock:
            order = orders.get(oid)
            state = order and order["state"]
        if not state:
            return self.reply(200, {"status_code": "404", "status_message": "Transaction doesn't exist.",
                                    "id": str(uuid.uuid4())})
        body = notification(order, state)
        body["status_message"] = "Success, transaction is found"
        if mode["status"] == "badsig":
            body["signature_key"] = hashlib.sha512(b"not the server key").hexdigest()
        self.reply(200, body)

    def pay(self):
        spec = self.body()
        with lock:
            order = orders.get(spec.get("order_id"))
            if order is None:
                return self.reply(404, {"error": "unknown order"})
            order["state"] = {k: v for k, v in spec.items() if k not in ("notify", "times")}
        replies = []
        if spec.get("notify", True):
            body = notification(order, spec)
            for _ in range(int(spec.get("times", 1))):
                replies.append(deliver(body))
        self.reply(200, {"deliveries": replies})


    def refund(self):
        spec = self.body()
        with lock:
            order = orders.get(spec.get("order_id"))
            if order is None or not order["state"]:
                return self.reply(404, {"error": "unknown or unpaid order"})
            prev = order["state"]
            refunds = list(prev.get("refunds") or [])
            amount = int(spec["amount"])
            refunds.append({
                "refund_chargeback_id": len(refunds) + 1,
                "refund_amount": f"{amount}.00",
                "created_at": datetime.now(WIB).strftime("%Y-%m-%d %H:%M:%S"),
                "reason": spec.get("reason", "test refund"),
                "refund_key": str(uuid.uuid4()),
                "refund_method": "online"})
            total = sum(int(float(r["refund_amount"])) for r in refunds)
            kind = "chargeback" if spec.get("chargeback") else "refund"
            st = kind if total >= order["amount"] else "partial_" + kind
            order["state"] = dict(prev, transaction_status=st, refund_amount=f"{total}.00", refunds=refunds)
            state = order["state"]
        replies = []
        if spec.get("notify", True):
            replies.append(deliver(notification(order, state)))
        self.reply(200, {"deliveries": replies, "state": state})


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--server-key", required=True)
    p.add_argument("--webhook-url", required=True)
    p.add_argument("--port-file", required=True)
    args = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
