-- notifications (sql/parts/75_notifications.sql, extension/notify.c): the
-- outbox rows written by the events' own transactions (and not by rolled
-- back ones), dedup keys, templates (escaping, sections, formats, the save
-- check, the DBA's rows), RFC 2047 headers, the claim / record cycle of the
-- mailer (leases, backoff, limits), registration with a taken address,
-- verification, password reset, preferences, unsubscribe, the admin API.
-- Everything runs in one transaction: the mailer never sees these rows.
BEGIN;
SELECT plan(169);

SET LOCAL paas.public_url = 'https://app.pgtap.test';
SET LOCAL paas.mail_default_locale = 'en';
SET LOCAL paas.mail_admin_to = '';
SET LOCAL paas.mail_from = 'Paas <no-reply@pgtap.test>';

CREATE TEMP TABLE t (k text PRIMARY KEY, v jsonb);
CREATE FUNCTION pg_temp.v(key text, path text[]) RETURNS text LANGUAGE sql AS
	$$ SELECT v #>> path FROM t WHERE k = key $$;
CREATE FUNCTION pg_temp.uctx(key text) RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('userId', v #>> '{session,userId}', 'role', 'USER',
								 'sid', v #>> '{session,sid}') FROM t WHERE k = key $$;
CREATE FUNCTION pg_temp.mails(uid text, kind text) RETURNS bigint LANGUAGE sql AS
	$$ SELECT count(*) FROM paas.notification_outbox WHERE user_id = uid::uuid AND notification_outbox.kind = mails.kind $$;
CREATE FUNCTION pg_temp.last_mail(uid text, kind text) RETURNS paas.notification_outbox LANGUAGE sql AS
	$$ SELECT o FROM paas.notification_outbox o WHERE o.user_id = uid::uuid AND o.kind = last_mail.kind
		ORDER BY o.id DESC LIMIT 1 $$;
CREATE FUNCTION pg_temp.render(uid text, kind text) RETURNS paas.notify_mail LANGUAGE sql AS
	$$ SELECT paas.notify_render(pg_temp.last_mail(uid, kind)) $$;
-- the token of a link in a text
CREATE FUNCTION pg_temp.token(body text) RETURNS text LANGUAGE sql AS
	$$ SELECT substring(body FROM 'token=([0-9a-f]{32}\.[0-9a-f]{64})') $$;

-- kinds and builtin templates ---------------------------------------------------
SELECT is((SELECT count(*) FROM paas.notification_kinds k
			WHERE (SELECT count(*) FROM paas.notification_templates t
					WHERE t.kind = k.kind AND t.builtin AND t.locale IN ('id', 'en')) = 2),
	(SELECT count(*) FROM paas.notification_kinds), 'every kind has builtin templates in id and en');
SELECT is((SELECT count(*) FROM paas.notification_templates t
			WHERE cardinality(paas.notify_template_problems(t.kind, t.subject || t.body_text || t.body_html)) > 0),
	0::bigint, 'every builtin template uses only its kind''s variables');

-- the template engine -----------------------------------------------------------
SELECT is(paas.notify_render_text('Hi {{name}} <{{x}}>', '{"name": "<b>A&B</b>", "x": "y"}', '{}', true),
	'Hi &lt;b&gt;A&amp;B&lt;/b&gt; <y>', 'values are HTML-escaped in the HTML part, the template is not');
SELECT is(paas.notify_render_text('Hi {{name}}', '{"name": "<b>A&B</b>"}', '{}', false),
	'Hi <b>A&B</b>', 'values are kept as they are in the text part');
SELECT is(paas.notify_render_text('a{{#f}}[{{v}}]{{/f}}b{{^f}}no{{/f}}c', '{"v": "x"}', '{"f": true}', false),
	'a[x]bc', 'a set flag keeps its section and drops the inverted one');
SELECT is(paas.notify_render_text('a{{#f}}[{{v}}]{{/f}}b{{^f}}no{{/f}}c', '{"v": "x"}', '{"f": false}', false),
	'abnoc', 'an unset flag drops its section and keeps the inverted one');
SELECT is(paas.notify_render_text('{{#a}}A{{#b}}B{{/b}}{{/a}}.', '{}', '{"a": 1, "b": 0}', false),
	'A.', 'sections nest');
SELECT is(paas.notify_render_text('{{ missing }}|{{', '{}', '{}', false), '|{{',
	'an unknown name renders as nothing, an unfinished tag as itself');
SELECT is(paas.notify_format('1500000', 'money', 'id'), 'Rp 1.500.000', 'money in Indonesian');
SELECT is(paas.notify_format('1500000', 'money', 'en'), 'IDR 1,500,000', 'money in English');
SELECT is(paas.notify_format('-2500', 'money', 'id'), '-Rp 2.500', 'negative money');
SELECT is(paas.notify_format('"2025-03-05T20:00:00Z"', 'date', 'id'), '6 Maret 2025',
	'dates are shown in paas.mail_timezone (Asia/Jakarta) in Indonesian');
SELECT is(paas.notify_format('"2025-03-05T20:00:00Z"', 'datetime', 'en'), '6 March 2025 03:00 (UTC+07:00)',
	'times carry their offset');

-- saving templates: the check and the DBA's rows ---------------------------------
SELECT throws_ok($$INSERT INTO paas.notification_templates (kind, locale, subject, body_text, body_html)
				   VALUES ('welcome', 'en', 'Hi {{nmae}}', 'x', 'y')$$,
	'PT400', 'template welcome (en) refused: unknown variable nmae', 'a template with an unknown variable is refused');
SELECT throws_ok($$UPDATE paas.notification_templates SET body_html = '{{#verifyUrl}}x'
				   WHERE kind = 'welcome' AND locale = 'en'$$,
	'PT400', NULL, 'an unclosed section is refused');
SELECT throws_ok($$UPDATE paas.notification_templates SET body_text = '{{unsubscribeUrl}}'
				   WHERE kind = 'welcome' AND locale = 'en'$$,
	'PT400', NULL, 'the unsubscribe link is a variable of reminders only');
UPDATE paas.notification_templates SET subject = 'Welcome aboard, {{name}}' WHERE kind = 'welcome' AND locale = 'en';
SELECT is((SELECT subject FROM paas.notification_templates WHERE kind = 'welcome' AND locale = 'en' AND builtin),
	'Welcome, {{name}}', 'an UPDATE of a builtin template leaves it as it was');
SELECT is((paas.notify_template('welcome', 'en')).subject, 'Welcome aboard, {{name}}',
	'... and writes the DBA''s row, which wins');
UPDATE paas.notification_templates SET subject = 'Welcome again, {{name}}' WHERE kind = 'welcome' AND locale = 'en';
SELECT is((SELECT count(*) FROM paas.notification_templates WHERE kind = 'welcome' AND locale = 'en'), 2::bigint,
	'a second UPDATE changes the DBA''s row (still one of each)');
SELECT is((paas.notify_template('welcome', 'en')).subject, 'Welcome again, {{name}}', 'the DBA''s row was changed');
SELECT throws_ok($$DELETE FROM paas.notification_templates WHERE kind = 'welcome' AND locale = 'en' AND builtin$$,
	'PT409', 'builtin templates cannot be deleted', 'builtin templates stay');
DELETE FROM paas.notification_templates WHERE kind = 'welcome' AND locale = 'en' AND NOT builtin;
SELECT is((paas.notify_template('welcome', 'en')).subject, 'Welcome, {{name}}',
	'deleting the DBA''s row brings the builtin one back');

-- RFC 2047 ----------------------------------------------------------------------
SELECT is(paas.mail_encode_header('Your top-up of IDR 50,000'), 'Your top-up of IDR 50,000', 'ASCII stays as it is');
SELECT is(paas.mail_encode_header('Tagihan Ñ'), '=?UTF-8?B?' || encode(convert_to('Tagihan Ñ', 'UTF8'), 'base64') || '?=',
	'non-ASCII becomes a base64 encoded-word of its UTF-8');
SELECT is(paas.mail_encode_header(E'a\r\nBcc: x@y'), '=?UTF-8?B?' || encode(convert_to(E'a\r\nBcc: x@y', 'UTF8'), 'base64') || '?=',
	'CR and LF are encoded, never passed into the header');
SELECT is(paas.mail_encode_header('=?UTF-8?B?x?='), '=?UTF-8?B?' || encode('=?UTF-8?B?x?=', 'base64') || '?=',
	'text that looks like an encoded-word is encoded');
CREATE TEMP TABLE words AS
SELECT w FROM regexp_split_to_table(paas.mail_encode_header(repeat('Langganan Ünik ', 20)), E'\r\n ') w;
SELECT ok((SELECT count(*) > 1 AND bool_and(length(w) <= 75) FROM words), 'a long value is split into words of at most 75 characters');
SELECT is((SELECT string_agg(convert_from(decode(substring(w FROM '^=\?UTF-8\?B\?(.*)\?=$'), 'base64'), 'UTF8'), '')
			 FROM (SELECT w, row_number() OVER () AS n FROM words) x),
	repeat('Langganan Ünik ', 20), 'each word decodes on its own (no character is split) and they join to the value');

-- outbox: dedup key, rollback ---------------------------------------------------
INSERT INTO t VALUES ('reg', api.auth_register(
	'{"name": "Nia Pgtap", "email": "nia.pgtap@example.com", "password": "Passw0rdOK", "confirmPassword": "Passw0rdOK"}',
	'{"ip": "10.0.0.9"}'));
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'welcome'), 1::bigint, 'a new account queues its welcome mail');
SELECT ok((SELECT vars ? 'tokenId' FROM pg_temp.last_mail(pg_temp.v('reg', '{user,id}'), 'welcome')),
	'... with a verification token');
