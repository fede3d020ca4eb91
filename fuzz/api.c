/*
 * fuzz/api.c: dt-analyze's reader of API replies (analyze/api.c) on
 * arbitrary bodies: dt_api_parse for the Agent API and for chat
 * completions, and dt_api_error.
 *
 * Input: byte 0 bit 0 picks the API kind; the rest is the body.  Checks:
 * the reply has an analysis only with DT_API_OK and then it is valid
 * against the schema; otherwise it has a reason; the model name is no
 * longer than a record keeps; the error message and type are valid
 * UTF-8 (they end up in JSON records, which cannot hold anything else),
 * NUL-terminated within their buffers.
 *
 * fuzz-sources: analyze/api.c analyze/schema.c
 * fuzz-options: -max_len=8192
 */
#include <string.h>

#include <jansson.h>

#include "../analyze/api.h"
#include "fuzz.h"
#include "../analyze/schema.h"

static json_t *schema;

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
	json_t *reply, *analysis;
	char msg[300], type[64], verr[300];
	const char *body, *model;
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

	rc = dt_api_parse(&a, body, len, &reply);
	FUZZ_CHECK(reply != NULL);
	model = json_string_value(json_object_get(reply, "model"));
	FUZZ_CHECK(model != NULL && strlen(model) < 128);
	analysis = json_object_get(reply, "analysis");
	if (rc == DT_API_OK) {
		FUZZ_CHECK(analysis != NULL);
		FUZZ_CHECK(json_object_get(reply, "why") == NULL);
		FUZZ_CHECK(dt_schema_validate(schema, analysis, verr,
		    sizeof(verr)) == 0);
	} else {
		FUZZ_CHECK(rc == DT_API_FAILED || rc == DT_API_INVALID);
		FUZZ_CHECK(analysis == NULL);
		FUZZ_CHECK(json_string_length(json_object_get(reply,
		    "why")) > 0);
	}
	json_decref(reply);

	memset(msg, 'x', sizeof(msg));
	memset(type, 'x', sizeof(type));
	dt_api_error(body, len, msg, sizeof(msg), type, sizeof(type));
	FUZZ_CHECK(memchr(msg, '\0', sizeof(msg)) != NULL);
	FUZZ_CHECK(fuzz_utf8_ok(msg, strlen(msg)));
	FUZZ_CHECK(memchr(type, '\0', sizeof(type)) != NULL);
	FUZZ_CHECK(fuzz_utf8_ok(type, strlen(type)));
	return 0;
}
