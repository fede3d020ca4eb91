/*
 * call.c: calling the API for one record until it has an analysis or a
 * final error.  What an answer means comes from dt_retry_check()
 * (lib/http.h); whether a refusal is the record's or the run's setup is
 * decided here (on_refusal), from the answers all workers got, with the
 * help of refusal.c (docs/analyze.md, "Setup errors").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "analyze.h"
#include "clock.h"
#include "exit.h"
#include "log.h"
#include "record.h"
#include "shared.h"
#include "utf8.h"

#define RAW_KEEP 1024           /* bytes of bad output kept in an error */

int dt_az_stopping;

/* What the loop of dt_az_call() does after a step. */
enum {
	NEXT_CALL,              /* call (again) */
	END_OUT,                /* done; tries and usage are not added */
	END_FAIL,               /* done with an error; add tries and usage */
	END_DONE,               /* done; add them when a call was made */
	END_ALONE               /* a pack's answer unusable as a whole:
				 * each message is to be sent alone */
};

/* One record's calls: what dt_az_call() keeps between them. */
struct call {
	json_t *rec;            /* where an error goes */
	const char *id;
	const struct dt_api *api; /* how the answer is read */
	int pack;               /* a packed request: the answer is kept in
				 * analysis, not set on rec */
	struct dt_http_req req;
	struct dt_http_resp resp;
	struct dt_usage sum;    /* every call's usage, added up */
	json_t *analysis;       /* the last call's, a new reference */
	char *raw;              /* the last call's bad output, or NULL */
	char why[600], model[128];
	long long start;
	int tries, outages, invalid;
	int lead, warm;         /* dt_shared_warm()'s answers */
	int rc;                 /* dt_api_parse()'s, -1 for no 2xx */
	int answer;             /* DT_ANSWER_* of the last call */
};

/*
 * Returns 1 once the stop file (DT_STOP_FILE) exists.  entrypoint.sh
 * creates it on SIGTERM or at its deadline: only it gets the signal in
 * a pod, and the fan-out between must keep the records flowing so that
 * every claimed row comes out, analyzed or given back.  dt-analyze
 * creates it itself when the API refuses the run's setup.
 */
static int
stop_requested(struct run *x)
{
	if (!dt_az_stopping && x->c.stop_file != NULL &&
	    access(x->c.stop_file, F_OK) == 0) {
		dt_az_stopping = 1;
		/* A circuit opened for a setup error said why already. */
		if (x->sh == NULL ||
		    dt_shared_breaker(x->sh) == DT_BREAKER_CLOSED ||
		    dt_shared_breaker(x->sh) == DT_BREAKER_OUTAGE)
			dt_info("the run is stopping: no more API calls");
	}
	return dt_az_stopping;
}

/*
 * Sleeps ms milliseconds, returning early (1) on a signal or once the
 * stop file appears, which is looked for every 100 ms: a record waiting
 * for a retry or for the warm-up call must not hold up a stopping run.
 */
int
dt_az_nap(struct run *x, long long ms)
{
	long long end = dt_now_ms() + ms;

	while (!dt_az_signal && !stop_requested(x)) {
		long long left = end - dt_now_ms();
		struct timespec ts;

		if (left <= 0)
			return 0;
		if (x->c.stop_file != NULL && left > 100)
			left = 100;
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000L;
		nanosleep(&ts, NULL);
	}
	return 1;
}

static int
outage_kind(const struct dt_http_resp *r)
{
	if (r->result == DT_HTTP_ETIMEOUT || r->status == 408)
		return K_TIMEOUT;
	if (r->status == 429)
		return K_RATE;
	return K_UNAVAIL;
}

/* Tells the other workers how the warm-up call ended, if it was ours. */
static void
warm_done(struct run *x, struct call *k, int how)
{
	if (k->lead == DT_WARM_LEAD)
		dt_shared_warm_done(x->sh, how);
	k->lead = DT_WARM_GO;
}

/* An error answer that no retry changes: the record's or the setup's. */
static int
refused(const struct call *k)
{
	return k->rc == -1 && (k->answer == DT_ANSWER_SETUP ||
	    k->answer == DT_ANSWER_REFUSED);
}

