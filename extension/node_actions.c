/*-------------------------------------------------------------------------
 *
 * node_actions.c
 *	  Cordon and uncordon of a Node in the Kubernetes API, from the backend
 *	  of the administrator's call (sql/parts/32_node_actions.sql).
 *
 * Why in the backend and not through a worker: a cordon is one PATCH of
 * spec.unschedulable, bounded by paas.k8s_timeout (at most CALL_MAX_MS) and
 * cancellable, and the caller needs its answer (a refusal is the 502 of the
 * route, and nothing is recorded).  SQL calls it before it locks the node's
 * row, so no heartbeat or sync write waits for the API.  A PATCH that
 * succeeded under a transaction that then rolls back is repaired by the node
 * sync, which writes spec.unschedulable over the row at the Node's next
 * event: the API stays the source of truth.  Drains, which take minutes,
 * run in a background worker (bgworker/nodedrain.c).
 *
 * Rules a reader must know:
 *	  - the connection is k8s_client.c's (URL, token re-read, CA);
 *	  - the CURL handle and header list are freed in PG_FINALLY;
 *	  - a query cancel or termination aborts the transfer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "instances.h"
#include "k8s_client.h"
#include "paas.h"

#define CALL_MAX_MS 10000

static int	drain_timeout_s = 600;

void
paas_node_actions_init(void)
{
	DefineCustomIntVariable("paas.node_drain_timeout",
							"How long a drain may take when the request names no timeout (MAINTENANCE too).",
							"Past it the drain ends incomplete and lists the pods left on the node.",
							&drain_timeout_s,
							600,
							1,
							86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

static K8sClient client = {.agent = "paas-node-actions/" PAAS_VERSION};
static bool curl_ready;

/*
 * paas.k8s_node_unschedulable(node text, unschedulable boolean)
 *	 -> (configured boolean, status integer, body text, error text)
 *
 * PATCHes spec.unschedulable of Node "node" as kubectl cordon / uncordon
 * does (a strategic merge patch; uncordon removes the field).  configured is
 * false (and nothing is sent) when no API is configured; status 0 means no
 * answer, error says why.
 */
PG_FUNCTION_INFO_V1(paas_k8s_node_unschedulable);
Datum
paas_k8s_node_unschedulable(PG_FUNCTION_ARGS)
{
	char	   *node = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		cordon = PG_GETARG_BOOL(1);
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	volatile CURL *h = NULL;
	StringInfoData out;
	char		errbuf[CURL_ERROR_SIZE];
	long		code = 0;
	char	   *path;
	char	   *esc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (!k8s_resolve(&client))
	{
		values[0] = BoolGetDatum(false);
		nulls[1] = nulls[2] = nulls[3] = true;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			elog(ERROR, "curl_global_init failed");
		curl_ready = true;
	}
	k8s_refresh(&client, false);
	initStringInfo(&out);
	errbuf[0] = '\0';
	PG_TRY();
	{
		if ((h = curl_easy_init()) == NULL)
			elog(ERROR, "curl_easy_init failed");
		esc = curl_easy_escape((CURL *) h, node, 0);
		path = psprintf("/api/v1/nodes/%s", esc);
		curl_free(esc);
		code = k8s_send(&client, (CURL *) h, "PATCH", path,
						"application/strategic-merge-patch+json",
						cordon ? "{\"spec\":{\"unschedulable\":true}}"
						: "{\"spec\":{\"unschedulable\":null}}",
						&out, errbuf, Min(Max(paas_k8s_timeout_ms, 1000), CALL_MAX_MS));
	}
	PG_FINALLY();
	{
		if (h != NULL)
			curl_easy_cleanup((CURL *) h);
	}
	PG_END_TRY();
	CHECK_FOR_INTERRUPTS();
	values[0] = BoolGetDatum(true);
	values[1] = Int32GetDatum((int32) code);
	values[2] = CStringGetTextDatum(out.data);
	if (errbuf[0] != '\0')
		values[3] = CStringGetTextDatum(errbuf);
	else
		nulls[3] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