SELECT is(paas.notify('welcome', 'welcome:' || pg_temp.v('reg', '{user,id}'), pg_temp.v('reg', '{user,id}')::uuid),
	NULL, 'a second row for the same event is a no-op');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'welcome'), 1::bigint, '... still one welcome mail');
SAVEPOINT before_rollback;
INSERT INTO t VALUES ('gone', api.auth_register(
	'{"name": "Rolled Back", "email": "rolled.back@example.com", "password": "Passw0rdOK", "confirmPassword": "Passw0rdOK"}'));
ROLLBACK TO SAVEPOINT before_rollback;
SELECT is((SELECT count(*) FROM paas.notification_outbox o WHERE o.vars::text LIKE '%' || o.user_id || '%'
			 OR o.user_id NOT IN (SELECT id FROM paas.users)), 0::bigint,
	'an account whose transaction rolled back left no mail');

INSERT INTO paas.users (email, name, password_hash, created_at)
VALUES ('restored.pgtap@example.com', 'Restored', 'x', now() - interval '1 day');
SELECT is((SELECT count(*) FROM paas.notification_outbox o JOIN paas.users u ON u.id = o.user_id
			WHERE u.email = 'restored.pgtap@example.com'), 0::bigint,
	'an account loaded with its old creation time (pg_restore, an import) is no event: no mail');

-- the welcome mail, rendered
SELECT is((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'welcome')).subject, 'Welcome, Nia Pgtap',
	'the welcome subject in the default locale (en here)');
SELECT ok((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'welcome')).body_html
		  ~ 'href="https://app\.pgtap\.test/verify-email\?token=[0-9a-f]{32}\.[0-9a-f]{64}"',
	'the HTML part links to the verification page of paas.public_url with a signed token');
SELECT ok((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'welcome')).body_text LIKE '%valid for 48 hours%',
	'the text part says how long the link is valid');
SELECT is((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'welcome')).list_unsubscribe, NULL,
	'transactional mails carry no List-Unsubscribe');

-- registration with a taken address ----------------------------------------------
INSERT INTO t VALUES ('dup', api.auth_register(
	'{"name": "Someone Else", "email": "NIA.pgtap@example.com", "password": "Other1Passw0rd", "confirmPassword": "Other1Passw0rd"}'));
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys((SELECT v FROM t WHERE k = 'dup')) k),
	(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys((SELECT v FROM t WHERE k = 'reg')) k),
	'registering a taken address answers like a registration');
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys((SELECT v -> 'user' FROM t WHERE k = 'dup')) k),
	(SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys((SELECT v -> 'user' FROM t WHERE k = 'reg')) k),
	'... with a user of the same shape');
