-- catalog: paas.services and the /services api functions (20_catalog.sql).
BEGIN;
SELECT plan(116);

-- Identities: an administrator and a user (ctx as httpd builds it), and a
-- DBA session (ctx '{}', this psql session).
INSERT INTO paas.users (id, email, name, password_hash, role) VALUES
	('00000000-0000-4000-8000-0000000ca7a1', 'catalog-admin@example.com', 'Catalog Admin', 'x', 'ADMINISTRATOR'),
	('00000000-0000-4000-8000-0000000ca7b1', 'catalog-user@example.com', 'Catalog User', 'x', 'USER');
CREATE TEMP TABLE ids (k text PRIMARY KEY, v jsonb);
INSERT INTO ids VALUES
	('admin', '{"userId": "00000000-0000-4000-8000-0000000ca7a1"}'),
	('user', '{"userId": "00000000-0000-4000-8000-0000000ca7b1"}');
CREATE FUNCTION pg_temp.ctx(k text) RETURNS jsonb LANGUAGE sql AS $$ SELECT v FROM ids WHERE ids.k = $1 $$;

-- The sorted field names of the PT400 raised by q (or its SQLSTATE).
CREATE FUNCTION pg_temp.err_fields(q text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
	d text;
	st text;
BEGIN
	EXECUTE q;
	RETURN '{}';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, st = RETURNED_SQLSTATE;
	IF st <> 'PT400' THEN
		RETURN ARRAY[st];
	END IF;
	RETURN ARRAY(SELECT e ->> 'field' FROM jsonb_array_elements(d::jsonb) e ORDER BY 1);
END $$;

CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	l text;
	r text := '';
BEGIN
	FOR l IN EXECUTE 'EXPLAIN ' || q LOOP
		r := r || l || E'\n';
	END LOOP;
	RETURN r;
END $$;

------------------------------------------------------------------------------
-- schema
------------------------------------------------------------------------------
SELECT has_table('paas', 'services', 'paas.services exists');
SELECT has_index('paas', 'services', 'services_search_idx', 'trigram search index');
SELECT has_index('paas', 'services', 'services_name_key', 'unique slug index');
SELECT is(paas.service_category_names(),
	ARRAY['automation', 'cms', 'database', 'analytics', 'devtools', 'communication', 'storage', 'monitoring', 'other'],
	'the fixed category list');
SELECT throws_ok($$INSERT INTO paas.services (name, display_name, description, docker_image, category)
	VALUES ('zqx-bad', 'Bad', 'bad category row', 'nginx:1', 'games')$$, '23514', NULL,
	'the table refuses an unknown category');
SELECT throws_ok($$INSERT INTO paas.services (name, display_name, description, docker_image, cpu_request_m, cpu_limit_m)
	VALUES ('zqx-bad', 'Bad', 'request over limit', 'nginx:1', 2000, 1000)$$, '23514', NULL,
	'the table refuses a request above the limit');
SELECT ok(col_description('paas.services'::regclass,
	(SELECT attnum FROM pg_attribute WHERE attrelid = 'paas.services'::regclass AND attname = 'monthly_price')) ~ 'existing subscriptions',
	'monthly_price documents that price changes do not alter existing subscriptions');
SELECT ok(has_function_privilege('paas_api', 'api.services_list(jsonb, jsonb)', 'EXECUTE')
	  AND has_function_privilege('paas_api', 'api.services_delete(jsonb, jsonb)', 'EXECUTE'),
	'the gateway executes the catalog functions');

-- helpers
SELECT is(paas.parse_cpu('0.25'), 250, 'cpu "0.25"');
SELECT is(paas.parse_cpu('500m'), 500, 'cpu "500m"');
SELECT is(paas.parse_cpu('1.2345'), NULL, 'cpu with 4 decimals is malformed');
SELECT is(paas.parse_mem('2Gi'), 2048, 'memory "2Gi"');
SELECT is(paas.parse_mem('1T'), NULL, 'memory "1T" is malformed');
SELECT is(paas.cpu_text(1500) || ' ' || paas.cpu_text(2000) || ' ' || paas.mem_text(1536) || ' ' || paas.mem_text(2048),
	'1.5 2 1536Mi 2Gi', 'quantities print as the original did');

------------------------------------------------------------------------------
-- create
------------------------------------------------------------------------------
CREATE TEMP TABLE svc (k text PRIMARY KEY, j jsonb);
INSERT INTO svc SELECT 'flow', api.services_create('{
	"name": "zqx-flow", "displayName": "Zqx Flow", "description": "Zqx workflow automation for tests",
	"category": "automation", "version": "1.2", "dockerImage": "n8nio/n8n:1.2",
	"defaultPort": 5678, "cpuRequest": "500m", "cpuLimit": "2", "memRequest": "256Mi", "memLimit": "2Gi",
	"resources": {"storageGiB": 5}, "monthlyPrice": 25000,
	"features": ["Webhooks", "Schedules"], "environmentVars": {"N8N_PORT": "5678", "tz": "Asia/Jakarta"}}',
	pg_temp.ctx('admin'));
