/*
 * fuzz/api.c: dt-analyze's reader of API replies (analyze/api.c) on
 * arbitrary bodies: dt_api_parse for the Agent API and for chat
 * completions, and dt_api_error_message.
 *
 * Input: byte 0 bit 0 picks the API kind; the rest is the body.  Checks:
 * an analysis is returned only with DT_API_OK and then it is valid
 * against the schema; otherwise there is a reason; the reason, the model
 * name and the error message are valid UTF-8 (they end up in JSON
 * records, which cannot hold anything else), NUL-terminated within
 * their buffers.
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

	memset(msg, 'x', sizeof(msg));
	dt_api_error_message(body, len, msg, sizeof(msg));
	FUZZ_CHECK(memchr(msg, '\0', sizeof(msg)) != NULL);
	FUZZ_CHECK(fuzz_utf8_ok(msg, strlen(msg)));
	return 0;
}
