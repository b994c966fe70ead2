/*
 * midtrans.c - the Snap round trip of ROUTE_SNAP routes (POST /billing/topup,
 * POST /billing/transactions/:id/pay).
 *
 * The route's function is called as usual.  When it answers
 * {"$snap": {orderId, amount, firstName, lastName, email, expiryMinutes}}
 * the PENDING top-up and its order are already committed; this file then
 *   1. calls POST {snap}/transactions with libcurl, outside any database
 *      transaction, with bounded timeouts;
 *   2. calls the SAME function again with ctx.snap = {orderId, token,
 *      redirectUrl} or {orderId, error}; it stores the link, or records the
 *      failure and answers a committed PT502 (the top-up stays PENDING and
 *      the request can be retried).
 * ctx is built by httpd only, so no client can forge the second step.
 *
 * Configuration (environment, read once): MIDTRANS_SERVER_KEY (secret, never
 * logged), MIDTRANS_IS_PRODUCTION (0/1: production or sandbox hosts),
 * MIDTRANS_SNAP_URL (overrides the Snap base URL, e.g. a test fake),
 * MIDTRANS_TIMEOUT_MS (whole call, default 10000; connect is at most half),
 * MIDTRANS_FINISH_URL (optional browser redirect after payment).
 * Without a server key every Snap call fails, so top-ups answer 502.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "httpd.h"

#define SNAP_MAX_RESPONSE (64 * 1024)

static struct {
	const char *server_key;
	char snap_url[512];
	long timeout_ms;
	const char *finish_url;
} mt;

static pthread_once_t mt_once = PTHREAD_ONCE_INIT;

static void
mt_load(void)
{
	const char *v;
	int production = (v = getenv("MIDTRANS_IS_PRODUCTION")) != NULL &&
	                 (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);

	v = getenv("MIDTRANS_SERVER_KEY");
	mt.server_key = (v && *v) ? v : NULL;
	v = getenv("MIDTRANS_SNAP_URL");
	snprintf(mt.snap_url, sizeof(mt.snap_url), "%s",
	         (v && *v) ? v
	                   : production ? "https://app.midtrans.com/snap/v1"
	                                : "https://app.sandbox.midtrans.com/snap/v1");
	mt.timeout_ms = 10000;
	if ((v = getenv("MIDTRANS_TIMEOUT_MS")) != NULL && atol(v) >= 100 && atol(v) <= 60000)
		mt.timeout_ms = atol(v);
	v = getenv("MIDTRANS_FINISH_URL");
	mt.finish_url = (v && *v) ? v : NULL;
	curl_global_init(CURL_GLOBAL_ALL);
	log_event(
	        "{\"event\":\"midtrans_config\",\"snapUrl\":\"%s\",\"production\":%d,"
	        "\"serverKeySet\":%s,\"timeoutMs\":%ld}\n",
	        mt.snap_url, production, mt.server_key ? "true" : "false", mt.timeout_ms);
}

struct buf {
	char *data;
	size_t len;
};

static size_t
collect(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct buf *b = userdata;
	size_t n = size * nmemb;
	char *p;

	if (b->len + n > SNAP_MAX_RESPONSE)
		return 0;
	p = realloc(b->data, b->len + n + 1);
	if (p == NULL)
		return 0;
	b->data = p;
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* The Snap request body for one order (new reference). */
static json_t *
snap_body(json_t *snap)
{
	json_int_t amount = json_integer_value(json_object_get(snap, "amount"));
	json_int_t minutes = json_integer_value(json_object_get(snap, "expiryMinutes"));
	json_t *body, *customer;

	customer = json_pack("{s:s?, s:s?, s:s?}", "first_name",
	                     json_string_value(json_object_get(snap, "firstName")), "last_name",
	                     json_string_value(json_object_get(snap, "lastName")), "email",
	                     json_string_value(json_object_get(snap, "email")));
	body = json_pack("{s:{s:s, s:I}, s:[{s:s, s:I, s:i, s:s}], s:o, s:{s:b}, s:{s:s, s:I},"
	                 " s:{s:I, s:s}}",
	                 "transaction_details", "order_id",
	                 json_string_value(json_object_get(snap, "orderId")), "gross_amount", amount,
	                 "item_details", "id", "TOPUP", "price", amount, "quantity", 1, "name",
	                 "Credit top-up", "customer_details", customer, "credit_card", "secure", 1,
	                 "expiry", "unit", "minutes", "duration", minutes, "page_expiry",
	                 "duration", minutes, "unit", "minutes");
	if (body && mt.finish_url)
		json_object_set_new(body, "callbacks", json_pack("{s:s}", "finish", mt.finish_url));
	return body;
}

