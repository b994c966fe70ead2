-- paas -- billing: Midtrans top-ups, signed notifications, invoices,
-- the user's transaction feed, dashboards, reconciliation.
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
--
-- Invoices are numbered INV-YYYYMM-000123 per UTC month from a counter row
-- updated in the issuing transaction (gap-free: a rollback returns the
-- number), immutable once issued (trigger), voided only by a credit note
-- (CN-YYYYMM-000001) that references them.

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

CREATE TABLE paas.invoice_counters (
	series			text NOT NULL CHECK (series IN ('INV', 'CN')),
	period			text NOT NULL CHECK (period ~ '^[0-9]{6}$'),
	last_number		integer NOT NULL CHECK (last_number > 0),
	PRIMARY KEY (series, period)
);
COMMENT ON TABLE paas.invoice_counters IS
	'last number issued per series and UTC month; updated in the issuing transaction';

CREATE TABLE paas.invoices (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	number			text NOT NULL UNIQUE CHECK (number ~ '^(INV|CN)-[0-9]{6}-[0-9]{6,}$'),
	user_id			uuid NOT NULL REFERENCES paas.users (id),
	kind			text NOT NULL CHECK (kind IN ('TOPUP', 'SUBSCRIPTION', 'CREDIT_NOTE')),
	amount			bigint NOT NULL,
	currency		text NOT NULL DEFAULT 'IDR' CHECK (currency = 'IDR'),
	status			text NOT NULL DEFAULT 'PAID' CHECK (status IN ('PAID', 'VOID', 'ISSUED')),
	description		text NOT NULL,
	lines			jsonb NOT NULL,
	ref				jsonb NOT NULL DEFAULT '{}',
	topup_id		uuid REFERENCES paas.topups (id),
	credit_note_for uuid REFERENCES paas.invoices (id),
	voided_by		uuid REFERENCES paas.invoices (id),
	download_count	integer NOT NULL DEFAULT 0,
	issued_at		timestamptz NOT NULL DEFAULT now(),
	paid_at			timestamptz,
	CHECK ((kind = 'CREDIT_NOTE') = (credit_note_for IS NOT NULL)),
	CHECK ((kind = 'CREDIT_NOTE') = (amount < 0))
);
CREATE INDEX invoices_user_issued_idx ON paas.invoices (user_id, issued_at DESC);
-- the invoice of a feed row (paas.feed_invoice): by top-up, by ledger entry
-- (whole, not partial: the planner reads the statistics of an index's
-- expression only when the index is not partial, and without them it took
-- an entry's invoices for 0.5 % of the table and chose a bitmap scan)
CREATE INDEX invoices_topup_idx ON paas.invoices (topup_id, issued_at) WHERE topup_id IS NOT NULL;
CREATE INDEX invoices_entry_idx ON paas.invoices ((ref ->> 'entryId'), issued_at);
CREATE UNIQUE INDEX invoices_one_credit_note ON paas.invoices (credit_note_for)
	WHERE credit_note_for IS NOT NULL;
COMMENT ON TABLE paas.invoices IS
	'invoices and credit notes; immutable once issued except voided_by/status and download_count';

-- Issued invoices never change: the only updates allowed are the void
-- (status -> VOID with voided_by set, once) and the download counter.
CREATE FUNCTION paas.invoices_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		RAISE EXCEPTION 'invoices cannot be deleted' USING ERRCODE = 'PT409';
	END IF;
	IF (NEW.id, NEW.number, NEW.user_id, NEW.kind, NEW.amount, NEW.currency, NEW.description,
		NEW.lines, NEW.ref, NEW.topup_id, NEW.credit_note_for, NEW.issued_at, NEW.paid_at)
	   IS DISTINCT FROM
	   (OLD.id, OLD.number, OLD.user_id, OLD.kind, OLD.amount, OLD.currency, OLD.description,
		OLD.lines, OLD.ref, OLD.topup_id, OLD.credit_note_for, OLD.issued_at, OLD.paid_at) THEN
		RAISE EXCEPTION 'an issued invoice cannot be changed' USING ERRCODE = 'PT409',
			HINT = 'Issue a credit note to void it.';
	END IF;
	IF NEW.voided_by IS DISTINCT FROM OLD.voided_by
	   AND (OLD.voided_by IS NOT NULL OR NEW.status <> 'VOID') THEN
		RAISE EXCEPTION 'an invoice is voided once, by a credit note' USING ERRCODE = 'PT409';
	END IF;
	IF NEW.status IS DISTINCT FROM OLD.status AND NEW.voided_by IS NULL THEN
		RAISE EXCEPTION 'an invoice status changes only when a credit note voids it'
			USING ERRCODE = 'PT409';
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.invoices_guard() IS 'keeps issued invoices immutable';
CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON paas.invoices
	FOR EACH ROW EXECUTE FUNCTION paas.invoices_guard();

-- Money records are data, not extension objects: pg_dump must keep them.
SELECT pg_catalog.pg_extension_config_dump('paas.topups', '');
SELECT pg_catalog.pg_extension_config_dump('paas.topup_orders', '');
SELECT pg_catalog.pg_extension_config_dump('paas.topup_reversals', '');
SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_notifications', '');
SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_rejects', '');
SELECT pg_catalog.pg_extension_config_dump('paas.invoice_counters', '');
SELECT pg_catalog.pg_extension_config_dump('paas.invoices', '');

------------------------------------------------------------------------------
-- invoices
------------------------------------------------------------------------------

-- The one numbering path of invoices and credit notes.  Reserves k
-- consecutive numbers of a series in the current UTC month and returns the
-- last number issued before them (the block is base + 1 .. base + k).  The
-- counter row is created or locked by the upsert and stays locked until
-- commit, so concurrent issuers queue, numbers are strictly sequential and
-- a rolled-back issue leaves no gap.
CREATE FUNCTION paas.reserve_invoice_numbers(series text, k integer) RETURNS integer
	LANGUAGE plpgsql VOLATILE STRICT
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	base integer;
BEGIN
	IF k < 1 THEN
		RAISE EXCEPTION 'cannot reserve % invoice numbers', k USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO paas.invoice_counters AS c (series, period, last_number)
	VALUES (series, to_char(now() AT TIME ZONE 'UTC', 'YYYYMM'), k)
	ON CONFLICT ON CONSTRAINT invoice_counters_pkey
	DO UPDATE SET last_number = c.last_number + k
	RETURNING c.last_number - k INTO base;
	RETURN base;
END
$$;
COMMENT ON FUNCTION paas.reserve_invoice_numbers(text, integer) IS
	'reserves k gap-free numbers of series INV or CN in this transaction; returns the number before the block';

-- How numbers print: series, UTC month, the number zero-padded to at least
-- six digits (INV-YYYYMM-NNNNNN).  The prefix is computed once per call.
CREATE FUNCTION paas.invoice_number_prefix(series text) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN series || '-' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMM') || '-';
COMMENT ON FUNCTION paas.invoice_number_prefix(text) IS
	'SERIES-YYYYMM- of the current UTC month';
CREATE FUNCTION paas.invoice_number(prefix text, n integer) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN prefix || lpad(n::text, greatest(6, length(n::text)), '0');
COMMENT ON FUNCTION paas.invoice_number(text, integer) IS
	'number n printed after its prefix, zero-padded to at least six digits';

-- Next number of a series (one-number block).
CREATE FUNCTION paas.next_invoice_number(series text) RETURNS text
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN paas.invoice_number(paas.invoice_number_prefix(series), paas.reserve_invoice_numbers(series, 1) + 1);
COMMENT ON FUNCTION paas.next_invoice_number(text) IS
	'allocates the next gap-free number of series INV or CN in this transaction';

CREATE FUNCTION paas.invoice_json(i paas.invoices) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'id', i.id, 'invoiceNumber', i.number, 'type', i.kind, 'amount', i.amount,
		'currency', i.currency, 'status', i.status, 'description', i.description,
		'lines', i.lines, 'reference', i.ref, 'topUpTransactionId', i.topup_id,
		'creditNoteFor', i.credit_note_for, 'voidedBy', i.voided_by,
		'downloadCount', i.download_count, 'issuedAt', paas.iso(i.issued_at),
		'dueDate', paas.iso(i.issued_at), 'paidAt', paas.iso(i.paid_at),
		'createdAt', paas.iso(i.issued_at));
