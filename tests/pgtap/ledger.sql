-- ledger: paas.ledger_post (extension/ledger.c) and the SQL around it --
-- balanced postings, no overdraft, idempotency, batch atomicity, reversal,
-- the invariants view, append-only tables, the admin billing api, and every
-- error SQLSTATE.
BEGIN;
SELECT plan(129);

-- Fixtures: three users with wallets, a plain user and an admin session.
CREATE TEMP TABLE acc (name text PRIMARY KEY, id bigint, uid uuid);
INSERT INTO paas.users (email, name, password_hash, role) VALUES
	('ledger-a@pgtap.test', 'Ledger A', 'x', 'USER'),
	('ledger-b@pgtap.test', 'Ledger B', 'x', 'USER'),
	('ledger-c@pgtap.test', 'Ledger C', 'x', 'USER'),
	('ledger-admin@pgtap.test', 'Ledger Admin', 'x', 'ADMINISTRATOR');
INSERT INTO acc SELECT split_part(split_part(email, '@', 1), '-', 2), NULL, id
  FROM paas.users WHERE email LIKE 'ledger-%@pgtap.test';
INSERT INTO acc VALUES
	('clearing', paas.platform_account('gateway_clearing'), NULL),
	('revenue', paas.platform_account('revenue'), NULL),
	('adjustments', paas.platform_account('adjustments'), NULL),
	('refunds', paas.platform_account('refunds'), NULL);
-- A platform account without slots, so that its balance is this test's own
-- (platform accounts have fixed ids from the reserved range, 40_ledger.sql).
INSERT INTO paas.ledger_accounts (id, kind, code) OVERRIDING SYSTEM VALUE
VALUES (1000000099900, 'platform', 'pgtap_float');
INSERT INTO acc VALUES ('float', paas.platform_account('pgtap_float'), NULL);

CREATE FUNCTION pg_temp.a(n text) RETURNS bigint LANGUAGE sql AS
	$$ SELECT id FROM acc WHERE name = n $$;
CREATE FUNCTION pg_temp.u(n text) RETURNS uuid LANGUAGE sql AS
	$$ SELECT uid FROM acc WHERE name = n $$;
-- One entry: kind and (account name, amount) pairs.
CREATE FUNCTION pg_temp.e(kind text, a1 text, m1 bigint, a2 text, m2 bigint) RETURNS jsonb
	LANGUAGE sql AS
	$$ SELECT jsonb_build_object('kind', kind, 'memo', 'pgtap', 'postings', jsonb_build_array(
		jsonb_build_object('account', pg_temp.a(a1), 'amount', m1),
		jsonb_build_object('account', pg_temp.a(a2), 'amount', m2))) $$;
CREATE FUNCTION pg_temp.entries() RETURNS bigint LANGUAGE sql AS
	$$ SELECT count(*) FROM paas.ledger_entries $$;
CREATE FUNCTION pg_temp.actx() RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('userId', pg_temp.u('admin'), 'role', 'ADMINISTRATOR') $$;
CREATE FUNCTION pg_temp.uctx(n text) RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('userId', pg_temp.u(n), 'role', 'USER') $$;

-- schema
SELECT has_table('paas', 'ledger_accounts', 'ledger_accounts exists');
SELECT has_table('paas', 'ledger_entries', 'ledger_entries exists');
SELECT has_table('paas', 'ledger_postings', 'ledger_postings exists');
SELECT has_table('paas', 'ledger_idempotency', 'ledger_idempotency exists');
SELECT is((SELECT count(*)::int FROM paas.ledger_accounts WHERE kind = 'platform'
			AND code IN ('gateway_clearing', 'revenue', 'adjustments', 'refunds')), 4,
	'the four platform accounts are installed');

