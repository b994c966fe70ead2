-- roles: what the DBA role (paas_owner) and the BI role (paas_bi) may do,
-- and the session limits db_setup (docker/scripts/lib.sh) gives paas_bi.
-- Their logins (make role-login) are tested over the socket by
-- tests/http/test_roles.py.
BEGIN;
SELECT plan(20);

-- the DBA: the job registry and its settings, without superuser
SELECT ok(has_table_privilege('paas_owner', 'paas.job', 'SELECT')
		  AND has_table_privilege('paas_owner', 'paas.job_run', 'SELECT'),
	'paas_owner reads paas.job and paas.job_run');
SELECT ok(has_column_privilege('paas_owner', 'paas.job', 'enabled', 'UPDATE')
		  AND has_column_privilege('paas_owner', 'paas.job', 'run_every', 'UPDATE')
		  AND has_column_privilege('paas_owner', 'paas.job', 'next_run_at', 'UPDATE'),
	'paas_owner changes enabled, run_every and next_run_at of a job');
SELECT ok(NOT has_column_privilege('paas_owner', 'paas.job', 'fn', 'UPDATE')
		  AND NOT has_column_privilege('paas_owner', 'paas.job', 'runner', 'UPDATE')
		  AND NOT has_column_privilege('paas_owner', 'paas.job', 'customized', 'UPDATE')
		  AND NOT has_table_privilege('paas_owner', 'paas.job', 'INSERT')
		  AND NOT has_table_privilege('paas_owner', 'paas.job', 'DELETE'),
	'but not what a job runs, nor which jobs there are');
SELECT ok(NOT has_table_privilege('paas_owner', 'paas.job_run', 'INSERT')
		  AND NOT has_table_privilege('paas_owner', 'paas.job_run', 'DELETE'),
	'nor the record of the runs');
SELECT ok(has_table_privilege('paas_owner', 'paas.subscription_settings', 'SELECT')
		  AND has_table_privilege('paas_owner', 'paas.subscription_settings', 'UPDATE'),
	'paas_owner changes the subscription settings');
SELECT ok(has_parameter_privilege('paas_owner', 'paas.renewal_workers', 'SET'),
	'paas_owner may SET paas.renewal_workers (db_setup)');
SELECT ok(has_function_privilege('paas_owner', 'api.subscriptions_renewals_job(integer)', 'EXECUTE')
		  AND NOT has_function_privilege('paas_api', 'api.subscriptions_renewals_job(integer)', 'EXECUTE'),
	'paas_owner, not the gateway, sees pg_cron''s renewal job');
SELECT is((SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'reporting'::regnamespace AND c.relkind = 'v'
			AND NOT (has_table_privilege('paas_owner', c.oid, 'SELECT')
					 AND has_table_privilege('paas_bi', c.oid, 'SELECT'))), 0::bigint,
	'paas_owner and paas_bi read every reporting view');

-- as paas_owner, what docs/operations.md tells a DBA
DELETE FROM cron.job WHERE jobname = 'paas-renewals';
SET LOCAL ROLE paas_owner;
UPDATE paas.job SET run_every = '3 hours' WHERE name = 'prune_sessions';
SELECT is((SELECT run_every FROM paas.job WHERE name = 'prune_sessions'), interval '3 hours',
	'a DBA changes how often a job runs');
SELECT throws_ok($$UPDATE paas.job SET fn = 'paas.job_heartbeat' WHERE name = 'prune_sessions'$$, '42501', NULL,
	'but not its function');
SELECT throws_ok($$SELECT count(*) FROM cron.job$$, '42501', NULL,
	'pg_cron''s tables are not the DBA''s');
SELECT is(api.subscriptions_renewals_job() -> 'job', 'null'::jsonb, 'no renewal job while none is scheduled');
SELECT is((SELECT r.rolsuper FROM pg_roles r
			WHERE r.rolname = api.subscriptions_schedule_renewals('*/7 * * * *') ->> 'runsAs'), true,
	'a DBA schedules the renewals; the job runs as the superuser');
SELECT is(api.subscriptions_renewals_job() #>> '{job,schedule}', '*/7 * * * *',
	'a DBA sees the pg_cron job and its schedule');
SELECT is(api.subscriptions_renewals_job() -> 'cronRuns', '[]'::jsonb, 'and its runs as pg_cron recorded them');
SET LOCAL paas.renewal_workers = 1;
SELECT is(current_setting('paas.renewal_workers'), '1', 'a DBA sets paas.renewal_workers');
RESET ROLE;

-- paas_bi: no table, read-only sessions with a timeout and few connections
SELECT is((SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'paas'::regnamespace
			AND has_table_privilege('paas_bi', c.oid, 'SELECT')), 0::bigint,
	'paas_bi reads no table of paas');
SELECT is((SELECT rolconnlimit FROM pg_roles WHERE rolname = 'paas_bi'), 10, 'paas_bi holds at most 10 connections');
SELECT is((SELECT array_agg(c ORDER BY c) FROM pg_db_role_setting s, unnest(s.setconfig) c
			WHERE s.setrole = 'paas_bi'::regrole AND s.setdatabase = 0),
	ARRAY['default_transaction_read_only=on', 'idle_in_transaction_session_timeout=10min', 'statement_timeout=5min'],
	'paas_bi sessions are read-only, with a statement and an idle-transaction timeout');
SELECT is((SELECT rolcanlogin FROM pg_roles WHERE rolname = 'paas_api'), true, 'paas_api logs in (make run)');

SELECT finish();
ROLLBACK;
