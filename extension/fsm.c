/*-------------------------------------------------------------------------
 *
 * fsm.c
 *	  Lookup and listing of the extension's state machines (see fsm.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/builtins.h"

#include "fsm.h"

static int
lookup(const char *name, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

void
paas_fsm_decode(const PaasMachine *m, FunctionCallInfo fcinfo, int *state, int *event)
{
	char	   *s = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *e = text_to_cstring(PG_GETARG_TEXT_PP(1));

	*state = lookup(s, m->states, m->nstates);
	*event = lookup(e, m->events, m->nevents);
	if (*state < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown %s status \"%s\"", m->what, s)));
	if (*event < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown %s event \"%s\"", m->what, e)));
}

void
paas_fsm_table(const PaasMachine *m, FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int e = 0; e < m->nevents; e++)
	{
		for (int s = 0; s < m->nstates; s++)
		{
			int			next = paas_fsm_next(m, s, e);
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			if (next < 0)
				continue;
			values[0] = CStringGetTextDatum(m->states[s]);
			values[1] = CStringGetTextDatum(m->events[e]);
			values[2] = CStringGetTextDatum(m->states[next]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
}
