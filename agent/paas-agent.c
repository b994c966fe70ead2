/*
 * paas-agent.c - the heartbeat agent of a paas worker node.
 *
 * Runs on every node (a Kubernetes DaemonSet, docker/k8s/paas-agent.yaml):
 *   1. registers the node (POST /api/v1/workers/register) and keeps the
 *      node token it returns, in memory and in PAAS_NODE_TOKEN_FILE when
 *      set (mode 600), so that a restarted agent re-registers with it: the
 *      server lets a join token create nodes only, and re-registering an
 *      existing node needs that node's own token;
 *   2. every PAAS_HEARTBEAT_INTERVAL seconds (default 30) sends
 *      PUT /api/v1/workers/<name>/heartbeat with the node's usage, read from
 *      /proc/stat, /proc/meminfo and statvfs() of the root filesystem.
 * Rules a reader must know:
 *   - the server's receive time is the heartbeat time; "agentTime" is sent
 *     only so that the server can report clock skew.
 *   - registration sends the node token when the agent has one; when the
 *     server refuses it (401 / 403: the node was deleted, or the token is
 *     another node's) the agent forgets it and registers with the join
 *     token.  A join-token registration of a name that exists answers 409:
 *     an administrator must delete that node first (the agent keeps
 *     retrying with back-off).
 *   - 401 / 404 on a heartbeat (token rotated, node deleted) -> register
 *     again; any other failure (server down, 5xx) -> retry with exponential
 *     back-off from 1 s to 60 s (with jitter), never exit.
 *   - SIGTERM / SIGINT end the process cleanly (exit 0) at once, also in the
 *     middle of a back-off: signals are blocked and waited for with
 *     sigtimedwait(), which is also the agent's only way of sleeping.
 *
 * Environment: PAAS_URL (required), PAAS_JOIN_TOKEN or PAAS_JOIN_TOKEN_FILE
 * (required), PAAS_NODE_TOKEN_FILE (optional; a path on the node that
 * survives restarts), NODE_NAME and NODE_IP (downward API; default: host
 * name and the first non-loopback IPv4 address), PAAS_HEARTBEAT_INTERVAL,
 * PAAS_PROC_ROOT (default /proc), PAAS_ROOTFS (default /),
 * PAAS_OS_RELEASE (default /etc/os-release), PAAS_MAX_PODS (default 110).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define MAX_RESPONSE (64 * 1024)
#define MAX_BACKOFF 60

struct settings {
	const char *url;
	char join_token[512];
	const char *node_token_file;
	char node_name[254];
	char node_ip[64];
	int interval;
	const char *proc_root;
	const char *rootfs;
	const char *os_release;
	int max_pods;
};

struct cpu_sample {
	unsigned long long busy;
	unsigned long long total;
};

struct response {
	char *data;
	size_t len;
};

static struct settings S;
static sigset_t stop_signals;

static void
logf_(const char *fmt, ...)
{
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	fprintf(stderr, "%s paas-agent: ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Sleeps up to "seconds"; returns 1 when a stop signal arrived. */
static int
wait_or_stop(double seconds)
{
	struct timespec ts;

	ts.tv_sec = (time_t) seconds;
	ts.tv_nsec = (long) ((seconds - (double) ts.tv_sec) * 1e9);
	for (;;) {
		int sig = sigtimedwait(&stop_signals, NULL, &ts);
		if (sig > 0) {
			logf_("received signal %d, exiting", sig);
			return 1;
		}
		if (errno == EAGAIN)
			return 0;
		if (errno != EINTR)
			return 0;
	}
}

static int
stop_pending(void)
{
	return wait_or_stop(0);
}

static int
read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return 0;
}

static int
cpu_read(struct cpu_sample *s, int *cores)
{
	char path[512], buf[8192], *line;
	unsigned long long v[10] = {0};
	int i;

	snprintf(path, sizeof(path), "%s/stat", S.proc_root);
	if (read_file(path, buf, sizeof(buf)) != 0)
		return -1;
	if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
	           &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) < 4)
		return -1;
	/* guest and guest_nice are already inside user and nice */
	s->total = 0;
	for (i = 0; i < 8; i++)
		s->total += v[i];
	s->busy = s->total - v[3] - v[4];
	if (cores) {
		*cores = 0;
		for (line = strchr(buf, '\n'); line && strncmp(line + 1, "cpu", 3) == 0; line = strchr(line + 1, '\n'))
			(*cores)++;
		if (*cores == 0)
			*cores = 1;
	}
	return 0;
}

