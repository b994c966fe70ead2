-- paas -- accounts: users, sessions with rotating refresh tokens,
-- the caller-identity helpers every area uses, and the admin user API.
--
-- Identity.  Each api function takes (req jsonb, ctx jsonb).  httpd fills
-- ctx from the verified access token: {"userId", "role", "sid", "ip", ...}.
-- paas.require_user(ctx) re-reads the account (one indexed read joined with
-- the session), so a deactivated user or a revoked session is refused at
-- once.  A DBA calling an admin function from psql (session user other than
-- the gateway role paas_api) acts as the system and needs no userId.
--
-- Refresh tokens.  A login opens a session (its id is the "sid" claim).  The
-- session's n-th refresh token is HMAC-SHA256(session secret, sid:n); only
-- its SHA-256 is stored.  Using token n issues token n+1.  Presenting an
-- already-used token revokes the session (the whole token family), except
-- within 10 seconds of its use and when it is the immediate predecessor of
-- the current token: then the current token is returned again, so two
-- concurrent refreshes of one client both succeed with the same pair.
--
-- Failed logins are counted with the account, in the database (every
-- gateway shares them; a restart forgets nothing), by api.auth_login under
-- the account's row lock (concurrent attempts cannot race past a limit),
-- and written although the call is refused (a committed refusal).  Two
-- limits, both checked before the password (429 with Retry-After):
--   * per (account, client address): paas.login_failures_per_address
--     failures a minute (a bucket refilled continuously); a successful login
--     empties the address's bucket.  IPv6 addresses count per /64.
--   * per account, over addresses that have not logged into it in 30 days
--     ("unknown" addresses): after paas.login_failures_per_account such
--     failures, each further one doubles the wait of unknown addresses (1 s,
--     2 s, ... up to paas.login_backoff_max); the count is forgotten after a
--     day without failures.  Known addresses never wait for it, so an
--     attacker with many addresses slows guessing down without locking the
--     owner out.
-- Unknown emails have no account to count on: the gateway's per-address
-- limit of login requests applies to them (and to everything).
--
-- Administrators.  Every change that can take the role from someone
-- (demote, deactivate, delete, bulk) first takes paas.lock_admins: one at a
-- time, the caller re-read under the lock, and at least one active
-- administrator left afterwards -- so two administrators removing each
-- other at the same moment cannot both succeed.
--
-- Reads take no row locks (paas.read_user); changes lock the row
-- (paas.find_user).

CREATE TABLE paas.users (
	id					uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	email				text NOT NULL CHECK (char_length(email) <= 254),
	name				text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
	password_hash		text NOT NULL,
	role				text NOT NULL DEFAULT 'USER' CHECK (role IN ('USER', 'ADMINISTRATOR')),
	is_active			boolean NOT NULL DEFAULT true,
	deleted_at			timestamptz,
	password_changed_at	timestamptz NOT NULL DEFAULT now(),
	last_login_at		timestamptz,
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now(),
	-- failed logins from unknown addresses (see the header), the last one,
	-- and until when unknown addresses must wait
	failed_logins		integer NOT NULL DEFAULT 0,
	failed_login_at		timestamptz,
	login_blocked_until	timestamptz
);
CREATE UNIQUE INDEX users_email_key ON paas.users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_created_idx ON paas.users (created_at DESC);
CREATE INDEX users_search_idx ON paas.users USING gin ((name || ' ' || email) gin_trgm_ops);
COMMENT ON TABLE paas.users IS 'accounts; deletion is soft (deleted_at) so ledger history stays';

CREATE TABLE paas.sessions (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id			uuid NOT NULL REFERENCES paas.users (id),
	secret			bytea NOT NULL DEFAULT public.gen_random_bytes(32),
	generation		integer NOT NULL DEFAULT 0,
	created_at		timestamptz NOT NULL DEFAULT now(),
	expires_at		timestamptz NOT NULL DEFAULT now() + interval '7 days',
	last_used_at	timestamptz NOT NULL DEFAULT now(),
	revoked_at		timestamptz,
	revoke_reason	text,
	ip				text,
	user_agent		text
);
CREATE INDEX sessions_user_idx ON paas.sessions (user_id) WHERE revoked_at IS NULL;
COMMENT ON TABLE paas.sessions IS 'one row per login: the refresh-token family';

