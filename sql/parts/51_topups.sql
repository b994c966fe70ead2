-- paas -- top-ups: the amounts users add to their wallet, their Midtrans
-- orders, credits and reversals, and the Snap round trip.  What Midtrans
-- says of an order (notifications, the status API) is 52_midtrans.sql.
--
-- Money moves only through the ledger (40_ledger.sql): paas.ledger_post()
-- with an idempotency key derived from the Midtrans order id, so a credit or
-- a reversal is posted at most once whatever arrives how often.
--
-- Top-ups.  A top-up (paas.topups) is one amount a user wants to add.  Each
-- request to Snap uses a fresh order id (paas.topup_orders): Midtrans allows
-- one transaction per order id, and a Snap call that timed out may or may not
-- have created one.  Every order id of a top-up stays mapped to it, so a
-- payment through any of its links is credited.  Money is counted per order:
-- an order is credited once (key "midtrans:<order>:credit") and reversed up
-- to the cumulative refunded amount (key "midtrans:<order>:reverse:<total>").
--
-- The Snap round trip (POST /billing/topup, POST /transactions/:id/pay) is
-- the one documented exception to "one SQL call per route": the function
-- first answers {"$snap": {...}} (the top-up and its order are committed,
-- PENDING), httpd calls Snap outside any transaction, then calls the SAME
-- function again with ctx.snap = {orderId, token, redirectUrl} or
-- {orderId, error}.  ctx is written by httpd only; a client cannot reach the
-- second step.

------------------------------------------------------------------------------
-- tables
------------------------------------------------------------------------------

