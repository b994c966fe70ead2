-- midtrans: what Midtrans says of an order, safely (sql/parts/52_midtrans.sql):
-- reversals are taken from the status API only (a signed notification
-- relabelled "refund" takes nothing), one BLOCKED record per exposure,
-- bounded records of refused notifications and their pruning.
-- Needs the cluster's paas.midtrans_server_key (tests/run.sh sets one).
BEGIN;
SELECT plan(61);

INSERT INTO paas.users (id, email, name, password_hash) VALUES
	('00000000-0000-4000-8000-00000000c111', 'safety.rich@example.com', 'Safety Rich', 'x'),
	('00000000-0000-4000-8000-00000000c222', 'safety.spender@example.com', 'Safety Spender', 'x');

CREATE FUNCTION pg_temp.ctx(who text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('userId', CASE who WHEN 'rich' THEN '00000000-0000-4000-8000-00000000c111'
												 ELSE '00000000-0000-4000-8000-00000000c222' END,
							  'ip', '203.0.113.9')
$$;
CREATE FUNCTION pg_temp.code(st text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE WHEN st IN ('pending', 'authorize') THEN '201'
				WHEN st IN ('deny', 'cancel', 'expire', 'failure') THEN '202' ELSE '200' END
$$;
-- a notification signed as Midtrans signs it (order_id, status_code, gross_amount)
CREATE FUNCTION pg_temp.note(order_id text, st text, gross text, extra jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql AS $$
	SELECT jsonb_build_object(
		'transaction_status', st, 'order_id', order_id, 'gross_amount', gross,
		'status_code', pg_temp.code(st),
		'signature_key', encode(digest(order_id || pg_temp.code(st) || gross
									   || current_setting('paas.midtrans_server_key'), 'sha512'), 'hex'),
		'payment_type', 'bank_transfer', 'currency', 'IDR', 'transaction_id', gen_random_uuid(),
		'status_message', 'midtrans payment notification') || extra
$$;
CREATE FUNCTION pg_temp.answer(order_id text, st text, gross text, extra jsonb DEFAULT '{}') RETURNS text
	LANGUAGE sql AS $$
	SELECT paas.billing_reconcile_apply(order_id, 200, pg_temp.note(order_id, st, gross, extra)::text) ->> 'outcome'
$$;
CREATE FUNCTION pg_temp.hook(n jsonb) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(r ->> 'outcome', r -> '$error' ->> 'sqlstate')
	  FROM api.billing_webhook_midtrans(n, '{"ip": "198.51.100.7"}') r
$$;
CREATE FUNCTION pg_temp.flagged(order_id text) RETURNS boolean LANGUAGE sql AS $$
	SELECT verify_requested_at IS NOT NULL FROM paas.topup_orders o WHERE o.order_id = flagged.order_id
$$;
CREATE TABLE pg_temp.o (k text PRIMARY KEY, id text);
CREATE FUNCTION pg_temp.oid(key text) RETURNS text LANGUAGE sql AS $$ SELECT id FROM pg_temp.o WHERE k = key $$;
-- a new PENDING top-up of "who", returning its order id
CREATE FUNCTION pg_temp.order_for(key text, who text, amount int) RETURNS text LANGUAGE sql AS $$
	INSERT INTO pg_temp.o SELECT key, api.billing_topup(jsonb_build_object('amount', amount), pg_temp.ctx(who)) #>> '{$snap,orderId}'
	RETURNING id
$$;
CREATE FUNCTION pg_temp.balance(who text) RETURNS bigint LANGUAGE sql AS $$
	SELECT paas.wallet_balance((pg_temp.ctx(who) ->> 'userId')::uuid)
$$;

-- 1. a notification never takes money back ----------------------------------
DO $$ BEGIN PERFORM pg_temp.order_for('a', 'rich', 150000); END $$;
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('a'), 'settlement', '150000.00')), 'credited', 'the settlement credits 150,000');
SELECT is(pg_temp.balance('rich'), 150000::bigint, 'the wallet holds 150,000');
-- the genuine signed settlement, re-sent with another transaction_status:
-- the signature still verifies (it covers order_id, status_code, gross_amount)
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('a'), 'settlement', '150000.00') || '{"transaction_status": "refund"}'),
	'verifying_reversal', 'a settlement relabelled refund only flags the order');
