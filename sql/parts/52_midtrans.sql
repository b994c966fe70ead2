-- paas -- Midtrans: signed notifications, refused ones, and the status API
-- answers of reconciliation, applied to the orders of 51_topups.sql.
--
-- Notifications.  api.billing_webhook_midtrans() verifies signature_key with
-- paas.midtrans_signature_ok() (C, SHA-512, constant-time compare, the key
-- is the superuser-only GUC paas.midtrans_server_key) before anything else.
-- Every verified notification is recorded in paas.midtrans_notifications
-- (signature included, never the key; a body over 16 kB is kept as a
-- bounded summary).  A notification whose signature does not verify is
-- refused (committed PT401) and recorded in paas.midtrans_rejects as a
-- bounded record (reason, order id, client address, size, SHA-256, the first
-- 4 kB), pruned after paas.midtrans_reject_retention.  Status rules
-- (reference/midtrans.md): success always wins over non-success, nothing but
-- a refund, a chargeback or a reversal undoes a success, a duplicate changes
-- nothing.  A reversal is a refund, a partial refund, a chargeback or a
-- partial chargeback, or a deny, cancel or expire after success (a
-- settlement the bank takes back; a card capture cancelled before
-- settlement).  The signature covers order_id, status_code and gross_amount
-- only, never transaction_status nor refund_amount: the genuine signed
-- settlement of an order, relabelled "refund", still verifies.  So a
-- notification never takes money back: it only flags the order
-- (verify_requested_at), the worker asks the status API at once, and the
-- answer decides whether and how much (refund_amount / refunds[] of the
-- answer).  An answer whose signature_key does not verify changes nothing.
-- The top-up row is locked FOR UPDATE first, so concurrent deliveries and
-- answers serialize.  One exposure, one record: a reversal the wallet
-- cannot cover is kept as one BLOCKED row per order, however often it is
-- notified or checked.

------------------------------------------------------------------------------
-- C helpers (extension/billing.c)
------------------------------------------------------------------------------

CREATE FUNCTION paas.midtrans_signature_ok(order_id text, status_code text,
										   gross_amount text, signature_key text)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_midtrans_signature_ok'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.midtrans_signature_ok(text, text, text, text) IS
	'signature_key = hex SHA-512(order_id||status_code||gross_amount||server key), constant time; false when no key is configured';

CREATE FUNCTION paas.midtrans_configured() RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_midtrans_configured'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.midtrans_configured() IS
	'whether paas.midtrans_server_key is set (the key itself is never returned)';

CREATE FUNCTION paas.midtrans_reject_retention() RETURNS interval
	AS 'MODULE_PATHNAME', 'paas_midtrans_reject_retention'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.midtrans_reject_retention() IS
	'paas.midtrans_reject_retention as an interval; NULL when refused notifications are kept forever';

CREATE TABLE paas.midtrans_notifications (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	received_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	source			text NOT NULL CHECK (source IN ('webhook', 'reconcile')),
	order_id		text,
	transaction_status text,
	status_code		text,
	gross_amount	text,
	signature_ok	boolean,
	outcome			text NOT NULL,
	body			jsonb NOT NULL
);
CREATE INDEX midtrans_notifications_order_idx ON paas.midtrans_notifications (order_id, received_at);
COMMENT ON TABLE paas.midtrans_notifications IS
	'every verified notification and status-API answer received, with what was done about it';

-- Refused notifications (their signature did not verify): anyone can send
-- them, so each is a bounded record, never the body itself, and the rows
-- are pruned after paas.midtrans_reject_retention (job
-- prune_midtrans_rejects).
CREATE TABLE paas.midtrans_rejects (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	received_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	reason			text NOT NULL CHECK (reason ~ '^[a-z][a-z_]{0,62}$'),
	order_id		text CHECK (char_length(order_id) <= 100),
	client_ip		text CHECK (char_length(client_ip) <= 64),
	body_size		integer NOT NULL CHECK (body_size >= 0),
	body_sha256		bytea NOT NULL CHECK (octet_length(body_sha256) = 32),
	body_head		text NOT NULL CHECK (octet_length(body_head) <= 4096)
);
CREATE INDEX midtrans_rejects_received_idx ON paas.midtrans_rejects (received_at);
COMMENT ON TABLE paas.midtrans_rejects IS
	'refused Midtrans notifications: reason, order id, client address, body size, SHA-256 and first 4 kB; pruned';

SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_notifications', '');
SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_rejects', '');

-- The longest prefix of t that fits in "bytes" bytes (whole characters).
CREATE FUNCTION paas.text_head(t text, bytes integer) RETURNS text
	LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
	h text := left(t, bytes);
BEGIN
	-- each pass drops at least a quarter of the excess (a character is at
	-- most 4 bytes), so a few passes suffice
	WHILE octet_length(h) > bytes LOOP
		h := left(h, char_length(h) - greatest(1, (octet_length(h) - bytes) / 4));
	END LOOP;
	RETURN h;
END
$$;
COMMENT ON FUNCTION paas.text_head(text, integer) IS
	'the longest prefix of a text that fits in the given number of bytes';

-- Records a verified notification (or status answer) and its outcome.  A
-- body over 16 kB (Midtrans's are about 1 kB; the signature does not cover
-- the fields it adds) is kept as {"$truncated", size, sha256, head}.
CREATE FUNCTION paas.midtrans_log(n jsonb, source text, sig_ok boolean, outcome text) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	BEGIN ATOMIC
		INSERT INTO paas.midtrans_notifications
			(source, order_id, transaction_status, status_code, gross_amount, signature_ok, outcome, body)
		SELECT source, left(n ->> 'order_id', 100), left(n ->> 'transaction_status', 50),
			   left(n ->> 'status_code', 10), left(n ->> 'gross_amount', 30), sig_ok, outcome,
			   CASE WHEN octet_length(b.t) <= 16384 THEN n
					ELSE jsonb_build_object('$truncated', true, 'size', octet_length(b.t),
											'sha256', encode(sha256(convert_to(b.t, 'UTF8')), 'hex'),
											'head', paas.text_head(b.t, 4096)) END
		  FROM (SELECT n::text AS t) b;
	END;
COMMENT ON FUNCTION paas.midtrans_log(jsonb, text, boolean, text) IS
	'appends to paas.midtrans_notifications (a body over 16 kB as a bounded summary)';

-- Records a refused notification as a bounded row of paas.midtrans_rejects.
CREATE FUNCTION paas.midtrans_reject(n jsonb, ip text, reason text) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	BEGIN ATOMIC
		INSERT INTO paas.midtrans_rejects (reason, order_id, client_ip, body_size, body_sha256, body_head)
		SELECT reason, left(n ->> 'order_id', 100), left(ip, 64), octet_length(b.t),
			   sha256(convert_to(b.t, 'UTF8')), paas.text_head(b.t, 4096)
		  FROM (SELECT n::text AS t) b;
	END;
COMMENT ON FUNCTION paas.midtrans_reject(jsonb, text, text) IS
	'appends a bounded record of a refused notification to paas.midtrans_rejects';

-- Job: refused notifications older than paas.midtrans_reject_retention
-- (default 30 days; 0 keeps them) are deleted, at most 50,000 rows a run.
CREATE FUNCTION paas.job_prune_midtrans_rejects() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	keep interval := paas.midtrans_reject_retention();
	n bigint;
BEGIN
	IF keep IS NULL THEN
		RETURN jsonb_build_object('deleted', 0, 'retention', 'forever');
	END IF;
	DELETE FROM paas.midtrans_rejects
	 WHERE id IN (SELECT id FROM paas.midtrans_rejects WHERE received_at < now() - keep
				   ORDER BY received_at LIMIT 50000);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n, 'retention', keep::text);
