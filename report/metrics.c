/*
 * metrics.c: the run's metrics for a Prometheus Pushgateway.
 *
 * Every metric is a gauge describing the last run.  They are pushed with
 * POST, which replaces the pushed metric names in the job's group and
 * leaves the others: a failed run does not push
 * dt_run_last_success_timestamp_seconds, so the last success time of an
 * earlier run stays for alerts such as
 *     time() - dt_run_last_success_timestamp_seconds > 3 * 7200
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "text.h"

static const char *const statuses[] = {"stored", "released", "failed",
    "skipped"};
static const char *const kinds[] = {"timeout", "rate_limited",
    "unavailable", "config", "http_4xx", "invalid_output", "too_large",
    "bad_record", "budget"};

static void
family(struct dt_buf *b, const char *name, const char *help)
{
	dt_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help,
	    name);
}

/* A label value with \, " and newline escaped as the format wants. */
static void
label(struct dt_buf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			dt_buf_puts(b, "\\\\");
		else if (*v == '"')
			dt_buf_puts(b, "\\\"");
		else if (*v == '\n')
			dt_buf_puts(b, "\\n");
		else
			dt_buf_add(b, v, 1);
	}
}

/* A sample with one label. */
static void
sample(struct dt_buf *b, const char *name, const char *lname,
    const char *lvalue, double v)
{
	dt_buf_printf(b, "%s{%s=\"", name, lname);
	label(b, lvalue);
	dt_buf_printf(b, "\"} %.17g\n", v);
}

/* A sample without labels. */
static void
value(struct dt_buf *b, const char *name, double v)
{
	dt_buf_printf(b, "%s %.17g\n", name, v);
}

/* Samples for every key of obj, and 0 for each of the known keys missing. */
static void
by_label(struct dt_buf *b, const char *name, const char *lname,
    json_t *obj, const char *const *known, size_t nknown)
{
	const char *k;
	json_t *v;
	size_t i;

	for (i = 0; i < nknown; i++)
		if (json_object_get(obj, known[i]) == NULL)
			sample(b, name, lname, known[i], 0);
	json_object_foreach(obj, k, v) {
		sample(b, name, lname, k, json_number_value(v));
	}
}

void
dt_rpt_metrics_text(struct dt_buf *b, json_t *s, int success,
    long long now)
{
	json_t *v, *lat, *backlog;

	family(b, "dt_run_records", "Records the last run handled, by status.");
	by_label(b, "dt_run_records", "status", json_object_get(s, "by_status"),
	    statuses, sizeof(statuses) / sizeof(statuses[0]));
	family(b, "dt_run_errors", "Records of the last run with an error, by "
	    "kind.");
	by_label(b, "dt_run_errors", "kind", json_object_get(s, "by_error"),
	    kinds, sizeof(kinds) / sizeof(kinds[0]));
	family(b, "dt_run_failed_records", "Records of the last run that "
	    "failed.");
	value(b, "dt_run_failed_records",
	    json_number_value(json_object_get(s, "failed")));
	family(b, "dt_run_reused_records", "Records of the last run stored "
	    "with the analysis of the same text made before, at no cost.");
	value(b, "dt_run_reused_records",
	    json_number_value(json_object_get(s, "reused")));
	if (json_is_number(v = json_object_get(s, "duration_s"))) {
		family(b, "dt_run_duration_seconds", "How long the last run "
		    "took.");
		value(b, "dt_run_duration_seconds", json_number_value(v));
	}
	family(b, "dt_run_tokens", "Tokens the last run used.");
	value(b, "dt_run_tokens", json_number_value(
	    json_object_get(json_object_get(s, "tokens"), "total")));
	family(b, "dt_run_cost_usd", "What the API charged for the last run, "
	    "in US dollars.");
	value(b, "dt_run_cost_usd",
	    json_number_value(json_object_get(s, "cost_usd")));
	lat = json_object_get(s, "latency_ms");
	if (json_integer_value(json_object_get(lat, "count")) > 0) {
		family(b, "dt_run_latency_p50_seconds", "Median API call "
		    "latency in the last run.");
		value(b, "dt_run_latency_p50_seconds",
		    json_number_value(json_object_get(lat, "p50")) / 1000);
		family(b, "dt_run_latency_p95_seconds", "95th percentile of "
		    "API call latency in the last run.");
		value(b, "dt_run_latency_p95_seconds",
		    json_number_value(json_object_get(lat, "p95")) / 1000);
		family(b, "dt_run_latency_max_seconds", "Slowest API call in "
		    "the last run.");
		value(b, "dt_run_latency_max_seconds",
		    json_number_value(json_object_get(lat, "max")) / 1000);
	}
	if (json_is_object(backlog = json_object_get(s, "backlog"))) {
		static const char *const states[] = {"unclaimed", "leased",
		    "failed", "done"};
		size_t i;

		family(b, "dt_backlog_rows", "Source rows by state after the "
		    "last run.");
		for (i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			if (json_is_number(v = json_object_get(backlog,
			    states[i])))
				sample(b, "dt_backlog_rows", "state", states[i],
				    json_number_value(v));
	}
	family(b, "dt_run_exit_code", "Exit status of the last run.");
	value(b, "dt_run_exit_code",
	    json_number_value(json_object_get(s, "exit_code")));
	family(b, "dt_run_success", "1 when the last run succeeded (exit "
	    "status 0 or 1), else 0.");
	value(b, "dt_run_success", success);
	family(b, "dt_run_last_finish_timestamp_seconds", "When the last run "
	    "finished, in seconds since the epoch.");
	value(b, "dt_run_last_finish_timestamp_seconds", (double)now);
	if (success) {
		family(b, "dt_run_last_success_timestamp_seconds", "When a run "
		    "last succeeded, in seconds since the epoch.");
		value(b, "dt_run_last_success_timestamp_seconds",
		    (double)now);
	}
}

int
dt_rpt_metrics_push(struct dt_http *h, const char *url, const char *job,
    const char *text, long timeout_ms)
{
	static const char *const headers[] = {
	    "Content-Type: text/plain; version=0.0.4", NULL};
	struct dt_http_policy pol = {
		.max_tries = 3, .base_ms = 500, .cap_ms = 5000,
		.max_total_ms = 20000, .max_response = 1 << 20,
	};
	struct dt_http_resp resp = {0};
	struct dt_http_req req = {0};
	char full[2048], safe[2048];
	int rc = 0;

	snprintf(full, sizeof(full), "%s/metrics/job/%s", url, job);
	req.method = "POST";
	req.url = full;
	req.headers = headers;
	req.body = text;
	req.body_len = strlen(text);
	req.timeout_ms = timeout_ms;
	dt_http_send(h, &req, &pol, &resp);
	if (resp.result != DT_HTTP_OK) {
		dt_warn("pushgateway: POST %s: %s",
		    dt_http_safe_url(full, safe, sizeof(safe)), resp.error);
		rc = -1;
	} else if (resp.status != 200 && resp.status != 202) {
		char body[300];

		dt_rpt_clip(resp.body, 200, body, sizeof(body));
		dt_warn("pushgateway: POST %s: HTTP %ld: %s",
		    dt_http_safe_url(full, safe, sizeof(safe)), resp.status,
		    body);
		rc = -1;
	}
	dt_http_resp_clear(&resp);
	return rc;
}
