/*
 * report: unit checks of dt-report's pure parts (report/hist.c,
 * topk.c, text.c, tally.c, summary.c, format.c): the histogram's error bound, the top-k guarantees,
 * topic normalisation, HTML escaping and length, what the tally takes
 * from a record and the splitting of long reports.  Prints one line
 * per failed check and exits 1 when any failed.
 */
#include "../../report/format.c"
#include "../../report/counters.c"
#include "../../report/summary.c"
#include "../../report/tally.c"
#include "../../report/text.c"

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

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_hist(void)
{
	static struct dt_rpt_hist h;
	static uint64_t v[200000];
	const double qs[] = {0.01, 0.5, 0.9, 0.95, 0.99, 1.0};
	size_t i;

	memset(&h, 0, sizeof(h));
	CHECK(dt_rpt_hist_quantile(&h, 0.5) == 0);
	for (i = 0; i < 100; i++)
		dt_rpt_hist_add(&h, 100 - i);
	CHECK(dt_rpt_hist_quantile(&h, 0.5) == 50);     /* exact below 2048 */
	CHECK(dt_rpt_hist_quantile(&h, 0.95) == 95);
	CHECK(dt_rpt_hist_quantile(&h, 1.0) == 100);
	CHECK(h.min == 1 && h.max == 100);

	/* Spread over six decades: every quantile within 1/2048. */
	memset(&h, 0, sizeof(h));
	srandom(7);
	for (i = 0; i < 200000; i++) {
		v[i] = (uint64_t)exp((double)random() / RAND_MAX * 14.0);
		dt_rpt_hist_add(&h, v[i]);
	}
	qsort(v, 200000, sizeof(v[0]), cmp_u64);
	for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		size_t r = (size_t)ceil(qs[i] * 200000);
		double exact = (double)v[r - 1];
		double got = (double)dt_rpt_hist_quantile(&h, qs[i]);

		CHECK(fabs(got - exact) <= exact / 2048 + 0.5);
	}
	CHECK(dt_rpt_hist_quantile(&h, 1.0) == v[199999]);
	dt_rpt_hist_add(&h, UINT64_MAX);
	CHECK(dt_rpt_hist_quantile(&h, 1.0) == UINT64_MAX);
}

static void
test_topk(void)
{
	struct dt_rpt_topk t;
	const struct dt_rpt_topk_item *top[10];
	char key[32];
	size_t n, i;

	/* Fewer distinct keys than counters: exact. */
	CHECK(dt_rpt_topk_init(&t, 8) == 0);
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%zu", i % 5);
		dt_rpt_topk_add(&t, key, strlen(key), 1, 0);
	}
	dt_rpt_topk_add(&t, "k0", 2, 1, 0);
	n = dt_rpt_topk_top(&t, top, 10);
	CHECK(n == 5);
	CHECK_STR(top[0]->key, "k0");
	CHECK(top[0]->count == 21 && top[0]->err == 0);
	CHECK(top[1]->count == 20 && strcmp(top[1]->key, "k1") == 0);
	CHECK(t.evictions == 0 && t.total == 101);
	dt_rpt_topk_free(&t);

	/* Heavy hitters in a stream of unique junk: found, with bounds. */
	CHECK(dt_rpt_topk_init(&t, 50) == 0);
	for (i = 0; i < 100000; i++) {
		if (i % 10 == 0)
			dt_rpt_topk_add(&t, "billing", 7, 1, 0);
		else if (i % 25 == 0)
			dt_rpt_topk_add(&t, "refunds", 7, 1, 0);
		else {
			snprintf(key, sizeof(key), "junk-%zu", i);
			dt_rpt_topk_add(&t, key, strlen(key), 1, 0);
		}
	}
	n = dt_rpt_topk_top(&t, top, 2);
	CHECK(n == 2);
	CHECK_STR(top[0]->key, "billing");
	CHECK_STR(top[1]->key, "refunds");
	/* true counts: 10000 and 2000 */
	CHECK(top[0]->count >= 10000 && top[0]->count - top[0]->err <= 10000);
	CHECK(top[1]->count >= 2000 && top[1]->count - top[1]->err <= 2000);
	CHECK(top[0]->err <= t.total / 50);
	CHECK(t.evictions > 0);
	/* The table still finds every kept key after all the evictions. */
	for (i = 0; i < t.n; i++)
		CHECK(json_integer_value(json_object_get(t.index,
		    t.items[i].key)) == (json_int_t)i);
	CHECK(json_object_size(t.index) == t.n);
	dt_rpt_topk_free(&t);

	/* Keys are cut at DT_RPT_KEY_MAX bytes on a character boundary. */
	CHECK(dt_rpt_topk_init(&t, 4) == 0);
	{
		char big[400];

		for (i = 0; i + 2 <= 300; i += 2)
			memcpy(big + i, "\xD0\xB6", 2);  /* ж */
		dt_rpt_topk_add(&t, big, 300, 1, 0);
		dt_rpt_topk_add(&t, big, 200, 1, 0);
		n = dt_rpt_topk_top(&t, top, 1);
		CHECK(strlen(top[0]->key) == DT_RPT_KEY_MAX);
		CHECK(top[0]->count == 2);
	}
	dt_rpt_topk_free(&t);
}

