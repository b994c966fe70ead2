/*
 * httpd.h - shared declarations of the paas gateway.
 *
 * The gateway is thin: each request is matched against a static route
 * table, its access rule is enforced (JWT verified in-process), the body is
 * read with a bound and checked with jansson (the function gets the
 * client's own text, so numbers stay exact), and ONE function of the SQL
 * schema "api" is called on a pooled libpq connection; the function may
 * choose its reply's status, message and headers (reply.c).  No
 * business rule lives here: the functions decide, httpd translates their
 * SQLSTATEs into HTTP through the single table in errors.c.
 */
#ifndef PAAS_HTTPD_H
#define PAAS_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct mg_connection;

#define PAAS_MAX_BODY (1024 * 1024)
#define PAAS_MAX_DEPTH 32          /* JSON nesting of a request body */
#define PAAS_MAX_QUERY_KEY 127     /* bytes of a query parameter's name */
#define PAAS_MAX_QUERY_VALUE 1024  /* ... and of its value */
#define PAAS_MAX_SEGMENT 255       /* bytes of a decoded path segment */
#define PAAS_MAX_XFF 32            /* X-Forwarded-For entries looked at */
#define PAAS_MAX_REQUEST_ID 128    /* bytes of a client's X-Request-Id */
#define PAAS_MAX_ORIGIN 256        /* bytes of an Origin that CORS may allow */

/* ---- configuration (config.c) ------------------------------------------ */
struct config {
	const char *listen;        /* "127.0.0.1:8080" */
	const char *db_url;        /* libpq conninfo of role paas_api */
	const char *jwt_secret;    /* HS256 key of access tokens */
	int threads;               /* CivetWeb worker threads */
	int db_pool;               /* database connections shared by the threads */
	long access_ttl;           /* access token lifetime, seconds */
	int rl_login_per_min;      /* token bucket sizes, per client IP */
	int rl_register_per_min;
	int rl_refresh_per_min;
	int rl_topup_per_min;      /* payment-gateway calls (ROUTE_SNAP) per user */
	int trust_proxy;           /* proxies in front: X-Forwarded-For entries to trust */
	struct cidr *trusted;      /* peers whose X-Forwarded-For is read (NULL: any) */
	int n_trusted;
	int access_log;            /* JSON access log on stdout */
	const char *metrics_listen; /* listener of GET /metrics (NULL: none) */
	int request_timeout_ms;    /* headers of a request; each read and write */
	int keepalive_timeout_ms;  /* idle time between two requests */
	int body_timeout_ms;       /* the whole body of a request */
	int conn_per_addr;         /* connections open at once per client address */
	int thread_stack_kb;       /* stack of every thread (CivetWeb's workers) */
	int hash_slots;            /* concurrent password-hashing calls */
	int hash_wait_ms;          /* how long a hashing call waits for a slot */
	int rl_webhook_rejects_per_min; /* refused Midtrans notifications per address */
	char **cors_origins;       /* PAAS_CORS_ORIGINS: exact origins, or "*" (NULL: no CORS) */
	int n_cors_origins;
};
extern struct config cfg;
int config_load(void);

/* ---- request parsing (request.c: no CivetWeb, linked by tests/fuzz) ----- */
struct hdr {
	const char *name;
	const char *value;
};
struct cidr {
	int family;               /* 4 or 6 */
	int bits;
	unsigned char addr[16];
};
int json_nesting_exceeds(const char *text, size_t len, int max_depth);
/* NULL on failure: *errors (caller owns) and *message describe it */
json_t *body_parse(const char *text, size_t len, json_t **errors, const char **message);
int utf8_valid(const char *s, size_t n);
long percent_decode(const char *s, size_t n, char *out, size_t outlen, int form);
/* number of errors appended to "errors"; valid parameters go into obj */
int query_parse(const char *qs, json_t *obj, json_t *errors);
int path_is_canonical(const char *raw);
/* 0, or the status (400, 431) to refuse the request with */
int framing_check(const struct hdr *h, int n, int n_max, const char **why);
int forwarded_client(const struct hdr *h, int n, int hops, char *out, size_t outlen);
int cidr_list_parse(const char *spec, struct cidr **list, int *n);
int cidr_list_match(const struct cidr *list, int n, const char *ip);

