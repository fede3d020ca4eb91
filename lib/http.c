/*
 * http.c: libcurl with the retry policy every stage shares.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "clock.h"
#include "cli.h"
#include "config.h"
#include "http.h"
#include "retry.h"
#include "log.h"

#define DEFAULT_MAX_RESPONSE ((size_t)8 * 1024 * 1024)

struct dt_http {
	CURL *curl;
	char what[32];
	const char *ca_bundle;
	char user_agent[96];
	char errbuf[CURL_ERROR_SIZE];
	struct dt_http_resp *resp; /* response being filled */
	struct dt_buf body;        /* its body so far */
	size_t max_response;
	int toobig;
};

static const struct dt_http_policy default_policy = {
	.max_tries = 5,
	.base_ms = 500,
	.cap_ms = 30000,
	.max_total_ms = 120000,
	.max_response = DEFAULT_MAX_RESPONSE,
};

static volatile int *stop_flag;

void
dt_http_set_stop_flag(volatile int *flag)
{
	stop_flag = flag;
}

static int
stopping(void)
{
	return stop_flag != NULL && *stop_flag != 0;
}

struct dt_http *
dt_http_new(const char *what)
{
	static int global_done;
	struct dt_http *h;

	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			dt_error("%s: cannot initialise libcurl", what);
			return NULL;
		}
		global_done = 1;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		dt_error("%s: out of memory", what);
		return NULL;
	}
	if ((h->curl = curl_easy_init()) == NULL) {
		dt_error("%s: cannot initialise libcurl", what);
		free(h);
		return NULL;
	}
	snprintf(h->what, sizeof(h->what), "%s", what);
	snprintf(h->user_agent, sizeof(h->user_agent), "dt/%s (%s)",
	    DT_VERSION, dt_prog());
	h->ca_bundle = dt_env("DT_CA_BUNDLE", NULL);
	return h;
}

void
dt_http_free(struct dt_http *h)
{
	if (h == NULL)
		return;
	curl_easy_cleanup(h->curl);
	free(h);
}

void
dt_http_resp_clear(struct dt_http_resp *resp)
{
	free(resp->body);
	free(resp->content_range);
	memset(resp, 0, sizeof(*resp));
	resp->retry_after_ms = -1;
	resp->ratelimit_reset_ms = -1;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct dt_http *h = arg;
	size_t n = size * nmemb;

	if (h->body.len + n > h->max_response) {
		h->toobig = 1;
		return 0; /* makes libcurl fail with CURLE_WRITE_ERROR */
	}
	return dt_buf_add(&h->body, data, n) == 0 ? n : 0;
}

/*
 * Parses a duration such as "12", "1.5", "250ms", "1m30s" or "6m0s" (the
 * forms rate-limit headers use) into milliseconds, or -1.
 */
static long
parse_duration_ms(const char *s)
{
	double total = 0;
	int any = 0;

	while (isspace((unsigned char)*s))
		s++;
	while (*s != '\0' && !isspace((unsigned char)*s)) {
		char *end;
		double v;

		errno = 0;
		v = strtod(s, &end);
		if (end == s || errno != 0 || v < 0)
			return -1;
		s = end;
		if (strncmp(s, "ms", 2) == 0) {
			total += v;
			s += 2;
		} else if (*s == 's') {
			total += v * 1000;
			s++;
		} else if (*s == 'm') {
			total += v * 60000;
			s++;
		} else if (*s == 'h') {
			total += v * 3600000;
			s++;
		} else if (*s == '\0' || isspace((unsigned char)*s))
			total += v * 1000;
		else
			return -1;
		any = 1;
	}
	if (!any || total > 86400000.0)
		return -1;
	return (long)total;
}

long
dt_http_parse_retry_after(const char *value, long long now)
{
	const char *p;
	time_t t;

	while (isspace((unsigned char)*value))
		value++;
	for (p = value; isdigit((unsigned char)*p); p++)
		;
	if (p > value) {
		const char *q = p;

		while (isspace((unsigned char)*q))
			q++;
		if (*q == '\0') {
			long long secs;

			if (p - value > 9)
				return 86400000L; /* absurd: cap at a day */
			secs = strtoll(value, NULL, 10);
			return secs > 86400 ? 86400000L : (long)secs * 1000;
		}
	}
	if ((t = curl_getdate(value, NULL)) < 0)
		return -1;
	if ((long long)t <= now)
		return 0;
	if ((long long)t - now > 86400)
		return 86400000L;
	return (long)((long long)t - now) * 1000;
}

