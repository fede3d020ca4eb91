/*
 * tally.c: counting records, stage reports and shards' summaries into
 * the tally, and the run summary made from it (report.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit.h"
#include "log.h"
#include "report.h"

static int
is(const char *s, const char *lit)
{
	return s != NULL && strcmp(s, lit) == 0;
}

/* Adds the schema property prop to fields, if counted; -1 (warned): full. */
static int
add_field(json_t *fields, const char *name, json_t *prop,
    const char *topics_field)
{
	const char *type = json_string_value(json_object_get(prop, "type"));
	json_t *items = json_object_get(prop, "items"), *v;
	json_t *ml = json_object_get(prop, "maxLength");
	json_t *en = json_object_get(is(type, "array") ? items : prop, "enum");
	const char *kind = NULL;
	size_t i;

	if (!is(json_string_value(json_object_get(items, "type")), "string"))
		items = NULL;   /* only arrays of strings are counted */
	if ((is(type, "string") || (is(type, "array") && items)) &&
	    json_is_array(en))
		kind = "enum";
	else if (is(type, "string") && json_is_integer(ml) &&
	    json_integer_value(ml) <= 16)
		kind = "label";         /* a short code such as a language */
	else if (is(type, "array") && items != NULL)
		kind = strcmp(name, topics_field) == 0 ? "topics" : "items";
	else if ((is(type, "number") || is(type, "integer")) &&
	    json_is_number(json_object_get(prop, "minimum")) &&
	    json_is_number(json_object_get(prop, "maximum")))
		kind = "mean";
	if (kind == NULL)
		return 0;
	if (json_object_size(fields) == 16) {
		dt_warn("schema: more than 16 fields to report; '%s' and later "
		    "ones are left out", name);
		return -1;
	}
	json_object_set_new(fields, name, json_pack("{sssiso*so*so*}", "kind",
	    kind, "records", 0, "counts", is(kind, "items") || is(kind,
	    "mean") ? NULL : json_object(), "items", is(kind, "items") ?
	    json_integer(0) : NULL, "sum", is(kind, "mean") ? json_real(0) :
	    NULL));
	json_array_foreach(is(kind, "enum") ? en : NULL, i, v)
		if (json_is_string(v) && i < 32)
			json_object_set_new(json_object_get(json_object_get(
			    fields, name), "counts"), json_string_value(v),
			    json_integer(0));
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
	t->stages = json_object();
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
	/* Per field: its kind, records, and counts, items or sum. */
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
	json_decref(t->n);
	json_decref(t->stages);
	t->n = t->stages = NULL;
}

/* Adds x to obj's number at key (absent: 0), a real when real is set. */
static void
add_to(json_t *obj, const char *key, double x, int real)
{
	json_t *old = json_object_get(obj, key);
	double sum = json_number_value(old) + x;

	json_object_set_new(obj, key, real || json_is_real(old) ||
	    fabs(sum) >= 9e15 ? json_real(sum) : json_integer((json_int_t)sum));
}

/* Adds the numbers in from to those in to, object by object; arrays join. */
static void
add_counts(json_t *to, json_t *from)
{
	const char *k;
	json_t *v, *old;

	json_object_foreach(from, k, v) {
		old = json_object_get(to, k);
		if (json_is_object(old))
			add_counts(old, v);
		else if (json_is_array(old))
			json_array_extend(old, v);
		else if (json_is_number(v) && (old == NULL ||
		    json_is_number(old)))
			add_to(to, k, json_number_value(v), json_is_real(v));
	}
}

/* Counts the name (normalised) in obj: 15 names, then "other". */
static void
count_named(json_t *obj, const char *name, size_t len)
{
	char clean[32];

	dt_rpt_topic_norm(name, len, clean, sizeof(clean));
	if (clean[0] == '\0' || (json_object_get(obj, clean) == NULL &&
	    json_object_size(obj) >= 15))
		snprintf(clean, sizeof(clean), "other");
	add_to(obj, clean, 1, 0);
}

/* *out: the number v, its "total_cost" or its "*_cost" sum.  0: none. */
static int
cost_of(json_t *v, double *out)
{
	json_t *total = json_object_get(v, "total_cost"), *m;
	int has = json_is_number(v) || json_is_number(total);
	json_t *parts = has ? NULL : v;
	const char *k;

	*out = json_number_value(json_is_number(v) ? v : total);
	json_object_foreach(parts, k, m)
		if (strlen(k) > 5 && is(k + strlen(k) - 5, "_cost") &&
		    json_is_number(m)) {
			*out += json_number_value(m);
			has = 1;
		}
	return has;
}

static double
whole(json_t *v)
{
	return json_number_value(v) > 0 ? floor(json_number_value(v)) : 0;
}

