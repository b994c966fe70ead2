-- paas -- the renewal run: charges the due periods of the subscriptions of
-- 60_subscriptions.sql, moves the unpaid ones through grace to suspension,
-- and issues the run's invoices; scheduled with pg_cron.
--
--   * Renewal (api.run_renewals, scheduled with pg_cron by
--     api.subscriptions_schedule_renewals) takes an advisory transaction
--     lock, so overlapping runs queue instead of interleaving, then handles
--     the due subscriptions (current_period_end <= now()) in batches locked
--     FOR UPDATE SKIP LOCKED (rows an owner or admin is changing are left to
--     the next run).  A batch is one ledger call; a short wallet moves an
--     ACTIVE subscription to GRACE until period end + grace period
--     (paas.subscription_settings, default 3 days); every run retries GRACE
--     subscriptions, so a top-up during grace renews at the next run, the
--     period still anchored on the old one (the grace days were served).
--     Once grace_until has passed unpaid it is SUSPENDED and never charged
--     again by the run: a later top-up does not silently charge arrears; the
--     owner revives it with PUT /subscriptions/:id/renew.  Invoices of a run
--     are issued at its end, after every wallet lock is taken, so the run
--     holds the invoice counter only briefly and takes its locks in the
--     same order as a sale or a top-up (wallet, then counter); they are
--     numbered as one block by one paas.issue_invoice_items() call; their
--     ids are drawn by the batches, which write the charge rows.
--   * A run is split into shards (paas.renewal_workers, each a share of the
--     users' wallets) that paas.run_parallel runs in background workers,
--     each shard one transaction of its own that commits on its own: its
--     row locks last until that shard commits, so an owner's renew or
--     cancel of a row being renewed waits for the shard, never for the whole
--     run.  Each shard's invoices are one gap-free block of numbers.  The
--     run reports what every shard committed, and waits for all of them.  A
--     subscription more than one period behind (the job did not run for a
--     month) is charged period after period in the same run, in order, as
--     long as the wallet covers them.

------------------------------------------------------------------------------
-- renewal
------------------------------------------------------------------------------

-- Issues the invoices of the renewal run's charges (temp table
-- renewal_charged) with one call of the billing part's
-- paas.issue_invoice_items(), so they are numbered as one contiguous block
-- by its single numbering path (one counter update for the whole run;
-- paas.issue_invoice() once a charge would cost ~0.2 ms each, 20 s for
-- 100,000 renewals).  The invoice ids were drawn by the batches, which
-- wrote them into the charge rows already.  Returns the number of invoices.
CREATE FUNCTION paas.subscription_issue_invoices() RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	items paas.invoice_item[];
	ids uuid[];
	n bigint;
