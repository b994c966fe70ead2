-- user_admin: the administrators' api.users_* called as the gateway and a
-- DBA would (sql/parts/12_user_admin.sql): lists, details, changes, self-
-- protection, deactivation and bulk changes, and the last administrator.
BEGIN;
SELECT plan(39);

\ir include/accounts.sql

-- the user renamed, then logged out: its session is revoked
DO $$ BEGIN
	PERFORM api.auth_profile_update('{"name": "Pat Renamed"}', pg_temp.uctx());
	PERFORM api.auth_logout('{}', pg_temp.uctx());
END $$;

-- admin functions: identity
SELECT throws_ok($$SELECT api.users_list('{}', pg_temp.uctx())$$, 'PT401', NULL, 'users_list with a revoked session');
UPDATE t SET v = api.auth_login('{"email": "pat.tester@example.com", "password": "Passw0rdOK"}') WHERE k = 'reg';
SELECT throws_ok($$SELECT api.users_list('{}', pg_temp.uctx())$$, 'PT403', 'Insufficient permissions', 'users_list needs an admin');
SELECT ok((api.users_list('{}', pg_temp.actx()) #>> '{pagination,total}')::int >= 2, 'admin lists users');
SELECT ok((api.users_list('{}') #>> '{pagination,total}')::int >= 2, 'a DBA session acts as the system');
SELECT throws_ok($$SELECT api.users_list('{"limit": 0, "role": "x"}', pg_temp.actx())$$, 'PT400', 'Validation failed', 'list validates');
SELECT is(api.users_list(jsonb_build_object('search', 'renamed'), pg_temp.actx()) #>> '{data,users,0,name}', 'Pat Renamed', 'search by name');
SELECT ok((api.users_stats('{}', pg_temp.actx()) ->> 'totalUsers')::int >= 2, 'stats');

-- get / create / update
SELECT is(api.users_get(jsonb_build_object('id', pg_temp.v('reg', '{user,id}')), pg_temp.actx()) ->> 'email',
	'Pat.Tester@Example.com', 'users_get');
SELECT throws_ok($$SELECT api.users_get('{"id": "zzz"}', pg_temp.actx())$$, 'PU404', 'User not found', 'malformed id is 404 (USER_NOT_FOUND)');
SELECT throws_ok($$SELECT api.users_create('{"name": "X", "email": "pat.tester@example.com", "password": "Passw0rdOK"}', pg_temp.actx())$$,
	'PT400', 'Validation failed', 'create validates');
SELECT throws_ok($$SELECT api.users_create('{"name": "Xavier", "email": "pat.tester@example.com", "password": "Passw0rdOK"}', pg_temp.actx())$$,
	'PU409', 'User with this email already exists', 'create refuses a taken email (USER_EXISTS)');
SELECT throws_ok($$SELECT api.users_update('{"id": "00000000-0000-0000-0000-000000000000", "name": "Nobody"}', pg_temp.actx())$$,
	'PU404', 'User not found', 'update of a missing user');
SELECT throws_ok(format($$SELECT api.users_update('{"id": "%s", "email": "ROOT-pgtap@example.com"}', pg_temp.actx())$$,
	pg_temp.v('reg', '{user,id}')), 'PE409', 'Email already exists', 'update refuses a taken email (EMAIL_EXISTS)');
SELECT throws_ok($$SELECT api.users_set_password('{"id": "cmdde35wt000011j5yxb0eekx", "newPassword": "Passw0rdOK"}', pg_temp.actx())$$,
	'PU404', 'User not found', 'a cuid is an id that cannot exist: 404');
-- the original's _count and subscriptions relation
SELECT is(api.auth_profile('{}', pg_temp.uctx()) -> '_count', '{"subscriptions": 0}', 'the profile has _count');
SELECT is((SELECT count(*)::int FROM jsonb_array_elements(api.users_list('{"limit": 100}', pg_temp.actx()) #> '{data,users}') x
			WHERE x #>> '{_count,subscriptions}' IS NULL), 0, 'every user of the list has _count');
SELECT is(api.users_get(jsonb_build_object('id', pg_temp.v('reg', '{user,id}')), pg_temp.actx()) -> 'subscriptions', '[]',
	'a user without subscriptions: an empty list');
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
	pg_temp.v('reg', '{user,id}')), 'PU404', NULL, 'bulk with a missing id fails whole');
SELECT throws_ok(format($$SELECT api.users_bulk('{"action": "activate", "ids": ["%s", "cmdde35wt000011j5yxb0eekx"]}', pg_temp.actx())$$,
	pg_temp.v('reg', '{user,id}')), 'PU404', 'Some users were not found; nothing was changed',
	'an id that cannot exist is missing too (404, not 400)');
SELECT throws_ok($$SELECT api.users_bulk('{"action": "activate", "ids": [7]}', pg_temp.actx())$$,
	'PT400', 'Validation failed', 'ids that are not strings are a field error');
-- a deactivated account: "Account is deactivated" whatever the password,
-- and no guess is counted
SELECT throws_ok($$SELECT api.auth_login('{"email": "pat.tester@example.com", "password": "Passw0rdOK"}', '{"ip": "10.0.9.9"}')$$,
	'PT401', 'Account is deactivated', 'a deactivated account with its password');
SELECT throws_ok($$SELECT api.auth_login('{"email": "pat.tester@example.com", "password": "Wr0ngGuess"}', '{"ip": "10.0.9.9"}')$$,
	'PT401', 'Account is deactivated', 'the same answer with a wrong password: it confirms no guess');
SELECT is((SELECT count(*)::int FROM paas.login_failures WHERE client = '10.0.9.9'), 0,
	'and nothing is counted (no password was checked)');
SELECT is((SELECT is_active FROM paas.users WHERE id = (pg_temp.v('reg', '{user,id}'))::uuid), false, 'and changed nothing');
SELECT is(api.users_bulk(jsonb_build_object('action', 'activate', 'ids', jsonb_build_array(pg_temp.v('reg', '{user,id}'))), pg_temp.actx()) ->> 'affected',
	'1', 'bulk activate');

-- reads take no row lock
SELECT is((SELECT provolatile FROM pg_proc WHERE oid = 'api.users_get(jsonb, jsonb)'::regprocedure), 's',
	'users_get is a read (STABLE: it cannot lock)');

-- a second account, for the last-administrator checks
INSERT INTO t VALUES ('fay', api.auth_register(
	'{"name": "Fay Lure", "email": "fay@example.com", "password": "Passw0rdOK", "confirmPassword": "Passw0rdOK"}',
	'{"ip": "10.7.0.1"}'));

-- at least one active administrator always remains (DBA sessions too)
UPDATE paas.users SET role = 'USER' WHERE role = 'ADMINISTRATOR' AND id <> (pg_temp.v('adm', '{id}'))::uuid;
SELECT throws_ok(format($$SELECT api.users_update('{"id": "%s", "role": "USER"}')$$, pg_temp.v('adm', '{id}')),
	'PT409', 'At least one active administrator must remain', 'a DBA cannot demote the last administrator');
SELECT throws_ok(format($$SELECT api.users_toggle_status('{"id": "%s"}')$$, pg_temp.v('adm', '{id}')),
	'PT409', 'At least one active administrator must remain', 'nor deactivate');
SELECT throws_ok(format($$SELECT api.users_delete('{"id": "%s"}')$$, pg_temp.v('adm', '{id}')),
	'PT409', 'At least one active administrator must remain', 'nor delete');
SELECT throws_ok(format($$SELECT api.users_bulk('{"action": "set-role", "role": "USER", "ids": ["%s"]}')$$, pg_temp.v('adm', '{id}')),
	'PT409', 'At least one active administrator must remain', 'nor in bulk');
SELECT throws_ok($$SELECT api.auth_delete_account('{}', pg_temp.actx())$$,
	'PT409', 'The last active administrator cannot deactivate their account', 'the last one cannot leave');
SELECT is(api.users_update(jsonb_build_object('id', pg_temp.v('fay', '{user,id}'), 'role', 'ADMINISTRATOR')) ->> 'role',
	'ADMINISTRATOR', 'with a second one');
SELECT lives_ok($$SELECT api.auth_delete_account('{}', pg_temp.actx())$$, 'the first may leave');

SELECT finish();
ROLLBACK;
