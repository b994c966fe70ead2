-- renewal_cron: the pg_cron job of the subscription renewal
-- (api.subscriptions_schedule_renewals, api.run_renewals): who may call
-- them, the job in cron.job, rescheduling without a second job, and one run
-- of the job's command as pg_cron runs it (as the job's user) renewing a due
-- subscription.
BEGIN;
SELECT plan(17);

SELECT has_extension('pg_cron', 'pg_cron is installed in the database');
SELECT ok(NOT has_function_privilege('paas_api', 'api.run_renewals()', 'EXECUTE'),
	'the gateway role cannot run renewals');
SELECT ok(has_function_privilege('paas_owner', 'api.run_renewals()', 'EXECUTE'),
	'DBAs (paas_owner) can run renewals');
SELECT ok(NOT has_function_privilege('paas_api', 'api.subscriptions_schedule_renewals(text)', 'EXECUTE'),
	'the gateway role cannot schedule renewals');
SELECT ok(has_function_privilege('paas_owner', 'api.subscriptions_schedule_renewals(text)', 'EXECUTE'),
	'DBAs can schedule renewals');

-- this transaction sees only its own job
DELETE FROM cron.job WHERE jobname = 'paas-renewals';
SELECT is(api.subscriptions_schedule_renewals() ->> 'schedule', '*/5 * * * *',
	'the default schedule is every 5 minutes');
SELECT is((SELECT concat_ws(' | ', schedule, command, database, username) FROM cron.job WHERE jobname = 'paas-renewals'),
	concat_ws(' | ', '*/5 * * * *', 'SELECT api.run_renewals()', current_database(), current_user),
'the job is in cron.job, for this database, running api.run_renewals()');
SELECT is(api.subscriptions_schedule_renewals('*/2 * * * *') ->> 'schedule', '*/2 * * * *',
	'a DBA changes the schedule');
SELECT is((SELECT count(*) FROM cron.job WHERE jobname = 'paas-renewals'), 1::bigint,
	'scheduling again replaces the job');
SELECT is((SELECT schedule FROM cron.job WHERE jobname = 'paas-renewals'), '*/2 * * * *',
	'with the new schedule');
SELECT throws_ok($$SELECT api.subscriptions_schedule_renewals('every now and then')$$, '22023', NULL,
	'an invalid schedule is refused');

-- a due subscription, renewed by the job's command run as the job's user
INSERT INTO paas.users (id, email, name, password_hash) VALUES
	('00000000-0000-4000-8000-0000005c0b01', 'cron-user@pgtap.test', 'Cron User', 'x');
INSERT INTO paas.services (id, name, display_name, description, docker_image, monthly_price) VALUES
	('00000000-0000-4000-8000-0000005c0c01', 'pgtap-cron-svc', 'Cron Service', 'service of the cron test', 'nginx:1', 7000);
SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup',
	'postings', jsonb_build_array(
		jsonb_build_object('account', paas.wallet_account('00000000-0000-4000-8000-0000005c0b01'), 'amount', 10000),
		jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -10000)))));
INSERT INTO paas.subscriptions (id, user_id, service_id, price, anchor_at, current_period_start, current_period_end)
VALUES ('00000000-0000-4000-8000-0000005c0d01', '00000000-0000-4000-8000-0000005c0b01',
		'00000000-0000-4000-8000-0000005c0c01', 7000, now() - interval '1 month 5 minutes',
		now() - interval '1 month 5 minutes', paas.subscription_bound(now() - interval '1 month 5 minutes', 1));

CREATE FUNCTION pg_temp.run_job_as_cron() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	j cron.job;
	r jsonb;
BEGIN
	SELECT * INTO j FROM cron.job WHERE jobname = 'paas-renewals';
	EXECUTE format('SET LOCAL ROLE %I', j.username);
	EXECUTE j.command INTO r;
	RESET ROLE;
	RETURN r;
END $$;
SELECT is((pg_temp.run_job_as_cron() ->> 'renewed')::int >= 1, true, 'the job''s command renews what is due');
SELECT is((SELECT period_no FROM paas.subscriptions WHERE id = '00000000-0000-4000-8000-0000005c0d01'), 2,
	'the due subscription is in its second period');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-0000005c0b01'), 3000::bigint, 'its price was charged');
SELECT is((SELECT count(*) FROM paas.subscription_charges
			WHERE subscription_id = '00000000-0000-4000-8000-0000005c0d01' AND invoice_id IS NOT NULL),
	1::bigint, 'with an invoice');

-- a DBA runs it by hand: nothing is due any more
SET LOCAL ROLE paas_owner;
CREATE TEMP TABLE dba_run AS SELECT api.run_renewals() AS r;
RESET ROLE;
SELECT is((SELECT (r ->> 'renewed')::int FROM dba_run), 0, 'a DBA can run it; a second run renews nothing');
SELECT is(paas.wallet_balance('00000000-0000-4000-8000-0000005c0b01'), 3000::bigint, 'and charges nothing');

SELECT finish();
ROLLBACK;