COMMENT ON FUNCTION paas.invoice_json(paas.invoices) IS 'an invoice as the API prints it';

-- The field errors of invoice items (see paas.issue_invoices), every failing
-- field of every item, as items[i].field with i counted from 0; [] when all
-- are valid.  The slow, complete check, run only once the cheap checks of
-- paas.issue_invoices or paas.issue_invoice_items have found something wrong.
CREATE FUNCTION paas.invoice_item_errors(items jsonb) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (
	WITH x AS (
		SELECT x.n - 1 AS i, x.e, jsonb_typeof(x.e) = 'object' AS obj, u.id IS NOT NULL AS user_ok,
			   coalesce(jsonb_typeof(x.e -> 'amount') = 'number'
						AND x.e ->> 'amount' ~ '^[1-9][0-9]{0,17}$', false) AS amount_ok,
			   CASE WHEN x.e -> 'lines' IN ('null', '[]') THEN NULL ELSE x.e -> 'lines' END AS lines
		  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(items) = 'array' THEN items ELSE '[]' END)
			   WITH ORDINALITY AS x (e, n)
		  LEFT JOIN paas.users u ON u.id = paas.to_uuid(x.e ->> 'userId')),
	y AS (
		SELECT x.*,
			   x.lines IS NULL
			   OR (jsonb_typeof(x.lines) = 'array' AND x.amount_ok
				   AND (SELECT coalesce(bool_and(jsonb_typeof(l) = 'object'
												 AND jsonb_typeof(l -> 'amount') = 'number'
												 AND jsonb_typeof(l -> 'description') = 'string'), false)
							   AND sum(CASE WHEN jsonb_typeof(l -> 'amount') = 'number'
											THEN (l ->> 'amount')::numeric END) = (x.e ->> 'amount')::numeric
						  FROM jsonb_array_elements(x.lines) l)) AS lines_ok
		  FROM x)
	SELECT coalesce(jsonb_agg(jsonb_build_object('field', format('items[%s]%s', y.i, f.field),
												 'message', f.msg) ORDER BY y.i, f.o), '[]')
	  FROM y CROSS JOIN LATERAL (VALUES
			(0, '', 'each item must be a JSON object', NOT y.obj),
			(1, '.userId', 'userId must be an existing user', y.obj AND NOT y.user_ok),
			(2, '.kind', 'kind must be one of [TOPUP, SUBSCRIPTION]',
			 y.obj AND coalesce(y.e ->> 'kind' NOT IN ('TOPUP', 'SUBSCRIPTION'), true)),
			(3, '.amount', 'amount must be a positive integer', y.obj AND NOT y.amount_ok),
			(4, '.ref', 'ref must be a JSON object',
			 y.obj AND coalesce(jsonb_typeof(y.e -> 'ref') NOT IN ('object', 'null'), false)),
			(5, '.lines', 'lines must be [{description, amount}] summing to amount',
			 y.obj AND y.amount_ok AND NOT coalesce(y.lines_ok, false))) AS f (o, field, msg, bad)
	 WHERE f.bad);
COMMENT ON FUNCTION paas.invoice_item_errors(jsonb) IS
	'every field error of invoice items [{userId, kind, amount, ref, lines}] as [{field, message}]';

-- An invoice to issue, as SQL callers hand it to paas.issue_invoice_items.
CREATE TYPE paas.invoice_item AS (
	user_id			uuid,
	kind			text,
	amount			bigint,
	ref				jsonb,
	lines			jsonb
);
COMMENT ON TYPE paas.invoice_item IS
	'an invoice to issue: the fields of paas.issue_invoices'' items, typed';

-- Typed items as the JSON items of paas.issue_invoices (for the error report).
CREATE FUNCTION paas.invoice_items_json(items paas.invoice_item[]) RETURNS jsonb
	LANGUAGE sql IMMUTABLE
	RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('userId', i.user_id, 'kind', i.kind,
														 'amount', i.amount, 'ref', i.ref, 'lines', i.lines)
									  ORDER BY i.n), '[]')
			  FROM unnest(items) WITH ORDINALITY AS i (user_id, kind, amount, ref, lines, n));
COMMENT ON FUNCTION paas.invoice_items_json(paas.invoice_item[]) IS
	'typed invoice items as JSON items [{userId, kind, amount, ref, lines}]';

-- Raises PT400 with the field errors of items (it is only called once one
-- of them failed the check of paas.issue_invoice_items).
CREATE FUNCTION paas.invoice_items_refuse(items paas.invoice_item[]) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.raise_if_invalid(paas.invoice_item_errors(paas.invoice_items_json(items)));
	RAISE EXCEPTION 'invoice item refused without a field error' USING ERRCODE = 'internal_error';
