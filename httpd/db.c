/*
 * db.c - one libpq connection per CivetWeb worker thread.
 *
 * A thread connects on its first request and keeps the connection; each
 * route's call is prepared once per connection as
 *     SELECT <function>($1::jsonb, $2::jsonb)::text   -- (request, context)
 * where <function> comes from the static route table, never from the
 * request.  When PostgreSQL restarts, the next call on each thread finds its
 * connection closed by the server; the call is retried once on a fresh
 * connection when the server reports that the session was terminated before
 * the statement ran (57P0x, or a closed socket), so clients see no error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "httpd.h"

struct db_state {
	PGconn *conn;
	unsigned char *prepared; /* one flag per route */
};

static __thread struct db_state *tls;

static int connect_db(struct db_state *st);

void *
db_thread_init(void)
{
	struct db_state *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->prepared = calloc((size_t) n_routes, 1);
	if (st->prepared == NULL) {
		free(st);
		return NULL;
	}
	tls = st;
	/* Connect now so that the first requests do not pay for it; a
	 * database that is not up yet is retried on the first call. */
	(void) connect_db(st);
	return st;
}

void
db_thread_exit(void *state)
{
	struct db_state *st = state;

	if (st == NULL)
		return;
	if (st->conn)
		PQfinish(st->conn);
	free(st->prepared);
	free(st);
	tls = NULL;
}

static void
disconnect(struct db_state *st)
{
	if (st->conn)
		PQfinish(st->conn);
	st->conn = NULL;
	memset(st->prepared, 0, (size_t) n_routes);
}

static int
connect_db(struct db_state *st)
{
	const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
	const char *vals[] = {cfg.db_url, "5", "paas-httpd",
	                      "-c statement_timeout=30s -c idle_in_transaction_session_timeout=60s",
	                      NULL};

	if (st->conn && PQstatus(st->conn) == CONNECTION_OK)
		return 0;
	disconnect(st);
	st->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(st->conn) != CONNECTION_OK) {
		/* libpq's message names host and role, never the password */
		json_t *line = json_pack("{s:s, s:s}", "event", "db_connect_failed", "error",
		                         PQerrorMessage(st->conn));
		char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
		if (text)
			fprintf(stderr, "%s\n", text);
		free(text);
		json_decref(line);
		disconnect(st);
		return -1;
	}
	return 0;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int
session_terminated(PGconn *conn, const char *sqlstate)
{
	if (PQstatus(conn) != CONNECTION_OK)
		return 1;
	return sqlstate && strncmp(sqlstate, "57P0", 4) == 0;
}

static int
call_once(struct db_state *st, int route_index, const char *function,
          const char *ctx_json, const char *req_json, struct db_result *res,
          int *retryable)
{
	char name[16];
	const char *params[2] = {req_json, ctx_json};
	PGresult *r;
	int rc = -1;

	*retryable = 0;
	if (connect_db(st) != 0) {
		res->conn_lost = 1;
		return -1;
	}
	snprintf(name, sizeof(name), "r%d", route_index);
	if (!st->prepared[route_index]) {
		char sql[256];

		snprintf(sql, sizeof(sql), "SELECT %s($1::jsonb, $2::jsonb)::text", function);
		r = PQprepare(st->conn, name, sql, 2, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
			*retryable = session_terminated(st->conn, state);
			snprintf(res->sqlstate, sizeof(res->sqlstate), "%s", state ? state : "");
			res->message = dup_or_null(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
			res->conn_lost = PQstatus(st->conn) != CONNECTION_OK;
			PQclear(r);
			if (res->conn_lost || *retryable)
				disconnect(st);
			return -1;
		}
		PQclear(r);
		st->prepared[route_index] = 1;
	}

	r = PQexecPrepared(st->conn, name, 2, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		res->ok = 1;
		res->value = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
		rc = 0;
	} else {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

		snprintf(res->sqlstate, sizeof(res->sqlstate), "%s", state ? state : "");
		res->message = dup_or_null(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
		res->detail = dup_or_null(PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL));
		if (PQstatus(st->conn) != CONNECTION_OK || session_terminated(st->conn, state)) {
			res->conn_lost = 1;
			*retryable = 1;
			disconnect(st);
		}
	}
	PQclear(r);
	return rc;
}

int
db_call(int route_index, const char *function, const char *ctx_json,
        const char *req_json, struct db_result *res)
{
	struct db_state *st = tls;
	int retryable = 0;

	memset(res, 0, sizeof(*res));
	if (st == NULL) {
		res->conn_lost = 1;
		return -1;
	}
	if (call_once(st, route_index, function, ctx_json, req_json, res, &retryable) == 0)
		return 0;
	if (!retryable)
		return -1;
	db_result_free(res);
	memset(res, 0, sizeof(*res));
	return call_once(st, route_index, function, ctx_json, req_json, res, &retryable);
}

void
db_result_free(struct db_result *res)
{
	free(res->value);
	free(res->message);
	free(res->detail);
	res->value = res->message = res->detail = NULL;
}
