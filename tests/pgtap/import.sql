-- import: api.import_original (sql/parts/80_import.sql) on the original's
-- schema and seed with awkward rows (tests/import/), loaded into a schema of
-- this database as a DBA would restore a dump: the dry run writes nothing,
-- the import brings every area in through its own rules and reports what it
-- could not take, a second run imports nothing twice, balances reconcile to
-- the rupiah, imported money is never counted twice; the helpers (connection
-- strings, periods, attachment guards) and the grants.
BEGIN;
SELECT plan(100);

-- the original, as a restored dump, in schema orig_tap
SET client_min_messages = warning;
CREATE SCHEMA orig_tap;
SET search_path = orig_tap;
\ir ../import/original_schema.sql
\ir ../import/original_seed.sql
RESET search_path;
-- a node as the original's heartbeats leave one: numbers as text, in cores, MB, GB
UPDATE orig_tap.worker_nodes SET "allocatedCPU" = '1.5', "allocatedMemory" = '2048', "allocatedStorage" = '20',
	   "currentPods" = 3
 WHERE name = 'worker-intel-i7';

-- paas already has an account with the original administrator's e-mail
SELECT api.seed_admin('Admin@Paas.com', 'Adm1nistrator') IS NOT NULL AS seeded \gset

CREATE FUNCTION pg_temp.uid(mail text) RETURNS uuid LANGUAGE sql AS
	$$ SELECT id FROM paas.users WHERE lower(email) = lower(mail) AND deleted_at IS NULL $$;
CREATE FUNCTION pg_temp.ctx(mail text) RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('userId', pg_temp.uid(mail)) $$;
CREATE FUNCTION pg_temp.target(tbl text, sid text) RETURNS uuid LANGUAGE sql AS
	$$ SELECT target_id::uuid FROM paas.import_map WHERE source_table = tbl AND source_id = sid $$;
CREATE FUNCTION pg_temp.sums(r jsonb, what text) RETURNS bigint LANGUAGE sql AS
	$$ SELECT sum((c.value ->> what)::bigint)::bigint FROM jsonb_each(r -> 'counts') c $$;
-- what the paas tables the import writes hold
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
	SELECT concat_ws(' ', (SELECT count(*) FROM paas.users), (SELECT count(*) FROM paas.services),
		(SELECT count(*) FROM paas.nodes), (SELECT count(*) FROM paas.ledger_entries),
		(SELECT count(*) FROM paas.topups), (SELECT count(*) FROM paas.topup_orders),
		(SELECT count(*) FROM paas.subscriptions), (SELECT count(*) FROM paas.invoices),
		(SELECT coalesce(sum(last_number), 0) FROM paas.invoice_counters),
		(SELECT count(*) FROM paas.import_map), (SELECT count(*) FROM paas.import_runs),
		(SELECT count(*) FROM paas.import_history), (SELECT count(*) FROM paas.import_instances))
$$;
CREATE TEMP TABLE before AS SELECT pg_temp.state() AS s;

-- the platform account ------------------------------------------------------
SELECT ok(paas.platform_account('opening_balances') IS NOT NULL, 'the platform account opening_balances exists');
SELECT is((SELECT count(*)::int FROM paas.ledger_accounts
			WHERE parent_id = paas.platform_account('opening_balances')), 16, 'with its 16 slots');

-- the request and the source's shape -----------------------------------------
SELECT throws_ok($$SELECT api.import_original('{}')$$, 'PT400', 'Validation failed', 'source is required');
SELECT throws_ok($$SELECT api.import_original('{"source": "orig_tap", "onExistingEmail": "merge", "dryRun": "y"}')$$,
	'PT400', 'Validation failed', 'onExistingEmail and dryRun are checked');
SELECT throws_like($$SELECT api.import_original('{"source": "no_such_schema"}')$$, '%Validation failed%',
	'an unknown schema is PT400');
CREATE SCHEMA orig_broken;
CREATE TABLE orig_broken.users (id text, email text);
CREATE FUNCTION pg_temp.detail_of(q text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	EXECUTE q;
	RETURN NULL;
EXCEPTION WHEN SQLSTATE 'PT400' THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN d::jsonb;
END $$;
SELECT ok(pg_temp.detail_of($$SELECT api.import_original('{"source": "orig_broken"}')$$)
		  @> '[{"field": "users.password", "message": "column users.password is missing"},
			   {"field": "invoices", "message": "table invoices is missing in schema orig_broken"}]',
	'a source of another shape: every missing column and table is named');
