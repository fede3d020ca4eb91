/*
 * format.c: the Telegram report made from the summary (report.h).  Each
 * line closes its tags and escapes the data's text: it can be cut there.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "report.h"
#include "utf8.h"

#define NAME_CHARS 32
#define PART_RESERVE 40         /* room for "part N of M" */

#define SEP " \xC2\xB7 "        /* " · " */
#define DASH " \xE2\x80\x94 "   /* " — " */
#define NBSP "\xC2\xA0"

/*
 * The report's words and known names: key, English (NULL: key), Russian.
 * A name's words have no markup and at most NAME_CHARS characters.
 */
static const char *const words[][3] = {
	{"dt run: ok", NULL, "Прогон dt: успешно"},
	{"dt run: partial", NULL, "Прогон dt: частично"},
	{"dt run: FAILED", NULL, "Прогон dt: СБОЙ"}, {"Run", NULL, "Прогон"},
	{"Records", NULL, "Записи"}, {"Errors", NULL, "Ошибки"},
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
	{", %d reports", NULL, ", отчётов: %d"}, {"records", NULL, "записи"},
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

/*
 * Writes fmt, whose conversions take: %s a string as it is, %w a word
 * (tr), %n a name (a known one's word), %q an int and a text from the data
 * (put_text); and doubles: %d a count, %f a number to 2 places, %$
 * dollars, %p a share, %t a time in ms; %+d and %+$ signed.
 */
static void
say(struct rep *r, const char *fmt, ...)
{
	va_list ap;
	int how, max;

	va_start(ap, fmt);
	for (; *fmt != '\0'; fmt++) {
		if (*fmt != '%') {
			dt_buf_add(&r->b, fmt, 1);
			continue;
		}
		how = *++fmt == '+' ? SIGN : 0;
		fmt += how != 0;
		if (*fmt == 's')
			put(r, va_arg(ap, const char *));
		else if (*fmt == 'w')
			put(r, tr(r, va_arg(ap, const char *)));
		else if (*fmt == 'n')
			put_text(r, tr(r, va_arg(ap, const char *)),
			    NAME_CHARS);
		else if (*fmt == 'q') {
			max = va_arg(ap, int);
			put_text(r, va_arg(ap, const char *), (size_t)max);
		} else if (*fmt == 't')
			put_time(r, va_arg(ap, double));
		else
			put_num(r, va_arg(ap, double), *fmt == 'f' ? 2 : 0,
			    how | (*fmt == '$' ? USD : *fmt == 'p' ? PCT : 0));
	}
	va_end(ap);
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
		say(r, "%s%n ", first, k);
		put_num(r, json_number_value(v), 0, how);
		first = SEP;
		if (reused > 0 && strcmp(k, "stored") == 0)
			say(r, " (%d %w)", reused, "reused");
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

	say(r, "%s <b>%w</b>", heads[i][0], heads[i][1]);
	if (json_is_string(v = json_object_get(s, "run_id")))
		say(r, "\n%w: <code>%q</code>", "Run", 64,
		    json_string_value(v));
	if (json_is_object(shards)) {
		v = json_object_get(shards, "missing");
		say(r, "\n%w: %d %w %d", "Shards", num_at(shards, "of") -
		    (double)json_array_size(v), "of", num_at(shards, "of"));
		json_array_foreach(v, i, k)
			say(r, "%s%d", i > 0 ? ", " : tr(r, "; missing: "),
			    json_number_value(k));
		if (json_array_size(v) > 0)
			say(r, "%w", " (no finished ledger row)");
	}
	say(r, "\n%w: %d", "Records", num_at(s, "records"));
	put_pairs(r, json_object_get(s, "by_status"), DASH, 0,
	    num_at(s, "reused"));
	if (json_object_size(json_object_get(s, "by_error")) > 0) {
		say(r, "\n%w", "Errors");
		put_pairs(r, json_object_get(s, "by_error"), ": ", 0, 0);
	}
	if (num_at(s, "bad_lines") > 0)
		say(r, "\n%w: %d", "Unreadable input lines",
		    num_at(s, "bad_lines"));
	put(r, "\n");
}

/* Tokens and cost, latency, duration, backlog, the previous run. */
static void
usage_lines(struct rep *r, json_t *s)
{
	json_t *lat = json_object_get(s, "latency_ms"), *v;
	json_t *cost = json_object_get(s, "cost_usd");
	json_t *d = json_object_get(json_object_get(s, "previous"), "delta");

	if (num_at(v = json_object_get(s, "tokens"), "total") > 0 ||
	    json_is_number(cost)) {
		say(r, "%w: %d", "Tokens", num_at(v, "total"));
		if (json_is_number(cost))
			say(r, SEP "%w %$", "cost", json_number_value(cost));
		put(r, "\n");
	}
	if (num_at(lat, "count") > 0)
		say(r, "%w: p50 %t" SEP "p95 %t" SEP "%w %t\n", "Latency",
		    num_at(lat, "p50"), num_at(lat, "p95"), "max",
		    num_at(lat, "max"));
	if (json_is_number(v = json_object_get(s, "duration_s")))
		say(r, "%w: %t\n", "Duration", json_number_value(v) * 1000);
	if (json_is_object(v = json_object_get(s, "backlog")))
		say(r, "%w: %d %w" SEP "%d %w" SEP "%d %w\n", "Backlog",
		    num_at(v, "unclaimed"), "unclaimed", num_at(v, "leased"),
		    "leased", num_at(v, "failed"), "parked");
	if (!json_is_object(d))
		return;
	say(r, "%w: %w %+d" SEP "%w %+d" SEP "%w %+d", "Since the last run",
	    "records", num_at(d, "records"), "failed", num_at(d, "failed"),
	    "tokens", num_at(d, "tokens"));
	if (json_is_number(v = json_object_get(d, "cost_usd")))
		say(r, SEP "%w %+$", "cost", json_number_value(v));
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
			say(r, "\n<b>%w</b>\n", "What failed");
		say(r, "\xE2\x80\xA2 <b>%q</b>", NAME_CHARS, json_string_value(
		    json_object_get(stage, "stage")));
		if (json_is_true(json_object_get(stage, "missing"))) {
			say(r, " %w\n", "ended without its stage record "
			    "(crashed or killed?)");
			continue;
		}
		dt_buf_printf(&r->b, " (%s %d", tr(r, "exit"), status);
		snprintf(key, sizeof(key), "exit %d", status);
		if (tr(r, key) != key)
			say(r, ", %w", key);
		if (json_is_true(json_object_get(stage, "interrupted")))
			say(r, ", %w", "interrupted");
		if (num_at(stage, "reports") > 1)
			dt_buf_printf(&r->b, tr(r, ", %d reports"),
			    (int)num_at(stage, "reports"));
		put(r, ")");
		json_array_foreach(json_object_get(stage, "messages"), j, m)
			say(r, "%s%q", j == 0 ? ": " : "; ", 200,
			    json_string_value(m));
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
		json_array_foreach(json_object_get(f, "top"), i, v)
			say(r, "%s%q %p", i > 0 ? SEP : "", NAME_CHARS,
			    json_string_value(json_object_get(v, "value")),
			    num_at(v, "count") / total);
		if (num_at(f, "other") > 0)
			say(r, SEP "%w %p", "other",
			    num_at(f, "other") / total);
	} else if (strcmp(kind, "mean") == 0)
		say(r, "%w %f", "mean", num_at(f, "mean"));
	else if (strcmp(kind, "items") == 0)
		say(r, "%d %w %d %w", num_at(f, "items"), "in",
		    num_at(f, "records"), "messages");
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
	say(r, "\n<b>%w</b>: %d\n", "Analyses", num_at(an, "records"));
	json_object_foreach(json_object_get(an, "fields"), name, f) {
		kind = json_string_value(json_object_get(f, "kind"));
		if (kind == NULL || strcmp(kind, "topics") == 0 ||
		    num_at(f, "records") == 0)
			continue;
		say(r, "<b>%n</b>: ", name);
		field_value(r, kind, f);
		put(r, "\n");
	}
	json_object_foreach(json_object_get(an, "fields"), name, f) {
		kind = json_string_value(json_object_get(f, "kind"));
		top = json_object_get(f, "top");
		if (kind == NULL || strcmp(kind, "topics") != 0 ||
		    json_array_size(top) == 0)
			continue;
		say(r, "\n<b>%n</b>\n", name);
		json_array_foreach(top, i, e)
			say(r, "%d. %q" DASH "%d\n", (double)i + 1, 48,
			    json_string_value(json_object_get(e, "value")),
			    num_at(e, "count"));
	}
}

