/*
 * handler.c - the life of one request.
 *
 *   1. match the route (404 JSON when none)
 *   2. enforce its access rule (JWT verified in-process; node tokens and
 *      account state are checked by the SQL function)
 *   3. apply the route's rate limits (429 with Retry-After)
 *   4. read the body with a bound (413 past 1 MiB) and parse it (400)
 *   5. build the request object (body, then query, then path parameters)
 *      and the context object (caller identity, client address, headers)
 *   6. call the route's ONE api function, map its SQLSTATE, write the reply
 *
 * Memory: everything allocated here is released at the "done" label.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <civetweb.h>

#include "httpd.h"

struct request {
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	struct route_match m;
	struct actor actor;
	int has_actor;
	char ip[64];
	char *body;
	size_t body_len;
	json_t *req;
	json_t *ctx;
};

static double
ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double) (t1.tv_sec - t0->tv_sec) * 1e3 + (double) (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
client_ip(struct request *r)
{
	const char *xff = cfg.trust_proxy ? mg_get_header(r->conn, "X-Forwarded-For") : NULL;

	if (xff && *xff) {
		size_t n = strcspn(xff, ", ");
		if (n >= sizeof(r->ip))
			n = sizeof(r->ip) - 1;
		memcpy(r->ip, xff, n);
		r->ip[n] = '\0';
	} else {
		snprintf(r->ip, sizeof(r->ip), "%s", r->ri->remote_addr);
	}
}

static int
is_loopback(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

static const char *
bearer(struct mg_connection *conn)
{
	const char *h = mg_get_header(conn, "Authorization");

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h ? h : NULL;
}

/* 0 = allowed; otherwise the reply has been sent and its status returned. */
static int
check_access(struct request *r)
{
	const struct route *rt = r->m.route;
	const char *tok;
	int v;

	if (rt->access == ACCESS_PUBLIC || rt->access == ACCESS_NODE)
		return 0;
	tok = bearer(r->conn);
	if (rt->access == ACCESS_LOCAL) {
		if (is_loopback(r->ri->remote_addr))
			return 0;
		if (tok && token_verify(tok, &r->actor) == 0 && strcmp(r->actor.role, "ADMINISTRATOR") == 0)
			return 0;
		return reply_error(r->conn, 403, "FORBIDDEN_ERROR", "Insufficient permissions", NULL, NULL);
	}
	if (tok == NULL)
		return reply_error(r->conn, 401, "AUTH_ERROR", "Access token required", NULL, NULL);
	v = token_verify(tok, &r->actor);
	if (v == -2)
		return reply_error(r->conn, 401, "AUTH_ERROR", "Token expired", NULL, NULL);
	if (v != 0)
		return reply_error(r->conn, 401, "AUTH_ERROR", "Invalid token", NULL, NULL);
	r->has_actor = 1;
	if (rt->access == ACCESS_ADMIN && strcmp(r->actor.role, "ADMINISTRATOR") != 0)
		return reply_error(r->conn, 403, "FORBIDDEN_ERROR", "Insufficient permissions", NULL, NULL);
	return 0;
}

static int
too_many(struct request *r, int wait)
{
	char hdr[64];
	snprintf(hdr, sizeof(hdr), "Retry-After: %d\r\n", wait);
	return reply_error(r->conn, 429, "RATE_LIMITED", "Too many requests, please try again later",
	                   NULL, hdr);
}

/* Per-address limits, before the body is read. */
static int
check_rate_ip(struct request *r)
{
	unsigned f = r->m.route->flags;
	int wait = 0;

	if (f & ROUTE_RATE_LOGIN)
		wait = ratelimit_take("login-ip", r->ip, cfg.rl_login_per_min);
	else if (f & ROUTE_RATE_REGISTER)
		wait = ratelimit_take("register-ip", r->ip, cfg.rl_register_per_min);
	else if (f & ROUTE_RATE_REFRESH)
		wait = ratelimit_take("refresh-ip", r->ip, cfg.rl_refresh_per_min);
	return wait ? too_many(r, wait) : 0;
}

/*
 * Per-user limits, before the body is read: the routes that open an order
 * at the payment gateway (ROUTE_SNAP) are limited per account, so that one
 * user cannot flood Midtrans (and their own top-up list) with orders.
 */
static int
check_rate_user(struct request *r)
{
	int wait = 0;

	if ((r->m.route->flags & ROUTE_SNAP) && r->has_actor)
		wait = ratelimit_take("topup-user", r->actor.sub, cfg.rl_topup_per_min);
	return wait ? too_many(r, wait) : 0;
}

