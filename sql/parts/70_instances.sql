-- paas -- hosted instances: one app on Kubernetes per subscription, in the
-- customer's namespace.  This part holds the model, the service templates
-- and the manifests; 71_instance_money.sql ties instances to the money
-- (status changes of subscriptions, capacity, the start deadline and its
-- refund), 72_instance_reconcile.sql is the SQL side of the reconciler
-- (bgworker/provisioner.c), 73_instance_routes.sql the api functions.
--
-- Rules a reader must know.
--   * The status is observed, never wished: it changes through
--     paas.instance_transition(status, event), the C table of
--     extension/instances.c (PENDING, PROVISIONING, RUNNING, DEGRADED,
--     FAILED, STOPPED, DELETING, DELETED), when the reconciler reports what
--     it saw, or when the money rules end or revive an instance.  What paas
--     wants is desired_state ('running', 'stopped', 'deleted') plus a
--     generation bumped on every change of what is wanted;
--     observed_generation is the generation last applied in full.
--   * Every status change, apply, API error and owner or admin action is a
--     row of paas.instance_events.  Secret values never are.
--   * Templates live in paas.services.deployment (next to the image, port,
--     environment and resources of the catalog).  Values may use
--     {{host}}, {{url}}, {{instance}}, {{namespace}}, {{port}} and
--     {{secret.NAME}} for a secret the template declares.  A trigger on
--     paas.services renders the template for a sample instance whenever the
--     service is saved: a template that cannot render is PT400 then, never
--     at deploy time.
--   * Secrets are generated once per instance (paas.instance_secrets, read
--     by nobody but the owner of the tables), put in a Kubernetes Secret,
--     and reach containers through secretKeyRef; a value that embeds one
--     ({{secret.X}} inside a longer string) uses Kubernetes' $(VAR)
--     expansion of an earlier PAAS_SECRET_X variable, so no secret is ever
--     written into a Deployment.
--   * paas.instance_manifests(id) is exactly what the reconciler applies (a
--     DBA can call it; secret values are redacted unless asked for).
--   * Objects of an instance: Secret (when the template declares secrets),
--     PersistentVolumeClaim (when the plan has storage), Deployment
--     (strategy Recreate: one pod, a ReadWriteOnce volume), Service, and
--     Ingress with host <instance>.<paas.apps_domain> and TLS by
--     cert-manager annotation (unless the template says expose "none").
--     Objects of a customer's namespace: the Namespace (labelled with the
--     user id), a ResourceQuota equal to the sum of the customer's live
--     instances, a LimitRange and a NetworkPolicy that admits traffic only
--     from the same namespace and the ingress controller.  Everything is
--     labelled app.kubernetes.io/managed-by=paas and paas.dev/instance-id.

------------------------------------------------------------------------------
-- Module functions (C, extension/instances.c)
------------------------------------------------------------------------------

CREATE FUNCTION paas.instance_transition(status text, event text) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_instance_transition'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.instance_transition(text, text) IS
	'next instance status for an event (the C status machine); PT409 when illegal';