/*
 * Calls Snap for one order.  Returns {orderId, token, redirectUrl} or
 * {orderId, error} (new reference, NULL only when out of memory).
 */
static json_t *
snap_call(json_t *snap)
{
	const char *order_id = json_string_value(json_object_get(snap, "orderId"));
	json_t *body = NULL, *resp = NULL, *result = NULL;
	struct curl_slist *hdrs = NULL;
	struct buf rb = {NULL, 0};
	char url[600], err[512] = "";
	char *payload = NULL;
	long http = 0;
	CURL *h = NULL;
	CURLcode rc;
	struct timespec t0, t1;
	enum snap_outcome oc = SNAP_NOT_CONFIGURED;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (order_id == NULL) {
		snprintf(err, sizeof(err), "no order id");
		goto done;
	}
	if (mt.server_key == NULL) {
		snprintf(err, sizeof(err), "payment gateway not configured (MIDTRANS_SERVER_KEY)");
		goto done;
	}
	body = snap_body(snap);
	payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
	h = curl_easy_init();
	if (payload == NULL || h == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto done;
	}
	snprintf(url, sizeof(url), "%s/transactions", mt.snap_url);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
	curl_easy_setopt(h, CURLOPT_USERNAME, mt.server_key);
	curl_easy_setopt(h, CURLOPT_PASSWORD, "");
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, mt.timeout_ms / 2);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, mt.timeout_ms);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "paas-httpd");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &rb);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		oc = SNAP_TRANSPORT_ERROR;
		snprintf(err, sizeof(err), "snap: %s", curl_easy_strerror(rc));
		goto done;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
	resp = rb.data ? json_loads(rb.data, 0, NULL) : NULL;
	if (http == 200 || http == 201) {
		const char *token = json_string_value(json_object_get(resp, "token"));
		const char *redirect = json_string_value(json_object_get(resp, "redirect_url"));
		oc = SNAP_BAD_RESPONSE;
		if (token && *token && redirect) {
			result = json_pack("{s:s, s:s, s:s}", "orderId", order_id, "token", token,
			                   "redirectUrl", redirect);
			if (result)
				oc = SNAP_OK;
		} else
			snprintf(err, sizeof(err), "snap: HTTP %ld without token", http);
	} else {
		oc = SNAP_HTTP_ERROR;
		json_t *msgs = json_object_get(resp, "error_messages");
		char *m = json_is_array(msgs) ? json_dumps(msgs, JSON_COMPACT) : NULL;
		snprintf(err, sizeof(err), "snap: HTTP %ld %s", http, m ? m : "");
		free(m);
	}

done:
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (long) ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	metrics_snap(oc, (double) ms);
	log_event("{\"event\":\"midtrans_snap\",\"orderId\":\"%s\",\"http\":%ld,\"ok\":%s,\"ms\":%ld}\n",
	        order_id ? order_id : "", http, result ? "true" : "false", ms);
	if (result == NULL)
		result = json_pack("{s:s?, s:s}", "orderId", order_id, "error", err[0] ? err : "snap failed");
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
	free(payload);
	free(rb.data);
	json_decref(body);
	json_decref(resp);
	return result;
}

int
snap_complete(int route_index, const char *function, json_t *ctx, const char *req_text,
              const char *over_text, json_t **out, struct db_result *res)
{
	json_t *snap = json_object_get(*out, "$snap");
	json_t *ctx2 = NULL, *outcome = NULL;
	char *ctx_text = NULL;
	int rc = -2;

	memset(res, 0, sizeof(*res));
	if (snap == NULL)
		return 0;
	pthread_once(&mt_once, mt_load);
	outcome = snap_call(snap);
	ctx2 = json_deep_copy(ctx);
	if (outcome == NULL || ctx2 == NULL)
		goto done;
	json_object_set(ctx2, "snap", outcome);
	ctx_text = json_dumps(ctx2, JSON_COMPACT);
	if (ctx_text == NULL)
		goto done;
	json_decref(*out);
	*out = NULL;
	if (db_call(route_index, function, ctx_text, req_text, over_text, res) != 0) {
		rc = -1;
		goto done;
	}
	*out = res->value ? json_loads(res->value, JSON_DECODE_ANY, NULL) : json_null();
	db_result_free(res);
	/* the second step never asks for another round trip */
	if (*out != NULL && json_object_get(*out, "$snap") == NULL)
		rc = 0;

done:
	if (rc == -2 && *out != NULL) {
		json_decref(*out);
		*out = NULL;
	}
	free(ctx_text);
	json_decref(ctx2);
	json_decref(outcome);
	return rc;
}