INSERT INTO svc SELECT 'press', api.services_create('{
	"name": "zqx-press", "displayName": "Zqx Press", "description": "Zqx publishing for tests",
	"category": "cms", "dockerImage": "registry.example.com:5000/team/press@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"resources": {"cpuMillicores": 100, "memoryMiB": 256, "storageGiB": 10}, "monthlyPrice": "30000"}', '{}');
INSERT INTO svc SELECT 'hidden', api.services_create('{
	"name": "zqx-hidden", "displayName": "Zqx Hidden", "description": "Zqx inactive service for tests",
	"category": "cms", "dockerImage": "nginx", "isActive": "false", "monthlyPrice": 0}', '{}');

SELECT is((SELECT j - 'id' - 'createdAt' - 'updatedAt' FROM svc WHERE k = 'flow'),
	'{"name": "zqx-flow", "displayName": "Zqx Flow", "description": "Zqx workflow automation for tests",
	  "category": "automation", "version": "1.2", "dockerImage": "n8nio/n8n:1.2",
	  "containerPort": 5678, "defaultPort": 5678,
	  "cpuRequest": "0.5", "cpuLimit": "2", "memRequest": "256Mi", "memLimit": "2Gi",
	  "resources": {"cpuMillicores": 2000, "memoryMiB": 2048, "storageGiB": 5},
	  "monthlyPrice": 25000, "features": ["Webhooks", "Schedules"],
	  "environmentVars": {"N8N_PORT": "5678", "tz": "Asia/Jakarta"}, "isActive": true}'::jsonb,
	'create stores and prints every field');
SELECT is((SELECT j ->> 'createdAt' FROM svc WHERE k = 'flow'), (SELECT j ->> 'updatedAt' FROM svc WHERE k = 'flow'),
	'timestamps are set');
SELECT is((SELECT jsonb_build_array(j -> 'version', j -> 'containerPort', j -> 'cpuRequest', j -> 'cpuLimit',
									 j -> 'memRequest', j -> 'memLimit', j -> 'monthlyPrice', j -> 'isActive')
			 FROM svc WHERE k = 'press'),
	'["latest", 80, "0.1", "0.1", "256Mi", "256Mi", 30000, true]'::jsonb,
	'defaults; requests follow a limit smaller than the default request');
SELECT is((SELECT j -> 'isActive' FROM svc WHERE k = 'hidden'), 'false'::jsonb, 'isActive "false"');
SELECT is((SELECT (j -> 'features') || (j -> 'environmentVars') FROM svc WHERE k = 'hidden'), '[{}]'::jsonb,
	'features and environmentVars default to empty');

