-- subscriptions: the status machine (extension/subscriptions.c), month
-- arithmetic, sale / renew / cancel and their errors, idempotency, the
-- renewal run inside this transaction (run twice, grace -> suspend ->
-- revive, cancelled -> expired, periods caught up), admin functions and
-- notices, accounts that end (sql/parts/60_subscriptions.sql,
-- 61_subscription_admin.sql, 62_renewals.sql).  Runs across sessions and
-- workers are renewals.sql.
BEGIN;
SELECT plan(149);

------------------------------------------------------------------------------
-- fixtures of this transaction
------------------------------------------------------------------------------
INSERT INTO paas.users (id, email, name, password_hash, role) VALUES
	('00000000-0000-4000-8000-0000005b0a01', 'sub-admin@pgtap.test', 'Sub Admin', 'x', 'ADMINISTRATOR'),
	('00000000-0000-4000-8000-0000005b0b01', 'sub-rich@pgtap.test', 'Sub Rich', 'x', 'USER'),
	('00000000-0000-4000-8000-0000005b0b02', 'sub-poor@pgtap.test', 'Sub Poor', 'x', 'USER'),
	('00000000-0000-4000-8000-0000005b0b03', 'sub-grace@pgtap.test', 'Sub Grace', 'x', 'USER');
INSERT INTO paas.services (id, name, display_name, description, docker_image, monthly_price, is_active) VALUES
	('00000000-0000-4000-8000-0000005b0c01', 'pgtap-sub-paid', 'Paid Service', 'a priced service for tests', 'nginx:1', 25000, true),
	('00000000-0000-4000-8000-0000005b0c02', 'pgtap-sub-free', 'Free Service', 'a free service for tests', 'nginx:1', 0, true),
	('00000000-0000-4000-8000-0000005b0c03', 'pgtap-sub-off', 'Off Service', 'an inactive service for tests', 'nginx:1', 1000, false),
	('00000000-0000-4000-8000-0000005b0c04', 'pgtap-sub-cheap', 'Cheap Service', 'a cheap service for tests', 'nginx:1', 10000, true);

CREATE FUNCTION pg_temp.ctx(k text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('userId', CASE k
		WHEN 'admin' THEN '00000000-0000-4000-8000-0000005b0a01'
		WHEN 'rich' THEN '00000000-0000-4000-8000-0000005b0b01'
		WHEN 'poor' THEN '00000000-0000-4000-8000-0000005b0b02'
		WHEN 'grace' THEN '00000000-0000-4000-8000-0000005b0b03' END) $$;
CREATE FUNCTION pg_temp.uid(k text) RETURNS uuid LANGUAGE sql AS $$
	SELECT (pg_temp.ctx(k) ->> 'userId')::uuid $$;
CREATE FUNCTION pg_temp.svc(k text) RETURNS text LANGUAGE sql AS $$
	SELECT CASE k WHEN 'paid' THEN '00000000-0000-4000-8000-0000005b0c01'
				  WHEN 'free' THEN '00000000-0000-4000-8000-0000005b0c02'
				  WHEN 'off' THEN '00000000-0000-4000-8000-0000005b0c03'
				  WHEN 'cheap' THEN '00000000-0000-4000-8000-0000005b0c04' END $$;
CREATE FUNCTION pg_temp.fund(k text, amount bigint) RETURNS void LANGUAGE sql AS $$
	SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup',
		'postings', jsonb_build_array(
			jsonb_build_object('account', paas.wallet_account(pg_temp.uid(k)), 'amount', amount),
			jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -amount)))));
	$$;
-- Makes a subscription due now: sold one month and one hour ago.
CREATE FUNCTION pg_temp.make_due(sid uuid) RETURNS void LANGUAGE sql AS $$
	UPDATE paas.subscriptions
	   SET anchor_at = now() - interval '1 month 1 hour', anchor_period = 1, period_no = 1,
		   current_period_start = now() - interval '1 month 1 hour',
		   current_period_end = paas.subscription_bound(now() - interval '1 month 1 hour', 1)
	 WHERE id = sid;
	DELETE FROM paas.subscription_charges WHERE subscription_id = sid AND period_no > 1;
	$$;
CREATE FUNCTION pg_temp.sub(k text, service text) RETURNS paas.subscriptions LANGUAGE sql AS $$
	SELECT * FROM paas.subscriptions WHERE user_id = pg_temp.uid(k) AND service_id = pg_temp.svc(service)::uuid
	 ORDER BY created_at DESC LIMIT 1 $$;