CREATE TABLE paas.topups (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id			uuid NOT NULL REFERENCES paas.users (id),
	amount			bigint NOT NULL CHECK (amount BETWEEN 10000 AND 10000000),
	currency		text NOT NULL DEFAULT 'IDR' CHECK (currency = 'IDR'),
	status			text NOT NULL DEFAULT 'PENDING'
					CHECK (status IN ('PENDING', 'PAID', 'FAILED', 'EXPIRED', 'CANCELLED', 'REFUNDED')),
	order_id		text NOT NULL,		-- the current order (latest Snap attempt)
	idempotency_key text,
	snap_token		text,
	redirect_url	text,
	snap_expires_at timestamptz,
	payment_type	text,
	gateway_status	text,				-- last transaction_status seen
	last_error		text,				-- last Snap failure, for support
	paid_at			timestamptz,
	expires_at		timestamptz NOT NULL DEFAULT now() + interval '24 hours',
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX topups_idem_key ON paas.topups (user_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
CREATE INDEX topups_user_created_idx ON paas.topups (user_id, created_at DESC);
CREATE INDEX topups_pending_idx ON paas.topups (expires_at) WHERE status = 'PENDING';
COMMENT ON TABLE paas.topups IS 'credit top-ups paid through Midtrans Snap';

CREATE TABLE paas.topup_orders (
	order_id		text PRIMARY KEY CHECK (order_id ~ '^[A-Za-z0-9_.~-]{1,50}$'),
	topup_id		uuid NOT NULL REFERENCES paas.topups (id),
	status			text NOT NULL DEFAULT 'PENDING'
					CHECK (status IN ('PENDING', 'PAID', 'FAILED', 'PARTIALLY_REFUNDED', 'REFUNDED')),
	snap_requested_at timestamptz,
	snap_token		text,
	redirect_url	text,
	gateway_status	text,
	gateway_transaction_id text,
	payment_type	text,
	credited		bigint NOT NULL DEFAULT 0 CHECK (credited >= 0),
	reversed		bigint NOT NULL DEFAULT 0 CHECK (reversed >= 0 AND reversed <= credited),
	credit_entry	jsonb,				-- {entryId, balanceBefore, balanceAfter}
	invoice_id		uuid,
	paid_at			timestamptz,
	last_checked_at timestamptz,		-- last status-API check (reconciliation)
	check_error		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	-- a notification said refund / chargeback, or deny / cancel / expire
	-- after success (a reversal, or a relabelled or late notification): the
	-- status API decides, see midtrans_apply
	verify_requested_at timestamptz
);
CREATE INDEX topup_orders_topup_idx ON paas.topup_orders (topup_id);
CREATE INDEX topup_orders_pending_idx ON paas.topup_orders (created_at) WHERE status = 'PENDING';
COMMENT ON TABLE paas.topup_orders IS
	'one Midtrans order id per Snap attempt of a top-up; money is counted per order';

CREATE TABLE paas.topup_reversals (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	order_id		text NOT NULL REFERENCES paas.topup_orders (order_id),
	topup_id		uuid NOT NULL REFERENCES paas.topups (id),
	user_id			uuid NOT NULL REFERENCES paas.users (id),
	kind			text NOT NULL CHECK (kind IN ('REFUND', 'CHARGEBACK', 'REVERSAL')),
	amount			bigint NOT NULL CHECK (amount > 0),
	status			text NOT NULL CHECK (status IN ('SUCCESS', 'BLOCKED')),
	entry			jsonb,				-- {entryId, balanceBefore, balanceAfter}
	created_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX topup_reversals_user_idx ON paas.topup_reversals (user_id, created_at DESC);
-- one exposure, one record: an order has at most one BLOCKED reversal (its
-- amount follows the latest check; it becomes SUCCESS once covered)
CREATE UNIQUE INDEX topup_reversals_one_blocked ON paas.topup_reversals (order_id)
	WHERE status = 'BLOCKED';
COMMENT ON TABLE paas.topup_reversals IS
	'refunds, chargebacks and reversals (deny / cancel after success) of paid orders; BLOCKED when the wallet could not cover them';

-- A top-up's invoice names it (50_invoices.sql creates the invoices before
-- the top-ups exist).
ALTER TABLE paas.invoices ADD FOREIGN KEY (topup_id) REFERENCES paas.topups (id);


-- Money records are data, not extension objects: pg_dump must keep them.
SELECT pg_catalog.pg_extension_config_dump('paas.topups', '');
SELECT pg_catalog.pg_extension_config_dump('paas.topup_orders', '');
SELECT pg_catalog.pg_extension_config_dump('paas.topup_reversals', '');

------------------------------------------------------------------------------
-- top-ups: creation and the Snap round trip
------------------------------------------------------------------------------

-- A fresh URL-safe order id (Midtrans: at most 50 of [A-Za-z0-9_.~-]).
CREATE FUNCTION paas.new_order_id(uid uuid) RETURNS text
	LANGUAGE sql VOLATILE
	RETURN 'TOPUP-' || upper(substr(replace(uid::text, '-', ''), 1, 8)) || '-'
		   || (extract(epoch FROM clock_timestamp()) * 1000)::bigint || '-'
		   || upper(encode(public.gen_random_bytes(4), 'hex'));
COMMENT ON FUNCTION paas.new_order_id(uuid) IS 'TOPUP-<user>-<ms>-<random>, unique and URL-safe';

CREATE FUNCTION paas.topup_json(t paas.topups) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'id', t.id, 'transactionId', t.id, 'orderId', t.order_id, 'amount', t.amount,
		'currency', t.currency, 'status', t.status, 'snapToken', t.snap_token,
		'redirectUrl', t.redirect_url, 'snapExpiresAt', paas.iso(t.snap_expires_at),
		'paymentType', t.payment_type, 'paidAt', paas.iso(t.paid_at),
		'expiresAt', paas.iso(t.expires_at), 'expiredAt', paas.iso(t.expires_at),
		'createdAt', paas.iso(t.created_at), 'updatedAt', paas.iso(t.updated_at),
		'invoice', (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
					  FROM paas.invoices i
					 WHERE i.topup_id = t.id AND i.kind = 'TOPUP'
					 ORDER BY i.issued_at LIMIT 1));
COMMENT ON FUNCTION paas.topup_json(paas.topups) IS 'a top-up as the API prints it';

-- Snap link lifetime: shorter than the top-up's 24 h, so /pay can renew it.
CREATE FUNCTION paas.snap_link_minutes() RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN 60;
COMMENT ON FUNCTION paas.snap_link_minutes() IS 'lifetime of one Snap payment link, minutes';

-- Step 1 of the Snap round trip for a locked PENDING top-up: its live link
-- when it has one, otherwise {"$snap": request} for httpd, on an order id
-- that was never sent to Snap (a new one when the current one was).
CREATE FUNCTION paas.topup_snap_step(t paas.topups, u paas.users) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	o paas.topup_orders;
	new_order text;
BEGIN
	IF t.status <> 'PENDING'
	   OR (t.snap_token IS NOT NULL AND t.snap_expires_at > now() + interval '1 minute') THEN
		RETURN paas.topup_json(t);
	END IF;
	SELECT * INTO o FROM paas.topup_orders WHERE order_id = t.order_id;
	IF o.snap_requested_at IS NOT NULL THEN
		new_order := paas.new_order_id(u.id);
		INSERT INTO paas.topup_orders (order_id, topup_id) VALUES (new_order, t.id);
		UPDATE paas.topups SET order_id = new_order, snap_token = NULL, redirect_url = NULL,
			   snap_expires_at = NULL, updated_at = now()
		 WHERE id = t.id;
	ELSE
		new_order := t.order_id;
	END IF;
	UPDATE paas.topup_orders SET snap_requested_at = now() WHERE order_id = new_order;
	RETURN jsonb_build_object('$snap', jsonb_build_object(
		'orderId', new_order, 'amount', t.amount,
		'firstName', split_part(u.name, ' ', 1),
		'lastName', nullif(substr(u.name, length(split_part(u.name, ' ', 1)) + 2), ''),
		'email', u.email, 'expiryMinutes', paas.snap_link_minutes()));
END
$$;
COMMENT ON FUNCTION paas.topup_snap_step(paas.topups, paas.users) IS
	'the live Snap link of a top-up, or the {"$snap"} request httpd must send';

-- Step 2: httpd's outcome of the Snap call (ctx.snap).  Stores token and
-- link on success; on failure records the error and answers a committed
-- PT502 (the top-up stays PENDING and can be retried).
CREATE FUNCTION paas.topup_snap_result(u paas.users, snap jsonb) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	t paas.topups;
BEGIN
	SELECT t1.* INTO t FROM paas.topups t1
	  JOIN paas.topup_orders o ON o.topup_id = t1.id
	 WHERE o.order_id = snap ->> 'orderId' AND t1.user_id = u.id
	   FOR UPDATE OF t1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Top-up not found' USING ERRCODE = 'PT404';
	END IF;
	IF snap ? 'error' OR coalesce(snap ->> 'token', '') = '' THEN
		UPDATE paas.topups SET last_error = left(coalesce(snap ->> 'error', 'no token'), 500),
			   updated_at = now()
		 WHERE id = t.id;
		RETURN paas.refusal('PT502', 'Payment gateway error, the top-up stays pending: please retry');
	END IF;
	UPDATE paas.topup_orders SET snap_token = snap ->> 'token', redirect_url = snap ->> 'redirectUrl'
	 WHERE order_id = snap ->> 'orderId';
	-- A concurrent retry may have moved the top-up to a newer order: the
	-- newest order's link is the one to show.
	IF t.order_id = snap ->> 'orderId' THEN
		UPDATE paas.topups
		   SET snap_token = snap ->> 'token', redirect_url = snap ->> 'redirectUrl',
			   snap_expires_at = now() + make_interval(mins => paas.snap_link_minutes()),
			   last_error = NULL, updated_at = now()
		 WHERE id = t.id
		RETURNING * INTO t;
	END IF;
	RETURN paas.topup_json(t);
END
$$;
COMMENT ON FUNCTION paas.topup_snap_result(paas.users, jsonb) IS
	'stores the Snap token of an order, or records the failure (committed PT502)';

CREATE FUNCTION api.billing_topup(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	t paas.topups;
	errs jsonb := '[]';
	key text := ctx ->> 'idempotencyKey';
	amt bigint;
	prior jsonb;
BEGIN
	IF ctx ? 'snap' THEN
		RETURN paas.topup_snap_result(u, ctx -> 'snap');
	END IF;
	-- The same call again (05_outcomes.sql; the record holds the top-up it
	-- created): that top-up, with its live link or a fresh order.
	prior := paas.outcome_claim('api.billing_topup', req, ctx);
	IF prior IS NOT NULL THEN
		SELECT * INTO t FROM paas.topups WHERE id = (prior ->> 'id')::uuid FOR UPDATE;
		RETURN paas.topup_snap_step(t, u);
	END IF;
	req := paas.require_object(req);
	-- the original's words for the amount; alone, its error is the answer's
	-- message too
	IF jsonb_typeof(req -> 'amount') IS DISTINCT FROM 'number' OR (req ->> 'amount')::numeric = 0 THEN
		errs := paas.add_err(errs, 'amount', 'Amount is required and must be a number');
	ELSIF (req ->> 'amount')::numeric <> trunc((req ->> 'amount')::numeric) THEN
		errs := paas.add_err(errs, 'amount', 'Amount must be a whole number (no decimals)');
	ELSIF (req ->> 'amount')::numeric < 10000 THEN
		errs := paas.add_err(errs, 'amount', 'Minimum top-up amount is IDR 10,000');
	ELSIF (req ->> 'amount')::numeric > 10000000 THEN
		errs := paas.add_err(errs, 'amount', 'Maximum top-up amount is IDR 10,000,000');
	END IF;
	errs := paas.check_enum(errs, req, 'currency', false, ARRAY['IDR']);
	IF jsonb_array_length(errs) = 1 AND errs -> 0 ->> 'field' = 'amount' THEN
		RAISE EXCEPTION '%', errs -> 0 ->> 'message' USING ERRCODE = 'PT400', DETAIL = errs::text;
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	amt := (req ->> 'amount')::bigint;

	IF key IS NOT NULL THEN
		INSERT INTO paas.topups (user_id, amount, order_id, idempotency_key)
		VALUES (u.id, amt, paas.new_order_id(u.id), key)
		ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
		RETURNING * INTO t;
		IF NOT FOUND THEN
			SELECT * INTO t FROM paas.topups
			 WHERE user_id = u.id AND idempotency_key = key FOR UPDATE;
			IF t.amount <> amt THEN
				RAISE EXCEPTION 'Idempotency-Key was already used for a different top-up'
					USING ERRCODE = 'PT409';
			END IF;
			PERFORM paas.outcome_save(ctx, paas.topup_json(t));
			RETURN paas.topup_snap_step(t, u);
		END IF;
	ELSE
		INSERT INTO paas.topups (user_id, amount, order_id)
		VALUES (u.id, amt, paas.new_order_id(u.id))
		RETURNING * INTO t;
	END IF;
	INSERT INTO paas.topup_orders (order_id, topup_id) VALUES (t.order_id, t.id);
	PERFORM paas.outcome_save(ctx, paas.topup_json(t));
	RETURN paas.topup_snap_step(t, u);
END
$$;
COMMENT ON FUNCTION api.billing_topup(jsonb, jsonb) IS
	'POST /billing/topup {amount, currency}: PENDING top-up + Snap link (two-step, see file header)';

CREATE FUNCTION api.billing_transaction_pay(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	t paas.topups;
	prior jsonb;
	-- the original's hint in the data of every answer with a link
	msg constant jsonb := '{"message": "Use the snapToken to reopen Midtrans payment window"}';
BEGIN
	IF ctx ? 'snap' THEN
		prior := paas.topup_snap_result(u, ctx -> 'snap');
		RETURN CASE WHEN prior ? '$error' THEN prior ELSE prior || msg END;
	END IF;
	prior := paas.outcome_claim('api.billing_transaction_pay', req, ctx);
	IF prior ? '$error' THEN
		RETURN prior;
	END IF;
	SELECT * INTO t FROM paas.topups
	 WHERE id = paas.to_uuid(req ->> 'id') AND user_id = u.id FOR UPDATE;
	IF prior IS NOT NULL THEN
		-- the same call again (05_outcomes.sql): the top-up's link now
		RETURN paas.topup_snap_step(t, u) || msg;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Transaction not found' USING ERRCODE = 'PT404';
	END IF;
	IF t.status <> 'PENDING' THEN
		RAISE EXCEPTION 'Transaction is no longer pending. Current status: %', t.status
			USING ERRCODE = 'PT409';
	END IF;
	IF t.expires_at <= now() THEN
		UPDATE paas.topups SET status = 'EXPIRED', updated_at = now() WHERE id = t.id;
		UPDATE paas.topup_orders SET status = 'FAILED' WHERE topup_id = t.id AND status = 'PENDING';
		RETURN paas.outcome_save(ctx,
			paas.refusal('PT409', 'Transaction has expired. Please create a new top-up.'));
	END IF;
	PERFORM paas.outcome_save(ctx, paas.topup_json(t));
	RETURN paas.topup_snap_step(t, u) || msg;
END
$$;
COMMENT ON FUNCTION api.billing_transaction_pay(jsonb, jsonb) IS
	'POST /billing/transactions/:id/pay: the live Snap link of a pending top-up, or a new one';

CREATE FUNCTION api.billing_topups(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
	lim int;
	total bigint;
	rows jsonb;
	pg jsonb;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'status', false,
		ARRAY['PENDING', 'PAID', 'FAILED', 'EXPIRED', 'CANCELLED', 'REFUNDED']);
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 20);
	SELECT count(*) INTO total FROM paas.topups t
	 WHERE t.user_id = u.id AND (req ->> 'status' IS NULL OR t.status = req ->> 'status');
	SELECT coalesce(jsonb_agg(paas.topup_json(s) ORDER BY s.created_at DESC, s.id), '[]') INTO rows
	  FROM (SELECT * FROM paas.topups t
			 WHERE t.user_id = u.id AND (req ->> 'status' IS NULL OR t.status = req ->> 'status')
			 ORDER BY t.created_at DESC, t.id
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) s;
	pg := paas.pagination(req, total, 20);
	RETURN jsonb_build_object('data', jsonb_build_object('transactions', rows, 'pagination', pg),
							  'pagination', pg);
END
$$;
COMMENT ON FUNCTION api.billing_topups(jsonb, jsonb) IS 'GET /billing/topup: page, limit, status';

CREATE FUNCTION api.billing_topup_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	t paas.topups;
BEGIN
	SELECT * INTO t FROM paas.topups WHERE id = paas.to_uuid(req ->> 'id') AND user_id = u.id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Top-up not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.topup_json(t);
END
$$;
COMMENT ON FUNCTION api.billing_topup_get(jsonb, jsonb) IS 'GET /billing/topup/:id (owner only)';

------------------------------------------------------------------------------
-- applying Midtrans statuses
------------------------------------------------------------------------------

-- Posts one entry between gateway clearing and the user's wallet (delta > 0
-- credits the wallet) and returns the wallet posting {entryId,
-- balanceBefore, balanceAfter}.  Errors of paas.ledger_post() propagate.
CREATE FUNCTION paas.topup_post(key text, kind text, memo text, ref jsonb, uid uuid, delta bigint)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	w bigint := paas.wallet_account(uid);
	res jsonb;
BEGIN
	res := paas.ledger_post(key, jsonb_build_array(jsonb_build_object(
		'kind', kind, 'memo', memo, 'ref', ref,
		'postings', jsonb_build_array(
			jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -delta),
			jsonb_build_object('account', w, 'amount', delta)))));
	RETURN (SELECT jsonb_build_object('entryId', e -> 'id', 'balanceBefore', p -> 'balanceBefore',
									  'balanceAfter', p -> 'balanceAfter')
			  FROM jsonb_array_elements(res -> 'entries') e,
				   jsonb_array_elements(e -> 'postings') p
			 WHERE (p ->> 'account')::bigint = w
			 LIMIT 1);
