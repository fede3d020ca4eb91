/*
 * estimate.c: --estimate, the runs, tokens and cost a backlog will take
 * (dt-fetch --backlog | dt-analyze --estimate, for dt-entrypoint
 * --dry-run; docs/entrypoint.md).  Nothing here calls anything.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "analyze.h"
#include "config.h"
#include "exit.h"
#include "log.h"

/* The CronJob's schedule (k8s/base/cronjob.yaml): every two hours. */
#define SCHEDULE_HOURS 2

/* The Agent API's web_search tool, per invocation (the pricing page). */
#define PRICE_WEB_SEARCH 0.005

/*
 * USD per million input and output tokens and per request, from
 * docs.perplexity.ai: the Agent API's models page (no fee per request
 * without tools) and the pricing page's Sonar API (chat completions, 5
 * USD per 1,000 requests at the low search context size).
 */
static const struct price {
	const char *model;
	double in, out, request;
} agent_sonar = {"perplexity/sonar", 0.25, 2.50, 0},
    chat_sonar = {"sonar", 1.0, 1.0, 0.005};

/* What the estimate knows besides the settings. */
struct est {
	const struct config *c;
	struct price p;             /* the prices used */
	int known;                  /* set, or the model's own */
	long long deadline_s, shards;
	long long fixed_tokens;     /* a text's share of the tokens of a
				     * request without its text */
};

/*
 * The tokens of a request for an empty text, or with DT_PACK over 1 a
 * packed request's for DT_PACK empty texts shared by them.
 */
static long long
fixed_tokens(struct run *x)
{
	long long n, i, pack = x->c.pack;
	struct dt_az_item *it = NULL;
	char *body = NULL;
	size_t blen = 0;

	if (pack > 1 && (it = calloc((size_t)pack, sizeof(*it))) != NULL) {
		for (i = 0; i < pack; i++)
			it[i].text = "";
		body = dt_az_group_body(x, it, (int)pack, &blen);
	} else if (pack == 1)
		body = dt_api_body(&x->api, "", 0, &blen);
	n = dt_api_estimate_tokens(body, body != NULL ? blen : 0);
	free(it);
	free(body);
	return (n + pack - 1) / pack;
}

/* A whole number >= 0 from the object, else def. */
static long long
num(json_t *o, const char *key, long long def)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) >= 0 ?
	    (long long)json_integer_value(v) : def;
}

/*
 * The cost lines for todo texts of in and out tokens each, as measured
 * (hist), for a first run of about first texts (0: no such line) and
 * against the budget.
 */
static void
print_cost(const struct est *e, long long in, long long out,
    long long todo, double first, json_t *hist)
{
	const struct config *c = e->c;
	double avg = json_number_value(json_object_get(hist, "cost_usd"));
	/* A request's price is shared by the DT_PACK texts it carries. */
	double fixed = (double)in * e->p.in / 1e6 + e->p.request /
	    (double)c->pack;
	double per_msg = fixed + (double)out * e->p.out / 1e6;
	double per_max = fixed + (double)c->max_output_tokens * e->p.out / 1e6;

	printf("cost: about %.4f USD for the whole backlog (%.6f per text; at "
	    "most %.4f if every answer were DT_MAX_OUTPUT_TOKENS long), at %g "
	    "USD per million input tokens, %g per million output tokens, %g "
	    "per request%s\n", per_msg * (double)todo, per_msg, per_max *
	    (double)todo, e->p.in, e->p.out, e->p.request, e->known ? "" :
	    "; these are perplexity/sonar's prices: set DT_PRICE_INPUT_PER_M "
	    "and DT_PRICE_OUTPUT_PER_M for the model in PERPLEXITY_MODEL");
	if (num(hist, "rows", 0) > 0)
		printf("measured: the last %lld analyses averaged %.0f tokens "
		    "in, %.0f out and %.6f USD each (the API's own counts): "
		    "about %.4f USD for the backlog at that cost\n",
		    num(hist, "rows", 0), json_number_value(json_object_get(
		    hist, "prompt_tokens")), json_number_value(json_object_get(
		    hist, "completion_tokens")), avg, avg * (double)todo);
	if (first > 0)
		printf("first run: about %.4f USD for %lld texts\n", per_msg *
		    first, (long long)llround(first));
	if (c->budget > 0)
		printf("budget: DT_BUDGET_USD %g: a run stops calling once it "
		    "spent that (about %lld texts)\n", c->budget, per_msg > 0 ?
		    (long long)(c->budget / per_msg) : 0);
	else
		printf("budget: DT_BUDGET_USD is not set: no run has a spending "
		    "limit\n");
}

/*
 * Prints the runs the backlog takes: at most DT_MAX_RECORDS rows each,
 * and the calls DT_RPM allows in DT_DEADLINE_SECONDS.  Returns the rows
 * a run takes (0: no limit) and sets *runs.
 */
