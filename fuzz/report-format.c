/*
 * fuzz/report-format.c: dt-report's summary and Telegram message
 * formatting (report/tally.c, report/format.c).
 *
 * Input: byte 0 picks the language (bit 0: en/ru), the mode (bit 1) and
 * the message size limit (bits 2-7: 4096, or smaller to force splits).
 * Mode 0: the rest is NDJSON lines, scanned, tallied and summed up as
 * dt-report does.  Mode 1: the rest is a JSON object whose "backlog" and
 * "previous" replace those of a fixed run's summary: the parts dt-report
 * takes from the database (the backlog function, the ledger's previous
 * run), which the formatter must take in any shape.
 *
 * Checks on every message: not empty, valid UTF-8, at most the limit in
 * Telegram's count (dt_rpt_html_utf16), and HTML Telegram accepts: only
 * its tags, each closed in the same message in the right order, and no
 * bare '<' or '&'.
 *
 * fuzz-sources: report/tally.c report/format.c
 * fuzz-options: -max_len=8192
 */
#include <string.h>

#include <jansson.h>

#include "../report/report.h"
#include "fuzz.h"

/* A run with stored and failed records and two stage reports. */
static const char fixed_run[] =
    "{\"id\":1,\"status\":\"stored\",\"analysis\":{\"sentiment\":\"mixed\","
    "\"topics\":[\"a <b>\",\"\u0440\u0430\u0431\u043e\u0442\u0430\"],"
    "\"language\":\"ru\",\"confidence\":0.5},\"latency_ms\":800,"
    "\"usage\":{\"total_tokens\":130,\"cost_usd\":0.005}}\n"
    "{\"id\":2,\"status\":\"failed\",\"error\":{\"kind\":\"unavailable\"}}\n"
    "{\"stage\":\"dt-analyze\",\"run_id\":\"r1\",\"status\":69,"
    "\"message\":\"circuit open\"}\n"
    "{\"stage\":\"dt-store\",\"run_id\":\"r1\",\"status\":1}\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet("fuzz-report-format");
	return 0;
}

static int
known_tag(const char *s, size_t n)
{
	static const char *const tags[] = { "b", "strong", "i", "em", "u",
		"ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
		"pre", "blockquote", "tg-emoji" };
	size_t i;

	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (strlen(tags[i]) == n && memcmp(tags[i], s, n) == 0)
			return 1;
	return 0;
}

/* Checks m as Telegram's HTML parse mode would. */
static void
check_html(const char *m)
{
	const char *stack[32];
	size_t slen[32];
	int depth = 0;
	const char *p = m;

	while (*p != '\0') {
		if (*p == '&') {
			size_t n = strspn(p + 1,
			    "abcdefghijklmnopqrstuvwxyz#0123456789ABCDEF");

			FUZZ_CHECK(p[1 + n] == ';');
			FUZZ_CHECK((n == 2 && (!memcmp(p + 1, "lt", 2) ||
			    !memcmp(p + 1, "gt", 2))) ||
			    (n == 3 && !memcmp(p + 1, "amp", 3)) ||
			    (n == 4 && !memcmp(p + 1, "quot", 4)) ||
			    (n > 1 && p[1] == '#'));
			p += n + 2;
		} else if (*p == '<') {
			int close = p[1] == '/';
			const char *name = p + 1 + close;
			size_t n = strspn(name,
			    "abcdefghijklmnopqrstuvwxyz-");
			const char *end = strchr(name, '>');

			FUZZ_CHECK(end != NULL && known_tag(name, n));
			FUZZ_CHECK(memchr(name, '<', (size_t)(end - name)) ==
			    NULL);
			if (close) {
				FUZZ_CHECK(depth > 0 && slen[depth - 1] == n &&
				    memcmp(stack[depth - 1], name, n) == 0);
				depth--;
			} else {
				FUZZ_CHECK(depth < 32);
				stack[depth] = name;
				slen[depth++] = n;
			}
			p = end + 1;
		} else {
			FUZZ_CHECK(*p != '>');
			p++;
		}
	}
	FUZZ_CHECK(depth == 0);
}

static void
format(json_t *summary, const char *lang, size_t limit)
{
	json_t *msgs, *v;
	const char *m;
	size_t i;

	msgs = dt_rpt_messages(summary, lang, limit);
	FUZZ_CHECK(json_array_size(msgs) > 0);
	json_array_foreach(msgs, i, v) {
		m = json_string_value(v);
		FUZZ_CHECK(m != NULL && m[0] != '\0');
		FUZZ_CHECK(fuzz_utf8_ok(m, strlen(m)));
		FUZZ_CHECK(dt_rpt_html_utf16(m, strlen(m)) <= limit);
		check_html(m);
	}
	json_decref(msgs);
}

/* Parses and tallies the NDJSON lines in buf, as dt-report does. */
static json_t *
tally_lines(const char *buf, size_t size)
{
	struct dt_rpt_tally *t;
	json_t *summary, *rec;
	const char *p = buf, *end = buf + size;

	t = calloc(1, sizeof(*t));
	FUZZ_CHECK(t != NULL);
	FUZZ_CHECK(dt_rpt_tally_init(t, NULL, 10, "topics") == 0);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		rec = json_loadb(p, n, JSON_ALLOW_NUL, NULL);
		if (json_is_object(rec))
			dt_rpt_tally_add(t, rec);
		else
			t->bad_lines++;
		json_decref(rec);
		p += n + 1;
	}
	summary = dt_rpt_summary(t, NULL, "2026-11-28T10:00:00Z",
	    "2026-11-28T10:01:40Z", 100.0);
	FUZZ_CHECK(summary != NULL);
	dt_rpt_tally_free(t);
	free(t);
	return summary;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *lang;
	json_t *summary;
	size_t limit;

	if (size < 1)
		return 0;
	lang = data[0] & 1 ? "ru" : "en";
	limit = data[0] >> 2 == 0 ? 4096 : 600 + (size_t)(data[0] >> 2) * 50;
	if (data[0] & 2) {
		json_t *db = json_loadb((const char *)data + 1, size - 1,
		    JSON_ALLOW_NUL, NULL);

		if (!json_is_object(db)) {
			json_decref(db);
			return 0;
		}
		summary = tally_lines(fixed_run, strlen(fixed_run));
		json_object_set(summary, "backlog", json_object_get(db,
		    "backlog"));
		json_object_set(summary, "previous", json_object_get(db,
		    "previous"));
		json_decref(db);
	} else
		summary = tally_lines((const char *)data + 1, size - 1);
	format(summary, lang, limit);
	json_decref(summary);
	return 0;
}