/* kB value of a /proc/meminfo key, or -1. */
static long long
meminfo(const char *key)
{
	char path[512], buf[8192], *p;
	size_t klen = strlen(key);

	snprintf(path, sizeof(path), "%s/meminfo", S.proc_root);
	if (read_file(path, buf, sizeof(buf)) != 0)
		return -1;
	for (p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, key, klen) == 0 && p[klen] == ':')
			return strtoll(p + klen + 1, NULL, 10);
	return -1;
}

static void
cpu_model(char *out, size_t len, const char *machine)
{
	char path[512], buf[65536], *p, *nl;

	snprintf(out, len, "%s", machine);
	snprintf(path, sizeof(path), "%s/cpuinfo", S.proc_root);
	if (read_file(path, buf, sizeof(buf)) != 0)
		return;
	if ((p = strstr(buf, "model name")) == NULL && (p = strstr(buf, "Hardware")) == NULL)
		return;
	if ((p = strchr(p, ':')) == NULL)
		return;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if ((nl = strchr(p, '\n')) != NULL)
		*nl = '\0';
	if (*p)
		snprintf(out, len, "%s", p);
}

static void
os_image(char *out, size_t len)
{
	char buf[8192], *p, *e;

	snprintf(out, len, "Linux");
	if (read_file(S.os_release, buf, sizeof(buf)) != 0 || (p = strstr(buf, "PRETTY_NAME=")) == NULL)
		return;
	p += strlen("PRETTY_NAME=");
	if (*p == '"')
		p++;
	e = p + strcspn(p, "\"\n");
	*e = '\0';
	snprintf(out, len, "%s", p);
}

static const char *
go_arch(const char *machine)
{
	if (strcmp(machine, "x86_64") == 0)
		return "amd64";
	if (strcmp(machine, "aarch64") == 0 || strcmp(machine, "arm64") == 0)
		return "arm64";
	if (strncmp(machine, "armv", 4) == 0)
		return "arm";
	if (machine[0] == 'i' && strcmp(machine + 2, "86") == 0)
		return "386";
	return machine;
}

static int
disk(unsigned long long *total, unsigned long long *used)
{
	struct statvfs v;

	if (statvfs(S.rootfs, &v) != 0)
		return -1;
	*total = (unsigned long long) v.f_blocks * v.f_frsize;
	*used = (unsigned long long) (v.f_blocks - v.f_bfree) * v.f_frsize;
	return 0;
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct response *r = userdata;
	size_t n = size * nmemb;
	char *grown;

	if (r->len + n > MAX_RESPONSE)
		return 0;
	grown = realloc(r->data, r->len + n + 1);
	if (grown == NULL)
		return 0;
	r->data = grown;
	memcpy(r->data + r->len, ptr, n);
	r->len += n;
	r->data[r->len] = '\0';
	return n;
}

/*
 * One request; returns the HTTP status, or -1 when the server could not be
 * reached.  *out receives the parsed JSON reply (caller frees) when asked.
 */
static long
call(CURL *curl, const char *method, const char *path, const char *token, json_t *body, json_t **out)
{
	char url[2048], auth[600];
	struct curl_slist *h = NULL;
	struct response r = {NULL, 0};
	char *text = json_dumps(body, JSON_COMPACT);
	long status = -1;
	CURLcode rc;

	if (out)
		*out = NULL;
	if (text == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s%s", S.url, path);
	h = curl_slist_append(h, "Content-Type: application/json");
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	h = curl_slist_append(h, auth);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
	rc = curl_easy_perform(curl);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		if (out && r.data)
			*out = json_loads(r.data, 0, NULL);
	} else {
		logf_("%s %s failed: %s", method, path, curl_easy_strerror(rc));
	}
	curl_slist_free_all(h);
	free(r.data);
	free(text);
	return status;
}

/*
 * Keeps the node token in PAAS_NODE_TOKEN_FILE (written to a temporary file
 * of mode 600, then renamed over it), or empties the file when "token" is
 * empty.  A failure is logged: the agent works on, but a restart will have
 * to register with the join token.
 */
static void
token_save(const char *token)
{
	char tmp[4096];
	size_t len = strlen(token);
	int fd;

	if (S.node_token_file == NULL)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", S.node_token_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, token, len) != (ssize_t) len || fsync(fd) != 0) {
		logf_("cannot write %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	if (rename(tmp, S.node_token_file) != 0) {
		logf_("cannot write %s: %s", S.node_token_file, strerror(errno));
		unlink(tmp);
	}
}

/* The node token kept by an earlier run, or "" (token_len bytes). */
static void
token_load(char *token, size_t token_len)
{
	token[0] = '\0';
	if (S.node_token_file == NULL || read_file(S.node_token_file, token, token_len) != 0)
		return;
	token[strcspn(token, "\r\n")] = '\0';
	if (token[0])
		logf_("using the node token of %s", S.node_token_file);
}

