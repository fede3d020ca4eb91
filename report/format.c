/*
 * format.c: the Telegram report made from the run summary (text.h).
 * Every line closes the tags it opens, and text from the data is clipped
 * and escaped (put_text), so the report can be cut between any two lines.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exit.h"
#include "log.h"
#include "text.h"

#define TOPIC_CHARS 48
#define NAME_CHARS 32
#define MESSAGE_CHARS 200
#define RUN_ID_CHARS 64
#define PART_RESERVE ((size_t)40)       /* room for "part N of M" */

#define SEP " \xC2\xB7 "                /* " · " */
#define NBSP "\xC2\xA0"

/* The report's own words, in English and in Russian. */
static const char *const ui_words[][2] = {
	{"\xE2\x9C\x85 <b>dt run: ok</b>",
	    "\xE2\x9C\x85 <b>Прогон dt: успешно</b>"},
	{"\xE2\x9A\xA0\xEF\xB8\x8F <b>dt run: partial</b>",
	    "\xE2\x9A\xA0\xEF\xB8\x8F <b>Прогон dt: частично</b>"},
	{"\xE2\x9D\x8C <b>dt run: FAILED</b>",
	    "\xE2\x9D\x8C <b>Прогон dt: СБОЙ</b>"},
	{"Run", "Прогон"}, {"Records", "Записи"}, {"Errors", "Ошибки"},
	{"Unreadable input lines", "Нечитаемые строки на входе"},
	{"Tokens", "Токены"}, {"cost", "стоимость"}, {"Latency", "Задержка"},
	{"max", "макс"}, {"Duration", "Длительность"}, {"Backlog", "Очередь"},
	{"Since the last run", "С прошлого прогона"},
	{"What failed", "Что пошло не так"}, {"interrupted", "прерван"},
	{"exit", "код"}, {"Analyses", "Анализы"}, {"mean", "среднее"},
	{"in", "в"}, {"messages", "сообщениях"},
	{"approximate", "приблизительно"}, {"part %d of %d", "часть %d из %d"},
	{"h", "ч"}, {"min", "мин"}, {"s", "с"}, {"ms", "мс"},
	{"%d reports", "отчётов: %d"}, {"records", "записи"},
	{"failed", "с ошибкой"}, {"tokens", "токены"}, {"other", "другие"},
	{"Shards", "Шарды"}, {"of", "из"}, {"; missing: ", "; нет отчёта от "},
	{" (no finished ledger row)", " (не закончили вовремя)"},
	{"</b> ended without its stage record (crashed or killed?)",
	    "</b> завершилась без записи о стадии (упала или убита?)"},
};

/* Names from the data (fields, statuses, values): English, Russian. */
static const char *const name_words[][3] = {
	{"sentiment", "Sentiment", "Тональность"},
	{"language", "Language", "Язык"},
	{"topics", "Top topics", "Популярные темы"},
	{"action_items", "Action items", "Задачи"},
	{"confidence", "Confidence", "Уверенность"},
	{"unclaimed", "unclaimed", "не взято"},
	{"leased", "leased", "в работе"}, {"parked", "parked", "отложено"},
	{"skipped", "skipped (no text)", "пропущено (без текста)"},
	{"released", "given back for the next run", "возвращено в очередь"},
	{"reused", "reused at no cost", "повторно, без затрат"},
	{"stored", NULL, "сохранено"}, {"failed", NULL, "с ошибкой"},
	{"unchanged", NULL, "без изменений"},
	{"analyzed", NULL, "проанализировано"}, {"fetched", NULL, "получено"},
	{"positive", NULL, "позитив"}, {"neutral", NULL, "нейтрально"},
	{"negative", NULL, "негатив"}, {"mixed", NULL, "смешанно"},
};

