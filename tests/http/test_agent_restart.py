"""A restarted agent keeps its node: it re-registers with the node token it
kept in PAAS_NODE_TOKEN_FILE, since the join token alone cannot re-register
an existing node (tests/http/test_workers.py); without the file it is
refused (409) and says why; a token the server no longer knows (the node was
deleted) is dropped for the join token."""
import os
import pathlib
import secrets
import signal
import stat
import subprocess
import uuid

import pytest

from conftest import BASE, psql, wait_until

AGENT = pathlib.Path(__file__).resolve().parents[2] / "agent" / "paas-agent"


@pytest.fixture(scope="module")
def join_token():
    tok = "agent-restart-" + secrets.token_hex(16)
    psql("SELECT api.workers_join_token_add(:'a1', 'agent restart tests')", tok)
    return tok


def run(join_token, name, tmp_path, token_file=None):
    log = open(tmp_path / f"{name}-{uuid.uuid4().hex[:4]}.log", "w+")
    env = dict(os.environ, PAAS_URL=BASE, PAAS_JOIN_TOKEN=join_token, NODE_NAME=name, NODE_IP="127.0.0.1",
               PAAS_HEARTBEAT_INTERVAL="1")
    if token_file:
        env["PAAS_NODE_TOKEN_FILE"] = str(token_file)
    return subprocess.Popen([str(AGENT)], env=env, stdout=log, stderr=subprocess.STDOUT), log


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=5)


def heartbeat_of(name):
    return psql("SELECT coalesce(extract(epoch FROM last_heartbeat)::text, '') FROM paas.nodes WHERE name = :'a1'", name)


def beats_after(name, t):
    return heartbeat_of(name) and float(heartbeat_of(name)) > t


def text_of(log):
    log.seek(0)
    return log.read()


def test_a_restarted_agent_re_registers_with_its_kept_token(join_token, tmp_path):
    name = "agent-keep-" + uuid.uuid4().hex[:8]
    token_file = tmp_path / "node-token"
    proc, log = run(join_token, name, tmp_path, token_file)
    try:
        first = float(wait_until(lambda: heartbeat_of(name), timeout=20))
        wait_until(lambda: beats_after(name, first), timeout=20)
    finally:
        assert stop(proc) == 0
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    kept = token_file.read_text()
    assert psql("SELECT count(*) FROM paas.nodes WHERE name = :'a1' AND token_hash = digest(:'a2', 'sha256')",
                name, kept) == "1"
    node_id = psql("SELECT id FROM paas.nodes WHERE name = :'a1'", name)

    proc, log = run(join_token, name, tmp_path, token_file)
    try:
        t = float(heartbeat_of(name))
        wait_until(lambda: beats_after(name, t) and token_file.read_text() != kept, timeout=20)
        wait_until(lambda: beats_after(name, float(heartbeat_of(name))), timeout=20)
    finally:
        assert stop(proc) == 0
    assert psql("SELECT id FROM paas.nodes WHERE name = :'a1'", name) == node_id
    assert "using the node token" in text_of(log)

    # without its token the same agent is refused, and says so
    proc, log = run(join_token, name, tmp_path)
    try:
        wait_until(lambda: "HTTP 409" in text_of(log), timeout=20)
        assert proc.poll() is None, "the agent keeps trying"
    finally:
        assert stop(proc) == 0

    # a node deleted while its agent was away: the kept token is refused,
    # the agent registers anew with the join token
    psql("DELETE FROM paas.nodes WHERE name = :'a1'", name)
    proc, log = run(join_token, name, tmp_path, token_file)
    try:
        wait_until(lambda: psql("SELECT id FROM paas.nodes WHERE name = :'a1'", name) not in ("", node_id), timeout=20)
        wait_until(lambda: heartbeat_of(name), timeout=20)
    finally:
        assert stop(proc) == 0
    assert "registering with the join token" in text_of(log)
