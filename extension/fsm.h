/*-------------------------------------------------------------------------
 *
 * fsm.h
 *	  The mechanism shared by the extension's state machines (worker nodes,
 *	  subscriptions).  Each machine keeps its own transition table in its own
 *	  file; this code only names states and events, looks transitions up,
 *	  and lists the table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PAAS_FSM_H
#define PAAS_FSM_H

#include "postgres.h"
#include "fmgr.h"

typedef struct PaasMachine
{
	const char *what;			/* "node", "subscription": for messages */
	const char *const *states;
	int			nstates;
	const char *const *events;
	int			nevents;
	const int  *next;			/* next[event * nstates + state]; -1 illegal */
} PaasMachine;

/* The state and event named by arguments 0 and 1; 22023 for unknown names. */
extern void paas_fsm_decode(const PaasMachine *m, FunctionCallInfo fcinfo,
							int *state, int *event);

/* The next state, or -1 when the event is not allowed in that state. */
static inline int
paas_fsm_next(const PaasMachine *m, int state, int event)
{
	return m->next[event * m->nstates + state];
}

/* Materialises (status, event, next_status) rows of every allowed pair. */
extern void paas_fsm_table(const PaasMachine *m, FunctionCallInfo fcinfo);

#endif							/* PAAS_FSM_H */
