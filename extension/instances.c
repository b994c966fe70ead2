/*-------------------------------------------------------------------------
 *
 * instances.c
 *	  Hosted instances (one per subscription, running on Kubernetes): the
 *	  instance status machine, the settings, and the commit-time wake-up of
 *	  the reconciler.  Tables, templates, manifests and the money rules are
 *	  in sql/parts/70_instances.sql .. 73_instance_routes.sql; the reconciler
 *	  is bgworker/provisioner.c.
 *
 * THE table below is the whole machine of the observed status: a (status,
 * event) pair that is not in it is an illegal transition and raises PT409.
 * SQL applies every status change through paas.instance_transition(status,
 * event); nothing else writes paas.instances.status (the INSERT of a new,
 * PENDING instance aside).
 *
 * Statuses:
 *	  PENDING		 wanted, nothing applied yet (a new or recreated instance)
 *	  PROVISIONING	 applied; the rollout has not completed
 *	  RUNNING		 the rollout completed (kubectl rollout status rule)
 *	  DEGRADED		 was RUNNING, now unavailable (crash loop, pod lost)
 *	  FAILED		 never reached RUNNING within paas.instance_start_deadline;
 *					 its subscription was refunded; objects are removed
 *	  STOPPED		 scaled to zero, ingress removed, data kept (unpaid)
 *	  DELETING		 the subscription ended; objects are being removed
 *	  DELETED		 objects removed (the volume is kept for
 *					 paas.instance_data_retention, then deleted)
 *
 * Events (all but the first three come from the reconciler's observations):
 *	  delete, recreate, fail	the money rules (subscription ended, revived;
 *								the start deadline passed)
 *	  ready, progressing, unhealthy, stopped, deleted
 *								what the reconciler saw after applying
 *
 * Rules a reader must know:
 *	  - desired state and generation are separate columns; the status is
 *		only ever what was observed, so "stopped" is legal only once the
 *		Deployment is at zero replicas and the ingress is gone;
 *	  - nothing observed revives a FAILED, DELETING or DELETED instance:
 *		only "recreate" (a paid revival of the subscription) does;
 *	  - FAILED stays FAILED while its objects are removed ("delete" and
 *		"deleted" keep it), so the owner sees why it ended;
 *	  - "unhealthy" is DEGRADED only for an instance that was RUNNING; one
 *		that never started stays PROVISIONING with the reason in its
 *		message, until it starts or the deadline fails it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "fsm.h"
#include "instances.h"
#include "paas.h"

/* ---- the machine -------------------------------------------------------- */

typedef enum InstState
{
	IS_PENDING,
	IS_PROVISIONING,
	IS_RUNNING,
	IS_DEGRADED,
	IS_FAILED,
	IS_STOPPED,
	IS_DELETING,
	IS_DELETED,
	IS_COUNT
} InstState;

static const char *const inst_state_names[IS_COUNT] = {
	"PENDING", "PROVISIONING", "RUNNING", "DEGRADED", "FAILED", "STOPPED",
	"DELETING", "DELETED"
};

typedef enum InstEvent
{
	IE_READY,					/* rollout complete */
	IE_PROGRESSING,				/* applied, rollout under way */
	IE_UNHEALTHY,				/* pods crash, images do not pull, deadline */
	IE_STOPPED,					/* zero replicas, no ingress */
	IE_FAIL,					/* start deadline passed (refunded) */
	IE_DELETE,					/* subscription ended */
	IE_DELETED,					/* objects removed */
	IE_RECREATE,				/* the subscription was paid again */
	IE_COUNT
} InstEvent;

static const char *const inst_event_names[IE_COUNT] = {
	"ready", "progressing", "unhealthy", "stopped", "fail", "delete",
	"deleted", "recreate"
};

#define P	IS_PENDING
#define V	IS_PROVISIONING
#define R	IS_RUNNING
#define D	IS_DEGRADED
#define F	IS_FAILED
#define S	IS_STOPPED
#define G	IS_DELETING
#define Z	IS_DELETED
#define X	(-1)				/* illegal */

