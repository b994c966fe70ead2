/*
 * main.c - paas-httpd: the CivetWeb gateway of paas.
 *
 * Configuration comes from the environment (config.c, docs/operations.md).
 * The worker threads share a pool of database connections (db.c).  SIGTERM
 * or SIGINT stops the server gracefully: CivetWeb finishes the requests in
 * flight, then the pool's connections are closed.
 *
 * Two listeners, each a CivetWeb context of its own: the API
 * (PAAS_HTTP_LISTEN) and GET /metrics (PAAS_METRICS_LISTEN, loopback by
 * default).  The API's metrics route needs an admin token: behind a proxy
 * every client's socket peer is the proxy, so "the peer is loopback" proves
 * nothing there.
 *
 * A worker thread is held by its connection from accept to close, so the
 * listener is sized and bounded for slow clients (edge.c): many threads
 * with small stacks (an idle one costs its touched stack pages), a request
 * timeout that bounds the headers of a request and every read and write,
 * a short keep-alive, and a cap of connections per client address.
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
		log_event("%s\n", text);
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
	struct mg_context *ctx, *mctx = NULL;
	char threads[16], request_timeout[16], keepalive_timeout[16];
	sigset_t set;
	int sig = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (config_load() != 0)
		return 2;
	snprintf(threads, sizeof(threads), "%d", cfg.threads);
	snprintf(request_timeout, sizeof(request_timeout), "%d", cfg.request_timeout_ms);
	snprintf(keepalive_timeout, sizeof(keepalive_timeout), "%d", cfg.keepalive_timeout_ms);

	/* Block the stop signals in every thread; main waits for them below. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* decode_url=no: the handler sees the path as sent, to refuse the
	 * spellings that are not canonical (request.c) */
	const char *options[] = {
		"listening_ports", cfg.listen,
		"num_threads", threads,
		"tcp_nodelay", "1",
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", keepalive_timeout,
		"request_timeout_ms", request_timeout,
		"decode_url", "no",
		"connection_queue", "1024",
		"listen_backlog", "1024",
		/* CORS is the handler's (PAAS_CORS_ORIGINS): CivetWeb's own
		 * answers every preflight for any origin */
		"access_control_allow_origin", "",
		"access_control_allow_methods", "",
		NULL,
	};
	const char *metrics_options[] = {
		"listening_ports", cfg.metrics_listen ? cfg.metrics_listen : "",
		"num_threads", "2",
		"tcp_nodelay", "1",
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", keepalive_timeout,
		"request_timeout_ms", request_timeout,
		"decode_url", "no",
		"access_control_allow_origin", "",
		"access_control_allow_methods", "",
		NULL,
	};

	if (edge_init() != 0 || db_pool_init(cfg.db_pool) != 0 || batch_init() != 0) {
		log_event("{\"event\":\"start_failed\",\"reason\":\"out of memory\"}\n");
		return 1;
	}
	mg_init_library(0);
	memset(&callbacks, 0, sizeof(callbacks));
	callbacks.log_message = on_log_message;
	callbacks.connection_close = edge_connection_close;
	callbacks.http_error = reply_http_error;

	if (cfg.metrics_listen) {
		mctx = mg_start(&callbacks, NULL, metrics_options);
		if (mctx == NULL) {
			log_event("{\"event\":\"start_failed\",\"listen\":\"%s\"}\n",
			        cfg.metrics_listen);
			mg_exit_library();
			return 1;
		}
		mg_set_auth_handler(mctx, "/", allow_request, NULL);
		mg_set_request_handler(mctx, "/", metrics_request, NULL);
	}
	ctx = mg_start(&callbacks, NULL, options);
	if (ctx == NULL) {
		log_event("{\"event\":\"start_failed\",\"listen\":\"%s\"}\n", cfg.listen);
		if (mctx)
			mg_stop(mctx);
		mg_exit_library();
		return 1;
	}
	/* Authorization is the request handler's (JWT, node token, route
	 * rules): this tells CivetWeb so, which also keeps it from looking for
	 * an .htpasswd file on every request. */
	mg_set_auth_handler(ctx, "/", allow_request, NULL);
	mg_set_request_handler(ctx, "/", handle_request, NULL);
	log_event("{\"event\":\"listening\",\"listen\":\"%s\",\"metrics\":\"%s\",\"routes\":%d}\n",
	        cfg.listen, cfg.metrics_listen ? cfg.metrics_listen : "off", n_routes);

	sigwait(&set, &sig);
	log_event("{\"event\":\"stopping\",\"signal\":%d}\n", sig);
	mg_stop(ctx);
	if (mctx)
		mg_stop(mctx);
	mg_exit_library();
	db_pool_close();
	log_event("{\"event\":\"stopped\"}\n");
	return 0;
}
