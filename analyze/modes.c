/*
 * modes.c: --preflight (one tiny request, as a run would make it),
 * --dry-run and --estimate (for dt-entrypoint --dry-run).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "analyze.h"
#include "cli.h"
#include "exit.h"
#include "log.h"

/* The one line of --preflight (lib/cli.h). */
#define PREFLIGHT(...) dt_preflight_line("perplexity", __VA_ARGS__)

/* The line for an answer r of the API at safe (the URL); its status. */
static int
preflight_answer(struct run *x, const struct dt_api *a,
    const struct dt_http_resp *r, const char *safe)
{
	json_t *reply = NULL, *u;
	const char *m;
	char msg[300], http[340];
	long st = r->status;
	int rc;

	dt_api_error(r->body, r->len, msg, sizeof(msg), NULL, 0);
	snprintf(http, sizeof(http), "HTTP %ld%s%s", st, msg[0] ? ": " : "",
	    msg);
	if (st >= 200 && st <= 299) {
		rc = dt_api_parse(a, r->body, r->len, &reply);
		m = json_string_value(json_object_get(reply, "model"));
		u = json_object_get(reply, "usage");
		rc = rc == DT_API_FAILED ?
		    PREFLIGHT(DT_EXIT_UNAVAILABLE, "model %s at %s: the API "
		    "says the call failed (%s)", x->c.model, safe,
		    json_string_value(json_object_get(reply, "why"))) :
		    PREFLIGHT(DT_EXIT_OK, "model %s answered at %s (HTTP %ld, "
		    "%lld tokens, %.6f USD)", m != NULL && *m ? m : x->c.model,
		    safe, st, (long long)json_integer_value(
		    json_object_get(u, "total_tokens")),
		    json_number_value(json_object_get(u, "cost_usd")));
		json_decref(reply);
		return rc;
	}
	if (st == 401 || st == 403)
		return PREFLIGHT(DT_EXIT_CONFIG, "PERPLEXITY_API_KEY: refused "
		    "(%s)", http);
	if (st == 402)
		return PREFLIGHT(DT_EXIT_CONFIG, "PERPLEXITY_API_KEY: its API "
		    "group has no credits left (%s)", http);
	if (st == 404 || st == 405)
		return PREFLIGHT(DT_EXIT_CONFIG, "PERPLEXITY_BASE_URL: %s is "
		    "not the API (%s)", safe, http);
	if (st == 408 || st == 429 || st >= 500)
		return PREFLIGHT(DT_EXIT_UNAVAILABLE, "%s is busy or down "
		    "(%s); try again", safe, http);
	if (strstr(msg, "model") != NULL || strstr(msg, "Model") != NULL)
		return PREFLIGHT(DT_EXIT_CONFIG, "PERPLEXITY_MODEL: %s refused "
		    "(%s)", x->c.model, http);
	return PREFLIGHT(DT_EXIT_CONFIG, "the API refused the request (%s): "
	    "check PERPLEXITY_MODEL, DT_API and DT_SCHEMA_FILE", http);
}

int
dt_az_preflight(struct run *x)
{
	static const char text[] = "Preflight check.";
	struct dt_api a = x->api;
	struct dt_http_resp resp = {0};
	struct dt_http_req req = {.method = "POST", .url = x->url,
	    .headers = x->headers, .timeout_ms = 1000 *
	    (long)(x->c.first_timeout_s > x->c.timeout_s ?
	    x->c.first_timeout_s : x->c.timeout_s)};
	char *body, safe[512];
	int rc;

	a.max_output_tokens = 16;
	body = dt_api_body(&a, text, sizeof(text) - 1, &req.body_len);
	if ((req.body = body) == NULL)
		return PREFLIGHT(DT_EXIT_TEMPFAIL, "out of memory");
	dt_http_once(x->http, &req, &x->c.pol, &resp);
	dt_http_safe_url(x->url, safe, sizeof(safe));
	if (resp.result != DT_HTTP_OK)
		rc = PREFLIGHT(DT_EXIT_UNAVAILABLE, "PERPLEXITY_BASE_URL: %s "
		    "cannot be reached (%s)", safe, resp.error);
	else
		rc = preflight_answer(x, &a, &resp, safe);
	free(body);
	dt_http_resp_clear(&resp);
	return rc;
}

