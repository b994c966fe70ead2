/*
 * edge.c - what a connection may hold before it is a request.
 *
 * CivetWeb gives each connection a worker thread from accept to close, so
 * sockets that send nothing, or one byte a second, hold threads that other
 * clients need (64 idle sockets made /health wait 29.5 s).  The gateway
 * bounds the time (request, body and keep-alive timeouts, main.c and
 * handler.c), and here the number:
 *   - connections open at once per client address (PAAS_CONN_PER_ADDR),
 *     counted from accept to close, so that a connection over the cap is
 *     closed before it takes a queue slot or a thread.  The peers named by
 *     PAAS_TRUSTED_PROXIES (a proxy carries many clients) are not capped;
 *   - when connections wait for a thread (more open than threads), replies
 *     close their connection instead of keeping it alive (reply.c), so that
 *     the waiting ones are served in turn instead of never;
 *   - the time a request's body may take (PAAS_HTTP_BODY_TIMEOUT_MS).
 *     CivetWeb's reads give up only after a whole request timeout without
 *     a byte, so a body sent a byte a second never ends; a watchdog thread
 *     shuts the socket's reading side at the deadline instead, which ends
 *     the read in progress (edge_deadline_begin / _end).
 * CivetWeb has no hook at accept time, so this file defines accept()
 * itself: the library's call binds to this definition (the executable
 * comes first in symbol lookup), which calls the next accept (libc's, or
 * the sanitizer's in the ASan build).  In the same way it defines
 * pthread_attr_setstacksize(): Debian's libcivetweb 1.15 is built with
 * USE_STACK_SIZE=102400 and sets 100 KiB on every thread it starts (so
 * pthread_setattr_default_np() cannot change it); the definition raises a
 * smaller size to PAAS_HTTP_STACK_KB.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include <civetweb.h>

#include "httpd.h"

struct addr_count {
	char addr[48]; /* as CivetWeb prints it (getnameinfo, NI_NUMERICHOST) */
	int count;
};

/* an open connection: found by the handler from its request info */
struct conn_entry {
	char addr[48];
	int port, lport;
	int fd;            /* -1: free slot */
	double deadline;   /* monotonic seconds; 0: none */
	int fired;         /* the watchdog shut its reading side */
};

static struct addr_count *addrs;
static struct conn_entry *conns;
static size_t mask; /* both tables have mask + 1 slots */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long n_open, n_refused;
static int capacity; /* threads of all listeners */

/*
 * Requests begun on the connection of this thread.  CivetWeb serves a
 * connection on one worker thread from accept to close and calls
 * connection_close on that thread, so a thread-local count needs no lock.
 */
static __thread unsigned long conn_requests;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint64_t
hash_mix(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char) *s;
		h *= 1099511628211ULL;
	}
	return h;
}

static size_t
addr_home(const char *addr)
{
	return (size_t) hash_mix(1469598103934665603ULL, addr) & mask;
}

static size_t
conn_home(const char *addr, int port, int lport)
{
	uint64_t h = hash_mix(1469598103934665603ULL, addr);
	h = (h ^ (uint64_t) port) * 1099511628211ULL;
	h = (h ^ (uint64_t) lport) * 1099511628211ULL;
	return (size_t) h & mask;
}

static void *watchdog(void *arg);

int
edge_init(void)
{
	struct rlimit rl;
	size_t size = 1024;
	pthread_t t;
	size_t i;

	/* a socket per connection: open as many as the system lets us */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* an open connection is queued (1024 at most) or on a thread: the
	 * tables stay at most half full */
	while (size < 2 * ((size_t) cfg.threads + 1024 + 64))
		size *= 2;
	addrs = calloc(size, sizeof(*addrs));
	conns = calloc(size, sizeof(*conns));
	if (addrs == NULL || conns == NULL)
		return -1;
	for (i = 0; i < size; i++)
		conns[i].fd = -1;
	mask = size - 1;
	capacity = cfg.threads + 2; /* + the metrics listener's threads (main.c) */
	if (pthread_create(&t, NULL, watchdog, NULL) != 0)
		return -1;
	pthread_detach(t);
	return 0;
}

