-- outcomes: the record of a money-moving call under its idempotency key
-- (sql/parts/05_outcomes.sql) -- claim / save / replay / refusal of another
-- request, keys per caller, the commit-time completeness check, two
-- sessions with one key, a replay that writes nothing, pruning -- and the
-- money functions that use it (sale, renewal, adjustment, top-up, pay).
BEGIN;
SELECT plan(53);

CREATE FUNCTION pg_temp.ctx(who text, k text) RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_strip_nulls(jsonb_build_object('userId', who, 'idempotencyKey', k)) $$;
CREATE FUNCTION pg_temp.rec(who text, k text) RETURNS paas.call_outcomes LANGUAGE sql AS
	$$ SELECT * FROM paas.call_outcomes WHERE caller = who AND key = k $$;

------------------------------------------------------------------------------
-- the table, the job, the rights
------------------------------------------------------------------------------
SELECT has_table('paas', 'call_outcomes', 'call outcomes are a table');
SELECT col_is_pk('paas', 'call_outcomes', ARRAY['caller', 'key'], 'a key is unique per caller');
SELECT is((SELECT fn::text FROM paas.job WHERE name = 'prune_call_outcomes'), 'paas.job_prune_call_outcomes',
	'the prune job is registered');
SELECT ok(NOT has_table_privilege('paas_api', 'paas.call_outcomes', 'SELECT'), 'paas_api cannot read the records');
SELECT ok(NOT has_function_privilege('paas_api', 'paas.outcome_claim(text, jsonb, jsonb)', 'EXECUTE')
	AND NOT has_function_privilege('public', 'paas.outcome_save(jsonb, jsonb)', 'EXECUTE'),
	'the mechanism is not callable by the gateway role or PUBLIC');
SELECT is(paas.outcome_retention(), interval '24 hours', 'records are kept 24 hours');

------------------------------------------------------------------------------
-- claim and save
------------------------------------------------------------------------------
SELECT is(paas.outcome_claim('t.fn', '{"a": 1}', '{"userId": "u-1"}'), NULL, 'no key: execute');
SELECT is((SELECT count(*) FROM paas.call_outcomes WHERE caller = 'u-1'), 0::bigint, 'no key: nothing recorded');
SELECT is(paas.outcome_save('{"userId": "u-1"}', '{"r": 0}'), '{"r": 0}'::jsonb, 'no key: save passes the answer');

SELECT is(paas.outcome_claim('t.fn', '{"a": 1}', pg_temp.ctx('u-1', 'k1')), NULL, 'a new key: execute');
SELECT is((pg_temp.rec('u-1', 'k1')).response, NULL, 'the claim holds the key, no answer yet');
SELECT is(paas.outcome_claim('t.fn', '{"a": 1}', pg_temp.ctx('u-1', 'k1')), NULL,
	'the same transaction claiming again (a function calling itself) executes');
SELECT is(paas.outcome_save(pg_temp.ctx('u-1', 'k1'), '{"r": 1}'), '{"r": 1}'::jsonb, 'save returns the answer');
SELECT is((pg_temp.rec('u-1', 'k1')).response, '{"r": 1}'::jsonb, 'the answer is recorded');
SELECT is(paas.outcome_claim('t.fn', '{"a": 1}', pg_temp.ctx('u-1', 'k1')), '{"r": 1}'::jsonb,
	'the same call again: the recorded answer');
SELECT is(paas.outcome_claim('t.fn', '{ "a" : 1 }'::jsonb, pg_temp.ctx('u-1', 'k1')), '{"r": 1}'::jsonb,
	'the fingerprint is of the jsonb value, not its spelling');
SELECT throws_ok($$SELECT paas.outcome_claim('t.fn', '{"a": 2}', pg_temp.ctx('u-1', 'k1'))$$,
	'PT409', 'Idempotency-Key was already used for a different request', 'the key with another request: PT409');
SELECT throws_ok($$SELECT paas.outcome_claim('t.other', '{"a": 1}', pg_temp.ctx('u-1', 'k1'))$$,
	'PT409', NULL, 'the key with another function: PT409');
SELECT is(paas.outcome_claim('t.fn', '{"a": 2}', pg_temp.ctx('u-2', 'k1')), NULL,
	'another caller''s key of the same name is theirs: execute');