/* Before each call: a signal, the circuit, the stop file. */
static int
may_call(struct run *x, struct call *k)
{
	int br;

	if (dt_az_signal) {
		dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "interrupted before the API answered");
		return END_OUT;
	}
	/*
	 * The breaker before the stop file: a run stopped for a setup
	 * error gives its rows back as such.
	 */
	if ((br = dt_shared_breaker(x->sh)) == DT_BREAKER_OUTAGE) {
		dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_UNAVAILABLE,
		    "circuit open after %lld consecutive outage failures; not "
		    "calling the API in this run", x->c.breaker);
		return END_DONE;
	} else if (br != DT_BREAKER_CLOSED) {
		dt_shared_breaker_why(x->sh, k->why, sizeof(k->why));
		dt_az_set_error(x, k->rec, K_CONFIG, 1, DT_EXIT_CONFIG,
		    "not called: %s", k->why);
		return END_DONE;
	}
	if (!stop_requested(x))
		return NEXT_CALL;
	if (k->tries == 0) {
		dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "the run is stopping; the API was not called");
		return END_OUT;
	}
	dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
	    "the run is stopping; no call after the %d made", k->tries);
	return END_FAIL;
}

/*
 * Waits for this worker's turn: the warm-up, the budget, a request
 * slot.  Returns 1 to call now (with *reserved taken from the budget),
 * 0 to look again (stopping, or the circuit opened meanwhile), -1 when
 * the budget is spent (the error is set).
 */
static int
take_turn(struct run *x, struct call *k, double *reserved)
{
	struct config *c = &x->c;
	long long lease = ((c->first_timeout_s > c->timeout_s ?
	    c->first_timeout_s : c->timeout_s) + 10) * 1000, wait;

	/*
	 * Only one worker makes the first call with a new schema, and each
	 * call after it while the answers look like a setup error.
	 */
	while ((k->lead = dt_shared_warm(x->sh, lease, &k->warm)) ==
	    DT_WARM_WAIT)
		if (dt_az_nap(x, 20))
			break;
	if (dt_az_signal || dt_az_stopping ||
	    dt_shared_breaker(x->sh) != DT_BREAKER_CLOSED) {
		warm_done(x, k, DT_WARM_AGAIN);
		return 0;
	}
	if (!dt_shared_budget_take(x->sh, c->budget, reserved)) {
		warm_done(x, k, DT_WARM_FAILED);
		dt_az_set_error(x, k->rec, K_BUDGET, 1, DT_EXIT_TEMPFAIL,
		    "the run's budget of %.4f USD is spent; not calling the "
		    "API", c->budget);
		return -1;
	}
	if ((wait = dt_shared_slot(x->sh)) > 0)
		dt_debug("%s: id %s: waiting %lld ms for a request slot",
		    x->where, k->id, wait);
	while (wait > 0 && !dt_az_nap(x, wait))
		wait = dt_shared_slot(x->sh);
	if (dt_az_signal || dt_az_stopping || wait > 0) {
		dt_shared_budget_settle(x->sh, c->budget, *reserved, 0);
		warm_done(x, k, DT_WARM_AGAIN);
		return 0;
	}
	return 1;
}

/*
 * Makes one call and reads its answer into k: its class (k->answer),
 * the reply (k->rc, k->analysis, k->raw, k->why) and the usage.
 * Returns 0 when a signal came first or abandoned the call: there is
 * no answer, and the loop's next look (may_call) ends the record.
 */