SELECT throws_ok($$SELECT api.services_create('{"name": "zqx-flow", "displayName": "Again", "description": "duplicate slug here",
	"dockerImage": "nginx"}')$$, 'PS409', 'Service with this name already exists', 'duplicate slug: PS409 (SERVICE_EXISTS)');
SELECT is(pg_temp.err_fields($$SELECT api.services_create('{"name": "admin", "displayName": "Admin", "description": "reserved slug here", "dockerImage": "nginx"}')$$),
	ARRAY['name'], 'slug "admin" is reserved');
SELECT is(pg_temp.err_fields($$SELECT api.services_create('{"name": "categories", "displayName": "Cat", "description": "reserved slug here", "dockerImage": "nginx"}')$$),
	ARRAY['name'], 'slug "categories" is reserved');
SELECT is(pg_temp.err_fields($$SELECT api.services_create('{}')$$),
	ARRAY['description', 'displayName', 'dockerImage', 'name'], 'required fields');
SELECT is(pg_temp.err_fields($$SELECT api.services_create('{
	"name": "Bad_Slug", "displayName": 7, "description": "short", "category": "games", "version": "",
	"dockerImage": "Not An Image", "containerPort": 70000, "monthlyPrice": -1, "isActive": "maybe",
	"features": [1], "environmentVars": {"A": 1}, "resources": {"cpuMillicores": 0, "memoryMiB": "lots", "storageGiB": 1.5},
	"cpuRequest": "fast", "cpuLimit": 2, "memRequest": "1Ti", "memLimit": "0Mi"}')$$),
	ARRAY['category', 'containerPort', 'cpuLimit', 'cpuRequest', 'description', 'displayName', 'dockerImage',
		  'environmentVars', 'features', 'isActive', 'memLimit', 'memRequest', 'monthlyPrice', 'name',
		  'resources.cpuMillicores', 'resources.memoryMiB', 'resources.storageGiB', 'version'],
	'every failing field is reported at once');
SELECT is(pg_temp.err_fields($$SELECT api.services_create(jsonb_build_object('name', repeat('a', 51),
	'displayName', repeat('d', 101), 'description', repeat('x', 501), 'dockerImage', repeat('i', 256),
	'version', repeat('v', 51)))$$),
	ARRAY['description', 'displayName', 'dockerImage', 'name', 'version'], 'too long');
SELECT is(pg_temp.err_fields($$SELECT api.services_create('{"name": "x", "displayName": "X", "description": "too short slug", "dockerImage": "nginx",
	"monthlyPrice": 10.5, "features": "one", "environmentVars": ["A"], "resources": 5, "containerPort": "http"}')$$),
	ARRAY['containerPort', 'displayName', 'environmentVars', 'features', 'monthlyPrice', 'name', 'resources'],
	'wrong types and short values');
SELECT is(pg_temp.err_fields($$SELECT api.services_create('{"name": "zqx-x", "displayName": "Zqx", "description": "conflicting forms",
	"dockerImage": "nginx", "containerPort": 80, "defaultPort": 81, "cpuLimit": "1", "resources": {"cpuMillicores": 500}}')$$),
	ARRAY['cpuLimit', 'defaultPort'], 'two forms of one value must agree');
SELECT is(pg_temp.err_fields($$SELECT api.services_create('{"name": "zqx-x", "displayName": "Zqx", "description": "request over limit",
	"dockerImage": "nginx", "cpuRequest": "2", "cpuLimit": "1", "memRequest": "2Gi", "resources": {"memoryMiB": 1024}}')$$),
	ARRAY['cpuRequest', 'memRequest'], 'requests may not exceed limits');
SELECT is(pg_temp.err_fields($$SELECT api.services_create('{"name": "zqx-x", "displayName": "Zqx", "description": "empty feature",
	"dockerImage": "nginx", "features": ["", "ok"]}')$$), ARRAY['features'], 'empty feature');
SELECT is(pg_temp.err_fields($$SELECT api.services_create((SELECT jsonb_build_object('name', 'zqx-x', 'displayName', 'Zqx',
	'description', 'too many variables', 'dockerImage', 'nginx',
	'environmentVars', jsonb_object_agg('V' || i, 'x')) FROM generate_series(1, 101) i))$$),
	ARRAY['environmentVars'], 'at most 100 environment variables');
SELECT is(pg_temp.err_fields($$SELECT api.services_create('{"name": "zqx-x", "displayName": "   ", "description": "  short   ",
	"dockerImage": " nginx "}')$$), ARRAY['description', 'displayName'], 'surrounding blanks do not count');
SELECT throws_ok($$SELECT api.services_create('[1, 2]')$$, 'PT400', 'Validation failed', 'a non-object request: PT400');

------------------------------------------------------------------------------
-- who may call what
------------------------------------------------------------------------------
SELECT throws_ok(format($$SELECT %s('{"id": "x"}', '{"userId": "00000000-0000-4000-8000-0000000ca7b1"}')$$, f),
	'PT403', 'Insufficient permissions', f || ': a user gets PT403')
  FROM unnest(ARRAY['api.services_admin_list', 'api.services_admin_stats', 'api.services_admin_get',
					'api.services_create', 'api.services_update', 'api.services_toggle_status',
					'api.services_delete']) f;
SELECT throws_ok(format($$SELECT %s('{"id": "x"}', '{"userId": "forged"}')$$, f),
	'PT401', 'Access token required', f || ': no identity gets PT401')
  FROM unnest(ARRAY['api.services_admin_list', 'api.services_admin_stats', 'api.services_admin_get',
					'api.services_create', 'api.services_update', 'api.services_toggle_status',
					'api.services_delete']) f;
SELECT lives_ok($$SELECT api.services_list('{}', '{"userId": "forged"}'), api.services_categories('{}', '{"userId": "forged"}'),
	api.services_get_by_name('{"name": "zqx-flow"}', '{"userId": "forged"}')$$, 'public functions ignore identity');

------------------------------------------------------------------------------
-- public catalog
------------------------------------------------------------------------------
SELECT is((SELECT jsonb_agg(e ->> 'name') FROM jsonb_array_elements(api.services_list('{"search": "zqx"}') -> 'data') e),
	'["zqx-flow", "zqx-press"]', 'public list: active only, by display name');
SELECT is(api.services_list('{"search": "ZQX PRESS"}') -> 'pagination',
	'{"page": 1, "limit": 100, "total": 1, "totalPages": 1, "hasNext": false, "hasPrev": false}',
	'search is case-insensitive; the default page holds 100');
SELECT is(api.services_list('{"search": "zqx", "limit": "1", "page": "2"}') -> 'data' -> 0 ->> 'name', 'zqx-press',
	'pagination');
SELECT is(api.services_list('{"search": "zqx", "category": "automation"}') -> 'data' -> 0 ->> 'name', 'zqx-flow',
	'category filter');
SELECT is(api.services_list('{"search": "zqx%"}') -> 'pagination' -> 'total', '0', 'a % in search is literal');
SELECT ok((SELECT bool_and(e ->> 'category' = 'cms') AND bool_or(e ->> 'name' = 'zqx-press') AND NOT bool_or(e ->> 'name' = 'zqx-hidden')
			 FROM jsonb_array_elements(api.services_list('{"category": "cms"}') -> 'data') e),
	'category filter without search (the static path)');
SELECT is(api.services_list('{"category": "cms", "limit": "1", "page": "1"}') -> 'pagination',
	(SELECT jsonb_build_object('page', 1, 'limit', 1, 'total', count(*), 'totalPages', count(*), 'hasNext', count(*) > 1, 'hasPrev', false)
	   FROM paas.services WHERE category = 'cms' AND is_active AND deleted_at IS NULL),
	'pagination without search counts active services only');
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(api.services_list('{"search": "zqx-flow"}') -> 'data' -> 0) k),
	ARRAY['category', 'description', 'displayName', 'features', 'id', 'isActive', 'monthlyPrice', 'name', 'resources', 'version'],
	'public items hide image, port, environment and requests');
SELECT is(pg_temp.err_fields($$SELECT api.services_list('{"category": "games", "limit": "0", "page": "x", "search": ""}')$$),
	ARRAY['category', 'limit', 'page', 'search'], 'public list validates every filter');
SELECT is(pg_temp.err_fields(format($$SELECT api.services_list('{"search": "%s"}')$$, repeat('s', 101))),
	ARRAY['search'], 'search of 101 characters');

SELECT is(api.services_get_by_name('{"name": "zqx-flow"}') ->> 'displayName', 'Zqx Flow', 'get by slug');
SELECT is(api.services_get_by_name('{"name": "ZQX-Flow"}') ->> 'name', 'zqx-flow', 'slug lookup ignores case');
SELECT throws_ok($$SELECT api.services_get_by_name('{"name": "zqx-hidden"}')$$, 'PS404', 'Service not found',
	'an inactive service is not found by slug');
SELECT throws_ok($$SELECT api.services_get_by_name('{"name": "zqx-nothing"}')$$, 'PS404', 'Service not found',
	'unknown slug: PS404 (SERVICE_NOT_FOUND)');

SELECT is(jsonb_array_length(api.services_categories()), 9, 'every category is listed');
SELECT is((SELECT (e ->> 'count')::int FROM jsonb_array_elements(api.services_categories()) e WHERE e ->> 'name' = 'cms'),
	(SELECT count(*)::int FROM paas.services WHERE category = 'cms' AND is_active AND deleted_at IS NULL),
	'categories count active services');
SELECT ok((SELECT (e ->> 'count')::int >= 1 FROM jsonb_array_elements(api.services_categories()) e WHERE e ->> 'name' = 'automation')
	  AND (SELECT e ->> 'displayName' FROM jsonb_array_elements(api.services_categories()) e WHERE e ->> 'name' = 'cms') = 'CMS & Websites',
	'categories carry counts and display names');

------------------------------------------------------------------------------
-- admin catalog
------------------------------------------------------------------------------
SELECT is(api.services_admin_list('{"search": "zqx"}', pg_temp.ctx('admin')) -> 'pagination' -> 'total', '3',
	'admin list sees inactive services');
SELECT is(api.services_admin_list('{"search": "zqx", "status": "inactive"}', pg_temp.ctx('admin')) -> 'data' -> 'services' -> 0 ->> 'name',
	'zqx-hidden', 'status filter');
SELECT is(api.services_admin_list('{"search": "zqx", "isActive": "false"}', pg_temp.ctx('admin')) -> 'data' -> 'pagination' -> 'totalCount',
	'1', 'isActive filter (the original''s name)');
SELECT is(api.services_admin_list('{"search": "zqx", "isActive": "false", "status": "active"}', pg_temp.ctx('admin')) -> 'pagination' -> 'total',
	'0', 'contradicting filters find nothing');
SELECT is((SELECT jsonb_agg(e ->> 'name') FROM jsonb_array_elements(
		api.services_admin_list('{"search": "zqx", "sortBy": "monthlyPrice", "sortOrder": "desc"}', pg_temp.ctx('admin')) -> 'data' -> 'services') e),
	'["zqx-press", "zqx-flow", "zqx-hidden"]', 'sort by price');
SELECT is((SELECT jsonb_agg(e ->> 'name') FROM jsonb_array_elements(
		api.services_admin_list('{"search": "zqx", "sortBy": "name", "sortOrder": "asc", "limit": 2, "page": 2}', pg_temp.ctx('admin')) -> 'data' -> 'services') e),
	'["zqx-press"]', 'sort by name, second page');
SELECT is(api.services_admin_list('{"search": "zqx", "limit": 2}', pg_temp.ctx('admin')) -> 'data' -> 'pagination',
	'{"currentPage": 1, "totalPages": 2, "totalCount": 3, "hasNext": true, "hasPrev": false}',
	'the original''s pagination object inside data');
SELECT ok(api.services_admin_list('{"search": "zqx-flow"}', pg_temp.ctx('admin')) -> 'data' -> 'services' -> 0 ? 'dockerImage',
	'admin items carry every field');
SELECT is(pg_temp.err_fields($$SELECT api.services_admin_list('{"status": "gone", "isActive": "1", "sortBy": "price",
	"sortOrder": "up", "category": "x", "limit": 101}')$$),
	ARRAY['category', 'isActive', 'limit', 'sortBy', 'sortOrder', 'status'], 'admin list validates every filter');

SELECT is(api.services_admin_stats('{}', pg_temp.ctx('admin')) - 'byCategory' - 'totalSubscriptions'
			- 'activeSubscriptions' - 'popularServices',
	(SELECT jsonb_build_object('totalServices', count(*), 'activeServices', count(*) FILTER (WHERE is_active),
		'inactiveServices', count(*) FILTER (WHERE NOT is_active),
		'byStatus', jsonb_build_object('active', count(*) FILTER (WHERE is_active), 'inactive', count(*) FILTER (WHERE NOT is_active)))
	   FROM paas.services WHERE deleted_at IS NULL),
	'stats count by status');
SELECT is((SELECT e - 'displayName' FROM jsonb_array_elements(api.services_admin_stats('{}', '{}') -> 'byCategory') e WHERE e ->> 'name' = 'cms'),
	(SELECT jsonb_build_object('name', 'cms', 'total', count(*), 'active', count(*) FILTER (WHERE is_active),
		'inactive', count(*) FILTER (WHERE NOT is_active)) FROM paas.services WHERE category = 'cms' AND deleted_at IS NULL),
	'stats count by category');

SELECT is(api.services_admin_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc WHERE k = 'hidden')), pg_temp.ctx('admin'))
			- 'subscriptions' - '_count',
	(SELECT j FROM svc WHERE k = 'hidden'), 'admin get by id sees an inactive service');

-- the original's subscription figures: _count on admin items and details,
-- the subscriptions of a service, totals and the five most subscribed
INSERT INTO paas.subscriptions (user_id, service_id, status, price, anchor_at, current_period_start, current_period_end)
SELECT '00000000-0000-4000-8000-0000000ca7b1', (j ->> 'id')::uuid, st, 30000, now(), now(), now() + interval '1 month'
  FROM svc, unnest(ARRAY['ACTIVE', 'EXPIRED']) st WHERE k = 'press';
SELECT is(api.services_admin_list('{"search": "zqx-press"}', pg_temp.ctx('admin')) #> '{data,services,0,_count}',
	'{"subscriptions": 2}', 'admin list items carry _count (every status)');
SELECT is(api.services_admin_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc WHERE k = 'press'))) -> '_count',
	'{"subscriptions": 2}', 'so does the admin detail');
SELECT is((SELECT jsonb_agg(x ->> 'status' ORDER BY x ->> 'status') || jsonb_agg(DISTINCT x #>> '{user,email}')
			 FROM jsonb_array_elements(api.services_admin_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc WHERE k = 'press')))
									   -> 'subscriptions') x),
	'["ACTIVE", "EXPIRED", "catalog-user@example.com"]', 'and its subscriptions with their users');