SELECT is(pg_temp.balance('rich'), 150000::bigint, 'and takes nothing');
SELECT ok(pg_temp.flagged(pg_temp.oid('a')), 'the order waits for the status API');
SELECT ok(pg_temp.oid('a') IN (SELECT paas.billing_reconcile_claim('1 hour', 100)), 'which the worker asks at once');
SELECT is(pg_temp.answer(pg_temp.oid('a'), 'settlement', '150000.00'), 'duplicate',
	'the status API says settlement: nothing to reverse');
SELECT is(pg_temp.balance('rich'), 150000::bigint, 'the balance stays 150,000');
SELECT ok(NOT pg_temp.flagged(pg_temp.oid('a')), 'and the check is settled');
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('a'), 'settlement', '150000.00')
		|| '{"transaction_status": "partial_refund", "refund_amount": "150000.00"}'),
	'verifying_reversal', 'a relabelled partial refund with its own refund_amount is only a flag');
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('a'), 'settlement', '150000.00') || '{"transaction_status": "chargeback"}'),
	'verifying_reversal', 'so is a relabelled chargeback');
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('a'), 'partial_chargeback', '150000.00', '{"refund_amount": "1.00"}')),
	'verifying_reversal', 'and a partial chargeback');
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('a'), 'cancel', '150000.00')), 'verifying_reversal',
	'a cancel after success is checked');
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('a'), 'expire', '150000.00')), 'verifying_reversal',
	'an expire after success is checked');
SELECT is(pg_temp.balance('rich'), 150000::bigint, 'no notification took anything');
SELECT is((SELECT count(*)::int FROM paas.topup_reversals WHERE order_id = pg_temp.oid('a')), 0, 'no reversal is recorded');

-- the amount comes from the status API's answer
SELECT is(pg_temp.answer(pg_temp.oid('a'), 'partial_refund', '150000.00'), 'error',
	'a partial refund answer without an amount changes nothing');
SELECT ok((SELECT check_error LIKE '%without a refund amount%' FROM paas.topup_orders WHERE order_id = pg_temp.oid('a')),
	'it is recorded on the order');
SELECT ok(pg_temp.flagged(pg_temp.oid('a')), 'and the check stays due');
SELECT is(paas.billing_reconcile_apply(pg_temp.oid('a'), 200,
		(pg_temp.note(pg_temp.oid('a'), 'refund', '150000.00') || jsonb_build_object('signature_key', repeat('a', 128)))::text)
		->> 'outcome', 'bad_signature', 'unless its signature_key does not verify');
SELECT is(pg_temp.balance('rich'), 150000::bigint, 'which changes nothing');
SELECT is(pg_temp.answer(pg_temp.oid('a'), 'partial_refund', '150000.00',
		'{"refund_amount": "150000.00", "refunds": [{"refund_amount": "30000.00", "refund_key": "r1"},
												   {"refund_amount": "20000.00", "refund_key": "r2"}]}'),
	'reversed', 'a partial refund answer reverses the sum of its refunds');
SELECT is(pg_temp.balance('rich'), 100000::bigint, 'of 50,000');
SELECT is((SELECT kind || ' ' || status || ' ' || amount FROM paas.topup_reversals WHERE order_id = pg_temp.oid('a')),
	'REFUND SUCCESS 50000', 'recorded as a refund');
SELECT is(pg_temp.answer(pg_temp.oid('a'), 'partial_refund', '150000.00', '{"refund_amount": "70000"}'),
	'reversed', 'a later answer with refund_amount 70,000 takes the difference');
SELECT is(pg_temp.balance('rich'), 80000::bigint, 'of 20,000');
SELECT is(pg_temp.answer(pg_temp.oid('a'), 'expire', '150000.00'), 'reversed',
	'an expire after success, once the status API says so, takes back the rest');
SELECT is(pg_temp.balance('rich'), 0::bigint, 'the wallet is back to 0');
SELECT is((SELECT status FROM paas.topups WHERE order_id = pg_temp.oid('a')), 'REFUNDED', 'the top-up is REFUNDED');
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('a'), 'refund', '150000.00')), 'duplicate',
	'a refund notification of a fully reversed order asks nothing');
