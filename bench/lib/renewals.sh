# bench/lib/renewals.sh: the renewal fixtures bench/subscriptions.sh and
# bench/mail.sh measure (sourced, not an area of its own: bench/run.sh runs
# bench/*.sh only).  Needs q() (psql as superuser, -At) from the caller.
#
# renewal_fixture PREFIX N PER_USER
#   PER_USER services named PREFIX-1.., N / PER_USER funded accounts
#   (PREFIX-i@example.com; their welcome mails are not written), and N
#   subscriptions sold a month and an hour ago, due now; every one is
#   charged by the next renewal run (the wallets hold exactly that).
#   The subscriptions are sold without their instances: a renewal that
#   keeps a subscription ACTIVE never reads or changes its instance, and
#   instances left behind would be the provisioner's work (creation and
#   removal of up to 200,000) during the areas that follow, against
#   whatever Kubernetes API those areas point it at.  bench/instances.sh
#   measures instances.
# renewal_retire PREFIX
#   the fixture's subscriptions EXPIRED through the status machine (later
#   runs renew nothing of it), its pending mails SUPPRESSED.
# accounts_sql PREFIX N NAME
#   SQL text: N accounts without welcome mails (bench/mail.sh's top-ups too).
# accounts_sql PREFIX N NAME: the SQL of N accounts PREFIX-i@example.com
# without their welcome mails (the trigger is off for that transaction only)
accounts_sql() {
	cat <<SQL
BEGIN;
ALTER TABLE paas.users DISABLE TRIGGER notify_users_inserted;
INSERT INTO paas.users (email, name, password_hash)
SELECT '$1-' || i || '@example.com', '$3', 'x' FROM generate_series(1, $2) i;
ALTER TABLE paas.users ENABLE TRIGGER notify_users_inserted;
COMMIT;
SQL
}

renewal_fixture() {
	local prefix=$1 n=$2 per=$3
	local users=$(( (n + per - 1) / per ))
	q >/dev/null <<SQL
SET client_min_messages = warning;
INSERT INTO paas.services (name, display_name, description, docker_image, monthly_price)
SELECT '$prefix-' || i, 'Bench ' || i, 'renewal benchmark service', 'nginx:1', 1000
  FROM generate_series(1, $per) i;
$(accounts_sql "$prefix" "$users" 'Bench Subscriber')
CREATE TEMP TABLE w AS
SELECT u.id AS user_id, paas.wallet_account(u.id) AS acc, row_number() OVER (ORDER BY u.id) AS n
  FROM paas.users u WHERE u.email LIKE '$prefix-%';
DO \$\$
DECLARE
	b int;
BEGIN
	FOR b IN 0 .. (SELECT (count(*) - 1) / 5000 FROM w) LOOP
		PERFORM paas.ledger_post(NULL, (SELECT jsonb_agg(jsonb_build_object(
			'kind', 'topup', 'memo', 'bench funding',
			'postings', jsonb_build_array(
				jsonb_build_object('account', acc, 'amount', 1000 * $per),
				jsonb_build_object('account', paas.platform_account('gateway_clearing'),
								   'amount', -1000 * $per))))
			FROM w WHERE n > b * 5000 AND n <= (b + 1) * 5000));
	END LOOP;
END
\$\$;
BEGIN;
ALTER TABLE paas.subscriptions DISABLE TRIGGER subscriptions_new_instances;
INSERT INTO paas.subscriptions (user_id, service_id, price, anchor_at, current_period_start, current_period_end)
SELECT w.user_id, s.id, 1000, now() - interval '1 month 1 hour', now() - interval '1 month 1 hour',
	   paas.subscription_bound(now() - interval '1 month 1 hour', 1)
  FROM w, paas.services s WHERE s.name LIKE '$prefix-%'
 ORDER BY w.n, s.name
 LIMIT $n;
ALTER TABLE paas.subscriptions ENABLE TRIGGER subscriptions_new_instances;
COMMIT;
SQL
	q -c "VACUUM ANALYZE paas.subscriptions" -c "VACUUM ANALYZE paas.notification_outbox" >/dev/null
}

renewal_retire() {
	q >/dev/null <<SQL
UPDATE paas.subscriptions s SET status = paas.subscription_transition(s.status, 'expire'),
	   ended_at = now(), status_reason = 'benchmark fixture', updated_at = now()
  FROM paas.services v WHERE v.id = s.service_id AND v.name LIKE '$1-%';
UPDATE paas.notification_outbox o SET status = 'SUPPRESSED', last_error = 'benchmark fixture', updated_at = now()
  FROM paas.users u WHERE u.id = o.user_id AND u.email LIKE '$1-%' AND o.status = 'PENDING';
SQL
}