void
dt_az_dry_run(struct run *x, struct dt_az_item *it, int n)
{
	size_t blen = 0;
	char *s = n > 1 ? dt_az_group_body(x, it, n, &blen) :
	    dt_api_body(&x->api, it->text, it->len, &blen);
	json_t *body = s != NULL ? json_loads(s, 0, NULL) : NULL, *out;
	json_t *ids = json_array();
	long long in = dt_api_estimate_tokens(s != NULL ? blen : 0);
	/* The Agent API's max_output_tokens or chat's max_tokens. */
	long long max_out = json_integer_value(json_object_get(body,
	    "max_output_tokens")) + json_integer_value(json_object_get(body,
	    "max_tokens"));
	int j;

	free(s);
	x->n.est_in += in;
	x->n.est_out += max_out;
	for (j = 0; j < n; j++)
		json_array_append(ids, json_object_get(it[j].rec, "id"));
	out = json_pack("{s:O, s:b, s:{s:s, s:s, s:{s:s, s:s}, s:O}, "
	    "s:{s:I, s:I}, s:o*, s:O*}", n > 1 ? "ids" : "id", n > 1 ? ids :
	    json_array_get(ids, 0), "dry_run", 1, "request", "method", "POST",
	    "url", x->url, "headers", "Authorization", x->c.key ?
	    "Bearer ***" : "Bearer (PERPLEXITY_API_KEY unset)", "Content-Type",
	    "application/json", "body", body, "estimate", "input_tokens",
	    (json_int_t)in, "max_output_tokens", (json_int_t)max_out, "pack",
	    n > 1 ? json_pack("{s:i}", "size", n) : NULL, "text_cut", n > 1 ?
	    NULL : json_object_get(it->rec, "text_cut"));
	if (out == NULL)
		dt_error("out of memory");
	else
		dt_emit(out);
	json_decref(out);
	json_decref(body);
	json_decref(ids);
}

/* The CronJob's schedule (k8s/base/cronjob.yaml): every two hours. */
#define SCHEDULE_HOURS 2

/* The Agent API's web_search tool, per invocation (the pricing page). */
#define PRICE_WEB_SEARCH 0.005

/* USD per million tokens in and out, and per request (docs/analyze.md). */
static const struct price {
	const char *model;
	double in, out, request;
} agent_sonar = {"perplexity/sonar", 0.25, 2.50, 0},
    chat_sonar = {"sonar", 1.0, 1.0, 0.005};

