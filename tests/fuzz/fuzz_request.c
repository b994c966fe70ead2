/*
 * fuzz_request.c - libFuzzer harness over the request parsing of httpd
 * (httpd/request.c, httpd/routes.c): everything a client's bytes reach
 * before the database does.  Built without CivetWeb, with AddressSanitizer
 * and UBSan (tests/fuzz/run.sh).  One input feeds every parser:
 *   - the whole input as a JSON body (nesting bound, then jansson),
 *   - as a query string, a request path (canonical check, route match),
 *   - as a header block (framing checks, X-Forwarded-For), and as a list
 *     of trusted-proxy ranges,
 * and each parser's own promises are checked (abort() on a broken one).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

/* routes.c needs the configuration only through the table: none here */
struct config cfg;

static void
check(int ok)
{
	if (!ok)
		abort();
}

static void
fuzz_body(const char *text, size_t len)
{
	json_t *errs = NULL, *v;
	const char *msg = NULL;

	v = body_parse(text, len, &errs, &msg);
	if (v != NULL) {
		char *again;

		check(json_is_object(v) && errs == NULL);
		check(!json_nesting_exceeds(text, len, PAAS_MAX_DEPTH));
		/* the handler sends the text itself to the database, as a C string */
		check(memchr(text, '\0', len) == NULL);
		again = json_dumps(v, JSON_COMPACT);
		check(again != NULL);
		free(again);
		json_decref(v);
	} else {
		check(json_is_array(errs) && json_array_size(errs) == 1 && msg != NULL);
		json_decref(errs);
	}
}

static void
fuzz_query(const char *s)
{
	json_t *obj = json_object(), *errs = json_array(), *v;
	const char *k;
	int n = query_parse(s, obj, errs);

	check(n == (int) json_array_size(errs));
	json_object_foreach(obj, k, v) {
		const char *t = json_string_value(v);

		check(t != NULL && strlen(k) <= PAAS_MAX_QUERY_KEY && strlen(t) <= PAAS_MAX_QUERY_VALUE);
		check(utf8_valid(k, strlen(k)) && utf8_valid(t, strlen(t)));
	}
	json_decref(obj);
	json_decref(errs);
}

static void
fuzz_path(const char *s)
{
	static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
	struct route_match m;
	size_t i;

	if (!path_is_canonical(s))
		return;
	/* canonical: no empty, "." or ".." segment, no encoded unreserved byte */
	check(s[0] == '/' && strstr(s, "//") == NULL && strstr(s, "/./") == NULL &&
	      strstr(s, "/../") == NULL);
	for (i = 0; s[i]; i++)
		if (s[i] == '%')
			check(s[i + 1] && s[i + 2] && !(s[i + 1] >= 'a' && s[i + 1] <= 'f') &&
			      !(s[i + 2] >= 'a' && s[i + 2] <= 'f'));
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (route_match(methods[i], s, &m) == 1) {
			int p;

			check(m.route == &routes[m.index] && m.nparams <= MAX_PARAMS);
			for (p = 0; p < m.nparams; p++)
				check(utf8_valid(m.values[p], strlen(m.values[p])));
			(void) route_policy(m.route);
		}
	}
}

static void
fuzz_headers(char *s)
{
	struct hdr h[64];
	int n = 0, st;
	char *line, *save = NULL, out[64];
	const char *why;

	for (line = strtok_r(s, "\n", &save); line && n < 64; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');

		if (colon == NULL)
			continue;
		*colon = '\0';
		h[n].name = line;
		h[n].value = colon + 1 + (colon[1] == ' ');
		n++;
	}
	st = framing_check(h, n, 64, &why);
	check(st == 0 || ((st == 400 || st == 431) && why != NULL));
	for (int hops = 1; hops <= 3; hops++) {
		if (forwarded_client(h, n, hops, out, sizeof(out)) == 0) {
			unsigned char a[16];
			check(inet_pton(AF_INET, out, a) == 1 || inet_pton(AF_INET6, out, a) == 1);
		}
	}
}

static void
fuzz_cidrs(const char *s)
{
	struct cidr *list;
	int n;

	if (cidr_list_parse(s, &list, &n) != 0)
		return;
	for (int i = 0; i < n; i++)
		check((list[i].family == 4 && list[i].bits <= 32) ||
		      (list[i].family == 6 && list[i].bits <= 128));
	(void) cidr_list_match(list, n, "127.0.0.1");
	(void) cidr_list_match(list, n, "::1");
	(void) cidr_list_match(list, n, "10.1.2.3");
	free(list);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_body(s, size);
	/* the string parsers see the text up to its first NUL, as from CivetWeb */
	fuzz_query(s);
	fuzz_path(s);
	fuzz_cidrs(s);
	fuzz_headers(s); /* last: it cuts s into lines */
	free(s);
	return 0;
}
