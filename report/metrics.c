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

/*
 * The gauges: the number at key (and sub) of the summary, divided by
 * div; with a label, one sample per member of the object at key, and 0
 * for each known value it lacks.  optional: only when there is one.
 */
static const struct {
	const char *name, *help, *key, *sub, *label;
	const char *const *known;
	double div;
	int optional;
} gauges[] = {
	{"dt_run_records", "Records the last run handled, by status.",
	    "by_status", NULL, "status", (const char *const[]){"stored",
	    "released", "failed", "skipped", NULL}, 1, 0},
	{"dt_run_errors", "Records of the last run with an error, by kind.",
	    "by_error", NULL, "kind", (const char *const[]){"timeout",
	    "rate_limited", "unavailable", "config", "http_4xx",
	    "invalid_output", "too_large", "bad_record", "budget", NULL}, 1,
	    0},
	{"dt_run_failed_records", "Records of the last run that failed.",
	    "failed", NULL, NULL, NULL, 1, 0},
	{"dt_run_reused_records", "Records of the last run stored with the "
	    "analysis of the same text made before, at no cost.", "reused",
	    NULL, NULL, NULL, 1, 0},
	{"dt_run_duration_seconds", "How long the last run took.",
	    "duration_s", NULL, NULL, NULL, 1, 1},
	{"dt_run_tokens", "Tokens the last run used.", "tokens", "total",
	    NULL, NULL, 1, 0},
	{"dt_run_cost_usd", "What the API charged for the last run, in US "
	    "dollars.", "cost_usd", NULL, NULL, NULL, 1, 0},
	{"dt_run_latency_p50_seconds", "Median API call latency in the last "
	    "run.", "latency_ms", "p50", NULL, NULL, 1000, 1},
	{"dt_run_latency_p95_seconds", "95th percentile of API call latency "
	    "in the last run.", "latency_ms", "p95", NULL, NULL, 1000, 1},
	{"dt_run_latency_max_seconds", "Slowest API call in the last run.",
	    "latency_ms", "max", NULL, NULL, 1000, 1},
	{"dt_backlog_rows", "Source rows by state after the last run.",
	    "backlog", NULL, "state", (const char *const[]){"unclaimed",
	    "leased", "failed", "done", NULL}, 1, 1},
	{"dt_run_exit_code", "Exit status of the last run.", "exit_code",
	    NULL, NULL, NULL, 1, 0},
	{"dt_run_success", "1 when the last run succeeded (exit status 0 or "
	    "1), else 0.", "success", NULL, NULL, NULL, 1, 0},
	{"dt_run_last_finish_timestamp_seconds", "When the last run "
	    "finished, in seconds since the epoch.", "finished", NULL, NULL,
	    NULL, 1, 0},
	{"dt_run_last_success_timestamp_seconds", "When a run last "
	    "succeeded, in seconds since the epoch.", "succeeded", NULL, NULL,
	    NULL, 1, 1},
};

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

/* The metrics of the summary s, with "success", "finished", "succeeded". */
static void
metrics_text(struct dt_buf *b, json_t *s)
{
	const char *const *known, *k;
	json_t *v, *m;
	size_t i;

	for (i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
		v = json_object_get(s, gauges[i].key);
		if (gauges[i].sub != NULL)
			v = json_object_get(v, gauges[i].sub);
		if (gauges[i].optional && !json_is_number(v) &&
		    !json_is_object(v))
			continue;
		dt_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n",
		    gauges[i].name, gauges[i].help, gauges[i].name);
		if (gauges[i].label == NULL) {
			sample(b, gauges[i].name, NULL, NULL,
			    json_number_value(v) / gauges[i].div);
			continue;
		}
		for (known = gauges[i].known; *known != NULL; known++)
			if (json_object_get(v, *known) == NULL)
				sample(b, gauges[i].name, gauges[i].label,
				    *known, 0);
		json_object_foreach(v, k, m)
			sample(b, gauges[i].name, gauges[i].label, k,
			    json_number_value(m));
	}
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
	json_t *s = json_copy(summary);
	char full[2048], safe[2048], body[300];
	int ok;

	if (s == NULL)
		return -1;
	json_object_update_new(s, json_pack("{sisIso*}", "success", success,
	    "finished", (json_int_t)now, "succeeded", success ?
	    json_integer(now) : NULL));
	metrics_text(&text, s);
	json_decref(s);
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
