-- paas -- instances tied to the money: every subscription has its
-- instance, the subscription's status decides what the instance should be,
-- a sale needs free capacity, and an instance that never starts is
-- refunded.
--
-- Rules a reader must know.
--   * One place decides what an instance should be,
--     paas.instance_desired(subscription status, admin_stopped):
--     ACTIVE, GRACE and CANCELLED (served until the period ends) -> running
--     (stopped when an administrator stopped it); SUSPENDED -> stopped
--     (replicas 0, ingress gone, data kept); EXPIRED -> deleted (the volume
--     is kept paas.instance_data_retention, default 7 days, then deleted).
--   * Triggers on paas.subscriptions apply it set-based, in the transaction
--     of the business change (a sale, the renewal run's batches, an admin's
--     PUT): a new subscription gets its PENDING instance, a status change
--     bumps the instance's generation and wakes the reconciler at commit
--     (only rows whose status changed are looked at).  A revival of an ended instance (EXPIRED ->
--     ACTIVE) is "recreate": PENDING again, its volume reused if kept.
--   * Capacity: paas.instance_capacity_check(service) refuses (PT409, so
--     nothing is charged) when the ACTIVE, ready, schedulable nodes of the
--     registry lack the cpu or memory for one more instance after the
--     requests of every instance that should run; it is called by the sale
--     and by a revival (one line each in 60_subscriptions.sql) and
--     serialises them with an advisory lock held to commit.
--   * Start deadline: the job instance_deadlines fails an instance that has
--     not reached RUNNING within paas.instance_start_deadline (default 30
--     min) of its start, expires its subscription and refunds the charge
--     of that period in full: a ledger entry revenue -> wallet (key
--     "subscription:<id>:period:<n>:refund", so at most once whatever
--     races) and a credit note voiding the period's invoice.

------------------------------------------------------------------------------
-- What an instance should be
------------------------------------------------------------------------------

CREATE FUNCTION paas.instance_desired(sub_status text, admin_stopped boolean) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE WHEN sub_status = 'EXPIRED' THEN 'deleted'
				WHEN sub_status = 'SUSPENDED' OR admin_stopped THEN 'stopped'
				ELSE 'running' END;
COMMENT ON FUNCTION paas.instance_desired(text, boolean) IS
	'desired state of an instance: EXPIRED -> deleted, SUSPENDED or stopped by an admin -> stopped, else running';

-- Sets what a set of instances should be (ids, in id order to keep lock
-- order), bumping the generation of those that change, recording the
-- change, and re-generating their namespaces.  Ended instances wanted
-- again are recreated (PENDING, a new start deadline).  Returns the number
-- of instances changed.
CREATE FUNCTION paas.instances_set_desired(ids uuid[], reason text, actor text DEFAULT 'billing',
										   actor_id uuid DEFAULT NULL)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n integer;
	retention interval := (paas.instance_config()).data_retention;