/* The tokens and cost of the record rec. */
static void
tally_usage(json_t *n, json_t *rec)
{
	json_t *u = json_object_get(rec, "usage");
	json_t *tok = json_object_get(n, "tokens");
	double p = whole(json_object_get(u, "prompt_tokens")) +
	    whole(json_object_get(u, "input_tokens"));
	double c = whole(json_object_get(u, "completion_tokens")) +
	    whole(json_object_get(u, "output_tokens"));
	double cost;

	add_to(tok, "prompt", p, 0);
	add_to(tok, "completion", c, 0);
	add_to(tok, "total", json_is_number(json_object_get(u,
	    "total_tokens")) ? whole(json_object_get(u, "total_tokens")) :
	    p + c, 0);
	if (((cost_of(json_object_get(u, "cost"), &cost) ||
	    cost_of(json_object_get(u, "cost_usd"), &cost)) && cost >= 0) ||
	    (cost_of(json_object_get(rec, "cost_usd"), &cost) && cost >= 0)) {
		add_to(n, "cost", cost, 1);
		add_to(n, "with_cost", 1, 0);
	}
}

/* Counts the string v in counts: an enum value or "other", or a topic. */
static void
tally_string(json_t *counts, int is_enum, json_t *v)
{
	char key[DT_RPT_KEY_MAX + 1];
	const char *s = json_string_value(v);

	if (is_enum && s != NULL)
		add_to(counts, json_object_get(counts, s) ? s : "other", 1, 0);
	else if (s != NULL && dt_rpt_topic_norm(s, json_string_length(v), key,
	    sizeof(key)) > 0)
		add_to(counts, key, 1, 0);
}

/* Counts the value v of the field f; returns 1 when its type is counted. */
static int
tally_value(json_t *f, json_t *v)
{
	const char *kind = json_string_value(json_object_get(f, "kind"));
	json_t *counts = json_object_get(f, "counts"), *item;
	size_t i;

	if (json_is_string(v) && (is(kind, "enum") || is(kind, "label")))
		tally_string(counts, is(kind, "enum"), v);
	else if (json_is_array(v) && (is(kind, "enum") || is(kind, "topics")))
		json_array_foreach(v, i, item)
			tally_string(counts, is(kind, "enum"), item);
	else if (is(kind, "items") && json_array_size(v) > 0)
		add_to(f, "items", (double)json_array_size(v), 0);
	else if (is(kind, "mean") && json_is_number(v))
		add_to(f, "sum", json_number_value(v), 1);
	else
		return 0;
	return 1;
}

/* Adds the string m to the stage's distinct messages, clipped; 4 at most. */
static void
add_message(json_t *s, json_t *m)
{
	json_t *all = json_object_get(s, "messages"), *old;
	char clean[200 * 4 + 8];
	size_t i;

	if (json_string_length(m) == 0 || json_array_size(all) >= 4)
		return;
	dt_rpt_clip(json_string_value(m), 200, clean, sizeof(clean));
	json_array_foreach(all, i, old)
		if (is(json_string_value(old), clean))
			return;
	json_array_append_new(all, json_string(clean));
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
 * Adds a stage report, or a shard's stage, to its stage (8 at most):
 * counts add, the worst status and interrupted or missing stay.
 */
static void
tally_stage(struct dt_rpt_tally *t, json_t *rec)
{
	const char *name = json_string_value(json_object_get(rec, "stage"));
	double st = json_number_value(json_object_get(rec, "status"));
	json_t *reports = json_object_get(rec, "reports"), *s, *m;
	char clean[32];
	size_t i;

	if (name == NULL)
		return;
	dt_rpt_clip(name, 24, clean, sizeof(clean));
	if ((s = json_object_get(t->stages, clean)) == NULL &&
	    json_object_size(t->stages) == 8) {
		dt_warn("more than 8 stages report; '%s' is left out", clean);
		return;
	}
	if (s == NULL)
		json_object_set_new(t->stages, clean, s = json_pack("{sssisbsi"
		    "s[]s{}}", "stage", clean, "status", 0, "interrupted", 0,
		    "reports", 0, "messages", "counts"));
	add_to(s, "reports", json_is_number(reports) ?
	    json_number_value(reports) : 1, 0);
	json_object_set_new(s, "status", json_integer(dt_exit_worse((int)
	    json_integer_value(json_object_get(s, "status")), st >= 0 &&
	    st <= 255 ? (int)st : 0)));
	if (json_is_true(json_object_get(rec, "interrupted")))
		json_object_set_new(s, "interrupted", json_true());
	if (json_is_true(json_object_get(rec, "missing")))
		json_object_set_new(s, "missing", json_true());
	add_counts(json_object_get(s, "counts"), json_object_get(rec,
	    "counts"));
	add_message(s, json_object_get(rec, "message"));
	json_array_foreach(json_object_get(rec, "messages"), i, m)
		add_message(s, m);
	keep_started(t, json_string_value(json_object_get(rec, "started_at")));
}

/* The status, error kind, failure and reuse of the record rec. */
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
	count_named(json_object_get(n, "by_status"), st, len);
	if (has_error && json_is_string(kind))
		count_named(json_object_get(n, "by_error"),
		    json_string_value(kind), json_string_length(kind));
	else if (has_error)
		count_named(json_object_get(n, "by_error"), "unknown", 7);
	/* Given back to the queue with its attempt is not failed. */
	if (is(st, "failed") || (has_error && !is(st, "released")))
		add_to(n, "failed", 1, 0);
	/* dt-fetch --reuse: an analysis that cost nothing this time. */
	if (is(st, "stored") && (json_is_object(json_object_get(rec,
	    "reused")) || json_is_object(json_object_get(rec, "same_text"))))
		add_to(n, "reused", 1, 0);
}

