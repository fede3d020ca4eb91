/*
 * tally.c: counting records and stage reports into the tally (tally.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exit.h"
#include "log.h"
#include "tally.h"
#include "text.h"

static const char *const default_sentiment[] = {"positive", "neutral",
    "negative", "mixed"};

static struct dt_rpt_field *
add_field(struct dt_rpt_tally *t, const char *name, int kind)
{
	struct dt_rpt_field *f;

	if (t->nfields >= DT_RPT_MAX_FIELDS)
		return NULL;
	f = &t->fields[t->nfields++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->kind = kind;
	return f;
}

static int
add_enum_values(struct dt_rpt_field *f, json_t *values)
{
	size_t i;
	json_t *v;

	json_array_foreach(values, i, v) {
		if (!json_is_string(v) || f->nvalues >= DT_RPT_MAX_ENUM)
			continue;
		snprintf(f->values[f->nvalues++], sizeof(f->values[0]), "%s",
		    json_string_value(v));
	}
	return 0;
}

/* Decides from a property's schema what the report does with it. */
static int
field_kind(const char *name, json_t *prop, const char *topics_field,
    json_t **enumv)
{
	const char *type = json_string_value(json_object_get(prop, "type"));
	json_t *items, *ml;

	*enumv = json_object_get(prop, "enum");
	if (type == NULL)
		return 0;
	if (strcmp(type, "string") == 0) {
		if (json_is_array(*enumv))
			return DT_RPT_FIELD_ENUM;
		/* A short code such as a language: its values are labels. */
		ml = json_object_get(prop, "maxLength");
		if (json_is_integer(ml) && json_integer_value(ml) <= 16)
			return DT_RPT_FIELD_LABEL;
		return 0;       /* free text: never reported */
	}
	if (strcmp(type, "array") == 0) {
		items = json_object_get(prop, "items");
		type = json_string_value(json_object_get(items, "type"));
		if (type == NULL || strcmp(type, "string") != 0)
			return 0;
		*enumv = json_object_get(items, "enum");
		if (json_is_array(*enumv))
			return DT_RPT_FIELD_ENUM;
		if (strcmp(name, topics_field) == 0)
			return DT_RPT_FIELD_TOPICS;
		return DT_RPT_FIELD_ITEMS;
	}
	if ((strcmp(type, "number") == 0 || strcmp(type, "integer") == 0) &&
	    json_is_number(json_object_get(prop, "minimum")) &&
	    json_is_number(json_object_get(prop, "maximum")))
		return DT_RPT_FIELD_MEAN;
	return 0;
}

int
dt_rpt_tally_init(struct dt_rpt_tally *t, json_t *schema, size_t top,
    const char *topics_field)
{
	struct dt_rpt_field *f;
	const char *name;
	json_t *props, *prop;
	int i;

	memset(t, 0, sizeof(*t));
	t->top = top;
	props = json_object_get(schema, "properties");
	if (json_is_object(props)) {
		json_object_foreach(props, name, prop) {
			json_t *enumv;
			int kind = field_kind(name, prop, topics_field, &enumv);

			if (kind == 0)
				continue;
			if ((f = add_field(t, name, kind)) == NULL) {
				dt_warn("schema: more than %d fields to "
				    "report; '%s' and later ones are left out",
				    DT_RPT_MAX_FIELDS, name);
				break;
			}
			if (kind == DT_RPT_FIELD_ENUM)
				add_enum_values(f, enumv);
		}
	} else {
		f = add_field(t, "sentiment", DT_RPT_FIELD_ENUM);
		for (i = 0; i < 4; i++)
			snprintf(f->values[f->nvalues++], sizeof(f->values[0]),
			    "%s", default_sentiment[i]);
		add_field(t, "language", DT_RPT_FIELD_LABEL);
		add_field(t, topics_field, DT_RPT_FIELD_TOPICS);
		add_field(t, "action_items", DT_RPT_FIELD_ITEMS);
		add_field(t, "confidence", DT_RPT_FIELD_MEAN);
	}
	for (i = 0; i < t->nfields; i++) {
		size_t cap;

		f = &t->fields[i];
		if (f->kind == DT_RPT_FIELD_TOPICS)
			cap = top * 10 < 100 ? 100 : top * 10;
		else if (f->kind == DT_RPT_FIELD_LABEL)
			cap = 64;
		else
			continue;
		if (dt_rpt_topk_init(&f->topk, cap) < 0) {
			dt_error("out of memory");
			dt_rpt_tally_free(t);
			return -1;
		}
	}
	return 0;
}

