/*-------------------------------------------------------------------------
 *
 * nodes.c
 *	  The worker-node status machine and the node-health GUCs.
 *
 * THE table below is the whole machine: a (status, event) pair that is not
 * in it is an illegal transition and raises PT409 (HTTP 409).  SQL applies
 * every status change through paas.node_transition(status, event); nothing
 * else writes paas.nodes.status (creation by an administrator aside, which
 * is not a transition).
 *
 * Rules a reader must know:
 *	  - MAINTENANCE is left only by an administrator: registration and
 *		heartbeats leave it unchanged (they are still accepted).
 *	  - A heartbeat (or a registration) brings NOT_READY and INACTIVE nodes
 *		back: INACTIVE means "was offline", not "disabled" -- keep a node out
 *		with MAINTENANCE or delete it (which revokes its token).
 *	  - The health monitor's events: heartbeat_timeout (ACTIVE -> NOT_READY
 *		after paas.node_grace_period of silence) and offline_timeout
 *		(ACTIVE/NOT_READY -> INACTIVE after paas.node_offline_after).
 *	  - cordon / uncordon change only the schedulable flag; uncordon is
 *		refused while the node is INACTIVE or in MAINTENANCE (a node that is
 *		offline or being serviced must not be offered for scheduling; the
 *		cordon is kept for when it comes back).
 *	  - An administrator may set any status from any status, as in the
 *		original (and repeat one: an idempotent PATCH).  None of these moves
 *		makes a node schedulable that is not ready; what a move does not
 *		hold is documented instead of refused: a live node set PENDING,
 *		NOT_READY or INACTIVE comes back ACTIVE with its next ready
 *		heartbeat (keep a node out with MAINTENANCE), a silent node set
 *		ACTIVE or NOT_READY is taken down again by the monitor's next pass,
 *		and the monitor never watches PENDING (docs/api.md has the table).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "fsm.h"
#include "paas.h"

int			paas_node_history_retention_s = 90 * 24 * 3600;
int			paas_node_grace_period_s = 90;
int			paas_node_offline_after_s = 300;

typedef enum NodeState
{
	NS_PENDING,
	NS_ACTIVE,
	NS_NOT_READY,
	NS_INACTIVE,
	NS_MAINTENANCE,
	NS_COUNT
} NodeState;

static const char *const node_state_names[NS_COUNT] = {
	"PENDING", "ACTIVE", "NOT_READY", "INACTIVE", "MAINTENANCE"
};

typedef enum NodeEvent
{
	NE_REGISTER,				/* the node registers and reports ready */
	NE_REGISTER_NOT_READY,		/* the node registers, not ready */
	NE_HEARTBEAT_READY,
	NE_HEARTBEAT_NOT_READY,
	NE_HEARTBEAT_TIMEOUT,		/* monitor: silent for the grace period */
	NE_OFFLINE_TIMEOUT,			/* monitor: silent for offline_after */
	NE_ADMIN_ACTIVATE,
	NE_ADMIN_DEACTIVATE,
	NE_ADMIN_MAINTENANCE,
	NE_ADMIN_PENDING,
	NE_ADMIN_NOT_READY,
	NE_CORDON,					/* schedulable := false */
	NE_UNCORDON,				/* schedulable := true */
	NE_COUNT
} NodeEvent;

static const char *const node_event_names[NE_COUNT] = {
	"register", "register_not_ready", "heartbeat_ready", "heartbeat_not_ready",
	"heartbeat_timeout", "offline_timeout", "admin_activate",
	"admin_deactivate", "admin_maintenance", "admin_pending",
	"admin_not_ready", "cordon", "uncordon"
};

#define P	NS_PENDING
#define A	NS_ACTIVE
#define N	NS_NOT_READY
#define I	NS_INACTIVE
#define M	NS_MAINTENANCE
#define X	(-1)				/* illegal */

/*
 * next_state[event][state]: columns PENDING ACTIVE NOT_READY INACTIVE
 * MAINTENANCE.
 */
