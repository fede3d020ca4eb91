/*
 * analyze_json: dt-analyze's own JSON reading and writing against
 * Jansson's, which they stand in for on every record.
 *
 *   analyze_json SCHEMA [FILE ...]
 *
 * For every FILE (whole, and without its first byte, as fuzz/api.c
 * reads its inputs) and for built-in cases:
 *   - dt_api_parse() with the scanner and with Jansson alone give the
 *     same result, reason, model, usage, copy and analysis, for both API
 *     shapes, with the text as a response and inside one as the output;
 *   - the scanner's build() takes only what json_loadb(..., 0) takes,
 *     and builds an equal value;
 *   - js_object() takes only the objects json_loadb takes, and finds
 *     the same members;
 *   - dt_json_append() writes what json_dumps(JSON_COMPACT |
 *     JSON_REAL_PRECISION(15)) writes, for every value Jansson reads;
 *   - dt_api_body() is dt_api_request() serialized.
 * Prints "N checks, N failed"; exits 1 when one failed.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "../../analyze/api.c"
#include "../../analyze/jscan.c"
#include "../../analyze/jsonout.c"
#include "../../analyze/schema.c"
#include "../../analyze/sha256.c"

static int failures, checks;
static int scanned, responses_n, built, loadable, objects;
static const char *current;     /* the case, for messages */
static json_t *schema;
static struct dt_schema *compiled;

static void
expect(int cond, const char *what)
{
	checks++;
	if (!cond) {
		failures++;
		printf("not ok - %s: %s\n", current, what);
	}
}

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* dt_api_parse with the scanner and with Jansson alone agree. */
static void
parse_both(int kind, const char *body, size_t len)
{
	struct dt_api a;
	struct dt_usage u[2];
	json_t *an[2];
	char model[2][128], why[2][600], *raw[2];
	int rc[2], i;

	memset(&a, 0, sizeof(a));
	a.kind = kind;
	a.model = "perplexity/sonar";
	a.prompt = "p";
	a.schema = schema;
	a.compiled = compiled;
	a.schema_name = "analysis";
	{
		struct reply r;

		memset(&r, 0, sizeof(r));
		responses_n++;
		if (scan_reply(kind, body, len, &r) == 0)
			scanned++;
		reply_free(&r);
	}
	for (i = 0; i < 2; i++) {
		jansson_only = i;
		why[i][0] = model[i][0] = '\0';
		rc[i] = dt_api_parse(&a, body, len, &an[i], &u[i], model[i],
		    sizeof(model[i]), why[i], sizeof(why[i]), &raw[i]);
	}
	jansson_only = 0;
	expect(rc[0] == rc[1], "result");
	expect(strcmp(why[0], why[1]) == 0, "reason");
	expect(strcmp(model[0], model[1]) == 0, "model");
	expect(u[0].input_tokens == u[1].input_tokens &&
	    u[0].output_tokens == u[1].output_tokens &&
	    u[0].total_tokens == u[1].total_tokens &&
	    u[0].cost_usd == u[1].cost_usd &&
	    u[0].have_cost == u[1].have_cost, "usage");
	expect(same_str(raw[0], raw[1]), "copy of the output");
	expect((an[0] == NULL) == (an[1] == NULL) && (an[0] == NULL ||
	    json_equal(an[0], an[1])), "analysis");
	for (i = 0; i < 2; i++) {
		json_decref(an[i]);
		free(raw[i]);
	}
}

/* The text as a response, and inside responses as the output text. */
static void
responses(const char *text, size_t len)
{
	json_t *s = json_stringn(text, len), *r;
	char *body;

	parse_both(DT_API_AGENT, text, len);
	parse_both(DT_API_CHAT, text, len);
	if (s == NULL)
		return;         /* not UTF-8 */
	r = json_pack("{s:s, s:s, s:[{s:s, s:[{s:s, s:O}]}], s:{s:i, s:i, "
	    "s:{s:f}}}", "model", "m", "status", "completed", "output", "type",
	    "message", "content", "type", "output_text", "text", s, "usage",
	    "input_tokens", 3, "output_tokens", 4, "cost", "total_cost", 0.5);
	if (r != NULL && (body = json_dumps(r, JSON_COMPACT)) != NULL) {
		parse_both(DT_API_AGENT, body, strlen(body));
		free(body);
	}
	json_decref(r);
	r = json_pack("{s:[{s:{s:O}, s:s}]}", "choices", "message", "content",
	    s, "finish_reason", "stop");
	if (r != NULL && (body = json_dumps(r, JSON_INDENT(1))) != NULL) {
		parse_both(DT_API_CHAT, body, strlen(body));
		free(body);
	}
	json_decref(r);
	json_decref(s);
}