void
dt_rpt_tally_free(struct dt_rpt_tally *t)
{
	int i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nfields; i++)
		dt_rpt_topk_free(&t->fields[i].topk);
}

struct dt_rpt_named *
dt_rpt_named_find(struct dt_rpt_named *tab, int *n, int max, const char *name,
    size_t len)
{
	char clean[sizeof(tab->name)];
	int i;

	dt_rpt_topic_norm(name, len, clean, sizeof(clean));
	if (clean[0] == '\0')
		snprintf(clean, sizeof(clean), "other");
	for (i = 0; i < *n; i++)
		if (strcmp(tab[i].name, clean) == 0)
			return &tab[i];
	for (i = 0; *n >= max - 1 && i < *n; i++)
		if (strcmp(tab[i].name, "other") == 0)
			return &tab[i];
	if (*n == max - 1) {
		snprintf(tab[*n].name, sizeof(tab->name), "other");
		(*n)++;
	}
	if (*n == max)
		return &tab[max - 1];
	snprintf(tab[*n].name, sizeof(tab->name), "%s", clean);
	return &tab[(*n)++];
}

static uint64_t
count_of(double v)
{
	return v > 0 && v < 1.8e19 ? (uint64_t)v : 0;
}

/* Sets *out to v's value and returns 1 when v is a number, else 0. */
static int
number(json_t *v, double *out)
{
	if (!json_is_number(v))
		return 0;
	*out = json_number_value(v);
	return 1;
}

/* Adds v to *sum when v is a positive number. */
static void
add_positive(double *sum, json_t *v)
{
	double x;

	if (number(v, &x) && x > 0)
		*sum += x;
}

/*
 * A cost: a number, or an object with "total_cost" or else the sum of
 * its "*_cost" members.  Returns 1 with *out set, or 0 when v has none.
 */
static int
cost_of(json_t *v, double *out)
{
	const char *k;
	json_t *m;
	double sum = 0, x;
	int has = 0;

	if (number(v, out))
		return 1;
	if (!json_is_object(v))
		return 0;
	if (number(json_object_get(v, "total_cost"), out))
		return 1;
	json_object_foreach(v, k, m) {
		size_t n = strlen(k);

		if (n > 5 && strcmp(k + n - 5, "_cost") == 0 &&
		    number(m, &x)) {
			sum += x;
			has = 1;
		}
	}
	*out = sum;
	return has;
}

static void
tally_usage(struct dt_rpt_tally *t, json_t *rec)
{
	json_t *u = json_object_get(rec, "usage");
	double prompt = 0, completion = 0, total, cost;
	uint64_t p, c;

	if (!json_is_object(u))
		u = NULL;
	add_positive(&prompt, json_object_get(u, "prompt_tokens"));
	add_positive(&prompt, json_object_get(u, "input_tokens"));
	add_positive(&completion, json_object_get(u, "completion_tokens"));
	add_positive(&completion, json_object_get(u, "output_tokens"));
	p = count_of(prompt);
	c = count_of(completion);
	t->prompt_tokens += p;
	t->completion_tokens += c;
	t->total_tokens += number(json_object_get(u, "total_tokens"), &total) ?
	    count_of(total) : p + c;
	if (((cost_of(json_object_get(u, "cost"), &cost) ||
	    cost_of(json_object_get(u, "cost_usd"), &cost)) && cost >= 0) ||
	    (cost_of(json_object_get(rec, "cost_usd"), &cost) && cost >= 0)) {
		t->cost += cost;
		t->with_cost++;
	}
}

static void
tally_topic(struct dt_rpt_field *f, json_t *v)
{
	char key[DT_RPT_KEY_MAX + 1];
	size_t n;

	if (json_is_string(v) && (n = dt_rpt_topic_norm(json_string_value(v),
	    json_string_length(v), key, sizeof(key))) > 0)
		dt_rpt_topk_add(&f->topk, key, n, 1, 0);
}

static void
tally_enum(struct dt_rpt_field *f, json_t *v)
{
	size_t n = json_string_length(v);
	int i;

	if (!json_is_string(v))
		return;
	for (i = 0; i < f->nvalues; i++)
		if (strlen(f->values[i]) == n &&
		    memcmp(f->values[i], json_string_value(v), n) == 0) {
			f->counts[i]++;
			return;
		}
	f->other++;
}

