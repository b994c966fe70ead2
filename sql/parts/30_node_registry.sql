-- paas -- the node registry: paas.nodes, its status machine (C), resource
-- quantities, and the administrators' /workers routes.  The agent protocol
-- (join tokens, registration, heartbeats) is 33_node_agent.sql, the health
-- monitor 34_node_monitor.sql, the sync from the Kubernetes API
-- 31_node_sync.sql, cordon and drain 32_node_actions.sql.
--
-- Rules a reader must know.
--   * Status changes go through paas.node_transition(status, event), the
--     C table of extension/nodes.c; an illegal one raises PT409.  Every
--     change of status (and every registration, cordon and admin action) is
--     recorded in paas.node_transitions with its event, actor and reason.
--   * isSchedulable is derived: status ACTIVE, ready, and not cordoned.  The
--     stored flag is "cordoned" (Kubernetes' spec.unschedulable), so the
--     monitor never overwrites an administrator's cordon.
--   * Quantities ("3800m", "16331368Ki", "1.5Gi") are parsed in C
--     (extension/quantity.c); bad ones are PT400 field errors.  CPU is kept
--     in millicores, memory and storage in bytes.  One rule for every field
--     (docs/api.md): memory and storage are quantity strings, and a JSON
--     number is accepted only where the original took one, in its unit --
--     a heartbeat's (or resource report's) allocatedMemory in whole MB and
--     allocatedStorage in whole GB (binary: 512 is "512Mi"); anywhere else
--     a number there is a PT400 field error, never silently bytes.  CPU
--     numbers are cores everywhere (Kubernetes reads a bare CPU quantity so).
--   * The heartbeat path is the hot one (a fleet of 240,000 nodes at 30 s is
--     8,000/s): paas.nodes has no index on last_heartbeat and a fillfactor
--     of 70 so that heartbeats are HOT updates (the monitor scans the
--     table); the columns a heartbeat writes come last so the WAL record
--     holds only them; the row is not locked (the update re-checks the
--     status it read); the commit does not wait for the WAL flush.

------------------------------------------------------------------------------
-- Domains.  The value rules of paas.nodes are domains rather than table
-- CHECKs: PostgreSQL evaluates every CHECK of a table on every UPDATE (and
-- re-reads them per statement), while a domain is checked only where a
-- value is assigned to it, from a cached expression.  A heartbeat assigns
-- none of the capacity columns.
------------------------------------------------------------------------------

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

------------------------------------------------------------------------------
-- Module functions (C)
------------------------------------------------------------------------------

CREATE FUNCTION paas.parse_quantity(q text) RETURNS numeric
	AS 'MODULE_PATHNAME', 'paas_parse_quantity'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.parse_quantity(text) IS
	'exact value of a Kubernetes quantity (nano precision); 22P02 when invalid';