/* build() accepts only what Jansson accepts, and builds the same. */
static void
builder(const char *text, size_t len)
{
	struct js_scan s = {text, text + len, 0};
	json_t *mine = NULL, *theirs = json_loadb(text, len, 0, NULL);

	js_ws(&s);
	if (s.p < s.end && (*s.p == '{' || *s.p == '[') &&
	    (mine = build(&s)) != NULL) {
		js_ws(&s);
		if (s.p != s.end) {
			json_decref(mine);
			mine = NULL;
		}
	}
	loadable += theirs != NULL;
	built += mine != NULL;
	if (mine != NULL)
		expect(theirs != NULL && json_equal(mine, theirs),
		    "the scanner took what Jansson does not, or read it "
		    "otherwise");
	json_decref(mine);
	json_decref(theirs);
}

/* dt_json_append writes what json_dumps writes. */
static void
writer(const json_t *v)
{
	struct dt_buf b = {0};
	char *want = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT |
	    JSON_REAL_PRECISION(15));

	if (want == NULL)
		return;
	expect(dt_json_append(&b, v) == 0 && b.len == strlen(want) &&
	    memcmp(b.s, want, b.len) == 0, "the writer differs from "
	    "json_dumps");
	free(want);
	dt_buf_free(&b);
}

/*
 * js_object() takes only objects json_loadb takes, and finds the members
 * json_object_get finds (id and text, as dt-analyze's input records).
 */
static void
object(const char *text, size_t len)
{
	static const char *const keys[] = {"id", "text", "model"};
	struct js_span v[3], obj;
	int seen[3], i;
	json_t *theirs;

	if (js_object(text, len, keys, 3, v, seen, &obj) < 0)
		return;
	objects++;
	theirs = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
	expect(json_is_object(theirs), "js_object took what Jansson does "
	    "not take as an object");
	expect(obj.n >= 2 && obj.s[0] == '{' && obj.s[obj.n - 1] == '}',
	    "js_object's object is not from '{' to '}'");
	for (i = 0; theirs != NULL && i < 3; i++) {
		json_t *m = json_object_get(theirs, keys[i]), *mine;

		expect((v[i].s != NULL) == (m != NULL) &&
		    (seen[i] == 0) == (m == NULL), "js_object found other "
		    "members than json_object_get");
		if (v[i].s == NULL || m == NULL)
			continue;
		mine = json_loadb(v[i].s, v[i].n, JSON_DECODE_ANY |
		    JSON_ALLOW_NUL, NULL);
		expect(mine != NULL && json_equal(mine, m), "js_object's "
		    "member differs from Jansson's");
		json_decref(mine);
	}
	json_decref(theirs);
}

static void
one(const char *name, const char *text, size_t len)
{
	json_t *v;

	current = name;
	responses(text, len);
	builder(text, len);
	object(text, len);
	if ((v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
	    NULL)) != NULL)
		writer(v);
	json_decref(v);
}

static void
file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL || (buf = malloc(1 << 20)) == NULL) {
		current = path;
		expect(0, "cannot read");
		if (f != NULL)
			fclose(f);
		return;
	}
	n = fread(buf, 1, 1 << 20, f);
	fclose(f);
	one(path, buf, n);
	if (n > 0)
		one(path, buf + 1, n - 1);
	free(buf);
}

