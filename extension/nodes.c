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

#include "access/xact.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/resowner.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/json.h"
#include "common/md5.h"
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
 * not one.  *neg and *mag: its sign and magnitude (19 digits fit in 64
 * unsigned bits).
 */
static bool
parse_int19(const char *s, bool *neg, uint64 *mag)
{
	int			digits = 0;

	*neg = false;
	*mag = 0;
	while (isspace((unsigned char) *s))
		s++;
	if (*s == '-')
	{
		*neg = true;
		s++;
	}
	while (*s >= '0' && *s <= '9' && digits < 20)
	{
		*mag = *mag * 10 + (uint64) (*s - '0');
		s++;
		digits++;
	}
	while (isspace((unsigned char) *s))
		s++;
	return digits >= 1 && digits <= 19 && *s == '\0';
}

/*
 * paas.check_int's rule for the value v (NULL: absent): NULL when it is
 * absent or JSON null and not required, or an integer (a JSON number or a
 * string) in [min_v, max_v], stored in *out; else the message.
 */
static char *
int_problem(const char *field, JsonbValue *v, bool required, int64 min_v, int64 max_v,
			int64 *out)
{
	char	   *str = NULL;
	bool		neg;
	uint64		mag;
	int64		n;

	if (v == NULL || v->type == jbvNull)
		return required ? psprintf("%s is required", field) : NULL;
	if (v->type == jbvString)
		str = pnstrdup(v->val.string.val, v->val.string.len);
	else if (v->type == jbvNumeric)
		str = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	if (str == NULL || !parse_int19(str, &neg, &mag))
		return psprintf("%s must be an integer", field);
	if (mag > (uint64) PG_INT64_MAX + (neg ? 1 : 0))
		return psprintf("%s must be between " INT64_FORMAT " and " INT64_FORMAT,
						field, min_v, max_v);	/* beyond bigint */
	if (!neg)
		n = (int64) mag;
	else if (mag == (uint64) PG_INT64_MAX + 1)
		n = PG_INT64_MIN;
	else
		n = -(int64) mag;
	if (n < min_v || n > max_v)
		return psprintf("%s must be between " INT64_FORMAT " and " INT64_FORMAT,
						field, min_v, max_v);
	*out = n;
	return NULL;
}

/*
 * paas.check_text's rule for the value v (NULL: absent): NULL when it is
 * absent or JSON null and not required, or a string of min_len to max_len
 * characters; else the message.
 */
static char *
text_problem(const char *field, JsonbValue *v, bool required, int min_len, int max_len)
{
	int			n;

	if (v == NULL || v->type == jbvNull)
		return required ? psprintf("%s is required", field) : NULL;
	if (v->type != jbvString)
		return psprintf("%s must be a string", field);
	n = pg_mbstrlen_with_len(v->val.string.val, v->val.string.len);
	if (n < min_len)
		return psprintf("%s must be at least %d characters", field, min_len);
	if (n > max_len)
		return psprintf("%s must be at most %d characters", field, max_len);
	return NULL;
}

