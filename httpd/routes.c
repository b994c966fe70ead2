/*
 * routes.c - the static route table and the path matcher.
 *
 * One row per route: method, path pattern (":name" captures one segment),
 * access rule, the api function it calls, success status and message.  The
 * rows of each business area live in routes_<area>.inc.  The OpenAPI
 * document is generated from this table (openapi.c), so the two cannot
 * drift.  Literal segments win over captures ("/services/admin" before
 * "/services/:name"); paths match case-insensitively and a trailing slash
 * is tolerated, as in the original system.
 */
#include <string.h>
#include <strings.h>

#include "httpd.h"

const struct route routes[] = {
#include "routes_core.inc"
#include "routes_auth.inc"
#include "routes_services.inc"
#include "routes_workers.inc"
#include "routes_ledger.inc"
#include "routes_billing.inc"
#include "routes_subscriptions.inc"
#include "routes_pods.inc"
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
	char pseg[64], qseg[256];
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
			snprintf(m->values[m->nparams], sizeof(m->values[0]), "%s", qseg);
			m->nparams++;
			score += 1;
		} else if (strcasecmp(pseg, qseg) == 0) {
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
