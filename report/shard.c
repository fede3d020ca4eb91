/*
 * shard.c: a shard's tally as JSON, and merging shards (shard.h).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exit.h"
#include "log.h"
#include "shard.h"

json_t *
dt_rpt_shard_json(const struct dt_rpt_tally *t)
{
	const struct dt_rpt_topk_item **items = NULL;
	json_t *o = json_object(), *lat = json_object(), *b = json_array(),
	    *fields = json_object();
	size_t i, n;
	int k;

	for (i = 0; i < DT_RPT_HIST_BUCKETS; i++)
		if (t->latency.count[i] > 0)
			json_array_append_new(b, json_pack("[II]",
			    (json_int_t)i, (json_int_t)t->latency.count[i]));
	json_object_set_new(lat, "min", json_integer((json_int_t)
	    t->latency.min));
	json_object_set_new(lat, "max", json_integer((json_int_t)
	    t->latency.max));
	json_object_set_new(lat, "buckets", b);
	json_object_set_new(o, "latency_hist", lat);
	for (k = 0; k < t->nfields; k++) {
		const struct dt_rpt_field *f = &t->fields[k];
		json_t *fo = json_object(), *c;

		if (f->kind == DT_RPT_FIELD_MEAN)
			json_object_set_new(fo, "sum", json_real(f->sum));
		else if (f->kind == DT_RPT_FIELD_LABEL ||
		    f->kind == DT_RPT_FIELD_TOPICS) {
			free(items);
			/* NOLINTNEXTLINE(bugprone-sizeof-expression): pointers, not structs */
			items = calloc(f->topk.n + 1, sizeof(*items));
			n = items ? dt_rpt_topk_top(&f->topk, items,
			    f->topk.n) : 0;
			c = json_array();
			for (i = 0; i < n; i++)
				json_array_append_new(c, json_pack("[sII]",
				    items[i]->key, (json_int_t)items[i]->count,
				    (json_int_t)items[i]->err));
			json_object_set_new(fo, "counters", c);
			json_object_set_new(fo, "total",
			    json_integer((json_int_t)f->topk.total));
			json_object_set_new(fo, "evictions",
			    json_integer((json_int_t)f->topk.evictions));
		} else {
			json_decref(fo);
			continue;
		}
		json_object_set_new(fields, f->name, fo);
	}
	free(items);
	json_object_set_new(o, "fields", fields);
	return o;
}

static uint64_t
u64_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ?
	    (uint64_t)json_integer_value(v) : json_is_real(v) &&
	    json_real_value(v) > 0 && json_real_value(v) < 1.8e19 ?
	    (uint64_t)json_real_value(v) : 0;
}

static void
merge_named(struct dt_rpt_named *tab, int *n, int max, json_t *obj)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
		dt_rpt_named_find(tab, n, max, k, strlen(k))->n +=
		    u64_at(obj, k);
}

static void
merge_stages(struct dt_rpt_tally *t, json_t *stages)
{
	struct dt_rpt_stage *s;
	json_t *st, *m;
	size_t i, j;
	int added;

	json_array_foreach(stages, i, st) {
		const char *name = json_string_value(json_object_get(st,
		    "stage"));

		if (name == NULL || (s = dt_rpt_tally_stage(t, name,
		    &added)) == NULL)
			continue;
		s->reports += (int)u64_at(st, "reports");
		s->status = dt_exit_worse(s->status,
		    (int)json_integer_value(json_object_get(st, "status")));
		s->interrupted |= json_is_true(json_object_get(st,
		    "interrupted"));
		s->missing |= json_is_true(json_object_get(st, "missing"));
		json_array_foreach(json_object_get(st, "messages"), j, m)
			if (json_is_string(m))
				dt_rpt_stage_message(s, json_string_value(m));
		dt_rpt_stage_counts(s, json_object_get(st, "counts"));
	}
}