END
$$;
COMMENT ON FUNCTION paas.invoice_items_refuse(paas.invoice_item[]) IS
	'raises PT400 listing every field error of invoice items';

-- Issues paid invoices, set-based: the one implementation behind
-- paas.issue_invoices (JSON items) and paas.issue_invoice (one invoice);
-- SQL callers with many rows (the renewal run) call it with an array built
-- by array_agg, which is much cheaper than building a JSON array.
-- items[i] (from 1): kind TOPUP or SUBSCRIPTION; amount > 0 (IDR); user_id
-- an existing user; ref a JSON object ({} when NULL); lines
-- [{description, quantity, unitPrice, amount}] summing to amount (one line
-- of the whole amount when NULL or empty; the first line describes the
-- invoice).  PT400 lists every failing field of every item as
-- items[i].field, i counted from 0 as in JSON, and issues nothing.  The k
-- invoices get one contiguous block of numbers INV-YYYYMM-NNNNNN of the
-- current UTC month, in item order, reserved with one counter update, and
-- are inserted with one statement.  Returns them in item order; an empty or
-- NULL array issues nothing and does not touch the counter.  ids, when
-- given, are the invoices' ids (ids[i] for items[i], as many as items): a
-- caller that must record an invoice id before issuing the block (the
-- renewal run writes its charge rows batch by batch) draws them itself.
-- Speed (the renewal run issues 100,000 at once): the insert itself checks
-- each item cheaply (the usual one-line invoice without a subquery), the
-- user's existence is the foreign key's check; only when something fails
-- are the complete errors computed (paas.invoice_items_refuse).  An error
-- rolls back the counter update with the rest, so numbers stay gap-free.
CREATE FUNCTION paas.issue_invoice_items(items paas.invoice_item[], ids uuid[] DEFAULT NULL)
	RETURNS SETOF paas.invoices
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	k integer := coalesce(cardinality(items), 0);
	base integer;
	pfx text := paas.invoice_number_prefix('INV');
