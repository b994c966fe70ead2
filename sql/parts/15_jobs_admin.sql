-- paas -- the jobs, for administrators over HTTP (DBAs read paas.job and
-- paas.job_run directly, and pg_cron's side of the renewals with
-- api.subscriptions_renewals_job).

-- The pg_cron job of a paas.job row whose runner is pg_cron: the cron.job
-- row named 'paas-' || name in this database (api.subscriptions_schedule_renewals
-- names the renewals job so), or NULL.  cron.job shows each role only its
-- own jobs: this is called by SECURITY DEFINER functions of the
-- extension's owner (a superuser), who sees them all.
CREATE FUNCTION paas.cron_job(job_name text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	IF to_regclass('cron.job') IS NULL THEN
		RETURN NULL;
	END IF;
	EXECUTE $q$SELECT jsonb_build_object('jobId', jobid, 'jobName', jobname, 'schedule', schedule,
										  'command', command, 'database', database, 'username', username,
										  'active', active)
				 FROM cron.job WHERE jobname = $1 AND database = current_database()
				ORDER BY jobid DESC LIMIT 1$q$
	   INTO r USING 'paas-' || job_name;
	RETURN r;
END
$$;
COMMENT ON FUNCTION paas.cron_job(text) IS
	'the cron.job row (jsonb) of a pg_cron job of paas.job, or NULL';

CREATE FUNCTION paas.job_run_json(r paas.job_run) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object('id', r.id, 'job', r.job, 'startedAt', paas.iso(r.started_at),
							  'finishedAt', paas.iso(r.finished_at),
							  'ms', round(extract(epoch FROM r.finished_at - r.started_at) * 1000, 3),
							  'ok', r.ok, 'detail', r.detail, 'error', r.error);
COMMENT ON FUNCTION paas.job_run_json(paas.job_run) IS 'a job run as the API prints it';

CREATE FUNCTION api.jobs_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN jsonb_build_object(
		'worker', (SELECT to_jsonb(w) FROM paas.worker_state() w),
		'jobs', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
					'name', j.name, 'function', j.fn::text,
					'runner', j.runner,
					'runEverySeconds', extract(epoch FROM j.run_every),
					'schedule', CASE WHEN j.runner = 'pg_cron' THEN paas.cron_job(j.name) ->> 'schedule' END,
					'enabled', j.enabled, 'nextRunAt', paas.iso(j.next_run_at),
					'description', j.description,
					'lastRun', (SELECT paas.job_run_json(r) FROM paas.job_run r
								 WHERE r.job = j.name ORDER BY r.started_at DESC LIMIT 1),
					'failuresLast24h', (SELECT count(*) FROM paas.job_run r
										 WHERE r.job = j.name AND NOT r.ok
										   AND r.started_at > now() - interval '24 hours'))
					ORDER BY j.name)
			  FROM paas.job j), '[]'));
END
$$;
COMMENT ON FUNCTION api.jobs_list(jsonb, jsonb) IS
	'GET /admin/jobs: the worker''s state and every job with its last run (pg_cron''s jobs with their '
	'cron schedule)';

CREATE FUNCTION api.jobs_runs(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	lim int;
	total bigint;
	rows jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'job', false, 1, 63);
	errs := paas.check_bool(errs, req, 'ok', false);
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 20);
	SELECT count(*) INTO total FROM paas.job_run r
	 WHERE (req ->> 'job' IS NULL OR r.job = req ->> 'job')
	   AND (req ->> 'ok' IS NULL OR r.ok = (req ->> 'ok')::boolean);
	SELECT coalesce(jsonb_agg(paas.job_run_json(r) ORDER BY r.id DESC), '[]') INTO rows
	  FROM (SELECT * FROM paas.job_run r
			 WHERE (req ->> 'job' IS NULL OR r.job = req ->> 'job')
			   AND (req ->> 'ok' IS NULL OR r.ok = (req ->> 'ok')::boolean)
			 ORDER BY r.id DESC
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) r;
	RETURN jsonb_build_object('data', rows, 'pagination', paas.pagination(req, total, 20));