BEGIN
	SELECT array_agg(ROW(x.user_id, 'SUBSCRIPTION', x.price,
						 jsonb_build_object('subscriptionId', x.id, 'serviceId', x.service_id,
											'period', x.period_no, 'entryId', x.entry_id),
						 jsonb_build_array(jsonb_build_object('description', x.descr, 'quantity', 1,
															  'unitPrice', x.price, 'amount', x.price))
						)::paas.invoice_item),
		   array_agg(x.invoice_id)
	  INTO items, ids
	  FROM (SELECT c.*, format('%s subscription, period %s (%s to %s)', c.display_name, c.period_no,
							   to_char(c.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
							   to_char(c.period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD')) AS descr
			  FROM renewal_charged c WHERE c.invoice_id IS NOT NULL
			 -- numbers follow the run's order; sorting these narrow rows is
			 -- cheaper than array_agg(... ORDER BY) over the built items
			 ORDER BY c.seq) x;
	SELECT count(*) INTO n FROM paas.issue_invoice_items(items, ids);
	IF n <> coalesce(cardinality(ids), 0) THEN
		RAISE EXCEPTION 'renewal run: % invoices issued for % charges', n, cardinality(ids)
			USING ERRCODE = 'internal_error';
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.subscription_issue_invoices() IS
	'renewal run: issues the invoices of pg_temp.renewal_charged, with the ids its charge rows name, as one '
	'numbered block (paas.issue_invoice_items)';

-- The shard of a subscription in a renewal run: by user, so that one
-- wallet is only ever charged by one shard.
CREATE FUNCTION paas.renewal_shard(user_id uuid, shards int) RETURNS int
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN abs(uuid_hash_extended(user_id, 0) % shards)::int;
COMMENT ON FUNCTION paas.renewal_shard(uuid, int) IS
	'the renewal shard (0 .. shards - 1) of a user''s subscriptions';

-- One shard of a renewal run (api.run_renewals); shards = 1: all of it.
CREATE FUNCTION paas.run_renewals_part(shard int DEFAULT 0, shards int DEFAULT 1) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	-- JIT compiled the invoice insert of every shard (its cost estimate is
	-- far above jit_above_cost): ~0.5 s of compiling for a statement of a
	-- few seconds, on the path where the shards queue for invoice numbers
	SET jit = off
AS $$
DECLARE
	cfg paas.subscription_settings := paas.subscription_config();
	rev bigint := paas.platform_account('revenue');
	last_end timestamptz := '-infinity';
	last_id uuid := '00000000-0000-0000-0000-000000000000';
	n int;
	upd bigint;
	behind bigint;
	passes int := 1;
	batches int := 0;
	examined bigint := 0;
	entries jsonb;
	ids bigint[];
	res jsonb;
	r record;
	out jsonb;
BEGIN
	IF shards IS NULL OR shards < 1 OR shard IS NULL OR shard < 0 OR shard >= shards THEN
		RAISE EXCEPTION 'shard must be in 0 .. shards - 1' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- One run of a shard at a time (api.run_renewals holds the run's lock
	-- while its shards run in other backends).
	PERFORM pg_advisory_xact_lock(hashtext('paas.run_renewals/' || shards), shard);

	IF to_regclass('pg_temp.renewal_batch') IS NULL THEN
		CREATE TEMP TABLE renewal_batch (
			seq int PRIMARY KEY, tid tid, id uuid, user_id uuid, service_id uuid, display_name text,
			status text, price bigint, period_no int, anchor_at timestamptz, anchor_period int,
			period_end timestamptz, grace_until timestamptz, pay boolean, eseq bigint, entry jsonb,
			event text, new_status text, new_grace timestamptz, invoice_id uuid) ON COMMIT DROP;
		CREATE TEMP TABLE renewal_charged (
			seq bigint GENERATED ALWAYS AS IDENTITY, id uuid, user_id uuid, service_id uuid,
			display_name text, period_no int, price bigint, period_start timestamptz,
			period_end timestamptz, entry_id bigint, invoice_id uuid) ON COMMIT DROP;
		CREATE TEMP TABLE renewal_count (event text, to_status text, cnt bigint, amount bigint) ON COMMIT DROP;
	ELSE
		TRUNCATE renewal_charged, renewal_count;
	END IF;

	-- Passes over everything due; a second pass only when a renewed
	-- subscription is still behind (its new period has ended too).
	LOOP
		last_end := '-infinity';
		last_id := '00000000-0000-0000-0000-000000000000';
		behind := 0;
		LOOP
			-- One batch: lock the next due rows (SKIP LOCKED: rows an owner or an
			-- administrator is changing wait for the next run), decide who can
			-- pay (per user, the due prices in due order against the balance
			-- read now; a concurrent debit is caught by the ledger below) and
			-- what the status machine makes of each row.
			TRUNCATE renewal_batch;
			INSERT INTO renewal_batch
			SELECT x.seq, x.tid, x.id, x.user_id, x.service_id, x.display_name, x.status, x.price, x.period_no,
				   x.anchor_at, x.anchor_period, x.current_period_end, x.grace_until, x.pay,
				   CASE WHEN x.pay AND x.price > 0
						THEN count(*) FILTER (WHERE x.pay AND x.price > 0) OVER (ORDER BY x.seq) END,
				   CASE WHEN x.pay AND x.price > 0 THEN jsonb_build_object(
						'kind', 'subscription_renewal',
						'memo', format('Subscription renewal for %s, period %s', x.display_name, x.period_no + 1),
						'ref', jsonb_build_object('subscriptionId', x.id, 'serviceId', x.service_id,
												  'period', x.period_no + 1),
						'postings', jsonb_build_array(
							jsonb_build_object('account', x.wallet, 'amount', -x.price),
							jsonb_build_object('account', rev, 'amount', x.price))) END,
				   x.event,
				   CASE WHEN x.event <> 'payment_failed' THEN paas.subscription_transition(x.status, x.event)
						WHEN x.g <= now() THEN paas.subscription_transition(
							paas.subscription_transition(x.status, 'payment_failed'), 'grace_expired')
						ELSE paas.subscription_transition(x.status, 'payment_failed') END,
				   x.g,
				   -- the id of the invoice issued at the end of the run
				   CASE WHEN x.pay AND x.price > 0 THEN gen_random_uuid() END
			  FROM (SELECT y.*,
						   CASE WHEN y.status = 'CANCELLED' THEN 'period_ended'
								WHEN y.pay THEN 'renew' ELSE 'payment_failed' END AS event,
						   coalesce(y.grace_until, y.current_period_end + cfg.grace_period) AS g
					  FROM (SELECT z.*,
								   z.status <> 'CANCELLED'
								   AND (z.price = 0 OR z.cum <= coalesce(z.balance, 0)) AS pay
							  FROM (SELECT d.*, v.display_name, a.id AS wallet, a.balance,
										   row_number() OVER (ORDER BY d.current_period_end, d.id) AS seq,
										   sum(CASE WHEN d.status <> 'CANCELLED' THEN d.price ELSE 0 END)
											   OVER (PARTITION BY d.user_id
													 ORDER BY d.current_period_end, d.id) AS cum
									  FROM (SELECT s.*, s.ctid AS tid FROM paas.subscriptions s
											 WHERE s.status IN ('ACTIVE', 'GRACE', 'CANCELLED')
											   AND s.current_period_end <= now()
											   AND (s.current_period_end, s.id) > (last_end, last_id)
											   AND (shards = 1 OR paas.renewal_shard(s.user_id, shards) = shard)
											 ORDER BY s.current_period_end, s.id
											 LIMIT cfg.batch_size
											 FOR UPDATE OF s SKIP LOCKED) d
									  JOIN paas.services v ON v.id = d.service_id
									  -- the wallet row: paas.wallet_account() and
									  -- paas.wallet_balance() in one join
									  LEFT JOIN paas.ledger_accounts a
											 ON a.user_id = d.user_id AND a.kind = 'wallet') z) y) x;
			GET DIAGNOSTICS n = ROW_COUNT;
			EXIT WHEN n = 0;
			batches := batches + 1;
			examined := examined + n;
			SELECT b.period_end, b.id INTO last_end, last_id FROM renewal_batch b WHERE b.seq = n;

			-- The batch's charges: one ledger call.
			ids := NULL;
			SELECT jsonb_agg(b.entry ORDER BY b.eseq) INTO entries FROM renewal_batch b WHERE b.eseq IS NOT NULL;
			IF entries IS NOT NULL THEN
				BEGIN
					res := paas.ledger_post(NULL, entries);
					SELECT array_agg((e ->> 'id')::bigint ORDER BY k) INTO ids
					  FROM jsonb_array_elements(res -> 'entries') WITH ORDINALITY AS t (e, k);
				EXCEPTION WHEN SQLSTATE 'PT402' THEN
					-- A wallet went down since it was read: one entry at a time,
					-- the short ones become failed payments.
					FOR r IN SELECT b.seq, b.id, b.period_no, b.entry, b.eseq FROM renewal_batch b
							  WHERE b.eseq IS NOT NULL ORDER BY b.eseq LOOP
						BEGIN
							res := paas.ledger_post(format('subscription:%s:period:%s', r.id, r.period_no + 1),
													jsonb_build_array(r.entry));
							ids[r.eseq] := (res #>> '{entries,0,id}')::bigint;
						EXCEPTION WHEN SQLSTATE 'PT402' THEN
							UPDATE renewal_batch b
							   SET pay = false, event = 'payment_failed',
								   new_status = CASE WHEN b.new_grace <= now()
													 THEN paas.subscription_transition(
															paas.subscription_transition(b.status, 'payment_failed'),
															'grace_expired')
													 ELSE paas.subscription_transition(b.status, 'payment_failed') END
							 WHERE b.seq = r.seq;
						END;
					END LOOP;
				END;
			END IF;

			-- The charge rows, before the update: the key check of each row
			-- finds its subscription still locked FOR UPDATE by this run and
			-- writes nothing (after the update, it would lock the new row
			-- version, one more WAL record per charge).  Their invoices are
			-- issued at the end of the run with the ids drawn above.
			WITH c AS (
				INSERT INTO renewal_charged (id, user_id, service_id, display_name, period_no, price,
											 period_start, period_end, entry_id, invoice_id)
				SELECT b.id, b.user_id, b.service_id, b.display_name, b.period_no + 1, b.price, b.period_end,
					   paas.subscription_bound(b.anchor_at, b.period_no + 2 - b.anchor_period), ids[b.eseq],
					   b.invoice_id
				  FROM renewal_batch b WHERE b.pay ORDER BY b.seq
				RETURNING *)
			INSERT INTO paas.subscription_charges (subscription_id, period_no, kind, amount, period_start,
												   period_end, entry_id, invoice_id)
			SELECT c.id, c.period_no, 'renewal', c.price, c.period_start, c.period_end, c.entry_id, c.invoice_id
			  FROM c ORDER BY c.seq;

			UPDATE paas.subscriptions s
			   SET status = b.new_status,
				   period_no = CASE WHEN b.pay THEN s.period_no + 1 ELSE s.period_no END,
				   current_period_start = CASE WHEN b.pay THEN s.current_period_end ELSE s.current_period_start END,
				   current_period_end = CASE WHEN b.pay
											 THEN paas.subscription_bound(s.anchor_at, s.period_no + 2 - s.anchor_period)
											 ELSE s.current_period_end END,
				   grace_until = CASE WHEN b.new_status = 'GRACE' THEN b.new_grace END,
				   suspended_at = CASE WHEN b.new_status = 'SUSPENDED' THEN now() ELSE s.suspended_at END,
				   ended_at = CASE WHEN b.new_status = 'EXPIRED' THEN s.current_period_end ELSE s.ended_at END,
				   status_reason = CASE WHEN b.new_status = b.status THEN s.status_reason
										WHEN b.new_status = 'GRACE' THEN 'renewal failed: insufficient balance'
										WHEN b.new_status = 'SUSPENDED' THEN 'grace period ended unpaid'
										WHEN b.new_status = 'EXPIRED' THEN 'cancelled period ended' END,
				   updated_at = now()
			  FROM renewal_batch b
			 WHERE s.ctid = ANY (ARRAY(SELECT c.tid FROM renewal_batch c
										WHERE c.pay OR c.new_status <> c.status
										   OR c.new_grace IS DISTINCT FROM c.grace_until))
			   AND s.ctid = b.tid AND s.id = b.id
			   AND (b.pay OR b.new_status <> b.status OR b.new_grace IS DISTINCT FROM b.grace_until);
			-- The rows are locked since they were read, so their ctid cannot
			-- have changed (checked anyway).  The ctid array makes the rows a
			-- direct heap access (Tid Scan): a join on id or on ctid alone made
			-- the planner hash the whole table for every batch.
			GET DIAGNOSTICS upd = ROW_COUNT;
			IF upd <> (SELECT count(*) FROM renewal_batch b
						WHERE b.pay OR b.new_status <> b.status OR b.new_grace IS DISTINCT FROM b.grace_until) THEN
				RAISE EXCEPTION 'renewal run: a locked subscription moved' USING ERRCODE = 'internal_error';
			END IF;

			INSERT INTO paas.subscription_events (subscription_id, event, from_status, to_status, reason)
			SELECT b.id, b.event, b.status, b.new_status,
				   CASE b.new_status WHEN 'ACTIVE' THEN 'renewed by the renewal run'
				   WHEN 'GRACE' THEN 'renewal failed: insufficient balance'
				   WHEN 'SUSPENDED' THEN 'grace period ended unpaid'
				   ELSE 'cancelled period ended' END
			  FROM renewal_batch b WHERE b.new_status <> b.status ORDER BY b.seq;

			INSERT INTO renewal_count
			SELECT b.event, b.new_status, count(*), coalesce(sum(b.price) FILTER (WHERE b.pay), 0)
			  FROM renewal_batch b
			 WHERE b.pay OR b.new_status <> b.status OR b.new_grace IS DISTINCT FROM b.grace_until
			 GROUP BY 1, 2;

			behind := behind + (SELECT count(*) FROM renewal_batch b
								 WHERE b.pay AND paas.subscription_bound(b.anchor_at,
												b.period_no + 2 - b.anchor_period) <= now());
		END LOOP;
		EXIT WHEN behind = 0;
		passes := passes + 1;
	END LOOP;

	-- Every wallet lock of the run is held: now the invoices, set-based, with
	-- the ids the charge rows name (see paas.subscription_issue_invoices).
	PERFORM paas.subscription_issue_invoices();

	SELECT jsonb_build_object(
		'examined', examined,
		'batches', batches,
		'passes', passes,
		'renewed', coalesce(sum(cnt) FILTER (WHERE event = 'renew'), 0),
		'charged', coalesce(sum(amount) FILTER (WHERE event = 'renew'), 0),
		'toGrace', coalesce(sum(cnt) FILTER (WHERE to_status = 'GRACE' AND event = 'payment_failed'), 0),
		'suspended', coalesce(sum(cnt) FILTER (WHERE to_status = 'SUSPENDED'), 0),
		'expired', coalesce(sum(cnt) FILTER (WHERE to_status = 'EXPIRED'), 0))
	  INTO out FROM renewal_count;
	RETURN out;
END
$$;
COMMENT ON FUNCTION paas.run_renewals_part(int, int) IS
	'one shard of a renewal run (the users with paas.renewal_shard(user_id, shards) = shard); '
	'returns {examined, batches, passes, renewed, charged, toGrace, suspended, expired}';

CREATE FUNCTION api.run_renewals() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	shards int := current_setting('paas.renewal_workers')::int;
	parts jsonb[];
	out jsonb;
	err text;
	state text;
BEGIN
	-- One run at a time: a second one waits here, then finds what the first
	-- renewed no longer due.
	PERFORM pg_advisory_xact_lock(hashtextextended('paas.run_renewals', 0));
	-- A DBA pauses renewals as any job: paas.job renewals, enabled = false.
	IF EXISTS (SELECT 1 FROM paas.job WHERE name = 'renewals' AND NOT enabled) THEN
		RETURN jsonb_build_object('ok', true, 'skipped', 'disabled in paas.job (renewals)');
	END IF;
	-- The run's work is a subtransaction: when it fails, what it did in this
	-- backend rolls back, the failure is recorded below and the call returns
	-- (a raised error would roll the record back too; pg_cron's
	-- job_run_details therefore says that the command ran, paas.job_run
	-- tells how it went).  Shards that ran in background workers committed
	-- on their own.  PostgreSQL counts the subtransaction as a transaction
	-- block, which paas.run_parallel does not start workers from: said here,
	-- at the top level, that this statement is a transaction of its own.
	PERFORM paas.run_parallel_begin();
	BEGIN
		-- The shards run at the same time in background workers, each
		-- charging its own users' wallets (paas.run_parallel; in a
		-- transaction block they run here, one after the other).
		IF shards > 1 THEN
			SELECT array_agg(r::jsonb ORDER BY i) INTO parts
			  FROM unnest(paas.run_parallel(ARRAY(
					SELECT format('SELECT paas.run_renewals_part(%s, %s)', i, shards)
					  FROM generate_series(0, shards - 1) i ORDER BY i))) WITH ORDINALITY AS t (r, i);
		ELSE
			parts := ARRAY[paas.run_renewals_part(0, 1)];
		END IF;
		SELECT jsonb_build_object(
			'ok', true,
			'examined', sum((p ->> 'examined')::bigint),
			'batches', sum((p ->> 'batches')::int),
			'passes', max((p ->> 'passes')::int),
			'renewed', sum((p ->> 'renewed')::bigint),
			'charged', sum((p ->> 'charged')::bigint),
			'toGrace', sum((p ->> 'toGrace')::bigint),
			'suspended', sum((p ->> 'suspended')::bigint),
			'expired', sum((p ->> 'expired')::bigint),
			'currency', 'IDR',
			'shards', shards,
			'inGrace', (SELECT count(*) FROM paas.subscriptions WHERE status = 'GRACE'),
			'ms', round(extract(epoch FROM clock_timestamp() - t0) * 1000))
		  INTO out FROM unnest(parts) p;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
		out := jsonb_build_object('ok', false, 'error', err, 'sqlstate', state, 'shards', shards,
								  'ms', round(extract(epoch FROM clock_timestamp() - t0) * 1000));
		RAISE WARNING 'renewal run failed: %', err
			USING DETAIL = format('SQLSTATE %s; recorded in paas.job_run (job renewals)', state);
	END;
	INSERT INTO paas.job_run (job, started_at, finished_at, ok, detail, error)
	SELECT j.name, t0, clock_timestamp(), err IS NULL, out, err FROM paas.job j WHERE j.name = 'renewals';
	RETURN out;
END
$$;
COMMENT ON FUNCTION api.run_renewals() IS
	'renews every due subscription (pg_cron job paas-renewals; DBAs): charges, grace, suspension, expiry of '
	'cancelled periods; one run at a time, rows locked FOR UPDATE SKIP LOCKED, each period charged once; '
	'shards run in parallel in paas.renewal_workers background workers; records the run in paas.job_run '
	'(job renewals), a failed one too (the call then returns {ok: false, error, sqlstate} with a WARNING); '
	'does nothing while paas.job renewals is disabled; '
	'returns {ok, examined, batches, passes, renewed, charged, toGrace, suspended, expired, shards, inGrace, ms}';

-- The renewals in the job registry, so that their runs are recorded and
-- listed with the others (GET /admin/jobs/runs?job=renewals) and a DBA
-- pauses them with enabled.  pg_cron starts them, never the worker.
INSERT INTO paas.job (name, fn, runner, run_every, next_run_at, description) VALUES
	('renewals', 'api.run_renewals', 'pg_cron', NULL, NULL,
	 'renews due subscriptions; started by pg_cron (cron.job paas-renewals, api.subscriptions_schedule_renewals)');

CREATE FUNCTION api.subscriptions_schedule_renewals(schedule text DEFAULT '*/5 * * * *') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	job bigint;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'pg_cron is not installed in this database'
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'CREATE EXTENSION pg_cron (cron.database_name must name this database).';
	END IF;
	-- cron.schedule with a job name replaces that job: calling this again
	-- changes the schedule and never adds a second job.
	EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
	  USING 'paas-renewals', coalesce(schedule, '*/5 * * * *'), 'SELECT api.run_renewals()';
	RETURN jsonb_build_object('jobId', job, 'jobName', 'paas-renewals',
							  'schedule', coalesce(schedule, '*/5 * * * *'),
							  'command', 'SELECT api.run_renewals()', 'runsAs', current_user);
END
$$;
COMMENT ON FUNCTION api.subscriptions_schedule_renewals(text) IS
	'DBA: schedules (or reschedules) the pg_cron job paas-renewals running api.run_renewals(), '
	'default every 5 minutes; the job runs as the function owner';

-- Renewal and its schedule are for pg_cron (superuser) and DBAs only.
REVOKE ALL ON FUNCTION api.run_renewals(), api.subscriptions_schedule_renewals(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.run_renewals(), api.subscriptions_schedule_renewals(text) TO paas_owner;
