/*
 * tally.c: counting records and stage reports into the tally (tally.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exit.h"
#include "log.h"
#include "tally.h"
#include "text.h"

#define DT_RPT_MAX_STATUS 16
#define DT_RPT_MAX_KINDS 16
#define DT_RPT_MAX_STAGES 8
#define DT_RPT_MAX_MESSAGES 4
#define DT_RPT_MAX_COUNTS 16

/* Decides from a property's schema what the report does with it. */
static int
field_kind(const char *name, json_t *prop, const char *topics_field,
    json_t **enumv)
{
	const char *type = json_string_value(json_object_get(prop, "type"));
	json_t *items = json_object_get(prop, "items");
	json_t *ml = json_object_get(prop, "maxLength");

	*enumv = json_object_get(prop, "enum");
	if (type == NULL)
		return 0;
	if (strcmp(type, "string") == 0 && json_is_array(*enumv))
		return DT_RPT_FIELD_ENUM;
	/* A short code such as a language: its values are labels. */
	if (strcmp(type, "string") == 0)
		return json_is_integer(ml) && json_integer_value(ml) <= 16 ?
		    DT_RPT_FIELD_LABEL : 0;
	if (strcmp(type, "array") == 0) {
		type = json_string_value(json_object_get(items, "type"));
		if (type == NULL || strcmp(type, "string") != 0)
			return 0;
		*enumv = json_object_get(items, "enum");
		return json_is_array(*enumv) ? DT_RPT_FIELD_ENUM :
		    strcmp(name, topics_field) == 0 ? DT_RPT_FIELD_TOPICS :
		    DT_RPT_FIELD_ITEMS;
	}
	if ((strcmp(type, "number") == 0 || strcmp(type, "integer") == 0) &&
	    json_is_number(json_object_get(prop, "minimum")) &&
	    json_is_number(json_object_get(prop, "maximum")))
		return DT_RPT_FIELD_MEAN;
	return 0;
}

/* Adds the schema's property as a field, unless it is not reported. */
static int
add_field(struct dt_rpt_tally *t, const char *name, json_t *prop,
    const char *topics_field)
{
	struct dt_rpt_field *f = &t->fields[t->nfields];
	json_t *enumv, *v;
	size_t i, cap = t->top * 10 < 100 ? 100 : t->top * 10;
	int kind = field_kind(name, prop, topics_field, &enumv);

	if (kind == 0)
		return 0;
	if (t->nfields == DT_RPT_MAX_FIELDS) {
		dt_warn("schema: more than %d fields to report; '%s' and later "
		    "ones are left out", DT_RPT_MAX_FIELDS, name);
		return -1;
	}
	t->nfields++;
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->kind = kind;
	json_array_foreach(kind == DT_RPT_FIELD_ENUM ? enumv : NULL, i, v)
		if (json_is_string(v) && f->nvalues < DT_RPT_MAX_ENUM)
			snprintf(f->values[f->nvalues++], sizeof(f->values[0]),
			    "%s", json_string_value(v));
	if ((kind == DT_RPT_FIELD_TOPICS || kind == DT_RPT_FIELD_LABEL) &&
	    dt_rpt_topk_init(&f->topk, kind == DT_RPT_FIELD_LABEL ? 64 :
	    cap) < 0) {
		dt_error("out of memory");
		return -2;
	}
	return 0;
}