static const int node_next[NE_COUNT][NS_COUNT] = {
	/*							  P	  A	  N	  I	  M */
	[NE_REGISTER] =				{A, A, A, A, M},
	[NE_REGISTER_NOT_READY] =	{N, N, N, N, M},
	[NE_HEARTBEAT_READY] =		{A, A, A, A, M},
	[NE_HEARTBEAT_NOT_READY] =	{N, N, N, N, M},
	[NE_HEARTBEAT_TIMEOUT] =	{X, N, X, X, X},
	[NE_OFFLINE_TIMEOUT] =		{X, I, I, X, X},
	[NE_ADMIN_ACTIVATE] =		{A, A, A, A, A},
	[NE_ADMIN_DEACTIVATE] =		{I, I, I, I, I},
	[NE_ADMIN_MAINTENANCE] =	{M, M, M, M, M},
	[NE_ADMIN_PENDING] =		{P, P, P, P, P},
	[NE_ADMIN_NOT_READY] =		{N, N, N, N, N},
	[NE_CORDON] =				{P, A, N, I, M},
	[NE_UNCORDON] =				{P, A, N, X, X},
};

#undef P
#undef A
#undef N
#undef I
#undef M
#undef X

static const PaasMachine node_machine = {
	"node", node_state_names, NS_COUNT, node_event_names, NE_COUNT, &node_next[0][0]
};

/*
 * paas.node_transition(status text, event text) -> text: the next status.
 * PT409 when the machine does not allow the event in that status.
 */
PG_FUNCTION_INFO_V1(paas_node_transition);
Datum
paas_node_transition(PG_FUNCTION_ARGS)
{
	int			state;
	int			event;
	int			next;

	paas_fsm_decode(&node_machine, fcinfo, &state, &event);
	next = paas_fsm_next(&node_machine, state, event);
	if (next < 0)
		ereport(ERROR,
				(errcode(ERRCODE_PAAS_CONFLICT),
				 errmsg("illegal node status transition: %s is not allowed in status %s",
						node_event_names[event], node_state_names[state]),
				 (state == NS_MAINTENANCE || state == NS_INACTIVE) && event == NE_UNCORDON ?
				 errhint("Activate the node first.") : 0));
	PG_RETURN_TEXT_P(cstring_to_text(node_state_names[next]));
}

/*
 * paas.node_transition_allowed(status text, event text) -> boolean.
 */
PG_FUNCTION_INFO_V1(paas_node_transition_allowed);
Datum
paas_node_transition_allowed(PG_FUNCTION_ARGS)
{
	int			state;
	int			event;

	paas_fsm_decode(&node_machine, fcinfo, &state, &event);
	PG_RETURN_BOOL(paas_fsm_next(&node_machine, state, event) >= 0);
}

/*
 * paas.node_transitions() -> setof (status, event, next_status): the table,
 * for documentation and tests.
 */
PG_FUNCTION_INFO_V1(paas_node_transitions);
Datum
paas_node_transitions(PG_FUNCTION_ARGS)
{
	paas_fsm_table(&node_machine, fcinfo);
	return (Datum) 0;
}

/*
 * paas.node_health_settings() -> (grace_period interval, offline_after
 * interval): the GUCs as the calling process sees them (the background
 * worker re-reads them on SIGHUP).  offline_after never comes out shorter
 * than grace_period.
 */