static char *k8s_qty_value(const char *field, JsonbValue *v, const char *unit, bool milli,
						   bool required, char **text, int64 *value_out);

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
		char	   *problem;
		int64		value;

		if (v == NULL || v->type == jbvNull)
			continue;
		if (report_fields[i].kind != REPORT_PODS)
		{
			problem = k8s_qty_value(field, v, report_fields[i].unit,
									report_fields[i].kind == REPORT_QTY_MILLI, false, &str, &value);
			if (problem != NULL)
			{
				report_error(&errs, field, problem);
				continue;
			}
		}
		else
		{
			problem = int_problem(field, v, false, 0, REPORT_MAX_PODS, &value);
			if (problem != NULL)
				report_error(&errs, field, problem);
			else
			{
				values[report_fields[i].value_col] = Int32GetDatum((int32) value);
				nulls[report_fields[i].value_col] = false;
			}
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

/*
 * A Kubernetes Node object in the original's field set: the conversion of
 * paas.node_from_k8s, in one pass over the object (the node sync applies
 * 10,000 of them in a list).  The rules, in the order the field errors are
 * listed:
 *	  - a List must hold exactly one Node (its item is taken); kind must be
 *		Node; metadata.name a string; status.capacity an object (else the
 *		conversion stops there);
 *	  - the quantities of status.capacity (cpu and memory required,
 *		ephemeral-storage, pods) and of status.allocatable, as
 *		paas.check_qty checks them: Kubernetes prints every quantity as a
 *		string; a number is taken for cpu (cores) and pods only;
 *	  - the address: the first InternalIP of status.addresses, else the
 *		first ExternalIP, else the k3s / kubelet annotations and label
 *		(status.addresses error when none);
 *	  - any error: no spec.  Else the spec: hostname from the first
 *		Hostname address, the kubernetes.io/hostname label or the name;
 *		capacity defaults "0" (pods "110"), allocatable defaults to the
 *		capacity; cpuCores the capacity's CPU rounded up (at least 1),
 *		maxPods its pods (at least 1); isReady unless the Ready condition
 *		says other than True.
 * The operator ->> of SQL is k8s_text: a string as it is, another value as
 * its JSON text, JSON null and absent keys as NULL.
 */

/* The object "c" holds at "key", or NULL (c NULL or not an object). */
static JsonbValue *
k8s_get(JsonbContainer *c, const char *key)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return NULL;
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

/* The container of v when it is an object (or, want_array, an array). */
static JsonbContainer *
k8s_container(JsonbValue *v, bool want_array)
{
	if (v == NULL || v->type != jbvBinary)
		return NULL;
	if (want_array ? !JsonContainerIsArray(v->val.binary.data) || JsonContainerIsScalar(v->val.binary.data)
		: !JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

/* SQL's v ->> '{}': NULL for absent and JSON null. */
static char *
k8s_text(JsonbValue *v)
{
	if (v == NULL || v->type == jbvNull)
		return NULL;
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	return NULL;
}

/* Whether v is the JSON string "s". */
static bool
k8s_is(JsonbValue *v, const char *s)
{
	return v != NULL && v->type == jbvString && v->val.string.len == (int) strlen(s)
		&& memcmp(v->val.string.val, s, v->val.string.len) == 0;
}

static char *
k8s_nonempty(char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

/*
 * The problem of the quantity field "v" as paas.check_qty words it, or
 * NULL (an absent field that is not required too).  unit: appended to a
 * number, NULL when numbers are refused.
 */
static char *
k8s_qty_value(const char *field, JsonbValue *v, const char *unit, bool milli, bool required,
			  char **text, int64 *value_out)
{
	char	   *str;
	const char *problem;
	int64		value;

	if (v == NULL || v->type == jbvNull)
		return required ? psprintf("%s is required", field) : NULL;
	if (v->type != jbvString && v->type != jbvNumeric)
		return psprintf("%s must be a quantity string (e.g. 500m, 16Gi)", field);
	str = k8s_text(v);
	if (v->type == jbvNumeric)
	{
		char	   *nproblem = report_number_problem(field, unit, str);

		if (nproblem != NULL)
			return nproblem;
		str = psprintf("%s%s", str, unit);
	}
	problem = paas_quantity_problem(str, milli, &value);
	if (problem != NULL)
		return psprintf("%s is not a valid quantity: %s", field, problem);
	if (text != NULL)
		*text = str;
	if (value_out != NULL)
		*value_out = value;
	return NULL;
}

static char *
k8s_qty_problem(const char *field, JsonbValue *v, const char *unit, bool milli, bool required)
{
	return k8s_qty_value(field, v, unit, milli, required, NULL, NULL);
}

static void
k8s_push_text(JsonbParseState **state, const char *key, const char *val)
{
	JsonbValue	null;

	push_string(state, WJB_KEY, key);
	if (val != NULL)
		push_string(state, WJB_VALUE, val);
	else
	{
		null.type = jbvNull;
		pushJsonbValue(state, WJB_VALUE, &null);
	}
}

/* key: v, or when v is absent "dflt": null, false, [] or {}. */
static void
k8s_push_value(JsonbParseState **state, const char *key, JsonbValue *v, const char *dflt)
{
	JsonbValue	d;

	push_string(state, WJB_KEY, key);
	if (v != NULL)
		pushJsonbValue(state, WJB_VALUE, v);
	else if (strcmp(dflt, "[]") == 0)
	{
		pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
		pushJsonbValue(state, WJB_END_ARRAY, NULL);
	}
	else if (strcmp(dflt, "{}") == 0)
	{
		pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
		pushJsonbValue(state, WJB_END_OBJECT, NULL);
	}
	else
	{
		d.type = strcmp(dflt, "false") == 0 ? jbvBool : jbvNull;
		d.val.boolean = false;
		pushJsonbValue(state, WJB_VALUE, &d);
	}
}

static void
k8s_push_int(JsonbParseState **state, const char *key, int64 n)
{
	JsonbValue	v;

	push_string(state, WJB_KEY, key);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(n);
	pushJsonbValue(state, WJB_VALUE, &v);
}

static const char *const k8s_qty_keys[4] = {"cpu", "memory", "ephemeral-storage", "pods"};

/*
 * paas.node_from_k8s(doc jsonb, OUT spec jsonb, OUT errs jsonb): the rules
 * above.  errs is [] when the spec is made, spec NULL when errs is not.
 */
PG_FUNCTION_INFO_V1(paas_node_from_k8s);
Datum
paas_node_from_k8s(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);
	JsonbContainer *d = doc != NULL ? &doc->root : NULL;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {true, false};
	JsonbParseState *errs = NULL;
	int			nerr = 0;
	JsonbContainer *md,
			   *st,
			   *sp,
			   *ni,
			   *cap,
			   *alloc,
			   *addrs,
			   *conds;
	JsonbValue  iv;
	char	   *ip = NULL;
	char	   *host = NULL;
	char	   *ready = NULL;
	char	   *qty[4];
	int64		cpu_m = 0;
	int64		pods = 0;
	bool		found_host = false;
	int			internal_i = -1;
	int			external_i = -1;
	int			i;
	int			k;

#define K8S_ERR(f, m) (report_error(&errs, (f), (m)), nerr++)

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	pushJsonbValue(&errs, WJB_BEGIN_ARRAY, NULL);

	if (k8s_is(k8s_get(d, "kind"), "List"))
	{
		JsonbValue *items = k8s_get(d, "items");

		if (items != NULL)
		{
			JsonbContainer *a = k8s_container(items, true);

			if (a == NULL || JsonContainerSize(a) != 1)
			{
				K8S_ERR("items", "a List must hold exactly one Node");
				goto done;
			}
			items = getIthJsonbValueFromContainer(a, 0);
			d = k8s_container(items, false);
		}
		else
			d = NULL;
	}
	if (!k8s_is(k8s_get(d, "kind"), "Node"))
		K8S_ERR("kind", "kind must be Node");
	md = k8s_container(k8s_get(d, "metadata"), false);
	st = k8s_container(k8s_get(d, "status"), false);
	sp = k8s_container(k8s_get(d, "spec"), false);
	ni = k8s_container(k8s_get(st, "nodeInfo"), false);
	{
		JsonbValue *name = k8s_get(md, "name");

		if (name == NULL || name->type != jbvString)
			K8S_ERR("metadata.name", "metadata.name is required");
	}
	cap = k8s_container(k8s_get(st, "capacity"), false);
	if (cap == NULL)
	{
		K8S_ERR("status.capacity", "status.capacity is required");
		goto done;
	}
	alloc = k8s_container(k8s_get(st, "allocatable"), false);
	for (k = 0; k < 8; k++)
	{
		const char *key = k8s_qty_keys[k % 4];
		bool		numbers = strcmp(key, "cpu") == 0 || strcmp(key, "pods") == 0;
		char	   *field = psprintf("status.%s.%s", k < 4 ? "capacity" : "allocatable", key);
		char	   *problem = k8s_qty_problem(field, k8s_get(k < 4 ? cap : alloc, key),
											  numbers ? "" : NULL, strcmp(key, "cpu") == 0,
											  k < 2);

		if (problem != NULL)
			K8S_ERR(field, problem);
	}
	addrs = k8s_container(k8s_get(st, "addresses"), true);
	for (i = 0; addrs != NULL && i < (int) JsonContainerSize(addrs); i++)
	{
		JsonbValue *a = getIthJsonbValueFromContainer(addrs, i);
		JsonbContainer *ac = a->type == jbvBinary ? a->val.binary.data : NULL;
		JsonbValue *type = k8s_get(ac, "type");

		if (k8s_is(type, "InternalIP") && internal_i < 0)
			internal_i = i;
		else if (k8s_is(type, "ExternalIP") && external_i < 0)
			external_i = i;
		else if (k8s_is(type, "Hostname") && !found_host)
		{
			host = k8s_text(k8s_get(ac, "address"));
			found_host = true;
		}
	}
	if (internal_i >= 0 || external_i >= 0)
	{
		JsonbValue *a = getIthJsonbValueFromContainer(addrs, internal_i >= 0 ? internal_i : external_i);

		ip = k8s_text(k8s_get(a->val.binary.data, "address"));
	}
	if (ip == NULL)
	{
		JsonbContainer *ann = k8s_container(k8s_get(md, "annotations"), false);
		JsonbContainer *lab = k8s_container(k8s_get(md, "labels"), false);

		ip = k8s_text(k8s_get(ann, "k3s.io/internal-ip"));
		if (ip == NULL)
			ip = k8s_text(k8s_get(lab, "k3s.io/internal-ip"));
		if (ip == NULL)
			ip = k8s_text(k8s_get(ann, "alpha.kubernetes.io/provided-node-ip"));
	}
	if (ip == NULL)
		K8S_ERR("status.addresses", "status.addresses must hold an InternalIP or ExternalIP");
	if (nerr > 0)
		goto done;

	conds = k8s_container(k8s_get(st, "conditions"), true);
	for (i = 0; conds != NULL && i < (int) JsonContainerSize(conds); i++)
	{
		JsonbValue *c = getIthJsonbValueFromContainer(conds, i);
		JsonbContainer *cc = c->type == jbvBinary ? c->val.binary.data : NULL;

		if (k8s_is(k8s_get(cc, "type"), "Ready"))
		{
			ready = k8s_text(k8s_get(cc, "status"));
			break;
		}
	}
	for (k = 0; k < 4; k++)
	{
		qty[k] = k8s_text(k8s_get(cap, k8s_qty_keys[k]));
		if (qty[k] == NULL)
			qty[k] = k == 3 ? "110" : "0";
	}
	if (paas_quantity_problem(qty[0], true, &cpu_m) != NULL ||
		paas_quantity_problem(qty[3], false, &pods) != NULL)
		elog(ERROR, "a checked quantity is not valid");

	{
		JsonbParseState *s = NULL;
		JsonbContainer *lab = k8s_container(k8s_get(md, "labels"), false);
		JsonbValue *result;
		char	   *arch = k8s_text(k8s_get(ni, "architecture"));

		if (host == NULL)
			host = k8s_text(k8s_get(lab, "kubernetes.io/hostname"));
		if (host == NULL)
			host = k8s_text(k8s_get(md, "name"));
		pushJsonbValue(&s, WJB_BEGIN_OBJECT, NULL);
		k8s_push_value(&s, "name", k8s_get(md, "name"), "null");
		k8s_push_text(&s, "hostname", host);
		k8s_push_text(&s, "ipAddress", ip);
		if (addrs != NULL)
			k8s_push_value(&s, "addresses", k8s_get(st, "addresses"), "[]");
		else
			k8s_push_value(&s, "addresses", NULL, "[]");
		{
			char	   *a = arch;

			if (a == NULL)
				a = k8s_text(k8s_get(lab, "kubernetes.io/arch"));
			k8s_push_text(&s, "architecture", a != NULL ? a : "amd64");
		}
		{
			char	   *os = k8s_nonempty(k8s_text(k8s_get(ni, "operatingSystem")));

			k8s_push_text(&s, "operatingSystem", os != NULL ? os : "linux");
		}
		k8s_push_int(&s, "cpuCores", Max(1, cpu_m / 1000 + (cpu_m % 1000 != 0 ? 1 : 0)));
		k8s_push_text(&s, "cpuArchitecture", k8s_nonempty(arch) != NULL ? arch : "unknown");
		k8s_push_text(&s, "totalMemory", qty[1]);
		k8s_push_text(&s, "totalStorage", qty[2]);
		k8s_push_int(&s, "maxPods", Max(1, pods));
		k8s_push_value(&s, "labels", k8s_get(md, "labels"), "{}");
		k8s_push_value(&s, "taints", k8s_get(sp, "taints"), "[]");
		k8s_push_text(&s, "kubeletVersion", k8s_nonempty(k8s_text(k8s_get(ni, "kubeletVersion"))));
		k8s_push_text(&s, "containerRuntime",
					  k8s_nonempty(k8s_text(k8s_get(ni, "containerRuntimeVersion"))));
		k8s_push_text(&s, "kernelVersion", k8s_nonempty(k8s_text(k8s_get(ni, "kernelVersion"))));
		k8s_push_text(&s, "osImage", k8s_nonempty(k8s_text(k8s_get(ni, "osImage"))));
		push_string(&s, WJB_KEY, "capacity");
		pushJsonbValue(&s, WJB_BEGIN_OBJECT, NULL);
		for (k = 0; k < 4; k++)
			k8s_push_text(&s, k8s_qty_keys[k], qty[k]);
		pushJsonbValue(&s, WJB_END_OBJECT, NULL);
		push_string(&s, WJB_KEY, "allocatable");
		pushJsonbValue(&s, WJB_BEGIN_OBJECT, NULL);
		for (k = 0; k < 4; k++)
		{
			char	   *a = k8s_text(k8s_get(alloc, k8s_qty_keys[k]));

			k8s_push_text(&s, k8s_qty_keys[k], a != NULL ? a : qty[k]);
		}
		pushJsonbValue(&s, WJB_END_OBJECT, NULL);
		k8s_push_value(&s, "conditions", k8s_get(st, "conditions"), "[]");
		k8s_push_value(&s, "providerId", k8s_get(sp, "providerID"), "null");
		k8s_push_value(&s, "podCidr", k8s_get(sp, "podCIDR"), "null");
		k8s_push_value(&s, "kubeUid", k8s_get(md, "uid"), "null");
		k8s_push_value(&s, "unschedulable", k8s_get(sp, "unschedulable"), "false");
		push_string(&s, WJB_KEY, "isReady");
		iv.type = jbvBool;
		iv.val.boolean = ready == NULL || strcmp(ready, "True") == 0;
		pushJsonbValue(&s, WJB_VALUE, &iv);
		result = pushJsonbValue(&s, WJB_END_OBJECT, NULL);
		values[0] = JsonbPGetDatum(JsonbValueToJsonb(result));
		nulls[0] = false;
	}

done:
	values[1] = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&errs, WJB_END_ARRAY, NULL)));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
#undef K8S_ERR
}

