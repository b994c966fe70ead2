-- billing: a user's money in one story across sql/parts/51_topups.sql,
-- 52_midtrans.sql and 53_billing_feed.sql: top-ups and the Snap round trip,
-- Midtrans notifications (signature, status mapping, exactly-once credit,
-- reversals), status-API answers, expiry, then the feed, dashboards and
-- health.  Invoices have invoices.sql.  Needs the cluster's
-- paas.midtrans_server_key (tests/run.sh sets one).
BEGIN;
SELECT plan(133);

\ir include/billing.sql

-- signature ------------------------------------------------------------------
SELECT ok(paas.midtrans_configured(), 'a server key is configured for the tests');
SELECT ok(paas.midtrans_signature_ok('ORDER-1', '200', '10000.00', pg_temp.sig('ORDER-1', '200', '10000.00')),
	'a correct signature is accepted');
SELECT ok(paas.midtrans_signature_ok('ORDER-1', '200', '10000.00', upper(pg_temp.sig('ORDER-1', '200', '10000.00'))),
	'upper-case hex is accepted');
SELECT ok(NOT paas.midtrans_signature_ok('ORDER-1', '200', '10000', pg_temp.sig('ORDER-1', '200', '10000.00')),
	'the amount is hashed byte for byte ("10000" is not "10000.00")');
SELECT ok(NOT paas.midtrans_signature_ok('ORDER-2', '200', '10000.00', pg_temp.sig('ORDER-1', '200', '10000.00')),
	'another order''s signature is refused');
SELECT ok(NOT paas.midtrans_signature_ok('ORDER-1', '200', '10000.00', left(pg_temp.sig('ORDER-1', '200', '10000.00'), 127)),
	'a short signature is refused');
SELECT ok(NOT paas.midtrans_signature_ok('ORDER-1', '200', '10000.00', repeat('z', 128)),
	'non-hex is refused');
SELECT ok(NOT coalesce(paas.midtrans_signature_ok('ORDER-1', '200', '10000.00', NULL), false),
	'a missing signature is refused');

-- top-up creation and the Snap round trip --------------------------------------
SELECT throws_ok($$SELECT api.billing_topup('{"amount": 50000}', '{}')$$, 'PT401', NULL,
	'top-up needs a user');
SELECT throws_ok($$SELECT api.billing_topup('{"amount": 9999, "currency": "USD"}', pg_temp.ctx('owner'))$$,
	'PT400', 'Validation failed', 'amount range and currency are validated');
SELECT throws_ok($$SELECT api.billing_topup('{"amount": "50000"}', pg_temp.ctx('owner'))$$,
	'PT400', 'Amount is required and must be a number', 'amount must be a JSON number (the original''s words)');
SELECT throws_ok($$SELECT api.billing_topup('{"amount": 10000001}', pg_temp.ctx('owner'))$$,
	'PT400', 'Maximum top-up amount is IDR 10,000,000', 'the maximum is 10,000,000 (the original''s words)');