/* The slot of addr, or the empty slot where it would go; lock held. */
static struct addr_count *
addr_find(const char *addr)
{
	size_t i = addr_home(addr), n;

	for (n = 0; n <= mask; n++, i = (i + 1) & mask)
		if (addrs[i].addr[0] == '\0' || strcmp(addrs[i].addr, addr) == 0)
			return &addrs[i];
	return NULL;
}

static struct conn_entry *
conn_find(const char *addr, int port, int lport)
{
	size_t i = conn_home(addr, port, lport), n;

	for (n = 0; n <= mask; n++, i = (i + 1) & mask)
		if (conns[i].fd < 0 ||
		    (conns[i].port == port && conns[i].lport == lport && strcmp(conns[i].addr, addr) == 0))
			return &conns[i];
	return NULL;
}

/* Linear probing: removing slot i shifts the rest of its run back. */
static void
addr_remove(size_t i)
{
	size_t j = i;

	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (addrs[j].addr[0] == '\0')
			break;
		home = addr_home(addrs[j].addr);
		/* addrs[j] may move to i unless its home lies cyclically in (i, j] */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			addrs[i] = addrs[j];
			i = j;
		}
	}
	addrs[i].addr[0] = '\0';
	addrs[i].count = 0;
}

static void
conn_remove(size_t i)
{
	size_t j = i;

	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (conns[j].fd < 0)
			break;
		home = conn_home(conns[j].addr, conns[j].port, conns[j].lport);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			conns[i] = conns[j];
			i = j;
		}
	}
	memset(&conns[i], 0, sizeof(conns[i]));
	conns[i].fd = -1;
}

