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
