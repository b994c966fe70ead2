-- nodes: the status machine (extension/nodes.c) pair by pair, and the
-- workers api called as the gateway and a DBA would: join and node tokens,
-- registration of both field sets, heartbeats, admin transitions, audit,
-- the health-monitor pass (set-based, called directly here; the background
-- worker runs it in node_monitor.sql).
BEGIN;
SELECT plan(194);

-- 1. The machine.  The expected table, written out independently of C.
CREATE TEMP TABLE expected (status text, event text, next_status text);
INSERT INTO expected VALUES
	('PENDING', 'register', 'ACTIVE'), ('ACTIVE', 'register', 'ACTIVE'), ('NOT_READY', 'register', 'ACTIVE'),
	('INACTIVE', 'register', 'ACTIVE'), ('MAINTENANCE', 'register', 'MAINTENANCE'),
	('PENDING', 'register_not_ready', 'NOT_READY'), ('ACTIVE', 'register_not_ready', 'NOT_READY'),
	('NOT_READY', 'register_not_ready', 'NOT_READY'), ('INACTIVE', 'register_not_ready', 'NOT_READY'),
	('MAINTENANCE', 'register_not_ready', 'MAINTENANCE'),
	('PENDING', 'heartbeat_ready', 'ACTIVE'), ('ACTIVE', 'heartbeat_ready', 'ACTIVE'),
	('NOT_READY', 'heartbeat_ready', 'ACTIVE'), ('INACTIVE', 'heartbeat_ready', 'ACTIVE'),
	('MAINTENANCE', 'heartbeat_ready', 'MAINTENANCE'),
	('PENDING', 'heartbeat_not_ready', 'NOT_READY'), ('ACTIVE', 'heartbeat_not_ready', 'NOT_READY'),
	('NOT_READY', 'heartbeat_not_ready', 'NOT_READY'), ('INACTIVE', 'heartbeat_not_ready', 'NOT_READY'),
	('MAINTENANCE', 'heartbeat_not_ready', 'MAINTENANCE'),
	('ACTIVE', 'heartbeat_timeout', 'NOT_READY'),
	('ACTIVE', 'offline_timeout', 'INACTIVE'), ('NOT_READY', 'offline_timeout', 'INACTIVE'),
	('PENDING', 'admin_activate', 'ACTIVE'), ('ACTIVE', 'admin_activate', 'ACTIVE'),
	('NOT_READY', 'admin_activate', 'ACTIVE'), ('INACTIVE', 'admin_activate', 'ACTIVE'),
	('MAINTENANCE', 'admin_activate', 'ACTIVE'),
	('PENDING', 'admin_deactivate', 'INACTIVE'), ('ACTIVE', 'admin_deactivate', 'INACTIVE'),
	('NOT_READY', 'admin_deactivate', 'INACTIVE'), ('INACTIVE', 'admin_deactivate', 'INACTIVE'),
	('MAINTENANCE', 'admin_deactivate', 'INACTIVE'),
	('PENDING', 'admin_maintenance', 'MAINTENANCE'), ('ACTIVE', 'admin_maintenance', 'MAINTENANCE'),
	('NOT_READY', 'admin_maintenance', 'MAINTENANCE'), ('INACTIVE', 'admin_maintenance', 'MAINTENANCE'),
	('MAINTENANCE', 'admin_maintenance', 'MAINTENANCE'),
	-- an administrator may set any status from any status, as in the original
	('PENDING', 'admin_pending', 'PENDING'), ('ACTIVE', 'admin_pending', 'PENDING'),
	('NOT_READY', 'admin_pending', 'PENDING'), ('INACTIVE', 'admin_pending', 'PENDING'),
	('MAINTENANCE', 'admin_pending', 'PENDING'),
	('PENDING', 'admin_not_ready', 'NOT_READY'), ('ACTIVE', 'admin_not_ready', 'NOT_READY'),
	('NOT_READY', 'admin_not_ready', 'NOT_READY'), ('INACTIVE', 'admin_not_ready', 'NOT_READY'),
	('MAINTENANCE', 'admin_not_ready', 'NOT_READY'),
	('PENDING', 'cordon', 'PENDING'), ('ACTIVE', 'cordon', 'ACTIVE'), ('NOT_READY', 'cordon', 'NOT_READY'),
	('INACTIVE', 'cordon', 'INACTIVE'), ('MAINTENANCE', 'cordon', 'MAINTENANCE'),
	('PENDING', 'uncordon', 'PENDING'), ('ACTIVE', 'uncordon', 'ACTIVE'), ('NOT_READY', 'uncordon', 'NOT_READY');
CREATE TEMP TABLE pairs AS
	SELECT s.status, e.event, x.next_status
	  FROM unnest(ARRAY['PENDING', 'ACTIVE', 'NOT_READY', 'INACTIVE', 'MAINTENANCE']) s(status)
	 CROSS JOIN unnest(ARRAY['register', 'register_not_ready', 'heartbeat_ready', 'heartbeat_not_ready',
							 'heartbeat_timeout', 'offline_timeout', 'admin_activate', 'admin_deactivate',
							 'admin_maintenance', 'admin_pending', 'admin_not_ready', 'cordon', 'uncordon']) e(event)
	  LEFT JOIN expected x USING (status, event);

SELECT set_eq($$SELECT status, event, next_status FROM paas.node_transitions()$$,
	$$SELECT status, event, next_status FROM expected$$, 'the C table is exactly the expected one');
SELECT is(paas.node_transition(status, event), next_status, format('%s + %s -> %s', status, event, next_status))
  FROM pairs WHERE next_status IS NOT NULL ORDER BY status, event;