BEGIN
	IF k = 0 THEN
		RETURN;
	END IF;
	IF ids IS NOT NULL AND cardinality(ids) <> k THEN
		RAISE EXCEPTION '% invoice ids for % invoice items', cardinality(ids), k
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	base := paas.reserve_invoice_numbers('INV', k);
	BEGIN
		RETURN QUERY
		INSERT INTO paas.invoices (id, number, user_id, kind, amount, description, lines, ref, topup_id,
								   paid_at)
		SELECT coalesce(ids[x.n::integer], gen_random_uuid()), paas.invoice_number(pfx, base + x.n::integer),
			   x.user_id,
			   CASE WHEN x.ok THEN x.kind ELSE paas.invoice_items_refuse(items) END, x.amount,
			   coalesce(x.l0 ->> 'description', x.descr),
			   CASE WHEN jsonb_typeof(x.lines) = 'array' AND jsonb_array_length(x.lines) > 0 THEN x.lines
					ELSE jsonb_build_array(jsonb_build_object('description', x.descr, 'quantity', 1,
															  'unitPrice', x.amount, 'amount', x.amount)) END,
			   CASE WHEN jsonb_typeof(x.ref) = 'object' THEN x.ref ELSE '{}' END,
			   paas.to_uuid(x.ref ->> 'topUpId'), now()
		  FROM (SELECT i.n, i.user_id, i.kind, i.amount, i.ref, i.lines, i.l0,
					   CASE WHEN i.kind = 'TOPUP' THEN 'Account Top-up' ELSE 'Service Subscription' END AS descr,
					   coalesce(
						i.kind IN ('TOPUP', 'SUBSCRIPTION') AND i.amount > 0
						AND coalesce(jsonb_typeof(i.ref) IN ('object', 'null'), true)
						AND (i.lines IS NULL OR jsonb_typeof(i.lines) = 'null'
							 OR (jsonb_typeof(i.lines) = 'array'
								 AND (jsonb_array_length(i.lines) = 0
									  -- one line of the whole amount (the usual case)
									  -- without a subquery
									  OR (jsonb_array_length(i.lines) = 1
										  AND jsonb_typeof(i.l0 -> 'description') = 'string'
										  AND jsonb_typeof(i.l0 -> 'amount') = 'number'
										  AND i.l0 ->> 'amount' = i.amount::text)
									  OR (SELECT bool_and(jsonb_typeof(l) = 'object'
														  AND jsonb_typeof(l -> 'description') = 'string'
														  AND jsonb_typeof(l -> 'amount') = 'number')
												 AND sum(CASE WHEN jsonb_typeof(l -> 'amount') = 'number'
															  THEN (l ->> 'amount')::numeric END) = i.amount
											FROM jsonb_array_elements(i.lines) l)))),
						false) AS ok
				  FROM (SELECT i.*, CASE WHEN jsonb_typeof(i.lines) = 'array' THEN i.lines -> 0 END AS l0
						  FROM unnest(items) WITH ORDINALITY AS i (user_id, kind, amount, ref, lines, n)) i) x
		 ORDER BY x.n
		RETURNING *;
	EXCEPTION WHEN foreign_key_violation OR not_null_violation THEN
		-- a user_id that is NULL or names no user is PT400; anything else (a
		-- ref.topUpId naming no top-up: the caller's bug) is raised as it is
		PERFORM paas.raise_if_invalid(paas.invoice_item_errors(paas.invoice_items_json(items)));
		RAISE;
	END;
END
$$;
COMMENT ON FUNCTION paas.issue_invoice_items(paas.invoice_item[], uuid[]) IS
	'issues PAID invoices numbered as one contiguous block, in one statement (ids: their ids, drawn by the caller, '
	'or NULL); PT400 names the failing items[i].field';

-- The same, for JSON items [{userId, kind, amount, ref, lines}] (amount an
-- integer, userId a user id): PT400 when items is not an array or an item
-- is malformed, with every failing field as items[i].field.
CREATE FUNCTION paas.issue_invoices(items jsonb) RETURNS SETOF paas.invoices
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF items IS NULL OR jsonb_typeof(items) <> 'array' THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', 'items', 'items must be a JSON array'));
	END IF;
	-- the JSON types; the values are checked by paas.issue_invoice_items
	IF EXISTS (SELECT 1 FROM jsonb_array_elements(items) e
				WHERE NOT coalesce(jsonb_typeof(e) = 'object'
								   AND paas.to_uuid(e ->> 'userId') IS NOT NULL
								   AND jsonb_typeof(e -> 'userId') = 'string'
								   AND jsonb_typeof(e -> 'kind') = 'string'
								   AND jsonb_typeof(e -> 'amount') = 'number'
								   AND e ->> 'amount' ~ '^[1-9][0-9]{0,17}$', false)) THEN
		PERFORM paas.raise_if_invalid(paas.invoice_item_errors(items));
	END IF;
	RETURN QUERY
	SELECT * FROM paas.issue_invoice_items(ARRAY(
		SELECT ROW(paas.to_uuid(x.e ->> 'userId'), x.e ->> 'kind', (x.e ->> 'amount')::bigint,
				   x.e -> 'ref', x.e -> 'lines')::paas.invoice_item
		  FROM jsonb_array_elements(items) WITH ORDINALITY AS x (e, n) ORDER BY x.n));
END
$$;
COMMENT ON FUNCTION paas.issue_invoices(jsonb) IS
	'issues PAID invoices [{userId, kind, amount, ref, lines}] numbered as one contiguous block, in one statement; '
	'PT400 names the failing items[i].field';

-- One invoice through paas.issue_invoice_items (so there is one numbering
-- path); PT400 fields are named items[0].field.  Returns the invoice as the API
-- prints it.
CREATE FUNCTION paas.issue_invoice(user_id uuid, kind text, amount bigint, ref jsonb,
								   lines jsonb DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT paas.invoice_json(i)
			  FROM paas.issue_invoice_items(ARRAY[ROW(issue_invoice.user_id, issue_invoice.kind,
				issue_invoice.amount, issue_invoice.ref, issue_invoice.lines)::paas.invoice_item]) i);
COMMENT ON FUNCTION paas.issue_invoice(uuid, text, bigint, jsonb, jsonb) IS
	'issues one PAID invoice numbered INV-YYYYMM-NNNNNN in the calling transaction (paas.issue_invoice_items)';

-- Voids an invoice by issuing its credit note (CN-YYYYMM-NNNNNN, negative
-- amount).  Returns the credit note; PT404 unknown invoice, PT409 when it is
-- already void or is itself a credit note.
CREATE FUNCTION paas.void_invoice(invoice_id uuid, reason text) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.invoices;
	cn paas.invoices;
BEGIN
	SELECT * INTO i FROM paas.invoices WHERE id = invoice_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Invoice not found' USING ERRCODE = 'PT404';
	END IF;
	IF i.kind = 'CREDIT_NOTE' OR i.voided_by IS NOT NULL THEN
		RAISE EXCEPTION 'Invoice % cannot be voided', i.number USING ERRCODE = 'PT409';
	END IF;
	INSERT INTO paas.invoices (number, user_id, kind, amount, description, lines, ref,
							   topup_id, credit_note_for, paid_at, status)
	VALUES (paas.next_invoice_number('CN'), i.user_id, 'CREDIT_NOTE', -i.amount,
			format('Credit note for %s: %s', i.number, coalesce(reason, 'void')),
			jsonb_build_array(jsonb_build_object('description', 'Void of ' || i.number,
				'quantity', 1, 'unitPrice', -i.amount, 'amount', -i.amount)),
			i.ref || jsonb_build_object('reason', reason), i.topup_id, i.id, now(), 'ISSUED')
	RETURNING * INTO cn;
	UPDATE paas.invoices SET status = 'VOID', voided_by = cn.id WHERE id = i.id;
	RETURN paas.invoice_json(cn);
END
$$;
COMMENT ON FUNCTION paas.void_invoice(uuid, text) IS
	'voids an invoice by issuing its credit note; PT404 / PT409';

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

------------------------------------------------------------------------------
-- the transaction feed
------------------------------------------------------------------------------

-- Every money movement of a user: top-ups (any status, with the credit
-- posting when paid), their refunds/chargebacks, and every other ledger
-- entry on the wallet (charges, adjustments ...).  Each row names its
-- invoice by key (inv_topup: the top-up's first TOPUP invoice; inv_id: an
-- invoice id; inv_entry: the invoice whose ref.entryId is the entry);
-- paas.feed_invoice() turns the key into the invoice, so that a caller
-- computes it for the rows it prints only (one page).
-- Cost: every branch starts from the user (indexes on user_id, the wallet's
-- (account_id, id)), never from the platform's rows.  The body is a SQL
-- standard one, parsed at creation, and has no SET clause on purpose: the
-- planner inlines it, pushes the callers' filters (type, status, dates, id)
-- into each branch and drops the columns a caller does not use (a count
-- reads no invoice).  With the body pre-parsed, the caller's search_path
-- plays no part.
CREATE FUNCTION paas.billing_feed_rows(uid uuid)
	RETURNS TABLE (id text, created_at timestamptz, type text, status text, amount bigint,
				   direction text, description text, balance_before bigint, balance_after bigint,
				   reference text, reference_type text, payment_method text,
				   payment_gateway text, topup_id uuid,
				   inv_topup uuid, inv_id uuid, inv_entry text)
	LANGUAGE sql STABLE
	BEGIN ATOMIC
		-- the user's top-ups and their orders, read once (a subquery per
		-- top-up and another per order, each a scan, were about half of the
		-- feed's rows' cost): a top-up's row n = 1 is its first credited
		-- order (by payment time, then ledger entry), whose balances it
		-- shows, or any order when none was credited (no balances); every
		-- other credited order is a row of its own
		WITH o AS MATERIALIZED (
			SELECT t.id AS topup_id, t.created_at, t.status, t.amount, t.payment_type AS topup_payment_type,
				   x.order_id, x.paid_at, x.credited, x.payment_type, x.invoice_id, x.credit_entry,
				   row_number() OVER (PARTITION BY t.id
									  ORDER BY x.credit_entry IS NULL, x.paid_at,
											   (x.credit_entry ->> 'entryId')::bigint, x.order_id) AS n,
				   bool_or(x.credit_entry IS NOT NULL) OVER (PARTITION BY t.id) AS has_credit
			  FROM paas.topups t
			  LEFT JOIN paas.topup_orders x ON x.topup_id = t.id
			 WHERE t.user_id = uid)
		SELECT o.topup_id::text, o.created_at, 'TOPUP',
			   CASE o.status WHEN 'PAID' THEN 'SUCCESS' ELSE o.status END,
			   o.amount, 'CREDIT', 'Account top-up via payment gateway',
			   (o.credit_entry ->> 'balanceBefore')::bigint, (o.credit_entry ->> 'balanceAfter')::bigint,
			   o.topup_id::text, 'TOP_UP_TRANSACTION', o.topup_payment_type, 'MIDTRANS', o.topup_id,
			   o.topup_id, NULL::uuid, NULL::text
		  FROM o
		 WHERE o.n = 1
		UNION ALL
		-- a second paid order of one top-up (two of its links were paid)
		SELECT o.order_id, o.paid_at, 'TOPUP', 'SUCCESS', o.credited, 'CREDIT',
			   'Additional payment of top-up ' || o.topup_id,
			   (o.credit_entry ->> 'balanceBefore')::bigint, (o.credit_entry ->> 'balanceAfter')::bigint,
			   o.topup_id::text, 'TOP_UP_TRANSACTION', o.payment_type, 'MIDTRANS', o.topup_id,
			   NULL::uuid, o.invoice_id, NULL::text
		  FROM o
		 WHERE o.credited > 0 AND o.has_credit AND o.n > 1
		UNION ALL
		SELECT r.id::text, r.created_at, 'REFUND',
			   CASE r.status WHEN 'SUCCESS' THEN 'SUCCESS' ELSE 'PENDING' END,
			   r.amount, 'DEBIT', initcap(lower(r.kind)) || ' of top-up ' || r.order_id,
			   (r.entry ->> 'balanceBefore')::bigint, (r.entry ->> 'balanceAfter')::bigint,
			   r.topup_id::text, 'TOP_UP_TRANSACTION', NULL, 'MIDTRANS', r.topup_id,
			   NULL::uuid, NULL::uuid, NULL::text
		  FROM paas.topup_reversals r
		 WHERE r.user_id = uid
		UNION ALL
		-- every other movement of the wallet: charges, adjustments, reversals
		SELECT e.id::text, e.created_at,
			   CASE WHEN e.kind IN ('adjustment', 'opening_balance') THEN 'ADJUSTMENT'
					WHEN e.kind = 'reversal' OR e.kind LIKE '%refund%' THEN 'REFUND'
					ELSE 'SERVICE_PURCHASE' END,
			   'SUCCESS', abs(p.amount), CASE WHEN p.amount > 0 THEN 'CREDIT' ELSE 'DEBIT' END,
			   coalesce(nullif(e.memo, ''), e.kind), p.balance_before, p.balance_after,
			   coalesce(e.ref ->> 'subscriptionId', e.ref ->> 'reverses', e.id::text),
			   upper(e.kind), 'CREDIT_BALANCE', 'BALANCE', NULL::uuid,
			   NULL::uuid, NULL::uuid, e.id::text
		  FROM paas.ledger_accounts a
		  JOIN paas.ledger_postings p ON p.account_id = a.id
		  JOIN paas.ledger_entries e ON e.id = p.entry_id
		 WHERE a.user_id = uid AND e.kind NOT IN ('topup', 'topup_refund', 'topup_chargeback', 'topup_reversal');
	END;
