-- routes: the route table (sql/parts/95_routes.sql) and the OpenAPI
-- document generated from it.  The rows against the gateway's C table are
-- compared in tests/http/test_route_table.py; the document is linted with
-- redocly in tests/openapi/lint.sh.
BEGIN;
SELECT plan(58);

-- 1. Every row names a function of the HTTP shape, or is a built-in.
SELECT is((SELECT count(*)::int FROM paas.routes), 114, 'the 114 routes of the gateway');
SELECT is((SELECT count(*)::int FROM paas.routes r
			 JOIN pg_proc p ON p.oid = r.function
			WHERE p.pronamespace = 'api'::regnamespace
			  AND pg_get_function_identity_arguments(p.oid) = 'req jsonb, ctx jsonb'
			  AND p.prorettype = 'jsonb'::regtype AND p.prosecdef),
		  (SELECT count(*)::int FROM paas.routes WHERE function IS NOT NULL),
		  'every function is api.<name>(req jsonb, ctx jsonb) returning jsonb, SECURITY DEFINER');
SELECT is(ARRAY(SELECT path FROM paas.routes WHERE function IS NULL ORDER BY seq),
		  ARRAY['/api/v1/openapi.json', '/api/v1/metrics'], 'the built-ins have no function');
SELECT is((SELECT count(*)::int FROM paas.routes r
			WHERE 'batch' = ANY (r.flags)
			  AND to_regprocedure(paas.route_function_name(r.function) || '_batch(jsonb, jsonb)') IS NULL),
		  0, 'every batch route has its api.<function>_batch');
SELECT is((SELECT count(*)::int FROM paas.routes r
			WHERE r.function IS NOT NULL AND obj_description(r.function, 'pg_proc') IS NULL
			  AND r.description IS NULL),
		  0, 'every route has a description (its own or its function''s comment)');
SELECT is((SELECT count(*)::int FROM paas.routes WHERE method = 'GET' AND request_schema IS NOT NULL),
		  0, 'no GET route documents a body');
SELECT throws_ok($$INSERT INTO paas.routes (method, path, function, access, status, message, tag, summary)
					VALUES ('GET', '/api/v1/x', 'api.status(jsonb, jsonb)', 'public', 200, 'x', 'system', 'x')$$,
				 '23505', NULL, 'a second route to the same function needs its own operationId');
SELECT throws_ok($$INSERT INTO paas.routes (method, path, function, access, status, message, tag, summary)
					VALUES ('GET', '/api/v1/x', 'api.nothing(jsonb, jsonb)', 'public', 200, 'x', 'system', 'x')$$,
				 '42883', NULL, 'a route cannot name a function that does not exist');
SELECT throws_ok($$INSERT INTO paas.routes (method, path, access, status, message, tag, summary)
					VALUES ('GET', '/api/v1/x', 'public', 200, 'x', 'system', 'x')$$,
				 '23514', NULL, 'only a built-in has no function');

-- 2. Paths are canonical; one route per method and shape.
SELECT is((SELECT count(*)::int FROM paas.routes WHERE NOT paas.route_path_ok(path)), 0, 'every path is canonical');
SELECT ok(paas.route_path_ok('/api/v1/users/:id/toggle-status'), 'a canonical path');
SELECT ok(NOT paas.route_path_ok('/api/v1/users/'), 'no trailing slash');
SELECT ok(NOT paas.route_path_ok('/api/v1//users'), 'no empty segment');
SELECT ok(NOT paas.route_path_ok('/api/v1/Users'), 'literal segments are lower case');
SELECT ok(NOT paas.route_path_ok('api/v1/users'), 'paths start with a slash');
SELECT ok(NOT paas.route_path_ok('/api/v1/users/:id/x/:id'), 'capture names are distinct');
SELECT ok(NOT paas.route_path_ok('/:a/:b/:c/:d/:e'), 'at most 4 captures (MAX_PARAMS)');
SELECT ok(NOT paas.route_path_ok('/api/v1/users/:user_id'), 'captures are camelCase');
SELECT throws_ok($$INSERT INTO paas.routes (method, path, function, access, status, message, tag, summary, operation_id)
					VALUES ('GET', '/api/v1/users/:userId', 'api.users_get(jsonb, jsonb)', 'admin', 200, 'x',
							'users', 'x', 'another')$$,
				 '23505', NULL, 'GET /users/:userId is GET /users/:id again');
SELECT is((SELECT count(*)::int FROM (SELECT 1 FROM paas.routes GROUP BY method, paas.route_shape(path)
									   HAVING count(*) > 1) d), 0, 'no two routes of one method and shape');
