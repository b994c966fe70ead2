/*-------------------------------------------------------------------------
 *
 * logging.c
 *	  What the paas extension lets into the server log.
 *
 * A refusal of the application (an error of an application class with a
 * 4xx HTTP status, P<letter>4xx: PT402 "Insufficient balance", PU404 "User
 * not found", PW409, a PT400 field error ...) is an answer to the caller,
 * not a fault of the server: it reaches the client as usual, but is kept out
 * of the server log, with its STATEMENT line, so that the log shows the
 * faults an operator must look at.  Every other error (PT5xx, and any
 * SQLSTATE of PostgreSQL itself, PL/pgSQL's class P0 included) is logged as
 * before.  paas.log_refusals = on logs refusals too, for a while of
 * debugging.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/elog.h"
#include "utils/guc.h"

#include "paas.h"

static bool paas_log_refusals = false;
static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * Whether an error is an application refusal: SQLSTATE P<letter>4xx, the
 * application classes of paas.h (PT, PU, PE, PS, PW; PostgreSQL's own
 * class P0 has a digit there).
 */
static inline bool
is_refusal(int sqlerrcode)
{
	char		subject = PGUNSIXBIT(sqlerrcode >> 6);

	return PGUNSIXBIT(sqlerrcode) == 'P' &&
		subject >= 'A' && subject <= 'Z' &&
		PGUNSIXBIT(sqlerrcode >> 12) == '4';
}

static void
paas_emit_log(ErrorData *edata)
{
	if (edata->elevel == ERROR && !paas_log_refusals && is_refusal(edata->sqlerrcode))
		edata->output_to_server = false;
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
paas_logging_init(void)
{
	DefineCustomBoolVariable("paas.log_refusals",
							 "Writes application refusals (SQLSTATE P<letter>4xx) to the server log.",
							 "Off: a refusal reaches its caller but not the server log.",
							 &paas_log_refusals,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = paas_emit_log;
}
