-- renewals: the renewal run across sessions and workers
-- (sql/parts/62_renewals.sql, bgworker/parallel.c): two runs at once from
-- two sessions, shards in background workers each committing its own
-- transaction, a wallet debited between the run's read and its ledger call,
-- and paas.run_parallel itself.  The run inside one transaction (grace,
-- suspension, revival, expiry, catching up) is in subscriptions.sql.
BEGIN;
SELECT plan(23);

------------------------------------------------------------------------------
-- Two runs at once, from two sessions (dblink).  This part comes first: the
-- sessions must not wait for a lock this transaction holds (the advisory
-- lock of a run, the invoice counter).  Its fixtures are committed through
-- a third session, with names of their own.
------------------------------------------------------------------------------
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TEMP TABLE conc (tag text, conn text);
INSERT INTO conc SELECT 'subconc' || left(md5(random()::text), 10),
	format('dbname=%s host=%s port=%s user=%s', current_database(),
		   split_part(current_setting('unix_socket_directories'), ',', 1),
		   current_setting('port'), current_user);
SELECT dblink_connect('fx', (SELECT conn FROM conc));
SELECT dblink_exec('fx', format($f$
	DO $do$
	BEGIN
		INSERT INTO paas.services (name, display_name, description, docker_image, monthly_price)
		VALUES (%1$L, 'Concurrent Renewal', 'service of the concurrent renewal test', 'nginx:1', 1000);
		INSERT INTO paas.users (email, name, password_hash)
		SELECT %1$L || '-' || i || '@pgtap.test', 'Concurrent', 'x' FROM generate_series(1, 40) i;
		PERFORM paas.ledger_post(NULL, (SELECT jsonb_agg(jsonb_build_object('kind', 'topup',
			'postings', jsonb_build_array(
				jsonb_build_object('account', paas.wallet_account(u.id), 'amount', 5000),
				jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -5000))))
			FROM paas.users u WHERE u.email LIKE %1$L || '-%%'));
		INSERT INTO paas.subscriptions (user_id, service_id, price, anchor_at, current_period_start,
										current_period_end)
		SELECT u.id, s.id, 1000, now() - interval '1 month 1 hour', now() - interval '1 month 1 hour',
			   paas.subscription_bound(now() - interval '1 month 1 hour', 1)
		  FROM paas.users u, paas.services s
		 WHERE u.email LIKE %1$L || '-%%' AND s.name = %1$L;
	END
	$do$ $f$, (SELECT tag FROM conc)));
SELECT dblink_connect('r1', (SELECT conn FROM conc));
SELECT dblink_connect('r2', (SELECT conn FROM conc));
SELECT dblink_send_query('r1', 'SELECT api.run_renewals()');
SELECT dblink_send_query('r2', 'SELECT api.run_renewals()');
CREATE TEMP TABLE conc_res AS
SELECT 'r1' AS conn, r FROM dblink_get_result('r1') AS t (r jsonb)
UNION ALL
SELECT 'r2', r FROM dblink_get_result('r2') AS t (r jsonb);
SELECT dblink_disconnect('r1');
SELECT dblink_disconnect('r2');
CREATE FUNCTION pg_temp.conc_subs() RETURNS SETOF uuid LANGUAGE sql AS $$
	SELECT s.id FROM paas.subscriptions s JOIN paas.services v ON v.id = s.service_id
	 WHERE v.name = (SELECT tag FROM conc) $$;

SELECT is((SELECT count(*) FROM conc_res WHERE r ? 'renewed'), 2::bigint,
	'both concurrent runs finished');
SELECT is((SELECT count(*) FROM paas.subscription_charges WHERE subscription_id IN (SELECT pg_temp.conc_subs())),
	40::bigint, 'two concurrent runs: one charge per due subscription');
SELECT is((SELECT count(*) FROM paas.ledger_entries e
			WHERE e.kind = 'subscription_renewal'
			  AND (e.ref ->> 'subscriptionId')::uuid IN (SELECT pg_temp.conc_subs())),
	40::bigint, 'two concurrent runs: one ledger entry per due subscription');
SELECT is((SELECT count(*) FROM paas.invoices i
			WHERE (i.ref ->> 'subscriptionId')::uuid IN (SELECT pg_temp.conc_subs())),
	40::bigint, 'two concurrent runs: one invoice per due subscription');