/* Trims the header value in place and returns it. */
static char *
header_value(char *line, size_t n, const char *name)
{
	size_t k = strlen(name);
	char *v, *end;

	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return NULL;
	v = line + k + 1;
	end = line + n;
	while (v < end && isspace((unsigned char)*v))
		v++;
	while (end > v && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return v;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct dt_http *h = arg;
	struct dt_http_resp *r = h->resp;
	size_t n = size * nmemb;
	char line[512], *v;

	if (n >= sizeof(line))
		return n;
	memcpy(line, data, n);
	line[n] = '\0';
	if ((v = header_value(line, n, "retry-after")) != NULL)
		r->retry_after_ms = dt_http_parse_retry_after(v,
		    (long long)time(NULL));
	else if ((v = header_value(line, n, "content-range")) != NULL) {
		free(r->content_range);
		r->content_range = strdup(v);
	} else if ((v = header_value(line, n, "x-ratelimit-reset")) != NULL ||
	    (v = header_value(line, n, "x-ratelimit-reset-requests")) != NULL)
		r->ratelimit_reset_ms = parse_duration_ms(v);
	else if (strncmp(line, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue): forget the old one. */
		r->retry_after_ms = -1;
		r->ratelimit_reset_ms = -1;
	}
	return n;
}

/*
 * Logs what libcurl sends and receives at trace level, with the values
 * of credential headers and the secret parts of URLs masked.
 */
static int
on_debug(CURL *c, curl_infotype type, char *data, size_t size, void *arg)
{
	static const char *masked[] = {"authorization", "apikey",
	    "x-api-key", "cookie", "proxy-authorization"};
	const char *dir;
	char *copy, *line, *next;
	struct dt_http *h = arg;
	size_t i;

	(void)c;
	switch (type) {
	case CURLINFO_TEXT:
		dir = "*";
		break;
	case CURLINFO_HEADER_OUT:
		dir = ">";
		break;
	case CURLINFO_HEADER_IN:
		dir = "<";
		break;
	default:
		return 0; /* bodies are never traced: they hold users' text */
	}
	if ((copy = strndup(data, size)) == NULL)
		return 0;
	for (line = copy; *line != '\0'; line = next) {
		char safe[1024];
		char *sp;

		next = line + strcspn(line, "\r\n");
		if (*next != '\0')
			*next++ = '\0';
		next += strspn(next, "\r\n");
		if (*line == '\0')
			continue;
		for (i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
			size_t k = strlen(masked[i]);

			if (strncasecmp(line, masked[i], k) == 0 &&
			    line[k] == ':') {
				line[k + 1] = '\0';
				break;
			}
		}
		/* Request lines carry a path that may hold a token. */
		if (type == CURLINFO_HEADER_OUT &&
		    (sp = strchr(line, ' ')) != NULL && sp[1] == '/') {
			*sp = '\0';
			dt_log(DT_LOG_TRACE, "%s: %s %s %s", h->what, dir, line,
			    dt_http_safe_url(sp + 1, safe, sizeof(safe)));
			continue;
		}
		dt_log(DT_LOG_TRACE, "%s: %s %s%s", h->what, dir, line,
		    i < sizeof(masked) / sizeof(masked[0]) ? " ***" : "");
	}
	free(copy);
	return 0;
}

/* Abandons the transfer (a non-zero return) once *req->cancel is set. */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	const volatile sig_atomic_t *cancel = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return *cancel != 0;
}

static int
classify(CURLcode cc, int toobig)
{
	switch (cc) {
	case CURLE_OK:
		return DT_HTTP_OK;
	case CURLE_ABORTED_BY_CALLBACK:
		return DT_HTTP_ECANCELED;
	case CURLE_OPERATION_TIMEDOUT:
		return DT_HTTP_ETIMEOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return DT_HTTP_ECONNECT;
	case CURLE_WRITE_ERROR:
		return toobig ? DT_HTTP_ETOOBIG : DT_HTTP_EOTHER;
	default:
		return DT_HTTP_EOTHER;
	}
}

/* Sets up the handle for one request; hdrs is the header list. */
static void
set_options(struct dt_http *h, const struct dt_http_req *req,
    const char *method, struct curl_slist *hdrs)
{
	CURL *c = h->curl;

	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->ca_bundle != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_bundle);
	curl_easy_setopt(c, CURLOPT_USERAGENT, h->user_agent);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
	    req->timeout_ms > 0 ? req->timeout_ms : 300000L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
	if (req->cancel != NULL) {
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, req->cancel);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	}
	if (dt_log_enabled(DT_LOG_TRACE)) {
		curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
		curl_easy_setopt(c, CURLOPT_DEBUGDATA, h);
		curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
	}
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	else {
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS,
		    req->body ? req->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(req->body ? req->body_len : 0));
	}
}