static long long
print_runs(const struct est *e, long long unclaimed, long long max_records,
    double share, long long *runs)
{
	const struct config *c = e->c;
	long long per_run = max_records, calls = c->rpm * e->deadline_s / 60;
	long long by_rate = (long long)((double)(calls * c->pack) /
	    (share > 0 ? share : 1));
	char packs[64] = "";

	if (c->pack > 1)
		snprintf(packs, sizeof(packs), " of up to DT_PACK %lld texts "
		    "each", c->pack);
	if (c->rpm > 0 && (per_run == 0 || by_rate < per_run))
		per_run = by_rate;
	per_run *= e->shards;
	*runs = per_run > 0 ? (unclaimed + per_run - 1) / per_run : 1;
	if (per_run == 0)
		printf("runs: 1 (no DT_MAX_RECORDS and no DT_RPM: one run takes "
		    "all, until DT_DEADLINE_SECONDS)\n");
	else
		printf("runs: %lld of at most %lld rows each (DT_MAX_RECORDS "
		    "%lld%s; DT_RPM %lld for DT_DEADLINE_SECONDS %lld: %lld "
		    "calls%s%s%s); at one run every %d h the backlog is done "
		    "in about %lld h\n", *runs, per_run, max_records,
		    max_records == 0 ? ", no cap" : "", c->rpm, e->deadline_s,
		    c->rpm > 0 ? calls : 0, packs, c->rpm > 0 ? "" :
		    ", no limit", e->shards > 1 ? ", times DT_SHARDS" : "",
		    SCHEDULE_HOURS, (*runs - 1) * SCHEDULE_HOURS);
	return per_run;
}

/* Prints the estimate for dt-fetch --backlog's object; 0, or -1. */
static int
print_estimate(const struct est *e, json_t *fetch)
{
	const struct config *c = e->c;
	json_t *bl = json_object_get(fetch, "backlog");
	json_t *sample = json_object_get(fetch, "sample");
	long long unclaimed = num(bl, "unclaimed", -1);
	long long rows = num(sample, "rows", -1), blank = num(sample, "blank",
	    -1), bytes = num(sample, "text_bytes", -1);
	long long max_records = num(fetch, "max_records", -1);
	long long per_run, runs, text_tokens, out, todo;
	double avg_bytes, share;

	if (unclaimed < 0 || rows < 0 || blank < 0 || bytes < 0 ||
	    max_records < 0 || blank > rows) {
		dt_error("--estimate: the input is not what dt-fetch --backlog "
		    "writes");
		return -1;
	}
	printf("backlog: %lld unclaimed, %lld leased, %lld parked, %lld "
	    "done\n", unclaimed, num(bl, "leased", 0), num(bl, "failed", 0),
	    num(bl, "done", 0));
	if (unclaimed == 0) {
		printf("nothing to do: a run now claims nothing and costs "
		    "nothing\n");
		return 0;
	}
	/* The first rows a claim takes stand for the rest. */
	share = rows > 0 ? (double)(rows - blank) / (double)rows : 1;
	avg_bytes = rows > blank ? (double)bytes / (double)(rows - blank) : 0;
	avg_bytes = fmin(avg_bytes, (double)c->max_text);
	todo = llround((double)unclaimed * share);
	printf("texts: %lld to analyze; of the first %lld rows a claim takes, "
	    "%lld have no text (skipped, no call), the others average %.0f "
	    "bytes\n", todo, rows, blank, avg_bytes);
	per_run = print_runs(e, unclaimed, max_records, share, &runs);
	/*
	 * An answer: 100 tokens (the schema's names, the JSON around them)
	 * and half the text's (a summary says it again, shorter).
	 */
	text_tokens = dt_api_estimate_tokens(NULL, (size_t)avg_bytes);
	out = 100 + text_tokens / 2;
	if (out > c->max_output_tokens)
		out = c->max_output_tokens;
	printf("tokens per text: about %lld in (%lld for %s, %lld for the "
	    "text), %lld out (at most %lld, DT_MAX_OUTPUT_TOKENS)\n",
	    e->fixed_tokens + text_tokens, e->fixed_tokens, c->pack > 1 ?
	    "its share of the prompt, the schema and a packed request" :
	    "the prompt, the schema and the request", text_tokens, out,
	    c->max_output_tokens);
	print_cost(e, e->fixed_tokens + text_tokens, out, todo, per_run > 0 &&
	    runs > 1 ? (double)per_run * share : 0, json_object_get(fetch,
	    "history"));
	return 0;
}

int
dt_az_estimate(struct run *x)
{
	const struct config *c = &x->c;
	struct est e = {.c = c, .p = strcmp(c->model, "sonar") == 0 ?
	    chat_sonar : agent_sonar};
	json_error_t je;
	json_t *in;
	int rc;

	e.known = strcmp(c->model, e.p.model) == 0 || c->price_in >= 0 ||
	    c->price_out >= 0;
	e.p.in = c->price_in >= 0 ? c->price_in : e.p.in;
	e.p.out = c->price_out >= 0 ? c->price_out : e.p.out;
	/* With web search every Agent API request is taken to search once. */
	e.p.request = c->price_request >= 0 ? c->price_request : e.p.request +
	    (c->web_search && c->api == DT_API_AGENT ? PRICE_WEB_SEARCH : 0);
	if (dt_env_shared("DT_DEADLINE_SECONDS", &e.deadline_s) < 0 ||
	    dt_env_shared("DT_SHARDS", &e.shards) < 0)
		return DT_EXIT_CONFIG;
	e.fixed_tokens = fixed_tokens(x);
	if ((in = json_loadf(stdin, 0, &je)) == NULL) {
		dt_error("--estimate: <stdin>:%d: %s", je.line, je.text);
		return DT_EXIT_DATAERR;
	}
	rc = print_estimate(&e, in) < 0 ? DT_EXIT_DATAERR : DT_EXIT_OK;
	json_decref(in);
	return rc;
}