SELECT is((SELECT count(*) FROM paas.subscription_charges c JOIN paas.invoices i ON i.id = c.invoice_id
			WHERE c.subscription_id IN (SELECT pg_temp.conc_subs())
			  AND i.ref ->> 'subscriptionId' = c.subscription_id::text
			  AND i.ref ->> 'period' = c.period_no::text AND i.ref ->> 'entryId' = c.entry_id::text),
	40::bigint, 'two concurrent runs: each charge row names the invoice of its own period');
SELECT is((SELECT array_agg(DISTINCT period_no) FROM paas.subscriptions WHERE id IN (SELECT pg_temp.conc_subs())),
	ARRAY[2], 'every subscription of the concurrent test is in its second period');
SELECT is((SELECT array_agg(DISTINCT paas.wallet_balance(user_id)) FROM paas.subscriptions
			WHERE id IN (SELECT pg_temp.conc_subs())),
	ARRAY[4000::bigint], 'every wallet was charged exactly once');
-- the run's shards ran in background workers, each committing its own
-- transaction (the run's exception block does not keep them in its backend)
SELECT is((SELECT count(DISTINCT c.xmin::text)::int FROM paas.subscription_charges c
			WHERE c.subscription_id IN (SELECT pg_temp.conc_subs())),
	2, 'the charges of a run on its own were written by its 2 shards in transactions of their own');
SELECT is((SELECT count(*) FROM paas.notification_outbox o
			WHERE o.kind = 'subscription_renewed'
			  AND o.dedup_key IN (SELECT 'charge:' || c.subscription_id || ':' || c.period_no
									FROM paas.subscription_charges c
								   WHERE c.subscription_id IN (SELECT pg_temp.conc_subs()) AND c.kind = 'renewal')),
	40::bigint, 'two concurrent runs: one outbox row per renewal, with the dedup key of its charge');
SELECT is((SELECT max(split_part(i.number, '-', 3)::int) - min(split_part(i.number, '-', 3)::int) + 1
			 FROM paas.invoices i WHERE (i.ref ->> 'subscriptionId')::uuid IN (SELECT pg_temp.conc_subs())),
	40, 'the invoices of the two shards are one gap-free block of numbers');
-- a third run (another session) charges nothing more
SELECT r FROM dblink('fx', 'SELECT api.run_renewals()') AS t (r jsonb);
SELECT is((SELECT count(*) FROM paas.subscription_charges WHERE subscription_id IN (SELECT pg_temp.conc_subs())),
	40::bigint, 'a run after them charges nothing');

-- A wallet debited between the run's balance read and its ledger call: the
-- batch's ledger call fails (PT402) and the run falls back to one entry at a
-- time; the short subscription goes to GRACE, nothing is overdrawn.
SELECT dblink_exec('fx', format($f$
	DO $do$
	BEGIN
		INSERT INTO paas.users (email, name, password_hash) VALUES (%1$L || '-race@pgtap.test', 'Race', 'x');
		PERFORM paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup',
			'postings', jsonb_build_array(
				jsonb_build_object('account', paas.wallet_account(u.id), 'amount', 1500),
				jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -1500)))))
		  FROM paas.users u WHERE u.email = %1$L || '-race@pgtap.test';
		INSERT INTO paas.subscriptions (user_id, service_id, price, anchor_at, current_period_start,
										current_period_end)
		SELECT u.id, s.id, 1000, now() - interval '1 month 1 hour', now() - interval '1 month 1 hour',
			   paas.subscription_bound(now() - interval '1 month 1 hour', 1)
		  FROM paas.users u, paas.services s
		 WHERE u.email = %1$L || '-race@pgtap.test' AND s.name = %1$L;
	END
	$do$ $f$, (SELECT tag FROM conc)));
SELECT dblink_connect('ra', (SELECT conn FROM conc));
SELECT dblink_connect('rb', (SELECT conn FROM conc));
SELECT dblink_exec('ra', 'BEGIN');
SELECT dblink_exec('ra', format($f$DO $do$ BEGIN
	PERFORM paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object(
	'kind', 'adjustment', 'postings', jsonb_build_array(
		jsonb_build_object('account', paas.wallet_account(u.id), 'amount', -1000),
		jsonb_build_object('account', paas.platform_account('adjustments'), 'amount', 1000)))))
	FROM paas.users u WHERE u.email = %L;
	END $do$ $f$, (SELECT tag FROM conc) || '-race@pgtap.test'));