/*
 * 0 = registered (the new node token stored in "token"); otherwise -1.
 * "token" holds the node's current token, or "" for a join-token
 * registration; a refused node token is forgotten.
 */
static int
do_register(CURL *curl, char *token, size_t token_len)
{
	struct utsname u;
	char model[256], image[256], mem[64];
	unsigned long long dtotal = 0, dused = 0;
	int cores = 1;
	struct cpu_sample cs;
	json_t *body, *reply = NULL;
	const char *tok;
	long status;
	int rc = -1;

	uname(&u);
	cpu_model(model, sizeof(model), u.machine);
	os_image(image, sizeof(image));
	cpu_read(&cs, &cores);
	disk(&dtotal, &dused);
	snprintf(mem, sizeof(mem), "%lldKi", meminfo("MemTotal") > 0 ? meminfo("MemTotal") : 0);
	body = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:{s:s}}",
	                 "name", S.node_name, "hostname", S.node_name, "ipAddress", S.node_ip,
	                 "cpuCores", cores, "cpuArchitecture", model, "architecture", go_arch(u.machine),
	                 "operatingSystem", "linux", "kernelVersion", u.release, "osImage", image,
	                 "totalMemory", mem, "totalStorage", "0", "maxPods", S.max_pods,
	                 "labels", "paas.io/agent", "paas-agent");
	if (body == NULL)
		return -1;
	json_object_set_new(body, "totalStorage", json_sprintf("%llu", dtotal));
	if (token[0]) {
		status = call(curl, "POST", "/api/v1/workers/register", token, body, &reply);
		if (status == 401 || status == 403) {
			logf_("node token refused (HTTP %ld), registering with the join token", status);
			token[0] = '\0';
			token_save("");
			json_decref(reply);
			reply = NULL;
		}
	}
	if (token[0] == '\0')
		status = call(curl, "POST", "/api/v1/workers/register", S.join_token, body, &reply);
	tok = json_string_value(json_object_get(json_object_get(reply, "data"), "nodeToken"));
	if ((status == 200 || status == 201) && tok && strlen(tok) < token_len) {
		snprintf(token, token_len, "%s", tok);
		token_save(token);
		logf_("registered node %s (%s)", S.node_name, S.node_ip);
		rc = 0;
	} else if (status == 409) {
		logf_("registration refused: HTTP 409 (node %s exists and this agent has not its node token;"
		      " an administrator must delete it first)", S.node_name);
	} else if (status > 0) {
		logf_("registration refused: HTTP %ld", status);
	}
	json_decref(reply);
	json_decref(body);
	return rc;
}

/* HTTP status of one heartbeat (-1: server unreachable). */
static long
do_heartbeat(CURL *curl, const char *token, struct cpu_sample *prev)
{
	struct cpu_sample now;
	int cores = 1;
	long long mtotal = meminfo("MemTotal"), mavail = meminfo("MemAvailable");
	unsigned long long dtotal = 0, dused = 0;
	char path[600], ts[32], *name;
	time_t t = time(NULL);
	struct tm tm;
	json_t *body;
	long status;

	body = json_pack("{s:b}", "isReady", 1);
	if (body == NULL)
		return -1;
	if (cpu_read(&now, &cores) == 0) {
		if (now.total > prev->total) {
			double busy = (double) (now.busy - prev->busy) / (double) (now.total - prev->total);
			json_object_set_new(body, "cpuUsage", json_sprintf("%lldm", (long long) (busy * cores * 1000.0 + 0.5)));
		}
		*prev = now;
	}
	if (mtotal > 0 && mavail >= 0)
		json_object_set_new(body, "memoryUsage", json_sprintf("%lldKi", mtotal - mavail));
	if (disk(&dtotal, &dused) == 0)
		json_object_set_new(body, "storageUsage", json_sprintf("%llu", dused));
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	json_object_set_new(body, "agentTime", json_string(ts));

	name = curl_easy_escape(curl, S.node_name, 0);
	snprintf(path, sizeof(path), "/api/v1/workers/%s/heartbeat", name ? name : S.node_name);
	curl_free(name);
	status = call(curl, "PUT", path, token, body, NULL);
	json_decref(body);
	return status;
}

static void
first_ipv4(char *out, size_t len)
{
	struct ifaddrs *ifs, *i;

	snprintf(out, len, "127.0.0.1");
	if (getifaddrs(&ifs) != 0)
		return;
	for (i = ifs; i; i = i->ifa_next) {
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
			struct in_addr a = ((struct sockaddr_in *) i->ifa_addr)->sin_addr;
			if ((ntohl(a.s_addr) >> 24) != 127) {
				inet_ntop(AF_INET, &a, out, (socklen_t) len);
				break;
			}
		}
	}
	freeifaddrs(ifs);
}

