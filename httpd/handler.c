/*
 * handler.c - the life of one request.
 *
 *   0. refuse what a proxy in front could read differently: the framing
 *      headers (431 / 400, request.c) and paths not in their canonical
 *      spelling (404)
 *   1. match the route (404 JSON when none)
 *   2. enforce its access rule (JWT verified in-process; node tokens and
 *      account state are checked by the SQL function)
 *   3. apply the route's rate limits (429 with Retry-After)
 *   4. read the body with a bound (413 past 1 MiB, or the route's own) and
 *      a deadline (408), and parse it with its nesting bounded (400)
 *   5. validate what the call would otherwise drop (Idempotency-Key, query
 *      parameters: 400), build the request (the client's body text as sent,
 *      with the query, then path parameters merged over it by jsonb: db.c)
 *      and the context object (caller, address, headers)
 *   6. call the route's ONE api function, map its SQLSTATE, write the reply
 *      (with the status, message and headers the function may have set:
 *      the reply seam, reply.c);
 *      the functions that hash passwords share a few database connections
 *      (PAAS_HASH_SLOTS) so that a login flood cannot starve other routes
 *
 * A reply sent while a body is still unread closes the connection (CivetWeb
 * would otherwise read and discard it at the client's pace), and so does
 * every reply while connections wait for a thread (edge.c).
 *
 * Memory: everything allocated here is released at the "done" label.
 */
#include <errno.h>
#include <pthread.h>
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
	const struct route_policy *pol;
	struct actor actor;
	int has_actor;
	char ip[64];
	struct hdr hdrs[MG_MAX_HEADERS];
	int nhdrs;
	int chunked;           /* Transfer-Encoding: chunked */
	int hash_slot;         /* holds a password-hashing slot */
	char *body;
	size_t body_len;
	json_t *query;         /* the validated query parameters */
	json_t *req;
	json_t *ctx;
	int refusal_counted;   /* check_rate_rejects saw the reply's status */
};