/* Fills resp->error for a failed transfer (cc, resp->result). */
static void
describe_failure(const struct dt_http *h, const struct dt_http_req *req,
    CURLcode cc, struct dt_http_resp *resp)
{
	if (resp->result == DT_HTTP_ETOOBIG)
		snprintf(resp->error, sizeof(resp->error),
		    "response larger than %zu bytes", h->max_response);
	else if (resp->result == DT_HTTP_ECANCELED)
		snprintf(resp->error, sizeof(resp->error),
		    "interrupted before the answer");
	else if (resp->result == DT_HTTP_ETIMEOUT)
		snprintf(resp->error, sizeof(resp->error),
		    "no complete response within %ld ms", req->timeout_ms > 0 ?
		    req->timeout_ms : 300000L);
	else if (cc != CURLE_OK) {
		char *clean = dt_redact(h->errbuf[0] ? h->errbuf :
		    curl_easy_strerror(cc));

		snprintf(resp->error, sizeof(resp->error), "%s",
		    clean ? clean : curl_easy_strerror(cc));
		free(clean);
	}
}

int
dt_http_once(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp)
{
	struct curl_slist *hdrs = NULL, *t;
	const char *const *hp;
	const char *method = req->method ? req->method : "GET";
	char safe[1024];
	curl_off_t us = 0;
	CURLcode cc;
	CURL *c = h->curl;

	if (pol == NULL)
		pol = &default_policy;
	dt_http_resp_clear(resp);
	h->resp = resp;
	memset(&h->body, 0, sizeof(h->body));
	h->toobig = 0;
	h->errbuf[0] = '\0';
	h->max_response = pol->max_response ? pol->max_response :
	    DEFAULT_MAX_RESPONSE;

	for (hp = req->headers; hp != NULL && *hp != NULL; hp++) {
		if ((t = curl_slist_append(hdrs, *hp)) == NULL)
			goto oom;
		hdrs = t;
	}
	/* No "Expect: 100-continue" round trip for large bodies. */
	if ((t = curl_slist_append(hdrs, "Expect:")) == NULL)
		goto oom;
	hdrs = t;

	set_options(h, req, method, hdrs);
	if (dt_log_enabled(DT_LOG_DEBUG))
		dt_log(DT_LOG_DEBUG, "%s: %s %s", h->what, method,
		    dt_http_safe_url(req->url, safe, sizeof(safe)));
	cc = curl_easy_perform(c);
	curl_slist_free_all(hdrs);
	h->resp = NULL;
	resp->body = h->body.p;         /* owned by resp from here */
	resp->len = h->body.len;
	memset(&h->body, 0, sizeof(h->body));

	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &us);
	resp->elapsed_ms = (long)(us / 1000);
	resp->result = classify(cc, h->toobig);
	if (resp->body == NULL && (resp->body = strdup("")) == NULL) {
		resp->result = DT_HTTP_EOTHER;
		snprintf(resp->error, sizeof(resp->error), "out of memory");
		return resp->result;
	}
	describe_failure(h, req, cc, resp);
	/* Only a complete response has a status. */
	if (cc != CURLE_OK)
		resp->status = 0;
	dt_log(DT_LOG_DEBUG, "%s: %s %s -> %ld in %ld ms%s%s", h->what, method,
	    safe, resp->status, resp->elapsed_ms, resp->error[0] ? ": " : "",
	    resp->error);
	return resp->result;
oom:
	curl_slist_free_all(hdrs);
	h->resp = NULL;
	resp->result = DT_HTTP_EOTHER;
	snprintf(resp->error, sizeof(resp->error), "out of memory");
	return resp->result;
}

long
dt_http_backoff_ms(const struct dt_http_policy *pol, int n,
    const struct dt_http_resp *resp)
{
	double ceiling;

	if (pol == NULL)
		pol = &default_policy;
	if (resp != NULL && resp->retry_after_ms >= 0)
		return resp->retry_after_ms;
	if (resp != NULL && resp->status == 429 &&
	    resp->ratelimit_reset_ms >= 0)
		return resp->ratelimit_reset_ms;
	ceiling = (double)pol->base_ms;
	while (--n > 0 && ceiling < (double)pol->cap_ms)
		ceiling *= 2;
	if (ceiling > (double)pol->cap_ms)
		ceiling = (double)pol->cap_ms;
	/* Full jitter: uniformly random in [0, ceiling]. */
	return (long)(ceiling * ((double)random() / (double)RAND_MAX));
}

/* Sleeps ms milliseconds in slices, returning early when stopping. */
static void
sleep_ms(long ms)
{
	long long end = dt_now_ms() + ms;

	while (!stopping()) {
		long long left = end - dt_now_ms();
		struct timespec ts;

		if (left <= 0)
			break;
		if (left > 100)
			left = 100;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left * 1000000L;
		nanosleep(&ts, NULL);
	}
}

