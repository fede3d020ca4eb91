/*
 * retry.c: the one retry policy (retry.h).
 */
#include <string.h>

#include "retry.h"

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
	if (st >= 400 && st <= 499)
		return DT_ANSWER_REFUSED;
	return DT_ANSWER_FAILED;
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
