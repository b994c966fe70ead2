-- background worker: it runs due jobs and records them.  Not wrapped in a
-- transaction: the test commits a change and polls for the worker's commits.
SELECT plan(5);

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

SELECT ok(pg_temp.wait_for($$SELECT running FROM paas.worker_state()$$), 'the worker is running');
SELECT ok(pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM paas.job_run WHERE job = 'heartbeat' AND ok)$$),
	'the worker ran the heartbeat job');
SELECT ok((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'paas worker') = 1,
	'one worker process');

-- Make the job due again and poll until a new run is recorded.
CREATE TEMP TABLE before AS SELECT max(id) AS id FROM paas.job_run WHERE job = 'heartbeat';
UPDATE paas.job SET next_run_at = now() WHERE name = 'heartbeat';
SELECT ok(pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM paas.job_run
	WHERE job = 'heartbeat' AND id > (SELECT id FROM before))$$), 'a due job is run again');
SELECT ok((SELECT next_run_at > now() FROM paas.job WHERE name = 'heartbeat'),
	'the run scheduled the next one');

SELECT finish();