CREATE FUNCTION pg_temp.err_fields(q text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
	d text;
	st text;
BEGIN
	EXECUTE q;
	RETURN '{}';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, st = RETURNED_SQLSTATE;
	IF st <> 'PT400' THEN
		RETURN ARRAY[st];
	END IF;
	RETURN ARRAY(SELECT e ->> 'field' FROM jsonb_array_elements(d::jsonb) e ORDER BY 1);
END $$;
SELECT pg_temp.fund('rich', 100000);
SELECT pg_temp.fund('grace', 25000);

------------------------------------------------------------------------------
-- status machine
------------------------------------------------------------------------------
SELECT is((SELECT count(*) FROM paas.subscription_transitions()), 23::bigint,
	'the machine has 23 allowed transitions');
SELECT is(paas.subscription_transition('ACTIVE', 'payment_failed'), 'GRACE', 'ACTIVE + payment_failed -> GRACE');
SELECT is(paas.subscription_transition('GRACE', 'grace_expired'), 'SUSPENDED', 'GRACE + grace_expired -> SUSPENDED');
SELECT is(paas.subscription_transition('SUSPENDED', 'renew'), 'ACTIVE', 'SUSPENDED + renew -> ACTIVE');
SELECT is(paas.subscription_transition('CANCELLED', 'period_ended'), 'EXPIRED', 'CANCELLED + period_ended -> EXPIRED');
SELECT ok(NOT paas.subscription_transition_allowed('EXPIRED', 'cancel'), 'an expired subscription cannot be cancelled');
SELECT throws_ok($$SELECT paas.subscription_transition('CANCELLED', 'cancel')$$, 'PT409', NULL,
	'cancelling twice is an illegal transition (PT409)');
SELECT throws_ok($$SELECT paas.subscription_transition('ACTIVE', 'grace_expired')$$, 'PT409', NULL,
	'grace_expired outside GRACE is illegal (PT409)');
SELECT throws_ok($$SELECT paas.subscription_transition('EXPIRED', 'activate')$$, 'PT409', NULL,
	'an administrator cannot activate an expired subscription (PT409)');
SELECT throws_ok($$SELECT paas.subscription_transition('PAUSED', 'renew')$$, '22023', NULL,
	'an unknown status is 22023');
SELECT throws_ok($$SELECT paas.subscription_transition('ACTIVE', 'pause')$$, '22023', NULL,
	'an unknown event is 22023');

------------------------------------------------------------------------------
-- month arithmetic
------------------------------------------------------------------------------
SELECT is(paas.subscription_bound('2024-01-31 10:00Z', 1), '2024-02-29 10:00Z'::timestamptz,
	'Jan 31 + 1 month = Feb 29 in a leap year');
SELECT is(paas.subscription_bound('2023-01-31 10:00Z', 1), '2023-02-28 10:00Z'::timestamptz,
	'Jan 31 + 1 month = Feb 28 otherwise');
SELECT is(paas.subscription_bound('2024-01-31 10:00Z', 2), '2024-03-31 10:00Z'::timestamptz,
	'the second period ends on Mar 31: anchored on the original day, not on Feb 29');
SELECT is(paas.subscription_bound('2024-01-31 10:00Z', 13), '2025-02-28 10:00Z'::timestamptz,
	'thirteen months later: Feb 28 2025');
SELECT is(paas.subscription_bound('2024-12-15 00:00Z', 1), '2025-01-15 00:00Z'::timestamptz,
	'across a year end');
SET LOCAL TimeZone = 'Asia/Jakarta';
SELECT is(paas.subscription_bound('2024-01-31 20:00Z', 1), '2024-02-29 20:00Z'::timestamptz,
	'months are counted in UTC whatever the session time zone (Jan 31 20:00 UTC is Feb 1 in Jakarta)');
RESET TimeZone;

------------------------------------------------------------------------------
-- sale
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT api.subscriptions_create('{"serviceId": "00000000-0000-4000-8000-0000005b0c01"}', '{}')$$,
	'PT401', NULL, 'no identity: PT401');
SELECT is(pg_temp.err_fields($$SELECT api.subscriptions_create('{}', pg_temp.ctx('rich'))$$),
	ARRAY['serviceId'], 'serviceId is required');
SELECT throws_ok($$SELECT api.subscriptions_create('{"serviceId": "n8n-service"}', pg_temp.ctx('rich'))$$,
	'PT404', 'Service not found or inactive', 'a serviceId that cannot exist (a slug, a cuid) is an unknown service: 404');
SELECT is(pg_temp.err_fields($$SELECT api.subscriptions_create('[1]', pg_temp.ctx('rich'))$$),
	ARRAY[''], 'a body that is not an object is PT400');
SELECT throws_ok($$SELECT api.subscriptions_create('{"serviceId": "00000000-0000-4000-8000-0000005b0cff"}', pg_temp.ctx('rich'))$$,
	'PT404', 'Service not found or inactive', 'an unknown service is PT404');
SELECT throws_ok($$SELECT api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('off')), pg_temp.ctx('rich'))$$,
	'PT404', 'Service not found or inactive', 'an inactive service is PT404');

-- short wallet: 402 and nothing written
CREATE TEMP TABLE before_poor AS SELECT
	(SELECT count(*) FROM paas.invoices WHERE user_id = pg_temp.uid('poor')) AS invoices,
	(SELECT count(*) FROM paas.ledger_entries) AS entries;
SELECT throws_ok($$SELECT api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('paid')), pg_temp.ctx('poor'))$$,
	'PT402', 'Insufficient balance', 'a short wallet is PT402');
SELECT is((SELECT count(*) FROM paas.subscriptions WHERE user_id = pg_temp.uid('poor')), 0::bigint,
	'PT402: no subscription was created');
SELECT ok((SELECT invoices = (SELECT count(*) FROM paas.invoices WHERE user_id = pg_temp.uid('poor'))
				  AND entries = (SELECT count(*) FROM paas.ledger_entries) FROM before_poor),
	'PT402: no invoice and no ledger entry');

CREATE TEMP TABLE r AS SELECT api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('paid')),
	pg_temp.ctx('rich') || '{"idempotencyKey": "pgtap-sale-1"}') AS j;
