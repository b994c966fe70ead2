/*
 * batch.c - concurrent calls of a batching route (ROUTE_BATCH) share one
 * database round trip.
 *
 * For a small call (a heartbeat, GET /auth/me, GET /billing/balance) the
 * wake-ups, socket writes and commit around the database work cost more
 * than the work itself.  Calls of such a route queue here.  A thread that
 * finds fewer than BATCH_INFLIGHT batches of its route under way takes up
 * to BATCH_MAX queued calls (the oldest first) and sends them as ONE call
 * of the route's batch function,
 *     <function>_batch('[{"req": ..., "ctx": ...}, ...]', '{}')
 * (db.c builds each item's "req" from the client's body text and the
 * parameters httpd adds, as for a single call: {"req", "over", "ctx"})
 * which runs the route's own function for each item, in one transaction,
 * and returns their results in order.  Under light load a batch holds one
 * call and nothing waits; under load, calls gather while the batches in
 * flight are at the database, so batches grow with the load (as group
 * commit does).
 *
 * The batch function decides nothing: every item is authorised, checked and
 * answered by the same SQL function as a single call.  When the batch call
 * fails for any reason (one item's 401, a lost connection, ...), its
 * transaction is rolled back and every call of it is made again on its
 * own, so each client gets exactly the answer a single call gives (a
 * refused item costs its batch one more round trip per call).  So does a
 * batch whose functions set reply settings (reply.c): one status for many
 * items cannot be told apart, the single calls answer each with its own.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

#define BATCH_MAX 64
#define BATCH_INFLIGHT 2

struct batch_call {
	const char *req;          /* JSON text of the call's request (the client's) */
	const char *over;         /* JSON text of httpd's parameters, or NULL */
	const char *ctx;          /* JSON text of the call's context */
	char *result;             /* malloc'd JSON text of its result */
	int state;                /* CALL_* */
	int fresh;                /* its thread's class in the pool's wait (db.c) */
	pthread_cond_t cond;
	struct batch_call *next;
};

enum { CALL_QUEUED, CALL_TAKEN, CALL_DONE, CALL_ALONE };

struct batch_queue {
	pthread_mutex_t lock;
	struct batch_call *head, *tail;
	int inflight;
};

/* one queue per route (only ROUTE_BATCH routes use theirs) */
static struct batch_queue *queues;

/* for /metrics: batches sent, calls they carried, batches that failed */
static unsigned long n_batches, n_items, n_failed;

void
batch_stats(unsigned long *batches, unsigned long *items, unsigned long *failed)
{
	*batches = __atomic_load_n(&n_batches, __ATOMIC_RELAXED);
	*items = __atomic_load_n(&n_items, __ATOMIC_RELAXED);
	*failed = __atomic_load_n(&n_failed, __ATOMIC_RELAXED);
}

int
batch_init(void)
{
	int i;

	queues = calloc((size_t) n_routes, sizeof(*queues));
	if (queues == NULL)
		return -1;
	for (i = 0; i < n_routes; i++)
		pthread_mutex_init(&queues[i].lock, NULL);
	return 0;
}

static void
append(struct batch_queue *q, struct batch_call *c)
{
	c->next = NULL;
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
}

static int
grow(char **buf, size_t *cap, size_t need)
{
	char *p;

	if (need <= *cap)
		return 0;
	while (*cap < need)
		*cap *= 2;
	p = realloc(*buf, *cap);
	if (p == NULL)
		return -1;
	*buf = p;
	return 0;
}

/*
 * The batch request: a JSON array of {"req": R, "over": O, "ctx": C} built
 * from the calls' own JSON texts (R as the client sent it, checked by
 * jansson; O and C produced by jansson).  NULL when out of memory.
 */
static char *
batch_text(struct batch_call **calls, int n)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	int i;

	if (buf == NULL)
		return NULL;
	buf[len++] = '[';
	for (i = 0; i < n; i++) {
		size_t rl = strlen(calls[i]->req), cl = strlen(calls[i]->ctx);
		size_t ol = calls[i]->over ? strlen(calls[i]->over) : 0;

		if (grow(&buf, &cap, len + rl + ol + cl + 40) != 0) {
			free(buf);
			return NULL;
		}
		if (i > 0)
			buf[len++] = ',';
		memcpy(buf + len, "{\"req\":", 7);
		len += 7;
		memcpy(buf + len, calls[i]->req, rl);
		len += rl;
		if (ol > 0) {
			memcpy(buf + len, ",\"over\":", 8);
			len += 8;
			memcpy(buf + len, calls[i]->over, ol);
			len += ol;
		}
		memcpy(buf + len, ",\"ctx\":", 7);
		len += 7;
		memcpy(buf + len, calls[i]->ctx, cl);
		len += cl;
		buf[len++] = '}';
	}
	buf[len++] = ']';
	buf[len] = '\0';
	return buf;
}

