/*
 * httpd.h - shared declarations of the paas gateway.
 *
 * The gateway is thin: each request is matched against a static route
 * table, its access rule is enforced (JWT verified in-process), the body is
 * read with a bound and parsed with jansson, and ONE function of the SQL
 * schema "api" is called on the worker thread's own libpq connection.  No
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
	int rl_account_per_min;    /* failed logins per account (email) */
	int rl_topup_per_min;      /* payment-gateway calls (ROUTE_SNAP) per user */
	int trust_proxy;           /* take the client IP from X-Forwarded-For */
	int access_log;            /* JSON access log on stdout */
};
extern struct config cfg;
int config_load(void);

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
	ROUTE_K8S = 1 << 10        /* data names a pod log: read from the Kubernetes API (k8s.c) */
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
/* 1 = matched; 0 = no route; -1 = path exists but not for this method */
int route_match(const char *method, const char *path, struct route_match *m);

/* ---- database (db.c) ---------------------------------------------------- */
struct db_result {
	int ok;                 /* 1: value holds the function's jsonb as text */
	int conn_lost;          /* the database could not be reached */
	char *value;            /* malloc'd; NULL on SQL NULL */
	char sqlstate[6];
	char *message;          /* malloc'd primary error message */
	char *detail;           /* malloc'd DETAIL, may be NULL */
};
int db_pool_init(int size);
void db_pool_close(void);
int db_call(int route_index, const char *function, const char *ctx_json,
            const char *req_json, struct db_result *res);
void db_result_free(struct db_result *res);

/* ---- batching (batch.c) -------------------------------------------------- */
int batch_init(void);
/* 0: *result is the call's JSON text (malloc'd); -1: make the call alone */
int batch_call(int route_index, const char *function, const char *req_json,
               const char *ctx_json, char **result);
void batch_stats(unsigned long *batches, unsigned long *items, unsigned long *failed);

/* ---- replies and errors (reply.c, errors.c) ----------------------------- */
struct http_error {
	int status;
	const char *code;
};
const struct http_error *sqlstate_to_http(const char *sqlstate);
int reply_json(struct mg_connection *conn, int status, json_t *body,
               const char *extra_headers);
int reply_success_text(struct mg_connection *conn, int status, const char *message,
                       const char *data_text, int members);
int reply_success(struct mg_connection *conn, int status, const char *message,
                  json_t *data, json_t *pagination);
int reply_error(struct mg_connection *conn, int status, const char *code,
                const char *message, json_t *errors, const char *extra_headers);
char *iso_now(char *buf, size_t len);

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
char *metrics_text(void);

/* ---- billing (midtrans.c, invoice_pdf.c) -------------------------------- */
/*
 * When *out is {"$snap": ...}: calls Snap, then the route's function again
 * with ctx.snap; *out becomes its answer.  0 ok (also when there was nothing
 * to do); -1 the second SQL call failed (res filled, *out NULL); -2 internal.
 */
int snap_complete(int route_index, const char *function, json_t *ctx, const char *req_text,
                  json_t **out, struct db_result *res);
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
