/*
 * tally.c: counting records, stage reports and shards' summaries into
 * the tally (tally.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "exit.h"
#include "log.h"
#include "tally.h"
#include "text.h"

#define DT_RPT_MAX_FIELDS 16
#define DT_RPT_MAX_ENUM 32
#define DT_RPT_MAX_STATUS 16
#define DT_RPT_MAX_KINDS 16
#define DT_RPT_MAX_STAGES 8
#define DT_RPT_MAX_MESSAGES 4
#define DT_RPT_MAX_COUNTS 16

/* What the report does with a schema property: its kind, or NULL. */
static const char *
field_kind(const char *name, json_t *prop, const char *topics_field,
    json_t **enumv)
{
	const char *type = json_string_value(json_object_get(prop, "type"));
	json_t *ml = json_object_get(prop, "maxLength");

	*enumv = json_object_get(prop, "enum");
	if (type == NULL)
		return NULL;
	if (strcmp(type, "string") == 0 && json_is_array(*enumv))
		return "enum";
	/* A short code such as a language: its values are labels. */
	if (strcmp(type, "string") == 0)
		return json_is_integer(ml) && json_integer_value(ml) <= 16 ?
		    "label" : NULL;
	if (strcmp(type, "array") == 0) {
		prop = json_object_get(prop, "items");
		type = json_string_value(json_object_get(prop, "type"));
		if (type == NULL || strcmp(type, "string") != 0)
			return NULL;
		*enumv = json_object_get(prop, "enum");
		return json_is_array(*enumv) ? "enum" :
		    strcmp(name, topics_field) == 0 ? "topics" : "items";
	}
	if ((strcmp(type, "number") == 0 || strcmp(type, "integer") == 0) &&
	    json_is_number(json_object_get(prop, "minimum")) &&
	    json_is_number(json_object_get(prop, "maximum")))
		return "mean";
	return NULL;
}

/*
 * Adds the schema's property to fields, unless it is not reported.
 * Returns 0, or -1 (warned) when fields is full.
 */
static int
add_field(json_t *fields, const char *name, json_t *prop,
    const char *topics_field)
{
	json_t *enumv, *v, *f, *counts = NULL;
	const char *kind = field_kind(name, prop, topics_field, &enumv);
	size_t i;

	if (kind == NULL)
		return 0;
	if (json_object_size(fields) == DT_RPT_MAX_FIELDS) {
		dt_warn("schema: more than %d fields to report; '%s' and later "
		    "ones are left out", DT_RPT_MAX_FIELDS, name);
		return -1;
	}
	f = json_pack("{sssi}", "kind", kind, "records", 0);
	if (strcmp(kind, "items") == 0)
		json_object_set_new(f, "items", json_integer(0));
	else if (strcmp(kind, "mean") == 0)
		json_object_set_new(f, "sum", json_real(0));
	else
		json_object_set_new(f, "counts", counts = json_object());
	json_array_foreach(strcmp(kind, "enum") == 0 ? enumv : NULL, i, v)
		if (json_is_string(v) && i < DT_RPT_MAX_ENUM)
			json_object_set_new(counts, json_string_value(v),
			    json_integer(0));
	json_object_set_new(fields, name, f);
	return 0;
}

int
dt_rpt_tally_init(struct dt_rpt_tally *t, json_t *schema, size_t top,
    const char *topics_field)
{
	json_t *props = json_object_get(schema, "properties"), *prop, *own;
	json_t *fields = json_object();
	const char *name;

	memset(t, 0, sizeof(*t));
	t->top = top;
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
		if (add_field(fields, name, prop, topics_field) < 0)
			break;
	json_decref(own);
	t->n = json_pack("{sisisisisisfs{}s{}s{sisisi}s[]so}", "records", 0,
	    "failed", 0, "analyzed", 0, "reused", 0, "with_cost", 0, "cost",
	    0.0, "by_status", "by_error", "tokens", "prompt", 0,
	    "completion", 0, "total", 0, "latency_ms", "fields", fields);
	if (t->n == NULL || t->stages == NULL) {
		dt_error("out of memory");
		dt_rpt_tally_free(t);
		return -1;
	}
	return 0;
}

void
dt_rpt_tally_free(struct dt_rpt_tally *t)
{
	if (t == NULL)
		return;
	json_decref(t->n);
	json_decref(t->stages);
	t->n = t->stages = NULL;
}

/*
 * Adds x to the number at key in obj (absent: 0), which stays an
 * integer unless it is a real, real is set or it grows past 9e15.
 */
