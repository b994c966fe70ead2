/*
 * reply.c - the response envelope of the HTTP contract (../shared/API.md).
 *
 *   success: {success, message, data, [pagination], timestamp, statusCode}
 *   error:   {success, message, code, details, [errors], timestamp, statusCode}
 *
 * The body's statusCode always equals the HTTP status.  Every reply leaves
 * in one write (status line, headers and body).
 *
 * The reply seam (docs/architecture.md).  A route row names the status and
 * message of its success reply; the route's function may choose others for
 * one call, PostgREST-style, with transaction-local settings:
 *     PERFORM set_config('response.status', '200', true);
 *     PERFORM set_config('response.message', 'Worker node information updated successfully', true);
 *     PERFORM set_config('response.headers', '{"Location": "/api/v1/..."}', true);
 * db.c reads them in the statement of the call itself; reply_use() checks
 * them and the next success envelope of the request uses them:
 *   - response.status: 200-299 except 204 and 205 (the envelope is a body);
 *   - response.message: 1-200 bytes of UTF-8 text without control characters;
 *   - response.headers: a JSON object {"Name": "value"} or PostgREST's array
 *     [{"Name": "value"}, ...]; at most 16 headers of a token name (at most
 *     64 bytes) and a value of printable ASCII (at most 512 bytes), never
 *     one that frames or types the reply (Content-*, Transfer-Encoding,
 *     Connection, ...), that httpd sets itself (Cache-Control, Date, ...) or
 *     a CORS header (Access-Control-*).
 * An empty or unset setting is no setting.  Anything else is a fault of the
 * function (it has committed by then): logged as "reply_settings_invalid"
 * and answered 500, never passed through.  Error replies never use them.
 */
#define _GNU_SOURCE /* vasprintf */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/time.h>

#include <civetweb.h>
#include <openssl/rand.h>

#include "httpd.h"

char *
iso_now(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int) (tv.tv_usec / 1000));
	return buf;
}

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 400: return "Bad Request";
	case 405: return "Method Not Allowed";
	case 411: return "Length Required";
	case 417: return "Expectation Failed";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

/*
 * A reply that closes the connection must tell CivetWeb too: a
 * "Connection: close" header alone leaves it reading (and discarding) the
 * rest of the body with the request timeout of every read, then keeping
 * the connection, so a 413 or a short body held a worker thread 30-60 s.
 * mg_disable_connection_keep_alive() makes it close once the handler
 * returns, without reading on.  The flag is the request's, hence per thread.
 */
static __thread int closing, body_pending;

/* the reply settings of this request's call (reply_use); 0 / "": the route's */
static __thread int ov_status;
static __thread char ov_message[256];
static __thread char ov_headers[16 * (64 + 512 + 4) + 1];

/*
 * What every reply of the request carries, set by reply_begin (handler.c)
 * and cleared by reply_reset: the request id (X-Request-Id), the CORS
 * headers of an allowed Origin, and whether the request is a HEAD (the
 * headers of GET's reply, no body).  Per thread, like the flags above: a
 * worker thread serves one request at a time.
 */
static __thread char request_id[PAAS_MAX_REQUEST_ID + 1];
static __thread char cors_headers[PAAS_MAX_ORIGIN + 160];
static __thread int head_only;
/* called once with the status before the request's reply leaves (reply_on_send) */
static __thread void (*send_hook)(int status, void *arg);
static __thread void *send_hook_arg;

void
reply_on_send(void (*hook)(int status, void *arg), void *arg)
{
	send_hook = hook;
	send_hook_arg = arg;
}

static void
before_send(int status)
{
	void (*hook)(int, void *) = send_hook;

	send_hook = NULL;
	if (hook)
		hook(status, send_hook_arg);
}

/* RFC 9110 token characters: what a request id may be made of */
static int
is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int
request_id_valid(const char *id)
{
	size_t n;

	if (id == NULL)
		return 0;
	for (n = 0; id[n] != '\0'; n++)
		if (n >= PAAS_MAX_REQUEST_ID || !is_tchar((unsigned char) id[n]))
			return 0;
	return n > 0;
}

