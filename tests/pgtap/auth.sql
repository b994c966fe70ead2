-- auth: api.auth_* called as the gateway would (sql/parts/10_identity.sql,
-- 11_auth.sql): registration, login, the caller's identity and profile,
-- token rotation and reuse, password change, logout, every error SQLSTATE,
-- and failed-login accounting.
BEGIN;
SELECT plan(75);

\ir include/accounts.sql

-- register
SELECT is(pg_temp.v('reg', '{user,email}'), 'Pat.Tester@Example.com', 'register keeps the email as given');
SELECT is(pg_temp.v('reg', '{user,role}'), 'USER', 'register creates a USER');
SELECT is(length(pg_temp.v('reg', '{refreshToken}')), 64, 'refresh token is 256 bits (hex)');
SELECT ok(pg_temp.v('reg', '{session,sid}') IS NOT NULL, 'register opens a session');
SELECT lives_ok($$SELECT api.auth_register('{"name": "Dup", "email": "pat.tester@example.COM", "password": "Passw0rdOK", "confirmPassword": "Passw0rdOK"}')$$,
	'a taken email answers like a registration (the owner is mailed, 75_notifications.sql)');
SELECT is((SELECT count(*)::int FROM paas.users WHERE lower(email) = 'pat.tester@example.com'), 1,
	'emails are unique case-insensitively');
SELECT throws_ok($$SELECT api.auth_register('{}')$$, 'PT400', 'Validation failed', 'register validates');
SELECT throws_ok($$SELECT api.auth_register('[1]')$$, 'PT400', 'Validation failed', 'register wants an object');
SELECT is((SELECT count(*)::int FROM paas.users WHERE password_hash LIKE '$2a$10$%'
			AND lower(email) = 'pat.tester@example.com'), 1, 'password stored as bcrypt cost 10');

-- validation lists every failing field
\ir include/fields.sql
SELECT is(pg_temp.fields($$SELECT api.auth_register('{"name": 1, "email": "x@y", "password": "abcdefgh", "confirmPassword": "zz"}')$$),
	ARRAY['confirmPassword', 'email', 'name', 'password'], 'every failing register field is listed');
SELECT is(pg_temp.fields($$SELECT api.auth_register('{"name": "Okay", "email": "ok@example.com", "password": "NoDigitsHere", "confirmPassword": "NoDigitsHere"}')$$),
	ARRAY['password'], 'password needs a digit');
SELECT is(pg_temp.fields($$SELECT api.auth_register('{"name": "Okay", "email": "ok@example.com", "password": "nouppercase1", "confirmPassword": "nouppercase1"}')$$),
	ARRAY['password'], 'password needs an upper-case letter');

