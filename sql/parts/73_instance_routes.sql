-- paas -- the api of instances: the original's /pods routes (the caller's
-- instances only; another user's answers 404), logs and credentials for
-- the owner, and what administrators need (every instance, events,
-- manifests, forced reconcile, stop / start, the provisioner's state, the
-- deployment templates of the catalog).
--
-- Logs come from the Kubernetes API through httpd: api.pods_logs checks
-- the caller and answers {"$k8s": {...}} naming the namespace, the pod
-- selector and the container; httpd (ROUTE_K8S, httpd/k8s.c) then reads
-- the log with libcurl, with no transaction open.

------------------------------------------------------------------------------
-- helpers
------------------------------------------------------------------------------

CREATE FUNCTION paas.instance_exposed(v paas.services) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN coalesce(paas.service_template(v.id) ->> 'expose', 'http') = 'http';
COMMENT ON FUNCTION paas.instance_exposed(paas.services) IS 'whether instances of the service get an Ingress';

-- An instance as the API prints it: the original's ServiceInstance fields
-- (podName, namespace, status, internalUrl, externalUrl, cpuAllocated,
-- memAllocated ...) and the desired / observed state.
CREATE FUNCTION paas.instance_json(i paas.instances, v paas.services) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'id', i.id, 'subscriptionId', i.subscription_id, 'userId', i.user_id, 'serviceId', i.service_id,
		'service', jsonb_build_object('id', v.id, 'name', v.name, 'displayName', v.display_name),
		'name', i.name, 'podName', coalesce(i.pod_name, i.name), 'namespace', i.namespace,
		'status', i.status, 'desiredState', i.desired_state,
		'generation', i.generation, 'observedGeneration', i.observed_generation,
		'host', i.host,
		'internalUrl', format('http://%s.%s.svc.cluster.local:%s', i.name, i.namespace, v.container_port),
		'externalUrl', CASE WHEN paas.instance_exposed(v) THEN 'https://' || i.host END,
		'url', CASE WHEN paas.instance_exposed(v) THEN 'https://' || i.host END,
		'cpuAllocated', paas.cpu_text(i.cpu_limit_m), 'memAllocated', paas.mem_text(i.mem_limit_mib),
		'resources', jsonb_build_object('cpuRequestMillicores', i.cpu_request_m,
										'cpuLimitMillicores', i.cpu_limit_m,
										'memoryRequestMiB', i.mem_request_mib,
										'memoryLimitMiB', i.mem_limit_mib, 'storageGiB', i.storage_gib),
		'statusMessage', i.status_message,
		'lastError', i.last_error, 'lastErrorAt', paas.iso(i.last_error_at),
		'stoppedByAdmin', i.admin_stopped,
		'restartCount', i.restart_count, 'restartedAt', paas.iso(i.restarted_at))
	|| jsonb_build_object(
		'startDeadline', CASE WHEN NOT i.ever_running AND i.desired_state = 'running'
							  THEN paas.iso(i.start_requested_at + (paas.instance_config()).start_deadline) END,
		'readyAt', paas.iso(i.ready_at), 'stoppedAt', paas.iso(i.stopped_at), 'endedAt', paas.iso(i.ended_at),
		'volume', CASE WHEN i.storage_gib > 0 THEN jsonb_build_object(
					'sizeGiB', i.storage_gib,
					'retainedUntil', CASE WHEN i.volume_deleted_at IS NULL THEN paas.iso(i.volume_purge_at) END,
					'deletedAt', paas.iso(i.volume_deleted_at)) END,
		'refundedAt', paas.iso(i.refunded_at),
		'statusChangedAt', paas.iso(i.status_changed_at),
		'createdAt', paas.iso(i.created_at), 'updatedAt', paas.iso(i.updated_at));
COMMENT ON FUNCTION paas.instance_json(paas.instances, paas.services) IS 'an instance as the API prints it';