END
$$;
COMMENT ON FUNCTION paas.job_prune_midtrans_rejects() IS
	'deletes refused Midtrans notifications older than paas.midtrans_reject_retention (50,000 rows a run)';
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('prune_midtrans_rejects', 'paas.job_prune_midtrans_rejects', '1 hour',
	 'deletes refused Midtrans notifications older than paas.midtrans_reject_retention');

-- The cumulative amount a status-API answer says was refunded (or charged
-- back): the sum of its refunds[] when it lists them, else refund_amount;
-- NULL when it carries neither in a valid form.  Decimals are cut (IDR).
CREATE FUNCTION paas.midtrans_refunded(n jsonb) RETURNS bigint
	LANGUAGE sql IMMUTABLE
	RETURN CASE
		WHEN jsonb_typeof(n -> 'refunds') = 'array' AND jsonb_array_length(n -> 'refunds') > 0 THEN
			(SELECT CASE WHEN bool_and(coalesce(r ->> 'refund_amount', '') ~ '^[0-9]{1,15}(\.[0-9]{1,2})?$')
						 THEN floor(sum(CASE WHEN r ->> 'refund_amount' ~ '^[0-9]{1,15}(\.[0-9]{1,2})?$'
											 THEN (r ->> 'refund_amount')::numeric END))::bigint END
			   FROM jsonb_array_elements(n -> 'refunds') r)
		WHEN coalesce(n ->> 'refund_amount', '') ~ '^[0-9]{1,15}(\.[0-9]{1,2})?$' THEN
			floor((n ->> 'refund_amount')::numeric)::bigint
		END;
COMMENT ON FUNCTION paas.midtrans_refunded(jsonb) IS
	'cumulative refunded amount of a status answer (sum of refunds[], else refund_amount); NULL when absent';

-- Applies one Midtrans status (a verified notification, source 'webhook',
-- or a status-API answer, source 'reconcile') to its order.  Returns
-- {orderId, status, outcome}; outcome is one of credited, duplicate,
-- pending, failed, ignored_after_success, verifying_reversal, reversed,
-- reversal_blocked, unknown_order, amount_mismatch, inconsistent_status,
-- ignored.  Money is only taken back on a status-API answer: a
-- notification of a reversal flags the order (verifying_reversal).
CREATE FUNCTION paas.midtrans_apply(n jsonb, source text) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	t paas.topups;
	o paas.topup_orders;
	st text := n ->> 'transaction_status';
	fraud text := coalesce(n ->> 'fraud_status', 'accept');
	action text;
	outcome text;
	refunded bigint;
