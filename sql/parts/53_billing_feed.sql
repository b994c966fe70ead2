-- paas -- what a user and an administrator read of the money: the unified
-- transaction feed (/billing/transactions), the dashboards, the billing
-- health route and the BI view of top-ups.

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
		'api.billing_transactions(jsonb, jsonb)', 'api.billing_transaction_get(jsonb, jsonb)',
		'api.billing_dashboard_overview(jsonb, jsonb)',
		'api.billing_dashboard_analytics(jsonb, jsonb)', 'api.billing_health(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;
