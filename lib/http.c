/*
 * http.c: libcurl, with the retry policy every stage shares.
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
#include "cli.h"
#include "config.h"
#include "http.h"
#include "log.h"

#define DEFAULT_MAX_RESPONSE ((size_t)8 * 1024 * 1024)

struct dt_http {
	CURL *curl;
	char what[32];
	const char *ca_bundle;
	char user_agent[96];
	char errbuf[CURL_ERROR_SIZE];
	struct dt_buf body;        /* the response's body so far */
	size_t max_response;
	long timeout_ms;
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
	struct dt_http *h = NULL;

	if ((global_done || curl_global_init(CURL_GLOBAL_DEFAULT) ==
	    CURLE_OK) && (h = calloc(1, sizeof(*h))) != NULL &&
	    (h->curl = curl_easy_init()) != NULL) {
		if (!global_done++)     /* for dt_http_backoff_ms()'s jitter */
			srandom((unsigned)(time(NULL) ^ (getpid() << 16)));
		snprintf(h->what, sizeof(h->what), "%s", what);
		snprintf(h->user_agent, sizeof(h->user_agent), "dt/%s (%s)",
		    DT_VERSION, dt_prog());
		h->ca_bundle = dt_env("DT_CA_BUNDLE", NULL);
		return h;
	}
	dt_error("%s: cannot initialise libcurl", what);
	free(h);
	return NULL;
}

void
dt_http_free(struct dt_http *h)
{
	if (h != NULL)
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
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct dt_http *h = arg;
	size_t n = size * nmemb;

	if (h->body.len + n > h->max_response) {
		h->toobig = 1;
		return 0;       /* libcurl fails with CURLE_WRITE_ERROR */
	}
	return dt_buf_add(&h->body, data, n) == 0 ? n : 0;
}

/*
 * Parses a duration as rate-limit headers write it ("12", "1.5",
 * "250ms", "1m30s") into milliseconds, or -1.
 */
static long
parse_duration_ms(const char *s)
{
	double total = 0, v;
	char *end;
	size_t k;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s = end + k) {
		v = strtod(s, &end);
		if (end == s || !(v >= 0))
			return -1;
		k = strncmp(end, "ms", 2) == 0 ? 2 : *end != '\0' &&
		    strchr("smh", *end) != NULL;
		total += v * (k == 2 ? 1 : *end == 'm' ? 60000 :
		    *end == 'h' ? 3600000 : 1000);
	}
	return total <= 86400000.0 ? (long)total : -1;
}

/* Retry-After (seconds or an HTTP-date) in ms, at most a day, or -1. */
static long
retry_after(const char *value, long long now)
{
	size_t digits;
	time_t t;

	value += strspn(value, " \t");
	digits = strspn(value, "0123456789");
	/* Delta seconds, or an HTTP-date; either capped at a day. */
	if (digits > 0 && value[digits + strspn(value + digits,
	    " \t\r\n")] == '\0')
		return digits > 9 || strtoll(value, NULL, 10) > 86400 ?
		    86400000L : (long)strtoll(value, NULL, 10) * 1000;
	if ((t = curl_getdate(value, NULL)) < 0)
		return -1;
	if ((long long)t - now > 86400)
		return 86400000L;
	return (long long)t <= now ? 0 : (long)((long long)t - now) * 1000;
}

/* The value of header name in the last response, or NULL. */
static const char *
header(CURL *c, const char *name)
{
	struct curl_header *h;

	return curl_easy_header(c, name, 0, CURLH_HEADER, -1, &h) ==
	    CURLHE_OK ? h->value : NULL;
}