/* ---- routes (routes.c) -------------------------------------------------- */
enum access {
	ACCESS_PUBLIC,   /* anyone */
	ACCESS_USER,     /* valid access token, active account */
	ACCESS_ADMIN,    /* role ADMINISTRATOR */
	ACCESS_NODE,     /* worker-node bearer token, checked by the function */
	ACCESS_LOCAL     /* loopback client, or an admin token */
};

enum route_flags {
	ROUTE_PAGINATED = 1 << 0,  /* function returns {data, pagination} */
	ROUTE_TOKENS = 1 << 1,     /* function returns a session: mint tokens */
	ROUTE_BUILTIN = 1 << 2,    /* answered by httpd itself (openapi, metrics) */
	ROUTE_RATE_LOGIN = 1 << 3,
	ROUTE_RATE_REGISTER = 1 << 4,
	ROUTE_RATE_REFRESH = 1 << 5,
	ROUTE_NO_DB = 1 << 6,      /* never touches the database */
	ROUTE_SNAP = 1 << 7,       /* may answer {"$snap"}: Midtrans round trip (midtrans.c) */
	ROUTE_PDF = 1 << 8,        /* data is rendered as a PDF (invoice_pdf.c) */
	ROUTE_BATCH = 1 << 9,      /* concurrent calls share a round trip (batch.c) */
	ROUTE_MONEY = 1 << 10,     /* moves money: carries an idempotency key, sent again
	                              with it after a lost connection (db.c) */
	ROUTE_FORM = 1 << 11,      /* a form-encoded body is read like a query string */
	ROUTE_K8S = 1 << 12        /* data names a pod log: read from the Kubernetes API (k8s.c) */
};

struct route {
	const char *method;
	const char *pattern;   /* "/api/v1/users/:id" */
	enum access access;
	const char *function;  /* "api.users_get", or NULL for built-ins */
	int status;            /* HTTP status on success */
	const char *message;   /* success message, also the OpenAPI summary */
	unsigned flags;
	const char *tag;       /* OpenAPI tag */
};

#define MAX_PARAMS 4
struct route_match {
	const struct route *route;
	int index;
	int nparams;
	char names[MAX_PARAMS][64];
	char values[MAX_PARAMS][256];
};

extern const struct route routes[];
extern const int n_routes;
/* 1 = matched; 0 = no route; -1 = path exists but not for this method.
 * "path" is the raw (still percent-encoded) path; captures are decoded. */
int route_match(const char *method, const char *path, struct route_match *m);
/* the methods of the routes of "path", comma-separated ("GET, HEAD, POST": HEAD
 * with GET) into out; their number (0: no route has this path) */
int route_methods(const char *path, char *out, size_t len);

/*
 * What httpd must know of a route beyond its row (kept here, by function,
 * so that the route rows stay as the areas wrote them).
 */
enum route_policy_flags {
	POLICY_HASHES_PASSWORD = 1 << 0, /* the function runs bcrypt: limited share of the pool */
	POLICY_REJECTS_PER_ADDR = 1 << 1 /* 4xx answers are limited per client address */
};
struct route_policy {
	unsigned flags;
	size_t max_body;       /* bytes; the route's own bound under PAAS_MAX_BODY */
};
const struct route_policy *route_policy(const struct route *r);

