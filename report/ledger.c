/*
 * ledger.c: the run ledger (public.dt_runs), the backlog and the previous
 * run, through Supabase's data API (lib/supabase.h), and the run's
 * metrics pushed to a Prometheus Pushgateway (report.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http.h"
#include "log.h"
#include "report.h"
#include "supabase.h"

/* The previous run: the latest finished run that is not a shard's. */
#define PREVIOUS "dt_runs?select=run_id,started_at,finished_at,status," \
	"exit_code,counts,tokens,cost_usd&finished_at=not.is.null" \
	"&run_id=not.like.*%%2F*&order=finished_at.desc&limit=1"

/*
 * One call to /rest/v1/<path>, the path fmt's %s the URL-encoded run_id
 * (NULL: "").  Returns the body (new), or NULL after a warning.
 */
static json_t *
call(struct dt_supabase *sb, const char *method, const char *fmt,
    const char *run_id, json_t *body, const char *prefer)
{
	char path[1024], *esc = curl_easy_escape(NULL, run_id ? run_id : "",
	    0);
	struct dt_sb_result res;
	json_t *out = NULL;

	snprintf(path, sizeof(path), fmt, esc ? esc : "");
	curl_free(esc);
	if (dt_supabase_call(sb, method, path, body, prefer, 1, &res) ==
	    DT_SB_OK)
		out = res.body != NULL ? json_incref(res.body) : json_null();
	else
		dt_warn("supabase: %s /rest/v1/%.*s: %s", method,
		    (int)strcspn(path, "?"), path, res.message);
	dt_sb_result_clear(&res);
	return out;
}

