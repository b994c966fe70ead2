/*-------------------------------------------------------------------------
 *
 * accounts.c
 *	  The GUCs of failed-login accounting (sql/parts/11_auth.sql).
 *
 * api.auth_login keeps, with the account and under its row lock, a bucket
 * of failed logins per (account, client address) and a count of failures
 * over every address that never logged into the account.  These settings
 * size them:
 *	  - paas.login_failures_per_address: failures one address may make per
 *		minute on one account (a bucket of that size, refilled continuously);
 *		past it the address answers 429 before the password is checked.
 *	  - paas.login_failures_per_account: failures from unknown addresses
 *		(no successful login from there in 30 days) after which each further
 *		one doubles the account's wait for unknown addresses, from 1 s up to
 *		paas.login_backoff_max.  Known addresses never wait for it, so an
 *		attacker cannot lock the owner out.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "paas.h"

int			paas_login_failures_per_address = 10;
int			paas_login_failures_per_account = 50;
int			paas_login_backoff_max_s = 900;

/*
 * paas.login_settings() -> (per_address integer, per_account integer,
 * backoff_max interval): the GUCs as the calling session sees them.
 */
PG_FUNCTION_INFO_V1(paas_login_settings);
Datum
paas_login_settings(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	Interval   *backoff = palloc0(sizeof(Interval));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	backoff->time = (int64) paas_login_backoff_max_s * USECS_PER_SEC;
	values[0] = Int32GetDatum(paas_login_failures_per_address);
	values[1] = Int32GetDatum(paas_login_failures_per_account);
	values[2] = IntervalPGetDatum(backoff);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* Called from _PG_init: the GUCs of failed-login accounting. */
void
paas_accounts_init(void)
{
	DefineCustomIntVariable("paas.login_failures_per_address",
							"Failed logins per minute one client address may make on one account.",
							"Past it the address answers 429 for that account until its bucket refills.",
							&paas_login_failures_per_address,
							10,
							1,
							1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("paas.login_failures_per_account",
							"Failed logins of an account from unknown addresses before back-off.",
							"Each further failure doubles the wait of unknown addresses, up to paas.login_backoff_max.",
							&paas_login_failures_per_account,
							50,
							1,
							1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("paas.login_backoff_max",
							"Longest wait of the per-account back-off of failed logins.",
							NULL,
							&paas_login_backoff_max_s,
							900,
							1,
							7 * 24 * 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}
