/*
 * summary.c: the run summary from the tally (summary.h; its keys are in
 * docs/report.md).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "summary.h"

static json_t *
named_obj(const struct dt_rpt_named *tab, int n)
{
	json_t *o = json_object();
	int i;

	for (i = 0; o != NULL && i < n; i++)
		if (tab[i].n > 0)
			json_object_set_new(o, tab[i].name,
			    json_integer((json_int_t)tab[i].n));
	return o;
}

static double
round_to(double v, double unit)
{
	return round(v / unit) * unit;
}

static json_t *
field_json(const struct dt_rpt_field *f, size_t top)
{
	const struct dt_rpt_topk_item *items[1000];
	json_t *o = json_object(), *counts, *shares, *arr;
	uint64_t shown = 0;
	size_t n, i;
	int j;

	if (o == NULL)
		return NULL;
	switch (f->kind) {
	case DT_RPT_FIELD_ENUM:
		json_object_set_new(o, "kind", json_string("enum"));
		counts = json_object();
		shares = json_object();
		for (j = 0; j < f->nvalues; j++) {
			shown += f->counts[j];
			json_object_set_new(counts, f->values[j],
			    json_integer((json_int_t)f->counts[j]));
		}
		if (f->other > 0)
			json_object_set_new(counts, "other",
			    json_integer((json_int_t)f->other));
		shown += f->other;
		for (j = 0; j < f->nvalues && shown > 0; j++)
			json_object_set_new(shares, f->values[j], json_real(
			    round_to((double)f->counts[j] / (double)shown,
			    1e-4)));
		if (f->other > 0)
			json_object_set_new(shares, "other", json_real(
			    round_to((double)f->other / (double)shown, 1e-4)));
		json_object_set_new(o, "counts", counts);
		json_object_set_new(o, "shares", shares);
		break;
	case DT_RPT_FIELD_LABEL:
	case DT_RPT_FIELD_TOPICS:
		json_object_set_new(o, "kind", json_string(
		    f->kind == DT_RPT_FIELD_LABEL ? "label" : "topics"));
		n = dt_rpt_topk_top(&f->topk, items,
		    f->kind == DT_RPT_FIELD_LABEL ? 5 : top);
		arr = json_array();
		for (i = 0; i < n; i++) {
			json_t *e = json_object();

			json_object_set_new(e, "value",
			    json_string(items[i]->key));
			json_object_set_new(e, "count",
			    json_integer((json_int_t)items[i]->count));
			if (f->kind == DT_RPT_FIELD_TOPICS)
				json_object_set_new(e, "error", json_integer(
				    (json_int_t)items[i]->err));
			json_array_append_new(arr, e);
			shown += items[i]->count;
		}
		json_object_set_new(o, "top", arr);
		json_object_set_new(o, "total",
		    json_integer((json_int_t)f->topk.total));
		if (f->kind == DT_RPT_FIELD_LABEL)
			json_object_set_new(o, "other", json_integer(
			    (json_int_t)(f->topk.total > shown ?
			    f->topk.total - shown : 0)));
		json_object_set_new(o, "approximate",
		    json_boolean(f->topk.evictions > 0));
		break;
	case DT_RPT_FIELD_ITEMS:
		json_object_set_new(o, "kind", json_string("items"));
		json_object_set_new(o, "items",
		    json_integer((json_int_t)f->items));
		break;
	case DT_RPT_FIELD_MEAN:
		json_object_set_new(o, "kind", json_string("mean"));
		json_object_set_new(o, "mean", f->present ? json_real(
		    round_to(f->sum / (double)f->present, 1e-4)) :
		    json_null());
		break;
	}
	json_object_set_new(o, "records", json_integer((json_int_t)f->present));
	return o;
}

static json_t *
stages_json(const struct dt_rpt_tally *t)
{
	json_t *arr = json_array();
	int i, j;

	for (i = 0; arr != NULL && i < t->nstages; i++) {
		const struct dt_rpt_stage *s = &t->stages[i];
		json_t *o = json_object(), *msgs = json_array(),
		    *counts = json_object();

		json_object_set_new(o, "stage", json_string(s->name));
		json_object_set_new(o, "status", json_integer(s->status));
		json_object_set_new(o, "interrupted",
		    json_boolean(s->interrupted));
		json_object_set_new(o, "reports", json_integer(s->reports));
		if (s->missing)
			json_object_set_new(o, "missing", json_true());
		for (j = 0; j < s->nmessages; j++)
			json_array_append_new(msgs,
			    json_string(s->messages[j]));
		json_object_set_new(o, "messages", msgs);
		for (j = 0; j < s->ncounts; j++) {
			double v = s->counts[j];

			json_object_set_new(counts, s->count_names[j],
			    v == floor(v) && fabs(v) < 9e15 ?
			    json_integer((json_int_t)v) : json_real(v));
		}
		json_object_set_new(o, "counts", counts);
		json_array_append_new(arr, o);
	}
	return arr;
}

json_t *
dt_rpt_summary(const struct dt_rpt_tally *t, const char *run_id,
    const char *started, const char *finished, double duration_s)
{
	json_t *o = json_object(), *lat, *tok, *an, *fields;
	const char *state;
	int status, i;

	if (o == NULL)
		return NULL;
	state = dt_rpt_tally_state(t, &status);
	json_object_set_new(o, "run_id", run_id ? json_string(run_id) :
	    json_null());
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "exit_code", json_integer(status));
	json_object_set_new(o, "started_at", started ? json_string(started) :
	    json_null());
	json_object_set_new(o, "finished_at", finished ?
	    json_string(finished) : json_null());
	json_object_set_new(o, "duration_s", duration_s >= 0 ?
	    json_real(round_to(duration_s, 1e-3)) : json_null());
	json_object_set_new(o, "records",
	    json_integer((json_int_t)t->records));
	json_object_set_new(o, "failed", json_integer((json_int_t)t->failed));
	json_object_set_new(o, "bad_lines",
	    json_integer((json_int_t)t->bad_lines));
	json_object_set_new(o, "by_status", named_obj(t->status, t->nstatus));
	/* Only a run that reused analyses says how many. */
	if (t->reused > 0)
		json_object_set_new(o, "reused",
		    json_integer((json_int_t)t->reused));
	json_object_set_new(o, "by_error", named_obj(t->kinds, t->nkinds));
	tok = json_object();
	json_object_set_new(tok, "prompt",
	    json_integer((json_int_t)t->prompt_tokens));
	json_object_set_new(tok, "completion",
	    json_integer((json_int_t)t->completion_tokens));
	json_object_set_new(tok, "total",
	    json_integer((json_int_t)t->total_tokens));
	json_object_set_new(o, "tokens", tok);
	json_object_set_new(o, "cost_usd", t->with_cost ?
	    json_real(round_to(t->cost, 1e-6)) : json_null());
	lat = json_object();
	json_object_set_new(lat, "count",
	    json_integer((json_int_t)t->latency.n));
	if (t->latency.n > 0) {
		json_object_set_new(lat, "p50", json_integer((json_int_t)
		    dt_rpt_hist_quantile(&t->latency, 0.50)));
		json_object_set_new(lat, "p95", json_integer((json_int_t)
		    dt_rpt_hist_quantile(&t->latency, 0.95)));
		json_object_set_new(lat, "max",
		    json_integer((json_int_t)t->latency.max));
	} else {
		json_object_set_new(lat, "p50", json_null());
		json_object_set_new(lat, "p95", json_null());
		json_object_set_new(lat, "max", json_null());
	}
	json_object_set_new(o, "latency_ms", lat);
	an = json_object();
	json_object_set_new(an, "records",
	    json_integer((json_int_t)t->analyzed));
	fields = json_object();
	for (i = 0; i < t->nfields; i++)
		json_object_set_new(fields, t->fields[i].name,
		    field_json(&t->fields[i], t->top));
	json_object_set_new(an, "fields", fields);
	json_object_set_new(o, "analysis", an);
	json_object_set_new(o, "stages", stages_json(t));
	if (t->mixed_runs)
		json_object_set_new(o, "mixed_run_ids", json_true());
	return o;
}
