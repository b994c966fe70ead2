/*
 * fuzz_ratelimit.c - libFuzzer harness over the rate-limit table
 * (httpd/ratelimit.c), built with a table of 64 slots so that inputs fill
 * probe windows.  Each input is a sequence of operations (byte pairs: key,
 * take-or-look) on keys of its own; a model counts the tokens granted per
 * key, and a key may never be granted more than its bucket holds plus what
 * it refilled since its first take: if a live bucket were handed to another
 * key (and so reset), its key would get more.  Refusals (a full window)
 * are always allowed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "httpd.h"

#define PER_MINUTE 3
#define KEYS 256

static unsigned long generation;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int granted[KEYS];
	static double first[KEYS];
	char key[64];
	size_t i;

	generation++;
	for (i = 0; i < KEYS; i++)
		granted[i] = 0;
	for (i = 0; i + 1 < size; i += 2) {
		int k = data[i], take = data[i + 1] & 1;

		snprintf(key, sizeof(key), "%lu-%d", generation, k);
		if (!take) {
			(void) ratelimit_peek("fuzz", key, PER_MINUTE);
			continue;
		}
		if (ratelimit_take("fuzz", key, PER_MINUTE) == 0) {
			double now = now_s();

			if (granted[k]++ == 0)
				first[k] = now;
			if (granted[k] > PER_MINUTE + (int) ((now - first[k]) * PER_MINUTE / 60.0) + 1) {
				fprintf(stderr, "key %s granted %d tokens: its bucket was reset\n", key, granted[k]);
				abort();
			}
		}
	}
	return 0;
}
