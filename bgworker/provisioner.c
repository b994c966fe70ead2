/*-------------------------------------------------------------------------
 *
 * provisioner.c
 *	  The reconciler of hosted instances: a background worker of its own
 *	  ("paas provisioner", not a job of the job loop) that drives the
 *	  Kubernetes API with libcurl until the cluster holds what the database
 *	  says it should.
 *
 * Each pass
 *	  1. claims due units (customer namespaces first, then instances) with
 *		 paas.provisioner_claim() in one short transaction; a unit arrives as
 *		 the list of API calls that converge it (built in SQL,
 *		 sql/parts/72_instance_reconcile.sql);
 *	  2. sends the calls with NO transaction open, up to
 *		 paas.provisioner_concurrency units at a time (a curl multi handle,
 *		 one call in flight per unit, the calls of a unit in order, a unit
 *		 stopping at its first failed call); objects are applied by
 *		 server-side apply: PATCH application/apply-patch+yaml,
 *		 fieldManager=paas, force=true;
 *	  3. reports each unit's answers with paas.provisioner_report() in a
 *		 transaction of its own (SQL decides status, backoff, next look).
 *	  Watches of the Deployments and pods bring rollouts' progress as
 *	  events, so a rollout is seen complete (or stuck, and why) when it is,
 *	  not at the next look.
 *	  Every paas.instance_resync_interval it lists each kind paas manages by
 *	  label (500 a page) into paas.provisioner_audit_page() and lets
 *	  paas.provisioner_audit_end() mark what drifted.  (The Nodes reach the
 *	  node registry through a worker of their own, bgworker/nodesync.c.)
 *
 * Rules a reader must know:
 *	  - level-triggered: the worker keeps no state of its own that matters;
 *		killed at any point it loses nothing (claims are leases, released at
 *		start by paas.provisioner_start()) and duplicates nothing (apply is
 *		idempotent, names are fixed);
 *	  - it sleeps on its latch (and the watch's socket) until the next due unit (at most
 *		paas.tick_interval); a transaction that makes work wakes it at commit
 *		(paas.instance_wake(), extension/instances.c); failing units back
 *		off in SQL, so nothing spins;
 *	  - connection: bgworker/k8s_client.c, as for the other workers
 *		(paas.k8s_api_url or a pod's environment, the token re-read when its
 *		file changes, paas.k8s_ca_file, paas.k8s_timeout);
 *	  - answers are kept only when SQL asked for them (Deployments, pods) or
 *		when they are errors; Secret data is sent, never logged, and lists
 *		are asked for as object metadata only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "bgw.h"
#include "instances.h"
#include "k8s_client.h"
#include "paas.h"

PGDLLEXPORT void paas_provisioner_main(Datum main_arg) pg_attribute_noreturn();

#define PASS_BUDGET_MS 5000		/* claims of one pass before looking at the rest */

/* ---- shared state -------------------------------------------------------- */

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
prov_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PaasProvisionerShared)));
}

static void
prov_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	paas_provisioner_shared = ShmemInitStruct("paas provisioner",
											  sizeof(PaasProvisionerShared), &found);
	if (!found)
	{
		memset(paas_provisioner_shared, 0, sizeof(PaasProvisionerShared));
		SpinLockInit(&paas_provisioner_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
paas_provisioner_register(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = prov_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = prov_shmem_startup;

	paas_bgw_register("paas_provisioner_main", "paas provisioner", 2);
}

#define SHARED_UPDATE(stmt) \
	do { \
		if (paas_provisioner_shared != NULL) \
		{ \
			SpinLockAcquire(&paas_provisioner_shared->mutex); \
			stmt; \
			SpinLockRelease(&paas_provisioner_shared->mutex); \
		} \
	} while (0)

static void
clear_state(int code, Datum arg)
{
	SHARED_UPDATE((paas_provisioner_shared->pid = 0, paas_provisioner_shared->latch = NULL));
}

static void
note_error(const char *what)
{
	SHARED_UPDATE(strlcpy(paas_provisioner_shared->last_error, what,
						  sizeof(paas_provisioner_shared->last_error)));
}

/* ---- transactions --------------------------------------------------------- */

/* Whether an extension version with instances is installed here. */
static bool
extension_ready(void)
{
	bool		ready;
	int			ret;

	paas_bgw_begin_tx("paas provisioner: looking for the extension");
	ret = SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'paas' "
					  "AND pg_catalog.to_regprocedure('paas.provisioner_claim(integer)') IS NOT NULL",
					  true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "looking up the paas extension failed: %d", ret);
	ready = SPI_processed > 0;
	paas_bgw_end_tx();
	return ready;
}

/* Runs one statement returning a single text value (or NULL) in its own tx. */
static char *
run_text(const char *activity, const char *sql, int nargs, Oid *types, Datum *values,
		 const char *nulls, MemoryContext cxt)
{
	char	   *out = NULL;
	int			ret;

	paas_bgw_begin_tx(activity);
	ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "%s failed: %d", sql, ret);
	if (SPI_processed > 0)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL)
			out = MemoryContextStrdup(cxt, v);
	}
	paas_bgw_end_tx();
	return out;
}

