-- core: schemas, roles, privileges, helpers, job registry, status.
BEGIN;
SELECT plan(41);

SELECT has_schema('paas');
SELECT has_schema('api');
SELECT has_schema('reporting');
SELECT has_role('paas_owner');
SELECT has_role('paas_api');
SELECT has_role('paas_bi');

-- The gateway role may execute api functions and nothing else.
SELECT ok(has_schema_privilege('paas_api', 'api', 'USAGE'), 'paas_api uses schema api');
SELECT ok(NOT has_schema_privilege('paas_api', 'paas', 'USAGE'), 'paas_api has no access to schema paas');
SELECT ok(NOT has_table_privilege('paas_api', 'paas.job', 'SELECT'), 'paas_api cannot read tables');
SELECT ok(has_function_privilege('paas_api', 'api.status(jsonb, jsonb)', 'EXECUTE'), 'paas_api executes api.status');
SELECT ok(NOT has_function_privilege('public', 'api.status(jsonb, jsonb)', 'EXECUTE'), 'PUBLIC does not execute api functions');
SELECT ok(NOT has_schema_privilege('paas_bi', 'api', 'USAGE'), 'paas_bi has no access to api');

-- Every api function is SECURITY DEFINER with a fixed search_path and a comment.
SELECT is((SELECT count(*)::int FROM pg_proc p
	WHERE p.pronamespace = 'api'::regnamespace
	  AND (NOT p.prosecdef OR p.proconfig IS NULL
		   OR NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%'))),
	0, 'api functions are SECURITY DEFINER with a fixed search_path');
SELECT is((SELECT count(*)::int FROM pg_proc p
	WHERE p.pronamespace = 'api'::regnamespace
	  AND obj_description(p.oid, 'pg_proc') IS NULL),
	0, 'api functions are commented');
SELECT is((SELECT count(*)::int FROM pg_proc p
	WHERE p.pronamespace = 'api'::regnamespace
	  AND has_function_privilege('public', p.oid, 'EXECUTE')),
	0, 'no api function is executable by PUBLIC');

-- C functions
SELECT is(paas.version(), (SELECT default_version FROM pg_available_extensions WHERE name = 'paas'), 'module version equals the control file');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'paas'), paas.version(),
	'installed SQL version equals module version');

-- status and health
SELECT is(api.status() ->> 'service', 'paas', 'status names the service');
SELECT is(api.status() ->> 'version', '0.3.0', 'status carries the version');
SELECT ok(api.status() -> 'worker' ? 'running', 'status reports the worker state');
SELECT ok((api.status() ->> 'cron')::boolean, 'status sees pg_cron');
SELECT is(api.health() ->> 'status', 'healthy', 'health');

-- helpers
SELECT is(paas.iso('2026-01-02 03:04:05.678+00'), '2026-01-02T03:04:05.678Z', 'iso timestamps');
SELECT is(paas.check_text('[]', '{"a": 5}', 'a', true, 1, 5) -> 0 ->> 'message', 'a must be a string', 'check_text type');
SELECT is(jsonb_array_length(paas.check_text('[]', '{"a": ""}', 'a', true, 1, 5)), 1, 'check_text min length');
SELECT is(jsonb_array_length(paas.check_int(paas.check_int('[]', '{"p": "x"}', 'p', true, 1, 9), '{}', 'q', true, 1, 9)), 2,
	'errors accumulate over fields');
SELECT is(jsonb_array_length(paas.check_int('[]', '{"p": 99999999999999999999}', 'p', true, 1, 9)), 1, 'check_int rejects huge numbers');
SELECT is(paas.check_paging('[]', '{"page": "2", "limit": 50}'), '[]'::jsonb, 'valid paging');
SELECT throws_ok($$SELECT paas.raise_if_invalid('[{"field":"x","message":"bad"}]')$$, 'PT400', 'Validation failed',
	'raise_if_invalid raises PT400');
SELECT is(paas.pagination('{"page": 2, "limit": 10}', 25),
	'{"page": 2, "limit": 10, "total": 25, "totalPages": 3, "hasNext": true, "hasPrev": true}'::jsonb, 'pagination');

-- job registry: a failing job is recorded, not raised; a job not due is skipped.
CREATE FUNCTION paas.t_failing_job() RETURNS jsonb LANGUAGE sql AS $$ SELECT (1/0)::text::jsonb $$;
INSERT INTO paas.job (name, fn, run_every, description)
	VALUES ('t_fail', 'paas.t_failing_job', '1 hour', 'test'),
	       ('t_ok', 'paas.job_heartbeat', '1 hour', 'test');
SELECT is(paas.run_job('t_fail'), false, 'a failing job reports failure');
SELECT is((SELECT error FROM paas.job_run WHERE job = 't_fail'), 'division by zero', 'the failure is recorded');
SELECT is(paas.run_job('t_ok'), true, 'a good job reports success');
SELECT is(paas.run_job('t_ok'), NULL, 'a job that is not due is not run again');
SELECT ok((SELECT next_run_at > now() + interval '59 minutes' FROM paas.job WHERE name = 't_ok'), 'the next run is scheduled');
SELECT throws_ok($$INSERT INTO paas.job (name, fn, run_every, description) VALUES ('Bad Name', 'paas.job_heartbeat', '1 hour', 'x')$$,
	'23514', NULL, 'job names are checked');

-- the jobs as administrators see them
SELECT ok(jsonb_array_length(api.jobs_list() -> 'jobs') >= 4, 'jobs_list lists the jobs (DBA session)');
SELECT is((SELECT j ->> 'lastRun' IS NOT NULL FROM jsonb_array_elements(api.jobs_list() -> 'jobs') j
			WHERE j ->> 'name' = 't_fail'), true, 'jobs_list carries the last run');
SELECT is(api.jobs_runs('{"job": "t_fail", "ok": false}') #>> '{data,0,error}', 'division by zero', 'jobs_runs filters');
SELECT throws_ok($$SELECT api.jobs_runs('{"limit": 0, "ok": "perhaps"}')$$, 'PT400', 'Validation failed', 'jobs_runs validates');
SELECT throws_ok($$SELECT api.jobs_list('{}', '{"userId": "00000000-0000-0000-0000-000000000000"}')$$, 'PT401', NULL,
	'jobs_list needs a live account');

SELECT finish();
ROLLBACK;