SELECT throws_ok(format('SELECT paas.node_transition(%L, %L)', status, event), 'PT409', NULL,
		format('%s + %s is refused with PT409', status, event))
  FROM pairs WHERE next_status IS NULL ORDER BY status, event;
SELECT is(count(*)::int, 9, 'nine refused pairs: the monitor''s timeouts where they cannot happen, uncordon while INACTIVE or in MAINTENANCE') FROM pairs WHERE next_status IS NULL;
SELECT is((SELECT count(*)::int FROM pairs WHERE next_status IS NULL AND event LIKE 'admin_%'), 0,
	'no status an administrator sets is refused');
SELECT ok(NOT paas.node_transition_allowed('MAINTENANCE', 'uncordon'), 'transition_allowed agrees');
SELECT throws_ok($$SELECT paas.node_transition('GONE', 'register')$$, '22023', 'unknown node status "GONE"', 'unknown status');
SELECT throws_ok($$SELECT paas.node_transition('ACTIVE', 'explode')$$, '22023', 'unknown node event "explode"', 'unknown event');

-- 2. Join tokens and registration.
CREATE TEMP TABLE t (k text PRIMARY KEY, v jsonb);
SELECT lives_ok($$SELECT api.workers_join_token_add('pgtap-join-token-0001', 'pgtap')$$, 'a join token is added');
SELECT is(api.workers_join_token_add('pgtap-join-token-0001'),
	(SELECT id FROM paas.node_join_tokens WHERE token_hash = digest('pgtap-join-token-0001', 'sha256')),
	'adding it again is idempotent');
SELECT throws_ok($$SELECT api.workers_join_token_add('short')$$, 'PT400', 'Validation failed', 'join tokens are long');
SELECT ok((SELECT token_hash <> convert_to('pgtap-join-token-0001', 'UTF8') FROM paas.node_join_tokens
			WHERE note = 'pgtap'), 'join tokens are stored hashed');
DO $$ BEGIN PERFORM api.workers_join_token_add('pgtap-join-token-revoked', 'revoked'); END $$;
UPDATE paas.node_join_tokens SET revoked_at = now() WHERE note = 'revoked';
DO $$ BEGIN PERFORM api.workers_join_token_add('pgtap-join-token-expired', 'expired', now() - interval '1 second'); END $$;

CREATE FUNCTION pg_temp.spec(name text, ip text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('name', name, 'hostname', name || '.pgtap.local', 'ipAddress', ip,
		'cpuCores', 8, 'cpuArchitecture', 'AMD Ryzen 7 6800H', 'totalMemory', '32Gi', 'totalStorage', '500Gi',
		'labels', jsonb_build_object('zone', 'a'), 'kubeletVersion', 'v1.31.5+k3s1') $$;
CREATE FUNCTION pg_temp.join() RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"nodeToken": "pgtap-join-token-0001"}'::jsonb $$;
CREATE FUNCTION pg_temp.tok(key text) RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('nodeToken', v ->> 'nodeToken') FROM t WHERE k = key $$;

SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-a', '10.9.0.1'), '{"nodeToken": "not-a-join-token"}')$$,
	'PT401', 'Invalid join token', 'an unknown join token is refused');
SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-a', '10.9.0.1'), '{"nodeToken": "pgtap-join-token-revoked"}')$$,
	'PT401', 'Invalid join token', 'a revoked join token is refused');
SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-a', '10.9.0.1'), '{"nodeToken": "pgtap-join-token-expired"}')$$,
	'PT401', 'Invalid join token', 'an expired join token is refused');
INSERT INTO t VALUES ('a', api.workers_register(pg_temp.spec('pg-a', '10.9.0.1'), pg_temp.join()));
INSERT INTO t VALUES ('b', api.workers_register(pg_temp.spec('pg-b', '10.9.0.2') || '{"registrationToken": "pgtap-join-token-0001"}', '{}'));
SELECT is((SELECT v ->> 'status' FROM t WHERE k = 'a'), 'ACTIVE', 'registration makes the node ACTIVE');
SELECT ok((SELECT (v ->> 'created')::boolean FROM t WHERE k = 'a'), 'the first registration creates the node');
SELECT is((SELECT length(v ->> 'nodeToken') FROM t WHERE k = 'a'), 64, 'the node token is 256 bits (hex)');
SELECT is((SELECT count(*)::int FROM paas.nodes WHERE token_hash = digest((SELECT v ->> 'nodeToken' FROM t WHERE k = 'a'), 'sha256')),
	1, 'only the node token''s hash is stored');
