/*
 * format.c: the Telegram report made from the summary (report.h).  Each
 * line closes its tags and escapes the data's text: it can be cut there.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "report.h"
#include "utf8.h"

#define NAME_CHARS 32
#define PART_RESERVE 40         /* room for "part N of M" */

#define SEP " \xC2\xB7 "        /* " · " */
#define DASH " \xE2\x80\x94 "   /* " — " */
#define NBSP "\xC2\xA0"

/* The report's words and known names: key, English (NULL: key), Russian. */
static const char *const words[][3] = {
	{"dt run: ok", NULL, "Прогон dt: успешно"},
	{"dt run: partial", NULL, "Прогон dt: частично"},
	{"dt run: FAILED", NULL, "Прогон dt: СБОЙ"},
	{"Run", NULL, "Прогон"}, {"Records", NULL, "Записи"},
	{"Errors", NULL, "Ошибки"},
	{"Unreadable input lines", NULL, "Нечитаемые строки на входе"},
	{"Tokens", NULL, "Токены"}, {"cost", NULL, "стоимость"},
	{"Latency", NULL, "Задержка"}, {"max", NULL, "макс"},
	{"Duration", NULL, "Длительность"}, {"Backlog", NULL, "Очередь"},
	{"Since the last run", NULL, "С прошлого прогона"},
	{"What failed", NULL, "Что пошло не так"},
	{"interrupted", NULL, "прерван"}, {"exit", NULL, "код"},
	{"Analyses", NULL, "Анализы"}, {"mean", NULL, "среднее"},
	{"in", NULL, "в"}, {"messages", NULL, "сообщениях"},
	{"part %d of %d", NULL, "часть %d из %d"}, {"h", NULL, "ч"},
	{"min", NULL, "мин"}, {"s", NULL, "с"}, {"ms", NULL, "мс"},
	{"%d reports", NULL, "отчётов: %d"}, {"records", NULL, "записи"},
	{"tokens", NULL, "токены"}, {"other", NULL, "другие"},
	{"Shards", NULL, "Шарды"}, {"of", NULL, "из"},
	{"; missing: ", NULL, "; нет отчёта от "},
	{" (no finished ledger row)", NULL, " (не закончили вовремя)"},
	{"ended without its stage record (crashed or killed?)", NULL,
	    "завершилась без записи о стадии (упала или убита?)"},
	{"sentiment", "Sentiment", "Тональность"},
	{"language", "Language", "Язык"},
	{"topics", "Top topics", "Популярные темы"},
	{"action_items", "Action items", "Задачи"},
	{"confidence", "Confidence", "Уверенность"},
	{"unclaimed", NULL, "не взято"}, {"leased", NULL, "в работе"},
	{"parked", NULL, "отложено"},
	{"skipped", "skipped (no text)", "пропущено (без текста)"},
	{"released", "given back for the next run", "возвращено в очередь"},
	{"reused", "reused at no cost", "повторно, без затрат"},
	{"stored", NULL, "сохранено"}, {"failed", NULL, "с ошибкой"},
	{"unchanged", NULL, "без изменений"},
	{"analyzed", NULL, "проанализировано"}, {"fetched", NULL, "получено"},
	{"positive", NULL, "позитив"}, {"neutral", NULL, "нейтрально"},
	{"negative", NULL, "негатив"}, {"mixed", NULL, "смешанно"},
	{"exit 1", "some records failed", "часть записей с ошибкой"},
	{"exit 64", "bad command line", "ошибка в командной строке"},
	{"exit 65", "bad input", "плохие входные данные"},
	{"exit 69", "service unavailable", "сервис недоступен"},
	{"exit 74", "cannot write output", "ошибка записи"},
	{"exit 75", "temporary failure", "временный сбой"},
	{"exit 78", "bad configuration", "ошибка конфигурации"},
	{"exit 141", "output closed", "выход закрыт"},
};