-- a status answer is believed as it is: it comes from the Core API host,
-- asked with our server key (its signature_key, when present, must verify)
DO $$ BEGIN PERFORM pg_temp.order_for('c', 'rich', 10000); END $$;
SELECT is(pg_temp.answer(pg_temp.oid('c'), 'refund', '10000.00'), 'reversed',
	'a refund answer for an order never notified credits, then reverses');
SELECT is(pg_temp.balance('rich'), 0::bigint, 'net zero');

-- 2. one exposure, one record -----------------------------------------------------
DO $$ BEGIN PERFORM pg_temp.order_for('b', 'spender', 20000); END $$;
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('b'), 'settlement', '20000.00')), 'credited', 'a 20,000 top-up is paid');
SELECT lives_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object(
		'kind', 'charge', 'memo', 'spend', 'postings', jsonb_build_array(
			jsonb_build_object('account', paas.wallet_account('00000000-0000-4000-8000-00000000c222'), 'amount', -15000),
			jsonb_build_object('account', paas.platform_account('revenue'), 'amount', 15000)))))$$,
	'and 15,000 of it spent');
CREATE TEMP TABLE blocked_before AS
SELECT coalesce(sum(blocked_reversals), 0) AS n FROM reporting.topups_by_status;
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('b'), 'deny', '20000.00')), 'verifying_reversal', 'the bank takes it back: deny');
SELECT is(pg_temp.answer(pg_temp.oid('b'), 'deny', '20000.00'), 'reversal_blocked', 'the status API confirms: blocked');
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('b'), 'deny', '20000.00')), 'verifying_reversal', 'the deny is notified again');
SELECT is(pg_temp.answer(pg_temp.oid('b'), 'deny', '20000.00'), 'reversal_blocked', 'and confirmed again');
SELECT is(pg_temp.answer(pg_temp.oid('b'), 'deny', '20000.00'), 'reversal_blocked', 'and a third reconciler pass');
SELECT is((SELECT count(*)::int FROM paas.topup_reversals WHERE order_id = pg_temp.oid('b')), 1,
	'one exposure, one record');
SELECT is((SELECT coalesce(sum(blocked_reversals), 0) FROM reporting.topups_by_status) - (SELECT n FROM blocked_before), 1::numeric,
	'reporting counts one blocked reversal');
SELECT is(pg_temp.balance('spender'), 5000::bigint, 'nothing was taken');
-- the user funds the wallet again: the next check takes the money, on the same record
SELECT lives_ok($$SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object(
		'kind', 'adjustment', 'memo', 'funds', 'postings', jsonb_build_array(
			jsonb_build_object('account', paas.wallet_account('00000000-0000-4000-8000-00000000c222'), 'amount', 30000),
			jsonb_build_object('account', paas.platform_account('adjustments'), 'amount', -30000)))))$$,
	'the wallet is funded again');
SELECT is(pg_temp.answer(pg_temp.oid('b'), 'deny', '20000.00'), 'reversed', 'the next confirmed deny takes the credit back');
SELECT is((SELECT string_agg(kind || ' ' || status || ' ' || amount, ',') FROM paas.topup_reversals WHERE order_id = pg_temp.oid('b')),
	'REVERSAL SUCCESS 20000', 'the one record is now the reversal that succeeded');
SELECT is(pg_temp.balance('spender'), 15000::bigint, 'the wallet paid it');

-- 3. refused notifications are bounded records, pruned ---------------------------------
CREATE TEMP TABLE big AS SELECT pg_temp.note(pg_temp.oid('b'), 'settlement', '20000.00')
	|| jsonb_build_object('signature_key', repeat('0', 128), 'junk', repeat('é', 600000)) AS n;
SELECT is(pg_temp.hook((SELECT n FROM big)), 'PT401', 'a 1 MiB notification with a bad signature is refused');
SELECT is((SELECT format('%s %s %s %s', reason, order_id = pg_temp.oid('b'), client_ip, body_size > 1100000)
			 FROM paas.midtrans_rejects ORDER BY id DESC LIMIT 1),
	'bad_signature t 198.51.100.7 t', 'it is recorded with its reason, order, client address and size');