static int
call_once(struct run *x, struct call *k, double reserved)
{
	struct config *c = &x->c;
	struct dt_usage u;

	/*
	 * TIMEOUT_SECONDS bounds every call; only a DT_FIRST_TIMEOUT_SECONDS
	 * set on purpose gives the calls before the first answer (a new
	 * schema) longer.
	 */
	k->req.timeout_ms = (long)(c->timeout_s * 1000);
	if (!k->warm && !x->seen_success && c->first_timeout_s > c->timeout_s)
		k->req.timeout_ms = (long)(c->first_timeout_s * 1000);
	if (dt_az_signal || dt_http_once(x->http, &k->req, &c->pol,
	    &k->resp) == DT_HTTP_ECANCELED) {
		dt_shared_budget_settle(x->sh, c->budget, reserved, 0);
		warm_done(x, k, DT_WARM_AGAIN);
		return 0;
	}
	k->tries++;

	memset(&u, 0, sizeof(u));
	k->rc = -1;
	k->analysis = NULL;
	free(k->raw);
	k->raw = NULL;
	k->answer = dt_retry_answer(&k->resp);
	if (k->answer == DT_ANSWER_OK) {
		k->rc = dt_api_parse(k->api, k->resp.body, k->resp.len,
		    &k->analysis, &u, k->model, sizeof(k->model), k->why,
		    sizeof(k->why), &k->raw);
		k->sum.input_tokens += u.input_tokens;
		k->sum.output_tokens += u.output_tokens;
		k->sum.total_tokens += u.total_tokens;
		k->sum.cost_usd += u.cost_usd;
		/* status: failed, in a 2xx, is an outage. */
		if (k->rc == DT_API_FAILED)
			k->answer = DT_ANSWER_OUTAGE;
	} else if (k->resp.result == DT_HTTP_ETOOBIG) {
		k->rc = DT_API_INVALID;
		utf8_format(k->why, sizeof(k->why), "%s", k->resp.error);
	} else if (k->resp.result != DT_HTTP_OK)
		/* Any call that got no answer (TLS, say) is an outage here. */
		k->answer = DT_ANSWER_OUTAGE;
	dt_shared_budget_settle(x->sh, c->budget, reserved, u.cost_usd);
	/* Any answer from the model ends a streak of refusals. */
	if (k->rc != -1)
		dt_shared_setup_ok(x->sh, k->rc == DT_API_OK);
	/* A refusal keeps the lead until it is told (on_refusal). */
	if (!refused(k))
		warm_done(x, k, k->rc == DT_API_OK ? DT_WARM_OK :
		    DT_WARM_FAILED);
	return 1;
}

static int
on_analysis(struct run *x, struct call *k)
{
	json_t *rec = k->rec;

	dt_shared_breaker_note(x->sh, 0, x->c.breaker);
	x->seen_success = 1;
	if (k->pack)
		return END_OUT;
	json_object_set_new(rec, "analysis", k->analysis);
	k->analysis = NULL;
	json_object_set_new(rec, "model", json_string(k->model));
	json_object_set_new(rec, "usage", dt_az_usage_json(&k->sum));
	json_object_set_new(rec, "latency_ms",
	    json_integer(k->resp.elapsed_ms));
	json_object_set_new(rec, "tries", json_integer(k->tries));
	json_object_set_new(rec, "prompt_version", json_string(x->version));
	x->n.analyzed++;
	return END_OUT;
}

/* Invalid output is asked for once more at once. */
static int
on_invalid(struct run *x, struct call *k)
{
	json_t *e;
	size_t n;

	dt_shared_breaker_note(x->sh, 0, x->c.breaker);
	if (k->pack) {
		dt_warn("%s: id %s: %s; sending each message alone", x->where,
		    k->id, k->why);
		return END_ALONE;
	}
	if (++k->invalid < 2) {
		dt_warn("%s: id %s: %s; asking once more", x->where, k->id,
		    k->why);
		return NEXT_CALL;
	}
	dt_az_set_error(x, k->rec, K_INVALID, 1, DT_EXIT_PARTIAL,
	    "%s (after %d tries)", k->why, k->tries);
	if (k->raw != NULL) {
		n = utf8_cut(k->raw, strlen(k->raw), RAW_KEEP);
		e = json_object_get(k->rec, "error");
		json_object_set_new(e, "output", json_stringn(k->raw, n));
		if (n < strlen(k->raw))
			json_object_set_new(e, "output_cut", json_true());
	}
	return END_FAIL;
}

/*
 * A refused pack: each of its messages is sent alone (a warning once
 * the setup is proven good: a message was refused).
 */
static int
pack_refused(struct run *x, struct call *k, const char *answer)
{
	utf8_format(k->why, sizeof(k->why), "%s", answer);
	dt_log(dt_shared_setup_proven(x->sh) ? DT_LOG_WARN : DT_LOG_DEBUG,
	    "%s: id %s: %s; sending each message alone", x->where, k->id,
	    answer);
	return END_ALONE;
}

/*
 * A refusal: the record's own once the same setup got an analysis for
 * another record; else it counts towards a setup error (docs/analyze.md,
 * "Setup errors") and the row goes back without using an attempt.
 */
