/*
 * http.h: HTTP over libcurl, and the one retry policy every caller obeys
 * (as curl's retrycheck()).  TLS is always verified (DT_CA_BUNDLE: an
 * extra CA bundle); requests carry "User-Agent: dt/<version> (<prog>)".
 * No log line holds a secret: URLs go through dt_http_safe_url() and
 * credential headers are masked in traces.
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
	/* NULL, or a flag that abandons the transfer within a second */
	const volatile sig_atomic_t *cancel;
};

struct dt_http_resp {
	int result;             /* DT_HTTP_* */
	long status;            /* HTTP status, 0 when no response */
	char *body;             /* NUL-terminated; owned, freed by _clear */
	size_t len;
	/* Retry-After, or a 429's x-ratelimit-reset; -1 when absent */
	long retry_after_ms;
	char *content_range;    /* Content-Range header or NULL */
	long elapsed_ms;        /* total time of the last attempt */
	int tries;              /* attempts made by dt_http_send() */
	char error[256];        /* the cause, or "HTTP 503" for a non-2xx */
};

struct dt_http_policy {
	int max_tries;          /* attempts in all, >= 1 */
	long base_ms;           /* first backoff cap, e.g. 500 */
	long cap_ms;            /* largest single wait, e.g. 30000 */
	long max_total_ms;      /* give up when the next wait would pass it */
	size_t max_response;    /* bytes; 0 = 8 MiB */
};

/* What an answer means; only an outage is retried. */
enum {
	DT_ANSWER_OK = 0,       /* a 2xx: the caller reads the body */
	DT_ANSWER_OUTAGE = 1,   /* no answer, 408, 429, 5xx: retried */
	DT_ANSWER_SETUP = 2,    /* 3xx, 401-404: the key, account or URL */
	DT_ANSWER_REFUSED = 3,  /* another 4xx */
	DT_ANSWER_FAILED = 4    /* TLS, a body over the limit, an odd status */
};

/* Why an outage is not retried (struct dt_retry's gave_up). */
enum {
	DT_RETRY_TRIES = 1,     /* the policy's max_tries are used up */
	DT_RETRY_TIME = 2       /* the wait would pass its max_total_ms */
};

struct dt_retry {
	int answer;             /* DT_ANSWER_* */
	int retry;              /* 1: wait wait_ms, then call again */
	long wait_ms;           /* the wait (also set when it gave up) */
	int gave_up;            /* 0, or DT_RETRY_* for an outage not retried */
};

/* A client logging as what ("supabase"), or NULL (logged); free NULL. */
struct dt_http *dt_http_new(const char *what);
void dt_http_free(struct dt_http *h);

/* Makes one attempt (pol NULL: defaults), fills *resp (zeroed before). */
int dt_http_once(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp);

/* Tries until dt_retry_check() stops, one warning a try; resp: the last. */
int dt_http_send(struct dt_http *h, const struct dt_http_req *req,
    const struct dt_http_policy *pol, struct dt_http_resp *resp);

/* Classifies an answer as DT_ANSWER_*, from its result and status. */
int dt_retry_answer(const struct dt_http_resp *resp);

/*
 * Fills *r for an answer (dt_retry_answer(resp), or an outage for a 2xx
 * whose body says the call failed), the outages-th of a request first
 * sent spent_ms ago: an outage is retried unless the tries are used up
 * or the wait (dt_http_backoff_ms) would end past max_total_ms.
 */
void dt_retry_check(const struct dt_http_policy *pol,
    const struct dt_http_resp *resp, int answer, int outages,
    long long spent_ms, struct dt_retry *r);

/*
 * The wait before retry n (from 1): resp's retry_after_ms, else random
 * in [0, min(cap_ms, base_ms * 2^(n-1))].
 */
long dt_http_backoff_ms(const struct dt_http_policy *pol, int n,
    const struct dt_http_resp *resp);

/*
 * Copies url into buf with its credentials masked: registered secrets,
 * userinfo, a Bot API token (/bot<token>/, up to the path's last '/')
 * and query values named like key or token.  Returns buf.
 */
const char *dt_http_safe_url(const char *url, char *buf, size_t len);

/* dt_http_send() stops retrying once *flag (NULL: none) is non-zero. */
void dt_http_set_stop_flag(volatile int *flag);

/* Frees what resp owns and zeroes it. */
void dt_http_resp_clear(struct dt_http_resp *resp);

#endif