/* The report being written: its lines, each ending in '\n'. */
struct rep {
	struct dt_buf b;
	int ru;
};

/* Number formats (put_num). */
enum {
	SIGN = 1,               /* "+" before a positive number */
	USD = 2,                /* dollars, with cents below $100 */
	PCT = 4                 /* a share as a whole percentage */
};

/* The word key in the report's language; key itself when none. */
static const char *
tr(const struct rep *r, const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(words[i][0], key) == 0 && words[i][1 + r->ru])
			return words[i][1 + r->ru];
	return key;
}

static void
put(struct rep *r, const char *s)
{
	dt_buf_puts(&r->b, s);
}

/* v with places decimals, the language's thousands and decimal marks. */
static void
put_num(struct rep *r, double v, int places, int how)
{
	double a = fabs(v);
	char digits[320];       /* the longest double "%.4f" writes */
	int n, i, whole;

	if ((how & PCT) && v > 0 && v < 0.01) {
		put(r, "&lt;1%");
		return;
	}
	if (how & USD)
		places = a >= 100 ? 0 : a >= 1 ? 2 : 4;
	a *= how & PCT ? 100 : 1;
	put(r, v < 0 ? "\xE2\x88\x92" : how & SIGN ? "+" : "");
	if ((how & USD) && !r->ru)
		put(r, "$");
	n = snprintf(digits, sizeof(digits), "%.*f", places, a);
	whole = places > 0 ? n - places - 1 : n;
	for (i = 0; i < n; i++) {
		if (i > 0 && i < whole && (whole - i) % 3 == 0)
			put(r, r->ru ? NBSP : ",");
		if (digits[i] == '.')
			put(r, r->ru ? "," : ".");
		else
			dt_buf_add(&r->b, digits + i, 1);
	}
	put(r, (how & USD) && r->ru ? NBSP "$" : how & PCT ? "%" : "");
}

/* The number at key in o; 0 when there is none. */
static double
num_at(json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* A time: "700 ms", "1.93 s", "12.5 s", "4 min 13 s", "2 h 5 min". */
static void
put_time(struct rep *r, double ms)
{
	long long s = llround(ms / 1000);

	if (ms < 1000)
		dt_buf_printf(&r->b, "%.0f" NBSP "%s", ms, tr(r, "ms"));
	else if (ms < 60000) {
		put_num(r, ms / 1000, ms < 10000 ? 2 : 1, 0);
		dt_buf_printf(&r->b, NBSP "%s", tr(r, "s"));
	} else if (s < 3600)
		dt_buf_printf(&r->b, "%lld" NBSP "%s %lld" NBSP "%s", s / 60,
		    tr(r, "min"), s % 60, tr(r, "s"));
	else
		dt_buf_printf(&r->b, "%lld" NBSP "%s %lld" NBSP "%s", s / 3600,
		    tr(r, "h"), s % 3600 / 60, tr(r, "min"));
}

/* Text from the data, clipped to max_chars and escaped. */
static void
put_text(struct rep *r, const char *s, size_t max_chars)
{
	static const char special[] = "<>&\"";
	static const char *const ent[] = {"&lt;", "&gt;", "&amp;", "&quot;"};
	char clip[1024], *p;
	const char *e;

	dt_rpt_clip(s != NULL ? s : "", max_chars, clip, sizeof(clip));
	for (p = clip; *p != '\0'; p++)
		if ((e = strchr(special, *p)) != NULL)
			put(r, ent[e - special]);
		else
			dt_buf_add(&r->b, p, 1);
}

/* A field, status or value name, in the report's language when known. */
static void
put_name(struct rep *r, const char *name)
{
	const char *w = tr(r, name);

	if (w != name)
		put(r, w);
	else
		put_text(r, name, NAME_CHARS);
}

/* o's members above 0 as "name n · name n" after first; reused: stored's. */
static void
put_pairs(struct rep *r, json_t *o, const char *first, int how,
    double reused)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		if (json_number_value(v) <= 0)
			continue;
		put(r, first);
		first = SEP;
		put_name(r, k);
		put(r, " ");
		put_num(r, json_number_value(v), 0, how);
		if (reused > 0 && strcmp(k, "stored") == 0) {
			put(r, " (");
			put_num(r, reused, 0, 0);
			dt_buf_printf(&r->b, " %s)", tr(r, "reused"));
		}
	}
}

