/*
 * metrics.c - the gateway's metrics in the Prometheus text format (0.0.4).
 *
 * Served by the metrics listener (metrics_request, PAAS_METRICS_LISTEN) and
 * to admins on the API's GET /api/v1/metrics.  docs/operations.md lists
 * every metric.
 *
 * httpd's own figures are lock-free counters updated with atomic adds:
 *   - per route (method and path template of the route table, never the
 *     raw path: the series are bounded by the table; requests that match
 *     no route count under the pseudo-route "unmatched"): requests by
 *     status class and a latency histogram;
 *   - Snap calls by outcome and their latency (midtrans.c);
 *   - the edge's refusals, batching, the database pool and the
 *     password-hashing slots (read from their owners at scrape time).
 * What the database knows (jobs, renewal runs, provisioner and mailer
 * queues) comes from ONE call of api.metrics_snapshot() per scrape, on a
 * connection of its own (not the pool's, so a scrape never waits behind
 * API traffic nor holds it up) with a short statement timeout.  When that
 * call fails the rest is still served, with paas_metrics_db_up 0.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <civetweb.h>
#include <libpq-fe.h>

#include "httpd.h"

#ifndef PAAS_VERSION
#define PAAS_VERSION "dev"
#endif

#define MAX_ROUTES 512

/* histogram bounds, seconds: from a cached read to a slow money call */
static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BOUNDS ((int) (sizeof(bounds) / sizeof(bounds[0])))

struct histogram {
	unsigned long n[N_BOUNDS + 1]; /* per bucket, not cumulative; [N_BOUNDS] is +Inf */
	unsigned long micros;          /* sum, microseconds */
};

static unsigned long counts[MAX_ROUTES + 1][6]; /* [route][1xx..5xx] */
static struct histogram latency[MAX_ROUTES + 1];
static unsigned long events[EDGE_EVENTS];
static unsigned long snap_outcomes[SNAP_OUTCOMES];
static struct histogram snap_latency;

static const char *const snap_outcome_names[SNAP_OUTCOMES] = {
	[SNAP_OK] = "ok",
	[SNAP_HTTP_ERROR] = "http_error",
	[SNAP_TRANSPORT_ERROR] = "transport_error",
	[SNAP_BAD_RESPONSE] = "bad_response",
	[SNAP_NOT_CONFIGURED] = "not_configured",
};

/* the statement timeout of the snapshot call, and the connect timeout */
#define SNAPSHOT_TIMEOUT_MS 2000
#define SNAPSHOT_CONNECT_S "2"