/* ---- connection to the API ------------------------------------------------ */

/*
 * Where the API is, the token and the CA: bgworker/k8s_client.c.  The
 * provisioner adds two header lists of its own (server-side apply, and
 * object metadata only), built again with the client's whenever the token
 * changes.
 */
static void provisioner_new_headers(void);

static K8sClient client = {.agent = "paas-provisioner/" PAAS_VERSION,
.before_new_headers = provisioner_new_headers};
static struct curl_slist *hdr_apply;
static struct curl_slist *hdr_meta;

static struct curl_slist *
headers_with(const char *const *lines)
{
	struct curl_slist *h = NULL;

	for (; *lines; lines++)
		h = curl_slist_append(h, *lines);
	if (client.auth[0] != '\0')
		h = curl_slist_append(h, client.auth);
	return h;
}

static void watches_drop_headers(void);

/*
 * The token changed (client.auth holds the new one): a watch that still
 * points at the old lists is stopped first (watches_drop_headers), then the
 * provisioner's own lists are built again.
 */
static void
provisioner_new_headers(void)
{
	static const char *const apply_lines[] = {
		"Content-Type: application/apply-patch+yaml", "Accept: application/json", NULL};
	static const char *const meta_lines[] = {
		"Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json", NULL};

	watches_drop_headers();
	curl_slist_free_all(hdr_apply);
	curl_slist_free_all(hdr_meta);
	hdr_apply = headers_with(apply_lines);
	hdr_meta = headers_with(meta_lines);
}

/* ---- one HTTP exchange ---------------------------------------------------- */

typedef struct Call
{
	const char *verb;			/* APPLY, DELETE, GET */
	const char *path;
	const char *body;			/* APPLY only */
	const char *tag;
	bool		want;			/* keep the answer's body */
	bool		meta;			/* list: object metadata only */
	/* outcome */
	long		code;			/* 0: no answer */
	StringInfoData answer;
	char		error[CURL_ERROR_SIZE];
} Call;

/* Prepares "h" for the call; the URL is allocated in the current context. */
static void
setup_call(CURL *h, Call *c)
{
	const char *sep = strchr(c->path, '?') ? "&" : "?";
	char	   *url;

	if (strcmp(c->verb, "APPLY") == 0)
		url = psprintf("%s%s%sfieldManager=paas&force=true", client.base, c->path, sep);
	else if (strcmp(c->verb, "DELETE") == 0)
		url = psprintf("%s%s%spropagationPolicy=Background", client.base, c->path, sep);
	else
		url = psprintf("%s%s", client.base, c->path);
	resetStringInfo(&c->answer);
	k8s_setup_get(&client, h, url, &c->answer, c->error, (long) paas_k8s_timeout_ms);
	if (strcmp(c->verb, "APPLY") == 0)
	{
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr_apply);
	}
	else if (strcmp(c->verb, "DELETE") == 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	else if (c->meta)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr_meta);
	c->code = 0;
}

/* Records the outcome of a finished transfer in "c". */
static void
finish_call(CURL *h, Call *c, CURLcode rc, bool audit)
{
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->code);
	else
	{
		c->code = 0;
		if (c->error[0] == '\0')
			strlcpy(c->error, curl_easy_strerror(rc), sizeof(c->error));
	}
	SHARED_UPDATE((paas_provisioner_shared->api_calls++,
				   paas_provisioner_shared->audit_calls += audit ? 1 : 0,
				   paas_provisioner_shared->api_errors += (c->code == 0 || c->code >= 500) ? 1 : 0));
	if (c->code == 0)
		note_error(c->error);
}

