/*
 * retry.h: the one retry policy, as curl's retrycheck(): what an answer
 * to an HTTP call means and whether to call again, after how long.  The
 * loops that call a service (dt_http_send, dt-analyze, dt-report's
 * Telegram) obey it.
 */
#ifndef DT_RETRY_H
#define DT_RETRY_H

#include "http.h"

/* What an answer means to its caller. */
enum {
	DT_ANSWER_OK = 0,       /* a 2xx: the caller reads the body */
	DT_ANSWER_OUTAGE = 1,   /* no answer, 408, 429, 5xx: retried; never
				 * the request's fault; counts towards a
				 * circuit breaker's run of outages */
	DT_ANSWER_SETUP = 2,    /* 3xx, 401, 402, 403, 404: the key, account
				 * or URL; not retried; opens a breaker */
	DT_ANSWER_REFUSED = 3,  /* another 4xx: not retried; the request's
				 * fault, or the setup's if others get it too */
	DT_ANSWER_FAILED = 4    /* anything else (a body over the limit,
				 * TLS, an odd status): not retried */
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

/* Classifies an answer as DT_ANSWER_*, from its result and status. */
int dt_retry_answer(const struct dt_http_resp *resp);

/*
 * Decides what follows an answer (dt_retry_answer(resp), or
 * DT_ANSWER_OUTAGE for a 2xx whose body says the call failed), the
 * outages-th outage of a request first sent spent_ms ago.  An outage is
 * retried unless the tries are used up or the wait
 * (dt_http_backoff_ms) would end past max_total_ms.  Fills *r.
 */
void dt_retry_check(const struct dt_http_policy *pol,
    const struct dt_http_resp *resp, int answer, int outages,
    long long spent_ms, struct dt_retry *r);

#endif
