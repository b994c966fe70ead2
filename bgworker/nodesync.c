/*-------------------------------------------------------------------------
 *
 * nodesync.c
 *	  The node sync: a background worker of its own ("paas node sync") that
 *	  keeps the node registry equal to the cluster's Nodes, list-then-watch
 *	  as client-go's informers do.
 *
 * Each round
 *	  1. without a resourceVersion, lists /api/v1/nodes (pages of 500) into
 *		 paas.node_sync_page(), one transaction a page; a complete list ends
 *		 with paas.node_sync_end(), which makes the nodes the API knew and
 *		 did not list INACTIVE;
 *	  2. watches /api/v1/nodes from the list's resourceVersion (bookmarks
 *		 asked for, timeoutSeconds=290, resumed from the last version seen);
 *		 the lines received go to paas.node_sync_events() in batches, one
 *		 transaction a batch; GONE (410: the version is too old) or a failed
 *		 watch starts again from a list (after WATCH_RETRY_MS on failure);
 *	  3. every period (a third of paas.node_grace_period, at most 30 s) while
 *		 the watch is open: paas.node_sync_alive() stamps the nodes the API
 *		 knows as heard from (and when the health monitor timed some out
 *		 meanwhile, the Nodes are listed again), and the pods bound to nodes
 *		 are listed into paas.node_sync_pods_*() (allocations = their
 *		 requests).
 *
 * Rules a reader must know:
 *	  - level-triggered: nothing it keeps matters (killed, it lists again);
 *	  - the API calls happen with no transaction open;
 *	  - no API configured (paas.k8s_api_url nor a pod's environment): it
 *		idles, and the registry is what agents and admins say (as before);
 *	  - connection rules: bgworker/k8s_client.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <malloc.h>

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
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "bgw.h"
#include "instances.h"
#include "k8s_client.h"
#include "paas.h"

PGDLLEXPORT void paas_nodesync_main(Datum main_arg) pg_attribute_noreturn();

#define PERIOD_MAX_MS (30 * 1000)
#define WATCH_RETRY_MS 5000
#define IDLE_MS 5000
#define WATCH_MAX_LINE (16 * 1024 * 1024)
#define BATCH_MAX 2000			/* watch lines per transaction */
#define MALLOC_KEEP (64 * 1024 * 1024)	/* see paas_nodesync_main */

static void watch_drop_headers(void);
static K8sClient client = {.agent = "paas-nodesync/" PAAS_VERSION,
.before_new_headers = watch_drop_headers};
static CURL *list_h;
static CURL *next_h;			/* the next page of a list (read_list) */
static CURLM *lmulti;
static CURL *watch_h;
static CURLM *wmulti;
static bool watching;
static bool watch_failed;		/* the last watch ended in an error */
static StringInfoData wbuf;
static char rv[64];

void
paas_nodesync_register(void)
{
	paas_bgw_register("paas_nodesync_main", "paas node sync", 2);
}

/* ---- transactions (bgworker/bgw.c) ---------------------------------------- */

/*
 * Runs one statement in its own transaction; the first row's first "ncols"
 * values are copied into out[] (NULL when absent), in "cxt".
 */
static void
run_sql(const char *activity, const char *sql, int nargs, Oid *types, Datum *values,
		int ncols, char **out, MemoryContext cxt)
{
	int			ret;

	for (int i = 0; i < ncols; i++)
		out[i] = NULL;
	paas_bgw_begin_tx(activity);
	ret = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "%s failed: %d", sql, ret);
	if (SPI_processed > 0)
		for (int i = 0; i < ncols && i < SPI_tuptable->tupdesc->natts; i++)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1);

			if (v != NULL)
				out[i] = MemoryContextStrdup(cxt, v);
		}
	paas_bgw_end_tx();
}

static char *
run_text(const char *activity, const char *sql, int nargs, Oid *types, Datum *values, MemoryContext cxt)
{
	char	   *out;

	run_sql(activity, sql, nargs, types, values, 1, &out, cxt);
	return out;
}

static bool
extension_ready(MemoryContext cxt)
{
	return run_text("paas node sync: looking for the extension",
					"SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'paas' "
					"AND pg_catalog.to_regprocedure('paas.node_sync_events(text[])') IS NOT NULL",
					0, NULL, NULL, cxt) != NULL;
}