-- login
SELECT is((api.auth_login('{"email": "PAT.tester@example.com", "password": "Passw0rdOK"}') #>> '{user,id}'),
	pg_temp.v('reg', '{user,id}'), 'login is case-insensitive on email');
SELECT is(api.auth_login('{"email": "pat.tester@example.com", "password": "wrong"}') -> '$error',
	'{"sqlstate": "PT401", "message": "Invalid email or password"}', 'wrong password: a committed refusal (401)');
SELECT throws_ok($$SELECT api.auth_login('{"email": "nobody@example.com", "password": "Passw0rdOK"}')$$,
	'PT401', 'Invalid email or password', 'unknown email gives the same error');
SELECT throws_ok($$SELECT api.auth_login('{"email": 7}')$$, 'PT400', 'Validation failed', 'login validates');

-- me / profile
SELECT is(api.auth_me('{}', pg_temp.uctx()) #>> '{user,id}', pg_temp.v('reg', '{user,id}'), 'me');
SELECT throws_ok($$SELECT api.auth_me('{}', '{}')$$, 'PT401', 'Access token required', 'me needs an identity');
SELECT is(api.auth_me_batch(jsonb_build_array(jsonb_build_object('req', '{}'::jsonb, 'ctx', pg_temp.uctx()),
											  jsonb_build_object('req', '{}'::jsonb, 'ctx', pg_temp.uctx()))),
	jsonb_build_array(api.auth_me('{}', pg_temp.uctx()), api.auth_me('{}', pg_temp.uctx())),
	'a batch of /auth/me calls answers each as a single call, in order');
SELECT throws_ok($$SELECT api.auth_me_batch(jsonb_build_array(jsonb_build_object('req', '{}'::jsonb, 'ctx', pg_temp.uctx()),
															  jsonb_build_object('req', '{}'::jsonb, 'ctx', '{}'::jsonb)))$$,
	'PT401', 'Access token required', 'an item''s refusal fails the batch');
SELECT throws_ok($$SELECT api.auth_me_batch((SELECT jsonb_agg('{}'::jsonb) FROM generate_series(1, 1001)))$$,
	'PT400', 'Validation failed', 'a batch holds at most 1000 calls');
SELECT throws_ok($$SELECT api.auth_me('{}', '{"userId": "00000000-0000-0000-0000-000000000000"}')$$,
	'PT401', 'Invalid token - user not found', 'unknown user');
SELECT throws_ok(format($$SELECT api.auth_me('{}', '{"userId": "%s", "sid": "00000000-0000-0000-0000-000000000000"}')$$,
	pg_temp.v('reg', '{user,id}')), 'PT401', 'Session has been revoked', 'a foreign session is refused');
SELECT is(api.auth_profile_update('{"name": "Pat Renamed"}', pg_temp.uctx()) ->> 'name', 'Pat Renamed', 'profile update');
SELECT throws_ok($$SELECT api.auth_profile_update('{"email": "ROOT-pgtap@example.com"}', pg_temp.uctx())$$,
	'PT409', 'Email is already taken', 'profile email must be free');
SELECT throws_ok($$SELECT api.auth_profile_update('{"name": ""}', pg_temp.uctx())$$, 'PT400', 'Validation failed', 'profile validates');

-- refresh rotation, grace for a duplicate, reuse revokes the family
INSERT INTO t VALUES ('r1', api.auth_refresh(jsonb_build_object('refreshToken', pg_temp.v('reg', '{refreshToken}'))));
SELECT isnt(pg_temp.v('r1', '{refreshToken}'), pg_temp.v('reg', '{refreshToken}'), 'refresh rotates');
SELECT is(pg_temp.v('r1', '{session,sid}'), pg_temp.v('reg', '{session,sid}'), 'the session id is kept');
SELECT is(api.auth_refresh(jsonb_build_object('refreshToken', pg_temp.v('reg', '{refreshToken}'))) ->> 'refreshToken',
	pg_temp.v('r1', '{refreshToken}'), 'a duplicate within the grace returns the current token');
UPDATE paas.refresh_tokens SET used_at = used_at - interval '11 seconds';
SELECT is(api.auth_refresh(jsonb_build_object('refreshToken', pg_temp.v('reg', '{refreshToken}'))) #>> '{$error,sqlstate}',
	'PT401', 'reuse after the grace is refused (committed refusal)');
SELECT ok((SELECT revoked_at IS NOT NULL FROM paas.sessions WHERE id = (pg_temp.v('reg', '{session,sid}'))::uuid),
	'reuse revoked the session');
SELECT throws_ok(format($$SELECT api.auth_refresh('{"refreshToken": "%s"}')$$, pg_temp.v('r1', '{refreshToken}')),
	'PT401', 'Invalid or expired refresh token', 'the whole family is dead');
SELECT throws_ok($$SELECT api.auth_me('{}', pg_temp.uctx())$$, 'PT401', 'Session has been revoked',
	'access through the revoked session stops at once');
SELECT throws_ok($$SELECT api.auth_refresh('{"refreshToken": "nope"}')$$, 'PT401', 'Invalid or expired refresh token', 'unknown token');
SELECT throws_ok($$SELECT api.auth_refresh('{}')$$, 'PT400', 'Validation failed', 'refresh validates');

-- new login for the remaining user tests
UPDATE t SET v = api.auth_login('{"email": "pat.tester@example.com", "password": "Passw0rdOK"}') WHERE k = 'reg';

-- change password
SELECT throws_ok($$SELECT api.auth_change_password('{"currentPassword": "bad", "newPassword": "NewPassw0rd", "confirmNewPassword": "NewPassw0rd"}', pg_temp.uctx())$$,
	'PU400', 'Current password is incorrect', 'current password checked: PU400 (INVALID_PASSWORD, as the original)');
SELECT throws_ok($$SELECT api.auth_change_password('{"currentPassword": "Passw0rdOK", "newPassword": "short", "confirmNewPassword": "other"}', pg_temp.uctx())$$,
	'PT400', 'Validation failed', 'new password validated');
INSERT INTO t VALUES ('second', api.auth_login('{"email": "pat.tester@example.com", "password": "Passw0rdOK"}'));
SELECT lives_ok($$SELECT api.auth_change_password('{"currentPassword": "Passw0rdOK", "newPassword": "NewPassw0rd", "confirmNewPassword": "NewPassw0rd"}', pg_temp.uctx())$$,
	'change password');
SELECT ok((SELECT revoked_at IS NOT NULL FROM paas.sessions WHERE id = (pg_temp.v('second', '{session,sid}'))::uuid),
	'other sessions are revoked');
SELECT ok((SELECT revoked_at IS NULL FROM paas.sessions WHERE id = (pg_temp.v('reg', '{session,sid}'))::uuid),
	'the current session survives');

-- logout
SELECT is(api.auth_logout('{}', pg_temp.uctx()) ->> 'sessionsRevoked', '1', 'logout revokes this session');
SELECT throws_ok($$SELECT api.auth_logout('{"all": "sometimes"}', pg_temp.uctx())$$, 'PT401', NULL, 'revoked session cannot log out again');

-- failed logins: counted with the account, under its lock, kept although refused
INSERT INTO t VALUES ('fay', api.auth_register(
	'{"name": "Fay Lure", "email": "fay@example.com", "password": "Passw0rdOK", "confirmPassword": "Passw0rdOK"}',
	'{"ip": "10.7.0.1"}'));
SET LOCAL paas.login_failures_per_address = 3;
SET LOCAL paas.login_failures_per_account = 4;
CREATE FUNCTION pg_temp.fay() RETURNS uuid LANGUAGE sql AS $$ SELECT (v #>> '{user,id}')::uuid FROM t WHERE k = 'fay' $$;
CREATE FUNCTION pg_temp.login(pw text, ip text) RETURNS jsonb LANGUAGE sql AS
	$$ SELECT api.auth_login(jsonb_build_object('email', 'FAY@example.com', 'password', pw), jsonb_build_object('ip', ip)) $$;
CREATE FUNCTION pg_temp.refused(pw text, ip text) RETURNS boolean LANGUAGE sql AS
	$$ SELECT pg_temp.login(pw, ip) #>> '{$error,sqlstate}' = 'PT401' $$;
CREATE FUNCTION pg_temp.retry_after(q text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	EXECUTE q;
	RETURN NULL;
EXCEPTION WHEN SQLSTATE 'PT429' THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN d::int;
END $$;
-- the time an account must wait passes (the clock is moved instead)
CREATE FUNCTION pg_temp.wait_out() RETURNS void LANGUAGE sql AS $$
	UPDATE paas.users SET failed_login_at = failed_login_at - (login_blocked_until - clock_timestamp()),
						  login_blocked_until = clock_timestamp()
	 WHERE id = pg_temp.fay() $$;
CREATE FUNCTION pg_temp.block() RETURNS interval LANGUAGE sql AS
	$$ SELECT login_blocked_until - failed_login_at FROM paas.users WHERE id = pg_temp.fay() $$;

SELECT is((SELECT last_success_at IS NOT NULL FROM paas.login_failures WHERE user_id = pg_temp.fay() AND client = '10.7.0.1'),
	true, 'the registering address is known to the account');
SELECT ok(pg_temp.refused('Wrong0ne1', '10.7.0.2'), 'a wrong password is refused (401)');
SELECT is((SELECT round(failures)::int FROM paas.login_failures WHERE user_id = pg_temp.fay() AND client = '10.7.0.2'), 1,
	'the failure is counted per (account, address) although the call was refused');
SELECT is((SELECT failed_logins FROM paas.users WHERE id = pg_temp.fay()), 1, 'and for the account (an unknown address)');
SELECT ok(pg_temp.refused('Wrong0ne2', '10.7.0.2') AND pg_temp.refused('Wrong0ne3', '10.7.0.2'), 'two more');
SELECT throws_ok($$SELECT pg_temp.login('Passw0rdOK', '10.7.0.2')$$, 'PT429',
	'Too many failed login attempts, please try again later',
	'past paas.login_failures_per_address the address gets 429, even with the right password');
SELECT ok(pg_temp.retry_after($$SELECT pg_temp.login('Passw0rdOK', '10.7.0.2')$$) BETWEEN 1 AND 20,
	'the 429 says when to retry: seconds, in DETAIL (httpd''s Retry-After)');
SELECT is((SELECT round(failures)::int FROM paas.login_failures WHERE user_id = pg_temp.fay() AND client = '10.7.0.2'), 3,
	'a refused attempt is not a failure (no password was checked)');
SELECT is(pg_temp.login('Passw0rdOK', '10.7.0.1') #>> '{user,id}', pg_temp.fay()::text, 'another address still logs in');

-- per account over unknown addresses: back-off doubling from 1 s
SELECT ok(pg_temp.refused('Wrong0ne4', '10.7.0.3'), 'a fourth failure from unknown addresses');
SELECT is(pg_temp.block(), interval '1 second', 'reaching paas.login_failures_per_account: unknown addresses wait 1 s');
DO $$ BEGIN PERFORM pg_temp.wait_out(); END $$;
SELECT ok(pg_temp.refused('Wrong0ne5', '10.7.0.4'), 'a fifth');
SELECT is(pg_temp.block(), interval '2 seconds', 'then 2 s');
DO $$ BEGIN PERFORM pg_temp.wait_out(); END $$;
SELECT ok(pg_temp.refused('Wrong0ne6', '10.7.0.5'), 'a sixth');
SELECT is(pg_temp.block(), interval '4 seconds', 'then 4 s');
SELECT ok(pg_temp.retry_after($$SELECT pg_temp.login('Passw0rdOK', '10.7.0.6')$$) BETWEEN 1 AND 4,
	'an unknown address waits, even with the right password');
SELECT is(pg_temp.login('Passw0rdOK', '10.7.0.1') #>> '{user,id}', pg_temp.fay()::text,
	'a known address does not: the owner is not locked out');
SELECT ok(pg_temp.refused('Wrong0ne7', '10.7.0.1'), 'the owner mistypes');
SELECT is((SELECT failed_logins FROM paas.users WHERE id = pg_temp.fay()), 6, 'a known address''s failure does not count for the account');
SELECT is((SELECT round(failures)::int FROM paas.login_failures WHERE user_id = pg_temp.fay() AND client = '10.7.0.1'), 1,
	'but in its own bucket');
SELECT is(pg_temp.login('Passw0rdOK', '10.7.0.1') #>> '{user,id}', pg_temp.fay()::text, 'the owner logs in');
SELECT is((SELECT failures FROM paas.login_failures WHERE user_id = pg_temp.fay() AND client = '10.7.0.1'), 0::float8,
	'a successful login empties that address''s bucket');
SELECT is((SELECT round(failures)::int FROM paas.login_failures WHERE user_id = pg_temp.fay() AND client = '10.7.0.2'), 3,
	'and no other');
UPDATE paas.users SET failed_login_at = failed_login_at - interval '1 day', login_blocked_until = NULL WHERE id = pg_temp.fay();
SELECT ok(pg_temp.refused('Wrong0ne8', '10.7.0.7'), 'a failure a day later');
SELECT is((SELECT failed_logins FROM paas.users WHERE id = pg_temp.fay()), 1, 'starts the account''s count again');
SELECT throws_ok($$SELECT api.auth_login('{"email": "nobody-fay@example.com", "password": "Passw0rdOK"}', '{"ip": "10.7.0.2"}')$$,
	'PT401', 'Invalid email or password', 'an unknown email is refused as before (nothing to count on)');
RESET paas.login_failures_per_address;
RESET paas.login_failures_per_account;

-- client addresses
SELECT is(paas.login_client('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64', 'IPv6 addresses count per /64');
SELECT is(paas.login_client('::ffff:10.1.2.3'), '::ffff:10.1.2.3', 'IPv4-mapped addresses are hosts');
SELECT is(paas.login_client('10.1.2.3'), '10.1.2.3', 'IPv4 addresses are hosts');
SELECT is(paas.login_client(NULL), '', 'no address (a DBA session)');
SELECT is(paas.login_client('not an address'), 'not an address', 'anything else as given');

-- the prune job keeps what still limits or vouches
UPDATE paas.login_failures SET at = at - interval '2 hours' WHERE user_id = pg_temp.fay();
SELECT is((paas.job_prune_login_failures() ->> 'deleted')::int, 5, 'drained buckets of unknown addresses are deleted');
SELECT is((SELECT array_agg(client) FROM paas.login_failures WHERE user_id = pg_temp.fay()), ARRAY['10.7.0.1'],
	'known addresses stay');

SELECT finish();
ROLLBACK;
