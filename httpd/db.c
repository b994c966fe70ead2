/*
 * db.c - a pool of libpq connections shared by the CivetWeb worker threads,
 * and the one place that decides what a lost connection means for a call.
 *
 * Each connection is opened at start (and reopened when lost); each
 * route's call is prepared once per connection as
 *     SELECT <function>($1::jsonb || coalesce($3::jsonb, '{}'), $2::jsonb)::text,
 *            current_setting('response.status', true),
 *            current_setting('response.message', true),
 *            current_setting('response.headers', true)
 *     FROM pg_catalog.set_config('application_name', $4, true)
 * where <function> comes from the static route table, never from the
 * request.  $1 is the client's body text exactly as it was sent (httpd only
 * validated it), $3 the parameters httpd adds (query string, then path),
 * merged by jsonb so that no number of the client is ever re-encoded; $2 is
 * the context.  The last three columns are the function's reply settings
 * (the reply seam, docs/architecture.md; validated by reply.c), read in the
 * same statement, hence in the function's own transaction, where the
 * transaction-local set_config() of the function is still visible.
 * A batch function (batch.c, slots past n_routes) gets its items
 * [{"req", "over", "ctx"}, ...] merged the same way (and the request id as
 * $3).
 * The application name "paas-httpd/<request id>" (handler.c; 63 bytes at
 * most, PostgreSQL's limit of a name) makes the server's log lines of the
 * call show the id as %a of log_line_prefix, and pg_stat_activity shows it
 * while the call runs.  It is set local to the call's transaction, in the
 * same round trip: at its end (commit or rollback) the session's name is
 * "paas-httpd" again, so no id outlives its request on a pooled connection.
 * The pool size is PAAS_DB_POOL (docs/performance.md has the measurements
 * behind its default).
 *
 * The outcome of a call (docs/architecture.md).  A call whose connection
 * breaks after it was sent may have committed: a backend terminated while
 * it waits for a synchronous standby warns "already committed locally" and
 * closes; a server that crashes during a commit closes without a word.
 *   - Before a pooled connection is used it is checked without a round
 *     trip: an idle connection has nothing to read unless the server said
 *     goodbye (a FATAL or 57P0x notice) or closed it.  A dead one is
 *     replaced before anything is sent, so the first call after a restart
 *     of PostgreSQL is an ordinary call, however long ago the restart was.
 *   - A call that loses its connection after it was sent is sent again on
 *     a new connection: once, at once, for a route that moves no money
 *     (reads, heartbeats, idempotent writes); for a ROUTE_MONEY route with
 *     a pause that doubles up to 1 s, until it is answered or
 *     PAAS_DB_RETRY_MS (default 5000) has passed.  A money call's context
 *     carries its idempotency key (handler.c: the client's, or one made
 *     here) and its function records its answer under that key in the
 *     transaction that moves the money (sql/parts/05_outcomes.sql): the
 *     SAME call with the SAME key replays the committed answer or executes
 *     once.  If no answer came in time, the reply is 503 with the key, and
 *     the client sends the call again with it to learn the outcome.
 * A connection is dead when libpq says so (PQstatus), when a result has no
 * SQLSTATE (libpq's own errors: "server closed the connection
 * unexpectedly", a failed send), when the server answers 57P0x (admin or
 * crash shutdown, cannot connect now) or class 08, or when it sent a FATAL
 * or 57P0x notice.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <libpq-fe.h>
#include <openssl/rand.h>

#include "httpd.h"

struct db_state {
	PGconn *conn;
	unsigned char *prepared; /* one flag per route */
	int doomed;              /* the server announced the end of the session */
	struct db_state *next;   /* free list */
};

/* PAAS_DB_RETRY_MS: how long a money call that lost its connection is sent again */
static long retry_ms = 5000;

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
 * released connection is handed to a queued thread directly, so a thread
 * that just arrived cannot overtake one that has been waiting (with a
 * shared condition variable, woken threads lost the race to newcomers and
 * went back to sleep: that unfairness was most of the p99).
 * There are two queues: the first request of a connection (WAIT_FRESH),
 * and the later ones of kept-alive connections (WAIT_KEPT).  When both
 * have waiters, released connections go to them in turn.  With one queue,
 * 500 kept-alive connections sending as fast as they can kept ~490 calls
 * queued, and a new client waited behind all of them (p99 > 100 ms for one
 * trivial call); now it waits for one release of the other queue at most,
 * plus the new connections ahead of it.  Neither kind can starve the
 * other: a flood of new connections gets half of the releases, as does a
 * flood of kept ones.  (A connection is one client, whatever address it
 * claims, so the rule needs no trust in X-Forwarded-For.)
 */
