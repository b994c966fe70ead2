/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The paas background worker: a scheduler of the periodic jobs listed in
 *	  the table paas.job (the table is the API, the worker its consumer, as in
 *	  pg_cron).
 *
 * Structure follows src/test/modules/worker_spi: standard signal handlers,
 * WaitLatch with WL_EXIT_ON_PM_DEATH, configuration reload on SIGHUP, and one
 * transaction per unit of work.  Each pass
 *	  1. reads the names of the due jobs (one short transaction), then
 *	  2. runs each job through paas.run_job(name) in a transaction of its own.
 * paas.run_job() locks the job row with SKIP LOCKED, runs the job's function
 * inside an exception block and records the outcome in paas.job_run, so a
 * failing job never stops the others and two runners never run one job twice.
 * An error escaping paas.run_job() ends the process; the postmaster restarts
 * it after bgw_restart_time.
 *
 * Before anything else, at start and on each pass, it rebuilds the ledger's
 * cached balances when a restore left them unbuilt
 * (paas.ledger_restore_needed(), sql/parts/90_dump.sql): until then
 * paas.ledger_post refuses to post (PT503), so no DBA has to remember it.
 *
 * Its SQL runs as superuser with search_path = pg_catalog, pg_temp (set at
 * connection time for the whole process, as autovacuum does): nothing a
 * user can create in schema public is ever picked up.
 *
 * The worker does nothing until the extension is installed in
 * paas.database; when that database does not exist yet it exits and is
 * restarted later.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "bgw.h"
#include "paas.h"

PGDLLEXPORT void paas_worker_main(Datum main_arg) pg_attribute_noreturn();

PaasWorkerShared *paas_worker_shared = NULL;

void
paas_worker_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(PaasWorkerShared)));
}

void
paas_worker_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	paas_worker_shared = ShmemInitStruct("paas worker",
										 sizeof(PaasWorkerShared), &found);
	if (!found)
	{
		memset(paas_worker_shared, 0, sizeof(PaasWorkerShared));
		SpinLockInit(&paas_worker_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
paas_worker_register(void)
{
	paas_bgw_register("paas_worker_main", "paas worker", 5);
}

static void
publish_state(bool tick, uint64 failures)
{
	if (paas_worker_shared == NULL)
		return;
	SpinLockAcquire(&paas_worker_shared->mutex);
	if (tick)
	{
		paas_worker_shared->last_tick = GetCurrentTimestamp();
		paas_worker_shared->ticks++;
		paas_worker_shared->job_failures += failures;
	}
	else
	{
		paas_worker_shared->pid = MyProcPid;
		paas_worker_shared->started_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&paas_worker_shared->mutex);
}

static void
clear_state(int code, Datum arg)
{
	if (paas_worker_shared == NULL)
		return;
	SpinLockAcquire(&paas_worker_shared->mutex);
	paas_worker_shared->pid = 0;
	SpinLockRelease(&paas_worker_shared->mutex);
}

static void
begin_unit(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_unit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Names of the jobs due now, allocated in "cxt".  An empty list while the
 * extension is not installed in this database.
 */
static List *
due_jobs(MemoryContext cxt)
{
	List	   *names = NIL;
	int			ret;

	begin_unit("paas worker: reading due jobs");

	ret = SPI_execute("SELECT 1 FROM pg_catalog.pg_extension "
					  "WHERE extname = 'paas'", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading pg_extension failed: %d", ret);

	if (SPI_processed > 0)
	{
		ret = SPI_execute("SELECT name FROM paas.job "
						  "WHERE runner = 'worker' AND enabled AND next_run_at <= now() "
						  "ORDER BY next_run_at, name", true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading paas.job failed: %d", ret);

		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i],
											SPI_tuptable->tupdesc, 1);
			MemoryContext old = MemoryContextSwitchTo(cxt);

			names = lappend(names, pstrdup(name));
			MemoryContextSwitchTo(old);
		}
	}

	end_unit();
	return names;
}

/*
 * Rebuilds the ledger's cached balances, in a transaction of its own, when a
 * restore left them unbuilt.  Nothing while the extension (or a version
 * with the rebuild) is not installed.
 */
static void
rebuild_ledger_if_needed(void)
{
	int			ret;

	begin_unit("paas worker: checking the ledger's balances");
	ret = SPI_execute("SELECT pg_catalog.to_regprocedure('paas.ledger_restore_needed()') IS NOT NULL "
					  "AND EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'paas')",
					  true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "looking up paas.ledger_restore_needed failed: %d", ret);
	if (SPI_processed == 1)
	{
		bool		isnull;
		bool		present = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));

		if (present)
		{
			ret = SPI_execute("SELECT paas.ledger_restore_balances() WHERE paas.ledger_restore_needed()",
							  false, 1);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "paas.ledger_restore_balances failed: %d", ret);
			if (SPI_processed == 1)
				elog(LOG, "paas worker: rebuilt the cached balances of %s ledger account(s) "
					 "from their postings (restored database)",
					 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		}
	}
	end_unit();
}

/* Runs one job in its own transaction; true when it succeeded. */
static bool
run_job(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	bool		ok = true;
	int			ret;
	char		activity[128];

	snprintf(activity, sizeof(activity), "paas worker: job %s", name);
	begin_unit(activity);

	args[0] = CStringGetTextDatum(name);
	ret = SPI_execute_with_args("SELECT paas.run_job($1)", 1, argtypes, args,
								NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "paas.run_job(%s) failed: %d", name, ret);
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		/* NULL means another runner holds the job: not a failure */
		ok = isnull || DatumGetBool(d);
	}

	end_unit();
	return ok;
}

void
paas_worker_main(Datum main_arg)
{
	MemoryContext pass_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(paas_database, NULL, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	before_shmem_exit(clear_state, (Datum) 0);
	publish_state(false, 0);
	elog(LOG, "paas worker started in database \"%s\"", paas_database);

	pass_cxt = AllocSetContextCreate(TopMemoryContext, "paas worker pass",
									 ALLOCSET_DEFAULT_SIZES);
	rebuild_ledger_if_needed();

	for (;;)
	{
		List	   *jobs;
		ListCell   *lc;
		uint64		failures = 0;

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 paas_tick_interval_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(pass_cxt);
		rebuild_ledger_if_needed();
		jobs = due_jobs(pass_cxt);
		foreach(lc, jobs)
		{
			CHECK_FOR_INTERRUPTS();
			if (!run_job((const char *) lfirst(lc)))
				failures++;
		}
		paas_reconcile_pass();
		publish_state(true, failures);
	}
}