/* A new request id: 128 random bits as 32 hex digits; 0 ok. */
static int
request_id_make(char *out, size_t len)
{
	unsigned char b[16];
	size_t i;

	if (len < 33 || RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	for (i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return 0;
}

void
reply_begin(const char *client_id, int head, const char *cors)
{
	if (request_id_valid(client_id))
		snprintf(request_id, sizeof(request_id), "%s", client_id);
	else if (request_id_make(request_id, sizeof(request_id)) != 0)
		request_id[0] = '\0';
	head_only = head;
	snprintf(cors_headers, sizeof(cors_headers), "%s", cors ? cors : "");
}

const char *
reply_request_id(void)
{
	return request_id[0] ? request_id : NULL;
}

int
reply_head_only(void)
{
	return head_only;
}

const char *
reply_cors_headers(void)
{
	return cors_headers;
}

/*
 * One line of httpd's own log (stderr): "fmt" formats a JSON object (and
 * its newline), which gets the time ("ts", ISO 8601 UTC) and, within a
 * request, its id as its first members.  One write: lines never interleave.
 */
void
log_event(const char *fmt, ...)
{
	char ts[40], head[PAAS_MAX_REQUEST_ID + 80], *text = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	if (text[0] != '{') {
		fputs(text, stderr);
		free(text);
		return;
	}
	/* the id is made of token characters: nothing to escape */
	snprintf(head, sizeof(head), "{\"ts\":\"%s\"%s%s%s", iso_now(ts, sizeof(ts)),
	         request_id[0] ? ",\"requestId\":\"" : "", request_id, request_id[0] ? "\"" : "");
	fprintf(stderr, "%s%s%s", head, text[1] == '}' ? "" : ",", text + 1);
	free(text);
}

void
reply_close(struct mg_connection *conn)
{
	closing = 1;
	mg_disable_connection_keep_alive(conn);
}

void
reply_body_pending(int pending)
{
	body_pending = pending;
}

void
reply_reset(void)
{
	closing = 0;
	body_pending = 0;
	ov_status = 0;
	ov_message[0] = ov_headers[0] = '\0';
	request_id[0] = '\0';
	cors_headers[0] = '\0';
	head_only = 0;
	send_hook = NULL;
	send_hook_arg = NULL;
}

static int
settings_fault(const struct route *rt, const char *setting, const char *reason)
{
	log_event(
	        "{\"event\":\"reply_settings_invalid\",\"route\":\"%s %s\",\"setting\":\"%s\","
	        "\"reason\":\"%s\"}\n",
	        rt->method, rt->pattern, setting, reason);
	return -1;
}

static int
header_name_ok(const char *n)
{
	static const char *const refused[] = {
	    "Content-Type", "Content-Length", "Content-Encoding", "Content-Range", "Transfer-Encoding",
	    "Connection", "Keep-Alive", "Upgrade", "Trailer", "TE", "Proxy-Connection", "Date",
	    "Server", "Cache-Control", "X-Content-Type-Options", "Retry-After", "Idempotency-Key",
	    NULL};
	size_t i, len = strlen(n);

	if (len == 0 || len > 64)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char) n[i];
		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
		    strchr("!#$%&'*+-.^_`|~", c) == NULL)
			return 0;
	}
	if (strncasecmp(n, "Access-Control-", 15) == 0)
		return 0;
	for (i = 0; refused[i] != NULL; i++)
		if (strcasecmp(n, refused[i]) == 0)
			return 0;
	return 1;
}

/* Appends "Name: value\r\n" to ov_headers; the reason on failure. */
static const char *
add_header(const char *name, json_t *value, size_t *len)
{
	const char *v = json_string_value(value);
	size_t i, vl;
	int n;

	if (!header_name_ok(name))
		return "header name refused";
	if (v == NULL)
		return "header value is not a string";
	vl = strlen(v);
	if (vl > 512)
		return "header value over 512 bytes";
	for (i = 0; i < vl; i++)
		if ((unsigned char) v[i] < 0x20 || (unsigned char) v[i] > 0x7e)
			return "header value is not printable ASCII";
	n = snprintf(ov_headers + *len, sizeof(ov_headers) - *len, "%s: %s\r\n", name, v);
	if (n < 0 || (size_t) n >= sizeof(ov_headers) - *len)
		return "too many headers";
	*len += (size_t) n;
	return NULL;
}

static const char *
take_headers(const char *text)
{
	json_t *h = json_loads(text, JSON_REJECT_DUPLICATES, NULL), *v, *item;
	const char *why = NULL, *name;
	size_t len = 0, count = 0, i;

	if (json_is_object(h)) {
		json_object_foreach(h, name, v) {
			if (why == NULL && ++count > 16)
				why = "more than 16 headers";
			if (why == NULL)
				why = add_header(name, v, &len);
		}
	} else if (json_is_array(h)) {
		json_array_foreach(h, i, item) {
			if (why == NULL && (!json_is_object(item) || json_object_size(item) != 1))
				why = "an array item is not an object of one header";
			if (why == NULL && ++count > 16)
				why = "more than 16 headers";
			json_object_foreach(item, name, v) {
				if (why == NULL)
					why = add_header(name, v, &len);
			}
		}
	} else {
		why = "not a JSON object or array";
	}
	json_decref(h);
	return why;
}