/* Whether the call failed (a DELETE or GET answering 404 did not). */
static bool
call_failed(const Call *c)
{
	if (c->code == 0)
		return true;
	if (c->code < 300)
		return false;
	return !(c->code == 404 && (strcmp(c->verb, "DELETE") == 0 || strcmp(c->verb, "GET") == 0));
}

/* ---- units ---------------------------------------------------------------- */

typedef struct Unit
{
	char	   *kind;			/* namespace | instance */
	char	   *id;
	int64		generation;
	int			ncalls;
	Call	   *calls;
	int			done;			/* calls finished */
	bool		stopped;		/* a call failed: the rest is not sent */
} Unit;

static CURLM *multi;
static CURLM *wmulti;			/* the watches (below) */
#define WATCH_RETRY_MS 5000
#define WATCH_MAX_LINE (16 * 1024 * 1024)
#define NWATCHES 2

typedef struct Watch
{
	const char *path;			/* collection path with its label selector */
	const char *fn;				/* SQL function taking the lines */
	CURL	   *h;
	bool		active;
	StringInfoData buf;
	char		rv[64];
	char		error[CURL_ERROR_SIZE];
	TimestampTz failed_at;
} Watch;

static Watch watches[NWATCHES] = {
	{"/apis/apps/v1/deployments?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpaas",
	"paas.provisioner_watch_events"},
	{"/api/v1/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dpaas",
	"paas.provisioner_watch_pods"},
};

static CURL **lanes;
static int	nlanes;
static CURL *sync_handle;

static void
release_curl(int code, Datum arg)
{
	if (multi)
	{
		for (int i = 0; i < nlanes; i++)
			if (lanes[i])
			{
				curl_multi_remove_handle(multi, lanes[i]);
				curl_easy_cleanup(lanes[i]);
			}
		curl_multi_cleanup(multi);
	}
	if (sync_handle)
		curl_easy_cleanup(sync_handle);
	for (int i = 0; i < NWATCHES && wmulti; i++)
		if (watches[i].h)
		{
			curl_multi_remove_handle(wmulti, watches[i].h);
			curl_easy_cleanup(watches[i].h);
		}
	if (wmulti)
		curl_multi_cleanup(wmulti);
	curl_slist_free_all(hdr_apply);
	curl_slist_free_all(client.hdr_json);
	curl_slist_free_all(hdr_meta);
}

/* Claims up to n units; their calls are allocated in "cxt". */
static List *
claim_units(int n, MemoryContext cxt)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(n)};
	List	   *units = NIL;
	Unit	   *cur = NULL;
	int			ret;

	paas_bgw_begin_tx("paas provisioner: claiming units");
	ret = SPI_execute_with_args("SELECT unit, id::text, generation, seq, verb, path, body, want, tag "
								"FROM paas.provisioner_claim($1)",
								1, types, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "paas.provisioner_claim failed: %d", ret);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	td = SPI_tuptable->tupdesc;
		char	   *kind = SPI_getvalue(tup, td, 1);
		char	   *id = SPI_getvalue(tup, td, 2);
		char	   *gen = SPI_getvalue(tup, td, 3);
		char	   *seq = SPI_getvalue(tup, td, 4);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		if (cur == NULL || strcmp(cur->id, id) != 0 || strcmp(cur->kind, kind) != 0)
		{
			cur = palloc0(sizeof(Unit));
			cur->kind = pstrdup(kind);
			cur->id = pstrdup(id);
			cur->generation = strtoll(gen, NULL, 10);
			cur->calls = palloc0(sizeof(Call) * 16);
			units = lappend(units, cur);
		}
		if (seq != NULL)
		{
			Call	   *c;
			char	   *body = SPI_getvalue(tup, td, 7);
			char	   *want = SPI_getvalue(tup, td, 8);

			if (cur->ncalls > 0 && cur->ncalls % 16 == 0)
				cur->calls = repalloc(cur->calls, sizeof(Call) * (cur->ncalls + 16));
			c = &cur->calls[cur->ncalls++];
			memset(c, 0, sizeof(Call));
			c->verb = pstrdup(SPI_getvalue(tup, td, 5));
			c->path = pstrdup(SPI_getvalue(tup, td, 6));
			c->body = body ? pstrdup(body) : NULL;
			c->want = want && want[0] == 't';
			c->tag = pstrdup(SPI_getvalue(tup, td, 9));
			initStringInfo(&c->answer);
		}
		MemoryContextSwitchTo(old);
	}
	paas_bgw_end_tx();
	return units;
}