/* The header, run id, shards and counts. */
static void
head_lines(struct rep *r, json_t *s)
{
	static const char *const heads[][2] = {{"\xE2\x9C\x85", "dt run: ok"},
	    {"\xE2\x9A\xA0\xEF\xB8\x8F", "dt run: partial"},
	    {"\xE2\x9D\x8C", "dt run: FAILED"}};
	const char *state = json_string_value(json_object_get(s, "state"));
	json_t *shards = json_object_get(s, "shards"), *v, *k;
	size_t i = state == NULL ? 2 : strcmp(state, "ok") == 0 ? 0 :
	    strcmp(state, "partial") == 0 ? 1 : 2;

	dt_buf_printf(&r->b, "%s <b>%s</b>", heads[i][0], tr(r, heads[i][1]));
	if (json_is_string(v = json_object_get(s, "run_id"))) {
		dt_buf_printf(&r->b, "\n%s: <code>", tr(r, "Run"));
		put_text(r, json_string_value(v), 64);
		put(r, "</code>");
	}
	if (json_is_object(shards)) {
		v = json_object_get(shards, "missing");
		dt_buf_printf(&r->b, "\n%s: %.0f %s %.0f", tr(r, "Shards"),
		    num_at(shards, "of") - (double)json_array_size(v),
		    tr(r, "of"), num_at(shards, "of"));
		json_array_foreach(v, i, k)
			dt_buf_printf(&r->b, "%s%.0f", i > 0 ? ", " :
			    tr(r, "; missing: "), json_number_value(k));
		if (json_array_size(v) > 0)
			put(r, tr(r, " (no finished ledger row)"));
	}
	dt_buf_printf(&r->b, "\n%s: ", tr(r, "Records"));
	put_num(r, num_at(s, "records"), 0, 0);
	put_pairs(r, json_object_get(s, "by_status"), DASH, 0,
	    num_at(s, "reused"));
	if (json_object_size(json_object_get(s, "by_error")) > 0) {
		dt_buf_printf(&r->b, "\n%s", tr(r, "Errors"));
		put_pairs(r, json_object_get(s, "by_error"), ": ", 0, 0);
	}
	if (num_at(s, "bad_lines") > 0) {
		dt_buf_printf(&r->b, "\n%s: ", tr(r, "Unreadable input lines"));
		put_num(r, num_at(s, "bad_lines"), 0, 0);
	}
	put(r, "\n");
}

