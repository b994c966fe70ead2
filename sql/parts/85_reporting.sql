-- paas -- reporting: the finance views a BI tool reads (role paas_bi).
--
-- Every view is read-only, in whole IDR, and dated in UTC (months are UTC
-- calendar months, as the subscription periods are).  docs/bi.md answers the
-- usual finance questions with them.  Revenue is what reached the platform's
-- revenue account (charges add, reversals and refunds of charges subtract);
-- the wallets' balances are money customers prepaid and the platform owes
-- them until spent (a liability, not revenue).

------------------------------------------------------------------------------
-- revenue per month, by kind of entry and by service
------------------------------------------------------------------------------
CREATE VIEW reporting.revenue_monthly AS
SELECT date_trunc('month', p.created_at AT TIME ZONE 'UTC')::date AS month,
	   e.kind,
	   s.id AS service_id,
	   s.name AS service_name,
	   sum(p.amount)::bigint AS revenue,
	   count(DISTINCT e.id) AS entries,
	   'IDR'::text AS currency
  FROM paas.ledger_postings p
  JOIN paas.ledger_accounts a ON a.id = p.account_id
  JOIN paas.ledger_accounts pa ON pa.id = coalesce(a.parent_id, a.id)
  JOIN paas.ledger_entries e ON e.id = p.entry_id
  LEFT JOIN paas.services s ON s.id = paas.to_uuid(e.ref ->> 'serviceId')
 WHERE pa.kind = 'platform' AND pa.code = 'revenue'
 GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW reporting.revenue_monthly IS
	'revenue per UTC month, per kind of ledger entry and per service (NULL service: not tied to one)';
COMMENT ON COLUMN reporting.revenue_monthly.month IS 'first day of the UTC calendar month';
COMMENT ON COLUMN reporting.revenue_monthly.kind IS
	'ledger entry kind: subscription_charge, subscription_renewal, reversal, adjustment ...';
COMMENT ON COLUMN reporting.revenue_monthly.service_id IS 'the catalog service the entry charged for, if any';
COMMENT ON COLUMN reporting.revenue_monthly.service_name IS 'its slug (paas.services.name)';
COMMENT ON COLUMN reporting.revenue_monthly.revenue IS 'net movement of the revenue account in IDR';
COMMENT ON COLUMN reporting.revenue_monthly.entries IS 'ledger entries behind the figure';
COMMENT ON COLUMN reporting.revenue_monthly.currency IS 'always IDR';

------------------------------------------------------------------------------
-- top-ups by payment method and status
------------------------------------------------------------------------------
CREATE VIEW reporting.topups_monthly AS
SELECT date_trunc('month', t.created_at AT TIME ZONE 'UTC')::date AS month,
	   coalesce(t.payment_type, 'unknown') AS payment_type,
	   t.status,
	   count(*) AS topups,
	   sum(t.amount)::bigint AS amount,
	   count(DISTINCT t.user_id) AS users,
	   'IDR'::text AS currency
  FROM paas.topups t
 GROUP BY 1, 2, 3;
COMMENT ON VIEW reporting.topups_monthly IS
	'top-ups per UTC month (of creation), Midtrans payment method and status';
COMMENT ON COLUMN reporting.topups_monthly.month IS 'first day of the UTC month the top-up was opened in';
COMMENT ON COLUMN reporting.topups_monthly.payment_type IS
	'Midtrans payment_type (bank_transfer, gopay, credit_card ...); unknown until paid';
COMMENT ON COLUMN reporting.topups_monthly.status IS 'PENDING, PAID, FAILED, EXPIRED, CANCELLED or REFUNDED';
COMMENT ON COLUMN reporting.topups_monthly.topups IS 'number of top-ups';
COMMENT ON COLUMN reporting.topups_monthly.amount IS 'their requested amounts in IDR';
COMMENT ON COLUMN reporting.topups_monthly.users IS 'distinct customers';
COMMENT ON COLUMN reporting.topups_monthly.currency IS 'always IDR';

------------------------------------------------------------------------------
-- active subscriptions and monthly recurring revenue per service
------------------------------------------------------------------------------
CREATE VIEW reporting.subscriptions_by_service AS
SELECT s.id AS service_id,
	   s.name AS service_name,
	   count(x.id) FILTER (WHERE x.status = 'ACTIVE') AS active,
	   count(x.id) FILTER (WHERE x.status = 'GRACE') AS in_grace,
	   count(x.id) FILTER (WHERE x.status = 'SUSPENDED') AS suspended,
	   count(x.id) FILTER (WHERE x.status = 'CANCELLED') AS cancelling,
	   coalesce(sum(x.price) FILTER (WHERE x.status IN ('ACTIVE', 'GRACE')), 0)::bigint AS mrr,
	   'IDR'::text AS currency
  FROM paas.services s
  LEFT JOIN paas.subscriptions x ON x.service_id = s.id
 WHERE s.deleted_at IS NULL OR x.id IS NOT NULL
 GROUP BY s.id, s.name;