static void
describe(const struct dt_http_resp *r, char *buf, size_t len)
{
	if (r->result == DT_HTTP_OK)
		snprintf(buf, len, "HTTP %ld", r->status);
	else
		snprintf(buf, len, "%s", r->error);
}

int
dt_http_send(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp)
{
	static int seeded;
	long long start = dt_now_ms();
	char safe[1024], why[300];
	int try;

	if (pol == NULL)
		pol = &default_policy;
	if (!seeded) {
		srandom((unsigned)(time(NULL) ^ (getpid() << 16)));
		seeded = 1;
	}
	for (try = 1;; try++) {
		struct dt_retry r;

		dt_http_once(h, req, pol, resp);
		resp->tries = try;
		dt_retry_check(pol, resp, dt_retry_answer(resp), try,
		    dt_now_ms() - start, &r);
		if (r.answer != DT_ANSWER_OUTAGE || stopping() ||
		    resp->result == DT_HTTP_ECANCELED)
			break;
		describe(resp, why, sizeof(why));
		dt_http_safe_url(req->url, safe, sizeof(safe));
		if (r.gave_up == DT_RETRY_TRIES) {
			dt_warn("%s: %s %s: %s; giving up after %d tries",
			    h->what, req->method ? req->method : "GET", safe,
			    why, try);
			break;
		}
		if (r.gave_up == DT_RETRY_TIME) {
			dt_warn("%s: %s %s: %s; giving up: waiting %.1f s more "
			    "would pass the %.0f s retry limit", h->what,
			    req->method ? req->method : "GET", safe, why,
			    r.wait_ms / 1000.0, pol->max_total_ms / 1000.0);
			break;
		}
		dt_warn("%s: %s %s: %s; retrying in %.1f s (%d of %d tries "
		    "left)", h->what, req->method ? req->method : "GET", safe,
		    why, r.wait_ms / 1000.0, pol->max_tries - try,
		    pol->max_tries);
		sleep_ms(r.wait_ms);
		if (stopping())
			break;
	}
	return resp->result;
}

/* Returns 1 when a query parameter name looks like a credential. */
static int
secret_param(const char *name, size_t n)
{
	static const char *names[] = {"key", "apikey", "api_key", "token",
	    "access_token", "secret", "password", "sig", "signature"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && strncasecmp(name, names[i], n) == 0)
			return 1;
	return 0;
}

const char *
dt_http_safe_url(const char *url, char *buf, size_t len)
{
	const char *p, *scheme_end, *auth_end, *at, *q;
	char *clean;
	size_t o = 0;
	int in_query = 0;

#define PUT(c) do { if (o + 1 < len) buf[o++] = (c); } while (0)
#define PUTS(s) do { const char *s_ = (s); while (*s_) PUT(*s_++); } while (0)
	if (len == 0)
		return buf;
	/*
	 * Registered secrets go first and whole: the masks below find a
	 * token's end by its form, which a token with a '/' does not keep
	 * to, and would leave its tail behind.
	 */
	if ((clean = dt_redact(url)) == NULL) {
		snprintf(buf, len, "(URL not shown: out of memory)");
		return buf;
	}
	p = url = clean;
	/* scheme://[userinfo@]host... */
	if ((scheme_end = strstr(url, "://")) != NULL) {
		while (p < scheme_end + 3)
			PUT(*p++);
		auth_end = p + strcspn(p, "/?#");
		at = memchr(p, '@', (size_t)(auth_end - p));
		if (at != NULL) {
			PUTS("***@");
			p = at + 1;
		}
	}
	while (*p != '\0') {
		if (!in_query && *p == '/' && strncmp(p, "/bot", 4) == 0 &&
		    p[4] != '\0' && p[4] != '/') {
			/*
			 * A Bot API path is /bot<token>/<method>: everything
			 * up to the last segment is the token, '/' or not.
			 * The path ends at a space too: a request line is
			 * "/path HTTP/1.1".
			 */
			PUTS("/bot***");
			p += 4;
			q = p + strcspn(p, "?# ");
			while (q > p && q[-1] != '/')
				q--;
			p = q > p ? q - 1 : p + strcspn(p, "?# ");
			continue;
		}
		if (*p == '?' || (in_query && *p == '&')) {
			const char *name = p + 1;
			size_t n = strcspn(name, "=&#");

			in_query = 1;
			PUT(*p++);
			while (p < name + n)
				PUT(*p++);
			if (*p == '=' && secret_param(name, n)) {
				PUTS("=***");
				p += 1 + strcspn(p + 1, "&#");
			}
			continue;
		}
		if (*p == '#')
			in_query = 0;
		PUT(*p++);
	}
	buf[o] = '\0';
	free(clean);
#undef PUT
#undef PUTS
	return buf;
}