/* Traces the headers libcurl sends and receives, credentials masked. */
static int
on_debug(CURL *c, curl_infotype type, char *data, size_t size, void *arg)
{
	static const char masked[] = "|authorization|apikey|x-api-key|"
	    "cookie|proxy-authorization|";
	const char *what = ((struct dt_http *)arg)->what;
	const char *dir = type == CURLINFO_TEXT ? "*" :
	    type == CURLINFO_HEADER_OUT ? ">" : "<";
	char *copy, *line, *save, *sp, safe[1024], name[40];
	const char *tail;
	size_t k;

	(void)c;
	if ((type != CURLINFO_TEXT && type != CURLINFO_HEADER_OUT &&
	    type != CURLINFO_HEADER_IN) || (copy = strndup(data, size)) == NULL)
		return 0;
	for (line = strtok_r(copy, "\r\n", &save); line != NULL;
	    line = strtok_r(NULL, "\r\n", &save)) {
		tail = "";
		k = strcspn(line, ":");
		snprintf(name, sizeof(name), "|%.*s|", (int)k, line);
		if (line[k] == ':' && k + 2 < sizeof(name) &&
		    strcasestr(masked, name) != NULL) {
			line[k + 1] = '\0';
			tail = " ***";
		}
		/* A request line's path may hold a token. */
		if (type == CURLINFO_HEADER_OUT &&
		    (sp = strchr(line, ' ')) != NULL && sp[1] == '/') {
			*sp = '\0';
			tail = dt_http_safe_url(sp + 1, safe + 1,
			    sizeof(safe) - 1) - 1;
			safe[0] = ' ';
		}
		dt_log(DT_LOG_TRACE, "%s: %s %s%s", what, dir, line, tail);
	}
	free(copy);
	return 0;
}

/* Abandons the transfer (a non-zero return) once *req->cancel is set. */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return *(const volatile sig_atomic_t *)arg != 0;
}

/* Sets resp's result and error from libcurl's result cc. */
static void
set_result(struct dt_http *h, CURLcode cc, struct dt_http_resp *resp)
{
	static const CURLcode dropped[] = {CURLE_COULDNT_RESOLVE_HOST,
	    CURLE_COULDNT_CONNECT, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
	    CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2,
	    CURLE_HTTP2_STREAM};
	char *clean = NULL;
	size_t i;

	resp->result = cc == CURLE_OK ? DT_HTTP_OK : DT_HTTP_EOTHER;
	for (i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
		if (cc == dropped[i])
			resp->result = DT_HTTP_ECONNECT;
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		resp->result = DT_HTTP_ECANCELED;
		snprintf(resp->error, sizeof(resp->error),
		    "interrupted before the answer");
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		resp->result = DT_HTTP_ETIMEOUT;
		snprintf(resp->error, sizeof(resp->error),
		    "no complete response within %ld ms", h->timeout_ms);
	} else if (cc == CURLE_WRITE_ERROR && h->toobig) {
		resp->result = DT_HTTP_ETOOBIG;
		snprintf(resp->error, sizeof(resp->error),
		    "response larger than %zu bytes", h->max_response);
	} else if (cc != CURLE_OK) {
		clean = dt_redact(h->errbuf[0] ? h->errbuf :
		    curl_easy_strerror(cc));
		snprintf(resp->error, sizeof(resp->error), "%s",
		    clean ? clean : curl_easy_strerror(cc));
		free(clean);
	}
}

/* Sets the handle up for req, with the header list hdrs. */
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
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
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
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		return;
	}
	if (strcmp(method, "POST") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)(req->body ? req->body_len : 0));
}