/*
 * The digest of a Node object (paas.node_digest): the md5 of the text of
 * the JSON array
 *	  [the object less apiVersion, kind, metadata and status,
 *	   its metadata less resourceVersion and managedFields,
 *	   its status less conditions,
 *	   its conditions (when an array), each less lastHeartbeatTime]
 * as jsonb prints it, written straight from the object: what the SQL
 * "md5(jsonb_build_array(x - ..., ...)::text)" gives, without building the
 * parts.  As jsonb's "-" operator: an array loses the strings that are one
 * of the keys, a scalar raises; an absent part (and no conditions) is null.
 */

/* Appends the text jsonb prints for the scalar v. */
static void
digest_scalar(StringInfo sb, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendStringInfoString(sb, "null");
			break;
		case jbvString:
			escape_json(sb, pnstrdup(v->val.string.val, v->val.string.len));
			break;
		case jbvNumeric:
			appendStringInfoString(sb, DatumGetCString(DirectFunctionCall1(numeric_out,
																		   NumericGetDatum(v->val.numeric))));
			break;
		case jbvBool:
			appendStringInfoString(sb, v->val.boolean ? "true" : "false");
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

static void
digest_value(StringInfo sb, JsonbValue *v)
{
	if (v->type == jbvBinary)
		JsonbToCString(sb, v->val.binary.data, v->val.binary.len);
	else
		digest_scalar(sb, v);
}

static bool
digest_is_key(JsonbValue *v, const char *const *keys, int nkeys)
{
	int			i;

	if (v->type != jbvString)
		return false;
	for (i = 0; i < nkeys; i++)
		if (v->val.string.len == (int) strlen(keys[i]) &&
			memcmp(v->val.string.val, keys[i], v->val.string.len) == 0)
			return true;
	return false;
}

/*
 * Appends the text of "v - keys" (v NULL: SQL NULL, printed null in the
 * array).  "each": the elements of the array c instead, each less keys, as
 * jsonb_agg prints them (null when none).
 */
static void
digest_less(StringInfo sb, JsonbContainer *c, bool each, const char *const *keys, int nkeys)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		first = true;
	bool		is_object;

	if (c == NULL)
	{
		appendStringInfoString(sb, "null");
		return;
	}
	if (!each && JsonContainerIsScalar(c))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot delete from scalar")));
	if (each && JsonContainerSize(c) == 0)
	{
		appendStringInfoString(sb, "null");
		return;
	}
	is_object = JsonContainerIsObject(c);
	appendStringInfoChar(sb, is_object ? '{' : '[');
	it = JsonbIteratorInit(c);
	tok = JsonbIteratorNext(&it, &v, true);	/* the container's begin */
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			JsonbValue	val;
			bool		skip = digest_is_key(&v, keys, nkeys);

			tok = JsonbIteratorNext(&it, &val, true);
			if (skip)
				continue;
			if (!first)
				appendStringInfoString(sb, ", ");
			first = false;
			digest_scalar(sb, &v);
			appendStringInfoString(sb, ": ");
			digest_value(sb, &val);
		}
		else if (tok == WJB_ELEM)
		{
			if (each)
			{
				if (v.type != jbvBinary)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("cannot delete from scalar")));
				if (!first)
					appendStringInfoString(sb, ", ");
				first = false;
				digest_less(sb, v.val.binary.data, false, keys, nkeys);
				continue;
			}
			if (digest_is_key(&v, keys, nkeys))
				continue;
			if (!first)
				appendStringInfoString(sb, ", ");
			first = false;
			digest_value(sb, &v);
		}
	}
	appendStringInfoChar(sb, is_object ? '}' : ']');
}

