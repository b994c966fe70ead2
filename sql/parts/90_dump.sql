-- paas -- what pg_dump keeps.
--
-- pg_dump skips the rows of an extension's tables unless the table is
-- registered with pg_extension_config_dump.  Every table of schema paas is
-- listed here (tests/http/test_zz_dump_restore.py dumps and restores a
-- database the whole suite wrote to and compares it); a table whose rows the
-- install script creates is dumped without those rows, since CREATE
-- EXTENSION makes them again on restore:
--   paas.job, paas.job_run           install-defined jobs; runs are transient
--   paas.subscription_settings       one install-time row: after a restore the
--                                     defaults apply until a DBA sets them again
--   paas.ledger_accounts             wallets only: the platform accounts and
--                                     their slots are install rows, and their
--                                     cached balances are recomputed from the
--                                     postings by paas.ledger_restore_balances()
--                                     (run it once after pg_restore)
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

-- After pg_restore: the cached balances of the platform slots (not dumped)
-- from their postings.  Returns how many slots changed.  Safe to run twice.
CREATE FUNCTION paas.ledger_restore_balances() RETURNS integer
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	UPDATE paas.ledger_accounts a
	   SET balance = s.total, updated_at = now()
	  FROM (SELECT a2.id, coalesce(sum(p.amount), 0)::bigint AS total
			  FROM paas.ledger_accounts a2
			  LEFT JOIN paas.ledger_postings p ON p.account_id = a2.id
			 WHERE a2.kind <> 'wallet'
			 GROUP BY a2.id) s
	 WHERE a.id = s.id AND a.balance IS DISTINCT FROM s.total;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION paas.ledger_restore_balances() IS
	'after pg_restore: recomputes the platform accounts'' cached balances from their postings';