END
$$;
COMMENT ON FUNCTION api.jobs_runs(jsonb, jsonb) IS
	'GET /admin/jobs/runs: recorded runs, newest first (job, ok, page, limit)';

REVOKE ALL ON FUNCTION api.jobs_list(jsonb, jsonb), api.jobs_runs(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.jobs_list(jsonb, jsonb), api.jobs_runs(jsonb, jsonb) TO paas_api, paas_owner;

-- Everything GET /status no longer tells the public.
CREATE FUNCTION api.admin_status(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN (SELECT jsonb_build_object(
		'service', 'paas',
		'version', paas.version(),
		'extensionVersion', (SELECT extversion FROM pg_extension WHERE extname = 'paas'),
		'databaseTime', paas.iso(clock_timestamp()),
		'postgres', current_setting('server_version'),
		'database', current_database(),
		'worker', jsonb_build_object(
			'running', w.running, 'pid', w.pid,
			'startedAt', paas.iso(w.started_at), 'lastTick', paas.iso(w.last_tick),
			'ticks', w.ticks, 'jobFailures', w.job_failures),
		'cron', EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'),
		'cronVersion', (SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'))
	FROM paas.worker_state() w);
END
$$;
COMMENT ON FUNCTION api.admin_status(jsonb, jsonb) IS
	'GET /admin/status: versions of module, extension, server and pg_cron, and the background worker''s state';
REVOKE ALL ON FUNCTION api.admin_status(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.admin_status(jsonb, jsonb) TO paas_api, paas_owner;

-- pg_cron's side of the renewals for DBAs, who cannot read cron.job (its
-- rows are visible to their owner only, and the job is the superuser's: a
-- job of paas_owner would need paas_owner to have LOGIN, and its connection
-- slots, for pg_cron's background worker to start it).  The outcomes of the
-- runs (counts, failures, duration) are in paas.job_run: cron.job_run_details
-- only says that the command ran.
CREATE FUNCTION api.subscriptions_renewals_job(runs integer DEFAULT 10) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	lim integer := least(greatest(coalesce(runs, 10), 0), 1000);
	cj jsonb := paas.cron_job('renewals');
	cron_runs jsonb;
BEGIN
	IF cj IS NOT NULL AND to_regclass('cron.job_run_details') IS NOT NULL THEN
		EXECUTE $q$SELECT coalesce(jsonb_agg(jsonb_build_object(
						'runId', d.runid, 'status', d.status, 'returnMessage', d.return_message,
						'startedAt', paas.iso(d.start_time), 'finishedAt', paas.iso(d.end_time))
						ORDER BY d.runid DESC), '[]')
					 FROM (SELECT * FROM cron.job_run_details WHERE jobid = $1
							ORDER BY runid DESC LIMIT $2) d$q$
		   INTO cron_runs USING (cj ->> 'jobId')::bigint, lim;
	END IF;
	RETURN jsonb_build_object(
		'job', cj,
		'enabled', (SELECT j.enabled FROM paas.job j WHERE j.name = 'renewals'),
		'cronRuns', coalesce(cron_runs, '[]'),
		'runs', (SELECT coalesce(jsonb_agg(paas.job_run_json(r) ORDER BY r.id DESC), '[]')
				   FROM (SELECT * FROM paas.job_run r0 WHERE r0.job = 'renewals'
						  ORDER BY r0.id DESC LIMIT lim) r));
END
$$;
COMMENT ON FUNCTION api.subscriptions_renewals_job(integer) IS
	'DBA: the pg_cron job paas-renewals (NULL when not scheduled), whether paas.job renewals is enabled, '
	'the last runs as pg_cron recorded them (cronRuns) and their outcomes (runs, from paas.job_run)';
REVOKE ALL ON FUNCTION api.subscriptions_renewals_job(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_renewals_job(integer) TO paas_owner;