int
reply_use(const struct db_result *res, const struct route *rt)
{
	const char *s = res->reply_status, *m = res->reply_message, *why;
	size_t i, ml = strlen(m);

	ov_status = 0;
	ov_message[0] = ov_headers[0] = '\0';
	if (res->reply_too_long)
		return settings_fault(rt, "response.*", "setting too long");
	if (s[0] != '\0') {
		if (strlen(s) != 3 || s[0] != '2' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
		    s[2] > '9' || strcmp(s, "204") == 0 || strcmp(s, "205") == 0)
			return settings_fault(rt, "response.status", "not a success status 200-299 (but 204, 205)");
		ov_status = atoi(s);
	}
	if (ml > 0) {
		if (ml > 200 || !utf8_valid(m, ml))
			goto bad_message;
		for (i = 0; i < ml; i++)
			if ((unsigned char) m[i] < 0x20 || m[i] == 0x7f)
				goto bad_message;
		memcpy(ov_message, m, ml + 1);
	}
	if (res->reply_headers[0] != '\0' && (why = take_headers(res->reply_headers)) != NULL) {
		ov_status = 0;
		ov_message[0] = ov_headers[0] = '\0';
		return settings_fault(rt, "response.headers", why);
	}
	return 0;

bad_message:
	ov_status = 0;
	ov_message[0] = '\0';
	return settings_fault(rt, "response.message", "not 1-200 bytes of text");
}

/*
 * Sends "text" (tlen bytes) of the given type with the given status:
 * status line, headers and body leave in ONE write (CivetWeb's header API
 * sends each header line in its own write, which with tcp_nodelay means a
 * packet per line).  "Connection: close" in extra_headers closes the
 * connection after the reply (reply_close).  Every reply carries the
 * request's id and CORS lines (reply_begin); a HEAD's has no body.
 */
int
reply_body(struct mg_connection *conn, int status, const char *content_type,
           const char *cache_control, const char *text, size_t tlen, const char *extra_headers)
{
	char *out;
	size_t hlen, cap;
	int n, asked = extra_headers && strstr(extra_headers, "Connection: close") != NULL;

	if (asked || body_pending)
		reply_close(conn);
	cap = 512 + strlen(content_type) + strlen(cache_control) + sizeof(request_id) +
	      sizeof(cors_headers) + (extra_headers ? strlen(extra_headers) : 0) + tlen;
	out = malloc(cap);
	if (out == NULL)
		return -1;
	n = snprintf(out, cap,
	             "HTTP/1.1 %d %s\r\n"
	             "Content-Type: %s\r\n"
	             "Content-Length: %zu\r\n"
	             "Cache-Control: %s\r\n"
	             "X-Content-Type-Options: nosniff\r\n"
	             "%s%s%s%s%s%s\r\n",
	             status, status_text(status), content_type, tlen, cache_control,
	             request_id[0] ? "X-Request-Id: " : "", request_id, request_id[0] ? "\r\n" : "",
	             cors_headers, extra_headers ? extra_headers : "",
	             closing && !asked ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t) n + tlen > cap) {
		free(out);
		return -1;
	}
	hlen = (size_t) n;
	memcpy(out + hlen, text, tlen);
	before_send(status);
	/* HEAD: GET's status and headers (its Content-Length too), no body */
	mg_write(conn, out, head_only ? hlen : hlen + tlen);
	free(out);
	return status;
}

/* 204 with the request's common headers and extra_headers; 204 or -1 */
int
reply_no_content(struct mg_connection *conn, const char *extra_headers)
{
	char out[1024 + sizeof(request_id) + sizeof(cors_headers)];
	int n, asked = extra_headers && strstr(extra_headers, "Connection: close") != NULL;

	if (asked || body_pending)
		reply_close(conn);
	n = snprintf(out, sizeof(out), "HTTP/1.1 204 No Content\r\n%s%s%s%s%s%s\r\n",
	             request_id[0] ? "X-Request-Id: " : "", request_id, request_id[0] ? "\r\n" : "",
	             cors_headers, extra_headers ? extra_headers : "",
	             closing && !asked ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t) n >= sizeof(out))
		return -1;
	before_send(204);
	mg_write(conn, out, (size_t) n);
	return 204;
}

static int
send_json_text(struct mg_connection *conn, int status, const char *text, size_t tlen,
               const char *extra_headers)
{
	return reply_body(conn, status, "application/json; charset=utf-8", "no-store", text, tlen,
	                  extra_headers);
}

