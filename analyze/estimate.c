/*
 * estimate.c: the backlog, the runs and the cost it will take, for
 * dt-entrypoint --dry-run.  Nothing here calls anything.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "api.h"
#include "estimate.h"
#include "log.h"

/* The CronJob's schedule (k8s/base/cronjob.yaml): every two hours. */
#define SCHEDULE_HOURS 2

/*
 * docs.perplexity.ai: the Agent API's models page (perplexity/sonar:
 * 0.25 and 2.50 per million tokens, no fee per request without tools)
 * and the pricing page's Sonar API (chat completions, sonar: 1 and 1,
 * and 5 USD per 1,000 requests at the low search context size).
 */
static const struct dt_price prices[] = {
	{"perplexity/sonar", 0.25, 2.50, 0},
	{"sonar", 1.0, 1.0, 0.005},
};

const struct dt_price *
dt_price_of(const char *model)
{
	size_t i;

	for (i = 0; i < sizeof(prices) / sizeof(prices[0]); i++)
		if (strcmp(prices[i].model, model) == 0)
			return &prices[i];
	return NULL;
}

long long
dt_estimate_output_tokens(long long text_tokens, long long max_output_tokens)
{
	long long n = 100 + text_tokens / 2;

	return n < max_output_tokens ? n : max_output_tokens;
}

/* A whole number from the object (-1 when it is missing or not one). */
static long long
num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) >= 0 ?
	    (long long)json_integer_value(v) : -1;
}

/*
 * The cost lines: per text, for the backlog of todo texts, as measured
 * (hist), for a first run of first_run rows (0: no such line) and
 * against the budget.
 */
static void
print_cost(const struct dt_estimate *e, FILE *out, long long in,
    long long outk, long long todo, long long first_run, double share,
    json_t *hist)
{
	double per_msg, per_msg_max, total, total_max;

	/* A request's price is shared by the DT_PACK texts it carries. */
	per_msg = (double)in * e->price_in / 1e6 + (double)outk *
	    e->price_out / 1e6 + e->price_request / (double)e->pack;
	per_msg_max = (double)in * e->price_in / 1e6 +
	    (double)e->max_output_tokens * e->price_out / 1e6 +
	    e->price_request / (double)e->pack;
	total = per_msg * (double)todo;
	total_max = per_msg_max * (double)todo;
	fprintf(out, "cost: about %.4f USD for the whole backlog (%.6f per "
	    "text; at most %.4f if every answer were DT_MAX_OUTPUT_TOKENS "
	    "long), at %g USD per million input tokens, %g per million "
	    "output tokens, %g per request%s\n", total, per_msg, total_max,
	    e->price_in, e->price_out, e->price_request,
	    e->prices_known ? "" : "; these are perplexity/sonar's prices: "
	    "set DT_PRICE_INPUT_PER_M and DT_PRICE_OUTPUT_PER_M for the model "
	    "in PERPLEXITY_MODEL");
	/* After some runs, the API's own counts say more than the sizes. */
	if (num(hist, "rows") > 0)
		fprintf(out, "measured: the last %lld analyses averaged %.0f "
		    "tokens in, %.0f out and %.6f USD each (the API's own "
		    "counts): about %.4f USD for the backlog at that cost\n",
		    num(hist, "rows"), json_number_value(json_object_get(hist,
		    "prompt_tokens")), json_number_value(json_object_get(hist,
		    "completion_tokens")), json_number_value(json_object_get(
		    hist, "cost_usd")), json_number_value(json_object_get(hist,
		    "cost_usd")) * (double)todo);
	if (first_run > 0)
		fprintf(out, "first run: about %.4f USD for %lld texts\n",
		    per_msg * (double)first_run * share,
		    (long long)llround((double)first_run * share));
	if (e->budget > 0)
		fprintf(out, "budget: DT_BUDGET_USD %g: a run stops calling once "
		    "it spent that (about %lld texts)\n", e->budget,
		    per_msg > 0 ? (long long)(e->budget / per_msg) : 0);
	else
		fprintf(out, "budget: DT_BUDGET_USD is not set: no run has a "
		    "spending limit\n");
}

/*
 * Prints the runs the backlog takes: at most DT_MAX_RECORDS rows each,
 * and the calls DT_RPM allows in DT_DEADLINE_SECONDS.  Returns the rows
 * a run takes (0: no limit) and sets *runs.
 */
