"""The heartbeat agent (agent/paas-agent) against the real httpd on
loopback: it registers, its heartbeats advance lastHeartbeat with usage read
from /proc and statvfs, it registers again when its node is deleted, backs
off while the server is unreachable, and exits 0 on SIGTERM."""
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import uuid

import pytest

from conftest import BASE, psql, wait_until

AGENT = pathlib.Path(__file__).resolve().parents[2] / "agent" / "paas-agent"


@pytest.fixture(scope="module")
def join_token():
    tok = "agent-join-" + secrets.token_hex(16)
    psql("SELECT api.workers_join_token_add(:'a1', 'agent tests')", tok)
    return tok


def start(url, token, name, tmp_path, interval="1"):
    assert AGENT.exists(), "agent/paas-agent is built by `make`"
    log = open(tmp_path / f"{name}.log", "w+")
    env = dict(os.environ, PAAS_URL=url, PAAS_JOIN_TOKEN=token, NODE_NAME=name, NODE_IP="127.0.0.1",
               PAAS_HEARTBEAT_INTERVAL=interval)
    return subprocess.Popen([str(AGENT)], env=env, stdout=log, stderr=subprocess.STDOUT), log


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=5)


def heartbeat_of(name):
    return psql("SELECT coalesce(extract(epoch FROM last_heartbeat)::text, '') FROM paas.nodes WHERE name = :'a1'", name)


def test_agent_registers_and_heartbeats(join_token, tmp_path):
    name = "agent-" + uuid.uuid4().hex[:8]
    proc, log = start(BASE, join_token, name, tmp_path)
    try:
        first = wait_until(lambda: heartbeat_of(name), timeout=20)
        wait_until(lambda: heartbeat_of(name) and float(heartbeat_of(name)) > float(first), timeout=20)
        second = heartbeat_of(name)
        wait_until(lambda: float(heartbeat_of(name)) > float(second), timeout=20)
        row = psql("SELECT status, cpu_cores > 0, memory_capacity > 0, storage_capacity > 0, memory_used > 0,"
                   " storage_used > 0, cpu_used_m IS NOT NULL, agent_clock_skew_ms IS NOT NULL, labels ->> 'paas.io/agent'"
                   " FROM paas.nodes WHERE name = :'a1'", name)
        assert row == "ACTIVE|t|t|t|t|t|t|t|paas-agent", row

        # the node is deleted: the next heartbeat answers 401 and the agent registers again
        node_id = psql("SELECT id FROM paas.nodes WHERE name = :'a1'", name)
        psql("DELETE FROM paas.nodes WHERE name = :'a1'", name)
        wait_until(lambda: psql("SELECT id FROM paas.nodes WHERE name = :'a1'", name) not in ("", node_id), timeout=20)
    finally:
        rc = stop(proc)
    assert rc == 0
    log.seek(0)
    text = log.read()
    assert "registering again" in text and "exiting" in text


def test_agent_backs_off_while_the_server_is_down_and_exits_on_sigterm(join_token, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    proc, log = start(f"http://127.0.0.1:{port}", join_token, "agent-down-" + uuid.uuid4().hex[:6], tmp_path)

    def retries():
        log.seek(0)
        return log.read().count("registration failed, retry in")

    try:
        wait_until(lambda: retries() >= 2, timeout=20)
        assert proc.poll() is None, "the agent keeps running while the server is down"
    finally:
        rc = stop(proc)
    assert rc == 0
    log.seek(0)
    delays = [float(l.rsplit("retry in ", 1)[1].split()[0]) for l in log.read().splitlines() if "retry in" in l]
    assert delays[1] > delays[0], delays  # exponential back-off


def test_agent_refuses_to_start_without_configuration(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAAS_")}
    r = subprocess.run([str(AGENT)], env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "PAAS_URL is required" in r.stderr