static Datum
text_array(int n, char **items, bool *nulls)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};

	if (n == 0)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	for (int i = 0; i < n; i++)
		d[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(items[i]);
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

static bool watch_healthy(void);

/* Reports the answers of one unit in a transaction of its own. */
static void
report_unit(Unit *u)
{
	int			n = u->done;
	char	  **verbs = palloc(sizeof(char *) * Max(n, 1));
	char	  **tags = palloc(sizeof(char *) * Max(n, 1));
	char	  **bodies = palloc(sizeof(char *) * Max(n, 1));
	char	  **errors = palloc(sizeof(char *) * Max(n, 1));
	bool	   *no = palloc0(sizeof(bool) * Max(n, 1));
	bool	   *nob = palloc0(sizeof(bool) * Max(n, 1));
	bool	   *noe = palloc0(sizeof(bool) * Max(n, 1));
	Datum	   *codes = palloc(sizeof(Datum) * Max(n, 1));
	Oid			types[9] = {TEXTOID, TEXTOID, INT8OID, TEXTARRAYOID, TEXTARRAYOID,
	INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, BOOLOID};
	Datum		values[9];
	int			ret;

	for (int i = 0; i < n; i++)
	{
		Call	   *c = &u->calls[i];

		verbs[i] = (char *) c->verb;
		tags[i] = (char *) c->tag;
		codes[i] = Int32GetDatum((int32) c->code);
		/* the body is kept when SQL wants it, or as the error's explanation */
		nob[i] = !(c->want || c->code >= 300) || c->answer.len == 0;
		bodies[i] = c->answer.data;
		noe[i] = c->error[0] == '\0';
		errors[i] = c->error;
	}
	paas_bgw_begin_tx("paas provisioner: reporting");
	values[0] = CStringGetTextDatum(u->kind);
	values[1] = CStringGetTextDatum(u->id);
	values[2] = Int64GetDatum(u->generation);
	values[3] = text_array(n, verbs, no);
	values[4] = text_array(n, tags, no);
	values[5] = n == 0 ? PointerGetDatum(construct_empty_array(INT4OID))
		: PointerGetDatum(construct_array(codes, n, INT4OID, 4, true, TYPALIGN_INT));
	values[6] = text_array(n, bodies, nob);
	values[7] = text_array(n, errors, noe);
	values[8] = BoolGetDatum(watch_healthy());
	ret = SPI_execute_with_args("SELECT paas.provisioner_report($1, $2::uuid, $3, $4, $5, $6, $7, $8, $9)",
								9, types, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "paas.provisioner_report failed: %d", ret);
	paas_bgw_end_tx();
	SHARED_UPDATE(paas_provisioner_shared->units++);
}

static void
ensure_lanes(void)
{
	int			want = paas_provisioner_concurrency;

	if (multi == NULL)
	{
		multi = curl_multi_init();
		if (multi == NULL)
			elog(ERROR, "curl_multi_init failed");
		curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
		lanes = MemoryContextAllocZero(TopMemoryContext, sizeof(CURL *) * 64);
	}
	for (; nlanes < want; nlanes++)
	{
		lanes[nlanes] = curl_easy_init();
		if (lanes[nlanes] == NULL)
			elog(ERROR, "curl_easy_init failed");
	}
}

/* Starts the next call of the lane's unit; false when the unit is finished. */
static bool
start_call(int l, Unit *u, int *active)
{
	Call	   *c;

	if (u == NULL || u->stopped || u->done >= u->ncalls)
		return false;
	c = &u->calls[u->done];
	setup_call(lanes[l], c);
	curl_easy_setopt(lanes[l], CURLOPT_PRIVATE, (void *) (intptr_t) l);
	curl_multi_add_handle(multi, lanes[l]);
	(*active)++;
	return true;
}

/*
 * Sends the calls of "units": each lane carries one unit at a time, its
 * calls in order, and takes the next unit when it is done.  Units are
 * reported as they finish.
 */
static void
run_units(List *units)
{
	int			n = list_length(units);
	int			next = 0;
	int			active = 0;
	int			width = Min(paas_provisioner_concurrency, nlanes);
	Unit	  **lane_unit = palloc0(sizeof(Unit *) * width);

	for (int l = 0; l < width && next < n; l++)
	{
		while (next < n)
		{
			lane_unit[l] = (Unit *) list_nth(units, next++);
			if (start_call(l, lane_unit[l], &active))
				break;
			report_unit(lane_unit[l]);
			lane_unit[l] = NULL;
		}
	}
	pgstat_report_activity(STATE_RUNNING, "paas provisioner: calling the Kubernetes API");
	while (active > 0)
	{
		int			running;
		CURLMsg    *msg;
		int			left;

		CHECK_FOR_INTERRUPTS();
		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			char	   *lp = NULL;
			int			l;
			Unit	   *u;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &lp);
			l = (int) (intptr_t) lp;
			u = lane_unit[l];
			finish_call(lanes[l], &u->calls[u->done], msg->data.result, false);
			curl_multi_remove_handle(multi, lanes[l]);
			active--;
			if (call_failed(&u->calls[u->done]))
				u->stopped = true;
			u->done++;
			while (!start_call(l, lane_unit[l], &active))
			{
				report_unit(lane_unit[l]);
				lane_unit[l] = NULL;
				if (next >= n)
					break;
				lane_unit[l] = (Unit *) list_nth(units, next++);
			}
		}
		if (active > 0)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
}

