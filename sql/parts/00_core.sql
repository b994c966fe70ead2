-- paas -- core: schemas, roles, helpers, the job registry, status.
--
-- Schemas
--   paas       private tables and internal functions (no rights for anyone
--              but the owner)
--   api        the one surface: functions called by httpd, DBAs and pg_cron
--   reporting  read-only views for BI (role paas_bi)
--
-- Roles (cluster-wide; created here when missing, never dropped; created
-- NOLOGIN: docker/scripts/role-login.sh gives paas_owner and paas_bi a
-- password, db_setup in docker/scripts/lib.sh sets their limits)
--   paas_owner  DBAs: owns the database, may call every api function, reads
--               the job registry and changes its settings
--   paas_api    the gateway's login: EXECUTE on api functions, no table rights
--   paas_bi     BI tools: SELECT on reporting views only, read-only sessions

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
-- In C (extension/nodes.c), where the node checks use the same rule.
CREATE FUNCTION paas.check_text(errs jsonb, req jsonb, field text,
								required boolean, min_len int, max_len int)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'paas_check_text'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION paas.check_text(jsonb, jsonb, text, boolean, int, int) IS
	'appends an error when req->field is not a string of the given length';

-- Validates an optional integer field (JSON number or numeric string:
-- optional white space and minus, 1 to 19 digits).  In C, as check_text.
CREATE FUNCTION paas.check_int(errs jsonb, req jsonb, field text,
							   required boolean, min_v bigint, max_v bigint)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'paas_check_int'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
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
	run_every	interval CHECK (run_every >= interval '100 milliseconds'),
	enabled		boolean NOT NULL DEFAULT true,
	next_run_at	timestamptz DEFAULT now(),
	description	text NOT NULL,
	runner		text NOT NULL DEFAULT 'worker' CHECK (runner IN ('worker', 'pg_cron')),
	customized	boolean NOT NULL DEFAULT false,
	-- The worker's jobs run every run_every from next_run_at on; a pg_cron
	-- job runs on the schedule of its cron.job row and has neither.
	CONSTRAINT job_schedule_of_runner CHECK (
		CASE runner WHEN 'worker' THEN run_every IS NOT NULL AND next_run_at IS NOT NULL
		ELSE run_every IS NULL AND next_run_at IS NULL END)
);
COMMENT ON TABLE paas.job IS
	'periodic jobs: of the background worker (runner worker), or of pg_cron (runner pg_cron: only recorded '
	'here); fn() returns jsonb detail; DBAs change enabled and run_every';
COMMENT ON COLUMN paas.job.runner IS
	'who starts the job: the background worker (every run_every), or pg_cron (its cron.job schedule; '
	'the worker never runs it)';
COMMENT ON COLUMN paas.job.customized IS
	'enabled or run_every was changed after the install (set by a trigger): such rows are dumped, and '
	'pg_restore puts their settings back on the row the install script creates';

-- A change of a job's settings marks the row customized (pg_dump keeps it).
CREATE FUNCTION paas.job_mark_customized() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	IF (NEW.enabled, NEW.run_every) IS DISTINCT FROM (OLD.enabled, OLD.run_every) THEN
		NEW.customized := true;
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION paas.job_mark_customized() IS
	'trigger: a job whose enabled or run_every changes becomes customized';
CREATE TRIGGER job_mark_customized BEFORE UPDATE ON paas.job
	FOR EACH ROW EXECUTE FUNCTION paas.job_mark_customized();

-- pg_restore loads the dumped (customized) rows after CREATE EXTENSION has
-- inserted the install's rows of the same names: a customized row that
-- arrives by INSERT (COPY) gives its settings to the existing row and is not
-- inserted itself; a job this version no longer has is dropped.  Rows
-- inserted by install and upgrade scripts are not customized and insert as
-- usual.
CREATE FUNCTION paas.job_restore_settings() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, paas, pg_temp
AS $$
BEGIN
	UPDATE paas.job j
	   SET enabled = NEW.enabled,
		   run_every = CASE WHEN j.runner = 'worker' THEN coalesce(NEW.run_every, j.run_every) END,
		   customized = true
	 WHERE j.name = NEW.name;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION paas.job_restore_settings() IS
	'trigger (pg_restore): a customized job row inserted again sets enabled and run_every of the existing row';
CREATE TRIGGER job_restore_settings BEFORE INSERT ON paas.job
	FOR EACH ROW WHEN (NEW.customized) EXECUTE FUNCTION paas.job_restore_settings();

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

-- PostgreSQL counts a PL/pgSQL exception block as a transaction block: a
-- function calling paas.run_parallel from one calls this first, at its top
-- level, so that the calls of a statement that is a transaction of its own
-- still go to workers.
CREATE FUNCTION paas.run_parallel_begin() RETURNS boolean
	AS 'MODULE_PATHNAME', 'paas_run_parallel_begin'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION paas.run_parallel_begin() IS
	'whether this statement''s paas.run_parallel calls start workers (not in a transaction block, nothing '
	'written); when they do, its calls from exception blocks do too';

-- Runs one due job of the worker: locks its row (SKIP LOCKED: a concurrent
-- runner makes this a no-op returning NULL), runs fn() in an exception
-- block, records the run and schedules the next one.  Returns whether fn()
-- succeeded; NULL for a job that is not due, disabled or pg_cron's.
CREATE FUNCTION paas.run_job(job_name text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE STRICT
	SET search_path = pg_catalog, paas, pg_temp
AS $$
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
	SET search_path = pg_catalog, paas, pg_temp
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

-- paas.job rows are installed by the scripts; pg_dump keeps those a DBA
-- changed (customized, sql/parts/90_dump.sql).  Runs are transient.

-- DBAs (paas_owner) read the jobs and their runs and change how often and
-- whether a job runs; the rest of a row is the install's.
GRANT SELECT ON paas.job, paas.job_run TO paas_owner;
GRANT UPDATE (enabled, run_every, next_run_at) ON paas.job TO paas_owner;

------------------------------------------------------------------------------
-- api: system
------------------------------------------------------------------------------

-- "environment" is the original's NODE_ENV, which also chose its Midtrans
-- hosts: production exactly when paas.midtrans_is_production is on.
CREATE FUNCTION api.health(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE PARALLEL SAFE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN jsonb_build_object('status', 'healthy', 'database', 'up', 'version', 'v1',
							  'timestamp', paas.iso(now()),
							  'environment', CASE WHEN current_setting('paas.midtrans_is_production', true) = 'on'
												  THEN 'production' ELSE 'development' END);
COMMENT ON FUNCTION api.health(jsonb, jsonb) IS
	'answers when the database is reachable; environment: production when paas.midtrans_is_production is on, else development';

-- The public answer says only whether the parts run; the versions of the
-- server, process ids and counters are for administrators
-- (api.admin_status, GET /admin/status).
CREATE FUNCTION api.status(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE sql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
	RETURN (SELECT jsonb_build_object(
		'service', 'paas',
		'version', paas.version(),
		'databaseTime', paas.iso(clock_timestamp()),
		'worker', jsonb_build_object('running', w.running),
		'cron', EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'))
	FROM paas.worker_state() w);
COMMENT ON FUNCTION api.status(jsonb, jsonb) IS
	'GET /status (public): version, database time, whether the background worker and pg_cron run';

REVOKE ALL ON FUNCTION api.health(jsonb, jsonb), api.status(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.health(jsonb, jsonb), api.status(jsonb, jsonb) TO paas_api, paas_owner;