SELECT is(api.services_admin_get(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc WHERE k = 'hidden'))) -> 'subscriptions',
	'[]', 'none: an empty list');
SELECT is((SELECT jsonb_build_array(r -> 'totalSubscriptions', r -> 'activeSubscriptions') FROM (SELECT api.services_admin_stats() AS r) x),
	(SELECT jsonb_build_array(count(*), count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE'))) FROM paas.subscriptions),
	'stats: totalSubscriptions, activeSubscriptions (ACTIVE or GRACE)');
SELECT is(api.services_admin_stats() #> '{popularServices,0}',
	(SELECT jsonb_build_object('id', j -> 'id', 'name', 'zqx-press', 'displayName', j -> 'displayName',
							   '_count', '{"subscriptions": 2}'::jsonb) FROM svc WHERE k = 'press'),
	'stats: popularServices, the most subscribed first');
SELECT ok(jsonb_array_length(api.services_admin_stats() -> 'popularServices') BETWEEN 1 AND 5, 'at most five');
-- the test's subscriptions go again, with the instances their sale made
CREATE TEMP TABLE gone_inst AS SELECT i.id FROM paas.instances i JOIN paas.subscriptions s ON s.id = i.subscription_id
 WHERE s.user_id = '00000000-0000-4000-8000-0000000ca7b1';
DELETE FROM paas.instance_events WHERE instance_id IN (SELECT id FROM gone_inst);
DELETE FROM paas.instance_secrets WHERE instance_id IN (SELECT id FROM gone_inst);
DELETE FROM paas.instances WHERE id IN (SELECT id FROM gone_inst);
DELETE FROM paas.subscriptions WHERE user_id = '00000000-0000-4000-8000-0000000ca7b1';
SELECT throws_ok($$SELECT api.services_admin_get('{"id": "00000000-0000-4000-8000-000000000000"}')$$, 'PS404', 'Service not found',
	'unknown id: PS404');
SELECT throws_ok($$SELECT api.services_admin_get('{"id": "zqx-flow"}')$$, 'PS404', 'Service not found', 'malformed id: PS404');

------------------------------------------------------------------------------
-- update, toggle
------------------------------------------------------------------------------
UPDATE paas.services SET updated_at = updated_at - interval '1 day' WHERE name = 'zqx-flow';
SELECT is(api.services_update(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc WHERE k = 'flow'),
		'monthlyPrice', 27500, 'features', '["Only one"]'::jsonb, 'resources', '{"memoryMiB": 4096}'::jsonb, 'name', 'zqx-flow'),
		pg_temp.ctx('admin')) - 'updatedAt',
	(SELECT jsonb_set(jsonb_set(jsonb_set(jsonb_set(j, '{monthlyPrice}', '27500'), '{features}', '["Only one"]'),
		'{resources,memoryMiB}', '4096'), '{memLimit}', '"4Gi"') - 'updatedAt' FROM svc WHERE k = 'flow'),
	'update changes only the given fields (the unchanged slug may be sent)');
