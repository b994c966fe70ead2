-- paas -- subscriptions paid from the wallet, renewed by pg_cron.
--
-- Rules a reader must know.
--   * Status changes go through paas.subscription_transition(status, event),
--     the C table of extension/subscriptions.c (ACTIVE, GRACE, SUSPENDED,
--     CANCELLED, EXPIRED); an illegal one raises PT409.  Every change of
--     status is recorded in paas.subscription_events with actor and reason.
--   * Periods.  Period n of a subscription runs from anchor + (n - a) months
--     to anchor + (n - a + 1) months, where anchor_at / anchor_period (a) are
--     fixed at the sale and reset only by a revival (renewing a SUSPENDED,
--     EXPIRED or ended CANCELLED subscription starts a new anchor at now).
--     Months are added in UTC, so Jan 31 -> Feb 29 -> Mar 31: chained
--     renewals keep the original day instead of drifting to the 28th.
--   * Money.  Every paid period is one ledger entry (wallet -> 'revenue',
--     kind subscription_charge for the sale, subscription_renewal for every
--     later period, ref {subscriptionId, serviceId, period}), one invoice
--     (kind SUBSCRIPTION, ref with entryId) and one row of
--     paas.subscription_charges, whose primary key (subscription, period)
--     makes a second charge of a period impossible whatever calls race.
--     Single charges use the ledger idempotency key
--     "subscription:<id>:period:<n>".  The price is copied at the sale and
--     kept by renewals; a revival is a new sale at the current list price.
--     A service priced 0 is subscribed and renewed without entry or invoice.
--   * Cancellation (DELETE) takes effect at the period end: the subscription
--     is CANCELLED, still served until current_period_end, then EXPIRED by
--     the renewal run.  No refund, no proration.  Deactivating or deleting
--     an account cancels its live subscriptions the same way
--     (paas.subscriptions_cancel_for_users, called by 10_accounts.sql);
--     reactivating it does not revive them.
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
-- the status machine (C, extension/subscriptions.c)
------------------------------------------------------------------------------

CREATE FUNCTION paas.subscription_transition(status text, event text) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_subscription_transition'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.subscription_transition(text, text) IS
	'next subscription status for an event (the C status machine); PT409 when illegal';