void
dt_rpt_tally_add(struct dt_rpt_tally *t, json_t *rec)
{
	const char *run_id = json_string_value(json_object_get(rec, "run_id"));
	json_t *analysis = json_object_get(rec, "analysis"), *f;
	json_t *ms = json_object_get(rec, "latency_ms");
	const char *name;
	char id[sizeof(t->run_id)];

	if (run_id != NULL && *run_id != '\0') {
		dt_rpt_clip(run_id, 100, id, sizeof(id));
		if (t->run_id[0] == '\0')
			memcpy(t->run_id, id, sizeof(id));
		else
			t->mixed_runs |= strcmp(t->run_id, id) != 0;
	}
	if (json_is_string(json_object_get(rec, "stage")) &&
	    json_object_get(rec, "id") == NULL) {
		tally_stage(t, rec);
		return;
	}
	add_to(t->n, "records", 1, 0);
	tally_status(t->n, rec);
	tally_usage(t->n, rec);
	if (json_is_number(ms) && json_number_value(ms) >= 0)
		json_array_append_new(json_object_get(t->n, "latency_ms"),
		    json_integer((json_int_t)fmin(json_number_value(ms),
		    9e18)));
	if (!json_is_object(analysis))
		return;
	add_to(t->n, "analyzed", 1, 0);
	json_object_foreach(json_object_get(t->n, "fields"), name, f)
		if (tally_value(f, json_object_get(analysis, name)))
			add_to(f, "records", 1, 0);
}

void
dt_rpt_tally_expect(struct dt_rpt_tally *t, const char *list)
{
	char *names = strdup(list), *name, *save, clean[32], msg[160];
	json_t *rec;

	for (name = names ? strtok_r(names, ", ", &save) : NULL; name != NULL;
	    name = strtok_r(NULL, ", ", &save)) {
		dt_rpt_clip(name, 24, clean, sizeof(clean));
		if (json_object_get(t->stages, clean) != NULL)
			continue;
		snprintf(msg, sizeof(msg), "%s ended without its stage record "
		    "(crashed or killed?)", clean);
		dt_error("%s", msg);
		rec = json_pack("{sssisbsiss}", "stage", clean, "status",
		    DT_EXIT_TEMPFAIL, "missing", 1, "reports", 0, "message",
		    msg);
		tally_stage(t, rec);
		json_decref(rec);
	}
	free(names);
}

int
dt_rpt_tally_merge(struct dt_rpt_tally *t, json_t *s)
{
	json_t *in = json_object_get(json_object_get(s, "shard"), "internal");
	json_t *st;
	size_t i;

	if (!json_is_object(in)) {
		dt_warn("a shard's summary has no shard part; it is left out");
		return -1;
	}
	add_counts(t->n, in);
	t->bad_lines += (uint64_t)whole(json_object_get(s, "bad_lines"));
	json_array_foreach(json_object_get(s, "stages"), i, st)
		tally_stage(t, st);
	t->mixed_runs |= json_is_true(json_object_get(s, "mixed_run_ids"));
	keep_started(t, json_string_value(json_object_get(s, "started_at")));
	return 0;
}

static json_t *
rounded(double v, double unit)
{
	return json_real(round(v / unit) * unit);
}

/* Whether count a of value x comes before count b of value y. */
static int
before(json_int_t a, const char *x, json_int_t b, const char *y)
{
	return a > b || (a == b && strcmp(x, y) < 0);
}

/* counts' k most common values, [{"value", "count"}]; *shown adds them. */
static json_t *
top_values(json_t *counts, size_t k, json_int_t *shown)
{
	json_t *arr = json_array(), *v;
	const char *key, *best, *last = NULL;
	json_int_t n = 0, last_n = 0;

	while (json_array_size(arr) < k) {
		best = NULL;
		json_object_foreach(counts, key, v)
			if ((last == NULL || before(last_n, last,
			    json_integer_value(v), key)) && (best == NULL ||
			    before(json_integer_value(v), key, n, best))) {
				best = key;
				n = json_integer_value(v);
			}
		if ((last = best) == NULL)
			break;
		json_array_append_new(arr, json_pack("{sssI}", "value", best,
		    "count", n));
		*shown += n;
		last_n = n;
	}
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
	int failed = 0, partial = failed_recs > 0 || t->bad_lines > 0, st, intr;
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
	*status = dt_exit_worse(dt_exit_worse(*status, failed_recs > 0 ?
	    DT_EXIT_PARTIAL : 0), t->bad_lines > 0 ? DT_EXIT_DATAERR : 0);
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
