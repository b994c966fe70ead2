-- paas -- the node agent's protocol: join tokens and node tokens,
-- registration, heartbeats and resource reports (the routes a node's agent
-- calls), over the registry of 30_node_registry.sql.
--
--   * Registration of a new node needs a join token (paas.node_join_tokens:
--     several may be valid at once, each hashed, with optional expiry and
--     revocation) and returns a node token (256 random bits, only its
--     SHA-256 is stored).  Re-registering an existing name needs that node's
--     own token (or, for a Kubernetes Node object, the node's uid): a join
--     token alone cannot take a node over (PW409).  Re-registering rotates
--     the token.  Heartbeat and resource calls carry the node token: none or
--     unknown -> PT401, another node's -> PT403.
--   * The heartbeat time is the server's now(); the agent's clock is kept
--     only as a skew diagnostic.
--   * Heartbeats are the hot path: 30_node_registry.sql's header says how
--     paas.nodes is laid out for them.

------------------------------------------------------------------------------
-- Join tokens and node tokens
------------------------------------------------------------------------------

CREATE FUNCTION paas.node_token_hash(tok text) RETURNS bytea
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN public.digest(tok, 'sha256');
COMMENT ON FUNCTION paas.node_token_hash(text) IS 'SHA-256 of a join or node token';

-- Checks the join token of a registration; PT401 when missing or not live.
-- A DBA session (not the gateway) registers without one.
CREATE FUNCTION paas.node_check_join(tok text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF tok IS NULL OR tok = '' THEN
		IF session_user <> 'paas_api' THEN
			RETURN;
		END IF;
		RAISE EXCEPTION 'Join token required' USING ERRCODE = 'PT401';
	END IF;
	UPDATE paas.node_join_tokens SET last_used_at = now()
	 WHERE token_hash = paas.node_token_hash(tok) AND revoked_at IS NULL
	   AND (expires_at IS NULL OR expires_at > now());
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Invalid join token' USING ERRCODE = 'PT401';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.node_check_join(text) IS 'PT401 unless tok is a live join token';

-- The node a heartbeat or resource call is about, checked against the
-- caller's node token: none or unknown -> PT401, another node's -> PT403.
-- A DBA session without a token acts on any node (and locks it).
CREATE FUNCTION paas.node_by_token(key text, ctx jsonb) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	n paas.nodes;
	tok text := ctx ->> 'nodeToken';
BEGIN
	IF tok IS NULL AND session_user <> 'paas_api' THEN
		RETURN paas.find_node(key);
	END IF;
	IF tok IS NULL THEN
		RAISE EXCEPTION 'Node token required' USING ERRCODE = 'PT401';
	END IF;
	-- no row lock: writers update by id and re-check the status they read
	SELECT * INTO n FROM paas.nodes WHERE token_hash = paas.node_token_hash(tok);
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Invalid node token' USING ERRCODE = 'PT401';
	END IF;
	IF key IS DISTINCT FROM n.name AND paas.to_uuid(key) IS DISTINCT FROM n.id THEN
		RAISE EXCEPTION 'This node token belongs to another node' USING ERRCODE = 'PT403';
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.node_by_token(text, jsonb) IS
	'the node of a path segment, authorised by ctx.nodeToken (PT401 / PT403)';

CREATE FUNCTION api.workers_join_token_add(token text, note text DEFAULT NULL,
										   expires_at timestamptz DEFAULT NULL)
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	tid uuid;
BEGIN
	IF token IS NULL OR char_length(token) < 16 OR char_length(token) > 512 THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', 'token', 'token must be 16 to 512 characters'));
	END IF;
	SELECT id INTO tid FROM paas.node_join_tokens WHERE token_hash = paas.node_token_hash(token);
	IF FOUND THEN
		RETURN tid;
	END IF;
	INSERT INTO paas.node_join_tokens (token_hash, note, expires_at)
	VALUES (paas.node_token_hash(token), note, workers_join_token_add.expires_at)
	RETURNING id INTO tid;
	RETURN tid;
END
$$;
COMMENT ON FUNCTION api.workers_join_token_add(text, text, timestamptz) IS
	'adds a cluster join token (idempotent: a known token keeps its row); for set-up scripts and DBAs';

CREATE FUNCTION paas.join_token_json(t paas.node_join_tokens) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object('id', t.id, 'note', t.note, 'createdAt', paas.iso(t.created_at),
							  'expiresAt', paas.iso(t.expires_at), 'revokedAt', paas.iso(t.revoked_at),
							  'lastUsedAt', paas.iso(t.last_used_at),
							  'isValid', t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()));
COMMENT ON FUNCTION paas.join_token_json(paas.node_join_tokens) IS 'a join token without its secret';

CREATE FUNCTION api.workers_join_tokens_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN jsonb_build_object('tokens', coalesce((SELECT jsonb_agg(paas.join_token_json(t) ORDER BY t.created_at DESC)
												   FROM paas.node_join_tokens t), '[]'));
END
$$;
COMMENT ON FUNCTION api.workers_join_tokens_list(jsonb, jsonb) IS 'GET /workers/join-tokens';

CREATE FUNCTION api.workers_join_tokens_create(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	tok text := encode(public.gen_random_bytes(32), 'hex');
	t paas.node_join_tokens;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'note', false, 0, 200);
	errs := paas.check_int(errs, req, 'expiresInHours', false, 1, 24 * 366);
	PERFORM paas.raise_if_invalid(errs);
	INSERT INTO paas.node_join_tokens (token_hash, note, expires_at)
	VALUES (paas.node_token_hash(tok), req ->> 'note',
			now() + make_interval(hours => (req ->> 'expiresInHours')::int))
	RETURNING * INTO t;
	RETURN paas.join_token_json(t) || jsonb_build_object('token', tok);
END
$$;
COMMENT ON FUNCTION api.workers_join_tokens_create(jsonb, jsonb) IS
	'POST /workers/join-tokens: a random join token, shown once';

CREATE FUNCTION api.workers_join_tokens_revoke(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	t paas.node_join_tokens;
BEGIN
	PERFORM paas.require_admin(ctx);
	UPDATE paas.node_join_tokens SET revoked_at = coalesce(revoked_at, now())
	 WHERE id = paas.to_uuid(req ->> 'tokenId')
	RETURNING * INTO t;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Join token not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.join_token_json(t);
END
$$;
COMMENT ON FUNCTION api.workers_join_tokens_revoke(jsonb, jsonb) IS
	'DELETE /workers/join-tokens/:tokenId: revokes a join token (registered nodes keep working)';

------------------------------------------------------------------------------
-- api: node routes (register, heartbeat, resources)
------------------------------------------------------------------------------

-- Registration.  The presented token (bearer, or the original's
-- registrationToken field) is either a node token or a join token:
--   * a node token re-registers its own node only (another name -> PT403,
--     as heartbeats answer);
--   * a join token creates nodes; an existing name needs that node's own
--     token (PW409), unless the registration is a Kubernetes Node object
--     whose metadata.uid is the one the node registered with;
--   * a DBA session without a token registers and re-registers anything.
-- Either way the node gets a new node token (the previous one stops).
-- A re-registration answers 200 "Worker node information updated
-- successfully" (response.status / response.message, the reply seam of
-- docs/architecture.md); a creation the route's 201.
CREATE FUNCTION api.workers_register(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	s jsonb;
	n paas.nodes;
	own paas.nodes;
	k8s boolean;
	old text;
	created boolean := false;
	given text;
	tok text := encode(public.gen_random_bytes(32), 'hex');
	ev text;
BEGIN
	req := paas.require_object(req);
	given := nullif(coalesce(ctx ->> 'nodeToken', req ->> 'registrationToken'), '');
	IF given IS NOT NULL THEN
		SELECT * INTO own FROM paas.nodes WHERE token_hash = paas.node_token_hash(given);
	END IF;
	IF own.id IS NULL THEN
		PERFORM paas.node_check_join(given);
	END IF;
	req := req - 'registrationToken';
	k8s := req ? 'kind' OR req ? 'metadata' OR req ? 'apiVersion';
	IF k8s THEN
		SELECT k.spec, k.errs INTO s, errs FROM paas.node_from_k8s(req) k;
		PERFORM paas.raise_if_invalid(errs);
	ELSE
		-- a node's Kubernetes uid comes from its Node object only
		s := req - 'kubeUid';
		errs := paas.check_bool(errs, s, 'isReady', false);
		IF s ? 'maxPods' IS FALSE THEN
			s := s || '{"maxPods": 110}';
		END IF;
	END IF;
	errs := paas.node_check(errs, s, true);
	PERFORM paas.raise_if_invalid(errs);

	SELECT * INTO n FROM paas.nodes WHERE name = s ->> 'name' FOR UPDATE;
	IF own.id IS NOT NULL AND own.id IS DISTINCT FROM n.id THEN
		RAISE EXCEPTION 'This node token belongs to another node' USING ERRCODE = 'PT403';
	END IF;
	IF n.id IS NULL THEN
		PERFORM paas.node_hostname_taken(s ->> 'hostname', NULL);
		INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage)
		VALUES (s ->> 'name', s ->> 'hostname', (s ->> 'ipAddress')::inet, 1, '', '0', '0')
		RETURNING * INTO n;
		created := true;
	ELSE
		IF own.id IS NULL AND NOT (given IS NULL AND session_user <> 'paas_api')
		   AND NOT (k8s AND n.kube_uid IS NOT NULL AND n.kube_uid = s ->> 'kubeUid') THEN
			RAISE EXCEPTION 'Worker node with this name already exists; re-registering it needs its node token'
				USING ERRCODE = 'PW409';
		END IF;
		PERFORM paas.node_hostname_taken(s ->> 'hostname', n.id);
	END IF;
	n := paas.node_write(n.id, s);
	old := CASE WHEN created THEN NULL ELSE n.status END;
	ev := CASE WHEN coalesce((s ->> 'isReady')::boolean, true) THEN 'register' ELSE 'register_not_ready' END;
	UPDATE paas.nodes
	   SET status = paas.node_transition(status, ev),
		   is_ready = coalesce((s ->> 'isReady')::boolean, true),
		   cordoned = coalesce((s ->> 'unschedulable')::boolean, false),
		   token_hash = paas.node_token_hash(tok), token_issued_at = now(),
		   registered_at = now(), last_heartbeat = now(), last_health_check = now(),
		   status_changed_at = CASE WHEN status <> paas.node_transition(status, ev) THEN now()
									ELSE status_changed_at END
	 WHERE id = n.id
	RETURNING * INTO n;
	PERFORM paas.node_audit(n, old, ev, 'node', CASE WHEN created THEN 'registered' ELSE 're-registered' END);
	IF NOT created THEN
		-- the reply seam (httpd/reply.c): the route row's 201 is a creation's
		PERFORM set_config('response.status', '200', true);
		PERFORM set_config('response.message', 'Worker node information updated successfully', true);
	END IF;
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status, 'isReady', n.is_ready,
							  'isSchedulable', paas.node_schedulable(n), 'created', created,
							  'nodeToken', tok, 'heartbeatIntervalSeconds', 30,
							  'gracePeriodSeconds', extract(epoch FROM (paas.node_health_settings()).grace_period)::int);
