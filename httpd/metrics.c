/*
 * metrics.c - request counters in the Prometheus text format.
 *
 * Lock-free: one counter per (route, status class) updated with atomic adds.
 * Unmatched requests count under the pseudo-route "unmatched".  The text is
 * served by the metrics listener (metrics_request, PAAS_METRICS_LISTEN) and
 * to admins on the API's GET /api/v1/metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "httpd.h"

#define MAX_ROUTES 512

static unsigned long counts[MAX_ROUTES + 1][6]; /* [route][1xx..5xx] */
static unsigned long micros[MAX_ROUTES + 1];
static unsigned long events[EDGE_EVENTS];

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
	__atomic_fetch_add(&micros[slot], (unsigned long) (ms * 1000.0), __ATOMIC_RELAXED);
}

char *
metrics_text(void)
{
	size_t cap = 4096 + (size_t) (n_routes + 1) * 6 * 160, len = 0;
	char *out = malloc(cap);
	int i, c;

	if (out == NULL)
		return NULL;
	len += (size_t) snprintf(out + len, cap - len,
	                         "# HELP paas_http_requests_total HTTP requests by route and status class.\n"
	                         "# TYPE paas_http_requests_total counter\n");
	for (i = 0; i <= n_routes && i <= MAX_ROUTES; i++) {
		int slot = (i == n_routes) ? MAX_ROUTES : i;
		const char *m = (i == n_routes) ? "" : routes[i].method;
		const char *p = (i == n_routes) ? "unmatched" : routes[i].pattern;
		for (c = 1; c <= 5; c++) {
			unsigned long v = __atomic_load_n(&counts[slot][c], __ATOMIC_RELAXED);
			if (v == 0 || len >= cap)
				continue;
			len += (size_t) snprintf(out + len, cap - len,
			                         "paas_http_requests_total{method=\"%s\",route=\"%s\",status=\"%dxx\"} %lu\n",
			                         m, p, c, v);
		}
	}
	if (len < cap)
		len += (size_t) snprintf(out + len, cap - len,
		                         "# HELP paas_http_request_seconds_sum Time spent answering, by route.\n"
		                         "# TYPE paas_http_request_seconds_sum counter\n");
	for (i = 0; i <= n_routes && i <= MAX_ROUTES && len < cap; i++) {
		int slot = (i == n_routes) ? MAX_ROUTES : i;
		unsigned long us = __atomic_load_n(&micros[slot], __ATOMIC_RELAXED);
		if (us == 0)
			continue;
		len += (size_t) snprintf(out + len, cap - len,
		                         "paas_http_request_seconds_sum{route=\"%s\"} %.6f\n",
		                         i == n_routes ? "unmatched" : routes[i].pattern, (double) us / 1e6);
	}
	if (len < cap) {
		unsigned long b, n, f;

		batch_stats(&b, &n, &f);
		len += (size_t) snprintf(out + len, cap - len,
		                         "# HELP paas_batches_total Database calls that carried batched requests.\n"
		                         "# TYPE paas_batches_total counter\n"
		                         "paas_batches_total %lu\n"
		                         "# HELP paas_batched_requests_total Requests carried by those calls.\n"
		                         "# TYPE paas_batched_requests_total counter\n"
		                         "paas_batched_requests_total %lu\n"
		                         "# HELP paas_batches_failed_total Batches that failed; their requests ran alone.\n"
		                         "# TYPE paas_batches_failed_total counter\n"
		                         "paas_batches_failed_total %lu\n",
		                         b, n, f);
	}
	if (len < cap) {
		unsigned long open, refused;

		edge_stats(&open, &refused);
		len += (size_t) snprintf(out + len, cap - len,
		                         "# HELP paas_http_connections_open Connections accepted and not yet closed.\n"
		                         "# TYPE paas_http_connections_open gauge\n"
		                         "paas_http_connections_open %lu\n"
		                         "# HELP paas_http_connections_refused_total Connections closed at accept (PAAS_CONN_PER_ADDR).\n"
		                         "# TYPE paas_http_connections_refused_total counter\n"
		                         "paas_http_connections_refused_total %lu\n"
		                         "# HELP paas_http_hash_busy_total Password-hashing calls refused for want of a slot (503).\n"
		                         "# TYPE paas_http_hash_busy_total counter\n"
		                         "paas_http_hash_busy_total %lu\n"
		                         "# HELP paas_http_body_timeouts_total Request bodies that did not arrive in time (408).\n"
		                         "# TYPE paas_http_body_timeouts_total counter\n"
		                         "paas_http_body_timeouts_total %lu\n"
		                         "# HELP paas_http_framing_refused_total Requests refused for their framing headers.\n"
		                         "# TYPE paas_http_framing_refused_total counter\n"
		                         "paas_http_framing_refused_total %lu\n",
		                         open, refused,
		                         __atomic_load_n(&events[EDGE_HASH_BUSY], __ATOMIC_RELAXED),
		                         __atomic_load_n(&events[EDGE_BODY_TIMEOUT], __ATOMIC_RELAXED),
		                         __atomic_load_n(&events[EDGE_REFUSED_FRAMING], __ATOMIC_RELAXED));
	}
	return out;
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