BEGIN
	WITH want AS (
		SELECT i.id, i.status, i.desired_state AS old_desired, i.generation,
			   paas.instance_desired(s.status, i.admin_stopped) AS desired
		  FROM paas.instances i JOIN paas.subscriptions s ON s.id = i.subscription_id
		 WHERE i.id = ANY (ids)
		 ORDER BY i.id
		   FOR UPDATE OF i),
	ch AS (
		SELECT w.*,
			   CASE WHEN w.desired = 'deleted' AND w.status NOT IN ('DELETED', 'DELETING', 'FAILED')
					THEN 'delete'
					WHEN w.desired <> 'deleted' AND w.status IN ('DELETED', 'DELETING', 'FAILED')
					THEN 'recreate' END AS ev
		  FROM want w WHERE w.desired <> w.old_desired),
	upd AS (
		UPDATE paas.instances i
		   SET desired_state = ch.desired,
			   generation = i.generation + 1,
			   status = CASE WHEN ch.ev IS NULL THEN i.status ELSE paas.instance_transition(i.status, ch.ev) END,
			   status_changed_at = CASE WHEN ch.ev IS NULL THEN i.status_changed_at ELSE now() END,
			   start_requested_at = CASE WHEN ch.ev = 'recreate' OR (ch.desired = 'running' AND NOT i.ever_running)
										 THEN now() ELSE i.start_requested_at END,
			   ever_running = CASE WHEN ch.ev = 'recreate' THEN false ELSE i.ever_running END,
			   refunded_at = CASE WHEN ch.ev = 'recreate' THEN NULL ELSE i.refunded_at END,
			   ended_at = CASE WHEN ch.ev = 'recreate' THEN NULL ELSE i.ended_at END,
			   volume_purge_at = CASE WHEN ch.desired = 'deleted' AND i.storage_gib > 0
										   AND i.volume_deleted_at IS NULL
									  THEN now() + retention
									  WHEN ch.ev = 'recreate' AND i.volume_deleted_at IS NULL THEN NULL
									  ELSE i.volume_purge_at END,
			   volume_deleted_at = CASE WHEN ch.ev = 'recreate' THEN NULL ELSE i.volume_deleted_at END,
			   last_error = CASE WHEN ch.ev = 'recreate' THEN NULL ELSE i.last_error END,
			   attempts = 0, polls = 0, due_at = now(), updated_at = now()
		  FROM ch
		 WHERE i.id = ch.id
		RETURNING i.id, i.user_id, ch.status AS from_status, i.status AS to_status, i.generation,
				  ch.old_desired, i.desired_state, ch.ev)
	, logged AS (
		INSERT INTO paas.instance_events (instance_id, event, from_status, to_status, generation,
										  message, detail, actor, actor_id)
		SELECT u.id, coalesce(u.ev, 'desired'), u.from_status, u.to_status, u.generation,
			   format('%s: %s -> %s', reason, u.old_desired, u.desired_state),
			   jsonb_build_object('desiredState', u.desired_state),
			   instances_set_desired.actor, instances_set_desired.actor_id
		  FROM upd u
		RETURNING instance_id)
	SELECT count(*) INTO n FROM logged;
	IF n > 0 THEN
		PERFORM paas.namespace_touch(u) FROM (
			SELECT DISTINCT i.user_id AS u FROM paas.instances i WHERE i.id = ANY (ids) ORDER BY 1) x;
		PERFORM paas.instance_wake();
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.instances_set_desired(uuid[], text, text, uuid) IS
	'applies paas.instance_desired to instances; new generation, event and namespace re-generation for each change';

------------------------------------------------------------------------------
-- Every subscription has its instance
------------------------------------------------------------------------------

-- Statement trigger: one instance per new subscription, named
-- <service>-<8 hex of its id> (more digits on the rare clash), in the
-- customer's namespace, with the template's secrets generated.
CREATE FUNCTION paas.subscriptions_new_instances() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	domain text := (paas.instance_config()).apps_domain;
	digits int;
	made uuid[] := '{}';
	more uuid[];