static void
test_text(void)
{
	char buf[DT_RPT_KEY_MAX + 1], clip[64];
	struct dt_buf b = {0};
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

	dt_rpt_buf_html(&b, "<b> & \"q\"", 9);
	CHECK_STR(b.p, "&lt;b&gt; &amp; &quot;q&quot;");
	dt_buf_free(&b);
	s = "<b>a</b>&lt;\xF0\x9F\x8F\x9F ж";
	CHECK(dt_rpt_html_utf16(s, strlen(s)) == 6);
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

static void
test_tally(void)
{
	static struct dt_rpt_tally t;
	const struct dt_rpt_topk_item *top[4];
	json_t *stage;

	CHECK(dt_rpt_tally_init(&t, NULL, 10, "topics") == 0);
	add(&t, "{\"id\":7,\"status\":\"stored\",\"usage\":{\"prompt_tokens\":"
	    "3,\"completion_tokens\":4,\"cost\":{\"input_cost\":0.25,"
	    "\"output_cost\":0.5}},\"latency_ms\":812.5,\"x\":[1,{\"y\":null}],"
	    "\"analysis\":{\"sentiment\":\"neg\\u0061tive\",\"topics\":[\"a\","
	    "\"\\ud83c\\udfdf\",3,\"A\"],\"confidence\":1e-1,\"other\":true}}");
	CHECK(t.records == 1 && json_object_size(t.by_status) == 1);
	CHECK(json_integer_value(json_object_get(t.by_status, "stored")) == 1);
	CHECK(t.prompt_tokens == 3 && t.completion_tokens == 4 &&
	    t.total_tokens == 7);
	CHECK(t.with_cost == 1 && t.cost == 0.75);
	CHECK(t.latency.n == 1 && t.latency.min == 812);
	CHECK(t.analyzed == 1 && t.failed == 0);
	CHECK_STR(t.fields[0].name, "sentiment");
	CHECK(t.fields[0].counts[2] == 1 && t.fields[0].present == 1);
	CHECK_STR(t.fields[2].name, "topics");
	CHECK(dt_rpt_topk_top(&t.fields[2].topk, top, 4) == 2);
	CHECK_STR(top[0]->key, "a");
	CHECK(top[0]->count == 2);
	CHECK(t.fields[4].sum == 0.1 && t.fields[4].present == 1);

	/* A stage record: no id. */
	add(&t, "{\"stage\":\"dt-fetch\",\"status\":69,\"message\":\"Supabase "
	    "unavailable\",\"counts\":{\"claimed\":2,\"x\":\"y\"},"
	    "\"interrupted\":true}");
	CHECK(t.records == 1 && json_array_size(t.stages) == 1);
	stage = json_array_get(t.stages, 0);
	CHECK(json_integer_value(json_object_get(stage, "status")) == 69);
	CHECK(json_is_true(json_object_get(stage, "interrupted")));
	CHECK(json_object_size(json_object_get(stage, "counts")) == 1);
	CHECK(json_integer_value(json_object_get(json_object_get(stage,
	    "counts"), "claimed")) == 2);
	CHECK_STR(json_string_value(json_array_get(json_object_get(stage,
	    "messages"), 0)), "Supabase unavailable");

	/* Errors, with and without a kind; a null error is none. */
	add(&t, "{\"id\":1,\"error\":{\"kind\":\"timeout\"}}");
	add(&t, "{\"id\":2,\"error\":\"boom\"}");
	add(&t, "{\"id\":3,\"error\":null,\"usage\":{\"total_tokens\":5},"
	    "\"cost_usd\":0.5,\"latency_ms\":\"slow\"}");
	CHECK(t.records == 4 && t.failed == 2);
	CHECK(json_object_size(t.by_error) == 2);
	CHECK_STR(json_object_iter_key(json_object_iter(t.by_error)), "timeout");
	CHECK(json_integer_value(json_object_get(t.by_error, "unknown")) == 1);
	CHECK(t.total_tokens == 12 && t.with_cost == 2 && t.cost == 1.25);
	CHECK(t.latency.n == 1);
	CHECK(json_object_size(t.by_status) == 3);  /* stored, failed, fetched */
	dt_rpt_tally_free(&t);
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
	test_hist();
	test_topk();
	test_text();
	test_tally();
	test_split();
	if (failures > 0) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("report: all checks passed\n");
	return 0;
}