-- wallets
UPDATE acc SET id = paas.wallet_account(uid) WHERE uid IS NOT NULL;
SELECT is(paas.wallet_account(pg_temp.u('a')), pg_temp.a('a'), 'wallet_account returns the same wallet twice');
SELECT isnt(pg_temp.a('a'), pg_temp.a('b'), 'each user has their own wallet');
SELECT is(paas.wallet_balance(pg_temp.u('a')), 0::bigint, 'a new wallet holds 0');
SELECT is(paas.wallet_balance(gen_random_uuid()), 0::bigint, 'wallet_balance of a user without wallet is 0');
SELECT throws_ok($$SELECT paas.wallet_account(gen_random_uuid())$$, 'PT404', NULL,
	'wallet_account of an unknown user is PT404');
SELECT throws_ok($$SELECT paas.platform_account('bank')$$, 'PT404', NULL,
	'an unknown platform account is PT404');

-- a top-up: wallet up, clearing down (platform accounts may go negative)
CREATE TEMP TABLE r (k text PRIMARY KEY, v jsonb);
INSERT INTO r VALUES ('topup', paas.ledger_post('pgtap-topup-a',
	jsonb_build_array(pg_temp.e('topup', 'a', 10000, 'clearing', -10000))));
SELECT is(r.v -> 'replayed', 'false'::jsonb, 'a first post is not a replay') FROM r WHERE k = 'topup';
SELECT is(r.v #>> '{entries,0,kind}', 'topup', 'the result names the kind') FROM r WHERE k = 'topup';
SELECT is(r.v #> '{entries,0,postings,0}',
	jsonb_build_object('account', pg_temp.a('a'), 'amount', 10000, 'balanceBefore', 0, 'balanceAfter', 10000),
	'the result carries balanceBefore/balanceAfter') FROM r WHERE k = 'topup';
SELECT is(paas.wallet_balance(pg_temp.u('a')), 10000::bigint, 'the wallet is credited');
SELECT is(paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('float', 'float', -500, 'refunds', 500)))
		  #>> '{entries,0,postings,0,balanceAfter}', '-500', 'a platform account may go negative');
SELECT is(paas.account_balance(pg_temp.a('float')), -500::bigint, 'account_balance of a platform account without slots');
SELECT is((SELECT parent_id FROM paas.ledger_accounts
			WHERE id = (SELECT (v #>> '{entries,0,postings,1,slotAccount}')::bigint FROM r WHERE k = 'topup')),
	pg_temp.a('clearing'), 'a platform posting is written to a slot of that account');
SELECT is(r.v #>> '{entries,0,postings,1,account}', pg_temp.a('clearing')::text,
	'the result names the platform account, not the slot') FROM r WHERE k = 'topup';
SELECT is((SELECT count(*)::int FROM paas.ledger_postings WHERE account_id IN
			(SELECT parent_id FROM paas.ledger_accounts WHERE kind = 'platform_slot')), 0,
	'platform accounts with slots carry no postings themselves');
SELECT is((SELECT count(*)::int FROM paas.ledger_accounts WHERE parent_id = pg_temp.a('revenue')), 16,
	'each platform account has 16 slots');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 't', 'postings',
		jsonb_build_array(jsonb_build_object('account', pg_temp.a('a'), 'amount', 1),
						  jsonb_build_object('account', (SELECT min(id) FROM paas.ledger_accounts
														  WHERE parent_id = pg_temp.a('clearing')), 'amount', -1)))))$$,
	'PT404', NULL, 'a slot row cannot be named in a call');
