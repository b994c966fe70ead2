"""paas.run_parallel (bgworker/parallel.c) against the real cluster: the
caller waits for every worker it started, also when a command it runs
itself fails and when it is cancelled or terminated, and reports what each
command did.  Commands run as superuser through psql (PAAS_TEST_PSQL)."""
import re
import subprocess
import uuid

import pytest

from conftest import PSQL, psql, wait_until

SETUP = """
CREATE TABLE IF NOT EXISTS public.parallel_probe (tag text, n int, at timestamptz DEFAULT clock_timestamp());
-- a shard that fails at once when it runs in the calling backend, and
-- otherwise sleeps "secs" seconds, then records itself
CREATE OR REPLACE FUNCTION public.parallel_shard(tag text, n int, secs float8) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT a.backend_type FROM pg_catalog.pg_stat_activity a
		 WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()) OPERATOR(pg_catalog.=) 'client backend' THEN
		RAISE EXCEPTION 'shard % ran in the calling backend', n;
	END IF;
	PERFORM pg_catalog.pg_sleep(secs);
	INSERT INTO public.parallel_probe (tag, n) VALUES (tag, n);
	RETURN 'ok';
END $$;
"""


@pytest.fixture
def probe():
    psql(SETUP)
    yield "p-" + uuid.uuid4().hex[:8]
    psql("DROP FUNCTION IF EXISTS public.parallel_shard(text, int, float8); DROP TABLE IF EXISTS public.parallel_probe")


def workers_alive():
    return int(psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'paas parallel command'"))


def committed(tag):
    return int(psql("SELECT count(*) FROM public.parallel_probe WHERE tag = :'a1'", tag))


def call(commands, app):
    """Starts a psql session running paas.run_parallel(commands) on its own
    (not in a transaction block, so the commands go to workers)."""
    arr = "ARRAY[" + ", ".join("$c$" + c + "$c$" for c in commands) + "]"
    script = f"SET application_name = '{app}';\nSELECT paas.run_parallel({arr});\n"
    p = subprocess.Popen(PSQL, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdin.write(script)
    p.stdin.close()
    return p


def finish(p, timeout):
    """Waits for the session to end; returns its stderr."""
    p.wait(timeout=timeout)
    p.stdout.read()
    return p.stderr.read()


def test_a_command_failing_in_the_caller_waits_for_the_started_workers(probe):
    # more commands than max_worker_processes: the ones no worker takes run
    # in the caller, and there each fails at once, while the workers sleep
    cmds = [f"SELECT public.parallel_shard('{probe}', {i}, 1.5)" for i in range(1, 25)]
    p = call(cmds, "parallel-fail")
    err = finish(p, 60)
    assert p.returncode != 0 and "ran in the calling backend" in err, err
    # when the error reaches the client, every worker has ended and what
    # committed is exactly what the error says committed
    assert workers_alive() == 0
    said = re.findall(r"command (\d+) of 24: committed", err)
    assert len(said) == committed(probe) > 0, err
    assert re.search(r"command \d+ of 24: failed: shard \d+ ran in the calling backend", err), err


@pytest.mark.parametrize("how", ["terminate", "cancel"])
def test_an_interrupted_caller_stops_and_waits_for_its_workers(probe, how):
    app = f"parallel-{how}-{probe}"
    cmds = [f"SELECT public.parallel_shard('{probe}', 1, 0)",
            f"SELECT public.parallel_shard('{probe}', 2, 60)",
            f"SELECT public.parallel_shard('{probe}', 3, 60)"]
    p = call(cmds, app)
    try:
        wait_until(lambda: committed(probe) == 1 and workers_alive() == 2, timeout=30)
        pid = psql("SELECT pid FROM pg_stat_activity WHERE application_name = :'a1'", app)
        psql(f"SELECT pg_{how}_backend(:'a1'::int)", pid)
        err = finish(p, 30)
    finally:
        if p.poll() is None:
            p.kill()
    # the caller passed it on to its workers and waited for them ...
    assert workers_alive() == 0
    assert committed(probe) == 1
    # ... and said what each command did before it ended
    verb = "terminated" if how == "terminate" else "cancelled"
    assert f"WARNING:  paas.run_parallel was {verb} during the call" in err, err
    assert "command 1 of 3: committed" in err, err
    assert "command 2 of 3: stopped before it committed" in err, err
    assert "command 3 of 3: stopped before it committed" in err, err
    if how == "cancel":
        assert "canceling statement due to user request" in err, err
    else:
        assert "terminating connection due to administrator command" in err, err


def test_every_command_committed_answers_the_results_in_order(probe):
    out = psql(f"SELECT paas.run_parallel(ARRAY['SELECT public.parallel_shard(''{probe}'', 1, 0)',"
               f" 'SELECT public.parallel_shard(''{probe}'', 2, 0.2)', 'SELECT NULL'])")
    assert out == "{ok,ok,NULL}"
    assert committed(probe) == 2 and workers_alive() == 0