SELECT is(pg_temp.state(), (SELECT s FROM before), 'a refused import writes nothing');

-- the dry run -----------------------------------------------------------------
CREATE TEMP TABLE r AS SELECT 'dry'::text AS k, api.import_original('{"source": "orig_tap", "dryRun": true}') AS v;
CREATE FUNCTION pg_temp.r(key text) RETURNS jsonb LANGUAGE sql AS $$ SELECT v FROM r WHERE k = key $$;
SELECT is(pg_temp.r('dry') ->> 'dryRun', 'true', 'the dry run says so');
SELECT is(pg_temp.r('dry') -> 'runId', 'null'::jsonb, 'and has no run');
SELECT is(pg_temp.state(), (SELECT s FROM before), 'the dry run wrote nothing (users, catalog, nodes, ledger, top-ups, '
	'subscriptions, invoices and their counters, the import''s own tables)');
SELECT is(pg_temp.r('dry') -> 'counts' -> 'users',
	'{"read": 6, "imported": 4, "linked": 0, "alreadyImported": 0, "skipped": 2}', 'dry run: users counted');
SELECT is(pg_temp.r('dry') #>> '{balances,totalPaas}', '175000', 'dry run: the balances it would post');

-- the import ------------------------------------------------------------------
INSERT INTO r SELECT 'run1', api.import_original('{"source": "orig_tap"}');
SELECT is(pg_temp.r('run1') -> 'counts', pg_temp.r('dry') -> 'counts',
	'the import counts what its dry run counted');
SELECT is(pg_temp.r('run1') -> 'problems', pg_temp.r('dry') -> 'problems', 'and reports the same problems');
SELECT is(pg_temp.r('run1') -> 'counts',
	'{"users": {"read": 6, "imported": 4, "linked": 0, "alreadyImported": 0, "skipped": 2},
	  "user_balances": {"read": 4, "imported": 3, "linked": 0, "alreadyImported": 0, "skipped": 1},
	  "service_catalog": {"read": 2, "imported": 2, "linked": 0, "alreadyImported": 0, "skipped": 0},
	  "worker_nodes": {"read": 4, "imported": 3, "linked": 0, "alreadyImported": 0, "skipped": 1},
	  "topup_transactions": {"read": 5, "imported": 4, "linked": 0, "alreadyImported": 0, "skipped": 1},
	  "subscriptions": {"read": 2, "imported": 2, "linked": 0, "alreadyImported": 0, "skipped": 0},
	  "invoices": {"read": 3, "imported": 2, "linked": 0, "alreadyImported": 0, "skipped": 1},
	  "transactions": {"read": 5, "imported": 5, "linked": 0, "alreadyImported": 0, "skipped": 0},
	  "balance_transactions": {"read": 5, "imported": 5, "linked": 0, "alreadyImported": 0, "skipped": 0},
	  "service_instances": {"read": 1, "imported": 1, "linked": 0, "alreadyImported": 0, "skipped": 0}}',
	'counts per table: read, imported, linked, already imported, skipped');
SELECT ok((pg_temp.r('run1') ->> 'runId')::bigint IS NOT NULL
		  AND (SELECT report FROM paas.import_runs WHERE id = (pg_temp.r('run1') ->> 'runId')::bigint) = pg_temp.r('run1'),
	'the run and its report are recorded');
SELECT is(pg_temp.r('run1') -> 'notImported',
	'{"usage_metrics": 0, "subscription_transactions": 0, "webhooks": 1, "webhook_deliveries": 0}',
	'the tables paas does not import are counted');