COMMENT ON FUNCTION paas.billing_feed_rows(uuid) IS
	'every money movement of a user (unordered), its invoice named by key (paas.feed_invoice); inlined by the planner';

-- The invoice of a feed row, {id, invoiceNumber, status}, from its key (see
-- paas.billing_feed_rows): one row, or none.  One indexed read:
-- invoices_topup_idx, the primary key, invoices_entry_idx.  A set-returning
-- SQL function with a SQL-standard body, so that the planner inlines it:
-- used as a scalar subquery, (SELECT v.invoice FROM paas.feed_invoice(...) v),
-- it is a subplan of its caller's plan, planned once with it and re-run
-- per row (a scalar SQL function with subqueries cannot be inlined: it was
-- started and run as a query of its own for every row, about a quarter of
-- the feed's time), and a caller that does not print the invoice drops it.
-- At most one of the keys is set (paas.billing_feed_rows); the first one
-- set wins.
CREATE FUNCTION paas.feed_invoice(inv_topup uuid, inv_id uuid, inv_entry text)
	RETURNS TABLE (invoice jsonb)
	LANGUAGE sql STABLE
	BEGIN ATOMIC
		(SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
		   FROM paas.invoices i
		  WHERE inv_topup IS NOT NULL AND i.topup_id = inv_topup AND i.kind = 'TOPUP'
		  ORDER BY i.issued_at LIMIT 1)
		UNION ALL
		(SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
		   FROM paas.invoices i
		  WHERE inv_topup IS NULL AND inv_id IS NOT NULL AND i.id = inv_id)
		UNION ALL
		(SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
		   FROM paas.invoices i
		  WHERE inv_topup IS NULL AND inv_id IS NULL AND inv_entry IS NOT NULL
			AND i.ref ->> 'entryId' = inv_entry
		  ORDER BY i.issued_at LIMIT 1);
	END;
COMMENT ON FUNCTION paas.feed_invoice(uuid, uuid, text) IS
	'{id, invoiceNumber, status} of a feed row''s invoice, from its key; no row when none; inlined by the planner';

-- Every money movement of a user with its invoice (unordered): what
-- paas.billing_feed_rows lists, the invoice looked up for every row.
-- Inlined too, so a filter on id (one movement) looks up one invoice.
CREATE FUNCTION paas.billing_feed(uid uuid)
	RETURNS TABLE (id text, created_at timestamptz, type text, status text, amount bigint,
				   direction text, description text, balance_before bigint, balance_after bigint,
				   reference text, reference_type text, payment_method text,
				   payment_gateway text, invoice jsonb, topup_id uuid)
	LANGUAGE sql STABLE
	BEGIN ATOMIC
		SELECT r.id, r.created_at, r.type, r.status, r.amount, r.direction, r.description,
			   r.balance_before, r.balance_after, r.reference, r.reference_type, r.payment_method,
			   r.payment_gateway,
			   (SELECT v.invoice FROM paas.feed_invoice(r.inv_topup, r.inv_id, r.inv_entry) v),
			   r.topup_id
		  FROM paas.billing_feed_rows(uid) r;
	END;
COMMENT ON FUNCTION paas.billing_feed(uuid) IS 'every money movement of a user (unordered), with its invoice';

-- A feed row as the API prints it.  A SQL function of the row's columns
-- (a SQL function cannot read the fields of a record argument), a single
-- expression without a SET clause: the planner inlines it into the
-- caller's query, where a PL/pgSQL function with SET search_path was
-- called, with its GUC save and restore, for every row.  It is json, text
-- its callers aggregate and nest as text and make jsonb once (a page of 20
-- rows built as jsonb was pushed value by value four times: the row, the
-- aggregate, and each object that wraps it; as json it is parsed once, and
-- the page costs about half as much, docs/performance.md).
CREATE FUNCTION paas.feed_json(id text, created_at timestamptz, type text, status text,
							   amount bigint, direction text, description text,
							   balance_before bigint, balance_after bigint, reference text,
							   reference_type text, payment_method text, payment_gateway text,
							   invoice jsonb) RETURNS json
	LANGUAGE sql STABLE
	RETURN json_build_object(
		'id', id, 'date', paas.iso(created_at), 'createdAt', paas.iso(created_at),
		'type', type, 'description', description, 'amount', amount, 'currency', 'IDR',
		'direction', direction,
		'status', status, 'balanceBefore', balance_before, 'balanceAfter', balance_after,
		'reference', reference, 'referenceType', reference_type,
		'paymentMethod', payment_method, 'paymentGateway', payment_gateway,
		'invoice', invoice,
		'actions', json_build_object(
			'canPay', type = 'TOPUP' AND status = 'PENDING',
			'canCancel', false,
			'canDownloadInvoice', coalesce(invoice ->> 'status' = 'PAID', false)));
COMMENT ON FUNCTION paas.feed_json(text, timestamptz, text, text, bigint, text, text, bigint, bigint,
								   text, text, text, text, jsonb) IS
	'a feed row (the columns of paas.billing_feed) as the API prints it, as json; inlined by the planner';

-- startDate / endDate: ISO dates or timestamps, both optional, start <= end.
CREATE FUNCTION paas.check_date_range(errs jsonb, req jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	f text;
	s timestamptz;
	e timestamptz;
BEGIN
	FOREACH f IN ARRAY ARRAY['startDate', 'endDate'] LOOP
		IF req ? f THEN
			BEGIN
				IF req ->> f !~ '^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}(:?\d{2})?)?)?$' THEN
					RAISE EXCEPTION 'bad';
				END IF;
				PERFORM (req ->> f)::timestamptz;
			EXCEPTION WHEN OTHERS THEN
				errs := paas.add_err(errs, f, f || ' must be an ISO 8601 date');
			END;
		END IF;
	END LOOP;
	IF jsonb_array_length(errs) = 0 AND req ? 'startDate' AND req ? 'endDate' THEN
		s := (req ->> 'startDate')::timestamptz;
		e := (req ->> 'endDate')::timestamptz;
		IF s > e THEN
			errs := paas.add_err(errs, 'startDate', 'Start date must be before end date');
		END IF;
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_date_range(jsonb, jsonb) IS
	'appends errors for invalid startDate / endDate';

-- The upper bound of endDate: a bare date includes that whole day.
CREATE FUNCTION paas.range_end(v text) RETURNS timestamptz
	LANGUAGE sql STABLE
	RETURN CASE WHEN v IS NULL THEN 'infinity'::timestamptz
				WHEN v ~ '^\d{4}-\d{2}-\d{2}$' THEN v::date + interval '1 day' - interval '1 microsecond'
				ELSE v::timestamptz END;
COMMENT ON FUNCTION paas.range_end(text) IS 'inclusive end of a date-range filter';

-- The page's query is planned once per session (plan_cache_mode): its
-- custom plans, one per call, differed from the generic one only in the
-- filters a call leaves out, and planning the four inlined branches was
-- 6-8 % of the backend's time (perf; pgbench, 8 clients: 10-25 % more
-- calls/s, docs/performance.md).
CREATE FUNCTION api.billing_transactions(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
	lim int;
	total bigint;
	rows json;
	pg jsonb;
	s timestamptz;
	e timestamptz;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'type', false,
		ARRAY['TOPUP', 'SERVICE_PURCHASE', 'REFUND', 'ADJUSTMENT']);
	errs := paas.check_enum(errs, req, 'status', false,
		ARRAY['PENDING', 'SUCCESS', 'FAILED', 'CANCELLED', 'EXPIRED', 'REFUNDED']);
	errs := paas.check_date_range(errs, req);
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 20);
	s := coalesce((req ->> 'startDate')::timestamptz, '-infinity');
	e := paas.range_end(req ->> 'endDate');

	-- One pass over the user's own movements (paas.billing_feed_rows is
	-- inlined: the filters reach each branch, from the user's indexes):
	-- they are counted, and only the page's rows get their invoice and JSON.
	-- The invoice is a column of a subquery that the planner keeps as it is
	-- (OFFSET 0), so that it reaches paas.feed_json as a column: the planner
	-- does not inline a function whose argument, read twice, is a subplan.
	WITH f AS MATERIALIZED (
		SELECT b.* FROM paas.billing_feed_rows(u.id) b
		 WHERE (req ->> 'type' IS NULL OR b.type = req ->> 'type')
		   AND (req ->> 'status' IS NULL OR b.status = req ->> 'status')
		   AND b.created_at BETWEEN s AND e)
	SELECT (SELECT count(*) FROM f),
		   (SELECT coalesce(json_agg(paas.feed_json(x.id, x.created_at, x.type, x.status, x.amount, x.direction,
										  x.description, x.balance_before, x.balance_after, x.reference,
										  x.reference_type, x.payment_method, x.payment_gateway, x.invoice)
								ORDER BY x.created_at DESC, x.id), '[]')
			  FROM (SELECT p.*, (SELECT v.invoice FROM paas.feed_invoice(p.inv_topup, p.inv_id, p.inv_entry) v)
							 AS invoice
					  FROM (SELECT * FROM f ORDER BY f.created_at DESC, f.id
							 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) p
					OFFSET 0) x)
	  INTO total, rows;
	pg := paas.pagination(req, total, 20);
	-- nested as json text, made jsonb once (paas.feed_json)
	RETURN json_build_object('data', json_build_object('transactions', rows, 'pagination', pg),
							 'pagination', pg)::jsonb;