/* inst_next[event][state]: columns P V R D F S G Z */
static const int inst_next[IE_COUNT][IS_COUNT] = {
	/*							P  V  R  D  F  S  G  Z */
	[IE_READY] =			{R, R, R, R, X, R, X, X},
	[IE_PROGRESSING] =		{V, V, V, D, X, V, X, X},
	[IE_UNHEALTHY] =		{V, V, D, D, X, V, X, X},
	[IE_STOPPED] =			{S, S, S, S, X, S, X, X},
	[IE_FAIL] =				{F, F, X, X, F, X, X, X},
	[IE_DELETE] =			{G, G, G, G, F, G, G, X},
	[IE_DELETED] =			{X, X, X, X, F, X, Z, Z},
	[IE_RECREATE] =			{X, X, X, X, P, X, P, P},
};

#undef P
#undef V
#undef R
#undef D
#undef F
#undef S
#undef G
#undef Z
#undef X

static const PaasMachine inst_machine = {
	"instance", inst_state_names, IS_COUNT, inst_event_names, IE_COUNT, &inst_next[0][0]
};

/*
 * paas.instance_transition(status text, event text) -> text: the next
 * status.  PT409 when the machine does not allow the event in that status;
 * 22023 for an unknown status or event (a programming error of the caller).
 */
PG_FUNCTION_INFO_V1(paas_instance_transition);
Datum
paas_instance_transition(PG_FUNCTION_ARGS)
{
	int			state;
	int			event;
	int			next;

	paas_fsm_decode(&inst_machine, fcinfo, &state, &event);
	next = paas_fsm_next(&inst_machine, state, event);
	if (next < 0)
		ereport(ERROR,
				(errcode(ERRCODE_PAAS_CONFLICT),
				 errmsg("illegal instance status transition: %s is not allowed in status %s",
						inst_event_names[event], inst_state_names[state]),
				 state == IS_DELETED || state == IS_FAILED ?
				 errhint("An ended instance comes back only when its subscription is paid again.") : 0));
	PG_RETURN_TEXT_P(cstring_to_text(inst_state_names[next]));
}

/* paas.instance_transition_allowed(status text, event text) -> boolean */
PG_FUNCTION_INFO_V1(paas_instance_transition_allowed);
Datum
paas_instance_transition_allowed(PG_FUNCTION_ARGS)
{
	int			state;
	int			event;

	paas_fsm_decode(&inst_machine, fcinfo, &state, &event);
	PG_RETURN_BOOL(paas_fsm_next(&inst_machine, state, event) >= 0);
}

/* paas.instance_transitions() -> setof (status, event, next_status) */
PG_FUNCTION_INFO_V1(paas_instance_transitions);
Datum
paas_instance_transitions(PG_FUNCTION_ARGS)
{
	paas_fsm_table(&inst_machine, fcinfo);
	return (Datum) 0;
}

/* ---- settings ----------------------------------------------------------- */

char	   *paas_apps_domain = NULL;
char	   *paas_ingress_class = NULL;
char	   *paas_cert_issuer = NULL;
char	   *paas_ingress_namespace = NULL;
char	   *paas_storage_class = NULL;
int			paas_instance_data_retention_s = 7 * 24 * 3600;
int			paas_instance_start_deadline_s = 30 * 60;
int			paas_instance_resync_interval_s = 300;
char	   *paas_k8s_api_url = NULL;
char	   *paas_k8s_token_file = NULL;
char	   *paas_k8s_ca_file = NULL;
int			paas_k8s_timeout_ms = 10000;
int			paas_provisioner_concurrency = 8;
int			paas_provisioner_batch = 100;

PaasProvisionerShared *paas_provisioner_shared = NULL;

