/*
 * analyze_schema: unit tests for dt-analyze's schema validator and its
 * digest (dt_api_digest, SHA-256 from libcrypto, in hex).  Both live in
 * analyze/, which libdt.a does not contain, so they are compiled into
 * this program directly.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "../../analyze/schema.c"
#include "../../analyze/api.c"

static int failures, checks;

static void
expect(int cond, const char *what, const char *detail)
{
	checks++;
	if (!cond) {
		failures++;
		printf("not ok - %s%s%s\n", what, detail ? ": " : "",
		    detail ? detail : "");
	}
}

static json_t *
parse(const char *s)
{
	json_error_t e;
	json_t *v = json_loads(s, JSON_DECODE_ANY, &e);

	if (v == NULL) {
		printf("bad test JSON: %s: %s\n", s, e.text);
		failures++;
	}
	return v;
}

/* Validates doc against schema and compares the message (or "" = valid). */
static void
case_(const char *schema, const char *doc, const char *want)
{
	json_t *s = parse(schema), *v = parse(doc);
	char err[256] = "";
	int rc;

	if (s == NULL || v == NULL)
		goto out;
	if (dt_schema_check(s, err, sizeof(err)) < 0) {
		expect(0, "schema check", err);
		goto out;
	}
	rc = dt_schema_validate(s, v, err, sizeof(err));
	if (*want == '\0')
		expect(rc == 0, doc, err);
	else {
		char msg[600];

		snprintf(msg, sizeof(msg), "want \"%s\", got \"%s\"", want,
		    rc == 0 ? "(valid)" : err);
		expect(rc < 0 && strcmp(err, want) == 0, doc, msg);
	}
out:
	json_decref(s);
	json_decref(v);
}

static void
check_case(const char *schema, const char *want)
{
	json_t *s = parse(schema);
	char err[256] = "", msg[600];
	int rc;

	if (s == NULL)
		return;
	rc = dt_schema_check(s, err, sizeof(err));
	snprintf(msg, sizeof(msg), "want \"%s\", got \"%s\"", want,
	    rc == 0 ? "(accepted)" : err);
	expect(*want ? rc < 0 && strcmp(err, want) == 0 : rc == 0, schema,
	    msg);
	json_decref(s);
}

static void
sha_case(const char *in, size_t n, const char *want)
{
	struct iovec one = {(void *)in, n};
	char hex[65];

	dt_api_digest(&one, 1, hex, 64);
	expect(strcmp(hex, want) == 0, "sha256", hex);
}

