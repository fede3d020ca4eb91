/*
 * call.c: calling the API for one request until it has an answer or a
 * final error, as lib/http.h classifies answers, under the run's shared
 * state (docs/analyze.md, "Setup errors" and "Shared between ...").
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

#define SETUP_THRESHOLD 3       /* refusals alike that open the circuit */

int dt_az_stopping;

enum { NEXT_CALL, END, END_ALONE };  /* what follows a step */

/* One request's calls. */
struct call {
	json_t *rec;            /* where the outcome goes */
	const char *id;
	const struct dt_api *api;
	struct dt_http_req req;
	struct dt_http_resp resp;
	json_t *reply;          /* the last 2xx's, from dt_api_parse() */
	json_t *usage;          /* every call's, added up */
	long long start;
	int tries, outages, invalid;
	int lead;               /* this worker makes the warm-up call */
	int proven;             /* some call of the run got an analysis */
	int rc;                 /* dt_api_parse()'s, -1 for no 2xx */
	int answer;             /* DT_ANSWER_* of the last call */
	char why[600];
};

/* Whether DT_STOP_FILE exists: no more calls in this run. */
static int
stop_requested(struct run *x)
{
	int br;

	if (!dt_az_stopping && x->c.stop_file != NULL &&
	    access(x->c.stop_file, F_OK) == 0) {
		dt_az_stopping = 1;
		/* A circuit opened for a setup error said why already. */
		br = dt_shared_breaker(x->sh);
		if (br == DT_BREAKER_CLOSED || br == DT_BREAKER_OUTAGE)
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

/* Opens the locked breaker; returns 1 when this call did. */
static int
trip(struct dt_state *st, int reason, const char *why)
{
	if (st->breaker != DT_BREAKER_CLOSED)
		return 0;
	utf8_format(st->why, sizeof(st->why), "%s", why);
	st->breaker = reason;
	return 1;
}

/* Ends our warm-up call; unless proven, again keeps the next alone. */
static void
warm_done(struct run *x, struct call *k, int again)
{
	struct dt_state *st;

	if (k->lead) {
		st = dt_shared_lock(x->sh);
		st->warm_pid = 0;
		st->warm_tried |= !again || st->proven;
		dt_shared_unlock(x->sh);
	}
	k->lead = 0;
}

/* Releases a budget reservation and adds what the call cost. */
static void
settle(struct run *x, double reserved, double cost)
{
	struct dt_state *st = dt_shared_lock(x->sh);

	st->reserved = st->reserved > reserved ? st->reserved - reserved : 0;
	st->spent += cost;
	if (cost > st->max_cost)
		st->max_cost = cost;
	dt_shared_unlock(x->sh);
}

/* An error answer that no retry changes: the record's or the setup's. */
static int
refused(const struct call *k)
{
	return k->answer == DT_ANSWER_SETUP || k->answer == DT_ANSWER_REFUSED;
}

/*
 * Reserves the dearest call seen so far from the budget, if there is
 * one, and waits for a request slot.  Returns 1 to call now (*reserved
 * taken), 0 when the run is stopping, -1 when the budget is spent.
 */
static int
budget_and_slot(struct run *x, const char *id, double *reserved)
{
	struct dt_state *st = dt_shared_lock(x->sh);
	double b = x->c.budget, used = st->spent + st->reserved;
	int ok = b <= 0 || (used < b && used + st->max_cost <= b);
	long long wait;

	*reserved = ok && b > 0 ? st->max_cost : 0;
	st->reserved += *reserved;
	dt_shared_unlock(x->sh);
	if (!ok)
		return -1;
	if ((wait = dt_shared_slot(x->sh)) > 0)
		dt_debug("%s: id %s: waiting %lld ms for a request slot",
		    x->where, id, wait);
	while (wait > 0 && !nap(x, wait))
		wait = dt_shared_slot(x->sh);
	if (dt_az_signal || dt_az_stopping || wait > 0) {
		settle(x, *reserved, 0);
		return 0;
	}
	return 1;
}

/*
 * Waits for this worker's turn: the warm-up (one worker at a time makes
 * the first call, and each while the answers look like a setup error,
 * under a lease should it die), the budget, a request slot.  Returns 1
 * to call now, 0 to look again, -1 with an error set on the record (a
 * signal, the circuit, the stop file, the budget).
 */
static int
take_turn(struct run *x, struct call *k, double *reserved)
{
	struct config *c = &x->c;
	long long lease = ((c->first_timeout_s > c->timeout_s ?
	    c->first_timeout_s : c->timeout_s) + 10) * 1000, now;
	struct dt_state *st;
	char why[sizeof(st->why)];
	int wait, br, turn = -1;

	do {
		st = dt_shared_lock(x->sh);
		now = dt_now_ms();
		k->proven = st->proven;
		wait = !st->warm_tried && st->warm_pid != 0 &&
		    st->warm_until > now && (kill(st->warm_pid, 0) == 0 ||
		    errno != ESRCH);
		if ((k->lead = !st->warm_tried && !wait)) {
			st->warm_pid = (int32_t)getpid();
			st->warm_until = now + lease;
		}
		dt_shared_unlock(x->sh);
	} while (wait && !nap(x, 20));
	/* Read after the wait: the circuit may have opened meanwhile. */
	st = dt_shared_lock(x->sh);
	br = st->breaker;
	memcpy(why, st->why, sizeof(why));
	dt_shared_unlock(x->sh);
	if (dt_az_signal)
		dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "interrupted before the API answered");
	else if (br == DT_BREAKER_OUTAGE)
		dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_UNAVAILABLE,
		    "circuit open after %lld consecutive outage failures; not "
		    "calling the API in this run", c->breaker);
	else if (br != DT_BREAKER_CLOSED)
		dt_az_set_error(x, k->rec, K_CONFIG, 1, DT_EXIT_CONFIG,
		    "not called: %s", why);
	else if (stop_requested(x) && k->tries == 0)
		dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "the run is stopping; the API was not called");
	else if (dt_az_stopping)
		dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "the run is stopping; no call after the %d made", k->tries);
	else if ((turn = budget_and_slot(x, k->id, reserved)) < 0) {
		warm_done(x, k, 0);
		dt_az_set_error(x, k->rec, K_BUDGET, 1, DT_EXIT_TEMPFAIL,
		    "the run's budget of %.4f USD is spent; not calling the "
		    "API", c->budget);
	}
	if (turn != 1)
		warm_done(x, k, 1);
	return turn;
}