SELECT ok((SELECT last_used_at IS NOT NULL FROM paas.node_join_tokens WHERE note = 'pgtap'), 'join token use is recorded');
SELECT is((SELECT v ->> 'status' FROM t WHERE k = 'b'), 'ACTIVE', 'the original body field registrationToken works too');
SELECT ok((SELECT count(*) FROM jsonb_object_keys(api.workers_get('{"nodeId": "pg-a"}'))) >= 28, 'the record has the original''s 28 fields and more');
SELECT is(api.workers_get('{"nodeId": "pg-a"}') #>> '{capacity,memoryBytes}', '34359738368', 'totalMemory parsed to bytes');
SELECT is(api.workers_get(jsonb_build_object('nodeId', (SELECT v ->> 'id' FROM t WHERE k = 'a'))) ->> 'name', 'pg-a', ':nodeId accepts the id');
SELECT throws_ok($$SELECT api.workers_get('{"nodeId": "no-such-node"}')$$, 'PW404', 'Worker node not found', 'unknown node (WORKER_NODE_NOT_FOUND)');
SELECT throws_ok($$SELECT api.workers_get('{"nodeId": "00000000-0000-0000-0000-000000000000"}')$$, 'PW404', 'Worker node not found', 'unknown id');

-- validation: every failing field at once, quantities parsed in C
SELECT throws_ok($$SELECT api.workers_register('{"name": "x", "ipAddress": "300.1.1.1", "cpuCores": 0, "totalMemory": "16GB", "totalStorage": "1K", "labels": {"a": 1}, "taints": [{"key": "k", "effect": "Sometimes"}]}', pg_temp.join())$$,
	'PT400', 'Validation failed', 'bad registration');
CREATE FUNCTION pg_temp.fields(q text) RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN NULL;
EXCEPTION WHEN SQLSTATE 'PT400' THEN
	DECLARE d text; BEGIN
		GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
		RETURN (SELECT array_agg(e ->> 'field' ORDER BY e ->> 'field') FROM jsonb_array_elements(d::jsonb) e);
	END;
END $$;
SELECT is(pg_temp.fields($$SELECT api.workers_register('{"name": "x", "ipAddress": "300.1.1.1", "cpuCores": 0, "totalMemory": "16GB", "totalStorage": "1K", "labels": {"a": 1}, "taints": [{"key": "k", "effect": "Sometimes"}]}', '{"nodeToken": "pgtap-join-token-0001"}')$$),
	ARRAY['cpuArchitecture', 'cpuCores', 'hostname', 'ipAddress', 'labels.a', 'name', 'taints.0', 'totalMemory', 'totalStorage'],
	'all failing fields are listed');
SELECT is(pg_temp.fields($$SELECT api.workers_register('{"kind": "Node", "metadata": {"name": "k"}, "status": {"capacity": {"cpu": "4x", "memory": "1Ki", "pods": "-1"}, "allocatable": {"memory": "2KB"}}}', '{"nodeToken": "pgtap-join-token-0001"}')$$),
	ARRAY['status.addresses', 'status.allocatable.memory', 'status.capacity.cpu', 'status.capacity.pods'],
	'a Node object''s errors use its own paths');

-- Kubernetes Node object (k3s, cordoned, allocatable below capacity)
INSERT INTO t VALUES ('kdoc', $${"apiVersion": "v1", "kind": "Node",
	"metadata": {"name": "pg-k3s", "uid": "c24142f9-1fb8-4f4a-92f3-0bed37bd4874",
				 "labels": {"kubernetes.io/hostname": "pg-k3s", "node.kubernetes.io/instance-type": "k3s"}},
	"spec": {"providerID": "k3s://pg-k3s", "unschedulable": true,
			 "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": "2026-04-18T18:20:18Z"}]},
	"status": {"capacity": {"cpu": "4", "ephemeral-storage": "103079844Ki", "memory": "16331368Ki", "pods": "110"},
			   "allocatable": {"cpu": "3800m", "ephemeral-storage": "94998384074", "memory": "16228968Ki", "pods": "110"},
			   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
			   "addresses": [{"type": "InternalIP", "address": "192.0.2.24"}, {"type": "Hostname", "address": "pg-k3s"}],
			   "nodeInfo": {"machineID": "", "kubeletVersion": "v1.31.5+k3s1", "containerRuntimeVersion": "containerd://1.7.23-k3s2",
							"kernelVersion": "6.1.128", "osImage": "Ubuntu 24.04.1 LTS", "operatingSystem": "linux", "architecture": "amd64"}}}$$);
INSERT INTO t VALUES ('k', api.workers_register((SELECT v FROM t WHERE k = 'kdoc'), pg_temp.join()));
SELECT is(api.workers_get('{"nodeId": "pg-k3s"}') -> 'allocatable',
	'{"cpuMillicores": 3800, "memoryBytes": 16618463232, "storageBytes": 94998384074, "pods": 110}'::jsonb,
	'allocatable parsed from the Node object');
SELECT is(api.workers_get('{"nodeId": "pg-k3s"}') -> 'capacity',
	'{"cpuMillicores": 4000, "memoryBytes": 16723320832, "storageBytes": 105553760256, "pods": 110}'::jsonb,
	'capacity parsed from the Node object');
SELECT is((SELECT array[status, is_ready::text, cordoned::text, container_runtime, provider_id] FROM paas.nodes WHERE name = 'pg-k3s'),
	ARRAY['ACTIVE', 'true', 'true', 'containerd://1.7.23-k3s2', 'k3s://pg-k3s'], 'status, cordon and node info taken over');
SELECT is((t.v ->> 'isSchedulable')::boolean, false, 'a cordoned node is not schedulable') FROM t WHERE k = 'k';

-- re-registration needs the node's own token: the join token alone cannot
-- take an existing name over (its address, capacity and token)
SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-a', '10.66.6.6'), pg_temp.join())$$,
	'PW409', 'Worker node with this name already exists; re-registering it needs its node token',
	'a join token cannot re-register an existing node (WORKER_NODE_EXISTS)');
SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-a', '10.66.6.6') || '{"registrationToken": "pgtap-join-token-0001"}', '{}')$$,
	'PW409', NULL, 'nor through the body field');
SELECT is((SELECT host(ip_address) FROM paas.nodes WHERE name = 'pg-a'), '10.9.0.1', 'the refused takeover changed nothing');
SELECT is(api.workers_heartbeat('{"nodeName": "pg-a"}', pg_temp.tok('a')) ->> 'name', 'pg-a', 'the real node''s token still works');
SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-a', '10.66.6.6'), pg_temp.tok('b'))$$,
	'PT403', 'This node token belongs to another node', 'another node''s token cannot re-register it');
SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-new-via-node-token', '10.66.6.7'), pg_temp.tok('b'))$$,
	'PT403', 'This node token belongs to another node', 'a node token creates no node');
SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-a', '10.66.6.6'), '{"nodeToken": "pgtap-join-token-revoked"}')$$,
	'PT401', 'Invalid join token', 'a dead token is still 401');
-- a Kubernetes Node object with the uid the node registered with may use the join token
SELECT is(api.workers_register(jsonb_set((SELECT v FROM t WHERE k = 'kdoc'), '{metadata,labels,zone}', '"b"'), pg_temp.join()) ->> 'id',
	(SELECT v ->> 'id' FROM t WHERE k = 'k'), 'a Node object with the same uid re-registers with the join token');
SELECT throws_ok($$SELECT api.workers_register(jsonb_set((SELECT v FROM t WHERE k = 'kdoc'), '{metadata,uid}', '"00000000-0000-0000-0000-00000000beef"'), pg_temp.join())$$,
	'PW409', NULL, 'another uid does not');
SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-k3s', '10.66.6.8') || '{"hostname": "pg-k3s", "kubeUid": "c24142f9-1fb8-4f4a-92f3-0bed37bd4874"}', pg_temp.join())$$,
	'PW409', NULL, 'nor a uid claimed in the original field set');
SELECT is((SELECT labels ->> 'zone' FROM paas.nodes WHERE name = 'pg-k3s'), 'b', 'the uid match took the new fields');

-- re-registration with the node token: idempotent, rotates the token
INSERT INTO t VALUES ('a2', api.workers_register(pg_temp.spec('pg-a', '10.9.0.11'), pg_temp.tok('a')));
SELECT is((SELECT v ->> 'id' FROM t WHERE k = 'a2'), (SELECT v ->> 'id' FROM t WHERE k = 'a'), 're-registering keeps the node');
SELECT ok(NOT (SELECT (v ->> 'created')::boolean FROM t WHERE k = 'a2'), 're-registering does not create');
SELECT is((SELECT host(ip_address) FROM paas.nodes WHERE name = 'pg-a'), '10.9.0.11', 're-registering updates the fields');
SELECT throws_ok($$SELECT api.workers_heartbeat('{"nodeName": "pg-a"}', pg_temp.tok('a'))$$, 'PT401', 'Invalid node token',
	'the previous node token stops working');
SELECT throws_ok($$SELECT api.workers_register(pg_temp.spec('pg-c', '10.9.0.3') || '{"hostname": "pg-a.pgtap.local"}', pg_temp.join())$$,
	'PW409', 'Worker node with this hostname already exists', 'hostnames are unique');

-- 3. Heartbeats: node token, server time, readiness events.
SELECT throws_ok($$SELECT api.workers_heartbeat('{"nodeName": "pg-a"}', '{"nodeToken": "nope"}')$$, 'PT401', 'Invalid node token', 'unknown node token');
SELECT throws_ok($$SELECT api.workers_heartbeat('{"nodeName": "pg-a"}', pg_temp.tok('b'))$$, 'PT403',
	'This node token belongs to another node', 'another node''s token');
SELECT throws_ok($$SELECT api.workers_resources('{"nodeId": "pg-a", "currentPods": 1}', pg_temp.tok('b'))$$, 'PT403',
	'This node token belongs to another node', 'another node''s token on resources');
SELECT throws_ok($$SELECT api.workers_heartbeat('{"nodeName": "no-such-node"}', pg_temp.tok('b'))$$, 'PT403',
	'This node token belongs to another node', 'a token never reveals whether another node exists');
UPDATE paas.nodes SET last_heartbeat = now() - interval '1 hour' WHERE name = 'pg-a';
SELECT is(api.workers_heartbeat('{"nodeName": "pg-a", "agentTime": "2000-01-01T00:00:00Z"}', pg_temp.tok('a2')) ->> 'lastHeartbeat',
	paas.iso(now()), 'the heartbeat time is the server''s, not the agent''s');
SELECT ok((SELECT agent_clock_skew_ms < 0 FROM paas.nodes WHERE name = 'pg-a'), 'the agent''s clock is kept as skew only');
SELECT is(api.workers_heartbeat(jsonb_build_object('nodeId', (SELECT v ->> 'id' FROM t WHERE k = 'a')) || '{"isReady": false}', pg_temp.tok('a2')) ->> 'status',
	'NOT_READY', 'a not-ready heartbeat (by id) makes the node NOT_READY');
SELECT is(api.workers_heartbeat('{"nodeName": "pg-a", "conditions": [{"type": "Ready", "status": "True"}], "cpuUsage": "350m", "memoryUsage": "2Gi", "allocatedMemory": 2048, "currentPods": 4}', pg_temp.tok('a2')) ->> 'status',
	'ACTIVE', 'a ready heartbeat brings it back');
SELECT is((SELECT array[cpu_used_m, memory_used, memory_allocated, current_pods] FROM paas.nodes WHERE name = 'pg-a'),
	ARRAY[350, 2147483648, 2147483648, 4]::bigint[], 'usage and allocation stored (numbers: MiB for allocatedMemory)');
SELECT is((SELECT array_agg(from_status || '>' || to_status || ':' || event ORDER BY id) FROM paas.node_transitions
			WHERE node_name = 'pg-a' AND actor = 'node' AND from_status <> to_status),
	ARRAY['ACTIVE>NOT_READY:heartbeat_not_ready', 'NOT_READY>ACTIVE:heartbeat_ready'], 'heartbeat transitions are audited');
SELECT is((SELECT count(*)::int FROM paas.node_transitions WHERE node_name = 'pg-a' AND event = 'heartbeat_ready'
			AND from_status = 'ACTIVE'), 0, 'heartbeats that change nothing are not audited');
