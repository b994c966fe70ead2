/*
 * config.c - gateway configuration from the environment.
 *
 * Every setting has a documented default (docs/operations.md) except the
 * secrets, which must be given.  Secrets are never printed: the start-up
 * line lists the non-secret settings only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

struct config cfg;

#if defined(__SANITIZE_ADDRESS__)
#define STACK_KB_DEFAULT 1024
#else
#define STACK_KB_DEFAULT 256
#endif

static const char *
env_str(const char *name, const char *def)
{
	const char *v = getenv(name);
	return (v && *v) ? v : def;
}

static long
env_long(const char *name, long def, long min, long max)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return def;
	n = strtol(v, &end, 10);
	if (*end != '\0' || n < min || n > max) {
		log_event("{\"event\":\"config_invalid\",\"setting\":\"%s\","
		          "\"message\":\"%s must be an integer in [%ld, %ld]\"}\n", name, name, min, max);
		exit(2);
	}
	return n;
}

/*
 * PAAS_CORS_ORIGINS: a comma-separated list of origins ("https://app.example.com"),
 * compared exactly with a request's Origin, or "*" for any.  0 ok.
 */
static int
cors_parse(const char *spec)
{
	char *copy, *tok, *save = NULL;

	if (spec == NULL)
		return 0;
	copy = strdup(spec);
	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char **grown;
		size_t n;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		n = strlen(tok);
		while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
			tok[--n] = '\0';
		if (n == 0)
			continue;
		if (n > PAAS_MAX_ORIGIN || strpbrk(tok, "\r\n") != NULL) {
			free(copy);
			return -1;
		}
		grown = realloc(cfg.cors_origins, (size_t) (cfg.n_cors_origins + 1) * sizeof(char *));
		if (grown == NULL || (grown[cfg.n_cors_origins] = strdup(tok)) == NULL) {
			if (grown)
				cfg.cors_origins = grown;
			free(copy);
			return -1;
		}
		cfg.cors_origins = grown;
		cfg.n_cors_origins++;
	}
	free(copy);
	return 0;
}

int
config_load(void)
{
	cfg.listen = env_str("PAAS_HTTP_LISTEN", "127.0.0.1:8080");
	cfg.db_url = env_str("PAAS_DB_URL", "dbname=paas user=paas_api");
	cfg.jwt_secret = env_str("PAAS_JWT_SECRET", NULL);
	cfg.threads = (int) env_long("PAAS_HTTP_THREADS", 1024, 2, 8192);
	cfg.db_pool = (int) env_long("PAAS_DB_POOL", 8, 1, 1024);
	cfg.access_ttl = env_long("PAAS_ACCESS_TOKEN_TTL", 900, 10, 86400);
	cfg.rl_login_per_min = (int) env_long("PAAS_RATE_LOGIN_PER_MIN", 20, 1, 1000000);
	cfg.rl_register_per_min = (int) env_long("PAAS_RATE_REGISTER_PER_MIN", 10, 1, 1000000);
	cfg.rl_refresh_per_min = (int) env_long("PAAS_RATE_REFRESH_PER_MIN", 60, 1, 1000000);
	cfg.rl_topup_per_min = (int) env_long("PAAS_RATE_TOPUP_PER_MIN", 10, 1, 1000000);
	cfg.trust_proxy = (int) env_long("PAAS_TRUST_PROXY", 0, 0, PAAS_MAX_XFF);
	cfg.access_log = (int) env_long("PAAS_ACCESS_LOG", 1, 0, 1);
	cfg.metrics_listen = env_str("PAAS_METRICS_LISTEN", "127.0.0.1:9187");
	if (strcmp(cfg.metrics_listen, "off") == 0)
		cfg.metrics_listen = NULL;
	cfg.request_timeout_ms = (int) env_long("PAAS_HTTP_REQUEST_TIMEOUT_MS", 10000, 100, 600000);
	cfg.keepalive_timeout_ms = (int) env_long("PAAS_HTTP_KEEPALIVE_TIMEOUT_MS", 5000, 0, 600000);
	cfg.body_timeout_ms = (int) env_long("PAAS_HTTP_BODY_TIMEOUT_MS", 15000, 100, 600000);
	cfg.conn_per_addr = (int) env_long("PAAS_CONN_PER_ADDR", 64, 1, 100000);
	/* the sanitizers' frames are several times larger */
	cfg.thread_stack_kb = (int) env_long("PAAS_HTTP_STACK_KB", STACK_KB_DEFAULT, 64, 65536);
	cfg.hash_slots = (int) env_long("PAAS_HASH_SLOTS", cfg.db_pool / 4 > 1 ? cfg.db_pool / 4 : 1, 1,
	                                cfg.db_pool);
	cfg.hash_wait_ms = (int) env_long("PAAS_HASH_WAIT_MS", 250, 0, 60000);
	cfg.rl_webhook_rejects_per_min = (int) env_long("PAAS_RATE_WEBHOOK_REJECTS_PER_MIN", 30, 1, 1000000);
	{
		const char *spec = env_str("PAAS_TRUSTED_PROXIES", NULL);
		if (spec && cidr_list_parse(spec, &cfg.trusted, &cfg.n_trusted) != 0) {
			log_event("{\"event\":\"config_invalid\",\"setting\":\"PAAS_TRUSTED_PROXIES\","
			          "\"message\":\"PAAS_TRUSTED_PROXIES must be a comma-separated list of "
			          "addresses or CIDR ranges\"}\n");
			return -1;
		}
	}

	if (cors_parse(env_str("PAAS_CORS_ORIGINS", NULL)) != 0) {
		log_event("{\"event\":\"config_invalid\",\"setting\":\"PAAS_CORS_ORIGINS\","
		          "\"message\":\"PAAS_CORS_ORIGINS must be a comma-separated list of origins "
		          "(at most %d bytes each), or *\"}\n", PAAS_MAX_ORIGIN);
		return -1;
	}

	if (cfg.jwt_secret == NULL || strlen(cfg.jwt_secret) < 32) {
		log_event("{\"event\":\"config_invalid\",\"setting\":\"PAAS_JWT_SECRET\","
		          "\"message\":\"PAAS_JWT_SECRET must be set (32 characters or more)\"}\n");
		return -1;
	}
	log_event(
	        "{\"event\":\"config\",\"listen\":\"%s\",\"threads\":%d,\"dbPool\":%d,"
	        "\"accessTokenTtl\":%ld,\"trustProxy\":%d,\"trustedProxies\":%d,"
	        "\"metricsListen\":\"%s\",\"connPerAddr\":%d,\"hashSlots\":%d,\"stackKb\":%d,"
	        "\"corsOrigins\":%d}\n",
	        cfg.listen, cfg.threads, cfg.db_pool, cfg.access_ttl, cfg.trust_proxy, cfg.n_trusted,
	        cfg.metrics_listen ? cfg.metrics_listen : "off", cfg.conn_per_addr, cfg.hash_slots,
	        cfg.thread_stack_kb, cfg.n_cors_origins);
	return 0;
}