static void
add_to(json_t *obj, const char *key, double x, int real)
{
	json_t *old = json_object_get(obj, key);
	double sum = json_number_value(old) + x;

	real = real || json_is_real(old) || fabs(sum) >= 9e15;
	if (json_is_integer(old) && !real)
		json_integer_set(old, (json_int_t)sum);
	else if (json_is_real(old))
		json_real_set(old, sum);
	else
		json_object_set_new(obj, key, real ? json_real(sum) :
		    json_integer((json_int_t)sum));
}

/*
 * Adds 1 to name's count (normalised as a topic) in obj, which keeps at
 * most max names: the last is "other", for nameless and later ones.
 */
static void
count_named(json_t *obj, size_t max, const char *name, size_t len)
{
	char clean[32];

	dt_rpt_topic_norm(name, len, clean, sizeof(clean));
	if (clean[0] == '\0' || (json_object_get(obj, clean) == NULL &&
	    json_object_size(obj) >= max - 1))
		snprintf(clean, sizeof(clean), "other");
	add_to(obj, clean, 1, 0);
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

/* The whole part of the sum of the positive numbers at a and b of u. */
static double
positive(json_t *u, const char *a, const char *b)
{
	double x, y;

	return floor((number(json_object_get(u, a), &x) && x > 0 ? x : 0) +
	    (number(json_object_get(u, b), &y) && y > 0 ? y : 0));
}

static void
tally_usage(json_t *n, json_t *rec)
{
	json_t *u = json_object_get(rec, "usage");
	json_t *tok = json_object_get(n, "tokens");
	double p = positive(u, "prompt_tokens", "input_tokens");
	double c = positive(u, "completion_tokens", "output_tokens");
	double total, cost;

	add_to(tok, "prompt", p, 0);
	add_to(tok, "completion", c, 0);
	add_to(tok, "total", number(json_object_get(u, "total_tokens"),
	    &total) ? floor(total > 0 ? total : 0) : p + c, 0);
	if (((cost_of(json_object_get(u, "cost"), &cost) ||
	    cost_of(json_object_get(u, "cost_usd"), &cost)) && cost >= 0) ||
	    (cost_of(json_object_get(rec, "cost_usd"), &cost) && cost >= 0)) {
		add_to(n, "cost", cost, 1);
		add_to(n, "with_cost", 1, 0);
	}
}

/* Counts a string of an enum, label or topics field f of kind kind. */
static void
tally_string(json_t *f, const char *kind, json_t *v)
{
	json_t *counts = json_object_get(f, "counts");
	char key[DT_RPT_KEY_MAX + 1];
	const char *s = json_string_value(v);

	if (s == NULL)
		return;
	if (strcmp(kind, "enum") != 0) {
		if (dt_rpt_topic_norm(s, json_string_length(v), key,
		    sizeof(key)) > 0)
			add_to(counts, key, 1, 0);
		return;
	}
	/* A value outside the enum (or with a NUL) is "other". */
	add_to(counts, json_object_get(counts, s) != NULL &&
	    strlen(s) == json_string_length(v) ? s : "other", 1, 0);
}

/*
 * Counts the value v of the analysis field f.  Returns 1 when v has the
 * type the field's kind counts, else 0.
 */
static int
tally_value(json_t *f, json_t *v)
{
	const char *kind = json_string_value(json_object_get(f, "kind"));
	int list = strcmp(kind, "enum") == 0 || strcmp(kind, "topics") == 0;
	json_t *item;
	size_t j;

	if (json_is_string(v) && (strcmp(kind, "enum") == 0 ||
	    strcmp(kind, "label") == 0))
		tally_string(f, kind, v);
	else if (json_is_array(v) && list)
		json_array_foreach(v, j, item)
			tally_string(f, kind, item);
	else if (strcmp(kind, "items") == 0 && json_array_size(v) > 0)
		add_to(f, "items", (double)json_array_size(v), 0);
	else if (strcmp(kind, "mean") == 0 && json_is_number(v))
		add_to(f, "sum", json_number_value(v), 1);
	else
		return 0;
	return 1;
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
stage_add(json_t *s, double reports, int status, int interrupted,
    int missing, json_t *counts)
{
	json_t *sums = json_object_get(s, "counts"), *v;
	const char *k;

	add_to(s, "reports", reports, 0);
	json_object_set_new(s, "status", json_integer(dt_exit_worse((int)
	    json_integer_value(json_object_get(s, "status")), status)));
	if (interrupted)
		json_object_set_new(s, "interrupted", json_true());
	if (missing)
		json_object_set_new(s, "missing", json_true());
	json_object_foreach(counts, k, v)
		if (json_is_number(v) && strlen(k) < 32 &&
		    (json_object_get(sums, k) != NULL ||
		    json_object_size(sums) < DT_RPT_MAX_COUNTS))
			add_to(sums, k, json_number_value(v), json_is_real(v));
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
	s = json_pack("{sssisbsis[]s{}}", "stage", clean, "status", 0,
	    "interrupted", 0, "reports", 0, "messages", "counts");
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
	double st, reports;
	size_t i;
	int added;

	if (name == NULL || (s = find_stage(t, name, &added)) == NULL)
		return;
	if (!number(json_object_get(rec, "status"), &st) || st < 0 || st > 255)
		st = 0;
	reports = 1;
	if (merged && !number(json_object_get(rec, "reports"), &reports))
		reports = 0;
	stage_add(s, reports, (int)st, json_is_true(json_object_get(rec,
	    "interrupted")), merged && json_is_true(json_object_get(rec,
	    "missing")), json_object_get(rec, "counts"));
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

/* The status, error kind and failure of a record. */
static void
tally_status(json_t *n, json_t *rec)
{
	json_t *error = json_object_get(rec, "error");
	json_t *kind = json_object_get(error, "kind");
	int has_error = error != NULL && !json_is_null(error);
	const char *st = json_string_value(json_object_get(rec, "status"));
	size_t len = json_string_length(json_object_get(rec, "status"));

	/* Replayed output of an earlier stage has none: derive one. */
	if (st == NULL) {
		st = json_is_object(json_object_get(rec, "analysis")) ?
		    "analyzed" : has_error ? "failed" : "fetched";
		len = strlen(st);
	}
	count_named(json_object_get(n, "by_status"), DT_RPT_MAX_STATUS, st,
	    len);
	if (has_error)
		count_named(json_object_get(n, "by_error"), DT_RPT_MAX_KINDS,
		    json_is_string(kind) ? json_string_value(kind) : "unknown",
		    json_is_string(kind) ? json_string_length(kind) : 7);
	/* Given back to the queue with its attempt is not failed. */
	if (strcmp(st, "failed") == 0 || (has_error &&
	    strcmp(st, "released") != 0))
		add_to(n, "failed", 1, 0);
	/* dt-fetch --reuse: an analysis that cost nothing this time. */
	if (strcmp(st, "stored") == 0 &&
	    (json_is_object(json_object_get(rec, "reused")) ||
	    json_is_object(json_object_get(rec, "same_text"))))
		add_to(n, "reused", 1, 0);
}

void
dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec)
{
	json_t *analysis = json_object_get(rec, "analysis"), *f;
	const char *name;
	double ms;

	tally_run_id(t, rec);
	if (json_is_string(json_object_get(rec, "stage")) &&
	    json_object_get(rec, "id") == NULL) {
		tally_stage(t, rec, 0);
		return;
	}
	add_to(t->n, "records", 1, 0);
	tally_status(t->n, rec);
	tally_usage(t->n, rec);
	if (number(json_object_get(rec, "latency_ms"), &ms) && ms >= 0)
		json_array_append_new(json_object_get(t->n, "latency_ms"),
		    json_integer(ms < 9e18 ? (json_int_t)ms : 0));
	if (!json_is_object(analysis))
		return;
	add_to(t->n, "analyzed", 1, 0);
	json_object_foreach(json_object_get(t->n, "fields"), name, f)
		if (tally_value(f, json_object_get(analysis, name)))
			add_to(f, "records", 1, 0);
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

/*
 * Adds the counts in from to those in to: numbers add, objects member by
 * member, arrays join, and what to lacks is copied.
 */
static void
add_counts(json_t *to, json_t *from)
{
	const char *k;
	json_t *v, *old;

	json_object_foreach(from, k, v) {
		old = json_object_get(to, k);
		if (old == NULL)
			json_object_set_new(to, k, json_deep_copy(v));
		else if (json_is_object(old))
			add_counts(old, v);
		else if (json_is_array(old))
			json_array_extend(old, v);
		else if (json_is_number(old) && json_is_number(v))
			add_to(to, k, json_number_value(v), json_is_real(v));
	}
}

int
dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s)
{
	json_t *in = json_object_get(json_object_get(s, "shard"), "internal");
	json_t *st;
	double bad;
	size_t i;

	if (!json_is_object(in)) {
		dt_warn("a shard's summary has no shard part; it is left out");
		return -1;
	}
	add_counts(t->n, in);
	if (number(json_object_get(s, "bad_lines"), &bad) && bad > 0)
		t->bad_lines += (uint64_t)bad;
	json_array_foreach(json_object_get(s, "stages"), i, st)
		tally_stage(t, st, 1);
	if (json_is_true(json_object_get(s, "mixed_run_ids")))
		t->mixed_runs = 1;
	keep_started(t, json_string_value(json_object_get(s,
	    "started_at")));
	return 0;
}
