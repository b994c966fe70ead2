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