json_t *
dt_rpt_messages(json_t *summary, const char *lang, size_t limit)
{
	struct rep r = {{0}, lang != NULL && strcmp(lang, "ru") == 0};
	struct dt_buf part = {0};
	json_t *parts = json_array();
	size_t n, i;
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
		if (part.len > 0 && dt_rpt_html_utf16(part.p, part.len) + 1 +
		    n > limit - PART_RESERVE) {
			rc |= json_array_append_new(parts, json_stringn(part.p,
			    part.len));
			part.len = 0;
		}
		if (part.len > 0 || n > 0)
			dt_buf_printf(&part, "%s%.*s", part.len > 0 ? "\n" : "",
			    (int)(nl - line), line);
	}
	rc |= json_array_append_new(parts, json_stringn(part.p, part.len));
	for (i = 1; i < json_array_size(parts); i++) {
		part.len = 0;
		dt_buf_puts(&part, "<i>");
		dt_buf_printf(&part, tr(&r, "part %d of %d"), (int)i + 1,
		    (int)json_array_size(parts));
		dt_buf_printf(&part, "</i>\n%s", json_string_value(
		    json_array_get(parts, i)));
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
		m = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
		if (o + space + m > max)
			break;
		if (space)
			buf[o++] = ' ';
		space = 0;
		o += utf8_put(buf + o, c);
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
		} else          /* a lead byte: 1 unit, or 2 above U+FFFF */
			units += p[i] >= 0xF0 ? 2 : (p[i] & 0xC0) != 0x80;
	}
	return units;
}
