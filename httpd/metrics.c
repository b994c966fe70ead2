/*
 * metrics.c - request counters in the Prometheus text format.
 *
 * Lock-free: one counter per (route, status class) updated with atomic adds.
 * Unmatched requests count under the pseudo-route "unmatched".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

#define MAX_ROUTES 512

static unsigned long counts[MAX_ROUTES + 1][6]; /* [route][1xx..5xx] */
static unsigned long micros[MAX_ROUTES + 1];

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
	size_t cap = 2048 + (size_t) (n_routes + 1) * 6 * 160, len = 0;
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
	return out;
}
