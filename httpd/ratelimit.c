/*
 * ratelimit.c - token buckets shared by all worker threads.
 *
 * A bucket per (scope, key) holds up to "per_minute" tokens and refills
 * continuously.  Buckets live in a fixed-size open-addressing table guarded
 * by one mutex (the critical section is a few arithmetic operations); a slot
 * idle for more than ten minutes is reused, so memory stays bounded whatever
 * the number of client addresses.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "httpd.h"

#define SLOTS 65536
#define KEYLEN 96

struct bucket {
	char key[KEYLEN];
	double tokens;
	double stamp; /* seconds, monotonic */
};

static struct bucket table[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint64_t
fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char) *s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* cost 1 takes a token; cost 0 only looks. */
static int
bucket_op(const char *scope, const char *key, int per_minute, int cost)
{
	char full[KEYLEN];
	double now = now_s(), rate = per_minute / 60.0;
	uint64_t h;
	int i, wait = 0;
	struct bucket *b = NULL, *victim = NULL;

	snprintf(full, sizeof(full), "%s|%s", scope, key);
	h = fnv1a(full);
	pthread_mutex_lock(&lock);
	for (i = 0; i < 16; i++) {
		struct bucket *c = &table[(h + (uint64_t) i) % SLOTS];
		if (strcmp(c->key, full) == 0) {
			b = c;
			break;
		}
		if (victim == NULL && (c->key[0] == '\0' || now - c->stamp > 600))
			victim = c;
	}
	if (b == NULL) {
		/* the probe window is full of live buckets: take over the home slot */
		b = victim ? victim : &table[h % SLOTS];
		snprintf(b->key, sizeof(b->key), "%s", full);
		b->tokens = per_minute;
		b->stamp = now;
	}
	b->tokens += (now - b->stamp) * rate;
	if (b->tokens > per_minute)
		b->tokens = per_minute;
	b->stamp = now;
	if (b->tokens >= 1.0)
		b->tokens -= cost;
	else
		wait = (int) ((1.0 - b->tokens) / rate) + 1;
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