COMMENT ON VIEW reporting.subscriptions_by_service IS
	'live subscriptions per service now, and the monthly recurring revenue they bring';
COMMENT ON COLUMN reporting.subscriptions_by_service.active IS 'paid and running';
COMMENT ON COLUMN reporting.subscriptions_by_service.in_grace IS 'renewal failed, still running within the grace period';
COMMENT ON COLUMN reporting.subscriptions_by_service.suspended IS 'stopped for non-payment';
COMMENT ON COLUMN reporting.subscriptions_by_service.cancelling IS 'cancelled by the customer, running to the period end';
COMMENT ON COLUMN reporting.subscriptions_by_service.mrr IS
	'monthly recurring revenue in IDR: the monthly prices of the subscriptions that will renew (ACTIVE and GRACE)';
COMMENT ON COLUMN reporting.subscriptions_by_service.currency IS 'always IDR';

------------------------------------------------------------------------------
-- churn per month
------------------------------------------------------------------------------
CREATE VIEW reporting.churn_monthly AS
WITH bounds AS (
	SELECT date_trunc('month', min(created_at) AT TIME ZONE 'UTC') AS first_month
	  FROM paas.subscriptions
), months AS (
	SELECT m::date AS month, (m AT TIME ZONE 'UTC') AS starts, ((m + interval '1 month') AT TIME ZONE 'UTC') AS ends
	  FROM bounds, generate_series(bounds.first_month, date_trunc('month', now() AT TIME ZONE 'UTC'),
								   interval '1 month') AS m
)
SELECT m.month,
	   count(x.id) FILTER (WHERE x.created_at < m.starts AND (x.ended_at IS NULL OR x.ended_at >= m.starts))
		   AS live_at_start,
	   count(x.id) FILTER (WHERE x.created_at >= m.starts AND x.created_at < m.ends) AS started,
	   count(x.id) FILTER (WHERE x.ended_at >= m.starts AND x.ended_at < m.ends) AS ended,
	   round(count(x.id) FILTER (WHERE x.ended_at >= m.starts AND x.ended_at < m.ends)::numeric
			 / nullif(count(x.id) FILTER (WHERE x.created_at < m.starts
										   AND (x.ended_at IS NULL OR x.ended_at >= m.starts)), 0), 4)
		   AS churn_rate
  FROM months m
  LEFT JOIN paas.subscriptions x ON x.created_at < m.ends
 GROUP BY m.month;
COMMENT ON VIEW reporting.churn_monthly IS
	'subscriptions live at the start of each UTC month, started and ended in it, and the churn rate';
COMMENT ON COLUMN reporting.churn_monthly.live_at_start IS 'subscriptions created before the month and not ended by its start';
COMMENT ON COLUMN reporting.churn_monthly.started IS 'subscriptions created in the month';
COMMENT ON COLUMN reporting.churn_monthly.ended IS 'subscriptions that ended (expired or were cancelled to the end) in the month';
COMMENT ON COLUMN reporting.churn_monthly.churn_rate IS 'ended / live_at_start (NULL when none were live)';

------------------------------------------------------------------------------
-- outstanding wallet balances: what the platform owes its customers
------------------------------------------------------------------------------
CREATE VIEW reporting.wallet_liability AS
SELECT count(*) AS wallets,
	   count(*) FILTER (WHERE a.balance > 0) AS funded_wallets,
	   coalesce(sum(a.balance), 0)::bigint AS outstanding,
	   coalesce(max(a.balance), 0)::bigint AS largest,
	   now() AS as_of,
	   'IDR'::text AS currency
  FROM paas.ledger_accounts a
 WHERE a.kind = 'wallet';
COMMENT ON VIEW reporting.wallet_liability IS
	'the sum of all wallet balances: credit customers prepaid and have not spent (the platform''s liability)';
COMMENT ON COLUMN reporting.wallet_liability.wallets IS 'customer wallets';
COMMENT ON COLUMN reporting.wallet_liability.funded_wallets IS 'wallets holding credit';
COMMENT ON COLUMN reporting.wallet_liability.outstanding IS 'total credit owed, in IDR';
COMMENT ON COLUMN reporting.wallet_liability.largest IS 'the largest single wallet balance';
COMMENT ON COLUMN reporting.wallet_liability.as_of IS 'when the figure was read';
COMMENT ON COLUMN reporting.wallet_liability.currency IS 'always IDR';

GRANT SELECT ON reporting.revenue_monthly, reporting.topups_monthly, reporting.subscriptions_by_service,
	reporting.churn_monthly, reporting.wallet_liability TO paas_bi, paas_owner;