static double
ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double) (t1.tv_sec - t0->tv_sec) * 1e3 + (double) (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/*
 * The client's address: the socket's peer, or, behind PAAS_TRUST_PROXY
 * proxies (and when the peer is one of PAAS_TRUSTED_PROXIES, if set), the
 * X-Forwarded-For entry that the nearest of them added for its own client
 * (counted from the right: the entries on the left are the client's text).
 */
static void
client_ip(struct request *r)
{
	if (cfg.trust_proxy > 0 && (cfg.trusted == NULL || edge_trusted_peer(r->ri->remote_addr)) &&
	    forwarded_client(r->hdrs, r->nhdrs, cfg.trust_proxy, r->ip, sizeof(r->ip)) == 0)
		return;
	snprintf(r->ip, sizeof(r->ip), "%s", r->ri->remote_addr);
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
	if (tok == NULL)
		return reply_error(r->conn, 401, "AUTH_ERROR", "Access token required", NULL, NULL);
	v = token_verify(tok, &r->actor);
	if (v == -2)
		return reply_error(r->conn, 401, "AUTH_ERROR", "Token expired", NULL, NULL);
	if (v != 0)
		return reply_error(r->conn, 401, "AUTH_ERROR", "Invalid token", NULL, NULL);
	r->has_actor = 1;
	/* ACCESS_LOCAL (metrics) needs an admin here: the metrics listener
	 * serves them without a token, and behind a proxy every socket peer
	 * would look local */
	if ((rt->access == ACCESS_ADMIN || rt->access == ACCESS_LOCAL) &&
	    strcmp(r->actor.role, "ADMINISTRATOR") != 0)
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
 * Per-user limits: the routes that open an order at the payment gateway
 * (ROUTE_SNAP) are limited per account, so that one user cannot flood
 * Midtrans (and their own top-up list) with orders.  Before the body is
 * read (status 0) the bucket is only looked at; the token is taken once
 * the call has answered (status: its reply) with anything but 401.  Until
 * the database has confirmed the session the token's subject is only a
 * claim: a revoked session must not spend its user's calls.
 */
static int
check_rate_user(struct request *r, int status)
{
	int wait;

	if (!(r->m.route->flags & ROUTE_SNAP) || !r->has_actor)
		return 0;
	if (status != 0) {
		if (status != 401)
			(void) ratelimit_take("topup-user", r->actor.sub, cfg.rl_topup_per_min);
		return 0;
	}
	wait = ratelimit_peek("topup-user", r->actor.sub, cfg.rl_topup_per_min);
	return wait ? too_many(r, wait) : 0;
}

/*
 * Routes whose refusals are limited per client address (the Midtrans
 * webhook: public, and each refused notification costs a signature check
 * and a row).  A 4xx answer (status) takes a token; with none left, the
 * next request (status 0) is answered 429 before its body is read.
 */
static int
check_rate_rejects(struct request *r, int status)
{
	int wait;

	if (!(r->pol->flags & POLICY_REJECTS_PER_ADDR))
		return 0;
	if (status != 0) {
		if (status >= 400 && status < 500 && status != 429)
			(void) ratelimit_take("rejects-ip", r->ip, cfg.rl_webhook_rejects_per_min);
		return 0;
	}
	wait = ratelimit_peek("rejects-ip", r->ip, cfg.rl_webhook_rejects_per_min);
	return wait ? too_many(r, wait) : 0;
}

/*
 * A refusal is counted before its reply leaves (reply_on_send): a client
 * that sends its next request as soon as it has read the answer must find
 * the token taken.
 */
static void
count_refusal(int status, void *arg)
{
	struct request *r = arg;

	if (r->pol == NULL || r->refusal_counted)
		return;
	r->refusal_counted = 1;
	(void) check_rate_rejects(r, status);
}

static double
now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

static int
too_large(struct request *r)
{
	return reply_error(r->conn, 413, "PAYLOAD_TOO_LARGE", "Request entity too large", NULL,
	                   "Connection: close\r\n");
}

/*
 * Reads the body into r->body: at most the route's bound (413 past it),
 * within PAAS_HTTP_BODY_TIMEOUT_MS (408, edge.c's watchdog ends a read that
 * trickles), and all of it: a body shorter than its Content-Length, or a
 * chunked body that is malformed or does not end, is refused (400), never
 * taken for what arrived.  Each refusal closes the connection.
 */
static int
read_body(struct request *r)
{
	long long cl = r->ri->content_length;
	size_t limit = r->pol->max_body, cap;
	double deadline;
	int n = 0, fired, oom = 0;

	if (!r->chunked && cl <= 0)
		return 0;
	if (cl > (long long) limit)
		return too_large(r);
	/* a framed body is allocated once; a chunked one grows to the bound */
	cap = r->chunked ? 16384 : (size_t) cl;
	r->body = malloc(cap + 1);
	if (r->body == NULL)
		return reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL,
		                   "Connection: close\r\n");
	/* CivetWeb answers Expect only for its own file handlers; without it
	 * a client waits (curl: 1 s) before it sends the body */
	{
		const char *expect = mg_get_header(r->conn, "Expect");
		if (expect && strcasecmp(expect, "100-continue") == 0 &&
		    strcmp(r->ri->http_version, "1.1") == 0)
			mg_write(r->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	}
	deadline = now_ms() + cfg.body_timeout_ms;
	(void) edge_deadline_begin(r->conn, cfg.body_timeout_ms);
	for (;;) {
		if (r->body_len == cap) {
			char *grown;

			if (!r->chunked || cap > limit)
				break;
			cap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
			grown = realloc(r->body, cap + 1);
			if (grown == NULL) {
				oom = 1;
				break;
			}
			r->body = grown;
		}
		n = mg_read(r->conn, r->body + r->body_len, cap - r->body_len);
		if (n <= 0)
			break;
		r->body_len += (size_t) n;
		if (r->body_len > limit || now_ms() > deadline)
			break;
	}
	fired = edge_deadline_end(r->conn) || now_ms() > deadline;
	if (oom)
		return reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL,
		                   "Connection: close\r\n");
	if (r->body_len > limit)
		return too_large(r);
	/* complete: a framed body has all its bytes, a chunked one read its end (0) */
	if (r->chunked ? n == 0 : r->body_len == (size_t) cl) {
		r->body[r->body_len] = '\0';
		return 0;
	}
	if (fired) {
		metrics_event(EDGE_BODY_TIMEOUT);
		return reply_error(r->conn, 408, "REQUEST_TIMEOUT", "Request body not received in time",
		                   NULL, "Connection: close\r\n");
	}
	return reply_error(r->conn, 400, "VALIDATION_ERROR", "Malformed request body",
	                   json_pack("[{s:s, s:s}]", "field", "body", "message",
	                             r->chunked ? "malformed or unterminated chunked body"
	                                        : "body shorter than its Content-Length"),
	                   "Connection: close\r\n");
}

static void
add_error(json_t *errs, const char *field, const char *message)
{
	json_array_append_new(errs, json_pack("{s:s, s:s}", "field", field, "message", message));
}

/*
 * What the call would otherwise run without: an Idempotency-Key that the
 * context cannot carry, query parameters past their bounds (request.c).
 * Every failing field is reported; the valid parameters go to r->query.
 */
static int
validate_request(struct request *r)
{
	json_t *errs = json_array();
	const char *h = NULL;
	int i, nkeys = 0;

	for (i = 0; i < r->nhdrs; i++)
		if (strcasecmp(r->hdrs[i].name, "Idempotency-Key") == 0) {
			h = r->hdrs[i].value;
			nkeys++;
		}
	if (nkeys > 1)
		add_error(errs, "Idempotency-Key", "must be sent once");
	else if (h != NULL && strlen(h) > 255)
		add_error(errs, "Idempotency-Key", "must be at most 255 bytes");
	else if (h != NULL && !utf8_valid(h, strlen(h)))
		add_error(errs, "Idempotency-Key", "must be UTF-8 text");
	r->query = json_object();
	(void) query_parse(r->ri->query_string, r->query, errs);
	if (json_array_size(errs) > 0)
		return reply_error(r->conn, 400, "VALIDATION_ERROR", "Validation failed", errs, NULL);
	json_decref(errs);
	return 0;
}

/*
 * Checks the body and builds the request: a JSON body goes to the function
 * as the client's text (r->body; numbers keep their exact decimal text), a
 * form body or none as r->req; the query and path parameters (later wins)
 * go to r->query, which jsonb merges over it.  0 or the status of the
 * error reply already sent.
 */
static int
build_request(struct request *r)
{
	const char *h = mg_get_header(r->conn, "Content-Type");
	int i;

	if (r->body_len > 0 && (r->m.route->flags & ROUTE_FORM) && h &&
	    strncasecmp(h, "application/x-www-form-urlencoded", 33) == 0) {
		/* RFC 8058 one-click: "List-Unsubscribe=One-Click" */
		json_t *errs = json_array();

		r->req = json_object();
		query_parse(r->body, r->req, errs);
		if (json_array_size(errs) > 0)
			return reply_error(r->conn, 400, "VALIDATION_ERROR", "Validation failed", errs, NULL);
		json_decref(errs);
	} else if (r->body_len > 0) {
		json_t *errs, *v;
		const char *msg;

		/* checked only: the function gets the client's text (r->body) */
		v = body_parse(r->body, r->body_len, &errs, &msg);
		if (v == NULL)
			return reply_error(r->conn, 400, "VALIDATION_ERROR", msg, errs, NULL);
		json_decref(v);
	} else {
		r->req = json_object();
	}
	/* what httpd adds travels apart, merged by jsonb (db.c) */
	for (i = 0; i < r->m.nparams; i++)
		json_object_set_new(r->query, r->m.names[i], json_string(r->m.values[i]));
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
	/* every money call has a key: the client's (the function refuses one
	 * over 255 characters), or one made for this request (db.c) */
	if ((h = mg_get_header(r->conn, "Idempotency-Key")) != NULL &&
	    (strlen(h) <= 255 || (r->m.route->flags & ROUTE_MONEY)))
		json_object_set_new(r->ctx, "idempotencyKey", json_string(h));
	if ((r->m.route->flags & ROUTE_MONEY) && json_object_get(r->ctx, "idempotencyKey") == NULL)
		json_object_set_new(r->ctx, "idempotencyKey", db_call_key());
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

/*
 * The reply to a failed call.  An error of a money call (ROUTE_MONEY) names
 * its idempotency key in an Idempotency-Key header: when the database could
 * not be reached long enough to learn the outcome (db.c), the client sends
 * the call again with that key and gets the outcome, never a second charge.
 */
static int
reply_db_error(struct request *r, struct db_result *res)
{
	const struct http_error *he;
	json_t *errs = NULL;
	const char *key = NULL;
	char hdr[512] = "";
	size_t n = 0;

	if (r->m.route->flags & ROUTE_MONEY)
		key = json_string_value(json_object_get(r->ctx, "idempotencyKey"));
	if (key != NULL && strlen(key) <= 255)
		n = (size_t) snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s\r\n", key);
	if (res->conn_lost) {
		snprintf(hdr + n, sizeof(hdr) - n, "Retry-After: 1\r\n");
		return reply_error(r->conn, 503, "SERVICE_UNAVAILABLE",
		                   res->outcome_unknown
		                       ? "Database unavailable, the outcome of this call is not known yet: "
		                         "send it again with the same Idempotency-Key"
		                       : "Database unavailable",
		                   NULL, hdr);
	}
	he = sqlstate_to_http(res->sqlstate);
	/* 502: an outside system refused (PK502): its message and details are the answer */
	if (he->status >= 500 && he->status != 502) {
		log_event("{\"event\":\"sql_error\",\"route\":\"%s %s\",\"sqlstate\":\"%s\"}\n",
		        r->m.route->method, r->m.route->pattern, res->sqlstate);
		if (he->status == 500)
			return reply_error(r->conn, 500, he->code, "Internal server error", NULL, hdr);
		snprintf(hdr + n, sizeof(hdr) - n, "Retry-After: 1\r\n");
		return reply_error(r->conn, he->status, he->code, "Service temporarily unavailable",
		                   NULL, hdr);
	}
	if (he->status == 502)
		log_event("{\"event\":\"sql_error\",\"route\":\"%s %s\",\"sqlstate\":\"%s\"}\n",
		          r->m.route->method, r->m.route->pattern, res->sqlstate);
	if (res->detail && res->detail[0] == '[')
		errs = json_loads(res->detail, 0, NULL);
	if (he->status == 429 && res->detail)
		snprintf(hdr + n, sizeof(hdr) - n, "Retry-After: %d\r\n", atoi(res->detail));
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
	char *req_dump = r->req ? json_dumps(r->req, JSON_COMPACT) : NULL;
	const char *req_text = r->req ? req_dump : r->body;
	char *over_text = json_object_size(r->query) ? json_dumps(r->query, JSON_COMPACT) : NULL;
	char *ctx_text = json_dumps(r->ctx, JSON_COMPACT);
	json_t *out = NULL, *data, *pagination = NULL;
	int status;

	if (req_text == NULL || ctx_text == NULL || (json_object_size(r->query) && !over_text)) {
		status = reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		goto done;
	}
	memset(&res, 0, sizeof(res));
	if ((rt->flags & ROUTE_BATCH) &&
	    batch_call(r->m.index, rt->function, req_text, over_text, ctx_text, &res.value) == 0) {
		res.ok = 1; /* answered within a batch (batch.c) */
	} else if (db_call(r->m.index, rt->function, ctx_text, req_text, over_text, &res) != 0) {
		status = reply_db_error(r, &res);
		db_result_free(&res);
		goto done;
	}
	if (reply_use(&res, rt) != 0) { /* the function's reply settings (reply.c) */
		status = reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
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
		int sr = snap_complete(r->m.index, rt->function, r->ctx, req_text, over_text, &out, &res);
		if (sr == 0 && res.ok && reply_use(&res, rt) != 0)
			sr = -2; /* the second call's settings are the reply's */
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
	free(req_dump);
	free(over_text);
	free(ctx_text);
	return status;
}

/*
 * Password hashing (bcrypt, cost 10) holds a database connection for tens
 * of milliseconds: the routes that hash (route_policy) may use at most
 * PAAS_HASH_SLOTS connections at once.  A call that finds none free within
 * PAAS_HASH_WAIT_MS is answered 503 with Retry-After instead of queueing,
 * so that a login flood costs logins, not every other route.
 */
static pthread_mutex_t hash_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hash_free = PTHREAD_COND_INITIALIZER;
static int hash_in_use;

static int
hash_slot_take(struct request *r)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += cfg.hash_wait_ms / 1000;
	until.tv_nsec += (long) (cfg.hash_wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&hash_lock);
	while (hash_in_use >= cfg.hash_slots && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&hash_free, &hash_lock, &until);
	if (hash_in_use < cfg.hash_slots) {
		hash_in_use++;
		r->hash_slot = 1;
	}
	pthread_mutex_unlock(&hash_lock);
	if (r->hash_slot)
		return 0;
	metrics_event(EDGE_HASH_BUSY);
	return reply_error(r->conn, 503, "SERVICE_UNAVAILABLE", "Service busy, please try again",
	                   NULL, "Retry-After: 1\r\n");
}

static void
hash_slot_give(struct request *r)
{
	if (!r->hash_slot)
		return;
	pthread_mutex_lock(&hash_lock);
	hash_in_use--;
	pthread_cond_signal(&hash_free);
	pthread_mutex_unlock(&hash_lock);
	r->hash_slot = 0;
}

int
hash_slots_in_use(void)
{
	int n;

	pthread_mutex_lock(&hash_lock);
	n = hash_in_use;
	pthread_mutex_unlock(&hash_lock);
	return n;
}

static int
builtin(struct request *r)
{
	const char *name = r->m.route->pattern;
	int status;

	if (strstr(name, "openapi") != NULL)
		return reply_json(r->conn, 200, openapi_document(), NULL);
	if (strstr(name, "metrics") != NULL) {
		char *text = metrics_text();
		if (text == NULL)
			return reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error", NULL, NULL);
		status = reply_body(r->conn, 200, "text/plain; version=0.0.4", "no-store", text,
		                    strlen(text), NULL);
		free(text);
		return status > 0 ? status
		                  : reply_error(r->conn, 500, "INTERNAL_ERROR", "Internal server error",
		                                NULL, NULL);
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
	line = json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s?, s:i, s:I}", "ts", iso_now(ts, sizeof(ts)),
	                 "requestId", reply_request_id(), "ip", r->ip, "method", r->ri->request_method,
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

/*
 * Step 0: the request's headers as request.c reads them, and what a proxy
 * in front could read differently (framing, the header limit).  0, or the
 * status of the refusal sent (the connection closes).
 */
static int
check_message(struct request *r)
{
	const char *why;
	int i, status;

	r->nhdrs = r->ri->num_headers;
	for (i = 0; i < r->nhdrs; i++) {
		r->hdrs[i].name = r->ri->http_headers[i].name;
		r->hdrs[i].value = r->ri->http_headers[i].value;
		if (strcasecmp(r->hdrs[i].name, "Transfer-Encoding") == 0)
			r->chunked = 1;
	}
	status = framing_check(r->hdrs, r->nhdrs, MG_MAX_HEADERS, &why);
	if (status == 0)
		return 0;
	metrics_event(EDGE_REFUSED_FRAMING);
	return reply_error(r->conn, status, status == 431 ? "HEADERS_TOO_LARGE" : "VALIDATION_ERROR",
	                   status == 431 ? "Request header fields too large" : "Bad request framing",
	                   json_pack("[{s:s, s:s}]", "field", "headers", "message", why),
	                   "Connection: close\r\n");
}

/*
 * CORS (PAAS_CORS_ORIGINS).  The request's Origin when the list allows it
 * (exact match, or "*"), else NULL: a disallowed origin gets no CORS header.
 */
static const char *
cors_origin(struct mg_connection *conn)
{
	const char *o = mg_get_header(conn, "Origin");
	size_t i, n;
	int k;

	if (o == NULL || cfg.n_cors_origins == 0 || (n = strlen(o)) == 0 || n > PAAS_MAX_ORIGIN)
		return NULL;
	for (i = 0; i < n; i++)
		if ((unsigned char) o[i] <= ' ' || (unsigned char) o[i] >= 0x7f)
			return NULL; /* never reflect anything but a plain origin */
	for (k = 0; k < cfg.n_cors_origins; k++)
		if (strcmp(cfg.cors_origins[k], "*") == 0 || strcmp(cfg.cors_origins[k], o) == 0)
			return o;
	return NULL;
}

/* The CORS header lines of every reply to this request ("" when none). */
static void
cors_headers(struct mg_connection *conn, char *out, size_t len)
{
	const char *o = cors_origin(conn);

	out[0] = '\0';
	if (o != NULL)
		snprintf(out, len,
		         "Access-Control-Allow-Origin: %s\r\n"
		         "Access-Control-Expose-Headers: X-Request-Id, Retry-After, Idempotency-Key\r\n"
		         "Vary: Origin\r\n",
		         o);
	else if (cfg.n_cors_origins > 0)
		snprintf(out, len, "Vary: Origin\r\n"); /* the reply depends on Origin */
}

/*
 * A CORS preflight: OPTIONS from an allowed Origin with
 * Access-Control-Request-Method, on a path that has routes.  Answered 204
 * with the methods of the path (HEAD with GET).  0 when the request is no
 * such preflight (it is then answered as any other request: 404).
 */
static int
preflight(struct request *r)
{
	char methods[128], hdr[384];

	if (strcmp(r->ri->request_method, "OPTIONS") != 0 || cors_origin(r->conn) == NULL ||
	    mg_get_header(r->conn, "Access-Control-Request-Method") == NULL ||
	    !path_is_canonical(r->ri->local_uri_raw) ||
	    route_methods(r->ri->local_uri_raw, methods, sizeof(methods)) <= 0)
		return 0;
	snprintf(hdr, sizeof(hdr),
	         "Access-Control-Allow-Methods: %s\r\n"
	         "Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key, "
	         "X-Request-Id\r\n"
	         "Access-Control-Max-Age: 600\r\n",
	         methods);
	return reply_no_content(r->conn, hdr);
}

int
handle_request(struct mg_connection *conn, void *cbdata)
{
	struct request r;
	struct timespec t0;
	char cors[PAAS_MAX_ORIGIN + 160];
	int status, mr, head;
	double ms;

	(void) cbdata;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(&r, 0, sizeof(r));
	r.conn = conn;
	r.ri = mg_get_request_info(conn);
	reply_reset();
	/* HEAD is GET without the body: GET's route, access rule and headers */
	head = strcmp(r.ri->request_method, "HEAD") == 0;
	cors_headers(conn, cors, sizeof(cors));
	reply_begin(mg_get_header(conn, "X-Request-Id"), head, cors);
	if (edge_saturated())
		reply_close(conn); /* connections wait for a thread: let them in */
	/* a new connection's calls do not queue behind the kept ones (db.c) */
	db_call_class_set(edge_first_request(conn));
	if ((status = check_message(&r)) != 0)
		goto done;
	client_ip(&r);
	if (r.chunked || r.ri->content_length > 0)
		reply_body_pending(1); /* replies before read_body close */

	if ((status = preflight(&r)) != 0)
		goto done;
	if (!path_is_canonical(r.ri->local_uri_raw))
		mr = 0;
	else
		mr = route_match(head ? "GET" : r.ri->request_method, r.ri->local_uri_raw, &r.m);
	if (mr <= 0) {
		r.m.route = NULL;
		status = reply_error(conn, 404, "ENDPOINT_NOT_FOUND", "Endpoint not found", NULL, NULL);
		goto done;
	}
	r.pol = route_policy(r.m.route);
	reply_on_send(count_refusal, &r);
	if ((status = check_access(&r)) != 0)
		goto done;
	if ((status = check_rate_ip(&r)) != 0 || (status = check_rate_user(&r, 0)) != 0 ||
	    (status = check_rate_rejects(&r, 0)) != 0)
		goto done;
	/* every route reads the body it is sent, also one that takes none:
	 * closing a socket with unread bytes resets it, and the reset drops
	 * the part of the reply the client has not read yet */
	if ((status = read_body(&r)) != 0)
		goto done;
	reply_body_pending(0);
	if (r.m.route->flags & ROUTE_BUILTIN) {
		status = builtin(&r);
		goto done;
	}
	if ((status = validate_request(&r)) != 0 || (status = build_request(&r)) != 0)
		goto done;
	/* failed logins are counted per account by api.auth_login itself */
	build_context(&r);
	if ((r.pol->flags & POLICY_HASHES_PASSWORD) && (status = hash_slot_take(&r)) != 0)
		goto done;
	status = call_function(&r);
	hash_slot_give(&r);
	(void) check_rate_user(&r, status);

done:
	count_refusal(status, &r); /* a reply sent otherwise; also a 413 or a malformed body */
	ms = ms_since(&t0);
	metrics_count(r.m.route ? r.m.index : -1, status, ms);
	access_log(&r, status, ms);
	db_call_class_set(0);
	reply_reset();
	free(r.body);
	json_decref(r.query);
	json_decref(r.req);
	json_decref(r.ctx);
	return status > 0 ? status : 500;
}