static void
merge_field(struct dt_rpt_field *f, json_t *fj, json_t *internal)
{
	json_t *counts, *e;
	const char *k;
	size_t i;
	uint64_t listed = 0;
	int j;

	f->present += u64_at(fj, "records");
	switch (f->kind) {
	case DT_RPT_FIELD_ENUM:
		counts = json_object_get(fj, "counts");
		for (j = 0; j < f->nvalues; j++)
			f->counts[j] += u64_at(counts, f->values[j]);
		f->other += u64_at(counts, "other");
		break;
	case DT_RPT_FIELD_ITEMS:
		f->items += u64_at(fj, "items");
		break;
	case DT_RPT_FIELD_MEAN:
		f->sum += json_number_value(json_object_get(internal, "sum"));
		break;
	case DT_RPT_FIELD_LABEL:
	case DT_RPT_FIELD_TOPICS:
		json_array_foreach(json_object_get(internal, "counters"), i,
		    e) {
			k = json_string_value(json_array_get(e, 0));
			if (k == NULL)
				continue;
			dt_rpt_topk_add(&f->topk, k, strlen(k), (uint64_t)
			    json_integer_value(json_array_get(e, 1)), (uint64_t)
			    json_integer_value(json_array_get(e, 2)));
			listed += (uint64_t)json_integer_value(
			    json_array_get(e, 1));
		}
		/* Occurrences the shard's counters no longer held. */
		if (u64_at(internal, "total") > listed)
			f->topk.total += u64_at(internal, "total") - listed;
		f->topk.evictions += u64_at(internal, "evictions");
		break;
	}
}

int
dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s)
{
	json_t *in = json_object_get(json_object_get(s, "shard"), "internal");
	json_t *tok = json_object_get(s, "tokens"), *hist, *b, *fields, *fj;
	const char *started = json_string_value(json_object_get(s,
	    "started_at"));
	size_t i;
	int k;

	if (!json_is_object(in)) {
		dt_warn("a shard's summary has no shard part; it is left out");
		return -1;
	}
	t->records += u64_at(s, "records");
	t->failed += u64_at(s, "failed");
	t->bad_lines += u64_at(s, "bad_lines");
	t->reused += u64_at(s, "reused");
	merge_named(t->status, &t->nstatus, DT_RPT_MAX_STATUS,
	    json_object_get(s, "by_status"));
	merge_named(t->kinds, &t->nkinds, DT_RPT_MAX_KINDS,
	    json_object_get(s, "by_error"));
	t->prompt_tokens += u64_at(tok, "prompt");
	t->completion_tokens += u64_at(tok, "completion");
	t->total_tokens += u64_at(tok, "total");
	if (json_is_number(json_object_get(s, "cost_usd"))) {
		t->cost += json_number_value(json_object_get(s, "cost_usd"));
		t->with_cost++;
	}
	hist = json_object_get(in, "latency_hist");
	json_array_foreach(json_object_get(hist, "buckets"), i, b) {
		json_int_t at = json_integer_value(json_array_get(b, 0));
		json_int_t n = json_integer_value(json_array_get(b, 1));
		uint64_t lo = u64_at(hist, "min"), hi = u64_at(hist, "max");

		if (at < 0 || (size_t)at >= DT_RPT_HIST_BUCKETS || n <= 0)
			continue;
		if (t->latency.n == 0 || lo < t->latency.min)
			t->latency.min = lo;
		if (hi > t->latency.max)
			t->latency.max = hi;
		t->latency.count[at] += (uint64_t)n;
		t->latency.n += (uint64_t)n;
	}
	t->analyzed += u64_at(json_object_get(s, "analysis"), "records");
	fields = json_object_get(json_object_get(s, "analysis"), "fields");
	for (k = 0; k < t->nfields; k++)
		if (json_is_object(fj = json_object_get(fields,
		    t->fields[k].name)))
			merge_field(&t->fields[k], fj, json_object_get(
			    json_object_get(in, "fields"),
			    t->fields[k].name));
	merge_stages(t, json_object_get(s, "stages"));
	if (json_is_true(json_object_get(s, "mixed_run_ids")))
		t->mixed_runs = 1;
	if (started != NULL && strlen(started) < sizeof(t->started_at) &&
	    (t->started_at[0] == '\0' || strcmp(started, t->started_at) < 0))
		snprintf(t->started_at, sizeof(t->started_at), "%s", started);
	return 0;
}