SELECT is((SELECT count(*) FROM paas.users WHERE lower(email) = 'nia.pgtap@example.com'), 1::bigint,
	'... and creates no account');
SELECT ok(NOT EXISTS (SELECT 1 FROM paas.sessions WHERE id = pg_temp.v('dup', '{session,sid}')::uuid),
	'... nor a session');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'register_existing'), 1::bigint,
	'the owner of the address is mailed');
SELECT throws_ok(format($$SELECT api.auth_me('{}', %L)$$, (SELECT jsonb_build_object('userId', v #>> '{session,userId}',
		'sid', v #>> '{session,sid}') FROM t WHERE k = 'dup')), 'PT401', NULL,
	'the decoy session is refused at first use');
SELECT lives_ok($$SELECT api.auth_register('{"name": "Third Try", "email": "nia.pgtap@example.com", "password": "Passw0rdOK", "confirmPassword": "Passw0rdOK"}')$$,
	'a second attempt answers the same');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'register_existing'), 1::bigint,
	'... and mails the owner at most once per 10 minutes');

-- e-mail verification ------------------------------------------------------------
INSERT INTO t VALUES ('vtok', to_jsonb(pg_temp.token((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'welcome')).body_text)));
SELECT ok((SELECT v #>> '{}' FROM t WHERE k = 'vtok') IS NOT NULL, 'the welcome mail carries the verification token');
SELECT is((api.auth_notifications('{}', pg_temp.uctx('reg')) ->> 'emailVerified')::boolean, false,
	'a new address is not verified');
SELECT throws_ok($$SELECT api.auth_verify_email(jsonb_build_object('token', left((SELECT v #>> '{}' FROM t WHERE k = 'vtok'), 96)
					|| CASE WHEN right((SELECT v #>> '{}' FROM t WHERE k = 'vtok'), 1) = '0' THEN '1' ELSE '0' END))$$,
	'PT400', 'Invalid or expired verification token', 'a token with a wrong signature is refused');
SELECT throws_ok($$SELECT api.auth_verify_email(jsonb_build_object('token', replace((SELECT v #>> '{}' FROM t WHERE k = 'vtok'), '.', '')))$$,
	'PT400', 'Invalid or expired verification token', 'a malformed token is refused');
SELECT is(api.auth_verify_email(jsonb_build_object('token', (SELECT v #>> '{}' FROM t WHERE k = 'vtok'))) ->> 'verified',
	'true', 'the token verifies the address');
SELECT is((api.auth_notifications('{}', pg_temp.uctx('reg')) ->> 'emailVerified')::boolean, true, '... it is verified');
SELECT is(api.auth_verify_email(jsonb_build_object('token', (SELECT v #>> '{}' FROM t WHERE k = 'vtok'))) ->> 'verified',
	'true', 'a second click answers the same');
SELECT is((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'welcome')).body_text LIKE '%verify-email%', false,
	'a welcome mail sent after the verification has no link');
SELECT is(api.auth_resend_verification('{}', pg_temp.uctx('reg')) ->> 'sent', 'false',
	'nothing to resend for a verified address');
-- a changed address needs a new verification
SELECT lives_ok($$SELECT api.auth_profile_update('{"email": "nia.new@example.com"}', pg_temp.uctx('reg'))$$,
	'the address is changed');
SELECT is((api.auth_notifications('{}', pg_temp.uctx('reg')) ->> 'emailVerified')::boolean, false,
	'the new address is not verified');
SELECT is((SELECT recipient FROM pg_temp.last_mail(pg_temp.v('reg', '{user,id}'), 'verify_email')),
	'nia.new@example.com', 'a verification link goes to the new address');
SELECT throws_ok($$SELECT api.auth_resend_verification('{}', pg_temp.uctx('reg'))$$, 'PT429', NULL,
	'a resend a moment after a link was mailed is refused with a wait');
UPDATE paas.auth_tokens SET created_at = created_at - interval '2 minutes'
 WHERE user_id = pg_temp.v('reg', '{user,id}')::uuid;
SELECT is(api.auth_resend_verification('{}', pg_temp.uctx('reg')) ->> 'sent', 'true', 'a minute later a resend mails a link');
SELECT is((paas.notify_render(o)).suppress, 'the address is verified or the link is no longer valid',
	'the earlier verification mail, not yet sent, is suppressed: its link was replaced')
  FROM (SELECT o FROM paas.notification_outbox o
		 WHERE o.user_id = pg_temp.v('reg', '{user,id}')::uuid AND o.kind = 'verify_email' ORDER BY o.id LIMIT 1) x (o);
SELECT is(api.auth_verify_email(jsonb_build_object('token',
		pg_temp.token((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'verify_email')).body_text))) ->> 'email',
	'nia.new@example.com', 'the new link verifies the new address');

-- verified addresses and top-ups (paas.require_verified_email) ----------------------
INSERT INTO paas.users (id, email, name, password_hash) VALUES
	('00000000-0000-4000-8000-0000000a0001', 'unverified.pgtap@example.com', 'Unverified', 'x');
SET LOCAL paas.require_verified_email = on;
SELECT throws_ok($$INSERT INTO paas.topups (user_id, amount, order_id)
				   VALUES ('00000000-0000-4000-8000-0000000a0001', 50000, 'PGTAP-UNVERIFIED-1')$$,
	'PT403', 'Please verify your e-mail address before topping up', 'an unverified address cannot top up');
SELECT throws_ok($$SELECT api.billing_topup('{"amount": 50000}', '{"userId": "00000000-0000-4000-8000-0000000a0001"}')$$,
	'PT403', NULL, '... through the API either');
SELECT lives_ok(format($$INSERT INTO paas.topups (user_id, amount, order_id) VALUES (%L, 50000, 'PGTAP-VERIFIED-1')$$,
		pg_temp.v('reg', '{user,id}')),
	'a verified address can');
SET LOCAL paas.require_verified_email = off;
SELECT lives_ok($$INSERT INTO paas.topups (user_id, amount, order_id)
				   VALUES ('00000000-0000-4000-8000-0000000a0001', 50000, 'PGTAP-UNVERIFIED-2')$$,
	'with the setting off (the default) anyone can');

-- password reset --------------------------------------------------------------------
SELECT is(api.auth_forgot_password('{"email": "NIA.NEW@example.com"}'), NULL, 'forgot-password answers nothing');
SELECT is(api.auth_forgot_password('{"email": "nobody.pgtap@example.com"}'), NULL, '... for an unknown address too');
SELECT throws_ok($$SELECT api.auth_forgot_password('{"email": "not-an-email"}')$$, 'PT400', 'Validation failed',
	'the address is validated');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'password_reset'), 1::bigint, 'the owner gets a reset link');
SELECT is((SELECT count(*) FROM paas.notification_outbox WHERE kind = 'password_reset' AND user_id IS NULL), 0::bigint,
	'an unknown address gets nothing');
SELECT is(api.auth_forgot_password('{"email": "nia.new@example.com"}'), NULL, 'asking again at once answers the same');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'password_reset'), 1::bigint, '... and mails nothing more');
INSERT INTO t VALUES ('rtok', to_jsonb(pg_temp.token((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'password_reset')).body_text)));
INSERT INTO t VALUES ('login2', api.auth_login('{"email": "nia.new@example.com", "password": "Passw0rdOK"}'));
SELECT throws_ok($$SELECT api.auth_reset_password(jsonb_build_object('token', (SELECT v #>> '{}' FROM t WHERE k = 'rtok'),
				   'newPassword', 'weak', 'confirmNewPassword', 'weak'))$$, 'PT400', 'Validation failed',
	'the new password follows the password rule');
SELECT throws_ok($$SELECT api.auth_reset_password(jsonb_build_object('token', (SELECT v #>> '{}' FROM t WHERE k = 'vtok'),
				   'newPassword', 'N3wPassw0rd', 'confirmNewPassword', 'N3wPassw0rd'))$$,
	'PT400', 'Invalid or expired reset token', 'a verification token is no reset token');
SELECT is(api.auth_reset_password(jsonb_build_object('token', (SELECT v #>> '{}' FROM t WHERE k = 'rtok'),
		  'newPassword', 'N3wPassw0rd', 'confirmNewPassword', 'N3wPassw0rd')), NULL, 'the reset token sets a new password');
SELECT ok((api.auth_login('{"email": "nia.new@example.com", "password": "N3wPassw0rd"}') -> 'user') IS NOT NULL,
	'the new password logs in');
SELECT is((SELECT count(*) FROM paas.sessions WHERE user_id = pg_temp.v('reg', '{user,id}')::uuid
			AND revoked_at IS NULL AND created_at < clock_timestamp() - interval '0 seconds'
			AND id <> ((SELECT v #>> '{session,sid}' FROM t WHERE k = 'login2'))::uuid
			AND revoke_reason IS NULL AND id IN (SELECT (v #>> '{session,sid}')::uuid FROM t WHERE k IN ('reg'))),
	0::bigint, 'the reset revoked the sessions opened before it');
SELECT ok((SELECT revoked_at IS NOT NULL FROM paas.sessions WHERE id = pg_temp.v('login2', '{session,sid}')::uuid),
	'... every one of them');
SELECT throws_ok($$SELECT api.auth_reset_password(jsonb_build_object('token', (SELECT v #>> '{}' FROM t WHERE k = 'rtok'),
				   'newPassword', 'An0therPassw0rd', 'confirmNewPassword', 'An0therPassw0rd'))$$,
	'PT400', 'Invalid or expired reset token', 'a reset token works once');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'password_changed'), 1::bigint,
	'the reset is mailed as a password change');
UPDATE paas.auth_tokens SET created_at = created_at - interval '2 hours', expires_at = now() - interval '1 second'
 WHERE user_id = pg_temp.v('reg', '{user,id}')::uuid AND purpose = 'reset';
SELECT is(api.auth_forgot_password('{"email": "nia.new@example.com"}'), NULL, 'a new reset link');
UPDATE paas.auth_tokens SET expires_at = now() - interval '1 second'
 WHERE user_id = pg_temp.v('reg', '{user,id}')::uuid AND purpose = 'reset' AND used_at IS NULL;
SELECT throws_ok(format($$SELECT api.auth_reset_password(jsonb_build_object('token', %L,
				   'newPassword', 'An0therPassw0rd', 'confirmNewPassword', 'An0therPassw0rd'))$$,
		(SELECT pg_temp.token(body_text) FROM paas.notification_outbox o, paas.notify_render(o) m
		  WHERE o.id = (pg_temp.last_mail(pg_temp.v('reg', '{user,id}'), 'password_reset')).id)),
	'PT400', NULL, 'an expired reset token is refused');
SELECT is((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'password_reset')).suppress,
	'the reset link is no longer valid', 'a reset mail whose link expired before it went is suppressed');

-- preferences and unsubscribe --------------------------------------------------------
SELECT is(api.auth_notifications('{}', pg_temp.uctx('login2') - 'sid')
			- 'emailVerified',
	'{"email": "nia.new@example.com", "locale": "en", "reminders": true, "transactional": true}',
	'the preferences of a user who never set them');
SELECT throws_ok($$SELECT api.auth_notifications_update('{"locale": "fr", "reminders": "maybe"}',
				   jsonb_build_object('userId', pg_temp.v('reg', '{user,id}')))$$, 'PT400', 'Validation failed',
	'locale and reminders are validated');
SELECT throws_ok($$SELECT api.auth_notifications_update('{"transactional": false}',
				   jsonb_build_object('userId', pg_temp.v('reg', '{user,id}')))$$, 'PT400', 'Validation failed',
	'transactional mails cannot be turned off');
SELECT is(api.auth_notifications_update('{"locale": "id"}', jsonb_build_object('userId', pg_temp.v('reg', '{user,id}'))) ->> 'locale',
	'id', 'the locale is set');
SELECT is((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'password_changed')).subject, 'Kata sandi Anda telah diganti',
	'mails use the user''s locale');
SELECT is((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'password_changed')).locale, 'id', '... and say so');

-- subscriptions: sale, renewal, grace, suspension, cancellation, reminders -----------
INSERT INTO paas.services (id, name, display_name, description, docker_image, monthly_price) VALUES
	('00000000-0000-4000-8000-0000000a5001', 'pgtap-mail-svc', 'Ghost <Blog>', 'mail test service', 'ghost:5', 25000),
	('00000000-0000-4000-8000-0000000a5002', 'pgtap-mail-free', 'Free Thing', 'free mail test service', 'nginx:1', 0);
DO $$
BEGIN
	PERFORM paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup',
		'postings', jsonb_build_array(
			jsonb_build_object('account', paas.wallet_account((SELECT (v #>> '{user,id}')::uuid FROM t WHERE k = 'reg')), 'amount', 55000),
			jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -55000)))));
END $$;
INSERT INTO t VALUES ('sub', api.subscriptions_create('{"serviceId": "00000000-0000-4000-8000-0000000a5001"}',
	jsonb_build_object('userId', pg_temp.v('reg', '{user,id}'))));
INSERT INTO t VALUES ('free', api.subscriptions_create('{"serviceId": "00000000-0000-4000-8000-0000000a5002"}',
	jsonb_build_object('userId', pg_temp.v('reg', '{user,id}'))));
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'subscription_charged'), 1::bigint,
	'a paid sale is mailed, a free one is not');
SELECT is((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'subscription_charged')).subject,
	'Langganan Ghost <Blog> aktif', 'the subject names the service (text as it is)');
SELECT ok((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'subscription_charged')).body_html LIKE '%<b>Ghost &lt;Blog&gt;</b>%Rp 25.000%',
	'the HTML part escapes the service name and shows the amount');
SELECT ok((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'subscription_charged')).body_text ~ 'Faktur: INV-[0-9]{6}-[0-9]{6}',
	'the mail names the invoice');
-- due now: the renewal run charges it (renewed), then a short wallet: grace
UPDATE paas.subscriptions SET anchor_at = now() - interval '1 month', current_period_start = now() - interval '1 month',
	   current_period_end = now() - interval '1 minute'
 WHERE id = pg_temp.v('sub', '{id}')::uuid;
SELECT ok((api.run_renewals() ->> 'renewed')::int >= 1, 'the renewal run renews the subscription');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'subscription_renewed'), 1::bigint,
	'the run''s charge is mailed (one statement for the batch)');
SELECT ok((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'subscription_renewed')).body_text LIKE '%(periode 2)%',
	'... with the period');
UPDATE paas.subscriptions SET current_period_start = now() - interval '2 minutes',
	   current_period_end = now() - interval '1 minute'
 WHERE id = pg_temp.v('sub', '{id}')::uuid;
SELECT is((api.run_renewals() ->> 'toGrace')::int, 1, 'the next renewal finds the wallet short');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'renewal_failed'), 1::bigint, 'the failed renewal is mailed');
SELECT ok((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'renewal_failed')).body_text ~ 'saldo Anda Rp 5\.000 \(kurang Rp 20\.000\)',
	'... with the balance and the shortfall');
SELECT is((api.run_renewals() ->> 'toGrace')::int, 0, 'a retry in grace changes no status');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'renewal_failed'), 1::bigint, '... and mails nothing more');
UPDATE paas.subscriptions SET grace_until = now() - interval '1 second' WHERE id = pg_temp.v('sub', '{id}')::uuid;
SELECT is((api.run_renewals() ->> 'suspended')::int, 1, 'grace ran out: suspended');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'subscription_suspended'), 1::bigint, 'the suspension is mailed');
SELECT lives_ok($$SELECT api.subscriptions_cancel(jsonb_build_object('id', pg_temp.v('free', '{id}')),
				  jsonb_build_object('userId', pg_temp.v('reg', '{user,id}')))$$, 'a cancellation');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'subscription_cancelled'), 1::bigint, '... is mailed');
