/*-------------------------------------------------------------------------
 *
 * subscriptions.c
 *	  The subscription status machine (tables and functions that use it are
 *	  in sql/parts/60_subscriptions.sql).
 *
 * THE table below is the whole machine: a (status, event) pair that is not
 * in it is an illegal transition and raises PT409 (HTTP 409).  SQL applies
 * every status change through paas.subscription_transition(status, event);
 * nothing else writes paas.subscriptions.status (the INSERT of a new,
 * ACTIVE subscription aside, which is not a transition).
 *
 * Statuses:
 *	  ACTIVE	 paid up to current_period_end; renewed when the period ends
 *	  GRACE		 the renewal found the wallet short; still served, retried by
 *				 every renewal run until grace_until
 *	  SUSPENDED  grace ran out unpaid; not served, never charged by the
 *				 renewal run (a renew by the owner revives it)
 *	  CANCELLED  cancelled by the owner: served until current_period_end,
 *				 then EXPIRED; never charged again unless renewed
 *	  EXPIRED	 over; the user may subscribe to the service again
 *
 * Rules a reader must know:
 *	  - "renew" is every paid period (the renewal run, PUT /:id/renew, a
 *		revival): it is legal from every status, so a paid period always
 *		makes the subscription ACTIVE.  Whether the period is anchored on
 *		the old period or on "now" is decided in SQL, not here.
 *	  - "payment_failed" is legal in GRACE too (a retry that is still short
 *		leaves it in GRACE); "grace_expired" only in GRACE.
 *	  - Administrators use activate / suspend / expire / cancel.  Repeating
 *		the status a subscription already has is accepted for activate,
 *		suspend and expire (an idempotent PUT), never for cancel.
 *	  - Nothing leaves EXPIRED but a paid renewal.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "fsm.h"
#include "paas.h"

typedef enum SubState
{
	SS_ACTIVE,
	SS_GRACE,
	SS_SUSPENDED,
	SS_CANCELLED,
	SS_EXPIRED,
	SS_COUNT
} SubState;

static const char *const sub_state_names[SS_COUNT] = {
	"ACTIVE", "GRACE", "SUSPENDED", "CANCELLED", "EXPIRED"
};

typedef enum SubEvent
{
	SE_RENEW,					/* a period was paid */
	SE_PAYMENT_FAILED,			/* renewal run: the wallet is short */
	SE_GRACE_EXPIRED,			/* renewal run: grace_until has passed */
	SE_CANCEL,					/* owner (or administrator) cancels */
	SE_PERIOD_ENDED,			/* renewal run: a cancelled period is over */
	SE_ACTIVATE,				/* administrator */
	SE_SUSPEND,					/* administrator */
	SE_EXPIRE,					/* administrator */
	SE_COUNT
} SubEvent;

static const char *const sub_event_names[SE_COUNT] = {
	"renew", "payment_failed", "grace_expired", "cancel", "period_ended",
	"activate", "suspend", "expire"
};

#define A	SS_ACTIVE
#define G	SS_GRACE
#define S	SS_SUSPENDED
#define C	SS_CANCELLED
#define E	SS_EXPIRED
#define X	(-1)				/* illegal */

/* sub_next[event][state]: columns ACTIVE GRACE SUSPENDED CANCELLED EXPIRED */
static const int sub_next[SE_COUNT][SS_COUNT] = {
	/*							A  G  S  C  E */
	[SE_RENEW] =			{A, A, A, A, A},
	[SE_PAYMENT_FAILED] =	{G, G, X, X, X},
	[SE_GRACE_EXPIRED] =	{X, S, X, X, X},
	[SE_CANCEL] =			{C, C, C, X, X},
	[SE_PERIOD_ENDED] =		{X, X, X, E, X},
	[SE_ACTIVATE] =			{A, X, A, A, X},
	[SE_SUSPEND] =			{S, S, S, X, X},
	[SE_EXPIRE] =			{E, E, E, E, E},
};

#undef A
#undef G
#undef S
#undef C
#undef E
#undef X

static const PaasMachine sub_machine = {
	"subscription", sub_state_names, SS_COUNT, sub_event_names, SE_COUNT, &sub_next[0][0]
};

/*
 * paas.subscription_transition(status text, event text) -> text: the next
 * status.  PT409 when the machine does not allow the event in that status;
 * 22023 for an unknown status or event (a programming error of the caller).
 */
PG_FUNCTION_INFO_V1(paas_subscription_transition);
Datum
paas_subscription_transition(PG_FUNCTION_ARGS)
{
	int			state;
	int			event;
	int			next;

	paas_fsm_decode(&sub_machine, fcinfo, &state, &event);
	next = paas_fsm_next(&sub_machine, state, event);
	if (next < 0)
		ereport(ERROR,
				(errcode(ERRCODE_PAAS_CONFLICT),
				 errmsg("illegal subscription status transition: %s is not allowed in status %s",
						sub_event_names[event], sub_state_names[state]),
				 event == SE_CANCEL ?
				 errhint("The subscription is already cancelled or has ended.") :
				 event == SE_ACTIVATE && state == SS_EXPIRED ?
				 errhint("An expired subscription comes back only with a paid renewal.") : 0));
	PG_RETURN_TEXT_P(cstring_to_text(sub_state_names[next]));
}

/*
 * paas.subscription_transition_allowed(status text, event text) -> boolean.
 */
PG_FUNCTION_INFO_V1(paas_subscription_transition_allowed);
Datum
paas_subscription_transition_allowed(PG_FUNCTION_ARGS)
{
	int			state;
	int			event;

	paas_fsm_decode(&sub_machine, fcinfo, &state, &event);
	PG_RETURN_BOOL(paas_fsm_next(&sub_machine, state, event) >= 0);
}

/*
 * paas.subscription_transitions() -> setof (status, event, next_status):
 * the table, for documentation and tests.
 */
PG_FUNCTION_INFO_V1(paas_subscription_transitions);
Datum
paas_subscription_transitions(PG_FUNCTION_ARGS)
{
	paas_fsm_table(&sub_machine, fcinfo);
	return (Datum) 0;
}