SELECT set_eq(
	$$SELECT p ->> 'table' AS t, p ->> 'id' AS id, p ->> 'action' AS a FROM jsonb_array_elements(pg_temp.r('run1') -> 'problems') p$$,
	$$VALUES ('users', 'cuseradmin000000000000000', 'skipped'),
			 ('users', 'cuserdupcase0000000000000', 'skipped'),
			 ('users', 'cusernohash00000000000000', 'changed'),
			 ('user_balances', 'cbalfraction0000000000000', 'skipped'),
			 ('user_balances', 'cbalmismatch0000000000000', 'balance_wins'),
			 ('worker_nodes', 'cnodebadmem00000000000000', 'skipped'),
			 ('topup_transactions', 'ctopupfraction00000000000', 'skipped'),
			 ('topup_transactions', 'ctopupstuck00000000000000', 'changed'),
			 ('topup_transactions', 'ctopuplive000000000000000', 'note'),
			 ('subscriptions', 'csubn8n000000000000000000', 'changed'),
			 ('invoices', 'cinvoldformat000000000000', 'skipped'),
			 ('transactions', 'ctxpending000000000000000', 'history_only')$$,
	'every awkward row is reported, with what was done');
CREATE FUNCTION pg_temp.why(sid text) RETURNS text LANGUAGE sql AS
	$$ SELECT p ->> 'reason' FROM jsonb_array_elements(pg_temp.r('run1') -> 'problems') p WHERE p ->> 'id' = sid $$;
SELECT matches(pg_temp.why('cnodebadmem00000000000000'), '^refused by POST /workers: .*totalMemory is not a valid quantity',
	'the invalid quantity is refused by the validation of POST /workers');
SELECT matches(pg_temp.why('cbalmismatch0000000000000'),
	'^balance 50000 disagrees with its 2 balance transactions \(they add up to 65000, the last one ends at 65000\): the balance wins',
	'the balance its transactions disagree with wins, and the difference is said');
SELECT matches(pg_temp.why('cbalfraction0000000000000'), 'balance 10000.5 is not a whole number of rupiah',
	'a fraction of a rupiah is never rounded');
SELECT matches(pg_temp.why('ctopupstuck00000000000000'), '^PENDING in the original although it expired at 2025-07-23T17:47:42.490Z: imported EXPIRED',
	'the stuck top-up');
SELECT matches(pg_temp.why('cuseradmin000000000000000'), '^e-mail admin@paas.com belongs to paas account ',
	'an e-mail paas has is skipped (the account is named)');
SELECT matches(pg_temp.why('cuserdupcase0000000000000'), 'differs only in letter case from customer@test.com',
	'e-mails that differ only in case');
SELECT matches(pg_temp.why('cinvoldformat000000000000'), 'INV-2024-002 does not have paas''s form', 'a number paas cannot keep');

-- users: the hash is kept and verifies with paas's login
SELECT is((SELECT password_hash FROM paas.users WHERE email = 'customer@test.com'),
	(SELECT password FROM orig_tap.users WHERE email = 'customer@test.com'), 'the bcryptjs hash is kept as it is');
SELECT ok(api.auth_login('{"email": "customer@test.com", "password": "Customer123!@#"}') ? 'refreshToken',
	'the customer logs in with the original password ($2a$12$ from bcryptjs)');
SELECT ok(api.auth_login('{"email": "MISMATCH@test.com", "password": "Mismatch123!@#"}') ? 'refreshToken',
	'a $2b$ hash (stored as $2a$) verifies too');
SELECT is(api.auth_login('{"email": "customer@test.com", "password": "Customer123!@"}') #>> '{$error,sqlstate}', 'PT401',
	'a wrong password does not');
SELECT is(api.auth_login('{"email": "nohash@test.com", "password": "plain-text-password"}') #>> '{$error,sqlstate}', 'PT401',
	'a password column that was no hash does not log in');
SELECT results_eq($$SELECT name, role, is_active, created_at FROM paas.users WHERE email = 'customer@test.com'$$,
	$$VALUES ('Test Customer', 'USER', true, '2024-01-10 08:00:02+00'::timestamptz)$$, 'name, role, state and dates kept');
SELECT is((SELECT is_active FROM paas.users WHERE email = 'fraction@test.com'), false, 'an inactive user stays inactive');
SELECT is((SELECT role FROM paas.users WHERE id = pg_temp.uid('admin@paas.com')), 'ADMINISTRATOR',
	'the existing account is left as it was');

