/*
 * fuzz/api.c: dt-analyze's readers of API replies (analyze/api.c) on
 * arbitrary bodies: dt_api_parse for the Agent API and for chat
 * completions, and dt_api_error_message; and js_object(), with which
 * dt-analyze reads its input records, against Jansson.
 *
 * Input: byte 0 bit 0 picks the API kind; the rest is the body.  Checks:
 * an analysis is returned only with DT_API_OK and then it is valid
 * against the schema; otherwise there is a reason; the reason, the model
 * name and the error message are valid UTF-8 (they end up in JSON
 * records, which cannot hold anything else), NUL-terminated within
 * their buffers.  js_object() takes only objects that json_loadb takes,
 * and finds the members json_object_get finds.
 *
 * fuzz-sources: analyze/api.c analyze/jscan.c analyze/schema.c analyze/sha256.c
 * fuzz-options: -max_len=8192
 */
#include <string.h>

#include <jansson.h>

#include "../analyze/api.h"
#include "../analyze/jscan.h"
#include "fuzz.h"
#include "../analyze/schema.h"

static json_t *schema;

/* js_object() agrees with Jansson on the text. */
static void
object(const char *text, size_t len)
{
	static const char *const keys[] = {"id", "text"};
	struct js_span v[2], obj;
	json_t *o, *m, *mine;
	int seen[2], i;

	if (js_object(text, len, keys, 2, v, seen, &obj) < 0)
		return;
	o = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
	FUZZ_CHECK(json_is_object(o));
	FUZZ_CHECK(obj.s[0] == '{' && obj.s[obj.n - 1] == '}');
	for (i = 0; i < 2; i++) {
		m = json_object_get(o, keys[i]);
		FUZZ_CHECK((v[i].s != NULL) == (m != NULL));
		if (m == NULL)
			continue;
		mine = json_loadb(v[i].s, v[i].n, JSON_DECODE_ANY |
		    JSON_ALLOW_NUL, NULL);
		FUZZ_CHECK(mine != NULL && json_equal(mine, m));
		json_decref(mine);
	}
	json_decref(o);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	json_error_t je;
	char err[256];

	(void)argc;
	(void)argv;
	fuzz_quiet("fuzz-api");
	/* tools/fuzz runs the targets from the project root. */
	schema = json_load_file("analyze/schema.json", 0, &je);
	FUZZ_CHECK(schema != NULL);
	FUZZ_CHECK(dt_schema_check(schema, err, sizeof(err)) == 0);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dt_api a = { 0 };
	struct dt_usage u;
	json_t *analysis;
	char model[64], why[512], msg[300], verr[300], *raw;
	const char *body;
	size_t len;
	int rc;

	if (size < 1)
		return 0;
	a.kind = data[0] & 1 ? DT_API_CHAT : DT_API_AGENT;
	a.model = "perplexity/sonar";
	a.prompt = "Analyze the message.";
	a.schema = schema;
	a.schema_name = "analysis";
	a.max_output_tokens = 1024;
	body = (const char *)data + 1;
	len = size - 1;

	why[0] = '\0';
	model[0] = '\0';
	rc = dt_api_parse(&a, body, len, &analysis, &u, model, sizeof(model),
	    why, sizeof(why), &raw);
	FUZZ_CHECK(memchr(model, '\0', sizeof(model)) != NULL);
	FUZZ_CHECK(fuzz_utf8_ok(model, strlen(model)));
	if (rc == DT_API_OK) {
		FUZZ_CHECK(analysis != NULL && raw == NULL);
		FUZZ_CHECK(dt_schema_validate(schema, analysis, verr,
		    sizeof(verr)) == 0);
		json_decref(analysis);
	} else {
		FUZZ_CHECK(rc == DT_API_FAILED || rc == DT_API_INVALID);
		FUZZ_CHECK(analysis == NULL);
		FUZZ_CHECK(why[0] != '\0');
		FUZZ_CHECK(fuzz_utf8_ok(why, strlen(why)));
		free(raw);
	}

	object(body, len);

	memset(msg, 'x', sizeof(msg));
	dt_api_error_message(body, len, msg, sizeof(msg));
	FUZZ_CHECK(memchr(msg, '\0', sizeof(msg)) != NULL);
	FUZZ_CHECK(fuzz_utf8_ok(msg, strlen(msg)));
	return 0;
}