SELECT is(pg_temp.fields($$SELECT api.workers_heartbeat('{"nodeName": "pg-a", "isReady": "maybe", "status": "MAINTENANCE", "cpuUsage": "1 core", "currentPods": -1, "conditions": 5, "agentTime": "yesterday-ish"}', pg_temp.tok('a2'))$$),
	ARRAY['agentTime', 'conditions', 'cpuUsage', 'currentPods', 'isReady', 'status'], 'heartbeat fields are validated');
SELECT is(pg_temp.fields($$SELECT api.workers_heartbeat('{"nodeName": "pg-a", "allocatedMemory": 1.5, "allocatedStorage": 2.25, "memoryUsage": 2147483648, "storageUsage": 1000}', pg_temp.tok('a2'))$$),
	ARRAY['allocatedMemory', 'allocatedStorage', 'memoryUsage', 'storageUsage'],
	'heartbeat numbers: whole MB / GB for allocatedMemory / allocatedStorage only; usage is a quantity string');
SELECT throws_ok($$SELECT api.workers_resources('{"nodeId": "pg-a"}', pg_temp.tok('a2'))$$, 'PT400', 'Validation failed',
	'a resource report needs a field');
SELECT is(api.workers_resources('{"nodeId": "pg-a", "allocatedCPU": "1500m", "storageUsage": "1073741824"}', pg_temp.tok('a2')) ->> 'allocatedCPU',
	'1500m', 'resources update the allocation');

-- 4. Admin transitions (a DBA session: no ctx needed), MAINTENANCE is sticky.
SELECT is(api.workers_set_status('{"nodeId": "pg-a", "status": "MAINTENANCE", "reason": "disk swap"}') ->> 'status', 'MAINTENANCE', 'admin sets MAINTENANCE');
SELECT is(api.workers_heartbeat('{"nodeName": "pg-a"}', pg_temp.tok('a2')) ->> 'status', 'MAINTENANCE', 'a heartbeat does not leave MAINTENANCE');
SELECT is(api.workers_heartbeat('{"nodeName": "pg-a", "isReady": false}', pg_temp.tok('a2')) ->> 'status', 'MAINTENANCE', 'nor a not-ready one');
INSERT INTO t VALUES ('a3', api.workers_register(pg_temp.spec('pg-a', '10.9.0.11'), pg_temp.tok('a2')));
SELECT is((SELECT v ->> 'status' FROM t WHERE k = 'a3'), 'MAINTENANCE', 'nor a registration');
SELECT throws_ok($$SELECT api.workers_set_schedulable('{"nodeId": "pg-a", "schedulable": true}')$$, 'PT409', NULL,
	'uncordon is refused in MAINTENANCE');
SELECT is(api.workers_set_status('{"nodeId": "pg-a", "status": "PENDING"}') ->> 'status', 'PENDING',
	'MAINTENANCE -> PENDING: an administrator sets any status, as in the original');
SELECT is(api.workers_set_status('{"nodeId": "pg-a", "status": "ACTIVE"}') ->> 'status', 'ACTIVE', 'the admin leaves MAINTENANCE');
SELECT is((SELECT actor || ':' || reason FROM paas.node_transitions WHERE node_name = 'pg-a' AND event = 'admin_maintenance'),
	'dba:' || session_user || ':disk swap', 'admin transitions are audited with actor and reason');
SELECT is(api.workers_set_schedulable('{"nodeId": "pg-a", "schedulable": false}') ->> 'isSchedulable', 'false', 'cordon');
SELECT is((SELECT api.workers_heartbeat('{"nodeName": "pg-a"}', pg_temp.tok('a3')) ->> 'isSchedulable'), 'false',
	'a heartbeat does not undo a cordon');
SELECT is(api.workers_set_schedulable('{"nodeId": "pg-a", "isSchedulable": true}') ->> 'isSchedulable', 'true', 'uncordon');
SELECT throws_ok($$SELECT api.workers_set_status('{"nodeId": "pg-a", "status": "BROKEN"}')$$, 'PT400', 'Validation failed', 'unknown status');
SELECT throws_ok($$SELECT api.workers_set_schedulable('{"nodeId": "pg-a"}')$$, 'PT400', 'Validation failed', 'schedulable is required');
SELECT throws_ok($$SELECT api.workers_set_status('{"nodeId": "pg-a", "status": "ACTIVE"}', '{"userId": "00000000-0000-0000-0000-000000000001", "role": "ADMINISTRATOR"}')$$,
	'PT401', NULL, 'a forged admin context is refused');

-- admin create / update / delete
INSERT INTO t VALUES ('c', api.workers_create(pg_temp.spec('pg-created', '10.9.0.20') || '{"maxPods": 50}'));
SELECT is((SELECT v ->> 'status' FROM t WHERE k = 'c'), 'PENDING', 'admin-created nodes start PENDING');
SELECT is((SELECT (v ->> 'maxPods')::int FROM t WHERE k = 'c'), 50, 'maxPods taken');
SELECT throws_ok($$SELECT api.workers_create(pg_temp.spec('pg-created', '10.9.0.21') || '{"hostname": "other.pgtap.local"}')$$,
	'PW409', 'Worker node with this name already exists', 'names are unique');
SELECT is(api.workers_update('{"nodeId": "pg-created", "totalMemory": "64Gi", "labels": {"zone": "b"}}') #>> '{capacity,memoryBytes}',
	'68719476736', 'update re-derives capacity');
-- one rule for memory and storage: quantity strings; a bare number (which
-- used to be bytes) is a field error, here as in the original ("must be a string")
SELECT is(pg_temp.fields($$SELECT api.workers_update('{"nodeId": "pg-created", "totalMemory": 32768, "totalStorage": 500000, "allocatedMemory": 512, "allocatedStorage": 10}')$$),
	ARRAY['allocatedMemory', 'allocatedStorage', 'totalMemory', 'totalStorage'], 'update: memory and storage numbers are refused');
