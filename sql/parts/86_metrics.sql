-- paas -- metrics: what the database knows that an operator watches, for
-- the gateway's Prometheus text (httpd/metrics.c, GET /metrics on the
-- metrics listener).  One call per scrape, on a connection of its own with
-- a short statement timeout: every part reads an index or a small table.
--   jobs       per job of paas.job: enabled, its last run (start, end,
--              duration, outcome), its last success, runs and failures of
--              the last 24 hours (paas.job_run keeps 7 days, so these are
--              gauges, not counters)
--   renewals   the counts of the last renewal run (paas.job_run, job
--              renewals) and the subscriptions in grace now
--   queues     the provisioner's work (instances and namespaces whose
--              generation is not yet observed; those of them due now) and
--              the mailer's outbox (rows due now, the oldest one's age)
--   worker     whether the background worker runs, and its last tick

CREATE FUNCTION api.metrics_snapshot() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	last_renewal jsonb;
BEGIN
	SELECT r.detail INTO last_renewal FROM paas.job_run r
	 WHERE r.job = 'renewals' ORDER BY r.started_at DESC LIMIT 1;
	RETURN jsonb_build_object(
		'at', extract(epoch FROM clock_timestamp()),
		'worker', (SELECT jsonb_build_object('running', w.running,
											 'lastTick', extract(epoch FROM w.last_tick))
					 FROM paas.worker_state() w),
		'jobs', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
					'name', j.name, 'enabled', j.enabled,
					'lastStart', extract(epoch FROM l.started_at),
					'lastEnd', extract(epoch FROM l.finished_at),
					'lastSeconds', extract(epoch FROM l.finished_at - l.started_at),
					'lastOk', l.ok,
					'lastSuccess', (SELECT extract(epoch FROM s.finished_at) FROM paas.job_run s
									 WHERE s.job = j.name AND s.ok ORDER BY s.started_at DESC LIMIT 1),
					'ok24h', d.ok, 'failed24h', d.failed) ORDER BY j.name)
			  FROM paas.job j
			  LEFT JOIN LATERAL (SELECT r.started_at, r.finished_at, r.ok FROM paas.job_run r
								  WHERE r.job = j.name ORDER BY r.started_at DESC LIMIT 1) l ON true
			  CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE r.ok) AS ok,
										 count(*) FILTER (WHERE NOT r.ok) AS failed
									FROM paas.job_run r
								   WHERE r.job = j.name AND r.started_at > now() - interval '24 hours') d),
			'[]'),
		'renewals', jsonb_build_object(
			'ok', (last_renewal ->> 'ok')::boolean,
			'examined', (last_renewal ->> 'examined')::bigint,
			'renewed', (last_renewal ->> 'renewed')::bigint,
			'charged', (last_renewal ->> 'charged')::bigint,
			'toGrace', (last_renewal ->> 'toGrace')::bigint,
			'suspended', (last_renewal ->> 'suspended')::bigint,
			'expired', (last_renewal ->> 'expired')::bigint,
			'inGrace', (SELECT count(*) FROM paas.subscriptions WHERE status = 'GRACE')),
		'provisioner', jsonb_build_object(
			'instances', (SELECT count(*) FROM paas.instances WHERE generation <> observed_generation),
			'instancesDue', (SELECT count(*) FROM paas.instances
							  WHERE generation <> observed_generation AND due_at <= now()),
			'namespaces', (SELECT count(*) FROM paas.instance_namespaces
							WHERE generation <> observed_generation),
			'namespacesDue', (SELECT count(*) FROM paas.instance_namespaces
							   WHERE generation <> observed_generation AND due_at <= now())),
		'mailer', (SELECT jsonb_build_object(
						'due', count(*),
						'oldestDueSeconds', coalesce(extract(epoch FROM now() - min(x.due_at)), 0))
					 FROM paas.notification_outbox x
					WHERE x.status IN ('PENDING', 'SENDING') AND x.due_at <= now()));
END
$$;
COMMENT ON FUNCTION api.metrics_snapshot() IS
	'the gateway''s metrics scrape (httpd/metrics.c): jobs and their last runs, the last renewal run, '
	'provisioner and mailer queue depths, the worker; epoch seconds';
REVOKE ALL ON FUNCTION api.metrics_snapshot() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.metrics_snapshot() TO paas_api, paas_owner;
