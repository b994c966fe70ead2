-- paas -- the node health monitor: the job node_monitor (run by the
-- background worker) marks ACTIVE nodes silent for paas.node_grace_period
-- NOT_READY and nodes silent for paas.node_offline_after INACTIVE,
-- set-based, with FOR UPDATE SKIP LOCKED.  A node never heard from counts
-- from created_at.  Also the pruning of the nodes' status history.

------------------------------------------------------------------------------
-- Health monitor (job node_monitor, run by the background worker)
------------------------------------------------------------------------------

-- Kubernetes' node-lifecycle controller on silence: Ready and the pressure
-- conditions become Unknown / NodeStatusUnknown; lastHeartbeatTime stays.
CREATE FUNCTION paas.node_conditions_unknown(conds jsonb, at timestamptz) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN jsonb_typeof(conds) <> 'array' OR jsonb_array_length(conds) = 0 THEN conds
		   ELSE (SELECT jsonb_agg(CASE
					WHEN c ->> 'type' IN ('Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure')
						 AND c ->> 'status' IS DISTINCT FROM 'Unknown'
					THEN c || jsonb_build_object('status', 'Unknown', 'reason', 'NodeStatusUnknown',
												 'message', 'Kubelet stopped posting node status.',
												 'lastTransitionTime', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
					ELSE c END ORDER BY i)
				 FROM jsonb_array_elements(conds) WITH ORDINALITY x(c, i)) END;
COMMENT ON FUNCTION paas.node_conditions_unknown(jsonb, timestamptz) IS
	'conditions of a silent node, as the node-lifecycle controller rewrites them';

-- One pass: ACTIVE nodes silent for the grace period -> NOT_READY; ACTIVE or
-- NOT_READY nodes silent for offline_after -> INACTIVE.  Rows another
-- session holds (a heartbeat in flight) are skipped until the next pass.
CREATE FUNCTION paas.job_node_monitor() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	cfg record;
	r jsonb;
BEGIN
	SELECT * INTO cfg FROM paas.node_health_settings();
	WITH cand AS (
		SELECT n.id, n.status AS old_status,
			   CASE WHEN coalesce(n.last_heartbeat, n.created_at) < now() - cfg.offline_after
					THEN 'offline_timeout' ELSE 'heartbeat_timeout' END AS event
		  FROM paas.nodes n
		 WHERE n.status IN ('ACTIVE', 'NOT_READY')
		   AND coalesce(n.last_heartbeat, n.created_at) < now() - cfg.grace_period
		   AND (n.status = 'ACTIVE' OR coalesce(n.last_heartbeat, n.created_at) < now() - cfg.offline_after)
		 ORDER BY n.id
		   FOR UPDATE OF n SKIP LOCKED),
	upd AS (
		UPDATE paas.nodes n
		   SET status = paas.node_transition(c.old_status, c.event),
			   is_ready = false,
			   conditions = CASE WHEN c.old_status = 'ACTIVE'
								 THEN paas.node_conditions_unknown(n.conditions, now()) ELSE n.conditions END,
			   last_health_check = now(),
			   status_changed_at = now(),
			   updated_at = now()
		  FROM cand c
		 WHERE n.id = c.id
		RETURNING n.id, n.name, c.old_status, n.status, c.event),
	aud AS (
		INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
		SELECT u.id, u.name, u.old_status, u.status, u.event, 'monitor',
			   CASE u.event WHEN 'offline_timeout' THEN 'no heartbeat for ' || cfg.offline_after
							ELSE 'no heartbeat for ' || cfg.grace_period END
		  FROM upd u
		RETURNING to_status)
	SELECT jsonb_build_object(
		'notReady', count(*) FILTER (WHERE to_status = 'NOT_READY'),
		'inactive', count(*) FILTER (WHERE to_status = 'INACTIVE'))
	  INTO r FROM aud;
	RETURN r || jsonb_build_object('ms', round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1),
								   'gracePeriod', cfg.grace_period::text, 'offlineAfter', cfg.offline_after::text);
END
$$;
COMMENT ON FUNCTION paas.job_node_monitor() IS
	'health monitor pass: silent nodes -> NOT_READY, then INACTIVE (set-based, SKIP LOCKED)';

INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('node_monitor', 'paas.job_node_monitor', '5 seconds',
	 'marks silent worker nodes NOT_READY, then INACTIVE');

-- Job: the status history of nodes older than paas.node_history_retention
-- (default 90 days; 0 keeps it) is deleted, at most 50,000 rows a run, so
-- that a first run on a long history does not hold one huge transaction.
CREATE FUNCTION paas.job_prune_node_transitions() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	keep interval := paas.node_history_retention();
	n bigint;
BEGIN
	IF keep IS NULL THEN
		RETURN jsonb_build_object('deleted', 0, 'retention', 'forever');
	END IF;
	DELETE FROM paas.node_transitions
	 WHERE id IN (SELECT id FROM paas.node_transitions WHERE at < now() - keep ORDER BY at LIMIT 50000);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n, 'retention', keep::text);
END
$$;
COMMENT ON FUNCTION paas.job_prune_node_transitions() IS
	'deletes node status history older than paas.node_history_retention (50,000 rows a run)';
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('prune_node_transitions', 'paas.job_prune_node_transitions', '1 hour',
	 'deletes node status history older than paas.node_history_retention');