enum { WAIT_KEPT, WAIT_FRESH };

struct pool_waiter {
	pthread_cond_t cond;
	struct db_state *given;
	struct pool_waiter *next;
};
static struct pool_waiter *wait_head[2], *wait_tail[2];
static int wait_last; /* the queue that had the last release */
/* for /metrics, under pool_lock: connections handed out, threads queued, waits */
static int pool_in_use, pool_waiting;
static unsigned long pool_waits;

/* the class of the calling thread's calls: its request's (handler.c) */
static __thread int call_fresh;

void
db_call_class_set(int fresh)
{
	call_fresh = fresh != 0;
}

int
db_call_class(void)
{
	return call_fresh;
}

static int connect_db(struct db_state *st);

int
db_pool_init(int size)
{
	const char *v = getenv("PAAS_DB_RETRY_MS");
	int i;

	if (v != NULL && atol(v) >= 0 && atol(v) <= 600000)
		retry_ms = atol(v);
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
	int q = call_fresh ? WAIT_FRESH : WAIT_KEPT;

	pthread_mutex_lock(&pool_lock);
	if (pool_free != NULL && wait_head[WAIT_KEPT] == NULL && wait_head[WAIT_FRESH] == NULL) {
		st = pool_free;
		pool_free = st->next;
		pool_in_use++;
		pthread_mutex_unlock(&pool_lock);
		return st;
	}
	pool_waiting++;
	pool_waits++;
	pthread_cond_init(&self.cond, NULL);
	self.given = NULL;
	self.next = NULL;
	if (wait_tail[q])
		wait_tail[q]->next = &self;
	else
		wait_head[q] = &self;
	wait_tail[q] = &self;
	while (self.given == NULL)
		pthread_cond_wait(&self.cond, &pool_lock);
	pool_waiting--; /* the connection stays in use: release() handed it over */
	pthread_mutex_unlock(&pool_lock);
	pthread_cond_destroy(&self.cond);
	return self.given;
}

static void
release(struct db_state *st)
{
	struct pool_waiter *w;
	int q;

	pthread_mutex_lock(&pool_lock);
	/* both queues waiting: the one that did not have the last release */
	q = wait_head[!wait_last] != NULL ? !wait_last : wait_last;
	w = wait_head[q];
	if (w != NULL) {
		wait_last = q;
		wait_head[q] = w->next;
		if (wait_head[q] == NULL)
			wait_tail[q] = NULL;
		w->given = st;
		pthread_cond_signal(&w->cond);
	} else {
		st->next = pool_free;
		pool_free = st;
		pool_in_use--;
	}
	pthread_mutex_unlock(&pool_lock);
}

void
db_pool_stats(int *size, int *in_use, int *waiting, unsigned long *waits)
{
	pthread_mutex_lock(&pool_lock);
	*size = pool_size;
	*in_use = pool_in_use;
	*waiting = pool_waiting;
	*waits = pool_waits;
	pthread_mutex_unlock(&pool_lock);
}

static void
disconnect(struct db_state *st)
{
	if (st->conn)
		PQfinish(st->conn);
	st->conn = NULL;
	st->doomed = 0;
	memset(st->prepared, 0, (size_t) n_routes * 2);
}

static void
log_json(json_t *line)
{
	char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;

	if (text)
		log_event("%s\n", text);
	free(text);
	json_decref(line);
}

/*
 * Notices of the server (libpq's default printed them raw).  Logged by
 * severity and SQLSTATE only, like errors.  A FATAL, or a 57P0x warning
 * ("terminating connection ...", also the one of a backend terminated in
 * its wait for a synchronous standby), means the session is over.
 */
static void
on_notice(void *arg, const PGresult *r)
{
	struct db_state *st = arg;
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	if ((sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) ||
	    (state && strncmp(state, "57P0", 4) == 0))
		st->doomed = 1;
	log_json(json_pack("{s:s, s:s?, s:s?}", "event", "db_notice", "severity", sev, "sqlstate",
	                   state));
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
		log_json(json_pack("{s:s, s:s}", "event", "db_connect_failed", "error",
		                   PQerrorMessage(st->conn)));
		disconnect(st);
		return -1;
	}
	PQsetNoticeReceiver(st->conn, on_notice, st);
	return 0;
}