/* The container of the value at "key" of the object c (any type), or NULL. */
static JsonbContainer *
digest_part(JsonbContainer *c, const char *key, JsonbValue *scalar_buf, Jsonb **scalar_jb)
{
	JsonbValue *v = k8s_get(c, key);

	if (v == NULL)
		return NULL;
	if (v->type == jbvBinary)
		return v->val.binary.data;
	/* a scalar: as a root scalar container, which "-" refuses */
	*scalar_buf = *v;
	*scalar_jb = JsonbValueToJsonb(scalar_buf);
	return &(*scalar_jb)->root;
}

static const char *const digest_top_keys[] = {"apiVersion", "kind", "metadata", "status"};
static const char *const digest_md_keys[] = {"resourceVersion", "managedFields"};
static const char *const digest_st_keys[] = {"conditions"};
static const char *const digest_cond_keys[] = {"lastHeartbeatTime"};

PG_FUNCTION_INFO_V1(paas_node_digest);
Datum
paas_node_digest(PG_FUNCTION_ARGS)
{
	Jsonb	   *x = PG_ARGISNULL(0) ? NULL : PG_GETARG_JSONB_P(0);
	JsonbContainer *root = x != NULL ? &x->root : NULL;
	JsonbValue	buf;
	Jsonb	   *sjb;
	JsonbContainer *st;
	JsonbContainer *conds;
	StringInfoData sb;
	char		hex[33];
	const char *errstr = NULL;

	initStringInfo(&sb);
	appendStringInfoChar(&sb, '[');
	digest_less(&sb, root, false, digest_top_keys, lengthof(digest_top_keys));
	appendStringInfoString(&sb, ", ");
	digest_less(&sb, digest_part(root, "metadata", &buf, &sjb), false,
				digest_md_keys, lengthof(digest_md_keys));
	appendStringInfoString(&sb, ", ");
	st = digest_part(root, "status", &buf, &sjb);
	digest_less(&sb, st, false, digest_st_keys, lengthof(digest_st_keys));
	appendStringInfoString(&sb, ", ");
	conds = k8s_container(k8s_get(st, "conditions"), true);
	if (conds != NULL)
		digest_less(&sb, conds, true, digest_cond_keys, lengthof(digest_cond_keys));
	else
		appendStringInfoString(&sb, "null");
	appendStringInfoChar(&sb, ']');
	if (!pg_md5_hash(sb.data, sb.len, hex, &errstr))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute MD5 hash: %s", errstr)));
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}