/* What an exit status means. */
static const struct {
	int status;
	const char *words[2];
} exit_words[] = {
	{DT_EXIT_PARTIAL, {"some records failed", "часть записей с ошибкой"}},
	{DT_EXIT_USAGE, {"bad command line", "ошибка в командной строке"}},
	{DT_EXIT_DATAERR, {"bad input", "плохие входные данные"}},
	{DT_EXIT_UNAVAILABLE, {"service unavailable", "сервис недоступен"}},
	{DT_EXIT_IOERR, {"cannot write output", "ошибка записи"}},
	{DT_EXIT_TEMPFAIL, {"temporary failure", "временный сбой"}},
	{DT_EXIT_CONFIG, {"bad configuration", "ошибка конфигурации"}},
	{DT_EXIT_PIPE, {"output closed", "выход закрыт"}},
};

/* The report being written: its lines, each ending in '\n'. */
struct rep {
	struct dt_buf b;
	int ru;
};

/* The English word en in the report's language. */
static const char *
tr(const struct rep *r, const char *en)
{
	size_t i;

	for (i = 0; r->ru && i < sizeof(ui_words) / sizeof(ui_words[0]); i++)
		if (strcmp(ui_words[i][0], en) == 0)
			return ui_words[i][1];
	return en;
}

static void
put(struct rep *r, const char *s)
{
	dt_buf_puts(&r->b, s);
}

/* A whole number with the language's thousands separator. */
static void
put_num(struct rep *r, long long v, int sign)
{
	char digits[32];
	int n, i;

	if (v < 0)
		put(r, "\xE2\x88\x92"); /* − */
	else if (sign)
		put(r, "+");
	n = snprintf(digits, sizeof(digits), "%llu", v < 0 ?
	    (unsigned long long)-(v + 1) + 1 : (unsigned long long)v);
	for (i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			put(r, r->ru ? NBSP : ",");
		dt_buf_add(&r->b, digits + i, 1);
	}
}

/* A fraction with the language's decimal mark. */
static void
put_dec(struct rep *r, double v, int places)
{
	char tmp[64], *p;

	snprintf(tmp, sizeof(tmp), "%.*f", places, v);
	if (r->ru && (p = strchr(tmp, '.')) != NULL)
		*p = ',';
	put(r, tmp);
}

static void
put_cost(struct rep *r, double v, int sign)
{
	double a = fabs(v);
	int places = a >= 100 ? 0 : a >= 1 ? 2 : 4;

	if (v < 0)
		put(r, "\xE2\x88\x92");
	else if (sign)
		put(r, "+");
	if (!r->ru)
		put(r, "$");
	put_dec(r, a, places);
	if (r->ru)
		put(r, NBSP "$");
}

/* A value and its unit, separated by a no-break space. */
static void
put_unit(struct rep *r, long long v, const char *unit)
{
	dt_buf_printf(&r->b, "%lld" NBSP "%s", v, tr(r, unit));
}

static void
put_ms(struct rep *r, long long ms)
{
	if (ms < 1000) {
		put_unit(r, ms, "ms");
		return;
	}
	put_dec(r, (double)ms / 1000.0, ms < 10000 ? 2 : 1);
	dt_buf_printf(&r->b, NBSP "%s", tr(r, "s"));
}

static void
put_duration(struct rep *r, double secs)
{
	long long s = llround(secs);

	if (secs < 10) {
		put_dec(r, secs, 1);
		dt_buf_printf(&r->b, NBSP "%s", tr(r, "s"));
		return;
	}
	if (s >= 3600) {
		put_unit(r, s / 3600, "h");
		put(r, " ");
		put_unit(r, s % 3600 / 60, "min");
		return;
	}
	if (s >= 60) {
		put_unit(r, s / 60, "min");
		put(r, " ");
	}
	put_unit(r, s % 60, "s");
}

static void
put_share(struct rep *r, double share)
{
	double pct = share * 100;

	if (pct > 0 && pct < 1)
		put(r, "&lt;1%");
	else
		dt_buf_printf(&r->b, "%.0f%%", pct);
}