/* Sends "body" (reference stolen) as JSON with the given status. */
int
reply_json(struct mg_connection *conn, int status, json_t *body, const char *extra_headers)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc = text ? send_json_text(conn, status, text, strlen(text), extra_headers) : -1;

	free(text);
	json_decref(body);
	return rc;
}

/*
 * The success envelope around JSON text that PostgreSQL produced, without
 * parsing it again: "data_text" is the value of "data" (NULL: null), or,
 * with "members" set, an object whose members ({"data", "pagination"} of a
 * paginated route) become members of the envelope.  The text comes from
 * jsonb output, so it is valid JSON; the message is a route's own constant.
 */
int
reply_success_text(struct mg_connection *conn, int status, const char *message,
                   const char *data_text, int members)
{
	char ts[40];
	char *msg = NULL, *out;
	json_t *m;
	size_t dlen, cap;
	int n, rc = -1;

	if (ov_status)
		status = ov_status;
	if (ov_message[0])
		message = ov_message;
	m = json_string(message ? message : "Success");

	if (data_text == NULL) {
		data_text = "null";
		members = 0;
	}
	dlen = strlen(data_text);
	if (members) {
		/* strip the outer braces: "{...}" -> "..." */
		if (dlen < 2 || data_text[0] != '{' || data_text[dlen - 1] != '}') {
			json_decref(m);
			return -1;
		}
		data_text++;
		dlen -= 2;
	}
	msg = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
	json_decref(m);
	if (msg == NULL)
		return -1;
	cap = dlen + strlen(msg) + 128;
	out = malloc(cap);
	if (out != NULL) {
		n = snprintf(out, cap, "{\"success\":true,\"message\":%s,%s%.*s,\"timestamp\":\"%s\",\"statusCode\":%d}",
		             msg, members ? "" : "\"data\":", (int) dlen, data_text,
		             iso_now(ts, sizeof(ts)), status);
		if (n > 0 && (size_t) n < cap)
			rc = send_json_text(conn, status, out, (size_t) n, ov_headers[0] ? ov_headers : NULL);
		free(out);
	}
	free(msg);
	return rc;
}

int
reply_success(struct mg_connection *conn, int status, const char *message,
              json_t *data, json_t *pagination)
{
	char ts[40];
	json_t *body = json_object();

	if (ov_status)
		status = ov_status;
	if (ov_message[0])
		message = ov_message;
	json_object_set_new(body, "success", json_true());
	json_object_set_new(body, "message", json_string(message ? message : "Success"));
	json_object_set_new(body, "data", data ? data : json_null());
	if (pagination)
		json_object_set_new(body, "pagination", pagination);
	json_object_set_new(body, "timestamp", json_string(iso_now(ts, sizeof(ts))));
	json_object_set_new(body, "statusCode", json_integer(status));
	return reply_json(conn, status, body, ov_headers[0] ? ov_headers : NULL);
}

/*
 * CivetWeb's http_error callback (main.c): the errors it answers itself, for
 * requests it cannot parse (bad request line, headers over its buffer, an
 * unknown HTTP version), in the API's envelope.  Its own reply would start
 * "HTTP/<the request's version text>", and its message may quote the
 * request: neither is echoed.  0 = answered.
 */
int
reply_http_error(struct mg_connection *conn, int status, const char *message)
{
	const char *code = status == 413   ? "PAYLOAD_TOO_LARGE"
	                   : status == 505 ? "HTTP_VERSION_NOT_SUPPORTED"
	                   : status == 404 ? "ENDPOINT_NOT_FOUND"
	                   : status >= 500 ? "INTERNAL_ERROR"
	                                   : "VALIDATION_ERROR";

	int rc, own = request_id[0] == '\0';

	(void) message;
	/* outside handle_request: a request that could not be read gets an id of its own */
	if (own)
		reply_begin(NULL, 0, NULL);
	rc = reply_error(conn, status, code, status_text(status), NULL, "Connection: close\r\n") > 0
	         ? 0
	         : 1;
	if (own)
		reply_reset();
	return rc;
}

int
reply_error(struct mg_connection *conn, int status, const char *code,
            const char *message, json_t *errors, const char *extra_headers)
{
	char ts[40];
	json_t *body = json_object();

	json_object_set_new(body, "success", json_false());
	json_object_set_new(body, "message", json_string(message ? message : "error"));
	json_object_set_new(body, "code", json_string(code));
	json_object_set_new(body, "details", errors ? json_incref(errors) : json_null());
	if (errors)
		json_object_set_new(body, "errors", errors);
	json_object_set_new(body, "timestamp", json_string(iso_now(ts, sizeof(ts))));
	json_object_set_new(body, "statusCode", json_integer(status));
	return reply_json(conn, status, body, extra_headers);
}