END
$$;
COMMENT ON FUNCTION paas.topup_post(text, text, text, jsonb, uuid, bigint) IS
	'one ledger entry gateway_clearing <-> wallet; returns the wallet posting';

-- Credits a paid order once: ledger entry, invoice, order and top-up state.
-- The caller holds the top-up's row lock.
CREATE FUNCTION paas.topup_credit_order(t paas.topups, o paas.topup_orders, n jsonb) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	posting jsonb;
	inv jsonb;
BEGIN
	posting := paas.topup_post('midtrans:' || o.order_id || ':credit', 'topup',
		'Top-up via ' || coalesce(n ->> 'payment_type', 'Midtrans'),
		jsonb_build_object('topUpId', t.id, 'orderId', o.order_id), t.user_id, t.amount);
	inv := paas.issue_invoice(t.user_id, 'TOPUP', t.amount,
		jsonb_build_object('topUpId', t.id, 'orderId', o.order_id,
						   'paymentType', n ->> 'payment_type'), NULL);
	UPDATE paas.topup_orders
	   SET status = 'PAID', credited = t.amount, credit_entry = posting,
		   invoice_id = (inv ->> 'id')::uuid, paid_at = now(),
		   gateway_status = n ->> 'transaction_status',
		   gateway_transaction_id = coalesce(n ->> 'transaction_id', gateway_transaction_id),
		   payment_type = coalesce(n ->> 'payment_type', payment_type)
	 WHERE order_id = o.order_id;
	UPDATE paas.topups
	   SET status = 'PAID', paid_at = coalesce(paid_at, now()),
		   payment_type = coalesce(n ->> 'payment_type', payment_type),
		   gateway_status = n ->> 'transaction_status', updated_at = now()
	 WHERE id = t.id;