SELECT ok((SELECT updated_at = now() FROM paas.services WHERE name = 'zqx-flow'), 'updatedAt is refreshed');
SELECT is(pg_temp.err_fields(format($$SELECT api.services_update('{"id": "%s", "name": "zqx-renamed", "monthlyPrice": -5}')$$,
		(SELECT j ->> 'id' FROM svc WHERE k = 'flow'))),
	ARRAY['monthlyPrice', 'name'], 'the slug cannot change; errors are listed together');
SELECT is(pg_temp.err_fields(format($$SELECT api.services_update('{"id": "%s"}')$$, (SELECT j ->> 'id' FROM svc WHERE k = 'flow'))),
	ARRAY[''], 'an update needs a field');
SELECT is(pg_temp.err_fields(format($$SELECT api.services_update('{"id": "%s", "cpuLimit": "250m"}')$$, (SELECT j ->> 'id' FROM svc WHERE k = 'flow'))),
	ARRAY['cpuRequest'], 'a limit below the stored request is refused');
SELECT throws_ok($$SELECT api.services_update('{"id": "00000000-0000-4000-8000-000000000000", "monthlyPrice": 1}')$$,
	'PS404', 'Service not found', 'update of an unknown id: PS404');

SELECT is(api.services_toggle_status(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc WHERE k = 'flow')), pg_temp.ctx('admin')) -> 'isActive',
	'false', 'toggle deactivates');