SELECT is((SELECT j ->> 'status' FROM r), 'ACTIVE', 'the sale is ACTIVE');
SELECT is((SELECT (j ->> 'price')::bigint FROM r), 25000::bigint, 'at the list price');
SELECT is((SELECT (j ->> 'balanceAfter')::bigint FROM r), 75000::bigint, 'the wallet was debited');
SELECT is(paas.wallet_balance(pg_temp.uid('rich')), 75000::bigint, 'the wallet balance is 75,000');
SELECT is((SELECT (pg_temp.sub('rich', 'paid')).current_period_end), paas.subscription_bound(now(), 1),
	'the period ends one calendar month after the sale');
SELECT is((SELECT count(*) FROM paas.ledger_entries e WHERE e.kind = 'subscription_charge'
			AND e.ref ->> 'subscriptionId' = (SELECT j ->> 'id' FROM r) AND (e.ref ->> 'period')::int = 1),
	1::bigint, 'one ledger entry subscription_charge with the subscription in ref');
SELECT is((SELECT array_agg(p.amount ORDER BY p.amount) FROM paas.ledger_postings p JOIN paas.ledger_entries e ON e.id = p.entry_id
			WHERE e.ref ->> 'subscriptionId' = (SELECT j ->> 'id' FROM r)),
	ARRAY[-25000, 25000]::bigint[], 'the entry moves 25,000 from the wallet to revenue');
SELECT is((SELECT count(*) FROM paas.invoices i WHERE i.kind = 'SUBSCRIPTION' AND i.amount = 25000
			AND i.ref ->> 'subscriptionId' = (SELECT j ->> 'id' FROM r)),
	1::bigint, 'one SUBSCRIPTION invoice of 25,000');
SELECT is((SELECT j #>> '{charge,invoice,invoiceNumber}' FROM r) ~ '^INV-[0-9]{6}-[0-9]{6,}$', true,
	'the reply carries the invoice number');
SELECT is((SELECT j -> 'replayed' FROM r), 'false'::jsonb, 'a first request is not a replay');

-- the same Idempotency-Key again: the same subscription, no second charge
SELECT is(api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('paid')),
		pg_temp.ctx('rich') || '{"idempotencyKey": "pgtap-sale-1"}') ->> 'id',
	(SELECT j ->> 'id' FROM r), 'a double submit answers the first subscription');
SELECT is(paas.wallet_balance(pg_temp.uid('rich')), 75000::bigint, 'a double submit charges once');
SELECT is((SELECT count(*) FROM paas.subscriptions WHERE user_id = pg_temp.uid('rich')), 1::bigint,
	'a double submit creates one subscription');
SELECT throws_ok($$SELECT api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('cheap')),
		pg_temp.ctx('rich') || '{"idempotencyKey": "pgtap-sale-1"}')$$,
	'PT409', NULL, 'the key reused for another service is PT409');
SELECT throws_ok($$SELECT api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('paid')), pg_temp.ctx('rich'))$$,
	'PT409', 'You already have a subscription to this service', 'a second live subscription is PT409');

-- a free service: no entry, no invoice
SELECT is(api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('free')), pg_temp.ctx('poor')) ->> 'status',
	'ACTIVE', 'a free service is subscribed with an empty wallet');
SELECT is((SELECT amount FROM paas.subscription_charges WHERE subscription_id = (pg_temp.sub('poor', 'free')).id),
	0::bigint, 'its charge row is of 0, without ledger entry or invoice');

-- the catalog cannot delete a service in use
SELECT throws_ok($$SELECT api.services_delete(jsonb_build_object('id', pg_temp.svc('paid')), pg_temp.ctx('admin'))$$,
	'PT409', NULL, 'the catalog refuses to delete a subscribed service');

------------------------------------------------------------------------------
-- reading
------------------------------------------------------------------------------
SELECT is((SELECT jsonb_array_length(api.subscriptions_list('{}', pg_temp.ctx('rich')) -> 'data')), 1,
	'the owner lists their subscription');
SELECT is((api.subscriptions_list('{"status": "EXPIRED"}', pg_temp.ctx('rich')) #>> '{pagination,total}')::int, 0,
	'the status filter applies');
SELECT is((SELECT array_agg((api.subscriptions_list(jsonb_build_object('serviceId', f), pg_temp.ctx('rich')) #>> '{pagination,total}')::int ORDER BY f)
			 FROM unnest(ARRAY[pg_temp.svc('paid'), 'cmdde35wt000011j5yxb0eekx']) f),
	ARRAY[1, 0], 'the serviceId filter applies; an id that cannot exist matches nothing (not a 400)');
SELECT is(pg_temp.err_fields($$SELECT api.subscriptions_list('{"status": "LIVE", "page": 0}', pg_temp.ctx('rich'))$$),
	ARRAY['page', 'status'], 'bad filters are field errors, all of them');
SELECT is(api.subscriptions_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM r)), pg_temp.ctx('rich')) #>> '{charges,0,period}',
	'1', 'the detail lists the paid periods');
SELECT throws_ok($$SELECT api.subscriptions_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM r)), pg_temp.ctx('poor'))$$,
	'PT404', 'Subscription not found', 'another user''s subscription is PT404');
SELECT throws_ok($$SELECT api.subscriptions_get('{"id": "not-a-uuid"}', pg_temp.ctx('rich'))$$,
	'PT404', NULL, 'a malformed id is PT404');
SELECT is((api.subscriptions_stats('{}', pg_temp.ctx('rich')) ->> 'activeCount')::int, 1, 'stats: one active');
SELECT is((api.subscriptions_stats('{}', pg_temp.ctx('rich')) ->> 'monthlySpend')::bigint, 25000::bigint,
	'stats: monthly spend');
