-- node_monitor_pass: one pass of the health monitor's job and the pruning of
-- the status history (sql/parts/34_node_monitor.sql), called directly and
-- set-based (now() is fixed inside this transaction); node_monitor.sql has
-- the background worker run it.
BEGIN;
SELECT plan(12);

\ir include/nodes.sql
\ir include/node_fixture.sql

-- The monitor pass.
CREATE FUNCTION pg_temp.mk(name text, status text, silent interval) RETURNS void LANGUAGE sql AS $$
	INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage,
							status, is_ready, last_heartbeat, conditions)
	VALUES (name, name, '10.8.0.1', 1, 'x', '1Gi', '1Gi', status, status = 'ACTIVE', now() - silent,
			'[{"type": "Ready", "status": "True", "reason": "KubeletReady"}, {"type": "NetworkUnavailable", "status": "False"}]') $$;
SELECT pg_temp.mk('mon-fresh', 'ACTIVE', '10 seconds');
SELECT pg_temp.mk('mon-stale', 'ACTIVE', '2 minutes');
SELECT pg_temp.mk('mon-gone', 'ACTIVE', '10 minutes');
SELECT pg_temp.mk('mon-nr-stale', 'NOT_READY', '2 minutes');
SELECT pg_temp.mk('mon-nr-gone', 'NOT_READY', '6 minutes');
SELECT pg_temp.mk('mon-maint', 'MAINTENANCE', '1 day');
SELECT pg_temp.mk('mon-pending', 'PENDING', '1 day');
SELECT pg_temp.mk('mon-inactive', 'INACTIVE', '1 day');
UPDATE paas.nodes SET last_heartbeat = now() - interval '1 day' WHERE name LIKE 'pg-%' OR name IN ('pgtap', 'minikube');
CREATE TEMP TABLE pass AS SELECT paas.job_node_monitor() AS r;
SELECT is((SELECT array[(r ->> 'notReady')::int >= 1, (r ->> 'inactive')::int >= 3] FROM pass), ARRAY[true, true], 'the pass reports its counts');
SELECT is((SELECT array_agg(name || '=' || status ORDER BY name) FROM paas.nodes WHERE name LIKE 'mon-%'),
	ARRAY['mon-fresh=ACTIVE', 'mon-gone=INACTIVE', 'mon-inactive=INACTIVE', 'mon-maint=MAINTENANCE',
		  'mon-nr-gone=INACTIVE', 'mon-nr-stale=NOT_READY', 'mon-pending=PENDING', 'mon-stale=NOT_READY'],
	'grace -> NOT_READY, offline -> INACTIVE; MAINTENANCE, PENDING untouched');
SELECT is((SELECT array[is_ready::text, paas.node_schedulable(n)::text, conditions -> 0 ->> 'status', conditions -> 0 ->> 'reason',
						conditions -> 1 ->> 'status'] FROM paas.nodes n WHERE name = 'mon-stale'),
	ARRAY['false', 'false', 'Unknown', 'NodeStatusUnknown', 'False'], 'a silent node is not ready, not schedulable, Ready=Unknown');
SELECT is((SELECT array_agg(from_status || '>' || to_status || ':' || event || ':' || actor ORDER BY node_name) FROM paas.node_transitions
			WHERE node_name IN ('mon-stale', 'mon-gone')),
	ARRAY['ACTIVE>INACTIVE:offline_timeout:monitor', 'ACTIVE>NOT_READY:heartbeat_timeout:monitor'], 'monitor transitions are audited');
SELECT is(paas.job_node_monitor() ->> 'notReady', '0', 'a second pass changes nothing');
SELECT is(api.workers_heartbeat('{"nodeName": "pg-b"}', pg_temp.tok('b')) ->> 'status', 'ACTIVE', 'an INACTIVE node comes back with a heartbeat');
SELECT is((SELECT enabled AND run_every <= interval '10 seconds' FROM paas.job WHERE name = 'node_monitor'), true,
	'the monitor is a job of the registry, run every few seconds');
SELECT is((SELECT array[grace_period, offline_after] FROM paas.node_health_settings()),
	ARRAY[current_setting('paas.node_grace_period')::interval, current_setting('paas.node_offline_after')::interval],
	'the GUCs are readable with current_setting()');

-- the status history is kept paas.node_history_retention (default 90 days)
SELECT is(paas.node_history_retention(), interval '90 days', 'node history is kept 90 days by default');
INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, at)
SELECT gen_random_uuid(), 'prune-' || i, 'ACTIVE', 'NOT_READY', 'heartbeat_timeout', 'monitor',
	   now() - CASE WHEN i <= 3 THEN interval '91 days' ELSE interval '89 days' END
  FROM generate_series(1, 5) i;
SELECT is(paas.job_prune_node_transitions() ->> 'deleted', '3', 'the prune job deletes what is older');
SELECT is((SELECT count(*)::int FROM paas.node_transitions WHERE node_name LIKE 'prune-%'), 2, 'and keeps the rest');
SELECT is((SELECT run_every FROM paas.job WHERE name = 'prune_node_transitions'), interval '1 hour',
	'it is a job of the registry, run hourly');


SELECT finish();
ROLLBACK;
