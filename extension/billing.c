/*-------------------------------------------------------------------------
 *
 * billing.c
 *	  Midtrans settings of the billing area and the verification of
 *	  notification signatures.
 *
 * Midtrans signs each notification with
 *	  signature_key = hex(SHA-512(order_id || status_code || gross_amount ||
 *							   server key))
 * over the exact strings of the notification (reference/midtrans.md).  The
 * check lives in the database, next to the state change it guards, so the
 * webhook route stays one SQL call and a DBA replaying a notification from
 * psql gets the same protection.  Rules a reader must know:
 *	  - the server key is the GUC paas.midtrans_server_key: superuser-only
 *		and hidden from SHOW ALL; it is never returned or logged;
 *	  - with no key configured every signature is refused;
 *	  - the comparison runs over all 128 hex digits whatever differs first
 *		(constant time), case-insensitively.
 * The reconciliation job (bgworker/reconcile.c) reads the same settings.
 * paas.midtrans_reject_retention bounds how long refused notifications are
 * kept (job prune_midtrans_rejects).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "paas.h"

char	   *paas_midtrans_server_key = NULL;
char	   *paas_midtrans_api_url = NULL;
bool		paas_midtrans_is_production = false;
int			paas_billing_reconcile_after_s = 900;
int			paas_billing_reconcile_interval_s = 60;

/* how long refused notifications (paas.midtrans_rejects) are kept */
static int	paas_midtrans_reject_retention_s = 30 * 24 * 3600;

void
paas_billing_init(void)
{
	DefineCustomStringVariable("paas.midtrans_server_key",
							   "Midtrans server key (signature checks, status API).",
							   "Secret: readable by superusers only.",
							   &paas_midtrans_server_key,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("paas.midtrans_api_url",
							   "Base URL of the Midtrans Core API (status checks).",
							   "Empty: the sandbox or production host, "
							   "after paas.midtrans_is_production.",
							   &paas_midtrans_api_url,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("paas.midtrans_is_production",
							 "Use Midtrans production hosts instead of the sandbox.",
							 NULL,
							 &paas_midtrans_is_production,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("paas.billing_reconcile_after",
							"Age of a pending top-up order before its status is checked.",
							"Also the time between two checks of one order.",
							&paas_billing_reconcile_after_s,
							900,
							1,
							7 * 24 * 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("paas.midtrans_reject_retention",
							"How long refused Midtrans notifications are kept.",
							"The job prune_midtrans_rejects deletes older rows; 0 keeps them forever.",
							&paas_midtrans_reject_retention_s,
							30 * 24 * 3600,
							0,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("paas.billing_reconcile_interval",
							"Time between two reconciliation passes of the worker.",
							NULL,
							&paas_billing_reconcile_interval_s,
							60,
							1,
							24 * 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* Base URL of the Core API without a trailing slash (static storage). */
const char *
paas_midtrans_api_base(void)
{
	if (paas_midtrans_api_url && paas_midtrans_api_url[0] != '\0')
		return paas_midtrans_api_url;
	return paas_midtrans_is_production ? "https://api.midtrans.com"
		: "https://api.sandbox.midtrans.com";
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * paas.midtrans_signature_ok(order_id, status_code, gross_amount,
 * signature_key) -> boolean.  False for any NULL argument, a missing key,
 * or a signature that is not 128 hex digits.
 */
PG_FUNCTION_INFO_V1(paas_midtrans_signature_ok);
Datum
paas_midtrans_signature_ok(PG_FUNCTION_ARGS)
{
	pg_cryptohash_ctx *volatile ctx = NULL;
	uint8		digest[PG_SHA512_DIGEST_LENGTH];
	text	   *sig;
	const char *s;
	unsigned	diff = 0;
	int			i;

	for (i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			PG_RETURN_BOOL(false);
	if (paas_midtrans_server_key == NULL || paas_midtrans_server_key[0] == '\0')
		PG_RETURN_BOOL(false);
	sig = PG_GETARG_TEXT_PP(3);
	if (VARSIZE_ANY_EXHDR(sig) != 2 * PG_SHA512_DIGEST_LENGTH)
		PG_RETURN_BOOL(false);

	ctx = pg_cryptohash_create(PG_SHA512);
	PG_TRY();
	{
		bool		failed = (ctx == NULL || pg_cryptohash_init(ctx) < 0);

		for (i = 0; i < 3 && !failed; i++)
		{
			text	   *t = PG_GETARG_TEXT_PP(i);

			failed = pg_cryptohash_update(ctx, (const uint8 *) VARDATA_ANY(t),
										  VARSIZE_ANY_EXHDR(t)) < 0;
		}
		if (!failed)
			failed = pg_cryptohash_update(ctx, (const uint8 *) paas_midtrans_server_key,
										  strlen(paas_midtrans_server_key)) < 0;
		if (!failed)
			failed = pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0;
		if (failed)
			elog(ERROR, "could not compute SHA-512");
	}
	PG_FINALLY();
	{
		pg_cryptohash_free(ctx);
	}
	PG_END_TRY();

	/* every digit is examined: no early exit on the first difference */
	s = VARDATA_ANY(sig);
	for (i = 0; i < PG_SHA512_DIGEST_LENGTH; i++)
	{
		int			hi = hexval(s[2 * i]);
		int			lo = hexval(s[2 * i + 1]);

		diff |= (unsigned) (hi < 0) | (unsigned) (lo < 0);
		diff |= (unsigned) ((((hi & 0xf) << 4) | (lo & 0xf)) ^ digest[i]);
	}
	explicit_bzero(digest, sizeof(digest));
	PG_RETURN_BOOL(diff == 0);
}

/*
 * paas.midtrans_reject_retention() -> interval: how long paas.midtrans_rejects
 * rows are kept; NULL when paas.midtrans_reject_retention is 0 (forever).
 */
PG_FUNCTION_INFO_V1(paas_midtrans_reject_retention);
Datum
paas_midtrans_reject_retention(PG_FUNCTION_ARGS)
{
	Interval   *keep;

	if (paas_midtrans_reject_retention_s <= 0)
		PG_RETURN_NULL();
	keep = palloc0(sizeof(Interval));
	keep->time = (int64) paas_midtrans_reject_retention_s * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(keep);
}

/* paas.midtrans_configured() -> boolean: whether a server key is set. */
PG_FUNCTION_INFO_V1(paas_midtrans_configured);
Datum
paas_midtrans_configured(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(paas_midtrans_server_key != NULL &&
				   paas_midtrans_server_key[0] != '\0');
}
