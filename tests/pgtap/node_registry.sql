-- node_registry: paas.nodes and its status machine (sql/parts/30_node_registry.sql):
-- the C table pair by pair, the administrators' transitions (MAINTENANCE
-- is sticky, cordon survives heartbeats) with their audit, create / update
-- / delete, one rule for quantities, lists and stats, the resource fields
-- of a report (C) against the SQL field checks, and the value domains.
BEGIN;
SELECT plan(121);

\ir include/nodes.sql
\ir include/node_fixture.sql

-- The machine.  The expected table, written out independently of C.
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

-- Admin transitions (a DBA session: no ctx needed), MAINTENANCE is sticky.
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
-- one rule for memory and storage: quantity strings; a bare number has no
-- unit and is a field error, here as in the original ("must be a string")
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

SELECT finish();
ROLLBACK;