/* Escaped, clipped text from the data. */
static void
put_text(struct rep *r, const char *s, size_t max_chars)
{
	char clip[1024];

	dt_rpt_clip(s != NULL ? s : "", max_chars, clip, sizeof(clip));
	dt_rpt_buf_html(&r->b, clip, strlen(clip));
}

/* A field, status or value name, in the report's language when known. */
static void
put_name(struct rep *r, const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(name_words) / sizeof(name_words[0]); i++)
		if (strcmp(name_words[i][0], name) == 0 &&
		    name_words[i][1 + r->ru] != NULL) {
			put(r, name_words[i][1 + r->ru]);
			return;
		}
	put_text(r, name, NAME_CHARS);
}

static json_int_t
int_at(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* "Label: n", n the whole number at key in o. */
static void
put_count(struct rep *r, const char *label, json_t *o, const char *key)
{
	dt_buf_printf(&r->b, "%s: ", tr(r, label));
	put_num(r, int_at(o, key), 0);
}

/*
 * A run merged from shards: "Shards: 3 of 3", or "Shards: 2 of 3;
 * missing: 2 (no finished ledger row)".
 */
static void
shard_line(struct rep *r, json_t *shards)
{
	json_t *missing = json_object_get(shards, "missing"), *v;
	size_t i;

	if (!json_is_object(shards))
		return;
	dt_buf_printf(&r->b, "%s: %lld %s %lld", tr(r, "Shards"),
	    (long long)(int_at(shards, "of") - json_array_size(missing)),
	    tr(r, "of"), (long long)int_at(shards, "of"));
	if (json_array_size(missing) > 0) {
		put(r, tr(r, "; missing: "));
		json_array_foreach(missing, i, v)
			dt_buf_printf(&r->b, "%s%lld", i > 0 ? ", " : "",
			    (long long)json_integer_value(v));
		put(r, tr(r, " (no finished ledger row)"));
	}
	put(r, "\n");
}

/* Records by status, errors by kind, unreadable lines. */
static void
count_lines(struct rep *r, json_t *s)
{
	const char *k;
	json_t *v;
	int first = 1;

	put_count(r, "Records", s, "records");
	json_object_foreach(json_object_get(s, "by_status"), k, v) {
		put(r, first ? " \xE2\x80\x94 " : SEP);
		put_name(r, k);
		put(r, " ");
		put_num(r, json_integer_value(v), 0);
		first = 0;
		/* Of the stored: analyses of texts seen before, at no cost. */
		if (strcmp(k, "stored") == 0 && int_at(s, "reused") > 0) {
			put(r, " (");
			put_num(r, int_at(s, "reused"), 0);
			put(r, " ");
			put_name(r, "reused");
			put(r, ")");
		}
	}
	put(r, "\n");
	first = 1;
	json_object_foreach(json_object_get(s, "by_error"), k, v) {
		if (first)
			dt_buf_printf(&r->b, "%s: ", tr(r, "Errors"));
		else
			put(r, SEP);
		put_text(r, k, NAME_CHARS);
		put(r, " ");
		put_num(r, json_integer_value(v), 0);
		first = 0;
	}
	if (!first)
		put(r, "\n");
	if (int_at(s, "bad_lines") > 0) {
		put_count(r, "Unreadable input lines", s, "bad_lines");
		put(r, "\n");
	}
}

/* Tokens and cost, latency and duration. */
static void
usage_lines(struct rep *r, json_t *s)
{
	json_t *lat = json_object_get(s, "latency_ms");
	json_t *tok = json_object_get(s, "tokens");
	json_t *cost = json_object_get(s, "cost_usd");
	json_t *dur = json_object_get(s, "duration_s");

	if (int_at(tok, "total") > 0 || json_is_number(cost)) {
		put_count(r, "Tokens", tok, "total");
		if (json_is_number(cost)) {
			dt_buf_printf(&r->b, SEP "%s ", tr(r, "cost"));
			put_cost(r, json_number_value(cost), 0);
		}
		put(r, "\n");
	}
	if (int_at(lat, "count") > 0) {
		dt_buf_printf(&r->b, "%s: p50 ", tr(r, "Latency"));
		put_ms(r, int_at(lat, "p50"));
		put(r, SEP "p95 ");
		put_ms(r, int_at(lat, "p95"));
		dt_buf_printf(&r->b, SEP "%s ", tr(r, "max"));
		put_ms(r, int_at(lat, "max"));
		put(r, "\n");
	}
	if (json_is_number(dur)) {
		dt_buf_printf(&r->b, "%s: ", tr(r, "Duration"));
		put_duration(r, json_number_value(dur));
		put(r, "\n");
	}
}

/* The backlog and the difference from the previous run, when known. */
static void
database_lines(struct rep *r, json_t *s)
{
	static const char *const keys[][2] = {{"unclaimed", "unclaimed"},
	    {"leased", "leased"}, {"failed", "parked"}};
	static const char *const deltas[] = {"records", "failed", "tokens"};
	json_t *backlog = json_object_get(s, "backlog"), *v;
	json_t *d = json_object_get(json_object_get(s, "previous"), "delta");
	size_t i;

	if (json_is_object(backlog)) {
		dt_buf_printf(&r->b, "%s: ", tr(r, "Backlog"));
		for (i = 0; i < 3; i++) {
			put(r, i > 0 ? SEP : "");
			put_num(r, int_at(backlog, keys[i][0]), 0);
			put(r, " ");
			put_name(r, keys[i][1]);
		}
		put(r, "\n");
	}
	if (!json_is_object(d))
		return;
	dt_buf_printf(&r->b, "%s: ", tr(r, "Since the last run"));
	for (i = 0; i < 3; i++) {
		dt_buf_printf(&r->b, "%s%s ", i > 0 ? SEP : "",
		    tr(r, deltas[i]));
		put_num(r, int_at(d, deltas[i]), 1);
	}
	if (json_is_number(v = json_object_get(d, "cost_usd"))) {
		dt_buf_printf(&r->b, SEP "%s ", tr(r, "cost"));
		put_cost(r, json_number_value(v), 1);
	}
	put(r, "\n");
}

static void
head_lines(struct rep *r, json_t *s)
{
	const char *state = json_string_value(json_object_get(s, "state"));
	json_t *v;

	put(r, ui_words[state == NULL ? 2 : strcmp(state, "ok") == 0 ? 0 :
	    strcmp(state, "partial") == 0 ? 1 : 2][r->ru]);
	put(r, "\n");
	if (json_is_string(v = json_object_get(s, "run_id"))) {
		dt_buf_printf(&r->b, "%s: <code>", tr(r, "Run"));
		put_text(r, json_string_value(v), RUN_ID_CHARS);
		put(r, "</code>");
		put(r, "\n");
	}
	shard_line(r, json_object_get(s, "shards"));
	count_lines(r, s);
	usage_lines(r, s);
	database_lines(r, s);
}

/* One stage that did not end well: its status, what it means, messages. */
static void
failure_line(struct rep *r, json_t *stage, int status, int interrupted)
{
	json_t *m;
	size_t i;

	put(r, "\xE2\x80\xA2 <b>");
	put_text(r, json_string_value(json_object_get(stage, "stage")),
	    NAME_CHARS);
	if (json_is_true(json_object_get(stage, "missing"))) {
		put(r, tr(r, "</b> ended without its stage record (crashed or "
		    "killed?)"));
		put(r, "\n");
		return;
	}
	dt_buf_printf(&r->b, "</b> (%s %d", tr(r, "exit"), status);
	for (i = 0; i < sizeof(exit_words) / sizeof(exit_words[0]); i++)
		if (exit_words[i].status == status)
			dt_buf_printf(&r->b, ", %s",
			    exit_words[i].words[r->ru]);
	if (interrupted)
		dt_buf_printf(&r->b, ", %s", tr(r, "interrupted"));
	if (int_at(stage, "reports") > 1) {
		put(r, ", ");
		dt_buf_printf(&r->b, tr(r, "%d reports"),
		    (int)int_at(stage, "reports"));
	}
	put(r, ")");
	json_array_foreach(json_object_get(stage, "messages"), i, m) {
		put(r, i == 0 ? ": " : "; ");
		put_text(r, json_string_value(m), MESSAGE_CHARS);
	}
	put(r, "\n");
}

/* What went wrong upstream: one line per stage that did not end well. */
static void
failure_lines(struct rep *r, json_t *s)
{
	json_t *stage;
	size_t i;
	int header = 0;

	json_array_foreach(json_object_get(s, "stages"), i, stage) {
		int status = (int)int_at(stage, "status");
		int interrupted = json_is_true(json_object_get(stage,
		    "interrupted"));

		if (status == 0 && !interrupted)
			continue;
		if (!header)
			dt_buf_printf(&r->b, "\n<b>%s</b>\n",
			    tr(r, "What failed"));
		header = 1;
		failure_line(r, stage, status, interrupted);
	}
}

/* The value of one short analysis field of the given kind. */
static void
field_value(struct rep *r, const char *kind, json_t *f)
{
	double total = (double)int_at(f, "total");
	const char *k;
	json_t *v;
	size_t i;
	int first = 1;

	if (strcmp(kind, "enum") == 0) {
		json_object_foreach(json_object_get(f, "shares"), k, v) {
			if (json_real_value(v) <= 0)
				continue;
			put(r, first ? "" : SEP);
			put_name(r, k);
			put(r, " ");
			put_share(r, json_real_value(v));
			first = 0;
		}
	} else if (strcmp(kind, "label") == 0) {
		json_array_foreach(json_object_get(f, "top"), i, v) {
			put(r, i > 0 ? SEP : "");
			put_text(r, json_string_value(json_object_get(v,
			    "value")), NAME_CHARS);
			put(r, " ");
			put_share(r, (double)int_at(v, "count") / total);
		}
		if (int_at(f, "other") > 0) {
			dt_buf_printf(&r->b, SEP "%s ", tr(r, "other"));
			put_share(r, (double)int_at(f, "other") / total);
		}
	} else if (strcmp(kind, "mean") == 0) {
		dt_buf_printf(&r->b, "%s ", tr(r, "mean"));
		put_dec(r, json_number_value(json_object_get(f, "mean")), 2);
	} else if (strcmp(kind, "items") == 0) {
		put_num(r, int_at(f, "items"), 0);
		dt_buf_printf(&r->b, " %s ", tr(r, "in"));
		put_num(r, int_at(f, "records"), 0);
		dt_buf_printf(&r->b, " %s", tr(r, "messages"));
	}
}

/* A topic list: "1. billing — 2", one line each. */
static void
topic_lines(struct rep *r, const char *name, json_t *f)
{
	json_t *e;
	size_t i;

	put(r, "\n<b>");
	put_name(r, name);
	put(r, "</b>");
	if (json_is_true(json_object_get(f, "approximate")))
		dt_buf_printf(&r->b, " (%s)", tr(r, "approximate"));
	put(r, "\n");
	json_array_foreach(json_object_get(f, "top"), i, e) {
		dt_buf_printf(&r->b, "%zu. ", i + 1);
		put_text(r, json_string_value(json_object_get(e, "value")),
		    TOPIC_CHARS);
		put(r, " \xE2\x80\x94 ");
		put_num(r, int_at(e, "count"), 0);
		put(r, "\n");
	}
}

/* The short fields first, then the topic lists. */
static void
analysis_lines(struct rep *r, json_t *s)
{
	json_t *an = json_object_get(s, "analysis"), *f;
	const char *name, *kind;

	if (int_at(an, "records") == 0)
		return;
	dt_buf_printf(&r->b, "\n<b>%s</b>: ", tr(r, "Analyses"));
	put_num(r, int_at(an, "records"), 0);
	put(r, "\n");
	json_object_foreach(json_object_get(an, "fields"), name, f) {
		kind = json_string_value(json_object_get(f, "kind"));
		if (kind == NULL || strcmp(kind, "topics") == 0 ||
		    int_at(f, "records") == 0)
			continue;
		put(r, "<b>");
		put_name(r, name);
		put(r, "</b>: ");
		field_value(r, kind, f);
		put(r, "\n");
	}
	json_object_foreach(json_object_get(an, "fields"), name, f) {
		kind = json_string_value(json_object_get(f, "kind"));
		if (kind != NULL && strcmp(kind, "topics") == 0 &&
		    json_array_size(json_object_get(f, "top")) > 0)
			topic_lines(r, name, f);
	}
}

/* Appends the text in cur to parts and empties cur; 0, or -1 when OOM. */
static int
take(struct dt_buf *cur, json_t *parts)
{
	int rc = cur->oom || json_array_append_new(parts,
	    json_stringn(cur->p, cur->len)) < 0 ? -1 : 0;

	cur->len = 0;
	return rc;
}

/*
 * Packs the lines of text greedily into parts of at most room UTF-16
 * units, a blank line never first.  Returns 0, or -1 when out of memory.
 */
static int
pack(char *text, size_t room, json_t *parts)
{
	struct dt_buf cur = {0};
	size_t cur_units = 0, units, no = 0;
	char *line, *nl;
	int rc = 0;

	for (line = text; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		no++;
		if ((units = dt_rpt_html_utf16(line, strlen(line))) > room) {
			/* Cannot happen: every line is bounded.  Say so. */
			dt_warn("report line %zu is %zu characters long; left "
			    "out", no, units);
			continue;
		}
		if (cur.len > 0 && cur_units + 1 + units > room) {
			rc |= take(&cur, parts);
			cur_units = 0;
		}
		if (cur.len == 0 && units == 0)
			continue;
		cur_units += units + (cur.len > 0);
		dt_buf_printf(&cur, "%s%s", cur.len > 0 ? "\n" : "", line);
	}
	if (cur.len > 0)
		rc |= take(&cur, parts);
	dt_buf_free(&cur);
	return rc;
}

json_t *
dt_rpt_messages(json_t *summary, const char *lang, size_t limit)
{
	struct rep r = {{0}, lang != NULL && strcmp(lang, "ru") == 0};
	struct dt_buf b = {0};
	json_t *parts = json_array(), *m;
	size_t i, n;
	int rc;

	head_lines(&r, summary);
	failure_lines(&r, summary);
	analysis_lines(&r, summary);
	rc = r.b.oom || parts == NULL ? -1 : r.b.p == NULL ? 0 : pack(r.b.p,
	    limit > 2 * PART_RESERVE ? limit - PART_RESERVE : limit, parts);
	n = json_array_size(parts);
	/* Number the parts after the first. */
	json_array_foreach(parts, i, m) {
		if (i == 0 || rc < 0)
			continue;
		dt_buf_puts(&b, "<i>");
		dt_buf_printf(&b, tr(&r, "part %d of %d"), (int)i + 1, (int)n);
		dt_buf_printf(&b, "</i>\n%s", json_string_value(m));
		rc = b.oom || json_array_set_new(parts, i, json_stringn(b.p,
		    b.len)) < 0 ? -1 : 0;
		b.len = 0;
	}
	dt_buf_free(&b);
	dt_buf_free(&r.b);
	if (rc < 0) {
		json_decref(parts);
		return NULL;
	}
	return parts;
}