/*
 * paas.node_check(errs jsonb, s jsonb, creating boolean) -> jsonb: errs
 * with the field errors of the node "s" in the original's field set
 * appended (NULL stays NULL).  "creating": the required fields must be
 * there.  The rules, in the order the errors are listed: name (2-253
 * characters, letters, digits, ".", "-", "_", a letter or digit at both
 * ends), hostname (1-255), ipAddress (2-64, an IPv4/IPv6 address, CIDR
 * allowed), architecture (one of node_architectures), operatingSystem
 * (1-64), cpuCores (1-100,000), cpuArchitecture (1-255), totalMemory and
 * totalStorage (quantity strings), allocatedCPU (a quantity or cores),
 * allocatedMemory and allocatedStorage, maxPods (1-1,000,000), currentPods
 * (0-1,000,000), the versions (at most 255), labels (an object of strings
 * of at most 63 characters) and taints.  The messages are those of
 * paas.check_text, paas.check_int, paas.check_enum and paas.check_qty.
 */
static const char *const node_architectures[] = {
	"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"
};

static bool
check_absent(JsonbValue *v)
{
	return v == NULL || v->type == jbvNull;
}

static void
check_text_field(JsonbParseState **e, JsonbContainer *s, const char *field, bool required,
				 int min_len, int max_len)
{
	char	   *problem = text_problem(field, k8s_get(s, field), required, min_len, max_len);

	if (problem != NULL)
		report_error(e, field, problem);
}