BEGIN
	SELECT t1.* INTO t FROM paas.topups t1
	  JOIN paas.topup_orders o1 ON o1.topup_id = t1.id
	 WHERE o1.order_id = n ->> 'order_id'
	   FOR UPDATE OF t1;
	IF NOT FOUND THEN
		PERFORM paas.midtrans_log(n, source, true, 'unknown_order');
		RETURN jsonb_build_object('orderId', n ->> 'order_id', 'status', NULL, 'outcome', 'unknown_order');
	END IF;
	SELECT * INTO o FROM paas.topup_orders WHERE order_id = n ->> 'order_id';

	IF coalesce(n ->> 'currency', 'IDR') <> t.currency
	   OR coalesce(n ->> 'gross_amount', '') !~ '^[0-9]{1,15}(\.[0-9]{1,2})?$'
	   OR (n ->> 'gross_amount')::numeric <> t.amount THEN
		PERFORM paas.midtrans_log(n, source, true, 'amount_mismatch');
		RETURN jsonb_build_object('orderId', o.order_id, 'status', t.status, 'outcome', 'amount_mismatch');
	END IF;

	action := CASE
		WHEN st = 'settlement' AND fraud = 'accept' THEN 'success'
		WHEN st = 'capture' AND fraud = 'accept' THEN 'success'
		WHEN st IN ('settlement', 'capture') AND fraud = 'challenge' THEN 'pending'
		WHEN st IN ('settlement', 'capture') THEN 'failed'
		WHEN st IN ('pending', 'authorize') THEN 'pending'
		WHEN st IN ('deny', 'cancel', 'expire', 'failure') THEN 'failed'
		WHEN st IN ('refund', 'chargeback', 'partial_refund', 'partial_chargeback') THEN 'reverse'
		ELSE 'ignored' END;
	-- a deny, cancel or expire of a paid order is a reversal (or a late
	-- notification of an earlier attempt: the status API tells them apart)
	IF action = 'failed' AND o.credited > 0 AND (st IN ('deny', 'cancel', 'expire') OR fraud = 'deny') THEN
		action := 'take_back';
	END IF;

	-- The signature covers order_id, status_code and gross_amount but not
	-- transaction_status: money moves only when status_code agrees (200),
	-- so a signed "pending" (201) relabelled "settlement" moves nothing.
	IF action IN ('success', 'reverse') AND n ->> 'status_code' IS DISTINCT FROM '200' THEN
		PERFORM paas.midtrans_log(n, source, CASE WHEN source = 'webhook' THEN true END,
								  'inconsistent_status');
		RETURN jsonb_build_object('orderId', o.order_id, 'status', t.status,
								  'outcome', 'inconsistent_status');
	END IF;

	IF action IN ('success', 'reverse') AND o.credited = 0 THEN
		-- a signed status 200 proves a payment: credit first, so that a
		-- settlement arriving after its refund finds nothing left to do
		PERFORM paas.topup_credit_order(t, o, n);
		SELECT * INTO o FROM paas.topup_orders WHERE order_id = o.order_id;
		SELECT * INTO t FROM paas.topups WHERE id = t.id;
		outcome := 'credited';
	ELSIF action = 'success' THEN
		outcome := 'duplicate';
	END IF;

	IF action IN ('reverse', 'take_back') AND source = 'webhook' THEN
		-- Neither transaction_status nor refund_amount is signed: the
		-- notification only flags the order; the worker asks the status API
		-- at once and its answer decides (see paas.billing_reconcile_apply).
		IF o.reversed >= o.credited THEN
			outcome := coalesce(outcome, 'duplicate');		-- nothing left to take back
		ELSE
			UPDATE paas.topup_orders SET verify_requested_at = now() WHERE order_id = o.order_id;
			outcome := 'verifying_reversal';
		END IF;
	ELSIF action = 'reverse' THEN
		IF st LIKE 'partial_%' THEN
			refunded := paas.midtrans_refunded(n);
			IF refunded IS NULL THEN
				-- recorded on the order by billing_reconcile_apply; the check
				-- stays due and is asked again
				RAISE EXCEPTION 'status answer of order % says % without a refund amount', o.order_id, st
					USING ERRCODE = 'invalid_parameter_value';
			END IF;
		ELSE
			refunded := o.credited;
		END IF;
		outcome := paas.topup_reverse_order(t, o, refunded,
			CASE WHEN st LIKE '%chargeback' THEN 'CHARGEBACK' ELSE 'REFUND' END);
	ELSIF action = 'take_back' THEN
		outcome := paas.topup_reverse_order(t, o, o.credited, 'REVERSAL');
	ELSIF action = 'pending' THEN
		outcome := CASE WHEN o.credited > 0 THEN 'ignored_after_success' ELSE 'pending' END;
		IF o.credited = 0 THEN
			UPDATE paas.topup_orders SET gateway_status = st,
				   payment_type = coalesce(n ->> 'payment_type', payment_type),
				   gateway_transaction_id = coalesce(n ->> 'transaction_id', gateway_transaction_id)
			 WHERE order_id = o.order_id;
			UPDATE paas.topups SET gateway_status = st, updated_at = now(),
				   payment_type = coalesce(n ->> 'payment_type', payment_type)
			 WHERE id = t.id AND status = 'PENDING';
		END IF;
	ELSIF action = 'failed' THEN
		IF o.credited > 0 THEN
			outcome := 'ignored_after_success';
		ELSE
			outcome := 'failed';
			UPDATE paas.topup_orders SET status = 'FAILED', gateway_status = st
			 WHERE order_id = o.order_id;
			-- only the current order decides a pending top-up's fate; an
			-- older link failing does not end a top-up with a newer link
			IF t.status = 'PENDING' AND t.order_id = o.order_id THEN
				UPDATE paas.topups
				   SET status = CASE st WHEN 'expire' THEN 'EXPIRED' WHEN 'cancel' THEN 'CANCELLED'
									   ELSE 'FAILED' END,
					   gateway_status = st, updated_at = now()
				 WHERE id = t.id;
			END IF;
		END IF;
	ELSIF action = 'ignored' THEN
		outcome := 'ignored';
	END IF;

	PERFORM paas.midtrans_log(n, source, CASE WHEN source = 'webhook' THEN true END, outcome);
	SELECT * INTO t FROM paas.topups WHERE id = t.id;
	RETURN jsonb_build_object('orderId', o.order_id, 'status', t.status, 'outcome', outcome);