-- reminders
DO $$
BEGIN
	PERFORM paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'topup',
		'postings', jsonb_build_array(
			jsonb_build_object('account', paas.wallet_account((SELECT (v #>> '{user,id}')::uuid FROM t WHERE k = 'reg')), 'amount', 100000),
			jsonb_build_object('account', paas.platform_account('gateway_clearing'), 'amount', -100000)))));
END $$;
SELECT lives_ok($$SELECT api.subscriptions_renew(jsonb_build_object('id', pg_temp.v('sub', '{id}')),
				  jsonb_build_object('userId', pg_temp.v('reg', '{user,id}')))$$, 'the suspended subscription is revived');
UPDATE paas.subscriptions SET current_period_end = now() + interval '2 days' WHERE id = pg_temp.v('sub', '{id}')::uuid;
SELECT ok((paas.job_notify_renewal_reminders() ->> 'queued')::int >= 1, 'the reminder job queues the coming renewal');
SELECT is((paas.job_notify_renewal_reminders() ->> 'queued')::int, 0, 'a second run queues nothing (one per period)');
SELECT ok((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'renewal_reminder')).body_text ~ 'seharga Rp 25\.000\.\nSaldo Anda \(Rp [0-9.]+\) cukup',
	'the reminder says the balance covers the renewal');
