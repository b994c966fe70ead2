-- node monitor: the background worker runs job node_monitor; a node that
-- stops sending heartbeats becomes NOT_READY after paas.node_grace_period,
-- then INACTIVE after paas.node_offline_after.  Not wrapped in a
-- transaction: the test commits and polls for the worker's commits.  The
-- GUCs are shortened with ALTER SYSTEM and restored at the end (other tests
-- share the cluster); the test waits until the worker runs with the
-- restored values again.
SELECT plan(12);

CREATE FUNCTION pg_temp.wait_for(q text, timeout interval DEFAULT '30 seconds')
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + timeout;
	b boolean;
BEGIN
	LOOP
		EXECUTE q INTO b;
		IF b THEN RETURN true; END IF;
		IF clock_timestamp() > deadline THEN RETURN false; END IF;
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;

CREATE TEMP TABLE saved AS SELECT run_every FROM paas.job WHERE name = 'node_monitor';
ALTER SYSTEM SET paas.node_grace_period = '1s';
ALTER SYSTEM SET paas.node_offline_after = '3s';
SELECT pg_reload_conf();
UPDATE paas.job SET run_every = '200 milliseconds', next_run_at = now() WHERE name = 'node_monitor';
SELECT ok(pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM paas.job_run WHERE job = 'node_monitor' AND ok
	AND detail ->> 'gracePeriod' = '00:00:01' AND detail ->> 'offlineAfter' = '00:00:03')$$),
	'the worker runs the monitor with the reloaded GUCs');

-- two nodes fall silent; one of them is in MAINTENANCE
CREATE TEMP TABLE reg AS SELECT api.workers_register('{"name": "monitor-silent", "hostname": "monitor-silent.test",
	"ipAddress": "10.77.0.1", "cpuCores": 2, "cpuArchitecture": "test", "totalMemory": "4Gi", "totalStorage": "20Gi"}') AS r;
SELECT api.workers_register('{"name": "monitor-maint", "hostname": "monitor-maint.test",
	"ipAddress": "10.77.0.2", "cpuCores": 2, "cpuArchitecture": "test", "totalMemory": "4Gi", "totalStorage": "20Gi"}') IS NOT NULL;
SELECT api.workers_set_status('{"nodeId": "monitor-maint", "status": "MAINTENANCE"}') IS NOT NULL;
SELECT is((SELECT r ->> 'status' FROM reg), 'ACTIVE', 'the node starts ACTIVE');
CREATE TEMP TABLE before AS SELECT coalesce(max(id), 0) AS id FROM paas.job_run WHERE job = 'node_monitor';

SELECT ok(pg_temp.wait_for($$SELECT status = 'NOT_READY' FROM paas.nodes WHERE name = 'monitor-silent'$$),
	'the worker marks the silent node NOT_READY');
SELECT ok((SELECT NOT is_ready AND NOT paas.node_schedulable(n) FROM paas.nodes n WHERE name = 'monitor-silent'),
	'NOT_READY is neither ready nor schedulable');
SELECT ok((SELECT at - (SELECT last_heartbeat FROM paas.nodes WHERE name = 'monitor-silent') >= interval '1 second'
			FROM paas.node_transitions WHERE node_name = 'monitor-silent' AND to_status = 'NOT_READY'),
	'not before the grace period');
SELECT ok(pg_temp.wait_for($$SELECT status = 'INACTIVE' FROM paas.nodes WHERE name = 'monitor-silent'$$),
	'then INACTIVE after offline_after');
SELECT is((SELECT array_agg(from_status || '>' || to_status || ':' || actor ORDER BY id) FROM paas.node_transitions
			WHERE node_name = 'monitor-silent' AND actor = 'monitor'),
	ARRAY['ACTIVE>NOT_READY:monitor', 'NOT_READY>INACTIVE:monitor'], 'both transitions are audited once');
SELECT ok((SELECT count(*) >= 2 FROM paas.job_run WHERE job = 'node_monitor' AND ok AND id > (SELECT id FROM before)
			AND ((detail ->> 'notReady')::int > 0 OR (detail ->> 'inactive')::int > 0)),
	'the runs that changed nodes are recorded in paas.job_run');
SELECT is((SELECT status FROM paas.nodes WHERE name = 'monitor-maint'), 'MAINTENANCE', 'MAINTENANCE is left alone');
SELECT is(api.workers_heartbeat('{"nodeName": "monitor-silent"}') ->> 'status', 'ACTIVE', 'a fresh heartbeat brings it back');

-- restore the settings and wait until the worker uses them again
ALTER SYSTEM RESET paas.node_grace_period;
ALTER SYSTEM RESET paas.node_offline_after;
SELECT pg_reload_conf();
DELETE FROM paas.nodes WHERE name IN ('monitor-silent', 'monitor-maint');
UPDATE paas.job SET next_run_at = now() WHERE name = 'node_monitor';
SELECT ok(pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM paas.job_run WHERE job = 'node_monitor' AND ok
	AND detail ->> 'gracePeriod' = '00:01:30')$$), 'the worker is back on the default GUCs');
UPDATE paas.job SET run_every = (SELECT run_every FROM saved), next_run_at = now() WHERE name = 'node_monitor';
SELECT is((SELECT run_every FROM paas.job WHERE name = 'node_monitor'), interval '5 seconds', 'the job schedule is restored');

SELECT finish();
