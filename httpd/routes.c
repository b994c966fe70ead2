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
};
const int n_routes = (int) (sizeof(routes) / sizeof(routes[0]));

/* Next segment of *p into seg (at most len-1 chars); 0 at the end. */
static int
next_segment(const char **p, char *seg, size_t len)
{
	const char *s = *p, *e;
	size_t n;

	while (*s == '/')
		s++;
	if (*s == '\0')
		return 0;
	e = strchr(s, '/');
	if (e == NULL)
		e = s + strlen(s);
	n = (size_t) (e - s);
	if (n >= len)
		return -1;
	memcpy(seg, s, n);
	seg[n] = '\0';
	*p = e;
	return 1;
}

/* Score of a match: literal segments count 2, captures 1; -1 = no match. */
static int
try_route(const struct route *r, const char *path, struct route_match *m)
{
	const char *pp = r->pattern, *qp = path;
	char pseg[64], qseg[PAAS_MAX_SEGMENT + 1];
	int score = 0, a, b;

	m->nparams = 0;
	for (;;) {
		a = next_segment(&pp, pseg, sizeof(pseg));
		b = next_segment(&qp, qseg, sizeof(qseg));
		if (a < 0 || b < 0)
			return -1;
		if (a == 0 || b == 0)
			return (a == 0 && b == 0) ? score : -1;
		if (pseg[0] == ':') {
			if (m->nparams == MAX_PARAMS)
				return -1;
			snprintf(m->names[m->nparams], sizeof(m->names[0]), "%s", pseg + 1);
			if (percent_decode(qseg, strlen(qseg), m->values[m->nparams], sizeof(m->values[0]),
			                   0) < 0)
				return -1;
			m->nparams++;
			score += 1;
		} else if (strcmp(pseg, qseg) == 0) {
			score += 2;
		} else {
			return -1;
		}
	}
}

int
route_match(const char *method, const char *path, struct route_match *m)
{
	struct route_match cand;
	int i, best = -1, path_seen = 0;

	for (i = 0; i < n_routes; i++) {
		int score = try_route(&routes[i], path, &cand);
		if (score < 0)
			continue;
		path_seen = 1;
		if (strcmp(routes[i].method, method) != 0)
			continue;
		if (score > best) {
			best = score;
			*m = cand;
			m->route = &routes[i];
			m->index = i;
		}
	}
	if (best >= 0)
		return 1;
	return path_seen ? -1 : 0;
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