SELECT is(paas.outcome_save(pg_temp.ctx('u-2', 'k1'), '{"r": 2}'), '{"r": 2}'::jsonb, 'and record');
SELECT is(paas.outcome_claim('t.fn', '{"a": 1}', pg_temp.ctx('u-1', 'k1')), '{"r": 1}'::jsonb,
	'each caller gets their own answer');
SELECT is(paas.outcome_claim('t.fn', '{}', '{"idempotencyKey": "k1"}')::text, NULL,
	'a DBA''s key is the session role''s');
SELECT is((pg_temp.rec('session:' || session_user, 'k1')).fn, 't.fn', 'recorded under session:<role>');
SELECT paas.outcome_save('{"idempotencyKey": "k1"}', '{}');
SELECT throws_ok($$SELECT paas.outcome_claim('t.fn', '{}', pg_temp.ctx('u-1', repeat('k', 256)))$$,
	'PT400', 'Validation failed', 'a key over 255 characters: PT400');
SELECT throws_ok($$SELECT paas.outcome_claim('t.fn', '{}', pg_temp.ctx('u-1', ''))$$,
	'PT400', 'Validation failed', 'an empty key: PT400');

-- A claim without its answer cannot commit.
SELECT paas.outcome_claim('t.fn', '{}', pg_temp.ctx('u-1', 'forgotten'));
SELECT throws_ok($$SET CONSTRAINTS paas.call_outcomes_complete IMMEDIATE$$, 'XX000', NULL,
	'a claimed call without its answer refuses to commit');
SET CONSTRAINTS paas.call_outcomes_complete DEFERRED;
SELECT paas.outcome_save(pg_temp.ctx('u-1', 'forgotten'), '{}');
SELECT lives_ok($$SET CONSTRAINTS paas.call_outcomes_complete IMMEDIATE$$, 'with its answer it commits');
SET CONSTRAINTS paas.call_outcomes_complete DEFERRED;

------------------------------------------------------------------------------
-- two sessions, one key (dblink: committed records of their own callers)
------------------------------------------------------------------------------
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TEMP TABLE two (tag text, conn text);
INSERT INTO two SELECT 'outcome-' || left(md5(random()::text), 10),
	format('dbname=%s host=%s port=%s user=%s', current_database(),
		   split_part(current_setting('unix_socket_directories'), ',', 1),
		   current_setting('port'), current_user);
CREATE FUNCTION pg_temp.rctx(k text) RETURNS text LANGUAGE sql AS
	$$ SELECT quote_literal(pg_temp.ctx((SELECT tag FROM two), k)::text) $$;
SELECT dblink_connect('a', (SELECT conn FROM two));
SELECT dblink_connect('b', (SELECT conn FROM two));

-- a commits while b waits: b answers a's outcome
SELECT dblink_exec('a', 'BEGIN');
SELECT * FROM dblink('a', format($$SELECT paas.outcome_claim('t.fn', '{}', %s)::text$$, pg_temp.rctx('w1')))
	AS t (r text);
SELECT dblink_send_query('b', format($$SELECT paas.outcome_claim('t.fn', '{}', %s)::text$$, pg_temp.rctx('w1')));
SELECT pg_sleep(0.2);
SELECT is(dblink_is_busy('b'), 1, 'a second call with the key waits for the first one''s transaction');
SELECT * FROM dblink('a', format($$SELECT paas.outcome_save(%s, '{"by": "a"}')::text$$, pg_temp.rctx('w1')))
	AS t (r text);
SELECT dblink_exec('a', 'COMMIT');
SELECT is((SELECT r FROM dblink_get_result('b') AS t (r text)), '{"by": "a"}', '... then answers its outcome');
SELECT * FROM dblink_get_result('b') AS t (r text);

-- a rolls back while b waits: b executes
SELECT dblink_exec('a', 'BEGIN');
SELECT dblink_exec('b', 'BEGIN');
SELECT * FROM dblink('a', format($$SELECT paas.outcome_claim('t.fn', '{}', %s)::text$$, pg_temp.rctx('w2')))
	AS t (r text);
SELECT dblink_send_query('b', format($$SELECT paas.outcome_claim('t.fn', '{}', %s)::text$$, pg_temp.rctx('w2')));
SELECT pg_sleep(0.2);
SELECT dblink_exec('a', 'ROLLBACK');
SELECT is((SELECT r FROM dblink_get_result('b') AS t (r text)), NULL, 'after a rollback the waiting call executes');
SELECT * FROM dblink_get_result('b') AS t (r text);
SELECT * FROM dblink('b', format($$SELECT paas.outcome_save(%s, '{"by": "b"}')::text$$, pg_temp.rctx('w2')))
	AS t (r text);
