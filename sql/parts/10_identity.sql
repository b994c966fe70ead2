-- paas -- identity: accounts (paas.users), their sessions, and the
-- caller-identity helpers every area uses.  Logging in, tokens and failed
-- logins are 11_auth.sql; administrators' management of accounts is
-- 12_user_admin.sql.
--
-- Each api function takes (req jsonb, ctx jsonb).  httpd fills ctx from the
-- verified access token: {"userId", "role", "sid", "ip", ...}.
-- paas.require_user(ctx) re-reads the account (one indexed read joined with
-- the session), so a deactivated user or a revoked session is refused at
-- once.  A DBA calling an admin function from psql (session user other than
-- the gateway role paas_api) acts as the system and needs no userId.

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

-- Account data belongs in dumps of the database (extension tables are
-- skipped by pg_dump unless registered).
SELECT pg_catalog.pg_extension_config_dump('paas.users', '');
SELECT pg_catalog.pg_extension_config_dump('paas.sessions', '');
