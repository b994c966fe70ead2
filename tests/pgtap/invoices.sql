-- invoices: the shared service (sql/parts/50_invoices.sql): validation,
-- gap-free consecutive numbers, immutability, credit notes, bulk issue in
-- one block per call through the one numbering path, and the owner-only
-- /billing/invoices routes.
BEGIN;
SELECT plan(33);

\ir include/billing.sql

-- an invoice of the other person, which the owner must never see
INSERT INTO pg_temp.v SELECT 'o1', paas.issue_invoice('00000000-0000-4000-8000-00000000b222', 'SUBSCRIPTION', 1000,
	'{}', NULL);

SELECT throws_ok($$SELECT paas.issue_invoice('00000000-0000-4000-8000-00000000b111', 'GIFT', 0, '{}', NULL)$$,
	'PT400', 'Validation failed', 'issue_invoice validates kind and amount');
SELECT throws_ok($$SELECT paas.issue_invoice('00000000-0000-4000-8000-00000000b111', 'SUBSCRIPTION', 100,
		'{}', '[{"description": "x", "amount": 99}]')$$, 'PT400', 'Validation failed', 'lines must sum to the amount');
INSERT INTO pg_temp.v SELECT 'n1', paas.issue_invoice('00000000-0000-4000-8000-00000000b111', 'SUBSCRIPTION', 25000,
	'{"subscriptionId": "s-1"}', '[{"description": "n8n monthly", "quantity": 1, "unitPrice": 25000, "amount": 25000}]');
INSERT INTO pg_temp.v SELECT 'n2', paas.issue_invoice('00000000-0000-4000-8000-00000000b111', 'SUBSCRIPTION', 25000, '{}', NULL);
SELECT is(split_part((SELECT j ->> 'invoiceNumber' FROM pg_temp.v WHERE k = 'n2'), '-', 3)::int,
	split_part((SELECT j ->> 'invoiceNumber' FROM pg_temp.v WHERE k = 'n1'), '-', 3)::int + 1, 'numbers are consecutive');
SELECT is((SELECT j ->> 'description' FROM pg_temp.v WHERE k = 'n1'), 'n8n monthly', 'the first line describes it');
SELECT throws_ok(format($$UPDATE paas.invoices SET amount = 1 WHERE id = '%s'$$, (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'n1')),
	'PT409', 'an issued invoice cannot be changed', 'issued invoices are immutable');
SELECT throws_ok(format($$DELETE FROM paas.invoices WHERE id = '%s'$$, (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'n1')),
	'PT409', 'invoices cannot be deleted', 'and cannot be deleted');
SELECT throws_ok(format($$UPDATE paas.invoices SET status = 'VOID' WHERE id = '%s'$$, (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'n1')),
	'PT409', NULL, 'only a credit note voids');
SELECT is(paas.void_invoice((SELECT (j ->> 'id')::uuid FROM pg_temp.v WHERE k = 'n1'), 'cancelled') ->> 'amount', '-25000',
	'the credit note carries the negative amount');
SELECT throws_ok(format($$SELECT paas.void_invoice('%s', 'again')$$, (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'n1')),
	'PT409', NULL, 'an invoice is voided once');
SELECT throws_ok($$SELECT paas.void_invoice(gen_random_uuid(), 'x')$$, 'PT404', 'Invoice not found', 'unknown invoice');

-- bulk issue: one contiguous block per call, one numbering path for all
\ir include/fields.sql
CREATE TABLE pg_temp.bulk (call int, pos bigint, number text, description text, amount bigint, ref jsonb);
INSERT INTO pg_temp.bulk
SELECT 1, row_number() OVER (), i.number, i.description, i.amount, i.ref
  FROM paas.issue_invoices('[
	{"userId": "00000000-0000-4000-8000-00000000b111", "kind": "SUBSCRIPTION", "amount": 1000, "ref": {"k": "a"}},
	{"userId": "00000000-0000-4000-8000-00000000b222", "kind": "TOPUP", "amount": 2000, "ref": {"k": "b"}},
	{"userId": "00000000-0000-4000-8000-00000000b111", "kind": "SUBSCRIPTION", "amount": 3000, "ref": {"k": "c"},
	 "lines": [{"description": "first part", "amount": 1000}, {"description": "second part", "amount": 2000}]}]') i;
SELECT is(paas.issue_invoice('00000000-0000-4000-8000-00000000b111', 'TOPUP', 500, '{"k": "single"}') ->> 'invoiceNumber',
	(SELECT format('INV-%s-%s', to_char(now() AT TIME ZONE 'UTC', 'YYYYMM'),
				   lpad((split_part(max(number), '-', 3)::int + 1)::text, 6, '0')) FROM pg_temp.bulk),
	'a single invoice takes the next number after a bulk call');
INSERT INTO pg_temp.bulk
SELECT 2, row_number() OVER (), i.number, i.description, i.amount, i.ref
  FROM paas.issue_invoices('[
	{"userId": "00000000-0000-4000-8000-00000000b222", "kind": "TOPUP", "amount": 4000, "ref": {"k": "d"}},
	{"userId": "00000000-0000-4000-8000-00000000b111", "kind": "SUBSCRIPTION", "amount": 5000}]') i;
SELECT is(ARRAY(SELECT ref ->> 'k' FROM pg_temp.bulk ORDER BY number), ARRAY['a', 'b', 'c', 'd', NULL],
	'bulk invoices are numbered in item order');
SELECT is((SELECT array_agg(split_part(number, '-', 3)::int - (SELECT min(split_part(number, '-', 3)::int) FROM pg_temp.bulk)
						   ORDER BY number) FROM pg_temp.bulk),
	ARRAY[0, 1, 2, 4, 5], 'two bulk calls in one period: contiguous blocks, the single issue between them, no gap');