/* Makes one call into k.  Returns 0 when a signal left no answer. */
static int
call_once(struct run *x, struct call *k, double reserved)
{
	struct config *c = &x->c;
	struct dt_state *st;
	const char *why;
	json_t *u = NULL;

	/* A DT_FIRST_TIMEOUT_SECONDS set on purpose holds until an answer. */
	k->req.timeout_ms = (long)((!k->proven && c->first_timeout_s >
	    c->timeout_s ? c->first_timeout_s : c->timeout_s) * 1000);
	if (dt_az_signal || dt_http_once(x->http, &k->req, &c->pol,
	    &k->resp) == DT_HTTP_ECANCELED) {
		settle(x, reserved, 0);
		warm_done(x, k, 1);
		return 0;
	}
	k->tries++;
	k->rc = -1;
	json_decref(k->reply);
	k->reply = NULL;
	k->answer = dt_retry_answer(&k->resp);
	if (k->answer == DT_ANSWER_OK) {
		k->rc = dt_api_parse(k->api, k->resp.body, k->resp.len,
		    &k->reply);
		u = json_object_get(k->reply, "usage");
		dt_api_add_usage(k->usage, u);
		why = json_string_value(json_object_get(k->reply, "why"));
		utf8_format(k->why, sizeof(k->why), "%s", k->reply == NULL ?
		    "out of memory" : why != NULL ? why : "");
		if (k->rc == DT_API_FAILED)
			k->answer = DT_ANSWER_OUTAGE;
	} else if (k->resp.result == DT_HTTP_ETOOBIG) {
		k->rc = DT_API_INVALID;
		utf8_format(k->why, sizeof(k->why), "%s", k->resp.error);
	} else if (k->resp.result != DT_HTTP_OK)
		k->answer = DT_ANSWER_OUTAGE;   /* TLS, say */
	settle(x, reserved, json_number_value(json_object_get(u, "cost_usd")));
	st = dt_shared_lock(x->sh);
	/* An answer from the model ends a streak of refusals. */
	if (k->rc != -1)
		st->streak = 0;
	/* Any answer but an outage ends a run of outages. */
	if (k->rc == DT_API_OK || k->rc == DT_API_INVALID || refused(k))
		st->fails = 0;
	k->proven = st->proven |= k->rc == DT_API_OK;
	dt_shared_unlock(x->sh);
	/* A refusal keeps the lead until on_refusal() tells. */
	if (!refused(k))
		warm_done(x, k, 0);
	return 1;
}