END
$$;
COMMENT ON FUNCTION paas.topup_credit_order(paas.topups, paas.topup_orders, jsonb) IS
	'credits a paid order exactly once (ledger, invoice, states); caller holds the top-up lock';

-- Reverses a paid order up to "target" (cumulative) and returns the outcome.
-- One exposure, one record: while the wallet cannot cover it, the order has
-- one BLOCKED row, whose amount follows the latest check, and which becomes
-- the SUCCESS row once a later check can take the money.
CREATE FUNCTION paas.topup_reverse_order(t paas.topups, o paas.topup_orders, target bigint,
										 kind text) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	delta bigint := least(target, o.credited) - o.reversed;
	posting jsonb;
	st text := 'SUCCESS';
	blocked paas.topup_reversals;
BEGIN
	IF delta <= 0 THEN
		RETURN 'duplicate';
	END IF;
	BEGIN
		posting := paas.topup_post('midtrans:' || o.order_id || ':reverse:' || (o.reversed + delta),
			'topup_' || lower(kind), initcap(lower(kind)) || ' of order ' || o.order_id,
			jsonb_build_object('topUpId', t.id, 'orderId', o.order_id), t.user_id, -delta);
	EXCEPTION WHEN SQLSTATE 'PT402' THEN
		-- The user spent the credit: nothing is taken, the reversal is kept
		-- as BLOCKED for an administrator (reporting.topups_by_status).
		st := 'BLOCKED';
	END;
	SELECT * INTO blocked FROM paas.topup_reversals r
	 WHERE r.order_id = o.order_id AND r.status = 'BLOCKED';
	IF FOUND THEN
		IF st = 'BLOCKED' AND blocked.amount = delta AND blocked.kind = topup_reverse_order.kind THEN
			RETURN 'reversal_blocked';		-- the same exposure, already on record
		END IF;
		UPDATE paas.topup_reversals r
		   SET kind = topup_reverse_order.kind, amount = delta, status = st, entry = posting
		 WHERE r.id = blocked.id;
	ELSE
		INSERT INTO paas.topup_reversals (order_id, topup_id, user_id, kind, amount, status, entry)
		VALUES (o.order_id, t.id, t.user_id, kind, delta, st, posting);
	END IF;
	IF st = 'BLOCKED' THEN
		RETURN 'reversal_blocked';
	END IF;
	UPDATE paas.topup_orders
	   SET reversed = reversed + delta,
		   status = CASE WHEN reversed + delta = credited THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END
	 WHERE order_id = o.order_id
	RETURNING * INTO o;
	IF o.status = 'REFUNDED' AND o.invoice_id IS NOT NULL THEN
		PERFORM paas.void_invoice(o.invoice_id, lower(kind) || ' of order ' || o.order_id);
	END IF;
	IF NOT EXISTS (SELECT 1 FROM paas.topup_orders x
					WHERE x.topup_id = t.id AND x.credited > 0 AND x.reversed < x.credited) THEN
		UPDATE paas.topups SET status = 'REFUNDED', updated_at = now() WHERE id = t.id;
	END IF;
	RETURN 'reversed';