static long long
print_runs(const struct dt_estimate *e, FILE *out, long long unclaimed,
    long long max_records, double share, long long *runs)
{
	long long per_run, by_rate;
	char packs[64] = "";

	if (e->pack > 1)
		snprintf(packs, sizeof(packs), " of up to DT_PACK %lld texts "
		    "each", e->pack);
	/* Rows per run: DT_MAX_RECORDS, and the calls DT_RPM allows. */
	per_run = max_records;
	if (e->rpm > 0) {
		by_rate = e->rpm * e->deadline_s / 60 * e->pack;
		if (share > 0)
			by_rate = (long long)((double)by_rate / share);
		if (per_run == 0 || by_rate < per_run)
			per_run = by_rate;
	}
	per_run *= e->shards;
	*runs = per_run > 0 ? (unclaimed + per_run - 1) / per_run : 1;
	if (per_run == 0)
		fprintf(out, "runs: 1 (no DT_MAX_RECORDS and no DT_RPM: one run "
		    "takes all, until DT_DEADLINE_SECONDS)\n");
	else
		fprintf(out, "runs: %lld of at most %lld rows each "
		    "(DT_MAX_RECORDS %lld%s; DT_RPM %lld for DT_DEADLINE_SECONDS "
		    "%lld: %lld calls%s%s%s); at one run every %d h the backlog "
		    "is done in about %lld h\n", *runs, per_run, max_records,
		    max_records == 0 ? ", no cap" : "", e->rpm, e->deadline_s,
		    e->rpm > 0 ? e->rpm * e->deadline_s / 60 : 0, packs,
		    e->rpm > 0 ? "" : ", no limit",
		    e->shards > 1 ? ", times DT_SHARDS" : "", SCHEDULE_HOURS,
		    (*runs - 1) * SCHEDULE_HOURS);
	return per_run;
}

int
dt_estimate_print(const struct dt_estimate *e, json_t *fetch, FILE *out)
{
	json_t *bl = json_object_get(fetch, "backlog");
	json_t *sample = json_object_get(fetch, "sample");
	json_t *hist = json_object_get(fetch, "history");
	long long unclaimed = num(bl, "unclaimed"), rows = num(sample, "rows");
	long long nblank = num(sample, "blank"), bytes = num(sample,
	    "text_bytes"), max_records = num(fetch, "max_records");
	long long per_run, runs, text_tokens, in, outk, todo;
	double avg_bytes, share;

	if (unclaimed < 0 || rows < 0 || nblank < 0 || bytes < 0 ||
	    max_records < 0 || nblank > rows) {
		dt_error("--estimate: the input is not what dt-fetch --backlog "
		    "writes");
		return -1;
	}
	fprintf(out, "backlog: %lld unclaimed, %lld leased, %lld parked, "
	    "%lld done\n", unclaimed, num(bl, "leased") > 0 ? num(bl,
	    "leased") : 0, num(bl, "failed") > 0 ? num(bl, "failed") : 0,
	    num(bl, "done") > 0 ? num(bl, "done") : 0);
	if (unclaimed == 0) {
		fprintf(out, "nothing to do: a run now claims nothing and costs "
		    "nothing\n");
		return 0;
	}

	/* The first rows a claim takes stand for the rest. */
	share = rows > 0 ? (double)(rows - nblank) / (double)rows : 1;
	avg_bytes = rows > nblank ? (double)bytes / (double)(rows - nblank) :
	    0;
	if (avg_bytes > (double)e->max_text)
		avg_bytes = (double)e->max_text;
	todo = (long long)llround((double)unclaimed * share);
	fprintf(out, "texts: %lld to analyze; of the first %lld rows a claim "
	    "takes, %lld have no text (skipped, no call), the others "
	    "average %.0f bytes\n", todo, rows, nblank, avg_bytes);

	per_run = print_runs(e, out, unclaimed, max_records, share, &runs);

	text_tokens = dt_api_estimate_tokens(NULL, (size_t)avg_bytes);
	in = e->fixed_tokens + text_tokens;
	outk = dt_estimate_output_tokens(text_tokens, e->max_output_tokens);
	fprintf(out, "tokens per text: about %lld in (%lld for %s, %lld for "
	    "the text), %lld out (at most %lld, DT_MAX_OUTPUT_TOKENS)\n", in,
	    e->fixed_tokens, e->pack > 1 ? "its share of the prompt, the "
	    "schema and a packed request" : "the prompt, the schema and the "
	    "request", text_tokens, outk, e->max_output_tokens);

	print_cost(e, out, in, outk, todo, per_run > 0 && runs > 1 ?
	    per_run : 0, share, hist);
	return 0;
}