-- No URL matches two routes of one method with the same score (literal
-- segment 2, capture 1): the gateway never decides by table order alone.
SELECT is((SELECT count(*)::int
			 FROM paas.routes a JOIN paas.routes b ON a.method = b.method AND a.seq < b.seq
			WHERE cardinality(string_to_array(a.path, '/')) = cardinality(string_to_array(b.path, '/'))
			  AND NOT EXISTS (SELECT 1 FROM unnest(string_to_array(a.path, '/'), string_to_array(b.path, '/')) s (x, y)
							   WHERE x NOT LIKE ':%' AND y NOT LIKE ':%' AND x <> y)
			  AND (SELECT count(*) FILTER (WHERE x LIKE ':%') FROM unnest(string_to_array(a.path, '/')) x)
				= (SELECT count(*) FILTER (WHERE y LIKE ':%') FROM unnest(string_to_array(b.path, '/')) y)),
		  0, 'no two routes of one method can both match a URL with the same score');

-- 3. Flags, access rules, operationIds.
SELECT is((SELECT count(*)::int FROM paas.routes WHERE NOT paas.route_flags_ok(flags)), 0, 'every flag is known');
SELECT throws_ok($$UPDATE paas.routes SET flags = '{bogus}' WHERE path = '/api/v1/status'$$,
				 '23514', NULL, 'an unknown flag is refused');
SELECT throws_ok($$UPDATE paas.routes SET flags = '{batch,batch}' WHERE path = '/api/v1/status'$$,
				 '23514', NULL, 'a flag is listed once');
SELECT throws_ok($$UPDATE paas.routes SET access = 'owner' WHERE path = '/api/v1/status'$$,
				 '23514', NULL, 'an unknown access rule is refused');
SELECT throws_ok($$UPDATE paas.routes SET errors = '{418}' WHERE path = '/api/v1/status'$$,
				 '23514', NULL, 'an unknown error status is refused');
SELECT throws_ok($$UPDATE paas.routes SET response_type = 'pdf' WHERE path = '/api/v1/status'$$,
				 '23514', NULL, 'a PDF answer needs the pdf flag');
SELECT is(paas.route_operation_id('api.users_list(jsonb, jsonb)', '/api/v1/users'), 'usersList',
		  'the default operationId is the function''s name in camelCase');
SELECT is((SELECT operation_id FROM paas.routes WHERE path = '/api/v1/openapi.json'), 'openapi',
		  'a built-in''s operationId comes from its path');
SELECT is((SELECT count(DISTINCT operation_id)::int FROM paas.routes), (SELECT count(*)::int FROM paas.routes),
		  'operationIds are unique');
SELECT is((SELECT count(*)::int FROM paas.routes WHERE operation_id !~ '^[a-z][A-Za-z0-9]*$'), 0,
		  'operationIds are URL-safe camelCase');

-- 4. The document.
CREATE TEMP TABLE doc AS SELECT api.openapi() AS d;
CREATE TEMP TABLE ops AS
	SELECT p.key AS path, m.key AS method, m.value AS op
	  FROM doc, jsonb_each(d -> 'paths') p, jsonb_each(p.value) m;