END
$$;
COMMENT ON FUNCTION api.billing_transactions(jsonb, jsonb) IS
	'GET /billing/transactions: page, limit, type, status, startDate, endDate';

CREATE FUNCTION api.billing_transaction_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	res jsonb;
BEGIN
	SELECT paas.feed_json(x.id, x.created_at, x.type, x.status, x.amount, x.direction, x.description,
						  x.balance_before, x.balance_after, x.reference, x.reference_type,
						  x.payment_method, x.payment_gateway, x.invoice)::jsonb
	  INTO res FROM paas.billing_feed(u.id) x WHERE x.id = req ->> 'id';
	IF res IS NULL THEN
		RAISE EXCEPTION 'Transaction not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN res || jsonb_build_object('user', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email));
END
$$;
COMMENT ON FUNCTION api.billing_transaction_get(jsonb, jsonb) IS
	'GET /billing/transactions/:id (owner only)';

------------------------------------------------------------------------------
-- invoices over HTTP
------------------------------------------------------------------------------

-- The original's fields of an invoice in lists and details: its owner, the
-- top-up {orderId, paymentType} or the subscription {..., service} it bills
-- (null when none), where its PDF is, and when it last changed (issued, or
-- voided by a credit note).  PL/pgSQL: subscriptions are a later part.
CREATE FUNCTION paas.invoice_links(i paas.invoices) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	RETURN jsonb_build_object(
		'userId', i.user_id,
		'subscriptionId', paas.to_uuid(i.ref ->> 'subscriptionId'),
		'pdfPath', '/api/v1/billing/invoices/' || i.id || '/pdf',
		'updatedAt', paas.iso(greatest(i.issued_at,
			(SELECT c.issued_at FROM paas.invoices c WHERE c.id = i.voided_by))),
		'topUpTransaction', (SELECT jsonb_build_object('id', t.id, 'orderId', t.order_id,
													   'paymentType', t.payment_type)
							   FROM paas.topups t WHERE t.id = i.topup_id),
		'subscription', (SELECT paas.subscription_json(x, v)
						   FROM paas.subscriptions x JOIN paas.services v ON v.id = x.service_id
						  WHERE x.id = paas.to_uuid(i.ref ->> 'subscriptionId')));