SELECT is(jsonb_array_length(api.subscriptions_stats('{}', pg_temp.ctx('rich')) -> 'nextRenewals'), 1,
	'stats: the next renewal');

------------------------------------------------------------------------------
-- renew now, cancel
------------------------------------------------------------------------------
CREATE TEMP TABLE rn AS SELECT api.subscriptions_renew(jsonb_build_object('id', (SELECT j ->> 'id' FROM r)),
	pg_temp.ctx('rich') || '{"idempotencyKey": "pgtap-renew-1"}') AS j;
SELECT is((SELECT (j ->> 'periodNumber')::int FROM rn), 2, 'an early renewal pays period 2');
SELECT is((SELECT (pg_temp.sub('rich', 'paid')).current_period_end), paas.subscription_bound(now(), 2),
	'period 2 ends two months after the sale');
SELECT is(paas.wallet_balance(pg_temp.uid('rich')), 50000::bigint, 'the renewal was charged');
SELECT is(api.subscriptions_renew(jsonb_build_object('id', (SELECT j ->> 'id' FROM r)),
		pg_temp.ctx('rich') || '{"idempotencyKey": "pgtap-renew-1"}') -> 'replayed',
	'true'::jsonb, 'a renew retried with its key is a replay');
SELECT is(paas.wallet_balance(pg_temp.uid('rich')), 50000::bigint, 'the replay charged nothing');
SELECT throws_ok($$SELECT api.subscriptions_renew(jsonb_build_object('id', (SELECT j ->> 'id' FROM r)), pg_temp.ctx('poor'))$$,
	'PT404', NULL, 'renewing another user''s subscription is PT404');
SELECT is(pg_temp.err_fields($$SELECT api.subscriptions_cancel(jsonb_build_object('id', (SELECT j ->> 'id' FROM r), 'reason', repeat('x', 501)), pg_temp.ctx('rich'))$$),
	ARRAY['reason'], 'a cancel reason is at most 500 characters');
SELECT is(api.subscriptions_cancel(jsonb_build_object('id', (SELECT j ->> 'id' FROM r)), pg_temp.ctx('rich')) ->> 'status',
	'CANCELLED', 'cancel: CANCELLED until the period ends');
SELECT is((SELECT (pg_temp.sub('rich', 'paid')).current_period_end), paas.subscription_bound(now(), 2),
	'cancel keeps the paid period');
SELECT is(paas.wallet_balance(pg_temp.uid('rich')), 50000::bigint, 'cancel refunds nothing');
SELECT throws_ok($$SELECT api.subscriptions_cancel(jsonb_build_object('id', (SELECT j ->> 'id' FROM r)), pg_temp.ctx('rich'))$$,
	'PT409', NULL, 'cancelling twice is PT409');
SELECT is(api.subscriptions_renew(jsonb_build_object('id', (SELECT j ->> 'id' FROM r)), pg_temp.ctx('rich')) ->> 'status',
	'ACTIVE', 'renewing a cancelled subscription within its period resumes it');
SELECT is((SELECT (pg_temp.sub('rich', 'paid')).period_no), 3, 'and pays period 3 of the same anchor');

------------------------------------------------------------------------------
-- the renewal run
------------------------------------------------------------------------------
-- rich: due, can pay
SELECT pg_temp.make_due((pg_temp.sub('rich', 'paid')).id);
SELECT is((api.run_renewals() ->> 'renewed')::int >= 1, true, 'the run renews what is due');
SELECT is((SELECT (pg_temp.sub('rich', 'paid')).period_no), 2, 'the due subscription is in period 2');
SELECT is((SELECT (pg_temp.sub('rich', 'paid')).current_period_end),
	paas.subscription_bound(now() - interval '1 month 1 hour', 2), 'period 2 ends at anchor + 2 months');
SELECT is(paas.wallet_balance(pg_temp.uid('rich')), 0::bigint, 'the run charged the price sold');
CREATE TEMP TABLE rc AS SELECT c.* FROM paas.subscription_charges c
 WHERE c.subscription_id = (SELECT (j ->> 'id')::uuid FROM r) AND c.period_no = 2 AND c.kind = 'renewal';
SELECT is((SELECT count(*) FROM rc JOIN paas.ledger_entries e ON e.id = rc.entry_id
			WHERE e.kind = 'subscription_renewal' AND e.ref ->> 'subscriptionId' = rc.subscription_id::text
			  AND e.ref ->> 'period' = '2'), 1::bigint, 'the renewal is one ledger entry subscription_renewal');
SELECT is((SELECT count(*) FROM rc JOIN paas.invoices i ON i.id = rc.invoice_id
			WHERE i.kind = 'SUBSCRIPTION' AND i.amount = 25000 AND i.ref ->> 'entryId' = rc.entry_id::text),
	1::bigint, 'with an invoice pointing at the entry');
SELECT is((SELECT i.number FROM rc JOIN paas.invoices i ON i.id = rc.invoice_id) ~ '^INV-[0-9]{6}-[0-9]{6,}$', true,
	'numbered in the invoice series');
SELECT is((SELECT count(*) FROM paas.invoices i WHERE i.number IN (
			SELECT number FROM paas.invoices GROUP BY number HAVING count(*) > 1)), 0::bigint,
	'invoice numbers stay unique');
SELECT is((api.run_renewals() ->> 'renewed')::int, 0, 'running it again renews nothing');
SELECT is(paas.wallet_balance(pg_temp.uid('rich')), 0::bigint, 'and charges nothing');