/* ---- resync ----------------------------------------------------- */

/* GET one page synchronously; the answer is in c->answer. */
static void
get_sync(Call *c, bool audit)
{
	CURLcode	rc;

	if (sync_handle == NULL && (sync_handle = curl_easy_init()) == NULL)
		elog(ERROR, "curl_easy_init failed");
	setup_call(sync_handle, c);
	rc = curl_easy_perform(sync_handle);
	finish_call(sync_handle, c, rc, audit);
}

/*
 * Reads every page of a list into "fn" (SQL taking the tag and the page,
 * returning the continue token).  false when a page could not be read.
 */
static bool
read_list(const char *tag, const char *path, bool meta, const char *fn, MemoryContext cxt, bool audit)
{
	char	   *token = NULL;
	Call		c;
	bool		ok = true;

	memset(&c, 0, sizeof(c));
	initStringInfo(&c.answer);
	for (;;)
	{
		char	   *esc = token ? curl_easy_escape(NULL, token, 0) : NULL;
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		values[2];
		char	   *sql;

		c.verb = "GET";
		c.tag = tag;
		c.meta = meta;
		c.path = psprintf("%s%slimit=500%s%s", path, strchr(path, '?') ? "&" : "?",
						  esc ? "&continue=" : "", esc ? esc : "");
		if (esc)
			curl_free(esc);
		get_sync(&c, audit);
		if (c.code != 200)
		{
			ok = false;
			break;
		}
		values[0] = CStringGetTextDatum(tag);
		values[1] = CStringGetTextDatum(c.answer.data);
		sql = psprintf("SELECT %s($1, $2::jsonb)", fn);
		token = run_text("paas provisioner: resync page", sql, 2, types, values, NULL, cxt);
		if (token == NULL || token[0] == '\0')
			break;
		CHECK_FOR_INTERRUPTS();
	}
	pfree(c.answer.data);
	return ok;
}

static void
resync(MemoryContext cxt)
{
	List	   *tags = NIL;
	List	   *paths = NIL;
	List	   *metas = NIL;
	ListCell   *a, *b, *m;
	bool		complete = true;
	char	   *result;
	Oid			types[1] = {BOOLOID};
	Datum		values[1];
	int			ret;

	paas_bgw_begin_tx("paas provisioner: starting a resync");
	ret = SPI_execute("SELECT paas.provisioner_audit_begin()", false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "paas.provisioner_audit_begin failed: %d", ret);
	ret = SPI_execute("SELECT tag, path, meta FROM paas.provisioner_audit_paths()", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "paas.provisioner_audit_paths failed: %d", ret);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		MemoryContext old;
		char	   *t = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		char	   *p = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
		char	   *mt = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3);

		old = MemoryContextSwitchTo(cxt);
		tags = lappend(tags, pstrdup(t));
		paths = lappend(paths, pstrdup(p));
		metas = lappend_int(metas, mt && mt[0] == 't');
		MemoryContextSwitchTo(old);
	}
	paas_bgw_end_tx();

	forthree(a, tags, b, paths, m, metas)
	{
		if (!read_list((char *) lfirst(a), (char *) lfirst(b), lfirst_int(m) != 0,
					   "paas.provisioner_audit_page", cxt, true))
		{
			complete = false;
			break;
		}
	}
	values[0] = BoolGetDatum(complete);
	result = run_text("paas provisioner: ending a resync", "SELECT paas.provisioner_audit_end($1)::text",
					  1, types, values, NULL, cxt);
	SHARED_UPDATE((paas_provisioner_shared->audits++,
				   paas_provisioner_shared->last_audit = GetCurrentTimestamp(),
				   strlcpy(paas_provisioner_shared->last_resync, result ? result : "",
						   sizeof(paas_provisioner_shared->last_resync))));
}

