/*
 * ratelimit.c - token buckets shared by all worker threads.
 *
 * A bucket per (scope, key) holds up to "per_minute" tokens and refills
 * continuously.  Buckets live in a fixed-size open-addressing table guarded
 * by one mutex (the critical section is a few arithmetic operations), so
 * memory stays bounded whatever the number of client addresses.
 *
 * The rule that makes a limit a limit: a bucket's slot is given to another
 * key only once the bucket has refilled completely (a full bucket and no
 * bucket answer alike, so forgetting it changes nothing).  When every slot
 * of a key's probe window holds a bucket that is not full, the key is
 * refused (fail closed) until one refills: a flood of new keys can cost
 * those keys service, never reset somebody's limit.  The slot of a key is
 * chosen by SipHash under a key drawn at start, so that clients cannot aim
 * their keys at one probe window.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "httpd.h"

#ifndef RATELIMIT_SLOTS
#define RATELIMIT_SLOTS 65536 /* tests/fuzz builds a small table to reach the full case */
#endif
#define PROBES 16
#define KEYLEN 96

struct bucket {
	uint64_t hash;   /* of the whole "scope|key" (the key text may be cut) */
	char key[KEYLEN];
	double tokens;
	double stamp;    /* seconds, monotonic */
	double capacity; /* per_minute of the bucket's scope */
};

static struct bucket table[RATELIMIT_SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint64_t sip_k0, sip_k1;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
draw_key(void)
{
	uint64_t k[2] = {0x736f6d6570736575ULL, 0x646f72616e646f6dULL};

	/* without entropy the table still works; only its placement is known */
	if (getrandom(k, sizeof(k), 0) != (ssize_t) sizeof(k)) {
		/* stand-alone (tests/fuzz links this file alone): the line's time made here */
		char ts[32];
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
		fprintf(stderr, "{\"ts\":\"%s\",\"event\":\"ratelimit_key\",\"warning\":\"getrandom failed\"}\n", ts);
	}
	sip_k0 = k[0];
	sip_k1 = k[1];
}

#define ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                     \
	do {                                                                             \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                    \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                       \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                       \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                    \
	} while (0)

/* SipHash-2-4 (Aumasson and Bernstein) of s[0..n). */
static uint64_t
siphash(const unsigned char *s, size_t n)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ sip_k0, v1 = 0x646f72616e646f6dULL ^ sip_k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ sip_k0, v3 = 0x7465646279746573ULL ^ sip_k1;
	uint64_t b = (uint64_t) n << 56, m;
	size_t i, left = n & 7;
	int r;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&m, s + i, 8); /* little-endian hosts (x86-64, arm64) */
		v3 ^= m;
		for (r = 0; r < 2; r++)
			SIPROUND;
		v0 ^= m;
	}
	for (m = 0; left > 0; left--)
		m |= (uint64_t) s[i + left - 1] << (8 * (left - 1));
	b |= m;
	v3 ^= b;
	for (r = 0; r < 2; r++)
		SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	for (r = 0; r < 4; r++)
		SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The bucket's tokens now, refilled since its stamp. */
static double
level(const struct bucket *b, double now)
{
	double t = b->tokens + (now - b->stamp) * b->capacity / 60.0;
	return t > b->capacity ? b->capacity : t;
}

/* Seconds until the bucket holds "want" tokens, rounded up, at least 1. */
static int
seconds_until(const struct bucket *b, double now, double want)
{
	double missing = want - level(b, now);
	return missing <= 0 ? 1 : (int) (missing * 60.0 / b->capacity) + 1;
}

/* cost 1 takes a token; cost 0 only looks.  0 = allowed, else seconds to wait. */
static int
bucket_op(const char *scope, const char *key, int per_minute, int cost)
{
	char full[512];
	double now = now_s();
	uint64_t h;
	int i, wait = 0, n;
	struct bucket *b = NULL, *victim = NULL;

	pthread_once(&once, draw_key);
	n = snprintf(full, sizeof(full), "%s|%s", scope, key);
	if (n < 0)
		return 1;
	if ((size_t) n >= sizeof(full))
		n = (int) sizeof(full) - 1;
	h = siphash((const unsigned char *) full, (size_t) n);
	pthread_mutex_lock(&lock);
	for (i = 0; i < PROBES; i++) {
		struct bucket *c = &table[(h + (uint64_t) i) % RATELIMIT_SLOTS];
		if (c->key[0] != '\0' && c->hash == h && strncmp(c->key, full, KEYLEN - 1) == 0) {
			b = c;
			break;
		}
		/* empty, or refilled completely: forgetting it changes no answer */
		if (victim == NULL && (c->key[0] == '\0' || level(c, now) >= c->capacity))
			victim = c;
	}
	if (b == NULL && victim == NULL) {
		/* every bucket of the window is live: refuse until one refills */
		wait = 0;
		for (i = 0; i < PROBES; i++) {
			struct bucket *c = &table[(h + (uint64_t) i) % RATELIMIT_SLOTS];
			int w = seconds_until(c, now, c->capacity);
			if (wait == 0 || w < wait)
				wait = w;
		}
		pthread_mutex_unlock(&lock);
		return wait;
	}
	if (b == NULL) {
		if (cost == 0) {
			/* no bucket is a full bucket: nothing to store for a look */
			pthread_mutex_unlock(&lock);
			return 0;
		}
		b = victim;
		b->hash = h;
		/* the text may be cut: the hash of the whole of it tells keys apart */
		snprintf(b->key, sizeof(b->key), "%.*s", KEYLEN - 1, full);
		b->tokens = per_minute;
		b->stamp = now;
	}
	b->capacity = per_minute;
	b->tokens = level(b, now);
	b->stamp = now;
	if (b->tokens >= 1.0)
		b->tokens -= cost;
	else
		wait = seconds_until(b, now, 1.0);
	pthread_mutex_unlock(&lock);
	return wait;
}

int
ratelimit_take(const char *scope, const char *key, int per_minute)
{
	return bucket_op(scope, key, per_minute, 1);
}

int
ratelimit_peek(const char *scope, const char *key, int per_minute)
{
	return bucket_op(scope, key, per_minute, 0);
}
