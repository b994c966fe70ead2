-- accounts: api.auth_* and api.users_* called as the gateway would, every
-- error SQLSTATE, token rotation and reuse, identity checks.
BEGIN;
SELECT plan(63);

-- Fixtures: a user and an admin created through the api.
CREATE TEMP TABLE t (k text PRIMARY KEY, v jsonb);
INSERT INTO t VALUES ('reg', api.auth_register(
	'{"name": "Pat Tester", "email": "Pat.Tester@Example.com", "password": "Passw0rdOK", "confirmPassword": "Passw0rdOK"}',
	'{"ip": "10.0.0.1", "userAgent": "pgtap"}'));
INSERT INTO t VALUES ('adm', jsonb_build_object('id',
	api.seed_admin('root-pgtap@example.com', 'AdminPassw0rd')));
INSERT INTO t VALUES ('admlogin', api.auth_login('{"email": "root-pgtap@example.com", "password": "AdminPassw0rd"}'));

CREATE FUNCTION pg_temp.v(key text, path text[]) RETURNS text LANGUAGE sql AS
	$$ SELECT v #>> path FROM t WHERE k = key $$;
CREATE FUNCTION pg_temp.uctx() RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('userId', v #>> '{session,userId}', 'role', 'USER',
								 'sid', v #>> '{session,sid}') FROM t WHERE k = 'reg' $$;
CREATE FUNCTION pg_temp.actx() RETURNS jsonb LANGUAGE sql AS
	$$ SELECT jsonb_build_object('userId', v #>> '{session,userId}', 'role', 'ADMINISTRATOR',
								 'sid', v #>> '{session,sid}') FROM t WHERE k = 'admlogin' $$;

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
CREATE FUNCTION pg_temp.fields(q text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
	EXECUTE q;
	RETURN NULL;
EXCEPTION WHEN SQLSTATE 'PT400' THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN (SELECT array_agg(e ->> 'field' ORDER BY e ->> 'field') FROM jsonb_array_elements(d::jsonb) e);
END $$;
SELECT is(pg_temp.fields($$SELECT api.auth_register('{"name": 1, "email": "x@y", "password": "abcdefgh", "confirmPassword": "zz"}')$$),
	ARRAY['confirmPassword', 'email', 'name', 'password'], 'every failing register field is listed');
SELECT is(pg_temp.fields($$SELECT api.auth_register('{"name": "Okay", "email": "ok@example.com", "password": "NoDigitsHere", "confirmPassword": "NoDigitsHere"}')$$),
	ARRAY['password'], 'password needs a digit');
SELECT is(pg_temp.fields($$SELECT api.auth_register('{"name": "Okay", "email": "ok@example.com", "password": "nouppercase1", "confirmPassword": "nouppercase1"}')$$),
	ARRAY['password'], 'password needs an upper-case letter');

-- login
SELECT is((api.auth_login('{"email": "PAT.tester@example.com", "password": "Passw0rdOK"}') #>> '{user,id}'),
	pg_temp.v('reg', '{user,id}'), 'login is case-insensitive on email');
SELECT throws_ok($$SELECT api.auth_login('{"email": "pat.tester@example.com", "password": "wrong"}')$$,
	'PT401', 'Invalid email or password', 'wrong password');
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
	'PT400', 'Current password is incorrect', 'current password checked');
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

-- admin functions: identity
SELECT throws_ok($$SELECT api.users_list('{}', pg_temp.uctx())$$, 'PT401', NULL, 'users_list with a revoked session');
UPDATE t SET v = api.auth_login('{"email": "pat.tester@example.com", "password": "NewPassw0rd"}') WHERE k = 'reg';
SELECT throws_ok($$SELECT api.users_list('{}', pg_temp.uctx())$$, 'PT403', 'Insufficient permissions', 'users_list needs an admin');
SELECT ok((api.users_list('{}', pg_temp.actx()) #>> '{pagination,total}')::int >= 2, 'admin lists users');
SELECT ok((api.users_list('{}') #>> '{pagination,total}')::int >= 2, 'a DBA session acts as the system');
SELECT throws_ok($$SELECT api.users_list('{"limit": 0, "role": "x"}', pg_temp.actx())$$, 'PT400', 'Validation failed', 'list validates');
SELECT is(api.users_list(jsonb_build_object('search', 'renamed'), pg_temp.actx()) #>> '{data,users,0,name}', 'Pat Renamed', 'search by name');
SELECT ok((api.users_stats('{}', pg_temp.actx()) ->> 'totalUsers')::int >= 2, 'stats');

-- get / create / update
SELECT is(api.users_get(jsonb_build_object('id', pg_temp.v('reg', '{user,id}')), pg_temp.actx()) ->> 'email',
	'Pat.Tester@Example.com', 'users_get');
SELECT throws_ok($$SELECT api.users_get('{"id": "zzz"}', pg_temp.actx())$$, 'PT404', 'User not found', 'malformed id is 404');
SELECT throws_ok($$SELECT api.users_create('{"name": "X", "email": "pat.tester@example.com", "password": "Passw0rdOK"}', pg_temp.actx())$$,
	'PT400', 'Validation failed', 'create validates');
SELECT throws_ok($$SELECT api.users_create('{"name": "Xavier", "email": "pat.tester@example.com", "password": "Passw0rdOK"}', pg_temp.actx())$$,
	'PT409', 'User with this email already exists', 'create refuses a taken email');
SELECT throws_ok($$SELECT api.users_update('{"id": "00000000-0000-0000-0000-000000000000", "name": "Nobody"}', pg_temp.actx())$$,
	'PT404', 'User not found', 'update of a missing user');
SELECT throws_ok(format($$SELECT api.users_update('{"id": "%s"}', pg_temp.actx())$$, pg_temp.v('reg', '{user,id}')),
	'PT400', 'Validation failed', 'update needs a field');

-- self-protection
SELECT throws_ok(format($$SELECT api.users_toggle_status('{"id": "%s"}', pg_temp.actx())$$, pg_temp.v('admlogin', '{user,id}')),
	'PT409', 'You cannot deactivate your own account', 'no self-deactivation');
SELECT throws_ok(format($$SELECT api.users_update('{"id": "%s", "role": "USER"}', pg_temp.actx())$$, pg_temp.v('admlogin', '{user,id}')),
	'PT409', 'You cannot remove your own administrator role', 'no self-demotion');
SELECT throws_ok(format($$SELECT api.users_delete('{"id": "%s"}', pg_temp.actx())$$, pg_temp.v('admlogin', '{user,id}')),
	'PT409', 'You cannot delete your own account', 'no self-deletion');

-- deactivation revokes at once; bulk all-or-nothing
SELECT is(api.users_toggle_status(jsonb_build_object('id', pg_temp.v('reg', '{user,id}')), pg_temp.actx()) ->> 'isActive',
	'false', 'toggle deactivates');
SELECT throws_ok($$SELECT api.auth_me('{}', pg_temp.uctx())$$, 'PT401', NULL, 'a deactivated user is refused at once');
SELECT throws_ok(format($$SELECT api.users_bulk('{"action": "activate", "ids": ["%s", "00000000-0000-0000-0000-000000000001"]}', pg_temp.actx())$$,
	pg_temp.v('reg', '{user,id}')), 'PT404', NULL, 'bulk with a missing id fails whole');
SELECT is((SELECT is_active FROM paas.users WHERE id = (pg_temp.v('reg', '{user,id}'))::uuid), false, 'and changed nothing');
SELECT is(api.users_bulk(jsonb_build_object('action', 'activate', 'ids', jsonb_build_array(pg_temp.v('reg', '{user,id}'))), pg_temp.actx()) ->> 'affected',
	'1', 'bulk activate');

SELECT finish();
ROLLBACK;