/* Reals of every kind through the writer. */
static void
reals(void)
{
	static const double fixed[] = {0.0, -0.0, 1.0, -1.0, 0.1, 0.76,
	    0.00034425, 1e15, 1e16, 1e-5, 1e-4, 123456789012345678.0,
	    1.5e-7, 1e20, 1e300, 1e-300, 5e-324, DBL_MAX, -DBL_MAX, 0.5,
	    2.5e-5, 99999999999999.9, 999999999999999.0, 1e100, 3.0e7};
	unsigned long long x = 88172645463325252ULL;
	char name[64];
	size_t i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		json_t *r = json_real(fixed[i]);

		snprintf(name, sizeof(name), "real %.17g", fixed[i]);
		current = name;
		writer(r);
		json_decref(r);
	}
	for (i = 0; i < 20000; i++) {
		double d;
		json_t *r;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(&d, &x, sizeof(d));
		if (!isfinite(d))
			continue;
		if (i % 2)
			d = (double)(x % 100000000) / 1e8;
		if ((r = json_real(d)) == NULL)
			continue;
		snprintf(name, sizeof(name), "real %.17g", d);
		current = name;
		writer(r);
		json_decref(r);
	}
}

/* Built-in cases: the shapes the API sends, and what might trip. */
static void
cases(void)
{
	static const char *const c[] = {
		"{\"model\":\"perplexity/sonar\",\"status\":\"completed\","
		"\"output\":[{\"type\":\"message\",\"content\":[{\"type\":"
		"\"output_text\",\"text\":\"{\\\"summary\\\":\\\"s\\\","
		"\\\"sentiment\\\":\\\"positive\\\",\\\"topics\\\":[],"
		"\\\"language\\\":\\\"en\\\",\\\"action_items\\\":[],"
		"\\\"confidence\\\":0.5}\"}]}],\"usage\":{\"input_tokens\":1,"
		"\"output_tokens\":2,\"total_tokens\":3,\"cost\":{"
		"\"total_cost\":1e-4}}}",
		"{\"output\":[{\"content\":[{\"text\":\"{}\",\"type\":"
		"\"output_text\"}],\"type\":\"message\"}],\"status\":"
		"\"completed\"}",
		"{\"status\":\"completed\",\"status\":\"failed\",\"error\":"
		"{\"message\":\"\\u00e9\\ud83d\\ude00\"}}",
		"{\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":"
		"\"max\"},\"output\":[]}",
		"{\"usage\":{\"input_tokens\":1.0,\"output_tokens\":"
		"9223372036854775807,\"cost\":3}}",
		"{\"usage\":{\"input_tokens\":9223372036854775808}}",
		"{\"usage\":{\"cost\":{\"total_cost\":1e400}}}",
		"{\"usage\":{\"cost\":{\"total_cost\":1e-400}}}",
		"{\"a\\u0062\":1}",
		"{\"a\":\"\\u0000\"}",
		"{\"a\":\"\\ud800\"}",
		"{\"a\":\"\\udc00\\ud800\"}",
		"{\"a\":\"\x01\"}",
		"{\"a\":\"\xc0\xaf\"}",
		"{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":01}",
		"{\"a\":-}",
		"{\"a\":1.}",
		"{\"a\":.5}",
		"{\"a\":1e}",
		"{\"a\":tru}",
		"{\"a\":[1,]}",
		"{\"a\":1,}",
		"{\"a\" 1}",
		"{} x",
		" {\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
		"[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
		"]]]]]]]]]]]]]]]]]]]]]]]]]]} ",
		"{\"choices\":[{\"message\":{\"content\":\"[1,2]\"},"
		"\"finish_reason\":\"length\"}]}",
		"{\"choices\":[7,{\"message\":{\"content\":\"{}\"}}]}",
		"{\"choices\":{\"message\":{\"content\":\"{}\"}}}",
		"\t{\"model\" : \"x\" , \"status\":\"weird\\\"status\\\\\"}\r\n",
		"{\"output\":[{\"type\":\"message\",\"content\":[{\"type\":"
		"\"output_text\",\"text\":\"```json\\n{\\\"a\\\":1}\\n```\"},"
		"{\"type\":\"output_text\",\"text\":\"\"}]}],\"status\":"
		"\"completed\"}",
		"[1,2,3]",
		"{\"id\":7,\"text\":\"a\\nb \\u00e9\\ud83d\\ude00\",\"id\":\"x\"}",
		" { \"id\" : -12 , \"text\" : \"\" , \"row\" : { } } \r",
		"{\"id\":1,\"text\":\"t\"}{\"id\":2}",
		"\"just a string\"",
		"",
	};
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		one(c[i], c[i], strlen(c[i]));
}