-- balances
SELECT is(paas.wallet_balance(pg_temp.uid('customer@test.com')), 125000::bigint, 'the customer''s wallet: 125000 IDR');
SELECT is(paas.wallet_balance(pg_temp.uid('mismatch@test.com')), 50000::bigint, 'the balance wins over its transactions');
SELECT is(paas.wallet_balance(pg_temp.uid('fraction@test.com')), 0::bigint, 'a fractional balance is not posted');
SELECT is(paas.account_balance(paas.platform_account('opening_balances')), -175000::bigint,
	'the opening balances come from the opening_balances account');
SELECT results_eq($$SELECT e.kind, e.ref ->> 'userBalanceId' AS id, p.amount FROM paas.ledger_entries e
					 JOIN paas.ledger_postings p ON p.entry_id = e.id
					 JOIN paas.ledger_accounts a ON a.id = p.account_id AND a.kind = 'wallet'
					WHERE e.kind = 'opening_balance' ORDER BY 2$$,
	$$VALUES ('opening_balance', 'cbalcustomer0000000000000', 125000::bigint),
			 ('opening_balance', 'cbalmismatch0000000000000', 50000::bigint)$$,
	'one opening_balance entry per funded user (a zero balance posts none)');
SELECT is((SELECT count(*)::int FROM reporting.ledger_check), 0, 'the ledger''s invariants hold');
SELECT is((pg_temp.r('run1') -> 'balances') - 'differences',
	'{"users": 4, "reconciled": 3, "totalOriginal": 185000.5, "totalPaas": 175000, "totalOpening": 175000}',
	'balances: users, reconciled, totals');