SELECT is((SELECT sum(amount)::bigint FROM paas.ledger_postings
			WHERE entry_id = (SELECT (v #>> '{entries,0,id}')::bigint FROM r WHERE k = 'topup')), 0::bigint,
	'the postings of an entry sum to zero');
SELECT is((SELECT memo || ':' || idempotency_key FROM paas.ledger_entries
			WHERE id = (SELECT (v #>> '{entries,0,id}')::bigint FROM r WHERE k = 'topup')),
	'pgtap:pgtap-topup-a', 'the entry keeps memo and idempotency key');

-- idempotency
SELECT is(paas.ledger_post('pgtap-topup-a', jsonb_build_array(pg_temp.e('topup', 'a', 10000, 'clearing', -10000)))
		  - 'replayed', (SELECT v - 'replayed' FROM r WHERE k = 'topup'),
	'a replay returns the first result');
SELECT is(paas.ledger_post('pgtap-topup-a', jsonb_build_array(pg_temp.e('topup', 'a', 10000, 'clearing', -10000)))
		  -> 'replayed', 'true'::jsonb, 'a replay says so');
SELECT is(paas.wallet_balance(pg_temp.u('a')), 10000::bigint, 'a replay posts nothing');
SELECT throws_ok($$SELECT paas.ledger_post('pgtap-topup-a', jsonb_build_array(pg_temp.e('topup', 'a', 10001, 'clearing', -10001)))$$,
	'PT409', NULL, 'the same key with other content is PT409');
SELECT is(paas.wallet_balance(pg_temp.u('a')), 10000::bigint, 'a conflict posts nothing');
SELECT lives_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('topup', 'b', 500, 'clearing', -500)))$$,
	'a NULL key posts');
SELECT lives_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('topup', 'b', 500, 'clearing', -500)))$$,
	'a NULL key posts again (no idempotency)');
SELECT is(paas.wallet_balance(pg_temp.u('b')), 1000::bigint, 'both NULL-key posts count');

-- no overdraft
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('charge', 'b', -1001, 'revenue', 1001)))$$,
	'PT402', 'Insufficient balance', 'a charge above the balance is PT402');
SELECT is(paas.wallet_balance(pg_temp.u('b')), 1000::bigint, 'a refused charge changes nothing');
SELECT lives_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('charge', 'b', -1000, 'revenue', 1000)))$$,
	'a charge of exactly the balance passes');
SELECT is(paas.wallet_balance(pg_temp.u('b')), 0::bigint, 'the wallet reaches zero, not below');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('charge', 'b', -1, 'revenue', 1)))$$,
	'PT402', NULL, 'an empty wallet cannot pay 1 IDR');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('transfer', 'c', -1, 'a', 1)))$$,
	'PT402', NULL, 'a wallet-to-wallet move is checked too');

-- batch: many entries in one call, all or nothing
SELECT is(jsonb_array_length(paas.ledger_post(NULL, jsonb_build_array(
		pg_temp.e('charge', 'a', -100, 'revenue', 100),
		pg_temp.e('charge', 'a', -200, 'revenue', 200),
		pg_temp.e('topup', 'c', 50, 'clearing', -50))) -> 'entries'), 3,
	'a batch posts every entry');
SELECT is(paas.wallet_balance(pg_temp.u('a')), 9700::bigint, 'the batch moved the wallet');
SELECT is((SELECT array_agg(balance_after ORDER BY id) FROM paas.ledger_postings
			WHERE account_id = pg_temp.a('a')), ARRAY[10000, 9900, 9700]::bigint[],
	'postings within a batch chain their balances');
CREATE TEMP TABLE n0 AS SELECT pg_temp.entries() AS n, paas.wallet_balance(pg_temp.u('a')) AS bal;
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(
		pg_temp.e('charge', 'a', -100, 'revenue', 100),
		pg_temp.e('charge', 'a', -9000, 'revenue', 9000),
		pg_temp.e('charge', 'a', -1000, 'revenue', 1000)))$$,
	'PT402', NULL, 'a batch whose third entry overdraws is PT402');
SELECT is(pg_temp.entries(), (SELECT n FROM n0), 'a failed batch writes no entry');
SELECT is(paas.wallet_balance(pg_temp.u('a')), (SELECT bal FROM n0), 'a failed batch moves no money');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(
		pg_temp.e('charge', 'a', -100, 'revenue', 100),
		pg_temp.e('charge', 'a', -100, 'revenue', 99)))$$,
	'PT400', NULL, 'a batch with one unbalanced entry is PT400');