-- The short form shown with a subscription (GET /subscriptions/:id).
CREATE FUNCTION paas.subscription_instance_json(sub uuid) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT jsonb_build_object(
				'id', i.id, 'name', i.name, 'status', i.status, 'desiredState', i.desired_state,
				'url', CASE WHEN paas.instance_exposed(v) THEN 'https://' || i.host END,
				'podName', coalesce(i.pod_name, i.name), 'namespace', i.namespace,
				'statusMessage', i.status_message, 'lastError', i.last_error,
				'lastErrorAt', paas.iso(i.last_error_at), 'readyAt', paas.iso(i.ready_at))
			  FROM paas.instances i JOIN paas.services v ON v.id = i.service_id
			 WHERE i.subscription_id = sub);
COMMENT ON FUNCTION paas.subscription_instance_json(uuid) IS
	'the instance of a subscription in short: status, URL, last error (NULL when none)';

CREATE FUNCTION paas.instance_event_json(e paas.instance_events, admin boolean) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN jsonb_strip_nulls(jsonb_build_object(
		'id', e.id, 'event', e.event, 'from', e.from_status, 'to', e.to_status,
		'generation', e.generation, 'message', e.message, 'actor', e.actor,
		'actorId', CASE WHEN admin THEN e.actor_id END,
		'detail', CASE WHEN admin THEN e.detail END,
		'createdAt', paas.iso(e.created_at)));
COMMENT ON FUNCTION paas.instance_event_json(paas.instance_events, boolean) IS
	'an instance event as the API prints it (detail and actor id for administrators)';

-- The caller's instance by id or name (uid NULL: anyone's), locked when
-- lock; PT404 for unknown, malformed and another user's alike.
CREATE FUNCTION paas.instance_of(uid uuid, key text, lock boolean DEFAULT false) RETURNS paas.instances
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	iid uuid := paas.to_uuid(key);
BEGIN
	IF lock THEN
		SELECT * INTO i FROM paas.instances x
		 WHERE (x.id = iid OR (iid IS NULL AND x.name = lower(key))) AND (uid IS NULL OR x.user_id = uid)
		   FOR UPDATE;
	ELSE
		SELECT * INTO i FROM paas.instances x
		 WHERE (x.id = iid OR (iid IS NULL AND x.name = lower(key))) AND (uid IS NULL OR x.user_id = uid);
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Pod not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN i;
END
$$;
COMMENT ON FUNCTION paas.instance_of(uuid, text, boolean) IS
	'an instance of uid (anyone''s when NULL) by id or name; PT404 otherwise';

CREATE FUNCTION paas.check_instance_filters(errs jsonb, req jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	f text;
BEGIN
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'status', false,
		ARRAY['PENDING', 'PROVISIONING', 'RUNNING', 'DEGRADED', 'FAILED', 'STOPPED', 'DELETING', 'DELETED']);
	errs := paas.check_text(errs, req, 'search', false, 1, 100);
	FOREACH f IN ARRAY ARRAY['serviceId', 'userId', 'subscriptionId'] LOOP
		errs := paas.check_text(errs, req, f, false, 1, 64);
		IF jsonb_typeof(req -> f) = 'string' AND paas.to_uuid(req ->> f) IS NULL THEN
			errs := paas.add_err(errs, f, f || ' must be a valid id');
		END IF;
	END LOOP;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_instance_filters(jsonb, jsonb) IS
	'appends errors for invalid page, limit, status, search and id filters';

