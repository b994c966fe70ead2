-- paas 0.2.0 -- core: schemas, roles, helpers, the job registry, status.
--
-- Schemas
--   paas       private tables and internal functions (no rights for anyone
--              but the owner)
--   api        the one surface: functions called by httpd, DBAs and pg_cron
--   reporting  read-only views for BI (role paas_bi)
--
-- Roles (cluster-wide; created here when missing, never dropped)
--   paas_owner  DBAs: owns the database, may call every api function
--   paas_api    the gateway's login: EXECUTE on api functions, no table rights
--   paas_bi     BI tools: SELECT on reporting views only

\echo Use "CREATE EXTENSION paas" to load this file. \quit

DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paas_owner') THEN
		CREATE ROLE paas_owner NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paas_api') THEN
		CREATE ROLE paas_api NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'paas_bi') THEN
		CREATE ROLE paas_bi NOLOGIN;
	END IF;
END
$roles$;

CREATE SCHEMA paas;
CREATE SCHEMA api;
CREATE SCHEMA reporting;

REVOKE ALL ON SCHEMA paas FROM PUBLIC;
REVOKE ALL ON SCHEMA api FROM PUBLIC;
REVOKE ALL ON SCHEMA reporting FROM PUBLIC;
GRANT USAGE ON SCHEMA api TO paas_api, paas_owner;
GRANT USAGE ON SCHEMA reporting TO paas_bi, paas_owner;
GRANT USAGE ON SCHEMA paas TO paas_owner;

-- Functions of api are granted one by one; nothing is executable by PUBLIC.
ALTER DEFAULT PRIVILEGES IN SCHEMA api REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA paas REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

------------------------------------------------------------------------------
-- Module functions (C)
------------------------------------------------------------------------------

CREATE FUNCTION paas.version() RETURNS text
	AS 'MODULE_PATHNAME', 'paas_version'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.version() IS 'version of the loaded paas module';

CREATE FUNCTION paas.worker_state(
	OUT running boolean, OUT pid integer, OUT started_at timestamptz,
	OUT last_tick timestamptz, OUT ticks bigint, OUT job_failures bigint)
	AS 'MODULE_PATHNAME', 'paas_worker_state'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION paas.worker_state() IS
	'the background worker''s published state (shared memory)';

------------------------------------------------------------------------------
-- Helpers shared by every area
------------------------------------------------------------------------------

-- ISO-8601 UTC with milliseconds, as the HTTP contract prints timestamps.
CREATE FUNCTION paas.iso(ts timestamptz) RETURNS text
	LANGUAGE sql STABLE STRICT PARALLEL SAFE
	RETURN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
COMMENT ON FUNCTION paas.iso(timestamptz) IS 'ISO-8601 UTC text of a timestamp';

-- Appends a field error {field, message} to a JSON array of errors.
CREATE FUNCTION paas.add_err(errs jsonb, field text, message text)
	RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN errs || jsonb_build_array(jsonb_build_object('field', field, 'message', message));
COMMENT ON FUNCTION paas.add_err(jsonb, text, text) IS
	'appends {field, message} to an error list';

-- Raises PT400 with every collected field error when the list is not empty.
CREATE FUNCTION paas.raise_if_invalid(errs jsonb) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
	IF errs IS NOT NULL AND jsonb_array_length(errs) > 0 THEN
		RAISE EXCEPTION 'Validation failed'
			USING ERRCODE = 'PT400', DETAIL = errs::text;
	END IF;
END
$$;
COMMENT ON FUNCTION paas.raise_if_invalid(jsonb) IS
	'raises PT400 carrying the field errors as DETAIL (JSON array)';