CREATE FUNCTION paas.instance_transition_allowed(status text, event text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_instance_transition_allowed'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.instance_transition_allowed(text, text) IS
	'whether the instance status machine allows the event in that status';

CREATE FUNCTION paas.instance_transitions(OUT status text, OUT event text, OUT next_status text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'paas_instance_transitions'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.instance_transitions() IS
	'every allowed instance (status, event) -> status';

CREATE FUNCTION paas.instance_config(
	OUT apps_domain text, OUT ingress_class text, OUT cert_issuer text,
	OUT ingress_namespace text, OUT storage_class text, OUT data_retention interval,
	OUT start_deadline interval, OUT resync_interval interval)
	AS 'MODULE_PATHNAME', 'paas_instance_config'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.instance_config() IS
	'paas.apps_domain, ingress class, cert issuer, ingress namespace, storage class, '
	'data retention, start deadline and resync interval';

CREATE FUNCTION paas.instance_wake() RETURNS void
	AS 'MODULE_PATHNAME', 'paas_instance_wake'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.instance_wake() IS
	'wakes the provisioner when the calling transaction commits';

CREATE FUNCTION paas.provisioner_state(
	OUT running boolean, OUT pid integer, OUT configured boolean, OUT started_at timestamptz,
	OUT last_pass timestamptz, OUT last_audit timestamptz, OUT passes bigint, OUT units bigint,
	OUT api_calls bigint, OUT api_errors bigint, OUT audit_calls bigint, OUT audits bigint,
	OUT last_error text, OUT last_resync text)
	AS 'MODULE_PATHNAME', 'paas_provisioner_state'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.provisioner_state() IS
	'the provisioner''s published state and counters (shared memory)';

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

-- The deployment template of a service (see paas.template_errors for the
-- fields), next to its catalog row.  No foreign key: the catalog's DELETE
-- refuses while a row of any table with a foreign key to paas.services
-- exists, and a template is part of the service, not a use of it.
CREATE TABLE paas.service_templates (
	service_id		uuid PRIMARY KEY,
	deployment		jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(deployment) = 'object'),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE paas.service_templates IS
	'deployment template of a service: volume mount, probe, run-as user, args, generated secrets, '
	'credentials, sidecars, exposure (see paas.template_errors); none: the defaults';
REVOKE ALL ON paas.service_templates FROM PUBLIC;
GRANT SELECT ON paas.service_templates TO paas_owner;
SELECT pg_catalog.pg_extension_config_dump('paas.service_templates', '');

CREATE FUNCTION paas.service_template(service_id uuid) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN coalesce((SELECT t.deployment FROM paas.service_templates t
					  WHERE t.service_id = service_template.service_id), '{}');
COMMENT ON FUNCTION paas.service_template(uuid) IS 'the deployment template of a service ({} when none)';

CREATE TABLE paas.instance_namespaces (
	user_id				uuid PRIMARY KEY REFERENCES paas.users (id),
	name				text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
													AND char_length(name) <= 63),
	desired_state		text NOT NULL DEFAULT 'present' CHECK (desired_state IN ('present', 'absent')),
	state				text NOT NULL DEFAULT 'PENDING'
						CHECK (state IN ('PENDING', 'READY', 'DELETING', 'DELETED')),
	generation			bigint NOT NULL DEFAULT 1 CHECK (generation >= 1),
	observed_generation bigint NOT NULL DEFAULT 0,
	attempts			integer NOT NULL DEFAULT 0,
	last_error			text,
	due_at				timestamptz DEFAULT now(),
	claimed_until		timestamptz,
	force_apply			boolean NOT NULL DEFAULT false,
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_namespaces_due_idx ON paas.instance_namespaces (due_at) WHERE due_at IS NOT NULL;
COMMENT ON TABLE paas.instance_namespaces IS
	'one Kubernetes namespace per customer, with its quota, limits and network policy';

CREATE TABLE paas.instances (
	id					uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	subscription_id		uuid NOT NULL UNIQUE REFERENCES paas.subscriptions (id),
	user_id				uuid NOT NULL REFERENCES paas.users (id),
	-- no foreign key: the subscription already references the service, and
	-- the catalog's DELETE lists referencing tables by their foreign keys
	service_id			uuid NOT NULL,
	name				text NOT NULL UNIQUE CHECK (name ~ '^[a-z]([-a-z0-9]*[a-z0-9])?$'
													AND char_length(name) <= 53),
	namespace			text NOT NULL,
	host				text NOT NULL,
	status				text NOT NULL DEFAULT 'PENDING'
						CHECK (status IN ('PENDING', 'PROVISIONING', 'RUNNING', 'DEGRADED', 'FAILED',
										  'STOPPED', 'DELETING', 'DELETED')),
	desired_state		text NOT NULL DEFAULT 'running'
						CHECK (desired_state IN ('running', 'stopped', 'deleted')),
	admin_stopped		boolean NOT NULL DEFAULT false,
	generation			bigint NOT NULL DEFAULT 1 CHECK (generation >= 1),
	observed_generation bigint NOT NULL DEFAULT 0,
	force_apply			boolean NOT NULL DEFAULT false,
	-- allocated resources (the main container plus sidecars), copied from
	-- the catalog at creation and on every catalog change
	cpu_request_m		integer NOT NULL,
	cpu_limit_m			integer NOT NULL,
	mem_request_mib		integer NOT NULL,
	mem_limit_mib		integer NOT NULL,
	storage_gib			integer NOT NULL,
	restarted_at		timestamptz,
	restart_count		integer NOT NULL DEFAULT 0,
	status_message		text,
	pod_name			text,
	last_error			text,
	last_error_at		timestamptz,
	attempts			integer NOT NULL DEFAULT 0,
	polls				integer NOT NULL DEFAULT 0,
	due_at				timestamptz DEFAULT now(),
	claimed_until		timestamptz,
	synced_at			timestamptz,
	start_requested_at	timestamptz NOT NULL DEFAULT now(),
	ever_running		boolean NOT NULL DEFAULT false,
	ready_at			timestamptz,
	stopped_at			timestamptz,
	ended_at			timestamptz,
	volume_purge_at		timestamptz,
	volume_deleted_at	timestamptz,
	refunded_at			timestamptz,
	status_changed_at	timestamptz NOT NULL DEFAULT now(),
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now(),
	CHECK (observed_generation <= generation)
);
CREATE INDEX instances_due_idx ON paas.instances (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX instances_user_idx ON paas.instances (user_id, created_at DESC);
CREATE INDEX instances_service_idx ON paas.instances (service_id);
CREATE INDEX instances_status_idx ON paas.instances (status);
-- the start deadline job's scan
CREATE INDEX instances_starting_idx ON paas.instances (start_requested_at)
	WHERE status IN ('PENDING', 'PROVISIONING') AND NOT ever_running;
COMMENT ON TABLE paas.instances IS
	'the running app of a subscription (the original''s ServiceInstance): desired state and '
	'generation, observed status and generation, allocation, URLs, reconciler bookkeeping';
COMMENT ON COLUMN paas.instances.due_at IS
	'when the reconciler should look at the instance next (NULL: only at the periodic resync)';
COMMENT ON COLUMN paas.instances.claimed_until IS
	'lease of a reconciler pass; a crashed pass''s claims are taken again after it';

CREATE TABLE paas.instance_secrets (
	instance_id		uuid NOT NULL REFERENCES paas.instances (id),
	name			text NOT NULL CHECK (name ~ '^[A-Z][A-Z0-9_]{0,62}$'),
	value			text NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (instance_id, name)
);
COMMENT ON TABLE paas.instance_secrets IS
	'generated secrets of instances (passwords, keys): created once, shown to the owner on request, never logged';

CREATE TABLE paas.instance_events (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	instance_id		uuid NOT NULL REFERENCES paas.instances (id),
	event			text NOT NULL,
	from_status		text,
	to_status		text,
	generation		bigint,
	message			text,
	detail			jsonb,
	actor			text NOT NULL DEFAULT 'system'
					CHECK (actor IN ('system', 'owner', 'admin', 'provisioner', 'billing')),
	actor_id		uuid,
	created_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_events_instance_idx ON paas.instance_events (instance_id, id DESC);
CREATE INDEX instance_events_created_idx ON paas.instance_events (created_at);
COMMENT ON TABLE paas.instance_events IS
	'every status change, apply, API outcome and action on an instance, for its owner and the admin';

REVOKE ALL ON paas.instance_namespaces, paas.instances, paas.instance_secrets,
	paas.instance_events FROM PUBLIC;
GRANT SELECT ON paas.instance_namespaces, paas.instances, paas.instance_events TO paas_owner;

SELECT pg_catalog.pg_extension_config_dump('paas.instance_namespaces', '');
SELECT pg_catalog.pg_extension_config_dump('paas.instances', '');
SELECT pg_catalog.pg_extension_config_dump('paas.instance_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('paas.instance_events', '');
SELECT pg_catalog.pg_extension_config_dump('paas.instance_events_id_seq', '');

-- Whether this session is a restore: pg_restore (and pg_dump's scripts)
-- load data with check_function_bodies off.  What they load is complete --
-- instances, templates and events included, in foreign-key order -- so the
-- triggers that derive or check rows must let it in as it is (a data-only
-- restore with --disable-triggers sets session_replication_role, which
-- stops them anyway).
CREATE FUNCTION paas.restoring() RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN current_setting('check_function_bodies') = 'off';
COMMENT ON FUNCTION paas.restoring() IS
	'whether the session restores a dump (check_function_bodies off): data triggers stand aside';

------------------------------------------------------------------------------
-- Template text: placeholders
------------------------------------------------------------------------------

-- The placeholders of a template string ({{ name }}, blanks allowed), and
-- NULL as the name of a malformed one ("{{" without its "}}", or "{{}}").
CREATE FUNCTION paas.tpl_placeholders(t text) RETURNS SETOF text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT m[1] FROM regexp_matches(t, '\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\}', 'g') m
	UNION ALL
	SELECT NULL WHERE regexp_replace(t, '\{\{\s*[A-Za-z][A-Za-z0-9_.]*\s*\}\}', '', 'g') ~ '\{\{|\}\}'
$$;
COMMENT ON FUNCTION paas.tpl_placeholders(text) IS
	'names of the {{placeholders}} of a template string; NULL for a malformed one';

-- Replaces every {{ name }} of t by vars ->> name.  Names missing from
-- vars are left as they are (templates are validated when saved).
CREATE FUNCTION paas.tpl_subst(t text, vars jsonb) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	m text[];
BEGIN
	IF t IS NULL OR position('{{' IN t) = 0 THEN
		RETURN t;
	END IF;
	FOR m IN SELECT regexp_matches(t, '(\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\})', 'g') LOOP
		IF vars ? m[2] THEN
			t := replace(t, m[1], vars ->> m[2]);
		END IF;
	END LOOP;
	RETURN t;
END
$$;
COMMENT ON FUNCTION paas.tpl_subst(text, jsonb) IS 'substitutes {{placeholders}} from an object of values';

-- Field errors for the placeholders of one template string.
CREATE FUNCTION paas.tpl_check(errs jsonb, field text, t text, secrets jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	p text;
BEGIN
	FOR p IN SELECT * FROM paas.tpl_placeholders(t) LOOP
		IF p IS NULL THEN
			RETURN paas.add_err(errs, field, field || ' has a malformed {{placeholder}}');
		ELSIF p LIKE 'secret.%' THEN
			IF NOT coalesce(secrets ? substr(p, 8), false) THEN
				RETURN paas.add_err(errs, field,
					format('%s uses {{%s}} but the template declares no secret %s', field, p, substr(p, 8)));
			END IF;
		ELSIF p NOT IN ('host', 'url', 'instance', 'namespace', 'port') THEN
			RETURN paas.add_err(errs, field, format(
				'%s uses the unknown placeholder {{%s}} (known: host, url, instance, namespace, port, secret.NAME)',
				field, p));
		END IF;
	END LOOP;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.tpl_check(jsonb, text, text, jsonb) IS
	'appends an error when a template string uses a malformed or unknown placeholder';

------------------------------------------------------------------------------
-- Templates: validation
------------------------------------------------------------------------------

-- Errors of a probe object at "field".
CREATE FUNCTION paas.template_probe_errors(errs jsonb, field text, p jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	k text;
BEGIN
	IF p IS NULL OR p = 'null'::jsonb THEN
		RETURN errs;
	END IF;
	IF jsonb_typeof(p) <> 'object' THEN
		RETURN paas.add_err(errs, field, field || ' must be an object');
	END IF;
	FOR k IN SELECT jsonb_object_keys(p) LOOP
		IF k NOT IN ('type', 'path', 'command', 'initialDelaySeconds', 'periodSeconds',
					 'timeoutSeconds', 'failureThreshold', 'startupSeconds') THEN
			errs := paas.add_err(errs, field || '.' || k, format('%s.%s is not a known field', field, k));
		END IF;
	END LOOP;
	errs := paas.check_enum(errs, p, 'type', false, ARRAY['http', 'tcp', 'exec', 'none']);
	IF p ->> 'type' = 'exec' THEN
		IF jsonb_typeof(p -> 'command') IS DISTINCT FROM 'array' OR jsonb_array_length(p -> 'command') = 0
		   OR EXISTS (SELECT 1 FROM jsonb_array_elements(p -> 'command') e WHERE jsonb_typeof(e) <> 'string') THEN
			errs := paas.add_err(errs, field || '.command', field || '.command must be a non-empty array of strings');
		END IF;
	ELSIF p ? 'command' THEN
		errs := paas.add_err(errs, field || '.command', field || '.command is only for type exec');
	END IF;
	IF p ? 'path' AND (jsonb_typeof(p -> 'path') <> 'string' OR p ->> 'path' !~ '^/[!-~]{0,255}$') THEN
		errs := paas.add_err(errs, field || '.path', field || '.path must be an absolute URL path');
	END IF;
	IF p ? 'path' AND coalesce(p ->> 'type', 'http') <> 'http' THEN
		errs := paas.add_err(errs, field || '.path', field || '.path is only for type http');
	END IF;
	errs := paas.check_int(errs, p, 'initialDelaySeconds', false, 0, 3600);
	errs := paas.check_int(errs, p, 'periodSeconds', false, 1, 3600);
	errs := paas.check_int(errs, p, 'timeoutSeconds', false, 1, 600);
	errs := paas.check_int(errs, p, 'failureThreshold', false, 1, 100);
	errs := paas.check_int(errs, p, 'startupSeconds', false, 10, 7200);
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_probe_errors(jsonb, text, jsonb) IS 'field errors of a template probe';

-- Errors of the container fields shared by the app and its sidecars.
CREATE FUNCTION paas.template_container_errors(errs jsonb, field text, c jsonb, secrets jsonb)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	f text;
	e record;
	pre text := CASE WHEN field = '' THEN '' ELSE field || '.' END;
BEGIN
	FOREACH f IN ARRAY ARRAY['command', 'args'] LOOP
		IF c ? f THEN
			IF jsonb_typeof(c -> f) <> 'array' OR jsonb_array_length(c -> f) > 50
			   OR EXISTS (SELECT 1 FROM jsonb_array_elements(c -> f) x
						   WHERE jsonb_typeof(x) <> 'string' OR char_length(x #>> '{}') > 1000) THEN
				errs := paas.add_err(errs, pre || f, pre || f || ' must be an array of at most 50 strings');
			ELSE
				FOR e IN SELECT x #>> '{}' AS v, n FROM jsonb_array_elements(c -> f) WITH ORDINALITY a(x, n) LOOP
					errs := paas.tpl_check(errs, format('%s%s[%s]', pre, f, e.n - 1), e.v, secrets);
				END LOOP;
			END IF;
		END IF;
	END LOOP;
	IF c ? 'volumeMountPath' AND (jsonb_typeof(c -> 'volumeMountPath') <> 'string'
								  OR c ->> 'volumeMountPath' !~ '^/[A-Za-z0-9._/-]{0,254}$'
								  OR c ->> 'volumeMountPath' ~ '(^|/)\.\.(/|$)') THEN
		errs := paas.add_err(errs, pre || 'volumeMountPath', pre || 'volumeMountPath must be an absolute path');
	END IF;
	IF c ? 'volumeSubPath' AND (jsonb_typeof(c -> 'volumeSubPath') <> 'string'
								OR c ->> 'volumeSubPath' !~ '^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,254}$'
								OR c ->> 'volumeSubPath' ~ '(^|/)\.\.(/|$)') THEN
		errs := paas.add_err(errs, pre || 'volumeSubPath', pre || 'volumeSubPath must be a relative path');
	END IF;
	errs := paas.check_int(errs, c, 'runAsUser', false, 0, 2147483647);
	errs := paas.check_int(errs, c, 'runAsGroup', false, 0, 2147483647);
	errs := paas.template_probe_errors(errs, pre || 'probe', c -> 'probe');
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_container_errors(jsonb, text, jsonb, jsonb) IS
	'field errors of the container fields of a template (app or sidecar)';

-- Errors of an environment object (name -> template string) at "field".
CREATE FUNCTION paas.template_env_errors(errs jsonb, field text, env jsonb, secrets jsonb)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	e record;
BEGIN
	IF env IS NULL OR env = 'null'::jsonb THEN
		RETURN errs;
	END IF;
	IF jsonb_typeof(env) <> 'object' THEN
		RETURN paas.add_err(errs, field, field || ' must be an object of strings');
	END IF;
	FOR e IN SELECT key, value FROM jsonb_each(env) ORDER BY key LOOP
		IF e.key !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$' OR e.key LIKE 'PAAS\_SECRET\_%' THEN
			errs := paas.add_err(errs, field, format('%s: %s is not a valid variable name', field, e.key));
		ELSIF jsonb_typeof(e.value) <> 'string' THEN
			errs := paas.add_err(errs, field || '.' || e.key, format('%s.%s must be a string', field, e.key));
		ELSE
			errs := paas.tpl_check(errs, field || '.' || e.key, e.value #>> '{}', secrets);
		END IF;
	END LOOP;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_env_errors(jsonb, text, jsonb, jsonb) IS
	'field errors of a template environment (names, string values, placeholders)';

-- Every error of a service's deployment template and of the template
-- strings of its environmentVars, as field errors ("deployment.probe.path",
-- "environmentVars.WEBHOOK_URL", ...).  The template's fields:
--   kind              "Deployment" (the only one)
--   expose            "http" (default: Service + Ingress) or "none" (Service only)
--   volumeMountPath   where the volume is mounted in the app (default /data)
--   volumeSubPath     a sub-directory of the volume to mount there
--   probe             {type http|tcp|exec|none (default tcp), path, command,
--                      initialDelaySeconds, periodSeconds, timeoutSeconds,
--                      failureThreshold, startupSeconds (default 600)}
--   runAsUser, runAsGroup, fsGroup   numeric ids (runAsUser > 0: non-root,
--                      every capability dropped)
--   command, args     arrays of template strings
--   secrets           {NAME: {length 8-128 (default 24)}}: generated per instance
--   credentials       {key: template string} shown to the owner (GET /pods/:id/credentials)
--   sidecars          up to 3 {name, image, env, command, args, volumeMountPath,
--                      volumeSubPath, runAsUser, runAsGroup, probe, cpuRequest,
--                      cpuLimit, memRequest, memLimit}: containers of the same pod
CREATE FUNCTION paas.template_errors(v paas.services, d jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	errs jsonb := '[]';
	secrets jsonb;
	k text;
	s record;
	sc record;
	names text[] := ARRAY['app'];
	q jsonb;
BEGIN
	FOR k IN SELECT jsonb_object_keys(d) LOOP
		IF k NOT IN ('kind', 'expose', 'volumeMountPath', 'volumeSubPath', 'probe', 'runAsUser',
					 'runAsGroup', 'fsGroup', 'command', 'args', 'secrets', 'credentials', 'sidecars') THEN
			errs := paas.add_err(errs, 'deployment.' || k, format('deployment.%s is not a known field', k));
		END IF;
	END LOOP;
	IF d ? 'kind' AND d ->> 'kind' IS DISTINCT FROM 'Deployment' THEN
		errs := paas.add_err(errs, 'deployment.kind', 'deployment.kind must be Deployment');
	END IF;
	IF d ? 'expose' AND d ->> 'expose' NOT IN ('http', 'none') THEN
		errs := paas.add_err(errs, 'deployment.expose', 'deployment.expose must be one of [http, none]');
	END IF;
	errs := paas.check_int(errs, jsonb_build_object('deployment.fsGroup', d -> 'fsGroup'),
						   'deployment.fsGroup', false, 0, 2147483647);

	secrets := coalesce(d -> 'secrets', '{}');
	IF jsonb_typeof(secrets) <> 'object' THEN
		errs := paas.add_err(errs, 'deployment.secrets', 'deployment.secrets must be an object');
		secrets := '{}';
	ELSE
		IF (SELECT count(*) FROM jsonb_object_keys(secrets)) > 20 THEN
			errs := paas.add_err(errs, 'deployment.secrets', 'deployment.secrets holds at most 20 secrets');
		END IF;
		FOR s IN SELECT key, value FROM jsonb_each(secrets) LOOP
			IF s.key !~ '^[A-Z][A-Z0-9_]{0,62}$' THEN
				errs := paas.add_err(errs, 'deployment.secrets',
					format('deployment.secrets: %s must be upper-case letters, digits and underscores', s.key));
			ELSIF jsonb_typeof(s.value) <> 'object'
				  OR EXISTS (SELECT 1 FROM jsonb_object_keys(s.value) x WHERE x <> 'length') THEN
				errs := paas.add_err(errs, 'deployment.secrets.' || s.key,
					format('deployment.secrets.%s must be an object {length}', s.key));
			ELSE
				errs := paas.check_int(errs, jsonb_build_object('deployment.secrets.' || s.key || '.length',
									   s.value -> 'length'),
									   'deployment.secrets.' || s.key || '.length', false, 8, 128);
			END IF;
		END LOOP;
	END IF;

	errs := paas.template_container_errors(errs, 'deployment', d, secrets);
	errs := paas.template_env_errors(errs, 'environmentVars', v.environment_vars, secrets);

	IF d ? 'credentials' THEN
		IF jsonb_typeof(d -> 'credentials') <> 'object' OR (SELECT count(*) FROM jsonb_object_keys(d -> 'credentials')) > 20 THEN
			errs := paas.add_err(errs, 'deployment.credentials',
				'deployment.credentials must be an object of at most 20 strings');
		ELSE
			FOR s IN SELECT key, value FROM jsonb_each(d -> 'credentials') LOOP
				IF jsonb_typeof(s.value) <> 'string' THEN
					errs := paas.add_err(errs, 'deployment.credentials.' || s.key,
						format('deployment.credentials.%s must be a string', s.key));
				ELSE
					errs := paas.tpl_check(errs, 'deployment.credentials.' || s.key, s.value #>> '{}', secrets);
				END IF;
			END LOOP;
		END IF;
	END IF;

	IF d ? 'sidecars' THEN
		IF jsonb_typeof(d -> 'sidecars') <> 'array' OR jsonb_array_length(d -> 'sidecars') > 3 THEN
			errs := paas.add_err(errs, 'deployment.sidecars', 'deployment.sidecars must be an array of at most 3 containers');
		ELSE
			FOR sc IN SELECT x AS c, n - 1 AS i FROM jsonb_array_elements(d -> 'sidecars') WITH ORDINALITY a(x, n) LOOP
				k := format('deployment.sidecars[%s]', sc.i);
				IF jsonb_typeof(sc.c) <> 'object' THEN
					errs := paas.add_err(errs, k, k || ' must be an object');
					CONTINUE;
				END IF;
				IF EXISTS (SELECT 1 FROM jsonb_object_keys(sc.c) x
							WHERE x NOT IN ('name', 'image', 'env', 'command', 'args', 'volumeMountPath',
											'volumeSubPath', 'runAsUser', 'runAsGroup', 'probe', 'cpuRequest',
											'cpuLimit', 'memRequest', 'memLimit')) THEN
					errs := paas.add_err(errs, k, k || ' has a field that is not known');
				END IF;
				IF jsonb_typeof(sc.c -> 'name') IS DISTINCT FROM 'string'
				   OR sc.c ->> 'name' !~ '^[a-z]([-a-z0-9]{0,28}[a-z0-9])?$' OR sc.c ->> 'name' = ANY (names) THEN
					errs := paas.add_err(errs, k || '.name', k || '.name must be a unique DNS label (not "app")');
				ELSE
					names := names || (sc.c ->> 'name');
				END IF;
				IF jsonb_typeof(sc.c -> 'image') IS DISTINCT FROM 'string'
				   OR sc.c ->> 'image' !~ ('^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?'
										  '(/[a-z0-9]+([._-]+[a-z0-9]+)*)*'
										  '(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$') THEN
					errs := paas.add_err(errs, k || '.image', k || '.image must be an image reference');
				END IF;
				FOREACH q IN ARRAY ARRAY[to_jsonb('cpuRequest'::text), to_jsonb('cpuLimit'::text),
										 to_jsonb('memRequest'::text), to_jsonb('memLimit'::text)] LOOP
					IF (paas.service_quantity(sc.c, q #>> '{}')).value IS NULL THEN
						errs := paas.add_err(errs, k || '.' || (q #>> '{}'), format('%s.%s is required: %s', k, q #>> '{}',
							CASE WHEN q #>> '{}' LIKE 'cpu%' THEN 'a CPU quantity such as "0.25" or "500m"'
								 ELSE 'a memory quantity such as "256Mi" or "1Gi"' END));
					END IF;
				END LOOP;
				IF (paas.service_quantity(sc.c, 'cpuRequest')).value > (paas.service_quantity(sc.c, 'cpuLimit')).value
				   OR (paas.service_quantity(sc.c, 'memRequest')).value > (paas.service_quantity(sc.c, 'memLimit')).value THEN
					errs := paas.add_err(errs, k, k || ': a request exceeds its limit');
				END IF;
				errs := paas.template_container_errors(errs, k, sc.c, secrets);
				errs := paas.template_env_errors(errs, k || '.env', sc.c -> 'env', secrets);
			END LOOP;
		END IF;
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_errors(paas.services, jsonb) IS
	'field errors of a service''s deployment template and environment templates ([] when it renders)';

------------------------------------------------------------------------------
-- Templates: resources and names
------------------------------------------------------------------------------

-- What one instance of the service requests and is limited to: the app's
-- container plus its sidecars.
CREATE FUNCTION paas.template_resources(v paas.services, d jsonb,
										OUT cpu_request_m integer, OUT cpu_limit_m integer,
										OUT mem_request_mib integer, OUT mem_limit_mib integer,
										OUT storage_gib integer)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT v.cpu_request_m + coalesce(sum(paas.parse_cpu(c ->> 'cpuRequest')), 0)::integer,
		   v.cpu_limit_m + coalesce(sum(paas.parse_cpu(c ->> 'cpuLimit')), 0)::integer,
		   v.mem_request_mib + coalesce(sum(paas.parse_mem(c ->> 'memRequest')), 0)::integer,
		   v.mem_limit_mib + coalesce(sum(paas.parse_mem(c ->> 'memLimit')), 0)::integer,
		   v.storage_gib
	  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d -> 'sidecars') = 'array'
									 THEN d -> 'sidecars' ELSE '[]' END) c
$$;
COMMENT ON FUNCTION paas.template_resources(paas.services, jsonb) IS
	'cpu (millicores) and memory (MiB) requests and limits of one instance, sidecars included, and its storage';

-- The DNS label of an instance: the service slug (cut to 40 characters,
-- starting with a letter) and "-" plus hex digits of the instance id.
CREATE FUNCTION paas.instance_name_for(slug text, id uuid, digits integer DEFAULT 8) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN (WITH b AS (SELECT btrim(left(regexp_replace(slug, '[^a-z0-9-]', '', 'g'), 40), '-') AS s)
			SELECT CASE WHEN s ~ '^[a-z]' THEN s ELSE 'app' || CASE WHEN s = '' THEN '' ELSE '-' || s END END
				   || '-' || left(replace(id::text, '-', ''), digits)
			  FROM b);
COMMENT ON FUNCTION paas.instance_name_for(text, uuid, integer) IS
	'instance DNS label: service slug + "-" + digits hex of the id';

CREATE FUNCTION paas.namespace_name_for(user_id uuid) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN 'paas-' || user_id::text;
COMMENT ON FUNCTION paas.namespace_name_for(uuid) IS 'the Kubernetes namespace of a customer';

CREATE FUNCTION paas.label_value(t text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN coalesce(nullif(btrim(left(regexp_replace(t, '[^A-Za-z0-9._-]', '', 'g'), 63), '-_.'), ''), 'app');
COMMENT ON FUNCTION paas.label_value(text) IS 'text made a valid Kubernetes label value';

------------------------------------------------------------------------------
-- Manifests
------------------------------------------------------------------------------

CREATE FUNCTION paas.instance_labels(i paas.instances, slug text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'app.kubernetes.io/managed-by', 'paas',
		'app.kubernetes.io/name', paas.label_value(slug),
		'app.kubernetes.io/instance', i.name,
		'paas.dev/instance-id', i.id::text,
		'paas.dev/user-id', i.user_id::text);
COMMENT ON FUNCTION paas.instance_labels(paas.instances, text) IS 'the labels of every object of an instance';

CREATE FUNCTION paas.instance_meta(i paas.instances, slug text, name text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN jsonb_build_object('name', name, 'namespace', i.namespace,
							  'labels', paas.instance_labels(i, slug),
							  'annotations', jsonb_build_object('paas.dev/generation', i.generation::text));
COMMENT ON FUNCTION paas.instance_meta(paas.instances, text, text) IS 'metadata of an object of an instance';

-- The values of the placeholders for an instance.  secret.NAME is the
-- $(PAAS_SECRET_NAME) reference for environment values, or the value itself
-- when "reveal" (credentials shown to the owner).
CREATE FUNCTION paas.instance_vars(i paas.instances, v paas.services, d jsonb, reveal boolean) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object('host', i.host, 'url', 'https://' || i.host, 'instance', i.name,
							  'namespace', i.namespace, 'port', v.container_port::text)
		|| coalesce((SELECT jsonb_object_agg('secret.' || s.key,
							CASE WHEN reveal THEN coalesce((SELECT x.value FROM paas.instance_secrets x
															 WHERE x.instance_id = i.id AND x.name = s.key), '')
								 ELSE '$(PAAS_SECRET_' || s.key || ')' END)
					   FROM jsonb_object_keys(coalesce(d -> 'secrets', '{}')) s(key)), '{}');
COMMENT ON FUNCTION paas.instance_vars(paas.instances, paas.services, jsonb, boolean) IS
	'placeholder values of an instance (secrets as $(VAR) references unless revealed)';

-- The env list of a container: first PAAS_SECRET_<NAME> from the Secret
-- for every secret embedded in a longer value, then the variables in name
-- order; a value that is exactly {{secret.NAME}} reads the Secret directly.
CREATE FUNCTION paas.container_env(env jsonb, vars jsonb, secret_name text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	WITH e AS (
		SELECT key, value #>> '{}' AS val,
			   substring(value #>> '{}' FROM '^\{\{\s*secret\.([A-Z][A-Z0-9_]*)\s*\}\}$') AS direct
		  FROM jsonb_each(coalesce(env, '{}'))),
	embedded AS (
		SELECT DISTINCT substr(p, 8) AS name
		  FROM e, paas.tpl_placeholders(e.val) p
		 WHERE e.direct IS NULL AND p LIKE 'secret.%')
	SELECT coalesce(jsonb_agg(x ORDER BY ord, k), '[]') FROM (
		SELECT 0 AS ord, 'PAAS_SECRET_' || name AS k,
			   jsonb_build_object('name', 'PAAS_SECRET_' || name, 'valueFrom',
				   jsonb_build_object('secretKeyRef', jsonb_build_object('name', secret_name, 'key', name))) AS x
		  FROM embedded
		UNION ALL
		SELECT 1, key,
			   CASE WHEN direct IS NOT NULL
					THEN jsonb_build_object('name', key, 'valueFrom',
							jsonb_build_object('secretKeyRef', jsonb_build_object('name', secret_name, 'key', direct)))
					ELSE jsonb_build_object('name', key, 'value', paas.tpl_subst(val, vars)) END
		  FROM e) y
$$;
COMMENT ON FUNCTION paas.container_env(jsonb, jsonb, text) IS
	'a container''s env list from a template environment (secrets through secretKeyRef)';

-- readiness, liveness and startup probes of a template probe (default: TCP
-- on the app's port).
CREATE FUNCTION paas.container_probes(p jsonb, port_name text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	WITH h AS (
		SELECT CASE coalesce(p ->> 'type', 'tcp')
				 WHEN 'http' THEN jsonb_build_object('httpGet', jsonb_build_object(
									'path', coalesce(p ->> 'path', '/'), 'port', port_name))
				 WHEN 'exec' THEN jsonb_build_object('exec', jsonb_build_object('command', p -> 'command'))
				 WHEN 'tcp' THEN jsonb_build_object('tcpSocket', jsonb_build_object('port', port_name))
			   END AS handler,
			   coalesce((p ->> 'periodSeconds')::int, 10) AS period,
			   coalesce((p ->> 'timeoutSeconds')::int, 5) AS timeout,
			   coalesce((p ->> 'failureThreshold')::int, 3) AS failures,
			   coalesce((p ->> 'initialDelaySeconds')::int, 0) AS delay,
			   coalesce((p ->> 'startupSeconds')::int, 600) AS startup)
	SELECT CASE WHEN handler IS NULL THEN '{}'::jsonb ELSE jsonb_build_object(
		'startupProbe', handler || jsonb_build_object('initialDelaySeconds', delay, 'periodSeconds', 5,
						'timeoutSeconds', timeout, 'failureThreshold', greatest(1, ceil(startup / 5.0))::int),
		'readinessProbe', handler || jsonb_build_object('periodSeconds', period, 'timeoutSeconds', timeout,
						'failureThreshold', failures),
		'livenessProbe', handler || jsonb_build_object('periodSeconds', greatest(period, 20),
						'timeoutSeconds', timeout, 'failureThreshold', greatest(failures, 6))) END
	  FROM h
$$;
COMMENT ON FUNCTION paas.container_probes(jsonb, text) IS
	'startup, readiness and liveness probes of a template probe';

CREATE FUNCTION paas.container_security(c jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN jsonb_build_object('allowPrivilegeEscalation', false,
							  'seccompProfile', jsonb_build_object('type', 'RuntimeDefault'))
		|| CASE WHEN (c ->> 'runAsUser')::bigint > 0 THEN jsonb_build_object(
				'runAsUser', (c ->> 'runAsUser')::bigint,
				'runAsGroup', coalesce((c ->> 'runAsGroup')::bigint, (c ->> 'runAsUser')::bigint),
				'runAsNonRoot', true,
				'capabilities', jsonb_build_object('drop', jsonb_build_array('ALL')))
			ELSE '{}' END;
COMMENT ON FUNCTION paas.container_security(jsonb) IS
	'a container''s securityContext: no privilege escalation, RuntimeDefault seccomp, non-root when the template says so';

-- The objects of an instance in apply order, for its desired state, and the
-- objects to delete.  Returns {"apply": [...], "delete": [{apiVersion,
-- kind, namespace, name}]}.  Secret data is "<redacted>" unless reveal.
CREATE FUNCTION paas.instance_render(i paas.instances, v paas.services, reveal boolean,
									 tpl jsonb DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	cfg record := paas.instance_config();
	d jsonb := coalesce(tpl, paas.service_template(v.id));
	slug text := v.name;
	vars jsonb := paas.instance_vars(i, v, d, false);
	labels jsonb := paas.instance_labels(i, v.name);
	sec_name text := i.name || '-secrets';
	pvc_name text := i.name || '-data';
	has_secrets boolean := (SELECT count(*) > 0 FROM jsonb_object_keys(coalesce(d -> 'secrets', '{}')));
	has_volume boolean := i.storage_gib > 0;
	exposed boolean := coalesce(d ->> 'expose', 'http') = 'http';
	running boolean := i.desired_state = 'running';
	containers jsonb;
	pod jsonb;
	apply jsonb := '[]';
	del jsonb := '[]';
	ref jsonb;
	sc jsonb;
BEGIN
	IF i.desired_state = 'deleted' THEN
		-- everything but the volume, which is kept for the retention period
		FOREACH ref IN ARRAY ARRAY[
			jsonb_build_object('apiVersion', 'networking.k8s.io/v1', 'kind', 'Ingress', 'name', i.name),
			jsonb_build_object('apiVersion', 'v1', 'kind', 'Service', 'name', i.name),
			jsonb_build_object('apiVersion', 'apps/v1', 'kind', 'Deployment', 'name', i.name),
			jsonb_build_object('apiVersion', 'v1', 'kind', 'Secret', 'name', sec_name)] LOOP
			del := del || jsonb_build_array(ref || jsonb_build_object('namespace', i.namespace));
		END LOOP;
		IF has_volume AND i.volume_purge_at IS NOT NULL AND i.volume_purge_at <= now() THEN
			del := del || jsonb_build_array(jsonb_build_object('apiVersion', 'v1', 'kind', 'PersistentVolumeClaim',
				'namespace', i.namespace, 'name', pvc_name));
		END IF;
		RETURN jsonb_build_object('apply', apply, 'delete', del);
	END IF;

	IF has_secrets THEN
		apply := apply || jsonb_build_array(jsonb_build_object(
			'apiVersion', 'v1', 'kind', 'Secret',
			'metadata', paas.instance_meta(i, slug, sec_name),
			'type', 'Opaque',
			'data', (SELECT jsonb_object_agg(s.key, CASE WHEN reveal
						THEN translate(encode(convert_to(coalesce(x.value, ''), 'UTF8'), 'base64'), E'\n', '')
						ELSE '<redacted>' END)
					   FROM jsonb_object_keys(d -> 'secrets') s(key)
					   LEFT JOIN paas.instance_secrets x ON x.instance_id = i.id AND x.name = s.key)));
	END IF;
	IF has_volume THEN
		apply := apply || jsonb_build_array(jsonb_build_object(
			'apiVersion', 'v1', 'kind', 'PersistentVolumeClaim',
			'metadata', paas.instance_meta(i, slug, pvc_name),
			'spec', jsonb_build_object(
				'accessModes', jsonb_build_array('ReadWriteOnce'),
				'resources', jsonb_build_object('requests', jsonb_build_object('storage', i.storage_gib || 'Gi')))
				|| CASE WHEN cfg.storage_class <> '' THEN jsonb_build_object('storageClassName', cfg.storage_class)
						ELSE '{}' END));
	END IF;

	containers := jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
		'name', 'app',
		'image', v.docker_image,
		'ports', jsonb_build_array(jsonb_build_object('name', 'http', 'containerPort', v.container_port,
													  'protocol', 'TCP')),
		'command', (SELECT jsonb_agg(to_jsonb(paas.tpl_subst(x #>> '{}', vars)) ORDER BY n)
					  FROM jsonb_array_elements(d -> 'command') WITH ORDINALITY a(x, n)),
		'args', (SELECT jsonb_agg(to_jsonb(paas.tpl_subst(x #>> '{}', vars)) ORDER BY n)
				   FROM jsonb_array_elements(d -> 'args') WITH ORDINALITY a(x, n)),
		'env', paas.container_env(v.environment_vars, vars, sec_name),
		'resources', jsonb_build_object(
			'requests', jsonb_build_object('cpu', v.cpu_request_m || 'm', 'memory', v.mem_request_mib || 'Mi'),
			'limits', jsonb_build_object('cpu', v.cpu_limit_m || 'm', 'memory', v.mem_limit_mib || 'Mi')),
		'volumeMounts', CASE WHEN has_volume THEN jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
							'name', 'data', 'mountPath', coalesce(d ->> 'volumeMountPath', '/data'),
							'subPath', d ->> 'volumeSubPath'))) END,
		'securityContext', paas.container_security(d),
		'terminationMessagePolicy', 'FallbackToLogsOnError'))
		|| paas.container_probes(d -> 'probe', 'http'));
	FOR sc IN SELECT x FROM jsonb_array_elements(coalesce(d -> 'sidecars', '[]')) x LOOP
		containers := containers || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
			'name', sc ->> 'name',
			'image', sc ->> 'image',
			'command', (SELECT jsonb_agg(to_jsonb(paas.tpl_subst(x #>> '{}', vars)) ORDER BY n)
						  FROM jsonb_array_elements(sc -> 'command') WITH ORDINALITY a(x, n)),
			'args', (SELECT jsonb_agg(to_jsonb(paas.tpl_subst(x #>> '{}', vars)) ORDER BY n)
					   FROM jsonb_array_elements(sc -> 'args') WITH ORDINALITY a(x, n)),
			'env', paas.container_env(sc -> 'env', vars, sec_name),
			'resources', jsonb_build_object(
				'requests', jsonb_build_object('cpu', paas.parse_cpu(sc ->> 'cpuRequest') || 'm',
											   'memory', paas.parse_mem(sc ->> 'memRequest') || 'Mi'),
				'limits', jsonb_build_object('cpu', paas.parse_cpu(sc ->> 'cpuLimit') || 'm',
											 'memory', paas.parse_mem(sc ->> 'memLimit') || 'Mi')),
			'volumeMounts', CASE WHEN has_volume AND sc ? 'volumeMountPath' THEN
								jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
									'name', 'data', 'mountPath', sc ->> 'volumeMountPath',
									'subPath', sc ->> 'volumeSubPath'))) END,
			'securityContext', paas.container_security(sc),
			'terminationMessagePolicy', 'FallbackToLogsOnError'))
			|| CASE WHEN sc ? 'probe' THEN paas.container_probes(sc -> 'probe', NULL) - 'startupProbe'
					ELSE '{}' END);
	END LOOP;

	pod := jsonb_strip_nulls(jsonb_build_object(
		'automountServiceAccountToken', false,
		'enableServiceLinks', false,
		'terminationGracePeriodSeconds', 30,
		'securityContext', jsonb_build_object('seccompProfile', jsonb_build_object('type', 'RuntimeDefault'))
			|| CASE WHEN d ? 'fsGroup' THEN jsonb_build_object('fsGroup', (d ->> 'fsGroup')::bigint,
							'fsGroupChangePolicy', 'OnRootMismatch') ELSE '{}' END
			|| CASE WHEN (d ->> 'runAsUser')::bigint > 0 THEN jsonb_build_object('runAsNonRoot', true)
					ELSE '{}' END,
		'containers', containers,
		'volumes', CASE WHEN has_volume THEN jsonb_build_array(jsonb_build_object(
						'name', 'data', 'persistentVolumeClaim', jsonb_build_object('claimName', pvc_name))) END));

	apply := apply || jsonb_build_array(jsonb_build_object(
		'apiVersion', 'apps/v1', 'kind', 'Deployment',
		'metadata', paas.instance_meta(i, slug, i.name),
		'spec', jsonb_build_object(
			'replicas', CASE WHEN running THEN 1 ELSE 0 END,
			'revisionHistoryLimit', 2,
			'progressDeadlineSeconds', 600,
			'strategy', jsonb_build_object('type', 'Recreate'),
			'selector', jsonb_build_object('matchLabels', jsonb_build_object('paas.dev/instance-id', i.id::text)),
			'template', jsonb_build_object(
				'metadata', jsonb_build_object('labels', labels)
					|| CASE WHEN i.restarted_at IS NOT NULL THEN jsonb_build_object('annotations',
							jsonb_build_object('paas.dev/restartedAt', paas.iso(i.restarted_at)))
						ELSE '{}' END,
				'spec', pod))));
	apply := apply || jsonb_build_array(jsonb_build_object(
		'apiVersion', 'v1', 'kind', 'Service',
		'metadata', paas.instance_meta(i, slug, i.name),
		'spec', jsonb_build_object(
			'type', 'ClusterIP',
			'selector', jsonb_build_object('paas.dev/instance-id', i.id::text),
			'ports', jsonb_build_array(jsonb_build_object('name', 'http', 'port', v.container_port,
														  'targetPort', 'http', 'protocol', 'TCP')))));
	IF exposed AND running THEN
		apply := apply || jsonb_build_array(jsonb_build_object(
			'apiVersion', 'networking.k8s.io/v1', 'kind', 'Ingress',
			'metadata', paas.instance_meta(i, slug, i.name) || jsonb_build_object('annotations',
				jsonb_build_object('paas.dev/generation', i.generation::text,
								   'cert-manager.io/cluster-issuer', cfg.cert_issuer)),
			'spec', jsonb_build_object(
				'ingressClassName', cfg.ingress_class,
				'tls', jsonb_build_array(jsonb_build_object('hosts', jsonb_build_array(i.host),
															 'secretName', i.name || '-tls')),
				'rules', jsonb_build_array(jsonb_build_object(
					'host', i.host,
					'http', jsonb_build_object('paths', jsonb_build_array(jsonb_build_object(
						'path', '/', 'pathType', 'Prefix',
						'backend', jsonb_build_object('service', jsonb_build_object(
							'name', i.name, 'port', jsonb_build_object('number', v.container_port)))))))))));
	ELSE
		del := del || jsonb_build_array(jsonb_build_object('apiVersion', 'networking.k8s.io/v1',
			'kind', 'Ingress', 'namespace', i.namespace, 'name', i.name));
	END IF;
	RETURN jsonb_build_object('apply', apply, 'delete', del);
END
$$;
COMMENT ON FUNCTION paas.instance_render(paas.instances, paas.services, boolean, jsonb) IS
	'objects to apply (in order) and to delete for an instance''s desired state; secrets redacted unless reveal '
	'(tpl: a template to try instead of the stored one)';

-- The namespace objects of a customer: Namespace, ResourceQuota (the sum
-- of the live instances: running ones for pods, cpu and memory, every
-- instance that still has a volume for storage), LimitRange,
-- NetworkPolicy.
CREATE FUNCTION paas.namespace_render(ns paas.instance_namespaces) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	cfg record := paas.instance_config();
	labels jsonb := jsonb_build_object('app.kubernetes.io/managed-by', 'paas',
									   'paas.dev/user-id', ns.user_id::text);
	meta jsonb := jsonb_build_object('namespace', ns.name, 'labels', labels,
									 'annotations', jsonb_build_object('paas.dev/generation', ns.generation::text));
	q record;
BEGIN
	SELECT count(*) FILTER (WHERE i.desired_state = 'running') AS pods,
		   coalesce(sum(i.cpu_request_m) FILTER (WHERE i.desired_state = 'running'), 0) AS cpu_req,
		   coalesce(sum(i.cpu_limit_m) FILTER (WHERE i.desired_state = 'running'), 0) AS cpu_lim,
		   coalesce(sum(i.mem_request_mib) FILTER (WHERE i.desired_state = 'running'), 0) AS mem_req,
		   coalesce(sum(i.mem_limit_mib) FILTER (WHERE i.desired_state = 'running'), 0) AS mem_lim,
		   coalesce(sum(i.storage_gib) FILTER (WHERE i.storage_gib > 0 AND i.volume_deleted_at IS NULL), 0) AS storage,
		   count(*) FILTER (WHERE i.storage_gib > 0 AND i.volume_deleted_at IS NULL) AS pvcs
	  INTO q
	  FROM paas.instances i WHERE i.user_id = ns.user_id;
	RETURN jsonb_build_array(
		jsonb_build_object('apiVersion', 'v1', 'kind', 'Namespace',
			'metadata', jsonb_build_object('name', ns.name,
				'labels', labels || jsonb_build_object('pod-security.kubernetes.io/enforce', 'baseline'),
				'annotations', meta -> 'annotations')),
		jsonb_build_object('apiVersion', 'v1', 'kind', 'ResourceQuota',
			'metadata', meta || jsonb_build_object('name', 'paas-quota'),
			'spec', jsonb_build_object('hard', jsonb_build_object(
				'pods', q.pods::text,
				'requests.cpu', q.cpu_req || 'm', 'limits.cpu', q.cpu_lim || 'm',
				'requests.memory', q.mem_req || 'Mi', 'limits.memory', q.mem_lim || 'Mi',
				'requests.storage', q.storage || 'Gi', 'persistentvolumeclaims', q.pvcs::text,
				'services.loadbalancers', '0', 'services.nodeports', '0'))),
		jsonb_build_object('apiVersion', 'v1', 'kind', 'LimitRange',
			'metadata', meta || jsonb_build_object('name', 'paas-limits'),
			'spec', jsonb_build_object('limits', jsonb_build_array(jsonb_build_object(
				'type', 'Container',
				'default', jsonb_build_object('cpu', '500m', 'memory', '512Mi'),
				'defaultRequest', jsonb_build_object('cpu', '100m', 'memory', '128Mi'),
				'max', jsonb_build_object('cpu', '64', 'memory', '256Gi'))))),
		jsonb_build_object('apiVersion', 'networking.k8s.io/v1', 'kind', 'NetworkPolicy',
			'metadata', meta || jsonb_build_object('name', 'paas-isolation'),
			'spec', jsonb_build_object(
				'podSelector', '{}'::jsonb,
				'policyTypes', jsonb_build_array('Ingress', 'Egress'),
				-- in: the customer's own pods and the ingress controller only
				'ingress', jsonb_build_array(jsonb_build_object('from', jsonb_build_array(
					jsonb_build_object('podSelector', '{}'::jsonb),
					jsonb_build_object('namespaceSelector', jsonb_build_object('matchLabels',
						jsonb_build_object('kubernetes.io/metadata.name', cfg.ingress_namespace)))))),
				-- out: the customer's own pods, namespaces that belong to no
				-- customer (DNS, the platform), and addresses outside the
				-- private ranges (the internet); never another customer
				'egress', jsonb_build_array(
					jsonb_build_object('to', jsonb_build_array(jsonb_build_object('podSelector', '{}'::jsonb))),
					jsonb_build_object('to', jsonb_build_array(jsonb_build_object('namespaceSelector',
						jsonb_build_object('matchExpressions', jsonb_build_array(jsonb_build_object(
							'key', 'paas.dev/user-id', 'operator', 'DoesNotExist')))))),
					jsonb_build_object('to', jsonb_build_array(jsonb_build_object('ipBlock', jsonb_build_object(
						'cidr', '0.0.0.0/0',
						'except', jsonb_build_array('10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16',
													'100.64.0.0/10', '169.254.0.0/16')))))))));
END
$$;
COMMENT ON FUNCTION paas.namespace_render(paas.instance_namespaces) IS
	'a customer''s Namespace, ResourceQuota (sum of live instances), LimitRange and NetworkPolicy';

-- What the reconciler applies for an instance, as a DBA can read it:
-- {"namespace": [...], "apply": [...], "delete": [...]}, secret values
-- redacted unless reveal_secrets.  PT404 for an unknown instance.
CREATE FUNCTION paas.instance_manifests(instance_id uuid, reveal_secrets boolean DEFAULT false)
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	v paas.services;
	ns paas.instance_namespaces;
BEGIN
	SELECT * INTO i FROM paas.instances x WHERE x.id = instance_manifests.instance_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Instance not found' USING ERRCODE = 'PT404';
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	SELECT * INTO ns FROM paas.instance_namespaces WHERE user_id = i.user_id;
	RETURN jsonb_build_object('namespace', paas.namespace_render(ns))
		|| paas.instance_render(i, v, reveal_secrets);
END
$$;
COMMENT ON FUNCTION paas.instance_manifests(uuid, boolean) IS
	'exactly what the reconciler applies and deletes for an instance (secrets redacted unless asked)';

------------------------------------------------------------------------------
-- Saving a service: the template must render
------------------------------------------------------------------------------

-- A sample instance of a service, for the render check.
CREATE FUNCTION paas.sample_instance(v paas.services, d jsonb) RETURNS paas.instances
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	r record := paas.template_resources(v, d);
	id uuid := '00000000-0000-4000-8000-000000000000';
BEGIN
	i.id := id;
	i.subscription_id := id;
	i.user_id := id;
	i.service_id := v.id;
	i.name := paas.instance_name_for(v.name, id);
	i.namespace := paas.namespace_name_for(id);
	i.host := i.name || '.' || (paas.instance_config()).apps_domain;
	i.status := 'PENDING';
	i.desired_state := 'running';
	i.generation := 1;
	i.cpu_request_m := r.cpu_request_m;
	i.cpu_limit_m := r.cpu_limit_m;
	i.mem_request_mib := r.mem_request_mib;
	i.mem_limit_mib := r.mem_limit_mib;
	i.storage_gib := r.storage_gib;
	RETURN i;
END
$$;
COMMENT ON FUNCTION paas.sample_instance(paas.services, jsonb) IS 'an unsaved instance of a service, for checks';

-- Field errors of a service with a template, the trial render included.
CREATE FUNCTION paas.template_check(v paas.services, d jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := paas.template_errors(v, d);
	msg text;
BEGIN
	IF jsonb_array_length(errs) = 0 THEN
		BEGIN
			PERFORM paas.instance_render(paas.sample_instance(v, d), v, false, d);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
			errs := paas.add_err(errs, 'deployment', 'the deployment template does not render: ' || msg);
		END;
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_check(paas.services, jsonb) IS
	'field errors of a service and a template, a trial render of a sample instance included';

CREATE FUNCTION paas.services_template_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF current_setting('paas_templates.checked', true) IS DISTINCT FROM 'on' AND NOT paas.restoring() THEN
		PERFORM paas.raise_if_invalid(paas.template_check(NEW, paas.service_template(NEW.id)));
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.services_template_guard() IS
	'trigger: PT400 with field errors when a service saved with its template does not render';
CREATE TRIGGER services_template_guard
	BEFORE INSERT OR UPDATE OF environment_vars, docker_image, container_port, storage_gib
	ON paas.services
	FOR EACH ROW EXECUTE FUNCTION paas.services_template_guard();

CREATE FUNCTION paas.service_templates_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
BEGIN
	IF paas.restoring() THEN
		RETURN NEW;
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = NEW.service_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PT404';
	END IF;
	IF current_setting('paas_templates.checked', true) IS DISTINCT FROM 'on' THEN
		PERFORM paas.raise_if_invalid(paas.template_check(v, NEW.deployment));
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.service_templates_guard() IS
	'trigger: PT400 with field errors when a template does not render for its service';
CREATE TRIGGER service_templates_guard
	BEFORE INSERT OR UPDATE ON paas.service_templates
	FOR EACH ROW EXECUTE FUNCTION paas.service_templates_guard();

------------------------------------------------------------------------------
-- Instance bookkeeping shared by the money rules and the reconciler
------------------------------------------------------------------------------

-- Records an event of an instance.
CREATE FUNCTION paas.instance_log(instance_id uuid, event text, from_status text, to_status text,
								  generation bigint, message text, detail jsonb DEFAULT NULL,
								  actor text DEFAULT 'system', actor_id uuid DEFAULT NULL)
	RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.instance_events (instance_id, event, from_status, to_status, generation,
										  message, detail, actor, actor_id)
		VALUES (instance_id, event, from_status, to_status, generation, message, detail, actor, actor_id);
	END;
COMMENT ON FUNCTION paas.instance_log(uuid, text, text, text, bigint, text, jsonb, text, uuid) IS
	'records an event of an instance';

-- Generates the secrets the template declares that the instance does not
-- have yet (base64url, of the declared length).  Existing ones never change.
CREATE FUNCTION paas.instance_ensure_secrets(i paas.instances, v paas.services) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	BEGIN ATOMIC
		INSERT INTO paas.instance_secrets (instance_id, name, value)
		SELECT i.id, s.key,
			   left(translate(encode(public.gen_random_bytes(coalesce((s.value ->> 'length')::int, 24)), 'base64'),
								 E'+/=\n', '-_'),
					coalesce((s.value ->> 'length')::int, 24))
		  FROM jsonb_each(coalesce(paas.service_template(v.id) -> 'secrets', '{}')) s
		ON CONFLICT DO NOTHING;
	END;
COMMENT ON FUNCTION paas.instance_ensure_secrets(paas.instances, paas.services) IS
	'generates the declared secrets an instance does not have yet (never changes existing ones)';

-- The customer's namespace row, created or brought back to "present", with
-- a new generation (its quota depends on the instances).  Wakes the
-- reconciler at commit.
CREATE FUNCTION paas.namespace_touch(uid uuid) RETURNS paas.instance_namespaces
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	ns paas.instance_namespaces;
BEGIN
	INSERT INTO paas.instance_namespaces (user_id, name)
	VALUES (uid, paas.namespace_name_for(uid))
	ON CONFLICT (user_id) DO UPDATE
	   SET generation = paas.instance_namespaces.generation + 1,
		   desired_state = 'present',
		   state = CASE WHEN paas.instance_namespaces.state IN ('DELETING', 'DELETED') THEN 'PENDING'
						ELSE paas.instance_namespaces.state END,
		   due_at = now(), attempts = 0, updated_at = now()
	RETURNING * INTO ns;
	PERFORM paas.instance_wake();
	RETURN ns;
END
$$;
COMMENT ON FUNCTION paas.namespace_touch(uuid) IS
	'creates or re-generates a customer''s namespace row (its quota follows the instances)';

-- Applies an event to an instance row (locked by the caller): the status
-- machine, the timestamps of the new status, the event row.  Returns the
-- new status.  PT409 when the machine refuses.
CREATE FUNCTION paas.instance_apply_event(inst_id uuid, event text, message text,
										  actor text DEFAULT 'system', actor_id uuid DEFAULT NULL,
										  detail jsonb DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	nxt text;
BEGIN
	SELECT * INTO i FROM paas.instances WHERE id = inst_id;
	nxt := paas.instance_transition(i.status, event);
	IF nxt <> i.status THEN
		UPDATE paas.instances
		   SET status = nxt, status_changed_at = now(), updated_at = now(),
			   ever_running = ever_running OR nxt = 'RUNNING',
			   ready_at = CASE WHEN nxt = 'RUNNING' THEN now() ELSE ready_at END,
			   stopped_at = CASE WHEN nxt = 'STOPPED' THEN now() ELSE stopped_at END,
			   ended_at = CASE WHEN nxt IN ('DELETED', 'FAILED') THEN coalesce(ended_at, now()) ELSE ended_at END
		 WHERE id = inst_id;
		PERFORM paas.instance_log(inst_id, event, i.status, nxt, i.generation, message, detail, actor, actor_id);
	END IF;
	RETURN nxt;
END
$$;
COMMENT ON FUNCTION paas.instance_apply_event(uuid, text, text, text, uuid, jsonb) IS
	'moves an instance through the status machine (PT409 when illegal) and records the change';