/* ---- database (db.c) ---------------------------------------------------- */
struct db_result {
	int ok;                 /* 1: value holds the function's jsonb as text */
	int conn_lost;          /* the database could not be reached */
	int outcome_unknown;    /* a money call was sent and no answer came back */
	char *value;            /* malloc'd; NULL on SQL NULL */
	char sqlstate[6];
	char *message;          /* malloc'd primary error message */
	char *detail;           /* malloc'd DETAIL, may be NULL */
	/* the function's reply settings (docs/architecture.md, "The reply
	 * seam"): response.status / .message / .headers as it left them, ""
	 * when not set; checked by reply_use() */
	char reply_status[8];
	char reply_message[256];
	char reply_headers[1024];
	int reply_too_long;     /* a setting did not fit: a fault */
};
int db_pool_init(int size);
void db_pool_close(void);
/*
 * Calls the route's function with the request "req_json" (the client's
 * body text, unchanged) merged by jsonb with "over_json" (httpd's own
 * parameters; NULL: none) and the context.  A lost connection is replaced and the call
 * sent again: once for a route that moves no money, and for a ROUTE_MONEY
 * route (whose ctx carries its idempotency key) until it is answered or
 * PAAS_DB_RETRY_MS has passed.  A call rolled back by a deadlock or a
 * serialization failure (40P01, 40001) is sent again up to 3 times.  0 when
 * res->value holds the answer.
 */
int db_call(int route_index, const char *function, const char *ctx_json,
            const char *req_json, const char *over_json, struct db_result *res);
void db_result_free(struct db_result *res);
/* A new idempotency key (random UUID) as a JSON string; NULL on failure. */
json_t *db_call_key(void);
/* the class of this thread's calls in the pool's wait (db.c): 1 = a new connection's */
void db_call_class_set(int fresh);
int db_call_class(void);
/* the pool now: its size, connections in use, threads waiting; calls that waited */
void db_pool_stats(int *size, int *in_use, int *waiting, unsigned long *waits);

/* ---- batching (batch.c) -------------------------------------------------- */
int batch_init(void);
/* 0: *result is the call's JSON text (malloc'd); -1: make the call alone */
int batch_call(int route_index, const char *function, const char *req_json,
               const char *over_json, const char *ctx_json, char **result);
void batch_stats(unsigned long *batches, unsigned long *items, unsigned long *failed);

/* ---- connections (edge.c) ----------------------------------------------- */
int edge_init(void);
/* CivetWeb's connection_close callback of the main listener */
void edge_connection_close(const struct mg_connection *conn);
/* whether connections wait for a worker thread (answer with Connection: close) */
int edge_saturated(void);
int edge_trusted_peer(const char *ip);
/* 1 when this request is the first on its connection */
int edge_first_request(const struct mg_connection *conn);
/* from now on, the connection's reads end within ms (0 ok, -1 unknown conn) */
int edge_deadline_begin(const struct mg_connection *conn, int ms);
/* clears it; 1 when the deadline passed (the reading side is shut) */
int edge_deadline_end(const struct mg_connection *conn);
void edge_stats(unsigned long *open, unsigned long *refused);
/* password-hashing calls running now (handler.c; cfg.hash_slots is the limit) */
int hash_slots_in_use(void);

/* ---- replies and errors (reply.c, errors.c) ----------------------------- */
struct http_error {
	int status;
	const char *code;
};
const struct http_error *sqlstate_to_http(const char *sqlstate);
int reply_json(struct mg_connection *conn, int status, json_t *body,
               const char *extra_headers);
/* hook(status, arg) runs once, just before the request's reply is written
 * (until reply_reset): what the client's next request must see is done by then */
void reply_on_send(void (*hook)(int status, void *arg), void *arg);
int reply_no_content(struct mg_connection *conn, const char *extra_headers);
/* any body in one write, with the request's common headers; the status sent or -1 */
int reply_body(struct mg_connection *conn, int status, const char *content_type,
               const char *cache_control, const char *text, size_t tlen, const char *extra_headers);
int reply_success_text(struct mg_connection *conn, int status, const char *message,
                       const char *data_text, int members);
int reply_success(struct mg_connection *conn, int status, const char *message,
                  json_t *data, json_t *pagination);
int reply_error(struct mg_connection *conn, int status, const char *code,
                const char *message, json_t *errors, const char *extra_headers);
char *iso_now(char *buf, size_t len);
int reply_http_error(struct mg_connection *conn, int status, const char *message);
/*
 * The reply seam: takes the reply settings of a call (res) for this
 * request's success reply (status, message, extra headers instead of the
 * route row's).  0 ok; -1 when a setting is invalid: logged, and the caller
 * answers 500.  reply_reset() forgets them.
 */
