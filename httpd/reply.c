/*
 * reply.c - the response envelope of the HTTP contract (../shared/API.md).
 *
 *   success: {success, message, data, [pagination], timestamp, statusCode}
 *   error:   {success, message, code, details, [errors], timestamp, statusCode}
 *
 * The body's statusCode always equals the HTTP status.  Every reply is one
 * header block plus one body write; tcp_nodelay is set on the listener so
 * the two writes do not stall on Nagle's algorithm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include <civetweb.h>

#include "httpd.h"

char *
iso_now(char *buf, size_t len)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int) (tv.tv_usec / 1000));
	return buf;
}

/* Sends "body" (reference stolen) with the given status. */
int
reply_json(struct mg_connection *conn, int status, json_t *body, const char *extra_headers)
{
	char *text = NULL;
	char len[32];
	int rc = -1;

	if (body == NULL)
		goto cleanup;
	text = json_dumps(body, JSON_COMPACT);
	if (text == NULL)
		goto cleanup;
	snprintf(len, sizeof(len), "%zu", strlen(text));
	mg_response_header_start(conn, status);
	mg_response_header_add(conn, "Content-Type", "application/json; charset=utf-8", -1);
	mg_response_header_add(conn, "Content-Length", len, -1);
	mg_response_header_add(conn, "Cache-Control", "no-store", -1);
	mg_response_header_add(conn, "X-Content-Type-Options", "nosniff", -1);
	if (extra_headers && *extra_headers)
		mg_response_header_add_lines(conn, extra_headers);
	mg_response_header_send(conn);
	mg_write(conn, text, strlen(text));
	rc = status;

cleanup:
	free(text);
	json_decref(body);
	return rc;
}

int
reply_success(struct mg_connection *conn, int status, const char *message,
              json_t *data, json_t *pagination)
{
	char ts[40];
	json_t *body = json_object();

	json_object_set_new(body, "success", json_true());
	json_object_set_new(body, "message", json_string(message ? message : "Success"));
	json_object_set_new(body, "data", data ? data : json_null());
	if (pagination)
		json_object_set_new(body, "pagination", pagination);
	json_object_set_new(body, "timestamp", json_string(iso_now(ts, sizeof(ts))));
	json_object_set_new(body, "statusCode", json_integer(status));
	return reply_json(conn, status, body, NULL);
}

int
reply_error(struct mg_connection *conn, int status, const char *code,
            const char *message, json_t *errors, const char *extra_headers)
{
	char ts[40];
	json_t *body = json_object();

	json_object_set_new(body, "success", json_false());
	json_object_set_new(body, "message", json_string(message ? message : "error"));
	json_object_set_new(body, "code", json_string(code));
	json_object_set_new(body, "details", errors ? json_incref(errors) : json_null());
	if (errors)
		json_object_set_new(body, "errors", errors);
	json_object_set_new(body, "timestamp", json_string(iso_now(ts, sizeof(ts))));
	json_object_set_new(body, "statusCode", json_integer(status));
	return reply_json(conn, status, body, extra_headers);
}
