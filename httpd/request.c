/*
 * request.c - parsing of what a client sends, before any of it is trusted.
 *
 * Everything here works on plain strings and jansson, never on CivetWeb, so
 * that the fuzz harness (tests/fuzz/) links this file alone:
 *   - the nesting depth of a JSON body, checked BEFORE jansson sees it:
 *     jansson parses recursively and CivetWeb's worker threads have small
 *     stacks, so a 1.5 KB body of 250 nested objects used to overflow one;
 *   - the query string (form-encoded), with bounds that answer 400 instead
 *     of dropping a parameter silently;
 *   - the request path: only its canonical spelling reaches a route, so
 *     that a proxy rule written for "/api/v1/metrics" cannot be walked
 *     around with "/API/V1/METRICS", "//api//v1//metrics", "%6d" or "x/../";
 *   - the message framing headers (request smuggling behind a proxy);
 *   - the client address from X-Forwarded-For, counted from the right: the
 *     left-most entries are whatever the client wrote.
 * Errors are JSON arrays of {field, message}, the contract's shape.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpd.h"

/* ---- JSON bodies --------------------------------------------------------- */

/*
 * Whether the brackets of "text" nest deeper than max_depth.  Strings are
 * skipped (with their escapes), so this counts exactly the containers
 * jansson would open; for text that is not JSON it counts at least as many
 * as jansson opens before it gives up.
 */
int
json_nesting_exceeds(const char *text, size_t len, int max_depth)
{
	int depth = 0, in_string = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = text[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max_depth)
				return 1;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
	}
	return 0;
}

static json_t *
one_error(const char *field, const char *message)
{
	return json_pack("[{s:s, s:s}]", "field", field, "message", message);
}

/*
 * The request body as a JSON object.  NULL on failure, with *errors set to
 * the contract's error list (the caller owns it) and *message to the
 * envelope's message.
 *
 * This is a check only: the function gets the body's own text (handler.c),
 * so that PostgreSQL's jsonb reads every number with the exact decimal text
 * the client sent (jansson would make 12.8 a double).  What passes here
 * is JSON that jsonb reads the same way: an object, no NUL byte (the text
 * goes to libpq as a C string), no duplicate key (refused here: jsonb would
 * keep the last one silently), no \u0000 and no lone surrogate (jansson
 * refuses both, as jsonb does), integers within 64 bits (jansson refuses
 * larger ones: 400, never a rounded value).
 */
json_t *
body_parse(const char *text, size_t len, json_t **errors, const char **message)
{
	json_error_t jerr;
	json_t *v;

	*errors = NULL;
	*message = NULL;
	if (memchr(text, '\0', len) != NULL) {
		*errors = one_error("body", "NUL byte in the JSON text");
		*message = "Malformed JSON body";
		return NULL;
	}
	if (json_nesting_exceeds(text, len, PAAS_MAX_DEPTH)) {
		char msg[64];

		snprintf(msg, sizeof(msg), "JSON nesting deeper than %d levels", PAAS_MAX_DEPTH);
		*errors = one_error("body", msg);
		*message = "Malformed JSON body";
		return NULL;
	}
	v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL) {
		char msg[64];

		/* jansson quotes the bytes near the error, which may be no UTF-8
		 * (found by tests/fuzz): then the error list would not print */
		if (!utf8_valid(jerr.text, strlen(jerr.text))) {
			snprintf(msg, sizeof(msg), "invalid JSON text near byte %d", jerr.position);
			*errors = one_error("body", msg);
		} else {
			*errors = one_error("body", jerr.text);
		}
		*message = "Malformed JSON body";
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		*errors = one_error("body", "request body must be a JSON object");
		*message = "Validation failed";
		return NULL;
	}
	return v;
}

/* ---- text helpers -------------------------------------------------------- */

