/*
 * fuzz/schema.c: dt-analyze's local JSON Schema checks (analyze/schema.c).
 *
 * Input: a JSON document.  It is validated against the default analysis
 * schema (analyze/schema.json), as a model's output would be.  When it is
 * an array [schema, value], schema goes through dt_schema_check and, when
 * accepted, value is validated against it.  dt_utf8_len runs on the raw
 * bytes.  Checks: no crash, leak or sanitizer report; every verdict comes
 * with a message on failure (valid UTF-8, as it goes into error records)
 * and none on success; validating twice gives the same verdict.
 *
 * fuzz-sources: analyze/schema.c
 * fuzz-options: -max_len=4096
 */
#include <string.h>

#include <jansson.h>

#include "../analyze/schema.h"
#include "fuzz.h"

static json_t *analysis_schema;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	json_error_t je;
	char err[256];

	(void)argc;
	(void)argv;
	fuzz_quiet("fuzz-schema");
	analysis_schema = json_load_file("analyze/schema.json", 0, &je);
	FUZZ_CHECK(analysis_schema != NULL);
	FUZZ_CHECK(dt_schema_check(analysis_schema, err, sizeof(err)) == 0);
	return 0;
}

/* Validates v against s twice; checks the verdict's message. */
static void
validate(const json_t *s, const json_t *v)
{
	char err[300], err2[300];
	int rc, rc2;

	err[0] = err2[0] = '\0';
	rc = dt_schema_validate(s, v, err, sizeof(err));
	rc2 = dt_schema_validate(s, v, err2, sizeof(err2));
	FUZZ_CHECK(rc == 0 || rc == -1);
	FUZZ_CHECK(rc == rc2 && strcmp(err, err2) == 0);
	if (rc < 0) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(fuzz_utf8_ok(err, strlen(err)));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc;
	char err[300];
	size_t n;

	n = dt_utf8_len((const char *)data, size);
	FUZZ_CHECK(n <= size);
	doc = json_loadb((const char *)data, size,
	    JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (doc == NULL)
		return 0;
	validate(analysis_schema, doc);
	if (json_is_array(doc) && json_array_size(doc) == 2) {
		err[0] = '\0';
		if (dt_schema_check(json_array_get(doc, 0), err,
		    sizeof(err)) == 0)
			validate(json_array_get(doc, 0), json_array_get(doc, 1));
		else {
			FUZZ_CHECK(err[0] != '\0');
			FUZZ_CHECK(fuzz_utf8_ok(err, strlen(err)));
		}
	}
	json_decref(doc);
	return 0;
}