/* ---- watches ---------------------------------------------------------------- */

/*
 * Rollouts arrive as events, not by polling: a watch of the Deployments and
 * one of the pods paas manages (list-then-watch, as client-go's informers
 * do), serviced on every pass and whenever a socket is readable.  Lines of
 * a stream go to its SQL function in batches (paas.provisioner_watch_events:
 * readiness and drift; paas.provisioner_watch_pods: the pod that runs and
 * its waiting reasons); the resourceVersion it returns resumes the watch
 * when the server ends it (timeoutSeconds), and "GONE" (410: the version is
 * too old) starts over from a fresh list.  A watch that fails is retried
 * after WATCH_RETRY_MS; the reconciler's looks and the resync stay, so a
 * lost event only costs a later look.
 */
static size_t
watch_collect(char *data, size_t size, size_t nmemb, void *userdata)
{
	Watch	   *w = (Watch *) userdata;
	size_t		n = size * nmemb;

	if ((size_t) w->buf.len + n > WATCH_MAX_LINE)
		return 0;				/* a line this long is not an event of ours */
	appendBinaryStringInfo(&w->buf, data, (int) n);
	return n;
}

/* The collection's current resourceVersion (a list of one), or false. */
static bool
watch_list_version(Watch *w, MemoryContext cxt)
{
	Call		c;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *rv;

	memset(&c, 0, sizeof(c));
	initStringInfo(&c.answer);
	c.verb = "GET";
	c.tag = "watch";
	c.meta = true;
	c.path = psprintf("%s&limit=1", w->path);
	get_sync(&c, false);
	if (c.code != 200)
		return false;
	values[0] = CStringGetTextDatum(c.answer.data);
	rv = run_text("paas provisioner: watch start", "SELECT $1::jsonb #>> '{metadata,resourceVersion}'",
				  1, types, values, NULL, cxt);
	if (rv == NULL || strlen(rv) >= sizeof(w->rv))
		return false;
	strlcpy(w->rv, rv, sizeof(w->rv));
	return true;
}

static void
watch_start(Watch *w, MemoryContext cxt)
{
	char	   *url;

	if (wmulti == NULL && (wmulti = curl_multi_init()) == NULL)
		elog(ERROR, "curl_multi_init failed");
	if (w->h == NULL)
	{
		MemoryContext old;

		if ((w->h = curl_easy_init()) == NULL)
			elog(ERROR, "curl_easy_init failed");
		old = MemoryContextSwitchTo(TopMemoryContext);
		initStringInfo(&w->buf);
		MemoryContextSwitchTo(old);
	}
	if (w->rv[0] == '\0' && !watch_list_version(w, cxt))
	{
		w->failed_at = GetCurrentTimestamp();
		return;
	}
	resetStringInfo(&w->buf);
	url = psprintf("%s%s&watch=1&allowWatchBookmarks=true&timeoutSeconds=290&resourceVersion=%s",
				   client.base, w->path, w->rv);
	/* no time limit of its own: the server ends it; silence means a dead peer */
	k8s_setup_get(&client, w->h, url, &w->buf, w->error, 0);
	curl_easy_setopt(w->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(w->h, CURLOPT_LOW_SPEED_TIME, 330L);
	curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, watch_collect);
	curl_easy_setopt(w->h, CURLOPT_WRITEDATA, (void *) w);
	curl_easy_setopt(w->h, CURLOPT_PRIVATE, (void *) w);
	curl_multi_add_handle(wmulti, w->h);
	pfree(url);
	w->active = true;
	SHARED_UPDATE(paas_provisioner_shared->api_calls++);
}