-- One page of instances, newest first: {rows, total}.  uid NULL: everyone's.
CREATE FUNCTION paas.instances_page(req jsonb, uid uuid, default_limit integer) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	lim int := coalesce((req ->> 'limit')::int, default_limit);
	off int := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	st text := req ->> 'status';
	svc uuid := paas.to_uuid(req ->> 'serviceId');
	usr uuid := coalesce(uid, paas.to_uuid(req ->> 'userId'));
	sub uuid := paas.to_uuid(req ->> 'subscriptionId');
	pat text := CASE WHEN req ->> 'search' IS NOT NULL THEN
					'%' || replace(replace(replace(req ->> 'search', '\', '\\'), '%', '\%'), '_', '\_') || '%' END;
	total bigint;
	rows jsonb;
BEGIN
	SELECT count(*) INTO total FROM paas.instances i
	 WHERE (usr IS NULL OR i.user_id = usr) AND (st IS NULL OR i.status = st)
	   AND (svc IS NULL OR i.service_id = svc) AND (sub IS NULL OR i.subscription_id = sub)
	   AND (pat IS NULL OR i.name ILIKE pat OR i.host ILIKE pat);
	SELECT coalesce(jsonb_agg(paas.instance_json(p.i, p.v) ORDER BY p.rn), '[]') INTO rows
	  FROM (SELECT i, v, row_number() OVER (ORDER BY i.created_at DESC, i.id) AS rn
			  FROM paas.instances i JOIN paas.services v ON v.id = i.service_id
			 WHERE (usr IS NULL OR i.user_id = usr) AND (st IS NULL OR i.status = st)
			   AND (svc IS NULL OR i.service_id = svc) AND (sub IS NULL OR i.subscription_id = sub)
			   AND (pat IS NULL OR i.name ILIKE pat OR i.host ILIKE pat)
			 ORDER BY i.created_at DESC, i.id
			 LIMIT lim OFFSET off) p;
	RETURN jsonb_build_object('rows', rows, 'total', total);
END
$$;
COMMENT ON FUNCTION paas.instances_page(jsonb, uuid, integer) IS
	'newest first; status, serviceId, userId, subscriptionId, search, page, limit (validated by the caller)';

CREATE FUNCTION paas.instance_events_page(i paas.instances, req jsonb, admin boolean) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'data', (SELECT coalesce(jsonb_agg(paas.instance_event_json(e, admin) ORDER BY e.id DESC), '[]')
				   FROM (SELECT * FROM paas.instance_events x WHERE x.instance_id = i.id
						  ORDER BY x.id DESC
						  LIMIT coalesce((req ->> 'limit')::int, 50)
						 OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * coalesce((req ->> 'limit')::int, 50)) e),
		'pagination', paas.pagination(req, (SELECT count(*) FROM paas.instance_events x WHERE x.instance_id = i.id), 50));
COMMENT ON FUNCTION paas.instance_events_page(paas.instances, jsonb, boolean) IS
	'one page of an instance''s events, newest first';

------------------------------------------------------------------------------
-- api: the owner's instances (/pods)
------------------------------------------------------------------------------

CREATE FUNCTION api.pods_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	r jsonb;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_instance_filters('[]', req - 'userId'));
	r := paas.instances_page(req - 'userId', u.id, 20);
	RETURN jsonb_build_object('data', r -> 'rows',
							  'pagination', paas.pagination(req, (r ->> 'total')::bigint, 20));
END
$$;
COMMENT ON FUNCTION api.pods_list(jsonb, jsonb) IS
	'GET /pods: the caller''s instances, newest first; status, serviceId, subscriptionId, search, page, limit';

CREATE FUNCTION api.pods_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id');
	v paas.services;
BEGIN
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v) || jsonb_build_object(
		'events', (SELECT coalesce(jsonb_agg(paas.instance_event_json(e, false) ORDER BY e.id DESC), '[]')
					 FROM (SELECT * FROM paas.instance_events x WHERE x.instance_id = i.id
							ORDER BY x.id DESC LIMIT 10) e));
END
$$;
COMMENT ON FUNCTION api.pods_get(jsonb, jsonb) IS
	'GET /pods/:id: one of the caller''s instances (id or name) with its last 10 events';

CREATE FUNCTION api.pods_events(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id');
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_paging('[]', req));
	RETURN paas.instance_events_page(i, req, false);
END
$$;
COMMENT ON FUNCTION api.pods_events(jsonb, jsonb) IS
	'GET /pods/:id/events: the history of one of the caller''s instances, newest first';