/*
 * Failed logins slow further attempts for that account: each 401 takes a
 * token from the account's bucket (key: lower-cased email); an empty bucket
 * answers 429 before the password is even checked.
 */
static void
login_key(struct request *r, char *key, size_t len)
{
	const char *email = json_string_value(json_object_get(r->req, "email"));
	size_t i;

	key[0] = '\0';
	if (email == NULL || !(r->m.route->flags & ROUTE_RATE_LOGIN))
		return;
	for (i = 0; email[i] && i < len - 1; i++)
		key[i] = (char) ((email[i] >= 'A' && email[i] <= 'Z') ? email[i] + 32 : email[i]);
	key[i] = '\0';
}

static int
check_rate_account(struct request *r)
{
	char key[256];
	int wait;

	login_key(r, key, sizeof(key));
	if (key[0] == '\0')
		return 0;
	wait = ratelimit_peek("login-fail", key, cfg.rl_account_per_min);
	return wait ? too_many(r, wait) : 0;
}

static void
count_login_failure(struct request *r, int status)
{
	char key[256];

	if (status != 401)
		return;
	login_key(r, key, sizeof(key));
	if (key[0] != '\0')
		ratelimit_take("login-fail", key, cfg.rl_account_per_min);
}

static int
read_body(struct request *r)
{
	long long cl = r->ri->content_length;
	size_t cap = PAAS_MAX_BODY + 1;
	int n;

	if (cl > PAAS_MAX_BODY)
		return reply_error(r->conn, 413, "PAYLOAD_TOO_LARGE", "Request entity too large", NULL,
		                   "Connection: close\r\n");
	r->body = malloc(cap + 1);
	if (r->body == NULL)
		return reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
	while (r->body_len < cap && (n = mg_read(r->conn, r->body + r->body_len, cap - r->body_len)) > 0)
		r->body_len += (size_t) n;
	if (r->body_len > PAAS_MAX_BODY)
		return reply_error(r->conn, 413, "PAYLOAD_TOO_LARGE", "Request entity too large", NULL,
		                   "Connection: close\r\n");
	r->body[r->body_len] = '\0';
	return 0;
}

static void
add_query(json_t *obj, const char *qs)
{
	char key[128], val[1024];
	const char *p = qs;

	while (p && *p) {
		const char *amp = strchr(p, '&'), *eq;
		size_t len = amp ? (size_t) (amp - p) : strlen(p);

		eq = memchr(p, '=', len);
		if (eq && eq > p) {
			int kl = mg_url_decode(p, (int) (eq - p), key, sizeof(key), 1);
			int vl = mg_url_decode(eq + 1, (int) (len - (size_t) (eq - p) - 1), val, sizeof(val), 1);
			if (kl > 0 && vl >= 0)
				json_object_set_new(obj, key, json_string(val));
		}
		p = amp ? amp + 1 : NULL;
	}
}