/* Tokens and cost, latency, duration, backlog, the previous run. */
static void
usage_lines(struct rep *r, json_t *s)
{
	static const char *const backlog[][2] = {{"unclaimed", "unclaimed"},
	    {"leased", "leased"}, {"failed", "parked"}};
	static const char *const deltas[] = {"records", "failed", "tokens"};
	json_t *lat = json_object_get(s, "latency_ms"), *v;
	json_t *cost = json_object_get(s, "cost_usd");
	json_t *d = json_object_get(json_object_get(s, "previous"), "delta");
	size_t i;

	if (num_at(v = json_object_get(s, "tokens"), "total") > 0 ||
	    json_is_number(cost)) {
		dt_buf_printf(&r->b, "%s: ", tr(r, "Tokens"));
		put_num(r, num_at(v, "total"), 0, 0);
		if (json_is_number(cost)) {
			dt_buf_printf(&r->b, SEP "%s ", tr(r, "cost"));
			put_num(r, json_number_value(cost), 0, USD);
		}
		put(r, "\n");
	}
	if (num_at(lat, "count") > 0) {
		dt_buf_printf(&r->b, "%s: p50 ", tr(r, "Latency"));
		put_time(r, num_at(lat, "p50"));
		put(r, SEP "p95 ");
		put_time(r, num_at(lat, "p95"));
		dt_buf_printf(&r->b, SEP "%s ", tr(r, "max"));
		put_time(r, num_at(lat, "max"));
		put(r, "\n");
	}
	if (json_is_number(v = json_object_get(s, "duration_s"))) {
		dt_buf_printf(&r->b, "%s: ", tr(r, "Duration"));
		put_time(r, json_number_value(v) * 1000);
		put(r, "\n");
	}
	if (json_is_object(v = json_object_get(s, "backlog"))) {
		dt_buf_printf(&r->b, "%s: ", tr(r, "Backlog"));
		for (i = 0; i < 3; i++) {
			put(r, i > 0 ? SEP : "");
			put_num(r, num_at(v, backlog[i][0]), 0, 0);
			dt_buf_printf(&r->b, " %s", tr(r, backlog[i][1]));
		}
		put(r, "\n");
	}
	if (!json_is_object(d))
		return;
	dt_buf_printf(&r->b, "%s: ", tr(r, "Since the last run"));
	for (i = 0; i < 3; i++) {
		dt_buf_printf(&r->b, "%s%s ", i > 0 ? SEP : "",
		    tr(r, deltas[i]));
		put_num(r, num_at(d, deltas[i]), 0, SIGN);
	}
	if (json_is_number(v = json_object_get(d, "cost_usd"))) {
		dt_buf_printf(&r->b, SEP "%s ", tr(r, "cost"));
		put_num(r, json_number_value(v), 0, USD | SIGN);
	}
	put(r, "\n");
}

/* What went wrong upstream: one line per stage that did not end well. */
static void
failure_lines(struct rep *r, json_t *s)
{
	json_t *stage, *m;
	char key[32];
	size_t i, j;
	int status, header = 0;

	json_array_foreach(json_object_get(s, "stages"), i, stage) {
		status = (int)num_at(stage, "status");
		if (status == 0 && !json_is_true(json_object_get(stage,
		    "interrupted")))
			continue;
		if (!header++)
			dt_buf_printf(&r->b, "\n<b>%s</b>\n",
			    tr(r, "What failed"));
		put(r, "\xE2\x80\xA2 <b>");
		put_text(r, json_string_value(json_object_get(stage, "stage")),
		    NAME_CHARS);
		if (json_is_true(json_object_get(stage, "missing"))) {
			dt_buf_printf(&r->b, "</b> %s\n", tr(r, "ended without "
			    "its stage record (crashed or killed?)"));
			continue;
		}
		dt_buf_printf(&r->b, "</b> (%s %d", tr(r, "exit"), status);
		snprintf(key, sizeof(key), "exit %d", status);
		if (tr(r, key) != key)
			dt_buf_printf(&r->b, ", %s", tr(r, key));
		if (json_is_true(json_object_get(stage, "interrupted")))
			dt_buf_printf(&r->b, ", %s", tr(r, "interrupted"));
		if (num_at(stage, "reports") > 1) {
			put(r, ", ");
			dt_buf_printf(&r->b, tr(r, "%d reports"),
			    (int)num_at(stage, "reports"));
		}
		put(r, ")");
		json_array_foreach(json_object_get(stage, "messages"), j, m) {
			put(r, j == 0 ? ": " : "; ");
			put_text(r, json_string_value(m), 200);
		}
		put(r, "\n");
	}
}

