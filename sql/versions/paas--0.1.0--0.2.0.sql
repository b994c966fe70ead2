-- paas 0.1.0 -> 0.2.0 (ALTER EXTENSION paas UPDATE).
--
-- What changes: the value rules of paas.nodes become domains (a heartbeat
-- no longer pays for eleven table CHECKs); a heartbeat's report is checked
-- and converted in C (paas.node_report, replacing paas.node_check_report)
-- and applied in one statement; the gateway's batch functions
-- (api.*_batch); renewal runs in shards over background workers
-- (paas.run_parallel, paas.run_renewals_part); helpers whose bodies are
-- STABLE are declared so, which lets the planner inline them.
-- tests/upgrade/check.sh proves that an updated 0.1.0 database defines
-- exactly what a fresh 0.2.0 install does, and keeps its data.  The function
-- definitions below are those of sql/parts as printed by pg_get_functiondef.

\echo Use "ALTER EXTENSION paas UPDATE" to load this file. \quit

CREATE DOMAIN paas.node_status AS text
	CHECK (VALUE IN ('ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY'));
CREATE DOMAIN paas.node_amount AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN paas.node_count AS integer CHECK (VALUE >= 0);
CREATE DOMAIN paas.node_cores AS integer CHECK (VALUE BETWEEN 1 AND 100000);
CREATE DOMAIN paas.node_pod_limit AS integer CHECK (VALUE BETWEEN 1 AND 1000000);
COMMENT ON DOMAIN paas.node_status IS 'a worker node''s status (the states of extension/nodes.c)';
COMMENT ON DOMAIN paas.node_amount IS 'a non-negative resource amount (millicores or bytes)';
COMMENT ON DOMAIN paas.node_count IS 'a non-negative count (pods)';
COMMENT ON DOMAIN paas.node_cores IS 'a node''s CPU core count';
COMMENT ON DOMAIN paas.node_pod_limit IS 'a node''s pod limit';

CREATE TYPE paas.node_report AS (
	errs				jsonb,
	allocated_cpu		text,
	allocated_memory	text,
	allocated_storage	text,
	cpu_allocated_m		bigint,
	memory_allocated	bigint,
	storage_allocated	bigint,
	cpu_used_m			bigint,
	memory_used			bigint,
	storage_used		bigint,
	current_pods		integer
);
COMMENT ON TYPE paas.node_report IS 'the checked resource fields of a node''s report';

-- The functions with SQL-standard bodies that read these columns are
-- dropped and created again below (PostgreSQL does not change a column's
-- type under them).
DROP FUNCTION paas.node_json(paas.nodes);
DROP FUNCTION paas.node_audit(paas.nodes, text, text, text, text);
DROP FUNCTION paas.node_spec(paas.nodes);
DROP FUNCTION paas.node_schedulable(paas.nodes);

-- the table keeps its rows; the domains check them once here
ALTER TABLE paas.nodes
	DROP CONSTRAINT nodes_cpu_cores_check,
	DROP CONSTRAINT nodes_cpu_capacity_m_check,
	DROP CONSTRAINT nodes_memory_capacity_check,
	DROP CONSTRAINT nodes_storage_capacity_check,
	DROP CONSTRAINT nodes_cpu_allocatable_m_check,
	DROP CONSTRAINT nodes_memory_allocatable_check,
	DROP CONSTRAINT nodes_storage_allocatable_check,
	DROP CONSTRAINT nodes_pods_allocatable_check,
	DROP CONSTRAINT nodes_max_pods_check,
	DROP CONSTRAINT nodes_status_check,
	DROP CONSTRAINT nodes_current_pods_check,
	ALTER COLUMN cpu_cores TYPE paas.node_cores,
	ALTER COLUMN cpu_capacity_m TYPE paas.node_amount,
	ALTER COLUMN memory_capacity TYPE paas.node_amount,
	ALTER COLUMN storage_capacity TYPE paas.node_amount,
	ALTER COLUMN cpu_allocatable_m TYPE paas.node_amount,
	ALTER COLUMN memory_allocatable TYPE paas.node_amount,
	ALTER COLUMN storage_allocatable TYPE paas.node_amount,
	ALTER COLUMN pods_allocatable TYPE paas.node_count,
	ALTER COLUMN max_pods TYPE paas.node_pod_limit,
	ALTER COLUMN status TYPE paas.node_status,
	ALTER COLUMN current_pods TYPE paas.node_count;

DROP FUNCTION paas.node_check_report(jsonb, jsonb);

CREATE OR REPLACE FUNCTION paas.node_report(r jsonb)
 RETURNS paas.node_report
 LANGUAGE c
 IMMUTABLE PARALLEL SAFE STRICT
AS '$libdir/paas', $function$paas_node_report$function$
;
COMMENT ON FUNCTION paas.node_report(jsonb) IS 'allocation / usage / pod fields of a report: field errors and converted values';

CREATE OR REPLACE FUNCTION paas.run_parallel(commands text[])
 RETURNS text[]
 LANGUAGE c
 STRICT
AS '$libdir/paas', $function$paas_run_parallel$function$
;
COMMENT ON FUNCTION paas.run_parallel(text[]) IS 'runs the commands in parallel background workers; their first values, in order';

CREATE OR REPLACE FUNCTION paas.check_batch(req jsonb)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
BEGIN
	IF jsonb_typeof(req) IS DISTINCT FROM 'array' OR jsonb_array_length(req) > 1000 THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', 'body', 'a batch is an array of at most 1000 calls'));
	END IF;
END
$function$
;
COMMENT ON FUNCTION paas.check_batch(jsonb) IS 'PT400 unless req is an array of at most 1000 calls';

CREATE OR REPLACE FUNCTION paas.renewal_shard(user_id uuid, shards integer)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
RETURN (abs((uuid_hash_extended(user_id, (0)::bigint) % (shards)::bigint)))::integer
;
COMMENT ON FUNCTION paas.renewal_shard(uuid,integer) IS 'the renewal shard (0 .. shards - 1) of a user''s subscriptions';

CREATE OR REPLACE FUNCTION paas.iso(ts timestamp with time zone)
 RETURNS text
 LANGUAGE sql
 STABLE PARALLEL SAFE STRICT