static int
on_refusal(struct run *x, struct call *k)
{
	const struct dt_http_resp *r = &k->resp;
	char apimsg[300], sig[64], answer[400], line[1024];
	int streak = 0, opened;

	dt_shared_breaker_note(x->sh, 0, x->c.breaker);
	dt_api_error_message(r->body, r->len, apimsg, sizeof(apimsg));
	dt_api_error_type(r->body, r->len, sig, sizeof(sig));
	dt_az_setup_line(x, r->status, sig, apimsg, line, sizeof(line));
	utf8_format(answer, sizeof(answer), "HTTP %ld%s%s", r->status,
	    apimsg[0] ? ": " : "", apimsg);
	if (k->answer == DT_ANSWER_REFUSED && dt_shared_setup_proven(x->sh)) {
		warm_done(x, k, DT_WARM_FAILED);
		/* One message of a pack may be what was refused. */
		if (k->pack)
			return pack_refused(x, k, answer);
		dt_warn("%s: id %s: %s; the API answered other records of this "
		    "run", x->where, k->id, answer);
		dt_az_set_error(x, k->rec, K_4XX, 1, DT_EXIT_PARTIAL, "%s",
		    answer);
		return END_FAIL;
	}
	if (k->answer == DT_ANSWER_SETUP)
		opened = dt_shared_breaker_trip(x->sh, r->status == 401 ||
		    r->status == 403 ? DT_BREAKER_AUTH : DT_BREAKER_SETUP,
		    line);
	else {
		opened = dt_shared_setup_note(x->sh, r->status, sig,
		    DT_AZ_SETUP_THRESHOLD, line, &streak);
		/*
		 * A pack refused may hold the one message at fault: its
		 * messages go alone, and their answers go on with the streak.
		 */
		if (!opened && k->pack) {
			warm_done(x, k, DT_WARM_AGAIN);
			return pack_refused(x, k, answer);
		}
		/*
		 * Records refused alike so far may each be at fault (three
		 * spam messages first in the queue): the last call of the
		 * streak asks about a plain text instead.
		 */
		if (!opened && streak == DT_AZ_SETUP_THRESHOLD - 1)
			opened = dt_az_probe_setup(x, &k->req, line);
	}
	warm_done(x, k, dt_shared_setup_proven(x->sh) ? DT_WARM_OK :
	    DT_WARM_AGAIN);
	dt_az_set_error(x, k->rec, K_CONFIG, 1, dt_shared_breaker(x->sh) ==
	    DT_BREAKER_CLOSED ? DT_EXIT_PARTIAL : DT_EXIT_CONFIG, "%s", answer);
	if (opened) {
		dt_error("%s; no more calls in this run, every row is given "
		    "back", line);
		dt_az_stop_the_run(x->c.stop_file);
	} else {
		dt_debug("%s: id %s: %s (%d in a row); the row is given back",
		    x->where, k->id, answer, streak);
		utf8_format(x->last_refused, sizeof(x->last_refused),
		    "id %s: %s", k->id, answer);
	}
	return END_FAIL;
}

/* An outage: retried as dt_retry_check() says, under the breaker. */
static int
on_outage(struct run *x, struct call *k)
{
	struct config *c = &x->c;
	struct dt_retry r;
	char apimsg[300];
	int kind = k->rc == DT_API_FAILED ? K_UNAVAIL : outage_kind(&k->resp);

	if (k->rc != DT_API_FAILED && k->resp.result == DT_HTTP_OK) {
		dt_api_error_message(k->resp.body, k->resp.len, apimsg,
		    sizeof(apimsg));
		utf8_format(k->why, sizeof(k->why), "HTTP %ld%s%s",
		    k->resp.status, apimsg[0] ? ": " : "", apimsg);
	} else if (k->rc != DT_API_FAILED)
		utf8_format(k->why, sizeof(k->why), "%s", k->resp.error);
	k->outages++;
	if (dt_shared_breaker_note(x->sh, 1, c->breaker) != DT_BREAKER_CLOSED) {
		dt_warn("%s: id %s: %s; circuit open", x->where, k->id, k->why);
		return NEXT_CALL;
	}
	dt_retry_check(&c->pol, &k->resp, DT_ANSWER_OUTAGE, k->outages,
	    dt_now_ms() - k->start, &r);
	if (!r.retry) {
		dt_warn("%s: id %s: %s; giving up after %d tries", x->where,
		    k->id, k->why, k->tries);
		dt_az_set_error(x, k->rec, kind, 1, DT_EXIT_PARTIAL,
		    "%s (after %d tries)", k->why, k->tries);
		return END_FAIL;
	}
	dt_warn("%s: id %s: %s; retrying in %.1f s (%d of %d tries left)",
	    x->where, k->id, k->why, r.wait_ms / 1000.0,
	    c->pol.max_tries - k->outages, c->pol.max_tries);
	/* After a 429 every worker of the run holds back. */
	if (k->resp.status == 429)
		dt_shared_hold(x->sh, r.wait_ms);
	else
		dt_az_nap(x, r.wait_ms);
	return NEXT_CALL;
}

