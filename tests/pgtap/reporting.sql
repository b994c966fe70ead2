-- reporting: the finance views of sql/parts/85_reporting.sql, read by the
-- BI role, against figures made here through the real functions.
BEGIN;
SELECT plan(16);

INSERT INTO paas.users (id, email, name, password_hash) VALUES
	('00000000-0000-4000-8000-0000008e0b01', 'bi-one@pgtap.test', 'BI One', 'x'),
	('00000000-0000-4000-8000-0000008e0b02', 'bi-two@pgtap.test', 'BI Two', 'x');
INSERT INTO paas.services (id, name, display_name, description, docker_image, monthly_price) VALUES
	('00000000-0000-4000-8000-0000008e0c01', 'pgtap-bi-a', 'BI A', 'a service for the BI test', 'nginx:1', 30000),
	('00000000-0000-4000-8000-0000008e0c02', 'pgtap-bi-b', 'BI B', 'a service for the BI test', 'nginx:1', 12000);
SELECT paas.ledger_post(NULL, (SELECT jsonb_agg(jsonb_build_object('kind', 'topup',
	'postings', jsonb_build_array(
		jsonb_build_object('account', paas.wallet_account(u), 'amount', 100000),
		jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -100000))))
	FROM unnest(ARRAY['00000000-0000-4000-8000-0000008e0b01', '00000000-0000-4000-8000-0000008e0b02']::uuid[]) u));

CREATE TEMP TABLE before_liability AS SELECT * FROM reporting.wallet_liability;
CREATE TEMP TABLE before_churn AS SELECT * FROM reporting.churn_monthly;
SELECT lives_ok($$SELECT api.subscriptions_create('{"serviceId": "00000000-0000-4000-8000-0000008e0c01"}',
	'{"userId": "00000000-0000-4000-8000-0000008e0b01"}')$$, 'one buys A');
SELECT lives_ok($$SELECT api.subscriptions_create('{"serviceId": "00000000-0000-4000-8000-0000008e0c01"}',
	'{"userId": "00000000-0000-4000-8000-0000008e0b02"}')$$, 'two buys A');
SELECT lives_ok($$SELECT api.subscriptions_create('{"serviceId": "00000000-0000-4000-8000-0000008e0c02"}',
	'{"userId": "00000000-0000-4000-8000-0000008e0b02"}')$$, 'two buys B');

-- revenue per month and service
SELECT is((SELECT sum(revenue)::bigint FROM reporting.revenue_monthly
			WHERE service_id = '00000000-0000-4000-8000-0000008e0c01'), 60000::bigint,
	'revenue of A: two sales of 30,000');
SELECT is((SELECT array_agg(DISTINCT kind) FROM reporting.revenue_monthly
			WHERE service_id = '00000000-0000-4000-8000-0000008e0c02'), ARRAY['subscription_charge'],
	'revenue of B comes from its sale');
SELECT is((SELECT month FROM reporting.revenue_monthly WHERE service_id = '00000000-0000-4000-8000-0000008e0c02'),
	date_trunc('month', now() AT TIME ZONE 'UTC')::date, 'dated in the UTC month of the sale');
SELECT is((SELECT sum(revenue)::bigint FROM reporting.revenue_monthly),
	(SELECT sum(revenue)::bigint FROM reporting.daily_revenue), 'months add up to the days');

-- subscriptions and MRR
SELECT is((SELECT row(active, in_grace, mrr)::text FROM reporting.subscriptions_by_service
			WHERE service_id = '00000000-0000-4000-8000-0000008e0c01'), '(2,0,60000)', 'A: two active, MRR 60,000');
SELECT lives_ok($$SELECT api.subscriptions_cancel(jsonb_build_object('id',
		(SELECT id FROM paas.subscriptions WHERE user_id = '00000000-0000-4000-8000-0000008e0b02'
		   AND service_id = '00000000-0000-4000-8000-0000008e0c01')),
	'{"userId": "00000000-0000-4000-8000-0000008e0b02"}')$$, 'two cancels A at period end');
SELECT is((SELECT row(active, cancelling, mrr)::text FROM reporting.subscriptions_by_service
			WHERE service_id = '00000000-0000-4000-8000-0000008e0c01'), '(1,1,30000)',
	'a cancelled subscription runs on but no longer counts in MRR');

-- churn: this month started three more
SELECT is((SELECT started FROM reporting.churn_monthly WHERE month = date_trunc('month', now() AT TIME ZONE 'UTC')::date)
		  - coalesce((SELECT started FROM before_churn WHERE month = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0),
	3::bigint, 'three subscriptions started this month');
SELECT ok((SELECT bool_and(churn_rate IS NULL OR churn_rate BETWEEN 0 AND 1) FROM reporting.churn_monthly),
	'churn rates are fractions');

-- the wallets' liability: what was paid in minus what was spent
SELECT is((SELECT outstanding FROM reporting.wallet_liability) - (SELECT outstanding FROM before_liability),
	-72000::bigint, 'spending 72,000 of prepaid credit lowers the liability by as much');
SELECT is((SELECT outstanding FROM reporting.wallet_liability),
	(SELECT sum(balance)::bigint FROM reporting.balances WHERE kind = 'wallet'), 'liability = the sum of wallet balances');

-- what the BI role may and may not read
SET LOCAL ROLE paas_bi;
SELECT lives_ok($$SELECT * FROM reporting.revenue_monthly, reporting.topups_monthly LIMIT 1$$,
	'paas_bi reads the finance views');
SELECT throws_ok($$SELECT * FROM paas.users$$, '42501', NULL, 'paas_bi reads no table');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
