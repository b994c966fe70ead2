/*-------------------------------------------------------------------------
 *
 * reconcile.c
 *	  Billing reconciliation in the paas background worker: pending top-up
 *	  orders whose notification did not come are checked with the Midtrans
 *	  status API (GET {api}/v2/{order_id}/status) and settled or failed
 *	  through the same SQL as a notification; paid orders that a
 *	  notification flagged for a reversal (refund, chargeback, deny / cancel
 *	  / expire after success) are checked at once, and only the answer takes
 *	  money back, by the amount it states (sql/parts/52_midtrans.sql).
 *
 * Rules a reader must know:
 *	  - no transaction is open while libcurl talks to Midtrans: a pass claims
 *		due orders in one short transaction (paas.billing_reconcile_claim
 *		marks them checked, FOR UPDATE SKIP LOCKED), calls the API with no
 *		transaction, then applies each answer in a transaction of its own
 *		(paas.billing_reconcile_apply, which records failures instead of
 *		raising);
 *	  - timeouts are bounded (connect 3 s, whole call 5 s), at most
 *		RECONCILE_BATCH orders and RECONCILE_BUDGET_MS per pass (orders
 *		claimed but not reached are checked on a later pass), one pass per
 *		paas.billing_reconcile_interval; nothing runs without a server key;
 *	  - the CURL handle is released in PG_FINALLY; the server key is never
 *		logged.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "bgw.h"
#include "paas.h"

#define RECONCILE_BATCH 20
#define RECONCILE_BUDGET_MS 15000	/* a pass never holds up the job loop longer */
#define RECONCILE_MAX_BODY (256 * 1024)

/* Order ids due for a check, allocated in "cxt" (claimed in their own tx). */
static List *
claim_orders(MemoryContext cxt)
{
	List	   *orders = NIL;
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	int			ret;

	paas_bgw_begin_tx("paas worker: claiming orders to reconcile");
	/* nothing to do until an extension version with billing is installed */
	ret = SPI_execute("SELECT 1 WHERE pg_catalog.to_regprocedure("
					  "'paas.billing_reconcile_claim(interval, integer)') IS NOT NULL",
					  true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "looking up paas.billing_reconcile_claim failed: %d", ret);
	if (SPI_processed > 0)
	{
		args[0] = Int32GetDatum(paas_billing_reconcile_after_s);
		ret = SPI_execute_with_args("SELECT paas.billing_reconcile_claim("
									"make_interval(secs => $1), "
									CppAsString2(RECONCILE_BATCH) ")",
									1, argtypes, args, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "paas.billing_reconcile_claim failed: %d", ret);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *id = SPI_getvalue(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, 1);
			MemoryContext old = MemoryContextSwitchTo(cxt);

			orders = lappend(orders, pstrdup(id));
			MemoryContextSwitchTo(old);
		}
	}
	paas_bgw_end_tx();
	return orders;
}

static size_t
collect_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	StringInfo	buf = (StringInfo) userdata;
	size_t		n = size * nmemb;

	if (buf->len + n > RECONCILE_MAX_BODY)
		return 0;				/* makes curl fail with CURLE_WRITE_ERROR */
	appendBinaryStringInfo(buf, data, (int) n);
	return n;
}

/*
 * GET {api}/v2/{order}/status into "body"; returns the HTTP status, 0 when
 * the call failed (the curl error text is put in "body" instead).
 */
static long
fetch_status(const char *order_id, StringInfo body)
{
	CURL	   *volatile h = NULL;
	struct curl_slist *volatile hdrs = NULL;
	char	   *volatile esc = NULL;
	long		status = 0;

	h = curl_easy_init();
	if (h == NULL)
	{
		appendStringInfoString(body, "curl_easy_init failed");
		return 0;
	}
	PG_TRY();
	{
		CURLcode	rc;
		char	   *url;

		esc = curl_easy_escape(h, order_id, 0);
		url = psprintf("%s/v2/%s/status", paas_midtrans_api_base(), esc ? esc : "");
		hdrs = curl_slist_append(hdrs, "Accept: application/json");
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, paas_midtrans_server_key);
		curl_easy_setopt(h, CURLOPT_PASSWORD, "");
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
		curl_easy_setopt(h, CURLOPT_USERAGENT, "paas-reconcile/" PAAS_VERSION);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *) body);

		rc = curl_easy_perform(h);
		if (rc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		else
		{
			resetStringInfo(body);
			appendStringInfoString(body, curl_easy_strerror(rc));
		}
		pfree(url);
	}
	PG_FINALLY();
	{
		if (esc)
			curl_free(esc);
		curl_slist_free_all(hdrs);
		curl_easy_cleanup(h);
	}
	PG_END_TRY();
	return status;
}

/* Applies one answer in its own transaction; returns the outcome text. */
static char *
apply_status(const char *order_id, long status, const char *body, MemoryContext cxt)
{
	Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
	Datum		args[3];
	char	   *outcome = NULL;
	int			ret;

	paas_bgw_begin_tx("paas worker: applying a Midtrans status");
	args[0] = CStringGetTextDatum(order_id);
	args[1] = Int32GetDatum((int32) status);
	args[2] = CStringGetTextDatum(body);
	ret = SPI_execute_with_args("SELECT paas.billing_reconcile_apply($1, $2, $3) ->> 'outcome'",
								3, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "paas.billing_reconcile_apply failed: %d", ret);
	if (SPI_processed == 1)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v)
			outcome = MemoryContextStrdup(cxt, v);
	}
	paas_bgw_end_tx();
	return outcome;
}

/*
 * One reconciliation pass, called by the worker after its jobs.  Returns at
 * once until paas.billing_reconcile_interval has passed since the last pass.
 */
void
paas_reconcile_pass(void)
{
	static TimestampTz last_pass = 0;
	static MemoryContext cxt = NULL;
	static bool curl_ready = false;
	TimestampTz now = GetCurrentTimestamp();
	List	   *orders;
	ListCell   *lc;
	int			checked = 0,
				applied = 0;

	if (paas_midtrans_server_key == NULL || paas_midtrans_server_key[0] == '\0')
		return;
	if (last_pass != 0 &&
		!TimestampDifferenceExceeds(last_pass, now, paas_billing_reconcile_interval_s * 1000))
		return;
	last_pass = now;

	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			elog(ERROR, "curl_global_init failed");
		curl_ready = true;
	}
	if (cxt == NULL)
		cxt = AllocSetContextCreate(TopMemoryContext, "paas reconcile",
									ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(cxt);

	orders = claim_orders(cxt);
	foreach(lc, orders)
	{
		const char *order_id = (const char *) lfirst(lc);
		MemoryContext old;
		StringInfoData body;
		long		status;
		char	   *outcome;

		CHECK_FOR_INTERRUPTS();
		if (TimestampDifferenceExceeds(now, GetCurrentTimestamp(), RECONCILE_BUDGET_MS))
			break;
		old = MemoryContextSwitchTo(cxt);
		initStringInfo(&body);
		MemoryContextSwitchTo(old);

		pgstat_report_activity(STATE_RUNNING, "paas worker: Midtrans status call");
		status = fetch_status(order_id, &body);
		checked++;
		outcome = apply_status(order_id, status, body.data, cxt);
		if (outcome && (strcmp(outcome, "credited") == 0 ||
						strcmp(outcome, "failed") == 0 || strcmp(outcome, "reversed") == 0))
			applied++;
	}
	if (checked > 0)
		elog(LOG, "paas reconcile: %d pending order(s) checked, %d changed by the status API",
			 checked, applied);
}
