-- node sync (sql/parts/31_node_sync.sql): what bgworker/nodesync.c hands
-- to SQL -- list pages, watch lines, pod pages -- and what the registry
-- becomes.  In one transaction, rolled back; "later" lists are simulated
-- with a start time after now().
BEGIN;
SELECT plan(47);

CREATE TEMP TABLE node_doc AS SELECT $${
  "metadata": {"name": "ks-1", "uid": "uid-ks-1", "resourceVersion": "5", "labels": {"zone": "a"}},
  "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
  "status": {"capacity": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi", "pods": "110"},
             "allocatable": {"cpu": "3800m", "memory": "7Gi", "ephemeral-storage": "90Gi", "pods": "100"},
             "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                             "lastHeartbeatTime": "2026-01-01T00:00:00Z"}],
             "addresses": [{"type": "InternalIP", "address": "10.9.0.1"}, {"type": "Hostname", "address": "ks-1"}],
             "nodeInfo": {"kubeletVersion": "v1.30.0", "architecture": "amd64", "operatingSystem": "linux"}}}$$::jsonb AS d;

CREATE FUNCTION pg_temp.ev(type text, d jsonb) RETURNS text LANGUAGE sql
	RETURN jsonb_build_object('type', type, 'object', d)::text;
CREATE FUNCTION pg_temp.doc(rv text, patch jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql
	RETURN jsonb_set((SELECT d FROM node_doc), '{metadata,resourceVersion}', to_jsonb(rv)) || patch;
CREATE FUNCTION pg_temp.ready(rv text, st text, hb text DEFAULT '2026-01-01T00:00:00Z') RETURNS jsonb LANGUAGE sql
	RETURN jsonb_set(pg_temp.doc(rv), '{status,conditions}',
					 jsonb_build_array(jsonb_build_object('type', 'Ready', 'status', st, 'reason', 'R', 'message', 'm',
														  'lastHeartbeatTime', hb)));

-- the list
SELECT is(paas.node_sync_page(ARRAY[pg_temp.doc('5'), '{"metadata": {"name": "broken"}}'::jsonb]),
	'{"invalid": 1, "registered": 1}', 'a page''s Nodes are applied, each with its outcome');
SELECT is((SELECT row(status, is_ready, cpu_allocatable_m, memory_allocatable, pods_allocatable, labels ->> 'zone',
					  kubelet_version, kube_uid, token_hash IS NULL)::text FROM paas.nodes WHERE name = 'ks-1'),
	'(ACTIVE,t,3800,7516192768,100,a,v1.30.0,uid-ks-1,t)', 'a Node of the list is an ACTIVE node with its figures and no agent token');
SELECT is((SELECT taints -> 0 ->> 'key' FROM paas.nodes WHERE name = 'ks-1'), 'dedicated', 'taints are kept');
SELECT ok(NOT EXISTS (SELECT 1 FROM paas.nodes WHERE name = 'broken'), 'a Node that cannot be read is skipped, the others applied');
SELECT is((SELECT paas.node_json(n) ->> 'source' FROM paas.nodes n WHERE name = 'ks-1'), 'kubernetes', 'source kubernetes');
SELECT is((SELECT actor || ' ' || event FROM paas.node_transitions WHERE node_name = 'ks-1' ORDER BY id LIMIT 1),
	'kubernetes register', 'the registration is audited with actor kubernetes');

-- the agent of an API node adds usage only
SELECT lives_ok($$SELECT api.workers_heartbeat('{"nodeName": "ks-1", "isReady": false, "cpuUsage": "500m", "allocatedCPU": "3", "currentPods": 9}')$$,
	'the node''s agent may send heartbeats');
SELECT is((SELECT row(status, is_ready, cpu_used_m, cpu_allocated_m, current_pods)::text FROM paas.nodes WHERE name = 'ks-1'),
	'(ACTIVE,t,500,0,0)', 'the API''s readiness and allocations win; the agent''s usage is kept');

-- watch: Ready=False, then a heartbeat-only post, then Ready=True
SELECT is(paas.node_sync_events(ARRAY[pg_temp.ev('MODIFIED', pg_temp.ready('11', 'False'))]), '11', 'events answer the last resourceVersion');
SELECT is((SELECT status FROM paas.nodes WHERE name = 'ks-1'), 'NOT_READY', 'Ready=False in the API is NOT_READY');
SELECT is((SELECT actor || ' ' || event || ' ' || reason FROM paas.node_transitions WHERE node_name = 'ks-1' ORDER BY id DESC LIMIT 1),
	'kubernetes heartbeat_not_ready R: m', 'audited with the condition''s reason and message');
SELECT is(paas.node_sync_apply(pg_temp.ready('12', 'False', '2026-01-01T00:01:00Z')), 'unchanged',
	'a post that only moves lastHeartbeatTime takes the short path');
SELECT is((SELECT kube_resource_version || ' ' || (conditions -> 0 ->> 'lastHeartbeatTime') FROM paas.nodes WHERE name = 'ks-1'),
	'12 2026-01-01T00:01:00Z', 'and still records the version and conditions');
SELECT is(paas.node_sync_events(ARRAY[pg_temp.ev('MODIFIED', pg_temp.ready('13', 'Unknown'))]), '13', 'Unknown');
SELECT is((SELECT status FROM paas.nodes WHERE name = 'ks-1'), 'NOT_READY', 'Ready=Unknown is NOT_READY too');
SELECT is(paas.node_sync_events(ARRAY[pg_temp.ev('MODIFIED', pg_temp.ready('14', 'True')),
									  '{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}}']),
	'20', 'a bookmark moves the version');
SELECT is((SELECT status FROM paas.nodes WHERE name = 'ks-1'), 'ACTIVE', 'Ready=True again is ACTIVE');

-- the monitor's clock times the node out; the API still says Ready
UPDATE paas.nodes SET last_heartbeat = now() - interval '1 day' WHERE name = 'ks-1';
SELECT paas.job_node_monitor();
SELECT is((SELECT status || ' ' || kube_resource_version FROM paas.nodes WHERE name = 'ks-1'), 'INACTIVE 14',
	'(the monitor timed it out)');
SELECT cmp_ok(paas.node_sync_alive(), '>=', 1, 'alive asks for a new list when the monitor timed out a node the API knows');
SELECT is(paas.node_sync_apply(pg_temp.ready('14', 'True')), 'updated', 'the same version is applied in full again');
SELECT is((SELECT row(status, is_ready, conditions -> 0 ->> 'status')::text FROM paas.nodes WHERE name = 'ks-1'),
	'(ACTIVE,t,True)', 'a node Ready in the API is ACTIVE again with the API''s conditions');

-- cordon in the cluster
SELECT paas.node_sync_events(ARRAY[pg_temp.ev('MODIFIED', jsonb_set(pg_temp.doc('21'), '{spec,unschedulable}', 'true'))]);
SELECT is((SELECT row(cordoned, paas.node_schedulable(n))::text FROM paas.nodes n WHERE name = 'ks-1'), '(t,f)',
	'spec.unschedulable is the cordon');
SELECT is((SELECT actor || ' ' || event FROM paas.node_transitions WHERE node_name = 'ks-1' ORDER BY id DESC LIMIT 1),
	'kubernetes cordon', 'audited');

-- 410
SELECT is(paas.node_sync_events(ARRAY['{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}']),
	'GONE', 'a 410 ERROR event says GONE (list again)');

-- allocations from the pods bound to the node
SELECT paas.node_sync_pods_begin();
SELECT is(paas.node_sync_pods_page(ARRAY(SELECT jsonb_array_elements($$[
  {"metadata": {"name": "a", "labels": {"app.kubernetes.io/managed-by": "paas"}}, "spec": {"nodeName": "ks-1",
   "containers": [{"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}, {"resources": {}}]}, "status": {"phase": "Running"}},
  {"metadata": {"name": "b"}, "spec": {"nodeName": "ks-1",
   "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "1Mi"}}}],
   "containers": [{"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}, "status": {"phase": "Pending"}},
  {"metadata": {"name": "done"}, "spec": {"nodeName": "ks-1",
   "containers": [{"resources": {"requests": {"cpu": "8"}}}]}, "status": {"phase": "Succeeded"}},
  {"metadata": {"name": "unbound"}, "spec": {"containers": [{"resources": {"requests": {"cpu": "8"}}}]}}]$$))), 2,
	'a pod page counts its bound pods that neither succeeded nor failed');
SELECT is(paas.node_sync_pods_end(), 1, 'one node changed');
SELECT is((SELECT row(cpu_allocated_m, memory_allocated, current_pods, allocated_cpu, foreign_cpu_m, foreign_memory)::text
			 FROM paas.nodes WHERE name = 'ks-1'),
	'(2250,1140850688,2,2250m,2000,1073741824)',
	'allocated = the running and pending pods'' requests (an init container''s when larger); foreign = those paas does not manage');

-- deletion: by the watch, and by a later list
SELECT paas.node_sync_events(ARRAY[pg_temp.ev('DELETED', pg_temp.doc('30'))]);
SELECT is((SELECT row(status, kube_seen_at IS NULL)::text FROM paas.nodes WHERE name = 'ks-1'), '(INACTIVE,t)',
	'a Node deleted in the API is INACTIVE and no longer the API''s');
SELECT is((SELECT actor || ' ' || reason FROM paas.node_transitions WHERE node_name = 'ks-1' ORDER BY id DESC LIMIT 1),
	'kubernetes deleted from the cluster', 'audited, history kept');
SELECT paas.node_sync_page(ARRAY[jsonb_set(jsonb_set(pg_temp.doc('31'), '{metadata,name}', '"ks-2"'),
									  '{status,addresses}', '[{"type": "InternalIP", "address": "10.9.0.2"}]')]);
INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage, status)
VALUES ('agent-only', 'agent-only', '10.9.0.3', 1, 'amd64', '1Gi', '1Gi', 'ACTIVE');
CREATE TEMP TABLE api_nodes AS SELECT count(*)::int AS k FROM paas.nodes WHERE kube_seen_at IS NOT NULL AND name <> 'ks-2';
SELECT is(paas.node_sync_end(now() + interval '1 second'), (SELECT k + 1 FROM api_nodes),
	'a complete list later without ks-2 (nor the stand-in''s nodes) removes them');
SELECT is((SELECT string_agg(name || ' ' || status, ', ' ORDER BY name) FROM paas.nodes WHERE name IN ('ks-2', 'agent-only')),
	'agent-only ACTIVE, ks-2 INACTIVE', 'a node only an agent knows is left alone');

-- many Nodes at once (paas.node_sync_apply_many): each as node_sync_apply would
CREATE FUNCTION pg_temp.node(nm text, ip text, rv text, st text DEFAULT 'True', host text DEFAULT NULL) RETURNS jsonb
	LANGUAGE sql RETURN jsonb_set(jsonb_set(jsonb_set(jsonb_set(pg_temp.ready(rv, st), '{metadata,name}', to_jsonb(nm)),
		'{metadata,uid}', to_jsonb('uid-' || nm)), '{metadata,labels}', jsonb_build_object('zone', nm)),
		'{status,addresses}', jsonb_build_array(jsonb_build_object('type', 'InternalIP', 'address', ip),
												jsonb_build_object('type', 'Hostname', 'address', coalesce(host, nm))));
-- the columns of a node that must not depend on how it was applied
CREATE FUNCTION pg_temp.shape(nm text) RETURNS text LANGUAGE sql
	RETURN (SELECT row(status, is_ready, cordoned, architecture, operating_system, cpu_cores, cpu_architecture,
					   total_memory, total_storage, cpu_capacity_m, memory_capacity, storage_capacity,
					   cpu_allocatable_m, memory_allocatable, storage_allocatable, pods_allocatable, max_pods,
					   taints, conditions, kubelet_version, container_runtime, kernel_version, os_image,
					   provider_id, pod_cidr, token_hash IS NULL, registered_at IS NOT NULL, kube_seen_at IS NOT NULL,
					   kube_digest IS NOT NULL, last_heartbeat IS NOT NULL, labels ->> 'zone' = nm,
					   kube_uid = 'uid-' || nm)::text
			  FROM paas.nodes WHERE name = nm);
SELECT is(paas.node_sync_apply(pg_temp.node('mb-one', '10.8.0.1', '40')), 'registered', '(one Node on its own)');
SELECT is(paas.node_sync_apply_many(ARRAY[pg_temp.node('mb-a', '10.8.0.2', '41'), pg_temp.node('mb-b', '10.8.0.3', '41', 'False'),
										  '{"metadata": {"name": "mb-broken"}}'::jsonb,
										  pg_temp.node('mb-c', '10.8.0.4', '41', 'True', 'mb-one'),
										  pg_temp.node('mb-d', '10.8.0.5', '41', 'True', 'mb-dup'),
										  pg_temp.node('mb-e', '10.8.0.6', '41', 'True', 'mb-dup'),
										  pg_temp.node('mb-a', '10.8.0.2', '42')]),
	'{"failed": 2, "invalid": 1, "unchanged": 1, "registered": 3}'::jsonb,
	'a batch: registered, invalid, hostname taken (by a node, or within the batch), a name twice');
SELECT is(pg_temp.shape('mb-a'), pg_temp.shape('mb-one'),
	'a node registered in a batch is the node registered on its own');
SELECT is((SELECT kube_resource_version || ' ' || (kube_digest = paas.node_digest(pg_temp.node('mb-a', '10.8.0.2', '0')))
			 FROM paas.nodes WHERE name = 'mb-a'), '42 true',
	'its second object in the batch (only the version moved) is applied after it, on its own');
SELECT is((SELECT row(status, is_ready, kube_resource_version)::text FROM paas.nodes WHERE name = 'mb-b'), '(NOT_READY,f,41)',
	'Ready=False in a batch registers NOT_READY');
SELECT is((SELECT string_agg(concat_ws(' ', node_name, coalesce(from_status, '-'), to_status, event, actor, reason), '; ' ORDER BY id)
			 FROM paas.node_transitions WHERE node_name IN ('mb-a', 'mb-b', 'mb-d', 'mb-e')),
	'mb-a - ACTIVE register kubernetes registered from the Kubernetes API; '
	|| 'mb-b - NOT_READY register_not_ready kubernetes registered from the Kubernetes API; '
	|| 'mb-d - ACTIVE register kubernetes registered from the Kubernetes API',
	'each registration audited once, in the batch''s order; the second object of mb-a changed no status');
SELECT is((SELECT string_agg(name, ' ' ORDER BY name) FROM paas.nodes WHERE name IN ('mb-broken', 'mb-c', 'mb-d', 'mb-e')), 'mb-d',
	'a Node without capacity, one with a taken hostname and the second of two with the same hostname are not registered');
-- again: unchanged versions; heartbeat times only; a change
UPDATE paas.nodes SET last_heartbeat = now() - interval '1 minute' WHERE name IN ('mb-a', 'mb-b', 'mb-d');
SELECT is(paas.node_sync_apply_many(ARRAY[pg_temp.node('mb-a', '10.8.0.2', '42'),
										  pg_temp.node('mb-b', '10.8.0.3', '43', 'False', NULL) #- '{kind}',
										  pg_temp.node('mb-d', '10.8.0.5', '44', 'False', 'mb-dup')]),
	'{"unchanged": 2, "updated": 1}'::jsonb, 'a batch of a seen version, a heartbeat and a change');
SELECT is((SELECT string_agg(row(name, kube_resource_version, last_heartbeat > now() - interval '1 second')::text, ' ' ORDER BY name)
			 FROM paas.nodes WHERE name IN ('mb-a', 'mb-b', 'mb-d')),
	'(mb-a,42,f) (mb-b,43,t) (mb-d,44,t)',
	'a seen version is only stamped; a heartbeat and a change record the version and the heartbeat');
SELECT is((SELECT status || ' ' || event FROM paas.nodes n JOIN paas.node_transitions t ON t.node_id = n.id
			WHERE n.name = 'mb-d' ORDER BY t.id DESC LIMIT 1), 'NOT_READY heartbeat_not_ready',
	'a changed node goes through the status machine, audited');
-- a List item (no kind, no apiVersion) and the watch's object of it have one digest
SELECT is(paas.node_digest(pg_temp.node('mb-a', '10.8.0.2', '42') - 'kind' - 'apiVersion'),
		  paas.node_digest(pg_temp.node('mb-a', '10.8.0.2', '43') || '{"kind": "Node", "apiVersion": "v1"}'),
	'the digest leaves out kind and apiVersion');

-- the watch: a node's events in their order, in rounds
SELECT is(paas.node_sync_events(ARRAY[pg_temp.ev('MODIFIED', pg_temp.node('mb-a', '10.8.0.2', '50', 'False')),
									  pg_temp.ev('MODIFIED', pg_temp.node('mb-b', '10.8.0.3', '51', 'True')),
									  pg_temp.ev('MODIFIED', pg_temp.node('mb-a', '10.8.0.2', '52', 'True')),
									  'not json',
									  pg_temp.ev('DELETED', pg_temp.node('mb-b', '10.8.0.3', '53')),
									  pg_temp.ev('ADDED', pg_temp.node('mb-f', '10.8.0.7', '54'))]),
	'54', 'a batch of events answers its last version (a line that is not JSON skipped)');
SELECT is((SELECT string_agg(concat_ws(' ', node_name, from_status, to_status, event), '; ' ORDER BY id)
			 FROM paas.node_transitions WHERE node_name IN ('mb-a', 'mb-b') AND event <> 'register'
			   AND event <> 'register_not_ready'),
	'mb-a ACTIVE NOT_READY heartbeat_not_ready; mb-b NOT_READY ACTIVE heartbeat_ready; '
	|| 'mb-a NOT_READY ACTIVE heartbeat_ready; mb-b ACTIVE INACTIVE admin_deactivate',
	'two events of a node in one batch: both applied, in order, each audited');
SELECT is((SELECT string_agg(name || ' ' || status, ', ' ORDER BY name) FROM paas.nodes WHERE name IN ('mb-a', 'mb-b', 'mb-f')),
	'mb-a ACTIVE, mb-b INACTIVE, mb-f ACTIVE', 'modified, deleted after its change, added');
SELECT is(paas.node_sync_events(ARRAY[pg_temp.ev('MODIFIED', pg_temp.node('mb-a', '10.8.0.2', '60', 'False')),
									  '{"type": "ERROR", "object": {"kind": "Status", "code": 410}}',
									  pg_temp.ev('MODIFIED', pg_temp.node('mb-f', '10.8.0.7', '61', 'False'))]),
	'GONE', 'GONE in a batch');
SELECT is((SELECT string_agg(name || ' ' || status, ', ' ORDER BY name) FROM paas.nodes WHERE name IN ('mb-a', 'mb-f')),
	'mb-a NOT_READY, mb-f ACTIVE', 'the events before a 410 are applied, those after it are not');

SELECT * FROM finish();
ROLLBACK;
