/*
 * fuzz/telegram.c: dt-report's reader of Telegram Bot API answers
 * (read_answer in report/telegram.c, included here to reach it) on
 * arbitrary bodies.
 *
 * Checks: no crash, leak or sanitizer report; ok only for a JSON object
 * with "ok": true; the description kept is NUL-terminated, valid UTF-8
 * and at most 300 characters; retry_after is -1 unless the answer held
 * an integer.
 *
 * fuzz-sources: report/format.c
 * fuzz-options: -max_len=4096
 */
#include <string.h>

#include "fuzz.h"

#include "../report/telegram.c"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet("fuzz-telegram");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dt_http_resp r = { 0 };
	char desc[1024];
	long retry;
	long long migrate;
	json_t *o;
	int ok;

	/* The HTTP client hands over a NUL-terminated copy of the body. */
	r.body = malloc(size + 1);
	FUZZ_CHECK(r.body != NULL);
	memcpy(r.body, data, size);
	r.body[size] = '\0';
	r.len = size;
	r.status = 200;
	memset(desc, 'x', sizeof(desc));
	ok = read_answer(&r, desc, sizeof(desc), &retry, &migrate);
	FUZZ_CHECK(memchr(desc, '\0', sizeof(desc)) != NULL);
	FUZZ_CHECK(fuzz_utf8_ok(desc, strlen(desc)));
	o = json_loads(r.body, 0, NULL);
	FUZZ_CHECK(ok == json_is_true(json_object_get(o, "ok")));
	if (!json_is_integer(json_object_get(json_object_get(o,
	    "parameters"), "retry_after")))
		FUZZ_CHECK(retry == -1);
	json_decref(o);
	free(r.body);
	return 0;
}