END
$$;
COMMENT ON FUNCTION paas.invoice_links(paas.invoices) IS
	'userId, subscriptionId, pdfPath, updatedAt, topUpTransaction and subscription of an invoice';

CREATE FUNCTION api.billing_invoices(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
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
	s timestamptz;
	e timestamptz;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'type', false, ARRAY['TOPUP', 'SUBSCRIPTION', 'CREDIT_NOTE']);
	errs := paas.check_enum(errs, req, 'status', false, ARRAY['PAID', 'VOID', 'ISSUED']);
	errs := paas.check_date_range(errs, req);
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 20);
	s := coalesce((req ->> 'startDate')::timestamptz, '-infinity');
	e := paas.range_end(req ->> 'endDate');
	SELECT count(*) INTO total FROM paas.invoices i
	 WHERE i.user_id = u.id AND (req ->> 'type' IS NULL OR i.kind = req ->> 'type')
	   AND (req ->> 'status' IS NULL OR i.status = req ->> 'status')
	   AND i.issued_at BETWEEN s AND e;
	SELECT coalesce(jsonb_agg(paas.invoice_json(x) || paas.invoice_links(x) ORDER BY x.issued_at DESC, x.number DESC), '[]')
	  INTO rows
	  FROM (SELECT * FROM paas.invoices i
			 WHERE i.user_id = u.id AND (req ->> 'type' IS NULL OR i.kind = req ->> 'type')
			   AND (req ->> 'status' IS NULL OR i.status = req ->> 'status')
			   AND i.issued_at BETWEEN s AND e
			 ORDER BY i.issued_at DESC, i.number DESC
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) x;
	pg := paas.pagination(req, total, 20);
	RETURN jsonb_build_object('data', jsonb_build_object('invoices', rows, 'pagination', pg),
							  'pagination', pg);
END
$$;
COMMENT ON FUNCTION api.billing_invoices(jsonb, jsonb) IS
	'GET /billing/invoices: page, limit, type, status, startDate, endDate';

CREATE FUNCTION paas.invoice_detail(i paas.invoices, u paas.users) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN paas.invoice_json(i) || paas.invoice_links(i) || jsonb_build_object(
		'user', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email),
		'creditNoteFor', (SELECT jsonb_build_object('id', c.id, 'invoiceNumber', c.number)
							FROM paas.invoices c WHERE c.id = i.credit_note_for),
		'voidedBy', (SELECT jsonb_build_object('id', c.id, 'invoiceNumber', c.number)
					   FROM paas.invoices c WHERE c.id = i.voided_by));
COMMENT ON FUNCTION paas.invoice_detail(paas.invoices, paas.users) IS
	'an invoice with its user, top-up, subscription and credit-note links';

CREATE FUNCTION api.billing_invoice_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.invoices;
BEGIN
	SELECT * INTO i FROM paas.invoices WHERE id = paas.to_uuid(req ->> 'id') AND user_id = u.id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Invoice not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.invoice_detail(i, u);
END
$$;
COMMENT ON FUNCTION api.billing_invoice_get(jsonb, jsonb) IS 'GET /billing/invoices/:id (owner only)';