END
$$;
COMMENT ON FUNCTION api.workers_register(jsonb, jsonb) IS
	'POST /workers/register: a join token creates (201), a node token re-registers its node (200, set as response.status); the original field set or a Kubernetes Node object; returns the node token';

-- The shared body of heartbeats and resource reports: validates the
-- allocation / usage fields and writes them.
CREATE FUNCTION api.workers_heartbeat(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
			-- a node the Kubernetes API knows (kube_seen_at) takes its
			-- readiness, conditions and allocations from the API
			-- (bgworker/nodesync.c); its agent adds the usage
			UPDATE paas.nodes x SET
				status = CASE WHEN x.kube_seen_at IS NULL THEN paas.node_transition(o.status, ev) ELSE x.status END,
				status_changed_at = CASE WHEN x.kube_seen_at IS NULL AND paas.node_transition(o.status, ev) <> o.status
										 THEN now() ELSE x.status_changed_at END,
				is_ready = CASE WHEN x.kube_seen_at IS NULL THEN ready ELSE x.is_ready END,
				allocated_cpu = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.allocated_cpu END, x.allocated_cpu),
				allocated_memory = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.allocated_memory END, x.allocated_memory),
				allocated_storage = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.allocated_storage END, x.allocated_storage),
				cpu_allocated_m = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.cpu_allocated_m END, x.cpu_allocated_m),
				memory_allocated = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.memory_allocated END, x.memory_allocated),
				storage_allocated = coalesce(rep.storage_allocated, x.storage_allocated),
				current_pods = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.current_pods END, x.current_pods),
				cpu_used_m = coalesce(rep.cpu_used_m, x.cpu_used_m),
				memory_used = coalesce(rep.memory_used, x.memory_used),
				storage_used = coalesce(rep.storage_used, x.storage_used),
				conditions = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN body -> 'conditions' END, x.conditions),
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
$$;
COMMENT ON FUNCTION api.workers_heartbeat(jsonb, jsonb) IS
	'PUT /workers/:nodeName/heartbeat and PATCH /workers/:nodeId/heartbeat: node token; server time';