int
dt_http_once(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp)
{
	/* "Expect:": no 100-continue round trip for a large body. */
	struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:"), *t;
	const char *const *hp;
	const char *method = req->method ? req->method : "GET", *v;
	char safe[1024];
	curl_off_t us = 0;
	CURLcode cc;

	pol = pol != NULL ? pol : &default_policy;
	dt_http_resp_clear(resp);
	h->body = (struct dt_buf){0};
	h->toobig = 0;
	h->errbuf[0] = '\0';
	h->max_response = pol->max_response ? pol->max_response :
	    DEFAULT_MAX_RESPONSE;
	h->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 300000L;
	for (t = hdrs, hp = req->headers; t != NULL && hp != NULL &&
	    *hp != NULL; hp++)
		t = curl_slist_append(hdrs, *hp);
	if (t == NULL || dt_buf_add(&h->body, "", 0) < 0) {
		curl_slist_free_all(hdrs);
		resp->result = DT_HTTP_EOTHER;
		snprintf(resp->error, sizeof(resp->error), "out of memory");
		return resp->result;
	}
	set_options(h, req, method, hdrs);
	dt_http_safe_url(req->url, safe, sizeof(safe));
	dt_debug("%s: %s %s", h->what, method, safe);
	cc = curl_easy_perform(h->curl);
	curl_slist_free_all(hdrs);
	resp->body = h->body.p;         /* resp's from here */
	resp->len = h->body.len;
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(h->curl, CURLINFO_TOTAL_TIME_T, &us);
	resp->elapsed_ms = (long)(us / 1000);
	set_result(h, cc, resp);
	if (cc != CURLE_OK)     /* only a complete response has a status */
		resp->status = 0;
	if ((v = header(h->curl, "retry-after")) != NULL)
		resp->retry_after_ms = retry_after(v, (long long)time(NULL));
	else if (resp->status == 429 && ((v = header(h->curl,
	    "x-ratelimit-reset")) != NULL || (v = header(h->curl,
	    "x-ratelimit-reset-requests")) != NULL))
		resp->retry_after_ms = parse_duration_ms(v);
	if ((v = header(h->curl, "content-range")) != NULL)
		resp->content_range = strdup(v);
	dt_debug("%s: %s %s -> %ld in %ld ms%s%s", h->what, method, safe,
	    resp->status, resp->elapsed_ms, resp->error[0] ? ": " : "",
	    resp->error);
	if (resp->result == DT_HTTP_OK && resp->status / 100 != 2)
		snprintf(resp->error, sizeof(resp->error), "HTTP %ld",
		    resp->status);
	return resp->result;
}

int
dt_retry_answer(const struct dt_http_resp *resp)
{
	long st = resp->status;

	if (resp->result == DT_HTTP_ETIMEOUT ||
	    resp->result == DT_HTTP_ECONNECT)
		return DT_ANSWER_OUTAGE;
	if (resp->result != DT_HTTP_OK)
		return DT_ANSWER_FAILED;
	if (st >= 200 && st <= 299)
		return DT_ANSWER_OK;
	if (st == 408 || st == 429 || (st >= 500 && st <= 599))
		return DT_ANSWER_OUTAGE;
	if ((st >= 300 && st <= 399) || (st >= 401 && st <= 404))
		return DT_ANSWER_SETUP;
	return st >= 400 && st <= 499 ? DT_ANSWER_REFUSED : DT_ANSWER_FAILED;
}

void
dt_retry_check(const struct dt_http_policy *pol,
    const struct dt_http_resp *resp, int answer, int outages,
    long long spent_ms, struct dt_retry *r)
{
	memset(r, 0, sizeof(*r));
	r->answer = answer;
	if (answer != DT_ANSWER_OUTAGE)
		return;
	r->wait_ms = dt_http_backoff_ms(pol, outages, resp);
	if (outages >= pol->max_tries)
		r->gave_up = DT_RETRY_TRIES;
	else if (spent_ms + r->wait_ms > pol->max_total_ms)
		r->gave_up = DT_RETRY_TIME;
	else
		r->retry = 1;
}

long
dt_http_backoff_ms(const struct dt_http_policy *pol, int n,
    const struct dt_http_resp *resp)
{
	double ceiling;

	if (resp != NULL && resp->retry_after_ms >= 0)
		return resp->retry_after_ms;
	for (ceiling = (double)pol->base_ms; --n > 0 &&
	    ceiling < (double)pol->cap_ms; ceiling *= 2)
		;
	if (ceiling > (double)pol->cap_ms)
		ceiling = (double)pol->cap_ms;
	/* Full jitter: uniformly random in [0, ceiling]. */
	return (long)(ceiling * ((double)random() / (double)RAND_MAX));
}

