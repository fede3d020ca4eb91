/*
 * call.c: calling the API for one request until it has an answer or a
 * final error.  What an answer means comes from lib/http.h; whether a
 * refusal is the record's or the run's setup is decided here from the
 * answers all workers got (docs/analyze.md, "Setup errors").
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "analyze.h"
#include "exit.h"
#include "log.h"
#include "shared.h"
#include "utf8.h"

#define RAW_KEEP 1024           /* bytes of bad output kept in an error */

/* Refusals alike for this many calls in a row, the last with a test text. */
#define SETUP_THRESHOLD 3

int dt_az_stopping;

/* What the loop of call_loop() does after a step. */
enum {
	NEXT_CALL,              /* call (again) */
	END_OUT,                /* done; tries and usage are not added */
	END_FAIL,               /* done with an error; add tries and usage */
	END_DONE,               /* done; add them when a call was made */
	END_ALONE               /* a pack's answer is unusable as a whole */
};

/* One request's calls. */
struct call {
	json_t *rec;            /* where an error goes */
	const char *id;
	const struct dt_api *api;
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
 * Whether the stop file (DT_STOP_FILE) exists: dt-entrypoint creates it
 * on SIGTERM or at its deadline, dt-analyze when the API refuses the
 * run's setup.
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

/* Sleeps ms; returns 1 early on a signal or the stop file, else 0. */
static int
nap(struct run *x, long long ms)
{
	long long end = dt_now_ms() + ms, left;

	/* A slice at a time: dt_sleep_ms() sleeps through a signal. */
	while (!dt_az_signal && !stop_requested(x)) {
		if ((left = end - dt_now_ms()) <= 0)
			return 0;
		dt_sleep_ms(left > 100 ? 100 : (long)left);
	}
	return 1;
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
	int br = dt_shared_breaker(x->sh);

	if (dt_az_signal) {
		dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "interrupted before the API answered");
		return END_OUT;
	}
	/* The breaker first: a run stopped for its setup says so. */
	if (br == DT_BREAKER_OUTAGE) {
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
 * Reserves budget and waits for a request slot.  Returns 1 to call now
 * (*reserved taken), 0 when the run is stopping, -1 when the budget is
 * spent.
 */
static int
budget_and_slot(struct run *x, const char *id, double *reserved)
{
	long long wait;

	if (!dt_shared_budget_take(x->sh, x->c.budget, reserved))
		return -1;
	if ((wait = dt_shared_slot(x->sh)) > 0)
		dt_debug("%s: id %s: waiting %lld ms for a request slot",
		    x->where, id, wait);
	while (wait > 0 && !nap(x, wait))
		wait = dt_shared_slot(x->sh);
	if (dt_az_signal || dt_az_stopping || wait > 0) {
		dt_shared_budget_settle(x->sh, x->c.budget, *reserved, 0);
		return 0;
	}
	return 1;
}

/*
 * Waits for this worker's turn: the warm-up (one worker makes the first
 * call, and each call while the answers look like a setup error), the
 * budget, a request slot.  Returns 1 to call now, 0 to look again, -1
 * when the budget is spent (the error is set).
 */
static int
take_turn(struct run *x, struct call *k, double *reserved)
{
	struct config *c = &x->c;
	long long lease = ((c->first_timeout_s > c->timeout_s ?
	    c->first_timeout_s : c->timeout_s) + 10) * 1000;
	int turn;

	while ((k->lead = dt_shared_warm(x->sh, lease, &k->warm)) ==
	    DT_WARM_WAIT)
		if (nap(x, 20))
			break;
	if (dt_az_signal || dt_az_stopping ||
	    dt_shared_breaker(x->sh) != DT_BREAKER_CLOSED)
		turn = 0;
	else if ((turn = budget_and_slot(x, k->id, reserved)) < 0) {
		warm_done(x, k, DT_WARM_FAILED);
		dt_az_set_error(x, k->rec, K_BUDGET, 1, DT_EXIT_TEMPFAIL,
		    "the run's budget of %.4f USD is spent; not calling the "
		    "API", c->budget);
	}
	if (turn == 0)
		warm_done(x, k, DT_WARM_AGAIN);
	return turn;
}

/*
 * Makes one call and reads its answer into k.  Returns 0 when a signal
 * came first or abandoned the call: there is no answer.
 */
static int
call_once(struct run *x, struct call *k, double reserved)
{
	struct config *c = &x->c;
	struct dt_usage u = {0};

	/* A DT_FIRST_TIMEOUT_SECONDS set on purpose holds until an answer. */
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
		if (k->rc == DT_API_FAILED)
			k->answer = DT_ANSWER_OUTAGE;
	} else if (k->resp.result == DT_HTTP_ETOOBIG) {
		k->rc = DT_API_INVALID;
		utf8_format(k->why, sizeof(k->why), "%s", k->resp.error);
	} else if (k->resp.result != DT_HTTP_OK)
		k->answer = DT_ANSWER_OUTAGE;   /* TLS, say */
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

/* Invalid output is asked for once more at once (a pack's: alone). */
static int
on_invalid(struct run *x, struct call *k)
{
	json_t *e;
	size_t n;

	if (k->api->packed || ++k->invalid < 2) {
		dt_warn("%s: id %s: %s; %s", x->where, k->id, k->why,
		    k->api->packed ? "sending each message alone" :
		    "asking once more");
		return k->api->packed ? END_ALONE : NEXT_CALL;
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
 * The line that says what to fix when the API refuses the run's setup:
 * the variable, the API's own answer, and what happens to the rows.
 */
static void
setup_line(struct run *x, long status, const char *sig, const char *apimsg,
    const char *answer, char *buf, size_t len)
{
	if (status == 401 || status == 403)
		utf8_format(buf, len, "PERPLEXITY_API_KEY: the API refused the "
		    "key (%s); check the key", answer);
	else if (status == 402)
		utf8_format(buf, len, "PERPLEXITY_API_KEY: the API account "
		    "cannot pay for calls (%s); add credits to it", answer);
	else if (status < 400)
		utf8_format(buf, len, "PERPLEXITY_BASE_URL: %s answers with a "
		    "redirect (%s); set PERPLEXITY_BASE_URL to where it points "
		    "(https://api.perplexity.ai)", x->url, answer);
	else if (status == 404)
		utf8_format(buf, len, "PERPLEXITY_BASE_URL: %s does not exist "
		    "(%s); check PERPLEXITY_BASE_URL (https://api.perplexity.ai) "
		    "and DT_API", x->url, answer);
	else if (strcasestr(apimsg, "model") != NULL ||
	    strcasestr(sig, "model") != NULL)
		utf8_format(buf, len, "PERPLEXITY_MODEL: the API refused model "
		    "'%s' (%s); fix the model name", x->c.model, answer);
	else
		utf8_format(buf, len, "the API refused records and a plain "
		    "test text alike (%s); check PERPLEXITY_MODEL, DT_API, "
		    "DT_SCHEMA_FILE and PERPLEXITY_BASE_URL", answer);
}

/*
 * The last call of a streak of refusals: the same request with a plain
 * text of no user's.  Refused alike, the setup is at fault and the
 * circuit opens (returns 1); analyzed, the refusals were the records'.
 * Its cost counts in the stage's totals, not in any record's.
 */
static int
probe_setup(struct run *x, const struct call *like, const char *line)
{
	static const char text[] = "Thanks for the update, see you tomorrow.";
	struct call p = {.api = &x->api, .req = like->req, .id = like->id};
	char *body, sig[64];
	size_t blen;
	double reserved;
	int opened = 0, streak;

	if ((body = dt_api_body(&x->api, text, sizeof(text) - 1, &blen)) !=
	    NULL && budget_and_slot(x, like->id, &reserved) > 0) {
		p.req.body = body;
		p.req.body_len = blen;
		if (call_once(x, &p, reserved) && refused(&p)) {
			dt_api_error_type(p.resp.body, p.resp.len, sig,
			    sizeof(sig));
			opened = dt_shared_setup_note(x->sh, p.resp.status, sig,
			    SETUP_THRESHOLD, line, &streak);
		}
		x->n.tokens += p.sum.total_tokens;
		x->n.cost += p.sum.cost_usd;
		dt_debug("the test call with a plain text: %s", p.rc ==
		    DT_API_OK ? "analyzed: the setup is good" : opened ?
		    "refused alike: the setup is at fault" : "no verdict");
	}
	dt_http_resp_clear(&p.resp);
	json_decref(p.analysis);
	free(p.raw);
	free(body);
	return opened;
}

/* Opens the circuit for a setup error; returns 1 when this call did. */
static int
open_for_setup(struct run *x, struct call *k, const char *line,
    int *streak)
{
	const struct dt_http_resp *r = &k->resp;
	char sig[64];
	int opened;

	if (k->answer == DT_ANSWER_SETUP)
		return dt_shared_breaker_trip(x->sh, r->status == 401 ||
		    r->status == 403 ? DT_BREAKER_AUTH : DT_BREAKER_SETUP,
		    line);
	dt_api_error_type(r->body, r->len, sig, sizeof(sig));
	opened = dt_shared_setup_note(x->sh, r->status, sig, SETUP_THRESHOLD,
	    line, streak);
	/* A refused pack may hold the one message at fault. */
	if (!opened && k->api->packed)
		return -1;
	/* The last call of a streak asks about a plain text instead. */
	if (!opened && *streak == SETUP_THRESHOLD - 1)
		opened = probe_setup(x, k, line);
	return opened;
}

/* Creates the stop file (NULL: none): the run claims no more. */
static void
stop_the_run(const char *stop_file)
{
	int fd;

	if (stop_file != NULL && (fd = open(stop_file, O_WRONLY | O_CREAT |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) >= 0)
		close(fd);
}

/*
 * A refusal: the record's own once the same setup got an analysis for
 * another record; else it counts towards a setup error and the row goes
 * back without using an attempt.  A pack's messages are sent alone.
 */
static int
on_refusal(struct run *x, struct call *k)
{
	const struct dt_http_resp *r = &k->resp;
	char apimsg[300], sig[64], answer[400], line[1024];
	int streak = 0, opened, proven = dt_shared_setup_proven(x->sh);

	dt_api_error_message(r->body, r->len, apimsg, sizeof(apimsg));
	dt_api_error_type(r->body, r->len, sig, sizeof(sig));
	utf8_format(answer, sizeof(answer), "HTTP %ld%s%s", r->status,
	    apimsg[0] ? ": " : "", apimsg);
	setup_line(x, r->status, sig, apimsg, answer, line, sizeof(line));
	if (k->answer == DT_ANSWER_REFUSED && proven && !k->api->packed) {
		warm_done(x, k, DT_WARM_FAILED);
		dt_warn("%s: id %s: %s; the API answered other records of this "
		    "run", x->where, k->id, answer);
		dt_az_set_error(x, k->rec, K_4XX, 1, DT_EXIT_PARTIAL, "%s",
		    answer);
		return END_FAIL;
	}
	opened = k->answer == DT_ANSWER_REFUSED && proven ? -1 :
	    open_for_setup(x, k, line, &streak);
	if (opened < 0) {
		warm_done(x, k, proven ? DT_WARM_FAILED : DT_WARM_AGAIN);
		utf8_format(k->why, sizeof(k->why), "%s", answer);
		dt_log(dt_shared_setup_proven(x->sh) ? DT_LOG_WARN :
		    DT_LOG_DEBUG, "%s: id %s: %s; sending each message alone",
		    x->where, k->id, answer);
		return END_ALONE;
	}
	warm_done(x, k, dt_shared_setup_proven(x->sh) ? DT_WARM_OK :
	    DT_WARM_AGAIN);
	dt_az_set_error(x, k->rec, K_CONFIG, 1, dt_shared_breaker(x->sh) ==
	    DT_BREAKER_CLOSED ? DT_EXIT_PARTIAL : DT_EXIT_CONFIG, "%s", answer);
	if (opened) {
		dt_error("%s; no more calls in this run, every row is given "
		    "back", line);
		stop_the_run(x->c.stop_file);
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
	const struct dt_http_resp *r = &k->resp;
	struct dt_retry rt;
	char apimsg[300];
	int kind = K_UNAVAIL;

	if (k->rc != DT_API_FAILED && r->result == DT_HTTP_OK) {
		dt_api_error_message(r->body, r->len, apimsg, sizeof(apimsg));
		utf8_format(k->why, sizeof(k->why), "HTTP %ld%s%s", r->status,
		    apimsg[0] ? ": " : "", apimsg);
	} else if (k->rc != DT_API_FAILED)
		utf8_format(k->why, sizeof(k->why), "%s", r->error);
	if (k->rc != DT_API_FAILED && (r->result == DT_HTTP_ETIMEOUT ||
	    r->status == 408))
		kind = K_TIMEOUT;
	else if (k->rc != DT_API_FAILED && r->status == 429)
		kind = K_RATE;
	k->outages++;
	if (dt_shared_breaker_note(x->sh, 1, c->breaker) != DT_BREAKER_CLOSED) {
		dt_warn("%s: id %s: %s; circuit open", x->where, k->id, k->why);
		return NEXT_CALL;
	}
	dt_retry_check(&c->pol, r, DT_ANSWER_OUTAGE, k->outages,
	    dt_now_ms() - k->start, &rt);
	if (!rt.retry) {
		dt_warn("%s: id %s: %s; giving up after %d tries", x->where,
		    k->id, k->why, k->tries);
		dt_az_set_error(x, k->rec, kind, 1, DT_EXIT_PARTIAL,
		    "%s (after %d tries)", k->why, k->tries);
		return END_FAIL;
	}
	dt_warn("%s: id %s: %s; retrying in %.1f s (%d of %d tries left)",
	    x->where, k->id, k->why, rt.wait_ms / 1000.0,
	    c->pol.max_tries - k->outages, c->pol.max_tries);
	/* After a 429 every worker of the run holds back. */
	if (r->status == 429)
		dt_shared_hold(x->sh, rt.wait_ms);
	else
		nap(x, rt.wait_ms);
	return NEXT_CALL;
}

/* What follows an answer. */
static int
answered(struct run *x, struct call *k)
{
	/* Any answer but an outage closes a run of outages. */
	if (k->rc == DT_API_OK || k->rc == DT_API_INVALID || refused(k))
		dt_shared_breaker_note(x->sh, 0, x->c.breaker);
	if (k->rc == DT_API_OK) {
		x->seen_success = 1;
		return END_OUT;
	}
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

/* Calls until k's request has an answer or a final error (END_*). */
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

int
dt_az_send(struct run *x, const struct dt_api *api, const char *body,
    size_t len, json_t *rec, const char *id, struct dt_az_sent *out)
{
	struct call k = {.rec = rec, .id = id, .api = api};
	int end;

	memset(out, 0, sizeof(*out));
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

void
dt_az_call(struct run *x, json_t *rec, const char *id, const char *text,
    size_t len)
{
	struct dt_az_sent o;
	size_t blen;
	char *body = dt_api_body(&x->api, text, len, &blen);

	if (body == NULL) {
		dt_error("out of memory");
		dt_az_set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "out of memory");
	} else if (dt_az_send(x, &x->api, body, blen, rec, id, &o) ==
	    DT_AZ_ANSWERED)
		dt_az_set_analysis(x, rec, o.answer, &o, &o.sum, 0);
	free(body);
}
