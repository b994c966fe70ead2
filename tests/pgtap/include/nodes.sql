-- Helpers of the node tests (node_registry.sql, node_agent.sql,
-- node_monitor_pass.sql), included with \ir inside their transaction: the
-- temp table t of registrations, with the Kubernetes Node object pg-k3s
-- (k3s, cordoned, allocatable below capacity) as "kdoc"; a node spec in the
-- original's field set; the join token's and a registration's ctx; and the
-- fields of a PT400.
CREATE TEMP TABLE t (k text PRIMARY KEY, v jsonb);
INSERT INTO t VALUES ('kdoc', $${"apiVersion": "v1", "kind": "Node",
	"metadata": {"name": "pg-k3s", "uid": "c24142f9-1fb8-4f4a-92f3-0bed37bd4874",
				 "labels": {"kubernetes.io/hostname": "pg-k3s", "node.kubernetes.io/instance-type": "k3s"}},
	"spec": {"providerID": "k3s://pg-k3s", "unschedulable": true,
			 "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": "2026-04-18T18:20:18Z"}]},
	"status": {"capacity": {"cpu": "4", "ephemeral-storage": "103079844Ki", "memory": "16331368Ki", "pods": "110"},
			   "allocatable": {"cpu": "3800m", "ephemeral-storage": "94998384074", "memory": "16228968Ki", "pods": "110"},
			   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
			   "addresses": [{"type": "InternalIP", "address": "192.0.2.24"}, {"type": "Hostname", "address": "pg-k3s"}],
			   "nodeInfo": {"machineID": "", "kubeletVersion": "v1.31.5+k3s1", "containerRuntimeVersion": "containerd://1.7.23-k3s2",
							"kernelVersion": "6.1.128", "osImage": "Ubuntu 24.04.1 LTS", "operatingSystem": "linux", "architecture": "amd64"}}}$$);

CREATE FUNCTION pg_temp.spec(name text, ip text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('name', name, 'hostname', name || '.pgtap.local', 'ipAddress', ip,
		'cpuCores', 8, 'cpuArchitecture', 'AMD Ryzen 7 6800H', 'totalMemory', '32Gi', 'totalStorage', '500Gi',
		'labels', jsonb_build_object('zone', 'a'), 'kubeletVersion', 'v1.31.5+k3s1') $$;
CREATE FUNCTION pg_temp.join() RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"nodeToken": "pgtap-join-token-0001"}'::jsonb $$;
CREATE FUNCTION pg_temp.tok(key text) RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('nodeToken', v ->> 'nodeToken') FROM t WHERE k = key $$;
\ir fields.sql