SELECT ok((SELECT octet_length(r.body_head) BETWEEN 4000 AND 4096
				  AND starts_with(b.n::text, r.body_head)
				  AND r.body_sha256 = sha256(convert_to(b.n::text, 'UTF8'))
			 FROM paas.midtrans_rejects r, big b ORDER BY r.id DESC LIMIT 1),
	'with the first 4 kB of the body and its SHA-256');
SELECT ok(NOT EXISTS (SELECT 1 FROM paas.midtrans_notifications WHERE order_id = pg_temp.oid('b')
					   AND octet_length(body::text) > 20000), 'never the body itself');
-- a verified notification is kept whole, up to 16 kB
SELECT is(pg_temp.hook(pg_temp.note(pg_temp.oid('b'), 'settlement', '20000.00', jsonb_build_object('junk', repeat('x', 50000)))),
	'duplicate', 'a genuine notification padded with 50 kB is applied');
SELECT is((SELECT (body ->> '$truncated') || ' ' || (body ->> 'size') || ' ' || octet_length(body ->> 'head')
			 FROM paas.midtrans_notifications WHERE order_id = pg_temp.oid('b') ORDER BY id DESC LIMIT 1),
	'true ' || octet_length((pg_temp.note(pg_temp.oid('b'), 'settlement', '20000.00',
		jsonb_build_object('junk', repeat('x', 50000))))::text) || ' 4096',
	'and recorded as a bounded summary');
SELECT is(paas.midtrans_reject_retention(), interval '30 days', 'refused notifications are kept 30 days by default');
INSERT INTO paas.midtrans_rejects (received_at, reason, order_id, client_ip, body_size, body_sha256, body_head)
SELECT now() - CASE WHEN i <= 3 THEN interval '31 days' ELSE interval '29 days' END, 'bad_signature', 'prune-' || i,
	   '192.0.2.1', 2, sha256('{}'), '{}'
  FROM generate_series(1, 5) i;
SELECT is(paas.job_prune_midtrans_rejects() ->> 'deleted', '3', 'the prune job deletes what is older');
SELECT is((SELECT count(*)::int FROM paas.midtrans_rejects WHERE order_id LIKE 'prune-%'), 2, 'and keeps the rest');
SELECT is((SELECT run_every FROM paas.job WHERE name = 'prune_midtrans_rejects'), interval '1 hour',
	'it is a job of the registry, run hourly');
SELECT is(paas.text_head(repeat('é', 5000), 4096), repeat('é', 2048), 'a head is cut on a character boundary');

-- 4. the transaction feed reads the user's rows, never the platform's ------------
INSERT INTO paas.users (id, email, name, password_hash) VALUES
	('00000000-0000-4000-8000-00000000c333', 'safety.platform@example.com', 'Safety Platform', 'x');
INSERT INTO paas.invoices (number, user_id, kind, amount, description, lines, ref)
SELECT 'INV-199901-' || lpad(g::text, 6, '0'), '00000000-0000-4000-8000-00000000c333', 'SUBSCRIPTION', 1000,
	   'Service Subscription', '[]', jsonb_build_object('entryId', 800000000 + g)
  FROM generate_series(1, 5000) g;
ANALYZE paas.invoices;
CREATE TEMP TABLE reads AS
SELECT 'before'::text AS k, seq_scan, seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables
 WHERE relid = 'paas.invoices'::regclass;
CREATE TEMP TABLE page AS SELECT api.billing_transactions('{"limit": 3}', pg_temp.ctx('spender')) AS r;
INSERT INTO reads SELECT 'after', seq_scan, seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables
 WHERE relid = 'paas.invoices'::regclass;
SELECT is((SELECT jsonb_array_length(r #> '{data,transactions}') FROM page), 3, 'a page of 3 movements');
SELECT ok((SELECT (r #>> '{pagination,total}')::int > 3 FROM page), 'of more');
SELECT is((SELECT a.seq_scan - b.seq_scan FROM reads a, reads b WHERE a.k = 'after' AND b.k = 'before'), 0::bigint,
	'the feed scans no invoices table');
SELECT ok((SELECT a.idx_tup_fetch - b.idx_tup_fetch <= 3 FROM reads a, reads b WHERE a.k = 'after' AND b.k = 'before'),
	'and reads at most one invoice per movement printed');

SELECT finish();
ROLLBACK;