-- Heartbeats that reached the gateway at the same time, in one transaction
-- (httpd/batch.c): req is [{"req": ..., "ctx": ...}, ...], at most 1,000;
-- each item is exactly a call of api.workers_heartbeat, and the results
-- come back in the items' order.  Any item's error fails the whole batch
-- (nothing of it stays), and the gateway then makes each call on its own.
-- Items are applied in node-token order, so two batches never wait for
-- each other's rows crosswise.
CREATE FUNCTION api.workers_heartbeat_batch(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.workers_heartbeat_batch(jsonb, jsonb) IS
	'heartbeats received together, applied in one transaction; results in order (the gateway''s batching)';

CREATE FUNCTION api.workers_resources(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
	-- allocations of a node the Kubernetes API knows are its pods' requests
	-- (paas.node_sync_pods_end); the agent adds the usage
	UPDATE paas.nodes SET
		allocated_cpu = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.allocated_cpu END, allocated_cpu),
		allocated_memory = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.allocated_memory END, allocated_memory),
		allocated_storage = coalesce(rep.allocated_storage, allocated_storage),
		cpu_allocated_m = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.cpu_allocated_m END, cpu_allocated_m),
		memory_allocated = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.memory_allocated END, memory_allocated),
		storage_allocated = coalesce(rep.storage_allocated, storage_allocated),
		cpu_used_m = coalesce(rep.cpu_used_m, cpu_used_m),
		memory_used = coalesce(rep.memory_used, memory_used),
		storage_used = coalesce(rep.storage_used, storage_used),
		current_pods = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.current_pods END, current_pods),
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
$$;
COMMENT ON FUNCTION api.workers_resources(jsonb, jsonb) IS
	'PATCH /workers/:nodeId/resources: allocation and usage of the calling node (no liveness effect)';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.workers_register(jsonb, jsonb)', 'api.workers_heartbeat(jsonb, jsonb)',
		'api.workers_heartbeat_batch(jsonb, jsonb)', 'api.workers_resources(jsonb, jsonb)',
		'api.workers_join_tokens_list(jsonb, jsonb)', 'api.workers_join_tokens_create(jsonb, jsonb)',
		'api.workers_join_tokens_revoke(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	REVOKE ALL ON FUNCTION api.workers_join_token_add(text, text, timestamptz) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION api.workers_join_token_add(text, text, timestamptz) TO paas_owner;
END
$grants$;
