/*
 * report: unit checks of dt-report's pure parts (report/tally.c,
 * format.c): exact latency quantiles and top values, topic
 * normalisation, HTML escaping and length, the report's numbers and
 * times, what the tally takes from a record, merging a shard's tally,
 * and the splitting of long reports.  Prints one line per failed check
 * and exits 1 when any failed.
 */
#include "../../report/format.c"
#include "../../report/tally.c"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *a_ = (a), *b_ = (b); \
	if (strcmp(a_, b_) != 0) { \
		printf("%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, a_, b_); \
		failures++; \
	} \
} while (0)

/* The latency quantiles are exact nearest-rank values. */
static void
test_latency(void)
{
	json_t *lat = json_array(), *o;
	size_t i;

	o = latency_json(lat);
	CHECK(json_is_null(json_object_get(o, "p50")));
	json_decref(o);
	for (i = 0; i < 100; i++)
		json_array_append_new(lat, json_integer(100 - (json_int_t)i));
	o = latency_json(lat);
	CHECK(json_integer_value(json_object_get(o, "p50")) == 50);
	CHECK(json_integer_value(json_object_get(o, "p95")) == 95);
	CHECK(json_integer_value(json_object_get(o, "max")) == 100);
	json_decref(o);
	/* Past the old histogram's exact range: still exact. */
	json_array_clear(lat);
	for (i = 0; i < 20; i++)
		json_array_append_new(lat, json_integer(4454 + 1000 *
		    (json_int_t)i));
	o = latency_json(lat);
	CHECK(json_integer_value(json_object_get(o, "p50")) == 13454);
	CHECK(json_integer_value(json_object_get(o, "p95")) == 22454);
	CHECK(json_integer_value(json_object_get(o, "count")) == 20);
	json_decref(o);
	json_decref(lat);
}

/* The top values: largest count first, ties by value, at most k. */
static void
test_top(void)
{
	json_t *counts = json_pack("{sisisisi}", "b", 2, "c", 5, "a", 2,
	    "d", 1), *top;
	json_int_t shown = 0;

	top = top_values(counts, 3, &shown);
	CHECK(json_array_size(top) == 3 && shown == 9);
	CHECK_STR(json_string_value(json_object_get(json_array_get(top, 0),
	    "value")), "c");
	CHECK_STR(json_string_value(json_object_get(json_array_get(top, 1),
	    "value")), "a");
	CHECK_STR(json_string_value(json_object_get(json_array_get(top, 2),
	    "value")), "b");
	json_decref(top);
	json_decref(counts);
}

static void
test_text(void)
{
	char buf[DT_RPT_KEY_MAX + 1], clip[64];
	struct rep r = {{0}, 0};
	const char *s;

	s = "  Billing\t \n ISSUES  ";
	dt_rpt_topic_norm(s, strlen(s), buf, sizeof(buf));
	CHECK_STR(buf, "billing issues");
	s = "ОПЛАТА Ёлки\xE2\x80\xAE";
	dt_rpt_topic_norm(s, strlen(s), buf, sizeof(buf));
	CHECK_STR(buf, "оплата ёлки");
	s = "a\x01" "b";
	dt_rpt_topic_norm(s, 3, buf, sizeof(buf));
	CHECK_STR(buf, "ab");
	CHECK(dt_rpt_topic_norm(" \t ", 3, buf, sizeof(buf)) == 0);

	CHECK_STR(dt_rpt_clip("line\nbreak", 20, clip, sizeof(clip)),
	    "line break");
	CHECK_STR(dt_rpt_clip("abcdef", 3, clip, sizeof(clip)),
	    "abc\xE2\x80\xA6");
	CHECK_STR(dt_rpt_clip("жжжж", 2, clip, sizeof(clip)),
	    "жж\xE2\x80\xA6");
	CHECK_STR(dt_rpt_clip("ok", 2, clip, sizeof(clip)), "ok");
	CHECK_STR(dt_rpt_clip("bad\xFF", 10, clip, sizeof(clip)),
	    "bad\xEF\xBF\xBD");

	put_text(&r, "<b> & \"q\"\n", 10);
	CHECK_STR(r.b.p, "&lt;b&gt; &amp; &quot;q&quot; ");
	dt_buf_free(&r.b);
	s = "<b>a</b>&lt;\xF0\x9F\x8F\x9F ж";
	CHECK(dt_rpt_html_utf16(s, strlen(s)) == 6);
}

/* What put_num(v, places, how) or, places < 0, put_time(v) writes. */
static void
check_num(int ru, double v, int places, int how, const char *want)
{
	struct rep r = {{0}, ru};

	if (places < 0)
		put_time(&r, v);
	else
		put_num(&r, v, places, how);
	CHECK_STR(r.b.p, want);
	dt_buf_free(&r.b);
}

static void
test_format(void)
{
	check_num(0, 1234567, 0, 0, "1,234,567");
	check_num(1, 1234567, 0, 0, "1\u00a0234\u00a0567");
	check_num(0, -2688, 0, SIGN, "\u22122,688");
	check_num(0, 3, 0, SIGN, "+3");
	check_num(0, -0.006, 0, USD | SIGN, "\u2212$0.0060");
	check_num(1, -0.006, 0, USD | SIGN, "\u22120,0060\u00a0$");
	check_num(0, 1234.6, 0, USD, "$1,235");
	check_num(0, 1e20, 0, USD, "$100,000,000,000,000,000,000");
	check_num(0, 0.004, 0, PCT, "&lt;1%");
	check_num(0, 0.5, 0, PCT, "50%");
	check_num(1, 0.85, 2, 0, "0,85");
	check_num(0, 700, -1, 0, "700\u00a0ms");
	check_num(0, 1930, -1, 0, "1.93\u00a0s");
	check_num(1, 12500, -1, 0, "12,5\u00a0с");
	check_num(0, 75300, -1, 0, "1\u00a0min 15\u00a0s");
	check_num(0, 252500, -1, 0, "4\u00a0min 13\u00a0s");
	check_num(0, 7500000, -1, 0, "2\u00a0h 5\u00a0min");
}

/* Tallies the JSON text line, which must be an object. */
static void
add(struct dt_rpt_tally *t, const char *line)
{
	json_t *rec = json_loads(line, 0, NULL);

	CHECK(json_is_object(rec));
	dt_rpt_tally_add(t, rec);
	json_decref(rec);
}

/* The value at the dotted path in o; NULL when absent. */
static json_t *
at(json_t *o, const char *path)
{
	char key[64];
	size_t n;

	for (; *path != '\0'; path += n + (path[n] == '.')) {
		n = strcspn(path, ".");
		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		o = json_object_get(o, key);
	}
	return o;
}

static double
num(json_t *o, const char *path)
{
	return json_number_value(at(o, path));
}

static void
test_tally(void)
{
	static struct dt_rpt_tally t;
	json_t *stage, *topics;
	char line[600], big[400];
	size_t i;

	CHECK(dt_rpt_tally_init(&t, NULL, 10, "topics") == 0);
	add(&t, "{\"id\":7,\"status\":\"stored\",\"usage\":{\"prompt_tokens\":"
	    "3,\"completion_tokens\":4,\"cost\":{\"input_cost\":0.25,"
	    "\"output_cost\":0.5}},\"latency_ms\":812.5,\"x\":[1,{\"y\":null}],"
	    "\"analysis\":{\"sentiment\":\"neg\\u0061tive\",\"topics\":[\"a\","
	    "\"\\ud83c\\udfdf\",3,\"A\"],\"confidence\":1e-1,\"other\":true}}");
	CHECK(num(t.n, "records") == 1 && num(t.n, "by_status.stored") == 1);
	CHECK(json_object_size(at(t.n, "by_status")) == 1);
	CHECK(num(t.n, "tokens.prompt") == 3);
	CHECK(num(t.n, "tokens.completion") == 4);
	CHECK(num(t.n, "tokens.total") == 7);
	CHECK(num(t.n, "with_cost") == 1 && num(t.n, "cost") == 0.75);
	CHECK(json_array_size(at(t.n, "latency_ms")) == 1);
	CHECK(json_integer_value(json_array_get(at(t.n, "latency_ms"), 0)) ==
	    812);
	CHECK(num(t.n, "analyzed") == 1 && num(t.n, "failed") == 0);
	CHECK_STR(json_object_iter_key(json_object_iter(at(t.n, "fields"))),
	    "sentiment");
	CHECK(num(t.n, "fields.sentiment.counts.negative") == 1);
	CHECK(num(t.n, "fields.sentiment.records") == 1);
	topics = at(t.n, "fields.topics.counts");
	CHECK(json_object_size(topics) == 2);
	CHECK(num(topics, "a") == 2);
	CHECK(num(t.n, "fields.confidence.sum") == 0.1);
	CHECK(num(t.n, "fields.confidence.records") == 1);

	/* A value outside the enum is "other"; a topic is cut at 128 bytes. */
	for (i = 0; i + 2 <= 300; i += 2)
		memcpy(big + i, "\xD0\xB6", 2);  /* ж */
	big[300] = '\0';
	snprintf(line, sizeof(line), "{\"id\":8,\"analysis\":{\"sentiment\":"
	    "\"angry\",\"topics\":[\"%s\"]}}", big);
	add(&t, line);
	CHECK(num(t.n, "fields.sentiment.counts.other") == 1);
	big[DT_RPT_KEY_MAX] = '\0';
	CHECK(json_integer_value(json_object_get(topics, big)) == 1);

	/* A stage record: no id. */
	add(&t, "{\"stage\":\"dt-fetch\",\"status\":69,\"message\":\"Supabase "
	    "unavailable\",\"counts\":{\"claimed\":2,\"x\":\"y\"},"
	    "\"interrupted\":true}");
	CHECK(num(t.n, "records") == 2 && json_object_size(t.stages) == 1);
	stage = json_object_get(t.stages, "dt-fetch");
	CHECK(num(stage, "status") == 69);
	CHECK(json_is_true(json_object_get(stage, "interrupted")));
	CHECK(json_object_size(json_object_get(stage, "counts")) == 1);
	CHECK(num(stage, "counts.claimed") == 2);
	CHECK_STR(json_string_value(json_array_get(json_object_get(stage,
	    "messages"), 0)), "Supabase unavailable");

	/* Errors, with and without a kind; a null error is none. */
	add(&t, "{\"id\":1,\"error\":{\"kind\":\"timeout\"}}");
	add(&t, "{\"id\":2,\"error\":\"boom\"}");
	add(&t, "{\"id\":3,\"error\":null,\"usage\":{\"total_tokens\":5},"
	    "\"cost_usd\":0.5,\"latency_ms\":\"slow\"}");
	CHECK(num(t.n, "records") == 5 && num(t.n, "failed") == 2);
	CHECK(json_object_size(at(t.n, "by_error")) == 2);
	CHECK_STR(json_object_iter_key(json_object_iter(at(t.n, "by_error"))),
	    "timeout");
	CHECK(num(t.n, "by_error.unknown") == 1);
	CHECK(num(t.n, "tokens.total") == 12 && num(t.n, "with_cost") == 2 &&
	    num(t.n, "cost") == 1.25);
	CHECK(json_array_size(at(t.n, "latency_ms")) == 1);
	/* stored, analyzed, failed, fetched */
	CHECK(json_object_size(at(t.n, "by_status")) == 4);
	dt_rpt_tally_free(&t);
}

/* Two shards' tallies merged say what one tally of every record says. */
static void
test_merge(void)
{
	static struct dt_rpt_tally whole, part, merged;
	const char *recs[] = {
	    "{\"id\":1,\"status\":\"stored\",\"latency_ms\":900,"
	    "\"usage\":{\"total_tokens\":5,\"cost\":0.25},\"analysis\":"
	    "{\"sentiment\":\"mixed\",\"topics\":[\"b\",\"a\"],"
	    "\"language\":\"en\",\"confidence\":0.5}}",
	    "{\"stage\":\"dt-fetch\",\"status\":1,\"counts\":{\"claimed\":1}}",
	    "{\"id\":2,\"status\":\"failed\",\"error\":{\"kind\":\"timeout\"},"
	    "\"latency_ms\":100}",
	    "{\"id\":3,\"status\":\"stored\",\"latency_ms\":300,\"analysis\":"
	    "{\"sentiment\":\"wry\",\"topics\":[\"a\"],\"language\":\"ru\","
	    "\"action_items\":[\"x\"],\"confidence\":1}}",
	    "{\"stage\":\"dt-fetch\",\"status\":0,\"counts\":{\"claimed\":2}}",
	};
	json_t *s, *w;
	size_t i;

	CHECK(dt_rpt_tally_init(&whole, NULL, 10, "topics") == 0);
	CHECK(dt_rpt_tally_init(&merged, NULL, 10, "topics") == 0);
	for (i = 0; i < 5; i++)
		add(&whole, recs[i]);
	for (i = 0; i < 5; i += 3) {
		CHECK(dt_rpt_tally_init(&part, NULL, 10, "topics") == 0);
		add(&part, recs[i]);
		add(&part, recs[i + 1]);
		if (i == 0)
			add(&part, recs[2]);
		s = dt_rpt_summary(&part, "r", NULL, NULL, -1);
		json_object_set_new(s, "shard", json_pack("{so}", "internal",
		    json_deep_copy(part.n)));
		CHECK(dt_rpt_tally_merge(&merged, s) == 0);
		json_decref(s);
		dt_rpt_tally_free(&part);
	}
	s = dt_rpt_summary(&merged, "r", NULL, NULL, -1);
	w = dt_rpt_summary(&whole, "r", NULL, NULL, -1);
	CHECK(json_equal(s, w));
	CHECK(num(s, "latency_ms.p50") == 300 && num(s, "tokens.total") == 5);
	CHECK(num(s, "analysis.fields.topics.total") == 3);
	CHECK(num(json_array_get(at(s, "stages"), 0), "counts.claimed") == 3);
	CHECK(num(json_array_get(at(s, "stages"), 0), "reports") == 2);
	json_decref(s);
	json_decref(w);
	dt_rpt_tally_free(&whole);
	dt_rpt_tally_free(&merged);
}

/* Checks that every tag opened in msg is closed in msg. */
static int
balanced(const char *msg)
{
	char stack[32][16];
	int depth = 0;
	const char *p;

	for (p = msg; (p = strchr(p, '<')) != NULL; p++) {
		const char *e = strchr(p, '>');
		size_t n;

		if (e == NULL)
			return 0;
		n = (size_t)(e - p - 1);
		if (p[1] == '/') {
			if (depth == 0 || strncmp(stack[depth - 1], p + 2,
			    n - 1) != 0)
				return 0;
			depth--;
		} else {
			if (depth == 32 || n >= 16)
				return 0;
			memcpy(stack[depth], p + 1, n);
			stack[depth++][n] = '\0';
		}
	}
	return depth == 0;
}

static void
test_split(void)
{
	static struct dt_rpt_tally t;
	char line[256];
	json_t *s, *msgs;
	const char *p, *m;
	int i, n, seen = 0;

	CHECK(dt_rpt_tally_init(&t, NULL, 300, "topics") == 0);
	for (i = 0; i < 300; i++) {
		/* 300 distinct 40-character topics, i + 1 times each */
		for (n = 0; n <= i; n++) {
			snprintf(line, sizeof(line), "{\"id\":%d,\"analysis\":"
			    "{\"topics\":[\"%03d <&> %s\"]}}", n, i,
			    "ёжик-в-тумане-и-лошадка-🏟");
			add(&t, line);
		}
	}
	s = dt_rpt_summary(&t, "run-x", NULL, NULL, -1);
	msgs = dt_rpt_messages(s, "ru", 4096);
	CHECK(msgs != NULL);
	for (n = 0; (m = json_string_value(json_array_get(msgs, n))) != NULL;
	    n++) {
		size_t units = dt_rpt_html_utf16(m, strlen(m));

		CHECK(units <= 4096);
		CHECK(units > 3000 || (size_t)n + 1 == json_array_size(msgs));
		CHECK(balanced(m));
		if (n > 0) {
			snprintf(line, sizeof(line), "<i>часть %d из ", n + 1);
			CHECK(strncmp(m, line, strlen(line)) == 0);
		}
		/* Topics stay in order across the messages. */
		for (p = m; (p = strstr(p, " &lt;&amp;&gt; ")) != NULL;
		    p++) {
			CHECK(strtol(p - 3, NULL, 10) == 299 - seen);
			seen++;
		}
	}
	CHECK(n >= 4);
	CHECK(seen == 300);
	json_decref(msgs);
	json_decref(s);
	dt_rpt_tally_free(&t);
}

int
main(void)
{
	dt_log_init("report");
	test_latency();
	test_top();
	test_text();
	test_format();
	test_tally();
	test_merge();
	test_split();
	if (failures > 0) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("report: all checks passed\n");
	return 0;
}