RETURN to_char((ts AT TIME ZONE 'UTC'::text), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'::text)
;
COMMENT ON FUNCTION paas.iso(timestamp with time zone) IS 'ISO-8601 UTC text of a timestamp';

CREATE OR REPLACE FUNCTION paas.add_err(errs jsonb, field text, message text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE PARALLEL SAFE
RETURN (errs || jsonb_build_array(jsonb_build_object('field', field, 'message', message)))
;
COMMENT ON FUNCTION paas.add_err(jsonb,text,text) IS 'appends {field, message} to an error list';

CREATE OR REPLACE FUNCTION paas.refusal(sqlstate text, message text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE PARALLEL SAFE
RETURN jsonb_build_object('$error', jsonb_build_object('sqlstate', sqlstate, 'message', message))
;
COMMENT ON FUNCTION paas.refusal(text,text) IS 'a reply that httpd answers as the error of "sqlstate" after commit';

CREATE OR REPLACE FUNCTION paas.refresh_token(s paas.sessions, gen integer)
 RETURNS text
 LANGUAGE sql
 STABLE STRICT
RETURN encode(hmac(convert_to(((((s).id)::text || ':'::text) || gen), 'UTF8'::name), (s).secret, 'sha256'::text), 'hex'::text)
;
COMMENT ON FUNCTION paas.refresh_token(paas.sessions,integer) IS 'the n-th refresh token of a session';

CREATE OR REPLACE FUNCTION paas.parse_cpu(t text)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN (t ~ '^[0-9]{1,6}m$'::text) THEN ("left"(t, '-1'::integer))::integer WHEN (t ~ '^[0-9]{1,3}(\.[0-9]{1,3})?$'::text) THEN (round(((t)::numeric * (1000)::numeric)))::integer ELSE NULL::integer END
;
COMMENT ON FUNCTION paas.parse_cpu(text) IS 'millicores of a CPU quantity, NULL when malformed';

CREATE OR REPLACE FUNCTION paas.parse_mem(t text)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN (t ~ '^[0-9]{1,7}Mi$'::text) THEN ("left"(t, '-2'::integer))::integer WHEN (t ~ '^[0-9]{1,4}Gi$'::text) THEN (("left"(t, '-2'::integer))::integer * 1024) ELSE NULL::integer END
;
COMMENT ON FUNCTION paas.parse_mem(text) IS 'MiB of a memory quantity, NULL when malformed';

CREATE OR REPLACE FUNCTION paas.cpu_text(m integer)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN ((m % 1000) = 0) THEN ((m / 1000))::text ELSE (trim_scale(((m)::numeric / 1000.0)))::text END
;
COMMENT ON FUNCTION paas.cpu_text(integer) IS 'millicores as cores text ("0.25")';

CREATE OR REPLACE FUNCTION paas.mem_text(mib integer)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN ((mib % 1024) = 0) THEN (((mib / 1024))::text || 'Gi'::text) ELSE ((mib)::text || 'Mi'::text) END
;
COMMENT ON FUNCTION paas.mem_text(integer) IS 'MiB as a Kubernetes quantity ("512Mi", "1Gi")';

CREATE OR REPLACE FUNCTION paas.node_schedulable(n paas.nodes)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
RETURN ((((n).status)::text = 'ACTIVE'::text) AND (n).is_ready AND (NOT (n).cordoned))
;
COMMENT ON FUNCTION paas.node_schedulable(paas.nodes) IS 'ACTIVE, ready and not cordoned';

CREATE OR REPLACE FUNCTION paas.node_json(n paas.nodes)
 RETURNS jsonb
 LANGUAGE sql
 STABLE PARALLEL SAFE
RETURN (jsonb_build_object('id', (n).id, 'name', (n).name, 'hostname', (n).hostname, 'ipAddress', host((n).ip_address), 'addresses', (n).addresses, 'architecture', (n).architecture, 'operatingSystem', (n).operating_system, 'cpuCores', (n).cpu_cores, 'cpuArchitecture', (n).cpu_architecture, 'totalMemory', (n).total_memory, 'totalStorage', (n).total_storage, 'allocatedCPU', (n).allocated_cpu, 'allocatedMemory', (n).allocated_memory, 'allocatedStorage', (n).allocated_storage, 'maxPods', (n).max_pods, 'currentPods', (n).current_pods, 'status', (n).status, 'isReady', (n).is_ready, 'isSchedulable', paas.node_schedulable(n), 'unschedulable', (n).cordoned, 'lastHeartbeat', paas.iso((n).last_heartbeat), 'lastHealthCheck', paas.iso((n).last_health_check), 'labels', (n).labels, 'taints', (n).taints, 'conditions', (n).conditions) || jsonb_build_object('kubeletVersion', (n).kubelet_version, 'containerRuntime', (n).container_runtime, 'kernelVersion', (n).kernel_version, 'osImage', (n).os_image, 'providerId', (n).provider_id, 'podCidr', (n).pod_cidr, 'kubeUid', (n).kube_uid, 'capacity', jsonb_build_object('cpuMillicores', (n).cpu_capacity_m, 'memoryBytes', (n).memory_capacity, 'storageBytes', (n).storage_capacity, 'pods', (n).max_pods), 'allocatable', jsonb_build_object('cpuMillicores', (n).cpu_allocatable_m, 'memoryBytes', (n).memory_allocatable, 'storageBytes', (n).storage_allocatable, 'pods', (n).pods_allocatable), 'allocation', jsonb_build_object('cpuMillicores', (n).cpu_allocated_m, 'memoryBytes', (n).memory_allocated, 'storageBytes', (n).storage_allocated, 'pods', (n).current_pods, 'cpuPercent', paas.node_pct((n).cpu_allocated_m, ((n).cpu_allocatable_m)::bigint), 'memoryPercent', paas.node_pct((n).memory_allocated, ((n).memory_allocatable)::bigint), 'storagePercent', paas.node_pct((n).storage_allocated, ((n).storage_allocatable)::bigint), 'podsPercent', paas.node_pct(((n).current_pods)::bigint, ((n).pods_allocatable)::bigint)), 'usage', jsonb_build_object('cpuMillicores', (n).cpu_used_m, 'memoryBytes', (n).memory_used, 'storageBytes', (n).storage_used, 'cpuPercent', paas.node_pct((n).cpu_used_m, ((n).cpu_capacity_m)::bigint), 'memoryPercent', paas.node_pct((n).memory_used, ((n).memory_capacity)::bigint), 'storagePercent', paas.node_pct((n).storage_used, ((n).storage_capacity)::bigint)), 'agentClockSkewMs', (n).agent_clock_skew_ms, 'registeredAt', paas.iso((n).registered_at), 'statusChangedAt', paas.iso((n).status_changed_at), 'createdAt', paas.iso((n).created_at), 'updatedAt', paas.iso((n).updated_at)))
;
COMMENT ON FUNCTION paas.node_json(paas.nodes) IS 'a worker node as the API prints it';

CREATE OR REPLACE FUNCTION paas.node_audit(n paas.nodes, from_status text, event text, actor text, reason text)
 RETURNS void
 LANGUAGE sql
BEGIN ATOMIC
 INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
   VALUES ((node_audit.n).id, (node_audit.n).name, node_audit.from_status, (node_audit.n).status, node_audit.event, node_audit.actor, "left"(node_audit.reason, 500));
END
;
COMMENT ON FUNCTION paas.node_audit(paas.nodes,text,text,text,text) IS 'records one transition of a node';

CREATE OR REPLACE FUNCTION paas.node_spec(n paas.nodes)
 RETURNS jsonb
 LANGUAGE sql
 STABLE PARALLEL SAFE
RETURN jsonb_build_object('name', (n).name, 'hostname', (n).hostname, 'ipAddress', host((n).ip_address), 'addresses', (n).addresses, 'architecture', (n).architecture, 'operatingSystem', (n).operating_system, 'cpuCores', (n).cpu_cores, 'cpuArchitecture', (n).cpu_architecture, 'totalMemory', (n).total_memory, 'totalStorage', (n).total_storage, 'maxPods', (n).max_pods, 'labels', (n).labels, 'taints', (n).taints, 'kubeletVersion', (n).kubelet_version, 'containerRuntime', (n).container_runtime, 'kernelVersion', (n).kernel_version, 'osImage', (n).os_image, 'providerId', (n).provider_id, 'podCidr', (n).pod_cidr, 'kubeUid', (n).kube_uid, 'capacity', jsonb_build_object('cpu', ((n).cpu_capacity_m || 'm'::text), 'memory', ((n).memory_capacity)::text, 'ephemeral-storage', ((n).storage_capacity)::text, 'pods', ((n).max_pods)::text), 'allocatable', jsonb_build_object('cpu', ((n).cpu_allocatable_m || 'm'::text), 'memory', ((n).memory_allocatable)::text, 'ephemeral-storage', ((n).storage_allocatable)::text, 'pods', ((n).pods_allocatable)::text))
;
COMMENT ON FUNCTION paas.node_spec(paas.nodes) IS 'the stored spec of a node, input of an update';

CREATE OR REPLACE FUNCTION api.workers_heartbeat(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
DECLARE
	key text := coalesce(req ->> 'nodeName', req ->> 'nodeId');
	body jsonb := req - 'nodeName' - 'nodeId';
	h bytea := paas.node_token_hash(ctx ->> 'nodeToken');
	nid uuid;
	rep paas.node_report;
	errs jsonb := '[]';
	ready boolean := true;
	ev text;
	agent_ts timestamptz;
	r record;
	n paas.nodes;
BEGIN
	-- Losing the last instants of heartbeats in a crash is harmless (the
	-- next one comes within the interval); not waiting for the WAL flush
	-- is what lets one server take a large fleet's heartbeats.
	PERFORM set_config('synchronous_commit', 'off', true);
	IF body <> '{}' THEN
		IF body ? 'isReady' AND jsonb_typeof(body -> 'isReady') <> 'boolean' THEN
			errs := paas.check_bool(errs, body, 'isReady', false);
		END IF;
		IF body ? 'status' THEN
			errs := paas.check_enum(errs, body, 'status', false, ARRAY['ACTIVE', 'NOT_READY']);
		END IF;
		rep := paas.node_report(body);
		errs := errs || rep.errs;
		IF body ? 'conditions' AND jsonb_typeof(body -> 'conditions') <> 'array' THEN
			errs := paas.add_err(errs, 'conditions', 'conditions must be an array');
		END IF;
		IF body ? 'agentTime' THEN
			BEGIN
				agent_ts := (body ->> 'agentTime')::timestamptz;
			EXCEPTION WHEN OTHERS THEN
				errs := paas.add_err(errs, 'agentTime', 'agentTime must be an ISO-8601 timestamp');
			END;
		END IF;
		IF jsonb_array_length(errs) = 0 THEN
			ready := coalesce((body ->> 'isReady')::boolean,
							  CASE body ->> 'status' WHEN 'ACTIVE' THEN true WHEN 'NOT_READY' THEN false END,
							  (SELECT c ->> 'status' = 'True' FROM jsonb_array_elements(body -> 'conditions') c
								WHERE c ->> 'type' = 'Ready' LIMIT 1),
							  true);
		END IF;
	END IF;
	ev := CASE WHEN ready THEN 'heartbeat_ready' ELSE 'heartbeat_not_ready' END;
	-- One statement finds the token's node (first pass; a DBA's node by id
	-- after that), applies the status machine to the status it read and
	-- writes the report.  The row is not locked beforehand (a lock would
	-- cost a WAL record per heartbeat): when the status changed meanwhile,
	-- no row matches and the statement runs again.
	LOOP
		IF jsonb_array_length(errs) = 0 THEN
			UPDATE paas.nodes x SET
				status = paas.node_transition(o.status, ev),
				status_changed_at = CASE WHEN paas.node_transition(o.status, ev) <> o.status
										 THEN now() ELSE x.status_changed_at END,
				is_ready = ready,
				allocated_cpu = coalesce(rep.allocated_cpu, x.allocated_cpu),
				allocated_memory = coalesce(rep.allocated_memory, x.allocated_memory),
				allocated_storage = coalesce(rep.allocated_storage, x.allocated_storage),
				cpu_allocated_m = coalesce(rep.cpu_allocated_m, x.cpu_allocated_m),
				memory_allocated = coalesce(rep.memory_allocated, x.memory_allocated),
				storage_allocated = coalesce(rep.storage_allocated, x.storage_allocated),
				current_pods = coalesce(rep.current_pods, x.current_pods),
				cpu_used_m = coalesce(rep.cpu_used_m, x.cpu_used_m),
				memory_used = coalesce(rep.memory_used, x.memory_used),
				storage_used = coalesce(rep.storage_used, x.storage_used),
				conditions = coalesce(body -> 'conditions', x.conditions),
				agent_clock_skew_ms = CASE WHEN agent_ts IS NULL THEN x.agent_clock_skew_ms
										   ELSE (extract(epoch FROM agent_ts - now()) * 1000)::bigint END,
				last_health_check = now(),
				last_heartbeat = now(),
				updated_at = now()
			  FROM (SELECT id, status FROM paas.nodes
					 WHERE token_hash = h AND (name = key OR id = paas.to_uuid(key))
					UNION ALL
					SELECT id, status FROM paas.nodes WHERE id = nid) o
			 WHERE x.id = o.id AND x.status = o.status
			RETURNING x AS node, o.status::text AS old_status INTO r;
			EXIT WHEN FOUND;
		END IF;
		-- No row: say why (PT401, PT403, PT400), or find a DBA's node.
		nid := (paas.node_by_token(key, ctx)).id;
		PERFORM paas.raise_if_invalid(errs);
		h := NULL;
	END LOOP;
	n := r.node;
	IF n.status <> r.old_status THEN
		PERFORM paas.node_audit(n, r.old_status, ev, 'node', NULL);
	END IF;
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'lastHeartbeat', paas.iso(n.last_heartbeat),
							  'status', n.status, 'isReady', n.is_ready, 'isSchedulable', paas.node_schedulable(n),
							  'allocatedCPU', n.allocated_cpu, 'allocatedMemory', n.allocated_memory,
							  'allocatedStorage', n.allocated_storage, 'currentPods', n.current_pods);
END
$function$
;
COMMENT ON FUNCTION api.workers_heartbeat(jsonb,jsonb) IS 'PUT /workers/:nodeName/heartbeat and PATCH /workers/:nodeId/heartbeat: node token; server time';

CREATE OR REPLACE FUNCTION api.workers_heartbeat_batch(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
DECLARE
	out jsonb[];
	i record;
BEGIN
	PERFORM paas.check_batch(req);
	out := array_fill(NULL::jsonb, ARRAY[jsonb_array_length(req)]);
	FOR i IN SELECT t.n, t.e FROM jsonb_array_elements(req) WITH ORDINALITY AS t (e, n)
			  ORDER BY t.e #>> '{ctx,nodeToken}', t.n LOOP
		out[i.n] := api.workers_heartbeat(i.e -> 'req', coalesce(i.e -> 'ctx', '{}'));
	END LOOP;
	RETURN to_jsonb(out);
END
$function$
;
COMMENT ON FUNCTION api.workers_heartbeat_batch(jsonb,jsonb) IS 'heartbeats received together, applied in one transaction; results in order (the gateway''s batching)';
GRANT EXECUTE ON FUNCTION api.workers_heartbeat_batch(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_heartbeat_batch(jsonb,jsonb) TO paas_owner;
REVOKE ALL ON FUNCTION api.workers_heartbeat_batch(jsonb,jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION api.workers_resources(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
DECLARE
	n paas.nodes;
	body jsonb := req - 'nodeId';
	rep paas.node_report := paas.node_report(body);
	errs jsonb := rep.errs;
BEGIN
	n := paas.node_by_token(req ->> 'nodeId', ctx);
	IF NOT (body ?| ARRAY['allocatedCPU', 'allocatedMemory', 'allocatedStorage', 'currentPods',
						  'cpuUsage', 'memoryUsage', 'storageUsage']) THEN
		errs := paas.add_err(errs, '', 'at least one of allocatedCPU, allocatedMemory, allocatedStorage, currentPods, cpuUsage, memoryUsage, storageUsage is required');
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	UPDATE paas.nodes SET
		allocated_cpu = coalesce(rep.allocated_cpu, allocated_cpu),
		allocated_memory = coalesce(rep.allocated_memory, allocated_memory),
		allocated_storage = coalesce(rep.allocated_storage, allocated_storage),
		cpu_allocated_m = coalesce(rep.cpu_allocated_m, cpu_allocated_m),
		memory_allocated = coalesce(rep.memory_allocated, memory_allocated),
		storage_allocated = coalesce(rep.storage_allocated, storage_allocated),
		cpu_used_m = coalesce(rep.cpu_used_m, cpu_used_m),
		memory_used = coalesce(rep.memory_used, memory_used),
		storage_used = coalesce(rep.storage_used, storage_used),
		current_pods = coalesce(rep.current_pods, current_pods),
		updated_at = now()
	 WHERE id = n.id
	RETURNING * INTO n;
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'cpuCores', n.cpu_cores,
							  'totalMemory', n.total_memory, 'totalStorage', n.total_storage,
							  'allocatedCPU', n.allocated_cpu, 'allocatedMemory', n.allocated_memory,
							  'allocatedStorage', n.allocated_storage, 'currentPods', n.current_pods,
							  'maxPods', n.max_pods) || jsonb_build_object(
							  'allocation', paas.node_json(n) -> 'allocation', 'usage', paas.node_json(n) -> 'usage');
END
$function$
;
COMMENT ON FUNCTION api.workers_resources(jsonb,jsonb) IS 'PATCH /workers/:nodeId/resources: allocation and usage of the calling node (no liveness effect)';


CREATE OR REPLACE FUNCTION api.auth_me_batch(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
BEGIN
	PERFORM paas.check_batch(req);
	RETURN (SELECT jsonb_agg(api.auth_me(t.e -> 'req', t.e -> 'ctx') ORDER BY t.n)
			  FROM jsonb_array_elements(req) WITH ORDINALITY AS t (e, n));
END
$function$
;
COMMENT ON FUNCTION api.auth_me_batch(jsonb,jsonb) IS 'GET /auth/me calls received together, answered in one call; results in order (the gateway''s batching)';
GRANT EXECUTE ON FUNCTION api.auth_me_batch(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_me_batch(jsonb,jsonb) TO paas_owner;
REVOKE ALL ON FUNCTION api.auth_me_batch(jsonb,jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION api.billing_balance_batch(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
BEGIN
	PERFORM paas.check_batch(req);
	RETURN (SELECT jsonb_agg(api.billing_balance(t.e -> 'req', t.e -> 'ctx') ORDER BY t.n)
			  FROM jsonb_array_elements(req) WITH ORDINALITY AS t (e, n));
END
$function$
;
COMMENT ON FUNCTION api.billing_balance_batch(jsonb,jsonb) IS 'GET /billing/balance calls received together, answered in one call; results in order (the gateway''s batching)';
GRANT EXECUTE ON FUNCTION api.billing_balance_batch(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_balance_batch(jsonb,jsonb) TO paas_owner;
REVOKE ALL ON FUNCTION api.billing_balance_batch(jsonb,jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION paas.run_renewals_part(shard integer DEFAULT 0, shards integer DEFAULT 1)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
DECLARE
	cfg paas.subscription_settings := paas.subscription_config();
	rev bigint := paas.platform_account('revenue');
	last_end timestamptz := '-infinity';
	last_id uuid := '00000000-0000-0000-0000-000000000000';
	n int;
	upd bigint;
	behind bigint;
	passes int := 1;
	batches int := 0;
	examined bigint := 0;
	entries jsonb;
	ids bigint[];
	res jsonb;
	r record;
	out jsonb;
BEGIN
	IF shards IS NULL OR shards < 1 OR shard IS NULL OR shard < 0 OR shard >= shards THEN
		RAISE EXCEPTION 'shard must be in 0 .. shards - 1' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- One run of a shard at a time (api.run_renewals holds the run's lock
	-- while its shards run in other backends).
	PERFORM pg_advisory_xact_lock(hashtext('paas.run_renewals/' || shards), shard);

	IF to_regclass('pg_temp.renewal_batch') IS NULL THEN
		CREATE TEMP TABLE renewal_batch (
			seq int PRIMARY KEY, tid tid, id uuid, user_id uuid, service_id uuid, display_name text,
			status text, price bigint, period_no int, anchor_at timestamptz, anchor_period int,
			period_end timestamptz, grace_until timestamptz, pay boolean, eseq bigint, entry jsonb,
			event text, new_status text, new_grace timestamptz, invoice_id uuid) ON COMMIT DROP;
		CREATE TEMP TABLE renewal_charged (
			seq bigint GENERATED ALWAYS AS IDENTITY, id uuid, user_id uuid, service_id uuid,
			display_name text, period_no int, price bigint, period_start timestamptz,
			period_end timestamptz, entry_id bigint, invoice_id uuid) ON COMMIT DROP;
		CREATE TEMP TABLE renewal_count (event text, to_status text, cnt bigint, amount bigint) ON COMMIT DROP;
	ELSE
		TRUNCATE renewal_charged, renewal_count;
	END IF;

	-- Passes over everything due; a second pass only when a renewed
	-- subscription is still behind (its new period has ended too).
	LOOP
		last_end := '-infinity';
		last_id := '00000000-0000-0000-0000-000000000000';
		behind := 0;
		LOOP
			-- One batch: lock the next due rows (SKIP LOCKED: rows an owner or an
			-- administrator is changing wait for the next run), decide who can
			-- pay (per user, the due prices in due order against the balance
			-- read now; a concurrent debit is caught by the ledger below) and
			-- what the status machine makes of each row.
			TRUNCATE renewal_batch;
			INSERT INTO renewal_batch
			SELECT x.seq, x.tid, x.id, x.user_id, x.service_id, x.display_name, x.status, x.price, x.period_no,
				   x.anchor_at, x.anchor_period, x.current_period_end, x.grace_until, x.pay,
				   CASE WHEN x.pay AND x.price > 0
						THEN count(*) FILTER (WHERE x.pay AND x.price > 0) OVER (ORDER BY x.seq) END,
				   CASE WHEN x.pay AND x.price > 0 THEN jsonb_build_object(
						'kind', 'subscription_renewal',
						'memo', format('Subscription renewal for %s, period %s', x.display_name, x.period_no + 1),
						'ref', jsonb_build_object('subscriptionId', x.id, 'serviceId', x.service_id,
												  'period', x.period_no + 1),
						'postings', jsonb_build_array(
							jsonb_build_object('account', x.wallet, 'amount', -x.price),
							jsonb_build_object('account', rev, 'amount', x.price))) END,
				   x.event,
				   CASE WHEN x.event <> 'payment_failed' THEN paas.subscription_transition(x.status, x.event)
						WHEN x.g <= now() THEN paas.subscription_transition(
							paas.subscription_transition(x.status, 'payment_failed'), 'grace_expired')
						ELSE paas.subscription_transition(x.status, 'payment_failed') END,
				   x.g,
				   -- the id of the invoice issued at the end of the run
				   CASE WHEN x.pay AND x.price > 0 THEN gen_random_uuid() END
			  FROM (SELECT y.*,
						   CASE WHEN y.status = 'CANCELLED' THEN 'period_ended'
								WHEN y.pay THEN 'renew' ELSE 'payment_failed' END AS event,
						   coalesce(y.grace_until, y.current_period_end + cfg.grace_period) AS g
					  FROM (SELECT z.*,
								   z.status <> 'CANCELLED'
								   AND (z.price = 0 OR z.cum <= coalesce(z.balance, 0)) AS pay
							  FROM (SELECT d.*, v.display_name, a.id AS wallet, a.balance,
										   row_number() OVER (ORDER BY d.current_period_end, d.id) AS seq,
										   sum(CASE WHEN d.status <> 'CANCELLED' THEN d.price ELSE 0 END)
											   OVER (PARTITION BY d.user_id
													 ORDER BY d.current_period_end, d.id) AS cum
									  FROM (SELECT s.*, s.ctid AS tid FROM paas.subscriptions s
											 WHERE s.status IN ('ACTIVE', 'GRACE', 'CANCELLED')
											   AND s.current_period_end <= now()
											   AND (s.current_period_end, s.id) > (last_end, last_id)
											   AND (shards = 1 OR paas.renewal_shard(s.user_id, shards) = shard)
											 ORDER BY s.current_period_end, s.id
											 LIMIT cfg.batch_size
											 FOR UPDATE OF s SKIP LOCKED) d
									  JOIN paas.services v ON v.id = d.service_id
									  -- the wallet row: paas.wallet_account() and
									  -- paas.wallet_balance() in one join
									  LEFT JOIN paas.ledger_accounts a
											 ON a.user_id = d.user_id AND a.kind = 'wallet') z) y) x;
			GET DIAGNOSTICS n = ROW_COUNT;
			EXIT WHEN n = 0;
			batches := batches + 1;
			examined := examined + n;
			SELECT b.period_end, b.id INTO last_end, last_id FROM renewal_batch b WHERE b.seq = n;

			-- The batch's charges: one ledger call.
			ids := NULL;
			SELECT jsonb_agg(b.entry ORDER BY b.eseq) INTO entries FROM renewal_batch b WHERE b.eseq IS NOT NULL;
			IF entries IS NOT NULL THEN
				BEGIN
					res := paas.ledger_post(NULL, entries);
					SELECT array_agg((e ->> 'id')::bigint ORDER BY k) INTO ids
					  FROM jsonb_array_elements(res -> 'entries') WITH ORDINALITY AS t (e, k);
				EXCEPTION WHEN SQLSTATE 'PT402' THEN
					-- A wallet went down since it was read: one entry at a time,
					-- the short ones become failed payments.
					FOR r IN SELECT b.seq, b.id, b.period_no, b.entry, b.eseq FROM renewal_batch b
							  WHERE b.eseq IS NOT NULL ORDER BY b.eseq LOOP
						BEGIN
							res := paas.ledger_post(format('subscription:%s:period:%s', r.id, r.period_no + 1),
													jsonb_build_array(r.entry));
							ids[r.eseq] := (res #>> '{entries,0,id}')::bigint;
						EXCEPTION WHEN SQLSTATE 'PT402' THEN
							UPDATE renewal_batch b
							   SET pay = false, event = 'payment_failed',
								   new_status = CASE WHEN b.new_grace <= now()
													 THEN paas.subscription_transition(
															paas.subscription_transition(b.status, 'payment_failed'),
															'grace_expired')
													 ELSE paas.subscription_transition(b.status, 'payment_failed') END
							 WHERE b.seq = r.seq;
						END;
					END LOOP;
				END;
			END IF;

			-- The charge rows, before the update: the key check of each row
			-- finds its subscription still locked FOR UPDATE by this run and
			-- writes nothing (after the update, it would lock the new row
			-- version, one more WAL record per charge).  Their invoices are
			-- issued at the end of the run with the ids drawn above.
			WITH c AS (
				INSERT INTO renewal_charged (id, user_id, service_id, display_name, period_no, price,
											 period_start, period_end, entry_id, invoice_id)
				SELECT b.id, b.user_id, b.service_id, b.display_name, b.period_no + 1, b.price, b.period_end,
					   paas.subscription_bound(b.anchor_at, b.period_no + 2 - b.anchor_period), ids[b.eseq],
					   b.invoice_id
				  FROM renewal_batch b WHERE b.pay ORDER BY b.seq
				RETURNING *)
			INSERT INTO paas.subscription_charges (subscription_id, period_no, kind, amount, period_start,
												   period_end, entry_id, invoice_id)
			SELECT c.id, c.period_no, 'renewal', c.price, c.period_start, c.period_end, c.entry_id, c.invoice_id
			  FROM c ORDER BY c.seq;

			UPDATE paas.subscriptions s
			   SET status = b.new_status,
				   period_no = CASE WHEN b.pay THEN s.period_no + 1 ELSE s.period_no END,
				   current_period_start = CASE WHEN b.pay THEN s.current_period_end ELSE s.current_period_start END,
				   current_period_end = CASE WHEN b.pay
											 THEN paas.subscription_bound(s.anchor_at, s.period_no + 2 - s.anchor_period)
											 ELSE s.current_period_end END,
				   grace_until = CASE WHEN b.new_status = 'GRACE' THEN b.new_grace END,
				   suspended_at = CASE WHEN b.new_status = 'SUSPENDED' THEN now() ELSE s.suspended_at END,
				   ended_at = CASE WHEN b.new_status = 'EXPIRED' THEN s.current_period_end ELSE s.ended_at END,
				   status_reason = CASE WHEN b.new_status = b.status THEN s.status_reason
										WHEN b.new_status = 'GRACE' THEN 'renewal failed: insufficient balance'
										WHEN b.new_status = 'SUSPENDED' THEN 'grace period ended unpaid'
										WHEN b.new_status = 'EXPIRED' THEN 'cancelled period ended' END,
				   updated_at = now()
			  FROM renewal_batch b
			 WHERE s.ctid = ANY (ARRAY(SELECT c.tid FROM renewal_batch c
										WHERE c.pay OR c.new_status <> c.status
										   OR c.new_grace IS DISTINCT FROM c.grace_until))
			   AND s.ctid = b.tid AND s.id = b.id
			   AND (b.pay OR b.new_status <> b.status OR b.new_grace IS DISTINCT FROM b.grace_until);
			-- The rows are locked since they were read, so their ctid cannot
			-- have changed (checked anyway).  The ctid array makes the rows a
			-- direct heap access (Tid Scan): a join on id or on ctid alone made
			-- the planner hash the whole table for every batch.
			GET DIAGNOSTICS upd = ROW_COUNT;
			IF upd <> (SELECT count(*) FROM renewal_batch b
						WHERE b.pay OR b.new_status <> b.status OR b.new_grace IS DISTINCT FROM b.grace_until) THEN
				RAISE EXCEPTION 'renewal run: a locked subscription moved' USING ERRCODE = 'internal_error';
			END IF;

			INSERT INTO paas.subscription_events (subscription_id, event, from_status, to_status, reason)
			SELECT b.id, b.event, b.status, b.new_status,
				   CASE b.new_status WHEN 'ACTIVE' THEN 'renewed by the renewal run'
				   WHEN 'GRACE' THEN 'renewal failed: insufficient balance'
				   WHEN 'SUSPENDED' THEN 'grace period ended unpaid'
				   ELSE 'cancelled period ended' END
			  FROM renewal_batch b WHERE b.new_status <> b.status ORDER BY b.seq;

			INSERT INTO renewal_count
			SELECT b.event, b.new_status, count(*), coalesce(sum(b.price) FILTER (WHERE b.pay), 0)
			  FROM renewal_batch b
			 WHERE b.pay OR b.new_status <> b.status OR b.new_grace IS DISTINCT FROM b.grace_until
			 GROUP BY 1, 2;

			behind := behind + (SELECT count(*) FROM renewal_batch b
								 WHERE b.pay AND paas.subscription_bound(b.anchor_at,
												b.period_no + 2 - b.anchor_period) <= now());
		END LOOP;
		EXIT WHEN behind = 0;
		passes := passes + 1;
	END LOOP;

	-- Every wallet lock of the run is held: now the invoices, set-based, with
	-- the ids the charge rows name (see paas.subscription_issue_invoices).
	PERFORM paas.subscription_issue_invoices();

	SELECT jsonb_build_object(
		'examined', examined,
		'batches', batches,
		'passes', passes,
		'renewed', coalesce(sum(cnt) FILTER (WHERE event = 'renew'), 0),
		'charged', coalesce(sum(amount) FILTER (WHERE event = 'renew'), 0),
		'toGrace', coalesce(sum(cnt) FILTER (WHERE to_status = 'GRACE' AND event = 'payment_failed'), 0),
		'suspended', coalesce(sum(cnt) FILTER (WHERE to_status = 'SUSPENDED'), 0),
		'expired', coalesce(sum(cnt) FILTER (WHERE to_status = 'EXPIRED'), 0))
	  INTO out FROM renewal_count;
	RETURN out;
END
$function$
;
COMMENT ON FUNCTION paas.run_renewals_part(integer,integer) IS 'one shard of a renewal run (the users with paas.renewal_shard(user_id, shards) = shard); returns {examined, batches, passes, renewed, charged, toGrace, suspended, expired}';

CREATE OR REPLACE FUNCTION api.run_renewals()
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
DECLARE
	t0 timestamptz := clock_timestamp();
	shards int := current_setting('paas.renewal_workers')::int;
	parts jsonb[];
	out jsonb;
BEGIN
	-- One run at a time: a second one waits here, then finds what the first
	-- renewed no longer due.
	PERFORM pg_advisory_xact_lock(hashtextextended('paas.run_renewals', 0));
	-- The shards run at the same time in background workers, each charging
	-- its own users' wallets (paas.run_parallel; in a transaction block they
	-- run here, one after the other).
	IF shards > 1 THEN
		SELECT array_agg(r::jsonb ORDER BY i) INTO parts
		  FROM unnest(paas.run_parallel(ARRAY(
				SELECT format('SELECT paas.run_renewals_part(%s, %s)', i, shards)
				  FROM generate_series(0, shards - 1) i ORDER BY i))) WITH ORDINALITY AS t (r, i);
	ELSE
		parts := ARRAY[paas.run_renewals_part(0, 1)];
	END IF;
	SELECT jsonb_build_object(
		'examined', sum((p ->> 'examined')::bigint),
		'batches', sum((p ->> 'batches')::int),
		'passes', max((p ->> 'passes')::int),
		'renewed', sum((p ->> 'renewed')::bigint),
		'charged', sum((p ->> 'charged')::bigint),
		'toGrace', sum((p ->> 'toGrace')::bigint),
		'suspended', sum((p ->> 'suspended')::bigint),
		'expired', sum((p ->> 'expired')::bigint),
		'currency', 'IDR',
		'shards', shards,
		'inGrace', (SELECT count(*) FROM paas.subscriptions WHERE status = 'GRACE'),
		'ms', round(extract(epoch FROM clock_timestamp() - t0) * 1000))
	  INTO out FROM unnest(parts) p;
	RETURN out;
END
$function$
;
COMMENT ON FUNCTION api.run_renewals() IS 'renews every due subscription (pg_cron job paas-renewals; DBAs): charges, grace, suspension, expiry of cancelled periods; one run at a time, rows locked FOR UPDATE SKIP LOCKED, each period charged once; shards run in parallel in paas.renewal_workers background workers; returns {examined, batches, passes, renewed, charged, toGrace, suspended, expired, shards, inGrace, ms}';


-- Billing: a deny or cancel after success is a reversal once the status API
-- confirms it (paas.midtrans_apply); the webhook only flags the order.
ALTER TABLE paas.topup_orders ADD COLUMN verify_requested_at timestamptz;
ALTER TABLE paas.topup_reversals
	DROP CONSTRAINT topup_reversals_kind_check,
	ADD CONSTRAINT topup_reversals_kind_check CHECK (kind IN ('REFUND', 'CHARGEBACK', 'REVERSAL'));
COMMENT ON TABLE paas.topup_reversals IS
	'refunds, chargebacks and reversals (deny / cancel after success) of paid orders; BLOCKED when the wallet could not cover them';

CREATE OR REPLACE FUNCTION paas.midtrans_apply(n jsonb, source text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
DECLARE
	t paas.topups;
	o paas.topup_orders;
	st text := n ->> 'transaction_status';
	fraud text := coalesce(n ->> 'fraud_status', 'accept');
	action text;
	outcome text;
	refund numeric;
BEGIN
	SELECT t1.* INTO t FROM paas.topups t1
	  JOIN paas.topup_orders o1 ON o1.topup_id = t1.id
	 WHERE o1.order_id = n ->> 'order_id'
	   FOR UPDATE OF t1;
	IF NOT FOUND THEN
		PERFORM paas.midtrans_log(n, source, true, 'unknown_order');
		RETURN jsonb_build_object('orderId', n ->> 'order_id', 'status', NULL, 'outcome', 'unknown_order');
	END IF;
	SELECT * INTO o FROM paas.topup_orders WHERE order_id = n ->> 'order_id';

	IF coalesce(n ->> 'currency', 'IDR') <> t.currency
	   OR coalesce(n ->> 'gross_amount', '') !~ '^[0-9]{1,15}(\.[0-9]{1,2})?$'
	   OR (n ->> 'gross_amount')::numeric <> t.amount THEN
		PERFORM paas.midtrans_log(n, source, true, 'amount_mismatch');
		RETURN jsonb_build_object('orderId', o.order_id, 'status', t.status, 'outcome', 'amount_mismatch');
	END IF;

	action := CASE
		WHEN st = 'settlement' AND fraud = 'accept' THEN 'success'
		WHEN st = 'capture' AND fraud = 'accept' THEN 'success'
		WHEN st IN ('settlement', 'capture') AND fraud = 'challenge' THEN 'pending'
		WHEN st IN ('settlement', 'capture') THEN 'failed'
		WHEN st IN ('pending', 'authorize') THEN 'pending'
		WHEN st IN ('deny', 'cancel', 'expire', 'failure') THEN 'failed'
		WHEN st IN ('refund', 'chargeback', 'partial_refund', 'partial_chargeback') THEN 'reverse'
		ELSE 'ignored' END;

	-- The signature covers order_id, status_code and gross_amount but not
	-- transaction_status: money moves only when status_code agrees (200),
	-- so a signed "pending" (201) relabelled "settlement" moves nothing.
	IF action IN ('success', 'reverse') AND n ->> 'status_code' IS DISTINCT FROM '200' THEN
		PERFORM paas.midtrans_log(n, source, CASE WHEN source = 'webhook' THEN true END,
								  'inconsistent_status');
		RETURN jsonb_build_object('orderId', o.order_id, 'status', t.status,
								  'outcome', 'inconsistent_status');
	END IF;

	IF action IN ('success', 'reverse') AND o.credited = 0 THEN
		-- a refund implies a payment: credit first, so that a settlement
		-- arriving after its refund finds nothing left to do
		PERFORM paas.topup_credit_order(t, o, n);
		SELECT * INTO o FROM paas.topup_orders WHERE order_id = o.order_id;
		SELECT * INTO t FROM paas.topups WHERE id = t.id;
		outcome := 'credited';
	ELSIF action = 'success' THEN
		outcome := 'duplicate';
	END IF;

	IF action = 'reverse' THEN
		IF st LIKE 'partial_%' THEN
			IF coalesce(n ->> 'refund_amount', '') !~ '^[0-9]{1,15}(\.[0-9]{1,2})?$' THEN
				outcome := 'ignored';
			ELSE
				refund := floor((n ->> 'refund_amount')::numeric);
				outcome := paas.topup_reverse_order(t, o, refund::bigint,
					CASE WHEN st LIKE '%chargeback' THEN 'CHARGEBACK' ELSE 'REFUND' END);
			END IF;
		ELSE
			outcome := paas.topup_reverse_order(t, o, o.credited,
				CASE WHEN st = 'chargeback' THEN 'CHARGEBACK' ELSE 'REFUND' END);
		END IF;
	ELSIF action = 'pending' THEN
		outcome := CASE WHEN o.credited > 0 THEN 'ignored_after_success' ELSE 'pending' END;
		IF o.credited = 0 THEN
			UPDATE paas.topup_orders SET gateway_status = st,
				   payment_type = coalesce(n ->> 'payment_type', payment_type),
				   gateway_transaction_id = coalesce(n ->> 'transaction_id', gateway_transaction_id)
			 WHERE order_id = o.order_id;
			UPDATE paas.topups SET gateway_status = st, updated_at = now(),
				   payment_type = coalesce(n ->> 'payment_type', payment_type)
			 WHERE id = t.id AND status = 'PENDING';
		END IF;
	ELSIF action = 'failed' THEN
		IF o.credited > 0 AND (st IN ('deny', 'cancel') OR fraud = 'deny') THEN
			IF source = 'webhook' THEN
				-- a reversal, or an old attempt's late notification: the
				-- status API decides (the worker claims flagged orders at once)
				outcome := 'verifying_reversal';
				UPDATE paas.topup_orders SET verify_requested_at = now() WHERE order_id = o.order_id;
			ELSE
				outcome := paas.topup_reverse_order(t, o, o.credited, 'REVERSAL');
			END IF;
		ELSIF o.credited > 0 THEN
			outcome := 'ignored_after_success';
		ELSE
			outcome := 'failed';
			UPDATE paas.topup_orders SET status = 'FAILED', gateway_status = st
			 WHERE order_id = o.order_id;
			-- only the current order decides a pending top-up's fate; an
			-- older link failing does not end a top-up with a newer link
			IF t.status = 'PENDING' AND t.order_id = o.order_id THEN
				UPDATE paas.topups
				   SET status = CASE st WHEN 'expire' THEN 'EXPIRED' WHEN 'cancel' THEN 'CANCELLED'
									   ELSE 'FAILED' END,
					   gateway_status = st, updated_at = now()
				 WHERE id = t.id;
			END IF;
		END IF;
	ELSIF action = 'ignored' THEN
		outcome := 'ignored';
	END IF;

	PERFORM paas.midtrans_log(n, source, CASE WHEN source = 'webhook' THEN true END, outcome);
	SELECT * INTO t FROM paas.topups WHERE id = t.id;
	RETURN jsonb_build_object('orderId', o.order_id, 'status', t.status, 'outcome', outcome);
END
$function$
;
COMMENT ON FUNCTION paas.midtrans_apply(jsonb,text) IS 'applies a Midtrans status to its order exactly once; caller verified its origin';

CREATE OR REPLACE FUNCTION paas.billing_reconcile_claim(age interval, n integer) RETURNS SETOF text
	LANGUAGE sql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
	BEGIN ATOMIC
		UPDATE paas.topup_orders o SET last_checked_at = now()
		 WHERE o.order_id IN (
			SELECT o2.order_id FROM paas.topup_orders o2
			  JOIN paas.topups t ON t.id = o2.topup_id
			 WHERE (o2.status = 'PENDING' AND t.status = 'PENDING'
					AND o2.snap_requested_at IS NOT NULL
					AND coalesce(o2.last_checked_at, o2.created_at) < now() - age)
				OR (o2.verify_requested_at IS NOT NULL
					AND (o2.last_checked_at IS NULL OR o2.last_checked_at < o2.verify_requested_at
						 OR o2.last_checked_at < now() - age))
			 ORDER BY o2.verify_requested_at IS NULL, coalesce(o2.last_checked_at, o2.created_at)
			 LIMIT n
			 FOR UPDATE OF o2 SKIP LOCKED)
		RETURNING o.order_id;
	END;
COMMENT ON FUNCTION paas.billing_reconcile_claim(interval, integer) IS
	'orders due for a status-API check (pending ones, and paid ones flagged for a reversal), marked as checked';

CREATE OR REPLACE FUNCTION paas.billing_reconcile_apply(order_id text, http_status integer, body text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
DECLARE
	j jsonb;
	code int;
	res jsonb;
	err text;
BEGIN
	BEGIN
		j := body::jsonb;
	EXCEPTION WHEN OTHERS THEN
		j := NULL;
	END;
	code := CASE WHEN j ->> 'status_code' ~ '^[0-9]{3}$' THEN (j ->> 'status_code')::int END;
	IF http_status = 0 OR http_status >= 400 OR j IS NULL OR jsonb_typeof(j) <> 'object'
	   OR (code >= 400 AND code NOT IN (404, 407)) THEN
		UPDATE paas.topup_orders o
		   SET check_error = format('status API: HTTP %s %s', http_status, left(coalesce(j ->> 'status_message', ''), 200))
		 WHERE o.order_id = billing_reconcile_apply.order_id;
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'error');
	END IF;
	IF code = 404 THEN
		-- Snap: no payment method chosen yet; the expiry job ends it at 24 h
		UPDATE paas.topup_orders o SET check_error = NULL
		 WHERE o.order_id = billing_reconcile_apply.order_id;
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'not_attempted');
	END IF;
	IF j ->> 'order_id' IS DISTINCT FROM order_id THEN
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'error');
	END IF;
	-- Answers carry the notification's signature_key: when present it must
	-- verify, so that nothing between us and Midtrans can change an amount
	-- or a status (the HTTPS host is trusted for answers without one).
	IF j ? 'signature_key' AND NOT paas.midtrans_signature_ok(j ->> 'order_id', j ->> 'status_code',
															   j ->> 'gross_amount', j ->> 'signature_key') THEN
		UPDATE paas.topup_orders o SET check_error = 'status API: the answer''s signature_key does not verify'
		 WHERE o.order_id = billing_reconcile_apply.order_id;
		PERFORM paas.midtrans_log(j, 'reconcile', false, 'bad_signature');
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'bad_signature');
	END IF;
	BEGIN
		res := paas.midtrans_apply(j, 'reconcile');
		-- the answer was applied: a reversal check is settled either way
		UPDATE paas.topup_orders o SET verify_requested_at = NULL, check_error = NULL
		 WHERE o.order_id = billing_reconcile_apply.order_id AND o.verify_requested_at IS NOT NULL;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
		UPDATE paas.topup_orders o SET check_error = left(err, 500)
		 WHERE o.order_id = billing_reconcile_apply.order_id;
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'error');
	END;
	RETURN res;
END
$function$
;
COMMENT ON FUNCTION paas.billing_reconcile_apply(text,integer,text) IS 'applies a status-API answer for an order; records failures instead of raising';


CREATE OR REPLACE FUNCTION paas.billing_feed(uid uuid)
	RETURNS TABLE (id text, created_at timestamptz, type text, status text, amount bigint,
				   direction text, description text, balance_before bigint, balance_after bigint,
				   reference text, reference_type text, payment_method text,
				   payment_gateway text, invoice jsonb, topup_id uuid)
	LANGUAGE sql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
	BEGIN ATOMIC
		SELECT t.id::text, t.created_at, 'TOPUP',
			   CASE t.status WHEN 'PAID' THEN 'SUCCESS' ELSE t.status END,
			   t.amount, 'CREDIT', 'Account top-up via payment gateway',
			   (o.credit_entry ->> 'balanceBefore')::bigint, (o.credit_entry ->> 'balanceAfter')::bigint,
			   t.id::text, 'TOP_UP_TRANSACTION', t.payment_type, 'MIDTRANS',
			   (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
				  FROM paas.invoices i WHERE i.topup_id = t.id AND i.kind = 'TOPUP'
				 ORDER BY i.issued_at LIMIT 1),
			   t.id
		  FROM paas.topups t
		  LEFT JOIN LATERAL (SELECT x.credit_entry FROM paas.topup_orders x
							  WHERE x.topup_id = t.id AND x.credit_entry IS NOT NULL
							  ORDER BY x.paid_at LIMIT 1) o ON true
		 WHERE t.user_id = uid
		UNION ALL
		-- a second paid order of one top-up (two of its links were paid)
		SELECT o.order_id, o.paid_at, 'TOPUP', 'SUCCESS', o.credited, 'CREDIT',
			   'Additional payment of top-up ' || t.id,
			   (o.credit_entry ->> 'balanceBefore')::bigint, (o.credit_entry ->> 'balanceAfter')::bigint,
			   t.id::text, 'TOP_UP_TRANSACTION', o.payment_type, 'MIDTRANS',
			   (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
				  FROM paas.invoices i WHERE i.id = o.invoice_id),
			   t.id
		  FROM paas.topup_orders o
		  JOIN paas.topups t ON t.id = o.topup_id
		 WHERE t.user_id = uid AND o.credited > 0
		   AND o.order_id <> (SELECT x.order_id FROM paas.topup_orders x
							   WHERE x.topup_id = t.id AND x.credit_entry IS NOT NULL
							   ORDER BY x.paid_at LIMIT 1)
		UNION ALL
		SELECT r.id::text, r.created_at, 'REFUND',
			   CASE r.status WHEN 'SUCCESS' THEN 'SUCCESS' ELSE 'PENDING' END,
			   r.amount, 'DEBIT', initcap(lower(r.kind)) || ' of top-up ' || r.order_id,
			   (r.entry ->> 'balanceBefore')::bigint, (r.entry ->> 'balanceAfter')::bigint,
			   r.topup_id::text, 'TOP_UP_TRANSACTION', NULL, 'MIDTRANS', NULL, r.topup_id
		  FROM paas.topup_reversals r
		 WHERE r.user_id = uid
		UNION ALL
		-- every other movement of the wallet: charges, adjustments, reversals
		SELECT e.id::text, e.created_at,
			   CASE WHEN e.kind = 'adjustment' THEN 'ADJUSTMENT'
					WHEN e.kind = 'reversal' OR e.kind LIKE '%refund%' THEN 'REFUND'
					ELSE 'SERVICE_PURCHASE' END,
			   'SUCCESS', abs(p.amount), CASE WHEN p.amount > 0 THEN 'CREDIT' ELSE 'DEBIT' END,
			   coalesce(nullif(e.memo, ''), e.kind), p.balance_before, p.balance_after,
			   coalesce(e.ref ->> 'subscriptionId', e.ref ->> 'reverses', e.id::text),
			   upper(e.kind), 'CREDIT_BALANCE', 'BALANCE',
			   (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
				  FROM paas.invoices i WHERE i.ref ->> 'entryId' = e.id::text
				 ORDER BY i.issued_at LIMIT 1),
			   NULL::uuid
		  FROM paas.ledger_accounts a
		  JOIN paas.ledger_postings p ON p.account_id = a.id
		  JOIN paas.ledger_entries e ON e.id = p.entry_id
		 WHERE a.user_id = uid AND e.kind NOT IN ('topup', 'topup_refund', 'topup_chargeback', 'topup_reversal');
	END;
COMMENT ON FUNCTION paas.billing_feed(uuid) IS 'every money movement of a user (unordered)';


-- Nodes: the status history is kept paas.node_history_retention (job
-- prune_node_transitions).
CREATE INDEX node_transitions_at_idx ON paas.node_transitions (at);
CREATE OR REPLACE FUNCTION paas.node_history_retention()
 RETURNS interval
 LANGUAGE c
 STABLE PARALLEL SAFE
AS '$libdir/paas', $function$paas_node_history_retention$function$
;
COMMENT ON FUNCTION paas.node_history_retention() IS 'paas.node_history_retention as an interval; NULL when the history is kept forever';

CREATE OR REPLACE FUNCTION paas.job_prune_node_transitions()
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'paas', 'pg_catalog', 'public', 'pg_temp'
AS $function$
DECLARE
	keep interval := paas.node_history_retention();
	n bigint;
BEGIN
	IF keep IS NULL THEN
		RETURN jsonb_build_object('deleted', 0, 'retention', 'forever');
	END IF;
	DELETE FROM paas.node_transitions
	 WHERE id IN (SELECT id FROM paas.node_transitions WHERE at < now() - keep ORDER BY at LIMIT 50000);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n, 'retention', keep::text);
END
$function$
;
COMMENT ON FUNCTION paas.job_prune_node_transitions() IS 'deletes node status history older than paas.node_history_retention (50,000 rows a run)';

INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('prune_node_transitions', 'paas.job_prune_node_transitions', '1 hour',
	 'deletes node status history older than paas.node_history_retention');