static void
watch_stop(Watch *w, bool failed)
{
	curl_multi_remove_handle(wmulti, w->h);
	w->active = false;
	if (failed)
	{
		/* 410 and the like: start again from a list, a little later */
		w->rv[0] = '\0';
		w->failed_at = GetCurrentTimestamp();
	}
	else
		w->failed_at = 0;		/* the server ended it: resume at once */
}

/*
 * The header lists are about to be freed and built again (a new token, a
 * reload).  libcurl reads a handle's list when it sends the request, and a
 * watch started a moment ago may not have sent it yet (its TLS handshake
 * still under way): every active watch is stopped first, and resumes at
 * once from its resourceVersion with the new lists.
 */
static void
watches_drop_headers(void)
{
	for (int i = 0; i < NWATCHES; i++)
		if (watches[i].active)
			watch_stop(&watches[i], false);
}

/* Hands the complete lines received so far to the watch's SQL function. */
static void
watch_drain(Watch *w, MemoryContext cxt)
{
	char	   *start = w->buf.data;
	char	   *nl;
	List	   *lines = NIL;
	char	  **items;
	bool	   *nulls;
	int			n = 0;
	ListCell   *lc;
	Oid			types[1] = {TEXTARRAYOID};
	Datum		values[1];
	char	   *rv;

	while ((nl = memchr(start, '\n', w->buf.len - (start - w->buf.data))) != NULL)
	{
		if (nl > start)
			lines = lappend(lines, pnstrdup(start, nl - start));
		start = nl + 1;
	}
	if (start > w->buf.data)
	{
		int			rest = w->buf.len - (start - w->buf.data);

		memmove(w->buf.data, start, rest);
		w->buf.len = rest;
		w->buf.data[rest] = '\0';
	}
	if (lines == NIL)
		return;
	items = palloc(sizeof(char *) * list_length(lines));
	nulls = palloc0(sizeof(bool) * list_length(lines));
	foreach(lc, lines)
		items[n++] = (char *) lfirst(lc);
	values[0] = text_array(n, items, nulls);
	rv = run_text("paas provisioner: watch events", psprintf("SELECT %s($1)", w->fn),
				  1, types, values, NULL, cxt);
	if (rv != NULL && strcmp(rv, "GONE") == 0)
		watch_stop(w, true);
	else if (rv != NULL && strlen(rv) < sizeof(w->rv))
		strlcpy(w->rv, rv, sizeof(w->rv));
}

/* Services the watches: reads what arrived, restarts those that ended. */
static void
watch_service(MemoryContext cxt)
{
	int			running;
	CURLMsg    *msg;
	int			left;

	for (int i = 0; i < NWATCHES; i++)
	{
		Watch	   *w = &watches[i];

		if (!w->active && (w->failed_at == 0 ||
						   TimestampDifferenceExceeds(w->failed_at, GetCurrentTimestamp(), WATCH_RETRY_MS)))
			watch_start(w, cxt);
	}
	if (wmulti == NULL)
		return;
	curl_multi_perform(wmulti, &running);
	for (int i = 0; i < NWATCHES; i++)
		if (watches[i].active)
			watch_drain(&watches[i], cxt);
	while ((msg = curl_multi_info_read(wmulti, &left)) != NULL)
	{
		char	   *wp = NULL;
		long		code = 0;
		Watch	   *w;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &wp);
		w = (Watch *) wp;
		if (w == NULL || !w->active)
			continue;
		curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &code);
		watch_drain(w, cxt);
		if (w->active)
			watch_stop(w, msg->data.result != CURLE_OK || code != 200);
		if (msg->data.result != CURLE_OK || code != 200)
			SHARED_UPDATE(paas_provisioner_shared->api_errors++);
	}
}

/* Whether the Deployment watch is open (the reconciler's looks can wait). */
static bool
watch_healthy(void)
{
	return watches[0].active;
}

/* Sockets of the open watches, for the wait on the latch. */
static int
watch_sockets(pgsocket *socks)
{
	int			n = 0;

	for (int i = 0; i < NWATCHES; i++)
	{
		curl_socket_t sock = CURL_SOCKET_BAD;

		if (watches[i].active &&
			curl_easy_getinfo(watches[i].h, CURLINFO_ACTIVESOCKET, &sock) == CURLE_OK &&
			sock != CURL_SOCKET_BAD)
			socks[n++] = (pgsocket) sock;
	}
	return n;
}

/* ---- main ----------------------------------------------------------------- */

