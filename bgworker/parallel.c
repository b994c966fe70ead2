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
 *	  - PostgreSQL counts a PL/pgSQL exception block (a subtransaction) as a
 *		transaction block, even in a statement that is a transaction of its
 *		own.  A function that calls paas.run_parallel from such a block
 *		calls paas.run_parallel_begin() first, at its top level: when that
 *		statement's transaction is its own and has written nothing, the
 *		calls the same statement then makes from exception blocks go to
 *		workers too (whose commits the block's rollback does not undo).
 *	  - when no worker slot is free (max_worker_processes), the command runs
 *		in the caller's own backend instead, after the others have started,
 *		in the caller's transaction.
 *	  - the caller waits for every worker it started, always: when all went
 *		well, when a command it runs itself fails, and when it is cancelled
 *		or terminated.  A cancel or termination of the caller is passed on
 *		to its workers (what has not committed rolls back), and interrupts
 *		are held while it waits.  Should the caller end while running a
 *		command itself (terminated), an exit callback stops and waits for
 *		its workers and logs what they did.
 *	  - it reports what committed.  The result array when every command
 *		succeeded; otherwise an error with the SQLSTATE and message of the
 *		first command that failed (or of the caller's own error), whose
 *		DETAIL lists every command: committed, failed with its message,
 *		stopped before it committed, did not run, or rolled back with the
 *		caller.  A caller that was cancelled or terminated during the call
 *		also sends that list as a WARNING, before the cancel or termination
 *		takes effect, even when everything committed.
 *	  - a worker records "committed" with interrupts held from its commit
 *		on, so a termination cannot fall between the two; a worker that
 *		ends before committing (SIGTERM: die, as in worker_spi) is recorded
 *		as stopped by its exit callback.  Workers run with search_path =
 *		pg_catalog, pg_temp.
 *	  - results longer than PARALLEL_RESULT_MAX bytes are an error.
 *
 * Plumbing: one DSM segment holds a slot per command (command, state,
 * result, error); bgw_main_arg carries the segment handle and bgw_extra the
 * slot number.  Workers are never restarted.  The caller keeps its mapping
 * of the segment and its worker handles for the whole call, independent of
 * transaction cleanup, so that its exit callback can still reach them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "paas.h"

#define PARALLEL_COMMAND_MAX	1024
#define PARALLEL_RESULT_MAX		8192
#define PARALLEL_ERROR_MAX		1024

/* What became of a command (ParallelSlot.state). */
#define SLOT_PENDING	0		/* not started (yet) */
#define SLOT_RUNNING	1		/* a worker, or the caller, runs it */
#define SLOT_COMMITTED	2		/* a worker committed it; result is valid */
#define SLOT_DONE		3		/* the caller ran it in its own transaction */
#define SLOT_FAILED		4		/* it raised; error and sqlstate are valid */
#define SLOT_STOPPED	5		/* its worker ended before committing */

typedef struct ParallelSlot
{
	int			state;
	bool		in_caller;		/* run by the caller (no worker slot free) */
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

/* The caller's side of a call in progress (TopMemoryContext). */
typedef struct ParallelCall
{
	dsm_segment *seg;
	ParallelShared *shared;
	BackgroundWorkerHandle **handles;	/* NULL: the command has no worker */
	int			n;
	bool		interrupted;	/* a cancel or termination came meanwhile */
} ParallelCall;

PGDLLEXPORT void paas_parallel_main(Datum main_arg) pg_attribute_noreturn();

/* the call this backend is making, for its exit callback */
static ParallelCall *current_call = NULL;
static bool exit_callback_set = false;

/* in a worker: its slot, for its exit callback */
static ParallelSlot *worker_slot = NULL;

/*
 * The statement that paas.run_parallel_begin() found in a transaction of its
 * own (its local transaction id and start time): its calls from exception
 * blocks may start workers.
 */
static LocalTransactionId begun_lxid = InvalidLocalTransactionId;
static TimestampTz begun_stmt = 0;

/*
 * Whether a call now may start workers: the transaction is not a transaction
 * block (BEGIN ...), or is a subtransaction of a statement that
 * paas.run_parallel_begin() found in a transaction of its own; and nothing
 * has been written yet.
 */
static bool
workers_allowed(void)
{
	if (GetTopTransactionIdIfAny() != InvalidTransactionId)
		return false;
	if (!IsTransactionBlock())
		return true;
	return IsSubTransaction() && begun_lxid != InvalidLocalTransactionId &&
		begun_lxid == MyProc->lxid && begun_stmt == GetCurrentStatementStartTimestamp();
}

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

/* Worker exit callback: a command still running did not commit. */
static void
parallel_worker_exit(int code, Datum arg)
{
	if (worker_slot != NULL && worker_slot->state == SLOT_RUNNING)
	{
		strlcpy(worker_slot->error, "the worker was stopped before its transaction committed",
				PARALLEL_ERROR_MAX);
		worker_slot->state = SLOT_STOPPED;
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

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
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
	/* nothing a user can create in schema public is ever picked up */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	worker_slot = slot;
	before_shmem_exit(parallel_worker_exit, (Datum) 0);
	slot->state = SLOT_RUNNING;
	pg_write_barrier();

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, slot->command);
		run_command(slot);
		SPI_finish();
		PopActiveSnapshot();
		/* no termination between the commit and its record */
		HOLD_INTERRUPTS();
		CommitTransactionCommand();
		slot->state = SLOT_COMMITTED;
		pg_write_barrier();
		RESUME_INTERRUPTS();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		strlcpy(slot->error, edata->message ? edata->message : "error", PARALLEL_ERROR_MAX);
		slot->sqlstate = edata->sqlerrcode;
		pg_write_barrier();
		slot->state = SLOT_FAILED;
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	worker_slot = NULL;
	dsm_detach(seg);
	proc_exit(0);
}

/* Whether every worker of the call has ended (or never will start). */
static bool
all_stopped(ParallelCall *call)
{
	for (int i = 0; i < call->n; i++)
	{
		pid_t		pid;

		if (call->handles[i] == NULL)
			continue;
		switch (GetBackgroundWorkerPid(call->handles[i], &pid))
		{
			case BGWH_NOT_YET_STARTED:
			case BGWH_STARTED:
				return false;
			default:
				break;
		}
	}
	return true;
}

/* Asks every worker of the call to end (SIGTERM; one not started never starts). */
static void
stop_workers(ParallelCall *call)
{
	for (int i = 0; i < call->n; i++)
		if (call->handles[i] != NULL)
			TerminateBackgroundWorker(call->handles[i]);
}

/*
 * Waits until every worker of the call has ended, with interrupts held.  A
 * cancel or termination of this backend that arrives meanwhile (or was
 * already pending) is passed on to the workers and left pending here.
 */
static void
wait_workers(ParallelCall *call)
{
	bool		stopped = false;

	HOLD_INTERRUPTS();
	for (;;)
	{
		if (!stopped && (QueryCancelPending || ProcDiePending))
		{
			call->interrupted = true;
			stop_workers(call);
			stopped = true;
		}
		if (all_stopped(call))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	RESUME_INTERRUPTS();
	pg_read_barrier();
}

/* One line per command: what became of it.  "failed": the call fails. */
static char *
outcome_report(ParallelCall *call, bool failed)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < call->n; i++)
	{
		ParallelSlot *slot = &call->shared->slots[i];

		appendStringInfo(&buf, "%scommand %d of %d: ", i ? "\n" : "", i + 1, call->n);
		switch (slot->state)
		{
			case SLOT_COMMITTED:
				appendStringInfoString(&buf, "committed");
				break;
			case SLOT_DONE:
				appendStringInfoString(&buf, failed ?
									   "rolled back with the calling transaction" :
									   "done in the calling transaction");
				break;
			case SLOT_FAILED:
				appendStringInfo(&buf, "failed: %s", slot->error);
				break;
			case SLOT_STOPPED:
				appendStringInfoString(&buf, "stopped before it committed");
				break;
			default:
				appendStringInfoString(&buf, "did not run");
				break;
		}
	}
	return buf.data;
}

/* Ends the call's bookkeeping: detaches the segment, frees the handles. */
static void
end_call(ParallelCall *call)
{
	current_call = NULL;
	dsm_detach(call->seg);
	for (int i = 0; i < call->n; i++)
		if (call->handles[i] != NULL)
			pfree(call->handles[i]);
	pfree(call->handles);
	pfree(call);
}

/*
 * Exit callback of a calling backend: when it ends in the middle of a call
 * (terminated while running a command itself), its workers are stopped and
 * waited for, and what they did is logged.
 */
static void
parallel_caller_exit(int code, Datum arg)
{
	ParallelCall *call = current_call;

	if (call == NULL)
		return;
	current_call = NULL;
	stop_workers(call);
	HOLD_INTERRUPTS();
	while (!all_stopped(call))
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	RESUME_INTERRUPTS();
	pg_read_barrier();
	elog(LOG, "paas.run_parallel: its caller ended during the call; its commands:\n%s",
		 outcome_report(call, true));
}

/*
 * The call's outcome, when a cancel or termination came during the call:
 * sent before it takes effect (it does as this returns), so the caller
 * learns what committed.  The call's state must be released first.
 */
static void
warn_if_interrupted(bool interrupted, const char *report)
{
	if (interrupted || QueryCancelPending || ProcDiePending)
		ereport(WARNING,
				(errmsg("paas.run_parallel was %s during the call",
						ProcDiePending ? "terminated" : "cancelled"),
				 errdetail_internal("%s", report)));
}

/*
 * paas.run_parallel_begin() -> boolean: whether this statement's calls of
 * paas.run_parallel will start workers (see the rules above); when they
 * will, its calls from PL/pgSQL exception blocks will as well.  Called at
 * the top level of a function, before its exception block.
 */
PG_FUNCTION_INFO_V1(paas_run_parallel_begin);
Datum
paas_run_parallel_begin(PG_FUNCTION_ARGS)
{
	bool		allowed = workers_allowed();

	if (allowed && !IsSubTransaction())
	{
		begun_lxid = MyProc->lxid;
		begun_stmt = GetCurrentStatementStartTimestamp();
	}
	PG_RETURN_BOOL(allowed);
}

PG_FUNCTION_INFO_V1(paas_run_parallel);
Datum
paas_run_parallel(PG_FUNCTION_ARGS)
{
	ArrayType  *commands = PG_GETARG_ARRAYTYPE_P(0);
	MemoryContext fn_cxt = CurrentMemoryContext;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	Size		size;
	ParallelCall *call;
	ParallelShared *shared;
	Datum	   *out;
	bool	   *out_nulls;
	int			dims[1];
	int			lbs[1] = {1};
	bool		in_process;
	int			failed = -1;
	bool		interrupted;
	char	   *report;

	/*
	 * Inside a transaction block, or after this transaction wrote something,
	 * workers would commit on their own or miss what it wrote: the commands
	 * then run here, one after another, in this transaction.
	 */
	in_process = !workers_allowed();
	deconstruct_array(commands, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a parallel command must not be null")));
		if (VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i])) >= PARALLEL_COMMAND_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("a parallel command must be shorter than %d bytes",
							PARALLEL_COMMAND_MAX)));
	}

	/*
	 * The call's state outlives this transaction's cleanup (its mapping is
	 * pinned, the rest is in TopMemoryContext), for the exit callback.
	 */
	if (!exit_callback_set)
	{
		before_shmem_exit(parallel_caller_exit, (Datum) 0);
		exit_callback_set = true;
	}
	size = offsetof(ParallelShared, slots) + n * sizeof(ParallelSlot);
	call = MemoryContextAllocZero(TopMemoryContext, sizeof(ParallelCall));
	call->handles = MemoryContextAllocZero(TopMemoryContext, n * sizeof(BackgroundWorkerHandle *));
	call->n = n;
	call->seg = dsm_create(size, 0);
	dsm_pin_mapping(call->seg);
	call->shared = shared = dsm_segment_address(call->seg);
	memset(shared, 0, size);
	shared->database = MyDatabaseId;
	shared->role = GetUserId();
	shared->nslots = n;
	for (i = 0; i < n; i++)
		text_to_cstring_buffer((text *) DatumGetPointer(elems[i]), shared->slots[i].command,
							   PARALLEL_COMMAND_MAX);
	current_call = call;

	PG_TRY();
	{
		for (i = 0; i < n && !in_process; i++)
		{
			BackgroundWorker worker;
			MemoryContext old;

			memset(&worker, 0, sizeof(worker));
			worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
			worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
			worker.bgw_restart_time = BGW_NEVER_RESTART;
			snprintf(worker.bgw_library_name, BGW_MAXLEN, "paas");
			snprintf(worker.bgw_function_name, BGW_MAXLEN, "paas_parallel_main");
			snprintf(worker.bgw_name, BGW_MAXLEN, "paas parallel command %d of %d", i + 1, n);
			snprintf(worker.bgw_type, BGW_MAXLEN, "paas parallel command");
			worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(call->seg));
			worker.bgw_notify_pid = MyProcPid;
			memcpy(worker.bgw_extra, &i, sizeof(int));
			old = MemoryContextSwitchTo(TopMemoryContext);
			if (!RegisterDynamicBackgroundWorker(&worker, &call->handles[i]))
				call->handles[i] = NULL;
			MemoryContextSwitchTo(old);
		}

		/* commands no worker took run here, while the workers run theirs */
		for (i = 0; i < n; i++)
		{
			ParallelSlot *slot = &shared->slots[i];

			if (call->handles[i] != NULL)
				continue;
			slot->in_caller = true;
			slot->state = SLOT_RUNNING;
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			run_command(slot);
			SPI_finish();
			slot->state = SLOT_DONE;
		}

		wait_workers(call);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/*
		 * A command run here failed (or this backend was cancelled while
		 * running one): the workers are waited for before the error goes on,
		 * stopped first when it is a cancel.  The error goes on as it came,
		 * with what became of every command added to its DETAIL.
		 */
		MemoryContextSwitchTo(fn_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		for (int j = 0; j < n; j++)
		{
			ParallelSlot *slot = &shared->slots[j];

			if (slot->in_caller && slot->state == SLOT_RUNNING)
			{
				strlcpy(slot->error, edata->message ? edata->message : "error", PARALLEL_ERROR_MAX);
				slot->state = SLOT_FAILED;
			}
		}
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		{
			call->interrupted = true;
			stop_workers(call);
		}
		wait_workers(call);
		report = outcome_report(call, true);
		edata->detail = edata->detail ? psprintf("%s\n%s", edata->detail, report) : report;
		interrupted = call->interrupted;
		end_call(call);
		warn_if_interrupted(interrupted, report);
		ReThrowError(edata);
	}
	PG_END_TRY();

	for (i = 0; i < n && failed < 0; i++)
		if (shared->slots[i].state != SLOT_COMMITTED && shared->slots[i].state != SLOT_DONE)
			failed = i;
	report = outcome_report(call, failed >= 0);
	interrupted = call->interrupted;
	if (failed >= 0)
	{
		ParallelSlot *slot = &shared->slots[failed];
		int			sqlstate = slot->state == SLOT_FAILED ? slot->sqlstate :
			interrupted ? ERRCODE_QUERY_CANCELED : ERRCODE_INTERNAL_ERROR;
		char	   *message = pstrdup(slot->state == SLOT_FAILED ? slot->error :
									  interrupted ? "parallel command stopped: its caller was interrupted" :
									  "parallel command ended without a result");
		char	   *command = pstrdup(slot->command);

		end_call(call);
		warn_if_interrupted(interrupted, report);
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg_internal("%s", message),
				 errdetail_internal("%s", report),
				 errcontext("parallel command %d of %d: %s", failed + 1, n, command)));
	}

	out = palloc(n * sizeof(Datum));
	out_nulls = palloc(n * sizeof(bool));
	for (i = 0; i < n; i++)
	{
		ParallelSlot *slot = &shared->slots[i];

		out_nulls[i] = slot->result_null;
		out[i] = slot->result_null ? (Datum) 0 : CStringGetTextDatum(slot->result);
	}
	end_call(call);
	warn_if_interrupted(interrupted, report);
	dims[0] = n;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(out, out_nulls, 1, dims, lbs, TEXTOID,
											 -1, false, TYPALIGN_INT));
}