CREATE TEMP TABLE rb_pid AS SELECT pid FROM dblink('rb', 'SELECT pg_backend_pid()') AS t (pid int);
SELECT dblink_send_query('rb', 'SELECT api.run_renewals()');
CREATE FUNCTION pg_temp.wait_blocked(p int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 1000 LOOP
		-- the run's own backend, or one of its shard workers (paas.run_parallel)
		IF EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
					WHERE NOT l.granted
					  AND (l.pid = p OR a.backend_type = 'paas parallel command')) THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.01);
	END LOOP;
	RETURN false;
END $$;
SELECT ok(pg_temp.wait_blocked((SELECT pid FROM rb_pid)), 'the run waits for the wallet another session is debiting');
SELECT dblink_exec('ra', 'COMMIT');
CREATE TEMP TABLE race_res AS SELECT r FROM dblink_get_result('rb') AS t (r jsonb);
SELECT dblink_disconnect('ra');
SELECT dblink_disconnect('rb');
SELECT is((SELECT (r ->> 'toGrace')::int FROM race_res), 1, 'the run reports the late-short wallet as a failed payment');
SELECT is((SELECT s.status FROM paas.subscriptions s JOIN paas.users u ON u.id = s.user_id
			WHERE u.email = (SELECT tag FROM conc) || '-race@pgtap.test'), 'GRACE',
	'the subscription whose wallet went short is in GRACE');
SELECT is((SELECT paas.wallet_balance(u.id) FROM paas.users u WHERE u.email = (SELECT tag FROM conc) || '-race@pgtap.test'),
	500::bigint, 'nothing was charged and nothing overdrawn');
SELECT is((SELECT (r ->> 'shards')::int FROM race_res), 2,
	'a run on its own (as pg_cron runs it) spreads its shards over paas.renewal_workers = 2 workers');

-- paas.run_parallel: workers on their own, or this backend in a transaction
SELECT isnt((SELECT x[1] FROM dblink('fx', 'SELECT paas.run_parallel(ARRAY[''SELECT pg_backend_pid()''])') AS t (x text[])),
	(SELECT x FROM dblink('fx', 'SELECT pg_backend_pid()::text') AS t (x text)),
	'run_parallel runs a command in another backend when the call is a transaction of its own');
SELECT is(paas.run_parallel(ARRAY['SELECT pg_backend_pid()', 'SELECT NULL', $$SELECT 'b'$$]),
	ARRAY[pg_backend_pid()::text, NULL, 'b'],
	'inside a transaction block the commands run in the calling backend, results in order');
-- (a DO of its own; a query string of several statements is a transaction
-- block already)
CREATE FUNCTION pg_temp.parallel_do(begin_first boolean) RETURNS text LANGUAGE sql AS $f$
	SELECT dblink_exec('fx', format($q$DO $do$
		DECLARE
			r text[];
		BEGIN
			IF %s THEN
				PERFORM paas.run_parallel_begin();
			END IF;
			BEGIN
				r := paas.run_parallel(ARRAY['SELECT pg_backend_pid()']);
			EXCEPTION WHEN OTHERS THEN
				RAISE;
			END;
			PERFORM set_config('pgtap.parallel_pid', r[1], false);
		END
		$do$$q$, begin_first::text));
	SELECT CASE WHEN x THEN 'caller' ELSE 'worker' END
	  FROM dblink('fx', $q$SELECT current_setting('pgtap.parallel_pid') = pg_backend_pid()::text$q$) AS t (x boolean);
$f$;
SELECT is(pg_temp.parallel_do(true), 'worker',
	'after paas.run_parallel_begin(), a call from an exception block of a statement of its own runs in a worker');
SELECT is(pg_temp.parallel_do(false), 'caller',
	'without it, a call from an exception block runs in the calling backend');
SELECT is(paas.run_parallel_begin(), false, 'inside a transaction block paas.run_parallel_begin() says no workers');
SELECT throws_ok($$SELECT * FROM dblink('fx', 'SELECT paas.run_parallel(ARRAY[''SELECT 1'', ''SELECT 1/0''])') AS t (x text[])$$,
	'22012', NULL, 'a failing worker fails the call with its SQLSTATE');
SELECT is((SELECT count(*)::int FROM dblink('fx', $q$SELECT unnest(paas.run_parallel(ARRAY(
		SELECT 'SELECT paas.renewal_shard(gen_random_uuid(), 3) BETWEEN 0 AND 2' FROM generate_series(1, 4))))$q$)
		AS t (x text) WHERE x = 't'), 4,
	'four commands run in four workers; renewal shards stay in range');
SELECT dblink_disconnect('fx');


SELECT finish();
ROLLBACK;