/* Invalid output is asked for once more at once (a pack's: alone). */
static int
on_invalid(struct run *x, struct call *k)
{
	json_t *e;

	if (k->api->packed || ++k->invalid < 2) {
		dt_warn("%s: id %s: %s; %s", x->where, k->id, k->why,
		    k->api->packed ? "sending each message alone" :
		    "asking once more");
		return k->api->packed ? END_ALONE : NEXT_CALL;
	}
	dt_az_set_error(x, k->rec, K_INVALID, 1, DT_EXIT_PARTIAL,
	    "%s (after %d tries)", k->why, k->tries);
	e = json_object_get(k->rec, "error");
	json_object_set(e, "output", json_object_get(k->reply, "output"));
	json_object_set(e, "output_cut", json_object_get(k->reply,
	    "output_cut"));
	return END;
}

/* "HTTP <status>: <the API's message>" into buf, its error type in sig. */
static void
http_answer(const struct dt_http_resp *r, char *buf, size_t len, char *sig,
    size_t slen)
{
	char msg[300];

	dt_api_error(r->body, r->len, msg, sizeof(msg), sig, slen);
	utf8_format(buf, len, "HTTP %ld%s%s", r->status, msg[0] ? ": " : "",
	    msg);
}

/* The line that says what to fix when the API refuses the run's setup. */
static void
setup_line(struct run *x, long status, const char *sig, const char *answer,
    char *buf, size_t len)
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
		    "(%s); check PERPLEXITY_BASE_URL "
		    "(https://api.perplexity.ai) and DT_API", x->url, answer);
	else if (strcasestr(answer, "model") != NULL ||
	    strcasestr(sig, "model") != NULL)
		utf8_format(buf, len, "PERPLEXITY_MODEL: the API refused model "
		    "'%s' (%s); fix the model name", x->c.model, answer);
	else
		utf8_format(buf, len, "the API refused records and a plain "
		    "test text alike (%s); check PERPLEXITY_MODEL, DT_API, "
		    "DT_SCHEMA_FILE and PERPLEXITY_BASE_URL", answer);
}

/*
 * Opens the circuit with line for a refusal that is the setup's, else
 * counts it (status, sig) towards the streak of refusals alike, which
 * opens it at SETUP_THRESHOLD.  Returns 1 when this call opened it;
 * *streak gets the streak's length.
 */
static int
note_refusal(struct run *x, long status, const char *sig, const char *line,
    int setup, int *streak)
{
	struct dt_state *st = dt_shared_lock(x->sh);
	char key[sizeof(st->sig)];
	int opened;

	utf8_format(key, sizeof(key), "%ld %s", status, sig);
	if (!setup && strcmp(st->sig, key) != 0) {
		st->streak = 0;
		memcpy(st->sig, key, sizeof(key));
	}
	*streak = setup ? 0 : (int)++st->streak;
	opened = (setup || *streak >= SETUP_THRESHOLD) && trip(st, setup &&
	    (status == 401 || status == 403) ? DT_BREAKER_AUTH :
	    DT_BREAKER_SETUP, line);
	dt_shared_unlock(x->sh);
	return opened;
}

/* Adds a request's usage to the run's totals; 1 when it cost something. */
static int
add_totals(struct run *x, json_t *u)
{
	long long t = json_integer_value(json_object_get(u, "total_tokens"));
	double c = json_number_value(json_object_get(u, "cost_usd"));

	x->n.tokens += t;
	x->n.cost += c;
	return t > 0 || c > 0;
}

/*
 * The last call of a streak of refusals: the same request with a plain
 * text of no user's.  Refused alike, the setup is at fault and the
 * circuit opens (returns 1).  Its cost counts in the run's totals only.
 */
