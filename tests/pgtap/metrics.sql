-- metrics: api.metrics_snapshot(), the database's part of the gateway's
-- GET /metrics (httpd/metrics.c): jobs and their last runs, the last renewal
-- run, the provisioner's and the mailer's queues.  Rows made here are not
-- committed, so neither the worker nor the mailer sees them.
BEGIN;
SELECT plan(18);

SELECT ok(has_function_privilege('paas_api', 'api.metrics_snapshot()', 'EXECUTE'), 'the gateway reads the snapshot');
SELECT ok(has_function_privilege('paas_owner', 'api.metrics_snapshot()', 'EXECUTE'), 'and the DBAs');
SELECT ok(NOT has_function_privilege('paas_bi', 'api.metrics_snapshot()', 'EXECUTE'), 'the BI role does not');

-- (a new user's mails are in the outbox before the snapshot)
INSERT INTO paas.users (id, email, name, password_hash) VALUES
	('00000000-0000-4000-8000-0000000fe701', 'metrics-user@pgtap.test', 'Metrics User', 'x');
CREATE TEMP TABLE before AS SELECT api.metrics_snapshot() AS s;

-- a failed run of the heartbeat, and a renewal run, later than any other
INSERT INTO paas.job_run (job, started_at, finished_at, ok, detail, error) VALUES
	('heartbeat', now() + interval '1 hour', now() + interval '1 hour 2.5 seconds', false, NULL, 'boom'),
	('renewals', now() + interval '1 hour', now() + interval '1 hour 1 second', true,
	 '{"ok": true, "examined": 7, "renewed": 5, "charged": 4, "toGrace": 1, "suspended": 1, "expired": 0}', NULL);
-- a namespace the provisioner has not applied yet; a mail due 5 minutes ago
INSERT INTO paas.instance_namespaces (user_id, name, due_at) VALUES
	('00000000-0000-4000-8000-0000000fe701', 'pgtap-metrics-ns', now() - interval '1 second');
INSERT INTO paas.notification_outbox (kind, dedup_key, recipient, due_at)
SELECT kind, 'pgtap-metrics-mail', 'metrics@pgtap.test', now() - interval '5 minutes'
  FROM paas.notification_kinds ORDER BY kind LIMIT 1;

CREATE TEMP TABLE after AS SELECT api.metrics_snapshot() AS s;
CREATE FUNCTION pg_temp.job(name text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT j FROM after, jsonb_array_elements(after.s -> 'jobs') j WHERE j ->> 'name' = name
$$;

SELECT is((SELECT count(*)::int FROM after, jsonb_array_elements(s -> 'jobs')), (SELECT count(*)::int FROM paas.job),
	'every job is in the snapshot');
SELECT is(pg_temp.job('heartbeat') ->> 'lastOk', 'false', 'the last run''s outcome');
SELECT is((pg_temp.job('heartbeat') ->> 'lastSeconds')::numeric, 2.5, 'the last run''s duration, seconds');
SELECT is((pg_temp.job('heartbeat') ->> 'lastEnd')::numeric, extract(epoch FROM now() + interval '1 hour 2.5 seconds'),
	'when the last run ended, epoch seconds');
SELECT ok((pg_temp.job('heartbeat') ->> 'failed24h')::int >= 1, 'failures of the last 24 hours');
SELECT is((pg_temp.job('heartbeat') ->> 'enabled')::boolean, true, 'whether the job is enabled');
SELECT is(pg_temp.job('renewals') ->> 'lastSuccess', (extract(epoch FROM now() + interval '1 hour 1 second'))::text,
	'the last success of a job');

SELECT is((SELECT (s -> 'renewals') - 'inGrace' FROM after),
	'{"ok": true, "examined": 7, "renewed": 5, "charged": 4, "toGrace": 1, "suspended": 1, "expired": 0}',
	'the counts of the last renewal run');
SELECT is((SELECT (s -> 'renewals' ->> 'inGrace')::int FROM after),
	(SELECT count(*)::int FROM paas.subscriptions WHERE status = 'GRACE'), 'subscriptions in grace');

SELECT is((SELECT (a.s #>> '{provisioner,namespaces}')::int - (b.s #>> '{provisioner,namespaces}')::int FROM after a, before b),
	1, 'a namespace whose generation is not observed is pending');
SELECT is((SELECT (a.s #>> '{provisioner,namespacesDue}')::int - (b.s #>> '{provisioner,namespacesDue}')::int FROM after a, before b),
	1, 'and due');
SELECT is((SELECT (s #>> '{provisioner,instances}')::int FROM after),
	(SELECT count(*)::int FROM paas.instances WHERE generation <> observed_generation), 'pending instances');
CREATE FUNCTION pg_temp.due_mails() RETURNS int LANGUAGE sql AS $$
	SELECT count(*)::int FROM paas.notification_outbox WHERE status IN ('PENDING', 'SENDING') AND due_at <= now()
$$;
SELECT is((SELECT (s #>> '{mailer,due}')::int FROM after), pg_temp.due_mails(), 'the due mails are counted');
SELECT ok((SELECT (s #>> '{mailer,oldestDueSeconds}')::numeric >= 300 FROM after), 'the oldest due mail''s age');

UPDATE paas.instance_namespaces SET observed_generation = generation WHERE name = 'pgtap-metrics-ns';
UPDATE paas.notification_outbox SET status = 'SENT' WHERE dedup_key = 'pgtap-metrics-mail';
SELECT is((SELECT jsonb_build_array((s #>> '{provisioner,namespaces}')::int, (s #>> '{mailer,due}')::int)
			 FROM (SELECT api.metrics_snapshot() s) x),
	jsonb_build_array((SELECT (s #>> '{provisioner,namespaces}')::int FROM before), pg_temp.due_mails()),
	'applied and sent, they leave the queues');

SELECT finish();
ROLLBACK;
