-- paas -- what pg_dump keeps.
--
-- pg_dump skips the rows of an extension's tables unless the table is
-- registered with pg_extension_config_dump.  Every table of schema paas is
-- listed here (tests/http/test_zz_dump_restore.py dumps and restores a
-- database the whole suite wrote to and compares it); a table whose rows the
-- install script creates is dumped without those rows, since CREATE
-- EXTENSION makes them again on restore:
--   paas.job_run                     runs are transient (paas.job: at the end)
--   paas.subscription_settings       one install-time row: after a restore the
--                                     defaults apply until a DBA sets them again
--   paas.ledger_accounts             wallets only: the platform accounts and
--                                     their slots are install rows (with ids
--                                     fixed in every database, 40_ledger.sql); their
--                                     cached balances are rebuilt from the
--                                     postings by paas.ledger_restore_balances(),
--                                     which the background worker runs at
--                                     start and on each pass when needed;
--                                     until then ledger_post refuses (PT503)
--                                     to post to them (40_ledger.sql)
--   paas.midtrans_rejects            dumped (pruned by its own job)

SELECT pg_catalog.pg_extension_config_dump('paas.ledger_accounts', 'WHERE kind = ''wallet''');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_accounts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_entries', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_entry_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_postings', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_posting_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_idempotency', '');
SELECT pg_catalog.pg_extension_config_dump('paas.ledger_adjustments', '');
SELECT pg_catalog.pg_extension_config_dump('paas.nodes', '');
SELECT pg_catalog.pg_extension_config_dump('paas.node_transitions', '');
SELECT pg_catalog.pg_extension_config_dump('paas.node_transitions_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.node_join_tokens', '');
SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_notifications_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.midtrans_rejects_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscription_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('paas.subscription_settings', 'WHERE false');

-- Whether a cached balance must be rebuilt before anything is posted to
-- its account: an unverified row (an install row, see 40_ledger.sql) that
-- has postings or a balance, as after pg_restore.  One indexed probe per
-- unverified row; the worker asks on each pass.
CREATE FUNCTION paas.ledger_restore_needed() RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, paas, pg_temp
	RETURN EXISTS (SELECT 1 FROM paas.ledger_accounts a
					WHERE NOT a.balance_verified
					  AND (a.balance <> 0
						   OR EXISTS (SELECT 1 FROM paas.ledger_postings p WHERE p.account_id = a.id)));
COMMENT ON FUNCTION paas.ledger_restore_needed() IS
	'whether some ledger account''s cached balance must be rebuilt from its postings (after pg_restore)';

-- After pg_restore: the cached balances of the unverified accounts that
-- have postings or a balance (the platform slots, not dumped) from their
-- postings; they are then verified and take postings again.  Locks them in
-- id order, as ledger_post does.  Returns how many accounts were rebuilt.
-- Safe to run twice and while postings run: a row a posting verified
-- meanwhile is left alone.  The background worker runs it when
-- paas.ledger_restore_needed(); DBAs may run it at once.
CREATE FUNCTION paas.ledger_restore_balances() RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	PERFORM 1 FROM paas.ledger_accounts a WHERE NOT a.balance_verified ORDER BY a.id FOR UPDATE;
	UPDATE paas.ledger_accounts a
	   SET balance = s.total, balance_verified = true,
		   updated_at = CASE WHEN a.balance = s.total THEN a.updated_at ELSE now() END
	  FROM (SELECT a2.id, coalesce(sum(p.amount), 0)::bigint AS total, count(p.id) AS postings
			  FROM paas.ledger_accounts a2
			  LEFT JOIN paas.ledger_postings p ON p.account_id = a2.id
			 WHERE NOT a2.balance_verified
			 GROUP BY a2.id) s
	 WHERE a.id = s.id AND NOT a.balance_verified AND (s.postings > 0 OR a.balance <> 0);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.ledger_restore_balances() IS
	'after pg_restore: rebuilds the cached balances of the platform accounts from their postings (the worker runs it)';

-- The rebuild: superuser (the DBA who restores, the background worker)
-- only.  Whether one is needed: also every caller of paas.ledger_post.
REVOKE ALL ON FUNCTION paas.ledger_restore_needed(), paas.ledger_restore_balances() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION paas.ledger_restore_needed() TO paas_owner;

-- The job registry: its rows are the install scripts', but a DBA changes
-- enabled and run_every, and those settings must survive a restore.  Only
-- the rows a DBA changed are dumped (customized, set by a trigger on
-- UPDATE); on restore CREATE EXTENSION inserts the install's rows first, and
-- the trigger paas.job_restore_settings turns each dumped row into an update
-- of the row of the same name (sql/parts/00_core.sql).
SELECT pg_catalog.pg_extension_config_dump('paas.job', 'WHERE customized');