static void
check_int_field(JsonbParseState **e, JsonbContainer *s, const char *field, bool required,
				int64 min_v, int64 max_v)
{
	int64		n;
	char	   *problem = int_problem(field, k8s_get(s, field), required, min_v, max_v, &n);

	if (problem != NULL)
		report_error(e, field, problem);
}

static void
check_qty_field(JsonbParseState **e, JsonbContainer *s, const char *field, const char *unit,
				bool milli, bool required)
{
	char	   *problem = k8s_qty_problem(field, k8s_get(s, field), unit, milli, required);

	if (problem != NULL)
		report_error(e, field, problem);
}

/* an ASCII letter or digit (what [A-Za-z0-9] matches) */
static bool
node_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
node_name_ok(const char *s, int len)
{
	int			i;

	if (len == 0 || !node_alnum(s[0]) || !node_alnum(s[len - 1]))
		return false;
	for (i = 0; i < len; i++)
		if (!(node_alnum(s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

/* A dotted quad of 0-255 without leading zeros (valid without the cast). */
static bool
node_dotted_quad(const char *s)
{
	int			part;

	for (part = 0; part < 4; part++)
	{
		int			digits = 0;
		int			v = 0;

		if (part > 0 && *s++ != '.')
			return false;
		while (*s >= '0' && *s <= '9' && digits < 4)
		{
			v = v * 10 + (*s++ - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[-digits] == '0'))
			return false;
	}
	return *s == '\0';
}

/* Whether t is an IPv4/IPv6 address (CIDR allowed): what the inet type takes. */
static bool
node_inet_ok(const char *t)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		ok;

	if (node_dotted_quad(t))
		return true;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		(void) DirectFunctionCall1(inet_in, CStringGetDatum(t));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode != ERRCODE_INVALID_TEXT_REPRESENTATION)
			ReThrowError(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

PG_FUNCTION_INFO_V1(paas_node_is_inet);
Datum
paas_node_is_inet(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(node_inet_ok(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

PG_FUNCTION_INFO_V1(paas_node_check);
Datum
paas_node_check(PG_FUNCTION_ARGS)
{
	Jsonb	   *errs;
	JsonbContainer *s;
	bool		creating = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	JsonbParseState *e = NULL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue *f;
	static const char *const versions[] = {"kubeletVersion", "containerRuntime", "kernelVersion", "osImage"};
	int			i;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	errs = PG_GETARG_JSONB_P(0);
	s = PG_ARGISNULL(1) ? NULL : &PG_GETARG_JSONB_P(1)->root;
	/* errs || the new errors */
	if (!JB_ROOT_IS_ARRAY(errs) || JB_ROOT_IS_SCALAR(errs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("paas.node_check: errs must be a JSON array")));
	pushJsonbValue(&e, WJB_BEGIN_ARRAY, NULL);
	it = JsonbIteratorInit(&errs->root);
	tok = JsonbIteratorNext(&it, &v, true);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
			pushJsonbValue(&e, WJB_ELEM, &v);

	check_text_field(&e, s, "name", creating, 2, 253);
	f = k8s_get(s, "name");
	if (f != NULL && f->type == jbvString && !node_name_ok(f->val.string.val, f->val.string.len))
		report_error(&e, "name",
					 "name may hold only letters, digits, \".\", \"-\" and \"_\", and must start and end with a letter or digit");
	check_text_field(&e, s, "hostname", creating, 1, 255);
	check_text_field(&e, s, "ipAddress", creating, 2, 64);
	f = k8s_get(s, "ipAddress");
	if (f != NULL && f->type == jbvString && !node_inet_ok(k8s_text(f)))
		report_error(&e, "ipAddress", "ipAddress must be a valid IP address");
	f = k8s_get(s, "architecture");
	if (!check_absent(f))
	{
		bool		ok = false;

		for (i = 0; i < lengthof(node_architectures); i++)
			ok = ok || k8s_is(f, node_architectures[i]);
		if (!ok)
			report_error(&e, "architecture",
						 "architecture must be one of [amd64, arm64, arm, 386, ppc64le, s390x, riscv64]");
	}
	check_text_field(&e, s, "operatingSystem", false, 1, 64);
	check_int_field(&e, s, "cpuCores", creating, 1, 100000);
	check_text_field(&e, s, "cpuArchitecture", creating, 1, 255);
	check_qty_field(&e, s, "totalMemory", NULL, false, creating);
	check_qty_field(&e, s, "totalStorage", NULL, false, creating);
	check_qty_field(&e, s, "allocatedCPU", "", true, false);
	check_qty_field(&e, s, "allocatedMemory", NULL, false, false);
	check_qty_field(&e, s, "allocatedStorage", NULL, false, false);
	check_int_field(&e, s, "maxPods", false, 1, 1000000);
	check_int_field(&e, s, "currentPods", false, 0, 1000000);
	for (i = 0; i < lengthof(versions); i++)
		check_text_field(&e, s, versions[i], false, 0, 255);
	f = k8s_get(s, "labels");
	if (!check_absent(f))
	{
		JsonbContainer *lab = k8s_container(f, false);

		if (lab == NULL)
			report_error(&e, "labels", "labels must be an object of strings");
		else
		{
			it = JsonbIteratorInit(lab);
			tok = JsonbIteratorNext(&it, &v, true);
			while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			{
				JsonbValue	val;
				char	   *key;

				if (tok != WJB_KEY)
					continue;
				key = pnstrdup(v.val.string.val, v.val.string.len);
				tok = JsonbIteratorNext(&it, &val, true);
				if (val.type != jbvString ||
					pg_mbstrlen_with_len(val.val.string.val, val.val.string.len) > 63 ||
					pg_mbstrlen_with_len(v.val.string.val, v.val.string.len) > 317)
					report_error(&e, psprintf("labels.%s", key),
								 psprintf("\"labels.%s\" must be a string of at most 63 characters", key));
			}
		}
	}
	f = k8s_get(s, "taints");
	if (!check_absent(f))
	{
		JsonbContainer *ts = k8s_container(f, true);

		if (ts == NULL)
			report_error(&e, "taints", "taints must be an array");
		else
			for (i = 0; i < (int) JsonContainerSize(ts); i++)
			{
				JsonbValue *t = getIthJsonbValueFromContainer(ts, i);
				JsonbContainer *tc = k8s_container(t, false);
				JsonbValue *key = k8s_get(tc, "key");
				JsonbValue *value = k8s_get(tc, "value");
				JsonbValue *effect = k8s_get(tc, "effect");

				if (tc == NULL || key == NULL || key->type != jbvString ||
					(value != NULL && value->type != jbvString && value->type != jbvNull) ||
					!(k8s_is(effect, "NoSchedule") || k8s_is(effect, "PreferNoSchedule") ||
					  k8s_is(effect, "NoExecute")))
					report_error(&e, psprintf("taints.%d", i),
								 "a taint needs a string \"key\", an optional string \"value\" and an \"effect\" of NoSchedule, PreferNoSchedule or NoExecute");
			}
	}
	PG_RETURN_JSONB_P(JsonbValueToJsonb(pushJsonbValue(&e, WJB_END_ARRAY, NULL)));
}

/*
 * The first argument of the SQL checkers: the error list, a JSON array
 * (the caller has returned NULL for a NULL one).
 */
static Jsonb *
checker_errs(FunctionCallInfo fcinfo, const char *name)
{
	Jsonb	   *errs = PG_GETARG_JSONB_P(0);

	if (!JB_ROOT_IS_ARRAY(errs) || JB_ROOT_IS_SCALAR(errs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: errs must be a JSON array", name)));
	return errs;
}

/* errs || [{field, message}] (message NULL: errs itself) */
static Datum
errs_append(Jsonb *errs, const char *field, const char *message)
{
	JsonbParseState *e = NULL;
	JsonbIterator *it;
	JsonbValue	el;
	JsonbIteratorToken tok;

	if (message == NULL)
		PG_RETURN_JSONB_P(errs);
	pushJsonbValue(&e, WJB_BEGIN_ARRAY, NULL);
	it = JsonbIteratorInit(&errs->root);
	tok = JsonbIteratorNext(&it, &el, true);
	while ((tok = JsonbIteratorNext(&it, &el, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
			pushJsonbValue(&e, WJB_ELEM, &el);
	report_error(&e, field, message);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(pushJsonbValue(&e, WJB_END_ARRAY, NULL)));
}

/* the field name of a checker (argument argno), never NULL */
static char *
checker_field(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: field must not be NULL", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * The arguments (errs jsonb, req jsonb, field text, ...) of the request
 * checkers: the error list, the field's name, and the field's value in req
 * (NULL: absent, or req NULL).
 */
static JsonbValue *
checker_req_field(FunctionCallInfo fcinfo, const char *name, Jsonb **errs, char **field)
{
	*errs = checker_errs(fcinfo, name);
	*field = checker_field(fcinfo, 2, name);
	return PG_ARGISNULL(1) ? NULL : k8s_get(&PG_GETARG_JSONB_P(1)->root, *field);
}

/*
 * paas.check_qty(errs jsonb, field text, v jsonb, unit text, milli boolean,
 * required boolean) -> jsonb: errs with the error of the quantity field v
 * appended (k8s_qty_problem), NULL errs stays NULL.
 */
PG_FUNCTION_INFO_V1(paas_check_qty);
Datum
paas_check_qty(PG_FUNCTION_ARGS)
{
	Jsonb	   *errs;
	JsonbValue	v;
	JsonbValue *vp = NULL;
	char	   *field;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	errs = checker_errs(fcinfo, "paas.check_qty");
	field = checker_field(fcinfo, 1, "paas.check_qty");
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("paas.check_qty: milli must not be NULL")));
	if (!PG_ARGISNULL(2))
	{
		Jsonb	   *j = PG_GETARG_JSONB_P(2);

		if (JB_ROOT_IS_SCALAR(j))
			JsonbExtractScalar(&j->root, &v);
		else
		{
			v.type = jbvBinary;
			v.val.binary.data = &j->root;
			v.val.binary.len = VARSIZE(j) - VARHDRSZ;
		}
		vp = &v;
	}
	return errs_append(errs, field,
					   k8s_qty_problem(field, vp, PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)),
									   PG_GETARG_BOOL(4), !PG_ARGISNULL(5) && PG_GETARG_BOOL(5)));
}

/*
 * paas.check_text(errs jsonb, req jsonb, field text, required boolean,
 * min_len int, max_len int) -> jsonb: errs with an error appended when
 * req->field is absent (and required) or not a string of min_len to
 * max_len characters; NULL errs stays NULL, a NULL bound is no bound.
 */
PG_FUNCTION_INFO_V1(paas_check_text);
Datum
paas_check_text(PG_FUNCTION_ARGS)
{
	Jsonb	   *errs;
	char	   *field;
	JsonbValue *v;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	v = checker_req_field(fcinfo, "paas.check_text", &errs, &field);
	return errs_append(errs, field,
					   text_problem(field, v, !PG_ARGISNULL(3) && PG_GETARG_BOOL(3),
									PG_ARGISNULL(4) ? PG_INT32_MIN : PG_GETARG_INT32(4),
									PG_ARGISNULL(5) ? PG_INT32_MAX : PG_GETARG_INT32(5)));
}

/*
 * paas.check_int(errs jsonb, req jsonb, field text, required boolean,
 * min_v bigint, max_v bigint) -> jsonb: errs with an error appended when
 * req->field is absent (and required), not an integer (a JSON number or a
 * string, parse_int19) or outside [min_v, max_v]; NULL errs stays NULL, a
 * NULL bound is no bound.
 */
PG_FUNCTION_INFO_V1(paas_check_int);
Datum
paas_check_int(PG_FUNCTION_ARGS)
{
	Jsonb	   *errs;
	char	   *field;
	JsonbValue *v;
	int64		n;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	v = checker_req_field(fcinfo, "paas.check_int", &errs, &field);
	return errs_append(errs, field,
					   int_problem(field, v, !PG_ARGISNULL(3) && PG_GETARG_BOOL(3),
								   PG_ARGISNULL(4) ? PG_INT64_MIN : PG_GETARG_INT64(4),
								   PG_ARGISNULL(5) ? PG_INT64_MAX : PG_GETARG_INT64(5), &n));
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
