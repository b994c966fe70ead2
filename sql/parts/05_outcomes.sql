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