END
$$;
COMMENT ON FUNCTION paas.midtrans_apply(jsonb, text) IS
	'applies a Midtrans status to its order exactly once; caller verified its origin; '
	'reversals only on a status-API answer (source reconcile), a notification flags the order';

CREATE FUNCTION api.billing_webhook_midtrans(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	res jsonb;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'order_id', true, 1, 50);
	errs := paas.check_text(errs, req, 'status_code', true, 1, 10);
	errs := paas.check_text(errs, req, 'gross_amount', true, 1, 30);
	errs := paas.check_text(errs, req, 'transaction_status', true, 1, 50);
	errs := paas.check_text(errs, req, 'signature_key', true, 1, 256);
	PERFORM paas.raise_if_invalid(errs);

	IF NOT paas.midtrans_signature_ok(req ->> 'order_id', req ->> 'status_code',
									  req ->> 'gross_amount', req ->> 'signature_key') THEN
		PERFORM paas.midtrans_reject(req, ctx ->> 'ip', 'bad_signature');
		RAISE LOG 'paas billing: rejected Midtrans notification with a bad signature (order %, from %)',
			left(req ->> 'order_id', 50), ctx ->> 'ip';
		RETURN paas.refusal('PT401', 'Invalid signature');
	END IF;

	res := paas.midtrans_apply(req, 'webhook');
	IF res ->> 'outcome' = 'unknown_order' THEN
		RETURN paas.refusal('PT404', 'Unknown order');
	ELSIF res ->> 'outcome' = 'amount_mismatch' THEN
		RETURN paas.refusal('PT400', 'Amount or currency does not match the order');
	ELSIF res ->> 'outcome' = 'inconsistent_status' THEN
		RETURN paas.refusal('PT400', 'transaction_status does not match status_code');
	END IF;
	RETURN res || jsonb_build_object('processedAt', paas.iso(clock_timestamp()));
END
$$;
COMMENT ON FUNCTION api.billing_webhook_midtrans(jsonb, jsonb) IS
	'POST /billing/webhooks/midtrans (public): verified Midtrans notification, applied exactly once';

------------------------------------------------------------------------------
-- reconciliation (bgworker/reconcile.c) and expiry
------------------------------------------------------------------------------

