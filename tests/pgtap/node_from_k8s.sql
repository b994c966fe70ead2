-- paas.node_from_k8s, paas.node_check and paas.node_digest
-- (extension/nodes.c) give what their former SQL definitions, kept below as
-- the references, give -- the spec and the field errors, the errors of the
-- check (of those specs, and of request bodies), and the digest (or its
-- error) -- on the Node objects of tests/fixtures/nodes and on
-- variants of each: odd quantities, missing and mistyped fields, addresses
-- of every kind, Lists, odd shapes.  In one transaction, rolled back.
BEGIN;
SELECT plan(18);

\set minikube `cat ../fixtures/nodes/minikube.json`
\set k3d `cat ../fixtures/nodes/k3d-server.json`
\set k3s `cat ../fixtures/nodes/k3s-server.json`
\set kubeadm `cat ../fixtures/nodes/kubeadm-notready.json`
\set agent `cat ../fixtures/nodes/k3s-agent-cordoned.json`

CREATE TEMP TABLE fx (name text, d jsonb);
INSERT INTO fx VALUES ('minikube', :'minikube'), ('k3d', :'k3d'), ('k3s', :'k3s'),
	('kubeadm', :'kubeadm'), ('agent', :'agent');

-- the former definitions, the references
CREATE FUNCTION pg_temp.check_qty_sql(errs jsonb, field text, v jsonb, unit text,
							   milli boolean, required boolean)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	msg text;
BEGIN
	IF v IS NULL OR v = 'null'::jsonb THEN
		RETURN CASE WHEN required THEN paas.add_err(errs, field, field || ' is required') ELSE errs END;
	END IF;
	IF jsonb_typeof(v) NOT IN ('string', 'number') THEN
		RETURN paas.add_err(errs, field, field || ' must be a quantity string (e.g. 500m, 16Gi)');
	END IF;
	IF jsonb_typeof(v) = 'number' AND unit IS NULL THEN
		RETURN paas.add_err(errs, field, field || ' must be a quantity string such as "16Gi" (a number has no unit)');
	END IF;
	IF jsonb_typeof(v) = 'number' AND unit <> '' AND (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric) THEN
		RETURN paas.add_err(errs, field, format('%s must be a whole number of %s, or a quantity string',
			field, CASE unit WHEN 'Mi' THEN 'MB (MiB)' ELSE 'GB (GiB)' END));
	END IF;
	msg := paas.quantity_error(paas.qty_of(v, unit), milli);
	IF msg IS NOT NULL THEN
		RETURN paas.add_err(errs, field, format('%s is not a valid quantity: %s', field, msg));
	END IF;
	RETURN errs;
END
$$;

CREATE FUNCTION pg_temp.node_is_inet_sql(t text) RETURNS boolean
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
	-- a plain dotted quad is valid without the cast's subtransaction
	IF t ~ '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$' THEN
		RETURN true;
	END IF;
	PERFORM t::inet;
	RETURN true;
EXCEPTION WHEN invalid_text_representation THEN
	RETURN false;
END
$$;

CREATE FUNCTION pg_temp.node_check_sql(errs jsonb, s jsonb, creating boolean) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	f text;
	v jsonb;
