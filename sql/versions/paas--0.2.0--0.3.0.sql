-- paas 0.2.0 -> 0.3.0 (ALTER EXTENSION paas UPDATE).
--
-- What changes: SECURITY DEFINER functions search pg_catalog first and never
-- public (pgcrypto is called by its schema).
-- tests/upgrade/check.sh proves that an updated 0.2.0 database defines
-- exactly what a fresh 0.3.0 install does, and keeps its data.

\echo Use "ALTER EXTENSION paas UPDATE" to load this file. \quit