SELECT is(api.workers_get('{"nodeId": "pg-created"}') #>> '{capacity,memoryBytes}', '68719476736', 'and nothing shrank');
SELECT is(pg_temp.fields($$SELECT api.workers_create(pg_temp.spec('pg-numbers', '10.9.0.30') || '{"totalMemory": 16384, "totalStorage": 500000}')$$),
	ARRAY['totalMemory', 'totalStorage'], 'create: so are they');
SELECT throws_ok($$SELECT api.workers_create(pg_temp.spec('pg-numbers', '10.9.0.30') || '{"totalMemory": 16384}')$$,
	'PT400', 'Validation failed', 'a clear 400');
SELECT is((SELECT e ->> 'message' FROM jsonb_array_elements(paas.check_qty('[]', 'totalMemory', '16384', NULL, false, true)) e),
	'totalMemory must be a quantity string such as "16Gi" (a number has no unit)', 'which says why');
SELECT is(pg_temp.fields($$SELECT api.workers_register(pg_temp.spec('pg-numbers', '10.9.0.30') || '{"totalStorage": 500}', pg_temp.join())$$),
	ARRAY['totalStorage'], 'register: so are they');
SELECT is(pg_temp.fields($$SELECT api.workers_register('{"kind": "Node", "metadata": {"name": "pg-numbers"}, "status": {"capacity": {"cpu": 4, "memory": 16384, "pods": 110}, "allocatable": {"ephemeral-storage": 1000}, "addresses": [{"type": "InternalIP", "address": "10.9.0.30"}]}}', pg_temp.join())$$),
	ARRAY['status.allocatable.ephemeral-storage', 'status.capacity.memory'], 'in a Node object too (CPU and pods may be numbers)');
SELECT is(api.workers_create(pg_temp.spec('pg-numbers', '10.9.0.30') || '{"allocatedCPU": 1.5, "allocatedMemory": "2Gi"}') #>> '{allocation,cpuMillicores}',
	'1500', 'a CPU number is cores');
DO $$ BEGIN PERFORM api.workers_delete('{"nodeId": "pg-numbers"}'); END $$;
SELECT throws_ok($$SELECT api.workers_update('{"nodeId": "pg-created"}')$$, 'PT400', 'Validation failed', 'update needs a field');
SELECT is(api.workers_update('{"nodeId": "pg-created", "status": "NOT_READY"}') ->> 'status', 'NOT_READY',
	'PENDING -> NOT_READY is allowed (the original allowed it)');
SELECT is((SELECT from_status || '>' || to_status || ':' || event FROM paas.node_transitions
			WHERE node_name = 'pg-created' ORDER BY id DESC LIMIT 1),
	'PENDING>NOT_READY:admin_not_ready', 'update goes through the status machine and its audit');
SELECT is(api.workers_update('{"nodeId": "pg-created", "status": "INACTIVE"}') ->> 'status', 'INACTIVE', 'update may deactivate');
SELECT is(api.workers_set_status('{"nodeId": "pg-created", "status": "PENDING"}') ->> 'status', 'PENDING', 'INACTIVE -> PENDING');
SELECT is(api.workers_delete('{"nodeId": "pg-created"}') ->> 'name', 'pg-created', 'delete');
SELECT throws_ok($$SELECT api.workers_get('{"nodeId": "pg-created"}')$$, 'PW404', 'Worker node not found', 'deleted');
SELECT ok(EXISTS (SELECT 1 FROM paas.node_transitions WHERE node_name = 'pg-created' AND event = 'admin_delete'),
	'the audit outlives the node');

-- lists and stats
SELECT ok((SELECT (api.workers_list('{"search": "pg-", "limit": 100}') #>> '{data,pagination,total}')::int >= 3), 'list searches');
SELECT is((SELECT count(*)::int FROM jsonb_array_elements(api.workers_list('{"search": "pgtap", "isSchedulable": "false", "limit": 100}') #> '{data,workers}') w
			WHERE (w ->> 'isSchedulable')::boolean), 0, 'isSchedulable filter works');
SELECT throws_ok($$SELECT api.workers_list('{"status": "nope", "limit": 0}')$$, 'PT400', 'Validation failed', 'list filters are validated');
SELECT ok((api.workers_stats() #>> '{resources,cpu,total}')::bigint >= 20000, 'stats sum capacities');
SELECT ok((SELECT bool_and(paas.node_schedulable(n)) FROM paas.nodes n
			WHERE n.id IN (SELECT (e ->> 'id')::uuid FROM jsonb_array_elements(api.workers_online() -> 'nodes') e)), 'online nodes are schedulable');
SELECT ok((SELECT bool_and(NOT paas.node_schedulable(n)) FROM paas.nodes n
			WHERE n.id IN (SELECT (e ->> 'id')::uuid FROM jsonb_array_elements(api.workers_offline() -> 'nodes') e)), 'offline nodes are not');

-- 5. The monitor pass, set-based (now() is fixed inside this transaction).
CREATE FUNCTION pg_temp.mk(name text, status text, silent interval) RETURNS void LANGUAGE sql AS $$
	INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage,
							status, is_ready, last_heartbeat, conditions)
	VALUES (name, name, '10.8.0.1', 1, 'x', '1Gi', '1Gi', status, status = 'ACTIVE', now() - silent,
			'[{"type": "Ready", "status": "True", "reason": "KubeletReady"}, {"type": "NetworkUnavailable", "status": "False"}]') $$;
SELECT pg_temp.mk('mon-fresh', 'ACTIVE', '10 seconds');
SELECT pg_temp.mk('mon-stale', 'ACTIVE', '2 minutes');
SELECT pg_temp.mk('mon-gone', 'ACTIVE', '10 minutes');
SELECT pg_temp.mk('mon-nr-stale', 'NOT_READY', '2 minutes');
SELECT pg_temp.mk('mon-nr-gone', 'NOT_READY', '6 minutes');
SELECT pg_temp.mk('mon-maint', 'MAINTENANCE', '1 day');
SELECT pg_temp.mk('mon-pending', 'PENDING', '1 day');
SELECT pg_temp.mk('mon-inactive', 'INACTIVE', '1 day');
UPDATE paas.nodes SET last_heartbeat = now() - interval '1 day' WHERE name LIKE 'pg-%' OR name IN ('pgtap', 'minikube');
CREATE TEMP TABLE pass AS SELECT paas.job_node_monitor() AS r;
SELECT is((SELECT array[(r ->> 'notReady')::int >= 1, (r ->> 'inactive')::int >= 3] FROM pass), ARRAY[true, true], 'the pass reports its counts');
SELECT is((SELECT array_agg(name || '=' || status ORDER BY name) FROM paas.nodes WHERE name LIKE 'mon-%'),
	ARRAY['mon-fresh=ACTIVE', 'mon-gone=INACTIVE', 'mon-inactive=INACTIVE', 'mon-maint=MAINTENANCE',
		  'mon-nr-gone=INACTIVE', 'mon-nr-stale=NOT_READY', 'mon-pending=PENDING', 'mon-stale=NOT_READY'],
	'grace -> NOT_READY, offline -> INACTIVE; MAINTENANCE, PENDING untouched');
SELECT is((SELECT array[is_ready::text, paas.node_schedulable(n)::text, conditions -> 0 ->> 'status', conditions -> 0 ->> 'reason',
						conditions -> 1 ->> 'status'] FROM paas.nodes n WHERE name = 'mon-stale'),
	ARRAY['false', 'false', 'Unknown', 'NodeStatusUnknown', 'False'], 'a silent node is not ready, not schedulable, Ready=Unknown');
SELECT is((SELECT array_agg(from_status || '>' || to_status || ':' || event || ':' || actor ORDER BY node_name) FROM paas.node_transitions
			WHERE node_name IN ('mon-stale', 'mon-gone')),
	ARRAY['ACTIVE>INACTIVE:offline_timeout:monitor', 'ACTIVE>NOT_READY:heartbeat_timeout:monitor'], 'monitor transitions are audited');
SELECT is(paas.job_node_monitor() ->> 'notReady', '0', 'a second pass changes nothing');
SELECT is(api.workers_heartbeat('{"nodeName": "pg-b"}', pg_temp.tok('b')) ->> 'status', 'ACTIVE', 'an INACTIVE node comes back with a heartbeat');
SELECT is((SELECT enabled AND run_every <= interval '10 seconds' FROM paas.job WHERE name = 'node_monitor'), true,
	'the monitor is a job of the registry, run every few seconds');
SELECT is((SELECT array[grace_period, offline_after] FROM paas.node_health_settings()),
	ARRAY[current_setting('paas.node_grace_period')::interval, current_setting('paas.node_offline_after')::interval],
	'the GUCs are readable with current_setting()');

------------------------------------------------------------------------------
-- paas.node_report: the resource fields of a report, checked and converted in C
------------------------------------------------------------------------------
SELECT is((SELECT row(r.errs, r.allocated_cpu, r.allocated_memory, r.allocated_storage, r.cpu_allocated_m,
					  r.memory_allocated, r.storage_allocated, r.cpu_used_m, r.memory_used, r.storage_used,
					  r.current_pods)::text
			 FROM paas.node_report('{"allocatedCPU": "1500m", "allocatedMemory": 512, "allocatedStorage": 10,
									"cpuUsage": 0.35, "memoryUsage": "2Gi", "storageUsage": "1e9",
									"currentPods": " 3 "}') r),
	row('[]'::jsonb, '1500m', '512Mi', '10Gi', 1500::bigint, 536870912::bigint, 10737418240::bigint,
		350::bigint, 2147483648::bigint, 1000000000::bigint, 3)::text,
	'node_report converts every field: numbers get their unit, CPU in millicores, the rest in bytes');
SELECT is((SELECT row(r.errs, r.cpu_used_m, r.current_pods)::text FROM paas.node_report('{"cpuUsage": null, "other": 1}') r),
	row('[]'::jsonb, NULL::bigint, NULL::int)::text, 'absent and null fields are NULL and no error');
SELECT is((paas.node_report('{"allocatedCPU": true, "memoryUsage": "-1", "storageUsage": "12XB",
							  "currentPods": 3.5, "allocatedMemory": "1Ki"}')).errs,
	jsonb_build_array(
		jsonb_build_object('field', 'allocatedCPU', 'message', 'allocatedCPU must be a quantity string (e.g. 500m, 16Gi)'),
		jsonb_build_object('field', 'memoryUsage', 'message', 'memoryUsage is not a valid quantity: quantity must not be negative'),
		jsonb_build_object('field', 'storageUsage', 'message', 'storageUsage is not a valid quantity: ' ||
			'quantity has an invalid suffix (allowed: n u m k M G T P E, Ki Mi Gi Ti Pi Ei, or an exponent such as e3)'),
		jsonb_build_object('field', 'currentPods', 'message', 'currentPods must be an integer')),
	'bad fields are listed in field order with their messages; good ones pass');
SELECT is((SELECT row(r.errs ->> 0, r.current_pods)::text FROM paas.node_report('{"currentPods": 1000001}') r),
	row('{"field": "currentPods", "message": "currentPods must be between 0 and 1000000"}', NULL::int)::text,
	'pods out of range: an error and no value');
-- the C pass says exactly what the SQL field checks say, field by field
SELECT is_empty($$
	SELECT v FROM (VALUES ('"500m"'), ('"1.5"'), ('2'), ('2.0'), ('2.5'), ('-4'), ('"-3"'), ('"1e3"'), ('"x"'), ('"9223372036854775807"'),
						  ('"0.1m"'), ('"16Gi"'), ('[]'), ('""'), ('"1E"'), ('"1e1001"')) t (v)
	 WHERE (paas.node_report(jsonb_build_object('cpuUsage', v::jsonb, 'allocatedMemory', v::jsonb,
												'allocatedStorage', v::jsonb, 'memoryUsage', v::jsonb))).errs
		   IS DISTINCT FROM paas.check_qty(paas.check_qty(paas.check_qty(paas.check_qty('[]',
											'allocatedMemory', v::jsonb, 'Mi', false, false),
											'allocatedStorage', v::jsonb, 'Gi', false, false),
											'cpuUsage', v::jsonb, '', true, false),
											'memoryUsage', v::jsonb, NULL, false, false)
		OR (paas.node_report(jsonb_build_object('currentPods', v::jsonb))).errs
		   IS DISTINCT FROM paas.check_int('[]', jsonb_build_object('currentPods', v::jsonb), 'currentPods', false, 0, 1000000)$$,
	'node_report and check_qty / check_int agree on every sample');

-- the value rules of paas.nodes are domains: still enforced for every writer
SELECT throws_ok($$UPDATE paas.nodes SET status = 'GONE' WHERE name = 'pg-b'$$, '23514', NULL,
	'an unknown status is refused (domain paas.node_status)');
SELECT throws_ok($$UPDATE paas.nodes SET current_pods = -1 WHERE name = 'pg-b'$$, '23514', NULL,
	'a negative pod count is refused (domain paas.node_count)');
SELECT throws_ok($$UPDATE paas.nodes SET memory_capacity = -1 WHERE name = 'pg-b'$$, '23514', NULL,
	'a negative capacity is refused (domain paas.node_amount)');
SELECT throws_ok($$UPDATE paas.nodes SET cpu_cores = 0 WHERE name = 'pg-b'$$, '23514', NULL,
	'a node without cores is refused (domain paas.node_cores)');
SELECT is((SELECT count(*)::int FROM pg_constraint WHERE conrelid = 'paas.nodes'::regclass AND contype = 'c'), 0,
	'paas.nodes has no table CHECK for an UPDATE to evaluate');

-- api.workers_heartbeat_batch: the gateway's batches of concurrent heartbeats
SELECT is((SELECT array_agg(e ->> 'name' ORDER BY n) FROM jsonb_array_elements(api.workers_heartbeat_batch(jsonb_build_array(
		jsonb_build_object('req', '{"nodeName": "pg-b", "cpuUsage": "250m"}'::jsonb, 'ctx', pg_temp.tok('b')),
		jsonb_build_object('req', '{"nodeName": "pg-a", "cpuUsage": "125m"}'::jsonb, 'ctx', pg_temp.tok('a3')),
		jsonb_build_object('req', '{"nodeName": "pg-b", "cpuUsage": "500m"}'::jsonb, 'ctx', pg_temp.tok('b'))))) WITH ORDINALITY AS t (e, n)),
	ARRAY['pg-b', 'pg-a', 'pg-b'], 'a batch answers every item, in the items'' order');
SELECT is((SELECT array_agg(cpu_used_m ORDER BY name) FROM paas.nodes WHERE name IN ('pg-a', 'pg-b')),
	ARRAY[125, 500]::bigint[], 'each item is applied as a single heartbeat (the same node twice: the later wins)');
SELECT throws_ok($$SELECT api.workers_heartbeat_batch(jsonb_build_array(
		jsonb_build_object('req', '{"nodeName": "pg-a", "cpuUsage": "900m"}'::jsonb, 'ctx', pg_temp.tok('a3')),
		jsonb_build_object('req', '{"nodeName": "pg-b"}'::jsonb, 'ctx', '{"nodeToken": "nope"}'::jsonb)))$$,
	'PT401', 'Invalid node token', 'one refused item fails the whole batch');
SELECT is((SELECT cpu_used_m FROM paas.nodes WHERE name = 'pg-a'), 125::bigint,
	'and nothing of a failed batch stays');
SELECT throws_ok($$SELECT api.workers_heartbeat_batch('{"req": {}}')$$, 'PT400', 'Validation failed',
	'a batch is an array');

-- the status history is kept paas.node_history_retention (default 90 days)
SELECT is(paas.node_history_retention(), interval '90 days', 'node history is kept 90 days by default');
INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, at)
SELECT gen_random_uuid(), 'prune-' || i, 'ACTIVE', 'NOT_READY', 'heartbeat_timeout', 'monitor',
	   now() - CASE WHEN i <= 3 THEN interval '91 days' ELSE interval '89 days' END
  FROM generate_series(1, 5) i;
SELECT is(paas.job_prune_node_transitions() ->> 'deleted', '3', 'the prune job deletes what is older');
SELECT is((SELECT count(*)::int FROM paas.node_transitions WHERE node_name LIKE 'prune-%'), 2, 'and keeps the rest');
SELECT is((SELECT run_every FROM paas.job WHERE name = 'prune_node_transitions'), interval '1 hour',
	'it is a job of the registry, run hourly');

SELECT finish();
ROLLBACK;
