/*
 * db.c - a pool of libpq connections shared by the CivetWeb worker threads.
 *
 * Each connection is opened at start (and reopened when lost); each
 * route's call is prepared once per connection as
 *     SELECT <function>($1::jsonb, $2::jsonb)::text   -- (request, context)
 * where <function> comes from the static route table, never from the
 * request.  When PostgreSQL restarts, the next call on each thread finds its
 * connection closed by the server; the call is retried once on a fresh
 * connection when the server reports that the session was terminated before
 * the statement ran (57P0x, or a closed socket), so clients see no error.
 * The pool size is PAAS_DB_POOL (docs/performance.md has the measurements
 * behind its default).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <libpq-fe.h>

#include "httpd.h"

struct db_state {
	PGconn *conn;
	unsigned char *prepared; /* one flag per route */
	struct db_state *next;   /* free list */
};

/*
 * The pool: cfg.db_pool connections shared by all worker threads.  A thread
 * takes a connection for one call and gives it back; the free list is a
 * stack, so the connections in use stay few and warm.  Fewer database
 * backends than HTTP threads keeps the two cores from time-slicing between
 * dozens of runnable backends, which is where the tail latency came from.
 */
static struct db_state *pool_all;
static struct db_state *pool_free;
static int pool_size;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Threads that find no free connection queue up in arrival order and a
 * released connection is handed to the head of the queue directly, so a
 * thread that just arrived cannot overtake one that has been waiting (with a
 * shared condition variable, woken threads lost the race to newcomers and
 * went back to sleep: that unfairness was most of the p99).
 */
struct pool_waiter {
	pthread_cond_t cond;
	struct db_state *given;
	struct pool_waiter *next;
};
static struct pool_waiter *wait_head, *wait_tail;

static int connect_db(struct db_state *st);

int
db_pool_init(int size)
{
	int i;

	pool_all = calloc((size_t) size, sizeof(*pool_all));
	if (pool_all == NULL)
		return -1;
	pool_size = size;
	for (i = 0; i < size; i++) {
		/* a statement per route, and one per route for its batch function */
		pool_all[i].prepared = calloc((size_t) n_routes * 2, 1);
		if (pool_all[i].prepared == NULL)
			return -1;
		/* connect now so that the first requests do not pay for it; a
		 * database that is not up yet is retried on the first call */
		(void) connect_db(&pool_all[i]);
		pool_all[i].next = pool_free;
		pool_free = &pool_all[i];
	}
	return 0;
}

void
db_pool_close(void)
{
	int i;

	for (i = 0; i < pool_size; i++) {
		if (pool_all[i].conn)
			PQfinish(pool_all[i].conn);
		free(pool_all[i].prepared);
	}
	free(pool_all);
	pool_all = pool_free = NULL;
	pool_size = 0;
}

static struct db_state *
acquire(void)
{
	struct db_state *st;
	struct pool_waiter self;

	pthread_mutex_lock(&pool_lock);
	if (pool_free != NULL && wait_head == NULL) {
		st = pool_free;
		pool_free = st->next;
		pthread_mutex_unlock(&pool_lock);
		return st;
	}
	pthread_cond_init(&self.cond, NULL);
	self.given = NULL;
	self.next = NULL;
	if (wait_tail)
		wait_tail->next = &self;
	else
		wait_head = &self;
	wait_tail = &self;
	while (self.given == NULL)
		pthread_cond_wait(&self.cond, &pool_lock);
	pthread_mutex_unlock(&pool_lock);
	pthread_cond_destroy(&self.cond);
	return self.given;
}

static void
release(struct db_state *st)
{
	struct pool_waiter *w;

	pthread_mutex_lock(&pool_lock);
	w = wait_head;
	if (w != NULL) {
		wait_head = w->next;
		if (wait_head == NULL)
			wait_tail = NULL;
		w->given = st;
		pthread_cond_signal(&w->cond);
	} else {
		st->next = pool_free;
		pool_free = st;
	}
	pthread_mutex_unlock(&pool_lock);
}

static void
disconnect(struct db_state *st)
{
	if (st->conn)
		PQfinish(st->conn);
	st->conn = NULL;
	memset(st->prepared, 0, (size_t) n_routes * 2);
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
	struct db_state *st;
	int retryable = 0, rc;

	memset(res, 0, sizeof(*res));
	st = acquire();
	rc = call_once(st, route_index, function, ctx_json, req_json, res, &retryable);
	if (rc != 0 && retryable) {
		db_result_free(res);
		memset(res, 0, sizeof(*res));
		rc = call_once(st, route_index, function, ctx_json, req_json, res, &retryable);
	}
	release(st);
	return rc;
}

void
db_result_free(struct db_result *res)
{
	free(res->value);
	free(res->message);
	free(res->detail);
	res->value = res->message = res->detail = NULL;
}
