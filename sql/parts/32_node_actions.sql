-- paas -- actions on nodes in the Kubernetes API: cordon / uncordon, drain,
-- MAINTENANCE = cordon + drain (docs/nodes.md, "Actions").
--
-- Rules a reader must know:
--   * A node "the API knows" (kube_seen_at set by the node sync) is changed
--     in the API first, then in the registry: a refusal of the API is
--     PK502 (HTTP 502 CLUSTER_ERROR, the API's status and message in the
--     details) and the transaction changes nothing.  Agent-only nodes, and
--     every node while no API is configured, keep the registry-only
--     behaviour.
--   * The cordon PATCH is sent by the backend (extension/node_actions.c,
--     bounded by paas.k8s_timeout, at most 10 s) BEFORE the node's row is
--     locked; the row is locked and the change recorded after it.
--   * A drain is a row of paas.node_drains, written in the transaction of
--     the request; the background worker "paas node drain"
--     (bgworker/nodedrain.c) evicts the pods in passes, each pass a short
--     transaction to plan, the evictions with no transaction open, a short
--     transaction to record.  One live drain per node.
--   * Every action is a row of paas.node_transitions with the actor
--     (admin:<id>) of the request.

------------------------------------------------------------------------------
-- The API call
------------------------------------------------------------------------------

CREATE FUNCTION paas.k8s_node_unschedulable(node text, unschedulable boolean,
		OUT configured boolean, OUT status integer, OUT body text, OUT error text)
	LANGUAGE c VOLATILE STRICT
	AS 'MODULE_PATHNAME', 'paas_k8s_node_unschedulable';
COMMENT ON FUNCTION paas.k8s_node_unschedulable(text, boolean) IS
	'PATCHes spec.unschedulable of a Node in the Kubernetes API (configured false: no API, nothing sent)';

-- The message and reason of a Kubernetes Status body (NULL when the body is
-- not one).
CREATE FUNCTION paas.k8s_status_of(body text, OUT reason text, OUT message text)
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	d jsonb;
BEGIN
	BEGIN
		d := body::jsonb;
	EXCEPTION WHEN OTHERS THEN
		d := NULL;
	END;
	IF jsonb_typeof(d) = 'object' THEN
		reason := d ->> 'reason';
		message := d ->> 'message';
	END IF;
	IF message IS NULL AND body IS NOT NULL AND body <> '' THEN
		message := left(body, 300);
	END IF;
END
$$;
COMMENT ON FUNCTION paas.k8s_status_of(text) IS 'reason and message of a Kubernetes Status body';

-- Sets spec.unschedulable of n's Node when the API knows n.  true: sent and
-- accepted; false: nothing sent (the node is agent-only or no API is
-- configured).  PK502 when the API refused it or did not answer.
CREATE FUNCTION paas.node_kube_cordon(n paas.nodes, cordon boolean) RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r record;
	st record;
BEGIN
	IF n.kube_seen_at IS NULL THEN
		RETURN false;
	END IF;
	r := paas.k8s_node_unschedulable(n.name, cordon);
	IF NOT r.configured THEN
		RETURN false;
	END IF;
	IF r.status BETWEEN 200 AND 299 THEN
		RETURN true;
	END IF;
	st := paas.k8s_status_of(r.body);
	RAISE EXCEPTION 'the Kubernetes API refused to % node "%": %', CASE WHEN cordon THEN 'cordon' ELSE 'uncordon' END,
		n.name, coalesce(st.message, r.error, 'no answer')
		USING ERRCODE = 'PK502',
			  DETAIL = jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
				'field', 'kubernetes', 'message', coalesce(st.message, r.error, 'no answer'),
				'status', r.status, 'reason', st.reason)))::text;
END
$$;
COMMENT ON FUNCTION paas.node_kube_cordon(paas.nodes, boolean) IS
	'cordons / uncordons the Node of an API node in the API (false: not an API node or no API); PK502 when refused';

------------------------------------------------------------------------------
-- Drains
------------------------------------------------------------------------------