/*
 * Counts one analysis field's value v.  Returns 1 when v has the type
 * the field's kind counts, else 0.
 */
static int
tally_value(struct dt_rpt_field *f, json_t *v)
{
	size_t j;
	json_t *item;

	switch (f->kind) {
	case DT_RPT_FIELD_ENUM:
		if (json_is_string(v))
			tally_enum(f, v);
		else if (json_is_array(v))
			json_array_foreach(v, j, item)
				tally_enum(f, item);
		else
			return 0;
		return 1;
	case DT_RPT_FIELD_LABEL:
		if (!json_is_string(v))
			return 0;
		tally_topic(f, v);
		return 1;
	case DT_RPT_FIELD_TOPICS:
		if (!json_is_array(v))
			return 0;
		json_array_foreach(v, j, item)
			tally_topic(f, item);
		return 1;
	case DT_RPT_FIELD_ITEMS:
		if (!json_is_array(v) || json_array_size(v) == 0)
			return 0;
		f->items += json_array_size(v);
		return 1;
	case DT_RPT_FIELD_MEAN:
		if (!json_is_number(v))
			return 0;
		f->sum += json_number_value(v);
		return 1;
	}
	return 0;
}

static void
tally_analysis(struct dt_rpt_tally *t, json_t *analysis)
{
	int i;

	t->analyzed++;
	for (i = 0; i < t->nfields; i++) {
		struct dt_rpt_field *f = &t->fields[i];

		if (tally_value(f, json_object_get(analysis, f->name)))
			f->present++;
	}
}

void
dt_rpt_stage_message(struct dt_rpt_stage *s, const char *msg)
{
	char clean[sizeof(s->messages[0])];
	int i;

	dt_rpt_clip(msg, 200, clean, sizeof(clean));
	for (i = 0; i < s->nmessages; i++)
		if (strcmp(s->messages[i], clean) == 0)
			return;
	if (s->nmessages < DT_RPT_MAX_MESSAGES)
		memcpy(s->messages[s->nmessages++], clean, sizeof(clean));
}

void
dt_rpt_stage_counts(struct dt_rpt_stage *s, json_t *counts)
{
	const char *k;
	json_t *v;
	int i;

	json_object_foreach(counts, k, v) {
		if (!json_is_number(v) ||
		    strlen(k) >= sizeof(s->count_names[0]))
			continue;
		for (i = 0; i < s->ncounts; i++)
			if (strcmp(s->count_names[i], k) == 0)
				break;
		if (i == s->ncounts) {
			if (s->ncounts == DT_RPT_MAX_COUNTS)
				continue;
			snprintf(s->count_names[i], sizeof(s->count_names[0]),
			    "%s", k);
			s->counts[i] = 0;
			s->ncounts++;
		}
		s->counts[i] += json_number_value(v);
	}
}

static void
tally_stage(struct dt_rpt_tally *t, json_t *rec, const char *stage)
{
	struct dt_rpt_stage *s;
	const char *msg, *started;
	double st;
	json_t *counts = json_object_get(rec, "counts");

	int added;

	if ((s = dt_rpt_tally_stage(t, stage, &added)) == NULL)
		return;
	s->reports++;
	if (!number(json_object_get(rec, "status"), &st) || st < 0 || st > 255)
		st = 0;
	s->status = dt_exit_worse(s->status, (int)st);
	if (json_is_true(json_object_get(rec, "interrupted")))
		s->interrupted = 1;
	if ((msg = json_string_value(json_object_get(rec, "message"))) !=
	    NULL && *msg != '\0')
		dt_rpt_stage_message(s, msg);
	if (json_is_object(counts))
		dt_rpt_stage_counts(s, counts);
	started = json_string_value(json_object_get(rec, "started_at"));
	if (started != NULL && strlen(started) < sizeof(t->started_at) &&
	    (t->started_at[0] == '\0' || strcmp(started, t->started_at) < 0))
		snprintf(t->started_at, sizeof(t->started_at), "%s", started);
}

static void
tally_run_id(struct dt_rpt_tally *t, json_t *rec)
{
	const char *run_id = json_string_value(json_object_get(rec, "run_id"));

	if (run_id == NULL || *run_id == '\0')
		return;
	if (t->run_id[0] == '\0')
		dt_rpt_clip(run_id, 100, t->run_id, sizeof(t->run_id));
	else if (strncmp(t->run_id, run_id, sizeof(t->run_id) - 1) != 0)
		t->mixed_runs = 1;
}