BEGIN
	errs := paas.check_text(errs, s, 'name', creating, 2, 253);
	IF jsonb_typeof(s -> 'name') = 'string'
	   AND s ->> 'name' !~ '^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$' THEN
		errs := paas.add_err(errs, 'name',
			'name may hold only letters, digits, ".", "-" and "_", and must start and end with a letter or digit');
	END IF;
	errs := paas.check_text(errs, s, 'hostname', creating, 1, 255);
	errs := paas.check_text(errs, s, 'ipAddress', creating, 2, 64);
	IF jsonb_typeof(s -> 'ipAddress') = 'string' AND NOT pg_temp.node_is_inet_sql(s ->> 'ipAddress') THEN
		errs := paas.add_err(errs, 'ipAddress', 'ipAddress must be a valid IP address');
	END IF;
	errs := paas.check_enum(errs, s, 'architecture', false,
							ARRAY['amd64', 'arm64', 'arm', '386', 'ppc64le', 's390x', 'riscv64']);
	errs := paas.check_text(errs, s, 'operatingSystem', false, 1, 64);
	errs := paas.check_int(errs, s, 'cpuCores', creating, 1, 100000);
	errs := paas.check_text(errs, s, 'cpuArchitecture', creating, 1, 255);
	-- memory and storage: quantity strings only (the original refused
	-- numbers here: "must be a string"); CPU: a number is cores
	errs := pg_temp.check_qty_sql(errs, 'totalMemory', s -> 'totalMemory', NULL, false, creating);
	errs := pg_temp.check_qty_sql(errs, 'totalStorage', s -> 'totalStorage', NULL, false, creating);
	errs := pg_temp.check_qty_sql(errs, 'allocatedCPU', s -> 'allocatedCPU', '', true, false);
	errs := pg_temp.check_qty_sql(errs, 'allocatedMemory', s -> 'allocatedMemory', NULL, false, false);
	errs := pg_temp.check_qty_sql(errs, 'allocatedStorage', s -> 'allocatedStorage', NULL, false, false);
	errs := paas.check_int(errs, s, 'maxPods', false, 1, 1000000);
	errs := paas.check_int(errs, s, 'currentPods', false, 0, 1000000);
	FOREACH f IN ARRAY ARRAY['kubeletVersion', 'containerRuntime', 'kernelVersion', 'osImage'] LOOP
		errs := paas.check_text(errs, s, f, false, 0, 255);
	END LOOP;
	v := s -> 'labels';
	IF v IS NOT NULL AND v <> 'null'::jsonb THEN
		IF jsonb_typeof(v) <> 'object' THEN
			errs := paas.add_err(errs, 'labels', 'labels must be an object of strings');
		ELSE
			SELECT errs || coalesce(jsonb_agg(jsonb_build_object('field', 'labels.' || key,
						'message', format('"labels.%s" must be a string of at most 63 characters', key))), '[]')
			  INTO errs
			  FROM jsonb_each(v)
			 WHERE jsonb_typeof(value) <> 'string' OR char_length(value #>> '{}') > 63
				OR char_length(key) > 317;
		END IF;
	END IF;
	v := s -> 'taints';
	IF v IS NOT NULL AND v <> 'null'::jsonb THEN
		IF jsonb_typeof(v) <> 'array' THEN
			errs := paas.add_err(errs, 'taints', 'taints must be an array');
		ELSE
			SELECT errs || coalesce(jsonb_agg(jsonb_build_object('field', 'taints.' || (i - 1),
						'message', 'a taint needs a string "key", an optional string "value" and an "effect" of NoSchedule, PreferNoSchedule or NoExecute')), '[]')
			  INTO errs
			  FROM jsonb_array_elements(v) WITH ORDINALITY AS t(e, i)
			 WHERE jsonb_typeof(e) <> 'object'
				OR jsonb_typeof(e -> 'key') IS DISTINCT FROM 'string'
				OR (e ? 'value' AND jsonb_typeof(e -> 'value') NOT IN ('string', 'null'))
				OR NOT coalesce(e ->> 'effect' = ANY (ARRAY['NoSchedule', 'PreferNoSchedule', 'NoExecute']), false);
		END IF;
	END IF;
	RETURN errs;
END
$$;

CREATE FUNCTION pg_temp.node_digest_sql(x jsonb) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
	SELECT md5(jsonb_build_array(
		x - '{apiVersion,kind,metadata,status}'::text[],
		(x -> 'metadata') - '{resourceVersion,managedFields}'::text[],
		(x -> 'status') - 'conditions',
		(SELECT jsonb_agg(c - 'lastHeartbeatTime') FROM jsonb_array_elements(
			CASE WHEN jsonb_typeof(x #> '{status,conditions}') = 'array'
				 THEN x #> '{status,conditions}' ELSE '[]' END) c))::text)
$$;

CREATE FUNCTION pg_temp.node_from_k8s_sql(doc jsonb, OUT spec jsonb, OUT errs jsonb)
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	md jsonb;
	st jsonb;
	sp jsonb;
	ni jsonb;
	cap jsonb;
	alloc jsonb;
	addrs jsonb;
	ip text;
	host text;
	ready text;
	k text;
	qty jsonb := '{}';
BEGIN
	errs := '[]';
	IF doc ->> 'kind' = 'List' THEN
		IF jsonb_typeof(doc -> 'items') <> 'array' OR jsonb_array_length(doc -> 'items') <> 1 THEN
			errs := paas.add_err(errs, 'items', 'a List must hold exactly one Node');
			RETURN;
		END IF;
		doc := doc -> 'items' -> 0;
	END IF;
	IF doc ->> 'kind' IS DISTINCT FROM 'Node' THEN
		errs := paas.add_err(errs, 'kind', 'kind must be Node');
	END IF;
	md := CASE WHEN jsonb_typeof(doc -> 'metadata') = 'object' THEN doc -> 'metadata' ELSE '{}' END;
	st := CASE WHEN jsonb_typeof(doc -> 'status') = 'object' THEN doc -> 'status' ELSE '{}' END;
	sp := CASE WHEN jsonb_typeof(doc -> 'spec') = 'object' THEN doc -> 'spec' ELSE '{}' END;
	ni := CASE WHEN jsonb_typeof(st -> 'nodeInfo') = 'object' THEN st -> 'nodeInfo' ELSE '{}' END;
	IF jsonb_typeof(md -> 'name') IS DISTINCT FROM 'string' THEN
		errs := paas.add_err(errs, 'metadata.name', 'metadata.name is required');
	END IF;
	IF jsonb_typeof(st -> 'capacity') IS DISTINCT FROM 'object' THEN
		errs := paas.add_err(errs, 'status.capacity', 'status.capacity is required');
		RETURN;
	END IF;
	cap := st -> 'capacity';
	alloc := CASE WHEN jsonb_typeof(st -> 'allocatable') = 'object' THEN st -> 'allocatable' ELSE '{}' END;
	-- Kubernetes prints every quantity as a string; a number is taken for
	-- CPU (cores) and pods only, as for the original field set
	errs := pg_temp.check_qty_sql(errs, 'status.capacity.cpu', cap -> 'cpu', '', true, true);
	errs := pg_temp.check_qty_sql(errs, 'status.capacity.memory', cap -> 'memory', NULL, false, true);
	errs := pg_temp.check_qty_sql(errs, 'status.capacity.ephemeral-storage', cap -> 'ephemeral-storage', NULL, false, false);
	errs := pg_temp.check_qty_sql(errs, 'status.capacity.pods', cap -> 'pods', '', false, false);
	FOREACH k IN ARRAY ARRAY['cpu', 'memory', 'ephemeral-storage', 'pods'] LOOP
		errs := pg_temp.check_qty_sql(errs, 'status.allocatable.' || k, alloc -> k,
							   CASE WHEN k IN ('cpu', 'pods') THEN '' END, k = 'cpu', false);
	END LOOP;
	addrs := CASE WHEN jsonb_typeof(st -> 'addresses') = 'array' THEN st -> 'addresses' ELSE '[]' END;
	SELECT a ->> 'address' INTO ip FROM jsonb_array_elements(addrs) WITH ORDINALITY x(a, i)
	 WHERE a ->> 'type' IN ('InternalIP', 'ExternalIP')
	 ORDER BY a ->> 'type' = 'ExternalIP', i LIMIT 1;
	ip := coalesce(ip, md -> 'annotations' ->> 'k3s.io/internal-ip', md -> 'labels' ->> 'k3s.io/internal-ip',
				   md -> 'annotations' ->> 'alpha.kubernetes.io/provided-node-ip');
	IF ip IS NULL THEN
		errs := paas.add_err(errs, 'status.addresses', 'status.addresses must hold an InternalIP or ExternalIP');
	END IF;
	IF jsonb_array_length(errs) > 0 THEN
		RETURN;
	END IF;
	SELECT a ->> 'address' INTO host FROM jsonb_array_elements(addrs) a
	 WHERE a ->> 'type' = 'Hostname' LIMIT 1;
	SELECT c ->> 'status' INTO ready FROM jsonb_array_elements(
		CASE WHEN jsonb_typeof(st -> 'conditions') = 'array' THEN st -> 'conditions' ELSE '[]' END) c
	 WHERE c ->> 'type' = 'Ready' LIMIT 1;
	FOREACH k IN ARRAY ARRAY['cpu', 'memory', 'ephemeral-storage', 'pods'] LOOP
		qty := qty || jsonb_build_object(k, coalesce(cap ->> k, CASE k WHEN 'pods' THEN '110' ELSE '0' END));
	END LOOP;
	spec := jsonb_build_object(
		'name', md -> 'name',
		'hostname', coalesce(host, md -> 'labels' ->> 'kubernetes.io/hostname', md ->> 'name'),
		'ipAddress', ip,
		'addresses', addrs,
		'architecture', coalesce(ni ->> 'architecture', md -> 'labels' ->> 'kubernetes.io/arch', 'amd64'),
		'operatingSystem', coalesce(nullif(ni ->> 'operatingSystem', ''), 'linux'),
		'cpuCores', greatest(1, ceil(paas.quantity_milli(qty ->> 'cpu') / 1000.0)),
		'cpuArchitecture', coalesce(nullif(ni ->> 'architecture', ''), 'unknown'),
		'totalMemory', qty ->> 'memory',
		'totalStorage', qty ->> 'ephemeral-storage',
		'maxPods', greatest(1, paas.quantity_value(qty ->> 'pods')),
		'labels', coalesce(md -> 'labels', '{}'),
		'taints', coalesce(sp -> 'taints', '[]'),
		'kubeletVersion', nullif(ni ->> 'kubeletVersion', ''),
		'containerRuntime', nullif(ni ->> 'containerRuntimeVersion', ''),
		'kernelVersion', nullif(ni ->> 'kernelVersion', ''),
		'osImage', nullif(ni ->> 'osImage', ''))
	|| jsonb_build_object(
		'capacity', qty,
		'allocatable', jsonb_build_object(
			'cpu', coalesce(alloc ->> 'cpu', qty ->> 'cpu'),
			'memory', coalesce(alloc ->> 'memory', qty ->> 'memory'),
			'ephemeral-storage', coalesce(alloc ->> 'ephemeral-storage', qty ->> 'ephemeral-storage'),
			'pods', coalesce(alloc ->> 'pods', qty ->> 'pods')),
		'conditions', coalesce(st -> 'conditions', '[]'),
		'providerId', sp -> 'providerID',
		'podCidr', sp -> 'podCIDR',
		'kubeUid', md -> 'uid',
		'unschedulable', coalesce(sp -> 'unschedulable', 'false'),
		'isReady', coalesce(ready, 'True') = 'True');
END
$$;


-- variants of every fixture: (category, label, path, value); a NULL value
-- removes the path
CREATE TEMP TABLE variant (cat text, label text, path text[], v jsonb);
INSERT INTO variant VALUES
	('fixture', 'as printed', '{kind}', '"Node"'),
	('fixture', 'a list''s item (no kind)', '{kind}', NULL),
	('fixture', 'another kind', '{kind}', '"Pod"'),
	('fixture', 'kind a number', '{kind}', '5'),
	('quantity', 'cpu a number', '{status,capacity,cpu}', '4'),
	('quantity', 'cpu a fraction', '{status,capacity,cpu}', '1.5'),
	('quantity', 'cpu millicores', '{status,capacity,cpu}', '"2500m"'),
	('quantity', 'cpu 1m', '{status,capacity,cpu}', '"1m"'),
	('quantity', 'cpu exponent', '{status,capacity,cpu}', '"1e3"'),
	('quantity', 'cpu negative', '{status,capacity,cpu}', '"-1"'),
	('quantity', 'cpu nonsense', '{status,capacity,cpu}', '"four"'),
	('quantity', 'cpu huge', '{status,capacity,cpu}', '"100E"'),
	('quantity', 'cpu null', '{status,capacity,cpu}', 'null'),
	('quantity', 'cpu absent', '{status,capacity,cpu}', NULL),
	('quantity', 'cpu an object', '{status,capacity,cpu}', '{"v": 1}'),
	('quantity', 'memory a number', '{status,capacity,memory}', '8000000'),
	('quantity', 'memory decimal SI', '{status,capacity,memory}', '"8G"'),
	('quantity', 'memory fraction', '{status,capacity,memory}', '"1.5Gi"'),
	('quantity', 'memory absent', '{status,capacity,memory}', NULL),
	('quantity', 'memory true', '{status,capacity,memory}', 'true'),
	('quantity', 'storage absent', '{status,capacity,ephemeral-storage}', NULL),
	('quantity', 'storage plain bytes', '{status,capacity,ephemeral-storage}', '"1073741824"'),
	('quantity', 'storage bad suffix', '{status,capacity,ephemeral-storage}', '"10GB"'),
	('quantity', 'pods a number', '{status,capacity,pods}', '250'),
	('quantity', 'pods a fraction', '{status,capacity,pods}', '2.5'),
	('quantity', 'pods zero', '{status,capacity,pods}', '"0"'),
	('quantity', 'pods beyond the limit', '{status,capacity,pods}', '"2M"'),
	('quantity', 'pods nonsense', '{status,capacity,pods}', '"many"'),
	('quantity', 'allocatable pods negative', '{status,allocatable,pods}', '"-1"'),
	('quantity', 'pods absent', '{status,capacity,pods}', NULL),
	('quantity', 'pods null', '{status,capacity,pods}', 'null'),
	('quantity', 'allocatable absent', '{status,allocatable}', NULL),
	('quantity', 'allocatable a list', '{status,allocatable}', '["1"]'),
	('quantity', 'allocatable cpu a number', '{status,allocatable,cpu}', '3.5'),
	('quantity', 'allocatable cpu bad', '{status,allocatable,cpu}', '"3.5.1"'),
	('quantity', 'allocatable memory a number', '{status,allocatable,memory}', '1024'),
	('quantity', 'allocatable memory null', '{status,allocatable,memory}', 'null'),
	('quantity', 'allocatable storage negative', '{status,allocatable,ephemeral-storage}', '"-5Gi"'),
	('quantity', 'allocatable pods absent', '{status,allocatable,pods}', NULL),
	('missing', 'no metadata', '{metadata}', NULL),
	('missing', 'metadata a string', '{metadata}', '"m"'),
	('missing', 'no name', '{metadata,name}', NULL),
	('missing', 'name a number', '{metadata,name}', '7'),
	('missing', 'name not a DNS name', '{metadata,name}', '"-bad name-"'),
	('missing', 'no uid', '{metadata,uid}', NULL),
	('missing', 'no labels', '{metadata,labels}', NULL),
	('missing', 'labels null', '{metadata,labels}', 'null'),
	('missing', 'labels a list', '{metadata,labels}', '["a"]'),
	('missing', 'a label not a string', '{metadata,labels}', '{"a": 1, "kubernetes.io/arch": "arm64"}'),
	('missing', 'no status', '{status}', NULL),
	('missing', 'status a list', '{status}', '[]'),
	('missing', 'no capacity', '{status,capacity}', NULL),
	('missing', 'capacity a string', '{status,capacity}', '"4"'),
	('missing', 'no nodeInfo', '{status,nodeInfo}', NULL),
	('missing', 'nodeInfo empty strings', '{status,nodeInfo}',
		'{"architecture": "", "operatingSystem": "", "kubeletVersion": "", "osImage": "", "kernelVersion": "", "containerRuntimeVersion": ""}'),
	('missing', 'architecture unknown to paas', '{status,nodeInfo,architecture}', '"mips"'),
	('missing', 'architecture null', '{status,nodeInfo,architecture}', 'null'),
	('missing', 'kubelet version a number', '{status,nodeInfo,kubeletVersion}', '130'),
	('missing', 'no spec', '{spec}', NULL),
	('missing', 'spec a list', '{spec}', '[1]'),
	('missing', 'taints null', '{spec,taints}', 'null'),
	('missing', 'taints bad', '{spec,taints}', '[{"key": 1}, "x", {"key": "k", "effect": "NoExecute"}]'),
	('missing', 'unschedulable', '{spec,unschedulable}', 'true'),
	('missing', 'unschedulable a string', '{spec,unschedulable}', '"yes"'),
	('missing', 'providerID and podCIDR', '{spec}', '{"providerID": "k3s://x", "podCIDR": "10.42.0.0/24"}'),
	('missing', 'no conditions', '{status,conditions}', NULL),
	('missing', 'conditions an object', '{status,conditions}', '{"type": "Ready"}'),
	('missing', 'Ready without status', '{status,conditions}', '[{"type": "Ready"}]'),
	('missing', 'Ready False after another', '{status,conditions}',
		'[{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "False"}, {"type": "Ready", "status": "True"}]'),
	('missing', 'Ready Unknown', '{status,conditions}', '[null, 3, {"type": "Ready", "status": "Unknown"}]'),
	('address', 'no addresses', '{status,addresses}', NULL),
	('address', 'addresses empty', '{status,addresses}', '[]'),
	('address', 'addresses an object', '{status,addresses}', '{"type": "InternalIP", "address": "10.0.0.1"}'),
	('address', 'ExternalIP only', '{status,addresses}', '[{"type": "ExternalIP", "address": "203.0.113.5"}]'),
	('address', 'ExternalIP before InternalIP', '{status,addresses}',
		'[{"type": "ExternalIP", "address": "203.0.113.5"}, {"type": "InternalIP", "address": "10.0.0.2"}]'),
	('address', 'two InternalIPs', '{status,addresses}',
		'[{"type": "InternalIP", "address": "10.0.0.3"}, {"type": "InternalIP", "address": "10.0.0.4"}]'),
	('address', 'InternalIP without address', '{status,addresses}',
		'[{"type": "InternalIP"}, {"type": "ExternalIP", "address": "203.0.113.6"}]'),
	('address', 'InternalIPv6', '{status,addresses}', '[{"type": "InternalIP", "address": "fd00::1"}]'),
	('address', 'not an address', '{status,addresses}', '[{"type": "InternalIP", "address": "10.0.0.256"}]'),
	('address', 'an address number', '{status,addresses}', '[{"type": "InternalIP", "address": 167772161}]'),
	('address', 'an address object', '{status,addresses}', '[{"type": "InternalIP", "address": {"ip": "10.0.0.1"}}]'),
	('address', 'too short', '{status,addresses}', '[{"type": "InternalIP", "address": "1"}]'),
	('address', 'odd elements', '{status,addresses}',
		'[null, "10.0.0.9", ["InternalIP"], {"type": 1, "address": "x"}, {"type": "Hostname", "address": "h-1"}, {"type": "InternalIP", "address": "10.0.0.7"}]'),
	('address', 'Hostname without address', '{status,addresses}',
		'[{"type": "Hostname"}, {"type": "Hostname", "address": "h-2"}, {"type": "InternalIP", "address": "10.0.0.8"}]'),
	('address', 'Hostname empty', '{status,addresses}', '[{"type": "Hostname", "address": ""}, {"type": "InternalIP", "address": "10.0.0.8"}]'),
	('address', 'k3s annotation', '{status,addresses}', '[{"type": "Hostname", "address": "h-3"}]'),
	('address', 'annotations only', '{metadata,annotations}',
		'{"alpha.kubernetes.io/provided-node-ip": "10.1.1.1", "k3s.io/internal-ip": "10.1.1.2"}');

-- each fixture with each variant; for "annotations only" and "k3s
-- annotation" the addresses go too, so that the annotations count
CREATE TEMP TABLE node_case AS
SELECT v.cat, f.name || ': ' || v.label AS label,
	   CASE WHEN v.v IS NULL THEN x.d #- v.path ELSE jsonb_set(x.d, v.path, v.v) END AS doc
  FROM fx f CROSS JOIN variant v
	   CROSS JOIN LATERAL (SELECT CASE WHEN v.label IN ('annotations only') THEN f.d #- '{status,addresses}'
									   ELSE f.d END AS d) x;
-- whole documents, not Nodes, and Lists
INSERT INTO node_case VALUES
	('list', 'NULL', NULL), ('list', 'a number', '5'), ('list', 'a string', '"Node"'), ('list', 'an array', '[{"kind": "Node"}]'),
	('list', 'empty object', '{}'), ('list', 'kind only', '{"kind": "Node"}'),
	('list', 'a List without items', '{"kind": "List"}'),
	('list', 'a List of none', '{"kind": "List", "items": []}'),
	('list', 'a List with items null', '{"kind": "List", "items": null}'),
	('list', 'a List with items an object', '{"kind": "List", "items": {"kind": "Node"}}'),
	('list', 'a List of a number', '{"kind": "List", "items": [5]}');
INSERT INTO node_case
SELECT 'list', f.name || ' in a List', jsonb_build_object('kind', 'List', 'items', jsonb_build_array(f.d)) FROM fx f
UNION ALL
SELECT 'list', f.name || ' twice in a List', jsonb_build_object('kind', 'List', 'items', jsonb_build_array(f.d, f.d)) FROM fx f;

CREATE TEMP TABLE node_result AS
SELECT c.cat, c.label, c.doc, a.spec AS c_spec, a.errs AS c_errs, b.spec AS sql_spec, b.errs AS sql_errs
  FROM node_case c, paas.node_from_k8s(c.doc) a, pg_temp.node_from_k8s_sql(c.doc) b;

SELECT is(ARRAY(SELECT label FROM node_result WHERE cat = r.cat
				  AND (c_spec IS DISTINCT FROM sql_spec OR c_errs IS DISTINCT FROM sql_errs
					   OR c_spec::text IS DISTINCT FROM sql_spec::text) ORDER BY label),
		  '{}'::text[], 'paas.node_from_k8s is its SQL definition on the ' || r.cat || ' variants')
  FROM (VALUES ('fixture'), ('quantity'), ('missing'), ('address'), ('list')) r(cat);
SELECT is(ARRAY(SELECT label FROM node_result WHERE c_spec IS NOT NULL
				  AND (paas.node_check('[]', c_spec, true) IS DISTINCT FROM pg_temp.node_check_sql('[]', sql_spec, true)
					   OR paas.node_check(c_errs, c_spec, false) IS DISTINCT FROM pg_temp.node_check_sql(c_errs, sql_spec, false))
				ORDER BY label),
		  '{}'::text[], 'paas.node_check finds what its SQL definition finds in the specs');
-- request bodies of POST/PUT /workers: a valid one, and each field odd
CREATE TEMP TABLE body_case AS
SELECT b.label, CASE WHEN b.v IS NULL THEN w.body - b.k ELSE jsonb_set(w.body, ARRAY[b.k], b.v) END AS body
  FROM (SELECT '{"name": "w-1", "hostname": "w-1.example", "ipAddress": "10.0.0.1", "architecture": "amd64",
				 "operatingSystem": "linux", "cpuCores": 4, "cpuArchitecture": "x86_64", "totalMemory": "16Gi",
				 "totalStorage": "100Gi", "allocatedCPU": "500m", "allocatedMemory": "1Gi", "allocatedStorage": "1Gi",
				 "maxPods": 110, "currentPods": 3, "kubeletVersion": "v1.30", "labels": {"a": "b"},
				 "taints": [{"key": "k", "effect": "NoSchedule"}]}'::jsonb AS body) w,
	   (VALUES ('valid', 'name', '"w-1"'::jsonb)) b0(label, k, v)
	   CROSS JOIN LATERAL (SELECT b0.label, b0.k, b0.v) b
UNION ALL
SELECT k || ' ' || coalesce(v::text, 'absent'), CASE WHEN v IS NULL THEN w.body - k ELSE jsonb_set(w.body, ARRAY[k], v) END
  FROM (SELECT '{"name": "w-1", "hostname": "w-1.example", "ipAddress": "10.0.0.1", "cpuCores": 4,
				 "cpuArchitecture": "x86_64", "totalMemory": "16Gi", "totalStorage": "100Gi"}'::jsonb AS body) w,
	   unnest(ARRAY['name', 'hostname', 'ipAddress', 'architecture', 'operatingSystem', 'cpuCores', 'cpuArchitecture',
					'totalMemory', 'totalStorage', 'allocatedCPU', 'allocatedMemory', 'allocatedStorage', 'maxPods',
					'currentPods', 'kubeletVersion', 'containerRuntime', 'kernelVersion', 'osImage', 'labels', 'taints']) k,
	   unnest(ARRAY[NULL, 'null', '""', '"a"', '"ab"', '"-ab"', '"a_b.c-d"', '"ab-"', '"é1"', '"日本語"', '" 12 "', '"1.0"',
					'0', '1', '-1', '1.5', '100000', '100001', '1000000', '1000001', '12345678901234567890', '1e3',
					'true', '[]', '{}', '"10.0.0.1"', '"010.0.0.1"', '"256.1.1.1"', '"10.0.0.0/8"', '"::1"', '"fe80::1%eth0"',
					'"1.2.3"', '"arm64"', '"mips"', '"500m"', '"16Gi"', '"-1Gi"', '"1e400"', '512', '2.5',
					to_jsonb(repeat('x', 64)), to_jsonb(repeat('x', 65)), to_jsonb(repeat('é', 255)), to_jsonb(repeat('é', 256)),
					'{"a": 1}', '{"a": "b", "c": null}', jsonb_build_object(repeat('k', 318), 'v'),
					jsonb_build_object('k', repeat('v', 64)), jsonb_build_object('k', repeat('é', 63)),
					'[{"key": "k", "value": null, "effect": "NoExecute"}, {"key": "k", "value": 1, "effect": "NoExecute"},
					  {"key": "k"}, "x", null, {"key": null, "effect": "NoSchedule"}, {"key": "k", "effect": "Other"},
					  {"key": "k", "effect": "PreferNoSchedule", "value": "v"}]']::jsonb[]) v;
INSERT INTO body_case VALUES ('NULL', NULL), ('an array', '[{"name": "x"}]'), ('a string', '"x"'), ('empty', '{}');
SELECT is(ARRAY(SELECT label || ' ' || coalesce(c::text, 'null') FROM body_case, (VALUES (true), (false), (NULL)) m(c)
				 WHERE paas.node_check('[]', body, c) IS DISTINCT FROM pg_temp.node_check_sql('[]', body, c)
					OR paas.node_check('[{"field": "x", "message": "y"}]', body, c)
					   IS DISTINCT FROM pg_temp.node_check_sql('[{"field": "x", "message": "y"}]', body, c)
				 ORDER BY 1),
		  '{}'::text[], 'paas.node_check finds what its SQL definition finds in request bodies');
SELECT ok((SELECT count(DISTINCT e ->> 'message') > 60 FROM body_case, jsonb_array_elements(paas.node_check('[]', body, true)) e),
		  'the bodies give many different errors');
SELECT is(paas.node_check(NULL, '{}', true), NULL, 'NULL errors stay NULL');
SELECT is(ARRAY(SELECT concat_ws(' ', v::text, coalesce(u, 'NULL'), m, r) FROM
				unnest(ARRAY[NULL, 'null', '"500m"', '"16Gi"', '"1.5"', '"-1"', '"x"', '"1e400"', '"9223372036854775807"',
							 '"9223372036854776"', '4', '4.5', '512', '512.0', '-3', 'true', '[]', '{}']::jsonb[]) v,
				unnest(ARRAY[NULL, '', 'Mi', 'Gi']) u, unnest(ARRAY[true, false]) m, unnest(ARRAY[true, false, NULL]) r
			   WHERE paas.check_qty('[{"field": "a", "message": "b"}]', 'f', v, u, m, r)
					 IS DISTINCT FROM pg_temp.check_qty_sql('[{"field": "a", "message": "b"}]', 'f', v, u, m, r)
			   ORDER BY 1),
		  '{}'::text[], 'paas.check_qty is its SQL definition');
-- the cases are not vacuous: specs, conversion errors and check errors all occur
SELECT ok((SELECT count(*) FILTER (WHERE c_spec IS NOT NULL) > 100 AND count(*) FILTER (WHERE c_spec IS NULL) > 50
			 FROM node_result), 'the variants give specs and conversion errors');
SELECT ok((SELECT count(DISTINCT e ->> 'field') = 13 FROM node_result, jsonb_array_elements(c_errs) e),
		  'the variants give errors on every field of the conversion');
SELECT ok((SELECT count(*) FROM node_result WHERE c_spec IS NOT NULL AND paas.node_check('[]', c_spec, true) <> '[]') > 10,
		  'and specs that paas.node_check refuses');

-- the digest, or the error it raises
CREATE FUNCTION pg_temp.dig(f text, x jsonb) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
	EXECUTE format('SELECT %s($1)', f) INTO r USING x;
	RETURN r;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END $f$;
CREATE TEMP TABLE digest_case AS
SELECT label, doc FROM node_case
UNION ALL
SELECT f.name || ' as watched', jsonb_set(jsonb_set(f.d || '{"apiVersion": "v1", "kind": "Node"}',
		'{metadata,resourceVersion}', '"99"'), '{metadata,managedFields}', '[{"manager": "k3s"}]') FROM fx f
UNION ALL
SELECT f.name || ' ' || o.label, jsonb_set(f.d, o.path, o.v) FROM fx f,
	(VALUES ('status a string', '{status}'::text[], '"up"'::jsonb), ('status null', '{status}', 'null'),
			('status an array', '{status}', '["conditions", "capacity", 1, {"conditions": 1}]'),
			('metadata a number', '{metadata}', '5'), ('metadata an array', '{metadata}', '["resourceVersion", "x"]'),
			('conditions with null', '{status,conditions}', '[null]'),
			('conditions with an array', '{status,conditions}', '[["lastHeartbeatTime", "Ready"], {"type": "Ready"}]'),
			('conditions empty', '{status,conditions}', '[]'),
			('conditions a string', '{status,conditions}', '"Ready"'),
			('conditions without heartbeats', '{status,conditions}', '[{"type": "Ready", "status": "True"}]'),
			('odd strings', '{metadata,annotations}', '{"a\"b": "line\nbreak\ttab \u00e9 \u0001 / \\ </script>", "": ""}'),
			('odd numbers', '{spec}', '{"n": [1.50, 1e3, -0, 0.000001, 12345678901234567890.5, true, false, null]}')) o(label, path, v)
UNION ALL
VALUES ('NULL', NULL::jsonb), ('a number', '5'), ('a string', '"x"'), ('null', 'null'), ('an empty object', '{}'),
	   ('an array', '["kind", "status", 1, {"kind": 1}]'), ('an empty array', '[]'),
	   ('status only', '{"status": {"conditions": [{"lastHeartbeatTime": "t", "type": "Ready"}]}}');
SELECT is(ARRAY(SELECT label FROM digest_case
				 WHERE pg_temp.dig('paas.node_digest', doc) IS DISTINCT FROM pg_temp.dig('pg_temp.node_digest_sql', doc)
				 ORDER BY label),
		  '{}'::text[], 'paas.node_digest is its SQL definition, errors included');
SELECT ok((SELECT count(*) FILTER (WHERE pg_temp.dig('paas.node_digest', doc) ~ '^[0-9a-f]{32}$') > 400
				  AND count(*) FILTER (WHERE pg_temp.dig('paas.node_digest', doc) LIKE '22023 cannot delete from scalar') >= 20
			 FROM digest_case), 'the digest cases give digests and errors');
SELECT is(paas.node_digest(jsonb_set(jsonb_set(d, '{metadata,resourceVersion}', '"7"'),
									 '{status,conditions,0,lastHeartbeatTime}', '"2030-01-01T00:00:00Z"') || '{"kind": "Node"}'),
		  paas.node_digest(d - 'kind'), 'the digest leaves out kind, resourceVersion and heartbeat times')
  FROM fx WHERE name = 'k3s';
SELECT isnt(paas.node_digest(jsonb_set(d, '{status,conditions,0,status}', '"Unknown"')), paas.node_digest(d),
			'a condition''s status changes the digest')
  FROM fx WHERE name = 'k3s';
SELECT isnt(paas.node_digest(jsonb_set(d, '{metadata,labels,zone}', '"b"')), paas.node_digest(d),
			'a label changes the digest')
  FROM fx WHERE name = 'k3s';

SELECT * FROM finish();
ROLLBACK;