int reply_use(const struct db_result *res, const struct route *rt);
/* this request's reply closes the connection (CivetWeb reads no more of it) */
void reply_close(struct mg_connection *conn);
/* a body is still unread: a reply now closes the connection */
void reply_body_pending(int pending);
void reply_reset(void);
/*
 * The request's id (the client's X-Request-Id when request_id_valid, else
 * a new random one), whether it is a HEAD, and its CORS header lines (NULL:
 * none): every reply of the request carries the id and those lines, and a
 * HEAD's has no body.  Cleared by reply_reset.
 */
void reply_begin(const char *client_id, int head, const char *cors);
int request_id_valid(const char *id);
const char *reply_request_id(void);   /* NULL outside a request */
int reply_head_only(void);
const char *reply_cors_headers(void); /* "" or header lines */
/* a line of httpd's log on stderr: fmt formats a JSON object; "ts" and
 * the request's id are added */
void log_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- tokens (tokens.c) -------------------------------------------------- */
struct actor {
	char sub[64];
	char role[32];
	char sid[64];
};
/* 0 ok; -1 invalid; -2 expired */
int token_verify(const char *jwt, struct actor *out);
char *token_mint(const char *sub, const char *role, const char *sid, long *expires_in);

/* ---- rate limits (ratelimit.c) ----------------------------------------- */
/* 0 allowed; otherwise seconds until a token is available */
int ratelimit_take(const char *scope, const char *key, int per_minute);
/* the same answer without taking a token */
int ratelimit_peek(const char *scope, const char *key, int per_minute);

/* ---- built-in documents (openapi.c, metrics.c) -------------------------- */
json_t *openapi_document(void);
void metrics_count(int route_index, int status, double ms);
enum edge_event {
	EDGE_HASH_BUSY,        /* a password-hashing call found no slot: 503 */
	EDGE_BODY_TIMEOUT,     /* a body did not arrive in time: 408 */
	EDGE_REFUSED_FRAMING,  /* smuggling-prone framing: 400 / 431 */
	EDGE_EVENTS
};
void metrics_event(enum edge_event e);
enum snap_outcome {
	SNAP_OK,               /* a token and a redirect URL */
	SNAP_HTTP_ERROR,       /* Midtrans answered with an error status */
	SNAP_TRANSPORT_ERROR,  /* no answer: connect, TLS, timeout */
	SNAP_BAD_RESPONSE,     /* 200/201 without a token */
	SNAP_NOT_CONFIGURED,   /* no server key, no order id, out of memory */
	SNAP_OUTCOMES
};
/* one Snap call (midtrans.c) and how long it took */
void metrics_snap(enum snap_outcome o, double ms);
char *metrics_text(void);
/* request handler of the metrics listener: GET /metrics */
int metrics_request(struct mg_connection *conn, void *cbdata);

/* ---- billing (midtrans.c, invoice_pdf.c) -------------------------------- */
/*
 * When *out is {"$snap": ...}: calls Snap, then the route's function again
 * with ctx.snap; *out becomes its answer.  0 ok (also when there was nothing
 * to do); -1 the second SQL call failed (res filled, *out NULL); -2 internal.
 */
int snap_complete(int route_index, const char *function, json_t *ctx, const char *req_text,
                  const char *over_text, json_t **out, struct db_result *res);
/* Sends the invoice as application/pdf; returns the HTTP status sent. */
int invoice_pdf_reply(struct mg_connection *conn, json_t *invoice);

/* ---- Kubernetes (k8s.c) -------------------------------------------------- */
/*
 * The function answered {"$k8s": {namespace, labelSelector, container,
 * tailLines, ...}}: reads the newest pod's log from the Kubernetes API with
 * no transaction open and sends it; returns the HTTP status sent.
 */
int k8s_logs_reply(struct mg_connection *conn, const struct route *rt, json_t *out);

/* ---- request handling (handler.c) --------------------------------------- */
int handle_request(struct mg_connection *conn, void *cbdata);

#endif
