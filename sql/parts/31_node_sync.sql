-- paas -- the node registry follows the Kubernetes API (bgworker/nodesync.c).
--
-- Rules a reader must know.
--   * The API is the source of truth for the nodes it knows: the node sync
--     worker lists /api/v1/nodes (pages of 500) and then watches it from the
--     list's resourceVersion (410 Gone -> list again).  A page, or a round
--     of watch events, goes through paas.node_sync_apply_many, which gives
--     each Node object what paas.node_sync_apply would, set-based for the
--     common cases (seen, heartbeat only, new): capacity, allocatable, conditions,
--     labels, taints, versions, addresses and spec.unschedulable are written
--     (paas.node_from_k8s + paas.node_write, as a registration with a Node
--     object), and Ready=True/False/Unknown drives the status machine
--     (heartbeat_ready / heartbeat_not_ready; MAINTENANCE stays).  Every
--     change of status or of the cordon is audited with actor 'kubernetes'.
--   * kube_seen_at marks a node the API knows.  For such a node an agent's
--     heartbeat keeps the API's readiness, conditions and allocations and
--     adds only usage (api.workers_heartbeat / api.workers_resources).  A
--     node the API does not know (no API access, or self-registered only)
--     behaves exactly as before.
--   * A node deleted in the cluster (a DELETED event, or absent from a
--     complete list) becomes INACTIVE (admin_deactivate, actor
--     'kubernetes', reason 'deleted from the cluster') and its row and
--     history stay; kube_seen_at is cleared, so its agent may take it over.
--   * While the watch is open, paas.node_sync_alive() stamps the heartbeat
--     of the nodes the API knows (a third of paas.node_grace_period, at most
--     30 s), so the health monitor does not time them out; when the API is
--     unreachable the stamps stop and the monitor takes over.
--   * Allocations of a node the API knows are the sum of the requests of the
--     pods bound to it (spec.nodeName, phase neither Succeeded nor Failed),
--     read from a list of the pods at the same period
--     (paas.node_sync_pods_begin / _page / _end); currentPods is their count.
--     The capacity check of a sale (paas.instance_capacity) takes each
--     node's allocatable less the requests of the pods paas does not manage
--     (foreign_cpu_m / foreign_memory), and then the requests of every
--     instance that should run -- paas's own pods are counted once, bound
--     yet or not.
--   * Locked rows are skipped (lock_timeout 200ms), never waited for: the
--     next event or list brings them.

------------------------------------------------------------------------------
-- One Node
------------------------------------------------------------------------------