SELECT throws_ok($$SELECT api.services_get_by_name('{"name": "zqx-flow"}')$$, 'PS404', 'Service not found',
	'a deactivated service leaves the public catalog');
SELECT is(api.services_toggle_status(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc WHERE k = 'flow'))) -> 'isActive',
	'true', 'toggle activates again');
SELECT throws_ok($$SELECT api.services_toggle_status('{"id": "nope"}')$$, 'PS404', 'Service not found', 'toggle of a bad id: PS404');

------------------------------------------------------------------------------
-- delete
------------------------------------------------------------------------------
CREATE TABLE public.zqx_refs (id int PRIMARY KEY, service_id uuid REFERENCES paas.services (id));
CREATE TABLE public.zqx_refs2 (service_name text, service_id uuid, FOREIGN KEY (service_id) REFERENCES paas.services (id));
INSERT INTO public.zqx_refs VALUES (1, (SELECT (j ->> 'id')::uuid FROM svc WHERE k = 'flow'));
INSERT INTO public.zqx_refs2 VALUES ('zqx-flow', (SELECT (j ->> 'id')::uuid FROM svc WHERE k = 'flow'));

SELECT throws_ok(format($$SELECT api.services_delete('{"id": "%s"}')$$, (SELECT j ->> 'id' FROM svc WHERE k = 'flow')),
	'PT409', 'Cannot delete a service that is still in use', 'a referenced service cannot be deleted');