CREATE TABLE paas.refresh_tokens (
	token_hash	bytea PRIMARY KEY,
	session_id	uuid NOT NULL REFERENCES paas.sessions (id) ON DELETE CASCADE,
	generation	integer NOT NULL,
	issued_at	timestamptz NOT NULL DEFAULT now(),
	used_at		timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON paas.refresh_tokens (session_id);
COMMENT ON TABLE paas.refresh_tokens IS 'SHA-256 of every refresh token issued; used_at marks rotation';

-- One row per (account, client address) that failed or succeeded to log
-- in: the level of the address's bucket of failures at "at" (it drains at
-- paas.login_failures_per_address a minute) and its last successful login.
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

------------------------------------------------------------------------------
-- helpers
------------------------------------------------------------------------------

-- A path id as uuid, or NULL when it cannot be one (the caller answers 404).
CREATE FUNCTION paas.to_uuid(t text) RETURNS uuid
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN t ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
				THEN t::uuid END;
COMMENT ON FUNCTION paas.to_uuid(text) IS 'text as uuid, NULL when it is not one';

-- An id filter's value to match rows with: the uuid, or when the text
-- cannot be an id the nil uuid, which no row has (ids are random version-4
-- uuids).  An id that cannot exist is an id that does not exist: it finds
-- nothing, never a 400.  NULL stays NULL (no filter).
CREATE FUNCTION paas.filter_id(t text) RETURNS uuid
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN t IS NOT NULL THEN coalesce(paas.to_uuid(t), '00000000-0000-0000-0000-000000000000') END;
COMMENT ON FUNCTION paas.filter_id(text) IS
	'an id filter''s uuid; the nil uuid (matches nothing) when the text cannot be an id';

CREATE FUNCTION paas.user_json(u paas.users) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email, 'role', u.role,
							  'isActive', u.is_active, 'createdAt', paas.iso(u.created_at),
							  'updatedAt', paas.iso(u.updated_at));
COMMENT ON FUNCTION paas.user_json(paas.users) IS 'public fields of an account, as the API prints them';

-- The original's relation counts of an account: {"subscriptions": n}, every
-- subscription of any status (printed as "_count").  PL/pgSQL: the table
-- belongs to a later part (60_subscriptions.sql).
CREATE FUNCTION paas.user_counts(uid uuid) RETURNS jsonb
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	RETURN jsonb_build_object('subscriptions', (SELECT count(*) FROM paas.subscriptions s WHERE s.user_id = uid));
END
$$;
COMMENT ON FUNCTION paas.user_counts(uuid) IS
	'{"subscriptions": n} of an account (the original''s _count), every status';

-- The caller's account; PT401 without a valid identity.  On every
-- authenticated request's path: one statement (user and live session by
-- primary key) and no SET clause, so it runs in its caller's search_path
-- (every api function fixes it) without a GUC save and restore.  The second
-- lookup only runs on the refusal path, to say why.
CREATE FUNCTION paas.require_user(ctx jsonb) RETURNS paas.users
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	u paas.users;
	uid uuid := paas.to_uuid(ctx ->> 'userId');
	sid uuid := paas.to_uuid(ctx ->> 'sid');
BEGIN
	IF uid IS NULL THEN
		RAISE EXCEPTION 'Access token required' USING ERRCODE = 'PT401';
	END IF;
	-- Tokens from the gateway always carry a session; it must be live.
	SELECT * INTO u FROM paas.users x
	 WHERE x.id = uid AND x.is_active AND x.deleted_at IS NULL
	   AND (NOT ctx ? 'sid'
			OR EXISTS (SELECT 1 FROM paas.sessions s
						WHERE s.id = sid AND s.user_id = uid AND s.revoked_at IS NULL));
	IF FOUND THEN
		RETURN u;
	END IF;
	IF EXISTS (SELECT 1 FROM paas.users x WHERE x.id = uid AND x.is_active AND x.deleted_at IS NULL) THEN
		RAISE EXCEPTION 'Session has been revoked' USING ERRCODE = 'PT401';
	END IF;
	RAISE EXCEPTION 'Invalid token - user not found' USING ERRCODE = 'PT401';
