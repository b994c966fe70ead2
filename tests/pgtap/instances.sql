-- instances: the status machine (extension/instances.c), templates and
-- their render check, the manifests, an instance per subscription and the
-- money rules (stop, resume, delete, revive), capacity, the start deadline
-- and its single refund (sql/parts/70_instances.sql, 71_instance_money.sql),
-- and the SQL side of the reconciler: rollout rule, pod problems, reports,
-- resync (72_instance_reconcile.sql).  The provisioner never sees this
-- transaction's rows (they are never committed).
BEGIN;
SELECT plan(157);

------------------------------------------------------------------------------
-- the status machine
------------------------------------------------------------------------------
SELECT is(paas.instance_transition('PENDING', 'progressing'), 'PROVISIONING', 'applied: PENDING -> PROVISIONING');
SELECT is(paas.instance_transition('PROVISIONING', 'ready'), 'RUNNING', 'rolled out: PROVISIONING -> RUNNING');
SELECT is(paas.instance_transition('PENDING', 'ready'), 'RUNNING', 'applied and at once ready: PENDING -> RUNNING');
SELECT is(paas.instance_transition('RUNNING', 'unhealthy'), 'DEGRADED', 'a running instance that crashes is DEGRADED');
SELECT is(paas.instance_transition('DEGRADED', 'ready'), 'RUNNING', 'DEGRADED -> RUNNING when it recovers');
SELECT is(paas.instance_transition('PROVISIONING', 'unhealthy'), 'PROVISIONING',
	'an instance that never started stays PROVISIONING when its pods fail');
SELECT is(paas.instance_transition('RUNNING', 'stopped'), 'STOPPED', 'scaled to zero: STOPPED');
SELECT is(paas.instance_transition('STOPPED', 'ready'), 'RUNNING', 'resumed: STOPPED -> RUNNING');
SELECT is(paas.instance_transition('RUNNING', 'delete'), 'DELETING', 'subscription ended: DELETING');
SELECT is(paas.instance_transition('DELETING', 'deleted'), 'DELETED', 'objects removed: DELETED');
SELECT is(paas.instance_transition('PROVISIONING', 'fail'), 'FAILED', 'start deadline: FAILED');
SELECT is(paas.instance_transition('FAILED', 'delete'), 'FAILED', 'a FAILED instance keeps its status while removed');
SELECT is(paas.instance_transition('DELETED', 'recreate'), 'PENDING', 'a paid revival recreates an ended instance');
SELECT throws_ok($$SELECT paas.instance_transition('DELETED', 'ready')$$, 'PT409', NULL,
	'nothing observed revives a DELETED instance');
SELECT throws_ok($$SELECT paas.instance_transition('FAILED', 'ready')$$, 'PT409', NULL,
	'a late readiness does not revive a FAILED instance');
SELECT throws_ok($$SELECT paas.instance_transition('RUNNING', 'fail')$$, 'PT409', NULL,
	'an instance that started cannot fail its start');
SELECT throws_ok($$SELECT paas.instance_transition('RUNNING', 'recreate')$$, 'PT409', NULL,
	'recreate is only for ended instances');
SELECT throws_ok($$SELECT paas.instance_transition('RUNNING', 'explode')$$, '22023', NULL, 'unknown event: 22023');
SELECT throws_ok($$SELECT paas.instance_transition('ASLEEP', 'ready')$$, '22023', NULL, 'unknown status: 22023');
SELECT is((SELECT count(*)::int FROM paas.instance_transitions()), 36, 'the machine has 36 allowed transitions');
SELECT ok(NOT EXISTS (SELECT 1 FROM paas.instance_transitions() WHERE status = 'DELETED' AND event <> 'recreate'
					  AND next_status <> 'DELETED'),
	'DELETED leaves only through recreate');

------------------------------------------------------------------------------
-- template strings
------------------------------------------------------------------------------
SELECT is(paas.tpl_subst('https://{{ host }}/x/{{url}}', '{"host": "a.b", "url": "https://a.b"}'),
	'https://a.b/x/https://a.b', 'placeholders are substituted, blanks allowed');
SELECT is(ARRAY(SELECT * FROM paas.tpl_placeholders('{{host}} {{secret.DB}}')), ARRAY['host', 'secret.DB'],
	'placeholders are listed');
SELECT ok(NULL = ANY (ARRAY(SELECT * FROM paas.tpl_placeholders('{{host} x'))) IS NULL, 'a malformed placeholder is reported');

------------------------------------------------------------------------------
-- fixtures
------------------------------------------------------------------------------
INSERT INTO paas.users (id, email, name, password_hash, role) VALUES
	('00000000-0000-4000-8000-00000070a001', 'inst-admin@pgtap.test', 'Inst Admin', 'x', 'ADMINISTRATOR'),
	('00000000-0000-4000-8000-00000070b001', 'inst-ann@pgtap.test', 'Inst Ann', 'x', 'USER'),
	('00000000-0000-4000-8000-00000070b002', 'inst-bob@pgtap.test', 'Inst Bob', 'x', 'USER');
CREATE FUNCTION pg_temp.ctx(k text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('userId', CASE k WHEN 'admin' THEN '00000000-0000-4000-8000-00000070a001'
		WHEN 'ann' THEN '00000000-0000-4000-8000-00000070b001'
		WHEN 'bob' THEN '00000000-0000-4000-8000-00000070b002' END) $$;
CREATE FUNCTION pg_temp.uid(k text) RETURNS uuid LANGUAGE sql AS $$ SELECT (pg_temp.ctx(k) ->> 'userId')::uuid $$;
CREATE FUNCTION pg_temp.fund(k text, amount bigint) RETURNS void LANGUAGE sql AS $$
	SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup',
		'postings', jsonb_build_array(
			jsonb_build_object('account', paas.wallet_account(pg_temp.uid(k)), 'amount', amount),
			jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -amount)))));
	$$;