/* Milliseconds until the earliest due unit, capped by the tick. */
static long
next_wait_ms(MemoryContext cxt)
{
	char	   *v = run_text("paas provisioner: next due",
							 "SELECT greatest(0, extract(epoch FROM paas.provisioner_next_due() "
							 "- clock_timestamp()) * 1000)::bigint "
							 "WHERE paas.provisioner_next_due() IS NOT NULL",
							 0, NULL, NULL, NULL, cxt);
	long		ms = v ? atol(v) : paas_tick_interval_ms;

	return Max(10, Min(ms, (long) paas_tick_interval_ms));
}

void
paas_provisioner_main(Datum main_arg)
{
	MemoryContext pass_cxt;
	bool		started = false;
	TimestampTz last_resync = 0;
	long		wait_ms = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(paas_database, NULL, 0);
	/* superuser code: nothing a non-superuser can create in public is ever looked up */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * What the provisioner records is observed state it converges again
	 * after any loss (level-triggered): its commits do not wait for a
	 * synchronous standby, so a standby that is away never stops it.
	 */
	SetConfigOption("synchronous_commit", "local", PGC_SUSET, PGC_S_OVERRIDE);

	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "curl_global_init failed");
	before_shmem_exit(clear_state, (Datum) 0);
	before_shmem_exit(release_curl, (Datum) 0);
	SHARED_UPDATE((paas_provisioner_shared->pid = MyProcPid,
				   paas_provisioner_shared->latch = MyLatch,
				   paas_provisioner_shared->started_at = GetCurrentTimestamp()));
	elog(LOG, "paas provisioner started in database \"%s\"", paas_database);

	pass_cxt = AllocSetContextCreate(TopMemoryContext, "paas provisioner pass",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		TimestampTz now;
		TimestampTz pass_start;
		int			units_done = 0;

		if (wait_ms > 0)
		{
			pgsocket	socks[NWATCHES];
			int			nsocks = watch_sockets(socks);
			WaitEventSet *set = CreateWaitEventSet(CurrentMemoryContext, 2 + nsocks);
			WaitEvent	ev;

			AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
			for (int i = 0; i < nsocks; i++)
				AddWaitEventToSet(set, WL_SOCKET_READABLE, socks[i], NULL, NULL);
			(void) WaitEventSetWait(set, wait_ms, &ev, 1, PG_WAIT_EXTENSION);
			FreeWaitEventSet(set);
		}
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			k8s_refresh(&client, true);
		}
		MemoryContextReset(pass_cxt);
		wait_ms = 5000;
		if (!extension_ready())
			continue;
		if (!k8s_resolve(&client))
		{
			SHARED_UPDATE(paas_provisioner_shared->configured = false);
			continue;
		}
		SHARED_UPDATE(paas_provisioner_shared->configured = true);
		if (!started)
		{
			(void) run_text("paas provisioner: releasing old claims",
							"SELECT paas.provisioner_start()::text", 0, NULL, NULL, NULL, pass_cxt);
			started = true;
		}
		k8s_refresh(&client, false);
		ensure_lanes();
		watch_service(pass_cxt);

		pass_start = GetCurrentTimestamp();
		for (;;)
		{
			MemoryContext old = MemoryContextSwitchTo(pass_cxt);
			List	   *units = claim_units(paas_provisioner_batch, pass_cxt);

			MemoryContextSwitchTo(old);
			if (units == NIL)
				break;
			old = MemoryContextSwitchTo(pass_cxt);
			run_units(units);
			MemoryContextSwitchTo(old);
			units_done += list_length(units);
			MemoryContextReset(pass_cxt);
			watch_service(pass_cxt);
			CHECK_FOR_INTERRUPTS();
			if (TimestampDifferenceExceeds(pass_start, GetCurrentTimestamp(), PASS_BUDGET_MS))
				break;
		}

		now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(last_resync, now, paas_instance_resync_interval_s * 1000))
		{
			MemoryContext old = MemoryContextSwitchTo(pass_cxt);

			resync(pass_cxt);
			MemoryContextSwitchTo(old);
			last_resync = now;
		}
		SHARED_UPDATE((paas_provisioner_shared->passes++,
					   paas_provisioner_shared->last_pass = GetCurrentTimestamp()));
		MemoryContextReset(pass_cxt);
		wait_ms = units_done > 0 ? 0 : next_wait_ms(pass_cxt);
	}
}
