-- ledger: the platform accounts' fixed ids (sql/parts/40_ledger.sql).  The
-- dumped postings and wallets name accounts by id, so every install row has
-- the same id in every database (a fresh install, any upgrade) in a range
-- the account sequence never hands out; tests/http/test_zz_ledger_ids.py
-- restores a dump into a fresh install with them.
BEGIN;
SELECT plan(10);

SELECT is((SELECT string_agg(code || '=' || id, ',' ORDER BY id) FROM paas.ledger_accounts WHERE kind = 'platform'),
	'gateway_clearing=1,revenue=2,adjustments=3,refunds=4,opening_balances=1000000000100',
	'every platform account has its fixed id');
SELECT is((SELECT count(*)::int FROM paas.ledger_accounts s JOIN paas.ledger_accounts p ON p.id = s.parent_id
			WHERE s.id = CASE WHEN p.id <= 4 THEN 5 + 16 * (p.id - 1) + s.slot ELSE p.id + 1 + s.slot END),
	5 * 16, 'and so has each of its 16 slots');
SELECT is((SELECT max(id) FROM paas.ledger_accounts WHERE id < 1000000000000 AND kind <> 'wallet'), 68::bigint,
	'the accounts of 0.1.0 keep 1-68');
SELECT is((SELECT max_value FROM pg_sequences WHERE schemaname = 'paas' AND sequencename = 'ledger_accounts_id_seq'),
	999999999999::bigint, 'the sequence stops below the reserved range');

INSERT INTO paas.users (email, name, password_hash) VALUES ('ledger-ids@pgtap.test', 'Ledger Ids', 'x');
SELECT ok((SELECT paas.wallet_account(id) FROM paas.users WHERE email = 'ledger-ids@pgtap.test')
			BETWEEN 69 AND 999999999999, 'a wallet gets an id from the sequence, after the install rows');
SELECT is(paas.platform_account('opening_balances'), 1000000000100::bigint,
	'platform_account() finds the fixed id');

SELECT throws_ok($$INSERT INTO paas.ledger_accounts (kind, code) VALUES ('platform', 'pgtap_drawn')$$,
	'23514', NULL, 'a platform account drawn from the sequence is refused');
SELECT throws_ok($$INSERT INTO paas.users (email, name, password_hash) VALUES ('ledger-ids2@pgtap.test', 'L', 'x');
				   INSERT INTO paas.ledger_accounts (id, kind, user_id) OVERRIDING SYSTEM VALUE
				   SELECT 1000000000200, 'wallet', id FROM paas.users WHERE email = 'ledger-ids2@pgtap.test'$$,
	'23514', NULL, 'a wallet in the reserved range is refused');
SELECT throws_ok($$INSERT INTO paas.users (email, name, password_hash) VALUES ('ledger-ids3@pgtap.test', 'L', 'x');
				   INSERT INTO paas.ledger_accounts (id, kind, user_id) OVERRIDING SYSTEM VALUE
				   SELECT 40, 'wallet', id FROM paas.users WHERE email = 'ledger-ids3@pgtap.test'$$,
	'23514', NULL, 'a wallet among the install rows'' ids is refused');
SELECT lives_ok($$INSERT INTO paas.ledger_accounts (id, kind, code) OVERRIDING SYSTEM VALUE
				  VALUES (1000000099700, 'platform', 'pgtap_reserved')$$,
	'a platform account with an id of the reserved range is accepted');

SELECT finish();
ROLLBACK;