SELECT is(paas.service_references((SELECT (j ->> 'id')::uuid FROM svc WHERE k = 'flow')), ARRAY['public.zqx_refs', 'public.zqx_refs2'],
	'every referencing table is found');
SELECT is(paas.service_references((SELECT (j ->> 'id')::uuid FROM svc WHERE k = 'press')), '{}'::text[],
	'an unreferenced service has no references');
DELETE FROM public.zqx_refs;
SELECT throws_ok(format($$SELECT api.services_delete('{"id": "%s"}')$$, (SELECT j ->> 'id' FROM svc WHERE k = 'flow')),
	'PT409', 'Cannot delete a service that is still in use', 'one remaining reference still blocks');
DELETE FROM public.zqx_refs2;

SELECT is(api.services_delete(jsonb_build_object('id', (SELECT j ->> 'id' FROM svc WHERE k = 'flow')), pg_temp.ctx('admin')),
	(SELECT jsonb_build_object('id', j -> 'id', 'name', 'zqx-flow', 'displayName', 'Zqx Flow') FROM svc WHERE k = 'flow'),
	'delete answers id, name and display name');
SELECT ok((SELECT deleted_at IS NOT NULL AND NOT is_active FROM paas.services WHERE name = 'zqx-flow'), 'the delete is soft');
SELECT throws_ok(format($$SELECT api.services_admin_get('{"id": "%s"}')$$, (SELECT j ->> 'id' FROM svc WHERE k = 'flow')),
	'PS404', 'Service not found', 'a deleted service is gone for admins');