/* What follows an answer. */
static int
answered(struct run *x, struct call *k)
{
	if (k->rc == DT_API_OK)
		return on_analysis(x, k);
	if (k->rc == DT_API_INVALID)
		return on_invalid(x, k);
	if (refused(k))
		return on_refusal(x, k);
	if (k->answer == DT_ANSWER_OUTAGE)
		return on_outage(x, k);
	/* A status no HTTP server should send. */
	utf8_format(k->why, sizeof(k->why), "unexpected HTTP %ld",
	    k->resp.status);
	dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_PARTIAL,
	    "%s (after %d tries)", k->why, k->tries);
	return END_FAIL;
}

/*
 * Calls until the request in k has an answer or a final error.  Returns
 * how it ended (END_*); the usage of every call is in k->sum.
 */
static int
call_loop(struct run *x, struct call *k)
{
	double reserved;
	int end, turn;

	k->start = dt_now_ms();
	k->req.method = "POST";
	k->req.url = x->url;
	k->req.headers = x->headers;
	k->req.connect_timeout_ms = 10000;
	k->req.cancel = &dt_az_signal;
	for (;;) {
		if ((end = may_call(x, k)) != NEXT_CALL)
			break;
		if ((turn = take_turn(x, k, &reserved)) < 0) {
			end = END_OUT;
			break;
		}
		if (turn == 0 || !call_once(x, k, reserved))
			continue;
		if ((end = answered(x, k)) != NEXT_CALL)
			break;
	}
	if (end == END_FAIL || (end == END_DONE && k->tries > 0)) {
		json_object_set_new(k->rec, "tries", json_integer(k->tries));
		if (k->sum.total_tokens > 0 || k->sum.cost_usd > 0)
			json_object_set_new(k->rec, "usage",
			    dt_az_usage_json(&k->sum));
	}
	x->n.tokens += k->sum.total_tokens;
	x->n.cost += k->sum.cost_usd;
	return end;
}

void
dt_az_call(struct run *x, json_t *rec, const char *id, const char *text,
    size_t len)
{
	struct call k;
	char *input, *payload = NULL;
	size_t ilen, plen;

	memset(&k, 0, sizeof(k));
	k.rec = rec;
	k.id = id;
	k.api = &x->api;
	if ((input = dt_api_wrap(text, len, &ilen)) == NULL ||
	    (payload = dt_api_body(&x->api, input, ilen, &plen)) == NULL) {
		dt_error("out of memory");
		dt_az_set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "out of memory");
		goto out;
	}
	k.req.body = payload;
	k.req.body_len = plen;
	(void)call_loop(x, &k);
out:
	dt_http_resp_clear(&k.resp);
	json_decref(k.analysis);
	free(k.raw);
	free(payload);
	free(input);
}

int
dt_az_send(struct run *x, const struct dt_api *api, const char *body,
    size_t len, json_t *rec, const char *id, struct dt_az_sent *out)
{
	struct call k;
	int end;

	memset(&k, 0, sizeof(k));
	memset(out, 0, sizeof(*out));
	k.rec = rec;
	k.id = id;
	k.api = api;
	k.pack = 1;
	k.req.body = body;
	k.req.body_len = len;
	end = call_loop(x, &k);
	out->sum = k.sum;
	out->tries = k.tries;
	out->latency_ms = k.resp.elapsed_ms;
	utf8_format(out->model, sizeof(out->model), "%s", k.model);
	utf8_format(out->why, sizeof(out->why), "%s", k.why);
	if (end == END_OUT && k.rc == DT_API_OK && k.analysis != NULL) {
		out->answer = k.analysis;
		k.analysis = NULL;
	}
	dt_http_resp_clear(&k.resp);
	json_decref(k.analysis);
	free(k.raw);
	return end == END_ALONE ? DT_AZ_ALONE : out->answer != NULL ?
	    DT_AZ_ANSWERED : DT_AZ_ERROR;
}