CREATE FUNCTION paas.subscription_transition_allowed(status text, event text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_subscription_transition_allowed'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.subscription_transition_allowed(text, text) IS
	'whether the subscription status machine allows the event in that status';

CREATE FUNCTION paas.subscription_transitions(OUT status text, OUT event text, OUT next_status text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'paas_subscription_transitions'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.subscription_transitions() IS
	'every allowed subscription (status, event) -> status';

------------------------------------------------------------------------------
-- tables
------------------------------------------------------------------------------

CREATE TABLE paas.subscription_settings (
	singleton		boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	grace_period	interval NOT NULL DEFAULT '3 days'
					CHECK (grace_period >= interval '0' AND grace_period <= interval '90 days'),
	expiring_within interval NOT NULL DEFAULT '7 days'
					CHECK (expiring_within > interval '0' AND expiring_within <= interval '90 days'),
	batch_size		integer NOT NULL DEFAULT 10000 CHECK (batch_size BETWEEN 1 AND 10000)
);
INSERT INTO paas.subscription_settings DEFAULT VALUES;
COMMENT ON TABLE paas.subscription_settings IS
	'one row: grace period after a failed renewal (default 3 days), the "expiring soon" '
	'window of notices (default 7 days), subscriptions per renewal batch (default 10000, the '
	'most one ledger call takes); '
	'DBAs change it with UPDATE';

CREATE TABLE paas.subscriptions (
	id						uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id					uuid NOT NULL REFERENCES paas.users (id),
	service_id				uuid NOT NULL REFERENCES paas.services (id),
	status					text NOT NULL DEFAULT 'ACTIVE'
							CHECK (status IN ('ACTIVE', 'GRACE', 'SUSPENDED', 'CANCELLED', 'EXPIRED')),
	price					bigint NOT NULL CHECK (price BETWEEN 0 AND 1000000000),
	period_no				integer NOT NULL DEFAULT 1 CHECK (period_no >= 1),
	anchor_at				timestamptz NOT NULL,
	anchor_period			integer NOT NULL DEFAULT 1 CHECK (anchor_period BETWEEN 1 AND period_no),
	current_period_start	timestamptz NOT NULL,
	current_period_end		timestamptz NOT NULL,
	grace_until				timestamptz,
	cancelled_at			timestamptz,
	suspended_at			timestamptz,
	ended_at				timestamptz,
	status_reason			text CHECK (char_length(status_reason) <= 500),
	idempotency_key			text CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
	created_at				timestamptz NOT NULL DEFAULT now(),
	updated_at				timestamptz NOT NULL DEFAULT now(),
	CHECK (current_period_end > current_period_start),
	CHECK ((status = 'GRACE') = (grace_until IS NOT NULL))
);
-- One live subscription per user and service (EXPIRED ones are history).
CREATE UNIQUE INDEX subscriptions_live_key ON paas.subscriptions (user_id, service_id)
	WHERE status <> 'EXPIRED';
-- A POST retried with the same Idempotency-Key finds its subscription.
CREATE UNIQUE INDEX subscriptions_idem_key ON paas.subscriptions (user_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
-- The renewal run's scan: what may be due, in due order.
CREATE INDEX subscriptions_due_idx ON paas.subscriptions (current_period_end, id)
	WHERE status IN ('ACTIVE', 'GRACE', 'CANCELLED');
CREATE INDEX subscriptions_user_idx ON paas.subscriptions (user_id, created_at DESC);
CREATE INDEX subscriptions_service_idx ON paas.subscriptions (service_id);
COMMENT ON TABLE paas.subscriptions IS
	'a user''s subscription to a catalog service, paid per calendar month from the wallet';
COMMENT ON COLUMN paas.subscriptions.price IS
	'monthly price in IDR at the time of sale; renewals charge it, a revival re-reads the list price';
COMMENT ON COLUMN paas.subscriptions.anchor_at IS
	'start of period anchor_period; period n ends at anchor_at + (n - anchor_period + 1) months (UTC)';

CREATE TABLE paas.subscription_charges (
	subscription_id		uuid NOT NULL REFERENCES paas.subscriptions (id),
	period_no			integer NOT NULL CHECK (period_no >= 1),
	kind				text NOT NULL CHECK (kind IN ('purchase', 'renewal', 'manual_renewal', 'revival')),
	amount				bigint NOT NULL CHECK (amount >= 0),
	period_start		timestamptz NOT NULL,
	period_end			timestamptz NOT NULL,
	entry_id			bigint,		-- paas.ledger_entries.id (NULL: free period)
	invoice_id			uuid,		-- paas.invoices.id (NULL: free period)
	idempotency_key		text CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
	created_at			timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (subscription_id, period_no),
	CHECK ((amount > 0) = (entry_id IS NOT NULL))
);
CREATE UNIQUE INDEX subscription_charges_idem_key
	ON paas.subscription_charges (subscription_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
CREATE INDEX subscription_charges_created_idx ON paas.subscription_charges (created_at);
COMMENT ON TABLE paas.subscription_charges IS
	'one row per paid period: the primary key makes a period chargeable once; entry_id and '
	'invoice_id point into the append-only ledger and the immutable invoices (no foreign key: '
	'a key check would lock those rows on every charge)';

CREATE TABLE paas.subscription_events (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	subscription_id uuid NOT NULL REFERENCES paas.subscriptions (id),
	event			text NOT NULL,
	from_status		text,
	to_status		text NOT NULL,
	actor_id		uuid,			-- owner or administrator; NULL: renewal run or DBA
	reason			text,
	created_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_events_sub_idx ON paas.subscription_events (subscription_id, id);
COMMENT ON TABLE paas.subscription_events IS
	'every status change of a subscription (creation included) with its event, actor and reason';

REVOKE ALL ON paas.subscription_settings, paas.subscriptions, paas.subscription_charges,
	paas.subscription_events FROM PUBLIC;
GRANT SELECT ON paas.subscriptions, paas.subscription_charges, paas.subscription_events TO paas_owner;
GRANT SELECT, UPDATE ON paas.subscription_settings TO paas_owner;

SELECT pg_catalog.pg_extension_config_dump('paas.subscription_settings', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscription_charges', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscription_events', '');

------------------------------------------------------------------------------
-- helpers
------------------------------------------------------------------------------

-- anchor + months calendar months, computed in UTC: the day of the anchor is
-- kept where the month has it and clamped to the month's last day otherwise.
CREATE FUNCTION paas.subscription_bound(anchor timestamptz, months integer) RETURNS timestamptz
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN ((anchor AT TIME ZONE 'UTC') + make_interval(months => months)) AT TIME ZONE 'UTC';
COMMENT ON FUNCTION paas.subscription_bound(timestamptz, integer) IS
	'anchor plus a number of calendar months in UTC (Jan 31 + 1 = Feb 28/29, + 2 = Mar 31)';

CREATE FUNCTION paas.subscription_config() RETURNS paas.subscription_settings
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT s FROM paas.subscription_settings s);
COMMENT ON FUNCTION paas.subscription_config() IS 'the subscription settings row';

CREATE FUNCTION paas.subscription_json(s paas.subscriptions, v paas.services) RETURNS jsonb
	LANGUAGE sql STABLE
	RETURN jsonb_build_object(
		'id', s.id, 'userId', s.user_id, 'serviceId', s.service_id,
		'service', jsonb_build_object('id', v.id, 'name', v.name, 'displayName', v.display_name,
									  'monthlyPrice', v.monthly_price, 'isActive', v.is_active),
		'status', s.status, 'price', s.price, 'monthlyPrice', s.price, 'currency', 'IDR',
		'periodNumber', s.period_no,
		'startDate', paas.iso(s.created_at),
		'currentPeriodStart', paas.iso(s.current_period_start),
		'currentPeriodEnd', paas.iso(s.current_period_end),
		'expiresAt', paas.iso(s.current_period_end),
		'autoRenew', s.status IN ('ACTIVE', 'GRACE'),
		'cancelAtPeriodEnd', s.status = 'CANCELLED',
		'graceUntil', paas.iso(s.grace_until),
		'cancelledAt', paas.iso(s.cancelled_at),
		'suspendedAt', paas.iso(s.suspended_at),
		'endedAt', paas.iso(s.ended_at),
		'statusReason', s.status_reason,
		'createdAt', paas.iso(s.created_at), 'updatedAt', paas.iso(s.updated_at));
COMMENT ON FUNCTION paas.subscription_json(paas.subscriptions, paas.services) IS
	'a subscription as the API prints it';

CREATE FUNCTION paas.subscription_charge_json(c paas.subscription_charges) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'period', c.period_no, 'kind', c.kind, 'amount', c.amount, 'currency', 'IDR',
		'periodStart', paas.iso(c.period_start), 'periodEnd', paas.iso(c.period_end),
		'entryId', c.entry_id,
		'invoice', (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number,
											  'status', i.status)
					  FROM paas.invoices i WHERE i.id = c.invoice_id),
		'createdAt', paas.iso(c.created_at));
COMMENT ON FUNCTION paas.subscription_charge_json(paas.subscription_charges) IS
	'a paid period as the API prints it';

CREATE FUNCTION paas.subscription_log(sub uuid, event text, from_status text, to_status text,
									  actor uuid, reason text)
	RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.subscription_events (subscription_id, event, from_status, to_status,
											  actor_id, reason)
		VALUES (sub, event, from_status, to_status, actor, reason);
	END;
COMMENT ON FUNCTION paas.subscription_log(uuid, text, text, text, uuid, text) IS
	'records a status change of a subscription';

-- Charges one period of s (already locked, already carrying the new period)
-- to its owner: ledger entry (key subscription:<id>:period:<n>), invoice and
-- charge row.  PT402 when the wallet is short (the caller's transaction is
-- lost, so nothing changes).  Returns {charge, balanceAfter}.
CREATE FUNCTION paas.subscription_charge(s paas.subscriptions, v paas.services, kind text,
										 entry_kind text, idem text)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	bal bigint;
	res jsonb;
	inv jsonb;
	c paas.subscription_charges;
	descr text := format('%s subscription, period %s (%s to %s)', v.display_name, s.period_no,
						 to_char(s.current_period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
						 to_char(s.current_period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
BEGIN
	IF s.price > 0 THEN
		bal := paas.wallet_balance(s.user_id);
		IF bal < s.price THEN
			RAISE EXCEPTION 'Insufficient balance'
				USING ERRCODE = 'PT402',
					  DETAIL = format('Current: %s, Required: %s, Shortfall: %s IDR', bal, s.price, s.price - bal);
		END IF;
		res := paas.ledger_post(format('subscription:%s:period:%s', s.id, s.period_no),
			jsonb_build_array(jsonb_build_object(
				'kind', entry_kind,
				'memo', format('%s for %s, period %s',
							   CASE entry_kind WHEN 'subscription_charge' THEN 'Subscription'
							   ELSE 'Subscription renewal' END, v.display_name, s.period_no),
				'ref', jsonb_build_object('subscriptionId', s.id, 'serviceId', v.id,
										  'period', s.period_no),
				'postings', jsonb_build_array(
					jsonb_build_object('account', paas.wallet_account(s.user_id), 'amount', -s.price),
					jsonb_build_object('account', paas.platform_account('revenue'), 'amount', s.price)))));
		inv := paas.issue_invoice(s.user_id, 'SUBSCRIPTION', s.price,
			jsonb_build_object('subscriptionId', s.id, 'serviceId', v.id, 'period', s.period_no,
							   'entryId', (res #>> '{entries,0,id}')::bigint),
			jsonb_build_array(jsonb_build_object('description', descr, 'quantity', 1,
												 'unitPrice', s.price, 'amount', s.price)));
	END IF;
	INSERT INTO paas.subscription_charges (subscription_id, period_no, kind, amount, period_start,
										   period_end, entry_id, invoice_id, idempotency_key)
	VALUES (s.id, s.period_no, kind, s.price, s.current_period_start, s.current_period_end,
			(res #>> '{entries,0,id}')::bigint, (inv ->> 'id')::uuid, idem)
	RETURNING * INTO c;
	RETURN jsonb_build_object(
		'charge', paas.subscription_charge_json(c),
		'balanceAfter', coalesce((res #>> '{entries,0,postings,0,balanceAfter}')::bigint,
								 paas.wallet_balance(s.user_id)));
END
$$;
COMMENT ON FUNCTION paas.subscription_charge(paas.subscriptions, paas.services, text, text, text) IS
	'posts, invoices and records the current period of a locked subscription; PT402 when short';

-- The caller's subscription, locked FOR UPDATE; PT404 for an unknown id,
-- a malformed id and another user's subscription alike.
CREATE FUNCTION paas.subscription_of(uid uuid, id_text text) RETURNS paas.subscriptions
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.subscriptions;
BEGIN
	SELECT * INTO s FROM paas.subscriptions
	 WHERE id = paas.to_uuid(id_text) AND (uid IS NULL OR user_id = uid)
	 FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Subscription not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN s;
END
$$;
COMMENT ON FUNCTION paas.subscription_of(uuid, text) IS
	'locks and returns a subscription of uid (any owner when uid is NULL); PT404 otherwise';

-- One page of subscriptions: {rows, total}.  uid NULL: every user.
CREATE FUNCTION paas.subscriptions_page(req jsonb, uid uuid, default_limit integer)
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	lim int := coalesce((req ->> 'limit')::int, default_limit);
	off int := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	st text := req ->> 'status';
	svc uuid := paas.filter_id(req ->> 'serviceId');
	total bigint;
	rows jsonb;
BEGIN
	SELECT count(*) INTO total FROM paas.subscriptions s
	 WHERE (uid IS NULL OR s.user_id = uid) AND (st IS NULL OR s.status = st)
	   AND (svc IS NULL OR s.service_id = svc);
	SELECT coalesce(jsonb_agg(paas.subscription_json(p.s, p.v) ORDER BY p.rn), '[]')
	  INTO rows
	  FROM (SELECT s, v, row_number() OVER (ORDER BY s.created_at DESC, s.id) AS rn
			  FROM paas.subscriptions s JOIN paas.services v ON v.id = s.service_id
			 WHERE (uid IS NULL OR s.user_id = uid) AND (st IS NULL OR s.status = st)
			   AND (svc IS NULL OR s.service_id = svc)
			 ORDER BY s.created_at DESC, s.id
			 LIMIT lim OFFSET off) p;
	RETURN jsonb_build_object('rows', rows, 'total', total);
END
$$;
COMMENT ON FUNCTION paas.subscriptions_page(jsonb, uuid, integer) IS
	'newest first; status, serviceId, page, limit (validated by the caller); {rows, total}';

CREATE FUNCTION paas.check_subscription_filters(errs jsonb, req jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'status', false,
		ARRAY['ACTIVE', 'GRACE', 'SUSPENDED', 'CANCELLED', 'EXPIRED']);
	errs := paas.check_text(errs, req, 'serviceId', false, 1, 64);
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_subscription_filters(jsonb, jsonb) IS
	'appends errors for invalid page, limit, status and serviceId filters';

------------------------------------------------------------------------------
-- api: the owner's subscriptions
------------------------------------------------------------------------------

CREATE FUNCTION api.subscriptions_create(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
	key text := ctx ->> 'idempotencyKey';
	sid uuid;
	s paas.subscriptions;
	v paas.services;
	paid jsonb;
	prior jsonb := paas.outcome_claim('api.subscriptions_create', req, ctx);
BEGIN
	IF prior IS NOT NULL THEN
		RETURN prior || jsonb_build_object('replayed', true);
	END IF;
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'serviceId', true, 1, 64);
	PERFORM paas.raise_if_invalid(errs);
	-- an id that cannot exist finds no service (404), like an unknown one
	sid := paas.filter_id(req ->> 'serviceId');

	-- A retried request answers the subscription it created.
	IF key IS NOT NULL THEN
		SELECT * INTO s FROM paas.subscriptions WHERE user_id = u.id AND idempotency_key = key;
		IF FOUND THEN
			IF s.service_id <> sid THEN
				RAISE EXCEPTION 'Idempotency-Key was already used for another request'
					USING ERRCODE = 'PT409';
			END IF;
			SELECT * INTO v FROM paas.services WHERE id = s.service_id;
			RETURN paas.outcome_save(ctx, paas.subscription_json(s, v) || jsonb_build_object('replayed', true,
				'charge', (SELECT paas.subscription_charge_json(c) FROM paas.subscription_charges c
							WHERE c.subscription_id = s.id AND c.period_no = 1)));
		END IF;
	END IF;

	-- The catalog's DELETE locks the row FOR UPDATE: it cannot run between
	-- this check and the insert that references the service.
	SELECT * INTO v FROM paas.services WHERE id = sid FOR KEY SHARE;
	IF NOT FOUND OR v.deleted_at IS NOT NULL OR NOT v.is_active THEN
		RAISE EXCEPTION 'Service not found or inactive' USING ERRCODE = 'PT404';
	END IF;
	IF EXISTS (SELECT 1 FROM paas.subscriptions x
				WHERE x.user_id = u.id AND x.service_id = v.id AND x.status <> 'EXPIRED'
				  AND (key IS NULL OR x.idempotency_key IS DISTINCT FROM key)) THEN
		RAISE EXCEPTION 'You already have a subscription to this service'
			USING ERRCODE = 'PT409',
				  HINT = 'Renew the existing subscription instead (PUT /subscriptions/:id/renew).';
	END IF;
	PERFORM paas.instance_capacity_check(v.id);

	BEGIN
		INSERT INTO paas.subscriptions (user_id, service_id, price, anchor_at, current_period_start,
										current_period_end, idempotency_key)
		VALUES (u.id, v.id, v.monthly_price, now(), now(), paas.subscription_bound(now(), 1), key)
		ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		-- A concurrent request subscribed first.  With this key it is a
		-- double submit (its row reached the live index before the key
		-- index): answer it below; with another key it is a conflict.
		IF key IS NULL OR NOT EXISTS (SELECT 1 FROM paas.subscriptions x
									   WHERE x.user_id = u.id AND x.idempotency_key = key) THEN
			RAISE EXCEPTION 'You already have a subscription to this service' USING ERRCODE = 'PT409';
		END IF;
	END;
	IF s.id IS NULL THEN
		-- a concurrent request with the same key won: answer its result
		RETURN api.subscriptions_create(req, ctx);
	END IF;

	paid := paas.subscription_charge(s, v, 'purchase', 'subscription_charge', NULL);
	PERFORM paas.subscription_log(s.id, 'create', NULL, s.status, u.id, NULL);
	RETURN paas.outcome_save(ctx, paas.subscription_json(s, v) || jsonb_build_object('replayed', false) || paid);
END
$$;
COMMENT ON FUNCTION api.subscriptions_create(jsonb, jsonb) IS
	'POST /subscriptions {serviceId}: charges the first month from the wallet and invoices it; '
	'PT404 unknown or inactive service, PT409 live subscription exists, PT402 wallet short; '
	'ctx.idempotencyKey makes a retry answer the first subscription';

CREATE FUNCTION api.subscriptions_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	r jsonb;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_subscription_filters('[]', req));
	r := paas.subscriptions_page(req, u.id, 10);
	RETURN jsonb_build_object('data', r -> 'rows',
							  'pagination', paas.pagination(req, (r ->> 'total')::bigint));
END
$$;
COMMENT ON FUNCTION api.subscriptions_list(jsonb, jsonb) IS
	'GET /subscriptions: the caller''s subscriptions, newest first; status, serviceId, page, limit';

CREATE FUNCTION api.subscriptions_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	s paas.subscriptions;
	v paas.services;
BEGIN
	SELECT * INTO s FROM paas.subscriptions
	 WHERE id = paas.to_uuid(req ->> 'id') AND user_id = u.id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Subscription not found' USING ERRCODE = 'PT404';
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object(
		'instance', paas.subscription_instance_json(s.id),
		'charges', (SELECT coalesce(jsonb_agg(paas.subscription_charge_json(c) ORDER BY c.period_no DESC), '[]')
					  FROM paas.subscription_charges c WHERE c.subscription_id = s.id));
END
$$;
COMMENT ON FUNCTION api.subscriptions_get(jsonb, jsonb) IS
	'GET /subscriptions/:id: one of the caller''s subscriptions with its paid periods';

CREATE FUNCTION api.subscriptions_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	r jsonb;
	bal bigint := paas.wallet_balance(u.id);
BEGIN
	SELECT jsonb_build_object(
		'total', count(*),
		'activeCount', count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE')),
		'byStatus', jsonb_build_object(
			'ACTIVE', count(*) FILTER (WHERE status = 'ACTIVE'),
			'GRACE', count(*) FILTER (WHERE status = 'GRACE'),
			'SUSPENDED', count(*) FILTER (WHERE status = 'SUSPENDED'),
			'CANCELLED', count(*) FILTER (WHERE status = 'CANCELLED'),
			'EXPIRED', count(*) FILTER (WHERE status = 'EXPIRED')),
		'monthlySpend', coalesce(sum(price) FILTER (WHERE status IN ('ACTIVE', 'GRACE')), 0),
		'currency', 'IDR',
		'balance', bal)
	  INTO r
	  FROM paas.subscriptions WHERE user_id = u.id;
	RETURN r || jsonb_build_object(
		'balanceCoversNextRenewals', bal >= (r ->> 'monthlySpend')::bigint,
		'totalSpent', (SELECT coalesce(sum(c.amount), 0) FROM paas.subscription_charges c
						JOIN paas.subscriptions s ON s.id = c.subscription_id
					   WHERE s.user_id = u.id),
		'nextRenewals', (SELECT coalesce(jsonb_agg(jsonb_build_object(
								'subscriptionId', s.id, 'serviceId', v.id, 'serviceName', v.name,
								'displayName', v.display_name, 'status', s.status,
								'renewsAt', paas.iso(s.current_period_end), 'amount', s.price)
								ORDER BY s.current_period_end, s.id), '[]')
						   FROM (SELECT * FROM paas.subscriptions x
								  WHERE x.user_id = u.id AND x.status IN ('ACTIVE', 'GRACE')
								  ORDER BY x.current_period_end, x.id LIMIT 5) s
						   JOIN paas.services v ON v.id = s.service_id));
END
$$;
COMMENT ON FUNCTION api.subscriptions_stats(jsonb, jsonb) IS
	'GET /subscriptions/stats: counts by status, monthly spend, balance, the next 5 renewals';

-- Pays one period now.  ACTIVE, GRACE and a CANCELLED subscription still
-- in its period get the next period of their anchor (an early renewal; a
-- cancelled one resumes renewing); SUSPENDED, EXPIRED and an ended CANCELLED
-- one are revived: a new anchor at now, at the current list price.
CREATE FUNCTION api.subscriptions_renew(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	key text := ctx ->> 'idempotencyKey';
	prior jsonb := paas.outcome_claim('api.subscriptions_renew', req, ctx);
	s paas.subscriptions;
	v paas.services;
	old paas.subscriptions;
	revive boolean;
	paid jsonb;
BEGIN
	IF prior IS NOT NULL THEN
		RETURN prior || jsonb_build_object('replayed', true);
	END IF;
	s := paas.subscription_of(u.id, req ->> 'id');
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	IF key IS NOT NULL AND EXISTS (SELECT 1 FROM paas.subscription_charges c
									WHERE c.subscription_id = s.id AND c.idempotency_key = key) THEN
		RETURN paas.outcome_save(ctx, paas.subscription_json(s, v) || jsonb_build_object('replayed', true,
			'charge', (SELECT paas.subscription_charge_json(c) FROM paas.subscription_charges c
						WHERE c.subscription_id = s.id AND c.idempotency_key = key)));
	END IF;

	old := s;
	revive := s.status IN ('SUSPENDED', 'EXPIRED')
			  OR (s.status = 'CANCELLED' AND s.current_period_end <= now());
	IF revive AND (v.deleted_at IS NOT NULL OR NOT v.is_active) THEN
		RAISE EXCEPTION 'Service is no longer available' USING ERRCODE = 'PT409';
	END IF;
	PERFORM paas.instance_capacity_check(v.id, s.id) WHERE revive;
	s.status := paas.subscription_transition(s.status, 'renew');
	s.period_no := s.period_no + 1;
	IF revive THEN
		s.price := v.monthly_price;
		s.anchor_at := now();
		s.anchor_period := s.period_no;
		s.current_period_start := now();
	ELSE
		s.current_period_start := s.current_period_end;
	END IF;
	s.current_period_end := paas.subscription_bound(s.anchor_at, s.period_no - s.anchor_period + 1);
	s.grace_until := NULL;
	s.cancelled_at := NULL;
	s.suspended_at := NULL;
	s.ended_at := NULL;
	s.status_reason := NULL;
	s.updated_at := now();
	BEGIN
		UPDATE paas.subscriptions
		   SET status = s.status, price = s.price, period_no = s.period_no, anchor_at = s.anchor_at,
			   anchor_period = s.anchor_period, current_period_start = s.current_period_start,
			   current_period_end = s.current_period_end, grace_until = NULL, cancelled_at = NULL,
			   suspended_at = NULL, ended_at = NULL, status_reason = NULL, updated_at = now()
		 WHERE id = s.id;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'You already have another subscription to this service'
			USING ERRCODE = 'PT409';
	END;
	paid := paas.subscription_charge(s, v, CASE WHEN revive THEN 'revival' ELSE 'manual_renewal' END,
									 'subscription_renewal', key);
	IF old.status <> s.status THEN
		PERFORM paas.subscription_log(s.id, 'renew', old.status, s.status, u.id,
									  CASE WHEN revive THEN 'revived by the owner' ELSE 'renewed by the owner' END);
	END IF;
	RETURN paas.outcome_save(ctx, paas.subscription_json(s, v) || jsonb_build_object('replayed', false) || paid);
END
$$;
COMMENT ON FUNCTION api.subscriptions_renew(jsonb, jsonb) IS
	'PUT /subscriptions/:id/renew: pays one more period now (revives SUSPENDED/EXPIRED at the list price); '
	'PT402 wallet short, PT404 not the caller''s; ctx.idempotencyKey makes a retry charge nothing';

CREATE FUNCTION api.subscriptions_cancel(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	s paas.subscriptions := paas.subscription_of(u.id, req ->> 'id');
	v paas.services;
	prev text := s.status;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_text('[]', req, 'reason', false, 0, 500));
	s.status := paas.subscription_transition(s.status, 'cancel');
	UPDATE paas.subscriptions
	   SET status = s.status, cancelled_at = now(), grace_until = NULL,
		   status_reason = req ->> 'reason', updated_at = now()
	 WHERE id = s.id
	RETURNING * INTO s;
	PERFORM paas.subscription_log(s.id, 'cancel', prev, s.status, u.id, req ->> 'reason');
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object(
		'accessUntil', paas.iso(greatest(s.current_period_end, now())), 'refund', 0);
END
$$;
COMMENT ON FUNCTION api.subscriptions_cancel(jsonb, jsonb) IS
	'DELETE /subscriptions/:id: cancels at the end of the paid period, no refund; PT409 when already cancelled or ended';

-- The account rule, the one place it lives: when an account is deactivated
-- or deleted (10_accounts.sql calls this from api.auth_delete_account,
-- api.users_update and api.users_toggle_status to inactive, api.users_delete
-- and api.users_bulk deactivate / delete), each of its live subscriptions
-- (ACTIVE, GRACE, SUSPENDED) is cancelled at period end exactly as the
-- owner's DELETE /subscriptions/:id does: event "cancel" through the status
-- machine, recorded in paas.subscription_events with actor and reason, no
-- refund.  The renewal run then expires them instead of charging them.
-- Reactivating the account does not revive them: the owner renews or
-- subscribes again.  Rows a renewal run holds are waited for.  Returns the
-- number of subscriptions cancelled.
CREATE FUNCTION paas.subscriptions_cancel_for_users(user_ids uuid[], reason text,
													actor_id uuid DEFAULT NULL)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	WITH o AS (
		SELECT s.id, s.status FROM paas.subscriptions s
		 WHERE s.user_id = ANY (user_ids) AND s.status IN ('ACTIVE', 'GRACE', 'SUSPENDED')
		 ORDER BY s.id
		   FOR UPDATE),
	c AS (
		UPDATE paas.subscriptions s
		   SET status = paas.subscription_transition(o.status, 'cancel'), cancelled_at = now(),
			   grace_until = NULL, status_reason = reason, updated_at = now()
		  FROM o
		 WHERE s.id = o.id
		RETURNING s.id, o.status AS from_status, s.status AS to_status)
	INSERT INTO paas.subscription_events (subscription_id, event, from_status, to_status, actor_id, reason)
	SELECT c.id, 'cancel', c.from_status, c.to_status, subscriptions_cancel_for_users.actor_id,
		   subscriptions_cancel_for_users.reason
	  FROM c ORDER BY c.id;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.subscriptions_cancel_for_users(uuid[], text, uuid) IS
	'cancels at period end (no refund) the live subscriptions of deactivated or deleted accounts, with the reason';

------------------------------------------------------------------------------
-- api: administrators
------------------------------------------------------------------------------

CREATE FUNCTION api.subscriptions_admin_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	uid uuid;
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_subscription_filters('[]', req));
	IF req ->> 'userId' IS NOT NULL THEN
		SELECT id INTO uid FROM paas.users WHERE id = paas.to_uuid(req ->> 'userId');
		IF NOT FOUND THEN
			RAISE EXCEPTION 'User not found' USING ERRCODE = 'PT404';
		END IF;
	END IF;
	r := paas.subscriptions_page(req, uid, 20);
	RETURN jsonb_build_object('data', r -> 'rows',
							  'pagination', paas.pagination(req, (r ->> 'total')::bigint, 20));
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_list(jsonb, jsonb) IS
	'GET /admin/subscriptions and /admin/subscriptions/users/:userId: userId, status, serviceId, page, limit';

CREATE FUNCTION api.subscriptions_admin_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.subscriptions;
	v paas.services;
	o paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO s FROM paas.subscriptions WHERE id = paas.to_uuid(req ->> 'id');
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Subscription not found' USING ERRCODE = 'PT404';
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	SELECT * INTO o FROM paas.users WHERE id = s.user_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object(
		'user', jsonb_build_object('id', o.id, 'name', o.name, 'email', o.email),
		'balance', paas.wallet_balance(s.user_id),
		'charges', (SELECT coalesce(jsonb_agg(paas.subscription_charge_json(c) ORDER BY c.period_no DESC), '[]')
					  FROM paas.subscription_charges c WHERE c.subscription_id = s.id),
		'events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
						'event', e.event, 'from', e.from_status, 'to', e.to_status,
						'actorId', e.actor_id, 'reason', e.reason,
						'createdAt', paas.iso(e.created_at)) ORDER BY e.id), '[]')
					 FROM paas.subscription_events e WHERE e.subscription_id = s.id));
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_get(jsonb, jsonb) IS
	'GET /admin/subscriptions/:id: any subscription with its owner, charges and status history';

CREATE FUNCTION api.subscriptions_admin_set_status(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	errs jsonb := '[]';
	s paas.subscriptions;
	v paas.services;
	prev text;
	ev text;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_enum(errs, req, 'status', true, ARRAY['ACTIVE', 'SUSPENDED', 'CANCELLED', 'EXPIRED']);
	errs := paas.check_text(errs, req, 'reason', true, 3, 500);
	s := paas.subscription_of(NULL, req ->> 'id');
	PERFORM paas.raise_if_invalid(errs);
	prev := s.status;
	ev := CASE req ->> 'status' WHEN 'ACTIVE' THEN 'activate' WHEN 'SUSPENDED' THEN 'suspend'
							   WHEN 'CANCELLED' THEN 'cancel' ELSE 'expire' END;
	s.status := paas.subscription_transition(s.status, ev);
	BEGIN
		UPDATE paas.subscriptions
		   SET status = s.status,
			   grace_until = NULL,
			   cancelled_at = CASE s.status WHEN 'CANCELLED' THEN coalesce(cancelled_at, now())
							  WHEN 'ACTIVE' THEN NULL ELSE cancelled_at END,
			   suspended_at = CASE s.status WHEN 'SUSPENDED' THEN coalesce(suspended_at, now())
							  WHEN 'ACTIVE' THEN NULL ELSE suspended_at END,
			   ended_at = CASE s.status WHEN 'EXPIRED' THEN coalesce(ended_at, now()) END,
			   status_reason = req ->> 'reason', updated_at = now()
		 WHERE id = s.id
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'The user has another live subscription to this service'
			USING ERRCODE = 'PT409';
	END;
	PERFORM paas.subscription_log(s.id, 'admin_' || ev, prev, s.status, adm.id, req ->> 'reason');
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object('previousStatus', prev);
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_set_status(jsonb, jsonb) IS
	'PUT /admin/subscriptions/:id/status {status: ACTIVE|SUSPENDED|CANCELLED|EXPIRED, reason}: '
	'through the status machine (PT409 when illegal), without any charge or refund';

CREATE FUNCTION api.subscriptions_admin_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
	cfg paas.subscription_settings := paas.subscription_config();
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'total', count(*),
		'byStatus', jsonb_build_object(
			'ACTIVE', count(*) FILTER (WHERE status = 'ACTIVE'),
			'GRACE', count(*) FILTER (WHERE status = 'GRACE'),
			'SUSPENDED', count(*) FILTER (WHERE status = 'SUSPENDED'),
			'CANCELLED', count(*) FILTER (WHERE status = 'CANCELLED'),
			'EXPIRED', count(*) FILTER (WHERE status = 'EXPIRED')),
		'monthlyRecurringRevenue', coalesce(sum(price) FILTER (WHERE status IN ('ACTIVE', 'GRACE')), 0),
		'dueNow', count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE', 'CANCELLED')
										 AND current_period_end <= now()),
		'renewingWithin', jsonb_build_object(
			'window', cfg.expiring_within::text,
			'count', count(*) FILTER (WHERE status = 'ACTIVE'
										   AND current_period_end <= now() + cfg.expiring_within)),
		'gracePeriod', cfg.grace_period::text,
		'currency', 'IDR')
	  INTO r
	  FROM paas.subscriptions;
	RETURN r || jsonb_build_object(
		'chargesLast30Days', (SELECT jsonb_build_object('count', count(*), 'amount', coalesce(sum(amount), 0))
								FROM paas.subscription_charges
							   WHERE created_at >= now() - interval '30 days'),
		-- the subscription counts the catalog's own statistics leave out
		'byService', (SELECT coalesce(jsonb_agg(jsonb_build_object(
							'serviceId', v.id, 'name', v.name, 'displayName', v.display_name,
							'live', n.live, 'active', n.active, 'total', n.total,
							'monthlyRecurringRevenue', n.mrr) ORDER BY n.live DESC, v.name), '[]')
						FROM (SELECT service_id, count(*) AS total,
									 count(*) FILTER (WHERE status <> 'EXPIRED') AS live,
									 count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE')) AS active,
									 coalesce(sum(price) FILTER (WHERE status IN ('ACTIVE', 'GRACE')), 0) AS mrr
								FROM paas.subscriptions GROUP BY service_id) n
						JOIN paas.services v ON v.id = n.service_id));
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_stats(jsonb, jsonb) IS
	'GET /admin/subscriptions/stats: counts by status and by service, recurring revenue, due now, charges of 30 days';

------------------------------------------------------------------------------
-- notices (for the notification mailer of a later issue)
------------------------------------------------------------------------------

-- expiring_soon: a CANCELLED subscription ending within the window, or an
-- ACTIVE one renewing within it whose wallet does not cover the price;
-- grace: renewal failed, served until grace_until; suspended: not served.
CREATE VIEW reporting.subscription_notices AS
SELECT CASE WHEN s.status = 'SUSPENDED' THEN 'suspended'
			WHEN s.status = 'GRACE' THEN 'grace'
			ELSE 'expiring_soon' END AS notice,
	   s.id AS subscription_id, s.user_id, u.email AS user_email, u.name AS user_name,
	   s.service_id, v.name AS service_name, v.display_name AS service_display_name,
	   s.status, s.price, coalesce(a.balance, 0) AS wallet_balance,
	   s.current_period_end, s.grace_until, s.suspended_at,
	   CASE WHEN s.status = 'SUSPENDED' THEN s.suspended_at
			WHEN s.status = 'GRACE' THEN s.grace_until
			ELSE s.current_period_end END AS due_at
  FROM paas.subscriptions s
  JOIN paas.users u ON u.id = s.user_id
  JOIN paas.services v ON v.id = s.service_id
  LEFT JOIN paas.ledger_accounts a ON a.user_id = s.user_id AND a.kind = 'wallet'
 CROSS JOIN paas.subscription_settings c
 WHERE s.status IN ('SUSPENDED', 'GRACE')
	OR (s.status = 'CANCELLED' AND s.current_period_end > now()
		AND s.current_period_end <= now() + c.expiring_within)
	OR (s.status = 'ACTIVE' AND s.current_period_end <= now() + c.expiring_within
		AND coalesce(a.balance, 0) < s.price);
COMMENT ON VIEW reporting.subscription_notices IS
	'subscriptions to notify: expiring_soon (cancelled and ending, or renewing with a short wallet '
	'within subscription_settings.expiring_within), grace, suspended';

GRANT SELECT ON reporting.subscription_notices TO paas_bi, paas_owner;

CREATE FUNCTION api.subscriptions_admin_notices(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	lim int;
	total bigint;
	rows jsonb;
	k text;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'notice', false, ARRAY['expiring_soon', 'grace', 'suspended']);
	PERFORM paas.raise_if_invalid(errs);
	k := req ->> 'notice';
	lim := coalesce((req ->> 'limit')::int, 20);
	SELECT count(*) INTO total FROM reporting.subscription_notices n WHERE k IS NULL OR n.notice = k;
	SELECT coalesce(jsonb_agg(jsonb_build_object(
				'notice', n.notice, 'subscriptionId', n.subscription_id,
				'user', jsonb_build_object('id', n.user_id, 'email', n.user_email, 'name', n.user_name),
				'service', jsonb_build_object('id', n.service_id, 'name', n.service_name,
											  'displayName', n.service_display_name),
				'status', n.status, 'price', n.price, 'balance', n.wallet_balance,
				'currentPeriodEnd', paas.iso(n.current_period_end),
				'graceUntil', paas.iso(n.grace_until), 'suspendedAt', paas.iso(n.suspended_at),
				'dueAt', paas.iso(n.due_at)) ORDER BY n.due_at, n.subscription_id), '[]')
	  INTO rows
	  FROM (SELECT * FROM reporting.subscription_notices x
			 WHERE k IS NULL OR x.notice = k
			 ORDER BY x.due_at, x.subscription_id
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) n;
	RETURN jsonb_build_object('data', rows, 'pagination', paas.pagination(req, total, 20));
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_notices(jsonb, jsonb) IS
	'GET /admin/subscriptions/notices: expiring_soon, grace and suspended subscriptions; notice, page, limit';

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

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.subscriptions_create(jsonb, jsonb)', 'api.subscriptions_list(jsonb, jsonb)',
		'api.subscriptions_get(jsonb, jsonb)', 'api.subscriptions_stats(jsonb, jsonb)',
		'api.subscriptions_renew(jsonb, jsonb)', 'api.subscriptions_cancel(jsonb, jsonb)',
		'api.subscriptions_admin_list(jsonb, jsonb)', 'api.subscriptions_admin_get(jsonb, jsonb)',
		'api.subscriptions_admin_set_status(jsonb, jsonb)', 'api.subscriptions_admin_stats(jsonb, jsonb)',
		'api.subscriptions_admin_notices(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	-- Renewal and its schedule are for pg_cron (superuser) and DBAs only.
	REVOKE ALL ON FUNCTION api.run_renewals(), api.subscriptions_schedule_renewals(text) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION api.run_renewals(), api.subscriptions_schedule_renewals(text) TO paas_owner;
	-- DBAs change the subscription settings with UPDATE.
	GRANT SELECT, UPDATE ON paas.subscription_settings TO paas_owner;
END
$grants$;
