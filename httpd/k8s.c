/*
 * k8s.c - GET /pods/:id/logs: the log of an instance, read from the
 * Kubernetes API (ROUTE_K8S routes).
 *
 * The route's function (api.pods_logs) checks the caller and answers
 * {"$k8s": {apiUrl, tokenFile, caFile, instanceId, name, namespace,
 * labelSelector, container, tailLines, previous}}; no transaction is open
 * any more when this file
 *   1. lists the instance's pods (GET /api/v1/namespaces/<ns>/pods with the
 *      label selector) and takes the newest one that is not being deleted;
 *   2. reads its log (GET .../pods/<pod>/log?container=&tailLines=, at most
 *      1 MiB) and sends it as {podName, container, tailLines, logs, lines}.
 * No pod: 409; the API refusing (a container still waiting): 409 with its
 * message; the API unreachable or failing: 502 GATEWAY_ERROR.
 *
 * Configuration: the API URL, token file and CA file come from the
 * database's settings (paas.k8s_api_url, paas.k8s_token_file,
 * paas.k8s_ca_file, as the provisioner uses them); PAAS_K8S_API_URL,
 * PAAS_K8S_TOKEN_FILE and PAAS_K8S_CA_FILE override them for httpd, and an
 * empty URL means in-cluster (https://$KUBERNETES_SERVICE_HOST:...).  The
 * token file is read on every call, so a rotated token is used at once; the
 * token is never logged.  "out" (the function's answer) stays the caller's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "httpd.h"

#define K8S_MAX_LIST (8 * 1024 * 1024)
#define K8S_MAX_LOG (1024 * 1024)
#define K8S_TIMEOUT_MS 5000L

struct kbuf {
	char *data;
	size_t len;
	size_t max;
};

static size_t
kcollect(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct kbuf *b = userdata;
	size_t n = size * nmemb;
	char *p;

	if (b->len + n > b->max)
		n = b->max - b->len; /* keep what fits; a log is cut, a list fails to parse */
	if (n == 0)
		return size * nmemb;
	p = realloc(b->data, b->len + n + 1);
	if (p == NULL)
		return 0;
	b->data = p;
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return size * nmemb;
}

static const char *
setting(const char *env, json_t *k8s, const char *key)
{
	const char *v = getenv(env);

	if (v && *v)
		return v;
	return json_string_value(json_object_get(k8s, key));
}

/* The API base URL (no trailing slash) into buf; -1 when none is known. */
static int
api_base(json_t *k8s, char *buf, size_t len)
{
	const char *url = setting("PAAS_K8S_API_URL", k8s, "apiUrl");
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	size_t n;

	if (url && *url)
		snprintf(buf, len, "%s", url);
	else if (host && *host) {
		const char *port = getenv("KUBERNETES_SERVICE_PORT");
		snprintf(buf, len, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		         (port && *port) ? port : "443");
	} else
		return -1;
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
	return 0;
}

/* "Authorization: Bearer <token>" from the token file, or "" (malloc'd). */
static char *
auth_header(json_t *k8s)
{
	const char *path = setting("PAAS_K8S_TOKEN_FILE", k8s, "tokenFile");
	char tok[8192];
	size_t n = 0;
	FILE *f;
	char *h;

	if (path && *path && (f = fopen(path, "r")) != NULL) {
		n = fread(tok, 1, sizeof(tok) - 1, f);
		fclose(f);
	}
	tok[n] = '\0';
	while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
		tok[--n] = '\0';
	if (n == 0)
		return strdup("");
	h = malloc(n + 32);
	if (h)
		snprintf(h, n + 32, "Authorization: Bearer %s", tok);
	return h;
}

/*
 * GET url into b; returns the HTTP status, 0 on a transport failure (err
 * filled).
 */
