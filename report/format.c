/*
 * format.c: the Telegram report, made from the run summary.
 *
 * The report is Telegram HTML.  Every line closes the tags it opens, so
 * that a long report can be cut between any two lines into messages
 * that each parse on their own.  Everything that comes from data (run
 * ids, status names, topics, stage messages) is clipped to a bounded
 * number of characters, stripped of control characters and escaped, so
 * no line can grow past a message or break the markup.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "format.h"
#include "text.h"
#include "words.h"

#define TOPIC_CHARS 48
#define NAME_CHARS 32
#define MESSAGE_CHARS 200
#define RUN_ID_CHARS 64

/* Numbers. */

static void
put_uint(struct dt_buf *b, const struct dt_rpt_words *w, unsigned long long v)
{
	char digits[32];
	int n, i;

	n = snprintf(digits, sizeof(digits), "%llu", v);
	for (i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			dt_buf_puts(b, w->thousands);
		dt_buf_add(b, digits + i, 1);
	}
}

static void
put_int(struct dt_buf *b, const struct dt_rpt_words *w, long long v, int sign)
{
	if (v < 0) {
		dt_buf_puts(b, "\xE2\x88\x92"); /* − */
		put_uint(b, w, (unsigned long long)-(v + 1) + 1);
		return;
	}
	if (sign)
		dt_buf_puts(b, "+");
	put_uint(b, w, (unsigned long long)v);
}

/* A fraction with the language's decimal mark. */
static void
put_dec(struct dt_buf *b, const struct dt_rpt_words *w, double v, int places)
{
	char tmp[64], *p;

	snprintf(tmp, sizeof(tmp), "%.*f", places, v);
	if ((p = strchr(tmp, '.')) != NULL)
		*p = w->decimal;
	dt_buf_puts(b, tmp);
}

static void
put_cost(struct dt_buf *b, const struct dt_rpt_words *w, double v, int sign)
{
	double a = fabs(v);
	int places = a >= 100 ? 0 : a >= 1 ? 2 : 4;

	if (v < 0)
		dt_buf_puts(b, "\xE2\x88\x92");
	else if (sign)
		dt_buf_puts(b, "+");
	if (w == &dt_rpt_ru) {
		put_dec(b, w, a, places);
		dt_buf_puts(b, "\xC2\xA0$");
	} else {
		dt_buf_puts(b, "$");
		put_dec(b, w, a, places);
	}
}

static void
put_ms(struct dt_buf *b, const struct dt_rpt_words *w, long long ms)
{
	if (ms < 1000) {
		dt_buf_printf(b, "%lld\xC2\xA0%s", ms, w->unit_ms);
		return;
	}
	put_dec(b, w, (double)ms / 1000.0, ms < 10000 ? 2 : 1);
	dt_buf_printf(b, "\xC2\xA0%s", w->unit_s);
}

static void
put_duration(struct dt_buf *b, const struct dt_rpt_words *w, double secs)
{
	long long s = llround(secs);

	if (secs < 10) {
		put_dec(b, w, secs, 1);
		dt_buf_printf(b, "\xC2\xA0%s", w->unit_s);
		return;
	}
	if (s >= 3600)
		dt_buf_printf(b, "%lld\xC2\xA0%s %lld\xC2\xA0%s", s / 3600,
		    w->unit_h, s % 3600 / 60, w->unit_min);
	else if (s >= 60)
		dt_buf_printf(b, "%lld\xC2\xA0%s %lld\xC2\xA0%s", s / 60,
		    w->unit_min, s % 60, w->unit_s);
	else
		dt_buf_printf(b, "%lld\xC2\xA0%s", s, w->unit_s);
}

static void
put_share(struct dt_buf *b, double share)
{
	double pct = share * 100;

	if (pct > 0 && pct < 1)
		dt_buf_puts(b, "&lt;1%");
	else
		dt_buf_printf(b, "%.0f%%", pct);
}

/* Escaped, clipped text from the data. */
static void
put_text(struct dt_buf *b, const char *s, size_t max_chars)
{
	char clip[1024];

	dt_rpt_clip(s, max_chars, clip, sizeof(clip));
	dt_rpt_buf_html(b, clip, strlen(clip));
}