/* dt_api_body() is the serialized dt_api_request(). */
static void
bodies(void)
{
	static const char *const texts[] = {"hello", "\"quotes\" and \\",
	    "ctl \x01\x1f\x7f tab\t nl\n", "Привет 😀 👨‍👩‍👧", ""};
	struct dt_api a;
	size_t i, len, blen;
	int kind;

	for (kind = DT_API_AGENT; kind <= DT_API_CHAT; kind++)
		for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
			char *input, *body;
			json_t *want, *got;

			memset(&a, 0, sizeof(a));
			a.kind = kind;
			a.model = "perplexity/sonar";
			a.prompt = "Analyze \"this\".\nThen\tstop. Ж";
			a.schema = schema;
			a.schema_name = "analysis";
			a.max_output_tokens = 1024;
			a.disable_search = 1;
			current = texts[i];
			expect(dt_api_prepare(&a) == 0, "prepare");
			input = dt_api_wrap(texts[i], strlen(texts[i]), &len);
			body = dt_api_body(&a, input, len, &blen);
			want = dt_api_request(&a, input);
			got = json_loadb(body, blen, 0, NULL);
			expect(blen == strlen(body) && got != NULL &&
			    json_equal(want, got), "the body is not the request");
			expect(len == strlen(input), "wrap length");
			json_decref(want);
			json_decref(got);
			free(input);
			free(body);
			dt_api_release(&a);
		}
}

/* The closing marker never occurs in the text it closes. */
static void
markers(void)
{
	static const char *const texts[] = {"</dt-data-",
	    "x </dt-data-000000000000> y", "</dt-data-cbf29ce48422>",
	    "<dt-data-0123456789ab>\n</dt-data-0123456789ab>", ""};
	char *w, close[32];
	size_t i, len;

	current = "markers";
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		w = dt_api_wrap(texts[i], strlen(texts[i]), &len);
		expect(w != NULL && len == strlen(w) && len ==
		    strlen(texts[i]) + 47, "wrap");
		if (w == NULL)
			continue;
		snprintf(close, sizeof(close), "%s", w + len - 23);
		expect(strncmp(w, "<dt-data-", 9) == 0 && close[0] == '<' &&
		    close[1] == '/' && memcmp(w + 1, close + 2, 21) == 0,
		    "markers");
		expect(strstr(texts[i], close) == NULL,
		    "the text holds its closing marker");
		expect(memcmp(w + 23, texts[i], strlen(texts[i])) == 0,
		    "the text");
		free(w);
	}
}

int
main(int argc, char **argv)
{
	json_error_t je;
	char err[256];
	int i;

	if (argc < 2 || (schema = json_load_file(argv[1], 0, &je)) == NULL ||
	    dt_schema_check(schema, err, sizeof(err)) < 0 ||
	    (compiled = dt_schema_compile(schema)) == NULL) {
		printf("usage: analyze_json SCHEMA [FILE ...]\n");
		return 2;
	}
	cases();
	reals();
	bodies();
	markers();
	for (i = 2; i < argc; i++)
		file(argv[i]);
	/* The comparisons mean something only if the scanner took part. */
	current = "coverage";
	expect(scanned > responses_n / 4, "the scanner read few responses");
	expect(built > loadable / 2, "the scanner built few values");
	expect(objects > 0, "js_object took no object");
	printf("%d checks, %d failed (the scanner read %d of %d responses "
	    "and built %d of the %d values Jansson read)\n", checks, failures,
	    scanned, responses_n, built, loadable);
	dt_schema_free(compiled);
	json_decref(schema);
	return failures != 0;
}
