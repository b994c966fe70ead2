-- Fixtures of the account tests (auth.sql, user_admin.sql), included with
-- \ir inside their transaction: a user registered and an administrator
-- seeded and logged in through the api, in the temp table t, with helpers
-- that read them and build the ctx httpd would pass.
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
