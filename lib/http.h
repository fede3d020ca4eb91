/*
 * http.h: HTTP requests over libcurl, with the retry policy every stage
 * shares (retry.h).
 *
 * TLS peer and host verification are always on; DT_CA_BUNDLE names an
 * extra CA bundle.  Requests carry "User-Agent: dt/<version> (<prog>)".
 * Timeouts, connection errors, 408, 429 and 5xx are retried with
 * exponential backoff and full jitter, honouring Retry-After, within a
 * total time; each retry logs one warning: what failed, the wait and the
 * tries left.  No log line holds a secret: URLs go through
 * dt_http_safe_url(), credential headers are masked in traces, and
 * every line is redacted (log.h).
 */
#ifndef DT_HTTP_H
#define DT_HTTP_H

#include <signal.h>
#include <stddef.h>

struct dt_http;

/* How a request ended. */
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
	 * transfer within about a second of turning non-zero, with
	 * DT_HTTP_ECANCELED.
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
 * Returns a client whose log lines name the service what ("supabase"),
 * or NULL after logging.  Reads DT_CA_BUNDLE.  Free with dt_http_free(),
 * which accepts NULL.
 */
struct dt_http *dt_http_new(const char *what);
void dt_http_free(struct dt_http *h);

/*
 * Makes one attempt (pol NULL: the defaults).  Fills *resp (zeroed or
 * cleared before) and returns resp->result.
 */
int dt_http_once(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp);

/*
 * Makes attempts until dt_retry_check() says to stop.  Returns the last
 * attempt's result; resp holds the last response.
 */
int dt_http_send(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp);

/*
 * The wait before retry number n (from 1): the server's Retry-After
 * (or a 429's x-ratelimit-reset), else uniformly random in
 * [0, min(cap_ms, base_ms * 2^(n-1))].
 */
long dt_http_backoff_ms(const struct dt_http_policy *pol, int n,
    const struct dt_http_resp *resp);

/*
 * Parses a Retry-After value (delta seconds or HTTP-date) relative to
 * now (seconds since the epoch).  Returns milliseconds >= 0, at most a
 * day, or -1 when it is neither form.
 */
long dt_http_parse_retry_after(const char *value, long long now);

/*
 * Copies url into buf with its credentials masked: every registered
 * secret, the userinfo, a Bot API token ("/bot<token>/": up to the
 * path's last '/') and the values of query parameters named like key,
 * token or apikey.  Returns buf.
 */
const char *dt_http_safe_url(const char *url, char *buf, size_t len);

/*
 * Makes dt_http_send() stop retrying (and cut a wait short) once *flag
 * is non-zero, e.g. from a SIGTERM handler; a request on the wire is
 * left to finish.  NULL clears it.
 */
void dt_http_set_stop_flag(volatile int *flag);

/* Frees what resp owns and zeroes it. */
void dt_http_resp_clear(struct dt_http_resp *resp);

#endif