-- grace: due with 25,000 for a 25,000 + 10,000 bill
SELECT api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('cheap')), pg_temp.ctx('grace'));
SELECT pg_temp.fund('grace', 15000);
SELECT api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('paid')), pg_temp.ctx('grace'));
SELECT pg_temp.make_due((pg_temp.sub('grace', 'paid')).id);
SELECT is(paas.wallet_balance(pg_temp.uid('grace')), 5000::bigint, 'grace user: 5,000 left');
SELECT api.run_renewals();
SELECT is((SELECT (pg_temp.sub('grace', 'paid')).status), 'GRACE', 'a short wallet moves the subscription to GRACE');
SELECT is((SELECT (pg_temp.sub('grace', 'paid')).grace_until),
	(SELECT (pg_temp.sub('grace', 'paid')).current_period_end) + interval '3 days', 'grace lasts 3 days by default');
SELECT is(paas.wallet_balance(pg_temp.uid('grace')), 5000::bigint, 'nothing was charged');
SELECT is((SELECT count(*) FROM paas.subscription_events WHERE subscription_id = (pg_temp.sub('grace', 'paid')).id
			AND event = 'payment_failed' AND to_status = 'GRACE'), 1::bigint, 'the change is recorded');
SELECT is((SELECT count(*) FROM reporting.subscription_notices WHERE subscription_id = (pg_temp.sub('grace', 'paid')).id
			AND notice = 'grace'), 1::bigint, 'the notices view lists it as grace');
SELECT api.run_renewals();
SELECT is((SELECT (pg_temp.sub('grace', 'paid')).status), 'GRACE', 'still short: still in GRACE');
-- a top-up during grace: the next run renews, anchored on the old period
SELECT pg_temp.fund('grace', 20000);
SELECT api.run_renewals();
SELECT is((SELECT (pg_temp.sub('grace', 'paid')).status), 'ACTIVE', 'after a top-up the next run renews it');
SELECT is((SELECT (pg_temp.sub('grace', 'paid')).current_period_start),
	paas.subscription_bound(now() - interval '1 month 1 hour', 1), 'the new period starts where the old one ended');
SELECT is((SELECT (pg_temp.sub('grace', 'paid')).grace_until), NULL, 'grace_until is cleared');
SELECT is(paas.wallet_balance(pg_temp.uid('grace')), 0::bigint, 'the renewal took 25,000');

-- grace runs out: SUSPENDED, a top-up does not charge arrears, a renew revives
SELECT pg_temp.make_due((pg_temp.sub('grace', 'cheap')).id);
SELECT api.run_renewals();
SELECT is((SELECT (pg_temp.sub('grace', 'cheap')).status), 'GRACE', 'the cheap one enters GRACE');
UPDATE paas.subscriptions SET grace_until = now() - interval '1 minute' WHERE id = (pg_temp.sub('grace', 'cheap')).id;
SELECT is((api.run_renewals() ->> 'suspended')::int, 1, 'the run reports one suspension');
SELECT is((SELECT (pg_temp.sub('grace', 'cheap')).status), 'SUSPENDED', 'grace over unpaid: SUSPENDED');
SELECT is((SELECT count(*) FROM reporting.subscription_notices WHERE subscription_id = (pg_temp.sub('grace', 'cheap')).id
			AND notice = 'suspended'), 1::bigint, 'the notices view lists it as suspended');
SELECT pg_temp.fund('grace', 30000);
SELECT api.run_renewals();
SELECT is((SELECT (pg_temp.sub('grace', 'cheap')).status), 'SUSPENDED', 'a top-up does not silently revive it');
SELECT is(paas.wallet_balance(pg_temp.uid('grace')), 30000::bigint, 'nor charge arrears');
CREATE TEMP TABLE rv AS SELECT api.subscriptions_renew(jsonb_build_object('id', (pg_temp.sub('grace', 'cheap')).id), pg_temp.ctx('grace')) AS j;
SELECT is((SELECT j ->> 'status' FROM rv), 'ACTIVE', 'the owner revives it with a renew');
SELECT is((SELECT (pg_temp.sub('grace', 'cheap')).current_period_end), paas.subscription_bound(now(), 1),
	'a revival starts a new anchor at now');
SELECT is((SELECT j #>> '{charge,kind}' FROM rv), 'revival', 'recorded as a revival');
SELECT is(paas.wallet_balance(pg_temp.uid('grace')), 20000::bigint, 'the revival charged one period');

-- cancelled and due: EXPIRED, then a new sale is possible
SELECT api.subscriptions_cancel(jsonb_build_object('id', (pg_temp.sub('grace', 'cheap')).id), pg_temp.ctx('grace'));
SELECT pg_temp.make_due((pg_temp.sub('grace', 'cheap')).id);
SELECT api.run_renewals();
SELECT is((SELECT (pg_temp.sub('grace', 'cheap')).status), 'EXPIRED', 'a cancelled period that ended is EXPIRED');
SELECT is(paas.wallet_balance(pg_temp.uid('grace')), 20000::bigint, 'expiry charges nothing');
SELECT is(api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('cheap')), pg_temp.ctx('grace')) ->> 'status',
	'ACTIVE', 'after expiry the user can subscribe again');