/* The tokens of a request but its text: a text's share of a pack's. */
static long long
fixed_tokens(struct run *x)
{
	static struct dt_az_item it[DT_AZ_PACK_MAX];
	int i, pack = (int)x->c.pack;
	size_t blen = 0;
	char *body;
	long long n;

	for (i = 0; i < pack; i++)
		it[i].text = "";
	body = pack > 1 ? dt_az_group_body(x, it, pack, &blen) :
	    dt_api_body(&x->api, "", 0, &blen);
	n = dt_api_estimate_tokens(body != NULL ? blen : 0);
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

/* The cost lines for todo texts of in and out tokens, and the others. */
static void
print_cost(const struct config *c, long long in, long long out,
    long long todo, double first, json_t *hist)
{
	struct price p = strcmp(c->model, "sonar") == 0 ? chat_sonar :
	    agent_sonar;
	int known = strcmp(c->model, p.model) == 0 || c->price_in >= 0 ||
	    c->price_out >= 0;
	double avg = json_number_value(json_object_get(hist, "cost_usd"));
	double fixed, per_msg, per_max;

	p.in = c->price_in >= 0 ? c->price_in : p.in;
	p.out = c->price_out >= 0 ? c->price_out : p.out;
	/* With web search every Agent API request is taken to search once. */
	p.request = c->price_request >= 0 ? c->price_request : p.request +
	    (c->web_search && c->api == DT_API_AGENT ? PRICE_WEB_SEARCH : 0);
	/* A request's price is shared by the DT_PACK texts it carries. */
	fixed = (double)in * p.in / 1e6 + p.request / (double)c->pack;
	per_msg = fixed + (double)out * p.out / 1e6;
	per_max = fixed + (double)c->max_output_tokens * p.out / 1e6;
	printf("cost: about %.4f USD for the whole backlog (%.6f per text; at "
	    "most %.4f if every answer were DT_MAX_OUTPUT_TOKENS long), at %g "
	    "USD per million input tokens, %g per million output tokens, %g "
	    "per request%s\n", per_msg * (double)todo, per_msg, per_max *
	    (double)todo, p.in, p.out, p.request, known ? "" : "; these are "
	    "perplexity/sonar's prices: set DT_PRICE_INPUT_PER_M and "
	    "DT_PRICE_OUTPUT_PER_M for the model in PERPLEXITY_MODEL");
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
		printf("budget: DT_BUDGET_USD is not set: no run has a "
		    "spending limit\n");
}

/* Prints the runs line; returns the texts of a first run when not all. */
static double
print_runs(const struct config *c, long long unclaimed, long long max_records,
    double share)
{
	long long per_run = max_records, calls = c->rpm * c->deadline_s / 60;
	long long runs, by_rate = (long long)((double)(calls * c->pack) /
	    (share > 0 ? share : 1));
	char packs[64] = "";

	if (c->pack > 1)
		snprintf(packs, sizeof(packs), " of up to DT_PACK %lld texts "
		    "each", c->pack);
	if (c->rpm > 0 && (per_run == 0 || by_rate < per_run))
		per_run = by_rate;
	per_run *= c->shards;
	runs = per_run > 0 ? (unclaimed + per_run - 1) / per_run : 1;
	if (per_run == 0)
		printf("runs: 1 (no DT_MAX_RECORDS and no DT_RPM: one run "
		    "takes all, until DT_DEADLINE_SECONDS)\n");
	else
		printf("runs: %lld of at most %lld rows each (DT_MAX_RECORDS "
		    "%lld%s; DT_RPM %lld for DT_DEADLINE_SECONDS %lld: %lld "
		    "calls%s%s%s); at one run every %d h the backlog is done "
		    "in about %lld h\n", runs, per_run, max_records,
		    max_records == 0 ? ", no cap" : "", c->rpm, c->deadline_s,
		    c->rpm > 0 ? calls : 0, packs, c->rpm > 0 ? "" :
		    ", no limit", c->shards > 1 ? ", times DT_SHARDS" : "",
		    SCHEDULE_HOURS, (runs - 1) * SCHEDULE_HOURS);
	return runs > 1 ? (double)per_run * share : 0;
}

int
dt_az_estimate(struct run *x)
{
	const struct config *c = &x->c;
	json_error_t je;
	json_t *fetch = json_loadf(stdin, 0, &je);
	json_t *bl = json_object_get(fetch, "backlog");
	json_t *sample = json_object_get(fetch, "sample");
	long long unclaimed = num(bl, "unclaimed", -1);
	long long rows = num(sample, "rows", -1), blank = num(sample, "blank",
	    -1), bytes = num(sample, "text_bytes", -1);
	long long max_records = num(fetch, "max_records", -1);
	long long text_tokens, fixed, out, todo;
	double avg_bytes, share, first;

	if (unclaimed < 0 || rows < 0 || blank < 0 || bytes < 0 ||
	    max_records < 0 || blank > rows) {
		if (fetch == NULL)
			dt_error("--estimate: <stdin>:%d: %s", je.line,
			    je.text);
		else
			dt_error("--estimate: the input is not what dt-fetch "
			    "--backlog writes");
		json_decref(fetch);
		return DT_EXIT_DATAERR;
	}
	printf("backlog: %lld unclaimed, %lld leased, %lld parked, %lld "
	    "done\n", unclaimed, num(bl, "leased", 0), num(bl, "failed", 0),
	    num(bl, "done", 0));
	if (unclaimed == 0) {
		printf("nothing to do: a run now claims nothing and costs "
		    "nothing\n");
		json_decref(fetch);
		return DT_EXIT_OK;
	}
	/* The first rows a claim takes stand for the rest. */
	share = rows > 0 ? (double)(rows - blank) / (double)rows : 1;
	avg_bytes = rows > blank ? (double)bytes / (double)(rows - blank) : 0;
	avg_bytes = fmin(avg_bytes, (double)c->max_text);
	todo = llround((double)unclaimed * share);
	printf("texts: %lld to analyze; of the first %lld rows a claim takes, "
	    "%lld have no text (skipped, no call), the others average %.0f "
	    "bytes\n", todo, rows, blank, avg_bytes);
	first = print_runs(c, unclaimed, max_records, share);
	/* An answer: 100 tokens of JSON and names, half the text's more. */
	text_tokens = dt_api_estimate_tokens((size_t)avg_bytes);
	fixed = fixed_tokens(x);
	out = 100 + text_tokens / 2;
	if (out > c->max_output_tokens)
		out = c->max_output_tokens;
	printf("tokens per text: about %lld in (%lld for %s, %lld for the "
	    "text), %lld out (at most %lld, DT_MAX_OUTPUT_TOKENS)\n",
	    fixed + text_tokens, fixed, c->pack > 1 ?
	    "its share of the prompt, the schema and a packed request" :
	    "the prompt, the schema and the request", text_tokens, out,
	    c->max_output_tokens);
	print_cost(c, fixed + text_tokens, out, todo, first,
	    json_object_get(fetch, "history"));
	json_decref(fetch);
	return DT_EXIT_OK;
}
