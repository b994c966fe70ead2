-- node actions (sql/parts/32_node_actions.sql): cordon and MAINTENANCE of
-- agent-only nodes stay registry-only; an API node whose Node the API does
-- not have is refused (PK502) and left unchanged; the drain worker's steps
-- (claim, plan, record) with PodLists and eviction answers as
-- bgworker/nodedrain.c hands them over.  In one transaction, rolled back
-- (uncommitted drains are invisible to the running drain worker).
BEGIN;
SELECT plan(32);

INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage,
						status, is_ready, kube_seen_at)
VALUES ('na-agent', 'na-agent.local', '10.8.0.1', 4, 'x86_64', '8Gi', '100Gi', 'ACTIVE', true, NULL),
	   ('na-api', 'na-api.local', '10.8.0.2', 4, 'x86_64', '8Gi', '100Gi', 'ACTIVE', true, now());
CREATE FUNCTION pg_temp.node(nm text) RETURNS paas.nodes LANGUAGE sql
	RETURN (SELECT n FROM paas.nodes n WHERE name = nm);

-- agent-only: as before
SELECT is((api.workers_set_schedulable('{"nodeId": "na-agent", "schedulable": false, "reason": "r1"}', '{}')
		   ->> 'unschedulable'), 'true', 'an agent-only node is cordoned in the registry');
SELECT is((SELECT event || ' ' || reason FROM paas.node_transitions WHERE node_name = 'na-agent' ORDER BY id DESC LIMIT 1),
	'cordon r1', 'the cordon is audited');
SELECT throws_ok($$SELECT api.workers_drain('{"nodeId": "na-agent"}', '{}')$$, 'PT409', NULL,
	'an agent-only node cannot be drained (409)');
SELECT is((api.workers_set_status('{"nodeId": "na-agent", "status": "MAINTENANCE"}', '{}') ->> 'status'), 'MAINTENANCE',
	'MAINTENANCE of an agent-only node');
SELECT ok(NOT EXISTS (SELECT 1 FROM paas.node_drains WHERE node_name = 'na-agent'), '... starts no drain');
SELECT is((api.workers_set_status('{"nodeId": "na-agent", "status": "ACTIVE"}', '{}') ->> 'isSchedulable'), 'false',
	'leaving MAINTENANCE keeps a cordon no maintenance made');
SELECT throws_ok($$SELECT api.workers_drain('{"nodeId": "na-agent", "timeoutSeconds": 0}', '{}')$$, 'PT400', NULL,
	'timeoutSeconds below 1 is a 400');

-- an API node the API does not have: 502, nothing changes (the stand-in of tests/run.sh answers 404)
SELECT throws_ok($$SELECT api.workers_set_schedulable('{"nodeId": "na-api", "schedulable": false}', '{}')$$,
	'PK502', NULL, 'a cordon the API refuses is PK502');
SELECT is((SELECT cordoned FROM paas.nodes WHERE name = 'na-api'), false, '... and the row is unchanged');
SELECT throws_ok($$SELECT api.workers_set_status('{"nodeId": "na-api", "status": "MAINTENANCE"}', '{}')$$,
	'PK502', NULL, 'MAINTENANCE the API refuses is PK502');
SELECT is((SELECT status::text FROM paas.nodes WHERE name = 'na-api'), 'ACTIVE', '... and the status is unchanged');
SELECT throws_ok($$SELECT api.workers_drain('{"nodeId": "na-api"}', '{}')$$, 'PK502', NULL,
	'a drain whose cordon the API refuses is PK502');
SELECT ok(NOT EXISTS (SELECT 1 FROM paas.node_drains WHERE node_name = 'na-api'), '... and no drain is recorded');
SELECT throws_ok($$SELECT api.workers_set_schedulable('{"nodeId": "na-api", "schedulable": true}', '{}')$$,
	'PK502', NULL, 'an uncordon the API refuses is PK502 too');
-- the machine refuses first, without calling the API
UPDATE paas.nodes SET status = 'INACTIVE', cordoned = true WHERE name = 'na-api';
SELECT throws_ok($$SELECT api.workers_set_schedulable('{"nodeId": "na-api", "schedulable": true}', '{}')$$,
	'PT409', NULL, 'uncordon of an INACTIVE node is 409 before any API call');
UPDATE paas.nodes SET status = 'ACTIVE', cordoned = true WHERE name = 'na-api';

-- the drain worker's steps (the cordon done: the row as the request leaves it)
SELECT lives_ok($$SELECT paas.node_drain_start(pg_temp.node('na-api'), 'drain', true, 60, 'admin:x', 'pgtap')$$,
	'a drain is started');
SELECT is((SELECT event || ' ' || actor FROM paas.node_transitions WHERE node_name = 'na-api' ORDER BY id DESC LIMIT 1),
	'drain admin:x', 'the drain is audited with its actor');
SELECT is((SELECT (paas.node_drain_start(pg_temp.node('na-api'), 'drain', true, 60, 'admin:y', NULL)).requested_by),
	'admin:x', 'a second request answers the live drain');
CREATE TEMP TABLE c AS SELECT * FROM paas.node_drain_claim();
SELECT is((SELECT list_path FROM c), '/api/v1/pods?fieldSelector=spec.nodeName%3Dna-api', 'the claim names the pod list');
SELECT is((SELECT id FROM paas.node_drain_claim()), NULL, 'a claimed drain is not claimed again');