SELECT is((SELECT d ->> 'openapi' FROM doc), '3.1.0', 'OpenAPI 3.1');
SELECT is((SELECT d #>> '{info,version}' FROM doc), (SELECT extversion FROM pg_extension WHERE extname = 'paas'),
		  'info.version is the extension''s version');
SELECT is((SELECT d #>> '{servers,0,url}' FROM doc), '/', 'the server is relative by default');
SELECT is(api.openapi('{"serverUrl": "https://api.example.org"}') #>> '{servers,0,url}', 'https://api.example.org',
		  'ctx.serverUrl names the server');
SELECT is((SELECT count(*)::int FROM ops), (SELECT count(*)::int FROM paas.routes), 'one operation per route');
SELECT is((SELECT count(DISTINCT op ->> 'operationId')::int FROM ops), (SELECT count(*)::int FROM paas.routes),
		  'operationIds are unique in the document');
SELECT is((SELECT count(*)::int FROM ops
			WHERE ARRAY(SELECT m[1] FROM regexp_matches(path, '\{([^}]+)\}', 'g') m)
				  IS DISTINCT FROM ARRAY(SELECT x ->> 'name' FROM jsonb_array_elements(op -> 'parameters') x
										  WHERE x ->> 'in' = 'path')),
		  0, 'every path capture has its parameter, in order');
SELECT ok((SELECT d -> 'paths' ? '/api/v1/services/{name}' AND NOT d -> 'paths' ? '/api/v1/services/{id}' FROM doc),
		  'routes of one shape share the template of the first of them');
SELECT is((SELECT op #>> '{parameters,0,name}' FROM ops WHERE path = '/api/v1/services/{name}' AND method = 'put'),
		  'name', 'PUT /services/:id is filed under the template''s name');
SELECT is((SELECT count(*)::int FROM doc, jsonb_path_query(d, 'lax $.**."$ref"') r
			WHERE NOT (r #>> '{}' ~ '^#/components/(schemas|responses)/'
					   AND d #> string_to_array(substr(r #>> '{}', 3), '/') IS NOT NULL)),
		  0, 'every $ref resolves');
SELECT is((SELECT count(*)::int FROM paas.route_schemas s, doc
			WHERE NOT EXISTS (SELECT 1 FROM jsonb_path_query(d, 'lax $.**."$ref"') r
							   WHERE r #>> '{}' = '#/components/schemas/' || s.name)),
		  0, 'every component schema is used');
SELECT is((SELECT op -> 'security' FROM ops WHERE path = '/api/v1/users/{id}' AND method = 'get'),
		  '[{"bearerAuth": []}]', 'an admin route needs the bearer token');
SELECT is((SELECT op -> 'security' FROM ops WHERE path = '/api/v1/auth/login'), '[]', 'a public route needs nothing');
SELECT is((SELECT op -> 'security' FROM ops WHERE path = '/api/v1/workers/{nodeId}/resources'),
		  '[{"nodeToken": []}]', 'a node route needs the node token');
SELECT is((SELECT op -> 'security' FROM ops WHERE path = '/api/v1/metrics'), '[{"bearerAuth": []}]',
		  'metrics on the API listener: an administrator''s token');
SELECT ok((SELECT op #> '{responses,200,content}' ? 'application/pdf' FROM ops WHERE path = '/api/v1/billing/invoices/{id}/pdf'),
		  'the PDF route answers application/pdf');
SELECT ok((SELECT op #> '{responses,200,content}' ? 'text/plain' FROM ops WHERE path = '/api/v1/metrics'),
		  'metrics answer text/plain');
SELECT is((SELECT op #> '{responses,200,content,application/json,schema,required}' FROM ops
			WHERE path = '/api/v1/openapi.json'), '["openapi", "info", "paths"]', 'the document is not enveloped');
SELECT is((SELECT op #>> '{responses,200,content,application/json,schema,allOf,0,$ref}' FROM ops
			WHERE path = '/api/v1/users' AND method = 'get'), '#/components/schemas/PaginatedSuccess',
		  'a paginated route answers the paginated envelope');
SELECT is((SELECT array_agg(k ORDER BY k) FROM ops, jsonb_object_keys(op -> 'responses') k
			WHERE path = '/api/v1/billing/topup' AND method = 'post'),
		  ARRAY['201', '400', '401', '409', '413', '429', '502', '503', 'default'],
		  'the top-up answers its own errors, the access rule''s, the rate limit''s and the payment gateway''s');
SELECT is((SELECT op -> 'parameters' @> '[{"name": "Idempotency-Key", "in": "header"}]' FROM ops
			WHERE path = '/api/v1/subscriptions' AND method = 'post'), true, 'headers are parameters');
SELECT is((SELECT op #>> '{requestBody,required}' FROM ops WHERE path = '/api/v1/auth/login'), 'true',
		  'a required body is marked so');

-- 5. The gateway's loader and the grants.
SELECT is((SELECT array_agg(function ORDER BY seq) FILTER (WHERE seq <= 3) FROM api.routes()),
		  ARRAY['api.health', 'api.health', 'api.status'], 'api.routes() names the functions, in table order');
SELECT ok(has_function_privilege('paas_api', 'api.openapi(jsonb)', 'EXECUTE')
		  AND has_function_privilege('paas_api', 'api.routes()', 'EXECUTE')
		  AND NOT has_table_privilege('paas_api', 'paas.routes', 'SELECT'),
		  'the gateway reads the routes through api functions only');

-- a function that may answer another success status (response.status) lists it
SELECT is(ARRAY(SELECT k FROM jsonb_object_keys(api.openapi() #> '{paths,/api/v1/workers/register,post,responses}') k
				 WHERE k ~ '^2' ORDER BY 1),
		  ARRAY['200', '201'], 'a re-registration''s 200 is in the document beside the 201');
SELECT is(api.openapi() #>> '{paths,/api/v1/workers/register,post,responses,200,content,application/json,schema,allOf,1,properties,message,const}',
		  'Worker node information updated successfully', 'with its own message');
SELECT throws_ok($$UPDATE paas.routes SET other_replies = '{"404": "Not found"}' WHERE path = '/api/v1/workers/register'$$,
		  '23514', NULL, 'other replies are success statuses only');

SELECT finish();
ROLLBACK;