SELECT dblink_exec('b', 'COMMIT');
SELECT is((SELECT r FROM dblink('a', format($$SELECT paas.outcome_claim('t.fn', '{}', %s)::text$$,
											pg_temp.rctx('w2'))) AS t (r text)),
	'{"by": "b"}', '... and its outcome is the one recorded');

-- a replay writes nothing: it needs no transaction id (and so never waits
-- for a synchronous standby)
SELECT dblink_exec('b', 'BEGIN');
SELECT is((SELECT r FROM dblink('b', format($$SELECT paas.outcome_claim('t.fn', '{}', %s)::text$$,
											pg_temp.rctx('w1'))) AS t (r text)),
	'{"by": "a"}', 'the committed answer, in a new session');
SELECT is((SELECT r FROM dblink('b', 'SELECT txid_current_if_assigned()::text') AS t (r text)), NULL,
	'a replay assigns no transaction id');
SELECT dblink_exec('b', 'ROLLBACK');
SELECT dblink_exec('b', format('DELETE FROM paas.call_outcomes WHERE caller = %L', (SELECT tag FROM two)));
SELECT dblink_disconnect('a');
SELECT dblink_disconnect('b');

------------------------------------------------------------------------------
-- pruning
------------------------------------------------------------------------------
INSERT INTO paas.call_outcomes (caller, key, fn, request_hash, response, created_at) VALUES
	('u-old', 'old', 't.fn', '\x00', '{}', now() - interval '25 hours'),
	('u-old', 'recent', 't.fn', '\x00', '{}', now() - interval '23 hours');
SELECT ok((paas.job_prune_call_outcomes() ->> 'deleted')::int >= 1, 'the job deletes old records');
SELECT is((SELECT array_agg(key) FROM paas.call_outcomes WHERE caller = 'u-old'), ARRAY['recent'],
	'records younger than the retention stay');

------------------------------------------------------------------------------
-- the money functions
------------------------------------------------------------------------------
INSERT INTO paas.users (email, name, password_hash) VALUES ('outcome-u@pgtap.test', 'Outcome User', 'x');
INSERT INTO paas.services (name, display_name, description, docker_image, monthly_price)
VALUES ('outcome-svc', 'Outcome Service', 'service of the outcome test', 'nginx:1', 1000),
	   ('outcome-svc2', 'Outcome Service 2', 'service of the outcome test', 'nginx:1', 1000);
CREATE FUNCTION pg_temp.uid() RETURNS text LANGUAGE sql AS
	$$ SELECT id::text FROM paas.users WHERE email = 'outcome-u@pgtap.test' $$;
CREATE FUNCTION pg_temp.svc(n text) RETURNS text LANGUAGE sql AS
	$$ SELECT id::text FROM paas.services WHERE name = n $$;
CREATE FUNCTION pg_temp.bal() RETURNS bigint LANGUAGE sql AS
	$$ SELECT paas.wallet_balance(pg_temp.uid()::uuid) $$;
SELECT paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup', 'postings', jsonb_build_array(
	jsonb_build_object('account', paas.wallet_account(pg_temp.uid()::uuid), 'amount', 5000),
	jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -5000)))));

CREATE TEMP TABLE r (name text PRIMARY KEY, v jsonb);
INSERT INTO r SELECT 'sale1', api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('outcome-svc')),
													   pg_temp.ctx(pg_temp.uid(), 'sale'));
INSERT INTO r SELECT 'sale2', api.subscriptions_create(jsonb_build_object('serviceId', pg_temp.svc('outcome-svc')),
													   pg_temp.ctx(pg_temp.uid(), 'sale'));
SELECT is((SELECT v ->> 'id' FROM r WHERE name = 'sale2'), (SELECT v ->> 'id' FROM r WHERE name = 'sale1'),
	'a sale sent again answers the same subscription');
SELECT is((SELECT (v ->> 'replayed')::boolean FROM r WHERE name = 'sale2'), true, '... marked replayed');
SELECT is(pg_temp.bal(), 4000::bigint, '... charged once');
SELECT is((pg_temp.rec(pg_temp.uid(), 'sale')).fn, 'api.subscriptions_create', 'the sale is recorded under its key');
SELECT throws_ok(format($$SELECT api.subscriptions_create('{"serviceId": "%s"}', pg_temp.ctx(pg_temp.uid(), 'sale'))$$,
						pg_temp.svc('outcome-svc2')),
	'PT409', NULL, 'the sale''s key for another service: PT409');

