/*
 * tokens.c - access tokens: JWT HS256 through libjwt.
 *
 * Claims: sub (user id), role, sid (session id), iat, exp, jti, iss, aud.
 * Verification happens in-process (no database round trip): the signature
 * with the configured key, the algorithm (HS256 only: "none" and every other
 * algorithm are refused, whatever the header says), expiry, issuer and
 * audience.  Whether the account is still active is checked by the SQL
 * function each route calls (one indexed read).  Tokens that verified are
 * remembered per thread (see token_memo), so a keep-alive client's repeated
 * token is not decoded and re-signed on every request.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <openssl/rand.h>

#include "httpd.h"

#define TOKEN_ISSUER "paas-backend"
#define TOKEN_AUDIENCE "paas-frontend"

static int
copy_claim(jwt_t *jwt, const char *name, char *dst, size_t len)
{
	const char *v = jwt_get_grant(jwt, name);

	if (v == NULL || *v == '\0' || strlen(v) >= len)
		return -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/*
 * A small per-thread memory of tokens that verified: a CivetWeb thread
 * serves one keep-alive connection at a time, whose client sends the same
 * token until it expires.  An entry matches only the byte-identical token
 * (compared in full), so a hit gives exactly what verifying that string
 * would give; expiry is checked against the clock on every hit.  The key
 * is fixed for the life of the process, so entries never go stale.
 */
#define TOKEN_CACHE_SLOTS 8
#define TOKEN_CACHE_MAX 1024

struct token_memo {
	char token[TOKEN_CACHE_MAX];
	struct actor actor;
	long exp;
};

static __thread struct token_memo token_memos[TOKEN_CACHE_SLOTS];

static struct token_memo *
token_memo_slot(const char *token, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	size_t i;

	if (len >= TOKEN_CACHE_MAX)
		return NULL;
	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char) token[i]) * 16777619u;
	return &token_memos[h % TOKEN_CACHE_SLOTS];
}

static int token_verify_jwt(const char *token, struct actor *out, long *exp_out);

int
token_verify(const char *token, struct actor *out)
{
	size_t len;
	struct token_memo *m;
	long exp = 0;
	int rc;

	if (token == NULL || *token == '\0' || (len = strlen(token)) > 4096)
		return -1;
	m = token_memo_slot(token, len);
	if (m != NULL && m->exp > 0 && strcmp(m->token, token) == 0) {
		if (time(NULL) >= m->exp)
			return -2;
		*out = m->actor;
		return 0;
	}
	rc = token_verify_jwt(token, out, &exp);
	if (rc == 0 && m != NULL) {
		memcpy(m->token, token, len + 1);
		m->actor = *out;
		m->exp = exp;
	}
	return rc;
}

static int
token_verify_jwt(const char *token, struct actor *out, long *exp_out)
{
	jwt_t *jwt = NULL;
	const char *iss, *aud;
	long exp;
	int rc = -1;

	if (jwt_decode(&jwt, token, (const unsigned char *) cfg.jwt_secret,
	               (int) strlen(cfg.jwt_secret)) != 0 || jwt == NULL)
		goto cleanup;
	if (jwt_get_alg(jwt) != JWT_ALG_HS256)
		goto cleanup;
	iss = jwt_get_grant(jwt, "iss");
	aud = jwt_get_grant(jwt, "aud");
	if (!iss || strcmp(iss, TOKEN_ISSUER) != 0 || !aud || strcmp(aud, TOKEN_AUDIENCE) != 0)
		goto cleanup;
	if (copy_claim(jwt, "sub", out->sub, sizeof(out->sub)) != 0 ||
	    copy_claim(jwt, "role", out->role, sizeof(out->role)) != 0 ||
	    copy_claim(jwt, "sid", out->sid, sizeof(out->sid)) != 0)
		goto cleanup;
	errno = 0;
	exp = jwt_get_grant_int(jwt, "exp");
	if (errno != 0 || exp <= 0)
		goto cleanup;
	rc = (time(NULL) >= exp) ? -2 : 0;
	*exp_out = exp;

cleanup:
	if (jwt)
		jwt_free(jwt);
	return rc;
}

char *
token_mint(const char *sub, const char *role, const char *sid, long *expires_in)
{
	jwt_t *jwt = NULL;
	unsigned char rnd[16];
	char jti[33];
	char *out = NULL;
	time_t now = time(NULL);
	int i;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return NULL;
	for (i = 0; i < 16; i++)
		snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
	if (jwt_new(&jwt) != 0)
		return NULL;
	if (jwt_add_grant(jwt, "sub", sub) || jwt_add_grant(jwt, "role", role) ||
	    jwt_add_grant(jwt, "sid", sid) || jwt_add_grant(jwt, "jti", jti) ||
	    jwt_add_grant(jwt, "iss", TOKEN_ISSUER) || jwt_add_grant(jwt, "aud", TOKEN_AUDIENCE) ||
	    jwt_add_grant_int(jwt, "iat", (long) now) ||
	    jwt_add_grant_int(jwt, "exp", (long) now + cfg.access_ttl))
		goto cleanup;
	if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *) cfg.jwt_secret,
	                (int) strlen(cfg.jwt_secret)) != 0)
		goto cleanup;
	out = jwt_encode_str(jwt);
	if (expires_in)
		*expires_in = cfg.access_ttl;

cleanup:
	jwt_free(jwt);
	return out;
}
