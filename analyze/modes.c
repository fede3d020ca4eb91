/*
 * modes.c: --preflight (one tiny request, as a run would make it) and
 * --dry-run (the requests a run would send).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "analyze.h"
#include "exit.h"
#include "log.h"
#include "cli.h"

/* The one line --preflight prints for the answer resp; returns its status. */
static int
preflight_answer(struct run *x, const struct dt_api *a,
    const struct dt_http_resp *r, const char *safe)
{
	struct dt_usage u = {0};
	json_t *analysis = NULL;
	char msg[300], why[600], model[128], *raw = NULL;
	int rc;

	dt_api_error_message(r->body, r->len, msg, sizeof(msg));
	if (r->status >= 200 && r->status <= 299) {
		rc = dt_api_parse(a, r->body, r->len, &analysis, &u, model,
		    sizeof(model), why, sizeof(why), &raw);
		if (rc == DT_API_FAILED)
			rc = dt_preflight_line("perplexity", DT_EXIT_UNAVAILABLE,
			    "model %s at %s: the API says the call failed (%s)",
			    x->c.model, safe, why);
		else
			rc = dt_preflight_line("perplexity", DT_EXIT_OK,
			    "model %s answered at %s (HTTP %ld, %lld tokens, "
			    "%.6f USD)", model[0] ? model : x->c.model, safe,
			    r->status, u.total_tokens, u.cost_usd);
	} else if (r->status == 401 || r->status == 403)
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "PERPLEXITY_API_KEY: refused (HTTP %ld%s%s)", r->status,
		    msg[0] ? ": " : "", msg);
	else if (r->status == 402)
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "PERPLEXITY_API_KEY: its API group has no credits left "
		    "(HTTP 402%s%s)", msg[0] ? ": " : "", msg);
	else if (r->status == 404 || r->status == 405)
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "PERPLEXITY_BASE_URL: %s is not the API (HTTP %ld%s%s)", safe,
		    r->status, msg[0] ? ": " : "", msg);
	else if (r->status == 408 || r->status == 429 ||
	    r->status >= 500)
		rc = dt_preflight_line("perplexity", DT_EXIT_UNAVAILABLE,
		    "%s is busy or down (HTTP %ld%s%s); try again", safe,
		    r->status, msg[0] ? ": " : "", msg);
	else if (strstr(msg, "model") != NULL || strstr(msg, "Model") != NULL)
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "PERPLEXITY_MODEL: %s refused (HTTP %ld: %s)", x->c.model,
		    r->status, msg);
	else
		rc = dt_preflight_line("perplexity", DT_EXIT_CONFIG,
		    "the API refused the request (HTTP %ld%s%s): check "
		    "PERPLEXITY_MODEL, DT_API and DT_SCHEMA_FILE", r->status,
		    msg[0] ? ": " : "", msg);
	json_decref(analysis);
	free(raw);
	return rc;
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
	    .headers = x->headers, .connect_timeout_ms = 10000};
	char *body, safe[512];
	int rc;

	a.max_output_tokens = 16;
	if ((body = dt_api_body(&a, text, sizeof(text) - 1, &req.body_len)) ==
	    NULL)
		return dt_preflight_line("perplexity", DT_EXIT_TEMPFAIL,
		    "out of memory");
	req.body = body;
	req.timeout_ms = (long)(x->c.first_timeout_s > x->c.timeout_s ?
	    x->c.first_timeout_s : x->c.timeout_s) * 1000;
	pol.max_tries = 1;
	dt_http_once(x->http, &req, &pol, &resp);
	dt_http_safe_url(x->url, safe, sizeof(safe));
	if (resp.result != DT_HTTP_OK)
		rc = dt_preflight_line("perplexity", DT_EXIT_UNAVAILABLE,
		    "PERPLEXITY_BASE_URL: %s cannot be reached (%s)", safe,
		    resp.error);
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
	json_t *body, *out, *ids = NULL;
	long long est, est_out;
	int j;

	body = s != NULL ? json_loads(s, 0, NULL) : NULL;
	est = dt_api_estimate_tokens(s, s != NULL ? blen : 0);
	/* The Agent API's max_output_tokens or chat's max_tokens. */
	est_out = json_integer_value(json_object_get(body,
	    "max_output_tokens")) + json_integer_value(json_object_get(body,
	    "max_tokens"));
	x->n.est_in += est;
	x->n.est_out += est_out;
	out = json_object();
	if (n > 1 && (ids = json_array()) != NULL)
		for (j = 0; j < n; j++)
			json_array_append(ids, json_object_get(it[j].rec,
			    "id"));
	json_object_set(out, n > 1 ? "ids" : "id", n > 1 ? ids :
	    json_object_get(it->rec, "id"));
	json_object_set_new(out, "dry_run", json_true());
	if (n > 1)
		json_object_set_new(out, "pack", json_pack("{s:i}", "size", n));
	if (body == NULL || json_object_set_new(out, "request", json_pack(
	    "{s:s, s:s, s:{s:s, s:s}, s:O}", "method", "POST", "url", x->url,
	    "headers", "Authorization", x->c.key ? "Bearer ***" :
	    "Bearer (PERPLEXITY_API_KEY unset)", "Content-Type",
	    "application/json", "body", body)) < 0 ||
	    json_object_set_new(out, "estimate", json_pack("{s:I, s:I}",
	    "input_tokens", (json_int_t)est, "max_output_tokens",
	    (json_int_t)est_out)) < 0)
		dt_error("out of memory");
	else {
		if (n == 1 && json_object_get(it->rec, "text_cut") != NULL)
			json_object_set(out, "text_cut", json_object_get(it->rec,
			    "text_cut"));
		dt_emit(out);
	}
	json_decref(out);
	json_decref(body);
	json_decref(ids);
	free(s);
}