-- Claims up to "n" orders for a status-API check: pending orders of pending
-- top-ups whose last check (or creation) is older than "age", and orders
-- flagged for a reversal check (at once, then every "age" until answered);
-- marks them checked so that a concurrent pass skips them.  Called in its
-- own short transaction.
CREATE FUNCTION paas.billing_reconcile_claim(age interval, n integer) RETURNS SETOF text
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	BEGIN ATOMIC
		UPDATE paas.topup_orders o SET last_checked_at = now()
		 WHERE o.order_id IN (
			SELECT o2.order_id FROM paas.topup_orders o2
			  JOIN paas.topups t ON t.id = o2.topup_id
			 WHERE (o2.status = 'PENDING' AND t.status = 'PENDING'
					AND o2.snap_requested_at IS NOT NULL
					AND coalesce(o2.last_checked_at, o2.created_at) < now() - age)
				OR (o2.verify_requested_at IS NOT NULL
					AND (o2.last_checked_at IS NULL OR o2.last_checked_at < o2.verify_requested_at
						 OR o2.last_checked_at < now() - age))
			 ORDER BY o2.verify_requested_at IS NULL, coalesce(o2.last_checked_at, o2.created_at)
			 LIMIT n
			 FOR UPDATE OF o2 SKIP LOCKED)
		RETURNING o.order_id;
	END;
COMMENT ON FUNCTION paas.billing_reconcile_claim(interval, integer) IS
	'orders due for a status-API check (pending ones, and paid ones flagged for a reversal), marked as checked';

-- Applies one status-API answer (HTTP status, body text; http_status 0 =
-- transport failure).  Never raises: failures are recorded on the order.
CREATE FUNCTION paas.billing_reconcile_apply(order_id text, http_status integer, body text)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	j jsonb;
	code int;
	res jsonb;
	err text;
BEGIN
	BEGIN
		j := body::jsonb;
	EXCEPTION WHEN OTHERS THEN
		j := NULL;
	END;
	code := CASE WHEN j ->> 'status_code' ~ '^[0-9]{3}$' THEN (j ->> 'status_code')::int END;
	IF http_status = 0 OR http_status >= 400 OR j IS NULL OR jsonb_typeof(j) <> 'object'
	   OR (code >= 400 AND code NOT IN (404, 407)) THEN
		UPDATE paas.topup_orders o
		   SET check_error = format('status API: HTTP %s %s', http_status, left(coalesce(j ->> 'status_message', ''), 200))
		 WHERE o.order_id = billing_reconcile_apply.order_id;
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'error');
	END IF;
	IF code = 404 THEN
		-- Snap: no payment method chosen yet; the expiry job ends it at 24 h
		UPDATE paas.topup_orders o SET check_error = NULL
		 WHERE o.order_id = billing_reconcile_apply.order_id;
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'not_attempted');
	END IF;
	IF j ->> 'order_id' IS DISTINCT FROM order_id THEN
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'error');
	END IF;
	-- Answers carry the notification's signature_key: when present it must
	-- verify, so that nothing between us and Midtrans can change an amount
	-- or a status (the HTTPS host is trusted for answers without one).
	IF j ? 'signature_key' AND NOT paas.midtrans_signature_ok(j ->> 'order_id', j ->> 'status_code',
															   j ->> 'gross_amount', j ->> 'signature_key') THEN
		UPDATE paas.topup_orders o SET check_error = 'status API: the answer''s signature_key does not verify'
		 WHERE o.order_id = billing_reconcile_apply.order_id;
		PERFORM paas.midtrans_log(j, 'reconcile', false, 'bad_signature');
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'bad_signature');
	END IF;
	BEGIN
		res := paas.midtrans_apply(j, 'reconcile');
		-- the answer was applied: a reversal check is settled either way
		UPDATE paas.topup_orders o SET verify_requested_at = NULL, check_error = NULL
		 WHERE o.order_id = billing_reconcile_apply.order_id AND o.verify_requested_at IS NOT NULL;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
		UPDATE paas.topup_orders o SET check_error = left(err, 500)
		 WHERE o.order_id = billing_reconcile_apply.order_id;
		RETURN jsonb_build_object('orderId', order_id, 'outcome', 'error');
	END;
	RETURN res;
END
$$;
COMMENT ON FUNCTION paas.billing_reconcile_apply(text, integer, text) IS
	'applies a status-API answer for an order; records failures instead of raising';

REVOKE ALL ON FUNCTION api.billing_webhook_midtrans(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_webhook_midtrans(jsonb, jsonb) TO paas_api, paas_owner;