/*
 * Whether an idle pooled connection can carry a call, without a round
 * trip: an idle connection has nothing to read, unless the server said
 * goodbye (a FATAL or a shutdown warning, then end of file).  Reading what
 * is there hands any notice to on_notice.
 */
static int
conn_alive(struct db_state *st)
{
	struct pollfd p;
	PGnotify *n;

	if (st->conn == NULL || st->doomed || PQstatus(st->conn) != CONNECTION_OK)
		return 0;
	p.fd = PQsocket(st->conn);
	p.events = POLLIN;
	p.revents = 0;
	if (p.fd < 0)
		return 0;
	if (poll(&p, 1, 0) == 0)
		return 1;
	if (!PQconsumeInput(st->conn))
		return 0;
	(void) PQisBusy(st->conn); /* parses the input: notices reach on_notice */
	while ((n = PQnotifies(st->conn)) != NULL)
		PQfreemem(n);
	return !st->doomed && PQstatus(st->conn) == CONNECTION_OK;
}

/* Whether a failed result means that the connection is gone. */
static int
conn_broken(struct db_state *st, const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(st->conn) != CONNECTION_OK || st->doomed)
		return 1;
	/* every error of the server has a SQLSTATE; one without is libpq's */
	if (state == NULL || state[0] == '\0')
		return 1;
	return strncmp(state, "57P0", 4) == 0 || strncmp(state, "08", 2) == 0;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void
take_error(struct db_result *res, const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	snprintf(res->sqlstate, sizeof(res->sqlstate), "%s", state ? state : "");
	res->message = dup_or_null(r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL);
	res->detail = dup_or_null(r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL);
}

enum attempt {
	ANSWERED,      /* res holds the function's answer or the server's error */
	NO_CONNECTION, /* no connection could be made: nothing was sent */
	NOT_SENT,      /* the connection broke before the call was sent */
	LOST           /* sent, then the connection broke: the outcome is unknown */
};

#define REPLY_SETTINGS                                                                   \
	"current_setting('response.status', true), current_setting('response.message', true), " \
	"current_setting('response.headers', true)"

/* Copies a reply setting (NULL: not set); one that does not fit is a fault. */
static void
take_setting(struct db_result *res, char *dst, size_t cap, const PGresult *r, int col)
{
	const char *v;

	dst[0] = '\0';
	if (PQnfields(r) <= col || PQgetisnull(r, 0, col))
		return;
	v = PQgetvalue(r, 0, col);
	if (strlen(v) >= cap) {
		res->reply_too_long = 1;
		return;
	}
	memcpy(dst, v, strlen(v) + 1);
}