SELECT is(pg_temp.entries(), (SELECT n FROM n0), 'an invalid batch writes no entry');

-- validation: every rule is PT400, with the field list as DETAIL
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('charge', 'a', -100, 'revenue', 99)))$$,
	'PT400', 'Validation failed', 'postings that do not sum to zero are PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, NULL)$$, 'PT400', NULL, 'NULL entries are PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, '{}')$$, 'PT400', NULL, 'an object instead of an array is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, '[]')$$, 'PT400', NULL, 'an empty batch is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, '[1]')$$, 'PT400', NULL, 'a non-object entry is PT400');
SELECT throws_ok($$SELECT paas.ledger_post('', jsonb_build_array(pg_temp.e('t', 'a', 1, 'clearing', -1)))$$,
	'PT400', NULL, 'an empty idempotency key is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(repeat('k', 256), jsonb_build_array(pg_temp.e('t', 'a', 1, 'clearing', -1)))$$,
	'PT400', NULL, 'a 256-character idempotency key is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('Top Up', 'a', 1, 'clearing', -1)))$$,
	'PT400', NULL, 'a kind outside [a-z0-9_] is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('t', 'a', 1, 'clearing', -1) || '{"memo": 5}'))$$,
	'PT400', NULL, 'a non-string memo is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 't', 'postings',
		jsonb_build_array(jsonb_build_object('account', pg_temp.a('a'), 'amount', 1)))))$$,
	'PT400', NULL, 'an entry with one posting is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('t', 'a', 0, 'clearing', 0)))$$,
	'PT400', NULL, 'a zero amount is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 't', 'postings',
		jsonb_build_array(jsonb_build_object('account', pg_temp.a('a'), 'amount', 1.5),
						  jsonb_build_object('account', pg_temp.a('clearing'), 'amount', -1.5)))))$$,
	'PT400', NULL, 'a fractional amount is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 't', 'postings',
		jsonb_build_array(jsonb_build_object('account', pg_temp.a('a'), 'amount', '5'),
						  jsonb_build_object('account', pg_temp.a('clearing'), 'amount', -5)))))$$,
	'PT400', NULL, 'an amount given as a string is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 't', 'postings',
		jsonb_build_array(jsonb_build_object('account', 'x', 'amount', 5),
						  jsonb_build_object('account', -3, 'amount', -5)))))$$,
	'PT400', NULL, 'a non-numeric or negative account is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 't', 'postings',
		jsonb_build_array(jsonb_build_object('account', pg_temp.a('a'), 'amount', 9223372036854775808),
						  jsonb_build_object('account', pg_temp.a('clearing'), 'amount', -9223372036854775808)))))$$,
	'PT400', NULL, 'an amount beyond bigint is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 't', 'postings',
		jsonb_build_array(jsonb_build_object('account', pg_temp.a('revenue'), 'amount', 9223372036854775807),
						  jsonb_build_object('account', pg_temp.a('revenue'), 'amount', 9223372036854775807),
						  jsonb_build_object('account', pg_temp.a('clearing'), 'amount', -1)))))$$,
	'PT400', NULL, 'postings whose sum overflows are PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(
		pg_temp.e('t', 'float', -9223372036854775807, 'refunds', 9223372036854775807)))$$,
	'PT400', NULL, 'a balance that would overflow is PT400');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 't', 'postings',
		jsonb_build_array(jsonb_build_object('account', pg_temp.a('a'), 'amount', -1),
						  jsonb_build_object('account', 999999999999, 'amount', 1)))))$$,
	'PT404', NULL, 'an unknown account is PT404');
SELECT is(pg_temp.entries(), (SELECT n FROM n0), 'no refused call wrote an entry');

