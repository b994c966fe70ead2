/*-------------------------------------------------------------------------
 *
 * k8s_client.h
 *	  The connection to the Kubernetes API for background workers: where
 *	  the API is, the bearer token (re-read when its file changes), the CA,
 *	  a GET and a request with a body with libcurl.  Used by
 *	  bgworker/provisioner.c, bgworker/nodesync.c, bgworker/nodedrain.c and
 *	  extension/node_actions.c (cordon from a backend).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PAAS_K8S_CLIENT_H
#define PAAS_K8S_CLIENT_H

#include "postgres.h"

#include <sys/types.h>
#include <time.h>

#include <curl/curl.h>

#include "lib/stringinfo.h"

typedef struct K8sClient
{
	char		base[1024];		/* https://host:port, no trailing slash */
	char		auth[8300];		/* "Authorization: Bearer ..." or "" */
	bool		have_ca;
	/*
	 * The token file as last read: device, inode, size and the nanosecond
	 * mtime and ctime, so that a token replaced within the same second
	 * (a rename over it, a rewrite in place) is read again at once.
	 */
	dev_t		token_dev;
	ino_t		token_ino;
	off_t		token_size;
	struct timespec token_mtim;
	struct timespec token_ctim;
	TimestampTz token_read_at;
	struct curl_slist *hdr_json;	/* Accept: application/json + auth */
	const char *agent;			/* User-Agent */
	/*
	 * Called before hdr_json is freed and built again (a new token): a
	 * handle that may not have sent its request yet (a watch in its TLS
	 * handshake) must stop using the old list.
	 */
	void		(*before_new_headers) (void);
} K8sClient;

/* false when no API is configured (paas.k8s_api_url nor a pod's environment) */
extern bool k8s_resolve(K8sClient *k);
/*
 * (re)reads the token when its file changed or a minute passed, or when
 * forced; rebuilds hdr_json only when the token differs
 */
extern void k8s_refresh(K8sClient *k, bool force);
/* prepares h for a GET of url, the body appended to "out" (at most max bytes) */
extern void k8s_setup_get(K8sClient *k, CURL *h, const char *url, StringInfo out,
						  char *errbuf, long timeout_ms);
/* one synchronous GET of base+path: the HTTP status (0: no answer) */
extern long k8s_get(K8sClient *k, CURL *h, const char *path, StringInfo out, char *errbuf);

/*
 * one synchronous request with a JSON body ("method" POST, PATCH ...; the
 * Content-Type "ctype"): the HTTP status (0: no answer, errbuf says why);
 * the answer's body in "out".  No retry: the caller decides.
 */
extern long k8s_send(K8sClient *k, CURL *h, const char *method, const char *path,
					 const char *ctype, const char *body, StringInfo out, char *errbuf,
					 long timeout_ms);

extern void paas_nodesync_register(void);
extern void paas_nodedrain_register(void);

#endif							/* PAAS_K8S_CLIENT_H */