BEGIN
	IF paas.restoring() THEN
		RETURN NULL;
	END IF;
	FOREACH digits IN ARRAY ARRAY[8, 12, 32] LOOP
		WITH s AS (
			SELECT gen_random_uuid() AS iid, ns.id AS sid, ns.user_id, ns.service_id, ns.status
			  FROM new_subs ns
			 WHERE NOT EXISTS (SELECT 1 FROM paas.instances x WHERE x.subscription_id = ns.id)),
		ins AS (
			INSERT INTO paas.instances (id, subscription_id, user_id, service_id, name, namespace, host,
										desired_state, cpu_request_m, cpu_limit_m, mem_request_mib,
										mem_limit_mib, storage_gib)
			SELECT s.iid, s.sid, s.user_id, s.service_id, nm, paas.namespace_name_for(s.user_id),
				   nm || '.' || domain, paas.instance_desired(s.status, false),
				   r.cpu_request_m, r.cpu_limit_m, r.mem_request_mib, r.mem_limit_mib, r.storage_gib
			  FROM s
			  JOIN paas.services v ON v.id = s.service_id
			  CROSS JOIN LATERAL paas.template_resources(v, paas.service_template(v.id)) r
			  CROSS JOIN LATERAL paas.instance_name_for(v.name, s.iid, digits) nm
			 ORDER BY s.sid
			ON CONFLICT (name) DO NOTHING
			RETURNING id)
		SELECT coalesce(array_agg(id), '{}') INTO more FROM ins;
		made := made || more;
		EXIT WHEN NOT EXISTS (SELECT 1 FROM new_subs ns
							   WHERE NOT EXISTS (SELECT 1 FROM paas.instances x WHERE x.subscription_id = ns.id));
	END LOOP;
	IF cardinality(made) = 0 THEN
		RETURN NULL;
	END IF;
	INSERT INTO paas.instance_secrets (instance_id, name, value)
	SELECT i.id, s.key,
		   left(translate(encode(public.gen_random_bytes(coalesce((s.value ->> 'length')::int, 24)), 'base64'),
						  E'+/=\n', '-_'),
				coalesce((s.value ->> 'length')::int, 24))
	  FROM paas.instances i
	  JOIN paas.services v ON v.id = i.service_id
	  CROSS JOIN LATERAL jsonb_each(coalesce(paas.service_template(v.id) -> 'secrets', '{}')) s
	 WHERE i.id = ANY (made);
	INSERT INTO paas.instance_events (instance_id, event, to_status, generation, message, detail)
	SELECT i.id, 'create', i.status, i.generation, 'instance created for the subscription',
		   jsonb_build_object('desiredState', i.desired_state, 'name', i.name, 'namespace', i.namespace)
	  FROM paas.instances i WHERE i.id = ANY (made)
	 ORDER BY i.id;
	PERFORM paas.namespace_touch(u) FROM (
		SELECT DISTINCT i.user_id AS u FROM paas.instances i WHERE i.id = ANY (made) ORDER BY 1) x;
	PERFORM paas.instance_wake();
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.subscriptions_new_instances() IS
	'statement trigger: creates the instance of every new subscription';
CREATE TRIGGER subscriptions_new_instances
	AFTER INSERT ON paas.subscriptions
	REFERENCING NEW TABLE AS new_subs
	FOR EACH STATEMENT EXECUTE FUNCTION paas.subscriptions_new_instances();

-- A change of subscription status changes what its instance should be.
-- The row trigger notes only the rows whose status changed (C, a list in
-- the transaction's memory: a renewal run's batches, whose statuses stay,
-- cost one WHEN test a row); the statement trigger then applies them all
-- set-based.
CREATE FUNCTION paas.instance_note(subscription uuid) RETURNS void
	AS 'MODULE_PATHNAME', 'paas_instance_note'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.instance_note(uuid) IS
	'notes a subscription whose status changed in this statement (for paas.instance_noted)';

CREATE FUNCTION paas.instance_noted() RETURNS uuid[]
	AS 'MODULE_PATHNAME', 'paas_instance_noted'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.instance_noted() IS
	'the subscriptions noted so far (NULL: none), forgotten as they are returned';

CREATE FUNCTION paas.subscriptions_note_status() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.instance_note(NEW.id);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.subscriptions_note_status() IS
	'row trigger: notes a subscription whose status changed';
CREATE TRIGGER subscriptions_note_status
	AFTER UPDATE OF status ON paas.subscriptions
	FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
	EXECUTE FUNCTION paas.subscriptions_note_status();

CREATE FUNCTION paas.subscriptions_follow_status() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	subs uuid[] := paas.instance_noted();
	ids uuid[];
BEGIN
	IF subs IS NULL OR paas.restoring() THEN
		RETURN NULL;
	END IF;
	SELECT array_agg(i.id ORDER BY i.id) INTO ids
	  FROM paas.instances i JOIN paas.subscriptions s ON s.id = i.subscription_id
	 WHERE i.subscription_id = ANY (subs)
	   AND paas.instance_desired(s.status, i.admin_stopped) IS DISTINCT FROM i.desired_state;
	IF ids IS NOT NULL THEN
		PERFORM paas.instances_set_desired(ids, 'subscription status changed');
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.subscriptions_follow_status() IS
	'statement trigger: instances follow the status of the subscriptions the statement changed';
CREATE TRIGGER subscriptions_follow_status
	AFTER UPDATE ON paas.subscriptions
	FOR EACH STATEMENT EXECUTE FUNCTION paas.subscriptions_follow_status();