static long
kget(const char *url, const char *auth, const char *ca, struct kbuf *b, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	char ebuf[CURL_ERROR_SIZE] = "";
	long http = 0;
	CURLcode rc;
	CURL *h = curl_easy_init();

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return 0;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json, */*");
	if (auth && *auth)
		hdrs = curl_slist_append(hdrs, auth);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, K8S_TIMEOUT_MS / 2);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, K8S_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "paas-httpd");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, kcollect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	if (ca && *ca && access(ca, R_OK) == 0)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
	else
		snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return http;
}

/* The message of a Kubernetes Status answer, or the text itself. */
static void
status_message(const struct kbuf *b, char *out, size_t len)
{
	json_t *st = b->data ? json_loads(b->data, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(st, "message"));

	snprintf(out, len, "%s", m ? m : (b->data ? b->data : "no answer"));
	json_decref(st);
}

/* A JSON string of text that may not be UTF-8 (bytes that are not become "?"). */
static json_t *
text_string(const char *p, size_t n)
{
	json_t *v = json_stringn(p, n);
	char *copy;
	size_t i;

	if (v != NULL)
		return v;
	copy = malloc(n + 1);
	if (copy == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		copy[i] = ((unsigned char) p[i] < 0x80 && p[i] != '\0') ? p[i] : '?';
	v = json_stringn_nocheck(copy, n);
	free(copy);
	return v;
}

/* Name of the newest pod of a PodList that is not being deleted (borrowed). */
static const char *
newest_pod(json_t *list)
{
	json_t *items = json_object_get(list, "items"), *it;
	const char *best = NULL, *best_ts = "";
	size_t i;

	json_array_foreach(items, i, it) {
		json_t *md = json_object_get(it, "metadata");
		const char *name = json_string_value(json_object_get(md, "name"));
		const char *ts = json_string_value(json_object_get(md, "creationTimestamp"));

		if (name == NULL || json_object_get(md, "deletionTimestamp") != NULL)
			continue;
		if (best == NULL || (ts && strcmp(ts, best_ts) > 0)) {
			best = name;
			best_ts = ts ? ts : "";
		}
	}
	return best;
}

int
k8s_logs_reply(struct mg_connection *conn, const struct route *rt, json_t *out)
{
	json_t *k8s = json_object_get(out, "$k8s");
	const char *ns = json_string_value(json_object_get(k8s, "namespace"));
	const char *sel = json_string_value(json_object_get(k8s, "labelSelector"));
	const char *container = json_string_value(json_object_get(k8s, "container"));
	json_int_t tail = json_integer_value(json_object_get(k8s, "tailLines"));
	int previous = json_is_true(json_object_get(k8s, "previous"));
	const char *ca = setting("PAAS_K8S_CA_FILE", k8s, "caFile");
	struct kbuf list = {NULL, 0, K8S_MAX_LIST}, log = {NULL, 0, K8S_MAX_LOG};
	char base[1024], url[2048], err[512] = "", msg[600];
	char *auth = NULL, *esc_sel = NULL, *esc_c = NULL, *esc_pod = NULL;
	json_t *pods = NULL, *data = NULL, *lines = NULL;
	const char *pod;
	long http;
	int status = -1;

	curl_global_init(CURL_GLOBAL_ALL);
	if (k8s == NULL || ns == NULL || sel == NULL || container == NULL) {
		status = reply_error(conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		goto done;
	}
	if (api_base(k8s, base, sizeof(base)) != 0) {
		status = reply_error(conn, 502, "GATEWAY_ERROR", "No Kubernetes API is configured", NULL, NULL);
		goto done;
	}
	auth = auth_header(k8s);
	esc_sel = curl_easy_escape(NULL, sel, 0);
	esc_c = curl_easy_escape(NULL, container, 0);
	if (auth == NULL || esc_sel == NULL || esc_c == NULL) {
		status = reply_error(conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		goto done;
	}

	snprintf(url, sizeof(url), "%s/api/v1/namespaces/%s/pods?labelSelector=%s", base, ns, esc_sel);
	http = kget(url, auth, ca, &list, err, sizeof(err));
	if (http != 200) {
		if (http == 0)
			snprintf(msg, sizeof(msg), "Kubernetes API unreachable: %s", err);
		else {
			status_message(&list, err, sizeof(err));
			snprintf(msg, sizeof(msg), "Kubernetes API answered %ld: %s", http, err);
		}
		status = reply_error(conn, 502, "GATEWAY_ERROR", msg, NULL, NULL);
		goto done;
	}
	pods = list.data ? json_loads(list.data, 0, NULL) : NULL;
	pod = pods ? newest_pod(pods) : NULL;
	if (pod == NULL) {
		status = reply_error(conn, 409, "CONFLICT_ERROR", "No pod of this instance is running", NULL, NULL);
		goto done;
	}

	esc_pod = curl_easy_escape(NULL, pod, 0);
	if (esc_pod == NULL) {
		status = reply_error(conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		goto done;
	}
	snprintf(url, sizeof(url), "%s/api/v1/namespaces/%s/pods/%s/log?container=%s&tailLines=%lld&limitBytes=%d%s",
	         base, ns, esc_pod, esc_c, (long long) tail, K8S_MAX_LOG, previous ? "&previous=true" : "");
	http = kget(url, auth, ca, &log, err, sizeof(err));
	if (http != 200) {
		if (http == 0) {
			snprintf(msg, sizeof(msg), "Kubernetes API unreachable: %s", err);
			status = reply_error(conn, 502, "GATEWAY_ERROR", msg, NULL, NULL);
		} else {
			status_message(&log, err, sizeof(err));
			snprintf(msg, sizeof(msg), "The log cannot be read: %s", err);
			status = reply_error(conn, http >= 500 ? 502 : 409, http >= 500 ? "GATEWAY_ERROR" : "CONFLICT_ERROR",
			                     msg, NULL, NULL);
		}
		goto done;
	}

	lines = json_array();
	if (lines && log.data) {
		char *p = log.data, *nl;
		while (*p) {
			nl = strchr(p, '\n');
			json_array_append_new(lines, text_string(p, nl ? (size_t) (nl - p) : strlen(p)));
			if (nl == NULL)
				break;
			p = nl + 1;
		}
	}
	data = json_pack("{s:O?, s:O?, s:s, s:s, s:I, s:o, s:O}", "instanceId", json_object_get(k8s, "instanceId"),
	                 "name", json_object_get(k8s, "name"), "podName", pod, "container", container,
	                 "tailLines", tail, "logs", text_string(log.data ? log.data : "", log.len),
	                 "lines", lines);
	if (data == NULL) {
		status = reply_error(conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		goto done;
	}
	status = reply_success(conn, rt->status, rt->message, data, NULL);
	data = NULL; /* reply_success takes the reference */

done:
	/* "out" belongs to the caller */
	json_decref(pods);
	json_decref(lines);
	json_decref(data);
	curl_free(esc_sel);
	curl_free(esc_c);
	curl_free(esc_pod);
	free(auth);
	free(list.data);
	free(log.data);
	return status;
}