CREATE FUNCTION paas.quantity_value(q text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'paas_quantity_value'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.quantity_value(text) IS
	'a quantity rounded away from zero (bytes, pods); 22P02 / 22003 on bad input';

CREATE FUNCTION paas.quantity_milli(q text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'paas_quantity_milli'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.quantity_milli(text) IS
	'a quantity times 1000 rounded away from zero (CPU millicores)';

CREATE FUNCTION paas.quantity_error(q text, milli boolean) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_quantity_error'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.quantity_error(text, boolean) IS
	'NULL when q is a non-negative quantity that fits bigint, else the problem';

CREATE FUNCTION paas.node_transition(status text, event text) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_node_transition'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_transition(text, text) IS
	'next node status for an event (the C status machine); PT409 when illegal';

CREATE FUNCTION paas.node_transition_allowed(status text, event text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_node_transition_allowed'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_transition_allowed(text, text) IS
	'whether the status machine allows the event in that status';

CREATE FUNCTION paas.node_transitions(OUT status text, OUT event text, OUT next_status text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'paas_node_transitions'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_transitions() IS 'every allowed (status, event) -> status';

CREATE FUNCTION paas.node_health_settings(OUT grace_period interval, OUT offline_after interval)
	AS 'MODULE_PATHNAME', 'paas_node_health_settings'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_health_settings() IS
	'paas.node_grace_period and paas.node_offline_after as intervals';

CREATE FUNCTION paas.node_history_retention() RETURNS interval
	AS 'MODULE_PATHNAME', 'paas_node_history_retention'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_history_retention() IS
	'paas.node_history_retention as an interval; NULL when the history is kept forever';

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

CREATE TABLE paas.nodes (
	id					uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name				text NOT NULL,
	hostname			text NOT NULL,
	ip_address			inet NOT NULL,
	addresses			jsonb NOT NULL DEFAULT '[]',
	architecture		text NOT NULL DEFAULT 'amd64',
	operating_system	text NOT NULL DEFAULT 'linux',
	cpu_cores			paas.node_cores NOT NULL,
	cpu_architecture	text NOT NULL,
	total_memory		text NOT NULL,
	total_storage		text NOT NULL,
	cpu_capacity_m		paas.node_amount NOT NULL DEFAULT 0,
	memory_capacity		paas.node_amount NOT NULL DEFAULT 0,
	storage_capacity	paas.node_amount NOT NULL DEFAULT 0,
	cpu_allocatable_m	paas.node_amount NOT NULL DEFAULT 0,
	memory_allocatable	paas.node_amount NOT NULL DEFAULT 0,
	storage_allocatable	paas.node_amount NOT NULL DEFAULT 0,
	pods_allocatable	paas.node_count NOT NULL DEFAULT 0,
	max_pods			paas.node_pod_limit NOT NULL DEFAULT 30,
	labels				jsonb NOT NULL DEFAULT '{}',
	taints				jsonb NOT NULL DEFAULT '[]',
	conditions			jsonb NOT NULL DEFAULT '[]',
	kubelet_version		text,
	container_runtime	text,
	kernel_version		text,
	os_image			text,
	provider_id			text,
	pod_cidr			text,
	kube_uid			text,
	token_hash			bytea,
	token_issued_at		timestamptz,
	registered_at		timestamptz,
	cordoned			boolean NOT NULL DEFAULT false,
	created_at			timestamptz NOT NULL DEFAULT now(),
	-- Columns a heartbeat writes come last, those of every heartbeat at the
	-- very end: a same-page (HOT) update WAL-logs only the changed middle of
	-- the tuple, so the wide columns above never reach the WAL per beat.
	status				paas.node_status NOT NULL DEFAULT 'PENDING',
	is_ready			boolean NOT NULL DEFAULT false,
	status_changed_at	timestamptz NOT NULL DEFAULT now(),
	allocated_cpu		text NOT NULL DEFAULT '0',
	allocated_memory	text NOT NULL DEFAULT '0',
	allocated_storage	text NOT NULL DEFAULT '0',
	cpu_allocated_m		bigint NOT NULL DEFAULT 0,
	memory_allocated	bigint NOT NULL DEFAULT 0,
	storage_allocated	bigint NOT NULL DEFAULT 0,
	current_pods		paas.node_count NOT NULL DEFAULT 0,
	cpu_used_m			bigint,
	memory_used			bigint,
	storage_used		bigint,
	agent_clock_skew_ms	bigint,
	last_health_check	timestamptz,
	last_heartbeat		timestamptz,
	updated_at			timestamptz NOT NULL DEFAULT now(),
	-- The Kubernetes API's view (bgworker/nodesync.c): when the node was
	-- last seen in a list or watch of /api/v1/nodes (NULL: not known to the
	-- API -- agents and admins only) and its Node's resourceVersion.  Last
	-- so that an upgrade's ADD COLUMN gives the same table.
	kube_seen_at		timestamptz,
	kube_resource_version text,
	-- md5 of the Node object less its resourceVersion, managedFields and
	-- the conditions' lastHeartbeatTime: a kubelet's status post that only
	-- says "still here" is applied without the full write
	kube_digest			text,
	-- of the allocation: the requests of the bound pods paas does not
	-- manage (the capacity check counts paas's own from the instances)
	foreign_cpu_m		bigint NOT NULL DEFAULT 0,
	foreign_memory		bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 70);
CREATE UNIQUE INDEX nodes_name_key ON paas.nodes (name);
CREATE UNIQUE INDEX nodes_hostname_key ON paas.nodes (hostname);
CREATE UNIQUE INDEX nodes_token_key ON paas.nodes (token_hash);
COMMENT ON TABLE paas.nodes IS
	'worker nodes; heartbeats update last_heartbeat in place (HOT, no index on it)';

CREATE TABLE paas.node_transitions (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	node_id		uuid NOT NULL,
	node_name	text NOT NULL,
	from_status	text,
	to_status	text NOT NULL,
	event		text NOT NULL,
	reason		text,
	actor		text NOT NULL,
	at			timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX node_transitions_node_idx ON paas.node_transitions (node_id, id DESC);
CREATE INDEX node_transitions_at_idx ON paas.node_transitions (at);
COMMENT ON TABLE paas.node_transitions IS
	'audit of node status changes, registrations and admin actions (kept after node deletion)';

CREATE TABLE paas.node_join_tokens (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	token_hash	bytea NOT NULL UNIQUE,
	note		text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz,
	revoked_at	timestamptz,
	last_used_at timestamptz
);
COMMENT ON TABLE paas.node_join_tokens IS
	'cluster join tokens (SHA-256 only); any live one registers a node';

------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------

-- Who acts, for the audit: an administrator, a DBA session, or the gateway.
CREATE FUNCTION paas.node_actor(ctx jsonb) RETURNS text
	LANGUAGE sql STABLE
	RETURN CASE WHEN ctx ->> 'userId' IS NOT NULL THEN 'admin:' || (ctx ->> 'userId')
				ELSE 'dba:' || session_user END;
COMMENT ON FUNCTION paas.node_actor(jsonb) IS 'audit actor of an admin call';

-- A quantity field as text: strings as given, numbers with "unit" appended
-- (NULL when unit is NULL: that field takes no numbers).
CREATE FUNCTION paas.qty_of(v jsonb, unit text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}'
							   WHEN 'number' THEN (v #>> '{}') || unit END;
COMMENT ON FUNCTION paas.qty_of(jsonb, text) IS
	'a JSON quantity as text (numbers get the unit suffix), NULL otherwise';

-- Appends an error when v is not a valid non-negative quantity.  What a
-- JSON number means is the field's unit: '' takes it as it is (CPU in
-- cores, counts), 'Mi' / 'Gi' take whole numbers of MB / GB (binary, the
-- original heartbeat's units), NULL refuses numbers (memory and storage
-- everywhere else: a bare number of bytes is a mistake far more often than
-- a meaning).  In C (extension/nodes.c), the rule paas.node_report,
-- paas.node_from_k8s and paas.node_check apply; errs must be an array.
CREATE FUNCTION paas.check_qty(errs jsonb, field text, v jsonb, unit text,
							   milli boolean, required boolean)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'paas_check_qty'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.check_qty(jsonb, text, jsonb, text, boolean, boolean) IS
	'appends a field error when v is not a non-negative Kubernetes quantity';

-- A dotted quad without the cast, anything else through the inet type (C).
CREATE FUNCTION paas.node_is_inet(t text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_node_is_inet'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_is_inet(text) IS 'whether t is an IPv4/IPv6 address (CIDR allowed)';

-- Whether a node may be scheduled on (derived, see the header).
CREATE FUNCTION paas.node_schedulable(n paas.nodes) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN n.status = 'ACTIVE' AND n.is_ready AND NOT n.cordoned;
COMMENT ON FUNCTION paas.node_schedulable(paas.nodes) IS 'ACTIVE, ready and not cordoned';

CREATE FUNCTION paas.node_pct(part bigint, whole bigint) RETURNS numeric
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN whole > 0 AND part IS NOT NULL THEN round(part * 100.0 / whole, 2) END;
COMMENT ON FUNCTION paas.node_pct(bigint, bigint) IS 'part / whole in percent, 2 decimals';

-- The full worker record (the original's 28 fields and more).
CREATE FUNCTION paas.node_json(n paas.nodes) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'id', n.id, 'name', n.name, 'hostname', n.hostname,
		'ipAddress', host(n.ip_address), 'addresses', n.addresses,
		'architecture', n.architecture, 'operatingSystem', n.operating_system,
		'cpuCores', n.cpu_cores, 'cpuArchitecture', n.cpu_architecture,
		'totalMemory', n.total_memory, 'totalStorage', n.total_storage,
		'allocatedCPU', n.allocated_cpu, 'allocatedMemory', n.allocated_memory,
		'allocatedStorage', n.allocated_storage,
		'maxPods', n.max_pods, 'currentPods', n.current_pods,
		'status', n.status, 'isReady', n.is_ready, 'isSchedulable', paas.node_schedulable(n),
		'unschedulable', n.cordoned,
		'lastHeartbeat', paas.iso(n.last_heartbeat), 'lastHealthCheck', paas.iso(n.last_health_check),
		'labels', n.labels, 'taints', n.taints, 'conditions', n.conditions)
	|| jsonb_build_object(
		'kubeletVersion', n.kubelet_version, 'containerRuntime', n.container_runtime,
		'kernelVersion', n.kernel_version, 'osImage', n.os_image,
		'providerId', n.provider_id, 'podCidr', n.pod_cidr, 'kubeUid', n.kube_uid,
		'capacity', jsonb_build_object('cpuMillicores', n.cpu_capacity_m, 'memoryBytes', n.memory_capacity,
									   'storageBytes', n.storage_capacity, 'pods', n.max_pods),
		'allocatable', jsonb_build_object('cpuMillicores', n.cpu_allocatable_m, 'memoryBytes', n.memory_allocatable,
										  'storageBytes', n.storage_allocatable, 'pods', n.pods_allocatable),
		'allocation', jsonb_build_object('cpuMillicores', n.cpu_allocated_m, 'memoryBytes', n.memory_allocated,
										 'storageBytes', n.storage_allocated, 'pods', n.current_pods,
										 'cpuPercent', paas.node_pct(n.cpu_allocated_m, n.cpu_allocatable_m),
										 'memoryPercent', paas.node_pct(n.memory_allocated, n.memory_allocatable),
										 'storagePercent', paas.node_pct(n.storage_allocated, n.storage_allocatable),
										 'podsPercent', paas.node_pct(n.current_pods, n.pods_allocatable)),
		'usage', jsonb_build_object('cpuMillicores', n.cpu_used_m, 'memoryBytes', n.memory_used,
									'storageBytes', n.storage_used,
									'cpuPercent', paas.node_pct(n.cpu_used_m, n.cpu_capacity_m),
									'memoryPercent', paas.node_pct(n.memory_used, n.memory_capacity),
									'storagePercent', paas.node_pct(n.storage_used, n.storage_capacity)),
		'agentClockSkewMs', n.agent_clock_skew_ms,
		'source', CASE WHEN n.kube_seen_at IS NOT NULL THEN 'kubernetes' ELSE 'agent' END,
		'kubeSeenAt', paas.iso(n.kube_seen_at),
		'registeredAt', paas.iso(n.registered_at), 'statusChangedAt', paas.iso(n.status_changed_at),
		'createdAt', paas.iso(n.created_at), 'updatedAt', paas.iso(n.updated_at));
COMMENT ON FUNCTION paas.node_json(paas.nodes) IS 'a worker node as the API prints it';

-- The node of a path segment: its id, or else its name.  PW404
-- (WORKER_NODE_NOT_FOUND) otherwise.
CREATE FUNCTION paas.find_node(key text) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes;
BEGIN
	SELECT * INTO n FROM paas.nodes WHERE id = paas.to_uuid(key) FOR UPDATE;
	IF NOT FOUND THEN
		SELECT * INTO n FROM paas.nodes WHERE name = key FOR UPDATE;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Worker node not found' USING ERRCODE = 'PW404';
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.find_node(text) IS 'locks and returns a node by id or name; PW404 otherwise';

-- The same for reads: no row lock, so an administrator's GET never waits
-- for a heartbeat or a change of that node (nor makes them wait).
CREATE FUNCTION paas.read_node(key text) RETURNS paas.nodes
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes;
BEGIN
	SELECT * INTO n FROM paas.nodes WHERE id = paas.to_uuid(key);
	IF NOT FOUND THEN
		SELECT * INTO n FROM paas.nodes WHERE name = key;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Worker node not found' USING ERRCODE = 'PW404';
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.read_node(text) IS 'a node by id or name, unlocked; PW404 otherwise';

CREATE FUNCTION paas.node_audit(n paas.nodes, from_status text, event text, actor text, reason text)
	RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
		VALUES (n.id, n.name, from_status, n.status, event, actor, left(reason, 500));
	END;
COMMENT ON FUNCTION paas.node_audit(paas.nodes, text, text, text, text) IS
	'records one transition of a node';

-- Applies an event through the status machine, with the side effects of the
-- new status, and records it.  Returns the updated row.
CREATE FUNCTION paas.node_apply(n paas.nodes, event text, actor text, reason text DEFAULT NULL)
	RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	old text := n.status;
	nxt text := paas.node_transition(n.status, event);
BEGIN
	UPDATE paas.nodes
	   SET status = nxt,
		   is_ready = CASE WHEN nxt = 'ACTIVE' AND event LIKE 'admin_%' THEN true
						   WHEN nxt IN ('NOT_READY', 'INACTIVE') AND nxt <> old THEN false
						   ELSE is_ready END,
		   cordoned = CASE event WHEN 'cordon' THEN true WHEN 'uncordon' THEN false ELSE cordoned END,
		   last_health_check = CASE WHEN nxt = 'ACTIVE' AND event LIKE 'admin_%' THEN now()
									ELSE last_health_check END,
		   status_changed_at = CASE WHEN nxt <> old THEN now() ELSE status_changed_at END,
		   updated_at = now()
	 WHERE id = n.id
	RETURNING * INTO n;
	PERFORM paas.node_audit(n, old, event, actor, reason);
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.node_apply(paas.nodes, text, text, text) IS
	'applies a status-machine event to a node (PT409 when illegal) and audits it';

-- Validates a node in the original's field set (after normalisation of a
-- Kubernetes Node object).  "creating": required fields must be present.
-- In C (extension/nodes.c has the rules, with the messages of check_text,
-- check_int, check_enum and check_qty): every new Node of a list is checked.
CREATE FUNCTION paas.node_check(errs jsonb, s jsonb, creating boolean) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'paas_node_check'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_check(jsonb, jsonb, boolean) IS
	'field errors of a node in the original''s field set';

-- The resource fields of a heartbeat or resource report, checked and
-- converted in one C pass (extension/nodes.c): errs lists the field errors
-- ([] when none), absent fields are NULL.  Quantities as text keep what the
-- node sent (numbers with their unit appended).
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

CREATE FUNCTION paas.node_report(r jsonb) RETURNS paas.node_report
	AS 'MODULE_PATHNAME', 'paas_node_report'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_report(jsonb) IS
	'allocation / usage / pod fields of a report: field errors and converted values';

-- A Kubernetes Node object (as `kubectl get node -o json` prints it) in the
-- original's field set plus the extra keys (capacity, allocatable,
-- conditions, ...).  Field errors use the object's own paths.  One pass in
-- C (extension/nodes.c has the rules): the node sync converts every Node of
-- a list through it; a valid spec still goes through paas.node_check.
CREATE FUNCTION paas.node_from_k8s(doc jsonb, OUT spec jsonb, OUT errs jsonb)
	AS 'MODULE_PATHNAME', 'paas_node_from_k8s'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_from_k8s(jsonb) IS
	'a Kubernetes Node object as a node spec, with field errors in the object''s paths';

-- Writes the descriptive fields of specs "specs" (validated) into the nodes
-- "ids" (same length; one statement for them all).  Capacity comes from
-- s.capacity / s.allocatable when given (Kubernetes Node objects), else from
-- cpuCores, totalMemory, totalStorage and maxPods.  Returns the rows written.
CREATE FUNCTION paas.node_write_many(ids uuid[], specs jsonb[]) RETURNS SETOF paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	-- PL/pgSQL keeps the plan of this wide statement (an SQL function plans it at every call)
	RETURN QUERY WITH w AS (
	UPDATE paas.nodes SET
		name = s ->> 'name',
		hostname = s ->> 'hostname',
		ip_address = (s ->> 'ipAddress')::inet,
		addresses = coalesce(s -> 'addresses',
							 jsonb_build_array(jsonb_build_object('type', 'InternalIP', 'address', s ->> 'ipAddress'),
											   jsonb_build_object('type', 'Hostname', 'address', s ->> 'hostname'))),
		architecture = coalesce(s ->> 'architecture', 'amd64'),
		operating_system = coalesce(s ->> 'operatingSystem', 'linux'),
		cpu_cores = (s ->> 'cpuCores')::numeric::int,
		cpu_architecture = s ->> 'cpuArchitecture',
		total_memory = paas.qty_of(s -> 'totalMemory', NULL),
		total_storage = paas.qty_of(s -> 'totalStorage', NULL),
		cpu_capacity_m = paas.quantity_milli(c ->> 'cpu'),
		memory_capacity = paas.quantity_value(c ->> 'memory'),
		storage_capacity = paas.quantity_value(coalesce(c ->> 'ephemeral-storage', '0')),
		cpu_allocatable_m = paas.quantity_milli(a ->> 'cpu'),
		memory_allocatable = paas.quantity_value(a ->> 'memory'),
		storage_allocatable = paas.quantity_value(coalesce(a ->> 'ephemeral-storage', '0')),
		pods_allocatable = paas.quantity_value(coalesce(a ->> 'pods', c ->> 'pods')),
		max_pods = coalesce((s ->> 'maxPods')::numeric::int, max_pods),
		allocated_cpu = coalesce(paas.qty_of(s -> 'allocatedCPU', ''), allocated_cpu),
		allocated_memory = coalesce(paas.qty_of(s -> 'allocatedMemory', NULL), allocated_memory),
		allocated_storage = coalesce(paas.qty_of(s -> 'allocatedStorage', NULL), allocated_storage),
		cpu_allocated_m = coalesce(paas.quantity_milli(paas.qty_of(s -> 'allocatedCPU', '')), cpu_allocated_m),
		memory_allocated = coalesce(paas.quantity_value(paas.qty_of(s -> 'allocatedMemory', NULL)), memory_allocated),
		storage_allocated = coalesce(paas.quantity_value(paas.qty_of(s -> 'allocatedStorage', NULL)), storage_allocated),
		current_pods = coalesce((s ->> 'currentPods')::numeric::int, current_pods),
		labels = coalesce(nullif(s -> 'labels', 'null'), '{}'),
		taints = coalesce(nullif(s -> 'taints', 'null'), '[]'),
		conditions = coalesce(s -> 'conditions', conditions),
		kubelet_version = s ->> 'kubeletVersion',
		container_runtime = s ->> 'containerRuntime',
		kernel_version = s ->> 'kernelVersion',
		os_image = s ->> 'osImage',
		provider_id = s ->> 'providerId',
		pod_cidr = s ->> 'podCidr',
		kube_uid = s ->> 'kubeUid',
		updated_at = now()
	  FROM (SELECT u.node_id, u.s, coalesce(u.s -> 'capacity', u.c) AS c,
				   coalesce(u.s -> 'allocatable', u.s -> 'capacity', u.c) AS a
			  FROM (SELECT node_id, s,
						   jsonb_build_object('cpu', s ->> 'cpuCores', 'memory', s ->> 'totalMemory',
											  'ephemeral-storage', s ->> 'totalStorage', 'pods', s ->> 'maxPods') AS c
					  FROM unnest(ids, specs) AS x(node_id, s)) u) v
	 WHERE paas.nodes.id = v.node_id
	RETURNING paas.nodes.*)
	SELECT * FROM w;
END
$$;
COMMENT ON FUNCTION paas.node_write_many(uuid[], jsonb[]) IS
	'stores the descriptive fields of validated node specs, one statement for many nodes';

CREATE FUNCTION paas.node_write(node_id uuid, s jsonb) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes;
BEGIN
	SELECT * INTO n FROM paas.node_write_many(ARRAY[node_id], ARRAY[s]);
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.node_write(uuid, jsonb) IS 'stores the descriptive fields of a validated node spec';

-- The editable fields of a node in the original's field set (for PUT).
CREATE FUNCTION paas.node_spec(n paas.nodes) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'name', n.name, 'hostname', n.hostname, 'ipAddress', host(n.ip_address),
		'addresses', n.addresses, 'architecture', n.architecture, 'operatingSystem', n.operating_system,
		'cpuCores', n.cpu_cores, 'cpuArchitecture', n.cpu_architecture,
		'totalMemory', n.total_memory, 'totalStorage', n.total_storage, 'maxPods', n.max_pods,
		'labels', n.labels, 'taints', n.taints, 'kubeletVersion', n.kubelet_version,
		'containerRuntime', n.container_runtime, 'kernelVersion', n.kernel_version,
		'osImage', n.os_image, 'providerId', n.provider_id, 'podCidr', n.pod_cidr, 'kubeUid', n.kube_uid,
		'capacity', jsonb_build_object('cpu', n.cpu_capacity_m || 'm', 'memory', n.memory_capacity::text,
									   'ephemeral-storage', n.storage_capacity::text, 'pods', n.max_pods::text),
		'allocatable', jsonb_build_object('cpu', n.cpu_allocatable_m || 'm', 'memory', n.memory_allocatable::text,
										  'ephemeral-storage', n.storage_allocatable::text,
										  'pods', n.pods_allocatable::text));
COMMENT ON FUNCTION paas.node_spec(paas.nodes) IS 'the stored spec of a node, input of an update';

CREATE FUNCTION paas.node_status_event(status text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE status WHEN 'ACTIVE' THEN 'admin_activate' WHEN 'INACTIVE' THEN 'admin_deactivate'
					   WHEN 'MAINTENANCE' THEN 'admin_maintenance' WHEN 'PENDING' THEN 'admin_pending'
					   WHEN 'NOT_READY' THEN 'admin_not_ready' END;
COMMENT ON FUNCTION paas.node_status_event(text) IS 'the admin event that asks for a status';

CREATE FUNCTION paas.node_hostname_taken(host text, except_id uuid) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM paas.nodes WHERE hostname = host AND id IS DISTINCT FROM except_id) THEN
		RAISE EXCEPTION 'Worker node with this hostname already exists' USING ERRCODE = 'PW409';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.node_hostname_taken(text, uuid) IS 'PW409 when another node has this hostname';

------------------------------------------------------------------------------
-- api: admin routes
------------------------------------------------------------------------------

CREATE FUNCTION api.workers_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	lim int;
	off int;
	total bigint;
	rows jsonb;
	pg jsonb;
	sort_col text;
	sort_dir text;
	search text;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'status', false, ARRAY['ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY']);
	errs := paas.check_bool(errs, req, 'isSchedulable', false);
	errs := paas.check_bool(errs, req, 'isReady', false);
	errs := paas.check_text(errs, req, 'search', false, 0, 100);
	errs := paas.check_enum(errs, req, 'sortBy', false,
							ARRAY['name', 'hostname', 'cpuCores', 'totalMemory', 'status', 'createdAt', 'lastHeartbeat']);
	errs := paas.check_enum(errs, req, 'sortOrder', false, ARRAY['asc', 'desc']);
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 10);
	off := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	search := nullif(btrim(req ->> 'search'), '');
	sort_col := CASE coalesce(req ->> 'sortBy', 'createdAt')
		WHEN 'name' THEN 'n.name' WHEN 'hostname' THEN 'n.hostname' WHEN 'cpuCores' THEN 'n.cpu_cores'
		WHEN 'totalMemory' THEN 'n.memory_capacity' WHEN 'status' THEN 'n.status'
		WHEN 'lastHeartbeat' THEN 'n.last_heartbeat' ELSE 'n.created_at' END;
	sort_dir := CASE WHEN req ->> 'sortOrder' = 'asc' THEN 'ASC' ELSE 'DESC' END;

	EXECUTE format($q$
		WITH f AS (
			SELECT n, row_number() OVER (ORDER BY %1$s %2$s NULLS LAST, n.id) AS rn,
				   count(*) OVER () AS total
			  FROM paas.nodes n
			 WHERE ($1 IS NULL OR n.status = $1)
			   AND ($2 IS NULL OR paas.node_schedulable(n) = $2)
			   AND ($3 IS NULL OR n.is_ready = $3)
			   AND ($4 IS NULL OR concat_ws(' ', n.name, n.hostname, host(n.ip_address), n.cpu_architecture,
											n.operating_system) ILIKE '%%' || $4 || '%%'))
		SELECT coalesce(max(total), 0),
			   coalesce(jsonb_agg(paas.node_json(f.n) ORDER BY rn) FILTER (WHERE rn > $6 AND rn <= $6 + $5), '[]')
		  FROM f
		$q$, sort_col, sort_dir)
	INTO total, rows
	USING req ->> 'status', (req ->> 'isSchedulable')::boolean, (req ->> 'isReady')::boolean, search, lim, off;

	pg := paas.pagination(req, total);
	RETURN jsonb_build_object('data', jsonb_build_object('workers', rows, 'pagination', pg), 'pagination', pg);
END
$$;
COMMENT ON FUNCTION api.workers_list(jsonb, jsonb) IS
	'GET /workers: page, limit, status, isSchedulable, isReady, search, sortBy, sortOrder';

CREATE FUNCTION api.workers_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'totalNodes', count(*),
		'nodeStatus', jsonb_build_object(
			'active', count(*) FILTER (WHERE status = 'ACTIVE'),
			'inactive', count(*) FILTER (WHERE status = 'INACTIVE'),
			'maintenance', count(*) FILTER (WHERE status = 'MAINTENANCE'),
			'pending', count(*) FILTER (WHERE status = 'PENDING'),
			'notReady', count(*) FILTER (WHERE status = 'NOT_READY')),
		'nodeCapabilities', jsonb_build_object(
			'schedulable', count(*) FILTER (WHERE paas.node_schedulable(n)),
			'ready', count(*) FILTER (WHERE is_ready),
			'cordoned', count(*) FILTER (WHERE cordoned)),
		'resources', jsonb_build_object(
			'cpu', jsonb_build_object(
				'unit', 'millicores',
				'total', coalesce(sum(cpu_capacity_m), 0), 'allocatable', coalesce(sum(cpu_allocatable_m), 0),
				'allocated', coalesce(sum(cpu_allocated_m), 0), 'used', coalesce(sum(cpu_used_m), 0),
				'utilization', coalesce(paas.node_pct(sum(cpu_allocated_m)::bigint, sum(cpu_allocatable_m)::bigint), 0),
				'usagePercent', coalesce(paas.node_pct(sum(cpu_used_m)::bigint, sum(cpu_capacity_m)::bigint), 0)),
			'memory', jsonb_build_object(
				'unit', 'bytes',
				'total', coalesce(sum(memory_capacity), 0), 'allocatable', coalesce(sum(memory_allocatable), 0),
				'allocated', coalesce(sum(memory_allocated), 0), 'used', coalesce(sum(memory_used), 0),
				'utilization', coalesce(paas.node_pct(sum(memory_allocated)::bigint, sum(memory_allocatable)::bigint), 0),
				'usagePercent', coalesce(paas.node_pct(sum(memory_used)::bigint, sum(memory_capacity)::bigint), 0)),
			'storage', jsonb_build_object(
				'unit', 'bytes',
				'total', coalesce(sum(storage_capacity), 0), 'allocatable', coalesce(sum(storage_allocatable), 0),
				'allocated', coalesce(sum(storage_allocated), 0), 'used', coalesce(sum(storage_used), 0),
				'utilization', coalesce(paas.node_pct(sum(storage_allocated)::bigint, sum(storage_allocatable)::bigint), 0),
				'usagePercent', coalesce(paas.node_pct(sum(storage_used)::bigint, sum(storage_capacity)::bigint), 0)),
			'pods', jsonb_build_object(
				'maxTotal', coalesce(sum(max_pods), 0), 'currentTotal', coalesce(sum(current_pods), 0),
				'utilization', coalesce(paas.node_pct(sum(current_pods)::bigint, sum(max_pods)::bigint), 0))))
	  INTO r
	  FROM paas.nodes n;
	RETURN r;
END
$$;
COMMENT ON FUNCTION api.workers_stats(jsonb, jsonb) IS
	'GET /workers/stats: counts by status, capacity vs allocation and usage totals';

CREATE FUNCTION api.workers_online(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object('nodes', coalesce(jsonb_agg(paas.node_json(n) ORDER BY n.name), '[]'),
							  'count', count(*))
	  INTO r FROM paas.nodes n WHERE paas.node_schedulable(n);
	RETURN r;
END
$$;
COMMENT ON FUNCTION api.workers_online(jsonb, jsonb) IS 'GET /workers/online: ACTIVE, ready and schedulable nodes';

CREATE FUNCTION api.workers_offline(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object('nodes', coalesce(jsonb_agg(paas.node_json(n) ORDER BY n.name), '[]'),
							  'count', count(*))
	  INTO r FROM paas.nodes n WHERE NOT paas.node_schedulable(n);
	RETURN r;
END
$$;
COMMENT ON FUNCTION api.workers_offline(jsonb, jsonb) IS 'GET /workers/offline: every node that is not online';

CREATE FUNCTION api.workers_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN paas.node_json(paas.read_node(req ->> 'nodeId'));
END
$$;
COMMENT ON FUNCTION api.workers_get(jsonb, jsonb) IS 'GET /workers/:nodeId (id or name)';

CREATE FUNCTION api.workers_transitions(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes;
	errs jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	errs := paas.check_int('[]', req, 'limit', false, 1, 500);
	PERFORM paas.raise_if_invalid(errs);
	n := paas.read_node(req ->> 'nodeId');
	RETURN jsonb_build_object('node', jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status),
		'transitions', coalesce((SELECT jsonb_agg(jsonb_build_object(
				'from', t.from_status, 'to', t.to_status, 'event', t.event, 'reason', t.reason,
				'actor', t.actor, 'at', paas.iso(t.at)) ORDER BY t.id DESC)
			FROM (SELECT * FROM paas.node_transitions WHERE node_id = n.id
				   ORDER BY id DESC LIMIT coalesce((req ->> 'limit')::int, 50)) t), '[]'));
END
$$;
COMMENT ON FUNCTION api.workers_transitions(jsonb, jsonb) IS
	'GET /workers/:nodeId/transitions: the audit trail of a node, newest first';

CREATE FUNCTION api.workers_create(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.node_check(errs, req, true);
	errs := paas.check_enum(errs, req, 'status', false, ARRAY['ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY']);
	errs := paas.check_bool(errs, req, 'isReady', false);
	errs := paas.check_bool(errs, req, 'isSchedulable', false);
	PERFORM paas.raise_if_invalid(errs);
	IF EXISTS (SELECT 1 FROM paas.nodes WHERE name = req ->> 'name') THEN
		RAISE EXCEPTION 'Worker node with this name already exists' USING ERRCODE = 'PW409';
	END IF;
	PERFORM paas.node_hostname_taken(req ->> 'hostname', NULL);
	INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage,
							status, is_ready, cordoned)
	VALUES (req ->> 'name', req ->> 'hostname', (req ->> 'ipAddress')::inet, 1, '', '0', '0',
			coalesce(req ->> 'status', 'PENDING'), coalesce((req ->> 'isReady')::boolean, false),
			NOT coalesce((req ->> 'isSchedulable')::boolean, true))
	RETURNING * INTO n;
	n := paas.node_write(n.id, req || jsonb_build_object('maxPods', coalesce(req -> 'maxPods', '30')));
	PERFORM paas.node_audit(n, NULL, 'admin_create', paas.node_actor(ctx), NULL);
	RETURN paas.node_json(n);
END
$$;
COMMENT ON FUNCTION api.workers_create(jsonb, jsonb) IS
	'POST /workers: a node in the original field set (default PENDING; it gets a token by registering)';

CREATE FUNCTION api.workers_update(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
	body jsonb;
	s jsonb;
	fields constant text[] := ARRAY['name', 'hostname', 'ipAddress', 'architecture', 'operatingSystem',
		'cpuCores', 'cpuArchitecture', 'totalMemory', 'totalStorage', 'allocatedCPU', 'allocatedMemory',
		'allocatedStorage', 'maxPods', 'currentPods', 'status', 'isReady', 'isSchedulable', 'labels', 'taints',
		'kubeletVersion', 'containerRuntime', 'kernelVersion', 'osImage'];
	actor text := paas.node_actor(ctx);
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	SELECT coalesce(jsonb_object_agg(key, value), '{}') INTO body
	  FROM jsonb_each(req) WHERE key = ANY (fields);
	errs := paas.node_check(errs, body, false);
	errs := paas.check_enum(errs, body, 'status', false, ARRAY['ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY']);
	errs := paas.check_bool(errs, body, 'isReady', false);
	errs := paas.check_bool(errs, body, 'isSchedulable', false);
	IF body = '{}' THEN
		errs := paas.add_err(errs, '', 'at least one field to update is required');
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	n := paas.find_node(req ->> 'nodeId');
	IF body ? 'name' AND EXISTS (SELECT 1 FROM paas.nodes WHERE name = body ->> 'name' AND id <> n.id) THEN
		RAISE EXCEPTION 'Worker node with this name already exists' USING ERRCODE = 'PW409';
	END IF;
	IF body ? 'hostname' THEN
		PERFORM paas.node_hostname_taken(body ->> 'hostname', n.id);
	END IF;
	s := paas.node_spec(n);
	IF body ?| ARRAY['cpuCores', 'totalMemory', 'totalStorage', 'maxPods'] THEN
		s := s - 'capacity' - 'allocatable';
	END IF;
	IF body ?| ARRAY['ipAddress', 'hostname'] THEN
		s := s - 'addresses';
	END IF;
	n := paas.node_write(n.id, s || (body - 'status' - 'isReady' - 'isSchedulable'));
	IF body ? 'isReady' THEN
		UPDATE paas.nodes SET is_ready = (body ->> 'isReady')::boolean WHERE id = n.id RETURNING * INTO n;
	END IF;
	IF body ? 'status' THEN
		n := paas.node_apply(n, paas.node_status_event(body ->> 'status'), actor, 'updated by an administrator');
	END IF;
	IF body ? 'isSchedulable' THEN
		n := paas.node_apply(n, CASE WHEN (body ->> 'isSchedulable')::boolean THEN 'uncordon' ELSE 'cordon' END,
							 actor, 'updated by an administrator');
	END IF;
	RETURN paas.node_json(n);
END
$$;
COMMENT ON FUNCTION api.workers_update(jsonb, jsonb) IS
	'PUT /workers/:nodeId: any field of the original set; status and isSchedulable go through the status machine';

CREATE FUNCTION api.workers_delete(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes;
BEGIN
	PERFORM paas.require_admin(ctx);
	n := paas.find_node(req ->> 'nodeId');
	DELETE FROM paas.nodes WHERE id = n.id;
	INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
	VALUES (n.id, n.name, n.status, n.status, 'admin_delete', paas.node_actor(ctx), 'deleted; node token revoked');
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status, 'hostname', n.hostname,
							  'ipAddress', host(n.ip_address));
END
$$;
COMMENT ON FUNCTION api.workers_delete(jsonb, jsonb) IS
	'DELETE /workers/:nodeId: removes the node (its token stops working; the audit stays)';

CREATE FUNCTION api.workers_set_schedulable(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
	v boolean;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	IF NOT req ? 'schedulable' AND req ? 'isSchedulable' THEN
		req := req || jsonb_build_object('schedulable', req -> 'isSchedulable');
	END IF;
	errs := paas.check_bool(errs, req, 'schedulable', true);
	errs := paas.check_text(errs, req, 'reason', false, 0, 500);
	PERFORM paas.raise_if_invalid(errs);
	v := (req ->> 'schedulable')::boolean;
	-- an API node: the API first (32_node_actions.sql)
	n := paas.node_set_cordon(req ->> 'nodeId', NOT v, paas.node_actor(ctx), req ->> 'reason');
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'isSchedulable', paas.node_schedulable(n),
							  'unschedulable', n.cordoned, 'isReady', n.is_ready, 'status', n.status,
							  'updatedAt', paas.iso(n.updated_at));
END
$$;
COMMENT ON FUNCTION api.workers_set_schedulable(jsonb, jsonb) IS
	'PATCH /workers/:nodeId/schedulable {schedulable}: cordon / uncordon, in the API first for an API node (409 while INACTIVE or MAINTENANCE, 502 when the API refuses)';

CREATE FUNCTION api.workers_set_status(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
	old text;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_enum(errs, req, 'status', true, ARRAY['ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY']);
	errs := paas.check_text(errs, req, 'reason', false, 0, 500);
	PERFORM paas.raise_if_invalid(errs);
	old := (paas.read_node(req ->> 'nodeId')).status;
	-- an API node: MAINTENANCE = cordon + drain (32_node_actions.sql)
	n := paas.node_set_status(req ->> 'nodeId', req ->> 'status', paas.node_actor(ctx), req ->> 'reason');
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status, 'previousStatus', old,
							  'isReady', n.is_ready, 'isSchedulable', paas.node_schedulable(n),
							  'updatedAt', paas.iso(n.updated_at),
							  'drain', (SELECT paas.node_drain_json(d) FROM paas.node_drains d
										 WHERE d.node_id = n.id AND d.state IN ('pending', 'running')));
END
$$;
COMMENT ON FUNCTION api.workers_set_status(jsonb, jsonb) IS
	'PATCH /workers/:nodeId/status {status, reason?}: through the status machine (409 when illegal)';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.workers_list(jsonb, jsonb)',
		'api.workers_stats(jsonb, jsonb)', 'api.workers_online(jsonb, jsonb)',
		'api.workers_offline(jsonb, jsonb)', 'api.workers_get(jsonb, jsonb)',
		'api.workers_transitions(jsonb, jsonb)', 'api.workers_create(jsonb, jsonb)',
		'api.workers_update(jsonb, jsonb)', 'api.workers_delete(jsonb, jsonb)',
		'api.workers_set_schedulable(jsonb, jsonb)', 'api.workers_set_status(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;
