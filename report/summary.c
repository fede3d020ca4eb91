/*
 * summary.c: the run summary from the tally (tally.h; its keys are in
 * docs/report.md).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exit.h"
#include "tally.h"

static json_t *
rounded(double v, double unit)
{
	return json_real(round(v / unit) * unit);
}

struct entry {
	const char *value;
	json_int_t count;
};

/* Largest count first; equal counts by value. */
static int
entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->value, y->value);
}

/* The k most common values of counts as [{"value", "count"}]. */
static json_t *
top_values(json_t *counts, size_t k, json_int_t *shown)
{
	struct entry *all = calloc(json_object_size(counts) + 1,
	    sizeof(*all));
	json_t *arr = json_array(), *v;
	const char *value;
	size_t n = 0, i;

	json_object_foreach(all != NULL ? counts : NULL, value, v) {
		all[n].value = value;
		all[n++].count = json_integer_value(v);
	}
	qsort(all, n, sizeof(*all), entry_cmp);
	for (i = 0; i < n && i < k; i++) {
		json_array_append_new(arr, json_pack("{sssI}", "value",
		    all[i].value, "count", all[i].count));
		*shown += all[i].count;
	}
	free(all);
	return arr;
}

/* Makes f, a copy of a field of the tally, the summary's (records last). */
static void
field_json(json_t *f, size_t top)
{
	const char *kind = json_string_value(json_object_get(f, "kind")), *k;
	json_t *counts = json_object_get(f, "counts"), *v, *shares;
	json_t *recs = json_incref(json_object_get(f, "records"));
	json_int_t total = 0, shown = 0;

	json_object_foreach(counts, k, v)
		total += json_integer_value(v);
	if (strcmp(kind, "enum") == 0) {
		shares = json_object();
		json_object_foreach(total > 0 ? counts : NULL, k, v)
			json_object_set_new(shares, k, rounded((double)
			    json_integer_value(v) / (double)total, 1e-4));
		json_object_set_new(f, "shares", shares);
	} else if (counts != NULL) {
		json_object_set_new(f, "top", top_values(counts,
		    strcmp(kind, "label") == 0 ? 5 : top, &shown));
		json_object_set_new(f, "total", json_integer(total));
		if (strcmp(kind, "label") == 0)
			json_object_set_new(f, "other",
			    json_integer(total - shown));
		json_object_del(f, "counts");
	} else if (strcmp(kind, "mean") == 0) {
		json_object_set_new(f, "mean", json_integer_value(recs) > 0 ?
		    rounded(json_number_value(json_object_get(f, "sum")) /
		    (double)json_integer_value(recs), 1e-4) : json_null());
		json_object_del(f, "sum");
	}
	json_object_del(f, "records");
	json_object_set_new(f, "records", recs);
}

static int
int_cmp(const void *a, const void *b)
{
	json_int_t x = *(const json_int_t *)a, y = *(const json_int_t *)b;

	return x < y ? -1 : x > y;
}

/* The count, nearest-rank p50 and p95, and max of the latencies. */
static json_t *
latency_json(json_t *lat)
{
	size_t n = json_array_size(lat), i;
	json_int_t *v = calloc(n + 1, sizeof(*v));
	json_t *o = json_pack("{sIsnsnsn}", "count", (json_int_t)n, "p50",
	    "p95", "max");

	if (v != NULL && n > 0) {
		for (i = 0; i < n; i++)
			v[i] = json_integer_value(json_array_get(lat, i));
		qsort(v, n, sizeof(*v), int_cmp);
		json_object_update_new(o, json_pack("{sIsIsI}", "p50",
		    v[(size_t)ceil(0.50 * (double)n) - 1], "p95",
		    v[(size_t)ceil(0.95 * (double)n) - 1], "max", v[n - 1]));
	}
	free(v);
	return o;
}

/* The run's state ("ok", "partial", "failed") and its exit status. */
static const char *
tally_state(const struct dt_rpt_tally *t, int *status)
{
	json_int_t failed_recs = json_integer_value(json_object_get(t->n,
	    "failed"));
	int failed = 0, partial = failed_recs > 0 || t->bad_lines > 0;
	int st, intr;
	const char *name;
	json_t *s;

	*status = DT_EXIT_OK;
	json_object_foreach(t->stages, name, s) {
		st = (int)json_integer_value(json_object_get(s, "status"));
		intr = json_is_true(json_object_get(s, "interrupted"));
		*status = dt_exit_worse(*status, st);
		failed |= !intr && st != DT_EXIT_OK && st != DT_EXIT_PARTIAL;
		partial |= intr || st == DT_EXIT_PARTIAL;
	}
	if (failed_recs > 0)
		*status = dt_exit_worse(*status, DT_EXIT_PARTIAL);
	if (t->bad_lines > 0)
		*status = dt_exit_worse(*status, DT_EXIT_DATAERR);
	return failed ? "failed" : partial ? "partial" : "ok";
}

json_t *
dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s)
{
	json_t *n = json_deep_copy(t->n), *stages = json_array(), *f, *o;
	const char *name;
	int status;
	const char *state = tally_state(t, &status);

	json_object_foreach(json_object_get(n, "fields"), name, f)
		field_json(f, t->top);
	json_object_foreach(t->stages, name, f)
		json_array_append_new(stages, json_deep_copy(f));
	o = json_pack("{ss?sssiss?ss?sosOsOsIsO}", "run_id", run_id, "state",
	    state, "exit_code", status, "started_at", started, "finished_at",
	    finished, "duration_s", duration_s >= 0 ? rounded(duration_s,
	    1e-3) : json_null(), "records", json_object_get(n, "records"),
	    "failed", json_object_get(n, "failed"), "bad_lines",
	    (json_int_t)t->bad_lines, "by_status", json_object_get(n,
	    "by_status"));
	/* Only a run that reused analyses says how many. */
	if (json_integer_value(json_object_get(n, "reused")) > 0)
		json_object_set(o, "reused", json_object_get(n, "reused"));
	json_object_update_new(o, json_pack("{sOsOsosos{sOsO}so}",
	    "by_error", json_object_get(n, "by_error"), "tokens",
	    json_object_get(n, "tokens"), "cost_usd", json_integer_value(
	    json_object_get(n, "with_cost")) ? rounded(json_number_value(
	    json_object_get(n, "cost")), 1e-6) : json_null(), "latency_ms",
	    latency_json(json_object_get(n, "latency_ms")), "analysis",
	    "records", json_object_get(n, "analyzed"), "fields",
	    json_object_get(n, "fields"), "stages", stages));
	if (t->mixed_runs)
		json_object_set_new(o, "mixed_run_ids", json_true());
	json_decref(n);
	return o;
}

json_t *
dt_rpt_shard_json(const struct dt_rpt_tally *t)
{
	return json_deep_copy(t->n);
}
