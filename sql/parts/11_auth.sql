-- paas -- auth: registration, login, rotating refresh tokens, logout, the
-- caller's own profile, and failed-login accounting (the /auth routes).
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
		'api.auth_delete_account(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;