SELECT ok((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'renewal_reminder')).list_unsubscribe
		  ~ '^<https://app\.pgtap\.test/api/v1/notifications/unsubscribe\?token=[0-9a-f]{32}\.[0-9a-f]{64}>$',
	'reminders carry a one-click List-Unsubscribe URL');
INSERT INTO t VALUES ('utok', to_jsonb(substring((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'renewal_reminder')).list_unsubscribe
	FROM 'token=([0-9a-f.]+)>')));
SELECT throws_ok($$SELECT api.notifications_unsubscribe(jsonb_build_object('token', (SELECT v #>> '{}' FROM t WHERE k = 'vtok')))$$,
	'PT400', 'Invalid unsubscribe link', 'another link''s token does not unsubscribe');
SELECT is(api.notifications_unsubscribe_info(jsonb_build_object('token', (SELECT v #>> '{}' FROM t WHERE k = 'utok'))) ->> 'reminders',
	'true', 'the unsubscribe page reads without changing anything');
SELECT is(api.notifications_unsubscribe(jsonb_build_object('token', (SELECT v #>> '{}' FROM t WHERE k = 'utok'))),
	'{"email": "n***@example.com", "reminders": false, "transactional": true}', 'one click turns reminders off');
SELECT is((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'renewal_reminder')).suppress, 'the user turned reminders off',
	'a queued reminder is suppressed once the user opted out');
SELECT is((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'subscription_cancelled')).suppress, NULL,
	'transactional mails still go');

-- top-up paid: the mail with the invoice PDF; refunds ----------------------------------
CREATE FUNCTION pg_temp.pay(order_id text, st text DEFAULT 'settlement') RETURNS text LANGUAGE sql AS $$
	SELECT paas.midtrans_apply(jsonb_build_object('order_id', order_id, 'transaction_status', st,
		'fraud_status', 'accept', 'gross_amount', '50000.00', 'status_code', '200', 'currency', 'IDR',
		'payment_type', 'bank_transfer', 'transaction_id', gen_random_uuid()), 'reconcile') ->> 'outcome' $$;
INSERT INTO paas.topup_orders (order_id, topup_id)
SELECT order_id, id FROM paas.topups WHERE order_id IN ('PGTAP-VERIFIED-1', 'PGTAP-UNVERIFIED-2');
SELECT is(pg_temp.pay('PGTAP-VERIFIED-1'), 'credited', 'a top-up is paid');
SELECT is(pg_temp.pay('PGTAP-VERIFIED-1'), 'duplicate', '... and its notification comes again');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'topup_paid'), 1::bigint, 'the credited top-up is mailed once');
INSERT INTO t SELECT 'paid', to_jsonb(m) FROM pg_temp.render(pg_temp.v('reg', '{user,id}'), 'topup_paid') m;
SELECT is(pg_temp.v('paid', '{subject}'), 'Isi saldo Rp 50.000 berhasil', 'the subject shows the amount');
SELECT ok(pg_temp.v('paid', '{attachment_name}') ~ '^INV-[0-9]{6}-[0-9]{6,}\.pdf$', 'the invoice is attached by its number');
SELECT is(substring(decode(substring(pg_temp.v('paid', '{attachment}') FROM 3), 'hex') FROM 1 FOR 5), '%PDF-'::bytea,
	'... as a PDF');
SELECT ok(pg_temp.v('paid', '{body_text}') ~ 'Saldo Anda sekarang Rp [0-9.]+', 'the mail shows the balance after the credit');
SELECT is(pg_temp.pay('PGTAP-VERIFIED-1', 'refund'), 'reversed', 'the top-up is refunded');
SELECT is(pg_temp.mails(pg_temp.v('reg', '{user,id}'), 'refund_issued'), 1::bigint, 'the refund is mailed');
SELECT ok((pg_temp.render(pg_temp.v('reg', '{user,id}'), 'refund_issued')).body_text LIKE '%Rp 50.000%PGTAP-VERIFIED-1%',
	'... with its amount and order');

-- admins: nodes, blocked reversals, failing jobs -------------------------------------
INSERT INTO t VALUES ('adm', jsonb_build_object('id', api.seed_admin('mail-admin-pgtap@example.com', 'AdminPassw0rd')));
INSERT INTO paas.node_transitions (node_id, node_name, from_status, to_status, event, actor, reason)
VALUES (gen_random_uuid(), 'pg-node-mail', 'ACTIVE', 'NOT_READY', 'heartbeat_timeout', 'monitor', 'no heartbeat for 90 s'),
	   (gen_random_uuid(), 'pg-node-ok', 'PENDING', 'ACTIVE', 'register', 'node', NULL);
SELECT is((SELECT count(*) FROM paas.notification_outbox WHERE kind = 'admin_node_down'
			AND user_id = pg_temp.v('adm', '{id}')::uuid), 1::bigint, 'a node going NOT_READY is mailed to each admin');
SELECT ok((pg_temp.render(pg_temp.v('adm', '{id}'), 'admin_node_down')).subject LIKE '%pg-node-mail%NOT_READY%',
	'... naming the node and its status');
SET LOCAL paas.mail_admin_to = 'ops@pgtap.test, oncall@pgtap.test';
INSERT INTO paas.job_run (job, started_at, finished_at, ok, error)
VALUES ('heartbeat', now(), now(), false, 'pgtap: division by zero'),
	   ('heartbeat', now(), now(), false, 'pgtap: again');
SELECT is((SELECT array_agg(recipient ORDER BY recipient) FROM paas.notification_outbox WHERE kind = 'admin_job_failed'
			AND vars ->> 'error' LIKE 'pgtap:%'), ARRAY['oncall@pgtap.test', 'ops@pgtap.test'],
	'a failing job is mailed to paas.mail_admin_to, once per job and hour');
SET LOCAL paas.mail_admin_to = '';
-- the unverified user spends the credit; a chargeback finds the wallet short
SELECT is(pg_temp.pay('PGTAP-UNVERIFIED-2'), 'credited', 'another top-up is paid');
DO $$
BEGIN
	PERFORM paas.ledger_post(NULL, jsonb_build_array(jsonb_build_object('kind', 'adjustment',
		'postings', jsonb_build_array(
			jsonb_build_object('account', paas.wallet_account('00000000-0000-4000-8000-0000000a0001'), 'amount', -50000),
			jsonb_build_object('account', paas.platform_account('revenue'), 'amount', 50000)))));
END $$;
SELECT is(pg_temp.pay('PGTAP-UNVERIFIED-2', 'chargeback'), 'reversal_blocked', 'its chargeback is blocked');
SELECT is((SELECT count(*) FROM paas.notification_outbox WHERE kind = 'admin_reversal_blocked'
			AND user_id = pg_temp.v('adm', '{id}')::uuid), 1::bigint, 'a blocked reversal is mailed to the admins');
SELECT ok((pg_temp.render(pg_temp.v('adm', '{id}'), 'admin_reversal_blocked')).body_text
		  LIKE '%CHARGEBACK of IDR 50,000 for order PGTAP-UNVERIFIED-2 (unverified.pgtap@example.com)%', '... with the customer and the amount');

-- the mailer's cycle: claim, record, leases, backoff, limits ---------------------------
UPDATE paas.notification_outbox SET due_at = now() + interval '1 day' WHERE status = 'PENDING';
UPDATE paas.notification_outbox SET due_at = now() - interval '1 second'
 WHERE id = (pg_temp.last_mail(pg_temp.v('reg', '{user,id}'), 'topup_paid')).id;
INSERT INTO t SELECT 'claim', to_jsonb(c) FROM paas.notify_claim(10, interval '1 minute') c;
SELECT is((SELECT v ->> 'id' FROM t WHERE k = 'claim')::bigint, (pg_temp.last_mail(pg_temp.v('reg', '{user,id}'), 'topup_paid')).id,
	'the claim returns the due mail');
SELECT ok(pg_temp.v('claim', '{message_id}') ~ '^<paas\.[0-9]+\.[0-9]{14}@pgtap\.test>$',
	'... with a Message-ID of its row at the sender''s domain');
SELECT is((pg_temp.last_mail(pg_temp.v('reg', '{user,id}'), 'topup_paid')).status, 'SENDING', '... marked SENDING');
SELECT is((SELECT count(*) FROM paas.notify_claim(10, interval '1 minute')), 0::bigint, 'a claimed mail is not claimed twice');
SELECT is(paas.notify_record((SELECT (v ->> 'id')::bigint FROM t WHERE k = 'claim'), 1, 'temporary', 451, '451 4.7.1 try later'),
	'PENDING', 'a 4xx puts it back');
SELECT ok((SELECT due_at > now() AND attempts = 1 AND last_error = '451 4.7.1 try later'
			 FROM pg_temp.last_mail(pg_temp.v('reg', '{user,id}'), 'topup_paid')), '... due later, the error kept');
UPDATE paas.notification_outbox SET due_at = now() - interval '1 second'
 WHERE id = (SELECT (v ->> 'id')::bigint FROM t WHERE k = 'claim');
SELECT is((SELECT message_id FROM paas.notify_claim(10, interval '1 minute')), pg_temp.v('claim', '{message_id}'),
	'the next attempt carries the same Message-ID');
UPDATE paas.notification_outbox SET due_at = now() - interval '1 second'
 WHERE id = (SELECT (v ->> 'id')::bigint FROM t WHERE k = 'claim');
SELECT is((SELECT attempt FROM paas.notify_claim(10, interval '1 minute')), 3,
	'a lease that ran out (the mailer died) is claimed again, as the next attempt');
SELECT is(paas.notify_record((SELECT (v ->> 'id')::bigint FROM t WHERE k = 'claim'), 2, 'temporary', 451, 'stale'),
	'SENDING', 'the outcome of a superseded attempt changes nothing');
SELECT is(paas.notify_record((SELECT (v ->> 'id')::bigint FROM t WHERE k = 'claim'), 3, 'sent', 250, '250 2.0.0 OK queued'),
	'SENT', 'a 250 makes it SENT');
SELECT is((SELECT count(*) FROM paas.notification_deliveries WHERE outbox_id = (SELECT (v ->> 'id')::bigint FROM t WHERE k = 'claim')),
	3::bigint, 'every attempt is kept');
-- the server itself unavailable: the attempt is not counted
SELECT paas.notify('admin_job_failed', 'pgtap-down', NULL, '{"job": "x", "error": "y", "at": "2025-01-01T00:00:00Z"}', 'down@pgtap.test');
UPDATE paas.notification_outbox SET due_at = now() - interval '1 second' WHERE dedup_key = 'pgtap-down';
SELECT is((SELECT paas.notify_record(c.id, c.attempt, 'unavailable', NULL, 'Could not connect to server')
			 FROM paas.notify_claim(10, interval '1 minute') c), 'PENDING',
	'an unavailable server puts the mail back');
SELECT is((SELECT attempts || ' ' || last_error FROM paas.notification_outbox WHERE dedup_key = 'pgtap-down'),
	'0 Could not connect to server', '... without counting the attempt, the error kept');
UPDATE paas.notification_outbox SET status = 'SUPPRESSED' WHERE dedup_key = 'pgtap-down';
-- permanent failures and the attempt limit
SELECT paas.notify('admin_job_failed', 'pgtap-perm', NULL, '{"job": "x", "error": "y", "at": "2025-01-01T00:00:00Z"}', 'reject@pgtap.test');
SELECT paas.notify('admin_job_failed', 'pgtap-max', NULL, '{"job": "x", "error": "y", "at": "2025-01-01T00:00:00Z"}', 'tempfail@pgtap.test');
UPDATE paas.notification_outbox SET due_at = now() - interval '1 second' WHERE dedup_key IN ('pgtap-perm', 'pgtap-max');
SET LOCAL paas.mail_max_attempts = 1;
SELECT is((SELECT array_agg(paas.notify_record(c.id, c.attempt, CASE c.recipient WHEN 'reject@pgtap.test' THEN 'permanent' ELSE 'temporary' END,
									 CASE c.recipient WHEN 'reject@pgtap.test' THEN 550 ELSE 451 END, 'no') ORDER BY c.recipient)
			 FROM paas.notify_claim(10, interval '1 minute') c), ARRAY['FAILED', 'FAILED'],
	'a 5xx fails for good; so does a 4xx at the last attempt');
SELECT is((SELECT last_error FROM paas.notification_outbox WHERE dedup_key = 'pgtap-max'), 'gave up after 1 attempts: no',
	'... saying why');
-- the backoff
SET LOCAL paas.mail_retry_base = '10s';
SET LOCAL paas.mail_retry_max = '1min';
SELECT ok(paas.notify_backoff(1) BETWEEN interval '8 seconds' AND interval '12 seconds', 'the first retry waits the base (+-20%)');
SELECT ok(paas.notify_backoff(3) BETWEEN interval '32 seconds' AND interval '48 seconds', 'each retry doubles the wait');
SELECT ok(paas.notify_backoff(20) BETWEEN interval '48 seconds' AND interval '72 seconds', 'up to paas.mail_retry_max');
-- the per-recipient limit
SET LOCAL paas.mail_per_recipient_per_hour = 2;
SELECT paas.notify('admin_job_failed', 'pgtap-limit-' || i, NULL, '{"job": "x", "error": "y", "at": "2025-01-01T00:00:00Z"}',
				   'busy@pgtap.test') FROM generate_series(1, 3) i;
UPDATE paas.notification_outbox SET due_at = now() - interval '1 second' WHERE dedup_key LIKE 'pgtap-limit-%';
SELECT is((SELECT count(*) FROM paas.notify_claim(10, interval '1 minute')), 2::bigint,
	'no more than paas.mail_per_recipient_per_hour mails to one address are claimed');
SELECT ok((SELECT due_at > now() AND status = 'PENDING' AND last_error LIKE 'per-recipient limit%'
			 FROM paas.notification_outbox WHERE dedup_key = 'pgtap-limit-3'), '... the next one waits for its slot');
SELECT is(paas.notify_release(ARRAY(SELECT id FROM paas.notification_outbox WHERE dedup_key LIKE 'pgtap-limit-%'
									  AND status = 'SENDING'), interval '5 seconds'), 2,
	'claimed mails can be given back');
SELECT is((SELECT array_agg(attempts) FROM paas.notification_outbox WHERE dedup_key IN ('pgtap-limit-1', 'pgtap-limit-2')),
	ARRAY[0, 0], '... without counting an attempt');
-- a mail that cannot be rendered
INSERT INTO paas.notification_kinds (kind, category, variables, description)
VALUES ('pgtap_kind', 'admin', '{}', 'a kind without templates');
SELECT paas.notify('pgtap_kind', 'pgtap-render-fail', NULL, '{}', 'x1@pgtap.test');
SELECT paas.notify('admin_job_failed', 'pgtap-render-ok', NULL, '{"job": "x", "error": "y", "at": "2025-01-01T00:00:00Z"}',
				   'x2@pgtap.test');
UPDATE paas.notification_outbox SET due_at = now() - interval '1 second' WHERE dedup_key IN ('pgtap-render-fail', 'pgtap-render-ok');
SELECT is((SELECT array_agg(recipient) FROM paas.notify_claim(10, interval '1 minute')), ARRAY['x2@pgtap.test'],
	'a mail that cannot be rendered does not hold up the others');
SELECT is((SELECT status || ': ' || last_error FROM paas.notification_outbox WHERE dedup_key = 'pgtap-render-fail'),
	'FAILED: rendering failed: no template for kind pgtap_kind', '... it FAILED, saying why');

-- suppression at claim time
UPDATE paas.notification_outbox SET due_at = now() - interval '1 second'
 WHERE id = (pg_temp.last_mail(pg_temp.v('reg', '{user,id}'), 'renewal_reminder')).id;
SELECT is((SELECT count(*) FROM paas.notify_claim(10, interval '1 minute')), 0::bigint, 'a suppressed mail is not claimed');
SELECT is((pg_temp.last_mail(pg_temp.v('reg', '{user,id}'), 'renewal_reminder')).status, 'SUPPRESSED', '... it is SUPPRESSED');

-- the admin API ----------------------------------------------------------------------
INSERT INTO t VALUES ('admlogin', api.auth_login('{"email": "mail-admin-pgtap@example.com", "password": "AdminPassw0rd"}'));
CREATE FUNCTION pg_temp.actx() RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('userId', v #>> '{session,userId}', 'role', 'ADMINISTRATOR',
								 'sid', v #>> '{session,sid}') FROM t WHERE k = 'admlogin' $$;
SELECT throws_ok($$SELECT api.admin_notifications('{}', pg_temp.uctx('login2'))$$, 'PT401', NULL,
	'the list is for administrators (a revoked session is refused first)');
SELECT throws_ok($$SELECT api.admin_notifications('{}', jsonb_build_object('userId', pg_temp.v('reg', '{user,id}')))$$,
	'PT403', NULL, 'the list is for administrators');
SELECT throws_ok($$SELECT api.admin_notifications('{"status": "LOST", "kind": "nope", "limit": 1000}', pg_temp.actx())$$,
	'PT400', 'Validation failed', 'filters are validated');
SELECT is((api.admin_notifications('{"status": "FAILED", "search": "reject@pgtap"}', pg_temp.actx()) #>> '{data,0,lastError}'),
	'no', 'failed mails are listed with their last error');
SELECT is((api.admin_notifications(jsonb_build_object('userId', pg_temp.v('reg', '{user,id}'), 'limit', 2),
		   pg_temp.actx()) #>> '{pagination,hasNext}'), 'true', 'the list is paginated');
SELECT is(jsonb_array_length(api.admin_notification_get(jsonb_build_object('id', pg_temp.v('claim', '{id}')),
		  pg_temp.actx()) -> 'deliveries'), 3, 'one mail with every attempt');
SELECT throws_ok(format($$SELECT api.admin_notification_resend(jsonb_build_object('id', %s), pg_temp.actx())$$,
		(SELECT id FROM paas.notification_outbox WHERE dedup_key = 'pgtap-limit-3')), 'PT409', NULL,
	'a mail still queued is not resent');
INSERT INTO t VALUES ('resent', api.admin_notification_resend(jsonb_build_object('id', pg_temp.v('claim', '{id}')), pg_temp.actx()));
SELECT is(pg_temp.v('resent', '{resentFrom}'), pg_temp.v('claim', '{id}'), 'a sent mail is resent as a new one');
SELECT is(pg_temp.v('resent', '{status}'), 'PENDING', '... queued');
SELECT throws_ok($$SELECT api.admin_notification_resend('{"id": "999999999"}', pg_temp.actx())$$, 'PT404', NULL,
	'an unknown id answers 404');

SELECT finish();
ROLLBACK;
