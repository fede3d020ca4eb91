/*
 * http.h: HTTP requests over libcurl, with the retry policy every stage
 * shares.
 *
 * TLS peer and host verification are always on; DT_CA_BUNDLE names an
 * extra CA bundle file.  Requests carry "User-Agent: dt/<version>
 * (<prog>)".  Retries cover timeouts, connection errors, 408, 429 and
 * 5xx, with exponential backoff and full jitter, honouring Retry-After
 * (seconds or HTTP-date) and capped in total time: one policy,
 * dt_retry_check() (retry.h), for every caller.  Each retry logs one
 * warning line: what failed, the wait and the tries left.
 *
 * Nothing here logs a header value or a URL path segment that carries a
 * secret: URLs are logged through dt_http_safe_url(), header values of
 * Authorization and apikey are masked in trace output, and every line
 * also goes through the log's secret redaction.
 */
#ifndef DT_HTTP_H
#define DT_HTTP_H

#include <signal.h>
#include <stddef.h>

struct dt_http;

/* Failure classes, for deciding what an error record says. */
enum {
	DT_HTTP_OK = 0,         /* got a response (any status) */
	DT_HTTP_ETIMEOUT = 1,   /* connect or total timeout */
	DT_HTTP_ECONNECT = 2,   /* could not connect / connection dropped */
	DT_HTTP_ETOOBIG = 3,    /* response over max_response bytes */
	DT_HTTP_EOTHER = 4,     /* anything else (bad URL, TLS, ...) */
	DT_HTTP_ECANCELED = 5   /* given up on once *req->cancel was set */
};

struct dt_http_req {
	const char *method;     /* "GET", "POST", "PATCH" ...; NULL = GET */
	const char *url;
	const char *const *headers; /* NULL-terminated "Name: value" list */
	const char *body;       /* may be NULL */
	size_t body_len;
	long timeout_ms;        /* total per attempt; 0 = default 300 s */
	long connect_timeout_ms; /* 0 = default 10 s */
	/*
	 * NULL, or a flag (set by a signal handler) that abandons the
	 * transfer, even one waiting for the answer, within about a
	 * second of turning non-zero: libcurl's progress callback looks
	 * at it.  The result is then DT_HTTP_ECANCELED.
	 */
	const volatile sig_atomic_t *cancel;
};

struct dt_http_resp {
	int result;             /* DT_HTTP_* */
	long status;            /* HTTP status, 0 when no response */
	char *body;             /* NUL-terminated; owned, freed by _clear */
	size_t len;
	long retry_after_ms;    /* from Retry-After, -1 when absent */
	char *content_range;    /* Content-Range header or NULL */
	long ratelimit_reset_ms; /* from x-ratelimit-reset, -1 when absent */
	long elapsed_ms;        /* total time of the last attempt */
	int tries;              /* attempts made by dt_http_send() */
	char error[256];        /* human-readable cause when result != OK */
};

struct dt_http_policy {
	int max_tries;          /* attempts in all, >= 1 */
	long base_ms;           /* first backoff cap, e.g. 500 */
	long cap_ms;            /* largest single wait, e.g. 30000 */
	long max_total_ms;      /* give up when the next wait would pass it */
	size_t max_response;    /* bytes; 0 = 8 MiB */
};

/*
 * Creates a client.  what names the service in log lines ("supabase",
 * "perplexity", "telegram").  Reads DT_CA_BUNDLE.  Returns NULL after
 * logging when libcurl cannot be set up.  Free with dt_http_free().
 */
struct dt_http *dt_http_new(const char *what);
void dt_http_free(struct dt_http *h);

/*
 * Makes one attempt.  Fills *resp (clear it first with dt_http_resp_clear
 * or zero it) and returns resp->result.
 */
int dt_http_once(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp);

/*
 * Makes attempts until dt_retry_check() says to stop.  Returns the
 * last attempt's result; resp holds the last response.
 */
int dt_http_send(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp);

/*
 * The wait before retry number n (1-based): the Retry-After value when
 * the server gave one, else a uniformly random time in
 * [0, min(cap_ms, base_ms * 2^(n-1))].
 */
long dt_http_backoff_ms(const struct dt_http_policy *pol, int n,
    const struct dt_http_resp *resp);

/*
 * Parses a Retry-After value (delta seconds or HTTP-date) relative to
 * now (seconds since the epoch).  Returns milliseconds >= 0, or -1 when
 * the value is not one of the two forms.
 */
long dt_http_parse_retry_after(const char *value, long long now);

/*
 * Copies url into buf with credentials removed: every registered secret
 * (dt_log_secret), the userinfo part, the token after "/bot" in a path
 * (up to the path's last '/', so a token holding a '/' goes whole), and
 * the values of query parameters named like key/token/apikey.  Returns
 * buf.
 */
const char *dt_http_safe_url(const char *url, char *buf, size_t len);

/*
 * Makes dt_http_send() stop retrying (it returns the last result at once,
 * and cuts a backoff wait short) as soon as *flag is non-zero, e.g. from
 * a SIGTERM handler.  A request already on the wire is left to finish.
 * NULL clears it.
 */
void dt_http_set_stop_flag(volatile int *flag);

/* Frees what resp owns and zeroes it. */
void dt_http_resp_clear(struct dt_http_resp *resp);

#endif
