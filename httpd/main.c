/*
 * main.c - paas-httpd: the CivetWeb gateway of paas.
 *
 * Configuration comes from the environment (config.c, docs/operations.md).
 * The worker threads share a pool of database connections (db.c).  SIGTERM
 * or SIGINT stops the server gracefully: CivetWeb finishes the requests in
 * flight, then the pool's connections are closed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "httpd.h"

static int
on_log_message(const struct mg_connection *conn, const char *message)
{
	json_t *line = json_pack("{s:s, s:s}", "event", "civetweb", "message", message);
	char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;

	(void) conn;
	if (text)
		fprintf(stderr, "%s\n", text);
	free(text);
	json_decref(line);
	return 1;
}

static int
allow_request(struct mg_connection *conn, void *cbdata)
{
	(void) conn;
	(void) cbdata;
	return 1;
}

int
main(void)
{
	struct mg_callbacks callbacks;
	struct mg_context *ctx;
	char threads[16];
	sigset_t set;
	int sig = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (config_load() != 0)
		return 2;
	snprintf(threads, sizeof(threads), "%d", cfg.threads);

	/* Block the stop signals in every thread; main waits for them below. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	const char *options[] = {
		"listening_ports", cfg.listen,
		"num_threads", threads,
		"tcp_nodelay", "1",
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", "15000",
		"request_timeout_ms", "30000",
		"connection_queue", "1024",
		"listen_backlog", "1024",
		NULL,
	};

	if (db_pool_init(cfg.db_pool) != 0 || batch_init() != 0) {
		fprintf(stderr, "{\"event\":\"start_failed\",\"reason\":\"out of memory\"}\n");
		return 1;
	}
	mg_init_library(0);
	memset(&callbacks, 0, sizeof(callbacks));
	callbacks.log_message = on_log_message;

	ctx = mg_start(&callbacks, NULL, options);
	if (ctx == NULL) {
		fprintf(stderr, "{\"event\":\"start_failed\",\"listen\":\"%s\"}\n", cfg.listen);
		mg_exit_library();
		return 1;
	}
	/* Authorization is the request handler's (JWT, node token, route
	 * rules): this tells CivetWeb so, which also keeps it from looking for
	 * an .htpasswd file on every request. */
	mg_set_auth_handler(ctx, "/", allow_request, NULL);
	mg_set_request_handler(ctx, "/", handle_request, NULL);
	fprintf(stderr, "{\"event\":\"listening\",\"listen\":\"%s\",\"routes\":%d}\n", cfg.listen,
	        n_routes);

	sigwait(&set, &sig);
	fprintf(stderr, "{\"event\":\"stopping\",\"signal\":%d}\n", sig);
	mg_stop(ctx);
	mg_exit_library();
	db_pool_close();
	fprintf(stderr, "{\"event\":\"stopped\"}\n");
	return 0;
}