static int
configure(void)
{
	const char *v;

	S.url = getenv("PAAS_URL");
	if (S.url == NULL || *S.url == '\0') {
		logf_("PAAS_URL is required");
		return -1;
	}
	if ((v = getenv("PAAS_JOIN_TOKEN")) != NULL && *v) {
		snprintf(S.join_token, sizeof(S.join_token), "%s", v);
	} else if ((v = getenv("PAAS_JOIN_TOKEN_FILE")) != NULL && read_file(v, S.join_token, sizeof(S.join_token)) == 0) {
		S.join_token[strcspn(S.join_token, "\r\n")] = '\0';
	}
	if (S.join_token[0] == '\0') {
		logf_("PAAS_JOIN_TOKEN or PAAS_JOIN_TOKEN_FILE is required");
		return -1;
	}
	S.node_token_file = (v = getenv("PAAS_NODE_TOKEN_FILE")) && *v ? v : NULL;
	if ((v = getenv("NODE_NAME")) != NULL && *v)
		snprintf(S.node_name, sizeof(S.node_name), "%s", v);
	else if (gethostname(S.node_name, sizeof(S.node_name)) != 0)
		snprintf(S.node_name, sizeof(S.node_name), "unknown-node");
	if ((v = getenv("NODE_IP")) != NULL && *v)
		snprintf(S.node_ip, sizeof(S.node_ip), "%s", v);
	else
		first_ipv4(S.node_ip, sizeof(S.node_ip));
	S.interval = (v = getenv("PAAS_HEARTBEAT_INTERVAL")) ? atoi(v) : 30;
	if (S.interval < 1 || S.interval > 3600)
		S.interval = 30;
	S.proc_root = (v = getenv("PAAS_PROC_ROOT")) && *v ? v : "/proc";
	S.rootfs = (v = getenv("PAAS_ROOTFS")) && *v ? v : "/";
	S.os_release = (v = getenv("PAAS_OS_RELEASE")) && *v ? v : "/etc/os-release";
	S.max_pods = (v = getenv("PAAS_MAX_PODS")) ? atoi(v) : 110;
	if (S.max_pods < 1 || S.max_pods > 1000000)
		S.max_pods = 110;
	return 0;
}

/* Exponential back-off with +-25 % jitter, capped at MAX_BACKOFF seconds. */
static double
next_backoff(int *attempt)
{
	double b = 1.0;
	int i;

	for (i = 0; i < *attempt && b < MAX_BACKOFF; i++)
		b *= 2;
	if (b > MAX_BACKOFF)
		b = MAX_BACKOFF;
	(*attempt)++;
	return b * (0.75 + 0.5 * ((double) rand() / RAND_MAX));
}

int
main(void)
{
	CURL *curl = NULL;
	char token[256] = "";
	struct cpu_sample prev = {0, 0};
	int attempt = 0, rc = 1, registered = 0;

	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigprocmask(SIG_BLOCK, &stop_signals, NULL);
	srand((unsigned) time(NULL) ^ (unsigned) getpid());

	if (configure() != 0)
		return 2;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return 1;
	curl = curl_easy_init();
	if (curl == NULL)
		goto done;
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 3L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "paas-agent/" PAAS_VERSION);
	cpu_read(&prev, NULL);
	token_load(token, sizeof(token));
	logf_("starting: node %s, server %s, heartbeat every %d s", S.node_name, S.url, S.interval);

	while (!stop_pending()) {
		double pause;

		if (!registered) {
			if (do_register(curl, token, sizeof(token)) == 0) {
				registered = 1;
				attempt = 0;
				pause = 0;
			} else {
				pause = next_backoff(&attempt);
				logf_("registration failed, retry in %.1f s", pause);
			}
		} else {
			long status = do_heartbeat(curl, token, &prev);

			if (status == 200) {
				attempt = 0;
				pause = S.interval;
			} else if (status == 401 || status == 404) {
				logf_("heartbeat answered %ld, registering again", status);
				registered = 0;
				pause = 0;
			} else {
				pause = next_backoff(&attempt);
				if (pause > S.interval)
					pause = S.interval;
				logf_("heartbeat failed (HTTP %ld), retry in %.1f s", status, pause);
			}
		}
		if (pause > 0 && wait_or_stop(pause))
			break;
	}
	rc = 0;

done:
	if (curl)
		curl_easy_cleanup(curl);
	curl_global_cleanup();
	return rc;
}