CREATE FUNCTION pg_temp.pod(nm text, extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql
	RETURN jsonb_build_object('metadata', jsonb_build_object('name', nm, 'namespace', 'ns1') || extra,
							  'spec', '{"nodeName": "na-api"}'::jsonb);
CREATE TEMP TABLE plan1 AS SELECT * FROM paas.node_drain_plan((SELECT id FROM c), jsonb_build_object('items', jsonb_build_array(
	pg_temp.pod('web-1'), pg_temp.pod('web-2'),
	pg_temp.pod('ds-1', '{"ownerReferences": [{"kind": "DaemonSet", "name": "ds", "controller": true}]}'),
	pg_temp.pod('static-1', '{"annotations": {"kubernetes.io/config.mirror": "x"}}'),
	pg_temp.pod('going', '{"deletionTimestamp": "2026-01-01T00:00:00Z"}')))::text, 200, NULL);
SELECT is((SELECT string_agg(path, ' ' ORDER BY path) FROM plan1),
	'/api/v1/namespaces/ns1/pods/web-1/eviction /api/v1/namespaces/ns1/pods/web-2/eviction',
	'the plan evicts the plain pods only');
SELECT is((SELECT body::jsonb FROM plan1 WHERE path LIKE '%web-1%'),
	'{"kind": "Eviction", "metadata": {"name": "web-1", "namespace": "ns1"}, "apiVersion": "policy/v1"}'::jsonb,
	'an eviction body is a policy/v1 Eviction');
SELECT is((SELECT string_agg((s ->> 'name') || ':' || (s ->> 'why'), ', ' ORDER BY s ->> 'name')
		   FROM paas.node_drains d, jsonb_array_elements(d.skipped) s WHERE d.node_name = 'na-api'),
	'ds-1:DaemonSet-managed, static-1:mirror pod', 'DaemonSet and mirror pods are skipped');

SELECT paas.node_drain_record((SELECT id FROM c),
	ARRAY['/api/v1/namespaces/ns1/pods/web-1/eviction', '/api/v1/namespaces/ns1/pods/web-2/eviction'],
	ARRAY[201, 429],
	ARRAY['{"kind": "Status", "status": "Success"}',
		  '{"kind": "Status", "status": "Failure", "reason": "TooManyRequests", "code": 429, "message": "Cannot evict pod as it would violate the pod''s disruption budget."}']);
SELECT is((SELECT row(state, paas.node_drain_json(d) ->> 'blocked', next_attempt_at > now(), claimed_until IS NULL)::text
		   FROM paas.node_drains d WHERE node_name = 'na-api'), '(running,1,t,t)',
	'a refused eviction: running, one pod blocked, the next pass later, the lease given back');
SELECT is((SELECT r ->> 'message' FROM paas.node_drains d, jsonb_array_elements(d.remaining) r
		   WHERE d.node_name = 'na-api' AND r ->> 'name' = 'web-2'),
	'Cannot evict pod as it would violate the pod''s disruption budget.', 'the API''s message is kept for the pod');

-- next pass: web-1 is gone, web-2 still there (keeps its blocked report until answered again)
UPDATE paas.node_drains SET next_attempt_at = now() WHERE node_name = 'na-api';
SELECT is((SELECT count(*)::int FROM paas.node_drain_claim() WHERE id IS NOT NULL), 1, 'the next pass is claimed when due');
SELECT is((SELECT string_agg(path, ' ') FROM paas.node_drain_plan((SELECT id FROM c),
	jsonb_build_object('items', jsonb_build_array(pg_temp.pod('web-2'),
		pg_temp.pod('ds-1', '{"ownerReferences": [{"kind": "DaemonSet", "name": "ds", "controller": true}]}')))::text,
	200, NULL)), '/api/v1/namespaces/ns1/pods/web-2/eviction', 'the blocked pod is evicted again');
SELECT paas.node_drain_record((SELECT id FROM c), ARRAY['/api/v1/namespaces/ns1/pods/web-2/eviction'], ARRAY[201],
							  ARRAY['{"kind": "Status", "status": "Success"}']);
UPDATE paas.node_drains SET next_attempt_at = now(), claimed_until = NULL WHERE node_name = 'na-api';
SELECT is((SELECT count(*)::int FROM paas.node_drain_plan((SELECT id FROM paas.node_drain_claim()),
	jsonb_build_object('items', jsonb_build_array(
		pg_temp.pod('ds-1', '{"ownerReferences": [{"kind": "DaemonSet", "name": "ds", "controller": true}]}')))::text,
	200, NULL)), 0, 'nothing left to evict');
SELECT is((SELECT row(state, jsonb_array_length(evicted), finished_at IS NOT NULL)::text
		   FROM paas.node_drains WHERE node_name = 'na-api'), '(complete,2,t)',
	'only skipped pods left: complete, both evictions recorded');
SELECT is((SELECT event FROM paas.node_transitions WHERE node_name = 'na-api' ORDER BY id DESC LIMIT 1),
	'drain_complete', 'the end is audited');

-- a drain past its deadline ends incomplete and lists what is left
SELECT paas.node_drain_start(pg_temp.node('na-api'), 'drain', false, 1, 'admin:x', NULL);
UPDATE paas.node_drains SET deadline = now() - interval '1 second' WHERE node_name = 'na-api' AND state = 'pending';
CREATE TEMP TABLE c2 AS SELECT * FROM paas.node_drain_claim();
SELECT is((SELECT count(*)::int FROM paas.node_drain_plan((SELECT id FROM c2),
	jsonb_build_object('items', jsonb_build_array(pg_temp.pod('db-1')))::text, 200, NULL)), 0,
	'past the deadline nothing more is evicted');
SELECT is((SELECT state || ' ' || (remaining -> 0 ->> 'name') FROM paas.node_drains WHERE id = (SELECT id FROM c2)),
	'incomplete db-1', 'the drain ends incomplete with the pod left listed');

SELECT * FROM finish();
ROLLBACK;
