-- The nodes the registry and monitor tests start from (include/nodes.sql
-- first): the join token pgtap-join-token-0001, and pg-a (as "a2"), pg-b
-- (as "b") and pg-k3s (as "k", cordoned) registered with it.
DO $$ BEGIN PERFORM api.workers_join_token_add('pgtap-join-token-0001', 'pgtap'); END $$;
INSERT INTO t VALUES ('a2', api.workers_register(pg_temp.spec('pg-a', '10.9.0.11'), pg_temp.join()));
INSERT INTO t VALUES ('b', api.workers_register(pg_temp.spec('pg-b', '10.9.0.2'), pg_temp.join()));
INSERT INTO t VALUES ('k', api.workers_register((SELECT v FROM t WHERE k = 'kdoc'), pg_temp.join()));
