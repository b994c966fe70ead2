"""A dump restores into a fresh install without any ledger account changing hands.

The dumped postings and wallets name accounts by id; the platform accounts and
their slots are install rows, made again by CREATE EXTENSION on restore, so
they must have the same ids in every database (sql/parts/40_ledger.sql).  An
upgraded database's wallets hold the ids after the accounts of 0.1.0 (69 on),
which is where a fresh install once put 'opening_balances' (new in 0.3.0).
Here a database whose wallets hold those ids, with postings on every platform
account, is dumped and restored into a fresh install: every posting is on the
same account as before and the ledger verifies.  Own databases, dropped after.
"""
import os
import shutil
import tempfile

from test_zz_dump_restore import run, sql

SRC, DST = "paas_ids_src", "paas_ids_dst"
OPENING = 1000000000100
WALLETS = 24

# each posting with the account it is on, named the way that survives any
# renumbering: a wallet by its user, a slot by its platform account's code
POSTINGS = ("SELECT string_agg(concat_ws(':', p.id, p.entry_id, p.amount, p.balance_before, p.balance_after, "
            "coalesce(u.email, pa.code || '/' || a.slot, a.code)), ',' ORDER BY p.id) "
            "FROM paas.ledger_postings p JOIN paas.ledger_accounts a ON a.id = p.account_id "
            "LEFT JOIN paas.users u ON u.id = a.user_id LEFT JOIN paas.ledger_accounts pa ON pa.id = a.parent_id")
WALLET_ROWS = ("SELECT string_agg(a.id || '=' || u.email || '=' || a.balance, ',' ORDER BY a.id) "
               "FROM paas.ledger_accounts a JOIN paas.users u ON u.id = a.user_id")
BALANCES = ("SELECT string_agg(code || '=' || id || '=' || paas.account_balance(id), ',' ORDER BY id) "
            "FROM paas.ledger_accounts WHERE kind = 'platform'")


def fresh(db):
    sql("postgres", f"DROP DATABASE IF EXISTS {db}")
    sql("postgres", f"CREATE DATABASE {db}")


def test_restore_into_a_fresh_install_keeps_every_account():
    fresh(SRC)
    d = tempfile.mkdtemp(prefix="paas-ids-")
    os.chmod(d, 0o777)
    dump = os.path.join(d, "src.dump")
    try:
        sql(SRC, "SET client_min_messages = warning; CREATE EXTENSION paas CASCADE")
        sql(SRC, f"INSERT INTO paas.users (email, name, password_hash) "
                 f"SELECT 'ids-' || i || '@test.example', 'Ids ' || i, 'x' FROM generate_series(1, {WALLETS}) i; "
                 f"SELECT paas.wallet_account(id) FROM paas.users ORDER BY email")
        ids = [int(x) for x in sql(SRC, "SELECT string_agg(id::text, ',' ORDER BY id) FROM paas.ledger_accounts "
                                        "WHERE kind = 'wallet'").split(",")]
        # the wallets hold the ids right after the install rows of 0.1.0, as in a
        # database upgraded from 0.2.0 (where 'opening_balances' came after them)
        assert ids == list(range(69, 69 + WALLETS)), ids
        assert int(sql(SRC, "SELECT paas.platform_account('opening_balances')")) == OPENING
        # opening balances for every wallet, then a charge and a refund through
        # the other platform accounts
        sql(SRC, """
            SELECT paas.ledger_post('ids-open-' || a.id, jsonb_build_array(jsonb_build_object(
                'kind', 'opening_balance', 'memo', 'opening balance',
                'postings', jsonb_build_array(
                    jsonb_build_object('account', a.id, 'amount', 1000 * a.id),
                    jsonb_build_object('account', paas.platform_account('opening_balances'),
                                       'amount', -1000 * a.id)))))
              FROM paas.ledger_accounts a WHERE a.kind = 'wallet' ORDER BY a.id;
            SELECT paas.ledger_post('ids-charge-' || a.id, jsonb_build_array(jsonb_build_object(
                'kind', 'charge', 'memo', 'charge',
                'postings', jsonb_build_array(
                    jsonb_build_object('account', a.id, 'amount', -300),
                    jsonb_build_object('account', paas.platform_account('revenue'), 'amount', 300))),
                jsonb_build_object('kind', 'refund', 'memo', 'refund',
                'postings', jsonb_build_array(
                    jsonb_build_object('account', a.id, 'amount', 100),
                    jsonb_build_object('account', paas.platform_account('refunds'), 'amount', -100)))))
              FROM paas.ledger_accounts a WHERE a.kind = 'wallet' ORDER BY a.id""")
        assert sql(SRC, "SELECT count(*) FROM reporting.ledger_check") == "0"
        postings, wallets, balances = sql(SRC, POSTINGS), sql(SRC, WALLET_ROWS), sql(SRC, BALANCES)
        assert f"opening_balances={OPENING}=-{1000 * sum(ids)}" in balances, balances

        run("pg_dump", "-Fc", "-f", dump, SRC)
        fresh(DST)
        run("pg_restore", "--exit-on-error", "-d", DST, dump)
        # before the rebuild nothing may be posted on the platform rows
        assert sql(DST, "SELECT paas.ledger_restore_needed()") == "t"
        sql(DST, "SELECT paas.ledger_restore_balances()")
        assert sql(DST, "SELECT count(*) FROM reporting.ledger_check") == "0"
        assert sql(DST, WALLET_ROWS) == wallets
        assert sql(DST, POSTINGS) == postings
        assert sql(DST, BALANCES) == balances
        # and the restored ledger takes postings on every account again
        sql(DST, f"SELECT paas.ledger_post('ids-after', jsonb_build_array(jsonb_build_object("
                 f"'kind', 'opening_balance', 'memo', 'after the restore', 'postings', jsonb_build_array("
                 f"jsonb_build_object('account', {ids[0]}, 'amount', 5), "
                 f"jsonb_build_object('account', {OPENING}, 'amount', -5)))))")
        assert sql(DST, "SELECT count(*) FROM reporting.ledger_check") == "0"
        assert int(sql(DST, f"SELECT paas.account_balance({OPENING})")) == -1000 * sum(ids) - 5
        # new wallets continue after the restored ones
        sql(DST, "INSERT INTO paas.users (email, name, password_hash) VALUES ('ids-new@test.example', 'N', 'x')")
        assert int(sql(DST, "SELECT paas.wallet_account(id) FROM paas.users "
                            "WHERE email = 'ids-new@test.example'")) == 69 + WALLETS
    finally:
        sql("postgres", f"DROP DATABASE IF EXISTS {SRC}")
        sql("postgres", f"DROP DATABASE IF EXISTS {DST}")
        shutil.rmtree(d, ignore_errors=True)