SELECT pg_temp.fund('ann', 1000000);
-- this transaction's own node (the stand-in's, if any, are set aside)
UPDATE paas.nodes SET cordoned = true;
INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage,
						cpu_allocatable_m, memory_allocatable, status, is_ready)
VALUES ('pgtap-inst-big', 'pgtap-inst-big', '10.9.9.8', 64, 'x', '256Gi', '1Ti', 64000, 274877906944, 'ACTIVE', true);
SELECT pg_temp.fund('bob', 1000000);

-- the catalog and its templates
CREATE TEMP TABLE svc AS
SELECT api.services_create('{"name": "pgtap-inst-app", "displayName": "Instance App",
	"description": "an app with a volume and a secret", "dockerImage": "example/app:1", "containerPort": 8080,
	"monthlyPrice": 20000, "cpuRequest": "250m", "cpuLimit": "1", "memRequest": "256Mi", "memLimit": "512Mi",
	"resources": {"storageGiB": 2}, "environmentVars": {"PUBLIC_URL": "{{url}}/", "HOST": "{{host}}"}}') AS j;
SELECT throws_ok($$SELECT api.services_create('{"name": "pgtap-inst-bad", "displayName": "Bad",
	"description": "a template that cannot render", "dockerImage": "example/app:1",
	"environmentVars": {"A": "{{hostname}}", "B": "{{secret.NOPE}}", "C": "{{host"}}')$$,
	'PT400', NULL, 'a service whose environment cannot render is refused when saved');
CREATE FUNCTION pg_temp.deploy_err(tpl jsonb, env jsonb DEFAULT NULL) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	d text;
BEGIN
	PERFORM api.services_deployment_set(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc), 'deployment', tpl)
		|| CASE WHEN env IS NULL THEN '{}' ELSE jsonb_build_object('environmentVars', env) END,
		pg_temp.ctx('admin'));
	RETURN '[]';
EXCEPTION WHEN SQLSTATE 'PT400' THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN (SELECT jsonb_agg(e ->> 'field' ORDER BY e ->> 'field') FROM jsonb_array_elements(d::jsonb) e);
END $$;
SELECT is(pg_temp.deploy_err('{}', '{"A": "{{hostname}}", "B": "{{secret.NOPE}}", "C": "{{host"}'),
	'["environmentVars.A", "environmentVars.B", "environmentVars.C"]',
	'every variable that cannot render is named');
SELECT is(pg_temp.deploy_err('{"kind": "CronJob", "colour": "red", "probe": {"type": "http", "path": "x"},
	"runAsUser": -1, "secrets": {"lower": {}}, "sidecars": [{"name": "app", "image": "UPPER"}]}'),
	'["deployment.colour", "deployment.kind", "deployment.probe.path", "deployment.secrets", "deployment.sidecars[0].cpuLimit", "deployment.sidecars[0].cpuRequest", "deployment.sidecars[0].image", "deployment.sidecars[0].memLimit", "deployment.sidecars[0].memRequest", "deployment.sidecars[0].name", "runAsUser"]',
	'a template is checked field by field, all errors at once');
SELECT is(pg_temp.deploy_err('{"credentials": {"password": "{{secret.ADMIN}}"}}'), '["deployment.credentials.password"]',
	'credentials may only use declared secrets');
SELECT is(pg_temp.deploy_err('{"volumeMountPath": "/var/lib/app", "runAsUser": 1000, "fsGroup": 1000,
	"probe": {"type": "http", "path": "/healthz"},
	"secrets": {"ADMIN_PASSWORD": {"length": 16}, "DB_PASSWORD": {}},
	"credentials": {"username": "admin", "password": "{{secret.ADMIN_PASSWORD}}", "url": "{{url}}"},
	"sidecars": [{"name": "db", "image": "postgres:16-alpine", "cpuRequest": "100m", "cpuLimit": "500m",
				  "memRequest": "128Mi", "memLimit": "256Mi", "volumeMountPath": "/var/lib/postgresql/data",
				  "volumeSubPath": "pg", "env": {"POSTGRES_PASSWORD": "{{secret.DB_PASSWORD}}"}}]}',
	'{"PUBLIC_URL": "{{url}}/", "HOST": "{{host}}", "ADMIN_PASSWORD": "{{secret.ADMIN_PASSWORD}}",
	  "DATABASE_URL": "postgres://app:{{secret.DB_PASSWORD}}@127.0.0.1:5432/app"}'),
	'[]', 'a template and the environment that uses its secrets are saved together');
SELECT throws_ok($$UPDATE paas.services SET environment_vars = '{"X": "{{secret.MISSING}}"}'
	WHERE name = 'pgtap-inst-app'$$, 'PT400', NULL, 'any later save of the service is checked against its template');
SELECT is((paas.template_resources(s, paas.service_template(s.id))).cpu_request_m, 350,
	'an instance requests the app''s cpu plus its sidecars''')
  FROM paas.services s WHERE name = 'pgtap-inst-app';

-- a second service, not exposed, no volume
CREATE TEMP TABLE svc2 AS
SELECT api.services_create('{"name": "pgtap-inst-db", "displayName": "Instance DB",
	"description": "a database without an ingress", "dockerImage": "postgres:16-alpine", "containerPort": 5432,
	"monthlyPrice": 0, "resources": {"storageGiB": 0}}') AS j;
SELECT lives_ok($$SELECT api.services_deployment_set(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc2),
	'deployment', '{"expose": "none", "probe": {"type": "exec", "command": ["pg_isready"]}}'::jsonb),
	pg_temp.ctx('admin'))$$, 'the second service gets its template');

------------------------------------------------------------------------------
-- a sale makes an instance
------------------------------------------------------------------------------
CREATE TEMP TABLE sale AS
SELECT api.subscriptions_create(jsonb_build_object('serviceId', (SELECT j ->> 'id' FROM svc)), pg_temp.ctx('ann')) AS j;
CREATE FUNCTION pg_temp.inst() RETURNS paas.instances LANGUAGE sql AS $$
	SELECT * FROM paas.instances WHERE subscription_id = (SELECT (j ->> 'id')::uuid FROM sale) $$;
