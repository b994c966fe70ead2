-- jobs: who runs a job (the worker, or pg_cron), the renewals as a job of
-- pg_cron whose runs are recorded (a failed one too), and the settings a
-- DBA changes, which pg_dump keeps (customized rows, restored onto the
-- install's rows).
BEGIN;
SELECT plan(23);

-- the renewals: pg_cron's job, never the worker's
SELECT is((SELECT concat_ws(' ', runner, fn::text, coalesce(run_every::text, '-'), coalesce(next_run_at::text, '-'), enabled)
			 FROM paas.job WHERE name = 'renewals'),
	'pg_cron api.run_renewals - - t', 'the renewals are a job of pg_cron, without interval or next run');
SELECT is(paas.run_job('renewals'), NULL, 'the job runner never runs a pg_cron job');
SELECT throws_ok($$UPDATE paas.job SET run_every = '1 hour' WHERE name = 'renewals'$$, '23514', NULL,
	'a pg_cron job has no interval (its schedule is pg_cron''s)');
SELECT throws_ok($$INSERT INTO paas.job (name, fn, run_every, description) VALUES ('t_no_every', 'paas.job_heartbeat', NULL, 'x')$$,
	'23514', NULL, 'a job of the worker has one');
SELECT is((SELECT j ->> 'runner' FROM jsonb_array_elements(api.jobs_list() -> 'jobs') j WHERE j ->> 'name' = 'renewals'),
	'pg_cron', 'jobs_list says who runs a job');

-- a due subscription
INSERT INTO paas.users (id, email, name, password_hash) VALUES
	('00000000-0000-4000-8000-00000007ab01', 'jobs-user@pgtap.test', 'Jobs User', 'x');
INSERT INTO paas.services (id, name, display_name, description, docker_image, monthly_price) VALUES
	('00000000-0000-4000-8000-00000007ac01', 'pgtap-jobs-svc', 'Jobs Service', 'service of the jobs test', 'nginx:1', 7000);
SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup',
	'postings', jsonb_build_array(
		jsonb_build_object('account', paas.wallet_account('00000000-0000-4000-8000-00000007ab01'), 'amount', 10000),
		jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -10000)))));
INSERT INTO paas.subscriptions (id, user_id, service_id, price, anchor_at, current_period_start, current_period_end)
VALUES ('00000000-0000-4000-8000-00000007ad01', '00000000-0000-4000-8000-00000007ab01',
		'00000000-0000-4000-8000-00000007ac01', 7000, now() - interval '1 month 5 minutes',
		now() - interval '1 month 5 minutes', paas.subscription_bound(now() - interval '1 month 5 minutes', 1));
CREATE TEMP TABLE runs0 AS SELECT coalesce(max(id), 0) AS id FROM paas.job_run WHERE job = 'renewals';
CREATE FUNCTION pg_temp.period() RETURNS text LANGUAGE sql AS $$
	SELECT s.period_no || ' ' || paas.wallet_balance(s.user_id) FROM paas.subscriptions s
	 WHERE s.id = '00000000-0000-4000-8000-00000007ad01' $$;

-- paused: nothing happens, nothing is recorded
UPDATE paas.job SET enabled = false WHERE name = 'renewals';
SELECT is(api.run_renewals() ->> 'skipped', 'disabled in paas.job (renewals)', 'a paused renewal run does nothing');
SELECT is(pg_temp.period(), '1 10000', 'the due subscription waits');
SELECT is((SELECT count(*) FROM paas.job_run WHERE job = 'renewals' AND id > (SELECT id FROM runs0)), 0::bigint,
	'and no run is recorded');
UPDATE paas.job SET enabled = true WHERE name = 'renewals';

-- a run that fails: its work rolls back, the failure is recorded, the call returns
CREATE FUNCTION public.t_jobs_refuse_charge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'charge refused by the test' USING ERRCODE = 'P0001';
END $$;
CREATE TRIGGER t_jobs_refuse_charge BEFORE INSERT ON paas.subscription_charges
	FOR EACH ROW WHEN (NEW.subscription_id = '00000000-0000-4000-8000-00000007ad01')
	EXECUTE FUNCTION public.t_jobs_refuse_charge();
SET LOCAL client_min_messages = error;
CREATE TEMP TABLE failed AS SELECT api.run_renewals() AS r;
RESET client_min_messages;
SELECT is((SELECT concat_ws(' ', r ->> 'ok', r ->> 'error', r ->> 'sqlstate') FROM failed),
	'false charge refused by the test P0001', 'a failed run answers ok false with its error and SQLSTATE');
