-- paas -- invoices, the shared service every area that takes money issues
-- through (top-ups, subscriptions, instances): gap-free numbering, the
-- immutable record, credit notes, and the /billing/invoices routes.
--
-- Invoices are numbered INV-YYYYMM-000123 per UTC month from a counter row
-- updated in the issuing transaction (gap-free: a rollback returns the
-- number), immutable once issued (trigger), voided only by a credit note
-- (CN-YYYYMM-000001) that references them.  The reference of a top-up's
-- invoice to its top-up (topup_id) is made by 51_topups.sql, where
-- paas.topups is created.

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
	topup_id		uuid,
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

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.billing_invoices(jsonb, jsonb)',
		'api.billing_invoice_get(jsonb, jsonb)', 'api.billing_invoice_pdf(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;