SELECT is((pg_temp.inst()).status, 'PENDING', 'the sale creates a PENDING instance');
SELECT is((pg_temp.inst()).desired_state, 'running', 'that should run');
SELECT ok((pg_temp.inst()).name ~ '^pgtap-inst-app-[0-9a-f]{8}$', 'named after the service and its id');
SELECT is((pg_temp.inst()).namespace, 'paas-' || pg_temp.uid('ann'), 'in the customer''s namespace');
SELECT is((pg_temp.inst()).host, (pg_temp.inst()).name || '.' || (paas.instance_config()).apps_domain,
	'reachable at <instance>.<paas.apps_domain>');
SELECT is(((pg_temp.inst()).cpu_request_m, (pg_temp.inst()).mem_request_mib, (pg_temp.inst()).storage_gib),
	(350, 384, 2), 'with the allocation of the template (sidecars included)');
SELECT is((SELECT array_agg(name ORDER BY name) FROM paas.instance_secrets WHERE instance_id = (pg_temp.inst()).id),
	ARRAY['ADMIN_PASSWORD', 'DB_PASSWORD'], 'its secrets are generated once at the sale');
SELECT is((SELECT array_agg(char_length(value) ORDER BY name) FROM paas.instance_secrets
			WHERE instance_id = (pg_temp.inst()).id), ARRAY[16, 24], 'of the declared length (24 by default)');
CREATE TEMP TABLE secrets0 AS SELECT name, value FROM paas.instance_secrets WHERE instance_id = (pg_temp.inst()).id;
SELECT paas.instance_ensure_secrets(pg_temp.inst(), s) FROM paas.services s WHERE s.id = (pg_temp.inst()).service_id;
SELECT is((SELECT count(*)::int FROM paas.instance_secrets x JOIN secrets0 o USING (name, value)
			WHERE x.instance_id = (pg_temp.inst()).id), 2, 'and never change afterwards');
SELECT is((SELECT state FROM paas.instance_namespaces WHERE user_id = pg_temp.uid('ann')), 'PENDING',
	'the customer''s namespace is due too');
SELECT is((SELECT event FROM paas.instance_events WHERE instance_id = (pg_temp.inst()).id ORDER BY id LIMIT 1),
	'create', 'the creation is an event');
SELECT is((SELECT j -> 'instance' ->> 'status' FROM (SELECT api.subscriptions_get(
			jsonb_build_object('id', (SELECT j ->> 'id' FROM sale)), pg_temp.ctx('ann')) AS j) x), 'PENDING',
	'GET /subscriptions/:id shows its instance');

