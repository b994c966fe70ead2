-- paas 0.2.0 -> 0.3.0 (ALTER EXTENSION paas UPDATE).
--
-- What changes: SECURITY DEFINER functions search pg_catalog first and never
-- public (pgcrypto is called by its schema); failed logins are counted with
-- the account (paas.login_failures); the outcome of every money-moving call
-- is recorded with its idempotency key (paas.call_outcomes); finance views
-- for BI; the route table and the OpenAPI document in the database
-- (paas.routes); GET /status split into a public and an admin answer.
-- New parts of the install script are included as they stand; the function
-- definitions are those of sql/parts as pg_get_functiondef prints them.
-- tests/upgrade/check.sh proves that an updated 0.2.0 database defines
-- exactly what a fresh 0.3.0 install does, and keeps its data.

\echo Use "ALTER EXTENSION paas UPDATE" to load this file. \quit

-- ---- tables, columns, types ----
-- Functions with SQL-standard bodies that use the row type of paas.users
-- are dropped here and created again below (PostgreSQL does not add a
-- column under them).
DROP FUNCTION paas.invoice_detail(paas.invoices, paas.users);
DROP FUNCTION paas.session_reply(paas.users, paas.sessions, text);
DROP FUNCTION paas.user_json(paas.users);
DROP FUNCTION paas.email_taken(text, uuid);
DROP FUNCTION paas.invoice_item_errors(jsonb);
-- accounts: failed logins counted with the account (api.auth_login)
ALTER TABLE paas.users
	ADD COLUMN failed_logins integer NOT NULL DEFAULT 0,
	ADD COLUMN failed_login_at timestamptz,
	ADD COLUMN login_blocked_until timestamptz;
CREATE TABLE paas.login_failures (
	user_id			uuid NOT NULL REFERENCES paas.users (id) ON DELETE CASCADE,
	client			text NOT NULL,
	failures		double precision NOT NULL DEFAULT 0 CHECK (failures >= 0),
	at				timestamptz NOT NULL DEFAULT now(),
	last_success_at	timestamptz,
	PRIMARY KEY (user_id, client)
);
COMMENT ON TABLE paas.login_failures IS
	'failed-login bucket and last success per (account, client address); api.auth_login';
SELECT pg_catalog.pg_extension_config_dump('paas.login_failures', '');
ALTER TABLE paas.sessions ALTER COLUMN secret SET DEFAULT public.gen_random_bytes(32);

-- ledger: no posting before the balances are rebuilt after pg_restore
ALTER TABLE paas.ledger_accounts ADD COLUMN balance_verified boolean NOT NULL DEFAULT true;
-- the install rows (platform accounts, slots) are unverified, as a fresh
-- install makes them; the rebuild at the end verifies those with postings
UPDATE paas.ledger_accounts SET balance_verified = false WHERE kind <> 'wallet';

-- billing: one BLOCKED reversal per order (the newest of each order's stays)
DELETE FROM paas.topup_reversals r
 USING paas.topup_reversals k
 WHERE r.status = 'BLOCKED' AND k.status = 'BLOCKED' AND k.order_id = r.order_id
   AND (k.created_at, k.id) > (r.created_at, r.id);
CREATE UNIQUE INDEX topup_reversals_one_blocked ON paas.topup_reversals (order_id)
	WHERE status = 'BLOCKED';
COMMENT ON TABLE paas.midtrans_notifications IS
	'every verified notification and status-API answer received, with what was done about it';
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
SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_rejects', '');
SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_rejects_id_seq', '');
-- the feed's invoice lookups
CREATE INDEX invoices_topup_idx ON paas.invoices (topup_id, issued_at) WHERE topup_id IS NOT NULL;
CREATE INDEX invoices_entry_idx ON paas.invoices ((ref ->> 'entryId'), issued_at);

-- jobs: pg_cron's jobs are recorded too (runner), changed settings are dumped (customized)
ALTER TABLE paas.job
	ALTER COLUMN run_every DROP NOT NULL,
	ALTER COLUMN next_run_at DROP NOT NULL,
	ADD COLUMN runner text NOT NULL DEFAULT 'worker' CHECK (runner IN ('worker', 'pg_cron')),
	ADD COLUMN customized boolean NOT NULL DEFAULT false,
	ADD CONSTRAINT job_schedule_of_runner CHECK (
		CASE runner WHEN 'worker' THEN run_every IS NOT NULL AND next_run_at IS NOT NULL
		ELSE run_every IS NULL AND next_run_at IS NULL END);
COMMENT ON TABLE paas.job IS
	'periodic jobs: of the background worker (runner worker), or of pg_cron (runner pg_cron: only recorded '
	'here); fn() returns jsonb detail; DBAs change enabled and run_every';
COMMENT ON COLUMN paas.job.runner IS
	'who starts the job: the background worker (every run_every), or pg_cron (its cron.job schedule; '
	'the worker never runs it)';
COMMENT ON COLUMN paas.job.customized IS
	'enabled or run_every was changed after the install (set by a trigger): such rows are dumped, and '
	'pg_restore puts their settings back on the row the install script creates';
GRANT SELECT ON paas.job, paas.job_run TO paas_owner;
GRANT UPDATE (enabled, run_every, next_run_at) ON paas.job TO paas_owner;
GRANT SELECT, UPDATE ON paas.subscription_settings TO paas_owner;
SELECT pg_catalog.pg_extension_config_dump('paas.job', 'WHERE customized');

-- ledger: platform accounts have fixed ids that no wallet can take
-- (sql/parts/40_ledger.sql): 1-68 the accounts of 0.1.0 and their slots (the
-- first rows every install made: unchanged), wallets 69 .. 999 999 999 999
-- (the sequence's new MAXVALUE), later platform accounts from 10^12 on:
-- 'opening_balances' (new in 0.3.0) at 10^12 + 100, its slots at + 1 + slot.
-- Drawn from the sequence, it would follow this database's wallets, and a
-- dump restored into a fresh install (where it has the fixed id) would
-- attach its postings to the wrong rows.
ALTER TABLE paas.ledger_accounts ALTER COLUMN id SET MAXVALUE 999999999999;

-- A database that got 'opening_balances' from the sequence (a 0.3.0
-- development build's script): the account, its slots and their postings
-- move to the fixed ids.  The platform row never carries postings; the
-- slots' postings keep their chains (only account_id changes).
DO $$
DECLARE
	old bigint;
BEGIN
	SELECT a.id INTO old FROM paas.ledger_accounts a
	 WHERE a.kind = 'platform' AND a.code = 'opening_balances';
	IF NOT FOUND OR old = 1000000000100 THEN
		RETURN;
	END IF;
	RAISE NOTICE 'ledger account opening_balances: id % becomes 1000000000100', old;
	ALTER TABLE paas.ledger_accounts ALTER COLUMN id SET GENERATED BY DEFAULT;
	ALTER TABLE paas.ledger_postings DISABLE TRIGGER ledger_postings_append_only;
	UPDATE paas.ledger_postings p SET account_id = 1000000000100 + 1 + a.slot
	  FROM paas.ledger_accounts a
	 WHERE a.parent_id = old AND p.account_id = a.id;
	-- one statement: the parent and its slots (parent_id's key is checked
	-- at its end)
	UPDATE paas.ledger_accounts a
	   SET id = CASE WHEN a.id = old THEN 1000000000100 ELSE 1000000000100 + 1 + a.slot END,
		   parent_id = CASE WHEN a.id = old THEN NULL ELSE 1000000000100 END
	 WHERE a.id = old OR a.parent_id = old;
	ALTER TABLE paas.ledger_postings ENABLE TRIGGER ledger_postings_append_only;
	ALTER TABLE paas.ledger_accounts ALTER COLUMN id SET GENERATED ALWAYS;
END
$$;

-- The account itself (unverified, as a fresh install makes it); the
-- install script's own INSERT (sql/parts/80_import.sql, included further
-- down) then finds it there.
INSERT INTO paas.ledger_accounts (id, kind, code, balance_verified) OVERRIDING SYSTEM VALUE
VALUES (1000000000100, 'platform', 'opening_balances', false)
ON CONFLICT DO NOTHING;
INSERT INTO paas.ledger_accounts (id, kind, parent_id, slot, balance_verified) OVERRIDING SYSTEM VALUE
SELECT 1000000000100 + 1 + s, 'platform_slot', 1000000000100, s, false FROM generate_series(0, 15) s
ON CONFLICT DO NOTHING;

ALTER TABLE paas.ledger_accounts ADD CONSTRAINT ledger_accounts_id_reserved
	CHECK (CASE WHEN kind = 'wallet' THEN id BETWEEN 69 AND 999999999999
			    ELSE id BETWEEN 1 AND 68 OR id >= 1000000000000 END);

-- nodes: the Kubernetes API's view of each node (bgworker/nodesync.c)
-- node_schedulable, node_json, node_audit and node_spec (SQL functions with a
-- parsed body) depend on the row type: dropped here, created again with the
-- functions below
DROP FUNCTION paas.node_json(paas.nodes);
DROP FUNCTION paas.node_audit(paas.nodes, text, text, text, text);
DROP FUNCTION paas.node_spec(paas.nodes);
DROP FUNCTION paas.node_schedulable(paas.nodes);
ALTER TABLE paas.nodes
	ADD COLUMN kube_seen_at timestamptz,
	ADD COLUMN kube_resource_version text,
	ADD COLUMN kube_digest text,
	ADD COLUMN foreign_cpu_m bigint NOT NULL DEFAULT 0,
	ADD COLUMN foreign_memory bigint NOT NULL DEFAULT 0;

-- ---- functions new or changed since 0.2.0 (as pg_get_functiondef prints them) ----
DROP FUNCTION paas.feed_json(record);

CREATE OR REPLACE FUNCTION api.admin_billing_adjust(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	errs jsonb := '[]';
	u paas.users;
	amt bigint;
	wallet bigint;
	key text;
	res jsonb;
	eid bigint;
	adj paas.ledger_adjustments;
	prior jsonb := paas.outcome_claim('api.admin_billing_adjust', req, ctx);
BEGIN
	IF prior IS NOT NULL THEN
		RETURN prior || jsonb_build_object('replayed', true);
	END IF;
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'userId', true, 1, 64);
	errs := paas.check_int(errs, req, 'amount', true, -1000000000000, 1000000000000);
	errs := paas.check_text(errs, req, 'reason', true, 3, 500);
	IF jsonb_typeof(req -> 'amount') IN ('number', 'string') AND (req ->> 'amount') ~ '^\s*-?0+\s*$' THEN
		errs := paas.add_err(errs, 'amount', 'amount must not be zero');
	END IF;
	PERFORM paas.raise_if_invalid(errs);

	SELECT * INTO u FROM paas.users
	 WHERE id = paas.to_uuid(req ->> 'userId') AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'User not found' USING ERRCODE = 'PT404';
	END IF;

	amt := (req ->> 'amount')::bigint;
	wallet := paas.wallet_account(u.id);
	IF ctx ->> 'idempotencyKey' IS NOT NULL THEN
		key := 'admin-adjustment:' || encode(sha256(convert_to(
			coalesce(adm.id::text, 'dba') || ':' || (ctx ->> 'idempotencyKey'), 'UTF8')), 'hex');
	END IF;

	res := paas.ledger_post(key, jsonb_build_array(jsonb_build_object(
		'kind', 'adjustment',
		'memo', req ->> 'reason',
		'ref', jsonb_build_object('userId', u.id, 'adminId', adm.id),
		'postings', jsonb_build_array(
			jsonb_build_object('account', wallet, 'amount', amt),
			jsonb_build_object('account', paas.platform_account('adjustments'), 'amount', -amt)))));
	eid := (res #>> '{entries,0,id}')::bigint;

	IF (res ->> 'replayed')::boolean THEN
		SELECT * INTO adj FROM paas.ledger_adjustments WHERE entry_id = eid;
	ELSE
		INSERT INTO paas.ledger_adjustments (entry_id, user_id, admin_id, amount, reason, ip)
		VALUES (eid, u.id, adm.id, amt, req ->> 'reason', left(ctx ->> 'ip', 64))
		RETURNING * INTO adj;
	END IF;

	RETURN paas.outcome_save(ctx, jsonb_build_object(
		'id', adj.id, 'entryId', adj.entry_id, 'userId', adj.user_id, 'adminId', adj.admin_id,
		'amount', adj.amount, 'currency', 'IDR', 'reason', adj.reason,
		'balanceBefore', (res #>> '{entries,0,postings,0,balanceBefore}')::bigint,
		'balanceAfter', (res #>> '{entries,0,postings,0,balanceAfter}')::bigint,
		'replayed', (res ->> 'replayed')::boolean,
		'createdAt', paas.iso(adj.created_at)));
END
$function$
;
COMMENT ON FUNCTION api.admin_billing_adjust(jsonb,jsonb) IS 'POST /admin/billing/adjustments {userId, amount (non-zero, +/-), reason}: posted against ''adjustments'', audited; PT402 when a debit exceeds the wallet';
REVOKE ALL ON FUNCTION api.admin_billing_adjust(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.admin_billing_adjust(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.admin_billing_adjust(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.admin_billing_ledger(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	lim int;
	off int;
	total bigint;
	rows jsonb;
	uid uuid;
	acc bigint;
	cand bigint[];		-- entries touching the account / user; NULL = no such filter
	t0 timestamptz;
	t1 timestamptz;
	asc_order boolean;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'kind', false, 1, 63);
	errs := paas.check_text(errs, req, 'userId', false, 1, 64);
	errs := paas.check_int(errs, req, 'accountId', false, 1, 9223372036854775807);
	errs := paas.ledger_check_ts(errs, req, 'startDate');
	errs := paas.ledger_check_ts(errs, req, 'endDate');
	errs := paas.check_enum(errs, req, 'sortOrder', false, ARRAY['asc', 'desc']);
	PERFORM paas.raise_if_invalid(errs);

	lim := coalesce((req ->> 'limit')::int, 20);
	off := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	-- a userId that cannot exist matches nothing, like an unknown one
	uid := paas.filter_id(req ->> 'userId');
	acc := (req ->> 'accountId')::bigint;
	t0 := paas.ledger_range_start(req ->> 'startDate');
	t1 := paas.ledger_range_end(req ->> 'endDate');
	asc_order := coalesce(req ->> 'sortOrder', 'desc') = 'asc';

	-- Account filters go through the postings' (account_id, id) index; a
	-- platform account's postings are on its slots.
	IF acc IS NOT NULL THEN
		cand := ARRAY(SELECT DISTINCT p.entry_id FROM paas.ledger_postings p
					   WHERE p.account_id IN (SELECT a.id FROM paas.ledger_accounts a
											   WHERE a.id = acc OR a.parent_id = acc));
	END IF;
	IF uid IS NOT NULL THEN
		cand := ARRAY(SELECT DISTINCT p.entry_id FROM paas.ledger_postings p
					   WHERE p.account_id = (SELECT a.id FROM paas.ledger_accounts a WHERE a.user_id = uid)
						 AND (cand IS NULL OR p.entry_id = ANY (cand)));
	END IF;

	SELECT count(*) INTO total FROM paas.ledger_entries e
	 WHERE (cand IS NULL OR e.id = ANY (cand))
	   AND (req ->> 'kind' IS NULL OR e.kind = req ->> 'kind')
	   AND (t0 IS NULL OR e.created_at >= t0)
	   AND (t1 IS NULL OR e.created_at < t1);

	SELECT coalesce(jsonb_agg(paas.ledger_entry_json(s) ORDER BY
						CASE WHEN asc_order THEN s.id END ASC,
						CASE WHEN NOT asc_order THEN s.id END DESC), '[]')
	  INTO rows
	  FROM (SELECT e.* FROM paas.ledger_entries e
			 WHERE (cand IS NULL OR e.id = ANY (cand))
			   AND (req ->> 'kind' IS NULL OR e.kind = req ->> 'kind')
			   AND (t0 IS NULL OR e.created_at >= t0)
			   AND (t1 IS NULL OR e.created_at < t1)
			 ORDER BY CASE WHEN asc_order THEN e.id END ASC,
					  CASE WHEN NOT asc_order THEN e.id END DESC
			 LIMIT lim OFFSET off) s;

	RETURN jsonb_build_object('data', rows, 'pagination', paas.pagination(req, total, 20));
END
$function$
;
COMMENT ON FUNCTION api.admin_billing_ledger(jsonb,jsonb) IS 'GET /admin/billing/ledger: every entry with its postings; page, limit, kind, userId, accountId, startDate, endDate, sortOrder';
REVOKE ALL ON FUNCTION api.admin_billing_ledger(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.admin_billing_ledger(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.admin_billing_ledger(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.admin_billing_overview(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	r jsonb;
	rev bigint := paas.platform_account('revenue');
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'currency', 'IDR',
		'wallets', (SELECT jsonb_build_object(
						'count', count(*),
						'funded', count(*) FILTER (WHERE balance > 0),
						'totalBalance', coalesce(sum(balance), 0))
					  FROM paas.ledger_accounts WHERE kind = 'wallet'),
		'platformAccounts', (SELECT jsonb_object_agg(code, jsonb_build_object(
								'id', id, 'balance', paas.account_balance(id)))
							   FROM paas.ledger_accounts WHERE kind = 'platform'),
		'revenue', (SELECT jsonb_build_object(
						'today', coalesce(sum(amount) FILTER (WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), 0),
						'last30Days', coalesce(sum(amount) FILTER (WHERE created_at >= now() - interval '30 days'), 0),
						'total', coalesce(sum(amount), 0))
					  FROM paas.ledger_postings
					 WHERE account_id IN (SELECT id FROM paas.ledger_accounts
										   WHERE id = rev OR parent_id = rev)),
		'entries', (SELECT jsonb_build_object(
						'total', (SELECT count(*) FROM paas.ledger_entries),
						'last24Hours', count(*),
						'byKindLast24Hours', coalesce((SELECT jsonb_object_agg(kind, n) FROM (
							SELECT kind, count(*) AS n FROM paas.ledger_entries
							 WHERE created_at >= now() - interval '24 hours' GROUP BY kind) k), '{}'))
					  FROM paas.ledger_entries WHERE created_at >= now() - interval '24 hours'),
		'adjustments', (SELECT jsonb_build_object(
						'count', count(*),
						'credited', coalesce(sum(amount) FILTER (WHERE amount > 0), 0),
						'debited', coalesce(-sum(amount) FILTER (WHERE amount < 0), 0))
						  FROM paas.ledger_adjustments))
	  INTO r;
	RETURN r;
END
$function$
;
COMMENT ON FUNCTION api.admin_billing_overview(jsonb,jsonb) IS 'GET /admin/billing/overview: wallet totals, platform balances, revenue, entry counts, adjustments';
REVOKE ALL ON FUNCTION api.admin_billing_overview(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.admin_billing_overview(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.admin_billing_overview(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.admin_billing_user_ledger(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	u paas.users;
	a paas.ledger_accounts;
	lim int;
	off int;
	total bigint;
	rows jsonb;
	t0 timestamptz;
	t1 timestamptz;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	SELECT * INTO u FROM paas.users WHERE id = paas.to_uuid(req ->> 'userId');
	IF NOT FOUND THEN
		RAISE EXCEPTION 'User not found' USING ERRCODE = 'PT404';
	END IF;
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'kind', false, 1, 63);
	errs := paas.ledger_check_ts(errs, req, 'startDate');
	errs := paas.ledger_check_ts(errs, req, 'endDate');
	PERFORM paas.raise_if_invalid(errs);

	lim := coalesce((req ->> 'limit')::int, 20);
	off := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	t0 := paas.ledger_range_start(req ->> 'startDate');
	t1 := paas.ledger_range_end(req ->> 'endDate');
	SELECT * INTO a FROM paas.ledger_accounts WHERE user_id = u.id;

	SELECT count(*) INTO total
	  FROM paas.ledger_postings p JOIN paas.ledger_entries e ON e.id = p.entry_id
	 WHERE p.account_id = a.id
	   AND (req ->> 'kind' IS NULL OR e.kind = req ->> 'kind')
	   AND (t0 IS NULL OR p.created_at >= t0)
	   AND (t1 IS NULL OR p.created_at < t1);

	SELECT coalesce(jsonb_agg(jsonb_build_object(
				'postingId', s.pid, 'entryId', s.eid, 'kind', s.kind, 'memo', s.memo,
				'ref', s.ref, 'amount', s.amount, 'balanceBefore', s.balance_before,
				'balanceAfter', s.balance_after, 'createdAt', paas.iso(s.created_at))
				ORDER BY s.pid DESC), '[]')
	  INTO rows
	  FROM (SELECT p.id AS pid, e.id AS eid, e.kind, e.memo, e.ref, p.amount,
				   p.balance_before, p.balance_after, p.created_at
			  FROM paas.ledger_postings p JOIN paas.ledger_entries e ON e.id = p.entry_id
			 WHERE p.account_id = a.id
			   AND (req ->> 'kind' IS NULL OR e.kind = req ->> 'kind')
			   AND (t0 IS NULL OR p.created_at >= t0)
			   AND (t1 IS NULL OR p.created_at < t1)
			 ORDER BY p.id DESC
			 LIMIT lim OFFSET off) s;

	RETURN jsonb_build_object(
		'data', jsonb_build_object(
			'user', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email),
			'account', jsonb_build_object('id', a.id, 'balance', coalesce(a.balance, 0),
										  'currency', 'IDR'),
			'postings', rows),
		'pagination', paas.pagination(req, total, 20));
END
$function$
;
COMMENT ON FUNCTION api.admin_billing_user_ledger(jsonb,jsonb) IS 'GET /admin/billing/users/:userId/ledger: the user''s wallet postings, newest first; page, limit, kind, startDate, endDate';
REVOKE ALL ON FUNCTION api.admin_billing_user_ledger(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.admin_billing_user_ledger(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.admin_billing_user_ledger(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.admin_status(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN (SELECT jsonb_build_object(
		'service', 'paas',
		'version', paas.version(),
		'extensionVersion', (SELECT extversion FROM pg_extension WHERE extname = 'paas'),
		'databaseTime', paas.iso(clock_timestamp()),
		'postgres', current_setting('server_version'),
		'database', current_database(),
		'worker', jsonb_build_object(
			'running', w.running, 'pid', w.pid,
			'startedAt', paas.iso(w.started_at), 'lastTick', paas.iso(w.last_tick),
			'ticks', w.ticks, 'jobFailures', w.job_failures),
		'cron', EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'),
		'cronVersion', (SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'))
	FROM paas.worker_state() w);
END
$function$
;
COMMENT ON FUNCTION api.admin_status(jsonb,jsonb) IS 'GET /admin/status: versions of module, extension, server and pg_cron, and the background worker''s state';
REVOKE ALL ON FUNCTION api.admin_status(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.admin_status(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.admin_status(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_change_password(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
BEGIN
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'currentPassword', true, 1, 1024);
	errs := paas.check_password(errs, req, 'newPassword');
	errs := paas.check_confirm(errs, req, 'newPassword', 'confirmNewPassword');
	PERFORM paas.raise_if_invalid(errs);
	IF public.crypt(req ->> 'currentPassword', u.password_hash) <> u.password_hash THEN
		RAISE EXCEPTION 'Current password is incorrect'
			USING ERRCODE = 'PU400',
				  DETAIL = '[{"field": "currentPassword", "message": "Current password is incorrect"}]';
	END IF;
	UPDATE paas.users
	   SET password_hash = paas.hash_password(req ->> 'newPassword'),
		   password_changed_at = now(), updated_at = now()
	 WHERE id = u.id;
	PERFORM paas.revoke_sessions(u.id, 'password changed', paas.to_uuid(ctx ->> 'sid'));
	RETURN NULL;
END
$function$
;
COMMENT ON FUNCTION api.auth_change_password(jsonb,jsonb) IS 'POST /auth/change-password: new password, every other session revoked';
REVOKE ALL ON FUNCTION api.auth_change_password(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_change_password(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_change_password(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_delete_account(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
BEGIN
	-- Two last administrators leaving at once: one at a time, and each
	-- sees (the role re-read under the lock) whether the other has gone.
	PERFORM paas.lock_admins(NULL);
	IF EXISTS (SELECT 1 FROM paas.users WHERE id = u.id AND role = 'ADMINISTRATOR')
	   AND NOT EXISTS (SELECT 1 FROM paas.users
		WHERE role = 'ADMINISTRATOR' AND is_active AND deleted_at IS NULL AND id <> u.id) THEN
		RAISE EXCEPTION 'The last active administrator cannot deactivate their account'
			USING ERRCODE = 'PT409';
	END IF;
	UPDATE paas.users SET is_active = false, updated_at = now() WHERE id = u.id;
	PERFORM paas.revoke_sessions(u.id, 'account deactivated');
	PERFORM paas.subscriptions_cancel_for_users(ARRAY[u.id], 'account deactivated by its owner', u.id);
	RETURN NULL;
END
$function$
;
COMMENT ON FUNCTION api.auth_delete_account(jsonb,jsonb) IS 'DELETE /auth/account: deactivates the caller, revoking every session';
REVOKE ALL ON FUNCTION api.auth_delete_account(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_delete_account(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_delete_account(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_login(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	u paas.users;
	lim record;
	addr text := paas.login_client(ctx ->> 'ip');
	f paas.login_failures;
	level double precision := 0;
	known boolean;
	t timestamptz;
	n integer;
	-- bcrypt of a random password: unknown emails cost the same time.
	decoy constant text := '$2a$10$CwTycUXWue0Thq9StjUM0uJ8.XKxq0qYJpQkq5C1FNC0FLcYlnmcS';
BEGIN
	req := paas.require_object(req);
	errs := paas.check_email(errs, req, 'email', true);
	errs := paas.check_text(errs, req, 'password', true, 1, 1024);
	PERFORM paas.raise_if_invalid(errs);

	-- The account's row lock serialises its logins: concurrent attempts
	-- are counted one after the other and cannot pass a limit together.
	SELECT * INTO u FROM paas.users
	 WHERE lower(email) = lower(req ->> 'email') AND deleted_at IS NULL
	 FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		PERFORM public.crypt(req ->> 'password', decoy);
		RAISE EXCEPTION 'Invalid email or password' USING ERRCODE = 'PT401';
	END IF;

	-- Limits first: an address or account over its limit never gets its
	-- password checked.  The time is read after the lock was granted.
	t := clock_timestamp();
	SELECT * INTO lim FROM paas.login_settings();
	SELECT * INTO f FROM paas.login_failures WHERE user_id = u.id AND client = addr;
	IF FOUND THEN
		level := greatest(0, f.failures - greatest(0, extract(epoch FROM t - f.at)) * lim.per_address / 60.0);
	END IF;
	IF level > lim.per_address - 1 THEN
		RAISE EXCEPTION 'Too many failed login attempts, please try again later'
			USING ERRCODE = 'PT429', DETAIL = ceil((level - lim.per_address + 1) * 60.0 / lim.per_address)::text;
	END IF;
	known := coalesce(f.last_success_at > t - interval '30 days', false);
	IF NOT known AND u.login_blocked_until > t THEN
		RAISE EXCEPTION 'Too many failed login attempts, please try again later'
			USING ERRCODE = 'PT429', DETAIL = ceil(extract(epoch FROM u.login_blocked_until - t))::text;
	END IF;

	-- A deactivated account says so whatever the password, as the
	-- original did (checked before the password): telling a wrong password
	-- from a right one here would confirm a guess on an account that
	-- cannot log in.  No guess is tested, so none is counted.
	IF NOT u.is_active THEN
		RAISE EXCEPTION 'Account is deactivated' USING ERRCODE = 'PT401';
	END IF;
	IF public.crypt(req ->> 'password', u.password_hash) <> u.password_hash THEN
		INSERT INTO paas.login_failures (user_id, client, failures, at)
		VALUES (u.id, addr, level + 1, t)
		ON CONFLICT (user_id, client) DO UPDATE SET failures = EXCLUDED.failures, at = EXCLUDED.at;
		IF NOT known THEN
			n := CASE WHEN u.failed_login_at > t - interval '1 day' THEN u.failed_logins + 1 ELSE 1 END;
			UPDATE paas.users
			   SET failed_logins = n, failed_login_at = t,
				   login_blocked_until = CASE WHEN n >= lim.per_account
						THEN t + least(lim.backoff_max,
									   make_interval(secs => power(2, least(n - lim.per_account, 30))))
						ELSE login_blocked_until END
			 WHERE id = u.id;
		END IF;
		-- The counts must stay although the login is refused: a committed
		-- refusal, which httpd answers as the 401.
		RETURN paas.refusal('PT401', 'Invalid email or password');
	END IF;
	PERFORM paas.login_succeeded(u.id, addr);
	UPDATE paas.users SET last_login_at = now() WHERE id = u.id;
	RETURN paas.open_session(u, ctx);
END
$function$
;
COMMENT ON FUNCTION api.auth_login(jsonb,jsonb) IS 'POST /auth/login: failed-login limits (429), the password, a session; failures are kept (committed refusal)';
REVOKE ALL ON FUNCTION api.auth_login(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_login(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_login(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_logout(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
	n integer;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_bool(errs, req, 'all', false);
	PERFORM paas.raise_if_invalid(errs);
	IF coalesce((req ->> 'all')::boolean, false) THEN
		n := paas.revoke_sessions(u.id, 'logout all');
	ELSE
		UPDATE paas.sessions SET revoked_at = now(), revoke_reason = 'logout'
		 WHERE id = paas.to_uuid(ctx ->> 'sid') AND user_id = u.id AND revoked_at IS NULL;
		GET DIAGNOSTICS n = ROW_COUNT;
	END IF;
	RETURN jsonb_build_object('sessionsRevoked', n);
END
$function$
;
COMMENT ON FUNCTION api.auth_logout(jsonb,jsonb) IS 'POST /auth/logout: revokes this session, or all with {"all": true}';
REVOKE ALL ON FUNCTION api.auth_logout(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_logout(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_logout(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_me(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
BEGIN
	RETURN jsonb_build_object('user', paas.user_json(u), 'authenticated', true);
END
$function$
;
COMMENT ON FUNCTION api.auth_me(jsonb,jsonb) IS 'GET /auth/me: the caller';
REVOKE ALL ON FUNCTION api.auth_me(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_me(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_me(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_me_batch(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	PERFORM paas.check_batch(req);
	RETURN (SELECT jsonb_agg(api.auth_me(t.e -> 'req', t.e -> 'ctx') ORDER BY t.n)
			  FROM jsonb_array_elements(req) WITH ORDINALITY AS t (e, n));
END
$function$
;
COMMENT ON FUNCTION api.auth_me_batch(jsonb,jsonb) IS 'GET /auth/me calls received together, answered in one call; results in order (the gateway''s batching)';
REVOKE ALL ON FUNCTION api.auth_me_batch(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_me_batch(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_me_batch(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_profile(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
BEGIN
	RETURN paas.user_json(u) || jsonb_build_object('lastLoginAt', paas.iso(u.last_login_at),
												   '_count', paas.user_counts(u.id));
END
$function$
;
COMMENT ON FUNCTION api.auth_profile(jsonb,jsonb) IS 'GET /auth/profile: the caller''s profile';
REVOKE ALL ON FUNCTION api.auth_profile(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_profile(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_profile(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_profile_update(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
BEGIN
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'name', false, 2, 50);
	errs := paas.check_email(errs, req, 'email', false);
	PERFORM paas.raise_if_invalid(errs);
	IF req ? 'email' AND paas.email_taken(req ->> 'email', u.id) THEN
		RAISE EXCEPTION 'Email is already taken' USING ERRCODE = 'PT409';
	END IF;
	UPDATE paas.users
	   SET name = coalesce(btrim(req ->> 'name'), name),
		   email = coalesce(req ->> 'email', email),
		   updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
	RETURN paas.user_json(u);
END
$function$
;
COMMENT ON FUNCTION api.auth_profile_update(jsonb,jsonb) IS 'PUT /auth/profile: name and email';
REVOKE ALL ON FUNCTION api.auth_profile_update(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_profile_update(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_profile_update(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_refresh(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	t paas.refresh_tokens;
	s paas.sessions;
	u paas.users;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'refreshToken', true, 1, 512);
	PERFORM paas.raise_if_invalid(errs);

	SELECT * INTO t FROM paas.refresh_tokens
	 WHERE token_hash = public.digest(req ->> 'refreshToken', 'sha256')
	 FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Invalid or expired refresh token' USING ERRCODE = 'PT401';
	END IF;
	SELECT * INTO s FROM paas.sessions WHERE id = t.session_id FOR UPDATE;
	SELECT * INTO u FROM paas.users WHERE id = s.user_id;
	IF s.revoked_at IS NOT NULL OR s.expires_at <= now()
	   OR NOT u.is_active OR u.deleted_at IS NOT NULL THEN
		RAISE EXCEPTION 'Invalid or expired refresh token' USING ERRCODE = 'PT401';
	END IF;

	IF t.used_at IS NOT NULL THEN
		IF t.generation = s.generation - 1 AND t.used_at > now() - interval '10 seconds' THEN
			-- a concurrent duplicate of the refresh that just happened
			RETURN paas.session_reply(u, s, paas.refresh_token(s, s.generation));
		END IF;
		-- Reuse of a rotated token: the family is compromised.  The
		-- revocation must persist although the call is refused, so the
		-- refusal is a committed reply (paas.refusal) that httpd sends as 401.
		UPDATE paas.sessions SET revoked_at = now(), revoke_reason = 'refresh token reuse'
		 WHERE id = s.id;
		RETURN paas.refusal('PT401', 'Refresh token reuse detected; the session has been revoked');
	END IF;

	UPDATE paas.refresh_tokens SET used_at = now() WHERE token_hash = t.token_hash;
	UPDATE paas.sessions SET generation = generation + 1, last_used_at = now(),
		   expires_at = now() + interval '7 days'
	 WHERE id = s.id
	RETURNING * INTO s;
	RETURN paas.session_reply(u, s, paas.issue_token(s));
END
$function$
;
COMMENT ON FUNCTION api.auth_refresh(jsonb,jsonb) IS 'POST /auth/refresh: rotates the refresh token; reuse revokes the session';
REVOKE ALL ON FUNCTION api.auth_refresh(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_refresh(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_refresh(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.auth_register(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	u paas.users;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'name', true, 2, 50);
	errs := paas.check_email(errs, req, 'email', true);
	errs := paas.check_password(errs, req, 'password');
	errs := paas.check_confirm(errs, req, 'password', 'confirmPassword');
	PERFORM paas.raise_if_invalid(errs);
	IF paas.email_taken(req ->> 'email') THEN
		RETURN paas.register_existing(req, ctx);	-- the same answer; the owner gets a mail (75_notifications.sql)
	END IF;
	INSERT INTO paas.users (email, name, password_hash)
	VALUES (req ->> 'email', btrim(req ->> 'name'), paas.hash_password(req ->> 'password'))
	RETURNING * INTO u;
	PERFORM paas.login_succeeded(u.id, paas.login_client(ctx ->> 'ip'));
	RETURN paas.open_session(u, ctx);
END
$function$
;
COMMENT ON FUNCTION api.auth_register(jsonb,jsonb) IS 'POST /auth/register: creates a USER account and logs it in';
REVOKE ALL ON FUNCTION api.auth_register(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.auth_register(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.auth_register(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_balance(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	a paas.ledger_accounts;
BEGIN
	SELECT * INTO a FROM paas.ledger_accounts WHERE user_id = u.id;
	RETURN jsonb_build_object(
		'balance', coalesce(a.balance, 0),
		'currency', 'IDR',
		'accountId', a.id,
		'lastUpdated', paas.iso(coalesce(a.updated_at, u.created_at)),
		'user', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email));
END
$function$
;
COMMENT ON FUNCTION api.billing_balance(jsonb,jsonb) IS 'GET /billing/balance: the caller''s wallet balance in IDR';
REVOKE ALL ON FUNCTION api.billing_balance(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_balance(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_balance(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_balance_batch(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	PERFORM paas.check_batch(req);
	RETURN (SELECT jsonb_agg(api.billing_balance(t.e -> 'req', t.e -> 'ctx') ORDER BY t.n)
			  FROM jsonb_array_elements(req) WITH ORDINALITY AS t (e, n));
END
$function$
;
COMMENT ON FUNCTION api.billing_balance_batch(jsonb,jsonb) IS 'GET /billing/balance calls received together, answered in one call; results in order (the gateway''s batching)';
REVOKE ALL ON FUNCTION api.billing_balance_batch(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_balance_batch(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_balance_batch(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_dashboard_analytics(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_dashboard_analytics(jsonb,jsonb) IS 'GET /billing/dashboard/analytics: totals by type/status and by day (startDate, endDate)';
REVOKE ALL ON FUNCTION api.billing_dashboard_analytics(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_dashboard_analytics(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_dashboard_analytics(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_dashboard_overview(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_dashboard_overview(jsonb,jsonb) IS 'GET /billing/dashboard/overview: balance, pending top-ups, recent movements';
REVOKE ALL ON FUNCTION api.billing_dashboard_overview(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_dashboard_overview(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_dashboard_overview(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_invoice_get(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_invoice_get(jsonb,jsonb) IS 'GET /billing/invoices/:id (owner only)';
REVOKE ALL ON FUNCTION api.billing_invoice_get(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_invoice_get(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_invoice_get(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_invoice_pdf(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_invoice_pdf(jsonb,jsonb) IS 'GET /billing/invoices/:id/pdf: the invoice to render (owner only); counts downloads';
REVOKE ALL ON FUNCTION api.billing_invoice_pdf(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_invoice_pdf(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_invoice_pdf(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_invoices(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_invoices(jsonb,jsonb) IS 'GET /billing/invoices: page, limit, type, status, startDate, endDate';
REVOKE ALL ON FUNCTION api.billing_invoices(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_invoices(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_invoices(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_topup(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_topup(jsonb,jsonb) IS 'POST /billing/topup {amount, currency}: PENDING top-up + Snap link (two-step, see file header)';
REVOKE ALL ON FUNCTION api.billing_topup(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_topup(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_topup(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_topup_get(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_topup_get(jsonb,jsonb) IS 'GET /billing/topup/:id (owner only)';
REVOKE ALL ON FUNCTION api.billing_topup_get(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_topup_get(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_topup_get(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_topups(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_topups(jsonb,jsonb) IS 'GET /billing/topup: page, limit, status';
REVOKE ALL ON FUNCTION api.billing_topups(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_topups(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_topups(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_transaction_get(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_transaction_get(jsonb,jsonb) IS 'GET /billing/transactions/:id (owner only)';
REVOKE ALL ON FUNCTION api.billing_transaction_get(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_transaction_get(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_transaction_get(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_transaction_pay(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_transaction_pay(jsonb,jsonb) IS 'POST /billing/transactions/:id/pay: the live Snap link of a pending top-up, or a new one';
REVOKE ALL ON FUNCTION api.billing_transaction_pay(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_transaction_pay(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_transaction_pay(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_transactions(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_transactions(jsonb,jsonb) IS 'GET /billing/transactions: page, limit, type, status, startDate, endDate';
REVOKE ALL ON FUNCTION api.billing_transactions(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_transactions(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_transactions(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_webhook_midtrans(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION api.billing_webhook_midtrans(jsonb,jsonb) IS 'POST /billing/webhooks/midtrans (public): verified Midtrans notification, applied exactly once';
REVOKE ALL ON FUNCTION api.billing_webhook_midtrans(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_webhook_midtrans(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_webhook_midtrans(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.jobs_list(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN jsonb_build_object(
		'worker', (SELECT to_jsonb(w) FROM paas.worker_state() w),
		'jobs', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
					'name', j.name, 'function', j.fn::text,
					'runner', j.runner,
					'runEverySeconds', extract(epoch FROM j.run_every),
					'schedule', CASE WHEN j.runner = 'pg_cron' THEN paas.cron_job(j.name) ->> 'schedule' END,
					'enabled', j.enabled, 'nextRunAt', paas.iso(j.next_run_at),
					'description', j.description,
					'lastRun', (SELECT paas.job_run_json(r) FROM paas.job_run r
								 WHERE r.job = j.name ORDER BY r.started_at DESC LIMIT 1),
					'failuresLast24h', (SELECT count(*) FROM paas.job_run r
										 WHERE r.job = j.name AND NOT r.ok
										   AND r.started_at > now() - interval '24 hours'))
					ORDER BY j.name)
			  FROM paas.job j), '[]'));
END
$function$
;
COMMENT ON FUNCTION api.jobs_list(jsonb,jsonb) IS 'GET /admin/jobs: the worker''s state and every job with its last run (pg_cron''s jobs with their cron schedule)';
REVOKE ALL ON FUNCTION api.jobs_list(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.jobs_list(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.jobs_list(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.jobs_runs(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	lim int;
	total bigint;
	rows jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'job', false, 1, 63);
	errs := paas.check_bool(errs, req, 'ok', false);
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 20);
	SELECT count(*) INTO total FROM paas.job_run r
	 WHERE (req ->> 'job' IS NULL OR r.job = req ->> 'job')
	   AND (req ->> 'ok' IS NULL OR r.ok = (req ->> 'ok')::boolean);
	SELECT coalesce(jsonb_agg(paas.job_run_json(r) ORDER BY r.id DESC), '[]') INTO rows
	  FROM (SELECT * FROM paas.job_run r
			 WHERE (req ->> 'job' IS NULL OR r.job = req ->> 'job')
			   AND (req ->> 'ok' IS NULL OR r.ok = (req ->> 'ok')::boolean)
			 ORDER BY r.id DESC
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) r;
	RETURN jsonb_build_object('data', rows, 'pagination', paas.pagination(req, total, 20));
END
$function$
;
COMMENT ON FUNCTION api.jobs_runs(jsonb,jsonb) IS 'GET /admin/jobs/runs: recorded runs, newest first (job, ok, page, limit)';
REVOKE ALL ON FUNCTION api.jobs_runs(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.jobs_runs(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.jobs_runs(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.run_renewals()
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	t0 timestamptz := clock_timestamp();
	shards int := current_setting('paas.renewal_workers')::int;
	parts jsonb[];
	out jsonb;
	err text;
	state text;
BEGIN
	-- One run at a time: a second one waits here, then finds what the first
	-- renewed no longer due.
	PERFORM pg_advisory_xact_lock(hashtextextended('paas.run_renewals', 0));
	-- A DBA pauses renewals as any job: paas.job renewals, enabled = false.
	IF EXISTS (SELECT 1 FROM paas.job WHERE name = 'renewals' AND NOT enabled) THEN
		RETURN jsonb_build_object('ok', true, 'skipped', 'disabled in paas.job (renewals)');
	END IF;
	-- The run's work is a subtransaction: when it fails, what it did in this
	-- backend rolls back, the failure is recorded below and the call returns
	-- (a raised error would roll the record back too; pg_cron's
	-- job_run_details therefore says that the command ran, paas.job_run
	-- tells how it went).  Shards that ran in background workers committed
	-- on their own.  PostgreSQL counts the subtransaction as a transaction
	-- block, which paas.run_parallel does not start workers from: said here,
	-- at the top level, that this statement is a transaction of its own.
	PERFORM paas.run_parallel_begin();
	BEGIN
		-- The shards run at the same time in background workers, each
		-- charging its own users' wallets (paas.run_parallel; in a
		-- transaction block they run here, one after the other).
		IF shards > 1 THEN
			SELECT array_agg(r::jsonb ORDER BY i) INTO parts
			  FROM unnest(paas.run_parallel(ARRAY(
					SELECT format('SELECT paas.run_renewals_part(%s, %s)', i, shards)
					  FROM generate_series(0, shards - 1) i ORDER BY i))) WITH ORDINALITY AS t (r, i);
		ELSE
			parts := ARRAY[paas.run_renewals_part(0, 1)];
		END IF;
		SELECT jsonb_build_object(
			'ok', true,
			'examined', sum((p ->> 'examined')::bigint),
			'batches', sum((p ->> 'batches')::int),
			'passes', max((p ->> 'passes')::int),
			'renewed', sum((p ->> 'renewed')::bigint),
			'charged', sum((p ->> 'charged')::bigint),
			'toGrace', sum((p ->> 'toGrace')::bigint),
			'suspended', sum((p ->> 'suspended')::bigint),
			'expired', sum((p ->> 'expired')::bigint),
			'currency', 'IDR',
			'shards', shards,
			'inGrace', (SELECT count(*) FROM paas.subscriptions WHERE status = 'GRACE'),
			'ms', round(extract(epoch FROM clock_timestamp() - t0) * 1000))
		  INTO out FROM unnest(parts) p;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
		out := jsonb_build_object('ok', false, 'error', err, 'sqlstate', state, 'shards', shards,
								  'ms', round(extract(epoch FROM clock_timestamp() - t0) * 1000));
		RAISE WARNING 'renewal run failed: %', err
			USING DETAIL = format('SQLSTATE %s; recorded in paas.job_run (job renewals)', state);
	END;
	INSERT INTO paas.job_run (job, started_at, finished_at, ok, detail, error)
	SELECT j.name, t0, clock_timestamp(), err IS NULL, out, err FROM paas.job j WHERE j.name = 'renewals';
	RETURN out;
END
$function$
;
COMMENT ON FUNCTION api.run_renewals() IS 'renews every due subscription (pg_cron job paas-renewals; DBAs): charges, grace, suspension, expiry of cancelled periods; one run at a time, rows locked FOR UPDATE SKIP LOCKED, each period charged once; shards run in parallel in paas.renewal_workers background workers; records the run in paas.job_run (job renewals), a failed one too (the call then returns {ok: false, error, sqlstate} with a WARNING); does nothing while paas.job renewals is disabled; returns {ok, examined, batches, passes, renewed, charged, toGrace, suspended, expired, shards, inGrace, ms}';
REVOKE ALL ON FUNCTION api.run_renewals() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.run_renewals() TO paas_owner;

CREATE OR REPLACE FUNCTION api.seed_admin(email text, password text, name text DEFAULT 'System Administrator'::text)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb;
	uid uuid;
BEGIN
	errs := paas.check_email('[]', jsonb_build_object('email', email), 'email', true);
	errs := paas.check_password(errs, jsonb_build_object('password', password), 'password');
	PERFORM paas.raise_if_invalid(errs);
	SELECT id INTO uid FROM paas.users u WHERE lower(u.email) = lower(seed_admin.email) AND deleted_at IS NULL;
	IF FOUND THEN
		UPDATE paas.users SET role = 'ADMINISTRATOR', is_active = true, updated_at = now() WHERE id = uid;
		RETURN uid;
	END IF;
	INSERT INTO paas.users (email, name, password_hash, role)
	VALUES (seed_admin.email, seed_admin.name, paas.hash_password(seed_admin.password), 'ADMINISTRATOR')
	RETURNING id INTO uid;
	RETURN uid;
END
$function$
;
COMMENT ON FUNCTION api.seed_admin(text,text,text) IS 'creates (or promotes) an administrator; for set-up scripts and DBAs';
REVOKE ALL ON FUNCTION api.seed_admin(text,text,text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.seed_admin(text,text,text) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_admin_get(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO s FROM paas.services
	 WHERE id = paas.to_uuid(req ->> 'id') AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PS404';
	END IF;
	RETURN paas.service_json(s) || jsonb_build_object(
		-- the original's relation: the newest 100 (_count has them all)
		'subscriptions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
								'id', x.id, 'status', x.status, 'expiresAt', paas.iso(x.current_period_end),
								'user', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email))
								ORDER BY x.created_at DESC, x.id), '[]')
							FROM (SELECT * FROM paas.subscriptions WHERE service_id = s.id
								   ORDER BY created_at DESC, id LIMIT 100) x
							JOIN paas.users u ON u.id = x.user_id),
		'_count', paas.service_counts(s.id));
END
$function$
;
COMMENT ON FUNCTION api.services_admin_get(jsonb,jsonb) IS 'GET /services/admin/:id: every field of a service, active or not, its newest 100 subscriptions and _count';
REVOKE ALL ON FUNCTION api.services_admin_get(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_admin_get(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_admin_get(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_admin_list(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	r jsonb;
	pg jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'search', false, 1, 100);
	errs := paas.check_enum(errs, req, 'category', false, paas.service_category_names());
	errs := paas.check_enum(errs, req, 'status', false, ARRAY['active', 'inactive']);
	errs := paas.check_bool(errs, req, 'isActive', false);
	errs := paas.check_enum(errs, req, 'sortBy', false,
		ARRAY['createdAt', 'updatedAt', 'name', 'displayName', 'category', 'monthlyPrice']);
	errs := paas.check_enum(errs, req, 'sortOrder', false, ARRAY['asc', 'desc']);
	PERFORM paas.raise_if_invalid(errs);

	r := paas.services_page(req, false, 10);
	pg := paas.pagination(req, (r ->> 'total')::bigint);
	RETURN jsonb_build_object(
		'data', jsonb_build_object('services', r -> 'rows', 'pagination', jsonb_build_object(
			'currentPage', pg -> 'page', 'totalPages', pg -> 'totalPages',
			'totalCount', pg -> 'total', 'hasNext', pg -> 'hasNext', 'hasPrev', pg -> 'hasPrev')),
		'pagination', pg);
END
$function$
;
COMMENT ON FUNCTION api.services_admin_list(jsonb,jsonb) IS 'GET /services/admin: page, limit, search, category, status|isActive, sortBy, sortOrder';
REVOKE ALL ON FUNCTION api.services_admin_list(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_admin_list(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_admin_list(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_admin_stats(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'totalServices', count(*),
		'activeServices', count(*) FILTER (WHERE is_active),
		'inactiveServices', count(*) FILTER (WHERE NOT is_active),
		'byStatus', jsonb_build_object('active', count(*) FILTER (WHERE is_active),
									   'inactive', count(*) FILTER (WHERE NOT is_active)))
	  INTO r
	  FROM paas.services WHERE deleted_at IS NULL;
	-- the original's subscription figures: every subscription, the active
	-- ones (ACTIVE or GRACE: served and renewing), and the five services
	-- with the most subscriptions
	r := r || (SELECT jsonb_build_object('totalSubscriptions', count(*),
										 'activeSubscriptions', count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE')))
				 FROM paas.subscriptions)
		   || jsonb_build_object('popularServices', (
				SELECT coalesce(jsonb_agg(jsonb_build_object(
						'id', p.id, 'name', p.name, 'displayName', p.display_name,
						'_count', jsonb_build_object('subscriptions', p.n)) ORDER BY p.n DESC, p.name), '[]')
				  FROM (SELECT v.id, v.name, v.display_name,
							   (SELECT count(*) FROM paas.subscriptions x WHERE x.service_id = v.id) AS n
						  FROM paas.services v WHERE v.deleted_at IS NULL
						 ORDER BY n DESC, v.name LIMIT 5) p));
	RETURN r || jsonb_build_object('byCategory', (
		SELECT jsonb_agg(jsonb_build_object(
				'name', c.name, 'displayName', c.display_name, 'total', coalesce(n.total, 0),
				'active', coalesce(n.active, 0), 'inactive', coalesce(n.inactive, 0)) ORDER BY c.ord)
		  FROM paas.service_categories() c
		  LEFT JOIN (SELECT category, count(*) AS total,
							count(*) FILTER (WHERE is_active) AS active,
							count(*) FILTER (WHERE NOT is_active) AS inactive
					   FROM paas.services WHERE deleted_at IS NULL
					  GROUP BY category) n ON n.category = c.name));
END
$function$
;
COMMENT ON FUNCTION api.services_admin_stats(jsonb,jsonb) IS 'GET /services/admin/stats: service counts by status and by category, subscription totals, the five most subscribed services';
REVOKE ALL ON FUNCTION api.services_admin_stats(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_admin_stats(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_admin_stats(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_create(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	-- the column defaults, then the request
	s.category := 'other';
	s.version := 'latest';
	s.container_port := 80;
	s.cpu_request_m := 250;
	s.cpu_limit_m := 1000;
	s.mem_request_mib := 512;
	s.mem_limit_mib := 1024;
	s.storage_gib := 1;
	s.monthly_price := 0;
	s.features := '[]';
	s.environment_vars := '{}';
	s.is_active := true;
	s := paas.service_input(req, s, true);
	s.name := req ->> 'name';
	IF EXISTS (SELECT 1 FROM paas.services WHERE name = s.name AND deleted_at IS NULL) THEN
		RAISE EXCEPTION 'Service with this name already exists' USING ERRCODE = 'PS409';
	END IF;
	BEGIN
		INSERT INTO paas.services (name, display_name, description, category, version,
			docker_image, container_port, cpu_request_m, cpu_limit_m, mem_request_mib,
			mem_limit_mib, storage_gib, monthly_price, features, environment_vars, is_active)
		VALUES (s.name, s.display_name, s.description, s.category, s.version,
			s.docker_image, s.container_port, s.cpu_request_m, s.cpu_limit_m, s.mem_request_mib,
			s.mem_limit_mib, s.storage_gib, s.monthly_price, s.features, s.environment_vars, s.is_active)
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		-- a concurrent create of the same slug won
		RAISE EXCEPTION 'Service with this name already exists' USING ERRCODE = 'PS409';
	END;
	RETURN paas.service_json(s);
END
$function$
;
COMMENT ON FUNCTION api.services_create(jsonb,jsonb) IS 'POST /services: a catalog entry (slug unique among live services: PS409)';
REVOKE ALL ON FUNCTION api.services_create(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_create(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_create(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_delete(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.services;
	refs text[];
BEGIN
	PERFORM paas.require_admin(ctx);
	-- FOR UPDATE conflicts with the FOR KEY SHARE of a concurrent insert
	-- referencing the row, so no reference can appear after the check.
	s := paas.find_service(req ->> 'id');
	refs := paas.service_references(s.id);
	IF cardinality(refs) > 0 THEN
		RAISE EXCEPTION 'Cannot delete a service that is still in use'
			USING ERRCODE = 'PT409',
				  DETAIL = format('referenced by rows of: %s', array_to_string(refs, ', '));
	END IF;
	UPDATE paas.services SET deleted_at = now(), is_active = false, updated_at = now()
	 WHERE id = s.id
	RETURNING * INTO s;
	RETURN jsonb_build_object('id', s.id, 'name', s.name, 'displayName', s.display_name);
END
$function$
;
COMMENT ON FUNCTION api.services_delete(jsonb,jsonb) IS 'DELETE /services/:id: soft delete; PT409 while any row references the service';
REVOKE ALL ON FUNCTION api.services_delete(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_delete(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_delete(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_get_by_name(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.services;
BEGIN
	SELECT * INTO s FROM paas.services
	 WHERE name = lower(req ->> 'name') AND is_active AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PS404';
	END IF;
	RETURN paas.service_public_json(s);
END
$function$
;
COMMENT ON FUNCTION api.services_get_by_name(jsonb,jsonb) IS 'GET /services/:name: an active service by slug (inactive or unknown: PS404)';
REVOKE ALL ON FUNCTION api.services_get_by_name(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_get_by_name(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_get_by_name(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_list(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	r jsonb;
	cat text := req ->> 'category';
	lim int;
	total bigint;
	rows jsonb;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'search', false, 1, 100);
	errs := paas.check_enum(errs, req, 'category', false, paas.service_category_names());
	PERFORM paas.raise_if_invalid(errs);
	-- Clients of the original got the whole catalog: the default page is
	-- the largest one.
	IF req ->> 'search' IS NOT NULL THEN
		r := paas.services_page(req, true, 100);
		RETURN jsonb_build_object('data', r -> 'rows',
								  'pagination', paas.pagination(req, (r ->> 'total')::bigint, 100));
	END IF;
	-- The hot path (the catalog page): static SQL with a cached plan, a
	-- third of the cost of the dynamic query of paas.services_page.
	lim := coalesce((req ->> 'limit')::int, 100);
	SELECT count(*) INTO total FROM paas.services s
	 WHERE s.is_active AND s.deleted_at IS NULL AND (cat IS NULL OR s.category = cat);
	SELECT coalesce(jsonb_agg(paas.service_public_json(p.s) ORDER BY (p.s).display_name, (p.s).id), '[]')
	  INTO rows
	  FROM (SELECT s FROM paas.services s
			 WHERE s.is_active AND s.deleted_at IS NULL AND (cat IS NULL OR s.category = cat)
			 ORDER BY s.display_name, s.id
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) p;
	RETURN jsonb_build_object('data', rows, 'pagination', paas.pagination(req, total, 100));
END
$function$
;
COMMENT ON FUNCTION api.services_list(jsonb,jsonb) IS 'GET /services: active services by display name; category, search, page, limit (default 100)';
REVOKE ALL ON FUNCTION api.services_list(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_list(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_list(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_toggle_status(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	s := paas.find_service(req ->> 'id');
	UPDATE paas.services SET is_active = NOT is_active, updated_at = now()
	 WHERE id = s.id
	RETURNING * INTO s;
	RETURN paas.service_json(s);
END
$function$
;
COMMENT ON FUNCTION api.services_toggle_status(jsonb,jsonb) IS 'PATCH /services/:id/toggle-status: active <-> inactive';
REVOKE ALL ON FUNCTION api.services_toggle_status(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_toggle_status(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_toggle_status(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_update(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	s := paas.find_service(req ->> 'id');
	s := paas.service_input(req, s, false);
	UPDATE paas.services
	   SET display_name = s.display_name, description = s.description, category = s.category,
		   version = s.version, docker_image = s.docker_image, container_port = s.container_port,
		   cpu_request_m = s.cpu_request_m, cpu_limit_m = s.cpu_limit_m,
		   mem_request_mib = s.mem_request_mib, mem_limit_mib = s.mem_limit_mib,
		   storage_gib = s.storage_gib, monthly_price = s.monthly_price, features = s.features,
		   environment_vars = s.environment_vars, is_active = s.is_active, updated_at = now()
	 WHERE id = s.id
	RETURNING * INTO s;
	RETURN paas.service_json(s);
END
$function$
;
COMMENT ON FUNCTION api.services_update(jsonb,jsonb) IS 'PUT /services/:id: any field but the slug; a price change does not touch existing subscriptions';
REVOKE ALL ON FUNCTION api.services_update(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_update(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_update(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_admin_get(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.subscriptions;
	v paas.services;
	o paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO s FROM paas.subscriptions WHERE id = paas.to_uuid(req ->> 'id');
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Subscription not found' USING ERRCODE = 'PT404';
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	SELECT * INTO o FROM paas.users WHERE id = s.user_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object(
		'user', jsonb_build_object('id', o.id, 'name', o.name, 'email', o.email),
		'balance', paas.wallet_balance(s.user_id),
		'charges', (SELECT coalesce(jsonb_agg(paas.subscription_charge_json(c) ORDER BY c.period_no DESC), '[]')
					  FROM paas.subscription_charges c WHERE c.subscription_id = s.id),
		'events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
						'event', e.event, 'from', e.from_status, 'to', e.to_status,
						'actorId', e.actor_id, 'reason', e.reason,
						'createdAt', paas.iso(e.created_at)) ORDER BY e.id), '[]')
					 FROM paas.subscription_events e WHERE e.subscription_id = s.id));
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_admin_get(jsonb,jsonb) IS 'GET /admin/subscriptions/:id: any subscription with its owner, charges and status history';
REVOKE ALL ON FUNCTION api.subscriptions_admin_get(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_get(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_get(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_admin_list(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	uid uuid;
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_subscription_filters('[]', req));
	IF req ->> 'userId' IS NOT NULL THEN
		SELECT id INTO uid FROM paas.users WHERE id = paas.to_uuid(req ->> 'userId');
		IF NOT FOUND THEN
			RAISE EXCEPTION 'User not found' USING ERRCODE = 'PT404';
		END IF;
	END IF;
	r := paas.subscriptions_page(req, uid, 20);
	RETURN jsonb_build_object('data', r -> 'rows',
							  'pagination', paas.pagination(req, (r ->> 'total')::bigint, 20));
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_admin_list(jsonb,jsonb) IS 'GET /admin/subscriptions and /admin/subscriptions/users/:userId: userId, status, serviceId, page, limit';
REVOKE ALL ON FUNCTION api.subscriptions_admin_list(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_list(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_list(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_admin_notices(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	lim int;
	total bigint;
	rows jsonb;
	k text;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'notice', false, ARRAY['expiring_soon', 'grace', 'suspended']);
	PERFORM paas.raise_if_invalid(errs);
	k := req ->> 'notice';
	lim := coalesce((req ->> 'limit')::int, 20);
	SELECT count(*) INTO total FROM reporting.subscription_notices n WHERE k IS NULL OR n.notice = k;
	SELECT coalesce(jsonb_agg(jsonb_build_object(
				'notice', n.notice, 'subscriptionId', n.subscription_id,
				'user', jsonb_build_object('id', n.user_id, 'email', n.user_email, 'name', n.user_name),
				'service', jsonb_build_object('id', n.service_id, 'name', n.service_name,
											  'displayName', n.service_display_name),
				'status', n.status, 'price', n.price, 'balance', n.wallet_balance,
				'currentPeriodEnd', paas.iso(n.current_period_end),
				'graceUntil', paas.iso(n.grace_until), 'suspendedAt', paas.iso(n.suspended_at),
				'dueAt', paas.iso(n.due_at)) ORDER BY n.due_at, n.subscription_id), '[]')
	  INTO rows
	  FROM (SELECT * FROM reporting.subscription_notices x
			 WHERE k IS NULL OR x.notice = k
			 ORDER BY x.due_at, x.subscription_id
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) n;
	RETURN jsonb_build_object('data', rows, 'pagination', paas.pagination(req, total, 20));
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_admin_notices(jsonb,jsonb) IS 'GET /admin/subscriptions/notices: expiring_soon, grace and suspended subscriptions; notice, page, limit';
REVOKE ALL ON FUNCTION api.subscriptions_admin_notices(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_notices(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_notices(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_admin_set_status(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	errs jsonb := '[]';
	s paas.subscriptions;
	v paas.services;
	prev text;
	ev text;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_enum(errs, req, 'status', true, ARRAY['ACTIVE', 'SUSPENDED', 'CANCELLED', 'EXPIRED']);
	errs := paas.check_text(errs, req, 'reason', true, 3, 500);
	s := paas.subscription_of(NULL, req ->> 'id');
	PERFORM paas.raise_if_invalid(errs);
	prev := s.status;
	ev := CASE req ->> 'status' WHEN 'ACTIVE' THEN 'activate' WHEN 'SUSPENDED' THEN 'suspend'
							   WHEN 'CANCELLED' THEN 'cancel' ELSE 'expire' END;
	s.status := paas.subscription_transition(s.status, ev);
	BEGIN
		UPDATE paas.subscriptions
		   SET status = s.status,
			   grace_until = NULL,
			   cancelled_at = CASE s.status WHEN 'CANCELLED' THEN coalesce(cancelled_at, now())
							  WHEN 'ACTIVE' THEN NULL ELSE cancelled_at END,
			   suspended_at = CASE s.status WHEN 'SUSPENDED' THEN coalesce(suspended_at, now())
							  WHEN 'ACTIVE' THEN NULL ELSE suspended_at END,
			   ended_at = CASE s.status WHEN 'EXPIRED' THEN coalesce(ended_at, now()) END,
			   status_reason = req ->> 'reason', updated_at = now()
		 WHERE id = s.id
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'The user has another live subscription to this service'
			USING ERRCODE = 'PT409';
	END;
	PERFORM paas.subscription_log(s.id, 'admin_' || ev, prev, s.status, adm.id, req ->> 'reason');
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object('previousStatus', prev);
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_admin_set_status(jsonb,jsonb) IS 'PUT /admin/subscriptions/:id/status {status: ACTIVE|SUSPENDED|CANCELLED|EXPIRED, reason}: through the status machine (PT409 when illegal), without any charge or refund';
REVOKE ALL ON FUNCTION api.subscriptions_admin_set_status(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_set_status(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_set_status(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_admin_stats(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	r jsonb;
	cfg paas.subscription_settings := paas.subscription_config();
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'total', count(*),
		'byStatus', jsonb_build_object(
			'ACTIVE', count(*) FILTER (WHERE status = 'ACTIVE'),
			'GRACE', count(*) FILTER (WHERE status = 'GRACE'),
			'SUSPENDED', count(*) FILTER (WHERE status = 'SUSPENDED'),
			'CANCELLED', count(*) FILTER (WHERE status = 'CANCELLED'),
			'EXPIRED', count(*) FILTER (WHERE status = 'EXPIRED')),
		'monthlyRecurringRevenue', coalesce(sum(price) FILTER (WHERE status IN ('ACTIVE', 'GRACE')), 0),
		'dueNow', count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE', 'CANCELLED')
										 AND current_period_end <= now()),
		'renewingWithin', jsonb_build_object(
			'window', cfg.expiring_within::text,
			'count', count(*) FILTER (WHERE status = 'ACTIVE'
										   AND current_period_end <= now() + cfg.expiring_within)),
		'gracePeriod', cfg.grace_period::text,
		'currency', 'IDR')
	  INTO r
	  FROM paas.subscriptions;
	RETURN r || jsonb_build_object(
		'chargesLast30Days', (SELECT jsonb_build_object('count', count(*), 'amount', coalesce(sum(amount), 0))
								FROM paas.subscription_charges
							   WHERE created_at >= now() - interval '30 days'),
		-- the subscription counts the catalog's own statistics leave out
		'byService', (SELECT coalesce(jsonb_agg(jsonb_build_object(
							'serviceId', v.id, 'name', v.name, 'displayName', v.display_name,
							'live', n.live, 'active', n.active, 'total', n.total,
							'monthlyRecurringRevenue', n.mrr) ORDER BY n.live DESC, v.name), '[]')
						FROM (SELECT service_id, count(*) AS total,
									 count(*) FILTER (WHERE status <> 'EXPIRED') AS live,
									 count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE')) AS active,
									 coalesce(sum(price) FILTER (WHERE status IN ('ACTIVE', 'GRACE')), 0) AS mrr
								FROM paas.subscriptions GROUP BY service_id) n
						JOIN paas.services v ON v.id = n.service_id));
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_admin_stats(jsonb,jsonb) IS 'GET /admin/subscriptions/stats: counts by status and by service, recurring revenue, due now, charges of 30 days';
REVOKE ALL ON FUNCTION api.subscriptions_admin_stats(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_stats(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_admin_stats(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_cancel(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	s paas.subscriptions := paas.subscription_of(u.id, req ->> 'id');
	v paas.services;
	prev text := s.status;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_text('[]', req, 'reason', false, 0, 500));
	s.status := paas.subscription_transition(s.status, 'cancel');
	UPDATE paas.subscriptions
	   SET status = s.status, cancelled_at = now(), grace_until = NULL,
		   status_reason = req ->> 'reason', updated_at = now()
	 WHERE id = s.id
	RETURNING * INTO s;
	PERFORM paas.subscription_log(s.id, 'cancel', prev, s.status, u.id, req ->> 'reason');
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object(
		'accessUntil', paas.iso(greatest(s.current_period_end, now())), 'refund', 0);
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_cancel(jsonb,jsonb) IS 'DELETE /subscriptions/:id: cancels at the end of the paid period, no refund; PT409 when already cancelled or ended';
REVOKE ALL ON FUNCTION api.subscriptions_cancel(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_cancel(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_cancel(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_create(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
	key text := ctx ->> 'idempotencyKey';
	sid uuid;
	s paas.subscriptions;
	v paas.services;
	paid jsonb;
	prior jsonb := paas.outcome_claim('api.subscriptions_create', req, ctx);
BEGIN
	IF prior IS NOT NULL THEN
		RETURN prior || jsonb_build_object('replayed', true);
	END IF;
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'serviceId', true, 1, 64);
	PERFORM paas.raise_if_invalid(errs);
	-- an id that cannot exist finds no service (404), like an unknown one
	sid := paas.filter_id(req ->> 'serviceId');

	-- A retried request answers the subscription it created.
	IF key IS NOT NULL THEN
		SELECT * INTO s FROM paas.subscriptions WHERE user_id = u.id AND idempotency_key = key;
		IF FOUND THEN
			IF s.service_id <> sid THEN
				RAISE EXCEPTION 'Idempotency-Key was already used for another request'
					USING ERRCODE = 'PT409';
			END IF;
			SELECT * INTO v FROM paas.services WHERE id = s.service_id;
			RETURN paas.outcome_save(ctx, paas.subscription_json(s, v) || jsonb_build_object('replayed', true,
				'charge', (SELECT paas.subscription_charge_json(c) FROM paas.subscription_charges c
							WHERE c.subscription_id = s.id AND c.period_no = 1)));
		END IF;
	END IF;

	-- The catalog's DELETE locks the row FOR UPDATE: it cannot run between
	-- this check and the insert that references the service.
	SELECT * INTO v FROM paas.services WHERE id = sid FOR KEY SHARE;
	IF NOT FOUND OR v.deleted_at IS NOT NULL OR NOT v.is_active THEN
		RAISE EXCEPTION 'Service not found or inactive' USING ERRCODE = 'PT404';
	END IF;
	IF EXISTS (SELECT 1 FROM paas.subscriptions x
				WHERE x.user_id = u.id AND x.service_id = v.id AND x.status <> 'EXPIRED'
				  AND (key IS NULL OR x.idempotency_key IS DISTINCT FROM key)) THEN
		RAISE EXCEPTION 'You already have a subscription to this service'
			USING ERRCODE = 'PT409',
				  HINT = 'Renew the existing subscription instead (PUT /subscriptions/:id/renew).';
	END IF;
	PERFORM paas.instance_capacity_check(v.id);

	BEGIN
		INSERT INTO paas.subscriptions (user_id, service_id, price, anchor_at, current_period_start,
										current_period_end, idempotency_key)
		VALUES (u.id, v.id, v.monthly_price, now(), now(), paas.subscription_bound(now(), 1), key)
		ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		-- A concurrent request subscribed first.  With this key it is a
		-- double submit (its row reached the live index before the key
		-- index): answer it below; with another key it is a conflict.
		IF key IS NULL OR NOT EXISTS (SELECT 1 FROM paas.subscriptions x
									   WHERE x.user_id = u.id AND x.idempotency_key = key) THEN
			RAISE EXCEPTION 'You already have a subscription to this service' USING ERRCODE = 'PT409';
		END IF;
	END;
	IF s.id IS NULL THEN
		-- a concurrent request with the same key won: answer its result
		RETURN api.subscriptions_create(req, ctx);
	END IF;

	paid := paas.subscription_charge(s, v, 'purchase', 'subscription_charge', NULL);
	PERFORM paas.subscription_log(s.id, 'create', NULL, s.status, u.id, NULL);
	RETURN paas.outcome_save(ctx, paas.subscription_json(s, v) || jsonb_build_object('replayed', false) || paid);
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_create(jsonb,jsonb) IS 'POST /subscriptions {serviceId}: charges the first month from the wallet and invoices it; PT404 unknown or inactive service, PT409 live subscription exists, PT402 wallet short; ctx.idempotencyKey makes a retry answer the first subscription';
REVOKE ALL ON FUNCTION api.subscriptions_create(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_create(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_create(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_get(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	s paas.subscriptions;
	v paas.services;
BEGIN
	SELECT * INTO s FROM paas.subscriptions
	 WHERE id = paas.to_uuid(req ->> 'id') AND user_id = u.id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Subscription not found' USING ERRCODE = 'PT404';
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object(
		'instance', paas.subscription_instance_json(s.id),
		'charges', (SELECT coalesce(jsonb_agg(paas.subscription_charge_json(c) ORDER BY c.period_no DESC), '[]')
					  FROM paas.subscription_charges c WHERE c.subscription_id = s.id));
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_get(jsonb,jsonb) IS 'GET /subscriptions/:id: one of the caller''s subscriptions with its paid periods';
REVOKE ALL ON FUNCTION api.subscriptions_get(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_get(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_get(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_list(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	r jsonb;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_subscription_filters('[]', req));
	r := paas.subscriptions_page(req, u.id, 10);
	RETURN jsonb_build_object('data', r -> 'rows',
							  'pagination', paas.pagination(req, (r ->> 'total')::bigint));
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_list(jsonb,jsonb) IS 'GET /subscriptions: the caller''s subscriptions, newest first; status, serviceId, page, limit';
REVOKE ALL ON FUNCTION api.subscriptions_list(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_list(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_list(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_renew(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	key text := ctx ->> 'idempotencyKey';
	prior jsonb := paas.outcome_claim('api.subscriptions_renew', req, ctx);
	s paas.subscriptions;
	v paas.services;
	old paas.subscriptions;
	revive boolean;
	paid jsonb;
BEGIN
	IF prior IS NOT NULL THEN
		RETURN prior || jsonb_build_object('replayed', true);
	END IF;
	s := paas.subscription_of(u.id, req ->> 'id');
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	IF key IS NOT NULL AND EXISTS (SELECT 1 FROM paas.subscription_charges c
									WHERE c.subscription_id = s.id AND c.idempotency_key = key) THEN
		RETURN paas.outcome_save(ctx, paas.subscription_json(s, v) || jsonb_build_object('replayed', true,
			'charge', (SELECT paas.subscription_charge_json(c) FROM paas.subscription_charges c
						WHERE c.subscription_id = s.id AND c.idempotency_key = key)));
	END IF;

	old := s;
	revive := s.status IN ('SUSPENDED', 'EXPIRED')
			  OR (s.status = 'CANCELLED' AND s.current_period_end <= now());
	IF revive AND (v.deleted_at IS NOT NULL OR NOT v.is_active) THEN
		RAISE EXCEPTION 'Service is no longer available' USING ERRCODE = 'PT409';
	END IF;
	PERFORM paas.instance_capacity_check(v.id, s.id) WHERE revive;
	s.status := paas.subscription_transition(s.status, 'renew');
	s.period_no := s.period_no + 1;
	IF revive THEN
		s.price := v.monthly_price;
		s.anchor_at := now();
		s.anchor_period := s.period_no;
		s.current_period_start := now();
	ELSE
		s.current_period_start := s.current_period_end;
	END IF;
	s.current_period_end := paas.subscription_bound(s.anchor_at, s.period_no - s.anchor_period + 1);
	s.grace_until := NULL;
	s.cancelled_at := NULL;
	s.suspended_at := NULL;
	s.ended_at := NULL;
	s.status_reason := NULL;
	s.updated_at := now();
	BEGIN
		UPDATE paas.subscriptions
		   SET status = s.status, price = s.price, period_no = s.period_no, anchor_at = s.anchor_at,
			   anchor_period = s.anchor_period, current_period_start = s.current_period_start,
			   current_period_end = s.current_period_end, grace_until = NULL, cancelled_at = NULL,
			   suspended_at = NULL, ended_at = NULL, status_reason = NULL, updated_at = now()
		 WHERE id = s.id;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'You already have another subscription to this service'
			USING ERRCODE = 'PT409';
	END;
	paid := paas.subscription_charge(s, v, CASE WHEN revive THEN 'revival' ELSE 'manual_renewal' END,
									 'subscription_renewal', key);
	IF old.status <> s.status THEN
		PERFORM paas.subscription_log(s.id, 'renew', old.status, s.status, u.id,
									  CASE WHEN revive THEN 'revived by the owner' ELSE 'renewed by the owner' END);
	END IF;
	RETURN paas.outcome_save(ctx, paas.subscription_json(s, v) || jsonb_build_object('replayed', false) || paid);
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_renew(jsonb,jsonb) IS 'PUT /subscriptions/:id/renew: pays one more period now (revives SUSPENDED/EXPIRED at the list price); PT402 wallet short, PT404 not the caller''s; ctx.idempotencyKey makes a retry charge nothing';
REVOKE ALL ON FUNCTION api.subscriptions_renew(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_renew(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_renew(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_renewals_job(runs integer DEFAULT 10)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	lim integer := least(greatest(coalesce(runs, 10), 0), 1000);
	cj jsonb := paas.cron_job('renewals');
	cron_runs jsonb;
BEGIN
	IF cj IS NOT NULL AND to_regclass('cron.job_run_details') IS NOT NULL THEN
		EXECUTE $q$SELECT coalesce(jsonb_agg(jsonb_build_object(
						'runId', d.runid, 'status', d.status, 'returnMessage', d.return_message,
						'startedAt', paas.iso(d.start_time), 'finishedAt', paas.iso(d.end_time))
						ORDER BY d.runid DESC), '[]')
					 FROM (SELECT * FROM cron.job_run_details WHERE jobid = $1
							ORDER BY runid DESC LIMIT $2) d$q$
		   INTO cron_runs USING (cj ->> 'jobId')::bigint, lim;
	END IF;
	RETURN jsonb_build_object(
		'job', cj,
		'enabled', (SELECT j.enabled FROM paas.job j WHERE j.name = 'renewals'),
		'cronRuns', coalesce(cron_runs, '[]'),
		'runs', (SELECT coalesce(jsonb_agg(paas.job_run_json(r) ORDER BY r.id DESC), '[]')
				   FROM (SELECT * FROM paas.job_run r0 WHERE r0.job = 'renewals'
						  ORDER BY r0.id DESC LIMIT lim) r));
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_renewals_job(integer) IS 'DBA: the pg_cron job paas-renewals (NULL when not scheduled), whether paas.job renewals is enabled, the last runs as pg_cron recorded them (cronRuns) and their outcomes (runs, from paas.job_run)';
REVOKE ALL ON FUNCTION api.subscriptions_renewals_job(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_renewals_job(integer) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_schedule_renewals(schedule text DEFAULT '*/5 * * * *'::text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	job bigint;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'pg_cron is not installed in this database'
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'CREATE EXTENSION pg_cron (cron.database_name must name this database).';
	END IF;
	-- cron.schedule with a job name replaces that job: calling this again
	-- changes the schedule and never adds a second job.
	EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
	  USING 'paas-renewals', coalesce(schedule, '*/5 * * * *'), 'SELECT api.run_renewals()';
	RETURN jsonb_build_object('jobId', job, 'jobName', 'paas-renewals',
							  'schedule', coalesce(schedule, '*/5 * * * *'),
							  'command', 'SELECT api.run_renewals()', 'runsAs', current_user);
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_schedule_renewals(text) IS 'DBA: schedules (or reschedules) the pg_cron job paas-renewals running api.run_renewals(), default every 5 minutes; the job runs as the function owner';
REVOKE ALL ON FUNCTION api.subscriptions_schedule_renewals(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_schedule_renewals(text) TO paas_owner;

CREATE OR REPLACE FUNCTION api.subscriptions_stats(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users := paas.require_user(ctx);
	r jsonb;
	bal bigint := paas.wallet_balance(u.id);
BEGIN
	SELECT jsonb_build_object(
		'total', count(*),
		'activeCount', count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE')),
		'byStatus', jsonb_build_object(
			'ACTIVE', count(*) FILTER (WHERE status = 'ACTIVE'),
			'GRACE', count(*) FILTER (WHERE status = 'GRACE'),
			'SUSPENDED', count(*) FILTER (WHERE status = 'SUSPENDED'),
			'CANCELLED', count(*) FILTER (WHERE status = 'CANCELLED'),
			'EXPIRED', count(*) FILTER (WHERE status = 'EXPIRED')),
		'monthlySpend', coalesce(sum(price) FILTER (WHERE status IN ('ACTIVE', 'GRACE')), 0),
		'currency', 'IDR',
		'balance', bal)
	  INTO r
	  FROM paas.subscriptions WHERE user_id = u.id;
	RETURN r || jsonb_build_object(
		'balanceCoversNextRenewals', bal >= (r ->> 'monthlySpend')::bigint,
		'totalSpent', (SELECT coalesce(sum(c.amount), 0) FROM paas.subscription_charges c
						JOIN paas.subscriptions s ON s.id = c.subscription_id
					   WHERE s.user_id = u.id),
		'nextRenewals', (SELECT coalesce(jsonb_agg(jsonb_build_object(
								'subscriptionId', s.id, 'serviceId', v.id, 'serviceName', v.name,
								'displayName', v.display_name, 'status', s.status,
								'renewsAt', paas.iso(s.current_period_end), 'amount', s.price)
								ORDER BY s.current_period_end, s.id), '[]')
						   FROM (SELECT * FROM paas.subscriptions x
								  WHERE x.user_id = u.id AND x.status IN ('ACTIVE', 'GRACE')
								  ORDER BY x.current_period_end, x.id LIMIT 5) s
						   JOIN paas.services v ON v.id = s.service_id));
END
$function$
;
COMMENT ON FUNCTION api.subscriptions_stats(jsonb,jsonb) IS 'GET /subscriptions/stats: counts by status, monthly spend, balance, the next 5 renewals';
REVOKE ALL ON FUNCTION api.subscriptions_stats(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions_stats(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.subscriptions_stats(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.users_bulk(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	admin paas.users := paas.require_admin(ctx);
	errs jsonb := '[]';
	ids uuid[];
	missing jsonb;
	act text;
	n integer;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_enum(errs, req, 'action', true, ARRAY['activate', 'deactivate', 'delete', 'set-role']);
	IF jsonb_typeof(req -> 'ids') IS DISTINCT FROM 'array' OR jsonb_array_length(req -> 'ids') = 0 THEN
		errs := paas.add_err(errs, 'ids', 'ids must be a non-empty array');
	ELSIF jsonb_array_length(req -> 'ids') > 1000 THEN
		errs := paas.add_err(errs, 'ids', 'ids must hold at most 1000 entries');
	ELSIF EXISTS (SELECT 1 FROM jsonb_array_elements(req -> 'ids') e WHERE jsonb_typeof(e) <> 'string') THEN
		errs := paas.add_err(errs, 'ids', 'ids must be user ids (strings)');
	END IF;
	IF req ->> 'action' = 'set-role' THEN
		errs := paas.check_enum(errs, req, 'role', true, ARRAY['USER', 'ADMINISTRATOR']);
	END IF;
	PERFORM paas.raise_if_invalid(errs);

	act := req ->> 'action';
	IF act <> 'activate' THEN
		PERFORM paas.lock_admins(admin);
	END IF;
	-- an id that cannot be one is missing like any unknown id (404)
	SELECT array_agg(DISTINCT paas.to_uuid(e #>> '{}')) FILTER (WHERE paas.to_uuid(e #>> '{}') IS NOT NULL)
	  INTO ids FROM jsonb_array_elements(req -> 'ids') e;
	PERFORM 1 FROM paas.users WHERE id = ANY (ids) AND deleted_at IS NULL ORDER BY id FOR UPDATE;
	SELECT jsonb_agg(DISTINCT e #>> '{}') INTO missing FROM jsonb_array_elements(req -> 'ids') e
	 WHERE NOT EXISTS (SELECT 1 FROM paas.users u
						WHERE u.id = paas.to_uuid(e #>> '{}') AND u.deleted_at IS NULL);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'Some users were not found; nothing was changed'
			USING ERRCODE = 'PU404', DETAIL = (SELECT jsonb_agg(jsonb_build_object('field', 'ids', 'message', m #>> '{}'))
											   FROM jsonb_array_elements(missing) m)::text;
	END IF;
	IF admin.id = ANY (ids) THEN
		PERFORM paas.guard_self(admin, admin.id, act = 'deactivate',
								CASE WHEN act = 'set-role' THEN req ->> 'role' END, act = 'delete');
	END IF;

	UPDATE paas.users
	   SET is_active = CASE act WHEN 'activate' THEN true WHEN 'deactivate' THEN false
							   WHEN 'delete' THEN false ELSE is_active END,
		   deleted_at = CASE WHEN act = 'delete' THEN now() ELSE deleted_at END,
		   role = CASE WHEN act = 'set-role' THEN req ->> 'role' ELSE role END,
		   updated_at = now()
	 WHERE id = ANY (ids);
	GET DIAGNOSTICS n = ROW_COUNT;
	IF act <> 'activate' THEN
		PERFORM paas.check_admin_left();
	END IF;
	IF act IN ('deactivate', 'delete') THEN
		UPDATE paas.sessions SET revoked_at = now(), revoke_reason = 'bulk ' || act
		 WHERE user_id = ANY (ids) AND revoked_at IS NULL;
		PERFORM paas.subscriptions_cancel_for_users(ids, format('account %s by an administrator (bulk)',
			CASE act WHEN 'delete' THEN 'deleted' ELSE 'deactivated' END), admin.id);
	END IF;
	RETURN jsonb_build_object('action', act, 'affected', n);
END
$function$
;
COMMENT ON FUNCTION api.users_bulk(jsonb,jsonb) IS 'POST /users/bulk: activate | deactivate | delete | set-role over ids, all or nothing';
REVOKE ALL ON FUNCTION api.users_bulk(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.users_bulk(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.users_bulk(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.users_create(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	u paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'name', true, 2, 100);
	errs := paas.check_email(errs, req, 'email', true);
	errs := paas.check_password(errs, req, 'password');
	errs := paas.check_enum(errs, req, 'role', false, ARRAY['USER', 'ADMINISTRATOR']);
	errs := paas.check_bool(errs, req, 'isActive', false);
	PERFORM paas.raise_if_invalid(errs);
	IF paas.email_taken(req ->> 'email') THEN
		RAISE EXCEPTION 'User with this email already exists' USING ERRCODE = 'PU409';
	END IF;
	INSERT INTO paas.users (email, name, password_hash, role, is_active)
	VALUES (req ->> 'email', btrim(req ->> 'name'), paas.hash_password(req ->> 'password'),
			coalesce(req ->> 'role', 'USER'), coalesce((req ->> 'isActive')::boolean, true))
	RETURNING * INTO u;
	RETURN paas.user_json(u);
END
$function$
;
COMMENT ON FUNCTION api.users_create(jsonb,jsonb) IS 'POST /users: an account of any role';
REVOKE ALL ON FUNCTION api.users_create(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.users_create(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.users_create(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.users_delete(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	admin paas.users := paas.require_admin(ctx);
	u paas.users;
BEGIN
	PERFORM paas.lock_admins(admin);
	u := paas.find_user(req ->> 'id');
	PERFORM paas.guard_self(admin, u.id, false, NULL, true);
	UPDATE paas.users SET deleted_at = now(), is_active = false, updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
	PERFORM paas.check_admin_left();
	PERFORM paas.revoke_sessions(u.id, 'deleted by an administrator');
	PERFORM paas.subscriptions_cancel_for_users(ARRAY[u.id], 'account deleted by an administrator', admin.id);
	RETURN jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email, 'role', u.role);
END
$function$
;
COMMENT ON FUNCTION api.users_delete(jsonb,jsonb) IS 'DELETE /users/:id: soft delete (history is kept), sessions revoked';
REVOKE ALL ON FUNCTION api.users_delete(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.users_delete(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.users_delete(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.users_get(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	u := paas.read_user(req ->> 'id');
	RETURN paas.user_json(u) || jsonb_build_object(
		'lastLoginAt', paas.iso(u.last_login_at),
		'activeSessions', (SELECT count(*) FROM paas.sessions
							WHERE user_id = u.id AND revoked_at IS NULL AND expires_at > now()),
		-- the original's relation: the newest 100 (_count has them all)
		'subscriptions', (SELECT coalesce(jsonb_agg(jsonb_build_object(
								'id', x.id, 'status', x.status, 'expiresAt', paas.iso(x.current_period_end),
								'service', jsonb_build_object('id', v.id, 'name', v.name, 'displayName', v.display_name))
								ORDER BY x.created_at DESC, x.id), '[]')
							FROM (SELECT * FROM paas.subscriptions WHERE user_id = u.id
								   ORDER BY created_at DESC, id LIMIT 100) x
							JOIN paas.services v ON v.id = x.service_id),
		'_count', paas.user_counts(u.id));
END
$function$
;
COMMENT ON FUNCTION api.users_get(jsonb,jsonb) IS 'GET /users/:id: the account, its sessions, its newest 100 subscriptions and _count';
REVOKE ALL ON FUNCTION api.users_get(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.users_get(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.users_get(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.users_list(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	lim int;
	off int;
	total bigint;
	rows jsonb;
	sort_col text;
	sort_dir text;
	search text;
	pg jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_text(errs, req, 'search', false, 1, 100);
	errs := paas.check_enum(errs, req, 'role', false, ARRAY['USER', 'ADMINISTRATOR']);
	errs := paas.check_bool(errs, req, 'isActive', false);
	errs := paas.check_enum(errs, req, 'sortBy', false, ARRAY['createdAt', 'updatedAt', 'name', 'email', 'role']);
	errs := paas.check_enum(errs, req, 'sortOrder', false, ARRAY['asc', 'desc']);
	PERFORM paas.raise_if_invalid(errs);

	lim := coalesce((req ->> 'limit')::int, 10);
	off := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	sort_col := CASE req ->> 'sortBy' WHEN 'updatedAt' THEN 'u.updated_at' WHEN 'name' THEN 'u.name'
				WHEN 'email' THEN 'lower(u.email)' WHEN 'role' THEN 'u.role' ELSE 'u.created_at' END;
	sort_dir := CASE WHEN req ->> 'sortOrder' = 'asc' THEN 'ASC' ELSE 'DESC' END;

	search := replace(replace(replace(req ->> 'search', '\', '\\'), '%', '\%'), '_', '\_');
	SELECT count(*) INTO total FROM paas.users u
	 WHERE u.deleted_at IS NULL
	   AND (search IS NULL OR (u.name || ' ' || u.email) ILIKE '%' || search || '%')
	   AND (req ->> 'role' IS NULL OR u.role = req ->> 'role')
	   AND (req ->> 'isActive' IS NULL OR u.is_active = (req ->> 'isActive')::boolean);

	EXECUTE format($q$
		SELECT coalesce(jsonb_agg(paas.user_json(s.u) || jsonb_build_object('_count', paas.user_counts((s.u).id))
								  ORDER BY s.rn), '[]')
		  FROM (SELECT u, row_number() OVER (ORDER BY %1$s %2$s, u.id) AS rn
				  FROM paas.users u
				 WHERE u.deleted_at IS NULL
				   AND ($1 IS NULL OR (u.name || ' ' || u.email) ILIKE '%%' || $1 || '%%')
				   AND ($2 IS NULL OR u.role = $2)
				   AND ($3 IS NULL OR u.is_active = $3)
				 ORDER BY %1$s %2$s, u.id
				 LIMIT $4 OFFSET $5) s
		$q$, sort_col, sort_dir)
	INTO rows
	USING search, req ->> 'role', (req ->> 'isActive')::boolean, lim, off;

	pg := paas.pagination(req, total);
	RETURN jsonb_build_object(
		'data', jsonb_build_object('users', rows, 'pagination', jsonb_build_object(
			'currentPage', pg -> 'page', 'totalPages', pg -> 'totalPages',
			'totalCount', total, 'hasNext', pg -> 'hasNext', 'hasPrev', pg -> 'hasPrev')),
		'pagination', pg);
END
$function$
;
COMMENT ON FUNCTION api.users_list(jsonb,jsonb) IS 'GET /users: page, limit, search, role, isActive, sortBy, sortOrder';
REVOKE ALL ON FUNCTION api.users_list(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.users_list(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.users_list(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.users_set_password(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	u paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_password(errs, req, 'newPassword');
	PERFORM paas.raise_if_invalid(errs);
	u := paas.find_user(req ->> 'id');
	UPDATE paas.users
	   SET password_hash = paas.hash_password(req ->> 'newPassword'),
		   password_changed_at = now(), updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
	PERFORM paas.revoke_sessions(u.id, 'password reset by an administrator');
	RETURN paas.user_json(u);
END
$function$
;
COMMENT ON FUNCTION api.users_set_password(jsonb,jsonb) IS 'PATCH /users/:id/password: sets a password and revokes the user''s sessions';
REVOKE ALL ON FUNCTION api.users_set_password(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.users_set_password(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.users_set_password(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.users_stats(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'totalUsers', count(*),
		'activeUsers', count(*) FILTER (WHERE is_active),
		'inactiveUsers', count(*) FILTER (WHERE NOT is_active),
		'adminUsers', count(*) FILTER (WHERE role = 'ADMINISTRATOR'),
		'regularUsers', count(*) FILTER (WHERE role = 'USER'),
		'byRole', jsonb_build_object('USER', count(*) FILTER (WHERE role = 'USER'),
									 'ADMINISTRATOR', count(*) FILTER (WHERE role = 'ADMINISTRATOR')),
		'newLast7Days', count(*) FILTER (WHERE created_at > now() - interval '7 days'),
		'newLast30Days', count(*) FILTER (WHERE created_at > now() - interval '30 days'))
	  INTO r
	  FROM paas.users WHERE deleted_at IS NULL;
	RETURN r;
END
$function$
;
COMMENT ON FUNCTION api.users_stats(jsonb,jsonb) IS 'GET /users/stats: counts by role, state and age';
REVOKE ALL ON FUNCTION api.users_stats(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.users_stats(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.users_stats(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.users_toggle_status(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	admin paas.users := paas.require_admin(ctx);
	u paas.users;
BEGIN
	PERFORM paas.lock_admins(admin);
	u := paas.find_user(req ->> 'id');
	PERFORM paas.guard_self(admin, u.id, u.is_active, NULL, false);
	UPDATE paas.users SET is_active = NOT is_active, updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
	PERFORM paas.check_admin_left();
	IF NOT u.is_active THEN
		PERFORM paas.revoke_sessions(u.id, 'deactivated by an administrator');
		PERFORM paas.subscriptions_cancel_for_users(ARRAY[u.id], 'account deactivated by an administrator', admin.id);
	END IF;
	RETURN paas.user_json(u);
END
$function$
;
COMMENT ON FUNCTION api.users_toggle_status(jsonb,jsonb) IS 'PATCH /users/:id/toggle-status';
REVOKE ALL ON FUNCTION api.users_toggle_status(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.users_toggle_status(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.users_toggle_status(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.users_update(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	admin paas.users := paas.require_admin(ctx);
	errs jsonb := '[]';
	u paas.users;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'name', false, 2, 100);
	errs := paas.check_email(errs, req, 'email', false);
	errs := paas.check_enum(errs, req, 'role', false, ARRAY['USER', 'ADMINISTRATOR']);
	errs := paas.check_bool(errs, req, 'isActive', false);
	IF NOT (req ?| ARRAY['name', 'email', 'role', 'isActive']) THEN
		errs := paas.add_err(errs, '', 'at least one of name, email, role, isActive is required');
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	IF req ?| ARRAY['role', 'isActive'] THEN
		PERFORM paas.lock_admins(admin);
	END IF;
	u := paas.find_user(req ->> 'id');
	PERFORM paas.guard_self(admin, u.id, (req ->> 'isActive')::boolean IS FALSE, req ->> 'role', false);
	IF req ? 'email' AND paas.email_taken(req ->> 'email', u.id) THEN
		RAISE EXCEPTION 'Email already exists' USING ERRCODE = 'PE409';
	END IF;
	UPDATE paas.users
	   SET name = coalesce(btrim(req ->> 'name'), name),
		   email = coalesce(req ->> 'email', email),
		   role = coalesce(req ->> 'role', role),
		   is_active = coalesce((req ->> 'isActive')::boolean, is_active),
		   updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
	IF req ?| ARRAY['role', 'isActive'] THEN
		PERFORM paas.check_admin_left();
	END IF;
	IF NOT u.is_active THEN
		PERFORM paas.revoke_sessions(u.id, 'deactivated by an administrator');
		PERFORM paas.subscriptions_cancel_for_users(ARRAY[u.id], 'account deactivated by an administrator', admin.id);
	END IF;
	RETURN paas.user_json(u);
END
$function$
;
COMMENT ON FUNCTION api.users_update(jsonb,jsonb) IS 'PUT /users/:id: name, email, role, isActive';
REVOKE ALL ON FUNCTION api.users_update(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.users_update(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.users_update(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_create(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.node_check(errs, req, true);
	errs := paas.check_enum(errs, req, 'status', false, ARRAY['ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY']);
	errs := paas.check_bool(errs, req, 'isReady', false);
	errs := paas.check_bool(errs, req, 'isSchedulable', false);
	PERFORM paas.raise_if_invalid(errs);
	IF EXISTS (SELECT 1 FROM paas.nodes WHERE name = req ->> 'name') THEN
		RAISE EXCEPTION 'Worker node with this name already exists' USING ERRCODE = 'PW409';
	END IF;
	PERFORM paas.node_hostname_taken(req ->> 'hostname', NULL);
	INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage,
							status, is_ready, cordoned)
	VALUES (req ->> 'name', req ->> 'hostname', (req ->> 'ipAddress')::inet, 1, '', '0', '0',
			coalesce(req ->> 'status', 'PENDING'), coalesce((req ->> 'isReady')::boolean, false),
			NOT coalesce((req ->> 'isSchedulable')::boolean, true))
	RETURNING * INTO n;
	n := paas.node_write(n.id, req || jsonb_build_object('maxPods', coalesce(req -> 'maxPods', '30')));
	PERFORM paas.node_audit(n, NULL, 'admin_create', paas.node_actor(ctx), NULL);
	RETURN paas.node_json(n);
END
$function$
;
COMMENT ON FUNCTION api.workers_create(jsonb,jsonb) IS 'POST /workers: a node in the original field set (default PENDING; it gets a token by registering)';
REVOKE ALL ON FUNCTION api.workers_create(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_create(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_create(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_delete(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n paas.nodes;
BEGIN
	PERFORM paas.require_admin(ctx);
	n := paas.find_node(req ->> 'nodeId');
	DELETE FROM paas.nodes WHERE id = n.id;
	INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
	VALUES (n.id, n.name, n.status, n.status, 'admin_delete', paas.node_actor(ctx), 'deleted; node token revoked');
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status, 'hostname', n.hostname,
							  'ipAddress', host(n.ip_address));
END
$function$
;
COMMENT ON FUNCTION api.workers_delete(jsonb,jsonb) IS 'DELETE /workers/:nodeId: removes the node (its token stops working; the audit stays)';
REVOKE ALL ON FUNCTION api.workers_delete(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_delete(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_delete(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_get(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN paas.node_json(paas.read_node(req ->> 'nodeId'));
END
$function$
;
COMMENT ON FUNCTION api.workers_get(jsonb,jsonb) IS 'GET /workers/:nodeId (id or name)';
REVOKE ALL ON FUNCTION api.workers_get(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_get(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_get(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_heartbeat(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	key text := coalesce(req ->> 'nodeName', req ->> 'nodeId');
	body jsonb := req - 'nodeName' - 'nodeId';
	h bytea := paas.node_token_hash(ctx ->> 'nodeToken');
	nid uuid;
	rep paas.node_report;
	errs jsonb := '[]';
	ready boolean := true;
	ev text;
	agent_ts timestamptz;
	r record;
	n paas.nodes;
BEGIN
	-- Losing the last instants of heartbeats in a crash is harmless (the
	-- next one comes within the interval); not waiting for the WAL flush
	-- is what lets one server take a large fleet's heartbeats.
	PERFORM set_config('synchronous_commit', 'off', true);
	IF body <> '{}' THEN
		IF body ? 'isReady' AND jsonb_typeof(body -> 'isReady') <> 'boolean' THEN
			errs := paas.check_bool(errs, body, 'isReady', false);
		END IF;
		IF body ? 'status' THEN
			errs := paas.check_enum(errs, body, 'status', false, ARRAY['ACTIVE', 'NOT_READY']);
		END IF;
		rep := paas.node_report(body);
		errs := errs || rep.errs;
		IF body ? 'conditions' AND jsonb_typeof(body -> 'conditions') <> 'array' THEN
			errs := paas.add_err(errs, 'conditions', 'conditions must be an array');
		END IF;
		IF body ? 'agentTime' THEN
			BEGIN
				agent_ts := (body ->> 'agentTime')::timestamptz;
			EXCEPTION WHEN OTHERS THEN
				errs := paas.add_err(errs, 'agentTime', 'agentTime must be an ISO-8601 timestamp');
			END;
		END IF;
		IF jsonb_array_length(errs) = 0 THEN
			ready := coalesce((body ->> 'isReady')::boolean,
							  CASE body ->> 'status' WHEN 'ACTIVE' THEN true WHEN 'NOT_READY' THEN false END,
							  (SELECT c ->> 'status' = 'True' FROM jsonb_array_elements(body -> 'conditions') c
								WHERE c ->> 'type' = 'Ready' LIMIT 1),
							  true);
		END IF;
	END IF;
	ev := CASE WHEN ready THEN 'heartbeat_ready' ELSE 'heartbeat_not_ready' END;
	-- One statement finds the token's node (first pass; a DBA's node by id
	-- after that), applies the status machine to the status it read and
	-- writes the report.  The row is not locked beforehand (a lock would
	-- cost a WAL record per heartbeat): when the status changed meanwhile,
	-- no row matches and the statement runs again.
	LOOP
		IF jsonb_array_length(errs) = 0 THEN
			-- a node the Kubernetes API knows (kube_seen_at) takes its
			-- readiness, conditions and allocations from the API
			-- (bgworker/nodesync.c); its agent adds the usage
			UPDATE paas.nodes x SET
				status = CASE WHEN x.kube_seen_at IS NULL THEN paas.node_transition(o.status, ev) ELSE x.status END,
				status_changed_at = CASE WHEN x.kube_seen_at IS NULL AND paas.node_transition(o.status, ev) <> o.status
										 THEN now() ELSE x.status_changed_at END,
				is_ready = CASE WHEN x.kube_seen_at IS NULL THEN ready ELSE x.is_ready END,
				allocated_cpu = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.allocated_cpu END, x.allocated_cpu),
				allocated_memory = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.allocated_memory END, x.allocated_memory),
				allocated_storage = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.allocated_storage END, x.allocated_storage),
				cpu_allocated_m = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.cpu_allocated_m END, x.cpu_allocated_m),
				memory_allocated = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.memory_allocated END, x.memory_allocated),
				storage_allocated = coalesce(rep.storage_allocated, x.storage_allocated),
				current_pods = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN rep.current_pods END, x.current_pods),
				cpu_used_m = coalesce(rep.cpu_used_m, x.cpu_used_m),
				memory_used = coalesce(rep.memory_used, x.memory_used),
				storage_used = coalesce(rep.storage_used, x.storage_used),
				conditions = coalesce(CASE WHEN x.kube_seen_at IS NULL THEN body -> 'conditions' END, x.conditions),
				agent_clock_skew_ms = CASE WHEN agent_ts IS NULL THEN x.agent_clock_skew_ms
										   ELSE (extract(epoch FROM agent_ts - now()) * 1000)::bigint END,
				last_health_check = now(),
				last_heartbeat = now(),
				updated_at = now()
			  FROM (SELECT id, status FROM paas.nodes
					 WHERE token_hash = h AND (name = key OR id = paas.to_uuid(key))
					UNION ALL
					SELECT id, status FROM paas.nodes WHERE id = nid) o
			 WHERE x.id = o.id AND x.status = o.status
			RETURNING x AS node, o.status::text AS old_status INTO r;
			EXIT WHEN FOUND;
		END IF;
		-- No row: say why (PT401, PT403, PT400), or find a DBA's node.
		nid := (paas.node_by_token(key, ctx)).id;
		PERFORM paas.raise_if_invalid(errs);
		h := NULL;
	END LOOP;
	n := r.node;
	IF n.status <> r.old_status THEN
		PERFORM paas.node_audit(n, r.old_status, ev, 'node', NULL);
	END IF;
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'lastHeartbeat', paas.iso(n.last_heartbeat),
							  'status', n.status, 'isReady', n.is_ready, 'isSchedulable', paas.node_schedulable(n),
							  'allocatedCPU', n.allocated_cpu, 'allocatedMemory', n.allocated_memory,
							  'allocatedStorage', n.allocated_storage, 'currentPods', n.current_pods);
END
$function$
;
COMMENT ON FUNCTION api.workers_heartbeat(jsonb,jsonb) IS 'PUT /workers/:nodeName/heartbeat and PATCH /workers/:nodeId/heartbeat: node token; server time';
REVOKE ALL ON FUNCTION api.workers_heartbeat(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_heartbeat(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_heartbeat(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_heartbeat_batch(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	out jsonb[];
	i record;
BEGIN
	PERFORM paas.check_batch(req);
	out := array_fill(NULL::jsonb, ARRAY[jsonb_array_length(req)]);
	FOR i IN SELECT t.n, t.e FROM jsonb_array_elements(req) WITH ORDINALITY AS t (e, n)
			  ORDER BY t.e #>> '{ctx,nodeToken}', t.n LOOP
		out[i.n] := api.workers_heartbeat(i.e -> 'req', coalesce(i.e -> 'ctx', '{}'));
	END LOOP;
	RETURN to_jsonb(out);
END
$function$
;
COMMENT ON FUNCTION api.workers_heartbeat_batch(jsonb,jsonb) IS 'heartbeats received together, applied in one transaction; results in order (the gateway''s batching)';
REVOKE ALL ON FUNCTION api.workers_heartbeat_batch(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_heartbeat_batch(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_heartbeat_batch(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_join_token_add(token text, note text DEFAULT NULL::text, expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	tid uuid;
BEGIN
	IF token IS NULL OR char_length(token) < 16 OR char_length(token) > 512 THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', 'token', 'token must be 16 to 512 characters'));
	END IF;
	SELECT id INTO tid FROM paas.node_join_tokens WHERE token_hash = paas.node_token_hash(token);
	IF FOUND THEN
		RETURN tid;
	END IF;
	INSERT INTO paas.node_join_tokens (token_hash, note, expires_at)
	VALUES (paas.node_token_hash(token), note, workers_join_token_add.expires_at)
	RETURNING id INTO tid;
	RETURN tid;
END
$function$
;
COMMENT ON FUNCTION api.workers_join_token_add(text,text,timestamp with time zone) IS 'adds a cluster join token (idempotent: a known token keeps its row); for set-up scripts and DBAs';
REVOKE ALL ON FUNCTION api.workers_join_token_add(text,text,timestamp with time zone) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_join_token_add(text,text,timestamp with time zone) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_join_tokens_create(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	tok text := encode(public.gen_random_bytes(32), 'hex');
	t paas.node_join_tokens;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'note', false, 0, 200);
	errs := paas.check_int(errs, req, 'expiresInHours', false, 1, 24 * 366);
	PERFORM paas.raise_if_invalid(errs);
	INSERT INTO paas.node_join_tokens (token_hash, note, expires_at)
	VALUES (paas.node_token_hash(tok), req ->> 'note',
			now() + make_interval(hours => (req ->> 'expiresInHours')::int))
	RETURNING * INTO t;
	RETURN paas.join_token_json(t) || jsonb_build_object('token', tok);
END
$function$
;
COMMENT ON FUNCTION api.workers_join_tokens_create(jsonb,jsonb) IS 'POST /workers/join-tokens: a random join token, shown once';
REVOKE ALL ON FUNCTION api.workers_join_tokens_create(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_join_tokens_create(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_join_tokens_create(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_join_tokens_list(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN jsonb_build_object('tokens', coalesce((SELECT jsonb_agg(paas.join_token_json(t) ORDER BY t.created_at DESC)
												   FROM paas.node_join_tokens t), '[]'));
END
$function$
;
COMMENT ON FUNCTION api.workers_join_tokens_list(jsonb,jsonb) IS 'GET /workers/join-tokens';
REVOKE ALL ON FUNCTION api.workers_join_tokens_list(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_join_tokens_list(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_join_tokens_list(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_join_tokens_revoke(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	t paas.node_join_tokens;
BEGIN
	PERFORM paas.require_admin(ctx);
	UPDATE paas.node_join_tokens SET revoked_at = coalesce(revoked_at, now())
	 WHERE id = paas.to_uuid(req ->> 'tokenId')
	RETURNING * INTO t;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Join token not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.join_token_json(t);
END
$function$
;
COMMENT ON FUNCTION api.workers_join_tokens_revoke(jsonb,jsonb) IS 'DELETE /workers/join-tokens/:tokenId: revokes a join token (registered nodes keep working)';
REVOKE ALL ON FUNCTION api.workers_join_tokens_revoke(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_join_tokens_revoke(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_join_tokens_revoke(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_list(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	lim int;
	off int;
	total bigint;
	rows jsonb;
	pg jsonb;
	sort_col text;
	sort_dir text;
	search text;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'status', false, ARRAY['ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY']);
	errs := paas.check_bool(errs, req, 'isSchedulable', false);
	errs := paas.check_bool(errs, req, 'isReady', false);
	errs := paas.check_text(errs, req, 'search', false, 0, 100);
	errs := paas.check_enum(errs, req, 'sortBy', false,
							ARRAY['name', 'hostname', 'cpuCores', 'totalMemory', 'status', 'createdAt', 'lastHeartbeat']);
	errs := paas.check_enum(errs, req, 'sortOrder', false, ARRAY['asc', 'desc']);
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 10);
	off := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	search := nullif(btrim(req ->> 'search'), '');
	sort_col := CASE coalesce(req ->> 'sortBy', 'createdAt')
		WHEN 'name' THEN 'n.name' WHEN 'hostname' THEN 'n.hostname' WHEN 'cpuCores' THEN 'n.cpu_cores'
		WHEN 'totalMemory' THEN 'n.memory_capacity' WHEN 'status' THEN 'n.status'
		WHEN 'lastHeartbeat' THEN 'n.last_heartbeat' ELSE 'n.created_at' END;
	sort_dir := CASE WHEN req ->> 'sortOrder' = 'asc' THEN 'ASC' ELSE 'DESC' END;

	EXECUTE format($q$
		WITH f AS (
			SELECT n, row_number() OVER (ORDER BY %1$s %2$s NULLS LAST, n.id) AS rn,
				   count(*) OVER () AS total
			  FROM paas.nodes n
			 WHERE ($1 IS NULL OR n.status = $1)
			   AND ($2 IS NULL OR paas.node_schedulable(n) = $2)
			   AND ($3 IS NULL OR n.is_ready = $3)
			   AND ($4 IS NULL OR concat_ws(' ', n.name, n.hostname, host(n.ip_address), n.cpu_architecture,
											n.operating_system) ILIKE '%%' || $4 || '%%'))
		SELECT coalesce(max(total), 0),
			   coalesce(jsonb_agg(paas.node_json(f.n) ORDER BY rn) FILTER (WHERE rn > $6 AND rn <= $6 + $5), '[]')
		  FROM f
		$q$, sort_col, sort_dir)
	INTO total, rows
	USING req ->> 'status', (req ->> 'isSchedulable')::boolean, (req ->> 'isReady')::boolean, search, lim, off;

	pg := paas.pagination(req, total);
	RETURN jsonb_build_object('data', jsonb_build_object('workers', rows, 'pagination', pg), 'pagination', pg);
END
$function$
;
COMMENT ON FUNCTION api.workers_list(jsonb,jsonb) IS 'GET /workers: page, limit, status, isSchedulable, isReady, search, sortBy, sortOrder';
REVOKE ALL ON FUNCTION api.workers_list(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_list(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_list(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_offline(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object('nodes', coalesce(jsonb_agg(paas.node_json(n) ORDER BY n.name), '[]'),
							  'count', count(*))
	  INTO r FROM paas.nodes n WHERE NOT paas.node_schedulable(n);
	RETURN r;
END
$function$
;
COMMENT ON FUNCTION api.workers_offline(jsonb,jsonb) IS 'GET /workers/offline: every node that is not online';
REVOKE ALL ON FUNCTION api.workers_offline(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_offline(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_offline(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_online(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object('nodes', coalesce(jsonb_agg(paas.node_json(n) ORDER BY n.name), '[]'),
							  'count', count(*))
	  INTO r FROM paas.nodes n WHERE paas.node_schedulable(n);
	RETURN r;
END
$function$
;
COMMENT ON FUNCTION api.workers_online(jsonb,jsonb) IS 'GET /workers/online: ACTIVE, ready and schedulable nodes';
REVOKE ALL ON FUNCTION api.workers_online(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_online(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_online(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_register(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	s jsonb;
	n paas.nodes;
	own paas.nodes;
	k8s boolean;
	old text;
	created boolean := false;
	given text;
	tok text := encode(public.gen_random_bytes(32), 'hex');
	ev text;
BEGIN
	req := paas.require_object(req);
	given := nullif(coalesce(ctx ->> 'nodeToken', req ->> 'registrationToken'), '');
	IF given IS NOT NULL THEN
		SELECT * INTO own FROM paas.nodes WHERE token_hash = paas.node_token_hash(given);
	END IF;
	IF own.id IS NULL THEN
		PERFORM paas.node_check_join(given);
	END IF;
	req := req - 'registrationToken';
	k8s := req ? 'kind' OR req ? 'metadata' OR req ? 'apiVersion';
	IF k8s THEN
		SELECT k.spec, k.errs INTO s, errs FROM paas.node_from_k8s(req) k;
		PERFORM paas.raise_if_invalid(errs);
	ELSE
		-- a node's Kubernetes uid comes from its Node object only
		s := req - 'kubeUid';
		errs := paas.check_bool(errs, s, 'isReady', false);
		IF s ? 'maxPods' IS FALSE THEN
			s := s || '{"maxPods": 110}';
		END IF;
	END IF;
	errs := paas.node_check(errs, s, true);
	PERFORM paas.raise_if_invalid(errs);

	SELECT * INTO n FROM paas.nodes WHERE name = s ->> 'name' FOR UPDATE;
	IF own.id IS NOT NULL AND own.id IS DISTINCT FROM n.id THEN
		RAISE EXCEPTION 'This node token belongs to another node' USING ERRCODE = 'PT403';
	END IF;
	IF n.id IS NULL THEN
		PERFORM paas.node_hostname_taken(s ->> 'hostname', NULL);
		INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage)
		VALUES (s ->> 'name', s ->> 'hostname', (s ->> 'ipAddress')::inet, 1, '', '0', '0')
		RETURNING * INTO n;
		created := true;
	ELSE
		IF own.id IS NULL AND NOT (given IS NULL AND session_user <> 'paas_api')
		   AND NOT (k8s AND n.kube_uid IS NOT NULL AND n.kube_uid = s ->> 'kubeUid') THEN
			RAISE EXCEPTION 'Worker node with this name already exists; re-registering it needs its node token'
				USING ERRCODE = 'PW409';
		END IF;
		PERFORM paas.node_hostname_taken(s ->> 'hostname', n.id);
	END IF;
	n := paas.node_write(n.id, s);
	old := CASE WHEN created THEN NULL ELSE n.status END;
	ev := CASE WHEN coalesce((s ->> 'isReady')::boolean, true) THEN 'register' ELSE 'register_not_ready' END;
	UPDATE paas.nodes
	   SET status = paas.node_transition(status, ev),
		   is_ready = coalesce((s ->> 'isReady')::boolean, true),
		   cordoned = coalesce((s ->> 'unschedulable')::boolean, false),
		   token_hash = paas.node_token_hash(tok), token_issued_at = now(),
		   registered_at = now(), last_heartbeat = now(), last_health_check = now(),
		   status_changed_at = CASE WHEN status <> paas.node_transition(status, ev) THEN now()
									ELSE status_changed_at END
	 WHERE id = n.id
	RETURNING * INTO n;
	PERFORM paas.node_audit(n, old, ev, 'node', CASE WHEN created THEN 'registered' ELSE 're-registered' END);
	IF NOT created THEN
		-- the reply seam (httpd/reply.c): the route row's 201 is a creation's
		PERFORM set_config('response.status', '200', true);
		PERFORM set_config('response.message', 'Worker node information updated successfully', true);
	END IF;
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status, 'isReady', n.is_ready,
							  'isSchedulable', paas.node_schedulable(n), 'created', created,
							  'nodeToken', tok, 'heartbeatIntervalSeconds', 30,
							  'gracePeriodSeconds', extract(epoch FROM (paas.node_health_settings()).grace_period)::int);
END
$function$
;
COMMENT ON FUNCTION api.workers_register(jsonb,jsonb) IS 'POST /workers/register: a join token creates (201), a node token re-registers its node (200, set as response.status); the original field set or a Kubernetes Node object; returns the node token';
REVOKE ALL ON FUNCTION api.workers_register(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_register(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_register(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_resources(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n paas.nodes;
	body jsonb := req - 'nodeId';
	rep paas.node_report := paas.node_report(body);
	errs jsonb := rep.errs;
BEGIN
	n := paas.node_by_token(req ->> 'nodeId', ctx);
	IF NOT (body ?| ARRAY['allocatedCPU', 'allocatedMemory', 'allocatedStorage', 'currentPods',
						  'cpuUsage', 'memoryUsage', 'storageUsage']) THEN
		errs := paas.add_err(errs, '', 'at least one of allocatedCPU, allocatedMemory, allocatedStorage, currentPods, cpuUsage, memoryUsage, storageUsage is required');
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	-- allocations of a node the Kubernetes API knows are its pods' requests
	-- (paas.node_sync_pods_end); the agent adds the usage
	UPDATE paas.nodes SET
		allocated_cpu = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.allocated_cpu END, allocated_cpu),
		allocated_memory = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.allocated_memory END, allocated_memory),
		allocated_storage = coalesce(rep.allocated_storage, allocated_storage),
		cpu_allocated_m = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.cpu_allocated_m END, cpu_allocated_m),
		memory_allocated = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.memory_allocated END, memory_allocated),
		storage_allocated = coalesce(rep.storage_allocated, storage_allocated),
		cpu_used_m = coalesce(rep.cpu_used_m, cpu_used_m),
		memory_used = coalesce(rep.memory_used, memory_used),
		storage_used = coalesce(rep.storage_used, storage_used),
		current_pods = coalesce(CASE WHEN kube_seen_at IS NULL THEN rep.current_pods END, current_pods),
		updated_at = now()
	 WHERE id = n.id
	RETURNING * INTO n;
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'cpuCores', n.cpu_cores,
							  'totalMemory', n.total_memory, 'totalStorage', n.total_storage,
							  'allocatedCPU', n.allocated_cpu, 'allocatedMemory', n.allocated_memory,
							  'allocatedStorage', n.allocated_storage, 'currentPods', n.current_pods,
							  'maxPods', n.max_pods) || jsonb_build_object(
							  'allocation', paas.node_json(n) -> 'allocation', 'usage', paas.node_json(n) -> 'usage');
END
$function$
;
COMMENT ON FUNCTION api.workers_resources(jsonb,jsonb) IS 'PATCH /workers/:nodeId/resources: allocation and usage of the calling node (no liveness effect)';
REVOKE ALL ON FUNCTION api.workers_resources(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_resources(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_resources(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_set_schedulable(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
	v boolean;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	IF NOT req ? 'schedulable' AND req ? 'isSchedulable' THEN
		req := req || jsonb_build_object('schedulable', req -> 'isSchedulable');
	END IF;
	errs := paas.check_bool(errs, req, 'schedulable', true);
	errs := paas.check_text(errs, req, 'reason', false, 0, 500);
	PERFORM paas.raise_if_invalid(errs);
	v := (req ->> 'schedulable')::boolean;
	-- an API node: the API first (32_node_actions.sql)
	n := paas.node_set_cordon(req ->> 'nodeId', NOT v, paas.node_actor(ctx), req ->> 'reason');
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'isSchedulable', paas.node_schedulable(n),
							  'unschedulable', n.cordoned, 'isReady', n.is_ready, 'status', n.status,
							  'updatedAt', paas.iso(n.updated_at));
END
$function$
;
COMMENT ON FUNCTION api.workers_set_schedulable(jsonb,jsonb) IS 'PATCH /workers/:nodeId/schedulable {schedulable}: cordon / uncordon, in the API first for an API node (409 while INACTIVE or MAINTENANCE, 502 when the API refuses)';
REVOKE ALL ON FUNCTION api.workers_set_schedulable(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_set_schedulable(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_set_schedulable(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_set_status(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
	old text;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_enum(errs, req, 'status', true, ARRAY['ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY']);
	errs := paas.check_text(errs, req, 'reason', false, 0, 500);
	PERFORM paas.raise_if_invalid(errs);
	old := (paas.read_node(req ->> 'nodeId')).status;
	-- an API node: MAINTENANCE = cordon + drain (32_node_actions.sql)
	n := paas.node_set_status(req ->> 'nodeId', req ->> 'status', paas.node_actor(ctx), req ->> 'reason');
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status, 'previousStatus', old,
							  'isReady', n.is_ready, 'isSchedulable', paas.node_schedulable(n),
							  'updatedAt', paas.iso(n.updated_at),
							  'drain', (SELECT paas.node_drain_json(d) FROM paas.node_drains d
										 WHERE d.node_id = n.id AND d.state IN ('pending', 'running')));
END
$function$
;
COMMENT ON FUNCTION api.workers_set_status(jsonb,jsonb) IS 'PATCH /workers/:nodeId/status {status, reason?}: through the status machine (409 when illegal)';
REVOKE ALL ON FUNCTION api.workers_set_status(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_set_status(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_set_status(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_stats(req jsonb DEFAULT '{}'::jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'totalNodes', count(*),
		'nodeStatus', jsonb_build_object(
			'active', count(*) FILTER (WHERE status = 'ACTIVE'),
			'inactive', count(*) FILTER (WHERE status = 'INACTIVE'),
			'maintenance', count(*) FILTER (WHERE status = 'MAINTENANCE'),
			'pending', count(*) FILTER (WHERE status = 'PENDING'),
			'notReady', count(*) FILTER (WHERE status = 'NOT_READY')),
		'nodeCapabilities', jsonb_build_object(
			'schedulable', count(*) FILTER (WHERE paas.node_schedulable(n)),
			'ready', count(*) FILTER (WHERE is_ready),
			'cordoned', count(*) FILTER (WHERE cordoned)),
		'resources', jsonb_build_object(
			'cpu', jsonb_build_object(
				'unit', 'millicores',
				'total', coalesce(sum(cpu_capacity_m), 0), 'allocatable', coalesce(sum(cpu_allocatable_m), 0),
				'allocated', coalesce(sum(cpu_allocated_m), 0), 'used', coalesce(sum(cpu_used_m), 0),
				'utilization', coalesce(paas.node_pct(sum(cpu_allocated_m)::bigint, sum(cpu_allocatable_m)::bigint), 0),
				'usagePercent', coalesce(paas.node_pct(sum(cpu_used_m)::bigint, sum(cpu_capacity_m)::bigint), 0)),
			'memory', jsonb_build_object(
				'unit', 'bytes',
				'total', coalesce(sum(memory_capacity), 0), 'allocatable', coalesce(sum(memory_allocatable), 0),
				'allocated', coalesce(sum(memory_allocated), 0), 'used', coalesce(sum(memory_used), 0),
				'utilization', coalesce(paas.node_pct(sum(memory_allocated)::bigint, sum(memory_allocatable)::bigint), 0),
				'usagePercent', coalesce(paas.node_pct(sum(memory_used)::bigint, sum(memory_capacity)::bigint), 0)),
			'storage', jsonb_build_object(
				'unit', 'bytes',
				'total', coalesce(sum(storage_capacity), 0), 'allocatable', coalesce(sum(storage_allocatable), 0),
				'allocated', coalesce(sum(storage_allocated), 0), 'used', coalesce(sum(storage_used), 0),
				'utilization', coalesce(paas.node_pct(sum(storage_allocated)::bigint, sum(storage_allocatable)::bigint), 0),
				'usagePercent', coalesce(paas.node_pct(sum(storage_used)::bigint, sum(storage_capacity)::bigint), 0)),
			'pods', jsonb_build_object(
				'maxTotal', coalesce(sum(max_pods), 0), 'currentTotal', coalesce(sum(current_pods), 0),
				'utilization', coalesce(paas.node_pct(sum(current_pods)::bigint, sum(max_pods)::bigint), 0))))
	  INTO r
	  FROM paas.nodes n;
	RETURN r;
END
$function$
;
COMMENT ON FUNCTION api.workers_stats(jsonb,jsonb) IS 'GET /workers/stats: counts by status, capacity vs allocation and usage totals';
REVOKE ALL ON FUNCTION api.workers_stats(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_stats(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_stats(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_transitions(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n paas.nodes;
	errs jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	errs := paas.check_int('[]', req, 'limit', false, 1, 500);
	PERFORM paas.raise_if_invalid(errs);
	n := paas.read_node(req ->> 'nodeId');
	RETURN jsonb_build_object('node', jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status),
		'transitions', coalesce((SELECT jsonb_agg(jsonb_build_object(
				'from', t.from_status, 'to', t.to_status, 'event', t.event, 'reason', t.reason,
				'actor', t.actor, 'at', paas.iso(t.at)) ORDER BY t.id DESC)
			FROM (SELECT * FROM paas.node_transitions WHERE node_id = n.id
				   ORDER BY id DESC LIMIT coalesce((req ->> 'limit')::int, 50)) t), '[]'));
END
$function$
;
COMMENT ON FUNCTION api.workers_transitions(jsonb,jsonb) IS 'GET /workers/:nodeId/transitions: the audit trail of a node, newest first';
REVOKE ALL ON FUNCTION api.workers_transitions(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_transitions(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_transitions(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.workers_update(req jsonb, ctx jsonb DEFAULT '{}'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
	body jsonb;
	s jsonb;
	fields constant text[] := ARRAY['name', 'hostname', 'ipAddress', 'architecture', 'operatingSystem',
		'cpuCores', 'cpuArchitecture', 'totalMemory', 'totalStorage', 'allocatedCPU', 'allocatedMemory',
		'allocatedStorage', 'maxPods', 'currentPods', 'status', 'isReady', 'isSchedulable', 'labels', 'taints',
		'kubeletVersion', 'containerRuntime', 'kernelVersion', 'osImage'];
	actor text := paas.node_actor(ctx);
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	SELECT coalesce(jsonb_object_agg(key, value), '{}') INTO body
	  FROM jsonb_each(req) WHERE key = ANY (fields);
	errs := paas.node_check(errs, body, false);
	errs := paas.check_enum(errs, body, 'status', false, ARRAY['ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY']);
	errs := paas.check_bool(errs, body, 'isReady', false);
	errs := paas.check_bool(errs, body, 'isSchedulable', false);
	IF body = '{}' THEN
		errs := paas.add_err(errs, '', 'at least one field to update is required');
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	n := paas.find_node(req ->> 'nodeId');
	IF body ? 'name' AND EXISTS (SELECT 1 FROM paas.nodes WHERE name = body ->> 'name' AND id <> n.id) THEN
		RAISE EXCEPTION 'Worker node with this name already exists' USING ERRCODE = 'PW409';
	END IF;
	IF body ? 'hostname' THEN
		PERFORM paas.node_hostname_taken(body ->> 'hostname', n.id);
	END IF;
	s := paas.node_spec(n);
	IF body ?| ARRAY['cpuCores', 'totalMemory', 'totalStorage', 'maxPods'] THEN
		s := s - 'capacity' - 'allocatable';
	END IF;
	IF body ?| ARRAY['ipAddress', 'hostname'] THEN
		s := s - 'addresses';
	END IF;
	n := paas.node_write(n.id, s || (body - 'status' - 'isReady' - 'isSchedulable'));
	IF body ? 'isReady' THEN
		UPDATE paas.nodes SET is_ready = (body ->> 'isReady')::boolean WHERE id = n.id RETURNING * INTO n;
	END IF;
	IF body ? 'status' THEN
		n := paas.node_apply(n, paas.node_status_event(body ->> 'status'), actor, 'updated by an administrator');
	END IF;
	IF body ? 'isSchedulable' THEN
		n := paas.node_apply(n, CASE WHEN (body ->> 'isSchedulable')::boolean THEN 'uncordon' ELSE 'cordon' END,
							 actor, 'updated by an administrator');
	END IF;
	RETURN paas.node_json(n);
END
$function$
;
COMMENT ON FUNCTION api.workers_update(jsonb,jsonb) IS 'PUT /workers/:nodeId: any field of the original set; status and isSchedulable go through the status machine';
REVOKE ALL ON FUNCTION api.workers_update(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.workers_update(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.workers_update(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION paas.billing_feed_rows(uid uuid)
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
COMMENT ON FUNCTION paas.billing_feed_rows(uuid) IS 'every money movement of a user (unordered), its invoice named by key (paas.feed_invoice); inlined by the planner';

CREATE OR REPLACE FUNCTION paas.billing_reconcile_apply(order_id text, http_status integer, body text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.billing_reconcile_apply(text,integer,text) IS 'applies a status-API answer for an order; records failures instead of raising';

CREATE OR REPLACE FUNCTION paas.billing_reconcile_claim(age interval, n integer) RETURNS SETOF text
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
COMMENT ON FUNCTION paas.billing_reconcile_claim(interval,integer) IS 'orders due for a status-API check (pending ones, and paid ones flagged for a reversal), marked as checked';

CREATE OR REPLACE FUNCTION paas.check_admin_left()
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM paas.users WHERE role = 'ADMINISTRATOR' AND is_active AND deleted_at IS NULL) THEN
		RAISE EXCEPTION 'At least one active administrator must remain' USING ERRCODE = 'PT409';
	END IF;
END
$function$
;
COMMENT ON FUNCTION paas.check_admin_left() IS 'PT409 when no active administrator is left';

CREATE OR REPLACE FUNCTION paas.check_int(errs jsonb, req jsonb, field text, required boolean, min_v bigint, max_v bigint)
 RETURNS jsonb
 LANGUAGE c
 IMMUTABLE PARALLEL SAFE
AS '$libdir/paas', $function$paas_check_int$function$
;
COMMENT ON FUNCTION paas.check_int(jsonb,jsonb,text,boolean,bigint,bigint) IS 'appends an error when req->field is not an integer in [min, max]';

CREATE OR REPLACE FUNCTION paas.check_qty(errs jsonb, field text, v jsonb, unit text, milli boolean, required boolean)
 RETURNS jsonb
 LANGUAGE c
 IMMUTABLE PARALLEL SAFE
AS '$libdir/paas', $function$paas_check_qty$function$
;
COMMENT ON FUNCTION paas.check_qty(jsonb,text,jsonb,text,boolean,boolean) IS 'appends a field error when v is not a non-negative Kubernetes quantity';

CREATE OR REPLACE FUNCTION paas.check_subscription_filters(errs jsonb, req jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
BEGIN
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'status', false,
		ARRAY['ACTIVE', 'GRACE', 'SUSPENDED', 'CANCELLED', 'EXPIRED']);
	errs := paas.check_text(errs, req, 'serviceId', false, 1, 64);
	RETURN errs;
END
$function$
;
COMMENT ON FUNCTION paas.check_subscription_filters(jsonb,jsonb) IS 'appends errors for invalid page, limit, status and serviceId filters';

CREATE OR REPLACE FUNCTION paas.check_text(errs jsonb, req jsonb, field text, required boolean, min_len integer, max_len integer)
 RETURNS jsonb
 LANGUAGE c
 IMMUTABLE PARALLEL SAFE
AS '$libdir/paas', $function$paas_check_text$function$
;
COMMENT ON FUNCTION paas.check_text(jsonb,jsonb,text,boolean,integer,integer) IS 'appends an error when req->field is not a string of the given length';

CREATE OR REPLACE FUNCTION paas.cron_job(job_name text)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	r jsonb;
BEGIN
	IF to_regclass('cron.job') IS NULL THEN
		RETURN NULL;
	END IF;
	EXECUTE $q$SELECT jsonb_build_object('jobId', jobid, 'jobName', jobname, 'schedule', schedule,
										  'command', command, 'database', database, 'username', username,
										  'active', active)
				 FROM cron.job WHERE jobname = $1 AND database = current_database()
				ORDER BY jobid DESC LIMIT 1$q$
	   INTO r USING 'paas-' || job_name;
	RETURN r;
END
$function$
;
COMMENT ON FUNCTION paas.cron_job(text) IS 'the cron.job row (jsonb) of a pg_cron job of paas.job, or NULL';

CREATE OR REPLACE FUNCTION paas.email_taken(mail text, except_id uuid DEFAULT NULL) RETURNS boolean
	LANGUAGE sql STABLE
	RETURN EXISTS (SELECT 1 FROM paas.users
					WHERE lower(email) = lower(mail) AND deleted_at IS NULL
					  AND id IS DISTINCT FROM except_id);
COMMENT ON FUNCTION paas.email_taken(text,uuid) IS 'whether a live account uses this email';

CREATE OR REPLACE FUNCTION paas.feed_invoice(inv_topup uuid, inv_id uuid, inv_entry text)
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
COMMENT ON FUNCTION paas.feed_invoice(uuid,uuid,text) IS '{id, invoiceNumber, status} of a feed row''s invoice, from its key; no row when none; inlined by the planner';

CREATE OR REPLACE FUNCTION paas.find_node(key text)
 RETURNS paas.nodes
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n paas.nodes;
BEGIN
	SELECT * INTO n FROM paas.nodes WHERE id = paas.to_uuid(key) FOR UPDATE;
	IF NOT FOUND THEN
		SELECT * INTO n FROM paas.nodes WHERE name = key FOR UPDATE;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Worker node not found' USING ERRCODE = 'PW404';
	END IF;
	RETURN n;
END
$function$
;
COMMENT ON FUNCTION paas.find_node(text) IS 'locks and returns a node by id or name; PW404 otherwise';

CREATE OR REPLACE FUNCTION paas.find_service(id_text text)
 RETURNS paas.services
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.services;
BEGIN
	SELECT * INTO s FROM paas.services
	 WHERE id = paas.to_uuid(id_text) AND deleted_at IS NULL
	 FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PS404';
	END IF;
	RETURN s;
END
$function$
;
COMMENT ON FUNCTION paas.find_service(text) IS 'locks (FOR UPDATE) and returns a live service by id; PS404 otherwise';

CREATE OR REPLACE FUNCTION paas.find_user(id_text text)
 RETURNS paas.users
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users;
BEGIN
	SELECT * INTO u FROM paas.users
	 WHERE id = paas.to_uuid(id_text) AND deleted_at IS NULL
	 FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'User not found' USING ERRCODE = 'PU404';
	END IF;
	RETURN u;
END
$function$
;
COMMENT ON FUNCTION paas.find_user(text) IS 'locks and returns a live account by id; PU404 otherwise';

CREATE OR REPLACE FUNCTION paas.invoice_items_refuse(items paas.invoice_item[])
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	PERFORM paas.raise_if_invalid(paas.invoice_item_errors(paas.invoice_items_json(items)));
	RAISE EXCEPTION 'invoice item refused without a field error' USING ERRCODE = 'internal_error';
END
$function$
;
COMMENT ON FUNCTION paas.invoice_items_refuse(paas.invoice_item[]) IS 'raises PT400 listing every field error of invoice items';

CREATE OR REPLACE FUNCTION paas.invoice_links(i paas.invoices)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.invoice_links(paas.invoices) IS 'userId, subscriptionId, pdfPath, updatedAt, topUpTransaction and subscription of an invoice';

CREATE OR REPLACE FUNCTION paas.invoices_guard()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.invoices_guard() IS 'keeps issued invoices immutable';

CREATE OR REPLACE FUNCTION paas.issue_invoice_items(items paas.invoice_item[], ids uuid[] DEFAULT NULL::uuid[])
 RETURNS SETOF paas.invoices
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.issue_invoice_items(paas.invoice_item[],uuid[]) IS 'issues PAID invoices numbered as one contiguous block, in one statement (ids: their ids, drawn by the caller, or NULL); PT400 names the failing items[i].field';

CREATE OR REPLACE FUNCTION paas.issue_invoices(items jsonb)
 RETURNS SETOF paas.invoices
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.issue_invoices(jsonb) IS 'issues PAID invoices [{userId, kind, amount, ref, lines}] numbered as one contiguous block, in one statement; PT400 names the failing items[i].field';

CREATE OR REPLACE FUNCTION paas.issue_token(s paas.sessions)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	tok text := paas.refresh_token(s, s.generation);
BEGIN
	INSERT INTO paas.refresh_tokens (token_hash, session_id, generation)
	VALUES (public.digest(tok, 'sha256'), s.id, s.generation);
	RETURN tok;
END
$function$
;
COMMENT ON FUNCTION paas.issue_token(paas.sessions) IS 'records and returns the current refresh token';

CREATE OR REPLACE FUNCTION paas.job_billing_expire_topups()
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.job_billing_expire_topups() IS 'expires pending top-ups past 24 h';

CREATE OR REPLACE FUNCTION paas.job_mark_customized()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	IF (NEW.enabled, NEW.run_every) IS DISTINCT FROM (OLD.enabled, OLD.run_every) THEN
		NEW.customized := true;
	END IF;
	RETURN NEW;
END
$function$
;
COMMENT ON FUNCTION paas.job_mark_customized() IS 'trigger: a job whose enabled or run_every changes becomes customized';

CREATE OR REPLACE FUNCTION paas.job_node_monitor()
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	t0 timestamptz := clock_timestamp();
	cfg record;
	r jsonb;
BEGIN
	SELECT * INTO cfg FROM paas.node_health_settings();
	WITH cand AS (
		SELECT n.id, n.status AS old_status,
			   CASE WHEN coalesce(n.last_heartbeat, n.created_at) < now() - cfg.offline_after
					THEN 'offline_timeout' ELSE 'heartbeat_timeout' END AS event
		  FROM paas.nodes n
		 WHERE n.status IN ('ACTIVE', 'NOT_READY')
		   AND coalesce(n.last_heartbeat, n.created_at) < now() - cfg.grace_period
		   AND (n.status = 'ACTIVE' OR coalesce(n.last_heartbeat, n.created_at) < now() - cfg.offline_after)
		 ORDER BY n.id
		   FOR UPDATE OF n SKIP LOCKED),
	upd AS (
		UPDATE paas.nodes n
		   SET status = paas.node_transition(c.old_status, c.event),
			   is_ready = false,
			   conditions = CASE WHEN c.old_status = 'ACTIVE'
								 THEN paas.node_conditions_unknown(n.conditions, now()) ELSE n.conditions END,
			   last_health_check = now(),
			   status_changed_at = now(),
			   updated_at = now()
		  FROM cand c
		 WHERE n.id = c.id
		RETURNING n.id, n.name, c.old_status, n.status, c.event),
	aud AS (
		INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
		SELECT u.id, u.name, u.old_status, u.status, u.event, 'monitor',
			   CASE u.event WHEN 'offline_timeout' THEN 'no heartbeat for ' || cfg.offline_after
							ELSE 'no heartbeat for ' || cfg.grace_period END
		  FROM upd u
		RETURNING to_status)
	SELECT jsonb_build_object(
		'notReady', count(*) FILTER (WHERE to_status = 'NOT_READY'),
		'inactive', count(*) FILTER (WHERE to_status = 'INACTIVE'))
	  INTO r FROM aud;
	RETURN r || jsonb_build_object('ms', round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1),
								   'gracePeriod', cfg.grace_period::text, 'offlineAfter', cfg.offline_after::text);
END
$function$
;
COMMENT ON FUNCTION paas.job_node_monitor() IS 'health monitor pass: silent nodes -> NOT_READY, then INACTIVE (set-based, SKIP LOCKED)';

CREATE OR REPLACE FUNCTION paas.job_prune_login_failures()
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n bigint;
BEGIN
	DELETE FROM paas.login_failures
	 WHERE at < now() - interval '1 hour'
	   AND (last_success_at IS NULL OR last_success_at < now() - interval '30 days');
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n);
END
$function$
;
COMMENT ON FUNCTION paas.job_prune_login_failures() IS 'deletes failed-login rows that no longer limit or vouch for an address';

CREATE OR REPLACE FUNCTION paas.job_prune_midtrans_rejects()
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.job_prune_midtrans_rejects() IS 'deletes refused Midtrans notifications older than paas.midtrans_reject_retention (50,000 rows a run)';

CREATE OR REPLACE FUNCTION paas.job_prune_node_transitions()
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	keep interval := paas.node_history_retention();
	n bigint;
BEGIN
	IF keep IS NULL THEN
		RETURN jsonb_build_object('deleted', 0, 'retention', 'forever');
	END IF;
	DELETE FROM paas.node_transitions
	 WHERE id IN (SELECT id FROM paas.node_transitions WHERE at < now() - keep ORDER BY at LIMIT 50000);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n, 'retention', keep::text);
END
$function$
;
COMMENT ON FUNCTION paas.job_prune_node_transitions() IS 'deletes node status history older than paas.node_history_retention (50,000 rows a run)';

CREATE OR REPLACE FUNCTION paas.job_prune_runs()
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n bigint;
BEGIN
	DELETE FROM paas.job_run WHERE started_at < now() - interval '7 days';
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n);
END
$function$
;
COMMENT ON FUNCTION paas.job_prune_runs() IS 'deletes job runs older than 7 days';

CREATE OR REPLACE FUNCTION paas.job_prune_sessions()
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n bigint;
BEGIN
	DELETE FROM paas.sessions WHERE expires_at < now() - interval '1 day';
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n);
END
$function$
;
COMMENT ON FUNCTION paas.job_prune_sessions() IS 'deletes sessions expired for more than a day';

CREATE OR REPLACE FUNCTION paas.job_restore_settings()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	UPDATE paas.job j
	   SET enabled = NEW.enabled,
		   run_every = CASE WHEN j.runner = 'worker' THEN coalesce(NEW.run_every, j.run_every) END,
		   customized = true
	 WHERE j.name = NEW.name;
	RETURN NULL;
END
$function$
;
COMMENT ON FUNCTION paas.job_restore_settings() IS 'trigger (pg_restore): a customized job row inserted again sets enabled and run_every of the existing row';

CREATE OR REPLACE FUNCTION paas.ledger_post(idempotency_key text, entries jsonb)
 RETURNS jsonb
 LANGUAGE c
AS '$libdir/paas', $function$paas_ledger_post$function$
;
COMMENT ON FUNCTION paas.ledger_post(text,jsonb) IS 'posts a batch of balanced entries atomically: entries = [{kind, memo, ref?, postings: [{account, amount}]}]; PT400 bad input or overflow, PT404 unknown account, PT402 wallet would go below zero, PT409 idempotency key reused with other content, PT503 balances not yet rebuilt after a restore; returns {replayed, entries: [{id, kind, postings}]}';
REVOKE ALL ON FUNCTION paas.ledger_post(text,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paas.ledger_post(text,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION paas.ledger_replay(idempotency_key text, entries jsonb, OUT same_content boolean, OUT result jsonb)
 RETURNS record
 LANGUAGE sql
 STABLE STRICT
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
	SELECT i.request_hash = sha256(convert_to(entries::text, 'UTF8')),
		   jsonb_build_object('replayed', true, 'entries', (
			SELECT coalesce(jsonb_agg(jsonb_build_object(
					'id', e.id, 'kind', e.kind,
					'postings', (SELECT jsonb_agg(jsonb_build_object(
									'account', coalesce(a.parent_id, a.id), 'amount', p.amount,
									'balanceBefore', p.balance_before, 'balanceAfter', p.balance_after)
									|| CASE WHEN a.parent_id IS NULL THEN '{}'::jsonb
											ELSE jsonb_build_object('slotAccount', a.id) END
									ORDER BY p.id)
								   FROM paas.ledger_postings p
								   JOIN paas.ledger_accounts a ON a.id = p.account_id
								  WHERE p.entry_id = e.id))
					ORDER BY x.n), '[]')
			  FROM unnest(i.entry_ids) WITH ORDINALITY AS x(id, n)
			  JOIN paas.ledger_entries e ON e.id = x.id))
	  FROM paas.ledger_idempotency i WHERE i.key = idempotency_key
$function$
;
COMMENT ON FUNCTION paas.ledger_replay(text,jsonb) IS 'for a known idempotency key: whether entries match the first use, and the first result rebuilt';
REVOKE ALL ON FUNCTION paas.ledger_replay(text,jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION paas.ledger_restore_balances()
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n integer;
BEGIN
	PERFORM 1 FROM paas.ledger_accounts a WHERE NOT a.balance_verified ORDER BY a.id FOR UPDATE;
	UPDATE paas.ledger_accounts a
	   SET balance = s.total, balance_verified = true,
		   updated_at = CASE WHEN a.balance = s.total THEN a.updated_at ELSE now() END
	  FROM (SELECT a2.id, coalesce(sum(p.amount), 0)::bigint AS total, count(p.id) AS postings
			  FROM paas.ledger_accounts a2
			  LEFT JOIN paas.ledger_postings p ON p.account_id = a2.id
			 WHERE NOT a2.balance_verified
			 GROUP BY a2.id) s
	 WHERE a.id = s.id AND NOT a.balance_verified AND (s.postings > 0 OR a.balance <> 0);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$function$
;
COMMENT ON FUNCTION paas.ledger_restore_balances() IS 'after pg_restore: rebuilds the cached balances of the platform accounts from their postings (the worker runs it)';
REVOKE ALL ON FUNCTION paas.ledger_restore_balances() FROM PUBLIC;

CREATE OR REPLACE FUNCTION paas.ledger_restore_needed() RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN EXISTS (SELECT 1 FROM paas.ledger_accounts a
					WHERE NOT a.balance_verified
					  AND (a.balance <> 0
						   OR EXISTS (SELECT 1 FROM paas.ledger_postings p WHERE p.account_id = a.id)));
COMMENT ON FUNCTION paas.ledger_restore_needed() IS 'whether some ledger account''s cached balance must be rebuilt from its postings (after pg_restore)';
REVOKE ALL ON FUNCTION paas.ledger_restore_needed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paas.ledger_restore_needed() TO paas_owner;

CREATE OR REPLACE FUNCTION paas.ledger_reverse(entry_id bigint, idempotency_key text DEFAULT NULL::text, memo text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	e paas.ledger_entries;
	postings jsonb;
BEGIN
	SELECT * INTO e FROM paas.ledger_entries WHERE id = ledger_reverse.entry_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'ledger entry % does not exist', ledger_reverse.entry_id
			USING ERRCODE = 'PT404';
	END IF;
	IF e.kind = 'reversal' THEN
		RAISE EXCEPTION 'ledger entry % is a reversal and cannot be reversed', e.id
			USING ERRCODE = 'PT409', HINT = 'Post a new entry instead.';
	END IF;
	-- Already reversed: a conflict, unless this is a replay of the key that
	-- did it (ledger_post answers that one from the idempotency table).
	IF EXISTS (SELECT 1 FROM paas.ledger_entries r
				WHERE r.kind = 'reversal' AND (r.ref ->> 'reverses')::bigint = e.id
				  AND r.idempotency_key IS DISTINCT FROM ledger_reverse.idempotency_key) THEN
		RAISE EXCEPTION 'ledger entry % is already reversed', e.id USING ERRCODE = 'PT409';
	END IF;
	SELECT jsonb_agg(jsonb_build_object('account', coalesce(a.parent_id, a.id), 'amount', -p.amount)
					 ORDER BY p.id)
	  INTO postings
	  FROM paas.ledger_postings p JOIN paas.ledger_accounts a ON a.id = p.account_id
	 WHERE p.entry_id = e.id;
	BEGIN
		RETURN paas.ledger_post(ledger_reverse.idempotency_key, jsonb_build_array(jsonb_build_object(
			'kind', 'reversal',
			'memo', coalesce(ledger_reverse.memo, 'reversal of entry ' || e.id),
			'ref', jsonb_build_object('reverses', e.id, 'kind', e.kind),
			'postings', postings)));
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'ledger entry % is already reversed', e.id USING ERRCODE = 'PT409';
	END;
END
$function$
;
COMMENT ON FUNCTION paas.ledger_reverse(bigint,text,text) IS 'posts the opposite of an entry (kind reversal, ref.reverses); PT404 unknown, PT409 already reversed, PT402 wallet short';
REVOKE ALL ON FUNCTION paas.ledger_reverse(bigint,text,text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paas.ledger_reverse(bigint,text,text) TO paas_owner;

CREATE OR REPLACE FUNCTION paas.lock_admins(admin paas.users)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	PERFORM pg_advisory_xact_lock(1885430131, 1);
	IF admin.id IS NOT NULL AND NOT EXISTS (
		SELECT 1 FROM paas.users
		 WHERE id = admin.id AND role = 'ADMINISTRATOR' AND is_active AND deleted_at IS NULL) THEN
		RAISE EXCEPTION 'Insufficient permissions' USING ERRCODE = 'PT403';
	END IF;
END
$function$
;
COMMENT ON FUNCTION paas.lock_admins(paas.users) IS 'serialises changes that can remove an administrator; PT403 when the caller no longer is one';

CREATE OR REPLACE FUNCTION paas.login_client(ip text)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
DECLARE
	a inet;
BEGIN
	IF ip IS NULL OR ip = '' THEN
		RETURN '';
	END IF;
	BEGIN
		a := ip::inet;
	EXCEPTION WHEN invalid_text_representation THEN
		RETURN left(ip, 64);
	END;
	IF family(a) = 6 AND NOT a <<= inet '::ffff:0.0.0.0/96' THEN
		RETURN host(network(set_masklen(a, 64))) || '/64';
	END IF;
	RETURN host(a);
END
$function$
;
COMMENT ON FUNCTION paas.login_client(text) IS 'the key of a client address for failed-login counts (IPv6: its /64)';

CREATE OR REPLACE FUNCTION paas.login_settings(OUT per_address integer, OUT per_account integer, OUT backoff_max interval)
 RETURNS record
 LANGUAGE c
 STABLE PARALLEL SAFE STRICT
AS '$libdir/paas', $function$paas_login_settings$function$
;
COMMENT ON FUNCTION paas.login_settings() IS 'paas.login_failures_per_address, paas.login_failures_per_account and paas.login_backoff_max';

CREATE OR REPLACE FUNCTION paas.login_succeeded(uid uuid, addr text) RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.login_failures (user_id, client, failures, at, last_success_at)
		VALUES (uid, addr, 0, now(), now())
		ON CONFLICT (user_id, client) DO UPDATE SET failures = 0, at = now(), last_success_at = now();
	END;
COMMENT ON FUNCTION paas.login_succeeded(uuid,text) IS 'empties the failed-login bucket of (account, address) and marks the address known';

CREATE OR REPLACE FUNCTION paas.midtrans_apply(n jsonb, source text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.midtrans_apply(jsonb,text) IS 'applies a Midtrans status to its order exactly once; caller verified its origin; reversals only on a status-API answer (source reconcile), a notification flags the order';

CREATE OR REPLACE FUNCTION paas.midtrans_refunded(n jsonb) RETURNS bigint
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
COMMENT ON FUNCTION paas.midtrans_refunded(jsonb) IS 'cumulative refunded amount of a status answer (sum of refunds[], else refund_amount); NULL when absent';

CREATE OR REPLACE FUNCTION paas.midtrans_reject_retention()
 RETURNS interval
 LANGUAGE c
 STABLE PARALLEL SAFE
AS '$libdir/paas', $function$paas_midtrans_reject_retention$function$
;
COMMENT ON FUNCTION paas.midtrans_reject_retention() IS 'paas.midtrans_reject_retention as an interval; NULL when refused notifications are kept forever';

CREATE OR REPLACE FUNCTION paas.node_apply(n paas.nodes, event text, actor text, reason text DEFAULT NULL::text)
 RETURNS paas.nodes
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	old text := n.status;
	nxt text := paas.node_transition(n.status, event);
BEGIN
	UPDATE paas.nodes
	   SET status = nxt,
		   is_ready = CASE WHEN nxt = 'ACTIVE' AND event LIKE 'admin_%' THEN true
						   WHEN nxt IN ('NOT_READY', 'INACTIVE') AND nxt <> old THEN false
						   ELSE is_ready END,
		   cordoned = CASE event WHEN 'cordon' THEN true WHEN 'uncordon' THEN false ELSE cordoned END,
		   last_health_check = CASE WHEN nxt = 'ACTIVE' AND event LIKE 'admin_%' THEN now()
									ELSE last_health_check END,
		   status_changed_at = CASE WHEN nxt <> old THEN now() ELSE status_changed_at END,
		   updated_at = now()
	 WHERE id = n.id
	RETURNING * INTO n;
	PERFORM paas.node_audit(n, old, event, actor, reason);
	RETURN n;
END
$function$
;
COMMENT ON FUNCTION paas.node_apply(paas.nodes,text,text,text) IS 'applies a status-machine event to a node (PT409 when illegal) and audits it';

CREATE OR REPLACE FUNCTION paas.node_audit(n paas.nodes, from_status text, event text, actor text, reason text)
	RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
		VALUES (n.id, n.name, from_status, n.status, event, actor, left(reason, 500));
	END;
COMMENT ON FUNCTION paas.node_audit(paas.nodes,text,text,text,text) IS 'records one transition of a node';

CREATE OR REPLACE FUNCTION paas.node_check(errs jsonb, s jsonb, creating boolean)
 RETURNS jsonb
 LANGUAGE c
 IMMUTABLE PARALLEL SAFE
AS '$libdir/paas', $function$paas_node_check$function$
;
COMMENT ON FUNCTION paas.node_check(jsonb,jsonb,boolean) IS 'field errors of a node in the original''s field set';

CREATE OR REPLACE FUNCTION paas.node_check_join(tok text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	IF tok IS NULL OR tok = '' THEN
		IF session_user <> 'paas_api' THEN
			RETURN;
		END IF;
		RAISE EXCEPTION 'Join token required' USING ERRCODE = 'PT401';
	END IF;
	UPDATE paas.node_join_tokens SET last_used_at = now()
	 WHERE token_hash = paas.node_token_hash(tok) AND revoked_at IS NULL
	   AND (expires_at IS NULL OR expires_at > now());
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Invalid join token' USING ERRCODE = 'PT401';
	END IF;
END
$function$
;
COMMENT ON FUNCTION paas.node_check_join(text) IS 'PT401 unless tok is a live join token';

CREATE OR REPLACE FUNCTION paas.node_from_k8s(doc jsonb, OUT spec jsonb, OUT errs jsonb)
 RETURNS record
 LANGUAGE c
 IMMUTABLE PARALLEL SAFE
AS '$libdir/paas', $function$paas_node_from_k8s$function$
;
COMMENT ON FUNCTION paas.node_from_k8s(jsonb) IS 'a Kubernetes Node object as a node spec, with field errors in the object''s paths';

CREATE OR REPLACE FUNCTION paas.node_hostname_taken(host text, except_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	IF EXISTS (SELECT 1 FROM paas.nodes WHERE hostname = host AND id IS DISTINCT FROM except_id) THEN
		RAISE EXCEPTION 'Worker node with this hostname already exists' USING ERRCODE = 'PW409';
	END IF;
END
$function$
;
COMMENT ON FUNCTION paas.node_hostname_taken(text,uuid) IS 'PW409 when another node has this hostname';

CREATE OR REPLACE FUNCTION paas.node_is_inet(t text)
 RETURNS boolean
 LANGUAGE c
 IMMUTABLE PARALLEL SAFE STRICT
AS '$libdir/paas', $function$paas_node_is_inet$function$
;
COMMENT ON FUNCTION paas.node_is_inet(text) IS 'whether t is an IPv4/IPv6 address (CIDR allowed)';

CREATE OR REPLACE FUNCTION paas.node_schedulable(n paas.nodes) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN n.status = 'ACTIVE' AND n.is_ready AND NOT n.cordoned;
COMMENT ON FUNCTION paas.node_schedulable(paas.nodes) IS 'ACTIVE, ready and not cordoned';

CREATE OR REPLACE FUNCTION paas.node_spec(n paas.nodes) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'name', n.name, 'hostname', n.hostname, 'ipAddress', host(n.ip_address),
		'addresses', n.addresses, 'architecture', n.architecture, 'operatingSystem', n.operating_system,
		'cpuCores', n.cpu_cores, 'cpuArchitecture', n.cpu_architecture,
		'totalMemory', n.total_memory, 'totalStorage', n.total_storage, 'maxPods', n.max_pods,
		'labels', n.labels, 'taints', n.taints, 'kubeletVersion', n.kubelet_version,
		'containerRuntime', n.container_runtime, 'kernelVersion', n.kernel_version,
		'osImage', n.os_image, 'providerId', n.provider_id, 'podCidr', n.pod_cidr, 'kubeUid', n.kube_uid,
		'capacity', jsonb_build_object('cpu', n.cpu_capacity_m || 'm', 'memory', n.memory_capacity::text,
									   'ephemeral-storage', n.storage_capacity::text, 'pods', n.max_pods::text),
		'allocatable', jsonb_build_object('cpu', n.cpu_allocatable_m || 'm', 'memory', n.memory_allocatable::text,
										  'ephemeral-storage', n.storage_allocatable::text,
										  'pods', n.pods_allocatable::text));
COMMENT ON FUNCTION paas.node_spec(paas.nodes) IS 'the stored spec of a node, input of an update';

CREATE OR REPLACE FUNCTION paas.node_write(node_id uuid, s jsonb)
 RETURNS paas.nodes
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n paas.nodes;
BEGIN
	SELECT * INTO n FROM paas.node_write_many(ARRAY[node_id], ARRAY[s]);
	RETURN n;
END
$function$
;
COMMENT ON FUNCTION paas.node_write(uuid,jsonb) IS 'stores the descriptive fields of a validated node spec';

CREATE OR REPLACE FUNCTION paas.node_write_many(ids uuid[], specs jsonb[])
 RETURNS SETOF paas.nodes
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	-- PL/pgSQL keeps the plan of this wide statement (an SQL function plans it at every call)
	RETURN QUERY WITH w AS (
	UPDATE paas.nodes SET
		name = s ->> 'name',
		hostname = s ->> 'hostname',
		ip_address = (s ->> 'ipAddress')::inet,
		addresses = coalesce(s -> 'addresses',
							 jsonb_build_array(jsonb_build_object('type', 'InternalIP', 'address', s ->> 'ipAddress'),
											   jsonb_build_object('type', 'Hostname', 'address', s ->> 'hostname'))),
		architecture = coalesce(s ->> 'architecture', 'amd64'),
		operating_system = coalesce(s ->> 'operatingSystem', 'linux'),
		cpu_cores = (s ->> 'cpuCores')::numeric::int,
		cpu_architecture = s ->> 'cpuArchitecture',
		total_memory = paas.qty_of(s -> 'totalMemory', NULL),
		total_storage = paas.qty_of(s -> 'totalStorage', NULL),
		cpu_capacity_m = paas.quantity_milli(c ->> 'cpu'),
		memory_capacity = paas.quantity_value(c ->> 'memory'),
		storage_capacity = paas.quantity_value(coalesce(c ->> 'ephemeral-storage', '0')),
		cpu_allocatable_m = paas.quantity_milli(a ->> 'cpu'),
		memory_allocatable = paas.quantity_value(a ->> 'memory'),
		storage_allocatable = paas.quantity_value(coalesce(a ->> 'ephemeral-storage', '0')),
		pods_allocatable = paas.quantity_value(coalesce(a ->> 'pods', c ->> 'pods')),
		max_pods = coalesce((s ->> 'maxPods')::numeric::int, max_pods),
		allocated_cpu = coalesce(paas.qty_of(s -> 'allocatedCPU', ''), allocated_cpu),
		allocated_memory = coalesce(paas.qty_of(s -> 'allocatedMemory', NULL), allocated_memory),
		allocated_storage = coalesce(paas.qty_of(s -> 'allocatedStorage', NULL), allocated_storage),
		cpu_allocated_m = coalesce(paas.quantity_milli(paas.qty_of(s -> 'allocatedCPU', '')), cpu_allocated_m),
		memory_allocated = coalesce(paas.quantity_value(paas.qty_of(s -> 'allocatedMemory', NULL)), memory_allocated),
		storage_allocated = coalesce(paas.quantity_value(paas.qty_of(s -> 'allocatedStorage', NULL)), storage_allocated),
		current_pods = coalesce((s ->> 'currentPods')::numeric::int, current_pods),
		labels = coalesce(nullif(s -> 'labels', 'null'), '{}'),
		taints = coalesce(nullif(s -> 'taints', 'null'), '[]'),
		conditions = coalesce(s -> 'conditions', conditions),
		kubelet_version = s ->> 'kubeletVersion',
		container_runtime = s ->> 'containerRuntime',
		kernel_version = s ->> 'kernelVersion',
		os_image = s ->> 'osImage',
		provider_id = s ->> 'providerId',
		pod_cidr = s ->> 'podCidr',
		kube_uid = s ->> 'kubeUid',
		updated_at = now()
	  FROM (SELECT u.node_id, u.s, coalesce(u.s -> 'capacity', u.c) AS c,
				   coalesce(u.s -> 'allocatable', u.s -> 'capacity', u.c) AS a
			  FROM (SELECT node_id, s,
						   jsonb_build_object('cpu', s ->> 'cpuCores', 'memory', s ->> 'totalMemory',
											  'ephemeral-storage', s ->> 'totalStorage', 'pods', s ->> 'maxPods') AS c
					  FROM unnest(ids, specs) AS x(node_id, s)) u) v
	 WHERE paas.nodes.id = v.node_id
	RETURNING paas.nodes.*)
	SELECT * FROM w;
END
$function$
;
COMMENT ON FUNCTION paas.node_write_many(uuid[],jsonb[]) IS 'stores the descriptive fields of validated node specs, one statement for many nodes';

CREATE OR REPLACE FUNCTION paas.open_session(u paas.users, ctx jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.sessions;
BEGIN
	INSERT INTO paas.sessions (user_id, ip, user_agent)
	VALUES (u.id, left(ctx ->> 'ip', 64), left(ctx ->> 'userAgent', 512))
	RETURNING * INTO s;
	RETURN paas.session_reply(u, s, paas.issue_token(s));
END
$function$
;
COMMENT ON FUNCTION paas.open_session(paas.users,jsonb) IS 'opens a session and returns its first tokens';

CREATE OR REPLACE FUNCTION paas.platform_account(code text)
 RETURNS bigint
 LANGUAGE plpgsql
 STABLE STRICT
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	acc bigint;
BEGIN
	SELECT a.id INTO acc FROM paas.ledger_accounts a
	 WHERE a.kind = 'platform' AND a.code = platform_account.code;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'platform account "%" does not exist', platform_account.code
			USING ERRCODE = 'PT404';
	END IF;
	RETURN acc;
END
$function$
;
COMMENT ON FUNCTION paas.platform_account(text) IS 'id of a platform account (gateway_clearing, revenue, adjustments, refunds); PT404 otherwise';
REVOKE ALL ON FUNCTION paas.platform_account(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paas.platform_account(text) TO paas_owner;

CREATE OR REPLACE FUNCTION paas.read_node(key text)
 RETURNS paas.nodes
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n paas.nodes;
BEGIN
	SELECT * INTO n FROM paas.nodes WHERE id = paas.to_uuid(key);
	IF NOT FOUND THEN
		SELECT * INTO n FROM paas.nodes WHERE name = key;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Worker node not found' USING ERRCODE = 'PW404';
	END IF;
	RETURN n;
END
$function$
;
COMMENT ON FUNCTION paas.read_node(text) IS 'a node by id or name, unlocked; PW404 otherwise';

CREATE OR REPLACE FUNCTION paas.read_user(id_text text)
 RETURNS paas.users
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users;
BEGIN
	SELECT * INTO u FROM paas.users
	 WHERE id = paas.to_uuid(id_text) AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'User not found' USING ERRCODE = 'PU404';
	END IF;
	RETURN u;
END
$function$
;
COMMENT ON FUNCTION paas.read_user(text) IS 'a live account by id, unlocked; PU404 otherwise';

CREATE OR REPLACE FUNCTION paas.require_admin(ctx jsonb)
 RETURNS paas.users
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	u paas.users;
BEGIN
	IF ctx ->> 'userId' IS NULL AND session_user <> 'paas_api' THEN
		RETURN NULL;
	END IF;
	u := paas.require_user(ctx);
	IF u.role <> 'ADMINISTRATOR' THEN
		RAISE EXCEPTION 'Insufficient permissions' USING ERRCODE = 'PT403';
	END IF;
	RETURN u;
END
$function$
;
COMMENT ON FUNCTION paas.require_admin(jsonb) IS 'the calling administrator (NULL: a DBA session); PT401/PT403 otherwise';

CREATE OR REPLACE FUNCTION paas.reserve_invoice_numbers(series text, k integer)
 RETURNS integer
 LANGUAGE plpgsql
 STRICT
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.reserve_invoice_numbers(text,integer) IS 'reserves k gap-free numbers of series INV or CN in this transaction; returns the number before the block';

CREATE OR REPLACE FUNCTION paas.revoke_sessions(uid uuid, reason text, keep uuid DEFAULT NULL::uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n integer;
BEGIN
	UPDATE paas.sessions SET revoked_at = now(), revoke_reason = reason
	 WHERE user_id = uid AND revoked_at IS NULL AND id IS DISTINCT FROM keep;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$function$
;
COMMENT ON FUNCTION paas.revoke_sessions(uuid,text,uuid) IS 'revokes every live session of a user except "keep"; returns how many';

CREATE OR REPLACE FUNCTION paas.run_job(job_name text)
 RETURNS boolean
 LANGUAGE plpgsql
 STRICT
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	j paas.job;
	t0 timestamptz := clock_timestamp();
	res jsonb;
	err text;
BEGIN
	SELECT * INTO j FROM paas.job
	 WHERE name = job_name AND runner = 'worker' AND enabled AND next_run_at <= now()
	 FOR UPDATE SKIP LOCKED;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;

	BEGIN
		EXECUTE format('SELECT %s()', j.fn) INTO res;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
	END;

	INSERT INTO paas.job_run (job, started_at, finished_at, ok, detail, error)
	VALUES (j.name, t0, clock_timestamp(), err IS NULL, res, err);

	UPDATE paas.job
	   SET next_run_at = greatest(j.next_run_at + j.run_every, clock_timestamp())
	 WHERE name = j.name;
	RETURN err IS NULL;
END
$function$
;
COMMENT ON FUNCTION paas.run_job(text) IS 'runs a due job once (safe to call concurrently) and records the run';

CREATE OR REPLACE FUNCTION paas.run_parallel_begin()
 RETURNS boolean
 LANGUAGE c
AS '$libdir/paas', $function$paas_run_parallel_begin$function$
;
COMMENT ON FUNCTION paas.run_parallel_begin() IS 'whether this statement''s paas.run_parallel calls start workers (not in a transaction block, nothing written); when they do, its calls from exception blocks do too';

CREATE OR REPLACE FUNCTION paas.run_renewals_part(shard integer DEFAULT 0, shards integer DEFAULT 1)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
 SET jit TO 'off'
AS $function$
DECLARE
	cfg paas.subscription_settings := paas.subscription_config();
	rev bigint := paas.platform_account('revenue');
	last_end timestamptz := '-infinity';
	last_id uuid := '00000000-0000-0000-0000-000000000000';
	n int;
	upd bigint;
	behind bigint;
	passes int := 1;
	batches int := 0;
	examined bigint := 0;
	entries jsonb;
	ids bigint[];
	res jsonb;
	r record;
	out jsonb;
BEGIN
	IF shards IS NULL OR shards < 1 OR shard IS NULL OR shard < 0 OR shard >= shards THEN
		RAISE EXCEPTION 'shard must be in 0 .. shards - 1' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- One run of a shard at a time (api.run_renewals holds the run's lock
	-- while its shards run in other backends).
	PERFORM pg_advisory_xact_lock(hashtext('paas.run_renewals/' || shards), shard);

	IF to_regclass('pg_temp.renewal_batch') IS NULL THEN
		CREATE TEMP TABLE renewal_batch (
			seq int PRIMARY KEY, tid tid, id uuid, user_id uuid, service_id uuid, display_name text,
			status text, price bigint, period_no int, anchor_at timestamptz, anchor_period int,
			period_end timestamptz, grace_until timestamptz, pay boolean, eseq bigint, entry jsonb,
			event text, new_status text, new_grace timestamptz, invoice_id uuid) ON COMMIT DROP;
		CREATE TEMP TABLE renewal_charged (
			seq bigint GENERATED ALWAYS AS IDENTITY, id uuid, user_id uuid, service_id uuid,
			display_name text, period_no int, price bigint, period_start timestamptz,
			period_end timestamptz, entry_id bigint, invoice_id uuid) ON COMMIT DROP;
		CREATE TEMP TABLE renewal_count (event text, to_status text, cnt bigint, amount bigint) ON COMMIT DROP;
	ELSE
		TRUNCATE renewal_charged, renewal_count;
	END IF;

	-- Passes over everything due; a second pass only when a renewed
	-- subscription is still behind (its new period has ended too).
	LOOP
		last_end := '-infinity';
		last_id := '00000000-0000-0000-0000-000000000000';
		behind := 0;
		LOOP
			-- One batch: lock the next due rows (SKIP LOCKED: rows an owner or an
			-- administrator is changing wait for the next run), decide who can
			-- pay (per user, the due prices in due order against the balance
			-- read now; a concurrent debit is caught by the ledger below) and
			-- what the status machine makes of each row.
			TRUNCATE renewal_batch;
			INSERT INTO renewal_batch
			SELECT x.seq, x.tid, x.id, x.user_id, x.service_id, x.display_name, x.status, x.price, x.period_no,
				   x.anchor_at, x.anchor_period, x.current_period_end, x.grace_until, x.pay,
				   CASE WHEN x.pay AND x.price > 0
						THEN count(*) FILTER (WHERE x.pay AND x.price > 0) OVER (ORDER BY x.seq) END,
				   CASE WHEN x.pay AND x.price > 0 THEN jsonb_build_object(
						'kind', 'subscription_renewal',
						'memo', format('Subscription renewal for %s, period %s', x.display_name, x.period_no + 1),
						'ref', jsonb_build_object('subscriptionId', x.id, 'serviceId', x.service_id,
												  'period', x.period_no + 1),
						'postings', jsonb_build_array(
							jsonb_build_object('account', x.wallet, 'amount', -x.price),
							jsonb_build_object('account', rev, 'amount', x.price))) END,
				   x.event,
				   CASE WHEN x.event <> 'payment_failed' THEN paas.subscription_transition(x.status, x.event)
						WHEN x.g <= now() THEN paas.subscription_transition(
							paas.subscription_transition(x.status, 'payment_failed'), 'grace_expired')
						ELSE paas.subscription_transition(x.status, 'payment_failed') END,
				   x.g,
				   -- the id of the invoice issued at the end of the run
				   CASE WHEN x.pay AND x.price > 0 THEN gen_random_uuid() END
			  FROM (SELECT y.*,
						   CASE WHEN y.status = 'CANCELLED' THEN 'period_ended'
								WHEN y.pay THEN 'renew' ELSE 'payment_failed' END AS event,
						   coalesce(y.grace_until, y.current_period_end + cfg.grace_period) AS g
					  FROM (SELECT z.*,
								   z.status <> 'CANCELLED'
								   AND (z.price = 0 OR z.cum <= coalesce(z.balance, 0)) AS pay
							  FROM (SELECT d.*, v.display_name, a.id AS wallet, a.balance,
										   row_number() OVER (ORDER BY d.current_period_end, d.id) AS seq,
										   sum(CASE WHEN d.status <> 'CANCELLED' THEN d.price ELSE 0 END)
											   OVER (PARTITION BY d.user_id
													 ORDER BY d.current_period_end, d.id) AS cum
									  FROM (SELECT s.*, s.ctid AS tid FROM paas.subscriptions s
											 WHERE s.status IN ('ACTIVE', 'GRACE', 'CANCELLED')
											   AND s.current_period_end <= now()
											   AND (s.current_period_end, s.id) > (last_end, last_id)
											   AND (shards = 1 OR paas.renewal_shard(s.user_id, shards) = shard)
											 ORDER BY s.current_period_end, s.id
											 LIMIT cfg.batch_size
											 FOR UPDATE OF s SKIP LOCKED) d
									  JOIN paas.services v ON v.id = d.service_id
									  -- the wallet row: paas.wallet_account() and
									  -- paas.wallet_balance() in one join
									  LEFT JOIN paas.ledger_accounts a
											 ON a.user_id = d.user_id AND a.kind = 'wallet') z) y) x;
			GET DIAGNOSTICS n = ROW_COUNT;
			EXIT WHEN n = 0;
			batches := batches + 1;
			examined := examined + n;
			SELECT b.period_end, b.id INTO last_end, last_id FROM renewal_batch b WHERE b.seq = n;

			-- The batch's charges: one ledger call.
			ids := NULL;
			SELECT jsonb_agg(b.entry ORDER BY b.eseq) INTO entries FROM renewal_batch b WHERE b.eseq IS NOT NULL;
			IF entries IS NOT NULL THEN
				BEGIN
					res := paas.ledger_post(NULL, entries);
					SELECT array_agg((e ->> 'id')::bigint ORDER BY k) INTO ids
					  FROM jsonb_array_elements(res -> 'entries') WITH ORDINALITY AS t (e, k);
				EXCEPTION WHEN SQLSTATE 'PT402' THEN
					-- A wallet went down since it was read: one entry at a time,
					-- the short ones become failed payments.
					FOR r IN SELECT b.seq, b.id, b.period_no, b.entry, b.eseq FROM renewal_batch b
							  WHERE b.eseq IS NOT NULL ORDER BY b.eseq LOOP
						BEGIN
							res := paas.ledger_post(format('subscription:%s:period:%s', r.id, r.period_no + 1),
													jsonb_build_array(r.entry));
							ids[r.eseq] := (res #>> '{entries,0,id}')::bigint;
						EXCEPTION WHEN SQLSTATE 'PT402' THEN
							UPDATE renewal_batch b
							   SET pay = false, event = 'payment_failed',
								   new_status = CASE WHEN b.new_grace <= now()
													 THEN paas.subscription_transition(
															paas.subscription_transition(b.status, 'payment_failed'),
															'grace_expired')
													 ELSE paas.subscription_transition(b.status, 'payment_failed') END
							 WHERE b.seq = r.seq;
						END;
					END LOOP;
				END;
			END IF;

			-- The charge rows, before the update: the key check of each row
			-- finds its subscription still locked FOR UPDATE by this run and
			-- writes nothing (after the update, it would lock the new row
			-- version, one more WAL record per charge).  Their invoices are
			-- issued at the end of the run with the ids drawn above.
			WITH c AS (
				INSERT INTO renewal_charged (id, user_id, service_id, display_name, period_no, price,
											 period_start, period_end, entry_id, invoice_id)
				SELECT b.id, b.user_id, b.service_id, b.display_name, b.period_no + 1, b.price, b.period_end,
					   paas.subscription_bound(b.anchor_at, b.period_no + 2 - b.anchor_period), ids[b.eseq],
					   b.invoice_id
				  FROM renewal_batch b WHERE b.pay ORDER BY b.seq
				RETURNING *)
			INSERT INTO paas.subscription_charges (subscription_id, period_no, kind, amount, period_start,
												   period_end, entry_id, invoice_id)
			SELECT c.id, c.period_no, 'renewal', c.price, c.period_start, c.period_end, c.entry_id, c.invoice_id
			  FROM c ORDER BY c.seq;

			UPDATE paas.subscriptions s
			   SET status = b.new_status,
				   period_no = CASE WHEN b.pay THEN s.period_no + 1 ELSE s.period_no END,
				   current_period_start = CASE WHEN b.pay THEN s.current_period_end ELSE s.current_period_start END,
				   current_period_end = CASE WHEN b.pay
											 THEN paas.subscription_bound(s.anchor_at, s.period_no + 2 - s.anchor_period)
											 ELSE s.current_period_end END,
				   grace_until = CASE WHEN b.new_status = 'GRACE' THEN b.new_grace END,
				   suspended_at = CASE WHEN b.new_status = 'SUSPENDED' THEN now() ELSE s.suspended_at END,
				   ended_at = CASE WHEN b.new_status = 'EXPIRED' THEN s.current_period_end ELSE s.ended_at END,
				   status_reason = CASE WHEN b.new_status = b.status THEN s.status_reason
										WHEN b.new_status = 'GRACE' THEN 'renewal failed: insufficient balance'
										WHEN b.new_status = 'SUSPENDED' THEN 'grace period ended unpaid'
										WHEN b.new_status = 'EXPIRED' THEN 'cancelled period ended' END,
				   updated_at = now()
			  FROM renewal_batch b
			 WHERE s.ctid = ANY (ARRAY(SELECT c.tid FROM renewal_batch c
										WHERE c.pay OR c.new_status <> c.status
										   OR c.new_grace IS DISTINCT FROM c.grace_until))
			   AND s.ctid = b.tid AND s.id = b.id
			   AND (b.pay OR b.new_status <> b.status OR b.new_grace IS DISTINCT FROM b.grace_until);
			-- The rows are locked since they were read, so their ctid cannot
			-- have changed (checked anyway).  The ctid array makes the rows a
			-- direct heap access (Tid Scan): a join on id or on ctid alone made
			-- the planner hash the whole table for every batch.
			GET DIAGNOSTICS upd = ROW_COUNT;
			IF upd <> (SELECT count(*) FROM renewal_batch b
						WHERE b.pay OR b.new_status <> b.status OR b.new_grace IS DISTINCT FROM b.grace_until) THEN
				RAISE EXCEPTION 'renewal run: a locked subscription moved' USING ERRCODE = 'internal_error';
			END IF;

			INSERT INTO paas.subscription_events (subscription_id, event, from_status, to_status, reason)
			SELECT b.id, b.event, b.status, b.new_status,
				   CASE b.new_status WHEN 'ACTIVE' THEN 'renewed by the renewal run'
				   WHEN 'GRACE' THEN 'renewal failed: insufficient balance'
				   WHEN 'SUSPENDED' THEN 'grace period ended unpaid'
				   ELSE 'cancelled period ended' END
			  FROM renewal_batch b WHERE b.new_status <> b.status ORDER BY b.seq;

			INSERT INTO renewal_count
			SELECT b.event, b.new_status, count(*), coalesce(sum(b.price) FILTER (WHERE b.pay), 0)
			  FROM renewal_batch b
			 WHERE b.pay OR b.new_status <> b.status OR b.new_grace IS DISTINCT FROM b.grace_until
			 GROUP BY 1, 2;

			behind := behind + (SELECT count(*) FROM renewal_batch b
								 WHERE b.pay AND paas.subscription_bound(b.anchor_at,
												b.period_no + 2 - b.anchor_period) <= now());
		END LOOP;
		EXIT WHEN behind = 0;
		passes := passes + 1;
	END LOOP;

	-- Every wallet lock of the run is held: now the invoices, set-based, with
	-- the ids the charge rows name (see paas.subscription_issue_invoices).
	PERFORM paas.subscription_issue_invoices();

	SELECT jsonb_build_object(
		'examined', examined,
		'batches', batches,
		'passes', passes,
		'renewed', coalesce(sum(cnt) FILTER (WHERE event = 'renew'), 0),
		'charged', coalesce(sum(amount) FILTER (WHERE event = 'renew'), 0),
		'toGrace', coalesce(sum(cnt) FILTER (WHERE to_status = 'GRACE' AND event = 'payment_failed'), 0),
		'suspended', coalesce(sum(cnt) FILTER (WHERE to_status = 'SUSPENDED'), 0),
		'expired', coalesce(sum(cnt) FILTER (WHERE to_status = 'EXPIRED'), 0))
	  INTO out FROM renewal_count;
	RETURN out;
END
$function$
;
COMMENT ON FUNCTION paas.run_renewals_part(integer,integer) IS 'one shard of a renewal run (the users with paas.renewal_shard(user_id, shards) = shard); returns {examined, batches, passes, renewed, charged, toGrace, suspended, expired}';

CREATE OR REPLACE FUNCTION paas.service_admin_row(s paas.services)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	RETURN paas.service_json(s) || jsonb_build_object('_count', paas.service_counts(s.id));
END
$function$
;
COMMENT ON FUNCTION paas.service_admin_row(paas.services) IS 'a service as GET /services/admin lists it: every field and _count';

CREATE OR REPLACE FUNCTION paas.service_counts(sid uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	RETURN jsonb_build_object('subscriptions', (SELECT count(*) FROM paas.subscriptions s WHERE s.service_id = sid));
END
$function$
;
COMMENT ON FUNCTION paas.service_counts(uuid) IS '{"subscriptions": n} of a service (the original''s _count), every status';

CREATE OR REPLACE FUNCTION paas.service_input(req jsonb, cur paas.services, creating boolean)
 RETURNS paas.services
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	errs jsonb := '[]';
	n integer;
	s paas.services := cur;
	res jsonb := req -> 'resources';
	v jsonb;
	cpu_req integer;
	cpu_lim integer;
	mem_req integer;
	mem_lim integer;
	cpu_lim2 integer;
	mem_lim2 integer;
	f text;
BEGIN
	-- surrounding blanks do not count towards lengths
	FOREACH f IN ARRAY ARRAY['displayName', 'description', 'version', 'dockerImage'] LOOP
		IF jsonb_typeof(req -> f) = 'string' THEN
			req := jsonb_set(req, ARRAY[f], to_jsonb(btrim(req ->> f, E' \t\r\n')));
		END IF;
	END LOOP;

	-- name: set once
	IF creating THEN
		n := jsonb_array_length(errs);
		errs := paas.check_text(errs, req, 'name', true, 2, 50);
		IF jsonb_array_length(errs) = n THEN
			IF req ->> 'name' !~ '^[a-z0-9-]+$' THEN
				errs := paas.add_err(errs, 'name',
					'name must contain only lowercase letters, digits and hyphens');
			ELSIF req ->> 'name' IN ('admin', 'categories') THEN
				errs := paas.add_err(errs, 'name', 'name is reserved');
			END IF;
		END IF;
	ELSIF req -> 'name' IS NOT NULL AND req -> 'name' <> 'null'::jsonb
		  AND req ->> 'name' IS DISTINCT FROM cur.name THEN
		errs := paas.add_err(errs, 'name', 'name cannot be changed');
	END IF;

	errs := paas.check_text(errs, req, 'displayName', creating, 2, 100);
	errs := paas.check_text(errs, req, 'description', creating, 10, 500);
	errs := paas.check_enum(errs, req, 'category', false, paas.service_category_names());
	errs := paas.check_text(errs, req, 'version', false, 1, 50);

	n := jsonb_array_length(errs);
	errs := paas.check_text(errs, req, 'dockerImage', creating, 1, 255);
	IF jsonb_array_length(errs) = n AND req ->> 'dockerImage' IS NOT NULL
	   AND req ->> 'dockerImage' !~ ('^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?'
									'(/[a-z0-9]+([._-]+[a-z0-9]+)*)*'
									'(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$') THEN
		errs := paas.add_err(errs, 'dockerImage',
			'dockerImage must be an image reference such as "nginx:1.27" or "ghcr.io/org/app:tag"');
	END IF;

	errs := paas.check_int(errs, req, 'containerPort', false, 1, 65535);
	errs := paas.check_int(errs, req, 'defaultPort', false, 1, 65535);
	IF req ->> 'containerPort' IS NOT NULL AND req ->> 'defaultPort' IS NOT NULL
	   AND btrim(req ->> 'containerPort') IS DISTINCT FROM btrim(req ->> 'defaultPort') THEN
		errs := paas.add_err(errs, 'defaultPort', 'defaultPort and containerPort must agree');
	END IF;
	errs := paas.check_int(errs, req, 'monthlyPrice', false, 0, 1000000000);
	errs := paas.check_bool(errs, req, 'isActive', false);

	-- features: up to 50 strings of 1-200 characters
	v := req -> 'features';
	IF v IS NOT NULL AND v <> 'null'::jsonb THEN
		IF jsonb_typeof(v) <> 'array' THEN
			errs := paas.add_err(errs, 'features', 'features must be an array of strings');
		ELSIF jsonb_array_length(v) > 50 THEN
			errs := paas.add_err(errs, 'features', 'features must hold at most 50 entries');
		ELSIF EXISTS (SELECT 1 FROM jsonb_array_elements(v) e
					   WHERE jsonb_typeof(e) <> 'string'
						  OR char_length(e #>> '{}') NOT BETWEEN 1 AND 200) THEN
			errs := paas.add_err(errs, 'features', 'features must be strings of 1 to 200 characters');
		END IF;
	END IF;

	-- environmentVars: up to 100 NAME -> string value
	v := req -> 'environmentVars';
	IF v IS NOT NULL AND v <> 'null'::jsonb THEN
		IF jsonb_typeof(v) <> 'object' THEN
			errs := paas.add_err(errs, 'environmentVars', 'environmentVars must be an object of strings');
		ELSIF (SELECT count(*) FROM jsonb_object_keys(v)) > 100 THEN
			errs := paas.add_err(errs, 'environmentVars', 'environmentVars must hold at most 100 variables');
		ELSIF EXISTS (SELECT 1 FROM jsonb_object_keys(v) k
					   WHERE k !~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$') THEN
			errs := paas.add_err(errs, 'environmentVars',
				'environmentVars names must be letters, digits and underscores, not starting with a digit');
		ELSIF EXISTS (SELECT 1 FROM jsonb_each(v) e
					   WHERE jsonb_typeof(e.value) <> 'string'
						  OR char_length(e.value #>> '{}') > 4096) THEN
			errs := paas.add_err(errs, 'environmentVars',
				'environmentVars values must be strings of at most 4096 characters');
		END IF;
	END IF;

	-- resources object
	IF res IS NOT NULL AND res <> 'null'::jsonb THEN
		IF jsonb_typeof(res) <> 'object' THEN
			errs := paas.add_err(errs, 'resources',
				'resources must be an object {cpuMillicores, memoryMiB, storageGiB}');
			res := NULL;
		ELSE
			n := jsonb_array_length(errs);
			errs := paas.check_int(errs, jsonb_build_object('resources.cpuMillicores', res -> 'cpuMillicores'),
								   'resources.cpuMillicores', false, 1, 64000);
			IF jsonb_array_length(errs) = n THEN
				cpu_lim2 := (res ->> 'cpuMillicores')::integer;
			END IF;
			n := jsonb_array_length(errs);
			errs := paas.check_int(errs, jsonb_build_object('resources.memoryMiB', res -> 'memoryMiB'),
								   'resources.memoryMiB', false, 16, 262144);
			IF jsonb_array_length(errs) = n THEN
				mem_lim2 := (res ->> 'memoryMiB')::integer;
			END IF;
			errs := paas.check_int(errs, jsonb_build_object('resources.storageGiB', res -> 'storageGiB'),
								   'resources.storageGiB', false, 0, 10240);
		END IF;
	ELSE
		res := NULL;
	END IF;

	-- the original's quantity strings (a JSON number is not a quantity)
	SELECT q.value, errs || q.err INTO cpu_req, errs FROM paas.service_quantity(req, 'cpuRequest') q;
	SELECT q.value, errs || q.err INTO cpu_lim, errs FROM paas.service_quantity(req, 'cpuLimit') q;
	SELECT q.value, errs || q.err INTO mem_req, errs FROM paas.service_quantity(req, 'memRequest') q;
	SELECT q.value, errs || q.err INTO mem_lim, errs FROM paas.service_quantity(req, 'memLimit') q;

	-- both forms of a limit must agree
	IF cpu_lim IS NOT NULL AND cpu_lim2 IS NOT NULL AND cpu_lim <> cpu_lim2 THEN
		errs := paas.add_err(errs, 'cpuLimit', 'cpuLimit and resources.cpuMillicores must agree');
	END IF;
	IF mem_lim IS NOT NULL AND mem_lim2 IS NOT NULL AND mem_lim <> mem_lim2 THEN
		errs := paas.add_err(errs, 'memLimit', 'memLimit and resources.memoryMiB must agree');
	END IF;

	-- PUT needs something to change
	IF NOT creating AND NOT (req ?| ARRAY['name', 'displayName', 'description', 'category', 'version',
			'dockerImage', 'containerPort', 'defaultPort', 'monthlyPrice', 'isActive', 'features',
			'environmentVars', 'resources', 'cpuRequest', 'cpuLimit', 'memRequest', 'memLimit']) THEN
		errs := paas.add_err(errs, '', 'at least one field to update is required');
	END IF;
	PERFORM paas.raise_if_invalid(errs);

	cpu_lim := coalesce(cpu_lim, cpu_lim2);
	mem_lim := coalesce(mem_lim, mem_lim2);

	s.display_name := coalesce(req ->> 'displayName', s.display_name);
	s.description := coalesce(req ->> 'description', s.description);
	s.category := coalesce(req ->> 'category', s.category);
	s.version := coalesce(req ->> 'version', s.version);
	s.docker_image := coalesce(req ->> 'dockerImage', s.docker_image);
	s.container_port := coalesce((req ->> 'containerPort')::integer, (req ->> 'defaultPort')::integer,
								 s.container_port);
	s.monthly_price := coalesce((req ->> 'monthlyPrice')::bigint, s.monthly_price);
	s.is_active := coalesce((req ->> 'isActive')::boolean, s.is_active);
	IF jsonb_typeof(req -> 'features') = 'array' THEN
		s.features := req -> 'features';
	END IF;
	IF jsonb_typeof(req -> 'environmentVars') = 'object' THEN
		s.environment_vars := req -> 'environmentVars';
	END IF;
	s.storage_gib := coalesce((res ->> 'storageGiB')::integer, s.storage_gib);
	s.cpu_limit_m := coalesce(cpu_lim, s.cpu_limit_m);
	s.mem_limit_mib := coalesce(mem_lim, s.mem_limit_mib);
	-- a create without a request asks for the default request, or the limit
	-- when that is smaller
	s.cpu_request_m := coalesce(cpu_req, CASE WHEN creating THEN least(s.cpu_request_m, s.cpu_limit_m)
											 ELSE s.cpu_request_m END);
	s.mem_request_mib := coalesce(mem_req, CASE WHEN creating THEN least(s.mem_request_mib, s.mem_limit_mib)
											   ELSE s.mem_request_mib END);
	IF s.cpu_request_m > s.cpu_limit_m THEN
		errs := paas.add_err(errs, 'cpuRequest',
			format('cpuRequest must not exceed the CPU limit (%s)', paas.cpu_text(s.cpu_limit_m)));
	END IF;
	IF s.mem_request_mib > s.mem_limit_mib THEN
		errs := paas.add_err(errs, 'memRequest',
			format('memRequest must not exceed the memory limit (%s)', paas.mem_text(s.mem_limit_mib)));
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	RETURN s;
END
$function$
;
COMMENT ON FUNCTION paas.service_input(jsonb,paas.services,boolean) IS 'validates a create/update request (PT400 with every failing field) and applies it to cur';

CREATE OR REPLACE FUNCTION paas.service_references(service_id uuid)
 RETURNS text[]
 LANGUAGE plpgsql
 STABLE STRICT
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	fk record;
	used boolean;
	found text[] := '{}';
BEGIN
	FOR fk IN
		SELECT con.conrelid::regclass::text AS tbl,
			   string_agg(format('r.%I = s.%I', ra.attname, sa.attname), ' AND ' ORDER BY k.i) AS cond
		  FROM pg_constraint con
		 CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k (rk, sk, i)
		  JOIN pg_attribute ra ON ra.attrelid = con.conrelid AND ra.attnum = k.rk
		  JOIN pg_attribute sa ON sa.attrelid = con.confrelid AND sa.attnum = k.sk
		 WHERE con.contype = 'f' AND con.confrelid = 'paas.services'::regclass
		 GROUP BY con.oid, con.conrelid
		 ORDER BY 1
	LOOP
		EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s r JOIN paas.services s ON %s WHERE s.id = $1)',
					   fk.tbl, fk.cond)
		   INTO used USING service_id;
		IF used AND NOT fk.tbl = ANY (found) THEN
			found := found || fk.tbl;
		END IF;
	END LOOP;
	RETURN found;
END
$function$
;
COMMENT ON FUNCTION paas.service_references(uuid) IS 'tables holding rows that reference the service through a foreign key (empty: none)';

CREATE OR REPLACE FUNCTION paas.services_page(req jsonb, public_view boolean, default_limit integer)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	lim int := coalesce((req ->> 'limit')::int, default_limit);
	off int := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	pattern text;
	active boolean;
	cond text := 's.deleted_at IS NULL';
	sort_col text;
	sort_dir text;
	total bigint;
	rows jsonb;
BEGIN
	IF req ->> 'search' IS NOT NULL THEN
		pattern := '%' || replace(replace(replace(req ->> 'search', '\', '\\'), '%', '\%'), '_', '\_') || '%';
		cond := cond || ' AND paas.service_search_text(s.name, s.display_name, s.description) ILIKE $1';
	END IF;
	IF req ->> 'category' IS NOT NULL THEN
		cond := cond || ' AND s.category = $2';
	END IF;
	IF public_view THEN
		-- a literal, so that the planner can use services_public_idx
		cond := cond || ' AND s.is_active';
	ELSIF req ->> 'status' IS NOT NULL THEN
		active := req ->> 'status' = 'active';
		IF req ->> 'isActive' IS NOT NULL AND (req ->> 'isActive')::boolean <> active THEN
			RETURN jsonb_build_object('rows', '[]'::jsonb, 'total', 0);
		END IF;
	ELSE
		active := (req ->> 'isActive')::boolean;
	END IF;
	IF active IS NOT NULL THEN
		cond := cond || ' AND s.is_active = $3';
	END IF;

	IF public_view THEN
		sort_col := 's.display_name';
		sort_dir := 'ASC';
	ELSE
		sort_col := CASE req ->> 'sortBy' WHEN 'updatedAt' THEN 's.updated_at' WHEN 'name' THEN 's.name'
					WHEN 'displayName' THEN 's.display_name' WHEN 'category' THEN 's.category'
					WHEN 'monthlyPrice' THEN 's.monthly_price' ELSE 's.created_at' END;
		sort_dir := CASE WHEN req ->> 'sortOrder' = 'asc' THEN 'ASC' ELSE 'DESC' END;
	END IF;

	EXECUTE 'SELECT count(*) FROM paas.services s WHERE ' || cond
	   INTO total USING pattern, req ->> 'category', active;
	EXECUTE format($q$
		SELECT coalesce(jsonb_agg(%3$s(p.s) ORDER BY p.rn), '[]')
		  FROM (SELECT s, row_number() OVER (ORDER BY %1$s %2$s, s.id) AS rn
				  FROM paas.services s
				 WHERE %4$s
				 ORDER BY %1$s %2$s, s.id
				 LIMIT $4 OFFSET $5) p
		$q$, sort_col, sort_dir,
		CASE WHEN public_view THEN 'paas.service_public_json'
			 ELSE 'paas.service_admin_row' END, cond)
	   INTO rows USING pattern, req ->> 'category', active, lim, off;
	RETURN jsonb_build_object('rows', rows, 'total', total);
END
$function$
;
COMMENT ON FUNCTION paas.services_page(jsonb,boolean,integer) IS 'one page of services filtered by search, category and state; {rows, total}';

CREATE OR REPLACE FUNCTION paas.subscription_charge(s paas.subscriptions, v paas.services, kind text, entry_kind text, idem text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	bal bigint;
	res jsonb;
	inv jsonb;
	c paas.subscription_charges;
	descr text := format('%s subscription, period %s (%s to %s)', v.display_name, s.period_no,
						 to_char(s.current_period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
						 to_char(s.current_period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
BEGIN
	IF s.price > 0 THEN
		bal := paas.wallet_balance(s.user_id);
		IF bal < s.price THEN
			RAISE EXCEPTION 'Insufficient balance'
				USING ERRCODE = 'PT402',
					  DETAIL = format('Current: %s, Required: %s, Shortfall: %s IDR', bal, s.price, s.price - bal);
		END IF;
		res := paas.ledger_post(format('subscription:%s:period:%s', s.id, s.period_no),
			jsonb_build_array(jsonb_build_object(
				'kind', entry_kind,
				'memo', format('%s for %s, period %s',
							   CASE entry_kind WHEN 'subscription_charge' THEN 'Subscription'
							   ELSE 'Subscription renewal' END, v.display_name, s.period_no),
				'ref', jsonb_build_object('subscriptionId', s.id, 'serviceId', v.id,
										  'period', s.period_no),
				'postings', jsonb_build_array(
					jsonb_build_object('account', paas.wallet_account(s.user_id), 'amount', -s.price),
					jsonb_build_object('account', paas.platform_account('revenue'), 'amount', s.price)))));
		inv := paas.issue_invoice(s.user_id, 'SUBSCRIPTION', s.price,
			jsonb_build_object('subscriptionId', s.id, 'serviceId', v.id, 'period', s.period_no,
							   'entryId', (res #>> '{entries,0,id}')::bigint),
			jsonb_build_array(jsonb_build_object('description', descr, 'quantity', 1,
												 'unitPrice', s.price, 'amount', s.price)));
	END IF;
	INSERT INTO paas.subscription_charges (subscription_id, period_no, kind, amount, period_start,
										   period_end, entry_id, invoice_id, idempotency_key)
	VALUES (s.id, s.period_no, kind, s.price, s.current_period_start, s.current_period_end,
			(res #>> '{entries,0,id}')::bigint, (inv ->> 'id')::uuid, idem)
	RETURNING * INTO c;
	RETURN jsonb_build_object(
		'charge', paas.subscription_charge_json(c),
		'balanceAfter', coalesce((res #>> '{entries,0,postings,0,balanceAfter}')::bigint,
								 paas.wallet_balance(s.user_id)));
END
$function$
;
COMMENT ON FUNCTION paas.subscription_charge(paas.subscriptions,paas.services,text,text,text) IS 'posts, invoices and records the current period of a locked subscription; PT402 when short';

CREATE OR REPLACE FUNCTION paas.subscription_config() RETURNS paas.subscription_settings
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT s FROM paas.subscription_settings s);
COMMENT ON FUNCTION paas.subscription_config() IS 'the subscription settings row';

CREATE OR REPLACE FUNCTION paas.subscription_issue_invoices()
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	items paas.invoice_item[];
	ids uuid[];
	n bigint;
BEGIN
	SELECT array_agg(ROW(x.user_id, 'SUBSCRIPTION', x.price,
						 jsonb_build_object('subscriptionId', x.id, 'serviceId', x.service_id,
											'period', x.period_no, 'entryId', x.entry_id),
						 jsonb_build_array(jsonb_build_object('description', x.descr, 'quantity', 1,
															  'unitPrice', x.price, 'amount', x.price))
						)::paas.invoice_item),
		   array_agg(x.invoice_id)
	  INTO items, ids
	  FROM (SELECT c.*, format('%s subscription, period %s (%s to %s)', c.display_name, c.period_no,
							   to_char(c.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
							   to_char(c.period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD')) AS descr
			  FROM renewal_charged c WHERE c.invoice_id IS NOT NULL
			 -- numbers follow the run's order; sorting these narrow rows is
			 -- cheaper than array_agg(... ORDER BY) over the built items
			 ORDER BY c.seq) x;
	SELECT count(*) INTO n FROM paas.issue_invoice_items(items, ids);
	IF n <> coalesce(cardinality(ids), 0) THEN
		RAISE EXCEPTION 'renewal run: % invoices issued for % charges', n, cardinality(ids)
			USING ERRCODE = 'internal_error';
	END IF;
	RETURN n;
END
$function$
;
COMMENT ON FUNCTION paas.subscription_issue_invoices() IS 'renewal run: issues the invoices of pg_temp.renewal_charged, with the ids its charge rows name, as one numbered block (paas.issue_invoice_items)';

CREATE OR REPLACE FUNCTION paas.subscription_of(uid uuid, id_text text)
 RETURNS paas.subscriptions
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	s paas.subscriptions;
BEGIN
	SELECT * INTO s FROM paas.subscriptions
	 WHERE id = paas.to_uuid(id_text) AND (uid IS NULL OR user_id = uid)
	 FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Subscription not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN s;
END
$function$
;
COMMENT ON FUNCTION paas.subscription_of(uuid,text) IS 'locks and returns a subscription of uid (any owner when uid is NULL); PT404 otherwise';

CREATE OR REPLACE FUNCTION paas.subscriptions_cancel_for_users(user_ids uuid[], reason text, actor_id uuid DEFAULT NULL::uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	n integer;
BEGIN
	WITH o AS (
		SELECT s.id, s.status FROM paas.subscriptions s
		 WHERE s.user_id = ANY (user_ids) AND s.status IN ('ACTIVE', 'GRACE', 'SUSPENDED')
		 ORDER BY s.id
		   FOR UPDATE),
	c AS (
		UPDATE paas.subscriptions s
		   SET status = paas.subscription_transition(o.status, 'cancel'), cancelled_at = now(),
			   grace_until = NULL, status_reason = reason, updated_at = now()
		  FROM o
		 WHERE s.id = o.id
		RETURNING s.id, o.status AS from_status, s.status AS to_status)
	INSERT INTO paas.subscription_events (subscription_id, event, from_status, to_status, actor_id, reason)
	SELECT c.id, 'cancel', c.from_status, c.to_status, subscriptions_cancel_for_users.actor_id,
		   subscriptions_cancel_for_users.reason
	  FROM c ORDER BY c.id;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$function$
;
COMMENT ON FUNCTION paas.subscriptions_cancel_for_users(uuid[],text,uuid) IS 'cancels at period end (no refund) the live subscriptions of deactivated or deleted accounts, with the reason';

CREATE OR REPLACE FUNCTION paas.subscriptions_page(req jsonb, uid uuid, default_limit integer)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	lim int := coalesce((req ->> 'limit')::int, default_limit);
	off int := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	st text := req ->> 'status';
	svc uuid := paas.filter_id(req ->> 'serviceId');
	total bigint;
	rows jsonb;
BEGIN
	SELECT count(*) INTO total FROM paas.subscriptions s
	 WHERE (uid IS NULL OR s.user_id = uid) AND (st IS NULL OR s.status = st)
	   AND (svc IS NULL OR s.service_id = svc);
	SELECT coalesce(jsonb_agg(paas.subscription_json(p.s, p.v) ORDER BY p.rn), '[]')
	  INTO rows
	  FROM (SELECT s, v, row_number() OVER (ORDER BY s.created_at DESC, s.id) AS rn
			  FROM paas.subscriptions s JOIN paas.services v ON v.id = s.service_id
			 WHERE (uid IS NULL OR s.user_id = uid) AND (st IS NULL OR s.status = st)
			   AND (svc IS NULL OR s.service_id = svc)
			 ORDER BY s.created_at DESC, s.id
			 LIMIT lim OFFSET off) p;
	RETURN jsonb_build_object('rows', rows, 'total', total);
END
$function$
;
COMMENT ON FUNCTION paas.subscriptions_page(jsonb,uuid,integer) IS 'newest first; status, serviceId, page, limit (validated by the caller); {rows, total}';

CREATE OR REPLACE FUNCTION paas.text_head(t text, bytes integer)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.text_head(text,integer) IS 'the longest prefix of a text that fits in the given number of bytes';

CREATE OR REPLACE FUNCTION paas.topup_credit_order(t paas.topups, o paas.topup_orders, n jsonb)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.topup_credit_order(paas.topups,paas.topup_orders,jsonb) IS 'credits a paid order exactly once (ledger, invoice, states); caller holds the top-up lock';

CREATE OR REPLACE FUNCTION paas.topup_post(key text, kind text, memo text, ref jsonb, uid uuid, delta bigint)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.topup_post(text,text,text,jsonb,uuid,bigint) IS 'one ledger entry gateway_clearing <-> wallet; returns the wallet posting';

CREATE OR REPLACE FUNCTION paas.topup_reverse_order(t paas.topups, o paas.topup_orders, target bigint, kind text)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.topup_reverse_order(paas.topups,paas.topup_orders,bigint,text) IS 'reverses a paid order up to a cumulative amount, once (one BLOCKED record per order while the wallet is short)';

CREATE OR REPLACE FUNCTION paas.topup_snap_result(u paas.users, snap jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.topup_snap_result(paas.users,jsonb) IS 'stores the Snap token of an order, or records the failure (committed PT502)';

CREATE OR REPLACE FUNCTION paas.topup_snap_step(t paas.topups, u paas.users)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.topup_snap_step(paas.topups,paas.users) IS 'the live Snap link of a top-up, or the {"$snap"} request httpd must send';

CREATE OR REPLACE FUNCTION paas.user_counts(uid uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
BEGIN
	RETURN jsonb_build_object('subscriptions', (SELECT count(*) FROM paas.subscriptions s WHERE s.user_id = uid));
END
$function$
;
COMMENT ON FUNCTION paas.user_counts(uuid) IS '{"subscriptions": n} of an account (the original''s _count), every status';

CREATE OR REPLACE FUNCTION paas.void_invoice(invoice_id uuid, reason text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
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
$function$
;
COMMENT ON FUNCTION paas.void_invoice(uuid,text) IS 'voids an invoice by issuing its credit note; PT404 / PT409';

CREATE OR REPLACE FUNCTION paas.wallet_account(user_id uuid)
 RETURNS bigint
 LANGUAGE plpgsql
 STRICT
 SET search_path TO 'pg_catalog', 'paas', 'pg_temp'
AS $function$
DECLARE
	acc bigint;
BEGIN
	SELECT a.id INTO acc FROM paas.ledger_accounts a WHERE a.user_id = wallet_account.user_id;
	IF FOUND THEN
		RETURN acc;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM paas.users u WHERE u.id = wallet_account.user_id) THEN
		RAISE EXCEPTION 'user % does not exist', wallet_account.user_id USING ERRCODE = 'PT404';
	END IF;
	INSERT INTO paas.ledger_accounts (kind, user_id) VALUES ('wallet', wallet_account.user_id)
	ON CONFLICT ON CONSTRAINT ledger_accounts_user_id_key DO NOTHING
	RETURNING id INTO acc;
	IF acc IS NULL THEN
		SELECT a.id INTO acc FROM paas.ledger_accounts a WHERE a.user_id = wallet_account.user_id;
	END IF;
	RETURN acc;
END
$function$
;
COMMENT ON FUNCTION paas.wallet_account(uuid) IS 'the user''s IDR wallet account id, created on first use; PT404 for an unknown user';
REVOKE ALL ON FUNCTION paas.wallet_account(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paas.wallet_account(uuid) TO paas_owner;

CREATE OR REPLACE FUNCTION api.billing_health(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object('status', 'healthy', 'service', 'billing', 'version', '1.0.0',
							  'database', 'up', 'gatewayConfigured', paas.midtrans_configured(),
							  'timestamp', paas.iso(now()));
COMMENT ON FUNCTION api.billing_health(jsonb,jsonb) IS 'GET /billing/health (public)';
REVOKE ALL ON FUNCTION api.billing_health(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.billing_health(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.billing_health(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.health(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object('status', 'healthy', 'database', 'up', 'version', 'v1',
							  'timestamp', paas.iso(now()),
							  'environment', CASE WHEN current_setting('paas.midtrans_is_production', true) = 'on'
												  THEN 'production' ELSE 'development' END);
COMMENT ON FUNCTION api.health(jsonb,jsonb) IS 'answers when the database is reachable; environment: production when paas.midtrans_is_production is on, else development';
REVOKE ALL ON FUNCTION api.health(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.health(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.health(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.services_categories(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT jsonb_agg(jsonb_build_object('name', c.name, 'displayName', c.display_name,
												'count', coalesce(n.cnt, 0)) ORDER BY c.ord)
			  FROM paas.service_categories() c
			  LEFT JOIN (SELECT category, count(*) AS cnt FROM paas.services
						  WHERE is_active AND deleted_at IS NULL GROUP BY category) n
				ON n.category = c.name);
COMMENT ON FUNCTION api.services_categories(jsonb,jsonb) IS 'GET /services/categories: every category with its number of active services';
REVOKE ALL ON FUNCTION api.services_categories(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.services_categories(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.services_categories(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION api.status(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT jsonb_build_object(
		'service', 'paas',
		'version', paas.version(),
		'databaseTime', paas.iso(clock_timestamp()),
		'worker', jsonb_build_object('running', w.running),
		'cron', EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'))
	FROM paas.worker_state() w);
COMMENT ON FUNCTION api.status(jsonb,jsonb) IS 'GET /status (public): version, database time, whether the background worker and pg_cron run';
REVOKE ALL ON FUNCTION api.status(jsonb,jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.status(jsonb,jsonb) TO paas_api;
GRANT EXECUTE ON FUNCTION api.status(jsonb,jsonb) TO paas_owner;

CREATE OR REPLACE FUNCTION paas.billing_feed(uid uuid)
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

CREATE OR REPLACE FUNCTION paas.feed_json(id text, created_at timestamptz, type text, status text,
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
COMMENT ON FUNCTION paas.feed_json(text,timestamp with time zone,text,text,bigint,text,text,bigint,bigint,text,text,text,text,jsonb) IS 'a feed row (the columns of paas.billing_feed) as the API prints it, as json; inlined by the planner';

CREATE OR REPLACE FUNCTION paas.filter_id(t text) RETURNS uuid
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN t IS NOT NULL THEN coalesce(paas.to_uuid(t), '00000000-0000-0000-0000-000000000000') END;
COMMENT ON FUNCTION paas.filter_id(text) IS 'an id filter''s uuid; the nil uuid (matches nothing) when the text cannot be an id';

CREATE OR REPLACE FUNCTION paas.invoice_item_errors(items jsonb) RETURNS jsonb
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
COMMENT ON FUNCTION paas.invoice_item_errors(jsonb) IS 'every field error of invoice items [{userId, kind, amount, ref, lines}] as [{field, message}]';

CREATE OR REPLACE FUNCTION paas.invoice_json(i paas.invoices) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION paas.midtrans_log(n jsonb, source text, sig_ok boolean, outcome text) RETURNS void
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
COMMENT ON FUNCTION paas.midtrans_log(jsonb,text,boolean,text) IS 'appends to paas.midtrans_notifications (a body over 16 kB as a bounded summary)';

CREATE OR REPLACE FUNCTION paas.midtrans_reject(n jsonb, ip text, reason text) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	BEGIN ATOMIC
		INSERT INTO paas.midtrans_rejects (reason, order_id, client_ip, body_size, body_sha256, body_head)
		SELECT reason, left(n ->> 'order_id', 100), left(ip, 64), octet_length(b.t),
			   sha256(convert_to(b.t, 'UTF8')), paas.text_head(b.t, 4096)
		  FROM (SELECT n::text AS t) b;
	END;
COMMENT ON FUNCTION paas.midtrans_reject(jsonb,text,text) IS 'appends a bounded record of a refused notification to paas.midtrans_rejects';

CREATE OR REPLACE FUNCTION paas.next_invoice_number(series text) RETURNS text
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN paas.invoice_number(paas.invoice_number_prefix(series), paas.reserve_invoice_numbers(series, 1) + 1);
COMMENT ON FUNCTION paas.next_invoice_number(text) IS 'allocates the next gap-free number of series INV or CN in this transaction';

CREATE OR REPLACE FUNCTION paas.node_json(n paas.nodes) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'id', n.id, 'name', n.name, 'hostname', n.hostname,
		'ipAddress', host(n.ip_address), 'addresses', n.addresses,
		'architecture', n.architecture, 'operatingSystem', n.operating_system,
		'cpuCores', n.cpu_cores, 'cpuArchitecture', n.cpu_architecture,
		'totalMemory', n.total_memory, 'totalStorage', n.total_storage,
		'allocatedCPU', n.allocated_cpu, 'allocatedMemory', n.allocated_memory,
		'allocatedStorage', n.allocated_storage,
		'maxPods', n.max_pods, 'currentPods', n.current_pods,
		'status', n.status, 'isReady', n.is_ready, 'isSchedulable', paas.node_schedulable(n),
		'unschedulable', n.cordoned,
		'lastHeartbeat', paas.iso(n.last_heartbeat), 'lastHealthCheck', paas.iso(n.last_health_check),
		'labels', n.labels, 'taints', n.taints, 'conditions', n.conditions)
	|| jsonb_build_object(
		'kubeletVersion', n.kubelet_version, 'containerRuntime', n.container_runtime,
		'kernelVersion', n.kernel_version, 'osImage', n.os_image,
		'providerId', n.provider_id, 'podCidr', n.pod_cidr, 'kubeUid', n.kube_uid,
		'capacity', jsonb_build_object('cpuMillicores', n.cpu_capacity_m, 'memoryBytes', n.memory_capacity,
									   'storageBytes', n.storage_capacity, 'pods', n.max_pods),
		'allocatable', jsonb_build_object('cpuMillicores', n.cpu_allocatable_m, 'memoryBytes', n.memory_allocatable,
										  'storageBytes', n.storage_allocatable, 'pods', n.pods_allocatable),
		'allocation', jsonb_build_object('cpuMillicores', n.cpu_allocated_m, 'memoryBytes', n.memory_allocated,
										 'storageBytes', n.storage_allocated, 'pods', n.current_pods,
										 'cpuPercent', paas.node_pct(n.cpu_allocated_m, n.cpu_allocatable_m),
										 'memoryPercent', paas.node_pct(n.memory_allocated, n.memory_allocatable),
										 'storagePercent', paas.node_pct(n.storage_allocated, n.storage_allocatable),
										 'podsPercent', paas.node_pct(n.current_pods, n.pods_allocatable)),
		'usage', jsonb_build_object('cpuMillicores', n.cpu_used_m, 'memoryBytes', n.memory_used,
									'storageBytes', n.storage_used,
									'cpuPercent', paas.node_pct(n.cpu_used_m, n.cpu_capacity_m),
									'memoryPercent', paas.node_pct(n.memory_used, n.memory_capacity),
									'storagePercent', paas.node_pct(n.storage_used, n.storage_capacity)),
		'agentClockSkewMs', n.agent_clock_skew_ms,
		'source', CASE WHEN n.kube_seen_at IS NOT NULL THEN 'kubernetes' ELSE 'agent' END,
		'kubeSeenAt', paas.iso(n.kube_seen_at),
		'registeredAt', paas.iso(n.registered_at), 'statusChangedAt', paas.iso(n.status_changed_at),
		'createdAt', paas.iso(n.created_at), 'updatedAt', paas.iso(n.updated_at));
COMMENT ON FUNCTION paas.node_json(paas.nodes) IS 'a worker node as the API prints it';

CREATE OR REPLACE FUNCTION paas.subscription_charge_json(c paas.subscription_charges) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'period', c.period_no, 'kind', c.kind, 'amount', c.amount, 'currency', 'IDR',
		'periodStart', paas.iso(c.period_start), 'periodEnd', paas.iso(c.period_end),
		'entryId', c.entry_id,
		'invoice', (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number,
											  'status', i.status)
					  FROM paas.invoices i WHERE i.id = c.invoice_id),
		'createdAt', paas.iso(c.created_at));
COMMENT ON FUNCTION paas.subscription_charge_json(paas.subscription_charges) IS 'a paid period as the API prints it';

CREATE OR REPLACE FUNCTION paas.topup_json(t paas.topups) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION paas.user_json(u paas.users) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email, 'role', u.role,
							  'isActive', u.is_active, 'createdAt', paas.iso(u.created_at),
							  'updatedAt', paas.iso(u.updated_at));
COMMENT ON FUNCTION paas.user_json(paas.users) IS 'public fields of an account, as the API prints them';

CREATE OR REPLACE FUNCTION paas.invoice_detail(i paas.invoices, u paas.users) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN paas.invoice_json(i) || paas.invoice_links(i) || jsonb_build_object(
		'user', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email),
		'creditNoteFor', (SELECT jsonb_build_object('id', c.id, 'invoiceNumber', c.number)
							FROM paas.invoices c WHERE c.id = i.credit_note_for),
		'voidedBy', (SELECT jsonb_build_object('id', c.id, 'invoiceNumber', c.number)
					   FROM paas.invoices c WHERE c.id = i.voided_by));
COMMENT ON FUNCTION paas.invoice_detail(paas.invoices,paas.users) IS 'an invoice with its user, top-up, subscription and credit-note links';

CREATE OR REPLACE FUNCTION paas.issue_invoice(user_id uuid, kind text, amount bigint, ref jsonb,
								   lines jsonb DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT paas.invoice_json(i)
			  FROM paas.issue_invoice_items(ARRAY[ROW(issue_invoice.user_id, issue_invoice.kind,
				issue_invoice.amount, issue_invoice.ref, issue_invoice.lines)::paas.invoice_item]) i);
COMMENT ON FUNCTION paas.issue_invoice(uuid,text,bigint,jsonb,jsonb) IS 'issues one PAID invoice numbered INV-YYYYMM-NNNNNN in the calling transaction (paas.issue_invoice_items)';

CREATE OR REPLACE FUNCTION paas.session_reply(u paas.users, s paas.sessions, tok text) RETURNS jsonb
	LANGUAGE sql STABLE
	RETURN jsonb_build_object(
		'user', paas.user_json(u),
		'refreshToken', tok,
		'session', jsonb_build_object('userId', u.id, 'role', u.role, 'sid', s.id));
COMMENT ON FUNCTION paas.session_reply(paas.users,paas.sessions,text) IS '{user, refreshToken, session} of a login, register or refresh';

-- ---- new: sql/parts/05_outcomes.sql ----
-- paas -- the outcome of a call: what a money-moving call answered, kept
-- under its idempotency key, so that the same call sent again (by httpd
-- after a lost connection, or by the client) is answered from the record
-- instead of moving money twice.
--
-- Rules a reader must know.
--   * Every HTTP route that moves money (flag ROUTE_MONEY in httpd's route
--     table) carries ctx.idempotencyKey: the client's Idempotency-Key
--     header, or a random UUID httpd makes for the request.  After a lost
--     connection httpd sends the SAME call with the SAME key again
--     (httpd/db.c), so the answer a client gets is always the outcome of
--     the one execution.
--   * The function of such a route calls paas.outcome_claim(fn, req, ctx)
--     before it locks or writes anything, and passes its answer through
--     paas.outcome_save(ctx, answer) on every path that commits.  The record
--     is written in the SAME transaction as the money change: it exists if
--     and only if the call committed.
--   * outcome_claim: no key -> NULL (a DBA's call without a key: nothing is
--     recorded).  A key this caller has not used -> NULL: execute.  A call
--     with a key whose first call is still running waits for that
--     transaction (the primary key), then sees its record.  A record of the
--     same function and request (SHA-256 of the function's name and the
--     request's jsonb text) -> the recorded answer: the function returns it
--     and moves no money.  Another function or another request -> PT409.
--   * Keys belong to their caller (ctx.userId; "session:<login role>" for a
--     DBA's session): one caller's key never answers another's call.
--   * A claimed record has its answer at commit (a deferred constraint
--     trigger): a path that forgets outcome_save fails loudly instead of
--     committing a record that would replay nothing.
--   * An error rolls the record back with everything else: a refused call
--     (PT402, PT404 ...) sent again runs again.
--   * Records are kept paas.outcome_retention() (24 hours), then deleted by
--     the job prune_call_outcomes; a key sent again after that is a new call
--     (the top-up and subscription keys stored in their own rows still
--     refuse or answer a reuse there).

CREATE TABLE paas.call_outcomes (
	caller			text NOT NULL CHECK (char_length(caller) BETWEEN 1 AND 128),
	key				text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
	fn				text NOT NULL,		-- the api function, e.g. 'api.subscriptions_renew'
	request_hash	bytea NOT NULL,		-- SHA-256 of fn and the request's jsonb text
	response		jsonb,				-- the function's answer; NULL only inside its transaction
	created_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (caller, key)
) WITH (fillfactor = 90);
-- fillfactor 90: the answer is written by an UPDATE of the row the claim
-- inserted a moment before; the free space keeps that update HOT.
CREATE INDEX call_outcomes_created_idx ON paas.call_outcomes (created_at);
COMMENT ON TABLE paas.call_outcomes IS
	'the answer of each committed money-moving call, under (caller, idempotency key); kept 24 hours';
REVOKE ALL ON paas.call_outcomes FROM PUBLIC;
GRANT SELECT ON paas.call_outcomes TO paas_owner;

-- How long a record answers its key.
CREATE FUNCTION paas.outcome_retention() RETURNS interval
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN interval '24 hours';
COMMENT ON FUNCTION paas.outcome_retention() IS
	'how long the outcome of a call is kept under its idempotency key (24 hours)';

-- Whose key it is: the user httpd verified, or the DBA's login role.
CREATE FUNCTION paas.outcome_caller(ctx jsonb) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN coalesce(ctx ->> 'userId', 'session:' || session_user);
COMMENT ON FUNCTION paas.outcome_caller(jsonb) IS
	'the owner of a call''s idempotency key: ctx.userId, or "session:<role>" for a DBA';

-- Before the call does anything: NULL when it must execute (no key, or a
-- new key, now claimed); the recorded answer when this caller already made
-- this call with this key; PT409 for the key used with another call.
CREATE FUNCTION paas.outcome_claim(fn text, req jsonb, ctx jsonb) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	k text := ctx ->> 'idempotencyKey';
	who text := paas.outcome_caller(ctx);
	h bytea;
	o paas.call_outcomes;
BEGIN
	IF k IS NULL THEN
		RETURN NULL;
	END IF;
	IF char_length(k) NOT BETWEEN 1 AND 255 THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', 'Idempotency-Key',
			'Idempotency-Key must be between 1 and 255 characters'));
	END IF;
	h := sha256(convert_to(fn || ' ' || coalesce(req, '{}'::jsonb)::text, 'UTF8'));
	-- A call with this key still running holds its row: this waits for
	-- its transaction, then either inserts (it rolled back) or conflicts.
	INSERT INTO paas.call_outcomes (caller, key, fn, request_hash)
	VALUES (who, k, fn, h)
	ON CONFLICT (caller, key) DO NOTHING;
	IF FOUND THEN
		RETURN NULL;
	END IF;
	SELECT * INTO o FROM paas.call_outcomes c WHERE c.caller = who AND c.key = k;
	IF NOT FOUND THEN
		-- pruned between the two statements: claim it afresh
		RETURN paas.outcome_claim(fn, req, ctx);
	END IF;
	IF o.fn <> fn OR o.request_hash <> h THEN
		RAISE EXCEPTION 'Idempotency-Key was already used for a different request'
			USING ERRCODE = 'PT409', HINT = 'Send a new request with a new key.';
	END IF;
	-- NULL here is this transaction's own claim (a function that calls
	-- itself again): execute.
	RETURN o.response;
END
$$;
COMMENT ON FUNCTION paas.outcome_claim(text, jsonb, jsonb) IS
	'claims ctx.idempotencyKey for a call: NULL = execute, else the recorded answer; PT409 key used for another call';

-- On every committing path of a claimed call: records its answer and
-- returns it unchanged.
CREATE FUNCTION paas.outcome_save(ctx jsonb, response jsonb) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF ctx ->> 'idempotencyKey' IS NOT NULL THEN
		UPDATE paas.call_outcomes c
		   SET response = coalesce(outcome_save.response, 'null'::jsonb)
		 WHERE c.caller = paas.outcome_caller(ctx) AND c.key = ctx ->> 'idempotencyKey';
	END IF;
	RETURN response;
END
$$;
COMMENT ON FUNCTION paas.outcome_save(jsonb, jsonb) IS
	'records the answer of the call claimed with ctx.idempotencyKey; returns the answer';

-- At commit: a claimed record without its answer is a bug of the calling
-- function; refusing the commit keeps the money change and the record
-- together.  A deferred trigger fires as the session's role (paas_api), so
-- it is SECURITY DEFINER to read the table.
CREATE FUNCTION paas.call_outcomes_complete() RETURNS trigger
	LANGUAGE plpgsql
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM paas.call_outcomes c
				WHERE c.caller = NEW.caller AND c.key = NEW.key AND c.response IS NULL) THEN
		RAISE EXCEPTION 'call of % claimed its idempotency key but recorded no outcome', NEW.fn
			USING ERRCODE = 'internal_error';
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.call_outcomes_complete() IS
	'refuses to commit a claimed call outcome that has no answer';
CREATE CONSTRAINT TRIGGER call_outcomes_complete
	AFTER INSERT ON paas.call_outcomes
	DEFERRABLE INITIALLY DEFERRED
	FOR EACH ROW EXECUTE FUNCTION paas.call_outcomes_complete();

-- Job: records past the retention are deleted, at most 50,000 a run.
CREATE FUNCTION paas.job_prune_call_outcomes() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM paas.call_outcomes
	 WHERE (caller, key) IN (SELECT caller, key FROM paas.call_outcomes
							  WHERE created_at < now() - paas.outcome_retention()
							  ORDER BY created_at LIMIT 50000);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n, 'retention', paas.outcome_retention()::text);
END
$$;
COMMENT ON FUNCTION paas.job_prune_call_outcomes() IS
	'deletes call outcomes older than paas.outcome_retention() (50,000 rows a run)';
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('prune_call_outcomes', 'paas.job_prune_call_outcomes', '10 minutes',
	 'deletes call outcomes (idempotency keys) older than 24 hours');

-- The records of the last day belong in a dump: a key sent again after a
-- restore is still answered.
SELECT pg_catalog.pg_extension_config_dump('paas.call_outcomes', '');

REVOKE ALL ON FUNCTION paas.outcome_retention(), paas.outcome_caller(jsonb),
	paas.outcome_claim(text, jsonb, jsonb), paas.outcome_save(jsonb, jsonb),
	paas.call_outcomes_complete(), paas.job_prune_call_outcomes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paas.outcome_retention(), paas.outcome_caller(jsonb),
	paas.outcome_claim(text, jsonb, jsonb), paas.outcome_save(jsonb, jsonb),
	paas.job_prune_call_outcomes() TO paas_owner;

-- ---- new: sql/parts/31_node_sync.sql ----
-- paas -- the node registry follows the Kubernetes API (bgworker/nodesync.c).
--
-- Rules a reader must know.
--   * The API is the source of truth for the nodes it knows: the node sync
--     worker lists /api/v1/nodes (pages of 500) and then watches it from the
--     list's resourceVersion (410 Gone -> list again).  A page, or a round
--     of watch events, goes through paas.node_sync_apply_many, which gives
--     each Node object what paas.node_sync_apply would, set-based for the
--     common cases (seen, heartbeat only, new): capacity, allocatable, conditions,
--     labels, taints, versions, addresses and spec.unschedulable are written
--     (paas.node_from_k8s + paas.node_write, as a registration with a Node
--     object), and Ready=True/False/Unknown drives the status machine
--     (heartbeat_ready / heartbeat_not_ready; MAINTENANCE stays).  Every
--     change of status or of the cordon is audited with actor 'kubernetes'.
--   * kube_seen_at marks a node the API knows.  For such a node an agent's
--     heartbeat keeps the API's readiness, conditions and allocations and
--     adds only usage (api.workers_heartbeat / api.workers_resources).  A
--     node the API does not know (no API access, or self-registered only)
--     behaves exactly as before.
--   * A node deleted in the cluster (a DELETED event, or absent from a
--     complete list) becomes INACTIVE (admin_deactivate, actor
--     'kubernetes', reason 'deleted from the cluster') and its row and
--     history stay; kube_seen_at is cleared, so its agent may take it over.
--   * While the watch is open, paas.node_sync_alive() stamps the heartbeat
--     of the nodes the API knows (a third of paas.node_grace_period, at most
--     30 s), so the health monitor does not time them out; when the API is
--     unreachable the stamps stop and the monitor takes over.
--   * Allocations of a node the API knows are the sum of the requests of the
--     pods bound to it (spec.nodeName, phase neither Succeeded nor Failed),
--     read from a list of the pods at the same period
--     (paas.node_sync_pods_begin / _page / _end); currentPods is their count.
--     The capacity check of a sale (paas.instance_capacity) takes each
--     node's allocatable less the requests of the pods paas does not manage
--     (foreign_cpu_m / foreign_memory), and then the requests of every
--     instance that should run -- paas's own pods are counted once, bound
--     yet or not.
--   * Locked rows are skipped (lock_timeout 200ms), never waited for: the
--     next event or list brings them.

------------------------------------------------------------------------------
-- One Node
------------------------------------------------------------------------------

-- What of a Node object the registry depends on, as a digest: all of it
-- but its kind and apiVersion (a list's items have none, a watch's objects
-- do), resourceVersion, managedFields and the conditions'
-- lastHeartbeatTime (a kubelet's periodic "still here").
-- The md5 of the text of the JSON array [the object less those keys, its
-- metadata less its two, its status less conditions, its conditions each
-- less lastHeartbeatTime], written in one pass in C (extension/nodes.c).
CREATE FUNCTION paas.node_digest(x jsonb) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_node_digest'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_digest(jsonb) IS
	'digest of a Node object less kind, apiVersion, resourceVersion, managedFields and heartbeat times';

-- Applies one Node object to the registry; returns what happened:
-- registered | updated | unchanged | invalid.
CREATE FUNCTION paas.node_sync_apply(x jsonb) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	nm text := x #>> '{metadata,name}';
	rv text := x #>> '{metadata,resourceVersion}';
	s jsonb;
	errs jsonb;
	n paas.nodes;
	created boolean := false;
	old text;
	was_cordoned boolean;
	ready boolean;
	unsched boolean;
	ev text;
	nxt text;
	why text;
	dig text;
BEGIN
	IF nm IS NULL THEN
		RETURN 'invalid';
	END IF;
	SELECT * INTO n FROM paas.nodes WHERE name = nm FOR UPDATE;
	IF n.id IS NOT NULL AND n.kube_seen_at IS NOT NULL AND rv IS NOT NULL
	   AND n.kube_resource_version = rv AND n.kube_uid IS NOT DISTINCT FROM x #>> '{metadata,uid}' THEN
		UPDATE paas.nodes SET kube_seen_at = now() WHERE id = n.id;
		RETURN 'unchanged';
	END IF;
	dig := paas.node_digest(x);
	IF n.id IS NOT NULL AND n.kube_seen_at IS NOT NULL AND n.kube_digest = dig THEN
		-- only heartbeat times moved
		UPDATE paas.nodes
		   SET kube_seen_at = now(), kube_resource_version = rv,
			   conditions = coalesce(x #> '{status,conditions}', conditions),
			   last_heartbeat = now(), last_health_check = now()
		 WHERE id = n.id;
		RETURN 'unchanged';
	END IF;
	SELECT k.spec, k.errs INTO s, errs FROM paas.node_from_k8s(x || '{"kind": "Node"}') k;
	IF jsonb_array_length(errs) = 0 THEN
		errs := paas.node_check(errs, s, true);
	END IF;
	IF jsonb_array_length(errs) > 0 THEN
		RAISE WARNING 'paas node sync: Node "%" is not usable: %', nm, errs::text;
		RETURN 'invalid';
	END IF;
	ready := (s ->> 'isReady')::boolean;
	unsched := coalesce((s ->> 'unschedulable')::boolean, false);
	IF n.id IS NULL THEN
		PERFORM paas.node_hostname_taken(s ->> 'hostname', NULL);
		INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage)
		VALUES (nm, s ->> 'hostname', (s ->> 'ipAddress')::inet, 1, '', '0', '0')
		RETURNING * INTO n;
		created := true;
		ev := CASE WHEN ready THEN 'register' ELSE 'register_not_ready' END;
	ELSE
		PERFORM paas.node_hostname_taken(s ->> 'hostname', n.id);
		ev := CASE WHEN ready THEN 'heartbeat_ready' ELSE 'heartbeat_not_ready' END;
	END IF;
	old := CASE WHEN created THEN NULL ELSE n.status END;
	was_cordoned := n.cordoned;
	n := paas.node_write(n.id, s);
	nxt := paas.node_transition(n.status, ev);
	UPDATE paas.nodes
	   SET status = nxt,
		   is_ready = ready,
		   cordoned = unsched,
		   kube_seen_at = now(),
		   kube_resource_version = rv,
		   kube_digest = dig,
		   registered_at = coalesce(registered_at, now()),
		   last_heartbeat = now(),
		   last_health_check = now(),
		   status_changed_at = CASE WHEN nxt <> status THEN now() ELSE status_changed_at END
	 WHERE id = n.id
	RETURNING * INTO n;
	IF created OR nxt IS DISTINCT FROM old THEN
		SELECT coalesce(nullif(concat_ws(': ', c ->> 'reason', c ->> 'message'), ''), 'Ready=' || (c ->> 'status'))
		  INTO why FROM jsonb_array_elements(n.conditions) c WHERE c ->> 'type' = 'Ready' LIMIT 1;
		PERFORM paas.node_audit(n, old, ev, 'kubernetes',
								CASE WHEN created THEN 'registered from the Kubernetes API'
									 ELSE coalesce(why, 'no Ready condition') END);
	END IF;
	IF NOT created AND was_cordoned IS DISTINCT FROM unsched THEN
		PERFORM paas.node_audit(n, n.status, CASE WHEN unsched THEN 'cordon' ELSE 'uncordon' END, 'kubernetes',
								'spec.unschedulable is ' || unsched::text || ' in the cluster');
	END IF;
	RETURN CASE WHEN created THEN 'registered' ELSE 'updated' END;
END
$$;
COMMENT ON FUNCTION paas.node_sync_apply(jsonb) IS
	'writes one Node object of the Kubernetes API into the registry (status through the machine, audited)';

-- A node the cluster no longer has: INACTIVE, row and history kept.
CREATE FUNCTION paas.node_sync_remove(n paas.nodes) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	n := paas.node_apply(n, 'admin_deactivate', 'kubernetes', 'deleted from the cluster');
	UPDATE paas.nodes SET kube_seen_at = NULL, kube_resource_version = NULL, kube_digest = NULL WHERE id = n.id;
END
$$;
COMMENT ON FUNCTION paas.node_sync_remove(paas.nodes) IS
	'a node deleted from the cluster becomes INACTIVE (audited, kept)';

------------------------------------------------------------------------------
-- Many Nodes at once (a page of the list, a round of watch events)
------------------------------------------------------------------------------

-- Applies Node objects, each with the outcome paas.node_sync_apply would
-- give it, in a few statements for them all:
--   * a Node whose resourceVersion (and uid) the registry holds: seen;
--   * one whose digest is unchanged (only heartbeat times moved): version,
--     conditions and heartbeat in one UPDATE;
--   * a valid Node the registry does not have, with a hostname no other
--     node (nor another of the batch) holds: registered -- one INSERT, one
--     paas.node_write_many, one status UPDATE through the status machine,
--     one INSERT of the audits;
--   * every other one (changed, invalid, its name twice, its row locked,
--     its hostname taken) goes through paas.node_sync_apply on its own
--     (a failure is a warning, the others go on), in the batch's order,
--     after those.
-- Should a set-based statement fail (an agent registering the same name
-- meanwhile, say), the whole batch is applied one Node at a time.  Returns
-- how many of each outcome: {"registered": n, "unchanged": n, ...}.
CREATE FUNCTION paas.node_sync_apply_many(xs jsonb[]) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r record;
	res text;
BEGIN
	IF to_regclass('pg_temp.paas_node_batch') IS NULL THEN
		CREATE TEMP TABLE paas_node_batch (
			i integer PRIMARY KEY, nm text, rv text, node_id uuid, known boolean,
			old_digest text, dig text, s jsonb, errs jsonb, host text, outcome text) ON COMMIT DELETE ROWS;
		-- read once or twice: not worth compressing
		ALTER TABLE pg_temp.paas_node_batch ALTER s SET STORAGE EXTERNAL;
	END IF;
	DELETE FROM pg_temp.paas_node_batch;
	BEGIN
		-- each Node with the registry's row of its name, locked; on its own
		-- (slow): a Node without a name, its name a second time, a row
		-- another transaction holds (it waits lock_timeout, as one Node)
		WITH u AS (
			SELECT i, x #>> '{metadata,name}' AS nm, x #>> '{metadata,resourceVersion}' AS rv,
				   row_number() OVER (PARTITION BY x #>> '{metadata,name}' ORDER BY i) AS k
			  FROM unnest(xs) WITH ORDINALITY AS u(x, i) WHERE x IS NOT NULL),
		l AS MATERIALIZED (
			SELECT id, name, kube_seen_at, kube_resource_version, kube_uid, kube_digest FROM paas.nodes
			 WHERE name IN (SELECT nm FROM u) FOR UPDATE SKIP LOCKED)
		INSERT INTO pg_temp.paas_node_batch (i, nm, rv, node_id, known, old_digest, outcome)
		SELECT u.i, u.nm, u.rv, l.id, l.kube_seen_at IS NOT NULL, l.kube_digest,
			   CASE WHEN u.nm IS NULL OR u.k > 1 OR (l.id IS NULL AND p.id IS NOT NULL) THEN 'slow'
					WHEN l.kube_seen_at IS NOT NULL AND u.rv IS NOT NULL AND l.kube_resource_version = u.rv
						 AND l.kube_uid IS NOT DISTINCT FROM xs[u.i] #>> '{metadata,uid}' THEN 'seen' END
		  FROM u LEFT JOIN l ON l.name = u.nm LEFT JOIN paas.nodes p ON p.name = u.nm;
		UPDATE pg_temp.paas_node_batch SET dig = paas.node_digest(xs[i]) WHERE outcome IS NULL;
		-- only heartbeat times moved; anything else of a known node: on its own
		UPDATE pg_temp.paas_node_batch
		   SET outcome = CASE WHEN known AND old_digest = dig THEN 'heartbeat' ELSE 'slow' END
		 WHERE outcome IS NULL AND node_id IS NOT NULL;
		UPDATE paas.nodes n SET kube_seen_at = now()
		  FROM pg_temp.paas_node_batch b WHERE b.outcome = 'seen' AND n.id = b.node_id;
		UPDATE paas.nodes n
		   SET kube_seen_at = now(), kube_resource_version = b.rv,
			   conditions = coalesce(xs[b.i] #> '{status,conditions}', n.conditions),
			   last_heartbeat = now(), last_health_check = now()
		  FROM pg_temp.paas_node_batch b WHERE b.outcome = 'heartbeat' AND n.id = b.node_id;

		-- new nodes: valid, and a hostname nobody else holds
		-- (the spec is checked as it is made, in memory, not re-read from the table)
		UPDATE pg_temp.paas_node_batch b
		   SET (s, errs) = (SELECT f.spec, CASE WHEN jsonb_array_length(f.errs) = 0
												 THEN paas.node_check(f.errs, f.spec, true) ELSE f.errs END
							  FROM paas.node_from_k8s(xs[b.i] || '{"kind": "Node"}') f)
		 WHERE outcome IS NULL;
		UPDATE pg_temp.paas_node_batch SET host = s ->> 'hostname' WHERE outcome IS NULL;
		UPDATE pg_temp.paas_node_batch b SET outcome = 'slow'
		  FROM (SELECT i, count(*) OVER (PARTITION BY host) AS k FROM pg_temp.paas_node_batch
				 WHERE outcome IS NULL) o
		 WHERE o.i = b.i
		   AND (jsonb_array_length(b.errs) > 0 OR o.k > 1
				OR EXISTS (SELECT 1 FROM paas.nodes n WHERE n.hostname = b.host));
		WITH ins AS (
			INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage)
			SELECT nm, s ->> 'hostname', (s ->> 'ipAddress')::inet, 1, '', '0', '0'
			  FROM pg_temp.paas_node_batch WHERE outcome IS NULL ORDER BY i
			RETURNING id, name)
		UPDATE pg_temp.paas_node_batch b SET node_id = ins.id, outcome = 'registered'
		  FROM ins WHERE b.outcome IS NULL AND b.nm = ins.name;
		PERFORM count(*) FROM paas.node_write_many(
			ARRAY(SELECT node_id FROM pg_temp.paas_node_batch WHERE outcome = 'registered' ORDER BY i),
			ARRAY(SELECT s FROM pg_temp.paas_node_batch WHERE outcome = 'registered' ORDER BY i));
		UPDATE paas.nodes n
		   SET status = paas.node_transition(n.status, b.ev),
			   is_ready = b.ready,
			   cordoned = b.unsched,
			   kube_seen_at = now(),
			   kube_resource_version = b.rv,
			   kube_digest = b.dig,
			   registered_at = coalesce(n.registered_at, now()),
			   last_heartbeat = now(),
			   last_health_check = now(),
			   status_changed_at = CASE WHEN paas.node_transition(n.status, b.ev) <> n.status THEN now()
										ELSE n.status_changed_at END
		  FROM (SELECT node_id, rv, dig, (s ->> 'isReady')::boolean AS ready,
					   coalesce((s ->> 'unschedulable')::boolean, false) AS unsched,
					   CASE WHEN (s ->> 'isReady')::boolean THEN 'register' ELSE 'register_not_ready' END AS ev
				  FROM pg_temp.paas_node_batch WHERE outcome = 'registered') b
		 WHERE n.id = b.node_id;
		-- the audits of paas.node_audit, one statement
		INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
		SELECT n.id, n.name, NULL, n.status, CASE WHEN n.is_ready THEN 'register' ELSE 'register_not_ready' END,
			   'kubernetes', 'registered from the Kubernetes API'
		  FROM pg_temp.paas_node_batch b JOIN paas.nodes n ON n.id = b.node_id
		 WHERE b.outcome = 'registered' ORDER BY b.i;
	EXCEPTION WHEN OTHERS THEN
		-- the statements above are undone: every Node on its own
		RAISE WARNING 'paas node sync: % Nodes are applied one at a time: %', cardinality(xs), SQLERRM;
		DELETE FROM pg_temp.paas_node_batch;
		INSERT INTO pg_temp.paas_node_batch (i, outcome)
		SELECT i, 'slow' FROM unnest(xs) WITH ORDINALITY AS u(x, i) WHERE x IS NOT NULL;
	END;
	FOR r IN SELECT i FROM pg_temp.paas_node_batch WHERE outcome = 'slow' ORDER BY i LOOP
		BEGIN
			res := paas.node_sync_apply(xs[r.i]);
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'paas node sync: Node "%" was not applied: %', xs[r.i] #>> '{metadata,name}', SQLERRM;
			res := 'failed';
		END;
		UPDATE pg_temp.paas_node_batch SET outcome = res WHERE i = r.i;
	END LOOP;
	RETURN (SELECT coalesce(jsonb_object_agg(outcome, k), '{}')
			  FROM (SELECT CASE WHEN outcome IN ('seen', 'heartbeat') THEN 'unchanged' ELSE outcome END AS outcome,
						   count(*) AS k
					  FROM pg_temp.paas_node_batch GROUP BY 1) c);
END
$$;
COMMENT ON FUNCTION paas.node_sync_apply_many(jsonb[]) IS
	'applies Node objects of the Kubernetes API set-based, each as paas.node_sync_apply would; counts of the outcomes';

------------------------------------------------------------------------------
-- The list
------------------------------------------------------------------------------

-- The items of one page of GET /api/v1/nodes (bgworker/nodesync.c reads
-- the page's resourceVersion and continue token itself) through
-- paas.node_sync_apply_many: one bad Node never stops the others.  Returns
-- its counts of the outcomes.
CREATE FUNCTION paas.node_sync_page(items jsonb[]) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM set_config('lock_timeout', '200ms', true);
	PERFORM set_config('work_mem', '64MB', true);
	RETURN paas.node_sync_apply_many(coalesce(items, '{}'));
END
$$;
COMMENT ON FUNCTION paas.node_sync_page(jsonb[]) IS
	'applies the Nodes of one page of the Node list; counts of the outcomes';

-- After a complete list that began at "started": the nodes the API knew
-- and did not list are gone from the cluster.  Returns how many.
CREATE FUNCTION paas.node_sync_end(started timestamptz) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes;
	gone integer := 0;
BEGIN
	FOR n IN SELECT * FROM paas.nodes WHERE kube_seen_at < started FOR UPDATE SKIP LOCKED LOOP
		PERFORM paas.node_sync_remove(n);
		gone := gone + 1;
	END LOOP;
	RETURN gone;
END
$$;
COMMENT ON FUNCTION paas.node_sync_end(timestamptz) IS
	'after a complete Node list: nodes the API knew and did not list become INACTIVE';

------------------------------------------------------------------------------
-- The watch
------------------------------------------------------------------------------

-- Lines of the Node watch (WatchEvent JSON, one a line).  Returns the last
-- resourceVersion seen (BOOKMARKs included), or GONE when the server said
-- the version is too old (410: list again; the events before it are
-- applied).  Each node's events are applied in their order: in rounds, the
-- first event of every node, then the second ..., the ADDED and MODIFIED
-- ones of a round through paas.node_sync_apply_many, the DELETED ones on
-- their own.  A line that is not JSON is skipped.
CREATE FUNCTION paas.node_sync_events(lines text[]) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	line text;
	evs jsonb[];
	gone integer;
	rv text;
	round_no integer;
	r record;
	n paas.nodes;
BEGIN
	PERFORM set_config('lock_timeout', '200ms', true);
	-- 2,000 Node objects of ~3 kB are sorted into rounds: in memory
	PERFORM set_config('work_mem', '64MB', true);
	IF to_regclass('pg_temp.paas_node_events') IS NULL THEN
		CREATE TEMP TABLE paas_node_events (
			i integer PRIMARY KEY, type text, nm text, rv text, code text, rnd integer) ON COMMIT DELETE ROWS;
	END IF;
	DELETE FROM pg_temp.paas_node_events;
	BEGIN
		evs := ARRAY(SELECT l::jsonb FROM unnest(lines) l);
	EXCEPTION WHEN OTHERS THEN
		-- a line is not JSON: line by line, without it
		evs := '{}';
		FOREACH line IN ARRAY lines LOOP
			BEGIN
				evs := evs || line::jsonb;
			EXCEPTION WHEN OTHERS THEN
				CONTINUE;
			END;
		END LOOP;
	END;
	-- the events (their objects stay in evs), each node's numbered in order
	INSERT INTO pg_temp.paas_node_events (i, type, nm, rv, code, rnd)
	SELECT y.i, y.type, y.nm, y.rv, y.code,
		   CASE WHEN y.node_event THEN row_number() OVER (PARTITION BY y.node_event, y.nm ORDER BY y.i) END
	  FROM (SELECT i, e ->> 'type' AS type, e #>> '{object,metadata,name}' AS nm,
				   e #>> '{object,metadata,resourceVersion}' AS rv, e #>> '{object,code}' AS code,
				   coalesce(e ->> 'type' IN ('ADDED', 'MODIFIED', 'DELETED') AND e -> 'object' IS NOT NULL,
							false) AS node_event
			  FROM unnest(evs) WITH ORDINALITY AS u(e, i)) y;
	SELECT min(i) INTO gone FROM pg_temp.paas_node_events WHERE type = 'ERROR' AND code = '410';
	DELETE FROM pg_temp.paas_node_events WHERE i >= gone;
	SELECT e.rv INTO rv FROM pg_temp.paas_node_events e
	 WHERE e.type IS DISTINCT FROM 'ERROR' AND e.rv IS NOT NULL ORDER BY e.i DESC LIMIT 1;
	FOR round_no IN 1 .. coalesce((SELECT max(e.rnd) FROM pg_temp.paas_node_events e), 0) LOOP
		PERFORM paas.node_sync_apply_many(ARRAY(
			SELECT evs[e.i] -> 'object' FROM pg_temp.paas_node_events e
			 WHERE e.rnd = round_no AND e.type IN ('ADDED', 'MODIFIED') ORDER BY e.i));
		FOR r IN SELECT e.nm FROM pg_temp.paas_node_events e
				  WHERE e.rnd = round_no AND e.type = 'DELETED' ORDER BY e.i LOOP
			BEGIN
				SELECT * INTO n FROM paas.nodes WHERE name = r.nm AND kube_seen_at IS NOT NULL FOR UPDATE;
				IF FOUND THEN
					PERFORM paas.node_sync_remove(n);
				END IF;
			EXCEPTION WHEN OTHERS THEN
				RAISE WARNING 'paas node sync: an event of Node "%" was not applied: %', r.nm, SQLERRM;
			END;
		END LOOP;
	END LOOP;
	RETURN CASE WHEN gone IS NOT NULL THEN 'GONE' ELSE rv END;
END
$$;
COMMENT ON FUNCTION paas.node_sync_events(text[]) IS
	'applies Node watch events to the registry; the last resourceVersion, or GONE';

-- The watch is open: the nodes the API knows are alive as far as the
-- health monitor goes (their readiness is the API's).  A node the monitor
-- timed out meanwhile (its clock: the worker stalled, or a shortened grace
-- period) lost its API conditions to "Unknown": its resourceVersion and
-- digest are forgotten and the answer says how many, so that the worker
-- lists again and the API's state is applied in full.
CREATE FUNCTION paas.node_sync_alive() RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	k integer;
BEGIN
	PERFORM set_config('synchronous_commit', 'off', true);
	UPDATE paas.nodes SET kube_resource_version = NULL, kube_digest = NULL
	 WHERE id IN (SELECT n.id FROM paas.nodes n
				   WHERE n.kube_seen_at IS NOT NULL AND n.status IN ('NOT_READY', 'INACTIVE')
					 AND n.kube_digest IS NOT NULL
					 AND (SELECT t.actor FROM paas.node_transitions t WHERE t.node_id = n.id
						   ORDER BY t.id DESC LIMIT 1) = 'monitor'
					 FOR UPDATE OF n SKIP LOCKED);
	GET DIAGNOSTICS k = ROW_COUNT;
	UPDATE paas.nodes SET last_heartbeat = now(), last_health_check = now()
	 WHERE id IN (SELECT id FROM paas.nodes WHERE kube_seen_at IS NOT NULL AND status <> 'INACTIVE'
				  FOR UPDATE SKIP LOCKED);
	RETURN k;
END
$$;
COMMENT ON FUNCTION paas.node_sync_alive() IS
	'stamps the nodes the Kubernetes API knows as heard from; returns how many the monitor timed out (list again)';

------------------------------------------------------------------------------
-- Allocations: the requests of the pods bound to each node
------------------------------------------------------------------------------

CREATE FUNCTION paas.node_sync_pods_begin() RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	CREATE TEMP TABLE IF NOT EXISTS paas_node_pods (
		node text NOT NULL, cpu_m bigint NOT NULL, memory bigint NOT NULL, pods integer NOT NULL,
		foreign_pod boolean NOT NULL);
	TRUNCATE pg_temp.paas_node_pods;
END
$$;
COMMENT ON FUNCTION paas.node_sync_pods_begin() IS
	'starts a list of the pods bound to nodes (session temp table)';

-- A pod's requests as the scheduler counts them: the sum over its
-- containers, or the largest init container when that is more.
CREATE FUNCTION paas.pod_requests(p jsonb, OUT cpu_m bigint, OUT memory bigint)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
	SELECT greatest(coalesce(c.cpu, 0), coalesce(i.cpu, 0)), greatest(coalesce(c.mem, 0), coalesce(i.mem, 0))
	  FROM (SELECT sum(paas.quantity_milli(k #>> '{resources,requests,cpu}')) AS cpu,
				   sum(paas.quantity_value(k #>> '{resources,requests,memory}')) AS mem
			  FROM jsonb_array_elements(coalesce(p #> '{spec,containers}', '[]')) k) c,
		   (SELECT max(paas.quantity_milli(k #>> '{resources,requests,cpu}')) AS cpu,
				   max(paas.quantity_value(k #>> '{resources,requests,memory}')) AS mem
			  FROM jsonb_array_elements(coalesce(p #> '{spec,initContainers}', '[]')) k) i
$$;
COMMENT ON FUNCTION paas.pod_requests(jsonb) IS
	'cpu (millicores) and memory (bytes) a pod requests, as the scheduler counts them';

-- The items of one page of GET /api/v1/pods?fieldSelector=spec.nodeName!=...;
-- returns how many of its pods count (bound, neither Succeeded nor Failed).
CREATE FUNCTION paas.node_sync_pods_page(items jsonb[]) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	p jsonb;
	r record;
	n integer := 0;
BEGIN
	FOREACH p IN ARRAY coalesce(items, '{}') LOOP
		CONTINUE WHEN coalesce(p #>> '{spec,nodeName}', '') = ''
			OR p #>> '{status,phase}' IN ('Succeeded', 'Failed');
		BEGIN
			r := paas.pod_requests(p);
		EXCEPTION WHEN OTHERS THEN
			r := ROW(0::bigint, 0::bigint);
		END;
		INSERT INTO pg_temp.paas_node_pods
		VALUES (p #>> '{spec,nodeName}', r.cpu_m, r.memory, 1,
				p #>> '{metadata,labels,app.kubernetes.io/managed-by}' IS DISTINCT FROM 'paas');
		n := n + 1;
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.node_sync_pods_page(jsonb[]) IS
	'collects the requests of one page of pods bound to nodes; how many count';

-- After a complete pod list: each node the API knows is allocated what its
-- pods request.  Returns how many nodes changed.
CREATE FUNCTION paas.node_sync_pods_end() RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	k integer;
BEGIN
	PERFORM set_config('lock_timeout', '200ms', true);
	WITH a AS (
		SELECT node, sum(cpu_m)::bigint AS cpu_m, sum(memory)::bigint AS memory, sum(pods)::int AS pods,
			   coalesce(sum(cpu_m) FILTER (WHERE foreign_pod), 0)::bigint AS f_cpu_m,
			   coalesce(sum(memory) FILTER (WHERE foreign_pod), 0)::bigint AS f_memory
		  FROM pg_temp.paas_node_pods GROUP BY node),
	t AS (
		SELECT n.id, coalesce(a.cpu_m, 0) AS cpu_m, coalesce(a.memory, 0) AS memory, coalesce(a.pods, 0) AS pods,
			   coalesce(a.f_cpu_m, 0) AS f_cpu_m, coalesce(a.f_memory, 0) AS f_memory
		  FROM paas.nodes n LEFT JOIN a ON a.node = n.name
		 WHERE n.kube_seen_at IS NOT NULL
		   AND (n.cpu_allocated_m, n.memory_allocated, n.current_pods, n.foreign_cpu_m, n.foreign_memory)
			   IS DISTINCT FROM (coalesce(a.cpu_m, 0), coalesce(a.memory, 0), coalesce(a.pods, 0),
								 coalesce(a.f_cpu_m, 0), coalesce(a.f_memory, 0))
		   FOR UPDATE OF n SKIP LOCKED)
	UPDATE paas.nodes n
	   SET cpu_allocated_m = t.cpu_m, memory_allocated = t.memory, current_pods = t.pods,
		   allocated_cpu = t.cpu_m || 'm', allocated_memory = t.memory::text,
		   foreign_cpu_m = t.f_cpu_m, foreign_memory = t.f_memory, updated_at = now()
	  FROM t WHERE n.id = t.id;
	GET DIAGNOSTICS k = ROW_COUNT;
	TRUNCATE pg_temp.paas_node_pods;
	RETURN k;
END
$$;
COMMENT ON FUNCTION paas.node_sync_pods_end() IS
	'sets the allocations of the nodes the Kubernetes API knows to their bound pods'' requests';

-- ---- new: sql/parts/32_node_actions.sql ----
-- paas -- actions on nodes in the Kubernetes API: cordon / uncordon, drain,
-- MAINTENANCE = cordon + drain (docs/nodes.md, "Actions").
--
-- Rules a reader must know:
--   * A node "the API knows" (kube_seen_at set by the node sync) is changed
--     in the API first, then in the registry: a refusal of the API is
--     PK502 (HTTP 502 CLUSTER_ERROR, the API's status and message in the
--     details) and the transaction changes nothing.  Agent-only nodes, and
--     every node while no API is configured, keep the registry-only
--     behaviour.
--   * The cordon PATCH is sent by the backend (extension/node_actions.c,
--     bounded by paas.k8s_timeout, at most 10 s) BEFORE the node's row is
--     locked; the row is locked and the change recorded after it.
--   * A drain is a row of paas.node_drains, written in the transaction of
--     the request; the background worker "paas node drain"
--     (bgworker/nodedrain.c) evicts the pods in passes, each pass a short
--     transaction to plan, the evictions with no transaction open, a short
--     transaction to record.  One live drain per node.
--   * Every action is a row of paas.node_transitions with the actor
--     (admin:<id>) of the request.

------------------------------------------------------------------------------
-- The API call
------------------------------------------------------------------------------

CREATE FUNCTION paas.k8s_node_unschedulable(node text, unschedulable boolean,
		OUT configured boolean, OUT status integer, OUT body text, OUT error text)
	LANGUAGE c VOLATILE STRICT
	AS 'MODULE_PATHNAME', 'paas_k8s_node_unschedulable';
COMMENT ON FUNCTION paas.k8s_node_unschedulable(text, boolean) IS
	'PATCHes spec.unschedulable of a Node in the Kubernetes API (configured false: no API, nothing sent)';

-- The message and reason of a Kubernetes Status body (NULL when the body is
-- not one).
CREATE FUNCTION paas.k8s_status_of(body text, OUT reason text, OUT message text)
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	d jsonb;
BEGIN
	BEGIN
		d := body::jsonb;
	EXCEPTION WHEN OTHERS THEN
		d := NULL;
	END;
	IF jsonb_typeof(d) = 'object' THEN
		reason := d ->> 'reason';
		message := d ->> 'message';
	END IF;
	IF message IS NULL AND body IS NOT NULL AND body <> '' THEN
		message := left(body, 300);
	END IF;
END
$$;
COMMENT ON FUNCTION paas.k8s_status_of(text) IS 'reason and message of a Kubernetes Status body';

-- Sets spec.unschedulable of n's Node when the API knows n.  true: sent and
-- accepted; false: nothing sent (the node is agent-only or no API is
-- configured).  PK502 when the API refused it or did not answer.
CREATE FUNCTION paas.node_kube_cordon(n paas.nodes, cordon boolean) RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r record;
	st record;
BEGIN
	IF n.kube_seen_at IS NULL THEN
		RETURN false;
	END IF;
	r := paas.k8s_node_unschedulable(n.name, cordon);
	IF NOT r.configured THEN
		RETURN false;
	END IF;
	IF r.status BETWEEN 200 AND 299 THEN
		RETURN true;
	END IF;
	st := paas.k8s_status_of(r.body);
	RAISE EXCEPTION 'the Kubernetes API refused to % node "%": %', CASE WHEN cordon THEN 'cordon' ELSE 'uncordon' END,
		n.name, coalesce(st.message, r.error, 'no answer')
		USING ERRCODE = 'PK502',
			  DETAIL = jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
				'field', 'kubernetes', 'message', coalesce(st.message, r.error, 'no answer'),
				'status', r.status, 'reason', st.reason)))::text;
END
$$;
COMMENT ON FUNCTION paas.node_kube_cordon(paas.nodes, boolean) IS
	'cordons / uncordons the Node of an API node in the API (false: not an API node or no API); PK502 when refused';

------------------------------------------------------------------------------
-- Drains
------------------------------------------------------------------------------

CREATE TABLE paas.node_drains (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	node_id			uuid NOT NULL,
	node_name		text NOT NULL,
	cause			text NOT NULL CHECK (cause IN ('drain', 'maintenance')),
	state			text NOT NULL DEFAULT 'pending'
					CHECK (state IN ('pending', 'running', 'complete', 'incomplete', 'cancelled')),
	requested_by	text NOT NULL,
	reason			text,
	timeout_s		integer NOT NULL CHECK (timeout_s BETWEEN 1 AND 86400),
	deadline		timestamptz NOT NULL,
	-- the drain cordoned the node (it was schedulable before): leaving
	-- MAINTENANCE uncordons it again
	cordoned_it		boolean NOT NULL DEFAULT false,
	attempts		integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL DEFAULT now(),
	claimed_until	timestamptz,
	evicted			jsonb NOT NULL DEFAULT '[]',	-- [{namespace, name, at}]
	skipped			jsonb NOT NULL DEFAULT '[]',	-- [{namespace, name, why}]
	remaining		jsonb NOT NULL DEFAULT '[]',	-- [{namespace, name, state, status?, message?}]
	last_error		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	finished_at		timestamptz
);
CREATE UNIQUE INDEX node_drains_live_key ON paas.node_drains (node_id) WHERE state IN ('pending', 'running');
CREATE INDEX node_drains_due_idx ON paas.node_drains (next_attempt_at) WHERE state IN ('pending', 'running');
CREATE INDEX node_drains_node_idx ON paas.node_drains (node_id, created_at DESC);
COMMENT ON TABLE paas.node_drains IS
	'drains of nodes through the Eviction API (bgworker/nodedrain.c); kept after they end';
-- drains are history of the nodes: dumped with them (90_dump.sql)
SELECT pg_catalog.pg_extension_config_dump('paas.node_drains', '');

CREATE FUNCTION paas.node_drain_json(d paas.node_drains) RETURNS jsonb
	LANGUAGE sql STABLE
	RETURN jsonb_build_object(
		'id', d.id, 'nodeId', d.node_id, 'nodeName', d.node_name, 'cause', d.cause, 'state', d.state,
		'requestedBy', d.requested_by, 'reason', d.reason, 'timeoutSeconds', d.timeout_s,
		'deadline', paas.iso(d.deadline), 'attempts', d.attempts,
		'retryAt', CASE WHEN d.state IN ('pending', 'running') THEN paas.iso(d.next_attempt_at) END,
		'blocked', (SELECT count(*) FROM jsonb_array_elements(d.remaining) p WHERE p ->> 'state' = 'blocked'),
		'evicted', d.evicted, 'skipped', d.skipped, 'remaining', d.remaining, 'lastError', d.last_error,
		'createdAt', paas.iso(d.created_at), 'updatedAt', paas.iso(d.updated_at),
		'finishedAt', paas.iso(d.finished_at),
		'statusUrl', '/api/v1/workers/' || d.node_id || '/drain');
COMMENT ON FUNCTION paas.node_drain_json(paas.node_drains) IS 'a drain as the API prints it';

-- Starts a drain of n (already cordoned), or returns the live one.
CREATE FUNCTION paas.node_drain_start(n paas.nodes, cause text, cordoned_it boolean, timeout_s integer,
									  actor text, reason text) RETURNS paas.node_drains
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	d paas.node_drains;
BEGIN
	SELECT * INTO d FROM paas.node_drains WHERE node_id = n.id AND state IN ('pending', 'running');
	IF FOUND THEN
		RETURN d;
	END IF;
	INSERT INTO paas.node_drains (node_id, node_name, cause, requested_by, reason, timeout_s, deadline, cordoned_it)
	VALUES (n.id, n.name, cause, actor, reason, timeout_s, now() + make_interval(secs => timeout_s), cordoned_it)
	RETURNING * INTO d;
	PERFORM paas.node_audit(n, n.status, 'drain', actor,
							coalesce(reason || '; ', '') || 'timeout ' || timeout_s || ' s');
	RETURN d;
END
$$;
COMMENT ON FUNCTION paas.node_drain_start(paas.nodes, text, boolean, integer, text, text) IS
	'records a drain of a cordoned node (the live one when there is one) and audits it';

-- Ends the live drain of a node (an uncordon, the end of MAINTENANCE).
CREATE FUNCTION paas.node_drain_cancel(n paas.nodes, actor text, reason text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	UPDATE paas.node_drains
	   SET state = 'cancelled', finished_at = now(), updated_at = now(), claimed_until = NULL
	 WHERE node_id = n.id AND state IN ('pending', 'running');
	IF FOUND THEN
		PERFORM paas.node_audit(n, n.status, 'drain_cancelled', actor, reason);
	END IF;
END
$$;
COMMENT ON FUNCTION paas.node_drain_cancel(paas.nodes, text, text) IS 'cancels the live drain of a node, audited';

------------------------------------------------------------------------------
-- The actions (called by api.workers_set_schedulable / _set_status of
-- 30_node_registry.sql and by the drain routes)
------------------------------------------------------------------------------

-- Cordon (true) or uncordon a node: the API first (an API node), then the
-- registry.  An uncordon ends a live drain.
CREATE FUNCTION paas.node_set_cordon(key text, cordon boolean, actor text, reason text) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes := paas.read_node(key);
BEGIN
	-- refused by the machine (uncordon while INACTIVE / MAINTENANCE): 409 before any call
	PERFORM paas.node_transition(n.status, CASE WHEN cordon THEN 'cordon' ELSE 'uncordon' END);
	PERFORM paas.node_kube_cordon(n, cordon);
	n := paas.find_node(n.id::text);
	n := paas.node_apply(n, CASE WHEN cordon THEN 'cordon' ELSE 'uncordon' END, actor, reason);
	IF NOT cordon THEN
		PERFORM paas.node_drain_cancel(n, actor, 'uncordoned');
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.node_set_cordon(text, boolean, text, text) IS
	'cordons / uncordons a node, in the API first for an API node (PK502 when refused)';

-- A status set by an administrator.  For an API node, MAINTENANCE cordons
-- it in the API and starts a drain; leaving MAINTENANCE ends the drain and
-- uncordons the node when the maintenance cordoned it (and the new status
-- allows it: not INACTIVE).
CREATE FUNCTION paas.node_set_status(key text, status text, actor text, reason text) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes := paas.read_node(key);
	ev text := paas.node_status_event(status);
	was_cordoned boolean := n.cordoned;
	d paas.node_drains;
	sent boolean;
BEGIN
	IF status = 'MAINTENANCE' AND n.status <> 'MAINTENANCE' THEN
		sent := paas.node_kube_cordon(n, true);
		n := paas.find_node(n.id::text);
		n := paas.node_apply(n, ev, actor, reason);
		IF sent THEN
			-- was_cordoned, not n.cordoned: the node sync may have seen the
			-- API's change first; the action is still the administrator's
			IF NOT was_cordoned THEN
				n := paas.node_apply(n, 'cordon', actor, 'maintenance');
			END IF;
			PERFORM paas.node_drain_start(n, 'maintenance', NOT was_cordoned, paas.node_drain_timeout(), actor, reason);
		END IF;
		RETURN n;
	END IF;
	IF n.status = 'MAINTENANCE' AND status <> 'MAINTENANCE' THEN
		-- the drain of this maintenance (started with the status change, same now())
		SELECT * INTO d FROM paas.node_drains
		 WHERE node_id = n.id AND cause = 'maintenance' AND created_at >= n.status_changed_at
		 ORDER BY created_at DESC LIMIT 1;
		sent := false;
		IF d.cordoned_it AND n.cordoned AND paas.node_transition_allowed(paas.node_transition(n.status, ev), 'uncordon') THEN
			sent := paas.node_kube_cordon(n, false);
		END IF;
		n := paas.find_node(n.id::text);
		n := paas.node_apply(n, ev, actor, reason);
		PERFORM paas.node_drain_cancel(n, actor, 'end of maintenance');
		IF sent THEN
			n := paas.node_apply(n, 'uncordon', actor, 'end of maintenance');
		END IF;
		RETURN n;
	END IF;
	n := paas.find_node(n.id::text);
	RETURN paas.node_apply(n, ev, actor, reason);
END
$$;
COMMENT ON FUNCTION paas.node_set_status(text, text, text, text) IS
	'an administrator''s status change; for an API node MAINTENANCE = cordon + drain, leaving it uncordons';

-- paas.node_drain_timeout (seconds, default 600): how long a drain that
-- MAINTENANCE starts, or one asked for without timeoutSeconds, may take.
CREATE FUNCTION paas.node_drain_timeout() RETURNS integer
	LANGUAGE sql STABLE
	RETURN extract(epoch FROM current_setting('paas.node_drain_timeout')::interval)::integer;
COMMENT ON FUNCTION paas.node_drain_timeout() IS 'default timeout of a drain in seconds (paas.node_drain_timeout)';

CREATE FUNCTION api.workers_drain(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	n paas.nodes;
	was_cordoned boolean;
	actor text := paas.node_actor(ctx);
	d paas.node_drains;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_int(errs, req, 'timeoutSeconds', false, 1, 86400);
	errs := paas.check_text(errs, req, 'reason', false, 0, 500);
	PERFORM paas.raise_if_invalid(errs);
	n := paas.read_node(req ->> 'nodeId');
	SELECT * INTO d FROM paas.node_drains WHERE node_id = n.id AND state IN ('pending', 'running');
	IF FOUND THEN
		RETURN paas.node_drain_json(d);
	END IF;
	IF n.kube_seen_at IS NULL THEN
		RAISE EXCEPTION 'node "%" is not known to the Kubernetes API: there are no pods to evict', n.name
			USING ERRCODE = 'PT409', HINT = 'Cordon it (PATCH /workers/:nodeId/schedulable) or set MAINTENANCE.';
	END IF;
	was_cordoned := n.cordoned;
	IF NOT paas.node_kube_cordon(n, true) THEN
		RAISE EXCEPTION 'no Kubernetes API is configured: node "%" cannot be drained', n.name
			USING ERRCODE = 'PT409';
	END IF;
	n := paas.find_node(n.id::text);
	IF NOT was_cordoned THEN		-- (not n.cordoned: see paas.node_set_status)
		n := paas.node_apply(n, 'cordon', actor, 'drain');
	END IF;
	d := paas.node_drain_start(n, 'drain', NOT was_cordoned,
							   coalesce((req ->> 'timeoutSeconds')::integer, paas.node_drain_timeout()),
							   actor, req ->> 'reason');
	RETURN paas.node_drain_json(d);
END
$$;
COMMENT ON FUNCTION api.workers_drain(jsonb, jsonb) IS
	'POST /workers/:nodeId/drain {timeoutSeconds?, reason?}: cordons the node in the API and starts a drain (202)';

CREATE FUNCTION api.workers_drain_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n paas.nodes;
	d paas.node_drains;
BEGIN
	PERFORM paas.require_admin(ctx);
	n := paas.read_node(req ->> 'nodeId');
	SELECT * INTO d FROM paas.node_drains WHERE node_id = n.id ORDER BY created_at DESC LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Node "%" was never drained', n.name USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.node_drain_json(d);
END
$$;
COMMENT ON FUNCTION api.workers_drain_get(jsonb, jsonb) IS
	'GET /workers/:nodeId/drain: the node''s latest drain and its progress';

------------------------------------------------------------------------------
-- The drain worker's steps (bgworker/nodedrain.c)
------------------------------------------------------------------------------

-- Claims the most overdue live drain for one pass (a lease of a minute: a
-- worker that dies mid-pass leaves it to the next).  NULL when none is due.
CREATE FUNCTION paas.node_drain_claim(OUT id uuid, OUT list_path text)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	UPDATE paas.node_drains d
	   SET state = 'running', attempts = d.attempts + 1, claimed_until = now() + interval '1 minute',
		   updated_at = now()
	 WHERE d.id = (SELECT x.id FROM paas.node_drains x
					WHERE x.state IN ('pending', 'running') AND x.next_attempt_at <= now()
					  AND (x.claimed_until IS NULL OR x.claimed_until < now())
					ORDER BY x.next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
	RETURNING d.id, '/api/v1/pods?fieldSelector=' || 'spec.nodeName%3D' || d.node_name
	  INTO id, list_path;
END
$$;
COMMENT ON FUNCTION paas.node_drain_claim() IS
	'claims a due drain for one pass: its id and the path that lists its node''s pods';

-- Why a pod is not evicted, as kubectl drain --ignore-daemonsets skips it
-- (NULL: it is evicted).
CREATE FUNCTION paas.node_drain_skip(pod jsonb) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN pod #> '{metadata,annotations}' ? 'kubernetes.io/config.mirror' THEN 'mirror pod'
				WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(
								CASE WHEN jsonb_typeof(pod #> '{metadata,ownerReferences}') = 'array'
									 THEN pod #> '{metadata,ownerReferences}' ELSE '[]' END) o
							  WHERE o ->> 'kind' = 'DaemonSet' AND (o ->> 'controller')::boolean IS TRUE)
				THEN 'DaemonSet-managed' END;
COMMENT ON FUNCTION paas.node_drain_skip(jsonb) IS 'why a drain leaves a pod (mirror, DaemonSet), or NULL';

-- A pass, first step: the pods on the node now (the PodList of list_path,
-- or NULL when it could not be read: status / error say why).  Ends the
-- drain complete when only skipped pods are left, incomplete past its
-- deadline; otherwise returns the evictions to send.
CREATE FUNCTION paas.node_drain_plan(drain_id uuid, pods text, status integer, error text)
	RETURNS TABLE (path text, body text)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	d paas.node_drains;
	n paas.nodes;
	doc jsonb;
	st record;
	left_ jsonb;
BEGIN
	SELECT * INTO d FROM paas.node_drains x WHERE x.id = drain_id AND x.state = 'running' FOR UPDATE;
	IF NOT FOUND THEN
		RETURN;					-- cancelled meanwhile
	END IF;
	IF status = 200 THEN
		BEGIN
			doc := pods::jsonb;
		EXCEPTION WHEN OTHERS THEN
			doc := NULL;
		END;
	END IF;
	IF jsonb_typeof(doc -> 'items') IS DISTINCT FROM 'array' THEN
		st := paas.k8s_status_of(pods);
		UPDATE paas.node_drains x
		   SET last_error = left(format('listing the pods: %s %s', nullif(status, 0),
										coalesce(st.message, error, 'no answer')), 500),
			   updated_at = now()
		 WHERE x.id = d.id;
		PERFORM paas.node_drain_finish(d.id, false);
		RETURN;
	END IF;
	SELECT coalesce(jsonb_agg(jsonb_build_object('namespace', p #>> '{metadata,namespace}',
												 'name', p #>> '{metadata,name}', 'why', paas.node_drain_skip(p)))
						FILTER (WHERE paas.node_drain_skip(p) IS NOT NULL), '[]'),
		   coalesce(jsonb_agg(jsonb_build_object('namespace', p #>> '{metadata,namespace}',
												 'name', p #>> '{metadata,name}',
												 'state', CASE WHEN p #> '{metadata,deletionTimestamp}' IS NOT NULL
															   THEN 'terminating' ELSE 'evicting' END))
						FILTER (WHERE paas.node_drain_skip(p) IS NULL), '[]')
	  INTO d.skipped, left_
	  FROM jsonb_array_elements(doc -> 'items') p;
	-- what stays of the last pass's outcome (blocked, error) for pods still here
	d.remaining := (SELECT coalesce(jsonb_agg(coalesce(
						(SELECT o FROM jsonb_array_elements(d.remaining) o
						  WHERE o ->> 'namespace' = l ->> 'namespace' AND o ->> 'name' = l ->> 'name'
							AND l ->> 'state' = 'evicting'), l)), '[]')
					  FROM jsonb_array_elements(left_) l);
	UPDATE paas.node_drains x SET skipped = d.skipped, remaining = d.remaining, updated_at = now()
	 WHERE x.id = d.id;
	IF jsonb_array_length(d.remaining) = 0 OR d.deadline <= now() THEN
		PERFORM paas.node_drain_finish(d.id, true);
		RETURN;
	END IF;
	RETURN QUERY
		SELECT format('/api/v1/namespaces/%s/pods/%s/eviction', l ->> 'namespace', l ->> 'name'),
			   jsonb_build_object('apiVersion', 'policy/v1', 'kind', 'Eviction',
								  'metadata', jsonb_build_object('name', l ->> 'name',
																 'namespace', l ->> 'namespace'))::text
		  FROM jsonb_array_elements(left_) l
		 WHERE l ->> 'state' = 'evicting';
END
$$;
COMMENT ON FUNCTION paas.node_drain_plan(uuid, text, integer, text) IS
	'first step of a drain pass: the pods on the node -> the evictions to send (or the drain ends)';

-- A pass, last step: the answers of the evictions (paths[i] answered
-- statuses[i] with bodies[i]).  201/200: evicted; 404: already gone;
-- 429: a PodDisruptionBudget forbids it now (retried); anything else is an
-- error (retried until the deadline).  The next pass comes after 1 s when
-- pods were evicted, after 5 s when some were refused (kubectl's pause).
CREATE FUNCTION paas.node_drain_record(drain_id uuid, paths text[], statuses integer[], bodies text[])
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	d paas.node_drains;
	res jsonb;
BEGIN
	SELECT * INTO d FROM paas.node_drains x WHERE x.id = drain_id AND x.state = 'running' FOR UPDATE;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
				'namespace', split_part(r.path, '/', 5), 'name', split_part(r.path, '/', 7),
				'status', r.status,
				'state', CASE WHEN r.status IN (200, 201, 404) THEN 'evicted'
							  WHEN r.status = 429 THEN 'blocked' ELSE 'error' END,
				'message', CASE WHEN r.status NOT IN (200, 201, 404)
								THEN coalesce((paas.k8s_status_of(r.body)).message, 'no answer') END))), '[]')
	  INTO res
	  FROM unnest(paths, statuses, bodies) r(path, status, body);
	UPDATE paas.node_drains x
	   SET evicted = x.evicted || coalesce((SELECT jsonb_agg(jsonb_build_object(
								'namespace', e ->> 'namespace', 'name', e ->> 'name', 'at', paas.iso(now())))
						   FROM jsonb_array_elements(res) e WHERE e ->> 'state' = 'evicted'), '[]'),
		   remaining = (SELECT coalesce(jsonb_agg(coalesce(
							(SELECT e FROM jsonb_array_elements(res) e
							  WHERE e ->> 'namespace' = p ->> 'namespace' AND e ->> 'name' = p ->> 'name'), p)), '[]')
						  FROM jsonb_array_elements(x.remaining) p),
		   last_error = coalesce((SELECT format('%s/%s: %s %s', e ->> 'namespace', e ->> 'name', e ->> 'status',
												e ->> 'message')
									FROM jsonb_array_elements(res) e WHERE e ->> 'state' = 'error' LIMIT 1),
								 (SELECT format('%s/%s: 429 %s', e ->> 'namespace', e ->> 'name', e ->> 'message')
									FROM jsonb_array_elements(res) e WHERE e ->> 'state' = 'blocked' LIMIT 1)),
		   updated_at = now()
	 WHERE x.id = d.id;
	PERFORM paas.node_drain_finish(d.id, false,
		CASE WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(res) e WHERE e ->> 'state' <> 'evicted')
			 THEN interval '5 seconds' ELSE interval '1 second' END);
	RETURN (SELECT string_agg(e ->> 'state', ',') FROM jsonb_array_elements(res) e);
END
$$;
COMMENT ON FUNCTION paas.node_drain_record(uuid, text[], integer[], text[]) IS
	'last step of a drain pass: records the eviction answers and schedules the next pass';

-- The end of a pass: final (complete when nothing is left, incomplete past
-- the deadline, both audited) or the next pass after "pause".
CREATE FUNCTION paas.node_drain_finish(drain_id uuid, final boolean, pause interval DEFAULT '5 seconds')
	RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	d paas.node_drains;
	n paas.nodes;
BEGIN
	SELECT * INTO d FROM paas.node_drains WHERE id = drain_id;
	IF final OR d.deadline <= now() THEN
		UPDATE paas.node_drains
		   SET state = CASE WHEN jsonb_array_length(remaining) = 0 THEN 'complete' ELSE 'incomplete' END,
			   finished_at = now(), claimed_until = NULL, updated_at = now()
		 WHERE id = drain_id
		RETURNING * INTO d;
		SELECT * INTO n FROM paas.nodes WHERE id = d.node_id;
		IF FOUND THEN
			PERFORM paas.node_audit(n, n.status, 'drain_' || d.state, 'drain',
				CASE WHEN d.state = 'complete'
					 THEN jsonb_array_length(d.evicted) || ' pods evicted'
					 ELSE 'timed out after ' || d.timeout_s || ' s; pods left: '
						  || (SELECT string_agg((p ->> 'namespace') || '/' || (p ->> 'name'), ', ')
								FROM jsonb_array_elements(d.remaining) p) END);
		END IF;
	ELSE
		UPDATE paas.node_drains
		   SET next_attempt_at = least(now() + pause, deadline), claimed_until = NULL, updated_at = now()
		 WHERE id = drain_id;
	END IF;
END
$$;
COMMENT ON FUNCTION paas.node_drain_finish(uuid, boolean, interval) IS
	'ends a drain pass: the drain complete / incomplete (audited), or its next pass scheduled';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY['api.workers_drain(jsonb, jsonb)', 'api.workers_drain_get(jsonb, jsonb)'] LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	FOREACH f IN ARRAY ARRAY['paas.k8s_node_unschedulable(text, boolean)', 'paas.node_drain_claim()',
		'paas.node_drain_plan(uuid, text, integer, text)', 'paas.node_drain_record(uuid, text[], integer[], text[])',
		'paas.node_drain_finish(uuid, boolean, interval)'] LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END
$grants$;

-- ---- new: sql/parts/70_instances.sql ----
-- paas -- hosted instances: one app on Kubernetes per subscription, in the
-- customer's namespace.  This part holds the model, the service templates
-- and the manifests; 71_instance_money.sql ties instances to the money
-- (status changes of subscriptions, capacity, the start deadline and its
-- refund), 72_instance_reconcile.sql is the SQL side of the reconciler
-- (bgworker/provisioner.c), 73_instance_routes.sql the api functions.
--
-- Rules a reader must know.
--   * The status is observed, never wished: it changes through
--     paas.instance_transition(status, event), the C table of
--     extension/instances.c (PENDING, PROVISIONING, RUNNING, DEGRADED,
--     FAILED, STOPPED, DELETING, DELETED), when the reconciler reports what
--     it saw, or when the money rules end or revive an instance.  What paas
--     wants is desired_state ('running', 'stopped', 'deleted') plus a
--     generation bumped on every change of what is wanted;
--     observed_generation is the generation last applied in full.
--   * Every status change, apply, API error and owner or admin action is a
--     row of paas.instance_events.  Secret values never are.
--   * Templates live in paas.services.deployment (next to the image, port,
--     environment and resources of the catalog).  Values may use
--     {{host}}, {{url}}, {{instance}}, {{namespace}}, {{port}} and
--     {{secret.NAME}} for a secret the template declares.  A trigger on
--     paas.services renders the template for a sample instance whenever the
--     service is saved: a template that cannot render is PT400 then, never
--     at deploy time.
--   * Secrets are generated once per instance (paas.instance_secrets, read
--     by nobody but the owner of the tables), put in a Kubernetes Secret,
--     and reach containers through secretKeyRef; a value that embeds one
--     ({{secret.X}} inside a longer string) uses Kubernetes' $(VAR)
--     expansion of an earlier PAAS_SECRET_X variable, so no secret is ever
--     written into a Deployment.
--   * paas.instance_manifests(id) is exactly what the reconciler applies (a
--     DBA can call it; secret values are redacted unless asked for).
--   * Objects of an instance: Secret (when the template declares secrets),
--     PersistentVolumeClaim (when the plan has storage), Deployment
--     (strategy Recreate: one pod, a ReadWriteOnce volume), Service, and
--     Ingress with host <instance>.<paas.apps_domain> and TLS by
--     cert-manager annotation (unless the template says expose "none").
--     Objects of a customer's namespace: the Namespace (labelled with the
--     user id), a ResourceQuota equal to the sum of the customer's live
--     instances, a LimitRange and a NetworkPolicy that admits traffic only
--     from the same namespace and the ingress controller.  Everything is
--     labelled app.kubernetes.io/managed-by=paas and paas.dev/instance-id.

------------------------------------------------------------------------------
-- Module functions (C, extension/instances.c)
------------------------------------------------------------------------------

CREATE FUNCTION paas.instance_transition(status text, event text) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_instance_transition'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.instance_transition(text, text) IS
	'next instance status for an event (the C status machine); PT409 when illegal';

CREATE FUNCTION paas.instance_transition_allowed(status text, event text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_instance_transition_allowed'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.instance_transition_allowed(text, text) IS
	'whether the instance status machine allows the event in that status';

CREATE FUNCTION paas.instance_transitions(OUT status text, OUT event text, OUT next_status text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'paas_instance_transitions'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.instance_transitions() IS
	'every allowed instance (status, event) -> status';

CREATE FUNCTION paas.instance_config(
	OUT apps_domain text, OUT ingress_class text, OUT cert_issuer text,
	OUT ingress_namespace text, OUT storage_class text, OUT data_retention interval,
	OUT start_deadline interval, OUT resync_interval interval)
	AS 'MODULE_PATHNAME', 'paas_instance_config'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.instance_config() IS
	'paas.apps_domain, ingress class, cert issuer, ingress namespace, storage class, '
	'data retention, start deadline and resync interval';

CREATE FUNCTION paas.instance_wake() RETURNS void
	AS 'MODULE_PATHNAME', 'paas_instance_wake'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.instance_wake() IS
	'wakes the provisioner when the calling transaction commits';

CREATE FUNCTION paas.provisioner_state(
	OUT running boolean, OUT pid integer, OUT configured boolean, OUT started_at timestamptz,
	OUT last_pass timestamptz, OUT last_audit timestamptz, OUT passes bigint, OUT units bigint,
	OUT api_calls bigint, OUT api_errors bigint, OUT audit_calls bigint, OUT audits bigint,
	OUT last_error text, OUT last_resync text)
	AS 'MODULE_PATHNAME', 'paas_provisioner_state'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.provisioner_state() IS
	'the provisioner''s published state and counters (shared memory)';

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

-- The deployment template of a service (see paas.template_errors for the
-- fields), next to its catalog row.  No foreign key: the catalog's DELETE
-- refuses while a row of any table with a foreign key to paas.services
-- exists, and a template is part of the service, not a use of it.
CREATE TABLE paas.service_templates (
	service_id		uuid PRIMARY KEY,
	deployment		jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(deployment) = 'object'),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE paas.service_templates IS
	'deployment template of a service: volume mount, probe, run-as user, args, generated secrets, '
	'credentials, sidecars, exposure (see paas.template_errors); none: the defaults';
REVOKE ALL ON paas.service_templates FROM PUBLIC;
GRANT SELECT ON paas.service_templates TO paas_owner;
SELECT pg_catalog.pg_extension_config_dump('paas.service_templates', '');

CREATE FUNCTION paas.service_template(service_id uuid) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN coalesce((SELECT t.deployment FROM paas.service_templates t
					  WHERE t.service_id = service_template.service_id), '{}');
COMMENT ON FUNCTION paas.service_template(uuid) IS 'the deployment template of a service ({} when none)';

CREATE TABLE paas.instance_namespaces (
	user_id				uuid PRIMARY KEY REFERENCES paas.users (id),
	name				text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
													AND char_length(name) <= 63),
	desired_state		text NOT NULL DEFAULT 'present' CHECK (desired_state IN ('present', 'absent')),
	state				text NOT NULL DEFAULT 'PENDING'
						CHECK (state IN ('PENDING', 'READY', 'DELETING', 'DELETED')),
	generation			bigint NOT NULL DEFAULT 1 CHECK (generation >= 1),
	observed_generation bigint NOT NULL DEFAULT 0,
	attempts			integer NOT NULL DEFAULT 0,
	last_error			text,
	due_at				timestamptz DEFAULT now(),
	claimed_until		timestamptz,
	force_apply			boolean NOT NULL DEFAULT false,
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_namespaces_due_idx ON paas.instance_namespaces (due_at) WHERE due_at IS NOT NULL;
COMMENT ON TABLE paas.instance_namespaces IS
	'one Kubernetes namespace per customer, with its quota, limits and network policy';

CREATE TABLE paas.instances (
	id					uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	subscription_id		uuid NOT NULL UNIQUE REFERENCES paas.subscriptions (id),
	user_id				uuid NOT NULL REFERENCES paas.users (id),
	-- no foreign key: the subscription already references the service, and
	-- the catalog's DELETE lists referencing tables by their foreign keys
	service_id			uuid NOT NULL,
	name				text NOT NULL UNIQUE CHECK (name ~ '^[a-z]([-a-z0-9]*[a-z0-9])?$'
													AND char_length(name) <= 53),
	namespace			text NOT NULL,
	host				text NOT NULL,
	status				text NOT NULL DEFAULT 'PENDING'
						CHECK (status IN ('PENDING', 'PROVISIONING', 'RUNNING', 'DEGRADED', 'FAILED',
										  'STOPPED', 'DELETING', 'DELETED')),
	desired_state		text NOT NULL DEFAULT 'running'
						CHECK (desired_state IN ('running', 'stopped', 'deleted')),
	admin_stopped		boolean NOT NULL DEFAULT false,
	generation			bigint NOT NULL DEFAULT 1 CHECK (generation >= 1),
	observed_generation bigint NOT NULL DEFAULT 0,
	force_apply			boolean NOT NULL DEFAULT false,
	-- allocated resources (the main container plus sidecars), copied from
	-- the catalog at creation and on every catalog change
	cpu_request_m		integer NOT NULL,
	cpu_limit_m			integer NOT NULL,
	mem_request_mib		integer NOT NULL,
	mem_limit_mib		integer NOT NULL,
	storage_gib			integer NOT NULL,
	restarted_at		timestamptz,
	restart_count		integer NOT NULL DEFAULT 0,
	status_message		text,
	pod_name			text,
	last_error			text,
	last_error_at		timestamptz,
	attempts			integer NOT NULL DEFAULT 0,
	polls				integer NOT NULL DEFAULT 0,
	due_at				timestamptz DEFAULT now(),
	claimed_until		timestamptz,
	synced_at			timestamptz,
	start_requested_at	timestamptz NOT NULL DEFAULT now(),
	ever_running		boolean NOT NULL DEFAULT false,
	ready_at			timestamptz,
	stopped_at			timestamptz,
	ended_at			timestamptz,
	volume_purge_at		timestamptz,
	volume_deleted_at	timestamptz,
	refunded_at			timestamptz,
	status_changed_at	timestamptz NOT NULL DEFAULT now(),
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now(),
	CHECK (observed_generation <= generation)
);
CREATE INDEX instances_due_idx ON paas.instances (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX instances_user_idx ON paas.instances (user_id, created_at DESC);
CREATE INDEX instances_service_idx ON paas.instances (service_id);
CREATE INDEX instances_status_idx ON paas.instances (status);
-- the start deadline job's scan
CREATE INDEX instances_starting_idx ON paas.instances (start_requested_at)
	WHERE status IN ('PENDING', 'PROVISIONING') AND NOT ever_running;
COMMENT ON TABLE paas.instances IS
	'the running app of a subscription (the original''s ServiceInstance): desired state and '
	'generation, observed status and generation, allocation, URLs, reconciler bookkeeping';
COMMENT ON COLUMN paas.instances.due_at IS
	'when the reconciler should look at the instance next (NULL: only at the periodic resync)';
COMMENT ON COLUMN paas.instances.claimed_until IS
	'lease of a reconciler pass; a crashed pass''s claims are taken again after it';

CREATE TABLE paas.instance_secrets (
	instance_id		uuid NOT NULL REFERENCES paas.instances (id),
	name			text NOT NULL CHECK (name ~ '^[A-Z][A-Z0-9_]{0,62}$'),
	value			text NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (instance_id, name)
);
COMMENT ON TABLE paas.instance_secrets IS
	'generated secrets of instances (passwords, keys): created once, shown to the owner on request, never logged';

CREATE TABLE paas.instance_events (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	instance_id		uuid NOT NULL REFERENCES paas.instances (id),
	event			text NOT NULL,
	from_status		text,
	to_status		text,
	generation		bigint,
	message			text,
	detail			jsonb,
	actor			text NOT NULL DEFAULT 'system'
					CHECK (actor IN ('system', 'owner', 'admin', 'provisioner', 'billing')),
	actor_id		uuid,
	created_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instance_events_instance_idx ON paas.instance_events (instance_id, id DESC);
CREATE INDEX instance_events_created_idx ON paas.instance_events (created_at);
COMMENT ON TABLE paas.instance_events IS
	'every status change, apply, API outcome and action on an instance, for its owner and the admin';

REVOKE ALL ON paas.instance_namespaces, paas.instances, paas.instance_secrets,
	paas.instance_events FROM PUBLIC;
GRANT SELECT ON paas.instance_namespaces, paas.instances, paas.instance_events TO paas_owner;

SELECT pg_catalog.pg_extension_config_dump('paas.instance_namespaces', '');
SELECT pg_catalog.pg_extension_config_dump('paas.instances', '');
SELECT pg_catalog.pg_extension_config_dump('paas.instance_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('paas.instance_events', '');
SELECT pg_catalog.pg_extension_config_dump('paas.instance_events_id_seq', '');

-- Whether this session is a restore: pg_restore (and pg_dump's scripts)
-- load data with check_function_bodies off.  What they load is complete --
-- instances, templates and events included, in foreign-key order -- so the
-- triggers that derive or check rows must let it in as it is (a data-only
-- restore with --disable-triggers sets session_replication_role, which
-- stops them anyway).
CREATE FUNCTION paas.restoring() RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN current_setting('check_function_bodies') = 'off';
COMMENT ON FUNCTION paas.restoring() IS
	'whether the session restores a dump (check_function_bodies off): data triggers stand aside';

------------------------------------------------------------------------------
-- Template text: placeholders
------------------------------------------------------------------------------

-- The placeholders of a template string ({{ name }}, blanks allowed), and
-- NULL as the name of a malformed one ("{{" without its "}}", or "{{}}").
CREATE FUNCTION paas.tpl_placeholders(t text) RETURNS SETOF text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT m[1] FROM regexp_matches(t, '\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\}', 'g') m
	UNION ALL
	SELECT NULL WHERE regexp_replace(t, '\{\{\s*[A-Za-z][A-Za-z0-9_.]*\s*\}\}', '', 'g') ~ '\{\{|\}\}'
$$;
COMMENT ON FUNCTION paas.tpl_placeholders(text) IS
	'names of the {{placeholders}} of a template string; NULL for a malformed one';

-- Replaces every {{ name }} of t by vars ->> name.  Names missing from
-- vars are left as they are (templates are validated when saved).
CREATE FUNCTION paas.tpl_subst(t text, vars jsonb) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	m text[];
BEGIN
	IF t IS NULL OR position('{{' IN t) = 0 THEN
		RETURN t;
	END IF;
	FOR m IN SELECT regexp_matches(t, '(\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\})', 'g') LOOP
		IF vars ? m[2] THEN
			t := replace(t, m[1], vars ->> m[2]);
		END IF;
	END LOOP;
	RETURN t;
END
$$;
COMMENT ON FUNCTION paas.tpl_subst(text, jsonb) IS 'substitutes {{placeholders}} from an object of values';

-- Field errors for the placeholders of one template string.
CREATE FUNCTION paas.tpl_check(errs jsonb, field text, t text, secrets jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	p text;
BEGIN
	FOR p IN SELECT * FROM paas.tpl_placeholders(t) LOOP
		IF p IS NULL THEN
			RETURN paas.add_err(errs, field, field || ' has a malformed {{placeholder}}');
		ELSIF p LIKE 'secret.%' THEN
			IF NOT coalesce(secrets ? substr(p, 8), false) THEN
				RETURN paas.add_err(errs, field,
					format('%s uses {{%s}} but the template declares no secret %s', field, p, substr(p, 8)));
			END IF;
		ELSIF p NOT IN ('host', 'url', 'instance', 'namespace', 'port') THEN
			RETURN paas.add_err(errs, field, format(
				'%s uses the unknown placeholder {{%s}} (known: host, url, instance, namespace, port, secret.NAME)',
				field, p));
		END IF;
	END LOOP;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.tpl_check(jsonb, text, text, jsonb) IS
	'appends an error when a template string uses a malformed or unknown placeholder';

------------------------------------------------------------------------------
-- Templates: validation
------------------------------------------------------------------------------

-- Errors of a probe object at "field".
CREATE FUNCTION paas.template_probe_errors(errs jsonb, field text, p jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	k text;
BEGIN
	IF p IS NULL OR p = 'null'::jsonb THEN
		RETURN errs;
	END IF;
	IF jsonb_typeof(p) <> 'object' THEN
		RETURN paas.add_err(errs, field, field || ' must be an object');
	END IF;
	FOR k IN SELECT jsonb_object_keys(p) LOOP
		IF k NOT IN ('type', 'path', 'command', 'initialDelaySeconds', 'periodSeconds',
					 'timeoutSeconds', 'failureThreshold', 'startupSeconds') THEN
			errs := paas.add_err(errs, field || '.' || k, format('%s.%s is not a known field', field, k));
		END IF;
	END LOOP;
	errs := paas.check_enum(errs, p, 'type', false, ARRAY['http', 'tcp', 'exec', 'none']);
	IF p ->> 'type' = 'exec' THEN
		IF jsonb_typeof(p -> 'command') IS DISTINCT FROM 'array' OR jsonb_array_length(p -> 'command') = 0
		   OR EXISTS (SELECT 1 FROM jsonb_array_elements(p -> 'command') e WHERE jsonb_typeof(e) <> 'string') THEN
			errs := paas.add_err(errs, field || '.command', field || '.command must be a non-empty array of strings');
		END IF;
	ELSIF p ? 'command' THEN
		errs := paas.add_err(errs, field || '.command', field || '.command is only for type exec');
	END IF;
	IF p ? 'path' AND (jsonb_typeof(p -> 'path') <> 'string' OR p ->> 'path' !~ '^/[!-~]{0,255}$') THEN
		errs := paas.add_err(errs, field || '.path', field || '.path must be an absolute URL path');
	END IF;
	IF p ? 'path' AND coalesce(p ->> 'type', 'http') <> 'http' THEN
		errs := paas.add_err(errs, field || '.path', field || '.path is only for type http');
	END IF;
	errs := paas.check_int(errs, p, 'initialDelaySeconds', false, 0, 3600);
	errs := paas.check_int(errs, p, 'periodSeconds', false, 1, 3600);
	errs := paas.check_int(errs, p, 'timeoutSeconds', false, 1, 600);
	errs := paas.check_int(errs, p, 'failureThreshold', false, 1, 100);
	errs := paas.check_int(errs, p, 'startupSeconds', false, 10, 7200);
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_probe_errors(jsonb, text, jsonb) IS 'field errors of a template probe';

-- Errors of the container fields shared by the app and its sidecars.
CREATE FUNCTION paas.template_container_errors(errs jsonb, field text, c jsonb, secrets jsonb)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	f text;
	e record;
	pre text := CASE WHEN field = '' THEN '' ELSE field || '.' END;
BEGIN
	FOREACH f IN ARRAY ARRAY['command', 'args'] LOOP
		IF c ? f THEN
			IF jsonb_typeof(c -> f) <> 'array' OR jsonb_array_length(c -> f) > 50
			   OR EXISTS (SELECT 1 FROM jsonb_array_elements(c -> f) x
						   WHERE jsonb_typeof(x) <> 'string' OR char_length(x #>> '{}') > 1000) THEN
				errs := paas.add_err(errs, pre || f, pre || f || ' must be an array of at most 50 strings');
			ELSE
				FOR e IN SELECT x #>> '{}' AS v, n FROM jsonb_array_elements(c -> f) WITH ORDINALITY a(x, n) LOOP
					errs := paas.tpl_check(errs, format('%s%s[%s]', pre, f, e.n - 1), e.v, secrets);
				END LOOP;
			END IF;
		END IF;
	END LOOP;
	IF c ? 'volumeMountPath' AND (jsonb_typeof(c -> 'volumeMountPath') <> 'string'
								  OR c ->> 'volumeMountPath' !~ '^/[A-Za-z0-9._/-]{0,254}$'
								  OR c ->> 'volumeMountPath' ~ '(^|/)\.\.(/|$)') THEN
		errs := paas.add_err(errs, pre || 'volumeMountPath', pre || 'volumeMountPath must be an absolute path');
	END IF;
	IF c ? 'volumeSubPath' AND (jsonb_typeof(c -> 'volumeSubPath') <> 'string'
								OR c ->> 'volumeSubPath' !~ '^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,254}$'
								OR c ->> 'volumeSubPath' ~ '(^|/)\.\.(/|$)') THEN
		errs := paas.add_err(errs, pre || 'volumeSubPath', pre || 'volumeSubPath must be a relative path');
	END IF;
	errs := paas.check_int(errs, c, 'runAsUser', false, 0, 2147483647);
	errs := paas.check_int(errs, c, 'runAsGroup', false, 0, 2147483647);
	errs := paas.template_probe_errors(errs, pre || 'probe', c -> 'probe');
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_container_errors(jsonb, text, jsonb, jsonb) IS
	'field errors of the container fields of a template (app or sidecar)';

-- Errors of an environment object (name -> template string) at "field".
CREATE FUNCTION paas.template_env_errors(errs jsonb, field text, env jsonb, secrets jsonb)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	e record;
BEGIN
	IF env IS NULL OR env = 'null'::jsonb THEN
		RETURN errs;
	END IF;
	IF jsonb_typeof(env) <> 'object' THEN
		RETURN paas.add_err(errs, field, field || ' must be an object of strings');
	END IF;
	FOR e IN SELECT key, value FROM jsonb_each(env) ORDER BY key LOOP
		IF e.key !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$' OR e.key LIKE 'PAAS\_SECRET\_%' THEN
			errs := paas.add_err(errs, field, format('%s: %s is not a valid variable name', field, e.key));
		ELSIF jsonb_typeof(e.value) <> 'string' THEN
			errs := paas.add_err(errs, field || '.' || e.key, format('%s.%s must be a string', field, e.key));
		ELSE
			errs := paas.tpl_check(errs, field || '.' || e.key, e.value #>> '{}', secrets);
		END IF;
	END LOOP;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_env_errors(jsonb, text, jsonb, jsonb) IS
	'field errors of a template environment (names, string values, placeholders)';

-- Every error of a service's deployment template and of the template
-- strings of its environmentVars, as field errors ("deployment.probe.path",
-- "environmentVars.WEBHOOK_URL", ...).  The template's fields:
--   kind              "Deployment" (the only one)
--   expose            "http" (default: Service + Ingress) or "none" (Service only)
--   volumeMountPath   where the volume is mounted in the app (default /data)
--   volumeSubPath     a sub-directory of the volume to mount there
--   probe             {type http|tcp|exec|none (default tcp), path, command,
--                      initialDelaySeconds, periodSeconds, timeoutSeconds,
--                      failureThreshold, startupSeconds (default 600)}
--   runAsUser, runAsGroup, fsGroup   numeric ids (runAsUser > 0: non-root,
--                      every capability dropped)
--   command, args     arrays of template strings
--   secrets           {NAME: {length 8-128 (default 24)}}: generated per instance
--   credentials       {key: template string} shown to the owner (GET /pods/:id/credentials)
--   sidecars          up to 3 {name, image, env, command, args, volumeMountPath,
--                      volumeSubPath, runAsUser, runAsGroup, probe, cpuRequest,
--                      cpuLimit, memRequest, memLimit}: containers of the same pod
CREATE FUNCTION paas.template_errors(v paas.services, d jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	errs jsonb := '[]';
	secrets jsonb;
	k text;
	s record;
	sc record;
	names text[] := ARRAY['app'];
	q jsonb;
BEGIN
	FOR k IN SELECT jsonb_object_keys(d) LOOP
		IF k NOT IN ('kind', 'expose', 'volumeMountPath', 'volumeSubPath', 'probe', 'runAsUser',
					 'runAsGroup', 'fsGroup', 'command', 'args', 'secrets', 'credentials', 'sidecars') THEN
			errs := paas.add_err(errs, 'deployment.' || k, format('deployment.%s is not a known field', k));
		END IF;
	END LOOP;
	IF d ? 'kind' AND d ->> 'kind' IS DISTINCT FROM 'Deployment' THEN
		errs := paas.add_err(errs, 'deployment.kind', 'deployment.kind must be Deployment');
	END IF;
	IF d ? 'expose' AND d ->> 'expose' NOT IN ('http', 'none') THEN
		errs := paas.add_err(errs, 'deployment.expose', 'deployment.expose must be one of [http, none]');
	END IF;
	errs := paas.check_int(errs, jsonb_build_object('deployment.fsGroup', d -> 'fsGroup'),
						   'deployment.fsGroup', false, 0, 2147483647);

	secrets := coalesce(d -> 'secrets', '{}');
	IF jsonb_typeof(secrets) <> 'object' THEN
		errs := paas.add_err(errs, 'deployment.secrets', 'deployment.secrets must be an object');
		secrets := '{}';
	ELSE
		IF (SELECT count(*) FROM jsonb_object_keys(secrets)) > 20 THEN
			errs := paas.add_err(errs, 'deployment.secrets', 'deployment.secrets holds at most 20 secrets');
		END IF;
		FOR s IN SELECT key, value FROM jsonb_each(secrets) LOOP
			IF s.key !~ '^[A-Z][A-Z0-9_]{0,62}$' THEN
				errs := paas.add_err(errs, 'deployment.secrets',
					format('deployment.secrets: %s must be upper-case letters, digits and underscores', s.key));
			ELSIF jsonb_typeof(s.value) <> 'object'
				  OR EXISTS (SELECT 1 FROM jsonb_object_keys(s.value) x WHERE x <> 'length') THEN
				errs := paas.add_err(errs, 'deployment.secrets.' || s.key,
					format('deployment.secrets.%s must be an object {length}', s.key));
			ELSE
				errs := paas.check_int(errs, jsonb_build_object('deployment.secrets.' || s.key || '.length',
									   s.value -> 'length'),
									   'deployment.secrets.' || s.key || '.length', false, 8, 128);
			END IF;
		END LOOP;
	END IF;

	errs := paas.template_container_errors(errs, 'deployment', d, secrets);
	errs := paas.template_env_errors(errs, 'environmentVars', v.environment_vars, secrets);

	IF d ? 'credentials' THEN
		IF jsonb_typeof(d -> 'credentials') <> 'object' OR (SELECT count(*) FROM jsonb_object_keys(d -> 'credentials')) > 20 THEN
			errs := paas.add_err(errs, 'deployment.credentials',
				'deployment.credentials must be an object of at most 20 strings');
		ELSE
			FOR s IN SELECT key, value FROM jsonb_each(d -> 'credentials') LOOP
				IF jsonb_typeof(s.value) <> 'string' THEN
					errs := paas.add_err(errs, 'deployment.credentials.' || s.key,
						format('deployment.credentials.%s must be a string', s.key));
				ELSE
					errs := paas.tpl_check(errs, 'deployment.credentials.' || s.key, s.value #>> '{}', secrets);
				END IF;
			END LOOP;
		END IF;
	END IF;

	IF d ? 'sidecars' THEN
		IF jsonb_typeof(d -> 'sidecars') <> 'array' OR jsonb_array_length(d -> 'sidecars') > 3 THEN
			errs := paas.add_err(errs, 'deployment.sidecars', 'deployment.sidecars must be an array of at most 3 containers');
		ELSE
			FOR sc IN SELECT x AS c, n - 1 AS i FROM jsonb_array_elements(d -> 'sidecars') WITH ORDINALITY a(x, n) LOOP
				k := format('deployment.sidecars[%s]', sc.i);
				IF jsonb_typeof(sc.c) <> 'object' THEN
					errs := paas.add_err(errs, k, k || ' must be an object');
					CONTINUE;
				END IF;
				IF EXISTS (SELECT 1 FROM jsonb_object_keys(sc.c) x
							WHERE x NOT IN ('name', 'image', 'env', 'command', 'args', 'volumeMountPath',
											'volumeSubPath', 'runAsUser', 'runAsGroup', 'probe', 'cpuRequest',
											'cpuLimit', 'memRequest', 'memLimit')) THEN
					errs := paas.add_err(errs, k, k || ' has a field that is not known');
				END IF;
				IF jsonb_typeof(sc.c -> 'name') IS DISTINCT FROM 'string'
				   OR sc.c ->> 'name' !~ '^[a-z]([-a-z0-9]{0,28}[a-z0-9])?$' OR sc.c ->> 'name' = ANY (names) THEN
					errs := paas.add_err(errs, k || '.name', k || '.name must be a unique DNS label (not "app")');
				ELSE
					names := names || (sc.c ->> 'name');
				END IF;
				IF jsonb_typeof(sc.c -> 'image') IS DISTINCT FROM 'string'
				   OR sc.c ->> 'image' !~ ('^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?'
										  '(/[a-z0-9]+([._-]+[a-z0-9]+)*)*'
										  '(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$') THEN
					errs := paas.add_err(errs, k || '.image', k || '.image must be an image reference');
				END IF;
				FOREACH q IN ARRAY ARRAY[to_jsonb('cpuRequest'::text), to_jsonb('cpuLimit'::text),
										 to_jsonb('memRequest'::text), to_jsonb('memLimit'::text)] LOOP
					IF (paas.service_quantity(sc.c, q #>> '{}')).value IS NULL THEN
						errs := paas.add_err(errs, k || '.' || (q #>> '{}'), format('%s.%s is required: %s', k, q #>> '{}',
							CASE WHEN q #>> '{}' LIKE 'cpu%' THEN 'a CPU quantity such as "0.25" or "500m"'
								 ELSE 'a memory quantity such as "256Mi" or "1Gi"' END));
					END IF;
				END LOOP;
				IF (paas.service_quantity(sc.c, 'cpuRequest')).value > (paas.service_quantity(sc.c, 'cpuLimit')).value
				   OR (paas.service_quantity(sc.c, 'memRequest')).value > (paas.service_quantity(sc.c, 'memLimit')).value THEN
					errs := paas.add_err(errs, k, k || ': a request exceeds its limit');
				END IF;
				errs := paas.template_container_errors(errs, k, sc.c, secrets);
				errs := paas.template_env_errors(errs, k || '.env', sc.c -> 'env', secrets);
			END LOOP;
		END IF;
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_errors(paas.services, jsonb) IS
	'field errors of a service''s deployment template and environment templates ([] when it renders)';

------------------------------------------------------------------------------
-- Templates: resources and names
------------------------------------------------------------------------------

-- What one instance of the service requests and is limited to: the app's
-- container plus its sidecars.
CREATE FUNCTION paas.template_resources(v paas.services, d jsonb,
										OUT cpu_request_m integer, OUT cpu_limit_m integer,
										OUT mem_request_mib integer, OUT mem_limit_mib integer,
										OUT storage_gib integer)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT v.cpu_request_m + coalesce(sum(paas.parse_cpu(c ->> 'cpuRequest')), 0)::integer,
		   v.cpu_limit_m + coalesce(sum(paas.parse_cpu(c ->> 'cpuLimit')), 0)::integer,
		   v.mem_request_mib + coalesce(sum(paas.parse_mem(c ->> 'memRequest')), 0)::integer,
		   v.mem_limit_mib + coalesce(sum(paas.parse_mem(c ->> 'memLimit')), 0)::integer,
		   v.storage_gib
	  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d -> 'sidecars') = 'array'
									 THEN d -> 'sidecars' ELSE '[]' END) c
$$;
COMMENT ON FUNCTION paas.template_resources(paas.services, jsonb) IS
	'cpu (millicores) and memory (MiB) requests and limits of one instance, sidecars included, and its storage';

-- The DNS label of an instance: the service slug (cut to 40 characters,
-- starting with a letter) and "-" plus hex digits of the instance id.
CREATE FUNCTION paas.instance_name_for(slug text, id uuid, digits integer DEFAULT 8) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN (WITH b AS (SELECT btrim(left(regexp_replace(slug, '[^a-z0-9-]', '', 'g'), 40), '-') AS s)
			SELECT CASE WHEN s ~ '^[a-z]' THEN s ELSE 'app' || CASE WHEN s = '' THEN '' ELSE '-' || s END END
				   || '-' || left(replace(id::text, '-', ''), digits)
			  FROM b);
COMMENT ON FUNCTION paas.instance_name_for(text, uuid, integer) IS
	'instance DNS label: service slug + "-" + digits hex of the id';

CREATE FUNCTION paas.namespace_name_for(user_id uuid) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN 'paas-' || user_id::text;
COMMENT ON FUNCTION paas.namespace_name_for(uuid) IS 'the Kubernetes namespace of a customer';

CREATE FUNCTION paas.label_value(t text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN coalesce(nullif(btrim(left(regexp_replace(t, '[^A-Za-z0-9._-]', '', 'g'), 63), '-_.'), ''), 'app');
COMMENT ON FUNCTION paas.label_value(text) IS 'text made a valid Kubernetes label value';

------------------------------------------------------------------------------
-- Manifests
------------------------------------------------------------------------------

CREATE FUNCTION paas.instance_labels(i paas.instances, slug text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'app.kubernetes.io/managed-by', 'paas',
		'app.kubernetes.io/name', paas.label_value(slug),
		'app.kubernetes.io/instance', i.name,
		'paas.dev/instance-id', i.id::text,
		'paas.dev/user-id', i.user_id::text);
COMMENT ON FUNCTION paas.instance_labels(paas.instances, text) IS 'the labels of every object of an instance';

CREATE FUNCTION paas.instance_meta(i paas.instances, slug text, name text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN jsonb_build_object('name', name, 'namespace', i.namespace,
							  'labels', paas.instance_labels(i, slug),
							  'annotations', jsonb_build_object('paas.dev/generation', i.generation::text));
COMMENT ON FUNCTION paas.instance_meta(paas.instances, text, text) IS 'metadata of an object of an instance';

-- The values of the placeholders for an instance.  secret.NAME is the
-- $(PAAS_SECRET_NAME) reference for environment values, or the value itself
-- when "reveal" (credentials shown to the owner).
CREATE FUNCTION paas.instance_vars(i paas.instances, v paas.services, d jsonb, reveal boolean) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object('host', i.host, 'url', 'https://' || i.host, 'instance', i.name,
							  'namespace', i.namespace, 'port', v.container_port::text)
		|| coalesce((SELECT jsonb_object_agg('secret.' || s.key,
							CASE WHEN reveal THEN coalesce((SELECT x.value FROM paas.instance_secrets x
															 WHERE x.instance_id = i.id AND x.name = s.key), '')
								 ELSE '$(PAAS_SECRET_' || s.key || ')' END)
					   FROM jsonb_object_keys(coalesce(d -> 'secrets', '{}')) s(key)), '{}');
COMMENT ON FUNCTION paas.instance_vars(paas.instances, paas.services, jsonb, boolean) IS
	'placeholder values of an instance (secrets as $(VAR) references unless revealed)';

-- The env list of a container: first PAAS_SECRET_<NAME> from the Secret
-- for every secret embedded in a longer value, then the variables in name
-- order; a value that is exactly {{secret.NAME}} reads the Secret directly.
CREATE FUNCTION paas.container_env(env jsonb, vars jsonb, secret_name text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	WITH e AS (
		SELECT key, value #>> '{}' AS val,
			   substring(value #>> '{}' FROM '^\{\{\s*secret\.([A-Z][A-Z0-9_]*)\s*\}\}$') AS direct
		  FROM jsonb_each(coalesce(env, '{}'))),
	embedded AS (
		SELECT DISTINCT substr(p, 8) AS name
		  FROM e, paas.tpl_placeholders(e.val) p
		 WHERE e.direct IS NULL AND p LIKE 'secret.%')
	SELECT coalesce(jsonb_agg(x ORDER BY ord, k), '[]') FROM (
		SELECT 0 AS ord, 'PAAS_SECRET_' || name AS k,
			   jsonb_build_object('name', 'PAAS_SECRET_' || name, 'valueFrom',
				   jsonb_build_object('secretKeyRef', jsonb_build_object('name', secret_name, 'key', name))) AS x
		  FROM embedded
		UNION ALL
		SELECT 1, key,
			   CASE WHEN direct IS NOT NULL
					THEN jsonb_build_object('name', key, 'valueFrom',
							jsonb_build_object('secretKeyRef', jsonb_build_object('name', secret_name, 'key', direct)))
					ELSE jsonb_build_object('name', key, 'value', paas.tpl_subst(val, vars)) END
		  FROM e) y
$$;
COMMENT ON FUNCTION paas.container_env(jsonb, jsonb, text) IS
	'a container''s env list from a template environment (secrets through secretKeyRef)';

-- readiness, liveness and startup probes of a template probe (default: TCP
-- on the app's port).
CREATE FUNCTION paas.container_probes(p jsonb, port_name text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	WITH h AS (
		SELECT CASE coalesce(p ->> 'type', 'tcp')
				 WHEN 'http' THEN jsonb_build_object('httpGet', jsonb_build_object(
									'path', coalesce(p ->> 'path', '/'), 'port', port_name))
				 WHEN 'exec' THEN jsonb_build_object('exec', jsonb_build_object('command', p -> 'command'))
				 WHEN 'tcp' THEN jsonb_build_object('tcpSocket', jsonb_build_object('port', port_name))
			   END AS handler,
			   coalesce((p ->> 'periodSeconds')::int, 10) AS period,
			   coalesce((p ->> 'timeoutSeconds')::int, 5) AS timeout,
			   coalesce((p ->> 'failureThreshold')::int, 3) AS failures,
			   coalesce((p ->> 'initialDelaySeconds')::int, 0) AS delay,
			   coalesce((p ->> 'startupSeconds')::int, 600) AS startup)
	SELECT CASE WHEN handler IS NULL THEN '{}'::jsonb ELSE jsonb_build_object(
		'startupProbe', handler || jsonb_build_object('initialDelaySeconds', delay, 'periodSeconds', 5,
						'timeoutSeconds', timeout, 'failureThreshold', greatest(1, ceil(startup / 5.0))::int),
		'readinessProbe', handler || jsonb_build_object('periodSeconds', period, 'timeoutSeconds', timeout,
						'failureThreshold', failures),
		'livenessProbe', handler || jsonb_build_object('periodSeconds', greatest(period, 20),
						'timeoutSeconds', timeout, 'failureThreshold', greatest(failures, 6))) END
	  FROM h
$$;
COMMENT ON FUNCTION paas.container_probes(jsonb, text) IS
	'startup, readiness and liveness probes of a template probe';

CREATE FUNCTION paas.container_security(c jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN jsonb_build_object('allowPrivilegeEscalation', false,
							  'seccompProfile', jsonb_build_object('type', 'RuntimeDefault'))
		|| CASE WHEN (c ->> 'runAsUser')::bigint > 0 THEN jsonb_build_object(
				'runAsUser', (c ->> 'runAsUser')::bigint,
				'runAsGroup', coalesce((c ->> 'runAsGroup')::bigint, (c ->> 'runAsUser')::bigint),
				'runAsNonRoot', true,
				'capabilities', jsonb_build_object('drop', jsonb_build_array('ALL')))
			ELSE '{}' END;
COMMENT ON FUNCTION paas.container_security(jsonb) IS
	'a container''s securityContext: no privilege escalation, RuntimeDefault seccomp, non-root when the template says so';

-- The objects of an instance in apply order, for its desired state, and the
-- objects to delete.  Returns {"apply": [...], "delete": [{apiVersion,
-- kind, namespace, name}]}.  Secret data is "<redacted>" unless reveal.
CREATE FUNCTION paas.instance_render(i paas.instances, v paas.services, reveal boolean,
									 tpl jsonb DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	cfg record := paas.instance_config();
	d jsonb := coalesce(tpl, paas.service_template(v.id));
	slug text := v.name;
	vars jsonb := paas.instance_vars(i, v, d, false);
	labels jsonb := paas.instance_labels(i, v.name);
	sec_name text := i.name || '-secrets';
	pvc_name text := i.name || '-data';
	has_secrets boolean := (SELECT count(*) > 0 FROM jsonb_object_keys(coalesce(d -> 'secrets', '{}')));
	has_volume boolean := i.storage_gib > 0;
	exposed boolean := coalesce(d ->> 'expose', 'http') = 'http';
	running boolean := i.desired_state = 'running';
	containers jsonb;
	pod jsonb;
	apply jsonb := '[]';
	del jsonb := '[]';
	ref jsonb;
	sc jsonb;
BEGIN
	IF i.desired_state = 'deleted' THEN
		-- everything but the volume, which is kept for the retention period
		FOREACH ref IN ARRAY ARRAY[
			jsonb_build_object('apiVersion', 'networking.k8s.io/v1', 'kind', 'Ingress', 'name', i.name),
			jsonb_build_object('apiVersion', 'v1', 'kind', 'Service', 'name', i.name),
			jsonb_build_object('apiVersion', 'apps/v1', 'kind', 'Deployment', 'name', i.name),
			jsonb_build_object('apiVersion', 'v1', 'kind', 'Secret', 'name', sec_name)] LOOP
			del := del || jsonb_build_array(ref || jsonb_build_object('namespace', i.namespace));
		END LOOP;
		IF has_volume AND i.volume_purge_at IS NOT NULL AND i.volume_purge_at <= now() THEN
			del := del || jsonb_build_array(jsonb_build_object('apiVersion', 'v1', 'kind', 'PersistentVolumeClaim',
				'namespace', i.namespace, 'name', pvc_name));
		END IF;
		RETURN jsonb_build_object('apply', apply, 'delete', del);
	END IF;

	IF has_secrets THEN
		apply := apply || jsonb_build_array(jsonb_build_object(
			'apiVersion', 'v1', 'kind', 'Secret',
			'metadata', paas.instance_meta(i, slug, sec_name),
			'type', 'Opaque',
			'data', (SELECT jsonb_object_agg(s.key, CASE WHEN reveal
						THEN translate(encode(convert_to(coalesce(x.value, ''), 'UTF8'), 'base64'), E'\n', '')
						ELSE '<redacted>' END)
					   FROM jsonb_object_keys(d -> 'secrets') s(key)
					   LEFT JOIN paas.instance_secrets x ON x.instance_id = i.id AND x.name = s.key)));
	END IF;
	IF has_volume THEN
		apply := apply || jsonb_build_array(jsonb_build_object(
			'apiVersion', 'v1', 'kind', 'PersistentVolumeClaim',
			'metadata', paas.instance_meta(i, slug, pvc_name),
			'spec', jsonb_build_object(
				'accessModes', jsonb_build_array('ReadWriteOnce'),
				'resources', jsonb_build_object('requests', jsonb_build_object('storage', i.storage_gib || 'Gi')))
				|| CASE WHEN cfg.storage_class <> '' THEN jsonb_build_object('storageClassName', cfg.storage_class)
						ELSE '{}' END));
	END IF;

	containers := jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
		'name', 'app',
		'image', v.docker_image,
		'ports', jsonb_build_array(jsonb_build_object('name', 'http', 'containerPort', v.container_port,
													  'protocol', 'TCP')),
		'command', (SELECT jsonb_agg(to_jsonb(paas.tpl_subst(x #>> '{}', vars)) ORDER BY n)
					  FROM jsonb_array_elements(d -> 'command') WITH ORDINALITY a(x, n)),
		'args', (SELECT jsonb_agg(to_jsonb(paas.tpl_subst(x #>> '{}', vars)) ORDER BY n)
				   FROM jsonb_array_elements(d -> 'args') WITH ORDINALITY a(x, n)),
		'env', paas.container_env(v.environment_vars, vars, sec_name),
		'resources', jsonb_build_object(
			'requests', jsonb_build_object('cpu', v.cpu_request_m || 'm', 'memory', v.mem_request_mib || 'Mi'),
			'limits', jsonb_build_object('cpu', v.cpu_limit_m || 'm', 'memory', v.mem_limit_mib || 'Mi')),
		'volumeMounts', CASE WHEN has_volume THEN jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
							'name', 'data', 'mountPath', coalesce(d ->> 'volumeMountPath', '/data'),
							'subPath', d ->> 'volumeSubPath'))) END,
		'securityContext', paas.container_security(d),
		'terminationMessagePolicy', 'FallbackToLogsOnError'))
		|| paas.container_probes(d -> 'probe', 'http'));
	FOR sc IN SELECT x FROM jsonb_array_elements(coalesce(d -> 'sidecars', '[]')) x LOOP
		containers := containers || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
			'name', sc ->> 'name',
			'image', sc ->> 'image',
			'command', (SELECT jsonb_agg(to_jsonb(paas.tpl_subst(x #>> '{}', vars)) ORDER BY n)
						  FROM jsonb_array_elements(sc -> 'command') WITH ORDINALITY a(x, n)),
			'args', (SELECT jsonb_agg(to_jsonb(paas.tpl_subst(x #>> '{}', vars)) ORDER BY n)
					   FROM jsonb_array_elements(sc -> 'args') WITH ORDINALITY a(x, n)),
			'env', paas.container_env(sc -> 'env', vars, sec_name),
			'resources', jsonb_build_object(
				'requests', jsonb_build_object('cpu', paas.parse_cpu(sc ->> 'cpuRequest') || 'm',
											   'memory', paas.parse_mem(sc ->> 'memRequest') || 'Mi'),
				'limits', jsonb_build_object('cpu', paas.parse_cpu(sc ->> 'cpuLimit') || 'm',
											 'memory', paas.parse_mem(sc ->> 'memLimit') || 'Mi')),
			'volumeMounts', CASE WHEN has_volume AND sc ? 'volumeMountPath' THEN
								jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
									'name', 'data', 'mountPath', sc ->> 'volumeMountPath',
									'subPath', sc ->> 'volumeSubPath'))) END,
			'securityContext', paas.container_security(sc),
			'terminationMessagePolicy', 'FallbackToLogsOnError'))
			|| CASE WHEN sc ? 'probe' THEN paas.container_probes(sc -> 'probe', NULL) - 'startupProbe'
					ELSE '{}' END);
	END LOOP;

	pod := jsonb_strip_nulls(jsonb_build_object(
		'automountServiceAccountToken', false,
		'enableServiceLinks', false,
		'terminationGracePeriodSeconds', 30,
		'securityContext', jsonb_build_object('seccompProfile', jsonb_build_object('type', 'RuntimeDefault'))
			|| CASE WHEN d ? 'fsGroup' THEN jsonb_build_object('fsGroup', (d ->> 'fsGroup')::bigint,
							'fsGroupChangePolicy', 'OnRootMismatch') ELSE '{}' END
			|| CASE WHEN (d ->> 'runAsUser')::bigint > 0 THEN jsonb_build_object('runAsNonRoot', true)
					ELSE '{}' END,
		'containers', containers,
		'volumes', CASE WHEN has_volume THEN jsonb_build_array(jsonb_build_object(
						'name', 'data', 'persistentVolumeClaim', jsonb_build_object('claimName', pvc_name))) END));

	apply := apply || jsonb_build_array(jsonb_build_object(
		'apiVersion', 'apps/v1', 'kind', 'Deployment',
		'metadata', paas.instance_meta(i, slug, i.name),
		'spec', jsonb_build_object(
			'replicas', CASE WHEN running THEN 1 ELSE 0 END,
			'revisionHistoryLimit', 2,
			'progressDeadlineSeconds', 600,
			'strategy', jsonb_build_object('type', 'Recreate'),
			'selector', jsonb_build_object('matchLabels', jsonb_build_object('paas.dev/instance-id', i.id::text)),
			'template', jsonb_build_object(
				'metadata', jsonb_build_object('labels', labels)
					|| CASE WHEN i.restarted_at IS NOT NULL THEN jsonb_build_object('annotations',
							jsonb_build_object('paas.dev/restartedAt', paas.iso(i.restarted_at)))
						ELSE '{}' END,
				'spec', pod))));
	apply := apply || jsonb_build_array(jsonb_build_object(
		'apiVersion', 'v1', 'kind', 'Service',
		'metadata', paas.instance_meta(i, slug, i.name),
		'spec', jsonb_build_object(
			'type', 'ClusterIP',
			'selector', jsonb_build_object('paas.dev/instance-id', i.id::text),
			'ports', jsonb_build_array(jsonb_build_object('name', 'http', 'port', v.container_port,
														  'targetPort', 'http', 'protocol', 'TCP')))));
	IF exposed AND running THEN
		apply := apply || jsonb_build_array(jsonb_build_object(
			'apiVersion', 'networking.k8s.io/v1', 'kind', 'Ingress',
			'metadata', paas.instance_meta(i, slug, i.name) || jsonb_build_object('annotations',
				jsonb_build_object('paas.dev/generation', i.generation::text,
								   'cert-manager.io/cluster-issuer', cfg.cert_issuer)),
			'spec', jsonb_build_object(
				'ingressClassName', cfg.ingress_class,
				'tls', jsonb_build_array(jsonb_build_object('hosts', jsonb_build_array(i.host),
															 'secretName', i.name || '-tls')),
				'rules', jsonb_build_array(jsonb_build_object(
					'host', i.host,
					'http', jsonb_build_object('paths', jsonb_build_array(jsonb_build_object(
						'path', '/', 'pathType', 'Prefix',
						'backend', jsonb_build_object('service', jsonb_build_object(
							'name', i.name, 'port', jsonb_build_object('number', v.container_port)))))))))));
	ELSE
		del := del || jsonb_build_array(jsonb_build_object('apiVersion', 'networking.k8s.io/v1',
			'kind', 'Ingress', 'namespace', i.namespace, 'name', i.name));
	END IF;
	RETURN jsonb_build_object('apply', apply, 'delete', del);
END
$$;
COMMENT ON FUNCTION paas.instance_render(paas.instances, paas.services, boolean, jsonb) IS
	'objects to apply (in order) and to delete for an instance''s desired state; secrets redacted unless reveal '
	'(tpl: a template to try instead of the stored one)';

-- The namespace objects of a customer: Namespace, ResourceQuota (the sum
-- of the live instances: running ones for pods, cpu and memory, every
-- instance that still has a volume for storage), LimitRange,
-- NetworkPolicy.
CREATE FUNCTION paas.namespace_render(ns paas.instance_namespaces) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	cfg record := paas.instance_config();
	labels jsonb := jsonb_build_object('app.kubernetes.io/managed-by', 'paas',
									   'paas.dev/user-id', ns.user_id::text);
	meta jsonb := jsonb_build_object('namespace', ns.name, 'labels', labels,
									 'annotations', jsonb_build_object('paas.dev/generation', ns.generation::text));
	q record;
BEGIN
	SELECT count(*) FILTER (WHERE i.desired_state = 'running') AS pods,
		   coalesce(sum(i.cpu_request_m) FILTER (WHERE i.desired_state = 'running'), 0) AS cpu_req,
		   coalesce(sum(i.cpu_limit_m) FILTER (WHERE i.desired_state = 'running'), 0) AS cpu_lim,
		   coalesce(sum(i.mem_request_mib) FILTER (WHERE i.desired_state = 'running'), 0) AS mem_req,
		   coalesce(sum(i.mem_limit_mib) FILTER (WHERE i.desired_state = 'running'), 0) AS mem_lim,
		   coalesce(sum(i.storage_gib) FILTER (WHERE i.storage_gib > 0 AND i.volume_deleted_at IS NULL), 0) AS storage,
		   count(*) FILTER (WHERE i.storage_gib > 0 AND i.volume_deleted_at IS NULL) AS pvcs
	  INTO q
	  FROM paas.instances i WHERE i.user_id = ns.user_id;
	RETURN jsonb_build_array(
		jsonb_build_object('apiVersion', 'v1', 'kind', 'Namespace',
			'metadata', jsonb_build_object('name', ns.name,
				'labels', labels || jsonb_build_object('pod-security.kubernetes.io/enforce', 'baseline'),
				'annotations', meta -> 'annotations')),
		jsonb_build_object('apiVersion', 'v1', 'kind', 'ResourceQuota',
			'metadata', meta || jsonb_build_object('name', 'paas-quota'),
			'spec', jsonb_build_object('hard', jsonb_build_object(
				'pods', q.pods::text,
				'requests.cpu', q.cpu_req || 'm', 'limits.cpu', q.cpu_lim || 'm',
				'requests.memory', q.mem_req || 'Mi', 'limits.memory', q.mem_lim || 'Mi',
				'requests.storage', q.storage || 'Gi', 'persistentvolumeclaims', q.pvcs::text,
				'services.loadbalancers', '0', 'services.nodeports', '0'))),
		jsonb_build_object('apiVersion', 'v1', 'kind', 'LimitRange',
			'metadata', meta || jsonb_build_object('name', 'paas-limits'),
			'spec', jsonb_build_object('limits', jsonb_build_array(jsonb_build_object(
				'type', 'Container',
				'default', jsonb_build_object('cpu', '500m', 'memory', '512Mi'),
				'defaultRequest', jsonb_build_object('cpu', '100m', 'memory', '128Mi'),
				'max', jsonb_build_object('cpu', '64', 'memory', '256Gi'))))),
		jsonb_build_object('apiVersion', 'networking.k8s.io/v1', 'kind', 'NetworkPolicy',
			'metadata', meta || jsonb_build_object('name', 'paas-isolation'),
			'spec', jsonb_build_object(
				'podSelector', '{}'::jsonb,
				'policyTypes', jsonb_build_array('Ingress', 'Egress'),
				-- in: the customer's own pods and the ingress controller only
				'ingress', jsonb_build_array(jsonb_build_object('from', jsonb_build_array(
					jsonb_build_object('podSelector', '{}'::jsonb),
					jsonb_build_object('namespaceSelector', jsonb_build_object('matchLabels',
						jsonb_build_object('kubernetes.io/metadata.name', cfg.ingress_namespace)))))),
				-- out: the customer's own pods, namespaces that belong to no
				-- customer (DNS, the platform), and addresses outside the
				-- private ranges (the internet); never another customer
				'egress', jsonb_build_array(
					jsonb_build_object('to', jsonb_build_array(jsonb_build_object('podSelector', '{}'::jsonb))),
					jsonb_build_object('to', jsonb_build_array(jsonb_build_object('namespaceSelector',
						jsonb_build_object('matchExpressions', jsonb_build_array(jsonb_build_object(
							'key', 'paas.dev/user-id', 'operator', 'DoesNotExist')))))),
					jsonb_build_object('to', jsonb_build_array(jsonb_build_object('ipBlock', jsonb_build_object(
						'cidr', '0.0.0.0/0',
						'except', jsonb_build_array('10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16',
													'100.64.0.0/10', '169.254.0.0/16')))))))));
END
$$;
COMMENT ON FUNCTION paas.namespace_render(paas.instance_namespaces) IS
	'a customer''s Namespace, ResourceQuota (sum of live instances), LimitRange and NetworkPolicy';

-- What the reconciler applies for an instance, as a DBA can read it:
-- {"namespace": [...], "apply": [...], "delete": [...]}, secret values
-- redacted unless reveal_secrets.  PT404 for an unknown instance.
CREATE FUNCTION paas.instance_manifests(instance_id uuid, reveal_secrets boolean DEFAULT false)
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	v paas.services;
	ns paas.instance_namespaces;
BEGIN
	SELECT * INTO i FROM paas.instances x WHERE x.id = instance_manifests.instance_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Instance not found' USING ERRCODE = 'PT404';
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	SELECT * INTO ns FROM paas.instance_namespaces WHERE user_id = i.user_id;
	RETURN jsonb_build_object('namespace', paas.namespace_render(ns))
		|| paas.instance_render(i, v, reveal_secrets);
END
$$;
COMMENT ON FUNCTION paas.instance_manifests(uuid, boolean) IS
	'exactly what the reconciler applies and deletes for an instance (secrets redacted unless asked)';

------------------------------------------------------------------------------
-- Saving a service: the template must render
------------------------------------------------------------------------------

-- A sample instance of a service, for the render check.
CREATE FUNCTION paas.sample_instance(v paas.services, d jsonb) RETURNS paas.instances
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	r record := paas.template_resources(v, d);
	id uuid := '00000000-0000-4000-8000-000000000000';
BEGIN
	i.id := id;
	i.subscription_id := id;
	i.user_id := id;
	i.service_id := v.id;
	i.name := paas.instance_name_for(v.name, id);
	i.namespace := paas.namespace_name_for(id);
	i.host := i.name || '.' || (paas.instance_config()).apps_domain;
	i.status := 'PENDING';
	i.desired_state := 'running';
	i.generation := 1;
	i.cpu_request_m := r.cpu_request_m;
	i.cpu_limit_m := r.cpu_limit_m;
	i.mem_request_mib := r.mem_request_mib;
	i.mem_limit_mib := r.mem_limit_mib;
	i.storage_gib := r.storage_gib;
	RETURN i;
END
$$;
COMMENT ON FUNCTION paas.sample_instance(paas.services, jsonb) IS 'an unsaved instance of a service, for checks';

-- Field errors of a service with a template, the trial render included.
CREATE FUNCTION paas.template_check(v paas.services, d jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := paas.template_errors(v, d);
	msg text;
BEGIN
	IF jsonb_array_length(errs) = 0 THEN
		BEGIN
			PERFORM paas.instance_render(paas.sample_instance(v, d), v, false, d);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
			errs := paas.add_err(errs, 'deployment', 'the deployment template does not render: ' || msg);
		END;
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.template_check(paas.services, jsonb) IS
	'field errors of a service and a template, a trial render of a sample instance included';

CREATE FUNCTION paas.services_template_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF current_setting('paas_templates.checked', true) IS DISTINCT FROM 'on' AND NOT paas.restoring() THEN
		PERFORM paas.raise_if_invalid(paas.template_check(NEW, paas.service_template(NEW.id)));
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.services_template_guard() IS
	'trigger: PT400 with field errors when a service saved with its template does not render';
CREATE TRIGGER services_template_guard
	BEFORE INSERT OR UPDATE OF environment_vars, docker_image, container_port, storage_gib
	ON paas.services
	FOR EACH ROW EXECUTE FUNCTION paas.services_template_guard();

CREATE FUNCTION paas.service_templates_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
BEGIN
	IF paas.restoring() THEN
		RETURN NEW;
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = NEW.service_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PT404';
	END IF;
	IF current_setting('paas_templates.checked', true) IS DISTINCT FROM 'on' THEN
		PERFORM paas.raise_if_invalid(paas.template_check(v, NEW.deployment));
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.service_templates_guard() IS
	'trigger: PT400 with field errors when a template does not render for its service';
CREATE TRIGGER service_templates_guard
	BEFORE INSERT OR UPDATE ON paas.service_templates
	FOR EACH ROW EXECUTE FUNCTION paas.service_templates_guard();

------------------------------------------------------------------------------
-- Instance bookkeeping shared by the money rules and the reconciler
------------------------------------------------------------------------------

-- Records an event of an instance.
CREATE FUNCTION paas.instance_log(instance_id uuid, event text, from_status text, to_status text,
								  generation bigint, message text, detail jsonb DEFAULT NULL,
								  actor text DEFAULT 'system', actor_id uuid DEFAULT NULL)
	RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.instance_events (instance_id, event, from_status, to_status, generation,
										  message, detail, actor, actor_id)
		VALUES (instance_id, event, from_status, to_status, generation, message, detail, actor, actor_id);
	END;
COMMENT ON FUNCTION paas.instance_log(uuid, text, text, text, bigint, text, jsonb, text, uuid) IS
	'records an event of an instance';

-- Generates the secrets the template declares that the instance does not
-- have yet (base64url, of the declared length).  Existing ones never change.
CREATE FUNCTION paas.instance_ensure_secrets(i paas.instances, v paas.services) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	BEGIN ATOMIC
		INSERT INTO paas.instance_secrets (instance_id, name, value)
		SELECT i.id, s.key,
			   left(translate(encode(public.gen_random_bytes(coalesce((s.value ->> 'length')::int, 24)), 'base64'),
								 E'+/=\n', '-_'),
					coalesce((s.value ->> 'length')::int, 24))
		  FROM jsonb_each(coalesce(paas.service_template(v.id) -> 'secrets', '{}')) s
		ON CONFLICT DO NOTHING;
	END;
COMMENT ON FUNCTION paas.instance_ensure_secrets(paas.instances, paas.services) IS
	'generates the declared secrets an instance does not have yet (never changes existing ones)';

-- The customer's namespace row, created or brought back to "present", with
-- a new generation (its quota depends on the instances).  Wakes the
-- reconciler at commit.
CREATE FUNCTION paas.namespace_touch(uid uuid) RETURNS paas.instance_namespaces
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	ns paas.instance_namespaces;
BEGIN
	INSERT INTO paas.instance_namespaces (user_id, name)
	VALUES (uid, paas.namespace_name_for(uid))
	ON CONFLICT (user_id) DO UPDATE
	   SET generation = paas.instance_namespaces.generation + 1,
		   desired_state = 'present',
		   state = CASE WHEN paas.instance_namespaces.state IN ('DELETING', 'DELETED') THEN 'PENDING'
						ELSE paas.instance_namespaces.state END,
		   due_at = now(), attempts = 0, updated_at = now()
	RETURNING * INTO ns;
	PERFORM paas.instance_wake();
	RETURN ns;
END
$$;
COMMENT ON FUNCTION paas.namespace_touch(uuid) IS
	'creates or re-generates a customer''s namespace row (its quota follows the instances)';

-- Applies an event to an instance row (locked by the caller): the status
-- machine, the timestamps of the new status, the event row.  Returns the
-- new status.  PT409 when the machine refuses.
CREATE FUNCTION paas.instance_apply_event(inst_id uuid, event text, message text,
										  actor text DEFAULT 'system', actor_id uuid DEFAULT NULL,
										  detail jsonb DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	nxt text;
BEGIN
	SELECT * INTO i FROM paas.instances WHERE id = inst_id;
	nxt := paas.instance_transition(i.status, event);
	IF nxt <> i.status THEN
		UPDATE paas.instances
		   SET status = nxt, status_changed_at = now(), updated_at = now(),
			   ever_running = ever_running OR nxt = 'RUNNING',
			   ready_at = CASE WHEN nxt = 'RUNNING' THEN now() ELSE ready_at END,
			   stopped_at = CASE WHEN nxt = 'STOPPED' THEN now() ELSE stopped_at END,
			   ended_at = CASE WHEN nxt IN ('DELETED', 'FAILED') THEN coalesce(ended_at, now()) ELSE ended_at END
		 WHERE id = inst_id;
		PERFORM paas.instance_log(inst_id, event, i.status, nxt, i.generation, message, detail, actor, actor_id);
	END IF;
	RETURN nxt;
END
$$;
COMMENT ON FUNCTION paas.instance_apply_event(uuid, text, text, text, uuid, jsonb) IS
	'moves an instance through the status machine (PT409 when illegal) and records the change';

-- ---- new: sql/parts/71_instance_money.sql ----
-- paas -- instances tied to the money: every subscription has its
-- instance, the subscription's status decides what the instance should be,
-- a sale needs free capacity, and an instance that never starts is
-- refunded.
--
-- Rules a reader must know.
--   * One place decides what an instance should be,
--     paas.instance_desired(subscription status, admin_stopped):
--     ACTIVE, GRACE and CANCELLED (served until the period ends) -> running
--     (stopped when an administrator stopped it); SUSPENDED -> stopped
--     (replicas 0, ingress gone, data kept); EXPIRED -> deleted (the volume
--     is kept paas.instance_data_retention, default 7 days, then deleted).
--   * Triggers on paas.subscriptions apply it set-based, in the transaction
--     of the business change (a sale, the renewal run's batches, an admin's
--     PUT): a new subscription gets its PENDING instance, a status change
--     bumps the instance's generation and wakes the reconciler at commit
--     (only rows whose status changed are looked at).  A revival of an ended instance (EXPIRED ->
--     ACTIVE) is "recreate": PENDING again, its volume reused if kept.
--   * Capacity: paas.instance_capacity_check(service) refuses (PT409, so
--     nothing is charged) when the ACTIVE, ready, schedulable nodes of the
--     registry lack the cpu or memory for one more instance after the
--     requests of every instance that should run; it is called by the sale
--     and by a revival (one line each in 60_subscriptions.sql) and
--     serialises them with an advisory lock held to commit.
--   * Start deadline: the job instance_deadlines fails an instance that has
--     not reached RUNNING within paas.instance_start_deadline (default 30
--     min) of its start, expires its subscription and refunds the charge
--     of that period in full: a ledger entry revenue -> wallet (key
--     "subscription:<id>:period:<n>:refund", so at most once whatever
--     races) and a credit note voiding the period's invoice.

------------------------------------------------------------------------------
-- What an instance should be
------------------------------------------------------------------------------

CREATE FUNCTION paas.instance_desired(sub_status text, admin_stopped boolean) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE WHEN sub_status = 'EXPIRED' THEN 'deleted'
				WHEN sub_status = 'SUSPENDED' OR admin_stopped THEN 'stopped'
				ELSE 'running' END;
COMMENT ON FUNCTION paas.instance_desired(text, boolean) IS
	'desired state of an instance: EXPIRED -> deleted, SUSPENDED or stopped by an admin -> stopped, else running';

-- Sets what a set of instances should be (ids, in id order to keep lock
-- order), bumping the generation of those that change, recording the
-- change, and re-generating their namespaces.  Ended instances wanted
-- again are recreated (PENDING, a new start deadline).  Returns the number
-- of instances changed.
CREATE FUNCTION paas.instances_set_desired(ids uuid[], reason text, actor text DEFAULT 'billing',
										   actor_id uuid DEFAULT NULL)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n integer;
	retention interval := (paas.instance_config()).data_retention;
BEGIN
	WITH want AS (
		SELECT i.id, i.status, i.desired_state AS old_desired, i.generation,
			   paas.instance_desired(s.status, i.admin_stopped) AS desired
		  FROM paas.instances i JOIN paas.subscriptions s ON s.id = i.subscription_id
		 WHERE i.id = ANY (ids)
		 ORDER BY i.id
		   FOR UPDATE OF i),
	ch AS (
		SELECT w.*,
			   CASE WHEN w.desired = 'deleted' AND w.status NOT IN ('DELETED', 'DELETING', 'FAILED')
					THEN 'delete'
					WHEN w.desired <> 'deleted' AND w.status IN ('DELETED', 'DELETING', 'FAILED')
					THEN 'recreate' END AS ev
		  FROM want w WHERE w.desired <> w.old_desired),
	upd AS (
		UPDATE paas.instances i
		   SET desired_state = ch.desired,
			   generation = i.generation + 1,
			   status = CASE WHEN ch.ev IS NULL THEN i.status ELSE paas.instance_transition(i.status, ch.ev) END,
			   status_changed_at = CASE WHEN ch.ev IS NULL THEN i.status_changed_at ELSE now() END,
			   start_requested_at = CASE WHEN ch.ev = 'recreate' OR (ch.desired = 'running' AND NOT i.ever_running)
										 THEN now() ELSE i.start_requested_at END,
			   ever_running = CASE WHEN ch.ev = 'recreate' THEN false ELSE i.ever_running END,
			   refunded_at = CASE WHEN ch.ev = 'recreate' THEN NULL ELSE i.refunded_at END,
			   ended_at = CASE WHEN ch.ev = 'recreate' THEN NULL ELSE i.ended_at END,
			   volume_purge_at = CASE WHEN ch.desired = 'deleted' AND i.storage_gib > 0
										   AND i.volume_deleted_at IS NULL
									  THEN now() + retention
									  WHEN ch.ev = 'recreate' AND i.volume_deleted_at IS NULL THEN NULL
									  ELSE i.volume_purge_at END,
			   volume_deleted_at = CASE WHEN ch.ev = 'recreate' THEN NULL ELSE i.volume_deleted_at END,
			   last_error = CASE WHEN ch.ev = 'recreate' THEN NULL ELSE i.last_error END,
			   attempts = 0, polls = 0, due_at = now(), updated_at = now()
		  FROM ch
		 WHERE i.id = ch.id
		RETURNING i.id, i.user_id, ch.status AS from_status, i.status AS to_status, i.generation,
				  ch.old_desired, i.desired_state, ch.ev)
	, logged AS (
		INSERT INTO paas.instance_events (instance_id, event, from_status, to_status, generation,
										  message, detail, actor, actor_id)
		SELECT u.id, coalesce(u.ev, 'desired'), u.from_status, u.to_status, u.generation,
			   format('%s: %s -> %s', reason, u.old_desired, u.desired_state),
			   jsonb_build_object('desiredState', u.desired_state),
			   instances_set_desired.actor, instances_set_desired.actor_id
		  FROM upd u
		RETURNING instance_id)
	SELECT count(*) INTO n FROM logged;
	IF n > 0 THEN
		PERFORM paas.namespace_touch(u) FROM (
			SELECT DISTINCT i.user_id AS u FROM paas.instances i WHERE i.id = ANY (ids) ORDER BY 1) x;
		PERFORM paas.instance_wake();
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.instances_set_desired(uuid[], text, text, uuid) IS
	'applies paas.instance_desired to instances; new generation, event and namespace re-generation for each change';

------------------------------------------------------------------------------
-- Every subscription has its instance
------------------------------------------------------------------------------

-- Statement trigger: one instance per new subscription, named
-- <service>-<8 hex of its id> (more digits on the rare clash), in the
-- customer's namespace, with the template's secrets generated.
CREATE FUNCTION paas.subscriptions_new_instances() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	domain text := (paas.instance_config()).apps_domain;
	digits int;
	made uuid[] := '{}';
	more uuid[];
BEGIN
	IF paas.restoring() THEN
		RETURN NULL;
	END IF;
	FOREACH digits IN ARRAY ARRAY[8, 12, 32] LOOP
		WITH s AS (
			SELECT gen_random_uuid() AS iid, ns.id AS sid, ns.user_id, ns.service_id, ns.status
			  FROM new_subs ns
			 WHERE NOT EXISTS (SELECT 1 FROM paas.instances x WHERE x.subscription_id = ns.id)),
		ins AS (
			INSERT INTO paas.instances (id, subscription_id, user_id, service_id, name, namespace, host,
										desired_state, cpu_request_m, cpu_limit_m, mem_request_mib,
										mem_limit_mib, storage_gib)
			SELECT s.iid, s.sid, s.user_id, s.service_id, nm, paas.namespace_name_for(s.user_id),
				   nm || '.' || domain, paas.instance_desired(s.status, false),
				   r.cpu_request_m, r.cpu_limit_m, r.mem_request_mib, r.mem_limit_mib, r.storage_gib
			  FROM s
			  JOIN paas.services v ON v.id = s.service_id
			  CROSS JOIN LATERAL paas.template_resources(v, paas.service_template(v.id)) r
			  CROSS JOIN LATERAL paas.instance_name_for(v.name, s.iid, digits) nm
			 ORDER BY s.sid
			ON CONFLICT (name) DO NOTHING
			RETURNING id)
		SELECT coalesce(array_agg(id), '{}') INTO more FROM ins;
		made := made || more;
		EXIT WHEN NOT EXISTS (SELECT 1 FROM new_subs ns
							   WHERE NOT EXISTS (SELECT 1 FROM paas.instances x WHERE x.subscription_id = ns.id));
	END LOOP;
	IF cardinality(made) = 0 THEN
		RETURN NULL;
	END IF;
	INSERT INTO paas.instance_secrets (instance_id, name, value)
	SELECT i.id, s.key,
		   left(translate(encode(public.gen_random_bytes(coalesce((s.value ->> 'length')::int, 24)), 'base64'),
						  E'+/=\n', '-_'),
				coalesce((s.value ->> 'length')::int, 24))
	  FROM paas.instances i
	  JOIN paas.services v ON v.id = i.service_id
	  CROSS JOIN LATERAL jsonb_each(coalesce(paas.service_template(v.id) -> 'secrets', '{}')) s
	 WHERE i.id = ANY (made);
	INSERT INTO paas.instance_events (instance_id, event, to_status, generation, message, detail)
	SELECT i.id, 'create', i.status, i.generation, 'instance created for the subscription',
		   jsonb_build_object('desiredState', i.desired_state, 'name', i.name, 'namespace', i.namespace)
	  FROM paas.instances i WHERE i.id = ANY (made)
	 ORDER BY i.id;
	PERFORM paas.namespace_touch(u) FROM (
		SELECT DISTINCT i.user_id AS u FROM paas.instances i WHERE i.id = ANY (made) ORDER BY 1) x;
	PERFORM paas.instance_wake();
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.subscriptions_new_instances() IS
	'statement trigger: creates the instance of every new subscription';
CREATE TRIGGER subscriptions_new_instances
	AFTER INSERT ON paas.subscriptions
	REFERENCING NEW TABLE AS new_subs
	FOR EACH STATEMENT EXECUTE FUNCTION paas.subscriptions_new_instances();

-- A change of subscription status changes what its instance should be.
-- The row trigger notes only the rows whose status changed (C, a list in
-- the transaction's memory: a renewal run's batches, whose statuses stay,
-- cost one WHEN test a row); the statement trigger then applies them all
-- set-based.
CREATE FUNCTION paas.instance_note(subscription uuid) RETURNS void
	AS 'MODULE_PATHNAME', 'paas_instance_note'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.instance_note(uuid) IS
	'notes a subscription whose status changed in this statement (for paas.instance_noted)';

CREATE FUNCTION paas.instance_noted() RETURNS uuid[]
	AS 'MODULE_PATHNAME', 'paas_instance_noted'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.instance_noted() IS
	'the subscriptions noted so far (NULL: none), forgotten as they are returned';

CREATE FUNCTION paas.subscriptions_note_status() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.instance_note(NEW.id);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.subscriptions_note_status() IS
	'row trigger: notes a subscription whose status changed';
CREATE TRIGGER subscriptions_note_status
	AFTER UPDATE OF status ON paas.subscriptions
	FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
	EXECUTE FUNCTION paas.subscriptions_note_status();

CREATE FUNCTION paas.subscriptions_follow_status() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	subs uuid[] := paas.instance_noted();
	ids uuid[];
BEGIN
	IF subs IS NULL OR paas.restoring() THEN
		RETURN NULL;
	END IF;
	SELECT array_agg(i.id ORDER BY i.id) INTO ids
	  FROM paas.instances i JOIN paas.subscriptions s ON s.id = i.subscription_id
	 WHERE i.subscription_id = ANY (subs)
	   AND paas.instance_desired(s.status, i.admin_stopped) IS DISTINCT FROM i.desired_state;
	IF ids IS NOT NULL THEN
		PERFORM paas.instances_set_desired(ids, 'subscription status changed');
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.subscriptions_follow_status() IS
	'statement trigger: instances follow the status of the subscriptions the statement changed';
CREATE TRIGGER subscriptions_follow_status
	AFTER UPDATE ON paas.subscriptions
	FOR EACH STATEMENT EXECUTE FUNCTION paas.subscriptions_follow_status();

-- A catalog change (image, port, environment, resources, template) is a
-- new generation of every instance of the service that is not over: the
-- reconciler rolls it out.  Allocations follow the catalog.
CREATE FUNCTION paas.service_roll(service_id uuid, why text) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
	r record;
	users uuid[];
	n integer;
BEGIN
	SELECT * INTO v FROM paas.services x WHERE x.id = service_roll.service_id;
	r := paas.template_resources(v, paas.service_template(v.id));
	WITH u AS (
		UPDATE paas.instances i
		   SET generation = generation + 1, cpu_request_m = r.cpu_request_m, cpu_limit_m = r.cpu_limit_m,
			   mem_request_mib = r.mem_request_mib, mem_limit_mib = r.mem_limit_mib,
			   -- a volume is never shrunk
			   storage_gib = greatest(i.storage_gib, r.storage_gib),
			   polls = 0, due_at = now(), updated_at = now()
		 WHERE i.service_id = v.id AND i.desired_state <> 'deleted'
		RETURNING i.id, i.user_id, i.status, i.generation),
	l AS (
		INSERT INTO paas.instance_events (instance_id, event, from_status, to_status, generation, message)
		SELECT id, 'catalog', status, status, generation, why FROM u ORDER BY id
		RETURNING instance_id)
	SELECT array_agg(DISTINCT u.user_id), (SELECT count(*) FROM l) INTO users, n FROM u;
	IF users IS NOT NULL THEN
		PERFORM paas.namespace_touch(x) FROM unnest(users) x ORDER BY x;
		PERFORM paas.instance_wake();
	END IF;
	RETURN coalesce(n, 0);
END
$$;
COMMENT ON FUNCTION paas.service_roll(uuid, text) IS
	'a new generation (and the catalog''s allocation) for every live instance of a service';

CREATE FUNCTION paas.services_roll_instances() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF paas.restoring() THEN
		RETURN NULL;
	ELSIF TG_TABLE_NAME = 'service_templates' THEN
		IF TG_OP = 'INSERT' OR NEW.deployment IS DISTINCT FROM OLD.deployment THEN
			PERFORM paas.service_roll(NEW.service_id, 'the service''s deployment template changed: rolling out');
		END IF;
	ELSIF (NEW.docker_image, NEW.container_port, NEW.environment_vars, NEW.cpu_request_m,
		   NEW.cpu_limit_m, NEW.mem_request_mib, NEW.mem_limit_mib, NEW.storage_gib)
		  IS DISTINCT FROM
		  (OLD.docker_image, OLD.container_port, OLD.environment_vars, OLD.cpu_request_m,
		   OLD.cpu_limit_m, OLD.mem_request_mib, OLD.mem_limit_mib, OLD.storage_gib) THEN
		PERFORM paas.service_roll(NEW.id, 'the service''s catalog entry changed: rolling out');
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.services_roll_instances() IS
	'trigger: a catalog or template change is a new generation of the service''s instances';
CREATE TRIGGER services_roll_instances
	AFTER UPDATE ON paas.services
	FOR EACH ROW EXECUTE FUNCTION paas.services_roll_instances();
CREATE TRIGGER service_templates_roll_instances
	AFTER INSERT OR UPDATE ON paas.service_templates
	FOR EACH ROW EXECUTE FUNCTION paas.services_roll_instances();

------------------------------------------------------------------------------
-- Capacity
------------------------------------------------------------------------------

-- The partial index lets the sum of the live requests be an index-only scan.
CREATE INDEX instances_live_requests_idx ON paas.instances (desired_state)
	INCLUDE (cpu_request_m, mem_request_mib) WHERE desired_state = 'running';

-- Free cpu (millicores) and memory (bytes) of the schedulable nodes after
-- the requests of every instance that should run, and the largest node.
-- A node the Kubernetes API knows offers its allocatable less what the pods
-- bound to it that paas does not manage request (31_node_sync.sql).
CREATE FUNCTION paas.instance_capacity(OUT cpu_free_m bigint, OUT memory_free bigint,
									   OUT cpu_largest_m bigint, OUT memory_largest bigint,
									   OUT nodes integer)
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
	SELECT n.cpu - u.cpu, n.mem - u.mem, n.cpu_max, n.mem_max, n.nodes
	  FROM (SELECT coalesce(sum(greatest(x.cpu_allocatable_m - x.foreign_cpu_m, 0)), 0)::bigint AS cpu,
				   coalesce(sum(greatest(x.memory_allocatable - x.foreign_memory, 0)), 0)::bigint AS mem,
				   coalesce(max(greatest(x.cpu_allocatable_m - x.foreign_cpu_m, 0)), 0)::bigint AS cpu_max,
				   coalesce(max(greatest(x.memory_allocatable - x.foreign_memory, 0)), 0)::bigint AS mem_max,
				   count(*)::int AS nodes
			  FROM paas.nodes x WHERE x.status = 'ACTIVE' AND x.is_ready AND NOT x.cordoned) n,
		   (SELECT coalesce(sum(i.cpu_request_m), 0)::bigint AS cpu,
				   coalesce(sum(i.mem_request_mib), 0)::bigint * 1048576 AS mem
			  FROM paas.instances i WHERE i.desired_state = 'running') u
$$;
COMMENT ON FUNCTION paas.instance_capacity() IS
	'free cpu and memory of the ACTIVE, ready, schedulable nodes (less other pods'' requests) after the live instances'' requests';

-- PT409 unless one more instance of the service fits.  Holds an advisory
-- lock until commit so that concurrent sales cannot both take the last
-- room.
CREATE FUNCTION paas.instance_capacity_check(service_id uuid, subscription_id uuid DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
	r record;
	c record;
BEGIN
	SELECT * INTO v FROM paas.services WHERE id = instance_capacity_check.service_id;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	-- a subscription whose instance already counts needs no more room
	IF EXISTS (SELECT 1 FROM paas.instances i
				WHERE i.subscription_id = instance_capacity_check.subscription_id
				  AND i.desired_state = 'running') THEN
		RETURN;
	END IF;
	PERFORM pg_advisory_xact_lock(hashtextextended('paas.instance_capacity', 0));
	r := paas.template_resources(v, paas.service_template(v.id));
	c := paas.instance_capacity();
	IF c.cpu_free_m < r.cpu_request_m OR c.memory_free < r.mem_request_mib::bigint * 1048576
	   OR c.cpu_largest_m < r.cpu_request_m OR c.memory_largest < r.mem_request_mib::bigint * 1048576 THEN
		RAISE EXCEPTION 'Not enough capacity in the cluster to run this service now'
			USING ERRCODE = 'PT409',
				  DETAIL = format('needs %s millicores and %s MiB; free on %s schedulable node(s): %s millicores, %s MiB',
								  r.cpu_request_m, r.mem_request_mib, c.nodes, greatest(c.cpu_free_m, 0),
								  greatest(c.memory_free, 0) / 1048576),
				  HINT = 'Try again later; nothing was charged.';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.instance_capacity_check(uuid, uuid) IS
	'PT409 when the schedulable nodes lack the cpu or memory for one more instance of the service '
	'(none needed when the subscription''s instance already runs)';

------------------------------------------------------------------------------
-- The start deadline and its refund
------------------------------------------------------------------------------

-- Refunds, once, the charge of the subscription's current period: a ledger
-- entry revenue -> wallet and a credit note voiding the period's invoice.
-- Returns {amount, entryId, creditNote} ({amount: 0} for a free period).
CREATE FUNCTION paas.instance_refund(i paas.instances, reason text) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.subscriptions;
	c paas.subscription_charges;
	res jsonb;
	cn jsonb;
BEGIN
	SELECT * INTO s FROM paas.subscriptions WHERE id = i.subscription_id;
	SELECT * INTO c FROM paas.subscription_charges
	 WHERE subscription_id = s.id AND period_no = s.period_no;
	IF NOT FOUND OR c.amount = 0 THEN
		RETURN jsonb_build_object('amount', 0);
	END IF;
	res := paas.ledger_post(format('subscription:%s:period:%s:refund', s.id, c.period_no),
		jsonb_build_array(jsonb_build_object(
			'kind', 'subscription_refund',
			'memo', format('Refund: %s', reason),
			'ref', jsonb_build_object('subscriptionId', s.id, 'instanceId', i.id, 'period', c.period_no,
									  'refundOf', c.entry_id),
			'postings', jsonb_build_array(
				jsonb_build_object('account', paas.platform_account('revenue'), 'amount', -c.amount),
				jsonb_build_object('account', paas.wallet_account(s.user_id), 'amount', c.amount)))));
	IF (res ->> 'replayed')::boolean THEN
		RETURN jsonb_build_object('amount', c.amount, 'entryId', (res #>> '{entries,0,id}')::bigint,
								  'replayed', true);
	END IF;
	IF c.invoice_id IS NOT NULL AND EXISTS (SELECT 1 FROM paas.invoices x
											 WHERE x.id = c.invoice_id AND x.voided_by IS NULL) THEN
		cn := paas.void_invoice(c.invoice_id, reason);
	END IF;
	RETURN jsonb_build_object('amount', c.amount, 'entryId', (res #>> '{entries,0,id}')::bigint,
							  'creditNote', cn -> 'number', 'replayed', false);
END
$$;
COMMENT ON FUNCTION paas.instance_refund(paas.instances, text) IS
	'refunds the current period''s charge once (ledger key subscription:<id>:period:<n>:refund) with a credit note';

-- Job: instances that did not reach RUNNING within the start deadline fail;
-- their subscription expires and is refunded.  Rows being changed by
-- someone else are left to the next run (SKIP LOCKED).
CREATE FUNCTION paas.job_instance_deadlines() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	deadline interval := (paas.instance_config()).start_deadline;
	i paas.instances;
	s paas.subscriptions;
	refund jsonb;
	n integer := 0;
	total bigint := 0;
	msg text;
BEGIN
	FOR i IN SELECT * FROM paas.instances x
			  WHERE x.status IN ('PENDING', 'PROVISIONING') AND NOT x.ever_running
				AND x.desired_state = 'running' AND x.start_requested_at < now() - deadline
			  ORDER BY x.start_requested_at
			  LIMIT 500
			  FOR UPDATE SKIP LOCKED LOOP
		SELECT * INTO s FROM paas.subscriptions WHERE id = i.subscription_id FOR UPDATE SKIP LOCKED;
		CONTINUE WHEN NOT FOUND;
		msg := format('did not start within %s%s', deadline,
					  coalesce(': ' || coalesce(i.last_error, i.status_message), ''));
		PERFORM paas.instance_apply_event(i.id, 'fail', msg, 'system');
		UPDATE paas.instances SET last_error = msg, last_error_at = now() WHERE id = i.id;
		IF i.refunded_at IS NULL THEN
			refund := paas.instance_refund(i, 'the instance did not start');
			UPDATE paas.instances SET refunded_at = now() WHERE id = i.id;
			PERFORM paas.instance_log(i.id, 'refund', 'FAILED', 'FAILED', i.generation,
				format('refunded %s IDR', refund ->> 'amount'), refund, 'billing');
			total := total + (refund ->> 'amount')::bigint;
		END IF;
		IF s.status <> 'EXPIRED' THEN
			UPDATE paas.subscriptions
			   SET status = paas.subscription_transition(s.status, 'expire'), ended_at = now(),
				   grace_until = NULL, status_reason = 'the instance did not start; refunded', updated_at = now()
			 WHERE id = s.id;
			PERFORM paas.subscription_log(s.id, 'instance_failed', s.status, 'EXPIRED', NULL,
										  'the instance did not start; refunded');
		END IF;
		n := n + 1;
	END LOOP;
	RETURN jsonb_build_object('failed', n, 'refunded', total);
END
$$;
COMMENT ON FUNCTION paas.job_instance_deadlines() IS
	'fails instances past paas.instance_start_deadline, expires and refunds their subscriptions';

-- Job: instance events older than 90 days go.
CREATE FUNCTION paas.job_prune_instance_events() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM paas.instance_events WHERE created_at < now() - interval '90 days';
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n);
END
$$;
COMMENT ON FUNCTION paas.job_prune_instance_events() IS 'deletes instance events older than 90 days';

INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('instance_deadlines', 'paas.job_instance_deadlines', '15 seconds',
	 'fails instances that did not start in time and refunds their subscriptions'),
	('prune_instance_events', 'paas.job_prune_instance_events', '1 hour',
	 'deletes instance events older than 90 days');

-- ---- new: sql/parts/72_instance_reconcile.sql ----
-- paas -- the SQL side of the reconciler (bgworker/provisioner.c).  The C
-- worker knows HTTP and nothing of Kubernetes objects: it claims units of
-- work here, sends the calls they list with no transaction open, and
-- reports the answers back here, each unit in a short transaction of its
-- own.
--
-- Rules a reader must know.
--   * A unit is a customer's namespace or an instance, due when due_at <=
--     now() and not leased (claimed_until).  The claim (FOR UPDATE SKIP
--     LOCKED) leases it for two minutes: a worker killed mid-way loses
--     nothing, the unit is claimed again after the lease (or at once when
--     the worker restarts: paas.provisioner_start releases every lease).
--   * Namespaces go first: an instance that should run is claimed only
--     once its namespace has been applied at its current generation, so the
--     ResourceQuota always grows before the pods that need it.
--   * Every object is applied by server-side apply (the worker sends PATCH
--     application/apply-patch+yaml, fieldManager=paas, force=true): the
--     same call creates, updates and repairs, and a repeated call changes
--     nothing, so a crash between the call and its report only repeats a
--     harmless call.  DELETE answering 404 is success.
--   * Readiness is kubectl's rollout status rule (paas.deployment_rollout);
--     waiting reasons of the pods (ImagePullBackOff, CrashLoopBackOff,
--     Unschedulable ...) are shown to the owner (paas.pods_problem).  A
--     watch of the Deployments brings rollouts' progress as events
--     (paas.provisioner_watch_events); an instance whose rollout is under
--     way is also looked at after 5 s, doubling to 5 min; errors back off per
--     instance from 1 s to 5 min with jitter.
--   * The periodic resync (paas.instance_resync_interval) lists every kind
--     paas manages by label, a page of 500 at a time, and compares: an
--     object missing or of an older generation, an ingress that should not
--     be there, a rollout that disagrees with the status, all make their
--     instance or namespace due again (a Deployment deleted by hand is
--     recreated; a stand-in restarted empty is filled again).
--   * Kubernetes Nodes read from the API feed the node registry (the
--     capacity check's source) as registrations and heartbeats.

------------------------------------------------------------------------------
-- Paths and answers of the Kubernetes API
------------------------------------------------------------------------------

CREATE FUNCTION paas.k8s_resource(kind text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE kind WHEN 'Namespace' THEN 'namespaces' WHEN 'Secret' THEN 'secrets'
					 WHEN 'PersistentVolumeClaim' THEN 'persistentvolumeclaims'
					 WHEN 'Service' THEN 'services' WHEN 'ResourceQuota' THEN 'resourcequotas'
					 WHEN 'LimitRange' THEN 'limitranges' WHEN 'Deployment' THEN 'deployments'
					 WHEN 'Ingress' THEN 'ingresses' WHEN 'NetworkPolicy' THEN 'networkpolicies'
					 WHEN 'Pod' THEN 'pods' END;
COMMENT ON FUNCTION paas.k8s_resource(text) IS 'the REST resource (plural) of a kind paas manages';

-- The REST path of an object: /api/v1/... for the core group,
-- /apis/<group>/<version>/... otherwise; cluster-scoped when ns is NULL.
CREATE FUNCTION paas.k8s_path(api_version text, kind text, ns text, name text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN api_version = 'v1' THEN '/api/v1' ELSE '/apis/' || api_version END
		|| CASE WHEN ns IS NULL THEN '' ELSE '/namespaces/' || ns END
		|| '/' || paas.k8s_resource(kind) || CASE WHEN name IS NULL THEN '' ELSE '/' || name END;
COMMENT ON FUNCTION paas.k8s_path(text, text, text, text) IS 'REST path of a Kubernetes object';

CREATE FUNCTION paas.k8s_object_path(o jsonb) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN paas.k8s_path(o ->> 'apiVersion', o ->> 'kind',
						 CASE WHEN o ->> 'kind' = 'Namespace' THEN NULL
							  ELSE coalesce(o -> 'metadata' ->> 'namespace', o ->> 'namespace') END,
						 coalesce(o -> 'metadata' ->> 'name', o ->> 'name'));
COMMENT ON FUNCTION paas.k8s_object_path(jsonb) IS 'REST path of a manifest or of a {apiVersion, kind, namespace, name} reference';

-- The message of an error answer (a Status object, or the transport error).
CREATE FUNCTION paas.k8s_error_text(code integer, body text, err text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	j jsonb;
BEGIN
	IF err IS NOT NULL AND err <> '' THEN
		RETURN left('API unreachable: ' || err, 500);
	END IF;
	BEGIN
		j := body::jsonb;
	EXCEPTION WHEN OTHERS THEN
		j := NULL;
	END;
	RETURN left(format('HTTP %s%s', code, coalesce(' ' || (j ->> 'reason'), '')
						|| coalesce(': ' || (j ->> 'message'), coalesce(': ' || left(body, 200), ''))), 500);
END
$$;
COMMENT ON FUNCTION paas.k8s_error_text(integer, text, text) IS 'a readable message of a failed API call';

-- kubectl's rollout status rule for a Deployment object: "done" when the
-- controller observed the current generation and every replica is updated
-- and available, "failed" when progress stalled past its deadline
-- (ProgressDeadlineExceeded), else "progressing", with kubectl's message.
CREATE FUNCTION paas.deployment_rollout(d jsonb, OUT state text, OUT message text)
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	st jsonb := coalesce(d -> 'status', '{}');
	gen bigint := coalesce((d #>> '{metadata,generation}')::bigint, 0);
	og bigint := (st ->> 'observedGeneration')::bigint;
	want int := coalesce((d #>> '{spec,replicas}')::int, 1);
	updated int := coalesce((st ->> 'updatedReplicas')::int, 0);
	total int := coalesce((st ->> 'replicas')::int, 0);
	avail int := coalesce((st ->> 'availableReplicas')::int, 0);
	name text := coalesce(d #>> '{metadata,name}', '');
BEGIN
	IF og IS NULL OR gen > og THEN
		state := 'progressing';
		message := 'Waiting for deployment spec update to be observed...';
	ELSIF EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(st -> 'conditions', '[]')) c
				   WHERE c ->> 'type' = 'Progressing' AND c ->> 'reason' = 'ProgressDeadlineExceeded') THEN
		state := 'failed';
		message := format('deployment "%s" exceeded its progress deadline', name);
	ELSIF updated < want THEN
		state := 'progressing';
		message := format('Waiting for deployment "%s" rollout to finish: %s out of %s new replicas have been updated...',
						  name, updated, want);
	ELSIF total > updated THEN
		state := 'progressing';
		message := format('Waiting for deployment "%s" rollout to finish: %s old replicas are pending termination...',
						  name, total - updated);
	ELSIF avail < updated THEN
		state := 'progressing';
		message := format('Waiting for deployment "%s" rollout to finish: %s of %s updated replicas are available...',
						  name, avail, updated);
	ELSE
		state := 'done';
		message := format('deployment "%s" successfully rolled out', name);
	END IF;
END
$$;
COMMENT ON FUNCTION paas.deployment_rollout(jsonb) IS
	'kubectl rollout status rule of a Deployment: done | progressing | failed, with its message';

-- What the pods of an instance say (a PodList): the first problem an owner
-- should see (image pull, crash loop, configuration, scheduling), and the
-- name of the newest pod.
CREATE FUNCTION paas.pods_problem(pods jsonb, OUT problem text, OUT pod_name text, OUT restarts integer)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	WITH p AS (
		SELECT x AS pod, x #>> '{metadata,name}' AS name, x #>> '{metadata,creationTimestamp}' AS created
		  FROM jsonb_array_elements(coalesce(pods -> 'items', '[]')) x
		 WHERE x #>> '{metadata,deletionTimestamp}' IS NULL),
	c AS (
		SELECT p.name, p.created, cs ->> 'name' AS container, cs #>> '{state,waiting,reason}' AS reason,
			   cs #>> '{state,waiting,message}' AS msg, coalesce((cs ->> 'restartCount')::int, 0) AS restarts
		  FROM p, jsonb_array_elements(coalesce(p.pod #> '{status,initContainerStatuses}', '[]')
									   || coalesce(p.pod #> '{status,containerStatuses}', '[]')) cs),
	bad AS (
		SELECT format('container %s: %s%s', container, reason, coalesce(': ' || left(msg, 300), '')) AS t, created
		  FROM c
		 WHERE reason IN ('ImagePullBackOff', 'ErrImagePull', 'CrashLoopBackOff', 'CreateContainerConfigError',
						  'CreateContainerError', 'InvalidImageName', 'RunContainerError')
		UNION ALL
		SELECT format('%s: %s', cd ->> 'reason', left(cd ->> 'message', 300)), p.created
		  FROM p, jsonb_array_elements(coalesce(p.pod #> '{status,conditions}', '[]')) cd
		 WHERE cd ->> 'type' = 'PodScheduled' AND cd ->> 'status' = 'False')
	SELECT (SELECT t FROM bad ORDER BY created DESC NULLS LAST LIMIT 1),
		   (SELECT name FROM p ORDER BY created DESC NULLS LAST, name LIMIT 1),
		   (SELECT coalesce(max(restarts), 0)::int FROM c)
$$;
COMMENT ON FUNCTION paas.pods_problem(jsonb) IS
	'the waiting reason or scheduling problem an owner should see, and the newest pod''s name';

-- Delay before the next try after n consecutive errors: 1 s doubling to 5
-- min, +-25 % jitter so that failing instances spread out.
CREATE FUNCTION paas.retry_delay(n integer) RETURNS interval
	LANGUAGE sql VOLATILE PARALLEL SAFE
	RETURN make_interval(secs => least(300, power(2, greatest(n, 1) - 1)) * (0.75 + random() * 0.5));
COMMENT ON FUNCTION paas.retry_delay(integer) IS 'error backoff: 1 s doubling to 5 min, with jitter';

-- Delay before looking again at a rollout under way (n-th look): 5 s
-- doubling to 5 min, or from 30 s while the watches run.  The watches bring
-- the news as it happens; these looks are the net under them (and fetch
-- the pods of a slow rollout for its reason), sparse enough that thousands
-- of slow rollouts at once cost a few calls a second.
CREATE FUNCTION paas.poll_delay(n integer, watched boolean DEFAULT false) RETURNS interval
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN make_interval(secs => least(300, CASE WHEN watched THEN 30 ELSE 5 END
											* power(2, least(greatest(n, 1) - 1, 6))));
COMMENT ON FUNCTION paas.poll_delay(integer, boolean) IS
	'delay between looks at a rollout under way: 5 s doubling to 5 min (30 s doubling while the watches run)';

------------------------------------------------------------------------------
-- Claims
------------------------------------------------------------------------------

-- At start: releases every lease of a previous (crashed) worker.
CREATE FUNCTION paas.provisioner_start() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	a bigint;
	b bigint;
BEGIN
	UPDATE paas.instance_namespaces SET claimed_until = NULL, due_at = coalesce(due_at, now())
	 WHERE claimed_until IS NOT NULL;
	GET DIAGNOSTICS a = ROW_COUNT;
	UPDATE paas.instances SET claimed_until = NULL, due_at = coalesce(due_at, now())
	 WHERE claimed_until IS NOT NULL;
	GET DIAGNOSTICS b = ROW_COUNT;
	RETURN jsonb_build_object('namespaces', a, 'instances', b);
END
$$;
COMMENT ON FUNCTION paas.provisioner_start() IS 'releases the leases of a previous provisioner';

-- The calls of a namespace unit.
CREATE FUNCTION paas.namespace_ops(ns paas.instance_namespaces)
	RETURNS TABLE (seq integer, verb text, path text, body text, want boolean, tag text)
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	o jsonb;
	n integer := 0;
	full_apply boolean := ns.state <> 'READY' OR ns.force_apply;
BEGIN
	IF ns.desired_state = 'absent' THEN
		RETURN QUERY SELECT 1, 'DELETE'::text, paas.k8s_path('v1', 'Namespace', NULL, ns.name), NULL::text,
							false, 'namespace'::text;
		RETURN;
	END IF;
	FOR o IN SELECT x FROM jsonb_array_elements(paas.namespace_render(ns)) x LOOP
		-- a namespace already READY only needs its quota again
		CONTINUE WHEN NOT full_apply AND o ->> 'kind' <> 'ResourceQuota';
		n := n + 1;
		seq := n;
		verb := 'APPLY';
		path := paas.k8s_object_path(o);
		body := o::text;
		want := false;
		tag := lower(o ->> 'kind');
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION paas.namespace_ops(paas.instance_namespaces) IS 'the API calls that converge a customer namespace';

-- The calls of an instance unit: the full apply (or deletion) when the
-- generation is not applied yet or drift was found, else a look at the
-- rollout (and, from the third look, at the pods).
CREATE FUNCTION paas.instance_ops(i paas.instances)
	RETURNS TABLE (seq integer, verb text, path text, body text, want boolean, tag text)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
	r jsonb;
	o jsonb;
	n integer := 0;
	pods text := paas.k8s_path('v1', 'Pod', i.namespace, NULL)
				 || '?labelSelector=paas.dev%2Finstance-id%3D' || i.id::text;
BEGIN
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	IF i.generation <> i.observed_generation OR i.force_apply
	   OR (i.desired_state = 'deleted' AND i.storage_gib > 0 AND i.volume_deleted_at IS NULL
		   AND i.volume_purge_at <= now()) THEN
		IF i.desired_state <> 'deleted' THEN
			PERFORM paas.instance_ensure_secrets(i, v);
		END IF;
		r := paas.instance_render(i, v, true);
		FOR o IN SELECT x FROM jsonb_array_elements(r -> 'apply') x LOOP
			n := n + 1;
			RETURN QUERY SELECT n, 'APPLY'::text, paas.k8s_object_path(o), o::text,
								o ->> 'kind' = 'Deployment', lower(o ->> 'kind');
		END LOOP;
		FOR o IN SELECT x FROM jsonb_array_elements(r -> 'delete') x LOOP
			n := n + 1;
			RETURN QUERY SELECT n, 'DELETE'::text, paas.k8s_object_path(o), NULL::text, false, lower(o ->> 'kind');
		END LOOP;
		IF i.desired_state = 'running' AND i.polls >= 1 THEN
			RETURN QUERY SELECT n + 1, 'GET'::text, pods, NULL::text, true, 'pods'::text;
		END IF;
		RETURN;
	END IF;
	IF i.desired_state = 'deleted' THEN
		RETURN;
	END IF;
	RETURN QUERY SELECT 1, 'GET'::text, paas.k8s_path('apps/v1', 'Deployment', i.namespace, i.name),
						NULL::text, true, 'deployment'::text;
	-- the pods, for the reasons of a slow rollout (their names come with the
	-- resync's list of pods)
	IF i.desired_state = 'running' AND i.polls >= 1 THEN
		RETURN QUERY SELECT 2, 'GET'::text, pods, NULL::text, true, 'pods'::text;
	END IF;
END
$$;
COMMENT ON FUNCTION paas.instance_ops(paas.instances) IS 'the API calls that converge an instance, or look at it';

-- Claims up to n due units and returns their calls: namespaces while any
-- is due, else instances (those that should run only once their namespace
-- is applied).  unit is 'namespace' or 'instance'; id the user or
-- instance id; generation the one the calls apply.
CREATE FUNCTION paas.provisioner_claim(n integer)
	RETURNS TABLE (unit text, id uuid, generation bigint, seq integer, verb text, path text,
				   body text, want boolean, tag text)
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	lease interval := interval '2 minutes';
BEGIN
	RETURN QUERY
	WITH c AS (
		SELECT x.user_id FROM paas.instance_namespaces x
		 WHERE x.due_at <= now() AND (x.claimed_until IS NULL OR x.claimed_until < now())
		 ORDER BY x.due_at
		 LIMIT n
		   FOR UPDATE SKIP LOCKED),
	u AS (
		UPDATE paas.instance_namespaces x SET claimed_until = now() + lease
		  FROM c WHERE x.user_id = c.user_id
		RETURNING x.*)
	SELECT 'namespace'::text, u.user_id, u.generation, o.*
	  FROM u LEFT JOIN LATERAL paas.namespace_ops(u::paas.instance_namespaces) o ON true
	 ORDER BY u.user_id, o.seq;
	IF FOUND THEN
		RETURN;
	END IF;
	RETURN QUERY
	WITH c AS (
		SELECT x.id FROM paas.instances x
		 WHERE x.due_at <= now() AND (x.claimed_until IS NULL OR x.claimed_until < now())
		   AND (x.desired_state <> 'running'
				OR EXISTS (SELECT 1 FROM paas.instance_namespaces ns
							WHERE ns.user_id = x.user_id AND ns.state = 'READY'
							  AND ns.observed_generation = ns.generation))
		 ORDER BY x.due_at
		 LIMIT n
		   FOR UPDATE OF x SKIP LOCKED),
	u AS (
		UPDATE paas.instances x SET claimed_until = now() + lease
		  FROM c WHERE x.id = c.id
		RETURNING x.*)
	SELECT 'instance'::text, u.id, u.generation, o.*
	  FROM u LEFT JOIN LATERAL paas.instance_ops(u::paas.instances) o ON true
	 ORDER BY u.id, o.seq;
END
$$;
COMMENT ON FUNCTION paas.provisioner_claim(integer) IS
	'leases up to n due namespaces (first) or instances and returns the API calls of each';

-- When the provisioner should look again: the earliest due_at of a unit
-- it could claim (NULL: nothing is scheduled).
CREATE FUNCTION paas.provisioner_next_due() RETURNS timestamptz
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN least((SELECT min(greatest(due_at, claimed_until)) FROM paas.instance_namespaces
				   WHERE due_at IS NOT NULL),
				 (SELECT min(greatest(x.due_at, x.claimed_until)) FROM paas.instances x
				   WHERE x.due_at IS NOT NULL
					 AND (x.desired_state <> 'running'
						  OR EXISTS (SELECT 1 FROM paas.instance_namespaces ns
									  WHERE ns.user_id = x.user_id AND ns.state = 'READY'
										AND ns.observed_generation = ns.generation))));
COMMENT ON FUNCTION paas.provisioner_next_due() IS
	'the earliest time a unit can be claimed (instances waiting for their namespace do not count)';

------------------------------------------------------------------------------
-- Reports
------------------------------------------------------------------------------

-- Index of the first failed call of a report (NULL: all succeeded).  A
-- DELETE answering 404 succeeded; a GET of the Deployment answering 404 is
-- drift, not an error.
CREATE FUNCTION paas.report_failure(verbs text[], tags text[], codes integer[]) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN (SELECT min(k) FROM generate_subscripts(codes, 1) k
			 WHERE codes[k] IS NULL OR codes[k] = 0
				OR (codes[k] >= 300 AND NOT (codes[k] = 404 AND verbs[k] IN ('DELETE', 'GET'))));
COMMENT ON FUNCTION paas.report_failure(text[], text[], integer[]) IS 'first failed call of a report, or NULL';

CREATE FUNCTION paas.provisioner_report_namespace(uid uuid, gen bigint, verbs text[], tags text[],
												  codes integer[], bodies text[], errors text[])
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	ns paas.instance_namespaces;
	k integer := paas.report_failure(verbs, tags, codes);
	msg text;
BEGIN
	SELECT * INTO ns FROM paas.instance_namespaces WHERE user_id = uid FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 'gone';
	END IF;
	IF k IS NOT NULL OR cardinality(codes) = 0 THEN
		msg := CASE WHEN k IS NULL THEN 'no call was made'
					ELSE format('%s %s: %s', verbs[k], tags[k], paas.k8s_error_text(codes[k], bodies[k], errors[k])) END;
		-- 404 on an apply: the Namespace itself is gone (a cluster restarted
		-- empty, a namespace deleted by hand): apply everything again, now
		UPDATE paas.instance_namespaces
		   SET attempts = attempts + 1, last_error = msg, claimed_until = NULL,
			   force_apply = force_apply OR coalesce(codes[k] = 404, false),
			   due_at = CASE WHEN coalesce(codes[k] = 404, false) AND attempts = 0 THEN now()
							 ELSE now() + paas.retry_delay(attempts + 1) END,
			   updated_at = now()
		 WHERE user_id = uid;
		RETURN 'error';
	END IF;
	UPDATE paas.instance_namespaces
	   SET state = CASE WHEN desired_state = 'absent' THEN 'DELETED' ELSE 'READY' END,
		   observed_generation = greatest(observed_generation, gen),
		   force_apply = force_apply AND generation <> gen,
		   attempts = 0, last_error = NULL, claimed_until = NULL,
		   due_at = CASE WHEN generation <> gen THEN now() END, updated_at = now()
	 WHERE user_id = uid;
	IF ns.desired_state = 'present' THEN
		-- instances waiting for this namespace can go now.  Lock order is
		-- instance, then namespace everywhere else: rows someone holds are
		-- skipped (whoever holds them makes them due anyway).
		UPDATE paas.instances x SET due_at = now()
		 WHERE x.id IN (SELECT y.id FROM paas.instances y
						 WHERE y.user_id = uid AND y.due_at > now() AND y.generation <> y.observed_generation
						   AND y.claimed_until IS NULL AND y.attempts = 0
						   FOR UPDATE SKIP LOCKED);
	END IF;
	RETURN 'applied';
END
$$;
COMMENT ON FUNCTION paas.provisioner_report_namespace(uuid, bigint, text[], text[], integer[], text[], text[]) IS
	'records the outcome of a namespace unit';

-- Whether nothing of a customer remains on the cluster side but the
-- namespace: every instance ended and its volume deleted.
CREATE FUNCTION paas.namespace_empty(uid uuid) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN NOT EXISTS (SELECT 1 FROM paas.instances i
						WHERE i.user_id = uid
						  AND (i.desired_state <> 'deleted' OR i.status NOT IN ('DELETED', 'FAILED')
							   OR i.generation <> i.observed_generation
							   OR (i.storage_gib > 0 AND i.volume_deleted_at IS NULL)));
COMMENT ON FUNCTION paas.namespace_empty(uuid) IS 'whether a customer has nothing left in the namespace';

CREATE FUNCTION paas.provisioner_report_instance(inst uuid, gen bigint, verbs text[], tags text[],
												 codes integer[], bodies text[], errors text[],
												 watched boolean DEFAULT false)
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	k integer := paas.report_failure(verbs, tags, codes);
	full_apply boolean := 'APPLY' = ANY (verbs) OR 'DELETE' = ANY (verbs);
	purged boolean := EXISTS (SELECT 1 FROM generate_subscripts(tags, 1) x
							   WHERE tags[x] = 'persistentvolumeclaim' AND verbs[x] = 'DELETE');
	dep jsonb;
	pods jsonb;
	ro record;
	pp record;
	ev text;
	msg text;
	outcome text;
	calls jsonb;
BEGIN
	SELECT * INTO i FROM paas.instances WHERE id = inst FOR UPDATE;
	IF NOT FOUND THEN
		RETURN 'gone';
	END IF;
	SELECT coalesce(jsonb_agg(jsonb_build_object('verb', verbs[x], 'object', tags[x], 'code', codes[x])
							  ORDER BY x), '[]')
	  INTO calls FROM generate_subscripts(codes, 1) x;

	IF k IS NOT NULL THEN
		msg := format('%s %s: %s', verbs[k], tags[k], paas.k8s_error_text(codes[k], bodies[k], errors[k]));
		UPDATE paas.instances
		   SET attempts = attempts + 1, last_error = msg, last_error_at = now(), claimed_until = NULL,
			   due_at = now() + paas.retry_delay(attempts + 1), updated_at = now()
		 WHERE id = inst;
		PERFORM paas.instance_log(inst, 'error', i.status, i.status, gen, msg,
								  jsonb_build_object('calls', calls, 'attempt', i.attempts + 1), 'provisioner');
		IF codes[k] = 404 AND verbs[k] = 'APPLY' THEN
			-- the namespace is gone: it is applied again first
			UPDATE paas.instance_namespaces
			   SET force_apply = desired_state = 'present', state = 'PENDING', due_at = now()
			 WHERE user_id = i.user_id AND desired_state = 'present';
		END IF;
		RETURN 'error';
	END IF;

	FOR x IN 1 .. coalesce(cardinality(codes), 0) LOOP
		IF tags[x] = 'deployment' AND bodies[x] IS NOT NULL AND codes[x] < 300 THEN
			dep := bodies[x]::jsonb;
		ELSIF tags[x] = 'pods' AND bodies[x] IS NOT NULL AND codes[x] < 300 THEN
			pods := bodies[x]::jsonb;
		END IF;
	END LOOP;

	-- the Deployment is gone (deleted by hand, a cluster restarted empty)
	IF NOT full_apply AND i.desired_state <> 'deleted' AND dep IS NULL THEN
		UPDATE paas.instances SET force_apply = true, due_at = now(), claimed_until = NULL, updated_at = now()
		 WHERE id = inst;
		PERFORM paas.instance_log(inst, 'drift', i.status, i.status, gen,
								  'the Deployment is missing: applying again', NULL, 'provisioner');
		RETURN 'drift';
	END IF;

	IF full_apply THEN
		PERFORM paas.instance_log(inst, 'apply', i.status, i.status, gen,
			format('generation %s applied (%s)', gen, i.desired_state), jsonb_build_object('calls', calls),
			'provisioner');
	END IF;
	UPDATE paas.instances
	   SET observed_generation = CASE WHEN full_apply THEN greatest(observed_generation, gen) ELSE observed_generation END,
		   -- a new generation may mean a new pod: its name is looked up again
		   pod_name = CASE WHEN full_apply AND pods IS NULL THEN NULL ELSE pod_name END,
		   force_apply = force_apply AND NOT (full_apply AND generation = gen),
		   attempts = 0, synced_at = now(), claimed_until = NULL, updated_at = now(),
		   -- why an instance FAILED stays what its owner reads
		   last_error = CASE WHEN status = 'FAILED' THEN last_error END,
		   volume_deleted_at = CASE WHEN purged AND volume_deleted_at IS NULL THEN now()
									ELSE volume_deleted_at END
	 WHERE id = inst
	RETURNING * INTO i;

	IF i.desired_state = 'deleted' THEN
		IF paas.instance_transition_allowed(i.status, 'deleted') THEN
			PERFORM paas.instance_apply_event(inst, 'deleted',
				CASE WHEN i.volume_deleted_at IS NOT NULL OR i.storage_gib = 0 THEN 'objects deleted'
					 ELSE format('objects deleted; the volume is kept until %s', paas.iso(i.volume_purge_at)) END,
				'provisioner');
		END IF;
		IF purged THEN
			PERFORM paas.instance_log(inst, 'volume_deleted', i.status, i.status, gen,
									  'the retention period ended: volume deleted', NULL, 'provisioner');
		END IF;
		UPDATE paas.instances
		   SET due_at = CASE WHEN generation <> observed_generation THEN now()
							 WHEN storage_gib > 0 AND volume_deleted_at IS NULL THEN volume_purge_at END,
			   status_message = NULL, polls = 0
		 WHERE id = inst
		RETURNING * INTO i;
		IF i.due_at IS NULL AND paas.namespace_empty(i.user_id) THEN
			UPDATE paas.instance_namespaces
			   SET desired_state = 'absent', state = 'DELETING', generation = generation + 1,
				   due_at = now(), attempts = 0, updated_at = now()
			 WHERE user_id = i.user_id AND desired_state = 'present';
		END IF;
		RETURN 'deleted';
	END IF;

	ro := paas.deployment_rollout(dep);
	IF pods IS NULL THEN
		-- what pods_problem says of no pods, without running it
		SELECT NULL::text AS problem, NULL::text AS pod_name, 0 AS restarts INTO pp;
	ELSE
		pp := paas.pods_problem(pods);
	END IF;
	IF i.desired_state = 'stopped' THEN
		IF coalesce((dep #>> '{status,replicas}')::int, 0) = 0 THEN
			ev := 'stopped';
			msg := 'scaled to zero; the ingress is removed and the data kept';
		ELSE
			ev := NULL;
			msg := format('stopping: %s pod(s) still running', dep #>> '{status,replicas}');
		END IF;
	ELSIF ro.state = 'done' THEN
		ev := 'ready';
		msg := ro.message;
	ELSIF ro.state = 'failed' OR pp.problem IS NOT NULL
		  OR (NOT full_apply AND i.status = 'RUNNING') THEN
		-- a running instance that is no longer available without a new
		-- rollout of ours is unhealthy (crash, lost pod), not progressing
		ev := 'unhealthy';
		msg := coalesce(pp.problem, ro.message);
	ELSE
		ev := 'progressing';
		msg := ro.message;
	END IF;

	outcome := coalesce(ev, 'waiting');
	IF ev IS NOT NULL AND paas.instance_transition_allowed(i.status, ev) THEN
		IF paas.instance_transition(i.status, ev) <> i.status THEN
			PERFORM paas.instance_apply_event(inst, ev, msg, 'provisioner');
		ELSIF msg IS DISTINCT FROM i.status_message AND ev <> 'progressing' THEN
			PERFORM paas.instance_log(inst, ev, i.status, i.status, gen, msg, NULL, 'provisioner');
		END IF;
	END IF;
	UPDATE paas.instances
	   SET status_message = msg,
		   pod_name = coalesce(pp.pod_name, pod_name),
		   last_error = CASE WHEN ev = 'unhealthy' THEN msg END,
		   last_error_at = CASE WHEN ev = 'unhealthy' THEN now() ELSE last_error_at END,
		   polls = CASE WHEN ev IN ('ready', 'stopped') THEN 0 ELSE polls + 1 END,
		   due_at = CASE WHEN generation <> observed_generation OR force_apply THEN now()
						 WHEN ev IN ('ready', 'stopped') THEN NULL
						 ELSE now() + paas.poll_delay(polls + 1, watched) END
	 WHERE id = inst;
	RETURN outcome;
END
$$;
COMMENT ON FUNCTION paas.provisioner_report_instance(uuid, bigint, text[], text[], integer[], text[], text[], boolean) IS
	'records the outcome of an instance unit: errors and backoff, applied generation, observed status';

-- The report of one unit, in its own transaction: verbs, tags, codes (0:
-- no answer), bodies (when asked for, or of an error) and transport errors
-- of the calls made, in order.
CREATE FUNCTION paas.provisioner_report(unit text, id uuid, generation bigint, verbs text[], tags text[],
										codes integer[], bodies text[], errors text[],
										watched boolean DEFAULT false)
	RETURNS text
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN CASE unit WHEN 'namespace'
				THEN paas.provisioner_report_namespace(id, generation, verbs, tags, codes, bodies, errors)
				ELSE paas.provisioner_report_instance(id, generation, verbs, tags, codes, bodies, errors,
													  watched) END;
COMMENT ON FUNCTION paas.provisioner_report(text, uuid, bigint, text[], text[], integer[], text[], text[], boolean) IS
	'records the answers of one claimed unit (namespace or instance); watched: the watches run';

------------------------------------------------------------------------------
-- Resync: what the cluster holds, compared with what should be
------------------------------------------------------------------------------

-- The lists a resync reads (label selector: managed by paas), in order.
-- meta: only object metadata is needed (the worker asks for
-- PartialObjectMetadataList, so Secret data never travels).
CREATE FUNCTION paas.provisioner_audit_paths() RETURNS TABLE (tag text, path text, meta boolean)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT t.tag, t.base || '?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpaas', t.meta
	  FROM (VALUES
		('namespace', '/api/v1/namespaces', true, 1),
		('resourcequota', '/api/v1/resourcequotas', true, 2),
		('limitrange', '/api/v1/limitranges', true, 3),
		('networkpolicy', '/apis/networking.k8s.io/v1/networkpolicies', true, 4),
		('secret', '/api/v1/secrets', true, 5),
		('persistentvolumeclaim', '/api/v1/persistentvolumeclaims', true, 6),
		('deployment', '/apis/apps/v1/deployments', false, 7),
		('service', '/api/v1/services', true, 8),
		('ingress', '/apis/networking.k8s.io/v1/ingresses', true, 9),
		('pod', '/api/v1/pods', true, 10)) t (tag, base, meta, ord)
	 ORDER BY t.ord
$$;
COMMENT ON FUNCTION paas.provisioner_audit_paths() IS 'the labelled lists a resync reads';

-- The scratch of a resync is the provisioner's own: temporary tables of
-- its session, pg_temp.paas_audit (when it began) and pg_temp.paas_seen
-- (the objects the lists returned), kept across its transactions.
CREATE FUNCTION paas.provisioner_audit_begin() RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	CREATE TEMP TABLE IF NOT EXISTS paas_audit (started_at timestamptz NOT NULL);
	CREATE TEMP TABLE IF NOT EXISTS paas_seen (
		kind		text NOT NULL,
		namespace	text,
		name		text NOT NULL,
		instance_id uuid,
		user_id		uuid,
		generation	bigint,
		rollout		text,
		replicas	integer);
	CREATE INDEX IF NOT EXISTS paas_seen_instance_idx ON pg_temp.paas_seen (instance_id, kind);
	TRUNCATE pg_temp.paas_audit, pg_temp.paas_seen;
	INSERT INTO pg_temp.paas_audit VALUES (now());
END
$$;
COMMENT ON FUNCTION paas.provisioner_audit_begin() IS 'starts a resync (its scratch: temporary tables of the session)';

-- One page of a list: records its objects, returns the continue token
-- (NULL on the last page).
CREATE FUNCTION paas.provisioner_audit_page(tag text, page jsonb) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	INSERT INTO pg_temp.paas_seen (kind, namespace, name, instance_id, user_id, generation, rollout, replicas)
	SELECT tag, x #>> '{metadata,namespace}', x #>> '{metadata,name}',
		   paas.to_uuid(x #>> '{metadata,labels,paas.dev/instance-id}'),
		   paas.to_uuid(x #>> '{metadata,labels,paas.dev/user-id}'),
		   CASE WHEN tag = 'pod' THEN CASE WHEN x #>> '{metadata,deletionTimestamp}' IS NULL
											THEN extract(epoch FROM (x #>> '{metadata,creationTimestamp}')::timestamptz)::bigint END
				WHEN x #>> '{metadata,annotations,paas.dev/generation}' ~ '^[0-9]{1,18}$'
				THEN (x #>> '{metadata,annotations,paas.dev/generation}')::bigint END,
		   CASE WHEN tag = 'deployment' THEN (paas.deployment_rollout(x)).state END,
		   CASE WHEN tag = 'deployment' THEN coalesce((x #>> '{status,replicas}')::int, 0) END
	  FROM jsonb_array_elements(coalesce(page -> 'items', '[]')) x
	 WHERE x #>> '{metadata,name}' IS NOT NULL;
	RETURN nullif(page #>> '{metadata,continue}', '');
END
$$;
COMMENT ON FUNCTION paas.provisioner_audit_page(text, jsonb) IS
	'records the objects of one page of a resync list; returns the continue token';

-- Ends a resync.  When every list was read in full (complete), units whose
-- objects drifted become due: missing or older objects (force_apply), an
-- ingress or leftovers that should be gone, a rollout that disagrees with
-- the status.  Units changed since the resync began are left alone.
CREATE FUNCTION paas.provisioner_audit_end(complete boolean) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	t0 timestamptz := (SELECT started_at FROM pg_temp.paas_audit);
	drift_ns bigint := 0;
	drift_inst bigint := 0;
	look bigint := 0;
	orphans bigint := 0;
	res jsonb;
BEGIN
	IF NOT complete THEN
		RETURN jsonb_build_object('complete', false);
	END IF;

	WITH want AS (
		SELECT ns.user_id, ns.name, k.kind
		  FROM paas.instance_namespaces ns,
			   unnest(ARRAY['namespace', 'resourcequota', 'limitrange', 'networkpolicy']) k (kind)
		 WHERE ns.desired_state = 'present' AND ns.state = 'READY' AND ns.due_at IS NULL
		   AND ns.updated_at < t0),
	missing AS (
		SELECT DISTINCT w.user_id, w.name FROM want w
		 WHERE NOT EXISTS (SELECT 1 FROM pg_temp.paas_seen s
							WHERE s.kind = w.kind
							  AND (CASE WHEN w.kind = 'namespace' THEN s.name ELSE s.namespace END) = w.name)),
	gone AS (
		SELECT ns.user_id, ns.name FROM paas.instance_namespaces ns
		 WHERE ns.desired_state = 'absent' AND ns.due_at IS NULL AND ns.updated_at < t0
		   AND EXISTS (SELECT 1 FROM pg_temp.paas_seen s WHERE s.kind = 'namespace' AND s.name = ns.name)),
	lk AS (
		SELECT ns.user_id FROM paas.instance_namespaces ns
		 WHERE ns.user_id IN (SELECT user_id FROM missing UNION SELECT user_id FROM gone)
		   FOR UPDATE SKIP LOCKED),
	u AS (
		UPDATE paas.instance_namespaces ns
		   SET force_apply = ns.desired_state = 'present', due_at = now()
		  FROM lk WHERE ns.user_id = lk.user_id
		RETURNING 1)
	SELECT count(*) INTO drift_ns FROM u;
	-- the lock order elsewhere is instance, then namespace: holding
	-- namespaces, this never waits for an instance (SKIP LOCKED below)

	WITH cand AS (
		SELECT i.*, paas.service_template(i.service_id) AS tpl
		  FROM paas.instances i
		 WHERE i.due_at IS NULL AND i.claimed_until IS NULL AND coalesce(i.synced_at, i.updated_at) < t0
		   AND i.generation = i.observed_generation),
	expect AS (
		SELECT c.id, k.kind, k.present
		  FROM cand c
		  CROSS JOIN LATERAL (VALUES
			('deployment', c.desired_state <> 'deleted'),
			('service', c.desired_state <> 'deleted'),
			('ingress', c.desired_state = 'running' AND coalesce(c.tpl ->> 'expose', 'http') = 'http'),
			('secret', c.desired_state <> 'deleted' AND coalesce(c.tpl -> 'secrets', '{}') <> '{}'),
			('persistentvolumeclaim', c.storage_gib > 0 AND c.volume_deleted_at IS NULL)) k (kind, present)),
	bad AS (
		SELECT DISTINCT e.id FROM expect e
		  JOIN cand c ON c.id = e.id
		  LEFT JOIN pg_temp.paas_seen s ON s.instance_id = e.id AND s.kind = e.kind
		 WHERE (e.present AND (s.name IS NULL OR s.generation < c.observed_generation))
			OR (NOT e.present AND s.name IS NOT NULL
				AND NOT (e.kind = 'persistentvolumeclaim' AND c.volume_deleted_at IS NULL))),
	lk AS (
		SELECT i.id FROM paas.instances i WHERE i.id IN (SELECT id FROM bad) FOR UPDATE SKIP LOCKED),
	u AS (
		UPDATE paas.instances i SET force_apply = true, due_at = now()
		  FROM lk WHERE i.id = lk.id
		RETURNING i.id, i.status, i.generation),
	l AS (
		INSERT INTO paas.instance_events (instance_id, event, from_status, to_status, generation, message, actor)
		SELECT id, 'drift', status, status, generation, 'the resync found objects missing or out of date: applying again',
			   'provisioner'
		  FROM u ORDER BY id
		RETURNING 1)
	SELECT count(*) INTO drift_inst FROM l;

	-- a rollout that disagrees with the observed status: look again
	WITH lk AS (
		SELECT i.id FROM paas.instances i JOIN pg_temp.paas_seen s ON s.instance_id = i.id
		 WHERE s.kind = 'deployment' AND i.due_at IS NULL
		   AND i.claimed_until IS NULL AND coalesce(i.synced_at, i.updated_at) < t0
		   AND ((i.status = 'RUNNING' AND s.rollout <> 'done')
				OR (i.status IN ('DEGRADED', 'PROVISIONING') AND s.rollout = 'done')
				OR (i.status = 'STOPPED' AND s.replicas > 0))
		   FOR UPDATE OF i SKIP LOCKED),
	u AS (
		UPDATE paas.instances i SET due_at = now() FROM lk WHERE i.id = lk.id
		RETURNING 1)
	SELECT count(*) INTO look FROM u;

	-- the pod that runs each instance (the newest one listed)
	WITH p AS (
		SELECT DISTINCT ON (instance_id) instance_id, name FROM pg_temp.paas_seen
		 WHERE kind = 'pod' AND instance_id IS NOT NULL
		 ORDER BY instance_id, generation DESC NULLS LAST, name DESC),
	lk AS (
		SELECT i.id, p.name FROM paas.instances i JOIN p ON p.instance_id = i.id
		 WHERE i.pod_name IS DISTINCT FROM p.name AND i.desired_state = 'running'
		   FOR UPDATE OF i SKIP LOCKED)
	UPDATE paas.instances i SET pod_name = lk.name FROM lk WHERE i.id = lk.id;

	SELECT count(*) INTO orphans FROM pg_temp.paas_seen s
	 WHERE s.instance_id IS NOT NULL
	   AND NOT EXISTS (SELECT 1 FROM paas.instances i WHERE i.id = s.instance_id);

	res := jsonb_build_object('complete', true,
		'objects', (SELECT count(*) FROM pg_temp.paas_seen),
		'driftNamespaces', drift_ns, 'driftInstances', drift_inst, 'rolloutLooks', look,
		'orphans', orphans);
	IF drift_ns + drift_inst + look > 0 THEN
		PERFORM paas.instance_wake();
	END IF;
	RETURN res;
END
$$;
COMMENT ON FUNCTION paas.provisioner_audit_end(boolean) IS
	'ends a resync: units whose objects drifted become due; returns counts';

------------------------------------------------------------------------------
-- The Deployment watch
------------------------------------------------------------------------------

-- Lines of the watch stream (WatchEvent JSON, one per line) received by
-- the provisioner.  A Deployment of an applied generation (its
-- paas.dev/generation annotation is the instance's observed generation,
-- nothing newer is pending, no reconcile holds the instance) tells the
-- rollout as kubectl's rule reads it: done -> ready (or stopped at zero
-- replicas), failed or a running instance no longer available ->
-- unhealthy, and a look with the pods is due at once for the reason; a
-- deleted Deployment of an instance that should exist is drift, applied
-- again at once.  Returns the last resourceVersion seen, or GONE when the
-- server said the version is too old (410: list again).
CREATE FUNCTION paas.provisioner_watch_events(lines text[]) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	line text;
	ev jsonb;
	d jsonb;
	rv text;
	i paas.instances;
	ro record;
	kind text;
	msg text;
BEGIN
	FOREACH line IN ARRAY lines LOOP
		BEGIN
			ev := line::jsonb;
		EXCEPTION WHEN OTHERS THEN
			CONTINUE;
		END;
		d := ev -> 'object';
		IF ev ->> 'type' = 'ERROR' THEN
			IF (d ->> 'code') = '410' THEN
				RETURN 'GONE';
			END IF;
			CONTINUE;
		END IF;
		rv := coalesce(d #>> '{metadata,resourceVersion}', rv);
		CONTINUE WHEN ev ->> 'type' NOT IN ('ADDED', 'MODIFIED', 'DELETED');
		-- one event's failure (a row deleted meanwhile ...) never stops the stream
		BEGIN
			SELECT * INTO i FROM paas.instances
			 WHERE id = paas.to_uuid(d #>> '{metadata,labels,paas.dev/instance-id}')
			   FOR UPDATE SKIP LOCKED;
			CONTINUE WHEN NOT FOUND OR i.claimed_until > now() OR i.generation <> i.observed_generation
				OR i.force_apply OR i.desired_state = 'deleted';
			IF ev ->> 'type' = 'DELETED' THEN
				UPDATE paas.instances SET force_apply = true, due_at = now(), updated_at = now() WHERE id = i.id;
				PERFORM paas.instance_log(i.id, 'drift', i.status, i.status, i.generation,
										  'the Deployment was deleted: applying again', NULL, 'provisioner');
				CONTINUE;
			END IF;
			CONTINUE WHEN d #>> '{metadata,annotations,paas.dev/generation}' IS DISTINCT FROM i.observed_generation::text;
			ro := paas.deployment_rollout(d);
			kind := NULL;
			IF i.desired_state = 'stopped' THEN
				IF coalesce((d #>> '{status,replicas}')::int, 0) = 0 THEN
					kind := 'stopped';
					msg := 'scaled to zero; the ingress is removed and the data kept';
				END IF;
			ELSIF ro.state = 'done' THEN
				kind := 'ready';
				msg := ro.message;
			ELSIF ro.state = 'failed' OR (i.status = 'RUNNING' AND ro.state = 'progressing') THEN
				kind := 'unhealthy';
				msg := ro.message;
			END IF;
			CONTINUE WHEN kind IS NULL OR NOT paas.instance_transition_allowed(i.status, kind)
				OR paas.instance_transition(i.status, kind) = i.status AND kind <> 'unhealthy';
			PERFORM paas.instance_apply_event(i.id, kind, msg, 'provisioner');
			UPDATE paas.instances
			   SET status_message = msg, synced_at = now(), updated_at = now(),
				   polls = CASE WHEN kind IN ('ready', 'stopped') THEN 0 ELSE greatest(polls, 2) END,
				   due_at = CASE WHEN kind IN ('ready', 'stopped') THEN NULL ELSE now() END
			 WHERE id = i.id;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'paas provisioner: a watch event was not applied: %', SQLERRM;
		END;
	END LOOP;
	RETURN rv;
END
$$;
COMMENT ON FUNCTION paas.provisioner_watch_events(text[]) IS
	'applies the rollout news of a Deployment watch to the instances; the last resourceVersion, or GONE';

-- Lines of the pod watch: the pod that runs each instance (its name for
-- GET /pods, the logs), and the reason a rollout does not complete
-- (ImagePullBackOff, CrashLoopBackOff, Unschedulable ...) as it appears:
-- shown to the owner, and a RUNNING instance whose pod fails is DEGRADED.
-- Only changes are written.  Returns the last resourceVersion seen, or GONE.
CREATE FUNCTION paas.provisioner_watch_pods(lines text[]) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	line text;
	ev jsonb;
	p jsonb;
	rv text;
	i paas.instances;
	problem text;
	pod text;
BEGIN
	FOREACH line IN ARRAY lines LOOP
		BEGIN
			ev := line::jsonb;
		EXCEPTION WHEN OTHERS THEN
			CONTINUE;
		END;
		p := ev -> 'object';
		IF ev ->> 'type' = 'ERROR' THEN
			IF (p ->> 'code') = '410' THEN
				RETURN 'GONE';
			END IF;
			CONTINUE;
		END IF;
		rv := coalesce(p #>> '{metadata,resourceVersion}', rv);
		CONTINUE WHEN ev ->> 'type' NOT IN ('ADDED', 'MODIFIED') OR p #>> '{metadata,deletionTimestamp}' IS NOT NULL;
		-- one event's failure (a row deleted meanwhile ...) never stops the stream
		BEGIN
			SELECT * INTO i FROM paas.instances
			 WHERE id = paas.to_uuid(p #>> '{metadata,labels,paas.dev/instance-id}')
			   FOR UPDATE SKIP LOCKED;
			CONTINUE WHEN NOT FOUND OR i.desired_state <> 'running' OR i.claimed_until > now();
			pod := p #>> '{metadata,name}';
			-- most events are of a pod that is fine: what pods_problem reports
			-- needs a waiting container (other than one being created) or a pod
			-- that could not be scheduled
			IF p @? '$.status.*[*].state.waiting.reason ? (@ != "ContainerCreating" && @ != "PodInitializing")'
			   OR p @> '{"status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}' THEN
				problem := (paas.pods_problem(jsonb_build_object('items', jsonb_build_array(p)))).problem;
			ELSE
				problem := NULL;
			END IF;
			IF i.pod_name IS DISTINCT FROM pod THEN
				UPDATE paas.instances SET pod_name = pod WHERE id = i.id;
			END IF;
			CONTINUE WHEN problem IS NULL OR problem IS NOT DISTINCT FROM i.status_message
				OR i.status NOT IN ('PENDING', 'PROVISIONING', 'RUNNING', 'DEGRADED');
			IF paas.instance_transition(i.status, 'unhealthy') <> i.status THEN
				PERFORM paas.instance_apply_event(i.id, 'unhealthy', problem, 'provisioner');
			ELSE
				PERFORM paas.instance_log(i.id, 'unhealthy', i.status, i.status, i.generation, problem, NULL,
										  'provisioner');
			END IF;
			UPDATE paas.instances
			   SET status_message = problem, last_error = problem, last_error_at = now(), updated_at = now()
			 WHERE id = i.id;
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'paas provisioner: a watch event was not applied: %', SQLERRM;
		END;
	END LOOP;
	RETURN rv;
END
$$;
COMMENT ON FUNCTION paas.provisioner_watch_pods(text[]) IS
	'applies the news of the pod watch (the pod that runs, why a rollout is stuck); the last resourceVersion, or GONE';

-- ---- new: sql/parts/73_instance_routes.sql ----
-- paas -- the api of instances: the original's /pods routes (the caller's
-- instances only; another user's answers 404), logs and credentials for
-- the owner, and what administrators need (every instance, events,
-- manifests, forced reconcile, stop / start, the provisioner's state, the
-- deployment templates of the catalog).
--
-- Logs come from the Kubernetes API through httpd: api.pods_logs checks
-- the caller and answers {"$k8s": {...}} naming the namespace, the pod
-- selector and the container; httpd (ROUTE_K8S, httpd/k8s.c) then reads
-- the log with libcurl, with no transaction open.

------------------------------------------------------------------------------
-- helpers
------------------------------------------------------------------------------

CREATE FUNCTION paas.instance_exposed(v paas.services) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN coalesce(paas.service_template(v.id) ->> 'expose', 'http') = 'http';
COMMENT ON FUNCTION paas.instance_exposed(paas.services) IS 'whether instances of the service get an Ingress';

-- An instance as the API prints it: the original's ServiceInstance fields
-- (podName, namespace, status, internalUrl, externalUrl, cpuAllocated,
-- memAllocated ...) and the desired / observed state.
CREATE FUNCTION paas.instance_json(i paas.instances, v paas.services) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'id', i.id, 'subscriptionId', i.subscription_id, 'userId', i.user_id, 'serviceId', i.service_id,
		'service', jsonb_build_object('id', v.id, 'name', v.name, 'displayName', v.display_name),
		'name', i.name, 'podName', coalesce(i.pod_name, i.name), 'namespace', i.namespace,
		'status', i.status, 'desiredState', i.desired_state,
		'generation', i.generation, 'observedGeneration', i.observed_generation,
		'host', i.host,
		'internalUrl', format('http://%s.%s.svc.cluster.local:%s', i.name, i.namespace, v.container_port),
		'externalUrl', CASE WHEN paas.instance_exposed(v) THEN 'https://' || i.host END,
		'url', CASE WHEN paas.instance_exposed(v) THEN 'https://' || i.host END,
		'cpuAllocated', paas.cpu_text(i.cpu_limit_m), 'memAllocated', paas.mem_text(i.mem_limit_mib),
		'resources', jsonb_build_object('cpuRequestMillicores', i.cpu_request_m,
										'cpuLimitMillicores', i.cpu_limit_m,
										'memoryRequestMiB', i.mem_request_mib,
										'memoryLimitMiB', i.mem_limit_mib, 'storageGiB', i.storage_gib),
		'statusMessage', i.status_message,
		'lastError', i.last_error, 'lastErrorAt', paas.iso(i.last_error_at),
		'stoppedByAdmin', i.admin_stopped,
		'restartCount', i.restart_count, 'restartedAt', paas.iso(i.restarted_at))
	|| jsonb_build_object(
		'startDeadline', CASE WHEN NOT i.ever_running AND i.desired_state = 'running'
							  THEN paas.iso(i.start_requested_at + (paas.instance_config()).start_deadline) END,
		'readyAt', paas.iso(i.ready_at), 'stoppedAt', paas.iso(i.stopped_at), 'endedAt', paas.iso(i.ended_at),
		'volume', CASE WHEN i.storage_gib > 0 THEN jsonb_build_object(
					'sizeGiB', i.storage_gib,
					'retainedUntil', CASE WHEN i.volume_deleted_at IS NULL THEN paas.iso(i.volume_purge_at) END,
					'deletedAt', paas.iso(i.volume_deleted_at)) END,
		'refundedAt', paas.iso(i.refunded_at),
		'statusChangedAt', paas.iso(i.status_changed_at),
		'createdAt', paas.iso(i.created_at), 'updatedAt', paas.iso(i.updated_at));
COMMENT ON FUNCTION paas.instance_json(paas.instances, paas.services) IS 'an instance as the API prints it';

-- The short form shown with a subscription (GET /subscriptions/:id).
CREATE FUNCTION paas.subscription_instance_json(sub uuid) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT jsonb_build_object(
				'id', i.id, 'name', i.name, 'status', i.status, 'desiredState', i.desired_state,
				'url', CASE WHEN paas.instance_exposed(v) THEN 'https://' || i.host END,
				'podName', coalesce(i.pod_name, i.name), 'namespace', i.namespace,
				'statusMessage', i.status_message, 'lastError', i.last_error,
				'lastErrorAt', paas.iso(i.last_error_at), 'readyAt', paas.iso(i.ready_at))
			  FROM paas.instances i JOIN paas.services v ON v.id = i.service_id
			 WHERE i.subscription_id = sub);
COMMENT ON FUNCTION paas.subscription_instance_json(uuid) IS
	'the instance of a subscription in short: status, URL, last error (NULL when none)';

CREATE FUNCTION paas.instance_event_json(e paas.instance_events, admin boolean) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN jsonb_strip_nulls(jsonb_build_object(
		'id', e.id, 'event', e.event, 'from', e.from_status, 'to', e.to_status,
		'generation', e.generation, 'message', e.message, 'actor', e.actor,
		'actorId', CASE WHEN admin THEN e.actor_id END,
		'detail', CASE WHEN admin THEN e.detail END,
		'createdAt', paas.iso(e.created_at)));
COMMENT ON FUNCTION paas.instance_event_json(paas.instance_events, boolean) IS
	'an instance event as the API prints it (detail and actor id for administrators)';

-- The caller's instance by id or name (uid NULL: anyone's), locked when
-- lock; PT404 for unknown, malformed and another user's alike.
CREATE FUNCTION paas.instance_of(uid uuid, key text, lock boolean DEFAULT false) RETURNS paas.instances
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	iid uuid := paas.to_uuid(key);
BEGIN
	IF lock THEN
		SELECT * INTO i FROM paas.instances x
		 WHERE (x.id = iid OR (iid IS NULL AND x.name = lower(key))) AND (uid IS NULL OR x.user_id = uid)
		   FOR UPDATE;
	ELSE
		SELECT * INTO i FROM paas.instances x
		 WHERE (x.id = iid OR (iid IS NULL AND x.name = lower(key))) AND (uid IS NULL OR x.user_id = uid);
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Pod not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN i;
END
$$;
COMMENT ON FUNCTION paas.instance_of(uuid, text, boolean) IS
	'an instance of uid (anyone''s when NULL) by id or name; PT404 otherwise';

CREATE FUNCTION paas.check_instance_filters(errs jsonb, req jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	f text;
BEGIN
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'status', false,
		ARRAY['PENDING', 'PROVISIONING', 'RUNNING', 'DEGRADED', 'FAILED', 'STOPPED', 'DELETING', 'DELETED']);
	errs := paas.check_text(errs, req, 'search', false, 1, 100);
	FOREACH f IN ARRAY ARRAY['serviceId', 'userId', 'subscriptionId'] LOOP
		errs := paas.check_text(errs, req, f, false, 1, 64);
		IF jsonb_typeof(req -> f) = 'string' AND paas.to_uuid(req ->> f) IS NULL THEN
			errs := paas.add_err(errs, f, f || ' must be a valid id');
		END IF;
	END LOOP;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_instance_filters(jsonb, jsonb) IS
	'appends errors for invalid page, limit, status, search and id filters';

-- One page of instances, newest first: {rows, total}.  uid NULL: everyone's.
CREATE FUNCTION paas.instances_page(req jsonb, uid uuid, default_limit integer) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	lim int := coalesce((req ->> 'limit')::int, default_limit);
	off int := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	st text := req ->> 'status';
	svc uuid := paas.to_uuid(req ->> 'serviceId');
	usr uuid := coalesce(uid, paas.to_uuid(req ->> 'userId'));
	sub uuid := paas.to_uuid(req ->> 'subscriptionId');
	pat text := CASE WHEN req ->> 'search' IS NOT NULL THEN
					'%' || replace(replace(replace(req ->> 'search', '\', '\\'), '%', '\%'), '_', '\_') || '%' END;
	total bigint;
	rows jsonb;
BEGIN
	SELECT count(*) INTO total FROM paas.instances i
	 WHERE (usr IS NULL OR i.user_id = usr) AND (st IS NULL OR i.status = st)
	   AND (svc IS NULL OR i.service_id = svc) AND (sub IS NULL OR i.subscription_id = sub)
	   AND (pat IS NULL OR i.name ILIKE pat OR i.host ILIKE pat);
	SELECT coalesce(jsonb_agg(paas.instance_json(p.i, p.v) ORDER BY p.rn), '[]') INTO rows
	  FROM (SELECT i, v, row_number() OVER (ORDER BY i.created_at DESC, i.id) AS rn
			  FROM paas.instances i JOIN paas.services v ON v.id = i.service_id
			 WHERE (usr IS NULL OR i.user_id = usr) AND (st IS NULL OR i.status = st)
			   AND (svc IS NULL OR i.service_id = svc) AND (sub IS NULL OR i.subscription_id = sub)
			   AND (pat IS NULL OR i.name ILIKE pat OR i.host ILIKE pat)
			 ORDER BY i.created_at DESC, i.id
			 LIMIT lim OFFSET off) p;
	RETURN jsonb_build_object('rows', rows, 'total', total);
END
$$;
COMMENT ON FUNCTION paas.instances_page(jsonb, uuid, integer) IS
	'newest first; status, serviceId, userId, subscriptionId, search, page, limit (validated by the caller)';

CREATE FUNCTION paas.instance_events_page(i paas.instances, req jsonb, admin boolean) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'data', (SELECT coalesce(jsonb_agg(paas.instance_event_json(e, admin) ORDER BY e.id DESC), '[]')
				   FROM (SELECT * FROM paas.instance_events x WHERE x.instance_id = i.id
						  ORDER BY x.id DESC
						  LIMIT coalesce((req ->> 'limit')::int, 50)
						 OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * coalesce((req ->> 'limit')::int, 50)) e),
		'pagination', paas.pagination(req, (SELECT count(*) FROM paas.instance_events x WHERE x.instance_id = i.id), 50));
COMMENT ON FUNCTION paas.instance_events_page(paas.instances, jsonb, boolean) IS
	'one page of an instance''s events, newest first';

------------------------------------------------------------------------------
-- api: the owner's instances (/pods)
------------------------------------------------------------------------------

CREATE FUNCTION api.pods_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	r jsonb;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_instance_filters('[]', req - 'userId'));
	r := paas.instances_page(req - 'userId', u.id, 20);
	RETURN jsonb_build_object('data', r -> 'rows',
							  'pagination', paas.pagination(req, (r ->> 'total')::bigint, 20));
END
$$;
COMMENT ON FUNCTION api.pods_list(jsonb, jsonb) IS
	'GET /pods: the caller''s instances, newest first; status, serviceId, subscriptionId, search, page, limit';

CREATE FUNCTION api.pods_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id');
	v paas.services;
BEGIN
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v) || jsonb_build_object(
		'events', (SELECT coalesce(jsonb_agg(paas.instance_event_json(e, false) ORDER BY e.id DESC), '[]')
					 FROM (SELECT * FROM paas.instance_events x WHERE x.instance_id = i.id
							ORDER BY x.id DESC LIMIT 10) e));
END
$$;
COMMENT ON FUNCTION api.pods_get(jsonb, jsonb) IS
	'GET /pods/:id: one of the caller''s instances (id or name) with its last 10 events';

CREATE FUNCTION api.pods_events(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id');
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_paging('[]', req));
	RETURN paas.instance_events_page(i, req, false);
END
$$;
COMMENT ON FUNCTION api.pods_events(jsonb, jsonb) IS
	'GET /pods/:id/events: the history of one of the caller''s instances, newest first';

-- Restart = a new pod-template annotation (paas.dev/restartedAt), as
-- kubectl rollout restart does; only an instance that should run and has
-- been applied can restart.
CREATE FUNCTION paas.instance_restart(i paas.instances, actor text, actor_id uuid) RETURNS paas.instances
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF i.desired_state = 'stopped' THEN
		RAISE EXCEPTION 'Pod cannot be restarted while it is stopped' USING ERRCODE = 'PT409',
			HINT = CASE WHEN i.admin_stopped THEN 'An administrator stopped it.'
						ELSE 'Pay the subscription to start it again.' END;
	ELSIF i.desired_state <> 'running' OR i.status NOT IN ('RUNNING', 'DEGRADED', 'PROVISIONING') THEN
		RAISE EXCEPTION 'Pod cannot be restarted while it is %', i.status USING ERRCODE = 'PT409';
	END IF;
	UPDATE paas.instances
	   SET restarted_at = clock_timestamp(), restart_count = restart_count + 1, generation = generation + 1,
		   polls = 0, attempts = 0, due_at = now(), updated_at = now()
	 WHERE id = i.id
	RETURNING * INTO i;
	PERFORM paas.instance_log(i.id, 'restart', i.status, i.status, i.generation,
							  'restart requested', NULL, actor, actor_id);
	PERFORM paas.instance_wake();
	RETURN i;
END
$$;
COMMENT ON FUNCTION paas.instance_restart(paas.instances, text, uuid) IS
	'asks for a rolling restart (new pod-template annotation); PT409 unless the instance should run';

CREATE FUNCTION api.pods_restart(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id', true);
	v paas.services;
BEGIN
	i := paas.instance_restart(i, 'owner', u.id);
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v);
END
$$;
COMMENT ON FUNCTION api.pods_restart(jsonb, jsonb) IS
	'POST /pods/:id/restart: restarts one of the caller''s instances; PT409 when it is not running';

CREATE FUNCTION api.pods_credentials(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id');
	v paas.services;
	vars jsonb;
	creds jsonb;
BEGIN
	IF i.status IN ('DELETED', 'FAILED') THEN
		RAISE EXCEPTION 'The pod has ended; its credentials are gone' USING ERRCODE = 'PT409';
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	PERFORM paas.instance_ensure_secrets(i, v);
	vars := paas.instance_vars(i, v, paas.service_template(v.id), true);
	SELECT coalesce(jsonb_object_agg(c.key, paas.tpl_subst(c.value #>> '{}', vars)), '{}') INTO creds
	  FROM jsonb_each(coalesce(paas.service_template(v.id) -> 'credentials', '{}')) c;
	-- who looked is recorded, never what they saw
	PERFORM paas.instance_log(i.id, 'credentials_viewed', i.status, i.status, i.generation,
							  'credentials shown to the owner', NULL, 'owner', u.id);
	RETURN jsonb_build_object('id', i.id, 'name', i.name,
		'url', CASE WHEN paas.instance_exposed(v) THEN 'https://' || i.host END,
		'internalUrl', format('http://%s.%s.svc.cluster.local:%s', i.name, i.namespace, v.container_port),
		'credentials', creds,
		'secrets', (SELECT coalesce(jsonb_object_agg(s.name, s.value), '{}') FROM paas.instance_secrets s
					 WHERE s.instance_id = i.id));
END
$$;
COMMENT ON FUNCTION api.pods_credentials(jsonb, jsonb) IS
	'GET /pods/:id/credentials: the owner''s credentials and generated secrets of an instance (the viewing is recorded)';

-- The first step of GET /pods/:id/logs: who may read, and where the log
-- is.  httpd reads it from the Kubernetes API (httpd/k8s.c).
CREATE FUNCTION api.pods_logs(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	i paas.instances := paas.instance_of(u.id, req ->> 'id');
	v paas.services;
	errs jsonb := '[]';
	containers text[];
BEGIN
	req := paas.require_object(req);
	errs := paas.check_int(errs, req, 'tailLines', false, 1, 5000);
	errs := paas.check_text(errs, req, 'container', false, 1, 63);
	errs := paas.check_bool(errs, req, 'previous', false);
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	containers := ARRAY['app'] || ARRAY(SELECT x ->> 'name' FROM jsonb_array_elements(
						coalesce(paas.service_template(v.id) -> 'sidecars', '[]')) x);
	IF req ->> 'container' IS NOT NULL AND NOT (req ->> 'container') = ANY (containers) THEN
		errs := paas.add_err(errs, 'container', format('container must be one of [%s]', array_to_string(containers, ', ')));
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	IF i.status IN ('DELETED', 'FAILED', 'STOPPED', 'PENDING') OR i.desired_state <> 'running' THEN
		RAISE EXCEPTION 'The pod is % and has no logs to read', i.status USING ERRCODE = 'PT409';
	END IF;
	RETURN jsonb_build_object('$k8s', jsonb_build_object(
		'apiUrl', current_setting('paas.k8s_api_url', true),
		'tokenFile', current_setting('paas.k8s_token_file', true),
		'caFile', current_setting('paas.k8s_ca_file', true),
		'instanceId', i.id, 'name', i.name, 'namespace', i.namespace,
		'labelSelector', 'paas.dev/instance-id=' || i.id::text,
		'container', coalesce(req ->> 'container', 'app'),
		'tailLines', coalesce((req ->> 'tailLines')::int, 100),
		'previous', coalesce((req ->> 'previous')::boolean, false)));
END
$$;
COMMENT ON FUNCTION api.pods_logs(jsonb, jsonb) IS
	'GET /pods/:id/logs?tailLines=&container=&previous=: where the log of the caller''s instance is (httpd reads it)';

------------------------------------------------------------------------------
-- api: administrators
------------------------------------------------------------------------------

CREATE FUNCTION api.pods_admin_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_instance_filters('[]', req));
	r := paas.instances_page(req, NULL, 20);
	RETURN jsonb_build_object('data', r -> 'rows',
							  'pagination', paas.pagination(req, (r ->> 'total')::bigint, 20));
END
$$;
COMMENT ON FUNCTION api.pods_admin_list(jsonb, jsonb) IS
	'GET /admin/pods: every instance; status, userId, serviceId, subscriptionId, search, page, limit';

CREATE FUNCTION api.pods_admin_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
	v paas.services;
	o paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	i := paas.instance_of(NULL, req ->> 'id');
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	SELECT * INTO o FROM paas.users WHERE id = i.user_id;
	RETURN paas.instance_json(i, v) || jsonb_build_object(
		'user', jsonb_build_object('id', o.id, 'name', o.name, 'email', o.email),
		'subscriptionStatus', (SELECT s.status FROM paas.subscriptions s WHERE s.id = i.subscription_id),
		'attempts', i.attempts, 'dueAt', paas.iso(i.due_at), 'claimedUntil', paas.iso(i.claimed_until),
		'syncedAt', paas.iso(i.synced_at), 'forceApply', i.force_apply,
		'namespaceState', (SELECT jsonb_build_object('name', ns.name, 'state', ns.state,
								'generation', ns.generation, 'observedGeneration', ns.observed_generation,
								'lastError', ns.last_error)
							 FROM paas.instance_namespaces ns WHERE ns.user_id = i.user_id));
END
$$;
COMMENT ON FUNCTION api.pods_admin_get(jsonb, jsonb) IS
	'GET /admin/pods/:id: any instance with its owner and the reconciler''s bookkeeping';

CREATE FUNCTION api.pods_admin_events(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	i paas.instances;
BEGIN
	PERFORM paas.require_admin(ctx);
	i := paas.instance_of(NULL, req ->> 'id');
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_paging('[]', req));
	RETURN paas.instance_events_page(i, req, true);
END
$$;
COMMENT ON FUNCTION api.pods_admin_events(jsonb, jsonb) IS
	'GET /admin/pods/:id/events: every event of an instance with its detail (API outcomes)';

CREATE FUNCTION api.pods_admin_manifests(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN paas.instance_manifests((paas.instance_of(NULL, req ->> 'id')).id, false);
END
$$;
COMMENT ON FUNCTION api.pods_admin_manifests(jsonb, jsonb) IS
	'GET /admin/pods/:id/manifests: exactly what the reconciler applies (secret values redacted)';

CREATE FUNCTION api.pods_admin_reconcile(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	i paas.instances := paas.instance_of(NULL, req ->> 'id', true);
	v paas.services;
BEGIN
	UPDATE paas.instances SET force_apply = true, attempts = 0, polls = 0, due_at = now(),
		   claimed_until = NULL, updated_at = now()
	 WHERE id = i.id
	RETURNING * INTO i;
	UPDATE paas.instance_namespaces SET force_apply = desired_state = 'present', due_at = now(),
		   attempts = 0, claimed_until = NULL
	 WHERE user_id = i.user_id;
	PERFORM paas.instance_log(i.id, 'reconcile', i.status, i.status, i.generation,
							  'reconcile forced by an administrator', NULL, 'admin', adm.id);
	PERFORM paas.instance_wake();
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v);
END
$$;
COMMENT ON FUNCTION api.pods_admin_reconcile(jsonb, jsonb) IS
	'POST /admin/pods/:id/reconcile: applies every object of the instance and its namespace again, now';

CREATE FUNCTION paas.instance_admin_stop(req jsonb, ctx jsonb, stop boolean) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	i paas.instances;
	v paas.services;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_text('[]', req, 'reason', false, 3, 500));
	i := paas.instance_of(NULL, req ->> 'id', true);
	IF i.desired_state = 'deleted' THEN
		RAISE EXCEPTION 'The pod has ended' USING ERRCODE = 'PT409';
	END IF;
	IF NOT stop AND NOT i.admin_stopped THEN
		RAISE EXCEPTION 'The pod was not stopped by an administrator' USING ERRCODE = 'PT409',
			HINT = CASE WHEN i.desired_state = 'stopped' THEN 'It is stopped because its subscription is unpaid.'
						ELSE 'It is not stopped.' END;
	END IF;
	UPDATE paas.instances SET admin_stopped = stop, updated_at = now() WHERE id = i.id;
	PERFORM paas.instances_set_desired(ARRAY[i.id],
		coalesce(req ->> 'reason', CASE WHEN stop THEN 'stopped' ELSE 'started' END || ' by an administrator'),
		'admin', adm.id);
	SELECT * INTO i FROM paas.instances WHERE id = i.id;
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v);
END
$$;
COMMENT ON FUNCTION paas.instance_admin_stop(jsonb, jsonb, boolean) IS
	'stops (or starts again) an instance whatever its subscription says, as an administrator';

CREATE FUNCTION api.pods_admin_stop(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN paas.instance_admin_stop(req, ctx, true);
COMMENT ON FUNCTION api.pods_admin_stop(jsonb, jsonb) IS
	'POST /admin/pods/:id/stop {reason?}: scales the instance to zero until an administrator starts it';

CREATE FUNCTION api.pods_admin_start(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN paas.instance_admin_stop(req, ctx, false);
COMMENT ON FUNCTION api.pods_admin_start(jsonb, jsonb) IS
	'POST /admin/pods/:id/start {reason?}: undoes an administrator''s stop (the subscription still decides)';

CREATE FUNCTION api.pods_admin_restart(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	i paas.instances := paas.instance_of(NULL, req ->> 'id', true);
	v paas.services;
BEGIN
	i := paas.instance_restart(i, 'admin', adm.id);
	SELECT * INTO v FROM paas.services WHERE id = i.service_id;
	RETURN paas.instance_json(i, v);
END
$$;
COMMENT ON FUNCTION api.pods_admin_restart(jsonb, jsonb) IS 'POST /admin/pods/:id/restart: restarts any instance';

CREATE FUNCTION api.pods_admin_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	p record := paas.provisioner_state();
	c record := paas.instance_capacity();
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN jsonb_build_object(
		'byStatus', (SELECT jsonb_object_agg(s, coalesce(n, 0))
					   FROM unnest(ARRAY['PENDING', 'PROVISIONING', 'RUNNING', 'DEGRADED', 'FAILED',
										 'STOPPED', 'DELETING', 'DELETED']) s
					   LEFT JOIN (SELECT status, count(*) AS n FROM paas.instances GROUP BY status) x
						 ON x.status = s),
		'total', (SELECT count(*) FROM paas.instances),
		'behind', (SELECT count(*) FROM paas.instances WHERE generation <> observed_generation),
		'erroring', (SELECT count(*) FROM paas.instances WHERE attempts > 0),
		'namespaces', (SELECT jsonb_object_agg(state, n) FROM (SELECT state, count(*) AS n
							FROM paas.instance_namespaces GROUP BY state) x),
		'capacity', jsonb_build_object('nodes', c.nodes, 'cpuFreeMillicores', c.cpu_free_m,
									   'memoryFreeBytes', c.memory_free),
		'provisioner', jsonb_build_object(
			'running', p.running, 'pid', p.pid, 'configured', p.configured,
			'startedAt', paas.iso(p.started_at), 'lastPass', paas.iso(p.last_pass),
			'lastResync', paas.iso(p.last_audit), 'passes', p.passes, 'units', p.units,
			'apiCalls', p.api_calls, 'apiErrors', p.api_errors, 'resyncCalls', p.audit_calls,
			'resyncs', p.audits, 'lastError', p.last_error,
			'lastResyncResult', CASE WHEN p.last_resync IS NOT NULL THEN p.last_resync::jsonb END));
END
$$;
COMMENT ON FUNCTION api.pods_admin_stats(jsonb, jsonb) IS
	'GET /admin/pods/stats: instances by status, reconciler backlog, capacity, the provisioner''s counters';

-- The deployment template of a service (GET / PUT).  PUT replaces it; the
-- render check of paas.services answers PT400 with every field error.
CREATE FUNCTION api.services_deployment_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO v FROM paas.services WHERE id = paas.to_uuid(req ->> 'id') AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN jsonb_build_object('id', v.id, 'name', v.name, 'dockerImage', v.docker_image,
		'containerPort', v.container_port, 'environmentVars', v.environment_vars,
		'deployment', paas.service_template(v.id),
		'preview', paas.instance_render(paas.sample_instance(v, paas.service_template(v.id)), v, false));
END
$$;
COMMENT ON FUNCTION api.services_deployment_get(jsonb, jsonb) IS
	'GET /services/admin/:id/deployment: a service''s deployment template and the objects of a sample instance';

CREATE FUNCTION api.services_deployment_set(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	v paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	SELECT * INTO v FROM paas.services WHERE id = paas.to_uuid(req ->> 'id') AND deleted_at IS NULL FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PT404';
	END IF;
	IF jsonb_typeof(req -> 'deployment') IS DISTINCT FROM 'object' THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', 'deployment', 'deployment must be an object'));
	END IF;
	IF req ? 'environmentVars' THEN
		-- the template and the environment that uses its secrets, checked together
		v := paas.service_input(jsonb_build_object('environmentVars', req -> 'environmentVars'), v, false);
		PERFORM paas.raise_if_invalid(paas.template_check(v, req -> 'deployment'));
		-- checked together: the row guards need not check each half alone
		PERFORM set_config('paas_templates.checked', 'on', true);
	END IF;
	INSERT INTO paas.service_templates (service_id, deployment) VALUES (v.id, req -> 'deployment')
	ON CONFLICT (service_id) DO UPDATE SET deployment = EXCLUDED.deployment, updated_at = now();
	UPDATE paas.services SET environment_vars = v.environment_vars, updated_at = now() WHERE id = v.id;
	PERFORM set_config('paas_templates.checked', 'off', true);
	RETURN api.services_deployment_get(req, ctx);
END
$$;
COMMENT ON FUNCTION api.services_deployment_set(jsonb, jsonb) IS
	'PUT /services/admin/:id/deployment {deployment, environmentVars?}: replaces the template (and the '
	'environment using its secrets; PT400 when they do not render); '
	'running instances roll out the change';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.pods_list(jsonb, jsonb)', 'api.pods_get(jsonb, jsonb)', 'api.pods_events(jsonb, jsonb)',
		'api.pods_restart(jsonb, jsonb)', 'api.pods_credentials(jsonb, jsonb)', 'api.pods_logs(jsonb, jsonb)',
		'api.pods_admin_list(jsonb, jsonb)', 'api.pods_admin_get(jsonb, jsonb)',
		'api.pods_admin_events(jsonb, jsonb)', 'api.pods_admin_manifests(jsonb, jsonb)',
		'api.pods_admin_reconcile(jsonb, jsonb)', 'api.pods_admin_stop(jsonb, jsonb)',
		'api.pods_admin_start(jsonb, jsonb)', 'api.pods_admin_restart(jsonb, jsonb)',
		'api.pods_admin_stats(jsonb, jsonb)',
		'api.services_deployment_get(jsonb, jsonb)', 'api.services_deployment_set(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;

-- ---- new: sql/parts/75_notifications.sql ----
-- paas -- notifications: transactional e-mail through a durable outbox,
-- e-mail verification, password reset, preferences, admin deliveries.
--
-- Rules a reader must know.
--   * Outbox in the same transaction as the event.  A mail is a row of
--     paas.notification_outbox written by the very transaction that changes
--     the state it reports, by the triggers at the end of this file on the
--     other areas' tables (a top-up PAID, a charge, a subscription event, a
--     new account, a password change, a node going NOT_READY or INACTIVE, a
--     blocked reversal, a failing job, an instance RUNNING or FAILED).  So
--     there is never a mail for something that rolled back, nor a lost mail
--     for something that committed.  Each row carries a dedup key naming its
--     event ("charge:<subscription>:<period>"): a second insert for the same
--     event is a no-op (ON CONFLICT DO NOTHING).  The row holds references
--     and the event's own values (vars); the mail is rendered when it is
--     sent, in the claim transaction, so that an event costs its
--     transaction one narrow row (a renewal run of 100,000 charges writes
--     100,000 rows, set-based, from a statement trigger).
--   * The sender is the background worker "paas mailer" (bgworker/mailer.c):
--     it claims due rows with paas.notify_claim() (FOR UPDATE SKIP LOCKED,
--     status SENDING with a lease, rendered), sends them with libcurl over
--     SMTP with no transaction open (over paas.smtp_connections kept
--     connections, one mail each at a time), and records each outcome with
--     paas.notify_record() as its transfer ends, before any further mail is
--     started, so a crash repeats at most the mails in flight (one per
--     connection) and never one that was recorded.  A claimed row whose lease ran out (the
--     mailer died) is claimed again with the SAME Message-ID (fixed at the
--     first claim), so a receiver can tell the duplicate.  4xx and network
--     errors retry with exponential backoff and jitter up to
--     paas.mail_max_attempts; 5xx fails for good, visible to administrators
--     (api.admin_notifications) with the server's reply.
--   * Categories.  transactional mails always go; reminder mails
--     (renewal_reminder) go only while the user keeps reminders on, carry
--     List-Unsubscribe / List-Unsubscribe-Post (RFC 8058) and are suppressed
--     at send time when the user opted out meanwhile; admin mails go to
--     paas.mail_admin_to, or to every active administrator.  At most
--     paas.mail_per_recipient_per_hour mails are sent to one address an
--     hour: the next one waits (never dropped).
--   * Templates (paas.notification_templates) per kind and locale ('id',
--     'en'; the user's preference, else paas.mail_default_locale): subject,
--     text and HTML with {{variable}}, {{#flag}}...{{/flag}} and
--     {{^flag}}...{{/flag}}.  Values are formatted by the variable's type
--     (money, date, datetime) in the locale and HTML-escaped in the HTML
--     part.  A template that uses a variable its kind does not define is
--     refused when saved (PT400).  The install's rows are "builtin"; a DBA's
--     UPDATE of one writes the DBA's own row for that kind and locale (which
--     wins, is dumped by pg_dump, and is removed again with DELETE).
--   * Links carry signed tokens: "<id>.<HMAC-SHA256(key, purpose:id)>" with
--     the key of paas.notification_secret (made on first use, owner only).
--     Verification and reset tokens are also rows of paas.auth_tokens
--     (expiry, single use, bound to the address they were mailed to); the
--     unsubscribe token is the user id, signed.
--   * E-mail verification.  An address is verified when
--     paas.notification_preferences.verified_email is the account's current
--     e-mail.  With paas.require_verified_email on, a top-up of an account
--     whose address is not verified is refused (PT403).

------------------------------------------------------------------------------
-- C helpers (extension/notify.c)
------------------------------------------------------------------------------

CREATE FUNCTION paas.mail_encode_header(t text) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_mail_encode_header'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.mail_encode_header(text) IS
	'a header value as RFC 2047 encoded-words (=?UTF-8?B?...?=) when it is not plain ASCII';

CREATE FUNCTION paas.mail_wake() RETURNS void
	AS 'MODULE_PATHNAME', 'paas_mail_wake'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.mail_wake() IS
	'wakes the mailer when the current transaction commits (nothing on rollback)';

CREATE FUNCTION paas.mailer_state(
	OUT running boolean, OUT pid integer, OUT started_at timestamptz, OUT last_pass timestamptz,
	OUT sent bigint, OUT retried bigint, OUT failed bigint, OUT last_error text)
	AS 'MODULE_PATHNAME', 'paas_mailer_state'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.mailer_state() IS
	'the mailer''s published state (shared memory): counters since it started, its last error';

CREATE FUNCTION paas.invoice_pdf(invoice jsonb) RETURNS bytea
	AS 'MODULE_PATHNAME', 'paas_invoice_pdf'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.invoice_pdf(jsonb) IS
	'the PDF of an invoice as paas.invoice_detail() prints it (the layout of GET /billing/invoices/:id/pdf)';

------------------------------------------------------------------------------
-- settings (GUCs of bgworker/mailer.c, read here)
------------------------------------------------------------------------------

CREATE FUNCTION paas.notify_setting(name text, fallback text) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN coalesce(nullif(current_setting('paas.' || name, true), ''), fallback);
COMMENT ON FUNCTION paas.notify_setting(text, text) IS
	'the GUC paas.<name>, or fallback when it is unset or the module is not loaded';

-- paas.public_url without a trailing slash: the origin users reach (pages
-- under it, the API under /api/v1).
CREATE FUNCTION paas.notify_public_url() RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN rtrim(paas.notify_setting('public_url', 'http://localhost:8080'), '/');
COMMENT ON FUNCTION paas.notify_public_url() IS 'paas.public_url without a trailing slash';

CREATE FUNCTION paas.notify_default_locale() RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN CASE WHEN paas.notify_setting('mail_default_locale', 'id') = 'en' THEN 'en' ELSE 'id' END;
COMMENT ON FUNCTION paas.notify_default_locale() IS 'paas.mail_default_locale: id or en';

CREATE FUNCTION paas.require_verified_email() RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN paas.notify_setting('require_verified_email', 'off') IN ('on', 'true', '1', 'yes');
COMMENT ON FUNCTION paas.require_verified_email() IS
	'paas.require_verified_email: whether an unverified address blocks top-ups';

------------------------------------------------------------------------------
-- tables
------------------------------------------------------------------------------

-- What a kind of mail is: its category and the variables its templates may
-- use, with their types (text, url, int, money, date, datetime, bool).
-- Every template may also use the common variables of
-- paas.notify_common_vars().
CREATE TABLE paas.notification_kinds (
	kind		text PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_]{1,62}$'),
	category	text NOT NULL CHECK (category IN ('transactional', 'reminder', 'admin')),
	variables	jsonb NOT NULL,
	description	text NOT NULL,
	CHECK (jsonb_typeof(variables) = 'object')
);
COMMENT ON TABLE paas.notification_kinds IS
	'kinds of mail: category (transactional | reminder | admin) and the typed variables of their templates';

CREATE TABLE paas.notification_templates (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind		text NOT NULL REFERENCES paas.notification_kinds (kind),
	locale		text NOT NULL CHECK (locale IN ('id', 'en')),
	subject		text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 300),
	body_text	text NOT NULL CHECK (char_length(body_text) BETWEEN 1 AND 20000),
	body_html	text NOT NULL CHECK (char_length(body_html) BETWEEN 1 AND 50000),
	builtin		boolean NOT NULL DEFAULT false,
	updated_at	timestamptz,			-- a DBA's last change; NULL for the install's rows
	UNIQUE (kind, locale, builtin)
);
COMMENT ON TABLE paas.notification_templates IS
	'subject, text and HTML per kind and locale; a DBA''s row (builtin = false) wins over the install''s';

CREATE TABLE paas.notification_preferences (
	user_id			uuid PRIMARY KEY REFERENCES paas.users (id) ON DELETE CASCADE,
	locale			text CHECK (locale IN ('id', 'en')),	-- NULL: paas.mail_default_locale
	reminders		boolean NOT NULL DEFAULT true,
	verified_email	text,				-- the address last verified
	verified_at		timestamptz,
	updated_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE paas.notification_preferences IS
	'per user: mail locale, reminders on or off, the address last verified';

CREATE TABLE paas.auth_tokens (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id		uuid NOT NULL REFERENCES paas.users (id) ON DELETE CASCADE,
	purpose		text NOT NULL CHECK (purpose IN ('verify', 'reset')),
	email		text NOT NULL,			-- the address the link was mailed to
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz NOT NULL,
	used_at		timestamptz
);
CREATE INDEX auth_tokens_user_idx ON paas.auth_tokens (user_id, purpose) WHERE used_at IS NULL;
CREATE INDEX auth_tokens_expires_idx ON paas.auth_tokens (expires_at);
COMMENT ON TABLE paas.auth_tokens IS
	'e-mail verification and password reset tokens: expiry, single use; the link carries the id, signed';

-- The key links are signed with; one row, made on first use.
CREATE TABLE paas.notification_secret (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	key			bytea NOT NULL DEFAULT public.gen_random_bytes(32),
	created_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE paas.notification_secret IS
	'the HMAC key of signed links (verification, reset, unsubscribe); owner only';

CREATE TABLE paas.notification_outbox (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind			text NOT NULL REFERENCES paas.notification_kinds (kind),
	dedup_key		text NOT NULL CHECK (char_length(dedup_key) <= 300),
	user_id			uuid REFERENCES paas.users (id) ON DELETE CASCADE,
	recipient		text,				-- NULL: the user's address when sent
	vars			jsonb NOT NULL DEFAULT '{}',
	status			text NOT NULL DEFAULT 'PENDING'
					CHECK (status IN ('PENDING', 'SENDING', 'SENT', 'FAILED', 'SUPPRESSED')),
	attempts		integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	due_at			timestamptz NOT NULL DEFAULT now(),
	claimed_until	timestamptz,
	message_id		text,				-- fixed at the first claim
	sent_to			text,
	smtp_code		integer,
	last_reply		text,
	last_error		text,
	resent_from		bigint REFERENCES paas.notification_outbox (id),
	created_at		timestamptz NOT NULL DEFAULT now(),
	sent_at			timestamptz,
	updated_at		timestamptz NOT NULL DEFAULT now(),
	CHECK (user_id IS NOT NULL OR recipient IS NOT NULL)
);
CREATE UNIQUE INDEX notification_outbox_dedup_key ON paas.notification_outbox (dedup_key);
-- the mailer's scan: what may be due, in due order
CREATE INDEX notification_outbox_due_idx ON paas.notification_outbox (due_at, id)
	WHERE status IN ('PENDING', 'SENDING');
CREATE INDEX notification_outbox_user_idx ON paas.notification_outbox (user_id, id);
-- the per-recipient limit: mails sent to an address in the last hour
CREATE INDEX notification_outbox_sent_idx ON paas.notification_outbox (lower(sent_to), sent_at)
	WHERE sent_at IS NOT NULL;
COMMENT ON TABLE paas.notification_outbox IS
	'one mail to send, written with the event it reports; the mailer claims, sends and records it';

CREATE TABLE paas.notification_deliveries (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	outbox_id	bigint NOT NULL REFERENCES paas.notification_outbox (id) ON DELETE CASCADE,
	attempt		integer NOT NULL,
	at			timestamptz NOT NULL DEFAULT now(),
	outcome		text NOT NULL CHECK (outcome IN ('sent', 'temporary', 'permanent', 'unavailable')),
	smtp_code	integer,
	reply		text
);
CREATE INDEX notification_deliveries_outbox_idx ON paas.notification_deliveries (outbox_id, id);
COMMENT ON TABLE paas.notification_deliveries IS
	'every SMTP attempt of a mail: outcome, the server''s code and reply (or the connection error)';

REVOKE ALL ON paas.notification_kinds, paas.notification_templates, paas.notification_preferences,
	paas.auth_tokens, paas.notification_secret, paas.notification_outbox,
	paas.notification_deliveries FROM PUBLIC;
GRANT SELECT ON paas.notification_kinds, paas.notification_preferences, paas.notification_outbox,
	paas.notification_deliveries TO paas_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON paas.notification_templates TO paas_owner;

-- Kinds are install rows (CREATE EXTENSION writes them again on restore);
-- builtin templates too, a DBA's templates are data.
SELECT pg_catalog.pg_extension_config_dump('paas.notification_kinds', 'WHERE false');
SELECT pg_catalog.pg_extension_config_dump('paas.notification_templates', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('paas.notification_templates_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.notification_preferences', '');
SELECT pg_catalog.pg_extension_config_dump('paas.auth_tokens', '');
SELECT pg_catalog.pg_extension_config_dump('paas.notification_secret', '');
SELECT pg_catalog.pg_extension_config_dump('paas.notification_outbox', '');
SELECT pg_catalog.pg_extension_config_dump('paas.notification_outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.notification_deliveries', '');
SELECT pg_catalog.pg_extension_config_dump('paas.notification_deliveries_id_seq', '');

------------------------------------------------------------------------------
-- the template engine
------------------------------------------------------------------------------

CREATE FUNCTION paas.html_escape(t text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN replace(replace(replace(replace(replace(t, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
						   '"', '&quot;'), '''', '&#39;');
COMMENT ON FUNCTION paas.html_escape(text) IS 'text with & < > " '' as HTML entities';

-- The variables every template may use, with their types; reminders add
-- their one-click unsubscribe link.
CREATE FUNCTION paas.notify_common_vars(category text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN '{"name": "text", "email": "text", "appUrl": "url"}'::jsonb
		   || CASE WHEN category = 'reminder' THEN '{"unsubscribeUrl": "url"}'::jsonb ELSE '{}' END;
COMMENT ON FUNCTION paas.notify_common_vars(text) IS
	'variables of every template (name, email, appUrl; unsubscribeUrl for reminders) and their types';

-- Whether a section flag is set: present and not false, 0, '' or null.
CREATE FUNCTION paas.notify_truthy(v jsonb) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN v IS NOT NULL AND v NOT IN ('null', 'false', '0', '""');
COMMENT ON FUNCTION paas.notify_truthy(jsonb) IS 'whether a template section flag is set';

-- Renders a template: {{name}} is the value of vars->name (text; HTML-
-- escaped when html), {{#flag}}..{{/flag}} keeps its inside when the flag
-- is set (raw vars), {{^flag}}..{{/flag}} when it is not.  Sections may
-- nest (different names).  An unknown name renders as nothing (templates
-- are checked when saved).
CREATE FUNCTION paas.notify_render_text(tpl text, vals jsonb, flags jsonb, html boolean) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	out text := '';
	rest text := tpl;
	i int;
	j int;
	k int;
	tag text;
	name text;
	closing text;
	inner_text text;
	v text;
BEGIN
	LOOP
		i := strpos(rest, '{{');
		EXIT WHEN i = 0;
		out := out || left(rest, i - 1);
		rest := substr(rest, i + 2);
		j := strpos(rest, '}}');
		IF j = 0 THEN
			out := out || '{{';
			CONTINUE;
		END IF;
		tag := btrim(left(rest, j - 1));
		rest := substr(rest, j + 2);
		IF left(tag, 1) IN ('#', '^') THEN
			name := btrim(substr(tag, 2));
			closing := '{{/' || name || '}}';
			k := strpos(rest, closing);
			IF k = 0 THEN
				inner_text := rest;
				rest := '';
			ELSE
				inner_text := left(rest, k - 1);
				rest := substr(rest, k + length(closing));
			END IF;
			IF (left(tag, 1) = '#') = paas.notify_truthy(flags -> name) THEN
				rest := inner_text || rest;
			END IF;
		ELSIF left(tag, 1) = '/' THEN
			NULL;	-- a stray closing tag renders as nothing
		ELSE
			v := coalesce(vals ->> tag, '');
			out := out || CASE WHEN html THEN paas.html_escape(v) ELSE v END;
		END IF;
	END LOOP;
	RETURN out || rest;
END
$$;
COMMENT ON FUNCTION paas.notify_render_text(text, jsonb, jsonb, boolean) IS
	'renders {{var}}, {{#flag}}..{{/flag}}, {{^flag}}..{{/flag}}; values HTML-escaped when html';

-- Every problem of a template text for a kind: names that are not
-- variables of the kind (common ones included), malformed tags, sections
-- opened and not closed.  Empty when the text is fine.
CREATE FUNCTION paas.notify_template_problems(k text, tpl text) RETURNS text[]
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	allowed jsonb;
	problems text[] := '{}';
	m text[];
	tag text;
	sigil text;
	nm text;
	opened text[] := '{}';
BEGIN
	SELECT paas.notify_common_vars(c.category) || c.variables INTO allowed
	  FROM paas.notification_kinds c WHERE c.kind = k;
	IF allowed IS NULL THEN
		RETURN ARRAY[format('unknown kind %s', k)];
	END IF;
	FOR m IN SELECT regexp_matches(tpl, '\{\{([^{}]*)\}\}', 'g') LOOP
		tag := btrim(m[1]);
		sigil := CASE WHEN left(tag, 1) IN ('#', '^', '/') THEN left(tag, 1) ELSE '' END;
		nm := btrim(substr(tag, length(sigil) + 1));
		IF nm !~ '^[A-Za-z][A-Za-z0-9_]*$' THEN
			problems := problems || format('malformed tag {{%s}}', tag);
		ELSIF NOT allowed ? nm THEN
			problems := problems || format('unknown variable %s', nm);
		ELSIF sigil IN ('#', '^') THEN
			opened := opened || nm;
		ELSIF sigil = '/' THEN
			IF NOT nm = ANY (opened) THEN
				problems := problems || format('{{/%s}} closes no section', nm);
			ELSE
				opened := array_remove(opened, nm);
			END IF;
		END IF;
	END LOOP;
	IF cardinality(opened) > 0 THEN
		problems := problems || format('section %s is not closed', array_to_string(opened, ', '));
	END IF;
	RETURN problems;
END
$$;
COMMENT ON FUNCTION paas.notify_template_problems(text, text) IS
	'unknown variables, malformed tags and unclosed sections of a template text for a kind';

-- Saving a template: every part is checked (PT400 with each problem as a
-- field error); a DBA's UPDATE of a builtin row writes the DBA's row for
-- that kind and locale instead, and builtin rows are never deleted.
CREATE FUNCTION paas.notification_templates_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	p text;
BEGIN
	IF TG_OP = 'DELETE' THEN
		IF OLD.builtin THEN
			RAISE EXCEPTION 'builtin templates cannot be deleted'
				USING ERRCODE = 'PT409', HINT = 'Delete your own row to go back to the builtin one.';
		END IF;
		RETURN OLD;
	END IF;
	FOREACH p IN ARRAY paas.notify_template_problems(NEW.kind, NEW.subject) LOOP
		errs := paas.add_err(errs, 'subject', p);
	END LOOP;
	FOREACH p IN ARRAY paas.notify_template_problems(NEW.kind, NEW.body_text) LOOP
		errs := paas.add_err(errs, 'body_text', p);
	END LOOP;
	FOREACH p IN ARRAY paas.notify_template_problems(NEW.kind, NEW.body_html) LOOP
		errs := paas.add_err(errs, 'body_html', p);
	END LOOP;
	IF jsonb_array_length(errs) > 0 THEN
		RAISE EXCEPTION 'template % (%) refused: %', NEW.kind, NEW.locale,
			(SELECT string_agg(e ->> 'message', '; ') FROM jsonb_array_elements(errs) e)
			USING ERRCODE = 'PT400', DETAIL = errs::text;
	END IF;
	NEW.updated_at := CASE WHEN NEW.builtin THEN NULL ELSE now() END;
	IF TG_OP = 'UPDATE' AND OLD.builtin THEN
		-- the statement updates the DBA's row itself when there is one
		IF NOT EXISTS (SELECT 1 FROM paas.notification_templates t
						WHERE t.kind = NEW.kind AND t.locale = NEW.locale AND NOT t.builtin) THEN
			INSERT INTO paas.notification_templates (kind, locale, subject, body_text, body_html)
			VALUES (NEW.kind, NEW.locale, NEW.subject, NEW.body_text, NEW.body_html);
		END IF;
		RETURN NULL;
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.notification_templates_guard() IS
	'checks a saved template (PT400 on unknown variables); an UPDATE of a builtin row writes the DBA''s row';
CREATE TRIGGER notification_templates_guard
	BEFORE INSERT OR UPDATE OR DELETE ON paas.notification_templates
	FOR EACH ROW EXECUTE FUNCTION paas.notification_templates_guard();

-- A value of a variable, formatted for a locale by its type:
--   money     Rp 150.000 (id) / IDR 150,000 (en)
--   date      5 Maret 2025 / 5 March 2025      (paas.mail_timezone)
--   datetime  5 Maret 2025 14:30 (UTC+07:00)
--   others    as text
CREATE FUNCTION paas.notify_format(v jsonb, typ text, locale text) RETURNS text
	LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
	n numeric;
	digits text;
	ts timestamp;
	tz text := paas.notify_setting('mail_timezone', 'Asia/Jakarta');
	months_id constant text[] := ARRAY['Januari', 'Februari', 'Maret', 'April', 'Mei', 'Juni', 'Juli',
									   'Agustus', 'September', 'Oktober', 'November', 'Desember'];
	months_en constant text[] := ARRAY['January', 'February', 'March', 'April', 'May', 'June', 'July',
									   'August', 'September', 'October', 'November', 'December'];
	off interval;
	d text;
BEGIN
	IF v IS NULL OR v = 'null' THEN
		RETURN '';
	END IF;
	IF typ = 'money' AND jsonb_typeof(v) = 'number' THEN
		n := (v #>> '{}')::numeric;
		digits := regexp_replace(abs(round(n))::text, '(\d)(?=(\d{3})+$)',
								 CASE WHEN locale = 'en' THEN '\1,' ELSE '\1.' END, 'g');
		RETURN CASE WHEN n < 0 THEN '-' ELSE '' END
			   || CASE WHEN locale = 'en' THEN 'IDR ' ELSE 'Rp ' END || digits;
	END IF;
	IF typ IN ('date', 'datetime') AND jsonb_typeof(v) = 'string' THEN
		ts := (v #>> '{}')::timestamptz AT TIME ZONE tz;
		d := extract(day FROM ts)::int || ' '
			 || (CASE WHEN locale = 'en' THEN months_en ELSE months_id END)[extract(month FROM ts)::int]
			 || ' ' || extract(year FROM ts)::int;
		IF typ = 'date' THEN
			RETURN d;
		END IF;
		off := ts - ((v #>> '{}')::timestamptz AT TIME ZONE 'UTC');
		RETURN d || ' ' || to_char(ts, 'HH24:MI') || ' (UTC'
			   || CASE WHEN off < interval '0' THEN '-' ELSE '+' END
			   || to_char(abs(extract(epoch FROM off)) * interval '1 second', 'HH24:MI') || ')';
	END IF;
	RETURN v #>> '{}';
END
$$;
COMMENT ON FUNCTION paas.notify_format(jsonb, text, text) IS
	'a template value formatted by its type (money, date, datetime, text) for a locale';

-- The template a mail of a kind uses in a locale: the DBA's row, else the
-- builtin one, else the builtin one of the other locale.
CREATE FUNCTION paas.notify_template(k text, loc text) RETURNS paas.notification_templates
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT t FROM paas.notification_templates t
			 WHERE t.kind = k
			 ORDER BY t.locale <> loc, t.builtin
			 LIMIT 1);
COMMENT ON FUNCTION paas.notify_template(text, text) IS
	'the template of a kind for a locale (the DBA''s row first; the other locale when it has none)';

------------------------------------------------------------------------------
-- signed links
------------------------------------------------------------------------------

CREATE FUNCTION paas.notify_key() RETURNS bytea
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	k bytea;
BEGIN
	SELECT s.key INTO k FROM paas.notification_secret s;
	IF k IS NULL THEN
		INSERT INTO paas.notification_secret DEFAULT VALUES ON CONFLICT DO NOTHING;
		SELECT s.key INTO k FROM paas.notification_secret s;
	END IF;
	RETURN k;
END
$$;
COMMENT ON FUNCTION paas.notify_key() IS 'the HMAC key of signed links, made on first use';

-- "<32 hex of id>.<64 hex of HMAC-SHA256(key, purpose:id)>"
CREATE FUNCTION paas.notify_sign(purpose text, id uuid) RETURNS text
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN replace(id::text, '-', '') || '.'
		   || encode(public.hmac(convert_to(purpose || ':' || id::text, 'UTF8'), paas.notify_key(), 'sha256'), 'hex');
COMMENT ON FUNCTION paas.notify_sign(text, uuid) IS 'a signed token for an id and a purpose';

-- The id of a signed token when its signature is right, else NULL.  The
-- signatures are compared through their digests, so the time taken says
-- nothing about how much of a forged one matched.
CREATE FUNCTION paas.notify_verify(purpose text, token text) RETURNS uuid
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	m text[] := regexp_match(coalesce(token, ''), '^([0-9a-f]{32})\.([0-9a-f]{64})$');
	id uuid;
BEGIN
	IF m IS NULL THEN
		RETURN NULL;
	END IF;
	id := m[1]::uuid;
	IF public.digest(paas.notify_sign(purpose, id), 'sha256') = public.digest(token, 'sha256') THEN
		RETURN id;
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_verify(text, text) IS
	'the id of a signed token of that purpose, NULL when the signature is wrong';

------------------------------------------------------------------------------
-- accounts: verification state, preferences
------------------------------------------------------------------------------

CREATE FUNCTION paas.email_verified(u paas.users) RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN EXISTS (SELECT 1 FROM paas.notification_preferences p
					WHERE p.user_id = u.id AND lower(p.verified_email) = lower(u.email));
COMMENT ON FUNCTION paas.email_verified(paas.users) IS 'whether the account''s current address is verified';

CREATE FUNCTION paas.user_locale(uid uuid) RETURNS text
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN coalesce((SELECT p.locale FROM paas.notification_preferences p WHERE p.user_id = uid),
					paas.notify_default_locale());
COMMENT ON FUNCTION paas.user_locale(uuid) IS 'the mail locale of a user (preference, else the default)';

-- A new verification or reset token for an address; returns its id.
-- Earlier unused tokens of the same purpose stop working.
CREATE FUNCTION paas.auth_token_issue(uid uuid, purpose text, mail text, ttl interval) RETURNS uuid
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	tid uuid;
BEGIN
	UPDATE paas.auth_tokens t SET used_at = now()
	 WHERE t.user_id = uid AND t.purpose = auth_token_issue.purpose AND t.used_at IS NULL;
	INSERT INTO paas.auth_tokens (user_id, purpose, email, expires_at)
	VALUES (uid, purpose, mail, now() + ttl)
	RETURNING id INTO tid;
	RETURN tid;
END
$$;
COMMENT ON FUNCTION paas.auth_token_issue(uuid, text, text, interval) IS
	'a new token (the earlier unused ones of that purpose stop working); returns its id';

-- Verification links live 48 hours, reset links 1 hour.
CREATE FUNCTION paas.auth_token_ttl(purpose text) RETURNS interval
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE purpose WHEN 'verify' THEN interval '48 hours' ELSE interval '1 hour' END;
COMMENT ON FUNCTION paas.auth_token_ttl(text) IS 'lifetime of verification (48 h) and reset (1 h) links';

------------------------------------------------------------------------------
-- enqueueing
------------------------------------------------------------------------------

-- Queues one mail for an event; a second call with the same dedup key is a
-- no-op.  Returns the row's id, NULL when the event had its mail already.
CREATE FUNCTION paas.notify(kind text, dedup_key text, user_id uuid, vars jsonb DEFAULT '{}',
							recipient text DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	oid_ bigint;
BEGIN
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, vars, recipient)
	VALUES (notify.kind, notify.dedup_key, notify.user_id, coalesce(notify.vars, '{}'), notify.recipient)
	ON CONFLICT (dedup_key) DO NOTHING
	RETURNING id INTO oid_;
	IF oid_ IS NOT NULL THEN
		PERFORM paas.mail_wake();
	END IF;
	RETURN oid_;
END
$$;
COMMENT ON FUNCTION paas.notify(text, text, uuid, jsonb, text) IS
	'queues a mail for an event in the current transaction; the same dedup key again is a no-op';

-- Who admin mails go to: the addresses of paas.mail_admin_to (comma
-- separated), or every active administrator.
CREATE FUNCTION paas.notify_admins(OUT user_id uuid, OUT recipient text) RETURNS SETOF record
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
	SELECT NULL::uuid, btrim(a)
	  FROM unnest(string_to_array(paas.notify_setting('mail_admin_to', ''), ',')) a
	 WHERE btrim(a) <> ''
	UNION ALL
	SELECT u.id, NULL
	  FROM paas.users u
	 WHERE paas.notify_setting('mail_admin_to', '') = ''
	   AND u.role = 'ADMINISTRATOR' AND u.is_active AND u.deleted_at IS NULL
$$;
COMMENT ON FUNCTION paas.notify_admins() IS
	'recipients of admin mails: paas.mail_admin_to, or every active administrator';

------------------------------------------------------------------------------
-- kinds
------------------------------------------------------------------------------

INSERT INTO paas.notification_kinds (kind, category, variables, description) VALUES
	('welcome', 'transactional', '{"verifyUrl": "url", "verifyHours": "int"}',
	 'a new account: welcome, with the e-mail verification link (none once verified)'),
	('verify_email', 'transactional', '{"verifyUrl": "url", "verifyHours": "int"}',
	 'the verification link again (resend, or a changed address)'),
	('register_existing', 'transactional', '{"loginUrl": "url", "resetUrl": "url"}',
	 'someone registered with an address that has an account: told to its owner'),
	('password_reset', 'transactional', '{"resetUrl": "url", "resetMinutes": "int"}',
	 'the password reset link (single use)'),
	('password_changed', 'transactional', '{"changedAt": "datetime", "resetUrl": "url"}',
	 'the password was changed or reset: every session was signed out'),
	('topup_paid', 'transactional',
	 '{"amount": "money", "balance": "money", "invoiceNumber": "text", "paidAt": "datetime", "paymentType": "text", "billingUrl": "url"}',
	 'a top-up was credited; the invoice is attached as PDF'),
	('subscription_charged', 'transactional',
	 '{"serviceName": "text", "amount": "money", "period": "int", "periodStart": "date", "periodEnd": "date", "invoiceNumber": "text", "subscriptionUrl": "url"}',
	 'a subscription was bought: the first month was charged'),
	('subscription_renewed', 'transactional',
	 '{"serviceName": "text", "amount": "money", "period": "int", "periodStart": "date", "periodEnd": "date", "invoiceNumber": "text", "subscriptionUrl": "url"}',
	 'a subscription period was charged (renewal run, manual renewal, revival)'),
	('renewal_failed', 'transactional',
	 '{"serviceName": "text", "amount": "money", "balance": "money", "shortfall": "money", "graceUntil": "date", "topupUrl": "url"}',
	 'a renewal found the wallet short: grace period until graceUntil'),
	('subscription_suspended', 'transactional',
	 '{"serviceName": "text", "amount": "money", "subscriptionUrl": "url"}',
	 'a subscription was suspended (grace ran out unpaid, or an administrator)'),
	('subscription_cancelled', 'transactional',
	 '{"serviceName": "text", "accessUntil": "date", "subscriptionUrl": "url"}',
	 'a subscription was cancelled: served until the end of the paid period'),
	('renewal_reminder', 'reminder',
	 '{"serviceName": "text", "amount": "money", "renewsAt": "date", "days": "int", "balance": "money", "covered": "bool", "shortfall": "money", "topupUrl": "url", "subscriptionUrl": "url"}',
	 'a renewal is coming: the amount and whether the balance covers it'),
	('instance_ready', 'transactional', '{"serviceName": "text", "instanceName": "text", "instanceUrl": "url"}',
	 'a hosted instance is running for the first time: its URL'),
	('instance_failed', 'transactional',
	 '{"serviceName": "text", "instanceName": "text", "reason": "text", "subscriptionUrl": "url"}',
	 'a hosted instance failed'),
	('refund_issued', 'transactional', '{"amount": "money", "orderId": "text", "billingUrl": "url"}',
	 'a top-up was refunded: the amount left the wallet'),
	('admin_node_down', 'admin', '{"nodeName": "text", "status": "text", "reason": "text", "at": "datetime"}',
	 'admins: a worker node went NOT_READY or INACTIVE'),
	('admin_reversal_blocked', 'admin',
	 '{"customerEmail": "text", "amount": "money", "orderId": "text", "reversalKind": "text", "at": "datetime"}',
	 'admins: a refund or chargeback could not be taken from a wallet (BLOCKED)'),
	('admin_job_failed', 'admin', '{"job": "text", "error": "text", "at": "datetime"}',
	 'admins: a background job failed (at most one mail per job and hour)');

------------------------------------------------------------------------------
-- rendering
------------------------------------------------------------------------------

-- A rendered mail.  suppress: why it must not be sent (NULL: send it).
CREATE TYPE paas.notify_mail AS (
	recipient			text,
	recipient_name		text,
	locale				text,
	subject				text,
	body_text			text,
	body_html			text,
	list_unsubscribe	text,
	attachment			bytea,
	attachment_name		text,
	suppress			text
);
COMMENT ON TYPE paas.notify_mail IS 'a rendered mail (paas.notify_render); suppress says why it must not be sent';

-- The values of a mail's variables (raw JSON: numbers, ISO timestamps,
-- booleans), from the row's vars and what they reference, plus "$suppress"
-- when the mail has become pointless (a used link, a verified address) and
-- "$invoice" (invoice id) when the invoice is attached.
CREATE FUNCTION paas.notify_values(o paas.notification_outbox, u paas.users) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	pub text := paas.notify_public_url();
	v jsonb := o.vars;
	r record;
	tok paas.auth_tokens;
	bal bigint;
	sid uuid := paas.to_uuid(o.vars ->> 'subscriptionId');
BEGIN
	IF o.kind IN ('welcome', 'verify_email', 'password_reset') THEN
		SELECT * INTO tok FROM paas.auth_tokens WHERE id = paas.to_uuid(o.vars ->> 'tokenId');
		IF o.kind = 'password_reset' THEN
			IF tok.id IS NULL OR tok.used_at IS NOT NULL OR tok.expires_at <= now() THEN
				RETURN jsonb_build_object('$suppress', 'the reset link is no longer valid');
			END IF;
			RETURN jsonb_build_object('resetUrl', pub || '/reset-password?token=' || paas.notify_sign('reset', tok.id),
									  'resetMinutes', extract(epoch FROM paas.auth_token_ttl('reset'))::int / 60);
		END IF;
		IF tok.id IS NULL OR tok.used_at IS NOT NULL OR tok.expires_at <= now()
		   OR lower(tok.email) <> lower(u.email) OR paas.email_verified(u) THEN
			IF o.kind = 'verify_email' THEN
				RETURN jsonb_build_object('$suppress', 'the address is verified or the link is no longer valid');
			END IF;
			RETURN '{}';	-- a welcome without the link
		END IF;
		RETURN jsonb_build_object('verifyUrl', pub || '/verify-email?token=' || paas.notify_sign('verify', tok.id),
								  'verifyHours', extract(epoch FROM paas.auth_token_ttl('verify'))::int / 3600);
	ELSIF o.kind = 'register_existing' THEN
		RETURN jsonb_build_object('loginUrl', pub || '/login', 'resetUrl', pub || '/forgot-password');
	ELSIF o.kind = 'password_changed' THEN
		RETURN v || jsonb_build_object('resetUrl', pub || '/forgot-password');
	ELSIF o.kind = 'topup_paid' THEN
		SELECT t.amount, t.paid_at, t.payment_type, x.credit_entry, i.id AS invoice_id, i.number
		  INTO r
		  FROM paas.topups t
		  LEFT JOIN LATERAL (SELECT * FROM paas.topup_orders x WHERE x.topup_id = t.id AND x.credited > 0
							  ORDER BY x.paid_at DESC NULLS LAST LIMIT 1) x ON true
		  LEFT JOIN paas.invoices i ON i.id = x.invoice_id
		 WHERE t.id = paas.to_uuid(o.vars ->> 'topupId');
		RETURN jsonb_build_object('amount', r.amount, 'balance', r.credit_entry -> 'balanceAfter',
								  'invoiceNumber', r.number, 'paidAt', to_jsonb(r.paid_at),
								  'paymentType', r.payment_type, 'billingUrl', pub || '/billing',
								  '$invoice', r.invoice_id);
	ELSIF o.kind IN ('subscription_charged', 'subscription_renewed') THEN
		SELECT c.amount, c.period_no, c.period_start, c.period_end, v2.display_name, i.number, i.id AS invoice_id
		  INTO r
		  FROM paas.subscription_charges c
		  JOIN paas.subscriptions s ON s.id = c.subscription_id
		  JOIN paas.services v2 ON v2.id = s.service_id
		  LEFT JOIN paas.invoices i ON i.id = c.invoice_id
		 WHERE c.subscription_id = sid AND c.period_no = (o.vars ->> 'period')::int;
		RETURN jsonb_build_object('serviceName', r.display_name, 'amount', r.amount, 'period', r.period_no,
								  'periodStart', to_jsonb(r.period_start), 'periodEnd', to_jsonb(r.period_end),
								  'invoiceNumber', r.number, 'subscriptionUrl', pub || '/subscriptions/' || sid);
	ELSIF o.kind IN ('renewal_failed', 'subscription_suspended', 'subscription_cancelled', 'renewal_reminder',
					 'instance_ready', 'instance_failed') THEN
		IF o.kind LIKE 'instance%' THEN
			EXECUTE 'SELECT subscription_id, name, host, coalesce(last_error, status_message) AS reason
					   FROM paas.instances WHERE id = $1'
			   INTO r USING paas.to_uuid(o.vars ->> 'instanceId');
			sid := r.subscription_id;
			v := jsonb_build_object('instanceName', r.name, 'instanceUrl', 'https://' || r.host,
									'reason', coalesce(o.vars ->> 'reason', r.reason));
		END IF;
		SELECT s.price, s.grace_until, s.current_period_end, s.period_no, s.status, v2.display_name
		  INTO r
		  FROM paas.subscriptions s JOIN paas.services v2 ON v2.id = s.service_id
		 WHERE s.id = sid;
		v := v || jsonb_build_object('serviceName', r.display_name, 'amount', r.price,
									 'subscriptionUrl', pub || '/subscriptions/' || sid);
		IF o.kind = 'renewal_failed' THEN
			bal := paas.wallet_balance(u.id);
			v := v || jsonb_build_object('balance', bal, 'shortfall', greatest(r.price - bal, 0),
										 'graceUntil', to_jsonb(r.grace_until), 'topupUrl', pub || '/billing/topup');
		ELSIF o.kind = 'subscription_cancelled' THEN
			v := v || jsonb_build_object('accessUntil', to_jsonb(r.current_period_end));
		ELSIF o.kind = 'renewal_reminder' THEN
			IF r.status <> 'ACTIVE' OR r.period_no <> (o.vars ->> 'period')::int THEN
				RETURN jsonb_build_object('$suppress', 'the subscription was renewed or ended meanwhile');
			END IF;
			bal := paas.wallet_balance(u.id);
			v := v || jsonb_build_object(
				'renewsAt', to_jsonb(r.current_period_end),
				'days', greatest(ceil(extract(epoch FROM r.current_period_end - now()) / 86400), 0)::int,
				'balance', bal, 'covered', bal >= r.price, 'shortfall', greatest(r.price - bal, 0),
				'topupUrl', pub || '/billing/topup');
		END IF;
		RETURN v;
	ELSIF o.kind = 'refund_issued' OR o.kind = 'admin_reversal_blocked' THEN
		SELECT x.amount, x.order_id, x.kind, x.created_at, w.email INTO r
		  FROM paas.topup_reversals x JOIN paas.users w ON w.id = x.user_id
		 WHERE x.id = paas.to_uuid(o.vars ->> 'reversalId');
		RETURN jsonb_build_object('amount', r.amount, 'orderId', r.order_id, 'billingUrl', pub || '/billing',
								  'customerEmail', r.email, 'reversalKind', r.kind, 'at', to_jsonb(r.created_at));
	END IF;
	RETURN v;	-- admin_node_down, admin_job_failed: the event's own values
END
$$;
COMMENT ON FUNCTION paas.notify_values(paas.notification_outbox, paas.users) IS
	'the raw values of a mail''s variables (with $suppress / $invoice), from its row and what it references';

-- The Message-ID of a row: its id and creation time at the sender's domain.
CREATE FUNCTION paas.notify_message_id(o paas.notification_outbox) RETURNS text
	LANGUAGE sql STABLE
	RETURN format('<paas.%s.%s@%s>', o.id, to_char(o.created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS'),
				  coalesce(substring(paas.notify_setting('mail_from', 'no-reply@localhost')
									 FROM '@([A-Za-z0-9.-]+)>?\s*$'), 'localhost'));
COMMENT ON FUNCTION paas.notify_message_id(paas.notification_outbox) IS
	'<paas.ID.CREATED@domain of paas.mail_from>: the same for every attempt of a row';

-- Renders a row as the mail to send (the mailer calls it through
-- paas.notify_claim): template of the kind in the recipient's locale,
-- values formatted and escaped, the footer, List-Unsubscribe for
-- reminders, the invoice PDF for paid top-ups.  suppress says why it must
-- not go.
CREATE FUNCTION paas.notify_render(o paas.notification_outbox) RETURNS paas.notify_mail
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	m paas.notify_mail;
	u paas.users;
	k paas.notification_kinds;
	tpl paas.notification_templates;
	raw jsonb;
	types jsonb;
	vals jsonb;
	unsub text;
	pub text := paas.notify_public_url();
	footer_text text;
	footer_html text;
	inv paas.invoices;
BEGIN
	SELECT * INTO k FROM paas.notification_kinds WHERE kind = o.kind;
	IF o.user_id IS NOT NULL THEN
		SELECT * INTO u FROM paas.users WHERE id = o.user_id;
		IF u.id IS NULL OR u.deleted_at IS NOT NULL THEN
			m.suppress := 'the account was deleted';
			RETURN m;
		END IF;
		IF k.category = 'reminder' AND NOT coalesce((SELECT p.reminders FROM paas.notification_preferences p
													  WHERE p.user_id = u.id), true) THEN
			m.suppress := 'the user turned reminders off';
			RETURN m;
		END IF;
		m.locale := paas.user_locale(u.id);
		m.recipient_name := u.name;
	ELSE
		m.locale := paas.notify_default_locale();
	END IF;
	m.recipient := coalesce(o.recipient, u.email);

	raw := paas.notify_values(o, u);
	IF raw ? '$suppress' THEN
		m.suppress := raw ->> '$suppress';
		RETURN m;
	END IF;
	IF k.category = 'reminder' AND u.id IS NOT NULL THEN
		unsub := pub || '/api/v1/notifications/unsubscribe?token=' || paas.notify_sign('unsubscribe', u.id);
		m.list_unsubscribe := '<' || unsub || '>';
	END IF;
	raw := jsonb_build_object('name', coalesce(u.name, ''), 'email', m.recipient, 'appUrl', pub)
		   || jsonb_strip_nulls(raw)
		   || CASE WHEN unsub IS NOT NULL
				   THEN jsonb_build_object('unsubscribeUrl', pub || '/notifications/unsubscribe?token='
											|| paas.notify_sign('unsubscribe', u.id))
				   ELSE '{}' END;
	types := paas.notify_common_vars(k.category) || k.variables;
	SELECT coalesce(jsonb_object_agg(e.key, CASE WHEN types ->> e.key IN ('money', 'date', 'datetime')
												  THEN paas.notify_format(e.value, types ->> e.key, m.locale)
												  ELSE coalesce(e.value #>> '{}', '') END), '{}')
	  INTO vals FROM jsonb_each(raw) e WHERE left(e.key, 1) <> '$';

	tpl := paas.notify_template(o.kind, m.locale);
	IF tpl.id IS NULL THEN
		RAISE EXCEPTION 'no template for kind %', o.kind USING ERRCODE = 'PT404';
	END IF;
	m.locale := tpl.locale;
	m.subject := btrim(regexp_replace(paas.notify_render_text(tpl.subject, vals, raw, false), '\s+', ' ', 'g'));

	footer_text := CASE m.locale
		WHEN 'en' THEN 'You receive this e-mail because of your account at ' || pub || '.'
		ELSE 'Anda menerima e-mail ini karena akun Anda di ' || pub || '.' END;
	footer_html := paas.html_escape(footer_text);
	IF unsub IS NOT NULL THEN
		footer_text := footer_text || E'\n' || CASE m.locale WHEN 'en' THEN 'Stop these reminders: '
							ELSE 'Berhenti menerima pengingat: ' END || (vals ->> 'unsubscribeUrl');
		footer_html := footer_html || '<br><a href="' || paas.html_escape(vals ->> 'unsubscribeUrl') || '">'
					   || CASE m.locale WHEN 'en' THEN 'Stop these reminders' ELSE 'Berhenti menerima pengingat' END
					   || '</a>';
	END IF;
	m.body_text := rtrim(paas.notify_render_text(tpl.body_text, vals, raw, false), E'\n') || E'\n\n-- \n'
				   || footer_text || E'\n';
	m.body_html := '<!DOCTYPE html><html lang="' || m.locale || '"><head><meta charset="utf-8">'
		|| '<meta name="viewport" content="width=device-width, initial-scale=1">'
		|| '<title>' || paas.html_escape(m.subject) || '</title></head>'
		|| '<body style="margin:0;padding:0;background:#f3f4f6">'
		|| '<div style="max-width:560px;margin:0 auto;padding:24px;background:#ffffff;'
		|| 'font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5;color:#111827">'
		|| paas.notify_render_text(tpl.body_html, vals, raw, true)
		|| '<hr style="border:none;border-top:1px solid #e5e7eb;margin:24px 0">'
		|| '<p style="font-size:12px;color:#6b7280">' || footer_html || '</p>'
		|| '</div></body></html>';

	IF raw ->> '$invoice' IS NOT NULL THEN
		SELECT * INTO inv FROM paas.invoices WHERE id = (raw ->> '$invoice')::uuid;
		IF inv.id IS NOT NULL THEN
			m.attachment := paas.invoice_pdf(paas.invoice_detail(inv, u));
			m.attachment_name := inv.number || '.pdf';
		END IF;
	END IF;
	RETURN m;
END
$$;
COMMENT ON FUNCTION paas.notify_render(paas.notification_outbox) IS
	'the mail of an outbox row: recipient, subject, text, HTML, List-Unsubscribe, attachment (or why not to send it)';

------------------------------------------------------------------------------
-- the mailer's calls (bgworker/mailer.c)
------------------------------------------------------------------------------

-- A claimed mail as the mailer gets it.
CREATE TYPE paas.notify_claimed AS (
	id					bigint,
	attempt				integer,
	message_id			text,
	recipient			text,
	recipient_name		text,
	subject				text,
	body_text			text,
	body_html			text,
	list_unsubscribe	text,
	attachment			bytea,
	attachment_name		text
);
COMMENT ON TYPE paas.notify_claimed IS 'a claimed mail as the mailer gets it (paas.notify_claim)';

-- Claims one locked due row: renders it and marks it SENDING with one more
-- attempt (NULL: it was SUPPRESSED, or it waits for its per-recipient slot;
-- "batch" counts what this claim already took per address).  Errors of the
-- rendering propagate.
CREATE FUNCTION paas.notify_claim_one(o paas.notification_outbox, lease interval, lim integer,
									  batch jsonb) RETURNS paas.notify_claimed
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	m paas.notify_mail := paas.notify_render(o);
	c paas.notify_claimed;
	cnt int;
	first_sent timestamptz;
BEGIN
	IF m.suppress IS NOT NULL OR m.recipient IS NULL THEN
		UPDATE paas.notification_outbox x
		   SET status = 'SUPPRESSED', last_error = coalesce(m.suppress, 'no recipient'),
			   claimed_until = NULL, updated_at = now()
		 WHERE x.id = o.id;
		RETURN NULL;
	END IF;
	SELECT count(*), min(x.sent_at) INTO cnt, first_sent
	  FROM paas.notification_outbox x
	 WHERE lower(x.sent_to) = lower(m.recipient) AND x.sent_at > now() - interval '1 hour';
	IF cnt + coalesce((batch ->> lower(m.recipient))::int, 0) >= lim THEN
		UPDATE paas.notification_outbox x
		   SET status = 'PENDING', claimed_until = NULL,
			   due_at = greatest(coalesce(first_sent + interval '1 hour', now() + interval '1 minute'),
								 now() + interval '1 second'),
			   last_error = format('per-recipient limit: %s mails an hour to this address', lim),
			   updated_at = now()
		 WHERE x.id = o.id;
		RETURN NULL;
	END IF;
	UPDATE paas.notification_outbox x
	   SET status = 'SENDING', attempts = x.attempts + 1, claimed_until = now() + lease,
		   due_at = now() + lease,
		   message_id = coalesce(x.message_id, paas.notify_message_id(x)), sent_to = m.recipient,
		   updated_at = now()
	 WHERE x.id = o.id
	RETURNING x.id, x.attempts, x.message_id INTO c.id, c.attempt, c.message_id;
	c.recipient := m.recipient;
	c.recipient_name := m.recipient_name;
	c.subject := m.subject;
	c.body_text := m.body_text;
	c.body_html := m.body_html;
	c.list_unsubscribe := m.list_unsubscribe;
	c.attachment := m.attachment;
	c.attachment_name := m.attachment_name;
	RETURN c;
END
$$;
COMMENT ON FUNCTION paas.notify_claim_one(paas.notification_outbox, interval, integer, jsonb) IS
	'the mailer: renders a locked due row and marks it SENDING (NULL: suppressed, or over its per-recipient limit)';

-- Claims up to n due mails for "lease": each is locked (SKIP LOCKED: a
-- second mailer takes others), rendered, and marked SENDING with one more
-- attempt.  A SENDING row whose lease ran out is claimed again with its
-- Message-ID (a claim moves due_at to the end of the lease, so one scan of
-- due rows finds both).  Rows that must not go are SUPPRESSED here, rows
-- over the per-recipient limit wait for their slot, and a row that fails to
-- render is FAILED: the batch is claimed in one subtransaction, and only
-- when something in it fails is it claimed again row by row, each in its
-- own.
CREATE FUNCTION paas.notify_claim(n integer, lease interval) RETURNS SETOF paas.notify_claimed
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	o paas.notification_outbox;
	c paas.notify_claimed;
	claimed paas.notify_claimed[] := '{}';
	lim int := paas.notify_setting('mail_per_recipient_per_hour', '20')::int;
	batch jsonb := '{}';
	err text;
BEGIN
	BEGIN
		FOR o IN SELECT * FROM paas.notification_outbox x
				  WHERE x.status IN ('PENDING', 'SENDING') AND x.due_at <= now()
				  ORDER BY x.due_at, x.id
				  LIMIT n
				  FOR UPDATE SKIP LOCKED LOOP
			c := paas.notify_claim_one(o, lease, lim, batch);
			IF c.id IS NOT NULL THEN
				claimed := claimed || c;
				batch := batch || jsonb_build_object(lower(c.recipient),
													 coalesce((batch ->> lower(c.recipient))::int, 0) + 1);
			END IF;
		END LOOP;
	EXCEPTION WHEN OTHERS THEN
		claimed := '{}';
		batch := '{}';
		FOR o IN SELECT * FROM paas.notification_outbox x
				  WHERE x.status IN ('PENDING', 'SENDING') AND x.due_at <= now()
				  ORDER BY x.due_at, x.id
				  LIMIT n
				  FOR UPDATE SKIP LOCKED LOOP
			BEGIN
				c := paas.notify_claim_one(o, lease, lim, batch);
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
				UPDATE paas.notification_outbox x
				   SET status = 'FAILED', last_error = left('rendering failed: ' || err, 1000),
					   claimed_until = NULL, updated_at = now()
				 WHERE x.id = o.id;
				CONTINUE;
			END;
			IF c.id IS NOT NULL THEN
				claimed := claimed || c;
				batch := batch || jsonb_build_object(lower(c.recipient),
													 coalesce((batch ->> lower(c.recipient))::int, 0) + 1);
			END IF;
		END LOOP;
	END;
	RETURN QUERY SELECT * FROM unnest(claimed);
END
$$;
COMMENT ON FUNCTION paas.notify_claim(integer, interval) IS
	'the mailer: claims and renders up to n due mails for a lease (FOR UPDATE SKIP LOCKED)';

-- The delay before attempt n + 1 after n temporary failures: base * 2^(n-1)
-- capped at paas.mail_retry_max, times a jitter of 0.8 .. 1.2.
CREATE FUNCTION paas.notify_backoff(attempts integer) RETURNS interval
	LANGUAGE sql VOLATILE
	RETURN least(paas.notify_setting('mail_retry_max', '1h')::interval,
				 paas.notify_setting('mail_retry_base', '30s')::interval
				 * power(2, least(greatest(attempts - 1, 0), 30)))
		   * (0.8 + 0.4 * random());
COMMENT ON FUNCTION paas.notify_backoff(integer) IS
	'retry delay after n temporary failures: exponential from paas.mail_retry_base, capped, with jitter';

-- Records the outcome of one attempt: sent (SENT), permanent (5xx: FAILED
-- for good), temporary (4xx or no answer: PENDING again after a backoff,
-- FAILED after paas.mail_max_attempts), unavailable (the server itself
-- failed -- connect, TLS, AUTH: PENDING again at once, the attempt not
-- counted; the mailer pauses).  The attempt row is kept in
-- paas.notification_deliveries.  Returns the row's new status.
CREATE FUNCTION paas.notify_record(oid bigint, attempt integer, outcome text, code integer, reply text)
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	st text;
	max_attempts int := paas.notify_setting('mail_max_attempts', '25')::int;
	r text := left(reply, 1000);
BEGIN
	IF outcome NOT IN ('sent', 'temporary', 'permanent', 'unavailable') THEN
		RAISE EXCEPTION 'unknown outcome %', outcome USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO paas.notification_deliveries (outbox_id, attempt, outcome, smtp_code, reply)
	VALUES (oid, attempt, outcome, code, r);
	IF outcome = 'sent' THEN
		-- sent is sent, even when the lease had run out meanwhile
		UPDATE paas.notification_outbox x
		   SET status = 'SENT', sent_at = now(), smtp_code = code, last_reply = r, last_error = NULL,
			   claimed_until = NULL, updated_at = now()
		 WHERE x.id = oid AND x.status IN ('SENDING', 'PENDING')
		RETURNING x.status INTO st;
	ELSIF outcome = 'unavailable' THEN
		UPDATE paas.notification_outbox x
		   SET status = 'PENDING', attempts = greatest(x.attempts - 1, 0), due_at = now(),
			   smtp_code = code, last_reply = r, last_error = r, claimed_until = NULL, updated_at = now()
		 WHERE x.id = oid AND x.status = 'SENDING' AND x.attempts = notify_record.attempt
		RETURNING x.status INTO st;
	ELSE
		UPDATE paas.notification_outbox x
		   SET status = CASE WHEN outcome = 'permanent' OR x.attempts >= max_attempts THEN 'FAILED'
							 ELSE 'PENDING' END,
			   due_at = CASE WHEN outcome = 'permanent' OR x.attempts >= max_attempts THEN x.due_at
							 ELSE now() + paas.notify_backoff(x.attempts) END,
			   smtp_code = code, last_reply = r,
			   last_error = CASE WHEN outcome = 'temporary' AND x.attempts >= max_attempts
								 THEN format('gave up after %s attempts: %s', x.attempts, r) ELSE r END,
			   claimed_until = NULL, updated_at = now()
		 WHERE x.id = oid AND x.status = 'SENDING' AND x.attempts = notify_record.attempt
		RETURNING x.status INTO st;
	END IF;
	RETURN coalesce(st, (SELECT x.status FROM paas.notification_outbox x WHERE x.id = oid));
END
$$;
COMMENT ON FUNCTION paas.notify_record(bigint, integer, text, integer, text) IS
	'the mailer: records an attempt (sent | temporary | permanent | unavailable) with the server''s code and reply';

-- Gives claimed mails back unattempted (the server could not be reached
-- for an earlier mail of the batch): PENDING after "delay", the attempt
-- not counted.
CREATE FUNCTION paas.notify_release(ids bigint[], delay interval) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	UPDATE paas.notification_outbox x
	   SET status = 'PENDING', attempts = greatest(x.attempts - 1, 0), claimed_until = NULL,
		   due_at = now() + delay, updated_at = now()
	 WHERE x.id = ANY (ids) AND x.status = 'SENDING';
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.notify_release(bigint[], interval) IS
	'the mailer: gives claimed mails back without counting the attempt';

-- When the next mail is due (the mailer sleeps until then at most).
CREATE FUNCTION paas.notify_next_due() RETURNS timestamptz
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT min(x.due_at) FROM paas.notification_outbox x WHERE x.status IN ('PENDING', 'SENDING'));
COMMENT ON FUNCTION paas.notify_next_due() IS 'the time the next queued mail is due, NULL when none is queued';

------------------------------------------------------------------------------
-- the events: triggers on the other areas' tables
--
-- An event is a row the current transaction writes with its own clock: its
-- timestamp (created_at, at, started_at; DEFAULT now()) is at or after the
-- start of the transaction.  Rows loaded with their original timestamps --
-- pg_restore's COPY, an import -- are history and queue nothing (a restore
-- brings the outbox rows of its dump instead).
------------------------------------------------------------------------------

-- A new account: welcome, with a verification link (set-based: a bulk
-- insert of accounts queues its mails in one statement).
CREATE FUNCTION paas.notify_users_inserted() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, vars)
	SELECT 'welcome', 'welcome:' || n.id, n.id,
		   jsonb_build_object('tokenId', paas.auth_token_issue(n.id, 'verify', n.email, paas.auth_token_ttl('verify')))
	  FROM new_users n
	 WHERE n.created_at >= now()
	ON CONFLICT (dedup_key) DO NOTHING;
	IF FOUND THEN
		PERFORM paas.mail_wake();
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_users_inserted() IS 'trigger: queues the welcome mails of new accounts';
CREATE TRIGGER notify_users_inserted AFTER INSERT ON paas.users
	REFERENCING NEW TABLE AS new_users
	FOR EACH STATEMENT EXECUTE FUNCTION paas.notify_users_inserted();

-- A changed password (by its owner, a reset, an administrator): told to the
-- owner.  A changed address: a verification link to the new one.
CREATE FUNCTION paas.notify_users_updated() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF NEW.password_hash IS DISTINCT FROM OLD.password_hash THEN
		PERFORM paas.notify('password_changed',
			format('password_changed:%s:%s', NEW.id, extract(epoch FROM NEW.password_changed_at)), NEW.id,
			jsonb_build_object('changedAt', to_jsonb(NEW.password_changed_at)));
	END IF;
	IF lower(NEW.email) IS DISTINCT FROM lower(OLD.email) AND NEW.deleted_at IS NULL THEN
		PERFORM paas.notify('verify_email', 'verify:' || t.id, NEW.id,
							jsonb_build_object('tokenId', t.id), NEW.email)
		  FROM (SELECT paas.auth_token_issue(NEW.id, 'verify', NEW.email, paas.auth_token_ttl('verify')) AS id) t;
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_users_updated() IS
	'trigger: a password change mail; a verification link for a changed address';
CREATE TRIGGER notify_users_updated AFTER UPDATE OF password_hash, email ON paas.users
	FOR EACH ROW
	WHEN (NEW.password_hash IS DISTINCT FROM OLD.password_hash OR lower(NEW.email) IS DISTINCT FROM lower(OLD.email))
	EXECUTE FUNCTION paas.notify_users_updated();

-- paas.require_verified_email: no top-up for an unverified address.
CREATE FUNCTION paas.topups_require_verified() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users;
BEGIN
	SELECT * INTO u FROM paas.users WHERE id = NEW.user_id;
	IF NOT paas.email_verified(u) THEN
		RAISE EXCEPTION 'Please verify your e-mail address before topping up'
			USING ERRCODE = 'PT403', HINT = 'Use the link we e-mailed you, or POST /auth/resend-verification.';
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.topups_require_verified() IS
	'trigger: PT403 for a top-up of an unverified address (paas.require_verified_email on)';
CREATE TRIGGER topups_require_verified BEFORE INSERT ON paas.topups
	FOR EACH ROW WHEN (paas.require_verified_email())
	EXECUTE FUNCTION paas.topups_require_verified();

-- A top-up credited.
CREATE FUNCTION paas.notify_topup_paid() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.notify('topup_paid', 'topup_paid:' || NEW.id, NEW.user_id,
						jsonb_build_object('topupId', NEW.id));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_topup_paid() IS 'trigger: the mail of a credited top-up (invoice attached)';
CREATE TRIGGER notify_topup_paid AFTER UPDATE OF status ON paas.topups
	FOR EACH ROW WHEN (NEW.status = 'PAID' AND OLD.status IS DISTINCT FROM 'PAID')
	EXECUTE FUNCTION paas.notify_topup_paid();

-- A refund taken from the wallet (told to the user); a reversal the wallet
-- could not cover (told to the admins).
CREATE FUNCTION paas.notify_reversals() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, vars)
	SELECT 'refund_issued', 'refund:' || r.id, r.user_id, jsonb_build_object('reversalId', r.id)
	  FROM new_reversals r WHERE r.status = 'SUCCESS' AND r.kind = 'REFUND' AND r.created_at >= now()
	ON CONFLICT (dedup_key) DO NOTHING;
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, recipient, vars)
	SELECT 'admin_reversal_blocked', format('reversal_blocked:%s:%s', r.id, coalesce(a.user_id::text, a.recipient)),
		   a.user_id, a.recipient, jsonb_build_object('reversalId', r.id)
	  FROM new_reversals r CROSS JOIN paas.notify_admins() a
	 WHERE r.status = 'BLOCKED' AND r.created_at >= now()
	ON CONFLICT (dedup_key) DO NOTHING;
	PERFORM paas.mail_wake() WHERE EXISTS (SELECT 1 FROM new_reversals);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_reversals() IS 'trigger: refund mails, blocked-reversal mails to admins';
CREATE TRIGGER notify_reversals AFTER INSERT ON paas.topup_reversals
	REFERENCING NEW TABLE AS new_reversals
	FOR EACH STATEMENT EXECUTE FUNCTION paas.notify_reversals();

-- A paid period (a sale, a renewal of the run, a manual renewal, a
-- revival); free periods tell nothing.  One statement for the whole batch
-- of a renewal run.
CREATE FUNCTION paas.notify_charges() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, vars)
	SELECT CASE WHEN c.kind = 'purchase' THEN 'subscription_charged' ELSE 'subscription_renewed' END,
		   'charge:' || c.subscription_id || ':' || c.period_no, s.user_id,
		   jsonb_build_object('subscriptionId', c.subscription_id, 'period', c.period_no)
	  FROM new_charges c JOIN paas.subscriptions s ON s.id = c.subscription_id
	 WHERE c.amount > 0 AND c.created_at >= now()
	ON CONFLICT (dedup_key) DO NOTHING;
	IF FOUND THEN
		PERFORM paas.mail_wake();
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_charges() IS 'trigger: the mails of paid subscription periods';
CREATE TRIGGER notify_charges AFTER INSERT ON paas.subscription_charges
	REFERENCING NEW TABLE AS new_charges
	FOR EACH STATEMENT EXECUTE FUNCTION paas.notify_charges();

-- Status changes the owner must know: into GRACE (the renewal failed),
-- into SUSPENDED, a cancellation.
CREATE FUNCTION paas.notify_subscription_events() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, vars)
	SELECT x.kind, 'subscription_event:' || x.id, s.user_id,
		   jsonb_build_object('subscriptionId', x.subscription_id, 'eventId', x.id)
	  FROM (SELECT e.*, CASE WHEN e.to_status = 'GRACE' THEN 'renewal_failed'
							 WHEN e.to_status = 'SUSPENDED' THEN 'subscription_suspended'
							 ELSE 'subscription_cancelled' END AS kind
			  FROM new_events e
			 WHERE e.to_status IS DISTINCT FROM e.from_status AND e.created_at >= now()
			   AND (e.to_status IN ('GRACE', 'SUSPENDED') OR e.event = 'cancel')) x
	  JOIN paas.subscriptions s ON s.id = x.subscription_id
	ON CONFLICT (dedup_key) DO NOTHING;
	IF FOUND THEN
		PERFORM paas.mail_wake();
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_subscription_events() IS
	'trigger: mails for renewals that failed (grace), suspensions and cancellations';
CREATE TRIGGER notify_subscription_events AFTER INSERT ON paas.subscription_events
	REFERENCING NEW TABLE AS new_events
	FOR EACH STATEMENT EXECUTE FUNCTION paas.notify_subscription_events();

-- Admins: a node went NOT_READY or INACTIVE.
CREATE FUNCTION paas.notify_node_transitions() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, recipient, vars)
	SELECT 'admin_node_down', format('node_down:%s:%s', t.id, coalesce(a.user_id::text, a.recipient)),
		   a.user_id, a.recipient,
		   jsonb_build_object('nodeName', t.node_name, 'status', t.to_status, 'reason', t.reason,
							  'at', to_jsonb(t.at))
	  FROM new_transitions t CROSS JOIN paas.notify_admins() a
	 WHERE t.to_status IN ('NOT_READY', 'INACTIVE') AND t.from_status IS DISTINCT FROM t.to_status
	   AND t.at >= now()
	ON CONFLICT (dedup_key) DO NOTHING;
	IF FOUND THEN
		PERFORM paas.mail_wake();
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_node_transitions() IS 'trigger: admin mails for nodes going NOT_READY or INACTIVE';
CREATE TRIGGER notify_node_transitions AFTER INSERT ON paas.node_transitions
	REFERENCING NEW TABLE AS new_transitions
	FOR EACH STATEMENT EXECUTE FUNCTION paas.notify_node_transitions();

-- Admins: a job failed (at most one mail per job and hour).
CREATE FUNCTION paas.notify_job_runs() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, recipient, vars)
	SELECT 'admin_job_failed',
		   format('job_failed:%s:%s:%s', r.job, to_char(r.started_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24'),
				  coalesce(a.user_id::text, a.recipient)),
		   a.user_id, a.recipient,
		   jsonb_build_object('job', r.job, 'error', left(r.error, 2000), 'at', to_jsonb(r.started_at))
	  FROM new_runs r CROSS JOIN paas.notify_admins() a
	 WHERE NOT r.ok AND r.started_at >= now()
	ON CONFLICT (dedup_key) DO NOTHING;
	IF FOUND THEN
		PERFORM paas.mail_wake();
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_job_runs() IS 'trigger: admin mails for failing jobs, one per job and hour';
CREATE TRIGGER notify_job_runs AFTER INSERT ON paas.job_run
	REFERENCING NEW TABLE AS new_runs
	FOR EACH STATEMENT EXECUTE FUNCTION paas.notify_job_runs();

-- Hosted instances (sql/parts/70_instances.sql): RUNNING for the first time
-- (its URL) and FAILED.  The trigger is created only when that table exists
-- at install time; the function reads the row as JSON so it does not
-- depend on the table's other columns.
CREATE FUNCTION paas.notify_instances() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n jsonb := to_jsonb(NEW);
	o jsonb := to_jsonb(OLD);
BEGIN
	IF n ->> 'status' = 'RUNNING' AND coalesce((o ->> 'ever_running')::boolean, false) = false THEN
		PERFORM paas.notify('instance_ready', 'instance_ready:' || (n ->> 'id'), (n ->> 'user_id')::uuid,
							jsonb_build_object('instanceId', n ->> 'id'));
	ELSIF n ->> 'status' = 'FAILED' THEN
		PERFORM paas.notify('instance_failed',
			format('instance_failed:%s:%s', n ->> 'id', coalesce(n ->> 'status_changed_at', now()::text)),
			(n ->> 'user_id')::uuid,
			jsonb_build_object('instanceId', n ->> 'id',
							   'reason', coalesce(n ->> 'last_error', n ->> 'status_message')));
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.notify_instances() IS 'trigger: instance ready (first RUNNING) and failed mails';
DO $instances$
BEGIN
	IF to_regclass('paas.instances') IS NOT NULL THEN
		CREATE TRIGGER notify_instances AFTER UPDATE OF status ON paas.instances
			FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ('RUNNING', 'FAILED'))
			EXECUTE FUNCTION paas.notify_instances();
	END IF;
END
$instances$;

------------------------------------------------------------------------------
-- jobs
------------------------------------------------------------------------------

-- Reminders of renewals due within paas.mail_reminder_days (default 3), one
-- per subscription and period, for users who keep reminders on.
CREATE FUNCTION paas.job_notify_renewal_reminders() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	days int := paas.notify_setting('mail_reminder_days', '3')::int;
	n bigint;
BEGIN
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, vars)
	SELECT 'renewal_reminder', format('renewal_reminder:%s:%s', s.id, s.period_no), s.user_id,
		   jsonb_build_object('subscriptionId', s.id, 'period', s.period_no)
	  FROM paas.subscriptions s
	  LEFT JOIN paas.notification_preferences p ON p.user_id = s.user_id
	 WHERE s.status = 'ACTIVE' AND s.price > 0
	   AND s.current_period_end > now() AND s.current_period_end <= now() + make_interval(days => days)
	   AND coalesce(p.reminders, true)
	ORDER BY s.current_period_end, s.id
	ON CONFLICT (dedup_key) DO NOTHING;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM paas.mail_wake();
	END IF;
	RETURN jsonb_build_object('queued', n, 'days', days);
END
$$;
COMMENT ON FUNCTION paas.job_notify_renewal_reminders() IS
	'queues a reminder per subscription and period renewing within paas.mail_reminder_days';

-- Sent and suppressed mails are kept 90 days, failed ones a year; tokens a
-- week after they expired.
CREATE FUNCTION paas.job_prune_notifications() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n bigint;
	t bigint;
BEGIN
	DELETE FROM paas.notification_outbox x
	 WHERE x.id IN (SELECT y.id FROM paas.notification_outbox y
					 WHERE (y.status IN ('SENT', 'SUPPRESSED') AND y.updated_at < now() - interval '90 days')
						OR (y.status = 'FAILED' AND y.updated_at < now() - interval '1 year')
					 LIMIT 50000)
	   AND NOT EXISTS (SELECT 1 FROM paas.notification_outbox z WHERE z.resent_from = x.id);
	GET DIAGNOSTICS n = ROW_COUNT;
	DELETE FROM paas.auth_tokens WHERE expires_at < now() - interval '7 days';
	GET DIAGNOSTICS t = ROW_COUNT;
	RETURN jsonb_build_object('mails', n, 'tokens', t);
END
$$;
COMMENT ON FUNCTION paas.job_prune_notifications() IS
	'deletes sent mails after 90 days, failed ones after a year, tokens a week after expiry';

INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('notify_renewal_reminders', 'paas.job_notify_renewal_reminders', '10 minutes',
	 'queues renewal reminders (paas.mail_reminder_days ahead)'),
	('prune_notifications', 'paas.job_prune_notifications', '1 hour',
	 'deletes old mails of the outbox and expired tokens');

------------------------------------------------------------------------------
-- api: registration, verification, password reset (the caller's account)
------------------------------------------------------------------------------

-- POST /auth/register for an address that has an account
-- (api.auth_register calls this instead of refusing): the same work and
-- the same answer as a registration -- a user and a session that belong to
-- no account (its tokens are refused at first use) -- and a mail to the
-- owner of the address (at most one per 10 minutes), so registration does
-- not tell who has an account.
CREATE FUNCTION paas.register_existing(req jsonb, ctx jsonb) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	owner_id uuid;
	decoy paas.users;
	s paas.sessions;
BEGIN
	SELECT id INTO owner_id FROM paas.users
	 WHERE lower(email) = lower(req ->> 'email') AND deleted_at IS NULL;
	decoy.password_hash := paas.hash_password(req ->> 'password');	-- the same bcrypt work
	PERFORM paas.notify('register_existing',
		format('register_existing:%s:%s', owner_id, floor(extract(epoch FROM now()) / 600)), owner_id);
	decoy.id := gen_random_uuid();
	decoy.email := req ->> 'email';
	decoy.name := btrim(req ->> 'name');
	decoy.role := 'USER';
	decoy.is_active := true;
	decoy.created_at := now();
	decoy.updated_at := now();
	s.id := gen_random_uuid();
	RETURN paas.session_reply(decoy, s, encode(public.gen_random_bytes(32), 'hex'));
END
$$;
COMMENT ON FUNCTION paas.register_existing(jsonb, jsonb) IS
	'register with a taken address: a registration-shaped answer for no account, and a mail to the owner';

CREATE FUNCTION paas.mark_verified(uid uuid, mail text) RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.notification_preferences (user_id, verified_email, verified_at)
		VALUES (uid, mail, now())
		ON CONFLICT (user_id) DO UPDATE
			SET verified_email = EXCLUDED.verified_email, verified_at = EXCLUDED.verified_at,
				updated_at = now();
	END;
COMMENT ON FUNCTION paas.mark_verified(uuid, text) IS 'records that a user''s address is verified';

CREATE FUNCTION api.auth_forgot_password(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	u paas.users;
	tid uuid;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_email(errs, req, 'email', true);
	PERFORM paas.raise_if_invalid(errs);
	SELECT * INTO u FROM paas.users
	 WHERE lower(email) = lower(req ->> 'email') AND deleted_at IS NULL AND is_active
	 FOR NO KEY UPDATE;
	-- At most one link a minute and five an hour per account; further
	-- requests answer the same and mail nothing.
	IF u.id IS NOT NULL
	   AND NOT EXISTS (SELECT 1 FROM paas.auth_tokens t
						WHERE t.user_id = u.id AND t.purpose = 'reset' AND t.created_at > now() - interval '1 minute')
	   AND (SELECT count(*) FROM paas.auth_tokens t
			 WHERE t.user_id = u.id AND t.purpose = 'reset' AND t.created_at > now() - interval '1 hour') < 5 THEN
		tid := paas.auth_token_issue(u.id, 'reset', u.email, paas.auth_token_ttl('reset'));
		PERFORM paas.notify('password_reset', 'reset:' || tid, u.id, jsonb_build_object('tokenId', tid), u.email);
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION api.auth_forgot_password(jsonb, jsonb) IS
	'POST /auth/forgot-password {email}: mails a reset link when the account exists; the same answer either way';

CREATE FUNCTION paas.token_refused(field text, message text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	RAISE EXCEPTION '%', message
		USING ERRCODE = 'PT400', DETAIL = jsonb_build_array(jsonb_build_object('field', field, 'message', message))::text;
END
$$;
COMMENT ON FUNCTION paas.token_refused(text, text) IS 'PT400 for a link token that is wrong, used or expired';

CREATE FUNCTION api.auth_reset_password(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	t paas.auth_tokens;
	u paas.users;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'token', true, 1, 200);
	errs := paas.check_password(errs, req, 'newPassword');
	errs := paas.check_confirm(errs, req, 'newPassword', 'confirmNewPassword');
	PERFORM paas.raise_if_invalid(errs);
	SELECT * INTO t FROM paas.auth_tokens
	 WHERE id = paas.notify_verify('reset', req ->> 'token') AND purpose = 'reset'
	 FOR UPDATE;
	IF t.id IS NOT NULL THEN
		SELECT * INTO u FROM paas.users WHERE id = t.user_id AND deleted_at IS NULL FOR UPDATE;
	END IF;
	IF t.id IS NULL OR t.used_at IS NOT NULL OR t.expires_at <= now()
	   OR u.id IS NULL OR NOT u.is_active OR lower(u.email) <> lower(t.email) THEN
		PERFORM paas.token_refused('token', 'Invalid or expired reset token');
	END IF;
	UPDATE paas.users
	   SET password_hash = paas.hash_password(req ->> 'newPassword'),
		   password_changed_at = now(), updated_at = now()
	 WHERE id = u.id;
	UPDATE paas.auth_tokens SET used_at = now()
	 WHERE user_id = u.id AND purpose = 'reset' AND used_at IS NULL;
	PERFORM paas.revoke_sessions(u.id, 'password reset');
	-- the link reached the address: it is the owner's
	PERFORM paas.mark_verified(u.id, u.email);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION api.auth_reset_password(jsonb, jsonb) IS
	'POST /auth/reset-password {token, newPassword, confirmNewPassword}: single-use token, every session revoked';

CREATE FUNCTION api.auth_verify_email(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	t paas.auth_tokens;
	u paas.users;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_text('[]', req, 'token', true, 1, 200));
	SELECT * INTO t FROM paas.auth_tokens
	 WHERE id = paas.notify_verify('verify', req ->> 'token') AND purpose = 'verify'
	 FOR UPDATE;
	IF t.id IS NOT NULL THEN
		SELECT * INTO u FROM paas.users WHERE id = t.user_id AND deleted_at IS NULL;
	END IF;
	IF t.id IS NULL OR u.id IS NULL OR lower(u.email) <> lower(t.email) THEN
		PERFORM paas.token_refused('token', 'Invalid or expired verification token');
	END IF;
	IF t.used_at IS NOT NULL OR t.expires_at <= now() THEN
		-- a second click on the link that verified the address answers the same
		IF paas.email_verified(u) THEN
			RETURN jsonb_build_object('verified', true, 'email', u.email);
		END IF;
		PERFORM paas.token_refused('token', 'Invalid or expired verification token');
	END IF;
	UPDATE paas.auth_tokens SET used_at = now() WHERE id = t.id;
	PERFORM paas.mark_verified(u.id, u.email);
	RETURN jsonb_build_object('verified', true, 'email', u.email);
END
$$;
COMMENT ON FUNCTION api.auth_verify_email(jsonb, jsonb) IS
	'POST /auth/verify-email {token}: verifies the address the link was mailed to';

CREATE FUNCTION api.auth_resend_verification(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	tid uuid;
	wait int;
BEGIN
	IF paas.email_verified(u) THEN
		RETURN jsonb_build_object('email', u.email, 'verified', true, 'sent', false);
	END IF;
	SELECT ceil(60 - extract(epoch FROM now() - max(t.created_at)))::int INTO wait
	  FROM paas.auth_tokens t
	 WHERE t.user_id = u.id AND t.purpose = 'verify' AND t.created_at > now() - interval '1 minute';
	IF wait IS NOT NULL THEN
		RAISE EXCEPTION 'A verification e-mail was sent a moment ago, please try again later'
			USING ERRCODE = 'PT429', DETAIL = greatest(wait, 1)::text;
	END IF;
	tid := paas.auth_token_issue(u.id, 'verify', u.email, paas.auth_token_ttl('verify'));
	PERFORM paas.notify('verify_email', 'verify:' || tid, u.id, jsonb_build_object('tokenId', tid), u.email);
	RETURN jsonb_build_object('email', u.email, 'verified', false, 'sent', true);
END
$$;
COMMENT ON FUNCTION api.auth_resend_verification(jsonb, jsonb) IS
	'POST /auth/resend-verification: a new verification link (one a minute; PT429 sooner)';

------------------------------------------------------------------------------
-- api: preferences, unsubscribe
------------------------------------------------------------------------------

CREATE FUNCTION paas.preferences_json(u paas.users) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT jsonb_build_object(
				'email', u.email, 'emailVerified', paas.email_verified(u),
				'locale', coalesce(p.locale, paas.notify_default_locale()),
				'reminders', coalesce(p.reminders, true),
				'transactional', true)
			  FROM (SELECT 1) one
			  LEFT JOIN paas.notification_preferences p ON p.user_id = u.id);
COMMENT ON FUNCTION paas.preferences_json(paas.users) IS
	'{email, emailVerified, locale, reminders, transactional} of a user';

CREATE FUNCTION api.auth_notifications(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
BEGIN
	RETURN paas.preferences_json(u);
END
$$;
COMMENT ON FUNCTION api.auth_notifications(jsonb, jsonb) IS
	'GET /auth/notifications: mail locale, reminders on or off, whether the address is verified';

CREATE FUNCTION api.auth_notifications_update(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
BEGIN
	req := paas.require_object(req);
	errs := paas.check_enum(errs, req, 'locale', false, ARRAY['id', 'en']);
	errs := paas.check_bool(errs, req, 'reminders', false);
	IF req ? 'transactional' AND req -> 'transactional' IS DISTINCT FROM 'true' THEN
		errs := paas.add_err(errs, 'transactional', 'transactional mails cannot be turned off');
	END IF;
	IF NOT (req ?| ARRAY['locale', 'reminders']) AND jsonb_array_length(errs) = 0 THEN
		errs := paas.add_err(errs, '', 'at least one of locale, reminders is required');
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	INSERT INTO paas.notification_preferences AS p (user_id, locale, reminders)
	VALUES (u.id, req ->> 'locale', coalesce((req ->> 'reminders')::boolean, true))
	ON CONFLICT (user_id) DO UPDATE
		SET locale = coalesce(req ->> 'locale', p.locale),
			reminders = coalesce((req ->> 'reminders')::boolean, p.reminders),
			updated_at = now();
	RETURN paas.preferences_json(u);
END
$$;
COMMENT ON FUNCTION api.auth_notifications_update(jsonb, jsonb) IS
	'PUT /auth/notifications {locale?, reminders?}: transactional mails always go';

-- The user of a signed unsubscribe link; PT400 for anything else.
CREATE FUNCTION paas.unsubscribe_user(token text) RETURNS paas.users
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users;
BEGIN
	SELECT * INTO u FROM paas.users
	 WHERE id = paas.notify_verify('unsubscribe', token) AND deleted_at IS NULL;
	IF u.id IS NULL THEN
		PERFORM paas.token_refused('token', 'Invalid unsubscribe link');
	END IF;
	RETURN u;
END
$$;
COMMENT ON FUNCTION paas.unsubscribe_user(text) IS 'the account of a signed unsubscribe token; PT400 otherwise';

-- The address with most of its local part hidden (a***@example.com).
CREATE FUNCTION paas.mask_email(mail text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN left(mail, 1) || '***' || substring(mail FROM '@.*$');
COMMENT ON FUNCTION paas.mask_email(text) IS 'an address with its local part hidden';

-- RFC 8058 one-click: the mail client POSTs "List-Unsubscribe=One-Click" to
-- the List-Unsubscribe URL (token in the query); no login, nothing else
-- needed.
CREATE FUNCTION api.notifications_unsubscribe(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_text('[]', req, 'token', true, 1, 200));
	u := paas.unsubscribe_user(req ->> 'token');
	INSERT INTO paas.notification_preferences AS p (user_id, reminders)
	VALUES (u.id, false)
	ON CONFLICT (user_id) DO UPDATE SET reminders = false, updated_at = now();
	RETURN jsonb_build_object('email', paas.mask_email(u.email), 'reminders', false, 'transactional', true);
END
$$;
COMMENT ON FUNCTION api.notifications_unsubscribe(jsonb, jsonb) IS
	'POST /notifications/unsubscribe?token= (RFC 8058 one-click): turns reminders off';

-- What the link would do, for a page that asks before it does it (a GET
-- never unsubscribes: link scanners follow links).
CREATE FUNCTION api.notifications_unsubscribe_info(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_text('[]', req, 'token', true, 1, 200));
	u := paas.unsubscribe_user(req ->> 'token');
	RETURN jsonb_build_object('email', paas.mask_email(u.email),
		'reminders', coalesce((SELECT p.reminders FROM paas.notification_preferences p WHERE p.user_id = u.id), true),
		'transactional', true);
END
$$;
COMMENT ON FUNCTION api.notifications_unsubscribe_info(jsonb, jsonb) IS
	'GET /notifications/unsubscribe?token=: the masked address and whether reminders are on (changes nothing)';

------------------------------------------------------------------------------
-- api: administrators
------------------------------------------------------------------------------

CREATE FUNCTION paas.notification_json(o paas.notification_outbox) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'id', o.id, 'kind', o.kind,
		'category', (SELECT k.category FROM paas.notification_kinds k WHERE k.kind = o.kind),
		'userId', o.user_id,
		'recipient', coalesce(o.sent_to, o.recipient, (SELECT u.email FROM paas.users u WHERE u.id = o.user_id)),
		'status', o.status, 'attempts', o.attempts, 'lastError', o.last_error, 'lastReply', o.last_reply,
		'smtpCode', o.smtp_code, 'messageId', o.message_id, 'resentFrom', o.resent_from,
		'dueAt', CASE WHEN o.status IN ('PENDING', 'SENDING') THEN paas.iso(o.due_at) END,
		'createdAt', paas.iso(o.created_at), 'sentAt', paas.iso(o.sent_at),
		'updatedAt', paas.iso(o.updated_at));
COMMENT ON FUNCTION paas.notification_json(paas.notification_outbox) IS 'an outbox row as the admin API prints it';

CREATE FUNCTION api.admin_notifications(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	lim int;
	off int;
	total bigint;
	rows jsonb;
	search text;
	uid uuid;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'status', false, ARRAY['PENDING', 'SENDING', 'SENT', 'FAILED', 'SUPPRESSED']);
	errs := paas.check_text(errs, req, 'kind', false, 1, 63);
	errs := paas.check_text(errs, req, 'search', false, 1, 254);
	errs := paas.check_text(errs, req, 'userId', false, 1, 64);
	IF req ? 'userId' AND jsonb_typeof(req -> 'userId') = 'string' AND paas.to_uuid(req ->> 'userId') IS NULL THEN
		errs := paas.add_err(errs, 'userId', 'userId must be a valid id');
	END IF;
	IF req ? 'kind' AND jsonb_typeof(req -> 'kind') = 'string'
	   AND NOT EXISTS (SELECT 1 FROM paas.notification_kinds k WHERE k.kind = req ->> 'kind') THEN
		errs := paas.add_err(errs, 'kind', 'kind must be a kind of notification');
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 20);
	off := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	search := '%' || replace(replace(replace(req ->> 'search', '\', '\\'), '%', '\%'), '_', '\_') || '%';
	uid := paas.to_uuid(req ->> 'userId');

	SELECT count(*) INTO total
	  FROM paas.notification_outbox o
	  LEFT JOIN paas.users u ON u.id = o.user_id
	 WHERE (req ->> 'status' IS NULL OR o.status = req ->> 'status')
	   AND (req ->> 'kind' IS NULL OR o.kind = req ->> 'kind')
	   AND (uid IS NULL OR o.user_id = uid)
	   AND (req ->> 'search' IS NULL OR coalesce(o.sent_to, o.recipient, u.email) ILIKE search);
	SELECT coalesce(jsonb_agg(paas.notification_json(x) ORDER BY x.id DESC), '[]') INTO rows
	  FROM (SELECT o.* FROM paas.notification_outbox o
			  LEFT JOIN paas.users u ON u.id = o.user_id
			 WHERE (req ->> 'status' IS NULL OR o.status = req ->> 'status')
			   AND (req ->> 'kind' IS NULL OR o.kind = req ->> 'kind')
			   AND (uid IS NULL OR o.user_id = uid)
			   AND (req ->> 'search' IS NULL OR coalesce(o.sent_to, o.recipient, u.email) ILIKE search)
			 ORDER BY o.id DESC
			 LIMIT lim OFFSET off) x;
	RETURN jsonb_build_object('data', rows, 'pagination', paas.pagination(req, total, 20));
END
$$;
COMMENT ON FUNCTION api.admin_notifications(jsonb, jsonb) IS
	'GET /admin/notifications: mails with status, attempts and last error (status, kind, search, userId, page, limit)';

CREATE FUNCTION api.admin_notification_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	o paas.notification_outbox;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO o FROM paas.notification_outbox WHERE id = CASE WHEN req ->> 'id' ~ '^[0-9]{1,18}$'
																 THEN (req ->> 'id')::bigint END;
	IF o.id IS NULL THEN
		RAISE EXCEPTION 'Notification not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.notification_json(o) || jsonb_build_object('deliveries',
		(SELECT coalesce(jsonb_agg(jsonb_build_object('attempt', d.attempt, 'at', paas.iso(d.at),
													  'outcome', d.outcome, 'smtpCode', d.smtp_code,
													  'reply', d.reply) ORDER BY d.id), '[]')
		   FROM paas.notification_deliveries d WHERE d.outbox_id = o.id));
END
$$;
COMMENT ON FUNCTION api.admin_notification_get(jsonb, jsonb) IS
	'GET /admin/notifications/:id: a mail and every SMTP attempt of it';

CREATE FUNCTION api.admin_notification_resend(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	o paas.notification_outbox;
	n paas.notification_outbox;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO o FROM paas.notification_outbox WHERE id = CASE WHEN req ->> 'id' ~ '^[0-9]{1,18}$'
																 THEN (req ->> 'id')::bigint END
	   FOR UPDATE;
	IF o.id IS NULL THEN
		RAISE EXCEPTION 'Notification not found' USING ERRCODE = 'PT404';
	END IF;
	IF o.status IN ('PENDING', 'SENDING') THEN
		RAISE EXCEPTION 'The notification is still queued' USING ERRCODE = 'PT409';
	END IF;
	-- a new mail (its own Message-ID: a receiver that dropped the first as a
	-- duplicate takes this one), the original kept as it was
	INSERT INTO paas.notification_outbox (kind, dedup_key, user_id, recipient, vars, resent_from)
	VALUES (o.kind, format('resend:%s:%s', o.id,
						   (SELECT count(*) FROM paas.notification_outbox x WHERE x.resent_from = o.id) + 1),
			o.user_id, o.recipient, o.vars, o.id)
	RETURNING * INTO n;
	PERFORM paas.mail_wake();
	RETURN paas.notification_json(n);
END
$$;
COMMENT ON FUNCTION api.admin_notification_resend(jsonb, jsonb) IS
	'POST /admin/notifications/:id/resend: queues the mail again as a new one; PT409 while it is still queued';

------------------------------------------------------------------------------
-- the install's templates (builtin): Indonesian and English for every kind
------------------------------------------------------------------------------

-- A call-to-action link as the HTML templates draw it.
CREATE FUNCTION paas.notify_button(url_var text, label text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN '<p style="margin:24px 0"><a href="{{' || url_var || '}}" style="display:inline-block;padding:10px 18px;'
		   || 'background:#2563eb;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:bold">'
		   || label || '</a></p>';
COMMENT ON FUNCTION paas.notify_button(text, text) IS 'the HTML of a button linking to a URL variable (seed templates)';

INSERT INTO paas.notification_templates (kind, locale, subject, body_text, body_html, builtin) VALUES
-- welcome
('welcome', 'id', 'Selamat datang, {{name}}',
$t$Halo {{name}},

Terima kasih telah mendaftar. Akun Anda untuk {{email}} sudah aktif.
{{#verifyUrl}}
Mohon verifikasi alamat e-mail Anda (tautan berlaku {{verifyHours}} jam):
{{verifyUrl}}

Sebelum terverifikasi Anda sudah bisa masuk, tetapi belum bisa mengisi saldo.
{{/verifyUrl}}
Mulai di {{appUrl}}$t$,
'<h1 style="font-size:20px">Selamat datang, {{name}}</h1><p>Terima kasih telah mendaftar. Akun Anda untuk <b>{{email}}</b> sudah aktif.</p>{{#verifyUrl}}<p>Mohon verifikasi alamat e-mail Anda. Tautan berlaku {{verifyHours}} jam.</p>'
	|| paas.notify_button('verifyUrl', 'Verifikasi e-mail') || '<p style="font-size:13px;color:#6b7280">Sebelum terverifikasi Anda sudah bisa masuk, tetapi belum bisa mengisi saldo.</p>{{/verifyUrl}}<p><a href="{{appUrl}}">{{appUrl}}</a></p>', true),
('welcome', 'en', 'Welcome, {{name}}',
$t$Hello {{name}},

Thank you for signing up. Your account for {{email}} is ready.
{{#verifyUrl}}
Please verify your e-mail address (the link is valid for {{verifyHours}} hours):
{{verifyUrl}}

Until it is verified you can log in, but not top up your balance.
{{/verifyUrl}}
Get started at {{appUrl}}$t$,
'<h1 style="font-size:20px">Welcome, {{name}}</h1><p>Thank you for signing up. Your account for <b>{{email}}</b> is ready.</p>{{#verifyUrl}}<p>Please verify your e-mail address. The link is valid for {{verifyHours}} hours.</p>'
	|| paas.notify_button('verifyUrl', 'Verify my e-mail') || '<p style="font-size:13px;color:#6b7280">Until it is verified you can log in, but not top up your balance.</p>{{/verifyUrl}}<p><a href="{{appUrl}}">{{appUrl}}</a></p>', true),
-- verify_email
('verify_email', 'id', 'Verifikasi alamat e-mail Anda',
$t$Halo {{name}},

Klik tautan berikut untuk memverifikasi {{email}} (berlaku {{verifyHours}} jam):
{{verifyUrl}}

Jika Anda tidak meminta ini, abaikan e-mail ini.$t$,
'<p>Halo {{name}},</p><p>Klik tombol berikut untuk memverifikasi <b>{{email}}</b>. Tautan berlaku {{verifyHours}} jam.</p>'
	|| paas.notify_button('verifyUrl', 'Verifikasi e-mail') || '<p style="font-size:13px;color:#6b7280">Jika Anda tidak meminta ini, abaikan e-mail ini.</p>', true),
('verify_email', 'en', 'Verify your e-mail address',
$t$Hello {{name}},

Follow this link to verify {{email}} (valid for {{verifyHours}} hours):
{{verifyUrl}}

If you did not ask for this, ignore this e-mail.$t$,
'<p>Hello {{name}},</p><p>Use the button below to verify <b>{{email}}</b>. The link is valid for {{verifyHours}} hours.</p>'
	|| paas.notify_button('verifyUrl', 'Verify my e-mail') || '<p style="font-size:13px;color:#6b7280">If you did not ask for this, ignore this e-mail.</p>', true),
-- register_existing
('register_existing', 'id', 'Ada yang mencoba mendaftar dengan e-mail Anda',
$t$Halo {{name}},

Seseorang mencoba membuat akun baru dengan {{email}}, tetapi alamat ini sudah memiliki akun.

Jika itu Anda, silakan masuk: {{loginUrl}}
Lupa kata sandi? Atur ulang di: {{resetUrl}}

Jika bukan Anda, abaikan e-mail ini; akun Anda tidak berubah.$t$,
'<p>Halo {{name}},</p><p>Seseorang mencoba membuat akun baru dengan <b>{{email}}</b>, tetapi alamat ini sudah memiliki akun.</p><p>Jika itu Anda, silakan masuk.</p>'
	|| paas.notify_button('loginUrl', 'Masuk') || '<p>Lupa kata sandi? <a href="{{resetUrl}}">Atur ulang kata sandi</a>.</p><p style="font-size:13px;color:#6b7280">Jika bukan Anda, abaikan e-mail ini; akun Anda tidak berubah.</p>', true),
('register_existing', 'en', 'Someone tried to sign up with your e-mail',
$t$Hello {{name}},

Someone tried to create a new account with {{email}}, but this address already has an account.

If that was you, log in: {{loginUrl}}
Forgot your password? Reset it: {{resetUrl}}

If it was not you, ignore this e-mail; your account has not changed.$t$,
'<p>Hello {{name}},</p><p>Someone tried to create a new account with <b>{{email}}</b>, but this address already has an account.</p><p>If that was you, log in.</p>'
	|| paas.notify_button('loginUrl', 'Log in') || '<p>Forgot your password? <a href="{{resetUrl}}">Reset it</a>.</p><p style="font-size:13px;color:#6b7280">If it was not you, ignore this e-mail; your account has not changed.</p>', true),
-- password_reset
('password_reset', 'id', 'Atur ulang kata sandi Anda',
$t$Halo {{name}},

Kami menerima permintaan untuk mengatur ulang kata sandi akun {{email}}.
Tautan ini berlaku {{resetMinutes}} menit dan hanya bisa dipakai sekali:
{{resetUrl}}

Setelah kata sandi diganti, semua sesi Anda akan keluar.
Jika Anda tidak meminta ini, abaikan e-mail ini; kata sandi Anda tidak berubah.$t$,
'<p>Halo {{name}},</p><p>Kami menerima permintaan untuk mengatur ulang kata sandi akun <b>{{email}}</b>. Tautan ini berlaku {{resetMinutes}} menit dan hanya bisa dipakai sekali.</p>'
	|| paas.notify_button('resetUrl', 'Atur ulang kata sandi') || '<p>Setelah kata sandi diganti, semua sesi Anda akan keluar.</p><p style="font-size:13px;color:#6b7280">Jika Anda tidak meminta ini, abaikan e-mail ini; kata sandi Anda tidak berubah.</p>', true),
('password_reset', 'en', 'Reset your password',
$t$Hello {{name}},

We received a request to reset the password of {{email}}.
This link is valid for {{resetMinutes}} minutes and works once:
{{resetUrl}}

Once the password is changed, every session of yours is signed out.
If you did not ask for this, ignore this e-mail; your password has not changed.$t$,
'<p>Hello {{name}},</p><p>We received a request to reset the password of <b>{{email}}</b>. This link is valid for {{resetMinutes}} minutes and works once.</p>'
	|| paas.notify_button('resetUrl', 'Reset my password') || '<p>Once the password is changed, every session of yours is signed out.</p><p style="font-size:13px;color:#6b7280">If you did not ask for this, ignore this e-mail; your password has not changed.</p>', true),
-- password_changed
('password_changed', 'id', 'Kata sandi Anda telah diganti',
$t$Halo {{name}},

Kata sandi akun {{email}} diganti pada {{changedAt}}. Sesi lain telah dikeluarkan.

Jika bukan Anda yang menggantinya, atur ulang kata sandi sekarang: {{resetUrl}}$t$,
'<p>Halo {{name}},</p><p>Kata sandi akun <b>{{email}}</b> diganti pada {{changedAt}}. Sesi lain telah dikeluarkan.</p><p>Jika bukan Anda yang menggantinya, atur ulang kata sandi sekarang.</p>'
	|| paas.notify_button('resetUrl', 'Atur ulang kata sandi'), true),
('password_changed', 'en', 'Your password was changed',
$t$Hello {{name}},

The password of {{email}} was changed on {{changedAt}}. Other sessions were signed out.

If you did not change it, reset your password now: {{resetUrl}}$t$,
'<p>Hello {{name}},</p><p>The password of <b>{{email}}</b> was changed on {{changedAt}}. Other sessions were signed out.</p><p>If you did not change it, reset your password now.</p>'
	|| paas.notify_button('resetUrl', 'Reset my password'), true),
-- topup_paid
('topup_paid', 'id', 'Isi saldo {{amount}} berhasil',
$t$Halo {{name}},

Pembayaran isi saldo Anda sebesar {{amount}} telah diterima pada {{paidAt}}.
{{#balance}}Saldo Anda sekarang {{balance}}.
{{/balance}}{{#invoiceNumber}}Faktur {{invoiceNumber}} terlampir (PDF).
{{/invoiceNumber}}
Riwayat tagihan: {{billingUrl}}$t$,
'<p>Halo {{name}},</p><p>Pembayaran isi saldo Anda sebesar <b>{{amount}}</b> telah diterima pada {{paidAt}}.</p>{{#balance}}<p>Saldo Anda sekarang <b>{{balance}}</b>.</p>{{/balance}}{{#invoiceNumber}}<p>Faktur <b>{{invoiceNumber}}</b> terlampir (PDF).</p>{{/invoiceNumber}}'
	|| paas.notify_button('billingUrl', 'Lihat tagihan'), true),
('topup_paid', 'en', 'Top-up of {{amount}} received',
$t$Hello {{name}},

Your top-up of {{amount}} was received on {{paidAt}}.
{{#balance}}Your balance is now {{balance}}.
{{/balance}}{{#invoiceNumber}}Invoice {{invoiceNumber}} is attached (PDF).
{{/invoiceNumber}}
Billing history: {{billingUrl}}$t$,
'<p>Hello {{name}},</p><p>Your top-up of <b>{{amount}}</b> was received on {{paidAt}}.</p>{{#balance}}<p>Your balance is now <b>{{balance}}</b>.</p>{{/balance}}{{#invoiceNumber}}<p>Invoice <b>{{invoiceNumber}}</b> is attached (PDF).</p>{{/invoiceNumber}}'
	|| paas.notify_button('billingUrl', 'View billing'), true),
-- subscription_charged
('subscription_charged', 'id', 'Langganan {{serviceName}} aktif',
$t$Halo {{name}},

Terima kasih! Langganan {{serviceName}} Anda aktif.
Kami memotong {{amount}} dari saldo untuk periode {{periodStart}} sampai {{periodEnd}}.
{{#invoiceNumber}}Faktur: {{invoiceNumber}}
{{/invoiceNumber}}
Kelola langganan: {{subscriptionUrl}}$t$,
'<p>Halo {{name}},</p><p>Terima kasih! Langganan <b>{{serviceName}}</b> Anda aktif.</p><p>Kami memotong <b>{{amount}}</b> dari saldo untuk periode {{periodStart}} sampai {{periodEnd}}.</p>{{#invoiceNumber}}<p>Faktur: {{invoiceNumber}}</p>{{/invoiceNumber}}'
	|| paas.notify_button('subscriptionUrl', 'Kelola langganan'), true),
('subscription_charged', 'en', 'Your {{serviceName}} subscription is active',
$t$Hello {{name}},

Thank you! Your {{serviceName}} subscription is active.
We charged {{amount}} to your balance for {{periodStart}} to {{periodEnd}}.
{{#invoiceNumber}}Invoice: {{invoiceNumber}}
{{/invoiceNumber}}
Manage it: {{subscriptionUrl}}$t$,
'<p>Hello {{name}},</p><p>Thank you! Your <b>{{serviceName}}</b> subscription is active.</p><p>We charged <b>{{amount}}</b> to your balance for {{periodStart}} to {{periodEnd}}.</p>{{#invoiceNumber}}<p>Invoice: {{invoiceNumber}}</p>{{/invoiceNumber}}'
	|| paas.notify_button('subscriptionUrl', 'Manage subscription'), true),
-- subscription_renewed
('subscription_renewed', 'id', 'Langganan {{serviceName}} diperpanjang',
$t$Halo {{name}},

Langganan {{serviceName}} Anda telah diperpanjang (periode {{period}}).
Kami memotong {{amount}} dari saldo untuk {{periodStart}} sampai {{periodEnd}}.
{{#invoiceNumber}}Faktur: {{invoiceNumber}}
{{/invoiceNumber}}
Kelola langganan: {{subscriptionUrl}}$t$,
'<p>Halo {{name}},</p><p>Langganan <b>{{serviceName}}</b> Anda telah diperpanjang (periode {{period}}).</p><p>Kami memotong <b>{{amount}}</b> dari saldo untuk {{periodStart}} sampai {{periodEnd}}.</p>{{#invoiceNumber}}<p>Faktur: {{invoiceNumber}}</p>{{/invoiceNumber}}'
	|| paas.notify_button('subscriptionUrl', 'Kelola langganan'), true),
('subscription_renewed', 'en', 'Your {{serviceName}} subscription was renewed',
$t$Hello {{name}},

Your {{serviceName}} subscription was renewed (period {{period}}).
We charged {{amount}} to your balance for {{periodStart}} to {{periodEnd}}.
{{#invoiceNumber}}Invoice: {{invoiceNumber}}
{{/invoiceNumber}}
Manage it: {{subscriptionUrl}}$t$,
'<p>Hello {{name}},</p><p>Your <b>{{serviceName}}</b> subscription was renewed (period {{period}}).</p><p>We charged <b>{{amount}}</b> to your balance for {{periodStart}} to {{periodEnd}}.</p>{{#invoiceNumber}}<p>Invoice: {{invoiceNumber}}</p>{{/invoiceNumber}}'
	|| paas.notify_button('subscriptionUrl', 'Manage subscription'), true),
-- renewal_failed
('renewal_failed', 'id', 'Perpanjangan {{serviceName}} gagal: saldo kurang',
$t$Halo {{name}},

Kami tidak dapat memperpanjang {{serviceName}}: biayanya {{amount}}, saldo Anda {{balance}} (kurang {{shortfall}}).
Layanan tetap berjalan selama masa tenggang sampai {{graceUntil}}. Isi saldo sebelum itu agar tidak ditangguhkan:
{{topupUrl}}$t$,
'<p>Halo {{name}},</p><p>Kami tidak dapat memperpanjang <b>{{serviceName}}</b>: biayanya <b>{{amount}}</b>, saldo Anda <b>{{balance}}</b> (kurang {{shortfall}}).</p><p>Layanan tetap berjalan selama masa tenggang sampai <b>{{graceUntil}}</b>. Isi saldo sebelum itu agar tidak ditangguhkan.</p>'
	|| paas.notify_button('topupUrl', 'Isi saldo'), true),
('renewal_failed', 'en', 'Renewal of {{serviceName}} failed: balance too low',
$t$Hello {{name}},

We could not renew {{serviceName}}: it costs {{amount}} and your balance is {{balance}} ({{shortfall}} short).
The service keeps running during a grace period until {{graceUntil}}. Top up before then to avoid a suspension:
{{topupUrl}}$t$,
'<p>Hello {{name}},</p><p>We could not renew <b>{{serviceName}}</b>: it costs <b>{{amount}}</b> and your balance is <b>{{balance}}</b> ({{shortfall}} short).</p><p>The service keeps running during a grace period until <b>{{graceUntil}}</b>. Top up before then to avoid a suspension.</p>'
	|| paas.notify_button('topupUrl', 'Top up'), true),
-- subscription_suspended
('subscription_suspended', 'id', 'Langganan {{serviceName}} ditangguhkan',
$t$Halo {{name}},

Langganan {{serviceName}} Anda ditangguhkan dan tidak lagi berjalan.
Perpanjang kapan saja ({{amount}} per bulan) untuk mengaktifkannya kembali:
{{subscriptionUrl}}$t$,
'<p>Halo {{name}},</p><p>Langganan <b>{{serviceName}}</b> Anda ditangguhkan dan tidak lagi berjalan.</p><p>Perpanjang kapan saja ({{amount}} per bulan) untuk mengaktifkannya kembali.</p>'
	|| paas.notify_button('subscriptionUrl', 'Perpanjang'), true),
('subscription_suspended', 'en', 'Your {{serviceName}} subscription is suspended',
$t$Hello {{name}},

Your {{serviceName}} subscription is suspended and no longer runs.
Renew it at any time ({{amount}} a month) to bring it back:
{{subscriptionUrl}}$t$,
'<p>Hello {{name}},</p><p>Your <b>{{serviceName}}</b> subscription is suspended and no longer runs.</p><p>Renew it at any time ({{amount}} a month) to bring it back.</p>'
	|| paas.notify_button('subscriptionUrl', 'Renew'), true),
-- subscription_cancelled
('subscription_cancelled', 'id', 'Langganan {{serviceName}} dibatalkan',
$t$Halo {{name}},

Langganan {{serviceName}} Anda dibatalkan. Layanan tetap bisa dipakai sampai {{accessUntil}} dan tidak akan ditagih lagi.
Berubah pikiran? Perpanjang di: {{subscriptionUrl}}$t$,
'<p>Halo {{name}},</p><p>Langganan <b>{{serviceName}}</b> Anda dibatalkan. Layanan tetap bisa dipakai sampai <b>{{accessUntil}}</b> dan tidak akan ditagih lagi.</p>'
	|| paas.notify_button('subscriptionUrl', 'Kelola langganan'), true),
('subscription_cancelled', 'en', 'Your {{serviceName}} subscription was cancelled',
$t$Hello {{name}},

Your {{serviceName}} subscription was cancelled. You can keep using it until {{accessUntil}}; it will not be charged again.
Changed your mind? Renew it: {{subscriptionUrl}}$t$,
'<p>Hello {{name}},</p><p>Your <b>{{serviceName}}</b> subscription was cancelled. You can keep using it until <b>{{accessUntil}}</b>; it will not be charged again.</p>'
	|| paas.notify_button('subscriptionUrl', 'Manage subscription'), true),
-- renewal_reminder
('renewal_reminder', 'id', '{{serviceName}} diperpanjang dalam {{days}} hari',
$t$Halo {{name}},

Langganan {{serviceName}} akan diperpanjang pada {{renewsAt}} seharga {{amount}}.
{{#covered}}Saldo Anda ({{balance}}) cukup; Anda tidak perlu melakukan apa pun.{{/covered}}{{^covered}}Saldo Anda ({{balance}}) kurang {{shortfall}}. Isi saldo sebelum {{renewsAt}}: {{topupUrl}}{{/covered}}

Kelola langganan: {{subscriptionUrl}}$t$,
'<p>Halo {{name}},</p><p>Langganan <b>{{serviceName}}</b> akan diperpanjang pada <b>{{renewsAt}}</b> seharga <b>{{amount}}</b>.</p>{{#covered}}<p>Saldo Anda ({{balance}}) cukup; Anda tidak perlu melakukan apa pun.</p>{{/covered}}{{^covered}}<p>Saldo Anda ({{balance}}) kurang <b>{{shortfall}}</b>. Isi saldo sebelum {{renewsAt}}.</p>'
	|| paas.notify_button('topupUrl', 'Isi saldo') || '{{/covered}}<p><a href="{{subscriptionUrl}}">Kelola langganan</a></p>', true),
('renewal_reminder', 'en', '{{serviceName}} renews on {{renewsAt}}',
$t$Hello {{name}},

Your {{serviceName}} subscription renews on {{renewsAt}} for {{amount}}.
{{#covered}}Your balance ({{balance}}) covers it; nothing to do.{{/covered}}{{^covered}}Your balance ({{balance}}) is {{shortfall}} short. Top up before {{renewsAt}}: {{topupUrl}}{{/covered}}

Manage it: {{subscriptionUrl}}$t$,
'<p>Hello {{name}},</p><p>Your <b>{{serviceName}}</b> subscription renews on <b>{{renewsAt}}</b> for <b>{{amount}}</b>.</p>{{#covered}}<p>Your balance ({{balance}}) covers it; nothing to do.</p>{{/covered}}{{^covered}}<p>Your balance ({{balance}}) is <b>{{shortfall}}</b> short. Top up before {{renewsAt}}.</p>'
	|| paas.notify_button('topupUrl', 'Top up') || '{{/covered}}<p><a href="{{subscriptionUrl}}">Manage subscription</a></p>', true),
-- instance_ready
('instance_ready', 'id', '{{serviceName}} Anda siap',
$t$Halo {{name}},

{{serviceName}} ({{instanceName}}) sudah berjalan dan bisa dibuka di:
{{instanceUrl}}$t$,
'<p>Halo {{name}},</p><p><b>{{serviceName}}</b> ({{instanceName}}) sudah berjalan.</p>'
	|| paas.notify_button('instanceUrl', 'Buka {{serviceName}}') || '<p><a href="{{instanceUrl}}">{{instanceUrl}}</a></p>', true),
('instance_ready', 'en', 'Your {{serviceName}} is ready',
$t$Hello {{name}},

{{serviceName}} ({{instanceName}}) is running and ready at:
{{instanceUrl}}$t$,
'<p>Hello {{name}},</p><p><b>{{serviceName}}</b> ({{instanceName}}) is running.</p>'
	|| paas.notify_button('instanceUrl', 'Open {{serviceName}}') || '<p><a href="{{instanceUrl}}">{{instanceUrl}}</a></p>', true),
-- instance_failed
('instance_failed', 'id', '{{serviceName}} Anda gagal berjalan',
$t$Halo {{name}},

{{serviceName}} ({{instanceName}}) gagal berjalan.{{#reason}}
Penyebab: {{reason}}{{/reason}}

Tim kami sudah diberi tahu. Anda bisa mencoba memulai ulang dari: {{subscriptionUrl}}$t$,
'<p>Halo {{name}},</p><p><b>{{serviceName}}</b> ({{instanceName}}) gagal berjalan.</p>{{#reason}}<p>Penyebab: {{reason}}</p>{{/reason}}<p>Tim kami sudah diberi tahu. Anda bisa mencoba memulai ulang.</p>'
	|| paas.notify_button('subscriptionUrl', 'Kelola langganan'), true),
('instance_failed', 'en', 'Your {{serviceName}} failed',
$t$Hello {{name}},

{{serviceName}} ({{instanceName}}) failed.{{#reason}}
Reason: {{reason}}{{/reason}}

Our team has been told. You can try a restart from: {{subscriptionUrl}}$t$,
'<p>Hello {{name}},</p><p><b>{{serviceName}}</b> ({{instanceName}}) failed.</p>{{#reason}}<p>Reason: {{reason}}</p>{{/reason}}<p>Our team has been told. You can try a restart.</p>'
	|| paas.notify_button('subscriptionUrl', 'Manage subscription'), true),
-- refund_issued
('refund_issued', 'id', 'Pengembalian dana {{amount}}',
$t$Halo {{name}},

Pengembalian dana sebesar {{amount}} untuk pesanan {{orderId}} telah diproses; jumlah ini dikurangkan dari saldo Anda.

Riwayat tagihan: {{billingUrl}}$t$,
'<p>Halo {{name}},</p><p>Pengembalian dana sebesar <b>{{amount}}</b> untuk pesanan {{orderId}} telah diproses; jumlah ini dikurangkan dari saldo Anda.</p>'
	|| paas.notify_button('billingUrl', 'Lihat tagihan'), true),
('refund_issued', 'en', 'Refund of {{amount}} issued',
$t$Hello {{name}},

A refund of {{amount}} for order {{orderId}} was issued; the amount was taken from your balance.

Billing history: {{billingUrl}}$t$,
'<p>Hello {{name}},</p><p>A refund of <b>{{amount}}</b> for order {{orderId}} was issued; the amount was taken from your balance.</p>'
	|| paas.notify_button('billingUrl', 'View billing'), true),
-- admin_node_down
('admin_node_down', 'id', '[paas] Node {{nodeName}} {{status}}',
$t$Node {{nodeName}} berstatus {{status}} sejak {{at}}.{{#reason}}
Alasan: {{reason}}{{/reason}}

Periksa: {{appUrl}}/admin/workers$t$,
'<p>Node <b>{{nodeName}}</b> berstatus <b>{{status}}</b> sejak {{at}}.</p>{{#reason}}<p>Alasan: {{reason}}</p>{{/reason}}<p><a href="{{appUrl}}/admin/workers">Periksa node</a></p>', true),
('admin_node_down', 'en', '[paas] Node {{nodeName}} is {{status}}',
$t$Node {{nodeName}} has been {{status}} since {{at}}.{{#reason}}
Reason: {{reason}}{{/reason}}

Check: {{appUrl}}/admin/workers$t$,
'<p>Node <b>{{nodeName}}</b> has been <b>{{status}}</b> since {{at}}.</p>{{#reason}}<p>Reason: {{reason}}</p>{{/reason}}<p><a href="{{appUrl}}/admin/workers">Check the nodes</a></p>', true),
-- admin_reversal_blocked
('admin_reversal_blocked', 'id', '[paas] {{reversalKind}} {{amount}} diblokir',
$t${{reversalKind}} sebesar {{amount}} untuk pesanan {{orderId}} ({{customerEmail}}) pada {{at}} tidak dapat ditarik: saldo pelanggan tidak cukup.
Status BLOCKED menunggu penyelesaian oleh admin.$t$,
'<p>{{reversalKind}} sebesar <b>{{amount}}</b> untuk pesanan {{orderId}} ({{customerEmail}}) pada {{at}} tidak dapat ditarik: saldo pelanggan tidak cukup.</p><p>Status BLOCKED menunggu penyelesaian oleh admin.</p>', true),
('admin_reversal_blocked', 'en', '[paas] {{reversalKind}} of {{amount}} blocked',
$t${{reversalKind}} of {{amount}} for order {{orderId}} ({{customerEmail}}) at {{at}} could not be taken: the customer's balance is short.
It is BLOCKED until an administrator settles it.$t$,
'<p>{{reversalKind}} of <b>{{amount}}</b> for order {{orderId}} ({{customerEmail}}) at {{at}} could not be taken: the customer''s balance is short.</p><p>It is BLOCKED until an administrator settles it.</p>', true),
-- admin_job_failed
('admin_job_failed', 'id', '[paas] Job {{job}} gagal',
$t$Job {{job}} gagal pada {{at}}:
{{error}}

(Paling banyak satu e-mail per job per jam.)$t$,
'<p>Job <b>{{job}}</b> gagal pada {{at}}:</p><pre style="white-space:pre-wrap">{{error}}</pre><p style="font-size:13px;color:#6b7280">Paling banyak satu e-mail per job per jam.</p>', true),
('admin_job_failed', 'en', '[paas] Job {{job}} failed',
$t$Job {{job}} failed at {{at}}:
{{error}}

(At most one e-mail per job and hour.)$t$,
'<p>Job <b>{{job}}</b> failed at {{at}}:</p><pre style="white-space:pre-wrap">{{error}}</pre><p style="font-size:13px;color:#6b7280">At most one e-mail per job and hour.</p>', true);

------------------------------------------------------------------------------
-- grants
------------------------------------------------------------------------------

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.auth_forgot_password(jsonb, jsonb)', 'api.auth_reset_password(jsonb, jsonb)',
		'api.auth_verify_email(jsonb, jsonb)', 'api.auth_resend_verification(jsonb, jsonb)',
		'api.auth_notifications(jsonb, jsonb)', 'api.auth_notifications_update(jsonb, jsonb)',
		'api.notifications_unsubscribe(jsonb, jsonb)', 'api.notifications_unsubscribe_info(jsonb, jsonb)',
		'api.admin_notifications(jsonb, jsonb)', 'api.admin_notification_get(jsonb, jsonb)',
		'api.admin_notification_resend(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;

-- ---- new: sql/parts/80_import.sql ----
-- paas -- import of the original system's database (be-minispod at ca783cf;
-- its schema: reference §6) for teams moving from it.  docs/migration.md
-- walks a DBA through it; docker/scripts/import-original.sh is the command.
--
-- Rules a reader must know.
--   * The source is a schema holding the original's tables under their
--     @@map names with quoted camelCase columns: the foreign tables that
--     paas.import_original_attach() makes over postgres_fdw (enum columns
--     read as text, so no local enum types are needed), or a schema a DBA
--     restored the original's dump into.  paas.import_original_columns() is
--     the shape both must have.
--   * api.import_original() runs in the caller's transaction: everything or
--     nothing is written.  A dry run does the same work in a subtransaction
--     it rolls back, and returns the same report.  Imports queue on an
--     advisory lock (classid 0x70616173 "paas", objid 80).
--   * Rows are brought in through the rules of the areas that own them:
--     services through api.services_create, nodes through
--     api.workers_create (the validation of POST /services and POST
--     /workers: an invalid quantity is a reported problem, never a half-made
--     row), money through paas.ledger_post.  Rows a rule refuses are skipped
--     and reported with the reason, with the rows that depend on them; the
--     others are imported.  Fix the source and run again: what was imported
--     is not imported twice (paas.import_map), what was skipped is tried
--     again.
--   * Money.  The original keeps numeric(10,2); paas keeps whole IDR.  An
--     amount with a fraction of a rupiah is a problem, never rounded.  Each
--     user's balance becomes one ledger entry (kind opening_balance) from the
--     platform account 'opening_balances' to the wallet, so the wallet equals
--     the original's user_balances.balance to the rupiah.  When the
--     original's balance transactions disagree with its balance the balance
--     wins and the difference is reported.  Top-ups, invoices and
--     subscriptions keep their history but move no money again: a PAID
--     top-up is an order already credited (a late or repeated Midtrans
--     notification of it changes nothing, a refund of it is taken back from
--     the wallet as for any paas order).
--   * Invoice numbers are kept; the counter of each imported month is moved
--     past the highest imported number, so paas's own numbering never meets
--     them.
--   * The original's unified transactions and balance transactions are kept
--     as they were in paas.import_history (ids, amounts, timestamps); their
--     owner reads them with api.billing_original_history().  Service
--     instances are kept in paas.import_instances for the hosted-instances
--     model to take over.

------------------------------------------------------------------------------
-- the platform account the opening balances come from
------------------------------------------------------------------------------

-- Install rows like the other platform accounts (40_ledger.sql): never
-- dumped, not verified until their balances are rebuilt after a restore.
-- Its fixed id is the first of the reserved range (10^12 + 100, slots
-- + 1 + slot), the same in a fresh install and after an upgrade, where the
-- wallets have long taken the ids after 68.  ON CONFLICT: an upgrade that
-- made it already (the 0.2.0 -> 0.3.0 script) keeps its rows.
INSERT INTO paas.ledger_accounts (id, kind, code, balance_verified) OVERRIDING SYSTEM VALUE
VALUES (1000000000100, 'platform', 'opening_balances', false)
ON CONFLICT DO NOTHING;
INSERT INTO paas.ledger_accounts (id, kind, parent_id, slot, balance_verified) OVERRIDING SYSTEM VALUE
SELECT 1000000000100 + 1 + s, 'platform_slot', 1000000000100, s, false FROM generate_series(0, 15) s
ON CONFLICT DO NOTHING;

------------------------------------------------------------------------------
-- tables
------------------------------------------------------------------------------

CREATE TABLE paas.import_runs (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source			text NOT NULL,
	options			jsonb NOT NULL,
	run_by			text NOT NULL DEFAULT session_user,
	started_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished_at		timestamptz,
	report			jsonb
);
COMMENT ON TABLE paas.import_runs IS
	'every committed import of the original system''s database, with its report (dry runs leave none)';

CREATE TABLE paas.import_map (
	source_table	text NOT NULL CHECK (source_table IN ('users', 'user_balances', 'service_catalog',
						'worker_nodes', 'topup_transactions', 'subscriptions', 'invoices', 'transactions',
						'balance_transactions', 'service_instances')),
	source_id		text NOT NULL,
	target_table	text NOT NULL,
	target_id		text,
	action			text NOT NULL CHECK (action IN ('imported', 'linked')),
	run_id			bigint NOT NULL REFERENCES paas.import_runs (id),
	PRIMARY KEY (source_table, source_id)
);
CREATE INDEX import_map_target_idx ON paas.import_map (target_table, target_id);
COMMENT ON TABLE paas.import_map IS
	'what each imported row of the original became in paas (target_id NULL: nothing to write, a zero balance); '
	'linked: an existing paas row took it; the primary key makes an import idempotent';

CREATE TABLE paas.import_history (
	source_table	text NOT NULL CHECK (source_table IN ('transactions', 'balance_transactions')),
	source_id		text NOT NULL,
	user_id			uuid NOT NULL REFERENCES paas.users (id),
	created_at		timestamptz NOT NULL,
	type			text NOT NULL,
	status			text,
	amount			numeric(14, 2) NOT NULL,
	currency		text NOT NULL,
	description		text NOT NULL,
	reference_id	text,
	reference_type	text,
	payment_gateway	text,
	payment_method	text,
	balance_before	numeric(14, 2),
	balance_after	numeric(14, 2),
	invoice_number	text,
	topup_id		uuid REFERENCES paas.topups (id),
	subscription_id	uuid REFERENCES paas.subscriptions (id),
	invoice_id		uuid REFERENCES paas.invoices (id),
	PRIMARY KEY (source_table, source_id)
);
CREATE INDEX import_history_user_idx ON paas.import_history (user_id, created_at DESC);
COMMENT ON TABLE paas.import_history IS
	'the original''s unified transactions and balance transactions as they were (amounts in its numeric(10,2)); '
	'their owner reads them with api.billing_original_history';

CREATE TABLE paas.import_instances (
	source_id		text PRIMARY KEY,
	subscription_id	uuid NOT NULL UNIQUE REFERENCES paas.subscriptions (id),
	user_id			uuid NOT NULL REFERENCES paas.users (id),
	service_id		uuid NOT NULL,
	pod_name		text NOT NULL,
	namespace		text NOT NULL,
	status			text NOT NULL,
	subdomain		text,
	internal_url	text,
	external_url	text,
	cpu_allocated	text,
	mem_allocated	text,
	credentials		jsonb,
	created_at		timestamptz NOT NULL,
	updated_at		timestamptz NOT NULL
);
COMMENT ON TABLE paas.import_instances IS
	'the original''s service instances (pods) of imported subscriptions, for the hosted-instances model to take over; '
	'credentials are the instance''s generated secrets';

REVOKE ALL ON paas.import_runs, paas.import_map, paas.import_history, paas.import_instances FROM PUBLIC;
GRANT SELECT ON paas.import_runs, paas.import_map, paas.import_history TO paas_owner;

SELECT pg_catalog.pg_extension_config_dump('paas.import_runs', '');
SELECT pg_catalog.pg_extension_config_dump('paas.import_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.import_map', '');
SELECT pg_catalog.pg_extension_config_dump('paas.import_history', '');
SELECT pg_catalog.pg_extension_config_dump('paas.import_instances', '');

------------------------------------------------------------------------------
-- the original's shape
------------------------------------------------------------------------------

-- Every table of the original (schema.prisma at ca783cf) with its columns,
-- as the foreign tables read them: enum columns as text, Decimal as
-- numeric, DateTime as timestamp(3) (UTC).  "imported" says whether
-- api.import_original reads the table (the others are only counted).
CREATE FUNCTION paas.import_original_columns(OUT table_name text, OUT column_name text,
											 OUT column_type text, OUT ord integer, OUT imported boolean)
	RETURNS SETOF record
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT t.table_name, c.column_name, c.column_type, c.ord::integer, t.imported
	  FROM (VALUES
		('users', true, ARRAY['id text', 'email text', 'password text', 'name text', 'role text',
			'isActive boolean', 'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('service_catalog', true, ARRAY['id text', 'name text', 'displayName text', 'description text',
			'version text', 'isActive boolean', 'cpuRequest text', 'cpuLimit text', 'memRequest text',
			'memLimit text', 'monthlyPrice numeric', 'dockerImage text', 'containerPort integer',
			'environmentVars jsonb', 'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('subscriptions', true, ARRAY['id text', 'userId text', 'serviceId text', 'status text',
			'startDate timestamp(3)', 'expiresAt timestamp(3)', 'subdomain text', 'createdAt timestamp(3)',
			'updatedAt timestamp(3)']),
		('service_instances', true, ARRAY['id text', 'subscriptionId text', 'podName text', 'namespace text',
			'status text', 'internalUrl text', 'externalUrl text', 'credentials jsonb', 'cpuAllocated text',
			'memAllocated text', 'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('usage_metrics', false, ARRAY['id text', 'subscriptionId text', 'cpuUsage numeric', 'memUsage numeric',
			'storageUsage numeric', 'networkIn numeric', 'networkOut numeric', 'recordedAt timestamp(3)']),
		('subscription_transactions', false, ARRAY['id text', 'subscriptionId text', 'type text',
			'amount numeric', 'currency text', 'status text', 'description text', 'paymentId text',
			'paymentMethod text', 'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('transactions', true, ARRAY['id text', 'userId text', 'type text', 'status text', 'description text',
			'amount numeric', 'currency text', 'referenceId text', 'referenceType text', 'paymentGateway text',
			'paymentMethod text', 'invoiceId text', 'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('webhooks', false, ARRAY['id text', 'userId text', 'url text', 'events text[]', 'secret text',
			'isActive boolean', 'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('webhook_deliveries', false, ARRAY['id text', 'webhookId text', 'eventType text', 'payload jsonb',
			'status text', 'attempts integer', 'lastAttempt timestamp(3)', 'responseCode integer',
			'responseBody text', 'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('worker_nodes', true, ARRAY['id text', 'name text', 'hostname text', 'ipAddress text',
			'architecture text', 'operatingSystem text', 'cpuCores integer', 'cpuArchitecture text',
			'totalMemory text', 'totalStorage text', 'allocatedCPU text', 'allocatedMemory text',
			'allocatedStorage text', 'maxPods integer', 'currentPods integer', 'status text', 'isReady boolean',
			'isSchedulable boolean', 'lastHeartbeat timestamp(3)', 'lastHealthCheck timestamp(3)',
			'labels jsonb', 'taints jsonb', 'kubeletVersion text', 'containerRuntime text', 'kernelVersion text',
			'osImage text', 'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('user_balances', true, ARRAY['id text', 'userId text', 'balance numeric', 'currency text',
			'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('topup_transactions', true, ARRAY['id text', 'userId text', 'amount numeric', 'currency text',
			'status text', 'orderId text', 'snapToken text', 'paymentType text', 'transactionId text',
			'paidAt timestamp(3)', 'expiredAt timestamp(3)', 'midtransData jsonb', 'createdAt timestamp(3)',
			'updatedAt timestamp(3)']),
		('invoices', true, ARRAY['id text', 'invoiceNumber text', 'userId text', 'type text', 'amount numeric',
			'currency text', 'status text', 'topUpTransactionId text', 'subscriptionId text', 'description text',
			'dueDate timestamp(3)', 'paidAt timestamp(3)', 'pdfPath text', 'downloadCount integer',
			'createdAt timestamp(3)', 'updatedAt timestamp(3)']),
		('balance_transactions', true, ARRAY['id text', 'userId text', 'type text', 'amount numeric',
			'balanceBefore numeric', 'balanceAfter numeric', 'description text', 'topUpTransactionId text',
			'subscriptionId text', 'createdAt timestamp(3)'])
		) AS t (table_name, imported, cols)
	 CROSS JOIN LATERAL unnest(t.cols) WITH ORDINALITY AS x (def, ord)
	 CROSS JOIN LATERAL (SELECT split_part(x.def, ' ', 1) AS column_name,
								substr(x.def, strpos(x.def, ' ') + 1) AS column_type, x.ord) c
$$;
COMMENT ON FUNCTION paas.import_original_columns() IS
	'the original''s tables and columns (schema.prisma at ca783cf) as an import source must have them';

------------------------------------------------------------------------------
-- attaching the original's database (postgres_fdw)
------------------------------------------------------------------------------

-- Percent-decoding of a connection URI component.
CREATE FUNCTION paas.import_uri_decode(t text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN (SELECT coalesce(convert_from(string_agg(CASE WHEN m[1] IS NOT NULL THEN decode(m[1], 'hex')
														 ELSE convert_to(m[2], 'UTF8') END, ''::bytea ORDER BY n),
										 'UTF8'), '')
			  FROM regexp_matches(t, '%([0-9A-Fa-f]{2})|(%|[^%]+)', 'g') WITH ORDINALITY AS r (m, n));
COMMENT ON FUNCTION paas.import_uri_decode(text) IS 'a percent-encoded URI component, decoded';

-- The keywords and values of a libpq connection string: "key=value ..."
-- (values quoted with '' and \ escapes, as libpq reads them) or a URI
-- postgresql://user:password@host:port/dbname?key=value.  22023 when it
-- cannot be read.
CREATE FUNCTION paas.import_conninfo(conninfo text) RETURNS TABLE (keyword text, value text)
	LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
	s text := conninfo;
	n integer := length(conninfo);
	i integer := 1;
	c text;
	k text;
	v text;
	m text[];
	p text;
BEGIN
	IF s ~* '^postgres(ql)?://' THEN
		m := regexp_match(s, '^postgres(?:ql)?://(?:([^:@/?]*)(?::([^@/?]*))?@)?(\[[^]]*\]|[^:/?]*)(?::([0-9]*))?(?:/([^?]*))?(?:\?(.*))?$', 'i');
		IF m IS NULL OR m[3] LIKE '%,%' THEN
			RAISE EXCEPTION 'invalid connection URI: %', regexp_replace(s, ':[^:@/]*@', ':***@')
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Use postgresql://user:password@host:port/dbname (one host) or key=value pairs.';
		END IF;
		FOR keyword, value IN
			SELECT x.k, paas.import_uri_decode(x.v) FROM (VALUES
				(1, 'user', nullif(m[1], '')), (2, 'password', m[2]),
				(3, 'host', nullif(btrim(m[3], '[]'), '')), (4, 'port', nullif(m[4], '')),
				(5, 'dbname', nullif(m[5], ''))) AS x (o, k, v)
			 WHERE x.v IS NOT NULL ORDER BY x.o
		LOOP
			RETURN NEXT;
		END LOOP;
		IF m[6] IS NOT NULL AND m[6] <> '' THEN
			FOREACH p IN ARRAY string_to_array(m[6], '&') LOOP
				IF strpos(p, '=') = 0 THEN
					RAISE EXCEPTION 'invalid connection URI parameter "%"', p USING ERRCODE = 'invalid_parameter_value';
				END IF;
				keyword := paas.import_uri_decode(split_part(p, '=', 1));
				value := paas.import_uri_decode(substr(p, strpos(p, '=') + 1));
				RETURN NEXT;
			END LOOP;
		END IF;
		RETURN;
	END IF;

	LOOP
		WHILE i <= n AND substr(s, i, 1) ~ '\s' LOOP
			i := i + 1;
		END LOOP;
		EXIT WHEN i > n;
		k := '';
		WHILE i <= n AND substr(s, i, 1) !~ '[\s=]' LOOP
			k := k || substr(s, i, 1);
			i := i + 1;
		END LOOP;
		WHILE i <= n AND substr(s, i, 1) ~ '\s' LOOP
			i := i + 1;
		END LOOP;
		IF i > n OR substr(s, i, 1) <> '=' THEN
			RAISE EXCEPTION 'missing "=" after "%" in the connection string', k
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		i := i + 1;
		WHILE i <= n AND substr(s, i, 1) ~ '\s' LOOP
			i := i + 1;
		END LOOP;
		v := '';
		IF i <= n AND substr(s, i, 1) = '''' THEN
			i := i + 1;
			LOOP
				IF i > n THEN
					RAISE EXCEPTION 'unterminated quoted value of "%" in the connection string', k
						USING ERRCODE = 'invalid_parameter_value';
				END IF;
				c := substr(s, i, 1);
				IF c = '\' AND i < n THEN
					i := i + 1;
					c := substr(s, i, 1);
				ELSIF c = '''' THEN
					i := i + 1;
					EXIT;
				END IF;
				v := v || c;
				i := i + 1;
			END LOOP;
		ELSE
			WHILE i <= n AND substr(s, i, 1) !~ '\s' LOOP
				c := substr(s, i, 1);
				IF c = '\' AND i < n THEN
					i := i + 1;
					c := substr(s, i, 1);
				END IF;
				v := v || c;
				i := i + 1;
			END LOOP;
		END IF;
		keyword := k;
		value := v;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION paas.import_conninfo(text) IS
	'keywords and values of a libpq connection string or URI (22023 when malformed)';

-- Whether a foreign server was made by paas.import_original_attach.
CREATE FUNCTION paas.import_server_ours(srv text) RETURNS boolean
	LANGUAGE sql STABLE STRICT
	RETURN coalesce((SELECT obj_description(s.oid, 'pg_foreign_server') LIKE 'paas import:%'
					   FROM pg_catalog.pg_foreign_server s WHERE s.srvname = srv), false);
COMMENT ON FUNCTION paas.import_server_ours(text) IS
	'whether the foreign server was made by paas.import_original_attach (its comment says so)';

-- Drops what paas.import_original_attach made under "local_schema": the
-- foreign server of that name (with its user mappings and foreign tables)
-- and the schema once empty.  Refuses a server or schema it did not make.
-- Returns whether there was something to drop.
CREATE FUNCTION paas.import_original_detach(local_schema text DEFAULT 'original_import') RETURNS boolean
	LANGUAGE plpgsql VOLATILE STRICT
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	found boolean := false;
BEGIN
	IF EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = local_schema) THEN
		IF NOT paas.import_server_ours(local_schema) THEN
			RAISE EXCEPTION 'foreign server "%" was not made by paas.import_original_attach', local_schema
				USING ERRCODE = 'object_in_use';
		END IF;
		EXECUTE format('DROP SERVER %I CASCADE', local_schema);
		found := true;
	END IF;
	IF to_regnamespace(quote_ident(local_schema)) IS NOT NULL THEN
		IF EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = to_regnamespace(quote_ident(local_schema)))
		   OR EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = to_regnamespace(quote_ident(local_schema)))
		   OR EXISTS (SELECT 1 FROM pg_type WHERE typnamespace = to_regnamespace(quote_ident(local_schema))) THEN
			IF found THEN
				RAISE NOTICE 'schema "%" is not empty: left as it is', local_schema;
			END IF;
		ELSE
			EXECUTE format('DROP SCHEMA %I', local_schema);
			found := true;
		END IF;
	END IF;
	RETURN found;
END
$$;
COMMENT ON FUNCTION paas.import_original_detach(text) IS
	'drops the foreign server, user mappings, foreign tables and (empty) schema made by paas.import_original_attach';

-- Makes the original's database readable as schema "local_schema": a
-- postgres_fdw server of that name from the libpq connection string (user,
-- password, sslcert and sslkey go to the user mapping), user mappings for
-- the caller and for the owner of api.import_original (who reads the
-- tables), and one foreign table per table of paas.import_original_columns()
-- over remote_schema (Prisma's default: public).  A previous attachment of
-- the same name is replaced.  Runs with the caller's rights (needs USAGE on
-- postgres_fdw: a superuser); reads the original's users once, so that a
-- wrong address or password shows here.  The connection string stays in
-- the user mapping until paas.import_original_detach.
CREATE FUNCTION paas.import_original_attach(conninfo text, local_schema text DEFAULT 'original_import',
											remote_schema text DEFAULT 'public')
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE STRICT
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	srv_opts text;
	um_opts text;
	reader name;
	t record;
	n bigint;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgres_fdw') THEN
		RAISE EXCEPTION 'postgres_fdw is not installed in this database'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'CREATE EXTENSION postgres_fdw (package postgresql-contrib); docker/scripts/import-original.sh does it.';
	END IF;
	IF local_schema !~ '^[a-z_][a-z0-9_]{0,62}$'
	   OR local_schema IN ('paas', 'api', 'reporting', 'public', 'cron', 'information_schema')
	   OR local_schema LIKE 'pg\_%' THEN
		RAISE EXCEPTION 'cannot attach the original as schema "%"', local_schema
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Name a schema of its own, such as original_import.';
	END IF;
	PERFORM paas.import_original_detach(local_schema);
	IF to_regnamespace(local_schema) IS NOT NULL THEN
		RAISE EXCEPTION 'schema "%" exists and is not empty', local_schema USING ERRCODE = 'duplicate_schema';
	END IF;

	SELECT string_agg(format('%I %L', o.keyword, o.value), ', ')
			 FILTER (WHERE o.keyword NOT IN ('user', 'password', 'sslcert', 'sslkey')),
		   string_agg(format('%I %L', o.keyword, o.value), ', ')
			 FILTER (WHERE o.keyword IN ('user', 'password', 'sslcert', 'sslkey'))
	  INTO srv_opts, um_opts
	  FROM paas.import_conninfo(conninfo) o;
	EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw OPTIONS (%s)', local_schema,
				   concat_ws(', ', srv_opts, 'fetch_size ''10000'''));
	EXECUTE format('COMMENT ON SERVER %I IS %L', local_schema,
				   'paas import: the original system''s database (paas.import_original_attach)');
	EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER %I%s', local_schema,
				   CASE WHEN um_opts IS NOT NULL THEN ' OPTIONS (' || um_opts || ')' ELSE '' END);
	SELECT r.rolname INTO reader FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
	 WHERE p.oid = 'api.import_original(jsonb, jsonb)'::regprocedure;
	IF reader <> current_user THEN
		EXECUTE format('CREATE USER MAPPING FOR %I SERVER %I%s', reader, local_schema,
					   CASE WHEN um_opts IS NOT NULL THEN ' OPTIONS (' || um_opts || ')' ELSE '' END);
	END IF;

	EXECUTE format('CREATE SCHEMA %I', local_schema);
	EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', local_schema);
	FOR t IN
		SELECT c.table_name, string_agg(format('%I %s', c.column_name, c.column_type), ', ' ORDER BY c.ord) AS cols
		  FROM paas.import_original_columns() c GROUP BY c.table_name ORDER BY c.table_name
	LOOP
		EXECUTE format('CREATE FOREIGN TABLE %I.%I (%s) SERVER %I OPTIONS (schema_name %L, table_name %L)',
					   local_schema, t.table_name, t.cols, local_schema, remote_schema, t.table_name);
	END LOOP;
	EXECUTE format('SELECT count(*) FROM %I.users', local_schema) INTO n;
	RETURN jsonb_build_object('server', local_schema, 'schema', local_schema, 'remoteSchema', remote_schema,
							  'users', n);
END
$$;
COMMENT ON FUNCTION paas.import_original_attach(text, text, text) IS
	'postgres_fdw server, user mappings and foreign tables in the original''s shape (enums as text) '
	'as schema local_schema, from a libpq connection string; replaces an earlier attachment';

------------------------------------------------------------------------------
-- helpers of the import
------------------------------------------------------------------------------

-- A money amount of the original as whole IDR; NULL when it has a fraction
-- of a rupiah (never rounded).
CREATE FUNCTION paas.import_idr(amount numeric) RETURNS bigint
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE WHEN amount = trunc(amount) AND abs(amount) < 1e15 THEN amount::bigint END;
COMMENT ON FUNCTION paas.import_idr(numeric) IS
	'an amount of the original as whole IDR, NULL when it has a fraction of a rupiah';

-- An amount as the report prints it: JSON number, "10000.5" style.
CREATE FUNCTION paas.import_num(amount numeric) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN to_jsonb(trim_scale(amount));
COMMENT ON FUNCTION paas.import_num(numeric) IS 'an amount as a JSON number without trailing zeros';

-- An object without its members whose value is JSON null.
CREATE FUNCTION paas.import_strip(o jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') FROM jsonb_each(o) e
			 WHERE e.value <> 'null'::jsonb);
COMMENT ON FUNCTION paas.import_strip(jsonb) IS 'an object without its null members';

-- The reason of a refusal by a paas rule: the message and the messages of
-- its field errors (DETAIL, a JSON array) or its detail.
CREATE FUNCTION paas.import_refusal(message text, detail text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
	d jsonb;
BEGIN
	BEGIN
		d := detail::jsonb;
	EXCEPTION WHEN OTHERS THEN
		d := NULL;
	END;
	IF jsonb_typeof(d) = 'array' THEN
		RETURN message || ': ' || (SELECT string_agg(e ->> 'message', '; ' ORDER BY n)
									 FROM jsonb_array_elements(d) WITH ORDINALITY AS x (e, n));
	END IF;
	RETURN message || coalesce(' (' || nullif(detail, '') || ')', '');
END
$$;
COMMENT ON FUNCTION paas.import_refusal(text, text) IS
	'the text of a paas refusal: message and field messages';

-- The paas period of an original subscription that started at start_at and
-- is paid to end_at.  When end_at is a whole number k of calendar months
-- (UTC) after start_at, period k of an anchor at start_at; otherwise the
-- period ending at end_at, anchored a month before it (renewals then follow
-- that anchor), numbered by the whole months since start_at.
CREATE FUNCTION paas.import_period(start_at timestamptz, end_at timestamptz,
								   OUT period_no integer, OUT anchor_period integer,
								   OUT anchor_at timestamptz, OUT period_start timestamptz)
	LANGUAGE plpgsql IMMUTABLE STRICT
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	a interval := age(end_at AT TIME ZONE 'UTC', start_at AT TIME ZONE 'UTC');
	k integer := greatest(1, (extract(year FROM a) * 12 + extract(month FROM a))::integer);
	j integer;
BEGIN
	FOR j IN k .. k + 1 LOOP
		IF paas.subscription_bound(start_at, j) = end_at THEN
			period_no := j;
			anchor_period := 1;
			anchor_at := start_at;
			period_start := paas.subscription_bound(start_at, j - 1);
			RETURN;
		END IF;
	END LOOP;
	period_no := k;
	anchor_period := k;
	anchor_at := paas.subscription_bound(end_at, -1);
	period_start := greatest(start_at, anchor_at);
END
$$;
COMMENT ON FUNCTION paas.import_period(timestamptz, timestamptz) IS
	'period number, anchor and period start of an original subscription from startDate to expiresAt';

-- The source tables an import reads, in the order it takes them.
CREATE FUNCTION paas.import_tables() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY['users', 'user_balances', 'service_catalog', 'worker_nodes', 'topup_transactions',
				 'subscriptions', 'invoices', 'transactions', 'balance_transactions', 'service_instances'];
COMMENT ON FUNCTION paas.import_tables() IS 'the original''s tables an import reads, in order';

-- Reads the source schema into temporary tables pg_temp.imp_<table> (one
-- snapshot of the original: postgres_fdw reads every foreign table of a
-- transaction in one remote REPEATABLE READ transaction), with the columns
-- the import fills: target (the paas id), state (new, already, imported,
-- linked, skipped) and reason.  PT400 names every missing table or column.
CREATE FUNCTION paas.import_read(src text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	ns oid := to_regnamespace(quote_ident(src));
	errs jsonb := '[]';
	t text;
	cols text;
	srv text;
BEGIN
	IF ns IS NULL THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', 'source', format('schema "%s" does not exist', src)));
	END IF;
	SELECT errs || coalesce(jsonb_agg(jsonb_build_object('field', c.table_name || CASE WHEN r.oid IS NULL THEN ''
								ELSE '.' || c.column_name END,
							'message', CASE WHEN r.oid IS NULL THEN format('table %s is missing in schema %s', c.table_name, src)
								ELSE format('column %s.%s is missing', c.table_name, c.column_name) END)
							ORDER BY c.table_name, c.ord), '[]')
	  INTO errs
	  FROM paas.import_original_columns() c
	  LEFT JOIN pg_class r ON r.relnamespace = ns AND r.relname = c.table_name AND r.relkind IN ('r', 'v', 'm', 'f', 'p')
	 WHERE c.imported
	   AND (r.oid IS NULL OR NOT EXISTS (SELECT 1 FROM pg_attribute a
										  WHERE a.attrelid = r.oid AND a.attname = c.column_name
											AND a.attnum > 0 AND NOT a.attisdropped))
	   AND (r.oid IS NOT NULL OR c.ord = 1);
	PERFORM paas.raise_if_invalid(errs);

	-- The import reads with its owner's rights: a foreign table must belong
	-- to a server a superuser made (paas.import_original_attach run as one).
	SELECT s.srvname INTO srv
	  FROM pg_foreign_table ft
	  JOIN pg_class r ON r.oid = ft.ftrelid
	  JOIN pg_foreign_server s ON s.oid = ft.ftserver
	  JOIN pg_roles o ON o.oid = s.srvowner
	 WHERE r.relnamespace = ns AND NOT o.rolsuper
	 LIMIT 1;
	IF srv IS NOT NULL THEN
		RAISE EXCEPTION 'foreign server "%" of schema % is not owned by a superuser', srv, src
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Attach the original as a superuser (docker/scripts/import-original.sh does).';
	END IF;

	FOREACH t IN ARRAY paas.import_tables() LOOP
		SELECT string_agg(CASE WHEN c.column_type LIKE 'timestamp%'
							   THEN format('(s.%1$I::timestamp AT TIME ZONE ''UTC'') AS %1$I', c.column_name)
							   ELSE format('s.%1$I::%2$s AS %1$I', c.column_name, c.column_type) END,
						  ', ' ORDER BY c.ord)
		  INTO cols
		  FROM paas.import_original_columns() c WHERE c.table_name = t;
		IF to_regclass('pg_temp.imp_' || t) IS NOT NULL THEN
			EXECUTE format('DROP TABLE pg_temp.%I', 'imp_' || t);
		END IF;
		EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS '
					   'SELECT %s, NULL::uuid AS target, ''new''::text AS state, NULL::text AS reason FROM %I.%I s',
					   'imp_' || t, cols, src, t);
		EXECUTE format('CREATE UNIQUE INDEX ON pg_temp.%I (id)', 'imp_' || t);
		EXECUTE format('ANALYZE pg_temp.%I', 'imp_' || t);
	END LOOP;
	ALTER TABLE pg_temp.imp_user_balances ADD COLUMN entry_id bigint;
	ALTER TABLE pg_temp.imp_subscriptions ADD COLUMN pst text;

	-- each user's balance transactions: how many, their signed sum, where
	-- the last one ends (is the balance what they say?)
	IF to_regclass('pg_temp.imp_bt_sums') IS NOT NULL THEN
		DROP TABLE pg_temp.imp_bt_sums;
	END IF;
	CREATE TEMP TABLE imp_bt_sums ON COMMIT DROP AS
	SELECT t."userId", count(*) AS n,
		   sum(CASE WHEN t.type IN ('CREDIT', 'REFUND') THEN t.amount
					WHEN t.type = 'DEBIT' THEN -t.amount
					ELSE sign(t."balanceAfter" - t."balanceBefore") * t.amount END) AS total,
		   (array_agg(t."balanceAfter" ORDER BY t."createdAt" DESC, t.id DESC))[1] AS last_after
	  FROM pg_temp.imp_balance_transactions t GROUP BY t."userId";
	CREATE UNIQUE INDEX ON pg_temp.imp_bt_sums ("userId");

	IF to_regclass('pg_temp.imp_problems') IS NOT NULL THEN
		DROP TABLE pg_temp.imp_problems;
	END IF;
	CREATE TEMP TABLE imp_problems (
		n		bigint GENERATED ALWAYS AS IDENTITY,
		tbl		text NOT NULL,
		id		text NOT NULL,
		action	text NOT NULL,
		reason	text NOT NULL
	) ON COMMIT DROP;
END
$$;
COMMENT ON FUNCTION paas.import_read(text) IS
	'checks the source schema''s shape (PT400) and reads it into temporary tables pg_temp.imp_*';

-- Records a problem of the current import (pg_temp.imp_problems).
CREATE FUNCTION paas.import_problem(tbl text, id text, action text, reason text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	VALUES (import_problem.tbl, import_problem.id, import_problem.action, import_problem.reason);
END
$$;
COMMENT ON FUNCTION paas.import_problem(text, text, text, text) IS
	'records a row the import skipped, changed, linked or only noted, with the reason';

-- Marks the rows of pg_temp.imp_<tbl> that import_map already holds
-- ("already", target = the paas id when it is a uuid).
CREATE FUNCTION paas.import_mark_done(tbl text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	EXECUTE format('UPDATE pg_temp.%I s SET state = ''already'', target = paas.to_uuid(m.target_id) '
				   'FROM paas.import_map m WHERE m.source_table = %L AND m.source_id = s.id', 'imp_' || tbl, tbl);
END
$$;
COMMENT ON FUNCTION paas.import_mark_done(text) IS 'marks the source rows an earlier import took';

-- Skips the new rows of pg_temp.imp_<tbl> whose user was not imported.
CREATE FUNCTION paas.import_skip_orphans(tbl text, fk text, parent text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	EXECUTE format($q$
		WITH o AS (
			UPDATE pg_temp.%1$I s
			   SET state = 'skipped',
				   reason = CASE WHEN p.id IS NULL THEN format('its %3$s %%s does not exist in the original', s.%2$I)
								 ELSE format('its %3$s %%s was not imported', s.%2$I) END
			  FROM pg_temp.%1$I s2
			  LEFT JOIN pg_temp.%4$I p ON p.id = s2.%2$I
			 WHERE s.id = s2.id AND s.state = 'new' AND p.target IS NULL
			RETURNING s.id, s.reason)
		INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
		SELECT %5$L, o.id, 'skipped', o.reason FROM o ORDER BY o.id$q$,
		'imp_' || tbl, fk, CASE parent WHEN 'users' THEN 'user' WHEN 'service_catalog' THEN 'service'
								   WHEN 'subscriptions' THEN 'subscription' ELSE parent END,
		'imp_' || parent, tbl);
END
$$;
COMMENT ON FUNCTION paas.import_skip_orphans(text, text, text) IS
	'skips the new source rows whose parent row (user, service, subscription) is not in paas';

-- Writes import_map rows for the imported and linked rows of pg_temp.imp_<tbl>.
CREATE FUNCTION paas.import_record(tbl text, target_table text, run bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	EXECUTE format('INSERT INTO paas.import_map (source_table, source_id, target_table, target_id, action, run_id) '
				   'SELECT %L, s.id, %L, s.target::text, s.state, $1 FROM pg_temp.%I s '
				   'WHERE s.state IN (''imported'', ''linked'') ORDER BY s.id',
				   tbl, target_table, 'imp_' || tbl)
	USING run;
END
$$;
COMMENT ON FUNCTION paas.import_record(text, text, bigint) IS 'records what the imported rows became';

------------------------------------------------------------------------------
-- the steps, in dependency order
------------------------------------------------------------------------------

-- users -> paas.users.  The bcrypt hash is kept ($2b$ and $2y$ are the
-- same algorithm as pgcrypto's $2a$ and are stored as $2a$, which pgcrypto
-- verifies).  An e-mail paas already has (case-insensitively) is skipped,
-- or with link_existing taken by that account (its password, name and role
-- stay); two original users whose e-mails differ only in case: the older
-- is imported.  A password that is no bcrypt hash gets an unusable one.
CREATE FUNCTION paas.import_step_users(run bigint, link_existing boolean) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.import_mark_done('users');

	WITH c AS (
		SELECT s.id, paas.check_email('[]', jsonb_build_object('email', s.email), 'email', true) AS e,
			   s.name, s.role FROM pg_temp.imp_users s WHERE s.state = 'new'),
	bad AS (
		UPDATE pg_temp.imp_users s
		   SET state = 'skipped',
			   reason = CASE WHEN jsonb_array_length(c.e) > 0
							 THEN format('e-mail %s is refused by paas: %s', s.email, c.e #>> '{0,message}')
							 WHEN char_length(btrim(c.name)) NOT BETWEEN 1 AND 100
							 THEN 'name must have 1 to 100 characters'
							 ELSE format('role %s is neither USER nor ADMINISTRATOR', c.role) END
		  FROM c
		 WHERE s.id = c.id AND (jsonb_array_length(c.e) > 0 OR char_length(btrim(c.name)) NOT BETWEEN 1 AND 100
								OR c.role NOT IN ('USER', 'ADMINISTRATOR'))
		RETURNING s.id, s.reason)
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'users', bad.id, 'skipped', bad.reason FROM bad ORDER BY bad.id;

	WITH d AS (
		SELECT f.id, f.first_id, f.first_email
		  FROM (SELECT s.id, s.state, first_value(s.id) OVER w AS first_id, first_value(s.email) OVER w AS first_email
				  FROM pg_temp.imp_users s WHERE s.state <> 'skipped'
				WINDOW w AS (PARTITION BY lower(s.email) ORDER BY s.state = 'already' DESC, s."createdAt", s.id)) f
		 WHERE f.state = 'new' AND f.id <> f.first_id),
	dup AS (
		UPDATE pg_temp.imp_users s
		   SET state = 'skipped',
			   reason = format('e-mail %s differs only in letter case from %s of original user %s, '
							   'and paas e-mails are unique regardless of case', s.email, d.first_email, d.first_id)
		  FROM d WHERE s.id = d.id
		RETURNING s.id, s.reason)
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'users', dup.id, 'skipped', dup.reason FROM dup ORDER BY dup.id;

	WITH t AS (
		SELECT s.id, u.id AS uid FROM pg_temp.imp_users s
		  JOIN paas.users u ON lower(u.email) = lower(s.email) AND u.deleted_at IS NULL
		 WHERE s.state = 'new'),
	taken AS (
		UPDATE pg_temp.imp_users s
		   SET state = CASE WHEN link_existing THEN 'linked' ELSE 'skipped' END,
			   target = CASE WHEN link_existing THEN t.uid END,
			   reason = CASE WHEN link_existing
							 THEN format('e-mail %s belongs to paas account %s: linked to it (its password, name '
										 'and role are kept; the original''s data is added to it)', s.email, t.uid)
							 ELSE format('e-mail %s belongs to paas account %s: not imported, nor its data '
										 '(onExistingEmail "link" adds them to that account)', s.email, t.uid) END
		  FROM t WHERE s.id = t.id
		RETURNING s.id, s.state, s.reason)
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'users', taken.id, taken.state, taken.reason FROM taken ORDER BY taken.id;

	WITH nohash AS (
		SELECT s.id FROM pg_temp.imp_users s
		 WHERE s.state = 'new'
		   AND s.password !~ '^\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$')
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'users', nohash.id, 'changed',
		   'the password column holds no bcrypt hash: imported with no usable password '
		   '(an administrator sets one: PATCH /users/:id/password)'
	  FROM nohash ORDER BY nohash.id;

	UPDATE pg_temp.imp_users SET target = gen_random_uuid(), state = 'imported' WHERE state = 'new';
	INSERT INTO paas.users (id, email, name, password_hash, role, is_active, created_at, updated_at)
	SELECT s.target, s.email, btrim(s.name),
		   CASE WHEN s.password !~ '^\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$'
				THEN paas.hash_password(encode(public.gen_random_bytes(24), 'base64'))
				WHEN substr(s.password, 3, 1) IN ('b', 'y') THEN overlay(s.password PLACING 'a' FROM 3 FOR 1)
				ELSE s.password END,
		   s.role, s."isActive", s."createdAt", s."updatedAt"
	  FROM pg_temp.imp_users s WHERE s.state = 'imported'
	 ORDER BY s."createdAt", s.id;
	PERFORM paas.import_record('users', 'paas.users', run);
END
$$;
COMMENT ON FUNCTION paas.import_step_users(bigint, boolean) IS
	'imports the original''s users (bcrypt hashes kept); e-mails paas has are skipped or linked';

-- user_balances -> one opening_balance ledger entry per user, from the
-- platform account 'opening_balances' (zero: nothing to post).  A balance
-- with a fraction of a rupiah, a negative one or another currency is
-- skipped.  A balance its balance transactions disagree with is imported
-- (the balance wins) and reported.
CREATE FUNCTION paas.import_step_balances(run bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	acc bigint := paas.platform_account('opening_balances');
	chunk constant integer := 5000;
	k integer;
	entries jsonb;
	res jsonb;
BEGIN
	PERFORM paas.import_mark_done('user_balances');
	UPDATE pg_temp.imp_user_balances s SET entry_id = m.target_id::bigint
	  FROM paas.import_map m WHERE m.source_table = 'user_balances' AND m.source_id = s.id;
	PERFORM paas.import_skip_orphans('user_balances', 'userId', 'users');

	WITH bad AS (
		UPDATE pg_temp.imp_user_balances s
		   SET state = 'skipped',
			   reason = CASE WHEN s.currency IS DISTINCT FROM 'IDR'
							 THEN format('currency %s: paas keeps IDR only', s.currency)
							 WHEN paas.import_idr(s.balance) IS NULL
							 THEN format('balance %s is not a whole number of rupiah (paas keeps whole IDR): '
										 'no opening balance posted', trim_scale(s.balance))
							 ELSE format('balance %s is negative: a paas wallet never is', trim_scale(s.balance)) END
		 WHERE s.state = 'new'
		   AND (s.currency IS DISTINCT FROM 'IDR' OR paas.import_idr(s.balance) IS NULL OR s.balance < 0)
		RETURNING s.id, s.reason)
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'user_balances', bad.id, 'skipped', bad.reason FROM bad ORDER BY bad.id;

	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'user_balances', h.id, 'balance_wins',
		   CASE WHEN h.n = 0
				THEN format('balance %s has no balance transaction behind it: the balance wins, opening balance %s',
							trim_scale(h.balance), trim_scale(h.balance))
				ELSE format('balance %s disagrees with its %s balance transactions (they add up to %s, the last '
							'one ends at %s): the balance wins, opening balance %s', trim_scale(h.balance), h.n,
							trim_scale(h.total), trim_scale(h.last_after), trim_scale(h.balance)) END
	  FROM (SELECT s.id, s.balance, coalesce(x.n, 0) AS n, coalesce(x.total, 0) AS total, x.last_after
			  FROM pg_temp.imp_user_balances s
			  LEFT JOIN pg_temp.imp_bt_sums x ON x."userId" = s."userId"
			 WHERE s.state = 'new') h
	 WHERE (h.n = 0 AND h.balance <> 0) OR (h.n > 0 AND (h.total <> h.balance OR h.last_after <> h.balance))
	 ORDER BY h.id;

	-- the entries, at most "chunk" per call of the ledger
	IF to_regclass('pg_temp.imp_post') IS NOT NULL THEN
		DROP TABLE pg_temp.imp_post;
	END IF;
	CREATE TEMP TABLE imp_post ON COMMIT DROP AS
	SELECT s.id, u.target AS user_id, s."userId" AS original_user, s.balance,
		   paas.import_idr(s.balance) AS amount, row_number() OVER (ORDER BY s.id) AS n
	  FROM pg_temp.imp_user_balances s JOIN pg_temp.imp_users u ON u.id = s."userId"
	 WHERE s.state = 'new' AND s.balance > 0;
	FOR k IN 0 .. coalesce((SELECT (max(n) - 1) / chunk FROM pg_temp.imp_post), -1) LOOP
		SELECT jsonb_agg(jsonb_build_object(
				'kind', 'opening_balance',
				'memo', 'Opening balance from the original system',
				'ref', jsonb_build_object('importedFrom', 'original', 'userBalanceId', p.id,
										  'originalUserId', p.original_user, 'originalBalance', paas.import_num(p.balance)),
				'postings', jsonb_build_array(
					jsonb_build_object('account', paas.wallet_account(p.user_id), 'amount', p.amount),
					jsonb_build_object('account', acc, 'amount', -p.amount))) ORDER BY p.n)
		  INTO entries
		  FROM pg_temp.imp_post p WHERE (p.n - 1) / chunk = k;
		res := paas.ledger_post(NULL, entries);
		UPDATE pg_temp.imp_user_balances s SET entry_id = (e.e ->> 'id')::bigint
		  FROM pg_temp.imp_post p
		  JOIN jsonb_array_elements(res -> 'entries') WITH ORDINALITY AS e (e, i) ON e.i = p.n - k * chunk
		 WHERE (p.n - 1) / chunk = k AND s.id = p.id;
	END LOOP;
	UPDATE pg_temp.imp_user_balances SET state = 'imported' WHERE state = 'new';
	INSERT INTO paas.import_map (source_table, source_id, target_table, target_id, action, run_id)
	SELECT 'user_balances', s.id, 'paas.ledger_entries', s.entry_id::text, 'imported', run
	  FROM pg_temp.imp_user_balances s WHERE s.state = 'imported' ORDER BY s.id;
END
$$;
COMMENT ON FUNCTION paas.import_step_balances(bigint) IS
	'posts each imported user''s balance as an opening_balance entry; fractions and negatives are skipped';

-- service_catalog -> paas.services through api.services_create (its
-- validation; a refusal skips the service and its subscriptions).  A live
-- paas service of the same name takes the original's (linked, kept as it is).
CREATE FUNCTION paas.import_step_services(run bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s record;
	v paas.services;
	res jsonb;
	msg text;
	det text;
BEGIN
	PERFORM paas.import_mark_done('service_catalog');
	FOR s IN SELECT * FROM pg_temp.imp_service_catalog WHERE state = 'new' ORDER BY "createdAt", id LOOP
		IF paas.import_idr(s."monthlyPrice") IS NULL THEN
			UPDATE pg_temp.imp_service_catalog SET state = 'skipped' WHERE id = s.id;
			PERFORM paas.import_problem('service_catalog', s.id, 'skipped',
				format('monthlyPrice %s is not a whole number of rupiah', trim_scale(s."monthlyPrice")));
			CONTINUE;
		END IF;
		SELECT * INTO v FROM paas.services WHERE name = s.name AND deleted_at IS NULL;
		IF FOUND THEN
			UPDATE pg_temp.imp_service_catalog SET state = 'linked', target = v.id WHERE id = s.id;
			PERFORM paas.import_problem('service_catalog', s.id, 'linked',
				format('paas has a service named %s: linked to it as it is (price %s IDR; the original''s is %s)',
					   s.name, v.monthly_price, trim_scale(s."monthlyPrice")));
			CONTINUE;
		END IF;
		BEGIN
			res := api.services_create(paas.import_strip(jsonb_build_object(
				'name', s.name, 'displayName', s."displayName", 'description', s.description,
				'version', s.version, 'isActive', s."isActive", 'cpuRequest', s."cpuRequest",
				'cpuLimit', s."cpuLimit", 'memRequest', s."memRequest", 'memLimit', s."memLimit",
				'monthlyPrice', paas.import_idr(s."monthlyPrice"), 'dockerImage', s."dockerImage",
				'containerPort', s."containerPort", 'environmentVars', s."environmentVars")), '{}');
		EXCEPTION WHEN SQLSTATE 'PT400' OR SQLSTATE 'PT409' THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
			UPDATE pg_temp.imp_service_catalog SET state = 'skipped' WHERE id = s.id;
			PERFORM paas.import_problem('service_catalog', s.id, 'skipped',
				'refused by POST /services: ' || paas.import_refusal(msg, det));
			CONTINUE;
		END;
		UPDATE paas.services SET created_at = s."createdAt", updated_at = s."updatedAt"
		 WHERE id = (res ->> 'id')::uuid;
		UPDATE pg_temp.imp_service_catalog SET state = 'imported', target = (res ->> 'id')::uuid WHERE id = s.id;
	END LOOP;
	PERFORM paas.import_record('service_catalog', 'paas.services', run);
END
$$;
COMMENT ON FUNCTION paas.import_step_services(bigint) IS
	'imports the original''s catalog through api.services_create; a live service of the same name is linked';

-- worker_nodes -> paas.nodes through api.workers_create (the validation of
-- POST /workers: quantities, addresses, labels, taints; a refusal writes
-- nothing).  A bare number in allocatedMemory / allocatedStorage is MB /
-- GB (counted in MiB / GiB), as the original's heartbeats wrote them, so it
-- is given that unit (paas reads a bare numeric string as bytes).  A node paas has by name is
-- linked.  Imported nodes have no node token: they register again.
CREATE FUNCTION paas.import_step_nodes(run bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s record;
	nid uuid;
	res jsonb;
	msg text;
	det text;
BEGIN
	PERFORM paas.import_mark_done('worker_nodes');
	FOR s IN SELECT * FROM pg_temp.imp_worker_nodes WHERE state = 'new' ORDER BY "createdAt", id LOOP
		SELECT id INTO nid FROM paas.nodes WHERE name = s.name;
		IF FOUND THEN
			UPDATE pg_temp.imp_worker_nodes SET state = 'linked', target = nid WHERE id = s.id;
			PERFORM paas.import_problem('worker_nodes', s.id, 'linked',
				format('paas has a node named %s: linked to it as it is', s.name));
			CONTINUE;
		END IF;
		BEGIN
			res := api.workers_create(paas.import_strip(jsonb_build_object(
				'name', s.name, 'hostname', s.hostname, 'ipAddress', s."ipAddress",
				'architecture', s.architecture, 'operatingSystem', s."operatingSystem",
				'cpuCores', s."cpuCores", 'cpuArchitecture', s."cpuArchitecture",
				'totalMemory', s."totalMemory", 'totalStorage', s."totalStorage",
				'allocatedCPU', s."allocatedCPU",
				'allocatedMemory', CASE WHEN s."allocatedMemory" ~ '^[0-9]+(\.[0-9]+)?$' AND s."allocatedMemory"::numeric <> 0
										THEN s."allocatedMemory" || 'Mi' ELSE s."allocatedMemory" END,
				'allocatedStorage', CASE WHEN s."allocatedStorage" ~ '^[0-9]+(\.[0-9]+)?$' AND s."allocatedStorage"::numeric <> 0
										 THEN s."allocatedStorage" || 'Gi' ELSE s."allocatedStorage" END,
				'maxPods', s."maxPods", 'currentPods', s."currentPods", 'status', s.status,
				'isReady', s."isReady", 'isSchedulable', s."isSchedulable",
				'labels', s.labels, 'taints', s.taints, 'kubeletVersion', s."kubeletVersion",
				'containerRuntime', s."containerRuntime", 'kernelVersion', s."kernelVersion",
				'osImage', s."osImage")), '{}');
		EXCEPTION WHEN SQLSTATE 'PT400' OR SQLSTATE 'PT409' THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
			UPDATE pg_temp.imp_worker_nodes SET state = 'skipped' WHERE id = s.id;
			PERFORM paas.import_problem('worker_nodes', s.id, 'skipped',
				'refused by POST /workers: ' || paas.import_refusal(msg, det));
			CONTINUE;
		END;
		UPDATE paas.nodes SET created_at = s."createdAt", last_heartbeat = s."lastHeartbeat",
			   last_health_check = s."lastHealthCheck"
		 WHERE id = (res ->> 'id')::uuid;
		UPDATE pg_temp.imp_worker_nodes SET state = 'imported', target = (res ->> 'id')::uuid WHERE id = s.id;
	END LOOP;
	PERFORM paas.import_record('worker_nodes', 'paas.nodes', run);
END
$$;
COMMENT ON FUNCTION paas.import_step_nodes(bigint) IS
	'imports the original''s worker nodes through api.workers_create; invalid ones are skipped whole';

-- topup_transactions -> paas.topups with their Midtrans order (the order id
-- kept, so a late or repeated notification finds it).  PAID: an order
-- already credited (its credit is inside the opening balance; a duplicate
-- notification changes nothing, a refund is taken back from the wallet).
-- PENDING within its expiredAt: a live pending top-up that paas reconciles
-- with Midtrans; past it: EXPIRED (a payment that still arrives is
-- credited).  Amounts must be whole IDR within paas's top-up range.
CREATE FUNCTION paas.import_step_topups(run bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.import_mark_done('topup_transactions');
	PERFORM paas.import_skip_orphans('topup_transactions', 'userId', 'users');

	WITH c AS (
		SELECT s.id, CASE
				WHEN s.currency IS DISTINCT FROM 'IDR' THEN format('currency %s: paas keeps IDR only', s.currency)
				WHEN paas.import_idr(s.amount) IS NULL
				THEN format('amount %s is not a whole number of rupiah', trim_scale(s.amount))
				WHEN s.amount NOT BETWEEN 10000 AND 10000000
				THEN format('amount %s is outside paas''s top-up range (10,000 to 10,000,000 IDR)', trim_scale(s.amount))
				WHEN s."orderId" !~ '^[A-Za-z0-9_.~-]{1,50}$'
				THEN format('order id %s is not a Midtrans order id paas accepts', s."orderId")
				WHEN EXISTS (SELECT 1 FROM paas.topup_orders o WHERE o.order_id = s."orderId")
				THEN format('order id %s is already an order of a paas top-up', s."orderId")
				WHEN s.status NOT IN ('PENDING', 'PAID', 'EXPIRED', 'CANCELLED', 'FAILED')
				THEN format('status %s is not a top-up status', s.status) END AS why
		  FROM pg_temp.imp_topup_transactions s WHERE s.state = 'new'),
	bad AS (
		UPDATE pg_temp.imp_topup_transactions s SET state = 'skipped', reason = c.why
		  FROM c WHERE s.id = c.id AND c.why IS NOT NULL
		RETURNING s.id, s.reason)
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'topup_transactions', bad.id, 'skipped', bad.reason FROM bad ORDER BY bad.id;

	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'topup_transactions', s.id,
		   CASE WHEN s.status = 'PENDING' AND s."expiredAt" <= now() THEN 'changed' ELSE 'note' END,
		   CASE WHEN s.status = 'PENDING' AND s."expiredAt" <= now()
				THEN format('PENDING in the original although it expired at %s: imported EXPIRED (a payment of '
							'order %s that still arrives is credited)', paas.iso(s."expiredAt"), s."orderId")
				WHEN s.status = 'PENDING'
				THEN format('PENDING: imported as a pending top-up; paas asks Midtrans about order %s and credits '
							'it when paid, until it expires at %s', s."orderId", paas.iso(s."expiredAt"))
				ELSE format('PAID, but no balance transaction of the original credits it (a credit the original '
							'lost): imported PAID, and the opening balance, the original''s balance, '
							'does not hold it') END
	  FROM pg_temp.imp_topup_transactions s
	 WHERE s.state = 'new'
	   AND (s.status = 'PENDING'
			OR (s.status = 'PAID' AND NOT EXISTS (SELECT 1 FROM pg_temp.imp_balance_transactions b
												   WHERE b."topUpTransactionId" = s.id AND b.type = 'CREDIT')))
	 ORDER BY s.id;

	UPDATE pg_temp.imp_topup_transactions SET target = gen_random_uuid(), state = 'imported' WHERE state = 'new';
	INSERT INTO paas.topups (id, user_id, amount, currency, status, order_id, snap_token, redirect_url,
							 snap_expires_at, payment_type, gateway_status, paid_at, expires_at, created_at, updated_at)
	SELECT s.target, u.target, paas.import_idr(s.amount), 'IDR', x.st, s."orderId", s."snapToken",
		   s."midtransData" ->> 'redirect_url',
		   CASE WHEN x.st = 'PENDING' AND s."snapToken" IS NOT NULL THEN s."expiredAt" END,
		   s."paymentType", s."midtransData" ->> 'transaction_status',
		   CASE WHEN x.st = 'PAID' THEN coalesce(s."paidAt", s."updatedAt") END,
		   s."expiredAt", s."createdAt", s."updatedAt"
	  FROM pg_temp.imp_topup_transactions s
	  JOIN pg_temp.imp_users u ON u.id = s."userId"
	 CROSS JOIN LATERAL (SELECT CASE WHEN s.status = 'PENDING' AND s."expiredAt" <= now() THEN 'EXPIRED'
									 ELSE s.status END AS st) x
	 WHERE s.state = 'imported'
	 ORDER BY s."createdAt", s.id;
	INSERT INTO paas.topup_orders (order_id, topup_id, status, snap_requested_at, snap_token, redirect_url,
								   gateway_status, gateway_transaction_id, payment_type, credited, paid_at, created_at)
	SELECT s."orderId", s.target,
		   CASE WHEN s.status = 'PAID' THEN 'PAID' WHEN s.status = 'PENDING' AND s."expiredAt" > now() THEN 'PENDING'
				ELSE 'FAILED' END,
		   CASE WHEN s."snapToken" IS NOT NULL THEN s."createdAt" END, s."snapToken",
		   s."midtransData" ->> 'redirect_url', s."midtransData" ->> 'transaction_status', s."transactionId",
		   s."paymentType", CASE WHEN s.status = 'PAID' THEN paas.import_idr(s.amount) ELSE 0 END,
		   CASE WHEN s.status = 'PAID' THEN coalesce(s."paidAt", s."updatedAt") END, s."createdAt"
	  FROM pg_temp.imp_topup_transactions s
	 WHERE s.state = 'imported'
	 ORDER BY s."createdAt", s.id;
	PERFORM paas.import_record('topup_transactions', 'paas.topups', run);
END
$$;
COMMENT ON FUNCTION paas.import_step_topups(bigint) IS
	'imports the original''s top-ups with their order ids (PAID as already credited, stale PENDING as EXPIRED)';

-- subscriptions -> paas.subscriptions with their period (startDate /
-- expiresAt, paas.import_period) and status: ACTIVE stays ACTIVE while its
-- period runs (paas renews it at its end at the service's original price)
-- and becomes EXPIRED when it has ended (the original never expired one);
-- CANCELLED runs to its end; SUSPENDED stays.  A second live subscription of
-- one user to one service (paas allows one) is imported EXPIRED.  No money
-- moves: what was paid is in the opening balance and the history.
CREATE FUNCTION paas.import_step_subscriptions(run bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.import_mark_done('subscriptions');
	PERFORM paas.import_skip_orphans('subscriptions', 'userId', 'users');
	PERFORM paas.import_skip_orphans('subscriptions', 'serviceId', 'service_catalog');

	WITH bad AS (
		UPDATE pg_temp.imp_subscriptions s
		   SET state = 'skipped',
			   reason = CASE WHEN s."expiresAt" <= s."startDate"
							 THEN format('expiresAt %s is not after startDate %s', paas.iso(s."expiresAt"),
										 paas.iso(s."startDate"))
							 WHEN s.status NOT IN ('ACTIVE', 'EXPIRED', 'CANCELLED', 'SUSPENDED')
							 THEN format('status %s is not a subscription status', s.status)
							 ELSE format('its service''s monthlyPrice %s is more than paas''s 1,000,000,000 IDR',
										 trim_scale(v."monthlyPrice")) END
		  FROM pg_temp.imp_service_catalog v
		 WHERE s.state = 'new' AND v.id = s."serviceId"
		   AND (s."expiresAt" <= s."startDate" OR s.status NOT IN ('ACTIVE', 'EXPIRED', 'CANCELLED', 'SUSPENDED')
				OR v."monthlyPrice" > 1000000000)
		RETURNING s.id, s.reason)
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'subscriptions', bad.id, 'skipped', bad.reason FROM bad ORDER BY bad.id;

	UPDATE pg_temp.imp_subscriptions s
	   SET pst = CASE WHEN s.status IN ('ACTIVE', 'CANCELLED') AND s."expiresAt" > now() THEN s.status
					  WHEN s.status = 'SUSPENDED' THEN 'SUSPENDED' ELSE 'EXPIRED' END
	 WHERE s.state = 'new';

	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'subscriptions', s.id, 'changed',
		   format('ACTIVE in the original, but its period ended at %s (the original never expires subscriptions): '
				  'imported EXPIRED; its owner renews it with PUT /subscriptions/:id/renew', paas.iso(s."expiresAt"))
	  FROM pg_temp.imp_subscriptions s
	 WHERE s.state = 'new' AND s.status = 'ACTIVE' AND s.pst = 'EXPIRED'
	 ORDER BY s.id;

	-- one live subscription per user and service
	WITH r AS (
		SELECT s.id, u.target AS uid, v.target AS sid,
			   EXISTS (SELECT 1 FROM paas.subscriptions x
						WHERE x.user_id = u.target AND x.service_id = v.target AND x.status <> 'EXPIRED') AS taken,
			   row_number() OVER (PARTITION BY u.target, v.target
								  ORDER BY s.pst = 'ACTIVE' DESC, s.pst = 'CANCELLED' DESC, s."expiresAt" DESC, s.id) AS rn
		  FROM pg_temp.imp_subscriptions s
		  JOIN pg_temp.imp_users u ON u.id = s."userId"
		  JOIN pg_temp.imp_service_catalog v ON v.id = s."serviceId"
		 WHERE s.state = 'new' AND s.pst <> 'EXPIRED'),
	d AS (
		UPDATE pg_temp.imp_subscriptions s SET pst = 'EXPIRED'
		  FROM r WHERE s.id = r.id AND (r.taken OR r.rn > 1)
		RETURNING s.id, s.status, r.taken)
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'subscriptions', d.id, 'changed',
		   format('%s in the original, but %s: imported EXPIRED (paas keeps one live subscription per user and service)',
				  d.status, CASE WHEN d.taken THEN 'the user already has a live paas subscription to this service'
								 ELSE 'another live subscription of the user to this service is imported' END)
	  FROM d ORDER BY d.id;

	UPDATE pg_temp.imp_subscriptions SET target = gen_random_uuid(), state = 'imported' WHERE state = 'new';
	INSERT INTO paas.subscriptions (id, user_id, service_id, status, price, period_no, anchor_at, anchor_period,
									current_period_start, current_period_end, cancelled_at, suspended_at, ended_at,
									status_reason, created_at, updated_at)
	SELECT s.target, u.target, v.target, s.pst, paas.import_idr(v."monthlyPrice"), p.period_no, p.anchor_at,
		   p.anchor_period, p.period_start, s."expiresAt",
		   CASE WHEN s.status = 'CANCELLED' THEN s."updatedAt" END,
		   CASE WHEN s.pst = 'SUSPENDED' THEN s."updatedAt" END,
		   CASE WHEN s.pst = 'EXPIRED' THEN least(s."expiresAt", now()) END,
		   format('imported from the original system (subscription %s, %s)', s.id, s.status),
		   s."startDate", s."updatedAt"
	  FROM pg_temp.imp_subscriptions s
	  JOIN pg_temp.imp_users u ON u.id = s."userId"
	  JOIN pg_temp.imp_service_catalog v ON v.id = s."serviceId"
	 CROSS JOIN LATERAL paas.import_period(s."startDate", s."expiresAt") p
	 WHERE s.state = 'imported'
	 ORDER BY s."startDate", s.id;
	PERFORM paas.subscription_log(s.target, 'import', NULL, s.pst, NULL,
								  format('imported from the original system (subscription %s)', s.id))
	   FROM pg_temp.imp_subscriptions s WHERE s.state = 'imported' ORDER BY s."startDate", s.id;
	PERFORM paas.import_record('subscriptions', 'paas.subscriptions', run);
END
$$;
COMMENT ON FUNCTION paas.import_step_subscriptions(bigint) IS
	'imports the original''s subscriptions with their periods; ended ACTIVE ones become EXPIRED';

-- invoices -> paas.invoices with their numbers (INV-YYYYMM-NNNNNN; other
-- forms are skipped), linked to the imported top-up or subscription.  PAID
-- stays PAID, SENT and OVERDUE become ISSUED (unpaid); DRAFT (never issued)
-- and CANCELLED (paas voids only with a credit note) are skipped.  Each
-- month's counter is moved past its highest imported number.
CREATE FUNCTION paas.import_step_invoices(run bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.import_mark_done('invoices');
	PERFORM paas.import_skip_orphans('invoices', 'userId', 'users');

	WITH c AS (
		SELECT s.id, CASE
				WHEN s.currency IS DISTINCT FROM 'IDR' THEN format('currency %s: paas keeps IDR only', s.currency)
				WHEN paas.import_idr(s.amount) IS NULL
				THEN format('amount %s is not a whole number of rupiah', trim_scale(s.amount))
				WHEN s.amount < 0 THEN format('amount %s is negative', trim_scale(s.amount))
				WHEN s.type NOT IN ('TOPUP', 'SUBSCRIPTION') THEN format('type %s is not an invoice type', s.type)
				WHEN s."invoiceNumber" !~ '^INV-[0-9]{4}(0[1-9]|1[0-2])-[0-9]{6,9}$'
				THEN format('invoice number %s does not have paas''s form INV-YYYYMM-NNNNNN', s."invoiceNumber")
				WHEN EXISTS (SELECT 1 FROM paas.invoices i WHERE i.number = s."invoiceNumber")
				THEN format('invoice number %s is already a paas invoice', s."invoiceNumber")
				WHEN s.status = 'DRAFT' THEN 'a DRAFT invoice was never issued'
				WHEN s.status = 'CANCELLED'
				THEN 'a CANCELLED invoice: paas voids an invoice only by issuing its credit note'
				WHEN s.status NOT IN ('PAID', 'SENT', 'OVERDUE') THEN format('status %s is not an invoice status', s.status)
				END AS why
		  FROM pg_temp.imp_invoices s WHERE s.state = 'new'),
	bad AS (
		UPDATE pg_temp.imp_invoices s SET state = 'skipped', reason = c.why
		  FROM c WHERE s.id = c.id AND c.why IS NOT NULL
		RETURNING s.id, s.reason)
	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'invoices', bad.id, 'skipped', bad.reason FROM bad ORDER BY bad.id;

	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'invoices', s.id, 'changed',
		   format('its %s %s was not imported: the invoice is kept without it',
				  CASE WHEN t.target IS NULL AND s."topUpTransactionId" IS NOT NULL THEN 'top-up' ELSE 'subscription' END,
				  CASE WHEN t.target IS NULL AND s."topUpTransactionId" IS NOT NULL THEN s."topUpTransactionId"
					   ELSE s."subscriptionId" END)
	  FROM pg_temp.imp_invoices s
	  LEFT JOIN pg_temp.imp_topup_transactions t ON t.id = s."topUpTransactionId"
	  LEFT JOIN pg_temp.imp_subscriptions b ON b.id = s."subscriptionId"
	 WHERE s.state = 'new'
	   AND ((s."topUpTransactionId" IS NOT NULL AND t.target IS NULL)
			OR (s."subscriptionId" IS NOT NULL AND b.target IS NULL))
	 ORDER BY s.id;

	UPDATE pg_temp.imp_invoices SET target = gen_random_uuid(), state = 'imported' WHERE state = 'new';
	INSERT INTO paas.invoices (id, number, user_id, kind, amount, currency, status, description, lines, ref,
							   topup_id, download_count, issued_at, paid_at)
	SELECT s.target, s."invoiceNumber", u.target, s.type, paas.import_idr(s.amount), 'IDR',
		   CASE WHEN s.status = 'PAID' THEN 'PAID' ELSE 'ISSUED' END, s.description,
		   jsonb_build_array(jsonb_build_object('description', s.description, 'quantity', 1,
												'unitPrice', paas.import_idr(s.amount),
												'amount', paas.import_idr(s.amount))),
		   paas.import_strip(jsonb_build_object('importedFrom', 'original', 'originalId', s.id,
				'topUpId', t.target, 'orderId', t."orderId", 'subscriptionId', b.target,
				'dueDate', paas.iso(s."dueDate"))),
		   t.target, s."downloadCount", s."createdAt",
		   CASE WHEN s.status = 'PAID' THEN coalesce(s."paidAt", s."createdAt") END
	  FROM pg_temp.imp_invoices s
	  JOIN pg_temp.imp_users u ON u.id = s."userId"
	  LEFT JOIN pg_temp.imp_topup_transactions t ON t.id = s."topUpTransactionId"
	  LEFT JOIN pg_temp.imp_subscriptions b ON b.id = s."subscriptionId"
	 WHERE s.state = 'imported'
	 ORDER BY s."createdAt", s.id;

	-- a refund of an imported order voids its invoice, as for paas's own
	UPDATE paas.topup_orders o SET invoice_id = s.target
	  FROM pg_temp.imp_invoices s
	  JOIN pg_temp.imp_topup_transactions x ON x.id = s."topUpTransactionId"
	  JOIN paas.topups t ON t.id = x.target
	 WHERE s.state = 'imported' AND s.type = 'TOPUP' AND o.order_id = t.order_id AND o.invoice_id IS NULL;

	-- paas's own numbers of those months continue after the imported ones
	INSERT INTO paas.invoice_counters AS c (series, period, last_number)
	SELECT 'INV', substr(s."invoiceNumber", 5, 6), max(substr(s."invoiceNumber", 12)::integer)
	  FROM pg_temp.imp_invoices s WHERE s.state = 'imported'
	 GROUP BY 2 ORDER BY 2
	ON CONFLICT ON CONSTRAINT invoice_counters_pkey
	DO UPDATE SET last_number = greatest(c.last_number, EXCLUDED.last_number);
	PERFORM paas.import_record('invoices', 'paas.invoices', run);
END
$$;
COMMENT ON FUNCTION paas.import_step_invoices(bigint) IS
	'imports the original''s invoices with their numbers and moves each month''s counter past them';

-- transactions and balance_transactions -> paas.import_history, as they
-- were, linked to the imported top-up, subscription and invoice.  A unified
-- TOPUP transaction without an imported top-up is kept there only (noted).
CREATE FUNCTION paas.import_step_history(run bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.import_mark_done('transactions');
	PERFORM paas.import_skip_orphans('transactions', 'userId', 'users');
	PERFORM paas.import_mark_done('balance_transactions');
	PERFORM paas.import_skip_orphans('balance_transactions', 'userId', 'users');

	INSERT INTO pg_temp.imp_problems (tbl, id, action, reason)
	SELECT 'transactions', s.id, 'history_only',
		   CASE WHEN s."referenceId" IS NULL
				THEN 'a TOPUP transaction without a top-up (referenceId is empty): kept in the imported history only'
				WHEN t.id IS NULL
				THEN format('its top-up %s no longer exists in the original: kept in the imported history only',
							s."referenceId")
				ELSE format('its top-up %s was not imported: kept in the imported history only', s."referenceId") END
	  FROM pg_temp.imp_transactions s
	  LEFT JOIN pg_temp.imp_topup_transactions t ON t.id = s."referenceId"
	 WHERE s.state = 'new' AND s.type = 'TOPUP' AND t.target IS NULL
	 ORDER BY s.id;

	INSERT INTO paas.import_history (source_table, source_id, user_id, created_at, type, status, amount, currency,
									 description, reference_id, reference_type, payment_gateway, payment_method,
									 invoice_number, topup_id, subscription_id, invoice_id)
	SELECT 'transactions', s.id, u.target, s."createdAt", s.type, s.status, s.amount, coalesce(s.currency, 'IDR'),
		   s.description, s."referenceId", s."referenceType", s."paymentGateway", s."paymentMethod",
		   i."invoiceNumber", t.target, b.target, i.target
	  FROM pg_temp.imp_transactions s
	  JOIN pg_temp.imp_users u ON u.id = s."userId"
	  LEFT JOIN pg_temp.imp_topup_transactions t
			 ON t.id = s."referenceId" AND (s.type = 'TOPUP' OR s."referenceType" IN ('TOP_UP_TRANSACTION', 'TOPUP'))
	  LEFT JOIN pg_temp.imp_subscriptions b
			 ON b.id = s."referenceId" AND (s.type = 'SERVICE_PURCHASE' OR s."referenceType" = 'SUBSCRIPTION')
	  LEFT JOIN pg_temp.imp_invoices i ON i.id = s."invoiceId"
	 WHERE s.state = 'new'
	 ORDER BY s."createdAt", s.id;
	UPDATE pg_temp.imp_transactions SET state = 'imported' WHERE state = 'new';

	INSERT INTO paas.import_history (source_table, source_id, user_id, created_at, type, amount, currency,
									 description, balance_before, balance_after, reference_id, reference_type,
									 topup_id, subscription_id)
	SELECT 'balance_transactions', s.id, u.target, s."createdAt", s.type, s.amount, 'IDR', s.description,
		   s."balanceBefore", s."balanceAfter", coalesce(s."topUpTransactionId", s."subscriptionId"),
		   CASE WHEN s."topUpTransactionId" IS NOT NULL THEN 'TOP_UP_TRANSACTION'
				WHEN s."subscriptionId" IS NOT NULL THEN 'SUBSCRIPTION' END,
		   t.target, b.target
	  FROM pg_temp.imp_balance_transactions s
	  JOIN pg_temp.imp_users u ON u.id = s."userId"
	  LEFT JOIN pg_temp.imp_topup_transactions t ON t.id = s."topUpTransactionId"
	  LEFT JOIN pg_temp.imp_subscriptions b ON b.id = s."subscriptionId"
	 WHERE s.state = 'new'
	 ORDER BY s."createdAt", s.id;
	UPDATE pg_temp.imp_balance_transactions SET state = 'imported' WHERE state = 'new';

	INSERT INTO paas.import_map (source_table, source_id, target_table, target_id, action, run_id)
	SELECT x.tbl, x.id, 'paas.import_history', x.id, 'imported', run
	  FROM (SELECT 'transactions' AS tbl, s.id FROM pg_temp.imp_transactions s WHERE s.state = 'imported'
			UNION ALL
			SELECT 'balance_transactions', s.id FROM pg_temp.imp_balance_transactions s WHERE s.state = 'imported') x
	 ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION paas.import_step_history(bigint) IS
	'keeps the original''s unified and balance transactions in paas.import_history';

-- service_instances -> paas.import_instances (the original's pods, for the
-- hosted-instances model), with the subscription's subdomain.
CREATE FUNCTION paas.import_step_instances(run bigint) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.import_mark_done('service_instances');
	PERFORM paas.import_skip_orphans('service_instances', 'subscriptionId', 'subscriptions');
	INSERT INTO paas.import_instances (source_id, subscription_id, user_id, service_id, pod_name, namespace, status,
									   subdomain, internal_url, external_url, cpu_allocated, mem_allocated,
									   credentials, created_at, updated_at)
	SELECT s.id, b.target, u.target, v.target, s."podName", s.namespace, s.status, b.subdomain, s."internalUrl",
		   s."externalUrl", s."cpuAllocated", s."memAllocated", s.credentials, s."createdAt", s."updatedAt"
	  FROM pg_temp.imp_service_instances s
	  JOIN pg_temp.imp_subscriptions b ON b.id = s."subscriptionId"
	  JOIN pg_temp.imp_users u ON u.id = b."userId"
	  JOIN pg_temp.imp_service_catalog v ON v.id = b."serviceId"
	 WHERE s.state = 'new'
	 ORDER BY s.id;
	UPDATE pg_temp.imp_service_instances SET state = 'imported' WHERE state = 'new';
	INSERT INTO paas.import_map (source_table, source_id, target_table, target_id, action, run_id)
	SELECT 'service_instances', s.id, 'paas.import_instances', s.id, 'imported', run
	  FROM pg_temp.imp_service_instances s WHERE s.state = 'imported' ORDER BY s.id;
END
$$;
COMMENT ON FUNCTION paas.import_step_instances(bigint) IS
	'keeps the original''s service instances of imported subscriptions in paas.import_instances';

------------------------------------------------------------------------------
-- the report
------------------------------------------------------------------------------

-- The report of the current import (pg_temp.imp_*): counts per table,
-- problems, how the balances reconcile, and the tables not imported.
CREATE FUNCTION paas.import_report(run bigint, src text, dry boolean, link_existing boolean,
								   started timestamptz)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	t text;
	c jsonb;
	counts jsonb := '{}';
	absent jsonb := '{}';
	n bigint;
	problems jsonb;
	bal jsonb;
BEGIN
	FOREACH t IN ARRAY paas.import_tables() LOOP
		EXECUTE format('SELECT jsonb_build_object(''read'', count(*), '
					   '''imported'', count(*) FILTER (WHERE state = ''imported''), '
					   '''linked'', count(*) FILTER (WHERE state = ''linked''), '
					   '''alreadyImported'', count(*) FILTER (WHERE state = ''already''), '
					   '''skipped'', count(*) FILTER (WHERE state = ''skipped'')) FROM pg_temp.%I', 'imp_' || t)
		   INTO c;
		counts := counts || jsonb_build_object(t, c);
	END LOOP;

	-- tables paas does not import: how many rows they hold (NULL: no such table)
	FOR t IN SELECT DISTINCT x.table_name FROM paas.import_original_columns() x WHERE NOT x.imported ORDER BY 1 LOOP
		n := NULL;
		IF to_regclass(format('%I.%I', src, t)) IS NOT NULL THEN
			BEGIN
				EXECUTE format('SELECT count(*) FROM %I.%I', src, t) INTO n;
			EXCEPTION WHEN undefined_table THEN
				-- a foreign table over a table the original no longer has
				n := NULL;
			END;
		END IF;
		absent := absent || jsonb_build_object(t, n);
	END LOOP;

	SELECT coalesce(jsonb_agg(jsonb_build_object('table', p.tbl, 'id', p.id, 'action', p.action, 'reason', p.reason)
							  ORDER BY array_position(paas.import_tables(), p.tbl), p.n), '[]')
	  INTO problems FROM pg_temp.imp_problems p;

	WITH b AS (
		SELECT s.id, s."userId" AS original_user, u.email, u.target AS uid, s.balance, s.state, s.reason,
			   paas.wallet_balance(u.target) AS wallet,
			   (SELECT p.amount FROM paas.ledger_postings p JOIN paas.ledger_accounts a ON a.id = p.account_id
				 WHERE p.entry_id = s.entry_id AND a.kind = 'wallet') AS opening,
			   coalesce(x.n, 0) AS n, coalesce(x.total, 0) AS total, x.last_after
		  FROM pg_temp.imp_user_balances s
		  JOIN pg_temp.imp_users u ON u.id = s."userId"
		  LEFT JOIN pg_temp.imp_bt_sums x ON x."userId" = s."userId"
		 WHERE u.target IS NOT NULL),
	d AS (
		SELECT b.*,
			   CASE WHEN b.state = 'skipped' THEN 'not_posted'
					WHEN b.wallet <> b.balance AND coalesce(b.opening, 0) <> b.balance THEN 'changed_since_import'
					WHEN b.wallet <> b.balance THEN 'wallet_moved'
					WHEN (b.n = 0 AND b.balance <> 0)
						 OR (b.n > 0 AND (b.total <> b.balance OR b.last_after <> b.balance)) THEN 'history'
			   END AS kind
		  FROM b)
	SELECT jsonb_build_object(
		'users', count(*),
		'reconciled', count(*) FILTER (WHERE d.wallet = d.balance),
		'totalOriginal', paas.import_num(coalesce(sum(d.balance), 0)),
		'totalPaas', coalesce(sum(d.wallet), 0),
		'totalOpening', coalesce(sum(d.opening), 0),
		'differences', coalesce(jsonb_agg(jsonb_build_object(
				'kind', d.kind, 'userBalanceId', d.id, 'userId', d.original_user, 'paasUserId', d.uid,
				'email', d.email, 'original', paas.import_num(d.balance), 'paas', d.wallet, 'opening', d.opening,
				'transactions', d.n, 'transactionsTotal', paas.import_num(d.total),
				'lastBalanceAfter', paas.import_num(d.last_after),
				'reason', CASE d.kind
					WHEN 'not_posted' THEN d.reason
					WHEN 'changed_since_import'
					THEN format('the original''s balance is %s, the opening balance imported was %s '
								'(the original moved after the import)', trim_scale(d.balance), coalesce(d.opening, 0))
					WHEN 'wallet_moved'
					THEN format('the paas wallet holds %s besides or after the opening balance %s',
								d.wallet, coalesce(d.opening, 0))
					ELSE format('reconciled; its %s balance transactions add up to %s and end at %s: the balance wins',
								d.n, trim_scale(d.total), coalesce(trim_scale(d.last_after)::text, 'nothing')) END)
				ORDER BY d.id) FILTER (WHERE d.kind IS NOT NULL), '[]'))
	  INTO bal FROM d;

	RETURN jsonb_build_object(
		'dryRun', dry, 'runId', CASE WHEN NOT dry THEN run END, 'source', src,
		'onExistingEmail', CASE WHEN link_existing THEN 'link' ELSE 'skip' END,
		'startedAt', paas.iso(started), 'finishedAt', paas.iso(clock_timestamp()),
		'counts', counts, 'problems', problems, 'balances', bal, 'notImported', absent);
END
$$;
COMMENT ON FUNCTION paas.import_report(bigint, text, boolean, boolean, timestamptz) IS
	'the report of the running import: counts, problems, balance reconciliation, tables not imported';

-- One import from schema src, every step, in the caller's transaction.
CREATE FUNCTION paas.import_run(src text, link_existing boolean, dry boolean) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	run bigint;
	started timestamptz := clock_timestamp();
	rep jsonb;
BEGIN
	PERFORM paas.import_read(src);
	INSERT INTO paas.import_runs (source, options)
	VALUES (src, jsonb_build_object('onExistingEmail', CASE WHEN link_existing THEN 'link' ELSE 'skip' END))
	RETURNING id INTO run;
	-- Each step may add many rows to tables whose statistics do not know
	-- them yet; the next steps join them, so they are analyzed in between.
	PERFORM paas.import_step_users(run, link_existing);
	ANALYZE paas.users;
	PERFORM paas.import_step_balances(run);
	ANALYZE paas.ledger_accounts, paas.ledger_entries, paas.ledger_postings;
	PERFORM paas.import_step_services(run);
	PERFORM paas.import_step_nodes(run);
	PERFORM paas.import_step_topups(run);
	ANALYZE paas.topups, paas.topup_orders;
	PERFORM paas.import_step_subscriptions(run);
	ANALYZE paas.subscriptions;
	PERFORM paas.import_step_invoices(run);
	ANALYZE paas.invoices;
	PERFORM paas.import_step_history(run);
	PERFORM paas.import_step_instances(run);
	ANALYZE paas.import_map, paas.import_history;
	rep := paas.import_report(run, src, dry, link_existing, started);
	UPDATE paas.import_runs SET report = rep, finished_at = clock_timestamp() WHERE id = run;
	RETURN rep;
END
$$;
COMMENT ON FUNCTION paas.import_run(text, boolean, boolean) IS 'one import, every step, and its report';

------------------------------------------------------------------------------
-- api
------------------------------------------------------------------------------

-- A DBA's import of the original system's database (docs/migration.md).
-- req: {source: the schema holding the original's tables (foreign tables
-- of paas.import_original_attach, or a restored dump), dryRun: false,
-- onExistingEmail: "skip" | "link"}.  One transaction, the caller's; a dry
-- run rolls its work back and returns the same report.
CREATE FUNCTION api.import_original(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	rep jsonb;
	dry boolean;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'source', true, 1, 63);
	errs := paas.check_bool(errs, req, 'dryRun', false);
	errs := paas.check_enum(errs, req, 'onExistingEmail', false, ARRAY['skip', 'link']);
	PERFORM paas.raise_if_invalid(errs);
	dry := coalesce((req ->> 'dryRun')::boolean, false);
	-- one import at a time (objid 80: this part)
	PERFORM pg_advisory_xact_lock(1885430131, 80);
	IF NOT dry THEN
		RETURN paas.import_run(req ->> 'source', req ->> 'onExistingEmail' = 'link' IS TRUE, false);
	END IF;
	BEGIN
		rep := paas.import_run(req ->> 'source', req ->> 'onExistingEmail' = 'link' IS TRUE, true);
		RAISE EXCEPTION 'dry run: rolled back' USING ERRCODE = 'PTDRY';
	EXCEPTION WHEN SQLSTATE 'PTDRY' THEN
		-- everything the run wrote is gone; its report stays
		NULL;
	END;
	RETURN rep;
END
$$;
COMMENT ON FUNCTION api.import_original(jsonb, jsonb) IS
	'imports the original system''s database from schema req.source (dryRun: the same work rolled back; '
	'onExistingEmail: skip | link); idempotent; returns the report {counts, problems, balances, notImported}';

-- A row of paas.import_history as the API prints it (the feed's shape).
CREATE FUNCTION paas.import_history_json(h paas.import_history) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object(
		'id', h.source_id, 'source', h.source_table, 'date', paas.iso(h.created_at),
		'createdAt', paas.iso(h.created_at), 'type', h.type, 'status', h.status,
		'description', h.description, 'amount', paas.import_num(h.amount), 'currency', h.currency,
		'balanceBefore', paas.import_num(h.balance_before), 'balanceAfter', paas.import_num(h.balance_after),
		'reference', h.reference_id, 'referenceType', h.reference_type,
		'paymentGateway', h.payment_gateway, 'paymentMethod', h.payment_method,
		'topUpId', h.topup_id, 'subscriptionId', h.subscription_id,
		'invoice', CASE WHEN h.invoice_id IS NOT NULL
						THEN (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
								FROM paas.invoices i WHERE i.id = h.invoice_id)
						WHEN h.invoice_number IS NOT NULL
						THEN jsonb_build_object('id', NULL, 'invoiceNumber', h.invoice_number, 'status', NULL) END);
COMMENT ON FUNCTION paas.import_history_json(paas.import_history) IS
	'an imported unified or balance transaction as the API prints it';

-- The caller's history from the original system (paas.import_history),
-- newest first: page, limit (default 20), source (transactions |
-- balance_transactions).
CREATE FUNCTION api.billing_original_history(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
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
	errs := paas.check_enum(errs, req, 'source', false, ARRAY['transactions', 'balance_transactions']);
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 20);
	SELECT count(*) INTO total FROM paas.import_history h
	 WHERE h.user_id = u.id AND (req ->> 'source' IS NULL OR h.source_table = req ->> 'source');
	SELECT coalesce(jsonb_agg(paas.import_history_json(x) ORDER BY x.created_at DESC, x.source_table, x.source_id), '[]')
	  INTO rows
	  FROM (SELECT * FROM paas.import_history h
			 WHERE h.user_id = u.id AND (req ->> 'source' IS NULL OR h.source_table = req ->> 'source')
			 ORDER BY h.created_at DESC, h.source_table, h.source_id
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) x;
	pg := paas.pagination(req, total, 20);
	RETURN jsonb_build_object('data', jsonb_build_object('transactions', rows, 'pagination', pg),
							  'pagination', pg);
END
$$;
COMMENT ON FUNCTION api.billing_original_history(jsonb, jsonb) IS
	'the caller''s unified and balance transactions from the original system, newest first; page, limit, source';

------------------------------------------------------------------------------
-- grants
------------------------------------------------------------------------------

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'paas.import_original_columns()', 'paas.import_uri_decode(text)', 'paas.import_conninfo(text)',
		'paas.import_server_ours(text)', 'paas.import_original_detach(text)',
		'paas.import_original_attach(text, text, text)', 'paas.import_idr(numeric)', 'paas.import_num(numeric)',
		'paas.import_strip(jsonb)', 'paas.import_refusal(text, text)',
		'paas.import_period(timestamptz, timestamptz)', 'paas.import_tables()', 'paas.import_read(text)',
		'paas.import_problem(text, text, text, text)', 'paas.import_mark_done(text)',
		'paas.import_skip_orphans(text, text, text)', 'paas.import_record(text, text, bigint)',
		'paas.import_step_users(bigint, boolean)', 'paas.import_step_balances(bigint)',
		'paas.import_step_services(bigint)', 'paas.import_step_nodes(bigint)', 'paas.import_step_topups(bigint)',
		'paas.import_step_subscriptions(bigint)', 'paas.import_step_invoices(bigint)',
		'paas.import_step_history(bigint)', 'paas.import_step_instances(bigint)',
		'paas.import_report(bigint, text, boolean, boolean, timestamptz)', 'paas.import_run(text, boolean, boolean)',
		'paas.import_history_json(paas.import_history)',
		'api.import_original(jsonb, jsonb)', 'api.billing_original_history(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
	-- the import is for DBAs only; attaching runs with the DBA's own rights
	GRANT EXECUTE ON FUNCTION api.import_original(jsonb, jsonb) TO paas_owner;
	GRANT EXECUTE ON FUNCTION paas.import_original_attach(text, text, text), paas.import_original_detach(text),
		paas.import_original_columns(), paas.import_conninfo(text) TO paas_owner;
	GRANT EXECUTE ON FUNCTION api.billing_original_history(jsonb, jsonb) TO paas_api, paas_owner;
END
$grants$;

-- ---- new: sql/parts/85_reporting.sql ----
-- paas -- reporting: the finance views a BI tool reads (role paas_bi).
--
-- Every view is read-only, in whole IDR, and dated in UTC (months are UTC
-- calendar months, as the subscription periods are).  docs/bi.md answers the
-- usual finance questions with them.  Revenue is what reached the platform's
-- revenue account (charges add, reversals and refunds of charges subtract);
-- the wallets' balances are money customers prepaid and the platform owes
-- them until spent (a liability, not revenue).

------------------------------------------------------------------------------
-- revenue per month, by kind of entry and by service
------------------------------------------------------------------------------
CREATE VIEW reporting.revenue_monthly AS
SELECT date_trunc('month', p.created_at AT TIME ZONE 'UTC')::date AS month,
	   e.kind,
	   s.id AS service_id,
	   s.name AS service_name,
	   sum(p.amount)::bigint AS revenue,
	   count(DISTINCT e.id) AS entries,
	   'IDR'::text AS currency
  FROM paas.ledger_postings p
  JOIN paas.ledger_accounts a ON a.id = p.account_id
  JOIN paas.ledger_accounts pa ON pa.id = coalesce(a.parent_id, a.id)
  JOIN paas.ledger_entries e ON e.id = p.entry_id
  LEFT JOIN paas.services s ON s.id = paas.to_uuid(e.ref ->> 'serviceId')
 WHERE pa.kind = 'platform' AND pa.code = 'revenue'
 GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW reporting.revenue_monthly IS
	'revenue per UTC month, per kind of ledger entry and per service (NULL service: not tied to one)';
COMMENT ON COLUMN reporting.revenue_monthly.month IS 'first day of the UTC calendar month';
COMMENT ON COLUMN reporting.revenue_monthly.kind IS
	'ledger entry kind: subscription_charge, subscription_renewal, reversal, adjustment ...';
COMMENT ON COLUMN reporting.revenue_monthly.service_id IS 'the catalog service the entry charged for, if any';
COMMENT ON COLUMN reporting.revenue_monthly.service_name IS 'its slug (paas.services.name)';
COMMENT ON COLUMN reporting.revenue_monthly.revenue IS 'net movement of the revenue account in IDR';
COMMENT ON COLUMN reporting.revenue_monthly.entries IS 'ledger entries behind the figure';
COMMENT ON COLUMN reporting.revenue_monthly.currency IS 'always IDR';

------------------------------------------------------------------------------
-- top-ups by payment method and status
------------------------------------------------------------------------------
CREATE VIEW reporting.topups_monthly AS
SELECT date_trunc('month', t.created_at AT TIME ZONE 'UTC')::date AS month,
	   coalesce(t.payment_type, 'unknown') AS payment_type,
	   t.status,
	   count(*) AS topups,
	   sum(t.amount)::bigint AS amount,
	   count(DISTINCT t.user_id) AS users,
	   'IDR'::text AS currency
  FROM paas.topups t
 GROUP BY 1, 2, 3;
COMMENT ON VIEW reporting.topups_monthly IS
	'top-ups per UTC month (of creation), Midtrans payment method and status';
COMMENT ON COLUMN reporting.topups_monthly.month IS 'first day of the UTC month the top-up was opened in';
COMMENT ON COLUMN reporting.topups_monthly.payment_type IS
	'Midtrans payment_type (bank_transfer, gopay, credit_card ...); unknown until paid';
COMMENT ON COLUMN reporting.topups_monthly.status IS 'PENDING, PAID, FAILED, EXPIRED, CANCELLED or REFUNDED';
COMMENT ON COLUMN reporting.topups_monthly.topups IS 'number of top-ups';
COMMENT ON COLUMN reporting.topups_monthly.amount IS 'their requested amounts in IDR';
COMMENT ON COLUMN reporting.topups_monthly.users IS 'distinct customers';
COMMENT ON COLUMN reporting.topups_monthly.currency IS 'always IDR';

------------------------------------------------------------------------------
-- active subscriptions and monthly recurring revenue per service
------------------------------------------------------------------------------
CREATE VIEW reporting.subscriptions_by_service AS
SELECT s.id AS service_id,
	   s.name AS service_name,
	   count(x.id) FILTER (WHERE x.status = 'ACTIVE') AS active,
	   count(x.id) FILTER (WHERE x.status = 'GRACE') AS in_grace,
	   count(x.id) FILTER (WHERE x.status = 'SUSPENDED') AS suspended,
	   count(x.id) FILTER (WHERE x.status = 'CANCELLED') AS cancelling,
	   coalesce(sum(x.price) FILTER (WHERE x.status IN ('ACTIVE', 'GRACE')), 0)::bigint AS mrr,
	   'IDR'::text AS currency
  FROM paas.services s
  LEFT JOIN paas.subscriptions x ON x.service_id = s.id
 WHERE s.deleted_at IS NULL OR x.id IS NOT NULL
 GROUP BY s.id, s.name;
COMMENT ON VIEW reporting.subscriptions_by_service IS
	'live subscriptions per service now, and the monthly recurring revenue they bring';
COMMENT ON COLUMN reporting.subscriptions_by_service.active IS 'paid and running';
COMMENT ON COLUMN reporting.subscriptions_by_service.in_grace IS 'renewal failed, still running within the grace period';
COMMENT ON COLUMN reporting.subscriptions_by_service.suspended IS 'stopped for non-payment';
COMMENT ON COLUMN reporting.subscriptions_by_service.cancelling IS 'cancelled by the customer, running to the period end';
COMMENT ON COLUMN reporting.subscriptions_by_service.mrr IS
	'monthly recurring revenue in IDR: the monthly prices of the subscriptions that will renew (ACTIVE and GRACE)';
COMMENT ON COLUMN reporting.subscriptions_by_service.currency IS 'always IDR';

------------------------------------------------------------------------------
-- churn per month
------------------------------------------------------------------------------
CREATE VIEW reporting.churn_monthly AS
WITH bounds AS (
	SELECT date_trunc('month', min(created_at) AT TIME ZONE 'UTC') AS first_month
	  FROM paas.subscriptions
), months AS (
	SELECT m::date AS month, (m AT TIME ZONE 'UTC') AS starts, ((m + interval '1 month') AT TIME ZONE 'UTC') AS ends
	  FROM bounds, generate_series(bounds.first_month, date_trunc('month', now() AT TIME ZONE 'UTC'),
								   interval '1 month') AS m
)
SELECT m.month,
	   count(x.id) FILTER (WHERE x.created_at < m.starts AND (x.ended_at IS NULL OR x.ended_at >= m.starts))
		   AS live_at_start,
	   count(x.id) FILTER (WHERE x.created_at >= m.starts AND x.created_at < m.ends) AS started,
	   count(x.id) FILTER (WHERE x.ended_at >= m.starts AND x.ended_at < m.ends) AS ended,
	   round(count(x.id) FILTER (WHERE x.ended_at >= m.starts AND x.ended_at < m.ends)::numeric
			 / nullif(count(x.id) FILTER (WHERE x.created_at < m.starts
										   AND (x.ended_at IS NULL OR x.ended_at >= m.starts)), 0), 4)
		   AS churn_rate
  FROM months m
  LEFT JOIN paas.subscriptions x ON x.created_at < m.ends
 GROUP BY m.month;
COMMENT ON VIEW reporting.churn_monthly IS
	'subscriptions live at the start of each UTC month, started and ended in it, and the churn rate';
COMMENT ON COLUMN reporting.churn_monthly.live_at_start IS 'subscriptions created before the month and not ended by its start';
COMMENT ON COLUMN reporting.churn_monthly.started IS 'subscriptions created in the month';
COMMENT ON COLUMN reporting.churn_monthly.ended IS 'subscriptions that ended (expired or were cancelled to the end) in the month';
COMMENT ON COLUMN reporting.churn_monthly.churn_rate IS 'ended / live_at_start (NULL when none were live)';

------------------------------------------------------------------------------
-- outstanding wallet balances: what the platform owes its customers
------------------------------------------------------------------------------
CREATE VIEW reporting.wallet_liability AS
SELECT count(*) AS wallets,
	   count(*) FILTER (WHERE a.balance > 0) AS funded_wallets,
	   coalesce(sum(a.balance), 0)::bigint AS outstanding,
	   coalesce(max(a.balance), 0)::bigint AS largest,
	   now() AS as_of,
	   'IDR'::text AS currency
  FROM paas.ledger_accounts a
 WHERE a.kind = 'wallet';
COMMENT ON VIEW reporting.wallet_liability IS
	'the sum of all wallet balances: credit customers prepaid and have not spent (the platform''s liability)';
COMMENT ON COLUMN reporting.wallet_liability.wallets IS 'customer wallets';
COMMENT ON COLUMN reporting.wallet_liability.funded_wallets IS 'wallets holding credit';
COMMENT ON COLUMN reporting.wallet_liability.outstanding IS 'total credit owed, in IDR';
COMMENT ON COLUMN reporting.wallet_liability.largest IS 'the largest single wallet balance';
COMMENT ON COLUMN reporting.wallet_liability.as_of IS 'when the figure was read';
COMMENT ON COLUMN reporting.wallet_liability.currency IS 'always IDR';

GRANT SELECT ON reporting.revenue_monthly, reporting.topups_monthly, reporting.subscriptions_by_service,
	reporting.churn_monthly, reporting.wallet_liability TO paas_bi, paas_owner;

-- ---- new: sql/parts/86_metrics.sql ----
-- paas -- metrics: what the database knows that an operator watches, for
-- the gateway's Prometheus text (httpd/metrics.c, GET /metrics on the
-- metrics listener).  One call per scrape, on a connection of its own with
-- a short statement timeout: every part reads an index or a small table.
--   jobs       per job of paas.job: enabled, its last run (start, end,
--              duration, outcome), its last success, runs and failures of
--              the last 24 hours (paas.job_run keeps 7 days, so these are
--              gauges, not counters)
--   renewals   the counts of the last renewal run (paas.job_run, job
--              renewals) and the subscriptions in grace now
--   queues     the provisioner's work (instances and namespaces whose
--              generation is not yet observed; those of them due now) and
--              the mailer's outbox (rows due now, the oldest one's age)
--   worker     whether the background worker runs, and its last tick

CREATE FUNCTION api.metrics_snapshot() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	last_renewal jsonb;
BEGIN
	SELECT r.detail INTO last_renewal FROM paas.job_run r
	 WHERE r.job = 'renewals' ORDER BY r.started_at DESC LIMIT 1;
	RETURN jsonb_build_object(
		'at', extract(epoch FROM clock_timestamp()),
		'worker', (SELECT jsonb_build_object('running', w.running,
											 'lastTick', extract(epoch FROM w.last_tick))
					 FROM paas.worker_state() w),
		'jobs', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
					'name', j.name, 'enabled', j.enabled,
					'lastStart', extract(epoch FROM l.started_at),
					'lastEnd', extract(epoch FROM l.finished_at),
					'lastSeconds', extract(epoch FROM l.finished_at - l.started_at),
					'lastOk', l.ok,
					'lastSuccess', (SELECT extract(epoch FROM s.finished_at) FROM paas.job_run s
									 WHERE s.job = j.name AND s.ok ORDER BY s.started_at DESC LIMIT 1),
					'ok24h', d.ok, 'failed24h', d.failed) ORDER BY j.name)
			  FROM paas.job j
			  LEFT JOIN LATERAL (SELECT r.started_at, r.finished_at, r.ok FROM paas.job_run r
								  WHERE r.job = j.name ORDER BY r.started_at DESC LIMIT 1) l ON true
			  CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE r.ok) AS ok,
										 count(*) FILTER (WHERE NOT r.ok) AS failed
									FROM paas.job_run r
								   WHERE r.job = j.name AND r.started_at > now() - interval '24 hours') d),
			'[]'),
		'renewals', jsonb_build_object(
			'ok', (last_renewal ->> 'ok')::boolean,
			'examined', (last_renewal ->> 'examined')::bigint,
			'renewed', (last_renewal ->> 'renewed')::bigint,
			'charged', (last_renewal ->> 'charged')::bigint,
			'toGrace', (last_renewal ->> 'toGrace')::bigint,
			'suspended', (last_renewal ->> 'suspended')::bigint,
			'expired', (last_renewal ->> 'expired')::bigint,
			'inGrace', (SELECT count(*) FROM paas.subscriptions WHERE status = 'GRACE')),
		'provisioner', jsonb_build_object(
			'instances', (SELECT count(*) FROM paas.instances WHERE generation <> observed_generation),
			'instancesDue', (SELECT count(*) FROM paas.instances
							  WHERE generation <> observed_generation AND due_at <= now()),
			'namespaces', (SELECT count(*) FROM paas.instance_namespaces
							WHERE generation <> observed_generation),
			'namespacesDue', (SELECT count(*) FROM paas.instance_namespaces
							   WHERE generation <> observed_generation AND due_at <= now())),
		'mailer', (SELECT jsonb_build_object(
						'due', count(*),
						'oldestDueSeconds', coalesce(extract(epoch FROM now() - min(x.due_at)), 0))
					 FROM paas.notification_outbox x
					WHERE x.status IN ('PENDING', 'SENDING') AND x.due_at <= now()));
END
$$;
COMMENT ON FUNCTION api.metrics_snapshot() IS
	'the gateway''s metrics scrape (httpd/metrics.c): jobs and their last runs, the last renewal run, '
	'provisioner and mailer queue depths, the worker; epoch seconds';
REVOKE ALL ON FUNCTION api.metrics_snapshot() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.metrics_snapshot() TO paas_api, paas_owner;

-- ---- new: sql/parts/95_routes.sql ----
-- paas -- routes: the HTTP route table, and the OpenAPI document generated
-- from it.
--
-- One row of paas.routes per route of the gateway: method, path pattern
-- ("/api/v1/users/:id": ":name" captures one segment), the api function it
-- calls, the access rule, the success status and message, the gateway's
-- flags, and what the OpenAPI document needs: tag, summary, the JSON Schema
-- of the request body (request_schema), of the query parameters
-- (query_schema: name -> schema), of the path captures (path_schema, when
-- the default of paas.route_path_param() is not enough), of headers, of the
-- envelope's "data" (response_schema), and the error statuses the function
-- itself answers (errors; those of the access rule, the flags and the
-- gateway are added by api.openapi()).  Shared schemas live in
-- paas.route_schemas (components.schemas), tags in paas.route_tags.
--
-- Rules a reader must know.
--   * The rows are the extension's, like paas.job: this script and the
--     upgrade scripts write them, and CREATE EXTENSION writes them again on
--     restore, so they are not registered for pg_dump (90_dump.sql).  A
--     superuser may change a row in an emergency (the gateway reloads on
--     the change), but a restore or an update brings the extension's rows
--     back: a lasting change is an upgrade script.  paas_owner reads them.
--   * Any change of a route, a schema or a tag notifies channel
--     "paas_routes" (statement trigger): a gateway listening reloads its
--     table.  An ALTER EXTENSION UPDATE that touches routes notifies too.
--   * function is a regprocedure: a row can only name a function that
--     exists, api.<name>(jsonb, jsonb); NULL exactly for the routes httpd
--     answers itself (flag builtin).
--   * seq is the table order: the gateway keeps it (its matcher prefers
--     literal segments, then the first row), and the OpenAPI document names
--     a path template after the first route of its shape
--     ("/services/:name" before "/services/:id": {name}).
--   * flags are the names of the gateway's route flags (httpd/httpd.h
--     enum route_flags, without the ROUTE_ prefix); paas.route_flag_names()
--     lists the known ones and is the table's CHECK: a new flag is one more
--     element there (CREATE OR REPLACE in an upgrade script).
--   * operationId: the function's name in camelCase (api.users_list ->
--     usersList) unless the row names one; unique.

------------------------------------------------------------------------------
-- vocabulary
------------------------------------------------------------------------------

-- The gateway's route flags (httpd/httpd.h, enum route_flags):
--   paginated      the function returns {data, pagination}
--   tokens         the function returns a session: httpd mints the access token
--   builtin        answered by httpd itself (no function)
--   rate_login     per-address login limit, failed logins per account
--   rate_register  per-address registration limit
--   rate_refresh   per-address refresh limit
--   no_db          never touches the database
--   snap           may answer {"$snap"}: the Midtrans Snap round trip
--   pdf            data is rendered as a PDF
--   batch          concurrent calls share a round trip (api.<function>_batch)
--   money          moves money: an idempotency key, sent again with it
--   form           a form-encoded body is read like a query string (RFC 8058 one-click)
CREATE FUNCTION paas.route_flag_names() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY['paginated', 'tokens', 'builtin', 'rate_login', 'rate_register', 'rate_refresh',
				 'no_db', 'snap', 'pdf', 'batch', 'money', 'form', 'k8s'];
COMMENT ON FUNCTION paas.route_flag_names() IS
	'the route flags the gateway knows (httpd/httpd.h enum route_flags, lower case, no ROUTE_ prefix)';

-- Whether every flag is known and none is listed twice.
CREATE FUNCTION paas.route_flags_ok(flags text[]) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN flags <@ paas.route_flag_names()
		   AND (SELECT count(*) = count(DISTINCT f) FROM unnest(flags) f);
COMMENT ON FUNCTION paas.route_flags_ok(text[]) IS
	'whether route flags are known (paas.route_flag_names()) and distinct';

-- The access rules (httpd/httpd.h, enum access).
CREATE FUNCTION paas.route_access_names() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY['public', 'user', 'admin', 'node', 'local'];
COMMENT ON FUNCTION paas.route_access_names() IS
	'the access rules of routes: public, user (access token), admin, node (node token), local (the metrics listener, or an admin''s token)';

-- The error statuses a route may list (the SQLSTATE classes of httpd/errors.c).
CREATE FUNCTION paas.route_error_names() RETURNS integer[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY[400, 401, 402, 403, 404, 409, 413, 429, 502, 503];
COMMENT ON FUNCTION paas.route_error_names() IS
	'the error statuses a route can declare (httpd/errors.c)';

-- Whether a path pattern is canonical: "/" then segments of lower-case
-- letters, digits, ".", "_" and "-" (at most 63 characters, the matcher's
-- bound) or captures ":name" (camelCase), no empty segment, no trailing
-- slash, at most 4 captures (MAX_PARAMS of httpd.h) with distinct names.
CREATE FUNCTION paas.route_path_ok(path text) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN path ~ '^(/([a-z0-9][a-z0-9._-]{0,62}|:[a-z][A-Za-z0-9]{0,62}))+$'
		   AND (SELECT count(*) <= 4 AND count(*) = count(DISTINCT m[1])
				  FROM regexp_matches(path, '/:([^/]+)', 'g') m);
COMMENT ON FUNCTION paas.route_path_ok(text) IS
	'whether a route path is canonical (lower-case literals, :camelCase captures, no trailing slash, at most 4 captures)';

-- The captures of a path, in order: "/users/:id/x/:k" -> {id, k}.
CREATE FUNCTION paas.route_captures(path text) RETURNS text[]
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN ARRAY(SELECT m[1] FROM regexp_matches(path, '/:([^/]+)', 'g') m);
COMMENT ON FUNCTION paas.route_captures(text) IS 'the capture names of a route path, in order';

-- The shape of a path, captures unnamed: two routes of one method and one
-- shape would be the same route ("/services/:id" = "/services/:name").
CREATE FUNCTION paas.route_shape(path text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN regexp_replace(path, '/:[^/]+', '/:', 'g');
COMMENT ON FUNCTION paas.route_shape(text) IS 'a route path with its captures unnamed';

-- "/api/v1/users/:id" -> "/api/v1/users/{id}"
CREATE FUNCTION paas.route_openapi_path(path text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN regexp_replace(path, '/:([^/]+)', '/{\1}', 'g');
COMMENT ON FUNCTION paas.route_openapi_path(text) IS 'a route path as an OpenAPI path template';

-- The default operationId: the function's name in camelCase
-- (api.users_list -> usersList); for a built-in route, its last path
-- segment up to the first dot (/api/v1/openapi.json -> openapi).
CREATE FUNCTION paas.route_operation_id(fn regprocedure, path text) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN CASE WHEN fn IS NULL
				THEN lower(regexp_replace(split_part(regexp_replace(path, '^.*/', ''), '.', 1), '[^A-Za-z0-9]', '', 'g'))
				ELSE (SELECT string_agg(CASE WHEN w.n = 1 THEN w.part ELSE initcap(w.part) END, '' ORDER BY w.n)
						FROM pg_proc p
					   CROSS JOIN LATERAL unnest(string_to_array(p.proname, '_')) WITH ORDINALITY AS w (part, n)
					   WHERE p.oid = fn) END;
COMMENT ON FUNCTION paas.route_operation_id(regprocedure, text) IS
	'the default operationId of a route: its function''s name in camelCase';

------------------------------------------------------------------------------
-- tables
------------------------------------------------------------------------------

CREATE TABLE paas.route_tags (
	name		text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{0,62}$'),
	seq			integer NOT NULL UNIQUE,
	description	text NOT NULL CHECK (char_length(description) BETWEEN 1 AND 500)
);
COMMENT ON TABLE paas.route_tags IS
	'the OpenAPI tags of routes, in document order';

-- components.schemas of the OpenAPI document; routes refer to them as
-- {"$ref": "#/components/schemas/<name>"}.
CREATE TABLE paas.route_schemas (
	name		text PRIMARY KEY CHECK (name ~ '^[A-Z][A-Za-z0-9]{0,62}$'),
	schema		jsonb NOT NULL CHECK (jsonb_typeof(schema) = 'object')
);
COMMENT ON TABLE paas.route_schemas IS
	'shared JSON Schemas of the OpenAPI document (components.schemas)';

-- other_replies: {"200": "message", ...}, success statuses other than the
-- route's own, each with its message.
CREATE FUNCTION paas.route_other_replies_ok(r jsonb) RETURNS boolean
	LANGUAGE sql IMMUTABLE
	RETURN jsonb_typeof(r) = 'object'
		AND NOT EXISTS (SELECT 1 FROM jsonb_each(r) e
						 WHERE e.key !~ '^2[0-9][0-9]$' OR jsonb_typeof(e.value) <> 'string'
							OR char_length(e.value #>> '{}') NOT BETWEEN 1 AND 200);
COMMENT ON FUNCTION paas.route_other_replies_ok(jsonb) IS
	'whether a route''s other_replies maps success statuses (200-299) to messages';

CREATE TABLE paas.routes (
	seq				integer GENERATED BY DEFAULT AS IDENTITY UNIQUE,
	method			text NOT NULL CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
	path			text NOT NULL CHECK (paas.route_path_ok(path)),
	function		regprocedure,
	access			text NOT NULL CONSTRAINT routes_access_known CHECK (access = ANY (paas.route_access_names())),
	status			integer NOT NULL CHECK (status BETWEEN 200 AND 299),
	message			text NOT NULL CHECK (char_length(message) BETWEEN 1 AND 200),
	other_replies	jsonb NOT NULL DEFAULT '{}' CONSTRAINT routes_other_replies_ok
					CHECK (paas.route_other_replies_ok(other_replies)),
	flags			text[] NOT NULL DEFAULT '{}'
					CONSTRAINT routes_flags_known CHECK (paas.route_flags_ok(flags)),
	tag				text NOT NULL REFERENCES paas.route_tags (name),
	operation_id	text NOT NULL UNIQUE CHECK (operation_id ~ '^[a-z][A-Za-z0-9]{0,99}$'),
	summary			text NOT NULL CHECK (char_length(summary) BETWEEN 1 AND 120),
	description		text,			-- NULL: the function's comment
	request_schema	jsonb CHECK (jsonb_typeof(request_schema) = 'object'),
	query_schema	jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(query_schema) = 'object'),
	path_schema		jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(path_schema) = 'object'),
	header_schema	jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(header_schema) = 'object'),
	request_required boolean NOT NULL DEFAULT false,
	response_type	text NOT NULL DEFAULT 'envelope'
					CHECK (response_type IN ('envelope', 'json', 'pdf', 'text')),
	response_schema	jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(response_schema) = 'object'),
	errors			integer[] NOT NULL DEFAULT '{}'
					CONSTRAINT routes_errors_known CHECK (errors <@ paas.route_error_names()),
	security		jsonb CHECK (jsonb_typeof(security) = 'array'),	-- NULL: from access
	PRIMARY KEY (method, path),
	CONSTRAINT routes_builtin_has_no_function CHECK ((function IS NULL) = ('builtin' = ANY (flags))),
	CONSTRAINT routes_pdf_response CHECK ((response_type = 'pdf') = ('pdf' = ANY (flags))),
	CONSTRAINT routes_no_db_is_builtin CHECK (NOT 'no_db' = ANY (flags) OR 'builtin' = ANY (flags)),
	CONSTRAINT routes_required_body_has_schema CHECK (NOT request_required OR request_schema IS NOT NULL)
);
CREATE UNIQUE INDEX routes_shape_key ON paas.routes (method, paas.route_shape(path));
COMMENT ON TABLE paas.routes IS
	'the gateway''s HTTP routes (one api function each) and what the OpenAPI document says about them';
COMMENT ON COLUMN paas.routes.seq IS
	'table order: ties of the matcher go to the first row; a path template is named after the first route of its shape';
COMMENT ON COLUMN paas.routes.function IS
	'api.<name>(jsonb, jsonb) called with (request, context); NULL for the routes httpd answers itself';
COMMENT ON COLUMN paas.routes.other_replies IS
	'success statuses the function may answer instead of status (through response.status): "status" -> message';
COMMENT ON COLUMN paas.routes.flags IS 'gateway flags: see paas.route_flag_names()';
COMMENT ON COLUMN paas.routes.request_schema IS 'JSON Schema of the request body; NULL when the route reads none';
COMMENT ON COLUMN paas.routes.request_required IS 'whether the route needs a request body';
COMMENT ON COLUMN paas.routes.query_schema IS 'query parameters: name -> JSON Schema (its description documents the parameter)';
COMMENT ON COLUMN paas.routes.path_schema IS 'path captures: name -> JSON Schema, where paas.route_path_param() is not enough';
COMMENT ON COLUMN paas.routes.header_schema IS 'request headers the function reads: name -> JSON Schema';
COMMENT ON COLUMN paas.routes.response_type IS
	'envelope: JSON success envelope around data; json: a bare JSON document; pdf: application/pdf; text: text/plain';
COMMENT ON COLUMN paas.routes.response_schema IS
	'JSON Schema of the envelope''s data (envelope), or of the whole body (json)';
COMMENT ON COLUMN paas.routes.errors IS
	'error statuses the function answers; api.openapi() adds those of the access rule, the flags and the gateway';
COMMENT ON COLUMN paas.routes.security IS 'OpenAPI security requirements; NULL: derived from access';

-- operationId defaults to the function's name in camelCase.
CREATE FUNCTION paas.routes_fill() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	NEW.operation_id := coalesce(NEW.operation_id, paas.route_operation_id(NEW.function, NEW.path));
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.routes_fill() IS 'fills a route''s default operationId';
CREATE TRIGGER routes_fill BEFORE INSERT OR UPDATE ON paas.routes
	FOR EACH ROW EXECUTE FUNCTION paas.routes_fill();

-- A gateway listening on "paas_routes" reloads its table.
CREATE FUNCTION paas.routes_notify() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM pg_notify('paas_routes', TG_TABLE_NAME || ' ' || lower(TG_OP));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.routes_notify() IS
	'notifies channel paas_routes that the route table (or its schemas or tags) changed';
CREATE TRIGGER routes_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON paas.routes
	FOR EACH STATEMENT EXECUTE FUNCTION paas.routes_notify();
CREATE TRIGGER route_schemas_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON paas.route_schemas
	FOR EACH STATEMENT EXECUTE FUNCTION paas.routes_notify();
CREATE TRIGGER route_tags_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON paas.route_tags
	FOR EACH STATEMENT EXECUTE FUNCTION paas.routes_notify();

REVOKE ALL ON paas.routes, paas.route_schemas, paas.route_tags FROM PUBLIC;
GRANT SELECT ON paas.routes, paas.route_schemas, paas.route_tags TO paas_owner;

-- The rows below are the extension's (see the header): not registered for
-- pg_dump, CREATE EXTENSION writes them again on restore.

------------------------------------------------------------------------------
-- tags
------------------------------------------------------------------------------

INSERT INTO paas.route_tags (name, seq, description) VALUES
	('system', 1, 'Health, status, this document, metrics and the background jobs'),
	('auth', 2, 'The caller''s own account: registration, login, token rotation, profile, password, logout'),
	('users', 3, 'Account management by administrators'),
	('services', 4, 'The service catalog: public listing and administration'),
	('workers', 5, 'Worker nodes: the administrators'' registry and the routes nodes call with their node token'),
	('billing', 6, 'The caller''s wallet: balance, Midtrans top-ups, the transaction feed, invoices, dashboards'),
	('admin-billing', 7, 'Administrators'' view of the ledger and manual adjustments'),
	('subscriptions', 8, 'The caller''s subscriptions, paid monthly from the wallet'),
	('admin-subscriptions', 9, 'Every subscription, for administrators');

------------------------------------------------------------------------------
-- components.schemas
------------------------------------------------------------------------------

INSERT INTO paas.route_schemas (name, schema)
SELECT key, value FROM jsonb_each($schemas$
{
  "FieldError": {
    "type": "object",
    "description": "One failing field of a request.",
    "required": ["field", "message"],
    "properties": {
      "field": {"type": "string", "description": "the field's name or path; empty when the error is about the whole request"},
      "message": {"type": "string"}
    }
  },
  "Error": {
    "type": "object",
    "description": "The error envelope: every error answer of the API has this shape.",
    "required": ["success", "message", "code", "details", "timestamp", "statusCode"],
    "properties": {
      "success": {"const": false},
      "message": {"type": "string"},
      "code": {
        "type": "string",
        "enum": ["VALIDATION_ERROR", "AUTH_ERROR", "INSUFFICIENT_BALANCE", "FORBIDDEN_ERROR", "NOT_FOUND_ERROR",
                 "ENDPOINT_NOT_FOUND", "CONFLICT_ERROR", "PAYLOAD_TOO_LARGE", "RATE_LIMITED", "GATEWAY_ERROR",
                 "SERVICE_UNAVAILABLE", "INTERNAL_ERROR", "INVALID_PASSWORD", "USER_NOT_FOUND", "USER_EXISTS",
                 "EMAIL_EXISTS", "SERVICE_NOT_FOUND", "SERVICE_EXISTS", "WORKER_NODE_NOT_FOUND",
                 "WORKER_NODE_EXISTS"],
        "description": "the generic code of the status, or the original API's specific one where it had one: INVALID_PASSWORD (400, POST /auth/change-password), USER_NOT_FOUND (404, /users/:id), USER_EXISTS (409, POST /users), EMAIL_EXISTS (409, PUT /users/:id), SERVICE_NOT_FOUND (404, /services/:name and /services/:id routes), SERVICE_EXISTS (409, POST /services), WORKER_NODE_NOT_FOUND (404, /workers/:nodeId routes), WORKER_NODE_EXISTS (409, a node name or hostname taken)"
      },
      "details": {
        "type": ["array", "null"],
        "description": "the failing fields (as errors), or null",
        "items": {"$ref": "#/components/schemas/FieldError"}
      },
      "errors": {
        "type": "array",
        "description": "every failing field, when the error is about fields",
        "items": {"$ref": "#/components/schemas/FieldError"}
      },
      "timestamp": {"type": "string", "format": "date-time"},
      "statusCode": {"type": "integer", "description": "always the HTTP status"}
    }
  },
  "Success": {
    "type": "object",
    "description": "The success envelope around the route's data.",
    "required": ["success", "message", "data", "timestamp", "statusCode"],
    "properties": {
      "success": {"const": true},
      "message": {"type": "string"},
      "data": {},
      "timestamp": {"type": "string", "format": "date-time"},
      "statusCode": {"type": "integer", "description": "always the HTTP status"}
    }
  },
  "PaginatedSuccess": {
    "description": "The success envelope of a list: data is one page, pagination tells where it is.",
    "allOf": [
      {"$ref": "#/components/schemas/Success"},
      {"type": "object", "required": ["pagination"], "properties": {"pagination": {"$ref": "#/components/schemas/Pagination"}}}
    ]
  },
  "Pagination": {
    "type": "object",
    "required": ["page", "limit", "total", "totalPages", "hasNext", "hasPrev"],
    "properties": {
      "page": {"type": "integer", "minimum": 1},
      "limit": {"type": "integer", "minimum": 1},
      "total": {"type": "integer", "minimum": 0},
      "totalPages": {"type": "integer", "minimum": 0},
      "hasNext": {"type": "boolean"},
      "hasPrev": {"type": "boolean"}
    }
  },
  "ListPagination": {
    "type": "object",
    "description": "The original system's pagination inside data (the envelope carries the standard one too).",
    "required": ["currentPage", "totalPages", "totalCount", "hasNext", "hasPrev"],
    "properties": {
      "currentPage": {"type": "integer", "minimum": 1},
      "totalPages": {"type": "integer", "minimum": 0},
      "totalCount": {"type": "integer", "minimum": 0},
      "hasNext": {"type": "boolean"},
      "hasPrev": {"type": "boolean"}
    }
  },
  "Amount": {
    "type": "integer",
    "description": "an amount of money in whole rupiah (IDR)"
  },
  "Role": {"type": "string", "enum": ["USER", "ADMINISTRATOR"]},
  "User": {
    "type": "object",
    "description": "An account, as the API prints it (never its password).",
    "required": ["id", "name", "email", "role", "isActive", "createdAt", "updatedAt"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string"},
      "email": {"type": "string", "format": "email"},
      "role": {"$ref": "#/components/schemas/Role"},
      "isActive": {"type": "boolean"},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"}
    }
  },
  "UserRef": {
    "type": "object",
    "required": ["id", "name", "email"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string"},
      "email": {"type": "string", "format": "email"}
    }
  },
  "Session": {
    "type": "object",
    "description": "A login: the account, a fresh access token (JWT) and the session's refresh token (single use: a refresh rotates it).",
    "required": ["user", "accessToken", "refreshToken", "expiresIn", "tokens"],
    "properties": {
      "user": {"$ref": "#/components/schemas/User"},
      "accessToken": {"type": "string", "description": "JWT (HS256) for Authorization: Bearer"},
      "refreshToken": {"type": "string"},
      "expiresIn": {"type": "integer", "description": "seconds until the access token expires"},
      "tokens": {
        "type": "object",
        "required": ["accessToken", "refreshToken", "expiresIn"],
        "properties": {
          "accessToken": {"type": "string"},
          "refreshToken": {"type": "string"},
          "expiresIn": {"type": "integer"}
        }
      }
    }
  },
  "Password": {
    "type": "string",
    "description": "8 to 128 characters with a lower-case letter, an upper-case letter and a digit",
    "minLength": 8,
    "maxLength": 128,
    "pattern": "^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])"
  },
  "Email": {
    "type": "string",
    "format": "email",
    "minLength": 3,
    "maxLength": 254,
    "pattern": "^[^@\\s]+@[^@\\s]+\\.[^@\\s.]{2,}$"
  },
  "ServiceResources": {
    "type": "object",
    "description": "The service's limits: CPU in millicores, memory in MiB, storage in GiB.",
    "required": ["cpuMillicores", "memoryMiB", "storageGiB"],
    "properties": {
      "cpuMillicores": {"type": "integer", "minimum": 1, "maximum": 64000},
      "memoryMiB": {"type": "integer", "minimum": 16, "maximum": 262144},
      "storageGiB": {"type": "integer", "minimum": 0, "maximum": 10240}
    }
  },
  "ServicePublic": {
    "type": "object",
    "description": "A catalog service as anyone may see it.",
    "required": ["id", "name", "displayName", "description", "category", "version", "resources", "monthlyPrice",
                 "features", "isActive"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string", "description": "the slug", "pattern": "^[a-z0-9-]{2,50}$"},
      "displayName": {"type": "string"},
      "description": {"type": "string"},
      "category": {"$ref": "#/components/schemas/ServiceCategory"},
      "version": {"type": "string"},
      "resources": {"$ref": "#/components/schemas/ServiceResources"},
      "monthlyPrice": {"$ref": "#/components/schemas/Amount"},
      "features": {"type": "array", "items": {"type": "string"}},
      "isActive": {"type": "boolean"}
    }
  },
  "Service": {
    "description": "A catalog service with every field (administrators).",
    "allOf": [
      {"$ref": "#/components/schemas/ServicePublic"},
      {
        "type": "object",
        "required": ["dockerImage", "containerPort", "defaultPort", "cpuRequest", "cpuLimit", "memRequest", "memLimit",
                     "environmentVars", "createdAt", "updatedAt"],
        "properties": {
          "dockerImage": {"type": "string"},
          "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
          "defaultPort": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "the same as containerPort"},
          "cpuRequest": {"type": "string", "description": "cores, e.g. \"0.25\""},
          "cpuLimit": {"type": "string", "description": "cores, e.g. \"1\""},
          "memRequest": {"type": "string", "description": "e.g. \"512Mi\""},
          "memLimit": {"type": "string", "description": "e.g. \"1Gi\""},
          "environmentVars": {"type": "object", "additionalProperties": {"type": "string"}},
          "createdAt": {"type": "string", "format": "date-time"},
          "updatedAt": {"type": "string", "format": "date-time"}
        }
      }
    ]
  },
  "ServiceInput": {
    "type": "object",
    "description": "The fields of a service. Surrounding blanks of displayName, description, version and dockerImage do not count. Limits may be given as the original strings (cpuLimit, memLimit) or as resources; when both are given they must agree; a request may not exceed its limit.",
    "properties": {
      "name": {"type": "string", "minLength": 2, "maxLength": 50, "pattern": "^[a-z0-9-]+$", "not": {"enum": ["admin", "categories"]},
               "description": "the slug; set once, at creation"},
      "displayName": {"type": "string", "minLength": 2, "maxLength": 100},
      "description": {"type": "string", "minLength": 10, "maxLength": 500},
      "category": {"$ref": "#/components/schemas/ServiceCategory"},
      "version": {"type": "string", "minLength": 1, "maxLength": 50, "default": "latest"},
      "dockerImage": {"type": "string", "minLength": 1, "maxLength": 255, "description": "an image reference such as nginx:1.27 or ghcr.io/org/app:tag"},
      "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 80},
      "defaultPort": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "the original's name of containerPort"},
      "monthlyPrice": {"type": "integer", "minimum": 0, "maximum": 1000000000, "default": 0},
      "isActive": {"type": "boolean", "default": true},
      "features": {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1, "maxLength": 200}},
      "environmentVars": {
        "type": "object",
        "maxProperties": 100,
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
        "additionalProperties": {"type": "string", "maxLength": 4096}
      },
      "resources": {
        "type": "object",
        "properties": {
          "cpuMillicores": {"type": "integer", "minimum": 1, "maximum": 64000},
          "memoryMiB": {"type": "integer", "minimum": 16, "maximum": 262144},
          "storageGiB": {"type": "integer", "minimum": 0, "maximum": 10240}
        }
      },
      "cpuRequest": {"$ref": "#/components/schemas/CpuQuantity"},
      "cpuLimit": {"$ref": "#/components/schemas/CpuQuantity"},
      "memRequest": {"$ref": "#/components/schemas/MemoryQuantity"},
      "memLimit": {"$ref": "#/components/schemas/MemoryQuantity"}
    }
  },
  "CpuQuantity": {
    "type": "string",
    "description": "cores (\"0.25\", \"2\", up to 3 decimals) or millicores (\"500m\"), at most 64 cores",
    "pattern": "^([0-9]{1,6}m|[0-9]{1,3}(\\.[0-9]{1,3})?)$"
  },
  "MemoryQuantity": {
    "type": "string",
    "description": "\"512Mi\" or \"2Gi\", between 16Mi and 256Gi",
    "pattern": "^([0-9]{1,7}Mi|[0-9]{1,4}Gi)$"
  },
  "NodeStatus": {"type": "string", "enum": ["ACTIVE", "INACTIVE", "MAINTENANCE", "PENDING", "NOT_READY"]},
  "NodeDrain": {
    "type": "object",
    "required": ["id", "nodeId", "nodeName", "cause", "state", "requestedBy", "timeoutSeconds", "deadline", "attempts",
                 "blocked", "evicted", "skipped", "remaining", "createdAt", "updatedAt", "statusUrl"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "nodeId": {"type": "string", "format": "uuid"},
      "nodeName": {"type": "string"},
      "cause": {"type": "string", "enum": ["drain", "maintenance"]},
      "state": {"type": "string", "enum": ["pending", "running", "complete", "incomplete", "cancelled"]},
      "requestedBy": {"type": "string", "description": "admin:<user id> or dba:<role>"},
      "reason": {"type": ["string", "null"]},
      "timeoutSeconds": {"type": "integer"},
      "deadline": {"type": "string", "format": "date-time"},
      "attempts": {"type": "integer", "description": "passes made"},
      "retryAt": {"type": ["string", "null"], "format": "date-time", "description": "the next pass of a live drain"},
      "blocked": {"type": "integer", "description": "pods whose last eviction a PodDisruptionBudget refused (429)"},
      "evicted": {"type": "array", "items": {"type": "object", "properties": {
        "namespace": {"type": "string"}, "name": {"type": "string"}, "at": {"type": "string", "format": "date-time"}}}},
      "skipped": {"type": "array", "items": {"type": "object", "properties": {
        "namespace": {"type": "string"}, "name": {"type": "string"}, "why": {"type": "string"}}}},
      "remaining": {"type": "array", "description": "pods still on the node (after the deadline: those it left)",
        "items": {"type": "object", "properties": {
          "namespace": {"type": "string"}, "name": {"type": "string"},
          "state": {"type": "string", "enum": ["evicting", "evicted", "blocked", "error", "terminating"]},
          "status": {"type": "integer", "description": "the Eviction API's answer"},
          "message": {"type": "string"}}}},
      "lastError": {"type": ["string", "null"]},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"},
      "finishedAt": {"type": ["string", "null"], "format": "date-time"},
      "statusUrl": {"type": "string"}
    }
  },
  "Quantity": {
    "type": "string",
    "pattern": "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$",
    "description": "a non-negative Kubernetes quantity string (\"16Gi\", \"500G\", \"16331368Ki\"; digits alone are bytes, as Kubernetes reads them); a JSON number is refused (400): it has no unit"
  },
  "CpuAmount": {
    "type": ["string", "number"],
    "minimum": 0,
    "pattern": "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$",
    "description": "CPU: a Kubernetes quantity string (\"3800m\", \"1.5\") or a JSON number, both in cores"
  },
  "Taint": {
    "type": "object",
    "required": ["key", "effect"],
    "properties": {
      "key": {"type": "string"},
      "value": {"type": ["string", "null"]},
      "effect": {"type": "string", "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]}
    }
  },
  "NodeSpec": {
    "type": "object",
    "description": "A worker node in the original system's field set.",
    "properties": {
      "name": {"type": "string", "minLength": 2, "maxLength": 253, "pattern": "^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"},
      "hostname": {"type": "string", "minLength": 1, "maxLength": 255},
      "ipAddress": {"type": "string", "minLength": 2, "maxLength": 64, "description": "an IPv4 or IPv6 address"},
      "architecture": {"type": "string", "enum": ["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"], "default": "amd64"},
      "operatingSystem": {"type": "string", "minLength": 1, "maxLength": 64, "default": "linux"},
      "cpuCores": {"type": "integer", "minimum": 1, "maximum": 100000},
      "cpuArchitecture": {"type": "string", "minLength": 1, "maxLength": 255},
      "totalMemory": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string (\"64Gi\"); a number is refused"},
      "totalStorage": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string (\"1Ti\"); a number is refused"},
      "allocatedCPU": {"$ref": "#/components/schemas/CpuAmount"},
      "allocatedMemory": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string; a number is refused (numbers in MB are for heartbeats)"},
      "allocatedStorage": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string; a number is refused (numbers in GB are for heartbeats)"},
      "maxPods": {"type": "integer", "minimum": 1, "maximum": 1000000},
      "currentPods": {"type": "integer", "minimum": 0, "maximum": 1000000},
      "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
      "taints": {"type": "array", "items": {"$ref": "#/components/schemas/Taint"}},
      "kubeletVersion": {"type": "string", "maxLength": 255},
      "containerRuntime": {"type": "string", "maxLength": 255},
      "kernelVersion": {"type": "string", "maxLength": 255},
      "osImage": {"type": "string", "maxLength": 255}
    }
  },
  "NodeRegistration": {
    "description": "A registration in the original system's field set.",
    "type": "object",
    "allOf": [{"$ref": "#/components/schemas/NodeSpec"}],
    "required": ["name", "hostname", "ipAddress", "cpuCores", "cpuArchitecture", "totalMemory", "totalStorage"],
    "properties": {
      "isReady": {"type": "boolean", "default": true},
      "registrationToken": {"type": "string", "description": "the join token, when it is not sent as the bearer token"}
    }
  },
  "NodeReport": {
    "type": "object",
    "description": "What a node reports about itself: allocation, usage, pods; a heartbeat may add its readiness.",
    "properties": {
      "allocatedCPU": {"$ref": "#/components/schemas/CpuAmount"},
      "allocatedMemory": {
        "description": "a quantity string (\"512Mi\"), or as in the original heartbeat a whole JSON number of MB, counted in MiB (512 is \"512Mi\")",
        "oneOf": [{"$ref": "#/components/schemas/Quantity"}, {"type": "integer", "minimum": 0}]
      },
      "allocatedStorage": {
        "description": "a quantity string (\"10Gi\"), or as in the original heartbeat a whole JSON number of GB, counted in GiB (10 is \"10Gi\")",
        "oneOf": [{"$ref": "#/components/schemas/Quantity"}, {"type": "integer", "minimum": 0}]
      },
      "cpuUsage": {"$ref": "#/components/schemas/CpuAmount"},
      "memoryUsage": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string (\"16331368Ki\"); a number is refused"},
      "storageUsage": {"$ref": "#/components/schemas/Quantity", "description": "a quantity string (\"21474836480\" is bytes); a number is refused"},
      "currentPods": {"type": "integer", "minimum": 0, "maximum": 1000000}
    }
  },
  "KubernetesNode": {
    "type": "object",
    "description": "A Kubernetes Node object as `kubectl get node NAME -o json` prints it.",
    "required": ["kind", "metadata", "status"],
    "properties": {
      "apiVersion": {"type": "string"},
      "kind": {"const": "Node"},
      "metadata": {
        "type": "object",
        "required": ["name"],
        "properties": {
          "name": {"type": "string"},
          "uid": {"type": "string"},
          "labels": {"type": "object", "additionalProperties": {"type": "string"}},
          "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
        }
      },
      "spec": {
        "type": "object",
        "properties": {
          "providerID": {"type": "string"},
          "podCIDR": {"type": "string"},
          "unschedulable": {"type": "boolean"},
          "taints": {"type": "array", "items": {"$ref": "#/components/schemas/Taint"}}
        }
      },
      "status": {
        "type": "object",
        "required": ["capacity"],
        "properties": {
          "capacity": {
            "type": "object",
            "required": ["cpu", "memory"],
            "properties": {
              "cpu": {"$ref": "#/components/schemas/CpuAmount"},
              "memory": {"$ref": "#/components/schemas/Quantity"},
              "ephemeral-storage": {"$ref": "#/components/schemas/Quantity"},
              "pods": {"oneOf": [{"$ref": "#/components/schemas/Quantity"}, {"type": "integer", "minimum": 0}]}
            },
            "additionalProperties": {"$ref": "#/components/schemas/Quantity"}
          },
          "allocatable": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Quantity"}},
          "addresses": {
            "type": "array",
            "description": "must hold an InternalIP or ExternalIP",
            "items": {"type": "object", "properties": {"type": {"type": "string"}, "address": {"type": "string"}}}
          },
          "conditions": {"type": "array", "items": {"type": "object"}},
          "nodeInfo": {"type": "object"}
        }
      }
    }
  },
  "KubernetesNodeList": {
    "type": "object",
    "description": "A List holding exactly one Node.",
    "required": ["kind", "items"],
    "properties": {
      "apiVersion": {"type": "string"},
      "kind": {"const": "List"},
      "items": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"$ref": "#/components/schemas/KubernetesNode"}}
    }
  },
  "NodeResources": {
    "type": "object",
    "required": ["cpuMillicores", "memoryBytes", "storageBytes", "pods"],
    "properties": {
      "cpuMillicores": {"type": "integer"},
      "memoryBytes": {"type": "integer"},
      "storageBytes": {"type": "integer"},
      "pods": {"type": "integer"}
    }
  },
  "NodeAllocation": {
    "type": "object",
    "description": "What is allocated on the node, absolute and in percent of allocatable (null when allocatable is 0).",
    "required": ["cpuMillicores", "memoryBytes", "storageBytes", "pods", "cpuPercent", "memoryPercent", "storagePercent",
                 "podsPercent"],
    "properties": {
      "cpuMillicores": {"type": "integer"},
      "memoryBytes": {"type": "integer"},
      "storageBytes": {"type": "integer"},
      "pods": {"type": "integer"},
      "cpuPercent": {"type": ["number", "null"]},
      "memoryPercent": {"type": ["number", "null"]},
      "storagePercent": {"type": ["number", "null"]},
      "podsPercent": {"type": ["number", "null"]}
    }
  },
  "NodeUsage": {
    "type": "object",
    "description": "What the node last reported using (null until it reports), in percent of capacity.",
    "required": ["cpuMillicores", "memoryBytes", "storageBytes", "cpuPercent", "memoryPercent", "storagePercent"],
    "properties": {
      "cpuMillicores": {"type": ["integer", "null"]},
      "memoryBytes": {"type": ["integer", "null"]},
      "storageBytes": {"type": ["integer", "null"]},
      "cpuPercent": {"type": ["number", "null"]},
      "memoryPercent": {"type": ["number", "null"]},
      "storagePercent": {"type": ["number", "null"]}
    }
  },
  "Node": {
    "type": "object",
    "description": "A worker node: the original's fields and the Kubernetes view (capacity, allocatable, conditions).",
    "required": ["id", "name", "hostname", "ipAddress", "addresses", "architecture", "operatingSystem", "cpuCores",
                 "cpuArchitecture", "totalMemory", "totalStorage", "allocatedCPU", "allocatedMemory", "allocatedStorage",
                 "maxPods", "currentPods", "status", "isReady", "isSchedulable", "unschedulable", "lastHeartbeat",
                 "lastHealthCheck", "labels", "taints", "conditions", "kubeletVersion", "containerRuntime",
                 "kernelVersion", "osImage", "providerId", "podCidr", "kubeUid", "capacity", "allocatable",
                 "allocation", "usage", "agentClockSkewMs", "registeredAt", "statusChangedAt", "createdAt", "updatedAt"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string"},
      "hostname": {"type": "string"},
      "ipAddress": {"type": "string"},
      "addresses": {"description": "Kubernetes NodeAddress objects [{type, address}] as registered"},
      "architecture": {"type": "string"},
      "operatingSystem": {"type": "string"},
      "cpuCores": {"type": "integer"},
      "cpuArchitecture": {"type": "string"},
      "totalMemory": {"type": "string"},
      "totalStorage": {"type": "string"},
      "allocatedCPU": {"type": "string"},
      "allocatedMemory": {"type": "string"},
      "allocatedStorage": {"type": "string"},
      "maxPods": {"type": "integer"},
      "currentPods": {"type": "integer"},
      "status": {"$ref": "#/components/schemas/NodeStatus"},
      "isReady": {"type": "boolean"},
      "isSchedulable": {"type": "boolean", "description": "ACTIVE, ready and not cordoned"},
      "unschedulable": {"type": "boolean", "description": "cordoned by an administrator or the node"},
      "lastHeartbeat": {"type": ["string", "null"], "format": "date-time"},
      "lastHealthCheck": {"type": ["string", "null"], "format": "date-time"},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}},
      "taints": {"type": "array", "items": {"$ref": "#/components/schemas/Taint"}},
      "conditions": {"description": "Kubernetes NodeCondition objects as last reported"},
      "kubeletVersion": {"type": ["string", "null"]},
      "containerRuntime": {"type": ["string", "null"]},
      "kernelVersion": {"type": ["string", "null"]},
      "osImage": {"type": ["string", "null"]},
      "providerId": {"type": ["string", "null"]},
      "podCidr": {"type": ["string", "null"]},
      "kubeUid": {"type": ["string", "null"]},
      "capacity": {"$ref": "#/components/schemas/NodeResources"},
      "allocatable": {"$ref": "#/components/schemas/NodeResources"},
      "allocation": {"$ref": "#/components/schemas/NodeAllocation"},
      "usage": {"$ref": "#/components/schemas/NodeUsage"},
      "agentClockSkewMs": {"type": ["integer", "null"], "description": "the agent's clock minus the server's, at the last heartbeat that sent agentTime"},
      "registeredAt": {"type": ["string", "null"], "format": "date-time"},
      "statusChangedAt": {"type": "string", "format": "date-time"},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"}
    }
  },
  "JoinToken": {
    "type": "object",
    "description": "A cluster join token, without its secret.",
    "required": ["id", "note", "createdAt", "expiresAt", "revokedAt", "lastUsedAt", "isValid"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "note": {"type": ["string", "null"]},
      "createdAt": {"type": "string", "format": "date-time"},
      "expiresAt": {"type": ["string", "null"], "format": "date-time"},
      "revokedAt": {"type": ["string", "null"], "format": "date-time"},
      "lastUsedAt": {"type": ["string", "null"], "format": "date-time"},
      "isValid": {"type": "boolean"}
    }
  },
  "InvoiceRef": {
    "type": "object",
    "required": ["id", "invoiceNumber", "status"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "invoiceNumber": {"type": "string"},
      "status": {"$ref": "#/components/schemas/InvoiceStatus"}
    }
  },
  "InvoiceStatus": {"type": "string", "enum": ["PAID", "VOID", "ISSUED"]},
  "TopUp": {
    "type": "object",
    "description": "A credit top-up paid through Midtrans Snap.",
    "required": ["id", "transactionId", "orderId", "amount", "currency", "status", "snapToken", "redirectUrl",
                 "snapExpiresAt", "paymentType", "paidAt", "expiresAt", "expiredAt", "createdAt", "updatedAt", "invoice"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "transactionId": {"type": "string", "format": "uuid", "description": "the same as id (the original's name)"},
      "orderId": {"type": "string", "description": "the Midtrans order id of the latest payment link"},
      "amount": {"$ref": "#/components/schemas/Amount"},
      "currency": {"const": "IDR"},
      "status": {"type": "string", "enum": ["PENDING", "PAID", "FAILED", "EXPIRED", "CANCELLED", "REFUNDED"]},
      "snapToken": {"type": ["string", "null"]},
      "redirectUrl": {"type": ["string", "null"], "description": "the Snap payment page"},
      "snapExpiresAt": {"type": ["string", "null"], "format": "date-time"},
      "paymentType": {"type": ["string", "null"]},
      "paidAt": {"type": ["string", "null"], "format": "date-time"},
      "expiresAt": {"type": "string", "format": "date-time"},
      "expiredAt": {"type": "string", "format": "date-time", "description": "the same as expiresAt (the original's name)"},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"},
      "invoice": {"oneOf": [{"$ref": "#/components/schemas/InvoiceRef"}, {"type": "null"}]}
    }
  },
  "Transaction": {
    "type": "object",
    "description": "One money movement of the caller's wallet (top-ups of any status, refunds, charges, adjustments).",
    "required": ["id", "date", "createdAt", "type", "description", "amount", "currency", "direction", "status",
                 "balanceBefore", "balanceAfter", "reference", "referenceType", "paymentMethod", "paymentGateway",
                 "invoice", "actions"],
    "properties": {
      "id": {"type": "string", "description": "opaque: a top-up id, an order id or a ledger entry id"},
      "date": {"type": "string", "format": "date-time"},
      "createdAt": {"type": "string", "format": "date-time"},
      "type": {"type": "string", "enum": ["TOPUP", "SERVICE_PURCHASE", "REFUND", "ADJUSTMENT"]},
      "description": {"type": "string"},
      "amount": {"$ref": "#/components/schemas/Amount"},
      "currency": {"const": "IDR"},
      "direction": {"type": "string", "enum": ["CREDIT", "DEBIT"]},
      "status": {"type": "string", "enum": ["PENDING", "SUCCESS", "FAILED", "CANCELLED", "EXPIRED", "REFUNDED"]},
      "balanceBefore": {"type": ["integer", "null"], "description": "the wallet before the movement (null until it is posted)"},
      "balanceAfter": {"type": ["integer", "null"]},
      "reference": {"type": ["string", "null"]},
      "referenceType": {"type": ["string", "null"]},
      "paymentMethod": {"type": ["string", "null"]},
      "paymentGateway": {"type": ["string", "null"], "enum": ["MIDTRANS", "BALANCE", null]},
      "invoice": {"oneOf": [{"$ref": "#/components/schemas/InvoiceRef"}, {"type": "null"}]},
      "actions": {
        "type": "object",
        "required": ["canPay", "canCancel", "canDownloadInvoice"],
        "properties": {
          "canPay": {"type": "boolean"},
          "canCancel": {"type": "boolean"},
          "canDownloadInvoice": {"type": "boolean"}
        }
      }
    }
  },
  "InvoiceLine": {
    "type": "object",
    "required": ["description", "amount"],
    "properties": {
      "description": {"type": "string"},
      "quantity": {"type": "number"},
      "unitPrice": {"type": "number"},
      "amount": {"type": "number"}
    }
  },
  "Invoice": {
    "type": "object",
    "description": "An invoice (INV-YYYYMM-NNNNNN, gap-free per UTC month) or a credit note (CN-..., negative amount) that voids one.",
    "required": ["id", "invoiceNumber", "type", "amount", "currency", "status", "description", "lines", "reference",
                 "topUpTransactionId", "creditNoteFor", "voidedBy", "downloadCount", "issuedAt", "dueDate", "paidAt",
                 "createdAt"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "invoiceNumber": {"type": "string", "pattern": "^(INV|CN)-[0-9]{6}-[0-9]{6,}$"},
      "type": {"type": "string", "enum": ["TOPUP", "SUBSCRIPTION", "CREDIT_NOTE"]},
      "amount": {"$ref": "#/components/schemas/Amount"},
      "currency": {"const": "IDR"},
      "status": {"$ref": "#/components/schemas/InvoiceStatus"},
      "description": {"type": "string"},
      "lines": {"type": "array", "items": {"$ref": "#/components/schemas/InvoiceLine"}},
      "reference": {"type": "object"},
      "topUpTransactionId": {"type": ["string", "null"], "format": "uuid"},
      "creditNoteFor": {"type": ["string", "null"], "format": "uuid"},
      "voidedBy": {"type": ["string", "null"], "format": "uuid"},
      "downloadCount": {"type": "integer", "minimum": 0},
      "issuedAt": {"type": "string", "format": "date-time"},
      "dueDate": {"type": "string", "format": "date-time"},
      "paidAt": {"type": ["string", "null"], "format": "date-time"},
      "createdAt": {"type": "string", "format": "date-time"}
    }
  },
  "Counts": {
    "type": "object",
    "description": "The original's relation counts (_count): every subscription, of any status.",
    "required": ["subscriptions"],
    "properties": {"subscriptions": {"type": "integer", "minimum": 0}}
  },
  "InvoiceLinks": {
    "type": "object",
    "description": "The original's fields of an invoice: its owner, what it bills (a top-up or a subscription; null when not that kind), where its PDF is, when it last changed.",
    "required": ["userId", "subscriptionId", "pdfPath", "updatedAt", "topUpTransaction", "subscription"],
    "properties": {
      "userId": {"type": "string", "format": "uuid"},
      "subscriptionId": {"type": ["string", "null"], "format": "uuid"},
      "pdfPath": {"type": "string", "description": "the path of GET /billing/invoices/:id/pdf, which renders it"},
      "updatedAt": {"type": "string", "format": "date-time", "description": "issued, or voided by a credit note"},
      "topUpTransaction": {
        "oneOf": [
          {
            "type": "object",
            "required": ["id", "orderId", "paymentType"],
            "properties": {
              "id": {"type": "string", "format": "uuid"},
              "orderId": {"type": "string"},
              "paymentType": {"type": ["string", "null"]}
            }
          },
          {"type": "null"}
        ]
      },
      "subscription": {"oneOf": [{"$ref": "#/components/schemas/Subscription"}, {"type": "null"}]}
    }
  },
  "InvoiceNumberRef": {
    "type": "object",
    "required": ["id", "invoiceNumber"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "invoiceNumber": {"type": "string"}
    }
  },
  "InvoiceDetail": {
    "description": "An invoice with its owner, its top-up or subscription and the credit-note links spelled out.",
    "allOf": [
      {"$ref": "#/components/schemas/Invoice"},
      {"$ref": "#/components/schemas/InvoiceLinks"},
      {
        "type": "object",
        "required": ["user", "creditNoteFor", "voidedBy"],
        "properties": {
          "user": {"$ref": "#/components/schemas/UserRef"},
          "creditNoteFor": {"oneOf": [{"$ref": "#/components/schemas/InvoiceNumberRef"}, {"type": "null"}]},
          "voidedBy": {"oneOf": [{"$ref": "#/components/schemas/InvoiceNumberRef"}, {"type": "null"}]}
        }
      }
    ]
  },
  "SubscriptionStatus": {"type": "string", "enum": ["ACTIVE", "GRACE", "SUSPENDED", "CANCELLED", "EXPIRED"]},
  "Subscription": {
    "type": "object",
    "description": "A subscription to a catalog service, paid per calendar month (UTC) from the wallet.",
    "required": ["id", "userId", "serviceId", "service", "status", "price", "monthlyPrice", "currency", "periodNumber",
                 "startDate", "currentPeriodStart", "currentPeriodEnd", "expiresAt", "autoRenew", "cancelAtPeriodEnd",
                 "graceUntil", "cancelledAt", "suspendedAt", "endedAt", "statusReason", "createdAt", "updatedAt"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "userId": {"type": "string", "format": "uuid"},
      "serviceId": {"type": "string", "format": "uuid"},
      "service": {
        "type": "object",
        "required": ["id", "name", "displayName", "monthlyPrice", "isActive"],
        "properties": {
          "id": {"type": "string", "format": "uuid"},
          "name": {"type": "string"},
          "displayName": {"type": "string"},
          "monthlyPrice": {"$ref": "#/components/schemas/Amount"},
          "isActive": {"type": "boolean"}
        }
      },
      "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
      "price": {"$ref": "#/components/schemas/Amount", "description": "the monthly price at the time of sale, charged by renewals"},
      "monthlyPrice": {"$ref": "#/components/schemas/Amount", "description": "the same as price"},
      "currency": {"const": "IDR"},
      "periodNumber": {"type": "integer", "minimum": 1},
      "startDate": {"type": "string", "format": "date-time"},
      "currentPeriodStart": {"type": "string", "format": "date-time"},
      "currentPeriodEnd": {"type": "string", "format": "date-time"},
      "expiresAt": {"type": "string", "format": "date-time", "description": "the same as currentPeriodEnd"},
      "autoRenew": {"type": "boolean"},
      "cancelAtPeriodEnd": {"type": "boolean"},
      "graceUntil": {"type": ["string", "null"], "format": "date-time"},
      "cancelledAt": {"type": ["string", "null"], "format": "date-time"},
      "suspendedAt": {"type": ["string", "null"], "format": "date-time"},
      "endedAt": {"type": ["string", "null"], "format": "date-time"},
      "statusReason": {"type": ["string", "null"]},
      "createdAt": {"type": "string", "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"}
    }
  },
  "SubscriptionCharge": {
    "type": "object",
    "description": "One paid period of a subscription.",
    "required": ["period", "kind", "amount", "currency", "periodStart", "periodEnd", "entryId", "invoice", "createdAt"],
    "properties": {
      "period": {"type": "integer", "minimum": 1},
      "kind": {"type": "string", "enum": ["purchase", "renewal", "manual_renewal", "revival"]},
      "amount": {"$ref": "#/components/schemas/Amount"},
      "currency": {"const": "IDR"},
      "periodStart": {"type": "string", "format": "date-time"},
      "periodEnd": {"type": "string", "format": "date-time"},
      "entryId": {"type": ["integer", "null"], "description": "the ledger entry (null for a free period)"},
      "invoice": {"oneOf": [{"$ref": "#/components/schemas/InvoiceRef"}, {"type": "null"}]},
      "createdAt": {"type": "string", "format": "date-time"}
    }
  },
  "SubscriptionPurchase": {
    "description": "A subscription and the period just paid; a retry with the same Idempotency-Key answers the first result (replayed, without balanceAfter).",
    "allOf": [
      {"$ref": "#/components/schemas/Subscription"},
      {
        "type": "object",
        "required": ["replayed", "charge"],
        "properties": {
          "replayed": {"type": "boolean"},
          "charge": {"$ref": "#/components/schemas/SubscriptionCharge"},
          "balanceAfter": {"$ref": "#/components/schemas/Amount"}
        }
      }
    ]
  },
  "LedgerEntry": {
    "type": "object",
    "description": "A balanced ledger entry with its postings (slot postings shown under their platform account).",
    "required": ["id", "kind", "memo", "ref", "createdAt", "postings"],
    "properties": {
      "id": {"type": "integer"},
      "kind": {"type": "string"},
      "memo": {"type": "string"},
      "ref": {"description": "what the entry is about (a JSON object), or null"},
      "createdAt": {"type": "string", "format": "date-time"},
      "postings": {
        "type": "array",
        "items": {
          "type": "object",
          "required": ["id", "account", "accountKind", "code", "userId", "amount", "balanceBefore", "balanceAfter", "slotAccount"],
          "properties": {
            "id": {"type": "integer"},
            "account": {"type": "integer"},
            "accountKind": {"type": "string", "enum": ["wallet", "platform"]},
            "code": {"type": ["string", "null"]},
            "userId": {"type": ["string", "null"], "format": "uuid"},
            "amount": {"$ref": "#/components/schemas/Amount"},
            "balanceBefore": {"type": "integer"},
            "balanceAfter": {"type": "integer"},
            "slotAccount": {"type": ["integer", "null"]}
          }
        }
      }
    }
  },
  "JobRun": {
    "type": "object",
    "required": ["id", "job", "startedAt", "finishedAt", "ms", "ok", "detail", "error"],
    "properties": {
      "id": {"type": "integer"},
      "job": {"type": "string"},
      "startedAt": {"type": "string", "format": "date-time"},
      "finishedAt": {"type": "string", "format": "date-time"},
      "ms": {"type": "number"},
      "ok": {"type": "boolean"},
      "detail": {"description": "what the job returned (JSON), or null"},
      "error": {"type": ["string", "null"]}
    }
  },
  "MidtransNotification": {
    "type": "object",
    "description": "A Midtrans HTTP notification; its signature_key is SHA-512(order_id + status_code + gross_amount + server key). Other Midtrans fields (fraud_status, payment_type, transaction_id, currency, ...) are read when present.",
    "required": ["order_id", "status_code", "gross_amount", "transaction_status", "signature_key"],
    "properties": {
      "order_id": {"type": "string", "minLength": 1, "maxLength": 50},
      "status_code": {"type": "string", "minLength": 1, "maxLength": 10},
      "gross_amount": {"type": "string", "minLength": 1, "maxLength": 30},
      "transaction_status": {"type": "string", "minLength": 1, "maxLength": 50},
      "signature_key": {"type": "string", "minLength": 1, "maxLength": 256},
      "fraud_status": {"type": "string"},
      "payment_type": {"type": "string"},
      "transaction_id": {"type": "string"},
      "currency": {"type": "string"}
    }
  }
}
$schemas$::jsonb);

-- The categories are the catalog's fixed list (20_catalog.sql).
INSERT INTO paas.route_schemas (name, schema) VALUES
	('ServiceCategory', jsonb_build_object('type', 'string', 'enum', to_jsonb(paas.service_category_names())));

-- Small pieces shared by several routes.
INSERT INTO paas.route_schemas (name, schema)
SELECT key, value FROM jsonb_each($schemas$
{
  "Page": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 1, "description": "page number, from 1"},
  "SortOrder": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
  "DateFilter": {
    "type": "string",
    "description": "an ISO-8601 date (YYYY-MM-DD) or date-time",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$"
  },
  "IdempotencyKey": {"type": "string", "minLength": 1, "maxLength": 255},
  "Health": {
    "type": "object",
    "required": ["status", "database", "version", "timestamp", "environment"],
    "properties": {
      "status": {"const": "healthy"},
      "database": {"const": "up"},
      "version": {"type": "string"},
      "timestamp": {"type": "string", "format": "date-time"},
      "environment": {"type": "string", "enum": ["production", "development"],
                      "description": "the original's NODE_ENV: production when paas.midtrans_is_production is on"}
    }
  },
  "NodeResourceTotals": {
    "type": "object",
    "required": ["unit", "total", "allocatable", "allocated", "used", "utilization", "usagePercent"],
    "properties": {
      "unit": {"type": "string", "enum": ["millicores", "bytes"]},
      "total": {"type": "integer"},
      "allocatable": {"type": "integer"},
      "allocated": {"type": "integer"},
      "used": {"type": "integer"},
      "utilization": {"type": "number", "description": "allocated, in percent of allocatable"},
      "usagePercent": {"type": "number", "description": "used, in percent of capacity"}
    }
  },
  "NodeSet": {
    "type": "object",
    "required": ["nodes", "count"],
    "properties": {
      "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
      "count": {"type": "integer"}
    }
  },
  "NodeHeartbeat": {
    "description": "A heartbeat: the node's report, optionally its readiness (isReady, or status, or the Ready condition; ready when none says otherwise) and its clock.",
    "allOf": [
      {"$ref": "#/components/schemas/NodeReport"},
      {
        "type": "object",
        "properties": {
          "isReady": {"type": "boolean"},
          "status": {"type": "string", "enum": ["ACTIVE", "NOT_READY"]},
          "conditions": {"type": "array", "items": {"type": "object"}, "description": "Kubernetes NodeCondition objects"},
          "agentTime": {"type": "string", "format": "date-time", "description": "the agent's clock (kept as a skew diagnostic)"}
        }
      }
    ]
  },
  "HeartbeatReply": {
    "type": "object",
    "required": ["id", "name", "lastHeartbeat", "status", "isReady", "isSchedulable", "allocatedCPU", "allocatedMemory",
                 "allocatedStorage", "currentPods"],
    "properties": {
      "id": {"type": "string", "format": "uuid"},
      "name": {"type": "string"},
      "lastHeartbeat": {"type": "string", "format": "date-time"},
      "status": {"$ref": "#/components/schemas/NodeStatus"},
      "isReady": {"type": "boolean"},
      "isSchedulable": {"type": "boolean"},
      "allocatedCPU": {"type": "string"},
      "allocatedMemory": {"type": "string"},
      "allocatedStorage": {"type": "string"},
      "currentPods": {"type": "integer"}
    }
  },
  "SubscriptionCounts": {
    "type": "object",
    "required": ["ACTIVE", "GRACE", "SUSPENDED", "CANCELLED", "EXPIRED"],
    "properties": {
      "ACTIVE": {"type": "integer"},
      "GRACE": {"type": "integer"},
      "SUSPENDED": {"type": "integer"},
      "CANCELLED": {"type": "integer"},
      "EXPIRED": {"type": "integer"}
    }
  }
}
$schemas$::jsonb);

------------------------------------------------------------------------------
-- writing routes
------------------------------------------------------------------------------

-- Adds routes given as a JSON array of objects, in order (their seq follows
-- the table's last one): {method, path, function ("api.name", or null for a
-- built-in), access, status, message, flags, tag, operationId, summary,
-- description, request, requestRequired, query, pathParams, headers,
-- responseType, response, errors, security}; absent keys take the column
-- defaults.  For this script and upgrade scripts.  Returns the number added.
CREATE FUNCTION paas.routes_add(items jsonb) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	INSERT INTO paas.routes (method, path, function, access, status, message, other_replies, flags, tag, operation_id,
							 summary, description, request_schema, request_required, query_schema,
							 path_schema, header_schema, response_type, response_schema, errors, security)
	SELECT e ->> 'method', e ->> 'path',
		   CASE WHEN e ->> 'function' IS NOT NULL THEN ((e ->> 'function') || '(jsonb, jsonb)')::regprocedure END,
		   e ->> 'access', (e ->> 'status')::integer, e ->> 'message', coalesce(e -> 'otherReplies', '{}'),
		   ARRAY(SELECT jsonb_array_elements_text(coalesce(e -> 'flags', '[]'))),
		   e ->> 'tag', e ->> 'operationId', e ->> 'summary', e ->> 'description',
		   e -> 'request', coalesce((e ->> 'requestRequired')::boolean, false),
		   coalesce(e -> 'query', '{}'), coalesce(e -> 'pathParams', '{}'), coalesce(e -> 'headers', '{}'),
		   coalesce(e ->> 'responseType', 'envelope'), coalesce(e -> 'response', '{}'),
		   ARRAY(SELECT jsonb_array_elements_text(coalesce(e -> 'errors', '[]'))::integer),
		   e -> 'security'
	  FROM jsonb_array_elements(items) WITH ORDINALITY AS a (e, i)
	 ORDER BY a.i;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.routes_add(jsonb) IS
	'adds routes from a JSON array of {method, path, function, access, status, message, otherReplies, flags, tag, ...}, in order';

------------------------------------------------------------------------------
-- the routes, in the gateway's order (httpd/routes.c includes core, auth,
-- services, workers, ledger, billing, subscriptions)
------------------------------------------------------------------------------

-- system
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/health", "function": "api.health", "access": "public", "status": 200,
   "message": "Success", "tag": "system", "operationId": "healthRoot",
   "summary": "Health, at the server root (the original's path)",
   "response": {"$ref": "#/components/schemas/Health"}},
  {"method": "GET", "path": "/api/v1/health", "function": "api.health", "access": "public", "status": 200,
   "message": "Service is healthy", "tag": "system", "summary": "Health: the database answers",
   "response": {"$ref": "#/components/schemas/Health"}},
  {"method": "GET", "path": "/api/v1/status", "function": "api.status", "access": "public", "status": 200,
   "message": "Service status", "tag": "system", "summary": "Version, database time, whether the worker and pg_cron run",
   "response": {
     "type": "object",
     "required": ["service", "version", "databaseTime", "worker", "cron"],
     "additionalProperties": false,
     "properties": {
       "service": {"const": "paas"},
       "version": {"type": "string", "description": "the loaded module's version"},
       "databaseTime": {"type": "string", "format": "date-time"},
       "worker": {
         "type": "object",
         "required": ["running"],
         "additionalProperties": false,
         "properties": {"running": {"type": "boolean"}}
       },
       "cron": {"type": "boolean", "description": "whether pg_cron is installed"}
     }
   }},
  {"method": "GET", "path": "/api/v1/openapi.json", "function": null, "access": "public", "status": 200,
   "message": "OpenAPI 3.1 description of every route", "flags": ["builtin", "no_db"], "tag": "system",
   "summary": "This document",
   "description": "The OpenAPI 3.1 document of every route, generated from the route table (api.openapi()); not wrapped in the envelope.",
   "responseType": "json",
   "response": {
     "type": "object",
     "description": "an OpenAPI 3.1 document",
     "required": ["openapi", "info", "paths"],
     "properties": {"openapi": {"type": "string"}, "info": {"type": "object"}, "paths": {"type": "object"}}
   }},
  {"method": "GET", "path": "/api/v1/metrics", "function": null, "access": "local", "status": 200,
   "message": "Prometheus metrics", "flags": ["builtin", "no_db"], "tag": "system",
   "summary": "Request counters in the Prometheus text format",
   "description": "Requests by route and status class, time spent per route and the batching counters, in the Prometheus text exposition format (0.0.4). On the API listener an administrator's token is needed; the metrics listener (PAAS_METRICS_LISTEN, loopback by default) serves them without one.",
   "responseType": "text", "response": {"type": "string"}},
  {"method": "GET", "path": "/api/v1/admin/status", "function": "api.admin_status", "access": "admin", "status": 200,
   "message": "Service status", "tag": "system", "summary": "Versions of module, extension, server and pg_cron; the background worker",
   "response": {
     "type": "object",
     "required": ["service", "version", "extensionVersion", "databaseTime", "postgres", "database", "worker", "cron", "cronVersion"],
     "properties": {
       "service": {"const": "paas"},
       "version": {"type": "string", "description": "the loaded module's version"},
       "extensionVersion": {"type": ["string", "null"], "description": "the installed extension's version"},
       "databaseTime": {"type": "string", "format": "date-time"},
       "postgres": {"type": "string"},
       "database": {"type": "string"},
       "worker": {
         "type": "object",
         "required": ["running", "pid", "startedAt", "lastTick", "ticks", "jobFailures"],
         "properties": {
           "running": {"type": "boolean"},
           "pid": {"type": ["integer", "null"]},
           "startedAt": {"type": ["string", "null"], "format": "date-time"},
           "lastTick": {"type": ["string", "null"], "format": "date-time"},
           "ticks": {"type": "integer"},
           "jobFailures": {"type": "integer"}
         }
       },
       "cron": {"type": "boolean", "description": "whether pg_cron is installed"},
       "cronVersion": {"type": ["string", "null"]}
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/jobs", "function": "api.jobs_list", "access": "admin", "status": 200,
   "message": "Background jobs retrieved successfully", "tag": "system",
   "summary": "The background worker and its jobs",
   "response": {
     "type": "object",
     "required": ["worker", "jobs"],
     "properties": {
       "worker": {
         "type": "object",
         "description": "paas.worker_state() as a row (snake_case keys)",
         "required": ["running", "pid", "started_at", "last_tick", "ticks", "job_failures"],
         "properties": {
           "running": {"type": "boolean"},
           "pid": {"type": ["integer", "null"]},
           "started_at": {"type": ["string", "null"], "format": "date-time"},
           "last_tick": {"type": ["string", "null"], "format": "date-time"},
           "ticks": {"type": "integer"},
           "job_failures": {"type": "integer"}
         }
       },
       "jobs": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["name", "function", "runner", "runEverySeconds", "schedule", "enabled", "nextRunAt",
                        "description", "lastRun", "failuresLast24h"],
           "properties": {
             "name": {"type": "string"},
             "function": {"type": "string"},
             "runner": {"type": "string", "enum": ["worker", "pg_cron"],
                        "description": "who starts it: the background worker, or pg_cron"},
             "runEverySeconds": {"type": ["number", "null"], "description": "null for pg_cron's jobs"},
             "schedule": {"type": ["string", "null"],
                          "description": "the cron schedule of a pg_cron job (null when not scheduled, and for the worker's)"},
             "enabled": {"type": "boolean"},
             "nextRunAt": {"type": ["string", "null"], "format": "date-time", "description": "null for pg_cron's jobs"},
             "description": {"type": "string"},
             "lastRun": {"oneOf": [{"$ref": "#/components/schemas/JobRun"}, {"type": "null"}]},
             "failuresLast24h": {"type": "integer"}
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/jobs/runs", "function": "api.jobs_runs", "access": "admin", "status": 200,
   "message": "Job runs retrieved successfully", "flags": ["paginated"], "tag": "system",
   "summary": "Recorded job runs, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "job": {"type": "string", "minLength": 1, "maxLength": 63, "description": "only the runs of this job"},
     "ok": {"type": "boolean", "description": "only successful (true) or failed (false) runs"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/JobRun"}},
   "errors": [400]}
]$routes$);

-- accounts: the caller's own account (/auth) and admin user management (/users)
SELECT paas.routes_add($routes$[
  {"method": "POST", "path": "/api/v1/auth/register", "function": "api.auth_register", "access": "public", "status": 201,
   "message": "User registered successfully", "flags": ["tokens", "rate_register"], "tag": "auth",
   "summary": "Register a USER account and log it in",
   "request": {
     "type": "object",
     "required": ["name", "email", "password", "confirmPassword"],
     "properties": {
       "name": {"type": "string", "minLength": 2, "maxLength": 50},
       "email": {"$ref": "#/components/schemas/Email", "description": "unique, case-insensitively"},
       "password": {"$ref": "#/components/schemas/Password"},
       "confirmPassword": {"type": "string", "description": "the same as password"}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Session"},
   "errors": [400, 409]},
  {"method": "POST", "path": "/api/v1/auth/login", "function": "api.auth_login", "access": "public", "status": 200,
   "message": "Login successful", "flags": ["tokens", "rate_login"], "tag": "auth",
   "summary": "Log in with email and password",
   "request": {
     "type": "object",
     "required": ["email", "password"],
     "properties": {
       "email": {"$ref": "#/components/schemas/Email", "description": "case-insensitive"},
       "password": {"type": "string", "minLength": 1, "maxLength": 1024}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Session"},
   "errors": [400, 401]},
  {"method": "POST", "path": "/api/v1/auth/refresh", "function": "api.auth_refresh", "access": "public", "status": 200,
   "message": "Token refreshed successfully", "flags": ["tokens", "rate_refresh"], "tag": "auth",
   "summary": "Rotate the refresh token (single use; reuse revokes the session)",
   "request": {
     "type": "object",
     "required": ["refreshToken"],
     "properties": {"refreshToken": {"type": "string", "minLength": 1, "maxLength": 512}}
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Session"},
   "errors": [400, 401]},
  {"method": "GET", "path": "/api/v1/auth/me", "function": "api.auth_me", "access": "user", "status": 200,
   "message": "User is authenticated", "flags": ["batch"], "tag": "auth",
   "summary": "The caller",
   "response": {
     "type": "object",
     "required": ["user", "authenticated"],
     "properties": {"user": {"$ref": "#/components/schemas/User"}, "authenticated": {"const": true}}
   }},
  {"method": "GET", "path": "/api/v1/auth/profile", "function": "api.auth_profile", "access": "user", "status": 200,
   "message": "Profile retrieved successfully", "tag": "auth",
   "summary": "The caller's profile",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/User"},
     {"type": "object", "required": ["lastLoginAt", "_count"],
      "properties": {"lastLoginAt": {"type": ["string", "null"], "format": "date-time"},
                     "_count": {"$ref": "#/components/schemas/Counts"}}}
   ]}},
  {"method": "PUT", "path": "/api/v1/auth/profile", "function": "api.auth_profile_update", "access": "user", "status": 200,
   "message": "Profile updated successfully", "tag": "auth",
   "summary": "Change the caller's name or email",
   "request": {
     "type": "object",
     "properties": {
       "name": {"type": "string", "minLength": 2, "maxLength": 50},
       "email": {"$ref": "#/components/schemas/Email", "description": "unique, case-insensitively"}
     }
   },
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [400, 409]},
  {"method": "POST", "path": "/api/v1/auth/change-password", "function": "api.auth_change_password", "access": "user",
   "status": 200, "message": "Password changed successfully", "tag": "auth",
   "summary": "Change the caller's password (every other session is revoked)",
   "request": {
     "type": "object",
     "required": ["currentPassword", "newPassword", "confirmNewPassword"],
     "properties": {
       "currentPassword": {"type": "string", "minLength": 1, "maxLength": 1024},
       "newPassword": {"$ref": "#/components/schemas/Password"},
       "confirmNewPassword": {"type": "string", "description": "the same as newPassword"}
     }
   },
   "requestRequired": true,
   "response": {"type": "null"},
   "errors": [400]},
  {"method": "POST", "path": "/api/v1/auth/logout", "function": "api.auth_logout", "access": "user", "status": 200,
   "message": "Logout successful", "tag": "auth",
   "summary": "Revoke this session, or every session with all",
   "request": {
     "type": "object",
     "properties": {"all": {"type": "boolean", "default": false, "description": "revoke every session of the account"}}
   },
   "response": {
     "type": "object",
     "required": ["sessionsRevoked"],
     "properties": {"sessionsRevoked": {"type": "integer", "minimum": 0}}
   },
   "errors": [400]},
  {"method": "DELETE", "path": "/api/v1/auth/account", "function": "api.auth_delete_account", "access": "user",
   "status": 200, "message": "Account deactivated successfully", "tag": "auth",
   "summary": "Deactivate the caller's account",
   "response": {"type": "null"},
   "errors": [409]},
  {"method": "GET", "path": "/api/v1/users", "function": "api.users_list", "access": "admin", "status": 200,
   "message": "Users retrieved successfully", "flags": ["paginated"], "tag": "users",
   "summary": "List accounts",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10, "description": "rows per page"},
     "search": {"type": "string", "minLength": 1, "maxLength": 100, "description": "a substring of the name or email"},
     "role": {"$ref": "#/components/schemas/Role"},
     "isActive": {"type": "boolean"},
     "sortBy": {"type": "string", "enum": ["createdAt", "updatedAt", "name", "email", "role"], "default": "createdAt"},
     "sortOrder": {"$ref": "#/components/schemas/SortOrder"}
   },
   "response": {
     "type": "object",
     "required": ["users", "pagination"],
     "properties": {
       "users": {"type": "array", "items": {"allOf": [
         {"$ref": "#/components/schemas/User"},
         {"type": "object", "required": ["_count"], "properties": {"_count": {"$ref": "#/components/schemas/Counts"}}}
       ]}},
       "pagination": {"$ref": "#/components/schemas/ListPagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/users/stats", "function": "api.users_stats", "access": "admin", "status": 200,
   "message": "User statistics retrieved successfully", "tag": "users",
   "summary": "Account counts by role, state and age",
   "response": {
     "type": "object",
     "required": ["totalUsers", "activeUsers", "inactiveUsers", "adminUsers", "regularUsers", "byRole",
                  "newLast7Days", "newLast30Days"],
     "properties": {
       "totalUsers": {"type": "integer"},
       "activeUsers": {"type": "integer"},
       "inactiveUsers": {"type": "integer"},
       "adminUsers": {"type": "integer"},
       "regularUsers": {"type": "integer"},
       "byRole": {
         "type": "object",
         "required": ["USER", "ADMINISTRATOR"],
         "properties": {"USER": {"type": "integer"}, "ADMINISTRATOR": {"type": "integer"}}
       },
       "newLast7Days": {"type": "integer"},
       "newLast30Days": {"type": "integer"}
     }
   }},
  {"method": "POST", "path": "/api/v1/users/bulk", "function": "api.users_bulk", "access": "admin", "status": 200,
   "message": "Bulk action applied", "tag": "users",
   "summary": "Activate, deactivate, delete or set the role of many accounts, all or nothing",
   "request": {
     "type": "object",
     "required": ["action", "ids"],
     "properties": {
       "action": {"type": "string", "enum": ["activate", "deactivate", "delete", "set-role"]},
       "ids": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "string", "format": "uuid"}},
       "role": {"$ref": "#/components/schemas/Role", "description": "required by set-role"}
     },
     "if": {"properties": {"action": {"const": "set-role"}}, "required": ["action"]},
     "then": {"properties": {"role": {"$ref": "#/components/schemas/Role"}}, "required": ["role"]}
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["action", "affected"],
     "properties": {
       "action": {"type": "string", "enum": ["activate", "deactivate", "delete", "set-role"]},
       "affected": {"type": "integer", "minimum": 0}
     }
   },
   "errors": [400, 404, 409]},
  {"method": "GET", "path": "/api/v1/users/:id", "function": "api.users_get", "access": "admin", "status": 200,
   "message": "User retrieved successfully", "tag": "users",
   "summary": "An account with its last login, live sessions and subscriptions",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/User"},
     {"type": "object", "required": ["lastLoginAt", "activeSessions", "subscriptions", "_count"],
      "properties": {
        "lastLoginAt": {"type": ["string", "null"], "format": "date-time"},
        "activeSessions": {"type": "integer", "minimum": 0},
        "subscriptions": {
          "type": "array",
          "description": "the newest 100 (_count counts them all)",
          "items": {
            "type": "object",
            "required": ["id", "status", "expiresAt", "service"],
            "properties": {
              "id": {"type": "string", "format": "uuid"},
              "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
              "expiresAt": {"type": "string", "format": "date-time", "description": "the end of the current period"},
              "service": {
                "type": "object",
                "required": ["id", "name", "displayName"],
                "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
                               "displayName": {"type": "string"}}
              }
            }
          }
        },
        "_count": {"$ref": "#/components/schemas/Counts"}
      }}
   ]},
   "errors": [404]},
  {"method": "POST", "path": "/api/v1/users", "function": "api.users_create", "access": "admin", "status": 201,
   "message": "User created successfully", "tag": "users",
   "summary": "Create an account of any role",
   "request": {
     "type": "object",
     "required": ["name", "email", "password"],
     "properties": {
       "name": {"type": "string", "minLength": 2, "maxLength": 100},
       "email": {"$ref": "#/components/schemas/Email"},
       "password": {"$ref": "#/components/schemas/Password"},
       "role": {"$ref": "#/components/schemas/Role", "default": "USER"},
       "isActive": {"type": "boolean", "default": true}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [400, 409]},
  {"method": "PUT", "path": "/api/v1/users/:id", "function": "api.users_update", "access": "admin", "status": 200,
   "message": "User updated successfully", "tag": "users",
   "summary": "Change an account's name, email, role or state",
   "description": "An administrator cannot deactivate or demote themself (409). Deactivating revokes the account's sessions and cancels its subscriptions at period end.",
   "request": {
     "type": "object",
     "properties": {
       "name": {"type": "string", "minLength": 2, "maxLength": 100},
       "email": {"$ref": "#/components/schemas/Email"},
       "role": {"$ref": "#/components/schemas/Role"},
       "isActive": {"type": "boolean"}
     },
     "anyOf": [{"required": ["name"]}, {"required": ["email"]}, {"required": ["role"]}, {"required": ["isActive"]}]
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [400, 404, 409]},
  {"method": "PATCH", "path": "/api/v1/users/:id/password", "function": "api.users_set_password", "access": "admin",
   "status": 200, "message": "User password changed successfully", "tag": "users",
   "summary": "Set an account's password (its sessions are revoked)",
   "request": {
     "type": "object",
     "required": ["newPassword"],
     "properties": {"newPassword": {"$ref": "#/components/schemas/Password"}}
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [400, 404]},
  {"method": "PATCH", "path": "/api/v1/users/:id/toggle-status", "function": "api.users_toggle_status", "access": "admin",
   "status": 200, "message": "User status toggled successfully", "tag": "users",
   "summary": "Activate or deactivate an account",
   "response": {"$ref": "#/components/schemas/User"},
   "errors": [404, 409]},
  {"method": "DELETE", "path": "/api/v1/users/:id", "function": "api.users_delete", "access": "admin", "status": 200,
   "message": "User deleted successfully", "tag": "users",
   "summary": "Delete an account (soft: its history stays)",
   "response": {
     "type": "object",
     "required": ["id", "name", "email", "role"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "email": {"type": "string", "format": "email"},
       "role": {"$ref": "#/components/schemas/Role"}
     }
   },
   "errors": [404, 409]}
]$routes$);

-- the service catalog (/services): the literal paths win over /services/:name
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/api/v1/services", "function": "api.services_list", "access": "public", "status": 200,
   "message": "Active services retrieved successfully", "flags": ["paginated"], "tag": "services",
   "summary": "Active services, by display name",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100, "description": "rows per page"},
     "search": {"type": "string", "minLength": 1, "maxLength": 100, "description": "a substring of the name, display name or description"},
     "category": {"$ref": "#/components/schemas/ServiceCategory"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/ServicePublic"}},
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/services/categories", "function": "api.services_categories", "access": "public",
   "status": 200, "message": "Service categories retrieved successfully", "tag": "services",
   "summary": "Every category with its number of active services",
   "response": {
     "type": "array",
     "items": {
       "type": "object",
       "required": ["name", "displayName", "count"],
       "properties": {
         "name": {"$ref": "#/components/schemas/ServiceCategory"},
         "displayName": {"type": "string"},
         "count": {"type": "integer", "minimum": 0}
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/services/admin", "function": "api.services_admin_list", "access": "admin",
   "status": 200, "message": "Services retrieved successfully", "flags": ["paginated"], "tag": "services",
   "summary": "Every service, active or not",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10, "description": "rows per page"},
     "search": {"type": "string", "minLength": 1, "maxLength": 100, "description": "a substring of the name, display name or description"},
     "category": {"$ref": "#/components/schemas/ServiceCategory"},
     "status": {"type": "string", "enum": ["active", "inactive"]},
     "isActive": {"type": "boolean"},
     "sortBy": {"type": "string", "enum": ["createdAt", "updatedAt", "name", "displayName", "category", "monthlyPrice"],
                "default": "createdAt"},
     "sortOrder": {"$ref": "#/components/schemas/SortOrder"}
   },
   "response": {
     "type": "object",
     "required": ["services", "pagination"],
     "properties": {
       "services": {"type": "array", "items": {"allOf": [
         {"$ref": "#/components/schemas/Service"},
         {"type": "object", "required": ["_count"], "properties": {"_count": {"$ref": "#/components/schemas/Counts"}}}
       ]}},
       "pagination": {"$ref": "#/components/schemas/ListPagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/services/admin/stats", "function": "api.services_admin_stats", "access": "admin",
   "status": 200, "message": "Service statistics retrieved successfully", "tag": "services",
   "summary": "Service counts by status and by category; subscription totals and the most subscribed services",
   "response": {
     "type": "object",
     "required": ["totalServices", "activeServices", "inactiveServices", "byStatus", "byCategory",
                  "totalSubscriptions", "activeSubscriptions", "popularServices"],
     "properties": {
       "totalServices": {"type": "integer"},
       "activeServices": {"type": "integer"},
       "inactiveServices": {"type": "integer"},
       "totalSubscriptions": {"type": "integer", "description": "every subscription, of any status"},
       "activeSubscriptions": {"type": "integer", "description": "subscriptions served and renewing: ACTIVE or GRACE"},
       "popularServices": {
         "type": "array",
         "maxItems": 5,
         "description": "the five live services with the most subscriptions (of any status), most first",
         "items": {
           "type": "object",
           "required": ["id", "name", "displayName", "_count"],
           "properties": {
             "id": {"type": "string", "format": "uuid"},
             "name": {"type": "string"},
             "displayName": {"type": "string"},
             "_count": {"$ref": "#/components/schemas/Counts"}
           }
         }
       },
       "byStatus": {
         "type": "object",
         "required": ["active", "inactive"],
         "properties": {"active": {"type": "integer"}, "inactive": {"type": "integer"}}
       },
       "byCategory": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["name", "displayName", "total", "active", "inactive"],
           "properties": {
             "name": {"$ref": "#/components/schemas/ServiceCategory"},
             "displayName": {"type": "string"},
             "total": {"type": "integer"},
             "active": {"type": "integer"},
             "inactive": {"type": "integer"}
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/services/admin/:id", "function": "api.services_admin_get", "access": "admin",
   "status": 200, "message": "Service retrieved successfully", "tag": "services",
   "summary": "Every field of a service, active or not, with its subscriptions",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Service"},
     {"type": "object", "required": ["subscriptions", "_count"],
      "properties": {
        "subscriptions": {
          "type": "array",
          "description": "the newest 100 (_count counts them all)",
          "items": {
            "type": "object",
            "required": ["id", "status", "expiresAt", "user"],
            "properties": {
              "id": {"type": "string", "format": "uuid"},
              "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
              "expiresAt": {"type": "string", "format": "date-time", "description": "the end of the current period"},
              "user": {"$ref": "#/components/schemas/UserRef"}
            }
          }
        },
        "_count": {"$ref": "#/components/schemas/Counts"}
      }}
   ]},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/services/:name", "function": "api.services_get_by_name", "access": "public",
   "status": 200, "message": "Service retrieved successfully", "tag": "services",
   "summary": "An active service by its slug",
   "response": {"$ref": "#/components/schemas/ServicePublic"},
   "errors": [404]},
  {"method": "POST", "path": "/api/v1/services", "function": "api.services_create", "access": "admin", "status": 201,
   "message": "Service created successfully", "tag": "services",
   "summary": "Add a service to the catalog",
   "request": {"allOf": [
     {"$ref": "#/components/schemas/ServiceInput"},
     {"type": "object", "required": ["name", "displayName", "description", "dockerImage"]}
   ]},
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Service"},
   "errors": [400, 409]},
  {"method": "PUT", "path": "/api/v1/services/:id", "function": "api.services_update", "access": "admin", "status": 200,
   "message": "Service updated successfully", "tag": "services",
   "summary": "Change any field of a service but its slug",
   "request": {"allOf": [
     {"$ref": "#/components/schemas/ServiceInput"},
     {"type": "object", "minProperties": 1, "description": "at least one field; name, when given, must be the current slug"}
   ]},
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Service"},
   "errors": [400, 404]},
  {"method": "PATCH", "path": "/api/v1/services/:id/toggle-status", "function": "api.services_toggle_status",
   "access": "admin", "status": 200, "message": "Service status toggled successfully", "tag": "services",
   "summary": "Activate or deactivate a service",
   "response": {"$ref": "#/components/schemas/Service"},
   "errors": [404]},
  {"method": "DELETE", "path": "/api/v1/services/:id", "function": "api.services_delete", "access": "admin", "status": 200,
   "message": "Service deleted successfully", "tag": "services",
   "summary": "Delete a service (refused while anything references it)",
   "response": {
     "type": "object",
     "required": ["id", "name", "displayName"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "displayName": {"type": "string"}
     }
   },
   "errors": [404, 409]}
]$routes$);

-- worker nodes (/workers): the admin registry and the node routes (the node
-- or join token is checked by the function)
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/api/v1/workers", "function": "api.workers_list", "access": "admin", "status": 200,
   "message": "Worker nodes retrieved successfully", "flags": ["paginated"], "tag": "workers",
   "summary": "List worker nodes",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10, "description": "rows per page"},
     "status": {"$ref": "#/components/schemas/NodeStatus"},
     "isSchedulable": {"type": "boolean"},
     "isReady": {"type": "boolean"},
     "search": {"type": "string", "maxLength": 100, "description": "a substring of the name, hostname, address, CPU architecture or OS"},
     "sortBy": {"type": "string", "enum": ["name", "hostname", "cpuCores", "totalMemory", "status", "createdAt", "lastHeartbeat"],
                "default": "createdAt"},
     "sortOrder": {"$ref": "#/components/schemas/SortOrder"}
   },
   "response": {
     "type": "object",
     "required": ["workers", "pagination"],
     "properties": {
       "workers": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
       "pagination": {"$ref": "#/components/schemas/Pagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/workers/stats", "function": "api.workers_stats", "access": "admin", "status": 200,
   "message": "Worker node statistics retrieved successfully", "tag": "workers",
   "summary": "Node counts by status, capacity against allocation and usage",
   "response": {
     "type": "object",
     "required": ["totalNodes", "nodeStatus", "nodeCapabilities", "resources"],
     "properties": {
       "totalNodes": {"type": "integer"},
       "nodeStatus": {
         "type": "object",
         "required": ["active", "inactive", "maintenance", "pending", "notReady"],
         "properties": {
           "active": {"type": "integer"}, "inactive": {"type": "integer"}, "maintenance": {"type": "integer"},
           "pending": {"type": "integer"}, "notReady": {"type": "integer"}
         }
       },
       "nodeCapabilities": {
         "type": "object",
         "required": ["schedulable", "ready", "cordoned"],
         "properties": {"schedulable": {"type": "integer"}, "ready": {"type": "integer"}, "cordoned": {"type": "integer"}}
       },
       "resources": {
         "type": "object",
         "required": ["cpu", "memory", "storage", "pods"],
         "properties": {
           "cpu": {"$ref": "#/components/schemas/NodeResourceTotals"},
           "memory": {"$ref": "#/components/schemas/NodeResourceTotals"},
           "storage": {"$ref": "#/components/schemas/NodeResourceTotals"},
           "pods": {
             "type": "object",
             "required": ["maxTotal", "currentTotal", "utilization"],
             "properties": {
               "maxTotal": {"type": "integer"}, "currentTotal": {"type": "integer"}, "utilization": {"type": "number"}
             }
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/workers/online", "function": "api.workers_online", "access": "admin", "status": 200,
   "message": "Online worker nodes retrieved successfully", "tag": "workers",
   "summary": "Nodes that are ACTIVE, ready and schedulable",
   "response": {"$ref": "#/components/schemas/NodeSet"}},
  {"method": "GET", "path": "/api/v1/workers/offline", "function": "api.workers_offline", "access": "admin", "status": 200,
   "message": "Offline worker nodes retrieved successfully", "tag": "workers",
   "summary": "Nodes that are not online",
   "response": {"$ref": "#/components/schemas/NodeSet"}},
  {"method": "GET", "path": "/api/v1/workers/join-tokens", "function": "api.workers_join_tokens_list", "access": "admin",
   "status": 200, "message": "Join tokens retrieved successfully", "tag": "workers",
   "summary": "Cluster join tokens (without their secrets)",
   "response": {
     "type": "object",
     "required": ["tokens"],
     "properties": {"tokens": {"type": "array", "items": {"$ref": "#/components/schemas/JoinToken"}}}
   }},
  {"method": "POST", "path": "/api/v1/workers/join-tokens", "function": "api.workers_join_tokens_create",
   "access": "admin", "status": 201, "message": "Join token created successfully", "tag": "workers",
   "summary": "Create a random join token (its secret is shown once)",
   "request": {
     "type": "object",
     "properties": {
       "note": {"type": "string", "maxLength": 200},
       "expiresInHours": {"type": "integer", "minimum": 1, "maximum": 8784, "description": "no expiry when absent"}
     }
   },
   "response": {"allOf": [
     {"$ref": "#/components/schemas/JoinToken"},
     {"type": "object", "required": ["token"], "properties": {"token": {"type": "string", "description": "the secret"}}}
   ]},
   "errors": [400]},
  {"method": "DELETE", "path": "/api/v1/workers/join-tokens/:tokenId", "function": "api.workers_join_tokens_revoke",
   "access": "admin", "status": 200, "message": "Join token revoked successfully", "tag": "workers",
   "summary": "Revoke a join token (registered nodes keep working)",
   "response": {"$ref": "#/components/schemas/JoinToken"},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/workers/:nodeId", "function": "api.workers_get", "access": "admin", "status": 200,
   "message": "Worker node retrieved successfully", "tag": "workers",
   "summary": "A node, by id or name",
   "response": {"$ref": "#/components/schemas/Node"},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/workers/:nodeId/transitions", "function": "api.workers_transitions",
   "access": "admin", "status": 200, "message": "Worker node transitions retrieved successfully", "tag": "workers",
   "summary": "A node's audit trail, newest first",
   "query": {"limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50, "description": "how many transitions"}},
   "response": {
     "type": "object",
     "required": ["node", "transitions"],
     "properties": {
       "node": {
         "type": "object",
         "required": ["id", "name", "status"],
         "properties": {
           "id": {"type": "string", "format": "uuid"},
           "name": {"type": "string"},
           "status": {"$ref": "#/components/schemas/NodeStatus"}
         }
       },
       "transitions": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["from", "to", "event", "reason", "actor", "at"],
           "properties": {
             "from": {"type": ["string", "null"]},
             "to": {"type": "string"},
             "event": {"type": "string"},
             "reason": {"type": ["string", "null"]},
             "actor": {"type": "string", "description": "node, monitor, admin:<id> or dba:<role>"},
             "at": {"type": "string", "format": "date-time"}
           }
         }
       }
     }
   },
   "errors": [400, 404]},
  {"method": "POST", "path": "/api/v1/workers", "function": "api.workers_create", "access": "admin", "status": 201,
   "message": "Worker node created successfully", "tag": "workers",
   "summary": "Add a node to the registry (it gets a token by registering)",
   "request": {"allOf": [
     {"$ref": "#/components/schemas/NodeSpec"},
     {
       "type": "object",
       "required": ["name", "hostname", "ipAddress", "cpuCores", "cpuArchitecture", "totalMemory", "totalStorage"],
       "properties": {
         "status": {"$ref": "#/components/schemas/NodeStatus", "default": "PENDING"},
         "isReady": {"type": "boolean", "default": false},
         "isSchedulable": {"type": "boolean", "default": true}
       }
     }
   ]},
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Node"},
   "errors": [400, 409]},
  {"method": "PUT", "path": "/api/v1/workers/:nodeId", "function": "api.workers_update", "access": "admin", "status": 200,
   "message": "Worker node updated successfully", "tag": "workers",
   "summary": "Change a node's fields (status and isSchedulable go through the status machine)",
   "request": {"allOf": [
     {"$ref": "#/components/schemas/NodeSpec"},
     {
       "type": "object",
       "minProperties": 1,
       "properties": {
         "status": {"$ref": "#/components/schemas/NodeStatus"},
         "isReady": {"type": "boolean"},
         "isSchedulable": {"type": "boolean"}
       }
     }
   ]},
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/Node"},
   "errors": [400, 404, 409]},
  {"method": "DELETE", "path": "/api/v1/workers/:nodeId", "function": "api.workers_delete", "access": "admin", "status": 200,
   "message": "Worker node deleted successfully", "tag": "workers",
   "summary": "Remove a node (its token stops working; the audit stays)",
   "response": {
     "type": "object",
     "required": ["id", "name", "status", "hostname", "ipAddress"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "hostname": {"type": "string"},
       "ipAddress": {"type": "string"}
     }
   },
   "errors": [404]},
  {"method": "PATCH", "path": "/api/v1/workers/:nodeId/schedulable", "function": "api.workers_set_schedulable",
   "access": "admin", "status": 200, "message": "Worker node schedulable status updated successfully", "tag": "workers",
   "summary": "Cordon or uncordon a node",
   "description": "Sets isSchedulable to the given value (not a toggle). schedulable (or isSchedulable) is required: a request without it answers 400, where the original answered 200 and changed nothing. Uncordoning an INACTIVE or MAINTENANCE node is refused (409): activate it first; a cordon is kept across status changes and re-registrations. For a node the Kubernetes API knows (source kubernetes), the Node's spec.unschedulable is patched in the API first, as kubectl cordon / uncordon do, and recorded after: when the API refuses or does not answer (within paas.k8s_timeout, at most 10 s) the answer is 502 CLUSTER_ERROR with the API's status, reason and message in details, and nothing changes. An uncordon ends a running drain (cancelled).",
   "request": {
     "type": "object",
     "properties": {
       "schedulable": {"type": "boolean"},
       "isSchedulable": {"type": "boolean", "description": "the same as schedulable (the original's name)"},
       "reason": {"type": "string", "maxLength": 500}
     },
     "anyOf": [{"required": ["schedulable"]}, {"required": ["isSchedulable"]}]
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "name", "isSchedulable", "unschedulable", "isReady", "status", "updatedAt"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "isSchedulable": {"type": "boolean"},
       "unschedulable": {"type": "boolean"},
       "isReady": {"type": "boolean"},
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "updatedAt": {"type": "string", "format": "date-time"}
     }
   },
   "errors": [400, 404, 409, 502]},
  {"method": "PATCH", "path": "/api/v1/workers/:nodeId/status", "function": "api.workers_set_status", "access": "admin",
   "status": 200, "message": "Worker node status updated successfully", "tag": "workers",
   "summary": "Set a node's status (any status, as in the original)",
   "description": "Sets the node's status. As in the original, an administrator may set any status from any status, and the same one again (an idempotent PATCH); nothing is refused, and every move is audited (GET /workers/:nodeId/transitions). A move that a node's own reports or the health monitor undo is allowed and says here what undoes it; keep a node out of scheduling with MAINTENANCE.\n\n| status set | isReady | schedulable | what moves it next |\n|---|---|---|---|\n| ACTIVE | true, lastHealthCheck now | yes, unless cordoned | the monitor: NOT_READY after paas.node_grace_period without a heartbeat, INACTIVE after paas.node_offline_after; a not-ready heartbeat: NOT_READY |\n| NOT_READY | false | no | a ready heartbeat: ACTIVE; silence for paas.node_offline_after: INACTIVE |\n| INACTIVE | false | no | a heartbeat: ACTIVE (not ready: NOT_READY) |\n| PENDING | unchanged | no | a heartbeat or registration: ACTIVE (not ready: NOT_READY); the monitor never watches PENDING |\n| MAINTENANCE | unchanged | no | only an administrator: heartbeats and registrations leave it there |\n\nEvery status may be set from PENDING, ACTIVE, NOT_READY, INACTIVE and MAINTENANCE alike.\n\nFor a node the Kubernetes API knows: MAINTENANCE cordons the Node in the API (first: a refusal answers 502 CLUSTER_ERROR and changes nothing) and starts a drain of its pods (GET /workers/:nodeId/drain, timeout paas.node_drain_timeout); leaving MAINTENANCE ends that drain and uncordons the node in the API when the maintenance cordoned it (not when the new status is INACTIVE, which keeps the cordon).",
   "request": {
     "type": "object",
     "required": ["status"],
     "properties": {
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "reason": {"type": "string", "maxLength": 500}
     }
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "name", "status", "previousStatus", "isReady", "isSchedulable", "updatedAt"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "previousStatus": {"$ref": "#/components/schemas/NodeStatus"},
       "isReady": {"type": "boolean"},
       "isSchedulable": {"type": "boolean"},
       "updatedAt": {"type": "string", "format": "date-time"},
       "drain": {"description": "the node's live drain (MAINTENANCE of a node the Kubernetes API knows), else null",
                 "oneOf": [{"$ref": "#/components/schemas/NodeDrain"}, {"type": "null"}]}
     }
   },
   "errors": [400, 404, 502]},
  {"method": "POST", "path": "/api/v1/workers/register", "function": "api.workers_register", "access": "node",
   "status": 201, "message": "Worker node registered successfully", "tag": "workers",
   "otherReplies": {"200": "Worker node information updated successfully"},
   "summary": "Register (or re-register) a node with a join token; returns its node token",
   "description": "A join token registers a new node; the node's own token (or, for a Kubernetes Node object, the uid it registered with) re-registers it, and every registration rotates the node token. A new node answers 201 \"Worker node registered successfully\", a re-registration 200 \"Worker node information updated successfully\" (as the original; the function sets response.status); data.created tells them apart too.",
   "security": [{"joinToken": []}, {}],
   "request": {"anyOf": [
     {"$ref": "#/components/schemas/NodeRegistration"},
     {"$ref": "#/components/schemas/KubernetesNode"},
     {"$ref": "#/components/schemas/KubernetesNodeList"}
   ]},
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "name", "status", "isReady", "isSchedulable", "created", "nodeToken", "heartbeatIntervalSeconds",
                  "gracePeriodSeconds"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "status": {"$ref": "#/components/schemas/NodeStatus"},
       "isReady": {"type": "boolean"},
       "isSchedulable": {"type": "boolean"},
       "created": {"type": "boolean", "description": "false when the node re-registered"},
       "nodeToken": {"type": "string", "description": "the bearer token of the node's heartbeat and resource calls (a new one at every registration)"},
       "heartbeatIntervalSeconds": {"type": "integer"},
       "gracePeriodSeconds": {"type": "integer"}
     }
   },
   "errors": [400, 401, 409]},
  {"method": "PUT", "path": "/api/v1/workers/:nodeName/heartbeat", "function": "api.workers_heartbeat", "access": "node",
   "status": 200, "message": "Worker node heartbeat updated successfully", "flags": ["batch"], "tag": "workers",
   "summary": "Heartbeat of the calling node (the server's clock counts)",
   "request": {"$ref": "#/components/schemas/NodeHeartbeat"},
   "response": {"$ref": "#/components/schemas/HeartbeatReply"},
   "errors": [400, 401, 403]},
  {"method": "PATCH", "path": "/api/v1/workers/:nodeId/heartbeat", "function": "api.workers_heartbeat", "access": "node",
   "status": 200, "message": "Worker node heartbeat updated successfully", "flags": ["batch"], "tag": "workers",
   "operationId": "workersHeartbeatPatch",
   "summary": "Heartbeat of the calling node (PATCH form)",
   "request": {"$ref": "#/components/schemas/NodeHeartbeat"},
   "response": {"$ref": "#/components/schemas/HeartbeatReply"},
   "errors": [400, 401, 403]},
  {"method": "PATCH", "path": "/api/v1/workers/:nodeId/resources", "function": "api.workers_resources", "access": "node",
   "status": 200, "message": "Worker node resources updated successfully", "tag": "workers",
   "summary": "Allocation and usage report of the calling node (no liveness effect)",
   "request": {"allOf": [{"$ref": "#/components/schemas/NodeReport"}, {"type": "object", "minProperties": 1}]},
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "name", "cpuCores", "totalMemory", "totalStorage", "allocatedCPU", "allocatedMemory",
                  "allocatedStorage", "currentPods", "maxPods", "allocation", "usage"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "name": {"type": "string"},
       "cpuCores": {"type": "integer"},
       "totalMemory": {"type": "string"},
       "totalStorage": {"type": "string"},
       "allocatedCPU": {"type": "string"},
       "allocatedMemory": {"type": "string"},
       "allocatedStorage": {"type": "string"},
       "currentPods": {"type": "integer"},
       "maxPods": {"type": "integer"},
       "allocation": {"$ref": "#/components/schemas/NodeAllocation"},
       "usage": {"$ref": "#/components/schemas/NodeUsage"}
     }
   },
   "errors": [400, 401, 403]},
  {"method": "POST", "path": "/api/v1/workers/:nodeId/drain", "function": "api.workers_drain", "access": "admin",
   "status": 202, "message": "Worker node drain started", "tag": "workers",
   "summary": "Cordon a node in the cluster and evict its pods (Eviction API)",
   "description": "For a node the Kubernetes API knows: cordons it in the API (spec.unschedulable; a refusal of the API answers 502 CLUSTER_ERROR and changes nothing), records it, and starts a drain that the background worker \"paas node drain\" performs: the node's pods are evicted through policy/v1 Eviction, as kubectl drain --ignore-daemonsets does (DaemonSet-managed and mirror pods stay). An eviction a PodDisruptionBudget forbids (429 from the API) is retried every 5 s and shown as blocked in remaining; past timeoutSeconds (default paas.node_drain_timeout, 600) the drain ends incomplete with the pods still there listed. The answer is the drain; follow it at statusUrl (GET /workers/:nodeId/drain). A drain already running is returned as it is. A node only agents report (or no API configured) answers 409.",
   "request": {
     "type": "object",
     "properties": {
       "timeoutSeconds": {"type": "integer", "minimum": 1, "maximum": 86400},
       "reason": {"type": "string", "maxLength": 500}
     }
   },
   "response": {"$ref": "#/components/schemas/NodeDrain"},
   "errors": [400, 404, 409, 502]},
  {"method": "GET", "path": "/api/v1/workers/:nodeId/drain", "function": "api.workers_drain_get", "access": "admin",
   "status": 200, "message": "Worker node drain retrieved successfully", "tag": "workers",
   "summary": "The node's latest drain and its progress",
   "description": "state: pending, running (passes every second; 5 s after a refused eviction), complete (only DaemonSet-managed and mirror pods left), incomplete (timed out: remaining lists the pods still there), cancelled (the node was uncordoned or left MAINTENANCE). 404 when the node was never drained.",
   "response": {"$ref": "#/components/schemas/NodeDrain"},
   "errors": [404]}
]$routes$);

-- ledger: the owner's balance and admin billing
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/api/v1/billing/balance", "function": "api.billing_balance", "access": "user", "status": 200,
   "message": "Balance retrieved successfully", "flags": ["batch"], "tag": "billing",
   "summary": "The caller's wallet balance",
   "response": {
     "type": "object",
     "required": ["balance", "currency", "accountId", "lastUpdated", "user"],
     "properties": {
       "balance": {"$ref": "#/components/schemas/Amount"},
       "currency": {"const": "IDR"},
       "accountId": {"type": ["integer", "null"], "description": "the wallet's ledger account (null until first used)"},
       "lastUpdated": {"type": "string", "format": "date-time"},
       "user": {"$ref": "#/components/schemas/UserRef"}
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/billing/overview", "function": "api.admin_billing_overview",
   "access": "admin", "status": 200, "message": "Billing overview retrieved successfully", "tag": "admin-billing",
   "summary": "Wallet totals, platform balances, revenue, entry counts, adjustments",
   "response": {
     "type": "object",
     "required": ["currency", "wallets", "platformAccounts", "revenue", "entries", "adjustments"],
     "properties": {
       "currency": {"const": "IDR"},
       "wallets": {
         "type": "object",
         "required": ["count", "funded", "totalBalance"],
         "properties": {"count": {"type": "integer"}, "funded": {"type": "integer"}, "totalBalance": {"type": "integer"}}
       },
       "platformAccounts": {
         "type": ["object", "null"],
         "description": "by account code (gateway_clearing, revenue, adjustments, refunds)",
         "additionalProperties": {
           "type": "object",
           "required": ["id", "balance"],
           "properties": {"id": {"type": "integer"}, "balance": {"type": ["integer", "null"]}}
         }
       },
       "revenue": {
         "type": "object",
         "required": ["today", "last30Days", "total"],
         "properties": {"today": {"type": "integer"}, "last30Days": {"type": "integer"}, "total": {"type": "integer"}}
       },
       "entries": {
         "type": "object",
         "required": ["total", "last24Hours", "byKindLast24Hours"],
         "properties": {
           "total": {"type": "integer"},
           "last24Hours": {"type": "integer"},
           "byKindLast24Hours": {"type": "object", "additionalProperties": {"type": "integer"}}
         }
       },
       "adjustments": {
         "type": "object",
         "required": ["count", "credited", "debited"],
         "properties": {"count": {"type": "integer"}, "credited": {"type": "integer"}, "debited": {"type": "integer"}}
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/billing/ledger", "function": "api.admin_billing_ledger", "access": "admin",
   "status": 200, "message": "Ledger entries retrieved successfully", "flags": ["paginated"], "tag": "admin-billing",
   "summary": "Ledger entries with their postings",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "kind": {"type": "string", "minLength": 1, "maxLength": 63, "description": "only entries of this kind (topup, subscription_charge, adjustment, ...)"},
     "userId": {"type": "string", "format": "uuid", "description": "only entries touching this user's wallet"},
     "accountId": {"type": "integer", "minimum": 1, "description": "only entries touching this ledger account"},
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "from this date (midnight UTC) or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "up to this date (the whole day) or instant"},
     "sortOrder": {"$ref": "#/components/schemas/SortOrder"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerEntry"}},
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/admin/billing/users/:userId/ledger", "function": "api.admin_billing_user_ledger",
   "access": "admin", "status": 200, "message": "User ledger retrieved successfully", "flags": ["paginated"],
   "tag": "admin-billing",
   "summary": "A user's wallet postings, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "kind": {"type": "string", "minLength": 1, "maxLength": 63, "description": "only postings of entries of this kind"},
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "from this date (midnight UTC) or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "up to this date (the whole day) or instant"}
   },
   "response": {
     "type": "object",
     "required": ["user", "account", "postings"],
     "properties": {
       "user": {"$ref": "#/components/schemas/UserRef"},
       "account": {
         "type": "object",
         "required": ["id", "balance", "currency"],
         "properties": {
           "id": {"type": ["integer", "null"]},
           "balance": {"$ref": "#/components/schemas/Amount"},
           "currency": {"const": "IDR"}
         }
       },
       "postings": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["postingId", "entryId", "kind", "memo", "ref", "amount", "balanceBefore", "balanceAfter", "createdAt"],
           "properties": {
             "postingId": {"type": "integer"},
             "entryId": {"type": "integer"},
             "kind": {"type": "string"},
             "memo": {"type": "string"},
             "ref": {"description": "what the entry is about (a JSON object), or null"},
             "amount": {"$ref": "#/components/schemas/Amount"},
             "balanceBefore": {"type": "integer"},
             "balanceAfter": {"type": "integer"},
             "createdAt": {"type": "string", "format": "date-time"}
           }
         }
       }
     }
   },
   "errors": [400, 404]},
  {"method": "POST", "path": "/api/v1/admin/billing/adjustments", "function": "api.admin_billing_adjust",
   "access": "admin", "status": 201, "message": "Adjustment posted successfully", "flags": ["money"], "tag": "admin-billing",
   "summary": "Credit or debit a wallet by hand (audited)",
   "headers": {"Idempotency-Key": {"$ref": "#/components/schemas/IdempotencyKey",
                                   "description": "a retry with the same key (per administrator) answers the first adjustment"}},
   "request": {
     "type": "object",
     "required": ["userId", "amount", "reason"],
     "properties": {
       "userId": {"type": "string", "format": "uuid"},
       "amount": {"type": "integer", "minimum": -1000000000000, "maximum": 1000000000000, "not": {"const": 0},
                  "description": "IDR: positive credits the wallet, negative debits it"},
       "reason": {"type": "string", "minLength": 3, "maxLength": 500}
     }
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["id", "entryId", "userId", "adminId", "amount", "currency", "reason", "balanceBefore", "balanceAfter",
                  "replayed", "createdAt"],
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "entryId": {"type": "integer"},
       "userId": {"type": "string", "format": "uuid"},
       "adminId": {"type": ["string", "null"], "format": "uuid", "description": "null when a DBA posted it"},
       "amount": {"$ref": "#/components/schemas/Amount"},
       "currency": {"const": "IDR"},
       "reason": {"type": "string"},
       "balanceBefore": {"type": "integer"},
       "balanceAfter": {"type": "integer"},
       "replayed": {"type": "boolean"},
       "createdAt": {"type": "string", "format": "date-time"}
     }
   },
   "errors": [400, 402, 404, 409]}
]$routes$);

-- billing: Midtrans top-ups, the transaction feed, invoices, dashboards
-- (another user's id answers 404)
SELECT paas.routes_add($routes$[
  {"method": "POST", "path": "/api/v1/billing/topup", "function": "api.billing_topup", "access": "user", "status": 201,
   "message": "Top-up transaction created successfully", "flags": ["snap", "money"], "tag": "billing",
   "summary": "Open a top-up and its Midtrans Snap payment link",
   "headers": {"Idempotency-Key": {"$ref": "#/components/schemas/IdempotencyKey",
                                   "description": "a retry with the same key answers the same top-up"}},
   "request": {
     "type": "object",
     "required": ["amount"],
     "properties": {
       "amount": {"type": "integer", "minimum": 10000, "maximum": 10000000, "description": "IDR, a JSON number"},
       "currency": {"type": "string", "enum": ["IDR"], "default": "IDR"}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/TopUp"},
   "errors": [400, 409]},
  {"method": "GET", "path": "/api/v1/billing/topup", "function": "api.billing_topups", "access": "user", "status": 200,
   "message": "Top-up transactions retrieved successfully", "flags": ["paginated"], "tag": "billing",
   "summary": "The caller's top-ups, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "status": {"type": "string", "enum": ["PENDING", "PAID", "FAILED", "EXPIRED", "CANCELLED", "REFUNDED"]}
   },
   "response": {
     "type": "object",
     "required": ["transactions", "pagination"],
     "properties": {
       "transactions": {"type": "array", "items": {"$ref": "#/components/schemas/TopUp"}},
       "pagination": {"$ref": "#/components/schemas/Pagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/billing/topup/:id", "function": "api.billing_topup_get", "access": "user",
   "status": 200, "message": "Top-up details retrieved successfully", "tag": "billing",
   "summary": "One of the caller's top-ups",
   "response": {"$ref": "#/components/schemas/TopUp"},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/billing/transactions", "function": "api.billing_transactions", "access": "user",
   "status": 200, "message": "Transactions retrieved successfully", "flags": ["paginated"], "tag": "billing",
   "summary": "Every money movement of the caller's wallet, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "type": {"type": "string", "enum": ["TOPUP", "SERVICE_PURCHASE", "REFUND", "ADJUSTMENT"]},
     "status": {"type": "string", "enum": ["PENDING", "SUCCESS", "FAILED", "CANCELLED", "EXPIRED", "REFUNDED"]},
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "from this date or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "up to this date (the whole day) or instant"}
   },
   "response": {
     "type": "object",
     "required": ["transactions", "pagination"],
     "properties": {
       "transactions": {"type": "array", "items": {"$ref": "#/components/schemas/Transaction"}},
       "pagination": {"$ref": "#/components/schemas/Pagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/billing/transactions/:id", "function": "api.billing_transaction_get",
   "access": "user", "status": 200, "message": "Transaction details retrieved successfully", "tag": "billing",
   "summary": "One movement of the caller's wallet",
   "pathParams": {"id": {"type": "string", "description": "the id of a movement of the feed (opaque)"}},
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Transaction"},
     {"type": "object", "required": ["user"], "properties": {"user": {"$ref": "#/components/schemas/UserRef"}}}
   ]},
   "errors": [404]},
  {"method": "POST", "path": "/api/v1/billing/transactions/:id/pay", "function": "api.billing_transaction_pay",
   "access": "user", "status": 200, "message": "Payment retry successful", "flags": ["snap", "money"], "tag": "billing",
   "summary": "The live payment link of a pending top-up, or a new one",
   "pathParams": {"id": {"type": "string", "format": "uuid", "description": "the top-up's id"}},
   "response": {"allOf": [
     {"$ref": "#/components/schemas/TopUp"},
     {"type": "object", "required": ["message"],
      "properties": {"message": {"const": "Use the snapToken to reopen Midtrans payment window"}}}
   ]},
   "errors": [404, 409]},
  {"method": "GET", "path": "/api/v1/billing/invoices", "function": "api.billing_invoices", "access": "user",
   "status": 200, "message": "Invoices retrieved successfully", "flags": ["paginated"], "tag": "billing",
   "summary": "The caller's invoices and credit notes, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "type": {"type": "string", "enum": ["TOPUP", "SUBSCRIPTION", "CREDIT_NOTE"]},
     "status": {"$ref": "#/components/schemas/InvoiceStatus"},
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "issued from this date or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "issued up to this date (the whole day) or instant"}
   },
   "response": {
     "type": "object",
     "required": ["invoices", "pagination"],
     "properties": {
       "invoices": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/Invoice"},
                                                           {"$ref": "#/components/schemas/InvoiceLinks"}]}},
       "pagination": {"$ref": "#/components/schemas/Pagination"}
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/billing/invoices/:id", "function": "api.billing_invoice_get", "access": "user",
   "status": 200, "message": "Invoice details retrieved successfully", "tag": "billing",
   "summary": "One of the caller's invoices",
   "response": {"$ref": "#/components/schemas/InvoiceDetail"},
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/billing/invoices/:id/pdf", "function": "api.billing_invoice_pdf", "access": "user",
   "status": 200, "message": "Invoice PDF", "flags": ["pdf"], "tag": "billing",
   "summary": "One of the caller's invoices as a PDF",
   "description": "The invoice rendered as a PDF document (the function returns the invoice, httpd renders it); counts the download.",
   "responseType": "pdf",
   "errors": [404]},
  {"method": "GET", "path": "/api/v1/billing/dashboard/overview", "function": "api.billing_dashboard_overview",
   "access": "user", "status": 200, "message": "Dashboard overview retrieved successfully", "tag": "billing",
   "summary": "Balance, pending top-ups and the latest movements",
   "response": {
     "type": "object",
     "required": ["balance", "pendingTopUps", "recentTransactions", "summary"],
     "properties": {
       "balance": {
         "type": "object",
         "required": ["current", "currency", "lastUpdated"],
         "properties": {
           "current": {"$ref": "#/components/schemas/Amount"},
           "currency": {"const": "IDR"},
           "lastUpdated": {"type": "string", "format": "date-time"}
         }
       },
       "pendingTopUps": {
         "type": "object",
         "required": ["count", "totalAmount", "transactions"],
         "properties": {
           "count": {"type": "integer"},
           "totalAmount": {"$ref": "#/components/schemas/Amount"},
           "transactions": {"type": "array", "maxItems": 10, "items": {"$ref": "#/components/schemas/TopUp"}}
         }
       },
       "recentTransactions": {"type": "array", "maxItems": 5, "items": {"$ref": "#/components/schemas/Transaction"}},
       "summary": {
         "type": "object",
         "required": ["availableBalance", "pendingAmount", "totalTransactions"],
         "properties": {
           "availableBalance": {"$ref": "#/components/schemas/Amount"},
           "pendingAmount": {"$ref": "#/components/schemas/Amount"},
           "totalTransactions": {"type": "integer"}
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/billing/dashboard/analytics", "function": "api.billing_dashboard_analytics",
   "access": "user", "status": 200, "message": "Billing analytics retrieved successfully", "tag": "billing",
   "summary": "Totals by type and status, and by day",
   "query": {
     "startDate": {"$ref": "#/components/schemas/DateFilter", "description": "from this date or instant"},
     "endDate": {"$ref": "#/components/schemas/DateFilter", "description": "up to this date (the whole day) or instant"}
   },
   "response": {
     "type": "object",
     "required": ["period", "analytics", "transactionBreakdown", "byType", "byDay"],
     "properties": {
       "period": {
         "type": "object",
         "properties": {"startDate": {"type": "string"}, "endDate": {"type": "string"}}
       },
       "analytics": {
         "type": "object",
         "required": ["totalTopUps", "totalSpending", "transactionCount", "averageTopUp", "averageSpending"],
         "properties": {
           "totalTopUps": {"type": "integer"},
           "totalSpending": {"type": "integer"},
           "transactionCount": {"type": "integer"},
           "averageTopUp": {"type": "integer"},
           "averageSpending": {"type": "integer"}
         }
       },
       "transactionBreakdown": {
         "type": "object",
         "required": ["topUps", "servicePurchases", "pending", "failed"],
         "properties": {
           "topUps": {"type": "integer"}, "servicePurchases": {"type": "integer"},
           "pending": {"type": "integer"}, "failed": {"type": "integer"}
         }
       },
       "byType": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["type", "status", "count", "amount"],
           "properties": {
             "type": {"type": "string"}, "status": {"type": "string"},
             "count": {"type": "integer"}, "amount": {"type": "integer"}
           }
         }
       },
       "byDay": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["date", "type", "count", "amount"],
           "properties": {
             "date": {"type": "string", "format": "date"}, "type": {"type": "string"},
             "count": {"type": "integer"}, "amount": {"type": "integer"}
           }
         }
       }
     }
   },
   "errors": [400]},
  {"method": "POST", "path": "/api/v1/billing/webhooks/midtrans", "function": "api.billing_webhook_midtrans",
   "access": "public", "status": 200, "message": "Webhook processed successfully", "tag": "billing",
   "summary": "Midtrans payment notification (verified by its signature)",
   "request": {"$ref": "#/components/schemas/MidtransNotification"},
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["orderId", "status", "outcome", "processedAt"],
     "properties": {
       "orderId": {"type": "string"},
       "status": {"type": ["string", "null"], "description": "the top-up's status after the notification"},
       "outcome": {"type": "string", "description": "what was done: credited, duplicate, pending, failed, reversed, ignored, ..."},
       "processedAt": {"type": "string", "format": "date-time"}
     }
   },
   "errors": [400, 401, 404]},
  {"method": "GET", "path": "/api/v1/billing/health", "function": "api.billing_health", "access": "public", "status": 200,
   "message": "Billing service is healthy", "tag": "billing",
   "summary": "Billing health: database and payment gateway configuration",
   "response": {
     "type": "object",
     "required": ["status", "service", "version", "database", "gatewayConfigured", "timestamp"],
     "properties": {
       "status": {"const": "healthy"},
       "service": {"const": "billing"},
       "version": {"type": "string"},
       "database": {"const": "up"},
       "gatewayConfigured": {"type": "boolean", "description": "whether the Midtrans server key is set"},
       "timestamp": {"type": "string", "format": "date-time"}
     }
   }}
]$routes$);

-- subscriptions: the owner's (another user's id answers 404) and the
-- administrators'; the literal paths win over /:id
SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/api/v1/subscriptions", "function": "api.subscriptions_list", "access": "user", "status": 200,
   "message": "Subscriptions retrieved successfully", "flags": ["paginated"], "tag": "subscriptions",
   "summary": "The caller's subscriptions, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10, "description": "rows per page"},
     "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
     "serviceId": {"type": "string", "format": "uuid"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}},
   "errors": [400]},
  {"method": "POST", "path": "/api/v1/subscriptions", "function": "api.subscriptions_create", "access": "user",
   "status": 201, "message": "Subscription created successfully", "flags": ["money"], "tag": "subscriptions",
   "summary": "Subscribe to a service: the first month is charged from the wallet and invoiced",
   "headers": {"Idempotency-Key": {"$ref": "#/components/schemas/IdempotencyKey",
                                   "description": "a retry with the same key answers the first subscription"}},
   "request": {
     "type": "object",
     "required": ["serviceId"],
     "properties": {"serviceId": {"type": "string", "format": "uuid"}}
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/SubscriptionPurchase"},
   "errors": [400, 402, 404, 409]},
  {"method": "GET", "path": "/api/v1/subscriptions/stats", "function": "api.subscriptions_stats", "access": "user",
   "status": 200, "message": "Subscription statistics retrieved successfully", "tag": "subscriptions",
   "summary": "Counts by status, monthly spend, balance and the next renewals",
   "response": {
     "type": "object",
     "required": ["total", "activeCount", "byStatus", "monthlySpend", "currency", "balance", "balanceCoversNextRenewals",
                  "totalSpent", "nextRenewals"],
     "properties": {
       "total": {"type": "integer"},
       "activeCount": {"type": "integer"},
       "byStatus": {"$ref": "#/components/schemas/SubscriptionCounts"},
       "monthlySpend": {"$ref": "#/components/schemas/Amount"},
       "currency": {"const": "IDR"},
       "balance": {"$ref": "#/components/schemas/Amount"},
       "balanceCoversNextRenewals": {"type": "boolean"},
       "totalSpent": {"$ref": "#/components/schemas/Amount"},
       "nextRenewals": {
         "type": "array",
         "maxItems": 5,
         "items": {
           "type": "object",
           "required": ["subscriptionId", "serviceId", "serviceName", "displayName", "status", "renewsAt", "amount"],
           "properties": {
             "subscriptionId": {"type": "string", "format": "uuid"},
             "serviceId": {"type": "string", "format": "uuid"},
             "serviceName": {"type": "string"},
             "displayName": {"type": "string"},
             "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
             "renewsAt": {"type": "string", "format": "date-time"},
             "amount": {"$ref": "#/components/schemas/Amount"}
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/subscriptions/:id", "function": "api.subscriptions_get", "access": "user",
   "status": 200, "message": "Subscription retrieved successfully", "tag": "subscriptions",
   "summary": "One of the caller's subscriptions with its paid periods",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Subscription"},
     {"type": "object", "required": ["charges"],
      "properties": {"charges": {"type": "array", "items": {"$ref": "#/components/schemas/SubscriptionCharge"}}}}
   ]},
   "errors": [404]},
  {"method": "PUT", "path": "/api/v1/subscriptions/:id/renew", "function": "api.subscriptions_renew", "access": "user",
   "status": 200, "message": "Subscription renewed successfully", "flags": ["money"], "tag": "subscriptions",
   "summary": "Pay one more period now (revives a suspended or expired one at the list price)",
   "headers": {"Idempotency-Key": {"$ref": "#/components/schemas/IdempotencyKey",
                                   "description": "a retry with the same key charges nothing and answers the first renewal"}},
   "response": {"$ref": "#/components/schemas/SubscriptionPurchase"},
   "errors": [402, 404, 409]},
  {"method": "DELETE", "path": "/api/v1/subscriptions/:id", "function": "api.subscriptions_cancel", "access": "user",
   "status": 200, "message": "Subscription cancelled; it stays active until the end of the paid period",
   "tag": "subscriptions",
   "summary": "Cancel at the end of the paid period (no refund)",
   "request": {
     "type": "object",
     "properties": {"reason": {"type": "string", "maxLength": 500}}
   },
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Subscription"},
     {"type": "object", "required": ["accessUntil", "refund"],
      "properties": {
        "accessUntil": {"type": "string", "format": "date-time"},
        "refund": {"const": 0}
      }}
   ]},
   "errors": [400, 404, 409]},
  {"method": "GET", "path": "/api/v1/admin/subscriptions", "function": "api.subscriptions_admin_list", "access": "admin",
   "status": 200, "message": "Subscriptions retrieved successfully", "flags": ["paginated"], "tag": "admin-subscriptions",
   "summary": "Every subscription, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "userId": {"type": "string", "format": "uuid", "description": "only this user's"},
     "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
     "serviceId": {"type": "string", "format": "uuid"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}},
   "errors": [400, 404]},
  {"method": "GET", "path": "/api/v1/admin/subscriptions/stats", "function": "api.subscriptions_admin_stats",
   "access": "admin", "status": 200, "message": "Subscription statistics retrieved successfully",
   "tag": "admin-subscriptions",
   "summary": "Counts by status and by service, recurring revenue, due renewals, recent charges",
   "response": {
     "type": "object",
     "required": ["total", "byStatus", "monthlyRecurringRevenue", "dueNow", "renewingWithin", "gracePeriod", "currency",
                  "chargesLast30Days", "byService"],
     "properties": {
       "total": {"type": "integer"},
       "byStatus": {"$ref": "#/components/schemas/SubscriptionCounts"},
       "monthlyRecurringRevenue": {"$ref": "#/components/schemas/Amount"},
       "dueNow": {"type": "integer"},
       "renewingWithin": {
         "type": "object",
         "required": ["window", "count"],
         "properties": {"window": {"type": "string", "description": "an interval, e.g. \"7 days\""}, "count": {"type": "integer"}}
       },
       "gracePeriod": {"type": "string", "description": "an interval, e.g. \"3 days\""},
       "currency": {"const": "IDR"},
       "chargesLast30Days": {
         "type": "object",
         "required": ["count", "amount"],
         "properties": {"count": {"type": "integer"}, "amount": {"$ref": "#/components/schemas/Amount"}}
       },
       "byService": {
         "type": "array",
         "items": {
           "type": "object",
           "required": ["serviceId", "name", "displayName", "live", "active", "total", "monthlyRecurringRevenue"],
           "properties": {
             "serviceId": {"type": "string", "format": "uuid"},
             "name": {"type": "string"},
             "displayName": {"type": "string"},
             "live": {"type": "integer"},
             "active": {"type": "integer"},
             "total": {"type": "integer"},
             "monthlyRecurringRevenue": {"$ref": "#/components/schemas/Amount"}
           }
         }
       }
     }
   }},
  {"method": "GET", "path": "/api/v1/admin/subscriptions/notices", "function": "api.subscriptions_admin_notices",
   "access": "admin", "status": 200, "message": "Subscription notices retrieved successfully", "flags": ["paginated"],
   "tag": "admin-subscriptions",
   "summary": "Subscriptions to notify: expiring soon, in grace, suspended",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "notice": {"type": "string", "enum": ["expiring_soon", "grace", "suspended"]}
   },
   "response": {
     "type": "array",
     "items": {
       "type": "object",
       "required": ["notice", "subscriptionId", "user", "service", "status", "price", "balance", "currentPeriodEnd",
                    "graceUntil", "suspendedAt", "dueAt"],
       "properties": {
         "notice": {"type": "string", "enum": ["expiring_soon", "grace", "suspended"]},
         "subscriptionId": {"type": "string", "format": "uuid"},
         "user": {"$ref": "#/components/schemas/UserRef"},
         "service": {
           "type": "object",
           "required": ["id", "name", "displayName"],
           "properties": {
             "id": {"type": "string", "format": "uuid"},
             "name": {"type": "string"},
             "displayName": {"type": "string"}
           }
         },
         "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
         "price": {"$ref": "#/components/schemas/Amount"},
         "balance": {"$ref": "#/components/schemas/Amount"},
         "currentPeriodEnd": {"type": "string", "format": "date-time"},
         "graceUntil": {"type": ["string", "null"], "format": "date-time"},
         "suspendedAt": {"type": ["string", "null"], "format": "date-time"},
         "dueAt": {"type": ["string", "null"], "format": "date-time"}
       }
     }
   },
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/admin/subscriptions/users/:userId", "function": "api.subscriptions_admin_list",
   "access": "admin", "status": 200, "message": "User subscriptions retrieved successfully", "flags": ["paginated"],
   "tag": "admin-subscriptions", "operationId": "subscriptionsAdminListByUser",
   "summary": "One user's subscriptions, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "status": {"$ref": "#/components/schemas/SubscriptionStatus"},
     "serviceId": {"type": "string", "format": "uuid"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}},
   "errors": [400, 404]},
  {"method": "GET", "path": "/api/v1/admin/subscriptions/:id", "function": "api.subscriptions_admin_get",
   "access": "admin", "status": 200, "message": "Subscription retrieved successfully", "tag": "admin-subscriptions",
   "summary": "Any subscription with its owner, charges and status history",
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Subscription"},
     {
       "type": "object",
       "required": ["user", "balance", "charges", "events"],
       "properties": {
         "user": {"$ref": "#/components/schemas/UserRef"},
         "balance": {"$ref": "#/components/schemas/Amount"},
         "charges": {"type": "array", "items": {"$ref": "#/components/schemas/SubscriptionCharge"}},
         "events": {
           "type": "array",
           "items": {
             "type": "object",
             "required": ["event", "from", "to", "actorId", "reason", "createdAt"],
             "properties": {
               "event": {"type": "string"},
               "from": {"type": ["string", "null"]},
               "to": {"type": "string"},
               "actorId": {"type": ["string", "null"], "format": "uuid"},
               "reason": {"type": ["string", "null"]},
               "createdAt": {"type": "string", "format": "date-time"}
             }
           }
         }
       }
     }
   ]},
   "errors": [404]},
  {"method": "PUT", "path": "/api/v1/admin/subscriptions/:id/status", "function": "api.subscriptions_admin_set_status",
   "access": "admin", "status": 200, "message": "Subscription status updated successfully", "tag": "admin-subscriptions",
   "summary": "Set a subscription's status through the status machine (no charge, no refund)",
   "request": {
     "type": "object",
     "required": ["status", "reason"],
     "properties": {
       "status": {"type": "string", "enum": ["ACTIVE", "SUSPENDED", "CANCELLED", "EXPIRED"]},
       "reason": {"type": "string", "minLength": 3, "maxLength": 500}
     }
   },
   "requestRequired": true,
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Subscription"},
     {"type": "object", "required": ["previousStatus"],
      "properties": {"previousStatus": {"$ref": "#/components/schemas/SubscriptionStatus"}}}
   ]},
   "errors": [400, 404, 409]}
]$routes$);

------------------------------------------------------------------------------
-- the OpenAPI document
------------------------------------------------------------------------------

-- "api.users_list" of a route's function (NULL for a built-in).
CREATE FUNCTION paas.route_function_name(fn regprocedure) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN (SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname)
			  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			 WHERE p.oid = fn);
COMMENT ON FUNCTION paas.route_function_name(regprocedure) IS
	'schema-qualified name of a route''s function, without its arguments';

-- The schema of a path capture the route does not describe itself.
CREATE FUNCTION paas.route_path_param(name text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE name
		WHEN 'id' THEN '{"type": "string", "format": "uuid", "description": "the resource''s id"}'
		WHEN 'userId' THEN '{"type": "string", "format": "uuid", "description": "the user''s id"}'
		WHEN 'tokenId' THEN '{"type": "string", "format": "uuid", "description": "the join token''s id"}'
		WHEN 'nodeId' THEN '{"type": "string", "description": "the node''s id or name"}'
		WHEN 'nodeName' THEN '{"type": "string", "description": "the node''s name or id"}'
		WHEN 'name' THEN '{"type": "string", "description": "the service''s slug (case-insensitive)"}'
		ELSE '{"type": "string"}' END::jsonb;
COMMENT ON FUNCTION paas.route_path_param(text) IS
	'the default JSON Schema of a path capture, by its name';

-- The security requirements of an access rule.
CREATE FUNCTION paas.route_security(access text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE access
		WHEN 'public' THEN '[]'
		WHEN 'user' THEN '[{"bearerAuth": []}]'
		WHEN 'admin' THEN '[{"bearerAuth": []}]'
		WHEN 'node' THEN '[{"nodeToken": []}]'
		WHEN 'local' THEN '[{"bearerAuth": []}]' END::jsonb;
COMMENT ON FUNCTION paas.route_security(text) IS
	'OpenAPI security requirements of an access rule (local: an administrator''s token on the API listener)';

-- Every error status a route can answer: its function's, then those of the
-- gateway (a malformed or oversized body, the database unavailable), of
-- the access rule and of the flags (rate limits, the payment gateway).
CREATE FUNCTION paas.route_error_statuses(r paas.routes) RETURNS integer[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN (SELECT coalesce(array_agg(DISTINCT e ORDER BY e), '{}')
			  FROM unnest(r.errors
				|| CASE WHEN r.function IS NOT NULL THEN ARRAY[400, 413, 503] ELSE '{}' END
				|| CASE r.access WHEN 'user' THEN ARRAY[401] WHEN 'admin' THEN ARRAY[401, 403]
								 WHEN 'local' THEN ARRAY[403] ELSE '{}' END
				|| CASE WHEN r.flags && ARRAY['rate_login', 'rate_register', 'rate_refresh', 'snap']
						THEN ARRAY[429] ELSE '{}' END
				|| CASE WHEN 'snap' = ANY (r.flags) THEN ARRAY[502] ELSE '{}' END) e);
COMMENT ON FUNCTION paas.route_error_statuses(paas.routes) IS
	'the error statuses of a route: its own, the gateway''s, its access rule''s and its flags''';

-- components.responses: one error envelope per status.
CREATE FUNCTION paas.openapi_responses() RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN (SELECT jsonb_object_agg(x.name, jsonb_strip_nulls(jsonb_build_object(
				'description', x.descr,
				'headers', CASE WHEN x.retry THEN jsonb_build_object('Retry-After', jsonb_build_object(
								'description', 'seconds to wait before retrying',
								'schema', jsonb_build_object('type', 'integer', 'minimum', 0))) END,
				'content', jsonb_build_object('application/json', jsonb_build_object('schema',
					CASE WHEN x.codes IS NULL THEN '{"$ref": "#/components/schemas/Error"}'::jsonb
						 ELSE jsonb_build_object('allOf', jsonb_build_array(
								'{"$ref": "#/components/schemas/Error"}'::jsonb,
								jsonb_build_object('type', 'object', 'properties', jsonb_build_object(
									'code', CASE WHEN cardinality(x.codes) = 1
												 THEN jsonb_build_object('const', x.codes[1])
												 ELSE jsonb_build_object('enum', to_jsonb(x.codes)) END,
									'statusCode', jsonb_build_object('const', x.status))))) END)))))
			  FROM (VALUES
				(400, 'BadRequest', ARRAY['VALIDATION_ERROR', 'INVALID_PASSWORD'], false,
				 'Invalid input: a malformed JSON body, or fields that fail validation (every failing field is listed in errors); '
				 'INVALID_PASSWORD: the current password is wrong (POST /auth/change-password)'),
				(401, 'Unauthorized', ARRAY['AUTH_ERROR'], false,
				 'Missing, invalid or expired credentials, a revoked session or an inactive account'),
				(402, 'PaymentRequired', ARRAY['INSUFFICIENT_BALANCE'], false, 'The wallet does not cover the charge'),
				(403, 'Forbidden', ARRAY['FORBIDDEN_ERROR'], false, 'The caller may not do this'),
				(404, 'NotFound', ARRAY['NOT_FOUND_ERROR', 'USER_NOT_FOUND', 'SERVICE_NOT_FOUND', 'WORKER_NODE_NOT_FOUND'], false,
				 'No such resource (another user''s answers the same; so does an id that cannot exist): USER_NOT_FOUND, '
				 'SERVICE_NOT_FOUND, WORKER_NODE_NOT_FOUND on the routes of users, services and worker nodes, '
				 'NOT_FOUND_ERROR elsewhere'),
				(409, 'Conflict', ARRAY['CONFLICT_ERROR', 'USER_EXISTS', 'EMAIL_EXISTS', 'SERVICE_EXISTS', 'WORKER_NODE_EXISTS'], false,
				 'The request conflicts with the current state: USER_EXISTS (POST /users), EMAIL_EXISTS (PUT /users/:id), '
				 'SERVICE_EXISTS (POST /services), WORKER_NODE_EXISTS (a worker node''s name or hostname is taken), '
				 'CONFLICT_ERROR otherwise'),
				(413, 'PayloadTooLarge', ARRAY['PAYLOAD_TOO_LARGE'], false, 'The request body exceeds 1 MiB'),
				(429, 'TooManyRequests', ARRAY['RATE_LIMITED'], true, 'Too many requests: retry after Retry-After seconds'),
				(502, 'BadGateway', ARRAY['GATEWAY_ERROR', 'CLUSTER_ERROR'], false,
				 'GATEWAY_ERROR: the payment gateway could not be reached; the top-up stays pending and can be retried. '
				 'CLUSTER_ERROR: the Kubernetes API refused an action on a worker node or did not answer (its status, '
				 'reason and message are in details); nothing was changed'),
				(503, 'ServiceUnavailable', ARRAY['SERVICE_UNAVAILABLE'], true,
				 'The database is unavailable or busy: retry after Retry-After seconds'),
				(NULL, 'UnexpectedError', NULL::text[], false, 'Any other error (500 INTERNAL_ERROR: a server fault)'))
				AS x (status, name, codes, retry, descr));
COMMENT ON FUNCTION paas.openapi_responses() IS
	'components.responses of the OpenAPI document: the error envelope of each status';

CREATE FUNCTION paas.openapi_response_name(status integer) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE status WHEN 400 THEN 'BadRequest' WHEN 401 THEN 'Unauthorized' WHEN 402 THEN 'PaymentRequired'
					   WHEN 403 THEN 'Forbidden' WHEN 404 THEN 'NotFound' WHEN 409 THEN 'Conflict'
					   WHEN 413 THEN 'PayloadTooLarge' WHEN 429 THEN 'TooManyRequests'
					   WHEN 502 THEN 'BadGateway' WHEN 503 THEN 'ServiceUnavailable' END;
COMMENT ON FUNCTION paas.openapi_response_name(integer) IS
	'the name in components.responses of an error status';

-- The operation object of a route.  names: the capture names of the path
-- template the document files it under (the first route of its shape).
CREATE FUNCTION paas.route_operation(r paas.routes, names text[]) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	own text[] := paas.route_captures(r.path);
	params jsonb := '[]';
	responses jsonb;
	s jsonb;
	i integer;
	p record;
BEGIN
	FOR i IN 1 .. coalesce(cardinality(own), 0) LOOP
		s := coalesce(r.path_schema -> own[i], paas.route_path_param(own[i]));
		params := params || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
			'name', names[i], 'in', 'path', 'required', true,
			'description', s ->> 'description', 'schema', s - 'description')));
	END LOOP;
	FOR p IN SELECT x.* FROM (SELECT 'query' AS place, key, value FROM jsonb_each(r.query_schema)
							  UNION ALL
							  SELECT 'header', key, value FROM jsonb_each(r.header_schema)) x
			 ORDER BY x.place DESC, (x.key = 'page') DESC, (x.key = 'limit') DESC, x.key LOOP
		params := params || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
			'name', p.key, 'in', p.place, 'required', false,
			'description', p.value ->> 'description', 'schema', p.value - 'description')));
	END LOOP;

	-- the route's own success reply, then the others its function may choose
	SELECT jsonb_object_agg(x.status, jsonb_build_object('description', x.message, 'content',
		CASE r.response_type
		WHEN 'envelope' THEN jsonb_build_object('application/json', jsonb_build_object('schema',
			jsonb_build_object('allOf', jsonb_build_array(
				jsonb_build_object('$ref', CASE WHEN 'paginated' = ANY (r.flags)
												THEN '#/components/schemas/PaginatedSuccess'
												ELSE '#/components/schemas/Success' END),
				jsonb_build_object('type', 'object', 'properties', jsonb_build_object(
					'message', jsonb_build_object('const', x.message),
					'statusCode', jsonb_build_object('const', x.status::integer),
					'data', r.response_schema))))))
		WHEN 'json' THEN jsonb_build_object('application/json', jsonb_build_object('schema', r.response_schema))
		WHEN 'pdf' THEN '{"application/pdf": {"schema": {"type": "string", "format": "binary"}}}'
		WHEN 'text' THEN jsonb_build_object('text/plain', jsonb_build_object('schema', r.response_schema)) END))
	  INTO responses
	  FROM (SELECT r.status::text AS status, r.message
			UNION ALL
			SELECT e.key, e.value #>> '{}' FROM jsonb_each(r.other_replies) e) x;
	SELECT responses || coalesce(jsonb_object_agg(e::text, jsonb_build_object(
			'$ref', '#/components/responses/' || paas.openapi_response_name(e))), '{}')
	  INTO responses
	  FROM unnest(paas.route_error_statuses(r)) e;
	responses := responses || '{"default": {"$ref": "#/components/responses/UnexpectedError"}}';

	RETURN jsonb_strip_nulls(jsonb_build_object(
		'operationId', r.operation_id,
		'summary', r.summary,
		'description', coalesce(r.description, obj_description(r.function, 'pg_proc')),
		'tags', jsonb_build_array(r.tag),
		'security', coalesce(r.security, paas.route_security(r.access)),
		'parameters', CASE WHEN jsonb_array_length(params) > 0 THEN params END,
		'requestBody', CASE WHEN r.request_schema IS NOT NULL THEN jsonb_build_object(
			'required', r.request_required,
			'content', jsonb_build_object('application/json', jsonb_build_object('schema', r.request_schema))) END,
		'responses', responses,
		'x-access', r.access,
		'x-paas-function', paas.route_function_name(r.function),
		'x-paas-flags', CASE WHEN cardinality(r.flags) > 0 THEN to_jsonb(r.flags) END));
END
$$;
COMMENT ON FUNCTION paas.route_operation(paas.routes, text[]) IS
	'the OpenAPI operation object of a route, its path parameters named as in the document''s template';

CREATE FUNCTION api.openapi(ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	paths jsonb;
BEGIN
	-- Routes of one shape share a path template ("/services/{name}"), named
	-- after the first of them in table order.
	WITH rt AS (
		SELECT r, first_value(r.path) OVER (PARTITION BY paas.route_shape(r.path) ORDER BY r.seq) AS key_path
		  FROM paas.routes r),
	items AS (
		SELECT paas.route_openapi_path(rt.key_path) AS p,
			   jsonb_object_agg(lower((rt.r).method),
								paas.route_operation(rt.r, paas.route_captures(rt.key_path))) AS item
		  FROM rt
		 GROUP BY 1)
	SELECT coalesce(jsonb_object_agg(p, item), '{}') INTO paths FROM items;

	RETURN jsonb_build_object(
		'openapi', '3.1.0',
		'info', jsonb_build_object(
			'title', 'paas API',
			'version', coalesce((SELECT extversion FROM pg_extension WHERE extname = 'paas'), paas.version()),
			'description', 'Platform-as-a-service backend: accounts, the service catalog, a prepaid IDR wallet '
				'topped up through Midtrans, subscriptions paid from it, worker nodes. Every JSON answer uses one '
				'envelope: {success, message, data, timestamp, statusCode} (lists add pagination), errors '
				'{success: false, message, code, details, errors, timestamp, statusCode}; statusCode always equals '
				'the HTTP status. Money is a JSON integer of whole rupiah; ids are opaque strings; timestamps are '
				'ISO-8601 UTC. A request''s fields are its JSON body''s, then its query string''s, then its path''s '
				'(later wins). Generated from the route table paas.routes.'),
		'servers', jsonb_build_array(jsonb_build_object(
			'url', coalesce(nullif(ctx ->> 'serverUrl', ''), '/'),
			'description', 'this server')),
		'tags', (SELECT coalesce(jsonb_agg(jsonb_build_object('name', t.name, 'description', t.description)
										   ORDER BY t.seq), '[]')
				   FROM paas.route_tags t WHERE EXISTS (SELECT 1 FROM paas.routes r WHERE r.tag = t.name)),
		'paths', paths,
		'components', jsonb_build_object(
			'schemas', (SELECT coalesce(jsonb_object_agg(s.name, s.schema), '{}') FROM paas.route_schemas s),
			'responses', paas.openapi_responses(),
			'securitySchemes', jsonb_build_object(
				'bearerAuth', jsonb_build_object('type', 'http', 'scheme', 'bearer', 'bearerFormat', 'JWT',
					'description', 'an access token from /auth/login, /auth/register or /auth/refresh'),
				'nodeToken', jsonb_build_object('type', 'http', 'scheme', 'bearer',
					'description', 'the node token POST /workers/register returned to this node'),
				'joinToken', jsonb_build_object('type', 'http', 'scheme', 'bearer',
					'description', 'a cluster join token (POST /workers/join-tokens, or the configured one)'))));
END
$$;
COMMENT ON FUNCTION api.openapi(jsonb) IS
	'GET /openapi.json: the OpenAPI 3.1 document of every route, from paas.routes (ctx.serverUrl: the servers URL, default "/")';

-- The route table as the gateway loads it, in table order.
CREATE FUNCTION api.routes()
	RETURNS TABLE (seq integer, method text, path text, function text, access text, status integer,
				   message text, flags text[], tag text)
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
	SELECT r.seq, r.method, r.path, paas.route_function_name(r.function), r.access, r.status, r.message,
		   r.flags, r.tag
	  FROM paas.routes r
	 ORDER BY r.seq
$$;
COMMENT ON FUNCTION api.routes() IS
	'the route table as the gateway loads it at start and on NOTIFY paas_routes: seq, method, path, function, access, status, message, flags, tag';

REVOKE ALL ON FUNCTION api.openapi(jsonb), api.routes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.openapi(jsonb), api.routes() TO paas_api, paas_owner;

-- ---- new: sql/parts/96_notify_routes.sql ----
-- paas -- the routes of notifications (httpd/routes_notify.inc) in the
-- route table (95_routes.sql), in the gateway's order: routes.c includes
-- routes_notify.inc after the subscriptions.  The functions are in
-- 75_notifications.sql.

INSERT INTO paas.route_tags (name, seq, description) VALUES
	('notifications', 10, 'E-mail: one-click unsubscribe of reminders, and the deliveries for administrators');

SELECT paas.routes_add($routes$[
  {"method": "POST", "path": "/api/v1/auth/forgot-password", "function": "api.auth_forgot_password", "access": "public",
   "status": 200, "message": "If an account exists for this e-mail, a reset link has been sent",
   "flags": ["rate_register"], "tag": "auth",
   "summary": "Mail a password reset link (the same answer whether the address has an account or not)",
   "request": {
     "type": "object",
     "required": ["email"],
     "properties": {"email": {"$ref": "#/components/schemas/Email"}}
   },
   "requestRequired": true,
   "response": {"type": "null"},
   "errors": [400, 429]},
  {"method": "POST", "path": "/api/v1/auth/reset-password", "function": "api.auth_reset_password", "access": "public",
   "status": 200, "message": "Password has been reset", "flags": ["rate_register"], "tag": "auth",
   "summary": "Set a new password with the token of a reset link (single use; every session is revoked)",
   "request": {
     "type": "object",
     "required": ["token", "newPassword", "confirmNewPassword"],
     "properties": {
       "token": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the token of the reset link"},
       "newPassword": {"$ref": "#/components/schemas/Password"},
       "confirmNewPassword": {"type": "string", "description": "the same as newPassword"}
     }
   },
   "requestRequired": true,
   "response": {"type": "null"},
   "errors": [400, 429]},
  {"method": "POST", "path": "/api/v1/auth/verify-email", "function": "api.auth_verify_email", "access": "public",
   "status": 200, "message": "E-mail address verified", "flags": ["rate_refresh"], "tag": "auth",
   "summary": "Verify the address a verification link was mailed to",
   "request": {
     "type": "object",
     "required": ["token"],
     "properties": {"token": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the token of the link"}}
   },
   "requestRequired": true,
   "response": {
     "type": "object",
     "required": ["verified", "email"],
     "properties": {"verified": {"const": true}, "email": {"type": "string"}}
   },
   "errors": [400, 429]},
  {"method": "POST", "path": "/api/v1/auth/resend-verification", "function": "api.auth_resend_verification",
   "access": "user", "status": 200, "message": "Verification e-mail sent", "tag": "auth",
   "summary": "Mail a new verification link (one a minute)",
   "response": {
     "type": "object",
     "required": ["email", "verified", "sent"],
     "properties": {
       "email": {"type": "string"},
       "verified": {"type": "boolean", "description": "true: the address is verified already, nothing was sent"},
       "sent": {"type": "boolean"}
     }
   },
   "errors": [429]},
  {"method": "GET", "path": "/api/v1/auth/notifications", "function": "api.auth_notifications", "access": "user",
   "status": 200, "message": "Notification preferences retrieved successfully", "tag": "auth",
   "summary": "The caller's mail preferences and whether the address is verified",
   "response": {"$ref": "#/components/schemas/MailPreferences"}},
  {"method": "PUT", "path": "/api/v1/auth/notifications", "function": "api.auth_notifications_update", "access": "user",
   "status": 200, "message": "Notification preferences updated successfully", "tag": "auth",
   "summary": "Set the mail locale and turn reminders on or off (transactional mails always go)",
   "request": {
     "type": "object",
     "properties": {
       "locale": {"enum": ["id", "en"]},
       "reminders": {"type": "boolean", "description": "renewal reminders"},
       "transactional": {"const": true, "description": "cannot be turned off"}
     }
   },
   "requestRequired": true,
   "response": {"$ref": "#/components/schemas/MailPreferences"},
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/notifications/unsubscribe", "function": "api.notifications_unsubscribe_info",
   "access": "public", "status": 200, "message": "Unsubscribe link is valid", "flags": ["rate_refresh"],
   "tag": "notifications",
   "summary": "What an unsubscribe link would do (changes nothing: link scanners follow links)",
   "query": {"token": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the token of the link"}},
   "response": {"$ref": "#/components/schemas/Unsubscribe"},
   "errors": [400, 429]},
  {"method": "POST", "path": "/api/v1/notifications/unsubscribe", "function": "api.notifications_unsubscribe",
   "access": "public", "status": 200, "message": "Reminders turned off", "flags": ["rate_refresh", "form"],
   "tag": "notifications",
   "summary": "One-click unsubscribe of reminders (RFC 8058: the List-Unsubscribe URL, POSTed as a form)",
   "query": {"token": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the token of the link"}},
   "response": {"$ref": "#/components/schemas/Unsubscribe"},
   "errors": [400, 429]},
  {"method": "GET", "path": "/api/v1/admin/notifications", "function": "api.admin_notifications", "access": "admin",
   "status": 200, "message": "Notifications retrieved successfully", "flags": ["paginated"], "tag": "notifications",
   "summary": "Mails with their status, attempts and last error, newest first",
   "query": {
     "page": {"$ref": "#/components/schemas/Page"},
     "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20, "description": "rows per page"},
     "status": {"enum": ["PENDING", "SENDING", "SENT", "FAILED", "SUPPRESSED"]},
     "kind": {"type": "string", "description": "a kind of paas.notification_kinds"},
     "search": {"type": "string", "minLength": 1, "maxLength": 254, "description": "part of the recipient's address"},
     "userId": {"type": "string", "format": "uuid"}
   },
   "response": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}},
   "errors": [400]},
  {"method": "GET", "path": "/api/v1/admin/notifications/:id", "function": "api.admin_notification_get",
   "access": "admin", "status": 200, "message": "Notification retrieved successfully", "tag": "notifications",
   "summary": "A mail and every SMTP attempt of it",
   "pathParams": {"id": {"type": "string", "pattern": "^[0-9]+$", "description": "the mail's id"}},
   "response": {"allOf": [
     {"$ref": "#/components/schemas/Notification"},
     {"type": "object", "required": ["deliveries"], "properties": {"deliveries": {"type": "array", "items": {
       "type": "object",
       "required": ["attempt", "at", "outcome", "smtpCode", "reply"],
       "properties": {
         "attempt": {"type": "integer"},
         "at": {"type": "string", "format": "date-time"},
         "outcome": {"enum": ["sent", "temporary", "permanent", "unavailable"]},
         "smtpCode": {"type": ["integer", "null"]},
         "reply": {"type": ["string", "null"], "description": "the server's reply, or the connection error"}
       }}}}}
   ]},
   "errors": [404]},
  {"method": "POST", "path": "/api/v1/admin/notifications/:id/resend", "function": "api.admin_notification_resend",
   "access": "admin", "status": 200, "message": "Notification queued again", "tag": "notifications",
   "summary": "Queue a sent or failed mail again, as a new mail",
   "pathParams": {"id": {"type": "string", "pattern": "^[0-9]+$", "description": "the mail's id"}},
   "response": {"$ref": "#/components/schemas/Notification"},
   "errors": [404, 409]}
]$routes$);

INSERT INTO paas.route_schemas (name, schema)
SELECT key, value FROM jsonb_each($schemas$
{
  "MailPreferences": {
    "type": "object",
    "required": ["email", "emailVerified", "locale", "reminders", "transactional"],
    "properties": {
      "email": {"type": "string"},
      "emailVerified": {"type": "boolean"},
      "locale": {"enum": ["id", "en"]},
      "reminders": {"type": "boolean", "description": "renewal reminders"},
      "transactional": {"const": true, "description": "transactional mails always go"}
    }
  },
  "Unsubscribe": {
    "type": "object",
    "required": ["email", "reminders", "transactional"],
    "properties": {
      "email": {"type": "string", "description": "the address, most of its local part hidden"},
      "reminders": {"type": "boolean"},
      "transactional": {"const": true}
    }
  },
  "Notification": {
    "type": "object",
    "required": ["id", "kind", "category", "userId", "recipient", "status", "attempts", "lastError", "lastReply",
                 "smtpCode", "messageId", "resentFrom", "dueAt", "createdAt", "sentAt", "updatedAt"],
    "properties": {
      "id": {"type": "integer"},
      "kind": {"type": "string"},
      "category": {"enum": ["transactional", "reminder", "admin"]},
      "userId": {"type": ["string", "null"], "format": "uuid"},
      "recipient": {"type": ["string", "null"]},
      "status": {"enum": ["PENDING", "SENDING", "SENT", "FAILED", "SUPPRESSED"]},
      "attempts": {"type": "integer", "minimum": 0},
      "lastError": {"type": ["string", "null"]},
      "lastReply": {"type": ["string", "null"], "description": "the SMTP server's last reply"},
      "smtpCode": {"type": ["integer", "null"]},
      "messageId": {"type": ["string", "null"], "description": "the same for every attempt of the mail"},
      "resentFrom": {"type": ["integer", "null"]},
      "dueAt": {"type": ["string", "null"], "format": "date-time"},
      "createdAt": {"type": "string", "format": "date-time"},
      "sentAt": {"type": ["string", "null"], "format": "date-time"},
      "updatedAt": {"type": "string", "format": "date-time"}
    }
  }
}
$schemas$::jsonb);

-- ---- new: sql/parts/97_pod_routes.sql ----
-- paas -- the routes of hosted instances (httpd/routes_pods.inc) in the
-- route table (95_routes.sql), in the gateway's order: routes.c includes
-- routes_pods.inc after the notifications.  The functions are in
-- 73_instance_routes.sql.  Their schemas are loose for now: the data of
-- each answer is described by the function's comment.

INSERT INTO paas.route_tags (name, seq, description) VALUES
	('pods', 11, 'The caller''s hosted instances (the original''s /pods): status, URL, restart, logs, credentials'),
	('admin-pods', 12, 'Every hosted instance, for administrators: events, manifests, reconcile, stop and start');

SELECT paas.routes_add($routes$[
  {"method": "GET", "path": "/api/v1/pods", "function": "api.pods_list", "access": "user", "status": 200, "message": "Pods retrieved successfully", "tag": "pods", "summary": "Pods retrieved successfully", "flags": ["paginated"], "response": {"type": "array", "items": {"type": "object"}}},
  {"method": "GET", "path": "/api/v1/pods/:id", "function": "api.pods_get", "access": "user", "status": 200, "message": "Pod details retrieved successfully", "tag": "pods", "summary": "Pod details retrieved successfully", "errors": [404], "response": {"type": ["object", "array", "null"]}},
  {"method": "POST", "path": "/api/v1/pods/:id/restart", "function": "api.pods_restart", "access": "user", "status": 200, "message": "Pod restart requested", "tag": "pods", "summary": "Pod restart requested", "errors": [404], "request": {"type": "object"}, "response": {"type": ["object", "array", "null"]}},
  {"method": "GET", "path": "/api/v1/pods/:id/logs", "function": "api.pods_logs", "access": "user", "status": 200, "message": "Pod logs retrieved successfully", "tag": "pods", "summary": "Pod logs retrieved successfully", "flags": ["k8s"], "errors": [404], "response": {"type": ["object", "array", "null"]}, "query": {"tailLines": {"type": "string", "pattern": "^[0-9]{1,5}$", "description": "the number of lines from the end"}}},
  {"method": "GET", "path": "/api/v1/pods/:id/credentials", "function": "api.pods_credentials", "access": "user", "status": 200, "message": "Pod credentials retrieved successfully", "tag": "pods", "summary": "Pod credentials retrieved successfully", "errors": [404], "response": {"type": ["object", "array", "null"]}},
  {"method": "GET", "path": "/api/v1/pods/:id/events", "function": "api.pods_events", "access": "user", "status": 200, "message": "Pod events retrieved successfully", "tag": "pods", "summary": "Pod events retrieved successfully", "flags": ["paginated"], "errors": [404], "response": {"type": "array", "items": {"type": "object"}}},
  {"method": "GET", "path": "/api/v1/admin/pods", "function": "api.pods_admin_list", "access": "admin", "status": 200, "message": "Pods retrieved successfully", "tag": "admin-pods", "summary": "Pods retrieved successfully", "flags": ["paginated"], "response": {"type": "array", "items": {"type": "object"}}},
  {"method": "GET", "path": "/api/v1/admin/pods/stats", "function": "api.pods_admin_stats", "access": "admin", "status": 200, "message": "Pod statistics retrieved successfully", "tag": "admin-pods", "summary": "Pod statistics retrieved successfully", "response": {"type": ["object", "array", "null"]}},
  {"method": "GET", "path": "/api/v1/admin/pods/:id", "function": "api.pods_admin_get", "access": "admin", "status": 200, "message": "Pod retrieved successfully", "tag": "admin-pods", "summary": "Pod retrieved successfully", "errors": [404], "response": {"type": ["object", "array", "null"]}},
  {"method": "GET", "path": "/api/v1/admin/pods/:id/events", "function": "api.pods_admin_events", "access": "admin", "status": 200, "message": "Pod events retrieved successfully", "tag": "admin-pods", "summary": "Pod events retrieved successfully", "flags": ["paginated"], "errors": [404], "response": {"type": "array", "items": {"type": "object"}}},
  {"method": "GET", "path": "/api/v1/admin/pods/:id/manifests", "function": "api.pods_admin_manifests", "access": "admin", "status": 200, "message": "Pod manifests retrieved successfully", "tag": "admin-pods", "summary": "Pod manifests retrieved successfully", "errors": [404], "response": {"type": ["object", "array", "null"]}},
  {"method": "POST", "path": "/api/v1/admin/pods/:id/reconcile", "function": "api.pods_admin_reconcile", "access": "admin", "status": 200, "message": "Pod reconcile requested", "tag": "admin-pods", "summary": "Pod reconcile requested", "errors": [404], "request": {"type": "object"}, "response": {"type": ["object", "array", "null"]}},
  {"method": "POST", "path": "/api/v1/admin/pods/:id/restart", "function": "api.pods_admin_restart", "access": "admin", "status": 200, "message": "Pod restart requested", "tag": "admin-pods", "summary": "Pod restart requested", "errors": [404], "request": {"type": "object"}, "response": {"type": ["object", "array", "null"]}},
  {"method": "POST", "path": "/api/v1/admin/pods/:id/stop", "function": "api.pods_admin_stop", "access": "admin", "status": 200, "message": "Pod stopped", "tag": "admin-pods", "summary": "Pod stopped", "errors": [404], "request": {"type": "object"}, "response": {"type": ["object", "array", "null"]}},
  {"method": "POST", "path": "/api/v1/admin/pods/:id/start", "function": "api.pods_admin_start", "access": "admin", "status": 200, "message": "Pod started", "tag": "admin-pods", "summary": "Pod started", "errors": [404], "request": {"type": "object"}, "response": {"type": ["object", "array", "null"]}},
  {"method": "GET", "path": "/api/v1/services/admin/:id/deployment", "function": "api.services_deployment_get", "access": "admin", "status": 200, "message": "Deployment template retrieved successfully", "tag": "services", "summary": "Deployment template retrieved successfully", "errors": [404], "response": {"type": ["object", "array", "null"]}},
  {"method": "PUT", "path": "/api/v1/services/admin/:id/deployment", "function": "api.services_deployment_set", "access": "admin", "status": 200, "message": "Deployment template saved successfully", "tag": "services", "summary": "Deployment template saved successfully", "errors": [404], "request": {"type": "object"}, "response": {"type": ["object", "array", "null"]}}
]$routes$);

-- ---- after the new parts ----
-- jobs of the new functions
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('prune_login_failures', 'paas.job_prune_login_failures', '1 hour',
	 'deletes failed-login rows that no longer limit or vouch for an address');
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('prune_midtrans_rejects', 'paas.job_prune_midtrans_rejects', '1 hour',
	 'deletes refused Midtrans notifications older than paas.midtrans_reject_retention');

-- the webhook's refused notifications so far become bounded records
INSERT INTO paas.midtrans_rejects (received_at, reason, order_id, client_ip, body_size, body_sha256, body_head)
SELECT n.received_at, n.outcome, n.order_id, NULL, octet_length(n.body::text),
	   sha256(convert_to(n.body::text, 'UTF8')), paas.text_head(n.body::text, 4096)
  FROM paas.midtrans_notifications n
 WHERE n.source = 'webhook' AND n.outcome = 'bad_signature' AND n.signature_ok IS false
 ORDER BY n.id;
DELETE FROM paas.midtrans_notifications n
 WHERE n.source = 'webhook' AND n.outcome = 'bad_signature' AND n.signature_ok IS false;

-- the balances of the platform accounts, verified from their postings
SELECT paas.ledger_restore_balances();

CREATE TRIGGER job_mark_customized BEFORE UPDATE ON paas.job
	FOR EACH ROW EXECUTE FUNCTION paas.job_mark_customized();
CREATE TRIGGER job_restore_settings BEFORE INSERT ON paas.job
	FOR EACH ROW WHEN (NEW.customized) EXECUTE FUNCTION paas.job_restore_settings();
INSERT INTO paas.job (name, fn, runner, run_every, next_run_at, description) VALUES
	('renewals', 'api.run_renewals', 'pg_cron', NULL, NULL,
	 'renews due subscriptions; started by pg_cron (cron.job paas-renewals, api.subscriptions_schedule_renewals)');

