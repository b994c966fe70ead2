-- paas -- the background worker's jobs, for administrators over HTTP
-- (DBAs read paas.job and paas.job_run directly).

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
					'runEverySeconds', extract(epoch FROM j.run_every),
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
	'GET /admin/jobs: the worker''s state and every job with its last run';

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