INSERT INTO pg_temp.v SELECT 's1', api.billing_topup('{"amount": 50000, "currency": "IDR"}', pg_temp.ctx('owner'));
SELECT ok((SELECT j ? '$snap' FROM pg_temp.v WHERE k = 's1'), 'step 1 asks httpd for a Snap call');
SELECT is((SELECT j #>> '{$snap,amount}' FROM pg_temp.v WHERE k = 's1'), '50000', 'with the amount');
SELECT matches((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 's1'), '^TOPUP-[0-9A-F]{8}-[0-9]+-[0-9A-F]{8}$',
	'and a URL-safe order id');
SELECT is((SELECT status FROM paas.topups t JOIN pg_temp.v ON t.order_id = v.j #>> '{$snap,orderId}' WHERE k = 's1'),
	'PENDING', 'the top-up is PENDING before Snap answers');

SELECT is(api.billing_topup('{}', pg_temp.ctx('owner') || jsonb_build_object('snap',
		jsonb_build_object('orderId', (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 's1'),
						   'error', 'snap: HTTP 500'))) -> '$error' ->> 'sqlstate',
	'PT502', 'a Snap failure answers a committed PT502');
SELECT is((SELECT last_error FROM paas.topups t JOIN pg_temp.v ON t.order_id = v.j #>> '{$snap,orderId}' WHERE k = 's1'),
	'snap: HTTP 500', 'and is recorded on the top-up, which stays pending');
SELECT throws_ok($$SELECT api.billing_topup('{}', pg_temp.ctx('other') || jsonb_build_object('snap',
		jsonb_build_object('orderId', (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 's1'), 'token', 't')))$$,
	'PT404', 'Top-up not found', 'another user cannot attach a token to the order');

INSERT INTO pg_temp.v SELECT 't1', api.billing_topup('{}', pg_temp.ctx('owner') || jsonb_build_object('snap',
		jsonb_build_object('orderId', (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 's1'),
						   'token', 'tok-1', 'redirectUrl', 'https://pay.example/tok-1')));
SELECT is((SELECT j ->> 'snapToken' FROM pg_temp.v WHERE k = 't1'), 'tok-1', 'step 2 stores the token');
SELECT is((SELECT j ->> 'redirectUrl' FROM pg_temp.v WHERE k = 't1'), 'https://pay.example/tok-1', 'and the link');
SELECT is((SELECT j ->> 'status' FROM pg_temp.v WHERE k = 't1'), 'PENDING', 'the top-up is pending');

-- idempotency key
INSERT INTO pg_temp.v SELECT 'i1', api.billing_topup('{"amount": 20000}', pg_temp.ctx('owner') || '{"idempotencyKey": "k-1"}');
INSERT INTO pg_temp.v SELECT 'i2', api.billing_topup('{"amount": 20000}', pg_temp.ctx('owner') || '{"idempotencyKey": "k-1"}');
SELECT is((SELECT count(*)::int FROM paas.topups WHERE idempotency_key = 'k-1'), 1,
	'the same Idempotency-Key makes one top-up');
SELECT isnt((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'i2'),
	(SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'i1'),
	'a retry after an unanswered Snap call uses a fresh order id');
SELECT is((SELECT count(*)::int FROM paas.topup_orders o JOIN paas.topups t ON t.id = o.topup_id
			WHERE t.idempotency_key = 'k-1'), 2, 'both order ids stay mapped to the top-up');
SELECT throws_ok($$SELECT api.billing_topup('{"amount": 30000}', pg_temp.ctx('owner') || '{"idempotencyKey": "k-1"}')$$,
	'PT409', NULL, 'the same key with another amount is a conflict');
INSERT INTO pg_temp.v SELECT 'i3', api.billing_topup('{"amount": 20000}', pg_temp.ctx('other') || '{"idempotencyKey": "k-1"}');
SELECT is((SELECT count(*)::int FROM paas.topups WHERE idempotency_key = 'k-1'), 2,
	'another user''s identical key is another top-up');

-- /pay
SELECT throws_ok($$SELECT api.billing_transaction_pay('{"id": "nope"}', pg_temp.ctx('owner'))$$,
	'PT404', 'Transaction not found', 'pay: malformed id is 404');
SELECT throws_ok(format($$SELECT api.billing_transaction_pay('{"id": "%s"}', pg_temp.ctx('other'))$$,
		(SELECT j ->> 'id' FROM pg_temp.v WHERE k = 't1')),
	'PT404', 'Transaction not found', 'pay: another user''s top-up is 404');
SELECT is(api.billing_transaction_pay(jsonb_build_object('id', (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 't1')),
		pg_temp.ctx('owner')) ->> 'snapToken', 'tok-1', 'pay returns the live link');
UPDATE paas.topups SET snap_expires_at = now() - interval '1 minute'
 WHERE id = (SELECT (j ->> 'id')::uuid FROM pg_temp.v WHERE k = 't1');
INSERT INTO pg_temp.v SELECT 'p1', api.billing_transaction_pay(jsonb_build_object('id',
		(SELECT j ->> 'id' FROM pg_temp.v WHERE k = 't1')), pg_temp.ctx('owner'));
SELECT ok((SELECT j ? '$snap' FROM pg_temp.v WHERE k = 'p1'), 'an expired link makes pay ask for a new one');
SELECT isnt((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'p1'),
	(SELECT j ->> 'orderId' FROM pg_temp.v WHERE k = 't1'), 'on a new order id');
SELECT is(api.billing_transaction_pay('{}', pg_temp.ctx('owner') || jsonb_build_object('snap',
		jsonb_build_object('orderId', (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'p1'),
						   'token', 'tok-2', 'redirectUrl', 'https://pay.example/tok-2'))) ->> 'snapToken',
	'tok-2', 'the new link is stored');

-- an expired top-up cannot be paid
INSERT INTO pg_temp.v SELECT 'x1', api.billing_topup('{"amount": 10000}', pg_temp.ctx('owner'));
UPDATE paas.topups SET expires_at = now() - interval '1 second'
 WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'x1');
SELECT is(api.billing_transaction_pay(jsonb_build_object('id', (SELECT id FROM paas.topups
		WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'x1'))), pg_temp.ctx('owner'))
		-> '$error' ->> 'sqlstate', 'PT409', 'pay on an expired top-up is a committed 409');
SELECT is((SELECT status FROM paas.topups WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'x1')),
	'EXPIRED', 'and marks it EXPIRED');
SELECT throws_ok(format($$SELECT api.billing_transaction_pay('{"id": "%s"}', pg_temp.ctx('owner'))$$,
		(SELECT id FROM paas.topups WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'x1'))),
	'PT409', NULL, 'pay on a non-pending top-up is 409');