CREATE TABLE paas.node_drains (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	node_id			uuid NOT NULL,
	node_name		text NOT NULL,
	cause			text NOT NULL CHECK (cause IN ('drain', 'maintenance')),
	state			text NOT NULL DEFAULT 'pending'
					CHECK (state IN ('pending', 'running', 'complete', 'incomplete', 'cancelled')),
	requested_by	text NOT NULL,
	reason			text,
	timeout_s		integer NOT NULL CHECK (timeout_s BETWEEN 1 AND 86400),
	deadline		timestamptz NOT NULL,
	-- the drain cordoned the node (it was schedulable before): leaving
	-- MAINTENANCE uncordons it again
	cordoned_it		boolean NOT NULL DEFAULT false,
	attempts		integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL DEFAULT now(),
	claimed_until	timestamptz,
	evicted			jsonb NOT NULL DEFAULT '[]',	-- [{namespace, name, at}]
	skipped			jsonb NOT NULL DEFAULT '[]',	-- [{namespace, name, why}]
	remaining		jsonb NOT NULL DEFAULT '[]',	-- [{namespace, name, state, status?, message?}]
	last_error		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	finished_at		timestamptz
);
CREATE UNIQUE INDEX node_drains_live_key ON paas.node_drains (node_id) WHERE state IN ('pending', 'running');
CREATE INDEX node_drains_due_idx ON paas.node_drains (next_attempt_at) WHERE state IN ('pending', 'running');
CREATE INDEX node_drains_node_idx ON paas.node_drains (node_id, created_at DESC);
COMMENT ON TABLE paas.node_drains IS
	'drains of nodes through the Eviction API (bgworker/nodedrain.c); kept after they end';
-- drains are history of the nodes: dumped with them (90_dump.sql)
SELECT pg_catalog.pg_extension_config_dump('paas.node_drains', '');

CREATE FUNCTION paas.node_drain_json(d paas.node_drains) RETURNS jsonb
	LANGUAGE sql STABLE
	RETURN jsonb_build_object(
		'id', d.id, 'nodeId', d.node_id, 'nodeName', d.node_name, 'cause', d.cause, 'state', d.state,
		'requestedBy', d.requested_by, 'reason', d.reason, 'timeoutSeconds', d.timeout_s,
		'deadline', paas.iso(d.deadline), 'attempts', d.attempts,
		'retryAt', CASE WHEN d.state IN ('pending', 'running') THEN paas.iso(d.next_attempt_at) END,
		'blocked', (SELECT count(*) FROM jsonb_array_elements(d.remaining) p WHERE p ->> 'state' = 'blocked'),
		'evicted', d.evicted, 'skipped', d.skipped, 'remaining', d.remaining, 'lastError', d.last_error,
		'createdAt', paas.iso(d.created_at), 'updatedAt', paas.iso(d.updated_at),
		'finishedAt', paas.iso(d.finished_at),
		'statusUrl', '/api/v1/workers/' || d.node_id || '/drain');
COMMENT ON FUNCTION paas.node_drain_json(paas.node_drains) IS 'a drain as the API prints it';

-- Starts a drain of n (already cordoned), or returns the live one.
CREATE FUNCTION paas.node_drain_start(n paas.nodes, cause text, cordoned_it boolean, timeout_s integer,
									  actor text, reason text) RETURNS paas.node_drains
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	d paas.node_drains;
BEGIN
	SELECT * INTO d FROM paas.node_drains WHERE node_id = n.id AND state IN ('pending', 'running');
	IF FOUND THEN
		RETURN d;
	END IF;
	INSERT INTO paas.node_drains (node_id, node_name, cause, requested_by, reason, timeout_s, deadline, cordoned_it)
	VALUES (n.id, n.name, cause, actor, reason, timeout_s, now() + make_interval(secs => timeout_s), cordoned_it)
	RETURNING * INTO d;
	PERFORM paas.node_audit(n, n.status, 'drain', actor,
							coalesce(reason || '; ', '') || 'timeout ' || timeout_s || ' s');
	RETURN d;
END
$$;
COMMENT ON FUNCTION paas.node_drain_start(paas.nodes, text, boolean, integer, text, text) IS
	'records a drain of a cordoned node (the live one when there is one) and audits it';