int
dt_rpt_tally_init(struct dt_rpt_tally *t, json_t *schema, size_t top,
    const char *topics_field)
{
	json_t *props = json_object_get(schema, "properties"), *prop, *own;
	const char *name;
	int rc = 0;

	memset(t, 0, sizeof(*t));
	t->top = top;
	t->by_status = json_object();
	t->by_error = json_object();
	t->stages = json_array();
	/* Without a schema, dt-analyze's default fields. */
	own = json_is_object(props) ? NULL : json_pack("{s{ss s[ssss]} "
	    "s{ss si} s{ss s{ss}} s{ss s{ss}} s{ss si si}}", "sentiment",
	    "type", "string", "enum", "positive", "neutral", "negative",
	    "mixed", "language", "type", "string", "maxLength", 16,
	    topics_field, "type", "array", "items", "type", "string",
	    "action_items", "type", "array", "items", "type", "string",
	    "confidence", "type", "number", "minimum", 0, "maximum", 1);
	json_object_foreach(own != NULL ? own : props, name, prop)
		if ((rc = add_field(t, name, prop, topics_field)) < 0)
			break;
	json_decref(own);
	if (rc == -2 || (own == NULL && !json_is_object(props)) ||
	    t->by_status == NULL || t->by_error == NULL || t->stages == NULL) {
		dt_rpt_tally_free(t);
		return -1;
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
	json_decref(t->by_status);
	json_decref(t->by_error);
	json_decref(t->stages);
	t->by_status = t->by_error = t->stages = NULL;
}

/*
 * Adds n to name's count (normalised as a topic) in obj, which keeps at
 * most max names: the last is "other", for nameless and later ones.
 */
static void
count_named(json_t *obj, size_t max, const char *name, size_t len,
    uint64_t n)
{
	char clean[32];

	dt_rpt_topic_norm(name, len, clean, sizeof(clean));
	if (clean[0] == '\0' || (json_object_get(obj, clean) == NULL &&
	    json_object_size(obj) >= max - 1))
		snprintf(clean, sizeof(clean), "other");
	json_object_set_new(obj, clean, json_integer(json_integer_value(
	    json_object_get(obj, clean)) + (json_int_t)n));
}

static uint64_t
count_of(double v)
{
	return v > 0 && v < 1.8e19 ? (uint64_t)v : 0;
}

/* The whole number at key in o; 0 when it is none or not positive. */
static uint64_t
u64_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return json_integer_value(v) > 0 ?
		    (uint64_t)json_integer_value(v) : 0;
	return count_of(json_real_value(v));
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

/*
 * A cost: a number, or an object with "total_cost" or else the sum of
 * its "*_cost" members.  Returns 1 with *out set, or 0 when v has none.
 */
static int
cost_of(json_t *v, double *out)
{
	const char *k;
	json_t *m;
	double x;
	int has = 0;

	if (number(v, out) || number(json_object_get(v, "total_cost"), out))
		return 1;
	*out = 0;
	json_object_foreach(v, k, m) {
		size_t n = strlen(k);

		if (n > 5 && strcmp(k + n - 5, "_cost") == 0 &&
		    number(m, &x)) {
			*out += x;
			has = 1;
		}
	}
	return has;
}

/* The sum of the positive numbers at the keys a and b of u. */
static double
positive(json_t *u, const char *a, const char *b)
{
	double x, y;

	return (number(json_object_get(u, a), &x) && x > 0 ? x : 0) +
	    (number(json_object_get(u, b), &y) && y > 0 ? y : 0);
}

static void
tally_usage(struct dt_rpt_tally *t, json_t *rec)
{
	json_t *u = json_object_get(rec, "usage");
	uint64_t p, c;
	double total, cost;

	p = count_of(positive(u, "prompt_tokens", "input_tokens"));
	c = count_of(positive(u, "completion_tokens", "output_tokens"));
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

/* Counts a string of an enum, label or topics field. */
static void
tally_string(struct dt_rpt_field *f, json_t *v)
{
	char key[DT_RPT_KEY_MAX + 1];
	size_t n = json_string_length(v);
	int i;

	if (!json_is_string(v))
		return;
	if (f->kind != DT_RPT_FIELD_ENUM) {
		if ((n = dt_rpt_topic_norm(json_string_value(v), n, key,
		    sizeof(key))) > 0)
			dt_rpt_topk_add(&f->topk, key, n, 1, 0);
		return;
	}
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

	if (json_is_string(v) && (f->kind == DT_RPT_FIELD_ENUM ||
	    f->kind == DT_RPT_FIELD_LABEL)) {
		tally_string(f, v);
		return 1;
	}
	if (json_is_array(v) && (f->kind == DT_RPT_FIELD_ENUM ||
	    f->kind == DT_RPT_FIELD_TOPICS)) {
		json_array_foreach(v, j, item)
			tally_string(f, item);
		return 1;
	}
	if (f->kind == DT_RPT_FIELD_ITEMS && json_array_size(v) > 0) {
		f->items += json_array_size(v);
		return 1;
	}
	if (f->kind == DT_RPT_FIELD_MEAN && json_is_number(v)) {
		f->sum += json_number_value(v);
		return 1;
	}
	return 0;
}

/* Adds msg to the stage's distinct messages (clipped; at most 4). */
static void
add_message(json_t *s, const char *msg)
{
	json_t *all = json_object_get(s, "messages"), *m;
	char clean[240];
	size_t i;

	dt_rpt_clip(msg, 200, clean, sizeof(clean));
	json_array_foreach(all, i, m)
		if (strcmp(json_string_value(m), clean) == 0)
			return;
	if (json_array_size(all) < DT_RPT_MAX_MESSAGES)
		json_array_append_new(all, json_string(clean));
}

/*
 * Adds a stage report (or a shard's merged reports) to the stage s: the
 * reports, the worst status, whether interrupted or missing, and the
 * numeric members of counts to the counts of the same name (names of 32
 * bytes or more, and past DT_RPT_MAX_COUNTS names, are left out).
 */
static void
stage_add(json_t *s, json_int_t reports, int status, int interrupted,
    int missing, json_t *counts)
{
	json_t *sums = json_object_get(s, "counts"), *v;
	const char *k;
	double sum;

	json_object_set_new(s, "reports", json_integer(json_integer_value(
	    json_object_get(s, "reports")) + reports));
	json_object_set_new(s, "status", json_integer(dt_exit_worse((int)
	    json_integer_value(json_object_get(s, "status")), status)));
	if (interrupted)
		json_object_set_new(s, "interrupted", json_true());
	if (missing)
		json_object_set_new(s, "missing", json_true());
	json_object_foreach(counts, k, v) {
		if (!json_is_number(v) || strlen(k) >= 32 ||
		    (json_object_get(sums, k) == NULL &&
		    json_object_size(sums) == DT_RPT_MAX_COUNTS))
			continue;
		sum = json_number_value(json_object_get(sums, k)) +
		    json_number_value(v);
		json_object_set_new(sums, k, sum == floor(sum) &&
		    fabs(sum) < 9e15 ? json_integer((json_int_t)sum) :
		    json_real(sum));
	}
}

/* Keeps at (RFC 3339; NULL: none) when it is the earliest start seen. */
static void
keep_started(struct dt_rpt_tally *t, const char *at)
{
	if (at != NULL && strlen(at) < sizeof(t->started_at) &&
	    (t->started_at[0] == '\0' || strcmp(at, t->started_at) < 0))
		snprintf(t->started_at, sizeof(t->started_at), "%s", at);
}

/*
 * The stage named name (cut to 24 characters), added with *added set
 * when it is new; NULL (warned) when the table is full.
 */
static json_t *
find_stage(struct dt_rpt_tally *t, const char *name, int *added)
{
	char clean[32];
	json_t *s;
	size_t i;

	*added = 0;
	dt_rpt_clip(name, 24, clean, sizeof(clean));
	json_array_foreach(t->stages, i, s)
		if (strcmp(json_string_value(json_object_get(s, "stage")),
		    clean) == 0)
			return s;
	if (json_array_size(t->stages) == DT_RPT_MAX_STAGES) {
		dt_warn("more than %d stages report; '%s' is left out",
		    DT_RPT_MAX_STAGES, clean);
		return NULL;
	}
	s = json_pack("{sssisbsisbs[]s{}}", "stage", clean, "status", 0,
	    "interrupted", 0, "reports", 0, "missing", 0, "messages",
	    "counts");
	if (json_array_append_new(t->stages, s) < 0)
		return NULL;
	*added = 1;
	return s;
}

/*
 * Adds a stage report rec, or a shard's stage from its summary (merged:
 * its reports, "missing" and "messages"), to the stage of its name.
 */
static void
tally_stage(struct dt_rpt_tally *t, json_t *rec, int merged)
{
	const char *name = json_string_value(json_object_get(rec, "stage"));
	const char *msg = json_string_value(json_object_get(rec, "message"));
	json_t *s, *m;
	double st;
	size_t i;
	int added;

	if (name == NULL || (s = find_stage(t, name, &added)) == NULL)
		return;
	if (!number(json_object_get(rec, "status"), &st) || st < 0 || st > 255)
		st = 0;
	stage_add(s, merged ? (json_int_t)u64_at(rec, "reports") : 1, (int)st,
	    json_is_true(json_object_get(rec, "interrupted")), merged &&
	    json_is_true(json_object_get(rec, "missing")),
	    json_object_get(rec, "counts"));
	json_array_foreach(merged ? json_object_get(rec, "messages") : NULL,
	    i, m)
		if (json_is_string(m))
			add_message(s, json_string_value(m));
	if (merged)
		return;
	if (msg != NULL && *msg != '\0')
		add_message(s, msg);
	keep_started(t, json_string_value(json_object_get(rec, "started_at")));
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

/* Whether the n bytes at s are the string lit. */
static int
is(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* The status, error kind and failure of a record. */
static void
tally_status(struct dt_rpt_tally *t, json_t *rec)
{
	json_t *status = json_object_get(rec, "status");
	json_t *error = json_object_get(rec, "error");
	json_t *kind = json_object_get(error, "kind");
	int has_error = error != NULL && !json_is_null(error);
	const char *st = json_string_value(status);
	size_t len = json_string_length(status);

	/* Replayed output of an earlier stage has none: derive one. */
	if (st == NULL) {
		st = json_is_object(json_object_get(rec, "analysis")) ?
		    "analyzed" : has_error ? "failed" : "fetched";
		len = strlen(st);
	}
	count_named(t->by_status, DT_RPT_MAX_STATUS, st, len, 1);
	if (has_error)
		count_named(t->by_error, DT_RPT_MAX_KINDS,
		    json_is_string(kind) ? json_string_value(kind) : "unknown",
		    json_is_string(kind) ? json_string_length(kind) : 7, 1);
	/* Given back to the queue with its attempt is not failed. */
	if (is(st, len, "failed") || (has_error && !is(st, len, "released")))
		t->failed++;
	/* dt-fetch --reuse: an analysis that cost nothing this time. */
	if (is(st, len, "stored") &&
	    (json_is_object(json_object_get(rec, "reused")) ||
	    json_is_object(json_object_get(rec, "same_text"))))
		t->reused++;
}

void
dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec)
{
	const char *stage = json_string_value(json_object_get(rec, "stage"));
	json_t *analysis = json_object_get(rec, "analysis");
	double latency;
	int i;

	tally_run_id(t, rec);
	if (stage != NULL && json_object_get(rec, "id") == NULL) {
		tally_stage(t, rec, 0);
		return;
	}
	t->records++;
	tally_status(t, rec);
	tally_usage(t, rec);
	if (number(json_object_get(rec, "latency_ms"), &latency) &&
	    latency >= 0)
		dt_rpt_hist_add(&t->latency, count_of(latency));
	if (!json_is_object(analysis))
		return;
	t->analyzed++;
	for (i = 0; i < t->nfields; i++)
		if (tally_value(&t->fields[i], json_object_get(analysis,
		    t->fields[i].name)))
			t->fields[i].present++;
}

int
dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list)
{
	char name[32], msg[160];
	const char *p;
	json_t *s;
	size_t n, k;
	int added, missing = 0;

	for (; *list != '\0'; list += n + (list[n] == ',')) {
		n = strcspn(list, ",");
		for (p = list, k = n; k > 0 && *p == ' '; k--)
			p++;
		while (k > 0 && p[k - 1] == ' ')
			k--;
		if (k == 0 || k >= sizeof(name))
			continue;
		memcpy(name, p, k);
		name[k] = '\0';
		if ((s = find_stage(t, name, &added)) == NULL || !added)
			continue;
		stage_add(s, 0, DT_EXIT_TEMPFAIL, 0, 1, NULL);
		snprintf(msg, sizeof(msg), "%s ended without its stage record "
		    "(crashed or killed?)", json_string_value(json_object_get(s,
		    "stage")));
		dt_error("%s", msg);
		add_message(s, msg);
		missing++;
	}
	return missing;
}

static void
merge_named(json_t *to, size_t max, json_t *obj)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
		count_named(to, max, k, strlen(k), u64_at(obj, k));
}

static void
merge_field(struct dt_rpt_field *f, json_t *fj, json_t *internal)
{
	json_t *e;
	const char *k;
	size_t i;
	uint64_t listed = 0;
	int j;

	/* What a kind does not have adds 0. */
	f->present += u64_at(fj, "records");
	f->items += u64_at(fj, "items");
	f->sum += json_number_value(json_object_get(internal, "sum"));
	for (j = 0; j < f->nvalues; j++)
		f->counts[j] += u64_at(json_object_get(fj, "counts"),
		    f->values[j]);
	if (f->kind == DT_RPT_FIELD_ENUM)
		f->other += u64_at(json_object_get(fj, "counts"), "other");
	if (f->kind != DT_RPT_FIELD_LABEL && f->kind != DT_RPT_FIELD_TOPICS)
		return;
	json_array_foreach(json_object_get(internal, "counters"), i, e) {
		if ((k = json_string_value(json_array_get(e, 0))) == NULL)
			continue;
		dt_rpt_topk_add(&f->topk, k, strlen(k), (uint64_t)
		    json_integer_value(json_array_get(e, 1)), (uint64_t)
		    json_integer_value(json_array_get(e, 2)));
		listed += (uint64_t)json_integer_value(json_array_get(e, 1));
	}
	/* Occurrences the shard's counters no longer held. */
	if (u64_at(internal, "total") > listed)
		f->topk.total += u64_at(internal, "total") - listed;
	f->topk.evictions += u64_at(internal, "evictions");
}

/* Adds a shard's latency histogram's buckets. */
static void
merge_latency(struct dt_rpt_hist *h, json_t *hist)
{
	uint64_t lo = u64_at(hist, "min"), hi = u64_at(hist, "max");
	json_t *b;
	size_t i;

	json_array_foreach(json_object_get(hist, "buckets"), i, b) {
		json_int_t at = json_integer_value(json_array_get(b, 0));
		json_int_t n = json_integer_value(json_array_get(b, 1));

		if (at < 0 || (size_t)at >= DT_RPT_HIST_BUCKETS || n <= 0)
			continue;
		if (h->n == 0 || lo < h->min)
			h->min = lo;
		if (hi > h->max)
			h->max = hi;
		h->count[at] += (uint64_t)n;
		h->n += (uint64_t)n;
	}
}

int
dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s)
{
	json_t *in = json_object_get(json_object_get(s, "shard"), "internal");
	json_t *tok = json_object_get(s, "tokens"), *fj, *st;
	json_t *an = json_object_get(s, "analysis");
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
	merge_named(t->by_status, DT_RPT_MAX_STATUS,
	    json_object_get(s, "by_status"));
	merge_named(t->by_error, DT_RPT_MAX_KINDS,
	    json_object_get(s, "by_error"));
	t->prompt_tokens += u64_at(tok, "prompt");
	t->completion_tokens += u64_at(tok, "completion");
	t->total_tokens += u64_at(tok, "total");
	if (json_is_number(json_object_get(s, "cost_usd"))) {
		t->cost += json_number_value(json_object_get(s, "cost_usd"));
		t->with_cost++;
	}
	merge_latency(&t->latency, json_object_get(in, "latency_hist"));
	t->analyzed += u64_at(an, "records");
	for (k = 0; k < t->nfields; k++)
		if (json_is_object(fj = json_object_get(json_object_get(an,
		    "fields"), t->fields[k].name)))
			merge_field(&t->fields[k], fj, json_object_get(
			    json_object_get(in, "fields"), t->fields[k].name));
	json_array_foreach(json_object_get(s, "stages"), i, st)
		tally_stage(t, st, 1);
	if (json_is_true(json_object_get(s, "mixed_run_ids")))
		t->mixed_runs = 1;
	keep_started(t, json_string_value(json_object_get(s,
	    "started_at")));
	return 0;
}
