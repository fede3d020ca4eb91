/*
 * modes.c: --preflight (one tiny request, as a run would make it) and
 * --dry-run (the requests a run would send).
 */
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
	struct dt_usage u = {0};
	json_t *analysis = NULL;
	char msg[300], http[340], why[600], model[128], *raw = NULL;
	long st = r->status;
	int rc;

	dt_api_error_message(r->body, r->len, msg, sizeof(msg));
	snprintf(http, sizeof(http), "HTTP %ld%s%s", st, msg[0] ? ": " : "",
	    msg);
	if (st >= 200 && st <= 299) {
		rc = dt_api_parse(a, r->body, r->len, &analysis, &u, model,
		    sizeof(model), why, sizeof(why), &raw) == DT_API_FAILED ?
		    PREFLIGHT(DT_EXIT_UNAVAILABLE, "model %s at %s: the API "
		    "says the call failed (%s)", x->c.model, safe, why) :
		    PREFLIGHT(DT_EXIT_OK, "model %s answered at %s (HTTP %ld, "
		    "%lld tokens, %.6f USD)", model[0] ? model : x->c.model,
		    safe, st, u.total_tokens, u.cost_usd);
		json_decref(analysis);
		free(raw);
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

/* Whatever the answer holds, a 2xx says the key, model and URL work. */
int
dt_az_preflight(struct run *x)
{
	static const char text[] = "Preflight check.";
	struct dt_api a = x->api;
	struct dt_http_policy pol = x->c.pol;
	struct dt_http_resp resp = {0};
	struct dt_http_req req = {.method = "POST", .url = x->url,
	    .headers = x->headers, .connect_timeout_ms = 10000,
	    .timeout_ms = 1000 * (long)(x->c.first_timeout_s >
	    x->c.timeout_s ? x->c.first_timeout_s : x->c.timeout_s)};
	char *body, safe[512];
	int rc;

	a.max_output_tokens = 16;
	pol.max_tries = 1;
	body = dt_api_body(&a, text, sizeof(text) - 1, &req.body_len);
	if ((req.body = body) == NULL)
		return PREFLIGHT(DT_EXIT_TEMPFAIL, "out of memory");
	dt_http_once(x->http, &req, &pol, &resp);
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
	long long in = dt_api_estimate_tokens(s, s != NULL ? blen : 0);
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
	out = body == NULL ? NULL : json_pack("{s:O, s:b, s:{s:s, s:s, "
	    "s:{s:s, s:s}, s:O}, s:{s:I, s:I}}", n > 1 ? "ids" : "id", n > 1 ?
	    ids : json_array_get(ids, 0), "dry_run", 1, "request", "method",
	    "POST", "url", x->url, "headers", "Authorization", x->c.key ?
	    "Bearer ***" : "Bearer (PERPLEXITY_API_KEY unset)", "Content-Type",
	    "application/json", "body", body, "estimate", "input_tokens",
	    (json_int_t)in, "max_output_tokens", (json_int_t)max_out);
	if (out == NULL)
		dt_error("out of memory");
	else if (n > 1)
		json_object_set_new(out, "pack", json_pack("{s:i}", "size", n));
	else if (json_object_get(it->rec, "text_cut") != NULL)
		json_object_set(out, "text_cut", json_object_get(it->rec,
		    "text_cut"));
	if (out != NULL)
		dt_emit(out);
	json_decref(out);
	json_decref(body);
	json_decref(ids);
}