-- three periods behind (the job did not run for months): caught up in order
SELECT pg_temp.fund('poor', 75000);
SELECT api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('cheap')), pg_temp.ctx('poor'));
UPDATE paas.subscriptions
   SET anchor_at = now() - interval '3 months 1 hour', current_period_start = now() - interval '3 months 1 hour',
	   current_period_end = paas.subscription_bound(now() - interval '3 months 1 hour', 1)
 WHERE id = (pg_temp.sub('poor', 'cheap')).id;
SELECT is((api.run_renewals() ->> 'renewed')::int, 3, 'a run charges every period that has ended, in order');
SELECT is((SELECT (pg_temp.sub('poor', 'cheap')).period_no), 4, 'the subscription is in period 4');
SELECT ok((SELECT (pg_temp.sub('poor', 'cheap')).current_period_end) > now(), 'and paid up to a future date');
SELECT is(paas.wallet_balance(pg_temp.uid('poor')), 35000::bigint, 'three periods were charged');

-- a grace period of 0 (settings row): short -> SUSPENDED in one run
UPDATE paas.subscription_settings SET grace_period = '0';
SELECT pg_temp.make_due((pg_temp.sub('grace', 'paid')).id);
SELECT api.run_renewals();
SELECT is((SELECT (pg_temp.sub('grace', 'paid')).status), 'SUSPENDED',
	'with grace_period 0 a short renewal suspends at once');
UPDATE paas.subscription_settings SET grace_period = '3 days';

------------------------------------------------------------------------------
-- administrators
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT api.subscriptions_admin_list('{}', pg_temp.ctx('rich'))$$, 'PT403', NULL,
	'a user cannot list every subscription');
SELECT is((api.subscriptions_admin_list(jsonb_build_object('userId', pg_temp.uid('grace')), pg_temp.ctx('admin'))
			#>> '{pagination,total}')::int, 3, 'an admin lists a user''s subscriptions');
SELECT throws_ok($$SELECT api.subscriptions_admin_list('{"userId": "00000000-0000-4000-8000-0000005b0bff"}', pg_temp.ctx('admin'))$$,
	'PT404', 'User not found', 'an unknown user is PT404');
SELECT is(pg_temp.err_fields($$SELECT api.subscriptions_admin_set_status(jsonb_build_object('id', (SELECT j ->> 'id' FROM r), 'status', 'GRACE'), pg_temp.ctx('admin'))$$),
	ARRAY['reason', 'status'], 'status must be an admin status and a reason is required');
SELECT is(api.subscriptions_admin_set_status(jsonb_build_object('id', (SELECT j ->> 'id' FROM r), 'status', 'SUSPENDED',
		'reason', 'abuse report'), pg_temp.ctx('admin')) ->> 'status', 'SUSPENDED', 'an admin suspends with a reason');
SELECT is((SELECT reason FROM paas.subscription_events WHERE subscription_id = (SELECT (j ->> 'id')::uuid FROM r)
			ORDER BY id DESC LIMIT 1), 'abuse report', 'the reason is recorded');
SELECT is((SELECT actor_id FROM paas.subscription_events WHERE subscription_id = (SELECT (j ->> 'id')::uuid FROM r)
			ORDER BY id DESC LIMIT 1), pg_temp.uid('admin'), 'with the administrator');
SELECT is(api.subscriptions_admin_set_status(jsonb_build_object('id', (SELECT j ->> 'id' FROM r), 'status', 'EXPIRED',
		'reason', 'closed'), pg_temp.ctx('admin')) ->> 'status', 'EXPIRED', 'an admin expires it');
SELECT throws_ok($$SELECT api.subscriptions_admin_set_status(jsonb_build_object('id', (SELECT j ->> 'id' FROM r), 'status', 'ACTIVE', 'reason', 'undo'), pg_temp.ctx('admin'))$$,
	'PT409', NULL, 'EXPIRED -> ACTIVE by an admin is illegal (PT409)');
SELECT throws_ok($$SELECT api.subscriptions_admin_set_status('{"id": "00000000-0000-4000-8000-0000005b0bff", "status": "ACTIVE", "reason": "x y z"}', pg_temp.ctx('admin'))$$,
	'PT404', NULL, 'an unknown subscription is PT404');
SELECT ok(jsonb_array_length(api.subscriptions_admin_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM r)), pg_temp.ctx('admin')) -> 'events') >= 4,
	'the admin detail shows the status history');
