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
	updated_at			timestamptz NOT NULL DEFAULT now()
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

------------------------------------------------------------------------------
-- helpers
------------------------------------------------------------------------------

-- A path id as uuid, or NULL when it cannot be one (the caller answers 404).
CREATE FUNCTION paas.to_uuid(t text) RETURNS uuid
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN t ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
				THEN t::uuid END;
COMMENT ON FUNCTION paas.to_uuid(text) IS 'text as uuid, NULL when it is not one';

CREATE FUNCTION paas.user_json(u paas.users) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email, 'role', u.role,
							  'isActive', u.is_active, 'createdAt', paas.iso(u.created_at),
							  'updatedAt', paas.iso(u.updated_at));
COMMENT ON FUNCTION paas.user_json(paas.users) IS 'public fields of an account, as the API prints them';

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
	-- bcrypt of a random password: unknown emails cost the same time.
	decoy constant text := '$2a$10$CwTycUXWue0Thq9StjUM0uJ8.XKxq0qYJpQkq5C1FNC0FLcYlnmcS';
BEGIN
	req := paas.require_object(req);
	errs := paas.check_email(errs, req, 'email', true);
	errs := paas.check_text(errs, req, 'password', true, 1, 1024);
	PERFORM paas.raise_if_invalid(errs);

	SELECT * INTO u FROM paas.users
	 WHERE lower(email) = lower(req ->> 'email') AND deleted_at IS NULL;
	IF NOT FOUND THEN
		PERFORM public.crypt(req ->> 'password', decoy);
		RAISE EXCEPTION 'Invalid email or password' USING ERRCODE = 'PT401';
	END IF;
	IF public.crypt(req ->> 'password', u.password_hash) <> u.password_hash THEN
		RAISE EXCEPTION 'Invalid email or password' USING ERRCODE = 'PT401';
	END IF;
	IF NOT u.is_active THEN
		RAISE EXCEPTION 'Account is deactivated' USING ERRCODE = 'PT401';
	END IF;
	UPDATE paas.users SET last_login_at = now() WHERE id = u.id;
	RETURN paas.open_session(u, ctx);
END
$$;
COMMENT ON FUNCTION api.auth_login(jsonb, jsonb) IS
	'POST /auth/login: checks the password, opens a session';

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
	RETURN paas.user_json(u) || jsonb_build_object('lastLoginAt', paas.iso(u.last_login_at));
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
			USING ERRCODE = 'PT400',
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
	IF u.role = 'ADMINISTRATOR' AND NOT EXISTS (SELECT 1 FROM paas.users
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
		SELECT coalesce(jsonb_agg(paas.user_json(s.u) ORDER BY s.rn), '[]')
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

-- The live account of a path id; PT404 when there is none.
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
		RAISE EXCEPTION 'User not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN u;
END
$$;
COMMENT ON FUNCTION paas.find_user(text) IS 'locks and returns a live account by id; PT404 otherwise';

CREATE FUNCTION api.users_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	u paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	u := paas.find_user(req ->> 'id');
	RETURN paas.user_json(u) || jsonb_build_object(
		'lastLoginAt', paas.iso(u.last_login_at),
		'activeSessions', (SELECT count(*) FROM paas.sessions
							WHERE user_id = u.id AND revoked_at IS NULL AND expires_at > now()));
END
$$;
COMMENT ON FUNCTION api.users_get(jsonb, jsonb) IS 'GET /users/:id';

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
		RAISE EXCEPTION 'User with this email already exists' USING ERRCODE = 'PT409';
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
	u := paas.find_user(req ->> 'id');
	PERFORM paas.guard_self(admin, u.id, (req ->> 'isActive')::boolean IS FALSE, req ->> 'role', false);
	IF req ? 'email' AND paas.email_taken(req ->> 'email', u.id) THEN
		RAISE EXCEPTION 'Email already exists' USING ERRCODE = 'PT409';
	END IF;
	UPDATE paas.users
	   SET name = coalesce(btrim(req ->> 'name'), name),
		   email = coalesce(req ->> 'email', email),
		   role = coalesce(req ->> 'role', role),
		   is_active = coalesce((req ->> 'isActive')::boolean, is_active),
		   updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
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
	u := paas.find_user(req ->> 'id');
	PERFORM paas.guard_self(admin, u.id, u.is_active, NULL, false);
	UPDATE paas.users SET is_active = NOT is_active, updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
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
	u := paas.find_user(req ->> 'id');
	PERFORM paas.guard_self(admin, u.id, false, NULL, true);
	UPDATE paas.users SET deleted_at = now(), is_active = false, updated_at = now()
	 WHERE id = u.id
	RETURNING * INTO u;
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
	ELSIF EXISTS (SELECT 1 FROM jsonb_array_elements(req -> 'ids') e
				   WHERE jsonb_typeof(e) <> 'string' OR paas.to_uuid(e #>> '{}') IS NULL) THEN
		errs := paas.add_err(errs, 'ids', 'ids must be user ids');
	END IF;
	IF req ->> 'action' = 'set-role' THEN
		errs := paas.check_enum(errs, req, 'role', true, ARRAY['USER', 'ADMINISTRATOR']);
	END IF;
	PERFORM paas.raise_if_invalid(errs);

	act := req ->> 'action';
	SELECT array_agg(DISTINCT (e #>> '{}')::uuid) INTO ids FROM jsonb_array_elements(req -> 'ids') e;
	PERFORM 1 FROM paas.users WHERE id = ANY (ids) AND deleted_at IS NULL ORDER BY id FOR UPDATE;
	SELECT jsonb_agg(i) INTO missing FROM unnest(ids) i
	 WHERE NOT EXISTS (SELECT 1 FROM paas.users u WHERE u.id = i AND u.deleted_at IS NULL);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'Some users were not found; nothing was changed'
			USING ERRCODE = 'PT404', DETAIL = (SELECT jsonb_agg(jsonb_build_object('field', 'ids', 'message', m #>> '{}'))
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
