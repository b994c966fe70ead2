-- paas -- subscriptions paid from the wallet: the status machine, periods,
-- the sale and the owner's routes.  Administrators' routes are
-- 61_subscription_admin.sql; the renewal run (pg_cron) is 62_renewals.sql.
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
--     (paas.subscriptions_cancel_for_users, called by 11_auth.sql and
--     12_user_admin.sql); reactivating it does not revive them.
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
-- or deleted (11_auth.sql calls this from api.auth_delete_account;
-- 12_user_admin.sql from api.users_update and api.users_toggle_status to
-- inactive, api.users_delete and api.users_bulk deactivate / delete), each of its live subscriptions
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

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.subscriptions_create(jsonb, jsonb)', 'api.subscriptions_list(jsonb, jsonb)',
		'api.subscriptions_get(jsonb, jsonb)', 'api.subscriptions_stats(jsonb, jsonb)',
		'api.subscriptions_renew(jsonb, jsonb)', 'api.subscriptions_cancel(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	-- DBAs change the subscription settings with UPDATE.
	GRANT SELECT, UPDATE ON paas.subscription_settings TO paas_owner;
END
$grants$;