/* ---- lists ---------------------------------------------------------------- */

/* path?limit=500[&continue=token] */
static char *
page_path(const char *path, const char *token)
{
	char	   *esc = token ? curl_easy_escape(NULL, token, 0) : NULL;
	char	   *p = psprintf("%s%slimit=500%s%s", path, strchr(path, '?') ? "&" : "?",
							 esc ? "&continue=" : "", esc ? esc : "");

	if (esc)
		curl_free(esc);
	return p;
}

/* A string member of a list page's metadata, or NULL. */
static JsonbValue *
page_meta(Jsonb *page, const char *key)
{
	JsonbValue *md;
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(page) ||
		(md = getKeyJsonValueFromContainer(&page->root, "metadata", 8, NULL)) == NULL ||
		md->type != jbvBinary || !JsonContainerIsObject(md->val.binary.data) ||
		(v = getKeyJsonValueFromContainer(md->val.binary.data, key, strlen(key), NULL)) == NULL ||
		v->type != jbvString)
		return NULL;
	return v;
}

/*
 * A list page's items as a jsonb[] (each element copied as it is stored:
 * no parse, no SQL set-returning function in between); empty when the
 * page has none.
 */
static ArrayType *
page_items(Jsonb *page)
{
	JsonbValue *items;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	Datum	   *elems;
	int			size;
	int			n = 0;

	if (!JB_ROOT_IS_OBJECT(page) ||
		(items = getKeyJsonValueFromContainer(&page->root, "items", 5, NULL)) == NULL ||
		items->type != jbvBinary || !JsonContainerIsArray(items->val.binary.data))
		return construct_empty_array(JSONBOID);
	size = (int) JsonContainerSize(items->val.binary.data);
	if (size == 0)
		return construct_empty_array(JSONBOID);
	elems = palloc(sizeof(Datum) * size);
	it = JsonbIteratorInit(items->val.binary.data);
	/* an array's iteration yields exactly its "size" elements */
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
			elems[n++] = JsonbPGetDatum(JsonbValueToJsonb(&v));
	Assert(n == size);
	return construct_array(elems, n, JSONBOID, -1, false, TYPALIGN_INT);
}

/*
 * The GET of the next page, on a handle of its own, under way while the
 * current page is applied: list_fetch_begin() sends the request, and the
 * answer arrives in the socket's buffer meanwhile; list_fetch_end() waits
 * for the rest and returns the HTTP status (0: no answer, err says why).
 */
static void
list_fetch_begin(const char *p, StringInfo out, char *err)
{
	char	   *url = psprintf("%s%s", client.base, p);
	int			running;

	if (lmulti == NULL && (lmulti = curl_multi_init()) == NULL)
		elog(ERROR, "curl_multi_init failed");
	if (next_h == NULL && (next_h = curl_easy_init()) == NULL)
		elog(ERROR, "curl_easy_init failed");
	resetStringInfo(out);
	k8s_setup_get(&client, next_h, url, out, err, (long) paas_k8s_timeout_ms);
	curl_multi_add_handle(lmulti, next_h);
	(void) curl_multi_perform(lmulti, &running);
	pfree(url);
}