void
dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec)
{
	json_t *status = json_object_get(rec, "status");
	json_t *error = json_object_get(rec, "error");
	json_t *analysis = json_object_get(rec, "analysis");
	json_t *kind = json_object_get(error, "kind");
	const char *stage = json_string_value(json_object_get(rec, "stage"));
	const char *st;
	size_t len;
	int failed, has_error = error != NULL && !json_is_null(error);
	double latency;

	tally_run_id(t, rec);
	if (stage != NULL && json_object_get(rec, "id") == NULL) {
		tally_stage(t, rec, stage);
		return;
	}
	t->records++;
	if (json_is_string(status)) {
		st = json_string_value(status);
		len = json_string_length(status);
	} else {
		/* Replayed output of an earlier stage has none: derive one. */
		st = json_is_object(analysis) ? "analyzed" : has_error ?
		    "failed" : "fetched";
		len = strlen(st);
	}
	dt_rpt_named_find(t->status, &t->nstatus, DT_RPT_MAX_STATUS, st,
	    len)->n++;
	failed = len == 6 && memcmp(st, "failed", 6) == 0;
	if (has_error) {
		if (!json_is_string(kind))
			kind = NULL;
		dt_rpt_named_find(t->kinds, &t->nkinds, DT_RPT_MAX_KINDS,
		    kind ? json_string_value(kind) : "unknown",
		    kind ? json_string_length(kind) : 7)->n++;
		/* Given back to the queue with its attempt is not failed. */
		if (!(len == 8 && memcmp(st, "released", 8) == 0))
			failed = 1;
	}
	if (failed)
		t->failed++;
	/* dt-fetch --reuse: an analysis that cost nothing this time. */
	if (len == 6 && memcmp(st, "stored", 6) == 0 &&
	    (json_is_object(json_object_get(rec, "reused")) ||
	    json_is_object(json_object_get(rec, "same_text"))))
		t->reused++;
	tally_usage(t, rec);
	if (number(json_object_get(rec, "latency_ms"), &latency) &&
	    latency >= 0)
		dt_rpt_hist_add(&t->latency, count_of(latency));
	if (json_is_object(analysis))
		tally_analysis(t, analysis);
}

const char *
dt_rpt_tally_state(const struct dt_rpt_tally *t, int *status)
{
	int i, failed = 0, partial = 0, st = DT_EXIT_OK;

	for (i = 0; i < t->nstages; i++) {
		const struct dt_rpt_stage *s = &t->stages[i];

		st = dt_exit_worse(st, s->status);
		if (!s->interrupted && s->status != DT_EXIT_OK &&
		    s->status != DT_EXIT_PARTIAL)
			failed = 1;
		else if (s->interrupted || s->status == DT_EXIT_PARTIAL)
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

struct dt_rpt_stage *
dt_rpt_tally_stage(struct dt_rpt_tally *t, const char *name, int *added)
{
	char clean[sizeof(t->stages[0].name)];
	int i;

	*added = 0;
	dt_rpt_clip(name, 24, clean, sizeof(clean));
	for (i = 0; i < t->nstages; i++)
		if (strcmp(t->stages[i].name, clean) == 0)
			return &t->stages[i];
	if (t->nstages == DT_RPT_MAX_STAGES) {
		dt_warn("more than %d stages report; '%s' is left out",
		    DT_RPT_MAX_STAGES, clean);
		return NULL;
	}
	memset(&t->stages[t->nstages], 0, sizeof(t->stages[0]));
	memcpy(t->stages[t->nstages].name, clean, sizeof(clean));
	*added = 1;
	return &t->stages[t->nstages++];
}

int
dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list)
{
	char name[32], msg[160];
	struct dt_rpt_stage *s;
	const char *p = list, *e;
	size_t n;
	int added, missing = 0;

	while (p != NULL && *p != '\0') {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		while (n > 0 && *p == ' ') {
			p++;
			n--;
		}
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n > 0 && n < sizeof(name)) {
			memcpy(name, p, n);
			name[n] = '\0';
			if ((s = dt_rpt_tally_stage(t, name, &added)) != NULL &&
			    added) {
				s->missing = 1;
				s->status = DT_EXIT_TEMPFAIL;
				snprintf(msg, sizeof(msg), "%s ended without "
				    "its stage record (crashed or killed?)",
				    s->name);
				dt_error("%s", msg);
				dt_rpt_stage_message(s, msg);
				missing++;
			}
		}
		p = e != NULL ? e + 1 : NULL;
	}
	return missing;
}
