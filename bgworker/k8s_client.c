/*-------------------------------------------------------------------------
 *
 * k8s_client.c
 *	  The Kubernetes API connection of background workers (k8s_client.h).
 *
 *	  - paas.k8s_api_url, or https://$KUBERNETES_SERVICE_HOST:
 *		$KUBERNETES_SERVICE_PORT in a pod;
 *	  - the bearer token of paas.k8s_token_file, read again whenever the file
 *		changes and at least every minute (rotated tokens work); a missing
 *		file means no token (a stand-in, or a proxy that authenticates);
 *	  - paas.k8s_ca_file verifies the server when it exists; paas.k8s_timeout
 *		bounds a call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "utils/timestamp.h"

#include "instances.h"
#include "k8s_client.h"

#define TOKEN_REREAD_MS (60 * 1000)
#define MAX_BODY (256 * 1024 * 1024)

bool
k8s_resolve(K8sClient *k)
{
	const char *host;
	size_t		len;

	if (paas_k8s_api_url != NULL && paas_k8s_api_url[0] != '\0')
		strlcpy(k->base, paas_k8s_api_url, sizeof(k->base));
	else if ((host = getenv("KUBERNETES_SERVICE_HOST")) != NULL && host[0] != '\0')
	{
		const char *port = getenv("KUBERNETES_SERVICE_PORT");

		snprintf(k->base, sizeof(k->base), strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s",
				 host, (port && port[0]) ? port : "443");
	}
	else
	{
		k->base[0] = '\0';
		return false;
	}
	while ((len = strlen(k->base)) > 0 && k->base[len - 1] == '/')
		k->base[len - 1] = '\0';
	return true;
}

/* Whether st is the token file as last read (same file, same content stamp). */
static bool
token_file_same(const K8sClient *k, const struct stat *st)
{
	return st->st_dev == k->token_dev && st->st_ino == k->token_ino &&
		st->st_size == k->token_size &&
		st->st_mtim.tv_sec == k->token_mtim.tv_sec && st->st_mtim.tv_nsec == k->token_mtim.tv_nsec &&
		st->st_ctim.tv_sec == k->token_ctim.tv_sec && st->st_ctim.tv_nsec == k->token_ctim.tv_nsec;
}

void
k8s_refresh(K8sClient *k, bool force)
{
	struct stat st;
	bool		exists = paas_k8s_token_file && paas_k8s_token_file[0] &&
		stat(paas_k8s_token_file, &st) == 0;
	TimestampTz now = GetCurrentTimestamp();
	char		next[sizeof(k->auth)];

	k->have_ca = paas_k8s_ca_file && paas_k8s_ca_file[0] && access(paas_k8s_ca_file, R_OK) == 0;
	if (!force && k->hdr_json != NULL && (!exists || token_file_same(k, &st)) &&
		!TimestampDifferenceExceeds(k->token_read_at, now, TOKEN_REREAD_MS))
		return;
	next[0] = '\0';
	if (exists)
	{
		FILE	   *f = fopen(paas_k8s_token_file, "r");
		char		tok[8192];
		size_t		n = 0;

		if (f != NULL)
		{
			n = fread(tok, 1, sizeof(tok) - 1, f);
			fclose(f);
		}
		tok[n] = '\0';
		while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
			tok[--n] = '\0';
		if (n > 0)
			snprintf(next, sizeof(next), "Authorization: Bearer %s", tok);
		k->token_dev = st.st_dev;
		k->token_ino = st.st_ino;
		k->token_size = st.st_size;
		k->token_mtim = st.st_mtim;
		k->token_ctim = st.st_ctim;
		explicit_bzero(tok, sizeof(tok));
	}
	k->token_read_at = now;
	/* the same token: the list stays, and so do the handles using it */
	if (k->hdr_json != NULL && strcmp(next, k->auth) == 0)
	{
		explicit_bzero(next, sizeof(next));
		return;
	}
	strlcpy(k->auth, next, sizeof(k->auth));
	explicit_bzero(next, sizeof(next));
	if (k->before_new_headers)
		k->before_new_headers();
	curl_slist_free_all(k->hdr_json);
	k->hdr_json = curl_slist_append(NULL, "Accept: application/json");
	if (k->auth[0] != '\0')
		k->hdr_json = curl_slist_append(k->hdr_json, k->auth);
}

static size_t
collect(char *data, size_t size, size_t nmemb, void *userdata)
{
	StringInfo	out = (StringInfo) userdata;
	size_t		n = size * nmemb;

	if ((size_t) out->len + n > MAX_BODY)
		return 0;				/* curl fails the transfer with a write error */
	appendBinaryStringInfo(out, data, (int) n);
	return n;
}

void
k8s_setup_get(K8sClient *k, CURL *h, const char *url, StringInfo out, char *errbuf, long timeout_ms)
{
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, k->hdr_json);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long) Min(paas_k8s_timeout_ms, 5000));
	if (timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_USERAGENT, k->agent);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *) out);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (k->have_ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, paas_k8s_ca_file);
	errbuf[0] = '\0';
}

long
k8s_get(K8sClient *k, CURL *h, const char *path, StringInfo out, char *errbuf)
{
	char	   *url = psprintf("%s%s", k->base, path);
	long		code = 0;
	CURLcode	rc;

	resetStringInfo(out);
	k8s_setup_get(k, h, url, out, errbuf, (long) paas_k8s_timeout_ms);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	else if (errbuf[0] == '\0')
		strlcpy(errbuf, curl_easy_strerror(rc), CURL_ERROR_SIZE);
	pfree(url);
	return code;
}

/* a query cancel or a termination stops a transfer (CHECK_FOR_INTERRUPTS follows) */
static int
interrupted(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

long
k8s_send(K8sClient *k, CURL *h, const char *method, const char *path, const char *ctype,
		 const char *body, StringInfo out, char *errbuf, long timeout_ms)
{
	char	   *url = psprintf("%s%s", k->base, path);
	char	   *ct = psprintf("Content-Type: %s", ctype);
	struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
	long		code = 0;
	CURLcode	rc;

	hdr = curl_slist_append(hdr, ct);
	if (k->auth[0] != '\0')
		hdr = curl_slist_append(hdr, k->auth);
	resetStringInfo(out);
	k8s_setup_get(k, h, url, out, errbuf, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) strlen(body));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, interrupted);
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	else if (errbuf[0] == '\0')
		strlcpy(errbuf, curl_easy_strerror(rc), CURL_ERROR_SIZE);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdr);
	pfree(ct);
	pfree(url);
	return code;
}