int
main(int argc, char **argv)
{
	struct iovec parts[3] = {{"a", 1}, {"", 0}, {"bc", 2}};
	char hex[65];
	json_t *def;
	json_error_t je;
	char err[256];
	const char *S = "{\"type\":\"object\",\"properties\":{"
	    "\"s\":{\"type\":\"string\",\"maxLength\":3,\"minLength\":1},"
	    "\"e\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"]},"
	    "\"n\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
	    "\"i\":{\"type\":\"integer\"},"
	    "\"t\":{\"type\":[\"string\",\"null\"]},"
	    "\"a\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
	    "\"maxLength\":2},\"maxItems\":2,\"minItems\":1}},"
	    "\"required\":[\"s\"],\"additionalProperties\":false}";

	/* SHA-256: FIPS 180-4 examples. */
	sha_case("", 0,
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha_case("abc", 3,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha_case("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* Parts are hashed one after the other; a prefix is a prefix. */
	dt_api_digest(parts, 3, hex, 64);
	expect(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb4"
	    "10ff61f20015ad") == 0, "sha256 in parts", hex);
	dt_api_digest(parts, 3, hex, 16);
	expect(strcmp(hex, "ba7816bf8f01cfea") == 0, "sha256 prefix", hex);

	/* Valid documents. */
	case_(S, "{\"s\":\"abc\"}", "");
	case_(S, "{\"s\":\"абв\"}", "");          /* 3 code points, 6 bytes */
	case_(S, "{\"s\":\"😀😀😀\"}", "");
	case_(S, "{\"s\":\"x\",\"e\":\"b\",\"n\":1,\"i\":3.0,\"t\":null,"
	    "\"a\":[\"ok\"]}", "");
	case_(S, "{\"s\":\"x\",\"n\":0.5,\"t\":\"x\"}", "");

	/* Each keyword's violation, with its exact message. */
	case_(S, "[]", "$: expected object, got array");
	case_(S, "{}", "$: missing required property \"s\"");
	case_(S, "{\"s\":\"abcd\"}",
	    "$.s: string of 4 characters is longer than 3");
	case_(S, "{\"s\":\"абвг\"}",
	    "$.s: string of 4 characters is longer than 3");
	case_(S, "{\"s\":\"\"}", "$.s: string of 0 characters is shorter than 1");
	case_(S, "{\"s\":1}", "$.s: expected string, got integer");
	case_(S, "{\"s\":\"x\",\"e\":\"c\"}",
	    "$.e: \"c\" is not one of the allowed values");
	case_(S, "{\"s\":\"x\",\"n\":1.5}", "$.n: 1.5 is more than 1");
	case_(S, "{\"s\":\"x\",\"n\":-0.1}", "$.n: -0.1 is less than 0");
	case_(S, "{\"s\":\"x\",\"n\":\"1\"}", "$.n: expected number, got string");
	case_(S, "{\"s\":\"x\",\"i\":1.5}", "$.i: expected integer, got number");
	case_(S, "{\"s\":\"x\",\"t\":1}",
	    "$.t: integer is not one of the allowed types");
	case_(S, "{\"s\":\"x\",\"a\":[\"a\",\"b\",\"c\"]}",
	    "$.a: 3 items are more than 2");
	case_(S, "{\"s\":\"x\",\"a\":[]}", "$.a: 0 items are fewer than 1");
	case_(S, "{\"s\":\"x\",\"a\":[\"abc\"]}",
	    "$.a[0]: string of 3 characters is longer than 2");
	case_(S, "{\"s\":\"x\",\"a\":[\"a\",7]}",
	    "$.a[1]: expected string, got integer");
	case_(S, "{\"s\":\"x\",\"z\":1}", "$: unexpected property \"z\"");
	case_("{\"additionalProperties\":{\"type\":\"integer\"}}",
	    "{\"k\":\"v\"}", "$.k: expected integer, got string");
	case_("{\"type\":\"boolean\"}", "true", "");
	case_("{\"type\":\"null\"}", "false", "$: expected null, got boolean");

	/* Schema checks. */
	check_case(S, "");
	check_case("{\"type\":\"object\",\"properties\":{\"x\":{\"type\":"
	    "\"string\",\"pattern\":\"^a\"}}}",
	    "$.x: unsupported keyword \"pattern\"");
	check_case("{\"type\":\"strin\"}", "$: unknown type \"strin\"");
	check_case("{\"type\":[[\"string\"]]}",
	    "$: \"type\" must be a type name or a list of them");
	check_case("{\"maxLength\":-1}",
	    "$: \"maxLength\" must be a whole number >= 0");
	check_case("{\"enum\":[]}", "$: \"enum\" must be a non-empty list");
	check_case("{\"items\":{\"anyOf\":[]}}",
	    "$[]: unsupported keyword \"anyOf\"");
	check_case("[]", "$: a schema must be an object");
	check_case("{\"title\":\"t\",\"description\":\"d\",\"$schema\":\"x\"}",
	    "");

	/* The shipped default schema (argv[1]) accepts a typical analysis. */
	def = json_load_file(argc > 1 ? argv[1] : "analyze/schema.json", 0,
	    &je);
	expect(def != NULL, "load analyze/schema.json", je.text);
	if (def != NULL) {
		json_t *v = parse("{\"summary\":\"Встреча перенесена 🙂\","
		    "\"sentiment\":\"mixed\",\"topics\":[\"встреча\",\"work\"],"
		    "\"language\":\"ru\",\"action_items\":[],\"confidence\":0.8}");

		expect(dt_schema_check(def, err, sizeof(err)) == 0,
		    "default schema check", err);
		expect(dt_schema_validate(def, v, err, sizeof(err)) == 0,
		    "default schema accepts an analysis", err);
		json_decref(v);
		json_decref(def);
	}

	printf("%d checks, %d failed\n", checks, failures);
	return failures != 0;
}