-- A catalog change (image, port, environment, resources, template) is a
-- new generation of every instance of the service that is not over: the
-- reconciler rolls it out.  Allocations follow the catalog.
CREATE FUNCTION paas.service_roll(service_id uuid, why text) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
	r record;
	users uuid[];
	n integer;
BEGIN
	SELECT * INTO v FROM paas.services x WHERE x.id = service_roll.service_id;
	r := paas.template_resources(v, paas.service_template(v.id));
	WITH u AS (
		UPDATE paas.instances i
		   SET generation = generation + 1, cpu_request_m = r.cpu_request_m, cpu_limit_m = r.cpu_limit_m,
			   mem_request_mib = r.mem_request_mib, mem_limit_mib = r.mem_limit_mib,
			   -- a volume is never shrunk
			   storage_gib = greatest(i.storage_gib, r.storage_gib),
			   polls = 0, due_at = now(), updated_at = now()
		 WHERE i.service_id = v.id AND i.desired_state <> 'deleted'
		RETURNING i.id, i.user_id, i.status, i.generation),
	l AS (
		INSERT INTO paas.instance_events (instance_id, event, from_status, to_status, generation, message)
		SELECT id, 'catalog', status, status, generation, why FROM u ORDER BY id
		RETURNING instance_id)
	SELECT array_agg(DISTINCT u.user_id), (SELECT count(*) FROM l) INTO users, n FROM u;
	IF users IS NOT NULL THEN
		PERFORM paas.namespace_touch(x) FROM unnest(users) x ORDER BY x;
		PERFORM paas.instance_wake();
	END IF;
	RETURN coalesce(n, 0);
END
$$;
COMMENT ON FUNCTION paas.service_roll(uuid, text) IS
	'a new generation (and the catalog''s allocation) for every live instance of a service';

CREATE FUNCTION paas.services_roll_instances() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF paas.restoring() THEN
		RETURN NULL;
	ELSIF TG_TABLE_NAME = 'service_templates' THEN
		IF TG_OP = 'INSERT' OR NEW.deployment IS DISTINCT FROM OLD.deployment THEN
			PERFORM paas.service_roll(NEW.service_id, 'the service''s deployment template changed: rolling out');
		END IF;
	ELSIF (NEW.docker_image, NEW.container_port, NEW.environment_vars, NEW.cpu_request_m,
		   NEW.cpu_limit_m, NEW.mem_request_mib, NEW.mem_limit_mib, NEW.storage_gib)
		  IS DISTINCT FROM
		  (OLD.docker_image, OLD.container_port, OLD.environment_vars, OLD.cpu_request_m,
		   OLD.cpu_limit_m, OLD.mem_request_mib, OLD.mem_limit_mib, OLD.storage_gib) THEN
		PERFORM paas.service_roll(NEW.id, 'the service''s catalog entry changed: rolling out');
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.services_roll_instances() IS
	'trigger: a catalog or template change is a new generation of the service''s instances';
CREATE TRIGGER services_roll_instances
	AFTER UPDATE ON paas.services
	FOR EACH ROW EXECUTE FUNCTION paas.services_roll_instances();
CREATE TRIGGER service_templates_roll_instances
	AFTER INSERT OR UPDATE ON paas.service_templates
	FOR EACH ROW EXECUTE FUNCTION paas.services_roll_instances();

------------------------------------------------------------------------------
-- Capacity
------------------------------------------------------------------------------

-- The partial index lets the sum of the live requests be an index-only scan.
CREATE INDEX instances_live_requests_idx ON paas.instances (desired_state)
	INCLUDE (cpu_request_m, mem_request_mib) WHERE desired_state = 'running';

