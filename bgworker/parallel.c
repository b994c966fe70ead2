/*-------------------------------------------------------------------------
 *
 * parallel.c
 *	  paas.run_parallel(commands text[]) -> text[]: runs each SQL command in
 *	  a dynamic background worker of its own, at the same time, and returns
 *	  the first column of each command's first row, in order.
 *
 * The renewal run uses it to spread its shards over the machine's cores
 * (paas.renewal_workers): one backend does one core's work.
 *
 * Rules a reader must know:
 *	  - every command runs in a transaction of its own, as the calling role,
 *		in the calling database, and commits independently of the caller.
 *		So that a caller's transaction keeps its meaning, a call made inside
 *		a transaction block (BEGIN ...), or after the transaction wrote
 *		anything, runs the commands in the caller's backend instead, one
 *		after another, in the caller's transaction.  pg_cron runs a job's
 *		command as a transaction of its own: its calls go to workers.
 *	  - the caller waits for all of them.  A command that fails makes the
 *		call fail with its SQLSTATE and message, after every worker has
 *		ended; the commands that succeeded stay committed.
 *	  - when no worker slot is free (max_worker_processes), the command runs
 *		in the caller's own backend instead, after the others have started.
 *	  - results longer than PARALLEL_RESULT_MAX bytes are an error.
 *
 * Plumbing: one DSM segment holds a slot per command (command, result,
 * error); bgw_main_arg carries the segment handle and bgw_extra the slot
 * number.  Workers are never restarted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "paas.h"

#define PARALLEL_COMMAND_MAX	1024
#define PARALLEL_RESULT_MAX		8192
#define PARALLEL_ERROR_MAX		1024

typedef struct ParallelSlot
{
	bool		done;			/* the command committed; result is valid */
	bool		failed;			/* the command raised; error is valid */
	bool		result_null;
	int			sqlstate;
	char		command[PARALLEL_COMMAND_MAX];
	char		result[PARALLEL_RESULT_MAX];
	char		error[PARALLEL_ERROR_MAX];
} ParallelSlot;

typedef struct ParallelShared
{
	Oid			database;
	Oid			role;
	int			nslots;
	ParallelSlot slots[FLEXIBLE_ARRAY_MEMBER];
} ParallelShared;

PGDLLEXPORT void paas_parallel_main(Datum main_arg) pg_attribute_noreturn();

/*
 * Runs slot->command through SPI in the current transaction and stores the
 * first column of its first row.  Raises on any error.
 */
static void
run_command(ParallelSlot *slot)
{
	int			rc = SPI_execute(slot->command, false, 1);

	if (rc < 0)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
	slot->result_null = true;
	if (SPI_processed > 0 && SPI_tuptable != NULL && SPI_tuptable->tupdesc->natts > 0)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL)
		{
			if (strlen(v) >= PARALLEL_RESULT_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("result of a parallel command exceeds %d bytes",
								PARALLEL_RESULT_MAX)));
			strlcpy(slot->result, v, PARALLEL_RESULT_MAX);
			slot->result_null = false;
		}
	}
}

void
paas_parallel_main(Datum main_arg)
{
	dsm_segment *seg;
	ParallelShared *shared;
	ParallelSlot *slot;
	int			n;
	MemoryContext cxt = CurrentMemoryContext;

	BackgroundWorkerUnblockSignals();
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "paas parallel command");
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("paas parallel command: could not attach to its shared memory")));
	shared = dsm_segment_address(seg);
	memcpy(&n, MyBgworkerEntry->bgw_extra, sizeof(int));
	if (n < 0 || n >= shared->nslots)
		elog(ERROR, "paas parallel command: bad slot %d", n);
	slot = &shared->slots[n];

	BackgroundWorkerInitializeConnectionByOid(shared->database, shared->role, 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, slot->command);
		run_command(slot);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		slot->done = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		strlcpy(slot->error, edata->message ? edata->message : "error", PARALLEL_ERROR_MAX);
		slot->sqlstate = edata->sqlerrcode;
		slot->failed = true;
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}

PG_FUNCTION_INFO_V1(paas_run_parallel);
Datum
paas_run_parallel(PG_FUNCTION_ARGS)
{
	ArrayType  *commands = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	dsm_segment *seg;
	ParallelShared *shared;
	BackgroundWorkerHandle **handles;
	Datum	   *out;
	bool	   *out_nulls;
	int			dims[1];
	int			lbs[1] = {1};
	bool		in_process;

	/*
	 * Inside a transaction block, or after this transaction wrote something,
	 * workers would commit on their own or miss what it wrote: the commands
	 * then run here, one after another, in this transaction.
	 */
	in_process = IsTransactionBlock() || GetTopTransactionIdIfAny() != InvalidTransactionId;
	deconstruct_array(commands, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));

	seg = dsm_create(offsetof(ParallelShared, slots) + n * sizeof(ParallelSlot), 0);
	shared = dsm_segment_address(seg);
	memset(shared, 0, offsetof(ParallelShared, slots) + n * sizeof(ParallelSlot));
	shared->database = MyDatabaseId;
	shared->role = GetUserId();
	shared->nslots = n;
	for (i = 0; i < n; i++)
	{
		char	   *c;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a parallel command must not be null")));
		c = TextDatumGetCString(elems[i]);
		if (strlen(c) >= PARALLEL_COMMAND_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("a parallel command must be shorter than %d bytes",
							PARALLEL_COMMAND_MAX)));
		strlcpy(shared->slots[i].command, c, PARALLEL_COMMAND_MAX);
	}

	handles = palloc0(n * sizeof(BackgroundWorkerHandle *));
	for (i = 0; i < n && !in_process; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "paas");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "paas_parallel_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "paas parallel command %d of %d", i + 1, n);
		snprintf(worker.bgw_type, BGW_MAXLEN, "paas parallel command");
		worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
		worker.bgw_notify_pid = MyProcPid;
		memcpy(worker.bgw_extra, &i, sizeof(int));
		if (!RegisterDynamicBackgroundWorker(&worker, &handles[i]))
			handles[i] = NULL;
	}

	/* commands no worker took run here, while the workers run theirs */
	for (i = 0; i < n; i++)
	{
		ParallelSlot *slot = &shared->slots[i];

		if (handles[i] != NULL)
			continue;
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		run_command(slot);
		SPI_finish();
		slot->done = true;
	}

	for (i = 0; i < n; i++)
	{
		if (handles[i] != NULL)
			(void) WaitForBackgroundWorkerShutdown(handles[i]);
	}

	out = palloc(n * sizeof(Datum));
	out_nulls = palloc(n * sizeof(bool));
	for (i = 0; i < n; i++)
	{
		ParallelSlot *slot = &shared->slots[i];

		if (slot->failed)
			ereport(ERROR,
					(errcode(slot->sqlstate),
					 errmsg("%s", slot->error),
					 errcontext("parallel command %d of %d: %s", i + 1, n, slot->command)));
		if (!slot->done)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("parallel command %d of %d ended without a result", i + 1, n),
					 errdetail("The worker process exited early; the server log has the reason.")));
		out_nulls[i] = slot->result_null;
		out[i] = slot->result_null ? (Datum) 0 : CStringGetTextDatum(slot->result);
	}
	dsm_detach(seg);
	dims[0] = n;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(out, out_nulls, 1, dims, lbs, TEXTOID,
											 -1, false, TYPALIGN_INT));
}