int
dt_http_send(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp)
{
	const char *method = req->method ? req->method : "GET";
	long long start = dt_now_ms(), left;
	char safe[1024], next[128];
	struct dt_retry r;
	int try;

	pol = pol != NULL ? pol : &default_policy;
	for (try = 1;; try++) {
		dt_http_once(h, req, pol, resp);
		resp->tries = try;
		dt_retry_check(pol, resp, dt_retry_answer(resp), try,
		    dt_now_ms() - start, &r);
		if (r.answer != DT_ANSWER_OUTAGE || stopping())
			break;
		if (r.gave_up == DT_RETRY_TRIES)
			snprintf(next, sizeof(next), "giving up after %d tries",
			    try);
		else if (r.gave_up == DT_RETRY_TIME)
			snprintf(next, sizeof(next), "giving up: waiting "
			    "%.1f s more would pass the %.0f s retry limit",
			    r.wait_ms / 1000.0, pol->max_total_ms / 1000.0);
		else
			snprintf(next, sizeof(next), "retrying in %.1f s "
			    "(%d of %d tries left)", r.wait_ms / 1000.0,
			    pol->max_tries - try, pol->max_tries);
		dt_warn("%s: %s %s: %s; %s", h->what, method,
		    dt_http_safe_url(req->url, safe, sizeof(safe)), resp->error,
		    next);
		/* The wait, in slices a stop cuts short. */
		for (left = r.wait_ms; r.retry && left > 0 && !stopping();
		    left -= 100)
			dt_sleep_ms(left > 100 ? 100 : (long)left);
		if (!r.retry || stopping())
			break;
	}
	return resp->result;
}

const char *
dt_http_safe_url(const char *url, char *buf, size_t len)
{
	static const char secret_params[] = "|key|apikey|api_key|token|"
	    "access_token|secret|password|sig|signature|";
	struct dt_buf b = {0};
	const char *p, *at, *q;
	char *clean, name[40];
	int in_query = 0;
	size_t n;

	/*
	 * Registered secrets first and whole: the masks below find a token's
	 * end by its form, which a token holding a '/' does not keep to.
	 */
	if ((p = clean = dt_redact(url)) != NULL &&
	    (q = strstr(p, "://")) != NULL) {   /* scheme://[userinfo@] */
		dt_buf_add(&b, p, (size_t)(q + 3 - p));
		p = q + 3;
		if ((at = memchr(p, '@', strcspn(p, "/?#"))) != NULL) {
			dt_buf_puts(&b, "***@");
			p = at + 1;
		}
	}
	while (p != NULL && *p != '\0') {
		if (!in_query && strncmp(p, "/bot", 4) == 0 && p[4] != '\0' &&
		    p[4] != '/') {
			/*
			 * A Bot API path is /bot<token>/<method>: all up to the
			 * last segment is the token.  A request line's path
			 * ends at a space.
			 */
			dt_buf_puts(&b, "/bot***");
			q = p + 4 + strcspn(p + 4, "?# ");
			while (q > p + 4 && q[-1] != '/')
				q--;
			p = q > p + 4 ? q - 1 : p + 4 + strcspn(p + 4, "?# ");
		} else if (*p == '?' || (in_query && *p == '&')) {
			in_query = 1;
			n = strcspn(p + 1, "=&#");
			dt_buf_add(&b, p, n + 1);
			p += n + 1;
			snprintf(name, sizeof(name), "|%.*s|", (int)n, p - n);
			if (*p == '=' && n + 2 < sizeof(name) &&
			    strcasestr(secret_params, name) != NULL) {
				dt_buf_puts(&b, "=***");
				p += 1 + strcspn(p + 1, "&#");
			}
		} else {
			in_query = in_query && *p != '#';
			dt_buf_add(&b, p++, 1);
		}
	}
	snprintf(buf, len, "%s", clean == NULL || b.oom ?
	    "(URL not shown: out of memory)" : b.p != NULL ? b.p : "");
	dt_buf_free(&b);
	free(clean);
	return buf;
}
