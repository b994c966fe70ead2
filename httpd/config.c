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
		fprintf(stderr, "paas-httpd: %s must be an integer in [%ld, %ld]\n", name, min, max);
		exit(2);
	}
	return n;
}

int
config_load(void)
{
	cfg.listen = env_str("PAAS_HTTP_LISTEN", "127.0.0.1:8080");
	cfg.db_url = env_str("PAAS_DB_URL", "dbname=paas user=paas_api");
	cfg.jwt_secret = env_str("PAAS_JWT_SECRET", NULL);
	cfg.threads = (int) env_long("PAAS_HTTP_THREADS", 64, 2, 1024);
	cfg.db_pool = (int) env_long("PAAS_DB_POOL", 8, 1, 1024);
	cfg.access_ttl = env_long("PAAS_ACCESS_TOKEN_TTL", 900, 10, 86400);
	cfg.rl_login_per_min = (int) env_long("PAAS_RATE_LOGIN_PER_MIN", 20, 1, 1000000);
	cfg.rl_register_per_min = (int) env_long("PAAS_RATE_REGISTER_PER_MIN", 10, 1, 1000000);
	cfg.rl_refresh_per_min = (int) env_long("PAAS_RATE_REFRESH_PER_MIN", 60, 1, 1000000);
	cfg.rl_account_per_min = (int) env_long("PAAS_RATE_LOGIN_FAILURES_PER_MIN", 10, 1, 1000000);
	cfg.rl_topup_per_min = (int) env_long("PAAS_RATE_TOPUP_PER_MIN", 10, 1, 1000000);
	cfg.trust_proxy = (int) env_long("PAAS_TRUST_PROXY", 0, 0, 1);
	cfg.access_log = (int) env_long("PAAS_ACCESS_LOG", 1, 0, 1);

	if (cfg.jwt_secret == NULL || strlen(cfg.jwt_secret) < 32) {
		fprintf(stderr, "paas-httpd: PAAS_JWT_SECRET must be set (32 characters or more)\n");
		return -1;
	}
	fprintf(stderr,
	        "{\"event\":\"config\",\"listen\":\"%s\",\"threads\":%d,\"dbPool\":%d,"
	        "\"accessTokenTtl\":%ld,\"trustProxy\":%d}\n",
	        cfg.listen, cfg.threads, cfg.db_pool, cfg.access_ttl, cfg.trust_proxy);
	return 0;
}
