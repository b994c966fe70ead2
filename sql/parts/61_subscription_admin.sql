-- paas -- the administrators' view of subscriptions: lists, details, status
-- changes through the status machine of 60_subscriptions.sql, statistics,
-- and the notices of subscriptions about to renew or lapse.

------------------------------------------------------------------------------
-- api: administrators
------------------------------------------------------------------------------

CREATE FUNCTION api.subscriptions_admin_list(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	uid uuid;
	r jsonb;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	PERFORM paas.raise_if_invalid(paas.check_subscription_filters('[]', req));
	IF req ->> 'userId' IS NOT NULL THEN
		SELECT id INTO uid FROM paas.users WHERE id = paas.to_uuid(req ->> 'userId');
		IF NOT FOUND THEN
			RAISE EXCEPTION 'User not found' USING ERRCODE = 'PT404';
		END IF;
	END IF;
	r := paas.subscriptions_page(req, uid, 20);
	RETURN jsonb_build_object('data', r -> 'rows',
							  'pagination', paas.pagination(req, (r ->> 'total')::bigint, 20));
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_list(jsonb, jsonb) IS
	'GET /admin/subscriptions and /admin/subscriptions/users/:userId: userId, status, serviceId, page, limit';

CREATE FUNCTION api.subscriptions_admin_get(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	s paas.subscriptions;
	v paas.services;
	o paas.users;
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT * INTO s FROM paas.subscriptions WHERE id = paas.to_uuid(req ->> 'id');
	IF NOT FOUND THEN
		RAISE EXCEPTION 'Subscription not found' USING ERRCODE = 'PT404';
	END IF;
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	SELECT * INTO o FROM paas.users WHERE id = s.user_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object(
		'user', jsonb_build_object('id', o.id, 'name', o.name, 'email', o.email),
		'balance', paas.wallet_balance(s.user_id),
		'charges', (SELECT coalesce(jsonb_agg(paas.subscription_charge_json(c) ORDER BY c.period_no DESC), '[]')
					  FROM paas.subscription_charges c WHERE c.subscription_id = s.id),
		'events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
						'event', e.event, 'from', e.from_status, 'to', e.to_status,
						'actorId', e.actor_id, 'reason', e.reason,
						'createdAt', paas.iso(e.created_at)) ORDER BY e.id), '[]')
					 FROM paas.subscription_events e WHERE e.subscription_id = s.id));
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_get(jsonb, jsonb) IS
	'GET /admin/subscriptions/:id: any subscription with its owner, charges and status history';