static int
probe_setup(struct run *x, const struct call *like, const char *line)
{
	static const char text[] = "Thanks for the update, see you tomorrow.";
	struct call p = {.api = &x->api, .req = like->req, .id = like->id,
	    .usage = json_object(), .rc = -1};
	char *body = dt_api_body(&x->api, text, sizeof(text) - 1,
	    &p.req.body_len), answer[400], sig[64];
	double reserved;
	int opened = 0, streak;

	p.req.body = body;
	if (body != NULL && budget_and_slot(x, like->id, &reserved) > 0) {
		if (call_once(x, &p, reserved) && refused(&p)) {
			http_answer(&p.resp, answer, sizeof(answer), sig,
			    sizeof(sig));
			opened = note_refusal(x, p.resp.status, sig, line,
			    0, &streak);
		}
		add_totals(x, p.usage);
		dt_debug("the test call with a plain text: %s", p.rc ==
		    DT_API_OK ? "analyzed: the setup is good" : opened ?
		    "refused alike: the setup is at fault" : "no verdict");
	}
	dt_http_resp_clear(&p.resp);
	json_decref(p.reply);
	json_decref(p.usage);
	free(body);
	return opened;
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
	int setup = k->answer == DT_ANSWER_SETUP, packed = k->api->packed;
	char sig[64], answer[400], line[1024];
	int streak = 0, opened = 0, fd;

	http_answer(r, answer, sizeof(answer), sig, sizeof(sig));
	setup_line(x, r->status, sig, answer, line, sizeof(line));
	if (!setup && k->proven && !packed) {
		warm_done(x, k, 0);
		dt_warn("%s: id %s: %s; the API answered other records of this "
		    "run", x->where, k->id, answer);
		dt_az_set_error(x, k->rec, K_4XX, 1, DT_EXIT_PARTIAL, "%s",
		    answer);
		return END;
	}
	if (setup || !k->proven)
		opened = note_refusal(x, r->status, sig, line, setup,
		    &streak);
	/* A refused pack may hold the one message at fault. */
	if (!setup && !opened && packed) {
		warm_done(x, k, 1);
		utf8_format(k->why, sizeof(k->why), "%s", answer);
		dt_log(k->proven ? DT_LOG_WARN : DT_LOG_DEBUG, "%s: id %s: %s; "
		    "sending each message alone", x->where, k->id, answer);
		return END_ALONE;
	}
	if (!setup && !opened && streak == SETUP_THRESHOLD - 1)
		opened = probe_setup(x, k, line);
	warm_done(x, k, 1);
	dt_az_set_error(x, k->rec, K_CONFIG, 1, dt_shared_breaker(x->sh) ==
	    DT_BREAKER_CLOSED ? DT_EXIT_PARTIAL : DT_EXIT_CONFIG, "%s", answer);
	if (opened) {
		dt_error("%s; no more calls in this run, every row is given "
		    "back", line);
		/* The stop file tells dt-fetch to claim no more. */
		if (x->c.stop_file != NULL && (fd = open(x->c.stop_file,
		    O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) >= 0)
			close(fd);
	} else {
		dt_debug("%s: id %s: %s (%d in a row); the row is given back",
		    x->where, k->id, answer, streak);
		utf8_format(x->last_refused, sizeof(x->last_refused),
		    "id %s: %s", k->id, answer);
	}
	return END;
}

/* An outage: retried as dt_retry_check() says, under the breaker. */
static int
on_outage(struct run *x, struct call *k)
{
	struct config *c = &x->c;
	const struct dt_http_resp *r = &k->resp;
	int kind = K_UNAVAIL, opened;
	struct dt_state *st;
	struct dt_retry rt;
	long long until;

	/* A failed run's reason is in k->why already. */
	if (k->rc != DT_API_FAILED && r->result == DT_HTTP_OK)
		http_answer(r, k->why, sizeof(k->why), NULL, 0);
	else if (k->rc != DT_API_FAILED)
		utf8_format(k->why, sizeof(k->why), "%s", r->error);
	if (r->result == DT_HTTP_ETIMEOUT || r->status == 408)
		kind = K_TIMEOUT;
	else if (r->status == 429)
		kind = K_RATE;
	st = dt_shared_lock(x->sh);
	if (++st->fails >= c->breaker && c->breaker > 0)
		trip(st, DT_BREAKER_OUTAGE, "");
	opened = st->breaker != DT_BREAKER_CLOSED;
	dt_shared_unlock(x->sh);
	if (opened) {
		dt_warn("%s: id %s: %s; circuit open", x->where, k->id, k->why);
		return NEXT_CALL;
	}
	dt_retry_check(&c->pol, r, DT_ANSWER_OUTAGE, ++k->outages,
	    dt_now_ms() - k->start, &rt);
	if (!rt.retry) {
		dt_warn("%s: id %s: %s; giving up after %d tries", x->where,
		    k->id, k->why, k->tries);
		dt_az_set_error(x, k->rec, kind, 1, DT_EXIT_PARTIAL,
		    "%s (after %d tries)", k->why, k->tries);
		return END;
	}
	dt_warn("%s: id %s: %s; retrying in %.1f s (%d of %d tries left)",
	    x->where, k->id, k->why, rt.wait_ms / 1000.0,
	    c->pol.max_tries - k->outages, c->pol.max_tries);
	/* After a 429 every worker of the run holds back. */
	if (r->status != 429)
		nap(x, rt.wait_ms);
	else {
		st = dt_shared_lock(x->sh);
		if ((until = dt_now_ms() + rt.wait_ms) > st->hold_until)
			st->hold_until = until;
		dt_shared_unlock(x->sh);
	}
	return NEXT_CALL;
}

static int
answered(struct run *x, struct call *k)
{
	if (k->rc == DT_API_OK)
		return END;
	if (k->rc == DT_API_INVALID)
		return on_invalid(x, k);
	if (refused(k))
		return on_refusal(x, k);
	if (k->answer == DT_ANSWER_OUTAGE)
		return on_outage(x, k);
	dt_az_set_error(x, k->rec, K_UNAVAIL, 1, DT_EXIT_PARTIAL,
	    "unexpected HTTP %ld (after %d tries)", k->resp.status, k->tries);
	return END;
}

int
dt_az_send(struct run *x, const struct dt_api *api, const char *body,
    size_t len, json_t *rec, const char *id)
{
	struct call k = {.rec = rec, .id = id, .api = api, .rc = -1,
	    .usage = json_object(), .start = dt_now_ms(), .req = {
	    .method = "POST", .url = x->url, .headers = x->headers,
	    .body = body, .body_len = len, .cancel = &dt_az_signal}};
	json_t *u = k.usage;
	double reserved;
	int end = NEXT_CALL, turn, ok;

	while (end == NEXT_CALL) {
		if ((turn = take_turn(x, &k, &reserved)) < 0)
			end = END;
		else if (turn > 0 && call_once(x, &k, reserved))
			end = answered(x, &k);
	}
	if ((ok = end == END && k.rc == DT_API_OK))
		json_object_update_new(rec, json_pack("{s:O, s:O, s:O, s:I, "
		    "s:i}", "analysis", json_object_get(k.reply, "analysis"),
		    "model", json_object_get(k.reply, "model"), "usage", u,
		    "latency_ms", (json_int_t)k.resp.elapsed_ms, "tries",
		    k.tries));
	if (!ok && k.tries > 0)
		json_object_set_new(rec, "tries", json_integer(k.tries));
	if (add_totals(x, u) && !ok)
		json_object_set(rec, "usage", u);
	if (end == END_ALONE)
		json_object_set_new(rec, "alone", json_string(k.why));
	dt_http_resp_clear(&k.resp);
	json_decref(k.reply);
	json_decref(u);
	return ok ? 1 : end == END_ALONE ? -1 : 0;
}

void
dt_az_call(struct run *x, json_t *rec, const char *id, const char *text,
    size_t len)
{
	size_t blen;
	char *body = dt_api_body(&x->api, text, len, &blen);

	if (body == NULL) {
		dt_error("out of memory");
		dt_az_set_error(x, rec, K_UNAVAIL, 1, DT_EXIT_TEMPFAIL,
		    "out of memory");
	} else if (dt_az_send(x, &x->api, body, blen, rec, id) > 0) {
		json_object_set_new(rec, "prompt_version",
		    json_string(x->version));
		x->n.analyzed++;
	}
	free(body);
}