-- Free cpu (millicores) and memory (bytes) of the schedulable nodes after
-- the requests of every instance that should run, and the largest node.
-- A node the Kubernetes API knows offers its allocatable less what the pods
-- bound to it that paas does not manage request (31_node_sync.sql).
CREATE FUNCTION paas.instance_capacity(OUT cpu_free_m bigint, OUT memory_free bigint,
									   OUT cpu_largest_m bigint, OUT memory_largest bigint,
									   OUT nodes integer)
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
	SELECT n.cpu - u.cpu, n.mem - u.mem, n.cpu_max, n.mem_max, n.nodes
	  FROM (SELECT coalesce(sum(greatest(x.cpu_allocatable_m - x.foreign_cpu_m, 0)), 0)::bigint AS cpu,
				   coalesce(sum(greatest(x.memory_allocatable - x.foreign_memory, 0)), 0)::bigint AS mem,
				   coalesce(max(greatest(x.cpu_allocatable_m - x.foreign_cpu_m, 0)), 0)::bigint AS cpu_max,
				   coalesce(max(greatest(x.memory_allocatable - x.foreign_memory, 0)), 0)::bigint AS mem_max,
				   count(*)::int AS nodes
			  FROM paas.nodes x WHERE x.status = 'ACTIVE' AND x.is_ready AND NOT x.cordoned) n,
		   (SELECT coalesce(sum(i.cpu_request_m), 0)::bigint AS cpu,
				   coalesce(sum(i.mem_request_mib), 0)::bigint * 1048576 AS mem
			  FROM paas.instances i WHERE i.desired_state = 'running') u
$$;
COMMENT ON FUNCTION paas.instance_capacity() IS
	'free cpu and memory of the ACTIVE, ready, schedulable nodes (less other pods'' requests) after the live instances'' requests';