-- notifications ----------------------------------------------------------------
-- order of t1's current link (the second order)
INSERT INTO pg_temp.v SELECT 'o1', to_jsonb((SELECT order_id FROM paas.topups WHERE id = (SELECT (j ->> 'id')::uuid FROM pg_temp.v WHERE k = 't1')));
INSERT INTO pg_temp.v SELECT 'o0', to_jsonb((SELECT j ->> 'orderId' FROM pg_temp.v WHERE k = 't1'));

SELECT throws_ok($$SELECT api.billing_webhook_midtrans('{"order_id": "x"}')$$, 'PT400', 'Validation failed',
	'a notification without its fields is 400');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'settlement')
		|| '{"signature_key": "00"}') -> '$error' ->> 'sqlstate', 'PT401', 'a forged signature is a committed 401');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'settlement')
		|| '{"gross_amount": "5000000.00"}') -> '$error' ->> 'sqlstate', 'PT401',
	'a tampered amount breaks the signature');
SELECT is((SELECT count(*)::int FROM paas.midtrans_rejects
			WHERE order_id = (SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1') AND reason = 'bad_signature'),
	2, 'bad signatures are recorded as rejects');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b111'), 0::bigint, 'and credit nothing');
SELECT is(api.billing_webhook_midtrans(pg_temp.note('TOPUP-UNKNOWN-1', 'settlement')) -> '$error' ->> 'sqlstate',
	'PT404', 'an unknown order is a committed 404');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'settlement', '49000.00'))
		-> '$error' ->> 'sqlstate', 'PT400', 'a signed notification with another amount is refused');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'settlement',
		'50000.00', '{"currency": "USD"}')) -> '$error' ->> 'sqlstate', 'PT400', 'so is another currency');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'pending')
		|| '{"transaction_status": "settlement"}') -> '$error' ->> 'sqlstate', 'PT400',
	'a signed pending relabelled settlement (status_code 201) is refused');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b111'), 0::bigint, 'still nothing credited');

SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'pending')) ->> 'outcome',
	'pending', 'pending keeps the top-up pending');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'capture', '50000.00',
		'{"fraud_status": "challenge"}')) ->> 'status', 'PENDING', 'capture + challenge stays pending');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'settlement')) ->> 'outcome',
	'credited', 'settlement credits');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b111'), 50000::bigint, 'the wallet holds the amount');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'settlement')) ->> 'outcome',
	'duplicate', 'a replay is a duplicate');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'capture', '50000.00',
		'{"fraud_status": "accept"}')) ->> 'outcome', 'duplicate', 'capture + accept after settlement is a duplicate');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'pending')) ->> 'outcome',
	'ignored_after_success', 'a late pending never undoes a success');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'expire')) ->> 'status',
	'PAID', 'nor does a late expire');
SELECT is(pg_temp.answer((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'settlement'), 'duplicate',
	'the status API still says settlement: the expire was an old attempt''s');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b111'), 50000::bigint, 'credited exactly once');
SELECT is((SELECT count(*)::int FROM paas.ledger_entries WHERE ref ->> 'orderId' = (SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1')),
	1, 'one ledger entry for the order');
SELECT is((SELECT count(*)::int FROM paas.invoices i JOIN paas.topups t ON t.id = i.topup_id
			WHERE t.id = (SELECT (j ->> 'id')::uuid FROM pg_temp.v WHERE k = 't1')), 1, 'one invoice for the top-up');
SELECT matches((SELECT number FROM paas.invoices WHERE topup_id = (SELECT (j ->> 'id')::uuid FROM pg_temp.v WHERE k = 't1')),
	'^INV-[0-9]{6}-[0-9]{6}$', 'numbered INV-YYYYMM-NNNNNN');
-- a payment through the older link of the same top-up is money received too
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o0'), 'settlement')) ->> 'outcome',
	'credited', 'a second paid order of one top-up is credited as well');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b111'), 100000::bigint, 'money is never lost');
-- the feed: the top-up with the balances of its first credited order, the
-- other paid order as a movement of its own
SELECT is((SELECT jsonb_build_array(t ->> 'amount', t ->> 'balanceBefore', t ->> 'balanceAfter')
			 FROM jsonb_array_elements(api.billing_transactions('{"type": "TOPUP", "limit": 100}', pg_temp.ctx('owner'))
									   #> '{data,transactions}') t
			WHERE t ->> 'id' = (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 't1')),
	'["50000", "0", "50000"]'::jsonb, 'the feed''s top-up carries its first credited order''s balances');
SELECT is((SELECT jsonb_build_array(t ->> 'description', t ->> 'amount', t ->> 'balanceBefore', t ->> 'balanceAfter')
			 FROM jsonb_array_elements(api.billing_transactions('{"type": "TOPUP", "limit": 100}', pg_temp.ctx('owner'))
									   #> '{data,transactions}') t
			WHERE t ->> 'id' = (SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o0')),
	jsonb_build_array('Additional payment of top-up ' || (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 't1'),
					  '50000', '50000', '100000'), 'the other paid order is a movement of its own');

-- failure, then success
INSERT INTO pg_temp.v SELECT 'f1', api.billing_topup('{"amount": 50000}', pg_temp.ctx('other'));
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'f1'), 'deny')) ->> 'status',
	'FAILED', 'deny before success fails the top-up');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'f1'), 'capture', '50000.00',
		'{"fraud_status": "accept"}')) ->> 'status', 'PAID', 'a later success still credits (success wins)');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b222'), 50000::bigint, 'the other wallet is credited');
INSERT INTO pg_temp.v SELECT 'c1', api.billing_topup('{"amount": 10000}', pg_temp.ctx('other'));
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'c1'), 'cancel', '10000.00')) ->> 'status',
	'CANCELLED', 'cancel maps to CANCELLED');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'c1'), 'capture', '10000.00',
		'{"fraud_status": "deny"}')) ->> 'outcome', 'failed', 'capture + deny is a failure');