INSERT INTO r SELECT 'renew1', api.subscriptions_renew(jsonb_build_object('id', (SELECT v ->> 'id' FROM r WHERE name = 'sale1')),
													   pg_temp.ctx(pg_temp.uid(), 'renew'));
INSERT INTO r SELECT 'renew2', api.subscriptions_renew(jsonb_build_object('id', (SELECT v ->> 'id' FROM r WHERE name = 'sale1')),
													   pg_temp.ctx(pg_temp.uid(), 'renew'));
SELECT is((SELECT v - 'replayed' FROM r WHERE name = 'renew2'), (SELECT v - 'replayed' FROM r WHERE name = 'renew1'),
	'a renewal sent again answers what the first one answered');
SELECT is(pg_temp.bal(), 3000::bigint, '... and is charged once');
SELECT is((SELECT count(*) FROM paas.subscription_charges
			WHERE subscription_id = (SELECT (v ->> 'id')::uuid FROM r WHERE name = 'sale1')), 2::bigint,
	'two paid periods: the sale and one renewal');

-- an error records nothing: the call sent again runs again
UPDATE paas.subscriptions SET price = 100000 WHERE id = (SELECT (v ->> 'id')::uuid FROM r WHERE name = 'sale1');
SELECT throws_ok(format($$SELECT api.subscriptions_renew('{"id": "%s"}', pg_temp.ctx(pg_temp.uid(), 'short'))$$,
						(SELECT v ->> 'id' FROM r WHERE name = 'sale1')), 'PT402', NULL, 'a short wallet: PT402');
SELECT is((pg_temp.rec(pg_temp.uid(), 'short')).key, NULL, '... and no record of the refused call');

-- a DBA's adjustment with a key
INSERT INTO r SELECT 'adj1', api.admin_billing_adjust(jsonb_build_object('userId', pg_temp.uid(), 'amount', 700,
	'reason', 'outcome test'), '{"idempotencyKey": "adj"}');
INSERT INTO r SELECT 'adj2', api.admin_billing_adjust(jsonb_build_object('userId', pg_temp.uid(), 'amount', 700,
	'reason', 'outcome test'), '{"idempotencyKey": "adj"}');
SELECT is((SELECT v ->> 'entryId' FROM r WHERE name = 'adj2'), (SELECT v ->> 'entryId' FROM r WHERE name = 'adj1'),
	'an adjustment sent again answers the same entry');
SELECT is(pg_temp.bal(), 3700::bigint, '... posted once');

-- top-up: the record names the top-up; sent again, the same top-up
INSERT INTO r SELECT 'top1', api.billing_topup('{"amount": 20000}', pg_temp.ctx(pg_temp.uid(), 'top'));
INSERT INTO r SELECT 'top2', api.billing_topup('{"amount": 20000}', pg_temp.ctx(pg_temp.uid(), 'top'));
SELECT ok((SELECT v ? '$snap' FROM r WHERE name = 'top1') AND (SELECT v ? '$snap' FROM r WHERE name = 'top2'),
	'both calls ask httpd for a Snap link');
SELECT is((SELECT count(*) FROM paas.topups WHERE user_id = pg_temp.uid()::uuid), 1::bigint,
	'a top-up sent again is the same top-up');
SELECT is((pg_temp.rec(pg_temp.uid(), 'top')).response ->> 'id',
	(SELECT id::text FROM paas.topups WHERE user_id = pg_temp.uid()::uuid), 'the record names the top-up');
SELECT throws_ok($$SELECT api.billing_topup('{"amount": 30000}', pg_temp.ctx(pg_temp.uid(), 'top'))$$,
	'PT409', NULL, 'the top-up''s key with another amount: PT409');
SELECT lives_ok(format($$SELECT api.billing_transaction_pay('{"id": "%s"}', pg_temp.ctx(pg_temp.uid(), 'pay'))$$,
					   (SELECT id FROM paas.topups WHERE user_id = pg_temp.uid()::uuid)),
	'pay records its call');
SELECT is((pg_temp.rec(pg_temp.uid(), 'pay')).fn, 'api.billing_transaction_pay', '... under its key');

SELECT * FROM finish();
ROLLBACK;
