-- paas -- ledger: double-entry accounts, entries and postings of IDR
-- amounts, the C posting function, balances, admin billing, BI views.
--
-- Model.  An account is either a user's wallet (one per user, created on
-- first use) or a platform account ('gateway_clearing', 'revenue',
-- 'adjustments', 'refunds').  An entry is a set of postings whose amounts
-- sum to zero; a positive amount raises the account's balance, a negative
-- one lowers it.  Wallets never go below zero; platform accounts may.
--
-- Rules a reader must know.
--   * paas.ledger_post (C, extension/ledger.c) is the only writer of entries
--     and postings.  It locks the involved accounts in ascending id order,
--     checks everything, then writes all entries of the call at once.
--   * Entries and postings are append-only: a trigger refuses UPDATE, DELETE
--     and TRUNCATE; only the table owner can get round it (by disabling the
--     trigger).  Corrections are new entries (paas.ledger_reverse).
--   * ledger_accounts.balance is a cache that always equals the sum of the
--     row's postings; each posting stores the balance before and after it,
--     so a row's postings in id order form a chain.
--   * Platform accounts are hot (every charge credits 'revenue'), so each
--     has 16 slot rows (kind 'platform_slot', parent_id = the account):
--     ledger_post writes a posting for a platform account to the slot
--     (backend id) % 16, so parallel charges do not queue on one row lock.
--     A platform account's balance is the sum of its slots
--     (paas.account_balance); before/after of its postings are the slot's.
--     The platform row itself never carries postings (balance stays 0).
--   * reporting.ledger_check lists every breach of these rules (none = ok).
--   * After pg_restore.  The platform accounts and their slots are install
--     rows, never dumped: CREATE EXTENSION makes them again with balance 0
--     and balance_verified false, then the postings come back.  Nothing may
--     be posted to such rows until their balances are rebuilt from their
--     postings (a posting would start a chain at 0): while some unverified
--     row has postings or a balance (paas.ledger_restore_needed()),
--     ledger_post refuses with PT503 to post to any unverified row; when
--     none has (a fresh install), the first posting verifies the row it
--     writes.  The background worker rebuilds them
--     (paas.ledger_restore_balances, 90_dump.sql) at start and on each
--     pass, so no DBA has to remember it.  Wallet rows are dumped with their
--     balances, in the dump's one snapshot: verified.
--   * Idempotency: a key is bound to the SHA-256 of the entries it was first
--     used with and to the entries it posted; a retry with the same content
--     returns the first result (rebuilt by paas.ledger_replay) with
--     "replayed": true, other content is PT409.

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

CREATE TABLE paas.ledger_accounts (
	id			bigint GENERATED ALWAYS AS IDENTITY (MAXVALUE 999999999999) PRIMARY KEY,
	kind		text NOT NULL CHECK (kind IN ('wallet', 'platform', 'platform_slot')),
	user_id		uuid UNIQUE REFERENCES paas.users (id),
	code		text UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]{1,62}$'),
	parent_id	bigint REFERENCES paas.ledger_accounts (id),
	slot		smallint CHECK (slot BETWEEN 0 AND 15),
	currency	text NOT NULL DEFAULT 'IDR' CHECK (currency = 'IDR'),
	balance		bigint NOT NULL DEFAULT 0,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	-- balance is known to be the sum of this row's postings (see the header:
	-- false on the install rows until their first posting or a rebuild)
	balance_verified boolean NOT NULL DEFAULT true,
	CHECK ((kind = 'wallet') = (user_id IS NOT NULL)),
	CHECK ((kind = 'platform') = (code IS NOT NULL)),
	CHECK ((kind = 'platform_slot') = (parent_id IS NOT NULL AND slot IS NOT NULL)),
	UNIQUE (parent_id, slot),
	CONSTRAINT ledger_wallet_not_negative CHECK (kind <> 'wallet' OR balance >= 0),
	-- fixed ids of the install rows, never drawn from the sequence (see below)
	CONSTRAINT ledger_accounts_id_reserved CHECK (CASE WHEN kind = 'wallet' THEN id BETWEEN 69 AND 999999999999
												 ELSE id BETWEEN 1 AND 68 OR id >= 1000000000000 END)
) WITH (fillfactor = 50);
-- fillfactor 50: every posting rewrites its account's row; the free space
-- keeps those updates HOT (no index entries, less WAL on the posting path).
COMMENT ON TABLE paas.ledger_accounts IS
	'ledger accounts: one IDR wallet per user plus platform accounts; balance caches the sum of postings';

