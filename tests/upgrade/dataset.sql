-- tests/upgrade/dataset.sql: a realistic data set written through a released
-- version's own functions (tests/upgrade/check.sh runs it in a database of
-- that version before ALTER EXTENSION paas UPDATE): thousands of accounts,
-- wallets funded by signed Midtrans settlements, services, subscriptions
-- with their charges and invoices, renewals, cancellations, nodes with
-- heartbeats and transitions.  Only the API common to every release is
-- used; psql variables: none.  Run as superuser (a DBA's call: no ctx).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
-- the settlements are signed with the server's Midtrans key (tests/run.sh sets one)
DO $$
BEGIN
	IF coalesce(current_setting('paas.midtrans_server_key', true), '') = '' THEN
		RAISE EXCEPTION 'the upgrade data set needs paas.midtrans_server_key to be set';
	END IF;
END $$;

-- accounts: 10 through registration (bcrypt), the rest as an import writes
-- them (the same password hash), so that the set stays quick to build
DO $$
BEGIN
	FOR i IN 1..10 LOOP
		PERFORM api.auth_register(jsonb_build_object('email', 'user' || i || '@upgrade.test',
			'name', 'User ' || i, 'password', 'Upgrade-Passw0rd', 'confirmPassword', 'Upgrade-Passw0rd'), '{}');
	END LOOP;
END $$;
INSERT INTO paas.users (email, name, password_hash)
SELECT 'user' || i || '@upgrade.test', 'User ' || i,
	   (SELECT password_hash FROM paas.users WHERE email = 'user1@upgrade.test')
  FROM generate_series(11, 1200) i;
SELECT api.seed_admin('admin@upgrade.test', 'Upgrade-Passw0rd', 'Upgrade Admin');

-- the catalog
INSERT INTO paas.services (name, display_name, description, docker_image, monthly_price)
SELECT 'app-' || i, 'App ' || i, 'An application of the upgrade data set', 'example/app:' || i,
	   CASE WHEN i % 10 = 0 THEN 0 ELSE 10000 * (i % 7 + 1) END
  FROM generate_series(1, 40) i;

-- wallets: a top-up per account, settled by a signed notification
DO $$
DECLARE
	u record;
	t jsonb;
	oid text;
	amt text;
BEGIN
	FOR u IN SELECT id, row_number() OVER (ORDER BY email) AS n FROM paas.users
			  WHERE email LIKE 'user%@upgrade.test' ORDER BY email LOOP
		t := api.billing_topup(jsonb_build_object('amount', 100000 + (u.n % 20) * 10000),
							   jsonb_build_object('userId', u.id, 'role', 'USER'));
		SELECT o.order_id, x.amount || '.00' INTO oid, amt
		  FROM paas.topups x JOIN paas.topup_orders o ON o.topup_id = x.id
		 WHERE x.user_id = u.id ORDER BY x.created_at DESC LIMIT 1;
		CONTINUE WHEN u.n % 25 = 0;		-- some stay pending
		PERFORM api.billing_webhook_midtrans(jsonb_build_object('order_id', oid,
			'status_code', '200', 'gross_amount', amt, 'transaction_status', 'settlement',
			'payment_type', 'bank_transfer', 'fraud_status', 'accept',
			'signature_key', encode(sha512(convert_to(oid || '200' || amt
				|| current_setting('paas.midtrans_server_key'), 'UTF8')), 'hex')),
			'{"ip": "203.0.113.10"}');
	END LOOP;
END $$;

-- subscriptions: one per funded account, charged from the wallet
DO $$
DECLARE
	u record;
	svc uuid;
BEGIN
	FOR u IN SELECT x.id, row_number() OVER (ORDER BY x.email) AS n FROM paas.users x
			  WHERE x.email LIKE 'user%@upgrade.test'
				AND EXISTS (SELECT 1 FROM paas.topups t WHERE t.user_id = x.id AND t.status = 'PAID')
			  ORDER BY x.email LOOP
		FOR k IN 1..1 LOOP
			SELECT id INTO svc FROM paas.services WHERE name = 'app-' || ((u.n + k * 7) % 40 + 1);
			BEGIN
				PERFORM api.subscriptions_create(jsonb_build_object('serviceId', svc),
					jsonb_build_object('userId', u.id, 'role', 'USER'));
			EXCEPTION WHEN SQLSTATE 'PT402' THEN
				NULL;		-- a wallet the first one emptied
			END;
		END LOOP;
	END LOOP;
END $$;

-- renewals: a fifth of the subscriptions sold a month and a day ago
UPDATE paas.subscriptions
   SET anchor_at = anchor_at - interval '1 month 1 day',
	   current_period_start = current_period_start - interval '1 month 1 day',
	   current_period_end = current_period_end - interval '1 month 1 day'
 WHERE abs(hashtext(id::text)) % 5 = 0;
SELECT api.run_renewals();

-- cancellations
DO $$
DECLARE
	s record;
BEGIN
	FOR s IN SELECT id, user_id FROM paas.subscriptions WHERE status = 'ACTIVE'
			  AND abs(hashtext(id::text)) % 10 = 1 LOOP
		PERFORM api.subscriptions_cancel(jsonb_build_object('id', s.id),
			jsonb_build_object('userId', s.user_id, 'role', 'USER'));
	END LOOP;
END $$;

-- nodes: registered with a join token, heartbeats, some set to maintenance
SELECT api.workers_join_token_add('upgrade-join-token-0001', 'upgrade', now() + interval '1 day');
DO $$
BEGIN
	FOR i IN 1..300 LOOP
		PERFORM api.workers_register(jsonb_build_object('name', 'up-node-' || i,
			'hostname', 'up-node-' || i || '.upgrade.local', 'ipAddress', '10.77.' || (i / 250) || '.' || (i % 250 + 1),
			'cpuCores', 8, 'cpuArchitecture', 'x86_64', 'totalMemory', '32Gi', 'totalStorage', '500Gi',
			'labels', jsonb_build_object('zone', 'z' || i % 3)), '{"nodeToken": "upgrade-join-token-0001"}');
		PERFORM api.workers_heartbeat(jsonb_build_object('nodeName', 'up-node-' || i,
			'cpuUsage', (i % 8) || '000m', 'memoryUsage', (i % 30) || 'Gi', 'currentPods', i % 50), '{}');
	END LOOP;
	FOR i IN 1..300 BY 17 LOOP
		PERFORM api.workers_set_status(jsonb_build_object('nodeId', 'up-node-' || i, 'status', 'MAINTENANCE'), '{}');
	END LOOP;
END $$;