/* A status, field or enum name, in the report's language when known. */
static void
put_name(struct dt_buf *b, const struct dt_rpt_words *w, const char *name)
{
	const char *t = dt_rpt_word(w, name);

	if (t != NULL)
		dt_buf_puts(b, t);
	else
		put_text(b, name, NAME_CHARS);
}

static const char *const SEP = " \xC2\xB7 "; /* " · " */

/* The lines. */

struct lines {
	char **v;
	size_t n, cap;
	int oom;
};

/* Takes the buffer's text as the next line and empties the buffer. */
static void
line_end(struct lines *l, struct dt_buf *b)
{
	char **p;

	if (b->oom || l->oom) {
		l->oom = 1;
		dt_buf_free(b);
		return;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;

		if ((p = realloc(l->v, cap * sizeof(*p))) == NULL) {
			l->oom = 1;
			dt_buf_free(b);
			return;
		}
		l->v = p;
		l->cap = cap;
	}
	if (b->p == NULL)
		dt_buf_add(b, "", 0);
	if (b->oom) {
		l->oom = 1;
		return;
	}
	l->v[l->n++] = b->p;
	memset(b, 0, sizeof(*b));
}

static json_int_t
int_at(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/*
 * A run merged from shards: "Shards: 3 of 3", or "Shards: 2 of 3;
 * missing: 2 (no finished ledger row)".
 */
static void
shard_line(struct lines *l, const struct dt_rpt_words *w, json_t *shards)
{
	struct dt_buf b = {0};
	json_t *missing = json_object_get(shards, "missing"), *v;
	size_t n = json_array_size(missing), i;
	long long of = int_at(shards, "of");

	if (!json_is_object(shards))
		return;
	dt_buf_printf(&b, "%s: %lld %s %lld", w == &dt_rpt_ru ? "Шарды" :
	    "Shards", of - (long long)n, w == &dt_rpt_ru ? "из" : "of", of);
	if (n > 0) {
		dt_buf_puts(&b, w == &dt_rpt_ru ? "; нет отчёта от " :
		    "; missing: ");
		json_array_foreach(missing, i, v)
			dt_buf_printf(&b, "%s%lld", i > 0 ? ", " : "",
			    (long long)json_integer_value(v));
		dt_buf_puts(&b, w == &dt_rpt_ru ? " (не закончили вовремя)" :
		    " (no finished ledger row)");
	}
	line_end(l, &b);
}

/* Tokens and cost, latency and duration. */
static void
usage_lines(struct lines *l, const struct dt_rpt_words *w, json_t *s)
{
	struct dt_buf b = {0};
	json_t *lat, *tok, *cost, *dur;

	tok = json_object_get(s, "tokens");
	cost = json_object_get(s, "cost_usd");
	if (int_at(tok, "total") > 0 || json_is_number(cost)) {
		dt_buf_printf(&b, "%s: ", w->tokens);
		put_uint(&b, w, (unsigned long long)int_at(tok, "total"));
		if (json_is_number(cost)) {
			dt_buf_printf(&b, "%s%s ", SEP, w->cost);
			put_cost(&b, w, json_number_value(cost), 0);
		}
		line_end(l, &b);
	}

	lat = json_object_get(s, "latency_ms");
	if (int_at(lat, "count") > 0) {
		dt_buf_printf(&b, "%s: p50 ", w->latency);
		put_ms(&b, w, int_at(lat, "p50"));
		dt_buf_printf(&b, "%sp95 ", SEP);
		put_ms(&b, w, int_at(lat, "p95"));
		dt_buf_printf(&b, "%s%s ", SEP, w->max);
		put_ms(&b, w, int_at(lat, "max"));
		line_end(l, &b);
	}

	if (json_is_number(dur = json_object_get(s, "duration_s"))) {
		dt_buf_printf(&b, "%s: ", w->duration);
		put_duration(&b, w, json_number_value(dur));
		line_end(l, &b);
	}
}

/* The backlog and the difference from the previous run, when known. */
static void
database_lines(struct lines *l, const struct dt_rpt_words *w, json_t *s)
{
	struct dt_buf b = {0};
	json_t *v, *backlog, *prev;

	if (json_is_object(backlog = json_object_get(s, "backlog"))) {
		static const char *const keys[][2] = {{"unclaimed",
		    "unclaimed"}, {"leased", "leased"}, {"failed", "parked"}};
		size_t i;

		dt_buf_printf(&b, "%s: ", w->backlog);
		for (i = 0; i < 3; i++) {
			if (i > 0)
				dt_buf_puts(&b, SEP);
			put_uint(&b, w, (unsigned long long)int_at(backlog,
			    keys[i][0]));
			dt_buf_printf(&b, " %s",
			    dt_rpt_word(w, keys[i][1]));
		}
		line_end(l, &b);
	}

	prev = json_object_get(json_object_get(s, "previous"), "delta");
	if (json_is_object(prev)) {
		dt_buf_printf(&b, "%s: %s ", w->since, w->lc_records);
		put_int(&b, w, int_at(prev, "records"), 1);
		dt_buf_printf(&b, "%s%s ", SEP, w->lc_failed);
		put_int(&b, w, int_at(prev, "failed"), 1);
		dt_buf_printf(&b, "%s%s ", SEP, w->lc_tokens);
		put_int(&b, w, int_at(prev, "tokens"), 1);
		if (json_is_number(v = json_object_get(prev, "cost_usd"))) {
			dt_buf_printf(&b, "%s%s ", SEP, w->cost);
			put_cost(&b, w, json_number_value(v), 1);
		}
		line_end(l, &b);
	}
}

static void
head_lines(struct lines *l, const struct dt_rpt_words *w, json_t *s)
{
	struct dt_buf b = {0};
	const char *state = json_string_value(json_object_get(s, "state"));
	const char *k;
	json_t *v;
	int first;

	dt_buf_puts(&b, w->title[state == NULL ? 2 :
	    strcmp(state, "ok") == 0 ? 0 : strcmp(state, "partial") == 0 ?
	    1 : 2]);
	line_end(l, &b);

	if (json_is_string(v = json_object_get(s, "run_id"))) {
		dt_buf_printf(&b, "%s: <code>", w->run);
		put_text(&b, json_string_value(v), RUN_ID_CHARS);
		dt_buf_puts(&b, "</code>");
		line_end(l, &b);
	}

	shard_line(l, w, json_object_get(s, "shards"));

	dt_buf_printf(&b, "%s: ", w->records);
	put_uint(&b, w, (unsigned long long)int_at(s, "records"));
	first = 1;
	json_object_foreach(json_object_get(s, "by_status"), k, v) {
		dt_buf_puts(&b, first ? " \xE2\x80\x94 " : SEP);
		put_name(&b, w, k);
		dt_buf_puts(&b, " ");
		put_uint(&b, w, (unsigned long long)json_integer_value(v));
		first = 0;
		/* Of the stored: analyses of texts seen before, at no cost. */
		if (strcmp(k, "stored") == 0 && int_at(s, "reused") > 0) {
			dt_buf_puts(&b, " (");
			put_uint(&b, w, (unsigned long long)int_at(s,
			    "reused"));
			dt_buf_puts(&b, " ");
			put_name(&b, w, "reused");
			dt_buf_puts(&b, ")");
		}
	}
	line_end(l, &b);

	if (json_object_size(json_object_get(s, "by_error")) > 0) {
		dt_buf_printf(&b, "%s: ", w->errors);
		first = 1;
		json_object_foreach(json_object_get(s, "by_error"), k, v) {
			if (!first)
				dt_buf_puts(&b, SEP);
			put_text(&b, k, NAME_CHARS);
			dt_buf_puts(&b, " ");
			put_uint(&b, w,
			    (unsigned long long)json_integer_value(v));
			first = 0;
		}
		line_end(l, &b);
	}
	if (int_at(s, "bad_lines") > 0) {
		dt_buf_printf(&b, "%s: ", w->bad_lines);
		put_uint(&b, w, (unsigned long long)int_at(s, "bad_lines"));
		line_end(l, &b);
	}
	usage_lines(l, w, s);
	database_lines(l, w, s);
}

/* What went wrong upstream: one line per stage that did not end well. */
static void
failure_lines(struct lines *l, const struct dt_rpt_words *w, json_t *s)
{
	struct dt_buf b = {0};
	json_t *stage, *msgs, *m;
	size_t i, j;
	int header = 0;

	json_array_foreach(json_object_get(s, "stages"), i, stage) {
		int status = (int)int_at(stage, "status");
		int interrupted = json_is_true(json_object_get(stage,
		    "interrupted"));
		const char *what;

		if (status == 0 && !interrupted)
			continue;
		if (!header) {
			line_end(l, &b);
			dt_buf_printf(&b, "<b>%s</b>", w->what_failed);
			line_end(l, &b);
			header = 1;
		}
		dt_buf_puts(&b, "\xE2\x80\xA2 <b>");
		put_text(&b, json_string_value(json_object_get(stage,
		    "stage")), NAME_CHARS);
		if (json_is_true(json_object_get(stage, "missing"))) {
			dt_buf_puts(&b, w == &dt_rpt_ru ? "</b> завершилась без "
			    "записи о стадии (упала или убита?)" : "</b> ended "
			    "without its stage record (crashed or killed?)");
			line_end(l, &b);
			continue;
		}
		dt_buf_printf(&b, "</b> (%s %d", w->exit, status);
		if ((what = dt_rpt_exit_words(w, status)) != NULL)
			dt_buf_printf(&b, ", %s", what);
		if (interrupted)
			dt_buf_printf(&b, ", %s", w->interrupted);
		if (int_at(stage, "reports") > 1) {
			dt_buf_puts(&b, ", ");
			dt_buf_printf(&b, w->reports_of,
			    (int)int_at(stage, "reports"));
		}
		dt_buf_puts(&b, ")");
		msgs = json_object_get(stage, "messages");
		json_array_foreach(msgs, j, m) {
			dt_buf_puts(&b, j == 0 ? ": " : "; ");
			put_text(&b, json_string_value(m), MESSAGE_CHARS);
		}
		line_end(l, &b);
	}
}

/* The value of one short analysis field of the given kind. */
static void
field_value(struct dt_buf *b, const struct dt_rpt_words *w,
    const char *kind, json_t *f)
{
	const char *k;
	json_t *v, *e;
	size_t i;
	int first;

	if (strcmp(kind, "enum") == 0) {
		json_t *shares = json_object_get(f, "shares");

		first = 1;
		json_object_foreach(shares, k, v) {
			if (json_real_value(v) <= 0)
				continue;
			if (!first)
				dt_buf_puts(b, SEP);
			put_name(b, w, k);
			dt_buf_puts(b, " ");
			put_share(b, json_real_value(v));
			first = 0;
		}
	} else if (strcmp(kind, "label") == 0) {
		double total = (double)int_at(f, "total");

		json_array_foreach(json_object_get(f, "top"), i, e) {
			if (i > 0)
				dt_buf_puts(b, SEP);
			put_text(b, json_string_value(
			    json_object_get(e, "value")), NAME_CHARS);
			dt_buf_puts(b, " ");
			put_share(b, (double)int_at(e, "count") /
			    total);
		}
		if (int_at(f, "other") > 0) {
			dt_buf_printf(b, "%s%s ", SEP, w->other);
			put_share(b, (double)int_at(f, "other") /
			    total);
		}
	} else if (strcmp(kind, "mean") == 0) {
		dt_buf_printf(b, "%s ", w->mean);
		put_dec(b, w, json_number_value(json_object_get(f,
		    "mean")), 2);
	} else if (strcmp(kind, "items") == 0) {
		struct dt_buf x = {0}, y = {0};

		put_uint(&x, w,
		    (unsigned long long)int_at(f, "items"));
		put_uint(&y, w,
		    (unsigned long long)int_at(f, "records"));
		dt_buf_printf(b, w->items_in, x.p ? x.p : "",
		    y.p ? y.p : "");
		dt_buf_free(&x);
		dt_buf_free(&y);
	}
}

static void
analysis_lines(struct lines *l, const struct dt_rpt_words *w, json_t *s)
{
	struct dt_buf b = {0};
	json_t *an = json_object_get(s, "analysis"), *f, *e;
	const char *name, *kind;
	size_t i;

	if (int_at(an, "records") == 0)
		return;
	line_end(l, &b);
	dt_buf_printf(&b, "<b>%s</b>: ", w->analyses);
	put_uint(&b, w, (unsigned long long)int_at(an, "records"));
	line_end(l, &b);
	/* Short fields first, the topic list last. */
	json_object_foreach(json_object_get(an, "fields"), name, f) {
		kind = json_string_value(json_object_get(f, "kind"));
		if (kind == NULL || strcmp(kind, "topics") == 0 ||
		    int_at(f, "records") == 0)
			continue;
		dt_buf_puts(&b, "<b>");
		put_name(&b, w, name);
		dt_buf_puts(&b, "</b>: ");
		field_value(&b, w, kind, f);
		line_end(l, &b);
	}
	json_object_foreach(json_object_get(an, "fields"), name, f) {
		kind = json_string_value(json_object_get(f, "kind"));
		if (kind == NULL || strcmp(kind, "topics") != 0 ||
		    json_array_size(json_object_get(f, "top")) == 0)
			continue;
		line_end(l, &b);
		dt_buf_puts(&b, "<b>");
		put_name(&b, w, name);
		dt_buf_puts(&b, "</b>");
		if (json_is_true(json_object_get(f, "approximate")))
			dt_buf_printf(&b, " (%s)", w->approximate);
		line_end(l, &b);
		json_array_foreach(json_object_get(f, "top"), i, e) {
			dt_buf_printf(&b, "%zu. ", i + 1);
			put_text(&b, json_string_value(json_object_get(e,
			    "value")), TOPIC_CHARS);
			dt_buf_puts(&b, " \xE2\x80\x94 ");
			put_uint(&b, w, (unsigned long long)int_at(e, "count"));
			line_end(l, &b);
		}
	}
}

void
dt_rpt_messages_free(char **msgs)
{
	char **p;

	if (msgs == NULL)
		return;
	for (p = msgs; *p != NULL; p++)
		free(*p);
	free(msgs);
}

static void
lines_free(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* Room kept on every message for the "part N of M" line. */
#define PART_RESERVE ((size_t)40)

char **
dt_rpt_messages(json_t *summary, const char *lang, size_t limit)
{
	const struct dt_rpt_words *w = lang != NULL && strcmp(lang, "ru") == 0 ?
	    &dt_rpt_ru : &dt_rpt_en;
	struct lines l = {0};
	struct dt_buf cur = {0};
	char **parts = NULL, **p;
	size_t i, nparts = 0, cur_units = 0, room;

	head_lines(&l, w, summary);
	failure_lines(&l, w, summary);
	analysis_lines(&l, w, summary);
	if (l.oom)
		goto oom;
	room = limit > 2 * PART_RESERVE ? limit - PART_RESERVE : limit;

	/* Greedy: as many whole lines as fit, blank lines not leading. */
	if ((parts = calloc(l.n + 1, sizeof(*parts))) == NULL)
		goto oom;
	for (i = 0; i < l.n; i++) {
		size_t units = dt_rpt_html_utf16(l.v[i], strlen(l.v[i]));

		if (units > room) {
			/* Cannot happen: every line is bounded.  Say so. */
			dt_warn("report line %zu is %zu characters long; left "
			    "out", i + 1, units);
			continue;
		}
		if (cur.len > 0 && cur_units + 1 + units > room) {
			parts[nparts++] = cur.p;
			memset(&cur, 0, sizeof(cur));
			cur_units = 0;
		}
		if (cur.len == 0 && units == 0)
			continue;
		if (cur.len > 0) {
			dt_buf_puts(&cur, "\n");
			cur_units++;
		}
		dt_buf_puts(&cur, l.v[i]);
		cur_units += units;
		if (cur.oom)
			goto oom;
	}
	if (cur.len > 0)
		parts[nparts++] = cur.p;
	memset(&cur, 0, sizeof(cur));
	lines_free(&l);
	memset(&l, 0, sizeof(l));

	/* Number the parts after the first. */
	for (i = 1; i < nparts; i++) {
		struct dt_buf b = {0};

		dt_buf_puts(&b, "<i>");
		dt_buf_printf(&b, w->part, (int)i + 1, (int)nparts);
		dt_buf_puts(&b, "</i>\n");
		dt_buf_puts(&b, parts[i]);
		if (b.oom)
			goto oom;
		free(parts[i]);
		parts[i] = b.p;
	}
	return parts;
oom:
	dt_buf_free(&cur);
	lines_free(&l);
	if (parts != NULL)
		for (p = parts; *p != NULL; p++)
			free(*p);
	free(parts);
	return NULL;
}