/* 1 = admit the connection (counted and recorded), 0 = over the cap. */
static int
admit(const char *addr, int port, int lport, int fd)
{
	struct addr_count *e;
	struct conn_entry *c;
	int ok = 0;

	pthread_mutex_lock(&lock);
	e = addr_find(addr);
	c = conn_find(addr, port, lport);
	/* full tables cannot happen as sized; if they did: fail closed */
	if (e != NULL && c != NULL &&
	    (e->addr[0] == '\0' || e->count < cfg.conn_per_addr || edge_trusted_peer(addr))) {
		if (e->addr[0] == '\0')
			snprintf(e->addr, sizeof(e->addr), "%s", addr);
		e->count++;
		snprintf(c->addr, sizeof(c->addr), "%s", addr);
		c->port = port;
		c->lport = lport;
		c->fd = fd;
		c->deadline = 0;
		c->fired = 0;
		n_open++;
		ok = 1;
	} else {
		n_refused++;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

void
edge_connection_close(const struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct addr_count *e;
	struct conn_entry *c;

	conn_requests = 0; /* the thread's next connection starts anew */
	if (ri == NULL || addrs == NULL)
		return;
	pthread_mutex_lock(&lock);
	c = conn_find(ri->remote_addr, ri->remote_port, ri->server_port);
	if (c != NULL && c->fd >= 0) {
		conn_remove((size_t) (c - conns));
		e = addr_find(ri->remote_addr);
		if (e != NULL && e->addr[0] != '\0' && --e->count <= 0)
			addr_remove((size_t) (e - addrs));
		n_open--;
	}
	pthread_mutex_unlock(&lock);
}

int
edge_first_request(const struct mg_connection *conn)
{
	(void) conn;
	return conn_requests++ == 0;
}

int
edge_deadline_begin(const struct mg_connection *conn, int ms)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct conn_entry *c;
	int rc = -1;

	pthread_mutex_lock(&lock);
	c = addrs ? conn_find(ri->remote_addr, ri->remote_port, ri->server_port) : NULL;
	if (c != NULL && c->fd >= 0) {
		c->deadline = now_s() + ms / 1000.0;
		c->fired = 0;
		rc = 0;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

int
edge_deadline_end(const struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct conn_entry *c;
	int fired = 0;

	pthread_mutex_lock(&lock);
	c = addrs ? conn_find(ri->remote_addr, ri->remote_port, ri->server_port) : NULL;
	if (c != NULL && c->fd >= 0) {
		fired = c->fired;
		c->deadline = 0;
		c->fired = 0;
	}
	pthread_mutex_unlock(&lock);
	return fired;
}

/*
 * Shuts the reading side of the connections whose deadline passed, on a
 * tick of a quarter of the body timeout (at most 250 ms): a deadline is
 * late by one tick at most, and a request never has to wake this thread.
 * The entry (and so its fd) stays the connection's until
 * edge_deadline_end() on the connection's own thread, so the fd cannot
 * have been reused.
 */
static void *
watchdog(void *arg)
{
	long tick_ms = cfg.body_timeout_ms / 4 < 250 ? cfg.body_timeout_ms / 4 : 250;
	struct timespec tick = {0, tick_ms * 1000000L};

	(void) arg;
	for (;;) {
		double now;
		size_t i;

		nanosleep(&tick, NULL);
		now = now_s();
		pthread_mutex_lock(&lock);
		for (i = 0; i <= mask; i++) {
			struct conn_entry *c = &conns[i];

			if (c->fd >= 0 && c->deadline != 0 && !c->fired && c->deadline <= now) {
				shutdown(c->fd, SHUT_RD);
				c->fired = 1;
			}
		}
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int
edge_saturated(void)
{
	return (long) __atomic_load_n(&n_open, __ATOMIC_RELAXED) > (long) capacity;
}

int
edge_trusted_peer(const char *ip)
{
	return cfg.trusted != NULL && cidr_list_match(cfg.trusted, cfg.n_trusted, ip);
}

void
edge_stats(unsigned long *open, unsigned long *refused)
{
	pthread_mutex_lock(&lock);
	*open = n_open;
	*refused = n_refused;
	pthread_mutex_unlock(&lock);
}

/* One line a second at most: a flood must not become a flood of logs. */
static void
log_refused(const char *addr)
{
	static time_t last;
	time_t now = time(NULL);

	if (__atomic_exchange_n(&last, now, __ATOMIC_RELAXED) != now)
		log_event("{\"event\":\"connection_refused\",\"ip\":\"%s\",\"reason\":\"PAAS_CONN_PER_ADDR\"}\n",
		        addr);
}

typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);

int
accept(int fd, __SOCKADDR_ARG addr_arg, socklen_t *restrict len)
{
	static accept_fn next;
	struct sockaddr_storage ss, ls;
	socklen_t sl = sizeof(ss), lsl = sizeof(ls);
	char host[48];
	int s, port, lport;

	if (next == NULL)
		next = (accept_fn) dlsym(RTLD_NEXT, "accept");
	if (next == NULL) {
		errno = ENOSYS;
		return -1;
	}
	s = next(fd, (struct sockaddr *) &ss, &sl);
	if (s < 0)
		return s;
	if (addr_arg.__sockaddr__ != NULL && len != NULL) {
		memcpy(addr_arg.__sockaddr__, &ss, sl < *len ? sl : *len);
		*len = sl;
	}
	if ((ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
	    getnameinfo((struct sockaddr *) &ss, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0 ||
	    getsockname(s, (struct sockaddr *) &ls, &lsl) != 0)
		return s; /* not a client CivetWeb can name: not counted, as at close */
	if (ss.ss_family == AF_INET) {
		port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
		lport = ntohs(((struct sockaddr_in *) &ls)->sin_port);
	} else {
		port = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
		lport = ntohs(((struct sockaddr_in6 *) &ls)->sin6_port);
	}
	if (!admit(host, port, lport, s)) {
		log_refused(host);
		close(s);
		errno = EAGAIN; /* CivetWeb's master thread goes back to poll() */
		return -1;
	}
	return s;
}

typedef int (*setstacksize_fn)(pthread_attr_t *, size_t);

int
pthread_attr_setstacksize(pthread_attr_t *attr, size_t size)
{
	static setstacksize_fn next;
	size_t want = (size_t) cfg.thread_stack_kb * 1024;

	if (next == NULL)
		next = (setstacksize_fn) dlsym(RTLD_NEXT, "pthread_attr_setstacksize");
	if (next == NULL)
		return ENOSYS;
	return next(attr, size < want ? want : size);
}