static json_int_t
int_at(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

void
dt_rpt_db_read(struct dt_supabase *sb, const char *table,
    const char *id_column, json_t *s)
{
	const char *run_id = json_string_value(json_object_get(s, "run_id"));
	json_t *args = json_pack("{ssss}", "p_source_table", table,
	    "p_id_column", id_column), *r, *prev, *delta, *cost;

	r = call(sb, "POST", "rpc/dt_backlog", NULL, args, NULL);
	json_decref(args);
	prev = json_is_array(r) ? json_array_get(r, 0) : r;
	if (json_is_object(prev))
		json_object_set(s, "backlog", prev);
	else if (r != NULL)
		dt_error("supabase: rpc/dt_backlog: expected an object");
	json_decref(r);

	r = call(sb, "GET", run_id ? PREVIOUS "&run_id=neq.%s" : PREVIOUS
	    "%s", run_id, NULL, NULL);
	if ((prev = json_array_get(r, 0)) != NULL) {
		delta = json_pack("{sIsIsI}", "records", int_at(s, "records") -
		    int_at(json_object_get(prev, "counts"), "records"),
		    "failed", int_at(s, "failed") - int_at(json_object_get(
		    prev, "counts"), "failed"), "tokens", int_at(
		    json_object_get(s, "tokens"), "total") - (json_int_t)
		    json_number_value(json_object_get(prev, "tokens")));
		if (json_is_number(cost = json_object_get(s, "cost_usd")))
			json_object_set_new(delta, "cost_usd", json_real(
			    json_number_value(cost) - json_number_value(
			    json_object_get(prev, "cost_usd"))));
		json_object_set_new(s, "previous", json_pack("{sO?sO?so}",
		    "run_id", json_object_get(prev, "run_id"), "finished_at",
		    json_object_get(prev, "finished_at"), "delta", delta));
	}
	json_decref(r);
}

int
dt_rpt_db_upsert(struct dt_supabase *sb, json_t *s, const char *run_id)
{
	json_t *row = json_pack("{sssOsOsOsOs{sOsOsOsOsO}sOsOsO}", "run_id",
	    run_id, "started_at", json_object_get(s, "started_at"),
	    "finished_at", json_object_get(s, "finished_at"), "status",
	    json_object_get(s, "state"), "exit_code", json_object_get(s,
	    "exit_code"), "counts", "records", json_object_get(s, "records"),
	    "failed", json_object_get(s, "failed"), "bad_lines",
	    json_object_get(s, "bad_lines"), "by_status", json_object_get(s,
	    "by_status"), "by_error", json_object_get(s, "by_error"),
	    "tokens", json_object_get(json_object_get(s, "tokens"), "total"),
	    "cost_usd", json_object_get(s, "cost_usd"), "summary", s);
	json_t *r = row ? call(sb, "POST", "dt_runs?on_conflict=run_id", NULL,
	    row, "resolution=merge-duplicates,return=minimal") : NULL;
	int rc = r != NULL ? 0 : -1;

	json_decref(row);
	json_decref(r);
	return rc;
}

json_t *
dt_rpt_db_merge_shards(struct dt_supabase *sb, const char *run_id,
    long long n, long long wait_ms, const char *stop_file,
    long long drain_s, struct dt_rpt_tally *t)
{
	long long now = dt_now_ms(), end = now + wait_ms, delay = 250, k;
	json_t *merged = json_array(), *missing = json_array(), *arr, *row;
	struct dt_buf b = {0};
	char done[1000] = {0}, *e;      /* done[k]: 1 merged, 2 not mergeable */
	int found = 0, stopped = 0, said = 0;
	size_t i, len = strlen(run_id);
	const char *id;

	for (;;) {
		arr = call(sb, "GET", "dt_runs?select=run_id,finished_at,"
		    "summary&finished_at=not.is.null&run_id=like.%s%%2F*",
		    run_id, NULL, NULL);
		json_array_foreach(arr, i, row) {
			id = json_string_value(json_object_get(row, "run_id"));
			if (id == NULL || strncmp(id, run_id, len) != 0 ||
			    id[len] != '/' ||
			    !isdigit((unsigned char)id[len + 1]) ||
			    (k = strtoll(id + len + 1, &e, 10)) >= n ||
			    *e != '\0' || done[k])
				continue;
			done[k] = dt_rpt_tally_merge(t, json_object_get(row,
			    "summary")) == 0 ? 1 : 2;
			found++;
		}
		json_decref(arr);
		if (found >= n)
			break;
		now = dt_now_ms();
		if (!stopped && stop_file != NULL &&
		    access(stop_file, F_OK) == 0) {
			stopped = 1;
			if (end > now + drain_s * 1000)
				end = now + drain_s * 1000;
			dt_info("stopping: waiting at most %lld s more for the "
			    "shards", drain_s);
		}
		if (now >= end)
			break;
		if (!said++)
			dt_info("%d of %lld shards finished; waiting up to "
			    "%.0f s for the others", found, n,
			    (double)(end - now) / 1000);
		dt_sleep_ms((long)(delay < end - now ? delay : end - now));
		delay = delay < 2500 ? delay * 2 : 5000;
	}
	for (k = 0; k < n; k++) {
		json_array_append_new(done[k] == 1 ? merged : missing,
		    json_integer(k));
		if (done[k] != 1)
			dt_buf_printf(&b, "%s%lld", b.len > 0 ? ", " : "", k);
	}
	if (b.len > 0)
		dt_warn("run %s: no finished ledger row from shard%s %s; the "
		    "report is partial", run_id, json_array_size(missing) > 1 ?
		    "s" : "", b.p);
	dt_buf_free(&b);
	return json_pack("{sIsoso}", "of", (json_int_t)n, "merged", merged,
	    "missing", missing);
}

/*
 * The gauges: the summary's number at key (and sub) / div, or with a
 * label one sample per member and 0 per known value it lacks; optional:
 * only when there is one.
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

/* The metrics of the summary s, with "success", "finished", "succeeded". */
static void
metrics_text(struct dt_buf *b, json_t *s)
{
	const char *const *known, *k, *c;
	json_t *v, *all, *m;
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
		if (gauges[i].label == NULL)
			dt_buf_printf(b, "%s %.17g\n", gauges[i].name,
			    json_number_value(v) / gauges[i].div);
		all = json_object();
		for (known = gauges[i].known; known && *known; known++)
			json_object_set_new(all, *known, json_integer(0));
		json_object_update(all, gauges[i].label ? v : NULL);
		json_object_foreach(all, k, m) {
			dt_buf_printf(b, "%s{%s=\"", gauges[i].name,
			    gauges[i].label);
			for (c = k; *c != '\0'; c++)
				dt_buf_printf(b, strchr("\\\"\n", *c) ? "\\%c" :
				    "%c", *c == '\n' ? 'n' : *c);
			dt_buf_printf(b, "\"} %.17g\n", json_number_value(m));
		}
		json_decref(all);
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