CREATE SEQUENCE paas.ledger_entry_id_seq;
CREATE SEQUENCE paas.ledger_posting_id_seq;

CREATE TABLE paas.ledger_entries (
	id				bigint PRIMARY KEY DEFAULT nextval('paas.ledger_entry_id_seq'),
	kind			text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
	memo			text NOT NULL DEFAULT '' CHECK (char_length(memo) <= 1000),
	ref				jsonb,
	idempotency_key	text,
	created_at		timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE paas.ledger_entry_id_seq OWNED BY paas.ledger_entries.id;
-- No index on created_at: every index is paid on the posting path, and ids
-- follow time (admin lists page by id; date filters scan).
-- An entry is reversed at most once.
CREATE UNIQUE INDEX ledger_entries_reverses_key ON paas.ledger_entries (((ref ->> 'reverses')::bigint))
	WHERE kind = 'reversal';
COMMENT ON TABLE paas.ledger_entries IS
	'append-only journal: one row per balanced set of postings';

CREATE TABLE paas.ledger_postings (
	id				bigint NOT NULL DEFAULT nextval('paas.ledger_posting_id_seq'),
	-- No foreign keys here: per-row RI checks were a third of the cost of a
	-- 1,000-posting call.  The same guarantee holds without them: only
	-- ledger_post inserts postings (after locking their accounts, in the
	-- statement that inserts their entries), entries and accounts can never
	-- be deleted (triggers below), and reporting.ledger_check reports any
	-- posting without its entry or account.
	entry_id		bigint NOT NULL,
	account_id		bigint NOT NULL,
	amount			bigint NOT NULL CHECK (amount <> 0),
	balance_before	bigint NOT NULL,
	balance_after	bigint NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	-- (entry_id, id) rather than (id): the same uniqueness, and it serves
	-- "postings of an entry" without a third index on the posting path.
	PRIMARY KEY (entry_id, id)
);
ALTER SEQUENCE paas.ledger_posting_id_seq OWNED BY paas.ledger_postings.id;
CREATE UNIQUE INDEX ledger_postings_account_idx ON paas.ledger_postings (account_id, id);
COMMENT ON TABLE paas.ledger_postings IS
	'append-only: one account movement of an entry, with the balance before and after it';

CREATE TABLE paas.ledger_idempotency (
	key				text PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 255),
	request_hash	bytea NOT NULL,
	entry_ids		bigint[] NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE paas.ledger_idempotency IS
	'idempotency keys of paas.ledger_post: SHA-256 of the entries and the entries the key posted';

CREATE TABLE paas.ledger_adjustments (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	entry_id	bigint NOT NULL UNIQUE REFERENCES paas.ledger_entries (id),
	user_id		uuid NOT NULL REFERENCES paas.users (id),
	admin_id	uuid REFERENCES paas.users (id),
	amount		bigint NOT NULL CHECK (amount <> 0),
	reason		text NOT NULL CHECK (char_length(reason) BETWEEN 3 AND 500),
	ip			text,
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_adjustments_user_idx ON paas.ledger_adjustments (user_id, created_at DESC);
COMMENT ON TABLE paas.ledger_adjustments IS
	'audit of manual adjustments: who (admin_id, NULL for a DBA), why, and the ledger entry';

REVOKE ALL ON paas.ledger_accounts, paas.ledger_entries, paas.ledger_postings,
	paas.ledger_idempotency, paas.ledger_adjustments FROM PUBLIC;
GRANT SELECT ON paas.ledger_accounts, paas.ledger_entries, paas.ledger_postings,
	paas.ledger_adjustments TO paas_owner;

-- Append-only: refuses UPDATE, DELETE and TRUNCATE for everyone.  Only the
-- table owner can disable the trigger, so only the owner can get round it.
CREATE FUNCTION paas.ledger_append_only() RETURNS trigger
	LANGUAGE plpgsql
AS $$
BEGIN
	RAISE EXCEPTION 'ledger table % is append-only (% refused)', TG_TABLE_NAME, TG_OP
		USING ERRCODE = 'insufficient_privilege',
			  HINT = 'Correct an entry with a reversing entry (paas.ledger_reverse).';
END
$$;
COMMENT ON FUNCTION paas.ledger_append_only() IS
	'trigger: refuses UPDATE/DELETE/TRUNCATE on append-only ledger tables';

CREATE TRIGGER ledger_entries_append_only
	BEFORE UPDATE OR DELETE ON paas.ledger_entries
	FOR EACH ROW EXECUTE FUNCTION paas.ledger_append_only();
CREATE TRIGGER ledger_entries_no_truncate
	BEFORE TRUNCATE ON paas.ledger_entries
	FOR EACH STATEMENT EXECUTE FUNCTION paas.ledger_append_only();
CREATE TRIGGER ledger_postings_append_only
	BEFORE UPDATE OR DELETE ON paas.ledger_postings
	FOR EACH ROW EXECUTE FUNCTION paas.ledger_append_only();
CREATE TRIGGER ledger_postings_no_truncate
	BEFORE TRUNCATE ON paas.ledger_postings
	FOR EACH STATEMENT EXECUTE FUNCTION paas.ledger_append_only();
-- Accounts change (their cached balance) but are never removed.
CREATE TRIGGER ledger_accounts_no_delete
	BEFORE DELETE ON paas.ledger_accounts
	FOR EACH ROW EXECUTE FUNCTION paas.ledger_append_only();
CREATE TRIGGER ledger_accounts_no_truncate
	BEFORE TRUNCATE ON paas.ledger_accounts
	FOR EACH STATEMENT EXECUTE FUNCTION paas.ledger_append_only();
CREATE TRIGGER ledger_adjustments_append_only
	BEFORE UPDATE OR DELETE ON paas.ledger_adjustments
	FOR EACH ROW EXECUTE FUNCTION paas.ledger_append_only();

-- Not verified: after a restore these rows are made again by CREATE
-- EXTENSION while their postings come back from the dump.
--
-- Fixed ids.  The dumped postings and wallets name accounts by id, so an
-- install row must have the same id in every database, whatever version it
-- was installed with and upgraded from, and no wallet may ever get one:
--   1-4     the four accounts of 0.1.0, 5-68 their slots (5 + 16 * (id - 1)
--           + slot): the first rows every install has made;
--   69 .. 999 999 999 999     wallets (the sequence; MAXVALUE above);
--   10^12 + 100 * n           the n-th platform account added later (n >= 1;
--           'opening_balances' is n = 1), its slots at + 1 + slot.
-- ledger_accounts_id_reserved holds every row to this.
INSERT INTO paas.ledger_accounts (id, kind, code, balance_verified) OVERRIDING SYSTEM VALUE VALUES
	(1, 'platform', 'gateway_clearing', false),
	(2, 'platform', 'revenue', false),
	(3, 'platform', 'adjustments', false),
	(4, 'platform', 'refunds', false);
INSERT INTO paas.ledger_accounts (id, kind, parent_id, slot, balance_verified) OVERRIDING SYSTEM VALUE
SELECT 5 + 16 * (a.id - 1) + s, 'platform_slot', a.id, s, false FROM paas.ledger_accounts a, generate_series(0, 15) s
 WHERE a.kind = 'platform' ORDER BY a.id, s;
ALTER TABLE paas.ledger_accounts ALTER COLUMN id RESTART WITH 69;

------------------------------------------------------------------------------
-- The ledger interface (used by every area that moves money)
------------------------------------------------------------------------------

-- The answer to a repeated idempotency key: whether the entries are the
-- ones the key was first used with, and the first call's result rebuilt from
-- the ledger (the same jsonb paas.ledger_post returned, "replayed": true).
-- NULLs when the key is unknown.  Called by paas.ledger_post.
CREATE FUNCTION paas.ledger_replay(idempotency_key text, entries jsonb,
								   OUT same_content boolean, OUT result jsonb)
	LANGUAGE sql STABLE STRICT
	SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.ledger_replay(text, jsonb) IS
	'for a known idempotency key: whether entries match the first use, and the first result rebuilt';

CREATE FUNCTION paas.ledger_post(idempotency_key text, entries jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'paas_ledger_post'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION paas.ledger_post(text, jsonb) IS
	'posts a batch of balanced entries atomically: entries = [{kind, memo, ref?, postings: [{account, amount}]}]; '
	'PT400 bad input or overflow, PT404 unknown account, PT402 wallet would go below zero, '
	'PT409 idempotency key reused with other content, PT503 balances not yet rebuilt after a restore; '
	'returns {replayed, entries: [{id, kind, postings}]}';

-- The user's IDR wallet account, created on first use.  Race-safe: the
-- unique user_id makes concurrent first uses converge on one row.
CREATE FUNCTION paas.wallet_account(user_id uuid) RETURNS bigint
	LANGUAGE plpgsql VOLATILE STRICT
	SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.wallet_account(uuid) IS
	'the user''s IDR wallet account id, created on first use; PT404 for an unknown user';

CREATE FUNCTION paas.platform_account(code text) RETURNS bigint
	LANGUAGE plpgsql STABLE STRICT
	SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.platform_account(text) IS
	'id of a platform account (gateway_clearing, revenue, adjustments, refunds); PT404 otherwise';

CREATE FUNCTION paas.wallet_balance(user_id uuid) RETURNS bigint
	LANGUAGE sql STABLE STRICT PARALLEL SAFE
	RETURN coalesce((SELECT a.balance FROM paas.ledger_accounts a
					  WHERE a.user_id = wallet_balance.user_id), 0);
COMMENT ON FUNCTION paas.wallet_balance(uuid) IS
	'the user''s wallet balance in IDR (0 when the wallet was never used)';

CREATE FUNCTION paas.account_balance(account bigint) RETURNS bigint
	LANGUAGE sql STABLE STRICT PARALLEL SAFE
	RETURN (SELECT sum(a.balance)::bigint FROM paas.ledger_accounts a
			 WHERE a.id = account_balance.account OR a.parent_id = account_balance.account);
COMMENT ON FUNCTION paas.account_balance(bigint) IS
	'balance of an account in IDR: a platform account''s is the sum of its slots; NULL when unknown';

-- Posts the exact opposite of an entry.  An entry is reversed at most once
-- (PT409 on the second attempt, unless it is a replay of the same key).
CREATE FUNCTION paas.ledger_reverse(entry_id bigint, idempotency_key text DEFAULT NULL,
									memo text DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.ledger_reverse(bigint, text, text) IS
	'posts the opposite of an entry (kind reversal, ref.reverses); PT404 unknown, PT409 already reversed, PT402 wallet short';

------------------------------------------------------------------------------
-- helpers of the api functions below
------------------------------------------------------------------------------

-- Validates an optional ISO-8601 date or timestamp field.
CREATE FUNCTION paas.ledger_check_ts(errs jsonb, req jsonb, field text) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
	v jsonb := req -> field;
	t timestamptz;
BEGIN
	IF v IS NULL OR v = 'null'::jsonb THEN
		RETURN errs;
	END IF;
	IF jsonb_typeof(v) <> 'string'
	   OR (v #>> '{}') !~ '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$' THEN
		RETURN paas.add_err(errs, field, field || ' must be an ISO-8601 date');
	END IF;
	BEGIN
		t := (v #>> '{}')::timestamptz;
	EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
		RETURN paas.add_err(errs, field, field || ' must be an ISO-8601 date');
	END;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.ledger_check_ts(jsonb, jsonb, text) IS
	'appends an error when req->field is not an ISO-8601 date or timestamp';

-- End of a date range: a bare date means the whole day.
CREATE FUNCTION paas.ledger_range_end(t text) RETURNS timestamptz
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN CASE WHEN t IS NULL THEN NULL
				WHEN t ~ '^\d{4}-\d{2}-\d{2}$' THEN (t::date + 1)::timestamp AT TIME ZONE 'UTC'
				ELSE t::timestamptz END;
COMMENT ON FUNCTION paas.ledger_range_end(text) IS
	'exclusive end of a range given as a date (next midnight UTC) or a timestamp';

CREATE FUNCTION paas.ledger_range_start(t text) RETURNS timestamptz
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN CASE WHEN t IS NULL THEN NULL
				WHEN t ~ '^\d{4}-\d{2}-\d{2}$' THEN t::date::timestamp AT TIME ZONE 'UTC'
				ELSE t::timestamptz END;
COMMENT ON FUNCTION paas.ledger_range_start(text) IS
	'start of a range given as a date (midnight UTC) or a timestamp';

-- An entry as the admin API prints it, postings included.
CREATE FUNCTION paas.ledger_entry_json(e paas.ledger_entries) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'id', e.id, 'kind', e.kind, 'memo', e.memo, 'ref', e.ref,
		'createdAt', paas.iso(e.created_at),
		'postings', (SELECT coalesce(jsonb_agg(jsonb_build_object(
						'id', p.id, 'account', pa.id, 'accountKind', pa.kind,
						'code', pa.code, 'userId', pa.user_id, 'amount', p.amount,
						'balanceBefore', p.balance_before, 'balanceAfter', p.balance_after,
						'slotAccount', CASE WHEN a.parent_id IS NOT NULL THEN a.id END)
						ORDER BY p.id), '[]')
					   FROM paas.ledger_postings p
					   JOIN paas.ledger_accounts a ON a.id = p.account_id
					   JOIN paas.ledger_accounts pa ON pa.id = coalesce(a.parent_id, a.id)
					  WHERE p.entry_id = e.id));
COMMENT ON FUNCTION paas.ledger_entry_json(paas.ledger_entries) IS
	'{id, kind, memo, ref, createdAt, postings: [...]} of a ledger entry (slot postings under their platform account)';

------------------------------------------------------------------------------
-- api: the owner's balance
------------------------------------------------------------------------------

CREATE FUNCTION api.billing_balance(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.billing_balance(jsonb, jsonb) IS
	'GET /billing/balance: the caller''s wallet balance in IDR';

-- Calls of GET /billing/balance that reached the gateway together (see
-- api.auth_me_batch).
CREATE FUNCTION api.billing_balance_batch(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.check_batch(req);
	RETURN (SELECT jsonb_agg(api.billing_balance(t.e -> 'req', t.e -> 'ctx') ORDER BY t.n)
			  FROM jsonb_array_elements(req) WITH ORDINALITY AS t (e, n));
END
$$;
COMMENT ON FUNCTION api.billing_balance_batch(jsonb, jsonb) IS
	'GET /billing/balance calls received together, answered in one call; results in order (the gateway''s batching)';

------------------------------------------------------------------------------
-- api: admin billing (/admin/billing)
------------------------------------------------------------------------------

CREATE FUNCTION api.admin_billing_overview(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.admin_billing_overview(jsonb, jsonb) IS
	'GET /admin/billing/overview: wallet totals, platform balances, revenue, entry counts, adjustments';

CREATE FUNCTION api.admin_billing_ledger(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.admin_billing_ledger(jsonb, jsonb) IS
	'GET /admin/billing/ledger: every entry with its postings; page, limit, kind, userId, accountId, startDate, endDate, sortOrder';

CREATE FUNCTION api.admin_billing_user_ledger(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.admin_billing_user_ledger(jsonb, jsonb) IS
	'GET /admin/billing/users/:userId/ledger: the user''s wallet postings, newest first; page, limit, kind, startDate, endDate';

-- A manual adjustment: wallet +/- amount against the 'adjustments' account,
-- audited with the admin's id and reason.  With ctx.idempotencyKey a retry
-- answers the first adjustment from its recorded outcome (05_outcomes.sql;
-- per admin: the key is scoped to the caller).
CREATE FUNCTION api.admin_billing_adjust(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.admin_billing_adjust(jsonb, jsonb) IS
	'POST /admin/billing/adjustments {userId, amount (non-zero, +/-), reason}: posted against ''adjustments'', audited; PT402 when a debit exceeds the wallet';

------------------------------------------------------------------------------
-- reporting (BI, read-only)
------------------------------------------------------------------------------

-- Revenue per UTC day: the movements of the 'revenue' account (charges add,
-- reversals and refunds of charges subtract).
CREATE VIEW reporting.daily_revenue AS
SELECT (p.created_at AT TIME ZONE 'UTC')::date AS day,
	   sum(p.amount) AS revenue,
	   count(*) FILTER (WHERE p.amount > 0) AS credits,
	   count(*) FILTER (WHERE p.amount < 0) AS debits,
	   'IDR'::text AS currency
  FROM paas.ledger_postings p
  JOIN paas.ledger_accounts a ON a.id = p.account_id
  JOIN paas.ledger_accounts pa ON pa.id = coalesce(a.parent_id, a.id)
 WHERE pa.kind = 'platform' AND pa.code = 'revenue'
 GROUP BY 1;
COMMENT ON VIEW reporting.daily_revenue IS 'revenue account movements per UTC day, in IDR';

CREATE VIEW reporting.balances AS
SELECT a.id AS account_id, a.kind, a.code, a.user_id, u.email AS user_email, a.currency,
	   a.balance + coalesce(s.balance, 0) AS balance, a.created_at,
	   greatest(a.updated_at, s.updated_at) AS updated_at
  FROM paas.ledger_accounts a
  LEFT JOIN paas.users u ON u.id = a.user_id
  LEFT JOIN (SELECT parent_id, sum(balance)::bigint AS balance, max(updated_at) AS updated_at
			   FROM paas.ledger_accounts WHERE parent_id IS NOT NULL GROUP BY parent_id) s
		 ON s.parent_id = a.id
 WHERE a.kind <> 'platform_slot';
COMMENT ON VIEW reporting.balances IS
	'every wallet and platform account with its balance (platform: the sum of its slots)';

-- Every breach of the ledger's invariants, one row each; no rows = sound.
CREATE VIEW reporting.ledger_check AS
SELECT 'entry_unbalanced'::text AS problem, NULL::bigint AS account_id, e.id AS entry_id,
	   format('%s postings summing to %s', count(p.id), coalesce(sum(p.amount::numeric), 0)) AS detail
  FROM paas.ledger_entries e
  LEFT JOIN paas.ledger_postings p ON p.entry_id = e.id
 GROUP BY e.id
HAVING count(p.id) < 2 OR coalesce(sum(p.amount::numeric), 0) <> 0
UNION ALL
SELECT 'posting_without_entry', p.account_id, p.entry_id, format('posting %s', p.id)
  FROM paas.ledger_postings p
 WHERE NOT EXISTS (SELECT 1 FROM paas.ledger_entries e WHERE e.id = p.entry_id)
UNION ALL
SELECT 'posting_without_account', p.account_id, p.entry_id, format('posting %s', p.id)
  FROM paas.ledger_postings p
 WHERE NOT EXISTS (SELECT 1 FROM paas.ledger_accounts a WHERE a.id = p.account_id)
UNION ALL
SELECT 'balance_not_sum_of_postings', a.id, NULL,
	   format('cached %s, postings sum to %s', a.balance, coalesce(s.total, 0))
  FROM paas.ledger_accounts a
  LEFT JOIN (SELECT account_id, sum(amount::numeric) AS total
			   FROM paas.ledger_postings GROUP BY account_id) s ON s.account_id = a.id
 WHERE a.balance <> coalesce(s.total, 0)
UNION ALL
SELECT 'wallet_negative', a.id, NULL, format('balance %s', a.balance)
  FROM paas.ledger_accounts a
 WHERE a.kind = 'wallet' AND a.balance < 0
UNION ALL
SELECT 'wallet_posting_negative', c.account_id, c.entry_id, format('posting %s leaves %s', c.id, c.balance_after)
  FROM paas.ledger_postings c
  JOIN paas.ledger_accounts a ON a.id = c.account_id
 WHERE a.kind = 'wallet' AND c.balance_after < 0
UNION ALL
SELECT 'posting_arithmetic', c.account_id, c.entry_id,
	   format('posting %s: %s + %s <> %s', c.id, c.balance_before, c.amount, c.balance_after)
  FROM paas.ledger_postings c
 WHERE c.balance_before::numeric + c.amount <> c.balance_after
UNION ALL
SELECT 'posting_chain_broken', c.account_id, c.entry_id,
	   format('posting %s starts at %s, the previous one ended at %s', c.id, c.balance_before, c.prev)
  FROM (SELECT p.*, coalesce(lag(p.balance_after) OVER (PARTITION BY p.account_id ORDER BY p.id), 0) AS prev
		  FROM paas.ledger_postings p) c
 WHERE c.balance_before <> c.prev
UNION ALL
SELECT 'balance_not_last_posting', a.id, NULL,
	   format('cached %s, last posting ended at %s', a.balance, l.balance_after)
  FROM paas.ledger_accounts a
  JOIN LATERAL (SELECT p.balance_after FROM paas.ledger_postings p
				 WHERE p.account_id = a.id ORDER BY p.id DESC LIMIT 1) l ON true
 WHERE a.balance <> l.balance_after;
COMMENT ON VIEW reporting.ledger_check IS
	'ledger invariants: balanced entries, postings with their entry and account, cached balance = sum = last balance_after, no negative wallet, unbroken before/after chain; no rows = sound';

GRANT SELECT ON reporting.daily_revenue, reporting.balances, reporting.ledger_check TO paas_bi, paas_owner;

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.billing_balance(jsonb, jsonb)', 'api.billing_balance_batch(jsonb, jsonb)',
		'api.admin_billing_overview(jsonb, jsonb)',
		'api.admin_billing_ledger(jsonb, jsonb)', 'api.admin_billing_user_ledger(jsonb, jsonb)',
		'api.admin_billing_adjust(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	-- The ledger interface is for api functions (SECURITY DEFINER) and DBAs.
	REVOKE ALL ON FUNCTION paas.ledger_replay(text, jsonb) FROM PUBLIC;
	REVOKE ALL ON FUNCTION paas.ledger_post(text, jsonb), paas.wallet_account(uuid),
		paas.platform_account(text), paas.wallet_balance(uuid), paas.account_balance(bigint),
		paas.ledger_reverse(bigint, text, text) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION paas.ledger_post(text, jsonb), paas.wallet_account(uuid),
		paas.platform_account(text), paas.wallet_balance(uuid), paas.account_balance(bigint),
		paas.ledger_reverse(bigint, text, text) TO paas_owner;
END
$grants$;