-- reversals: a notification flags the order, the status API's answer decides
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'partial_refund', '50000.00',
		'{"refund_amount": "20000.00"}')) ->> 'outcome', 'verifying_reversal', 'a partial refund notification is checked first');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b111'), 100000::bigint, 'nothing is taken on its word');
SELECT is(pg_temp.answer((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'partial_refund', '50000.00',
		'{"refund_amount": "20000.00"}'), 'reversed', 'the status API''s partial refund reverses its amount');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b111'), 80000::bigint, 'the wallet is debited 20,000');
SELECT is(pg_temp.answer((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'partial_refund', '50000.00',
		'{"refund_amount": "20000.00"}'), 'duplicate', 'the same answer again does nothing');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'refund', '50000.00',
		'{"refund_amount": "50000.00"}')) ->> 'outcome', 'verifying_reversal', 'the full refund notification is checked');
SELECT is(pg_temp.answer((SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'), 'refund', '50000.00',
		'{"refund_amount": "50000.00"}'), 'reversed', 'the full refund reverses the rest');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b111'), 50000::bigint, 'only the other order''s credit is left');
SELECT is((SELECT status FROM paas.invoices WHERE id = (SELECT invoice_id FROM paas.topup_orders
			WHERE order_id = (SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1'))), 'VOID', 'the refunded order''s invoice is void');
SELECT matches((SELECT c.number FROM paas.invoices c JOIN paas.topup_orders o ON c.credit_note_for = o.invoice_id
				 WHERE o.order_id = (SELECT j #>> '{}' FROM pg_temp.v WHERE k = 'o1')), '^CN-[0-9]{6}-[0-9]{6}$',
	'voided by a credit note');
SELECT is((SELECT status FROM paas.topups WHERE id = (SELECT (j ->> 'id')::uuid FROM pg_temp.v WHERE k = 't1')), 'PAID',
	'a top-up with another paid order stays PAID');

-- a refund the wallet cannot cover is kept BLOCKED, nothing overdraws
SELECT lives_ok($$SELECT paas.ledger_post('pgtap-billing-spend', jsonb_build_array(jsonb_build_object(
		'kind', 'charge', 'memo', 'spend', 'postings', jsonb_build_array(
			jsonb_build_object('account', paas.wallet_account('00000000-0000-4000-8000-00000000b222'), 'amount', -45000),
			jsonb_build_object('account', paas.platform_account('revenue'), 'amount', 45000)))))$$,
	'the other user spends most of the credit');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'f1'), 'chargeback')) ->> 'outcome',
	'verifying_reversal', 'a chargeback notification is checked first');
SELECT is(pg_temp.answer((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'f1'), 'chargeback'),
	'reversal_blocked', 'a chargeback larger than the wallet is blocked');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b222'), 5000::bigint, 'the wallet is untouched');
SELECT is((SELECT status FROM paas.topup_reversals WHERE topup_id = (SELECT topup_id FROM paas.topup_orders
			WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'f1'))), 'BLOCKED', 'and recorded as BLOCKED');

-- a refund before its settlement (out of order)
INSERT INTO pg_temp.v SELECT 'r1', api.billing_topup('{"amount": 10000}', pg_temp.ctx('other'));
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'r1'), 'refund', '10000.00')) ->> 'status',
	'PAID', 'a refund before the settlement credits (a signed 200 proves the payment)');
SELECT is(pg_temp.answer((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'r1'), 'refund', '10000.00'),
	'reversed', 'and the status API''s refund reverses it');
SELECT is((SELECT status FROM paas.topups WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'r1')),
	'REFUNDED', 'the top-up is REFUNDED');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'r1'), 'settlement', '10000.00')) ->> 'outcome',
	'duplicate', 'the late settlement changes nothing');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b222'), 5000::bigint, 'net zero for that order');