-- Restart = a new pod-template annotation (paas.dev/restartedAt), as
-- kubectl rollout restart does; only an instance that should run and has
-- been applied can restart.
CREATE FUNCTION paas.instance_restart(i paas.instances, actor text, actor_id uuid) RETURNS paas.instances
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF i.desired_state = 'stopped' THEN
		RAISE EXCEPTION 'Pod cannot be restarted while it is stopped' USING ERRCODE = 'PT409',
			HINT = CASE WHEN i.admin_stopped THEN 'An administrator stopped it.'
						ELSE 'Pay the subscription to start it again.' END;
	ELSIF i.desired_state <> 'running' OR i.status NOT IN ('RUNNING', 'DEGRADED', 'PROVISIONING') THEN
		RAISE EXCEPTION 'Pod cannot be restarted while it is %', i.status USING ERRCODE = 'PT409';
	END IF;
	UPDATE paas.instances
	   SET restarted_at = clock_timestamp(), restart_count = restart_count + 1, generation = generation + 1,
		   polls = 0, attempts = 0, due_at = now(), updated_at = now()
	 WHERE id = i.id
	RETURNING * INTO i;
	PERFORM paas.instance_log(i.id, 'restart', i.status, i.status, i.generation,
							  'restart requested', NULL, actor, actor_id);
	PERFORM paas.instance_wake();
	RETURN i;
END
$$;
COMMENT ON FUNCTION paas.instance_restart(paas.instances, text, uuid) IS
	'asks for a rolling restart (new pod-template annotation); PT409 unless the instance should run';

CREATE FUNCTION api.pods_restart(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id', true);
	v paas.services;
BEGIN
	i := paas.instance_restart(i, 'owner', u.id);
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v);
END
$$;
COMMENT ON FUNCTION api.pods_restart(jsonb, jsonb) IS
	'POST /pods/:id/restart: restarts one of the caller''s instances; PT409 when it is not running';