PG_FUNCTION_INFO_V1(paas_node_health_settings);
Datum
paas_node_health_settings(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	Interval   *grace = palloc0(sizeof(Interval));
	Interval   *offline = palloc0(sizeof(Interval));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	grace->time = (int64) paas_node_grace_period_s * USECS_PER_SEC;
	offline->time = (int64) Max(paas_node_offline_after_s,
								paas_node_grace_period_s) * USECS_PER_SEC;
	values[0] = IntervalPGetDatum(grace);
	values[1] = IntervalPGetDatum(offline);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * The resource fields a node reports with every heartbeat (and through
 * PATCH /workers/:id/resources), in the order their errors are listed.
 * Quantities are Kubernetes quantity strings.  A JSON number is taken only
 * where the original's heartbeat took one, in the unit it documented, and
 * gets that unit appended: CPU in cores (unit ""), allocatedMemory a whole
 * number of MB and allocatedStorage of GB, counted in binary units ("Mi",
 * "Gi": 512 is 512Mi).  unit NULL: a number is refused, because a bare
 * number of bytes for a memory or storage field is a mistake far more often
 * than a meaning (the rule of paas.check_qty, which says the same).
 */
typedef enum ReportKind
{
	REPORT_QTY_MILLI,			/* CPU: kept in millicores */
	REPORT_QTY_VALUE,			/* bytes */
	REPORT_PODS					/* an integer 0 .. 1,000,000 */
} ReportKind;

static const struct
{
	const char *field;
	const char *unit;			/* appended to a number; NULL: no numbers */
	ReportKind	kind;
	int			text_col;		/* column of the quantity as text, or -1 */
	int			value_col;		/* column of the converted value */
} report_fields[] =
{
	{"allocatedCPU", "", REPORT_QTY_MILLI, 1, 4},
	{"allocatedMemory", "Mi", REPORT_QTY_VALUE, 2, 5},
	{"allocatedStorage", "Gi", REPORT_QTY_VALUE, 3, 6},
	{"cpuUsage", "", REPORT_QTY_MILLI, -1, 7},
	{"memoryUsage", NULL, REPORT_QTY_VALUE, -1, 8},
	{"storageUsage", NULL, REPORT_QTY_VALUE, -1, 9},
	{"currentPods", "", REPORT_PODS, -1, 10},
};

/*
 * The problem of a JSON number (its text "num") in a quantity field of
 * "unit", as paas.check_qty words it, or NULL when the number is taken.
 */
static char *
report_number_problem(const char *field, const char *unit, const char *num)
{
	const char *dot;

	if (unit == NULL)
		return psprintf("%s must be a quantity string such as \"16Gi\" (a number has no unit)",
						field);
	if (unit[0] == '\0')
		return NULL;
	/* a binary unit takes whole numbers only ("512", "512.0") */
	dot = strchr(num, '.');
	if (dot != NULL && strspn(dot + 1, "0") != strlen(dot + 1))
		return psprintf("%s must be a whole number of %s, or a quantity string",
						field, strcmp(unit, "Mi") == 0 ? "MB (MiB)" : "GB (GiB)");
	return NULL;
}

#define REPORT_NCOLS 11
#define REPORT_MAX_PODS 1000000

static void
push_string(JsonbParseState **state, JsonbIteratorToken token, const char *str)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) str;
	v.val.string.len = strlen(str);
	pushJsonbValue(state, token, &v);
}