/*
 * Splits the batch function's answer, a JSON array as jsonb prints it, into
 * the text of each element, as it is: parsed by jansson and printed again,
 * a number like 12.8 would come back as 12.800000000000001.  Strings are
 * skipped with their escapes; each element must be an object.  0 when
 * there are exactly n of them (each call's result is set), -1 otherwise.
 */
static int
split_results(const char *text, struct batch_call **calls, int n)
{
	const char *p = text, *start;
	int depth = 0, in_string = 0, i = 0, closed = 0;

	while (*p == ' ' || *p == '\n')
		p++;
	if (*p++ != '[')
		return -1;
	for (start = p; *p != '\0' && !closed; p++) {
		char c = *p;

		if (in_string) {
			if (c == '\\' && p[1] != '\0')
				p++;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		} else if ((c == ',' || c == ']') && depth == 0) {
			const char *end = p;

			while (*start == ' ' || *start == '\n')
				start++;
			while (end > start && (end[-1] == ' ' || end[-1] == '\n'))
				end--;
			if (i >= n || end - start < 2 || *start != '{' || end[-1] != '}')
				goto fail;
			calls[i]->result = strndup(start, (size_t) (end - start));
			if (calls[i++]->result == NULL)
				goto fail;
			start = p + 1;
			closed = c == ']';
		}
	}
	if (closed && i == n)
		return 0;
fail:
	while (i > 0) {
		i--;
		free(calls[i]->result);
		calls[i]->result = NULL;
	}
	return -1;
}

/*
 * Sends one batch and stores each call's result (or marks it to run
 * alone).  Called without the queue lock; the calls are CALL_TAKEN, so
 * nobody else touches them until their state changes under the lock.
 */
static void
run_batch(struct batch_queue *q, int route_index, const char *function,
          struct batch_call **calls, int n)
{
	char name[160];
	char *text = batch_text(calls, n);
	struct db_result res;
	int i, ok = 0, fresh = 0, own = db_call_class();

	/* the batch waits for a connection as its newest client's call would */
	for (i = 0; i < n; i++)
		fresh |= calls[i]->fresh;
	db_call_class_set(fresh);
	snprintf(name, sizeof(name), "%s_batch", function);
	if (text != NULL && db_call(n_routes + route_index, name, "{}", text, NULL, &res) == 0)
		ok = res.reply_status[0] == '\0' && res.reply_message[0] == '\0' &&
		     res.reply_headers[0] == '\0' && !res.reply_too_long &&
		     res.value != NULL && split_results(res.value, calls, n) == 0;
	if (text != NULL)
		db_result_free(&res);
	free(text);
	db_call_class_set(own);
	__atomic_fetch_add(&n_batches, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&n_items, (unsigned long) n, __ATOMIC_RELAXED);
	if (!ok)
		__atomic_fetch_add(&n_failed, 1, __ATOMIC_RELAXED);

	pthread_mutex_lock(&q->lock);
	for (i = 0; i < n; i++) {
		calls[i]->state = (ok && calls[i]->result != NULL) ? CALL_DONE : CALL_ALONE;
		if (calls[i]->state == CALL_ALONE) {
			free(calls[i]->result);
			calls[i]->result = NULL;
		}
		pthread_cond_signal(&calls[i]->cond);
	}
	q->inflight--;
	/* a queued call's thread leads the next batch */
	if (q->head != NULL)
		pthread_cond_signal(&q->head->cond);
	pthread_mutex_unlock(&q->lock);
}

int
batch_call(int route_index, const char *function, const char *req_json,
           const char *over_json, const char *ctx_json, char **result)
{
	struct batch_queue *q = &queues[route_index];
	struct batch_call self, *taken[BATCH_MAX];
	int n, state;

	memset(&self, 0, sizeof(self));
	self.req = req_json;
	self.over = over_json;
	self.ctx = ctx_json;
	self.fresh = db_call_class();
	pthread_cond_init(&self.cond, NULL);

	pthread_mutex_lock(&q->lock);
	append(q, &self);
	for (;;) {
		if (self.state == CALL_DONE || self.state == CALL_ALONE)
			break;
		if (self.state == CALL_QUEUED && q->inflight < BATCH_INFLIGHT) {
			/* lead a batch: the oldest queued calls */
			for (n = 0; n < BATCH_MAX && q->head != NULL; n++) {
				taken[n] = q->head;
				q->head = q->head->next;
				taken[n]->state = CALL_TAKEN;
			}
			if (q->head == NULL)
				q->tail = NULL;
			q->inflight++;
			if (q->head != NULL && q->inflight < BATCH_INFLIGHT)
				pthread_cond_signal(&q->head->cond);
			pthread_mutex_unlock(&q->lock);
			run_batch(q, route_index, function, taken, n);
			pthread_mutex_lock(&q->lock);
			continue;
		}
		pthread_cond_wait(&self.cond, &q->lock);
	}
	state = self.state;
	pthread_mutex_unlock(&q->lock);
	pthread_cond_destroy(&self.cond);
	*result = self.result;
	return state == CALL_DONE ? 0 : -1;
}
