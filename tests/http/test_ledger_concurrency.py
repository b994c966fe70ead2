"""Concurrency of paas.ledger_post: 32 parallel database clients charge a
few wallets that can afford only part of the charges.  Exactly the
affordable number of charges succeeds, every other one is refused with
PT402 (never a deadlock or another error), no balance goes below zero and
reporting.ledger_check stays empty.

Each client is a psql process (the suite's superuser command line) running
its charges one transaction each; half of the clients list the postings in
the opposite order, so lock ordering is exercised too."""
import json
import subprocess
import threading
import uuid

from conftest import PSQL, psql

CLIENTS = 32
ATTEMPTS = 5          # charges per client
WALLETS = 4
CHARGE = 100
FUNDED = 10 * CHARGE  # each wallet affords 10 charges


def setup_wallets(tag):
    return setup_wallets_n(tag, WALLETS)


def setup_wallets_n(tag, count):
    """count new wallets funded with FUNDED each; returns (ids, revenue)."""
    ids = []
    for i in range(count):
        acc = psql("INSERT INTO paas.users (email, name, password_hash) VALUES (:'a1', 'Concurrent', 'x') "
                   "RETURNING paas.wallet_account(id)", f"conc-{tag}-{i}@example.com")
        ids.append(int(acc.splitlines()[0]))
    clearing = int(psql("SELECT paas.platform_account('gateway_clearing')"))
    entries = [{"kind": "topup", "memo": f"conc {tag}",
                "postings": [{"account": w, "amount": FUNDED}, {"account": clearing, "amount": -FUNDED}]}
               for w in ids]
    psql("SELECT paas.ledger_post(NULL, :'a1')", json.dumps(entries))
    return ids, int(psql("SELECT paas.platform_account('revenue')"))


def client_script(n, wallets, revenue, tag):
    lines = []
    for k in range(ATTEMPTS):
        w = wallets[(n + k) % len(wallets)]
        postings = [{"account": w, "amount": -CHARGE}, {"account": revenue, "amount": CHARGE}]
        if n % 2:
            postings.reverse()
        entry = [{"kind": "charge", "memo": f"conc {tag}", "postings": postings}]
        lines.append("SELECT 'ok' FROM paas.ledger_post(NULL, '%s');" % json.dumps(entry))
    return "\n".join(lines) + "\n"


def test_parallel_charges_never_overdraw():
    tag = uuid.uuid4().hex[:10]
    wallets, revenue = setup_wallets(tag)
    results = run_clients([client_script(n, wallets, revenue, tag) for n in range(CLIENTS)])

    ok = sum(r.stdout.split().count("ok") for r in results)
    errors = [line for r in results for line in r.stderr.splitlines() if "ERROR" in line]
    refused = [e for e in errors if "Insufficient balance" in e]
    affordable = WALLETS * FUNDED // CHARGE
    assert ok == affordable, (ok, errors[:5])
    assert len(refused) == CLIENTS * ATTEMPTS - affordable
    assert len(errors) == len(refused), [e for e in errors if e not in refused][:5]

    ids = ",".join(str(w) for w in wallets)
    assert psql(f"SELECT count(*) FROM paas.ledger_entries WHERE kind = 'charge' AND memo = :'a1'",
                f"conc {tag}") == str(affordable)
    assert psql(f"SELECT string_agg(DISTINCT balance::text, ',') FROM paas.ledger_accounts WHERE id IN ({ids})") == "0"
    assert psql(f"SELECT count(*) FROM paas.ledger_postings WHERE account_id IN ({ids}) AND balance_after < 0") == "0"
    assert psql("SELECT count(*) FROM reporting.ledger_check") == "0"


def run_clients(scripts):
    """Runs each script in its own psql at once; returns the CompletedProcesses."""
    barrier = threading.Barrier(len(scripts))
    results = [None] * len(scripts)
    cmd = PSQL + ["-v", "ON_ERROR_STOP=0"]

    def run(n):
        barrier.wait()
        results[n] = subprocess.run(cmd, input=scripts[n], capture_output=True, text=True, timeout=120)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(scripts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_crossing_transfers_do_not_deadlock():
    """Transfers A->B and B->A at once: accounts are locked in id order, so
    no client ever waits for another in a cycle (no 40P01)."""
    tag = uuid.uuid4().hex[:10]
    (a, b), _ = setup_wallets_n(tag, 2)
    scripts = []
    for n in range(16):
        src, dst = (a, b) if n % 2 == 0 else (b, a)
        entry = [{"kind": "transfer", "memo": f"cross {tag}",
                  "postings": [{"account": src, "amount": -1}, {"account": dst, "amount": 1}]}]
        scripts.append("SELECT 'ok' FROM paas.ledger_post(NULL, '%s');\n" % json.dumps(entry) * 10)
    results = run_clients(scripts)
    errors = [line for r in results for line in r.stderr.splitlines() if "ERROR" in line]
    assert errors == []
    assert sum(r.stdout.split().count("ok") for r in results) == 160
    assert psql(f"SELECT sum(balance) FROM paas.ledger_accounts WHERE id IN ({a}, {b})") == str(2 * FUNDED)
    assert psql("SELECT count(*) FROM reporting.ledger_check") == "0"


def test_concurrent_duplicates_post_once():
    """The same idempotency key sent by 8 clients at once posts one entry;
    every client gets the same entry back."""
    tag = uuid.uuid4().hex[:10]
    (w,), revenue = setup_wallets_n(tag, 1)
    entry = [{"kind": "charge", "memo": f"dup {tag}",
              "postings": [{"account": w, "amount": -300}, {"account": revenue, "amount": 300}]}]
    script = "SELECT ledger_post -> 'entries' -> 0 ->> 'id' FROM paas.ledger_post('dup-%s', '%s');\n" % (
        tag, json.dumps(entry))
    results = run_clients([script] * 8)
    assert [r.stderr for r in results if r.stderr] == []
    ids = {r.stdout.strip() for r in results}
    assert len(ids) == 1 and ids != {""}
    assert psql("SELECT count(*) FROM paas.ledger_entries WHERE memo = :'a1'", f"dup {tag}") == "1"
    assert psql(f"SELECT balance FROM paas.ledger_accounts WHERE id = {w}") == str(FUNDED - 300)