SELECT ok((SELECT bool_and(number LIKE format('INV-%s-%%', to_char(now() AT TIME ZONE 'UTC', 'YYYYMM'))) FROM pg_temp.bulk),
	'numbered in the current UTC month');
SELECT is((SELECT last_number FROM paas.invoice_counters
			WHERE series = 'INV' AND period = to_char(now() AT TIME ZONE 'UTC', 'YYYYMM')),
	(SELECT max(split_part(number, '-', 3)::int) FROM pg_temp.bulk), 'the counter ends at the last number issued');
SELECT is((SELECT description FROM pg_temp.bulk WHERE ref ->> 'k' = 'c'), 'first part', 'the first line describes a bulk invoice');
SELECT is((SELECT ref FROM pg_temp.bulk WHERE call = 2 AND pos = 2), '{}'::jsonb, 'a missing ref is {}');
SELECT is(ARRAY[paas.invoice_number('INV-202611-', 42), paas.invoice_number('INV-202611-', 1234567)],
	ARRAY['INV-202611-000042', 'INV-202611-1234567'], 'numbers are padded to six digits and never cut');
SELECT is((SELECT count(*) FROM paas.issue_invoices('[]')), 0::bigint, 'empty input issues nothing');
SELECT is((SELECT last_number FROM paas.invoice_counters
			WHERE series = 'INV' AND period = to_char(now() AT TIME ZONE 'UTC', 'YYYYMM')),
	(SELECT max(split_part(number, '-', 3)::int) FROM pg_temp.bulk), 'and leaves the counter alone');
SELECT throws_ok($$SELECT paas.issue_invoices('{"userId": "00000000-0000-4000-8000-00000000b111"}')$$,
	'PT400', 'Validation failed', 'items must be an array');
SELECT is(pg_temp.fields($$SELECT paas.issue_invoices('[
	{"userId": "00000000-0000-4000-8000-00000000b111", "kind": "TOPUP", "amount": 100},
	{"userId": "00000000-0000-4000-8000-00000000b111", "kind": "GIFT", "amount": -5},
	{"userId": "00000000-0000-4000-8000-00000000b111", "kind": "TOPUP", "amount": 100,
	 "lines": [{"description": "x", "amount": 99}]},
	"not an item"]')$$),
	ARRAY['items[1].amount', 'items[1].kind', 'items[2].lines', 'items[3]'], 'a bad item is PT400 naming the item and field');
SELECT is(pg_temp.fields($$SELECT paas.issue_invoices('[
	{"userId": "00000000-0000-4000-8000-00000000b111", "kind": "TOPUP", "amount": 100},
	{"userId": "00000000-0000-4000-8000-00000000b999", "kind": "TOPUP", "amount": 100}]')$$),
	ARRAY['items[1].userId'], 'an unknown user is PT400 naming the item');
SELECT is((SELECT last_number FROM paas.invoice_counters
			WHERE series = 'INV' AND period = to_char(now() AT TIME ZONE 'UTC', 'YYYYMM')),
	(SELECT max(split_part(number, '-', 3)::int) FROM pg_temp.bulk), 'a refused call issues nothing and leaves no gap');
SELECT is(paas.issue_invoice('00000000-0000-4000-8000-00000000b111', 'TOPUP', 100, '{}') ->> 'invoiceNumber',
	(SELECT format('INV-%s-%s', to_char(now() AT TIME ZONE 'UTC', 'YYYYMM'),
				   lpad((max(split_part(number, '-', 3)::int) + 1)::text, 6, '0')) FROM pg_temp.bulk),
	'the next invoice follows the last one issued');

SELECT throws_ok($$SELECT api.billing_invoices('{"type": "GIFT", "startDate": "nope"}', pg_temp.ctx('owner'))$$,
	'PT400', 'Validation failed', 'invoice filters are validated');
SELECT ok((SELECT (api.billing_invoices('{"type": "SUBSCRIPTION"}', pg_temp.ctx('owner')) #>> '{pagination,total}')::int >= 2),
	'the owner lists their invoices');
SELECT is((api.billing_invoices('{}', pg_temp.ctx('other')) -> 'data' -> 'invoices') @>
		jsonb_build_array(jsonb_build_object('id', (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'n1'))), false,
	'another user does not see them');
SELECT is((api.billing_invoices('{}', pg_temp.ctx('other')) -> 'data' -> 'invoices') @>
		jsonb_build_array(jsonb_build_object('id', (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'o1'))), true,
	'who lists sees their own');
SELECT throws_ok(format($$SELECT api.billing_invoice_get('{"id": "%s"}', pg_temp.ctx('other'))$$,
		(SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'n1')), 'PT404', 'Invoice not found', 'another user''s invoice is 404');
SELECT is(api.billing_invoice_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'n1')),
		pg_temp.ctx('owner')) #>> '{voidedBy,invoiceNumber}' LIKE 'CN-%', true, 'the invoice names its credit note');
SELECT is((api.billing_invoice_pdf(jsonb_build_object('id', (SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'n2')),
		pg_temp.ctx('owner')) ->> 'downloadCount')::int, 1, 'a PDF download is counted');
SELECT throws_ok(format($$SELECT api.billing_invoice_pdf('{"id": "%s"}', pg_temp.ctx('other'))$$,
		(SELECT j ->> 'id' FROM pg_temp.v WHERE k = 'n2')), 'PT404', 'Invoice not found', 'PDF of another user''s invoice is 404');


SELECT finish();
ROLLBACK;