-- deny after success: the webhook only flags the order, the status API decides
INSERT INTO pg_temp.v SELECT 'rv1', api.billing_topup('{"amount": 20000}', pg_temp.ctx('other'));
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1'), 'settlement', '20000.00')) ->> 'outcome',
	'credited', 'a third top-up is paid');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1'), 'deny', '20000.00')) ->> 'outcome',
	'verifying_reversal', 'a deny after success is checked with the status API, not applied');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b222'), 25000::bigint, 'nothing is taken on the notification''s word');
SELECT ok((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1') IN (SELECT paas.billing_reconcile_claim('1 hour', 50)),
	'the worker claims the flagged order at once');
SELECT is(paas.billing_reconcile_apply((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1'), 200,
		pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1'), 'settlement', '20000.00')::text) ->> 'outcome',
	'duplicate', 'the status API still says settlement: the deny was an old attempt''s');
SELECT is((SELECT row(verify_requested_at, credited, reversed)::text FROM paas.topup_orders
			WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1')),
	row(NULL::timestamptz, 20000, 0)::text, 'the check is settled and the credit stays');
SELECT is(api.billing_webhook_midtrans(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1'), 'deny', '20000.00')) ->> 'outcome',
	'verifying_reversal', 'a second deny is checked again');
SELECT is(paas.billing_reconcile_apply((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1'), 200,
		pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1'), 'deny', '20000.00')::text) ->> 'outcome',
	'reversed', 'the status API says deny: the settlement was reversed, the credit is taken back');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b222'), 5000::bigint, 'the wallet is debited the order''s amount');
SELECT is((SELECT kind || ' ' || status || ' ' || amount FROM paas.topup_reversals
			WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1')), 'REVERSAL SUCCESS 20000',
	'recorded as a reversal');
SELECT is(paas.billing_reconcile_apply((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1'), 200,
		pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1'), 'deny', '20000.00')::text) ->> 'outcome',
	'duplicate', 'an answer applied twice takes nothing twice');
SELECT is((SELECT count(*)::int FROM paas.billing_feed('00000000-0000-4000-8000-00000000b222') f
			WHERE f.direction = 'DEBIT' AND f.description LIKE '%' || (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'rv1')), 1,
	'the transaction history shows the reversal once');
-- status-API answers: a signature_key that does not verify changes nothing
INSERT INTO pg_temp.v SELECT 'sg1', api.billing_topup('{"amount": 20000}', pg_temp.ctx('other'));
SELECT is(paas.billing_reconcile_apply((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'sg1'), 200,
		(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'sg1'), 'pending', '20000.00')
		 || '{"transaction_status": "settlement", "status_code": "200"}')::text) ->> 'outcome',
	'bad_signature', 'an answer whose signature does not cover its status is refused');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-00000000b222'), 5000::bigint, 'and credits nothing');
SELECT is(paas.billing_reconcile_apply((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'sg1'), 200,
		(pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'sg1'), 'settlement', '20000.00')
		 - 'signature_key')::text) ->> 'outcome',
	'credited', 'an answer without a signature_key is taken from the trusted host');
SELECT is_empty($$SELECT * FROM reporting.ledger_check$$, 'ledger invariants hold');

-- reconciliation answers, expiry -----------------------------------------------------
INSERT INTO pg_temp.v SELECT 'q1', api.billing_topup('{"amount": 15000}', pg_temp.ctx('owner'));
SELECT is(paas.billing_reconcile_apply((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'q1'), 200,
		'{"status_code": "404", "status_message": "Transaction doesn''t exist."}') ->> 'outcome', 'not_attempted',
	'status 404: no payment attempted yet');
SELECT is(paas.billing_reconcile_apply((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'q1'), 0,
		'Could not connect') ->> 'outcome', 'error', 'a transport failure is recorded, not raised');
SELECT is((SELECT check_error IS NOT NULL FROM paas.topup_orders WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'q1')),
	true, 'on the order');
SELECT is(paas.billing_reconcile_apply((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'q1'), 200,
		pg_temp.note((SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'q1'), 'settlement', '15000.00')::text) ->> 'outcome',
	'credited', 'a settled status answer credits');
SELECT is((SELECT source FROM paas.midtrans_notifications WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'q1')
			ORDER BY id DESC LIMIT 1), 'reconcile', 'recorded as a reconciliation');

UPDATE paas.topup_orders SET created_at = now() - interval '1 hour', last_checked_at = NULL
 WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'x1') OR order_id = (
	SELECT order_id FROM paas.topups WHERE id = (SELECT (j ->> 'id')::uuid FROM pg_temp.v WHERE k = 'i3'));
SELECT is(ARRAY(SELECT paas.billing_reconcile_claim('30 minutes', 100)
				INTERSECT SELECT o.order_id FROM paas.topup_orders o JOIN paas.topups t ON t.id = o.topup_id
						   WHERE t.user_id IN ('00000000-0000-4000-8000-00000000b111', '00000000-0000-4000-8000-00000000b222')),
	ARRAY(SELECT order_id FROM paas.topups WHERE id = (SELECT (j ->> 'id')::uuid FROM pg_temp.v WHERE k = 'i3')),
	'reconciliation claims old pending orders of pending top-ups only');
SELECT is_empty($$SELECT paas.billing_reconcile_claim('30 minutes', 100)
				  INTERSECT SELECT order_id FROM paas.topups WHERE id = (SELECT (j ->> 'id')::uuid FROM pg_temp.v WHERE k = 'i3')$$,
	'a claimed order waits for the next period');

INSERT INTO pg_temp.v SELECT 'e1', api.billing_topup('{"amount": 12000}', pg_temp.ctx('owner'));
UPDATE paas.topups SET expires_at = now() - interval '1 second'
 WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'e1');
SELECT ok((paas.job_billing_expire_topups() ->> 'expired')::int >= 1, 'the expiry job expires old pending top-ups');
SELECT is((SELECT status FROM paas.topups WHERE order_id = (SELECT j #>> '{$snap,orderId}' FROM pg_temp.v WHERE k = 'e1')),
	'EXPIRED', 'to EXPIRED');

-- lists, feed, dashboards, health -------------------------------------------------------
SELECT throws_ok($$SELECT api.billing_topups('{"status": "NOPE"}', pg_temp.ctx('owner'))$$, 'PT400', 'Validation failed',
	'top-up list filters are validated');
SELECT throws_ok($$SELECT api.billing_topup_get('{"id": "1"}', pg_temp.ctx('owner'))$$, 'PT404', 'Top-up not found',
	'a malformed top-up id is 404');
SELECT throws_ok(format($$SELECT api.billing_topup_get('{"id": "%s"}', pg_temp.ctx('other'))$$,
		(SELECT j ->> 'id' FROM pg_temp.v WHERE k = 't1')), 'PT404', 'Top-up not found', 'another user''s top-up is 404');
SELECT is(api.billing_topup_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 't1')),
		pg_temp.ctx('owner')) ->> 'status', 'PAID', 'the owner reads the top-up');
SELECT throws_ok($$SELECT api.billing_transactions('{"type": "GIFT", "status": "X", "startDate": "2026-02-01", "endDate": "2026-01-01"}', pg_temp.ctx('owner'))$$,
	'PT400', 'Validation failed', 'feed filters are validated');
SELECT is(jsonb_array_length(api.billing_transactions('{"type": "REFUND"}', pg_temp.ctx('owner')) #> '{data,transactions}'), 2,
	'the feed lists both refunds');
SELECT ok((SELECT bool_and((t ->> 'balanceAfter')::bigint IS NOT NULL) FROM jsonb_array_elements(
		api.billing_transactions('{"status": "SUCCESS"}', pg_temp.ctx('owner')) #> '{data,transactions}') t),
	'every settled movement carries its balance after');
SELECT is(api.billing_transaction_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 't1')),
		pg_temp.ctx('owner')) ->> 'type', 'TOPUP', 'one movement by id');
SELECT throws_ok(format($$SELECT api.billing_transaction_get('{"id": "%s"}', pg_temp.ctx('other'))$$,
		(SELECT j ->> 'id' FROM pg_temp.v WHERE k = 't1')), 'PT404', 'Transaction not found', 'another user''s movement is 404');
SELECT is((api.billing_dashboard_overview('{}', pg_temp.ctx('owner')) #>> '{balance,current}')::bigint,
	paas.wallet_balance('00000000-0000-4000-8000-00000000b111'), 'the overview shows the balance');
SELECT throws_ok($$SELECT api.billing_dashboard_analytics('{"startDate": "2026-02-01", "endDate": "2026-01-01"}', pg_temp.ctx('owner'))$$,
	'PT400', 'Validation failed', 'analytics wants start <= end');
SELECT is((api.billing_dashboard_analytics('{}', pg_temp.ctx('owner')) #>> '{analytics,totalTopUps}')::bigint, 115000::bigint,
	'analytics sums the paid top-ups');
SELECT is(api.billing_health() ->> 'status', 'healthy', 'billing health');
SELECT ok(has_table_privilege('paas_bi', 'reporting.topups_by_status', 'SELECT'), 'BI reads top-ups by status');

-- the feed's JSON is built as json text and made jsonb once: a movement's
-- text with quotes, backslashes, control characters and non-ASCII letters
-- reaches every feed as it was written, its numbers as numbers
SELECT lives_ok($$SELECT paas.ledger_post('pgtap-billing-memo', jsonb_build_array(jsonb_build_object(
		'kind', 'charge', 'memo', E'a "quoted" \\ back\\slash,\ttab\nnew line \u0001 — ünï 日本', 'postings', jsonb_build_array(
			jsonb_build_object('account', paas.wallet_account('00000000-0000-4000-8000-00000000b111'), 'amount', -7),
			jsonb_build_object('account', paas.platform_account('revenue'), 'amount', 7)))))$$,
	'the owner is charged with a memo of awkward characters');
SELECT is((SELECT t ->> 'description' FROM jsonb_array_elements(
		api.billing_transactions('{"type": "SERVICE_PURCHASE", "limit": 100}', pg_temp.ctx('owner')) #> '{data,transactions}') t
		 WHERE t ->> 'amount' = '7'),
	E'a "quoted" \\ back\\slash,\ttab\nnew line \u0001 — ünï 日本', 'the feed prints the memo as written');
SELECT is((SELECT jsonb_build_array(jsonb_typeof(t -> 'amount'), jsonb_typeof(t -> 'balanceAfter'),
									jsonb_typeof(t #> '{actions,canPay}'), t ->> 'currency')
			 FROM jsonb_array_elements(api.billing_dashboard_overview('{}', pg_temp.ctx('owner')) -> 'recentTransactions') t
			WHERE t ->> 'amount' = '7'),
	'["number", "number", "boolean", "IDR"]'::jsonb, 'the overview''s recent movement has numbers, booleans and text');
SELECT is(api.billing_transaction_get(jsonb_build_object('id', (SELECT e.id::text FROM paas.ledger_entries e
				WHERE e.memo LIKE 'a "quoted"%')), pg_temp.ctx('owner')) ->> 'description',
	E'a "quoted" \\ back\\slash,\ttab\nnew line \u0001 — ünï 日本', 'one movement by id prints it as written');

-- every top-up is one row of its owner's feed, however many orders (payment
-- links) it has
SELECT is((SELECT count(*) FROM paas.users u CROSS JOIN LATERAL paas.billing_feed_rows(u.id) b
			JOIN paas.topups t ON t.id::text = b.id
			WHERE u.id IN ('00000000-0000-4000-8000-00000000b111', '00000000-0000-4000-8000-00000000b222')),
		  (SELECT count(*) FROM paas.topups t WHERE t.user_id IN ('00000000-0000-4000-8000-00000000b111',
																 '00000000-0000-4000-8000-00000000b222')),
	'one feed row per top-up');

SELECT finish();
ROLLBACK;
