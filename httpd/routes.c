/*
 * routes.c - the static route table and the path matcher.
 *
 * One row per route: method, path pattern (":name" captures one segment),
 * access rule, the api function it calls, success status and message.  The
 * rows of each business area live in routes_<area>.inc.  The OpenAPI
 * document is generated from this table (openapi.c), so the two cannot
 * drift.  Literal segments win over captures ("/services/admin" before
 * "/services/:name").  The path arrives raw (percent-encoded) and in its
 * canonical spelling (handler.c refuses any other with 404, see
 * path_is_canonical): literal segments match exactly, as the route spells
 * them, and captures are percent-decoded.  A trailing slash is tolerated,
 * as in the original system.
 *
 * route_policy() adds, per api function, what the gateway must know beyond
 * the row: which functions hash passwords (bcrypt takes a database
 * connection for tens of milliseconds, so they get a bounded share of the
 * pool), and per-route body bounds and refusal limits.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "httpd.h"

const struct route routes[] = {
#include "routes_core.inc"
#include "routes_auth.inc"
#include "routes_services.inc"
#include "routes_workers.inc"
#include "routes_ledger.inc"
#include "routes_billing.inc"
#include "routes_subscriptions.inc"
#include "routes_notify.inc"
#include "routes_pods.inc"
};
const int n_routes = (int) (sizeof(routes) / sizeof(routes[0]));

#define MAX_SEGMENTS 16 /* no route is deeper; a deeper path matches none */

/* a route's pattern, split once */
struct pattern {
	int n;                         /* segments */
	const char *seg[MAX_SEGMENTS]; /* into the pattern text */
	size_t len[MAX_SEGMENTS];
	unsigned captures;             /* bit k: segment k is ":name" */
	int score;                     /* literal segments count 2, captures 1 */
	int usable;                    /* fits MAX_SEGMENTS and MAX_PARAMS */
};

static struct pattern patterns[sizeof(routes) / sizeof(routes[0])];
static pthread_once_t patterns_once = PTHREAD_ONCE_INIT;

/*
 * Splits path at its slashes (a run of slashes is one) into at most
 * MAX_SEGMENTS segments of at most max_len bytes; -1 when it does not fit.
 */
static int
split(const char *path, const char **seg, size_t *len, size_t max_len)
{
	const char *p = path;
	int n = 0;

	for (;;) {
		size_t l;

		while (*p == '/')
			p++;
		if (*p == '\0')
			return n;
		l = strcspn(p, "/");
		if (n == MAX_SEGMENTS || l > max_len)
			return -1;
		seg[n] = p;
		len[n] = l;
		n++;
		p += l;
	}
}

static void
split_patterns(void)
{
	int i, k;

	for (i = 0; i < n_routes; i++) {
		struct pattern *pt = &patterns[i];
		int params = 0;

		pt->n = split(routes[i].pattern, pt->seg, pt->len, 63);
		pt->usable = pt->n >= 0;
		for (k = 0; k < pt->n; k++) {
			if (pt->seg[k][0] == ':') {
				pt->captures |= 1u << k;
				pt->score += 1;
				params++;
			} else {
				pt->score += 2;
			}
		}
		if (params > MAX_PARAMS)
			pt->usable = 0;
	}
}

int
route_match(const char *method, const char *path, struct route_match *m)
{
	const char *seg[MAX_SEGMENTS];
	size_t len[MAX_SEGMENTS];
	int n, i, k, best = -1, best_i = -1, path_seen = 0;

	pthread_once(&patterns_once, split_patterns);
	n = split(path, seg, len, PAAS_MAX_SEGMENT);
	if (n <= 0)
		return 0;
	for (i = 0; i < n_routes; i++) {
		const struct pattern *pt = &patterns[i];

		if (pt->n != n || !pt->usable)
			continue;
		for (k = 0; k < n; k++)
			if (!(pt->captures & (1u << k)) &&
			    (pt->len[k] != len[k] || memcmp(pt->seg[k], seg[k], len[k]) != 0))
				break;
		if (k < n)
			continue;
		path_seen = 1;
		if (strcmp(routes[i].method, method) != 0)
			continue;
		if (pt->score > best) {
			best = pt->score;
			best_i = i;
		}
	}
	if (best_i < 0)
		return path_seen ? -1 : 0;
	m->route = &routes[best_i];
	m->index = best_i;
	m->nparams = 0;
	for (k = 0; k < n; k++) {
		const struct pattern *pt = &patterns[best_i];

		if (!(pt->captures & (1u << k)))
			continue;
		snprintf(m->names[m->nparams], sizeof(m->names[0]), "%.*s", (int) pt->len[k] - 1,
		         pt->seg[k] + 1);
		if (percent_decode(seg[k], len[k], m->values[m->nparams], sizeof(m->values[0]), 0) < 0)
			return path_seen ? -1 : 0;
		m->nparams++;
	}
	return 1;
}

int
route_methods(const char *path, char *out, size_t len)
{
	static const char *const order[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
	const char *seg[MAX_SEGMENTS];
	size_t seglen[MAX_SEGMENTS], used = 0;
	unsigned seen = 0;
	int n, i, k, count = 0;

	pthread_once(&patterns_once, split_patterns);
	out[0] = '\0';
	n = split(path, seg, seglen, PAAS_MAX_SEGMENT);
	if (n <= 0)
		return 0;
	for (i = 0; i < n_routes; i++) {
		const struct pattern *pt = &patterns[i];

		if (pt->n != n || !pt->usable)
			continue;
		for (k = 0; k < n; k++)
			if (!(pt->captures & (1u << k)) &&
			    (pt->len[k] != seglen[k] || memcmp(pt->seg[k], seg[k], seglen[k]) != 0))
				break;
		if (k < n)
			continue;
		for (k = 0; k < 6; k++)
			if (strcmp(routes[i].method, order[k]) == 0)
				seen |= 1u << k | (k == 0 ? 2u : 0u);
	}
	for (k = 0; k < 6; k++) {
		if (!(seen & (1u << k)))
			continue;
		used += (size_t) snprintf(out + used, used < len ? len - used : 0, "%s%s",
		                          count ? ", " : "", order[k]);
		count++;
	}
	if (used >= len)
		out[len - 1] = '\0';
	return count;
}

/*
 * Functions that run bcrypt (paas.hash_password, or crypt() on a stored
 * hash): registration, login, the password changes and admin user
 * creation.  A route added with such a function belongs here.
 */
static const char *const hashing_functions[] = {
	"api.auth_register",
	"api.auth_login",
	"api.auth_change_password",
	"api.users_create",
	"api.users_set_password",
};

static const struct route_policy policy_default = {0, PAAS_MAX_BODY};
static const struct route_policy policy_hashing = {POLICY_HASHES_PASSWORD, PAAS_MAX_BODY};
/* Midtrans notifications are a few KB; refused ones are limited per address */
static const struct route_policy policy_webhook = {POLICY_REJECTS_PER_ADDR, 64 * 1024};

const struct route_policy *
route_policy(const struct route *r)
{
	size_t i;

	if (r == NULL || r->function == NULL)
		return &policy_default;
	if (strcmp(r->function, "api.billing_webhook_midtrans") == 0)
		return &policy_webhook;
	for (i = 0; i < sizeof(hashing_functions) / sizeof(hashing_functions[0]); i++)
		if (strcmp(r->function, hashing_functions[i]) == 0)
			return &policy_hashing;
	return &policy_default;
}
