-- node_agent: the protocol a node's agent speaks (sql/parts/33_node_agent.sql),
-- called as the gateway and a DBA would: join tokens and node tokens,
-- registration in both field sets (the original's and a Kubernetes Node
-- object), takeover refused, re-registration, heartbeats with the server's
-- time and readiness events, resource reports, and the gateway's batches.
BEGIN;
SELECT plan(61);

\ir include/nodes.sql

-- Join tokens and registration.
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
SELECT is(pg_temp.fields($$SELECT api.workers_register('{"name": "x", "ipAddress": "300.1.1.1", "cpuCores": 0, "totalMemory": "16GB", "totalStorage": "1K", "labels": {"a": 1}, "taints": [{"key": "k", "effect": "Sometimes"}]}', '{"nodeToken": "pgtap-join-token-0001"}')$$),
	ARRAY['cpuArchitecture', 'cpuCores', 'hostname', 'ipAddress', 'labels.a', 'name', 'taints.0', 'totalMemory', 'totalStorage'],
	'all failing fields are listed');
SELECT is(pg_temp.fields($$SELECT api.workers_register('{"kind": "Node", "metadata": {"name": "k"}, "status": {"capacity": {"cpu": "4x", "memory": "1Ki", "pods": "-1"}, "allocatable": {"memory": "2KB"}}}', '{"nodeToken": "pgtap-join-token-0001"}')$$),
	ARRAY['status.addresses', 'status.allocatable.memory', 'status.capacity.cpu', 'status.capacity.pods'],
	'a Node object''s errors use its own paths');

-- Kubernetes Node object (k3s, cordoned, allocatable below capacity)
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

-- Heartbeats: node token, server time, readiness events.
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

-- api.workers_heartbeat_batch: the gateway's batches of concurrent heartbeats
SELECT is((SELECT array_agg(e ->> 'name' ORDER BY n) FROM jsonb_array_elements(api.workers_heartbeat_batch(jsonb_build_array(
		jsonb_build_object('req', '{"nodeName": "pg-b", "cpuUsage": "250m"}'::jsonb, 'ctx', pg_temp.tok('b')),
		jsonb_build_object('req', '{"nodeName": "pg-a", "cpuUsage": "125m"}'::jsonb, 'ctx', pg_temp.tok('a2')),
		jsonb_build_object('req', '{"nodeName": "pg-b", "cpuUsage": "500m"}'::jsonb, 'ctx', pg_temp.tok('b'))))) WITH ORDINALITY AS t (e, n)),
	ARRAY['pg-b', 'pg-a', 'pg-b'], 'a batch answers every item, in the items'' order');
SELECT is((SELECT array_agg(cpu_used_m ORDER BY name) FROM paas.nodes WHERE name IN ('pg-a', 'pg-b')),
	ARRAY[125, 500]::bigint[], 'each item is applied as a single heartbeat (the same node twice: the later wins)');
SELECT throws_ok($$SELECT api.workers_heartbeat_batch(jsonb_build_array(
		jsonb_build_object('req', '{"nodeName": "pg-a", "cpuUsage": "900m"}'::jsonb, 'ctx', pg_temp.tok('a2')),
		jsonb_build_object('req', '{"nodeName": "pg-b"}'::jsonb, 'ctx', '{"nodeToken": "nope"}'::jsonb)))$$,
	'PT401', 'Invalid node token', 'one refused item fails the whole batch');
SELECT is((SELECT cpu_used_m FROM paas.nodes WHERE name = 'pg-a'), 125::bigint,
	'and nothing of a failed batch stays');
SELECT throws_ok($$SELECT api.workers_heartbeat_batch('{"req": {}}')$$, 'PT400', 'Validation failed',
	'a batch is an array');


SELECT finish();
ROLLBACK;