-- reversal
INSERT INTO r VALUES ('charge', paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('charge', 'a', -700, 'revenue', 700))));
SELECT is(paas.wallet_balance(pg_temp.u('a')), 9000::bigint, 'charged before the reversal');
INSERT INTO r VALUES ('rev', paas.ledger_reverse((SELECT (v #>> '{entries,0,id}')::bigint FROM r WHERE k = 'charge'), 'pgtap-rev'));
SELECT is(paas.wallet_balance(pg_temp.u('a')), 9700::bigint, 'the reversal gives the money back');
SELECT is((SELECT kind || ':' || (ref ->> 'reverses') FROM paas.ledger_entries
			WHERE id = (SELECT (v #>> '{entries,0,id}')::bigint FROM r WHERE k = 'rev')),
	'reversal:' || (SELECT v #>> '{entries,0,id}' FROM r WHERE k = 'charge'),
	'the reversal points at the entry it reverses');
SELECT is(paas.ledger_reverse((SELECT (v #>> '{entries,0,id}')::bigint FROM r WHERE k = 'charge'), 'pgtap-rev') -> 'replayed',
	'true'::jsonb, 'a reversal retried with its key is a replay');
SELECT throws_ok($$SELECT paas.ledger_reverse((SELECT (v #>> '{entries,0,id}')::bigint FROM r WHERE k = 'charge'))$$,
	'PT409', NULL, 'an entry is reversed at most once');
SELECT throws_ok($$SELECT paas.ledger_reverse((SELECT (v #>> '{entries,0,id}')::bigint FROM r WHERE k = 'rev'))$$,
	'PT409', NULL, 'a reversal cannot be reversed');
SELECT throws_ok($$SELECT paas.ledger_reverse(-1)$$, 'PT404', NULL, 'reversing an unknown entry is PT404');
INSERT INTO r VALUES ('topup-c', paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('topup', 'c', 100, 'clearing', -100))));
SELECT lives_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('charge', 'c', -150, 'revenue', 150)))$$,
	'c spends its top-up');
SELECT throws_ok($$SELECT paas.ledger_reverse((SELECT (v #>> '{entries,0,id}')::bigint FROM r WHERE k = 'topup-c'))$$,
	'PT402', NULL, 'reversing a top-up already spent is PT402');
SELECT lives_ok($$SELECT paas.ledger_post('pgtap-c-topup', jsonb_build_array(pg_temp.e('topup', 'c', 40, 'clearing', -40)))$$,
	'c tops up 40');
SELECT lives_ok($$SELECT paas.ledger_post('pgtap-c-spend', jsonb_build_array(pg_temp.e('charge', 'c', -40, 'revenue', 40)))$$,
	'c spends it with a keyed charge');
SELECT is(paas.ledger_post('pgtap-c-spend', jsonb_build_array(pg_temp.e('charge', 'c', -40, 'revenue', 40))) -> 'replayed',
	'true'::jsonb, 'a keyed charge retried after the wallet is empty is a replay, not PT402');
SELECT throws_ok($$SELECT paas.ledger_post('pgtap-c-spend', jsonb_build_array(pg_temp.e('charge', 'c', -41, 'revenue', 41)))$$,
	'PT409', NULL, 'other content under that key is PT409, not PT402');
SELECT is(paas.wallet_balance(pg_temp.u('c')), 0::bigint, 'the retries moved nothing');

-- invariants
SELECT is_empty($$SELECT * FROM reporting.ledger_check$$, 'ledger_check is empty while the ledger is sound');
SAVEPOINT broken;
UPDATE paas.ledger_accounts SET balance = balance + 1 WHERE id = pg_temp.a('c');
SELECT set_eq($$SELECT problem FROM reporting.ledger_check$$,
	ARRAY['balance_not_sum_of_postings', 'balance_not_last_posting'],
	'ledger_check reports a cached balance that drifted');
ROLLBACK TO SAVEPOINT broken;
ALTER TABLE paas.ledger_postings DISABLE TRIGGER ledger_postings_append_only;
UPDATE paas.ledger_postings SET amount = amount + 1, balance_after = balance_after + 1
 WHERE id = (SELECT min(id) FROM paas.ledger_postings WHERE account_id = pg_temp.a('a'));
SELECT set_eq($$SELECT DISTINCT problem FROM reporting.ledger_check$$,
	ARRAY['entry_unbalanced', 'balance_not_sum_of_postings', 'posting_chain_broken'],
	'ledger_check reports an unbalanced entry and a broken chain');
ROLLBACK TO SAVEPOINT broken;
SAVEPOINT neg;
ALTER TABLE paas.ledger_accounts DROP CONSTRAINT ledger_wallet_not_negative;
UPDATE paas.ledger_accounts SET balance = -5 WHERE id = pg_temp.a('b');
SELECT ok('wallet_negative' = ANY (ARRAY(SELECT problem FROM reporting.ledger_check)),
	'ledger_check reports a negative wallet');
ROLLBACK TO SAVEPOINT neg;
SAVEPOINT orphan;
INSERT INTO paas.ledger_postings (entry_id, account_id, amount, balance_before, balance_after)
VALUES (-1, -1, 1, 0, 1);
SELECT ok(ARRAY['posting_without_entry', 'posting_without_account'] <@ ARRAY(SELECT problem FROM reporting.ledger_check),
	'ledger_check reports a posting without entry or account');
ROLLBACK TO SAVEPOINT orphan;
SELECT is_empty($$SELECT * FROM reporting.ledger_check$$, 'ledger_check is empty again');
SELECT is((SELECT sum(balance)::bigint FROM paas.ledger_accounts), 0::bigint,
	'all balances together sum to zero');

-- append-only, for everyone but the owner
SELECT throws_ok($$UPDATE paas.ledger_postings SET amount = amount$$, '42501', NULL, 'postings cannot be updated');
SELECT throws_ok($$DELETE FROM paas.ledger_postings$$, '42501', NULL, 'postings cannot be deleted');
SELECT throws_ok($$TRUNCATE paas.ledger_postings CASCADE$$, '42501', NULL, 'postings cannot be truncated');
SELECT throws_ok($$UPDATE paas.ledger_entries SET memo = 'x'$$, '42501', NULL, 'entries cannot be updated');
SELECT throws_ok($$DELETE FROM paas.ledger_entries$$, '42501', NULL, 'entries cannot be deleted');
SELECT throws_ok($$DELETE FROM paas.ledger_accounts WHERE id = pg_temp.a('c')$$, '42501', NULL, 'accounts cannot be deleted');
SELECT throws_ok($$TRUNCATE paas.ledger_accounts CASCADE$$, '42501', NULL, 'accounts cannot be truncated');
SELECT ok(NOT has_table_privilege('paas_owner', 'paas.ledger_postings', 'UPDATE')
		  AND NOT has_table_privilege('paas_owner', 'paas.ledger_postings', 'DELETE')
		  AND NOT has_table_privilege('paas_api', 'paas.ledger_postings', 'SELECT'),
	'no role but the owner has write rights on postings');
SELECT ok(NOT has_function_privilege('paas_api', 'paas.ledger_post(text, jsonb)', 'EXECUTE')
		  AND NOT has_function_privilege('public', 'paas.ledger_post(text, jsonb)', 'EXECUTE'),
	'the gateway cannot call ledger_post directly');
SELECT ok(has_table_privilege('paas_bi', 'reporting.ledger_check', 'SELECT')
		  AND has_table_privilege('paas_bi', 'reporting.daily_revenue', 'SELECT')
		  AND has_table_privilege('paas_bi', 'reporting.balances', 'SELECT'),
	'BI reads the ledger views');

-- api: balance
SELECT is(api.billing_balance('{}', pg_temp.uctx('a')) -> 'balance', '9700'::jsonb, 'billing_balance answers the wallet');
SELECT is(api.billing_balance('{}', pg_temp.uctx('a')) ->> 'currency', 'IDR', 'in IDR');
SELECT throws_ok($$SELECT api.billing_balance('{}', '{}')$$, 'PT401', NULL, 'billing_balance needs a user');
SELECT is(api.billing_balance_batch(jsonb_build_array(jsonb_build_object('req', '{}'::jsonb, 'ctx', pg_temp.uctx('a')))),
	jsonb_build_array(api.billing_balance('{}', pg_temp.uctx('a'))), 'a batch of balance calls answers each as a single call');

-- api: admin adjustments
SELECT throws_ok($$SELECT api.admin_billing_adjust(jsonb_build_object('userId', pg_temp.u('a'), 'amount', 5, 'reason', 'nope'), pg_temp.uctx('b'))$$,
	'PT403', NULL, 'a plain user cannot adjust');
SELECT throws_ok($$SELECT api.admin_billing_adjust('{"amount": 0, "reason": "x"}', pg_temp.actx())$$,
	'PT400', NULL, 'adjustment input is validated');
SELECT throws_ok($$SELECT api.admin_billing_adjust(jsonb_build_object('userId', gen_random_uuid(), 'amount', 5, 'reason', 'goodwill'), pg_temp.actx())$$,
	'PT404', NULL, 'adjusting an unknown user is PT404');
INSERT INTO r VALUES ('adj', api.admin_billing_adjust(
	jsonb_build_object('userId', pg_temp.u('c'), 'amount', 300, 'reason', 'goodwill credit'),
	pg_temp.actx() || '{"idempotencyKey": "pgtap-adj"}'));
SELECT is(paas.wallet_balance(pg_temp.u('c')), 300::bigint, 'a credit adjustment raises the wallet');
SELECT is((SELECT admin_id || '/' || reason FROM paas.ledger_adjustments WHERE id = (SELECT (v ->> 'id')::uuid FROM r WHERE k = 'adj')),
	pg_temp.u('admin') || '/goodwill credit', 'the adjustment is audited with the admin and reason');
SELECT is(api.admin_billing_adjust(
	jsonb_build_object('userId', pg_temp.u('c'), 'amount', 300, 'reason', 'goodwill credit'),
	pg_temp.actx() || '{"idempotencyKey": "pgtap-adj"}') ->> 'id', (SELECT v ->> 'id' FROM r WHERE k = 'adj'),
	'an adjustment retried with its key is answered once');
SELECT is(paas.wallet_balance(pg_temp.u('c')), 300::bigint, 'the retry moved nothing');
SELECT throws_ok($$SELECT api.admin_billing_adjust(jsonb_build_object('userId', pg_temp.u('c'), 'amount', -301, 'reason', 'claw back'), pg_temp.actx())$$,
	'PT402', NULL, 'a debit adjustment cannot overdraw');
SELECT lives_ok($$SELECT api.admin_billing_adjust(jsonb_build_object('userId', pg_temp.u('c'), 'amount', -300, 'reason', 'claw back'), pg_temp.actx())$$,
	'a debit adjustment within the balance passes');

-- api: admin ledger views
SELECT ok((api.admin_billing_ledger(jsonb_build_object('userId', pg_temp.u('c'), 'limit', 2), pg_temp.actx())
			#>> '{pagination,total}')::int >= 4, 'the admin ledger filters by user');
SELECT is((api.admin_billing_ledger(jsonb_build_object('accountId', pg_temp.a('float')), pg_temp.actx())
			#>> '{pagination,total}')::int, 1, 'the admin ledger filters by account');
SELECT ok((api.admin_billing_ledger(jsonb_build_object('accountId', pg_temp.a('revenue'), 'kind', 'charge'), pg_temp.actx())
			#>> '{pagination,total}')::int >= 5, 'a platform account filter finds the postings on its slots');
SELECT is(api.admin_billing_ledger(jsonb_build_object('accountId', pg_temp.a('revenue'), 'limit', 1), pg_temp.actx())
			#>> '{data,0,postings,1,code}', 'revenue', 'slot postings are listed under their platform account');
SELECT throws_ok($$SELECT api.admin_billing_ledger('{"limit": 0, "startDate": "yesterday"}', pg_temp.actx())$$,
	'PT400', NULL, 'admin ledger filters are validated');
SELECT is(jsonb_array_length(api.admin_billing_user_ledger(jsonb_build_object('userId', pg_temp.u('a')), pg_temp.actx())
			#> '{data,postings}'), 5, 'the user ledger lists the wallet''s postings');
SELECT throws_ok($$SELECT api.admin_billing_user_ledger('{"userId": "not-an-id"}', pg_temp.actx())$$,
	'PT404', NULL, 'the ledger of an unknown user is PT404');
SELECT throws_ok($$SELECT api.admin_billing_overview('{}', pg_temp.uctx('a'))$$,
	'PT403', NULL, 'the overview is for admins');
SELECT is_empty($$SELECT * FROM reporting.ledger_check$$, 'ledger_check is empty at the end');

-- after pg_restore: the install rows (platform accounts, slots) come back at
-- 0 and unverified, while their postings come back from the dump
CREATE TEMP TABLE platform_before AS SELECT id, balance FROM paas.ledger_accounts WHERE kind <> 'wallet';
UPDATE paas.ledger_accounts SET balance = 0, balance_verified = false WHERE kind <> 'wallet';
SELECT ok(paas.ledger_restore_needed(), 'balances at 0 under postings: a rebuild is needed');
SELECT throws_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('charge', 'a', -1, 'revenue', 1)))$$,
	'PT503', NULL, 'until then a posting to a platform account is refused');
SELECT throws_ok($$SELECT paas.ledger_post('pgtap-restored', jsonb_build_array(pg_temp.e('adjustment', 'b', 1, 'float', -1)))$$,
	'PT503', NULL, 'whichever account and key');
SELECT is_empty($$SELECT * FROM reporting.ledger_check WHERE problem = 'posting_chain_broken'$$,
	'nothing was posted on top of the unbuilt balances');
SELECT ok(paas.ledger_restore_balances() > 0, 'the rebuild recomputes them');
SELECT is((SELECT array_agg(balance ORDER BY id) FROM paas.ledger_accounts WHERE kind <> 'wallet'),
	(SELECT array_agg(balance ORDER BY id) FROM platform_before), 'from the postings, as they were');
SELECT ok(NOT paas.ledger_restore_needed(), 'nothing is left to rebuild');
SELECT lives_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('charge', 'a', -1, 'revenue', 1)))$$,
	'postings go through again');
SELECT is(paas.ledger_restore_balances(), 0, 'a second rebuild changes nothing');
-- a fresh install: rows without postings take their first one, which verifies them
INSERT INTO paas.ledger_accounts (id, kind, code, balance_verified) OVERRIDING SYSTEM VALUE
VALUES (1000000099800, 'platform', 'pgtap_fresh', false);
INSERT INTO paas.ledger_accounts (id, kind, parent_id, slot, balance_verified) OVERRIDING SYSTEM VALUE
SELECT 1000000099801 + s, 'platform_slot', paas.platform_account('pgtap_fresh'), s, false FROM generate_series(0, 15) s;
INSERT INTO acc VALUES ('fresh', paas.platform_account('pgtap_fresh'), NULL);
CREATE TEMP TABLE fresh AS SELECT paas.ledger_post(NULL, jsonb_build_array(pg_temp.e('adjustment', 'b', 5, 'fresh', -5))) AS r;
SELECT ok((SELECT balance_verified FROM paas.ledger_accounts
			WHERE id = (SELECT (r #>> '{entries,0,postings,1,slotAccount}')::bigint FROM fresh)),
	'a fresh install''s row is verified by its first posting');
SELECT is_empty($$SELECT * FROM reporting.ledger_check$$, 'and every invariant holds');

SELECT finish();
ROLLBACK;