/* The value of one short analysis field of the given kind. */
static void
field_value(struct rep *r, const char *kind, json_t *f)
{
	double total = num_at(f, "total");
	json_t *v;
	size_t i;

	if (strcmp(kind, "enum") == 0)
		put_pairs(r, json_object_get(f, "shares"), "", PCT, 0);
	else if (strcmp(kind, "label") == 0) {
		json_array_foreach(json_object_get(f, "top"), i, v) {
			put(r, i > 0 ? SEP : "");
			put_text(r, json_string_value(json_object_get(v,
			    "value")), NAME_CHARS);
			put(r, " ");
			put_num(r, num_at(v, "count") / total, 0, PCT);
		}
		if (num_at(f, "other") > 0) {
			dt_buf_printf(&r->b, SEP "%s ", tr(r, "other"));
			put_num(r, num_at(f, "other") / total, 0, PCT);
		}
	} else if (strcmp(kind, "mean") == 0) {
		dt_buf_printf(&r->b, "%s ", tr(r, "mean"));
		put_num(r, num_at(f, "mean"), 2, 0);
	} else if (strcmp(kind, "items") == 0) {
		put_num(r, num_at(f, "items"), 0, 0);
		dt_buf_printf(&r->b, " %s ", tr(r, "in"));
		put_num(r, num_at(f, "records"), 0, 0);
		dt_buf_printf(&r->b, " %s", tr(r, "messages"));
	}
}

/* The short fields, one line each, then the topic lists. */
static void
analysis_lines(struct rep *r, json_t *s)
{
	json_t *an = json_object_get(s, "analysis"), *f, *top, *e;
	const char *name, *kind;
	size_t i;

	if (num_at(an, "records") == 0)
		return;
	dt_buf_printf(&r->b, "\n<b>%s</b>: ", tr(r, "Analyses"));
	put_num(r, num_at(an, "records"), 0, 0);
	put(r, "\n");
	json_object_foreach(json_object_get(an, "fields"), name, f) {
		kind = json_string_value(json_object_get(f, "kind"));
		if (kind == NULL || strcmp(kind, "topics") == 0 ||
		    num_at(f, "records") == 0)
			continue;
		put(r, "<b>");
		put_name(r, name);
		put(r, "</b>: ");
		field_value(r, kind, f);
		put(r, "\n");
	}
	json_object_foreach(json_object_get(an, "fields"), name, f) {
		kind = json_string_value(json_object_get(f, "kind"));
		top = json_object_get(f, "top");
		if (kind == NULL || strcmp(kind, "topics") != 0 ||
		    json_array_size(top) == 0)
			continue;
		put(r, "\n<b>");
		put_name(r, name);
		put(r, "</b>");
		put(r, "\n");
		json_array_foreach(top, i, e) {
			dt_buf_printf(&r->b, "%zu. ", i + 1);
			put_text(r, json_string_value(json_object_get(e,
			    "value")), 48);
			put(r, DASH);
			put_num(r, num_at(e, "count"), 0, 0);
			put(r, "\n");
		}
	}
}

json_t *
dt_rpt_messages(json_t *summary, const char *lang, size_t limit)
{
	struct rep r = {{0}, lang != NULL && strcmp(lang, "ru") == 0};
	struct dt_buf part = {0};
	json_t *parts = json_array(), *m;
	size_t units = 0, n, i;
	char *line, *nl;
	int rc = 0;

	head_lines(&r, summary);
	usage_lines(&r, summary);
	failure_lines(&r, summary);
	analysis_lines(&r, summary);
	/* Whole lines, packed greedily; a blank line never starts a part. */
	for (line = r.b.p; line != NULL && (nl = strchr(line, '\n')) != NULL;
	    line = nl + 1) {
		n = dt_rpt_html_utf16(line, (size_t)(nl - line));
		if (part.len > 0 && units + 1 + n > limit - PART_RESERVE) {
			rc |= json_array_append_new(parts, json_stringn(part.p,
			    part.len));
			part.len = 0;
		}
		if (part.len == 0 && n == 0)
			continue;
		units = part.len > 0 ? units + 1 + n : n;
		if (part.len > 0)
			dt_buf_add(&part, "\n", 1);
		dt_buf_add(&part, line, (size_t)(nl - line));
	}
	rc |= json_array_append_new(parts, json_stringn(part.p, part.len));
	json_array_foreach(parts, i, m) {
		if (i == 0)
			continue;
		part.len = 0;
		dt_buf_puts(&part, "<i>");
		dt_buf_printf(&part, tr(&r, "part %d of %d"), (int)i + 1,
		    (int)json_array_size(parts));
		dt_buf_printf(&part, "</i>\n%s", json_string_value(m));
		rc |= json_array_set_new(parts, i, json_stringn(part.p,
		    part.len));
	}
	if (r.b.oom || part.oom || rc != 0) {
		json_decref(parts);
		parts = NULL;
	}
	dt_buf_free(&part);
	dt_buf_free(&r.b);
	return parts;
}