/* Builds r->req; 0 or the status of the error reply already sent. */
static int
build_request(struct request *r)
{
	json_error_t jerr;
	int i;

	if (r->body_len > 0) {
		r->req = json_loadb(r->body, r->body_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
		if (r->req == NULL) {
			json_t *errs = json_pack("[{s:s, s:s}]", "field", "body", "message", jerr.text);
			return reply_error(r->conn, 400, "VALIDATION_ERROR", "Malformed JSON body", errs, NULL);
		}
		if (!json_is_object(r->req)) {
			json_t *errs = json_pack("[{s:s, s:s}]", "field", "body", "message",
			                         "request body must be a JSON object");
			return reply_error(r->conn, 400, "VALIDATION_ERROR", "Validation failed", errs, NULL);
		}
	} else {
		r->req = json_object();
	}
	add_query(r->req, r->ri->query_string);
	for (i = 0; i < r->m.nparams; i++)
		json_object_set_new(r->req, r->m.names[i], json_string(r->m.values[i]));
	return 0;
}

static void
build_context(struct request *r)
{
	const char *h;

	r->ctx = json_object();
	json_object_set_new(r->ctx, "ip", json_string(r->ip));
	if (r->has_actor) {
		json_object_set_new(r->ctx, "userId", json_string(r->actor.sub));
		json_object_set_new(r->ctx, "role", json_string(r->actor.role));
		json_object_set_new(r->ctx, "sid", json_string(r->actor.sid));
	}
	if (r->m.route->access == ACCESS_NODE && (h = bearer(r->conn)) != NULL)
		json_object_set_new(r->ctx, "nodeToken", json_string(h));
	if ((h = mg_get_header(r->conn, "Idempotency-Key")) != NULL && strlen(h) <= 255)
		json_object_set_new(r->ctx, "idempotencyKey", json_string(h));
	if ((h = mg_get_header(r->conn, "User-Agent")) != NULL && strlen(h) <= 512)
		json_object_set_new(r->ctx, "userAgent", json_string(h));
}

/* Session returned by a login-like function: mint the access token. */
static int
add_tokens(json_t *data)
{
	json_t *session = json_object_get(data, "session");
	const char *sub, *role, *sid, *refresh;
	char *access;
	long ttl = 0;
	json_t *tokens;

	sub = json_string_value(json_object_get(session, "userId"));
	role = json_string_value(json_object_get(session, "role"));
	sid = json_string_value(json_object_get(session, "sid"));
	refresh = json_string_value(json_object_get(data, "refreshToken"));
	if (!sub || !role || !sid || !refresh)
		return -1;
	access = token_mint(sub, role, sid, &ttl);
	if (access == NULL)
		return -1;
	tokens = json_pack("{s:s, s:s, s:I}", "accessToken", access, "refreshToken", refresh,
	                   "expiresIn", (json_int_t) ttl);
	json_object_set_new(data, "accessToken", json_string(access));
	json_object_set_new(data, "expiresIn", json_integer(ttl));
	json_object_set_new(data, "tokens", tokens);
	json_object_del(data, "session");
	free(access);
	return 0;
}

static int
reply_db_error(struct request *r, struct db_result *res)
{
	const struct http_error *he;
	json_t *errs = NULL;
	char hdr[64] = "";

	if (res->conn_lost)
		return reply_error(r->conn, 503, "SERVICE_UNAVAILABLE", "Database unavailable", NULL,
		                   "Retry-After: 1\r\n");
	he = sqlstate_to_http(res->sqlstate);
	if (he->status >= 500) {
		fprintf(stderr, "{\"event\":\"sql_error\",\"route\":\"%s %s\",\"sqlstate\":\"%s\"}\n",
		        r->m.route->method, r->m.route->pattern, res->sqlstate);
		if (he->status == 500)
			return reply_error(r->conn, 500, he->code, "Internal server error", NULL, NULL);
		return reply_error(r->conn, he->status, he->code, "Service temporarily unavailable",
		                   NULL, "Retry-After: 1\r\n");
	}
	if (res->detail && res->detail[0] == '[')
		errs = json_loads(res->detail, 0, NULL);
	if (he->status == 429 && res->detail)
		snprintf(hdr, sizeof(hdr), "Retry-After: %d\r\n", atoi(res->detail));
	return reply_error(r->conn, he->status, he->code, res->message, errs, hdr);
}

/*
 * A function that must keep what it wrote and still refuse the call returns
 * {"$error": {"sqlstate", "message"}} (paas.refusal); it is answered through
 * the same SQLSTATE table as a raised error.  0 when "out" is no refusal.
 */
static int
committed_refusal(struct request *r, json_t *out)
{
	json_t *e = json_object_get(out, "$error");
	const struct http_error *he;

	if (e == NULL)
		return 0;
	he = sqlstate_to_http(json_string_value(json_object_get(e, "sqlstate")));
	return reply_error(r->conn, he->status, he->code,
	                   json_string_value(json_object_get(e, "message")), NULL, NULL);
}

/*
 * Whether a function's JSON text is a committed refusal.  jsonb prints an
 * object's keys shortest first, and a refusal has the single key "$error",
 * so the text starts with it; inside string values a quote is escaped, so
 * this prefix cannot come from data.
 */
static int
is_refusal_text(const char *text)
{
	return text != NULL && strncmp(text, "{\"$error\"", 9) == 0;
}

static int
call_function(struct request *r)
{
	const struct route *rt = r->m.route;
	struct db_result res;
	char *req_text = json_dumps(r->req, JSON_COMPACT);
	char *ctx_text = json_dumps(r->ctx, JSON_COMPACT);
	json_t *out = NULL, *data, *pagination = NULL;
	int status;

	if (req_text == NULL || ctx_text == NULL) {
		status = reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		goto done;
	}
	memset(&res, 0, sizeof(res));
	if ((rt->flags & ROUTE_BATCH) &&
	    batch_call(r->m.index, rt->function, req_text, ctx_text, &res.value) == 0) {
		res.ok = 1; /* answered within a batch (batch.c) */
	} else if (db_call(r->m.index, rt->function, ctx_text, req_text, &res) != 0) {
		status = reply_db_error(r, &res);
		db_result_free(&res);
		goto done;
	}
	if (!(rt->flags & (ROUTE_SNAP | ROUTE_PDF | ROUTE_TOKENS | ROUTE_K8S)) && !is_refusal_text(res.value)) {
		/* the common case: the function's JSON goes out as it came */
		status = reply_success_text(r->conn, rt->status, rt->message, res.value,
		                            (rt->flags & ROUTE_PAGINATED) != 0);
		db_result_free(&res);
		if (status < 0)
			status = reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		goto done;
	}
	out = res.value ? json_loads(res.value, JSON_DECODE_ANY, NULL) : json_null();
	db_result_free(&res);
	if (out == NULL) {
		status = reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		goto done;
	}
	if ((status = committed_refusal(r, out)) != 0)
		goto done;
	if (rt->flags & ROUTE_SNAP) {
		int sr = snap_complete(r->m.index, rt->function, r->ctx, req_text, &out, &res);
		if (sr != 0) {
			status = sr == -1 ? reply_db_error(r, &res)
			                  : reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error",
			                                NULL, NULL);
			db_result_free(&res);
			goto done;
		}
		if ((status = committed_refusal(r, out)) != 0)
			goto done;
	}
	if (rt->flags & ROUTE_PDF) {
		status = invoice_pdf_reply(r->conn, out);
		goto done;
	}
	if (rt->flags & ROUTE_K8S) {
		status = k8s_logs_reply(r->conn, rt, out);
		goto done;
	}
	data = out;
	if (rt->flags & ROUTE_PAGINATED) {
		data = json_incref(json_object_get(out, "data"));
		pagination = json_incref(json_object_get(out, "pagination"));
		json_decref(out);
		out = NULL;
	}
	if ((rt->flags & ROUTE_TOKENS) && add_tokens(data) != 0) {
		json_decref(data);
		json_decref(pagination);
		out = NULL;
		status = reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		goto done;
	}
	out = NULL;
	status = reply_success(r->conn, rt->status, rt->message, data, pagination);

done:
	json_decref(out);
	free(req_text);
	free(ctx_text);
	return status;
}