static enum attempt
call_once(struct db_state *st, int slot, const char *function, const char *ctx_json,
          const char *req_json, const char *over_json, struct db_result *res)
{
	char name[16];
	const char *id = reply_request_id();
	char appname[PAAS_MAX_REQUEST_ID + 16];
	int route = slot < n_routes;
	/* a route: (request, context, added parameters, name); a batch has no added parameters */
	const char *params[4] = {req_json, ctx_json, route ? over_json : appname, appname};
	int nparams = route ? 4 : 3;
	PGresult *r;
	enum attempt rc;

	if (!conn_alive(st))
		disconnect(st);
	if (connect_db(st) != 0)
		return NO_CONNECTION;
	/* PostgreSQL keeps 63 bytes of a name (NAMEDATALEN - 1) and says so in
	 * a NOTICE: a longer client id is cut here, to its first 52 bytes */
	snprintf(appname, sizeof(appname), "paas-httpd%s%.52s", id ? "/" : "", id ? id : "");
	snprintf(name, sizeof(name), "r%d", slot);
	if (!st->prepared[slot]) {
		char sql[1024];

		if (route)
			snprintf(sql, sizeof(sql),
			         "SELECT %s($1::jsonb || coalesce($3::jsonb, '{}'), $2::jsonb)::text, "
			         REPLY_SETTINGS " FROM pg_catalog.set_config('application_name', $4, true)", function);
		else
			snprintf(sql, sizeof(sql),
			         "SELECT %s((SELECT coalesce(jsonb_agg(jsonb_build_object("
			         "'req', (t.e -> 'req') || coalesce(t.e -> 'over', '{}'), 'ctx', t.e -> 'ctx')"
			         " ORDER BY t.n), '[]') FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY"
			         " AS t (e, n)), $2::jsonb)::text, "
			         REPLY_SETTINGS " FROM pg_catalog.set_config('application_name', $3, true)", function);
		r = PQprepare(st->conn, name, sql, nparams, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			/* the call itself was not sent yet */
			rc = conn_broken(st, r) ? NOT_SENT : ANSWERED;
			if (rc == ANSWERED)
				take_error(res, r);
			else
				disconnect(st);
			PQclear(r);
			return rc;
		}
		PQclear(r);
		st->prepared[slot] = 1;
	}

	r = PQexecPrepared(st->conn, name, nparams, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		res->ok = 1;
		res->value = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
		take_setting(res, res->reply_status, sizeof(res->reply_status), r, 1);
		take_setting(res, res->reply_message, sizeof(res->reply_message), r, 2);
		take_setting(res, res->reply_headers, sizeof(res->reply_headers), r, 3);
		rc = ANSWERED;
	} else if (conn_broken(st, r)) {
		disconnect(st);
		rc = LOST;
	} else {
		take_error(res, r);
		rc = ANSWERED;
	}
	PQclear(r);
	return rc;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (long) (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void
pause_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

/*
 * A call PostgreSQL rolled back because of a rival transaction (SQLSTATE
 * 40P01 deadlock_detected, 40001 serialization_failure) committed nothing:
 * it is sent again, at most ROLLBACK_RETRIES times, before its 503.
 */
#define ROLLBACK_RETRIES 3

static int
rolled_back_to_retry(const struct db_result *res)
{
	return !res->ok && (strcmp(res->sqlstate, "40P01") == 0 || strcmp(res->sqlstate, "40001") == 0);
}

static uint32_t
random_u32(void)
{
	uint32_t v = 0;

	if (RAND_bytes((unsigned char *) &v, sizeof(v)) != 1)
		v = (uint32_t) clock();
	return v;
}

int
db_call(int route_index, const char *function, const char *ctx_json,
        const char *req_json, const char *over_json, struct db_result *res)
{
	/* slots past n_routes are the batch functions of batch.c: reads and heartbeats */
	const struct route *rt = &routes[route_index % n_routes];
	int money = route_index < n_routes && (rt->flags & ROUTE_MONEY);
	struct timespec t0;
	struct db_state *st;
	enum attempt a;
	int tries = 0, lost = 0, rollbacks = 0;
	long pause = 50, left;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	st = acquire();
	for (;;) {
		memset(res, 0, sizeof(*res));
		a = call_once(st, route_index, function, ctx_json, req_json, over_json, res);
		tries++;
		if (a == ANSWERED && rolled_back_to_retry(res) && rollbacks < ROLLBACK_RETRIES) {
			/* a deadlock or serialization failure: the transaction rolled
			 * back, nothing of it committed, so it is run again (a short
			 * random pause first, so that its rival finishes) */
			rollbacks++;
			db_result_free(res);
			pause_ms(10 + (long) (random_u32() % 40u) * (long) rollbacks);
			continue;
		}
		if (a == ANSWERED)
			break;
		lost |= a == LOST;
		if (!money) {
			/* sent again once, on a new connection, after a broken one */
			if (a == NO_CONNECTION || tries > 1)
				break;
			continue;
		}
		left = retry_ms - ms_since(&t0);
		if (left <= 0)
			break;
		pause_ms(pause < left ? pause : left);
		pause = pause * 2 > 1000 ? 1000 : pause * 2;
	}
	release(st);
	if (a != ANSWERED) {
		res->conn_lost = 1;
		res->outcome_unknown = money && lost;
	}
	if (tries > 1)
		log_json(json_pack("{s:s, s:s, s:s, s:i, s:i, s:b, s:s}", "event", "db_call_retried", "method",
		                   rt->method, "route", rt->pattern, "tries", tries, "rolledBack", rollbacks,
		                   "money", money,
		                   "outcome", a == ANSWERED ? "answered"
		                              : money && lost ? "unknown" : "not_sent"));
	return res->ok ? 0 : -1;
}

void
db_result_free(struct db_result *res)
{
	free(res->value);
	free(res->message);
	free(res->detail);
	res->value = res->message = res->detail = NULL;
}

json_t *
db_call_key(void)
{
	unsigned char b[16];
	char text[37];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return NULL;
	b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(text, sizeof(text),
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	         b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	         b[15]);
	return json_string(text);
}