static long
list_fetch_end(char *err)
{
	int			running = 1;
	int			left;
	CURLMsg    *m;
	CURLcode	rc = CURLE_FAILED_INIT;
	long		code = 0;

	while (running)
	{
		CHECK_FOR_INTERRUPTS();
		if (curl_multi_perform(lmulti, &running) != CURLM_OK)
			break;
		if (running)
			(void) curl_multi_poll(lmulti, NULL, 0, 1000, NULL);
	}
	while ((m = curl_multi_info_read(lmulti, &left)) != NULL)
		if (m->msg == CURLMSG_DONE)
			rc = m->data.result;
	curl_multi_remove_handle(lmulti, next_h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(next_h, CURLINFO_RESPONSE_CODE, &code);
	else if (err[0] == '\0')
		strlcpy(err, curl_easy_strerror(rc), CURL_ERROR_SIZE);
	return code;
}

/*
 * Reads every page of "path" (limit=500, continue) into the SQL function
 * "page_sql" ($1 = the page's items, jsonb[]); *version, when asked for,
 * is the list's resourceVersion (allocated in cxt).  The next page is
 * asked for before the current one is applied, so that the API's work and
 * ours overlap.  false when a page was not read.
 */
static bool
read_list(const char *path, const char *page_sql, char **version, MemoryContext cxt)
{
	/*
	 * The list's buffers live in a context of its own, deleted at the end,
	 * and what a page costs (its jsonb and everything its parse allocates,
	 * a few times its text: the parse does not free its own work) in one
	 * reset after every page; never in the caller's long-lived context.
	 */
	MemoryContext listcxt = AllocSetContextCreate(CurrentMemoryContext, "paas node sync list",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext pagecxt = AllocSetContextCreate(listcxt, "paas node sync list page",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext caller = MemoryContextSwitchTo(listcxt);
	StringInfoData page;
	StringInfoData next;
	char		err[CURL_ERROR_SIZE];
	long		code;
	bool		ok = true;

	initStringInfo(&page);
	initStringInfo(&next);
	code = k8s_get(&client, list_h, page_path(path, NULL), &page, err);
	for (;;)
	{
		Oid			types[1] = {JSONBARRAYOID};
		Datum		values[1];
		Jsonb	   *jb;
		JsonbValue *token;
		JsonbValue *rv_of;
		char	   *applied;
		bool		more;
		StringInfoData swap;

		if (code != 200)
		{
			ereport(LOG, (errmsg("paas node sync: listing %s failed: %s", path,
								 code ? psprintf("HTTP %ld", code) : err)));
			ok = false;
			break;
		}
		MemoryContextSwitchTo(pagecxt);
		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(page.data)));
		token = page_meta(jb, "continue");
		more = token != NULL && token->val.string.len > 0;
		if (more)
			list_fetch_begin(page_path(path, pnstrdup(token->val.string.val, token->val.string.len)),
							 &next, err);
		if (version != NULL && (rv_of = page_meta(jb, "resourceVersion")) != NULL)
		{
			MemoryContextSwitchTo(cxt);
			*version = pnstrdup(rv_of->val.string.val, rv_of->val.string.len);
			MemoryContextSwitchTo(pagecxt);
		}
		values[0] = PointerGetDatum(page_items(jb));
		MemoryContextSwitchTo(listcxt);
		applied = run_text("paas node sync: a page", page_sql, 1, types, values, pagecxt);
		elog(DEBUG1, "paas node sync: a page of %s applied: %s", path, applied ? applied : "(nothing)");
		MemoryContextReset(pagecxt);
		if (!more)
			break;
		code = list_fetch_end(err);
		swap = page;
		page = next;
		next = swap;
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(listcxt);
	return ok;
}

/* Lists the Nodes; on success rv holds the list's resourceVersion. */
static bool
relist(MemoryContext cxt)
{
	char	   *started = run_text("paas node sync: list start", "SELECT pg_catalog.now()::text",
								   0, NULL, NULL, cxt);
	char	   *version = NULL;
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1];
	char	   *gone;

	if (!read_list("/api/v1/nodes",
				   "SELECT paas.node_sync_page($1)::text",
				   &version, cxt) || version == NULL || version[0] == '\0' ||
		strlen(version) >= sizeof(rv))
		return false;
	values[0] = DirectFunctionCall3(timestamptz_in, CStringGetDatum(started),
									ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	gone = run_text("paas node sync: list end", "SELECT paas.node_sync_end($1)::text",
					1, types, values, cxt);
	strlcpy(rv, version, sizeof(rv));
	elog(DEBUG1, "paas node sync: listed the nodes at resourceVersion %s (%s gone)", rv, gone ? gone : "0");
	return true;
}

/* The requests of the pods bound to nodes become the nodes' allocations. */
static void
sync_pods(MemoryContext cxt)
{
	run_text("paas node sync: pods", "SELECT paas.node_sync_pods_begin()::text", 0, NULL, NULL, cxt);
	if (read_list("/api/v1/pods?fieldSelector=spec.nodeName%21%3D",
				  "SELECT paas.node_sync_pods_page($1)::text", NULL, cxt))
		run_text("paas node sync: pods", "SELECT paas.node_sync_pods_end()::text", 0, NULL, NULL, cxt);
}

/* ---- the watch ------------------------------------------------------------ */

static size_t
watch_collect(char *data, size_t size, size_t nmemb, void *userdata)
{
	size_t		n = size * nmemb;

	if ((size_t) wbuf.len + n > WATCH_MAX_LINE + BATCH_MAX * 16384)
		return 0;
	appendBinaryStringInfo(&wbuf, data, (int) n);
	return n;
}

static void
watch_start(void)
{
	char	   *url;
	static char err[CURL_ERROR_SIZE];

	if (wmulti == NULL && (wmulti = curl_multi_init()) == NULL)
		elog(ERROR, "curl_multi_init failed");
	if (watch_h == NULL && (watch_h = curl_easy_init()) == NULL)
		elog(ERROR, "curl_easy_init failed");
	resetStringInfo(&wbuf);
	url = psprintf("%s/api/v1/nodes?watch=1&allowWatchBookmarks=true&timeoutSeconds=290&resourceVersion=%s",
				   client.base, rv);
	k8s_setup_get(&client, watch_h, url, &wbuf, err, 0);
	/* the callback and a length bound of its own; silence means a dead peer */
	curl_easy_setopt(watch_h, CURLOPT_WRITEFUNCTION, watch_collect);
	curl_easy_setopt(watch_h, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(watch_h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(watch_h, CURLOPT_LOW_SPEED_TIME, 330L);
	curl_multi_add_handle(wmulti, watch_h);
	pfree(url);
	watching = true;
}

static void
watch_stop(bool relist_next)
{
	if (watching)
		curl_multi_remove_handle(wmulti, watch_h);
	watching = false;
	if (relist_next)
		rv[0] = '\0';
}

/*
 * The client's header list is about to be freed (a new token): the watch
 * may not have sent its request yet, so it stops, and starts again from
 * its resourceVersion with the new list.
 */
static void
watch_drop_headers(void)
{
	watch_stop(false);
}

/* Hands the complete lines received so far to SQL; false on GONE. */
static bool
watch_drain(MemoryContext cxt)
{
	char	   *start = wbuf.data;
	char	   *nl;

	for (;;)
	{
		Datum	   *items = palloc(sizeof(Datum) * BATCH_MAX);
		int			n = 0;
		ArrayType  *arr;
		Oid			types[1] = {TEXTARRAYOID};
		Datum		values[1];
		char	   *got;

		while (n < BATCH_MAX &&
			   (nl = memchr(start, '\n', wbuf.len - (start - wbuf.data))) != NULL)
		{
			if (nl > start)
				items[n++] = PointerGetDatum(cstring_to_text_with_len(start, nl - start));
			start = nl + 1;
		}
		if (n == 0)
			break;
		arr = construct_array(items, n, TEXTOID, -1, false, TYPALIGN_INT);
		values[0] = PointerGetDatum(arr);
		got = run_text("paas node sync: watch events", "SELECT paas.node_sync_events($1)",
					   1, types, values, cxt);
		for (int i = 0; i < n; i++)
			pfree(DatumGetPointer(items[i]));
		pfree(items);
		pfree(arr);
		if (got != NULL && strcmp(got, "GONE") == 0)
		{
			resetStringInfo(&wbuf);
			return false;
		}
		if (got != NULL && strlen(got) < sizeof(rv))
			strlcpy(rv, got, sizeof(rv));
	}
	if (start > wbuf.data)
	{
		int			rest = wbuf.len - (start - wbuf.data);

		memmove(wbuf.data, start, rest);
		wbuf.len = rest;
		wbuf.data[rest] = '\0';
	}
	return true;
}

/*
 * Serves the watch for up to "ms": reads what arrives, hands it to SQL.
 * Returns when the watch ended (watching is then false) or the time is up.
 */
static void
watch_serve(long ms, MemoryContext cxt)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	while (watching)
	{
		int			running = 0;
		CURLMsg    *msg;
		int			left;
		long		wait = ms;

		curl_multi_perform(wmulti, &running);
		if (!watch_drain(cxt))
		{
			watch_stop(true);	/* 410: list again at once */
			return;
		}
		while ((msg = curl_multi_info_read(wmulti, &left)) != NULL)
		{
			long		code = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(watch_h, CURLINFO_RESPONSE_CODE, &code);
			if (!watch_drain(cxt) || msg->data.result != CURLE_OK || code != 200)
			{
				if (code == 410 || msg->data.result != CURLE_OK || code != 200)
					ereport(LOG, (errmsg("paas node sync: the Node watch ended (HTTP %ld, %s)",
										 code, curl_easy_strerror(msg->data.result))));
				watch_stop(true);
				watch_failed = code != 410;
			}
			else
				watch_stop(false);	/* the server's timeout: resume from rv */
			return;
		}
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			return;
		{
			TimestampTz now = GetCurrentTimestamp();

			if (now >= until)
				return;
			wait = Min(1000, (until - now) / 1000 + 1);
		}
		(void) curl_multi_poll(wmulti, NULL, 0, (int) wait, NULL);
		if (!PostmasterIsAlive())
			proc_exit(1);
	}
}

static void
release_curl(int code, Datum arg)
{
	watch_stop(false);
	if (watch_h)
		curl_easy_cleanup(watch_h);
	if (list_h)
		curl_easy_cleanup(list_h);
	if (lmulti && next_h)
		curl_multi_remove_handle(lmulti, next_h);
	if (next_h)
		curl_easy_cleanup(next_h);
	if (lmulti)
		curl_multi_cleanup(lmulti);
	if (wmulti)
		curl_multi_cleanup(wmulti);
	curl_slist_free_all(client.hdr_json);
}

/* ---- main ----------------------------------------------------------------- */

static void
idle(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

void
paas_nodesync_main(Datum main_arg)
{
	MemoryContext cxt;
	TimestampTz last_period = 0;
	TimestampTz failed_at = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/*
	 * A list page is megabytes (its text, its jsonb, the items' copies and
	 * the executor's), allocated and freed again for every page: kept by
	 * malloc rather than mapped and unmapped each time, whose page faults
	 * and page clearing were a sixth of the list's time (perf).  Up to
	 * MALLOC_KEEP stays with the process once used.
	 */
	(void) mallopt(M_MMAP_THRESHOLD, MALLOC_KEEP);
	(void) mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP);
	BackgroundWorkerInitializeConnection(paas_database, NULL, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/* observed state, converged again after any loss */
	SetConfigOption("synchronous_commit", "local", PGC_SUSET, PGC_S_OVERRIDE);
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "curl_global_init failed");
	if ((list_h = curl_easy_init()) == NULL)
		elog(ERROR, "curl_easy_init failed");
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&wbuf);
		MemoryContextSwitchTo(old);
	}
	before_shmem_exit(release_curl, (Datum) 0);
	elog(LOG, "paas node sync started in database \"%s\"", paas_database);

	cxt = AllocSetContextCreate(TopMemoryContext, "paas node sync pass", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		long		period = Max(200, Min(PERIOD_MAX_MS, paas_node_grace_period_s * 1000 / 3));
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			k8s_refresh(&client, true);
		}
		MemoryContextReset(cxt);
		if (!extension_ready(cxt) || !k8s_resolve(&client))
		{
			watch_stop(true);
			idle(IDLE_MS);
			continue;
		}
		k8s_refresh(&client, false);
		if (!watching)
		{
			if (failed_at != 0 &&
				!TimestampDifferenceExceeds(failed_at, GetCurrentTimestamp(), WATCH_RETRY_MS))
			{
				idle(WATCH_RETRY_MS);
				continue;
			}
			if (rv[0] == '\0' && !relist(cxt))
			{
				failed_at = GetCurrentTimestamp();
				continue;
			}
			watch_start();
			failed_at = 0;
		}
		now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(last_period, now, period))
		{
			char	   *stale;

			last_period = now;
			stale = run_text("paas node sync: alive", "SELECT paas.node_sync_alive()::text",
							 0, NULL, NULL, cxt);

			/* nodes the health monitor timed out: the API's state in full */
			if (stale != NULL && atoi(stale) > 0)
			{
				watch_stop(true);
				continue;
			}
			sync_pods(cxt);
			MemoryContextReset(cxt);
		}
		watch_failed = false;
		watch_serve(period, cxt);
		/* GONE lists again at once; a failed watch after WATCH_RETRY_MS */
		if (!watching && watch_failed)
			failed_at = GetCurrentTimestamp();
	}
}