static int
builtin(struct request *r)
{
	const char *name = r->m.route->pattern;

	if (strstr(name, "openapi") != NULL)
		return reply_json(r->conn, 200, openapi_document(), NULL);
	if (strstr(name, "metrics") != NULL) {
		char *text = metrics_text();
		if (text == NULL)
			return reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		mg_send_http_ok(r->conn, "text/plain; version=0.0.4", (long long) strlen(text));
		mg_write(r->conn, text, strlen(text));
		free(text);
		return 200;
	}
	return reply_error(r->conn, 404, "ENDPOINT_NOT_FOUND", "Endpoint not found", NULL, NULL);
}

static void
access_log(struct request *r, int status, double ms)
{
	json_t *line;
	char ts[40];
	char *text;

	if (!cfg.access_log)
		return;
	line = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:i, s:I}", "ts", iso_now(ts, sizeof(ts)),
	                 "ip", r->ip, "method", r->ri->request_method,
	                 "path", r->ri->local_uri ? r->ri->local_uri : "",
	                 "route", r->m.route ? r->m.route->pattern : NULL, "status", status,
	                 "us", (json_int_t) (ms * 1000.0));
	if (line == NULL)
		return;
	text = json_dumps(line, JSON_COMPACT);
	if (text) {
		fprintf(stdout, "%s\n", text); /* one call: lines never interleave */
		free(text);
	}
	json_decref(line);
}

int
handle_request(struct mg_connection *conn, void *cbdata)
{
	struct request r;
	struct timespec t0;
	int status, mr;
	double ms;

	(void) cbdata;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(&r, 0, sizeof(r));
	r.conn = conn;
	r.ri = mg_get_request_info(conn);
	client_ip(&r);

	mr = route_match(r.ri->request_method, r.ri->local_uri ? r.ri->local_uri : "/", &r.m);
	if (mr <= 0) {
		r.m.route = NULL;
		status = reply_error(conn, 404, "ENDPOINT_NOT_FOUND", "Endpoint not found", NULL, NULL);
		goto done;
	}
	if ((status = check_access(&r)) != 0)
		goto done;
	if ((status = check_rate_ip(&r)) != 0 || (status = check_rate_user(&r)) != 0)
		goto done;
	if (r.m.route->flags & ROUTE_BUILTIN) {
		status = builtin(&r);
		goto done;
	}
	if ((status = read_body(&r)) != 0)
		goto done;
	if ((status = build_request(&r)) != 0)
		goto done;
	if ((status = check_rate_account(&r)) != 0)
		goto done;
	build_context(&r);
	status = call_function(&r);
	count_login_failure(&r, status);

done:
	ms = ms_since(&t0);
	metrics_count(r.m.route ? r.m.index : -1, status, ms);
	access_log(&r, status, ms);
	free(r.body);
	json_decref(r.req);
	json_decref(r.ctx);
	return status > 0 ? status : 500;
}