END
$$;
COMMENT ON FUNCTION paas.require_user(jsonb) IS
	'the active account of ctx.userId with a live session; PT401 otherwise';

-- The calling administrator; NULL for a DBA calling from psql.
CREATE FUNCTION paas.require_admin(ctx jsonb) RETURNS paas.users
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.require_admin(jsonb) IS
	'the calling administrator (NULL: a DBA session); PT401/PT403 otherwise';

CREATE FUNCTION paas.check_email(errs jsonb, req jsonb, field text, required boolean)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	e jsonb := paas.check_text('[]', req, field, required, 3, 254);
BEGIN
	IF jsonb_array_length(e) > 0 THEN
		RETURN errs || e;
	END IF;
	IF req ->> field IS NOT NULL
	   AND req ->> field !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:].]{2,}$' THEN
		RETURN paas.add_err(errs, field, field || ' must be a valid email');
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_email(jsonb, jsonb, text, boolean) IS
	'appends an error when req->field is not an email address';

-- Password rule: 8-128 characters with a lower-case letter, an upper-case
-- letter and a digit.
CREATE FUNCTION paas.check_password(errs jsonb, req jsonb, field text)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	e jsonb := paas.check_text('[]', req, field, true, 8, 128);
	p text := req ->> field;
BEGIN
	IF jsonb_array_length(e) > 0 THEN
		RETURN errs || e;
	END IF;
	IF p !~ '[a-z]' OR p !~ '[A-Z]' OR p !~ '[0-9]' THEN
		RETURN paas.add_err(errs, field,
			field || ' must contain at least one uppercase letter, one lowercase letter and one number');
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_password(jsonb, jsonb, text) IS
	'appends an error when req->field breaks the password rule';

CREATE FUNCTION paas.check_confirm(errs jsonb, req jsonb, field text, confirm text)
	RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN req -> confirm IS NULL OR req -> confirm = 'null'::jsonb
				THEN paas.add_err(errs, confirm, confirm || ' is required')
				WHEN req -> confirm IS DISTINCT FROM req -> field
				THEN paas.add_err(errs, confirm, confirm || ' must match ' || field)
				ELSE errs END;
COMMENT ON FUNCTION paas.check_confirm(jsonb, jsonb, text, text) IS
	'appends an error when req->confirm differs from req->field';

-- bcrypt through pgcrypto, cost 10.
CREATE FUNCTION paas.hash_password(pw text) RETURNS text
	LANGUAGE sql VOLATILE STRICT
	RETURN public.crypt(pw, public.gen_salt('bf', 10));
COMMENT ON FUNCTION paas.hash_password(text) IS 'bcrypt hash (cost 10) of a password';

CREATE FUNCTION paas.email_taken(mail text, except_id uuid DEFAULT NULL) RETURNS boolean
	LANGUAGE sql STABLE
	RETURN EXISTS (SELECT 1 FROM paas.users
					WHERE lower(email) = lower(mail) AND deleted_at IS NULL
					  AND id IS DISTINCT FROM except_id);
COMMENT ON FUNCTION paas.email_taken(text, uuid) IS 'whether a live account uses this email';

-- Refresh token n of a session: hex of HMAC-SHA256(secret, sid:n).
CREATE FUNCTION paas.refresh_token(s paas.sessions, gen integer) RETURNS text
	LANGUAGE sql STABLE STRICT
	RETURN encode(public.hmac(convert_to(s.id::text || ':' || gen, 'UTF8'), s.secret, 'sha256'), 'hex');
COMMENT ON FUNCTION paas.refresh_token(paas.sessions, integer) IS 'the n-th refresh token of a session';

-- Issues the session's current token and records its hash.
CREATE FUNCTION paas.issue_token(s paas.sessions) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	tok text := paas.refresh_token(s, s.generation);
BEGIN
	INSERT INTO paas.refresh_tokens (token_hash, session_id, generation)
	VALUES (public.digest(tok, 'sha256'), s.id, s.generation);
	RETURN tok;
END
$$;
COMMENT ON FUNCTION paas.issue_token(paas.sessions) IS 'records and returns the current refresh token';