static void
observe(struct histogram *h, double seconds)
{
	int b = 0;

	if (seconds < 0)
		seconds = 0;
	while (b < N_BOUNDS && seconds > bounds[b])
		b++;
	__atomic_fetch_add(&h->n[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->micros, (unsigned long) (seconds * 1e6), __ATOMIC_RELAXED);
}

void
metrics_event(enum edge_event e)
{
	__atomic_fetch_add(&events[e], 1, __ATOMIC_RELAXED);
}

void
metrics_count(int route_index, int status, double ms)
{
	int slot = (route_index < 0 || route_index >= MAX_ROUTES) ? MAX_ROUTES : route_index;
	int cls = status / 100;

	if (cls < 1 || cls > 5)
		cls = 5;
	__atomic_fetch_add(&counts[slot][cls], 1, __ATOMIC_RELAXED);
	observe(&latency[slot], ms / 1000.0);
}

void
metrics_snap(enum snap_outcome o, double ms)
{
	if (o < 0 || o >= SNAP_OUTCOMES)
		return;
	__atomic_fetch_add(&snap_outcomes[o], 1, __ATOMIC_RELAXED);
	observe(&snap_latency, ms / 1000.0);
}

/* ---- the text ----------------------------------------------------------- */

struct out {
	char *s;
	size_t len, cap;
	int failed;
};

static void __attribute__((format(printf, 2, 3)))
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if ((size_t) n < o->cap - o->len) {
			o->len += (size_t) n;
			return;
		}
		{
			size_t cap = o->cap * 2 + (size_t) n;
			char *s = realloc(o->s, cap);
			if (s == NULL) {
				o->failed = 1;
				return;
			}
			o->s = s;
			o->cap = cap;
		}
	}
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* the samples of one histogram; labels is "" or 'a="x",b="y"' */
static void
histogram_samples(struct out *o, const char *name, const char *labels, const struct histogram *h)
{
	unsigned long cum = 0;
	const char *sep = labels[0] ? "," : "";
	int b;

	for (b = 0; b <= N_BOUNDS; b++) {
		cum += __atomic_load_n(&h->n[b], __ATOMIC_RELAXED);
		if (b < N_BOUNDS)
			put(o, "%s_bucket{%s%sle=\"%g\"} %lu\n", name, labels, sep, bounds[b], cum);
		else
			put(o, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", name, labels, sep, cum);
	}
	put(o, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
	    (double) __atomic_load_n(&h->micros, __ATOMIC_RELAXED) / 1e6);
	put(o, "%s_count%s%s%s %lu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "", cum);
}

static unsigned long
histogram_total(const struct histogram *h)
{
	unsigned long n = 0;
	int b;

	for (b = 0; b <= N_BOUNDS; b++)
		n += __atomic_load_n(&h->n[b], __ATOMIC_RELAXED);
	return n;
}

static void
http_metrics(struct out *o)
{
	int i, c, last = n_routes < MAX_ROUTES ? n_routes : MAX_ROUTES;
	char labels[400];

	family(o, "paas_http_requests_total", "counter",
	       "HTTP requests by route (method, path template) and status class.");
	for (i = 0; i <= last; i++) {
		int slot = (i == last) ? MAX_ROUTES : i;
		const char *m = (i == last) ? "" : routes[i].method;
		const char *p = (i == last) ? "unmatched" : routes[i].pattern;
		for (c = 1; c <= 5; c++) {
			unsigned long v = __atomic_load_n(&counts[slot][c], __ATOMIC_RELAXED);
			if (v != 0)
				put(o, "paas_http_requests_total{method=\"%s\",route=\"%s\",status=\"%dxx\"} %lu\n",
				    m, p, c, v);
		}
	}
	family(o, "paas_http_request_duration_seconds", "histogram",
	       "Time from the request's headers to the end of its reply, by route.");
	for (i = 0; i <= last; i++) {
		int slot = (i == last) ? MAX_ROUTES : i;
		if (histogram_total(&latency[slot]) == 0)
			continue;
		snprintf(labels, sizeof(labels), "method=\"%s\",route=\"%s\"",
		         i == last ? "" : routes[i].method, i == last ? "unmatched" : routes[i].pattern);
		histogram_samples(o, "paas_http_request_duration_seconds", labels, &latency[slot]);
	}
}

static void
edge_metrics(struct out *o)
{
	unsigned long b, n, f, open, refused;
	int size, in_use, waiting, hash_used;
	unsigned long waits;

	batch_stats(&b, &n, &f);
	family(o, "paas_batches_total", "counter", "Database calls that carried batched requests.");
	put(o, "paas_batches_total %lu\n", b);
	family(o, "paas_batched_requests_total", "counter", "Requests carried by those calls.");
	put(o, "paas_batched_requests_total %lu\n", n);
	family(o, "paas_batches_failed_total", "counter", "Batches that failed; their requests ran alone.");
	put(o, "paas_batches_failed_total %lu\n", f);

	edge_stats(&open, &refused);
	family(o, "paas_http_connections_open", "gauge", "Connections accepted and not yet closed.");
	put(o, "paas_http_connections_open %lu\n", open);
	family(o, "paas_http_connections_refused_total", "counter",
	       "Connections closed at accept (PAAS_CONN_PER_ADDR).");
	put(o, "paas_http_connections_refused_total %lu\n", refused);
	family(o, "paas_http_hash_busy_total", "counter",
	       "Password-hashing calls refused for want of a slot (503).");
	put(o, "paas_http_hash_busy_total %lu\n", __atomic_load_n(&events[EDGE_HASH_BUSY], __ATOMIC_RELAXED));
	family(o, "paas_http_body_timeouts_total", "counter", "Request bodies that did not arrive in time (408).");
	put(o, "paas_http_body_timeouts_total %lu\n",
	    __atomic_load_n(&events[EDGE_BODY_TIMEOUT], __ATOMIC_RELAXED));
	family(o, "paas_http_framing_refused_total", "counter", "Requests refused for their framing headers.");
	put(o, "paas_http_framing_refused_total %lu\n",
	    __atomic_load_n(&events[EDGE_REFUSED_FRAMING], __ATOMIC_RELAXED));

	db_pool_stats(&size, &in_use, &waiting, &waits);
	family(o, "paas_db_pool_size", "gauge", "Database connections of the pool (PAAS_DB_POOL).");
	put(o, "paas_db_pool_size %d\n", size);
	family(o, "paas_db_pool_in_use", "gauge", "Pool connections carrying a call now.");
	put(o, "paas_db_pool_in_use %d\n", in_use);
	family(o, "paas_db_pool_waiting", "gauge", "Threads waiting for a pool connection now.");
	put(o, "paas_db_pool_waiting %d\n", waiting);
	family(o, "paas_db_pool_waits_total", "counter", "Calls that found no free pool connection and waited.");
	put(o, "paas_db_pool_waits_total %lu\n", waits);

	hash_used = hash_slots_in_use();
	family(o, "paas_http_hash_slots", "gauge",
	       "Password-hashing calls allowed at once (PAAS_HASH_SLOTS).");
	put(o, "paas_http_hash_slots %d\n", cfg.hash_slots);
	family(o, "paas_http_hash_slots_in_use", "gauge", "Password-hashing calls running now.");
	put(o, "paas_http_hash_slots_in_use %d\n", hash_used);
}

static void
snap_metrics(struct out *o)
{
	int i;

	family(o, "paas_midtrans_snap_requests_total", "counter",
	       "Midtrans Snap calls (top-up links) by outcome.");
	for (i = 0; i < SNAP_OUTCOMES; i++)
		put(o, "paas_midtrans_snap_requests_total{outcome=\"%s\"} %lu\n", snap_outcome_names[i],
		    __atomic_load_n(&snap_outcomes[i], __ATOMIC_RELAXED));
	family(o, "paas_midtrans_snap_duration_seconds", "histogram", "Time of a Midtrans Snap call.");
	histogram_samples(o, "paas_midtrans_snap_duration_seconds", "", &snap_latency);
}

/* ---- the database's part ---------------------------------------------- */

static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;
static PGconn *snap_conn;

static PGconn *
snapshot_connect(void)
{
	const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
	char options[160];
	const char *vals[] = {cfg.db_url, SNAPSHOT_CONNECT_S, "paas-httpd-metrics", options, NULL};
	PGconn *c;

	snprintf(options, sizeof(options), "-c statement_timeout=%d -c lock_timeout=%d",
	         SNAPSHOT_TIMEOUT_MS, SNAPSHOT_TIMEOUT_MS / 2);
	c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* api.metrics_snapshot() as JSON (new reference), or NULL */
static json_t *
snapshot_fetch(void)
{
	json_t *doc = NULL;
	int attempt;

	pthread_mutex_lock(&snap_lock);
	for (attempt = 0; attempt < 2 && doc == NULL; attempt++) {
		PGresult *r;

		if (snap_conn == NULL && (snap_conn = snapshot_connect()) == NULL)
			break;
		r = PQexec(snap_conn, "SELECT api.metrics_snapshot()::text");
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
			doc = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
		else {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			log_event("{\"event\":\"metrics_snapshot_failed\",\"sqlstate\":\"%s\"}\n",
			        state ? state : "");
		}
		/* a connection that broke (the server restarted) is made anew once */
		if (doc == NULL && PQstatus(snap_conn) != CONNECTION_OK) {
			PQfinish(snap_conn);
			snap_conn = NULL;
		} else
			attempt = 2;
		PQclear(r);
	}
	pthread_mutex_unlock(&snap_lock);
	return doc;
}

static int
num(json_t *obj, const char *key, double *v)
{
	json_t *x = json_object_get(obj, key);

	if (json_is_number(x)) {
		*v = json_number_value(x);
		return 1;
	}
	if (json_is_boolean(x)) {
		*v = json_is_true(x) ? 1 : 0;
		return 1;
	}
	return 0;
}

/* one gauge sample of a job per job that has the key */
static void
job_gauge(struct out *o, json_t *jobs, const char *name, const char *help, const char *key)
{
	size_t i;
	json_t *j;
	double v;

	family(o, name, "gauge", help);
	json_array_foreach(jobs, i, j) {
		const char *job = json_string_value(json_object_get(j, "name"));
		if (job && num(j, key, &v))
			put(o, "%s{job=\"%s\"} %.17g\n", name, job, v);
	}
}

static void
db_metrics(struct out *o)
{
	struct timespec t0, t1;
	json_t *doc, *jobs, *x;
	double v, secs;
	size_t i;
	json_t *j;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	doc = snapshot_fetch();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;

	family(o, "paas_metrics_db_up", "gauge",
	       "Whether this scrape read the database's metrics (api.metrics_snapshot).");
	put(o, "paas_metrics_db_up %d\n", doc != NULL);
	family(o, "paas_metrics_db_scrape_duration_seconds", "gauge",
	       "Time of this scrape's api.metrics_snapshot() call.");
	put(o, "paas_metrics_db_scrape_duration_seconds %.6f\n", secs);
	if (doc == NULL)
		return;

	x = json_object_get(doc, "worker");
	family(o, "paas_worker_up", "gauge", "Whether the background worker runs.");
	if (num(x, "running", &v))
		put(o, "paas_worker_up %g\n", v);
	family(o, "paas_worker_last_tick_timestamp_seconds", "gauge",
	       "When the background worker last ran its loop (Unix time).");
	if (num(x, "lastTick", &v))
		put(o, "paas_worker_last_tick_timestamp_seconds %.3f\n", v);

	jobs = json_object_get(doc, "jobs");
	job_gauge(o, jobs, "paas_job_enabled", "Whether the job is enabled (paas.job).", "enabled");
	job_gauge(o, jobs, "paas_job_last_run_timestamp_seconds",
	          "When the job's last run ended (Unix time).", "lastEnd");
	job_gauge(o, jobs, "paas_job_last_run_duration_seconds", "How long the job's last run took.",
	          "lastSeconds");
	job_gauge(o, jobs, "paas_job_last_run_success", "Whether the job's last run succeeded.", "lastOk");
	job_gauge(o, jobs, "paas_job_last_success_timestamp_seconds",
	          "When the job's last successful run ended (Unix time).", "lastSuccess");
	family(o, "paas_job_runs_24h", "gauge", "Runs of the job in the last 24 hours, by outcome.");
	json_array_foreach(jobs, i, j) {
		const char *job = json_string_value(json_object_get(j, "name"));
		if (job == NULL)
			continue;
		if (num(j, "ok24h", &v))
			put(o, "paas_job_runs_24h{job=\"%s\",outcome=\"ok\"} %.17g\n", job, v);
		if (num(j, "failed24h", &v))
			put(o, "paas_job_runs_24h{job=\"%s\",outcome=\"failed\"} %.17g\n", job, v);
	}

	x = json_object_get(doc, "renewals");
	family(o, "paas_renewal_last_run_success", "gauge", "Whether the last renewal run succeeded.");
	if (num(x, "ok", &v))
		put(o, "paas_renewal_last_run_success %g\n", v);
	family(o, "paas_renewal_last_run_subscriptions", "gauge",
	       "Subscriptions the last renewal run examined, renewed, charged, moved to grace, suspended, expired.");
	{
		static const char *const keys[][2] = {{"examined", "examined"}, {"renewed", "renewed"},
		                                      {"charged", "charged"},   {"toGrace", "to_grace"},
		                                      {"suspended", "suspended"}, {"expired", "expired"}};
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (num(x, keys[i][0], &v))
				put(o, "paas_renewal_last_run_subscriptions{result=\"%s\"} %.17g\n", keys[i][1], v);
	}
	family(o, "paas_subscriptions_in_grace", "gauge", "Subscriptions in their grace period now.");
	if (num(x, "inGrace", &v))
		put(o, "paas_subscriptions_in_grace %.17g\n", v);

	x = json_object_get(doc, "provisioner");
	family(o, "paas_provisioner_pending", "gauge",
	       "Objects whose wanted generation the provisioner has not applied yet, by kind.");
	if (num(x, "instances", &v))
		put(o, "paas_provisioner_pending{kind=\"instance\"} %.17g\n", v);
	if (num(x, "namespaces", &v))
		put(o, "paas_provisioner_pending{kind=\"namespace\"} %.17g\n", v);
	family(o, "paas_provisioner_due", "gauge", "Of those, the ones due for an attempt now, by kind.");
	if (num(x, "instancesDue", &v))
		put(o, "paas_provisioner_due{kind=\"instance\"} %.17g\n", v);
	if (num(x, "namespacesDue", &v))
		put(o, "paas_provisioner_due{kind=\"namespace\"} %.17g\n", v);

	x = json_object_get(doc, "mailer");
	family(o, "paas_mailer_outbox_due", "gauge", "Outbox mails due to be sent now.");
	if (num(x, "due", &v))
		put(o, "paas_mailer_outbox_due %.17g\n", v);
	family(o, "paas_mailer_outbox_oldest_due_age_seconds", "gauge",
	       "How long the oldest due outbox mail has been due (0: none).");
	if (num(x, "oldestDueSeconds", &v))
		put(o, "paas_mailer_outbox_oldest_due_age_seconds %.3f\n", v);
	json_decref(doc);
}

char *
metrics_text(void)
{
	struct out o = {malloc(16384), 0, 16384, 0};

	if (o.s == NULL)
		return NULL;
	o.s[0] = '\0';
	family(&o, "paas_build_info", "gauge", "The gateway's version (always 1).");
	put(&o, "paas_build_info{version=\"%s\"} 1\n", PAAS_VERSION);
	http_metrics(&o);
	edge_metrics(&o);
	snap_metrics(&o);
	db_metrics(&o);
	if (o.failed) {
		free(o.s);
		return NULL;
	}
	return o.s;
}

/*
 * The metrics listener (main.c): GET /metrics, and the API's spelling
 * /api/v1/metrics, without a token: the listener is reachable only where
 * PAAS_METRICS_LISTEN binds it (loopback by default).
 */
int
metrics_request(struct mg_connection *conn, void *cbdata)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *path = ri->local_uri_raw ? ri->local_uri_raw : "";
	char *text;

	(void) cbdata;
	if (strcmp(ri->request_method, "GET") != 0 ||
	    (strcmp(path, "/metrics") != 0 && strcmp(path, "/api/v1/metrics") != 0)) {
		static const char msg[] = "not found: GET /metrics\n";
		mg_send_http_error(conn, 404, "%s", msg);
		return 404;
	}
	text = metrics_text();
	if (text == NULL) {
		mg_send_http_error(conn, 500, "%s", "out of memory\n");
		return 500;
	}
	mg_send_http_ok(conn, "text/plain; version=0.0.4", (long long) strlen(text));
	mg_write(conn, text, strlen(text));
	free(text);
	return 200;
}
