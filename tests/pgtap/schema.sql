-- API snapshot: the exact surface of schema api (name, arguments, result,
-- volatility).  A change to the surface must change this file on purpose.
BEGIN;
SELECT plan(2);

SELECT results_eq(
	$$SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
			 || pg_get_function_result(p.oid) || ' ' || p.provolatile::text COLLATE "default"
		FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace ORDER BY 1$$,
	$$VALUES
		('admin_billing_adjust(req jsonb, ctx jsonb) jsonb v'),
		('admin_billing_ledger(req jsonb, ctx jsonb) jsonb s'),
		('admin_billing_overview(req jsonb, ctx jsonb) jsonb s'),
		('admin_billing_user_ledger(req jsonb, ctx jsonb) jsonb s'),
		('auth_change_password(req jsonb, ctx jsonb) jsonb v'),
		('auth_delete_account(req jsonb, ctx jsonb) jsonb v'),
		('auth_login(req jsonb, ctx jsonb) jsonb v'),
		('auth_logout(req jsonb, ctx jsonb) jsonb v'),
		('auth_me(req jsonb, ctx jsonb) jsonb s'),
		('auth_profile(req jsonb, ctx jsonb) jsonb s'),
		('auth_profile_update(req jsonb, ctx jsonb) jsonb v'),
		('auth_refresh(req jsonb, ctx jsonb) jsonb v'),
		('auth_register(req jsonb, ctx jsonb) jsonb v'),
		('billing_balance(req jsonb, ctx jsonb) jsonb s'),
		('billing_dashboard_analytics(req jsonb, ctx jsonb) jsonb s'),
		('billing_dashboard_overview(req jsonb, ctx jsonb) jsonb s'),
		('billing_health(req jsonb, ctx jsonb) jsonb s'),
		('billing_invoice_get(req jsonb, ctx jsonb) jsonb s'),
		('billing_invoice_pdf(req jsonb, ctx jsonb) jsonb v'),
		('billing_invoices(req jsonb, ctx jsonb) jsonb s'),
		('billing_topup(req jsonb, ctx jsonb) jsonb v'),
		('billing_topup_get(req jsonb, ctx jsonb) jsonb s'),
		('billing_topups(req jsonb, ctx jsonb) jsonb s'),
		('billing_transaction_get(req jsonb, ctx jsonb) jsonb s'),
		('billing_transaction_pay(req jsonb, ctx jsonb) jsonb v'),
		('billing_transactions(req jsonb, ctx jsonb) jsonb s'),
		('billing_webhook_midtrans(req jsonb, ctx jsonb) jsonb v'),
		('health(req jsonb, ctx jsonb) jsonb s'),
		('seed_admin(email text, password text, name text) uuid v'),
		('services_admin_get(req jsonb, ctx jsonb) jsonb s'),
		('services_admin_list(req jsonb, ctx jsonb) jsonb s'),
		('services_admin_stats(req jsonb, ctx jsonb) jsonb s'),
		('services_categories(req jsonb, ctx jsonb) jsonb s'),
		('services_create(req jsonb, ctx jsonb) jsonb v'),
		('services_delete(req jsonb, ctx jsonb) jsonb v'),
		('services_get_by_name(req jsonb, ctx jsonb) jsonb s'),
		('services_list(req jsonb, ctx jsonb) jsonb s'),
		('services_toggle_status(req jsonb, ctx jsonb) jsonb v'),
		('services_update(req jsonb, ctx jsonb) jsonb v'),
		('status(req jsonb, ctx jsonb) jsonb s'),
		('users_bulk(req jsonb, ctx jsonb) jsonb v'),
		('users_create(req jsonb, ctx jsonb) jsonb v'),
		('users_delete(req jsonb, ctx jsonb) jsonb v'),
		('users_get(req jsonb, ctx jsonb) jsonb v'),
		('users_list(req jsonb, ctx jsonb) jsonb s'),
		('users_set_password(req jsonb, ctx jsonb) jsonb v'),
		('users_stats(req jsonb, ctx jsonb) jsonb s'),
		('users_toggle_status(req jsonb, ctx jsonb) jsonb v'),
		('users_update(req jsonb, ctx jsonb) jsonb v')

	$$,
	'the api schema has exactly the documented functions');

SELECT results_eq(
	$$SELECT c.relname::text COLLATE "default" FROM pg_class c
	   WHERE c.relnamespace = 'reporting'::regnamespace AND c.relkind = 'v' ORDER BY 1$$,
	$$VALUES ('balances'), ('daily_revenue'), ('ledger_check'), ('topups_by_status')$$,
	'the reporting schema has exactly the documented views');

SELECT finish();
ROLLBACK;