-- Checks that "req" is a JSON object; anything else is one PT400 error.
CREATE FUNCTION paas.require_object(req jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
	IF req IS NULL THEN
		RETURN '{}'::jsonb;
	END IF;
	IF jsonb_typeof(req) <> 'object' THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', '', 'request body must be a JSON object'));
	END IF;
	RETURN req;
END
$$;
COMMENT ON FUNCTION paas.require_object(jsonb) IS
	'the request as an object, or PT400 when it is another JSON type';

-- Validates an optional string field: type and length.  Appends to errs.
CREATE FUNCTION paas.check_text(errs jsonb, req jsonb, field text,
								required boolean, min_len int, max_len int)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	v jsonb := req -> field;
	n int;
BEGIN
	IF v IS NULL OR v = 'null'::jsonb THEN
		IF required THEN
			RETURN paas.add_err(errs, field, field || ' is required');
		END IF;
		RETURN errs;
	END IF;
	IF jsonb_typeof(v) <> 'string' THEN
		RETURN paas.add_err(errs, field, field || ' must be a string');
	END IF;
	n := char_length(v #>> '{}');
	IF n < min_len THEN
		RETURN paas.add_err(errs, field, format('%s must be at least %s characters', field, min_len));
	END IF;
	IF n > max_len THEN
		RETURN paas.add_err(errs, field, format('%s must be at most %s characters', field, max_len));
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_text(jsonb, jsonb, text, boolean, int, int) IS
	'appends an error when req->field is not a string of the given length';

-- Validates an optional integer field (JSON number or numeric string).
CREATE FUNCTION paas.check_int(errs jsonb, req jsonb, field text,
							   required boolean, min_v bigint, max_v bigint)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	v jsonb := req -> field;
	t text;
	n numeric;
BEGIN
	IF v IS NULL OR v = 'null'::jsonb THEN
		IF required THEN
			RETURN paas.add_err(errs, field, field || ' is required');
		END IF;
		RETURN errs;
	END IF;
	t := v #>> '{}';
	IF jsonb_typeof(v) NOT IN ('number', 'string') OR t !~ '^\s*-?[0-9]{1,19}\s*$' THEN
		RETURN paas.add_err(errs, field, field || ' must be an integer');
	END IF;
	n := t::numeric;
	IF n < min_v OR n > max_v THEN
		RETURN paas.add_err(errs, field, format('%s must be between %s and %s', field, min_v, max_v));
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_int(jsonb, jsonb, text, boolean, bigint, bigint) IS
	'appends an error when req->field is not an integer in [min, max]';

-- Validates an optional boolean field (JSON boolean or "true"/"false").
CREATE FUNCTION paas.check_bool(errs jsonb, req jsonb, field text, required boolean)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	v jsonb := req -> field;
BEGIN
	IF v IS NULL OR v = 'null'::jsonb THEN
		IF required THEN
			RETURN paas.add_err(errs, field, field || ' is required');
		END IF;
		RETURN errs;
	END IF;
	IF jsonb_typeof(v) = 'boolean' OR lower(v #>> '{}') IN ('true', 'false') THEN
		RETURN errs;
	END IF;
	RETURN paas.add_err(errs, field, field || ' must be a boolean');
END
$$;
COMMENT ON FUNCTION paas.check_bool(jsonb, jsonb, text, boolean) IS
	'appends an error when req->field is not a boolean';

-- Validates an optional field against a list of allowed strings.
CREATE FUNCTION paas.check_enum(errs jsonb, req jsonb, field text,
								required boolean, allowed text[])
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	v jsonb := req -> field;
BEGIN
	IF v IS NULL OR v = 'null'::jsonb THEN
		IF required THEN
			RETURN paas.add_err(errs, field, field || ' is required');
		END IF;
		RETURN errs;
	END IF;
	IF jsonb_typeof(v) = 'string' AND (v #>> '{}') = ANY (allowed) THEN
		RETURN errs;
	END IF;
	RETURN paas.add_err(errs, field, format('%s must be one of [%s]', field, array_to_string(allowed, ', ')));
END
$$;
COMMENT ON FUNCTION paas.check_enum(jsonb, jsonb, text, boolean, text[]) IS
	'appends an error when req->field is not one of the allowed strings';

-- A committed refusal: for the rare call that must keep what it wrote (an
-- audit row, a revocation) and still answer an error.  httpd sends a reply
-- whose only key is "$error" as the error of that SQLSTATE, through the same
-- table as raised errors.
CREATE FUNCTION paas.refusal(sqlstate text, message text) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object('$error', jsonb_build_object('sqlstate', sqlstate, 'message', message));
COMMENT ON FUNCTION paas.refusal(text, text) IS
	'a reply that httpd answers as the error of "sqlstate" after commit';

-- page / limit of a list request, validated (page >= 1, 1 <= limit <= 100).
CREATE FUNCTION paas.check_paging(errs jsonb, req jsonb) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN paas.check_int(paas.check_int(errs, req, 'page', false, 1, 1000000),
						  req, 'limit', false, 1, 100);
COMMENT ON FUNCTION paas.check_paging(jsonb, jsonb) IS
	'appends errors for invalid page / limit';

-- The pagination object of the contract for a total row count.
CREATE FUNCTION paas.pagination(req jsonb, total bigint, default_limit int DEFAULT 10)
	RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN (WITH p AS (
				SELECT coalesce((req ->> 'page')::int, 1) AS page,
					   coalesce((req ->> 'limit')::int, default_limit) AS lim)
			SELECT jsonb_build_object(
					'page', page, 'limit', lim, 'total', total,
					'totalPages', ceil(total::numeric / lim)::int,
					'hasNext', page * lim < total,
					'hasPrev', page > 1)
			FROM p);
COMMENT ON FUNCTION paas.pagination(jsonb, bigint, int) IS
	'{page, limit, total, totalPages, hasNext, hasPrev} of a validated request';

------------------------------------------------------------------------------
-- Job registry: the background worker runs what this table says is due.
------------------------------------------------------------------------------

CREATE TABLE paas.job (
	name		text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{1,62}$'),
	fn			regproc NOT NULL,
	run_every	interval NOT NULL CHECK (run_every >= interval '100 milliseconds'),
	enabled		boolean NOT NULL DEFAULT true,
	next_run_at	timestamptz NOT NULL DEFAULT now(),
	description	text NOT NULL
);
COMMENT ON TABLE paas.job IS
	'periodic jobs of the background worker; fn() returns jsonb detail';

CREATE TABLE paas.job_run (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	job			text NOT NULL REFERENCES paas.job (name) ON DELETE CASCADE,
	started_at	timestamptz NOT NULL,
	finished_at	timestamptz NOT NULL,
	ok			boolean NOT NULL,
	detail		jsonb,
	error		text
);
CREATE INDEX job_run_job_started_idx ON paas.job_run (job, started_at DESC);
COMMENT ON TABLE paas.job_run IS 'one row per run of a job, kept 7 days';

-- The request of a batch function (api.*_batch, see httpd/batch.c): an
-- array of at most 1,000 {"req", "ctx"} calls; PT400 otherwise.
CREATE FUNCTION paas.check_batch(req jsonb) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
	IF jsonb_typeof(req) IS DISTINCT FROM 'array' OR jsonb_array_length(req) > 1000 THEN
		PERFORM paas.raise_if_invalid(paas.add_err('[]', 'body', 'a batch is an array of at most 1000 calls'));
	END IF;
END
$$;
COMMENT ON FUNCTION paas.check_batch(jsonb) IS 'PT400 unless req is an array of at most 1000 calls';

-- Runs each SQL command in a dynamic background worker of its own, at the
-- same time, and returns the first column of each one's first row (C,
-- bgworker/parallel.c: independent transactions as the calling role; inside
-- a transaction block they run here instead).  Owner only.
CREATE FUNCTION paas.run_parallel(commands text[]) RETURNS text[]
	AS 'MODULE_PATHNAME', 'paas_run_parallel'
	LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION paas.run_parallel(text[]) IS
	'runs the commands in parallel background workers; their first values, in order';

-- Runs one due job: locks its row (SKIP LOCKED: a concurrent runner makes
-- this a no-op returning NULL), runs fn() in an exception block, records the
-- run and schedules the next one.  Returns whether fn() succeeded.
CREATE FUNCTION paas.run_job(job_name text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE STRICT
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	j paas.job;
	t0 timestamptz := clock_timestamp();
	res jsonb;
	err text;
BEGIN
	SELECT * INTO j FROM paas.job
	 WHERE name = job_name AND enabled AND next_run_at <= now()
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
$$;
COMMENT ON FUNCTION paas.run_job(text) IS
	'runs a due job once (safe to call concurrently) and records the run';

-- The worker's own liveness job.
CREATE FUNCTION paas.job_heartbeat() RETURNS jsonb
	LANGUAGE sql VOLATILE
	RETURN jsonb_build_object('at', paas.iso(clock_timestamp()));
COMMENT ON FUNCTION paas.job_heartbeat() IS 'records that the worker is alive';

-- Keeps paas.job_run bounded.
CREATE FUNCTION paas.job_prune_runs() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM paas.job_run WHERE started_at < now() - interval '7 days';
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN jsonb_build_object('deleted', n);
END
$$;
COMMENT ON FUNCTION paas.job_prune_runs() IS 'deletes job runs older than 7 days';

INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('heartbeat', 'paas.job_heartbeat', '30 seconds', 'the worker records that it is alive'),
	('prune_job_runs', 'paas.job_prune_runs', '1 hour', 'deletes job runs older than 7 days');

-- paas.job rows are installed by this script (a dump of them would clash on
-- restore); runs are transient.  Neither is registered for pg_dump.

------------------------------------------------------------------------------
-- api: system
------------------------------------------------------------------------------

CREATE FUNCTION api.health(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
	RETURN jsonb_build_object('status', 'healthy', 'database', 'up', 'version', 'v1',
							  'timestamp', paas.iso(now()));
COMMENT ON FUNCTION api.health(jsonb, jsonb) IS 'answers when the database is reachable';

CREATE FUNCTION api.status(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
	RETURN (SELECT jsonb_build_object(
		'service', 'paas',
		'version', paas.version(),
		'extensionVersion', (SELECT extversion FROM pg_extension WHERE extname = 'paas'),
		'databaseTime', paas.iso(clock_timestamp()),
		'postgres', current_setting('server_version'),
		'worker', jsonb_build_object(
			'running', w.running, 'pid', w.pid,
			'startedAt', paas.iso(w.started_at), 'lastTick', paas.iso(w.last_tick),
			'ticks', w.ticks, 'jobFailures', w.job_failures),
		'cron', EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'))
	FROM paas.worker_state() w);
COMMENT ON FUNCTION api.status(jsonb, jsonb) IS
	'module version, database time, background worker and pg_cron state';

REVOKE ALL ON FUNCTION api.health(jsonb, jsonb), api.status(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.health(jsonb, jsonb), api.status(jsonb, jsonb) TO paas_api, paas_owner;
-- paas 0.2.0 -- accounts: users, sessions with rotating refresh tokens,
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
	secret			bytea NOT NULL DEFAULT gen_random_bytes(32),
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
	SET search_path = paas, pg_catalog, public, pg_temp
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
	RETURN crypt(pw, gen_salt('bf', 10));
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
	RETURN encode(hmac(convert_to(s.id::text || ':' || gen, 'UTF8'), s.secret, 'sha256'), 'hex');
COMMENT ON FUNCTION paas.refresh_token(paas.sessions, integer) IS 'the n-th refresh token of a session';

-- Issues the session's current token and records its hash.
CREATE FUNCTION paas.issue_token(s paas.sessions) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	tok text := paas.refresh_token(s, s.generation);
BEGIN
	INSERT INTO paas.refresh_tokens (token_hash, session_id, generation)
	VALUES (digest(tok, 'sha256'), s.id, s.generation);
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
	SET search_path = paas, pg_catalog, public, pg_temp
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
	SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
		RAISE EXCEPTION 'User with this email already exists' USING ERRCODE = 'PT409';
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
		PERFORM crypt(req ->> 'password', decoy);
		RAISE EXCEPTION 'Invalid email or password' USING ERRCODE = 'PT401';
	END IF;
	IF crypt(req ->> 'password', u.password_hash) <> u.password_hash THEN
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	 WHERE token_hash = digest(req ->> 'refreshToken', 'sha256')
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	IF crypt(req ->> 'currentPassword', u.password_hash) <> u.password_hash THEN
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SET search_path = paas, pg_catalog, public, pg_temp
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
-- paas 0.2.0 -- the background worker's jobs, for administrators over HTTP
-- (DBAs read paas.job and paas.job_run directly).

CREATE FUNCTION paas.job_run_json(r paas.job_run) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object('id', r.id, 'job', r.job, 'startedAt', paas.iso(r.started_at),
							  'finishedAt', paas.iso(r.finished_at),
							  'ms', round(extract(epoch FROM r.finished_at - r.started_at) * 1000, 3),
							  'ok', r.ok, 'detail', r.detail, 'error', r.error);
COMMENT ON FUNCTION paas.job_run_json(paas.job_run) IS 'a job run as the API prints it';

CREATE FUNCTION api.jobs_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN jsonb_build_object(
		'worker', (SELECT to_jsonb(w) FROM paas.worker_state() w),
		'jobs', coalesce((
			SELECT jsonb_agg(jsonb_build_object(
					'name', j.name, 'function', j.fn::text,
					'runEverySeconds', extract(epoch FROM j.run_every),
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
$$;
COMMENT ON FUNCTION api.jobs_list(jsonb, jsonb) IS
	'GET /admin/jobs: the worker''s state and every job with its last run';

CREATE FUNCTION api.jobs_runs(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.jobs_runs(jsonb, jsonb) IS
	'GET /admin/jobs/runs: recorded runs, newest first (job, ok, page, limit)';

REVOKE ALL ON FUNCTION api.jobs_list(jsonb, jsonb), api.jobs_runs(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.jobs_list(jsonb, jsonb), api.jobs_runs(jsonb, jsonb) TO paas_api, paas_owner;
-- paas 0.2.0 -- catalog: the services customers can subscribe to (/services).
--
-- A service is identified by a uuid id and by its slug "name" (lowercase,
-- [a-z0-9-], 2-50 characters).  "admin" and "categories" are reserved:
-- /services/admin and /services/categories shadow /services/:name.  The slug
-- cannot be changed after creation.
--
-- Categories are a fixed list, paas.service_categories(), enforced by a
-- CHECK; adding one is a schema change made in an upgrade script.
--
-- Resources.  CPU is stored in millicores and memory in MiB, each as request
-- and limit (the Kubernetes pair), plus storage in GiB.  The API prints them
-- in two forms: the original system's strings (cpuRequest "0.25", memLimit
-- "1Gi", ...) and resources {cpuMillicores, memoryMiB, storageGiB}, whose
-- CPU and memory are the limits.  Both forms are accepted as input; when
-- both give a limit they must agree.
--
-- Visibility.  Public routes see active services only.  Deletion is soft
-- (deleted_at): a deleted service disappears from every route and its slug
-- becomes free again.  DELETE is refused (PT409) while a row of any table
-- with a foreign key to paas.services references the service; the check
-- reads pg_constraint, so tables added by later areas (subscriptions) are
-- covered without a change here.  Code that sells a service must lock its
-- row (FOR KEY SHARE) and check deleted_at IS NULL AND is_active: DELETE
-- locks the row FOR UPDATE before looking for references.
--
-- Search is a case-insensitive substring match over name, display name and
-- description, served by a pg_trgm GIN index on paas.service_search_text().

------------------------------------------------------------------------------
-- categories
------------------------------------------------------------------------------

CREATE FUNCTION paas.service_categories(OUT name text, OUT display_name text, OUT ord integer)
	RETURNS SETOF record
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT * FROM (VALUES
		('automation', 'Automation', 1),
		('cms', 'CMS & Websites', 2),
		('database', 'Databases', 3),
		('analytics', 'Analytics', 4),
		('devtools', 'Developer Tools', 5),
		('communication', 'Communication', 6),
		('storage', 'Storage', 7),
		('monitoring', 'Monitoring', 8),
		('other', 'Other', 9)) AS c (name, display_name, ord)
$$;
COMMENT ON FUNCTION paas.service_categories() IS
	'the fixed list of service categories, in display order';

CREATE FUNCTION paas.is_service_category(c text) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN c IN (SELECT name FROM paas.service_categories());
COMMENT ON FUNCTION paas.is_service_category(text) IS 'whether c is a known service category';

CREATE FUNCTION paas.service_category_names() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN ARRAY(SELECT name FROM paas.service_categories() ORDER BY ord);
COMMENT ON FUNCTION paas.service_category_names() IS 'the category names, in display order';

------------------------------------------------------------------------------
-- table
------------------------------------------------------------------------------

CREATE TABLE paas.services (
	id					uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name				text NOT NULL CHECK (name ~ '^[a-z0-9-]{2,50}$'),
	display_name		text NOT NULL CHECK (char_length(display_name) BETWEEN 2 AND 100),
	description			text NOT NULL CHECK (char_length(description) BETWEEN 10 AND 500),
	category			text NOT NULL DEFAULT 'other' CHECK (paas.is_service_category(category)),
	version				text NOT NULL DEFAULT 'latest' CHECK (char_length(version) BETWEEN 1 AND 50),
	docker_image		text NOT NULL CHECK (char_length(docker_image) BETWEEN 1 AND 255),
	container_port		integer NOT NULL DEFAULT 80 CHECK (container_port BETWEEN 1 AND 65535),
	cpu_request_m		integer NOT NULL DEFAULT 250 CHECK (cpu_request_m BETWEEN 1 AND 64000),
	cpu_limit_m			integer NOT NULL DEFAULT 1000 CHECK (cpu_limit_m BETWEEN 1 AND 64000),
	mem_request_mib		integer NOT NULL DEFAULT 512 CHECK (mem_request_mib BETWEEN 16 AND 262144),
	mem_limit_mib		integer NOT NULL DEFAULT 1024 CHECK (mem_limit_mib BETWEEN 16 AND 262144),
	storage_gib			integer NOT NULL DEFAULT 1 CHECK (storage_gib BETWEEN 0 AND 10240),
	monthly_price		bigint NOT NULL DEFAULT 0 CHECK (monthly_price BETWEEN 0 AND 1000000000),
	features			jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(features) = 'array'),
	environment_vars	jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(environment_vars) = 'object'),
	is_active			boolean NOT NULL DEFAULT true,
	deleted_at			timestamptz,
	created_at			timestamptz NOT NULL DEFAULT now(),
	updated_at			timestamptz NOT NULL DEFAULT now(),
	CHECK (cpu_request_m <= cpu_limit_m),
	CHECK (mem_request_mib <= mem_limit_mib)
);
COMMENT ON TABLE paas.services IS
	'the service catalog; deletion is soft (deleted_at), slugs are unique among live services';
COMMENT ON COLUMN paas.services.monthly_price IS
	'current list price per month in whole IDR; changing it never alters what existing '
	'subscriptions paid, because a subscription copies the price at the time of sale';
COMMENT ON COLUMN paas.services.environment_vars IS
	'environment variables template (name -> value) handed to the deployment';

-- The text that search matches; the GIN index below is on this expression.
CREATE FUNCTION paas.service_search_text(name text, display_name text, description text)
	RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN name || ' ' || display_name || ' ' || description;
COMMENT ON FUNCTION paas.service_search_text(text, text, text) IS
	'the searchable text of a service (indexed with pg_trgm)';

CREATE UNIQUE INDEX services_name_key ON paas.services (name) WHERE deleted_at IS NULL;
-- The catalog is written rarely: no GIN pending list (fastupdate), so new
-- rows are searchable through the index at once and its cost stays low.
CREATE INDEX services_search_idx ON paas.services
	USING gin (paas.service_search_text(name, display_name, description) gin_trgm_ops)
	WITH (fastupdate = off);
CREATE INDEX services_public_idx ON paas.services (display_name, id)
	WHERE is_active AND deleted_at IS NULL;
CREATE INDEX services_created_idx ON paas.services (created_at DESC);

------------------------------------------------------------------------------
-- helpers
------------------------------------------------------------------------------

-- CPU quantity: "0.25", "1", "1.5" (cores, up to 3 decimals) or "250m".
CREATE FUNCTION paas.parse_cpu(t text) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN t ~ '^[0-9]{1,6}m$' THEN left(t, -1)::integer
				WHEN t ~ '^[0-9]{1,3}(\.[0-9]{1,3})?$' THEN round(t::numeric * 1000)::integer END;
COMMENT ON FUNCTION paas.parse_cpu(text) IS 'millicores of a CPU quantity, NULL when malformed';

-- Memory quantity: "512Mi" or "2Gi".
CREATE FUNCTION paas.parse_mem(t text) RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN t ~ '^[0-9]{1,7}Mi$' THEN left(t, -2)::integer
				WHEN t ~ '^[0-9]{1,4}Gi$' THEN left(t, -2)::integer * 1024 END;
COMMENT ON FUNCTION paas.parse_mem(text) IS 'MiB of a memory quantity, NULL when malformed';

-- One of the original's quantity fields of a service (cpuRequest, cpuLimit:
-- CPU in millicores, 1 to 64 cores; memRequest, memLimit: MiB, 16Mi to
-- 256Gi).  value is NULL when the field is absent or invalid; err is '[]' or
-- the field's error.
CREATE FUNCTION paas.service_quantity(req jsonb, field text, OUT value integer, OUT err jsonb)
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	is_cpu boolean := field LIKE 'cpu%';
	v jsonb := req -> field;
BEGIN
	err := '[]';
	IF v IS NULL OR v = 'null'::jsonb THEN
		RETURN;
	END IF;
	IF jsonb_typeof(v) = 'string' THEN
		value := CASE WHEN is_cpu THEN paas.parse_cpu(v #>> '{}') ELSE paas.parse_mem(v #>> '{}') END;
	END IF;
	IF value IS NULL OR (is_cpu AND value NOT BETWEEN 1 AND 64000)
	   OR (NOT is_cpu AND value NOT BETWEEN 16 AND 262144) THEN
		value := NULL;
		err := paas.add_err('[]', field, field || CASE WHEN is_cpu
			THEN ' must be a CPU quantity such as "0.25", "2" or "500m", at most 64 cores'
			ELSE ' must be a memory quantity such as "512Mi" or "2Gi", between 16Mi and 256Gi' END);
	END IF;
END
$$;
COMMENT ON FUNCTION paas.service_quantity(jsonb, text) IS
	'a service''s CPU or memory quantity field: value, or the field error';

CREATE FUNCTION paas.cpu_text(m integer) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN m % 1000 = 0 THEN (m / 1000)::text ELSE trim_scale(m / 1000.0)::text END;
COMMENT ON FUNCTION paas.cpu_text(integer) IS 'millicores as cores text ("0.25")';

CREATE FUNCTION paas.mem_text(mib integer) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN mib % 1024 = 0 THEN (mib / 1024)::text || 'Gi' ELSE mib::text || 'Mi' END;
COMMENT ON FUNCTION paas.mem_text(integer) IS 'MiB as a Kubernetes quantity ("512Mi", "1Gi")';

-- Every field, as the admin routes print a service.
CREATE FUNCTION paas.service_json(s paas.services) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'id', s.id, 'name', s.name, 'displayName', s.display_name,
		'description', s.description, 'category', s.category, 'version', s.version,
		'dockerImage', s.docker_image, 'containerPort', s.container_port,
		'defaultPort', s.container_port,
		'cpuRequest', paas.cpu_text(s.cpu_request_m), 'cpuLimit', paas.cpu_text(s.cpu_limit_m),
		'memRequest', paas.mem_text(s.mem_request_mib), 'memLimit', paas.mem_text(s.mem_limit_mib),
		'resources', jsonb_build_object('cpuMillicores', s.cpu_limit_m,
										'memoryMiB', s.mem_limit_mib,
										'storageGiB', s.storage_gib),
		'monthlyPrice', s.monthly_price, 'features', s.features,
		'environmentVars', s.environment_vars, 'isActive', s.is_active,
		'createdAt', paas.iso(s.created_at), 'updatedAt', paas.iso(s.updated_at));
COMMENT ON FUNCTION paas.service_json(paas.services) IS 'a service as the admin routes print it';

-- What anyone may see: no image, port, environment or request sizes.
CREATE FUNCTION paas.service_public_json(s paas.services) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object(
		'id', s.id, 'name', s.name, 'displayName', s.display_name,
		'description', s.description, 'category', s.category, 'version', s.version,
		'resources', jsonb_build_object('cpuMillicores', s.cpu_limit_m,
										'memoryMiB', s.mem_limit_mib,
										'storageGiB', s.storage_gib),
		'monthlyPrice', s.monthly_price, 'features', s.features, 'isActive', s.is_active);
COMMENT ON FUNCTION paas.service_public_json(paas.services) IS 'a service as the public routes print it';

-- Validates a create (cur = defaults) or update (cur = the stored row)
-- request and returns cur with the requested changes applied.  Raises PT400
-- listing every failing field; cross-field rules (request <= limit) are
-- checked against the merged result.
CREATE FUNCTION paas.service_input(req jsonb, cur paas.services, creating boolean)
	RETURNS paas.services
	LANGUAGE plpgsql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.service_input(jsonb, paas.services, boolean) IS
	'validates a create/update request (PT400 with every failing field) and applies it to cur';

-- A live service by path id (any text); PT404 when there is none.
CREATE FUNCTION paas.find_service(id_text text) RETURNS paas.services
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	s paas.services;
BEGIN
	SELECT * INTO s FROM paas.services
	 WHERE id = paas.to_uuid(id_text) AND deleted_at IS NULL
	 FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN s;
END
$$;
COMMENT ON FUNCTION paas.find_service(text) IS
	'locks (FOR UPDATE) and returns a live service by id; PT404 otherwise';

-- Tables whose foreign keys reference the service with at least one row.
-- Every foreign key to paas.services is found in pg_constraint and probed
-- with an EXISTS over its own columns (indexed by the referencing area).
CREATE FUNCTION paas.service_references(service_id uuid) RETURNS text[]
	LANGUAGE plpgsql STABLE STRICT
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.service_references(uuid) IS
	'tables holding rows that reference the service through a foreign key (empty: none)';

-- The filtered service list behind GET /services and GET /services/admin.
-- Only fixed SQL fragments are concatenated; every value is a parameter.
-- Returns {"rows": [...], "total": n}.
CREATE FUNCTION paas.services_page(req jsonb, public_view boolean, default_limit integer)
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
		CASE WHEN public_view THEN 'paas.service_public_json' ELSE 'paas.service_json' END, cond)
	   INTO rows USING pattern, req ->> 'category', active, lim, off;
	RETURN jsonb_build_object('rows', rows, 'total', total);
END
$$;
COMMENT ON FUNCTION paas.services_page(jsonb, boolean, integer) IS
	'one page of services filtered by search, category and state; {rows, total}';

------------------------------------------------------------------------------
-- api: public catalog
------------------------------------------------------------------------------

CREATE FUNCTION api.services_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.services_list(jsonb, jsonb) IS
	'GET /services: active services by display name; category, search, page, limit (default 100)';

CREATE FUNCTION api.services_get_by_name(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	s paas.services;
BEGIN
	SELECT * INTO s FROM paas.services
	 WHERE name = lower(req ->> 'name') AND is_active AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.service_public_json(s);
END
$$;
COMMENT ON FUNCTION api.services_get_by_name(jsonb, jsonb) IS
	'GET /services/:name: an active service by slug (inactive or unknown: PT404)';

CREATE FUNCTION api.services_categories(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
	RETURN (SELECT jsonb_agg(jsonb_build_object('name', c.name, 'displayName', c.display_name,
												'count', coalesce(n.cnt, 0)) ORDER BY c.ord)
			  FROM paas.service_categories() c
			  LEFT JOIN (SELECT category, count(*) AS cnt FROM paas.services
						  WHERE is_active AND deleted_at IS NULL GROUP BY category) n
				ON n.category = c.name);
COMMENT ON FUNCTION api.services_categories(jsonb, jsonb) IS
	'GET /services/categories: every category with its number of active services';

------------------------------------------------------------------------------
-- api: admin catalog
------------------------------------------------------------------------------

CREATE FUNCTION api.services_admin_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.services_admin_list(jsonb, jsonb) IS
	'GET /services/admin: page, limit, search, category, status|isActive, sortBy, sortOrder';

CREATE FUNCTION api.services_admin_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.services_admin_stats(jsonb, jsonb) IS
	'GET /services/admin/stats: service counts by status and by category';

CREATE FUNCTION api.services_admin_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	s paas.services;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO s FROM paas.services
	 WHERE id = paas.to_uuid(req ->> 'id') AND deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Service not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN paas.service_json(s);
END
$$;
COMMENT ON FUNCTION api.services_admin_get(jsonb, jsonb) IS
	'GET /services/admin/:id: every field of a service, active or not';

CREATE FUNCTION api.services_create(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
		RAISE EXCEPTION 'Service with this name already exists' USING ERRCODE = 'PT409';
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
		RAISE EXCEPTION 'Service with this name already exists' USING ERRCODE = 'PT409';
	END;
	RETURN paas.service_json(s);
END
$$;
COMMENT ON FUNCTION api.services_create(jsonb, jsonb) IS
	'POST /services: a catalog entry (slug unique among live services: PT409)';

CREATE FUNCTION api.services_update(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.services_update(jsonb, jsonb) IS
	'PUT /services/:id: any field but the slug; a price change does not touch existing subscriptions';

CREATE FUNCTION api.services_toggle_status(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.services_toggle_status(jsonb, jsonb) IS
	'PATCH /services/:id/toggle-status: active <-> inactive';

CREATE FUNCTION api.services_delete(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.services_delete(jsonb, jsonb) IS
	'DELETE /services/:id: soft delete; PT409 while any row references the service';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.services_list(jsonb, jsonb)', 'api.services_get_by_name(jsonb, jsonb)',
		'api.services_categories(jsonb, jsonb)', 'api.services_admin_list(jsonb, jsonb)',
		'api.services_admin_stats(jsonb, jsonb)', 'api.services_admin_get(jsonb, jsonb)',
		'api.services_create(jsonb, jsonb)', 'api.services_update(jsonb, jsonb)',
		'api.services_toggle_status(jsonb, jsonb)', 'api.services_delete(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;

-- The catalog belongs in dumps of the database.
SELECT pg_catalog.pg_extension_config_dump('paas.services', '');
-- paas 0.2.0 -- worker nodes: registry, join tokens and node tokens,
-- heartbeats, the status machine (C) and the health monitor job.
--
-- Rules a reader must know.
--   * Status changes go through paas.node_transition(status, event), the
--     C table of extension/nodes.c; an illegal one raises PT409.  Every
--     change of status (and every registration, cordon and admin action) is
--     recorded in paas.node_transitions with its event, actor and reason.
--   * isSchedulable is derived: status ACTIVE, ready, and not cordoned.  The
--     stored flag is "cordoned" (Kubernetes' spec.unschedulable), so the
--     monitor never overwrites an administrator's cordon.
--   * Registration needs a join token (paas.node_join_tokens: several may be
--     valid at once, each hashed, with optional expiry and revocation) and
--     returns a node token (256 random bits, only its SHA-256 is stored);
--     re-registering rotates it.  Heartbeat and resource calls carry the
--     node token: none or unknown -> PT401, another node's -> PT403.
--   * The heartbeat time is the server's now(); the agent's clock is kept
--     only as a skew diagnostic.
--   * The health monitor (job node_monitor, run by the background worker)
--     marks ACTIVE nodes silent for paas.node_grace_period NOT_READY and
--     nodes silent for paas.node_offline_after INACTIVE, set-based, with FOR
--     UPDATE SKIP LOCKED.  A node never heard from counts from created_at.
--   * Quantities ("3800m", "16331368Ki", "1.5Gi") are parsed in C
--     (extension/quantity.c); bad ones are PT400 field errors.  CPU is kept
--     in millicores, memory and storage in bytes.  JSON numbers are accepted
--     where the original took numbers: allocatedCPU / cpuUsage in cores,
--     allocatedMemory in MiB, allocatedStorage in GiB, memoryUsage /
--     storageUsage in bytes.
--   * The heartbeat path is the hot one (a fleet of 240,000 nodes at 30 s is
--     8,000/s): paas.nodes has no index on last_heartbeat and a fillfactor
--     of 70 so that heartbeats are HOT updates (the monitor scans the
--     table); the columns a heartbeat writes come last so the WAL record
--     holds only them; the row is not locked (the update re-checks the
--     status it read); the commit does not wait for the WAL flush.

------------------------------------------------------------------------------
-- Domains.  The value rules of paas.nodes are domains rather than table
-- CHECKs: PostgreSQL evaluates every CHECK of a table on every UPDATE (and
-- re-reads them per statement), while a domain is checked only where a
-- value is assigned to it, from a cached expression.  A heartbeat assigns
-- none of the capacity columns.
------------------------------------------------------------------------------

CREATE DOMAIN paas.node_status AS text
	CHECK (VALUE IN ('ACTIVE', 'INACTIVE', 'MAINTENANCE', 'PENDING', 'NOT_READY'));
CREATE DOMAIN paas.node_amount AS bigint CHECK (VALUE >= 0);
CREATE DOMAIN paas.node_count AS integer CHECK (VALUE >= 0);
CREATE DOMAIN paas.node_cores AS integer CHECK (VALUE BETWEEN 1 AND 100000);
CREATE DOMAIN paas.node_pod_limit AS integer CHECK (VALUE BETWEEN 1 AND 1000000);
COMMENT ON DOMAIN paas.node_status IS 'a worker node''s status (the states of extension/nodes.c)';
COMMENT ON DOMAIN paas.node_amount IS 'a non-negative resource amount (millicores or bytes)';
COMMENT ON DOMAIN paas.node_count IS 'a non-negative count (pods)';
COMMENT ON DOMAIN paas.node_cores IS 'a node''s CPU core count';
COMMENT ON DOMAIN paas.node_pod_limit IS 'a node''s pod limit';

------------------------------------------------------------------------------
-- Module functions (C)
------------------------------------------------------------------------------

CREATE FUNCTION paas.parse_quantity(q text) RETURNS numeric
	AS 'MODULE_PATHNAME', 'paas_parse_quantity'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.parse_quantity(text) IS
	'exact value of a Kubernetes quantity (nano precision); 22P02 when invalid';

CREATE FUNCTION paas.quantity_value(q text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'paas_quantity_value'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.quantity_value(text) IS
	'a quantity rounded away from zero (bytes, pods); 22P02 / 22003 on bad input';

CREATE FUNCTION paas.quantity_milli(q text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'paas_quantity_milli'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.quantity_milli(text) IS
	'a quantity times 1000 rounded away from zero (CPU millicores)';

CREATE FUNCTION paas.quantity_error(q text, milli boolean) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_quantity_error'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.quantity_error(text, boolean) IS
	'NULL when q is a non-negative quantity that fits bigint, else the problem';

CREATE FUNCTION paas.node_transition(status text, event text) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_node_transition'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_transition(text, text) IS
	'next node status for an event (the C status machine); PT409 when illegal';

CREATE FUNCTION paas.node_transition_allowed(status text, event text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_node_transition_allowed'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_transition_allowed(text, text) IS
	'whether the status machine allows the event in that status';

CREATE FUNCTION paas.node_transitions(OUT status text, OUT event text, OUT next_status text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'paas_node_transitions'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_transitions() IS 'every allowed (status, event) -> status';

CREATE FUNCTION paas.node_health_settings(OUT grace_period interval, OUT offline_after interval)
	AS 'MODULE_PATHNAME', 'paas_node_health_settings'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_health_settings() IS
	'paas.node_grace_period and paas.node_offline_after as intervals';

CREATE FUNCTION paas.node_history_retention() RETURNS interval
	AS 'MODULE_PATHNAME', 'paas_node_history_retention'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_history_retention() IS
	'paas.node_history_retention as an interval; NULL when the history is kept forever';

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

CREATE TABLE paas.nodes (
	id					uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name				text NOT NULL,
	hostname			text NOT NULL,
	ip_address			inet NOT NULL,
	addresses			jsonb NOT NULL DEFAULT '[]',
	architecture		text NOT NULL DEFAULT 'amd64',
	operating_system	text NOT NULL DEFAULT 'linux',
	cpu_cores			paas.node_cores NOT NULL,
	cpu_architecture	text NOT NULL,
	total_memory		text NOT NULL,
	total_storage		text NOT NULL,
	cpu_capacity_m		paas.node_amount NOT NULL DEFAULT 0,
	memory_capacity		paas.node_amount NOT NULL DEFAULT 0,
	storage_capacity	paas.node_amount NOT NULL DEFAULT 0,
	cpu_allocatable_m	paas.node_amount NOT NULL DEFAULT 0,
	memory_allocatable	paas.node_amount NOT NULL DEFAULT 0,
	storage_allocatable	paas.node_amount NOT NULL DEFAULT 0,
	pods_allocatable	paas.node_count NOT NULL DEFAULT 0,
	max_pods			paas.node_pod_limit NOT NULL DEFAULT 30,
	labels				jsonb NOT NULL DEFAULT '{}',
	taints				jsonb NOT NULL DEFAULT '[]',
	conditions			jsonb NOT NULL DEFAULT '[]',
	kubelet_version		text,
	container_runtime	text,
	kernel_version		text,
	os_image			text,
	provider_id			text,
	pod_cidr			text,
	kube_uid			text,
	token_hash			bytea,
	token_issued_at		timestamptz,
	registered_at		timestamptz,
	cordoned			boolean NOT NULL DEFAULT false,
	created_at			timestamptz NOT NULL DEFAULT now(),
	-- Columns a heartbeat writes come last, those of every heartbeat at the
	-- very end: a same-page (HOT) update WAL-logs only the changed middle of
	-- the tuple, so the wide columns above never reach the WAL per beat.
	status				paas.node_status NOT NULL DEFAULT 'PENDING',
	is_ready			boolean NOT NULL DEFAULT false,
	status_changed_at	timestamptz NOT NULL DEFAULT now(),
	allocated_cpu		text NOT NULL DEFAULT '0',
	allocated_memory	text NOT NULL DEFAULT '0',
	allocated_storage	text NOT NULL DEFAULT '0',
	cpu_allocated_m		bigint NOT NULL DEFAULT 0,
	memory_allocated	bigint NOT NULL DEFAULT 0,
	storage_allocated	bigint NOT NULL DEFAULT 0,
	current_pods		paas.node_count NOT NULL DEFAULT 0,
	cpu_used_m			bigint,
	memory_used			bigint,
	storage_used		bigint,
	agent_clock_skew_ms	bigint,
	last_health_check	timestamptz,
	last_heartbeat		timestamptz,
	updated_at			timestamptz NOT NULL DEFAULT now()

) WITH (fillfactor = 70);
CREATE UNIQUE INDEX nodes_name_key ON paas.nodes (name);
CREATE UNIQUE INDEX nodes_hostname_key ON paas.nodes (hostname);
CREATE UNIQUE INDEX nodes_token_key ON paas.nodes (token_hash);
COMMENT ON TABLE paas.nodes IS
	'worker nodes; heartbeats update last_heartbeat in place (HOT, no index on it)';

CREATE TABLE paas.node_transitions (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	node_id		uuid NOT NULL,
	node_name	text NOT NULL,
	from_status	text,
	to_status	text NOT NULL,
	event		text NOT NULL,
	reason		text,
	actor		text NOT NULL,
	at			timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX node_transitions_node_idx ON paas.node_transitions (node_id, id DESC);
CREATE INDEX node_transitions_at_idx ON paas.node_transitions (at);
COMMENT ON TABLE paas.node_transitions IS
	'audit of node status changes, registrations and admin actions (kept after node deletion)';

CREATE TABLE paas.node_join_tokens (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	token_hash	bytea NOT NULL UNIQUE,
	note		text,
	created_at	timestamptz NOT NULL DEFAULT now(),
	expires_at	timestamptz,
	revoked_at	timestamptz,
	last_used_at timestamptz
);
COMMENT ON TABLE paas.node_join_tokens IS
	'cluster join tokens (SHA-256 only); any live one registers a node';

------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------

-- Who acts, for the audit: an administrator, a DBA session, or the gateway.
CREATE FUNCTION paas.node_actor(ctx jsonb) RETURNS text
	LANGUAGE sql STABLE
	RETURN CASE WHEN ctx ->> 'userId' IS NOT NULL THEN 'admin:' || (ctx ->> 'userId')
				ELSE 'dba:' || session_user END;
COMMENT ON FUNCTION paas.node_actor(jsonb) IS 'audit actor of an admin call';

-- A quantity field as text: strings as given, numbers with "unit" appended.
CREATE FUNCTION paas.qty_of(v jsonb, unit text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}'
							   WHEN 'number' THEN (v #>> '{}') || unit END;
COMMENT ON FUNCTION paas.qty_of(jsonb, text) IS
	'a JSON quantity as text (numbers get the unit suffix), NULL otherwise';

-- Appends an error when v is not a valid non-negative quantity.
CREATE FUNCTION paas.check_qty(errs jsonb, field text, v jsonb, unit text,
							   milli boolean, required boolean)
	RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	msg text;
BEGIN
	IF v IS NULL OR v = 'null'::jsonb THEN
		RETURN CASE WHEN required THEN paas.add_err(errs, field, field || ' is required') ELSE errs END;
	END IF;
	IF jsonb_typeof(v) NOT IN ('string', 'number') THEN
		RETURN paas.add_err(errs, field, field || ' must be a quantity string (e.g. 500m, 16Gi)');
	END IF;
	msg := paas.quantity_error(paas.qty_of(v, unit), milli);
	IF msg IS NOT NULL THEN
		RETURN paas.add_err(errs, field, format('%s is not a valid quantity: %s', field, msg));
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_qty(jsonb, text, jsonb, text, boolean, boolean) IS
	'appends a field error when v is not a non-negative Kubernetes quantity';

CREATE FUNCTION paas.node_is_inet(t text) RETURNS boolean
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
	PERFORM t::inet;
	RETURN true;
EXCEPTION WHEN invalid_text_representation THEN
	RETURN false;
END
$$;
COMMENT ON FUNCTION paas.node_is_inet(text) IS 'whether t is an IPv4/IPv6 address (CIDR allowed)';

-- Whether a node may be scheduled on (derived, see the header).
CREATE FUNCTION paas.node_schedulable(n paas.nodes) RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN n.status = 'ACTIVE' AND n.is_ready AND NOT n.cordoned;
COMMENT ON FUNCTION paas.node_schedulable(paas.nodes) IS 'ACTIVE, ready and not cordoned';

CREATE FUNCTION paas.node_pct(part bigint, whole bigint) RETURNS numeric
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN whole > 0 AND part IS NOT NULL THEN round(part * 100.0 / whole, 2) END;
COMMENT ON FUNCTION paas.node_pct(bigint, bigint) IS 'part / whole in percent, 2 decimals';

-- The full worker record (the original's 28 fields and more).
CREATE FUNCTION paas.node_json(n paas.nodes) RETURNS jsonb
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
		'registeredAt', paas.iso(n.registered_at), 'statusChangedAt', paas.iso(n.status_changed_at),
		'createdAt', paas.iso(n.created_at), 'updatedAt', paas.iso(n.updated_at));
COMMENT ON FUNCTION paas.node_json(paas.nodes) IS 'a worker node as the API prints it';

-- The node of a path segment: its id, or else its name.  PT404 otherwise.
CREATE FUNCTION paas.find_node(key text) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	n paas.nodes;
BEGIN
	SELECT * INTO n FROM paas.nodes WHERE id = paas.to_uuid(key) FOR UPDATE;
	IF NOT FOUND THEN
		SELECT * INTO n FROM paas.nodes WHERE name = key FOR UPDATE;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Worker node not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.find_node(text) IS 'locks and returns a node by id or name; PT404 otherwise';

CREATE FUNCTION paas.node_audit(n paas.nodes, from_status text, event text, actor text, reason text)
	RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
		VALUES (n.id, n.name, from_status, n.status, event, actor, left(reason, 500));
	END;
COMMENT ON FUNCTION paas.node_audit(paas.nodes, text, text, text, text) IS
	'records one transition of a node';

-- Applies an event through the status machine, with the side effects of the
-- new status, and records it.  Returns the updated row.
CREATE FUNCTION paas.node_apply(n paas.nodes, event text, actor text, reason text DEFAULT NULL)
	RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.node_apply(paas.nodes, text, text, text) IS
	'applies a status-machine event to a node (PT409 when illegal) and audits it';

-- Validates a node in the original's field set (after normalisation of a
-- Kubernetes Node object).  "creating": required fields must be present.
CREATE FUNCTION paas.node_check(errs jsonb, s jsonb, creating boolean) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	f text;
	v jsonb;
BEGIN
	errs := paas.check_text(errs, s, 'name', creating, 2, 253);
	IF jsonb_typeof(s -> 'name') = 'string'
	   AND s ->> 'name' !~ '^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$' THEN
		errs := paas.add_err(errs, 'name',
			'name may hold only letters, digits, ".", "-" and "_", and must start and end with a letter or digit');
	END IF;
	errs := paas.check_text(errs, s, 'hostname', creating, 1, 255);
	errs := paas.check_text(errs, s, 'ipAddress', creating, 2, 64);
	IF jsonb_typeof(s -> 'ipAddress') = 'string' AND NOT paas.node_is_inet(s ->> 'ipAddress') THEN
		errs := paas.add_err(errs, 'ipAddress', 'ipAddress must be a valid IP address');
	END IF;
	errs := paas.check_enum(errs, s, 'architecture', false,
							ARRAY['amd64', 'arm64', 'arm', '386', 'ppc64le', 's390x', 'riscv64']);
	errs := paas.check_text(errs, s, 'operatingSystem', false, 1, 64);
	errs := paas.check_int(errs, s, 'cpuCores', creating, 1, 100000);
	errs := paas.check_text(errs, s, 'cpuArchitecture', creating, 1, 255);
	errs := paas.check_qty(errs, 'totalMemory', s -> 'totalMemory', '', false, creating);
	errs := paas.check_qty(errs, 'totalStorage', s -> 'totalStorage', '', false, creating);
	errs := paas.check_qty(errs, 'allocatedCPU', s -> 'allocatedCPU', '', true, false);
	errs := paas.check_qty(errs, 'allocatedMemory', s -> 'allocatedMemory', 'Mi', false, false);
	errs := paas.check_qty(errs, 'allocatedStorage', s -> 'allocatedStorage', 'Gi', false, false);
	errs := paas.check_int(errs, s, 'maxPods', false, 1, 1000000);
	errs := paas.check_int(errs, s, 'currentPods', false, 0, 1000000);
	FOREACH f IN ARRAY ARRAY['kubeletVersion', 'containerRuntime', 'kernelVersion', 'osImage'] LOOP
		errs := paas.check_text(errs, s, f, false, 0, 255);
	END LOOP;
	v := s -> 'labels';
	IF v IS NOT NULL AND v <> 'null'::jsonb THEN
		IF jsonb_typeof(v) <> 'object' THEN
			errs := paas.add_err(errs, 'labels', 'labels must be an object of strings');
		ELSE
			SELECT errs || coalesce(jsonb_agg(jsonb_build_object('field', 'labels.' || key,
						'message', format('"labels.%s" must be a string of at most 63 characters', key))), '[]')
			  INTO errs
			  FROM jsonb_each(v)
			 WHERE jsonb_typeof(value) <> 'string' OR char_length(value #>> '{}') > 63
				OR char_length(key) > 317;
		END IF;
	END IF;
	v := s -> 'taints';
	IF v IS NOT NULL AND v <> 'null'::jsonb THEN
		IF jsonb_typeof(v) <> 'array' THEN
			errs := paas.add_err(errs, 'taints', 'taints must be an array');
		ELSE
			SELECT errs || coalesce(jsonb_agg(jsonb_build_object('field', 'taints.' || (i - 1),
						'message', 'a taint needs a string "key", an optional string "value" and an "effect" of NoSchedule, PreferNoSchedule or NoExecute')), '[]')
			  INTO errs
			  FROM jsonb_array_elements(v) WITH ORDINALITY AS t(e, i)
			 WHERE jsonb_typeof(e) <> 'object'
				OR jsonb_typeof(e -> 'key') IS DISTINCT FROM 'string'
				OR (e ? 'value' AND jsonb_typeof(e -> 'value') NOT IN ('string', 'null'))
				OR NOT coalesce(e ->> 'effect' = ANY (ARRAY['NoSchedule', 'PreferNoSchedule', 'NoExecute']), false);
		END IF;
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.node_check(jsonb, jsonb, boolean) IS
	'field errors of a node in the original''s field set';

-- The resource fields of a heartbeat or resource report, checked and
-- converted in one C pass (extension/nodes.c): errs lists the field errors
-- ([] when none), absent fields are NULL.  Quantities as text keep what the
-- node sent (numbers with their unit appended).
CREATE TYPE paas.node_report AS (
	errs				jsonb,
	allocated_cpu		text,
	allocated_memory	text,
	allocated_storage	text,
	cpu_allocated_m		bigint,
	memory_allocated	bigint,
	storage_allocated	bigint,
	cpu_used_m			bigint,
	memory_used			bigint,
	storage_used		bigint,
	current_pods		integer
);
COMMENT ON TYPE paas.node_report IS 'the checked resource fields of a node''s report';

CREATE FUNCTION paas.node_report(r jsonb) RETURNS paas.node_report
	AS 'MODULE_PATHNAME', 'paas_node_report'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.node_report(jsonb) IS
	'allocation / usage / pod fields of a report: field errors and converted values';

-- A Kubernetes Node object (as `kubectl get node -o json` prints it) in the
-- original's field set plus the extra keys (capacity, allocatable,
-- conditions, ...).  Field errors use the object's own paths.
CREATE FUNCTION paas.node_from_k8s(doc jsonb, OUT spec jsonb, OUT errs jsonb)
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
	md jsonb;
	st jsonb;
	sp jsonb;
	ni jsonb;
	cap jsonb;
	alloc jsonb;
	addrs jsonb;
	ip text;
	host text;
	ready text;
	k text;
	qty jsonb := '{}';
BEGIN
	errs := '[]';
	IF doc ->> 'kind' = 'List' THEN
		IF jsonb_typeof(doc -> 'items') <> 'array' OR jsonb_array_length(doc -> 'items') <> 1 THEN
			errs := paas.add_err(errs, 'items', 'a List must hold exactly one Node');
			RETURN;
		END IF;
		doc := doc -> 'items' -> 0;
	END IF;
	IF doc ->> 'kind' IS DISTINCT FROM 'Node' THEN
		errs := paas.add_err(errs, 'kind', 'kind must be Node');
	END IF;
	md := CASE WHEN jsonb_typeof(doc -> 'metadata') = 'object' THEN doc -> 'metadata' ELSE '{}' END;
	st := CASE WHEN jsonb_typeof(doc -> 'status') = 'object' THEN doc -> 'status' ELSE '{}' END;
	sp := CASE WHEN jsonb_typeof(doc -> 'spec') = 'object' THEN doc -> 'spec' ELSE '{}' END;
	ni := CASE WHEN jsonb_typeof(st -> 'nodeInfo') = 'object' THEN st -> 'nodeInfo' ELSE '{}' END;
	IF jsonb_typeof(md -> 'name') IS DISTINCT FROM 'string' THEN
		errs := paas.add_err(errs, 'metadata.name', 'metadata.name is required');
	END IF;
	IF jsonb_typeof(st -> 'capacity') IS DISTINCT FROM 'object' THEN
		errs := paas.add_err(errs, 'status.capacity', 'status.capacity is required');
		RETURN;
	END IF;
	cap := st -> 'capacity';
	alloc := CASE WHEN jsonb_typeof(st -> 'allocatable') = 'object' THEN st -> 'allocatable' ELSE '{}' END;
	errs := paas.check_qty(errs, 'status.capacity.cpu', cap -> 'cpu', '', true, true);
	errs := paas.check_qty(errs, 'status.capacity.memory', cap -> 'memory', '', false, true);
	errs := paas.check_qty(errs, 'status.capacity.ephemeral-storage', cap -> 'ephemeral-storage', '', false, false);
	errs := paas.check_qty(errs, 'status.capacity.pods', cap -> 'pods', '', false, false);
	FOREACH k IN ARRAY ARRAY['cpu', 'memory', 'ephemeral-storage', 'pods'] LOOP
		errs := paas.check_qty(errs, 'status.allocatable.' || k, alloc -> k, '', k = 'cpu', false);
	END LOOP;
	addrs := CASE WHEN jsonb_typeof(st -> 'addresses') = 'array' THEN st -> 'addresses' ELSE '[]' END;
	SELECT a ->> 'address' INTO ip FROM jsonb_array_elements(addrs) WITH ORDINALITY x(a, i)
	 WHERE a ->> 'type' IN ('InternalIP', 'ExternalIP')
	 ORDER BY a ->> 'type' = 'ExternalIP', i LIMIT 1;
	ip := coalesce(ip, md -> 'annotations' ->> 'k3s.io/internal-ip', md -> 'labels' ->> 'k3s.io/internal-ip',
				   md -> 'annotations' ->> 'alpha.kubernetes.io/provided-node-ip');
	IF ip IS NULL THEN
		errs := paas.add_err(errs, 'status.addresses', 'status.addresses must hold an InternalIP or ExternalIP');
	END IF;
	IF jsonb_array_length(errs) > 0 THEN
		RETURN;
	END IF;
	SELECT a ->> 'address' INTO host FROM jsonb_array_elements(addrs) a
	 WHERE a ->> 'type' = 'Hostname' LIMIT 1;
	SELECT c ->> 'status' INTO ready FROM jsonb_array_elements(
		CASE WHEN jsonb_typeof(st -> 'conditions') = 'array' THEN st -> 'conditions' ELSE '[]' END) c
	 WHERE c ->> 'type' = 'Ready' LIMIT 1;
	FOREACH k IN ARRAY ARRAY['cpu', 'memory', 'ephemeral-storage', 'pods'] LOOP
		qty := qty || jsonb_build_object(k, coalesce(cap ->> k, CASE k WHEN 'pods' THEN '110' ELSE '0' END));
	END LOOP;
	spec := jsonb_build_object(
		'name', md -> 'name',
		'hostname', coalesce(host, md -> 'labels' ->> 'kubernetes.io/hostname', md ->> 'name'),
		'ipAddress', ip,
		'addresses', addrs,
		'architecture', coalesce(ni ->> 'architecture', md -> 'labels' ->> 'kubernetes.io/arch', 'amd64'),
		'operatingSystem', coalesce(nullif(ni ->> 'operatingSystem', ''), 'linux'),
		'cpuCores', greatest(1, ceil(paas.quantity_milli(qty ->> 'cpu') / 1000.0)),
		'cpuArchitecture', coalesce(nullif(ni ->> 'architecture', ''), 'unknown'),
		'totalMemory', qty ->> 'memory',
		'totalStorage', qty ->> 'ephemeral-storage',
		'maxPods', greatest(1, paas.quantity_value(qty ->> 'pods')),
		'labels', coalesce(md -> 'labels', '{}'),
		'taints', coalesce(sp -> 'taints', '[]'),
		'kubeletVersion', nullif(ni ->> 'kubeletVersion', ''),
		'containerRuntime', nullif(ni ->> 'containerRuntimeVersion', ''),
		'kernelVersion', nullif(ni ->> 'kernelVersion', ''),
		'osImage', nullif(ni ->> 'osImage', ''))
	|| jsonb_build_object(
		'capacity', qty,
		'allocatable', jsonb_build_object(
			'cpu', coalesce(alloc ->> 'cpu', qty ->> 'cpu'),
			'memory', coalesce(alloc ->> 'memory', qty ->> 'memory'),
			'ephemeral-storage', coalesce(alloc ->> 'ephemeral-storage', qty ->> 'ephemeral-storage'),
			'pods', coalesce(alloc ->> 'pods', qty ->> 'pods')),
		'conditions', coalesce(st -> 'conditions', '[]'),
		'providerId', sp -> 'providerID',
		'podCidr', sp -> 'podCIDR',
		'kubeUid', md -> 'uid',
		'unschedulable', coalesce(sp -> 'unschedulable', 'false'),
		'isReady', coalesce(ready, 'True') = 'True');
END
$$;
COMMENT ON FUNCTION paas.node_from_k8s(jsonb) IS
	'a Kubernetes Node object as a node spec, with field errors in the object''s paths';

-- Writes the descriptive fields of spec "s" (validated) into the node "id".
-- Capacity comes from s.capacity / s.allocatable when given (Kubernetes
-- Node objects), else from cpuCores, totalMemory, totalStorage and maxPods.
CREATE FUNCTION paas.node_write(node_id uuid, s jsonb) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	n paas.nodes;
	c jsonb := s -> 'capacity';
	a jsonb := s -> 'allocatable';
BEGIN
	IF c IS NULL THEN
		c := jsonb_build_object('cpu', s ->> 'cpuCores', 'memory', s ->> 'totalMemory',
								'ephemeral-storage', s ->> 'totalStorage', 'pods', s ->> 'maxPods');
	END IF;
	a := coalesce(a, c);
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
		total_memory = paas.qty_of(s -> 'totalMemory', ''),
		total_storage = paas.qty_of(s -> 'totalStorage', ''),
		cpu_capacity_m = paas.quantity_milli(c ->> 'cpu'),
		memory_capacity = paas.quantity_value(c ->> 'memory'),
		storage_capacity = paas.quantity_value(coalesce(c ->> 'ephemeral-storage', '0')),
		cpu_allocatable_m = paas.quantity_milli(a ->> 'cpu'),
		memory_allocatable = paas.quantity_value(a ->> 'memory'),
		storage_allocatable = paas.quantity_value(coalesce(a ->> 'ephemeral-storage', '0')),
		pods_allocatable = paas.quantity_value(coalesce(a ->> 'pods', c ->> 'pods')),
		max_pods = coalesce((s ->> 'maxPods')::numeric::int, max_pods),
		allocated_cpu = coalesce(paas.qty_of(s -> 'allocatedCPU', ''), allocated_cpu),
		allocated_memory = coalesce(paas.qty_of(s -> 'allocatedMemory', 'Mi'), allocated_memory),
		allocated_storage = coalesce(paas.qty_of(s -> 'allocatedStorage', 'Gi'), allocated_storage),
		cpu_allocated_m = coalesce(paas.quantity_milli(paas.qty_of(s -> 'allocatedCPU', '')), cpu_allocated_m),
		memory_allocated = coalesce(paas.quantity_value(paas.qty_of(s -> 'allocatedMemory', 'Mi')), memory_allocated),
		storage_allocated = coalesce(paas.quantity_value(paas.qty_of(s -> 'allocatedStorage', 'Gi')), storage_allocated),
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
	 WHERE id = node_id
	RETURNING * INTO n;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.node_write(uuid, jsonb) IS 'stores the descriptive fields of a validated node spec';

-- The editable fields of a node in the original's field set (for PUT).
CREATE FUNCTION paas.node_spec(n paas.nodes) RETURNS jsonb
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

CREATE FUNCTION paas.node_status_event(status text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE status WHEN 'ACTIVE' THEN 'admin_activate' WHEN 'INACTIVE' THEN 'admin_deactivate'
					   WHEN 'MAINTENANCE' THEN 'admin_maintenance' WHEN 'PENDING' THEN 'admin_pending'
					   WHEN 'NOT_READY' THEN 'admin_not_ready' END;
COMMENT ON FUNCTION paas.node_status_event(text) IS 'the admin event that asks for a status';

CREATE FUNCTION paas.node_hostname_taken(host text, except_id uuid) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM paas.nodes WHERE hostname = host AND id IS DISTINCT FROM except_id) THEN
		RAISE EXCEPTION 'Worker node with this hostname already exists' USING ERRCODE = 'PT409';
	END IF;
END
$$;
COMMENT ON FUNCTION paas.node_hostname_taken(text, uuid) IS 'PT409 when another node has this hostname';

------------------------------------------------------------------------------
-- Join tokens and node tokens
------------------------------------------------------------------------------

CREATE FUNCTION paas.node_token_hash(tok text) RETURNS bytea
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN digest(tok, 'sha256');
COMMENT ON FUNCTION paas.node_token_hash(text) IS 'SHA-256 of a join or node token';

-- Checks the join token of a registration; PT401 when missing or not live.
-- A DBA session (not the gateway) registers without one.
CREATE FUNCTION paas.node_check_join(tok text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.node_check_join(text) IS 'PT401 unless tok is a live join token';

-- The node a heartbeat or resource call is about, checked against the
-- caller's node token: none or unknown -> PT401, another node's -> PT403.
-- A DBA session without a token acts on any node (and locks it).
CREATE FUNCTION paas.node_by_token(key text, ctx jsonb) RETURNS paas.nodes
	LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	n paas.nodes;
	tok text := ctx ->> 'nodeToken';
BEGIN
	IF tok IS NULL AND session_user <> 'paas_api' THEN
		RETURN paas.find_node(key);
	END IF;
	IF tok IS NULL THEN
		RAISE EXCEPTION 'Node token required' USING ERRCODE = 'PT401';
	END IF;
	-- no row lock: writers update by id and re-check the status they read
	SELECT * INTO n FROM paas.nodes WHERE token_hash = paas.node_token_hash(tok);
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Invalid node token' USING ERRCODE = 'PT401';
	END IF;
	IF key IS DISTINCT FROM n.name AND paas.to_uuid(key) IS DISTINCT FROM n.id THEN
		RAISE EXCEPTION 'This node token belongs to another node' USING ERRCODE = 'PT403';
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.node_by_token(text, jsonb) IS
	'the node of a path segment, authorised by ctx.nodeToken (PT401 / PT403)';

CREATE FUNCTION api.workers_join_token_add(token text, note text DEFAULT NULL,
										   expires_at timestamptz DEFAULT NULL)
	RETURNS uuid
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.workers_join_token_add(text, text, timestamptz) IS
	'adds a cluster join token (idempotent: a known token keeps its row); for set-up scripts and DBAs';

CREATE FUNCTION paas.join_token_json(t paas.node_join_tokens) RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN jsonb_build_object('id', t.id, 'note', t.note, 'createdAt', paas.iso(t.created_at),
							  'expiresAt', paas.iso(t.expires_at), 'revokedAt', paas.iso(t.revoked_at),
							  'lastUsedAt', paas.iso(t.last_used_at),
							  'isValid', t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now()));
COMMENT ON FUNCTION paas.join_token_json(paas.node_join_tokens) IS 'a join token without its secret';

CREATE FUNCTION api.workers_join_tokens_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN jsonb_build_object('tokens', coalesce((SELECT jsonb_agg(paas.join_token_json(t) ORDER BY t.created_at DESC)
												   FROM paas.node_join_tokens t), '[]'));
END
$$;
COMMENT ON FUNCTION api.workers_join_tokens_list(jsonb, jsonb) IS 'GET /workers/join-tokens';

CREATE FUNCTION api.workers_join_tokens_create(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	tok text := encode(gen_random_bytes(32), 'hex');
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
$$;
COMMENT ON FUNCTION api.workers_join_tokens_create(jsonb, jsonb) IS
	'POST /workers/join-tokens: a random join token, shown once';

CREATE FUNCTION api.workers_join_tokens_revoke(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.workers_join_tokens_revoke(jsonb, jsonb) IS
	'DELETE /workers/join-tokens/:tokenId: revokes a join token (registered nodes keep working)';

------------------------------------------------------------------------------
-- api: node routes (register, heartbeat, resources)
------------------------------------------------------------------------------

CREATE FUNCTION api.workers_register(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	s jsonb;
	n paas.nodes;
	old text;
	created boolean := false;
	tok text := encode(gen_random_bytes(32), 'hex');
	ev text;
BEGIN
	req := paas.require_object(req);
	PERFORM paas.node_check_join(coalesce(ctx ->> 'nodeToken', req ->> 'registrationToken'));
	req := req - 'registrationToken';
	IF req ? 'kind' OR req ? 'metadata' OR req ? 'apiVersion' THEN
		SELECT k.spec, k.errs INTO s, errs FROM paas.node_from_k8s(req) k;
		PERFORM paas.raise_if_invalid(errs);
	ELSE
		s := req;
		errs := paas.check_bool(errs, s, 'isReady', false);
		IF s ? 'maxPods' IS FALSE THEN
			s := s || '{"maxPods": 110}';
		END IF;
	END IF;
	errs := paas.node_check(errs, s, true);
	PERFORM paas.raise_if_invalid(errs);

	SELECT * INTO n FROM paas.nodes WHERE name = s ->> 'name' FOR UPDATE;
	IF NOT FOUND THEN
		PERFORM paas.node_hostname_taken(s ->> 'hostname', NULL);
		INSERT INTO paas.nodes (name, hostname, ip_address, cpu_cores, cpu_architecture, total_memory, total_storage)
		VALUES (s ->> 'name', s ->> 'hostname', (s ->> 'ipAddress')::inet, 1, '', '0', '0')
		RETURNING * INTO n;
		created := true;
	ELSE
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
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status, 'isReady', n.is_ready,
							  'isSchedulable', paas.node_schedulable(n), 'created', created,
							  'nodeToken', tok, 'heartbeatIntervalSeconds', 30,
							  'gracePeriodSeconds', extract(epoch FROM (paas.node_health_settings()).grace_period)::int);
END
$$;
COMMENT ON FUNCTION api.workers_register(jsonb, jsonb) IS
	'POST /workers/register: join token; the original field set or a Kubernetes Node object; returns the node token';

-- The shared body of heartbeats and resource reports: validates the
-- allocation / usage fields and writes them.
CREATE FUNCTION api.workers_heartbeat(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
			UPDATE paas.nodes x SET
				status = paas.node_transition(o.status, ev),
				status_changed_at = CASE WHEN paas.node_transition(o.status, ev) <> o.status
										 THEN now() ELSE x.status_changed_at END,
				is_ready = ready,
				allocated_cpu = coalesce(rep.allocated_cpu, x.allocated_cpu),
				allocated_memory = coalesce(rep.allocated_memory, x.allocated_memory),
				allocated_storage = coalesce(rep.allocated_storage, x.allocated_storage),
				cpu_allocated_m = coalesce(rep.cpu_allocated_m, x.cpu_allocated_m),
				memory_allocated = coalesce(rep.memory_allocated, x.memory_allocated),
				storage_allocated = coalesce(rep.storage_allocated, x.storage_allocated),
				current_pods = coalesce(rep.current_pods, x.current_pods),
				cpu_used_m = coalesce(rep.cpu_used_m, x.cpu_used_m),
				memory_used = coalesce(rep.memory_used, x.memory_used),
				storage_used = coalesce(rep.storage_used, x.storage_used),
				conditions = coalesce(body -> 'conditions', x.conditions),
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
$$;
COMMENT ON FUNCTION api.workers_heartbeat(jsonb, jsonb) IS
	'PUT /workers/:nodeName/heartbeat and PATCH /workers/:nodeId/heartbeat: node token; server time';

-- Heartbeats that reached the gateway at the same time, in one transaction
-- (httpd/batch.c): req is [{"req": ..., "ctx": ...}, ...], at most 1,000;
-- each item is exactly a call of api.workers_heartbeat, and the results
-- come back in the items' order.  Any item's error fails the whole batch
-- (nothing of it stays), and the gateway then makes each call on its own.
-- Items are applied in node-token order, so two batches never wait for
-- each other's rows crosswise.
CREATE FUNCTION api.workers_heartbeat_batch(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.workers_heartbeat_batch(jsonb, jsonb) IS
	'heartbeats received together, applied in one transaction; results in order (the gateway''s batching)';

CREATE FUNCTION api.workers_resources(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
	UPDATE paas.nodes SET
		allocated_cpu = coalesce(rep.allocated_cpu, allocated_cpu),
		allocated_memory = coalesce(rep.allocated_memory, allocated_memory),
		allocated_storage = coalesce(rep.allocated_storage, allocated_storage),
		cpu_allocated_m = coalesce(rep.cpu_allocated_m, cpu_allocated_m),
		memory_allocated = coalesce(rep.memory_allocated, memory_allocated),
		storage_allocated = coalesce(rep.storage_allocated, storage_allocated),
		cpu_used_m = coalesce(rep.cpu_used_m, cpu_used_m),
		memory_used = coalesce(rep.memory_used, memory_used),
		storage_used = coalesce(rep.storage_used, storage_used),
		current_pods = coalesce(rep.current_pods, current_pods),
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
$$;
COMMENT ON FUNCTION api.workers_resources(jsonb, jsonb) IS
	'PATCH /workers/:nodeId/resources: allocation and usage of the calling node (no liveness effect)';

------------------------------------------------------------------------------
-- api: admin routes
------------------------------------------------------------------------------

CREATE FUNCTION api.workers_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.workers_list(jsonb, jsonb) IS
	'GET /workers: page, limit, status, isSchedulable, isReady, search, sortBy, sortOrder';

CREATE FUNCTION api.workers_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.workers_stats(jsonb, jsonb) IS
	'GET /workers/stats: counts by status, capacity vs allocation and usage totals';

CREATE FUNCTION api.workers_online(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object('nodes', coalesce(jsonb_agg(paas.node_json(n) ORDER BY n.name), '[]'),
							  'count', count(*))
	  INTO r FROM paas.nodes n WHERE paas.node_schedulable(n);
	RETURN r;
END
$$;
COMMENT ON FUNCTION api.workers_online(jsonb, jsonb) IS 'GET /workers/online: ACTIVE, ready and schedulable nodes';

CREATE FUNCTION api.workers_offline(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object('nodes', coalesce(jsonb_agg(paas.node_json(n) ORDER BY n.name), '[]'),
							  'count', count(*))
	  INTO r FROM paas.nodes n WHERE NOT paas.node_schedulable(n);
	RETURN r;
END
$$;
COMMENT ON FUNCTION api.workers_offline(jsonb, jsonb) IS 'GET /workers/offline: every node that is not online';

CREATE FUNCTION api.workers_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
BEGIN
	PERFORM paas.require_admin(ctx);
	RETURN paas.node_json(paas.find_node(req ->> 'nodeId'));
END
$$;
COMMENT ON FUNCTION api.workers_get(jsonb, jsonb) IS 'GET /workers/:nodeId (id or name)';

CREATE FUNCTION api.workers_transitions(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	n paas.nodes;
	errs jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	errs := paas.check_int('[]', req, 'limit', false, 1, 500);
	PERFORM paas.raise_if_invalid(errs);
	n := paas.find_node(req ->> 'nodeId');
	RETURN jsonb_build_object('node', jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status),
		'transitions', coalesce((SELECT jsonb_agg(jsonb_build_object(
				'from', t.from_status, 'to', t.to_status, 'event', t.event, 'reason', t.reason,
				'actor', t.actor, 'at', paas.iso(t.at)) ORDER BY t.id DESC)
			FROM (SELECT * FROM paas.node_transitions WHERE node_id = n.id
				   ORDER BY id DESC LIMIT coalesce((req ->> 'limit')::int, 50)) t), '[]'));
END
$$;
COMMENT ON FUNCTION api.workers_transitions(jsonb, jsonb) IS
	'GET /workers/:nodeId/transitions: the audit trail of a node, newest first';

CREATE FUNCTION api.workers_create(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
		RAISE EXCEPTION 'Worker node with this name already exists' USING ERRCODE = 'PT409';
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
$$;
COMMENT ON FUNCTION api.workers_create(jsonb, jsonb) IS
	'POST /workers: a node in the original field set (default PENDING; it gets a token by registering)';

CREATE FUNCTION api.workers_update(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
		RAISE EXCEPTION 'Worker node with this name already exists' USING ERRCODE = 'PT409';
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
$$;
COMMENT ON FUNCTION api.workers_update(jsonb, jsonb) IS
	'PUT /workers/:nodeId: any field of the original set; status and isSchedulable go through the status machine';

CREATE FUNCTION api.workers_delete(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.workers_delete(jsonb, jsonb) IS
	'DELETE /workers/:nodeId: removes the node (its token stops working; the audit stays)';

CREATE FUNCTION api.workers_set_schedulable(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
	n := paas.find_node(req ->> 'nodeId');
	n := paas.node_apply(n, CASE WHEN v THEN 'uncordon' ELSE 'cordon' END, paas.node_actor(ctx), req ->> 'reason');
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'isSchedulable', paas.node_schedulable(n),
							  'unschedulable', n.cordoned, 'isReady', n.is_ready, 'status', n.status,
							  'updatedAt', paas.iso(n.updated_at));
END
$$;
COMMENT ON FUNCTION api.workers_set_schedulable(jsonb, jsonb) IS
	'PATCH /workers/:nodeId/schedulable {schedulable}: cordon / uncordon (409 while INACTIVE or MAINTENANCE)';

CREATE FUNCTION api.workers_set_status(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
	n := paas.find_node(req ->> 'nodeId');
	old := n.status;
	n := paas.node_apply(n, paas.node_status_event(req ->> 'status'), paas.node_actor(ctx), req ->> 'reason');
	RETURN jsonb_build_object('id', n.id, 'name', n.name, 'status', n.status, 'previousStatus', old,
							  'isReady', n.is_ready, 'isSchedulable', paas.node_schedulable(n),
							  'updatedAt', paas.iso(n.updated_at));
END
$$;
COMMENT ON FUNCTION api.workers_set_status(jsonb, jsonb) IS
	'PATCH /workers/:nodeId/status {status, reason?}: through the status machine (409 when illegal)';

------------------------------------------------------------------------------
-- Health monitor (job node_monitor, run by the background worker)
------------------------------------------------------------------------------

-- Kubernetes' node-lifecycle controller on silence: Ready and the pressure
-- conditions become Unknown / NodeStatusUnknown; lastHeartbeatTime stays.
CREATE FUNCTION paas.node_conditions_unknown(conds jsonb, at timestamptz) RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN jsonb_typeof(conds) <> 'array' OR jsonb_array_length(conds) = 0 THEN conds
		   ELSE (SELECT jsonb_agg(CASE
					WHEN c ->> 'type' IN ('Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure')
						 AND c ->> 'status' IS DISTINCT FROM 'Unknown'
					THEN c || jsonb_build_object('status', 'Unknown', 'reason', 'NodeStatusUnknown',
												 'message', 'Kubelet stopped posting node status.',
												 'lastTransitionTime', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
					ELSE c END ORDER BY i)
				 FROM jsonb_array_elements(conds) WITH ORDINALITY x(c, i)) END;
COMMENT ON FUNCTION paas.node_conditions_unknown(jsonb, timestamptz) IS
	'conditions of a silent node, as the node-lifecycle controller rewrites them';

-- One pass: ACTIVE nodes silent for the grace period -> NOT_READY; ACTIVE or
-- NOT_READY nodes silent for offline_after -> INACTIVE.  Rows another
-- session holds (a heartbeat in flight) are skipped until the next pass.
CREATE FUNCTION paas.job_node_monitor() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.job_node_monitor() IS
	'health monitor pass: silent nodes -> NOT_READY, then INACTIVE (set-based, SKIP LOCKED)';

INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('node_monitor', 'paas.job_node_monitor', '5 seconds',
	 'marks silent worker nodes NOT_READY, then INACTIVE');

-- Job: the status history of nodes older than paas.node_history_retention
-- (default 90 days; 0 keeps it) is deleted, at most 50,000 rows a run, so
-- that a first run on a long history does not hold one huge transaction.
CREATE FUNCTION paas.job_prune_node_transitions() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.job_prune_node_transitions() IS
	'deletes node status history older than paas.node_history_retention (50,000 rows a run)';
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('prune_node_transitions', 'paas.job_prune_node_transitions', '1 hour',
	 'deletes node status history older than paas.node_history_retention');

------------------------------------------------------------------------------
-- Grants
------------------------------------------------------------------------------

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.workers_register(jsonb, jsonb)', 'api.workers_heartbeat(jsonb, jsonb)',
		'api.workers_heartbeat_batch(jsonb, jsonb)',
		'api.workers_resources(jsonb, jsonb)', 'api.workers_list(jsonb, jsonb)',
		'api.workers_stats(jsonb, jsonb)', 'api.workers_online(jsonb, jsonb)',
		'api.workers_offline(jsonb, jsonb)', 'api.workers_get(jsonb, jsonb)',
		'api.workers_transitions(jsonb, jsonb)', 'api.workers_create(jsonb, jsonb)',
		'api.workers_update(jsonb, jsonb)', 'api.workers_delete(jsonb, jsonb)',
		'api.workers_set_schedulable(jsonb, jsonb)', 'api.workers_set_status(jsonb, jsonb)',
		'api.workers_join_tokens_list(jsonb, jsonb)', 'api.workers_join_tokens_create(jsonb, jsonb)',
		'api.workers_join_tokens_revoke(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	REVOKE ALL ON FUNCTION api.workers_join_token_add(text, text, timestamptz) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION api.workers_join_token_add(text, text, timestamptz) TO paas_owner;
END
$grants$;
-- paas 0.2.0 -- ledger: double-entry accounts, entries and postings of IDR
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
--   * Idempotency: a key is bound to the SHA-256 of the entries it was first
--     used with and to the entries it posted; a retry with the same content
--     returns the first result (rebuilt by paas.ledger_replay) with
--     "replayed": true, other content is PT409.

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

CREATE TABLE paas.ledger_accounts (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind		text NOT NULL CHECK (kind IN ('wallet', 'platform', 'platform_slot')),
	user_id		uuid UNIQUE REFERENCES paas.users (id),
	code		text UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]{1,62}$'),
	parent_id	bigint REFERENCES paas.ledger_accounts (id),
	slot		smallint CHECK (slot BETWEEN 0 AND 15),
	currency	text NOT NULL DEFAULT 'IDR' CHECK (currency = 'IDR'),
	balance		bigint NOT NULL DEFAULT 0,
	created_at	timestamptz NOT NULL DEFAULT now(),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CHECK ((kind = 'wallet') = (user_id IS NOT NULL)),
	CHECK ((kind = 'platform') = (code IS NOT NULL)),
	CHECK ((kind = 'platform_slot') = (parent_id IS NOT NULL AND slot IS NOT NULL)),
	UNIQUE (parent_id, slot),
	CONSTRAINT ledger_wallet_not_negative CHECK (kind <> 'wallet' OR balance >= 0)
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

INSERT INTO paas.ledger_accounts (kind, code) VALUES
	('platform', 'gateway_clearing'),
	('platform', 'revenue'),
	('platform', 'adjustments'),
	('platform', 'refunds');
INSERT INTO paas.ledger_accounts (kind, parent_id, slot)
SELECT 'platform_slot', a.id, s FROM paas.ledger_accounts a, generate_series(0, 15) s
 WHERE a.kind = 'platform' ORDER BY a.id, s;

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
	SET search_path = paas, pg_catalog, public, pg_temp
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
	'PT409 idempotency key reused with other content; returns {replayed, entries: [{id, kind, postings}]}';

-- The user's IDR wallet account, created on first use.  Race-safe: the
-- unique user_id makes concurrent first uses converge on one row.
CREATE FUNCTION paas.wallet_account(user_id uuid) RETURNS bigint
	LANGUAGE plpgsql VOLATILE STRICT
	SET search_path = paas, pg_catalog, public, pg_temp
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
	SET search_path = paas, pg_catalog, public, pg_temp
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
	SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
	IF req ->> 'userId' IS NOT NULL AND paas.to_uuid(req ->> 'userId') IS NULL THEN
		errs := paas.add_err(errs, 'userId', 'userId must be a valid id');
	END IF;
	PERFORM paas.raise_if_invalid(errs);

	lim := coalesce((req ->> 'limit')::int, 20);
	off := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	uid := paas.to_uuid(req ->> 'userId');
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
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
-- answers the first adjustment (per admin: the key is scoped to the caller).
CREATE FUNCTION api.admin_billing_adjust(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
BEGIN
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

	RETURN jsonb_build_object(
		'id', adj.id, 'entryId', adj.entry_id, 'userId', adj.user_id, 'adminId', adj.admin_id,
		'amount', adj.amount, 'currency', 'IDR', 'reason', adj.reason,
		'balanceBefore', (res #>> '{entries,0,postings,0,balanceBefore}')::bigint,
		'balanceAfter', (res #>> '{entries,0,postings,0,balanceAfter}')::bigint,
		'replayed', (res ->> 'replayed')::boolean,
		'createdAt', paas.iso(adj.created_at));
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
-- paas 0.2.0 -- billing: Midtrans top-ups, signed notifications, invoices,
-- the user's transaction feed, dashboards, reconciliation.
--
-- Money moves only through the ledger (40_ledger.sql): paas.ledger_post()
-- with an idempotency key derived from the Midtrans order id, so a credit or
-- a reversal is posted at most once whatever arrives how often.
--
-- Top-ups.  A top-up (paas.topups) is one amount a user wants to add.  Each
-- request to Snap uses a fresh order id (paas.topup_orders): Midtrans allows
-- one transaction per order id, and a Snap call that timed out may or may not
-- have created one.  Every order id of a top-up stays mapped to it, so a
-- payment through any of its links is credited.  Money is counted per order:
-- an order is credited once (key "midtrans:<order>:credit") and reversed up
-- to the cumulative refunded amount (key "midtrans:<order>:reverse:<total>").
--
-- The Snap round trip (POST /billing/topup, POST /transactions/:id/pay) is
-- the one documented exception to "one SQL call per route": the function
-- first answers {"$snap": {...}} (the top-up and its order are committed,
-- PENDING), httpd calls Snap outside any transaction, then calls the SAME
-- function again with ctx.snap = {orderId, token, redirectUrl} or
-- {orderId, error}.  ctx is written by httpd only; a client cannot reach the
-- second step.
--
-- Notifications.  api.billing_webhook_midtrans() verifies signature_key with
-- paas.midtrans_signature_ok() (C, SHA-512, constant-time compare, the key
-- is the superuser-only GUC paas.midtrans_server_key) before anything else.
-- Every notification is recorded in paas.midtrans_notifications (signature
-- included, never the key), bad ones too (committed refusal).  Status rules
-- (reference/midtrans.md): success always wins over non-success, nothing but
-- a refund, a chargeback or a reversal undoes a success, a duplicate changes
-- nothing.  A reversal is a deny or cancel after success (a settlement the
-- bank takes back; a card capture cancelled before settlement); because a
-- late notification of an earlier failed attempt looks the same, a webhook
-- only flags the order and the status API's answer decides (the worker asks
-- at once).  The top-up row is locked FOR UPDATE first, so concurrent
-- deliveries serialize.
--
-- Invoices are numbered INV-YYYYMM-000123 per UTC month from a counter row
-- updated in the issuing transaction (gap-free: a rollback returns the
-- number), immutable once issued (trigger), voided only by a credit note
-- (CN-YYYYMM-000001) that references them.

------------------------------------------------------------------------------
-- C helpers (extension/billing.c)
------------------------------------------------------------------------------

CREATE FUNCTION paas.midtrans_signature_ok(order_id text, status_code text,
										   gross_amount text, signature_key text)
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_midtrans_signature_ok'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.midtrans_signature_ok(text, text, text, text) IS
	'signature_key = hex SHA-512(order_id||status_code||gross_amount||server key), constant time; false when no key is configured';

CREATE FUNCTION paas.midtrans_configured() RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_midtrans_configured'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.midtrans_configured() IS
	'whether paas.midtrans_server_key is set (the key itself is never returned)';

------------------------------------------------------------------------------
-- tables
------------------------------------------------------------------------------

CREATE TABLE paas.topups (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id			uuid NOT NULL REFERENCES paas.users (id),
	amount			bigint NOT NULL CHECK (amount BETWEEN 10000 AND 10000000),
	currency		text NOT NULL DEFAULT 'IDR' CHECK (currency = 'IDR'),
	status			text NOT NULL DEFAULT 'PENDING'
					CHECK (status IN ('PENDING', 'PAID', 'FAILED', 'EXPIRED', 'CANCELLED', 'REFUNDED')),
	order_id		text NOT NULL,		-- the current order (latest Snap attempt)
	idempotency_key text,
	snap_token		text,
	redirect_url	text,
	snap_expires_at timestamptz,
	payment_type	text,
	gateway_status	text,				-- last transaction_status seen
	last_error		text,				-- last Snap failure, for support
	paid_at			timestamptz,
	expires_at		timestamptz NOT NULL DEFAULT now() + interval '24 hours',
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX topups_idem_key ON paas.topups (user_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
CREATE INDEX topups_user_created_idx ON paas.topups (user_id, created_at DESC);
CREATE INDEX topups_pending_idx ON paas.topups (expires_at) WHERE status = 'PENDING';
COMMENT ON TABLE paas.topups IS 'credit top-ups paid through Midtrans Snap';

CREATE TABLE paas.topup_orders (
	order_id		text PRIMARY KEY CHECK (order_id ~ '^[A-Za-z0-9_.~-]{1,50}$'),
	topup_id		uuid NOT NULL REFERENCES paas.topups (id),
	status			text NOT NULL DEFAULT 'PENDING'
					CHECK (status IN ('PENDING', 'PAID', 'FAILED', 'PARTIALLY_REFUNDED', 'REFUNDED')),
	snap_requested_at timestamptz,
	snap_token		text,
	redirect_url	text,
	gateway_status	text,
	gateway_transaction_id text,
	payment_type	text,
	credited		bigint NOT NULL DEFAULT 0 CHECK (credited >= 0),
	reversed		bigint NOT NULL DEFAULT 0 CHECK (reversed >= 0 AND reversed <= credited),
	credit_entry	jsonb,				-- {entryId, balanceBefore, balanceAfter}
	invoice_id		uuid,
	paid_at			timestamptz,
	last_checked_at timestamptz,		-- last status-API check (reconciliation)
	check_error		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	-- a paid order said deny or cancel (a reversal, or an old attempt's
	-- notification arriving late): the status API decides, see midtrans_apply
	verify_requested_at timestamptz
);
CREATE INDEX topup_orders_topup_idx ON paas.topup_orders (topup_id);
CREATE INDEX topup_orders_pending_idx ON paas.topup_orders (created_at) WHERE status = 'PENDING';
COMMENT ON TABLE paas.topup_orders IS
	'one Midtrans order id per Snap attempt of a top-up; money is counted per order';

CREATE TABLE paas.topup_reversals (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	order_id		text NOT NULL REFERENCES paas.topup_orders (order_id),
	topup_id		uuid NOT NULL REFERENCES paas.topups (id),
	user_id			uuid NOT NULL REFERENCES paas.users (id),
	kind			text NOT NULL CHECK (kind IN ('REFUND', 'CHARGEBACK', 'REVERSAL')),
	amount			bigint NOT NULL CHECK (amount > 0),
	status			text NOT NULL CHECK (status IN ('SUCCESS', 'BLOCKED')),
	entry			jsonb,				-- {entryId, balanceBefore, balanceAfter}
	created_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX topup_reversals_user_idx ON paas.topup_reversals (user_id, created_at DESC);
COMMENT ON TABLE paas.topup_reversals IS
	'refunds, chargebacks and reversals (deny / cancel after success) of paid orders; BLOCKED when the wallet could not cover them';

CREATE TABLE paas.midtrans_notifications (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	received_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	source			text NOT NULL CHECK (source IN ('webhook', 'reconcile')),
	order_id		text,
	transaction_status text,
	status_code		text,
	gross_amount	text,
	signature_ok	boolean,
	outcome			text NOT NULL,
	body			jsonb NOT NULL
);
CREATE INDEX midtrans_notifications_order_idx ON paas.midtrans_notifications (order_id, received_at);
COMMENT ON TABLE paas.midtrans_notifications IS
	'every notification and status-API answer received, with what was done about it';

CREATE TABLE paas.invoice_counters (
	series			text NOT NULL CHECK (series IN ('INV', 'CN')),
	period			text NOT NULL CHECK (period ~ '^[0-9]{6}$'),
	last_number		integer NOT NULL CHECK (last_number > 0),
	PRIMARY KEY (series, period)
);
COMMENT ON TABLE paas.invoice_counters IS
	'last number issued per series and UTC month; updated in the issuing transaction';

CREATE TABLE paas.invoices (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	number			text NOT NULL UNIQUE CHECK (number ~ '^(INV|CN)-[0-9]{6}-[0-9]{6,}$'),
	user_id			uuid NOT NULL REFERENCES paas.users (id),
	kind			text NOT NULL CHECK (kind IN ('TOPUP', 'SUBSCRIPTION', 'CREDIT_NOTE')),
	amount			bigint NOT NULL,
	currency		text NOT NULL DEFAULT 'IDR' CHECK (currency = 'IDR'),
	status			text NOT NULL DEFAULT 'PAID' CHECK (status IN ('PAID', 'VOID', 'ISSUED')),
	description		text NOT NULL,
	lines			jsonb NOT NULL,
	ref				jsonb NOT NULL DEFAULT '{}',
	topup_id		uuid REFERENCES paas.topups (id),
	credit_note_for uuid REFERENCES paas.invoices (id),
	voided_by		uuid REFERENCES paas.invoices (id),
	download_count	integer NOT NULL DEFAULT 0,
	issued_at		timestamptz NOT NULL DEFAULT now(),
	paid_at			timestamptz,
	CHECK ((kind = 'CREDIT_NOTE') = (credit_note_for IS NOT NULL)),
	CHECK ((kind = 'CREDIT_NOTE') = (amount < 0))
);
CREATE INDEX invoices_user_issued_idx ON paas.invoices (user_id, issued_at DESC);
CREATE UNIQUE INDEX invoices_one_credit_note ON paas.invoices (credit_note_for)
	WHERE credit_note_for IS NOT NULL;
COMMENT ON TABLE paas.invoices IS
	'invoices and credit notes; immutable once issued except voided_by/status and download_count';

-- Issued invoices never change: the only updates allowed are the void
-- (status -> VOID with voided_by set, once) and the download counter.
CREATE FUNCTION paas.invoices_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.invoices_guard() IS 'keeps issued invoices immutable';
CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON paas.invoices
	FOR EACH ROW EXECUTE FUNCTION paas.invoices_guard();

-- Money records are data, not extension objects: pg_dump must keep them.
SELECT pg_catalog.pg_extension_config_dump('paas.topups', '');
SELECT pg_catalog.pg_extension_config_dump('paas.topup_orders', '');
SELECT pg_catalog.pg_extension_config_dump('paas.topup_reversals', '');
SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_notifications', '');
SELECT pg_catalog.pg_extension_config_dump('paas.invoice_counters', '');
SELECT pg_catalog.pg_extension_config_dump('paas.invoices', '');

------------------------------------------------------------------------------
-- invoices
------------------------------------------------------------------------------

-- The one numbering path of invoices and credit notes.  Reserves k
-- consecutive numbers of a series in the current UTC month and returns the
-- last number issued before them (the block is base + 1 .. base + k).  The
-- counter row is created or locked by the upsert and stays locked until
-- commit, so concurrent issuers queue, numbers are strictly sequential and
-- a rolled-back issue leaves no gap.
CREATE FUNCTION paas.reserve_invoice_numbers(series text, k integer) RETURNS integer
	LANGUAGE plpgsql VOLATILE STRICT
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.reserve_invoice_numbers(text, integer) IS
	'reserves k gap-free numbers of series INV or CN in this transaction; returns the number before the block';

-- How numbers print: series, UTC month, the number zero-padded to at least
-- six digits (INV-YYYYMM-NNNNNN).  The prefix is computed once per call.
CREATE FUNCTION paas.invoice_number_prefix(series text) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN series || '-' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMM') || '-';
COMMENT ON FUNCTION paas.invoice_number_prefix(text) IS
	'SERIES-YYYYMM- of the current UTC month';
CREATE FUNCTION paas.invoice_number(prefix text, n integer) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN prefix || lpad(n::text, greatest(6, length(n::text)), '0');
COMMENT ON FUNCTION paas.invoice_number(text, integer) IS
	'number n printed after its prefix, zero-padded to at least six digits';

-- Next number of a series (one-number block).
CREATE FUNCTION paas.next_invoice_number(series text) RETURNS text
	LANGUAGE sql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
	RETURN paas.invoice_number(paas.invoice_number_prefix(series), paas.reserve_invoice_numbers(series, 1) + 1);
COMMENT ON FUNCTION paas.next_invoice_number(text) IS
	'allocates the next gap-free number of series INV or CN in this transaction';

CREATE FUNCTION paas.invoice_json(i paas.invoices) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
	RETURN jsonb_build_object(
		'id', i.id, 'invoiceNumber', i.number, 'type', i.kind, 'amount', i.amount,
		'currency', i.currency, 'status', i.status, 'description', i.description,
		'lines', i.lines, 'reference', i.ref, 'topUpTransactionId', i.topup_id,
		'creditNoteFor', i.credit_note_for, 'voidedBy', i.voided_by,
		'downloadCount', i.download_count, 'issuedAt', paas.iso(i.issued_at),
		'dueDate', paas.iso(i.issued_at), 'paidAt', paas.iso(i.paid_at),
		'createdAt', paas.iso(i.issued_at));
COMMENT ON FUNCTION paas.invoice_json(paas.invoices) IS 'an invoice as the API prints it';

-- The field errors of invoice items (see paas.issue_invoices), every failing
-- field of every item, as items[i].field with i counted from 0; [] when all
-- are valid.  The slow, complete check, run only once the cheap checks of
-- paas.issue_invoices or paas.issue_invoice_items have found something wrong.
CREATE FUNCTION paas.invoice_item_errors(items jsonb) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
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
COMMENT ON FUNCTION paas.invoice_item_errors(jsonb) IS
	'every field error of invoice items [{userId, kind, amount, ref, lines}] as [{field, message}]';

-- An invoice to issue, as SQL callers hand it to paas.issue_invoice_items.
CREATE TYPE paas.invoice_item AS (
	user_id			uuid,
	kind			text,
	amount			bigint,
	ref				jsonb,
	lines			jsonb
);
COMMENT ON TYPE paas.invoice_item IS
	'an invoice to issue: the fields of paas.issue_invoices'' items, typed';

-- Typed items as the JSON items of paas.issue_invoices (for the error report).
CREATE FUNCTION paas.invoice_items_json(items paas.invoice_item[]) RETURNS jsonb
	LANGUAGE sql IMMUTABLE
	RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('userId', i.user_id, 'kind', i.kind,
														 'amount', i.amount, 'ref', i.ref, 'lines', i.lines)
									  ORDER BY i.n), '[]')
			  FROM unnest(items) WITH ORDINALITY AS i (user_id, kind, amount, ref, lines, n));
COMMENT ON FUNCTION paas.invoice_items_json(paas.invoice_item[]) IS
	'typed invoice items as JSON items [{userId, kind, amount, ref, lines}]';

-- Raises PT400 with the field errors of items (it is only called once one
-- of them failed the check of paas.issue_invoice_items).
CREATE FUNCTION paas.invoice_items_refuse(items paas.invoice_item[]) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
BEGIN
	PERFORM paas.raise_if_invalid(paas.invoice_item_errors(paas.invoice_items_json(items)));
	RAISE EXCEPTION 'invoice item refused without a field error' USING ERRCODE = 'internal_error';
END
$$;
COMMENT ON FUNCTION paas.invoice_items_refuse(paas.invoice_item[]) IS
	'raises PT400 listing every field error of invoice items';

-- Issues paid invoices, set-based: the one implementation behind
-- paas.issue_invoices (JSON items) and paas.issue_invoice (one invoice);
-- SQL callers with many rows (the renewal run) call it with an array built
-- by array_agg, which is much cheaper than building a JSON array.
-- items[i] (from 1): kind TOPUP or SUBSCRIPTION; amount > 0 (IDR); user_id
-- an existing user; ref a JSON object ({} when NULL); lines
-- [{description, quantity, unitPrice, amount}] summing to amount (one line
-- of the whole amount when NULL or empty; the first line describes the
-- invoice).  PT400 lists every failing field of every item as
-- items[i].field, i counted from 0 as in JSON, and issues nothing.  The k
-- invoices get one contiguous block of numbers INV-YYYYMM-NNNNNN of the
-- current UTC month, in item order, reserved with one counter update, and
-- are inserted with one statement.  Returns them in item order; an empty or
-- NULL array issues nothing and does not touch the counter.  ids, when
-- given, are the invoices' ids (ids[i] for items[i], as many as items): a
-- caller that must record an invoice id before issuing the block (the
-- renewal run writes its charge rows batch by batch) draws them itself.
-- Speed (the renewal run issues 100,000 at once): the insert itself checks
-- each item cheaply (the usual one-line invoice without a subquery), the
-- user's existence is the foreign key's check; only when something fails
-- are the complete errors computed (paas.invoice_items_refuse).  An error
-- rolls back the counter update with the rest, so numbers stay gap-free.
CREATE FUNCTION paas.issue_invoice_items(items paas.invoice_item[], ids uuid[] DEFAULT NULL)
	RETURNS SETOF paas.invoices
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.issue_invoice_items(paas.invoice_item[], uuid[]) IS
	'issues PAID invoices numbered as one contiguous block, in one statement (ids: their ids, drawn by the caller, '
	'or NULL); PT400 names the failing items[i].field';

-- The same, for JSON items [{userId, kind, amount, ref, lines}] (amount an
-- integer, userId a user id): PT400 when items is not an array or an item
-- is malformed, with every failing field as items[i].field.
CREATE FUNCTION paas.issue_invoices(items jsonb) RETURNS SETOF paas.invoices
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.issue_invoices(jsonb) IS
	'issues PAID invoices [{userId, kind, amount, ref, lines}] numbered as one contiguous block, in one statement; '
	'PT400 names the failing items[i].field';

-- One invoice through paas.issue_invoice_items (so there is one numbering
-- path); PT400 fields are named items[0].field.  Returns the invoice as the API
-- prints it.
CREATE FUNCTION paas.issue_invoice(user_id uuid, kind text, amount bigint, ref jsonb,
								   lines jsonb DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE sql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
	RETURN (SELECT paas.invoice_json(i)
			  FROM paas.issue_invoice_items(ARRAY[ROW(issue_invoice.user_id, issue_invoice.kind,
				issue_invoice.amount, issue_invoice.ref, issue_invoice.lines)::paas.invoice_item]) i);
COMMENT ON FUNCTION paas.issue_invoice(uuid, text, bigint, jsonb, jsonb) IS
	'issues one PAID invoice numbered INV-YYYYMM-NNNNNN in the calling transaction (paas.issue_invoice_items)';

-- Voids an invoice by issuing its credit note (CN-YYYYMM-NNNNNN, negative
-- amount).  Returns the credit note; PT404 unknown invoice, PT409 when it is
-- already void or is itself a credit note.
CREATE FUNCTION paas.void_invoice(invoice_id uuid, reason text) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.void_invoice(uuid, text) IS
	'voids an invoice by issuing its credit note; PT404 / PT409';

------------------------------------------------------------------------------
-- top-ups: creation and the Snap round trip
------------------------------------------------------------------------------

-- A fresh URL-safe order id (Midtrans: at most 50 of [A-Za-z0-9_.~-]).
CREATE FUNCTION paas.new_order_id(uid uuid) RETURNS text
	LANGUAGE sql VOLATILE
	RETURN 'TOPUP-' || upper(substr(replace(uid::text, '-', ''), 1, 8)) || '-'
		   || (extract(epoch FROM clock_timestamp()) * 1000)::bigint || '-'
		   || upper(encode(gen_random_bytes(4), 'hex'));
COMMENT ON FUNCTION paas.new_order_id(uuid) IS 'TOPUP-<user>-<ms>-<random>, unique and URL-safe';

CREATE FUNCTION paas.topup_json(t paas.topups) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
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

-- Snap link lifetime: shorter than the top-up's 24 h, so /pay can renew it.
CREATE FUNCTION paas.snap_link_minutes() RETURNS integer
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN 60;
COMMENT ON FUNCTION paas.snap_link_minutes() IS 'lifetime of one Snap payment link, minutes';

-- Step 1 of the Snap round trip for a locked PENDING top-up: its live link
-- when it has one, otherwise {"$snap": request} for httpd, on an order id
-- that was never sent to Snap (a new one when the current one was).
CREATE FUNCTION paas.topup_snap_step(t paas.topups, u paas.users) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.topup_snap_step(paas.topups, paas.users) IS
	'the live Snap link of a top-up, or the {"$snap"} request httpd must send';

-- Step 2: httpd's outcome of the Snap call (ctx.snap).  Stores token and
-- link on success; on failure records the error and answers a committed
-- PT502 (the top-up stays PENDING and can be retried).
CREATE FUNCTION paas.topup_snap_result(u paas.users, snap jsonb) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.topup_snap_result(paas.users, jsonb) IS
	'stores the Snap token of an order, or records the failure (committed PT502)';

CREATE FUNCTION api.billing_topup(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	t paas.topups;
	errs jsonb := '[]';
	key text := ctx ->> 'idempotencyKey';
	amt bigint;
BEGIN
	IF ctx ? 'snap' THEN
		RETURN paas.topup_snap_result(u, ctx -> 'snap');
	END IF;
	req := paas.require_object(req);
	IF jsonb_typeof(req -> 'amount') = 'string' THEN
		errs := paas.add_err(errs, 'amount', 'amount must be a number');
	ELSE
		errs := paas.check_int(errs, req, 'amount', true, 10000, 10000000);
	END IF;
	errs := paas.check_enum(errs, req, 'currency', false, ARRAY['IDR']);
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
			RETURN paas.topup_snap_step(t, u);
		END IF;
	ELSE
		INSERT INTO paas.topups (user_id, amount, order_id)
		VALUES (u.id, amt, paas.new_order_id(u.id))
		RETURNING * INTO t;
	END IF;
	INSERT INTO paas.topup_orders (order_id, topup_id) VALUES (t.order_id, t.id);
	RETURN paas.topup_snap_step(t, u);
END
$$;
COMMENT ON FUNCTION api.billing_topup(jsonb, jsonb) IS
	'POST /billing/topup {amount, currency}: PENDING top-up + Snap link (two-step, see file header)';

CREATE FUNCTION api.billing_transaction_pay(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	t paas.topups;
BEGIN
	IF ctx ? 'snap' THEN
		RETURN paas.topup_snap_result(u, ctx -> 'snap');
	END IF;
	SELECT * INTO t FROM paas.topups
	 WHERE id = paas.to_uuid(req ->> 'id') AND user_id = u.id FOR UPDATE;
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
		RETURN paas.refusal('PT409', 'Transaction has expired. Please create a new top-up.');
	END IF;
	RETURN paas.topup_snap_step(t, u);
END
$$;
COMMENT ON FUNCTION api.billing_transaction_pay(jsonb, jsonb) IS
	'POST /billing/transactions/:id/pay: the live Snap link of a pending top-up, or a new one';

CREATE FUNCTION api.billing_topups(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
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
$$;
COMMENT ON FUNCTION api.billing_topups(jsonb, jsonb) IS 'GET /billing/topup: page, limit, status';

CREATE FUNCTION api.billing_topup_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.billing_topup_get(jsonb, jsonb) IS 'GET /billing/topup/:id (owner only)';

------------------------------------------------------------------------------
-- applying Midtrans statuses
------------------------------------------------------------------------------

-- Posts one entry between gateway clearing and the user's wallet (delta > 0
-- credits the wallet) and returns the wallet posting {entryId,
-- balanceBefore, balanceAfter}.  Errors of paas.ledger_post() propagate.
CREATE FUNCTION paas.topup_post(key text, kind text, memo text, ref jsonb, uid uuid, delta bigint)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.topup_post(text, text, text, jsonb, uuid, bigint) IS
	'one ledger entry gateway_clearing <-> wallet; returns the wallet posting';

-- Records a notification (or status answer) and its outcome.
CREATE FUNCTION paas.midtrans_log(n jsonb, source text, sig_ok boolean, outcome text) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
	BEGIN ATOMIC
		INSERT INTO paas.midtrans_notifications
			(source, order_id, transaction_status, status_code, gross_amount, signature_ok, outcome, body)
		VALUES (source, left(n ->> 'order_id', 100), left(n ->> 'transaction_status', 50),
				left(n ->> 'status_code', 10), left(n ->> 'gross_amount', 30), sig_ok, outcome, n);
	END;
COMMENT ON FUNCTION paas.midtrans_log(jsonb, text, boolean, text) IS
	'appends to paas.midtrans_notifications';

-- Credits a paid order once: ledger entry, invoice, order and top-up state.
-- The caller holds the top-up's row lock.
CREATE FUNCTION paas.topup_credit_order(t paas.topups, o paas.topup_orders, n jsonb) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.topup_credit_order(paas.topups, paas.topup_orders, jsonb) IS
	'credits a paid order exactly once (ledger, invoice, states); caller holds the top-up lock';

-- Reverses a paid order up to "target" (cumulative) and returns the outcome.
CREATE FUNCTION paas.topup_reverse_order(t paas.topups, o paas.topup_orders, target bigint,
										 kind text) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	delta bigint := least(target, o.credited) - o.reversed;
	posting jsonb;
	st text := 'SUCCESS';
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
	INSERT INTO paas.topup_reversals (order_id, topup_id, user_id, kind, amount, status, entry)
	VALUES (o.order_id, t.id, t.user_id, kind, delta, st, posting);
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
$$;
COMMENT ON FUNCTION paas.topup_reverse_order(paas.topups, paas.topup_orders, bigint, text) IS
	'reverses a paid order up to a cumulative amount, once (BLOCKED when the wallet is short)';

-- Applies one Midtrans status (a verified notification, or a status-API
-- answer) to its order.  Returns {orderId, status, outcome}; outcome is one
-- of credited, duplicate, pending, failed, ignored_after_success,
-- verifying_reversal, reversed, reversal_blocked, unknown_order,
-- amount_mismatch, inconsistent_status, ignored.
CREATE FUNCTION paas.midtrans_apply(n jsonb, source text) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	t paas.topups;
	o paas.topup_orders;
	st text := n ->> 'transaction_status';
	fraud text := coalesce(n ->> 'fraud_status', 'accept');
	action text;
	outcome text;
	refund numeric;
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
		-- a refund implies a payment: credit first, so that a settlement
		-- arriving after its refund finds nothing left to do
		PERFORM paas.topup_credit_order(t, o, n);
		SELECT * INTO o FROM paas.topup_orders WHERE order_id = o.order_id;
		SELECT * INTO t FROM paas.topups WHERE id = t.id;
		outcome := 'credited';
	ELSIF action = 'success' THEN
		outcome := 'duplicate';
	END IF;

	IF action = 'reverse' THEN
		IF st LIKE 'partial_%' THEN
			IF coalesce(n ->> 'refund_amount', '') !~ '^[0-9]{1,15}(\.[0-9]{1,2})?$' THEN
				outcome := 'ignored';
			ELSE
				refund := floor((n ->> 'refund_amount')::numeric);
				outcome := paas.topup_reverse_order(t, o, refund::bigint,
					CASE WHEN st LIKE '%chargeback' THEN 'CHARGEBACK' ELSE 'REFUND' END);
			END IF;
		ELSE
			outcome := paas.topup_reverse_order(t, o, o.credited,
				CASE WHEN st = 'chargeback' THEN 'CHARGEBACK' ELSE 'REFUND' END);
		END IF;
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
		IF o.credited > 0 AND (st IN ('deny', 'cancel') OR fraud = 'deny') THEN
			IF source = 'webhook' THEN
				-- a reversal, or an old attempt's late notification: the
				-- status API decides (the worker claims flagged orders at once)
				outcome := 'verifying_reversal';
				UPDATE paas.topup_orders SET verify_requested_at = now() WHERE order_id = o.order_id;
			ELSE
				outcome := paas.topup_reverse_order(t, o, o.credited, 'REVERSAL');
			END IF;
		ELSIF o.credited > 0 THEN
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
$$;
COMMENT ON FUNCTION paas.midtrans_apply(jsonb, text) IS
	'applies a Midtrans status to its order exactly once; caller verified its origin';

CREATE FUNCTION api.billing_webhook_midtrans(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
		PERFORM paas.midtrans_log(req, 'webhook', false, 'bad_signature');
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
$$;
COMMENT ON FUNCTION api.billing_webhook_midtrans(jsonb, jsonb) IS
	'POST /billing/webhooks/midtrans (public): verified Midtrans notification, applied exactly once';

------------------------------------------------------------------------------
-- reconciliation (bgworker/reconcile.c) and expiry
------------------------------------------------------------------------------

-- Claims up to "n" orders for a status-API check: pending orders of pending
-- top-ups whose last check (or creation) is older than "age", and orders
-- flagged for a reversal check (at once, then every "age" until answered);
-- marks them checked so that a concurrent pass skips them.  Called in its
-- own short transaction.
CREATE FUNCTION paas.billing_reconcile_claim(age interval, n integer) RETURNS SETOF text
	LANGUAGE sql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
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
COMMENT ON FUNCTION paas.billing_reconcile_claim(interval, integer) IS
	'orders due for a status-API check (pending ones, and paid ones flagged for a reversal), marked as checked';

-- Applies one status-API answer (HTTP status, body text; http_status 0 =
-- transport failure).  Never raises: failures are recorded on the order.
CREATE FUNCTION paas.billing_reconcile_apply(order_id text, http_status integer, body text)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.billing_reconcile_apply(text, integer, text) IS
	'applies a status-API answer for an order; records failures instead of raising';

-- Job: pending top-ups past expires_at become EXPIRED.  A payment that
-- still arrives later is credited (success wins).
CREATE FUNCTION paas.job_billing_expire_topups() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.job_billing_expire_topups() IS 'expires pending top-ups past 24 h';
INSERT INTO paas.job (name, fn, run_every, description) VALUES
	('billing_expire_topups', 'paas.job_billing_expire_topups', '1 minute',
	 'pending top-ups past their 24 h become EXPIRED');

------------------------------------------------------------------------------
-- the transaction feed
------------------------------------------------------------------------------

-- Every money movement of a user, newest first: top-ups (any status, with
-- the credit posting when paid), their refunds/chargebacks, and every other
-- ledger entry on the wallet (charges, adjustments ...) when the ledger's
-- posting view exists.
CREATE FUNCTION paas.billing_feed(uid uuid)
	RETURNS TABLE (id text, created_at timestamptz, type text, status text, amount bigint,
				   direction text, description text, balance_before bigint, balance_after bigint,
				   reference text, reference_type text, payment_method text,
				   payment_gateway text, invoice jsonb, topup_id uuid)
	LANGUAGE sql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
	BEGIN ATOMIC
		SELECT t.id::text, t.created_at, 'TOPUP',
			   CASE t.status WHEN 'PAID' THEN 'SUCCESS' ELSE t.status END,
			   t.amount, 'CREDIT', 'Account top-up via payment gateway',
			   (o.credit_entry ->> 'balanceBefore')::bigint, (o.credit_entry ->> 'balanceAfter')::bigint,
			   t.id::text, 'TOP_UP_TRANSACTION', t.payment_type, 'MIDTRANS',
			   (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
				  FROM paas.invoices i WHERE i.topup_id = t.id AND i.kind = 'TOPUP'
				 ORDER BY i.issued_at LIMIT 1),
			   t.id
		  FROM paas.topups t
		  LEFT JOIN LATERAL (SELECT x.credit_entry FROM paas.topup_orders x
							  WHERE x.topup_id = t.id AND x.credit_entry IS NOT NULL
							  ORDER BY x.paid_at LIMIT 1) o ON true
		 WHERE t.user_id = uid
		UNION ALL
		-- a second paid order of one top-up (two of its links were paid)
		SELECT o.order_id, o.paid_at, 'TOPUP', 'SUCCESS', o.credited, 'CREDIT',
			   'Additional payment of top-up ' || t.id,
			   (o.credit_entry ->> 'balanceBefore')::bigint, (o.credit_entry ->> 'balanceAfter')::bigint,
			   t.id::text, 'TOP_UP_TRANSACTION', o.payment_type, 'MIDTRANS',
			   (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
				  FROM paas.invoices i WHERE i.id = o.invoice_id),
			   t.id
		  FROM paas.topup_orders o
		  JOIN paas.topups t ON t.id = o.topup_id
		 WHERE t.user_id = uid AND o.credited > 0
		   AND o.order_id <> (SELECT x.order_id FROM paas.topup_orders x
							   WHERE x.topup_id = t.id AND x.credit_entry IS NOT NULL
							   ORDER BY x.paid_at LIMIT 1)
		UNION ALL
		SELECT r.id::text, r.created_at, 'REFUND',
			   CASE r.status WHEN 'SUCCESS' THEN 'SUCCESS' ELSE 'PENDING' END,
			   r.amount, 'DEBIT', initcap(lower(r.kind)) || ' of top-up ' || r.order_id,
			   (r.entry ->> 'balanceBefore')::bigint, (r.entry ->> 'balanceAfter')::bigint,
			   r.topup_id::text, 'TOP_UP_TRANSACTION', NULL, 'MIDTRANS', NULL, r.topup_id
		  FROM paas.topup_reversals r
		 WHERE r.user_id = uid
		UNION ALL
		-- every other movement of the wallet: charges, adjustments, reversals
		SELECT e.id::text, e.created_at,
			   CASE WHEN e.kind = 'adjustment' THEN 'ADJUSTMENT'
					WHEN e.kind = 'reversal' OR e.kind LIKE '%refund%' THEN 'REFUND'
					ELSE 'SERVICE_PURCHASE' END,
			   'SUCCESS', abs(p.amount), CASE WHEN p.amount > 0 THEN 'CREDIT' ELSE 'DEBIT' END,
			   coalesce(nullif(e.memo, ''), e.kind), p.balance_before, p.balance_after,
			   coalesce(e.ref ->> 'subscriptionId', e.ref ->> 'reverses', e.id::text),
			   upper(e.kind), 'CREDIT_BALANCE', 'BALANCE',
			   (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number, 'status', i.status)
				  FROM paas.invoices i WHERE i.ref ->> 'entryId' = e.id::text
				 ORDER BY i.issued_at LIMIT 1),
			   NULL::uuid
		  FROM paas.ledger_accounts a
		  JOIN paas.ledger_postings p ON p.account_id = a.id
		  JOIN paas.ledger_entries e ON e.id = p.entry_id
		 WHERE a.user_id = uid AND e.kind NOT IN ('topup', 'topup_refund', 'topup_chargeback', 'topup_reversal');
	END;
COMMENT ON FUNCTION paas.billing_feed(uuid) IS 'every money movement of a user (unordered)';

CREATE FUNCTION paas.feed_json(f record) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
BEGIN
	RETURN jsonb_build_object(
		'id', f.id, 'date', paas.iso(f.created_at), 'createdAt', paas.iso(f.created_at),
		'type', f.type, 'description', f.description, 'amount', f.amount, 'currency', 'IDR',
		'direction', f.direction,
		'status', f.status, 'balanceBefore', f.balance_before, 'balanceAfter', f.balance_after,
		'reference', f.reference, 'referenceType', f.reference_type,
		'paymentMethod', f.payment_method, 'paymentGateway', f.payment_gateway,
		'invoice', f.invoice,
		'actions', jsonb_build_object(
			'canPay', f.type = 'TOPUP' AND f.status = 'PENDING',
			'canCancel', false,
			'canDownloadInvoice', coalesce(f.invoice ->> 'status' = 'PAID', false)));
END
$$;
COMMENT ON FUNCTION paas.feed_json(record) IS 'a feed row as the API prints it';

-- startDate / endDate: ISO dates or timestamps, both optional, start <= end.
CREATE FUNCTION paas.check_date_range(errs jsonb, req jsonb) RETURNS jsonb
	LANGUAGE plpgsql STABLE
AS $$
DECLARE
	f text;
	s timestamptz;
	e timestamptz;
BEGIN
	FOREACH f IN ARRAY ARRAY['startDate', 'endDate'] LOOP
		IF req ? f THEN
			BEGIN
				IF req ->> f !~ '^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}(:?\d{2})?)?)?$' THEN
					RAISE EXCEPTION 'bad';
				END IF;
				PERFORM (req ->> f)::timestamptz;
			EXCEPTION WHEN OTHERS THEN
				errs := paas.add_err(errs, f, f || ' must be an ISO 8601 date');
			END;
		END IF;
	END LOOP;
	IF jsonb_array_length(errs) = 0 AND req ? 'startDate' AND req ? 'endDate' THEN
		s := (req ->> 'startDate')::timestamptz;
		e := (req ->> 'endDate')::timestamptz;
		IF s > e THEN
			errs := paas.add_err(errs, 'startDate', 'Start date must be before end date');
		END IF;
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_date_range(jsonb, jsonb) IS
	'appends errors for invalid startDate / endDate';

-- The upper bound of endDate: a bare date includes that whole day.
CREATE FUNCTION paas.range_end(v text) RETURNS timestamptz
	LANGUAGE sql STABLE
	RETURN CASE WHEN v IS NULL THEN 'infinity'::timestamptz
				WHEN v ~ '^\d{4}-\d{2}-\d{2}$' THEN v::date + interval '1 day' - interval '1 microsecond'
				ELSE v::timestamptz END;
COMMENT ON FUNCTION paas.range_end(text) IS 'inclusive end of a date-range filter';

CREATE FUNCTION api.billing_transactions(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
	errs := paas.check_enum(errs, req, 'type', false,
		ARRAY['TOPUP', 'SERVICE_PURCHASE', 'REFUND', 'ADJUSTMENT']);
	errs := paas.check_enum(errs, req, 'status', false,
		ARRAY['PENDING', 'SUCCESS', 'FAILED', 'CANCELLED', 'EXPIRED', 'REFUNDED']);
	errs := paas.check_date_range(errs, req);
	PERFORM paas.raise_if_invalid(errs);
	lim := coalesce((req ->> 'limit')::int, 20);
	s := coalesce((req ->> 'startDate')::timestamptz, '-infinity');
	e := paas.range_end(req ->> 'endDate');

	SELECT count(*), coalesce(jsonb_agg(paas.feed_json(f) ORDER BY f.created_at DESC, f.id)
			 FILTER (WHERE f.rn > (coalesce((req ->> 'page')::int, 1) - 1) * lim
						AND f.rn <= coalesce((req ->> 'page')::int, 1) * lim), '[]')
	  INTO total, rows
	  FROM (SELECT b.*, row_number() OVER (ORDER BY b.created_at DESC, b.id) AS rn
			  FROM paas.billing_feed(u.id) b
			 WHERE (req ->> 'type' IS NULL OR b.type = req ->> 'type')
			   AND (req ->> 'status' IS NULL OR b.status = req ->> 'status')
			   AND b.created_at BETWEEN s AND e) f;
	pg := paas.pagination(req, total, 20);
	RETURN jsonb_build_object('data', jsonb_build_object('transactions', rows, 'pagination', pg),
							  'pagination', pg);
END
$$;
COMMENT ON FUNCTION api.billing_transactions(jsonb, jsonb) IS
	'GET /billing/transactions: page, limit, type, status, startDate, endDate';

CREATE FUNCTION api.billing_transaction_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	res jsonb;
BEGIN
	SELECT paas.feed_json(f) INTO res FROM paas.billing_feed(u.id) f WHERE f.id = req ->> 'id';
	IF res IS NULL THEN
		RAISE EXCEPTION 'Transaction not found' USING ERRCODE = 'PT404';
	END IF;
	RETURN res || jsonb_build_object('user', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email));
END
$$;
COMMENT ON FUNCTION api.billing_transaction_get(jsonb, jsonb) IS
	'GET /billing/transactions/:id (owner only)';

------------------------------------------------------------------------------
-- invoices over HTTP
------------------------------------------------------------------------------

CREATE FUNCTION api.billing_invoices(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
	SELECT coalesce(jsonb_agg(paas.invoice_json(x) ORDER BY x.issued_at DESC, x.number DESC), '[]')
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
$$;
COMMENT ON FUNCTION api.billing_invoices(jsonb, jsonb) IS
	'GET /billing/invoices: page, limit, type, status, startDate, endDate';

CREATE FUNCTION paas.invoice_detail(i paas.invoices, u paas.users) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
	RETURN paas.invoice_json(i) || jsonb_build_object(
		'user', jsonb_build_object('id', u.id, 'name', u.name, 'email', u.email),
		'topUpTransaction', (SELECT jsonb_build_object('id', t.id, 'orderId', t.order_id,
													   'paymentType', t.payment_type)
							   FROM paas.topups t WHERE t.id = i.topup_id),
		'creditNoteFor', (SELECT jsonb_build_object('id', c.id, 'invoiceNumber', c.number)
							FROM paas.invoices c WHERE c.id = i.credit_note_for),
		'voidedBy', (SELECT jsonb_build_object('id', c.id, 'invoiceNumber', c.number)
					   FROM paas.invoices c WHERE c.id = i.voided_by));
COMMENT ON FUNCTION paas.invoice_detail(paas.invoices, paas.users) IS
	'an invoice with its user, top-up and credit-note links';

CREATE FUNCTION api.billing_invoice_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.billing_invoice_get(jsonb, jsonb) IS 'GET /billing/invoices/:id (owner only)';

-- The data httpd renders as the PDF (httpd/invoice_pdf.c); counts the download.
CREATE FUNCTION api.billing_invoice_pdf(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.billing_invoice_pdf(jsonb, jsonb) IS
	'GET /billing/invoices/:id/pdf: the invoice to render (owner only); counts downloads';

------------------------------------------------------------------------------
-- dashboards, health
------------------------------------------------------------------------------

CREATE FUNCTION api.billing_dashboard_overview(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}')
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
	SELECT count(*), coalesce(jsonb_agg(paas.feed_json(f) ORDER BY f.created_at DESC, f.id)
							   FILTER (WHERE f.rn <= 5), '[]')
	  INTO total, recent
	  FROM (SELECT b.*, row_number() OVER (ORDER BY b.created_at DESC, b.id) AS rn
			  FROM paas.billing_feed(u.id) b) f;
	RETURN jsonb_build_object(
		'balance', jsonb_build_object('current', bal, 'currency', 'IDR',
									  'lastUpdated', paas.iso(now())),
		'pendingTopUps', jsonb_build_object('count', pcount, 'totalAmount', pamount,
											'transactions', pending),
		'recentTransactions', recent,
		'summary', jsonb_build_object('availableBalance', bal, 'pendingAmount', pamount,
									  'totalTransactions', total));
END
$$;
COMMENT ON FUNCTION api.billing_dashboard_overview(jsonb, jsonb) IS
	'GET /billing/dashboard/overview: balance, pending top-ups, recent movements';

CREATE FUNCTION api.billing_dashboard_analytics(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}')
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.billing_dashboard_analytics(jsonb, jsonb) IS
	'GET /billing/dashboard/analytics: totals by type/status and by day (startDate, endDate)';

CREATE FUNCTION api.billing_health(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
	RETURN jsonb_build_object('status', 'healthy', 'service', 'billing', 'version', '1.0.0',
							  'database', 'up', 'gatewayConfigured', paas.midtrans_configured(),
							  'timestamp', paas.iso(now()));
COMMENT ON FUNCTION api.billing_health(jsonb, jsonb) IS 'GET /billing/health (public)';

------------------------------------------------------------------------------
-- reporting
------------------------------------------------------------------------------

CREATE VIEW reporting.topups_by_status AS
	SELECT t.status,
		   count(*) AS topups,
		   coalesce(sum(t.amount), 0)::bigint AS amount,
		   min(t.created_at) AS oldest,
		   max(t.created_at) AS newest,
		   (SELECT count(*) FROM paas.topup_reversals r
			 JOIN paas.topups t2 ON t2.id = r.topup_id
			WHERE t2.status = t.status AND r.status = 'BLOCKED') AS blocked_reversals
	  FROM paas.topups t
	 GROUP BY t.status;
COMMENT ON VIEW reporting.topups_by_status IS
	'top-ups per status: count, amount, age range, reversals the wallet could not cover';
GRANT SELECT ON reporting.topups_by_status TO paas_bi, paas_owner;

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.billing_topup(jsonb, jsonb)', 'api.billing_transaction_pay(jsonb, jsonb)',
		'api.billing_topups(jsonb, jsonb)', 'api.billing_topup_get(jsonb, jsonb)',
		'api.billing_webhook_midtrans(jsonb, jsonb)', 'api.billing_transactions(jsonb, jsonb)',
		'api.billing_transaction_get(jsonb, jsonb)', 'api.billing_invoices(jsonb, jsonb)',
		'api.billing_invoice_get(jsonb, jsonb)', 'api.billing_invoice_pdf(jsonb, jsonb)',
		'api.billing_dashboard_overview(jsonb, jsonb)',
		'api.billing_dashboard_analytics(jsonb, jsonb)', 'api.billing_health(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;
-- paas 0.2.0 -- subscriptions paid from the wallet, renewed by pg_cron.
--
-- Rules a reader must know.
--   * Status changes go through paas.subscription_transition(status, event),
--     the C table of extension/subscriptions.c (ACTIVE, GRACE, SUSPENDED,
--     CANCELLED, EXPIRED); an illegal one raises PT409.  Every change of
--     status is recorded in paas.subscription_events with actor and reason.
--   * Periods.  Period n of a subscription runs from anchor + (n - a) months
--     to anchor + (n - a + 1) months, where anchor_at / anchor_period (a) are
--     fixed at the sale and reset only by a revival (renewing a SUSPENDED,
--     EXPIRED or ended CANCELLED subscription starts a new anchor at now).
--     Months are added in UTC, so Jan 31 -> Feb 29 -> Mar 31: chained
--     renewals keep the original day instead of drifting to the 28th.
--   * Money.  Every paid period is one ledger entry (wallet -> 'revenue',
--     kind subscription_charge for the sale, subscription_renewal for every
--     later period, ref {subscriptionId, serviceId, period}), one invoice
--     (kind SUBSCRIPTION, ref with entryId) and one row of
--     paas.subscription_charges, whose primary key (subscription, period)
--     makes a second charge of a period impossible whatever calls race.
--     Single charges use the ledger idempotency key
--     "subscription:<id>:period:<n>".  The price is copied at the sale and
--     kept by renewals; a revival is a new sale at the current list price.
--     A service priced 0 is subscribed and renewed without entry or invoice.
--   * Cancellation (DELETE) takes effect at the period end: the subscription
--     is CANCELLED, still served until current_period_end, then EXPIRED by
--     the renewal run.  No refund, no proration.  Deactivating or deleting
--     an account cancels its live subscriptions the same way
--     (paas.subscriptions_cancel_for_users, called by 10_accounts.sql);
--     reactivating it does not revive them.
--   * Renewal (api.run_renewals, scheduled with pg_cron by
--     api.subscriptions_schedule_renewals) takes an advisory transaction
--     lock, so overlapping runs queue instead of interleaving, then handles
--     the due subscriptions (current_period_end <= now()) in batches locked
--     FOR UPDATE SKIP LOCKED (rows an owner or admin is changing are left to
--     the next run).  A batch is one ledger call; a short wallet moves an
--     ACTIVE subscription to GRACE until period end + grace period
--     (paas.subscription_settings, default 3 days); every run retries GRACE
--     subscriptions, so a top-up during grace renews at the next run, the
--     period still anchored on the old one (the grace days were served).
--     Once grace_until has passed unpaid it is SUSPENDED and never charged
--     again by the run: a later top-up does not silently charge arrears; the
--     owner revives it with PUT /subscriptions/:id/renew.  Invoices of a run
--     are issued at its end, after every wallet lock is taken, so the run
--     holds the invoice counter only briefly and takes its locks in the
--     same order as a sale or a top-up (wallet, then counter); they are
--     numbered as one block by one paas.issue_invoice_items() call; their
--     ids are drawn by the batches, which write the charge rows.
--   * A run is one transaction (pg_cron runs one statement): its row locks
--     last until it commits, so an owner's renew or cancel of a row being
--     renewed waits for the run (about 10 s for 100,000 due rows).  A
--     subscription more than one period behind (the job did not run for a
--     month) is charged period after period in the same run, in order, as
--     long as the wallet covers them.

------------------------------------------------------------------------------
-- the status machine (C, extension/subscriptions.c)
------------------------------------------------------------------------------

CREATE FUNCTION paas.subscription_transition(status text, event text) RETURNS text
	AS 'MODULE_PATHNAME', 'paas_subscription_transition'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.subscription_transition(text, text) IS
	'next subscription status for an event (the C status machine); PT409 when illegal';

CREATE FUNCTION paas.subscription_transition_allowed(status text, event text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_subscription_transition_allowed'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.subscription_transition_allowed(text, text) IS
	'whether the subscription status machine allows the event in that status';

CREATE FUNCTION paas.subscription_transitions(OUT status text, OUT event text, OUT next_status text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'paas_subscription_transitions'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION paas.subscription_transitions() IS
	'every allowed subscription (status, event) -> status';

------------------------------------------------------------------------------
-- tables
------------------------------------------------------------------------------

CREATE TABLE paas.subscription_settings (
	singleton		boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	grace_period	interval NOT NULL DEFAULT '3 days'
					CHECK (grace_period >= interval '0' AND grace_period <= interval '90 days'),
	expiring_within interval NOT NULL DEFAULT '7 days'
					CHECK (expiring_within > interval '0' AND expiring_within <= interval '90 days'),
	batch_size		integer NOT NULL DEFAULT 10000 CHECK (batch_size BETWEEN 1 AND 10000)
);
INSERT INTO paas.subscription_settings DEFAULT VALUES;
COMMENT ON TABLE paas.subscription_settings IS
	'one row: grace period after a failed renewal (default 3 days), the "expiring soon" '
	'window of notices (default 7 days), subscriptions per renewal batch (default 10000, the '
	'most one ledger call takes); '
	'DBAs change it with UPDATE';

CREATE TABLE paas.subscriptions (
	id						uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id					uuid NOT NULL REFERENCES paas.users (id),
	service_id				uuid NOT NULL REFERENCES paas.services (id),
	status					text NOT NULL DEFAULT 'ACTIVE'
							CHECK (status IN ('ACTIVE', 'GRACE', 'SUSPENDED', 'CANCELLED', 'EXPIRED')),
	price					bigint NOT NULL CHECK (price BETWEEN 0 AND 1000000000),
	period_no				integer NOT NULL DEFAULT 1 CHECK (period_no >= 1),
	anchor_at				timestamptz NOT NULL,
	anchor_period			integer NOT NULL DEFAULT 1 CHECK (anchor_period BETWEEN 1 AND period_no),
	current_period_start	timestamptz NOT NULL,
	current_period_end		timestamptz NOT NULL,
	grace_until				timestamptz,
	cancelled_at			timestamptz,
	suspended_at			timestamptz,
	ended_at				timestamptz,
	status_reason			text CHECK (char_length(status_reason) <= 500),
	idempotency_key			text CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
	created_at				timestamptz NOT NULL DEFAULT now(),
	updated_at				timestamptz NOT NULL DEFAULT now(),
	CHECK (current_period_end > current_period_start),
	CHECK ((status = 'GRACE') = (grace_until IS NOT NULL))
);
-- One live subscription per user and service (EXPIRED ones are history).
CREATE UNIQUE INDEX subscriptions_live_key ON paas.subscriptions (user_id, service_id)
	WHERE status <> 'EXPIRED';
-- A POST retried with the same Idempotency-Key finds its subscription.
CREATE UNIQUE INDEX subscriptions_idem_key ON paas.subscriptions (user_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
-- The renewal run's scan: what may be due, in due order.
CREATE INDEX subscriptions_due_idx ON paas.subscriptions (current_period_end, id)
	WHERE status IN ('ACTIVE', 'GRACE', 'CANCELLED');
CREATE INDEX subscriptions_user_idx ON paas.subscriptions (user_id, created_at DESC);
CREATE INDEX subscriptions_service_idx ON paas.subscriptions (service_id);
COMMENT ON TABLE paas.subscriptions IS
	'a user''s subscription to a catalog service, paid per calendar month from the wallet';
COMMENT ON COLUMN paas.subscriptions.price IS
	'monthly price in IDR at the time of sale; renewals charge it, a revival re-reads the list price';
COMMENT ON COLUMN paas.subscriptions.anchor_at IS
	'start of period anchor_period; period n ends at anchor_at + (n - anchor_period + 1) months (UTC)';

CREATE TABLE paas.subscription_charges (
	subscription_id		uuid NOT NULL REFERENCES paas.subscriptions (id),
	period_no			integer NOT NULL CHECK (period_no >= 1),
	kind				text NOT NULL CHECK (kind IN ('purchase', 'renewal', 'manual_renewal', 'revival')),
	amount				bigint NOT NULL CHECK (amount >= 0),
	period_start		timestamptz NOT NULL,
	period_end			timestamptz NOT NULL,
	entry_id			bigint,		-- paas.ledger_entries.id (NULL: free period)
	invoice_id			uuid,		-- paas.invoices.id (NULL: free period)
	idempotency_key		text CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
	created_at			timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (subscription_id, period_no),
	CHECK ((amount > 0) = (entry_id IS NOT NULL))
);
CREATE UNIQUE INDEX subscription_charges_idem_key
	ON paas.subscription_charges (subscription_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
CREATE INDEX subscription_charges_created_idx ON paas.subscription_charges (created_at);
COMMENT ON TABLE paas.subscription_charges IS
	'one row per paid period: the primary key makes a period chargeable once; entry_id and '
	'invoice_id point into the append-only ledger and the immutable invoices (no foreign key: '
	'a key check would lock those rows on every charge)';

CREATE TABLE paas.subscription_events (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	subscription_id uuid NOT NULL REFERENCES paas.subscriptions (id),
	event			text NOT NULL,
	from_status		text,
	to_status		text NOT NULL,
	actor_id		uuid,			-- owner or administrator; NULL: renewal run or DBA
	reason			text,
	created_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_events_sub_idx ON paas.subscription_events (subscription_id, id);
COMMENT ON TABLE paas.subscription_events IS
	'every status change of a subscription (creation included) with its event, actor and reason';

REVOKE ALL ON paas.subscription_settings, paas.subscriptions, paas.subscription_charges,
	paas.subscription_events FROM PUBLIC;
GRANT SELECT ON paas.subscriptions, paas.subscription_charges, paas.subscription_events TO paas_owner;
GRANT SELECT, UPDATE ON paas.subscription_settings TO paas_owner;

SELECT pg_catalog.pg_extension_config_dump('paas.subscription_settings', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscription_charges', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscription_events', '');

------------------------------------------------------------------------------
-- helpers
------------------------------------------------------------------------------

-- anchor + months calendar months, computed in UTC: the day of the anchor is
-- kept where the month has it and clamped to the month's last day otherwise.
CREATE FUNCTION paas.subscription_bound(anchor timestamptz, months integer) RETURNS timestamptz
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN ((anchor AT TIME ZONE 'UTC') + make_interval(months => months)) AT TIME ZONE 'UTC';
COMMENT ON FUNCTION paas.subscription_bound(timestamptz, integer) IS
	'anchor plus a number of calendar months in UTC (Jan 31 + 1 = Feb 28/29, + 2 = Mar 31)';

CREATE FUNCTION paas.subscription_config() RETURNS paas.subscription_settings
	LANGUAGE sql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
	RETURN (SELECT s FROM paas.subscription_settings s);
COMMENT ON FUNCTION paas.subscription_config() IS 'the subscription settings row';

CREATE FUNCTION paas.subscription_json(s paas.subscriptions, v paas.services) RETURNS jsonb
	LANGUAGE sql STABLE
	RETURN jsonb_build_object(
		'id', s.id, 'userId', s.user_id, 'serviceId', s.service_id,
		'service', jsonb_build_object('id', v.id, 'name', v.name, 'displayName', v.display_name,
									  'monthlyPrice', v.monthly_price, 'isActive', v.is_active),
		'status', s.status, 'price', s.price, 'monthlyPrice', s.price, 'currency', 'IDR',
		'periodNumber', s.period_no,
		'startDate', paas.iso(s.created_at),
		'currentPeriodStart', paas.iso(s.current_period_start),
		'currentPeriodEnd', paas.iso(s.current_period_end),
		'expiresAt', paas.iso(s.current_period_end),
		'autoRenew', s.status IN ('ACTIVE', 'GRACE'),
		'cancelAtPeriodEnd', s.status = 'CANCELLED',
		'graceUntil', paas.iso(s.grace_until),
		'cancelledAt', paas.iso(s.cancelled_at),
		'suspendedAt', paas.iso(s.suspended_at),
		'endedAt', paas.iso(s.ended_at),
		'statusReason', s.status_reason,
		'createdAt', paas.iso(s.created_at), 'updatedAt', paas.iso(s.updated_at));
COMMENT ON FUNCTION paas.subscription_json(paas.subscriptions, paas.services) IS
	'a subscription as the API prints it';

CREATE FUNCTION paas.subscription_charge_json(c paas.subscription_charges) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
	RETURN jsonb_build_object(
		'period', c.period_no, 'kind', c.kind, 'amount', c.amount, 'currency', 'IDR',
		'periodStart', paas.iso(c.period_start), 'periodEnd', paas.iso(c.period_end),
		'entryId', c.entry_id,
		'invoice', (SELECT jsonb_build_object('id', i.id, 'invoiceNumber', i.number,
											  'status', i.status)
					  FROM paas.invoices i WHERE i.id = c.invoice_id),
		'createdAt', paas.iso(c.created_at));
COMMENT ON FUNCTION paas.subscription_charge_json(paas.subscription_charges) IS
	'a paid period as the API prints it';

CREATE FUNCTION paas.subscription_log(sub uuid, event text, from_status text, to_status text,
									  actor uuid, reason text)
	RETURNS void
	LANGUAGE sql VOLATILE
	BEGIN ATOMIC
		INSERT INTO paas.subscription_events (subscription_id, event, from_status, to_status,
											  actor_id, reason)
		VALUES (sub, event, from_status, to_status, actor, reason);
	END;
COMMENT ON FUNCTION paas.subscription_log(uuid, text, text, text, uuid, text) IS
	'records a status change of a subscription';

-- Charges one period of s (already locked, already carrying the new period)
-- to its owner: ledger entry (key subscription:<id>:period:<n>), invoice and
-- charge row.  PT402 when the wallet is short (the caller's transaction is
-- lost, so nothing changes).  Returns {charge, balanceAfter}.
CREATE FUNCTION paas.subscription_charge(s paas.subscriptions, v paas.services, kind text,
										 entry_kind text, idem text)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.subscription_charge(paas.subscriptions, paas.services, text, text, text) IS
	'posts, invoices and records the current period of a locked subscription; PT402 when short';

-- The caller's subscription, locked FOR UPDATE; PT404 for an unknown id,
-- a malformed id and another user's subscription alike.
CREATE FUNCTION paas.subscription_of(uid uuid, id_text text) RETURNS paas.subscriptions
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.subscription_of(uuid, text) IS
	'locks and returns a subscription of uid (any owner when uid is NULL); PT404 otherwise';

-- One page of subscriptions: {rows, total}.  uid NULL: every user.
CREATE FUNCTION paas.subscriptions_page(req jsonb, uid uuid, default_limit integer)
	RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	lim int := coalesce((req ->> 'limit')::int, default_limit);
	off int := (coalesce((req ->> 'page')::int, 1) - 1) * lim;
	st text := req ->> 'status';
	svc uuid := paas.to_uuid(req ->> 'serviceId');
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
$$;
COMMENT ON FUNCTION paas.subscriptions_page(jsonb, uuid, integer) IS
	'newest first; status, serviceId, page, limit (validated by the caller); {rows, total}';

CREATE FUNCTION paas.check_subscription_filters(errs jsonb, req jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'status', false,
		ARRAY['ACTIVE', 'GRACE', 'SUSPENDED', 'CANCELLED', 'EXPIRED']);
	errs := paas.check_text(errs, req, 'serviceId', false, 1, 64);
	IF jsonb_typeof(req -> 'serviceId') = 'string' AND paas.to_uuid(req ->> 'serviceId') IS NULL THEN
		errs := paas.add_err(errs, 'serviceId', 'serviceId must be a valid id');
	END IF;
	RETURN errs;
END
$$;
COMMENT ON FUNCTION paas.check_subscription_filters(jsonb, jsonb) IS
	'appends errors for invalid page, limit, status and serviceId filters';

------------------------------------------------------------------------------
-- api: the owner's subscriptions
------------------------------------------------------------------------------

CREATE FUNCTION api.subscriptions_create(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	errs jsonb := '[]';
	key text := ctx ->> 'idempotencyKey';
	sid uuid;
	s paas.subscriptions;
	v paas.services;
	paid jsonb;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_text(errs, req, 'serviceId', true, 1, 64);
	IF jsonb_typeof(req -> 'serviceId') = 'string' AND paas.to_uuid(req ->> 'serviceId') IS NULL THEN
		errs := paas.add_err(errs, 'serviceId', 'serviceId must be a valid id');
	END IF;
	PERFORM paas.raise_if_invalid(errs);
	sid := paas.to_uuid(req ->> 'serviceId');

	-- A retried request answers the subscription it created.
	IF key IS NOT NULL THEN
		SELECT * INTO s FROM paas.subscriptions WHERE user_id = u.id AND idempotency_key = key;
		IF FOUND THEN
			IF s.service_id <> sid THEN
				RAISE EXCEPTION 'Idempotency-Key was already used for another request'
					USING ERRCODE = 'PT409';
			END IF;
			SELECT * INTO v FROM paas.services WHERE id = s.service_id;
			RETURN paas.subscription_json(s, v) || jsonb_build_object('replayed', true,
				'charge', (SELECT paas.subscription_charge_json(c) FROM paas.subscription_charges c
							WHERE c.subscription_id = s.id AND c.period_no = 1));
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
	RETURN paas.subscription_json(s, v) || jsonb_build_object('replayed', false) || paid;
END
$$;
COMMENT ON FUNCTION api.subscriptions_create(jsonb, jsonb) IS
	'POST /subscriptions {serviceId}: charges the first month from the wallet and invoices it; '
	'PT404 unknown or inactive service, PT409 live subscription exists, PT402 wallet short; '
	'ctx.idempotencyKey makes a retry answer the first subscription';

CREATE FUNCTION api.subscriptions_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.subscriptions_list(jsonb, jsonb) IS
	'GET /subscriptions: the caller''s subscriptions, newest first; status, serviceId, page, limit';

CREATE FUNCTION api.subscriptions_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
		'charges', (SELECT coalesce(jsonb_agg(paas.subscription_charge_json(c) ORDER BY c.period_no DESC), '[]')
					  FROM paas.subscription_charges c WHERE c.subscription_id = s.id));
END
$$;
COMMENT ON FUNCTION api.subscriptions_get(jsonb, jsonb) IS
	'GET /subscriptions/:id: one of the caller''s subscriptions with its paid periods';

CREATE FUNCTION api.subscriptions_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.subscriptions_stats(jsonb, jsonb) IS
	'GET /subscriptions/stats: counts by status, monthly spend, balance, the next 5 renewals';

-- Pays one period now.  ACTIVE, GRACE and a CANCELLED subscription still
-- in its period get the next period of their anchor (an early renewal; a
-- cancelled one resumes renewing); SUSPENDED, EXPIRED and an ended CANCELLED
-- one are revived: a new anchor at now, at the current list price.
CREATE FUNCTION api.subscriptions_renew(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	u paas.users := paas.require_user(ctx);
	key text := ctx ->> 'idempotencyKey';
	s paas.subscriptions := paas.subscription_of(u.id, req ->> 'id');
	v paas.services;
	old paas.subscriptions;
	revive boolean;
	paid jsonb;
BEGIN
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	IF key IS NOT NULL AND EXISTS (SELECT 1 FROM paas.subscription_charges c
									WHERE c.subscription_id = s.id AND c.idempotency_key = key) THEN
		RETURN paas.subscription_json(s, v) || jsonb_build_object('replayed', true,
			'charge', (SELECT paas.subscription_charge_json(c) FROM paas.subscription_charges c
						WHERE c.subscription_id = s.id AND c.idempotency_key = key));
	END IF;

	old := s;
	revive := s.status IN ('SUSPENDED', 'EXPIRED')
			  OR (s.status = 'CANCELLED' AND s.current_period_end <= now());
	IF revive AND (v.deleted_at IS NOT NULL OR NOT v.is_active) THEN
		RAISE EXCEPTION 'Service is no longer available' USING ERRCODE = 'PT409';
	END IF;
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
	RETURN paas.subscription_json(s, v) || jsonb_build_object('replayed', false) || paid;
END
$$;
COMMENT ON FUNCTION api.subscriptions_renew(jsonb, jsonb) IS
	'PUT /subscriptions/:id/renew: pays one more period now (revives SUSPENDED/EXPIRED at the list price); '
	'PT402 wallet short, PT404 not the caller''s; ctx.idempotencyKey makes a retry charge nothing';

CREATE FUNCTION api.subscriptions_cancel(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.subscriptions_cancel(jsonb, jsonb) IS
	'DELETE /subscriptions/:id: cancels at the end of the paid period, no refund; PT409 when already cancelled or ended';

-- The account rule, the one place it lives: when an account is deactivated
-- or deleted (10_accounts.sql calls this from api.auth_delete_account,
-- api.users_update and api.users_toggle_status to inactive, api.users_delete
-- and api.users_bulk deactivate / delete), each of its live subscriptions
-- (ACTIVE, GRACE, SUSPENDED) is cancelled at period end exactly as the
-- owner's DELETE /subscriptions/:id does: event "cancel" through the status
-- machine, recorded in paas.subscription_events with actor and reason, no
-- refund.  The renewal run then expires them instead of charging them.
-- Reactivating the account does not revive them: the owner renews or
-- subscribes again.  Rows a renewal run holds are waited for.  Returns the
-- number of subscriptions cancelled.
CREATE FUNCTION paas.subscriptions_cancel_for_users(user_ids uuid[], reason text,
													actor_id uuid DEFAULT NULL)
	RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.subscriptions_cancel_for_users(uuid[], text, uuid) IS
	'cancels at period end (no refund) the live subscriptions of deactivated or deleted accounts, with the reason';

------------------------------------------------------------------------------
-- api: administrators
------------------------------------------------------------------------------

CREATE FUNCTION api.subscriptions_admin_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.subscriptions_admin_list(jsonb, jsonb) IS
	'GET /admin/subscriptions and /admin/subscriptions/users/:userId: userId, status, serviceId, page, limit';

CREATE FUNCTION api.subscriptions_admin_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.subscriptions_admin_get(jsonb, jsonb) IS
	'GET /admin/subscriptions/:id: any subscription with its owner, charges and status history';

CREATE FUNCTION api.subscriptions_admin_set_status(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.subscriptions_admin_set_status(jsonb, jsonb) IS
	'PUT /admin/subscriptions/:id/status {status: ACTIVE|SUSPENDED|CANCELLED|EXPIRED, reason}: '
	'through the status machine (PT409 when illegal), without any charge or refund';

CREATE FUNCTION api.subscriptions_admin_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.subscriptions_admin_stats(jsonb, jsonb) IS
	'GET /admin/subscriptions/stats: counts by status and by service, recurring revenue, due now, charges of 30 days';

------------------------------------------------------------------------------
-- notices (for the notification mailer of a later issue)
------------------------------------------------------------------------------

-- expiring_soon: a CANCELLED subscription ending within the window, or an
-- ACTIVE one renewing within it whose wallet does not cover the price;
-- grace: renewal failed, served until grace_until; suspended: not served.
CREATE VIEW reporting.subscription_notices AS
SELECT CASE WHEN s.status = 'SUSPENDED' THEN 'suspended'
			WHEN s.status = 'GRACE' THEN 'grace'
			ELSE 'expiring_soon' END AS notice,
	   s.id AS subscription_id, s.user_id, u.email AS user_email, u.name AS user_name,
	   s.service_id, v.name AS service_name, v.display_name AS service_display_name,
	   s.status, s.price, coalesce(a.balance, 0) AS wallet_balance,
	   s.current_period_end, s.grace_until, s.suspended_at,
	   CASE WHEN s.status = 'SUSPENDED' THEN s.suspended_at
			WHEN s.status = 'GRACE' THEN s.grace_until
			ELSE s.current_period_end END AS due_at
  FROM paas.subscriptions s
  JOIN paas.users u ON u.id = s.user_id
  JOIN paas.services v ON v.id = s.service_id
  LEFT JOIN paas.ledger_accounts a ON a.user_id = s.user_id AND a.kind = 'wallet'
 CROSS JOIN paas.subscription_settings c
 WHERE s.status IN ('SUSPENDED', 'GRACE')
	OR (s.status = 'CANCELLED' AND s.current_period_end > now()
		AND s.current_period_end <= now() + c.expiring_within)
	OR (s.status = 'ACTIVE' AND s.current_period_end <= now() + c.expiring_within
		AND coalesce(a.balance, 0) < s.price);
COMMENT ON VIEW reporting.subscription_notices IS
	'subscriptions to notify: expiring_soon (cancelled and ending, or renewing with a short wallet '
	'within subscription_settings.expiring_within), grace, suspended';

GRANT SELECT ON reporting.subscription_notices TO paas_bi, paas_owner;

CREATE FUNCTION api.subscriptions_admin_notices(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.subscriptions_admin_notices(jsonb, jsonb) IS
	'GET /admin/subscriptions/notices: expiring_soon, grace and suspended subscriptions; notice, page, limit';

------------------------------------------------------------------------------
-- renewal
------------------------------------------------------------------------------

-- Issues the invoices of the renewal run's charges (temp table
-- renewal_charged) with one call of the billing part's
-- paas.issue_invoice_items(), so they are numbered as one contiguous block
-- by its single numbering path (one counter update for the whole run;
-- paas.issue_invoice() once a charge would cost ~0.2 ms each, 20 s for
-- 100,000 renewals).  The invoice ids were drawn by the batches, which
-- wrote them into the charge rows already.  Returns the number of invoices.
CREATE FUNCTION paas.subscription_issue_invoices() RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.subscription_issue_invoices() IS
	'renewal run: issues the invoices of pg_temp.renewal_charged, with the ids its charge rows name, as one '
	'numbered block (paas.issue_invoice_items)';

-- The shard of a subscription in a renewal run: by user, so that one
-- wallet is only ever charged by one shard.
CREATE FUNCTION paas.renewal_shard(user_id uuid, shards int) RETURNS int
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN abs(uuid_hash_extended(user_id, 0) % shards)::int;
COMMENT ON FUNCTION paas.renewal_shard(uuid, int) IS
	'the renewal shard (0 .. shards - 1) of a user''s subscriptions';

-- One shard of a renewal run (api.run_renewals); shards = 1: all of it.
CREATE FUNCTION paas.run_renewals_part(shard int DEFAULT 0, shards int DEFAULT 1) RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION paas.run_renewals_part(int, int) IS
	'one shard of a renewal run (the users with paas.renewal_shard(user_id, shards) = shard); '
	'returns {examined, batches, passes, renewed, charged, toGrace, suspended, expired}';

CREATE FUNCTION api.run_renewals() RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	shards int := current_setting('paas.renewal_workers')::int;
	parts jsonb[];
	out jsonb;
BEGIN
	-- One run at a time: a second one waits here, then finds what the first
	-- renewed no longer due.
	PERFORM pg_advisory_xact_lock(hashtextextended('paas.run_renewals', 0));
	-- The shards run at the same time in background workers, each charging
	-- its own users' wallets (paas.run_parallel; in a transaction block they
	-- run here, one after the other).
	IF shards > 1 THEN
		SELECT array_agg(r::jsonb ORDER BY i) INTO parts
		  FROM unnest(paas.run_parallel(ARRAY(
				SELECT format('SELECT paas.run_renewals_part(%s, %s)', i, shards)
				  FROM generate_series(0, shards - 1) i ORDER BY i))) WITH ORDINALITY AS t (r, i);
	ELSE
		parts := ARRAY[paas.run_renewals_part(0, 1)];
	END IF;
	SELECT jsonb_build_object(
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
	RETURN out;
END
$$;
COMMENT ON FUNCTION api.run_renewals() IS
	'renews every due subscription (pg_cron job paas-renewals; DBAs): charges, grace, suspension, expiry of '
	'cancelled periods; one run at a time, rows locked FOR UPDATE SKIP LOCKED, each period charged once; '
	'shards run in parallel in paas.renewal_workers background workers; '
	'returns {examined, batches, passes, renewed, charged, toGrace, suspended, expired, shards, inGrace, ms}';

CREATE FUNCTION api.subscriptions_schedule_renewals(schedule text DEFAULT '*/5 * * * *') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = paas, pg_catalog, public, pg_temp
AS $$
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
$$;
COMMENT ON FUNCTION api.subscriptions_schedule_renewals(text) IS
	'DBA: schedules (or reschedules) the pg_cron job paas-renewals running api.run_renewals(), '
	'default every 5 minutes; the job runs as the function owner';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.subscriptions_create(jsonb, jsonb)', 'api.subscriptions_list(jsonb, jsonb)',
		'api.subscriptions_get(jsonb, jsonb)', 'api.subscriptions_stats(jsonb, jsonb)',
		'api.subscriptions_renew(jsonb, jsonb)', 'api.subscriptions_cancel(jsonb, jsonb)',
		'api.subscriptions_admin_list(jsonb, jsonb)', 'api.subscriptions_admin_get(jsonb, jsonb)',
		'api.subscriptions_admin_set_status(jsonb, jsonb)', 'api.subscriptions_admin_stats(jsonb, jsonb)',
		'api.subscriptions_admin_notices(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
	-- Renewal and its schedule are for pg_cron (superuser) and DBAs only.
	REVOKE ALL ON FUNCTION api.run_renewals(), api.subscriptions_schedule_renewals(text) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION api.run_renewals(), api.subscriptions_schedule_renewals(text) TO paas_owner;
END
$grants$;
-- paas 0.2.0 -- what pg_dump keeps.
--
-- pg_dump skips the rows of an extension's tables unless the table is
-- registered with pg_extension_config_dump.  Every table of schema paas is
-- listed here (tests/http/test_zz_dump_restore.py dumps and restores a
-- database the whole suite wrote to and compares it); a table whose rows the
-- install script creates is dumped without those rows, since CREATE
-- EXTENSION makes them again on restore:
--   paas.job, paas.job_run           install-defined jobs; runs are transient
--   paas.subscription_settings       one install-time row: after a restore the
--                                     defaults apply until a DBA sets them again
--   paas.ledger_accounts             wallets only: the platform accounts and
--                                     their slots are install rows, and their
--                                     cached balances are recomputed from the
--                                     postings by paas.ledger_restore_balances()
--                                     (run it once after pg_restore)

SELECT pg_catalog.pg_extension_config_dump('paas.ledger_accounts', 'WHERE kind = ''wallet''');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_accounts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_entries', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_entry_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_postings', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_posting_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_idempotency', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_adjustments', '');
SELECT pg_catalog.pg_extension_config_dump('paas.nodes', '');
SELECT pg_catalog.pg_extension_config_dump('paas.node_transitions', '');
SELECT pg_catalog.pg_extension_config_dump('paas.node_transitions_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.node_join_tokens', '');
SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_notifications_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscription_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscription_settings', 'WHERE false');

-- After pg_restore: the cached balances of the platform slots (not dumped)
-- from their postings.  Returns how many slots changed.  Safe to run twice.
CREATE FUNCTION paas.ledger_restore_balances() RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = paas, pg_catalog, public, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	UPDATE paas.ledger_accounts a
	   SET balance = s.total, updated_at = now()
	  FROM (SELECT a2.id, coalesce(sum(p.amount), 0)::bigint AS total
			  FROM paas.ledger_accounts a2
			  LEFT JOIN paas.ledger_postings p ON p.account_id = a2.id
			 WHERE a2.kind <> 'wallet'
			 GROUP BY a2.id) s
	 WHERE a.id = s.id AND a.balance IS DISTINCT FROM s.total;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.ledger_restore_balances() IS
	'after pg_restore: recomputes the platform accounts'' cached balances from their postings';