------------------------------------------------------------------------------
-- the manifests
------------------------------------------------------------------------------
CREATE TEMP TABLE m AS SELECT paas.instance_manifests((pg_temp.inst()).id) AS j;
CREATE FUNCTION pg_temp.obj(k text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT o FROM m, jsonb_array_elements(j -> 'apply') o WHERE o ->> 'kind' = k $$;
SELECT is((SELECT jsonb_agg(o ->> 'kind') FROM m, jsonb_array_elements(j -> 'apply') o),
	'["Secret", "PersistentVolumeClaim", "Deployment", "Service", "Ingress"]',
	'Secret, volume, Deployment, Service, Ingress, in that order');
SELECT is((SELECT jsonb_agg(o ->> 'kind') FROM m, jsonb_array_elements(j -> 'namespace') o),
	'["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy"]', 'and the namespace''s objects');
SELECT ok((SELECT bool_and(o #>> '{metadata,labels,app.kubernetes.io/managed-by}' = 'paas'
						   AND o #>> '{metadata,labels,paas.dev/instance-id}' = (pg_temp.inst()).id::text)
			 FROM m, jsonb_array_elements(j -> 'apply') o), 'every object is labelled managed by paas with the instance id');
SELECT is(pg_temp.obj('Deployment') #>> '{spec,template,spec,automountServiceAccountToken}', 'false',
	'pods run without a service-account token');
SELECT is(pg_temp.obj('Deployment') #> '{spec,template,spec,containers,0,resources}',
	'{"limits": {"cpu": "1000m", "memory": "512Mi"}, "requests": {"cpu": "250m", "memory": "256Mi"}}',
	'limits are always set');
SELECT is(pg_temp.obj('Deployment') #> '{spec,template,spec,containers,1,resources,limits}',
	'{"cpu": "500m", "memory": "256Mi"}', 'sidecars too');
SELECT is(pg_temp.obj('Deployment') #>> '{spec,template,spec,containers,0,securityContext,runAsNonRoot}', 'true',
	'non-root when the template says so');
SELECT is(pg_temp.obj('Deployment') #>> '{spec,template,spec,containers,0,securityContext,capabilities,drop,0}', 'ALL',
	'with every capability dropped');
SELECT is(pg_temp.obj('Deployment') #>> '{spec,strategy,type}', 'Recreate', 'one pod at a time (ReadWriteOnce volume)');
SELECT is(pg_temp.obj('Deployment') #>> '{spec,replicas}', '1', 'one replica while it should run');
SELECT is(pg_temp.obj('Deployment') #> '{spec,template,spec,containers,0,volumeMounts,0}',
	'{"name": "data", "mountPath": "/var/lib/app"}', 'the volume is mounted where the template says');
SELECT is(pg_temp.obj('Deployment') #>> '{spec,template,spec,containers,0,readinessProbe,httpGet,path}', '/healthz',
	'the probe of the template');
SELECT is((SELECT e ->> 'value' FROM jsonb_array_elements(pg_temp.obj('Deployment') #> '{spec,template,spec,containers,0,env}') e
			WHERE e ->> 'name' = 'PUBLIC_URL'), 'https://' || (pg_temp.inst()).host || '/', '{{url}} is the instance''s URL');
SELECT is((SELECT e -> 'valueFrom' FROM jsonb_array_elements(pg_temp.obj('Deployment') #> '{spec,template,spec,containers,0,env}') e
			WHERE e ->> 'name' = 'ADMIN_PASSWORD'),
	jsonb_build_object('secretKeyRef', jsonb_build_object('name', (pg_temp.inst()).name || '-secrets', 'key', 'ADMIN_PASSWORD')),
	'a secret reaches the container through secretKeyRef');
SELECT is((SELECT e ->> 'value' FROM jsonb_array_elements(pg_temp.obj('Deployment') #> '{spec,template,spec,containers,0,env}') e
			WHERE e ->> 'name' = 'DATABASE_URL'), 'postgres://app:$(PAAS_SECRET_DB_PASSWORD)@127.0.0.1:5432/app',
	'a secret inside a longer value is a $(VAR) reference');
SELECT is((SELECT (e -> 'valueFrom') IS NOT NULL FROM jsonb_array_elements(pg_temp.obj('Deployment') #> '{spec,template,spec,containers,0,env}') e
			WHERE e ->> 'name' = 'PAAS_SECRET_DB_PASSWORD'), true, 'defined before it from the Secret');
SELECT ok(NOT EXISTS (SELECT 1 FROM secrets0 s WHERE strpos((SELECT j::text FROM m), s.value) > 0),
	'no secret value appears in the manifests');
SELECT is(pg_temp.obj('Secret') -> 'data', '{"ADMIN_PASSWORD": "<redacted>", "DB_PASSWORD": "<redacted>"}',
	'what a DBA sees of the Secret is redacted');
SELECT is(convert_from(decode((paas.instance_manifests((pg_temp.inst()).id, true) -> 'apply' -> 0 -> 'data' ->> 'ADMIN_PASSWORD'),
		'base64'), 'UTF8'), (SELECT value FROM secrets0 WHERE name = 'ADMIN_PASSWORD'),
	'what the reconciler applies holds the value, base64');
SELECT is(pg_temp.obj('Ingress') #>> '{spec,rules,0,host}', (pg_temp.inst()).host, 'the Ingress host');
SELECT is(pg_temp.obj('Ingress') #>> '{spec,tls,0,hosts,0}', (pg_temp.inst()).host, 'with TLS');
SELECT is(pg_temp.obj('Ingress') #>> '{metadata,annotations,cert-manager.io/cluster-issuer}',
	(paas.instance_config()).cert_issuer, 'by cert-manager annotation');
SELECT is(pg_temp.obj('PersistentVolumeClaim') #>> '{spec,resources,requests,storage}', '2Gi', 'the plan''s storage');
SELECT is((SELECT o #> '{spec,hard}' FROM m, jsonb_array_elements(j -> 'namespace') o WHERE o ->> 'kind' = 'ResourceQuota'),
	'{"pods": "1", "limits.cpu": "1500m", "requests.cpu": "350m", "limits.memory": "768Mi", "requests.memory": "384Mi",
	  "requests.storage": "2Gi", "services.nodeports": "0", "persistentvolumeclaims": "1", "services.loadbalancers": "0"}',
	'the quota is the sum of the customer''s live instances');
SELECT is((SELECT o #> '{spec,ingress,0,from}' FROM m, jsonb_array_elements(j -> 'namespace') o WHERE o ->> 'kind' = 'NetworkPolicy'),
	jsonb_build_array(jsonb_build_object('podSelector', '{}'::jsonb), jsonb_build_object('namespaceSelector',
		jsonb_build_object('matchLabels', jsonb_build_object('kubernetes.io/metadata.name',
			(paas.instance_config()).ingress_namespace)))),
	'in: only the same namespace and the ingress controller');
SELECT is((SELECT o #>> '{metadata,labels,paas.dev/user-id}' FROM m, jsonb_array_elements(j -> 'namespace') o
			WHERE o ->> 'kind' = 'Namespace'), pg_temp.uid('ann')::text, 'the namespace is labelled with the user id');

-- the second service: no ingress, no volume
CREATE TEMP TABLE sale2 AS
SELECT api.subscriptions_create(jsonb_build_object('serviceId', (SELECT j ->> 'id' FROM svc2)), pg_temp.ctx('ann')) AS j;
SELECT is((SELECT jsonb_agg(o ->> 'kind') FROM jsonb_array_elements(paas.instance_manifests(
			(SELECT id FROM paas.instances WHERE subscription_id = (SELECT (j ->> 'id')::uuid FROM sale2))) -> 'apply') o),
	'["Deployment", "Service"]', 'expose none and no storage: Deployment and Service only');
SELECT is((SELECT o #>> '{spec,hard,pods}' FROM jsonb_array_elements(paas.instance_manifests((pg_temp.inst()).id) -> 'namespace') o
			WHERE o ->> 'kind' = 'ResourceQuota'), '2', 'the quota grows with the second instance');

------------------------------------------------------------------------------
-- the calls of a unit and its reports
------------------------------------------------------------------------------
CREATE TEMP TABLE ops AS SELECT * FROM paas.instance_ops(pg_temp.inst());
SELECT is((SELECT array_agg(verb || ' ' || tag ORDER BY seq) FROM ops),
	ARRAY['APPLY secret', 'APPLY persistentvolumeclaim', 'APPLY deployment', 'APPLY service', 'APPLY ingress'],
	'a new generation is applied object by object');
SELECT is((SELECT path FROM ops WHERE tag = 'deployment'),
	'/apis/apps/v1/namespaces/' || (pg_temp.inst()).namespace || '/deployments/' || (pg_temp.inst()).name,
	'at the object''s REST path');
SELECT is((SELECT count(*)::int FROM paas.namespace_ops((SELECT n FROM paas.instance_namespaces n WHERE user_id = pg_temp.uid('ann')))), 4,
	'a new namespace is four objects');

CREATE FUNCTION pg_temp.dep(gen int, observed int, replicas int, updated int, available int, total int,
							reason text DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('metadata', jsonb_build_object('name', 'd', 'generation', gen),
		'spec', jsonb_build_object('replicas', replicas),
		'status', jsonb_strip_nulls(jsonb_build_object('observedGeneration', observed, 'updatedReplicas', updated,
			'availableReplicas', available, 'replicas', total,
			'conditions', CASE WHEN reason IS NOT NULL THEN jsonb_build_array(jsonb_build_object(
				'type', 'Progressing', 'status', 'False', 'reason', reason)) END))) $$;
SELECT is((paas.deployment_rollout(pg_temp.dep(2, 1, 1, 1, 1, 1))).state, 'progressing', 'rollout: the new generation is not observed yet');
SELECT is((paas.deployment_rollout(pg_temp.dep(2, 2, 1, 0, 0, 1))).state, 'progressing', 'rollout: not updated yet');
SELECT is((paas.deployment_rollout(pg_temp.dep(2, 2, 1, 1, 1, 2))).state, 'progressing', 'rollout: an old replica is terminating');
SELECT is((paas.deployment_rollout(pg_temp.dep(2, 2, 1, 1, 0, 1))).message,
	'Waiting for deployment "d" rollout to finish: 0 of 1 updated replicas are available...', 'rollout: kubectl''s message');
SELECT is((paas.deployment_rollout(pg_temp.dep(2, 2, 1, 1, 1, 1))).state, 'done', 'rollout: done');
SELECT is((paas.deployment_rollout(pg_temp.dep(3, 3, 0, 0, 0, 0))).state, 'done', 'rollout: zero replicas is done');
SELECT is((paas.deployment_rollout(pg_temp.dep(2, 2, 1, 1, 0, 1, 'ProgressDeadlineExceeded'))).state, 'failed',
	'rollout: ProgressDeadlineExceeded fails');
SELECT is((paas.pods_problem('{"items": [{"metadata": {"name": "p1", "creationTimestamp": "2026-01-01T00:00:00Z"},
	"status": {"containerStatuses": [{"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
	"message": "Back-off pulling image \"nope\""}}}]}}]}')).problem,
	'container app: ImagePullBackOff: Back-off pulling image "nope"', 'a waiting reason is the owner''s message');
SELECT is((paas.pods_problem('{"items": [{"metadata": {"name": "p1"}, "status": {"conditions": [{"type": "PodScheduled",
	"status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}}]}')).problem,
	'Unschedulable: 0/3 nodes are available', 'so is a pod that cannot be scheduled');

CREATE FUNCTION pg_temp.report(codes int[], dep jsonb DEFAULT NULL, pods jsonb DEFAULT NULL) RETURNS text
	LANGUAGE sql AS $$
	SELECT paas.provisioner_report('instance', (pg_temp.inst()).id, (pg_temp.inst()).generation,
		(SELECT array_agg(verb ORDER BY seq) FROM (SELECT * FROM ops ORDER BY seq LIMIT cardinality(codes)) o),
		(SELECT array_agg(tag ORDER BY seq) FROM (SELECT * FROM ops ORDER BY seq LIMIT cardinality(codes)) o),
		codes,
		(SELECT array_agg(CASE WHEN codes[seq] >= 300
							   THEN '{"kind": "Status", "reason": "Forbidden", "message": "exceeded quota: paas-quota"}'
							   WHEN tag = 'deployment' THEN dep::text WHEN tag = 'pods' THEN pods::text END
						  ORDER BY seq)
		   FROM (SELECT * FROM ops ORDER BY seq LIMIT cardinality(codes)) o),
		(SELECT array_agg(NULL::text) FROM generate_series(1, cardinality(codes)))) $$;
SELECT is(pg_temp.report(ARRAY[200, 201, 403]), 'error', 'a failed call is an error');
SELECT is(((pg_temp.inst()).attempts, (pg_temp.inst()).observed_generation), (1, 0::bigint),
	'it counts, and nothing is marked applied');
SELECT is((pg_temp.inst()).last_error, 'APPLY deployment: HTTP 403 Forbidden: exceeded quota: paas-quota', 'the error is shown');
SELECT ok((pg_temp.inst()).due_at BETWEEN now() + interval '0.7 s' AND now() + interval '1.3 s',
	'the next try backs off (1 s, with jitter)');
SELECT ok(paas.retry_delay(30) <= interval '375 s' AND paas.retry_delay(30) >= interval '225 s', 'the backoff is capped at 5 minutes');
SELECT is((SELECT detail -> 'calls' -> 2 ->> 'code' FROM paas.instance_events WHERE instance_id = (pg_temp.inst()).id
			AND event = 'error'), '403', 'every API outcome is recorded');
SELECT is(pg_temp.report(ARRAY[200, 201, 201, 201, 201], pg_temp.dep(1, 0, 1, 0, 0, 0)), 'progressing', 'applied, not rolled out');
SELECT is(((pg_temp.inst()).status, (pg_temp.inst()).observed_generation, (pg_temp.inst()).attempts),
	('PROVISIONING'::text, 1::bigint, 0), 'PROVISIONING at the applied generation, errors forgotten');
SELECT ok((pg_temp.inst()).due_at > now(), 'looked at again later');
DELETE FROM ops;
INSERT INTO ops SELECT * FROM paas.instance_ops(pg_temp.inst());
SELECT is((SELECT array_agg(verb || ' ' || tag ORDER BY seq) FROM ops), ARRAY['GET deployment', 'GET pods'],
	'an applied generation is only looked at (still rolling out: with its pods, for the reason)');
UPDATE paas.instances SET polls = 2 WHERE id = (pg_temp.inst()).id;
SELECT is((SELECT array_agg(verb || ' ' || tag ORDER BY seq) FROM paas.instance_ops(pg_temp.inst())),
	ARRAY['GET deployment', 'GET pods'], 'a slow rollout is looked at with its pods');
UPDATE paas.instances SET polls = 0 WHERE id = (pg_temp.inst()).id;
SELECT is(pg_temp.report(ARRAY[200], pg_temp.dep(1, 1, 1, 1, 1, 1)), 'ready', 'the rollout completes');
SELECT is(((pg_temp.inst()).status, (pg_temp.inst()).due_at), ('RUNNING'::text, NULL::timestamptz),
	'RUNNING; nothing to do until the resync');
SELECT ok((pg_temp.inst()).ever_running AND (pg_temp.inst()).ready_at IS NOT NULL, 'it has started');
-- the pod watch: a pod that is fine (or being created) changes nothing but
-- the pod's name; a waiting reason or a pod that cannot be scheduled is
-- shown at once, a RUNNING instance becomes DEGRADED
CREATE TEMP TABLE before_watch AS SELECT * FROM pg_temp.inst();
CREATE FUNCTION pg_temp.pod_line(pod text, status jsonb) RETURNS text LANGUAGE sql AS $$
	SELECT jsonb_build_object('type', 'MODIFIED', 'object', jsonb_build_object(
		'metadata', jsonb_build_object('name', pod, 'resourceVersion', '77', 'creationTimestamp', '2026-01-01T00:00:00Z',
			'labels', jsonb_build_object('paas.dev/instance-id', (pg_temp.inst()).id)),
		'status', status))::text $$;
SELECT is(paas.provisioner_watch_pods(ARRAY[pg_temp.pod_line('pw-1', '{"phase": "Pending", "containerStatuses":
	[{"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}')]), '77',
	'pod watch: the last resourceVersion');
SELECT is(((pg_temp.inst()).status, (pg_temp.inst()).status_message, (pg_temp.inst()).pod_name),
	('RUNNING'::text, (SELECT status_message FROM before_watch), 'pw-1'::text),
	'a pod being created: only its name is recorded');
SELECT paas.provisioner_watch_pods(ARRAY[pg_temp.pod_line('pw-1', '{"phase": "Running", "containerStatuses":
	[{"name": "app", "restartCount": 0, "ready": true, "state": {"running": {}}}]}')]);
SELECT is(((pg_temp.inst()).status, (pg_temp.inst()).last_error), ('RUNNING'::text, NULL::text), 'a running pod is fine');
SELECT paas.provisioner_watch_pods(ARRAY[pg_temp.pod_line('pw-2', '{"phase": "Pending", "containerStatuses":
	[{"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}')]);
SELECT is(((pg_temp.inst()).status, (pg_temp.inst()).status_message, (pg_temp.inst()).pod_name),
	('DEGRADED'::text, 'container app: ImagePullBackOff: Back-off pulling image'::text, 'pw-2'::text),
	'a pod that cannot pull its image: shown at once, DEGRADED');
SELECT paas.provisioner_watch_pods(ARRAY[pg_temp.pod_line('pw-3', '{"phase": "Pending", "conditions":
	[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}')]);
SELECT is((pg_temp.inst()).status_message, 'Unschedulable: 0/3 nodes are available', 'so is a pod that cannot be scheduled');
UPDATE paas.instances i SET status = b.status, status_message = b.status_message, last_error = b.last_error,
	   last_error_at = b.last_error_at, pod_name = b.pod_name
  FROM before_watch b WHERE i.id = b.id;
SELECT is(pg_temp.report(ARRAY[404]), 'drift', 'a Deployment deleted by hand is drift');
SELECT ok((pg_temp.inst()).force_apply, 'the instance is applied in full again');

------------------------------------------------------------------------------
-- the money: unpaid, paid again, ended, revived
------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.set_sub(st text) RETURNS void LANGUAGE sql AS $$
	UPDATE paas.subscriptions SET status = st, grace_until = CASE WHEN st = 'GRACE' THEN now() + interval '1 day' END
	 WHERE id = (SELECT (j ->> 'id')::uuid FROM sale) $$;
CREATE TEMP TABLE g AS SELECT (pg_temp.inst()).generation AS g0;
SELECT pg_temp.set_sub('GRACE');
SELECT is(((pg_temp.inst()).desired_state, (pg_temp.inst()).generation), ('running'::text, (SELECT g0 FROM g)),
	'in grace it keeps running (nothing changes)');
SELECT pg_temp.set_sub('SUSPENDED');
SELECT is(((pg_temp.inst()).desired_state, (pg_temp.inst()).generation), ('stopped'::text, (SELECT g0 + 1 FROM g)),
	'SUSPENDED: it should stop, a new generation');
SELECT is((pg_temp.inst()).status, 'RUNNING', 'the status stays what was observed');
DELETE FROM ops;
INSERT INTO ops SELECT * FROM paas.instance_ops(pg_temp.inst());
SELECT is((SELECT array_agg(verb || ' ' || tag ORDER BY seq) FROM ops),
	ARRAY['APPLY secret', 'APPLY persistentvolumeclaim', 'APPLY deployment', 'APPLY service', 'DELETE ingress'],
	'stopping keeps the data and removes the ingress');
SELECT is((SELECT body::jsonb #>> '{spec,replicas}' FROM ops WHERE tag = 'deployment'), '0', 'with zero replicas');
SELECT is((SELECT o #>> '{spec,hard,pods}' FROM jsonb_array_elements(paas.instance_manifests((pg_temp.inst()).id) -> 'namespace') o
			WHERE o ->> 'kind' = 'ResourceQuota'), '1', 'a stopped instance leaves the pod quota');
SELECT is(pg_temp.report(ARRAY[200, 200, 200, 200, 404], pg_temp.dep(3, 3, 0, 0, 0, 0)), 'stopped', 'observed at zero');
SELECT is((pg_temp.inst()).status, 'STOPPED', 'STOPPED');
SELECT pg_temp.set_sub('ACTIVE');
SELECT is(((pg_temp.inst()).desired_state, (pg_temp.inst()).status), ('running'::text, 'STOPPED'::text), 'paid again: it should run');
DELETE FROM ops;
INSERT INTO ops SELECT * FROM paas.instance_ops(pg_temp.inst());
SELECT is(pg_temp.report(ARRAY[200, 200, 200, 200, 201], pg_temp.dep(4, 4, 1, 1, 1, 1)), 'ready', 'resumed');
SELECT is((pg_temp.inst()).status, 'RUNNING', 'STOPPED -> RUNNING');
SELECT pg_temp.set_sub('CANCELLED');
SELECT is((pg_temp.inst()).desired_state, 'running', 'cancelled: served until the period ends');
SELECT pg_temp.set_sub('EXPIRED');
SELECT is(((pg_temp.inst()).desired_state, (pg_temp.inst()).status), ('deleted'::text, 'DELETING'::text), 'EXPIRED: DELETING');
SELECT ok((pg_temp.inst()).volume_purge_at BETWEEN now() + (paas.instance_config()).data_retention - interval '1 minute'
										   AND now() + (paas.instance_config()).data_retention,
	'the volume is kept paas.instance_data_retention');
DELETE FROM ops;
INSERT INTO ops SELECT * FROM paas.instance_ops(pg_temp.inst());
SELECT is((SELECT array_agg(verb || ' ' || tag ORDER BY seq) FROM ops),
	ARRAY['DELETE ingress', 'DELETE service', 'DELETE deployment', 'DELETE secret'], 'everything but the volume goes');
SELECT is(pg_temp.report(ARRAY[200, 200, 404, 200]), 'deleted', 'deleted (404: already gone)');
SELECT is(((pg_temp.inst()).status, (pg_temp.inst()).due_at), ('DELETED'::text, (pg_temp.inst()).volume_purge_at),
	'DELETED; due again when the volume''s retention ends');
UPDATE paas.instances SET volume_purge_at = now() - interval '1 s' WHERE id = (pg_temp.inst()).id;
DELETE FROM ops;
INSERT INTO ops SELECT * FROM paas.instance_ops(pg_temp.inst());
SELECT is((SELECT array_agg(verb || ' ' || tag ORDER BY seq) FROM ops),
	ARRAY['DELETE ingress', 'DELETE service', 'DELETE deployment', 'DELETE secret', 'DELETE persistentvolumeclaim'],
	'after the retention the volume goes too');
SELECT is(pg_temp.report(ARRAY[404, 404, 404, 404, 200]), 'deleted', 'deleted');
SELECT ok((pg_temp.inst()).volume_deleted_at IS NOT NULL AND (pg_temp.inst()).due_at IS NULL, 'the volume is gone, nothing is due');
SELECT is((SELECT desired_state FROM paas.instance_namespaces WHERE user_id = pg_temp.uid('ann')), 'present',
	'the namespace stays while another instance of the customer lives');
-- revival
SELECT pg_temp.set_sub('ACTIVE');
SELECT is(((pg_temp.inst()).status, (pg_temp.inst()).desired_state, (pg_temp.inst()).ever_running),
	('PENDING'::text, 'running'::text, false), 'a revival recreates it: PENDING, a new start');

------------------------------------------------------------------------------
-- the namespace goes when nothing of the customer remains
------------------------------------------------------------------------------
UPDATE paas.subscriptions SET status = 'EXPIRED' WHERE user_id = pg_temp.uid('ann');
UPDATE paas.instances SET observed_generation = generation, status = 'DELETED', volume_deleted_at = now(),
	   volume_purge_at = now()
 WHERE user_id = pg_temp.uid('ann') AND id <> (pg_temp.inst()).id;
DELETE FROM ops;
INSERT INTO ops SELECT * FROM paas.instance_ops(pg_temp.inst());
UPDATE paas.instances SET volume_purge_at = now() - interval '1 s' WHERE id = (pg_temp.inst()).id;
DELETE FROM ops;
INSERT INTO ops SELECT * FROM paas.instance_ops(pg_temp.inst());
SELECT is(pg_temp.report(ARRAY[404, 404, 404, 404, 200]), 'deleted', 'the last instance is deleted');
SELECT is((SELECT (desired_state, state) FROM paas.instance_namespaces WHERE user_id = pg_temp.uid('ann')),
	('absent'::text, 'DELETING'::text), 'the namespace goes');
SELECT is((SELECT array_agg(verb || ' ' || path) FROM paas.namespace_ops((SELECT n FROM paas.instance_namespaces n
			WHERE user_id = pg_temp.uid('ann')))), ARRAY['DELETE /api/v1/namespaces/paas-' || pg_temp.uid('ann')],
	'by one DELETE of the Namespace');

------------------------------------------------------------------------------
-- capacity
------------------------------------------------------------------------------
-- a node with room for one more instance after every live one (other
-- tests' committed instances count too)
UPDATE paas.nodes SET cordoned = true;
INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage,
						cpu_allocatable_m, memory_allocatable, status, is_ready)
SELECT 'pgtap-inst-node', 'pgtap-inst-node', '10.9.9.9', 1, 'x', '1Gi', '10Gi',
	   coalesce(sum(cpu_request_m), 0) + 500, (coalesce(sum(mem_request_mib), 0) + 700) * 1048576, 'ACTIVE', true
  FROM paas.instances WHERE desired_state = 'running';
CREATE TEMP TABLE bal AS SELECT paas.wallet_balance(pg_temp.uid('bob')) AS b,
	(SELECT count(*) FROM paas.subscriptions WHERE user_id = pg_temp.uid('bob')) AS n;
SELECT ok((paas.instance_capacity()).cpu_free_m >= 350, 'one small node, room for one instance');
SELECT lives_ok($$SELECT api.subscriptions_create(jsonb_build_object('serviceId', (SELECT j ->> 'id' FROM svc)),
	pg_temp.ctx('bob'))$$, 'the first sale fits');
SELECT throws_ok($$SELECT api.subscriptions_create(jsonb_build_object('serviceId', (SELECT j ->> 'id' FROM svc2)),
	pg_temp.ctx('bob'))$$, 'PT409', 'Not enough capacity in the cluster to run this service now',
	'the second does not: 409');
SELECT is(paas.wallet_balance(pg_temp.uid('bob')), (SELECT b - 20000 FROM bal), 'only the first sale was charged');
SELECT is((SELECT count(*) FROM paas.subscriptions WHERE user_id = pg_temp.uid('bob')), (SELECT n + 1 FROM bal),
	'and only it exists');
UPDATE paas.nodes SET cordoned = true WHERE name = 'pgtap-inst-node';
SELECT throws_ok($$SELECT paas.instance_capacity_check((SELECT (j ->> 'id')::uuid FROM svc2))$$, 'PT409', NULL,
	'a cordoned node offers no room');
UPDATE paas.nodes SET cordoned = false, status = 'NOT_READY', is_ready = false WHERE name = 'pgtap-inst-node';
SELECT throws_ok($$SELECT paas.instance_capacity_check((SELECT (j ->> 'id')::uuid FROM svc2))$$, 'PT409', NULL,
	'nor does a node that is not ready');
UPDATE paas.nodes SET status = 'ACTIVE', is_ready = true WHERE name = 'pgtap-inst-node';

------------------------------------------------------------------------------
-- the start deadline: failed, expired, refunded once
------------------------------------------------------------------------------
CREATE TEMP TABLE bobsub AS SELECT s.*, i.id AS iid FROM paas.subscriptions s JOIN paas.instances i ON i.subscription_id = s.id
 WHERE s.user_id = pg_temp.uid('bob') AND s.service_id = (SELECT (j ->> 'id')::uuid FROM svc);
UPDATE bal SET b = paas.wallet_balance(pg_temp.uid('bob'));
SELECT is((paas.job_instance_deadlines() ->> 'failed')::int, 0, 'nothing is past its deadline yet');
UPDATE paas.instances SET start_requested_at = now() - (paas.instance_config()).start_deadline - interval '1 s',
	   status = 'PROVISIONING', status_message = 'container app: ImagePullBackOff: nope'
 WHERE id = (SELECT iid FROM bobsub);
SELECT is(paas.job_instance_deadlines(), '{"failed": 1, "refunded": 20000}', 'the deadline job fails it and refunds');
SELECT is((SELECT status FROM paas.instances WHERE id = (SELECT iid FROM bobsub)), 'FAILED', 'the instance FAILED');
SELECT ok((SELECT last_error LIKE '%ImagePullBackOff%' FROM paas.instances WHERE id = (SELECT iid FROM bobsub)),
	'with the reason the owner saw');
SELECT is((SELECT status FROM paas.subscriptions WHERE id = (SELECT id FROM bobsub)), 'EXPIRED', 'the subscription ended');
SELECT is((SELECT desired_state FROM paas.instances WHERE id = (SELECT iid FROM bobsub)), 'deleted', 'its objects go');
SELECT is(paas.wallet_balance(pg_temp.uid('bob')), (SELECT b + 20000 FROM bal), 'the charge is back in the wallet');
SELECT is((SELECT count(*)::int FROM paas.ledger_entries WHERE kind = 'subscription_refund'
			AND (ref ->> 'subscriptionId')::uuid = (SELECT id FROM bobsub)), 1, 'one refund entry');
SELECT is((SELECT i.status FROM paas.invoices i JOIN paas.subscription_charges c ON c.invoice_id = i.id
			WHERE c.subscription_id = (SELECT id FROM bobsub)), 'VOID', 'the invoice is voided');
SELECT is((SELECT count(*)::int FROM paas.invoices i JOIN paas.subscription_charges c ON i.credit_note_for = c.invoice_id
			WHERE c.subscription_id = (SELECT id FROM bobsub)), 1, 'by a credit note');
UPDATE paas.instances SET status = 'PROVISIONING', refunded_at = NULL WHERE id = (SELECT iid FROM bobsub);
UPDATE paas.instances SET desired_state = 'running' WHERE id = (SELECT iid FROM bobsub);
SELECT is((paas.job_instance_deadlines() ->> 'refunded')::int, 20000, 'even a second run that thinks it must refund');
SELECT is(paas.wallet_balance(pg_temp.uid('bob')), (SELECT b + 20000 FROM bal), 'refunds nothing more (ledger key)');
SELECT is((SELECT count(*)::int FROM paas.ledger_entries WHERE kind = 'subscription_refund'
			AND (ref ->> 'subscriptionId')::uuid = (SELECT id FROM bobsub)), 1, 'still one refund entry');

------------------------------------------------------------------------------
-- api
------------------------------------------------------------------------------
SELECT is((api.pods_list('{}', pg_temp.ctx('bob')) -> 'pagination' ->> 'total')::int,
	(SELECT count(*)::int FROM paas.instances WHERE user_id = pg_temp.uid('bob')), 'GET /pods lists the caller''s instances');
SELECT throws_ok(format($$SELECT api.pods_get(jsonb_build_object('id', %L), pg_temp.ctx('ann'))$$,
	(SELECT iid FROM bobsub)), 'PT404', NULL, 'another user''s instance is 404');
SELECT is(api.pods_get(jsonb_build_object('id', (SELECT iid FROM bobsub)), pg_temp.ctx('bob')) ->> 'status', 'FAILED',
	'the owner sees it');
SELECT throws_ok(format($$SELECT api.pods_restart(jsonb_build_object('id', %L), pg_temp.ctx('bob'))$$,
	(SELECT iid FROM bobsub)), 'PT409', NULL, 'a FAILED instance cannot restart');
SELECT throws_ok(format($$SELECT api.pods_credentials(jsonb_build_object('id', %L), pg_temp.ctx('ann'))$$,
	(SELECT iid FROM bobsub)), 'PT404', NULL, 'credentials are the owner''s only');
SELECT throws_ok($$SELECT api.pods_admin_list('{}', pg_temp.ctx('bob'))$$, 'PT403', NULL, 'admin routes need an admin');
SELECT ok((api.pods_admin_list(jsonb_build_object('userId', pg_temp.uid('bob')), pg_temp.ctx('admin'))
			-> 'pagination' ->> 'total')::int >= 1, 'an admin filters every instance by user');

SELECT * FROM finish();
ROLLBACK;
