-- API snapshot: the exact surface of schema api (name, arguments, result,
-- volatility).  A change to the surface must change this file on purpose.
BEGIN;
SELECT plan(2);

SELECT results_eq(
	$$SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
			 || pg_get_function_result(p.oid) || ' ' || p.provolatile
		FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace ORDER BY 1$$,
	$$VALUES
		('auth_change_password(req jsonb, ctx jsonb) jsonb v'),
		('auth_delete_account(req jsonb, ctx jsonb) jsonb v'),
		('auth_login(req jsonb, ctx jsonb) jsonb v'),
		('auth_logout(req jsonb, ctx jsonb) jsonb v'),
		('auth_me(req jsonb, ctx jsonb) jsonb s'),
		('auth_profile(req jsonb, ctx jsonb) jsonb s'),
		('auth_profile_update(req jsonb, ctx jsonb) jsonb v'),
		('auth_refresh(req jsonb, ctx jsonb) jsonb v'),
		('auth_register(req jsonb, ctx jsonb) jsonb v'),
		('health(req jsonb, ctx jsonb) jsonb s'),
		('seed_admin(email text, password text, name text) uuid v'),
		('status(req jsonb, ctx jsonb) jsonb s'),
		('users_bulk(req jsonb, ctx jsonb) jsonb v'),
		('users_create(req jsonb, ctx jsonb) jsonb v'),
		('users_delete(req jsonb, ctx jsonb) jsonb v'),
		('users_get(req jsonb, ctx jsonb) jsonb v'),
		('users_list(req jsonb, ctx jsonb) jsonb s'),
		('users_set_password(req jsonb, ctx jsonb) jsonb v'),
		('users_stats(req jsonb, ctx jsonb) jsonb s'),
		('users_toggle_status(req jsonb, ctx jsonb) jsonb v')
	$$,
	'the api schema has exactly the documented functions');

SELECT results_eq(
	$$SELECT c.relname::text FROM pg_class c
	   WHERE c.relnamespace = 'reporting'::regnamespace AND c.relkind = 'v' ORDER BY 1$$,
	$$SELECT NULL::text WHERE false$$,
	'the reporting schema has exactly the documented views');

SELECT finish();
ROLLBACK;
