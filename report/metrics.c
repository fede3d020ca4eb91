/*
 * metrics.c: the run's metrics for a Prometheus Pushgateway (ledger.h).
 *
 * Every metric is a gauge describing the last run.  POST replaces only
 * the metric names it pushes, so a failed run, which does not push
 * dt_run_last_success_timestamp_seconds, leaves an earlier run's.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "http.h"
#include "ledger.h"
#include "log.h"
#include "text.h"

/* A gauge's HELP and TYPE lines. */
static void
family(struct dt_buf *b, const char *name, const char *help)
{
	dt_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help,
	    name);
}

/* A sample; lname NULL: without a label. */
static void
sample(struct dt_buf *b, const char *name, const char *lname,
    const char *lvalue, double v)
{
	dt_buf_puts(b, name);
	if (lname != NULL) {
		dt_buf_printf(b, "{%s=\"", lname);
		for (; *lvalue != '\0'; lvalue++) {
			if (strchr("\\\"\n", *lvalue) == NULL)
				dt_buf_add(b, lvalue, 1);
			else
				dt_buf_printf(b, "\\%c", *lvalue == '\n' ? 'n' :
				    *lvalue);
		}
		dt_buf_puts(b, "\"}");
	}
	dt_buf_printf(b, " %.17g\n", v);
}

/* One sample per key of obj, and 0 for each known key it lacks. */
static void
by_label(struct dt_buf *b, const char *name, const char *help,
    const char *lname, json_t *obj, const char *const *known)
{
	const char *k;
	json_t *v;

	family(b, name, help);
	for (; *known != NULL; known++)
		if (json_object_get(obj, *known) == NULL)
			sample(b, name, lname, *known, 0);
	json_object_foreach(obj, k, v)
		sample(b, name, lname, k, json_number_value(v));
}

/* The gauges that are one number of the summary, divided by div. */
static const struct {
	const char *name, *help, *key, *sub;
	double div;
	int optional;           /* only when the summary has a number */
} gauges[] = {
	{"dt_run_failed_records", "Records of the last run that failed.",
	    "failed", NULL, 1, 0},
	{"dt_run_reused_records", "Records of the last run stored with the "
	    "analysis of the same text made before, at no cost.", "reused",
	    NULL, 1, 0},
	{"dt_run_duration_seconds", "How long the last run took.",
	    "duration_s", NULL, 1, 1},
	{"dt_run_tokens", "Tokens the last run used.", "tokens", "total", 1,
	    0},
	{"dt_run_cost_usd", "What the API charged for the last run, in US "
	    "dollars.", "cost_usd", NULL, 1, 0},
	{"dt_run_latency_p50_seconds", "Median API call latency in the last "
	    "run.", "latency_ms", "p50", 1000, 1},
	{"dt_run_latency_p95_seconds", "95th percentile of API call latency "
	    "in the last run.", "latency_ms", "p95", 1000, 1},
	{"dt_run_latency_max_seconds", "Slowest API call in the last run.",
	    "latency_ms", "max", 1000, 1},
};

/* The metrics in the text format; the last success only when success. */
static void
metrics_text(struct dt_buf *b, json_t *s, int success, long long now)
{
	static const char *const statuses[] = {"stored", "released",
	    "failed", "skipped", NULL};
	static const char *const kinds[] = {"timeout", "rate_limited",
	    "unavailable", "config", "http_4xx", "invalid_output",
	    "too_large", "bad_record", "budget", NULL};
	static const char *const states[] = {"unclaimed", "leased", "failed",
	    "done"};
	json_t *v, *backlog = json_object_get(s, "backlog");
	size_t i;

	by_label(b, "dt_run_records", "Records the last run handled, by "
	    "status.", "status", json_object_get(s, "by_status"), statuses);
	by_label(b, "dt_run_errors", "Records of the last run with an error, "
	    "by kind.", "kind", json_object_get(s, "by_error"), kinds);
	for (i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
		v = json_object_get(s, gauges[i].key);
		if (gauges[i].sub != NULL)
			v = json_object_get(v, gauges[i].sub);
		if (gauges[i].optional && !json_is_number(v))
			continue;
		family(b, gauges[i].name, gauges[i].help);
		sample(b, gauges[i].name, NULL, NULL, json_number_value(v) /
		    gauges[i].div);
	}
	if (json_is_object(backlog)) {
		family(b, "dt_backlog_rows", "Source rows by state after the "
		    "last run.");
		for (i = 0; i < 4; i++)
			if (json_is_number(v = json_object_get(backlog,
			    states[i])))
				sample(b, "dt_backlog_rows", "state", states[i],
				    json_number_value(v));
	}
	family(b, "dt_run_exit_code", "Exit status of the last run.");
	sample(b, "dt_run_exit_code", NULL, NULL,
	    json_number_value(json_object_get(s, "exit_code")));
	family(b, "dt_run_success", "1 when the last run succeeded (exit "
	    "status 0 or 1), else 0.");
	sample(b, "dt_run_success", NULL, NULL, success);
	family(b, "dt_run_last_finish_timestamp_seconds", "When the last run "
	    "finished, in seconds since the epoch.");
	sample(b, "dt_run_last_finish_timestamp_seconds", NULL, NULL,
	    (double)now);
	if (!success)
		return;
	family(b, "dt_run_last_success_timestamp_seconds", "When a run last "
	    "succeeded, in seconds since the epoch.");
	sample(b, "dt_run_last_success_timestamp_seconds", NULL, NULL,
	    (double)now);
}

int
dt_rpt_metrics_push(struct dt_http *h, const char *url, const char *job,
    json_t *summary, int success, long long now, long timeout_ms)
{
	static const char *const headers[] = {
	    "Content-Type: text/plain; version=0.0.4", NULL};
	struct dt_http_policy pol = {
		.max_tries = 3, .base_ms = 500, .cap_ms = 5000,
		.max_total_ms = 20000, .max_response = 1 << 20,
	};
	struct dt_http_resp resp = {0};
	struct dt_http_req req = {.method = "POST", .headers = headers,
	    .timeout_ms = timeout_ms};
	struct dt_buf text = {0};
	char full[2048], safe[2048], body[300];
	int ok;

	metrics_text(&text, summary, success, now);
	if (text.oom) {
		dt_buf_free(&text);
		return -1;
	}
	snprintf(full, sizeof(full), "%s/metrics/job/%s", url, job);
	req.url = full;
	req.body = text.p;
	req.body_len = text.len;
	dt_http_send(h, &req, &pol, &resp);
	dt_buf_free(&text);
	ok = resp.result == DT_HTTP_OK && (resp.status == 200 ||
	    resp.status == 202);
	dt_http_safe_url(full, safe, sizeof(safe));
	if (resp.result != DT_HTTP_OK)
		dt_warn("pushgateway: POST %s: %s", safe, resp.error);
	else if (!ok)
		dt_warn("pushgateway: POST %s: HTTP %ld: %s", safe, resp.status,
		    dt_rpt_clip(resp.body, 200, body, sizeof(body)));
	dt_http_resp_clear(&resp);
	return ok ? 0 : -1;
}
