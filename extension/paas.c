/*-------------------------------------------------------------------------
 *
 * paas.c
 *	  Module entry point of the paas extension: GUCs, shared memory and the
 *	  registration of the background worker, plus the SQL-callable functions
 *	  that describe the running module (api.status() builds on them).
 *
 * The worker is registered only when paas is listed in
 * shared_preload_libraries; loading the module in a plain backend (CREATE
 * EXTENSION, a function call) defines the GUCs and nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "instances.h"
#include "k8s_client.h"
#include "paas.h"
#include "notify.h"

PG_MODULE_MAGIC;

char	   *paas_database = NULL;
int			paas_tick_interval_ms = 1000;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

int			paas_renewal_workers = 2;

static void
paas_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	paas_worker_shmem_request();
}

static void
paas_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	paas_worker_shmem_startup();
}

void
_PG_init(void)
{
	DefineCustomStringVariable("paas.database",
							   "Database the paas background worker connects to.",
							   NULL,
							   &paas_database,
							   "paas",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("paas.tick_interval",
							"Time between two passes of the paas background worker.",
							"Each pass runs the jobs of paas.job that are due.",
							&paas_tick_interval_ms,
							1000,
							10,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("paas.renewal_workers",
							"Background workers a renewal run spreads its shards over.",
							"One per core is the most that helps; 1 runs renewals in the calling backend.",
							&paas_renewal_workers,
							2,
							1,
							16,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	paas_accounts_init();
	paas_nodes_init();
	paas_node_actions_init();
	paas_billing_init();
	paas_logging_init();
	paas_mailer_init();			/* bgworker/mailer.c: GUCs, the mailer worker */
	paas_instances_init();

	MarkGUCPrefixReserved("paas");

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = paas_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = paas_shmem_startup;

	paas_worker_register();
	paas_provisioner_register();
	paas_nodesync_register();
	paas_nodedrain_register();	/* bgworker/nodedrain.c */
}

/*
 * paas.version() -> text: the version of the loaded module, which may differ
 * from the installed SQL version during an upgrade.
 */
PG_FUNCTION_INFO_V1(paas_version);
Datum
paas_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(PAAS_VERSION));
}

/*
 * paas.worker_state() -> record (running, pid, started_at, last_tick, ticks,
 * job_failures): the background worker's own view of itself.  When the
 * module was not preloaded there is no shared state and "running" is false.
 */
PG_FUNCTION_INFO_V1(paas_worker_state);
Datum
paas_worker_state(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {false};
	PaasWorkerShared snap;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	memset(&snap, 0, sizeof(snap));
	if (paas_worker_shared != NULL)
	{
		SpinLockAcquire(&paas_worker_shared->mutex);
		snap.pid = paas_worker_shared->pid;
		snap.started_at = paas_worker_shared->started_at;
		snap.last_tick = paas_worker_shared->last_tick;
		snap.ticks = paas_worker_shared->ticks;
		snap.job_failures = paas_worker_shared->job_failures;
		SpinLockRelease(&paas_worker_shared->mutex);
	}

	values[0] = BoolGetDatum(snap.pid != 0);
	if (snap.pid != 0)
		values[1] = Int32GetDatum(snap.pid);
	else
		nulls[1] = true;
	if (snap.started_at != 0)
		values[2] = TimestampTzGetDatum(snap.started_at);
	else
		nulls[2] = true;
	if (snap.last_tick != 0)
		values[3] = TimestampTzGetDatum(snap.last_tick);
	else
		nulls[3] = true;
	values[4] = Int64GetDatum((int64) snap.ticks);
	values[5] = Int64GetDatum((int64) snap.job_failures);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