-- The data httpd renders as the PDF (httpd/invoice_pdf.c); counts the download.
CREATE FUNCTION api.billing_invoice_pdf(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.invoices;
BEGIN
	UPDATE paas.invoices SET download_count = download_count + 1
	 WHERE id = paas.to_uuid(req ->> 'id') AND user_id = u.id
	RETURNING * INTO i;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Invoice not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.invoice_detail(i, u);
END
$$;
COMMENT ON FUNCTION api.billing_invoice_pdf(jsonb, jsonb) IS
	'GET /billing/invoices/:id/pdf: the invoice to render (owner only); counts downloads';

------------------------------------------------------------------------------
-- dashboards, health
------------------------------------------------------------------------------

CREATE FUNCTION api.billing_dashboard_overview(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}')
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	bal bigint := paas.wallet_balance(u.id);
	pending jsonb;
	pcount bigint;
	pamount bigint;
	recent jsonb;
	total bigint;
BEGIN
	SELECT count(*), coalesce(sum(amount), 0) INTO pcount, pamount
	  FROM paas.topups WHERE user_id = u.id AND status = 'PENDING';
	SELECT coalesce(jsonb_agg(paas.topup_json(t) ORDER BY t.created_at DESC), '[]') INTO pending
	  FROM (SELECT * FROM paas.topups WHERE user_id = u.id AND status = 'PENDING'
			 ORDER BY created_at DESC LIMIT 10) t;
	WITH f AS MATERIALIZED (SELECT b.* FROM paas.billing_feed_rows(u.id) b)
	SELECT (SELECT count(*) FROM f),
		   (SELECT coalesce(json_agg(paas.feed_json(x.id, x.created_at, x.type, x.status, x.amount, x.direction,
										  x.description, x.balance_before, x.balance_after, x.reference,
										  x.reference_type, x.payment_method, x.payment_gateway, x.invoice)
								ORDER BY x.created_at DESC, x.id)::jsonb, '[]')
			  FROM (SELECT p.*, (SELECT v.invoice FROM paas.feed_invoice(p.inv_topup, p.inv_id, p.inv_entry) v)
							 AS invoice
					  FROM (SELECT * FROM f ORDER BY f.created_at DESC, f.id LIMIT 5) p OFFSET 0) x)
	  INTO total, recent;
	RETURN jsonb_build_object(
		'balance', jsonb_build_object('current', bal, 'currency', 'IDR',
									  -- the wallet's last change, as GET /billing/balance says
									  'lastUpdated', (SELECT paas.iso(coalesce(max(a.updated_at), u.created_at))
														FROM paas.ledger_accounts a WHERE a.user_id = u.id)),
		'pendingTopUps', jsonb_build_object('count', pcount, 'totalAmount', pamount,
											'transactions', pending),
		'recentTransactions', recent,
		'summary', jsonb_build_object('availableBalance', bal, 'pendingAmount', pamount,
									  'totalTransactions', total));
END
$$;
COMMENT ON FUNCTION api.billing_dashboard_overview(jsonb, jsonb) IS
	'GET /billing/dashboard/overview: balance, pending top-ups, recent movements';

CREATE FUNCTION api.billing_dashboard_analytics(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}')
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
	s timestamptz;
	e timestamptz;
	res jsonb;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_date_range(errs, req);
	PERFORM paas.raise_if_invalid(errs);
	s := coalesce((req ->> 'startDate')::timestamptz, '-infinity');
	e := paas.range_end(req ->> 'endDate');
	WITH f AS (SELECT * FROM paas.billing_feed(u.id) b WHERE b.created_at BETWEEN s AND e),
	tot AS (
		SELECT coalesce(sum(amount) FILTER (WHERE type = 'TOPUP' AND status = 'SUCCESS'), 0) AS topups,
			   count(*) FILTER (WHERE type = 'TOPUP' AND status = 'SUCCESS') AS ntopups,
			   coalesce(sum(amount) FILTER (WHERE type = 'SERVICE_PURCHASE' AND status = 'SUCCESS'), 0) AS spend,
			   count(*) FILTER (WHERE type = 'SERVICE_PURCHASE' AND status = 'SUCCESS') AS nspend,
			   count(*) AS n,
			   count(*) FILTER (WHERE type = 'TOPUP') AS ntop_all,
			   count(*) FILTER (WHERE type = 'SERVICE_PURCHASE') AS nsp_all,
			   count(*) FILTER (WHERE status = 'PENDING') AS npending,
			   count(*) FILTER (WHERE status IN ('FAILED', 'EXPIRED', 'CANCELLED')) AS nfailed
		  FROM f)
	SELECT jsonb_build_object(
		'period', jsonb_strip_nulls(jsonb_build_object('startDate', req ->> 'startDate',
													   'endDate', req ->> 'endDate')),
		'analytics', jsonb_build_object(
			'totalTopUps', tot.topups, 'totalSpending', tot.spend, 'transactionCount', tot.n,
			'averageTopUp', CASE WHEN tot.ntopups > 0 THEN round(tot.topups::numeric / tot.ntopups) ELSE 0 END,
			'averageSpending', CASE WHEN tot.nspend > 0 THEN round(tot.spend::numeric / tot.nspend) ELSE 0 END),
		'transactionBreakdown', jsonb_build_object('topUps', tot.ntop_all,
			'servicePurchases', tot.nsp_all, 'pending', tot.npending, 'failed', tot.nfailed),
		'byType', (SELECT coalesce(jsonb_agg(jsonb_build_object('type', x.type, 'status', x.status,
								'count', x.n, 'amount', x.amt) ORDER BY x.type, x.status), '[]')
					 FROM (SELECT type, status, count(*) AS n, sum(amount) AS amt
							 FROM f GROUP BY type, status) x),
		'byDay', (SELECT coalesce(jsonb_agg(jsonb_build_object('date', x.d, 'type', x.type,
								'count', x.n, 'amount', x.amt) ORDER BY x.d, x.type), '[]')
					FROM (SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS d, type,
								 count(*) AS n, sum(amount) AS amt
							FROM f WHERE status = 'SUCCESS' GROUP BY 1, 2) x))
	  INTO res FROM tot;
	RETURN res;
END
$$;
COMMENT ON FUNCTION api.billing_dashboard_analytics(jsonb, jsonb) IS
	'GET /billing/dashboard/analytics: totals by type/status and by day (startDate, endDate)';

CREATE FUNCTION api.billing_health(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object('status', 'healthy', 'service', 'billing', 'version', '1.0.0',
							  'database', 'up', 'gatewayConfigured', paas.midtrans_configured(),
							  'timestamp', paas.iso(now()));
COMMENT ON FUNCTION api.billing_health(jsonb, jsonb) IS 'GET /billing/health (public)';

------------------------------------------------------------------------------
-- reporting
------------------------------------------------------------------------------

CREATE VIEW reporting.topups_by_status AS
	SELECT t.status,
		   count(*) AS topups,
		   coalesce(sum(t.amount), 0)::bigint AS amount,
		   min(t.created_at) AS oldest,
		   max(t.created_at) AS newest,
		   (SELECT count(*) FROM paas.topup_reversals r
			 JOIN paas.topups t2 ON t2.id = r.topup_id
			WHERE t2.status = t.status AND r.status = 'BLOCKED') AS blocked_reversals
	  FROM paas.topups t
	 GROUP BY t.status;
COMMENT ON VIEW reporting.topups_by_status IS
	'top-ups per status: count, amount, age range, reversals the wallet could not cover';
GRANT SELECT ON reporting.topups_by_status TO paas_bi, paas_owner;

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.billing_topup(jsonb, jsonb)', 'api.billing_transaction_pay(jsonb, jsonb)',
		'api.billing_topups(jsonb, jsonb)', 'api.billing_topup_get(jsonb, jsonb)',
		'api.billing_webhook_midtrans(jsonb, jsonb)', 'api.billing_transactions(jsonb, jsonb)',
		'api.billing_transaction_get(jsonb, jsonb)', 'api.billing_invoices(jsonb, jsonb)',
		'api.billing_invoice_get(jsonb, jsonb)', 'api.billing_invoice_pdf(jsonb, jsonb)',
		'api.billing_dashboard_overview(jsonb, jsonb)',
		'api.billing_dashboard_analytics(jsonb, jsonb)', 'api.billing_health(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;