static bool
check_apps_domain(char **newval, void **extra, GucSource source)
{
	const char *s = *newval;
	int			label = 0;

	if (s == NULL || s[0] == '\0' || strlen(s) > 200)
	{
		GUC_check_errdetail("paas.apps_domain must be a DNS name of at most 200 characters.");
		return false;
	}
	for (const char *p = s; *p; p++)
	{
		if (*p == '.')
		{
			if (label == 0)
				break;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
		{
			label = 0;
			break;
		}
		label++;
	}
	if (label == 0)
	{
		GUC_check_errdetail("paas.apps_domain must be lower-case DNS labels separated by dots.");
		return false;
	}
	return true;
}

void
paas_instances_init(void)
{
	DefineCustomStringVariable("paas.apps_domain",
							   "DNS domain under which instances are published.",
							   "An instance is reached at https://<instance>.<paas.apps_domain>.",
							   &paas_apps_domain, "apps.paas.local",
							   PGC_SIGHUP, 0, check_apps_domain, NULL, NULL);
	DefineCustomStringVariable("paas.ingress_class",
							   "ingressClassName of the instances' Ingress objects.",
							   NULL, &paas_ingress_class, "nginx",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.cert_issuer",
							   "cert-manager ClusterIssuer named on the instances' Ingress objects.",
							   NULL, &paas_cert_issuer, "letsencrypt",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.ingress_namespace",
							   "Namespace of the ingress controller (allowed in by the NetworkPolicy).",
							   NULL, &paas_ingress_namespace, "ingress-nginx",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.storage_class",
							   "storageClassName of the instances' volumes; empty: the cluster's default.",
							   NULL, &paas_storage_class, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.instance_data_retention",
							"How long the volume of an ended instance is kept.",
							"After it the volume is deleted.",
							&paas_instance_data_retention_s, 7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.instance_start_deadline",
							"Time a new instance has to reach RUNNING.",
							"Past it the instance fails and its subscription is refunded in full.",
							&paas_instance_start_deadline_s, 30 * 60, 1, 7 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.instance_resync_interval",
							"Time between two resyncs of every object with the Kubernetes API.",
							"A resync lists the objects paas manages and repairs what drifted.",
							&paas_instance_resync_interval_s, 300, 1, 7 * 24 * 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.k8s_api_url",
							   "URL of the Kubernetes API server.",
							   "Empty: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (in-cluster).",
							   &paas_k8s_api_url, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.k8s_token_file",
							   "File holding the bearer token for the Kubernetes API (re-read when it changes).",
							   NULL, &paas_k8s_token_file,
							   "/var/run/secrets/kubernetes.io/serviceaccount/token",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("paas.k8s_ca_file",
							   "CA bundle that signs the Kubernetes API server's certificate.",
							   NULL, &paas_k8s_ca_file,
							   "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.k8s_timeout",
							"Time limit of one call to the Kubernetes API.",
							NULL, &paas_k8s_timeout_ms, 10000, 100, 300000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.provisioner_concurrency",
							"Instances the provisioner reconciles at the same time.",
							"Each has at most one API call in flight.",
							&paas_provisioner_concurrency, 8, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("paas.provisioner_batch",
							"Instances and namespaces the provisioner claims in one transaction.",
							NULL, &paas_provisioner_batch, 100, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
}

static Interval *
seconds_interval(int seconds)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (int64) seconds * USECS_PER_SEC;
	return iv;
}

/*
 * paas.instance_config() -> record: the settings the SQL of instances needs,
 * as typed values (intervals for the durations).
 */
PG_FUNCTION_INFO_V1(paas_instance_config);
Datum
paas_instance_config(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = CStringGetTextDatum(paas_apps_domain);
	values[1] = CStringGetTextDatum(paas_ingress_class);
	values[2] = CStringGetTextDatum(paas_cert_issuer);
	values[3] = CStringGetTextDatum(paas_ingress_namespace);
	values[4] = CStringGetTextDatum(paas_storage_class);
	values[5] = IntervalPGetDatum(seconds_interval(paas_instance_data_retention_s));
	values[6] = IntervalPGetDatum(seconds_interval(paas_instance_start_deadline_s));
	values[7] = IntervalPGetDatum(seconds_interval(paas_instance_resync_interval_s));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---- wake-up at commit -------------------------------------------------- */

static bool wake_pending = false;
static bool wake_registered = false;

static void
wake_at_commit(XactEvent event, void *arg)
{
	if (!wake_pending)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		Latch	   *latch = NULL;

		if (paas_provisioner_shared != NULL)
		{
			SpinLockAcquire(&paas_provisioner_shared->mutex);
			if (paas_provisioner_shared->pid != 0)
				latch = paas_provisioner_shared->latch;
			SpinLockRelease(&paas_provisioner_shared->mutex);
		}
		if (latch != NULL)
			SetLatch(latch);
		wake_pending = false;
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		wake_pending = false;
}

/*
 * paas.instance_wake() -> void: when the calling transaction commits, the
 * provisioner wakes at once instead of at its next tick.  Nothing happens
 * on rollback, or when no provisioner runs.
 */
PG_FUNCTION_INFO_V1(paas_instance_wake);
Datum
paas_instance_wake(PG_FUNCTION_ARGS)
{
	if (!wake_registered)
	{
		RegisterXactCallback(wake_at_commit, NULL);
		wake_registered = true;
	}
	wake_pending = true;
	PG_RETURN_VOID();
}

/*
 * paas.provisioner_state() -> record: the provisioner's published state.
 * "running" is false when the module was not preloaded or no provisioner
 * runs.
 */
PG_FUNCTION_INFO_V1(paas_provisioner_state);
Datum
paas_provisioner_state(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[14];
	bool		nulls[14] = {false};
	PaasProvisionerShared snap;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(&snap, 0, sizeof(snap));
	if (paas_provisioner_shared != NULL)
	{
		SpinLockAcquire(&paas_provisioner_shared->mutex);
		memcpy(&snap, paas_provisioner_shared, sizeof(snap));
		SpinLockRelease(&paas_provisioner_shared->mutex);
	}
	values[0] = BoolGetDatum(snap.pid != 0);
	values[1] = Int32GetDatum(snap.pid);
	nulls[1] = snap.pid == 0;
	values[2] = BoolGetDatum(snap.configured);
	values[3] = TimestampTzGetDatum(snap.started_at);
	nulls[3] = snap.started_at == 0;
	values[4] = TimestampTzGetDatum(snap.last_pass);
	nulls[4] = snap.last_pass == 0;
	values[5] = TimestampTzGetDatum(snap.last_audit);
	nulls[5] = snap.last_audit == 0;
	values[6] = Int64GetDatum((int64) snap.passes);
	values[7] = Int64GetDatum((int64) snap.units);
	values[8] = Int64GetDatum((int64) snap.api_calls);
	values[9] = Int64GetDatum((int64) snap.api_errors);
	values[10] = Int64GetDatum((int64) snap.audit_calls);
	values[11] = Int64GetDatum((int64) snap.audits);
	snap.last_error[sizeof(snap.last_error) - 1] = '\0';
	values[12] = CStringGetTextDatum(snap.last_error);
	nulls[12] = snap.last_error[0] == '\0';
	snap.last_resync[sizeof(snap.last_resync) - 1] = '\0';
	values[13] = CStringGetTextDatum(snap.last_resync);
	nulls[13] = snap.last_resync[0] == '\0';
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ---- subscriptions whose status changed, per statement ------------------- */

/*
 * A row trigger notes the subscriptions whose status an UPDATE changed
 * (only those: a renewal run's batches of unchanged statuses cost nothing),
 * and the statement trigger takes them all at once to apply them set-based.
 * The list lives in the transaction's memory and is forgotten at its end.
 */
static List *noted_subscriptions = NIL;
static bool noted_registered = false;

static void
forget_noted(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		noted_subscriptions = NIL;
}

/* paas.instance_note(subscription uuid) -> void */
PG_FUNCTION_INFO_V1(paas_instance_note);
Datum
paas_instance_note(PG_FUNCTION_ARGS)
{
	MemoryContext old;
	pg_uuid_t  *id;

	if (!noted_registered)
	{
		RegisterXactCallback(forget_noted, NULL);
		noted_registered = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	id = palloc(sizeof(pg_uuid_t));
	memcpy(id, PG_GETARG_UUID_P(0), sizeof(pg_uuid_t));
	noted_subscriptions = lappend(noted_subscriptions, id);
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}

/* paas.instance_noted() -> uuid[]: the noted subscriptions (NULL: none), forgotten */
PG_FUNCTION_INFO_V1(paas_instance_noted);
Datum
paas_instance_noted(PG_FUNCTION_ARGS)
{
	int			n = list_length(noted_subscriptions);
	Datum	   *items;
	ListCell   *lc;
	int			i = 0;
	ArrayType  *arr;

	if (n == 0)
		PG_RETURN_NULL();
	items = palloc(sizeof(Datum) * n);
	foreach(lc, noted_subscriptions)
		items[i++] = UUIDPGetDatum((pg_uuid_t *) lfirst(lc));
	arr = construct_array(items, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR);
	list_free_deep(noted_subscriptions);
	noted_subscriptions = NIL;
	PG_RETURN_ARRAYTYPE_P(arr);
}