CREATE FUNCTION api.subscriptions_admin_set_status(req jsonb, ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	adm paas.users := paas.require_admin(ctx);
	errs jsonb := '[]';
	s paas.subscriptions;
	v paas.services;
	prev text;
	ev text;
BEGIN
	req := paas.require_object(req);
	errs := paas.check_enum(errs, req, 'status', true, ARRAY['ACTIVE', 'SUSPENDED', 'CANCELLED', 'EXPIRED']);
	errs := paas.check_text(errs, req, 'reason', true, 3, 500);
	s := paas.subscription_of(NULL, req ->> 'id');
	PERFORM paas.raise_if_invalid(errs);
	prev := s.status;
	ev := CASE req ->> 'status' WHEN 'ACTIVE' THEN 'activate' WHEN 'SUSPENDED' THEN 'suspend'
							   WHEN 'CANCELLED' THEN 'cancel' ELSE 'expire' END;
	s.status := paas.subscription_transition(s.status, ev);
	BEGIN
		UPDATE paas.subscriptions
		   SET status = s.status,
			   grace_until = NULL,
			   cancelled_at = CASE s.status WHEN 'CANCELLED' THEN coalesce(cancelled_at, now())
							  WHEN 'ACTIVE' THEN NULL ELSE cancelled_at END,
			   suspended_at = CASE s.status WHEN 'SUSPENDED' THEN coalesce(suspended_at, now())
							  WHEN 'ACTIVE' THEN NULL ELSE suspended_at END,
			   ended_at = CASE s.status WHEN 'EXPIRED' THEN coalesce(ended_at, now()) END,
			   status_reason = req ->> 'reason', updated_at = now()
		 WHERE id = s.id
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'The user has another live subscription to this service'
			USING ERRCODE = 'PT409';
	END;
	PERFORM paas.subscription_log(s.id, 'admin_' || ev, prev, s.status, adm.id, req ->> 'reason');
	SELECT * INTO v FROM paas.services WHERE id = s.service_id;
	RETURN paas.subscription_json(s, v) || jsonb_build_object('previousStatus', prev);
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_set_status(jsonb, jsonb) IS
	'PUT /admin/subscriptions/:id/status {status: ACTIVE|SUSPENDED|CANCELLED|EXPIRED, reason}: '
	'through the status machine (PT409 when illegal), without any charge or refund';

CREATE FUNCTION api.subscriptions_admin_stats(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	r jsonb;
	cfg paas.subscription_settings := paas.subscription_config();
BEGIN
	PERFORM paas.require_admin(ctx);
	SELECT jsonb_build_object(
		'total', count(*),
		'byStatus', jsonb_build_object(
			'ACTIVE', count(*) FILTER (WHERE status = 'ACTIVE'),
			'GRACE', count(*) FILTER (WHERE status = 'GRACE'),
			'SUSPENDED', count(*) FILTER (WHERE status = 'SUSPENDED'),
			'CANCELLED', count(*) FILTER (WHERE status = 'CANCELLED'),
			'EXPIRED', count(*) FILTER (WHERE status = 'EXPIRED')),
		'monthlyRecurringRevenue', coalesce(sum(price) FILTER (WHERE status IN ('ACTIVE', 'GRACE')), 0),
		'dueNow', count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE', 'CANCELLED')
										 AND current_period_end <= now()),
		'renewingWithin', jsonb_build_object(
			'window', cfg.expiring_within::text,
			'count', count(*) FILTER (WHERE status = 'ACTIVE'
										   AND current_period_end <= now() + cfg.expiring_within)),
		'gracePeriod', cfg.grace_period::text,
		'currency', 'IDR')
	  INTO r
	  FROM paas.subscriptions;
	RETURN r || jsonb_build_object(
		'chargesLast30Days', (SELECT jsonb_build_object('count', count(*), 'amount', coalesce(sum(amount), 0))
								FROM paas.subscription_charges
							   WHERE created_at >= now() - interval '30 days'),
		-- the subscription counts the catalog's own statistics leave out
		'byService', (SELECT coalesce(jsonb_agg(jsonb_build_object(
							'serviceId', v.id, 'name', v.name, 'displayName', v.display_name,
							'live', n.live, 'active', n.active, 'total', n.total,
							'monthlyRecurringRevenue', n.mrr) ORDER BY n.live DESC, v.name), '[]')
						FROM (SELECT service_id, count(*) AS total,
									 count(*) FILTER (WHERE status <> 'EXPIRED') AS live,
									 count(*) FILTER (WHERE status IN ('ACTIVE', 'GRACE')) AS active,
									 coalesce(sum(price) FILTER (WHERE status IN ('ACTIVE', 'GRACE')), 0) AS mrr
								FROM paas.subscriptions GROUP BY service_id) n
						JOIN paas.services v ON v.id = n.service_id));
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_stats(jsonb, jsonb) IS
	'GET /admin/subscriptions/stats: counts by status and by service, recurring revenue, due now, charges of 30 days';

------------------------------------------------------------------------------
-- notices (of subscriptions about to renew or lapse, for the notification mailer)
------------------------------------------------------------------------------

-- expiring_soon: a CANCELLED subscription ending within the window, or an
-- ACTIVE one renewing within it whose wallet does not cover the price;
-- grace: renewal failed, served until grace_until; suspended: not served.
CREATE VIEW reporting.subscription_notices AS
SELECT CASE WHEN s.status = 'SUSPENDED' THEN 'suspended'
			WHEN s.status = 'GRACE' THEN 'grace'
			ELSE 'expiring_soon' END AS notice,
	   s.id AS subscription_id, s.user_id, u.email AS user_email, u.name AS user_name,
	   s.service_id, v.name AS service_name, v.display_name AS service_display_name,
	   s.status, s.price, coalesce(a.balance, 0) AS wallet_balance,
	   s.current_period_end, s.grace_until, s.suspended_at,
	   CASE WHEN s.status = 'SUSPENDED' THEN s.suspended_at
			WHEN s.status = 'GRACE' THEN s.grace_until
			ELSE s.current_period_end END AS due_at
  FROM paas.subscriptions s
  JOIN paas.users u ON u.id = s.user_id
  JOIN paas.services v ON v.id = s.service_id
  LEFT JOIN paas.ledger_accounts a ON a.user_id = s.user_id AND a.kind = 'wallet'
 CROSS JOIN paas.subscription_settings c
 WHERE s.status IN ('SUSPENDED', 'GRACE')
	OR (s.status = 'CANCELLED' AND s.current_period_end > now()
		AND s.current_period_end <= now() + c.expiring_within)
	OR (s.status = 'ACTIVE' AND s.current_period_end <= now() + c.expiring_within
		AND coalesce(a.balance, 0) < s.price);
COMMENT ON VIEW reporting.subscription_notices IS
	'subscriptions to notify: expiring_soon (cancelled and ending, or renewing with a short wallet '
	'within subscription_settings.expiring_within), grace, suspended';

GRANT SELECT ON reporting.subscription_notices TO paas_bi, paas_owner;

CREATE FUNCTION api.subscriptions_admin_notices(req jsonb DEFAULT '{}', ctx jsonb DEFAULT '{}') RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SECURITY DEFINER SET search_path = pg_catalog, paas, pg_temp
AS $$
DECLARE
	errs jsonb := '[]';
	lim int;
	total bigint;
	rows jsonb;
	k text;
BEGIN
	PERFORM paas.require_admin(ctx);
	req := paas.require_object(req);
	errs := paas.check_paging(errs, req);
	errs := paas.check_enum(errs, req, 'notice', false, ARRAY['expiring_soon', 'grace', 'suspended']);
	PERFORM paas.raise_if_invalid(errs);
	k := req ->> 'notice';
	lim := coalesce((req ->> 'limit')::int, 20);
	SELECT count(*) INTO total FROM reporting.subscription_notices n WHERE k IS NULL OR n.notice = k;
	SELECT coalesce(jsonb_agg(jsonb_build_object(
				'notice', n.notice, 'subscriptionId', n.subscription_id,
				'user', jsonb_build_object('id', n.user_id, 'email', n.user_email, 'name', n.user_name),
				'service', jsonb_build_object('id', n.service_id, 'name', n.service_name,
											  'displayName', n.service_display_name),
				'status', n.status, 'price', n.price, 'balance', n.wallet_balance,
				'currentPeriodEnd', paas.iso(n.current_period_end),
				'graceUntil', paas.iso(n.grace_until), 'suspendedAt', paas.iso(n.suspended_at),
				'dueAt', paas.iso(n.due_at)) ORDER BY n.due_at, n.subscription_id), '[]')
	  INTO rows
	  FROM (SELECT * FROM reporting.subscription_notices x
			 WHERE k IS NULL OR x.notice = k
			 ORDER BY x.due_at, x.subscription_id
			 LIMIT lim OFFSET (coalesce((req ->> 'page')::int, 1) - 1) * lim) n;
	RETURN jsonb_build_object('data', rows, 'pagination', paas.pagination(req, total, 20));
END
$$;
COMMENT ON FUNCTION api.subscriptions_admin_notices(jsonb, jsonb) IS
	'GET /admin/subscriptions/notices: expiring_soon, grace and suspended subscriptions; notice, page, limit';

DO $grants$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY[
		'api.subscriptions_admin_list(jsonb, jsonb)', 'api.subscriptions_admin_get(jsonb, jsonb)',
		'api.subscriptions_admin_set_status(jsonb, jsonb)', 'api.subscriptions_admin_stats(jsonb, jsonb)',
		'api.subscriptions_admin_notices(jsonb, jsonb)']
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO paas_api, paas_owner', f);
	END LOOP;
END
$grants$;