-- Ends the live drain of a node (an uncordon, the end of MAINTENANCE).
CREATE FUNCTION paas.node_drain_cancel(n paas.nodes, actor text, reason text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	UPDATE paas.node_drains
	   SET state = 'cancelled', finished_at = now(), updated_at = now(), claimed_until = NULL
	 WHERE node_id = n.id AND state IN ('pending', 'running');
	IF FOUND THEN
		PERFORM paas.node_audit(n, n.status, 'drain_cancelled', actor, reason);
	END IF;
END
$$;
COMMENT ON FUNCTION paas.node_drain_cancel(paas.nodes, text, text) IS 'cancels the live drain of a node, audited';

------------------------------------------------------------------------------
-- The actions (called by api.workers_set_schedulable / _set_status of
-- 30_node_registry.sql and by the drain routes)
------------------------------------------------------------------------------

-- Cordon (true) or uncordon a node: the API first (an API node), then the
-- registry.  An uncordon ends a live drain.
CREATE FUNCTION paas.node_set_cordon(key text, cordon boolean, actor text, reason text) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes := paas.read_node(key);
BEGIN
	-- refused by the machine (uncordon while INACTIVE / MAINTENANCE): 409 before any call
	PERFORM paas.node_transition(n.status, CASE WHEN cordon THEN 'cordon' ELSE 'uncordon' END);
	PERFORM paas.node_kube_cordon(n, cordon);
	n := paas.find_node(n.id::text);
	n := paas.node_apply(n, CASE WHEN cordon THEN 'cordon' ELSE 'uncordon' END, actor, reason);
	IF NOT cordon THEN
		PERFORM paas.node_drain_cancel(n, actor, 'uncordoned');
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.node_set_cordon(text, boolean, text, text) IS
	'cordons / uncordons a node, in the API first for an API node (PK502 when refused)';

-- A status set by an administrator.  For an API node, MAINTENANCE cordons
-- it in the API and starts a drain; leaving MAINTENANCE ends the drain and
-- uncordons the node when the maintenance cordoned it (and the new status
-- allows it: not INACTIVE).
CREATE FUNCTION paas.node_set_status(key text, status text, actor text, reason text) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes := paas.read_node(key);
	ev text := paas.node_status_event(status);
	was_cordoned boolean := n.cordoned;
	d paas.node_drains;
	sent boolean;
BEGIN
	IF status = 'MAINTENANCE' AND n.status <> 'MAINTENANCE' THEN
		sent := paas.node_kube_cordon(n, true);
		n := paas.find_node(n.id::text);
		n := paas.node_apply(n, ev, actor, reason);
		IF sent THEN
			-- was_cordoned, not n.cordoned: the node sync may have seen the
			-- API's change first; the action is still the administrator's
			IF NOT was_cordoned THEN
				n := paas.node_apply(n, 'cordon', actor, 'maintenance');
			END IF;
			PERFORM paas.node_drain_start(n, 'maintenance', NOT was_cordoned, paas.node_drain_timeout(), actor, reason);
		END IF;
		RETURN n;
	END IF;
	IF n.status = 'MAINTENANCE' AND status <> 'MAINTENANCE' THEN
		-- the drain of this maintenance (started with the status change, same now())
		SELECT * INTO d FROM paas.node_drains
		 WHERE node_id = n.id AND cause = 'maintenance' AND created_at >= n.status_changed_at
		 ORDER BY created_at DESC LIMIT 1;
		sent := false;
		IF d.cordoned_it AND n.cordoned AND paas.node_transition_allowed(paas.node_transition(n.status, ev), 'uncordon') THEN
			sent := paas.node_kube_cordon(n, false);
		END IF;
		n := paas.find_node(n.id::text);
		n := paas.node_apply(n, ev, actor, reason);
		PERFORM paas.node_drain_cancel(n, actor, 'end of maintenance');
		IF sent THEN
			n := paas.node_apply(n, 'uncordon', actor, 'end of maintenance');
		END IF;
		RETURN n;
	END IF;
	n := paas.find_node(n.id::text);
	RETURN paas.node_apply(n, ev, actor, reason);
END
$$;
COMMENT ON FUNCTION paas.node_set_status(text, text, text, text) IS
	'an administrator''s status change; for an API node MAINTENANCE = cordon + drain, leaving it uncordons';

-- paas.node_drain_timeout (seconds, default 600): how long a drain that
-- MAINTENANCE starts, or one asked for without timeoutSeconds, may take.
CREATE FUNCTION paas.node_drain_timeout() RETURNS integer
	LANGUAGE sql STABLE
	RETURN extract(epoch FROM current_setting('paas.node_drain_timeout')::interval)::integer;
COMMENT ON FUNCTION paas.node_drain_timeout() IS 'default timeout of a drain in seconds (paas.node_drain_timeout)';

CREATE FUNCTION api.workers_drain(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
	was_cordoned boolean;
	actor text := paas.node_actor(ctx);
	d paas.node_drains;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_int(errs, req, 'timeoutSeconds', false, 1, 86400);
	errs := paas.check_text(errs, req, 'reason', false, 0, 500);
	PERFORM paas.raise_if_invalid(errs);
	n := paas.read_node(req ->> 'nodeId');
	SELECT * INTO d FROM paas.node_drains WHERE node_id = n.id AND state IN ('pending', 'running');
	IF FOUND THEN
		RETURN paas.node_drain_json(d);
	END IF;
	IF n.kube_seen_at IS NULL THEN
		RAISE EXCEPTION 'node "%" is not known to the Kubernetes API: there are no pods to evict', n.name
			USING ERRCODE = 'PT409', HINT = 'Cordon it (PATCH /workers/:nodeId/schedulable) or set MAINTENANCE.';
	END IF;
	was_cordoned := n.cordoned;
	IF NOT paas.node_kube_cordon(n, true) THEN
		RAISE EXCEPTION 'no Kubernetes API is configured: node "%" cannot be drained', n.name
			USING ERRCODE = 'PT409';
	END IF;
	n := paas.find_node(n.id::text);
	IF NOT was_cordoned THEN		-- (not n.cordoned: see paas.node_set_status)
		n := paas.node_apply(n, 'cordon', actor, 'drain');
	END IF;
	d := paas.node_drain_start(n, 'drain', NOT was_cordoned,
							   coalesce((req ->> 'timeoutSeconds')::integer, paas.node_drain_timeout()),
							   actor, req ->> 'reason');
	RETURN paas.node_drain_json(d);
END
$$;
COMMENT ON FUNCTION api.workers_drain(jsonb, jsonb) IS
	'POST /workers/:nodeId/drain {timeoutSeconds?, reason?}: cordons the node in the API and starts a drain (202)';

CREATE FUNCTION api.workers_drain_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes;
	d paas.node_drains;
BEGIN
	PERFORM paas.require_admin(ctx);
	n := paas.read_node(req ->> 'nodeId');
	SELECT * INTO d FROM paas.node_drains WHERE node_id = n.id ORDER BY created_at DESC LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Node "%" was never drained', n.name USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.node_drain_json(d);
END
$$;
COMMENT ON FUNCTION api.workers_drain_get(jsonb, jsonb) IS
	'GET /workers/:nodeId/drain: the node''s latest drain and its progress';

------------------------------------------------------------------------------
-- The drain worker's steps (bgworker/nodedrain.c)
------------------------------------------------------------------------------

-- Claims the most overdue live drain for one pass (a lease of a minute: a
-- worker that dies mid-pass leaves it to the next).  NULL when none is due.
CREATE FUNCTION paas.node_drain_claim(OUT id uuid, OUT list_path text)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	UPDATE paas.node_drains d
	   SET state = 'running', attempts = d.attempts + 1, claimed_until = now() + interval '1 minute',
		   updated_at = now()
	 WHERE d.id = (SELECT x.id FROM paas.node_drains x
					WHERE x.state IN ('pending', 'running') AND x.next_attempt_at <= now()
					  AND (x.claimed_until IS NULL OR x.claimed_until < now())
					ORDER BY x.next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
	RETURNING d.id, '/api/v1/pods?fieldSelector=' || 'spec.nodeName%3D' || d.node_name
	  INTO id, list_path;
END
$$;
COMMENT ON FUNCTION paas.node_drain_claim() IS
	'claims a due drain for one pass: its id and the path that lists its node''s pods';

-- Why a pod is not evicted, as kubectl drain --ignore-daemonsets skips it
-- (NULL: it is evicted).
CREATE FUNCTION paas.node_drain_skip(pod jsonb) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN pod #> '{metadata,annotations}' ? 'kubernetes.io/config.mirror' THEN 'mirror pod'
				WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(
								CASE WHEN jsonb_typeof(pod #> '{metadata,ownerReferences}') = 'array'
									 THEN pod #> '{metadata,ownerReferences}' ELSE '[]' END) o
							  WHERE o ->> 'kind' = 'DaemonSet' AND (o ->> 'controller')::boolean IS TRUE)
				THEN 'DaemonSet-managed' END;
COMMENT ON FUNCTION paas.node_drain_skip(jsonb) IS 'why a drain leaves a pod (mirror, DaemonSet), or NULL';

-- A pass, first step: the pods on the node now (the PodList of list_path,
-- or NULL when it could not be read: status / error say why).  Ends the
-- drain complete when only skipped pods are left, incomplete past its
-- deadline; otherwise returns the evictions to send.
CREATE FUNCTION paas.node_drain_plan(drain_id uuid, pods text, status integer, error text)
	RETURNS TABLE (path text, body text)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	d paas.node_drains;
	n paas.nodes;
	doc jsonb;
	st record;
	left_ jsonb;
BEGIN
	SELECT * INTO d FROM paas.node_drains x WHERE x.id = drain_id AND x.state = 'running' FOR UPDATE;
	IF NOT FOUND THEN
		RETURN;					-- cancelled meanwhile
	END IF;
	IF status = 200 THEN
		BEGIN
			doc := pods::jsonb;
		EXCEPTION WHEN OTHERS THEN
			doc := NULL;
		END;
	END IF;
	IF jsonb_typeof(doc -> 'items') IS DISTINCT FROM 'array' THEN
		st := paas.k8s_status_of(pods);
		UPDATE paas.node_drains x
		   SET last_error = left(format('listing the pods: %s %s', nullif(status, 0),
										coalesce(st.message, error, 'no answer')), 500),
			   updated_at = now()
		 WHERE x.id = d.id;
		PERFORM paas.node_drain_finish(d.id, false);
		RETURN;
	END IF;
	SELECT coalesce(jsonb_agg(jsonb_build_object('namespace', p #>> '{metadata,namespace}',
												 'name', p #>> '{metadata,name}', 'why', paas.node_drain_skip(p)))
						FILTER (WHERE paas.node_drain_skip(p) IS NOT NULL), '[]'),
		   coalesce(jsonb_agg(jsonb_build_object('namespace', p #>> '{metadata,namespace}',
												 'name', p #>> '{metadata,name}',
												 'state', CASE WHEN p #> '{metadata,deletionTimestamp}' IS NOT NULL
															   THEN 'terminating' ELSE 'evicting' END))
						FILTER (WHERE paas.node_drain_skip(p) IS NULL), '[]')
	  INTO d.skipped, left_
	  FROM jsonb_array_elements(doc -> 'items') p;
	-- what stays of the last pass's outcome (blocked, error) for pods still here
	d.remaining := (SELECT coalesce(jsonb_agg(coalesce(
						(SELECT o FROM jsonb_array_elements(d.remaining) o
						  WHERE o ->> 'namespace' = l ->> 'namespace' AND o ->> 'name' = l ->> 'name'
							AND l ->> 'state' = 'evicting'), l)), '[]')
					  FROM jsonb_array_elements(left_) l);
	UPDATE paas.node_drains x SET skipped = d.skipped, remaining = d.remaining, updated_at = now()
	 WHERE x.id = d.id;
	IF jsonb_array_length(d.remaining) = 0 OR d.deadline <= now() THEN
		PERFORM paas.node_drain_finish(d.id, true);
		RETURN;
	END IF;
	RETURN QUERY
		SELECT format('/api/v1/namespaces/%s/pods/%s/eviction', l ->> 'namespace', l ->> 'name'),
			   jsonb_build_object('apiVersion', 'policy/v1', 'kind', 'Eviction',
								  'metadata', jsonb_build_object('name', l ->> 'name',
																 'namespace', l ->> 'namespace'))::text
		  FROM jsonb_array_elements(left_) l
		 WHERE l ->> 'state' = 'evicting';
END
$$;
COMMENT ON FUNCTION paas.node_drain_plan(uuid, text, integer, text) IS
	'first step of a drain pass: the pods on the node -> the evictions to send (or the drain ends)';

-- A pass, last step: the answers of the evictions (paths[i] answered
-- statuses[i] with bodies[i]).  201/200: evicted; 404: already gone;
-- 429: a PodDisruptionBudget forbids it now (retried); anything else is an
-- error (retried until the deadline).  The next pass comes after 1 s when
-- pods were evicted, after 5 s when some were refused (kubectl's pause).
CREATE FUNCTION paas.node_drain_record(drain_id uuid, paths text[], statuses integer[], bodies text[])
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	d paas.node_drains;
	res jsonb;
BEGIN
	SELECT * INTO d FROM paas.node_drains x WHERE x.id = drain_id AND x.state = 'running' FOR UPDATE;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
				'namespace', split_part(r.path, '/', 5), 'name', split_part(r.path, '/', 7),
				'status', r.status,
				'state', CASE WHEN r.status IN (200, 201, 404) THEN 'evicted'
							  WHEN r.status = 429 THEN 'blocked' ELSE 'error' END,
				'message', CASE WHEN r.status NOT IN (200, 201, 404)
								THEN coalesce((paas.k8s_status_of(r.body)).message, 'no answer') END))), '[]')
	  INTO res
	  FROM unnest(paths, statuses, bodies) r(path, status, body);
	UPDATE paas.node_drains x
	   SET evicted = x.evicted || coalesce((SELECT jsonb_agg(jsonb_build_object(
								'namespace', e ->> 'namespace', 'name', e ->> 'name', 'at', paas.iso(now())))
						   FROM jsonb_array_elements(res) e WHERE e ->> 'state' = 'evicted'), '[]'),
		   remaining = (SELECT coalesce(jsonb_agg(coalesce(
							(SELECT e FROM jsonb_array_elements(res) e
							  WHERE e ->> 'namespace' = p ->> 'namespace' AND e ->> 'name' = p ->> 'name'), p)), '[]')
						  FROM jsonb_array_elements(x.remaining) p),
		   last_error = coalesce((SELECT format('%s/%s: %s %s', e ->> 'namespace', e ->> 'name', e ->> 'status',
												e ->> 'message')
									FROM jsonb_array_elements(res) e WHERE e ->> 'state' = 'error' LIMIT 1),
								 (SELECT format('%s/%s: 429 %s', e ->> 'namespace', e ->> 'name', e ->> 'message')
									FROM jsonb_array_elements(res) e WHERE e ->> 'state' = 'blocked' LIMIT 1)),
		   updated_at = now()
	 WHERE x.id = d.id;
	PERFORM paas.node_drain_finish(d.id, false,
		CASE WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(res) e WHERE e ->> 'state' <> 'evicted')
			 THEN interval '5 seconds' ELSE interval '1 second' END);
	RETURN (SELECT string_agg(e ->> 'state', ',') FROM jsonb_array_elements(res) e);
END
$$;
COMMENT ON FUNCTION paas.node_drain_record(uuid, text[], integer[], text[]) IS
	'last step of a drain pass: records the eviction answers and schedules the next pass';

-- The end of a pass: final (complete when nothing is left, incomplete past
-- the deadline, both audited) or the next pass after "pause".
CREATE FUNCTION paas.node_drain_finish(drain_id uuid, final boolean, pause interval DEFAULT '5 seconds')
	RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	d paas.node_drains;
	n paas.nodes;
BEGIN
	SELECT * INTO d FROM paas.node_drains WHERE id = drain_id;
	IF final OR d.deadline <= now() THEN
		UPDATE paas.node_drains
		   SET state = CASE WHEN jsonb_array_length(remaining) = 0 THEN 'complete' ELSE 'incomplete' END,
			   finished_at = now(), claimed_until = NULL, updated_at = now()
		 WHERE id = drain_id
		RETURNING * INTO d;
		SELECT * INTO n FROM paas.nodes WHERE id = d.node_id;
		IF FOUND THEN
			PERFORM paas.node_audit(n, n.status, 'drain_' || d.state, 'drain',
				CASE WHEN d.state = 'complete'
					 THEN jsonb_array_length(d.evicted) || ' pods evicted'
					 ELSE 'timed out after ' || d.timeout_s || ' s; pods left: '
						  || (SELECT string_agg((p ->> 'namespace') || '/' || (p ->> 'name'), ', ')
								FROM jsonb_array_elements(d.remaining) p) END);
		END IF;
	ELSE
		UPDATE paas.node_drains
		   SET next_attempt_at = least(now() + pause, deadline), claimed_until = NULL, updated_at = now()
		 WHERE id = drain_id;
	END IF;
END
$$;
COMMENT ON FUNCTION paas.node_drain_finish(uuid, boolean, interval) IS
	'ends a drain pass: the drain complete / incomplete (audited), or its next pass scheduled';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY['api.workers_drain(jsonb, jsonb)', 'api.workers_drain_get(jsonb, jsonb)'] LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	FOREACH f IN ARRAY ARRAY['paas.k8s_node_unschedulable(text, boolean)', 'paas.node_drain_claim()',
		'paas.node_drain_plan(uuid, text, integer, text)', 'paas.node_drain_record(uuid, text[], integer[], text[])',
		'paas.node_drain_finish(uuid, boolean, interval)'] LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END
$grants$;
