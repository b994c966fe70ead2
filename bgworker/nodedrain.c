/*-------------------------------------------------------------------------
 *
 * nodedrain.c
 *	  The node drain: a background worker of its own ("paas node drain")
 *	  that evicts the pods of the nodes being drained through the Eviction
 *	  API (policy/v1), as kubectl drain --ignore-daemonsets does.
 *
 * A drain is a row of paas.node_drains (sql/parts/32_node_actions.sql),
 * written by the administrator's request (POST /workers/:nodeId/drain, or
 * MAINTENANCE) after the node was cordoned.  Each pass over a due drain:
 *	  1. paas.node_drain_claim() (a short transaction) leases it and gives
 *		 the path listing the node's pods;
 *	  2. with no transaction open, GET of that list;
 *	  3. paas.node_drain_plan() (a short transaction) keeps what is left to
 *		 evict (DaemonSet and mirror pods skipped), ends the drain complete
 *		 when nothing is, incomplete past its deadline, and returns the
 *		 evictions to send;
 *	  4. with no transaction open, POST .../pods/NAME/eviction for each;
 *	  5. paas.node_drain_record() (a short transaction) records the
 *		 answers (429: a PodDisruptionBudget forbids it now) and schedules
 *		 the next pass.
 *
 * Rules a reader must know:
 *	  - the outside calls happen with no transaction open; an eviction is
 *		idempotent (a pod evicted twice is a 404, counted as gone);
 *	  - a worker killed mid-pass loses nothing: the lease runs out and the
 *		next pass lists the pods again;
 *	  - no API configured: it idles;
 *	  - connection rules: bgworker/k8s_client.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "bgw.h"
#include "instances.h"
#include "k8s_client.h"
#include "paas.h"

PGDLLEXPORT void paas_nodedrain_main(Datum main_arg) pg_attribute_noreturn();

#define POLL_MS 1000			/* due drains are looked for every second */
#define IDLE_MS 5000			/* no API, or no extension yet */
#define MAX_EVICTIONS 500		/* a pass; the rest come with the next */

static K8sClient client = {.agent = "paas-nodedrain/" PAAS_VERSION};
static CURL *h;
static MemoryContext pass_cxt;	/* reset every pass; current between transactions */

void
paas_nodedrain_register(void)
{
	paas_bgw_register("paas_nodedrain_main", "paas node drain", 2);
}


/* the text of column "col" of row "row", copied into the pass's context */
static char *
value_at(uint64 row, int col)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(pass_cxt, v) : NULL;
}

static bool
extension_ready(void)
{
	bool		ok;

	paas_bgw_begin_tx("paas node drain: looking for the extension");
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'paas' "
					"AND pg_catalog.to_regprocedure('paas.node_drain_claim()') IS NOT NULL",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking for the extension failed");
	ok = SPI_processed > 0;
	paas_bgw_end_tx();
	return ok;
}

/*
 * One pass over one due drain; false when none was due.  Everything it
 * allocates is in pass_cxt.
 */
static bool
drain_pass(void)
{
	char	   *id;
	char	   *list_path;
	Datum		idd;
	StringInfoData out;
	char		errbuf[CURL_ERROR_SIZE];
	long		code;
	int			n = 0;
	char	  **paths;
	char	  **bodies;
	Datum	   *dpaths;
	Datum	   *dstatuses;
	Datum	   *dbodies;

	/* 1. the lease */
	paas_bgw_begin_tx("paas node drain: claiming");
	if (SPI_execute("SELECT id::text, list_path FROM paas.node_drain_claim() WHERE id IS NOT NULL",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "paas.node_drain_claim() failed");
	if (SPI_processed == 0)
	{
		paas_bgw_end_tx();
		return false;
	}
	id = value_at(0, 1);
	list_path = value_at(0, 2);
	paas_bgw_end_tx();
	idd = DirectFunctionCall1(uuid_in, CStringGetDatum(id));

	/* 2. the pods of the node */
	k8s_refresh(&client, false);
	initStringInfo(&out);
	code = k8s_get(&client, h, list_path, &out, errbuf);

	/* 3. the plan */
	{
		Oid			types[4] = {UUIDOID, TEXTOID, INT4OID, TEXTOID};
		Datum		values[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};

		values[0] = idd;
		values[1] = CStringGetTextDatum(out.data);
		values[2] = Int32GetDatum((int32) code);
		if (errbuf[0] != '\0')
			values[3] = CStringGetTextDatum(errbuf);
		else
			nulls[3] = 'n';
		paas_bgw_begin_tx("paas node drain: planning");
		if (SPI_execute_with_args("SELECT path, body FROM paas.node_drain_plan($1, $2, $3, $4)",
								  4, types, values, nulls, false, MAX_EVICTIONS) != SPI_OK_SELECT)
			elog(ERROR, "paas.node_drain_plan() failed");
		n = (int) SPI_processed;
		paths = MemoryContextAllocZero(pass_cxt, sizeof(char *) * (n + 1));
		bodies = MemoryContextAllocZero(pass_cxt, sizeof(char *) * (n + 1));
		for (int i = 0; i < n; i++)
		{
			paths[i] = value_at(i, 1);
			bodies[i] = value_at(i, 2);
		}
		paas_bgw_end_tx();
	}
	if (n == 0)
		return true;			/* ended, cancelled, or only pods already going */

	/* 4. the evictions */
	dpaths = palloc(sizeof(Datum) * n);
	dstatuses = palloc(sizeof(Datum) * n);
	dbodies = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		code = k8s_send(&client, h, "POST", paths[i], "application/json", bodies[i],
						&out, errbuf, (long) paas_k8s_timeout_ms);
		CHECK_FOR_INTERRUPTS();
		if (code == 0)
			elog(LOG, "paas node drain: POST %s: %s", paths[i], errbuf);
		dpaths[i] = CStringGetTextDatum(paths[i]);
		dstatuses[i] = Int32GetDatum((int32) code);
		dbodies[i] = CStringGetTextDatum(code == 0 ? errbuf : out.data);
	}

	/* 5. the record */
	{
		Oid			types[4] = {UUIDOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID};
		Datum		values[4];

		values[0] = idd;
		values[1] = PointerGetDatum(construct_array(dpaths, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_array(dstatuses, n, INT4OID, 4, true, TYPALIGN_INT));
		values[3] = PointerGetDatum(construct_array(dbodies, n, TEXTOID, -1, false, TYPALIGN_INT));
		paas_bgw_begin_tx("paas node drain: recording");
		if (SPI_execute_with_args("SELECT paas.node_drain_record($1, $2, $3, $4)",
								  4, types, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "paas.node_drain_record() failed");
		paas_bgw_end_tx();
	}
	return true;
}

static void
release_curl(int code, Datum arg)
{
	if (h)
		curl_easy_cleanup(h);
	curl_slist_free_all(client.hdr_json);
}

void
paas_nodedrain_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(paas_database, NULL, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "curl_global_init failed");
	if ((h = curl_easy_init()) == NULL)
		elog(ERROR, "curl_easy_init failed");
	before_shmem_exit(release_curl, (Datum) 0);
	elog(LOG, "paas node drain started in database \"%s\"", paas_database);

	pass_cxt = AllocSetContextCreate(TopMemoryContext, "paas node drain pass", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		bool		busy;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			k8s_refresh(&client, true);
		}
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(pass_cxt);
		MemoryContextSwitchTo(pass_cxt);
		if (!extension_ready() || !k8s_resolve(&client))
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, IDLE_MS,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		busy = drain_pass();
		if (!busy)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, POLL_MS,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