CREATE FUNCTION api.pods_credentials(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id');
	v paas.services;
	vars jsonb;
	creds jsonb;
BEGIN
	IF i.status IN ('DELETED', 'FAILED') THEN
		RAISE EXCEPTION 'The pod has ended; its credentials are gone' USING ERRCODE = 'PT409';
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	PERFORM paas.instance_ensure_secrets(i, v);
	vars := paas.instance_vars(i, v, paas.service_template(v.id), true);
	SELECT coalesce(jsonb_object_agg(c.key, paas.tpl_subst(c.value #>> '{}', vars)), '{}') INTO creds
	  FROM jsonb_each(coalesce(paas.service_template(v.id) -> 'credentials', '{}')) c;
	-- who looked is recorded, never what they saw
	PERFORM paas.instance_log(i.id, 'credentials_viewed', i.status, i.status, i.generation,
							  'credentials shown to the owner', NULL, 'owner', u.id);
	RETURN jsonb_build_object('id', i.id, 'name', i.name,
		'url', CASE WHEN paas.instance_exposed(v) THEN 'https://' || i.host END,
		'internalUrl', format('http://%s.%s.svc.cluster.local:%s', i.name, i.namespace, v.container_port),
		'credentials', creds,
		'secrets', (SELECT coalesce(jsonb_object_agg(s.name, s.value), '{}') FROM paas.instance_secrets s
					 WHERE s.instance_id = i.id));
END
$$;
COMMENT ON FUNCTION api.pods_credentials(jsonb, jsonb) IS
	'GET /pods/:id/credentials: the owner''s credentials and generated secrets of an instance (the viewing is recorded)';

-- The first step of GET /pods/:id/logs: who may read, and where the log
-- is.  httpd reads it from the Kubernetes API (httpd/k8s.c).
CREATE FUNCTION api.pods_logs(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id');
	v paas.services;
	errs jsonb := '[]';
	containers text[];
BEGIN
	req := paas.require_object(req);
	errs := paas.check_int(errs, req, 'tailLines', false, 1, 5000);
	errs := paas.check_text(errs, req, 'container', false, 1, 63);
	errs := paas.check_bool(errs, req, 'previous', false);
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	containers := ARRAY['app'] || ARRAY(SELECT x ->> 'name' FROM jsonb_array_elements(
						coalesce(paas.service_template(v.id) -> 'sidecars', '[]')) x);
	IF req ->> 'container' IS NOT NULL AND NOT (req ->> 'container') = ANY (containers) THEN
		errs := paas.add_err(errs, 'container', format('container must be one of [%s]', array_to_string(containers, ', ')));
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	IF i.status IN ('DELETED', 'FAILED', 'STOPPED', 'PENDING') OR i.desired_state <> 'running' THEN
		RAISE EXCEPTION 'The pod is % and has no logs to read', i.status USING ERRCODE = 'PT409';
	END IF;
	RETURN jsonb_build_object('$k8s', jsonb_build_object(
		'apiUrl', current_setting('paas.k8s_api_url', true),
		'tokenFile', current_setting('paas.k8s_token_file', true),
		'caFile', current_setting('paas.k8s_ca_file', true),
		'instanceId', i.id, 'name', i.name, 'namespace', i.namespace,
		'labelSelector', 'paas.dev/instance-id=' || i.id::text,
		'container', coalesce(req ->> 'container', 'app'),
		'tailLines', coalesce((req ->> 'tailLines')::int, 100),
		'previous', coalesce((req ->> 'previous')::boolean, false)));
END
$$;
COMMENT ON FUNCTION api.pods_logs(jsonb, jsonb) IS
	'GET /pods/:id/logs?tailLines=&container=&previous=: where the log of the caller''s instance is (httpd reads it)';

------------------------------------------------------------------------------
-- api: administrators
------------------------------------------------------------------------------

CREATE FUNCTION api.pods_admin_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_instance_filters('[]', req));
	r := paas.instances_page(req, NULL, 20);
	RETURN jsonb_build_object('data', r -> 'rows',
							  'pagination', paas.pagination(req, (r ->> 'total')::bigint, 20));
END
$$;
COMMENT ON FUNCTION api.pods_admin_list(jsonb, jsonb) IS
	'GET /admin/pods: every instance; status, userId, serviceId, subscriptionId, search, page, limit';

CREATE FUNCTION api.pods_admin_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	v paas.services;
	o paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	i := paas.instance_of(NULL, req ->> 'id');
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	SELECT * INTO o FROM paas.users WHERE id = i.user_id;
	RETURN paas.instance_json(i, v) || jsonb_build_object(
		'user', jsonb_build_object('id', o.id, 'name', o.name, 'email', o.email),
		'subscriptionStatus', (SELECT s.status FROM paas.subscriptions s WHERE s.id = i.subscription_id),
		'attempts', i.attempts, 'dueAt', paas.iso(i.due_at), 'claimedUntil', paas.iso(i.claimed_until),
		'syncedAt', paas.iso(i.synced_at), 'forceApply', i.force_apply,
		'namespaceState', (SELECT jsonb_build_object('name', ns.name, 'state', ns.state,
								'generation', ns.generation, 'observedGeneration', ns.observed_generation,
								'lastError', ns.last_error)
							 FROM paas.instance_namespaces ns WHERE ns.user_id = i.user_id));
END
$$;
COMMENT ON FUNCTION api.pods_admin_get(jsonb, jsonb) IS
	'GET /admin/pods/:id: any instance with its owner and the reconciler''s bookkeeping';

CREATE FUNCTION api.pods_admin_events(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
BEGIN
	PERFORM paas.require_admin(ctx);
	i := paas.instance_of(NULL, req ->> 'id');
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_paging('[]', req));
	RETURN paas.instance_events_page(i, req, true);
END
$$;
COMMENT ON FUNCTION api.pods_admin_events(jsonb, jsonb) IS
	'GET /admin/pods/:id/events: every event of an instance with its detail (API outcomes)';

CREATE FUNCTION api.pods_admin_manifests(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN paas.instance_manifests((paas.instance_of(NULL, req ->> 'id')).id, false);
END
$$;
COMMENT ON FUNCTION api.pods_admin_manifests(jsonb, jsonb) IS
	'GET /admin/pods/:id/manifests: exactly what the reconciler applies (secret values redacted)';

CREATE FUNCTION api.pods_admin_reconcile(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	i paas.instances := paas.instance_of(NULL, req ->> 'id', true);
	v paas.services;
BEGIN
	UPDATE paas.instances SET force_apply = true, attempts = 0, polls = 0, due_at = now(),
		   claimed_until = NULL, updated_at = now()
	 WHERE id = i.id
	RETURNING * INTO i;
	UPDATE paas.instance_namespaces SET force_apply = desired_state = 'present', due_at = now(),
		   attempts = 0, claimed_until = NULL
	 WHERE user_id = i.user_id;
	PERFORM paas.instance_log(i.id, 'reconcile', i.status, i.status, i.generation,
							  'reconcile forced by an administrator', NULL, 'admin', adm.id);
	PERFORM paas.instance_wake();
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v);
END
$$;
COMMENT ON FUNCTION api.pods_admin_reconcile(jsonb, jsonb) IS
	'POST /admin/pods/:id/reconcile: applies every object of the instance and its namespace again, now';

CREATE FUNCTION paas.instance_admin_stop(req jsonb, ctx jsonb, stop boolean) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	i paas.instances;
	v paas.services;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_text('[]', req, 'reason', false, 3, 500));
	i := paas.instance_of(NULL, req ->> 'id', true);
	IF i.desired_state = 'deleted' THEN
		RAISE EXCEPTION 'The pod has ended' USING ERRCODE = 'PT409';
	END IF;
	IF NOT stop AND NOT i.admin_stopped THEN
		RAISE EXCEPTION 'The pod was not stopped by an administrator' USING ERRCODE = 'PT409',
			HINT = CASE WHEN i.desired_state = 'stopped' THEN 'It is stopped because its subscription is unpaid.'
						ELSE 'It is not stopped.' END;
	END IF;
	UPDATE paas.instances SET admin_stopped = stop, updated_at = now() WHERE id = i.id;
	PERFORM paas.instances_set_desired(ARRAY[i.id],
		coalesce(req ->> 'reason', CASE WHEN stop THEN 'stopped' ELSE 'started' END || ' by an administrator'),
		'admin', adm.id);
	SELECT * INTO i FROM paas.instances WHERE id = i.id;
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v);
END
$$;
COMMENT ON FUNCTION paas.instance_admin_stop(jsonb, jsonb, boolean) IS
	'stops (or starts again) an instance whatever its subscription says, as an administrator';

CREATE FUNCTION api.pods_admin_stop(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN paas.instance_admin_stop(req, ctx, true);
COMMENT ON FUNCTION api.pods_admin_stop(jsonb, jsonb) IS
	'POST /admin/pods/:id/stop {reason?}: scales the instance to zero until an administrator starts it';

CREATE FUNCTION api.pods_admin_start(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN paas.instance_admin_stop(req, ctx, false);
COMMENT ON FUNCTION api.pods_admin_start(jsonb, jsonb) IS
	'POST /admin/pods/:id/start {reason?}: undoes an administrator''s stop (the subscription still decides)';

CREATE FUNCTION api.pods_admin_restart(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	i paas.instances := paas.instance_of(NULL, req ->> 'id', true);
	v paas.services;
BEGIN
	i := paas.instance_restart(i, 'admin', adm.id);
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v);
END
$$;
COMMENT ON FUNCTION api.pods_admin_restart(jsonb, jsonb) IS 'POST /admin/pods/:id/restart: restarts any instance';

CREATE FUNCTION api.pods_admin_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	p record := paas.provisioner_state();
	c record := paas.instance_capacity();
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN jsonb_build_object(
		'byStatus', (SELECT jsonb_object_agg(s, coalesce(n, 0))
					   FROM unnest(ARRAY['PENDING', 'PROVISIONING', 'RUNNING', 'DEGRADED', 'FAILED',
										 'STOPPED', 'DELETING', 'DELETED']) s
					   LEFT JOIN (SELECT status, count(*) AS n FROM paas.instances GROUP BY status) x
						 ON x.status = s),
		'total', (SELECT count(*) FROM paas.instances),
		'behind', (SELECT count(*) FROM paas.instances WHERE generation <> observed_generation),
		'erroring', (SELECT count(*) FROM paas.instances WHERE attempts > 0),
		'namespaces', (SELECT jsonb_object_agg(state, n) FROM (SELECT state, count(*) AS n
							FROM paas.instance_namespaces GROUP BY state) x),
		'capacity', jsonb_build_object('nodes', c.nodes, 'cpuFreeMillicores', c.cpu_free_m,
									   'memoryFreeBytes', c.memory_free),
		'provisioner', jsonb_build_object(
			'running', p.running, 'pid', p.pid, 'configured', p.configured,
			'startedAt', paas.iso(p.started_at), 'lastPass', paas.iso(p.last_pass),
			'lastResync', paas.iso(p.last_audit), 'passes', p.passes, 'units', p.units,
			'apiCalls', p.api_calls, 'apiErrors', p.api_errors, 'resyncCalls', p.audit_calls,
			'resyncs', p.audits, 'lastError', p.last_error,
			'lastResyncResult', CASE WHEN p.last_resync IS NOT NULL THEN p.last_resync::jsonb END));
END
$$;
COMMENT ON FUNCTION api.pods_admin_stats(jsonb, jsonb) IS
	'GET /admin/pods/stats: instances by status, reconciler backlog, capacity, the provisioner''s counters';

-- The deployment template of a service (GET / PUT).  PUT replaces it; the
-- render check of paas.services answers PT400 with every field error.
CREATE FUNCTION api.services_deployment_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO v FROM paas.services WHERE id = paas.to_uuid(req ->> 'id') AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN jsonb_build_object('id', v.id, 'name', v.name, 'dockerImage', v.docker_image,
		'containerPort', v.container_port, 'environmentVars', v.environment_vars,
		'deployment', paas.service_template(v.id),
		'preview', paas.instance_render(paas.sample_instance(v, paas.service_template(v.id)), v, false));
END
$$;
COMMENT ON FUNCTION api.services_deployment_get(jsonb, jsonb) IS
	'GET /services/admin/:id/deployment: a service''s deployment template and the objects of a sample instance';

CREATE FUNCTION api.services_deployment_set(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	SELECT * INTO v FROM paas.services WHERE id = paas.to_uuid(req ->> 'id') AND deleted_at IS NULL FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PT404';
	END IF;
	IF jsonb_typeof(req -> 'deployment') IS DISTINCT FROM 'object' THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', 'deployment', 'deployment must be an object'));
	END IF;
	IF req ? 'environmentVars' THEN
		-- the template and the environment that uses its secrets, checked together
		v := paas.service_input(jsonb_build_object('environmentVars', req -> 'environmentVars'), v, false);
		PERFORM paas.raise_if_invalid(paas.template_check(v, req -> 'deployment'));
		-- checked together: the row guards need not check each half alone
		PERFORM set_config('paas_templates.checked', 'on', true);
	END IF;
	INSERT INTO paas.service_templates (service_id, deployment) VALUES (v.id, req -> 'deployment')
	ON CONFLICT (service_id) DO UPDATE SET deployment = EXCLUDED.deployment, updated_at = now();
	UPDATE paas.services SET environment_vars = v.environment_vars, updated_at = now() WHERE id = v.id;
	PERFORM set_config('paas_templates.checked', 'off', true);
	RETURN api.services_deployment_get(req, ctx);
END
$$;
COMMENT ON FUNCTION api.services_deployment_set(jsonb, jsonb) IS
	'PUT /services/admin/:id/deployment {deployment, environmentVars?}: replaces the template (and the '
	'environment using its secrets; PT400 when they do not render); '
	'running instances roll out the change';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.pods_list(jsonb, jsonb)', 'api.pods_get(jsonb, jsonb)', 'api.pods_events(jsonb, jsonb)',
		'api.pods_restart(jsonb, jsonb)', 'api.pods_credentials(jsonb, jsonb)', 'api.pods_logs(jsonb, jsonb)',
		'api.pods_admin_list(jsonb, jsonb)', 'api.pods_admin_get(jsonb, jsonb)',
		'api.pods_admin_events(jsonb, jsonb)', 'api.pods_admin_manifests(jsonb, jsonb)',
		'api.pods_admin_reconcile(jsonb, jsonb)', 'api.pods_admin_stop(jsonb, jsonb)',
		'api.pods_admin_start(jsonb, jsonb)', 'api.pods_admin_restart(jsonb, jsonb)',
		'api.pods_admin_stats(jsonb, jsonb)',
		'api.services_deployment_get(jsonb, jsonb)', 'api.services_deployment_set(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;