-- What login-like functions return; httpd mints the access token from
-- "session" and removes it from the reply.
CREATE FUNCTION paas.session_reply(u paas.users, s paas.sessions, tok text) RETURNS jsonb
	LANGUAGE sql STABLE
	RETURN jsonb_build_object(
		'user', paas.user_json(u),
		'refreshToken', tok,
		'session', jsonb_build_object('userId', u.id, 'role', u.role, 'sid', s.id));
COMMENT ON FUNCTION paas.session_reply(paas.users, paas.sessions, text) IS
	'{user, refreshToken, session} of a login, register or refresh';

CREATE FUNCTION paas.open_session(u paas.users, ctx jsonb) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.sessions;
BEGIN
	INSERT INTO paas.sessions (user_id, ip, user_agent)
	VALUES (u.id, left(ctx ->> 'ip', 64), left(ctx ->> 'userAgent', 512))
	RETURNING * INTO s;
	RETURN paas.session_reply(u, s, paas.issue_token(s));
END
$$;
COMMENT ON FUNCTION paas.open_session(paas.users, jsonb) IS 'opens a session and returns its first tokens';

CREATE FUNCTION paas.revoke_sessions(uid uuid, reason text, keep uuid DEFAULT NULL) RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	UPDATE paas.sessions SET revoked_at = now(), revoke_reason = reason
	 WHERE user_id = uid AND revoked_at IS NULL AND id IS DISTINCT FROM keep;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.revoke_sessions(uuid, text, uuid) IS
	'revokes every live session of a user except "keep"; returns how many';

------------------------------------------------------------------------------
-- failed-login accounting (see the header)
------------------------------------------------------------------------------

CREATE FUNCTION paas.login_settings(OUT per_address integer, OUT per_account integer,
									OUT backoff_max interval)
	AS 'MODULE_PATHNAME', 'paas_login_settings'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.login_settings() IS
	'paas.login_failures_per_address, paas.login_failures_per_account and paas.login_backoff_max';

-- The client address failed logins are counted under: the address as
-- httpd saw it (ctx.ip), an IPv6 address as its /64 (one host usually holds
-- a whole /64), '' when there is none (a DBA session).
CREATE FUNCTION paas.login_client(ip text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
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
$$;
COMMENT ON FUNCTION paas.login_client(text) IS
	'the key of a client address for failed-login counts (IPv6: its /64)';

-- A successful login (or a registration) from an address: its bucket of
-- failures is emptied and the address becomes known to the account.
CREATE FUNCTION paas.login_succeeded(uid uuid, addr text) RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.login_failures (user_id, client, failures, at, last_success_at)
		VALUES (uid, addr, 0, now(), now())
		ON CONFLICT (user_id, client) DO UPDATE SET failures = 0, at = now(), last_success_at = now();
	END;
COMMENT ON FUNCTION paas.login_succeeded(uuid, text) IS
	'empties the failed-login bucket of (account, address) and marks the address known';

-- Job: rows of addresses whose bucket has long drained and that have not
-- logged in for 30 days carry nothing any more.
CREATE FUNCTION paas.job_prune_login_failures() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM paas.login_failures
	 WHERE at < now() - interval '1 hour'
	   AND (last_success_at IS NULL OR last_success_at < now() - interval '30 days');
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n);
END
$$;
COMMENT ON FUNCTION paas.job_prune_login_failures() IS
	'deletes failed-login rows that no longer limit or vouch for an address';
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('prune_login_failures', 'paas.job_prune_login_failures', '1 hour',
	 'deletes failed-login rows that no longer limit or vouch for an address');

------------------------------------------------------------------------------
-- administrators: at least one stays (see the header)
------------------------------------------------------------------------------

-- Serialises the changes that can remove an administrator: a
-- transaction-level advisory lock (classid 0x70616173, "paas"; objid 1),
-- taken before any row lock, so the statements after it see every such
-- change that committed meanwhile.  The calling administrator ("admin";
-- NULL for a DBA session) is re-read under the lock: one demoted or
-- deactivated meanwhile is refused (PT403).
CREATE FUNCTION paas.lock_admins(admin paas.users) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(1885430131, 1);
	IF admin.id IS NOT NULL AND NOT EXISTS (
		SELECT 1 FROM paas.users
		 WHERE id = admin.id AND role = 'ADMINISTRATOR' AND is_active AND deleted_at IS NULL) THEN
		RAISE EXCEPTION 'Insufficient permissions' USING ERRCODE = 'PT403';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.lock_admins(paas.users) IS
	'serialises changes that can remove an administrator; PT403 when the caller no longer is one';