END
$$;
COMMENT ON FUNCTION paas.topup_reverse_order(paas.topups, paas.topup_orders, bigint, text) IS
	'reverses a paid order up to a cumulative amount, once (one BLOCKED record per order while the wallet is short)';

-- Job: pending top-ups past expires_at become EXPIRED.  A payment that
-- still arrives later is credited (success wins).
CREATE FUNCTION paas.job_billing_expire_topups() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	WITH e AS (
		UPDATE paas.topups SET status = 'EXPIRED', updated_at = now()
		 WHERE status = 'PENDING' AND expires_at <= now()
		RETURNING id),
	o AS (
		UPDATE paas.topup_orders o SET status = 'FAILED',
			   gateway_status = coalesce(gateway_status, 'expire')
		  FROM e WHERE o.topup_id = e.id AND o.status = 'PENDING'
		RETURNING 1)
	SELECT count(*) INTO n FROM e;
	RETURN jsonb_build_object('expired', n);
END
$$;
COMMENT ON FUNCTION paas.job_billing_expire_topups() IS 'expires pending top-ups past 24 h';
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('billing_expire_topups', 'paas.job_billing_expire_topups', '1 minute',
	 'pending top-ups past their 24 h become EXPIRED');

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.billing_topup(jsonb, jsonb)', 'api.billing_transaction_pay(jsonb, jsonb)',
		'api.billing_topups(jsonb, jsonb)', 'api.billing_topup_get(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;