SELECT ok((api.subscriptions_admin_stats('{}', pg_temp.ctx('admin')) #>> '{byStatus,SUSPENDED}')::int >= 1,
	'admin stats count subscriptions by status');
SELECT ok((SELECT bool_or(e ->> 'serviceId' = pg_temp.svc('cheap'))
			 FROM jsonb_array_elements(api.subscriptions_admin_stats('{}', pg_temp.ctx('admin')) -> 'byService') e),
	'admin stats count subscriptions by service');
SELECT ok((SELECT bool_or(e ->> 'subscriptionId' = (pg_temp.sub('grace', 'paid')).id::text)
			 FROM jsonb_array_elements(api.subscriptions_admin_notices('{"notice": "suspended", "limit": 100}', pg_temp.ctx('admin')) -> 'data') e),
	'admin notices list the suspended subscription');
SELECT is(pg_temp.err_fields($$SELECT api.subscriptions_admin_notices('{"notice": "late"}', pg_temp.ctx('admin'))$$),
	ARRAY['notice'], 'an unknown notice kind is a field error');

------------------------------------------------------------------------------
-- deactivated and deleted accounts: their live subscriptions are cancelled at
-- period end (paas.subscriptions_cancel_for_users, called by 11_auth.sql and 12_user_admin.sql)
------------------------------------------------------------------------------
INSERT INTO paas.users (id, email, name, password_hash) VALUES
	('00000000-0000-4000-8000-0000005b0d01', 'sub.closer.self@pgtap.test', 'Self Closer', 'x'),
	('00000000-0000-4000-8000-0000005b0d02', 'sub.closer.toggle@pgtap.test', 'Toggled Closer', 'x'),
	('00000000-0000-4000-8000-0000005b0d03', 'sub.closer.update@pgtap.test', 'Updated Closer', 'x'),
	('00000000-0000-4000-8000-0000005b0d04', 'sub.closer.delete@pgtap.test', 'Deleted Closer', 'x'),
	('00000000-0000-4000-8000-0000005b0d05', 'sub.closer.bulk1@pgtap.test', 'Bulk Deactivated', 'x'),
	('00000000-0000-4000-8000-0000005b0d06', 'sub.closer.bulk2@pgtap.test', 'Bulk Deleted', 'x'),
	('00000000-0000-4000-8000-0000005b0d07', 'sub.closer.role@pgtap.test', 'Role Changed', 'x');
-- a subscription of user u to service svc in status st (GRACE and SUSPENDED
-- ones are past their period end, as the renewal run leaves them)
CREATE FUNCTION pg_temp.mk(u text, svc text, st text) RETURNS uuid LANGUAGE sql AS $$
	INSERT INTO paas.subscriptions (user_id, service_id, status, price, anchor_at, current_period_start,
									current_period_end, grace_until, ended_at)
	SELECT u::uuid, pg_temp.svc(svc)::uuid, st, 1000, b, b, paas.subscription_bound(b, 1),
		   CASE WHEN st = 'GRACE' THEN now() + interval '2 days' END,
		   CASE WHEN st = 'EXPIRED' THEN now() - interval '1 day' END
	  FROM (SELECT CASE WHEN st IN ('GRACE', 'SUSPENDED') THEN now() - interval '1 month 1 day'
						ELSE now() - interval '10 days' END AS b) x
	RETURNING id $$;
CREATE FUNCTION pg_temp.statuses(u text) RETURNS text[] LANGUAGE sql AS $$
	SELECT array_agg(status ORDER BY service_id) FROM paas.subscriptions WHERE user_id = u::uuid $$;
SELECT pg_temp.mk('00000000-0000-4000-8000-0000005b0d01', 'paid', 'ACTIVE'),
	   pg_temp.mk('00000000-0000-4000-8000-0000005b0d01', 'free', 'GRACE'),
	   pg_temp.mk('00000000-0000-4000-8000-0000005b0d01', 'off', 'SUSPENDED'),
	   pg_temp.mk('00000000-0000-4000-8000-0000005b0d01', 'cheap', 'EXPIRED');
SELECT pg_temp.mk(u, 'paid', 'ACTIVE') FROM unnest(ARRAY['00000000-0000-4000-8000-0000005b0d02',
	'00000000-0000-4000-8000-0000005b0d03', '00000000-0000-4000-8000-0000005b0d04',
	'00000000-0000-4000-8000-0000005b0d05', '00000000-0000-4000-8000-0000005b0d06',
	'00000000-0000-4000-8000-0000005b0d07']) u;
SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup',
	'postings', jsonb_build_array(
		jsonb_build_object('account', paas.wallet_account('00000000-0000-4000-8000-0000005b0d01'), 'amount', 5000),
		jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -5000)))));

SELECT lives_ok($$SELECT api.auth_delete_account('{}', '{"userId": "00000000-0000-4000-8000-0000005b0d01"}')$$,
	'an owner deactivates their account');
SELECT is(pg_temp.statuses('00000000-0000-4000-8000-0000005b0d01'), ARRAY['CANCELLED', 'CANCELLED', 'CANCELLED', 'EXPIRED'],
	'self-deactivation cancels the ACTIVE, GRACE and SUSPENDED subscriptions, the EXPIRED one stays');
SELECT is((SELECT array_agg(e.from_status ORDER BY e.from_status) FROM paas.subscription_events e
			 JOIN paas.subscriptions s ON s.id = e.subscription_id
			WHERE s.user_id = '00000000-0000-4000-8000-0000005b0d01' AND e.event = 'cancel'
			  AND e.to_status = 'CANCELLED' AND e.reason = 'account deactivated by its owner'
			  AND e.actor_id = '00000000-0000-4000-8000-0000005b0d01'),
	ARRAY['ACTIVE', 'GRACE', 'SUSPENDED'], 'each cancel is an event with the reason and the owner as actor');
SELECT ok((SELECT bool_and(cancelled_at IS NOT NULL AND grace_until IS NULL
						   AND status_reason = 'account deactivated by its owner')
			 FROM paas.subscriptions WHERE user_id = '00000000-0000-4000-8000-0000005b0d01' AND status = 'CANCELLED'),
	'cancelled with the reason, grace dropped');
SELECT ok((SELECT current_period_end > now() FROM paas.subscriptions
			WHERE user_id = '00000000-0000-4000-8000-0000005b0d01' AND service_id = pg_temp.svc('paid')::uuid),
	'the paid period is still served (cancel at period end)');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-0000005b0d01'), 5000::bigint, 'no refund, no charge');
SELECT pg_temp.make_due(id) FROM paas.subscriptions
 WHERE user_id = '00000000-0000-4000-8000-0000005b0d01' AND service_id = pg_temp.svc('paid')::uuid;