-- What of a Node object the registry depends on, as a digest: all of it
-- but its kind and apiVersion (a list's items have none, a watch's objects
-- do), resourceVersion, managedFields and the conditions'
-- lastHeartbeatTime (a kubelet's periodic "still here").
-- The md5 of the text of the JSON array [the object less those keys, its
-- metadata less its two, its status less conditions, its conditions each
-- less lastHeartbeatTime], written in one pass in C (extension/nodes.c).
CREATE FUNCTION paas.node_digest(x jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_node_digest'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_digest(jsonb) IS
	'digest of a Node object less kind, apiVersion, resourceVersion, managedFields and heartbeat times';

-- Applies one Node object to the registry; returns what happened:
-- registered | updated | unchanged | invalid.
CREATE FUNCTION paas.node_sync_apply(x jsonb) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	nm text := x #>> '{metadata,name}';
	rv text := x #>> '{metadata,resourceVersion}';
	s jsonb;
	errs jsonb;
	n paas.nodes;
	created boolean := false;
	old text;
	was_cordoned boolean;
	ready boolean;
	unsched boolean;
	ev text;
	nxt text;
	why text;
	dig text;
BEGIN
	IF nm IS NULL THEN
		RETURN 'invalid';
	END IF;
	SELECT * INTO n FROM paas.nodes WHERE name = nm FOR UPDATE;
	IF n.id IS NOT NULL AND n.kube_seen_at IS NOT NULL AND rv IS NOT NULL
	   AND n.kube_resource_version = rv AND n.kube_uid IS NOT DISTINCT FROM x #>> '{metadata,uid}' THEN
		UPDATE paas.nodes SET kube_seen_at = now() WHERE id = n.id;
		RETURN 'unchanged';
	END IF;
	dig := paas.node_digest(x);
	IF n.id IS NOT NULL AND n.kube_seen_at IS NOT NULL AND n.kube_digest = dig THEN
		-- only heartbeat times moved
		UPDATE paas.nodes
		   SET kube_seen_at = now(), kube_resource_version = rv,
			   conditions = coalesce(x #> '{status,conditions}', conditions),
			   last_heartbeat = now(), last_health_check = now()
		 WHERE id = n.id;
		RETURN 'unchanged';
	END IF;
	SELECT k.spec, k.errs INTO s, errs FROM paas.node_from_k8s(x || '{"kind": "Node"}') k;
	IF jsonb_array_length(errs) = 0 THEN
		errs := paas.node_check(errs, s, true);
	END IF;
	IF jsonb_array_length(errs) > 0 THEN
		RAISE WARNING 'paas node sync: Node "%" is not usable: %', nm, errs::text;
		RETURN 'invalid';
	END IF;
	ready := (s ->> 'isReady')::boolean;
	unsched := coalesce((s ->> 'unschedulable')::boolean, false);
	IF n.id IS NULL THEN
		PERFORM paas.node_hostname_taken(s ->> 'hostname', NULL);
		INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage)
		VALUES (nm, s ->> 'hostname', (s ->> 'ipAddress')::inet, 1, '', '0', '0')
		RETURNING * INTO n;
		created := true;
		ev := CASE WHEN ready THEN 'register' ELSE 'register_not_ready' END;
	ELSE
		PERFORM paas.node_hostname_taken(s ->> 'hostname', n.id);
		ev := CASE WHEN ready THEN 'heartbeat_ready' ELSE 'heartbeat_not_ready' END;
	END IF;
	old := CASE WHEN created THEN NULL ELSE n.status END;
	was_cordoned := n.cordoned;
	n := paas.node_write(n.id, s);
	nxt := paas.node_transition(n.status, ev);
	UPDATE paas.nodes
	   SET status = nxt,
		   is_ready = ready,
		   cordoned = unsched,
		   kube_seen_at = now(),
		   kube_resource_version = rv,
		   kube_digest = dig,
		   registered_at = coalesce(registered_at, now()),
		   last_heartbeat = now(),
		   last_health_check = now(),
		   status_changed_at = CASE WHEN nxt <> status THEN now() ELSE status_changed_at END
	 WHERE id = n.id
	RETURNING * INTO n;
	IF created OR nxt IS DISTINCT FROM old THEN
		SELECT coalesce(nullif(concat_ws(': ', c ->> 'reason', c ->> 'message'), ''), 'Ready=' || (c ->> 'status'))
		  INTO why FROM jsonb_array_elements(n.conditions) c WHERE c ->> 'type' = 'Ready' LIMIT 1;
		PERFORM paas.node_audit(n, old, ev, 'kubernetes',
								CASE WHEN created THEN 'registered from the Kubernetes API'
									 ELSE coalesce(why, 'no Ready condition') END);
	END IF;
	IF NOT created AND was_cordoned IS DISTINCT FROM unsched THEN
		PERFORM paas.node_audit(n, n.status, CASE WHEN unsched THEN 'cordon' ELSE 'uncordon' END, 'kubernetes',
								'spec.unschedulable is ' || unsched::text || ' in the cluster');
	END IF;
	RETURN CASE WHEN created THEN 'registered' ELSE 'updated' END;
END
$$;
COMMENT ON FUNCTION paas.node_sync_apply(jsonb) IS
	'writes one Node object of the Kubernetes API into the registry (status through the machine, audited)';

-- A node the cluster no longer has: INACTIVE, row and history kept.
CREATE FUNCTION paas.node_sync_remove(n paas.nodes) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	n := paas.node_apply(n, 'admin_deactivate', 'kubernetes', 'deleted from the cluster');
	UPDATE paas.nodes SET kube_seen_at = NULL, kube_resource_version = NULL, kube_digest = NULL WHERE id = n.id;
END
$$;
COMMENT ON FUNCTION paas.node_sync_remove(paas.nodes) IS
	'a node deleted from the cluster becomes INACTIVE (audited, kept)';

------------------------------------------------------------------------------
-- Many Nodes at once (a page of the list, a round of watch events)
------------------------------------------------------------------------------

-- Applies Node objects, each with the outcome paas.node_sync_apply would
-- give it, in a few statements for them all:
--   * a Node whose resourceVersion (and uid) the registry holds: seen;
--   * one whose digest is unchanged (only heartbeat times moved): version,
--     conditions and heartbeat in one UPDATE;
--   * a valid Node the registry does not have, with a hostname no other
--     node (nor another of the batch) holds: registered -- one INSERT, one
--     paas.node_write_many, one status UPDATE through the status machine,
--     one INSERT of the audits;
--   * every other one (changed, invalid, its name twice, its row locked,
--     its hostname taken) goes through paas.node_sync_apply on its own
--     (a failure is a warning, the others go on), in the batch's order,
--     after those.
-- Should a set-based statement fail (an agent registering the same name
-- meanwhile, say), the whole batch is applied one Node at a time.  Returns
-- how many of each outcome: {"registered": n, "unchanged": n, ...}.
CREATE FUNCTION paas.node_sync_apply_many(xs jsonb[]) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r record;
	res text;
BEGIN
	IF to_regclass('pg_temp.paas_node_batch') IS NULL THEN
		CREATE TEMP TABLE paas_node_batch (
			i integer PRIMARY KEY, nm text, rv text, node_id uuid, known boolean,
			old_digest text, dig text, s jsonb, errs jsonb, host text, outcome text) ON COMMIT DELETE ROWS;
		-- read once or twice: not worth compressing
		ALTER TABLE pg_temp.paas_node_batch ALTER s SET STORAGE EXTERNAL;
	END IF;
	DELETE FROM pg_temp.paas_node_batch;
	BEGIN
		-- each Node with the registry's row of its name, locked; on its own
		-- (slow): a Node without a name, its name a second time, a row
		-- another transaction holds (it waits lock_timeout, as one Node)
		WITH u AS (
			SELECT i, x #>> '{metadata,name}' AS nm, x #>> '{metadata,resourceVersion}' AS rv,
				   row_number() OVER (PARTITION BY x #>> '{metadata,name}' ORDER BY i) AS k
			  FROM unnest(xs) WITH ORDINALITY AS u(x, i) WHERE x IS NOT NULL),
		l AS MATERIALIZED (
			SELECT id, name, kube_seen_at, kube_resource_version, kube_uid, kube_digest FROM paas.nodes
			 WHERE name IN (SELECT nm FROM u) FOR UPDATE SKIP LOCKED)
		INSERT INTO pg_temp.paas_node_batch (i, nm, rv, node_id, known, old_digest, outcome)
		SELECT u.i, u.nm, u.rv, l.id, l.kube_seen_at IS NOT NULL, l.kube_digest,
			   CASE WHEN u.nm IS NULL OR u.k > 1 OR (l.id IS NULL AND p.id IS NOT NULL) THEN 'slow'
					WHEN l.kube_seen_at IS NOT NULL AND u.rv IS NOT NULL AND l.kube_resource_version = u.rv
						 AND l.kube_uid IS NOT DISTINCT FROM xs[u.i] #>> '{metadata,uid}' THEN 'seen' END
		  FROM u LEFT JOIN l ON l.name = u.nm LEFT JOIN paas.nodes p ON p.name = u.nm;
		UPDATE pg_temp.paas_node_batch SET dig = paas.node_digest(xs[i]) WHERE outcome IS NULL;
		-- only heartbeat times moved; anything else of a known node: on its own
		UPDATE pg_temp.paas_node_batch
		   SET outcome = CASE WHEN known AND old_digest = dig THEN 'heartbeat' ELSE 'slow' END
		 WHERE outcome IS NULL AND node_id IS NOT NULL;
		UPDATE paas.nodes n SET kube_seen_at = now()
		  FROM pg_temp.paas_node_batch b WHERE b.outcome = 'seen' AND n.id = b.node_id;
		UPDATE paas.nodes n
		   SET kube_seen_at = now(), kube_resource_version = b.rv,
			   conditions = coalesce(xs[b.i] #> '{status,conditions}', n.conditions),
			   last_heartbeat = now(), last_health_check = now()
		  FROM pg_temp.paas_node_batch b WHERE b.outcome = 'heartbeat' AND n.id = b.node_id;

		-- new nodes: valid, and a hostname nobody else holds
		-- (the spec is checked as it is made, in memory, not re-read from the table)
		UPDATE pg_temp.paas_node_batch b
		   SET (s, errs) = (SELECT f.spec, CASE WHEN jsonb_array_length(f.errs) = 0
												 THEN paas.node_check(f.errs, f.spec, true) ELSE f.errs END
							  FROM paas.node_from_k8s(xs[b.i] || '{"kind": "Node"}') f)
		 WHERE outcome IS NULL;
		UPDATE pg_temp.paas_node_batch SET host = s ->> 'hostname' WHERE outcome IS NULL;
		UPDATE pg_temp.paas_node_batch b SET outcome = 'slow'
		  FROM (SELECT i, count(*) OVER (PARTITION BY host) AS k FROM pg_temp.paas_node_batch
				 WHERE outcome IS NULL) o
		 WHERE o.i = b.i
		   AND (jsonb_array_length(b.errs) > 0 OR o.k > 1
				OR EXISTS (SELECT 1 FROM paas.nodes n WHERE n.hostname = b.host));
		WITH ins AS (
			INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage)
			SELECT nm, s ->> 'hostname', (s ->> 'ipAddress')::inet, 1, '', '0', '0'
			  FROM pg_temp.paas_node_batch WHERE outcome IS NULL ORDER BY i
			RETURNING id, name)
		UPDATE pg_temp.paas_node_batch b SET node_id = ins.id, outcome = 'registered'
		  FROM ins WHERE b.outcome IS NULL AND b.nm = ins.name;
		PERFORM count(*) FROM paas.node_write_many(
			ARRAY(SELECT node_id FROM pg_temp.paas_node_batch WHERE outcome = 'registered' ORDER BY i),
			ARRAY(SELECT s FROM pg_temp.paas_node_batch WHERE outcome = 'registered' ORDER BY i));
		UPDATE paas.nodes n
		   SET status = paas.node_transition(n.status, b.ev),
			   is_ready = b.ready,
			   cordoned = b.unsched,
			   kube_seen_at = now(),
			   kube_resource_version = b.rv,
			   kube_digest = b.dig,
			   registered_at = coalesce(n.registered_at, now()),
			   last_heartbeat = now(),
			   last_health_check = now(),
			   status_changed_at = CASE WHEN paas.node_transition(n.status, b.ev) <> n.status THEN now()
										ELSE n.status_changed_at END
		  FROM (SELECT node_id, rv, dig, (s ->> 'isReady')::boolean AS ready,
					   coalesce((s ->> 'unschedulable')::boolean, false) AS unsched,
					   CASE WHEN (s ->> 'isReady')::boolean THEN 'register' ELSE 'register_not_ready' END AS ev
				  FROM pg_temp.paas_node_batch WHERE outcome = 'registered') b
		 WHERE n.id = b.node_id;
		-- the audits of paas.node_audit, one statement
		INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
		SELECT n.id, n.name, NULL, n.status, CASE WHEN n.is_ready THEN 'register' ELSE 'register_not_ready' END,
			   'kubernetes', 'registered from the Kubernetes API'
		  FROM pg_temp.paas_node_batch b JOIN paas.nodes n ON n.id = b.node_id
		 WHERE b.outcome = 'registered' ORDER BY b.i;
	EXCEPTION WHEN OTHERS THEN
		-- the statements above are undone: every Node on its own
		RAISE WARNING 'paas node sync: % Nodes are applied one at a time: %', cardinality(xs), SQLERRM;
		DELETE FROM pg_temp.paas_node_batch;
		INSERT INTO pg_temp.paas_node_batch (i, outcome)
		SELECT i, 'slow' FROM unnest(xs) WITH ORDINALITY AS u(x, i) WHERE x IS NOT NULL;
	END;
	FOR r IN SELECT i FROM pg_temp.paas_node_batch WHERE outcome = 'slow' ORDER BY i LOOP
		BEGIN
			res := paas.node_sync_apply(xs[r.i]);
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'paas node sync: Node "%" was not applied: %', xs[r.i] #>> '{metadata,name}', SQLERRM;
			res := 'failed';
		END;
		UPDATE pg_temp.paas_node_batch SET outcome = res WHERE i = r.i;
	END LOOP;
	RETURN (SELECT coalesce(jsonb_object_agg(outcome, k), '{}')
			  FROM (SELECT CASE WHEN outcome IN ('seen', 'heartbeat') THEN 'unchanged' ELSE outcome END AS outcome,
						   count(*) AS k
					  FROM pg_temp.paas_node_batch GROUP BY 1) c);
END
$$;
COMMENT ON FUNCTION paas.node_sync_apply_many(jsonb[]) IS
	'applies Node objects of the Kubernetes API set-based, each as paas.node_sync_apply would; counts of the outcomes';

------------------------------------------------------------------------------
-- The list
------------------------------------------------------------------------------

-- The items of one page of GET /api/v1/nodes (bgworker/nodesync.c reads
-- the page's resourceVersion and continue token itself) through
-- paas.node_sync_apply_many: one bad Node never stops the others.  Returns
-- its counts of the outcomes.
CREATE FUNCTION paas.node_sync_page(items jsonb[]) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM set_config('lock_timeout', '200ms', true);
	PERFORM set_config('work_mem', '64MB', true);
	RETURN paas.node_sync_apply_many(coalesce(items, '{}'));
END
$$;
COMMENT ON FUNCTION paas.node_sync_page(jsonb[]) IS
	'applies the Nodes of one page of the Node list; counts of the outcomes';

-- After a complete list that began at "started": the nodes the API knew
-- and did not list are gone from the cluster.  Returns how many.
CREATE FUNCTION paas.node_sync_end(started timestamptz) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes;
	gone integer := 0;
BEGIN
	FOR n IN SELECT * FROM paas.nodes WHERE kube_seen_at < started FOR UPDATE SKIP LOCKED LOOP
		PERFORM paas.node_sync_remove(n);
		gone := gone + 1;
	END LOOP;
	RETURN gone;
END
$$;
COMMENT ON FUNCTION paas.node_sync_end(timestamptz) IS
	'after a complete Node list: nodes the API knew and did not list become INACTIVE';

------------------------------------------------------------------------------
-- The watch
------------------------------------------------------------------------------

-- Lines of the Node watch (WatchEvent JSON, one a line).  Returns the last
-- resourceVersion seen (BOOKMARKs included), or GONE when the server said
-- the version is too old (410: list again; the events before it are
-- applied).  Each node's events are applied in their order: in rounds, the
-- first event of every node, then the second ..., the ADDED and MODIFIED
-- ones of a round through paas.node_sync_apply_many, the DELETED ones on
-- their own.  A line that is not JSON is skipped.
CREATE FUNCTION paas.node_sync_events(lines text[]) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	line text;
	evs jsonb[];
	gone integer;
	rv text;
	round_no integer;
	r record;
	n paas.nodes;
BEGIN
	PERFORM set_config('lock_timeout', '200ms', true);
	-- 2,000 Node objects of ~3 kB are sorted into rounds: in memory
	PERFORM set_config('work_mem', '64MB', true);
	IF to_regclass('pg_temp.paas_node_events') IS NULL THEN
		CREATE TEMP TABLE paas_node_events (
			i integer PRIMARY KEY, type text, nm text, rv text, code text, rnd integer) ON COMMIT DELETE ROWS;
	END IF;
	DELETE FROM pg_temp.paas_node_events;
	BEGIN
		evs := ARRAY(SELECT l::jsonb FROM unnest(lines) l);
	EXCEPTION WHEN OTHERS THEN
		-- a line is not JSON: line by line, without it
		evs := '{}';
		FOREACH line IN ARRAY lines LOOP
			BEGIN
				evs := evs || line::jsonb;
			EXCEPTION WHEN OTHERS THEN
				CONTINUE;
			END;
		END LOOP;
	END;
	-- the events (their objects stay in evs), each node's numbered in order
	INSERT INTO pg_temp.paas_node_events (i, type, nm, rv, code, rnd)
	SELECT y.i, y.type, y.nm, y.rv, y.code,
		   CASE WHEN y.node_event THEN row_number() OVER (PARTITION BY y.node_event, y.nm ORDER BY y.i) END
	  FROM (SELECT i, e ->> 'type' AS type, e #>> '{object,metadata,name}' AS nm,
				   e #>> '{object,metadata,resourceVersion}' AS rv, e #>> '{object,code}' AS code,
				   coalesce(e ->> 'type' IN ('ADDED', 'MODIFIED', 'DELETED') AND e -> 'object' IS NOT NULL,
							false) AS node_event
			  FROM unnest(evs) WITH ORDINALITY AS u(e, i)) y;
	SELECT min(i) INTO gone FROM pg_temp.paas_node_events WHERE type = 'ERROR' AND code = '410';
	DELETE FROM pg_temp.paas_node_events WHERE i >= gone;
	SELECT e.rv INTO rv FROM pg_temp.paas_node_events e
	 WHERE e.type IS DISTINCT FROM 'ERROR' AND e.rv IS NOT NULL ORDER BY e.i DESC LIMIT 1;
	FOR round_no IN 1 .. coalesce((SELECT max(e.rnd) FROM pg_temp.paas_node_events e), 0) LOOP
		PERFORM paas.node_sync_apply_many(ARRAY(
			SELECT evs[e.i] -> 'object' FROM pg_temp.paas_node_events e
			 WHERE e.rnd = round_no AND e.type IN ('ADDED', 'MODIFIED') ORDER BY e.i));
		FOR r IN SELECT e.nm FROM pg_temp.paas_node_events e
				  WHERE e.rnd = round_no AND e.type = 'DELETED' ORDER BY e.i LOOP
			BEGIN
				SELECT * INTO n FROM paas.nodes WHERE name = r.nm AND kube_seen_at IS NOT NULL FOR UPDATE;
				IF FOUND THEN
					PERFORM paas.node_sync_remove(n);
				END IF;
			EXCEPTION WHEN OTHERS THEN
				RAISE WARNING 'paas node sync: an event of Node "%" was not applied: %', r.nm, SQLERRM;
			END;
		END LOOP;
	END LOOP;
	RETURN CASE WHEN gone IS NOT NULL THEN 'GONE' ELSE rv END;
END
$$;
COMMENT ON FUNCTION paas.node_sync_events(text[]) IS
	'applies Node watch events to the registry; the last resourceVersion, or GONE';

-- The watch is open: the nodes the API knows are alive as far as the
-- health monitor goes (their readiness is the API's).  A node the monitor
-- timed out meanwhile (its clock: the worker stalled, or a shortened grace
-- period) lost its API conditions to "Unknown": its resourceVersion and
-- digest are forgotten and the answer says how many, so that the worker
-- lists again and the API's state is applied in full.
CREATE FUNCTION paas.node_sync_alive() RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	k integer;
BEGIN
	PERFORM set_config('synchronous_commit', 'off', true);
	UPDATE paas.nodes SET kube_resource_version = NULL, kube_digest = NULL
	 WHERE id IN (SELECT n.id FROM paas.nodes n
				   WHERE n.kube_seen_at IS NOT NULL AND n.status IN ('NOT_READY', 'INACTIVE')
					 AND n.kube_digest IS NOT NULL
					 AND (SELECT t.actor FROM paas.node_transitions t WHERE t.node_id = n.id
						   ORDER BY t.id DESC LIMIT 1) = 'monitor'
					 FOR UPDATE OF n SKIP LOCKED);
	GET DIAGNOSTICS k = ROW_COUNT;
	UPDATE paas.nodes SET last_heartbeat = now(), last_health_check = now()
	 WHERE id IN (SELECT id FROM paas.nodes WHERE kube_seen_at IS NOT NULL AND status <> 'INACTIVE'
				  FOR UPDATE SKIP LOCKED);
	RETURN k;
END
$$;
COMMENT ON FUNCTION paas.node_sync_alive() IS
	'stamps the nodes the Kubernetes API knows as heard from; returns how many the monitor timed out (list again)';

------------------------------------------------------------------------------
-- Allocations: the requests of the pods bound to each node
------------------------------------------------------------------------------

CREATE FUNCTION paas.node_sync_pods_begin() RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	CREATE TEMP TABLE IF NOT EXISTS paas_node_pods (
		node text NOT NULL, cpu_m bigint NOT NULL, memory bigint NOT NULL, pods integer NOT NULL,
		foreign_pod boolean NOT NULL);
	TRUNCATE pg_temp.paas_node_pods;
END
$$;
COMMENT ON FUNCTION paas.node_sync_pods_begin() IS
	'starts a list of the pods bound to nodes (session temp table)';

-- A pod's requests as the scheduler counts them: the sum over its
-- containers, or the largest init container when that is more.
CREATE FUNCTION paas.pod_requests(p jsonb, OUT cpu_m bigint, OUT memory bigint)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
	SELECT greatest(coalesce(c.cpu, 0), coalesce(i.cpu, 0)), greatest(coalesce(c.mem, 0), coalesce(i.mem, 0))
	  FROM (SELECT sum(paas.quantity_milli(k #>> '{resources,requests,cpu}')) AS cpu,
				   sum(paas.quantity_value(k #>> '{resources,requests,memory}')) AS mem
			  FROM jsonb_array_elements(coalesce(p #> '{spec,containers}', '[]')) k) c,
		   (SELECT max(paas.quantity_milli(k #>> '{resources,requests,cpu}')) AS cpu,
				   max(paas.quantity_value(k #>> '{resources,requests,memory}')) AS mem
			  FROM jsonb_array_elements(coalesce(p #> '{spec,initContainers}', '[]')) k) i
$$;
COMMENT ON FUNCTION paas.pod_requests(jsonb) IS
	'cpu (millicores) and memory (bytes) a pod requests, as the scheduler counts them';

-- The items of one page of GET /api/v1/pods?fieldSelector=spec.nodeName!=...;
-- returns how many of its pods count (bound, neither Succeeded nor Failed).
CREATE FUNCTION paas.node_sync_pods_page(items jsonb[]) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	p jsonb;
	r record;
	n integer := 0;
BEGIN
	FOREACH p IN ARRAY coalesce(items, '{}') LOOP
		CONTINUE WHEN coalesce(p #>> '{spec,nodeName}', '') = ''
			OR p #>> '{status,phase}' IN ('Succeeded', 'Failed');
		BEGIN
			r := paas.pod_requests(p);
		EXCEPTION WHEN OTHERS THEN
			r := ROW(0::bigint, 0::bigint);
		END;
		INSERT INTO pg_temp.paas_node_pods
		VALUES (p #>> '{spec,nodeName}', r.cpu_m, r.memory, 1,
				p #>> '{metadata,labels,app.kubernetes.io/managed-by}' IS DISTINCT FROM 'paas');
		n := n + 1;
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.node_sync_pods_page(jsonb[]) IS
	'collects the requests of one page of pods bound to nodes; how many count';

-- After a complete pod list: each node the API knows is allocated what its
-- pods request.  Returns how many nodes changed.
CREATE FUNCTION paas.node_sync_pods_end() RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	k integer;
BEGIN
	PERFORM set_config('lock_timeout', '200ms', true);
	WITH a AS (
		SELECT node, sum(cpu_m)::bigint AS cpu_m, sum(memory)::bigint AS memory, sum(pods)::int AS pods,
			   coalesce(sum(cpu_m) FILTER (WHERE foreign_pod), 0)::bigint AS f_cpu_m,
			   coalesce(sum(memory) FILTER (WHERE foreign_pod), 0)::bigint AS f_memory
		  FROM pg_temp.paas_node_pods GROUP BY node),
	t AS (
		SELECT n.id, coalesce(a.cpu_m, 0) AS cpu_m, coalesce(a.memory, 0) AS memory, coalesce(a.pods, 0) AS pods,
			   coalesce(a.f_cpu_m, 0) AS f_cpu_m, coalesce(a.f_memory, 0) AS f_memory
		  FROM paas.nodes n LEFT JOIN a ON a.node = n.name
		 WHERE n.kube_seen_at IS NOT NULL
		   AND (n.cpu_allocated_m, n.memory_allocated, n.current_pods, n.foreign_cpu_m, n.foreign_memory)
			   IS DISTINCT FROM (coalesce(a.cpu_m, 0), coalesce(a.memory, 0), coalesce(a.pods, 0),
								 coalesce(a.f_cpu_m, 0), coalesce(a.f_memory, 0))
		   FOR UPDATE OF n SKIP LOCKED)
	UPDATE paas.nodes n
	   SET cpu_allocated_m = t.cpu_m, memory_allocated = t.memory, current_pods = t.pods,
		   allocated_cpu = t.cpu_m || 'm', allocated_memory = t.memory::text,
		   foreign_cpu_m = t.f_cpu_m, foreign_memory = t.f_memory, updated_at = now()
	  FROM t WHERE n.id = t.id;
	GET DIAGNOSTICS k = ROW_COUNT;
	TRUNCATE pg_temp.paas_node_pods;
	RETURN k;
END
$$;
COMMENT ON FUNCTION paas.node_sync_pods_end() IS
	'sets the allocations of the nodes the Kubernetes API knows to their bound pods'' requests';
