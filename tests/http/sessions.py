"""A second database session for the HTTP tests: a superuser psql process
of its own (PAAS_TEST_PSQL), kept open so that it can hold row locks while
a test talks to httpd, and a probe of backends of the gateway that wait
for a lock."""
import shlex
import os
import subprocess

from conftest import psql

PSQL = shlex.split(os.environ.get("PAAS_TEST_PSQL", "psql -At"))


class Session:
    """psql reading statements from a pipe; run() returns the output."""

    def __init__(self):
        self.p = subprocess.Popen(PSQL, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, sql):
        self.p.stdin.write(sql + ";\n\\echo --end--\n")
        self.p.stdin.flush()
        lines = []
        while True:
            line = self.p.stdout.readline()
            assert line, "psql ended"
            if line.strip() == "--end--":
                return "\n".join(lines).strip()
            lines.append(line.rstrip("\n"))

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.write("ROLLBACK;\n\\q\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def gateway_backends_waiting_for_a_lock():
    """How many backends of paas_api (httpd's connections) wait for a lock."""
    return int(psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'paas_api' AND wait_event_type = 'Lock'"))