SELECT ok((api.run_renewals() ->> 'examined')::int >= 3, 'a renewal run after the period end');
SELECT is(pg_temp.statuses('00000000-0000-4000-8000-0000005b0d01'), ARRAY['EXPIRED', 'EXPIRED', 'EXPIRED', 'EXPIRED'],
	'expires them');
SELECT is((SELECT count(*) FROM paas.subscription_charges c JOIN paas.subscriptions s ON s.id = c.subscription_id
			WHERE s.user_id = '00000000-0000-4000-8000-0000005b0d01'), 0::bigint, 'and charges nothing');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-0000005b0d01'), 5000::bigint, 'the funded wallet is untouched');

SELECT is(api.users_toggle_status('{"id": "00000000-0000-4000-8000-0000005b0d02"}', pg_temp.ctx('admin')) ->> 'isActive',
	'false', 'an admin toggles an account inactive');
SELECT is(pg_temp.statuses('00000000-0000-4000-8000-0000005b0d02'), ARRAY['CANCELLED'], 'its subscription is cancelled');
SELECT is((SELECT e.actor_id FROM paas.subscription_events e JOIN paas.subscriptions s ON s.id = e.subscription_id
			WHERE s.user_id = '00000000-0000-4000-8000-0000005b0d02' AND e.event = 'cancel'
			  AND e.reason = 'account deactivated by an administrator'), pg_temp.uid('admin'),
	'recorded with the administrator and the reason');
SELECT is(api.users_toggle_status('{"id": "00000000-0000-4000-8000-0000005b0d02"}', pg_temp.ctx('admin')) ->> 'isActive',
	'true', 'and toggles it back');
SELECT is(pg_temp.statuses('00000000-0000-4000-8000-0000005b0d02'), ARRAY['CANCELLED'], 'reactivation does not revive it');

SELECT is(api.users_update('{"id": "00000000-0000-4000-8000-0000005b0d03", "isActive": false}', pg_temp.ctx('admin')) ->> 'isActive',
	'false', 'an admin update deactivates an account');
SELECT is(pg_temp.statuses('00000000-0000-4000-8000-0000005b0d03'), ARRAY['CANCELLED'], 'its subscription is cancelled');
SELECT lives_ok($$SELECT api.users_delete('{"id": "00000000-0000-4000-8000-0000005b0d04"}', pg_temp.ctx('admin'))$$,
	'an admin deletes an account');
SELECT is((SELECT status || ': ' || status_reason FROM paas.subscriptions WHERE user_id = '00000000-0000-4000-8000-0000005b0d04'),
	'CANCELLED: account deleted by an administrator', 'its subscription is cancelled');
SELECT is(api.users_bulk('{"action": "deactivate", "ids": ["00000000-0000-4000-8000-0000005b0d05"]}', pg_temp.ctx('admin')) ->> 'affected',
	'1', 'bulk deactivate');
SELECT is(api.users_bulk('{"action": "delete", "ids": ["00000000-0000-4000-8000-0000005b0d06"]}', pg_temp.ctx('admin')) ->> 'affected',
	'1', 'bulk delete');
SELECT is(ARRAY(SELECT status || ': ' || status_reason FROM paas.subscriptions
				 WHERE user_id IN ('00000000-0000-4000-8000-0000005b0d05', '00000000-0000-4000-8000-0000005b0d06')
				 ORDER BY user_id),
	ARRAY['CANCELLED: account deactivated by an administrator (bulk)', 'CANCELLED: account deleted by an administrator (bulk)'],
	'cancel the subscriptions of the accounts, with the reason');
SELECT is(api.users_bulk('{"action": "activate", "ids": ["00000000-0000-4000-8000-0000005b0d05"]}', pg_temp.ctx('admin')) ->> 'affected',
	'1', 'bulk activate');
SELECT is(api.users_bulk('{"action": "set-role", "role": "USER", "ids": ["00000000-0000-4000-8000-0000005b0d07"]}', pg_temp.ctx('admin')) ->> 'affected',
	'1', 'bulk set-role');
SELECT is(pg_temp.statuses('00000000-0000-4000-8000-0000005b0d05') || pg_temp.statuses('00000000-0000-4000-8000-0000005b0d07'),
	ARRAY['CANCELLED', 'ACTIVE'], 'activate revives nothing, other bulk actions cancel nothing');
SELECT is(paas.subscriptions_cancel_for_users(ARRAY['00000000-0000-4000-8000-0000005b0d05'::uuid], 'again'), 0,
	'cancelling again finds nothing live');

SELECT is_empty($$SELECT * FROM reporting.ledger_check WHERE account_id IN (
	SELECT id FROM paas.ledger_accounts WHERE user_id IN (pg_temp.uid('rich'), pg_temp.uid('grace'), pg_temp.uid('poor')))$$,
	'the ledger of the test wallets is sound');

-- the invoice ids a caller draws (the renewal run) must be one per item
SELECT throws_ok($$SELECT * FROM paas.issue_invoice_items(
		ARRAY[ROW((SELECT id FROM paas.users ORDER BY created_at LIMIT 1), 'SUBSCRIPTION', 1000, '{}',
				  NULL)::paas.invoice_item],
		ARRAY[gen_random_uuid(), gen_random_uuid()])$$,
	'22023', '2 invoice ids for 1 invoice items', 'issue_invoice_items: as many ids as items');

SELECT finish();
ROLLBACK;
