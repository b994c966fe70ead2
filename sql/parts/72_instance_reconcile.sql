-- paas -- the SQL side of the reconciler (bgworker/provisioner.c).  The C
-- worker knows HTTP and nothing of Kubernetes objects: it claims units of
-- work here, sends the calls they list with no transaction open, and
-- reports the answers back here, each unit in a short transaction of its
-- own.
--
-- Rules a reader must know.
--   * A unit is a customer's namespace or an instance, due when due_at <=
--     now() and not leased (claimed_until).  The claim (FOR UPDATE SKIP
--     LOCKED) leases it for two minutes: a worker killed mid-way loses
--     nothing, the unit is claimed again after the lease (or at once when
--     the worker restarts: paas.provisioner_start releases every lease).
--   * Namespaces go first: an instance that should run is claimed only
--     once its namespace has been applied at its current generation, so the
--     ResourceQuota always grows before the pods that need it.
--   * Every object is applied by server-side apply (the worker sends PATCH
--     application/apply-patch+yaml, fieldManager=paas, force=true): the
--     same call creates, updates and repairs, and a repeated call changes
--     nothing, so a crash between the call and its report only repeats a
--     harmless call.  DELETE answering 404 is success.
--   * Readiness is kubectl's rollout status rule (paas.deployment_rollout);
--     waiting reasons of the pods (ImagePullBackOff, CrashLoopBackOff,
--     Unschedulable ...) are shown to the owner (paas.pods_problem).  A
--     watch of the Deployments brings rollouts' progress as events
--     (paas.provisioner_watch_events); an instance whose rollout is under
--     way is also looked at after 5 s, doubling to 5 min; errors back off per
--     instance from 1 s to 5 min with jitter.
--   * The periodic resync (paas.instance_resync_interval) lists every kind
--     paas manages by label, a page of 500 at a time, and compares: an
--     object missing or of an older generation, an ingress that should not
--     be there, a rollout that disagrees with the status, all make their
--     instance or namespace due again (a Deployment deleted by hand is
--     recreated; a stand-in restarted empty is filled again).
--   * Kubernetes Nodes read from the API feed the node registry (the
--     capacity check's source) as registrations and heartbeats.

------------------------------------------------------------------------------
-- Paths and answers of the Kubernetes API
------------------------------------------------------------------------------

CREATE FUNCTION paas.k8s_resource(kind text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE kind WHEN 'Namespace' THEN 'namespaces' WHEN 'Secret' THEN 'secrets'
					 WHEN 'PersistentVolumeClaim' THEN 'persistentvolumeclaims'
					 WHEN 'Service' THEN 'services' WHEN 'ResourceQuota' THEN 'resourcequotas'
					 WHEN 'LimitRange' THEN 'limitranges' WHEN 'Deployment' THEN 'deployments'
					 WHEN 'Ingress' THEN 'ingresses' WHEN 'NetworkPolicy' THEN 'networkpolicies'
					 WHEN 'Pod' THEN 'pods' END;
COMMENT ON FUNCTION paas.k8s_resource(text) IS 'the REST resource (plural) of a kind paas manages';

-- The REST path of an object: /api/v1/... for the core group,
-- /apis/<group>/<version>/... otherwise; cluster-scoped when ns is NULL.
CREATE FUNCTION paas.k8s_path(api_version text, kind text, ns text, name text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN api_version = 'v1' THEN '/api/v1' ELSE '/apis/' || api_version END
		|| CASE WHEN ns IS NULL THEN '' ELSE '/namespaces/' || ns END
		|| '/' || paas.k8s_resource(kind) || CASE WHEN name IS NULL THEN '' ELSE '/' || name END;
COMMENT ON FUNCTION paas.k8s_path(text, text, text, text) IS 'REST path of a Kubernetes object';

CREATE FUNCTION paas.k8s_object_path(o jsonb) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN paas.k8s_path(o ->> 'apiVersion', o ->> 'kind',
						 CASE WHEN o ->> 'kind' = 'Namespace' THEN NULL
							  ELSE coalesce(o -> 'metadata' ->> 'namespace', o ->> 'namespace') END,
						 coalesce(o -> 'metadata' ->> 'name', o ->> 'name'));
COMMENT ON FUNCTION paas.k8s_object_path(jsonb) IS 'REST path of a manifest or of a {apiVersion, kind, namespace, name} reference';

-- The message of an error answer (a Status object, or the transport error).
CREATE FUNCTION paas.k8s_error_text(code integer, body text, err text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	j jsonb;
BEGIN
	IF err IS NOT NULL AND err <> '' THEN
		RETURN left('API unreachable: ' || err, 500);
	END IF;
	BEGIN
		j := body::jsonb;
	EXCEPTION WHEN OTHERS THEN
		j := NULL;
	END;
	RETURN left(format('HTTP %s%s', code, coalesce(' ' || (j ->> 'reason'), '')
						|| coalesce(': ' || (j ->> 'message'), coalesce(': ' || left(body, 200), ''))), 500);
END
$$;
COMMENT ON FUNCTION paas.k8s_error_text(integer, text, text) IS 'a readable message of a failed API call';

-- kubectl's rollout status rule for a Deployment object: "done" when the
-- controller observed the current generation and every replica is updated
-- and available, "failed" when progress stalled past its deadline
-- (ProgressDeadlineExceeded), else "progressing", with kubectl's message.
CREATE FUNCTION paas.deployment_rollout(d jsonb, OUT state text, OUT message text)
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	st jsonb := coalesce(d -> 'status', '{}');
	gen bigint := coalesce((d #>> '{metadata,generation}')::bigint, 0);
	og bigint := (st ->> 'observedGeneration')::bigint;
	want int := coalesce((d #>> '{spec,replicas}')::int, 1);
	updated int := coalesce((st ->> 'updatedReplicas')::int, 0);
	total int := coalesce((st ->> 'replicas')::int, 0);
	avail int := coalesce((st ->> 'availableReplicas')::int, 0);
	name text := coalesce(d #>> '{metadata,name}', '');
BEGIN
	IF og IS NULL OR gen > og THEN
		state := 'progressing';
		message := 'Waiting for deployment spec update to be observed...';
	ELSIF EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(st -> 'conditions', '[]')) c
				   WHERE c ->> 'type' = 'Progressing' AND c ->> 'reason' = 'ProgressDeadlineExceeded') THEN
		state := 'failed';
		message := format('deployment "%s" exceeded its progress deadline', name);
	ELSIF updated < want THEN
		state := 'progressing';
		message := format('Waiting for deployment "%s" rollout to finish: %s out of %s new replicas have been updated...',
						  name, updated, want);
	ELSIF total > updated THEN
		state := 'progressing';
		message := format('Waiting for deployment "%s" rollout to finish: %s old replicas are pending termination...',
						  name, total - updated);
	ELSIF avail < updated THEN
		state := 'progressing';
		message := format('Waiting for deployment "%s" rollout to finish: %s of %s updated replicas are available...',
						  name, avail, updated);
	ELSE
		state := 'done';
		message := format('deployment "%s" successfully rolled out', name);
	END IF;
END
$$;
COMMENT ON FUNCTION paas.deployment_rollout(jsonb) IS
	'kubectl rollout status rule of a Deployment: done | progressing | failed, with its message';

-- What the pods of an instance say (a PodList): the first problem an owner
-- should see (image pull, crash loop, configuration, scheduling), and the
-- name of the newest pod.
CREATE FUNCTION paas.pods_problem(pods jsonb, OUT problem text, OUT pod_name text, OUT restarts integer)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	WITH p AS (
		SELECT x AS pod, x #>> '{metadata,name}' AS name, x #>> '{metadata,creationTimestamp}' AS created
		  FROM jsonb_array_elements(coalesce(pods -> 'items', '[]')) x
		 WHERE x #>> '{metadata,deletionTimestamp}' IS NULL),
	c AS (
		SELECT p.name, p.created, cs ->> 'name' AS container, cs #>> '{state,waiting,reason}' AS reason,
			   cs #>> '{state,waiting,message}' AS msg, coalesce((cs ->> 'restartCount')::int, 0) AS restarts
		  FROM p, jsonb_array_elements(coalesce(p.pod #> '{status,initContainerStatuses}', '[]')
									   || coalesce(p.pod #> '{status,containerStatuses}', '[]')) cs),
	bad AS (
		SELECT format('container %s: %s%s', container, reason, coalesce(': ' || left(msg, 300), '')) AS t, created
		  FROM c
		 WHERE reason IN ('ImagePullBackOff', 'ErrImagePull', 'CrashLoopBackOff', 'CreateContainerConfigError',
						  'CreateContainerError', 'InvalidImageName', 'RunContainerError')
		UNION ALL
		SELECT format('%s: %s', cd ->> 'reason', left(cd ->> 'message', 300)), p.created
		  FROM p, jsonb_array_elements(coalesce(p.pod #> '{status,conditions}', '[]')) cd
		 WHERE cd ->> 'type' = 'PodScheduled' AND cd ->> 'status' = 'False')
	SELECT (SELECT t FROM bad ORDER BY created DESC NULLS LAST LIMIT 1),
		   (SELECT name FROM p ORDER BY created DESC NULLS LAST, name LIMIT 1),
		   (SELECT coalesce(max(restarts), 0)::int FROM c)
$$;
COMMENT ON FUNCTION paas.pods_problem(jsonb) IS
	'the waiting reason or scheduling problem an owner should see, and the newest pod''s name';

-- Delay before the next try after n consecutive errors: 1 s doubling to 5
-- min, +-25 % jitter so that failing instances spread out.
CREATE FUNCTION paas.retry_delay(n integer) RETURNS interval
	LANGUAGE sql VOLATILE PARALLEL SAFE
	RETURN make_interval(secs => least(300, power(2, greatest(n, 1) - 1)) * (0.75 + random() * 0.5));
COMMENT ON FUNCTION paas.retry_delay(integer) IS 'error backoff: 1 s doubling to 5 min, with jitter';

-- Delay before looking again at a rollout under way (n-th look): 5 s
-- doubling to 5 min, or from 30 s while the watches run.  The watches bring
-- the news as it happens; these looks are the net under them (and fetch
-- the pods of a slow rollout for its reason), sparse enough that thousands
-- of slow rollouts at once cost a few calls a second.
CREATE FUNCTION paas.poll_delay(n integer, watched boolean DEFAULT false) RETURNS interval
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN make_interval(secs => least(300, CASE WHEN watched THEN 30 ELSE 5 END
											* power(2, least(greatest(n, 1) - 1, 6))));
COMMENT ON FUNCTION paas.poll_delay(integer, boolean) IS
	'delay between looks at a rollout under way: 5 s doubling to 5 min (30 s doubling while the watches run)';

------------------------------------------------------------------------------
-- Claims
------------------------------------------------------------------------------

-- At start: releases every lease of a previous (crashed) worker.
CREATE FUNCTION paas.provisioner_start() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	a bigint;
	b bigint;
BEGIN
	UPDATE paas.instance_namespaces SET claimed_until = NULL, due_at = coalesce(due_at, now())
	 WHERE claimed_until IS NOT NULL;
	GET DIAGNOSTICS a = ROW_COUNT;
	UPDATE paas.instances SET claimed_until = NULL, due_at = coalesce(due_at, now())
	 WHERE claimed_until IS NOT NULL;
	GET DIAGNOSTICS b = ROW_COUNT;
	RETURN jsonb_build_object('namespaces', a, 'instances', b);
END
$$;
COMMENT ON FUNCTION paas.provisioner_start() IS 'releases the leases of a previous provisioner';

-- The calls of a namespace unit.
CREATE FUNCTION paas.namespace_ops(ns paas.instance_namespaces)
	RETURNS TABLE (seq integer, verb text, path text, body text, want boolean, tag text)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	o jsonb;
	n integer := 0;
	full_apply boolean := ns.state <> 'READY' OR ns.force_apply;
BEGIN
	IF ns.desired_state = 'absent' THEN
		RETURN QUERY SELECT 1, 'DELETE'::text, paas.k8s_path('v1', 'Namespace', NULL, ns.name), NULL::text,
							false, 'namespace'::text;
		RETURN;
	END IF;
	FOR o IN SELECT x FROM jsonb_array_elements(paas.namespace_render(ns)) x LOOP
		-- a namespace already READY only needs its quota again
		CONTINUE WHEN NOT full_apply AND o ->> 'kind' <> 'ResourceQuota';
		n := n + 1;
		seq := n;
		verb := 'APPLY';
		path := paas.k8s_object_path(o);
		body := o::text;
		want := false;
		tag := lower(o ->> 'kind');
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION paas.namespace_ops(paas.instance_namespaces) IS 'the API calls that converge a customer namespace';

-- The calls of an instance unit: the full apply (or deletion) when the
-- generation is not applied yet or drift was found, else a look at the
-- rollout (and, from the third look, at the pods).
CREATE FUNCTION paas.instance_ops(i paas.instances)
	RETURNS TABLE (seq integer, verb text, path text, body text, want boolean, tag text)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
	r jsonb;
	o jsonb;
	n integer := 0;
	pods text := paas.k8s_path('v1', 'Pod', i.namespace, NULL)
				 || '?labelSelector=paas.dev%2Finstance-id%3D' || i.id::text;
BEGIN
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	IF i.generation <> i.observed_generation OR i.force_apply
	   OR (i.desired_state = 'deleted' AND i.storage_gib > 0 AND i.volume_deleted_at IS NULL
		   AND i.volume_purge_at <= now()) THEN
		IF i.desired_state <> 'deleted' THEN
			PERFORM paas.instance_ensure_secrets(i, v);
		END IF;
		r := paas.instance_render(i, v, true);
		FOR o IN SELECT x FROM jsonb_array_elements(r -> 'apply') x LOOP
			n := n + 1;
			RETURN QUERY SELECT n, 'APPLY'::text, paas.k8s_object_path(o), o::text,
								o ->> 'kind' = 'Deployment', lower(o ->> 'kind');
		END LOOP;
		FOR o IN SELECT x FROM jsonb_array_elements(r -> 'delete') x LOOP
			n := n + 1;
			RETURN QUERY SELECT n, 'DELETE'::text, paas.k8s_object_path(o), NULL::text, false, lower(o ->> 'kind');
		END LOOP;
		IF i.desired_state = 'running' AND i.polls >= 1 THEN
			RETURN QUERY SELECT n + 1, 'GET'::text, pods, NULL::text, true, 'pods'::text;
		END IF;
		RETURN;
	END IF;
	IF i.desired_state = 'deleted' THEN
		RETURN;
	END IF;
	RETURN QUERY SELECT 1, 'GET'::text, paas.k8s_path('apps/v1', 'Deployment', i.namespace, i.name),
						NULL::text, true, 'deployment'::text;
	-- the pods, for the reasons of a slow rollout (their names come with the
	-- resync's list of pods)
	IF i.desired_state = 'running' AND i.polls >= 1 THEN
		RETURN QUERY SELECT 2, 'GET'::text, pods, NULL::text, true, 'pods'::text;
	END IF;
END
$$;
COMMENT ON FUNCTION paas.instance_ops(paas.instances) IS 'the API calls that converge an instance, or look at it';

-- Claims up to n due units and returns their calls: namespaces while any
-- is due, else instances (those that should run only once their namespace
-- is applied).  unit is 'namespace' or 'instance'; id the user or
-- instance id; generation the one the calls apply.
CREATE FUNCTION paas.provisioner_claim(n integer)
	RETURNS TABLE (unit text, id uuid, generation bigint, seq integer, verb text, path text,
				   body text, want boolean, tag text)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	lease interval := interval '2 minutes';
BEGIN
	RETURN QUERY
	WITH c AS (
		SELECT x.user_id FROM paas.instance_namespaces x
		 WHERE x.due_at <= now() AND (x.claimed_until IS NULL OR x.claimed_until < now())
		 ORDER BY x.due_at
		 LIMIT n
		   FOR UPDATE SKIP LOCKED),
	u AS (
		UPDATE paas.instance_namespaces x SET claimed_until = now() + lease
		  FROM c WHERE x.user_id = c.user_id
		RETURNING x.*)
	SELECT 'namespace'::text, u.user_id, u.generation, o.*
	  FROM u LEFT JOIN LATERAL paas.namespace_ops(u::paas.instance_namespaces) o ON true
	 ORDER BY u.user_id, o.seq;
	IF FOUND THEN
		RETURN;
	END IF;
	RETURN QUERY
	WITH c AS (
		SELECT x.id FROM paas.instances x
		 WHERE x.due_at <= now() AND (x.claimed_until IS NULL OR x.claimed_until < now())
		   AND (x.desired_state <> 'running'
				OR EXISTS (SELECT 1 FROM paas.instance_namespaces ns
							WHERE ns.user_id = x.user_id AND ns.state = 'READY'
							  AND ns.observed_generation = ns.generation))
		 ORDER BY x.due_at
		 LIMIT n
		   FOR UPDATE OF x SKIP LOCKED),
	u AS (
		UPDATE paas.instances x SET claimed_until = now() + lease
		  FROM c WHERE x.id = c.id
		RETURNING x.*)
	SELECT 'instance'::text, u.id, u.generation, o.*
	  FROM u LEFT JOIN LATERAL paas.instance_ops(u::paas.instances) o ON true
	 ORDER BY u.id, o.seq;
END
$$;
COMMENT ON FUNCTION paas.provisioner_claim(integer) IS
	'leases up to n due namespaces (first) or instances and returns the API calls of each';

-- When the provisioner should look again: the earliest due_at of a unit
-- it could claim (NULL: nothing is scheduled).
CREATE FUNCTION paas.provisioner_next_due() RETURNS timestamptz
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN least((SELECT min(greatest(due_at, claimed_until)) FROM paas.instance_namespaces
				   WHERE due_at IS NOT NULL),
				 (SELECT min(greatest(x.due_at, x.claimed_until)) FROM paas.instances x
				   WHERE x.due_at IS NOT NULL
					 AND (x.desired_state <> 'running'
						  OR EXISTS (SELECT 1 FROM paas.instance_namespaces ns
									  WHERE ns.user_id = x.user_id AND ns.state = 'READY'
										AND ns.observed_generation = ns.generation))));
COMMENT ON FUNCTION paas.provisioner_next_due() IS
	'the earliest time a unit can be claimed (instances waiting for their namespace do not count)';

------------------------------------------------------------------------------
-- Reports
------------------------------------------------------------------------------

-- Index of the first failed call of a report (NULL: all succeeded).  A
-- DELETE answering 404 succeeded; a GET of the Deployment answering 404 is
-- drift, not an error.
CREATE FUNCTION paas.report_failure(verbs text[], tags text[], codes integer[]) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN (SELECT min(k) FROM generate_subscripts(codes, 1) k
			 WHERE codes[k] IS NULL OR codes[k] = 0
				OR (codes[k] >= 300 AND NOT (codes[k] = 404 AND verbs[k] IN ('DELETE', 'GET'))));
COMMENT ON FUNCTION paas.report_failure(text[], text[], integer[]) IS 'first failed call of a report, or NULL';

CREATE FUNCTION paas.provisioner_report_namespace(uid uuid, gen bigint, verbs text[], tags text[],
												  codes integer[], bodies text[], errors text[])
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	ns paas.instance_namespaces;
	k integer := paas.report_failure(verbs, tags, codes);
	msg text;
BEGIN
	SELECT * INTO ns FROM paas.instance_namespaces WHERE user_id = uid FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 'gone';
	END IF;
	IF k IS NOT NULL OR cardinality(codes) = 0 THEN
		msg := CASE WHEN k IS NULL THEN 'no call was made'
					ELSE format('%s %s: %s', verbs[k], tags[k], paas.k8s_error_text(codes[k], bodies[k], errors[k])) END;
		-- 404 on an apply: the Namespace itself is gone (a cluster restarted
		-- empty, a namespace deleted by hand): apply everything again, now
		UPDATE paas.instance_namespaces
		   SET attempts = attempts + 1, last_error = msg, claimed_until = NULL,
			   force_apply = force_apply OR coalesce(codes[k] = 404, false),
			   due_at = CASE WHEN coalesce(codes[k] = 404, false) AND attempts = 0 THEN now()
							 ELSE now() + paas.retry_delay(attempts + 1) END,
			   updated_at = now()
		 WHERE user_id = uid;
		RETURN 'error';
	END IF;
	UPDATE paas.instance_namespaces
	   SET state = CASE WHEN desired_state = 'absent' THEN 'DELETED' ELSE 'READY' END,
		   observed_generation = greatest(observed_generation, gen),
		   force_apply = force_apply AND generation <> gen,
		   attempts = 0, last_error = NULL, claimed_until = NULL,
		   due_at = CASE WHEN generation <> gen THEN now() END, updated_at = now()
	 WHERE user_id = uid;
	IF ns.desired_state = 'present' THEN
		-- instances waiting for this namespace can go now.  Lock order is
		-- instance, then namespace everywhere else: rows someone holds are
		-- skipped (whoever holds them makes them due anyway).
		UPDATE paas.instances x SET due_at = now()
		 WHERE x.id IN (SELECT y.id FROM paas.instances y
						 WHERE y.user_id = uid AND y.due_at > now() AND y.generation <> y.observed_generation
						   AND y.claimed_until IS NULL AND y.attempts = 0
						   FOR UPDATE SKIP LOCKED);
	END IF;
	RETURN 'applied';
END
$$;
COMMENT ON FUNCTION paas.provisioner_report_namespace(uuid, bigint, text[], text[], integer[], text[], text[]) IS
	'records the outcome of a namespace unit';

-- Whether nothing of a customer remains on the cluster side but the
-- namespace: every instance ended and its volume deleted.
CREATE FUNCTION paas.namespace_empty(uid uuid) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN NOT EXISTS (SELECT 1 FROM paas.instances i
						WHERE i.user_id = uid
						  AND (i.desired_state <> 'deleted' OR i.status NOT IN ('DELETED', 'FAILED')
							   OR i.generation <> i.observed_generation
							   OR (i.storage_gib > 0 AND i.volume_deleted_at IS NULL)));
COMMENT ON FUNCTION paas.namespace_empty(uuid) IS 'whether a customer has nothing left in the namespace';

CREATE FUNCTION paas.provisioner_report_instance(inst uuid, gen bigint, verbs text[], tags text[],
												 codes integer[], bodies text[], errors text[],
												 watched boolean DEFAULT false)
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	k integer := paas.report_failure(verbs, tags, codes);
	full_apply boolean := 'APPLY' = ANY (verbs) OR 'DELETE' = ANY (verbs);
	purged boolean := EXISTS (SELECT 1 FROM generate_subscripts(tags, 1) x
							   WHERE tags[x] = 'persistentvolumeclaim' AND verbs[x] = 'DELETE');
	dep jsonb;
	pods jsonb;
	ro record;
	pp record;
	ev text;
	msg text;
	outcome text;
	calls jsonb;
BEGIN
	SELECT * INTO i FROM paas.instances WHERE id = inst FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 'gone';
	END IF;
	SELECT coalesce(jsonb_agg(jsonb_build_object('verb', verbs[x], 'object', tags[x], 'code', codes[x])
							  ORDER BY x), '[]')
	  INTO calls FROM generate_subscripts(codes, 1) x;

	IF k IS NOT NULL THEN
		msg := format('%s %s: %s', verbs[k], tags[k], paas.k8s_error_text(codes[k], bodies[k], errors[k]));
		UPDATE paas.instances
		   SET attempts = attempts + 1, last_error = msg, last_error_at = now(), claimed_until = NULL,
			   due_at = now() + paas.retry_delay(attempts + 1), updated_at = now()
		 WHERE id = inst;
		PERFORM paas.instance_log(inst, 'error', i.status, i.status, gen, msg,
								  jsonb_build_object('calls', calls, 'attempt', i.attempts + 1), 'provisioner');
		IF codes[k] = 404 AND verbs[k] = 'APPLY' THEN
			-- the namespace is gone: it is applied again first
			UPDATE paas.instance_namespaces
			   SET force_apply = desired_state = 'present', state = 'PENDING', due_at = now()
			 WHERE user_id = i.user_id AND desired_state = 'present';
		END IF;
		RETURN 'error';
	END IF;

	FOR x IN 1 .. coalesce(cardinality(codes), 0) LOOP
		IF tags[x] = 'deployment' AND bodies[x] IS NOT NULL AND codes[x] < 300 THEN
			dep := bodies[x]::jsonb;
		ELSIF tags[x] = 'pods' AND bodies[x] IS NOT NULL AND codes[x] < 300 THEN
			pods := bodies[x]::jsonb;
		END IF;
	END LOOP;

	-- the Deployment is gone (deleted by hand, a cluster restarted empty)
	IF NOT full_apply AND i.desired_state <> 'deleted' AND dep IS NULL THEN
		UPDATE paas.instances SET force_apply = true, due_at = now(), claimed_until = NULL, updated_at = now()
		 WHERE id = inst;
		PERFORM paas.instance_log(inst, 'drift', i.status, i.status, gen,
								  'the Deployment is missing: applying again', NULL, 'provisioner');
		RETURN 'drift';
	END IF;

	IF full_apply THEN
		PERFORM paas.instance_log(inst, 'apply', i.status, i.status, gen,
			format('generation %s applied (%s)', gen, i.desired_state), jsonb_build_object('calls', calls),
			'provisioner');
	END IF;
	UPDATE paas.instances
	   SET observed_generation = CASE WHEN full_apply THEN greatest(observed_generation, gen) ELSE observed_generation END,
		   -- a new generation may mean a new pod: its name is looked up again
		   pod_name = CASE WHEN full_apply AND pods IS NULL THEN NULL ELSE pod_name END,
		   force_apply = force_apply AND NOT (full_apply AND generation = gen),
		   attempts = 0, synced_at = now(), claimed_until = NULL, updated_at = now(),
		   -- why an instance FAILED stays what its owner reads
		   last_error = CASE WHEN status = 'FAILED' THEN last_error END,
		   volume_deleted_at = CASE WHEN purged AND volume_deleted_at IS NULL THEN now()
									ELSE volume_deleted_at END
	 WHERE id = inst
	RETURNING * INTO i;

	IF i.desired_state = 'deleted' THEN
		IF paas.instance_transition_allowed(i.status, 'deleted') THEN
			PERFORM paas.instance_apply_event(inst, 'deleted',
				CASE WHEN i.volume_deleted_at IS NOT NULL OR i.storage_gib = 0 THEN 'objects deleted'
					 ELSE format('objects deleted; the volume is kept until %s', paas.iso(i.volume_purge_at)) END,
				'provisioner');
		END IF;
		IF purged THEN
			PERFORM paas.instance_log(inst, 'volume_deleted', i.status, i.status, gen,
									  'the retention period ended: volume deleted', NULL, 'provisioner');
		END IF;
		UPDATE paas.instances
		   SET due_at = CASE WHEN generation <> observed_generation THEN now()
							 WHEN storage_gib > 0 AND volume_deleted_at IS NULL THEN volume_purge_at END,
			   status_message = NULL, polls = 0
		 WHERE id = inst
		RETURNING * INTO i;
		IF i.due_at IS NULL AND paas.namespace_empty(i.user_id) THEN
			UPDATE paas.instance_namespaces
			   SET desired_state = 'absent', state = 'DELETING', generation = generation + 1,
				   due_at = now(), attempts = 0, updated_at = now()
			 WHERE user_id = i.user_id AND desired_state = 'present';
		END IF;
		RETURN 'deleted';
	END IF;

	ro := paas.deployment_rollout(dep);
	IF pods IS NULL THEN
		-- what pods_problem says of no pods, without running it
		SELECT NULL::text AS problem, NULL::text AS pod_name, 0 AS restarts INTO pp;
	ELSE
		pp := paas.pods_problem(pods);
	END IF;
	IF i.desired_state = 'stopped' THEN
		IF coalesce((dep #>> '{status,replicas}')::int, 0) = 0 THEN
			ev := 'stopped';
			msg := 'scaled to zero; the ingress is removed and the data kept';
		ELSE
			ev := NULL;
			msg := format('stopping: %s pod(s) still running', dep #>> '{status,replicas}');
		END IF;
	ELSIF ro.state = 'done' THEN
		ev := 'ready';
		msg := ro.message;
	ELSIF ro.state = 'failed' OR pp.problem IS NOT NULL
		  OR (NOT full_apply AND i.status = 'RUNNING') THEN
		-- a running instance that is no longer available without a new
		-- rollout of ours is unhealthy (crash, lost pod), not progressing
		ev := 'unhealthy';
		msg := coalesce(pp.problem, ro.message);
	ELSE
		ev := 'progressing';
		msg := ro.message;
	END IF;

	outcome := coalesce(ev, 'waiting');
	IF ev IS NOT NULL AND paas.instance_transition_allowed(i.status, ev) THEN
		IF paas.instance_transition(i.status, ev) <> i.status THEN
			PERFORM paas.instance_apply_event(inst, ev, msg, 'provisioner');
		ELSIF msg IS DISTINCT FROM i.status_message AND ev <> 'progressing' THEN
			PERFORM paas.instance_log(inst, ev, i.status, i.status, gen, msg, NULL, 'provisioner');
		END IF;
	END IF;
	UPDATE paas.instances
	   SET status_message = msg,
		   pod_name = coalesce(pp.pod_name, pod_name),
		   last_error = CASE WHEN ev = 'unhealthy' THEN msg END,
		   last_error_at = CASE WHEN ev = 'unhealthy' THEN now() ELSE last_error_at END,
		   polls = CASE WHEN ev IN ('ready', 'stopped') THEN 0 ELSE polls + 1 END,
		   due_at = CASE WHEN generation <> observed_generation OR force_apply THEN now()
						 WHEN ev IN ('ready', 'stopped') THEN NULL
						 ELSE now() + paas.poll_delay(polls + 1, watched) END
	 WHERE id = inst;
	RETURN outcome;
END
$$;
COMMENT ON FUNCTION paas.provisioner_report_instance(uuid, bigint, text[], text[], integer[], text[], text[], boolean) IS
	'records the outcome of an instance unit: errors and backoff, applied generation, observed status';

-- The report of one unit, in its own transaction: verbs, tags, codes (0:
-- no answer), bodies (when asked for, or of an error) and transport errors
-- of the calls made, in order.
CREATE FUNCTION paas.provisioner_report(unit text, id uuid, generation bigint, verbs text[], tags text[],
										codes integer[], bodies text[], errors text[],
										watched boolean DEFAULT false)
	RETURNS text
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN CASE unit WHEN 'namespace'
				THEN paas.provisioner_report_namespace(id, generation, verbs, tags, codes, bodies, errors)
				ELSE paas.provisioner_report_instance(id, generation, verbs, tags, codes, bodies, errors,
													  watched) END;
COMMENT ON FUNCTION paas.provisioner_report(text, uuid, bigint, text[], text[], integer[], text[], text[], boolean) IS
	'records the answers of one claimed unit (namespace or instance); watched: the watches run';

------------------------------------------------------------------------------
-- Resync: what the cluster holds, compared with what should be
------------------------------------------------------------------------------

-- The lists a resync reads (label selector: managed by paas), in order.
-- meta: only object metadata is needed (the worker asks for
-- PartialObjectMetadataList, so Secret data never travels).
CREATE FUNCTION paas.provisioner_audit_paths() RETURNS TABLE (tag text, path text, meta boolean)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT t.tag, t.base || '?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpaas', t.meta
	  FROM (VALUES
		('namespace', '/api/v1/namespaces', true, 1),
		('resourcequota', '/api/v1/resourcequotas', true, 2),
		('limitrange', '/api/v1/limitranges', true, 3),
		('networkpolicy', '/apis/networking.k8s.io/v1/networkpolicies', true, 4),
		('secret', '/api/v1/secrets', true, 5),
		('persistentvolumeclaim', '/api/v1/persistentvolumeclaims', true, 6),
		('deployment', '/apis/apps/v1/deployments', false, 7),
		('service', '/api/v1/services', true, 8),
		('ingress', '/apis/networking.k8s.io/v1/ingresses', true, 9),
		('pod', '/api/v1/pods', true, 10)) t (tag, base, meta, ord)
	 ORDER BY t.ord
$$;
COMMENT ON FUNCTION paas.provisioner_audit_paths() IS 'the labelled lists a resync reads';

-- The scratch of a resync is the provisioner's own: temporary tables of
-- its session, pg_temp.paas_audit (when it began) and pg_temp.paas_seen
-- (the objects the lists returned), kept across its transactions.
CREATE FUNCTION paas.provisioner_audit_begin() RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	CREATE TEMP TABLE IF NOT EXISTS paas_audit (started_at timestamptz NOT NULL);
	CREATE TEMP TABLE IF NOT EXISTS paas_seen (
		kind		text NOT NULL,
		namespace	text,
		name		text NOT NULL,
		instance_id uuid,
		user_id		uuid,
		generation	bigint,
		rollout		text,
		replicas	integer);
	CREATE INDEX IF NOT EXISTS paas_seen_instance_idx ON pg_temp.paas_seen (instance_id, kind);
	TRUNCATE pg_temp.paas_audit, pg_temp.paas_seen;
	INSERT INTO pg_temp.paas_audit VALUES (now());
END
$$;
COMMENT ON FUNCTION paas.provisioner_audit_begin() IS 'starts a resync (its scratch: temporary tables of the session)';

-- One page of a list: records its objects, returns the continue token
-- (NULL on the last page).
CREATE FUNCTION paas.provisioner_audit_page(tag text, page jsonb) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	INSERT INTO pg_temp.paas_seen (kind, namespace, name, instance_id, user_id, generation, rollout, replicas)
	SELECT tag, x #>> '{metadata,namespace}', x #>> '{metadata,name}',
		   paas.to_uuid(x #>> '{metadata,labels,paas.dev/instance-id}'),
		   paas.to_uuid(x #>> '{metadata,labels,paas.dev/user-id}'),
		   CASE WHEN tag = 'pod' THEN CASE WHEN x #>> '{metadata,deletionTimestamp}' IS NULL
											THEN extract(epoch FROM (x #>> '{metadata,creationTimestamp}')::timestamptz)::bigint END
				WHEN x #>> '{metadata,annotations,paas.dev/generation}' ~ '^[0-9]{1,18}$'
				THEN (x #>> '{metadata,annotations,paas.dev/generation}')::bigint END,
		   CASE WHEN tag = 'deployment' THEN (paas.deployment_rollout(x)).state END,
		   CASE WHEN tag = 'deployment' THEN coalesce((x #>> '{status,replicas}')::int, 0) END
	  FROM jsonb_array_elements(coalesce(page -> 'items', '[]')) x
	 WHERE x #>> '{metadata,name}' IS NOT NULL;
	RETURN nullif(page #>> '{metadata,continue}', '');
END
$$;
COMMENT ON FUNCTION paas.provisioner_audit_page(text, jsonb) IS
	'records the objects of one page of a resync list; returns the continue token';

-- Ends a resync.  When every list was read in full (complete), units whose
-- objects drifted become due: missing or older objects (force_apply), an
-- ingress or leftovers that should be gone, a rollout that disagrees with
-- the status.  Units changed since the resync began are left alone.
CREATE FUNCTION paas.provisioner_audit_end(complete boolean) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	t0 timestamptz := (SELECT started_at FROM pg_temp.paas_audit);
	drift_ns bigint := 0;
	drift_inst bigint := 0;
	look bigint := 0;
	orphans bigint := 0;
	res jsonb;
BEGIN
	IF NOT complete THEN
		RETURN jsonb_build_object('complete', false);
	END IF;

	WITH want AS (
		SELECT ns.user_id, ns.name, k.kind
		  FROM paas.instance_namespaces ns,
			   unnest(ARRAY['namespace', 'resourcequota', 'limitrange', 'networkpolicy']) k (kind)
		 WHERE ns.desired_state = 'present' AND ns.state = 'READY' AND ns.due_at IS NULL
		   AND ns.updated_at < t0),
	missing AS (
		SELECT DISTINCT w.user_id, w.name FROM want w
		 WHERE NOT EXISTS (SELECT 1 FROM pg_temp.paas_seen s
							WHERE s.kind = w.kind
							  AND (CASE WHEN w.kind = 'namespace' THEN s.name ELSE s.namespace END) = w.name)),
	gone AS (
		SELECT ns.user_id, ns.name FROM paas.instance_namespaces ns
		 WHERE ns.desired_state = 'absent' AND ns.due_at IS NULL AND ns.updated_at < t0
		   AND EXISTS (SELECT 1 FROM pg_temp.paas_seen s WHERE s.kind = 'namespace' AND s.name = ns.name)),
	lk AS (
		SELECT ns.user_id FROM paas.instance_namespaces ns
		 WHERE ns.user_id IN (SELECT user_id FROM missing UNION SELECT user_id FROM gone)
		   FOR UPDATE SKIP LOCKED),
	u AS (
		UPDATE paas.instance_namespaces ns
		   SET force_apply = ns.desired_state = 'present', due_at = now()
		  FROM lk WHERE ns.user_id = lk.user_id
		RETURNING 1)
	SELECT count(*) INTO drift_ns FROM u;
	-- the lock order elsewhere is instance, then namespace: holding
	-- namespaces, this never waits for an instance (SKIP LOCKED below)

	WITH cand AS (
		SELECT i.*, paas.service_template(i.service_id) AS tpl
		  FROM paas.instances i
		 WHERE i.due_at IS NULL AND i.claimed_until IS NULL AND coalesce(i.synced_at, i.updated_at) < t0
		   AND i.generation = i.observed_generation),
	expect AS (
		SELECT c.id, k.kind, k.present
		  FROM cand c
		  CROSS JOIN LATERAL (VALUES
			('deployment', c.desired_state <> 'deleted'),
			('service', c.desired_state <> 'deleted'),
			('ingress', c.desired_state = 'running' AND coalesce(c.tpl ->> 'expose', 'http') = 'http'),
			('secret', c.desired_state <> 'deleted' AND coalesce(c.tpl -> 'secrets', '{}') <> '{}'),
			('persistentvolumeclaim', c.storage_gib > 0 AND c.volume_deleted_at IS NULL)) k (kind, present)),
	bad AS (
		SELECT DISTINCT e.id FROM expect e
		  JOIN cand c ON c.id = e.id
		  LEFT JOIN pg_temp.paas_seen s ON s.instance_id = e.id AND s.kind = e.kind
		 WHERE (e.present AND (s.name IS NULL OR s.generation < c.observed_generation))
			OR (NOT e.present AND s.name IS NOT NULL
				AND NOT (e.kind = 'persistentvolumeclaim' AND c.volume_deleted_at IS NULL))),
	lk AS (
		SELECT i.id FROM paas.instances i WHERE i.id IN (SELECT id FROM bad) FOR UPDATE SKIP LOCKED),
	u AS (
		UPDATE paas.instances i SET force_apply = true, due_at = now()
		  FROM lk WHERE i.id = lk.id
		RETURNING i.id, i.status, i.generation),
	l AS (
		INSERT INTO paas.instance_events (instance_id, event, from_status, to_status, generation, message, actor)
		SELECT id, 'drift', status, status, generation, 'the resync found objects missing or out of date: applying again',
			   'provisioner'
		  FROM u ORDER BY id
		RETURNING 1)
	SELECT count(*) INTO drift_inst FROM l;

	-- a rollout that disagrees with the observed status: look again
	WITH lk AS (
		SELECT i.id FROM paas.instances i JOIN pg_temp.paas_seen s ON s.instance_id = i.id
		 WHERE s.kind = 'deployment' AND i.due_at IS NULL
		   AND i.claimed_until IS NULL AND coalesce(i.synced_at, i.updated_at) < t0
		   AND ((i.status = 'RUNNING' AND s.rollout <> 'done')
				OR (i.status IN ('DEGRADED', 'PROVISIONING') AND s.rollout = 'done')
				OR (i.status = 'STOPPED' AND s.replicas > 0))
		   FOR UPDATE OF i SKIP LOCKED),
	u AS (
		UPDATE paas.instances i SET due_at = now() FROM lk WHERE i.id = lk.id
		RETURNING 1)
	SELECT count(*) INTO look FROM u;

	-- the pod that runs each instance (the newest one listed)
	WITH p AS (
		SELECT DISTINCT ON (instance_id) instance_id, name FROM pg_temp.paas_seen
		 WHERE kind = 'pod' AND instance_id IS NOT NULL
		 ORDER BY instance_id, generation DESC NULLS LAST, name DESC),
	lk AS (
		SELECT i.id, p.name FROM paas.instances i JOIN p ON p.instance_id = i.id
		 WHERE i.pod_name IS DISTINCT FROM p.name AND i.desired_state = 'running'
		   FOR UPDATE OF i SKIP LOCKED)
	UPDATE paas.instances i SET pod_name = lk.name FROM lk WHERE i.id = lk.id;

	SELECT count(*) INTO orphans FROM pg_temp.paas_seen s
	 WHERE s.instance_id IS NOT NULL
	   AND NOT EXISTS (SELECT 1 FROM paas.instances i WHERE i.id = s.instance_id);

	res := jsonb_build_object('complete', true,
		'objects', (SELECT count(*) FROM pg_temp.paas_seen),
		'driftNamespaces', drift_ns, 'driftInstances', drift_inst, 'rolloutLooks', look,
		'orphans', orphans);
	IF drift_ns + drift_inst + look > 0 THEN
		PERFORM paas.instance_wake();
	END IF;
	RETURN res;
END
$$;
COMMENT ON FUNCTION paas.provisioner_audit_end(boolean) IS
	'ends a resync: units whose objects drifted become due; returns counts';

------------------------------------------------------------------------------
-- The Deployment watch
------------------------------------------------------------------------------

-- Lines of the watch stream (WatchEvent JSON, one per line) received by
-- the provisioner.  A Deployment of an applied generation (its
-- paas.dev/generation annotation is the instance's observed generation,
-- nothing newer is pending, no reconcile holds the instance) tells the
-- rollout as kubectl's rule reads it: done -> ready (or stopped at zero
-- replicas), failed or a running instance no longer available ->
-- unhealthy, and a look with the pods is due at once for the reason; a
-- deleted Deployment of an instance that should exist is drift, applied
-- again at once.  Returns the last resourceVersion seen, or GONE when the
-- server said the version is too old (410: list again).
CREATE FUNCTION paas.provisioner_watch_events(lines text[]) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	line text;
	ev jsonb;
	d jsonb;
	rv text;
	i paas.instances;
	ro record;
	kind text;
	msg text;
BEGIN
	FOREACH line IN ARRAY lines LOOP
		BEGIN
			ev := line::jsonb;
		EXCEPTION WHEN OTHERS THEN
			CONTINUE;
		END;
		d := ev -> 'object';
		IF ev ->> 'type' = 'ERROR' THEN
			IF (d ->> 'code') = '410' THEN
				RETURN 'GONE';
			END IF;
			CONTINUE;
		END IF;
		rv := coalesce(d #>> '{metadata,resourceVersion}', rv);
		CONTINUE WHEN ev ->> 'type' NOT IN ('ADDED', 'MODIFIED', 'DELETED');
		-- one event's failure (a row deleted meanwhile ...) never stops the stream
		BEGIN
			SELECT * INTO i FROM paas.instances
			 WHERE id = paas.to_uuid(d #>> '{metadata,labels,paas.dev/instance-id}')
			   FOR UPDATE SKIP LOCKED;
			CONTINUE WHEN NOT FOUND OR i.claimed_until > now() OR i.generation <> i.observed_generation
				OR i.force_apply OR i.desired_state = 'deleted';
			IF ev ->> 'type' = 'DELETED' THEN
				UPDATE paas.instances SET force_apply = true, due_at = now(), updated_at = now() WHERE id = i.id;
				PERFORM paas.instance_log(i.id, 'drift', i.status, i.status, i.generation,
										  'the Deployment was deleted: applying again', NULL, 'provisioner');
				CONTINUE;
			END IF;
			CONTINUE WHEN d #>> '{metadata,annotations,paas.dev/generation}' IS DISTINCT FROM i.observed_generation::text;
			ro := paas.deployment_rollout(d);
			kind := NULL;
			IF i.desired_state = 'stopped' THEN
				IF coalesce((d #>> '{status,replicas}')::int, 0) = 0 THEN
					kind := 'stopped';
					msg := 'scaled to zero; the ingress is removed and the data kept';
				END IF;
			ELSIF ro.state = 'done' THEN
				kind := 'ready';
				msg := ro.message;
			ELSIF ro.state = 'failed' OR (i.status = 'RUNNING' AND ro.state = 'progressing') THEN
				kind := 'unhealthy';
				msg := ro.message;
			END IF;
			CONTINUE WHEN kind IS NULL OR NOT paas.instance_transition_allowed(i.status, kind)
				OR paas.instance_transition(i.status, kind) = i.status AND kind <> 'unhealthy';
			PERFORM paas.instance_apply_event(i.id, kind, msg, 'provisioner');
			UPDATE paas.instances
			   SET status_message = msg, synced_at = now(), updated_at = now(),
				   polls = CASE WHEN kind IN ('ready', 'stopped') THEN 0 ELSE greatest(polls, 2) END,
				   due_at = CASE WHEN kind IN ('ready', 'stopped') THEN NULL ELSE now() END
			 WHERE id = i.id;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'paas provisioner: a watch event was not applied: %', SQLERRM;
		END;
	END LOOP;
	RETURN rv;
END
$$;
COMMENT ON FUNCTION paas.provisioner_watch_events(text[]) IS
	'applies the rollout news of a Deployment watch to the instances; the last resourceVersion, or GONE';

-- Lines of the pod watch: the pod that runs each instance (its name for
-- GET /pods, the logs), and the reason a rollout does not complete
-- (ImagePullBackOff, CrashLoopBackOff, Unschedulable ...) as it appears:
-- shown to the owner, and a RUNNING instance whose pod fails is DEGRADED.
-- Only changes are written.  Returns the last resourceVersion seen, or GONE.
CREATE FUNCTION paas.provisioner_watch_pods(lines text[]) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	line text;
	ev jsonb;
	p jsonb;
	rv text;
	i paas.instances;
	problem text;
	pod text;
BEGIN
	FOREACH line IN ARRAY lines LOOP
		BEGIN
			ev := line::jsonb;
		EXCEPTION WHEN OTHERS THEN
			CONTINUE;
		END;
		p := ev -> 'object';
		IF ev ->> 'type' = 'ERROR' THEN
			IF (p ->> 'code') = '410' THEN
				RETURN 'GONE';
			END IF;
			CONTINUE;
		END IF;
		rv := coalesce(p #>> '{metadata,resourceVersion}', rv);
		CONTINUE WHEN ev ->> 'type' NOT IN ('ADDED', 'MODIFIED') OR p #>> '{metadata,deletionTimestamp}' IS NOT NULL;
		-- one event's failure (a row deleted meanwhile ...) never stops the stream
		BEGIN
			SELECT * INTO i FROM paas.instances
			 WHERE id = paas.to_uuid(p #>> '{metadata,labels,paas.dev/instance-id}')
			   FOR UPDATE SKIP LOCKED;
			CONTINUE WHEN NOT FOUND OR i.desired_state <> 'running' OR i.claimed_until > now();
			pod := p #>> '{metadata,name}';
			-- most events are of a pod that is fine: what pods_problem reports
			-- needs a waiting container (other than one being created) or a pod
			-- that could not be scheduled
			IF p @? '$.status.*[*].state.waiting.reason ? (@ != "ContainerCreating" && @ != "PodInitializing")'
			   OR p @> '{"status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}' THEN
				problem := (paas.pods_problem(jsonb_build_object('items', jsonb_build_array(p)))).problem;
			ELSE
				problem := NULL;
			END IF;
			IF i.pod_name IS DISTINCT FROM pod THEN
				UPDATE paas.instances SET pod_name = pod WHERE id = i.id;
			END IF;
			CONTINUE WHEN problem IS NULL OR problem IS NOT DISTINCT FROM i.status_message
				OR i.status NOT IN ('PENDING', 'PROVISIONING', 'RUNNING', 'DEGRADED');
			IF paas.instance_transition(i.status, 'unhealthy') <> i.status THEN
				PERFORM paas.instance_apply_event(i.id, 'unhealthy', problem, 'provisioner');
			ELSE
				PERFORM paas.instance_log(i.id, 'unhealthy', i.status, i.status, i.generation, problem, NULL,
										  'provisioner');
			END IF;
			UPDATE paas.instances
			   SET status_message = problem, last_error = problem, last_error_at = now(), updated_at = now()
			 WHERE id = i.id;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'paas provisioner: a watch event was not applied: %', SQLERRM;
		END;
	END LOOP;
	RETURN rv;
END
$$;
COMMENT ON FUNCTION paas.provisioner_watch_pods(text[]) IS
	'applies the news of the pod watch (the pod that runs, why a rollout is stuck); the last resourceVersion, or GONE';