/* Appends {"field": field, "message": message} to the array being built. */
static void
report_error(JsonbParseState **state, const char *field, const char *message)
{
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	push_string(state, WJB_KEY, "field");
	push_string(state, WJB_VALUE, field);
	push_string(state, WJB_KEY, "message");
	push_string(state, WJB_VALUE, message);
	pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

/*
 * An integer as paas.check_int accepts it: optional white space, an
 * optional minus, 1 to 19 digits, optional white space.  False when "s" is
 * not one; values beyond +-10^18 come out as +-10^18 (range checks only).
 */
static bool
report_parse_int(const char *s, int64 *out)
{
	bool		neg = false;
	int			digits = 0;
	int64		v = 0;

	while (isspace((unsigned char) *s))
		s++;
	if (*s == '-')
	{
		neg = true;
		s++;
	}
	while (*s >= '0' && *s <= '9')
	{
		if (v < INT64CONST(100000000000000000))
			v = v * 10 + (*s - '0');
		else
			v = INT64CONST(1000000000000000000);
		s++;
		digits++;
	}
	while (isspace((unsigned char) *s))
		s++;
	if (digits < 1 || digits > 19 || *s != '\0')
		return false;
	*out = neg ? -v : v;
	return true;
}

/*
 * paas.node_report(r jsonb) -> paas.node_report: the resource fields of a
 * report checked and converted in one pass (this runs on every heartbeat).
 * Absent and null fields come out NULL; "errs" lists a {field, message}
 * per bad field ([] when all are good), with the messages of
 * paas.check_qty and paas.check_int, and the values of a bad field are NULL.
 */
PG_FUNCTION_INFO_V1(paas_node_report);
Datum
paas_node_report(PG_FUNCTION_ARGS)
{
	Jsonb	   *r = PG_GETARG_JSONB_P(0);
	TupleDesc	tupdesc;
	Datum		values[REPORT_NCOLS];
	bool		nulls[REPORT_NCOLS];
	JsonbParseState *errs = NULL;
	JsonbValue *result;
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != REPORT_NCOLS)
		elog(ERROR, "paas.node_report has %d columns, expected %d", tupdesc->natts, REPORT_NCOLS);
	memset(nulls, true, sizeof(nulls));
	pushJsonbValue(&errs, WJB_BEGIN_ARRAY, NULL);

	for (i = 0; JB_ROOT_IS_OBJECT(r) && i < lengthof(report_fields); i++)
	{
		const char *field = report_fields[i].field;
		JsonbValue *v = getKeyJsonValueFromContainer(&r->root, field, strlen(field), NULL);
		char	   *str;
		const char *problem;
		int64		value;

		if (v == NULL || v->type == jbvNull)
			continue;
		if (v->type == jbvString)
			str = pnstrdup(v->val.string.val, v->val.string.len);
		else if (v->type == jbvNumeric)
			str = DatumGetCString(DirectFunctionCall1(numeric_out,
													  NumericGetDatum(v->val.numeric)));
		else
		{
			report_error(&errs, field,
						 report_fields[i].kind == REPORT_PODS
						 ? psprintf("%s must be an integer", field)
						 : psprintf("%s must be a quantity string (e.g. 500m, 16Gi)", field));
			continue;
		}

		if (report_fields[i].kind == REPORT_PODS)
		{
			if (!report_parse_int(str, &value))
				report_error(&errs, field, psprintf("%s must be an integer", field));
			else if (value < 0 || value > REPORT_MAX_PODS)
				report_error(&errs, field, psprintf("%s must be between 0 and %d",
													field, REPORT_MAX_PODS));
			else
			{
				values[report_fields[i].value_col] = Int32GetDatum((int32) value);
				nulls[report_fields[i].value_col] = false;
			}
			continue;
		}

		if (v->type == jbvNumeric)
		{
			char	   *nproblem = report_number_problem(field, report_fields[i].unit, str);

			if (nproblem != NULL)
			{
				report_error(&errs, field, nproblem);
				continue;
			}
			str = psprintf("%s%s", str, report_fields[i].unit);
		}
		problem = paas_quantity_problem(str, report_fields[i].kind == REPORT_QTY_MILLI, &value);
		if (problem != NULL)
		{
			report_error(&errs, field, psprintf("%s is not a valid quantity: %s", field, problem));
			continue;
		}
		values[report_fields[i].value_col] = Int64GetDatum(value);
		nulls[report_fields[i].value_col] = false;
		if (report_fields[i].text_col >= 0)
		{
			values[report_fields[i].text_col] = CStringGetTextDatum(str);
			nulls[report_fields[i].text_col] = false;
		}
	}

	result = pushJsonbValue(&errs, WJB_END_ARRAY, NULL);
	values[0] = JsonbPGetDatum(JsonbValueToJsonb(result));
	nulls[0] = false;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * paas.node_history_retention() -> interval: how long paas.node_transitions
 * rows are kept; NULL when paas.node_history_retention is 0 (forever).
 */
PG_FUNCTION_INFO_V1(paas_node_history_retention);
Datum
paas_node_history_retention(PG_FUNCTION_ARGS)
{
	Interval   *keep;

	if (paas_node_history_retention_s <= 0)
		PG_RETURN_NULL();
	keep = palloc0(sizeof(Interval));
	keep->time = (int64) paas_node_history_retention_s * USECS_PER_SEC;
	PG_RETURN_INTERVAL_P(keep);
}

/* Called from _PG_init: the GUCs of the node-health monitor. */
void
paas_nodes_init(void)
{
	DefineCustomIntVariable("paas.node_grace_period",
							"Silence after which a worker node becomes NOT_READY.",
							"Measured from the server's receive time of its last heartbeat.",
							&paas_node_grace_period_s,
							90,
							1,
							7 * 24 * 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("paas.node_history_retention",
							"How long the status history of worker nodes is kept.",
							"The job prune_node_transitions deletes older rows; 0 keeps them forever.",
							&paas_node_history_retention_s,
							90 * 24 * 3600,
							0,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("paas.node_offline_after",
							"Silence after which a worker node becomes INACTIVE.",
							"Never shorter than paas.node_grace_period.",
							&paas_node_offline_after_s,
							300,
							1,
							30 * 24 * 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}
