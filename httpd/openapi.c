/*
 * openapi.c - the OpenAPI 3.1 document, generated from the route table at
 * request time, so it always describes exactly the routes httpd serves.
 */
#include <stdio.h>
#include <string.h>

#include "httpd.h"

/* "/api/v1/users/:id" -> "/api/v1/users/{id}" */
static void
oapi_path(const char *pattern, char *out, size_t len)
{
	size_t o = 0;
	const char *p = pattern;

	while (*p && o + 3 < len) {
		if (*p == ':' && (p == pattern || p[-1] == '/')) {
			out[o++] = '{';
			p++;
			while (*p && *p != '/' && o + 2 < len)
				out[o++] = *p++;
			out[o++] = '}';
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
}

static const char *
access_name(enum access a)
{
	switch (a) {
	case ACCESS_PUBLIC: return "public";
	case ACCESS_USER: return "user";
	case ACCESS_ADMIN: return "admin";
	case ACCESS_NODE: return "node";
	case ACCESS_LOCAL: return "loopback-or-admin";
	}
	return "public";
}

static json_t *
operation(const struct route *r)
{
	json_t *op = json_object(), *params = json_array(), *responses = json_object();
	const char *p = r->pattern;
	char code[8];

	json_object_set_new(op, "summary", json_string(r->message));
	json_object_set_new(op, "operationId", json_string(r->function ? r->function : r->pattern));
	json_object_set_new(op, "tags", json_pack("[s]", r->tag));
	json_object_set_new(op, "x-access", json_string(access_name(r->access)));
	if (r->access == ACCESS_USER || r->access == ACCESS_ADMIN)
		json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearerAuth"));
	else if (r->access == ACCESS_NODE)
		json_object_set_new(op, "security", json_pack("[{s:[]}]", "nodeToken"));
	while ((p = strchr(p, ':')) != NULL) {
		char name[32];
		size_t n = strcspn(p + 1, "/");
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, p + 1, n);
		name[n] = '\0';
		json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", name, "in",
		                                        "path", "required", 1, "schema", "type", "string"));
		p += n + 1;
	}
	if (json_array_size(params) > 0)
		json_object_set_new(op, "parameters", params);
	else
		json_decref(params);
	if (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0)
		json_object_set_new(op, "requestBody",
		                    json_pack("{s:{s:{s:{s:s}}}}", "content", "application/json", "schema",
		                              "type", "object"));
	snprintf(code, sizeof(code), "%d", r->status);
	json_object_set_new(responses, code,
	                    json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", r->message, "content",
	                              "application/json", "schema", "$ref",
	                              "#/components/schemas/Success"));
	json_object_set_new(responses, "default",
	                    json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", "Error envelope",
	                              "content", "application/json", "schema", "$ref",
	                              "#/components/schemas/Error"));
	json_object_set_new(op, "responses", responses);
	return op;
}

json_t *
openapi_document(void)
{
	json_t *doc, *paths = json_object();
	int i;

	for (i = 0; i < n_routes; i++) {
		char path[256], method[16];
		json_t *item;
		size_t k;

		oapi_path(routes[i].pattern, path, sizeof(path));
		for (k = 0; routes[i].method[k] && k < sizeof(method) - 1; k++)
			method[k] = (char) (routes[i].method[k] | 0x20);
		method[k] = '\0';
		item = json_object_get(paths, path);
		if (item == NULL) {
			item = json_object();
			json_object_set_new(paths, path, item);
		}
		json_object_set_new(item, method, operation(&routes[i]));
	}
	doc = json_pack(
	    "{s:s, s:{s:s, s:s, s:s}, s:o, s:{s:{s:{s:s, s:s, s:s}, s:{s:s, s:s}}, s:{s:{s:s, s:[s,s,s,s,s]}, s:{s:s, s:[s,s,s,s,s]}}}}",
	    "openapi", "3.1.0",
	    "info", "title", "paas API", "version", "0.2.0", "description",
	    "Platform-as-a-service backend: accounts, catalog, credit billing, subscriptions, worker nodes.",
	    "paths", paths,
	    "components",
	    "securitySchemes",
	    "bearerAuth", "type", "http", "scheme", "bearer", "bearerFormat", "JWT",
	    "nodeToken", "type", "http", "scheme", "bearer",
	    "schemas",
	    "Success", "type", "object", "required", "success", "message", "data", "timestamp", "statusCode",
	    "Error", "type", "object", "required", "success", "message", "code", "timestamp", "statusCode");
	return doc;
}