/* Decodes the character at s into *c (invalid: U+FFFD); returns bytes. */
static size_t
next_char(const char *s, size_t n, uint32_t *c)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t k = utf8_seq(u, n), i;

	*c = k == 0 ? 0xFFFD : k == 1 ? u[0] : u[0] & (0xFFu >> (k + 1));
	for (i = 1; i < k; i++)
		*c = (*c << 6) | (u[i] & 0x3F);
	return k > 0 ? k : 1;
}

/* 1: white space; 2: invisible control to drop; 0: ordinary. */
static int
char_class(uint32_t c)
{
	if (c == ' ' || (c >= '\t' && c <= '\r') || c == 0xA0 ||
	    c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
	    c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000)
		return 1;
	if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x200B ||
	    c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
	    (c >= 0x2066 && c <= 0x2069) || c == 0xFEFF)
		return 2;
	return 0;
}

size_t
dt_rpt_topic_norm(const char *s, size_t n, char *buf, size_t len)
{
	size_t o = 0, k, m, max = len - 1 < DT_RPT_KEY_MAX ? len - 1 :
	    DT_RPT_KEY_MAX;
	char tmp[4];
	uint32_t c;
	int space = 0;

	for (; n > 0; s += k, n -= k) {
		k = next_char(s, n, &c);
		space |= char_class(c) == 1 && o > 0;
		if (char_class(c) != 0)
			continue;
		/* Latin and Cyrillic capitals made small. */
		if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE &&
		    c != 0xD7) || (c >= 0x410 && c <= 0x42F))
			c += 32;
		else if (c >= 0x400 && c <= 0x40F)
			c += 80;
		m = utf8_put(tmp, c);
		if (o + space + m > max)
			break;
		if (space)
			buf[o++] = ' ';
		space = 0;
		memcpy(buf + o, tmp, m);
		o += m;
	}
	buf[o] = '\0';
	return o;
}

char *
dt_rpt_clip(const char *s, size_t max_chars, char *buf, size_t len)
{
	size_t n = strlen(s), o = 0, chars = 0, k;
	uint32_t c;

	for (; n > 0; s += k, n -= k) {
		k = next_char(s, n, &c);
		if (chars++ == max_chars || o + 4 + 3 + 1 > len) {
			memcpy(buf + o, "\xE2\x80\xA6", 3);     /* … */
			o += 3;
			break;
		}
		o += utf8_put(buf + o, char_class(c) != 0 ? ' ' : c);
	}
	buf[o] = '\0';
	return buf;
}

size_t
dt_rpt_html_utf16(const char *html, size_t n)
{
	const unsigned char *p = (const unsigned char *)html;
	size_t i, units = 0;

	for (i = 0; i < n; i++) {
		if (p[i] == '<' || p[i] == '&') {
			unsigned char end = p[i] == '<' ? '>' : ';';

			units += p[i] == '&';
			while (i < n && p[i] != end)
				i++;
		} else if (p[i] < 0x80 || (p[i] >= 0xC0 && p[i] < 0xF0))
			units++;
		else if (p[i] >= 0xF0)
			units += 2;
	}
	return units;
}