int
utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *) s, *end = p + n;

	while (p < end) {
		unsigned c = *p++;
		int more;
		unsigned min, cp;

		if (c < 0x80)
			continue;
		if (c >= 0xC2 && c <= 0xDF) {
			more = 1; cp = c & 0x1F; min = 0x80;
		} else if (c >= 0xE0 && c <= 0xEF) {
			more = 2; cp = c & 0x0F; min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) {
			more = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return 0;
		}
		if (end - p < more)
			return 0;
		while (more-- > 0) {
			if ((*p & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (*p++ & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
	}
	return 1;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decodes s[0..n) into out (NUL-terminated); "+" is a space when
 * form is set.  A "%" not followed by two hex digits stays as it is.
 * Returns the decoded length, or -1 when it does not fit in outlen - 1.
 */
long
percent_decode(const char *s, size_t n, char *out, size_t outlen, int form)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (char) (hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else if (c == '+' && form) {
			c = ' ';
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return (long) o;
}

/* ---- query strings ------------------------------------------------------- */

static void
add_error(json_t *errors, const char *field, const char *message)
{
	json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}

/*
 * Adds the parameters of the query string "qs" (may be NULL) to obj as
 * strings; "a=1&b" sets a only (a name without "=" carries nothing).  A
 * parameter that cannot be carried as sent (name over PAAS_MAX_QUERY_KEY
 * bytes, value over PAAS_MAX_QUERY_VALUE bytes, NUL or invalid UTF-8)
 * appends an error to "errors" instead.  Returns the number of errors.
 */
int
query_parse(const char *qs, json_t *obj, json_t *errors)
{
	char key[PAAS_MAX_QUERY_KEY + 2], val[PAAS_MAX_QUERY_VALUE + 2];
	const char *p = qs;
	int nerr = 0;

	while (p && *p) {
		const char *amp = strchr(p, '&'), *eq;
		size_t len = amp ? (size_t) (amp - p) : strlen(p);
		long kl, vl;

		eq = memchr(p, '=', len);
		if (eq && eq > p) {
			kl = percent_decode(p, (size_t) (eq - p), key, sizeof(key), 1);
			vl = percent_decode(eq + 1, len - (size_t) (eq - p) - 1, val, sizeof(val), 1);
			if (kl < 0 || kl > PAAS_MAX_QUERY_KEY) {
				add_error(errors, "query", "query parameter names are limited to 127 bytes");
				nerr++;
			} else if ((size_t) kl != strlen(key) || !utf8_valid(key, (size_t) kl)) {
				add_error(errors, "query", "query parameter names must be UTF-8 text");
				nerr++;
			} else if (vl < 0 || vl > PAAS_MAX_QUERY_VALUE) {
				add_error(errors, key, "must be at most 1024 bytes");
				nerr++;
			} else if ((size_t) vl != strlen(val) || !utf8_valid(val, (size_t) vl)) {
				add_error(errors, key, "must be UTF-8 text");
				nerr++;
			} else {
				json_object_set_new(obj, key, json_string(val));
			}
		}
		p = amp ? amp + 1 : NULL;
	}
	return nerr;
}

/* ---- paths --------------------------------------------------------------- */

static int
unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 pchar without pct-encoded: unreserved, sub-delims, ":" and "@" */
static int
plain_pchar(unsigned char c)
{
	return unreserved(c) || strchr("!$&'()*+,;=:@", c) != NULL;
}

/*
 * Whether the raw request path is in its canonical spelling (RFC 3986
 * normalisation, 6.2.2): it starts with "/", has no empty segment (one
 * trailing "/" is tolerated, as in the original system), no "." or ".."
 * segment, only pchar characters, and percent-encodings in upper case that
 * stand for something other than an unreserved character or NUL, decoding
 * to UTF-8.  The case of the literal segments is checked by route_match
 * (the route's spelling is the canonical one).
 */
int
path_is_canonical(const char *raw)
{
	const char *p = raw, *seg;

	if (raw == NULL || raw[0] != '/')
		return 0;
	if (strcmp(raw, "/") == 0)
		return 1;
	p = raw + 1;
	for (;;) {
		char dec[PAAS_MAX_SEGMENT + 1];
		size_t n;
		long dl;

		seg = p;
		n = strcspn(seg, "/");
		if (n == 0)
			return seg[0] == '\0' && seg > raw + 1; /* the tolerated trailing "/" */
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char) seg[i];

			if (c == '%') {
				int hi, lo;

				if (i + 2 >= n)
					return 0;
				hi = hexval(seg[i + 1]);
				lo = hexval(seg[i + 2]);
				if (hi < 0 || lo < 0 || (seg[i + 1] >= 'a' && seg[i + 1] <= 'f') ||
				    (seg[i + 2] >= 'a' && seg[i + 2] <= 'f'))
					return 0;
				if (hi * 16 + lo == 0 || unreserved((unsigned char) (hi * 16 + lo)))
					return 0;
				i += 2;
			} else if (!plain_pchar(c)) {
				return 0;
			}
		}
		dl = percent_decode(seg, n, dec, sizeof(dec), 0);
		if (dl < 0 || !utf8_valid(dec, (size_t) dl))
			return 0;
		if (seg[n] == '\0')
			return 1;
		p = seg + n + 1;
	}
}

/* ---- framing headers ----------------------------------------------------- */

static int
all_digits(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/*
 * The headers that frame the body, checked as RFC 9112 section 6 asks of a
 * server that may sit behind a proxy (two parties must never disagree on
 * where a request ends).  n_max is the parser's header limit: a request
 * that reaches it may have lost headers (CivetWeb drops the rest), so it is
 * refused.  Returns 0, or the status to refuse with (400, 431); *why says
 * why.
 */
int
framing_check(const struct hdr *h, int n, int n_max, const char **why)
{
	int cl = 0, te = 0, i;

	*why = NULL;
	if (n >= n_max) {
		*why = "too many header fields";
		return 431;
	}
	for (i = 0; i < n; i++) {
		if (strcasecmp(h[i].name, "Content-Length") == 0) {
			cl++;
			if (!all_digits(h[i].value)) {
				*why = "Content-Length must be a decimal number";
				return 400;
			}
		} else if (strcasecmp(h[i].name, "Transfer-Encoding") == 0) {
			te++;
			if (strcasecmp(h[i].value, "chunked") != 0) {
				*why = "only the chunked transfer coding is accepted";
				return 400;
			}
		}
	}
	if (cl > 1 || te > 1) {
		*why = "repeated framing header";
		return 400;
	}
	if (cl && te) {
		*why = "Content-Length and Transfer-Encoding together";
		return 400;
	}
	return 0;
}

/* ---- client addresses ---------------------------------------------------- */

/* Whether s is an IPv4 or IPv6 address in text form. */
static int
is_ip(const char *s)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/*
 * The client address that "hops" trusted proxies report: the hops-th entry
 * of X-Forwarded-For counted from the right, over every X-Forwarded-For
 * field of the request in order (a proxy may add a field instead of
 * appending to the client's).  With fewer entries than hops the left-most
 * is taken (every entry then came from a trusted proxy).  0 and the
 * address in out; -1 when there is no usable entry (no field, or the entry
 * is not an IP address): the caller then uses the socket's peer.
 */
int
forwarded_client(const struct hdr *h, int n, int hops, char *out, size_t outlen)
{
	const char *entries[PAAS_MAX_XFF];
	size_t lens[PAAS_MAX_XFF];
	int count = 0, i, pick;

	if (hops <= 0)
		return -1;
	for (i = 0; i < n; i++) {
		const char *p;

		if (strcasecmp(h[i].name, "X-Forwarded-For") != 0)
			continue;
		for (p = h[i].value; *p;) {
			size_t len;

			while (*p == ' ' || *p == '\t' || *p == ',')
				p++;
			if (*p == '\0')
				break;
			len = strcspn(p, ",");
			while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
				len--;
			if (count == PAAS_MAX_XFF) {
				/* keep the right-most ones: those are the trusted */
				memmove(entries, entries + 1, sizeof(entries[0]) * (PAAS_MAX_XFF - 1));
				memmove(lens, lens + 1, sizeof(lens[0]) * (PAAS_MAX_XFF - 1));
				count--;
			}
			entries[count] = p;
			lens[count] = len;
			count++;
			p += strcspn(p, ",");
		}
	}
	if (count == 0)
		return -1;
	pick = count - hops;
	if (pick < 0)
		pick = 0;
	if (lens[pick] >= outlen)
		return -1;
	memcpy(out, entries[pick], lens[pick]);
	out[lens[pick]] = '\0';
	if (!is_ip(out)) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

/*
 * Parses "10.0.0.0/8, ::1/128, 192.0.2.7" (a bare address is a host) into
 * *list (malloc'd, *n entries).  0, or -1 with *list NULL on a bad entry.
 */
int
cidr_list_parse(const char *spec, struct cidr **list, int *n)
{
	struct cidr *out = NULL;
	int count = 0, cap = 0;
	const char *p = spec;

	*list = NULL;
	*n = 0;
	while (p && *p) {
		char item[64], *slash;
		size_t len;
		struct cidr c;
		long bits;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, ", ");
		if (len >= sizeof(item))
			goto bad;
		memcpy(item, p, len);
		item[len] = '\0';
		p += len;
		memset(&c, 0, sizeof(c));
		slash = strchr(item, '/');
		if (slash)
			*slash = '\0';
		if (inet_pton(AF_INET, item, c.addr) == 1) {
			c.family = 4;
			bits = 32;
		} else if (inet_pton(AF_INET6, item, c.addr) == 1) {
			c.family = 6;
			bits = 128;
		} else {
			goto bad;
		}
		if (slash) {
			char *end;
			long b = strtol(slash + 1, &end, 10);
			if (*end != '\0' || end == slash + 1 || b < 0 || b > bits)
				goto bad;
			bits = b;
		}
		c.bits = (int) bits;
		if (count == cap) {
			struct cidr *grown = realloc(out, sizeof(*out) * (size_t) (cap ? cap * 2 : 4));
			if (grown == NULL)
				goto bad;
			out = grown;
			cap = cap ? cap * 2 : 4;
		}
		out[count++] = c;
	}
	*list = out;
	*n = count;
	return 0;
bad:
	free(out);
	return -1;
}

/* Whether the address in text form "ip" lies in one of the n ranges. */
int
cidr_list_match(const struct cidr *list, int n, const char *ip)
{
	unsigned char a[16];
	int family, i;

	if (inet_pton(AF_INET, ip, a) == 1)
		family = 4;
	else if (inet_pton(AF_INET6, ip, a) == 1)
		family = 6;
	else
		return 0;
	for (i = 0; i < n; i++) {
		int full = list[i].bits / 8, rest = list[i].bits % 8;

		if (list[i].family != family)
			continue;
		if (memcmp(a, list[i].addr, (size_t) full) != 0)
			continue;
		if (rest && ((a[full] ^ list[i].addr[full]) & (0xFF << (8 - rest)) & 0xFF))
			continue;
		return 1;
	}
	return 0;
}