SELECT throws_ok(format($$SELECT api.services_update('{"id": "%s", "monthlyPrice": 1}')$$, (SELECT j ->> 'id' FROM svc WHERE k = 'flow')),
	'PS404', 'Service not found', 'a deleted service cannot be updated');
SELECT throws_ok(format($$SELECT api.services_delete('{"id": "%s"}')$$, (SELECT j ->> 'id' FROM svc WHERE k = 'flow')),
	'PS404', 'Service not found', 'a second delete: PS404');
SELECT throws_ok($$SELECT api.services_get_by_name('{"name": "zqx-flow"}')$$, 'PS404', 'Service not found',
	'a deleted service is gone from the public catalog');
SELECT is(api.services_admin_list('{"search": "zqx"}') -> 'pagination' -> 'total', '2', 'and from the admin list');
SELECT lives_ok($$SELECT api.services_create('{"name": "zqx-flow", "displayName": "Zqx Flow 2", "description": "the slug is free again",
	"dockerImage": "nginx"}')$$, 'the slug of a deleted service can be used again');
SELECT is((SELECT count(*)::int FROM paas.services WHERE name = 'zqx-flow'), 2, 'the deleted row stays for history');
DROP TABLE public.zqx_refs, public.zqx_refs2;

------------------------------------------------------------------------------
-- search is index-backed
------------------------------------------------------------------------------
INSERT INTO paas.services (name, display_name, description, docker_image)
SELECT 'zqx-bulk-' || i, 'Bulk ' || i, 'Generated service ' || md5(i::text), 'nginx:1'
  FROM generate_series(1, 2000) i;
ANALYZE paas.services;
SELECT matches(pg_temp.plan_of($$SELECT * FROM paas.services s WHERE s.deleted_at IS NULL
		AND paas.service_search_text(s.name, s.display_name, s.description) ILIKE '%ab12%'$$),
	'Bitmap Index Scan on services_search_idx', 'search uses the trigram index');
SET LOCAL enable_seqscan = off;
SELECT matches(pg_temp.plan_of($$SELECT * FROM paas.services s WHERE s.deleted_at IS NULL AND s.is_active
		AND paas.service_search_text(s.name, s.display_name, s.description) ILIKE '%Zqx Press%'$$),
	'services_search_idx', 'the public search predicate can use the trigram index');
RESET enable_seqscan;
SELECT is(api.services_list('{"search": "Generated service", "limit": 5}') -> 'pagination' -> 'total', '2000',
	'search over many rows');
DELETE FROM paas.services WHERE name LIKE 'zqx-bulk-%';

------------------------------------------------------------------------------
-- the seed of `make run`: through the api, idempotent
------------------------------------------------------------------------------
\ir ../../docker/seed/20_catalog.sql
CREATE TEMP TABLE seeded AS SELECT id, name, updated_at FROM paas.services
 WHERE name IN ('n8n', 'ghost', 'wordpress') AND deleted_at IS NULL;
UPDATE paas.services SET monthly_price = 99000 WHERE name = 'ghost';
\ir ../../docker/seed/20_catalog.sql
SELECT is((SELECT count(*)::int FROM seeded), 3, 'the seed creates n8n, Ghost and WordPress');
SELECT ok((SELECT count(*) FROM paas.services WHERE deleted_at IS NULL AND category <> 'other'
		AND name IN ('n8n', 'ghost', 'wordpress', 'uptime-kuma', 'umami', 'postgresql', 'gitea', 'mattermost', 'minio')) >= 9,
	'the seed covers several categories');
SELECT is((SELECT count(*)::int FROM paas.services WHERE name IN ('n8n', 'ghost', 'wordpress')), 3,
	'running the seed twice creates nothing new');
SELECT is((SELECT monthly_price FROM paas.services WHERE name = 'ghost'), 99000::bigint,
	'running the seed again keeps an administrator''s edits');
SELECT is(api.services_get_by_name('{"name": "n8n"}') ->> 'monthlyPrice', '25000', 'seeded services are public');

SELECT finish();
ROLLBACK;