-- After such a change (under paas.lock_admins): PT409 unless an active
-- administrator is left.
CREATE FUNCTION paas.check_admin_left() RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM paas.users WHERE role = 'ADMINISTRATOR' AND is_active AND deleted_at IS NULL) THEN
		RAISE EXCEPTION 'At least one active administrator must remain' USING ERRCODE = 'PT409';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.check_admin_left() IS 'PT409 when no active administrator is left';

------------------------------------------------------------------------------
-- api: auth (the caller's own account)
------------------------------------------------------------------------------

CREATE FUNCTION api.auth_register(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.auth_register(jsonb, jsonb) IS
	'POST /auth/register: creates a USER account and logs it in';

CREATE FUNCTION api.auth_login(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.auth_login(jsonb, jsonb) IS
	'POST /auth/login: failed-login limits (429), the password, a session; failures are kept (committed refusal)';

CREATE FUNCTION api.auth_refresh(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.auth_refresh(jsonb, jsonb) IS
	'POST /auth/refresh: rotates the refresh token; reuse revokes the session';

CREATE FUNCTION api.auth_me(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
BEGIN
	RETURN jsonb_build_object('user', paas.user_json(u), 'authenticated', true);
END
$$;
COMMENT ON FUNCTION api.auth_me(jsonb, jsonb) IS 'GET /auth/me: the caller';

-- Calls of GET /auth/me that reached the gateway together (httpd/batch.c):
-- req is [{"req": ..., "ctx": ...}, ...]; each item is exactly a call of
-- api.auth_me; the results come back in the items' order.  An item's error
-- fails the batch, and the gateway then makes each call on its own.
CREATE FUNCTION api.auth_me_batch(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	PERFORM paas.check_batch(req);
	RETURN (SELECT jsonb_agg(api.auth_me(t.e -> 'req', t.e -> 'ctx') ORDER BY t.n)
			  FROM jsonb_array_elements(req) WITH ORDINALITY AS t (e, n));
END
$$;
COMMENT ON FUNCTION api.auth_me_batch(jsonb, jsonb) IS
	'GET /auth/me calls received together, answered in one call; results in order (the gateway''s batching)';

CREATE FUNCTION api.auth_profile(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
BEGIN
	RETURN paas.user_json(u) || jsonb_build_object('lastLoginAt', paas.iso(u.last_login_at),
												   '_count', paas.user_counts(u.id));
END
$$;
COMMENT ON FUNCTION api.auth_profile(jsonb, jsonb) IS 'GET /auth/profile: the caller''s profile';

CREATE FUNCTION api.auth_profile_update(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.auth_profile_update(jsonb, jsonb) IS 'PUT /auth/profile: name and email';

CREATE FUNCTION api.auth_change_password(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.auth_change_password(jsonb, jsonb) IS
	'POST /auth/change-password: new password, every other session revoked';

CREATE FUNCTION api.auth_logout(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.auth_logout(jsonb, jsonb) IS
	'POST /auth/logout: revokes this session, or all with {"all": true}';

CREATE FUNCTION api.auth_delete_account(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.auth_delete_account(jsonb, jsonb) IS
	'DELETE /auth/account: deactivates the caller, revoking every session';

------------------------------------------------------------------------------
-- api: admin user management (/users)
------------------------------------------------------------------------------

CREATE FUNCTION api.users_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.users_list(jsonb, jsonb) IS
	'GET /users: page, limit, search, role, isActive, sortBy, sortOrder';

CREATE FUNCTION api.users_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.users_stats(jsonb, jsonb) IS 'GET /users/stats: counts by role, state and age';

-- The live account of a path id; PU404 (USER_NOT_FOUND) when there is none.
CREATE FUNCTION paas.find_user(id_text text) RETURNS paas.users
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.find_user(text) IS 'locks and returns a live account by id; PU404 otherwise';

-- The same for reads: no row lock, so a read never waits for a login or an
-- administrator's change of that account.
CREATE FUNCTION paas.read_user(id_text text) RETURNS paas.users
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.read_user(text) IS 'a live account by id, unlocked; PU404 otherwise';

CREATE FUNCTION api.users_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.users_get(jsonb, jsonb) IS
	'GET /users/:id: the account, its sessions, its newest 100 subscriptions and _count';

CREATE FUNCTION api.users_create(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.users_create(jsonb, jsonb) IS 'POST /users: an account of any role';

-- Refuses changes by which an administrator would lock themself out.
CREATE FUNCTION paas.guard_self(admin paas.users, target uuid, deactivate boolean,
								new_role text, deleting boolean) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF admin.id IS NULL OR admin.id <> target THEN
		RETURN;
	END IF;
	IF deleting THEN
		RAISE EXCEPTION 'You cannot delete your own account' USING ERRCODE = 'PT409';
	END IF;
	IF deactivate THEN
		RAISE EXCEPTION 'You cannot deactivate your own account' USING ERRCODE = 'PT409';
	END IF;
	IF new_role IS NOT NULL AND new_role <> 'ADMINISTRATOR' THEN
		RAISE EXCEPTION 'You cannot remove your own administrator role' USING ERRCODE = 'PT409';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.guard_self(paas.users, uuid, boolean, text, boolean) IS
	'PT409 when an administrator would deactivate, demote or delete themself';

CREATE FUNCTION api.users_update(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.users_update(jsonb, jsonb) IS 'PUT /users/:id: name, email, role, isActive';

CREATE FUNCTION api.users_set_password(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.users_set_password(jsonb, jsonb) IS
	'PATCH /users/:id/password: sets a password and revokes the user''s sessions';

CREATE FUNCTION api.users_toggle_status(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.users_toggle_status(jsonb, jsonb) IS 'PATCH /users/:id/toggle-status';

CREATE FUNCTION api.users_delete(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.users_delete(jsonb, jsonb) IS
	'DELETE /users/:id: soft delete (history is kept), sessions revoked';

CREATE FUNCTION api.users_bulk(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.users_bulk(jsonb, jsonb) IS
	'POST /users/bulk: activate | deactivate | delete | set-role over ids, all or nothing';

-- The first administrator, from `make run` (DBA only: not granted to paas_api).
CREATE FUNCTION api.seed_admin(email text, password text, name text DEFAULT 'System Administrator')
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.seed_admin(text, text, text) IS
	'creates (or promotes) an administrator; for set-up scripts and DBAs';

-- Expired sessions and their tokens are deleted a day after expiry.
CREATE FUNCTION paas.job_prune_sessions() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM paas.sessions WHERE expires_at < now() - interval '1 day';
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n);
END
$$;
COMMENT ON FUNCTION paas.job_prune_sessions() IS 'deletes sessions expired for more than a day';
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('prune_sessions', 'paas.job_prune_sessions', '1 hour', 'deletes long-expired sessions');

-- Account data belongs in dumps of the database (extension tables are
-- skipped by pg_dump unless registered).
SELECT pg_catalog.pg_extension_config_dump('paas.users', '');
SELECT pg_catalog.pg_extension_config_dump('paas.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('paas.refresh_tokens', '');
SELECT pg_catalog.pg_extension_config_dump('paas.login_failures', '');

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.auth_register(jsonb, jsonb)', 'api.auth_login(jsonb, jsonb)',
		'api.auth_refresh(jsonb, jsonb)', 'api.auth_me(jsonb, jsonb)', 'api.auth_me_batch(jsonb, jsonb)',
		'api.auth_profile(jsonb, jsonb)', 'api.auth_profile_update(jsonb, jsonb)',
		'api.auth_change_password(jsonb, jsonb)', 'api.auth_logout(jsonb, jsonb)',
		'api.auth_delete_account(jsonb, jsonb)', 'api.users_list(jsonb, jsonb)',
		'api.users_stats(jsonb, jsonb)', 'api.users_get(jsonb, jsonb)',
		'api.users_create(jsonb, jsonb)', 'api.users_update(jsonb, jsonb)',
		'api.users_set_password(jsonb, jsonb)', 'api.users_toggle_status(jsonb, jsonb)',
		'api.users_delete(jsonb, jsonb)', 'api.users_bulk(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	REVOKE ALL ON FUNCTION api.seed_admin(text, text, text) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION api.seed_admin(text, text, text) TO paas_owner;
END
$grants$;
