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
 *		refused while the node is INACTIVE or in MAINTENANCE.
 *	  - Administrators may repeat a status they set (idempotent PATCH), but
 *		PENDING is reachable only from INACTIVE and NOT_READY only from
 *		ACTIVE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "fsm.h"
#include "paas.h"

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
	[NE_ADMIN_PENDING] =		{P, X, X, P, X},
	[NE_ADMIN_NOT_READY] =		{X, N, N, X, X},
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