-- PT409 unless one more instance of the service fits.  Holds an advisory
-- lock until commit so that concurrent sales cannot both take the last
-- room.
CREATE FUNCTION paas.instance_capacity_check(service_id uuid, subscription_id uuid DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
	r record;
	c record;
BEGIN
	SELECT * INTO v FROM paas.services WHERE id = instance_capacity_check.service_id;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	-- a subscription whose instance already counts needs no more room
	IF EXISTS (SELECT 1 FROM paas.instances i
				WHERE i.subscription_id = instance_capacity_check.subscription_id
				  AND i.desired_state = 'running') THEN
		RETURN;
	END IF;
	PERFORM pg_advisory_xact_lock(hashtextextended('paas.instance_capacity', 0));
	r := paas.template_resources(v, paas.service_template(v.id));
	c := paas.instance_capacity();
	IF c.cpu_free_m < r.cpu_request_m OR c.memory_free < r.mem_request_mib::bigint * 1048576
	   OR c.cpu_largest_m < r.cpu_request_m OR c.memory_largest < r.mem_request_mib::bigint * 1048576 THEN
		RAISE EXCEPTION 'Not enough capacity in the cluster to run this service now'
			USING ERRCODE = 'PT409',
				  DETAIL = format('needs %s millicores and %s MiB; free on %s schedulable node(s): %s millicores, %s MiB',
								  r.cpu_request_m, r.mem_request_mib, c.nodes, greatest(c.cpu_free_m, 0),
								  greatest(c.memory_free, 0) / 1048576),
				  HINT = 'Try again later; nothing was charged.';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.instance_capacity_check(uuid, uuid) IS
	'PT409 when the schedulable nodes lack the cpu or memory for one more instance of the service '
	'(none needed when the subscription''s instance already runs)';

------------------------------------------------------------------------------
-- The start deadline and its refund
------------------------------------------------------------------------------

-- Refunds, once, the charge of the subscription's current period: a ledger
-- entry revenue -> wallet and a credit note voiding the period's invoice.
-- Returns {amount, entryId, creditNote} ({amount: 0} for a free period).
CREATE FUNCTION paas.instance_refund(i paas.instances, reason text) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.subscriptions;
	c paas.subscription_charges;
	res jsonb;
	cn jsonb;
BEGIN
	SELECT * INTO s FROM paas.subscriptions WHERE id = i.subscription_id;
	SELECT * INTO c FROM paas.subscription_charges
	 WHERE subscription_id = s.id AND period_no = s.period_no;
	IF NOT FOUND OR c.amount = 0 THEN
		RETURN jsonb_build_object('amount', 0);
	END IF;
	res := paas.ledger_post(format('subscription:%s:period:%s:refund', s.id, c.period_no),
		jsonb_build_array(jsonb_build_object(
			'kind', 'subscription_refund',
			'memo', format('Refund: %s', reason),
			'ref', jsonb_build_object('subscriptionId', s.id, 'instanceId', i.id, 'period', c.period_no,
									  'refundOf', c.entry_id),
			'postings', jsonb_build_array(
				jsonb_build_object('account', paas.platform_account('revenue'), 'amount', -c.amount),
				jsonb_build_object('account', paas.wallet_account(s.user_id), 'amount', c.amount)))));
	IF (res ->> 'replayed')::boolean THEN
		RETURN jsonb_build_object('amount', c.amount, 'entryId', (res #>> '{entries,0,id}')::bigint,
								  'replayed', true);
	END IF;
	IF c.invoice_id IS NOT NULL AND EXISTS (SELECT 1 FROM paas.invoices x
											 WHERE x.id = c.invoice_id AND x.voided_by IS NULL) THEN
		cn := paas.void_invoice(c.invoice_id, reason);
	END IF;
	RETURN jsonb_build_object('amount', c.amount, 'entryId', (res #>> '{entries,0,id}')::bigint,
							  'creditNote', cn -> 'number', 'replayed', false);
END
$$;
COMMENT ON FUNCTION paas.instance_refund(paas.instances, text) IS
	'refunds the current period''s charge once (ledger key subscription:<id>:period:<n>:refund) with a credit note';

-- Job: instances that did not reach RUNNING within the start deadline fail;
-- their subscription expires and is refunded.  Rows being changed by
-- someone else are left to the next run (SKIP LOCKED).
CREATE FUNCTION paas.job_instance_deadlines() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	deadline interval := (paas.instance_config()).start_deadline;
	i paas.instances;
	s paas.subscriptions;
	refund jsonb;
	n integer := 0;
	total bigint := 0;
	msg text;
BEGIN
	FOR i IN SELECT * FROM paas.instances x
			  WHERE x.status IN ('PENDING', 'PROVISIONING') AND NOT x.ever_running
				AND x.desired_state = 'running' AND x.start_requested_at < now() - deadline
			  ORDER BY x.start_requested_at
			  LIMIT 500
			  FOR UPDATE SKIP LOCKED LOOP
		SELECT * INTO s FROM paas.subscriptions WHERE id = i.subscription_id FOR UPDATE SKIP LOCKED;
		CONTINUE WHEN NOT FOUND;
		msg := format('did not start within %s%s', deadline,
					  coalesce(': ' || coalesce(i.last_error, i.status_message), ''));
		PERFORM paas.instance_apply_event(i.id, 'fail', msg, 'system');
		UPDATE paas.instances SET last_error = msg, last_error_at = now() WHERE id = i.id;
		IF i.refunded_at IS NULL THEN
			refund := paas.instance_refund(i, 'the instance did not start');
			UPDATE paas.instances SET refunded_at = now() WHERE id = i.id;
			PERFORM paas.instance_log(i.id, 'refund', 'FAILED', 'FAILED', i.generation,
				format('refunded %s IDR', refund ->> 'amount'), refund, 'billing');
			total := total + (refund ->> 'amount')::bigint;
		END IF;
		IF s.status <> 'EXPIRED' THEN
			UPDATE paas.subscriptions
			   SET status = paas.subscription_transition(s.status, 'expire'), ended_at = now(),
				   grace_until = NULL, status_reason = 'the instance did not start; refunded', updated_at = now()
			 WHERE id = s.id;
			PERFORM paas.subscription_log(s.id, 'instance_failed', s.status, 'EXPIRED', NULL,
										  'the instance did not start; refunded');
		END IF;
		n := n + 1;
	END LOOP;
	RETURN jsonb_build_object('failed', n, 'refunded', total);
END
$$;
COMMENT ON FUNCTION paas.job_instance_deadlines() IS
	'fails instances past paas.instance_start_deadline, expires and refunds their subscriptions';

-- Job: instance events older than 90 days go.
CREATE FUNCTION paas.job_prune_instance_events() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM paas.instance_events WHERE created_at < now() - interval '90 days';
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n);
END
$$;
COMMENT ON FUNCTION paas.job_prune_instance_events() IS 'deletes instance events older than 90 days';

INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('instance_deadlines', 'paas.job_instance_deadlines', '15 seconds',
	 'fails instances that did not start in time and refunds their subscriptions'),
	('prune_instance_events', 'paas.job_prune_instance_events', '1 hour',
	 'deletes instance events older than 90 days');
