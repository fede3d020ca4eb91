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

/* A copy of the counts in obj without the zeros. */
static json_t *
named_obj(json_t *obj)
{
	json_t *o = json_object(), *v;
	const char *k;

	json_object_foreach(obj, k, v)
		if (json_integer_value(v) > 0)
			json_object_set(o, k, v);
	return o;
}

static json_t *
rounded(double v, double unit)
{
	return json_real(round(v / unit) * unit);
}

/* An enum field's counts and shares of every value, "other" last. */
static void
enum_json(json_t *o, const struct dt_rpt_field *f)
{
	json_t *counts = json_object(), *shares = json_object();
	uint64_t shown = f->other;
	int j;

	for (j = 0; j < f->nvalues; j++) {
		shown += f->counts[j];
		json_object_set_new(counts, f->values[j],
		    json_integer((json_int_t)f->counts[j]));
	}
	if (f->other > 0)
		json_object_set_new(counts, "other",
		    json_integer((json_int_t)f->other));
	for (j = 0; j < f->nvalues && shown > 0; j++)
		json_object_set_new(shares, f->values[j], rounded(
		    (double)f->counts[j] / (double)shown, 1e-4));
	if (f->other > 0)
		json_object_set_new(shares, "other", rounded(
		    (double)f->other / (double)shown, 1e-4));
	json_object_set_new(o, "counts", counts);
	json_object_set_new(o, "shares", shares);
}

/* A label or topics field: its top values, the total, "other". */
static void
top_json(json_t *o, const struct dt_rpt_field *f, size_t top)
{
	const struct dt_rpt_topk_item *items[1000];
	json_t *arr = json_array();
	uint64_t shown = 0;
	size_t n, i;
	int label = f->kind == DT_RPT_FIELD_LABEL;

	n = dt_rpt_topk_top(&f->topk, items, label ? 5 : top);
	for (i = 0; i < n; i++) {
		json_t *e = json_pack("{sssI}", "value", items[i]->key,
		    "count", (json_int_t)items[i]->count);

		if (!label)
			json_object_set_new(e, "error",
			    json_integer((json_int_t)items[i]->err));
		json_array_append_new(arr, e);
		shown += items[i]->count;
	}
	json_object_set_new(o, "top", arr);
	json_object_set_new(o, "total", json_integer((json_int_t)
	    f->topk.total));
	if (label)
		json_object_set_new(o, "other", json_integer((json_int_t)
		    (f->topk.total > shown ? f->topk.total - shown : 0)));
	json_object_set_new(o, "approximate",
	    json_boolean(f->topk.evictions > 0));
}

static json_t *
field_json(const struct dt_rpt_field *f, size_t top)
{
	static const char *const kinds[] = {"", "enum", "label", "topics",
	    "items", "mean"};
	json_t *o = json_pack("{ss}", "kind", kinds[f->kind]);

	if (f->kind == DT_RPT_FIELD_ENUM)
		enum_json(o, f);
	else if (f->kind == DT_RPT_FIELD_LABEL ||
	    f->kind == DT_RPT_FIELD_TOPICS)
		top_json(o, f, top);
	else if (f->kind == DT_RPT_FIELD_ITEMS)
		json_object_set_new(o, "items",
		    json_integer((json_int_t)f->items));
	else
		json_object_set_new(o, "mean", f->present ? rounded(f->sum /
		    (double)f->present, 1e-4) : json_null());
	json_object_set_new(o, "records", json_integer((json_int_t)f->present));
	return o;
}

/* The stages; "missing" only where it is true. */
static json_t *
stages_json(const struct dt_rpt_tally *t)
{
	json_t *arr = json_deep_copy(t->stages), *s;
	size_t i;

	json_array_foreach(arr, i, s)
		if (!json_is_true(json_object_get(s, "missing")))
			json_object_del(s, "missing");
	return arr;
}

static json_t *
latency_json(const struct dt_rpt_hist *h)
{
	if (h->n == 0)
		return json_pack("{sIsnsnsn}", "count", (json_int_t)0, "p50",
		    "p95", "max");
	return json_pack("{sIsIsIsI}", "count", (json_int_t)h->n, "p50",
	    (json_int_t)dt_rpt_hist_quantile(h, 0.50), "p95",
	    (json_int_t)dt_rpt_hist_quantile(h, 0.95), "max",
	    (json_int_t)h->max);
}

