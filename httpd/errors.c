/*
 * errors.c - THE table from SQLSTATE to HTTP status and error code.
 *
 * Application outcomes use free classes "P<subject>" with the HTTP status in
 * the last three characters: "PT" for the generic codes of the contract
 * (PT404 -> 404 NOT_FOUND_ERROR), and one class per subject whose refusals
 * the original API named with a code of their own, so that its clients can
 * branch on them: PU (user accounts), PE (an account's e-mail address), PS
 * (catalog services), PW (worker nodes), PK (the Kubernetes API refused an
 * action on a node: its status and message are the details).  A handful of PostgreSQL
 * conditions a client can provoke map to 4xx; anything else is a real
 * server fault (500).  Entries of two characters match a whole SQLSTATE
 * class.
 */
#include <string.h>

#include "httpd.h"

static const struct {
	const char *sqlstate;
	struct http_error http;
} table[] = {
	{"PT400", {400, "VALIDATION_ERROR"}},
	{"PT401", {401, "AUTH_ERROR"}},
	{"PT402", {402, "INSUFFICIENT_BALANCE"}},
	{"PT403", {403, "FORBIDDEN_ERROR"}},
	{"PT404", {404, "NOT_FOUND_ERROR"}},
	{"PT409", {409, "CONFLICT_ERROR"}},
	{"PT413", {413, "PAYLOAD_TOO_LARGE"}},
	{"PT429", {429, "RATE_LIMITED"}},
	{"PT502", {502, "GATEWAY_ERROR"}},
	{"PT503", {503, "SERVICE_UNAVAILABLE"}},
	{"PU400", {400, "INVALID_PASSWORD"}},       /* the current password is wrong */
	{"PU404", {404, "USER_NOT_FOUND"}},
	{"PU409", {409, "USER_EXISTS"}},            /* create: the e-mail is taken */
	{"PE409", {409, "EMAIL_EXISTS"}},           /* update: the e-mail is taken */
	{"PS404", {404, "SERVICE_NOT_FOUND"}},
	{"PS409", {409, "SERVICE_EXISTS"}},
	{"PW404", {404, "WORKER_NODE_NOT_FOUND"}},
	{"PW409", {409, "WORKER_NODE_EXISTS"}},
	{"PK502", {502, "CLUSTER_ERROR"}},          /* the Kubernetes API refused a node action */
	{"23505", {409, "CONFLICT_ERROR"}},     /* unique_violation */
	{"23503", {409, "CONFLICT_ERROR"}},     /* foreign_key_violation */
	{"23514", {400, "VALIDATION_ERROR"}},   /* check_violation */
	{"23502", {400, "VALIDATION_ERROR"}},   /* not_null_violation */
	{"22", {400, "VALIDATION_ERROR"}},      /* data exceptions: bad input */
	{"40001", {503, "SERVICE_UNAVAILABLE"}},/* serialization_failure */
	{"40P01", {503, "SERVICE_UNAVAILABLE"}},/* deadlock_detected */
	{"55P03", {503, "SERVICE_UNAVAILABLE"}},/* lock_not_available */
	{"57014", {503, "SERVICE_UNAVAILABLE"}},/* query_canceled (timeout) */
	{"57P0", {503, "SERVICE_UNAVAILABLE"}}, /* shutdown, crash, cannot connect */
	{"53", {503, "SERVICE_UNAVAILABLE"}},   /* insufficient resources */
	{"08", {503, "SERVICE_UNAVAILABLE"}},   /* connection exceptions */
};

static const struct http_error internal = {500, "INTERNAL_ERROR"};

const struct http_error *
sqlstate_to_http(const char *sqlstate)
{
	size_t i;

	if (sqlstate == NULL || strlen(sqlstate) != 5)
		return &internal;
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		size_t n = strlen(table[i].sqlstate);
		if (strncmp(sqlstate, table[i].sqlstate, n) == 0)
			return &table[i].http;
	}
	return &internal;
}