SELECT set_eq($$SELECT d ->> 'userBalanceId' AS id, d ->> 'kind' AS k FROM jsonb_array_elements(pg_temp.r('run1') #> '{balances,differences}') d$$,
	$$VALUES ('cbalfraction0000000000000', 'not_posted'), ('cbalmismatch0000000000000', 'history')$$,
	'the differences: the fraction not posted, the history that disagrees');

-- catalog and nodes, through their own rules
SELECT results_eq($$SELECT name, display_name, monthly_price, cpu_request_m, mem_limit_mib, container_port,
						   environment_vars ->> 'GENERIC_TIMEZONE', created_at
					  FROM paas.services WHERE id = pg_temp.target('service_catalog', 'csvcn8n000000000000000000')$$,
	$$VALUES ('n8n', 'N8N Workflow Automation', 0::bigint, 250, 1024, 5678, 'Asia/Jakarta',
			  '2024-01-10 08:00:00+00'::timestamptz)$$, 'a service through api.services_create, its date kept');
SELECT results_eq($$SELECT name, total_memory, memory_capacity::bigint, total_storage, storage_capacity::bigint,
						   cpu_capacity_m::bigint, max_pods::integer, status::text, cordoned,
						   labels ->> 'topology.kubernetes.io/zone'
					  FROM paas.nodes WHERE name = 'worker-ryzen-3900x'$$,
	$$VALUES ('worker-ryzen-3900x', '64Gi', 68719476736::bigint, '1Ti', 1099511627776::bigint, 24000::bigint, 110,
			  'ACTIVE', false, 'zone-a')$$, 'a node with its quantities parsed ("64Gi", "1Ti")');
SELECT results_eq($$SELECT allocated_cpu, cpu_allocated_m, allocated_memory, memory_allocated, allocated_storage,
						   storage_allocated, current_pods::integer
					  FROM paas.nodes WHERE name = 'worker-intel-i7'$$,
	$$VALUES ('1.5', 1500::bigint, '2048Mi', 2147483648::bigint, '20Gi', 21474836480::bigint, 3)$$,
	'the allocation its heartbeats wrote: cores, MB and GB');
SELECT is((SELECT count(*)::int FROM paas.nodes WHERE name LIKE 'worker-%'), 3, 'three nodes');
SELECT is((SELECT count(*)::int FROM paas.nodes WHERE name = 'worker-bad-memory'), 0, 'the invalid one is not half-made');

-- top-ups keep their order ids; paid ones are credited already
SELECT results_eq($$SELECT t.order_id, t.status, t.amount, o.status, o.credited, t.user_id = pg_temp.uid('customer@test.com')
					  FROM paas.topups t JOIN paas.topup_orders o ON o.topup_id = t.id
					 WHERE t.id IN (SELECT target_id::uuid FROM paas.import_map WHERE source_table = 'topup_transactions')
					 ORDER BY t.created_at$$,
	$$VALUES ('TOPUP-2024-001', 'PAID', 100000::bigint, 'PAID', 100000::bigint, true),
			 ('TOPUP-2024-002', 'PAID', 50000::bigint, 'PAID', 50000::bigint, true),
			 ('TOPUP-CUSERCUS-1753206462490-U5URT4', 'EXPIRED', 75000::bigint, 'FAILED', 0::bigint, true),
			 ('TOPUP-CUSERMIS-1753300000000-LIVE01', 'PENDING', 20000::bigint, 'PENDING', 0::bigint, false)$$,
	'top-ups with their order ids and statuses');
SELECT results_eq($$SELECT paid_at, payment_type, created_at FROM paas.topups WHERE order_id = 'TOPUP-2024-001'$$,
	$$VALUES ('2024-01-15 10:30:00+00'::timestamptz, 'bank_transfer', '2024-01-15 10:25:00+00'::timestamptz)$$,
	'their times and payment type');
SELECT ok((SELECT snap_requested_at IS NOT NULL AND snap_token = 'snap-token-live' FROM paas.topup_orders
			WHERE order_id = 'TOPUP-CUSERMIS-1753300000000-LIVE01'), 'the live pending order is one the reconciler asks Midtrans about');
SELECT is(paas.midtrans_apply(jsonb_build_object('order_id', 'TOPUP-2024-001', 'transaction_status', 'settlement',
	'status_code', '200', 'gross_amount', '100000.00', 'payment_type', 'bank_transfer', 'currency', 'IDR'), 'webhook') ->> 'outcome',
	'duplicate', 'a repeated settlement of an imported paid order is a duplicate');
SELECT is(paas.wallet_balance(pg_temp.uid('customer@test.com')), 125000::bigint, '... and credits nothing');

-- subscriptions keep their periods
SELECT results_eq($$SELECT status, price, period_no, current_period_start, current_period_end, ended_at, created_at
					  FROM paas.subscriptions WHERE id = pg_temp.target('subscriptions', 'csubn8n000000000000000000')$$,
	$$VALUES ('EXPIRED', 0::bigint, 1, '2024-01-22 09:00:00+00'::timestamptz, '2024-02-22 09:00:00+00'::timestamptz,
			  '2024-02-22 09:00:00+00'::timestamptz, '2024-01-22 09:00:00+00'::timestamptz)$$,
	'an ACTIVE subscription whose period ended is EXPIRED, its period kept');
SELECT results_eq($$SELECT s.status, s.price, s.period_no, s.anchor_at = o."startDate" AT TIME ZONE 'UTC',
						   s.current_period_end = o."expiresAt" AT TIME ZONE 'UTC',
						   paas.subscription_bound(s.anchor_at, 1) = s.current_period_end
					  FROM paas.subscriptions s, orig_tap.subscriptions o
					 WHERE s.id = pg_temp.target('subscriptions', 'csubwordpress000000000000') AND o.id = 'csubwordpress000000000000'$$,
	$$VALUES ('ACTIVE', 35000::bigint, 1, true, true, true)$$,
	'a running one stays ACTIVE, anchored at its start, renewing at its end at the original''s price');
SELECT is((SELECT event || ':' || to_status FROM paas.subscription_events
			WHERE subscription_id = pg_temp.target('subscriptions', 'csubwordpress000000000000')), 'import:ACTIVE',
	'the import is the subscription''s first event');

-- invoices keep their numbers; paas's own never meet them
SELECT results_eq($$SELECT number, kind, amount, status, topup_id = pg_temp.target('topup_transactions', 'ctopup1000000000000000000'),
						   download_count, paid_at
					  FROM paas.invoices WHERE number = 'INV-202401-100001'$$,
	$$VALUES ('INV-202401-100001', 'TOPUP', 100000::bigint, 'PAID', true, 2, '2024-01-15 10:30:00+00'::timestamptz)$$,
	'an invoice with its number, linked to its top-up');
SELECT is((SELECT invoice_id FROM paas.topup_orders WHERE order_id = 'TOPUP-2024-001'),
	pg_temp.target('invoices', 'cinvtopup1000000000000000'), 'the order knows its invoice (a refund voids it)');
SELECT is(paas.issue_invoice(pg_temp.uid('customer@test.com'), 'TOPUP', 10000, '{}') ->> 'invoiceNumber',
	'INV-' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMM') || '-462491',
	'the next paas invoice of the month comes after the imported INV-...-462490');

-- history and instances
SELECT is((SELECT count(*)::int FROM paas.import_history WHERE user_id = pg_temp.uid('customer@test.com')), 8,
	'the customer''s unified and balance transactions are kept');
SELECT results_eq($$SELECT h.type, h.status, h.amount, h.created_at, h.invoice_number,
						   h.topup_id = pg_temp.target('topup_transactions', 'ctopup1000000000000000000')
					  FROM paas.import_history h WHERE h.source_id = 'ctxtopup10000000000000000'$$,
	$$VALUES ('TOPUP', 'SUCCESS', 100000.00, '2024-01-15 10:30:00+00'::timestamptz, 'INV-202401-100001', true)$$,
	'a unified transaction as it was, linked to its top-up and invoice');
SELECT is(api.billing_original_history('{"limit": 3}', pg_temp.ctx('customer@test.com')) #>> '{data,pagination,total}', '8',
	'its owner reads it');
SELECT is((api.billing_original_history('{"source": "balance_transactions"}', pg_temp.ctx('customer@test.com'))
		  #> '{data,transactions,0}') - 'topUpId' - 'subscriptionId',
	'{"id": "cbtdebit10000000000000000", "source": "balance_transactions", "date": "2024-01-22T09:00:00.000Z",
	  "createdAt": "2024-01-22T09:00:00.000Z", "type": "DEBIT", "status": null,
	  "description": "N8N Workflow Automation subscription", "amount": 25000, "currency": "IDR",
	  "balanceBefore": 150000, "balanceAfter": 125000, "reference": "csubn8n000000000000000000",
	  "referenceType": "SUBSCRIPTION", "paymentGateway": null, "paymentMethod": null, "invoice": null}',
	'newest first, in the feed''s shape');
SELECT is(api.billing_original_history('{}', pg_temp.ctx('mismatch@test.com')) #>> '{data,pagination,total}', '2',
	'each user sees their own');
SELECT throws_ok($$SELECT api.billing_original_history('{"source": "x"}', pg_temp.ctx('customer@test.com'))$$,
	'PT400', 'Validation failed', 'the history validates its filter');
SELECT throws_ok($$SELECT api.billing_original_history('{}', '{}')$$, 'PT401', NULL, 'and needs a caller');
SELECT results_eq($$SELECT pod_name, namespace, status, subdomain, external_url,
						   subscription_id = pg_temp.target('subscriptions', 'csubn8n000000000000000000')
					  FROM paas.import_instances$$,
	$$VALUES ('n8n-cusercus-7f9c', 'user-cusercustomer', 'RUNNING', 'customer-n8n-001',
			  'https://customer-n8n-001.minispod.local', true)$$, 'the service instance is kept with its subscription');

-- a second run imports nothing twice ------------------------------------------
CREATE TEMP TABLE after1 AS SELECT pg_temp.state() AS s;
INSERT INTO r SELECT 'run2', api.import_original('{"source": "orig_tap"}');
SELECT is(pg_temp.sums(pg_temp.r('run2'), 'imported'), 0::bigint, 'the second run imports nothing');
SELECT is(pg_temp.sums(pg_temp.r('run2'), 'alreadyImported'), 31::bigint, 'everything it took is already imported');
SELECT is(pg_temp.sums(pg_temp.r('run2'), 'skipped'), pg_temp.sums(pg_temp.r('run1'), 'skipped'),
	'what was skipped is tried again, and skipped again');
SELECT is(regexp_replace(pg_temp.state(), ' [0-9]+ [0-9]+ [0-9]+ [0-9]+$', ''),
		  regexp_replace((SELECT s FROM after1), ' [0-9]+ [0-9]+ [0-9]+ [0-9]+$', ''),
	'no row of paas was added (but the run''s own record)');
SELECT is((SELECT count(*)::int FROM paas.import_map WHERE run_id = (pg_temp.r('run2') ->> 'runId')::bigint), 0,
	'the second run mapped nothing');
SELECT is((pg_temp.r('run2') -> 'balances') - 'differences', (pg_temp.r('run1') -> 'balances') - 'differences',
	'the balances reconcile as before');

-- the original moves on: a new user, a changed balance --------------------------
INSERT INTO orig_tap.users (id, email, password, name, role, "isActive", "createdAt", "updatedAt") VALUES
	('cuserlate0000000000000000', 'late@test.com', (SELECT password FROM orig_tap.users WHERE id = 'cusercustomer000000000000'),
	 'Late Comer', 'USER', true, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC');
UPDATE orig_tap.user_balances SET balance = 130000 WHERE id = 'cbalcustomer0000000000000';
INSERT INTO r SELECT 'run3', api.import_original('{"source": "orig_tap"}');
SELECT is(pg_temp.r('run3') -> 'counts' -> 'users',
	'{"read": 7, "imported": 1, "linked": 0, "alreadyImported": 4, "skipped": 2}', 'a later run takes the new user only');
SELECT is(paas.wallet_balance(pg_temp.uid('customer@test.com')), 125000::bigint, 'an imported balance is not posted again');
SELECT is((SELECT d ->> 'reason' FROM jsonb_array_elements(pg_temp.r('run3') #> '{balances,differences}') d
			WHERE d ->> 'userBalanceId' = 'cbalcustomer0000000000000'),
	'the original''s balance is 130000, the opening balance imported was 125000 (the original moved after the import)',
	'... and the difference is reported');

-- linking the account paas already had -----------------------------------------
INSERT INTO r SELECT 'link', api.import_original('{"source": "orig_tap", "onExistingEmail": "link"}');
SELECT is(pg_temp.r('link') -> 'counts' -> 'users',
	'{"read": 7, "imported": 0, "linked": 1, "alreadyImported": 5, "skipped": 1}', 'onExistingEmail link: the account is linked');
SELECT results_eq($$SELECT action, target_id::uuid FROM paas.import_map WHERE source_table = 'users' AND source_id = 'cuseradmin000000000000000'$$,
	$$SELECT 'linked', pg_temp.uid('admin@paas.com')$$, 'the original user maps onto the existing account');
SELECT is((SELECT count(*)::int FROM paas.users WHERE lower(email) = 'admin@paas.com'), 1, 'no second account is made');

-- late payment of the stuck top-up is still credited ----------------------------
SELECT is(paas.midtrans_apply(jsonb_build_object('order_id', 'TOPUP-CUSERCUS-1753206462490-U5URT4',
	'transaction_status', 'settlement', 'status_code', '200', 'gross_amount', '75000.00', 'payment_type', 'gopay',
	'currency', 'IDR'), 'webhook') ->> 'outcome', 'credited', 'a payment of the stuck order that still arrives is credited');
SELECT is(paas.wallet_balance(pg_temp.uid('customer@test.com')), 200000::bigint, '... once, to its owner');

-- reading with the owner's rights: only servers a superuser made -----------------
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE ROLE pgtap_import_nobody NOLOGIN;
GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO pgtap_import_nobody;
CREATE SERVER pgtap_import_elsewhere FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'postgres');
ALTER SERVER pgtap_import_elsewhere OWNER TO pgtap_import_nobody;
CREATE SCHEMA orig_foreign;
DO $$
DECLARE t text;
BEGIN
	FOREACH t IN ARRAY paas.import_tables() LOOP
		IF t <> 'users' THEN
			EXECUTE format('CREATE TABLE orig_foreign.%I (LIKE orig_tap.%I)', t, t);
		END IF;
	END LOOP;
END $$;
CREATE FOREIGN TABLE orig_foreign.users (id text, email text, password text, name text, role text, "isActive" boolean,
	"createdAt" timestamp(3), "updatedAt" timestamp(3)) SERVER pgtap_import_elsewhere;
SELECT throws_ok($$SELECT api.import_original('{"source": "orig_foreign"}')$$, '42501', NULL,
	'a foreign table of a server a non-superuser owns is refused');

-- helpers ----------------------------------------------------------------------
SELECT results_eq($$SELECT * FROM paas.import_conninfo('host=db.example.com  port = 5432 dbname=''mini spod'' password=p\ w\''x user=app')$$,
	$$VALUES ('host', 'db.example.com'), ('port', '5432'), ('dbname', 'mini spod'), ('password', 'p w''x'), ('user', 'app')$$,
	'a key=value connection string, quoted and escaped values');
SELECT results_eq($$SELECT * FROM paas.import_conninfo('postgresql://app:s%40cret@[::1]:6543/mini%20spod?sslmode=require&application_name=x')$$,
	$$VALUES ('user', 'app'), ('password', 's@cret'), ('host', '::1'), ('port', '6543'), ('dbname', 'mini spod'),
			 ('sslmode', 'require'), ('application_name', 'x')$$,
	'a connection URI, percent-decoded');
SELECT throws_ok($$SELECT * FROM paas.import_conninfo('host=a dbname')$$, '22023', NULL, 'a keyword without "=" is refused');
SELECT throws_ok($$SELECT * FROM paas.import_conninfo('dbname=''open')$$, '22023', NULL, 'an unterminated quote is refused');
SELECT throws_ok($$SELECT * FROM paas.import_conninfo('postgresql://a,b/db')$$, '22023', NULL, 'so is a URI of several hosts');
SELECT throws_ok($$SELECT paas.import_original_attach('dbname=x', 'paas')$$, '22023', NULL,
	'paas''s own schemas are never an attachment');
CREATE SERVER pgtap_import_notours FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'postgres');
SELECT throws_ok($$SELECT paas.import_original_detach('pgtap_import_notours')$$, '55006', NULL,
	'a server the import did not make is never dropped');
SELECT is(paas.import_original_detach('no_such_attachment'), false, 'detaching nothing is no error');

SELECT results_eq($$SELECT * FROM paas.import_period('2024-01-22 09:00+00', '2024-02-22 09:00+00')$$,
	$$VALUES (1, 1, '2024-01-22 09:00+00'::timestamptz, '2024-01-22 09:00+00'::timestamptz)$$, 'a period of one month');
SELECT results_eq($$SELECT * FROM paas.import_period('2024-01-31 09:00+00', '2024-04-30 09:00+00')$$,
	$$VALUES (3, 1, '2024-01-31 09:00+00'::timestamptz, '2024-03-31 09:00+00'::timestamptz)$$,
	'three renewals: period 3 of the original anchor (day 31 kept where the month has it)');
SELECT results_eq($$SELECT * FROM paas.import_period('2024-01-31 09:00+00', '2024-03-02 09:00+00')$$,
	$$VALUES (1, 1, '2024-02-02 09:00+00'::timestamptz, '2024-02-02 09:00+00'::timestamptz)$$,
	'not a whole number of months (JavaScript''s Jan 31 + 1 month): anchored a month before its end');
SELECT is(paas.import_idr(10000.50), NULL, 'a fraction of a rupiah is no IDR amount');
SELECT is(paas.import_idr(125000.00), 125000::bigint, 'a whole one is');

-- grants -----------------------------------------------------------------------
SELECT ok(NOT has_function_privilege('paas_api', 'api.import_original(jsonb, jsonb)', 'EXECUTE'),
	'the gateway cannot import');
SELECT ok(has_function_privilege('paas_owner', 'api.import_original(jsonb, jsonb)', 'EXECUTE'), 'DBAs can');
SELECT ok(has_function_privilege('paas_api', 'api.billing_original_history(jsonb, jsonb)', 'EXECUTE'),
	'the gateway can read a user''s imported history');
SELECT ok(NOT has_function_privilege('paas_api', 'paas.import_original_attach(text, text, text)', 'EXECUTE')
		  AND has_function_privilege('paas_owner', 'paas.import_original_attach(text, text, text)', 'EXECUTE'),
	'attaching is for DBAs');
SELECT ok(NOT has_table_privilege('paas_api', 'paas.import_history', 'SELECT')
		  AND has_table_privilege('paas_owner', 'paas.import_history', 'SELECT'), 'the import''s tables are for DBAs');
SELECT is((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'paas'::regnamespace AND proname LIKE 'import%'
			AND has_function_privilege('public', oid, 'EXECUTE')), 0, 'no import function is executable by PUBLIC');
SELECT is((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'paas'::regnamespace AND proname LIKE 'import%'
			AND obj_description(oid, 'pg_proc') IS NULL), 0, 'every import function is commented');

SELECT * FROM finish();
ROLLBACK;