/*
 * The run's state from the tally: "ok", "partial" or "failed", and the
 * exit status the records and stages call for.
 */
static const char *
tally_state(const struct dt_rpt_tally *t, int *status)
{
	int failed = 0, partial = 0, st = DT_EXIT_OK, s_st, intr;
	json_t *s;
	size_t i;

	json_array_foreach(t->stages, i, s) {
		s_st = (int)json_integer_value(json_object_get(s, "status"));
		intr = json_is_true(json_object_get(s, "interrupted"));
		st = dt_exit_worse(st, s_st);
		if (!intr && s_st != DT_EXIT_OK && s_st != DT_EXIT_PARTIAL)
			failed = 1;
		else if (intr || s_st == DT_EXIT_PARTIAL)
			partial = 1;
	}
	if (t->failed > 0) {
		st = dt_exit_worse(st, DT_EXIT_PARTIAL);
		partial = 1;
	}
	if (t->bad_lines > 0) {
		st = dt_exit_worse(st, DT_EXIT_DATAERR);
		partial = 1;
	}
	*status = st;
	return failed ? "failed" : partial ? "partial" : "ok";
}

json_t *
dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s)
{
	json_t *o, *fields = json_object();
	int status, i;
	const char *state = tally_state(t, &status);

	o = json_pack("{ss?sssiss?ss?sosIsIsIso}", "run_id", run_id, "state",
	    state, "exit_code", status, "started_at", started, "finished_at",
	    finished, "duration_s", duration_s >= 0 ? rounded(duration_s,
	    1e-3) : json_null(), "records", (json_int_t)t->records, "failed",
	    (json_int_t)t->failed, "bad_lines", (json_int_t)t->bad_lines,
	    "by_status", named_obj(t->by_status));
	if (o == NULL)
		return NULL;
	/* Only a run that reused analyses says how many. */
	if (t->reused > 0)
		json_object_set_new(o, "reused",
		    json_integer((json_int_t)t->reused));
	for (i = 0; i < t->nfields; i++)
		json_object_set_new(fields, t->fields[i].name,
		    field_json(&t->fields[i], t->top));
	json_object_update_new(o, json_pack("{sos{sIsIsI}sosos{sIso}so}",
	    "by_error", named_obj(t->by_error), "tokens", "prompt",
	    (json_int_t)t->prompt_tokens, "completion",
	    (json_int_t)t->completion_tokens, "total",
	    (json_int_t)t->total_tokens, "cost_usd", t->with_cost ?
	    rounded(t->cost, 1e-6) : json_null(), "latency_ms",
	    latency_json(&t->latency), "analysis", "records",
	    (json_int_t)t->analyzed, "fields", fields, "stages",
	    stages_json(t)));
	if (t->mixed_runs)
		json_object_set_new(o, "mixed_run_ids", json_true());
	return o;
}

json_t *
dt_rpt_shard_json(const struct dt_rpt_tally *t)
{
	const struct dt_rpt_topk_item **items;
	json_t *b = json_array(), *fields = json_object(), *c;
	size_t i, n;
	int k;

	for (i = 0; i < DT_RPT_HIST_BUCKETS; i++)
		if (t->latency.count[i] > 0)
			json_array_append_new(b, json_pack("[II]",
			    (json_int_t)i, (json_int_t)t->latency.count[i]));
	for (k = 0; k < t->nfields; k++) {
		const struct dt_rpt_field *f = &t->fields[k];

		if (f->kind == DT_RPT_FIELD_MEAN)
			json_object_set_new(fields, f->name, json_pack("{sf}",
			    "sum", f->sum));
		if (f->kind != DT_RPT_FIELD_LABEL &&
		    f->kind != DT_RPT_FIELD_TOPICS)
			continue;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers */
		items = calloc(f->topk.n + 1, sizeof(*items));
		n = items ? dt_rpt_topk_top(&f->topk, items, f->topk.n) : 0;
		c = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(c, json_pack("[sII]",
			    items[i]->key, (json_int_t)items[i]->count,
			    (json_int_t)items[i]->err));
		free(items);
		json_object_set_new(fields, f->name, json_pack("{sosIsI}",
		    "counters", c, "total", (json_int_t)f->topk.total,
		    "evictions", (json_int_t)f->topk.evictions));
	}
	return json_pack("{s{sIsIso}so}", "latency_hist", "min",
	    (json_int_t)t->latency.min, "max", (json_int_t)t->latency.max,
	    "buckets", b, "fields", fields);
}
