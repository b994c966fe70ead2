-- Fixtures of the billing tests (billing.sql, invoices.sql), included with
-- \ir inside their transaction: two users (an owner and another person),
-- their ctx, a signed Midtrans notification and a status-API answer as the
-- worker applies it, and the temp table pg_temp.v of results.  The
-- signatures need the cluster's paas.midtrans_server_key (tests/run.sh sets
-- one).
INSERT INTO paas.users (id, email, name, password_hash) VALUES
	('00000000-0000-4000-8000-00000000b111', 'bill.owner@example.com', 'Bill Owner', 'x'),
	('00000000-0000-4000-8000-00000000b222', 'bill.other@example.com', 'Other Person', 'x');

CREATE FUNCTION pg_temp.ctx(who text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('userId', CASE who WHEN 'owner' THEN '00000000-0000-4000-8000-00000000b111'
												 ELSE '00000000-0000-4000-8000-00000000b222' END)
$$;
CREATE FUNCTION pg_temp.sig(order_id text, code text, gross text) RETURNS text LANGUAGE sql AS $$
	SELECT encode(digest(order_id || code || gross || current_setting('paas.midtrans_server_key'), 'sha512'), 'hex')
$$;
-- a signed notification as Midtrans sends it
CREATE FUNCTION pg_temp.note(order_id text, st text, gross text DEFAULT '50000.00',
							 extra jsonb DEFAULT '{}') RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object(
		'transaction_status', st, 'order_id', order_id, 'gross_amount', gross,
		'status_code', CASE WHEN st IN ('pending', 'authorize') THEN '201'
							WHEN st IN ('deny', 'cancel', 'expire', 'failure') THEN '202' ELSE '200' END,
		'signature_key', pg_temp.sig(order_id,
			CASE WHEN st IN ('pending', 'authorize') THEN '201'
				 WHEN st IN ('deny', 'cancel', 'expire', 'failure') THEN '202' ELSE '200' END, gross),
		'payment_type', 'bank_transfer', 'currency', 'IDR', 'transaction_id', gen_random_uuid(),
		'status_message', 'midtrans payment notification') || extra
$$;
CREATE TABLE pg_temp.v (k text PRIMARY KEY, j jsonb);
-- the status API's answer for an order, applied as the worker applies it
CREATE FUNCTION pg_temp.answer(order_id text, st text, gross text DEFAULT '50000.00',
							   extra jsonb DEFAULT '{}') RETURNS text LANGUAGE sql AS $$
	SELECT paas.billing_reconcile_apply(order_id, 200,
		(pg_temp.note(order_id, st, gross, extra) || '{"status_message": "Success, transaction is found"}')::text) ->> 'outcome'
$$;
