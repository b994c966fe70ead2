-- The reply seam (docs/architecture.md): a function chooses its reply's
-- status and message with transaction-local settings that httpd reads in
-- the statement of the call.  api.workers_register sets response.status
-- 200 and the original's message on a re-registration only; a creation
-- leaves them unset (the route row's 201 "Worker node registered
-- successfully").
BEGIN;
SELECT plan(7);

CREATE TEMP TABLE r (k text PRIMARY KEY, v jsonb);
SELECT api.workers_join_token_add('pgtap-reply-join-token-0001', 'pgtap reply');

SELECT is(coalesce(current_setting('response.status', true), ''), '', 'no reply status before a call');
INSERT INTO r VALUES ('first', api.workers_register(
	'{"name": "reply-node", "hostname": "reply-node.pgtap.local", "ipAddress": "10.9.9.1", "cpuCores": 4,
	  "cpuArchitecture": "x86", "totalMemory": "8Gi", "totalStorage": "100Gi"}',
	'{"nodeToken": "pgtap-reply-join-token-0001"}'));
SELECT ok((SELECT (v ->> 'created')::boolean FROM r WHERE k = 'first'), 'the first registration creates the node');
SELECT is(coalesce(current_setting('response.status', true), ''), '',
	'a creation leaves response.status unset: the route''s 201');
SELECT is(coalesce(current_setting('response.message', true), ''), '',
	'... and response.message: the route''s message');

INSERT INTO r VALUES ('again', api.workers_register(
	'{"name": "reply-node", "hostname": "reply-node.pgtap.local", "ipAddress": "10.9.9.2", "cpuCores": 4,
	  "cpuArchitecture": "x86", "totalMemory": "8Gi", "totalStorage": "100Gi"}',
	jsonb_build_object('nodeToken', (SELECT v ->> 'nodeToken' FROM r WHERE k = 'first'))));
SELECT ok(NOT (SELECT (v ->> 'created')::boolean FROM r WHERE k = 'again'), 'the node''s own token re-registers it');
SELECT is(current_setting('response.status', true), '200', 'a re-registration sets response.status 200');
SELECT is(current_setting('response.message', true), 'Worker node information updated successfully',
	'... with the original''s message');

SELECT finish();
ROLLBACK;