SELECT is(pg_temp.period(), '1 10000', 'its work rolled back: nothing renewed or charged');
SELECT is((SELECT concat_ws(' ', ok, error, detail ->> 'sqlstate') FROM paas.job_run
			WHERE job = 'renewals' AND id > (SELECT id FROM runs0)),
	'f charge refused by the test P0001', 'the failed run is recorded');
SELECT ok((SELECT finished_at >= started_at AND (detail ->> 'ms')::numeric >= 0 FROM paas.job_run
			WHERE job = 'renewals' AND id > (SELECT id FROM runs0)), 'with its duration');
DROP TRIGGER t_jobs_refuse_charge ON paas.subscription_charges;

-- a run that succeeds: recorded with its counts
CREATE TEMP TABLE good AS SELECT api.run_renewals() AS r;
SELECT is(pg_temp.period(), '2 3000', 'the next run renews it');
SELECT is((SELECT concat_ws(' ', ok, error IS NULL, (detail ->> 'renewed')::int >= 1, (detail ->> 'charged')::int >= 7000)
			 FROM paas.job_run WHERE job = 'renewals' ORDER BY id DESC LIMIT 1),
	't t t t', 'the run is recorded with what it renewed and charged');
SELECT is((SELECT detail FROM paas.job_run WHERE job = 'renewals' ORDER BY id DESC LIMIT 1), (SELECT r FROM good),
	'the record is what the call answered');
SELECT is(api.jobs_runs('{"job": "renewals", "limit": 1}') #>> '{data,0,ok}', 'true', 'jobs_runs lists it');

-- settings a DBA changes are marked, and survive a restore
CREATE TEMP TABLE hb AS SELECT customized FROM paas.job WHERE name = 'heartbeat';
UPDATE paas.job SET next_run_at = now() WHERE name = 'heartbeat';
SELECT is((SELECT customized FROM paas.job WHERE name = 'heartbeat'), (SELECT customized FROM hb),
	'the schedule of the next run is no setting');
UPDATE paas.job SET run_every = '2 hours' WHERE name = 'prune_job_runs';
UPDATE paas.job SET enabled = false WHERE name = 'billing_expire_topups';
SELECT is((SELECT array_agg(name ORDER BY name) FROM paas.job
			WHERE customized AND name IN ('prune_job_runs', 'billing_expire_topups', 'heartbeat')),
	ARRAY['billing_expire_topups', 'prune_job_runs'], 'a changed interval or switch marks the job customized');
SELECT is((SELECT e.extcondition[array_position(e.extconfig, 'paas.job'::regclass::oid)]
			 FROM pg_extension e WHERE e.extname = 'paas'),
	'WHERE customized', 'pg_dump keeps the customized jobs');

-- pg_restore: the dumped row arrives (COPY) after CREATE EXTENSION made the install's
DELETE FROM paas.job_run WHERE job = 'heartbeat';
UPDATE paas.job SET run_every = '30 seconds', enabled = true, customized = false WHERE name = 'heartbeat';
INSERT INTO paas.job (name, fn, run_every, enabled, next_run_at, description, runner, customized)
VALUES ('heartbeat', 'paas.job_heartbeat', '45 seconds', false, now(), 'as dumped', 'worker', true);
SELECT is((SELECT concat_ws(' ', run_every, enabled, customized, description) FROM paas.job WHERE name = 'heartbeat'),
	'00:00:45 f t the worker records that it is alive',
	'a restored job row gives its settings to the install''s row');
INSERT INTO paas.job (name, fn, run_every, description, customized)
VALUES ('t_gone_job', 'paas.job_heartbeat', '1 hour', 'a job of another version', true);
SELECT is((SELECT count(*) FROM paas.job WHERE name = 't_gone_job'), 0::bigint,
	'a dumped job this version does not have is dropped');
INSERT INTO paas.job (name, fn, runner, run_every, next_run_at, enabled, description, customized)
VALUES ('renewals', 'api.run_renewals', 'pg_cron', NULL, NULL, false, 'as dumped', true);
SELECT is((SELECT concat_ws(' ', runner, coalesce(run_every::text, '-'), enabled) FROM paas.job WHERE name = 'renewals'),
	'pg_cron - f', 'a paused renewal job comes back paused');
SELECT throws_ok($$INSERT INTO paas.job (name, fn, run_every, description) VALUES ('heartbeat', 'paas.job_heartbeat', '1 hour', 'x')$$,
	'23505', NULL, 'a job inserted again by a script is still a duplicate');

SELECT finish();
ROLLBACK;
